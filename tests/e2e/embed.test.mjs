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
    // Both elements in view: one out of view pauses (the maps above push the occlusion panel down).
    await other.page.setViewportSize({ width: 900, height: 2400 });
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

/** The image classifier page's picture in numbers: each layer's activation and gradient sums, the objective, the trainer. */
const layerNumbers = (page) => page.evaluate(async () => {
  const c = window.convlens;
  await c.refresh();
  const sum = (v) => v.reduce((a, x) => a + x, 0);
  return {
    sums: c.state.probe.layers.map((l) => [sum(l.act), sum(l.grad)]),
    objective: c.state.autoObjective ? null : c.state.objective,
    index: c.state.inputRef?.index ?? null,
    dataset: c.state.dataset?.name,
    learningRate: c.state.trainer.learningRate,
  };
});
const close = (a, b, tol = 1e-6) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a));

test('the image classifier page\'s link and embed code reproduce its network, image, objective, settings and numbers', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('?backend=cpu&fresh');
  let want;
  let link;
  let code;
  try {
    await page.waitForFunction(() => Boolean(window.convlens?.ready));
    await page.evaluate(() => window.convlens.ready);
    // Test image 7, the mean of layer 1's channel 2 as the objective, a learning rate of 0.005.
    await page.click('#testgrid .test-cell[data-index="7"]');
    await page.waitForFunction(() => window.convlens.state.inputRef?.index === 7);
    await page.locator('#layers .tile-title.clickable').nth(2).click();
    await page.waitForFunction(() => window.convlens.state.objective?.kind === 'channel');
    await page.fill('#trainer-learningRate', '0.005');
    await page.dispatchEvent('#trainer-learningRate', 'change');
    await page.waitForFunction(() => window.convlens.state.trainer.learningRate === 0.005);
    want = await layerNumbers(page);
    assert.deepEqual(want.objective, { kind: 'channel', layer: 1, channel: 2 });
    link = page.url();
    assert.match(link, /\?backend=cpu&preset=mnist&dataset=mnist5k&index=7&objective=channel%3A1%3A2&learningRate=0\.005$/);
    await page.click('#share-embed');
    code = await page.inputValue('#share-code');
    for (const a of ['net="mnist"', 'dataset="mnist5k"', 'view="layers"', 'image="7"', 'target="channel:1:2"']) assert.ok(code.includes(a), `${a} in ${code}`);
    // Training changes the weights: the address bar stops naming the preset (a reload restores
    // the autosave), the shared link still names it and says the trained weights stay here.
    await page.click('#train-step');
    await page.waitForFunction(() => !location.search.includes('preset='));
    assert.match(await page.evaluate(() => window.convlens.shareLink()), /preset=mnist/);
    assert.match(await page.textContent('#share-note'), /not the weights trained here/);
    await page.click('#share-embed');
    await page.waitForFunction(() => /preset's own weights/.test(document.getElementById('banner').textContent));
    assert.deepEqual(unexpected(errors).filter((e) => !/Cannot embed/.test(e)), []);
  } finally {
    await page.close();
  }
  const fresh = await ctx.browser.newContext({ viewport: { width: 1200, height: 900 } });
  try {
    const again = await fresh.newPage();
    await again.goto(link);
    await again.waitForFunction(() => Boolean(window.convlens?.ready));
    await again.evaluate(() => window.convlens.ready);
    const got = await layerNumbers(again);
    assert.deepEqual({ ...got, sums: null }, { ...want, sums: null });
    assert.deepEqual(got.sums, want.sums, 'the link gives the same activations and gradients');
    // A network typed into the Network box travels as its spec and seed: the same random weights.
    const spec = await again.evaluate(() => window.convlens.state.spec.replace(/"filters":\s*8,/, '"filters": 6,'));
    assert.ok(spec.includes('"filters": 6,'), 'the spec changed');
    await again.fill('#spec-text', spec);
    await again.fill('#spec-seed', '3');
    await again.click('#spec-apply');
    await again.waitForFunction(() => window.convlens.state.from?.seed === 3 && location.search.includes('seed=3'));
    const wantSpec = await layerNumbers(again);
    const specLink = again.url();
    assert.match(specLink, /spec=.*&seed=3/);
    const third = await (await ctx.browser.newContext()).newPage();
    await third.goto(specLink);
    await third.waitForFunction(() => Boolean(window.convlens?.ready));
    await third.evaluate(() => window.convlens.ready);
    assert.deepEqual((await layerNumbers(third)).sums, wantSpec.sums, 'the spec link gives the same random weights');
    await third.context().close();
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
    await other.page.waitForFunction(() => document.querySelector('convlens-view').state?.done, null, { timeout: 120_000 });
    const s = await other.page.evaluate(() => document.querySelector('convlens-view').state);
    assert.deepEqual(s.objective, want.objective);
    assert.equal(s.sums.length, want.sums.length);
    s.sums.forEach(([a, g], i) => {
      assert.ok(close(a, want.sums[i][0]) && close(g, want.sums[i][1]), `layer ${i}: the element's sums ${a}, ${g} vs the page's ${want.sums[i]}`);
    });
    assert.deepEqual(unexpected(other.errors), []);
  } finally {
    await other.page.close();
  }
});

