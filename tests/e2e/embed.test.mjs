// <convlens-view> (www/convlens-view.js): elements on an ordinary page share one engine worker,
// each a session of its own; attributes pick the net, the view and its settings (clamped by the
// engine); an element starts only when it comes near the viewport and its runs pause while it is
// out of view; `ready` and `change` events, `el.state`, `el.run()`.
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

async function open(path) {
  const page = await ctx.browser.newPage({ viewport: { width: 900, height: 900 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${ctx.server.url}${path}`);
  return { page, errors };
}

/** An element's state, typed arrays as arrays. */
function stateOf(page, id) {
  return page.evaluate((id) => {
    const s = document.getElementById(id).state;
    if (!s) return null;
    const plain = (o) => (o && typeof o === 'object' && !Array.isArray(o)
      ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, ArrayBuffer.isView(v) ? Array.from(v) : plain(v)])) : o);
    return plain(s);
  }, id);
}

test('elements share one worker, take their settings from attributes, and start near the viewport', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('tests/e2e/fixtures/embed.html');
  try {
    // The two autorun views run to their ends.
    await page.waitForFunction(() => document.getElementById('line').state?.done && document.getElementById('patches').state?.done, null, { timeout: 120_000 });
    const line = await stateOf(page, 'line');
    assert.equal(line.landscape.slice, 'line');
    assert.equal(line.landscape.axis.length, 9, 'points="9"');
    assert.equal(line.landscape.images, 32, 'images="32"');
    const patches = await stateOf(page, 'patches');
    assert.equal(patches.patches.layer, 1, 'layer="1"');
    assert.equal(patches.step, 300, 'images="300"');
    // One engine worker for all of them, and the worker pool's helpers (one per other core, shared
    // by the elements) that the loss surface's parts run on.
    const cores = await page.evaluate(() => Math.min(8, navigator.hardwareConcurrency));
    assert.ok(page.workers().length <= cores, `workers: ${page.workers().map((w) => w.url())}`);
    const sessions = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.client?.session ?? null));
    assert.equal(new Set(sessions.filter(Boolean)).size, 3, `three sessions: ${sessions}`);
    // The element far below has not started.
    assert.equal(sessions[3], null, 'the element out of view waits');
    // controls="none" hides the form; controls="layer" keeps only the layer.
    assert.equal(await page.evaluate(() => document.getElementById('line').shadowRoot.querySelector('.form').hidden), true);
    const shown = await page.evaluate(() => [...document.getElementById('patches').shadowRoot.querySelectorAll('label.field')].filter((l) => !l.hidden).map((l) => l.dataset.key));
    assert.deepEqual(shown, ['layer']);
    // A visualization run through the element's API: 30 steps (steps="30"), an image of the digit.
    // It is below the fold, so its requests wait (paused) until it is scrolled into view.
    assert.equal(await page.evaluate(() => document.getElementById('vis').client.paused), true, 'paused out of view');
    await page.locator('#vis').scrollIntoViewIfNeeded();
    await page.evaluate(() => document.getElementById('vis').run());
    const vis = await stateOf(page, 'vis');
    assert.ok(vis.done, 'the visualization ran to its end');
    assert.equal(vis.total, 30, 'steps="30"');
    assert.equal(vis.images[0].data.length, 24 * 24);
    assert.match(await page.evaluate(() => document.getElementById('vis').shadowRoot.querySelector('#vis-class').value), /^3: /, 'target="class:3"');
    await page.screenshot({ path: await screenshotPath('embed-vis.png'), fullPage: false });

    // Scrolled to, the far element starts, runs, and pauses when scrolled away.
    await page.locator('#far').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.getElementById('far').state?.done, null, { timeout: 120_000 });
    const far = await stateOf(page, 'far');
    assert.equal(far.landscape.loss.length, 25);
    assert.ok(page.workers().length <= cores, 'still one worker and the pool');
    assert.deepEqual(unexpected(errors), [], 'no console errors');
  } finally {
    await page.close();
  }
});

/** The worker's wasm memory once every element of a page is ready (bytes). */
async function memoryOf(path) {
  const { page, errors } = await open(path);
  await page.setViewportSize({ width: 900, height: 8000 });
  try {
    await page.waitForFunction(() => [...document.querySelectorAll('convlens-view')].every((e) => e.ready), null, { timeout: 60_000 });
    await page.evaluate(() => Promise.all([...document.querySelectorAll('convlens-view')].map((e) => e.ready)));
    const m = await page.evaluate(() => document.querySelector('convlens-view').client.request('memory'));
    assert.equal(page.workers().length, 1);
    assert.deepEqual(unexpected(errors), []);
    return m.wasmBytes;
  } finally {
    await page.close();
  }
}

test('six elements on one page take at most 1.5 times the memory of one: one worker, the dataset decoded once', { timeout: 300_000 }, async () => {
  const one = await memoryOf('tests/e2e/fixtures/embed-one.html');
  const six = await memoryOf('tests/e2e/fixtures/embed-six.html');
  console.log(`wasm memory: one element ${(one / 2 ** 20).toFixed(1)} MiB, six elements ${(six / 2 ** 20).toFixed(1)} MiB (${(six / one).toFixed(2)}x)`);
  assert.ok(six <= 1.5 * one, `six elements take ${six} bytes, one ${one}`);
});

test('the dataset page\'s "Copy embed code" shows the same view with the same numbers in another page', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('dataset.html?backend=cpu#view=landscape&net=mnist&kind=line&points=9&images=32');
  let code;
  let want;
  try {
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    await page.waitForFunction(() => window.convlens.views[2].state?.done, null, { timeout: 120_000 });
    want = await page.evaluate(() => Array.from(window.convlens.views[2].state.landscape.loss));
    await page.click('#share-embed');
    code = await page.inputValue('#share-code');
    const tagText = code.slice(code.indexOf('<convlens-view'));
    for (const a of ['net="mnist"', 'view="landscape"', 'kind="line"', 'points="9"', 'images="32"']) assert.ok(tagText.includes(a), `${a} in ${tagText}`);
    assert.ok(!tagText.includes('seeds='), `only the settings that differ from their defaults: ${tagText}`);
    assert.match(code, /<script type="module" src="http:\/\/localhost:\d+\/www\/convlens-view\.js"><\/script>/);
    await page.click('#share-iframe');
    assert.match(await page.inputValue('#share-code'), /<iframe src="http:\/\/localhost:\d+\/dataset\.html\?backend=cpu#view=landscape&amp;net=mnist&amp;kind=line/);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await page.close();
  }
  // The code in a page of its own: the element, run, gives the same losses.
  const other = await open('tests/e2e/fixtures/blank.html');
  try {
    const src = code.match(/src="([^"]+)"/)[1];
    const tag = code.slice(code.indexOf('<convlens-view'));
    await other.page.evaluate(async ({ src, tag }) => {
      await import(src);
      document.getElementById('host').innerHTML = tag;
    }, { src, tag });
    await other.page.evaluate(() => document.querySelector('convlens-view').run());
    const got = await other.page.evaluate(() => Array.from(document.querySelector('convlens-view').state.landscape.loss));
    assert.equal(got.length, 9);
    for (let i = 0; i < 9; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-6 * Math.max(1, want[i]), `point ${i}: ${got[i]} vs ${want[i]}`);
    assert.deepEqual(unexpected(other.errors), []);
  } finally {
    await other.page.close();
  }
});

/** The attribution page's numbers once its maps and occlusion are done: {maps: {method: abs}, grid, image}. */
async function attributionNumbers(page) {
  await page.evaluate(() => window.convlens.refresh());
  await page.waitForFunction(() => window.convlens.state.occlusionState && !window.convlens.occlusion.busy(), null, { timeout: 120_000 });
  return page.evaluate(() => {
    const { state } = window.convlens;
    return {
      maps: Object.fromEntries(Object.entries(state.results).map(([k, r]) => [k, Array.from(r.abs)])),
      grid: Array.from(state.occlusionState.grid),
      occClass: state.occlusionState.class,
      image: state.imageIndex,
      target: state.target,
    };
  });
}

test('the attribution page\'s link and embed code reproduce its image, target, settings and numbers', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('attribution.html?backend=cpu');
  let want;
  let link;
  let code;
  try {
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    // The fourth example digit, the probability of class 2, SmoothGrad's noise 0.3, a 5-pixel patch.
    await page.click('#samples .sample:nth-child(4)');
    await page.selectOption('#target-kind', 'prob');
    await page.selectOption('#target-class', '2');
    await page.fill('#sg-noise', '0.3');
    await page.dispatchEvent('#sg-noise', 'change');
    await page.fill('#occ-window', '5');
    await page.dispatchEvent('#occ-window', 'change');
    want = await attributionNumbers(page);
    link = page.url();
    assert.match(link, /#net=mnist&image=3&target=prob%3A2&noise=0\.3&.*window=5/);
    await page.click('#share-embed');
    code = await page.inputValue('#share-code');
    for (const a of ['view="attribution"', 'image="3"', 'target="prob:2"', 'noise="0.3"', 'view="occlusion"', 'window="5"']) assert.ok(code.includes(a), `${a} in ${code}`);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await page.close();
  }
  // The link in a new browser (a fresh context: nothing shared but the URL) shows the same numbers.
  const fresh = await ctx.browser.newContext({ viewport: { width: 900, height: 900 } });
  try {
    const again = await fresh.newPage();
    await again.goto(link);
    await again.waitForFunction(() => window.convlens?.ready);
    await again.evaluate(() => window.convlens.ready);
    const got = await attributionNumbers(again);
    assert.equal(got.image, 3);
    assert.deepEqual(got.target, { kind: 'prob', index: 2 });
    assert.deepEqual(Object.keys(got.maps).sort(), Object.keys(want.maps).sort());
    for (const [m, v] of Object.entries(want.maps)) assert.deepEqual(got.maps[m], v, `${m}: the same map`);
    assert.deepEqual(got.grid, want.grid, 'the same occlusion grid');
  } finally {
    await fresh.close();
  }
  // The embed code in a page of its own: the same maps and the same occlusion grid.
  const other = await open('tests/e2e/fixtures/blank.html');
  try {
    const src = code.match(/src="([^"]+)"/)[1];
    const tags = code.slice(code.indexOf('<convlens-view'));
    await other.page.evaluate(async ({ src, tags }) => {
      await import(src);
      document.getElementById('host').innerHTML = tags;
    }, { src, tags });
    await other.page.waitForFunction(() => [...document.querySelectorAll('convlens-view')].every((e) => e.state?.done), null, { timeout: 120_000 });
    const got = await other.page.evaluate(() => {
      const [a, o] = document.querySelectorAll('convlens-view');
      return { maps: Object.fromEntries(Object.entries(a.state.results).map(([k, r]) => [k, Array.from(r.abs)])), grid: Array.from(o.state.grid), occClass: o.state.class };
    });
    for (const [m, v] of Object.entries(want.maps)) {
      const worst = v.reduce((w, x, i) => Math.max(w, Math.abs(x - got.maps[m][i])), 0);
      assert.ok(worst <= 1e-6, `${m}: the element's map differs by ${worst}`);
    }
    assert.equal(got.occClass, want.occClass);
    assert.deepEqual(got.grid, want.grid, 'the element\'s occlusion grid');
    assert.deepEqual(unexpected(other.errors), []);
  } finally {
    await other.page.close();
  }
});

