// Page wiring for the image classifier: state, the engine client, the training loop and the views.
import { EngineClient } from './engine-client.js';
import { dataBase } from './config.js';
import { fetchModelFiles } from './models.js';
import { DEFAULT_PRESET, PRESETS, fetchPreset } from './presets.js';
import * as store from './store.js';
import { TrainingLoop } from './training.js';
import { createBackendView } from './views/backend.js';
import { createBanner } from './views/banner.js';
import { el } from './views/dom.js';
import { createDrawInput, fitToInput } from './views/draw-input.js';
import { drawImage, makeCanvas } from './views/draw.js';
import { createFilesView } from './views/files.js';
import { createImportView, importFiles, storedModel } from './views/import.js';
import { createLayersView } from './views/layers.js';
import { createObjectiveView } from './views/objective.js';
import { createSpecView } from './views/spec.js';
import { createTestGrid } from './views/testgrid.js';
import { DATASETS, createTrainPanel } from './views/train-panel.js';
import { attributes, createShareBox } from './views/share.js';

const $ = (id) => document.getElementById(id);
const NAMES = { webgpu: 'WebGPU', cpu: 'CPU' };
const GRID = 40; // test images in the grid
const VIEW_EVERY_MS = 300; // layer views refresh while training
const GRID_EVERY_MS = 1000;
const AUTOSAVE_EVERY_MS = 20_000;
const AUTOSAVE_KEY = 'image';

const state = {
  // This tab, and when it last loaded or wrote the autosave: a tab never overwrites a newer save
  // of another tab (see autosave()).
  tab: crypto.randomUUID(), autosaveSeen: Date.now(), autosavePaused: false,
  backend: null, webgpu: false, busy: false,
  spec: '', seed: 7, summary: null, preset: null,
  trained: false, weightsFrom: null,
  dataset: null, // {name, shape, classes, train, test}
  input: null, inputName: '', inputLabel: null, testIndex: 0, custom: null,
  objective: null, autoObjective: true, predicted: null,
  probe: null, seq: 0, probeMs: null,
  trainer: null, trainerDefaults: {},
  // Where the network came from ({preset}, {spec, seed}, or null: a file, the autosave) and whether
  // its weights are still exactly that (not trained since): the URL carries the net only then.
  from: null, exact: false,
  // The input as the URL gives it ({split, index}), or null for a drawn or uploaded image.
  inputRef: null,
  started: false, urlBackend: null, urlEngine: {},
};

const client = new EngineClient();
const banner = createBanner($('banner'));
const loop = new TrainingLoop(client, { between: betweenChunks });
const backendView = createBackendView($('backend'), { onSwitch: switchBackend });
const objectiveView = createObjectiveView($('objective'), {
  onReset: () => { state.autoObjective = true; refresh().catch(() => {}); },
});
const layersView = createLayersView($('layers'), { onObjective: setObjective });
const specView = createSpecView($('spec'), { onApply: applySpec, onPreset: choosePreset, presets: PRESETS });
// Open model…/drop: the index page opens its own .safetensors downloads itself (a file without a
// spec may be weights for the network in the Network box); every other model is imported.
const importView = createImportView(createFilesView($('files'), { onSave: saveModel }), {
  client, report, label: 'Open model…',
  onOpen: (model) => openImported(model),
  onFiles: async (files) => {
    if (files.length !== 1 || !/\.safetensors$/i.test(files[0].name)) return false;
    await openModel(files[0].name, files[0].bytes);
    return true;
  },
});
$('files').append(importView.summary);
const testGrid = createTestGrid($('testgrid'), { onSelect: (i) => selectTest(i).catch((e) => report('Input', e)) });
const drawInput = createDrawInput($('draw'), {
  onInput: (img) => selectCustom(img).catch((e) => report('Input', e)),
  onError: (e) => report('Upload', e),
});
const panel = createTrainPanel($('train'), {
  onRun: () => loop.start(),
  onPause: () => loop.pause(),
  onStep: () => loop.step(),
  onReset: resetWeights,
  onDataset: (name) => setDataset(name).catch(() => {}),
  onTrainer: setTrainer,
});

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

