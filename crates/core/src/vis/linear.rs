//! The lecture's linear explanation of adversarial examples (Goodfellow et al. 2015): for a linear
//! classifier, the perturbation `eps * sign(w)` changes `w . x` by `eps * |w|_1`, which grows with
//! the input's dimension while each pixel moves by only eps. The demo trains softmax regression
//! on MNIST downscaled to several sizes and measures, for each, how far that perturbation moves
//! the score difference between the true class and the runner-up, and how many images it flips.

use crate::rng::SplitMix64;
use crate::vis::image_param;

/// One input size's result.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearPoint {
    pub side: usize,
    /// side * side.
    pub dim: usize,
    /// Test accuracy, clean and after the perturbation.
    pub accuracy: f32,
    pub adversarial_accuracy: f32,
    /// Mean over test images of eps * |w_t - w_y|_1 (y the label, t the runner-up).
    pub predicted_shift: f32,
    /// Mean of the measured change of (w_t - w_y) . x (less than predicted where clipping to
    /// [0, 1] stops a pixel).
    pub measured_shift: f32,
    /// Mean |w_t - w_y|_1.
    pub w_l1: f32,
}

/// Softmax regression weights (k x d, then k biases) by minibatch SGD.
fn train(x: &[f32], labels: &[usize], d: usize, k: usize, epochs: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let n = labels.len();
    let mut w = vec![0f32; k * d + k];
    let (batch, lr) = (50, 0.5);
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..epochs {
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch) {
            let mut gw = vec![0f32; k * d + k];
            for &i in chunk {
                let xi = &x[i * d..(i + 1) * d];
                let p = softmax(&scores(&w, xi, d, k));
                for c in 0..k {
                    let e = p[c] - if c == labels[i] { 1.0 } else { 0.0 };
                    gw[k * d + c] += e;
                    gw[c * d..(c + 1) * d].iter_mut().zip(xi).for_each(|(g, v)| *g += e * v);
                }
            }
            let s = lr / chunk.len() as f32;
            w.iter_mut().zip(&gw).for_each(|(w, g)| *w -= s * g);
        }
    }
    w
}

fn scores(w: &[f32], x: &[f32], d: usize, k: usize) -> Vec<f32> {
    (0..k).map(|c| w[k * d + c] + w[c * d..(c + 1) * d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>()).collect()
}

fn softmax(z: &[f32]) -> Vec<f32> {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

fn argmax(v: &[f32]) -> usize {
    crate::train::argmax(v)
}

/// Runs the demo for each side length: `images` are N 1 x `src` x `src` images in [0, 1] with
/// `labels` (classes 0..k); the first `n_train` train, the rest test.
pub fn run(
    images: &[f32],
    labels: &[usize],
    src: usize,
    n_train: usize,
    sides: &[usize],
    eps: f32,
    epochs: usize,
    seed: u64,
) -> Vec<LinearPoint> {
    let k = labels.iter().copied().max().map_or(0, |m| m + 1);
    let n = labels.len();
    sides
        .iter()
        .map(|&side| {
            let d = side * side;
            let x: Vec<f32> = images.chunks(src * src).flat_map(|im| image_param::resize(im, [1, src, src], side, side)).collect();
            let mut rng = SplitMix64(seed);
            let w = train(&x[..n_train * d], &labels[..n_train], d, k, epochs, &mut rng);
            let (mut correct, mut adv_correct, mut pred, mut meas, mut l1) = (0usize, 0usize, 0f64, 0f64, 0f64);
            for i in n_train..n {
                let xi = &x[i * d..(i + 1) * d];
                let y = labels[i];
                let s = scores(&w, xi, d, k);
                correct += (argmax(&s) == y) as usize;
                let t = (0..k).filter(|&c| c != y).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap_or(0);
                let diff: Vec<f32> = (0..d).map(|j| w[t * d + j] - w[y * d + j]).collect();
                let norm: f32 = diff.iter().map(|v| v.abs()).sum();
                let xa: Vec<f32> = xi.iter().zip(&diff).map(|(v, g)| (v + eps * g.signum()).clamp(0.0, 1.0)).collect();
                let moved: f32 = diff.iter().zip(xa.iter().zip(xi)).map(|(g, (a, b))| g * (a - b)).sum();
                adv_correct += (argmax(&scores(&w, &xa, d, k)) == y) as usize;
                pred += (eps * norm) as f64;
                meas += moved as f64;
                l1 += norm as f64;
            }
            let m = (n - n_train).max(1) as f64;
            LinearPoint {
                side,
                dim: d,
                accuracy: correct as f32 / m as f32,
                adversarial_accuracy: adv_correct as f32 / m as f32,
                predicted_shift: (pred / m) as f32,
                measured_shift: (meas / m) as f32,
                w_l1: (l1 / m) as f32,
            }
        })
        .collect()
}

/// The demo on a dataset of 1-channel images (the built-in digits): its train and test images at
/// 24 x 24, each side length clamped to 2..24, seed 1.
pub fn demo(train: &crate::data::Dataset, test: &crate::data::Dataset, sides: &[usize], eps: f32, epochs: usize) -> Vec<LinearPoint> {
    let side = 24;
    let shape = [1, side, side];
    let (mut x, mut y) = train.batch(&(0..train.len()).collect::<Vec<_>>(), shape, None);
    let (hx, hy) = test.batch(&(0..test.len()).collect::<Vec<_>>(), shape, None);
    x.extend(hx);
    y.extend(hy);
    let sides: Vec<usize> = sides.iter().map(|&s| s.clamp(2, side)).collect();
    run(&x, &y, side, train.len(), &sides, eps, epochs, 1)
}
