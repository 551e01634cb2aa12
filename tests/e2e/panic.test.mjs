// A Rust panic in the engine is shown on the page, and the worker restarts by itself with the same net.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKENDS, openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });

for (const backend of BACKENDS) {
  test(`panic and automatic restart on ${backend}`, { timeout: 180_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
    try {
      const error = await page.evaluate(() => {
        const { client } = window.convlens;
        window.panicMessage = new Promise((resolve) => client.addEventListener('panic', (e) => resolve(e.detail.message), { once: true }));
        window.restarted = new Promise((resolve) => client.addEventListener('restarted', (e) => resolve(e.detail), { once: true }));
        return client.request('debugPanic', {}).then(() => null, (e) => e.message);
      });
      assert.ok(error, 'debugPanic rejects');
      const message = await page.evaluate(() => window.panicMessage);
      assert.ok(message, 'the panic hook gave a message');

      await page.waitForFunction((m) => {
        const banner = document.getElementById('banner');
        return !banner.hidden && banner.textContent.includes(m);
      }, message, { timeout: 10_000 });

      const info = await page.evaluate(() => window.restarted);
      assert.equal(info.backend, backend, 'restarted on the same backend');
      const probe = await page.evaluate(async () => {
        const { client, state } = window.convlens;
        const p = await client.probe(state.input, { kind: 'class', index: 3 });
        return { layers: p.layers.length, objective: p.objective, act: p.layers.at(-1).act instanceof Float32Array };
      });
      assert.equal(probe.layers, await page.evaluate(() => window.convlens.state.summary.layers.length));
      assert.ok(Number.isFinite(probe.objective));
      assert.ok(probe.act, 'probe results are Float32Arrays');
    } finally {
      await page.close();
    }
  });
}

// A wasm trap that is no Rust panic (no panic hook runs: memory access out of bounds, unreachable)
// and, on WebGPU, a request that never answers both restart the engine with the network, the
// newest exported weights (the autosave exports them) and the trainer's settings; the banner says
// what failed and what came back.
for (const backend of BACKENDS) {
  test(`a trap, and a WebGPU request that never answers, restart the engine with the trained weights, on ${backend}`, { timeout: 240_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}&fresh&gpuTimeout=20000`);
    try {
      const weights = () => page.evaluate(async () => Array.from(await window.convlens.client.exportWeights()));
      const loaded = await weights();
      await page.fill('#trainer-learningRate', '0.002');
      await page.dispatchEvent('#trainer-learningRate', 'change');
      await page.waitForFunction(() => window.convlens.state.trainer.learningRate === 0.002);
      for (let i = 0; i < 3; i++) {
        const before = await page.evaluate(() => window.convlens.loop.stats.steps);
        await page.click('#train-step');
        await page.waitForFunction((b) => window.convlens.loop.stats.steps === b + 1, before);
      }
      const trained = await weights(); // as the autosave does
      assert.notDeepEqual(trained, loaded, 'the steps changed the weights');

      const fail = (cmd) => page.evaluate((cmd) => {
        const { client } = window.convlens;
        window.failure = new Promise((resolve) => client.addEventListener('panic', (e) => resolve(e.detail), { once: true }));
        window.restarted = new Promise((resolve) => client.addEventListener('restarted', (e) => resolve(e.detail), { once: true }));
        return client.request(cmd, {}).then(() => null, (e) => e.message);
      }, cmd);
      const cases = [['debugTrap', /^wasm trap in debugTrap: unreachable/, backend]];
      if (backend === 'webgpu') cases.push(['debugHang', /^WebGPU did not answer 'debugHang' in 20 s$/, 'cpu']);
      for (const [cmd, what, after] of cases) {
        assert.ok(await fail(cmd), `${cmd} rejects`);
        const failure = await page.evaluate(() => window.failure);
        assert.match(failure.message, what);
        const info = await page.evaluate(() => window.restarted);
        assert.equal(info.backend, after);
        await page.waitForFunction(() => /The engine was restarted/.test(document.querySelector('#banner').textContent));
        const text = await page.textContent('#banner');
        assert.match(text, /with your network \(the weights saved at [^)]+\) and settings\. What failed: /);
        assert.match(text, what.source.startsWith('^WebGPU') ? /restarted on the CPU/ : /restarted with/);
        assert.deepEqual(await weights(), trained, `${cmd}: the trained weights came back`);
        const trainer = await page.evaluate(() => window.convlens.client.setTrainer({}));
        assert.equal(trainer.learningRate, 0.002, `${cmd}: the trainer's settings came back`);
        const probe = await page.evaluate(async () => {
          const { client, state } = window.convlens;
          return (await client.probe(state.input, { kind: 'class', index: 3 })).objective;
        });
        assert.ok(Number.isFinite(probe));
      }
    } finally {
      await page.close();
    }
  });
}
