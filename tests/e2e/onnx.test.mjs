// ONNX import in the browser: each fixture model of scripts/make_onnx_fixtures.py (torchvision's
// ResNet-18, MobileNetV2, SqueezeNet 1.1, VGG-11-bn, AlexNet and a net with every imported op),
// converted and loaded by the engine, gives PyTorch's logits and input gradients (plain and guided)
// on the CPU and on WebGPU, and runs Grad-CAM and occlusion (in the page and the CLI); on the index page an ONNX file opens
// like a saved model, and an unsupported op, a truncated file and a file that is not ONNX each give
// their own message and leave the loaded net as it was.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { openPage, ROOT, screenshotPath, targetDir, useBrowser } from './browser.mjs';
import { npyBytes, readNpy, readSafetensorsF32 } from './npy.mjs';
import { ONNX_DIR, TORCH_PYTHON } from '../../scripts/onnx-fixtures.mjs';

const ctx = useBrowser({ webgpu: true });
const REFS = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/onnx/references.json'), 'utf8'));
const MODELS = ['custom', 'resnet18', 'mobilenet_v2', 'squeezenet1_1', 'vgg11_bn', 'alexnet'];
const HAVE = MODELS.every((m) => existsSync(join(ONNX_DIR, `${m}.onnx`))) && existsSync(join(ONNX_DIR, 'unsupported.onnx'));
const SKIP = !HAVE && `no ONNX fixtures in ${ONNX_DIR} (npm run onnx-fixtures makes them; npm test does)`;
// The page fetches the models from the test server, which serves the repository.
const URL_DIR = relative(ROOT, ONNX_DIR);

let dir;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'convlens-onnx-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A fixture's float32 arrays by key. */
const arrays = (file) => readSafetensorsF32(join(ROOT, 'tests/fixtures/onnx', file));

function relErr(got, want) {
  assert.equal(got.length, want.length);
  let scale = 1e-30;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  return err / scale;
}

