// The attribution page: for one image and one target (a class score or probability, a neuron, a
// channel), every gradient-based map side by side, Grad-CAM, and occlusion. The engine computes
// (crates/core/src/vis/attribution.rs, occlusion.rs); this module only asks and draws.
import { EngineClient } from './engine-client.js';
import { dataBase } from './config.js';
import { datasetSamples, loadTfjs, TINY_VGG_CLASSES, TINY_VGG_IMAGES } from './models.js';
import { fetchPreset } from './presets.js';
import { createBackendView } from './views/backend.js';
import { createBanner } from './views/banner.js';
import { createDrawInput, fitToInput } from './views/draw-input.js';
import { drawImage, drawPlane, grayMap, makeCanvas, pixelAt, zoomFor } from './views/draw.js';
import { loadSquare } from './views/image-io.js';
import { el, fmt } from './views/dom.js';
import { createMapCard, createOcclusionView, METHODS } from './views/attribution-maps.js';
import { parseTarget } from './views/attr-panel.js';
import { attributes, createShareBox } from './views/share.js';
import { addUserModel, USER_EMBED } from './views/import.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const DATA = dataBase(); // served from $CONVLENS_DATA_DIR (npm run download-data), or www/config.js's URL

export const NETS = {
  // MNIST's test digits from the data directory (one training sheet is enough here), else the
  // built-in digits: the images <convlens-view net="mnist" image="K"> shows too.
  mnist: { label: 'MNIST net (99.0% on MNIST)', preset: 'mnist', dataset: 'mnist', base: DATA, sheets: 1, fallback: 'mnist5k', patch: { window: 4, stride: 2 } },
  cifar10: { label: 'CIFAR-10 net (58.6%)', preset: 'cifar10', dataset: 'cifar10', base: DATA, sheets: 1, patch: { window: 6, stride: 2 } },
  'tiny-vgg': { label: 'Tiny VGG (CNN Explainer, 10 Tiny ImageNet classes)', tfjs: new URL('tiny-vgg/', DATA), classes: TINY_VGG_CLASSES, patch: { window: 8, stride: 2 } },
};

const state = {
  net: null, summary: null, classNames: [], input: null, inputName: '', probs: null, predicted: null,
  target: null, autoTarget: true, occlusionClass: null,
  // The engine's settings schema (crates/core: vis::attribution::schema) gives the defaults and
  // ranges; these are the page's own choices only.
  settings: { display: 'auto', camLayer: null },
  schema: {},
  occlusion: { window: 4, stride: 2, fill: 'gray' },
  results: {}, backend: null, webgpu: false,
};
const client = new EngineClient();
const banner = createBanner($('banner'));
const status = (t) => { $('status').textContent = t; };
function report(what, e) {
  console.error(what, e);
  banner.show(`${what}: ${e?.message ?? e}`);
}

const backendView = createBackendView($('backend'), {
  onSwitch: async (b) => {
    occlusionView.cancel();
    try {
      const info = await client.switchBackend(b);
      Object.assign(state, { backend: info.backend, webgpu: info.webgpu });
    } catch (e) { report('Could not switch the backend', e); }
    backendView.update(state);
    refresh();
  },
});

// ---- network ------------------------------------------------------------------------------------
const netSelect = el('select', { id: 'net-select', 'aria-label': 'network' }, ...Object.entries(NETS).map(([k, n]) => el('option', { value: k, text: n.label })));
const netInfo = el('p.hint', { id: 'net-info' });
netSelect.onchange = () => selectNet(netSelect.value).catch((e) => report(`Could not load ${NETS[netSelect.value].label}`, e));
$('net').replaceChildren(netSelect, netInfo);
// Your own model (views/import.js): offered in the list, opened by its button or a drop.
const userModel = addUserModel({ nets: NETS, select: netSelect, root: $('net'), client, report, data: DATA, selectNet: (n) => selectNet(n), current: () => state.net });



