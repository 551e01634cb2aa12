// Download the model (spec + weights in one safetensors file), open it again: the same numbers.
// A corrupt file, or one without a spec, is refused with a message and changes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: false });
let dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'convlens-files-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
});

const bannerText = (page) => page.$eval('#banner', (b) => (b.hidden ? null : b.textContent.trim()));
const snapshot = (page) => page.evaluate(() => window.convlens.state.probe.layers.map((l) => Array.from(l.act)));

async function open(page, file) {
  const seq = await page.evaluate(() => window.convlens.state.seq);
  await page.setInputFiles('#model-file', file);
  return seq;
}

test('download, change the net, open the download: the same net and numbers', { timeout: 120_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, '?backend=cpu');
  try {
    const before = await snapshot(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#model-save')]);
    assert.equal(download.suggestedFilename(), 'mnist-convnetjs.safetensors');
    const file = join(dir, download.suggestedFilename());
    await download.saveAs(file);
    const bytes = readFileSync(file);
    // The page loaded www/nets/mnist.safetensors; saving it gives back the same bytes.
    assert.ok(bytes.equals(readFileSync('www/nets/mnist.safetensors')), 'the download is bit for bit the file the page loaded');

    // Change the net (a random init), then open the file.
    let seq = await page.evaluate(() => window.convlens.state.seq);
    await page.fill('#spec-seed', '3');
    await page.fill('#spec-text', (await page.inputValue('#spec-text')).replace('"filters": 8', '"filters": 6'));
    await page.click('#spec-apply');
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
    seq = await open(page, file);
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
    assert.equal(await bannerText(page), null);
    assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.layers[1].shape), [8, 24, 24]);
    assert.match(await page.textContent('#status'), /weights from mnist-convnetjs\.safetensors/);
    const after = await snapshot(page);
    after.forEach((act, i) => assert.deepEqual(act, before[i], `layer ${i} activations identical`));

    // Corrupt and spec-less files are refused; the net stays.
    const corrupt = join(dir, 'corrupt.safetensors');
    writeFileSync(corrupt, bytes.subarray(0, bytes.length - 100));
    await open(page, corrupt);
    await page.waitForFunction(() => !document.querySelector('#banner').hidden);
    assert.match(await bannerText(page), /Could not open corrupt\.safetensors; the network was not changed: .*not a valid safetensors file/);
    assert.deepEqual(await snapshot(page), before);
  } finally {
    await page.close();
  }
});
