// One panel per layer: info, activations, gradients of the objective, weights and weight gradients.
import { absMax, cssColor, divergingMap, drawPlane, drawRGB, drawTiles, grayMap, makeCanvas, pixelAt, tileLayout, zoomFor } from './draw.js';
import { countText, el, fmt, shapeText } from './dom.js';
import { weightViews } from './weights.js';

/** The unit index one arrow key away from `i` in an h x w grid (clamped at the edges); null for other keys. */
function arrowStep(key, i, h, w) {
  const [y, x] = [Math.floor(i / w), i % w];
  const to = { ArrowLeft: [y, x - 1], ArrowRight: [y, x + 1], ArrowUp: [y - 1, x], ArrowDown: [y + 1, x] }[key];
  if (!to) return null;
  return Math.min(h - 1, Math.max(0, to[0])) * w + Math.min(w - 1, Math.max(0, to[1]));
}

/**
 * Channel images of a [C, H, W] output. Clicks: a pixel -> neuron objective, a title -> channel
 * objective. From the keyboard: a channel's title (a button) picks the channel with Enter, and its
 * arrow keys pick a unit of it (from the centre, or from the unit picked last).
 */
function channelGrid(layer, onObjective) {
  const [c, h, w] = layer.shape;
  let current = null;
  const z = zoomFor(w, h, c > 12 ? 40 : 56);
  const clickable = layer.index > 0;
  const tiles = Array.from({ length: c }, (_, ch) => {
    const canvas = makeCanvas(w, h, z);
    const title = el('button.tile-title', { text: String(ch), type: 'button', disabled: !clickable });
    if (clickable) {
      title.classList.add('clickable');
      title.title = `channel ${ch}: click to use its mean as the objective (arrow keys: one unit of it)`;
      title.setAttribute('aria-label', `${layer.name} channel ${ch}: its mean as the objective; arrow keys pick one of its units`);
      title.onclick = () => onObjective({ kind: 'channel', layer: layer.index, channel: ch });
      title.addEventListener('keydown', (e) => {
        const mine = current?.kind === 'neuron' && current.layer === layer.index && Math.floor(current.index / (h * w)) === ch;
        const from = mine ? current.index - ch * h * w : Math.floor(h / 2) * w + Math.floor(w / 2);
        const next = arrowStep(e.key, from, h, w);
        if (next === null) return;
        e.preventDefault();
        // Kept here at once: a quick second key moves on from it before the view redraws.
        current = { kind: 'neuron', layer: layer.index, index: ch * h * w + (mine ? next : from) };
        onObjective(current);
      });
      canvas.classList.add('clickable');
      canvas.title = 'click a pixel to use that neuron as the objective';
      canvas.onclick = (e) => {
        const { x, y } = pixelAt(canvas, e);
        onObjective({ kind: 'neuron', layer: layer.index, index: ch * h * w + y * w + x });
      };
    }
    return { canvas, node: el('div.tile', {}, canvas, title) };
  });
  const rgb = layer.index === 0 && c === 3 ? makeCanvas(w, h, z) : null;
  const node = el('div.tiles', {}, rgb && el('div.tile', {}, rgb, el('span.tile-title', { text: 'rgb' })), ...tiles.map((t) => t.node));
  return {
    node,
    draw(data, { map, rgbMap }) {
      tiles.forEach((t, ch) => drawPlane(t.canvas, data, ch * h * w, map));
      if (rgb) drawRGB(rgb, data, 0, rgbMap);
    },
    select(obj) {
      current = obj;
      const hit = obj?.layer === layer.index ? (obj.kind === 'channel' ? obj.channel : obj.kind === 'neuron' ? Math.floor(obj.index / (h * w)) : -1) : -1;
      tiles.forEach((t, ch) => t.node.classList.toggle('selected', ch === hit));
    },
  };
}