async function selectNet(name) {
  const net = NETS[name];
  if (!net) throw new Error(`unknown network '${name}'`);
  occlusionView.cancel();
  status(`loading ${net.label}…`);
  const summary = net.user ? await client.load(net.user.spec, net.user.weights, 0) : net.tfjs ? await loadTfjs(client, net.tfjs) : await (async () => {
    const p = await fetchPreset(net.preset);
    return client.load(p.specText, p.weightBytes, 0);
  })();
  Object.assign(state, { net: name, summary, classNames: net.classes ?? summary.classNames, autoTarget: true, results: {} });
  netSelect.value = name;
  netInfo.textContent = `${summary.layers.length} layers, ${summary.params.toLocaleString('en-US')} parameters; input `
    + `${summary.input.width}×${summary.input.height}×${summary.input.depth}.`;
  buildSettings();
  // The net's patch size, unless the URL gives one (?window=6&stride=3, clamped by the engine).
  occlusionView.setDefaults({ ...net.patch, ...state.urlOcclusion });
  await loadSamples(name);
  status('ready');
}

// ---- images -------------------------------------------------------------------------------------
const inputCanvas = makeCanvas(1, 1);
const inputText = el('div.input-text');
$('input-info').replaceChildren(inputCanvas, inputText);
const drawInput = createDrawInput($('draw'), {
  live: true,
  onInput: ({ data, shape, name }) => setInput(fitToInput(data, shape, state.summary.input), name),
  onError: (e) => report('Could not use that image', e),
});

/** A photo as the net's input: the centre crop of the input's shape, scaled (the page's other views do the same). */
function decodeRgb(url, { depth, height, width }) {
  return loadSquare(url, [height, width], depth);
}

async function loadSamples(name) {
  const net = NETS[name];
  const { depth, height, width } = state.summary.input;
  drawInput.setShape(net.dataset ? (net.dataset === 'cifar10' ? [3, 32, 32] : [1, 28, 28]) : [depth, height, width]);
  $('draw').hidden = depth !== 1;
  uploadButton.parentNode.hidden = depth === 1; // the draw pad has its own upload
  let samples = [];
  try {
    if (net.dataset) {
      try {
        await client.loadDataset(net.dataset, net.base, net.sheets);
      } catch (e) {
        if (!net.fallback) throw e;
        const what = `${net.dataset} is not in the data directory (run \`npm run download-data\`); using the built-in digits`;
        console.warn(what, e);
        banner.show(what);
        await client.loadDataset(net.fallback, new URL('./data/', import.meta.url));
      }
      samples = await datasetSamples(client, state.classNames, 20);
    } else if (net.images) {
      // A model of one's own: the data directory's photos at its input size.
      const found = await Promise.all(net.images.map(async ({ name: n, url }) => {
        try {
          const data = await decodeRgb(url, state.summary.input);
          return { name: n, shape: [depth, height, width], data, input: async () => data };
        } catch { return null; }
      }));
      samples = found.filter(Boolean);
      if (!samples.length) throw new Error(`none of the data directory's photos is there (${DATA}images/)`);
    } else {
      samples = await Promise.all(TINY_VGG_IMAGES.map(async (n) => {
        const data = await decodeRgb(new URL(`img/${n}.jpeg`, net.tfjs), state.summary.input);
        return { name: `${n}.jpeg`, shape: [depth, height, width], data, input: async () => data };
      }));
    }
  } catch (e) {
    report(`The ${net.label} example images are missing (run \`npm run download-data\`); draw or upload one instead`, e);
  }
  // The per-channel mean colour of the example images: the occlusion's "dataset mean" fill.
  state.datasetMean = null;
  if (samples.length) {
    const [c, h, w] = samples[0].shape;
    state.datasetMean = Array.from({ length: c }, (_, k) => samples.reduce((a, s) => a + s.data.subarray(k * h * w, (k + 1) * h * w).reduce((x, y) => x + y, 0), 0) / (samples.length * h * w));
    if (c !== depth) state.datasetMean = null;
  }
  const choose = async (i) => {
    buttons.forEach((x, j) => x.classList.toggle('selected', j === i));
    await setInput(await samples[i].input(), samples[i].name, i);
  };
  const buttons = samples.map((s, i) => {
    const c = makeCanvas(s.shape[2], s.shape[1]);
    drawImage(c, s.data, 0, s.shape);
    return el('button.sample', { type: 'button', title: s.name, onclick: () => choose(i) }, c);
  });
  $('samples').replaceChildren(...buttons);
  state.samples = samples;
  // The URL's image (image=K), once; else the first.
  const want = state.urlImage ?? 0;
  state.urlImage = null;
  if (samples.length) await choose(Math.min(want, samples.length - 1));
}

