// What the pages (dataset.js, optimize.js) and the <convlens-view> element give their views about
// the current network and image: written once here, each taking the page's `state` (and client).
import { loadSquare, resizeChw } from './image-io.js';

/** [index, label] of the layers a view offers (from `from` on; the softmax left out). */
export function layerOptions(state, from = 1) {
  return state.summary.layers.filter((l) => l.index >= from && l.type !== 'softmax')
    .map((l) => [l.index, l.index === 0 ? '0 input (the pixels)' : `${l.index} ${l.name} · ${l.desc.split(',')[0]} (${l.shape.join('×')})`]);
}

/** The last conv layer with a spatial map (the lecture's usual choice), after its activation when that is a layer of its own; else the last layer. */
export function defaultLayer(state) {
  const layers = state.summary.layers;
  // Layers with a spatial map (MobileNet's classifier is a 1x1 conv on a 1x1 map).
  const convs = layers.filter((l) => (l.type === 'conv' || l.type === 'add') && l.shape[1] * l.shape[2] > 1);
  if (!convs.length) return layers.length - 1;
  // After its activation when that is a layer of its own (Keras models: conv, then relu).
  const last = convs[convs.length - 1].index;
  const next = layers[last + 1];
  const act = ['relu', 'relu6', 'leaky_relu', 'clip', 'sigmoid', 'tanh'];
  return next && act.includes(next.type) && next.inputs.length === 1 && next.inputs[0] === last ? last + 1 : last;
}

/** A layer's index by name, or `fallback`. */
export function layerNamed(state, name, fallback) {
  return state.summary.layers.find((l) => l.name === name)?.index ?? fallback;
}

/** The conv layers' indices. */
export function convLayers(state) {
  return state.summary.layers.filter((l) => l.type === 'conv' || l.type === 'add').map((l) => l.index);
}

/** The top `n` classes of an image as text ("name 97.1% · ..."). */
export async function topClasses(client, state, image, n = 3) {
  const probs = await client.forward(image);
  return [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, n)
    .map((k) => `${state.classNames[k] ?? k} ${(100 * probs[k]).toFixed(1)}%`).join(' · ');
}

/** The current image at size x size (square), re-decoded from its source when it has one. */
export async function imageAt(state, size) {
  const { depth, height, width } = state.summary.input;
  if (size === height && size === width) return state.image;
  if (state.imageSrc) return loadSquare(state.imageSrc, size, depth);
  return resizeChw(state.image, [depth, height, width], size, size);
}