/** Loads `name` into the page's engine through importModel and load; runs everything the test checks. */
async function runModel(page, name, image, top, { views = true } = {}) {
  return page.evaluate(async ({ url, image, top, views }) => {
    const { client } = window.convlens;
    const bytes = new Uint8Array(await fetch(url).then((r) => r.arrayBuffer()));
    const model = await client.request('importModel', { files: [{ name: 'model.onnx', bytes }] });
    const summary = await client.load(model.spec, model.weights, 0);
    const input = Float32Array.from(image);
    const last = summary.layers.length - 1;
    const score = summary.layers[last].type === 'softmax' ? last - 1 : last;
    const t0 = performance.now();
    const logits = Array.from(await client.forwardBatch(input, score));
    const grad = await client.attribute(input, { kind: 'class', index: top }, { method: 'gradient' });
    const guided = await client.attribute(input, { kind: 'class', index: top }, { method: 'guided' });
    const ms = performance.now() - t0;
    // This engine's own decisions (the outputs of every ReLU-like gate, and every max pool's input)
    // for the strict check (scripts/onnx_matched.py), as base64 of the float32 bytes.
    const probe = await client.probe(input, { kind: 'class', index: top });
    const spec = JSON.parse(model.spec);
    const need = new Set();
    spec.layers.forEach((l, i) => {
      if (['relu', 'relu6', 'clip'].includes(l.type)) need.add(i);
      if (l.type === 'pool' && (l.mode ?? 'max') === 'max') need.add(l.inputs ? spec.layers.findIndex((x) => x.name === l.inputs[0]) : i - 1);
    });
    const b64 = (f) => {
      const u = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
      let s = '';
      for (let i = 0; i < u.length; i += 0x8000) s += String.fromCharCode(...u.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const decisions = { spec, shapes: summary.layers.map((l) => l.shape), acts: Object.fromEntries([...need].map((i) => [i, b64(probe.layers[i].act)])) };
    if (!views) return { layers: summary.layers.length, logits, grad: Array.from(grad.map), guided: Array.from(guided.map), ms, decisions };
    const cam = await client.attribute(input, { kind: 'class', index: top }, { method: 'grad-cam' });
    const [, h] = summary.layers[0].shape;
    const win = Math.max(1, Math.floor(h / 4));
    const occ = await client.occlude(input, { window: win, stride: win, fill: 'gray', class: top }, { batch: 4 });
    return {
      layers: summary.layers.length, logits, grad: Array.from(grad.map), guided: Array.from(guided.map), ms, decisions,
      cam: { n: cam.map.length, finite: cam.map.every(Number.isFinite), max: Math.max(...cam.map) },
      occ: { n: occ.grid.length, finite: occ.grid.every(Number.isFinite), base: occ.base },
    };
  }, { url: `/${URL_DIR}/${name}.onnx`, image: Array.from(image), top, views });
}

function check(name, backend, got) {
  const r = REFS[name];
  const refs = arrays(`${name}.safetensors`);
  const k = r.classes;
  const e = relErr(got.logits, refs.logits.subarray(0, k));
  const lines = [`${name} on ${backend}: ${got.layers} layers; logits within ${e.toExponential(2)}`];
  assert.ok(e < 1e-4, `${name} ${backend}: logits off by ${e.toExponential(2)}`);
  for (const key of ['grad', 'guided']) {
    const bound = Math.max(1e-4, 2 * r.instability[key]);
    const ge = relErr(got[key], refs[key]);
    lines.push(`${key} within ${ge.toExponential(2)} (allowed ${bound.toExponential(1)})`);
    assert.ok(ge < bound, `${name} ${backend}: ${key} off by ${ge.toExponential(2)} (allowed ${bound.toExponential(1)})`);
  }
  lines.push(matched(name, `${name}-${backend}`, got));
  if (got.cam) {
    assert.ok(got.cam.n > 0 && got.cam.finite && got.cam.max > 0, `${name} ${backend}: Grad-CAM ran (${JSON.stringify(got.cam)})`);
    assert.ok(got.occ.n >= 16 && got.occ.finite && got.occ.base > 0, `${name} ${backend}: occlusion ran (${JSON.stringify(got.occ)})`);
    lines.push(`Grad-CAM ${got.cam.n} values, occlusion ${got.occ.n} positions`);
  }
  console.log(`${lines.join(', ')}; forward + 2 gradients ${got.ms.toFixed(0)} ms`);
}

/**
 * The strict check (scripts/onnx_matched.py): PyTorch's float64 gradients taken with this engine's
 * own decisions (`got.decisions`, from the page's probe) equal its gradients within 1e-4.
 */
function matched(name, tag, got) {
  if (!existsSync(TORCH_PYTHON)) return `decision-matched check skipped: no PyTorch at ${TORCH_PYTHON}`;
  const r = REFS[name];
  const probe = join(dir, `${tag}-probe`);
  rmSync(probe, { recursive: true, force: true });
  mkdirSync(probe, { recursive: true });
  const { spec, shapes, acts } = got.decisions;
  writeFileSync(join(probe, 'probe.json'), JSON.stringify({ spec, layers: shapes.map((shape) => ({ shape })) }));
  for (const [i, b] of Object.entries(acts)) {
    const bytes = Buffer.from(b, 'base64');
    writeFileSync(join(probe, `${i}_act.npy`), npyBytes(new Float32Array(new Uint8Array(bytes).buffer), shapes[i]));
  }
  const file = (what, data, shape) => {
    const f = join(dir, `${tag}-${what}.npy`);
    writeFileSync(f, npyBytes(Float32Array.from(data), shape));
    return f;
  };
  const image = file('image', arrays(REFS[name].images).images.subarray(0, r.input.reduce((a, b) => a * b)), r.input);
  const p = spawnSync(TORCH_PYTHON, [join(ROOT, 'scripts/onnx_matched.py'), '--model', name, '--probe', probe, '--image', image,
    '--top', String(r.top[0]), '--grad', file('grad', got.grad, r.input), '--guided', file('guided', got.guided, r.input)], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(p.status, 0, `scripts/onnx_matched.py ${tag} failed:\n${p.stdout}\n${p.stderr}`);
  const m = JSON.parse(p.stdout.trim().split('\n').pop());
  assert.ok(m.grad < 1e-4 && m.guided < 1e-4, `${tag}: decision-matched gradients off by ${m.grad}, ${m.guided}`);
  return `with its own decisions: gradient within ${m.grad.toExponential(1)}, guided ${m.guided.toExponential(1)} (${m.flips} of ${m.units} decided otherwise by PyTorch)`;
}

// ONNX_MODELS=resnet18,custom narrows a run while developing.
const ONLY = process.env.ONNX_MODELS?.split(',');

for (const backend of ['cpu', 'webgpu']) {
  // VGG-11's first fully connected weight (411 MB) is more than WebGPU takes in one buffer: the
  // engine stores it in blocks of rows (ParamTensor::Rows), so it runs here too.
  test(`every fixture model imports and matches PyTorch on ${backend}`, { timeout: 1_500_000, skip: SKIP }, async () => {
    // SwiftShader takes minutes over VGG-11: the hang watchdog (120 s) waits longer here.
    const page = await openPage(ctx.browser, ctx.server.url, `attribution.html?backend=${backend}&gpuTimeout=900000`);
    try {
      assert.equal(await page.evaluate(() => window.convlens.client.info.backend), backend);
      for (const name of MODELS.filter((m) => !ONLY || ONLY.includes(m))) {
        const image = arrays(REFS[name].images).images.subarray(0, REFS[name].input.reduce((a, b) => a * b));
        // Grad-CAM and occlusion on the CPU (on WebGPU emulated by SwiftShader they take minutes a model).
        check(name, backend, await runModel(page, name, image, REFS[name].top[0], { views: backend === 'cpu' }));
      }
    } finally {
      await page.close();
    }
  });
}

test('the index page opens an ONNX file; an unsupported op, a truncated file and one that is not ONNX are refused, each with its message', { timeout: 180_000, skip: SKIP }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  const bannerText = () => page.$eval('#banner', (b) => (b.hidden ? null : b.textContent.trim()));
  const snapshot = () => page.evaluate(() => window.convlens.state.probe.layers.map((l) => Array.from(l.act)));
  const open = async (file) => {
    const seq = await page.evaluate(() => window.convlens.state.seq);
    await page.evaluate(() => document.querySelector('#banner').setAttribute('hidden', ''));
    await page.setInputFiles('#model-file', file);
    return seq;
  };
  try {
    const seq = await open(join(ONNX_DIR, 'custom.onnx'));
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq, { timeout: 60_000 });
    // A 3x32x32 net: the page switches to CIFAR-10's images (the MNIST it showed does not fit).
    await page.waitForFunction(() => window.convlens.state.dataset?.name === 'cifar10' && window.convlens.state.inputName !== null, null, { timeout: 60_000 });
    await page.waitForTimeout(1000);
    assert.equal(await bannerText(), null);
    assert.match(await page.textContent('#status'), /^custom · 3,370 params · imported from custom\.onnx/);
    assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.layers[0].shape), [3, 32, 32]);
    await page.screenshot({ path: await screenshotPath('onnx-index.png'), fullPage: true });
    const before = await snapshot();

    const good = readFileSync(join(ONNX_DIR, 'custom.onnx'));
    const cases = [
      ['unsupported.onnx', readFileSync(join(ONNX_DIR, 'unsupported.onnx')), /node \d+ '[^']*' is an Erf, which ConvLens does not import .*; ask for it on ConvLens's issue tracker/],
      ['truncated.onnx', good.subarray(0, good.length >> 1), /the file is truncated or corrupt/],
      ['photo.onnx', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64)]), /not an ONNX model: it is a PNG image/],
    ];
    for (const [file, bytes, want] of cases) {
      writeFileSync(join(dir, file), bytes);
      await open(join(dir, file));
      await page.waitForFunction(() => !document.querySelector('#banner').hidden, null, { timeout: 60_000 });
      const text = await bannerText();
      console.log(`${file}: ${text}`);
      assert.match(text, new RegExp(`Could not open ${file.replace('.', '\\.')}; the network was not changed: model: ONNX: `));
      assert.match(text, want);
      assert.deepEqual(await snapshot(), before, `${file}: the net is unchanged`);
    }
    // The imported model is kept (IndexedDB, as every net the page loads) and comes back on a reload.
    await page.waitForTimeout(1500);
    await page.reload();
    await page.waitForFunction(() => window.convlens.state.restored === true && window.convlens.state.dataset?.name === 'cifar10', null, { timeout: 60_000 });
    assert.match(await page.textContent('#status'), /^custom · 3,370 params · imported from custom\.onnx \(restored from your last visit\)/);
    assert.deepEqual(await snapshot(), before, 'the restored net computes the same');
  } finally {
    await page.close();
  }
});