/** Uploads of colour images for the RGB nets: the centre square, scaled to the input. */
const upload = el('input', { type: 'file', accept: 'image/*', hidden: true, id: 'rgb-upload' });
upload.onchange = async () => {
  const f = upload.files?.[0];
  upload.value = '';
  if (!f) return;
  try {
    const data = await decodeRgb(f, state.summary.input);
    setInput(data, f.name);
  } catch (e) { report(`${f.name} is not an image this browser can decode`, e); }
};
const uploadButton = el('button', { type: 'button', id: 'rgb-upload-button', text: 'Upload image…', onclick: () => upload.click() });
$('samples').after(el('div.row', {}, uploadButton, upload));

/** `index`: the example image's index (null: drawn or uploaded, which a link cannot carry). */
async function setInput(data, name, index = null) {
  state.input = data;
  state.inputName = name;
  state.imageIndex = index;
  const { depth, height, width } = state.summary.input;
  const z = zoomFor(width, height, 64);
  inputCanvas.width = width;
  inputCanvas.height = height;
  inputCanvas.style.width = `${width * z}px`;
  inputCanvas.style.height = `${height * z}px`;
  drawImage(inputCanvas, data, 0, [depth, height, width]);
  try {
    state.probs = await client.forward(data);
  } catch (e) {
    report('Could not classify the image', e);
    return;
  }
  let best = 0;
  state.probs.forEach((p, i) => { if (p > state.probs[best]) best = i; });
  state.predicted = best;
  const top = [...state.probs].map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  inputText.replaceChildren(el('div', { text: name }),
    ...top.map(([p, i]) => el('div', { text: `${state.classNames[i]}: ${(100 * p).toFixed(1)}%` })));
  if (state.autoTarget || !state.target) state.target = { kind: 'class', index: best };
  targetView.update();
  return refresh();
}

// ---- target -------------------------------------------------------------------------------------
const kindSelect = el('select', { id: 'target-kind', 'aria-label': 'what to explain' },
  el('option', { value: 'class', text: 'class score (logit)' }),
  el('option', { value: 'prob', text: 'class probability' }),
  el('option', { value: 'neuron', text: 'one neuron (click the layer view)' }),
  el('option', { value: 'channel', text: 'a channel’s mean (click the layer view)' }));
const classSelect = el('select', { id: 'target-class', 'aria-label': 'class' });
const targetText = el('div.objective-text', { id: 'target-text' });
const predictedButton = el('button.link', { type: 'button', text: 'use the predicted class' });
$('target').replaceChildren(el('div.row', {}, kindSelect, classSelect), targetText, predictedButton);

function describeTarget(t) {
  if (!t) return '–';
  const layer = state.summary?.layers[t.layer];
  switch (t.kind) {
    case 'class': return `score of “${state.classNames[t.index]}”`;
    case 'prob': return `probability of “${state.classNames[t.index]}”`;
    case 'channel': return `mean of ${layer.name} channel ${t.channel}`;
    case 'neuron': {
      const [, h, w] = layer.shape;
      const c = Math.floor(t.index / (h * w));
      return `${layer.name} channel ${c} at (x ${t.index % w}, y ${Math.floor((t.index % (h * w)) / w)})`;
    }
    default: return JSON.stringify(t);
  }
}

