// Draw a digit or upload an image: the result goes through the same centre crop as the dataset's
// images (draw at the dataset's resolution, e.g. 28x28 for a 24x24 net).
import { el } from './dom.js';

const PAD = 168;

/** Centre crop (or zero pad) of a [c, h, w] image (values in [0, 1]) to the net's input, CHW. */
export function fitToInput(data, [c, h, w], { depth, height, width }) {
  const oy = Math.floor((h - height) / 2);
  const ox = Math.floor((w - width) / 2);
  const out = new Float32Array(depth * height * width);
  for (let d = 0; d < depth; d++) {
    const sc = c === depth ? d : 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const sy = y + oy;
        const sx = x + ox;
        out[(d * height + y) * width + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? data[(sc * h + sy) * w + sx] : 0;
      }
    }
  }
  return out;
}

/** The pixels of a canvas as a [c, h, w] image in [0, 1] (c = 1: the mean of R, G, B). */
function readCanvas(canvas, c) {
  const { width: w, height: h } = canvas;
  const px = canvas.getContext('2d').getImageData(0, 0, w, h).data;
  const out = new Float32Array(c * h * w);
  for (let p = 0; p < h * w; p++) {
    if (c === 1) out[p] = (px[p * 4] + px[p * 4 + 1] + px[p * 4 + 2]) / (3 * 255);
    else for (let k = 0; k < 3; k++) out[k * h * w + p] = px[p * 4 + k] / 255;
  }
  return out;
}

/**
 * onInput({data, shape, name}): a drawn or uploaded image at the dataset's resolution `shape`;
 * with `live`, also while a stroke is drawn (once per animation frame).
 * Drawing is white on black, as MNIST digits are.
 */
export function createDrawInput(root, { onInput, onError, live = false }) {
  let shape = [1, 28, 28];
  const pad = el('canvas.draw-pad', { width: PAD, height: PAD, title: 'Draw with the mouse' });
  const ctx = pad.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, PAD, PAD); };
  clear();
  let last = null;
  let frame = 0;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * (PAD / r.width), (e.clientY - r.top) * (PAD / r.height)];
  };
  const emitDrawing = () => {
    const small = el('canvas', { width: shape[2], height: shape[1] });
    const s = small.getContext('2d');
    s.imageSmoothingEnabled = true;
    s.imageSmoothingQuality = 'high';
    s.drawImage(pad, 0, 0, shape[2], shape[1]);
    onInput({ data: readCanvas(small, shape[0]), shape, name: 'your drawing' });
  };
  pad.addEventListener('pointerdown', (e) => { pad.setPointerCapture(e.pointerId); last = at(e); });
  pad.addEventListener('pointermove', (e) => {
    if (!last) return;
    const p = at(e);
    ctx.strokeStyle = '#fff';
    ctx.lineCap = 'round';
    ctx.lineWidth = PAD / 10;
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
    // Live: the drawing so far, at most once a frame (the attribution page's maps follow the pen).
    if (live && !frame) frame = requestAnimationFrame(() => { frame = 0; if (last) emitDrawing(); });
  });
  const end = () => { if (last) { last = null; emitDrawing(); } };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);

  const file = el('input', { id: 'image-file', type: 'file', accept: 'image/*', hidden: true });
  const upload = el('button', { id: 'image-upload', type: 'button', text: 'Upload image…' });
  upload.onclick = () => file.click();
  file.onchange = async () => {
    const f = file.files?.[0];
    file.value = '';
    if (!f) return;
    let bitmap;
    try {
      bitmap = await createImageBitmap(f);
    } catch {
      onError(new Error(`${f.name} is not an image this browser can decode`));
      return;
    }
    const [c, h, w] = shape;
    const canvas = el('canvas', { width: w, height: h });
    const g = canvas.getContext('2d');
    // Fit the whole image (letterboxed on black), as the dataset's images are framed.
    const k = Math.min(w / bitmap.width, h / bitmap.height);
    g.fillStyle = '#000';
    g.fillRect(0, 0, w, h);
    g.imageSmoothingQuality = 'high';
    g.drawImage(bitmap, (w - bitmap.width * k) / 2, (h - bitmap.height * k) / 2, bitmap.width * k, bitmap.height * k);
    let data = readCanvas(canvas, c);
    // A dark digit on a light background (a photo of paper) is inverted to MNIST's white on black.
    const mean = data.reduce((a, b) => a + b, 0) / data.length;
    if (c === 1 && mean > 0.5) data = data.map((v) => 1 - v);
    onInput({ data, shape, name: f.name });
  };
  const clearBtn = el('button', { type: 'button', text: 'Clear', onclick: () => { clear(); emitDrawing(); } });
  root.replaceChildren(el('div.draw', {}, pad, el('div.row', {}, clearBtn, upload, file)));
  return {
    /** The dataset's image shape [c, h, w] (what drawings and uploads are scaled to). */
    setShape(s) { shape = s; },
  };
}
