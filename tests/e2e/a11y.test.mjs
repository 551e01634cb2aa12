// Accessibility: axe-core (npm, run in the page) finds no serious or critical violation on any
// page, on each of its tabs, and on the lecture page once every <convlens-view> on it is up.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { openPage, ROOT, useBrowser } from './browser.mjs';

const AXE = readFileSync(join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const ctx = useBrowser({ webgpu: false });

/** Serious and critical violations on the page as it is now: ["rule: target", ...]. */
async function violations(page) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(AXE);
  const found = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(' ')}`)));
  return found;
}

const PAGES = [
  ['index.html?backend=cpu', []],
  ['2d.html?backend=cpu', []],
  ['attribution.html?backend=cpu', []],
  ['optimize.html?backend=cpu&net=mnist', ['visualize', 'invert', 'adversarial', 'dream', 'style']],
  ['dataset.html?backend=cpu', ['patches', 'tsne', 'landscape']],
];

for (const [path, tabs] of PAGES) {
  test(`axe-core: no serious or critical violations on ${path.split('?')[0]}${tabs.length ? ' (every tab)' : ''}, light and dark`, { timeout: 120_000 }, async () => {
    const page = await openPage(ctx.browser, ctx.server.url, path);
    try {
      await page.emulateMedia({ colorScheme: 'dark' });
      const dark = (await violations(page)).map((v) => `[dark] ${v}`);
      await page.emulateMedia({ colorScheme: 'light' });
      const found = [...dark, ...await violations(page)];
      for (const t of tabs) {
        await page.click(`#tab-${t}`);
        found.push(...(await violations(page)).map((v) => `[${t}] ${v}`));
      }
      assert.deepEqual([...new Set(found)], []);
    } finally {
      await page.close();
    }
  });
}

test('axe-core: no serious or critical violations on the lecture page with its views up', { timeout: 300_000 }, async () => {
  const page = await ctx.browser.newPage({ viewport: { width: 1280, height: 900 } });
  try {
    await page.goto(`${ctx.server.url}examples/lecture.html`);
    const ids = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.id));
    for (const id of ids) {
      await page.locator(`#${id}`).scrollIntoViewIfNeeded();
      await page.waitForFunction((id) => document.getElementById(id).ready, id, { timeout: 60_000 });
      await page.evaluate((id) => document.getElementById(id).ready, id);
    }
    assert.deepEqual(await violations(page), []);
  } finally {
    await page.close();
  }
});
