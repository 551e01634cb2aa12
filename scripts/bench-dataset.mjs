// npm run bench:dataset: the dataset views' speed, side by side in one run, in headless Chromium
// (the engine in its worker, CPU backend; WebGPU on SwiftShader here, a CPU emulation, so not a
// GPU figure) and natively (the convlens CLI):
// - t-SNE of 2,000 MNIST test digits (their 24x24 pixels, PCA to 50 dimensions), 1,000 iterations:
//   ConvLens's Barnes-Hut (auto) and exact, against tsne-js 1.0.3 (exact, pure JS; its setup and a
//   few iterations timed, extrapolated to 1,000: a run would take hours) and umap-js 1.4.0
//   (the speed a user could have instead) on the same 50-dimensional points, in the same page;
//   and 10,000 training digits (Barnes-Hut);
// - maximally activating patches of the MNIST net's conv2 over the 60,000 training digits and of the
//   CIFAR-10 net's last conv layer over its 5,000 images (4,000 train + 1,000 test), on the page's
//   worker pool and on one engine;
// - the 2-D loss surface of the MNIST net, 51x51 on 256 test images, and its first 11x11.
// Medians of BENCH_RUNS (default 3) for the short ones, one run for the long ones. Needs mnist/ and
// cifar10/ in $CONVLENS_DATA_DIR (else ../shared/data). Raw numbers: target/bench-dataset.json.
// Env: BENCH_RUNS, BENCH_NO_WEBGPU=1, BENCH_SKIP_BUILD=1, BENCH_TSNEJS_ITERS (default 5).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { build, buildCli, targetDir } from './build.mjs';
import { median } from './bench.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';
import { dataDir } from './serve.mjs';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const TSNEJS_ITERS = Math.max(2, Number(process.env.BENCH_TSNEJS_ITERS ?? 5));
const OUT = join(targetDir(), 'bench-dataset.json');
process.env.CONVLENS_DATA_DIR ??= dataDir();
const DATA = process.env.CONVLENS_DATA_DIR;
for (const f of ['mnist/mnist_batch_19.png', 'cifar10/cifar10_batch_50.png']) {
  if (!existsSync(join(DATA, f))) throw new Error(`${join(DATA, f)} is missing: run npm run download-data or set CONVLENS_DATA_DIR`);
}

/** Seconds of a dataset view run to its end in the page (and its final state's summary). */
async function timeView(page, kind, settings, workers = undefined) {
  return page.evaluate(async ({ kind, settings, workers }) => {
    const { client } = window.convlens;
    const t0 = performance.now();
    let first = null;
    let frames = 0;
    let last = t0;
    let gap = 0;
    const st = await client.datasetView(kind, settings, {
      budgetMs: 100,
      ...(workers ? { workers } : {}),
      onProgress: (s) => {
        const now = performance.now();
        if (kind === 'tsne' && s.tsne.stage === 'optimizing') {
          frames++;
          gap = Math.max(gap, now - last);
        }
        last = now;
        if (kind === 'landscape' && first === null && s.landscape.coarseDone) first = (now - t0) / 1000;
      },
    });
    const secs = (performance.now() - t0) / 1000;
    return { secs, first, frames, maxFrameMs: gap, kl: st.tsne?.kl.at(-1), method: st.tsne?.method, total: st.total, workers: st.workers ?? 1 };
  }, { kind, settings, workers });
}