function argmax(v) {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

function predictedClass(probe) {
  if (!state.summary?.classes) return null;
  return argmax(probe.probs ?? probe.layers.at(-1).act);
}

function defaultObjective() {
  const s = state.summary;
  if (s.classes > 0) return { kind: 'class', index: state.predicted ?? 0 };
  return { kind: 'channel', layer: s.layers.length - 1, channel: 0 };
}

/** Probes the current input and objective and redraws everything. */
async function probeAndDraw() {
  if (!state.summary || !state.input) return;
  const asked = state.objective;
  let objective = state.autoObjective ? defaultObjective() : state.objective;
  let t0 = performance.now();
  let probe = await client.probe(state.input, objective);
  const predicted = predictedClass(probe);
  if (state.autoObjective && objective.kind === 'class' && predicted !== null && objective.index !== predicted) {
    objective = { kind: 'class', index: predicted };
    client.release(probe);
    t0 = performance.now();
    probe = await client.probe(state.input, objective);
  }
  // An objective picked while this probe ran stays (the coalesced refresh draws it next).
  const kept = !state.autoObjective && state.objective !== asked;
  const shown = state.probe;
  Object.assign(state, { probe, predicted, probeMs: performance.now() - t0, seq: state.seq + 1 });
  if (!kept) state.objective = objective;
  layersView.update(probe, state);
  // Nothing reads the frame drawn before (the views draw at once): the next probe reuses its buffer.
  if (shown && shown !== probe) client.release(shown);
  objectiveView.update(state);
  drawInputInfo();
  setStatus();
  writeUrl();
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

// ---- input ----

function drawInputInfo() {
  const s = state.summary;
  const box = $('input-info');
  if (!s || !state.input) {
    box.replaceChildren();
    return;
  }
  const shape = [s.input.depth, s.input.height, s.input.width];
  const canvas = makeCanvas(shape[2], shape[1], Math.max(1, Math.floor(96 / shape[1])));
  drawImage(canvas, state.input, 0, shape);
  const names = s.classNames;
  const truth = state.inputLabel === null ? '' : ` · label ${names[state.inputLabel]}`;
  const pred = state.predicted === null ? '' : ` · predicted ${names[state.predicted]}`;
  box.replaceChildren(canvas, el('div.input-text', { text: `${state.inputName}${truth}${pred}` }));
}

/** Test image `i` of the dataset becomes the input. */
async function selectTest(i) {
  if (!state.dataset || !state.summary) return;
  state.custom = null;
  state.testIndex = i;
  state.inputRef = { split: 'test', index: i };
  state.input = await client.example('test', i);
  state.inputName = `test image ${i}`;
  state.inputLabel = state.testLabels?.[i] ?? null;
  testGrid.select(i);
  await refresh().catch(() => {});
}

/** A drawn or uploaded image becomes the input. */
async function selectCustom(img) {
  if (!state.summary) return;
  state.custom = img;
  state.inputRef = null;
  state.input = fitToInput(img.data, img.shape, state.summary.input);
  state.inputName = img.name;
  state.inputLabel = null;
  testGrid.select(-1);
  await refresh().catch(() => {});
}

/** The current input again, for a new network (its input shape may differ). */
async function reselectInput() {
  const s = state.summary;
  if (state.custom) return selectCustom(state.custom);
  if (datasetFits()) return selectTest(Math.min(state.testIndex, state.dataset.test - 1));
  state.input = new Float32Array(s.input.depth * s.input.height * s.input.width).fill(0);
  state.inputRef = null;
  state.inputName = 'blank input (draw or upload one)';
  state.inputLabel = null;
  return refresh().catch(() => {});
}

// ---- datasets and training ----

function datasetFits() {
  const d = state.dataset;
  const s = state.summary;
  return Boolean(d && s && d.shape[0] === s.input.depth && d.shape[1] >= s.input.height && d.shape[2] >= s.input.width
    && d.classes.length <= s.classes);
}

function updateTrainable() {
  const ok = datasetFits();
  const d = state.dataset;
  const s = state.summary;
  panel.setRunning(loop.running, ok);
  if (!d) panel.setNote('No dataset loaded.');
  else if (!ok) {
    panel.setNote(`This network's input (${s.input.depth}x${s.input.height}x${s.input.width}, ${s.classes} classes) does not fit `
      + `${DATASETS[d.name] ?? d.name} (${d.shape.join('x')} images, ${d.classes.length} classes): pick another dataset or edit the input layer.`);
  } else panel.setNote('');
}

/** Where a dataset's files are: the built-in one beside the page, the others in the data directory. */
function datasetBase(name) {
  return name === 'mnist5k' ? new URL('./data/', import.meta.url) : dataBase();
}

async function setDataset(name) {
  await loop.pause();
  panel.setDataset(name);
  panel.setNote(`Loading ${DATASETS[name]}…`);
  let info;
  try {
    info = await client.loadDataset(name, datasetBase(name));
  } catch (e) {
    const hint = name === 'mnist5k' ? '' : '\nThe data directory is served at data/: run `npm run download-data`, or start the server with CONVLENS_DATA_DIR set.';
    report(`Could not load ${DATASETS[name]}`, `${e.message ?? e}${hint}`);
    if (state.dataset) panel.setDataset(state.dataset.name);
    updateTrainable();
    throw e;
  }
  state.dataset = info;
  drawInput.setShape(info.shape);
  loop.reset();
  loop.setTestSize(info.test);
  const images = await client.images('test', 0, GRID);
  state.testLabels = images.labels;
  testGrid.setImages(images, info.classes);
  state.testIndex = 0;
  updateTrainable();
  await updateGrid();
  if (!state.custom) await reselectInput();
  panel.update(loop.stats);
  writeUrl();
}

async function updateGrid() {
  if (!datasetFits()) return;
  const { probs } = await client.evaluate('test', 0, Math.min(GRID, state.dataset.test));
  testGrid.update(probs);
}

async function setTrainer(config) {
  try {
    state.trainer = await client.setTrainer(config);
  } catch (e) {
    report('Trainer settings not changed', e);
  }
  panel.setTrainer(state.trainer);
  scheduleAutosave();
  writeUrl();
}

let lastView = 0;
let lastGrid = 0;
let lastSave = 0;
/** Between training chunks: refresh the views now and then. */
async function betweenChunks(single) {
  const now = performance.now();
  if (single || now - lastView > VIEW_EVERY_MS) {
    lastView = now;
    await refresh().catch(() => {});
  }
  if (single || now - lastGrid > GRID_EVERY_MS) {
    lastGrid = now;
    await updateGrid().catch(() => {});
  }
  if (now - lastSave > AUTOSAVE_EVERY_MS) {
    lastSave = now;
    await autosave();
  }
  state.trained = true;
  state.weightsFrom = `trained here: ${loop.stats.examples.toLocaleString('en-US')} examples`;
  setStatus();
  if (state.exact) {
    state.exact = false;
    writeUrl();
  }
}

loop.addEventListener('stats', () => panel.update(loop.stats));
loop.addEventListener('state', () => {
  panel.setRunning(loop.running, datasetFits());
  if (!loop.running) {
    autosave();
    refresh().catch(() => {});
    updateGrid().catch(() => {});
  }
});
loop.addEventListener('error', (e) => banner.trainingStopped(e.detail.error, (rate) => setTrainer({ learningRate: rate })));

// ---- networks ----

function setSummary(summary) {
  state.summary = summary;
  layersView.build(summary);
  setStatus();
}

/** Loads a net; on error the current one stays and the message points into the spec box. */
async function loadNet({ text, weights, seed, preset = null, weightsFrom = null, quiet = false, from = null }) {
  await loop.pause();
  let summary;
  try {
    summary = await client.load(text, weights, seed);
  } catch (e) {
    state.loadError = e.message;
    if (quiet) return false;
    specView.showError(e.message);
    report('Network not changed', e);
    return false;
  }
  banner.clear();
  specView.showError(null);
  Object.assign(state, { spec: text, seed, preset, trained: weights !== null, weightsFrom, autoObjective: true, objective: null, from, exact: from !== null });
  setSummary(summary);
  loop.reset();
  loop.setTestSize(state.dataset?.test ?? 0);
  panel.update(loop.stats);
  state.trainer = await client.setTrainer(state.trainer ?? {});
  state.trainerAtLoad = { ...state.trainer };
  panel.setTrainer(state.trainer);
  updateTrainable();
  await reselectInput();
  await updateGrid().catch(() => {});
  scheduleAutosave();
  return true;
}

async function applySpec({ text, seed }) {
  await loadNet({ text, weights: null, seed, from: { spec: text, seed } });
}

async function choosePreset(name) {
  if (name === 'toy2d') {
    location.href = new URL('2d.html', location.href).href;
    return;
  }
  if (!name) return;
  let p;
  try {
    p = await fetchPreset(name);
  } catch (e) {
    report('Preset', e);
    return;
  }
  specView.set(p.specText, state.seed, name);
  state.trainer = await client.setTrainer(p.trainer).catch(() => state.trainer);
  const ok = await loadNet({ text: p.specText, weights: p.weightBytes, seed: state.seed, preset: name,
    weightsFrom: p.weightBytes ? `${p.label.split('·')[1]?.trim() ?? 'trained weights'}` : null, from: { preset: name } });
  if (ok && state.dataset?.name !== p.dataset) await setDataset(p.dataset).catch(() => {});
}

async function resetWeights() {
  const seed = specView.seed();
  // From scratch, the preset's larger learning rate (its default is for going on from trained weights).
  const rate = PRESETS[state.preset]?.scratchRate;
  if (rate && ['sgd', 'momentum', 'nesterov'].includes(state.trainer?.method)) await setTrainer({ ...state.trainer, learningRate: rate });
  if (await loadNet({ text: state.spec, weights: null, seed, preset: null, from: { spec: state.spec, seed } })) specView.set(state.spec, seed, '');
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
/**
 * A user's model, imported by the engine (views/import.js: a .onnx, a TF.js model.json and its
 * shards, a .tflite...; named after its file), loaded as any spec and weights. `from: {model: url}`
 * when it came from a link (?model=), which the page's URL and Share keep. Resolves to whether it
 * loaded; `quiet` leaves the error in state.loadError instead of a banner.
 */
async function openImported(model, { from = null, quiet = false } = {}) {
  const text = model.spec;
  const ok = await loadNet({ text, weights: model.weights, seed: state.seed, weightsFrom: `imported from ${model.info.file}`, from, quiet });
  if (!ok) return false;
  specView.set(formatSpec(text), state.seed);
  // A CIFAR-sized colour net gets CIFAR-10's images when the current dataset does not fit it.
  const { depth, height, width } = state.summary.input;
  if (!datasetFits() && depth === 3 && height <= 32 && width <= 32 && state.dataset?.name !== 'cifar10') {
    await setDataset('cifar10').catch(() => {});
  }
  return true;
}

async function openModel(fileName, bytes) {
  let spec;
  try {
    spec = await client.embeddedSpec(bytes);
  } catch (e) {
    // A safetensors file without a spec (PyTorch's, or another tool's): try it as the weights of
    // the network in the Network box.
    if (/carries no network spec/.test(e.message) && state.spec) {
      const ok = await loadNet({ text: state.spec, weights: bytes, seed: state.seed, preset: state.preset, weightsFrom: `weights from ${fileName}`, quiet: true });
      if (ok) return;
      report(`Could not open ${fileName}; the network was not changed`, new Error(`it carries no network spec, and its tensors do not fit the network in the Network box (${state.loadError}). Put the network it was saved from into the Network box, Apply, and open the file again`));
      return;
    }
    report(`Could not open ${fileName}; the network was not changed`, e);
    return;
  }
  const ok = await loadNet({ text: spec, weights: bytes, seed: state.seed, weightsFrom: `weights from ${fileName}` });
  if (ok) specView.set(formatSpec(spec), state.seed);
}

// ---- autosave ----

/** Moves a stored state that failed to start the page out of the way, and offers it for download. */
async function setAside(saved, why) {
  state.trainer = null;
  await store.save('set-aside', saved).catch(() => {});
  await store.remove(AUTOSAVE_KEY).catch(() => {});
  const url = URL.createObjectURL(new Blob([saved.weights ?? saved.spec ?? ''], { type: 'application/octet-stream' }));
  const link = el('a', { href: url, download: saved.weights ? 'convlens-set-aside.safetensors' : 'convlens-set-aside.json', text: 'Download it', id: 'set-aside-download' });
  // Shown once the defaults have loaded (a successful load clears the banner).
  state.setAside = { why, show: () => banner.show(`Your last session could not be restored (${why}); it was set aside and the defaults loaded.`, link) };
}

let saveTimer = null;
function scheduleAutosave() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => autosave(), 500);
}

async function autosave() {
  if (!state.summary || !window.indexedDB || state.autosavePaused) return;
  try {
    // Another tab saved after this one last loaded or saved: keep its work, and stop here.
    const current = await store.load(AUTOSAVE_KEY);
    if (current?.tab && current.tab !== state.tab && current.savedAt > state.autosaveSeen) {
      state.autosavePaused = true;
      banner.show('Another tab saved its model after this one, so this tab no longer autosaves (the other tab\'s work is kept). "Download model" keeps this tab\'s.');
      return;
    }
    const weights = await client.exportWeights();
    await store.save(AUTOSAVE_KEY, {
      spec: state.spec, weights, seed: state.seed, preset: state.preset, dataset: state.dataset?.name ?? null,
      trainer: state.trainer, weightsFrom: state.weightsFrom, examples: loop.stats.examples, tab: state.tab, from: state.from,
    });
    state.savedAt = Date.now();
    state.autosaveSeen = state.savedAt;
  } catch (e) {
    console.warn('autosave failed', e);
  }
}

// ---- engine ----

function setEngine(info) {
  state.backend = info.backend;
  state.webgpu = info.webgpu;
  backendView.update(state);
}

async function switchBackend(target) {
  await loop.pause();
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
  if (state.trainer) await client.setTrainer(state.trainer).catch(() => {});
  await refresh().catch(() => {});
}

let failure = null;
client.addEventListener('panic', (e) => {
  loop.running = false;
  failure = e.detail;
  banner.engineStopped(failure);
});
client.addEventListener('restarted', async (e) => {
  if (failure !== null) banner.engineRestarted(failure, e.detail);
  failure = null;
  setEngine(e.detail);
  if (state.trainer) await client.setTrainer(state.trainer).catch(() => {});
  refresh().catch(() => {});
});
client.addEventListener('progress', (e) => panel.setNote(`${e.detail.what}: ${e.detail.done}/${e.detail.total} files`));
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
  const params = new URLSearchParams(location.search);
  let want = params.get('backend') ?? 'auto';
  if (!['auto', 'cpu', 'webgpu'].includes(want)) {
    banner.show(`Unknown backend '${want}' in the URL (use cpu or webgpu); picking one automatically.`);
    want = 'auto';
  }
  if (want !== 'auto') state.urlBackend = want;
  // The engine's own parameters (engine-client.js reads them from the address bar) stay in it.
  for (const k of ['workers', 'gpuTimeout']) if (params.has(k)) state.urlEngine[k] = params.get(k);
  const presetName = PRESETS[params.get('preset')] ? params.get('preset') : DEFAULT_PRESET;
  // A link names its network (a preset, or a spec and a seed); without one, the autosave.
  const linked = params.has('fresh') || params.has('preset') || params.has('spec') || params.has('model');
  const saved = linked ? undefined : await store.load(AUTOSAVE_KEY);
  if (saved?.savedAt) state.autosaveSeen = Math.max(state.autosaveSeen, saved.savedAt);
  const urlDataset = DATASETS[params.get('dataset')] ? params.get('dataset') : null;
  setEngine(await initEngine(want));
  // The trainer's controls and the URL's trainer settings (?learningRate=0.05&batchSize=50), both
  // from the engine's schema (values out of range are clamped to it).
  const schema = await client.request('settingsSchema', { technique: 'trainer' });
  state.trainerDefaults = Object.fromEntries(schema.fields.map((f) => [f.key, f.default]));
  panel.useSchema(schema);
  const urlTrainer = await client.request('settingsFromUrl', { technique: 'trainer', given: Object.fromEntries(params) });
  if (saved) {
    // A stored state that cannot start the page is set aside (offered for download), never
    // retried on every visit; the defaults load instead.
    let why = 'its network could not be loaded';
    try {
      state.trainer = { ...saved.trainer, ...urlTrainer };
      const ok = await loadNet({ text: saved.spec, weights: saved.weights, seed: saved.seed, preset: saved.preset,
        weightsFrom: `${saved.weightsFrom ?? 'weights'} (restored from your last visit)` });
      if (ok) {
        state.from = saved.from ?? null;
        // An imported model's summary comes back with it.
        const kept = await storedModel();
        if (kept?.spec && kept.spec === saved.spec) importView.show(kept);
        specView.set(formatSpec(saved.spec), saved.seed, saved.preset ?? '');
        await setDataset(urlDataset ?? saved.dataset ?? PRESETS[saved.preset]?.dataset ?? 'mnist5k').catch(() => {});
        state.restored = true;
        await openLinked(params).catch((e) => report('Could not open the linked image', e));
        return;
      }
      why = state.loadError ?? why;
    } catch (e) {
      why = e?.message ?? String(e);
    }
    await setAside(saved, why);
  }
  if (params.has('model') && !params.has('preset')) {
    // A model by its address, for course materials (?model=https://example.org/net.onnx, or a TF.js
    // model.json with its shards beside it; &labels=URL of class names): fetched and imported as
    // if opened.
    const url = params.get('model');
    const labels = params.get('labels');
    state.trainer = { ...state.trainerDefaults, ...urlTrainer };
    let why;
    try {
      const files = await fetchModelFiles(new URL(url, location.href), labels ? new URL(labels, location.href) : null);
      const model = await importFiles(client, files);
      if (await openImported(model, { from: { model: url, ...(labels ? { labels } : {}) }, quiet: true })) {
        importView.show(model, { linked: true });
        if (!state.dataset) await setDataset(urlDataset ?? 'mnist5k').catch(() => {});
        await openLinked(params).catch((e) => report('Could not open the linked image', e));
        return;
      }
      why = state.loadError;
    } catch (e) {
      why = e?.message ?? String(e);
    }
    state.linkError = `The link's model ${url} could not be opened (${why}); the default network loaded instead.`;
  }
  if (params.has('spec') && !params.has('preset')) {
    // A network given as a spec and a seed: its random initial weights, the same in every browser.
    const text = params.get('spec');
    const seed = Math.min(2 ** 32 - 1, Math.max(0, Math.floor(Number(params.get('seed') ?? state.seed) || 0)));
    state.trainer = { ...state.trainerDefaults, ...urlTrainer };
    if (await loadNet({ text, weights: null, seed, quiet: true, from: { spec: text, seed } })) {
      specView.set(formatSpec(text), seed, '');
      await setDataset(urlDataset ?? 'mnist5k').catch(() => {});
      await openLinked(params).catch((e) => report('Could not open the linked image', e));
      return;
    }
    state.linkError = `The link's network could not be loaded (${state.loadError}); the default network loaded instead.`;
  }
  const p = await fetchPreset(presetName);
  state.trainer = { ...p.trainer, ...urlTrainer };
  specView.set(p.specText, state.seed, presetName);
  const ok = await loadNet({ text: p.specText, weights: p.weightBytes, seed: state.seed, preset: presetName,
    weightsFrom: p.weightBytes ? p.label.split('·')[1].trim() : null, from: { preset: presetName } });
  if (!ok) await loadNet({ text: p.specText, weights: null, seed: state.seed, preset: presetName, from: { preset: presetName } });
  await (urlDataset ? setDataset(urlDataset).catch(() => setDataset(p.dataset)) : setDataset(p.dataset)).catch(() => {});
  state.setAside?.show();
  if (state.linkError) banner.show(state.linkError);
  await openLinked(params).catch((e) => report('Could not open the linked image', e));
}

