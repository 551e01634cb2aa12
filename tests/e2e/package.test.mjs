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

let scratch;
let server;
let browser;

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
  server = await serve({ port: 0, root: scratch });
  browser = await launch({ webgpu: false });
});
after(async () => {
  await browser?.close();
  await server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('the packed tarball installs and a page that imports it runs a view', { timeout: 300_000 }, async () => {
  const pkg = JSON.parse(readFileSync(join(scratch, 'node_modules', 'convlens', 'package.json'), 'utf8'));
  assert.equal(pkg.types, './index.d.ts');
  for (const f of ['index.js', 'index.d.ts', 'www/convlens-view.js', 'www/worker.js', 'www/pkg/convlens_wasm_bg.wasm']) {
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