/** The 2,000 digits' 50 PCA dimensions (the engine's PCA), then tsne-js and umap-js on them in the page. */
async function timePeers(page) {
  return page.evaluate(async ({ iters }) => {
    const { client } = window.convlens;
    const n = 2000;
    const codes = new Float32Array(n * 576);
    for (let i = 0; i < n; i++) codes.set(await client.example('test', i), i * 576);
    const z = await client.request('pca', { codes, n, dim: 576, k: 50 });
    const rows = Array.from({ length: n }, (_, i) => Array.from(z.subarray(i * 50, (i + 1) * 50)));
    const load = (src) => new Promise((ok, fail) => {
      const s = document.createElement('script');
      s.src = src;
      s.onload = ok;
      s.onerror = () => fail(new Error(`cannot load ${src}`));
      document.head.append(s);
    });
    await load('/node_modules/tsne-js/build/tsne.min.js');
    await load('/node_modules/umap-js/lib/umap-js.min.js');
    // tsne-js: its setup (the distances and P) until its first iteration, then `iters` iterations
    // (timed by its progressIter events; stopped there: it always runs at least 101, and an
    // iteration takes seconds).
    const model = new window.TSNE({ dim: 2, perplexity: 30, earlyExaggeration: 12, learningRate: 50, nIter: 1000, metric: 'euclidean' });
    const times = [];
    const t00 = performance.now();
    model.init({ data: rows, type: 'dense' });
    model.on('progressIter', () => {
      times.push(performance.now());
      if (times.length > iters) throw new Error('enough');
    });
    try { model.run(); } catch (e) { if (e.message !== 'enough') throw e; }
    const setup = (times[0] - t00) / 1000;
    const perIter = (times[times.length - 1] - times[0]) / 1000 / (times.length - 1);
    const a = { setup };
    const t0 = performance.now();
    // A seeded generator (mulberry32): umap-js draws distinct random indices in loops.
    let seed = 1;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    new window.UMAP.UMAP({ nComponents: 2, nNeighbors: 15, random }).fit(rows);
    const umap = (performance.now() - t0) / 1000;
    return { tsnejs: { setup: a.setup, perIter, iterations: times.length - 1, estimate1000: a.setup + 1000 * perIter }, umap };
  }, { iters: TSNEJS_ITERS });
}

function cli(args) {
  const bin = join(targetDir(), 'release', 'convlens');
  const t0 = performance.now();
  const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env } });
  if (r.status !== 0) throw new Error(`convlens ${args.join(' ')}: ${r.stderr}`);
  const m = r.stdout.match(/in ([\d.]+) s/) ?? r.stdout.match(/, ([\d.]+) s;/);
  return { secs: m ? Number(m[1]) : (performance.now() - t0) / 1000, wall: (performance.now() - t0) / 1000, out: r.stdout.trim() };
}

