// Divergence, as the issue found it: with the trained MNIST net, a learning rate of 1e6 and one
// Step used to drop accuracy from 99% to 10% without a word; raising the rate while training undid
// only the last chunk (and on WebGPU left NaN probabilities). Now every step is judged: the page
// says which step diverged, the weights come back to before it, and a button applies the suggested
// rate. On the CPU and on WebGPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKENDS, openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });

/** Accuracy on the first 200 held-out digits, and whether every probability is finite. */
function accuracy(page) {
  return page.evaluate(async () => {
    const { probs, labels } = await window.convlens.client.evaluate('test', 0, 200);
    const k = probs.length / labels.length;
    let right = 0;
    for (let i = 0; i < labels.length; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + best]) best = c;
      right += best === labels[i] ? 1 : 0;
    }
    return { acc: right / labels.length, finite: probs.every(Number.isFinite) };
  });
}

const weights = (page) => page.evaluate(async () => Array.from(await window.convlens.client.exportWeights()));

async function setRate(page, method, rate) {
  if ((await page.inputValue('#trainer-method')) !== method) {
    await page.selectOption('#trainer-method', method);
    await page.waitForFunction((m) => window.convlens.state.trainer.method === m, method);
  }
  await page.fill('#trainer-learningRate', String(rate));
  await page.dispatchEvent('#trainer-learningRate', 'change');
  await page.waitForFunction((r) => window.convlens.state.trainer.learningRate === r, rate, { timeout: 20_000 }).catch(async (e) => {
    const seen = await page.evaluate(() => ({ trainer: window.convlens.state.trainer, input: document.querySelector('#trainer-learningRate').value, running: window.convlens.loop.running, banner: document.querySelector('#banner').textContent }));
    throw new Error(`${e.message}: ${JSON.stringify(seen)}`);
  });
}

async function divergenceBanner(page) {
  await page.waitForFunction(() => !document.querySelector('#banner').hidden, null, { timeout: 120_000 });
  return page.textContent('#banner');
}

for (const backend of BACKENDS) {
  test(`a diverging step is reported and undone, on ${backend}`, { timeout: 300_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}&fresh`);
    try {
      assert.equal(await page.evaluate(() => window.convlens.client.info.backend), backend);
      const trained = await accuracy(page);
      assert.ok(trained.acc > 0.95 && trained.finite, JSON.stringify(trained));

      // One Step at 1e6.
      await setRate(page, 'sgd', 1e6);
      const before = await weights(page);
      await page.click('#train-step');
      let text = await divergenceBanner(page);
      assert.match(text, /Training stopped: training diverged: step 1 (raised the loss from [\d.e-]+ to [\d.e]+|made the loss|made a weight)/);
      assert.match(text, /The weights are back to before step 1; lower the learning rate \(1e6\): try 0\.01\./);
      assert.deepEqual(await weights(page), before, 'the weights are those before the step');
      assert.deepEqual(await accuracy(page), trained);
      // The button applies the suggested rate.
      assert.equal(await page.textContent('#use-rate'), 'Use learning rate 0.01');
      await page.click('#use-rate');
      await page.waitForFunction(() => window.convlens.state.trainer.learningRate === 0.01);
      assert.equal(await page.inputValue('#trainer-learningRate'), '0.01');
      assert.ok(await page.$eval('#banner', (b) => b.hidden));

      // Raised while training: the run stops, and what comes back is the last good step's weights.
      await setRate(page, 'momentum', 0.001);
      await page.click('#train-run');
      await page.waitForFunction(() => window.convlens.loop.stats.steps >= 3, null, { timeout: 120_000 });
      await setRate(page, 'momentum', 1e6);
      text = await divergenceBanner(page);
      assert.match(text, /training diverged: step [\d,]+ .*The weights are back to before step [\d,]+; lower the learning rate \(1e6\): try 0\.01\./);
      assert.equal(await page.evaluate(() => window.convlens.loop.running), false);
      const after = await accuracy(page);
      assert.ok(after.finite, 'no NaN probabilities');
      assert.ok(after.acc >= trained.acc - 0.03, `accuracy ${after.acc} after, ${trained.acc} before`);
    } finally {
      await page.close();
    }
  });
}
