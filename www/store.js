// Autosave in IndexedDB: the current model (spec + weights as the same safetensors file a download
// gives), its preset, dataset and trainer settings; restored when the page opens again.
const DB = 'convlens';
const STORE = 'autosave';

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Saves under `key` ({spec, weights: Uint8Array, ...}). */
export const save = (key, value) => run('readwrite', (s) => s.put({ ...value, savedAt: Date.now() }, key));
export const load = (key) => run('readonly', (s) => s.get(key)).catch(() => undefined);
export const remove = (key) => run('readwrite', (s) => s.delete(key));