async function browserFigures(browser, server, backend, full) {
  const out = {};
  const page = await openPage(browser, server.url, `dataset.html?backend=${backend}&net=mnist`);
  try {
    if ((await page.evaluate(() => window.convlens.state.backend)) !== backend) return null;
    const rep = (f) => (full ? RUNS : 1);
    const many = async (n, f) => {
      const rs = [];
      for (let i = 0; i < n; i++) rs.push(await f());
      return { ...rs[0], secs: median(rs.map((r) => r.secs)), runs: rs.map((r) => r.secs) };
    };
    out.tsne2000 = await many(rep(), () => timeView(page, 'tsne', { layer: 0, points: 2000 }));
    console.log(`  ${backend}: t-SNE 2,000 (${out.tsne2000.method}) ${out.tsne2000.secs.toFixed(2)} s`);
    if (full) {
      out.tsne2000exact = await timeView(page, 'tsne', { layer: 0, points: 2000, method: 'exact' });
      console.log(`  ${backend}: t-SNE 2,000 exact ${out.tsne2000exact.secs.toFixed(2)} s`);
      out.tsne10000 = await timeView(page, 'tsne', { layer: 0, points: 10000, split: 'train' });
      console.log(`  ${backend}: t-SNE 10,000 ${out.tsne10000.secs.toFixed(2)} s`);
      out.peers = await timePeers(page);
      console.log(`  tsne-js: ${out.peers.tsnejs.perIter.toFixed(3)} s/iteration, ~${out.peers.tsnejs.estimate1000.toFixed(0)} s for 1,000; umap-js ${out.peers.umap.toFixed(2)} s`);
    }
    // Patches: on the CPU the page's pool (one engine per core; the helpers' first search also
    // loads the dataset there, a round the median leaves out), and one engine alone.
    const mnistPatches = { layer: 3, split: 'train', images: 60000 };
    out.patchesMnist = await many(rep(), () => timeView(page, 'patches', mnistPatches));
    console.log(`  ${backend}: patches, 60,000 digits ${out.patchesMnist.secs.toFixed(2)} s on ${out.patchesMnist.workers} workers (rounds ${out.patchesMnist.runs.map((r) => r.toFixed(2)).join(', ')})`);
    if (full && out.patchesMnist.workers > 1) {
      out.patchesMnist1 = await many(rep(), () => timeView(page, 'patches', mnistPatches, 1));
      console.log(`  ${backend}: patches, 60,000 digits on 1 worker ${out.patchesMnist1.secs.toFixed(2)} s`);
    }
    // The page's default: one engine per core on the CPU (the worker pool); and one engine alone.
    const plane = { kind: 'plane', images: 256, points: full ? 51 : 11 };
    out.landscape = await timeView(page, 'landscape', plane);
    console.log(`  ${backend}: loss surface ${full ? '51x51' : '11x11'} on ${out.landscape.workers} workers ${out.landscape.secs.toFixed(1)} s (11x11 first in ${out.landscape.first?.toFixed(2)} s)`);
    if (full && out.landscape.workers > 1) {
      out.landscape1 = await timeView(page, 'landscape', plane, 1);
      console.log(`  ${backend}: loss surface 51x51 on 1 worker ${out.landscape1.secs.toFixed(1)} s (11x11 first in ${out.landscape1.first?.toFixed(2)} s)`);
    }
    await page.evaluate(() => window.convlens.selectNet('cifar10'));
    const cifar = async (workers) => {
      const a = await timeView(page, 'patches', { split: 'train', images: 5000 }, workers);
      const b = await timeView(page, 'patches', { split: 'test', images: 5000 }, workers);
      return { secs: a.secs + b.secs, total: a.total + b.total, workers: a.workers };
    };
    out.patchesCifar = await many(rep(), () => cifar());
    console.log(`  ${backend}: patches, 5,000 CIFAR-10 images ${out.patchesCifar.secs.toFixed(2)} s on ${out.patchesCifar.workers} workers`);
    if (full && out.patchesCifar.workers > 1) {
      out.patchesCifar1 = await many(rep(), () => cifar(1));
      console.log(`  ${backend}: patches, 5,000 CIFAR-10 images on 1 worker ${out.patchesCifar1.secs.toFixed(2)} s`);
    }
  } finally {
    await page.close();
  }
  return out;
}

