// Your own model in the page (www/views/import.js over crates/core/src/import.rs): a Keras
// functional model as TF.js writes it (tests/fixtures/keras/graph: model.json, its shard and a
// labels file, picked together) opens on the index page, its summary names the layers, the input
// size, the normalization and the class names, and its logits are the reference's; changing the
// normalization re-imports it; a missing shard, a Keras .h5 and a labels file of the wrong length
// each give their own message and leave the net as it was; a ?model= link opens the model.json
// with its shards; the model is offered on the other pages.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { existsSync } from 'node:fs';
import { openPage, ROOT, screenshotPath, useBrowser } from './browser.mjs';
import { dataDir } from '../../scripts/serve.mjs';

const ctx = useBrowser({ webgpu: false });
const KERAS = join(ROOT, 'tests/fixtures/keras/graph');
const REF = JSON.parse(readFileSync(join(KERAS, 'reference.json'), 'utf8'));
const HAVE_PHOTOS = ['images/astronaut.png', 'tiny-vgg/img/koala_1.jpeg'].every((f) => existsSync(join(dataDir(), f)));
const CLASSES = ['apple', 'bee', 'cat', 'dog', 'eel', 'fig', 'gnu', 'hen', 'ibis', 'jay'];

let dir;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'convlens-import-'));
  for (const f of ['model.json', 'group1-shard1of1.bin']) copyFileSync(join(KERAS, f), join(dir, f));
  writeFileSync(join(dir, 'labels.txt'), `${CLASSES.join('\n')}\n`);
  writeFileSync(join(dir, 'short.txt'), 'one\ntwo\n');
  writeFileSync(join(dir, 'model.h5'), Buffer.from('\x89HDF\r\n\x1a\n....'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function relErr(got, want) {
  const scale = Math.max(...want.map(Math.abs));
  return Math.max(...got.map((g, i) => Math.abs(g - want[i]))) / scale;
}

test('the index page opens a Keras model (TF.js files and labels picked together), summarizes it, and refuses bad sets with their messages', { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  const bannerText = () => page.$eval('#banner', (b) => (b.hidden ? null : b.textContent.trim()));
  const snapshot = () => page.evaluate(() => window.convlens.state.probe.layers.map((l) => Array.from(l.act)));
  const pick = async (...files) => {
    const seq = await page.evaluate(() => window.convlens.state.seq);
    await page.evaluate(() => document.querySelector('#banner').setAttribute('hidden', ''));
    await page.setInputFiles('#model-file', files.map((f) => join(dir, f)));
    return seq;
  };
  const logits = () => page.evaluate(async (image) => {
    const { client, state } = window.convlens;
    const last = state.summary.layers.length - 1;
    return Array.from(await client.forwardBatch(Float32Array.from(image), last - 1));
  }, REF.images[0].image);
  try {
    const seq = await pick('model.json', 'group1-shard1of1.bin', 'labels.txt');
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq, { timeout: 60_000 });
    await page.waitForSelector('#import-summary:not([hidden])');
    assert.equal(await bannerText(), null);
    assert.match(await page.textContent('#status'), /^keras_graph · 7,224 params · imported from model\.json/);
    assert.match(await page.textContent('#import-summary h3'), /^keras_graph · TF\.js layers model \(tfjs-layers 4\.22\.0\)/);
    assert.equal(await page.textContent('#import-layers'), '24: scale, pad, 6 conv, batchnorm, relu6, 2 add, leaky_relu, 3 pool, concat, hard_sigmoid, tanh, dropout, globalpool, 2 fc, softmax');
    assert.equal(await page.textContent('#import-input'), '20×18 pixels (height × width), 3 channels');
    assert.match(await page.textContent('#import-norm'), /^none/);
    assert.equal(await page.textContent('#import-classes'), '10, from labels.txt: apple, bee, cat, dog, eel, …');
    assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.classNames), CLASSES);
    const e = relErr(await logits(), REF.images[0].logits);
    console.log(`Keras model in the page: logits within ${e.toExponential(1)} of the reference`);
    assert.ok(e < 1e-4, `logits off by ${e}`);
    await page.screenshot({ path: await screenshotPath('import-keras-index.png'), fullPage: true });
    const box = await page.evaluate(() => {
      const r = document.querySelector('#files').closest('section').getBoundingClientRect();
      return { x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height };
    });
    await page.screenshot({ path: await screenshotPath('import-keras-summary.png'), fullPage: true, clip: box });

    // ImageNet's normalization: a first layer (x - mean) / std; the summary says so.
    let s = await page.evaluate(() => window.convlens.state.seq);
    await page.click('#import-imagenet');
    await page.waitForFunction((v) => window.convlens.state.seq > v, s, { timeout: 60_000 });
    await page.waitForFunction(() => /set here/.test(document.querySelector('#import-norm').textContent));
    assert.match(await page.textContent('#import-norm'), /mean 0\.485, 0\.456, 0\.406 and std 0\.229, 0\.224, 0\.225 \(set here\)/);
    assert.equal(await page.evaluate(() => window.convlens.state.summary.layers[1].name), 'normalize');
    s = await page.evaluate(() => window.convlens.state.seq);
    await page.click('#import-none');
    await page.waitForFunction((v) => window.convlens.state.seq > v, s, { timeout: 60_000 });
    const before = await snapshot();

    for (const [files, want] of [
      [['model.json', 'labels.txt'], /the weight file 'group1-shard1of1\.bin' that model\.json names is missing: give it together with model\.json/],
      [['model.h5'], /model\.h5 is a Keras file; convert it for the browser with tensorflowjs_converter/],
      [['model.json', 'group1-shard1of1.bin', 'short.txt'], /the labels file has 2 class names; the model gives 10 scores/],
    ]) {
      await pick(...files);
      await page.waitForFunction(() => !document.querySelector('#banner').hidden, null, { timeout: 60_000 });
      const text = await bannerText();
      console.log(`${files.join(' + ')}: ${text}`);
      assert.match(text, new RegExp(`^Could not open ${files.join(', ').replaceAll('.', '\\.')}; the network was not changed: `));
      assert.match(text, want);
      assert.deepEqual(await snapshot(), before, `${files}: the net is unchanged`);
    }
  } finally {
    await page.close();
  }
});