test('the 2-D classifier page\'s link and embed code reproduce its points, network, settings and initial picture', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('2d.html?backend=cpu&paused');
  // The net's class probabilities on a grid of the plane, and the points.
  const numbers = (p) => p.evaluate(async () => {
    const c = window.convlens;
    const g = [];
    for (let i = -5; i <= 5; i++) for (let j = -5; j <= 5; j++) g.push(i, j);
    const probs = await c.client.forwardBatch(Float32Array.from(g), c.state.summary.layers.length - 1);
    return { probs: Array.from(probs), points: c.state.points, labels: c.state.labels, toy: c.state.toy, seed: c.state.seed, learningRate: c.state.trainer.learningRate, warp: [c.state.warpLayer, c.state.d0, c.state.d1] };
  });
  let want;
  let link;
  let code;
  try {
    await page.waitForFunction(() => Boolean(window.convlens?.ready));
    await page.evaluate(() => window.convlens.ready);
    await page.selectOption('#dataset', 'spiral');
    await page.waitForFunction(() => window.convlens.state.toy === 'spiral' && location.search.includes('toy=spiral'));
    await page.click('#toy-new');
    await page.waitForFunction(() => window.convlens.state.seed === 2);
    // A hand-placed point (shift-click: class 1) and another network seed.
    const box = await page.locator('#regions').boundingBox();
    await page.locator('#regions').click({ position: { x: box.width * 0.7, y: box.height * 0.3 }, modifiers: ['Shift'] });
    await page.waitForFunction(() => location.search.includes('points='));
    await page.fill('#spec-seed', '4');
    await page.click('#spec-apply');
    await page.waitForFunction(() => window.convlens.state.netSeed === 4);
    await page.fill('#trainer-learningRate', '0.03');
    await page.dispatchEvent('#trainer-learningRate', 'change');
    await page.selectOption('#warp-layer', '1');
    await page.selectOption('#warp-d1', '2');
    await page.waitForFunction(() => location.search.includes('warp='));
    want = await numbers(page);
    link = page.url();
    for (const p of ['toy=spiral', 'toySeed=2', 'points=', 'seed=4', 'learningRate=0.03', 'warp=', 'paused']) assert.ok(link.includes(p), `${p} in ${link}`);
    await page.click('#share-embed');
    code = await page.inputValue('#share-code');
    for (const a of ['view="toy2d"', 'toy="spiral"', 'toy-seed="2"', 'points="', 'seed="4"', 'learning-rate="0.03"', 'warp="1:0:2"']) assert.ok(code.includes(a), `${a} in ${code}`);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await page.close();
  }
  const fresh = await ctx.browser.newContext({ viewport: { width: 1200, height: 900 } });
  try {
    const again = await fresh.newPage();
    const errs = [];
    again.on('console', (m) => { if (m.type() === 'error') errs.push(m.text()); });
    await again.goto(link);
    await again.waitForFunction(() => Boolean(window.convlens?.ready));
    await again.evaluate(() => window.convlens.ready);
    assert.deepEqual(await numbers(again), want, 'the same points, network and picture');
    assert.equal(again.url(), link, 'the page writes back the link it was given');
    // A hand-edited link with bad points and a bad warp keeps the page working and says why.
    await again.goto(link.replace(/points=[^&]*/, 'points=1,2,7').replace(/warp=[^&]*/, 'warp=9:9:9'));
    await again.waitForFunction(() => Boolean(window.convlens?.ready));
    await again.evaluate(() => window.convlens.ready);
    assert.match(await again.textContent('#banner'), /points are not x,y,label triples.*warp '9:9:9'/s);
    assert.equal(await again.evaluate(() => window.convlens.state.toy), 'spiral');
    assert.deepEqual(errs, []);
  } finally {
    await fresh.close();
  }
  // The embed code: the same points, settings and probabilities in an element.
  const other = await open('tests/e2e/fixtures/blank.html');
  try {
    const src = code.match(/src="([^"]+)"/)[1];
    const tag = code.slice(code.indexOf('<convlens-view'));
    await other.page.evaluate(async ({ src, tag }) => {
      await import(src);
      document.getElementById('host').innerHTML = tag;
      await new Promise((resolve) => document.querySelector('convlens-view').addEventListener('ready', resolve, { once: true }));
    }, { src, tag });
    const got = await other.page.evaluate(async () => {
      const e = document.querySelector('convlens-view');
      const s = e.state;
      const g = [];
      for (let i = -5; i <= 5; i++) for (let j = -5; j <= 5; j++) g.push(i, j);
      const probs = await e.client.forwardBatch(Float32Array.from(g), s.summary.layers.length - 1);
      return { probs: Array.from(probs), points: s.points, labels: s.labels, toy: s.toy, seed: s.seed, learningRate: s.trainer.learningRate, warp: [s.warpLayer, s.d0, s.d1], examples: s.examples };
    });
    assert.equal(got.examples, 0, 'no autorun: it waits for Train');
    delete got.examples;
    assert.deepEqual(got, want, 'the element: the same points, network and picture');
    assert.deepEqual(unexpected(other.errors), []);
  } finally {
    await other.page.close();
  }
});

