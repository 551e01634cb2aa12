// The training panel: dataset, trainer settings (changeable while training), run/pause/step,
// live statistics and the loss and accuracy curves (uPlot).
import uPlot from '../vendor/uPlot.esm.js';
import { countText, el, fmt } from './dom.js';

export const DATASETS = {
  mnist5k: 'Built-in MNIST (4,500 train + 500 held out)',
  mnist: 'MNIST, data directory (60,000 + 3,000 test)',
  cifar10: 'CIFAR-10, data directory (4,000 + 1,000 test)',
};

const METHODS = ['sgd', 'momentum', 'nesterov', 'adagrad', 'adadelta', 'adam'];
const FIELDS = [
  ['learningRate', 'learning rate', 0.0001],
  ['momentum', 'momentum', 0.05],
  ['batchSize', 'batch size', 1],
  ['l1', 'L1 decay', 0.0001],
  ['l2', 'L2 decay', 0.0001],
];

function chart(root, title, series, scale, width) {
  const opts = {
    width, height: 170, title,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: false }, y: scale },
    axes: [{ label: 'examples seen', size: 36, values: (u, v) => v.map((x) => (x >= 1000 ? `${x / 1000}k` : x)) },
      { size: 44 }],
    series: [{}, ...series],
  };
  return new uPlot(opts, [[], ...series.map(() => [])], root);
}

/** `datasetKey`: the data choice's key for an element's `controls` list (the 2-D panel's is `toy`). */
export function createTrainPanel(root, { onRun, onPause, onStep, onReset, onDataset, onTrainer, datasets = DATASETS, chartWidth = 300, datasetKey = 'dataset' }) {
  const dataset = el('select', { id: 'dataset' }, ...Object.entries(datasets).map(([k, v]) => el('option', { value: k, text: v })));
  dataset.onchange = () => onDataset(dataset.value);
  const run = el('button.primary', { id: 'train-run', type: 'button', text: 'Train' });
  run.onclick = () => (run.dataset.running === '1' ? onPause() : onRun());
  const step = el('button', { id: 'train-step', type: 'button', text: 'Step', title: 'one minibatch' });
  step.onclick = () => onStep();
  const reset = el('button', { id: 'train-reset', type: 'button', text: 'Reset weights', title: 'a fresh random init (seed from the Network box)' });
  reset.onclick = () => onReset();

  const method = el('select', { id: 'trainer-method' }, ...METHODS.map((m) => el('option', { value: m, text: m })));
  const inputs = {};
  const changed = () => {
    const config = { method: method.value };
    for (const [key] of FIELDS) config[key] = Number(inputs[key].value);
    onTrainer(config);
  };
  method.onchange = changed;
  const fields = FIELDS.map(([key, label, step]) => {
    inputs[key] = el('input', { id: `trainer-${key}`, type: 'number', step, min: 0, onchange: changed });
    return el('label.field', {}, el('span', { text: label }), inputs[key]);
  });

  const stat = (id, label) => el('div.stat', {}, el('span.stat-label', { text: label }), el('span.stat-value', { id }));
  const stats = el('div.stats', {},
    stat('stat-examples', 'examples seen'), stat('stat-epoch', 'epoch'),
    stat('stat-loss', 'loss (last 100 batches)'), stat('stat-train-acc', 'training accuracy'),
    stat('stat-val-acc', 'validation accuracy'), stat('stat-rate', 'examples / s'),
    stat('stat-fwd', 'forward ms / example'), stat('stat-bwd', 'backward ms / example'));
  const lossBox = el('div.chart');
  const accBox = el('div.chart');
  const note = el('p.hint', { id: 'train-note' });
  root.replaceChildren(el('div.train', {},
    el('div.row.train-controls', {}, el('label', { text: 'Data ', 'data-key': datasetKey }, dataset), run, step, reset),
    el('div.row.trainer', {}, el('label.field', {}, el('span', { text: 'trainer' }), method), ...fields),
    note,
    el('div.train-body', {}, stats, lossBox, accBox)));
  const lossChart = chart(lossBox, 'Loss', [{ label: 'loss', stroke: '#0969da', width: 1.5 }], { auto: true }, chartWidth);
  const accChart = chart(accBox, 'Accuracy', [
    { label: 'training', stroke: '#1a7f37', width: 1.5 },
    { label: 'validation', stroke: '#cf222e', width: 1.5, spanGaps: true },
  ], { auto: false, range: [0, 1] }, chartWidth);

  const text = (id, v) => { root.querySelector(`#${id}`).textContent = v; };
  const pct = (v) => (v === null ? '–' : `${(100 * v).toFixed(1)}%`);
  return {
    /** Labels, ranges and help from the engine's trainer settings (settingsSchema('trainer')). */
    useSchema(schema) {
      for (const f of schema.fields) {
        if (f.key === 'method') {
          method.replaceChildren(...f.type.options.map((m) => el('option', { value: m, text: m })));
          continue;
        }
        const input = inputs[f.key];
        if (!input) continue;
        Object.assign(input, { min: f.min ?? '', max: f.max ?? '', step: f.step ?? 'any', title: f.help ?? '' });
        input.previousSibling.textContent = f.unit ? `${f.label} (${f.unit})` : f.label;
      }
    },
    setDataset(name) { dataset.value = name; },
    setTrainer(config) {
      method.value = config.method;
      for (const [key] of FIELDS) inputs[key].value = String(config[key]);
      inputs.learningRate.disabled = config.method === 'adadelta';
      inputs.momentum.disabled = !['momentum', 'nesterov'].includes(config.method);
    },
    setRunning(running, enabled = true) {
      run.dataset.running = running ? '1' : '0';
      run.textContent = running ? 'Pause' : 'Train';
      run.disabled = !enabled;
      step.disabled = running || !enabled;
      reset.disabled = running;
    },
    setNote(message) { note.textContent = message ?? ''; },
    update(s) {
      text('stat-examples', countText(s.examples));
      text('stat-epoch', String(s.epoch));
      text('stat-loss', s.loss === null ? '–' : s.loss.toFixed(4));
      text('stat-train-acc', pct(s.trainAcc));
      text('stat-val-acc', s.valAcc === null ? '–' : `${pct(s.valAcc)} of ${countText(s.valCount)}`);
      const on = s.workers > 1 ? ` on ${s.workers} workers` : '';
      text('stat-rate', s.examplesPerSec === null ? '–' : `${countText(Math.round(s.examplesPerSec))}${on}`);
      text('stat-fwd', fmt(s.forwardMs));
      text('stat-bwd', fmt(s.backwardMs));
      const h = s.history;
      lossChart.setData([h.examples, h.loss]);
      accChart.setData([h.examples, h.trainAcc, h.valAcc]);
    },
  };
}
