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
