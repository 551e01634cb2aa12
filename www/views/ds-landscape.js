// The loss surface around the trained weights (crates/core/src/vis/landscape.rs): the loss and
// accuracy along the line from an initialization to the trained weights (Goodfellow et al. 2015),
// or a 2-D slice along two random filter-normalized directions (Li et al. 2018), drawn as it is
// evaluated: the plane's 11 x 11 coarse grid first, then every point; and the seeds experiment
// (Choromanska et al. 2015; crates/core/src/vis/seeds.rs): the final test losses of nets trained
// from several seeds at several widths, whose spread shrinks as the nets grow. The engine
// evaluates and trains; this view draws (a log-loss heatmap with contour lines, uPlot charts, a
// table).
import uPlot from '../vendor/uPlot.esm.js';
import { VIRIDIS } from './colormap.js';
import { countText, el, fmt } from './dom.js';
import { createForm, schemaFields, settingsOf } from './opt-run.js';
import { runControls } from './ds-run.js';

const SIDE = 408;
const LEVELS = 12;

function viridis(t, out, i) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const k = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - k;
  for (let j = 0; j < 3; j++) out[i + j] = VIRIDIS[k][j] + (VIRIDIS[k + 1][j] - VIRIDIS[k][j]) * f;
  out[i + 3] = 255;
}

