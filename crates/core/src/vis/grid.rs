//! Tiles a `[channels, height, width]` tensor into one image, channels side by side, for slides
//! and tests (the browser draws its own, with the same colour maps in www/views/colormap.js).
//! Activations and weights map min..max to black..white; signed values map -m..m (m = max |v|)
//! to ColorBrewer's RdBu (blue..white..red, zero white); magnitudes map 0..max to viridis. Both
//! colour maps stay readable with the common colour-vision deficiencies.

/// An RGB8 image.
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorMap {
    /// min..max to black..white.
    Gray,
    /// -m..m to ColorBrewer RdBu (blue..white..red), m = max |value|.
    Diverging,
    /// 0..max to viridis (dark purple..yellow); negative values clamp to 0.
    Viridis,
}

/// ColorBrewer RdBu, 11 classes, negative (blue) to positive (red).
pub const RDBU: [[u8; 3]; 11] = [
    [5, 48, 97],
    [33, 102, 172],
    [67, 147, 195],
    [146, 197, 222],
    [209, 229, 240],
    [247, 247, 247],
    [253, 219, 199],
    [244, 165, 130],
    [214, 96, 77],
    [178, 24, 43],
    [103, 0, 31],
];

/// Viridis at 9 evenly spaced points.
pub const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 45, 123],
    [59, 82, 139],
    [44, 114, 142],
    [33, 145, 140],
    [40, 174, 128],
    [94, 201, 98],
    [173, 220, 48],
    [253, 231, 37],
];

/// Linear interpolation in a table of evenly spaced colours, t in [0, 1].
fn lookup(table: &[[u8; 3]], t: f32) -> [u8; 3] {
    let x = t.clamp(0.0, 1.0) * (table.len() - 1) as f32;
    let i = (x.floor() as usize).min(table.len() - 2);
    let f = x - i as f32;
    let (a, b) = (table[i], table[i + 1]);
    [0, 1, 2].map(|k| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * f).round() as u8)
}

fn color(v: f32, lo: f32, hi: f32, map: ColorMap) -> [u8; 3] {
    match map {
        ColorMap::Gray => {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.5 };
            let g = (t.clamp(0.0, 1.0) * 255.0).round() as u8;
            [g, g, g]
        }
        ColorMap::Diverging => {
            let m = lo.abs().max(hi.abs());
            let t = if m > 0.0 { (v / m).clamp(-1.0, 1.0) } else { 0.0 };
            lookup(&RDBU, 0.5 + 0.5 * t)
        }
        ColorMap::Viridis => {
            let m = hi.max(0.0);
            lookup(&VIRIDIS, if m > 0.0 { v / m } else { 0.0 })
        }
    }
}

/// One plane `[h, w]` in a colour map, scaled up `scale` times.
pub fn heatmap(plane: &[f32], h: usize, w: usize, map: ColorMap, scale: usize) -> Image {
    tile(plane, [1, h, w], 1, scale, 0, map)
}

/// A map `[h, w]` in viridis (or RdBu) over the image (CHW in [0, 1], shown in gray), with the
/// map's opacity growing with its magnitude so that the image shows through where it is weak.
pub fn overlay(image: &[f32], channels: usize, plane: &[f32], h: usize, w: usize, map: ColorMap, scale: usize) -> Image {
    let heat = heatmap(plane, h, w, map, 1);
    let m = plane.iter().fold(0f32, |a, v| a.max(v.abs()));
    let (width, height) = (w * scale, h * scale);
    let mut rgb = vec![0u8; width * height * 3];
    for y in 0..height {
        for x in 0..width {
            let (sy, sx) = (y / scale, x / scale);
            let p = sy * w + sx;
            let gray = (0..channels).map(|c| image[c * h * w + p]).sum::<f32>() / channels as f32;
            let g = (gray.clamp(0.0, 1.0) * 255.0) * 0.8;
            let a = if m > 0.0 { 0.15 + 0.7 * (plane[p].abs() / m) } else { 0.0 };
            let i = (y * width + x) * 3;
            for k in 0..3 {
                rgb[i + k] = (g * (1.0 - a) + heat.rgb[p * 3 + k] as f32 * a).round() as u8;
            }
        }
    }
    Image { width, height, rgb }
}

