// Page wiring: state, the engine client and the views.
import { EngineClient } from './engine-client.js';
import { createBackendView } from './views/backend.js';
import { createBanner } from './views/banner.js';
import { createLayersView } from './views/layers.js';
import { createObjectiveView } from './views/objective.js';
import { createSamplesView, loadSamples, sampleToInput } from './views/samples.js';
import { createSpecView } from './views/spec.js';
import { createFilesView } from './views/files.js';

const $ = (id) => document.getElementById(id);
const NAMES = { webgpu: 'WebGPU', cpu: 'CPU' };

const state = {
  backend: null, webgpu: false, busy: false,
  spec: '', seed: 7, summary: null,
  // The built-in spec's trained weights (www/nets/mnist.safetensors, trained by `convlens train`);
  // any other spec starts from a seeded random init.
  defaultSpec: '', defaultWeights: null, trained: false,
  samples: [], sample: 0, input: null,
  objective: null, autoObjective: true, predicted: null,
  probe: null, seq: 0, probeMs: null,
};

const client = new EngineClient();
const banner = createBanner($('banner'));
const backendView = createBackendView($('backend'), { onSwitch: switchBackend });
const objectiveView = createObjectiveView($('objective'), {
  onReset: () => { state.autoObjective = true; refresh().catch(() => {}); },
});
const layersView = createLayersView($('layers'), { onObjective: setObjective });
const specView = createSpecView($('spec'), { onApply: applySpec });
createFilesView($('files'), { onSave: saveModel, onOpen: openModel });
let samplesView = null;

function report(what, e) {
  console.error(what, e);
  banner.show(`${what}: ${e?.message ?? e}`);
}

function setStatus() {
  const ms = state.probeMs === null ? '' : ` · probe ${state.probeMs.toFixed(1)} ms`;
  const weights = state.weightsFrom ?? (state.trained ? 'trained weights' : `random weights (seed ${state.seed})`);
  $('status').textContent = state.summary
    ? `${state.summary.name} · ${state.summary.params.toLocaleString('en-US')} params · ${weights}${ms}`
    : 'starting engine…';
}

function predictedClass(probe) {
  if (!state.summary?.classes) return null;
  const v = probe.probs ?? probe.layers.at(-1).act;
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

function defaultObjective() {
  const s = state.summary;
  if (s.classes > 0) return { kind: 'class', index: state.predicted ?? 0 };
  return { kind: 'channel', layer: s.layers.length - 1, channel: 0 };
}

/** Probes the current input and objective and redraws everything. */
async function probeAndDraw() {
  if (!state.summary || !state.input) return;
  let objective = state.autoObjective ? defaultObjective() : state.objective;
  let t0 = performance.now();
  let probe = await client.probe(state.input, objective);
  const predicted = predictedClass(probe);
  if (state.autoObjective && objective.kind === 'class' && predicted !== null && objective.index !== predicted) {
    objective = { kind: 'class', index: predicted };
    t0 = performance.now();
    probe = await client.probe(state.input, objective);
  }
  Object.assign(state, { probe, objective, predicted, probeMs: performance.now() - t0, seq: state.seq + 1 });
  layersView.update(probe, state);
  objectiveView.update(state);
  setStatus();
}

let running = null;
let again = false;
/** Coalesced redraw: resolves once the latest state has been drawn; errors go to the banner and reject. */
function refresh() {
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    do {
      again = false;
      try {
        await probeAndDraw();
      } catch (e) {
        report('Probe failed', e);
        throw e;
      }
    } while (again);
  })().finally(() => { running = null; });
  return running;
}

function setObjective(objective) {
  state.autoObjective = false;
  state.objective = objective;
  refresh().catch(() => {});
}

function selectSample(index) {
  state.sample = index;
  state.input = state.summary ? sampleToInput(state.samples[index], state.summary.input) : null;
  samplesView?.select(index);
}

function setSummary(summary) {
  state.summary = summary;
  layersView.build(summary);
  selectSample(state.sample);
  setStatus();
}

/** Trained weights for the built-in spec, else null (a random init from the seed). */
function weightsFor(text) {
  return state.defaultWeights && text.trim() === state.defaultSpec.trim() ? state.defaultWeights.slice() : null;
}

