// npm run download-data, against a local mirror of the origins (CONVLENS_DATA_ORIGIN): files are
// checked against data-sources/SHA256SUMS, and a file with the wrong checksum is refused.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dataDir, serve } from '../../scripts/serve.mjs';
import { ROOT } from './browser.mjs';

const DATA = dataDir();
const script = join(ROOT, 'scripts/download-data.mjs');
// Asynchronous: the mirror is served from this process.
function download(origin, out, ...sets) {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [script, '--out', out, ...sets], { env: { ...process.env, CONVLENS_DATA_ORIGIN: origin } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => resolvePromise({ status, stdout, stderr }));
  });
}

test('download-data fetches CIFAR-10 and MobileNetV2, checks every file, and refuses a corrupt one', { skip: !(existsSync(join(DATA, 'cifar10')) && existsSync(join(DATA, 'mobilenet'))) && 'no data directory' }, async () => {
  const good = await serve({ port: 0, root: DATA });
  const badRoot = await mkdtemp(join(tmpdir(), 'convlens-mirror-'));
  await mkdir(join(badRoot, 'cifar10'));
  for (const f of await readdir(join(DATA, 'cifar10'))) await copyFile(join(DATA, 'cifar10', f), join(badRoot, 'cifar10', f));
  await writeFile(join(badRoot, 'cifar10', 'cifar10_batch_2.png'), 'not the real file');
  const bad = await serve({ port: 0, root: badRoot });
  try {
    const out = await mkdtemp(join(tmpdir(), 'convlens-data-'));
    const r = await download(good.url, out, 'cifar10');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /cifar10 in .*: 6 file\(s\) fetched, all checksums match/);
    const m = await download(good.url, out, 'mobilenet', 'images');
    assert.equal(m.status, 0, m.stderr);
    assert.match(m.stdout, /mobilenet and images in .*: 5 file\(s\) fetched, all checksums match/);
    const again = await download(good.url, out, 'cifar10');
    assert.match(again.stdout, /0 file\(s\) fetched/, 'files already there are kept');
    const out2 = await mkdtemp(join(tmpdir(), 'convlens-data-'));
    const r2 = await download(bad.url, out2, 'cifar10');
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /cifar10\/cifar10_batch_2\.png: checksum mismatch .* nothing was written/);
    assert.equal(existsSync(join(out2, 'cifar10', 'cifar10_batch_2.png')), false);
  } finally {
    await good.close();
    await bad.close();
  }
});
