// Maximally activating patches (Zeiler & Fergus; Yosinski et al.'s toolbox): for every channel of
// a layer, the images that excite it most, cropped to the receptive field of the unit where each
// peaks. The engine searches the dataset (crates/core/src/vis/patches.rs) and crops the patches;
// this view asks, pages through the channels and draws.
import { countText, el, fmt } from './dom.js';
import { drawImage, makeCanvas } from './draw.js';
import { createForm, schemaFields, settingsOf } from './opt-run.js';
import { runControls } from './ds-run.js';

/** Channels per page: up to 32, fewer when patches are large (MobileNet's deep layers see the whole image). */
const pageSize = ([d, h, w], k) => Math.max(1, Math.min(32, Math.floor(4e6 / (k * d * h * w))));

/** A signed picture (a deconvnet or guided-backprop map) as the toolbox draws it: 0 is gray, ±max|v| black and white. */
function drawSigned(canvas, data, offset, [c, h, w]) {
  let m = 0;
  for (let i = 0; i < c * h * w; i++) m = Math.max(m, Math.abs(data[offset + i]));
  const img = canvas.getContext('2d').createImageData(w, h);
  const s = m > 0 ? 0.5 / m : 0;
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) img.data[p * 4 + k] = 255 * (0.5 + s * data[offset + (c === 3 ? k : 0) * h * w + p]);
    img.data[p * 4 + 3] = 255;
  }
  canvas.getContext('2d').putImageData(img, 0, 0);
}