const targetView = {
  update() {
    const t = state.target;
    classSelect.replaceChildren(...state.classNames.map((n, i) => el('option', {
      value: String(i), text: `${n}${state.probs ? ` (${(100 * state.probs[i]).toFixed(1)}%)` : ''}`,
    })));
    kindSelect.value = t?.kind ?? 'class';
    const isClass = t && (t.kind === 'class' || t.kind === 'prob');
    classSelect.hidden = !isClass;
    if (isClass) classSelect.value = String(t.index);
    targetText.textContent = describeTarget(t);
    predictedButton.hidden = isClass && t.index === state.predicted;
  },
};
function setTarget(t, auto = false) {
  state.target = t;
  state.autoTarget = auto;
  targetView.update();
  picker.select(t);
  refresh();
}
kindSelect.onchange = () => {
  const k = kindSelect.value;
  if (k === 'class' || k === 'prob') setTarget({ kind: k, index: state.target?.index ?? state.predicted ?? 0 });
  else if (k === 'channel') setTarget({ kind: 'channel', layer: picker.layer(), channel: 0 });
  else setTarget({ kind: 'neuron', layer: picker.layer(), index: 0 });
};
classSelect.onchange = () => setTarget({ kind: kindSelect.value === 'prob' ? 'prob' : 'class', index: Number(classSelect.value) });
predictedButton.onclick = () => setTarget({ kind: state.target?.kind === 'prob' ? 'prob' : 'class', index: state.predicted }, true);

// ---- settings -----------------------------------------------------------------------------------
/** A number field's range from the engine's schema: {min, max, step, title}. */
function range(key) {
  const f = state.schema[key];
  return { min: f.min, max: f.max, step: f.step, title: f.help };
}
function numberInput(id, value, attrs, onchange) {
  const i = el('input', { id, type: 'number', value: String(value), ...attrs });
  i.onchange = () => { const v = Number(i.value); if (Number.isFinite(v)) onchange(v); };
  return i;
}
function field(label, control) {
  return el('label.field', {}, el('span', { text: label }), control);
}

function buildSettings() {
  const s = state.settings;
  const display = el('select', { id: 'display' },
    el('option', { value: 'auto', text: 'as each method is usually shown' }),
    el('option', { value: 'abs', text: 'magnitude (max |value| over channels)' }),
    el('option', { value: 'signed', text: 'signed (sum over channels)' }));
  display.value = s.display;
  display.onchange = () => { s.display = display.value; redrawCards(); };
  const baseline = el('select', { id: 'ig-baseline' },
    el('option', { value: '0', text: 'black (0)' }), el('option', { value: '0.5', text: 'gray (0.5)' }), el('option', { value: '1', text: 'white (1)' }));
  baseline.value = String(s.baseline);
  baseline.onchange = () => { s.baseline = Number(baseline.value); refresh(['integrated-gradients']); };
  const rule = el('select', { id: 'ig-rule' }, el('option', { value: 'gausslegendre', text: 'Gauss-Legendre' }), el('option', { value: 'riemann_trapezoid', text: 'trapezoid (Captum’s)' }));
  rule.value = s.rule;
  rule.onchange = () => { s.rule = rule.value; refresh(['integrated-gradients']); };
  const spatial = state.summary.layers.filter((l) => l.index > 0 && l.shape[1] * l.shape[2] > 1 && l.type !== 'softmax');
  const camLayer = el('select', { id: 'cam-layer' }, el('option', { value: '', text: 'last conv layer below the target' }),
    ...spatial.map((l) => el('option', { value: String(l.index), text: `${l.index} ${l.name} (${l.shape.join('×')})` })));
  camLayer.onchange = () => { s.camLayer = camLayer.value === '' ? null : Number(camLayer.value); refresh(['grad-cam']); };
  const relu = el('input', { id: 'cam-relu', type: 'checkbox', checked: s.relu });
  relu.onchange = () => { s.relu = relu.checked; refresh(['grad-cam']); };
  $('settings').replaceChildren(
    field('Colours', display),
    el('h3.sub', { text: 'SmoothGrad' }),
    field('noise (of the range)', numberInput('sg-noise', s.noise, range('noise'), (v) => { s.noise = v; refresh(['smoothgrad']); })),
    field('samples', numberInput('sg-samples', s.samples, range('samples'), (v) => { s.samples = v; refresh(['smoothgrad']); })),
    el('h3.sub', { text: 'Integrated gradients' }),
    field('baseline', baseline),
    field('steps', numberInput('ig-steps', s.steps, range('steps'), (v) => { s.steps = v; refresh(['integrated-gradients']); })),
    field('rule', rule),
    el('h3.sub', { text: 'Grad-CAM' }),
    field('layer', camLayer),
    el('label.field', {}, relu, el('span', { text: 'keep positive evidence only (ReLU)' })));
}