/** A [n, 1, 1] output as a row (or wrapped rows) of cells. Clicks -> neuron objective (class on the output). */
function cellRow(layer, onObjective, asClass) {
  const n = layer.shape[0];
  const cols = Math.min(n, 50);
  const layout = tileLayout(1, 1, Math.ceil(n / cols), cols, { gap: 0 });
  const z = Math.max(3, Math.min(16, Math.floor(480 / cols)));
  const canvas = makeCanvas(layout.width, layout.height, z);
  canvas.classList.add('clickable', 'frame');
  // From the keyboard: one tab stop; the arrow keys move the objective along the units.
  let current = -1;
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'slider');
  canvas.setAttribute('aria-label', `${layer.name}: the unit that is the objective (arrow keys)`);
  canvas.setAttribute('aria-valuemin', '0');
  canvas.setAttribute('aria-valuemax', String(n - 1));
  const announce = () => {
    canvas.setAttribute('aria-valuenow', String(Math.max(0, current)));
    canvas.setAttribute('aria-valuetext', current < 0 ? 'no unit of this layer is the objective' : `unit ${current}`);
  };
  announce();
  canvas.addEventListener('keydown', (e) => {
    const next = current < 0 ? (['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown'].includes(e.key) ? 0 : null) : arrowStep(e.key, current, Math.ceil(n / cols), cols);
    if (next === null) return;
    e.preventDefault();
    const i = Math.min(n - 1, next);
    current = i; // at once: a quick second key moves on from it before the view redraws
    announce();
    onObjective(asClass ? { kind: 'class', index: i } : { kind: 'neuron', layer: layer.index, index: i });
  });
  canvas.onclick = (e) => {
    const { x, y } = pixelAt(canvas, e);
    const i = y * cols + x;
    if (i < n) onObjective(asClass ? { kind: 'class', index: i } : { kind: 'neuron', layer: layer.index, index: i });
  };
  return {
    node: canvas,
    draw: (data, { map }) => drawTiles(canvas, data, layout, map),
    select(obj) {
      const mine = (asClass && obj?.kind === 'class') || (obj?.kind === 'neuron' && obj.layer === layer.index);
      current = mine ? obj.index : -1;
      announce();
      canvas.classList.toggle('selected', (asClass && obj?.kind === 'class') || obj?.layer === layer.index);
    },
  };
}

/**
 * Class cells of the output layer: label, a swatch (a bar for probabilities, else the colour map) and the
 * value. Click -> class objective.
 */
function classCells(layer, onObjective, { probs, names }) {
  const n = layer.shape[0];
  const cells = Array.from({ length: n }, (_, i) => {
    const bar = probs ? el('span.bar') : null;
    const swatch = el('span.swatch', {}, bar);
    const value = el('span.pct');
    const node = el('button.cls', {
      type: 'button', 'data-class': i, title: `class ${names?.[i] ?? i}: click to use its score as the objective`,
      onclick: () => onObjective({ kind: 'class', index: i }),
    }, el('span.label', { text: names?.[i] ?? String(i) }), swatch, value);
    return { node, swatch, bar, value };
  });
  return {
    node: el('div.classes', {}, ...cells.map((c) => c.node)),
    draw(data, { map, predicted }) {
      cells.forEach((c, i) => {
        if (c.bar) c.bar.style.height = `${Math.max(0, Math.min(1, data[i])) * 100}%`;
        else c.swatch.style.background = cssColor(map, data[i]);
        c.value.textContent = probs ? `${(data[i] * 100).toFixed(1)}%` : fmt(data[i]);
        c.node.classList.toggle('predicted', i === predicted);
      });
    },
    select(obj) {
      cells.forEach((c, i) => c.node.classList.toggle('selected', obj?.kind === 'class' && obj.index === i));
    },
  };
}

function viewRow(label, content) {
  return el('div.view-row', {}, el('span.view-label', { text: label }), content);
}

function layerPanel(layer, summary, onObjective) {
  const [, h, w] = layer.shape;
  const isOutput = layer.index === summary.layers.length - 1;
  const isClasses = isOutput && summary.classes > 0 && h * w === 1;
  const makeView = (kind) => {
    if (isClasses) return classCells(layer, onObjective, { probs: kind === 'act' && layer.type === 'softmax', names: summary.classNames });
    if (h * w === 1) return cellRow(layer, onObjective, false);
    return channelGrid(layer, onObjective);
  };
  const act = makeView('act');
  const grad = makeView('grad');
  const firstConv = summary.layers.find((l) => l.type === 'conv')?.index === layer.index;
  const prevShape = summary.layers[layer.index - 1]?.shape;
  const weights = layer.weights?.length ? weightViews(layer.weights, { filters: firstConv, prevShape }) : null;

  const actStats = el('div');
  const gradStats = el('div');
  const info = el('div.layer-info', {},
    el('h3', {}, el('span.idx', { text: `#${layer.index}` }), layer.name, el('span.type', { text: layer.type })),
    el('div.desc', { text: layer.desc }),
    el('div', { text: `output ${shapeText(layer.shape)}` }),
    el('div', { text: `${countText(layer.params)} params` }),
    actStats, gradStats);
  const views = el('div.layer-views', {},
    viewRow('Activations', act.node),
    viewRow('Gradients', grad.node),
    weights && viewRow('Weights', weights.weightsNode),
    weights && viewRow('Weight grads', weights.gradsNode));
  const node = el('article.layer-panel', { 'data-layer': layer.index, 'data-type': layer.type }, info, views);

  return {
    node,
    update(lp, { objective, predicted }) {
      const actMap = grayMap(lp.actMin, lp.actMax);
      const s = absMax(lp.gradMin, lp.gradMax);
      act.draw(lp.act, { map: actMap, rgbMap: actMap, predicted });
      grad.draw(lp.grad, { map: divergingMap(s), rgbMap: grayMap(-s, s), predicted });
      act.select(objective);
      grad.select(objective);
      weights?.update(lp.weights);
      actStats.textContent = `act min ${fmt(lp.actMin)} max ${fmt(lp.actMax)}`;
      gradStats.textContent = `grad min ${fmt(lp.gradMin)} max ${fmt(lp.gradMax)}`;
    },
  };
}

