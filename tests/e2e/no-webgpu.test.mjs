// A browser without WebGPU: the page falls back to the CPU, says so, and disables the switch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

test('without a WebGPU adapter the page runs on the CPU and the switch explains why', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '');
  try {
    assert.equal(await page.textContent('#backend-badge'), 'CPU');
    assert.equal(await page.evaluate(() => window.convlens.state.webgpu), false);
    const button = await page.$('#backend-switch');
    assert.equal(await button.isDisabled(), true);
    assert.match(await button.getAttribute('title'), /WebGPU is unavailable/);
    const probs = await page.evaluate(() => Array.from(window.convlens.state.probe.probs));
    assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'softmax sums to 1');
    assert.equal(await page.evaluate(() => window.convlens.state.trained), true, 'the default net has trained weights');
    assert.equal(probs.indexOf(Math.max(...probs)), await page.evaluate(() => window.convlens.state.inputLabel), 'the trained net classifies the first test image');
  } finally {
    await page.close();
  }
});

test('without WebGPU only the CPU engine is downloaded', { timeout: 120_000 }, async () => {
  const page = await ctx.browser.newPage();
  const urls = [];
  page.on('request', (r) => urls.push(new URL(r.url()).pathname));
  try {
    await page.goto(`${ctx.server.url}?workers=2`);
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    assert.equal(await page.evaluate(() => window.convlens.client.info.build), 'cpu');
    // A pool job: its helpers start engines of their own, on the CPU build too.
    await page.evaluate(async () => {
      const { client, state } = window.convlens;
      await client.attribute(state.input, { kind: 'class', index: 1 }, { method: 'smoothgrad', samples: 8 }, { workers: 2 });
    });
    const wasm = urls.filter((u) => u.endsWith('.wasm'));
    assert.ok(wasm.some((u) => u.endsWith('/pkg/convlens_cpu_bg.wasm')), `the CPU engine was fetched (${wasm})`);
    assert.ok(!wasm.some((u) => u.endsWith('/pkg/convlens_webgpu_bg.wasm')), `the WebGPU engine was not (${wasm})`);
  } finally {
    await page.close();
  }
});
