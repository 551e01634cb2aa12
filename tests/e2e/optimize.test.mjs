// The image-optimization page and engine calls in the browser: each technique's numbers (the
// objective rises or the loss falls, FGSM stays within epsilon, attacks reach their class), CPU and
// WebGPU agreeing step for step, the page's runs with progress, preview, cancel and PNG, bad settings
// reported with the engine alive, the linear demo; MobileNetV2 from the data directory when present.
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
const HAVE_MOBILENET = existsSync(join(DATA, 'mobilenet/mobilenet_v2_f32.safetensors'));

const ctx = useBrowser({ webgpu: true });

/** Runs a job to the end in the page: its final state (images as arrays). */
async function job(page, kind, input, settings) {
  return page.evaluate(async ({ kind, input, settings }) => {
    const { client } = window.convlens;
    const img = input === 'current' ? window.convlens.state.image : input === 'second' ? await client.example('test', 1) : input;
    const s2 = { ...settings };
    if (s2.style === 'second') s2.style = Array.from(await client.example('test', 2));
    let st = await client.request('optimizeStart', { kind, input: img ? Array.from(img) : [], settings: s2 });
    while (!st.done) st = await client.request('optimizeStep', { id: st.id, budgetMs: 100 });
    return { ...st, images: st.images.map((im) => ({ ...im, data: Array.from(im.data) })) };
  }, { kind, input, settings });
}

test('two optimization jobs and a training run at once: each job as if alone; the linear demo leaves the dataset', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'optimize.html?net=mnist&backend=cpu');
  try {
    const r = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      const image = Array.from(state.image);
      const A = ['visualize', [], { preset: 'simonyan', target: { kind: 'class', index: 3 }, steps: 12, seed: 4 }];
      const B = ['invert', image, { layers: [1], steps: 12, seed: 5 }];
      const alone = async ([kind, input, settings]) => {
        let st = await client.request('optimizeStart', { kind, input, settings });
        while (!st.done) st = await client.request('optimizeStep', { id: st.id, budgetMs: 0 });
        await client.request('optimizeCancel', { id: st.id });
        return st.history;
      };
      const soloA = await alone(A);
      const soloB = await alone(B);
      await client.loadDataset('mnist5k', new URL('/www/data/', location.href));
      let a = await client.request('optimizeStart', { kind: A[0], input: A[1], settings: A[2] });
      let b = await client.request('optimizeStart', { kind: B[0], input: B[1], settings: B[2] });
      const losses = [];
      // Interleaved: a step of A, a step of B, two training steps, until both jobs are done.
      while (!a.done || !b.done) {
        const [na, nb, t] = await Promise.all([
          a.done ? a : client.request('optimizeStep', { id: a.id, budgetMs: 0 }),
          b.done ? b : client.request('optimizeStep', { id: b.id, budgetMs: 0 }),
          client.request('trainSteps', { steps: 2 }),
        ]);
        [a, b] = [na, nb];
        losses.push(...t.losses);
      }
      const pointsBefore = await client.request('loadPoints', { points: [0, 0, 1, 1], labels: [0, 1] });
      await client.request('linearDemo', { sides: [4], eps: 0.1, epochs: 1, base: String(new URL('/www/data/', location.href)) });
      const after = await client.request('images', { split: 'train', start: 0, count: 2 });
      return { ids: [a.id, b.id], soloA, soloB, histA: a.history, histB: b.history, steps: losses.length, pointsBefore, afterShape: after.shape, afterCount: after.labels.length };
    });
    assert.notEqual(r.ids[0], r.ids[1], 'each job has its own id');
    assert.deepEqual(r.histA, r.soloA, 'job A steps exactly as alone, while B and training run');
    assert.deepEqual(r.histB, r.soloB, 'job B steps exactly as alone, while A and training run');
    assert.ok(r.steps >= 12, `training went on: ${r.steps} steps`);
    assert.deepEqual(r.afterShape, [2, 1, 1], 'the linear demo left the loaded dataset (2-D points) as it was');
    assert.equal(r.afterCount, 2);
  } finally {
    await page.close();
  }
});

