// Training agrees across backends: the same net, data order and trainer on CPU and WebGPU give the
// same losses and weights after a chunk of steps (to float rounding).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });

async function run(backend, method) {
  const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}&fresh`);
  try {
    return await page.evaluate(async (method) => {
      const { client, state } = window.convlens;
      await client.load(state.spec, null, 3);
      await client.loadDataset('mnist5k', new URL('/www/data/', location.href));
      await client.setTrainer({ method, learningRate: 0.01, momentum: 0.9, batchSize: 10, l1: 0.0001, l2: 0.001 });
      const r = await client.trainSteps(8);
      const x = await client.example('test', 0);
      const probs = await client.forward(x);
      return { backend: client.info.backend, losses: Array.from(r.losses), correct: Array.from(r.correct), probs: Array.from(probs) };
    }, method);
  } finally {
    await page.close();
  }
}

for (const method of ['momentum', 'adam']) {
  test(`8 steps of ${method} give the same losses and predictions on CPU and WebGPU`, { timeout: 240_000 }, async () => {
    const cpu = await run('cpu', method);
    const gpu = await run('webgpu', method);
    assert.equal(gpu.backend, 'webgpu');
    assert.equal(cpu.losses.length, 8);
    assert.deepEqual(gpu.correct, cpu.correct);
    cpu.losses.forEach((l, i) => assert.ok(Math.abs(l - gpu.losses[i]) <= 1e-4 * (1 + Math.abs(l)), `step ${i}: ${l} vs ${gpu.losses[i]}`));
    cpu.probs.forEach((p, i) => assert.ok(Math.abs(p - gpu.probs[i]) <= 1e-4, `class ${i}: ${p} vs ${gpu.probs[i]}`));
  });
}
