// The page remembers the model across reloads (IndexedDB), bit for bit; spec errors point at the
// line; a drawn digit becomes the input; presets switch nets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

test('autosave: trained weights, spec and trainer come back after a reload, bit for bit', { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  try {
    await page.click('#train-reset');
    await page.selectOption('#trainer-method', 'nesterov');
    await page.click('#train-step');
    await page.click('#train-step');
    await page.waitForFunction(() => window.convlens.loop.stats.steps === 2);
    await page.click('#train-run');
    await page.waitForFunction(() => window.convlens.loop.stats.steps >= 20);
    await page.click('#train-run');
    await page.waitForFunction(() => !window.convlens.loop.running && window.convlens.state.savedAt);
    const saved = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      state.savedAt = null;
      await new Promise((r) => setTimeout(r, 700)); // let any scheduled autosave finish
      return { weights: Array.from(await client.exportWeights()), spec: state.spec };
    });
    await page.reload();
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    const restored = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      return { weights: Array.from(await client.exportWeights()), spec: state.spec, restored: state.restored, method: state.trainer.method };
    });
    assert.equal(restored.restored, true);
    assert.equal(restored.spec, saved.spec);
    assert.equal(restored.method, 'nesterov');
    assert.deepEqual(restored.weights, saved.weights, 'the same safetensors bytes');
    assert.match(await page.textContent('#status'), /restored from your last visit/);
    // ?fresh ignores the autosave.
    await page.goto(`${ctx.server.url}?backend=cpu&fresh`);
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    assert.equal(await page.evaluate(() => window.convlens.state.restored ?? false), false);
  } finally {
    await page.close();
  }
});

test('a spec error is shown with the line it points at; presets switch nets', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    const text = await page.inputValue('#spec-text');
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.includes('"conv2"'));
    lines[at] = lines[at].replace('"filters": 16', '"filters": -3');
    await page.fill('#spec-text', lines.join('\n'));
    await page.click('#spec-apply');
    await page.waitForFunction(() => !document.querySelector('#spec-error').hidden);
    assert.equal(await page.textContent('#spec-error'),
      `line ${at + 1}: network spec: layer 3 (conv): field 'filters': expected a positive integer, got -3`);
    await page.fill('#spec-text', '{ "layers": [\n  {"type": "input", "width": 4}\n  {"type": "fc"} ] }');
    await page.click('#spec-apply');
    await page.waitForFunction(() => /^line 3:/.test(document.querySelector('#spec-error').textContent));
    assert.equal(await page.evaluate(() => window.convlens.state.summary.name), 'mnist-convnetjs', 'the net did not change');
    // Presets.
    await page.selectOption('#spec-preset', 'mnist5k');
    await page.waitForFunction(() => window.convlens.state.preset === 'mnist5k' && window.convlens.state.trained);
    assert.match(await page.textContent('#status'), /built-in 4,500 digits/);
  } finally {
    await page.close();
  }
});

test('a digit drawn on the pad is the input of every view', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&fresh');
  try {
    const seq = await page.evaluate(() => window.convlens.state.seq);
    const box = await page.$eval('.draw-pad', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width }; });
    // A vertical stroke: a "1".
    await page.mouse.move(box.x + box.w / 2, box.y + box.w * 0.2);
    await page.mouse.down();
    for (let k = 1; k <= 10; k++) await page.mouse.move(box.x + box.w / 2, box.y + box.w * (0.2 + 0.06 * k));
    await page.mouse.up();
    await page.waitForFunction((s) => window.convlens.state.seq > s && window.convlens.state.inputName === 'your drawing', seq);
    const r = await page.evaluate(() => {
      const { state } = window.convlens;
      return { max: Math.max(...state.input), predicted: state.predicted, name: state.inputName };
    });
    assert.ok(r.max > 0.5, 'the stroke is in the input');
    assert.equal(r.predicted, 1, 'the trained net reads a vertical stroke as a 1');
  } finally {
    await page.close();
  }
});
