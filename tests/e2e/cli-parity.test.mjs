// The wasm engine in the page (both backends) gives the same activations and gradients as the native CLI.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BACKENDS, openPage, ROOT, targetDir, useBrowser } from './browser.mjs';
import { readNpy } from './npy.mjs';

const MODEL = 'www/nets/mnist.json';
const IMAGE = 'tests/fixtures/digit.npy';
// Two cases: a seeded random init with a class score, and the trained weights with the loss.
const CASES = [
  { name: 'seed 7, class 3', seed: 7, weights: null, target: { kind: 'class', index: 3 }, cli: ['--seed', '7', '--target', 'class:3'] },
  { name: 'trained weights, loss of label 3', seed: 0, weights: 'www/nets/mnist.safetensors', target: { kind: 'loss', label: 3 },
    cli: ['--weights', 'www/nets/mnist.safetensors', '--target', 'loss:3'] },
];

const ctx = useBrowser({ webgpu: true });
const outDirs = [];

/** Runs the CLI's probe; returns [{ index, name, act, grad }] by layer index. */
function cliReference(extra) {
  const cli = join(targetDir(), 'release', process.platform === 'win32' ? 'convlens.exe' : 'convlens');
  assert.ok(existsSync(cli), `${cli} missing: build it with \`cargo build --release --workspace\``);
  const outDir = mkdtempSync(join(tmpdir(), 'convlens-parity-'));
  outDirs.push(outDir);
  const args = ['probe', '--model', MODEL, '--image', IMAGE, ...extra, '--out', outDir];
  const run = spawnSync(cli, args, { cwd: ROOT, encoding: 'utf8' });
  assert.equal(run.status, 0, `convlens ${args.join(' ')} failed:\n${run.stdout}\n${run.stderr}`);
  const reference = [];
  for (const file of readdirSync(outDir)) {
    const m = file.match(/^(\d+)_(.+)_(act|grad)\.npy$/);
    if (!m) continue;
    const index = Number(m[1]);
    reference[index] ??= { index, name: m[2] };
    reference[index][m[3]] = readNpy(join(outDir, file));
  }
  return reference;
}

before(async () => {
  for (const c of CASES) c.reference = cliReference(c.cli);
});

after(async () => {
  for (const d of outDirs) rmSync(d, { recursive: true, force: true });
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

for (const backend of BACKENDS) for (const c of CASES) {
  test(`page on ${backend} matches the native CLI (${c.name})`, { timeout: 180_000 }, async () => {
    const { seed, weights, target, reference } = c; // reference is filled in by before()
    const page = await openPage(ctx.browser, ctx.server.url, `?backend=${backend}`);
    try {
      const spec = readFileSync(join(ROOT, MODEL), 'utf8');
      const input = Array.from(readNpy(join(ROOT, IMAGE)).data);
      const result = await page.evaluate(async ({ spec, input, seed, target, weights }) => {
        const { client } = window.convlens;
        const bytes = weights ? new Uint8Array(await (await fetch(`/${weights}`)).arrayBuffer()) : null;
        const summary = await client.load(spec, bytes, seed);
        const probe = await client.probe(Float32Array.from(input), target);
        return {
          backend: client.info.backend,
          names: summary.layers.map((l) => l.name),
          layers: probe.layers.map((l) => ({ shape: l.shape, act: Array.from(l.act), grad: Array.from(l.grad) })),
        };
      }, { spec, input, seed, target, weights });

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
