//! What the optimization techniques optimize: an image, either its pixels directly or, as Lucid
//! does (Olah et al. 2017, "Feature Visualization"), a spectrum in a decorrelated colour space that
//! an inverse FFT, a colour matrix and a sigmoid turn into pixels. Gradient ascent on pixels is
//! dominated by high frequencies; the Fourier parametrization scales frequency f by 1/f, which
//! whitens the gradient and gives natural-looking images in a few hundred steps.
//!
//! Also here: the transforms applied before each step (jitter, a Gaussian blur), the optimizers
//! (Adam, and plain steps) and helpers shared by the techniques. Images are CHW in [0, 1].

use rustfft::FftPlanner;
use rustfft::num_complex::Complex32;

use crate::rng::SplitMix64;

/// How the image is parametrized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parametrization {
    /// The pixels themselves (kept in [0, 1] by clipping after each step).
    Pixel,
    /// Lucid's: a 1/f-scaled spectrum per channel (decay power 1), optionally in a decorrelated
    /// colour space, and a sigmoid into [0, 1].
    Fourier { decorrelate: bool },
}

impl Parametrization {
    pub fn parse(s: &str) -> Option<Parametrization> {
        match s {
            "pixel" => Some(Parametrization::Pixel),
            "fourier" => Some(Parametrization::Fourier { decorrelate: false }),
            "fourier-decorrelated" | "lucid" => Some(Parametrization::Fourier { decorrelate: true }),
            _ => None,
        }
    }
}

/// Lucid's colour correlation of ImageNet (the square root of its covariance, from an SVD),
/// normalized so its largest column has norm 1.
const COLOR_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

fn color_matrix() -> [[f32; 3]; 3] {
    let norm = (0..3).map(|j| (0..3).map(|i| COLOR_SQRT[i][j] * COLOR_SQRT[i][j]).sum::<f32>().sqrt()).fold(0.0, f32::max);
    COLOR_SQRT.map(|row| row.map(|v| v / norm))
}

/// An image being optimized: its parameters and how they become pixels.
pub struct ImageParam {
    pub kind: Parametrization,
    pub shape: [usize; 3],
    /// Pixel: the CHW pixels. Fourier: per channel, H*W complex coefficients as (re, im) pairs.
    pub params: Vec<f32>,
    /// Fourier: the 1/f scale of each frequency (H*W).
    scale: Vec<f32>,
    fft: Option<Fft2>,
}

struct Fft2 {
    rows: std::sync::Arc<dyn rustfft::Fft<f32>>,
    cols: std::sync::Arc<dyn rustfft::Fft<f32>>,
    rows_inv: std::sync::Arc<dyn rustfft::Fft<f32>>,
    cols_inv: std::sync::Arc<dyn rustfft::Fft<f32>>,
}

impl Fft2 {
    fn new(h: usize, w: usize) -> Fft2 {
        let mut p = FftPlanner::<f32>::new();
        Fft2 { rows: p.plan_fft_forward(w), cols: p.plan_fft_forward(h), rows_inv: p.plan_fft_inverse(w), cols_inv: p.plan_fft_inverse(h) }
    }

    /// An unnormalized 2-D transform of an H x W array (row-major), in place.
    fn run(&self, data: &mut [Complex32], h: usize, w: usize, inverse: bool) {
        let (rows, cols) = if inverse { (&self.rows_inv, &self.cols_inv) } else { (&self.rows, &self.cols) };
        rows.process(data);
        let mut t = vec![Complex32::default(); h * w];
        transpose(data, &mut t, h, w);
        cols.process(&mut t);
        transpose(&t, data, w, h);
    }
}

