// Colour maps for attribution maps, the same tables as the CLI's (crates/core/src/vis/grid.rs):
// magnitudes in viridis (dark purple -> yellow), signed values in ColorBrewer's RdBu (blue for
// negative, white for zero, red for positive). Both stay readable with the common colour-vision
// deficiencies, and viridis also in grayscale print.
import { el, fmt } from './dom.js';

export const VIRIDIS = [
  [68, 1, 84], [71, 45, 123], [59, 82, 139], [44, 114, 142], [33, 145, 140], [40, 174, 128],
  [94, 201, 98], [173, 220, 48], [253, 231, 37],
];
export const RDBU = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];

function lookup(table, t, out, i) {
  const x = Math.max(0, Math.min(1, t)) * (table.length - 1);
  const k = Math.min(table.length - 2, Math.floor(x));
  const f = x - k;
  const a = table[k];
  const b = table[k + 1];
  out[i] = a[0] + (b[0] - a[0]) * f;
  out[i + 1] = a[1] + (b[1] - a[1]) * f;
  out[i + 2] = a[2] + (b[2] - a[2]) * f;
  out[i + 3] = 255;
}

/** The range a map is drawn with: abs maps 0..max, signed maps -m..m (m = max |v|). */
export function rangeOf(plane, kind) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of plane) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return { lo: 0, hi: 0 };
  if (kind === 'signed') {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    return { lo: -m, hi: m };
  }
  return { lo: 0, hi: Math.max(0, hi) };
}

/** (v, out, i) writing RGBA for one value of a map of `kind` ('abs' | 'signed') over `range`. */
export function colorFn(kind, { lo, hi }) {
  if (kind === 'signed') {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    return (v, out, i) => lookup(RDBU, m > 0 ? 0.5 + 0.5 * (v / m) : 0.5, out, i);
  }
  return (v, out, i) => lookup(VIRIDIS, hi > lo ? (v - lo) / (hi - lo) : 0, out, i);
}

/** Draws a [h, w] plane on a canvas of that size. */
export function drawHeat(canvas, plane, kind, range = rangeOf(plane, kind)) {
  const { width: w, height: h } = canvas;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const f = colorFn(kind, range);
  for (let p = 0; p < w * h; p++) f(plane[p], img.data, p * 4);
  ctx.putImageData(img, 0, 0);
}

/**
 * The map over the image (CHW in [0, 1], drawn in gray): the map's opacity grows with its
 * magnitude, so the image shows through where the map is weak.
 */
export function drawOverlay(canvas, image, [c, h, w], plane, kind, range = rangeOf(plane, kind), strength = 1) {
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const f = colorFn(kind, range);
  const m = Math.max(Math.abs(range.lo), Math.abs(range.hi));
  const px = new Uint8ClampedArray(4);
  const n = h * w;
  for (let p = 0; p < n; p++) {
    let g = 0;
    for (let k = 0; k < c; k++) g += image[k * n + p];
    g = Math.max(0, Math.min(1, g / c)) * 255 * 0.8;
    f(plane[p], px, 0);
    const a = m > 0 ? Math.min(1, strength * (0.15 + 0.7 * Math.abs(plane[p]) / m)) : 0;
    for (let k = 0; k < 3; k++) img.data[p * 4 + k] = g * (1 - a) + px[k] * a;
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/** A small colour bar with its end values. */
export function legend(kind, range) {
  const bar = el('canvas.legend-bar', { width: 64, height: 1 });
  const ctx = bar.getContext('2d');
  const img = ctx.createImageData(64, 1);
  const f = colorFn(kind, { lo: 0, hi: 1 });
  for (let i = 0; i < 64; i++) f(kind === 'signed' ? (i / 63) * 2 - 1 : i / 63, img.data, i * 4);
  ctx.putImageData(img, 0, 0);
  return el('div.legend', {}, el('span', { text: fmt(range.lo) }), bar, el('span', { text: fmt(range.hi) }));
}

/** Saves a canvas as a PNG, scaled up `zoom` times with hard pixel edges. */
export function downloadPng(canvas, name, zoom = 8) {
  const big = el('canvas', { width: canvas.width * zoom, height: canvas.height * zoom });
  const g = big.getContext('2d');
  g.imageSmoothingEnabled = false;
  g.drawImage(canvas, 0, 0, big.width, big.height);
  big.toBlob((blob) => {
    const a = el('a', { href: URL.createObjectURL(blob), download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }, 'image/png');
}
