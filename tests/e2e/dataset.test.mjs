// The dataset page (dataset.html): top patches equal a brute-force search through the engine's own
// forward pass and the native CLI's numbers, a linked unit opens highlighted, patch links name the
// unit for the image page, and a search on the worker pool equals one engine's; t-SNE maps animate to a lower KL divergence; the loss surface's points
// equal the loss of the net evaluated directly; CPU and WebGPU agree; bad settings get a message and
// the engine stays; Tiny VGG and MobileNetV2 over the data directory's photos when it has them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openPage, ROOT, screenshotPath, targetDir, useBrowser } from './browser.mjs';
import { readNpy } from './npy.mjs';
import { dataDir } from '../../scripts/serve.mjs';

const DATA = dataDir();
process.env.CONVLENS_DATA_DIR = DATA;
const HAVE_PHOTOS = existsSync(join(DATA, 'tiny-vgg/model.json')) && existsSync(join(DATA, 'mobilenet/mobilenet_v2_f32.safetensors'));

const ctx = useBrowser({ webgpu: true });

/** Runs a dataset view to its end in the page through the engine client; returns the final state (typed arrays as arrays). */
async function view(page, kind, settings, options = {}) {
  return page.evaluate(async ({ kind, settings, options }) => {
    const st = await window.convlens.client.datasetView(kind, settings, options);
    const plain = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, ArrayBuffer.isView(v) ? Array.from(v) : v]));
    const key = st.seeds ? 'seeds' : kind;
    return { ...st, [key]: plain(st[key]) };
  }, { kind, settings, options });
}

/** Each channel's top-k (value, image) of layer `layer` over test images 0..n, from forwardBatch. */
async function bruteForce(page, layer, n, k) {
  return page.evaluate(async ({ layer, n, k }) => {
    const { client, state } = window.convlens;
    const [c, h, w] = state.summary.layers[layer].shape;
    const per = c * h * w;
    const best = Array.from({ length: c }, () => []);
    for (let a = 0; a < n; a += 50) {
      const imgs = [];
      for (let i = a; i < Math.min(n, a + 50); i++) imgs.push(...await client.example('test', i));
      const out = await client.forwardBatch(Float32Array.from(imgs), layer);
      for (let i = 0; i < out.length / per; i++) {
        for (let ch = 0; ch < c; ch++) {
          let m = -Infinity;
          for (let p = 0; p < h * w; p++) m = Math.max(m, out[i * per + ch * h * w + p]);
          best[ch].push([m, a + i]);
        }
      }
    }
    return best.map((l) => l.sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, k));
  }, { layer, n, k });
}

