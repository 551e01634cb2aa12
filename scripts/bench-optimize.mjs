// npm run bench:optimize: iterations per second of each image-optimization technique on MobileNetV2
// at 224x224, side by side in one run: ConvLens in headless Chromium on the CPU backend (burn-flex in
// wasm, in the worker) and on WebGPU (SwiftShader here: a CPU emulation, so not a GPU figure), and the
// same engine natively (the convlens CLI, burn-flex). Rounds alternate the engines (BENCH_RUNS,
// default 3; medians). Techniques: class visualization (Lucid preset), feature inversion of op20,
// an iterative attack, one DeepDream octave on op20, style transfer (MobileNetV2's default layers).
// Needs MobileNetV2 in $CONVLENS_DATA_DIR/mobilenet (else ../shared/data). Raw numbers:
// target/bench-optimize.json. Env: BENCH_RUNS, BENCH_STEPS (browser CPU, default 4),
// BENCH_GPU_STEPS (default 1), BENCH_SKIP_BUILD=1, BENCH_NO_WEBGPU=1.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { build, ROOT, targetDir } from './build.mjs';
import { median } from './bench.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';
import { dataDir } from './serve.mjs';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const STEPS = Math.max(1, Number(process.env.BENCH_STEPS ?? 4));
const GPU_STEPS = Math.max(1, Number(process.env.BENCH_GPU_STEPS ?? 1));
const OUT = join(targetDir(), 'bench-optimize.json');
process.env.CONVLENS_DATA_DIR ??= dataDir();
const DATA = process.env.CONVLENS_DATA_DIR;
const M = join(DATA, 'mobilenet');
if (!existsSync(join(M, 'mobilenet_v2_f32.safetensors'))) throw new Error(`no MobileNetV2 in ${M}`);

const TECHNIQUES = {
  visualize: { kind: 'visualize', settings: { preset: 'lucid', target: { kind: 'class', index: 89 } } },
  invert: { kind: 'invert', input: true, settings: { layers: [22] } },
  attack: { kind: 'attack', input: true, settings: { target: 131 } },
  dream: { kind: 'dream', input: true, settings: { width: 224, height: 224, layer: 22, octaves: 1 } },
  style: { kind: 'style', input: true, settings: { size: 224, style: 'starry' } },
};

/** ms per step of one technique in the page's worker. */
async function timeBrowser(page, name, n) {
  const t = TECHNIQUES[name];
  return page.evaluate(async ({ t, n }) => {
    const { client, state, ctx } = window.convlens;
    const settings = { ...t.settings };
    if (settings.style === 'starry') settings.style = Array.from(await (await import('./www/views/image-io.js')).loadSquare(ctx.styles[0].url, 224, 3, { trim: true }));
    return client.request('benchOptimize', { kind: t.kind, input: t.input ? Array.from(state.image) : [], settings, n });
  }, { t, n });
}

/** ms per step natively (the CLI's own count of steps/s over `n` steps, load excluded). */
function timeNative(name, n) {
  const bin = join(targetDir(), 'release', 'convlens');
  const model = ['--model', join(M, 'mobilenet_v2_f32.json'), '--weights', join(M, 'mobilenet_v2_f32.safetensors')];
  const img = join(M, 'test-images/grace_hopper.bmp');
  const args = {
    visualize: ['visualize', ...model, '--target', 'class:89', '--steps', String(n), '--out', '/tmp/bench-vis.png'],
    invert: ['invert', ...model, '--image', img, '--layers', '22', '--steps', String(n), '--out', '/tmp/bench-inv.png'],
    attack: ['adversarial', ...model, '--image', img, '--method', 'towards', '--class', '131', '--steps', String(n), '--out', '/tmp/bench-adv.png'],
    dream: ['dream', ...model, '--image', img, '--layer', '22', '--octaves', '1', '--steps', String(n), '--out', '/tmp/bench-dream.png'],
    style: ['style', ...model, '--content', img, '--style', join(DATA, 'images/starry.jpg'), '--steps', String(n), '--out', '/tmp/bench-style.png'],
  }[name];
  const t0 = performance.now();
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const m = /([\d.]+) steps\/s/.exec(r.stdout);
  // The adversarial command prints no rate: time the whole run less one load (measured with --steps 0 is not possible; use the total).
  return m ? 1000 / Number(m[1]) : (performance.now() - t0) / n;
}

async function main() {
  if (!process.env.BENCH_SKIP_BUILD) await build();
  const cargo = spawnSync('cargo', ['build', '--release', '--workspace'], { cwd: ROOT, stdio: 'inherit' });
  if (cargo.status !== 0) throw new Error('cargo build failed');
  const server = await serveRoot();
  const browser = await launch({ webgpu: true });
  const engines = ['native cpu', 'browser cpu', ...(process.env.BENCH_NO_WEBGPU ? [] : ['browser webgpu'])];
  const res = Object.fromEntries(engines.map((e) => [e, Object.fromEntries(Object.keys(TECHNIQUES).map((t) => [t, []]))]));
  const pages = {};
  try {
    pages['browser cpu'] = await openPage(browser, server.url, 'optimize.html?backend=cpu');
    if (engines.includes('browser webgpu')) pages['browser webgpu'] = await openPage(browser, server.url, 'optimize.html?backend=webgpu');
    for (let round = 0; round < RUNS; round++) {
      for (let i = 0; i < engines.length; i++) {
        const e = engines[(i + round) % engines.length];
        for (const t of Object.keys(TECHNIQUES)) {
          try {
            const ms = e === 'native cpu' ? timeNative(t, 10) : await timeBrowser(pages[e], t, e === 'browser webgpu' ? GPU_STEPS : STEPS);
            res[e][t].push(ms);
          } catch (err) {
            console.log(`${e} ${t}: n/a (${String(err.message ?? err).split('\n')[0]})`);
          }
        }
      }
      console.log(`round ${round + 1}/${RUNS} done`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const med = Object.fromEntries(Object.entries(res).map(([e, r]) => [e, Object.fromEntries(Object.entries(r).map(([t, v]) => [t, v.length ? median(v) : null]))]));
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(OUT, JSON.stringify({ runs: RUNS, raw: res, median: med }, null, 1));
  console.log('\nMobileNetV2 at 224x224: iterations per second (median ms per step in brackets)');
  console.log(['technique', ...engines].map((s) => s.padEnd(22)).join(''));
  for (const t of Object.keys(TECHNIQUES)) {
    console.log([t, ...engines.map((e) => (med[e][t] ? `${(1000 / med[e][t]).toFixed(2)} (${med[e][t].toFixed(0)} ms)` : 'n/a'))].map((s) => s.padEnd(22)).join(''));
  }
  const ratio = (a, b, t) => (med[a][t] && med[b][t] ? (med[b][t] / med[a][t]).toFixed(2) : 'n/a');
  console.log(`\nbrowser cpu / native cpu speed: ${Object.keys(TECHNIQUES).map((t) => `${t} ${ratio('browser cpu', 'native cpu', t)}`).join(', ')}`);
  if (med['browser webgpu']) console.log(`webgpu (SwiftShader) / browser cpu speed: ${Object.keys(TECHNIQUES).map((t) => `${t} ${ratio('browser webgpu', 'browser cpu', t)}`).join(', ')}`);
  console.log(`raw numbers: ${OUT}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