function settingsFor(method) {
  const s = state.settings;
  switch (method) {
    case 'smoothgrad': return { method, noise: s.noise, samples: s.samples, seed: s.seed };
    case 'integrated-gradients': return { method, baseline: [s.baseline], steps: s.steps, rule: s.rule };
    case 'grad-cam': return { method, ...(s.camLayer === null ? {} : { layer: s.camLayer }), relu: s.relu };
    default: return { method };
  }
}

// ---- maps ---------------------------------------------------------------------------------------
const cards = Object.fromEntries(METHODS.map((m) => [m.id, createMapCard(m, {
  onDownload: (what, canvas) => {
    const t = state.target;
    const tag = t.kind === 'class' || t.kind === 'prob' ? `${t.kind}-${state.classNames[t.index]}` : `${t.kind}-L${t.layer}`;
    return `convlens-${state.net}-${m.id}-${what}-${tag}.png`.replace(/\s+/g, '_');
  },
})]));
$('maps').replaceChildren(...Object.values(cards).map((c) => c.node));

function redrawCards() {
  writeHash();
  for (const m of METHODS) {
    const r = state.results[m.id];
    if (r) cards[m.id].draw(r, state.input, state.summary.input, state.settings.display);
  }
}

let running = null;
let pending = null;
/** Recomputes the given methods (default all) for the current image and target; one run at a time, the latest request wins. */
function refresh(methods = null) {
  if (!state.input || !state.target) return Promise.resolve();
  writeHash();
  if (!methods) {
    // A new image or target: occlusion and the layer view follow too.
    runOcclusion();
    picker.refresh();
  }
  pending = new Set([...(pending ?? []), ...(methods ?? METHODS.map((m) => m.id))]);
  if (!running) {
    running = (async () => {
      while (pending) {
        const list = [...pending];
        pending = null;
        const input = state.input;
        const target = state.target;
        for (const id of METHODS.map((m) => m.id).filter((m) => list.includes(m))) {
          const t0 = performance.now();
          try {
            const r = await client.attribute(input, target, settingsFor(id));
            r.ms = performance.now() - t0;
            state.results[id] = r;
            cards[id].draw(r, input, state.summary.input, state.settings.display);
          } catch (e) {
            delete state.results[id];
            cards[id].error(e.message);
          }
          if (pending && (state.input !== input || state.target !== target)) break; // a newer image or target
        }
      }
      running = null;
    })();
  }
  return running;
}

// ---- occlusion ----------------------------------------------------------------------------------
const occlusionView = createOcclusionView($('occlusion'), {
  settings: state.occlusion,
  classes: () => state.classNames,
  defaultClass: () => (state.target?.kind === 'class' || state.target?.kind === 'prob' ? state.target.index : state.predicted),
  run: async (settings, opts) => {
    writeHash();
    const s = await client.occlude(state.input, settings, opts);
    if (s) state.occlusionState = s;
    return s;
  },
  image: () => ({ data: state.input, shape: [state.summary.input.depth, state.summary.input.height, state.summary.input.width] }),
  datasetMean: () => state.datasetMean,
  fileName: (what) => `convlens-${state.net}-occlusion-${what}.png`,
  onError: (e) => report('Occlusion failed', e),
});
function runOcclusion() {
  if (state.input) occlusionView.run();
}

