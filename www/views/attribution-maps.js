// The attribution page's views: one card per method (the map, the map over the image, its colour
// scale, PNG downloads) and the occlusion panel (settings, progress, cancel, the maps).
import { drawHeat, drawOverlay, downloadPng, legend, rangeOf } from './colormap.js';
import { drawImage, makeCanvas, zoomFor } from './draw.js';
import { el, fmt } from './dom.js';

export const METHODS = [
  { id: 'gradient', name: 'Gradient', cite: 'Simonyan et al. 2014',
    about: 'd target / d pixel: how fast the target changes with each pixel. Through a ReLU it passes where the input was positive.' },
  { id: 'deconvnet', name: 'Deconvnet', cite: 'Zeiler & Fergus 2014',
    about: 'Backward with every ReLU passing only positive signals, wherever its input was. Signed: negative values are not “evidence against”.' },
  { id: 'guided', name: 'Guided backprop', cite: 'Springenberg et al. 2015',
    about: 'Both rules at every ReLU: positive signals, and only where the ReLU was on. Sharp, but largely class-insensitive.' },
  { id: 'gradient-x-input', name: 'Gradient × input', cite: 'Shrikumar et al. 2016',
    about: 'The gradient weighted by the pixel: a first-order estimate of each pixel’s contribution.' },
  { id: 'smoothgrad', name: 'SmoothGrad', cite: 'Smilkov et al. 2017',
    about: 'The gradient averaged over noisy copies of the image: less speckle.' },
  { id: 'integrated-gradients', name: 'Integrated gradients', cite: 'Sundararajan et al. 2017',
    about: 'The gradient integrated along the straight path from a baseline to the image; the map sums to f(image) − f(baseline).' },
  { id: 'grad-cam', name: 'Grad-CAM', cite: 'Selvaraju et al. 2017',
    about: 'A conv layer’s channels weighted by their mean gradient and summed: where, at that layer’s resolution.' },
];

/** Which colour map a result is drawn with: 'abs' or 'signed'. */
function kindOf(result, display) {
  return display === 'auto' ? result.display : display;
}

export function createMapCard(method, { onDownload }) {
  const map = makeCanvas(1, 1);
  const over = makeCanvas(1, 1);
  const scale = el('div.scale');
  const info = el('div.card-info');
  const save = (what, canvas) => downloadPng(canvas, onDownload(what, canvas));
  const node = el('figure.card', { id: `card-${method.id}`, 'data-method': method.id },
    el('figcaption', {}, el('b', { text: method.name }), el('span.cite', { text: ` ${method.cite}` })),
    el('div.pair', {}, map, over),
    scale, info,
    el('div.row', {},
      el('button.link', { type: 'button', text: 'PNG map', onclick: () => save('map', map) }),
      el('button.link', { type: 'button', text: 'PNG overlay', onclick: () => save('overlay', over) })),
    el('p.hint', { text: method.about }));
  return {
    node,
    draw(result, image, { depth, height, width }, display) {
      const kind = kindOf(result, display);
      const plane = kind === 'signed' ? result.signed : result.abs;
      const [, h, w] = result.shape;
      const z = zoomFor(w, h, 128, 8);
      for (const c of [map, over]) {
        c.width = w;
        c.height = h;
        c.style.width = `${w * z}px`;
        c.style.height = `${h * z}px`;
      }
      const range = rangeOf(plane, kind);
      drawHeat(map, plane, kind, range);
      drawOverlay(over, image, [depth, height, width], plane, kind, range);
      scale.replaceChildren(legend(kind, range), el('span.hint', { text: kind === 'signed' ? ' sum over channels' : ' max |·| over channels' }));
      const bits = [`target ${fmt(result.value)}`, `${result.ms.toFixed(1)} ms`];
      if (result.delta !== undefined) bits.push(`completeness δ ${fmt(result.delta)}`);
      if (result.layerShape) bits.push(`at ${result.layerShape.join('×')}`);
      info.textContent = bits.join(' · ');
      node.classList.remove('failed');
    },
    error(message) {
      node.classList.add('failed');
      info.textContent = message;
      scale.replaceChildren();
      for (const c of [map, over]) c.getContext('2d').clearRect(0, 0, c.width, c.height);
    },
  };
}