/** `class:K`, `prob:K`, `channel:LAYER:C` or `neuron:LAYER:I` for the network in `summary`; null if it is none of them. */
function parseObjective(text, summary) {
  const [kind, a, b] = String(text ?? '').split(':');
  const n = (v) => (/^\d+$/.test(v ?? '') ? Number(v) : -1);
  if ((kind === 'class' || kind === 'prob') && n(a) >= 0 && n(a) < summary.classes) return { kind, index: n(a) };
  const layer = summary.layers[n(a)];
  if (!layer || n(b) < 0) return null;
  const [c, h, w] = layer.shape;
  if (kind === 'channel' && n(b) < c) return { kind, layer: n(a), channel: n(b) };
  if (kind === 'neuron' && n(b) < c * h * w) return { kind, layer: n(a), index: n(b) };
  return null;
}

/** The objective as a link writes it. */
function objectiveText(o) {
  if (o?.kind === 'class' || o?.kind === 'prob') return `${o.kind}:${o.index}`;
  if (o?.kind === 'channel') return `channel:${o.layer}:${o.channel}`;
  if (o?.kind === 'neuron') return `neuron:${o.layer}:${o.index}`;
  return null;
}

/**
 * The image and objective of a link (the dataset page's patches link them too):
 * ?preset=mnist&dataset=mnist&split=train&index=40123&objective=neuron:3:456. Indices past the
 * dataset's end are clamped to it; an objective that does not fit the network is ignored.
 */
