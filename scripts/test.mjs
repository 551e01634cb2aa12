// Full test run: Rust tests, native CLI, wasm build, then the browser end-to-end tests.  `npm test`
import { build, buildCli, ensureNodeModules, run, step } from './build.mjs';

const t0 = performance.now();
try {
  await step('cargo test --release --workspace', () => run('cargo', ['test', '--release', '--workspace']));
  await buildCli();
  await build();
  await ensureNodeModules();
  await step('e2e tests (node --test tests/e2e/)', () => run(process.execPath, ['--test', '--test-concurrency=1', 'tests/e2e/']));
} catch (e) {
  console.error(`\nFAILED: ${e.message}`);
  process.exit(1);
}
console.log(`\nall tests passed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
