// Class and neuron visualization (crates/core/src/vis/class_vis.rs): gradient ascent from gray or
// noise on a class score, a neuron or a channel, with presets for the published regularizers.
import { el } from './dom.js';
import { imageCard } from './image-io.js';
import { createForm, createRunner } from './opt-run.js';

/** The presets' settings, as the engine's Settings::preset (shown so they can be edited). */
export const PRESETS = {
  lucid: { param: 'fourier-decorrelated', steps: 256, lr: 0.05, jitter: 16, scale: 0.1, rotate: 10, l2: 0, blurEvery: 0, blurSigma: 0, normPct: 0, contribPct: 0, tv: 0 },
  yosinski: { param: 'pixel', steps: 300, lr: 0.05, jitter: 4, scale: 0, rotate: 0, l2: 0.0001, blurEvery: 4, blurSigma: 1, normPct: 0, contribPct: 0, tv: 0 },
  simonyan: { param: 'pixel', steps: 200, lr: 0.05, jitter: 0, scale: 0, rotate: 0, l2: 0.001, blurEvery: 0, blurSigma: 0, normPct: 0, contribPct: 0, tv: 0 },
};

export function createVisualizePanel(root, ctx) {
  const classList = el('datalist', { id: 'vis-classes' });
  const form = createForm([
    { key: 'kind', label: 'maximize', type: 'select', value: 'class', options: [['class', 'a class score'], ['channel', 'a channel (mean)'], ['neuron', 'a neuron (centre of a channel)']] },
    { key: 'cls', label: 'class', type: 'text', value: '', id: 'vis-class', title: 'Type to search the class names' },
    { key: 'layer', label: 'layer', type: 'select', value: '', options: [], id: 'vis-layer' },
    { key: 'channel', label: 'channel', value: 0, min: 0, step: 1 },
    { key: 'preset', label: 'preset', type: 'select', value: 'lucid', options: [['lucid', 'Lucid (Fourier, decorrelated, transforms)'], ['yosinski', 'Yosinski et al. (decay, blur)'], ['simonyan', 'Simonyan et al. (L2 only)']] },
    { key: 'param', label: 'image', type: 'select', value: 'fourier-decorrelated', options: [['fourier-decorrelated', 'Fourier, decorrelated colour'], ['fourier', 'Fourier'], ['pixel', 'pixels']] },
    { key: 'steps', label: 'steps', min: 1, step: 1, id: 'vis-steps' },
    { key: 'lr', label: 'learning rate (Adam)', min: 0 },
    { key: 'jitter', label: 'jitter (px)', min: 0, step: 1 },
    { key: 'scale', label: 'random scale ±', min: 0, step: 0.01 },
    { key: 'rotate', label: 'random rotation ±°', min: 0 },
    { key: 'l2', label: 'L2 decay', min: 0 },
    { key: 'blurEvery', label: 'blur every k steps', min: 0, step: 1 },
    { key: 'blurSigma', label: 'blur σ (px)', min: 0 },
    { key: 'normPct', label: 'clip small norm (pct)', min: 0, max: 100 },
    { key: 'contribPct', label: 'clip small contribution (pct)', min: 0, max: 100 },
    { key: 'tv', label: 'total variation', min: 0 },
    { key: 'seed', label: 'seed', value: 1, min: 0, step: 1 },
  ]);
  form.inputs.cls.input.setAttribute('list', 'vis-classes');
  form.set(PRESETS.lucid);
  form.inputs.preset.input.onchange = () => form.set(PRESETS[form.inputs.preset.input.value]);
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
    const settings = { preset: v.preset, target: t, param: v.param, steps: v.steps, lr: v.lr, jitter: v.jitter, scale: v.scale, rotate: v.rotate, l2: v.l2, blurEvery: v.blurEvery, blurSigma: v.blurSigma, normPct: v.normPct, contribPct: v.contribPct, tv: v.tv, seed: v.seed };
    const what = t.kind === 'class' ? ctx.className(t.index) : `${t.kind} ${v.channel} of layer ${t.layer}`;
    const s = await runner.run('visualize', [], settings, (st) => card.set(st.images[0].data, st.images[0].shape, what, 300));
    if (s) caption.textContent = `The network calls it: ${await ctx.top(s.images[0].data)}`;
  };
  return {
    cancel: () => runner.cancel(),
    setNet() {
      const names = ctx.state.classNames;
      classList.replaceChildren(...names.map((n, k) => el('option', { value: `${k}: ${n}` })));
      const layer = form.inputs.layer.input;
      layer.replaceChildren(...ctx.layerOptions().map(([i, t]) => el('option', { value: i, text: t })));
      const mobile = ctx.state.net === 'mobilenet';
      layer.value = String(ctx.layerNamed('op40', ctx.convLayers().at(-1) ?? 1));
      form.set({ cls: mobile ? ctx.className(89) : ctx.className(Math.min(1, names.length - 1)), preset: mobile ? 'lucid' : 'simonyan', ...(mobile ? PRESETS.lucid : PRESETS.simonyan) });
      caption.textContent = '';
    },
  };
}