async function openLinked(params) {
  const objective = params.has('objective') ? parseObjective(params.get('objective'), state.summary) : null;
  if (params.has('objective') && !objective) banner.show(`The link's objective '${params.get('objective')}' does not fit this network; showing the predicted class.`);
  if (params.has('index') && state.dataset && datasetFits()) {
    const split = params.get('split') === 'train' ? 'train' : 'test';
    const count = split === 'train' ? state.dataset.train : state.dataset.test;
    const index = Math.min(count - 1, Math.max(0, Math.floor(Number(params.get('index')) || 0)));
    if (split === 'test') await selectTest(index);
    else {
      state.custom = null;
      state.input = await client.example(split, index);
      state.inputName = `${split} image ${index}`;
      state.inputLabel = null;
      state.inputRef = { split, index };
      testGrid.select(-1);
    }
  }
  if (objective) setObjective(objective);
  await refresh();
}

// ---- the URL and the Share box ----

/** Trainer settings that differ from the preset's (or the engine's defaults), rounded as the URL writes them. */
function trainerChanges() {
  // A setting whose default is automatic (null: ε follows the method) compares with what the
  // engine made of it when the network loaded.
  const auto = Object.fromEntries(Object.entries(state.trainerDefaults).filter(([, v]) => v === null).map(([k]) => [k, state.trainerAtLoad?.[k]]));
  const base = { ...state.trainerDefaults, ...auto, ...(PRESETS[state.from?.preset]?.trainer ?? {}) };
  const round = (v) => (typeof v === 'number' ? Number(v.toPrecision(6)) : v);
  const out = {};
  for (const [k, v] of Object.entries(state.trainer ?? {})) {
    if (k in state.trainerDefaults && round(v) !== round(base[k])) out[k] = round(v);
  }
  return out;
}

