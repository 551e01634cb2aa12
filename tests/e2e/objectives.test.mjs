// Clicking a unit of a hidden layer, or a channel's title, makes it the objective: its own layer's
// gradient is the seed (one-hot, or 1/HW over the channel) and every layer above gets zero.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

const gradients = (page) => page.evaluate(() => window.convlens.state.probe.layers.map((l) => Array.from(l.grad)));

async function clickAndWait(page, selector, position) {
  const seq = await page.evaluate(() => window.convlens.state.seq);
  await page.click(selector, position ? { position } : undefined);
  await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
}

test('neuron and channel objectives by clicking', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  try {
    // conv1 (layer 1) is 8x24x24; its channel 2's canvas, pixel (x 5, y 7).
    const canvas = '.layer-panel[data-layer="1"] .view-row:first-child canvas.clickable >> nth=2';
    const box = await page.locator(canvas).boundingBox();
    await clickAndWait(page, canvas, { x: (5.5 / 24) * box.width, y: (7.5 / 24) * box.height });
    const objective = await page.evaluate(() => window.convlens.state.objective);
    assert.deepEqual(objective, { kind: 'neuron', layer: 1, index: 2 * 576 + 7 * 24 + 5 });
    let g = await gradients(page);
    g[1].forEach((v, i) => assert.equal(v, i === objective.index ? 1 : 0, `conv1 grad[${i}]`));
    for (const layer of g.slice(2)) assert.ok(layer.every((v) => v === 0), 'layers above have zero gradient');
    assert.match(await page.textContent('#objective-text'), /conv1/);

    // pool2 (layer 4, 16x4x4): the title of channel 3.
    await clickAndWait(page, '.layer-panel[data-layer="4"] .view-row:first-child .tile-title >> nth=3');
    assert.deepEqual(await page.evaluate(() => window.convlens.state.objective), { kind: 'channel', layer: 4, channel: 3 });
    g = await gradients(page);
    g[4].forEach((v, i) => assert.ok(Math.abs(v - (Math.floor(i / 16) === 3 ? 1 / 16 : 0)) < 1e-7, `pool2 grad[${i}] = ${v}`));
    assert.ok(g[0].some((v) => v !== 0), 'the input gradient is not zero');
  } finally {
    await page.close();
  }
});
