// Attribution in the browser: every method on the CPU (fused path) and on WebGPU (Burn) against the
// Captum/PyTorch fixtures (tests/fixtures/attribution, made by scripts/make_attribution_fixtures.py),
// the page's views, occlusion with cancel, the TF.js loader's errors, and CLI parity.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openPage, ROOT, screenshotPath, targetDir, useBrowser } from './browser.mjs';
import { readNpy } from './npy.mjs';
import { dataDir } from '../../scripts/serve.mjs';

// The page serves the data directory at data/: Tiny VGG comes from there (skipped without it).
const DATA = dataDir();
process.env.CONVLENS_DATA_DIR = DATA;
const HAVE_TINY_VGG = existsSync(join(DATA, 'tiny-vgg/model.json'));

const ctx = useBrowser({ webgpu: true });

/** A fixture: its JSON and its float32 arrays by key. */
function fixture(name) {
  const dir = join(ROOT, 'tests/fixtures/attribution');
  const meta = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
  const buf = readFileSync(join(dir, `${name}.safetensors`));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  const arrays = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    arrays[k] = Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return { meta, arrays };
}

const METHOD = { saliency: 'gradient', deconvnet: 'deconvnet', guided: 'guided', input_x_gradient: 'gradient-x-input', smoothgrad: 'smoothgrad', integrated_gradients: 'integrated-gradients', grad_cam: 'grad-cam' };
const target = (t) => (t.kind === 'class' || t.kind === 'prob' ? { kind: t.kind, index: t.class } : t);

/** The requests for every case: what to ask the engine and what Captum gave. */
function requests({ meta, arrays }) {
  return meta.cases.map((c) => {
    const p = c.params;
    const image = arrays[`image${c.image}`];
    const ref = (k) => arrays[c.arrays[k]];
    if (c.method === 'occlusion') {
      const fill = p.fill === 'mean' ? `mean:${p.mean.join(',')}` : String(p.fill);
      return { id: c.id, method: 'occlusion', image, settings: { window: p.k, stride: p.stride, fill, class: c.target.class }, want: { grid: ref('grid'), base: c.base_prob } };
    }
    const settings = { method: METHOD[c.method] };
    if (c.method === 'smoothgrad') settings.noiseValues = ref('noise');
    if (c.method === 'integrated_gradients') Object.assign(settings, { baseline: [p.baseline], steps: p.steps, rule: p.rule });
    if (c.method === 'grad_cam') Object.assign(settings, { layer: p.layer, relu: p.relu });
    return { id: c.id, method: settings.method, image, target: target(c.target), settings, value: c.value,
      want: c.method === 'grad_cam' ? { layerMap: ref('attr'), map: ref('upsampled') } : { map: ref('attr') } };
  });
}

function relErr(got, want) {
  assert.equal(got.length, want.length);
  let scale = 1e-30;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err / scale;
}

/** Runs requests in the page; returns [{id, method, err}] (worst over the arrays compared). */
async function runInPage(page, reqs) {
  const results = await page.evaluate(async (reqs) => {
    const { client } = window.convlens;
    const out = [];
    for (const r of reqs) {
      const image = Float32Array.from(r.image);
      if (r.method === 'occlusion') {
        const s = await client.occlude(image, r.settings, { batch: 64 });
        out.push({ id: r.id, grid: Array.from(s.grid), base: s.base });
      } else {
        const a = await client.attribute(image, r.target, r.settings);
        out.push({ id: r.id, map: Array.from(a.map), layerMap: a.layerMap && Array.from(a.layerMap), value: a.value });
      }
    }
    return out;
  }, reqs);
  return reqs.map((r, i) => {
    const got = results[i];
    let err = 0;
    for (const [k, want] of Object.entries(r.want)) {
      if (k === 'base') err = Math.max(err, Math.abs(got.base - want));
      else err = Math.max(err, relErr(got[k], want));
    }
    if (r.value !== undefined) err = Math.max(err, Math.abs(got.value - r.value) / Math.max(1, Math.abs(r.value)));
    return { id: r.id, method: r.method, err };
  });
}

