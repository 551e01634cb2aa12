// Adversarial examples (crates/core/src/vis/adversarial.rs, linear.rs): FGSM with an epsilon slider,
// an iterative attack towards a chosen class, fooling images grown from noise, and the lecture's
// linear explanation (a softmax classifier on MNIST: eps * sign(w) moves w . x by eps * |w|_1).
import uPlot from '../vendor/uPlot.esm.js';
import { el, fmt } from './dom.js';
import { imageCard } from './image-io.js';
import { createForm, createRunner, schemaFields, settingsOf } from './opt-run.js';

export function createAdversarialPanel(root, ctx) {
  // ---- FGSM ----
  const eps = el('input', { type: 'range', id: 'fgsm-eps', min: 0, max: 16, step: 0.25, value: 2 });
  const epsText = el('span.hint');
  const cards = [imageCard('original', 'adversarial-original'), imageCard('perturbation (amplified)', 'adversarial-perturbation'), imageCard('adversarial', 'adversarial-image')];
  const fgsmBox = el('div.opt-cards', {}, ...cards.map((c) => c.node));
  let pending = 0;
  async function fgsm() {
    const mine = ++pending;
    const { summary } = ctx.state;
    const { depth, height, width } = summary.input;
    const shape = [depth, height, width];
    const e = Number(eps.value);
    epsText.textContent = `ε = ${e}/255 (${fmt(e / 255)})`;
    const image = ctx.state.image;
    try {
      const probs = await ctx.client.forward(image);
      const label = probs.indexOf(Math.max(...probs));
      const adv = await ctx.client.request('fgsm', { input: image, label, eps: e });
      if (mine !== pending) return;
      await show(image, adv, shape, cards);
    } catch (err) {
      // A new net or image meanwhile makes this run moot (the old image may not fit the new net).
      if (ctx.state.summary === summary && ctx.state.image === image) ctx.report('FGSM failed', err);
    }
  }
  async function show(image, adv, shape, [a, b, c]) {
    let m = 1e-12;
    for (let i = 0; i < adv.length; i++) m = Math.max(m, Math.abs(adv[i] - image[i]));
    const delta = adv.map((v, i) => 0.5 + 0.5 * (v - image[i]) / m);
    a.set(image, shape, await ctx.top(image), 200);
    b.set(delta, shape, `max |δ| = ${fmt(m * 255)}/255, scaled to full range`, 200);
    c.set(adv, shape, await ctx.top(adv), 200);
  }
  let timer = null;
  eps.oninput = () => { clearTimeout(timer); timer = setTimeout(fgsm, 120); };

  // ---- iterative attack and fooling images ----
  const classList = el('datalist', { id: 'adv-classes' });
  const form = createForm([
    { key: 'mode', label: 'start from', type: 'select', value: 'attack', options: [['attack', 'the image (within ε)'], ['fooling', 'noise (fooling image)']] },
    { key: 'target', label: 'target class', type: 'text', value: '', id: 'adv-target' },
    ...schemaFields(ctx.schemas.attack, ['eps', 'step', 'steps', 'seed']),
  ]);
  form.inputs.target.input.setAttribute('list', 'adv-classes');
  const runner = createRunner(ctx.client, { seriesNames: ['-log p(target)'], chartTitle: "target's loss (falls)", onError: (e) => ctx.report('Attack failed', e) });
  const iterCards = [imageCard('start', 'attack-start'), imageCard('perturbation (amplified)', 'attack-perturbation'), imageCard('result', 'attack-result')];
  runner.onRun = async () => {
    const v = form.values();
    const target = parseInt(v.target, 10);
    if (!(target >= 0 && target < ctx.state.summary.classes)) { ctx.report('Cannot run', new Error('pick a target class')); return; }
    const { depth, height, width } = ctx.state.summary.input;
    const s = await runner.run(v.mode, v.mode === 'fooling' ? [] : ctx.state.image, { ...settingsOf(form, ['eps', 'step', 'steps', 'seed']), target }, (st) => {
      iterCards[2].set(st.images[1].data, [depth, height, width], '', 200);
    });
    if (s) await show(s.images[0].data, s.images[1].data, [depth, height, width], iterCards);
  };

  // ---- the linear explanation ----
  const linForm = createForm([
    { key: 'sides', label: 'input sides (px)', type: 'text', value: '4, 8, 12, 16, 20, 24' },
    { key: 'eps', label: 'ε', value: 0.1, min: 0, max: 1 },
    { key: 'epochs', label: 'epochs', value: 3, min: 1, step: 1 },
  ]);
  const linRun = el('button.primary', { type: 'button', id: 'linear-run', text: 'Train and perturb' });
  const linChart = el('div.opt-chart');
  const linTable = el('table.opt-table');
  linRun.onclick = async () => {
    linRun.disabled = true;
    try {
      const v = linForm.values();
      const sides = v.sides.split(/[\s,]+/).filter(Boolean).map(Number);
      ctx.status('training softmax regression on the built-in digits at each size…');
      const base = String(new URL('../data/', import.meta.url));
      const pts = await ctx.client.request('linearDemo', { sides, eps: v.eps, epochs: v.epochs, base });
      ctx.status('ready');
      linChart.replaceChildren();
      new uPlot({
        width: 380, height: 200, title: 'shift of the score difference',
        legend: { live: false }, cursor: { drag: { x: false, y: false } }, scales: { x: { time: false } },
        axes: [{ label: 'input dimension d', size: 36 }, { size: 44 }],
        series: [{}, { label: 'ε‖w_t − w_y‖₁ (predicted)', stroke: '#3366cc', width: 2, points: { show: true } },
          { label: 'measured (pixels clipped to [0,1])', stroke: '#dc3912', width: 2, points: { show: true } }],
      }, [pts.map((p) => p.dim), pts.map((p) => p.predictedShift), pts.map((p) => p.measuredShift)], linChart);
      linTable.replaceChildren(el('tr', {}, ...['side', 'd', 'accuracy', 'after ε', 'predicted shift', 'measured'].map((t) => el('th', { text: t }))),
        ...pts.map((p) => el('tr', {}, ...[`${p.side}×${p.side}`, p.dim, `${(100 * p.accuracy).toFixed(1)}%`, `${(100 * p.adversarialAccuracy).toFixed(1)}%`, fmt(p.predictedShift), fmt(p.measuredShift)].map((t) => el('td', { text: String(t) })))));
    } catch (e) { ctx.report('The linear demo failed', e); ctx.status('ready'); } finally { linRun.disabled = false; }
  };

  root.replaceChildren(
    el('h2', {}, 'Adversarial examples ', el('span.hint', { text: 'tiny changes that flip the class (Szegedy et al. 2014; Goodfellow et al. 2015)' })),
    el('h3', { text: 'Fast gradient sign method' }),
    el('div.row', {}, el('label', {}, 'ε ', eps), epsText),
    fgsmBox,
    el('h3', { text: 'Iterative attack towards a class, or a fooling image from noise' }),
    el('div.opt-grid', {}, el('div', {}, form.node, classList), el('div', {}, runner.node, el('div.opt-cards', {}, ...iterCards.map((c) => c.node)))),
    el('h3', { text: 'Why: the linear explanation' }),
    el('p.hint', { text: 'Softmax regression on the built-in MNIST digits, downscaled to each size. Moving every pixel by ε in the direction sign(w_t − w_y) (t: the runner-up class) changes the score difference by ε‖w_t − w_y‖₁, which grows with the number of pixels while each pixel moves by only ε.' }),
    el('div.opt-grid', {}, el('div', {}, linForm.node, linRun), el('div', {}, linChart, linTable)),
  );
  return {
    technique: 'attack',
    /** The run's latest state, and Run (for the <convlens-view> element). */
    get state() { return runner.state; },
    start: () => runner.onRun?.(),
    form,
    cancel: () => runner.cancel(),
    setImage: () => fgsm(),
    /** `class:K`: the attack's target class. */
    setTarget(text) {
      const [kind, k] = String(text).split(':');
      if (kind !== 'class' || !/^\d+$/.test(k ?? '')) throw new Error(`target '${text}': expected class:K`);
      form.set({ target: ctx.className(Number(k)) });
    },
    setNet() {
      const names = ctx.state.classNames;
      classList.replaceChildren(...names.map((n, k) => el('option', { value: `${k}: ${n}` })));
      const mobile = ctx.state.net === 'mobilenet';
      form.set({ target: ctx.className(mobile ? 131 : 3), eps: mobile ? 4 : 40, step: mobile ? 0.5 : 5, steps: 20 });
      eps.max = mobile ? 16 : 80;
      eps.step = mobile ? 0.25 : 1;
      eps.value = mobile ? 2 : 25;
    },
  };
}
