// Firefox: Debian's firefox-esr, headless, driven over WebDriver BiDi by puppeteer-core. Every page
// comes up on the CPU with no console error, the lecture page's views run, and the engine's numbers
// equal Chromium's (the same wasm: the loss surface on the worker pool, attribution maps, training
// steps). Skipped, and reported as skipped, where firefox-esr is not installed (.ci/run installs it).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { launch, serveRoot } from './browser.mjs';

const FIREFOX = process.env.CONVLENS_FIREFOX ?? '/usr/bin/firefox-esr';
const skip = existsSync(FIREFOX) ? false : `needs Firefox (${FIREFOX} not found: apt install firefox-esr, or set CONVLENS_FIREFOX)`;

const ctx = { server: null, firefox: null };
before(async () => {
  if (skip) return;
  ctx.server = await serveRoot();
  // The window's size from Firefox's own flags: puppeteer's setViewport also overrides the screen's
  // orientation, a BiDi command Firefox ESR 140 does not have.
  ctx.firefox = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, protocol: 'webDriverBiDi',
    defaultViewport: null, args: ['--width=1280', '--height=900'] });
});
after(async () => {
  await ctx.firefox?.close();
  await ctx.server?.close();
});

/** Opens `path` in Firefox and waits for window.convlens.ready (or `readyWhen`); returns {page, errors}. */
async function open(path, readyWhen = () => Boolean(window.convlens?.ready)) {
  const page = await ctx.firefox.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${ctx.server.url}${path}`);
  await page.waitForFunction(readyWhen, { timeout: 90_000 });
  await page.evaluate(() => window.convlens?.ready);
  return { page, errors };
}

/** What the engine computes for the comparison, run in a page with window.convlens (any browser). */
async function engineNumbers() {
  const { client } = window.convlens;
  const plane = await client.datasetView('landscape', { kind: 'plane', images: 32, points: 5, span: 0.5 });
  const image = await client.example('test', 0);
  const grad = await client.attribute(image, { kind: 'class', index: 7 }, { method: 'guided' });
  const ig = await client.attribute(image, { kind: 'class', index: 7 }, { method: 'integrated-gradients', steps: 20 });
  return {
    workers: plane.workers ?? 1,
    loss: Array.from(plane.landscape.loss),
    guided: Array.from(grad.abs),
    ig: Array.from(ig.abs),
    delta: ig.delta,
  };
}

test('Firefox: every page starts on the CPU with no console error', { skip, timeout: 300_000 }, async () => {
  for (const path of ['index.html?backend=cpu', 'dataset.html?backend=cpu', 'optimize.html?backend=cpu&net=mnist', 'attribution.html?backend=cpu', '2d.html?backend=cpu']) {
    const { page, errors } = await open(path);
    try {
      assert.equal(await page.evaluate(() => window.convlens.state?.backend ?? 'cpu'), 'cpu', path);
      assert.deepEqual(errors, [], `${path}: console errors`);
    } finally {
      await page.close();
    }
  }
});

test('Firefox: the lecture page\'s views come up and run', { skip, timeout: 400_000 }, async () => {
  const { page, errors } = await open('examples/lecture.html', () => document.querySelectorAll('convlens-view').length > 0);
  try {
    const ids = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.id));
    for (const id of ids) {
      await page.evaluate((id) => document.getElementById(id).scrollIntoView(), id);
      await page.waitForFunction((id) => Boolean(document.getElementById(id).ready), { timeout: 60_000 }, id);
      await page.evaluate((id) => document.getElementById(id).ready, id);
      if (await page.evaluate((id) => document.getElementById(id).hasAttribute('autorun'), id)) {
        await page.waitForFunction((id) => {
          const s = document.getElementById(id).state;
          return Boolean(Array.isArray(s) ? s.every((m) => m?.done) : s?.done);
        }, { timeout: 180_000 }, id);
      }
    }
    assert.equal(await page.evaluate(() => document.getElementById('plane').state.landscape.loss.length), 21 * 21);
    assert.deepEqual(await page.evaluate(() => Object.keys(document.getElementById('saliency').state.results)), ['gradient', 'guided']);
    assert.deepEqual(errors, [], 'no console errors');
  } finally {
    await page.close();
  }
});

test('Firefox computes the same numbers as Chromium: the loss surface on the worker pool, guided backprop, integrated gradients', { skip, timeout: 300_000 }, async () => {
  const { page, errors } = await open('dataset.html?backend=cpu#view=landscape&net=mnist');
  let firefox;
  try {
    firefox = await page.evaluate(engineNumbers);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
  const chromium = await launch({ webgpu: false });
  let reference;
  try {
    const cpage = await chromium.newPage();
    await cpage.goto(`${ctx.server.url}dataset.html?backend=cpu#view=landscape&net=mnist`);
    await cpage.waitForFunction(() => window.convlens?.ready);
    await cpage.evaluate(() => window.convlens.ready);
    reference = await cpage.evaluate(engineNumbers);
  } finally {
    await chromium.close();
  }
  assert.ok(firefox.workers >= 1);
  for (const key of ['loss', 'guided', 'ig']) {
    assert.equal(firefox[key].length, reference[key].length, key);
    const worst = firefox[key].reduce((m, v, i) => Math.max(m, Math.abs(v - reference[key][i]) / Math.max(1, Math.abs(reference[key][i]))), 0);
    assert.ok(worst <= 1e-6, `${key}: Firefox and Chromium differ by ${worst}`);
  }
  console.log(`Firefox vs Chromium: loss surface on ${firefox.workers} workers, guided backprop and integrated gradients agree (IG completeness δ ${firefox.delta})`);
});
