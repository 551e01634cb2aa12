// The 2-D page: the toy net separates the circle data; clicks add and remove points; both views draw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, screenshotPath, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });

test('2-D: the toy net learns the circle, points are added and removed by clicking', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '2d.html?paused');
  try {
    assert.equal(await page.evaluate(() => window.convlens.state.labels.length), 100);
    const acc = await page.evaluate(async () => {
      const { client } = window.convlens;
      for (let i = 0; i < 10; i++) await client.trainSteps(100);
      const { probs, labels } = await client.evaluate('test', 0, 100);
      let correct = 0;
      for (let i = 0; i < 100; i++) correct += (probs[2 * i + 1] > probs[2 * i]) === (labels[i] === 1);
      return correct / 100;
    });
    assert.ok(acc >= 0.95, `accuracy on the circle data ${acc}`);
    await page.evaluate(() => window.convlens.draw());
    const box = await page.$eval('#regions', (c) => { const r = c.getBoundingClientRect(); return { x: r.x, y: r.y, w: r.width }; });
    await page.mouse.click(box.x + 20, box.y + 20);
    await page.keyboard.down('Shift');
    await page.mouse.click(box.x + 30, box.y + 20);
    await page.keyboard.up('Shift');
    let labels = await page.evaluate(() => window.convlens.state.labels.slice(-2));
    assert.deepEqual(labels, [0, 1]);
    await page.mouse.click(box.x + 30, box.y + 20, { button: 'right' });
    labels = await page.evaluate(() => window.convlens.state.labels);
    assert.equal(labels.length, 101);
    const pt = await page.evaluate(() => window.convlens.state.points.slice(-2));
    assert.ok(pt[0] < -5 && pt[1] > 5, `the top-left click is at about (-5.7, 5.7): ${pt}`);
    // Both canvases have more than one colour.
    const colours = await page.evaluate(() => ['regions', 'warp'].map((id) => {
      const c = document.getElementById(id);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const set = new Set();
      for (let i = 0; i < d.length; i += 4 * 97) set.add(`${d[i]},${d[i + 1]},${d[i + 2]}`);
      return set.size;
    }));
    assert.ok(colours.every((n) => n > 5), `colours drawn: ${colours}`);
    await page.click('#train-run');
    await page.waitForFunction(() => window.convlens.loop.stats.examples > 2000);
    await page.click('#train-run');
    await page.screenshot({ path: await screenshotPath('toy2d.png') });
  } finally {
    await page.close();
  }
});