async function applySpec({ text, seed }) {
  let summary;
  const weights = weightsFor(text);
  try {
    summary = await client.load(text, weights, seed);
  } catch (e) {
    report('Network not changed', e);
    return;
  }
  banner.clear();
  Object.assign(state, { spec: text, seed, trained: weights !== null, weightsFrom: null, autoObjective: true, objective: null });
  setSummary(summary);
  await refresh().catch(() => {});
}

async function saveModel() {
  return { bytes: await client.exportWeights(), name: state.summary?.name ?? 'convlens-model' };
}

/** A spec as the Network box shows it: one layer per line. */
function formatSpec(text) {
  const { layers, ...rest } = JSON.parse(text);
  const head = Object.entries(rest).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ');
  return `{ ${head}${head ? ',' : ''}\n  "layers": [\n${layers.map((l) => `    ${JSON.stringify(l)}`).join(',\n')}\n  ] }\n`;
}

/** Opens a model file (spec + weights); on any error the current network stays. */
async function openModel(fileName, bytes) {
  let summary;
  let spec;
  try {
    spec = await client.embeddedSpec(bytes);
    summary = await client.load(spec, bytes, state.seed);
  } catch (e) {
    report(`Could not open ${fileName}; the network was not changed`, e);
    return;
  }
  banner.clear();
  Object.assign(state, { spec, trained: false, weightsFrom: `weights from ${fileName}`, autoObjective: true, objective: null });
  specView.set(formatSpec(spec), state.seed);
  setSummary(summary);
  await refresh().catch(() => {});
}

function setEngine(info) {
  state.backend = info.backend;
  state.webgpu = info.webgpu;
  backendView.update(state);
}

async function switchBackend(target) {
  const previous = state.backend;
  state.busy = true;
  backendView.update(state);
  try {
    setEngine(await client.switchBackend(target));
  } catch (e) {
    report(`Could not switch to ${NAMES[target]}`, e);
    setEngine(await client.restart({ backend: previous }).catch((e2) => {
      report('Engine restart failed', e2);
      return { backend: null, webgpu: state.webgpu };
    }));
  } finally {
    state.busy = false;
    backendView.update(state);
  }
  await refresh().catch(() => {});
}

let panicMessage = null;
client.addEventListener('panic', (e) => {
  panicMessage = e.detail.message;
  banner.show(`The engine panicked; restarting it…\n${panicMessage}`);
});
client.addEventListener('restarted', (e) => {
  if (panicMessage !== null) banner.show(`The engine panicked and was restarted with the same network:\n${panicMessage}`);
  panicMessage = null;
  setEngine(e.detail);
  refresh().catch(() => {});
});
client.addEventListener('error', (e) => report('Engine error', e.detail.error));

async function initEngine(want) {
  try {
    return await client.init(want);
  } catch (e) {
    if (want === 'cpu') throw e;
    report('WebGPU engine unavailable, using the CPU', e);
    return client.init('cpu');
  }
}

async function start() {
  let want = new URLSearchParams(location.search).get('backend') ?? 'auto';
  if (!['auto', 'cpu', 'webgpu'].includes(want)) {
    banner.show(`Unknown backend '${want}' in the URL (use cpu or webgpu); picking one automatically.`);
    want = 'auto';
  }
  const [specText, samples, weights] = await Promise.all([
    fetch(new URL('./nets/mnist.json', import.meta.url)).then((r) => r.text()),
    loadSamples(new URL('./assets/mnist-samples.json', import.meta.url)),
    fetch(new URL('./nets/mnist.safetensors', import.meta.url))
      .then((r) => (r.ok ? r.arrayBuffer() : null)).then((b) => b && new Uint8Array(b)).catch(() => null),
  ]);
  Object.assign(state, { spec: specText, defaultSpec: specText, defaultWeights: weights });
  state.samples = samples;
  specView.set(specText, state.seed);
  samplesView = createSamplesView($('samples'), samples, {
    onSelect: (i) => { selectSample(i); refresh().catch(() => {}); },
  });
  samplesView.select(state.sample);
  setEngine(await initEngine(want));
  let summary;
  try {
    summary = await client.load(specText, weightsFor(specText), state.seed);
    state.trained = weights !== null;
  } catch (e) {
    report('The trained weights could not be loaded; using a random init', e);
    summary = await client.load(specText, null, state.seed);
  }
  setSummary(summary);
  await refresh();
}

const ready = start();
ready.catch((e) => report('ConvLens failed to start', e));
window.convlens = { client, state, ready, refresh };
