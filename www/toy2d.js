// The 2-D classifier page: the 2-D panel (www/views/toy2d-panel.js), its network box, the engine's
// backend, and its settings in the URL (as the panel's params() writes them, plus &paused: training
// does not start, and &backend=webgpu) with a Share box.
import { EngineClient } from './engine-client.js';
import { createBackendView } from './views/backend.js';
import { createBanner } from './views/banner.js';
import { createShareBox, attributes } from './views/share.js';
import { createSpecView } from './views/spec.js';
import { createToy2dPanel } from './views/toy2d-panel.js';

const $ = (id) => document.getElementById(id);
const state = { backend: null, webgpu: false, urlBackend: null, started: false };
const client = new EngineClient();
const banner = createBanner($('banner'));

function report(what, e) {
  console.error(what, e);
  banner.show(`${what}: ${e?.message ?? e}`);
}

const specView = createSpecView($('spec'), {
  presets: { toy2d: { label: '2-D toy net (fc 6 tanh, fc 2 tanh, softmax 2)' } },
  onPreset: async (name) => {
    if (name !== 'toy2d') return;
    specView.set(toy.raw.defaultSpec, 1, 'toy2d');
    await applySpec({ text: toy.raw.defaultSpec, seed: 1 });
  },
  onApply: applySpec,
});
const toy = createToy2dPanel($('toy'), {
  client,
  report: (what, e) => {
    if (what === 'Network not changed') specView.showError(e.message);
    report(what, e);
  },
  onChange: writeUrl,
  onNet: (summary) => {
    banner.clear();
    specView.showError(null);
    $('status').textContent = `${summary.name} · ${summary.params} params`;
  },
  resetSeed: () => specView.seed(),
  trainingStopped: (error, retry) => banner.trainingStopped(error, retry),
});
const backendView = createBackendView($('backend'), {
  onSwitch: async (b) => {
    await toy.pause();
    state.backend = (await client.switchBackend(b)).backend;
    backendView.update(state);
    await client.setTrainer(toy.raw.trainer);
  },
});

async function applySpec({ text, seed }) {
  await toy.loadNet(text, seed);
}

/** The address bar follows the page's settings (replaceState: no history entry per change). */
function pageParams() {
  const q = new URLSearchParams();
  if (state.urlBackend) q.set('backend', state.urlBackend);
  for (const [k, v] of toy.params()) q.set(k, v);
  if (!toy.loop.running) q.set('paused', '');
  return q;
}

function writeUrl() {
  if (!state.started) return;
  const q = pageParams().toString().replace(/paused=(&|$)/, 'paused$1');
  const url = `${location.pathname}${q ? `?${q}` : ''}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(history.state, '', url);
}

/** The panel as a <convlens-view view="toy2d">: its settings as attributes (trainer keys as written). */
function embedCode() {
  const src = new URL('convlens-view.js', import.meta.url).href;
  const pairs = [['view', 'toy2d'], ...[...toy.params()].map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), v])];
  if (toy.loop.running) pairs.push(['autorun', '']);
  return `<script type="module" src="${src}"></script>\n<convlens-view ${attributes(pairs)}></convlens-view>`;
}
createShareBox($('share'), { embed: embedCode, status: (t) => { $('share-status').textContent = t; }, report });

let failure = null;
client.addEventListener('panic', (e) => { toy.loop.running = false; failure = e.detail; banner.engineStopped(failure); });
client.addEventListener('restarted', async (e) => {
  if (failure) banner.engineRestarted(failure, e.detail);
  failure = null;
  if (toy.raw.trainer) await client.setTrainer(toy.raw.trainer).catch(() => {});
  toy.draw();
});

async function start() {
  const params = new URLSearchParams(location.search);
  const want = params.get('backend') ?? 'cpu';
  if (['cpu', 'webgpu'].includes(want) && params.has('backend')) state.urlBackend = want;
  const info = await client.init(want).catch(() => client.init('cpu'));
  Object.assign(state, info);
  backendView.update(state);
  const problems = await toy.init(params);
  const raw = toy.raw;
  specView.set(raw.spec, raw.netSeed, raw.spec === raw.defaultSpec ? 'toy2d' : '');
  if (problems.length) banner.show(`This link: ${problems.join('; ')}.`);
  state.started = true;
  writeUrl();
  if (!params.has('paused')) toy.start();
}

const ready = start();
ready.catch((e) => report('ConvLens failed to start', e));
window.convlens = {
  client, ready, loop: toy.loop, draw: toy.draw, setToy: toy.setToy, embedCode,
  get state() { return { ...toy.raw, ...state }; },
};
