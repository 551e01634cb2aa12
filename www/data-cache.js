// The large data (datasets, pretrained nets) kept in the browser's Cache API after the first visit,
// so that a lecture page opened again starts without downloading them. Small files and everything
// when the Cache API is missing (an insecure origin) go to the network as usual.
const CACHE = 'convlens-data-v1';

/** fetch(url), answered from the cache when it holds the URL; a good answer is cached. */
export async function cachedFetch(url) {
  const href = String(url);
  const cache = globalThis.caches ? await globalThis.caches.open(CACHE).catch(() => null) : null;
  const hit = await cache?.match(href).catch(() => null);
  if (hit) return hit;
  const r = await fetch(href);
  if (r.ok && cache) await cache.put(href, r.clone()).catch(() => {});
  return r;
}
