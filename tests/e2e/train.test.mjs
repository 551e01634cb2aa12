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

test('data-parallel training: on 2 workers the MNIST net and a net with dropout get the same weights as on 1, bit for bit, also when the helper crashes', { timeout: 240_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    const r = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      const dropout = JSON.stringify({ name: 'dropout', layers: [
        { type: 'input', width: 24, height: 24, depth: 1 },
        { type: 'conv', size: 5, filters: 8, pad: 2, activation: 'relu' }, { type: 'pool', size: 2 },
        { type: 'dropout', rate: 0.25 }, { type: 'fc', units: 10 }, { type: 'softmax' }] });
      const run = async (spec, workers, crash = false) => {
        await client.load(spec, null, 1);
        await client.loadDataset('mnist5k', new URL('/www/data/', location.href));
        await client.setTrainer({ method: 'momentum', learningRate: 0.01, momentum: 0.9, batchSize: 30, l1: 0, l2: 0.001 });
        const helpers = await client.shareTraining({ workers });
        const losses = [];
        let pooled = 0;
        let crashed = null;
        for (let i = 0; i < 6; i++) {
          // The helper's engine panics while a chunk runs: its worker restarts, and the steps go on
          // here until the pool is set up again.
          if (crash && i === 3) crashed = client.worker.helperWorkers(1)[0].send('s1', 'debugPanic').catch((e) => e.message);
          const s = await client.trainSteps(10, { workers });
          losses.push(...s.losses);
          pooled += s.pooled;
        }
        return { helpers, pooled, losses, crashed: await crashed, weights: await client.exportWeights() };
      };
      const out = [];
      const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
      for (const spec of [state.spec, dropout]) {
        const one = await run(spec, 1);
        const two = await run(spec, 2);
        out.push({ helpers: [one.helpers, two.helpers], pooled: [one.pooled, two.pooled], sameLosses: same(one.losses, two.losses), same: same(one.weights, two.weights), bytes: one.weights.length });
      }
      const one = await run(state.spec, 1);
      const crashed = await run(state.spec, 2, true);
      out.push({ crashed: crashed.crashed, pooled: crashed.pooled, sameLosses: same(one.losses, crashed.losses), same: same(one.weights, crashed.weights) });
      return out;
    });
    for (const [k, net] of ['MNIST net', 'dropout net'].entries()) {
      const x = r[k];
      console.log(`${net}: 60 steps of batch 30 (3 shards); helpers ${x.helpers.join(' / ')}, examples computed there ${x.pooled.join(' / ')}; weights (${x.bytes} bytes) equal: ${x.same}`);
      assert.deepEqual(x.helpers, [0, 1], `${net}: one helper on 2 workers`);
      assert.equal(x.pooled[0], 0, `${net}: no helper on 1 worker`);
      assert.equal(x.pooled[1], 600, `${net}: the helper computed one of the 3 shards (10 examples) of each of the 60 steps`);
      assert.ok(x.sameLosses, `${net}: the same losses`);
      assert.ok(x.same, `${net}: the same weights, bit for bit`);
    }
    const c = r[2];
    console.log(`MNIST net, the helper crashing after 30 steps (${c.crashed}): ${c.pooled} examples computed there; weights equal: ${c.same}`);
    assert.match(String(c.crashed), /panic/, 'the helper panicked');
    assert.ok(c.pooled > 0 && c.pooled < 600, `the helper computed part of the steps (${c.pooled} examples)`);
    assert.ok(c.sameLosses && c.same, 'the same losses and weights as on one worker');
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