if (process.env.BENCH_SKIP_BUILD !== '1') {
  await build();
  await buildCli();
}
const server = await serveRoot();
const results = { date: new Date().toISOString(), runs: RUNS };
try {
  const browser = await launch({ webgpu: process.env.BENCH_NO_WEBGPU !== '1' });
  try {
    console.log('browser, CPU backend:');
    results.cpu = await browserFigures(browser, server, 'cpu', true);
    if (process.env.BENCH_NO_WEBGPU !== '1') {
      console.log('browser, WebGPU backend (SwiftShader):');
      results.webgpu = await browserFigures(browser, server, 'webgpu', false);
    }
  } finally {
    await browser.close();
  }
} finally {
  server.close?.();
}
const mnist = ['--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors', '--dataset', 'mnist', '--data', DATA];
const cifar = ['--model', 'www/nets/cifar10.json', '--weights', 'www/nets/cifar10.safetensors', '--dataset', 'cifar10', '--data', DATA];
console.log('native CLI:');
results.native = {
  tsne2000: cli(['tsne', ...mnist, '--layer', '0', '--points', '2000', '--out', '/tmp/bench-tsne']),
  tsne10000: cli(['tsne', ...mnist, '--layer', '0', '--points', '10000', '--set', 'split=train', '--out', '/tmp/bench-tsne10k']),
  patchesMnist: cli(['patches', ...mnist, '--layer', '3', '--out', '/tmp/bench-patches']),
  patchesCifar: cli(['patches', ...cifar, '--images', '4000', '--out', '/tmp/bench-patches-c']),
  landscape: cli(['landscape', ...mnist, '--kind', 'plane', '--out', '/tmp/bench-landscape']),
};
for (const [k, v] of Object.entries(results.native)) console.log(`  ${k}: ${v.secs.toFixed(2)} s`);
const c = results.cpu;
console.log('\nsummary (seconds; browser CPU backend unless said):');
const rows = [
  ['t-SNE 2,000 pts, 1,000 it (target ≤ 5)', c.tsne2000.secs, results.webgpu?.tsne2000?.secs, results.native.tsne2000.secs],
  ['t-SNE 2,000 exact', c.tsne2000exact.secs, null, null],
  ['t-SNE 10,000 pts (target ≤ 30)', c.tsne10000.secs, null, results.native.tsne10000.secs],
  ['tsne-js, 2,000 pts, 1,000 it (estimated)', c.peers.tsnejs.estimate1000, null, null],
  ['umap-js, 2,000 pts', c.peers.umap, null, null],
  [`patches, 60,000 MNIST (target ≤ 20), ${c.patchesMnist.workers} workers`, c.patchesMnist.secs, results.webgpu?.patchesMnist?.secs, results.native.patchesMnist.secs],
  ...(c.patchesMnist1 ? [['patches, 60,000 MNIST, 1 worker', c.patchesMnist1.secs, null, null]] : []),
  [`patches, 5,000 CIFAR-10 (target ≤ 5), ${c.patchesCifar.workers} workers`, c.patchesCifar.secs, results.webgpu?.patchesCifar?.secs, null],
  ...(c.patchesCifar1 ? [['patches, 5,000 CIFAR-10, 1 worker', c.patchesCifar1.secs, null, null]] : []),
  [`loss surface 51x51 (target ≤ 60), ${c.landscape.workers} workers`, c.landscape.secs, null, results.native.landscape.secs],
  [`loss surface first 11x11 (target ≤ 5), ${c.landscape.workers} workers`, c.landscape.first, results.webgpu?.landscape?.first, null],
  ...(c.landscape1 ? [['loss surface 51x51, 1 worker', c.landscape1.secs, null, null], ['loss surface first 11x11, 1 worker', c.landscape1.first, null, null]] : []),
];
console.log('| | browser CPU | browser WebGPU (SwiftShader) | native CLI |');
console.log('|---|---|---|---|');
for (const [name, a, b, n] of rows) console.log(`| ${name} | ${a?.toFixed(2) ?? '–'} | ${b?.toFixed(2) ?? '–'} | ${n?.toFixed(2) ?? '–'} |`);
for (const k of ['patchesMnist', 'patchesCifar', 'landscape']) {
  if (c[`${k}1`]) console.log(`${k}: ${c[k].workers} workers ${(c[`${k}1`].secs / c[k].secs).toFixed(2)}x faster than 1`);
}
console.log(`ConvLens t-SNE vs tsne-js: ${(c.peers.tsnejs.estimate1000 / c.tsne2000.secs).toFixed(0)}x faster (Barnes-Hut), `
  + `${(c.peers.tsnejs.estimate1000 / c.tsne2000exact.secs).toFixed(0)}x (exact); umap-js takes ${(c.peers.umap / c.tsne2000.secs).toFixed(2)}x ConvLens's time`);
await mkdir(dirname(OUT), { recursive: true });
await writeFile(OUT, JSON.stringify(results, null, 2));
console.log(`raw numbers: ${OUT}`);
