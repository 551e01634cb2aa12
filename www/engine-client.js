// Page side of the worker protocol (docs/ENGINE_API.md): promise-based requests, and automatic restart of
// the worker after a Rust panic, a wasm trap or (on WebGPU) a request that does not answer in time:
// it re-sends init, the last successful load with the newest weights the page has exported (the
// autosave exports them every 20 s while training and on pause), and the dataset.
// Several clients may share one worker (`new EngineClient({ worker })`, as the <convlens-view>
// elements of one page do): each is a session of its own there (its own network, dataset and jobs)
// on one wasm instance; a crash restarts the worker once and every client comes back.
// Events: 'panic' {message, hang}, 'restarted' {backend, webgpu, weightsAt}, 'error' {error},
// 'progress' {what, done, total}.

/** How long a request on WebGPU may go unanswered (`?gpuTimeout=ms` changes it, for tests). */
const GPU_TIMEOUT_MS = 120_000;
/** The largest model (bytes of weights) whose maps split among workers (each holds a copy). */
const POOL_MAX_BYTES = 64 << 20;
/** The attribution methods that average many gradients (their samples split among workers). */
const SAMPLED = new Set(['smoothgrad', 'integrated-gradients']);
/** Requests that wait on more than the GPU (the network, the CPU decoding a dataset). */
const NO_TIMEOUT = new Set(['loadDataset']);

/**
 * How many engines a job that splits (the loss surface's grid) runs on: `?workers=N` in the page's
 * URL, else one per core (navigator.hardwareConcurrency), at most 8. Plain workers, no shared
 * memory: no COOP/COEP needed, so it works inside an iframe.
 */
export function defaultWorkers() {
  const asked = Number(new URLSearchParams(globalThis.location?.search ?? '').get('workers'));
  const n = asked > 0 ? asked : (globalThis.navigator?.hardwareConcurrency ?? 1);
  return Math.max(1, Math.min(8, Math.floor(n)));
}

/** The parts of a split loss surface's state put together: every point from the part that evaluated it. */
function mergeParts(states) {
  const [first] = states;
  const loss = Float32Array.from(first.landscape.loss);
  const accuracy = Float32Array.from(first.landscape.accuracy);
  for (const s of states.slice(1)) {
    const l = s.landscape;
    for (let i = 0; i < loss.length; i++) {
      if (!Number.isNaN(l.loss[i])) {
        loss[i] = l.loss[i];
        accuracy[i] = l.accuracy[i];
      }
    }
  }
  return {
    ...partsTogether(states),
    landscape: {
      ...first.landscape,
      loss,
      accuracy,
      coarse: states.reduce((a, s) => a + s.landscape.coarse, 0),
      coarseDone: states.every((s) => s.landscape.coarseDone),
      part: undefined,
    },
  };
}

/** What every split job's parts' states have together: part 0's, with the steps of all. */
function partsTogether(states) {
  const sum = (f) => states.reduce((a, s) => a + f(s), 0);
  return { ...states[0], step: sum((s) => s.step), total: sum((s) => s.total), done: states.every((s) => s.done), workers: states.length };
}

/** The next chunk's size: chunks of about `chunkMs` (long enough that messaging costs little, short enough to cancel). */
function nextBatch(batch, ms, chunkMs) {
  return Math.max(4, Math.min(4096, Math.round(batch * Math.min(4, chunkMs / ms))));
}

/** Where worker.js is (and pkg/ with the wasm engine beside it): this module's folder by default. */
let engineBase = new URL('./', import.meta.url);
/** Moves the worker and the wasm engine (a bundler that copies them elsewhere): workers started later use it. */
export function setEngineBase(url) {
  engineBase = new URL(String(url), globalThis.location?.href);
}

/** One engine worker and the clients (sessions) it serves. */
export class EngineWorker {
  #worker = null;
  #pending = new Map();
  #nextId = 1;
  #nextSession = 1;
  #clients = new Set();
  /** A restart in progress (requests wait for it). */
  restarting = null;
  /** Workers of their own for the parts of split jobs (made on first use, kept). */
  #helpers = [];

  constructor() {
    this.#spawn();
  }

  /** `count` helper workers for split jobs, shared by this worker's clients. */
  helperWorkers(count) {
    while (this.#helpers.length < count) this.#helpers.push(new EngineWorker());
    return this.#helpers.slice(0, count);
  }

  /** Clients attached now. */
  get clients() {
    return [...this.#clients];
  }

  /** Registers a client; returns its session key. */
  attach(client) {
    this.#clients.add(client);
    return `s${this.#nextSession++}`;
  }

  detach(client) {
    this.#clients.delete(client);
  }

  #spawn() {
    const worker = new Worker(new URL('worker.js', engineBase), { type: 'module' });
    worker.onmessage = (e) => this.#onMessage(e.data);
    worker.onerror = (e) => {
      e.preventDefault?.();
      const error = new Error(`engine worker failed: ${e.message || 'could not start worker.js'}`);
      this.#rejectAll(error);
      for (const c of this.#clients) c.dispatchEvent(new CustomEvent('error', { detail: { error } }));
    };
    this.#worker = worker;
  }

  #rejectAll(error) {
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
  }

  #kill(error) {
    this.#worker?.terminate();
    this.#worker = null;
    this.#rejectAll(error);
  }

