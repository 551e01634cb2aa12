// The CLI against careless input (issue 12): a closed pipe ends it quietly, a negative number reaches
// the engine's range check (not clap's "unexpected argument"), and a network too large to allocate
// is refused with its size before anything is allocated.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, targetDir } from './browser.mjs';

const CLI = join(targetDir(), 'release', 'convlens');

test('the CLI: a closed pipe, a negative number, a net too large to allocate', () => {
  assert.ok(existsSync(CLI), `${CLI} missing: build it with \`cargo build --release --workspace\``);
  const piped = spawnSync('sh', ['-c', `"${CLI}" info --model www/nets/cifar10.json | head -1`], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(piped.stderr, '', 'no panic on the broken pipe');
  assert.match(piped.stdout, /^cifar10/);

  const lr = spawnSync(CLI, ['train', '--model', 'www/nets/mnist.json', '--dataset', 'mnist5k', '--lr', '-1', '--out', join(tmpdir(), 'never.safetensors')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(lr.status, 1);
  assert.equal(lr.stderr.trim(), "convlens: input: trainer setting 'learningRate': -1 is out of range; expected 0.000001 to inf");

  const dir = mkdtempSync(join(tmpdir(), 'convlens-hostile-'));
  try {
    const spec = join(dir, 'huge.json');
    writeFileSync(spec, '{"layers":[{"type":"input","width":1,"height":1,"depth":1000000},{"type":"conv","size":1,"filters":1000000},{"type":"fc","units":2}]}');
    const huge = spawnSync(CLI, ['info', '--model', spec], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(huge.status, 1, 'refused, not aborted');
    assert.match(huge.stderr, /conv1\.weight \[1000000, 1000000, 1, 1\] takes the network past 4294967296 parameters/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
