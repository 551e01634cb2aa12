// Class colours for the dataset views: Tableau's 10 categorical colours, the same list as the
// CLI's PNGs (crates/core/src/vis/grid.rs, CLASSES).
export const CLASS_COLORS = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
];

/** CSS colour of class `k`. */
export const classColor = (k) => {
  const [r, g, b] = CLASS_COLORS[k % CLASS_COLORS.length];
  return `rgb(${r},${g},${b})`;
};
