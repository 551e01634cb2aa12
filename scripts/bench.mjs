// npm run bench: ConvLens (CPU = burn-flex, WebGPU = SwiftShader here, a CPU emulation) against ConvNetJS 0.3.0
// and TensorFlow.js 4.22 (backends cpu, webgl, webgpu, wasm), all in ONE headless Chromium, on two nets:
// the ConvNetJS MNIST net (www/nets/mnist.json) and the ConvNetJS CIFAR-10 net (www/nets/cifar10.json).
// Per net and engine it measures
//   train     training throughput, examples/s: SGD, batch 20, lr 0.001, momentum 0.9, L2 0.001
//             ('ConvLens cpu ×2': on two workers, data-parallel; 'ConvLens cpu': one);
//   forward   one image's class probabilities, read back to JS, ms;
//   readback  one image's forward with every layer's output read back into JS arrays, ms;
//   frame     ConvLens only: the layer view's frame, one image's activations, gradients (of class 0)
//             and weights of every layer read back (the weights only when they changed), ms.
// ConvLens gives each result back (client.release) once the next one is there, as its layer view
// does: the next call writes into that buffer rather than into fresh memory.
// Engines alternate round-robin (BENCH_RUNS rounds, the starting engine rotating) so that the noise of a
// shared machine hits them all alike; the tables quote medians of the rounds, with ratios to ConvNetJS.
// Raw numbers go to target/bench.json (or $BENCH_OUT). Env: BENCH_RUNS (rounds, default 5),
// BENCH_SKIP_BUILD=1 (use the prebuilt www/pkg), BENCH_NETS=mnist,cifar10, BENCH_ENGINES=convlens,tf.js
// (substrings of engine names, case-insensitive; ConvNetJS is always kept as the baseline).
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { build, ROOT, run, targetDir } from './build.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const OUT = resolve(ROOT, process.env.BENCH_OUT ?? join(targetDir(), 'bench.json'));
const CALL_TIMEOUT_MS = 180_000; // one page.evaluate; an engine that exceeds it is dropped
// Same SGD for all engines. ConvNetJS and ConvLens add l2*w to a weight's gradient; Keras' L2 regularizer
// adds l2*sum(w^2) to the loss, so TF.js gets l2/2. Biases are not decayed anywhere.
const SGD = { batchSize: 20, learningRate: 0.001, momentum: 0.9, l2: 0.001 };
// Examples per timed training run (whole batches), forward/readback time budget per round and engine.
const NETS = [
  { key: 'mnist', title: 'MNIST net', file: 'www/nets/mnist.json', trainN: 100 },
  { key: 'cifar10', title: 'CIFAR-10 net', file: 'www/nets/cifar10.json', trainN: 40 },
];
const CALLS = { budgetMs: 300, minSamples: 3, maxSamples: 40 };
const BASE = 'ConvNetJS 0.3.0';
const ENGINES = [
  { name: BASE, kind: 'convnetjs' },
  { name: 'ConvLens cpu', kind: 'convlens', backend: 'cpu', workers: 1 },
  // Data-parallel training on two workers (the same weights as one's): training only.
  { name: 'ConvLens cpu ×2', kind: 'convlens', backend: 'cpu', workers: 2, only: ['train'] },
  { name: 'ConvLens webgpu', kind: 'convlens', backend: 'webgpu' },
  { name: 'TF.js cpu', kind: 'tfjs', backend: 'cpu' },
  { name: 'TF.js webgl', kind: 'tfjs', backend: 'webgl' },
  { name: 'TF.js webgpu', kind: 'tfjs', backend: 'webgpu' },
  { name: 'TF.js wasm', kind: 'tfjs', backend: 'wasm' }, // no Conv2DBackpropFilter kernel: training n/a
];
const METRICS = ['train', 'forward', 'readback', 'frame'];
export const TFJS = '/node_modules/@tensorflow';
export const TFJS_SCRIPTS = {
  cpu: [], webgl: [],
  webgpu: [`${TFJS}/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`],
  wasm: [`${TFJS}/tfjs-backend-wasm/dist/tf-backend-wasm.min.js`],
};

