// The dataset page: maximally activating patches, t-SNE maps of a layer's codes and the loss
// surface, over the images of a dataset (MNIST, CIFAR-10) or of the data directory (Tiny VGG,
// MobileNetV2). Each is a view in www/views/ds-*.js; the engine does the work in the worker
// (crates/core/src/vis/{patches,tsne,landscape}.rs); this module picks the network and its images,
// and keeps the page's state in the URL's hash (#view=patches&net=mnist&layer=3&channel=5).
import { EngineClient } from './engine-client.js';
import { addUserModel, USER_EMBED } from './views/import.js';
import { dataBase } from './config.js';
import { loadMobilenet, loadTfjs, TINY_VGG_CLASSES } from './models.js';
import { fetchPreset } from './presets.js';
import { createBackendView } from './views/backend.js';
import { createBanner } from './views/banner.js';
import { attributes, createShareBox } from './views/share.js';
import { countText, el } from './views/dom.js';
import { loadSquare } from './views/image-io.js';
import { defaultLayer, layerOptions } from './views/view-ctx.js';
import * as store from './store.js';
import { createPatchesView } from './views/ds-patches.js';
import { createTsneView } from './views/ds-tsne.js';
import { createLandscapeView } from './views/ds-landscape.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const DATA = dataBase(); // served from $CONVLENS_DATA_DIR (npm run download-data), or www/config.js's URL
const BUILTIN = new URL('./data/', import.meta.url);

/** The data directory's photos, for the ImageNet-style nets. */
const TINY_VGG_FILES = ['boat_1', 'bug_1', 'bug_3', 'bus_1', 'bus_2', 'car_1', 'espresso_1', 'koala_1', 'koala_2', 'koala_3', 'orange_1',
  'orange_3', 'panda_1', 'panda_2', 'panda_3', 'panda_5', 'pepper_1', 'pepper_2', 'pizza_1', 'pizza_2'];
const TINY_VGG_LABEL = { boat: 0, bug: 1, pizza: 2, pepper: 3, bus: 4, koala: 5, espresso: 6, panda: 7, orange: 8, car: 9 };
const PHOTOS = [
  ...TINY_VGG_FILES.map((n) => ({ name: `${n}.jpeg`, url: new URL(`tiny-vgg/img/${n}.jpeg`, DATA), label: TINY_VGG_LABEL[n.split('_')[0]] })),
  ...['grace_hopper.bmp', 'parrot.jpg', 'hot_dog.jpg', 'owl.jpg'].map((n) => ({ name: n, url: new URL(`mobilenet/test-images/${n}`, DATA) })),
  ...['astronaut.png', 'coffee.png', 'chelsea.png', 'rocket.jpg', 'brick.png', 'grass.png', 'gravel.png', 'starry.jpg']
    .map((n) => ({ name: n, url: new URL(`images/${n}`, DATA) })),
];

export const NETS = {
  mnist: { label: 'MNIST net · 60,000 training digits', preset: 'mnist', dataset: 'mnist', base: DATA, fallback: 'mnist5k', page: 'mnist' },
  cifar10: { label: 'CIFAR-10 net · 4,000 + 1,000 images', preset: 'cifar10', dataset: 'cifar10', base: DATA, page: 'cifar10' },
  'tiny-vgg': { label: 'Tiny VGG (CNN Explainer) · the data directory\'s photos', tfjs: new URL('tiny-vgg/', DATA), classes: TINY_VGG_CLASSES, photos: true },
  mobilenet: { label: 'MobileNetV2 (ImageNet) · the data directory\'s photos', mobilenet: new URL('mobilenet/', DATA), photos: true },
  mine: { label: 'The image classifier page\'s model (trained or opened there)', mine: true },
};

const state = { net: null, summary: null, classNames: [], data: null, backend: null, webgpu: false, photos: [] };
const client = new EngineClient();
const banner = createBanner($('banner'));
const status = (t) => { $('status').textContent = t; };
function report(what, e) {
  console.error(what, e);
  banner.show(`${what}: ${e?.message ?? e}`);
}

/** The page's state in the URL's hash: read once, written by the views as they change. */
export const hash = {
  get() {
    return new URLSearchParams(location.hash.slice(1));
  },
  set(values) {
    const h = new URLSearchParams();
    h.set('view', current);
    if (state.net) h.set('net', state.net);
    for (const [k, v] of Object.entries(values)) if (v !== null && v !== undefined && v !== '') h.set(k, String(v));
    history.replaceState(null, '', `${location.pathname}${location.search}#${h}`);
  },
};

