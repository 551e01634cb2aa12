// Loading pretrained models and their example images: shared by the pages.

/** CNN Explainer's Tiny VGG: its 10 Tiny ImageNet classes and its example images (tiny-vgg/img/). */
export const TINY_VGG_CLASSES = ['lifeboat', 'ladybug', 'pizza', 'bell pepper', 'school bus', 'koala', 'espresso', 'red panda', 'orange', 'sport car'];
export const TINY_VGG_IMAGES = ['koala_1', 'bug_1', 'pizza_1', 'pepper_1', 'bus_1', 'boat_1', 'espresso_1', 'panda_1', 'orange_1', 'car_1',
  'koala_2', 'bug_3', 'pizza_2', 'pepper_2', 'bus_2', 'panda_2', 'orange_3', 'koala_3', 'panda_3', 'panda_5'];

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
  const r = await fetch(url);
  if (!r.ok) throw new Error(`cannot fetch ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

/** A TF.js layers model (CNN Explainer's Tiny VGG) from `base`: model.json and its shards. */
export async function loadTfjs(client, base) {
  const r = await fetch(new URL('model.json', base));
  if (!r.ok) throw new Error(`Tiny VGG's model.json is not at ${new URL('model.json', base)} (HTTP ${r.status}); `
    + 'run `npm run download-data` (or set CONVLENS_DATA_DIR) to fetch it');
  const text = await r.text();
  const paths = JSON.parse(text).weightsManifest?.flatMap((g) => g.paths) ?? [];
  const shards = Object.fromEntries(await Promise.all(paths.map(async (p) => [p, await fetchBytes(new URL(p, base))])));
  return client.loadTfjs(text, shards);
}
