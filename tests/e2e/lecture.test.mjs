// The example lecture page (examples/lecture.html): every <convlens-view> on it comes up when
// scrolled to, the ones that run by themselves finish with the states their attributes ask for,
// all share one worker, and nothing reaches the console; screenshots at desktop and phone width.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { dataDir } from '../../scripts/serve.mjs';
import { screenshotPath, useBrowser } from './browser.mjs';

// Without the data directory the views fall back to the built-in digits, after the browser has
// logged the data directory's 404s: those alone are expected then.
const HAVE_MNIST = existsSync(join(dataDir(), 'mnist'));
const unexpected = (errors) => errors.filter((e) => HAVE_MNIST || !/Failed to load resource: .* 404/.test(e));

const ctx = useBrowser({ webgpu: false });

for (const [width, name] of [[1280, 'desktop'], [375, 'phone']]) {
  test(`the lecture page's views come up and run (${name}, ${width} px)`, { timeout: 400_000 }, async () => {
    const page = await ctx.browser.newPage({ viewport: { width, height: 900 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(`${ctx.server.url}examples/lecture.html`);
      const ids = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.id));
      assert.ok(ids.length >= 6, `${ids.length} views`);
      for (const id of ids) {
        await page.locator(`#${id}`).scrollIntoViewIfNeeded();
        await page.waitForFunction((id) => document.getElementById(id).ready, id, { timeout: 60_000 });
        await page.evaluate((id) => document.getElementById(id).ready, id);
        if (await page.evaluate((id) => document.getElementById(id).hasAttribute('autorun'), id)) {
          await page.waitForFunction((id) => {
            const s = document.getElementById(id).state;
            return Array.isArray(s) ? s.every((m) => m?.done) : s?.done;
          }, id, { timeout: 180_000 });
        }
        if (name === 'desktop') await page.screenshot({ path: await screenshotPath(`lecture-${id}.png`) });
      }
      const line = await page.evaluate(() => document.getElementById('line').state.landscape.axis.length);
      assert.equal(line, 41, 'points="41"');
      const plane = await page.evaluate(() => document.getElementById('plane').state.landscape.loss.length);
      assert.equal(plane, 21 * 21, 'points="21"');
      const patches = await page.evaluate(() => document.getElementById('patches').state.patches.layer);
      assert.equal(patches, 3, 'layer="3"');
      // Run a view that waits for its reader: the class visualization.
      await page.locator('#visualize').scrollIntoViewIfNeeded();
      await page.evaluate(() => document.getElementById('visualize').run());
      assert.equal(await page.evaluate(() => document.getElementById('visualize').state.step), 60, 'steps="60"');
      // One engine worker for the page, and the worker pool's helpers (one per other core).
      const cores = await page.evaluate(() => Math.min(8, navigator.hardwareConcurrency));
      assert.ok(page.workers().length <= cores, `${page.workers().length} workers for ${cores} cores`);
      // The attribution maps side by side (methods="gradient, guided"), and occlusion with window="6".
      const saliency = await page.evaluate(() => {
        const s = document.getElementById('saliency').state;
        return { methods: Object.keys(s.results), objective: s.objective, finite: Object.values(s.results).every((r) => r.abs.every(Number.isFinite)) };
      });
      assert.deepEqual(saliency.methods, ['gradient', 'guided']);
      const layers = await page.evaluate(() => ({ state: document.getElementById('layers').state, panels: document.getElementById('layers').shadowRoot.querySelectorAll('.layer-panel').length }));
      assert.equal(layers.panels, layers.state.layers, 'a panel per layer');
      assert.equal(layers.state.objective.index, layers.state.predicted, 'the predicted class is explained');
      assert.equal(saliency.objective.kind, 'class');
      assert.ok(saliency.finite);
      const occ = await page.evaluate(() => {
        const s = document.getElementById('occlusion').state;
        return { window: s.window, stride: s.stride, done: s.done, total: s.total, map: s.map?.length };
      });
      assert.equal(occ.window, 6, 'window="6"');
      assert.equal(occ.done, occ.total);
      assert.ok(occ.map > 0, 'the per-pixel map');
      // The 2-D classifier trains on its spirals with learning-rate="0.03".
      await page.locator('#toy2d').scrollIntoViewIfNeeded();
      await page.waitForFunction(() => document.getElementById('toy2d').state?.examples > 500, null, { timeout: 120_000 });
      const toy = await page.evaluate(() => { const s = document.getElementById('toy2d').state; return { toy: s.toy, rate: s.trainer.learningRate, points: s.labels.length }; });
      assert.deepEqual(toy, { toy: 'spiral', rate: 0.03, points: toy.points });
      assert.ok(toy.points > 50, `${toy.points} points`);
      if (name === 'phone') {
        // Nothing wider than the screen.
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(wide <= 375 + 1, `the page is ${wide} px wide at 375 px`);
        await page.locator('#visualize').scrollIntoViewIfNeeded();
        await page.screenshot({ path: await screenshotPath('lecture-phone.png') });
      }
      assert.deepEqual(unexpected(errors), [], 'no console errors');
    } finally {
      await page.close();
    }
  });
}