/** 1e-4 relative; integrated gradients 5e-3 (a float32 max-pool near-tie on one of its 50 path points: see crates/core/tests/attribution.rs). */
const tolerance = (method) => (method === 'integrated-gradients' ? 5e-3 : 1e-4);

function report(name, backend, results) {
  const worst = {};
  for (const r of results) if (!worst[r.method] || r.err >= worst[r.method].err) worst[r.method] = r;
  console.log(`${name} on ${backend}: largest error vs Captum per method`);
  for (const [m, r] of Object.entries(worst)) console.log(`  ${m.padEnd(22)} ${r.err.toExponential(2)}  (${r.id})`);
  for (const [m, r] of Object.entries(worst)) assert.ok(r.err <= tolerance(m), `${name} ${backend}: ${m} off by ${r.err.toExponential(2)} in ${r.id}`);
}

async function loadNet(page, name) {
  await page.evaluate((name) => window.convlens.selectNet(name), name);
}

for (const backend of ['cpu', 'webgpu']) {
  test(`MNIST and CIFAR-10 attributions match Captum on ${backend}`, { timeout: 600_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `attribution.html?backend=${backend}`);
    try {
      assert.equal(await page.evaluate(() => window.convlens.client.info.backend), backend);
      for (const name of ['mnist', 'cifar10']) {
        const fx = fixture(name);
        await page.evaluate(async (name) => {
          const spec = await fetch(`www/nets/${name}.json`).then((r) => r.text());
          const w = new Uint8Array(await fetch(`www/nets/${name}.safetensors`).then((r) => r.arrayBuffer()));
          await window.convlens.client.load(spec, w, 0);
        }, name);
        // On WebGPU (emulated by SwiftShader here, slow) every method on the first image of each net.
        const reqs = requests(fx).filter((r) => backend === 'cpu' || r.id.startsWith(`${name}-0-`));
        report(name, backend, await runInPage(page, reqs));
      }
    } finally {
      await page.close();
    }
  });
}

test('Tiny VGG loads from its TF.js files, classifies its koala and matches Captum', { timeout: 300_000, skip: !HAVE_TINY_VGG && 'no tiny-vgg in the data directory' }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'attribution.html?net=tiny-vgg');
  try {
    const s = await page.evaluate(() => ({ net: window.convlens.state.net, predicted: window.convlens.state.predicted, name: window.convlens.state.inputName }));
    assert.deepEqual(s, { net: 'tiny-vgg', predicted: 5, name: 'koala_1.jpeg' });
    await page.screenshot({ path: await screenshotPath('attribution-tiny-vgg.png'), fullPage: true });
    report('tiny_vgg', 'cpu', await runInPage(page, requests(fixture('tiny_vgg'))));
  } finally {
    await page.close();
  }
});

