// Loading pretrained models from the data directory (served at data/): shared by the pages.

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