export function createLandscapeView(root, ctx) {
  const { client } = ctx;
  const keys = ['kind', 'images', 'split', 'points', 'from', 'to', 'initSeed', 'span', 'seed', 'widths', 'seeds', 'steps', 'learningRate'];
  let form = null;
  const formBox = el('div');
  const run = el('button.primary', { type: 'button', id: 'landscape-run', text: 'Evaluate' });
  const cancel = el('button', { type: 'button', id: 'landscape-cancel', text: 'Cancel', disabled: true });
  const bar = el('progress', { max: 1, value: 0, 'aria-label': 'progress' });
  const info = el('span.hint', { id: 'landscape-info' });
  const canvas = el('canvas', { id: 'landscape-plane', width: SIDE, height: SIDE, 'aria-label': 'loss surface' });
  canvas.style.width = `${SIDE}px`;
  canvas.style.height = `${SIDE}px`;
  const chartBox = el('div.ds-line', { id: 'landscape-line' });
  const seedsBox = el('div.ds-line', { id: 'landscape-seeds' });
  const readout = el('div.hint', { id: 'landscape-readout' });
  const scale = el('div.ds-scale');
  root.append(
    el('h2', { text: 'The loss surface' }),
    el('p.hint', {
      text: 'Line: the weights θ(α) = θ₀ + α (θ₁ − θ₀) from a random initialization θ₀ (α = 0) to the trained weights θ₁ (α = 1) and past '
        + 'both (Goodfellow, Vinyals & Saxe 2015). Plane: θ₁ + a δ₁ + b δ₂ for two random directions, each filter rescaled to the norm of '
        + 'the trained filter (Li et al. 2018); the centre is the trained net. Each point is the mean cross-entropy on the same test images. '
        + 'Seeds: nets of this architecture trained from scratch from several seeds at several widths (every hidden layer\'s filters or units '
        + 'times the width); small nets end in minima of very different quality, and the spread of their test losses shrinks as the nets grow '
        + '(Choromanska et al. 2015).',
    }),
    formBox,
    el('div.row', {}, run, cancel, bar, info),
    el('div.ds-maps', {}, el('div', {}, canvas, scale), chartBox, seedsBox),
    readout,
  );
  const controls = runControls(run, cancel);
  let state = null;
  let plot = null;

  function buildForm() {
    form = createForm(schemaFields(ctx.schemas.landscape, keys, {
      kind: { id: 'landscape-kind' },
      images: { id: 'landscape-images', label: 'test images (0: 1,000 line and seeds, 256 plane)' },
      widths: { id: 'landscape-widths' },
      seeds: { id: 'landscape-seed-count' },
      steps: { id: 'landscape-steps' },
      points: { id: 'landscape-points', label: 'points (0: 81 line, 51 plane)' },
    }));
    formBox.replaceChildren(form.node);
    const showFor = () => {
      const k = form.inputs.kind.input.value;
      for (const [key, { input }] of Object.entries(form.inputs)) {
        const group = ctx.schemas.landscape.fields.find((x) => x.key === key)?.group;
        input.closest('label').hidden = (Boolean(group) && group !== k) || (key === 'points' && k === 'seeds');
      }
      canvas.parentNode.hidden = k !== 'plane';
      chartBox.hidden = k !== 'line';
      seedsBox.hidden = k !== 'seeds';
      run.textContent = k === 'seeds' ? 'Train' : 'Evaluate';
    };
    form.inputs.kind.input.onchange = showFor;
    showFor();
  }

  /** The plane's loss as drawn: log loss, each point not yet evaluated taking its nearest evaluated one. */
  function field(l) {
    const p = l.axis.length;
    const v = new Float32Array(p * p);
    const known = [];
    for (let k = 0; k < p * p; k++) if (Number.isFinite(l.loss[k])) known.push(k);
    for (let k = 0; k < p * p; k++) {
      if (Number.isFinite(l.loss[k])) { v[k] = Math.log(Math.max(1e-6, l.loss[k])); continue; }
      const [r, c] = [Math.floor(k / p), k % p];
      let best = -1;
      let bd = Infinity;
      for (const j of known) {
        const d = (Math.floor(j / p) - r) ** 2 + ((j % p) - c) ** 2;
        if (d < bd) { bd = d; best = j; }
      }
      v[k] = best >= 0 ? Math.log(Math.max(1e-6, l.loss[best])) : NaN;
    }
    return v;
  }

  function drawPlane(l) {
    const p = l.axis.length;
    const g = canvas.getContext('2d');
    const v = field(l);
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of v) if (Number.isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    const img = g.createImageData(SIDE, SIDE);
    const at = (x, y) => {
      // Bilinear in grid coordinates; rows run from b = −span (bottom) to +span (top).
      const fx = Math.min(p - 1, Math.max(0, (x + 0.5) / SIDE * p - 0.5));
      const fy = Math.min(p - 1, Math.max(0, (SIDE - y - 0.5) / SIDE * p - 0.5));
      const x0 = Math.floor(fx); const y0 = Math.floor(fy);
      const x1 = Math.min(p - 1, x0 + 1); const y1 = Math.min(p - 1, y0 + 1);
      const tx = fx - x0; const ty = fy - y0;
      return (v[y0 * p + x0] * (1 - tx) + v[y0 * p + x1] * tx) * (1 - ty) + (v[y1 * p + x0] * (1 - tx) + v[y1 * p + x1] * tx) * ty;
    };
    const vals = new Float32Array(SIDE * SIDE);
    for (let y = 0; y < SIDE; y++) for (let x = 0; x < SIDE; x++) vals[y * SIDE + x] = at(x, y);
    if (!Number.isFinite(lo)) return;
    const level = (x) => Math.floor(((x - lo) / (hi - lo || 1)) * LEVELS);
    for (let y = 0; y < SIDE; y++) {
      for (let x = 0; x < SIDE; x++) {
        const i = y * SIDE + x;
        const l0 = level(vals[i]);
        const edge = (x + 1 < SIDE && level(vals[i + 1]) !== l0) || (y + 1 < SIDE && level(vals[i + SIDE]) !== l0);
        if (!Number.isFinite(vals[i])) img.data.set([230, 230, 230, 255], i * 4);
        else if (edge) img.data.set([255, 255, 255, 255], i * 4);
        else viridis((vals[i] - lo) / (hi - lo || 1), img.data, i * 4);
      }
    }
    g.putImageData(img, 0, 0);
    // The trained weights at the centre.
    g.strokeStyle = '#e15759';
    g.lineWidth = 2;
    g.beginPath();
    g.arc(SIDE / 2, SIDE / 2, 5, 0, 2 * Math.PI);
    g.stroke();
    scale.textContent = `loss ${fmt(Math.exp(lo))} (dark) to ${fmt(Math.exp(hi))} (yellow), log scale; white lines every ${fmt((hi - lo) / LEVELS)} in log loss; `
      + `a, b ∈ [${fmt(l.axis[0])}, ${fmt(l.axis[p - 1])}]`;
  }

  function drawLine(l) {
    const xs = Array.from(l.axis);
    const loss = Array.from(l.loss, (v) => (Number.isFinite(v) ? v : null));
    const acc = Array.from(l.accuracy, (v) => (Number.isFinite(v) ? 100 * v : null));
    if (!plot) {
      chartBox.replaceChildren();
      plot = new uPlot({
        width: 520, height: 300, title: 'loss and accuracy along θ(α)',
        scales: { x: { time: false }, acc: { range: [0, 100] } },
        axes: [{ label: 'α (0: initialization, 1: trained)' }, { label: 'loss', size: 50 }, { scale: 'acc', side: 1, label: 'accuracy %', grid: { show: false } }],
        series: [{}, { label: 'loss', stroke: '#4e79a7', width: 2 }, { label: 'accuracy', scale: 'acc', stroke: '#f28e2b', width: 2 }],
      }, [xs, loss, acc], chartBox);
    } else plot.setData([xs, loss, acc]);
  }

  /** The seeds experiment: each net's final test loss against its width (log scale), the band from the lowest to the highest, and a table. */
  let seedsPlot = null;
  const seedsChart = el('div');
  const seedsTable = el('table.opt-table', { id: 'landscape-seeds-table' });
  seedsBox.append(seedsChart, seedsTable);
  function drawSeeds(sd) {
    const w = sd.widths.length;
    const k = sd.seeds;
    const col = (j) => Array.from({ length: w }, (_, i) => (Number.isFinite(sd.spread[i * 4 + j]) ? sd.spread[i * 4 + j] : null));
    const perSeed = Array.from({ length: k }, (_, s) => Array.from({ length: w }, (_, i) => {
      const v = sd.loss[i * k + s];
      return sd.outcome[i * k + s] === 'done' && Number.isFinite(v) ? v : null;
    }));
    const data = [Array.from(sd.widths), col(3), col(0), col(2), ...perSeed];
    if (!seedsPlot || seedsPlot.series.length !== data.length) {
      seedsChart.replaceChildren();
      const dot = (s) => ({
        label: `seed ${s + 1}`, stroke: '#4e79a7', paths: () => null, points: { show: true, size: 7, fill: '#4e79a7' },
      });
      seedsPlot = new uPlot({
        width: 520, height: 300, title: 'final test loss of each net against its width',
        scales: { x: { time: false, distr: 3, log: 2 } },
        axes: [{ label: 'width (× the net\'s filters and units)' }, { label: 'test loss', size: 56 }],
        legend: { show: false },
        bands: [{ series: [1, 3], fill: 'rgba(242,142,43,0.18)' }],
        series: [{}, { label: 'highest', stroke: '#f28e2b', width: 1, dash: [4, 4] }, { label: 'mean', stroke: '#e15759', width: 2 },
          { label: 'lowest', stroke: '#f28e2b', width: 1, dash: [4, 4] }, ...Array.from({ length: k }, (_, s) => dot(s))],
      }, data, seedsChart);
    } else seedsPlot.setData(data);
    const f4 = (v) => (Number.isFinite(v) ? v.toFixed(4) : '–');
    const head = el('tr', {}, ...['width', 'parameters', 'nets', 'test loss mean', 'spread (sd)', 'lowest', 'highest', 'accuracy'].map((t) => el('th', { text: t })));
    const rows = Array.from(sd.widths, (x, i) => {
      const outs = Array.from({ length: k }, (_, s) => sd.outcome[i * k + s]);
      const done = outs.filter((o) => o === 'done').length;
      const diverged = outs.filter((o) => o === 'diverged').length;
      const accs = Array.from({ length: k }, (_, s) => sd.accuracy[i * k + s]).filter((v, s) => outs[s] === 'done' && Number.isFinite(v));
      const acc = accs.length ? `${fmt(100 * accs.reduce((a, b) => a + b, 0) / accs.length)}%` : '–';
      return el('tr', {}, ...[fmt(x), countText(sd.params[i]), `${done} of ${k}${diverged ? ` (${diverged} diverged)` : ''}`,
        f4(sd.spread[i * 4]), f4(sd.spread[i * 4 + 1]), f4(sd.spread[i * 4 + 2]), f4(sd.spread[i * 4 + 3]), acc].map((t) => el('td', { text: t })));
    });
    seedsTable.replaceChildren(el('caption', { text: `${k} seeds per width, ${countText(sd.steps)} steps each, test loss on ${countText(sd.images)} images` }), head, ...rows);
  }

  function draw() {
    if (state?.seeds) { drawSeeds(state.seeds); return; }
    const l = state?.landscape;
    if (!l) return;
    if (l.slice === 'plane') drawPlane(l);
    else drawLine(l);
  }

  canvas.onmousemove = (ev) => {
    const l = state?.landscape;
    if (!l || l.slice !== 'plane') return;
    const r = canvas.getBoundingClientRect();
    const p = l.axis.length;
    const c = Math.min(p - 1, Math.max(0, Math.round(((ev.clientX - r.left) / r.width) * p - 0.5)));
    const row = Math.min(p - 1, Math.max(0, Math.round(((r.bottom - ev.clientY) / r.height) * p - 0.5)));
    const k = row * p + c;
    readout.textContent = Number.isFinite(l.loss[k])
      ? `a = ${fmt(l.axis[c])}, b = ${fmt(l.axis[row])}: loss ${fmt(l.loss[k])}, accuracy ${fmt(100 * l.accuracy[k])}%`
      : `a = ${fmt(l.axis[c])}, b = ${fmt(l.axis[row])}: not evaluated yet`;
  };

  async function start() {
    const controller = controls.begin();
    const s = settingsOf(form, keys);
    ctx.hash.set(s);
    plot = null;
    seedsPlot = null;
    chartBox.replaceChildren();
    seedsChart.replaceChildren();
    seedsTable.replaceChildren();
    const t0 = performance.now();
    let coarseAt = null;
    try {
      const done = await client.datasetView('landscape', s, {
        signal: controller.signal,
        onProgress: (st) => {
          state = st;
          bar.value = st.total ? st.step / st.total : 1;
          const secs = (performance.now() - t0) / 1000;
          if (st.seeds) {
            const finished = st.seeds.outcome.filter((o) => o !== 'pending').length;
            info.textContent = `${countText(finished)} of ${countText(st.seeds.outcome.length)} nets trained · step ${countText(st.step)} of ${countText(st.total)} · ${fmt(secs)} s`;
            draw();
            return;
          }
          if (coarseAt === null && st.landscape.coarseDone) coarseAt = secs;
          info.textContent = `${countText(st.step)} of ${countText(st.total)} points on ${countText(st.landscape.images)} images · ${fmt(secs)} s`
            + (st.workers > 1 ? ` · ${st.workers} workers` : '')
            + (coarseAt !== null && st.landscape.slice === 'plane' ? ` (coarse grid in ${fmt(coarseAt)} s)` : '');
          draw();
        },
      });
      if (!done) info.textContent = 'cancelled';
    } catch (e) {
      info.textContent = 'stopped by an error';
      ctx.report('The loss surface failed', e);
    } finally {
      controls.end(controller);
    }
  }

  run.onclick = () => start();
  const api = {
    setNet() {
      api.cancel();
      state = null;
      plot = null;
      seedsPlot = null;
      chartBox.replaceChildren();
      seedsChart.replaceChildren();
      seedsTable.replaceChildren();
      canvas.getContext('2d').clearRect(0, 0, SIDE, SIDE);
      info.textContent = '';
      buildForm();
    },
    cancel() {
      controls.cancel();
    },
    async fromHash(h) {
      const given = Object.fromEntries([...h].filter(([k]) => keys.includes(k)));
      if (!Object.keys(given).length) return;
      form.set(await client.request('settingsFromUrl', { technique: 'landscape', given }));
      form.inputs.kind.input.onchange();
      await start();
    },
    get state() { return state; },
    /** The settings form (the <convlens-view> element fills it from its attributes). */
    get form() { return form; },
    start,
  };
  return api;
}