test('every technique on the MNIST net: objectives rise, losses fall, attacks land', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'optimize.html?net=mnist&backend=cpu');
  try {
    // The built-in digits' first test image, whatever the data directory holds (the page shows
    // MNIST's own test digits when it is there): the thresholds below were set on it.
    await page.evaluate(async () => {
      const { client, state } = window.convlens;
      await client.loadDataset('mnist5k', new URL('/www/data/', location.href));
      state.image = await client.example('test', 0);
    });
    const vis = await job(page, 'visualize', null, { preset: 'simonyan', target: { kind: 'class', index: 3 }, steps: 30 });
    assert.ok(vis.history[29][0] > vis.history[0][0] + 1, `class 3's score rose: ${vis.history[0][0]} -> ${vis.history[29][0]}`);
    assert.ok(vis.images[0].data.every((v) => v >= 0 && v <= 1));
    const lucid = await job(page, 'visualize', null, { preset: 'lucid', target: { kind: 'channel', layer: 1, channel: 2 }, steps: 20, jitter: 1 });
    assert.ok(lucid.history[19][0] > lucid.history[0][0], 'a channel mean rose under the Fourier parametrization');

    const inv = await job(page, 'invert', 'current', { layers: [1, 3], steps: 40 });
    assert.equal(inv.images.length, 2);
    for (let k = 0; k < 2; k++) assert.ok(inv.history[39][k] < 0.5 * inv.history[0][k], `layer ${k}: feature loss ${inv.history[0][k]} -> ${inv.history[39][k]}`);

    const dream = await job(page, 'dream', 'current', { width: 24, height: 24, layer: 3, octaves: 2, steps: 5, jitter: 2 });
    assert.ok(dream.history[9][0] > dream.history[0][0], `the layer's energy rose: ${dream.history.map((h) => h[0])}`);
    assert.deepEqual(dream.images[0].shape, [1, 24, 24]);

    const style = await job(page, 'style', 'current', { size: 24, style: 'second', contentLayer: 3, styleLayers: [1, 3], steps: 30, styleWeight: 10 });
    assert.ok(style.history[29][0] < style.history[0][0], `style loss fell: ${style.history[0]} -> ${style.history[29]}`);
    const grams = await page.evaluate((id) => window.convlens.client.request('styleGrams', { id }), style.id);
    assert.deepEqual(grams.channels, [8, 16]);

    // FGSM: every pixel within eps; the attack towards a class and the fooling image reach it.
    const fgsm = await page.evaluate(async () => {
      const { client, state } = window.convlens;
      const probs = await client.forward(state.image);
      const label = probs.indexOf(Math.max(...probs));
      const adv = await client.request('fgsm', { input: state.image, label, eps: 0.25 * 255 });
      let m = 0;
      for (let i = 0; i < adv.length; i++) m = Math.max(m, Math.abs(adv[i] - state.image[i]));
      const after = await client.forward(adv);
      return { m, label, after: after.indexOf(Math.max(...after)) };
    });
    assert.ok(fgsm.m <= 0.25 + 1e-6 && fgsm.m > 0.2, `max change ${fgsm.m}`);
    const atk = await job(page, 'attack', 'current', { target: 5, eps: 60, step: 5, steps: 30 });
    const fool = await job(page, 'fooling', null, { target: 7, step: 5, steps: 40 });
    const tops = await page.evaluate(async (imgs) => Promise.all(imgs.map(async (d) => {
      const p = await window.convlens.client.forward(Float32Array.from(d));
      return [p.indexOf(Math.max(...p)), Math.max(...p)];
    })), [atk.images[1].data, fool.images[1].data]);
    assert.equal(tops[0][0], 5, 'the attack reached class 5');
    assert.ok(atk.images[1].data.every((v, i) => Math.abs(v - atk.images[0].data[i]) <= 60 / 255 + 1e-5), 'within eps');
    assert.equal(tops[1][0], 7, 'noise became a 7');
    assert.ok(tops[1][1] > 0.9, `with confidence ${tops[1][1]}`);
  } finally {
    await page.close();
  }
});

test('CPU and WebGPU take the same steps', { timeout: 600_000 }, async () => {
  const run = async (backend) => {
    const page = await openPage(ctx.browser, ctx.server.url, `optimize.html?net=mnist&backend=${backend}`);
    try {
      const vis = await job(page, 'visualize', null, { preset: 'simonyan', target: { kind: 'class', index: 2 }, steps: 5 });
      const inv = await job(page, 'invert', 'current', { layers: [3], steps: 5, seed: 3 });
      return { vis, inv };
    } finally {
      await page.close();
    }
  };
  const [cpu, gpu] = [await run('cpu'), await run('webgpu')];
  const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  const dv = maxDiff(cpu.vis.images[0].data, gpu.vis.images[0].data);
  const di = maxDiff(cpu.inv.images[0].data, gpu.inv.images[0].data);
  console.log(`CPU vs WebGPU after 5 steps: visualization ${dv.toExponential(2)}, inversion ${di.toExponential(2)}`);
  assert.ok(dv < 2e-3 && di < 2e-3, `${dv} ${di}`);
  for (let i = 0; i < 5; i++) assert.ok(Math.abs(cpu.vis.history[i][0] - gpu.vis.history[i][0]) < 1e-3 * Math.max(1, Math.abs(cpu.vis.history[i][0])));
});

