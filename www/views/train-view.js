// Training as a <convlens-view view="train"> panel: the element's network learns its dataset in
// chunks (the image page's TrainingLoop: progress between chunks, Pause at once), with the training
// panel's settings, statistics and curves, and the first test images with the network's top three
// classes, refreshed as it learns. Its settings are the trainer's (`learning-rate`, `batch-size`,
// `method`, …, clamped by the engine); `autorun` starts training.
import { TrainingLoop } from '../training.js';
import { el } from './dom.js';
import { createTestGrid } from './testgrid.js';
import { DATASETS, createTrainPanel } from './train-panel.js';

const GRID = 24; // test images shown
const GRID_EVERY_MS = 1000;
const RESET_SEED = 7; // Reset weights: the image page's default seed

export function createTrainView(root, ctx) {
  const { client } = ctx;
  const { summary, data } = ctx.state;
  let trainer = null;
  let lastGrid = 0;
  const trainBox = el('div');
  const gridBox = el('div.testgrid', { 'aria-label': 'Test images' });
  root.replaceChildren(el('h2', { text: 'Training' }), trainBox,
    el('h3', {}, 'Test images ', el('span.hint', { text: 'top 3 classes; mistakes in red' })), gridBox);
  const loop = new TrainingLoop(client, {
    between: async (single) => {
      const now = performance.now();
      if (single || now - lastGrid > GRID_EVERY_MS) {
        lastGrid = now;
        await updateGrid().catch(() => {});
      }
    },
  });
  const panel = createTrainPanel(trainBox, {
    datasets: { [data.name]: DATASETS[data.name] ?? data.name },
    onRun: () => loop.start(),
    onPause: () => loop.pause(),
    onStep: () => loop.step(),
    onReset: resetWeights,
    onDataset: () => {},
    onTrainer: setTrainer,
    chartWidth: 280,
  });
  panel.setDataset(data.name);
  if (ctx.schemas?.trainer) panel.useSchema(ctx.schemas.trainer);
  const grid = createTestGrid(gridBox, { onSelect: () => {} });
  loop.addEventListener('stats', () => panel.update(loop.stats));
  loop.addEventListener('state', () => {
    panel.setRunning(loop.running, true);
    if (!loop.running) updateGrid().catch(() => {});
  });
  loop.addEventListener('error', (e) => ctx.report('Training stopped', e.detail.error));

  async function updateGrid() {
    const { probs } = await client.evaluate('test', 0, Math.min(GRID, data.test));
    grid.update(probs);
  }

  async function setTrainer(config) {
    try {
      trainer = await client.setTrainer(config);
      ctx.hash.set({ ...trainer });
    } catch (e) {
      ctx.report('Trainer settings not changed', e);
    }
    panel.setTrainer(trainer);
  }

  async function resetWeights() {
    await loop.pause();
    await client.load(client.lastLoad.spec, null, RESET_SEED);
    await client.setTrainer(trainer);
    loop.reset();
    loop.setTestSize(data.test);
    panel.update(loop.stats);
    await updateGrid();
  }

  const ready = (async () => {
    loop.setTestSize(data.test);
    const images = await client.images('test', 0, Math.min(GRID, data.test));
    grid.setImages(images, ctx.state.classNames.length ? ctx.state.classNames : summary.classNames);
    await setTrainer(ctx.state.trainer ?? {});
    panel.update(loop.stats);
    panel.setRunning(false, true);
    await updateGrid();
  })();
  ready.catch((e) => ctx.report('Training could not start', e));

  return {
    /** The attributes' trainer settings, clamped to the engine's ranges. */
    async fromHash(params) {
      await ready;
      const values = await client.request('settingsFromUrl', { technique: 'trainer', given: Object.fromEntries(params) });
      await setTrainer({ ...trainer, ...values });
    },
    async start() {
      await ready;
      loop.start();
    },
    cancel: () => loop.pause(),
    pause: () => loop.pause(),
    loop,
    get state() {
      const s = loop.stats;
      return { done: true, running: loop.running, examples: s.examples, loss: s.loss, trainAcc: s.trainAcc, valAcc: s.valAcc, trainer: { ...trainer } };
    },
  };
}
