// `npm run build`: the static site in dist/, to copy to any static host at any path
// (`https://course.example/convlens/`): the pages, www/ (the engine's wasm, the worker, the views,
// the built-in digits and nets) and examples/. The large data (MNIST, CIFAR-10, Tiny VGG,
// MobileNetV2, the photos) is not copied: it is fetched from `--data-url` (relative to the site's
// root, or absolute; default: data/ at the root: copy the data directory there) and kept in the browser's Cache API.
//   node scripts/dist.mjs [--out DIR] [--data-url URL]
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, ensureNodeModules, ROOT } from './build.mjs';

/** Writes the static site into `out`; `dataUrl`: where the pages fetch the large data (null: data/ beside them). */
export async function buildDist({ out = join(ROOT, 'dist'), dataUrl = null } = {}) {
  await ensureNodeModules();
  await build();
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(ROOT).filter((f) => f.endsWith('.html'))) cpSync(join(ROOT, f), join(out, f));
  // www/ as it is, without what only development needs.
  cpSync(join(ROOT, 'www'), join(out, 'www'), { recursive: true, filter: (src) => !src.endsWith('.d.ts') || src.includes('pkg') });
  cpSync(join(ROOT, 'examples'), join(out, 'examples'), { recursive: true });
  writeFileSync(join(out, 'www', 'config.js'), [
    '// Written by `npm run build` (scripts/dist.mjs): where this site fetches the large data.',
    `export const DATA_URL = ${JSON.stringify(dataUrl)};`,
    '',
    '/** The data directory\'s URL: DATA_URL (relative to the site\'s root, or absolute), else data/ there. */',
    'export function dataBase() {',
    '  return new URL(DATA_URL ?? \'data/\', new URL(\'../\', import.meta.url));',
    '}',
    '',
  ].join('\n'));
  for (const f of ['convlens_webgpu_bg.wasm', 'convlens_cpu_bg.wasm']) {
    if (!existsSync(join(out, 'www', 'pkg', f))) throw new Error(`the wasm engine ${f} is missing from dist/www/pkg`);
  }
  console.log(`dist: ${out}${dataUrl ? ` (data from ${dataUrl})` : ' (data from data/ beside the pages)'}`);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  buildDist({ out: opt('--out') ? resolve(opt('--out')) : undefined, dataUrl: opt('--data-url') ?? null }).catch((e) => {
    console.error(`build failed: ${e.message}`);
    process.exit(1);
  });
}
