// npm run bench:attribution: attribution speed in ONE headless Chromium, ConvLens (CPU = burn-flex and
// the fused path; WebGPU = SwiftShader here, a CPU emulation) against TensorFlow.js 4.22 (cpu, webgl,
// wasm; its webgpu backend crashed SwiftShader's Chromium on the occlusion batches, so it is left out)
// and ConvNetJS 0.3.0, engines alternating round-robin (BENCH_RUNS rounds, medians):
//   gradient-mnist   d score / d input for one image on the MNIST net (the issue's goal: < 5 ms on the CPU),
//                    as the page sees it; ConvLens also inside its worker (no page<->worker message);
//   gradient-tiny    the same on Tiny VGG (64x64x3);
//   ig-tiny          integrated gradients, 50 steps, on Tiny VGG;
//   occlusion-tiny   occlusion of a 64x64 image, 8x8 patch, stride 2 (841 positions) on Tiny VGG, every
//                    position's probability read back (the goal: < 1 s). ConvNetJS cannot load Tiny VGG; it
//                    runs the same architecture with random weights, timed on 60 positions and scaled to 841.
//   ig-mobilenet     integrated gradients, 50 steps, on MobileNetV2 at 224x224 (the ONNX fixture:
//                    npm run onnx-fixtures), ConvLens only (nothing else in the browser has the gradient).
// ConvLens's CPU runs with 2 workers (the pool: samples and positions shared among engines, bit for bit
// one engine's result) and with 1, side by side.
// Tiny VGG comes from $CONVLENS_DATA_DIR/tiny-vgg (npm run download-data), else ../shared/data.
// Raw numbers: target/bench-attribution.json. Env: BENCH_RUNS (default 3), BENCH_SKIP_BUILD=1.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { build, ROOT, targetDir } from './build.mjs';
import { convnetjsDefs, installConvnetjs, installHarness, installTfjs, median, readSpec, TFJS, TFJS_SCRIPTS } from './bench.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';
import { dataDir } from './serve.mjs';
import { ONNX_DIR } from './onnx-fixtures.mjs';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const OUT = join(targetDir(), 'bench-attribution.json');
process.env.CONVLENS_DATA_DIR ??= dataDir();
const DATA = process.env.CONVLENS_DATA_DIR;
if (!existsSync(join(DATA, 'tiny-vgg/model.json'))) throw new Error(`no Tiny VGG in ${DATA}/tiny-vgg: run npm run download-data`);
const MNIST = readSpec('www/nets/mnist.json');
const TINY = [{ type: 'input', w: 64, h: 64, d: 3 }, { type: 'conv', size: 3, filters: 10, stride: 1, pad: 0, activation: 'relu' },
  { type: 'conv', size: 3, filters: 10, stride: 1, pad: 0, activation: 'relu' }, { type: 'pool', size: 2, stride: 2 },
  { type: 'conv', size: 3, filters: 10, stride: 1, pad: 0, activation: 'relu' }, { type: 'conv', size: 3, filters: 10, stride: 1, pad: 0, activation: 'relu' },
  { type: 'pool', size: 2, stride: 2 }, { type: 'fc', units: 10 }, { type: 'softmax' }];
const OCC = { window: 8, stride: 2, fill: 'gray', class: 5 };
const WORKLOADS = ['gradient-mnist', 'gradient-tiny', 'ig-tiny', 'occlusion-tiny', 'ig-mobilenet'];
const MOBILENET = join(ONNX_DIR, 'mobilenet_v2.onnx');
const ALL_ENGINES = [
  { name: 'ConvLens cpu', kind: 'convlens', backend: 'cpu', workers: 2 },
  { name: 'ConvLens cpu, 1 worker', kind: 'convlens', backend: 'cpu', workers: 1, only: ['ig-tiny', 'occlusion-tiny', 'ig-mobilenet'] },
  // SwiftShader's WebGPU emulation takes minutes for the batched workloads: only the single maps here.
  { name: 'ConvLens webgpu', kind: 'convlens', backend: 'webgpu', only: ['gradient-mnist', 'gradient-tiny'] },
  { name: 'TF.js wasm', kind: 'tfjs', backend: 'wasm' },
  { name: 'TF.js cpu', kind: 'tfjs', backend: 'cpu' },
  { name: 'TF.js webgl', kind: 'tfjs', backend: 'webgl' },
  { name: 'ConvNetJS 0.3.0', kind: 'convnetjs' },
];
// BENCH_ENGINES=cpu (a comma-separated list of parts of names) narrows a run.
const ENGINES = ALL_ENGINES.filter((e) => !process.env.BENCH_ENGINES || process.env.BENCH_ENGINES.split(',').some((p) => e.name.includes(p)));

