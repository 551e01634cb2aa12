// The engines' download size (issue 16): the CPU-only build, which every browser can run and every
// pool helper loads, at most 3 MB gzipped; the full one (CPU and WebGPU, whole-program LTO at "z":
// 3.57 MB, 4.18 before) held to what it is now.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compressedSizes, ROOT } from '../../scripts/build.mjs';

const size = (name) => compressedSizes(readFileSync(join(ROOT, 'www', 'pkg', `${name}_bg.wasm`)));

test('the CPU-only engine is at most 3 MB gzipped and a third of the full one', () => {
  const cpu = size('convlens_cpu');
  const full = size('convlens_wasm');
  console.log(`engine sizes gzipped: CPU-only ${(cpu.gzip / 1e6).toFixed(2)} MB, full ${(full.gzip / 1e6).toFixed(2)} MB`);
  assert.ok(cpu.gzip <= 3e6, `the CPU-only engine is ${(cpu.gzip / 1e6).toFixed(2)} MB gzipped`);
  assert.ok(cpu.gzip < full.gzip / 2, 'the CPU-only engine leaves WebGPU out');
  assert.ok(full.gzip <= 3.7e6, `the full engine is ${(full.gzip / 1e6).toFixed(2)} MB gzipped (3.57 at its profile's change)`);
});
