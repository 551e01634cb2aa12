// npm run bench:onnx: the ONNX fixture models (scripts/make_onnx_fixtures.py; npm run onnx-fixtures)
// at their input size (224x224 but the small custom net's 32x32), side by side in one run:
//   in ONE headless Chromium: ConvLens on the CPU (its wasm engine in its worker, as the page uses
//   it: forward = the class scores read back; gradient = d score / d input, the whole map read
//   back) against onnxruntime-web 1.30 (wasm backend, one thread, SIMD; forward only: it has no
//   gradients), engines alternating round-robin;
//   natively, on the same machine: the ConvLens CLI (`convlens attribute --method gradient
//   --repeat`) against PyTorch 2.15 on the CPU (forward, and forward + backward to the input),
//   PyTorch at 1 thread and at the machine's thread count.
// BENCH_RUNS rounds (default 5), medians. Raw numbers: target/bench-onnx.json.
// ConvLens on WebGPU is not timed here: SwiftShader (the WebGPU of a machine without a GPU) takes
// tens of seconds a model; on a real GPU it is the issue after this one's to measure.
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildCli, build, targetDir, ROOT } from './build.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';
import { onnxFixtures, ONNX_DIR } from './onnx-fixtures.mjs';
import { median } from './bench.mjs';
import { npyBytes, readSafetensorsF32 } from '../tests/e2e/npy.mjs';

const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const MODELS = (process.env.ONNX_MODELS ?? 'resnet18,mobilenet_v2,squeezenet1_1,vgg11_bn,alexnet,custom').split(',');
const REFS = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/onnx/references.json'), 'utf8'));
const TORCH_ENV = process.env.CONVLENS_TORCH_ENV ?? join(process.env.HOME ?? '/tmp', '.cache', 'convlens', 'torchenv');

function image(name) {
  const r = REFS[name];
  const size = r.input.reduce((x, y) => x * y);
  return Array.from(readSafetensorsF32(join(ROOT, 'tests/fixtures/onnx', r.images)).images.subarray(0, size));
}

