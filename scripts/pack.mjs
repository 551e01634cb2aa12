// `npm run pack`: the npm package `convlens` (target/npm/convlens-<version>.tgz): an ES module
// entry (index.js) that defines <convlens-view> and exports the engine client, its TypeScript
// declarations (index.d.ts), and www/ (the wasm engine, the worker, the views, the built-in digits
// and nets), all resolved relative to the module (`new URL(…, import.meta.url)`); one override,
// `setEngineBase(url)`, for a bundler that moves the worker and the wasm elsewhere.
//   node scripts/pack.mjs  ->  prints the tarball's path
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, ensureNodeModules, ROOT, run, targetDir } from './build.mjs';

export async function pack() {
  await ensureNodeModules();
  await build();
  const app = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const dir = join(targetDir(), 'npm', 'package');
  rmSync(join(targetDir(), 'npm'), { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, 'www'), join(dir, 'www'), { recursive: true });
  cpSync(join(ROOT, 'npm', 'index.js'), join(dir, 'index.js'));
  cpSync(join(ROOT, 'npm', 'index.d.ts'), join(dir, 'index.d.ts'));
  cpSync(join(ROOT, 'npm', 'README.md'), join(dir, 'README.md'));
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({
    name: 'convlens',
    version: app.version,
    description: 'See inside a convolutional network in the browser: the <convlens-view> element and the ConvLens engine (Rust/Burn compiled to WebAssembly).',
    license: app.license,
    type: 'module',
    main: './index.js',
    module: './index.js',
    types: './index.d.ts',
    exports: { '.': { types: './index.d.ts', default: './index.js' }, './www/*': './www/*' },
    files: ['index.js', 'index.d.ts', 'README.md', 'www/'],
    sideEffects: ['./index.js', './www/convlens-view.js'],
  }, null, 2)}\n`);
  const out = join(targetDir(), 'npm');
  await run('npm', ['pack', '--pack-destination', out], { cwd: dir });
  const tgz = join(out, `convlens-${app.version}.tgz`);
  console.log(tgz);
  return tgz;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  pack().catch((e) => {
    console.error(`pack failed: ${e.message}`);
    process.exit(1);
  });
}