// ---- layer view (picks neurons and channels) ------------------------------------------------------
const picker = (() => {
  const layerSelect = el('select', { id: 'picker-layer', 'aria-label': 'layer' });
  const tiles = el('div.tiles', { id: 'picker-tiles' });
  let current = null;
  let acts = null;
  const root = $('picker');
  root.replaceChildren(el('div.row', {}, el('span', { text: 'layer ' }), layerSelect), tiles);
  layerSelect.onchange = () => { current = Number(layerSelect.value); draw(); };
  function layers() {
    return state.summary.layers.filter((l) => l.index > 0 && l.type !== 'softmax');
  }
  function draw() {
    const layer = state.summary.layers[current];
    if (!acts || !layer) return;
    const [c, h, w] = layer.shape;
    const data = acts[current];
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of data) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const z = zoomFor(w, h, h * w === 1 ? 16 : 56);
    const map = grayMap(lo, hi);
    const list = h * w === 1 ? [{ ch: 0, plane: data, hh: 1, ww: c }] : Array.from({ length: c }, (_, ch) => ({ ch, plane: data.subarray(ch * h * w, (ch + 1) * h * w), hh: h, ww: w }));
    tiles.replaceChildren(...list.map(({ ch, plane, hh, ww }) => {
      const canvas = makeCanvas(ww, hh, z);
      drawPlane(canvas, plane, 0, map);
      canvas.classList.add('clickable');
      canvas.title = 'click: this neuron becomes the target';
      canvas.onclick = (e) => {
        const { x, y } = pixelAt(canvas, e);
        const index = h * w === 1 ? x : ch * h * w + y * w + x;
        setTarget({ kind: 'neuron', layer: current, index });
      };
      const title = el('button.tile-title.clickable', { type: 'button', text: h * w === 1 ? `${c} units` : String(ch), title: 'click: this channel’s mean becomes the target' });
      title.onclick = () => setTarget({ kind: 'channel', layer: current, channel: ch });
      if (h * w === 1) title.disabled = true;
      return el('div.tile', { 'data-channel': String(ch) }, canvas, title);
    }));
    select(state.target);
  }
  function select(t) {
    const layer = state.summary?.layers[current];
    if (!layer) return;
    const [, h, w] = layer.shape;
    const hit = t?.layer === current ? (t.kind === 'channel' ? t.channel : t.kind === 'neuron' ? Math.floor(t.index / (h * w)) : -1) : -1;
    for (const tile of tiles.children) tile.classList.toggle('selected', h * w > 1 && Number(tile.dataset.channel) === hit);
  }
  return {
    layer: () => current,
    select,
    async refresh() {
      const ls = layers();
      if (!ls.some((l) => l.index === current)) current = ls.find((l) => l.type === 'conv' || l.activation)?.index ?? ls[0].index;
      layerSelect.replaceChildren(...ls.map((l) => el('option', { value: String(l.index), text: `${l.index} ${l.name} (${l.shape.join('×')})` })));
      layerSelect.value = String(current);
      try {
        acts = await client.activations(state.input);
        draw();
      } catch (e) { report('Could not read the activations', e); }
    },
  };
})();

// ---- the page's state in the URL, and sharing it ------------------------------------------------------
/** The target as text (class:K, prob:K, channel:L:C, neuron:L:I). */
function targetString(t) {
  if (t.kind === 'class' || t.kind === 'prob') return `${t.kind}:${t.index}`;
  return t.kind === 'channel' ? `channel:${t.layer}:${t.channel}` : `neuron:${t.layer}:${t.index}`;
}

/** What is on screen, as hash keys: the net, the image, the target (unless it follows the prediction), the settings. */
function pageState() {
  const s = state.settings;
  const occ = occlusionView.values();
  const out = [['net', state.net]];
  if (state.imageIndex !== null && state.imageIndex !== undefined) out.push(['image', state.imageIndex]);
  if (state.target && !state.autoTarget) out.push(["target", targetString(state.target)]);
  for (const k of ['noise', 'samples', 'seed', 'baseline', 'steps', 'rule', 'relu']) out.push([k, s[k]]);
  if (s.camLayer !== null) out.push(['layer', s.camLayer]);
  out.push(['display', s.display], ['window', occ.window], ['stride', occ.stride], ['fill', occ.fill]);
  return out;
}

function writeHash() {
  if (!state.net) return;
  const h = new URLSearchParams(pageState().map(([k, v]) => [k, String(v)]));
  history.replaceState(null, '', `${location.pathname}${location.search}#${h}`);
}