/**
 * The page's state as query parameters. The network is in them only when its weights are exactly
 * what the parameters make (a preset's own, or a spec's random initialization from a seed); a
 * shared link names where the network came from even after training (its weights stay here).
 */
function pageParams({ share = false } = {}) {
  const q = new URLSearchParams();
  if (state.urlBackend) q.set('backend', state.urlBackend);
  if (!share) for (const [k, v] of Object.entries(state.urlEngine)) q.set(k, v);
  const from = state.from;
  if (from && (state.exact || share)) {
    if (from.preset) q.set('preset', from.preset);
    else if (from.model) {
      q.set('model', from.model);
      if (from.labels) q.set('labels', from.labels);
    }
    else {
      let compact = from.spec;
      try { compact = JSON.stringify(JSON.parse(from.spec)); } catch { /* as typed */ }
      q.set('spec', compact);
      q.set('seed', String(from.seed));
    }
  }
  if (state.dataset) q.set('dataset', state.dataset.name);
  if (state.inputRef) {
    if (state.inputRef.split === 'train') q.set('split', 'train');
    q.set('index', String(state.inputRef.index));
  }
  const objective = state.autoObjective ? null : objectiveText(state.objective);
  if (objective) q.set('objective', objective);
  for (const [k, v] of Object.entries(trainerChanges())) q.set(k, String(v));
  return q;
}

