// The npm package (`npm run pack`, scripts/pack.mjs): its tarball installs into a scratch project
// (no network: it has no dependencies), and a page there that imports 'convlens' shows a view that
// runs, with the worker and the wasm engine found relative to the module.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pack } from '../../scripts/pack.mjs';
import { dataDir, serve } from '../../scripts/serve.mjs';
import { launch } from './browser.mjs';

const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'";
let scratch;
let server;
let cspServer;
let browser;
let gpuBrowser;

before(async () => {
  const tgz = await pack();
  scratch = mkdtempSync(join(tmpdir(), 'convlens-scratch-'));
  writeFileSync(join(scratch, 'package.json'), '{ "name": "scratch", "version": "1.0.0", "private": true }\n');
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tgz], { cwd: scratch, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm install ${tgz}:\n${r.stdout}\n${r.stderr}`);
  writeFileSync(join(scratch, 'index.html'), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>scratch</title>
<script type="importmap">{ "imports": { "convlens": "./node_modules/convlens/index.js" } }</script>
<script type="module">import { EngineClient } from 'convlens'; window.scratch = { EngineClient };</script>
</head><body>
<convlens-view id="v" net="mnist" view="landscape" kind="line" points="9" images="32" data="/data/" autorun></convlens-view>
</body></html>
`);
  // Every kind of view from the package, on a page served with a strict Content-Security-Policy.
  const views = ['layers', 'train', 'attribution', 'occlusion', 'patches', 'tsne', 'landscape', 'visualize', 'invert', 'adversarial', 'dream', 'style']
    .map((v) => `<convlens-view id="${v}" net="mnist" dataset="mnist5k" view="${v}"></convlens-view>`);
  writeFileSync(join(scratch, 'csp.html'), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="./node_modules/convlens/www/icon.svg"><title>every view</title>
<script type="module" src="./node_modules/convlens/index.js"></script>
</head><body>
${views.join('\n')}
<convlens-view id="toy2d" view="toy2d"></convlens-view>
</body></html>
`);
  server = await serve({ port: 0, root: scratch });
  cspServer = await serve({ port: 0, root: scratch, headers: { 'content-security-policy': CSP } });
  browser = await launch({ webgpu: false });
  gpuBrowser = await launch({ webgpu: true });
});
after(async () => {
  await browser?.close();
  await gpuBrowser?.close();
  await server?.close();
  await cspServer?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('the packed tarball installs and a page that imports it runs a view', { timeout: 300_000 }, async () => {
  const pkg = JSON.parse(readFileSync(join(scratch, 'node_modules', 'convlens', 'package.json'), 'utf8'));
  assert.equal(pkg.types, './index.d.ts');
  for (const f of ['index.js', 'index.d.ts', 'www/convlens-view.js', 'www/worker.js', 'www/pkg/convlens_webgpu_bg.wasm', 'www/pkg/convlens_cpu_bg.wasm']) {
    assert.ok(existsSync(join(scratch, 'node_modules', 'convlens', f)), f);
  }
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${server.url}index.html`);
    await page.waitForFunction(() => document.getElementById('v').state?.done, null, { timeout: 120_000 });
    const n = await page.evaluate(() => document.getElementById('v').state.landscape.loss.length);
    assert.equal(n, 9);
    assert.equal(await page.evaluate(() => typeof window.scratch.EngineClient), 'function', 'the engine client is exported');
    assert.ok(page.workers()[0].url().includes('/node_modules/convlens/www/worker.js'), page.workers()[0].url());
    // Without the data directory the view falls back to the package's built-in digits after the 404s.
    const haveMnist = existsSync(join(dataDir(), 'mnist'));
    assert.deepEqual(errors.filter((e) => haveMnist || !/Failed to load resource: .* 404/.test(e)), []);
  } finally {
    await page.close();
  }
});

for (const backend of ['cpu', 'webgpu']) {
  test(`from the tarball under a strict CSP, every kind of view comes up on ${backend} with no console error`, { timeout: 400_000 }, async () => {
    const page = await (backend === 'webgpu' ? gpuBrowser : browser).newPage({ viewport: { width: 1200, height: 900 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      await page.goto(`${cspServer.url}csp.html?backend=${backend}`);
      const ids = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.id));
      for (const id of ids) {
        // Kept in view until it is up (out of view, an element holds its requests).
        await page.waitForFunction((id) => {
          const e = document.getElementById(id);
          e.scrollIntoView({ block: 'center' });
          return e.dataset.ready === 'true' || Boolean(e.shadowRoot.querySelector('.cl-status.error'));
        }, id, { timeout: 120_000, polling: 500 });
        const status = await page.evaluate((id) => document.getElementById(id).shadowRoot.querySelector('.cl-status').textContent, id);
        assert.equal(await page.evaluate((id) => document.getElementById(id).dataset.ready, id), 'true', `${id}: ${status}`);
        assert.equal(await page.evaluate((id) => document.getElementById(id).client.info.backend, id), backend, `${id} on ${backend}`);
      }
      assert.equal(ids.length, 13);
      assert.deepEqual(errors, [], 'console errors');
    } finally {
      await page.close();
    }
  });
}
