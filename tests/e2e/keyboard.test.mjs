// Keyboard only: on every page Tab walks through the controls in order, never onto something
// hidden, each with a visible focus ring (2 px or more), into the lecture page's elements too;
// and the controls work from the keyboard (Enter on a tab, a sample, a Share button; arrows in a
// select).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

/** The element that has the focus, through shadow roots, described. */
function focused() {
  let a = document.activeElement;
  while (a?.shadowRoot?.activeElement) a = a.shadowRoot.activeElement;
  if (!a || a === document.body) return null;
  const r = a.getBoundingClientRect();
  const s = getComputedStyle(a);
  return {
    tag: a.tagName.toLowerCase(),
    id: a.id,
    text: (a.getAttribute('aria-label') ?? a.textContent ?? '').trim().slice(0, 40),
    visible: r.width > 0 && r.height > 0 && s.visibility !== 'hidden',
    ring: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
  };
}

async function walk(page, max) {
  const seen = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const f = await page.evaluate(focused);
    if (!f) break; // back to the page itself: the walk went round once
    seen.push(f);
  }
  return seen;
}

async function open(path) {
  const page = await ctx.browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${ctx.server.url}${path}`);
  return { page, errors };
}

const PAGES = [
  ['index.html?backend=cpu', ['spec-preset', 'train-run', 'trainer-method']],
  ['dataset.html?backend=cpu', ['tab-patches', 'share-link']],
  ['optimize.html?backend=cpu&net=mnist', ['tab-visualize', 'share-link']],
  ['attribution.html?backend=cpu', ['net-select', 'share-link', 'occ-run']],
  ['2d.html?backend=cpu', []],
];

for (const [path, must] of PAGES) {
  test(`keyboard: Tab reaches every control of ${path.split('?')[0]} with a visible focus ring`, { timeout: 120_000 }, async () => {
    const { page, errors } = await open(path);
    try {
      await page.waitForFunction(() => Boolean(window.convlens?.ready));
      await page.evaluate(() => window.convlens.ready);
      const seen = await walk(page, 400);
      assert.ok(seen.length >= 5, `${seen.length} stops`);
      const hidden = seen.filter((f) => !f.visible);
      assert.deepEqual(hidden, [], 'focus never lands on something hidden');
      const ringless = seen.filter((f) => !f.ring);
      assert.deepEqual(ringless, [], 'every stop shows a focus ring');
      const ids = new Set(seen.map((f) => f.id));
      for (const id of must) assert.ok(ids.has(id), `Tab reaches #${id}`);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
}

test('keyboard: the controls work without a mouse (tabs, samples, selects, Share)', { timeout: 180_000 }, async () => {
  // The dataset page: Enter on the t-SNE tab shows it; Enter on "Copy link" copies or selects it.
  let { page } = await open('dataset.html?backend=cpu');
  try {
    await page.waitForFunction(() => Boolean(window.convlens?.ready));
    await page.evaluate(() => window.convlens.ready);
    await page.focus('#tab-tsne');
    await page.keyboard.press('Enter');
    assert.equal(await page.getAttribute('#tab-tsne', 'aria-selected'), 'true');
    assert.equal(await page.isVisible('#view-tsne'), true);
    await page.focus('#share-link');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /link (copied|selected)/.test(document.getElementById('status').textContent));
    assert.equal(await page.inputValue('#share-code'), page.url());
  } finally {
    await page.close();
  }
  // The attribution page: a sample chosen with Enter, the target's kind with the arrow keys.
  ({ page } = await open('attribution.html?backend=cpu'));
  try {
    await page.waitForFunction(() => Boolean(window.convlens?.ready));
    await page.evaluate(() => window.convlens.ready);
    await page.focus('#samples .sample:nth-child(5)');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.convlens.state.imageIndex === 4);
    await page.focus('#target-kind');
    await page.keyboard.press('ArrowDown');
    await page.waitForFunction(() => window.convlens.state.target?.kind === 'prob');
    assert.match(page.url(), /image=4&target=prob/);
  } finally {
    await page.close();
  }
});

test('keyboard: the layer view\'s objective from the keyboard: a channel with Enter, a unit of it and an fc unit with the arrow keys', { timeout: 120_000 }, async () => {
  const { page } = await open('?backend=cpu&fresh');
  try {
    await page.waitForFunction(() => Boolean(window.convlens?.ready));
    await page.evaluate(() => window.convlens.ready);
    const objective = () => page.evaluate(() => window.convlens.state.objective);
    // conv1 (layer 1, 8x24x24): channel 2's title.
    const title = page.locator('#layers .tile-title.clickable').nth(2);
    await title.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.convlens.state.objective?.kind === 'channel');
    assert.deepEqual(await objective(), { kind: 'channel', layer: 1, channel: 2 });
    // An arrow picks the unit at the centre (12, 12); the next ones move from it.
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => window.convlens.state.objective?.kind === 'neuron');
    const at = (y, x) => 2 * 576 + y * 24 + x;
    assert.deepEqual(await objective(), { kind: 'neuron', layer: 1, index: at(12, 12) });
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction((i) => window.convlens.state.objective?.index === i, at(12, 13));
    await page.keyboard.press('ArrowUp');
    await page.waitForFunction((i) => window.convlens.state.objective?.index === i, at(11, 13));
    // The fc layer's units: one tab stop, the arrow keys move along them.
    const fc = await page.evaluate(() => window.convlens.state.summary.layers.findIndex((l) => l.type === 'fc'));
    const row = page.locator('#layers canvas[role="slider"]').first();
    await row.focus();
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction((fc) => window.convlens.state.objective?.layer === fc, fc);
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => window.convlens.state.objective?.index === 1);
    assert.deepEqual(await objective(), { kind: 'neuron', layer: fc, index: 1 });
    assert.equal(await row.getAttribute('aria-valuenow'), '1');
  } finally {
    await page.close();
  }
});

test('keyboard: Tab goes into the lecture page\'s elements and through their controls', { timeout: 300_000 }, async () => {
  const { page, errors } = await open('examples/lecture.html');
  try {
    // Bring every element up first (they start near the viewport).
    const ids = await page.evaluate(() => [...document.querySelectorAll('convlens-view')].map((e) => e.id));
    for (const id of ids) {
      await page.locator(`#${id}`).scrollIntoViewIfNeeded();
      await page.waitForFunction((id) => Boolean(document.getElementById(id).ready), id, { timeout: 60_000 });
      await page.evaluate((id) => document.getElementById(id).ready, id);
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    const seen = await walk(page, 400);
    assert.deepEqual(seen.filter((f) => !f.visible), [], 'focus never lands on something hidden');
    assert.deepEqual(seen.filter((f) => !f.ring), [], 'every stop shows a focus ring');
    const texts = seen.map((f) => f.text);
    for (const want of ['Run', 'Train']) assert.ok(texts.includes(want), `Tab reaches a ${want} button inside an element: ${texts.join(' | ')}`);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});
