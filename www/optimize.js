// The image-optimization page: class and neuron visualization, feature inversion, adversarial
// examples, DeepDream and style transfer on MobileNetV2 (from the data directory), Tiny VGG or the
// project's own nets. Each technique is a view in www/views/opt-*.js; the engine does every step in
// the worker (crates/core/src/vis/); this module picks the network and the image.
import { EngineClient } from './engine-client.js';
import { addUserModel, USER_EMBED } from './views/import.js';
import { dataBase } from './config.js';
import { datasetSamples, loadMobilenet, loadTfjs, styleImages, TINY_VGG_CLASSES, TINY_VGG_IMAGES } from './models.js';
import { fetchPreset } from './presets.js';
import { createBackendView } from './views/backend.js';
import { createBanner } from './views/banner.js';
import { attributes, createShareBox } from './views/share.js';
import { el } from './views/dom.js';
import { imageCanvas, loadSquare } from './views/image-io.js';
import { convLayers, imageAt, layerNamed, layerOptions, topClasses } from './views/view-ctx.js';
import { createVisualizePanel } from './views/opt-visualize.js';
import { createInversionPanel } from './views/opt-inversion.js';
import { createAdversarialPanel } from './views/opt-adversarial.js';
import { createDreamPanel } from './views/opt-dream.js';
import { createStylePanel } from './views/opt-style.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DATA = dataBase(); // served from $CONVLENS_DATA_DIR (npm run download-data), or www/config.js's URL
const MOBILENET = new URL('mobilenet/', DATA);

/** Natural images (scikit-image, Van Gogh) in the data directory: content and style images. */
export const NATURAL = ['chelsea.png', 'astronaut.png', 'coffee.png', 'rocket.jpg'].map((n) => ({ name: n, url: new URL(`images/${n}`, DATA) }));
export const STYLES = styleImages(DATA);

export const NETS = {
  mobilenet: {
    label: 'MobileNetV2 (ImageNet, 1001 classes)',
    images: [...['grace_hopper.bmp', 'parrot.jpg', 'hot_dog.jpg', 'owl.jpg'].map((n) => ({ name: n, url: new URL(`test-images/${n}`, MOBILENET) })), ...NATURAL],
  },
  'tiny-vgg': { label: 'Tiny VGG (CNN Explainer, 64×64)', tfjs: new URL('tiny-vgg/', DATA), classes: TINY_VGG_CLASSES,
    images: TINY_VGG_IMAGES.slice(0, 10).map((n) => ({ name: `${n}.jpeg`, url: new URL(`tiny-vgg/img/${n}.jpeg`, DATA) })) },
  // MNIST's test digits from the data directory (one training sheet is enough here), else the
  // built-in digits: the images <convlens-view net="mnist" image="K"> shows too.
  mnist: { label: 'MNIST net (24×24 digits)', preset: 'mnist', dataset: 'mnist', base: DATA, sheets: 1, fallback: 'mnist5k' },
  cifar10: { label: 'CIFAR-10 net (32×32)', preset: 'cifar10', dataset: 'cifar10', base: DATA, sheets: 1 },
};

const state = { net: null, summary: null, classNames: [], image: null, imageName: '', imageSrc: null, backend: null, webgpu: false };
const client = new EngineClient();
const banner = createBanner($('banner'));
const status = (t) => { $('status').textContent = t; };
function report(what, e) {
  console.error(what, e);
  banner.show(`${what}: ${e?.message ?? e}`);
}

const ctx = {
  client, state, report, status, styles: STYLES,
  layerOptions: (from) => layerOptions(state, from),
  layerNamed: (name, fallback) => layerNamed(state, name, fallback),
  convLayers: () => convLayers(state),
  /** "k: name" for a class. */
  className(k) {
    return `${k}: ${state.classNames[k] ?? k}`;
  },
  top: (image, n) => topClasses(client, state, image, n),
  imageAt: (size) => imageAt(state, size),
};

