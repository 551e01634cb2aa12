// The static build (`npm run build`, scripts/dist.mjs) served under a sub-path (/course/convlens/)
// with a strict Content-Security-Policy and no COOP/COEP: every page and the lecture page come up
// with no console error and no request to another origin, on the CPU and on WebGPU (SwiftShader);
// the data comes from data/ at the site's root and is kept in the Cache API.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildDist } from '../../scripts/dist.mjs';
import { dataDir, serve } from '../../scripts/serve.mjs';
import { launch } from './browser.mjs';

// Without the data directory the views fall back to the built-in digits, after the browser has
// logged the data directory's 404s: those alone are expected then.
const HAVE_MNIST = existsSync(join(dataDir(), 'mnist'));
const unexpected = (errors) => errors.filter((e) => HAVE_MNIST || !/Failed to load resource: .* 404/.test(e));

const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'";
const PREFIX = '/course/convlens/';
let dist;
let server;
let browser;

before(async () => {
  dist = await buildDist({ out: join(mkdtempSync(join(tmpdir(), 'convlens-dist-')), 'dist') });
  server = await serve({ port: 0, root: dist, prefix: PREFIX, headers: { 'content-security-policy': CSP } });
  browser = await launch({ webgpu: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
  if (dist) rmSync(join(dist, '..'), { recursive: true, force: true });
});

const PAGES = ['index.html', 'dataset.html', 'optimize.html?net=mnist', 'attribution.html', '2d.html'];

for (const backend of ['cpu', 'webgpu']) {
  test(`dist/ under ${PREFIX} with a strict CSP: every page and the lecture page's views start on ${backend}, same origin only`, { timeout: 900_000 }, async () => {
    assert.ok(existsSync(join(dist, 'www', 'pkg', 'convlens_webgpu_bg.wasm')));
    assert.ok(existsSync(join(dist, 'www', 'pkg', 'convlens_cpu_bg.wasm')));
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const origin = new URL(server.url).origin;
    const foreign = [];
    context.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol !== 'data:' && u.protocol !== 'blob:' && u.origin !== origin) foreign.push(r.url());
    });
    try {
      for (const path of PAGES) {
        const page = await context.newPage();
        const errors = [];
        page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
        page.on('pageerror', (e) => errors.push(e.message));
        const sep = path.includes('?') ? '&' : '?';
        await page.goto(`${server.url}${PREFIX.slice(1)}${path}${sep}backend=${backend}`);
        await page.waitForFunction(() => window.convlens?.ready, null, { timeout: 60_000 });
        await page.evaluate(() => window.convlens.ready);
        assert.equal(await page.evaluate(() => document.body.dataset.ready ?? 'true'), 'true', `${path} ready`);
        assert.deepEqual(unexpected(errors), [], `${path}: console errors`);
        await page.close();
      }
      // The lecture page: its elements, scrolled through, on the backend its URL asks for (the
      // elements take the page's ?backend=). On SwiftShader the views that run as they appear (the
      // loss surface) hold the shared worker for minutes, so the later views come up late.
      const page = await context.newPage();
      const errors = [];
      page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${server.url}${PREFIX.slice(1)}examples/lecture.html?backend=${backend}`);
      const t0 = Date.now();
      const ids = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.id));
      assert.ok(ids.length >= 11, `${ids.length} views`);
      for (const id of ids) {
        // Scrolled to until it is up: a view above that is still coming up may push it away. On
        // SwiftShader the views that run as they appear (the loss surface) keep the GPU process
        // busy, and with it the page's frames (and so the IntersectionObserver): minutes.
        // Kept in view until it is up (out of view, an element holds its requests).
        await page.waitForFunction((id) => {
          const e = document.getElementById(id);
          e.scrollIntoView({ block: 'center' });
          return e.dataset.ready === 'true' || Boolean(e.shadowRoot.querySelector('.cl-status.error'));
        }, id, { timeout: 300_000, polling: 1000 });
        await page.evaluate((id) => document.getElementById(id).ready, id);
        assert.equal(await page.evaluate((id) => document.getElementById(id).client.info.backend, id), backend, `${id} on ${backend}`);
        console.log(`${id} up on ${backend} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      }
      // The large data is in the Cache API now.
      const cached = await page.evaluate(async () => (await (await caches.open('convlens-data-v1')).keys()).map((r) => r.url));
      // MNIST from the data directory, or (without one) the built-in digits the views fall back to.
      const want = existsSync(join(dataDir(), 'mnist')) ? '/course/convlens/data/mnist/' : '/course/convlens/www/data/mnist5k';
      assert.ok(cached.some((u) => u.includes(want)), `cached: ${cached.slice(0, 3)}`);
      assert.deepEqual(unexpected(errors), [], 'lecture page: console errors');
      await page.close();
      assert.deepEqual(foreign, [], 'requests to other origins');
    } finally {
      await context.close();
    }
  });
}
