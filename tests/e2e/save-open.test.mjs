// Download the model (spec + weights in one safetensors file), open it again: the same numbers.
// A corrupt file is refused with a message and changes nothing; one without a spec loads as the weights of the current network when its tensors fit, and is refused saying what to do when they do not.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BACKENDS, openPage, useBrowser } from './browser.mjs';

const ctx = useBrowser({ webgpu: true });
let dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'convlens-files-'));
});
after(async () => {
  rmSync(dir, { recursive: true, force: true });
});

const bannerText = (page) => page.$eval('#banner', (b) => (b.hidden ? null : b.textContent.trim()));
const snapshot = (page) => page.evaluate(() => window.convlens.state.probe.layers.map((l) => Array.from(l.act)));

/** The same safetensors file without its metadata (where ConvLens keeps the spec). */
function withoutSpec(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  delete header.__metadata__;
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, bytes.subarray(8 + n)]);
}

async function open(page, file) {
  const seq = await page.evaluate(() => window.convlens.state.seq);
  await page.setInputFiles('#model-file', file);
  return seq;
}

for (const backend of BACKENDS) {
test(`download, change the net, open the download: the same net and numbers, on ${backend}`, { timeout: 180_000 }, async () => {
  const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
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

    // A file without a spec (PyTorch's own save) is taken as the weights of the network in the
    // Network box when its tensors fit (issue 12)...
    const bare = join(dir, 'bare.safetensors');
    writeFileSync(bare, withoutSpec(bytes));
    seq = await page.evaluate(() => window.convlens.state.seq);
    await page.fill('#spec-seed', '5');
    await page.click('#spec-apply');
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
    seq = await open(page, bare);
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
    (await snapshot(page)).forEach((act, i) => assert.deepEqual(act, before[i], `spec-less file: layer ${i} activations identical`));
    // ... and refused, saying what to do, when they do not.
    seq = await page.evaluate(() => window.convlens.state.seq);
    await page.fill('#spec-text', (await page.inputValue('#spec-text')).replace(/"filters": ?8/, '"filters": 6'));
    await page.click('#spec-apply');
    await page.waitForFunction((s) => window.convlens.state.seq > s, seq);
    assert.deepEqual(await page.evaluate(() => window.convlens.state.summary.layers[1].shape), [6, 24, 24]);
    const other = await snapshot(page);
    await page.evaluate(() => document.querySelector('#banner').setAttribute('hidden', ''));
    const bare2 = join(dir, 'bare2.safetensors');
    writeFileSync(bare2, withoutSpec(bytes));
    await open(page, bare2);
    await page.waitForFunction(() => !document.querySelector('#banner').hidden);
    assert.match(await bannerText(page), /Could not open bare2\.safetensors; the network was not changed: .*it carries no network spec, and its tensors do not fit the network in the Network box \(weights: .*\)\. Put the network it was saved from into the Network box, Apply, and open the file again/);
    assert.deepEqual(await snapshot(page), other);
  } finally {
    await page.close();
  }
});
}
