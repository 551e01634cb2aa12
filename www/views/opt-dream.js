// DeepDream (crates/core/src/vis/deepdream.rs): amplify what a layer sees in the image, over
// octaves, with jitter and normalized steps; the image may be larger than the net's input.
import { el } from './dom.js';
import { imageCard } from './image-io.js';
import { createForm, createRunner, schemaFields, settingsOf } from './opt-run.js';

/** The settings the engine takes (crates/core/src/vis/deepdream.rs: schema) besides layer and size. */
const KEYS = ['channel', 'octaves', 'octaveScale', 'steps', 'step', 'jitter', 'seed'];

export function createDreamPanel(root, ctx) {
  const form = createForm([
    { key: 'layer', label: 'layer', type: 'select', value: '', options: [], id: 'dream-layer' },
    { key: 'size', label: 'image size (px)', type: 'select', value: '224', options: [['224', '224'], ['320', '320'], ['448', '448'], ['512', '512']] },
    ...schemaFields(ctx.schemas.dream, KEYS, { channel: { label: 'channel (blank: all)' }, octaves: { id: 'dream-octaves' } }),
  ]);
  const runner = createRunner(ctx.client, { seriesNames: ['½‖a‖²'], chartTitle: 'activation energy (rises)', onError: (e) => ctx.report('DeepDream failed', e) });
  const before = imageCard('image', 'dream-original');
  const after = imageCard('dream', 'deepdream');
  root.replaceChildren(
    el('h2', {}, 'DeepDream ', el('span.hint', { text: 'gradient ascent on a layer’s own activations, octave by octave (Mordvintsev et al. 2015)' })),
    el('div.opt-grid', {}, form.node, el('div', {}, runner.node, el('div.opt-cards', {}, before.node, after.node))),
  );
  runner.onRun = async () => {
    const v = form.values();
    const { depth, height } = ctx.state.summary.input;
    const size = ctx.state.net === 'mobilenet' || ctx.state.net === 'tiny-vgg' ? Number(v.size) : height;
    const image = await ctx.imageAt(size);
    before.set(image, [depth, size, size], `${size}×${size}`, 256);
    await runner.run('dream', image, { width: size, height: size, layer: Number(v.layer), ...settingsOf(form, KEYS) }, (st) => {
      const im = st.images[0];
      after.set(im.data, im.shape, `octave size ${im.shape[2]}×${im.shape[1]}`, 256);
    });
  };
  return {
    technique: 'dream',
    /** The run's latest state, and Run (for the <convlens-view> element). */
    get state() { return runner.state; },
    start: () => runner.onRun?.(),
    form,
    cancel: () => runner.cancel(),
    setNet() {
      const layer = form.inputs.layer.input;
      const opts = ctx.layerOptions().filter(([i]) => ctx.state.summary.layers[i].type !== 'fc');
      layer.replaceChildren(...opts.map(([i, t]) => el('option', { value: i, text: t })));
      const mobile = ctx.state.net === 'mobilenet';
      layer.value = String(mobile ? ctx.layerNamed('op20', 1) : ctx.convLayers().at(-1) ?? 1);
      form.inputs.size.input.disabled = !(mobile || ctx.state.net === 'tiny-vgg');
      if (!mobile) form.set({ octaves: 2, jitter: 2, step: 3 });
      else form.set({ octaves: 4, jitter: 32, step: 1.5 });
    },
  };
}
