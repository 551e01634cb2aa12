// Network presets: a spec, trained weights made by `convlens train` (see docs/ARCHITECTURE.md for
// the exact commands), the dataset they go with, and trainer settings that work for them: a small
// learning rate to go on training the trained weights (they were annealed to 0; 0.01 would first
// undo much of that), and `scratchRate` for Reset weights.
export const PRESETS = {
  mnist: {
    label: 'MNIST net · trained on 60,000 digits',
    spec: 'nets/mnist.json',
    weights: 'nets/mnist.safetensors',
    dataset: 'mnist5k',
    trainer: { method: 'momentum', learningRate: 0.001, momentum: 0.9, batchSize: 20, l1: 0, l2: 0.001 },
    scratchRate: 0.01,
  },
  mnist5k: {
    label: 'MNIST net · trained on the built-in 4,500 digits',
    spec: 'nets/mnist.json',
    weights: 'nets/mnist5k.safetensors',
    dataset: 'mnist5k',
    trainer: { method: 'momentum', learningRate: 0.001, momentum: 0.9, batchSize: 20, l1: 0, l2: 0.001 },
    scratchRate: 0.01,
  },
  cifar10: {
    label: 'CIFAR-10 net · trained on 4,000 images',
    spec: 'nets/cifar10.json',
    weights: 'nets/cifar10.safetensors',
    dataset: 'cifar10',
    trainer: { method: 'momentum', learningRate: 0.001, momentum: 0.9, batchSize: 20, l1: 0, l2: 0.0005 },
    scratchRate: 0.01,
  },
};

export const DEFAULT_PRESET = 'mnist';

/** Fetches a preset's spec text and weights (null if the weights file is missing). */
export async function fetchPreset(name) {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown preset '${name}'`);
  const url = (f) => new URL(`./${f}`, import.meta.url);
  const [spec, weights] = await Promise.all([
    fetch(url(p.spec)).then((r) => {
      if (!r.ok) throw new Error(`cannot load ${p.spec}: HTTP ${r.status}`);
      return r.text();
    }),
    fetch(url(p.weights)).then((r) => (r.ok ? r.arrayBuffer() : null)).then((b) => b && new Uint8Array(b)).catch(() => null),
  ]);
  return { ...p, name, specText: spec, weightBytes: weights };
}