const backendView = createBackendView($('backend'), {
  onSwitch: async (b) => {
    panels.forEach((p) => p.cancel?.());
    try {
      const info = await client.switchBackend(b);
      Object.assign(state, { backend: info.backend, webgpu: info.webgpu });
    } catch (e) { report('Could not switch the backend', e); }
    backendView.update(state);
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
  panels.forEach((p) => p.cancel?.());
  status(`loading ${net.label}…`);
  let summary;
  if (net.user) summary = await client.load(net.user.spec, net.user.weights, 0);
  else if (name === 'mobilenet') summary = await loadMobilenet(client, MOBILENET, status);
  else if (net.tfjs) summary = await loadTfjs(client, net.tfjs);
  else {
    const p = await fetchPreset(net.preset);
    summary = await client.load(p.specText, p.weightBytes, 0);
  }
  Object.assign(state, { net: name, summary, classNames: net.classes ?? summary.classNames });
  client.summary = summary;
  netSelect.value = name;
  netInfo.textContent = `${summary.layers.length} layers, ${summary.params.toLocaleString('en-US')} parameters; input `
    + `${summary.input.width}×${summary.input.height}×${summary.input.depth}.`;
  await loadSamples(name);
  panels.forEach((p) => p.setNet());
  // Settings in the URL (?view=dream&octaves=3) fill the shown view's form, clamped by the engine
  // to their ranges.
  const shown = panels.find((p) => p.technique && p.key === params.get('view'));
  if (shown) {
    // The URL's settings: the engine's clamped to their ranges, the panel's own controls as given.
    const given = Object.fromEntries(params);
    const schema = ctx.schemas[shown.technique];
    shown.form.set(await client.request('settingsFromUrl', { technique: shown.technique, given }));
    const own = Object.keys(shown.form.inputs).filter((k) => k in given && !schema.fields.some((f) => f.key === k));
    shown.form.set(Object.fromEntries(own.map((k) => [k, given[k]])));
    shown.form.inputs.kind?.input.onchange?.();
  }
  status('ready');
  writeState();
}

// ---- images -------------------------------------------------------------------------------------
const inputBox = el('div.input-text');
$('input-info').replaceChildren(inputBox);
const upload = el('input', { type: 'file', accept: 'image/*', hidden: true, id: 'opt-upload' });
upload.onchange = async () => {
  const f = upload.files?.[0];
  upload.value = '';
  if (!f) return;
  try {
    const { depth, height, width } = state.summary.input;
    await setImage(await loadSquare(f, [height, width], depth), f.name, f);
  } catch (e) { report(`${f.name} is not an image this browser can decode`, e); }
};
$('samples').after(el('div.row', {}, el('button', { type: 'button', id: 'opt-upload-button', text: 'Upload image…', onclick: () => upload.click() }), upload));

async function loadSamples(name) {
  const net = NETS[name];
  const { depth, height, width } = state.summary.input;
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
      samples = await datasetSamples(client, state.classNames, 12);
    } else {
      const found = await Promise.all(net.images.map(async (s) => {
        try {
          const data = await loadSquare(s.url, [height, width], depth);
          return { name: s.name, data, shape: [depth, height, width], src: s.url, input: async () => data };
        } catch { return null; }
      }));
      samples = found.filter(Boolean);
      if (!samples.length) throw new Error(`none of the example images is in the data directory (${DATA})`);
    }
  } catch (e) {
    report(`The ${net.label} example images are missing; upload one instead`, e);
  }
  const choose = async (i) => {
    buttons.forEach((x, j) => x.classList.toggle('selected', j === i));
    await setImage(await samples[i].input(), samples[i].name, samples[i].src ?? null, i);
  };
  const buttons = samples.map((s, i) => el('button.sample', { type: 'button', title: s.name, onclick: () => choose(i) }, imageCanvas(s.data, s.shape, 40)));
  $('samples').replaceChildren(...buttons);
  const first = Math.min(Number(params.get('image') ?? 0) || 0, samples.length - 1);
  state.samples = samples;
  if (samples.length) await choose(Math.max(0, first));
}

/** `index`: the example image's index (null: uploaded, which a link cannot carry). */
async function setImage(data, name, src, index = null) {
  Object.assign(state, { image: data, imageName: name, imageSrc: src, imageIndex: index });
  writeState();
  const { depth, height, width } = state.summary.input;
  const top = await ctx.top(data).catch(() => '');
  inputBox.replaceChildren(imageCanvas(data, [depth, height, width], 96), el('div', {}, el('strong', { text: name }), el('div.hint', { text: top })));
  panels.forEach((p) => p.setImage?.());
}