fn transpose(src: &[Complex32], dst: &mut [Complex32], h: usize, w: usize) {
    for y in 0..h {
        for x in 0..w {
            dst[x * h + y] = src[y * w + x];
        }
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl ImageParam {
    /// A new image: pixel parametrization starts from `init` (or gray plus `noise` times a
    /// standard normal); Fourier starts from a random spectrum of standard deviation 0.01 (Lucid's),
    /// which is a nearly gray image.
    pub fn new(kind: Parametrization, shape: [usize; 3], init: Option<&[f32]>, noise: f32, rng: &mut SplitMix64) -> ImageParam {
        let [c, h, w] = shape;
        match kind {
            Parametrization::Pixel => {
                let params = match init {
                    Some(v) => v.to_vec(),
                    None => (0..c * h * w).map(|_| (0.5 + noise * rng.normal() as f32).clamp(0.0, 1.0)).collect(),
                };
                ImageParam { kind, shape, params, scale: vec![], fft: None }
            }
            Parametrization::Fourier { .. } => {
                let fy = |u: usize| u.min(h - u) as f32 / h as f32;
                let fx = |v: usize| v.min(w - v) as f32 / w as f32;
                let floor = 1.0 / h.max(w) as f32;
                let scale = (0..h * w).map(|i| 1.0 / (fy(i / w).hypot(fx(i % w))).max(floor)).collect();
                let params = (0..c * h * w * 2).map(|_| 0.01 * rng.normal() as f32).collect();
                ImageParam { kind, shape, params, scale, fft: Some(Fft2::new(h, w)) }
            }
        }
    }

    /// Lucid's constant: the inverse transform is divided by N (irfft2d) and multiplied by
    /// sqrt(N) / 4 (its `scale *= sqrt(w * h)` and `image / 4`).
    fn gain(&self) -> f32 {
        let n = (self.shape[1] * self.shape[2]) as f32;
        1.0 / (4.0 * n.sqrt())
    }

    /// Fourier: the pre-sigmoid image (per channel the real part of the scaled inverse FFT, then
    /// the colour matrix).
    fn logits(&self) -> Vec<f32> {
        let [c, h, w] = self.shape;
        let fft = self.fft.as_ref().expect("a Fourier image has its FFT");
        let g = self.gain();
        let mut y = vec![0f32; c * h * w];
        for ch in 0..c {
            let mut buf: Vec<Complex32> = (0..h * w)
                .map(|i| {
                    let k = 2 * (ch * h * w + i);
                    Complex32::new(self.params[k], self.params[k + 1]) * self.scale[i]
                })
                .collect();
            fft.run(&mut buf, h, w, true);
            for (o, b) in y[ch * h * w..(ch + 1) * h * w].iter_mut().zip(&buf) {
                *o = b.re * g;
            }
        }
        if self.kind == (Parametrization::Fourier { decorrelate: true }) && c == 3 {
            let m = color_matrix();
            let hw = h * w;
            for i in 0..hw {
                let v = [y[i], y[hw + i], y[2 * hw + i]];
                for (r, row) in m.iter().enumerate() {
                    y[r * hw + i] = row[0] * v[0] + row[1] * v[1] + row[2] * v[2];
                }
            }
        }
        y
    }

    /// The image, CHW in [0, 1].
    pub fn image(&self) -> Vec<f32> {
        match self.kind {
            Parametrization::Pixel => self.params.clone(),
            Parametrization::Fourier { .. } => self.logits().into_iter().map(sigmoid).collect(),
        }
    }

    /// The gradient with respect to the parameters of a loss whose gradient with respect to the
    /// image is `grad` (the chain rule back through sigmoid, colour matrix and inverse FFT).
    pub fn backprop(&self, grad: &[f32]) -> Vec<f32> {
        let [c, h, w] = self.shape;
        match self.kind {
            Parametrization::Pixel => grad.to_vec(),
            Parametrization::Fourier { decorrelate } => {
                let hw = h * w;
                let mut gy: Vec<f32> = self
                    .logits()
                    .iter()
                    .zip(grad)
                    .map(|(&z, g)| {
                        let s = sigmoid(z);
                        g * s * (1.0 - s)
                    })
                    .collect();
                if decorrelate && c == 3 {
                    let m = color_matrix();
                    for i in 0..hw {
                        let v = [gy[i], gy[hw + i], gy[2 * hw + i]];
                        for r in 0..3 {
                            gy[r * hw + i] = m[0][r] * v[0] + m[1][r] * v[1] + m[2][r] * v[2];
                        }
                    }
                }
                // y = Re(IFFT(s . S)) g  =>  d/dRe S + i d/dIm S = g s FFT(gy) (unnormalized).
                let fft = self.fft.as_ref().expect("a Fourier image has its FFT");
                let gain = self.gain();
                let mut out = vec![0f32; c * hw * 2];
                for ch in 0..c {
                    let mut buf: Vec<Complex32> = gy[ch * hw..(ch + 1) * hw].iter().map(|&v| Complex32::new(v, 0.0)).collect();
                    fft.run(&mut buf, h, w, false);
                    for (i, b) in buf.iter().enumerate() {
                        let k = 2 * (ch * hw + i);
                        out[k] = b.re * self.scale[i] * gain;
                        out[k + 1] = b.im * self.scale[i] * gain;
                    }
                }
                out
            }
        }
    }

    /// Pixel parametrization: clip to [0, 1] (after a step).
    pub fn clip(&mut self) {
        if self.kind == Parametrization::Pixel {
            self.params.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        }
    }
}

/// Adam (Kingma & Ba) on a flat parameter vector, ascending or descending.
pub struct Adam {
    pub lr: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(lr: f32, n: usize) -> Adam {
        Adam { lr, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// One step along `grad` (descent; pass the negated gradient to ascend).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * grad[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * grad[i] * grad[i];
            params[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

/// Rolls a CHW image by (dy, dx) pixels, wrapping around (jitter; rolling by (-dy, -dx) undoes
/// it, which is also the adjoint that takes a gradient back).
pub fn roll(x: &[f32], [c, h, w]: [usize; 3], dy: isize, dx: isize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        for y in 0..h {
            let sy = (y as isize - dy).rem_euclid(h as isize) as usize;
            for xx in 0..w {
                let sx = (xx as isize - dx).rem_euclid(w as isize) as usize;
                out[(ch * h + y) * w + xx] = x[(ch * h + sy) * w + sx];
            }
        }
    }
    out
}

/// A random jitter offset in [-j, j].
pub fn jitter_offset(rng: &mut SplitMix64, j: usize) -> isize {
    if j == 0 { 0 } else { (rng.next_u64() % (2 * j as u64 + 1)) as isize - j as isize }
}

/// A separable Gaussian blur of each channel (edges clamped).
pub fn gaussian_blur(x: &[f32], [c, h, w]: [usize; 3], sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return x.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let k: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / sum).collect();
    let mut tmp = vec![0f32; x.len()];
    let mut out = vec![0f32; x.len()];
    for ch in 0..c {
        let base = ch * h * w;
        for y in 0..h {
            for xx in 0..w {
                let mut s = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let sx = (xx as isize + j as isize - r).clamp(0, w as isize - 1) as usize;
                    s += kv * x[base + y * w + sx];
                }
                tmp[base + y * w + xx] = s;
            }
        }
        for y in 0..h {
            for xx in 0..w {
                let mut s = 0.0;
                for (j, kv) in k.iter().enumerate() {
                    let sy = (y as isize + j as isize - r).clamp(0, h as isize - 1) as usize;
                    s += kv * tmp[base + sy * w + xx];
                }
                out[base + y * w + xx] = s;
            }
        }
    }
    out
}

/// Bilinear resize of a CHW image (align_corners = false, as PyTorch and PIL do), for octaves
/// and for fitting images to a net.
pub fn resize(x: &[f32], [c, h, w]: [usize; 3], oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0f32; c * oh * ow];
    let (sy, sx) = (h as f32 / oh as f32, w as f32 / ow as f32);
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy - fy.floor());
        let y1 = (y0 + 1).min(h - 1);
        for xx in 0..ow {
            let fx = ((xx as f32 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx - fx.floor());
            let x1 = (x0 + 1).min(w - 1);
            for ch in 0..c {
                let p = |yy: usize, xv: usize| x[(ch * h + yy) * w + xv];
                let top = p(y0, x0) * (1.0 - tx) + p(y0, x1) * tx;
                let bot = p(y1, x0) * (1.0 - tx) + p(y1, x1) * tx;
                out[(ch * oh + y) * ow + xx] = top * (1.0 - ty) + bot * ty;
            }
        }
    }
    out
}

/// Bilinear taps of an affine warp about the image centre: output pixel p samples the input at
/// R(-angle) p / scale (wrapping around the edges, as the roll does), as 4 (index, weight) pairs.
fn warp_taps(h: usize, w: usize, scale: f32, angle_deg: f32) -> impl Iterator<Item = (usize, [(usize, f32); 4])> {
    let (sin, cos) = (-angle_deg.to_radians()).sin_cos();
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    (0..h * w).map(move |p| {
        let (y, x) = ((p / w) as f32 - cy, (p % w) as f32 - cx);
        let sy = (sin * x + cos * y) / scale + cy;
        let sx = (cos * x - sin * y) / scale + cx;
        let (fy, fx) = (sy.floor(), sx.floor());
        let (ty, tx) = (sy - fy, sx - fx);
        let wrap = |v: f32, n: usize| (v as isize).rem_euclid(n as isize) as usize;
        let (y0, x0) = (wrap(fy, h), wrap(fx, w));
        let (y1, x1) = ((y0 + 1) % h, (x0 + 1) % w);
        (
            p,
            [
                (y0 * w + x0, (1.0 - ty) * (1.0 - tx)),
                (y0 * w + x1, (1.0 - ty) * tx),
                (y1 * w + x0, ty * (1.0 - tx)),
                (y1 * w + x1, ty * tx),
            ],
        )
    })
}

/// Scales and rotates a CHW image about its centre (Lucid's random scale and rotation, which make
/// the visualization robust to small transformations).
pub fn warp(x: &[f32], [c, h, w]: [usize; 3], scale: f32, angle_deg: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (p, taps) in warp_taps(h, w, scale, angle_deg) {
        for ch in 0..c {
            out[ch * h * w + p] = taps.iter().map(|&(q, t)| t * x[ch * h * w + q]).sum();
        }
    }
    out
}

/// The adjoint of [`warp`]: takes the gradient at the warped image back to the image.
pub fn warp_adjoint(g: &[f32], [c, h, w]: [usize; 3], scale: f32, angle_deg: f32) -> Vec<f32> {
    let mut out = vec![0f32; g.len()];
    for (p, taps) in warp_taps(h, w, scale, angle_deg) {
        for ch in 0..c {
            for &(q, t) in &taps {
                out[ch * h * w + q] += t * g[ch * h * w + p];
            }
        }
    }
    out
}
