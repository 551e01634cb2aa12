// Training in the page: the worker trains the MNIST net on the built-in digits to a stated accuracy
// (by step count, not by time), the live panel shows it, a diverging learning rate is reported and
// undone, and a corrupt dataset file is refused with the previous dataset kept.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, screenshotPath, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

test('the MNIST net learns the built-in digits in the worker: 3 epochs -> at least 94% of the 500 held out', { timeout: 240_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    const r = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      // The same run as the Rust test: seed 1, momentum 0.9, lr 0.01, batch 20, L2 0.001.
      await client.load(state.spec, null, 1);
      await client.loadDataset('mnist5k', new URL('/www/data/', location.href));
      await client.setTrainer({ method: 'momentum', learningRate: 0.01, momentum: 0.9, batchSize: 20, l1: 0, l2: 0.001 });
      const losses = [];
      for (let i = 0; i < 27; i++) losses.push(...(await client.trainSteps(25)).losses);
      const { probs, labels } = await client.evaluate('test', 0, 500);
      let correct = 0;
      for (let i = 0; i < 500; i++) {
        const p = probs.subarray(i * 10, i * 10 + 10);
        correct += p.indexOf(Math.max(...p)) === labels[i];
      }
      return { correct, steps: losses.length, first: losses.slice(0, 25), last: losses.slice(-25) };
    });
    const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
    assert.equal(r.steps, 675);
    console.log(`held-out accuracy ${r.correct}/500; loss ${mean(r.first).toFixed(3)} -> ${mean(r.last).toFixed(3)}`);
    assert.ok(r.correct >= 470, `held-out accuracy ${r.correct}/500`);
    assert.ok(mean(r.first) > 4 * mean(r.last), 'the loss falls');
  } finally {
    await page.close();
  }
});

test('a net with batchnorm and dropout trains in the worker, repeats from its seed, and evaluates deterministically', { timeout: 240_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    const r = await page.evaluate(async () => {
      const { client } = window.convlens;
      const spec = JSON.stringify({ name: 'bn-dropout', layers: [
        { type: 'input', width: 24, height: 24, depth: 1 },
        { type: 'conv', size: 5, filters: 8, pad: 2, bias: false },
        { type: 'batchnorm', momentum: 0.1 }, { type: 'relu' }, { type: 'pool', size: 2 },
        { type: 'dropout', rate: 0.25 }, { type: 'fc', units: 10 }, { type: 'softmax' }] });
      const run = async () => {
        await client.load(spec, null, 3);
        await client.loadDataset('mnist5k', new URL('/www/data/', location.href));
        await client.setTrainer({ method: 'adam', learningRate: 0.005, batchSize: 20, l2: 0 });
        const losses = [];
        for (let i = 0; i < 8; i++) losses.push(...(await client.trainSteps(25)).losses);
        return losses;
      };
      const a = await run();
      const { probs, labels } = await client.evaluate('test', 0, 500);
      const again = await client.evaluate('test', 0, 500);
      let correct = 0;
      for (let i = 0; i < 500; i++) {
        const p = probs.subarray(i * 10, i * 10 + 10);
        correct += p.indexOf(Math.max(...p)) === labels[i];
      }
      const b = await run();
      return { a, b, correct, sameEval: probs.every((v, i) => v === again.probs[i]) };
    });
    const mean = (v) => v.reduce((x, y) => x + y, 0) / v.length;
    console.log(`batchnorm + dropout: held-out accuracy ${r.correct}/500; loss ${mean(r.a.slice(0, 25)).toFixed(3)} -> ${mean(r.a.slice(-25)).toFixed(3)}`);
    assert.deepEqual(r.b, r.a, 'the same seed gives the same run (data order and dropout masks)');
    assert.ok(r.sameEval, 'evaluation has no dropout: the same probabilities twice');
    assert.ok(r.correct >= 400, `held-out accuracy ${r.correct}/500`);
    assert.ok(mean(r.a.slice(0, 25)) > 2 * mean(r.a.slice(-25)), 'the loss falls');
  } finally {
    await page.close();
  }
});

test('the live panel: train, pause, step, change the trainer while running; divergence is reported', { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    await page.click('#train-reset');
    await page.waitForFunction(() => !window.convlens.state.trained || window.convlens.loop.stats.examples === 0);
    await page.click('#train-run');
    await page.waitForFunction(() => window.convlens.loop.stats.examples >= 1000, null, { timeout: 120_000 });
    await page.selectOption('#trainer-method', 'adam');
    await page.waitForFunction(() => window.convlens.state.trainer.method === 'adam');
    await page.waitForFunction(() => window.convlens.loop.stats.valAcc !== null, null, { timeout: 60_000 });
    await page.click('#train-run'); // pause
    await page.waitForFunction(() => !window.convlens.loop.running);
    const s = await page.evaluate(() => ({ ...window.convlens.loop.stats, history: null }));
    assert.ok(s.examples >= 1000 && s.loss > 0 && s.trainAcc > 0.15, JSON.stringify({ ...s, recentLoss: null, recentCorrect: null, recentBatch: null }));
    assert.match(await page.textContent('#stat-examples'), /^\d{1,3}(,\d{3})*$/);
    assert.match(await page.textContent('#stat-val-acc'), /% of \d+/);
    assert.ok((await page.$$('.test-cell')).length === 40, 'the test grid');
    assert.ok((await page.$$('.test-cell .top3 li')).length === 120, 'top 3 per test image');
    await page.screenshot({ path: await screenshotPath('training-mnist.png') });
    const before = await page.evaluate(() => window.convlens.loop.stats.steps);
    await page.click('#train-step');
    await page.waitForFunction((b) => window.convlens.loop.stats.steps === b + 1, before);
    // A diverging learning rate: the steps are undone and the panel says why (more in diverge.test.mjs).
    await page.selectOption('#trainer-method', 'sgd');
    await page.fill('#trainer-learningRate', '1e30');
    await page.dispatchEvent('#trainer-learningRate', 'change');
    await page.waitForFunction(() => window.convlens.state.trainer.learningRate === 1e30);
    const weights = await page.evaluate(async () => Array.from(await window.convlens.client.exportWeights()));
    await page.click('#train-run');
    await page.waitForFunction(() => !document.querySelector('#banner').hidden, null, { timeout: 60_000 });
    assert.match(await page.textContent('#banner'), /training diverged: step [\d,]+ .*The weights are back to before step/);
    const after = await page.evaluate(async () => Array.from(await window.convlens.client.exportWeights()));
    assert.deepEqual(after, weights, 'the weights are those before the diverging step');
    assert.equal(await page.evaluate(() => window.convlens.loop.running), false);
  } finally {
    await page.close();
  }
});

test('a corrupt or missing dataset file is refused and the previous dataset stays', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    const r = await page.evaluate(async () => {
      const { client } = window.convlens;
      const errors = [];
      for (const base of ['/tests/e2e/fixtures/corrupt-data/', '/no-such-dir/']) {
        try {
          await client.loadDataset('mnist5k', new URL(base, location.href));
        } catch (e) {
          errors.push(e.message);
        }
      }
      const still = await client.evaluate('test', 0, 3);
      return { errors, labels: Array.from(still.labels) };
    });
    assert.equal(r.errors.length, 2);
    assert.match(r.errors[0], /^data: (sprite sheet 1: the PNG data is corrupt|sprite sheet 1: not a readable PNG file)/);
    assert.match(r.errors[1], /cannot fetch .*no-such-dir\/.*HTTP 404/);
    assert.equal(r.labels.length, 3, 'the built-in digits are still loaded');
  } finally {
    await page.close();
  }
});