/** The layer panels. build(summary) on every load; update(probe, {objective, predicted, seq}) per probe. */
export function createLayersView(root, { onObjective }) {
  let panels = [];
  return {
    build(summary) {
      panels = summary.layers.map((layer) => layerPanel(layer, summary, onObjective));
      root.replaceChildren(...panels.map((p) => p.node));
    },
    update(probe, ctx) {
      probe.layers.forEach((lp, i) => panels[i]?.update(lp, ctx));
      root.dataset.probe = String(ctx.seq ?? '');
    },
  };
}

/**
 * The layer view as a <convlens-view> panel (`view="layers"`): every layer's activations,
 * gradients and weights for the element's image; the objective is `target` (class:K,
 * channel:LAYER:C or neuron:LAYER:I; default the predicted class's score), and clicking a unit or
 * a channel's title makes it the objective.
 */
export function createLayersPanel(root, ctx) {
  const info = el('p.hint', { role: 'status' });
  const box = el('section.layers', { 'aria-label': 'Layers' });
  root.replaceChildren(el('h2', { text: 'Every layer' }), info, box);
  let objective = null;
  let state = null;
  let seq = 0;
  let shown = null; // the probe drawn last
  const view = createLayersView(box, { onObjective: (o) => { objective = o; start(); } });
  view.build(ctx.state.summary);

  function describe(o) {
    if (o.kind === 'class' || o.kind === 'prob') return `the ${o.kind === 'prob' ? 'probability' : 'score'} of ${ctx.className(o.index)}`;
    const layer = ctx.state.summary.layers[o.layer];
    return o.kind === 'channel' ? `the mean of ${layer.name} channel ${o.channel}` : `${layer.name} unit ${o.index}`;
  }

  async function start() {
    const mine = ++seq;
    try {
      const image = ctx.state.image;
      const probs = await ctx.client.forward(image);
      let predicted = 0;
      for (let j = 1; j < probs.length; j++) if (probs[j] > probs[predicted]) predicted = j;
      const o = objective ?? { kind: 'class', index: predicted };
      const probe = await ctx.client.probe(image, o);
      if (mine !== seq) {
        ctx.client.release(probe);
        return null;
      }
      view.update(probe, { objective: o, predicted, seq: mine });
      // The frame drawn before is not read again: the next probe reuses its buffer.
      if (shown) ctx.client.release(shown);
      shown = probe;
      info.textContent = `predicted ${ctx.className(predicted)} (${(100 * probs[predicted]).toFixed(1)}%); gradients of ${describe(o)}. Click a unit or a channel's number to explain it instead.`;
      // Each layer's activation and gradient sums: what a test compares with the page's.
      const sum = (v) => v.reduce((a, x) => a + x, 0);
      state = { done: true, objective: o, predicted, layers: probe.layers.length, sums: probe.layers.map((l) => [sum(l.act), sum(l.grad)]) };
      return state;
    } catch (e) {
      if (mine === seq) ctx.report('The layer view failed', e);
      return null;
    }
  }

  return {
    start,
    get state() { return state; },
    setTarget(text) {
      const [kind, a, b] = String(text).split(':');
      const n = (v) => (/^\d+$/.test(v ?? '') ? Number(v) : NaN);
      if ((kind === 'class' || kind === 'prob') && n(a) >= 0) objective = { kind, index: n(a) };
      else if (kind === 'channel' && n(a) >= 0 && n(b) >= 0) objective = { kind, layer: n(a), channel: n(b) };
      else if (kind === 'neuron' && n(a) >= 0 && n(b) >= 0) objective = { kind, layer: n(a), index: n(b) };
      else throw new Error(`target '${text}': expected class:K, prob:K, channel:LAYER:C or neuron:LAYER:I`);
    },
  };
}
