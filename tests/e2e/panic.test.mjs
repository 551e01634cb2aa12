// A Rust panic in the engine is shown on the page, and the worker restarts by itself with the same net.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKENDS, openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });

for (const backend of BACKENDS) {
  test(`panic and automatic restart on ${backend}`, { timeout: 180_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
    try {
      const error = await page.evaluate(() => {
        const { client } = window.convlens;
        window.panicMessage = new Promise((resolve) => client.addEventListener('panic', (e) => resolve(e.detail.message), { once: true }));
        window.restarted = new Promise((resolve) => client.addEventListener('restarted', (e) => resolve(e.detail), { once: true }));
        return client.request('debugPanic', {}).then(() => null, (e) => e.message);
      });
      assert.ok(error, 'debugPanic rejects');
      const message = await page.evaluate(() => window.panicMessage);
      assert.ok(message, 'the panic hook gave a message');

      await page.waitForFunction((m) => {
        const banner = document.getElementById('banner');
        return !banner.hidden && banner.textContent.includes(m);
      }, message, { timeout: 10_000 });

      const info = await page.evaluate(() => window.restarted);
      assert.equal(info.backend, backend, 'restarted on the same backend');
      const probe = await page.evaluate(async () => {
        const { client, state } = window.convlens;
        const p = await client.probe(state.input, { kind: 'class', index: 3 });
        return { layers: p.layers.length, objective: p.objective, act: p.layers.at(-1).act instanceof Float32Array };
      });
      assert.equal(probe.layers, await page.evaluate(() => window.convlens.state.summary.layers.length));
      assert.ok(Number.isFinite(probe.objective));
      assert.ok(probe.act, 'probe results are Float32Arrays');
    } finally {
      await page.close();
    }
  });
}
