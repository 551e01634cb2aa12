// Class and neuron visualization (crates/core/src/vis/class_vis.rs): gradient ascent from gray or
// noise on a class score, a neuron or a channel, with presets for the published regularizers.
import { el } from './dom.js';
import { imageCard } from './image-io.js';
import { createForm, createRunner, presetValues, schemaFields, settingsOf } from './opt-run.js';

/** The settings the engine takes (crates/core/src/vis/class_vis.rs: schema), in the form's order. */
const KEYS = ['preset', 'param', 'steps', 'lr', 'jitter', 'scale', 'rotate', 'l2', 'blurEvery', 'blurSigma', 'normPct', 'contribPct', 'tv', 'initNoise', 'seed'];

export function createVisualizePanel(root, ctx) {
  const schema = ctx.schemas.visualize;
  const classList = el('datalist', { id: 'vis-classes' });
  const form = createForm([
    { key: 'kind', label: 'maximize', type: 'select', value: 'class', options: [['class', 'a class score'], ['channel', 'a channel (mean)'], ['neuron', 'a neuron (centre of a channel)']] },
    { key: 'cls', label: 'class', type: 'text', value: '', id: 'vis-class', title: 'Type to search the class names' },
    { key: 'layer', label: 'layer', type: 'select', value: '', options: [], id: 'vis-layer' },
    { key: 'channel', label: 'channel', value: 0, min: 0, step: 1 },
    ...schemaFields(schema, KEYS, {
      preset: { options: schema.presets.map((p) => [p.name, p.label]) },
      param: { options: [['fourier-decorrelated', 'Fourier, decorrelated colour'], ['fourier', 'Fourier'], ['pixel', 'pixels']] },
      steps: { id: 'vis-steps' },
    }),
  ]);
  form.inputs.cls.input.setAttribute('list', 'vis-classes');
  form.inputs.preset.input.onchange = () => form.set(presetValues(schema, form.inputs.preset.input.value));
  // A class needs no layer or channel; a channel or neuron needs no class.
  const kindChanged = () => {
    const cls = form.inputs.kind.input.value === 'class';
    form.inputs.cls.input.disabled = !cls;
    form.inputs.layer.input.disabled = cls;
    form.inputs.channel.input.disabled = cls;
  };
  form.inputs.kind.input.addEventListener('change', kindChanged);
  kindChanged();
  const runner = createRunner(ctx.client, { seriesNames: ['objective'], chartTitle: 'objective (rises)', onError: (e) => ctx.report('Visualization failed', e) });
  const card = imageCard('result', () => `visualize-${fileTag()}`);
  const caption = el('p.hint');
  root.replaceChildren(
    el('h2', {}, 'Class & neuron visualization ', el('span.hint', { text: 'gradient ascent on the pixels (Simonyan et al. 2014; Yosinski et al. 2015; Olah et al. 2017)' })),
    el('div.opt-grid', {}, el('div', {}, form.node, classList), el('div', {}, runner.node, el('div.opt-cards', {}, card.node), caption)),
  );
  function target() {
    const v = form.values();
    const layer = Number(v.layer);
    const l = ctx.state.summary.layers[layer];
    if (v.kind === 'class') {
      const k = parseInt(v.cls, 10);
      if (!(k >= 0 && k < ctx.state.summary.classes)) throw new Error(`pick a class (a number 0..${ctx.state.summary.classes - 1} or a name from the list)`);
      return { kind: 'class', index: k };
    }
    if (v.kind === 'channel') return { kind: 'channel', layer, channel: v.channel };
    const [, h, w] = l.shape;
    return { kind: 'neuron', layer, index: v.channel * h * w + Math.floor(h / 2) * w + Math.floor(w / 2) };
  }
  function fileTag() {
    const v = form.values();
    return v.kind === 'class' ? `class${parseInt(v.cls, 10)}` : `${v.kind}-L${v.layer}-c${v.channel}`;
  }
  runner.onRun = async () => {
    let t;
    try { t = target(); } catch (e) { ctx.report('Cannot run', e); return; }
    const v = form.values();
    const settings = { ...settingsOf(form, KEYS), target: t };
    const what = t.kind === 'class' ? ctx.className(t.index) : `${t.kind} ${v.channel} of layer ${t.layer}`;
    const s = await runner.run('visualize', [], settings, (st) => card.set(st.images[0].data, st.images[0].shape, what, 300));
    if (s) caption.textContent = `The network calls it: ${await ctx.top(s.images[0].data)}`;
  };
  return {
    technique: 'visualize',
    /** The run's latest state, and Run (for the <convlens-view> element). */
    get state() { return runner.state; },
    /** What to maximize, as text: class:K, channel:LAYER:C or neuron:LAYER:C (a channel's centre). */
    setTarget(text) {
      const [kind, a, b] = String(text).split(':');
      if (kind === 'class' && a !== undefined) form.set({ kind, cls: ctx.className(Number(a)) });
      else if ((kind === 'channel' || kind === 'neuron') && b !== undefined) form.set({ kind, layer: a, channel: b });
      else throw new Error(`target '${text}': expected class:K, channel:LAYER:C or neuron:LAYER:C`);
      kindChanged();
    },
    start: () => runner.onRun?.(),
    form,
    cancel: () => runner.cancel(),
    setNet() {
      const names = ctx.state.classNames;
      classList.replaceChildren(...names.map((n, k) => el('option', { value: `${k}: ${n}` })));
      const layer = form.inputs.layer.input;
      layer.replaceChildren(...ctx.layerOptions().map(([i, t]) => el('option', { value: i, text: t })));
      const mobile = ctx.state.net === 'mobilenet';
      layer.value = String(ctx.layerNamed('op40', ctx.convLayers().at(-1) ?? 1));
      form.set({ cls: mobile ? ctx.className(89) : ctx.className(Math.min(1, names.length - 1)), preset: mobile ? 'lucid' : 'simonyan', ...presetValues(schema, mobile ? 'lucid' : 'simonyan') });
      caption.textContent = '';
    },
  };
}