// ---- in-page code (serialized; must not close over anything) ----

/** window.__attr for ConvLens: the attribution page's own client. */
function installConvlensAttr() {
  const { client } = window.convlens;
  const onehot = { kind: 'class', index: 5 };
  window.__attr = {
    async setup({ mnistSpec }) {
      const w = new Uint8Array(await fetch('www/nets/mnist.safetensors').then((r) => r.arrayBuffer()));
      await client.load(mnistSpec, w, 0);
      window.__attr.mnistX = await client.example('test', 0).catch(() => Float32Array.from({ length: 576 }, (_, i) => (i % 7) / 7));
    },
    async useTiny() { if (window.convlens.client.summary?.name !== window.__attr.tinyName) await window.convlens.selectNet('tiny-vgg'); window.__attr.tinyName = window.convlens.client.summary.name; },
    async useMnist({ mnistSpec }) { await window.__attr.setup({ mnistSpec }); },
    'gradient-mnist': () => client.attribute(window.__attr.mnistX.slice(), { kind: 'class', index: 3 }, { method: 'gradient' }),
    'gradient-tiny': () => client.attribute(window.convlens.state.input.slice(), onehot, { method: 'gradient' }),
    'ig-tiny': () => client.attribute(window.convlens.state.input.slice(), onehot, { method: 'integrated-gradients', steps: 50 }),
    'occlusion-tiny': ({ occ }) => client.occlude(window.convlens.state.input.slice(), occ),
    async useMobilenet({ mobilenetUrl }) {
      if (window.__attr.mobileX && client.summary?.name === window.__attr.mobileName) return;
      const bytes = new Uint8Array(await fetch(mobilenetUrl).then((r) => r.arrayBuffer()));
      const model = await client.request('importModel', { files: [{ name: 'mobilenet_v2.onnx', bytes }] });
      await client.load(model.spec, model.weights, 0);
      window.__attr.mobileName = client.summary.name;
      window.__attr.mobileX = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => ((i * 37) % 101) / 100);
    },
    'ig-mobilenet': () => client.attribute(window.__attr.mobileX.slice(), onehot, { method: 'integrated-gradients', steps: 50 }),
    inWorker: (x) => client.request('benchAttribute', { input: x.slice(), objective: { kind: 'class', index: 3 }, settings: { method: 'gradient' }, n: 200 }),
  };
}

/** window.__attr for TF.js (after installTfjs): the MNIST net from its spec, Tiny VGG from model.json. */
function installTfjsAttr() {
  const tf = window.tf;
  const e = window.__engine;
  const logitModel = (model) => tf.model({ inputs: model.inputs, outputs: model.layers[model.layers.length - 2].output });
  // One class's score, by a one-hot mask (tf.gather's gradient needs UnsortedSegmentSum, missing in the wasm backend).
  const pick = (y, k) => y.mul(tf.oneHot([k], y.shape[1]).cast('float32')).sum();
  window.__attr = {
    async setup({ mnistLayers, tinyUrl }) {
      await e.load({ layers: mnistLayers, sgd: { learningRate: 0.01, momentum: 0.9, l2: 0 } });
      window.__attr.mnist = e.model;
      window.__attr.mnistLogits = logitModel(e.model);
      window.__attr.tiny = await tf.loadLayersModel(tinyUrl);
      // Tiny VGG's last layer is Dense with a softmax: logits by a copy of it without the activation.
      const t = window.__attr.tiny;
      const dense = t.layers[t.layers.length - 1];
      const logits = tf.layers.dense({ units: 10, activation: 'linear', weights: dense.getWeights() }).apply(t.layers[t.layers.length - 2].output);
      window.__attr.tinyLogits = tf.model({ inputs: t.inputs, outputs: logits });
      window.__attr.mnistX = tf.randomUniform([1, 24, 24, 1]);
      window.__attr.tinyX = tf.randomUniform([1, 64, 64, 3]);
    },
    async 'gradient-mnist'() {
      const g = tf.grad((x) => pick(window.__attr.mnistLogits.predict(x), 3))(window.__attr.mnistX);
      await g.data();
      g.dispose();
    },
    async 'gradient-tiny'() {
      const g = tf.grad((x) => pick(window.__attr.tinyLogits.predict(x), 5))(window.__attr.tinyX);
      await g.data();
      g.dispose();
    },
    async 'ig-tiny'() {
      // 50 points on the path from black, one batch, gradients summed (the rule's weights do not change the cost).
      const x = window.__attr.tinyX;
      const alphas = tf.linspace(0, 1, 50).reshape([50, 1, 1, 1]);
      const path = tf.mul(alphas, x);
      const g = tf.grad((p) => pick(window.__attr.tinyLogits.predict(p), 5))(path);
      const ig = tf.tidy(() => g.mean(0).mul(x));
      await ig.data();
      tf.dispose([alphas, path, g, ig]);
    },
    async 'occlusion-tiny'({ occ }) {
      const x = await window.__attr.tinyX.data();
      const n = Math.ceil((64 - occ.window) / occ.stride) + 1;
      const out = [];
      const batch = 64;
      for (let start = 0; start < n * n; start += batch) {
        const m = Math.min(batch, n * n - start);
        const buf = new Float32Array(m * 64 * 64 * 3);
        for (let b = 0; b < m; b++) {
          buf.set(x, b * 64 * 64 * 3);
          const y0 = Math.floor((start + b) / n) * occ.stride;
          const x0 = ((start + b) % n) * occ.stride;
          for (let y = y0; y < Math.min(64, y0 + occ.window); y++) {
            for (let xx = x0; xx < Math.min(64, x0 + occ.window); xx++) buf.fill(0.5, b * 12288 + (y * 64 + xx) * 3, b * 12288 + (y * 64 + xx) * 3 + 3);
          }
        }
        const p = tf.tidy(() => window.__attr.tiny.predict(tf.tensor4d(buf, [m, 64, 64, 3])).gather([occ.class], 1));
        out.push(...(await p.data()));
        p.dispose();
      }
      return out.length;
    },
  };
}