test('the optimize page\'s link and embed code reproduce its image, its view\'s settings and its result', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('optimize.html?backend=cpu&net=mnist&view=visualize');
  const result = (p) => p.evaluate(async () => {
    const v = window.convlens.panels.find((x) => x.key === 'visualize');
    await v.start();
    return Array.from(v.state.images[0].data);
  });
  let want;
  let link;
  let code;
  try {
    await page.waitForFunction(() => window.convlens?.ready);
    await page.evaluate(() => window.convlens.ready);
    await page.click('#samples .sample:nth-child(3)');
    await page.waitForFunction(() => window.convlens.state.imageIndex === 2);
    // Class 3, 25 steps, some L2 and blur: through the panel's controls.
    await page.fill('#vis-class', '3: 3');
    await page.fill('#view-visualize [data-key="steps"] input', '25');
    await page.fill('#view-visualize [data-key="l2"] input', '0.01');
    await page.dispatchEvent('#view-visualize [data-key="l2"] input', 'change');
    want = await result(page);
    link = page.url();
    assert.match(link, /view=visualize&net=mnist&image=2&.*cls=3%3A\+3.*steps=25.*l2=0\.01/);
    await page.click('#share-embed');
    code = await page.inputValue('#share-code');
    for (const a of ['view="visualize"', 'image="2"', 'cls="3: 3"', 'steps="25"', 'l2="0.01"']) assert.ok(code.includes(a), `${a} in ${code}`);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await page.close();
  }
  const fresh = await ctx.browser.newContext({ viewport: { width: 1200, height: 900 } });
  try {
    const again = await fresh.newPage();
    await again.goto(link);
    await again.waitForFunction(() => window.convlens?.ready);
    await again.evaluate(() => window.convlens.ready);
    assert.equal(await again.evaluate(() => window.convlens.state.imageIndex), 2);
    assert.deepEqual(await result(again), want, 'the link gives the same picture');
  } finally {
    await fresh.close();
  }
  const other = await open('tests/e2e/fixtures/blank.html');
  try {
    const src = code.match(/src="([^"]+)"/)[1];
    const tag = code.slice(code.indexOf('<convlens-view'));
    await other.page.evaluate(async ({ src, tag }) => {
      await import(src);
      document.getElementById('host').innerHTML = tag;
    }, { src, tag });
    await other.page.evaluate(() => document.querySelector('convlens-view').run());
    const got = await other.page.evaluate(() => Array.from(document.querySelector('convlens-view').state.images[0].data));
    const worst = got.reduce((w, v, i) => Math.max(w, Math.abs(v - want[i])), 0);
    assert.ok(got.length === want.length && worst <= 1e-6, `the element's picture differs by ${worst}`);
    assert.deepEqual(unexpected(other.errors), []);
  } finally {
    await other.page.close();
  }
});