test('an element opens a network by URL (a spec with its weights, a .safetensors, a TF.js model) and names a file that is none of them', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('tests/e2e/fixtures/blank.html');
  try {
    const src = `${ctx.server.url}www/convlens-view.js`;
    await page.evaluate(async (src) => {
      await import(src);
      const nets = `${location.origin}/www/nets/`;
      document.getElementById('host').innerHTML = `
        <convlens-view id="preset" net="mnist5k" dataset="mnist5k" view="layers" image="7" autorun></convlens-view>
        <convlens-view id="spec" net="${nets}mnist.json" weights="${nets}mnist5k.safetensors" dataset="mnist5k" view="layers" image="7" autorun></convlens-view>
        <convlens-view id="st" net="${nets}mnist5k.safetensors" dataset="mnist5k" view="layers" image="7" autorun></convlens-view>
        <convlens-view id="bad" net="${location.origin}/www/icon.svg" view="layers"></convlens-view>`;
    }, src);
    // Each in view in turn (an element out of view holds its requests).
    const done = async (ids) => {
      for (const id of ids) {
        await page.locator(`#${id}`).scrollIntoViewIfNeeded();
        await page.waitForFunction((id) => document.getElementById(id).state?.done, id, { timeout: 120_000 });
      }
    };
    await done(['preset', 'spec', 'st']);
    const sums = await page.evaluate(() => ['preset', 'spec', 'st'].map((id) => document.getElementById(id).state.sums));
    assert.deepEqual(sums[1], sums[0], 'spec + weights by URL: the preset\'s numbers');
    assert.deepEqual(sums[2], sums[0], 'a .safetensors with its spec inside: the same');
    await page.locator('#bad').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.getElementById('bad').shadowRoot.querySelector('.cl-status.error'));
    const message = await page.evaluate(() => document.getElementById('bad').shadowRoot.querySelector('.cl-status').textContent);
    assert.match(message, /icon\.svg is not a model ConvLens opens: give a \.onnx, a TF\.js model\.json with its \.bin files, a \.tflite/);
    // CNN Explainer's Tiny VGG by its model.json's URL: the built-in tiny-vgg's numbers.
    if (existsSync(join(dataDir(), 'tiny-vgg', 'model.json'))) {
      await page.evaluate(() => {
        const img = `${location.origin}/data/tiny-vgg/img/koala_1.jpeg`;
        document.getElementById('host').insertAdjacentHTML('afterbegin', `
          <convlens-view id="tv" net="tiny-vgg" view="layers" image="${img}" autorun></convlens-view>
          <convlens-view id="tvurl" net="${location.origin}/data/tiny-vgg/model.json" view="layers" image="${img}" autorun></convlens-view>`);
      });
      await done(['tv', 'tvurl']);
      const [a, b] = await page.evaluate(() => ['tv', 'tvurl'].map((id) => document.getElementById(id).state.sums));
      assert.deepEqual(b, a, 'Tiny VGG by URL: the same numbers');
    } else console.log('skipped: Tiny VGG by URL (no tiny-vgg/ in the data directory)');
    assert.deepEqual(errors.filter((e) => !/icon\.svg is not a/.test(e)), []);
  } finally {
    await page.close();
  }
});

