// The page remembers the model across reloads (IndexedDB), bit for bit; spec errors point at the
// line; a drawn digit becomes the input; presets switch nets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKENDS, openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });

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

for (const backend of BACKENDS) {
test(`a stored state that cannot start the page is set aside, offered for download, and the defaults load, on ${backend}`, { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}&fresh`);
  try {
    // What an older version autosaved: a spec whose input wraps the browser's 32-bit sizes.
    await page.waitForFunction(() => window.convlens.state.savedAt); // this page's own autosave is done
    const hostile = '{"name":"w01","layers":[{"type":"input","width":65536,"height":65536,"depth":1},{"type":"fc","units":10},{"type":"softmax"}]}';
    await page.evaluate(async (spec) => {
      const store = await import('/www/store.js');
      await store.save('image', { spec, weights: null, seed: 1, preset: null, dataset: 'mnist5k', trainer: { method: 'sgd' } });
    }, hostile);
    await page.goto(`${ctx.server.url}?backend=${backend}`);
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    const banner = await page.textContent('#banner');
    assert.match(banner, /Your last session could not be restored \(network spec: layer 0 \(input\): its output \[1, 65536, 65536\] has 4294967296 values; this engine takes at most 67108864 per layer in the browser\); it was set aside and the defaults loaded\./);
    assert.equal(await page.getAttribute('#set-aside-download', 'download'), 'convlens-set-aside.json');
    const after = await page.evaluate(async () => {
      const store = await import('/www/store.js');
      return { summary: window.convlens.state.summary?.name, autosave: (await store.load('image'))?.spec ?? null, aside: (await store.load('set-aside'))?.spec };
    });
    assert.equal(after.summary, 'mnist-convnetjs', 'the defaults run');
    assert.notEqual(after.autosave, hostile, 'the bad state is no longer the autosave');
    assert.equal(after.aside, hostile, 'it is kept aside');
    // The next visit starts normally.
    await page.reload();
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    assert.equal(await page.evaluate(() => window.convlens.state.setAside ?? null), null);
  } finally {
    await page.close();
  }
});
}

test('two tabs: a tab never overwrites a newer save of another; it stops autosaving and says so', { timeout: 120_000 }, async () => {
  // Two tabs of one browser profile: they share IndexedDB.
  const context = await ctx.browser.newContext({ viewport: { width: 1400, height: 900 } });
  const a = await context.newPage();
  const b = await context.newPage();
  try {
    await a.goto(`${ctx.server.url}?backend=cpu&fresh`);
    await a.waitForFunction(() => window.convlens?.ready);
    await a.evaluate(() => window.convlens.ready);
    await a.waitForFunction(() => window.convlens.state.savedAt);
    // Tab B opens the model tab A saved.
    await b.goto(`${ctx.server.url}?backend=cpu`);
    await b.waitForFunction(() => window.convlens?.ready);
    await b.evaluate(() => window.convlens.ready);
    assert.equal(await b.evaluate(() => window.convlens.state.restored), true);
    await b.waitForFunction(() => window.convlens.state.savedAt); // tab B's save is now the newest
    const stored = async () => a.evaluate(async () => (await import('/www/store.js')).load('image').then((r) => ({ tab: r.tab, seed: r.seed, savedAt: r.savedAt })));
    const before = await stored();
    assert.equal(before.tab, await b.evaluate(() => window.convlens.state.tab));
    // Tab A changes its model: it must not overwrite B's newer save.
    await a.fill('#spec-seed', '11');
    await a.click('#spec-apply');
    await a.waitForFunction(() => window.convlens.state.autosavePaused, null, { timeout: 10_000 });
    assert.match(await a.textContent('#banner'), /Another tab saved its model after this one, so this tab no longer autosaves/);
    await new Promise((r) => setTimeout(r, 700));
    assert.deepEqual(await stored(), before, "tab B's save is kept");
    // Tab B goes on saving.
    const bSaved = await b.evaluate(() => window.convlens.state.savedAt);
    await b.fill('#spec-seed', '12');
    await b.click('#spec-apply');
    await b.waitForFunction((t) => window.convlens.state.savedAt > t, bSaved);
    const after = await stored();
    assert.equal(after.tab, before.tab);
    assert.ok(after.savedAt > before.savedAt, 'tab B saved again');
  } finally {
    await context.close();
  }
});
