// npm run bench: the time to probe every layer of the MNIST net for one image (forward, the gradient
// of a class score with respect to every layer and weight, everything read back to JS), in headless
// Chromium, ConvLens on CPU (burn-flex) and on WebGPU (SwiftShader here: a CPU emulation), side by
// side with ConvNetJS 0.3.0 (forward + backward of the same architecture) in the same run.
// Medians of repeated runs; machines here are shared and noisy, so read the ratios.
import { build } from './build.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
// The ConvNetJS MNIST demo's layer_defs (the same architecture as www/nets/mnist.json).
const CONVNETJS_MNIST = [
  { type: 'input', out_sx: 24, out_sy: 24, out_depth: 1 },
  { type: 'conv', sx: 5, filters: 8, stride: 1, pad: 2, activation: 'relu' },
  { type: 'pool', sx: 2, stride: 2 },
  { type: 'conv', sx: 5, filters: 16, stride: 1, pad: 2, activation: 'relu' },
  { type: 'pool', sx: 3, stride: 3 },
  { type: 'softmax', num_classes: 10 },
];
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

await build();
const server = await serveRoot();
const browser = await launch({ webgpu: true });
const results = {};
const training = {};
const TRAIN_N = 400; // examples per timed run, batch 20
try {
  for (const backend of ['cpu', 'webgpu']) {
    const page = await openPage(browser, server.url, `?backend=${backend}`);
    results[`ConvLens ${backend}`] = await page.evaluate(async (runs) => {
      const { client, state } = window.convlens;
      const times = [];
      for (let i = 0; i < runs + 2; i++) {
        const t0 = performance.now();
        await client.probe(state.input, { kind: 'class', index: i % 10 });
        if (i >= 2) times.push(performance.now() - t0); // 2 warm-up runs
      }
      return times;
    }, RUNS);
    training[`ConvLens ${backend}`] = await page.evaluate(async (n) => {
      const { client, state } = window.convlens;
      const images = new Float32Array(n * 576).map(() => Math.random());
      const labels = Uint32Array.from({ length: n }, (_, i) => i % 10);
      const config = { batchSize: 20, learningRate: 0.001, momentum: 0.9, l2: 0.001 };
      await client.train(images.slice(0, 40 * 576), labels.slice(0, 40), config); // warm-up
      const rates = [];
      for (let r = 0; r < 3; r++) {
        const t0 = performance.now();
        await client.train(images, labels, config);
        rates.push(n / ((performance.now() - t0) / 1000));
      }
      return rates;
    }, TRAIN_N);
    if (backend === 'cpu') {
      await page.addScriptTag({ url: '/node_modules/convnetjs/build/convnet.js' });
      results['ConvNetJS 0.3.0'] = await page.evaluate(async ({ runs, layers }) => {
        const c = window.convnetjs;
        const net = new c.Net();
        net.makeLayers(layers);
        const x = new c.Vol(24, 24, 1, 0.0);
        for (let i = 0; i < x.w.length; i++) x.w[i] = Math.random();
        const times = [];
        for (let i = 0; i < runs * 20 + 20; i++) {
          const t0 = performance.now();
          net.forward(x, false);
          net.backward(i % 10); // gradients of every layer and weight (of the loss)
          if (i >= 20) times.push(performance.now() - t0);
        }
        return times;
      }, { runs: RUNS, layers: CONVNETJS_MNIST });
      training['ConvNetJS 0.3.0'] = await page.evaluate(async ({ n, layers }) => {
        const c = window.convnetjs;
        const net = new c.Net();
        net.makeLayers(layers);
        const trainer = new c.Trainer(net, { method: 'sgd', learning_rate: 0.001, momentum: 0.9, batch_size: 20, l2_decay: 0.001 });
        const x = new c.Vol(24, 24, 1, 0.0);
        const rates = [];
        for (let r = 0; r < 3; r++) {
          const t0 = performance.now();
          for (let i = 0; i < n; i++) {
            for (let k = 0; k < x.w.length; k++) x.w[k] = Math.random();
            trainer.train(x, i % 10);
          }
          rates.push(n / ((performance.now() - t0) / 1000));
        }
        return rates;
      }, { n: TRAIN_N, layers: CONVNETJS_MNIST });
    }
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
}
const base = median(results['ConvNetJS 0.3.0']);
console.log(`\nprobe of all layers, MNIST net, one image (median of ${RUNS} runs; ConvNetJS ${RUNS * 20})`);
for (const [name, times] of Object.entries(results)) {
  const m = median(times);
  console.log(`${name.padEnd(18)} ${m.toFixed(2).padStart(9)} ms   ${(m / base).toFixed(1).padStart(7)}x ConvNetJS`);
}
const tbase = median(training['ConvNetJS 0.3.0']);
console.log(`\ntraining, MNIST net, SGD batch 20 (median of 3 runs of ${TRAIN_N} examples)`);
for (const [name, rates] of Object.entries(training)) {
  const m = median(rates);
  console.log(`${name.padEnd(18)} ${m.toFixed(0).padStart(9)} ex/s ${(m / tbase).toFixed(1).padStart(7)}x ConvNetJS`);
}
