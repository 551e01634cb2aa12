// Feature inversion (crates/core/src/vis/inversion.rs): the image rebuilt from one layer's code,
// for several layers side by side, with the alpha-norm and total-variation priors.
import { el, fmt } from './dom.js';
import { imageCard } from './image-io.js';
import { createForm, createRunner } from './opt-run.js';

export function createInversionPanel(root, ctx) {
  const form = createForm([
    { key: 'layers', label: 'layers (indices)', type: 'text', value: '', id: 'inv-layers', title: 'Comma-separated layer indices; each gets its own reconstruction' },
    { key: 'steps', label: 'steps per layer', value: 200, min: 1, step: 1 },
    { key: 'lr', label: 'learning rate (Adam)', value: 0.02, min: 0 },
    { key: 'alpha', label: 'α (alpha-norm)', value: 6, min: 1 },
    { key: 'alphaWeight', label: 'α-norm weight', value: 1, min: 0 },
    { key: 'beta', label: 'β (total variation)', value: 2, min: 1 },
    { key: 'tvWeight', label: 'TV weight', value: 20, min: 0 },
    { key: 'seed', label: 'seed', value: 1, min: 0, step: 1 },
  ]);
  const runner = createRunner(ctx.client, { seriesNames: [], chartTitle: 'feature loss per layer (falls)', onError: (e) => ctx.report('Inversion failed', e) });
  const cards = el('div.opt-cards');
  root.replaceChildren(
    el('h2', {}, 'Feature inversion ', el('span.hint', { text: 'what a layer keeps of the image: the image rebuilt from its code alone (Mahendran & Vedaldi 2015)' })),
    el('div.opt-grid', {}, form.node, el('div', {}, runner.node, cards)),
  );
  runner.onRun = async () => {
    const v = form.values();
    const layers = v.layers.split(/[\s,]+/).filter(Boolean).map(Number);
    if (!layers.length || layers.some((l) => !Number.isInteger(l))) { ctx.report('Cannot run', new Error('give layer indices, e.g. 4, 11, 22')); return; }
    const { depth, height, width } = ctx.state.summary.input;
    const original = imageCard('original', 'inversion-original');
    original.set(ctx.state.image, [depth, height, width], ctx.state.imageName, 160);
    const list = layers.map((l) => imageCard(`layer ${l} ${ctx.state.summary.layers[l]?.name ?? ''}`, `inversion-layer${l}`));
    cards.replaceChildren(original.node, ...list.map((c) => c.node));
    await runner.run('invert', ctx.state.image, { layers, steps: v.steps, lr: v.lr, alpha: v.alpha, alphaWeight: v.alphaWeight, beta: v.beta, tvWeight: v.tvWeight, seed: v.seed }, (st) => {
      st.images.forEach((im, i) => list[i]?.set(im.data, im.shape, `feature loss ${fmt(im.loss)}`, 160));
    });
  };
  return {
    cancel: () => runner.cancel(),
    setImage() {},
    setNet() {
      const mobile = ctx.state.net === 'mobilenet';
      const picks = mobile ? ['op2', 'op9', 'op20', 'op35', 'op47'].map((n) => ctx.layerNamed(n, 1)) : ctx.convLayers().slice(0, 4);
      form.set({ layers: picks.join(', ') });
      cards.replaceChildren();
    },
  };
}
