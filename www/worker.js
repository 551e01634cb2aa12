// The engine's Web Worker: owns the wasm Engines and answers { id, cmd, args, session } requests
// (docs/ENGINE_API.md). One wasm instance serves several sessions (the elements of one page, each
// with its own network, dataset and jobs), each an Engine of its own, by the request's `session`.
import { cachedFetch } from './data-cache.js';

/**
 * The two builds of the engine (scripts/build.mjs): the CPU one for sessions on the CPU, and the
 * WebGPU one (burn-wgpu and cubecl, without the CPU backend) for sessions on WebGPU. Each is loaded
 * when a session first needs it; opening a model's files (importModel) always takes the CPU one.
 */
const BUILDS = { cpu: './pkg/convlens_cpu.js', webgpu: './pkg/convlens_webgpu.js' };
const builds = new Map(); // 'cpu' | 'webgpu' -> Promise<module>
/** The first build loaded: its module functions (schemas, dataset files, merges) serve every session. */
let wasm = null;
/** session key -> Engine */
const engines = new Map();
/** dataset key -> the decoding in progress (see loadDataset) */
const decoding = new Map();
/**
 * How long a pool worker may take to answer a training step's shards before this engine computes
 * them itself (a worker busy with a long job of its own, or one that went away unnoticed).
 */
const SHARD_TIMEOUT_MS = 10_000;
/** session key -> its data-parallel training pool ({close}; see trainPool) */
const pools = new Map();
/** session key -> the port it answers training shards on, as a pool worker (see trainServe) */
const serving = new Map();
/**
 * session key -> the training command running there. A session's other commands wait for it, so
 * that a chunk changes the session's state at once even while it waits for its pool workers (an
 * autosave's export, a probe, see the weights from before it or after it, never a mixture).
 */
const training = new Map();
const TRAINING = new Set(['train', 'trainSteps', 'checkLastStep']);
/** Commands that never wait for a chunk (the pool's own: ending a pool must reach a chunk waiting on it). */
const ANYTIME = new Set(['trainPool', 'trainShardCount', 'trainServe']);

/** Ends a session's training pool and its pool worker's port. */
function closePools(s) {
  pools.get(s)?.close();
  pools.delete(s);
  serving.get(s)?.close();
  serving.delete(s);
}

function loadBuild(kind) {
  if (!builds.has(kind)) {
    const p = (async () => {
      let m;
      try {
        m = await import(BUILDS[kind]);
      } catch (e) {
        throw new Error(`cannot load the wasm engine (www/${BUILDS[kind].slice(2)}); run \`npm run build\` first. (${e.message || e})`);
      }
      await m.default();
      m.installPanicHook((message) => postMessage({ type: 'panic', message: String(message) }));
      wasm ??= m;
      return m;
    })();
    p.catch(() => builds.delete(kind)); // reported to the request; a later one tries again
    builds.set(kind, p);
  }
  return builds.get(kind);
}

/** The build for a session on `backend`: the WebGPU one for the names the engine takes for the GPU, else the CPU one. */
function buildFor(backend) {
  return ['webgpu', 'gpu', 'wgpu', 'vulkan'].includes(backend) ? 'webgpu' : 'cpu';
}

/** Whether this browser gives a WebGPU adapter (as the engine's webgpuAvailable, before any build is loaded). */
async function webgpuAvailable() {
  try {
    return Boolean(await navigator.gpu?.requestAdapter());
  } catch {
    return false;
  }
}