async function browserRuns(browser, url) {
  const page = await openPage(browser, url, 'attribution.html?backend=cpu');
  const out = {};
  try {
    await page.evaluate(async () => {
      const ort = await import('/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.simd = true;
      ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
      window.__ort = ort;
    });
    for (const name of MODELS) {
      const r = REFS[name];
      const res = await page.evaluate(async ({ url, image, input, mean, std, top, runs }) => {
        const { client } = window.convlens;
        const ort = window.__ort;
        const bytes = new Uint8Array(await fetch(url).then((x) => x.arrayBuffer()));
        let t = performance.now();
        const model = await client.request('importModel', { files: [{ name: 'model.onnx', bytes }] });
        const summary = await client.load(model.spec, model.weights, 0);
        const convlensLoad = performance.now() - t;
        t = performance.now();
        const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
        const ortLoad = performance.now() - t;
        const last = summary.layers.length - 1;
        const score = summary.layers[last].type === 'softmax' ? last - 1 : last;
        const x = Float32Array.from(image);
        // onnxruntime takes the model's own (normalized) input; ConvLens normalizes inside the net.
        const plane = input[1] * input[2];
        const xn = Float32Array.from(x, (v, i) => (v - mean[Math.floor(i / plane)]) / std[Math.floor(i / plane)]);
        const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', xn, [1, ...input]) };
        const times = { convlensForward: [], convlensGradient: [], ortForward: [] };
        for (let i = 0; i < runs + 1; i++) {
          // Round-robin; the first round warms up and is dropped.
          let t0 = performance.now();
          await client.forwardBatch(x, score);
          const f = performance.now() - t0;
          t0 = performance.now();
          await client.attribute(x, { kind: 'class', index: top }, { method: 'gradient' });
          const g = performance.now() - t0;
          t0 = performance.now();
          const o = await session.run(feeds);
          Object.values(o).forEach((v) => v.getData?.());
          const of = performance.now() - t0;
          if (i > 0) {
            times.convlensForward.push(f);
            times.convlensGradient.push(g);
            times.ortForward.push(of);
          }
        }
        await session.release();
        return { times, convlensLoad, ortLoad };
      }, { url: `/${relative(ROOT, ONNX_DIR)}/${name}.onnx`, image: image(name), input: r.input, mean: r.mean, std: r.std, top: r.top[0], runs: RUNS });
      out[name] = res;
      const m = (k) => median(res.times[k]);
      console.log(`${name.padEnd(14)} browser: ConvLens cpu forward ${m('convlensForward').toFixed(1)} ms, gradient ${m('convlensGradient').toFixed(1)} ms; onnxruntime-web wasm forward ${m('ortForward').toFixed(1)} ms (${(m('convlensForward') / m('ortForward')).toFixed(2)}x); gradient / forward ${(m('convlensGradient') / m('convlensForward')).toFixed(2)}`);
    }
  } finally {
    await page.close();
  }
  return out;
}

function nativeRuns() {
  const cli = join(targetDir(), 'release', 'convlens');
  const dir = mkdtempSync(join(tmpdir(), 'convlens-bench-onnx-'));
  const out = {};
  const threads = cpus().length;
  const py = join(TORCH_ENV, 'bin', 'python');
  for (const name of MODELS) {
    const r = REFS[name];
    // The image as .npy (CHW float32).
    const data = Float32Array.from(image(name));
    const npy = join(dir, `${name}.npy`);
    writeFileSync(npy, npyBytes(data, r.input));
    const model = join(ONNX_DIR, `${name}.onnx`);
    const c = spawnSync(cli, ['attribute', '--model', model, '--image', npy, '--method', 'gradient', '--target', `class:${r.top[0]}`, '--repeat', String(RUNS), '--out', join(dir, `${name}-g.npy`)], { encoding: 'utf8' });
    if (c.status !== 0) throw new Error(`convlens failed: ${c.stderr}`);
    const convlens = Number(c.stdout.match(/median ([\d.]+) ms/)?.[1]);
    const t = spawnSync(py, ['-c', `
import sys, json, time, statistics, torch, numpy as np
sys.path.insert(0, ${JSON.stringify(join(ROOT, 'scripts'))})
from make_onnx_fixtures import make_model, Normalized, logits_of
m, size = make_model(${JSON.stringify(name)})
m = Normalized(m).eval()
x = torch.tensor(np.load(${JSON.stringify(npy)})).reshape(1, ${r.input.join(', ')})
res = {}
for threads in sorted({1, ${threads}}):
    torch.set_num_threads(threads)
    f, g = [], []
    for i in range(${RUNS} + 1):
        t0 = time.perf_counter()
        with torch.no_grad():
            logits_of(m, x)
        t1 = time.perf_counter()
        xi = x.clone().requires_grad_(True)
        logits_of(m, xi)[0, ${r.top[0]}].backward()
        _ = xi.grad.numpy()
        t2 = time.perf_counter()
        if i:
            f.append((t1 - t0) * 1e3)
            g.append((t2 - t1) * 1e3)
    res[threads] = {"forward": statistics.median(f), "gradient": statistics.median(g)}
print(json.dumps(res))
`], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (t.status !== 0) throw new Error(`PyTorch failed: ${t.stderr}`);
    const torch = JSON.parse(t.stdout.trim().split('\n').pop());
    out[name] = { convlensGradient: convlens, torch };
    const tt = torch[String(threads)];
    const t1 = torch['1'];
    console.log(`${name.padEnd(14)} native:  ConvLens cpu gradient ${convlens.toFixed(1)} ms; PyTorch forward ${t1.forward.toFixed(1)} / ${tt.forward.toFixed(1)} ms, gradient ${t1.gradient.toFixed(1)} / ${tt.gradient.toFixed(1)} ms (1 / ${threads} threads); ConvLens / PyTorch gradient ${(convlens / tt.gradient).toFixed(2)}x at ${threads} threads`);
  }
  return out;
}

if (!process.env.BENCH_SKIP_BUILD) {
  await build();
  await buildCli();
}
await onnxFixtures();
for (const m of MODELS) if (!existsSync(join(ONNX_DIR, `${m}.onnx`))) throw new Error(`${m}.onnx missing in ${ONNX_DIR}`);
const server = await serveRoot();
const browser = await launch({ webgpu: false });
let results;
try {
  results = { browser: await browserRuns(browser, server.url), native: nativeRuns(), runs: RUNS, machine: `${cpus().length} cores`, chromium: browser.version() };
} finally {
  await browser.close();
  await server.close();
}
writeFileSync(join(targetDir(), 'bench-onnx.json'), JSON.stringify(results, null, 1));
console.log(`raw numbers: ${join(targetDir(), 'bench-onnx.json')}`);
