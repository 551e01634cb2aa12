// node scripts/screenshots-optimize.mjs: runs every technique of optimize.html on MobileNetV2 (from
// $CONVLENS_DATA_DIR, else ../shared/data) in headless Chromium, as a user would (the Run buttons,
// the default settings), and saves a screenshot of each view in docs/screenshots/. Takes minutes on
// the CPU backend. Env: SHOTS (comma-separated views; default all), BENCH_SKIP_BUILD=1.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { build, ROOT } from './build.mjs';
import { launch, openPage, serveRoot } from '../tests/e2e/browser.mjs';
import { dataDir } from './serve.mjs';

process.env.CONVLENS_DATA_DIR ??= dataDir();
const OUT = join(ROOT, 'docs/screenshots');
const ALL = ['visualize', 'invert', 'adversarial', 'dream', 'style'];
const SHOTS = process.env.SHOTS ? process.env.SHOTS.split(',') : ALL;

async function runView(page, view, setup = async () => {}) {
  await page.click(`#tab-${view}`);
  await setup();
  await page.locator(`#view-${view} .opt-run button.primary`).first().click();
  await page.waitForFunction((v) => /done:|stopped/.test(document.querySelector(`#view-${v} .opt-run .hint`).textContent), view, { timeout: 1_200_000 });
  await page.waitForTimeout(1500);
}

async function main() {
  if (!process.env.BENCH_SKIP_BUILD) await build();
  await mkdir(OUT, { recursive: true });
  const server = await serveRoot();
  const browser = await launch({ webgpu: false });
  try {
    const page = await openPage(browser, server.url, 'optimize.html?backend=cpu');
    await page.setViewportSize({ width: 1500, height: 1000 });
    const shot = async (name) => {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
      console.log(`wrote docs/screenshots/${name}.png`);
    };
    for (const view of SHOTS) {
      const t0 = performance.now();
      if (view === 'visualize') await runView(page, view);
      if (view === 'invert') {
        await page.click('.sample:nth-child(2)'); // the parrot
        await runView(page, view);
      }
      if (view === 'adversarial') {
        await page.click('.sample:nth-child(1)'); // Grace Hopper
        await page.click('#tab-adversarial');
        await page.waitForFunction(() => /max \|δ\|/.test(document.querySelector('#view-adversarial').textContent));
        await runView(page, view, async () => {
          await page.selectOption('#view-adversarial select', 'fooling');
        });
        await page.click('#linear-run');
        await page.waitForFunction(() => document.querySelectorAll('#view-adversarial .opt-table tr').length > 1, null, { timeout: 300_000 });
      }
      if (view === 'dream') {
        await page.click('.sample:nth-child(5)'); // Chelsea the cat
        await runView(page, view);
      }
      if (view === 'style') {
        await page.click('.sample:nth-child(5)');
        await runView(page, view);
      }
      await shot(`optimize-${view}`);
      console.log(`${view}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
