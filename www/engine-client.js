// Page side of the worker protocol (docs/ENGINE_API.md): promise-based requests, and automatic restart of
// the worker after a Rust panic (re-sends init and the last successful load).
// Events: 'panic' {message}, 'restarted' {backend, webgpu}, 'error' {error}.
export class EngineClient extends EventTarget {
  #worker = null;
  #pending = new Map();
  #nextId = 1;
  #restarting = null;

  /** Resolved backend and WebGPU availability from the last init: { backend, webgpu }. */
  info = null;
  /** The last successful load: { spec, weights, seed }. */
  lastLoad = null;
  /** The Summary returned by the last successful load. */
  summary = null;

  constructor() {
    super();
    this.#spawn();
  }

  #spawn() {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (e) => this.#onMessage(e.data);
    worker.onerror = (e) => {
      e.preventDefault?.();
      const error = new Error(`engine worker failed: ${e.message || 'could not start www/worker.js'}`);
      this.#rejectAll(error);
      this.dispatchEvent(new CustomEvent('error', { detail: { error } }));
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
      this.#onPanic(msg.message);
      return;
    }
    const entry = this.#pending.get(msg?.id);
    if (!entry) return;
    this.#pending.delete(msg.id);
    if (msg.ok) entry.resolve(msg.result);
    else entry.reject(new Error(msg.error));
  }

  #onPanic(message) {
    this.#kill(new Error(`engine panicked: ${message}`));
    this.dispatchEvent(new CustomEvent('panic', { detail: { message } }));
    this.restart().then(
      (info) => this.dispatchEvent(new CustomEvent('restarted', { detail: info })),
      (error) => this.dispatchEvent(new CustomEvent('error', { detail: { error } })),
    );
  }

  #send(cmd, args = {}, transfer = []) {
    return new Promise((resolve, reject) => {
      if (!this.#worker) this.#spawn();
      const id = this.#nextId++;
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, cmd, args }, transfer);
    });
  }

  /** Sends one command; waits for a restart in progress first. */
  async request(cmd, args = {}, transfer = []) {
    while (this.#restarting) await this.#restarting.catch(() => {});
    return this.#send(cmd, args, transfer);
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
    this.summary = summary;
    return summary;
  }

  probe(input, objective) {
    return this.request('probe', { input, objective });
  }

  /** SGD over N examples (images: Float32Array of N*C*H*W, labels: Uint32Array); resolves to the mean loss. */
  train(images, labels, config) {
    return this.request('train', { images, labels, config });
  }

  /** The network spec stored in a ConvLens safetensors file (throws if corrupt or absent). */
  embeddedSpec(bytes) {
    return this.request('embeddedSpec', { bytes });
  }

  exportWeights() {
    return this.request('exportWeights', {});
  }

  /**
   * Replaces the worker with a fresh one on `backend` (default: the current one), then re-sends the last
   * load, with `weights` instead of the last ones if given.
   */
  restart({ backend = this.info?.backend ?? 'auto', weights } = {}) {
    const previous = this.#restarting ?? Promise.resolve();
    const run = async () => {
      this.#kill(new Error('engine restarted'));
      this.#spawn();
      this.info = await this.#send('init', { backend });
      if (this.lastLoad) {
        const load = weights === undefined ? this.lastLoad : { ...this.lastLoad, weights };
        this.summary = await this.#send('load', load);
        this.lastLoad = load;
      }
      return this.info;
    };
    const job = previous.catch(() => {}).then(run);
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

  terminate() {
    this.#kill(new Error('engine terminated'));
  }
}