export const median = (xs) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** A spec (www/nets/*.json, ConvNetJS aliases allowed) as plain layers, checked for what the bench supports. */
export function readSpec(file) {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const layers = JSON.parse(text).layers.map((l, i) => {
    const get = (...names) => names.map((n) => l[n]).find((v) => v !== undefined);
    const where = `${file} layer ${i} (${l.type})`;
    switch (l.type) {
      case 'input': return { type: 'input', w: get('width', 'out_sx'), h: get('height', 'out_sy'), d: get('depth', 'out_depth') };
      case 'conv': {
        const size = get('size', 'sx');
        return { type: 'conv', size, filters: l.filters, stride: l.stride ?? 1, pad: l.pad ?? 0, activation: l.activation ?? null };
      }
      case 'pool': {
        if ((l.mode ?? 'max') !== 'max' || (l.pad ?? 0) !== 0) throw new Error(`${where}: the bench supports max pools without pad`);
        const size = get('size', 'sx');
        return { type: 'pool', size, stride: l.stride ?? size };
      }
      case 'fc': return { type: 'fc', units: get('units', 'num_neurons'), activation: l.activation ?? null };
      case 'relu': case 'softmax': return { type: l.type };
      default: throw new Error(`${where}: layer type not supported by the bench`);
    }
  });
  return { text, layers };
}

/** ConvNetJS layer_defs for the spec (its softmax layer brings its own fc). */
export function convnetjsDefs(layers) {
  const defs = [];
  layers.forEach((l, i) => {
    const next = layers[i + 1];
    if (l.type === 'input') defs.push({ type: 'input', out_sx: l.w, out_sy: l.h, out_depth: l.d });
    else if (l.type === 'conv') defs.push({ type: 'conv', sx: l.size, filters: l.filters, stride: l.stride, pad: l.pad, ...(l.activation && { activation: l.activation }) });
    else if (l.type === 'pool') defs.push({ type: 'pool', sx: l.size, stride: l.stride });
    else if (l.type === 'fc' && next?.type === 'softmax' && !l.activation) defs.push({ type: 'softmax', num_classes: l.units });
    else if (l.type === 'fc') defs.push({ type: 'fc', num_neurons: l.units, ...(l.activation && { activation: l.activation }) });
    else if (l.type === 'relu') defs.push({ type: 'relu' });
    else if (l.type === 'softmax' && layers[i - 1]?.type !== 'fc') throw new Error('ConvNetJS needs an fc layer before softmax');
  });
  return defs;
}

// ---- in-page code (serialized with Function.prototype.toString; must not close over anything) ----

/** window.__bench: data and timing helpers, the same in every page. */
export function installHarness() {
  const mulberry32 = (seed) => () => {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  window.__bench = {
    /** Each training measurement repeats its examples for at least this long. */
    trainMs: 600,
    /** Random images in [0,1) and labels, the same in every page for the same arguments. */
    data(n, per, classes, seed) {
      const rand = mulberry32(seed);
      const images = Float32Array.from({ length: n * per }, rand);
      const labels = Uint32Array.from({ length: n }, (_, i) => i % classes);
      return { images, labels, one: images.slice(0, per) }; // `one` owns its buffer (postMessage copies it whole)
    },
    /**
     * Per-call ms of `fn` for about budgetMs (minSamples..maxSamples samples), after one untimed call. Calls
     * faster than 10 ms are timed in groups of ~10 ms (performance.now() is coarsened to 0.1 ms here).
     */
    async timeCalls(fn, { budgetMs, minSamples, maxSamples }) {
      let t = performance.now();
      await fn();
      const est = performance.now() - t;
      const group = Math.min(500, Math.max(1, Math.ceil(10 / Math.max(est, 0.005))));
      const samples = [];
      const start = performance.now();
      while (samples.length < minSamples || (samples.length < maxSamples && performance.now() - start < budgetMs)) {
        t = performance.now();
        for (let i = 0; i < group; i++) await fn();
        samples.push((performance.now() - t) / group);
      }
      return samples;
    },
  };
}

/** window.__engine for ConvNetJS (after convnet.js is loaded). */
export function installConvnetjs() {
  const c = window.convnetjs;
  const e = window.__engine = {
    async load({ defs, sgd }) {
      e.net = new c.Net();
      e.net.makeLayers(defs);
      e.trainer = new c.Trainer(e.net, {
        method: 'sgd', learning_rate: sgd.learningRate, momentum: sgd.momentum, batch_size: sgd.batchSize, l2_decay: sgd.l2,
      });
      const inp = e.net.layers[0];
      e.x = new c.Vol(inp.out_sx, inp.out_sy, inp.out_depth, 0.0);
      return {
        params: e.net.getParamsAndGrads().reduce((n, p) => n + p.params.length, 0),
        pools: e.net.layers.filter((l) => l.layer_type === 'pool').map((l) => [l.out_depth, l.out_sy, l.out_sx]),
      };
    },
    async train(images, labels) {
      const per = e.x.w.length;
      for (let i = 0; i < labels.length; i++) {
        e.x.w.set(images.subarray(i * per, (i + 1) * per));
        e.trainer.train(e.x, labels[i]);
      }
    },
    async forward(input) {
      e.x.w.set(input);
      return e.net.forward(e.x, false).w;
    },
    async readback(input) {
      e.x.w.set(input);
      e.net.forward(e.x, false);
      return e.net.layers.map((l) => l.out_act.w); // already JS arrays
    },
  };
}

/** window.__engine for ConvLens (the page's own EngineClient, window.convlens.client). */
function installConvlens() {
  const { client } = window.convlens;
  const hasForward = typeof client.forward === 'function';
  const hasActivations = typeof client.activations === 'function';
  const probe = (input) => client.probe(input.slice(), { kind: 'class', index: 0 });
  // Gives the previous result back once the next is there (what the layer view does).
  const kept = {};
  const recycled = (kind, call) => async (input) => {
    const r = await call(input);
    if (kept[kind] && client.release) client.release(kept[kind]);
    kept[kind] = r;
    return r;
  };
  const e = window.__engine = {
    notes: [
      ...(hasForward ? [] : ['ConvLens forward: no client.forward() in this build; timed client.probe(input, class 0) instead (forward + backward of every layer, all read back)']),
      ...(hasActivations ? [] : ['ConvLens readback: no client.activations() in this build; timed client.probe(input, class 0) instead']),
    ],
    async load({ specText, sgd }) {
      e.sgd = sgd;
      const s = await client.load(specText, null, 1);
      // Data-parallel training's pool (with ?workers=2), ready before the first timed step.
      if (client.shareTraining) e.workers = 1 + await client.shareTraining();
      return { params: s.params, pools: s.layers.filter((l) => l.type === 'pool').map((l) => l.shape) };
    },
    // Copies, in case the client transfers (detaches) the buffers it is given; microseconds.
    train: (images, labels) => client.train(images.slice(), labels.slice(), e.sgd),
    forward: hasForward ? (input) => client.forward(input.slice()) : probe,
    readback: recycled('readback', hasActivations ? (input) => client.activations(input.slice()) : probe),
    frame: recycled('frame', probe),
  };
}

/** window.__engine for TF.js on `backend` (after tf.min.js and the backend's bundle are loaded). */
export async function installTfjs({ backend, wasmPath }) {
  const tf = window.tf;
  if (backend === 'wasm') tf.wasm.setWasmPaths(wasmPath);
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
  await tf.ready();
  if (tf.getBackend() !== backend) throw new Error(`TF.js runs on '${tf.getBackend()}', not '${backend}'`);
  const notes = [];
  if (backend === 'wasm') {
    const [simd, threads] = await Promise.all(['WASM_HAS_SIMD_SUPPORT', 'WASM_HAS_MULTITHREAD_SUPPORT'].map((f) => tf.env().getAsync(f)));
    notes.push(`TF.js wasm: SIMD ${simd ? 'on' : 'off'}, threads ${threads ? 'on' : 'off (the page is not cross-origin isolated)'}`);
  } else if (backend === 'webgl') {
    const gl = document.createElement('canvas').getContext('webgl2');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    notes.push(`TF.js webgl: WebGL ${tf.env().getNumber('WEBGL_VERSION')} on ${gl ? gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) : '?'}`);
  } else if (backend === 'webgpu') {
    const info = (await navigator.gpu.requestAdapter())?.info;
    notes.push(`WebGPU adapter (TF.js and ConvLens): ${info ? `${info.vendor} ${info.architecture}${info.isFallbackAdapter ? ', fallback adapter' : ''}` : '?'}`);
  }
  const e = window.__engine = {
    notes,
    async load({ layers, sgd }) {
      e.model?.dispose();
      e.sgd = sgd;
      const l2 = () => tf.regularizers.l2({ l2: sgd.l2 / 2 });
      const model = tf.sequential();
      let inputShape = null;
      let flat = false;
      for (const l of layers) {
        const first = inputShape && model.layers.length === 0 ? { inputShape } : {};
        if (l.type === 'input') {
          inputShape = [l.h, l.w, l.d]; // channels last
          e.shape = inputShape;
        } else if (l.type === 'conv') {
          // ConvNetJS/ConvLens pad by `pad` and floor: 'same' when pad = (size-1)/2 and stride 1.
          let padding = 'valid';
          if (l.stride === 1 && 2 * l.pad === l.size - 1) padding = 'same';
          else if (l.pad > 0) model.add(tf.layers.zeroPadding2d({ ...first, padding: l.pad }));
          model.add(tf.layers.conv2d({
            ...(model.layers.length === 0 ? { inputShape } : {}),
            filters: l.filters, kernelSize: l.size, strides: l.stride, padding,
            activation: l.activation ?? 'linear', kernelRegularizer: l2(),
          }));
        } else if (l.type === 'pool') {
          model.add(tf.layers.maxPooling2d({ ...first, poolSize: l.size, strides: l.stride, padding: 'valid' }));
        } else if (l.type === 'fc') {
          if (!flat) model.add(tf.layers.flatten(first));
          flat = true;
          model.add(tf.layers.dense({ units: l.units, activation: l.activation ?? 'linear', kernelRegularizer: l2() }));
          e.classes = l.units;
        } else if (l.type === 'relu') {
          model.add(tf.layers.reLU(first));
        } else if (l.type === 'softmax') {
          model.add(tf.layers.softmax(first));
        }
      }
      model.compile({ optimizer: tf.train.momentum(sgd.learningRate, sgd.momentum), loss: 'categoricalCrossentropy' });
      e.model = model;
      // The same weights, every layer's output as an output.
      e.all = tf.model({ inputs: model.inputs, outputs: model.layers.map((x) => x.output) });
      const chw = (s) => [s[3], s[1], s[2]];
      return {
        params: model.countParams(),
        pools: model.layers.filter((x) => x.getClassName() === 'MaxPooling2D').map((x) => chw(x.outputShape)),
      };
    },
    async train(images, labels) {
      const [h, w, d] = e.shape;
      const per = h * w * d;
      const b = e.sgd.batchSize;
      const onehot = new Float32Array(labels.length * e.classes);
      labels.forEach((y, i) => { onehot[i * e.classes + y] = 1; });
      for (let i = 0; i < labels.length; i += b) {
        const n = Math.min(b, labels.length - i);
        const xs = tf.tensor4d(images.subarray(i * per, (i + n) * per), [n, h, w, d]);
        const ys = tf.tensor2d(onehot.subarray(i * e.classes, (i + n) * e.classes), [n, e.classes]);
        await e.model.trainOnBatch(xs, ys); // resolves after the loss is read back
        xs.dispose();
        ys.dispose();
      }
    },
    async forward(input) {
      const y = tf.tidy(() => e.model.predict(tf.tensor4d(input, [1, ...e.shape])));
      const probs = await y.data();
      y.dispose();
      return probs;
    },
    async readback(input) {
      const ys = tf.tidy(() => e.all.predict(tf.tensor4d(input, [1, ...e.shape])));
      const acts = await Promise.all(ys.map((t) => t.data()));
      tf.dispose(ys);
      return acts;
    },
  };
}

/** Sets up one net in the page's engine; warms every metric up; returns { params, pools, unsupported }. */
async function setupNet({ load, n, per, classes, sgd }) {
  const e = window.__engine;
  const info = await e.load(load);
  window.__data = window.__bench.data(n, per, classes, 12345);
  const { images, labels, one } = window.__data;
  const unsupported = {};
  const warm = { train: () => e.train(images.slice(0, 2 * sgd.batchSize * per), labels.slice(0, 2 * sgd.batchSize)), forward: () => e.forward(one), readback: () => e.readback(one),
    frame: async () => { if (!e.frame) throw new Error('not measured for this engine'); return e.frame(one); } };
  for (const [metric, fn] of Object.entries(warm)) {
    try {
      await fn();
      if (metric !== 'train') await fn();
    } catch (err) {
      unsupported[metric] = String(err?.message ?? err).split('\n')[0];
    }
  }
  // What the calls return: class probabilities (or, for ConvLens's probe fallback, a Probe), layer outputs.
  const check = {};
  if (!unsupported.forward) {
    const r = await e.forward(one);
    const p = r.probs ?? r;
    check.probs = p.length;
    check.probsSum = Array.prototype.reduce.call(p, (a, b) => a + b, 0);
  }
  if (!unsupported.readback) {
    const r = await e.readback(one);
    const acts = Array.isArray(r) ? r : r.layers.map((l) => l.act);
    check.layers = acts.length;
    check.values = acts.reduce((a, x) => a + x.length, 0);
  }
  return { ...info, unsupported, check };
}

/** One round of the given metrics: train -> examples/s; forward/readback -> per-call ms samples. */
async function measureRound({ metrics, calls }) {
  const e = window.__engine;
  const { images, labels, one } = window.__data;
  const out = {};
  for (const metric of metrics) {
    if (metric === 'train') {
      // Repeat the round's examples until at least TRAIN_MS have passed (at least once), so that
      // fast engines are timed over more than a few milliseconds.
      const t0 = performance.now();
      let n = 0;
      do {
        await e.train(images, labels);
        n += labels.length;
      } while (performance.now() - t0 < window.__bench.trainMs);
      out.train = n / ((performance.now() - t0) / 1000);
    } else {
      out[metric] = await window.__bench.timeCalls(() => e[metric](one), calls);
    }
  }
  return out;
}

// ---- driver ----

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, fail) => { timer = setTimeout(() => fail(new Error(`${what}: no answer in ${ms / 1000} s`)), ms); }),
  ]);
}

