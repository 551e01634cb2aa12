// Your own model, on every page: pick or drop its files together — a .onnx (torch.onnx.export); a
// TF.js model.json with its .bin shards (Keras, through tensorflowjs_converter); a .tflite; a
// .safetensors (with its ConvLens spec .json if it has none inside) — and a .txt of class names,
// one per line. The engine decides what each file is and opens it (crates/core: import.rs); this
// module gathers the bytes, keeps the last model opened in IndexedDB (every page offers it, and it
// survives reloads) and shows what was found: the layers, the input size, the normalization
// (which can be changed here: the views take [0, 1] images) and the class names.
import { fetchModelFiles } from '../models.js';
import * as store from '../store.js';
import { el } from './dom.js';

export const USER_MODEL_KEY = 'user-model';
const ACCEPT = '.onnx,.json,.bin,.tflite,.safetensors,.txt';
/** The files a drop may hold for a model (images dropped elsewhere are not ours). */
export const isModelFile = (name) => /\.(onnx|json|bin|tflite|safetensors|txt|h5|keras|pt|pth)$/i.test(name);
/** torchvision's (ImageNet's) normalization, the one most PyTorch models expect. */
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** The model kept from the last import (any page), or undefined. */
export const storedModel = () => store.load(USER_MODEL_KEY).catch(() => undefined);

/** The files as the engine takes them: [{name, bytes}]. */
export const readFiles = async (list) => Promise.all([...list].map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));

export const fileNames = (files) => files.map((f) => f.name).join(', ');

/**
 * Opens `files` through the engine: {spec, weights, info, files, normalize}; throws the engine's
 * message when they are not a model it opens.
 */
export async function importFiles(client, files, normalize = null) {
  const model = await client.request('importModel', { files, mean: normalize?.mean ?? null, std: normalize?.std ?? null });
  return { ...model, files, normalize };
}

/**
 * "Open your model…", the page-wide drop and the summary, in `root`. `onOpen(model)` loads an
 * imported model into the page and resolves to whether it did; only then is the model kept and
 * summarized. `onFiles(files)` may take a drop first (resolving true when it did: the index page
 * opens its own safetensors downloads so). `report(what, error)` shows a failure.
 */
export function createImportView(root, { client, onOpen, report, onFiles = async () => false, label = 'Open your model…' }) {
  const input = el('input', { id: 'model-file', type: 'file', accept: ACCEPT, multiple: true, hidden: true });
  const button = el('button', {
    id: 'model-open', type: 'button', text: label,
    title: 'A .onnx (torch.onnx.export), a TF.js model.json with its .bin files (Keras: tensorflowjs_converter), a .tflite, or a .safetensors saved by ConvLens; with a .txt of class names if you have one. Or drop them on the page.',
  });
  const summary = el('div.import-summary', { id: 'import-summary', hidden: true, role: 'region', 'aria-label': 'your model' });
  let current = null;

  /** `keep`: store it for every page (not a linked model, which must not replace one's own). */
  async function open(files, normalize = null, { keep = true } = {}) {
    if (await onFiles(files)) return true;
    let model;
    try {
      model = await importFiles(client, files, normalize);
    } catch (e) {
      report(`Could not open ${fileNames(files)}; the network was not changed`, e);
      return false;
    }
    if (!(await onOpen(model))) return false;
    const kept = keep && await store.save(USER_MODEL_KEY, model).then(() => true, () => false);
    show(model, { kept, linked: !keep });
    return true;
  }

  /** The summary; `kept`: stored for every page; `linked`: opened from a link. */
  function show(model, { kept = true, linked = false } = {}) {
    current = { ...model, kept, linked };
    const { info } = model;
    const spec = JSON.parse(model.spec);
    const [inp, ...rest] = spec.layers;
    const counts = new Map();
    for (const l of rest) counts.set(l.type, (counts.get(l.type) ?? 0) + 1);
    const kinds = [...counts].map(([t, n]) => (n > 1 ? `${n} ${t}` : t)).join(', ');
    const n = info.normalize;
    const norm = n
      ? `(x − mean) / std with mean ${n.mean.map((v) => +v.toFixed(4)).join(', ')} and std ${n.std.map((v) => +v.toFixed(4)).join(', ')} (${n.from === 'file' ? 'from the file' : 'set here'})`
      : 'none: the model takes [0, 1] pixels as they are';
    const names = spec.classes;
    const classes = info.labels
      ? `${info.classes}, from ${info.labels}: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}`
      : names ? `${info.classes}, named in the file: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}`
        : `${info.classes}, numbered 0–${info.classes - 1} (drop a .txt of names, one per line, with the model to name them)`;
    const mean = el('input', { id: 'import-mean', type: 'text', size: 18, 'aria-label': 'mean per channel', value: (n?.mean ?? []).join(', '), placeholder: 'e.g. 0.485, 0.456, 0.406' });
    const std = el('input', { id: 'import-std', type: 'text', size: 18, 'aria-label': 'standard deviation per channel', value: (n?.std ?? []).join(', '), placeholder: 'e.g. 0.229, 0.224, 0.225' });
    const list = (t) => t.split(/[\s,]+/).filter(Boolean).map(Number);
    const reopen = (normalize) => open(current.files, normalize, { keep: !current.linked });
    const channels = inp.depth;
    summary.replaceChildren(
      el('h3', { text: `${spec.name} · ${info.format}` }),
      el('dl',
        {},
        el('dt', { text: 'Layers' }), el('dd', { id: 'import-layers', text: `${rest.length}: ${kinds}` }),
        el('dt', { text: 'Input' }), el('dd', { id: 'import-input', text: `${inp.height}×${inp.width} pixels (height × width), ${channels} channel${channels > 1 ? 's' : ''}` }),
        el('dt', { text: 'Normalization' }), el('dd', { id: 'import-norm', text: norm }),
        el('dt', { text: 'Classes' }), el('dd', { id: 'import-classes', text: classes })),
      el('div.row.import-norm',
        {},
        el('label', { text: 'mean ' }, mean), el('label', { text: 'std ' }, std),
        el('button', { type: 'button', id: 'import-apply', text: 'Apply', onclick: () => reopen({ mean: list(mean.value), std: list(std.value) }) }),
        channels === 3 ? el('button', { type: 'button', id: 'import-imagenet', text: 'ImageNet (torchvision)', onclick: () => reopen(IMAGENET) }) : null,
        el('button', { type: 'button', id: 'import-none', text: 'None', onclick: () => reopen({ mean: Array(channels).fill(0), std: Array(channels).fill(1) }) })),
      el('p.hint', {
        text: `Files: ${info.files.join(', ')}. ${linked ? 'Opened from the link (not kept in this browser).'
          : kept ? 'Kept in this browser (IndexedDB) for every ConvLens page; nothing leaves your machine.'
            : 'Not kept: this browser refused to store it (too large for its storage?); open it again on another page.'}`,
      }),
    );
    summary.hidden = false;
  }

  button.onclick = () => input.click();
  input.onchange = async () => {
    try {
      const files = await readFiles(input.files ?? []);
      input.value = '';
      if (files.length) await open(files);
    } catch (e) { report('Could not read those files', e); }
  };
  document.addEventListener('dragover', (e) => {
    if ([...(e.dataTransfer?.items ?? [])].some((i) => i.kind === 'file')) e.preventDefault();
  });
  document.addEventListener('drop', async (e) => {
    const list = [...(e.dataTransfer?.files ?? [])].filter((f) => isModelFile(f.name));
    if (!list.length) return;
    e.preventDefault();
    try {
      await open(await readFiles(list));
    } catch (err) { report('Could not read the dropped files', err); }
  });
  root.append(button, input);
  return { open, show, summary, button };
}

