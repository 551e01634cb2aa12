// Weight tensors of one layer: the first conv layer's filters as small images, everything else as a compact
// heatmap. The same figure draws the weights (gray) and their gradients (diverging).
import { absMax, divergingMap, drawPlane, drawRGB, drawTiles, grayMap, makeCanvas, tileLayout, zoomFor } from './draw.js';
import { el, fmt, shapeText } from './dom.js';

const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const prod = (a) => a.reduce((x, y) => x * y, 1);

const MAX_W = 480;
const MAX_H = 240;

/**
 * Heatmap layout of a weight tensor; prevShape is the layer input [C, H, W], used to draw each row of an fc
 * weight as tiles shaped like the input (only as many rows as fit). Returns { layout, note }.
 */
function heatmapLayout(shape, prevShape) {
  if (shape.length === 4) {
    const [o, i, kh, kw] = shape; // filters as columns, input channels as rows
    return { layout: tileLayout(i, o, kh, kw, { transpose: true }) };
  }
  if (shape.length === 2) {
    const [out, inp] = shape;
    const [c, h, w] = prevShape ?? [];
    if (c * h * w === inp && h * w > 1) {
      const rows = Math.min(out, Math.max(1, Math.floor((MAX_H + 1) / (h + 1))));
      return { layout: tileLayout(rows, c, h, w), note: rows < out ? `first ${rows} of ${out} units` : '' };
    }
    return { layout: out > inp ? tileLayout(inp, out, 1, 1, { transpose: true }) : tileLayout(out, inp, 1, 1) };
  }
  const n = prod(shape);
  const cols = Math.min(n, 64);
  return { layout: tileLayout(1, 1, Math.ceil(n / cols), cols, { gap: 0 }) };
}

function heatmapFigure(shape, prevShape) {
  const { layout, note = '' } = heatmapLayout(shape, prevShape);
  const fit = Math.min(MAX_W / layout.width, MAX_H / layout.height);
  const z = fit >= 1 ? clamp(Math.floor(fit), 1, 12) : fit; // very large tensors are shown shrunk
  const canvas = makeCanvas(layout.width, layout.height, z);
  canvas.classList.add('frame'); // zero gradients are white: the frame shows the extent
  return { node: canvas, note, draw: (data, map) => drawTiles(canvas, data, layout, map) };
}

/** First conv layer: one small image per filter; gray for 1 input channel, RGB for 3, else a strip. */
function filterFigure([o, i, kh, kw]) {
  const z = zoomFor(kw, kh, 36);
  const per = i * kh * kw;
  const items = Array.from({ length: o }, () => {
    if (i === 1 || i === 3) return { canvas: makeCanvas(kw, kh, z) };
    const layout = tileLayout(1, i, kh, kw);
    return { canvas: makeCanvas(layout.width, layout.height, z), layout };
  });
  const node = el('div.tiles', {}, ...items.map((t) => t.canvas));
  const draw = (data, map, rgbMap) => items.forEach(({ canvas, layout }, f) => {
    if (i === 3) drawRGB(canvas, data, f * per, rgbMap);
    else if (i === 1) drawPlane(canvas, data, f * per, map);
    else drawTiles(canvas, data.subarray(f * per, (f + 1) * per), layout, map);
  });
  return { node, note: '', draw };
}

/**
 * Views of the weight tensors `weights` (from the Summary) of one layer; `filters` draws 4-D weights as
 * filter images. Returns { weightsNode, gradsNode, update(probeWeights) }.
 */
export function weightViews(weights, { filters = false, prevShape = null } = {}) {
  const make = (w) => (filters && w.shape.length === 4 ? filterFigure(w.shape) : heatmapFigure(w.shape, prevShape));
  const parts = weights.map((w) => {
    const value = make(w);
    const grad = make(w);
    const valueCap = el('div.weight-name');
    const gradCap = el('div.weight-name');
    return {
      w, value, grad, valueCap, gradCap,
      valueNode: el('div.weight', {}, valueCap, value.node),
      gradNode: el('div.weight', {}, gradCap, grad.node),
    };
  });
  const label = (cap, name, shape, text, note) => cap.replaceChildren(el('b', { text: name }), ` ${shapeText(shape)}  ${text}${note ? ` (${note})` : ''}`);
  return {
    weightsNode: el('div.tiles', {}, ...parts.map((p) => p.valueNode)),
    gradsNode: el('div.tiles', {}, ...parts.map((p) => p.gradNode)),
    update(probeWeights) {
      parts.forEach((p, k) => {
        const pw = probeWeights?.[k];
        if (!pw) return;
        const s = absMax(pw.gradMin, pw.gradMax);
        p.value.draw(pw.data, grayMap(pw.min, pw.max), grayMap(pw.min, pw.max));
        p.grad.draw(pw.grad, divergingMap(s), grayMap(-s, s)); // RGB filters: 0 is mid gray
        label(p.valueCap, p.w.name, p.w.shape, `min ${fmt(pw.min)} max ${fmt(pw.max)}`, p.value.note);
        label(p.gradCap, `∂/∂${p.w.name}`, p.w.shape, `±${fmt(absMax(pw.gradMin, pw.gradMax))}`, p.grad.note);
      });
    },
  };
}
