// npm run download-data: fetches the ConvNetJS MNIST and CIFAR-10 sprite sheets, CNN Explainer's
// Tiny VGG (TF.js model and example images), Coral's quantized MobileNetV2 (.tflite, ImageNet labels,
// two test images) and Van Gogh's Starry Night (a style image) from their public
// origins (GitHub, pinned commits) into ./data (or $CONVLENS_DATA_DIR / --out DIR) and checks each
// file against data-sources/SHA256SUMS. Files already present with the right checksum are kept.
// The page serves ./data at data/; the CLI reads it with --data data.
//   node scripts/download-data.mjs [--out DIR] [mnist] [cifar10] [tiny-vgg] [mobilenet] [images]
// CONVLENS_DATA_ORIGIN=URL fetches every file from URL/<path> instead (a mirror; also the test).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const RAW = 'https://raw.githubusercontent.com';
// Origins, as ../shared/data/README.md records them.
const ORIGIN = {
  // (ConvNetJS is MIT-licensed; MNIST is CC BY-SA 3.0, LeCun & Cortes; CIFAR-10: Krizhevsky 2009.)
  mnist: (f) => `${RAW}/karpathy/convnetjs/b9683e9374fa90b08b1c977544597ab191b31399/demo/mnist/${f}`,
  cifar10: (f) => (/_batch_[0-3]\.png$/.test(f)
    ? `${RAW}/karpathy/convnetjs/d509082ecefb736eb73d513fbc5b7b5af2236933/demo/cifar10/${f}`
    : `${RAW}/larrabeew/covnetJS/0d2866f3c12431c9044d3f275a588c12dc785926/demo/cifar10/${f}`),
  // CNN Explainer's Tiny VGG (MIT, Wang et al. 2020; trained on Tiny ImageNet) and its example images.
  // MobileNetV2 1.0 224, quantized (Apache-2.0, google-coral/test_data); read as it is (crates/core/src/tflite.rs).
  mobilenet: (f) => `${RAW}/google-coral/test_data/104342d2d3480b3e66203073dac24f4e2dbb4c41/${f}`,
  // The Starry Night (1889, public domain) as ConvNetJS's demos ship it.
  images: (f) => `${RAW}/karpathy/convnetjs/d509082ecefb736eb73d513fbc5b7b5af2236933/demo/imgs/${f}`,
  'tiny-vgg': (f, path) => `${RAW}/poloclub/cnn-explainer/d0971f9447ed9806022a3d47587b62394682bc51/public/assets/${path.startsWith('tiny-vgg/img/') ? 'img' : 'data'}/${f}`,
};

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

async function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf('--out');
  const out = resolve(at >= 0 ? args.splice(at, 2)[1] : process.env.CONVLENS_DATA_DIR ?? join(ROOT, 'data'));
  const sets = args.length ? args : ['mnist', 'cifar10', 'tiny-vgg', 'mobilenet', 'images'];
  const sums = (await readFile(join(ROOT, 'data-sources/SHA256SUMS'), 'utf8'))
    .trim().split('\n').map((l) => l.split(/\s+/)).map(([hash, p]) => ({ hash, path: p.replace(/^\.\//, '') }));
  const mirror = process.env.CONVLENS_DATA_ORIGIN;
  let fetched = 0;
  for (const { hash, path } of sums) {
    const set = path.split('/')[0];
    const file = path.split('/').pop();
    if (!sets.includes(set)) continue;
    if (!ORIGIN[set]) throw new Error(`unknown dataset '${set}'`);
    const dest = join(out, path);
    const have = await readFile(dest).catch(() => null);
    if (have && sha256(have) === hash) continue;
    const url = mirror ? `${mirror.replace(/\/$/, '')}/${path}` : ORIGIN[set](file, path);
    process.stdout.write(`${path} ← ${url} … `);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const bytes = Buffer.from(await res.arrayBuffer());
    const got = sha256(bytes);
    if (got !== hash) throw new Error(`${path}: checksum mismatch (got ${got}, expected ${hash}); nothing was written`);
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(`${dest}.part`, bytes);
    await rename(`${dest}.part`, dest);
    fetched++;
    console.log(`${(bytes.length / 1e6).toFixed(1)} MB ok`);
  }
  console.log(`${sets.join(' and ')} in ${out}: ${fetched} file(s) fetched, all checksums match`);
}

main().catch((e) => {
  console.error(`download-data: ${e.message}`);
  process.exit(1);
});
