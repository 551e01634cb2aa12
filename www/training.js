// The training loop, page side: asks the worker for chunks of steps (sized to take about 150 ms, so
// the page stays responsive and pause is immediate), keeps the statistics the panel shows, and
// between chunks lets the page refresh its views and estimates validation accuracy on a rolling
// window of test images. Events: 'stats', 'state' (running or not), 'error' {error}.

const CHUNK_MS = 150;
const WINDOW = 100; // batches in the smoothed loss and training accuracy (as ConvNetJS)
const VAL_WINDOW = 500; // test images in the validation estimate
const VAL_EVERY_MS = 1500;
const VAL_BATCH = 100;

export class TrainingLoop extends EventTarget {
  running = false;
  #client;
  #between;
  #steps = 1;
  #busy = null;

  /**
   * between(): awaited after each chunk (the page redraws its views there, throttled by itself).
   * maxSteps: the largest chunk (the 2-D page keeps chunks small so that training can be watched).
   */
  constructor(client, { between = async () => {}, maxSteps = 500 } = {}) {
    super();
    this.#client = client;
    this.#between = between;
    this.maxSteps = maxSteps;
    this.reset();
  }

  /** Forgets all statistics (a new net or dataset). */
  reset() {
    this.stats = {
      examples: 0, epoch: 0, steps: 0,
      recentLoss: [], recentCorrect: [], recentBatch: [],
      loss: null, trainAcc: null, valAcc: null, valCount: 0,
      forwardMs: null, backwardMs: null, examplesPerSec: null, workers: 1,
      history: { examples: [], loss: [], trainAcc: [], valAcc: [] },
    };
    this.val = { next: 0, results: [], lastAt: 0, testSize: 0 };
    this.#steps = 1;
  }

  setTestSize(n) {
    this.val = { next: 0, results: [], lastAt: 0, testSize: n };
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.dispatchEvent(new Event('state'));
    this.#busy = this.#loop();
  }

  /** Stops after the chunk in flight; resolves when it is done. */
  async pause() {
    if (!this.running) return this.#busy;
    this.running = false;
    this.dispatchEvent(new Event('state'));
    await this.#busy?.catch(() => {});
    // The last step is judged now (a later chunk's first loss would have judged it).
    try {
      await this.#client.checkLastStep();
    } catch (e) {
      this.#fail(e);
      return;
    }
    // A fresh look at the validation estimate for the weights training stopped at.
    if (this.stats.steps > 0) {
      await this.#validate().catch(() => {});
      this.dispatchEvent(new Event('stats'));
    }
  }

  /** One minibatch step (while paused). */
  async step() {
    if (this.running) return;
    await this.#busy?.catch(() => {});
    this.#busy = this.#chunk(1)
      .then(() => this.#client.checkLastStep())
      .then(() => this.#between(true))
      .catch((e) => this.#fail(e));
    await this.#busy;
  }

  #fail(error) {
    this.running = false;
    this.dispatchEvent(new Event('state'));
    this.dispatchEvent(new CustomEvent('error', { detail: { error } }));
  }

  async #loop() {
    try {
      while (this.running) {
        const t0 = performance.now();
        await this.#chunk(this.#steps);
        const ms = performance.now() - t0;
        // Aim each chunk at CHUNK_MS.
        const ideal = this.#steps * (CHUNK_MS / Math.max(ms, 1));
        this.#steps = Math.max(1, Math.min(this.maxSteps, Math.round(0.5 * this.#steps + 0.5 * ideal)));
        if (performance.now() - this.val.lastAt > VAL_EVERY_MS) await this.#validate();
        await this.#between(false);
      }
    } catch (e) {
      this.#fail(e);
    }
  }

  async #chunk(steps) {
    const t0 = performance.now();
    const r = await this.#client.trainSteps(steps);
    const wall = performance.now() - t0;
    const s = this.stats;
    for (let i = 0; i < r.losses.length; i++) {
      s.recentLoss.push(r.losses[i]);
      s.recentCorrect.push(r.correct[i]);
      s.recentBatch.push(r.batchSize);
    }
    for (const k of ['recentLoss', 'recentCorrect', 'recentBatch']) s[k].splice(0, Math.max(0, s[k].length - WINDOW));
    s.steps += r.losses.length;
    s.examples = r.totalExamples;
    s.epoch = r.epoch;
    s.loss = s.recentLoss.reduce((a, b) => a + b, 0) / s.recentLoss.length;
    s.trainAcc = s.recentCorrect.reduce((a, b) => a + b, 0) / s.recentBatch.reduce((a, b) => a + b, 0);
    const ema = (old, v) => (old === null ? v : 0.8 * old + 0.2 * v);
    // The times are this engine's, for the examples the pool's workers did not compute.
    const here = Math.max(1, r.examples - (r.pooled ?? 0));
    s.forwardMs = ema(s.forwardMs, r.forwardMs / here);
    s.backwardMs = ema(s.backwardMs, (r.backwardMs + r.syncMs) / here);
    s.workers = r.pooled > 0 ? this.#client.trainingWorkers : 1;
    s.examplesPerSec = ema(s.examplesPerSec, r.examples / (wall / 1000));
    const h = s.history;
    h.examples.push(s.examples);
    h.loss.push(s.loss);
    h.trainAcc.push(s.trainAcc);
    h.valAcc.push(s.valAcc);
    if (h.examples.length > 4000) for (const k of Object.keys(h)) h[k] = h[k].filter((_, i) => i % 2 === 0);
    this.dispatchEvent(new Event('stats'));
  }

  /** Classifies the next VAL_BATCH test images; the estimate is over the last VAL_WINDOW. */
  async #validate() {
    const v = this.val;
    if (!v.testSize) return;
    const count = Math.min(VAL_BATCH, v.testSize - v.next);
    const { probs, labels } = await this.#client.evaluate('test', v.next, count);
    const k = probs.length / labels.length;
    for (let i = 0; i < labels.length; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + best]) best = c;
      v.results.push(best === labels[i] ? 1 : 0);
    }
    v.results.splice(0, Math.max(0, v.results.length - Math.min(VAL_WINDOW, v.testSize)));
    v.next = (v.next + count) % v.testSize;
    v.lastAt = performance.now();
    this.stats.valAcc = v.results.reduce((a, b) => a + b, 0) / v.results.length;
    this.stats.valCount = v.results.length;
  }
}
