// Bad specs give their exact message in the page and the network stays; the backend switch keeps
// the numbers the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKENDS, openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });

const bannerText = (page) => page.$eval('#banner', (b) => (b.hidden ? null : b.textContent.trim()));

async function applySpec(page, text) {
  const seq = await page.evaluate(() => window.convlens.state.seq);
  await page.fill('#spec-text', text);
  await page.click('#spec-apply');
  await page.waitForFunction(() => !document.querySelector('#spec-apply').disabled);
  return seq;
}

for (const backend of BACKENDS) {
test(`malformed and oversized specs: exact message in the page, previous network kept, nothing autosaved, on ${backend}`, { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
  try {
    const original = await page.evaluate(() => window.convlens.state.spec);
    const panels = await page.$$eval('.layer-panel', (p) => p.length);
    const cases = [
      [original.replace('"filters": 8', '"filters": -3'), "layer 1 (conv): field 'filters': expected a positive integer, got -3"],
      [original.replace('"size": 5, "filters": 16', '"size": 5, "fitlers": 16'), "layer 3 (conv): field 'filters': missing; expected an integer"],
      [original.replace('"type": "pool", "name": "pool2"', '"type": "pooling", "name": "pool2"'), 'layer 4 (pooling): field \'type\': unknown layer type "pooling"'],
      [original.replace('"size": 3, "stride": 3', '"size": 30, "stride": 3'), "layer 4 (pool): field 'size': the 30x30 window does not fit the 12x12 input; expected at most 12"],
      ['{ "layers": [', 'network spec: not valid JSON'],
      // The sizes that wrapped the browser's 32-bit arithmetic or exhausted its memory.
      ['{"name":"w01","layers":[{"type":"input","width":65536,"height":65536,"depth":1},{"type":"fc","units":10},{"type":"softmax"}]}',
        'layer 0 (input): its output [1, 65536, 65536] has 4294967296 values; this engine takes at most 67108864 per layer in the browser'],
      ['{"layers":[{"type":"input","width":4096,"height":4096,"depth":3},{"type":"conv","size":1,"filters":257},{"type":"fc","units":10},{"type":"softmax"}]}',
        'has 4311744512 values; this engine takes at most 67108864 per layer in the browser'],
      ['{"layers":[{"type":"input","width":28,"height":28,"depth":1},{"type":"fc","units":16777216},{"type":"softmax"}]}',
        'takes the network past 268435456 parameters, the most this engine takes in the browser'],
      ['{"layers":[{"type":"input","width":8,"height":8,"depth":1},{"type":"conv","size":3,"filters":8,"filters":64},{"type":"fc","units":2},{"type":"softmax"}]}',
        'the key "filters" is given twice in one object'],
      ['{"layers":[{"type":"input","width":8,"height":8,"depth":1},{"type":"fc","units":2},{"type":"softmax"},{"type":"softmax"}]}',
        'a softmax may only be the last layer (the class scores are read before it)'],
    ];
    for (const [text, message] of cases) {
      await applySpec(page, text);
      const banner = await bannerText(page);
      assert.ok(banner?.includes(message), `banner ${JSON.stringify(banner)} should include ${JSON.stringify(message)}`);
      assert.equal(await page.$$eval('.layer-panel', (p) => p.length), panels, 'the previous network stays');
      assert.equal(await page.evaluate(() => window.convlens.state.spec), original);
    }
    const stored = await page.evaluate(async () => (await import('/www/store.js')).load('image').then((r) => r?.spec ?? null));
    assert.ok(stored === null || stored === original, 'no refused spec was autosaved');
    // A good spec after the bad ones loads and probes.
    const seq = await applySpec(page, original.replace('"filters": 8', '"filters": 4'));
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
    assert.equal(await bannerText(page), null);
    assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.layers[1].shape), [4, 24, 24]);
  } finally {
    await page.close();
  }
});
}

test('switching CPU -> WebGPU keeps the numbers', { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  try {
    const snapshot = () => page.evaluate(() => {
      const p = window.convlens.state.probe;
      return { objective: p.objective, layers: p.layers.map((l) => [Array.from(l.act), Array.from(l.grad)]) };
    });
    const before = await snapshot();
    const seq = await page.evaluate(() => window.convlens.state.seq);
    await page.click('#backend-switch');
    await page.waitForFunction((s) => window.convlens.state.seq > s && window.convlens.state.backend === 'webgpu', seq, { timeout: 120_000 });
    assert.equal(await page.textContent('#backend-badge'), 'WebGPU');
    const after = await snapshot();
    assert.ok(Math.abs(after.objective - before.objective) <= 1e-4 * Math.max(1, Math.abs(before.objective)));
    before.layers.forEach(([act, grad], i) => {
      for (const [what, a, b] of [['act', act, after.layers[i][0]], ['grad', grad, after.layers[i][1]]]) {
        const scale = Math.max(1, ...a.map(Math.abs));
        const diff = Math.max(...a.map((v, k) => Math.abs(v - b[k])));
        assert.ok(diff <= 1e-4 * scale, `layer ${i} ${what}: max diff ${diff}`);
      }
    });
  } finally {
    await page.close();
  }
});
