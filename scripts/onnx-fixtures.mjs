// Makes the ONNX models the ONNX import tests read (target/onnx-fixtures) with PyTorch, as
// scripts/make_onnx_fixtures.py says, and checks them against the committed references.
// `npm run onnx-fixtures`; `npm test` runs it. PyTorch (pinned, CPU) is installed once into a
// virtual environment outside the clone ($CONVLENS_TORCH_ENV, default ~/.cache/convlens/torchenv).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, run, step } from './build.mjs';

export const ONNX_DIR = process.env.CONVLENS_ONNX_FIXTURES ?? join(ROOT, 'target', 'onnx-fixtures');
const ENV = process.env.CONVLENS_TORCH_ENV ?? join(process.env.HOME ?? '/tmp', '.cache', 'convlens', 'torchenv');
/** The virtual environment's Python (PyTorch 2.15, torchvision), once onnxFixtures() has made it. */
export const TORCH_PYTHON = join(ENV, 'bin', 'python');
const PINS = ['torch==2.15.0', 'torchvision==0.29.2', 'onnx==1.23.2', 'onnxscript==0.7.2', 'numpy==2.4.6', 'pillow==13.0.0'];

/** The fixture models, from the committed references. */
export function onnxModels() {
  const refs = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'onnx', 'references.json'), 'utf8'));
  return Object.keys(refs);
}

export async function onnxFixtures() {
  const script = join(ROOT, 'scripts', 'make_onnx_fixtures.py');
  const fresh = (m) => existsSync(join(ONNX_DIR, `${m}.onnx`)) && statSync(join(ONNX_DIR, `${m}.onnx`)).mtimeMs > statSync(script).mtimeMs;
  const missing = onnxModels().filter((m) => !fresh(m));
  if (missing.length === 0) return;
  const py = join(ENV, 'bin', 'python');
  if (!existsSync(py)) {
    await step(`PyTorch for the ONNX fixtures (a virtual environment in ${ENV})`, async () => {
      await run('python3', ['-m', 'venv', ENV]);
      await run(join(ENV, 'bin', 'pip'), ['install', '--quiet', ...PINS]);
    });
  }
  await step(`ONNX fixtures: ${missing.join(', ')} (torch.onnx.export into ${ONNX_DIR})`, () =>
    run(py, [script, '--onnx-only', '--out', ONNX_DIR, '--models', ...missing]));
}

if (import.meta.url === `file://${process.argv[1]}`) await onnxFixtures();
