// Colour-vision deficiencies: the attribution maps' colour scales, the layer view's gradient scale
// and the dataset views' class colours stay readable for viewers with protanopia, deuteranopia or
// tritanopia (Machado, Oliveira & Fernandes 2009, full severity, as culori simulates them), with
// differences measured in CIEDE2000. A node test: the tables the pages draw with, no browser.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { converter, differenceCiede2000, filterDeficiencyDeuter, filterDeficiencyProt, filterDeficiencyTrit } from 'culori';
import { colorFn } from '../../www/views/colormap.js';
import { divergingMap } from '../../www/views/draw.js';
import { readFileSync } from 'node:fs';
import { CLASS_COLORS } from '../../www/views/palette.js';

const VISIONS = {
  typical: (c) => c,
  protanopia: filterDeficiencyProt(1),
  deuteranopia: filterDeficiencyDeuter(1),
  tritanopia: filterDeficiencyTrit(1),
};
const lab = converter('lab');
const de = differenceCiede2000();
const rgb = (r, g, b) => ({ mode: 'rgb', r: r / 255, g: g / 255, b: b / 255 });

/** The colours a map function (v, out, i) gives for values `vs`. */
function sample(f, vs) {
  const out = new Float32Array(4);
  return vs.map((v) => {
    f(v, out, 0);
    return rgb(out[0], out[1], out[2]);
  });
}
const steps = (a, b, n) => Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));

test('magnitudes (viridis): lightness rises with the value under every vision, so the order reads without hue', () => {
  const colours = sample(colorFn('abs', { lo: 0, hi: 1 }), steps(0, 1, 33));
  for (const [name, see] of Object.entries(VISIONS)) {
    const L = colours.map((c) => lab(see(c)).l);
    for (let i = 1; i < L.length; i++) assert.ok(L[i] > L[i - 1], `${name}: L* falls from ${L[i - 1].toFixed(1)} to ${L[i].toFixed(1)} at step ${i}`);
    assert.ok(L.at(-1) - L[0] > 60, `${name}: L* spans ${(L.at(-1) - L[0]).toFixed(1)}`);
  }
});

for (const [what, f] of [['attribution maps (RdBu)', colorFn('signed', { lo: -1, hi: 1 })], ['the layer view\'s gradients', divergingMap(1)]]) {
  test(`signed values, ${what}: lightness peaks at zero, and a value and its negative stay apart under every vision`, () => {
    const vs = steps(-1, 1, 41);
    const colours = sample(f, vs);
    for (const [name, see] of Object.entries(VISIONS)) {
      const L = colours.map((c) => lab(see(c)).l);
      const mid = 20;
      for (let i = 1; i <= mid; i++) assert.ok(L[i] >= L[i - 1] - 0.5, `${name}: L* falls towards zero at ${vs[i]}`);
      for (let i = mid + 1; i < L.length; i++) assert.ok(L[i] <= L[i - 1] + 0.5, `${name}: L* rises away from zero at ${vs[i]}`);
      // +v and -v: the sign is in the hue, which each deficiency must still tell apart.
      let worst = Infinity;
      for (let k = 10; k <= 20; k++) worst = Math.min(worst, de(see(colours[mid - k]), see(colours[mid + k])));
      // ColorBrewer's RdBu, marked colour-blind safe, keeps ±0.5 ΔE00 14.9 apart under protanopia.
      assert.ok(worst > 12, `${name}: ±v differ by only ΔE00 ${worst.toFixed(1)} for |v| ≥ 0.5`);
    }
  });
}

test('class colours (t-SNE, patches): every pair of the ten stays apart under every vision', () => {
  const colours = CLASS_COLORS.map(([r, g, b]) => rgb(r, g, b));
  const report = [];
  for (const [name, see] of Object.entries(VISIONS)) {
    let worst = { d: Infinity };
    for (let a = 0; a < colours.length; a++) {
      for (let b = a + 1; b < colours.length; b++) {
        const d = de(see(colours[a]), see(colours[b]));
        if (d < worst.d) worst = { d, a, b };
      }
    }
    report.push(`${name} ${worst.d.toFixed(1)} (${worst.a}, ${worst.b})`);
    // Petroff's sequence keeps every pair 11.4 or more apart; Tableau 10, used before, fell to 2.1.
    assert.ok(worst.d >= 10, `${name}: classes ${worst.a} and ${worst.b} differ by only ΔE00 ${worst.d.toFixed(1)}`);
  }
  console.log(`smallest ΔE00 between two class colours: ${report.join('; ')}`);
});

test('the CLI\'s PNGs use the same class colours as the pages', () => {
  const rust = readFileSync(new URL('../../crates/core/src/vis/grid.rs', import.meta.url), 'utf8');
  const start = rust.indexOf('= [', rust.indexOf('pub const CLASSES'));
  const block = rust.slice(start, rust.indexOf('];', start));
  const rows = [...block.matchAll(/\[(\d+), (\d+), (\d+)\]/g)].map((m) => m.slice(1).map(Number));
  assert.deepEqual(rows, CLASS_COLORS);
});
