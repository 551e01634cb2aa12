// Memory soak: the image page trains for SOAK_MINUTES (default 60) on the CPU and on WebGPU at once
// (one tab each, as a user leaves it running: the views refresh, validation runs, the autosave
// exports the weights), and every minute records the worker's wasm memory, the GPU allocator's
// live allocations and bytes (WebGPU), the page's JS heap and the steps taken. It passes when,
// after a warm-up (SOAK_WARMUP minutes, default 5), the peak of the last quarter of the samples is
// within 5% of the peak of the first quarter, for the wasm memory and the GPU's allocations and
// reserved bytes (peaks, because a sample falls anywhere in a training step, where live
// allocations come and go; the JS heap is reported, not judged: the garbage collector runs when it
// likes). Writes target/memory-soak.json and prints a table.
//   npm run soak                      (an hour)
//   SOAK_MINUTES=3 SOAK_WARMUP=1 npm run soak   (a quick look)
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { launch, openPage, serveRoot, targetDir } from '../tests/e2e/browser.mjs';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 60);
const WARMUP = Number(process.env.SOAK_WARMUP ?? 5);
const BACKENDS = (process.env.SOAK_BACKENDS ?? 'cpu,webgpu').split(',');
const LIMIT = 0.05;

const server = await serveRoot();
const browser = await launch({ webgpu: true });
const pages = {};
for (const backend of BACKENDS) {
  const page = await openPage(browser, server.url, `?backend=${backend}&fresh`);
  const got = await page.evaluate(() => window.convlens.client.info.backend);
  if (got !== backend) throw new Error(`asked for ${backend}, got ${got}`);
  await page.click('#train-run');
  pages[backend] = page;
}

async function sample(page) {
  return page.evaluate(async () => {
    const { client, loop } = window.convlens;
    const m = await client.request('memory', {});
    return {
      wasmBytes: m.wasmBytes,
      gpuAllocations: m.gpu?.allocations ?? null,
      gpuBytesInUse: m.gpu?.bytesInUse ?? null,
      gpuBytesReserved: m.gpu?.bytesReserved ?? null,
      pageHeap: performance.memory?.usedJSHeapSize ?? null,
      steps: loop.stats.steps,
      running: loop.running,
    };
  });
}

const samples = Object.fromEntries(BACKENDS.map((b) => [b, []]));
const t0 = Date.now();
for (let minute = 0; minute <= MINUTES; minute++) {
  const wait = t0 + minute * 60_000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  for (const b of BACKENDS) {
    const s = { minute, ...(await sample(pages[b])) };
    samples[b].push(s);
    if (!s.running) throw new Error(`${b}: training stopped at minute ${minute} (${await pages[b].textContent('#banner')})`);
  }
  const line = BACKENDS.map((b) => {
    const s = samples[b].at(-1);
    const mb = (x) => (x === null ? '–' : (x / 2 ** 20).toFixed(1));
    return `${b}: wasm ${mb(s.wasmBytes)} MiB, gpu ${s.gpuAllocations ?? '–'} allocs/${mb(s.gpuBytesInUse)} MiB in use/${mb(s.gpuBytesReserved)} MiB reserved, heap ${mb(s.pageHeap)} MiB, ${s.steps} steps`;
  }).join(' | ');
  console.log(`min ${String(minute).padStart(2)}  ${line}`);
}

// Flat: the last quarter's peak within 5% of the first quarter's, after the warm-up.
const JUDGED = ['wasmBytes', 'gpuAllocations', 'gpuBytesReserved'];
const verdict = {};
for (const b of BACKENDS) {
  const after = samples[b].filter((s) => s.minute >= WARMUP);
  const q = Math.max(1, Math.floor(after.length / 4));
  verdict[b] = {};
  for (const key of ['wasmBytes', 'gpuAllocations', 'gpuBytesInUse', 'gpuBytesReserved', 'pageHeap']) {
    if (after.length === 0 || after[0][key] === null) continue;
    const peak = (list) => Math.max(...list.map((s) => s[key]));
    const first = peak(after.slice(0, q));
    const last = peak(after.slice(-q));
    verdict[b][key] = { first, last, growth: first ? last / first - 1 : 0, judged: JUDGED.includes(key), flat: last <= first * (1 + LIMIT) };
  }
}
const out = join(targetDir(), 'memory-soak.json');
await writeFile(out, JSON.stringify({ minutes: MINUTES, warmup: WARMUP, samples, verdict }, null, 2));
console.log(JSON.stringify(verdict, null, 2));
console.log(`wrote ${out}`);
await browser.close();
server.close?.();
const ok = Object.values(verdict).every((v) => Object.values(v).every((x) => !x.judged || x.flat));
console.log(ok ? 'memory flat within 5%' : 'MEMORY GREW more than 5%');
process.exit(ok ? 0 : 1);
