// Images in and out of the optimization views: decode a URL, file or bitmap to a CHW float image
// (centre square, scaled), draw one on a canvas, and save a canvas as PNG.
import { el } from './dom.js';

/** The box of an image inside plain white margins (a scanned painting's border): {x, y, w, h}. */
function contentBox(bitmap) {
  const { width: w, height: h } = bitmap;
  const c = el('canvas', { width: w, height: h });
  const g = c.getContext('2d');
  g.drawImage(bitmap, 0, 0);
  const px = g.getImageData(0, 0, w, h).data;
  const white = (x, y) => { const i = (y * w + x) * 4; return px[i] > 235 && px[i + 1] > 235 && px[i + 2] > 235; };
  const rowWhite = (y) => { for (let x = 0; x < w; x += 2) if (!white(x, y)) return false; return true; };
  const colWhite = (x) => { for (let y = 0; y < h; y += 2) if (!white(x, y)) return false; return true; };
  let [y0, y1, x0, x1] = [0, h - 1, 0, w - 1];
  while (y0 < y1 && rowWhite(y0)) y0++;
  while (y1 > y0 && rowWhite(y1)) y1--;
  while (x0 < x1 && colWhite(x0)) x0++;
  while (x1 > x0 && colWhite(x1)) x1--;
  return { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/**
 * Decodes `src` (URL, Blob or ImageBitmap) to CHW floats in [0, 1]: the centre square scaled to
 * size x size (or, `size` = [height, width], the centre crop of that shape scaled to it); with
 * `trim`, of the image inside its white margins (style images).
 */
export async function loadSquare(src, size, depth = 3, { trim = false } = {}) {
  // `size`: a side, or [height, width] (a net whose input is not square): the centre crop at that shape.
  const [h, w] = Array.isArray(size) ? size : [size, size];
  let bitmap = src;
  if (typeof src === 'string' || src instanceof URL) {
    const r = await fetch(src);
    if (!r.ok) throw new Error(`cannot fetch ${src}: HTTP ${r.status}`);
    bitmap = await createImageBitmap(await r.blob());
  } else if (src instanceof Blob) {
    bitmap = await createImageBitmap(src);
  }
  const box = trim ? contentBox(bitmap) : { x: 0, y: 0, w: bitmap.width, h: bitmap.height };
  const [sw, sh] = box.w * h > box.h * w ? [(box.h * w) / h, box.h] : [box.w, (box.w * h) / w];
  const c = el('canvas', { width: w, height: h });
  const g = c.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.fillRect(0, 0, w, h); // transparency composited on black, as the CLI does
  g.drawImage(bitmap, box.x + (box.w - sw) / 2, box.y + (box.h - sh) / 2, sw, sh, 0, 0, w, h);
  const px = g.getImageData(0, 0, w, h).data;
  const out = new Float32Array(depth * h * w);
  for (let p = 0; p < h * w; p++) {
    if (depth === 1) out[p] = (px[p * 4] + px[p * 4 + 1] + px[p * 4 + 2]) / 765;
    else for (let k = 0; k < depth; k++) out[k * h * w + p] = px[p * 4 + k] / 255;
  }
  return out;
}

/** Bilinear resize of a CHW image (for an image picked at the net's size, wanted at another). */
export function resizeChw(data, [c, h, w], oh, ow) {
  const out = new Float32Array(c * oh * ow);
  for (let y = 0; y < oh; y++) {
    const fy = Math.min(h - 1, Math.max(0, (y + 0.5) * h / oh - 0.5));
    const y0 = Math.floor(fy); const y1 = Math.min(h - 1, y0 + 1); const ty = fy - y0;
    for (let x = 0; x < ow; x++) {
      const fx = Math.min(w - 1, Math.max(0, (x + 0.5) * w / ow - 0.5));
      const x0 = Math.floor(fx); const x1 = Math.min(w - 1, x0 + 1); const tx = fx - x0;
      for (let k = 0; k < c; k++) {
        const p = (yy, xx) => data[(k * h + yy) * w + xx];
        out[(k * oh + y) * ow + x] = (p(y0, x0) * (1 - tx) + p(y0, x1) * tx) * (1 - ty) + (p(y1, x0) * (1 - tx) + p(y1, x1) * tx) * ty;
      }
    }
  }
  return out;
}

/** A canvas showing a CHW image (1 channel gray, 3 RGB), `css` CSS pixels on its longer side. */
export function imageCanvas(data, [c, h, w], css = 224) {
  const canvas = el('canvas', { width: w, height: h });
  canvas.className = 'px';
  const z = css / Math.max(w, h);
  canvas.style.width = `${Math.round(w * z)}px`;
  canvas.style.height = `${Math.round(h * z)}px`;
  paint(canvas, data, [c, h, w]);
  return canvas;
}

/** Draws a CHW image on a canvas of its size. */
export function paint(canvas, data, [c, h, w]) {
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) img.data[p * 4 + k] = 255 * Math.min(1, Math.max(0, data[(c === 3 ? k : 0) * h * w + p]));
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/** Saves a canvas as `name`.png at its own resolution. */
export function savePng(canvas, name) {
  canvas.toBlob((blob) => {
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: `${name}.png` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }, 'image/png');
}

/** A captioned image with a PNG button: {node, canvas, set(data, shape, caption)}. */
export function imageCard(title, fileName) {
  const canvas = el('canvas', { width: 1, height: 1 });
  canvas.className = 'px';
  canvas.hidden = true; // until there is something to show
  const caption = el('div.caption');
  const png = el('button.small', { type: 'button', text: 'PNG', title: 'Download this image as PNG' });
  png.onclick = () => savePng(canvas, typeof fileName === 'function' ? fileName() : fileName);
  const node = el('figure.opt-card', {}, el('figcaption', {}, el('span', { text: title }), png), canvas, caption);
  return {
    node, canvas,
    set(data, shape, text = '', css = 224) {
      canvas.hidden = false;
      paint(canvas, data, shape);
      const z = css / Math.max(shape[1], shape[2]);
      canvas.style.width = `${Math.round(shape[2] * z)}px`;
      canvas.style.height = `${Math.round(shape[1] * z)}px`;
      caption.textContent = text;
    },
    title(t) { node.querySelector('figcaption span').textContent = t; },
  };
}
