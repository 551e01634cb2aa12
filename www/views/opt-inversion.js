// Feature inversion (crates/core/src/vis/inversion.rs): the image rebuilt from one layer's code,
// for several layers side by side, with the alpha-norm and total-variation priors.
import { el, fmt } from './dom.js';
import { imageCard } from './image-io.js';
import { createForm, createRunner, schemaFields, settingsOf } from './opt-run.js';

/** The settings the engine takes (crates/core/src/vis/inversion.rs: schema) besides the layers. */
const KEYS = ['steps', 'lr', 'alpha', 'alphaWeight', 'beta', 'tvWeight', 'jitter', 'seed'];

export function createInversionPanel(root, ctx) {
  const form = createForm([
    { key: 'layers', label: 'layers (indices)', type: 'text', value: '', id: 'inv-layers', title: 'Comma-separated layer indices; each gets its own reconstruction' },
    ...schemaFields(ctx.schemas.invert, KEYS, { steps: { label: 'steps per layer' } }),
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
    await runner.run('invert', ctx.state.image, { layers, ...settingsOf(form, KEYS) }, (st) => {
      st.images.forEach((im, i) => list[i]?.set(im.data, im.shape, `feature loss ${fmt(im.loss)}`, 160));
    });
  };
  return {
    technique: 'invert',
    /** The run's latest state, and Run (for the <convlens-view> element). */
    get state() { return runner.state; },
    start: () => runner.onRun?.(),
    form,
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
