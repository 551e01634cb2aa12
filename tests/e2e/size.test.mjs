// The engines' download size (issue 16): the CPU build, which every browser can run and every pool
// helper loads, and the WebGPU build (burn-wgpu and cubecl without the CPU backend, whole-program
// LTO, dependencies at "z": 2.85 MB when it was split off, 3.57 as the full engine before), each at most 3 MB
// gzipped.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compressedSizes, ROOT } from '../../scripts/build.mjs';

const size = (name) => compressedSizes(readFileSync(join(ROOT, 'www', 'pkg', `${name}_bg.wasm`)));

test('each engine build is at most 3 MB gzipped', () => {
  const cpu = size('convlens_cpu');
  const webgpu = size('convlens_webgpu');
  console.log(`engine sizes gzipped: CPU ${(cpu.gzip / 1e6).toFixed(2)} MB, WebGPU ${(webgpu.gzip / 1e6).toFixed(2)} MB`);
  assert.ok(cpu.gzip <= 3e6, `the CPU engine is ${(cpu.gzip / 1e6).toFixed(2)} MB gzipped`);
  assert.ok(webgpu.gzip <= 3e6, `the WebGPU engine is ${(webgpu.gzip / 1e6).toFixed(2)} MB gzipped`);
  assert.ok(cpu.gzip < webgpu.gzip, 'the CPU engine leaves WebGPU out');
});