/** The maps and the occlusion panel as two <convlens-view> elements. */
export function embedCode() {
  const net = NETS[state.net];
  if (net.user) throw new Error(USER_EMBED);
  let image;
  if (state.imageIndex === null || state.imageIndex === undefined) throw new Error('a drawn or uploaded image lives in this page only; pick one of the example images');
  if (net.tfjs) image = new URL(`img/${state.samples[state.imageIndex].name}`, net.tfjs).href;
  else image = state.imageIndex;
  const common = [['net', state.net], ['image', image]];
  const target = state.target && !state.autoTarget ? [["target", targetString(state.target)]] : [];
  const kv = Object.fromEntries(pageState());
  // Settings that differ from the engine's defaults (the element starts from the same ones).
  const differs = (k) => state.schema[k] && String(state.schema[k].default) !== String(kv[k]);
  const settings = ['noise', 'samples', 'seed', 'steps', 'rule', 'relu'].filter(differs).map((k) => [k, kv[k]]);
  const occTarget = state.target && !state.autoTarget && (state.target.kind === 'class' || state.target.kind === 'prob') ? [['target', `class:${state.target.index}`]] : [];
  const fill = kv.fill === 'gray' ? [] : [['fill', kv.fill]];
  const src = new URL('convlens-view.js', import.meta.url).href;
  return `<script type="module" src="${src}"></script>\n`
    + `<convlens-view ${attributes([...common, ['view', 'attribution'], ...target, ['methods', METHODS.map((m) => m.id).join(', ')], ...settings, ['autorun', '']])}></convlens-view>\n`
    + `<convlens-view ${attributes([...common, ['view', 'occlusion'], ...occTarget, ['window', kv.window], ['stride', kv.stride], ...fill, ['autorun', '']])}></convlens-view>`;
}
createShareBox($('share'), { embed: embedCode, status, report });

// ---- start --------------------------------------------------------------------------------------
const ready = (async () => {
  try {
    const want = params.get('backend') ?? 'cpu';
    const info = await client.init(want);
    Object.assign(state, { backend: info.backend, webgpu: info.webgpu });
    const schema = await client.request('settingsSchema', { technique: 'attribution' });
    state.schema = Object.fromEntries(schema.fields.map((f) => [f.key, f]));
    // Defaults from the schema; the URL's values (?noise=0.2&steps=100) clamped to its ranges.
    // The query's keys (older links) and the hash's (the page's state, see writeHash).
    const hashed = new URLSearchParams(location.hash.slice(1));
    const given = { ...Object.fromEntries(params), ...Object.fromEntries(hashed) };
    if (/^\d+$/.test(given.image ?? '')) state.urlImage = Number(given.image);
    if (['auto', 'abs', 'signed'].includes(given.display)) state.settings.display = given.display;
    if (/^\d+$/.test(given.layer ?? '')) state.settings.camLayer = Number(given.layer);
    const fromUrl = await client.request('settingsFromUrl', { technique: 'attribution', given });
    for (const k of ['noise', 'samples', 'seed', 'baseline', 'steps', 'rule', 'relu']) state.settings[k] = fromUrl[k] ?? state.schema[k].default;
    if (Array.isArray(state.settings.baseline)) [state.settings.baseline] = state.settings.baseline; // one gray level here
    const occ = await client.request('settingsFromUrl', { technique: 'occlusion', given });
    state.urlOcclusion = Object.fromEntries(['window', 'stride'].filter((k) => k in occ).map((k) => [k, occ[k]]));
    if (['gray', 'black', 'white', 'mean', 'blur'].includes(given.fill)) occlusionView.set({ fill: given.fill });
    backendView.update(state);
    const linked = await (await userModel).openLink();
    // The page's own choice (its hash) first; a linked model when it names none.
    await selectNet(NETS[given.net] ? given.net : linked ? 'user' : 'mnist');
    if (given.target) {
      try {
        const t = parseTarget(given.target);
        const n = state.summary.layers.length;
        if ((t.kind === 'class' || t.kind === 'prob') && t.index >= state.classNames.length) throw new Error(`there is no class ${t.index}`);
        if (t.layer !== undefined && (t.layer < 1 || t.layer >= n)) throw new Error(`there is no layer ${t.layer} to explain`);
        setTarget(t);
      } catch (e) { report('The link\'s target was not used', e); }
    }
    await running;
  } catch (e) {
    report('Could not start', e);
    status('error');
  }
})();
let failure = null;
client.addEventListener('panic', (e) => { failure = e.detail; banner.engineStopped(failure); });
client.addEventListener('restarted', (e) => {
  if (failure) banner.engineRestarted(failure, e.detail);
  failure = null;
  refresh();
});

window.convlens = { client, state, ready, refresh, selectNet, setInput, setTarget, occlusion: occlusionView, embedCode };
