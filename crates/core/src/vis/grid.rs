//! Tiles a `[channels, height, width]` tensor into one image, channels side by side, for slides
//! and tests (the browser draws its own). Activations and weights map min..max to black..white;
//! gradients map -m..m (m = max |g|) to blue..white..red, so that zero is white.

/// An RGB8 image.
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

#[derive(Clone, Copy)]
pub enum ColorMap {
    /// min..max to black..white.
    Gray,
    /// -m..m to blue..white..red, m = max |value|.
    Diverging,
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
            let fade = (255.0 * (1.0 - t.abs())).round() as u8;
            if t >= 0.0 { [255, fade, fade] } else { [fade, fade, 255] }
        }
    }
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
    let (lo, hi) = data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
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