test('a training element takes the trainer\'s settings from attributes, trains, and its test grid follows', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('tests/e2e/fixtures/blank.html');
  try {
    await page.evaluate(async (src) => {
      await import(src);
      document.getElementById('host').innerHTML = '<convlens-view id="t" view="train" net="mnist5k" dataset="mnist5k" learning-rate="0.02" batch-size="10" method="sgd"></convlens-view>';
      const t = document.getElementById('t');
      window.changes = [];
      t.addEventListener('change', (e) => window.changes.push(e.detail.settings));
      await new Promise((resolve) => t.addEventListener('ready', resolve, { once: true }));
    }, `${ctx.server.url}www/convlens-view.js`);
    const before = await page.evaluate(() => document.getElementById('t').state);
    assert.deepEqual([before.trainer.learningRate, before.trainer.batchSize, before.trainer.method], [0.02, 10, 'sgd']);
    assert.equal(before.examples, 0);
    await page.evaluate(() => document.getElementById('t').run());
    await page.waitForFunction(() => document.getElementById('t').state.examples >= 2000, null, { timeout: 120_000 });
    await page.evaluate(() => document.getElementById('t').shadowRoot.getElementById('train-run').click());
    await page.waitForFunction(() => !document.getElementById('t').state.running);
    const after = await page.evaluate(() => {
      const t = document.getElementById('t');
      return { ...t.state, cells: t.shadowRoot.querySelectorAll('.test-cell').length, ranked: t.shadowRoot.querySelectorAll('.test-cell .top3 li').length, changes: window.changes.length };
    });
    assert.ok(Number.isFinite(after.loss) && after.loss < 2.3, `loss ${after.loss}`);
    assert.equal(after.cells, 24);
    assert.equal(after.ranked, 24 * 3, 'each test image shows its top 3 classes');
    assert.ok(after.changes >= 1, 'a change event for the attributes\' settings');
    // Changing a setting in the element's form is a change event with the engine's values.
    await page.evaluate(() => {
      const input = document.getElementById('t').shadowRoot.getElementById('trainer-learningRate');
      input.value = '0.005';
      input.dispatchEvent(new Event('change'));
    });
    await page.waitForFunction(() => window.changes.at(-1)?.learningRate === 0.005);
    assert.deepEqual(unexpected(errors), []);
  } finally {
    await page.close();
  }
});