const ctx = {
  client, state, report, status, hash,
  layerOptions: (from) => layerOptions(state, from),
  defaultLayer: () => defaultLayer(state),
  className(k) {
    return state.classNames[k] ?? String(k);
  },
  /** A link that opens split image `index` in the image page with `objective` (MNIST and CIFAR-10 nets). */
  imagePageLink(split, index, objective) {
    const net = NETS[state.net];
    if (!net.page && !net.mine) return null;
    const u = new URL('index.html', location.href);
    // Your model: the image page opens its autosave, then the image.
    const preset = net.page ? { preset: net.page } : {};
    u.search = new URLSearchParams({ ...preset, dataset: state.data.name, split, index, objective }).toString();
    return u.href;
  },
};

const backendView = createBackendView($('backend'), {
  onSwitch: async (b) => {
    views.forEach((v) => v.cancel());
    try {
      const info = await client.switchBackend(b);
      Object.assign(state, { backend: info.backend, webgpu: info.webgpu });
    } catch (e) { report('Could not switch the backend', e); }
    backendView.update(state);
  },
});

// ---- network and images ------------------------------------------------------------------------
const netSelect = el('select', { id: 'net-select', 'aria-label': 'network' }, ...Object.entries(NETS).map(([k, n]) => el('option', { value: k, text: n.label })));
const netInfo = el('p.hint', { id: 'net-info' });
netSelect.onchange = () => selectNet(netSelect.value).catch((e) => report(`Could not load ${NETS[netSelect.value].label}`, e));
$('net').replaceChildren(netSelect, netInfo);
// A model of one's own (views/import.js): offered in the list, opened by its button or a drop.
const userModel = addUserModel({ nets: NETS, select: netSelect, root: $('net'), client, report, data: DATA, selectNet: (n) => selectNet(n), current: () => state.net });

/** The data directory's photos at the net's input size, as the engine's dataset. */
async function loadPhotos(name) {
  const { depth, height, width } = state.summary.input;
  status('decoding the data directory\'s photos…');
  const found = (await Promise.all(PHOTOS.map(async (p) => {
    try {
      return { ...p, data: await loadSquare(p.url, [height, width], depth) };
    } catch { return null; }
  }))).filter(Boolean);
  if (found.length < 10) throw new Error(`only ${found.length} photos are in the data directory (${DATA}); run \`npm run download-data\``);
  const per = depth * height * width;
  const pixels = new Float32Array(found.length * per);
  found.forEach((p, i) => pixels.set(p.data, i * per));
  state.photos = found;
  return client.loadImages(name, pixels, [depth, height, width], found.map((p) => p.label ?? 0), state.classNames);
}

async function selectNet(name) {
  const net = NETS[name];
  if (!net) throw new Error(`unknown network '${name}'`);
  views.forEach((v) => v.cancel());
  status(`loading ${net.label}…`);
  let summary;
  let mine = null;
  if (net.user) summary = await client.load(net.user.spec, net.user.weights, 0);
  else if (net.mine) {
    // The model the image classifier page autosaved (spec and weights), with its dataset.
    mine = await store.load('image');
    if (!mine?.spec) throw new Error('the image classifier page has no saved model yet: train or open one there first');
    summary = await client.load(mine.spec, mine.weights ?? null, mine.seed ?? 0);
  } else if (net.mobilenet) summary = await loadMobilenet(client, net.mobilenet, status);
  else if (net.tfjs) summary = await loadTfjs(client, net.tfjs);
  else {
    const p = await fetchPreset(net.preset);
    summary = await client.load(p.specText, p.weightBytes, 0);
  }
  Object.assign(state, { net: name, summary, classNames: net.classes ?? summary.classNames ?? [] });
  client.summary = summary;
  netSelect.value = name;
  netInfo.textContent = `${summary.layers.length} layers, ${countText(summary.params)} parameters; input `
    + `${summary.input.width}×${summary.input.height}×${summary.input.depth}.`;
  let info;
  if (net.photos) info = await loadPhotos(name);
  else {
    const dataset = mine ? (mine.dataset ?? 'mnist5k') : net.dataset;
    const base = mine && dataset === 'mnist5k' ? BUILTIN : (net.base ?? DATA);
    status(`loading ${dataset}…`);
    try {
      info = await client.loadDataset(dataset, base);
    } catch (e) {
      if (!net.fallback) throw e;
      // Expected on a site without the data directory: a notice, not an error.
      const what = `${net.dataset} is not in the data directory (run \`npm run download-data\`); using the built-in 5,000 digits`;
      console.warn(what, e);
      banner.show(what);
      info = await client.loadDataset(net.fallback, BUILTIN);
    }
  }
  state.data = info;
  $('data-info').textContent = net.photos
    ? `${info.train} photos from the data directory (Tiny VGG's examples, MobileNet's test images, scikit-image's), at the network's input size.`
    : `${info.name}: ${countText(info.train)} training and ${countText(info.test)} test images, ${info.shape.join('×')}.`;
  views.forEach((v) => v.setNet());
  status('ready');
}

