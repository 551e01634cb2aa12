// npm run size: what the engines weigh on the wire — each www/pkg/*_bg.wasm raw, gzip -9 and brotli
// (quality 11), and its JS glue. The CPU engine is what a session on the CPU and every pool helper
// loads; the WebGPU one is loaded only for sessions on WebGPU.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { compressedSizes, ENGINES, ROOT } from './build.mjs';

const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
for (const engine of ENGINES) {
  const file = join(ROOT, 'www', 'pkg', `${engine.name}_bg.wasm`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build`);
  const s = compressedSizes(readFileSync(file), { brotli: true });
  const glue = compressedSizes(readFileSync(join(ROOT, 'www', 'pkg', `${engine.name}.js`)), { brotli: true });
  console.log(`${engine.name} (${engine.what}): ${mb(s.raw)} raw, ${mb(s.gzip)} gzip, ${mb(s.brotli)} brotli; JS glue ${mb(glue.gzip)} gzip`);
}
