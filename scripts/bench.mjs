// npm run bench: the time to probe every layer of the MNIST net for one image (forward, the gradient
// of a class score with respect to every layer and weight, everything read back to JS), in headless
// Chromium, ConvLens on CPU (burn-flex) and on WebGPU (SwiftShader here: a CPU emulation), side by
// side with ConvNetJS 0.3.0 (forward + backward of the same architecture) in the same run.
// Medians of repeated runs; machines here are shared and noisy, so read the ratios.
import { build } from './build.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

await build();
const server = await serveRoot();
const browser = await launch({ webgpu: true });
const results = {};
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
    if (backend === 'cpu') {
      await page.addScriptTag({ url: '/node_modules/convnetjs/build/convnet.js' });
      results['ConvNetJS 0.3.0'] = await page.evaluate(async (runs) => {
        const c = window.convnetjs;
        const net = new c.Net();
        net.makeLayers([
          { type: 'input', out_sx: 24, out_sy: 24, out_depth: 1 },
          { type: 'conv', sx: 5, filters: 8, stride: 1, pad: 2, activation: 'relu' },
          { type: 'pool', sx: 2, stride: 2 },
          { type: 'conv', sx: 5, filters: 16, stride: 1, pad: 2, activation: 'relu' },
          { type: 'pool', sx: 3, stride: 3 },
          { type: 'softmax', num_classes: 10 },
        ]);
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
      }, RUNS);
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