test('the page runs, previews, cancels, saves PNG, reports bad settings and runs the linear demo', { timeout: 300_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'optimize.html?net=mnist&backend=cpu');
  try {
    // Class visualization from the button: progress, a preview, the net's verdict.
    await page.fill('#vis-class', '3: 3');
    await page.fill('#vis-steps', '40');
    await page.locator('#view-visualize button.primary').click();
    await page.waitForFunction(() => /done: 40 steps/.test(document.querySelector('#view-visualize .opt-run .hint').textContent));
    assert.match(await page.locator('#view-visualize p.hint').last().textContent(), /The network calls it: 3 /);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#view-visualize figure button').click()]);
    assert.equal(download.suggestedFilename(), 'visualize-class3.png');
    // Cancel a long run.
    await page.fill('#vis-steps', '10000');
    await page.locator('#view-visualize button.primary').click();
    await page.waitForFunction(() => /step \d+ \//.test(document.querySelector('#view-visualize .opt-run .hint').textContent));
    await page.locator('#view-visualize .opt-run button', { hasText: 'Cancel' }).click();
    await page.waitForFunction(() => /cancelled at step/.test(document.querySelector('#view-visualize .opt-run .hint').textContent));
    // Bad settings: a message, and the engine goes on.
    await page.click('#tab-invert');
    await page.fill('#inv-layers', '99');
    await page.locator('#view-invert button.primary').click();
    await page.waitForFunction(() => /setting 'layers': there is no layer '99'/.test(document.querySelector('#banner').textContent));
    await page.click('#tab-dream');
    await page.fill('#dream-octaves', '9');
    await page.locator('#view-dream button.primary').click();
    await page.waitForFunction(() => /too small/.test(document.querySelector('#banner').textContent));
    const ok = await job(page, 'invert', 'current', { layers: [1], steps: 3 });
    assert.equal(ok.step, 3, 'the engine still works');
    // FGSM from the slider; the linear demo.
    await page.click('#tab-adversarial');
    await page.locator('#fgsm-eps').fill('40');
    await page.waitForFunction(() => /max \|δ\| = 40/.test(document.querySelector('#view-adversarial').textContent));
    await page.click('#linear-run');
    await page.waitForFunction(() => document.querySelectorAll('#view-adversarial .opt-table tr').length === 7, null, { timeout: 120_000 });
    const shifts = await page.$$eval('#view-adversarial .opt-table tr', (rows) => rows.slice(1).map((r) => Number(r.children[4].textContent)));
    assert.ok(shifts.every((v, i) => i === 0 || v > shifts[i - 1]), `eps |w|_1 grows with the dimension: ${shifts}`);
    await page.screenshot({ path: await screenshotPath('optimize-mnist-adversarial.png'), fullPage: true });
  } finally {
    await page.close();
  }
});

test('MobileNetV2 from the data directory: classifies, visualizes a class and dreams at 320 px', { timeout: 600_000, skip: !HAVE_MOBILENET && 'no mobilenet in the data directory' }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, 'optimize.html?backend=cpu');
  try {
    assert.equal(await page.evaluate(() => window.convlens.state.net), 'mobilenet');
    assert.match(await page.locator('#input-info').textContent(), /military uniform \d/);
    const vis = await job(page, 'visualize', null, { preset: 'lucid', target: { kind: 'class', index: 89 }, steps: 6 });
    assert.ok(vis.history[5][0] > vis.history[0][0] + 1, `macaw's score rose: ${vis.history.map((h) => h[0])}`);
    const dream = await page.evaluate(async () => {
      const { client, ctx } = window.convlens;
      const img = await ctx.imageAt(320);
      let st = await client.request('optimizeStart', { kind: 'dream', input: Array.from(img), settings: { width: 320, height: 320, layer: 22, octaves: 2, steps: 1 } });
      while (!st.done) st = await client.request('optimizeStep', { id: st.id, budgetMs: 100 });
      return st.images[0].shape;
    });
    assert.deepEqual(dream, [3, 320, 320]);
  } finally {
    await page.close();
  }
});