/**
 * The occlusion panel. `run(settings, {onProgress, signal, batch})` does the work (EngineClient.occlude);
 * a new run cancels the one in progress.
 */
export function createOcclusionView(root, { settings, classes, defaultClass, run, image, datasetMean, fileName, onError }) {
  const windowIn = el('input', { id: 'occ-window', type: 'number', min: 1, max: 64, value: String(settings.window) });
  const strideIn = el('input', { id: 'occ-stride', type: 'number', min: 1, max: 32, value: String(settings.stride) });
  const fill = el('select', { id: 'occ-fill' }, ...['gray', 'black', 'white', 'mean', 'blur'].map((f) => el('option', { value: f, text: f === 'mean' ? 'dataset mean colour' : f === 'blur' ? 'blurred image' : f })));
  fill.value = settings.fill;
  const classSelect = el('select', { id: 'occ-class' });
  const follow = el('option', { value: '', text: 'the target’s class' });
  const runButton = el('button.apply', { id: 'occ-run', type: 'button', text: 'Run' });
  const cancelButton = el('button', { id: 'occ-cancel', type: 'button', text: 'Cancel', disabled: true });
  const bar = el('progress', { id: 'occ-progress', max: 1, value: 0 });
  const text = el('span.hint', { id: 'occ-text' });
  const prob = makeCanvas(1, 1);
  const change = makeCanvas(1, 1);
  const pixel = makeCanvas(1, 1);
  const scales = [el('div.scale'), el('div.scale'), el('div.scale')];
  const fig = (canvas, caption, scale, what) => el('figure.card', {}, el('figcaption', { text: caption }), canvas, scale,
    el('button.link', { type: 'button', text: 'PNG', onclick: () => downloadPng(canvas, fileName(what)) }));
  root.replaceChildren(
    el('div.row.wrap', {},
      el('label.field', {}, el('span', { text: 'patch' }), windowIn), el('label.field', {}, el('span', { text: 'stride' }), strideIn),
      el('label.field', {}, el('span', { text: 'fill' }), fill), el('label.field', {}, el('span', { text: 'class' }), classSelect),
      runButton, cancelButton, bar, text),
    el('div.maps', {},
      fig(prob, 'Probability of the class with the patch at each position', scales[0], 'probability'),
      fig(change, 'Its change (red: the patch lowers it; blue: raises it)', scales[1], 'change'),
      fig(pixel, 'Per pixel (Captum’s map: mean drop over the patches covering it), over the image', scales[2], 'pixels')));

  let controller = null;
  const current = () => {
    const names = classes();
    const chosen = classSelect.value;
    classSelect.replaceChildren(follow, ...names.map((n, i) => el('option', { value: String(i), text: n })));
    classSelect.value = chosen !== '' && Number(chosen) < names.length ? chosen : '';
    const img = image();
    let f = fill.value;
    if (f === 'mean') {
      // The per-channel mean of the example images (the image's own when there are none).
      const [c, h, w] = img.shape;
      const means = datasetMean() ?? Array.from({ length: c }, (_, k) => img.data.subarray(k * h * w, (k + 1) * h * w).reduce((a, b) => a + b, 0) / (h * w));
      f = `mean:${means.map((m) => m.toFixed(4)).join(',')}`;
    }
    return { window: Number(windowIn.value), stride: Number(strideIn.value), fill: f, class: classSelect.value === '' ? defaultClass() : Number(classSelect.value) };
  };

  function drawGrid(canvas, values, ny, nx, kind, range) {
    const { shape: [, h, w] } = image();
    const z = zoomFor(w, h, 150, 8);
    canvas.width = nx;
    canvas.height = ny;
    canvas.style.width = `${w * z}px`;
    canvas.style.height = `${h * z}px`;
    drawHeat(canvas, values, kind, range);
  }

  function show(s) {
    bar.value = s.total ? s.done / s.total : 0;
    const names = classes();
    if (!s.done) return;
    const grid = s.grid;
    let lo = 0;
    let hi = 0;
    grid.forEach((v, i) => { if (v < grid[lo]) lo = i; if (v > grid[hi]) hi = i; });
    text.textContent = `${names[s.class]}: ${(100 * s.base).toFixed(1)}% without a patch; `
      + `${(100 * grid[lo]).toFixed(1)}% at worst (patch at x ${(lo % s.nx) * s.stride}, y ${Math.floor(lo / s.nx) * s.stride}), `
      + `${(100 * grid[hi]).toFixed(1)}% at best · ${s.done}/${s.total} positions`;
    // Rows not yet done show as the unoccluded value.
    const full = new Float32Array(s.ny * s.nx).fill(s.base);
    full.set(grid);
    // The probability's own range (with the unoccluded value), so that small changes show.
    const probRange = { lo: Math.min(s.base, full.reduce((a, v) => Math.min(a, v), 1)), hi: Math.max(s.base, full.reduce((a, v) => Math.max(a, v), 0)) };
    drawGrid(prob, full, s.ny, s.nx, 'abs', probRange);
    const delta = full.map((v) => s.base - v);
    const m = delta.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
    drawGrid(change, delta, s.ny, s.nx, 'signed', { lo: -m, hi: m });
    scales[0].replaceChildren(legend('abs', probRange));
    scales[1].replaceChildren(legend('signed', { lo: -m, hi: m }));
    if (s.map) {
      const img = image();
      const [, h, w] = img.shape;
      const z = zoomFor(w, h, 150, 8);
      pixel.width = w;
      pixel.height = h;
      pixel.style.width = `${w * z}px`;
      pixel.style.height = `${h * z}px`;
      const r = rangeOf(s.map, 'signed');
      drawOverlay(pixel, img.data, img.shape, s.map, 'signed', r);
      scales[2].replaceChildren(legend('signed', r));
    }
  }

  async function start() {
    controller?.abort();
    const mine = new AbortController();
    controller = mine;
    runButton.disabled = true;
    cancelButton.disabled = false;
    const t0 = performance.now();
    try {
      const s = await run(current(), { signal: mine.signal, batch: 32, onProgress: (st) => { if (controller === mine) show(st); } });
      if (s && controller === mine) text.textContent += ` · ${((performance.now() - t0) / 1000).toFixed(2)} s`;
      if (!s && controller === mine) text.textContent += ' · cancelled';
    } catch (e) {
      if (controller === mine) {
        text.textContent = e.message;
        if (!/patch must be|stride|does not exist|fill/.test(e.message)) onError(e);
      }
    } finally {
      if (controller === mine) {
        runButton.disabled = false;
        cancelButton.disabled = true;
        controller = null;
      }
    }
  }
  runButton.onclick = start;
  cancelButton.onclick = () => controller?.abort();
  for (const c of [windowIn, strideIn, fill, classSelect]) c.onchange = start;
  return {
    run: start,
    cancel: () => controller?.abort(),
    /** New defaults for another network: patch and stride. */
    setDefaults({ window, stride }) {
      windowIn.value = String(window);
      strideIn.value = String(stride);
    },
    /** Sets any of window, stride and fill (gray, black, white, mean, blur). */
    set({ window, stride, fill: f }) {
      if (window !== undefined) windowIn.value = String(window);
      if (stride !== undefined) strideIn.value = String(stride);
      if (f !== undefined) fill.value = String(f);
    },
    values: () => ({ window: Number(windowIn.value), stride: Number(strideIn.value), fill: fill.value }),
    busy: () => controller !== null,
  };
}
