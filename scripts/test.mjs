// Full test run: formatting and lints, Rust tests, native CLI, wasm build, then the browser
// end-to-end tests. Says how many tests ran, how many were skipped and why.  `npm test`
//
// Tests that need the data directory (../shared/data, or $CONVLENS_DATA_DIR) are marked
// #[ignore] in Rust and `skip` in the e2e tests; when the data is there, they run too.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, buildCli, ensureNodeModules, ROOT, run, step } from './build.mjs';
import { dataDir } from './serve.mjs';
import { onnxFixtures, ONNX_DIR } from './onnx-fixtures.mjs';

// One data directory for every step (cargo's tests, the CLI, the browser tests): see dataDir().
const DATA = dataDir();
process.env.CONVLENS_DATA_DIR = DATA;
const HAVE_DATA = ['mnist/mnist_labels.js', 'tiny-vgg/model.json', 'mobilenet/mobilenet_v2_f32.json'].every((f) => existsSync(join(DATA, f)));

/** Runs a command, echoing its output, and resolves to the output (rejects on a non-zero exit). */
function runCapture(cmd, args) {
  console.log(`$ ${[cmd, ...args].join(' ')}`);
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, PATH: `${process.env.PATH}:${join(process.env.HOME ?? '', '.cargo/bin')}` }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    child.on('error', fail);
    child.on('exit', (code) => (code === 0 ? ok(out) : fail(new Error(`${cmd} ${args[0]} failed (exit ${code})`))));
  });
}

/** Sums cargo's "test result: ok. 5 passed; 0 failed; 1 ignored" lines. */
function cargoCounts(out) {
  const c = { passed: 0, failed: 0, ignored: 0, ignoredNames: [] };
  for (const m of out.matchAll(/test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/g)) {
    c.passed += Number(m[1]);
    c.failed += Number(m[2]);
    c.ignored += Number(m[3]);
  }
  for (const m of out.matchAll(/^test (\S+) \.\.\. ignored/gm)) c.ignoredNames.push(m[1]);
  return c;
}

const t0 = performance.now();
const summary = [];
let passed = 0;
let skipped = 0;
try {
  await step('rustfmt and clippy', async () => {
    // A minimal rustup profile lacks them; `rustup component add` is a no-op when they are there.
    await run('rustup', ['component', 'add', 'rustfmt', 'clippy']);
  });
  await step('cargo fmt --check', () => run('cargo', ['fmt', '--all', '--check']));
  await step('cargo clippy -D warnings', () => run('cargo', ['clippy', '--release', '--workspace', '--all-targets', '--', '-D', 'warnings']));
  // The two engine builds' feature sets too (crates/wasm with its cpu or its webgpu feature alone).
  await step('cargo clippy -D warnings (the CPU engine)', () => run('cargo', ['clippy', '--release', '-p', 'convlens-wasm', '--no-default-features', '--features', 'cpu', '--', '-D', 'warnings']));
  await step('cargo clippy -D warnings (the WebGPU engine)', () => run('cargo', ['clippy', '--release', '-p', 'convlens-wasm', '--no-default-features', '--features', 'webgpu', '--', '-D', 'warnings']));
  // The ONNX import tests' models, made with PyTorch (installed once, outside the clone).
  await onnxFixtures();
  process.env.CONVLENS_ONNX_FIXTURES = ONNX_DIR;
  const rust = cargoCounts(await step('cargo test --release --workspace', () => runCapture('cargo', ['test', '--release', '--workspace'])));
  passed += rust.passed;
  if (HAVE_DATA) {
    const more = cargoCounts(await step(`cargo test -- --ignored (the data directory is at ${DATA})`, () => runCapture('cargo', ['test', '--release', '--workspace', '--', '--ignored'])));
    passed += more.passed;
    summary.push(`Rust: ${rust.passed + more.passed} passed (${more.passed} of them need the data directory)`);
  } else {
    // The ONNX tests need only their fixtures, which are there now.
    const onnx = cargoCounts(await step('cargo test --test onnx -- --ignored (the ONNX fixtures)', () => runCapture('cargo', ['test', '--release', '-p', 'convlens-core', '--test', 'onnx', '--', '--ignored'])));
    passed += onnx.passed;
    rust.ignored -= onnx.passed;
    rust.ignoredNames = rust.ignoredNames.filter((n) => !n.startsWith('onnx_'));
    skipped += rust.ignored;
    summary.push(`Rust: ${rust.passed} passed, ${rust.ignored} skipped: they need the data directory (${DATA} not found; set CONVLENS_DATA_DIR or run npm run download-data): ${rust.ignoredNames.join(', ')}`);
  }
  await buildCli();
  await build();
  await ensureNodeModules();
  const tap = join(mkdtempSync(join(tmpdir(), 'convlens-tap-')), 'e2e.tap');
  let e2eError = null;
  await step('e2e tests (node --test tests/e2e/)', () => run(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-reporter-destination=stdout', '--test-reporter=tap', `--test-reporter-destination=${tap}`, 'tests/e2e/'])).catch((e) => { e2eError = e; });
  const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
  const num = (k) => Number(text.match(new RegExp(`^# ${k} (\\d+)`, 'm'))?.[1] ?? 0);
  const reasons = [...text.matchAll(/^\s*ok \d+ - (.*?) # SKIP (.*)$/gm)].map((m) => `${m[1]} (${m[2]})`);
  passed += num('pass');
  skipped += num('skipped');
  summary.push(`browser and node: ${num('pass')} passed, ${num('fail')} failed, ${num('skipped')} skipped${reasons.length ? `: ${reasons.join('; ')}` : ''}`);
  if (e2eError) throw e2eError;
} catch (e) {
  console.error(`\nFAILED: ${e.message}`);
  for (const s of summary) console.error(`  ${s}`);
  process.exit(1);
}
console.log(`\nall tests passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
for (const s of summary) console.log(`  ${s}`);
console.log(`tests: ${passed} passed, 0 failed, ${skipped} skipped`);
