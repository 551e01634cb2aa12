// The page loads on each backend, shows one panel per layer, and redraws gradients when the objective changes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKENDS, openPage, screenshotPath, useBrowser } from './browser.mjs';

const NAMES = { cpu: 'CPU', webgpu: 'WebGPU' };
const ctx = useBrowser({ webgpu: true });

/** Data URLs of every gradient canvas, to see whether the gradients were redrawn. */
const gradientPixels = (page) => page.$$eval('.layer-panel .view-row:nth-child(2) canvas', (cs) => cs.map((c) => c.toDataURL()).join());
const bannerText = (page) => page.$eval('#banner', (b) => (b.hidden ? null : b.textContent.trim()));

for (const backend of BACKENDS) {
  test(`page on ${backend}`, { timeout: 180_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
    try {
      assert.equal(await bannerText(page), null, 'no error banner');
      assert.equal(await page.textContent('#backend-badge'), NAMES[backend]);
      // The CPU engine build on the CPU, the WebGPU one on WebGPU.
      assert.equal(await page.evaluate(() => window.convlens.client.info.build), backend === 'cpu' ? 'cpu' : 'webgpu');
      const { panels, layers, classes, objective, seq } = await page.evaluate(() => ({
        panels: document.querySelectorAll('.layer-panel').length,
        layers: window.convlens.state.summary.layers.length,
        classes: window.convlens.state.summary.classes,
        objective: window.convlens.state.objective,
        seq: window.convlens.state.seq,
      }));
      assert.ok(layers >= 2, 'the summary has layers');
      assert.equal(panels, layers, 'one panel per layer');
      assert.equal(objective.kind, 'class', 'default objective is the predicted class');
      await page.screenshot({ path: await screenshotPath(`page-${backend}.png`), fullPage: true });

      const textBefore = await page.textContent('#objective-text');
      const pixelsBefore = await gradientPixels(page);
      const target = (objective.index + 1) % classes;
      await page.click(`.layer-panel:last-child .view-row:first-child .cls[data-class="${target}"]`);
      await page.waitForFunction((s) => window.convlens.state.seq > s, seq);

      const textAfter = await page.textContent('#objective-text');
      assert.notEqual(textAfter, textBefore, 'objective text changed');
      assert.match(textAfter, new RegExp(`class ${target}\\b`));
      assert.deepEqual(await page.evaluate(() => window.convlens.state.objective), { kind: 'class', index: target });
      assert.notEqual(await gradientPixels(page), pixelsBefore, 'gradients were redrawn');
      assert.equal(await bannerText(page), null, 'still no error banner');
    } finally {
      await page.close();
    }
  });
}

// The layer view's frame: one buffer per probe (the weights in a second one, sent only when they
// changed), and a result given back with release() is written over by the next call of its kind.
for (const backend of BACKENDS) {
  test(`layer view frame buffers on ${backend}`, { timeout: 180_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
    try {
      const r = await page.evaluate(async () => {
        const { client, state } = window.convlens;
        const x = state.input.slice();
        const o = { kind: 'class', index: 3 };
        const flat = (p) => [...p.layers.flatMap((l) => [...l.act, ...l.grad, ...l.weights.flatMap((w) => [...w.data, ...w.grad])])];
        const buffers = (p) => new Set([p.probs, ...p.layers.flatMap((l) => [l.act, l.grad, ...l.weights.flatMap((w) => [w.data, w.grad])])]
          .filter(Boolean).map((a) => a.buffer)).size;
        const a = await client.probe(x, o);
        const aValues = flat(a);
        const b = await client.probe(x, o);
        const sameWeights = a.layers.every((l, i) => l.weights.every((w, j) => w.data === b.layers[i].weights[j].data));
        const bValues = flat(b);
        // Released: the next probe writes into its buffer, and the numbers stay the same.
        const aBytes = a.layers[0].act.buffer.byteLength;
        client.release(a);
        const c = await client.probe(x, o);
        const reused = c.layers[0].act.buffer.byteLength === aBytes && a.layers[0].act.length === 0;
        const cValues = flat(c);
        // A training step changes the weights: they are sent again.
        await client.train(x, new Uint32Array([3]), { batchSize: 1, learningRate: 0.01 });
        const d = await client.probe(x, o);
        const resent = d.layers.some((l, i) => l.weights.some((w, j) => w.data !== c.layers[i].weights[j].data));
        const changed = d.layers.some((l, i) => l.weights.some((w, j) => w.data.some((v, k) => v !== c.layers[i].weights[j].data[k])));
        // activations: views into one buffer, reused once released; the probe's numbers.
        const acts = await client.activations(x);
        const one = new Set(acts.map((t) => t.buffer)).size;
        const first = acts.map((t) => [...t]);
        client.release(acts);
        const again = await client.activations(x);
        return {
          buffers: [buffers(a), buffers(b)], sameWeights, equal: [aValues.every((v, i) => v === bValues[i]), aValues.every((v, i) => v === cValues[i])],
          reused, resent, changed, one, actsDetached: acts[0].length, actsSame: again.every((t, i) => t.every((v, k) => v === first[i][k])),
          actsMatchProbe: d.layers.every((l, i) => l.act.every((v, k) => Math.abs(v - again[i][k]) <= 1e-5 * Math.max(1, Math.abs(v)))),
        };
      });
      assert.deepEqual(r.buffers, [2, 2], 'one buffer for the frame, one for the weights');
      assert.ok(r.sameWeights, 'unchanged weights are kept, not sent again');
      assert.deepEqual(r.equal, [true, true], 'the same numbers from a kept and a reused buffer');
      assert.ok(r.reused, 'a released probe\'s buffer is reused (its arrays emptied)');
      assert.ok(r.resent && r.changed, 'weights changed by training are sent again');
      assert.equal(r.one, 1, 'activations are views into one buffer');
      assert.equal(r.actsDetached, 0, 'released activations are emptied');
      assert.ok(r.actsSame, 'the same activations in a reused buffer');
      assert.ok(r.actsMatchProbe, 'activations are the probe\'s');
    } finally {
      await page.close();
    }
  });
}