/** A Float32Array that owns its whole buffer (copied if it is a view into something larger). */
function owned(a) {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

/** The buffers of a probe's arrays to transfer (they are views into one or two buffers of their own). */
function probeTransfers(probe) {
  const list = [];
  const take = (a) => {
    if (a instanceof Float32Array) list.push(a.buffer);
  };
  take(probe.probs);
  for (const layer of probe.layers) {
    take(layer.act);
    take(layer.grad);
    for (const w of layer.weights ?? []) {
      take(w.data);
      take(w.grad);
    }
  }
  return [...new Set(list)];
}

/** Fetches a dataset's files (as `datasetFiles` lists them) from `base`: path -> bytes. */
async function fetchDataset(name, base, maxTrainSheets, session) {
  const files = wasm.datasetFiles(name, maxTrainSheets);
  const bytes = {};
  let done = 0;
  await Promise.all(files.map(async (f) => {
    const url = new URL(f, base);
    const res = await cachedFetch(url).catch((e) => { throw new Error(`cannot fetch ${url}: ${e.message}`); });
    if (!res.ok) throw new Error(`cannot fetch ${url}: HTTP ${res.status}`);
    bytes[f] = new Uint8Array(await res.arrayBuffer());
    postMessage({ type: 'progress', session, what: `loading ${name}`, done: ++done, total: files.length });
  }));
  return bytes;
}

function needEngine(session) {
  const engine = engines.get(session);
  if (!engine) throw new Error('engine not initialized (send init first)');
  return engine;
}

// Engines are created one at a time: the first WebGPU engine of this worker sets the GPU device up
// (once per worker; the others share it), and a second set-up begun meanwhile would fail ("a
// server is still registered for device") — several elements of a page start together.
let creating = Promise.resolve();
function createEngine(backend) {
  const next = creating.then(async () => {
    const build = buildFor(backend);
    const engine = await (await loadBuild(build)).Engine.create(backend);
    return { engine, build };
  });
  creating = next.catch(() => {});
  return next;
}

const commands = {
  async init({ backend = 'auto' }, s) {
    const webgpu = await webgpuAvailable();
    const want = backend === 'auto' ? (webgpu ? 'webgpu' : 'cpu') : backend;
    const { engine: next, build } = await createEngine(want);
    closePools(s);
    engines.get(s)?.free?.();
    engines.set(s, next);
    return { result: { backend: next.backend(), webgpu, build } };
  },
  /** Drops a session's engine (an element removed from its page). */
  release(_, s) {
    closePools(s);
    engines.get(s)?.free?.();
    engines.delete(s);
    return { result: engines.size };
  },
  load({ spec, weights = null, seed = 0 }, s) {
    const text = typeof spec === 'string' ? spec : JSON.stringify(spec);
    return { result: needEngine(s).load(text, weights, seed) };
  },
  async probe({ input, objective, held = null, into = null }, s) {
    const data = input instanceof Float32Array ? input : Float32Array.from(input);
    const result = await needEngine(s).probe(data, objective, held ?? undefined, into ? new Float32Array(into) : undefined);
    return { result, transfer: probeTransfers(result) };
  },
  /** A TF.js layers model: model.json's text and its shards ({path: Uint8Array}). */
  loadTfjs({ modelJson, shards }, s) {
    return { result: needEngine(s).loadTfjs(modelJson, shards) };
  },
  /** A technique's settings: keys, labels, defaults, ranges (crates/core/src/settings.rs). */
  settingsSchema({ technique }, s) {
    return { result: wasm.settingsSchema(technique) };
  },
  /** A technique's settings from a page's URL ({key: text}), clamped to the schema's ranges. */
  settingsFromUrl({ technique, given }, s) {
    return { result: wasm.settingsFromUrl(technique, given) };
  },
  async attribute({ input, objective, settings, samples, values }, s) {
    const data = input instanceof Float32Array ? input : Float32Array.from(input);
    const result = await needEngine(s).attribute(data, objective, settings, samples ?? undefined, values ?? undefined);
    const list = [];
    for (const k of ['map', 'abs', 'signed', 'layerMap']) if (result[k]) list.push((result[k] = owned(result[k])).buffer);
    return { result, transfer: list };
  },
  /** Part `part` ([k, n]) of SmoothGrad's or integrated gradients' per-sample gradients (the pool). */
  async attributeSamples({ input, objective, settings, part }, s) {
    const data = input instanceof Float32Array ? input : Float32Array.from(input);
    const result = await needEngine(s).attributeSamples(data, objective, settings, part[0], part[1]);
    return { result, transfer: [(result.grads = owned(result.grads)).buffer, (result.values = owned(result.values)).buffer] };
  },
  /** Counts loads and training chunks (a pool's helpers reload when it changes). */
  weightsVersion(_, s) {
    return { result: needEngine(s).weightsVersion() };
  },
  async occlusionStart({ input, settings, part }, s) {
    const data = input instanceof Float32Array ? input : Float32Array.from(input);
    return { result: await needEngine(s).occlusionStart(data, settings, part ? Uint32Array.from(part) : undefined) };
  },
  /** Part 0's occlusion job takes every part's grid, in order; its state then has the map. */
  occlusionMerge({ id, grid }, s) {
    return { result: needEngine(s).occlusionMerge(id, grid) };
  },
  async occlusionStep({ id, max }, s) {
    return { result: await needEngine(s).occlusionStep(id, max) };
  },
  /** MobileNetV2's op list, safetensors and class names (one per line). */
  loadOpList({ opList, weights, labels = null }, s) {
    return { result: needEngine(s).loadOpList(opList, weights, labels) };
  },
  /** A .tflite file (the published quantized MobileNetV2) and class names. */
  loadTflite({ bytes, labels = null }, s) {
    return { result: needEngine(s).loadTflite(bytes, labels) };
  },
  /** A user's model from the files given together: [{name, bytes}] (crates/core: import.rs). */
  async importModel({ files, mean = null, std = null }) {
    const cpu = await loadBuild('cpu');
    return { result: cpu.importModel(files, mean ? Float64Array.from(mean) : null, std ? Float64Array.from(std) : null) };
  },
  /** An optimization job (docs/ENGINE_API.md): visualize, invert, dream, style, attack, fooling. */
  async optimizeStart({ kind, input = [], settings = {} }, s) {
    const data = input instanceof Float32Array ? input : Float32Array.from(input);
    return { result: await needEngine(s).optimizeStart(kind, data, settings) };
  },
  async optimizeStep({ id, budgetMs = 150 }, s) {
    return { result: await needEngine(s).optimizeStep(id, budgetMs) };
  },
  optimizeCancel({ id }, s) {
    return { result: needEngine(s).optimizeCancel(id) };
  },
  /** A dataset view (docs/ENGINE_API.md): patches, tsne or landscape over the loaded dataset. */
  async datasetStart({ kind, settings = {}, part }, s) {
    return { result: await needEngine(s).datasetStart(kind, settings, part ? Uint32Array.from(part) : undefined) };
  },
  async datasetStep({ id, budgetMs = 100 }, s) {
    return { result: await needEngine(s).datasetStep(id, budgetMs) };
  },
  /** The pictures of patches: a layer's receptive field around units in a split's images. */
  patchCrops({ split, layer, images, ys, xs }, s) {
    const result = needEngine(s).patchCrops(split, layer, Int32Array.from(images), Int32Array.from(ys), Int32Array.from(xs));
    return { result, transfer: [result.data.buffer] };
  },
  /** The engine's PCA of n codes of dim values: Float32Array [n, k]. */
  async pca({ codes, n, dim, k }, s) {
    const result = await wasm.pca(codes, n, dim, k);
    return { result, transfer: [result.buffer] };
  },
  /** Deconvnet or guided-backprop pictures of units' patches. */
  async patchMaps({ split, layer, channels, images, ys, xs, rule }, s) {
    const result = await needEngine(s).patchMaps(split, layer, Int32Array.from(channels), Int32Array.from(images), Int32Array.from(ys), Int32Array.from(xs), rule);
    return { result, transfer: [result.data.buffer] };
  },
  /** Decoded images (CHW floats in [0, 1]) as the dataset, both splits. */
  loadImages({ name, pixels, shape, labels = [], classes = [] }, s) {
    return { result: needEngine(s).loadImages(name, pixels, Uint32Array.from(shape), Uint8Array.from(labels), classes) };
  },
  async styleGrams({ id }, s) {
    return { result: await needEngine(s).styleGrams(id) };
  },
  async fgsm({ input, label, eps }, s) {
    const result = await needEngine(s).fgsm(input, label, eps);
    return { result, transfer: [result.buffer] };
  },
  /** The linear demo on the built-in digits (fetched from `base`), leaving the engine's dataset as it is. */
  async linearDemo({ sides, eps, epochs, base }, s) {
    const bytes = await fetchDataset('mnist5k', base, undefined, s);
    return { result: needEngine(s).linearDemo(bytes, Uint32Array.from(sides), eps, epochs) };
  },
  /** Times `n` steps of an optimization job inside the worker (npm run bench:optimize): ms per step. */
  async benchOptimize({ kind, input = [], settings = {}, n = 5 }, s) {
    const e = needEngine(s);
    const data = input instanceof Float32Array ? input : Float32Array.from(input);
    const { id } = await e.optimizeStart(kind, data, { ...settings, steps: n + 2 });
    await e.optimizeStep(id, 0);
    await e.optimizeStep(id, 0);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await e.optimizeStep(id, 0);
    e.optimizeCancel(id);
    return { result: (performance.now() - t0) / n };
  },
  async exportWeights(_, s) {
    const bytes = await needEngine(s).exportWeights();
    const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
    return { result: own, transfer: [own.buffer] };
  },
  async train({ images, labels, config }, s) {
    return { result: await needEngine(s).train(images, labels, config) };
  },
  setTrainer({ config }, s) {
    return { result: needEngine(s).setTrainer(config) };
  },
  /** Fetches a dataset's files from `base` (a URL) and decodes them in the engine. */
  async loadDataset({ name, base, maxTrainSheets }, s) {
    // Decoded once per worker: another session (an element of the same page) that loaded the same
    // files lends them, no copy.
    const key = `${name}|${new URL(base, self.location.href).href}|${maxTrainSheets ?? ''}`;
    // One decoding of a key at a time: the others wait for it, then share it.
    await decoding.get(key)?.catch(() => {});
    const shared = needEngine(s).useDataset(name, key);
    if (shared) return { result: shared };
    const job = fetchDataset(name, base, maxTrainSheets, s).then((bytes) => needEngine(s).loadDataset(name, bytes, maxTrainSheets, key));
    decoding.set(key, job);
    try {
      return { result: await job };
    } finally {
      if (decoding.get(key) === job) decoding.delete(key);
    }
  },
  loadPoints({ points, labels }, s) {
    return { result: needEngine(s).loadPoints(points, labels) };
  },
  /** A split patches search's tops put together (no session's state: the parts' lists in, one top out). */
  patchesMerge({ channels, top, values, images, ys, xs }) {
    const result = wasm.patchesMerge(channels, top, values, images, ys, xs);
    return { result, transfer: [result.values.buffer, result.images.buffer, result.ys.buffer, result.xs.buffer] };
  },
  toyPoints({ kind, seed }, s) {
    return { result: wasm.toyPoints(kind, seed) };
  },
  async trainSteps({ steps }, s) {
    const result = await needEngine(s).trainSteps(steps);
    return { result, transfer: [result.losses.buffer, result.correct.buffer] };
  },
  /**
   * Data-parallel training: the training steps' shards go to pool workers through `ports` (one
   * MessagePort to each, whose other end went to its `trainServe`), worker to worker; none: this
   * engine alone. A worker that fails or goes away (its pool closed) leaves its shards to this
   * engine: the weights are the same either way.
   */
  trainPool({ ports = [] }, s) {
    const engine = needEngine(s);
    pools.get(s)?.close();
    pools.delete(s);
    if (!ports.length) {
      engine.setTrainPool(null, 0);
      return { result: 0 };
    }
    const pending = new Map();
    let next = 1;
    let closed = false;
    const fail = (error) => {
      for (const p of pending.values()) p.reject(error);
      pending.clear();
    };
    for (const port of ports) {
      port.onmessage = ({ data }) => {
        const p = pending.get(data?.id);
        if (!p) return;
        pending.delete(data.id);
        clearTimeout(p.timer);
        if (data.ok) p.resolve(data.result);
        else p.reject(new Error(data.error));
      };
      port.onmessageerror = () => fail(new Error('a pool worker sent a message that cannot be read'));
    }
    // Every task is answered: by its worker, else (a closed pool, no answer in time) with an
    // error, and the engine computes those shards itself (a chunk in flight keeps this function).
    const run = (worker, task) => new Promise((resolve, reject) => {
      if (closed) {
        reject(new Error('the training pool was closed'));
        return;
      }
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`pool worker ${worker} did not answer in ${SHARD_TIMEOUT_MS / 1000} s`));
      }, SHARD_TIMEOUT_MS);
      pending.set(id, { resolve, reject, timer });
      ports[worker].postMessage({ id, task }, [task.weights.buffer, task.images.buffer, task.labels.buffer]);
    });
    pools.set(s, {
      close() {
        closed = true;
        for (const p of pending.values()) clearTimeout(p.timer);
        engine.setTrainPool(null, 0);
        ports.forEach((p) => p.close());
        fail(new Error('the training pool was closed'));
      },
    });
    engine.setTrainPool(run, ports.length);
    return { result: ports.length };
  },
  /** As a pool worker: answers the training shards another worker's engine sends on `port` (this session's network). */
  trainServe({ port }, s) {
    needEngine(s);
    serving.get(s)?.close();
    serving.set(s, port);
    port.onmessage = async ({ data }) => {
      const { id, task } = data ?? {};
      try {
        const result = await needEngine(s).trainShards(task);
        port.postMessage({ id, ok: true, result }, [result.grads.buffer]);
      } catch (e) {
        port.postMessage({ id, ok: false, error: e?.message || String(e) });
      }
    };
    return { result: true };
  },
  /** How many shards a training step has now (how many workers it can use). */
  trainShardCount(_, s) {
    return { result: needEngine(s).trainShardCount() };
  },
  async checkLastStep(_, s) {
    return { result: await needEngine(s).checkLastStep() };
  },
  async evaluate({ split, start, count }, s) {
    const result = await needEngine(s).evaluate(split, start, count);
    return { result, transfer: [result.probs.buffer, result.labels.buffer] };
  },
  example({ split, index }, s) {
    const result = needEngine(s).example(split, index);
    return { result, transfer: [result.buffer] };
  },
  images({ split, start, count }, s) {
    const result = needEngine(s).images(split, start, count);
    return { result, transfer: [result.data.buffer, result.labels.buffer] };
  },
  async forward({ input }, s) {
    const result = await needEngine(s).forward(input);
    return { result, transfer: [result.buffer] };
  },
  async forwardBatch({ inputs, layer }, s) {
    const result = await needEngine(s).forwardBatch(inputs, layer);
    return { result, transfer: [result.buffer] };
  },
  async activations({ input, into = null }, s) {
    const result = await needEngine(s).activations(input, into ? new Float32Array(into) : undefined);
    return { result, transfer: [...new Set(result.map((a) => a.buffer))] };
  },
  /** Times `n` forwards of one image inside the worker (for npm run bench): ms per forward. */
  async benchForward({ input, n = 100 }, s) {
    const e = needEngine(s);
    for (let i = 0; i < 10; i++) await e.forward(input);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await e.forward(input);
    return { result: (performance.now() - t0) / n };
  },
  /** Times `n` attributions of one image inside the worker (for npm run bench:attribution): ms each. */
  async benchAttribute({ input, objective, settings, n = 50 }, s) {
    const e = needEngine(s);
    for (let i = 0; i < 5; i++) await e.attribute(input, objective, settings);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await e.attribute(input, objective, settings);
    return { result: (performance.now() - t0) / n };
  },
  embeddedSpec({ bytes }, s) {
    return { result: wasm.embeddedSpec(bytes) };
  },
  debugPanic(_, s) {
    needEngine(s).debugPanic();
    return { result: null };
  },
  memory(_, s) {
    return { result: needEngine(s).memory() };
  },
  /** A wasm trap that is not a Rust panic (no panic hook runs): tests the restart after traps. */
  debugTrap(_, s) {
    needEngine(s).debugTrap();
    return { result: null };
  },
  /** Never answers: tests the WebGPU time-out. */
  debugHang(_, s) {
    return new Promise(() => {});
  },
};