/** window.__attr for ConvNetJS: the MNIST net (random weights) and Tiny VGG's architecture (random weights). */
function installConvnetjsAttr() {
  const c = window.convnetjs;
  const grad = (net, x, k) => {
    net.forward(x, false);
    const L = net.layers;
    const fc = L[L.length - 2]; // the fc layer before ConvNetJS's softmax: the scores
    fc.out_act.dw = new Float64Array(fc.out_act.w.length);
    fc.out_act.dw[k] = 1;
    for (let i = L.length - 2; i > 0; i--) L[i].backward();
    return x.dw;
  };
  window.__attr = {
    async setup({ mnistDefs, tinyDefs }) {
      const make = (defs) => { const n = new c.Net(); n.makeLayers(defs); return n; };
      Object.assign(window.__attr, { mnist: make(mnistDefs), tiny: make(tinyDefs), mx: new c.Vol(24, 24, 1), tx: new c.Vol(64, 64, 3) });
    },
    async 'gradient-mnist'() { grad(window.__attr.mnist, window.__attr.mx, 3); },
    async 'gradient-tiny'() { grad(window.__attr.tiny, window.__attr.tx, 5); },
    async 'ig-tiny'() { for (let i = 0; i < 50; i++) grad(window.__attr.tiny, window.__attr.tx, 5); },
    async 'occlusion-tiny'({ occ }) {
      // 60 positions, scaled to 841 by the caller.
      const x = window.__attr.tx;
      const orig = Float64Array.from(x.w);
      for (let i = 0; i < 60; i++) {
        x.w.set(orig);
        for (let y = 0; y < occ.window; y++) for (let xx = 0; xx < occ.window; xx++) for (let d = 0; d < 3; d++) x.set(xx + 2 * i % 56, y, d, 0.5);
        window.__attr.tiny.forward(x, false);
      }
      return 60;
    },
  };
}

async function timeIt(page, workload, args) {
  return page.evaluate(async ([w, args]) => {
    const fn = window.__attr[w];
    let t = performance.now();
    await fn(args); // warm up
    const first = performance.now() - t;
    if (first > 2000) { // slow engines: one more call is the sample (rounds give the median)
      t = performance.now();
      await fn(args);
      return performance.now() - t;
    }
    const samples = [];
    const start = performance.now();
    while (samples.length < 3 || (samples.length < 30 && performance.now() - start < 1500)) {
      const t = performance.now();
      await fn(args);
      samples.push(performance.now() - t);
    }
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)];
  }, [workload, args]);
}

