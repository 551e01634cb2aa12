// Loading pretrained models and their example images: shared by the pages.
import { cachedFetch } from './data-cache.js';

/** CNN Explainer's Tiny VGG: its 10 Tiny ImageNet classes and its example images (tiny-vgg/img/). */
export const TINY_VGG_CLASSES = ['lifeboat', 'ladybug', 'pizza', 'bell pepper', 'school bus', 'koala', 'espresso', 'red panda', 'orange', 'sport car'];
export const TINY_VGG_IMAGES = ['koala_1', 'bug_1', 'pizza_1', 'pepper_1', 'bus_1', 'boat_1', 'espresso_1', 'panda_1', 'orange_1', 'car_1',
  'koala_2', 'bug_3', 'pizza_2', 'pepper_2', 'bus_2', 'panda_2', 'orange_3', 'koala_3', 'panda_3', 'panda_5'];

/** The style images of the data directory (`data`: its URL), for style transfer. */
export const styleImages = (data) => ['starry.jpg', 'brick.png', 'grass.png', 'gravel.png'].map((n) => ({ name: n, url: new URL(`images/${n}`, data) }));

/**
 * The first `n` test images of the dataset the engine holds (after client.loadDataset), as sample
 * buttons want them: {name, shape, data, input()}.
 */
export async function datasetSamples(client, classNames, n) {
  const imgs = await client.images('test', 0, n);
  const [c, h, w] = imgs.shape;
  return Array.from(imgs.labels, (label, i) => ({
    name: `test image ${i} (${classNames[label]})`,
    shape: [c, h, w],
    data: imgs.data.slice(i * c * h * w, (i + 1) * c * h * w),
    input: () => client.example('test', i),
  }));
}

/** The bytes at `url`, or an error naming it. */
export async function fetchBytes(url) {
  const r = await cachedFetch(url);
  if (!r.ok) throw new Error(`cannot fetch ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** A TF.js layers model (CNN Explainer's Tiny VGG) from `base`: model.json and its shards. */
export async function loadTfjs(client, base) {
  const r = await cachedFetch(new URL('model.json', base));
  if (!r.ok) throw new Error(`Tiny VGG's model.json is not at ${new URL('model.json', base)} (HTTP ${r.status}); `
    + 'run `npm run download-data` (or set CONVLENS_DATA_DIR) to fetch it');
  const text = await r.text();
  const paths = JSON.parse(text).weightsManifest?.flatMap((g) => g.paths) ?? [];
  const shards = Object.fromEntries(await Promise.all(paths.map(async (p) => [p, await fetchBytes(new URL(p, base))])));
  return client.loadTfjs(text, shards);
}

/**
 * MobileNetV2 from the data directory (`base`: its mobilenet/ folder): the float32 conversion (op
 * list + safetensors) when there, else the published quantized .tflite (npm run download-data),
 * dequantized by the engine. `status(text)` reports the download.
 */
export async function loadMobilenet(client, base, status = () => {}) {
  const labels = await cachedFetch(new URL('imagenet_labels.txt', base)).then((r) => (r.ok ? r.text() : null)).catch(() => null);
  const opList = await cachedFetch(new URL('mobilenet_v2_f32.json', base));
  if (opList.ok) {
    const text = await opList.text();
    status('loading MobileNetV2 weights (14 MB)…');
    const weights = await fetchBytes(new URL('mobilenet_v2_f32.safetensors', base));
    const summary = await client.request('loadOpList', { opList: text, weights, labels });
    // After a restart the worker gets it back as the spec it became with the same weights.
    client.lastLoad = { spec: summary.spec, weights, seed: 0 };
    return summary;
  }
  const url = new URL('mobilenet_v2_1.0_224_quant.tflite', base);
  const r = await cachedFetch(url);
  if (!r.ok) {
    throw new Error(`MobileNetV2 is not in the data directory (${url}: HTTP ${r.status}); run \`npm run download-data\` `
      + '(or set CONVLENS_DATA_DIR to a folder with mobilenet/)');
  }
  status('loading MobileNetV2 (3.5 MB, quantized)…');
  const bytes = new Uint8Array(await r.arrayBuffer());
  const summary = await client.request('loadTflite', { bytes, labels });
  client.lastLoad = { spec: summary.spec, weights: await client.exportWeights(), seed: 0 };
  return summary;
}

/**
 * The files a model at `url` needs, fetched, as the engine's importModel takes them
 * ([{name, bytes}]): the file itself, a TF.js model.json's weight shards (beside it), and the
 * labels file (one class name per line) if `labels` is given.
 */
export async function fetchModelFiles(url, labels = null) {
  const name = decodeURIComponent(url.pathname.split('/').pop() || 'model');
  const bytes = await fetchBytes(url);
  const files = [{ name, bytes }];
  if (/\.json$/i.test(name)) {
    let json = null;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch { /* the engine names what is wrong with it */ }
    // Each shard once (the engine refuses a manifest that names one twice), a bounded number.
    const paths = [...new Set((json?.weightsManifest?.flatMap?.((g) => g.paths ?? []) ?? []).map(String))];
    if (paths.length > 1000) throw new Error(`${name} names ${paths.length} weight files; ConvLens reads at most 1000`);
    files.push(...await Promise.all(paths.map(async (p) => ({ name: p.split('/').pop(), bytes: await fetchBytes(new URL(p, url)) }))));
  }
  if (labels) files.push({ name: 'labels.txt', bytes: await fetchBytes(labels) });
  return files;
}

/**
 * A network from a URL, as an element's `net` attribute gives it: an .onnx, a TF.js layers
 * model.json (its shards beside it), a .tflite, a ConvLens .safetensors with its spec inside, or a
 * ConvLens spec (.json) with `weights` (a .safetensors URL; without it, random weights from seed
 * 0). `labels`: a text file, one class name per line. Resolves to {summary, classes} (classes:
 * the labels' names, or null). The engine opens the files (crates/core: import.rs) and checks
 * every size and field before it allocates; a file that is none of these gets a message naming
 * what was expected.
 */
export async function loadNetFromUrl(client, url, { weights = null, labels = null } = {}) {
  const files = await fetchModelFiles(url, labels);
  if (weights) files.push({ name: 'weights.safetensors', bytes: await fetchBytes(weights) });
  const isSpec = /\.json$/i.test(files[0].name) && files.length === 1 + (labels ? 1 : 0) && !weights;
  if (isSpec) {
    // A ConvLens spec without weights: random weights from seed 0.
    const summary = await client.load(new TextDecoder().decode(files[0].bytes), null, 0);
    const classes = labels ? new TextDecoder().decode(files[1].bytes).split('\n').map((l) => l.trim()).filter(Boolean) : null;
    return { summary, classes };
  }
  const model = await client.request('importModel', { files });
  const summary = await client.load(model.spec, model.weights, 0);
  return { summary, classes: labels ? summary.classNames : null };
}