/** The address bar follows the page's state (replaceState: no history entry per click). */
function writeUrl() {
  if (!state.started || !state.summary) return;
  const q = pageParams().toString();
  const url = `${location.pathname}${q ? `?${q}` : ''}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) history.replaceState(history.state, '', url);
  shareNote();
}

function shareNote() {
  const from = state.from;
  let text = '';
  if (!from) text = 'This network came from a file or your last visit: a link cannot carry its weights ("Download model" saves them). The link keeps the image, objective and settings.';
  else if (!state.exact) {
    const what = from.preset ? `the ${from.preset} preset with its own weights` : from.model ? `the model at ${from.model} with its own weights` : `this network with its random weights (seed ${from.seed})`;
    text = `The link opens ${what}, not the weights trained here ("Download model" saves those).`;
  }
  $('share-note').textContent = text;
}

function shareLink() {
  const q = pageParams({ share: true }).toString();
  return new URL(`${location.pathname}${q ? `?${q}` : ''}`, location.href).href;
}

/** The layer view as a <convlens-view>: a preset's own weights, a test image, the objective. */
function embedCode() {
  const from = state.from;
  if (!from?.preset || !state.exact) throw new Error('an element shows a preset\'s own weights; pick a preset in the Network box (its weights untrained here) to embed this view');
  if (state.inputRef?.split !== 'test') throw new Error('an element shows a test image: pick one in the test grid (drawn and uploaded images cannot be embedded)');
  const mnist = from.preset === 'mnist' || from.preset === 'mnist5k';
  if (!mnist && state.dataset?.name !== 'cifar10') throw new Error(`the ${from.preset} net's element shows its own dataset's images; pick it in Training`);
  const objective = state.autoObjective ? null : objectiveText(state.objective);
  const src = new URL('convlens-view.js', import.meta.url).href;
  return `<script type="module" src="${src}"></script>\n<convlens-view ${attributes([['net', from.preset], ...(mnist ? [['dataset', state.dataset.name]] : []), ['view', 'layers'],
    ['image', state.inputRef.index], ...(objective ? [['target', objective]] : []), ['autorun', '']])}></convlens-view>`;
}
createShareBox($('share'), { embed: embedCode, link: shareLink, report, status: (t) => { $('share-status').textContent = t; } });

const ready = start().finally(() => {
  state.started = true;
  writeUrl();
});
ready.catch((e) => report('ConvLens failed to start', e));
window.convlens = { client, state, ready, refresh, loop, setDataset, choosePreset, shareLink, embedCode };
