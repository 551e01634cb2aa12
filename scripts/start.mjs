// Builds the wasm engine (if needed) and serves the playground.  `npm start`
import { build } from './build.mjs';
import { serve } from './serve.mjs';

try {
  await build();
} catch (e) {
  console.error(`\nbuild failed: ${e.message}`);
  process.exit(1);
}
const { url } = await serve();
console.log(`\nConvLens: ${url}`);