test('the CLI renders the same results as the page', { timeout: 180_000 }, async () => {
  const cli = join(targetDir(), 'release', 'convlens');
  assert.ok(existsSync(cli), `${cli} missing: build it with \`cargo build --release --workspace\``);
  const out = mkdtempSync(join(tmpdir(), 'convlens-opt-'));
  const page = await openPage(ctx.browser, ctx.server.url, 'optimize.html?net=mnist&backend=cpu');
  try {
    const model = ['--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors'];
    const file = join(out, 'vis.npy');
    // One step: the same image (the gradient natively and in wasm differs only in rounding). Over
    // 25 steps the same climb: Adam moves every pixel by about its learning rate whatever the size
    // of its gradient, so pixels whose gradient is near zero step either way with the rounding
    // (native SIMD has fused multiply-adds, wasm's has not) and the images part, not the scores.
    let run = spawnSync(cli, ['visualize', ...model, '--preset', 'simonyan', '--target', 'class:3', '--steps', '1', '--out', file], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const one = await job(page, 'visualize', null, { preset: 'simonyan', target: { kind: 'class', index: 3 }, steps: 1 });
    const want = readNpy(file).data;
    const diff = one.images[0].data.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
    assert.ok(diff < 1e-5, `visualization after one step: page vs CLI differ by ${diff}`);
    run = spawnSync(cli, ['visualize', ...model, '--preset', 'simonyan', '--target', 'class:3', '--steps', '25', '--out', file], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const cliScore = Number(/step 25: score of class 3 = ([\d.-]+)/.exec(run.stdout)[1]);
    const vis = await job(page, 'visualize', null, { preset: 'simonyan', target: { kind: 'class', index: 3 }, steps: 25 });
    const pageScore = vis.history[24][0];
    assert.ok(Math.abs(pageScore - cliScore) < 0.01 * Math.abs(cliScore), `visualization after 25 steps: page's score ${pageScore} vs the CLI's ${cliScore}`);
    assert.ok(pageScore > vis.history[0][0] + 10, `the score climbed: ${vis.history[0][0]} -> ${pageScore}`);
    const image = join(ROOT, 'tests/fixtures/digit.npy');
    run = spawnSync(cli, ['invert', ...model, '--image', image, '--layers', '3', '--steps', '10', '--out', join(out, 'inv.png')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const cliLoss = Number(/feature ([\d.]+)/.exec(run.stdout)[1]);
    const inv = await job(page, 'invert', Array.from(readNpy(image).data), { layers: [3], steps: 10 });
    // The CLI prints the loss before the last step; the page's history has the same numbers.
    assert.ok(Math.abs(inv.history[9][0] - cliLoss) < 1e-3 * Math.max(1, cliLoss), `inversion loss: page ${inv.history[9][0]} vs CLI ${cliLoss}`);
  } finally {
    await page.close();
    rmSync(out, { recursive: true, force: true });
  }
});

test('without the float32 conversion the page reads the published .tflite (what npm run download-data fetches)', { timeout: 300_000, skip: !HAVE_MOBILENET && 'no mobilenet in the data directory' }, async () => {
  const { mkdirSync, symlinkSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'convlens-tflite-'));
  mkdirSync(join(dir, 'mobilenet'));
  for (const f of ['mobilenet_v2_1.0_224_quant.tflite', 'imagenet_labels.txt', 'test-images']) symlinkSync(join(DATA, 'mobilenet', f), join(dir, 'mobilenet', f));
  process.env.CONVLENS_DATA_DIR = dir; // the test server reads it per request
  try {
    const page = await openPage(ctx.browser, ctx.server.url, 'optimize.html?backend=cpu');
    try {
      assert.equal(await page.evaluate(() => window.convlens.state.net), 'mobilenet');
      assert.equal(await page.evaluate(() => window.convlens.state.summary.params), 3_489_097);
      assert.match(await page.locator('#input-info').textContent(), /military uniform \d/);
      // A corrupt .tflite: a message, and the engine keeps the network it has.
      const msg = await page.evaluate(async () => window.convlens.client.request('loadTflite', { bytes: new Uint8Array(64).fill(7), labels: null }).then(() => 'loaded', (e) => e.message));
      assert.match(msg, /tflite: not a TFLite file/);
      assert.equal((await page.evaluate(() => window.convlens.client.forward(window.convlens.state.image))).length, 1001);
    } finally {
      await page.close();
    }
  } finally {
    process.env.CONVLENS_DATA_DIR = DATA;
    rmSync(dir, { recursive: true, force: true });
  }
});