/// Channels side by side in rows of `cols`, separated by `gap` pixels of gray, each pixel
/// scaled up `scale` times. All channels share one colour scale.
pub fn tile(data: &[f32], shape: [usize; 3], cols: usize, scale: usize, gap: usize, map: ColorMap) -> Image {
    let [c, h, w] = shape;
    let cols = cols.clamp(1, c.max(1));
    let rows = c.div_ceil(cols);
    let (cw, ch) = (w * scale, h * scale);
    let width = cols * cw + (cols - 1) * gap;
    let height = rows * ch + (rows - 1) * gap;
    let mut rgb = vec![160u8; width * height * 3];
    let (lo, hi) = data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    for k in 0..c {
        let (ox, oy) = ((k % cols) * (cw + gap), (k / cols) * (ch + gap));
        for y in 0..ch {
            for x in 0..cw {
                let v = data[k * h * w + (y / scale) * w + x / scale];
                let i = ((oy + y) * width + ox + x) * 3;
                rgb[i..i + 3].copy_from_slice(&color(v, lo, hi, map));
            }
        }
    }
    Image { width, height, rgb }
}

/// An image (CHW in [0, 1]; 1 channel is gray, 3 are RGB) as it is, scaled up `scale` times.
pub fn picture(image: &[f32], [c, h, w]: [usize; 3], scale: usize) -> Image {
    let (width, height) = (w * scale, h * scale);
    let mut rgb = vec![0u8; width * height * 3];
    for y in 0..height {
        for x in 0..width {
            let p = (y / scale) * w + x / scale;
            for k in 0..3 {
                let v = image[(if c == 3 { k } else { 0 }) * h * w + p];
                rgb[(y * width + x) * 3 + k] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    Image { width, height, rgb }
}

/// Images of the same height side by side with `gap` pixels of white between them.
pub fn hstack(images: &[Image], gap: usize) -> Image {
    let height = images.iter().map(|i| i.height).max().unwrap_or(0);
    let width = images.iter().map(|i| i.width).sum::<usize>() + gap * images.len().saturating_sub(1);
    let mut rgb = vec![255u8; width * height * 3];
    let mut ox = 0;
    for im in images {
        for y in 0..im.height {
            let dst = (y * width + ox) * 3;
            rgb[dst..dst + im.width * 3].copy_from_slice(&im.rgb[y * im.width * 3..(y + 1) * im.width * 3]);
        }
        ox += im.width + gap;
    }
    Image { width, height, rgb }
}

/// Petroff's 10 colours (M. A. Petroff, "Accessible Color Sequences for Data Visualization", 2021;
/// matplotlib's `petroff10`), chosen to stay apart under colour-vision deficiencies: the dataset
/// views' class colours (`www/views/palette.js` has the same list; `tests/e2e/colours.test.mjs`
/// checks both).
pub const CLASSES: [[u8; 3]; 10] = [
    [63, 144, 218],
    [255, 169, 14],
    [189, 31, 1],
    [148, 164, 162],
    [131, 45, 182],
    [169, 107, 89],
    [231, 99, 0],
    [185, 172, 112],
    [113, 117, 129],
    [146, 218, 221],
];

/// Points `[n, 2]` as dots of their class's colour on white, fitted into a `size` x `size` square.
pub fn scatter(points: &[f32], labels: &[u8], size: usize) -> Image {
    let mut rgb = vec![255u8; size * size * 3];
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in points.chunks(2) {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-12);
    let margin = 6.0;
    let s = (size as f32 - 2.0 * margin) / span;
    let (ox, oy) = (margin + (span - (hi[0] - lo[0])) * s / 2.0, margin + (span - (hi[1] - lo[1])) * s / 2.0);
    for (p, &l) in points.chunks(2).zip(labels) {
        let (cx, cy) = (ox + (p[0] - lo[0]) * s, oy + (hi[1] - p[1]) * s);
        let c = CLASSES[l as usize % CLASSES.len()];
        for dy in -2i32..=2 {
            for dx in -2i32..=2 {
                if dx * dx + dy * dy > 5 {
                    continue;
                }
                let (x, y) = (cx as i32 + dx, cy as i32 + dy);
                if x >= 0 && y >= 0 && (x as usize) < size && (y as usize) < size {
                    let i = (y as usize * size + x as usize) * 3;
                    rgb[i..i + 3].copy_from_slice(&c);
                }
            }
        }
    }
    Image { width: size, height: size, rgb }
}

/// Curves `(x, y)` on one pair of axes (each curve scaled to its own y range when `own_y`), in
/// the class colours, on white with a gray frame, `w` x `h` pixels.
pub fn plot(curves: &[(&[f64], &[f64])], w: usize, h: usize, own_y: bool) -> Image {
    let mut rgb = vec![255u8; w * h * 3];
    let m = 8.0;
    let put = |rgb: &mut Vec<u8>, x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            let i = (y as usize * w + x as usize) * 3;
            rgb[i..i + 3].copy_from_slice(&c);
        }
    };
    for x in 0..w as i64 {
        put(&mut rgb, x, m as i64, [190; 3]);
        put(&mut rgb, x, h as i64 - m as i64, [190; 3]);
    }
    let finite =
        |v: &[f64]| v.iter().copied().filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (xlo, xhi) = curves.iter().map(|c| finite(c.0)).fold((f64::INFINITY, f64::NEG_INFINITY), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    let all_y = curves.iter().map(|c| finite(c.1)).fold((f64::INFINITY, f64::NEG_INFINITY), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    for (k, (xs, ys)) in curves.iter().enumerate() {
        let (ylo, yhi) = if own_y { finite(ys) } else { all_y };
        let sx = (w as f64 - 2.0 * m) / (xhi - xlo).max(1e-12);
        let sy = (h as f64 - 2.0 * m) / (yhi - ylo).max(1e-12);
        let px = |x: f64| m + (x - xlo) * sx;
        let py = |y: f64| h as f64 - m - (y - ylo) * sy;
        for i in 1..xs.len() {
            if !(ys[i - 1].is_finite() && ys[i].is_finite()) {
                continue;
            }
            let (x0, y0, x1, y1) = (px(xs[i - 1]), py(ys[i - 1]), px(xs[i]), py(ys[i]));
            let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
            for t in 0..=steps {
                let f = t as f64 / steps as f64;
                let (x, y) = (x0 + (x1 - x0) * f, y0 + (y1 - y0) * f);
                for d in [0, 1] {
                    put(&mut rgb, x.round() as i64, y.round() as i64 + d, CLASSES[k % CLASSES.len()]);
                }
            }
        }
    }
    Image { width: w, height: h, rgb }
}

/// A `[h, w]` field in viridis (low: dark) with white contour lines where it crosses one of
/// `levels` evenly spaced values, scaled up `scale` times (nearest neighbour).
pub fn contours(field: &[f32], h: usize, w: usize, levels: usize, scale: usize) -> Image {
    let mut img = heatmap(field, h, w, ColorMap::Viridis, scale);
    let (lo, hi) = field.iter().filter(|v| v.is_finite()).fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !(hi > lo) {
        return img;
    }
    let level = |v: f32| ((v - lo) / (hi - lo) * levels as f32).floor() as i64;
    let (width, height) = (img.width, img.height);
    // Bilinear value at a pixel centre, so that the lines are smooth at any scale.
    let at = |x: usize, y: usize| {
        let fx = ((x as f32 + 0.5) / scale as f32 - 0.5).clamp(0.0, (w - 1) as f32);
        let fy = ((y as f32 + 0.5) / scale as f32 - 0.5).clamp(0.0, (h - 1) as f32);
        let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
        let v = |x: usize, y: usize| field[y * w + x];
        (v(x0, y0) * (1.0 - tx) + v(x1, y0) * tx) * (1.0 - ty) + (v(x0, y1) * (1.0 - tx) + v(x1, y1) * tx) * ty
    };
    let lv: Vec<i64> = (0..width * height).map(|i| level(at(i % width, i / width))).collect();
    for y in 0..height {
        for x in 0..width {
            let l = lv[y * width + x];
            let edge = (x + 1 < width && lv[y * width + x + 1] != l) || (y + 1 < height && lv[(y + 1) * width + x] != l);
            if edge {
                let i = (y * width + x) * 3;
                img.rgb[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
    }
    img
}

/// Images of the same width one above the other with `gap` pixels of white between them.
pub fn vstack(images: &[Image], gap: usize) -> Image {
    let width = images.iter().map(|i| i.width).max().unwrap_or(0);
    let height = images.iter().map(|i| i.height).sum::<usize>() + gap * images.len().saturating_sub(1);
    let mut rgb = vec![255u8; width * height * 3];
    let mut oy = 0;
    for im in images {
        for y in 0..im.height {
            let dst = ((oy + y) * width) * 3;
            rgb[dst..dst + im.width * 3].copy_from_slice(&im.rgb[y * im.width * 3..(y + 1) * im.width * 3]);
        }
        oy += im.height + gap;
    }
    Image { width, height, rgb }
}
