// The 2-D classifier (ConvNetJS's classify2d demo) as a panel, for the 2-D page and for
// <convlens-view view="toy2d">: a small fully connected net learns to separate two classes of
// points in the plane. The decision regions are drawn live behind the points, and a second view
// maps a grid through the net to show how a hidden layer warps the plane. Click to add a point of
// class 0, shift-click for class 1, right-click to remove the nearest.
//
// Its settings as a link or an element's attributes give them (see `params()`): toy=spiral&toySeed=2
// (or points=x,y,label;… for points placed by hand), spec=…&seed=3 for another network, trainer
// settings that differ from the panel's (learningRate=0.03), warp=LAYER:D0:D1. They reproduce the
// start of training (the same points and initial weights), not the weights trained since.
import { TrainingLoop } from '../training.js';
import { el } from './dom.js';
import { createTrainPanel } from './train-panel.js';

const VIEW = 6; // the plane shown: [-VIEW, VIEW]²
const SIZE = 440; // canvas pixels
const RES = 44; // decision-region grid cells per side
const LINES = 17; // warp grid lines per direction
const PER_LINE = 48;
const COLORS = [[33, 102, 172], [224, 130, 20]]; // blue, orange: distinguishable without red-green vision
export const TOYS = { circle: 'Circle', spiral: 'Spiral', xor: 'XOR', clusters: 'Gaussian clusters', empty: 'Empty (add your own)' };
export const TRAINER = { method: 'momentum', learningRate: 0.01, momentum: 0.9, batchSize: 10, l1: 0, l2: 0.001 };
/** The settings a link or an element's attributes give (besides the trainer's). */
export const TOY_KEYS = ['toy', 'toySeed', 'points', 'spec', 'seed', 'warp'];
const MAX_POINTS = 2000; // a link's hand-placed points
const SPEC_URL = new URL('../nets/toy2d.json', import.meta.url);

// Points are float32 (as the engine holds them); hand-placed ones at 0.01 steps (a pixel is 0.027
// here). A link writes each as the shortest decimal that reads back as the same float32.
const round2 = (v) => Math.fround(Math.round(v * 100) / 100);
function f32text(v) {
  for (let p = 1; p < 9; p++) {
    const t = Number(v.toPrecision(p));
    if (Math.fround(t) === v) return String(t);
  }
  return String(Number(v.toPrecision(9)));
}

function compactSpec(text) {
  try { return JSON.stringify(JSON.parse(text)); } catch { return text; }
}

/** Points from a link: x,y,label triples in the plane shown, at most MAX_POINTS; null if malformed. */
function parsePoints(text) {
  const points = [];
  const labels = [];
  const rows = text.split(';').filter((r) => r.trim());
  if (rows.length > MAX_POINTS) return null;
  for (const row of rows) {
    const [x, y, l] = row.split(',').map(Number);
    if (![x, y].every(Number.isFinite) || ![0, 1].includes(l)) return null;
    points.push(Math.fround(Math.min(VIEW, Math.max(-VIEW, x))), Math.fround(Math.min(VIEW, Math.max(-VIEW, y))));
    labels.push(l);
  }
  return { points, labels };
}

/**
 * ctx: {client, report(what, error), onChange() (the settings changed), onNet(summary) (a network
 * loaded), resetSeed() (the seed Reset weights uses; default the network's)}.
 */
