// Neural style transfer (crates/core/src/vis/style.rs): the content image redrawn with a style
// image's Gram matrices, which are drawn as heatmaps (the style's and the result's) as it runs.
import { el, fmt } from './dom.js';
import { drawHeat } from './colormap.js';
import { imageCard, loadSquare } from './image-io.js';
import { createForm, createRunner, schemaFields, settingsOf } from './opt-run.js';

/** The settings the engine takes (crates/core/src/vis/style.rs: schema) besides size and layers. */
const KEYS = ['contentWeight', 'styleWeight', 'tvWeight', 'optimizer', 'lr', 'steps', 'fromContent', 'seed'];

export function createStylePanel(root, ctx) {
  const STYLES = ctx.styles;
  let styleSrc = STYLES[0].url;
  let styleName = STYLES[0].name;
  const styleSelect = el('select', { id: 'style-image' }, ...STYLES.map((s, i) => el('option', { value: i, text: s.name })), el('option', { value: 'upload', text: 'upload…' }));
  const styleUpload = el('input', { type: 'file', accept: 'image/*', hidden: true });
  styleSelect.onchange = () => {
    if (styleSelect.value === 'upload') { styleUpload.click(); return; }
    styleSrc = STYLES[Number(styleSelect.value)].url;
    styleName = STYLES[Number(styleSelect.value)].name;
  };
  styleUpload.onchange = () => {
    const f = styleUpload.files?.[0];
    if (f) { styleSrc = f; styleName = f.name; }
  };
  const form = createForm([
    { key: 'size', label: 'size (px)', type: 'select', value: '224', options: [['160', '160'], ['224', '224'], ['320', '320'], ['384', '384'], ['512', '512']] },
    { key: 'contentLayer', label: 'content layer', type: 'select', value: '', options: [], id: 'style-content-layer' },
    { key: 'styleLayers', label: 'style layers', type: 'text', value: '', id: 'style-layers' },
    ...schemaFields(ctx.schemas.style, KEYS, { optimizer: { options: [['adam', 'Adam'], ['lbfgs', 'L-BFGS']] } }),
  ]);
  const runner = createRunner(ctx.client, { seriesNames: ['total', 'content', 'style', 'TV'], chartTitle: 'loss (falls)', onError: (e) => ctx.report('Style transfer failed', e) });
  const content = imageCard('content', 'style-content');
  const style = imageCard('style', 'style-style');
  const result = imageCard('result', 'style-transfer');
  const gramLayer = el('select', { id: 'gram-layer', 'aria-label': 'layer of the Gram matrices' });
  const gramStyle = el('canvas.px.gram');
  const gramNow = el('canvas.px.gram');
  const gramText = el('p.hint');
  let grams = null;
  function drawGrams() {
    if (!grams) return;
    const i = Number(gramLayer.value) || 0;
    const c = grams.channels[i];
    for (const [canvas, g] of [[gramStyle, grams.target[i]], [gramNow, grams.current[i]]]) {
      canvas.width = c;
      canvas.height = c;
      const z = Math.max(1, Math.floor(192 / c));
      canvas.style.width = `${c * z}px`;
      canvas.style.height = `${c * z}px`;
      // Square roots: a few channels dominate the raw correlations.
      drawHeat(canvas, g.map((v) => Math.sign(v) * Math.sqrt(Math.abs(v))), 'abs');
    }
    let d = 0; let n = 0;
    for (let k = 0; k < c * c; k++) { d += (grams.current[i][k] - grams.target[i][k]) ** 2; n += grams.target[i][k] ** 2; }
    gramText.textContent = `${c}×${c} Gram matrix of layer ${grams.layers[i]}; relative difference ‖G − A‖²/‖A‖² = ${fmt(d / n)} (shown as √).`;
  }
  gramLayer.onchange = drawGrams;
  root.replaceChildren(
    el('h2', {}, 'Neural style transfer ', el('span.hint', { text: 'match one image’s content and another’s Gram matrices (Gatys et al. 2016)' })),
    el('div.opt-grid', {}, el('div', {}, el('label.field', {}, el('span', { text: 'style image' }), styleSelect, styleUpload), form.node),
      el('div', {}, runner.node, el('div.opt-cards', {}, content.node, style.node, result.node),
        el('h3', {}, 'Gram matrices ', gramLayer),
        el('div.opt-cards', {}, el('figure.opt-card', {}, el('figcaption', { text: 'style image' }), gramStyle), el('figure.opt-card', {}, el('figcaption', { text: 'result' }), gramNow)), gramText)),
  );
  runner.onRun = async () => {
    const v = form.values();
    const { depth, height } = ctx.state.summary.input;
    const size = ctx.state.net === 'mobilenet' || ctx.state.net === 'tiny-vgg' ? Number(v.size) : height;
    let styleImage;
    try {
      styleImage = await loadSquare(styleSrc, size, depth, { trim: true });
    } catch (e) { ctx.report(`The style image ${styleName} is missing (run \`npm run download-data\`) or unreadable; upload one`, e); return; }
    const contentImage = await ctx.imageAt(size);
    content.set(contentImage, [depth, size, size], ctx.state.imageName, 200);
    style.set(styleImage, [depth, size, size], styleName, 200);
    const styleLayers = v.styleLayers.split(/[\s,]+/).filter(Boolean).map(Number);
    gramLayer.replaceChildren(...styleLayers.map((l, i) => el('option', { value: i, text: `layer ${l} ${ctx.state.summary.layers[l]?.name ?? ''}` })));
    grams = null;
    let last = 0;
    await runner.run('style', contentImage, { size, style: styleImage, contentLayer: Number(v.contentLayer), styleLayers, ...settingsOf(form, KEYS) }, async (st) => {
      result.set(st.images[0].data, st.images[0].shape, `${size}×${size}`, 200);
      if (st.done || performance.now() - last > 1500) {
        last = performance.now();
        grams = await ctx.client.request('styleGrams', { id: st.id }).catch(() => grams);
        drawGrams();
      }
    });
  };
  return {
    technique: 'style',
    /** The run's latest state, and Run (for the <convlens-view> element). */
    get state() { return runner.state; },
    start: () => runner.onRun?.(),
    form,
    cancel: () => runner.cancel(),
    setNet() {
      const mobile = ctx.state.net === 'mobilenet';
      const sel = form.inputs.contentLayer.input;
      const opts = ctx.layerOptions().filter(([i]) => ctx.state.summary.layers[i].type !== 'fc');
      sel.replaceChildren(...opts.map(([i, t]) => el('option', { value: i, text: t })));
      const convs = ctx.convLayers();
      if (mobile) {
        sel.value = String(ctx.layerNamed('op16', 1));
        form.set({ styleLayers: ['op0', 'op3', 'op6', 'op13', 'op24'].map((n) => ctx.layerNamed(n, 1)).join(', ') });
      } else {
        sel.value = String(convs.at(-1) ?? 1);
        form.set({ styleLayers: convs.join(', ') });
      }
      form.inputs.size.input.disabled = !(mobile || ctx.state.net === 'tiny-vgg');
    },
  };
}