test('patches: the top 9 per channel equal a brute-force search and the CLI; a linked unit opens highlighted', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'dataset.html?backend=cpu#view=patches&net=mnist&layer=1&channel=3&split=test');
  try {
    const name = await page.evaluate(() => window.convlens.state.data.name);
    // The link ran the search on conv1 and highlighted channel 3.
    await page.waitForSelector('#patches-ch-3.focus');
    assert.match(await page.textContent('#patches-info'), /searched/);
    const tiles = await page.locator('#patches-ch-3 canvas').count();
    assert.equal(tiles, 9, 'nine patches for the channel');
    const href = await page.locator('#patches-ch-3 a.ds-patch').first().getAttribute('href');
    assert.match(href, /index\.html\?preset=mnist&dataset=\w+&split=train&index=\d+&objective=neuron%3A1%3A\d+/, href);
    // Guided backprop beside each patch: a second picture per patch, drawn from the engine's maps.
    await page.selectOption('#patches-maps', 'guided');
    await page.waitForFunction(() => document.querySelectorAll('#patches-ch-3 canvas').length === 18, null, { timeout: 60_000 });
    await page.screenshot({ path: await screenshotPath('dataset-patches.png') });
    await page.selectOption('#patches-maps', '');

    const n = 400;
    const st = await view(page, 'patches', { layer: 1, split: 'test', images: n, top: 9 });
    const p = st.patches;
    assert.equal(st.step, n);
    assert.deepEqual(p.patch, [1, 5, 5], 'conv1 (5x5, pad 2) sees 5x5 pixels');
    const ref = await bruteForce(page, 1, n, 9);
    for (let ch = 0; ch < p.shape[0]; ch++) {
      for (let r = 0; r < 9; r++) {
        const [v, img] = ref[ch][r];
        assert.ok(Math.abs(p.values[ch * 9 + r] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `channel ${ch} rank ${r}: ${p.values[ch * 9 + r]} vs ${v}`);
        const tie = ref[ch].filter((x) => Math.abs(x[0] - v) <= 1e-5 * Math.max(1, Math.abs(v))).length > 1;
        if (!tie) assert.equal(p.images[ch * 9 + r], img, `channel ${ch} rank ${r}`);
      }
    }
    // On the worker pool (1, 2 and 3 engines, each searching its own run of images, the tops put
    // together by the engine): the same patches bit for bit.
    const pooled = [];
    for (const workers of [1, 2, 3]) pooled.push(await view(page, 'patches', { layer: 3, split: 'test', images: 1000, top: 9 }, { workers }));
    assert.deepEqual(pooled.map((r) => [r.workers ?? 1, r.step, r.total, r.done]), [[1, 1000, 1000, true], [2, 1000, 1000, true], [3, 1000, 1000, true]]);
    for (const r of pooled.slice(1)) {
      for (const key of ['values', 'images', 'ys', 'xs']) assert.deepEqual(r.patches[key], pooled[0].patches[key], `${key} on ${r.workers} engines`);
      assert.equal(r.patches.part, undefined);
    }
    // The native CLI on the same images.
    const cli = join(targetDir(), 'release', 'convlens');
    const out = mkdtempSync(join(tmpdir(), 'convlens-patches-'));
    try {
      const args = ['patches', '--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors', '--dataset', name,
        '--data', name === 'mnist5k' ? 'www/data' : DATA, '--layer', '1', '--split', 'test', '--images', String(n), '--out', out];
      const r = spawnSync(cli, args, { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, `convlens ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      const values = readNpy(join(out, 'values.npy'));
      const images = readNpy(join(out, 'images.npy'));
      for (let i = 0; i < p.values.length; i++) {
        assert.ok(Math.abs(values.data[i] - p.values[i]) <= 1e-5 * Math.max(1, Math.abs(p.values[i])), `CLI value ${i}`);
      }
      assert.deepEqual(Array.from(images.data), p.images, 'the CLI picks the same images');
      assert.ok(existsSync(join(out, 'patches.png')));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  } finally {
    await page.close();
  }
});

test('t-SNE: two maps animate to a lower KL divergence; the loss surface equals direct evaluations; bad settings keep the engine', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'dataset.html?backend=cpu#view=tsne&net=mnist');
  try {
    // Through the page's controls: 300 points, 300 iterations.
    await page.fill('#tsne-points', '300');
    await page.fill('#tsne-perplexity', '20');
    await page.fill('#tsne-iterations', '300');
    await page.click('#tsne-run');
    await page.waitForFunction(() => window.convlens.views[1].maps.every((m) => m.state?.done), null, { timeout: 120_000 });
    const maps = await page.evaluate(() => window.convlens.views[1].maps.map((m) => ({
      kl: Array.from(m.state.tsne.kl), embedding: Array.from(m.state.tsne.embedding), layer: m.state.tsne.layer, method: m.state.tsne.method,
    })));
    assert.equal(maps[0].layer, 0, 'the left map is the pixels');
    assert.equal(maps[1].layer, 3, 'the right map is the last conv layer');
    for (const m of maps) {
      assert.equal(m.method, 'exact', 'auto picks the exact method for 300 points');
      assert.equal(m.embedding.length, 600);
      assert.ok(m.embedding.every(Number.isFinite));
      const kls = m.kl.filter((_, i) => i % 2 === 1);
      assert.ok(kls.length >= 6, `KL measured ${kls.length} times`);
      assert.ok(kls[kls.length - 1] < kls[0], `KL fell: ${kls[0]} -> ${kls[kls.length - 1]}`);
    }
    assert.match(await page.textContent('#tsne-info-b'), /iteration 300 of 300 · KL/);
    assert.match(page.url(), /#view=tsne&net=mnist&.*layers=0%2C3/, 'the maps are in the URL');
    await page.screenshot({ path: await screenshotPath('dataset-tsne.png') });

    // Cancel stops a long run between chunks and gives Run back.
    await page.fill('#tsne-points', '3000');
    await page.fill('#tsne-iterations', '5000');
    await page.click('#tsne-run');
    await page.waitForFunction(() => window.convlens.views[1].maps[0].state?.tsne?.stage === 'optimizing', null, { timeout: 120_000 });
    await page.click('#tsne-cancel');
    await page.waitForFunction(() => !document.querySelector('#tsne-run').disabled);
    const stopped = await page.evaluate(() => window.convlens.views[1].maps[0].state.tsne.iteration);
    await page.waitForTimeout(500);
    assert.equal(await page.evaluate(() => window.convlens.views[1].maps[0].state.tsne.iteration), stopped, 'no step after Cancel');
    assert.ok(stopped < 5000);

    // A perplexity too large for the points: a message naming it, and the engine goes on.
    const err = await page.evaluate(() => window.convlens.client.datasetView('tsne', { points: 20, perplexity: 30 }).then(() => 'ok', (e) => e.message));
    assert.match(err, /perplexity \(30\) must be less than the number of points \(20\)/);
    const err2 = await page.evaluate(() => window.convlens.client.datasetView('patches', { layer: 99 }).then(() => 'ok', (e) => e.message));
    assert.match(err2, /layer/);

    // The loss surface: each point equals the loss of the net with those weights; the plane's
    // centre and the line's α = 1 are the trained net, whose loss the page evaluates directly.
    const direct = await page.evaluate(async () => {
      const { probs, labels } = await window.convlens.client.evaluate('test', 0, 32);
      let loss = 0;
      let right = 0;
      for (let i = 0; i < 32; i++) {
        const row = probs.subarray(i * 10, i * 10 + 10);
        loss -= Math.log(row[labels[i]]);
        right += row.indexOf(Math.max(...row)) === labels[i];
      }
      return { loss: loss / 32, acc: right / 32 };
    });
    const plane = await view(page, 'landscape', { kind: 'plane', images: 32, points: 5, span: 0.5 });
    const l = plane.landscape;
    assert.equal(l.loss.length, 25);
    assert.equal(l.coarse, 25, 'a 5x5 grid is its own coarse grid');
    assert.ok(Math.abs(l.loss[12] - direct.loss) < 1e-4, `centre ${l.loss[12]} vs ${direct.loss}`);
    assert.equal(l.accuracy[12], direct.acc);
    assert.ok(l.loss.every((v) => v >= l.loss[12] - 0.05), 'the trained net is near the bottom of the slice');
    const line = await view(page, 'landscape', { kind: 'line', images: 32, points: 9 });
    const a1 = line.landscape.axis.indexOf(1);
    assert.ok(a1 > 0 && Math.abs(line.landscape.loss[a1] - direct.loss) < 1e-4, 'α = 1 is the trained net');
    const a0 = line.landscape.axis.indexOf(0);
    assert.ok(line.landscape.loss[a0] > line.landscape.loss[a1], 'the initialization has the higher loss');

    // The worker pool: the line and the plane split across 1, 2 and 3 engines, bit for bit the same.
    for (const settings of [{ kind: 'plane', images: 32, points: 7, span: 0.5 }, { kind: 'line', images: 32, points: 9 }]) {
      const runs = [];
      for (const workers of [1, 2, 3]) runs.push(await view(page, 'landscape', settings, { workers }));
      assert.deepEqual(runs.map((r) => r.workers ?? 1), [1, 2, 3], `${settings.kind}: engines used`);
      for (const r of runs.slice(1)) {
        assert.deepEqual(r.landscape.loss, runs[0].landscape.loss, `${settings.kind} on ${r.workers} engines: the losses`);
        assert.deepEqual(r.landscape.accuracy, runs[0].landscape.accuracy, `${settings.kind} on ${r.workers} engines: the accuracies`);
        assert.equal(r.step, runs[0].total);
        assert.ok(r.done && r.landscape.coarseDone);
      }
    }
  } finally {
    await page.close();
  }
});

test('the seeds experiment: through the page\'s controls, the same losses as the native CLI; the spread is drawn and tabled', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'dataset.html?backend=cpu#view=landscape&net=mnist');
  try {
    const name = await page.evaluate(() => window.convlens.state.data.name);
    await page.selectOption('#landscape-kind', 'seeds');
    assert.equal(await page.textContent('#landscape-run'), 'Train');
    assert.ok(await page.isHidden('#landscape-points'), 'the plane\'s points are not a setting of the seeds');
    await page.fill('#landscape-widths', '0.5, 1');
    await page.fill('#landscape-seed-count', '2');
    await page.fill('#landscape-steps', '40');
    await page.fill('#landscape-images', '300');
    await page.click('#landscape-run');
    await page.waitForFunction(() => window.convlens.views[2].state?.done, null, { timeout: 120_000 });
    const sd = await page.evaluate(() => {
      const s = window.convlens.views[2].state.seeds;
      return { loss: Array.from(s.loss), spread: Array.from(s.spread), params: Array.from(s.params), outcome: s.outcome, widths: Array.from(s.widths) };
    });
    assert.deepEqual(sd.widths, [0.5, 1]);
    assert.deepEqual(sd.params, [2202, 5994]);
    assert.deepEqual(sd.outcome, ['done', 'done', 'done', 'done']);
    assert.ok(sd.loss.every((v) => v > 0 && v < 2.3), `better than chance: ${sd.loss}`);
    assert.equal(await page.locator('#landscape-seeds-table tr').count(), 3, 'a header and a row per width');
    assert.match(await page.textContent('#landscape-seeds-table'), /2 of 2/);
    assert.match(page.url(), /kind=seeds.*widths=0\.5%2C(\+|%20)?1/, 'the experiment is in the URL');
    await page.screenshot({ path: await screenshotPath('dataset-seeds.png') });

    // The native CLI trains the same nets on the same data order to the same losses.
    const cli = join(targetDir(), 'release', 'convlens');
    const out = mkdtempSync(join(tmpdir(), 'convlens-seeds-'));
    try {
      const args = ['landscape', '--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors', '--dataset', name,
        '--data', name === 'mnist5k' ? 'www/data' : DATA, '--kind', 'seeds', '--images', '300',
        '--set', 'widths=0.5,1', '--set', 'seeds=2', '--set', 'steps=40', '--out', out];
      const r = spawnSync(cli, args, { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, `convlens ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
      const loss = readNpy(join(out, 'seeds_loss.npy'));
      assert.deepEqual(loss.shape, [2, 2]);
      for (let i = 0; i < 4; i++) {
        assert.ok(Math.abs(loss.data[i] - sd.loss[i]) < 1e-3 * Math.max(1, sd.loss[i]), `net ${i}: CLI ${loss.data[i]}, page ${sd.loss[i]}`);
      }
      const spread = readNpy(join(out, 'spread.npy'));
      assert.deepEqual(spread.shape, [2, 4]);
      assert.ok(existsSync(join(out, 'seeds.png')));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  } finally {
    await page.close();
  }
});

test('WebGPU and the CPU agree on patches, the loss surface and the seeds experiment', { timeout: 600_000 }, async (t) => {
  const cpu = await openPage(ctx.browser, ctx.server.url, 'dataset.html?backend=cpu&net=mnist');
  const gpu = await openPage(ctx.browser, ctx.server.url, 'dataset.html?backend=webgpu&net=mnist');
  try {
    const backend = await gpu.evaluate(() => window.convlens.state.backend);
    if (backend !== 'webgpu') {
      t.skip('no WebGPU adapter in this browser');
      return;
    }
    const settings = { layer: 3, split: 'test', images: 120, top: 4 };
    const [a, b] = [await view(cpu, 'patches', settings), await view(gpu, 'patches', settings)];
    for (let i = 0; i < a.patches.values.length; i++) {
      assert.ok(Math.abs(a.patches.values[i] - b.patches.values[i]) <= 1e-4 * Math.max(1, Math.abs(a.patches.values[i])), `value ${i}`);
    }
    const plane = { kind: 'plane', images: 16, points: 3, span: 0.5 };
    const [la, lb] = [await view(cpu, 'landscape', plane), await view(gpu, 'landscape', plane)];
    for (let i = 0; i < 9; i++) assert.ok(Math.abs(la.landscape.loss[i] - lb.landscape.loss[i]) < 1e-4 * Math.max(1, la.landscape.loss[i]), `point ${i}`);
    const seeds = { kind: 'seeds', widths: '0.5', seeds: 2, steps: 20, images: 100 };
    const [sa, sb] = [await view(cpu, 'landscape', seeds), await view(gpu, 'landscape', seeds)];
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(sa.seeds.loss[i] - sb.seeds.loss[i]) < 1e-3 * Math.max(1, sa.seeds.loss[i]), `seeds net ${i}: CPU ${sa.seeds.loss[i]}, WebGPU ${sb.seeds.loss[i]}`);
    const small = { layer: 3, points: 60, perplexity: 10, iterations: 250 };
    const [ta, tb] = [await view(cpu, 'tsne', small), await view(gpu, 'tsne', small)];
    // The PCA of the codes (the backends' codes differ in the last bits) keeps the same variance.
    assert.ok(Math.abs(ta.tsne.explained - tb.tsne.explained) < 1e-4, `PCA's variance kept: CPU ${ta.tsne.explained}, WebGPU ${tb.tsne.explained}`);
    // t-SNE itself is chaotic on 60 points: natively, changing the codes by 1e-6 moves the KL
    // after 250 iterations (the end of the early exaggeration, where it oscillates) by up to 15%
    // (2.46 to 2.84 on 60 MNIST digits). Both maps must get there, with KLs of that spread.
    const ka = ta.tsne.kl.at(-1);
    const kb = tb.tsne.kl.at(-1);
    console.log(`t-SNE final KL: CPU ${ka}, WebGPU ${kb}; PCA variance kept ${ta.tsne.explained} / ${tb.tsne.explained}`);
    assert.ok(Number.isFinite(ka) && Number.isFinite(kb) && Math.abs(ka - kb) < 0.25 * ka, `final KL: CPU ${ka}, WebGPU ${kb}`);
    assert.ok(ta.tsne.embedding.every(Number.isFinite) && tb.tsne.embedding.every(Number.isFinite));
  } finally {
    await cpu.close();
    await gpu.close();
  }
});

test('Tiny VGG and MobileNetV2 over the data directory\'s photos', { timeout: 600_000, skip: HAVE_PHOTOS ? false : 'needs the data directory (tiny-vgg/, mobilenet/): set CONVLENS_DATA_DIR' }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'dataset.html?backend=cpu#net=tiny-vgg');
  try {
    const info = await page.evaluate(() => window.convlens.state.data);
    assert.ok(info.train >= 20, `${info.train} photos`);
    const st = await view(page, 'patches', { layer: 4, split: 'train', images: 1000, top: 9 });
    assert.equal(st.step, info.train);
    assert.deepEqual(st.patches.patch, [3, 5, 5], 'relu_1_2 (after conv_1_2) sees 5x5 pixels');
    await page.evaluate(() => window.convlens.views[0].search());
    assert.ok(await page.locator('#patches-grid canvas').count() >= 90);
    await page.evaluate(() => window.convlens.selectNet('mobilenet'));
    const m = await view(page, 'patches', { layer: 10, split: 'train', images: 1000, top: 4 });
    assert.equal(m.step, await page.evaluate(() => window.convlens.state.data.train));
    assert.ok(m.patches.values.every(Number.isFinite));
    assert.ok(m.patches.patch[1] > 10 && m.patches.patch[1] < 224, `layer 10's field: ${m.patches.patch}`);
    await page.evaluate(() => window.convlens.views[0].search());
    await page.screenshot({ path: await screenshotPath('dataset-mobilenet.png') });
  } finally {
    await page.close();
  }
});