// ---- views --------------------------------------------------------------------------------------
const VIEWS = [
  ['visualize', 'Class & neuron', createVisualizePanel],
  ['invert', 'Feature inversion', createInversionPanel],
  ['adversarial', 'Adversarial', createAdversarialPanel],
  ['dream', 'DeepDream', createDreamPanel],
  ['style', 'Style transfer', createStylePanel],
];
const panels = [];
const tabs = [];
/** The views, once the engine has given the settings schemas their forms are built from. */
async function createViews() {
  ctx.schemas = {};
  for (const t of ['visualize', 'invert', 'dream', 'style', 'attack']) ctx.schemas[t] = await client.request('settingsSchema', { technique: t });
  for (const [key, label, create] of VIEWS) {
    const root = el('section.panel.opt-view', { id: `view-${key}`, 'aria-label': label });
    $('views').append(root);
    const panel = Object.assign(create(root, ctx), { key });
    panels.push(panel);
    panel.form?.node.addEventListener('change', () => writeState());
    const tab = el('button.tab', { type: 'button', id: `tab-${key}`, role: 'tab', text: label, onclick: () => show(key) });
    tabs.push(tab);
    $('tabs').append(tab);
  }
  show(VIEWS.some(([k]) => k === params.get('view')) ? params.get('view') : 'visualize');
}
function show(key) {
  VIEWS.forEach(([k], i) => {
    $(`view-${k}`).hidden = k !== key;
    tabs[i].setAttribute('aria-selected', String(k === key));
  });
  shownKey = key;
  writeState();
}
let shownKey = null;

/** The page's state in its URL: view, net, image, and the shown panel's every control. */
function pageState() {
  const out = [['view', shownKey], ['net', state.net]];
  if (state.imageIndex !== null && state.imageIndex !== undefined) out.push(['image', state.imageIndex]);
  const panel = panels.find((p) => p.key === shownKey);
  if (panel?.form) for (const [k, v] of Object.entries(panel.form.values())) out.push([k, v]);
  return out;
}

function writeState() {
  if (!shownKey || !state.net) return;
  const u = new URL(location.href);
  // A linked model's address stays while it is the net shown.
  const keep = ['backend', 'workers', 'gpuTimeout', ...(state.net === 'user' ? ['model', 'labels'] : [])].map((k) => [k, u.searchParams.get(k)]).filter(([, v]) => v);
  u.search = '';
  for (const [k, v] of keep) u.searchParams.set(k, v);
  for (const [k, v] of pageState()) u.searchParams.set(k, String(v));
  history.replaceState(null, '', u);
}

/** The shown panel as a <convlens-view> element, with every control as an attribute. */
export function embedCode() {
  if (NETS[state.net].user) throw new Error(USER_EMBED);
  if (state.imageIndex === null || state.imageIndex === undefined) throw new Error('an uploaded image lives in this page only; pick one of the example images');
  const sample = state.samples[state.imageIndex];
  const image = NETS[state.net].dataset ? state.imageIndex : sample.src.href;
  const kebab = (k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const attrs = [['net', state.net], ['view', shownKey], ['image', image]];
  for (const [k, v] of pageState().slice(2)) {
    if (['image', 'style', 'class', 'id', 'hidden', 'title', 'data', 'controls', 'autorun', 'backend'].includes(k)) continue;
    // The adversarial panel's target class is the element's `target` (class:K).
    if (k === 'target') attrs.push(['target', `class:${parseInt(v, 10)}`]);
    else attrs.push([kebab(k), v]);
  }
  const src = new URL('convlens-view.js', import.meta.url).href;
  return `<script type="module" src="${src}"></script>\n<convlens-view ${attributes(attrs)}></convlens-view>`;
}
createShareBox($('share'), { embed: embedCode, status, report });

// ---- start --------------------------------------------------------------------------------------
let failure = null;
client.addEventListener('panic', (e) => { failure = e.detail; banner.engineStopped(failure); });
client.addEventListener('restarted', (e) => {
  if (failure) banner.engineRestarted(failure, e.detail);
  failure = null;
});
client.addEventListener('error', (e) => report('Engine error', e.detail.error));
const ready = (async () => {
  try {
    const info = await client.init(params.get('backend') ?? 'cpu');
    Object.assign(state, { backend: info.backend, webgpu: info.webgpu });
    backendView.update(state);
    await createViews();
    const linked = await (await userModel).openLink();
    const want = NETS[params.get('net')] ? params.get('net') : linked ? 'user' : 'mobilenet';
    try {
      await selectNet(want);
    } catch (e) {
      if (want !== 'mobilenet') throw e;
      report('MobileNetV2 could not be loaded; showing the MNIST net instead', e);
      await selectNet('mnist');
    }
    document.body.dataset.ready = 'true';
  } catch (e) {
    report('Could not start the engine', e);
    status('engine failed');
  }
})();

// For tests and benchmarks (tests/e2e/optimize.test.mjs, scripts/bench-optimize.mjs).
window.convlens = { client, state, selectNet, ctx, ready, panels, embedCode };