self.onmessage = async ({ data: { id, cmd, args, session = 'main' } }) => {
  try {
    // Module functions need a build: the CPU one unless a session loaded one already.
    if (cmd !== 'init' && !wasm) await loadBuild('cpu');
    const handler = Object.hasOwn(commands, cmd) ? commands[cmd] : null;
    if (!handler) throw new Error(`unknown command '${cmd}'`);
    if (!ANYTIME.has(cmd)) {
      // Nothing awaits between this check and `training.set` below: the next command starts alone.
      while (training.has(session)) await training.get(session).catch(() => {});
    }
    const running = Promise.resolve(handler(args ?? {}, session));
    if (TRAINING.has(cmd)) {
      training.set(session, running);
      running.catch(() => {}).finally(() => {
        if (training.get(session) === running) training.delete(session);
      });
    }
    const { result, transfer = [] } = await running;
    postMessage({ id, ok: true, result }, transfer);
  } catch (e) {
    // A divergence carries the learning rate to suggest.
    postMessage({ id, ok: false, error: e?.message || String(e), suggestedRate: e?.suggestedRate });
    // A trap (memory access out of bounds, unreachable, ...) leaves the wasm instance unusable even
    // when no panic hook ran: the page restarts the worker as after a panic.
    if (e instanceof WebAssembly.RuntimeError) postMessage({ type: 'panic', message: `wasm trap in ${cmd}: ${e.message}` });
  }
};
