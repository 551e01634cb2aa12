// Shared canvas helpers. Only colour mapping happens here: values in, pixels out.

/** A canvas of w x h pixels, shown zoomed by (zx, zy) with nearest-neighbour upscaling. */
export function makeCanvas(w, h, zx = 1, zy = zx) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  c.className = 'px';
  c.style.width = `${w * zx}px`;
  c.style.height = `${h * zy}px`;
  return c;
}

/** Integer zoom that makes an image about `target` CSS pixels on its longer side. */
export function zoomFor(w, h, target = 48, max = 8) {
  return Math.max(1, Math.min(max, Math.floor(target / Math.max(w, h))));
}

/** Grayscale map: min -> black, max -> white. Returns (v, out, i) writing RGBA at out[i]. */
export function grayMap(min, max) {
  const k = max > min ? 255 / (max - min) : 0;
  return (v, out, i) => {
    const g = k ? (v - min) * k : 128;
    out[i] = out[i + 1] = out[i + 2] = g;
    out[i + 3] = 255;
  };
}

const NEG = [33, 102, 172];
const POS = [178, 24, 43];

/** Diverging map symmetric around 0: -scale -> blue, 0 -> white, +scale -> red. */
export function divergingMap(scale) {
  const k = scale > 0 ? 1 / scale : 0;
  return (v, out, i) => {
    const t = Math.max(-1, Math.min(1, v * k));
    const end = t < 0 ? NEG : POS;
    const a = Math.abs(t);
    out[i] = 255 + (end[0] - 255) * a;
    out[i + 1] = 255 + (end[1] - 255) * a;
    out[i + 2] = 255 + (end[2] - 255) * a;
    out[i + 3] = 255;
  };
}

/** Scale of the diverging map for values in [min, max]. */
export const absMax = (min, max) => Math.max(Math.abs(min), Math.abs(max));

/** CSS colour of one value under a map. */
export function cssColor(map, v) {
  const px = new Uint8ClampedArray(4);
  map(v, px, 0);
  return `rgb(${px[0]} ${px[1]} ${px[2]})`;
}

/** Draws a plane of canvas.width x canvas.height values starting at data[offset]. */
export function drawPlane(canvas, data, offset, map) {
  const { width: w, height: h } = canvas;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  for (let p = 0; p < w * h; p++) map(data[offset + p], img.data, p * 4);
  ctx.putImageData(img, 0, 0);
}

/** Draws three planes (R, G, B at offset, offset+plane, offset+2*plane), each through a gray map. */
export function drawRGB(canvas, data, offset, map) {
  const { width: w, height: h } = canvas;
  const n = w * h;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const px = new Uint8ClampedArray(4);
  for (let p = 0; p < n; p++) {
    for (let ch = 0; ch < 3; ch++) {
      map(data[offset + ch * n + p], px, 0);
      img.data[p * 4 + ch] = px[0];
    }
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/**
 * Layout of a block of rows*cols tiles of th x tw values (tile-major, row-major inside a tile) with 1 px
 * gaps; `transpose` takes tile (r, c) from data tile c*rows + r. With th = tw = 1 and no gap it is a plain
 * heatmap. Draw it with drawTiles().
 */
export function tileLayout(rows, cols, th, tw, { gap = th * tw > 1 ? 1 : 0, transpose = false } = {}) {
  return { rows, cols, th, tw, gap, transpose, width: cols * tw + (cols - 1) * gap, height: rows * th + (rows - 1) * gap };
}

export function drawTiles(canvas, data, layout, map) {
  const { rows, cols, th, tw, gap, transpose } = layout;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(canvas.width, canvas.height); // gaps stay transparent
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const base = (transpose ? c * rows + r : r * cols + c) * th * tw;
      for (let y = 0; y < th; y++) {
        const row = r * (th + gap) + y;
        for (let x = 0; x < tw; x++) {
          const k = base + y * tw + x;
          if (k < data.length) map(data[k], img.data, (row * canvas.width + c * (tw + gap) + x) * 4);
        }
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

/** Pixel under a mouse event on a zoomed canvas. */
export function pixelAt(canvas, event) {
  const r = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - r.left) / r.width) * canvas.width);
  const y = Math.floor(((event.clientY - r.top) / r.height) * canvas.height);
  return { x: Math.max(0, Math.min(canvas.width - 1, x)), y: Math.max(0, Math.min(canvas.height - 1, y)) };
}

/** Draws a CHW image with values in [0, 1]: gray if it has one channel, RGB if three. */
export function drawImage(canvas, data, offset, [c, h, w]) {
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(w, h);
  const plane = h * w;
  for (let p = 0; p < plane; p++) {
    const i = p * 4;
    for (let k = 0; k < 3; k++) img.data[i + k] = 255 * data[offset + (c === 3 ? k : 0) * plane + p];
    img.data[i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