export function createToy2dPanel(root, ctx) {
  const { client, report } = ctx;
  const state = {
    points: [], labels: [], toy: 'circle', seed: 1, summary: null, spec: '', warpLayer: null, d0: 0, d1: 1, trainer: null,
    // The net's seed, the preset's spec text, whether points were placed by hand, the warp view's
    // default (what a link leaves out), the last load error.
    netSeed: 1, defaultSpec: '', edited: false, warpDefault: '', loadError: null,
  };
  const changed = () => ctx.onChange?.();
  // Small chunks, each followed by a redraw: about ConvNetJS's pace, so that learning can be watched.
  const loop = new TrainingLoop(client, { between: () => drawSoon(true), maxSteps: 5 });
  const train = el('div');
  const newPoints = el('button.link', { id: 'toy-new', type: 'button', text: 'new random points' });
  const regions = el('canvas.plane', { id: 'regions', width: SIZE, height: SIZE, title: 'click: class 0 · shift-click: class 1 · right-click: remove' });
  const warp = el('canvas.plane', { id: 'warp', width: SIZE, height: SIZE });
  const layerSelect = el('select', { id: 'warp-layer', 'aria-label': 'hidden layer to show' });
  const d0 = el('select', { id: 'warp-d0', 'aria-label': 'first unit (x axis)' });
  const d1 = el('select', { id: 'warp-d1', 'aria-label': 'second unit (y axis)' });
  root.replaceChildren(
    el('section.panel', { 'aria-label': 'Training' }, el('h2', {}, 'Training ', newPoints), train),
    el('section.panel', { 'aria-label': 'The plane' }, el('div.views2d', { id: 'views' },
      el('figure', {}, regions, el('figcaption', { text: 'Decision regions (colour: the more likely class, paler where unsure) and the training points.' })),
      el('figure', {}, warp, el('figcaption', {}, 'The plane as layer ', layerSelect, ' sees it: neurons ', d0, ' and ', d1,
        ' of its output, for a grid of lines and for the points.')))));
  const panel = createTrainPanel(train, {
    datasets: TOYS,
    datasetKey: 'toy',
    chartWidth: 280,
    onRun: () => loop.start(),
    onPause: () => loop.pause(),
    onStep: () => loop.step(),
    onReset: () => loadNet(state.spec, ctx.resetSeed?.() ?? state.netSeed),
    onDataset: (name) => setToy(name, state.seed),
    onTrainer: setTrainer,
  });
  newPoints.onclick = () => setToy(state.toy, state.seed + 1);

  async function setTrainer(config) {
    try { state.trainer = await client.setTrainer(config); } catch (e) { report('Trainer settings not changed', e); }
    panel.setTrainer(state.trainer);
    changed();
  }

  const toPx = (v) => ((v + VIEW) / (2 * VIEW)) * SIZE;
  const fromPx = (p) => (p / SIZE) * 2 * VIEW - VIEW;

  function mouse(e) {
    const r = regions.getBoundingClientRect();
    return [fromPx((e.clientX - r.left) * (SIZE / r.width)), -fromPx((e.clientY - r.top) * (SIZE / r.height))];
  }

  regions.addEventListener('click', (e) => {
    const [x, y] = mouse(e);
    state.points.push(round2(x), round2(y));
    state.labels.push(e.shiftKey ? 1 : 0);
    state.edited = true;
    pointsChanged();
  });
  regions.addEventListener('contextmenu', (e) => {
    e.preventDefault();
    const [x, y] = mouse(e);
    let best = -1;
    let dist = Infinity;
    for (let i = 0; i < state.labels.length; i++) {
      const d = (state.points[2 * i] - x) ** 2 + (state.points[2 * i + 1] - y) ** 2;
      if (d < dist) { dist = d; best = i; }
    }
    if (best >= 0) {
      state.points.splice(2 * best, 2);
      state.labels.splice(best, 1);
      state.edited = true;
      pointsChanged();
    }
  });

  async function pointsChanged() {
    changed();
    if (!state.labels.length) {
      await loop.pause();
      panel.setNote('Add points: click for class 0, shift-click for class 1.');
      panel.setRunning(false, false);
      draw();
      return;
    }
    try {
      const info = await client.loadPoints(Float32Array.from(state.points), Uint8Array.from(state.labels));
      loop.setTestSize(info.test);
      panel.setRunning(loop.running, true);
      panel.setNote(`${info.train} points`);
    } catch (e) {
      report('Points', e);
    }
    drawSoon();
  }

  async function setToy(kind, seed) {
    state.toy = kind;
    state.seed = seed;
    state.edited = false;
    panel.setDataset(kind);
    if (kind === 'empty') {
      state.points = [];
      state.labels = [];
    } else {
      const t = await client.toyPoints(kind, seed);
      state.points = Array.from(t.points);
      state.labels = Array.from(t.labels);
    }
    await pointsChanged();
  }

  /** Layers whose output can be plotted in the warp view (hidden layers of 2 or more values). */
  function hiddenLayers() {
    return state.summary.layers.filter((l, i) => i > 0 && l.type !== 'softmax' && l.shape[0] * l.shape[1] * l.shape[2] >= 2);
  }

  const warpText = () => `${state.warpLayer}:${state.d0}:${state.d1}`;

  function buildWarpControls() {
    const layers = hiddenLayers();
    const two = layers.find((l) => l.shape[0] * l.shape[1] * l.shape[2] === 2);
    state.warpLayer = (two ?? layers[0])?.index ?? null;
    layerSelect.replaceChildren(...layers.map((l) => el('option', { value: l.index, text: `${l.index} ${l.name}` })));
    layerSelect.value = String(state.warpLayer);
    layerSelect.onchange = () => { state.warpLayer = Number(layerSelect.value); fillNeurons(); drawSoon(); changed(); };
    d0.onchange = () => { state.d0 = Number(d0.value); drawSoon(); changed(); };
    d1.onchange = () => { state.d1 = Number(d1.value); drawSoon(); changed(); };
    fillNeurons();
    state.warpDefault = warpText();
  }

  function fillNeurons() {
    const l = state.summary.layers[state.warpLayer];
    const n = l ? l.shape[0] * l.shape[1] * l.shape[2] : 0;
    const opts = () => Array.from({ length: n }, (_, i) => el('option', { value: i, text: String(i) }));
    d0.replaceChildren(...opts());
    d1.replaceChildren(...opts());
    state.d0 = 0;
    state.d1 = Math.min(1, n - 1);
    d0.value = '0';
    d1.value = String(state.d1);
  }

  /** `LAYER:D0:D1` from a link, if it names a hidden layer and two of its units. */
  function setWarp(text) {
    const [l, a, b] = String(text).split(':').map((v) => (/^\d+$/.test(v) ? Number(v) : -1));
    const layer = hiddenLayers().find((x) => x.index === l);
    const n = layer ? layer.shape[0] * layer.shape[1] * layer.shape[2] : 0;
    if (!layer || a < 0 || b < 0 || a >= n || b >= n) return false;
    state.warpLayer = l;
    layerSelect.value = String(l);
    fillNeurons();
    Object.assign(state, { d0: a, d1: b });
    d0.value = String(a);
    d1.value = String(b);
    return true;
  }

  /** Loads a network (random weights from `seed`); false, with the reason in state.loadError, if it cannot. */
  async function loadNet(text, seed) {
    await loop.pause();
    let summary;
    try {
      summary = await client.load(text, null, seed);
    } catch (e) {
      state.loadError = e.message;
      report('Network not changed', e);
      return false;
    }
    state.loadError = null;
    const [d, h, w] = [summary.input.depth, summary.input.height, summary.input.width];
    if (d * h * w !== 2 || summary.classes < 2) {
      report('Network loaded, but', new Error(`the 2-D page needs an input of 2 values (depth 2, 1x1) and at least 2 classes; this one takes ${d}x${h}x${w} and has ${summary.classes}`));
    }
    Object.assign(state, { summary, spec: text, netSeed: seed });
    ctx.onNet?.(summary);
    state.trainer = await client.setTrainer(state.trainer ?? TRAINER);
    panel.setTrainer(state.trainer);
    loop.reset();
    loop.setTestSize(state.labels.length);
    panel.update(loop.stats);
    buildWarpControls();
    drawSoon();
    changed();
    return true;
  }

  // ---- drawing ----

  let drawing = null;
  let pending = false;
  let lastDraw = 0;
  /** Redraws at most about 15 times a second; resolves when the latest state is drawn. */
  function drawSoon(wait = false) {
    if (!wait && performance.now() - lastDraw < 66 && loop.running) return Promise.resolve();
    if (drawing) {
      pending = true;
      return drawing;
    }
    drawing = (async () => {
      do {
        pending = false;
        lastDraw = performance.now();
        await draw().catch((e) => report('Drawing failed', e));
      } while (pending);
    })().finally(() => { drawing = null; });
    return drawing;
  }

  function gridInputs() {
    const g = new Float32Array(RES * RES * 2);
    for (let j = 0; j < RES; j++) {
      for (let i = 0; i < RES; i++) {
        g[2 * (j * RES + i)] = fromPx(((i + 0.5) / RES) * SIZE);
        g[2 * (j * RES + i) + 1] = -fromPx(((j + 0.5) / RES) * SIZE);
      }
    }
    return g;
  }

  function drawPoints(ctx, xy, labels, toX, toY) {
    for (let i = 0; i < labels.length; i++) {
      const [r, g, b] = COLORS[labels[i]] ?? [90, 90, 90];
      ctx.beginPath();
      ctx.arc(toX(xy[2 * i]), toY(xy[2 * i + 1]), 5, 0, 2 * Math.PI);
      ctx.fillStyle = `rgb(${r} ${g} ${b})`;
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = '#000';
      ctx.stroke();
    }
  }

  async function draw() {
    const s = state.summary;
    if (!s) return;
    const last = s.layers.length - 1;
    const probs = await client.forwardBatch(gridInputs(), last);
    const k = probs.length / (RES * RES);
    const ctx = regions.getContext('2d');
    const cell = SIZE / RES;
    for (let j = 0; j < RES; j++) {
      for (let i = 0; i < RES; i++) {
        const p = probs.subarray((j * RES + i) * k, (j * RES + i + 1) * k);
        let best = 0;
        for (let c = 1; c < k; c++) if (p[c] > p[best]) best = c;
        const [r, g, b] = COLORS[best] ?? [120, 120, 120];
        const a = 0.15 + 0.55 * Math.max(0, (p[best] - 1 / k) / (1 - 1 / k));
        ctx.fillStyle = `rgb(${255 + (r - 255) * a} ${255 + (g - 255) * a} ${255 + (b - 255) * a})`;
        ctx.fillRect(i * cell, j * cell, cell + 1, cell + 1);
      }
    }
    ctx.strokeStyle = '#0002';
    ctx.beginPath();
    ctx.moveTo(SIZE / 2, 0); ctx.lineTo(SIZE / 2, SIZE); ctx.moveTo(0, SIZE / 2); ctx.lineTo(SIZE, SIZE / 2);
    ctx.stroke();
    drawPoints(ctx, state.points, state.labels, toPx, (v) => toPx(-v));
    await drawWarp();
  }

  async function drawWarp() {
    const s = state.summary;
    const l = s.layers[state.warpLayer];
    const ctx = warp.getContext('2d');
    if (!l) {
      ctx.clearRect(0, 0, SIZE, SIZE);
      return;
    }
    const lines = [];
    for (let a = 0; a < LINES; a++) {
      const u = -VIEW + (2 * VIEW * a) / (LINES - 1);
      for (let b = 0; b < PER_LINE; b++) {
        const v = -VIEW + (2 * VIEW * b) / (PER_LINE - 1);
        lines.push(u, v);
      }
      for (let b = 0; b < PER_LINE; b++) {
        const v = -VIEW + (2 * VIEW * b) / (PER_LINE - 1);
        lines.push(v, u);
      }
    }
    const inputs = Float32Array.from([...lines, ...state.points]);
    const out = await client.forwardBatch(inputs, state.warpLayer);
    const n = out.length / (inputs.length / 2);
    const px = (i) => [out[i * n + state.d0], out[i * n + state.d1]];
    let [lo0, hi0, lo1, hi1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < inputs.length / 2; i++) {
      const [x, y] = px(i);
      lo0 = Math.min(lo0, x); hi0 = Math.max(hi0, x); lo1 = Math.min(lo1, y); hi1 = Math.max(hi1, y);
    }
    const span = Math.max(hi0 - lo0, hi1 - lo1, 1e-6) * 1.08;
    const c0 = (lo0 + hi0) / 2;
    const c1 = (lo1 + hi1) / 2;
    const toX = (x) => SIZE / 2 + ((x - c0) / span) * SIZE;
    const toY = (y) => SIZE / 2 - ((y - c1) / span) * SIZE;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, SIZE, SIZE);
    ctx.lineWidth = 1;
    for (let line = 0; line < 2 * LINES; line++) {
      ctx.strokeStyle = line % 2 ? '#8c8c8c80' : '#50505080';
      ctx.beginPath();
      for (let b = 0; b < PER_LINE; b++) {
        const [x, y] = px(line * PER_LINE + b);
        if (b === 0) ctx.moveTo(toX(x), toY(y));
        else ctx.lineTo(toX(x), toY(y));
      }
      ctx.stroke();
    }
    const offset = 2 * LINES * PER_LINE;
    const mapped = [];
    for (let i = 0; i < state.labels.length; i++) mapped.push(...px(offset + i));
    drawPoints(ctx, mapped, state.labels, toX, toY);
  }

  
  /** The panel's settings as a link writes them (trainer settings only where they differ from TRAINER). */
  function params() {
    const q = new URLSearchParams();
    q.set('toy', state.toy);
    if (state.toy !== 'empty') q.set('toySeed', String(state.seed));
    if (state.edited) q.set('points', state.labels.map((l, i) => `${f32text(state.points[2 * i])},${f32text(state.points[2 * i + 1])},${l}`).join(';'));
    if (state.spec && compactSpec(state.spec) !== compactSpec(state.defaultSpec)) q.set('spec', compactSpec(state.spec));
    if (state.netSeed !== 1 || q.has('spec')) q.set('seed', String(state.netSeed));
    const round = (v) => (typeof v === 'number' ? Number(v.toPrecision(6)) : v);
    for (const [k, v] of Object.entries(state.trainer ?? {})) {
      if (k in TRAINER && round(v) !== round(TRAINER[k])) q.set(k, String(round(v)));
    }
    if (state.summary && warpText() !== state.warpDefault) q.set('warp', warpText());
    return q;
  }

  /**
   * Starts from a link's settings (the defaults where it gives none); resolves to what in them
   * could not be used, in words (the rest is used, clamped to the engine's ranges).
   */
  async function init(given) {
    const problems = [];
    const urlTrainer = await client.request('settingsFromUrl', { technique: 'trainer', given: Object.fromEntries(given) });
    state.trainer = { ...TRAINER, ...urlTrainer };
    state.defaultSpec = await fetch(SPEC_URL).then((r) => {
      if (!r.ok) throw new Error(`cannot load ${SPEC_URL}: HTTP ${r.status}`);
      return r.text();
    });
    const seed = Math.min(2 ** 32 - 1, Math.max(0, Math.floor(Number(given.get('seed') ?? 1)) || 0));
    const text = given.get('spec') ?? state.defaultSpec;
    if (!(await loadNet(text, seed))) {
      problems.push('its network could not be loaded, so the default one is shown');
      await loadNet(state.defaultSpec, 1);
    }
    const toy = TOYS[given.get('toy')] ? given.get('toy') : 'circle';
    if (given.has('toy') && toy !== given.get('toy')) problems.push(`there are no '${given.get('toy')}' points (${Object.keys(TOYS).join(', ')})`);
    const toySeed = Math.min(1e6, Math.max(1, Math.floor(Number(given.get('toySeed') ?? 1)) || 1));
    if (given.has('points')) {
      const points = parsePoints(given.get('points'));
      if (points) {
        Object.assign(state, { toy, seed: toySeed, edited: true, ...points });
        panel.setDataset(toy);
        await pointsChanged();
      } else {
        problems.push(`its points are not x,y,label triples (at most ${MAX_POINTS}), so the ${TOYS[toy]} points are shown`);
        await setToy(toy, toySeed);
      }
    } else await setToy(toy, toySeed);
    if (given.has('warp') && !setWarp(given.get('warp'))) problems.push(`warp '${given.get('warp')}' does not name a hidden layer and two of its units`);
    await drawSoon(true);
    return problems;
  }

  loop.addEventListener('stats', () => panel.update(loop.stats));
  loop.addEventListener('state', () => {
    panel.setRunning(loop.running, state.labels.length > 0);
    if (!loop.running) drawSoon();
    changed();
  });
  loop.addEventListener('error', (e) => ctx.trainingStopped?.(e.detail.error, (rate) => setTrainer({ learningRate: rate })));

  return {
    init, params, loadNet, setToy, setTrainer, loop,
    draw: drawSoon,
    /** Trains (the element's run()); resolves once started. */
    start: () => loop.start(),
    pause: () => loop.pause(),
    cancel: () => loop.pause(),
    get state() {
      return { ...state, examples: loop.stats.examples, running: loop.running, done: true };
    },
    get raw() { return state; },
  };
}
