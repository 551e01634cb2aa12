//! MNIST from ConvNetJS's sprite sheets in the data directory (`$CONVLENS_DATA_DIR/mnist/`):
//! `mnist_batch_{0..19}.png` train, `mnist_batch_20.png` the first 3,000 test images, each row one
//! 28x28 digit; labels in `mnist_labels.js`.

use std::path::Path;

pub struct Mnist {
    /// 28*28 bytes per image.
    pub pixels: Vec<u8>,
    pub labels: Vec<usize>,
}

impl Mnist {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Image `i` cropped to 24x24 at (dx, dy) in 0..=4, scaled to [0, 1].
    pub fn crop(&self, i: usize, dx: usize, dy: usize, out: &mut Vec<f32>) {
        let img = &self.pixels[i * 784..(i + 1) * 784];
        for y in 0..24 {
            for x in 0..24 {
                out.push(img[(y + dy) * 28 + x + dx] as f32 / 255.0);
            }
        }
    }
}

pub fn load(dir: &Path, batches: std::ops::Range<usize>) -> Result<Mnist, String> {
    let mnist = dir.join("mnist");
    let labels_text = std::fs::read_to_string(mnist.join("mnist_labels.js"))
        .map_err(|e| format!("cannot read {}: {e} (set CONVLENS_DATA_DIR or --data)", mnist.join("mnist_labels.js").display()))?;
    let body = labels_text
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .ok_or("mnist_labels.js: no [...] list")?
        .0;
    let all: Vec<usize> = body
        .split(',')
        .map(|s| s.trim().parse().map_err(|_| format!("mnist_labels.js: bad label '{s}'")))
        .collect::<Result<_, _>>()?;
    let mut pixels = vec![];
    let mut labels = vec![];
    for b in batches {
        let path = mnist.join(format!("mnist_batch_{b}.png"));
        let img = image::open(&path).map_err(|e| format!("cannot decode {}: {e}", path.display()))?.to_luma8();
        if img.width() != 784 {
            return Err(format!("{}: expected 784 px wide, got {}", path.display(), img.width()));
        }
        let rows = img.height() as usize;
        pixels.extend_from_slice(img.as_raw());
        let first = if b == 20 { 60_000 } else { b * 3000 };
        labels.extend_from_slice(all.get(first..first + rows).ok_or("mnist_labels.js: too few labels")?);
    }
    Ok(Mnist { pixels, labels })
}