async function main() {
  const t0 = performance.now();
  if (!process.env.BENCH_SKIP_BUILD) await build();
  const server = await serveRoot();
  const browser = await launch({ webgpu: true });
  const pages = new Map();
  const args = { occ: OCC };
  const setup = { mobilenetUrl: `/${relative(ROOT, MOBILENET)}`, mnistSpec: MNIST.text, mnistLayers: MNIST.layers, mnistDefs: convnetjsDefs(MNIST.layers), tinyDefs: convnetjsDefs(TINY), tinyUrl: '/data/tiny-vgg/model.json' };
  const res = {};
  try {
    for (const engine of ENGINES) {
      try {
        let page;
        if (engine.kind === 'convlens') {
          // Opens on MNIST (the page computes every map of its first image before it is ready: quick on MNIST).
          page = await openPage(browser, server.url, `attribution.html?backend=${engine.backend}&net=mnist${engine.workers ? `&workers=${engine.workers}` : ''}`);
          await page.evaluate(`(${installConvlensAttr})()`);
        } else {
          page = await browser.newPage();
          await page.route('**/__bench__.html', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }));
          await page.goto(`${server.url}__bench__.html`);
          if (engine.kind === 'convnetjs') {
            await page.addScriptTag({ url: '/node_modules/convnetjs/build/convnet.js' });
            await page.evaluate(`(${installConvnetjs})()`);
            await page.evaluate(`(${installConvnetjsAttr})()`);
            await page.evaluate((s) => window.__attr.setup(s), setup);
          } else {
            for (const url of [`${TFJS}/tfjs/dist/tf.min.js`, ...TFJS_SCRIPTS[engine.backend]]) await page.addScriptTag({ url });
            await page.evaluate(installTfjs, { backend: engine.backend, wasmPath: `${TFJS}/tfjs-backend-wasm/dist/` });
            await page.evaluate(`(${installTfjsAttr})()`);
            await page.evaluate((s) => window.__attr.setup(s), setup);
          }
        }
        await page.evaluate(`(${installHarness})()`);
        pages.set(engine.name, page);
        res[engine.name] = Object.fromEntries(WORKLOADS.map((w) => [w, []]));
      } catch (e) {
        console.log(`${engine.name}: skipped (${e.message.split('\n')[0]})`);
      }
    }
    for (let round = 0; round < RUNS; round++) {
      const order = [...pages.keys()];
      for (let i = 0; i < order.length; i++) {
        const name = order[(i + round) % order.length];
        const page = pages.get(name);
        const engine = ENGINES.find((e) => e.name === name);
        for (const w of WORKLOADS) {
          if ((engine.only && !engine.only.includes(w)) || (w === 'ig-mobilenet' && (engine.kind !== 'convlens' || engine.backend !== 'cpu' || !existsSync(MOBILENET)))) {
            res[name][w] = null;
            continue;
          }
          try {
            if (name.startsWith('ConvLens')) {
              await page.evaluate(([w, s]) => (w === 'gradient-mnist' ? window.__attr.useMnist(s) : w === 'ig-mobilenet' ? window.__attr.useMobilenet(s) : window.__attr.useTiny()), [w, setup]);
            }
            let ms = await timeIt(page, w, args);
            if (name.startsWith('ConvNetJS') && w === 'occlusion-tiny') ms *= 841 / 60;
            res[name][w].push(ms);
          } catch (e) {
            res[name][w] = null;
            console.log(`${name} ${w}: n/a (${e.message.split('\n')[0]})`);
          }
        }
      }
      process.stdout.write(`round ${round + 1}/${RUNS} done\n`);
    }
    const cpu = pages.get('ConvLens cpu');
    if (cpu) {
      await cpu.evaluate((s) => window.__attr.useMnist(s), setup);
      res['ConvLens cpu'].inWorkerMnist = await cpu.evaluate(() => window.__attr.inWorker(window.__attr.mnistX));
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const med = Object.fromEntries(Object.entries(res).map(([n, r]) => [n, Object.fromEntries(WORKLOADS.map((w) => [w, r[w] ? median(r[w]) : null]))]));
  const base = med['ConvLens cpu'];
  console.log(`\nAttribution, median ms over ${RUNS} rounds (ratio: this engine's time / ConvLens cpu's)`);
  console.log(`| engine | ${WORKLOADS.join(' | ')} |\n|---|${WORKLOADS.map(() => '---').join('|')}|`);
  for (const [name, m] of Object.entries(med)) {
    console.log(`| ${name} | ${WORKLOADS.map((w) => (m[w] == null ? 'n/a' : `${m[w] < 10 ? m[w].toFixed(2) : m[w].toFixed(0)}${name === 'ConvLens cpu' || !base?.[w] ? '' : ` (${(m[w] / base[w]).toFixed(1)}x)`}`)).join(' | ')} |`);
  }
  if (res['ConvLens cpu']?.inWorkerMnist) console.log(`\nConvLens cpu gradient-mnist inside its worker (no page<->worker message): ${res['ConvLens cpu'].inWorkerMnist.toFixed(3)} ms`);
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(OUT, `${JSON.stringify({ runs: RUNS, raw: res, median: med, seconds: (performance.now() - t0) / 1000 }, null, 1)}\n`);
  console.log(`raw numbers: ${OUT}`);
}

main().catch((e) => {
  console.error(`bench-attribution failed: ${e.stack ?? e.message}`);
  process.exit(1);
});
