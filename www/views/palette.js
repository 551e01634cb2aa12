// Class colours for the dataset views: Petroff's 10 colours (M. A. Petroff, "Accessible Color
// Sequences for Data Visualization", 2021; matplotlib's `petroff10`), which stay apart under
// protanopia, deuteranopia and tritanopia (ΔE00 ≥ 11, tests/e2e/colours.test.mjs); the same list
// as the CLI's PNGs (crates/core/src/vis/grid.rs, CLASSES).
export const CLASS_COLORS = [
  [63, 144, 218], [255, 169, 14], [189, 31, 1], [148, 164, 162], [131, 45, 182],
  [169, 107, 89], [231, 99, 0], [185, 172, 112], [113, 117, 129], [146, 218, 221],
];

/** CSS colour of class `k`. */
export const classColor = (k) => {
  const [r, g, b] = CLASS_COLORS[k % CLASS_COLORS.length];
  return `rgb(${r},${g},${b})`;
};