  #onMessage(msg) {
    if (msg?.type === 'panic') {
      this.crash(msg.message);
      return;
    }
    if (msg?.type === 'progress') {
      for (const c of this.#clients) if (c.session === msg.session) c.dispatchEvent(new CustomEvent('progress', { detail: msg }));
      return;
    }
    const entry = this.#pending.get(msg?.id);
    if (!entry) return;
    this.#pending.delete(msg.id);
    if (msg.ok) entry.resolve(msg.result);
    else entry.reject(Object.assign(new Error(msg.error), msg.suggestedRate === undefined ? {} : { suggestedRate: msg.suggestedRate }));
  }

  /** Sends one command for `session`; `timeoutMs` > 0: a crash (hang) if it does not answer in time. */
  send(session, cmd, args = {}, transfer = [], timeoutMs = 0) {
    return new Promise((resolve, reject) => {
      if (!this.#worker) this.#spawn();
      const id = this.#nextId++;
      let timer = null;
      if (timeoutMs > 0) {
        timer = setTimeout(() => this.crash(`WebGPU did not answer '${cmd}' in ${timeoutMs / 1000} s`, { hang: true }), timeoutMs);
      }
      const done = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      this.#pending.set(id, { resolve: done(resolve), reject: done(reject) });
      this.#worker.postMessage({ id, cmd, args, session }, transfer);
    });
  }

  /**
   * The worker died (a panic, a trap) or hung: every client hears 'panic', then a fresh worker
   * starts and each client comes back ('restarted', or 'error' if it could not) — on the CPU after
   * a hang, since a GPU that does not answer may not answer again.
   */
  crash(message, { hang = false } = {}) {
    this.#kill(new Error(hang ? message : `engine panicked: ${message}`));
    for (const c of this.#clients) c.dispatchEvent(new CustomEvent('panic', { detail: { message, hang } }));
    this.restartAll(() => (hang ? { backend: 'cpu' } : {})).then(
      (results) => {
        for (const [c, r] of results) {
          if (r instanceof Error) c.dispatchEvent(new CustomEvent('error', { detail: { error: r } }));
          else c.dispatchEvent(new CustomEvent('restarted', { detail: r }));
        }
      },
      (error) => {
        for (const c of this.#clients) c.dispatchEvent(new CustomEvent('error', { detail: { error } }));
      },
    );
  }

  /** A fresh worker; each client replays its state (`optionsFor(client)`: its restart options). Resolves to client -> info or Error. */
  restartAll(optionsFor = () => ({})) {
    const previous = this.restarting ?? Promise.resolve();
    const run = async () => {
      this.#kill(new Error('engine restarted'));
      this.#spawn();
      const results = new Map();
      for (const c of this.#clients) results.set(c, await c.replay(optionsFor(c)).catch((e) => e));
      return results;
    };
    const job = previous.catch(() => {}).then(run);
    this.restarting = job;
    job.catch(() => {}).finally(() => {
      if (this.restarting === job) this.restarting = null;
    });
    return job;
  }

  terminate() {
    this.#kill(new Error('engine terminated'));
    this.#helpers.forEach((h) => h.terminate());
    this.#helpers = [];
  }
}

export class EngineClient extends EventTarget {
  #hub;
  /** Whether this client owns its worker (else it shares one). */
  #own;
  #restarting = null;
  /** This client's session in the worker. */
  session;

  /** Resolved backend, WebGPU availability and engine build ('cpu' or 'webgpu') from the last init: { backend, webgpu, build }. */
  info = null;
  /** The last successful load: { spec, weights, seed }. */
  lastLoad = null;
  /** The Summary returned by the last successful load. */
  summary = null;
  /** The last dataset loaded, re-sent after a restart. */
  lastData = null;
  /** When `lastLoad.weights` were last replaced by exported (trained) weights (ms since the epoch). */
  weightsAt = null;
  gpuTimeoutMs = GPU_TIMEOUT_MS;
  /** A pool helper's: the load and weights version it holds ({load, version}), or null. */
  heldFor = null;

  /** `worker`: an EngineWorker to share (default: a worker of its own). */
  constructor({ worker = null } = {}) {
    super();
    const t = Number(new URLSearchParams(globalThis.location?.search ?? '').get('gpuTimeout'));
    if (t > 0) this.gpuTimeoutMs = t;
    this.#own = !worker;
    this.#hub = worker ?? new EngineWorker();
    this.session = this.#hub.attach(this);
  }

  /** The worker this client talks to. */
  get worker() {
    return this.#hub;
  }

  #send(cmd, args = {}, transfer = []) {
    if (cmd === 'init') {
      this.#probeWeights = null; // a new engine counts its weights' versions afresh
      this.#endTrainPool(false); // and has no training pool
    }
    const timeout = this.info?.backend === 'webgpu' && !NO_TIMEOUT.has(cmd) ? this.gpuTimeoutMs : 0;
    return this.#hub.send(this.session, cmd, args, transfer, timeout);
  }

  /** Sends one command; waits for a restart in progress, and while paused, first. */
  async request(cmd, args = {}, transfer = []) {
    for (;;) {
      if (this.#hub.restarting || this.#restarting) await (this.#hub.restarting ?? this.#restarting).catch(() => {});
      else if (this.#pause) await this.#pause.promise;
      else break;
    }
    return this.#send(cmd, args, transfer);
  }

  #pause = null;
  /**
   * Holds this client's requests (a request already sent finishes) until `setPaused(false)`: a
   * run's chunks stop between two requests and go on where they were (an element out of view).
   */
  setPaused(paused) {
    this.#helpers.forEach((h) => h.setPaused(paused));
    if (paused && !this.#pause) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.#pause = { promise, resolve };
    } else if (!paused && this.#pause) {
      this.#pause.resolve();
      this.#pause = null;
    }
  }

  get paused() {
    return Boolean(this.#pause);
  }

  /** Creates the engine: backend 'webgpu', 'cpu' or 'auto' (WebGPU when available). */
  async init(backend = 'auto') {
    this.info = await this.request('init', { backend });
    return this.info;
  }

  /** Builds a network from a spec (JSON string or object); weights: safetensors bytes or null. */
  async load(spec, weights = null, seed = 0) {
    const text = typeof spec === 'string' ? spec : JSON.stringify(spec);
    const summary = await this.request('load', { spec: text, weights, seed });
    this.lastLoad = { spec: text, weights, seed };
    this.weightsAt = null;
    this.summary = summary;
    return summary;
  }

  /**
   * Loads a TF.js layers model (model.json's text; its weight shards as {path: Uint8Array}). After a
   * restart it comes back as the ConvLens spec and weights it was converted to.
   */
  async loadTfjs(modelJson, shards) {
    const summary = await this.request('loadTfjs', { modelJson, shards });
    const weights = await this.exportWeights();
    this.lastLoad = { spec: summary.spec, weights, seed: 0 };
    this.weightsAt = null;
    this.summary = summary;
    return summary;
  }

  /**
   * One attribution map: {map, shape, abs, signed, display, value, layerMap?, layerShape?, delta?}.
   * On the CPU, SmoothGrad's and integrated gradients' samples are shared among `workers` engines
   * (whole batches each; the map is bit for bit one engine's).
   */
  async attribute(input, objective, settings = {}, { workers = defaultWorkers() } = {}) {
    const parts = this.#poolSize(workers);
    if (parts < 2 || !SAMPLED.has(settings.method)) return this.request('attribute', { input, objective, settings });
    // The helpers' own failures (a worker that cannot start, runs out of memory or crashes) leave
    // the map to this engine alone; this engine's (bad settings) are the caller's.
    const helpers = this.#prepareHelpers(parts - 1);
    await helpers.asked;
    const mine = this.request('attributeSamples', { input, objective, settings, part: [0, parts] });
    const theirs = helpers.then((hs) => Promise.all(hs.map((h, i) => h.request('attributeSamples', { input, objective, settings, part: [i + 1, parts] }))));
    theirs.catch(() => {});
    const first = await mine;
    let rest;
    try {
      rest = await theirs;
    } catch {
      return this.request('attribute', { input, objective, settings });
    }
    const got = [first, ...rest];
    const samples = new Float32Array(got.reduce((n, g) => n + g.grads.length, 0));
    let at = 0;
    for (const g of got) {
      samples.set(g.grads, at);
      at += g.grads.length;
    }
    return this.request('attribute', { input, objective, settings, samples, values: got[0].values }, [samples.buffer]);
  }

  /**
   * How many engines a map that splits runs on: `workers` on the CPU, one on WebGPU, and one for a
   * model of more than POOL_MAX_BYTES of weights (each helper holds a copy: VGG-11's 530 MB on
   * 8 engines would not fit a tab).
   */
  #poolSize(workers) {
    return (this.summary?.params ?? 0) * 4 > POOL_MAX_BYTES ? 1 : this.#cpuParts(workers);
  }

  /** `workers` engines on the CPU (with a network loaded), else one. */
  #cpuParts(workers) {
    return this.info?.backend === 'cpu' && this.lastLoad ? Math.max(1, Math.min(64, Math.floor(workers))) : 1;
  }

  /**
   * Occlusion of one image ({window, stride, fill, class}), `batch` positions per request so the
   * page stays in charge (chunks sized to about `chunkMs`): `onProgress(state)` after each chunk; stops early (resolving to null)
   * when `signal.aborted`. Resolves to the final state ({grid, ny, nx, base, map, ...}).
   */
  async occlude(input, settings, { batch = 32, chunkMs = 60, onProgress = () => {}, signal = null, workers = defaultWorkers() } = {}) {
    const parts = this.#poolSize(workers);
    if (parts > 1) return this.#splitOcclusion(input, settings, parts, { batch, chunkMs, onProgress, signal });
    let state = await this.request('occlusionStart', { input, settings });
    const { id } = state;
    onProgress(state);
    while (state.done < state.total) {
      if (signal?.aborted) {
        this.request('optimizeCancel', { id }).catch(() => {});
        return null;
      }
      const t0 = performance.now();
      state = await this.request('occlusionStep', { id, max: batch });
      if (signal?.aborted) continue; // a chunk that was running when cancelled is not reported
      // Chunks of about `chunkMs`: long enough that messaging costs little, short enough to cancel.
      const ms = Math.max(1, performance.now() - t0);
      batch = nextBatch(batch, ms, chunkMs);
      onProgress(state);
    }
    this.request('optimizeCancel', { id }).catch(() => {});
    return state;
  }

  /**
   * Occlusion on `parts` engines: each evaluates a run of positions (its own chunks, as `occlude`
   * sizes them); `onProgress` gets them put together (positions not yet done hold the unoccluded
   * value, as the view shows them); part 0's job then takes every grid and makes the map.
   */
  async #splitOcclusion(input, settings, parts, { batch, chunkMs, onProgress, signal }) {
    // Part 0 starts here while the helpers get the network (if they do not hold it yet).
    const helpers = this.#prepareHelpers(parts - 1);
    helpers.catch(() => {});
    const first = await this.request('occlusionStart', { input, settings, part: [0, parts] });
    const clients = [this];
    const states = [first];
    let stop = false;
    // Every part's positions in place; the others hold `fill`.
    const assemble = (fill) => {
      const grid = new Float32Array(first.ny * first.nx).fill(fill);
      for (const st of states) grid.set(st.grid, st.part?.[0] ?? 0);
      return grid;
    };
    const merged = () => {
      const grid = assemble(first.base);
      const done = states.reduce((n, st) => n + st.done, 0);
      return { ...first, grid, done, total: first.ny * first.nx, part: undefined, workers: states.length };
    };
    try {
      let ready;
      try {
        ready = await helpers;
      } catch {
        // No helpers (a worker that cannot start): this engine does it alone.
        this.request('optimizeCancel', { id: first.id }).catch(() => {});
        stop = true;
        return this.occlude(input, settings, { batch, chunkMs, onProgress, signal, workers: 1 });
      }
      if (signal?.aborted) return null;
      clients.push(...ready);
      const started = await Promise.allSettled(clients.slice(1).map((c, i) => c.request('occlusionStart', { input, settings, part: [i + 1, parts] })));
      started.forEach((r, i) => { if (r.status === 'fulfilled') states[i + 1] = r.value; });
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      onProgress(merged());
      const run = async (k) => {
        let n = batch;
        while (states[k].done < states[k].total) {
          if (stop || signal?.aborted) return;
          const t0 = performance.now();
          const next = await clients[k].request('occlusionStep', { id: states[k].id, max: n });
          if (stop || signal?.aborted) return; // a chunk that was running when cancelled is not reported
          states[k] = next;
          n = nextBatch(n, Math.max(1, performance.now() - t0), chunkMs);
          onProgress(merged());
        }
      };
      await Promise.all(clients.map((_, k) => run(k).catch((e) => {
        stop = true;
        throw e;
      })));
      if (signal?.aborted) return null;
      const all = assemble(0);
      const state = await this.request('occlusionMerge', { id: first.id, grid: all }, [all.buffer]);
      const done = { ...state, workers: parts };
      onProgress(done);
      return done;
    } finally {
      stop = true;
      states.forEach((st, k) => { if (st && clients[k]) clients[k].request('optimizeCancel', { id: st.id }).catch(() => {}); });
    }
  }

  /** This client's sessions on the helper workers (split jobs). */
  #helpers = [];

  /**
   * `count` helper engines on the CPU, each a session on a helper worker, holding this client's
   * network with its current weights (sent again only when they changed: a new load, or
   * training) and, `withData`, this client's dataset.
   */
  #prepareHelpers(count, withData = false) {
    // One at a time: two jobs starting together (the page's maps) would both set a helper up.
    let asked;
    const done = new Promise((resolve) => { asked = resolve; });
    const job = (this.#preparing ?? Promise.resolve()).catch(() => {}).then(() => this.#prepareNow(count, withData, asked));
    job.finally(asked).catch(() => {});
    this.#preparing = job;
    // Resolves once this engine has answered what the helpers need from it (the weights' version,
    // the weights): a job should send this engine its own part only then, or the helpers wait for
    // that part (a step on the fused path does not yield to the worker's other messages).
    job.asked = done;
    return job;
  }

  #preparing = null;

  /** This client's first `count` helper sessions, one on each of the hub's first `count` helper workers. */
  #helperClients(count) {
    const workers = this.#hub.helperWorkers(count);
    while (this.#helpers.length < count) this.#helpers.push(new EngineClient({ worker: workers[this.#helpers.length] }));
    return this.#helpers.slice(0, count);
  }

  async #prepareNow(count, withData, asked) {
    const helpers = this.#helperClients(count);
    helpers.forEach((h) => h.setPaused(this.paused));
    const version = await this.request('weightsVersion', {});
    const stale = helpers.filter((h) => h.info?.backend !== 'cpu' || h.heldFor?.load !== this.lastLoad || h.heldFor?.version !== version);
    const weights = stale.length ? await this.request('exportWeights', {}) : null;
    asked();
    if (stale.length) {
      const { spec, seed } = this.lastLoad;
      await Promise.all(stale.map(async (h) => {
        h.heldFor = null;
        if (h.info?.backend !== 'cpu') await h.init('cpu');
        await h.load(spec, weights.slice(), seed);
        h.heldFor = { load: this.lastLoad, version };
      }));
    }
    if (withData) await Promise.all(helpers.map((h) => this.#lendData(h)));
    return helpers;
  }

  /**
   * Gives helper `h` this client's dataset, unless it holds it already: a dataset from files is
   * fetched again there (from the browser's cache) and decoded, images and points are copied.
   */
  async #lendData(h) {
    const d = this.lastData;
    if (!d || h.dataHeld === d) return;
    h.dataHeld = null;
    if (d.kind === 'dataset') await h.loadDataset(d.name, d.base, d.maxTrainSheets);
    else if (d.kind === 'images') await h.loadImages(d.name, d.pixels, d.shape, d.labels, d.classes);
    else if (d.kind === 'points') await h.loadPoints(d.points, d.labels);
    h.dataHeld = d;
  }

  /**
   * A dataset view (kind: patches, tsne or landscape; settings: its schema's keys), run in chunks
   * of about `budgetMs` in the worker: `onProgress(state)` after each; stops early (resolving to
   * null) when `signal.aborted`. Resolves to the final state (docs/ENGINE_API.md).
   */
  async datasetView(kind, settings, { budgetMs = 100, onProgress = () => {}, signal = null, workers = defaultWorkers() } = {}) {
    // On the CPU, a job that splits (the engine says so in its state) runs on `workers` engines.
    const parts = this.#poolSize(workers);
    let state = await this.request('datasetStart', { kind, settings, ...(parts > 1 ? { part: [0, parts] } : {}) });
    if (state.landscape?.part || state.patches?.part) return this.#splitView(kind, settings, state, parts, { budgetMs, onProgress, signal });
    const { id } = state;
    onProgress(state);
    try {
      while (!state.done) {
        if (signal?.aborted) return null;
        state = await this.request('datasetStep', { id, budgetMs });
        // A chunk that was running when the run was cancelled is not reported.
        if (signal?.aborted) return null;
        onProgress(state);
      }
      return state;
    } finally {
      this.request('optimizeCancel', { id }).catch(() => {});
    }
  }

  /**
   * The rest of a split dataset view: `first` is part 0 here; parts 1.. run on helper engines
   * holding the same dataset; each reports as it goes, and `onProgress` gets the parts put
   * together (bit for bit one engine's values): the loss surface's points each from the part
   * that evaluated it, the patches' tops by the engine (`patchesMerge`).
   */
  async #splitView(kind, settings, first, parts, { budgetMs, onProgress, signal }) {
    const clients = [this];
    const states = [first];
    let stop = false;
    const together = () => (kind === 'patches' ? this.#mergePatches(states) : mergeParts(states));
    // Progress is put together beside the parts' steps, never holding one up (the patches' merge
    // waits for this engine's current step): one at a time, the newest states each time.
    let reporting = null;
    let again = false;
    const report = () => {
      if (reporting) {
        again = true;
        return;
      }
      reporting = (async () => {
        do {
          again = false;
          const now = await together();
          if (!stop && !signal?.aborted) onProgress(now);
        } while (again && !stop && !signal?.aborted);
      })().catch(() => {}).finally(() => { reporting = null; });
    };
    try {
      clients.push(...await this.#prepareHelpers(parts - 1, true));
      for (let k = 1; k < parts; k++) states.push(await clients[k].request('datasetStart', { kind, settings, part: [k, parts] }));
      report();
      const run = async (k) => {
        while (!states[k].done) {
          if (stop || signal?.aborted) return;
          const next = await clients[k].request('datasetStep', { id: states[k].id, budgetMs });
          // A chunk that was running when the run was cancelled (or another part failed) is not reported.
          if (stop || signal?.aborted) return;
          states[k] = next;
          report();
        }
      };
      await Promise.all(clients.map((_, k) => run(k).catch((e) => {
        stop = true;
        throw e;
      })));
      // The last report before the result, not after it.
      stop = true;
      await reporting;
      return signal?.aborted ? null : together();
    } finally {
      stop = true;
      states.forEach((s, k) => clients[k].request('optimizeCancel', { id: s.id }).catch(() => {}));
    }
  }

  /** A split patches search's parts put together: each channel's top over all their images (the engine merges). */
  async #mergePatches(states) {
    const p = states[0].patches;
    const per = p.shape[0] * p.top;
    const cat = (key, Type) => {
      const a = new Type(states.length * per);
      states.forEach((s, i) => a.set(s.patches[key], i * per));
      return a;
    };
    const args = { channels: p.shape[0], top: p.top, values: cat('values', Float32Array), images: cat('images', Int32Array), ys: cat('ys', Int32Array), xs: cat('xs', Int32Array) };
    const lists = await this.request('patchesMerge', args, [args.values.buffer, args.images.buffer, args.ys.buffer, args.xs.buffer]);
    return { ...partsTogether(states), patches: { ...p, ...lists, part: undefined } };
  }

  /** Patches' pictures: layer `layer`'s receptive field around units in a split's images: {data, shape}. */
  patchCrops(split, layer, images, ys, xs) {
    return this.request('patchCrops', { split, layer, images, ys, xs });
  }

  /** Deconvnet ('deconvnet') or guided-backprop ('guided') pictures of units' patches: {data, shape}. */
  patchMaps(split, layer, channels, images, ys, xs, rule) {
    return this.request('patchMaps', { split, layer, channels, images, ys, xs, rule });
  }

  /** Decoded images (Float32Array, CHW each) of one shape as the dataset; comes back after a restart. */
  async loadImages(name, pixels, shape, labels = [], classes = []) {
    const info = await this.request('loadImages', { name, pixels, shape, labels, classes });
    this.lastData = { kind: 'images', name, pixels, shape, labels, classes };
    return info;
  }

  /** The weights of the last probe that sent them ({version, layers: [[Float32Array]]}); null after an init. */
  #probeWeights = null;

  /**
   * Every layer's activations, gradients and weights for one image, and the weights' gradients.
   * The arrays are views into one buffer; the weights are sent only when they changed since the
   * last probe (else the ones kept from it are filled in: treat them as read-only).
   */
  async probe(input, objective) {
    const held = this.#probeWeights;
    const into = this.#takeSpare('probe');
    const probe = await this.request('probe', { input, objective, held: held?.version ?? null, into }, into ? [into] : []);
    const sent = probe.layers.every((l) => l.weights.every((w) => w.data !== null));
    if (sent) {
      this.#probeWeights = { version: probe.weightsVersion, layers: probe.layers.map((l) => l.weights.map((w) => w.data)) };
      return probe;
    }
    // Not sent: the engine still has the version held, unless an init came between.
    if (held !== this.#probeWeights || held.version !== probe.weightsVersion) {
      this.#probeWeights = null;
      return this.probe(input, objective);
    }
    probe.layers.forEach((l, i) => l.weights.forEach((w, j) => { w.data = held.layers[i][j]; }));
    return probe;
  }

  /**
   * SGD over N examples (images: Float32Array of N*C*H*W, labels: Uint32Array); resolves to the mean
   * loss. Its steps' shards are shared with `workers` engines where they are cut (see `shareTraining`).
   */
  train(images, labels, config, { workers = defaultWorkers() } = {}) {
    const run = this.request('train', { images, labels, config });
    // Asked after the command, so that the pool is sized by this call's batch size (the engine
    // answers trainShardCount while the chunk runs, with its config applied).
    this.shareTraining({ workers }).catch(() => {});
    return run;
  }

  /** Data-parallel training's pool while it is set up or serves: {spec, seed, count, alive, ready, stop, serving}. */
  #trainPool = null;

  /** How many engines share the training steps now: 1 + the helpers of a pool that serves. */
  get trainingWorkers() {
    return 1 + (this.#trainPool?.serving ? this.#trainPool.count : 0);
  }

  /**
   * Data-parallel training: on the CPU, where the engine cuts a training step's batch into shards
   * (a net on the fused path, batches of 20 or more; docs/ENGINE_API.md), up to `workers` - 1
   * helper engines compute shards, worker to worker over MessagePorts (the page is not in the
   * loop). The weights come out the same bit for bit with any number. The pool is set up in the
   * background (training meanwhile runs on this engine alone) and kept while the network and the
   * number fit; a helper that crashes ends it (its shards come back here). Resolves to how many
   * helpers serve once it is ready.
   */
  async shareTraining({ workers = defaultWorkers() } = {}) {
    const parts = this.#poolSize(workers);
    const want = parts < 2 ? 0 : Math.min(parts, await this.request('trainShardCount', {})) - 1;
    // The helpers need the network's spec (the weights come with each step): a pool lasts while
    // the spec does (exported or reloaded weights change nothing there).
    const now = this.#trainPool;
    if (now?.alive && now.spec === this.lastLoad?.spec && now.count === want) return now.ready;
    this.#endTrainPool(true);
    if (want < 1) return 0;
    const pool = { spec: this.lastLoad.spec, seed: this.lastLoad.seed, count: want, alive: true, stop: null };
    this.#trainPool = pool;
    pool.ready = this.#startTrainPool(pool).catch((e) => {
      if (this.#trainPool === pool) this.#endTrainPool(true);
      throw e;
    });
    return pool.ready;
  }

  async #startTrainPool(pool) {
    const helpers = this.#helperClients(pool.count);
    // Each holds the network (its weights come with every step's shards).
    await Promise.all(helpers.map(async (h) => {
      if (h.info?.backend !== 'cpu') await h.init('cpu');
      if (h.lastLoad?.spec !== pool.spec) {
        h.heldFor = null; // split jobs send it the weights when they need them
        await h.load(pool.spec, null, pool.seed);
      }
    }));
    if (!pool.alive) return 0;
    const channels = helpers.map(() => new MessageChannel());
    await Promise.all(helpers.map((h, i) => h.request('trainServe', { port: channels[i].port2 }, [channels[i].port2])));
    const end = () => {
      if (this.#trainPool === pool) this.#endTrainPool(true);
    };
    helpers.forEach((h) => {
      h.addEventListener('panic', end);
      h.addEventListener('restarted', end);
    });
    pool.stop = () => helpers.forEach((h) => {
      h.removeEventListener('panic', end);
      h.removeEventListener('restarted', end);
    });
    if (!pool.alive) return 0;
    const ports = channels.map((c) => c.port1);
    await this.#send('trainPool', { ports }, ports);
    pool.serving = pool.alive;
    return pool.count;
  }

  /** Ends the training pool; `tell`: the engine too (it computes every shard itself again). */
  #endTrainPool(tell) {
    const pool = this.#trainPool;
    this.#trainPool = null;
    if (!pool) return;
    pool.alive = false;
    pool.stop?.();
    if (tell) this.#hub.send(this.session, 'trainPool', { ports: [] }).catch(() => {});
  }

  /** Changes any trainer settings ({method, learningRate, momentum, batchSize, l1, l2, ...}); resolves to all of them. */
  setTrainer(config) {
    return this.request('setTrainer', { config });
  }

  /** Fetches and decodes a dataset ('mnist5k', 'mnist', 'cifar10') from the URL `base`; 'progress' events meanwhile. */
  async loadDataset(name, base, maxTrainSheets = undefined) {
    const info = await this.request('loadDataset', { name, base: String(base), maxTrainSheets });
    this.lastData = { kind: 'dataset', name, base: String(base), maxTrainSheets };
    return info;
  }

  /** 2-D points (Float32Array x,y,...; Uint8Array labels) as the dataset. */
  async loadPoints(points, labels) {
    const info = await this.request('loadPoints', { points, labels });
    this.lastData = { kind: 'points', points, labels };
    return info;
  }

  toyPoints(kind, seed = 1) {
    return this.request('toyPoints', { kind, seed });
  }

  /**
   * Trains `steps` minibatches of the loaded dataset; resolves to the chunk's stats. The steps' shards
   * are shared with `workers` engines where they are cut (see `shareTraining`).
   */
  trainSteps(steps, { workers = defaultWorkers() } = {}) {
    this.shareTraining({ workers }).catch(() => {});
    return this.request('trainSteps', { steps });
  }

  /** Judges the last training step (after a Step or a pause); rejects if it diverged (then undone). */
  checkLastStep() {
    return this.request('checkLastStep', {});
  }

  /** Class probabilities of test/train images [start, start+count): {probs, labels}. */
  evaluate(split, start, count) {
    return this.request('evaluate', { split, start, count });
  }

  /** A dataset image as the net's input (centre crop). */
  example(split, index) {
    return this.request('example', { split, index });
  }

  /** Whole dataset images for drawing: {shape, data, labels}. */
  images(split, start, count) {
    return this.request('images', { split, start, count });
  }

  /** One image's class probabilities. */
  forward(input) {
    return this.request('forward', { input });
  }

  /** Layer `layer`'s output for a batch of inputs (flat). */
  forwardBatch(inputs, layer) {
    return this.request('forwardBatch', { inputs, layer });
  }

  /** Every layer's output for one image (forward only): views into one buffer. */
  activations(input) {
    const into = this.#takeSpare('activations');
    return this.request('activations', { input, into }, into ? [into] : []);
  }

  /** Buffers given back by `release`, by command. */
  #spare = new Map();

  #takeSpare(cmd) {
    const b = this.#spare.get(cmd) ?? null;
    this.#spare.delete(cmd);
    return b;
  }

  /**
   * Gives the result of a `probe` or `activations` back once nothing reads it any more: the next
   * call of the same kind writes into its buffer (a fresh buffer costs far more than the copy
   * into one in use) and its arrays become empty. A probe's weights are kept, not reused.
   */
  release(result) {
    const kind = Array.isArray(result) ? 'activations' : 'probe';
    const a = kind === 'activations' ? result[0] : result?.layers?.[0]?.act;
    if (a instanceof Float32Array && a.buffer.byteLength > 0) this.#spare.set(kind, a.buffer);
  }

  /** The network spec stored in a ConvLens safetensors file (throws if corrupt or absent). */
  embeddedSpec(bytes) {
    return this.request('embeddedSpec', { bytes });
  }

  /** The current weights as safetensors bytes; a copy is kept for a restart (see `restart`). */
  async exportWeights() {
    const bytes = await this.request('exportWeights', {});
    if (this.lastLoad) {
      this.lastLoad = { ...this.lastLoad, weights: bytes.slice() };
      this.weightsAt = Date.now();
    }
    return bytes;
  }

  /**
   * Re-creates this client's engine on `backend` (default: the current one) and re-sends the last
   * load (with the newest exported weights; `weights` instead if given) and the dataset. Used by
   * the worker after a crash; resolves to { backend, webgpu, weightsAt }.
   */
  async replay({ backend = this.info?.backend ?? 'auto', weights } = {}) {
    // A new engine counts its weights' versions from the start again: the pool's helpers reload.
    this.heldFor = null;
    this.#helpers.forEach((h) => { h.heldFor = null; });
    this.info = await this.#send('init', { backend });
    if (this.lastLoad) {
      const load = weights === undefined ? this.lastLoad : { ...this.lastLoad, weights };
      this.summary = await this.#send('load', load);
      this.lastLoad = load;
    }
    // The dataset lives in the worker too: load it again (a failure here is not fatal).
    const d = this.lastData;
    if (d?.kind === 'dataset') await this.#send('loadDataset', d).catch(() => {});
    if (d?.kind === 'points') await this.#send('loadPoints', d).catch(() => {});
    if (d?.kind === 'images') await this.#send('loadImages', d).catch(() => {});
    return { ...this.info, weightsAt: this.weightsAt };
  }

  /**
   * Starts this client's engine afresh on `backend` (default: the current one), then re-sends the
   * last load (with the newest exported weights; `weights` instead if given) and the dataset. A
   * client with a worker of its own gets a fresh worker; a shared worker's other sessions go on.
   */
  restart({ backend = this.info?.backend ?? 'auto', weights } = {}) {
    if (this.#own) {
      return this.#hub.restartAll(() => ({ backend, weights })).then((results) => {
        const r = results.get(this);
        if (r instanceof Error) throw r;
        return r;
      });
    }
    const previous = this.#restarting ?? Promise.resolve();
    const job = previous.catch(() => {}).then(() => this.replay({ backend, weights }));
    this.#restarting = job;
    job.catch(() => {}).finally(() => {
      if (this.#restarting === job) this.#restarting = null;
    });
    return job;
  }

  /** Moves the current network, with its current weights, to the other backend. */
  async switchBackend(backend) {
    let weights;
    if (this.lastLoad) weights = await this.exportWeights().catch(() => undefined);
    return this.restart({ backend, weights });
  }

  /** Ends this client: its own worker stops; in a shared worker its session is released. */
  terminate() {
    this.#endTrainPool(false);
    this.#helpers.forEach((h) => h.terminate());
    this.#helpers = [];
    if (this.#own) this.#hub.terminate();
    else this.#hub.send(this.session, 'release').catch(() => {});
    this.#hub.detach(this);
  }
}