test('a ?model= link opens a TF.js model.json with its shards and labels', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu&model=tests/fixtures/keras/graph/model.json');
  try {
    await page.waitForFunction(() => window.convlens.state.started && window.convlens.state.summary, null, { timeout: 60_000 });
    assert.equal(await page.evaluate(() => window.convlens.state.linkError ?? null), null);
    assert.match(await page.textContent('#status'), /imported from model\.json/);
    assert.match(await page.textContent('#import-summary h3'), /TF\.js layers model/);
    assert.match(await page.evaluate(() => location.search), /model=tests%2Ffixtures%2Fkeras%2Fgraph%2Fmodel\.json/);
  } finally {
    await page.close();
  }
});

test('every page offers the model opened on another, and a drop opens one there', { timeout: 300_000, skip: !HAVE_PHOTOS && `no photos in the data directory (${dataDir()}: images/, tiny-vgg/img/)` }, async () => {
  // Opened on the index page: kept in IndexedDB for every page (of one browser profile).
  const context = await ctx.browser.newContext({ viewport: { width: 1400, height: 900 } });
  const index = await openPage(context, ctx.server.url, '?backend=cpu');
  const seq = await index.evaluate(() => window.convlens.state.seq);
  await index.setInputFiles('#model-file', ['model.json', 'group1-shard1of1.bin', 'labels.txt'].map((f) => join(dir, f)));
  await index.waitForFunction((s) => window.convlens.state.seq > s, seq, { timeout: 60_000 });
  await index.waitForSelector('#import-summary:not([hidden])');
  await index.close();
  for (const [html, check] of [
    ['attribution.html', async (page) => {
      // Its maps on the data directory's photos, and occlusion with a patch for its size.
      await page.evaluate(() => window.convlens.refresh());
      const r = await page.evaluate(() => Object.fromEntries(Object.entries(window.convlens.state.results).map(([k, v]) => [k, Array.from(v.map).every(Number.isFinite) && v.map.length])));
      console.log(`attribution page, your model: ${JSON.stringify(r)}`);
      for (const m of ['gradient', 'deconvnet', 'guided', 'gradient-x-input', 'smoothgrad', 'integrated-gradients']) assert.equal(r[m], 3 * 20 * 18, m);
      assert.ok(r['grad-cam'] > 0, 'grad-cam');
      await page.waitForFunction(() => /positions/.test(document.getElementById('occ-text').textContent) && window.convlens.state.occlusionState?.done === window.convlens.state.occlusionState?.total, null, { timeout: 120_000 });
      await page.screenshot({ path: await screenshotPath('import-keras-attribution.png'), fullPage: true });
      await assert.rejects(page.evaluate(() => window.convlens.embedCode()), /your own model lives in this browser only/);
    }],
    ['dataset.html', async (page) => {
      assert.match(await page.textContent('#data-info'), /photos from the data directory/);
    }],
    ['optimize.html', async (page) => {
      assert.ok(await page.evaluate(() => window.convlens.state.image?.length === 3 * 20 * 18));
    }],
  ]) {
    const page = await openPage(context, ctx.server.url, `${html}?backend=cpu`);
    try {
      await page.evaluate(() => window.convlens.ready);
      assert.equal(await page.$eval('#net-select option[value="user"]', (o) => o.textContent), 'Your model: keras_graph');
      await page.evaluate(() => window.convlens.selectNet('user'));
      assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.layers[0].shape), [3, 20, 18]);
      assert.equal(await page.evaluate(() => window.convlens.state.classNames[0]), 'apple');
      assert.match(await page.textContent('#import-summary h3'), /keras_graph/);
      await check(page);
      console.log(`${html}: your model loads and runs`);
    } finally {
      await page.close();
    }
  }
  // A link to the attribution page with a model (course materials): offered and selected, not kept.
  const linked = await openPage(await ctx.browser.newContext(), ctx.server.url,
    'attribution.html?backend=cpu&model=tests/fixtures/keras/graph/model.json&labels=tests/fixtures/keras/graph/labels.txt');
  try {
    assert.equal(await linked.evaluate(() => window.convlens.state.net), 'user');
    assert.equal(await linked.evaluate(() => window.convlens.state.classNames[9]), 'jay');
    assert.equal(await linked.evaluate(async () => (await window.convlens.state.summary.layers.length)), 25);
    assert.equal(await linked.evaluate(async () => !!(await (await import('./www/views/import.js')).storedModel())), false);
  } finally {
    await linked.context().close();
  }
  // A drop on the optimize page (the Keras files, without labels this time).
  const page = await openPage(await ctx.browser.newContext(), ctx.server.url, 'optimize.html?backend=cpu');
  try {
    await page.evaluate(() => window.convlens.ready);
    const files = [['model.json', 'application/json'], ['group1-shard1of1.bin', 'application/octet-stream']].map(([n, type]) => ({ n, type, b64: readFileSync(join(dir, n)).toString('base64') }));
    await page.evaluate((files) => {
      const dt = new DataTransfer();
      for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.n, { type: f.type }));
      document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, files);
    await page.waitForFunction(() => window.convlens.state.net === 'user' && window.convlens.state.image, null, { timeout: 60_000 });
    assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.layers[0].shape), [3, 20, 18]);
    // Without labels this time: numbered classes.
    assert.match(await page.textContent('#import-classes'), /^10, numbered 0–9/);
  } finally {
    await page.context().close();
    await context.close();
  }
});