test('the page shows every method, follows the target, reports what cannot be done, and cancels occlusion', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'attribution.html?backend=cpu');
  try {
    await page.evaluate(() => window.convlens.refresh());
    const cards = await page.$$eval('.maps .card[data-method]', (n) => n.map((c) => ({ m: c.dataset.method, failed: c.classList.contains('failed'), info: c.querySelector('.card-info').textContent })));
    assert.equal(cards.length, 7);
    for (const c of cards) {
      assert.ok(!c.failed, `${c.m}: ${c.info}`);
      assert.match(c.info, /^target [-\d.e]+ · [\d.]+ ms/);
    }
    assert.match(await page.textContent('#target-text'), /score of “\d”/);
    await page.screenshot({ path: await screenshotPath('attribution-mnist.png'), fullPage: true });

    // A neuron of the first conv layer, by clicking the layer view: maps follow; Grad-CAM has no layer below it.
    await page.click('#picker-tiles .tile:nth-child(3) canvas', { position: { x: 30, y: 30 } });
    await page.evaluate(() => window.convlens.refresh());
    assert.match(await page.textContent('#target-text'), /^conv1 channel 2 at \(x \d+, y \d+\)$/);
    const cam = await page.textContent('#card-grad-cam .card-info');
    assert.match(cam, /Grad-CAM needs a layer between the input and the target's layer 1/);
    assert.ok(!(await page.$eval('#card-guided', (n) => n.classList.contains('failed'))));
    assert.equal(await page.isHidden('#banner'), true);

    // The probability of another class; the predicted-class link brings the score back.
    const other = String((await page.evaluate(() => window.convlens.state.predicted) + 1) % 10);
    await page.selectOption('#target-kind', 'prob');
    await page.selectOption('#target-class', other);
    await page.evaluate(() => window.convlens.refresh());
    assert.equal(await page.textContent('#target-text'), `probability of “${other}”`);
    await page.click('#target .link');
    await page.evaluate(() => window.convlens.refresh());
    const predicted = await page.evaluate(() => window.convlens.state.predicted);
    assert.equal(await page.textContent('#target-text'), `probability of “${predicted}”`);

    // PNG download of a map.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#card-smoothgrad .link')]);
    assert.match(download.suggestedFilename(), /^convlens-mnist-smoothgrad-map-prob-\d\.png$/);

    // Occlusion: a slow setting (1x1 patch, stride 1: 576 positions in small chunks) cancelled at once.
    const cancelled = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      const ctl = new AbortController();
      let chunks = 0;
      const r = await client.occlude(state.input, { window: 1, stride: 1, fill: 'gray', class: 1 }, {
        batch: 4, chunkMs: 1, onProgress: () => { chunks++; if (chunks === 2) ctl.abort(); }, signal: ctl.signal,
      });
      return { r, chunks };
    });
    assert.deepEqual(cancelled, { r: null, chunks: 2 });
    await page.fill('#occ-window', '30');
    await page.dispatchEvent('#occ-window', 'change');
    await page.waitForFunction(() => /patch must be 1 to 24 pixels wide, not 30/.test(document.getElementById('occ-text').textContent));
    await page.fill('#occ-window', '4');
    await page.dispatchEvent('#occ-window', 'change');
    await page.waitForFunction(() => /121\/121 positions/.test(document.getElementById('occ-text').textContent));
    assert.equal(await page.isHidden('#banner'), true);
  } finally {
    await page.close();
  }
});

test('a TF.js model with an unsupported layer or a short weight file is refused with a message; the net stays', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'attribution.html?backend=cpu');
  try {
    const r = await page.evaluate(async () => {
      const { client } = window.convlens;
      const model = (layers, weights) => JSON.stringify({ modelTopology: { model_config: { class_name: 'Sequential', config: { layers } } },
        weightsManifest: [{ paths: ['w.bin'], weights }] });
      const dense = { class_name: 'Dense', config: { name: 'd', units: 2, batch_input_shape: [null, 3] } };
      const w = [{ name: 'd/kernel', shape: [3, 2], dtype: 'float32' }, { name: 'd/bias', shape: [2], dtype: 'float32' }];
      const errors = [];
      for (const [json, bytes] of [
        [model([dense, { class_name: 'LSTM', config: { name: 'lstm_1' } }], w), 32],
        [model([dense], w), 20],
      ]) {
        errors.push(await client.loadTfjs(json, { 'w.bin': new Uint8Array(bytes) }).then(() => 'loaded', (e) => e.message));
      }
      const probs = await client.forward(window.convlens.state.input);
      return { errors, classes: probs.length };
    });
    assert.match(r.errors[0], /layer 1 'lstm_1' \(LSTM\): this layer type is not supported/);
    assert.match(r.errors[1], /the weight files end before weight 'd\/kernel'/);
    assert.equal(r.classes, 10);
  } finally {
    await page.close();
  }
});

