// Builds ConvLens: the wasm engine into www/pkg/ (and, separately, the native CLI used by the tests).
// Idempotent: each step is skipped when its output is already up to date.  `node scripts/build.mjs`
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib, { brotliCompressSync, gzipSync } from 'node:zlib';

export const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const CARGO_BIN = join(homedir(), '.cargo', 'bin');
const ENV = { ...process.env, PATH: [process.env.PATH, CARGO_BIN].filter(Boolean).join(delimiter) };
const PKG = join(ROOT, 'www', 'pkg');

/** The cargo target directory: $CARGO_TARGET_DIR (relative to the repo root) or ./target. */
export function targetDir() {
  return resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
}

/** Path of the native CLI binary built by buildCli(). */
export function cliPath() {
  return join(targetDir(), 'release', process.platform === 'win32' ? 'convlens.exe' : 'convlens');
}

/** Runs a command with inherited stdio; rejects on a non-zero exit. */
export function run(cmd, args, opts = {}) {
  console.log(`$ ${[cmd, ...args].join(' ')}`);
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: ENV, stdio: 'inherit', ...opts });
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      if (code === 0) ok();
      else fail(new Error(`${cmd} ${args[0] ?? ''} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

/** Runs a command and returns its stdout, or null if it cannot run or fails. */
function capture(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, env: ENV, encoding: 'utf8' });
  return r.status === 0 ? r.stdout : null;
}

/** Runs fn, printing how long the step took. */
export async function step(name, fn) {
  const t0 = performance.now();
  console.log(`\n== ${name}`);
  const out = await fn();
  console.log(`== ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

async function ensureWasmTarget() {
  const installed = capture('rustup', ['target', 'list', '--installed']) ?? '';
  if (installed.split('\n').some((l) => l.trim() === 'wasm32-unknown-unknown')) {
    console.log('wasm32-unknown-unknown already installed');
  } else {
    await run('rustup', ['target', 'add', 'wasm32-unknown-unknown']);
  }
}

/** The exact wasm-bindgen version pinned in Cargo.lock. */
export function lockedWasmBindgenVersion() {
  const lock = readFileSync(join(ROOT, 'Cargo.lock'), 'utf8');
  for (const block of lock.split('[[package]]')) {
    if (/^\s*name = "wasm-bindgen"\s*$/m.test(block)) {
      const m = block.match(/^\s*version = "([^"]+)"\s*$/m);
      if (m) return m[1];
    }
  }
  throw new Error('Cargo.lock has no wasm-bindgen package (is crates/wasm a workspace member?)');
}

/** The wasm-bindgen binary (PATH, then ~/.cargo/bin) and the version it reports, or null. */
export function findWasmBindgen() {
  for (const bin of ['wasm-bindgen', join(CARGO_BIN, 'wasm-bindgen')]) {
    const out = capture(bin, ['--version']);
    const m = out?.match(/wasm-bindgen\s+(\S+)/);
    if (m) return { bin, version: m[1] };
  }
  return null;
}

async function ensureWasmBindgen() {
  const want = lockedWasmBindgenVersion();
  let found = findWasmBindgen();
  if (found?.version === want) {
    console.log(`wasm-bindgen ${want} found (${found.bin})`);
    return found.bin;
  }
  console.log(`need wasm-bindgen ${want}, found ${found ? `${found.version} (${found.bin})` : 'none'}`);
  // No --locked: it fails against this registry.
  await run('cargo', ['install', 'wasm-bindgen-cli', '--version', want]);
  found = findWasmBindgen();
  if (found?.version !== want) throw new Error(`wasm-bindgen ${want} still not found after cargo install`);
  return found.bin;
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : -Infinity);

// Two engines from crates/wasm: the CPU one (burn-flex, no burn-wgpu/cubecl) for sessions on the
// CPU, which every browser can run and every pool helper uses, and the WebGPU one (burn-wgpu and
// cubecl, no burn-flex) for sessions on WebGPU. www/worker.js loads the one a session needs.
export const ENGINES = [
  // Each its own cargo profile (Cargo.toml says why): the WebGPU engine's whole-program LTO at "z"
  // would cost the CPU one ~4% of its training speed.
  { name: 'convlens_cpu', features: ['--no-default-features', '--features', 'cpu'], profile: 'wasm-cpu', what: 'CPU' },
  { name: 'convlens_webgpu', features: ['--no-default-features', '--features', 'webgpu'], profile: 'wasm', what: 'WebGPU' },
];

/** cargo build of one engine; resolves to the path of the .wasm it made (its own per feature set). */
function cargoWasm(features, profile) {
  const args = ['build', '-p', 'convlens-wasm', '--target', 'wasm32-unknown-unknown', '--profile', profile, ...features, '--message-format=json-render-diagnostics'];
  console.log(`$ cargo ${args.join(' ')}`);
  return new Promise((ok, fail) => {
    const child = spawn('cargo', args, { cwd: ROOT, env: ENV, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', fail);
    child.on('exit', (code) => {
      if (code !== 0) return fail(new Error(`cargo build of the wasm engine exited with ${code}`));
      const wasm = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
        .filter((m) => m.reason === 'compiler-artifact' && m.target?.name === 'convlens_wasm')
        .flatMap((m) => m.filenames).find((f) => f.endsWith('.wasm'));
      return wasm ? ok(wasm) : fail(new Error('cargo made no convlens_wasm .wasm'));
    });
  });
}

/** Compressed sizes of a file's bytes: gzip -9, and with `brotli` brotli at quality 11 (what a static
 * server sends precompressed; ~40 s for the WebGPU engine, so only `npm run size` asks for it). */
export function compressedSizes(bytes, { brotli = false } = {}) {
  const quality = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } };
  return {
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotli ? brotliCompressSync(bytes, quality).length : null,
  };
}

async function buildWasm(bindgen) {
  // The full engine's files from before the builds were split (convlens_wasm*): dist/ and the npm
  // package copy all of www/, so a checkout built before then would ship them.
  for (const f of existsSync(PKG) ? readdirSync(PKG, { withFileTypes: true }) : []) {
    if (f.isFile() && f.name.startsWith('convlens_wasm')) rmSync(join(PKG, f.name));
  }
  for (const engine of ENGINES) {
    // The .wasm cargo reports (target/wasm32-unknown-unknown/<profile>/) is a hard link to this
    // build's own artifact: its time is that build's.
    const input = await cargoWasm(engine.features, engine.profile);
    const output = join(PKG, `${engine.name}_bg.wasm`);
    if (mtime(output) > mtime(input) && existsSync(join(PKG, `${engine.name}.js`))) {
      console.log(`www/pkg/${engine.name} is up to date`);
    } else {
      // Dropping the name and producers sections takes the WebGPU engine from about 24 MiB to 12 MiB.
      await run(bindgen, ['--target', 'web', '--remove-name-section', '--remove-producers-section', '--out-dir', PKG, '--out-name', engine.name, input]);
    }
    const size = compressedSizes(readFileSync(output));
    const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`;
    console.log(`www/pkg/${engine.name}_bg.wasm (${engine.what}): ${mib(size.raw)}, gzip ${mib(size.gzip)}`);
  }
}

/** Installs node_modules (uPlot for the page, playwright-core for the e2e tests) if missing. */
export async function ensureNodeModules() {
  await step('npm install', async () => {
    if (['playwright-core', 'puppeteer-core', 'uplot', 'axe-core', 'culori'].every((m) => existsSync(join(ROOT, 'node_modules', m)))) console.log('node_modules present');
    else await run('npm', ['install', '--no-audit', '--no-fund'], { shell: process.platform === 'win32' });
  });
}

/** Copies the npm packages the page imports (uPlot) into www/vendor/ (generated, git-ignored). */
function copyVendor() {
  const vendor = join(ROOT, 'www', 'vendor');
  mkdirSync(vendor, { recursive: true });
  for (const f of ['uPlot.esm.js', 'uPlot.min.css']) copyFileSync(join(ROOT, 'node_modules', 'uplot', 'dist', f), join(vendor, f));
  console.log('uPlot 1.6 -> www/vendor/');
}

/** Builds the native CLI (target/release/convlens), used by the tests. */
export async function buildCli() {
  await step('cargo build --release --workspace (the convlens CLI)', () => run('cargo', ['build', '--release', '--workspace']));
  return cliPath();
}

/** Builds the wasm engine into www/pkg/. */
export async function build() {
  const t0 = performance.now();
  await step('rust target wasm32-unknown-unknown', ensureWasmTarget);
  const bindgen = await step('wasm-bindgen CLI', ensureWasmBindgen);
  await step('wasm engine -> www/pkg', () => buildWasm(bindgen));
  await ensureNodeModules();
  await step('front-end packages -> www/vendor', copyVendor);
  console.log(`\nbuild done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    await build();
    await ensureNodeModules();
  } catch (e) {
    console.error(`\nbuild failed: ${e.message}`);
    process.exit(1);
  }
}
