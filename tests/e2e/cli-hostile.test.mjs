// The CLI against careless input (issue 12): a closed pipe ends it quietly, a negative number reaches
// the engine's range check (not clap's "unexpected argument"), and a network too large to allocate
// is refused with its size before anything is allocated; transparency is composited on black, as in the page.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import { ROOT, targetDir } from './browser.mjs';
import { readNpy } from './npy.mjs';

const CLI = join(targetDir(), 'release', 'convlens');

/** A w x h RGBA PNG from `rgba(x, y)` -> [r, g, b, a]. */
function png(w, h, rgba) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8 bits, RGBA
  const rows = [];
  for (let y = 0; y < h; y++) rows.push(Buffer.from([0, ...Array.from({ length: w }, (_, x) => rgba(x, y)).flat()]));
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

test('the CLI: a closed pipe, a negative number, a net too large to allocate, a transparent image, image files read as the pages read them', () => {
  assert.ok(existsSync(CLI), `${CLI} missing: build it with \`cargo build --release --workspace\``);
  const piped = spawnSync('sh', ['-c', `"${CLI}" info --model www/nets/cifar10.json | head -1`], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(piped.stderr, '', 'no panic on the broken pipe');
  assert.match(piped.stdout, /^cifar10/);

  const lr = spawnSync(CLI, ['train', '--model', 'www/nets/mnist.json', '--dataset', 'mnist5k', '--lr', '-1', '--out', join(tmpdir(), 'never.safetensors')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(lr.status, 1);
  assert.equal(lr.stderr.trim(), "convlens: input: trainer setting 'learningRate': -1 is out of range; expected 0.000001 to inf");

  const dir = mkdtempSync(join(tmpdir(), 'convlens-hostile-'));
  try {
    // A diverging rate stops training, names the step and suggests a rate; nothing is written.
    const never = join(dir, 'never.safetensors');
    const diverge = spawnSync(CLI, ['train', '--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors', '--dataset', 'mnist5k',
      '--trainer', 'sgd', '--lr', '1e6', '--epochs', '0.05', '--out', never], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(diverge.status, 1, diverge.stdout + diverge.stderr);
    assert.match(diverge.stderr, /^convlens: training diverged: step 1 .*The weights are back to before step 1; lower the learning rate \(1e6\): try 0\.01\./);
    assert.ok(!existsSync(never));

    const spec = join(dir, 'huge.json');
    writeFileSync(spec, '{"layers":[{"type":"input","width":1,"height":1,"depth":1000000},{"type":"conv","size":1,"filters":1000000},{"type":"fc","units":2}]}');
    const huge = spawnSync(CLI, ['info', '--model', spec], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(huge.status, 1, 'refused, not aborted');
    assert.match(huge.stderr, /conv1\.weight \[1000000, 1000000, 1, 1\] takes the network past 4294967296 parameters/);

    // An image whose header claims 100000 x 100000 pixels is refused before it is decoded.
    const big = join(dir, 'big.png');
    writeFileSync(big, png(1, 1, () => [0, 0, 0, 255]));
    const bytes = readFileSync(big);
    bytes.writeUInt32BE(100000, 16);
    bytes.writeUInt32BE(100000, 20);
    bytes.writeUInt32BE(crc32(bytes.subarray(12, 29)), 29); // the IHDR chunk's CRC
    writeFileSync(big, bytes);
    const bomb = spawnSync(CLI, ['probe', '--model', 'www/nets/mnist.json', '--image', big, '--out', join(dir, 'never')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(bomb.status, 1);
    assert.match(bomb.stderr, /big\.png is 100000x100000 pixels; this engine takes images of at most \d+ pixels/);

    // Transparency is composited on black, as the page's canvas does: transparent red is black, not
    // the gray of its dropped alpha.
    const image = join(dir, 'rgba.png');
    writeFileSync(image, png(24, 24, (x) => (x < 12 ? [255, 0, 0, 0] : [255, 255, 255, 255])));
    const out = join(dir, 'probe');
    const probe = spawnSync(CLI, ['probe', '--model', 'www/nets/mnist.json', '--weights', 'www/nets/mnist.safetensors', '--image', image, '--out', out], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(probe.status, 0, probe.stderr);
    const input = readNpy(join(out, '0_input_act.npy')).data;
    assert.deepEqual([input[0], input[11], input[12], input[23]], [0, 0, 1, 1]);

    // An image file is read as the pages' loadSquare reads it: scaled to cover the input (not
    // cropped at its own size) and centre-cropped; gray is the mean of R, G and B (not luma).
    const probeOf = (name, pixel, size = 48, height = size) => {
      const file = join(dir, name);
      writeFileSync(file, png(size, height, pixel));
      const o = join(dir, `${name}-probe`);
      const r = spawnSync(CLI, ['probe', '--model', 'www/nets/mnist.json', '--image', file, '--out', o], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return readNpy(join(o, '0_input_act.npy')).data;
    };
    const halved = probeOf('edge.png', (x) => (x < 12 ? [0, 0, 0, 255] : [255, 255, 255, 255]));
    assert.equal(halved.length, 24 * 24);
    assert.deepEqual([halved[2], halved[3], halved[9], halved[23]], [0, 0, 1, 1], 'the 48-pixel image is halved, its black edge kept');
    const small = probeOf('small.png', (x) => (x < 6 ? [0, 0, 0, 255] : [255, 255, 255, 255]), 12);
    assert.deepEqual([small[0], small[1], small[20], small[23]], [0, 0, 1, 1], 'a 12-pixel image is doubled');
    const red = probeOf('red.png', () => [255, 0, 0, 255], 24);
    assert.ok(Math.abs(red[0] - 1 / 3) < 1e-6, `pure red in a gray net: ${red[0]} (the mean of R, G and B)`);
    // A long thin image is cropped to its box before it is scaled (not scaled whole to 24 x 96,000).
    const thin = probeOf('thin.png', () => [255, 255, 255, 255], 1, 4000);
    assert.ok(thin.length === 24 * 24 && thin.every((v) => v === 1), 'a 1 x 4000 white image is a white input');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
