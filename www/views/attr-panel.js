// The attribution views as panels for <convlens-view>: `attribution` (the attribution page's map
// cards, for the methods listed, side by side: saliency against guided backprop by default) and
// `occlusion` (the attribution page's occlusion panel). The engine computes every map
// (crates/core/src/vis/attribution.rs, occlusion.rs); these panels ask and draw.
import { createMapCard, createOcclusionView, METHODS } from './attribution-maps.js';
import { el } from './dom.js';
import { createForm, schemaFields, settingsOf } from './opt-run.js';

/** The attribution settings a panel shows (the schema's; the method is the panel's list). */
const KEYS = ['noise', 'samples', 'seed', 'steps', 'rule', 'relu'];

/** `class:K`, `prob:K`, `channel:LAYER:C` or `neuron:LAYER:I` as an objective. */
export function parseTarget(text) {
  const [kind, a, b] = String(text).split(':');
  const n = (v) => (/^\d+$/.test(v ?? '') ? Number(v) : NaN);
  if ((kind === 'class' || kind === 'prob') && n(a) >= 0 && b === undefined) return { kind, index: n(a) };
  if (kind === 'channel' && n(a) >= 0 && n(b) >= 0) return { kind, layer: n(a), channel: n(b) };
  if (kind === 'neuron' && n(a) >= 0 && n(b) >= 0) return { kind, layer: n(a), index: n(b) };
  throw new Error(`target '${text}': expected class:K, prob:K, channel:LAYER:C or neuron:LAYER:I`);
}

/** The predicted class of the context's image. */
async function predicted(ctx) {
  const probs = await ctx.client.forward(ctx.state.image);
  let k = 0;
  for (let j = 1; j < probs.length; j++) if (probs[j] > probs[k]) k = j;
  return k;
}

export function createAttributionPanel(root, ctx) {
  const ids = METHODS.map((m) => m.id);
  const form = createForm([
    { key: 'methods', label: 'methods', type: 'text', value: 'gradient, guided', title: `Comma-separated: ${ids.join(', ')}` },
    { key: 'display', label: 'colour map', type: 'select', value: 'auto', options: [['auto', 'auto'], ['abs', 'magnitude'], ['signed', 'signed']] },
    ...schemaFields(ctx.schemas.attribution, KEYS),
  ]);
  const run = el('button.primary', { type: 'button', text: 'Run' });
  const info = el('span.hint', { role: 'status' });
  const maps = el('div.maps');
  root.replaceChildren(el('h2', { text: 'Attribution maps' }), form.node, el('div.row', {}, run, info), maps);
  let target = null;
  let state = null;
  let token = 0;

  function methods() {
    const list = String(form.values().methods).split(',').map((s) => s.trim()).filter(Boolean);
    const bad = list.find((m) => !ids.includes(m));
    if (bad) throw new Error(`unknown method '${bad}'; expected ${ids.join(', ')}`);
    if (!list.length) throw new Error('list at least one method');
    return list;
  }

  async function start() {
    const mine = ++token;
    try {
      const list = methods();
      const image = ctx.state.image;
      const objective = target ?? { kind: 'class', index: await predicted(ctx) };
      const settings = settingsOf(form, KEYS);
      ctx.hash.set({ ...form.values() });
      const shape = ctx.state.summary.input;
      const cards = list.map((id) => createMapCard(METHODS.find((m) => m.id === id), { onDownload: (what) => `convlens-${ctx.state.net}-${id}-${what}.png` }));
      maps.replaceChildren(...cards.map((c) => c.node));
      const results = {};
      const what = objective.kind === 'class' || objective.kind === 'prob' ? ctx.className(objective.index) : `${objective.kind} of layer ${objective.layer}`;
      info.textContent = `explaining ${what}…`;
      for (const [i, id] of list.entries()) {
        const t0 = performance.now();
        const r = await ctx.client.attribute(image, objective, { method: id, ...settings });
        if (mine !== token) return null;
        r.ms = performance.now() - t0;
        results[id] = r;
        cards[i].draw(r, image, shape, form.values().display);
      }
      info.textContent = `explaining ${what}`;
      state = { done: true, objective, results };
      return state;
    } catch (e) {
      if (mine === token) {
        info.textContent = e.message;
        ctx.report('The attribution failed', e);
      }
      return null;
    }
  }
  run.onclick = () => start();
  for (const { input } of Object.values(form.inputs)) input.onchange = () => { if (state) start(); };

  return {
    form,
    start,
    cancel() { token++; },
    get state() { return state; },
    setTarget(text) {
      target = parseTarget(text);
    },
  };
}

export function createOcclusionPanel(root, ctx) {
  const schema = Object.fromEntries(ctx.schemas.occlusion.fields.map((f) => [f.key, f.default]));
  const body = el('div');
  root.replaceChildren(el('h2', { text: 'Occlusion' }), body);
  let cls = null;
  let pred = null;
  let state = null;
  const known = predicted(ctx).then((k) => { pred = k; }, () => {});
  const { summary } = ctx.state;
  const view = createOcclusionView(body, {
    settings: { window: schema.window, stride: schema.stride, fill: schema.fill },
    classes: () => ctx.state.classNames.length ? ctx.state.classNames : Array.from({ length: summary.classes }, (_, k) => String(k)),
    defaultClass: () => cls ?? pred ?? 0,
    run: async (settings, opts) => {
      ctx.hash.set({ window: settings.window, stride: settings.stride, fill: settings.fill });
      const s = await ctx.client.occlude(ctx.state.image, settings, opts);
      if (s) state = s;
      return s;
    },
    image: () => ({ data: ctx.state.image, shape: [summary.input.depth, summary.input.height, summary.input.width] }),
    datasetMean: () => null,
    fileName: (what) => `convlens-${ctx.state.net}-occlusion-${what}.png`,
    onError: (e) => ctx.report('Occlusion failed', e),
  });
  // The element's attributes (window, stride, fill) through a form-like object.
  const form = {
    set(values) {
      view.set(values);
    },
    values: () => view.values(),
  };
  return {
    form,
    start: () => known.then(() => view.run()).then(() => state),
    cancel: () => view.cancel(),
    get state() { return state; },
    setTarget(text) {
      const t = parseTarget(text);
      if (t.kind !== 'class' && t.kind !== 'prob') throw new Error(`occlusion tracks a class: target class:K, not '${text}'`);
      cls = t.index;
    },
  };
}
