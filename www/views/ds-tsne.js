// t-SNE maps of two layers' codes side by side (the raw pixels and the last conv layer by default:
// classes separate with depth), animated while the engine optimizes them
// (crates/core/src/vis/tsne.rs): the two jobs take turns in the worker, ~50 ms each, so each map
// gets a frame at least every 100 ms. Points are class-coloured dots or the images themselves;
// hovering shows the image, its label and the network's prediction.
import { countText, el, fmt } from './dom.js';
import { drawImage, makeCanvas } from './draw.js';
import { createForm, schemaFields, settingsOf } from './opt-run.js';
import { runControls } from './ds-run.js';
import { CLASS_COLORS, classColor } from './palette.js';

const SIDE = 420;

export function createTsneView(root, ctx) {
  const { client } = ctx;
  const keys = ['points', 'perplexity', 'iterations', 'method', 'split'];
  let form = null;
  const formBox = el('div');
  const layerA = el('select', { id: 'tsne-layer-a', 'aria-label': 'left map: layer' });
  const layerB = el('select', { id: 'tsne-layer-b', 'aria-label': 'right map: layer' });
  const thumbs = el('input', { type: 'checkbox', id: 'tsne-thumbs' });
  const run = el('button.primary', { type: 'button', id: 'tsne-run', text: 'Make the maps' });
  const cancel = el('button', { type: 'button', id: 'tsne-cancel', text: 'Cancel', disabled: true });
  const tip = el('div.ds-tip', { id: 'tsne-tip', hidden: true });
  const maps = [makeMap(layerA, 'a'), makeMap(layerB, 'b')];
  const legend = el('div.ds-legend', { id: 'tsne-legend' });
  root.append(
    el('h2', { text: 't-SNE map of a layer\'s codes' }),
    el('p.hint', {
      text: 'Each image is a point, placed so that images whose codes are close in that layer stay close on the map '
        + '(t-SNE, van der Maaten & Hinton 2008; the codes are first reduced to 50 dimensions by PCA). Compare the pixels with a deep layer: '
        + 'the classes separate with depth.',
    }),
    formBox,
    el('div.row', {}, run, cancel, el('label.field.inline', {}, thumbs, el('span', { text: 'draw the images' }))),
    el('div.ds-maps', {}, ...maps.map((m) => m.node)),
    legend,
    el('details.ds-read', {}, el('summary', { text: 'How to read this map' }),
      el('p', { text: 'Neighbours on the map are neighbours in the layer: a tight group of one colour is a set of images the layer codes alike. '
        + 'But the distances between groups, and the sizes of the groups, mean little: t-SNE keeps each point\'s nearest neighbours '
        + 'and lets the rest go, and it expands dense groups and shrinks sparse ones. Run it again with another perplexity (how many '
        + 'neighbours each point keeps) before reading much into a shape (Wattenberg, Viégas & Johnson, "How to use t-SNE effectively", 2016).' })),
    tip,
  );

  const controls = runControls(run, cancel);
  let images = null; // {shape, data, labels} of the mapped images, for thumbnails and hover
  const predictions = new Map();

  function makeMap(select, id) {
    const canvas = el('canvas', { id: `tsne-canvas-${id}`, width: SIDE * devicePixelRatio, height: SIDE * devicePixelRatio, 'aria-label': 't-SNE map' });
    canvas.style.width = `${SIDE}px`;
    canvas.style.height = `${SIDE}px`;
    const head = el('div.hint', { id: `tsne-info-${id}` });
    const bar = el('progress', { max: 1, value: 0, 'aria-label': 'progress' });
    const m = { node: el('div.ds-map', {}, el('label.field', {}, el('span', { text: 'layer' }), select), canvas, el('div.row', {}, bar, head)),
      canvas, head, bar, select, state: null, fit: null };
    canvas.onmousemove = (e) => hover(m, e);
    canvas.onmouseleave = () => { tip.hidden = true; };
    return m;
  }

  function buildForm() {
    const s = ctx.schemas.tsne;
    const d = ctx.state.data;
    const points = Math.min(2000, d?.test ?? 2000);
    form = createForm(schemaFields(s, keys, {
      points: { id: 'tsne-points', value: points },
      perplexity: { id: 'tsne-perplexity', value: Math.min(30, Math.max(2, Math.floor((points - 1) / 3))) },
      iterations: { id: 'tsne-iterations' },
      method: { id: 'tsne-method' },
      split: { id: 'tsne-split' },
    }));
    formBox.replaceChildren(form.node);
    for (const [sel, value] of [[layerA, 0], [layerB, ctx.defaultLayer()]]) {
      sel.replaceChildren(...ctx.layerOptions(0).map(([v, l]) => el('option', { value: v, text: l })));
      sel.value = String(value);
    }
    legend.replaceChildren(...ctx.state.classNames.slice(0, 10).map((n, k) => el('span.ds-key', {}, el('i', { style: `background:${classColor(k)}` }), n)));
  }

  function draw(m) {
    const t = m.state?.tsne;
    const g = m.canvas.getContext('2d');
    const W = m.canvas.width;
    g.fillStyle = '#fff';
    g.fillRect(0, 0, W, W);
    if (!t) return;
    if (!t.embedding.length) {
      g.fillStyle = '#666';
      g.font = `${14 * devicePixelRatio}px sans-serif`;
      g.fillText(t.stage === 'codes' ? 'reading the layer\'s codes…' : 'PCA and the neighbours\' probabilities…', 16, 30 * devicePixelRatio);
      return;
    }
    const e = t.embedding;
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < e.length; i += 2) {
      x0 = Math.min(x0, e[i]); x1 = Math.max(x1, e[i]);
      y0 = Math.min(y0, e[i + 1]); y1 = Math.max(y1, e[i + 1]);
    }
    const pad = 12 * devicePixelRatio;
    const span = Math.max(x1 - x0, y1 - y0, 1e-12);
    const s = (W - 2 * pad) / span;
    const ox = pad + ((span - (x1 - x0)) * s) / 2;
    const oy = pad + ((span - (y1 - y0)) * s) / 2;
    m.fit = { x0, y1, s, ox, oy };
    const useThumbs = thumbs.checked && images;
    const [c, h, w] = images?.shape ?? [1, 1, 1];
    const per = c * h * w;
    const tsize = Math.max(10, Math.min(28, 3000 / Math.sqrt(t.points))) * devicePixelRatio;
    const tile = useThumbs ? makeCanvas(w, h) : null;
    for (let i = 0; i < t.points; i++) {
      const px = ox + (e[2 * i] - x0) * s;
      const py = oy + (y1 - e[2 * i + 1]) * s;
      if (useThumbs) {
        drawImage(tile, images.data, i * per, [c, h, w]);
        g.drawImage(tile, px - tsize / 2, py - tsize / 2, tsize, tsize);
      } else {
        const [r, gg, b] = CLASS_COLORS[t.labels[i] % CLASS_COLORS.length];
        g.fillStyle = `rgb(${r},${gg},${b})`;
        g.beginPath();
        g.arc(px, py, 2.4 * devicePixelRatio, 0, 2 * Math.PI);
        g.fill();
      }
    }
  }

  function describe(m) {
    const t = m.state?.tsne;
    if (!t) return '';
    const layer = ctx.state.summary.layers[t.layer];
    const what = `${t.layer === 0 ? 'pixels' : layer.name} (${countText(t.dim)} values → PCA ${fmt(100 * t.explained)}% of the variance)`;
    if (t.stage === 'codes' || t.stage === 'affinities') return `${what} · ${t.stage === 'codes' ? `codes ${m.state.step} of ${t.points}` : 'affinities'}`;
    const kl = t.kl.length ? t.kl[t.kl.length - 1] : NaN;
    return `${what} · ${t.method === 'exact' ? 'exact' : 'Barnes-Hut'} · iteration ${t.iteration} of ${t.iterations}`
      + `${t.exaggerating ? ' (early exaggeration)' : ''} · KL ${fmt(kl)}`;
  }

  async function hover(m, ev) {
    const t = m.state?.tsne;
    if (!t?.embedding.length || !m.fit) return;
    const r = m.canvas.getBoundingClientRect();
    const px = (ev.clientX - r.left) * devicePixelRatio;
    const py = (ev.clientY - r.top) * devicePixelRatio;
    const { x0, y1, s, ox, oy } = m.fit;
    let best = -1;
    let bd = (10 * devicePixelRatio) ** 2;
    for (let i = 0; i < t.points; i++) {
      const dx = ox + (t.embedding[2 * i] - x0) * s - px;
      const dy = oy + (y1 - t.embedding[2 * i + 1]) * s - py;
      if (dx * dx + dy * dy < bd) { bd = dx * dx + dy * dy; best = i; }
    }
    if (best < 0) { tip.hidden = true; return; }
    const split = form.values().split;
    let pred = predictions.get(`${split}:${best}`);
    if (pred === undefined) {
      const { probs } = await client.evaluate(split, best, 1);
      let k = 0;
      for (let j = 1; j < probs.length; j++) if (probs[j] > probs[k]) k = j;
      pred = k;
      predictions.set(`${split}:${best}`, pred);
    }
    const items = [];
    if (images) {
      const [c, h, w] = images.shape;
      const cv = makeCanvas(w, h, Math.max(1, Math.floor(64 / h)));
      drawImage(cv, images.data, best * c * h * w, [c, h, w]);
      items.push(cv);
    }
    const name = ctx.state.photos.length ? ctx.state.photos[best]?.name : `${split} image ${best}`;
    items.push(el('div', {}, el('strong', { text: name }), el('div', { text: `label ${ctx.className(t.labels[best])}` }),
      el('div', { text: `predicted ${ctx.className(pred)}` })));
    tip.replaceChildren(...items);
    tip.hidden = false;
    tip.style.left = `${ev.pageX + 14}px`;
    tip.style.top = `${ev.pageY + 14}px`;
  }

  async function start() {
    const controller = controls.begin();
    const base = settingsOf(form, keys);
    const layers = [Number(layerA.value), Number(layerB.value)];
    ctx.hash.set({ ...base, layers: layers.join(',') });
    predictions.clear();
    const ids = [];
    try {
      images = await client.images(base.split, 0, base.points);
      for (const [i, m] of maps.entries()) {
        m.state = await client.request('datasetStart', { kind: 'tsne', settings: { ...base, layer: layers[i] } });
        ids.push(m.state.id);
        m.head.textContent = describe(m);
        draw(m);
      }
      // The two maps take turns, ~50 ms each.
      while (maps.some((m) => !m.state.done)) {
        for (const m of maps) {
          if (controller.signal.aborted) return;
          if (m.state.done) continue;
          const next = await client.request('datasetStep', { id: m.state.id, budgetMs: 50 });
          // A chunk that was running when Cancel was pressed is not shown.
          if (controller.signal.aborted) return;
          m.state = next;
          m.bar.value = m.state.total ? m.state.step / m.state.total : 1;
          m.head.textContent = describe(m);
          draw(m);
        }
      }
    } catch (e) {
      ctx.report('The t-SNE map failed', e);
    } finally {
      ids.forEach((id) => client.request('optimizeCancel', { id }).catch(() => {}));
      controls.end(controller);
    }
  }

  run.onclick = () => start();
  thumbs.onchange = () => maps.forEach(draw);
  const api = {
    setNet() {
      api.cancel();
      maps.forEach((m) => { m.state = null; m.head.textContent = ''; m.bar.value = 0; draw(m); });
      images = null;
      buildForm();
    },
    cancel() {
      controls.cancel();
    },
    async fromHash(h) {
      const given = Object.fromEntries([...h].filter(([k]) => keys.includes(k)));
      if (Object.keys(given).length) form.set(await client.request('settingsFromUrl', { technique: 'tsne', given }));
      const [a, b] = (h.get('layers') ?? '').split(',');
      if (a !== undefined && a !== '') layerA.value = a;
      if (b !== undefined) layerB.value = b;
      if (h.has('layers')) await start();
    },
    get maps() { return maps; },
    /** The last states of the two maps. */
    get state() { return maps.map((m) => m.state); },
    /** The settings form (the <convlens-view> element fills it from its attributes). */
    get form() { return form; },
    start,
  };
  return api;
}
