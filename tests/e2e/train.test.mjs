// Training in the worker: the loss falls on the sample digits; a diverging learning rate is an
// error in the page's hands, and the engine keeps working.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

test('SGD in the worker lowers the loss; divergence is reported', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  try {
    const r = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      const { sampleToInput } = await import('/www/views/samples.js');
      await client.load(state.spec, null, 7);
      const images = new Float32Array(state.samples.length * 576);
      state.samples.forEach((s, i) => images.set(sampleToInput(s, state.summary.input), i * 576));
      const labels = Uint32Array.from(state.samples, (s) => s.label);
      const config = { batchSize: 5, learningRate: 0.02, momentum: 0.9, l2: 0 };
      const losses = [];
      for (let e = 0; e < 15; e++) losses.push(await client.train(images.slice(), labels.slice(), config));
      let error = null;
      try {
        for (let e = 0; e < 5; e++) await client.train(images.slice(), labels.slice(), { ...config, learningRate: 1e30 });
      } catch (err) {
        error = err.message;
      }
      const probe = await client.probe(images.slice(0, 576), { kind: 'class', index: 0 });
      return { losses, error, objectiveFinite: Number.isFinite(probe.objective) };
    });
    assert.ok(r.losses.at(-1) < 0.2 * r.losses[0], `loss ${r.losses[0]} -> ${r.losses.at(-1)}`);
    assert.match(r.error ?? '', /training diverged \(lower the learning rate; the weights were not changed\)/);
    assert.ok(r.objectiveFinite, 'the engine still probes');
  } finally {
    await page.close();
  }
});