// ---- views --------------------------------------------------------------------------------------
const VIEWS = [
  ['patches', 'Top patches', createPatchesView],
  ['tsne', 't-SNE map', createTsneView],
  ['landscape', 'Loss surface', createLandscapeView],
];
const views = [];
const tabs = [];
let current = 'patches';
async function createViews() {
  ctx.schemas = {};
  for (const t of ['patches', 'tsne', 'landscape']) ctx.schemas[t] = await client.request('settingsSchema', { technique: t });
  for (const [key, label, create] of VIEWS) {
    const root = el('section.panel.ds-view', { id: `view-${key}`, 'aria-label': label, role: 'tabpanel' });
    $('views').append(root);
    views.push(Object.assign(create(root, ctx), { key }));
    const tab = el('button.tab', { type: 'button', id: `tab-${key}`, role: 'tab', text: label, onclick: () => show(key) });
    tabs.push(tab);
    $('tabs').append(tab);
  }
}
function show(key) {
  current = key;
  VIEWS.forEach(([k], i) => {
    $(`view-${k}`).hidden = k !== key;
    tabs[i].setAttribute('aria-selected', String(k === key));
  });
  views.find((v) => v.key === key)?.shown?.();
}

// ---- share --------------------------------------------------------------------------------------
/** What is on screen as a <convlens-view> for a lecture page, and as an <iframe> of this page. */
export function embedCode() {
  const h = hash.get();
  const kebab = (k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  const attrs = [['net', state.net], ['view', h.get('view') ?? current]];
  // The settings that differ from their defaults (the element starts from the same defaults).
  const fields = ctx.schemas?.[h.get('view') ?? current]?.fields ?? [];
  const isDefault = (k, v) => fields.some((f) => f.key === k && f.default !== null && String(f.default) === v);
  for (const [k, v] of h) if (!['view', 'net', 'channel', 'layers'].includes(k) && !isDefault(k, v)) attrs.push([kebab(k), v]);
  const src = new URL('convlens-view.js', import.meta.url).href;
  return {
    element: `<script type="module" src="${src}"></script>\n<convlens-view ${attributes(attrs)}></convlens-view>`,
    iframe: share.iframeCode(),
  };
}
const share = createShareBox($('share'), {
  embed: () => {
    if (NETS[state.net]?.mine) throw new Error('your own model lives in this browser only; pick a built-in net');
    if (NETS[state.net]?.user) throw new Error(USER_EMBED);
    return embedCode().element;
  },
  status,
  report,
});

// ---- start --------------------------------------------------------------------------------------
let failure = null;
client.addEventListener('panic', (e) => { failure = e.detail; banner.engineStopped(failure); });
client.addEventListener('restarted', (e) => {
  if (failure) banner.engineRestarted(failure, e.detail);
  failure = null;
});
client.addEventListener('error', (e) => report('Engine error', e.detail.error));
client.addEventListener('progress', (e) => status(`${e.detail.what}: ${e.detail.done}/${e.detail.total} files`));
const ready = (async () => {
  try {
    const info = await client.init(params.get('backend') ?? 'cpu');
    Object.assign(state, { backend: info.backend, webgpu: info.webgpu });
    backendView.update(state);
    await createViews();
    const linked = await (await userModel).openLink();
    const h = hash.get();
    // The page's own choice (its hash, the query) first; a linked model when they name none.
    const want = NETS[h.get('net')] ? h.get('net') : (NETS[params.get('net')] ? params.get('net') : linked ? 'user' : 'mnist');
    try {
      await selectNet(want);
    } catch (e) {
      if (want === 'mnist') throw e;
      report(`Could not load ${NETS[want].label}; showing the MNIST net`, e);
      await selectNet('mnist');
    }
    const view = VIEWS.some(([k]) => k === h.get('view')) ? h.get('view') : 'patches';
    show(view);
    // A linked unit or map (#view=patches&net=mnist&layer=3&channel=5) runs on arrival.
    await views.find((v) => v.key === view)?.fromHash?.(h);
    document.body.dataset.ready = 'true';
  } catch (e) {
    report('Could not start the engine', e);
    status('engine failed');
  }
})();

// For tests and benchmarks (tests/e2e/dataset.test.mjs, scripts/bench-dataset.mjs).
window.convlens = { client, state, selectNet, ctx, ready, views, show, embedCode };
