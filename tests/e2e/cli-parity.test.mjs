// The wasm engine in the page (both backends) gives the same activations and gradients as the native CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BACKENDS, launch, openPage, ROOT, serveRoot, targetDir } from './browser.mjs';
import { readNpy } from './npy.mjs';

const MODEL = 'www/nets/mnist.json';
const IMAGE = 'tests/fixtures/digit.npy';
const SEED = 7;
const TARGET = { kind: 'class', index: 3 };

let server;
let browser;
let outDir;
let reference; // [{ index, name, act, grad }] from the CLI, by layer index

before(async () => {
  const cli = join(targetDir(), 'release', process.platform === 'win32' ? 'convlens.exe' : 'convlens');
  assert.ok(existsSync(cli), `${cli} missing: build it with \`cargo build --release -p convlens-cli\``);
  outDir = mkdtempSync(join(tmpdir(), 'convlens-parity-'));
  const args = ['probe', '--model', MODEL, '--seed', String(SEED), '--image', IMAGE, '--target', `class:${TARGET.index}`, '--out', outDir];
  const run = spawnSync(cli, args, { cwd: ROOT, encoding: 'utf8' });
  assert.equal(run.status, 0, `convlens ${args.join(' ')} failed:\n${run.stdout}\n${run.stderr}`);

  reference = [];
  for (const file of readdirSync(outDir)) {
    const m = file.match(/^(\d+)_(.+)_(act|grad)\.npy$/);
    if (!m) continue;
    const index = Number(m[1]);
    reference[index] ??= { index, name: m[2] };
    reference[index][m[3]] = readNpy(join(outDir, file));
  }
  server = await serveRoot();
  browser = await launch({ webgpu: true });
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

function compare(what, got, ref) {
  assert.deepEqual(got.shape, ref.shape, `${what}: shape`);
  assert.equal(got.data.length, ref.data.length, `${what}: length`);
  let maxRef = 0;
  let maxDiff = 0;
  let at = -1;
  for (let i = 0; i < ref.data.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
    const d = Math.abs(got.data[i] - ref.data[i]);
    if (!(d <= maxDiff)) {
      maxDiff = d;
      at = i;
    }
  }
  const tol = 1e-4 * Math.max(1, maxRef);
  assert.ok(maxDiff <= tol, `${what}: max |diff| ${maxDiff} > ${tol} at flat index ${at} (page ${got.data[at]}, cli ${ref.data[at]})`);
}

for (const backend of BACKENDS) {
  test(`page on ${backend} matches the native CLI`, { timeout: 180_000 }, async () => {
    const page = await openPage(browser, server.url, `?backend=${backend}`);
    try {
      const spec = readFileSync(join(ROOT, MODEL), 'utf8');
      const input = Array.from(readNpy(join(ROOT, IMAGE)).data);
      const result = await page.evaluate(async ({ spec, input, seed, target }) => {
        const { client } = window.convlens;
        const summary = await client.load(spec, null, seed);
        const probe = await client.probe(Float32Array.from(input), target);
        return {
          backend: client.info.backend,
          names: summary.layers.map((l) => l.name),
          layers: probe.layers.map((l) => ({ shape: l.shape, act: Array.from(l.act), grad: Array.from(l.grad) })),
        };
      }, { spec, input, seed: SEED, target: TARGET });

      assert.equal(result.backend, backend);
      assert.equal(reference.length, result.layers.length, 'the CLI wrote one act/grad pair per layer');
      result.layers.forEach((layer, i) => {
        const ref = reference[i];
        assert.ok(ref?.act && ref?.grad, `CLI output for layer ${i} is missing`);
        assert.equal(ref.name, result.names[i], `layer ${i} name`);
        compare(`layer ${i} (${ref.name}) act`, { shape: layer.shape, data: layer.act }, ref.act);
        compare(`layer ${i} (${ref.name}) grad`, { shape: layer.shape, data: layer.grad }, ref.grad);
      });
    } finally {
      await page.close();
    }
  });
}