test('the CLI writes the same maps as the page', { timeout: 120_000 }, async () => {
  const cli = join(targetDir(), 'release', 'convlens');
  assert.ok(existsSync(cli), `${cli} missing: build it with \`cargo build --release --workspace\``);
  const out = mkdtempSync(join(tmpdir(), 'convlens-attr-'));
  const page = await openPage(ctx.browser, ctx.server.url, 'attribution.html?backend=cpu');
  try {
    const image = Array.from(readNpy(join(ROOT, 'tests/fixtures/digit.npy')).data);
    for (const method of ['guided', 'integrated-gradients', 'grad-cam']) {
      const file = join(out, `${method}.npy`);
      const run = spawnSync(cli, ['attribute', '--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors',
        '--image', 'tests/fixtures/digit.npy', '--method', method, '--target', 'prob:3', '--out', file], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const want = readNpy(file).data;
      const got = await page.evaluate(async ([image, method]) => Array.from((await window.convlens.client.attribute(Float32Array.from(image), { kind: 'prob', index: 3 }, { method })).map), [image, method]);
      assert.ok(relErr(got, Array.from(want)) <= 1e-5, method);
    }
    const grid = join(out, 'occ.npy');
    const run = spawnSync(cli, ['occlude', '--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors',
      '--image', 'tests/fixtures/digit.npy', '--class', '3', '--window', '5', '--stride', '3', '--fill', 'blur', '--out', grid], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const want = readNpy(grid);
    assert.deepEqual(want.shape, [8, 8]); // Captum's count: ceil((24 - 5) / 3) + 1
    const got = await page.evaluate(async (image) => Array.from((await window.convlens.client.occlude(Float32Array.from(image), { window: 5, stride: 3, fill: 'blur', class: 3 })).grid), image);
    assert.ok(relErr(got, Array.from(want.data)) <= 1e-5);
  } finally {
    await page.close();
    rmSync(out, { recursive: true, force: true });
  }
});

test('the worker pool: SmoothGrad, integrated gradients and occlusion on 1, 2 and 3 engines give the same numbers bit for bit', { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'attribution.html?backend=cpu&net=cifar10');
  try {
    await page.waitForFunction(() => window.convlens.state.input !== null, null, { timeout: 60_000 });
    const got = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      const x = state.input.slice();
      const bits = (a) => Array.from(new Uint32Array(Float32Array.from(a).buffer));
      const out = {};
      for (const workers of [1, 2, 3]) {
        const r = {};
        for (const settings of [{ method: 'integrated-gradients', steps: 50 }, { method: 'smoothgrad', samples: 20, noise: 0.2, seed: 5 }]) {
          const a = await client.attribute(x.slice(), { kind: 'class', index: 3 }, settings, { workers });
          r[settings.method] = { map: bits(a.map), value: bits([a.value]), delta: a.delta === undefined ? null : bits([a.delta]) };
        }
        let parts = 0;
        const occ = await client.occlude(x.slice(), { window: 6, stride: 2, fill: 'gray', class: 3 }, { workers, batch: 7, onProgress: (s) => { parts = Math.max(parts, s.workers ?? 1); } });
        r.occlusion = { grid: bits(occ.grid), map: bits(occ.map), parts };
        // One position (the patch as large as the image): one part has it, the others none.
        const one = await client.occlude(x.slice(), { window: 32, stride: 2, fill: 'gray', class: 3 }, { workers });
        r.one = { grid: bits(one.grid), map: bits(one.map) };
        out[workers] = r;
      }
      return out;
    });
    for (const w of [2, 3]) {
      for (const k of ['integrated-gradients', 'smoothgrad']) assert.deepEqual(got[w][k], got[1][k], `${k} on ${w} workers`);
      assert.deepEqual(got[w].occlusion.grid, got[1].occlusion.grid, `occlusion grid on ${w} workers`);
      assert.deepEqual(got[w].occlusion.map, got[1].occlusion.map, `occlusion map on ${w} workers`);
      assert.equal(got[w].occlusion.parts, w, `occlusion ran on ${w} engines`);
      assert.deepEqual(got[w].one, got[1].one, `one position on ${w} workers`);
    }
    console.log(`pool: IG (50 steps), SmoothGrad (20 samples) and occlusion (${got[1].occlusion.grid.length} positions) equal bit for bit on 1, 2 and 3 workers`);
  } finally {
    await page.close();
  }
});