test('the CLI imports every fixture model: its gradients match PyTorch (and, with its own decisions, within 1e-4), Grad-CAM and occlusion run', { timeout: 600_000, skip: SKIP }, () => {
  const cli = join(targetDir(), 'release', 'convlens');
  assert.ok(existsSync(cli), `${cli} missing: build it with \`cargo build --release --workspace\``);
  for (const name of MODELS) {
    const r = REFS[name];
    const n = r.input.reduce((a, b) => a * b);
    const image = join(dir, `${name}-image.npy`);
    writeFileSync(image, npyBytes(arrays(r.images).images.subarray(0, n), r.input));
    const model = join(ONNX_DIR, `${name}.onnx`);
    const run = (args) => {
      const p = spawnSync(cli, args, { cwd: ROOT, encoding: 'utf8' });
      assert.equal(p.status, 0, `convlens ${args.join(' ')} failed:\n${p.stdout}\n${p.stderr}`);
    };
    const out = (what) => join(dir, `${name}-${what}.npy`);
    const refs = arrays(`${name}.safetensors`);
    const lines = [];
    for (const [method, key] of [['gradient', 'grad'], ['guided', 'guided']]) {
      run(['attribute', '--model', model, '--image', image, '--method', method, '--target', `class:${r.top[0]}`, '--out', out(key)]);
      const e = relErr(readNpy(out(key)).data, refs[key]);
      const bound = Math.max(1e-4, 2 * r.instability[key]);
      lines.push(`${key} within ${e.toExponential(2)} (allowed ${bound.toExponential(1)})`);
      assert.ok(e < bound, `${name} CLI: ${key} off by ${e.toExponential(2)}`);
    }
    // The strict check: PyTorch's float64 gradients taken with ConvLens's own decisions at every
    // ReLU, ReLU6 and max pool (scripts/onnx_matched.py), within 1e-4 of the largest value.
    if (existsSync(TORCH_PYTHON)) {
      run(['probe', '--model', model, '--image', image, '--target', `class:${r.top[0]}`, '--out', join(dir, `${name}-probe`), '--activations-only']);
      const p = spawnSync(TORCH_PYTHON, [join(ROOT, 'scripts/onnx_matched.py'), '--model', name, '--probe', join(dir, `${name}-probe`), '--image', image,
        '--top', String(r.top[0]), '--grad', out('grad'), '--guided', out('guided')], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(p.status, 0, `scripts/onnx_matched.py ${name} failed:\n${p.stdout}\n${p.stderr}`);
      const m = JSON.parse(p.stdout.trim().split('\n').pop());
      lines.push(`with ConvLens's decisions: gradient within ${m.grad.toExponential(1)}, guided ${m.guided.toExponential(1)} (PyTorch would decide ${m.flips} of ${m.units} gates and pools otherwise)`);
      assert.ok(m.grad < 1e-4 && m.guided < 1e-4, `${name}: decision-matched gradients off by ${m.grad}, ${m.guided}`);
    } else {
      lines.push(`decision-matched check skipped: no PyTorch at ${TORCH_PYTHON}`);
    }
    run(['attribute', '--model', model, '--image', image, '--method', 'grad-cam', '--target', 'predicted', '--out', out('cam')]);
    const cam = readNpy(out('cam')).data;
    assert.ok(cam.length > 0 && cam.every(Number.isFinite), `${name} CLI: Grad-CAM`);
    const win = Math.max(1, Math.floor(r.input[1] / 4));
    run(['occlude', '--model', model, '--image', image, '--window', String(win), '--stride', String(win), '--fill', 'gray', '--out', out('occ')]);
    const occ = readNpy(out('occ')).data;
    assert.ok(occ.length >= 16 && occ.every(Number.isFinite), `${name} CLI: occlusion`);
    console.log(`${name} CLI: ${lines.join(', ')}; Grad-CAM ${cam.length} values, occlusion ${occ.length} positions`);
  }
});

test('?model= opens an ONNX model by its address and keeps it in the link; a model that cannot be imported leaves the default with a message', { timeout: 180_000, skip: SKIP }, async () => {
  const url = `/${URL_DIR}/custom.onnx`;
  let page = await openPage(ctx.browser, ctx.server.url, `?backend=cpu&model=${encodeURIComponent(url)}`);
  try {
    await page.waitForFunction(() => window.convlens.state.dataset?.name === 'cifar10', null, { timeout: 60_000 });
    assert.match(await page.textContent('#status'), /^custom · 3,370 params · imported from custom\.onnx/);
    assert.equal(await page.isHidden('#banner'), true);
    const link = new URL(await page.evaluate(() => window.convlens.shareLink()));
    assert.equal(link.searchParams.get('model'), url);
    assert.equal(new URL(page.url()).searchParams.get('model'), url, 'the address bar keeps the model');
  } finally {
    await page.close();
  }
  page = await openPage(ctx.browser, ctx.server.url, `?backend=cpu&model=${encodeURIComponent(`/${URL_DIR}/unsupported.onnx`)}`);
  try {
    await page.waitForFunction(() => !document.querySelector('#banner').hidden, null, { timeout: 60_000 });
    const text = await page.textContent('#banner');
    console.log(text.trim());
    assert.match(text, /The link's model \/.*unsupported\.onnx could not be opened \(model: ONNX: node \d+ '[^']*' is an Erf, .*\); the default network loaded instead\./);
    assert.match(await page.textContent('#status'), /^mnist/);
  } finally {
    await page.close();
  }
});

test('an element opens an ONNX model by its URL', { timeout: 180_000, skip: SKIP }, async () => {
  const page = await ctx.browser.newPage({ viewport: { width: 900, height: 900 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${ctx.server.url}tests/e2e/fixtures/blank.html`);
    await page.evaluate(async ({ src, net }) => {
      await import(src);
      document.getElementById('host').innerHTML = `<convlens-view id="onnx" net="${location.origin}${net}" view="layers" autorun></convlens-view>`;
    }, { src: `${ctx.server.url}www/convlens-view.js`, net: `/${URL_DIR}/custom.onnx` });
    await page.locator('#onnx').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.getElementById('onnx').state?.done || document.getElementById('onnx').shadowRoot?.querySelector('.cl-status.error'), null, { timeout: 120_000 });
    const error = await page.evaluate(() => document.getElementById('onnx').shadowRoot.querySelector('.cl-status.error')?.textContent ?? null);
    assert.equal(error, null);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});
