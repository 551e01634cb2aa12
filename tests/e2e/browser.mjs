// Shared helpers for the browser tests: launch Debian's chromium headless and serve the repository root.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { serve } from '../../scripts/serve.mjs';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const BACKENDS = ['cpu', 'webgpu'];

// Work as root in a container. Playwright adds --headless and a fresh temporary --user-data-dir itself.
const BASE_ARGS = [
  '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
// Checked with Chromium 156 (Debian 12): --enable-unsafe-webgpu alone gives a SwiftShader adapter
// (vendor 'google', architecture 'swiftshader', isFallbackAdapter true), also in workers and with
// --disable-gpu; without it requestAdapter() returns null.
const WEBGPU_ARGS = ['--enable-unsafe-webgpu'];

/** Launches chromium; webgpu: false gives a browser without a WebGPU adapter. */
export async function launch({ webgpu = true } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install -y chromium, or set CHROMIUM)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_ARGS, ...(webgpu ? WEBGPU_ARGS : ['--disable-gpu'])],
    timeout: 60_000,
  });
}

/**
 * Registers hooks that serve the repository and launch chromium before the file's tests and
 * close both after them; returns `{ server, browser }`, filled in by the time tests run.
 */
export function useBrowser({ webgpu = true } = {}) {
  const ctx = { server: null, browser: null };
  before(async () => {
    ctx.server = await serveRoot();
    ctx.browser = await launch({ webgpu });
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.server?.close();
  });
  return ctx;
}

/** Serves the repository root on a free port: { url, close() }. */
export function serveRoot() {
  return serve({ port: 0 });
}

/**
 * Opens the page (`query` like '?backend=cpu'), forwards its console errors to the test log and waits for
 * window.convlens.ready.
 */
export async function openPage(browser, baseUrl, query = '') {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
  page.on('pageerror', (e) => console.error(`[page] ${e.message}`));
  await page.goto(`${baseUrl}${query}`);
  await page.waitForFunction(() => window.convlens?.ready);
  await page.evaluate(() => window.convlens.ready);
  return page;
}

/** The cargo target directory ($CARGO_TARGET_DIR or ./target). */
export function targetDir() {
  return resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
}

export async function screenshotPath(name) {
  const file = join(targetDir(), 'screenshots', name);
  await mkdir(dirname(file), { recursive: true });
  return file;
}