async function openEngine(browser, server, engine) {
  let page;
  if (engine.kind === 'convlens') {
    page = await openPage(browser, server.url, `?backend=${engine.backend}${engine.workers ? `&workers=${engine.workers}` : ''}`);
    const got = await page.evaluate(() => window.convlens.client.info?.backend);
    if (got !== engine.backend) throw new Error(`the page runs ConvLens on '${got}', not '${engine.backend}'`);
    await page.evaluate(`(${installConvlens})()`);
  } else {
    page = await browser.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[${engine.name}] ${m.text()}`); });
    page.on('pageerror', (e) => console.error(`[${engine.name}] ${e.message}`));
    // An empty page on the server's origin, so that the bundles (and TF.js's .wasm files) load from it.
    await page.route('**/__bench__.html', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }));
    await page.goto(`${server.url}__bench__.html`);
    if (engine.kind === 'convnetjs') {
      await page.addScriptTag({ url: '/node_modules/convnetjs/build/convnet.js' });
      await page.evaluate(`(${installConvnetjs})()`);
    } else {
      for (const url of [`${TFJS}/tfjs/dist/tf.min.js`, ...TFJS_SCRIPTS[engine.backend]]) await page.addScriptTag({ url });
      await page.evaluate(installTfjs, { backend: engine.backend, wasmPath: `${TFJS}/tfjs-backend-wasm/dist/` });
    }
  }
  await page.evaluate(`(${installHarness})()`);
  return page;
}

const fmt = (v, digits) => (v === null || v === undefined ? 'n/a' : v.toFixed(digits));
const ratio = (v, base) => (v == null || base == null ? '' : `${(v / base).toFixed(2)}x`);

function printTable(net, res) {
  const base = res.engines[BASE]?.median ?? {};
  const shape = `${net.input.h}x${net.input.w}x${net.input.d}`;
  const line = (cells) => cells.map(([s, w, left]) => (left ? s.padEnd(w) : s.padStart(w))).join(' ');
  console.log(`\n${net.title} (input ${shape}, ${res.params?.toLocaleString('en-US') ?? '?'} params), medians of ${RUNS} rounds`);
  console.log(line([['engine', 16, true], ['train ex/s', 11], ['vs CNJS', 8], ['forward ms', 11], ['vs CNJS', 8], ['readback ms', 12], ['vs CNJS', 8], ['frame ms', 9]]));
  for (const [name, r] of Object.entries(res.engines)) {
    const m = r.median;
    console.log(line([
      [name, 16, true],
      [fmt(m.train, 1), 11], [ratio(m.train, base.train), 8],
      [fmt(m.forward, m.forward < 10 ? 3 : 1), 11], [ratio(m.forward, base.forward), 8],
      [fmt(m.readback, m.readback < 10 ? 3 : 1), 12], [ratio(m.readback, base.readback), 8],
      [m.frame == null ? '' : fmt(m.frame, 3), 9],
    ]));
  }
}

async function main() {
  if (process.env.BENCH_SKIP_BUILD === '1') console.log('BENCH_SKIP_BUILD=1: using the prebuilt www/pkg');
  else await build();
  if (!existsSync(join(ROOT, 'www', 'pkg', 'convlens_webgpu.js'))) throw new Error('www/pkg is missing: run npm run build');
  if (!existsSync(join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm'))) await run('npm', ['install', '--no-audit', '--no-fund']);

  const pick = (list, env, key) => {
    const want = process.env[env]?.toLowerCase().split(',').map((s) => s.trim()).filter(Boolean);
    return want?.length ? list.filter((x) => x[key] === BASE || want.some((w) => x[key].toLowerCase().includes(w))) : list;
  };
  const nets = pick(NETS, 'BENCH_NETS', 'key');
  const engines = pick(ENGINES, 'BENCH_ENGINES', 'name');
  const t0 = performance.now();
  const report = {
    date: new Date().toISOString(), runs: RUNS, sgd: SGD, calls: CALLS, cpus: (await import('node:os')).cpus().length,
    browser: null, userAgent: null, notes: [], failed: {}, nets: {},
  };
  const note = (s) => { if (!report.notes.includes(s)) report.notes.push(s); };
  note('random inputs in [0,1) and labels i % classes, the same numbers for every engine (layout differs: CHW for ConvLens, HWC for the others)');

  const server = await serveRoot();
  const browser = await launch({ webgpu: true });
  report.browser = browser.version();
  const pages = new Map(); // engine name -> page; an engine that fails is dropped
  const drop = (engine, err) => {
    const msg = String(err?.message ?? err).split('\n')[0];
    console.error(`${engine.name}: ${msg}`);
    report.failed[engine.name] = msg;
    pages.get(engine.name)?.close().catch(() => {});
    pages.delete(engine.name);
  };
  try {
    for (const engine of engines) {
      try {
        const page = await withTimeout(openEngine(browser, server, engine), CALL_TIMEOUT_MS, `${engine.name}: start`);
        pages.set(engine.name, page);
        for (const s of await page.evaluate(() => window.__engine.notes ?? [])) note(s);
        report.userAgent ??= await page.evaluate(() => navigator.userAgent);
      } catch (err) {
        drop(engine, err);
      }
    }
    for (const net of nets) {
      const spec = readSpec(net.file);
      const input = spec.layers[0];
      const classes = spec.layers.filter((l) => l.type === 'fc').at(-1).units;
      const per = input.w * input.h * input.d;
      net.input = input;
      const load = { specText: spec.text, layers: spec.layers, defs: convnetjsDefs(spec.layers), sgd: SGD };
      const res = { title: net.title, spec: net.file, input: [input.d, input.h, input.w], trainExamplesPerRound: net.trainN, params: null, engines: {} };
      report.nets[net.key] = res;
      console.log(`\n${net.title}: setting up and warming up ${pages.size} engines`);
      for (const engine of engines) {
        const page = pages.get(engine.name);
        if (!page) continue;
        try {
          await page.bringToFront();
          const info = await withTimeout(page.evaluate(setupNet, { load, n: net.trainN, per, classes, sgd: SGD }), CALL_TIMEOUT_MS, `${engine.name}: ${net.key} setup`);
          res.engines[engine.name] = { params: info.params, pools: info.pools, unsupported: info.unsupported, check: info.check, train: [], forward: [], readback: [], frame: [], median: {} };
          const c = info.check;
          if (c.probs !== undefined && (c.probs !== classes || Math.abs(c.probsSum - 1) > 1e-3)) {
            throw new Error(`forward returned ${c.probs} values summing to ${c.probsSum}, not ${classes} probabilities`);
          }
          for (const [metric, why] of Object.entries(info.unsupported)) if (metric !== 'frame') console.log(`  ${engine.name}: ${metric} n/a (${why})`);
        } catch (err) {
          drop(engine, err);
        }
      }
      // Same architecture everywhere? (parameter count and pool output shapes, [C, H, W])
      const ref = res.engines['ConvLens cpu'] ?? Object.values(res.engines)[0];
      res.params = ref?.params ?? null;
      for (const [name, r] of Object.entries(res.engines)) {
        if (r.params !== ref.params || JSON.stringify(r.pools) !== JSON.stringify(ref.pools)) {
          const msg = `${net.key}: ${name} has ${r.params} params, pools ${JSON.stringify(r.pools)}; expected ${ref.params}, ${JSON.stringify(ref.pools)}`;
          console.error(`WARNING ${msg}`);
          note(`architecture mismatch: ${msg}`);
        }
      }
      console.log(`  ${res.params} params, pool outputs ${JSON.stringify(ref?.pools)} in every engine; readback: ${Object.entries(res.engines)
        .filter(([, r]) => r.check.layers).map(([name, r]) => `${name} ${r.check.layers} layers/${r.check.values} values`).join(', ')}`);
      console.log(`  ${RUNS} rounds:`);
      const active = engines.filter((e) => res.engines[e.name]);
      for (let round = 0; round < RUNS; round++) {
        const t = performance.now();
        for (let k = 0; k < active.length; k++) {
          const engine = active[(round + k) % active.length]; // rotate who goes first
          const page = pages.get(engine.name);
          const r = res.engines[engine.name];
          if (!page) continue;
          const metrics = METRICS.filter((m) => !r.unsupported[m] && (!engine.only || engine.only.includes(m)));
          try {
            await page.bringToFront();
            const out = await withTimeout(page.evaluate(measureRound, { metrics, calls: CALLS }), CALL_TIMEOUT_MS, `${engine.name}: ${net.key} round ${round + 1}`);
            for (const m of metrics) r[m].push(out[m]);
          } catch (err) {
            drop(engine, err);
          }
        }
        console.log(`  round ${round + 1}/${RUNS}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
      }
      // ConvLens's forward measured inside its worker: the engine alone, without the message round
      // trip between page and worker that the table's forward column includes (TF.js and ConvNetJS
      // run on the page's thread).
      const cpuPage = pages.get('ConvLens cpu');
      if (cpuPage && res.engines['ConvLens cpu']) {
        res.engines['ConvLens cpu'].forwardInWorker = await cpuPage.evaluate(async () => {
          const { client } = window.convlens;
          return client.request('benchForward', { input: window.__data.one.slice(), n: 300 });
        }).catch(() => null);
      }
      for (const r of Object.values(res.engines)) {
        r.median = {
          train: median(r.train),
          // per-round medians of the per-call times, then their median (each round weighs the same)
          forward: median(r.forward.map(median)),
          readback: median(r.readback.map(median)),
          frame: median(r.frame.map(median)),
        };
      }
    }
  } finally {
    await browser.close().catch(() => {});
    await server.close();
  }

  report.seconds = (performance.now() - t0) / 1000;
  console.log(`\nSGD batch ${SGD.batchSize}, lr ${SGD.learningRate}, momentum ${SGD.momentum}, L2 ${SGD.l2}; ${report.browser}, ${report.cpus} CPUs.`);
  console.log('train: examples/s (vs CNJS = rate / ConvNetJS rate, higher is faster); forward: one image\'s class');
  console.log('probabilities read back to JS; readback: one forward with every layer\'s output read back into JS');
  console.log('arrays (both ms per image, vs CNJS = time / ConvNetJS time, lower is faster); frame: the layer view\'s');
  console.log('activations, gradients and weights of every layer read back (ConvLens only). n/a: not supported.');
  for (const net of nets) if (report.nets[net.key]) printTable(net, report.nets[net.key]);
  for (const [net, res] of Object.entries(report.nets)) {
    for (const [name, r] of Object.entries(res.engines)) {
      for (const [metric, why] of Object.entries(r.unsupported)) if (metric !== 'frame') note(`${net}: ${name} ${metric} n/a: ${why}`);
    }
  }
  for (const [name, why] of Object.entries(report.failed)) note(`${name} failed: ${why}`);
  for (const net of Object.values(report.nets)) {
    const w = net.engines?.['ConvLens cpu']?.forwardInWorker;
    if (w) console.log(`${net.title}: ConvLens cpu forward inside its worker (engine only, no page<->worker message): ${w.toFixed(3)} ms`);
  }
  if (report.notes.length) console.log(`\nnotes:\n${report.notes.map((s) => `- ${s}`).join('\n')}`);
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(OUT, `${JSON.stringify(report, null, 1)}\n`);
  console.log(`\nraw numbers: ${OUT} (whole bench ${report.seconds.toFixed(0)} s)`);
}

// Run as a script (npm run bench), not when bench-attribution.mjs imports the engines from here.
if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  try {
    await main();
  } catch (e) {
    console.error(`\nbench failed: ${e.stack ?? e.message}`);
    process.exit(1);
  }
}