export function createPatchesView(root, ctx) {
  const { client } = ctx;
  const keys = ['layer', 'split', 'images', 'top'];
  let form = null;
  const formBox = el('div');
  const run = el('button.primary', { type: 'button', id: 'patches-run', text: 'Find the top patches' });
  const beside = el('select', { id: 'patches-maps', 'aria-label': 'beside each patch' },
    el('option', { value: '', text: 'patches only' }),
    el('option', { value: 'deconvnet', text: 'with deconvnet reconstructions' }),
    el('option', { value: 'guided', text: 'with guided backprop' }));
  const cancel = el('button', { type: 'button', id: 'patches-cancel', text: 'Cancel', disabled: true });
  const bar = el('progress', { max: 1, value: 0, 'aria-label': 'progress' });
  const info = el('span.hint', { id: 'patches-info' });
  const pager = el('div.row.ds-pager');
  const grid = el('div.ds-patch-grid', { id: 'patches-grid' });
  const note = el('p.hint', {
    text: 'Each row of a card is one image: the patch of it that this channel responds to most, the square of input pixels the '
      + 'unit at the peak can see (its receptive field, zero outside the image). Click a patch to open the image in the layer view '
      + 'with that unit as the objective (MNIST and CIFAR-10 nets).',
  });
  root.append(el('h2', { text: 'Maximally activating patches' }), note, formBox, el('div.row', {}, run, cancel, bar, info),
    el('div.row', {}, el('label.field.inline', {}, el('span', { text: 'beside each patch' }), beside)), pager, grid);

  let state = null; // the last patches state
  let page = 0;
  let focus = null; // a channel to highlight (from the URL)
  const controls = runControls(run, cancel);
  let drawing = null;
  let lastDraw = 0;

  function buildForm() {
    const s = ctx.schemas.patches;
    const fields = schemaFields(s, keys, {
      layer: { type: 'select', options: ctx.layerOptions(1), value: ctx.defaultLayer(), id: 'patches-layer' },
      split: { id: 'patches-split' },
      images: { id: 'patches-images', value: ctx.state.data?.train ?? 60000, label: 'images searched' },
      top: { id: 'patches-top' },
    });
    form = createForm(fields);
    formBox.replaceChildren(form.node);
    form.inputs.split.input.onchange = () => {
      const d = ctx.state.data;
      form.inputs.images.input.value = form.inputs.split.input.value === 'train' ? d.train : d.test;
    };
  }

  function settings() {
    const v = settingsOf(form, keys);
    return { ...v, layer: Number(v.layer) };
  }

  async function draw() {
    if (!state) return;
    const p = state.patches;
    const [c] = p.shape;
    const k = p.top;
    const PAGE = pageSize(p.patch, k);
    const pages = Math.ceil(c / PAGE);
    page = Math.min(page, pages - 1);
    const a = page * PAGE;
    const b = Math.min(c, a + PAGE);
    pager.replaceChildren(
      el('button', { type: 'button', text: '‹', disabled: page === 0, 'aria-label': 'previous channels', onclick: () => { page--; draw(); } }),
      el('span.hint', { text: `channels ${a}–${b - 1} of ${c}` }),
      el('button', { type: 'button', text: '›', disabled: page >= pages - 1, 'aria-label': 'next channels', onclick: () => { page++; draw(); } }),
    );
    const images = Array.from(p.images.subarray(a * k, b * k));
    const ys = Array.from(p.ys.subarray(a * k, b * k));
    const xs = Array.from(p.xs.subarray(a * k, b * k));
    const crops = await client.patchCrops(p.split, p.layer, images, ys, xs);
    // The unit's deconvnet or guided-backprop picture beside each patch (Zeiler & Fergus; the
    // toolbox): the gradient of the unit in its image, cropped like the patch.
    const rule = beside.value;
    const channels = images.map((_, i) => a + Math.floor(i / k));
    const maps = rule ? await client.patchMaps(p.split, p.layer, channels, images, ys, xs, rule) : null;
    const [d, h, w] = crops.shape;
    const per = d * h * w;
    const size = Math.max(28, Math.min(64, h * Math.max(1, Math.floor(48 / h))));
    const layerName = ctx.state.summary.layers[p.layer]?.name ?? p.layer;
    const [, oh, ow] = p.shape;
    const cards = [];
    for (let ch = a; ch < b; ch++) {
      const tiles = [];
      for (let r = 0; r < k; r++) {
        const at = ch * k + r;
        const img = p.images[at];
        if (img < 0) continue;
        const canvas = makeCanvas(w, h);
        canvas.style.width = `${size}px`;
        canvas.style.height = `${size}px`;
        drawImage(canvas, crops.data, ((ch - a) * k + r) * per, [d, h, w]);
        const label = ctx.state.photos.length ? ctx.state.photos[img]?.name : `${p.split} image ${img}`;
        const title = `${label} · activation ${fmt(p.values[at])} at unit (${p.ys[at]}, ${p.xs[at]})`;
        const neuron = `neuron:${p.layer}:${ch * oh * ow + p.ys[at] * ow + p.xs[at]}`;
        const href = ctx.imagePageLink(p.split, img, neuron);
        tiles.push(href ? el('a.ds-patch', { href, target: '_blank', title, 'aria-label': title }, canvas) : el('span.ds-patch', { title }, canvas));
        if (maps) {
          const m = makeCanvas(w, h);
          m.style.width = `${size}px`;
          m.style.height = `${size}px`;
          drawSigned(m, maps.data, ((ch - a) * k + r) * per, [d, h, w]);
          tiles.push(el('span.ds-patch.ds-map-tile', { title: `${rule} of ${title}` }, m));
        }
      }
      const unit = `#view=patches&net=${ctx.state.net}&layer=${p.layer}&channel=${ch}`;
      const card = el('div.ds-card', { id: `patches-ch-${ch}`, 'data-channel': ch },
        el('div.ds-card-head', {}, el('a', { href: unit, text: `${layerName} · channel ${ch}`, title: 'A link to this unit' }),
          el('span.hint', { text: p.values[ch * k] > -Infinity ? ` max ${fmt(p.values[ch * k])}` : '' })),
        el('div.ds-tiles', { style: `grid-template-columns: repeat(${Math.ceil(Math.sqrt(k)) * (maps ? 2 : 1)}, ${size}px)` }, ...tiles));
      if (ch === focus) card.classList.add('focus');
      cards.push(card);
    }
    grid.replaceChildren(...cards);
  }

  /** Redraws at most every 500 ms while running (each redraw fetches the page's crops). */
  function drawSoon(force = false) {
    const now = performance.now();
    if (drawing || (!force && now - lastDraw < 500)) return drawing;
    lastDraw = now;
    drawing = draw().catch((e) => ctx.report('Could not draw the patches', e)).finally(() => { drawing = null; });
    return drawing;
  }

  async function search() {
    const controller = controls.begin();
    const s = settings();
    bar.value = 0;
    info.textContent = 'starting…';
    const t0 = performance.now();
    ctx.hash.set({ layer: s.layer, channel: focus });
    try {
      const done = await client.datasetView('patches', s, {
        signal: controller.signal,
        onProgress: (st) => {
          state = st;
          bar.value = st.total ? st.step / st.total : 1;
          const secs = (performance.now() - t0) / 1000;
          info.textContent = `${countText(st.step)} of ${countText(st.total)} ${st.patches.split} images · ${fmt(secs)} s`;
          drawSoon();
        },
      });
      if (done) {
        state = done;
        info.textContent = `searched ${countText(done.total)} ${done.patches.split} images in ${fmt((performance.now() - t0) / 1000)} s`;
        await drawing;
        await drawSoon(true);
        if (focus !== null) document.getElementById(`patches-ch-${focus}`)?.scrollIntoView({ block: 'center' });
      } else info.textContent = 'cancelled';
    } catch (e) {
      info.textContent = 'stopped by an error';
      ctx.report('The patch search failed', e);
    } finally {
      controls.end(controller);
    }
  }

  beside.onchange = () => drawSoon(true);
  run.onclick = () => { focus = null; search(); };
  const api = {
    setNet() {
      api.cancel();
      state = null;
      page = 0;
      grid.replaceChildren();
      pager.replaceChildren();
      info.textContent = '';
      buildForm();
    },
    cancel() {
      controls.cancel();
    },
    async fromHash(h) {
      if (!h.has('layer')) return;
      form.set({ layer: h.get('layer') });
      focus = h.has('channel') ? Number(h.get('channel')) : null;
      await search();
      if (focus !== null && state) {
        page = Math.floor(focus / pageSize(state.patches.patch, state.patches.top));
        await draw();
        document.getElementById(`patches-ch-${focus}`)?.scrollIntoView({ block: 'center' });
      }
    },
    /** For tests: the last state. */
    get state() { return state; },
    /** The settings form (the <convlens-view> element fills it from its attributes). */
    get form() { return form; },
    start: () => search(),
    search,
  };
  return api;
}
