// Where the large data lives (the datasets, Tiny VGG, MobileNetV2, the photos): `data/` at the
// site's root (beside www/) by default (`npm start` serves $CONVLENS_DATA_DIR there). A static build for a course site
// writes its own copy of this file (`npm run build -- --data-url URL`), so that dist/ can point to
// data hosted anywhere.
export const DATA_URL = null;

/** The data directory's URL: DATA_URL (relative to the site's root, or absolute), else data/ there. */
export function dataBase() {
  return new URL(DATA_URL ?? 'data/', new URL('../', import.meta.url));
}