/** The data directory's photos (scikit-image's), shown to a model whose input is no dataset's. */
const PHOTOS = ['astronaut.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'brick.png', 'grass.png'];

/**
 * A page's network-list entry for the user's model: its label, the model (`user`), and its
 * images: MNIST's or CIFAR-10's when its input is theirs, else the data directory's photos
 * (`photos`; `images`: a few of them, decoded at its input size), and an occlusion patch of about
 * an eighth of its side.
 */
export function userNet(model, data) {
  const spec = JSON.parse(model.spec);
  const { depth, height, width } = spec.layers[0];
  const side = Math.min(height, width);
  const window = Math.max(2, Math.round(side / 8));
  const base = { label: `Your model: ${spec.name}`, user: model, classes: spec.classes, patch: { window, stride: Math.max(1, Math.round(window / 2)) } };
  if (depth === 1 && height === 28 && width === 28) return { ...base, dataset: 'mnist', base: data, sheets: 1, fallback: 'mnist5k' };
  if (depth === 3 && height === 32 && width === 32) return { ...base, dataset: 'cifar10', base: data, sheets: 1 };
  return { ...base, photos: true, images: PHOTOS.map((n) => ({ name: n, url: new URL(`images/${n}`, data) })) };
}

/** Why the user's model cannot be an element: it lives in this browser only. */
export const USER_EMBED = 'your own model lives in this browser only: put its files on a web server and give the element its address (net="https://…/model.onnx")';

/**
 * "Your model" on a page with a network list (attribution, optimize, dataset): the import button
 * and the summary in `root`; the stored model offered in `nets` (as `user`) and in `select`; an
 * import selects it through `selectNet('user')` (the previous net stays if that fails).
 */
export async function addUserModel({ nets, select, root, client, report, data, selectNet, current }) {
  const offer = (model) => {
    if (model) nets.user = userNet(model, data);
    else delete nets.user;
    let option = select.querySelector('option[value="user"]');
    if (!model) return option?.remove();
    if (!option) select.append(option = el('option', { value: 'user' }));
    option.textContent = nets.user.label;
  };
  const view = createImportView(root, {
    client,
    report,
    onOpen: async (model) => {
      const previous = nets.user?.user ?? null;
      const was = current();
      offer(model);
      try {
        await selectNet('user');
        return true;
      } catch (e) {
        // Back to the net that was shown (the page may have switched part of the way).
        offer(previous);
        report(`Could not load ${model.info.file}; the network was not changed`, e);
        if (was && nets[was]) await selectNet(was).catch((err) => report('Could not restore the previous network', err));
        return false;
      }
    },
  });
  root.append(view.summary);
  const kept = await storedModel();
  if (kept?.spec && kept?.weights) {
    offer(kept);
    view.show(kept);
  }
  /**
   * A model by its address (?model=…/net.onnx or …/model.json, &labels=…), for course materials:
   * offered as "Your model" (not kept: a link does not replace the model one opened oneself).
   * Call after the engine started; resolves to whether the page should select it.
   */
  view.openLink = async () => {
    const q = new URLSearchParams(location.search);
    const link = q.get('model');
    if (!link) return false;
    try {
      const labels = q.get('labels');
      const files = await fetchModelFiles(new URL(link, location.href), labels ? new URL(labels, location.href) : null);
      const model = await importFiles(client, files);
      offer(model);
      view.show(model, { linked: true });
      return true;
    } catch (e) {
      report(`The link's model ${link} could not be opened`, e);
      return false;
    }
  };
  return view;
}
