//! Occlusion on the CPU, incrementally: an occluding patch changes only a small region of each
//! layer's output (the patch grown by each layer's kernel), so each occluded image recomputes
//! just that region, from the unoccluded image's activations, and puts them back afterwards. For
//! an 8x8 patch on Tiny VGG this is about 15 times less arithmetic than a full forward pass. A
//! fully connected layer sees every input, so from there on layers are computed whole (they are
//! small). Same numbers as a full forward pass (tests/attribution.rs checks occlusion on this
//! path against Captum).

use crate::cpu_train::{matmul, pool_window};
use crate::layers::OccludeIo;
use crate::layers::act::activate;
use crate::spec::{Activation, NetSpec, PoolMode};

/// Rows `y0..y1` and columns `x0..x1` of a layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl Rect {
    fn len(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }

    /// The smallest rectangle holding both.
    pub fn union(self, o: Rect) -> Rect {
        Rect { y0: self.y0.min(o.y0), y1: self.y1.max(o.y1), x0: self.x0.min(o.x0), x1: self.x1.max(o.x1) }
    }
}

/// The outputs of a window layer (kernel `k`, stride `s`, padding `pad`, output `ho` x `wo`)
/// that read any input inside `r`.
pub(crate) fn affected(r: Rect, k: usize, s: usize, pad: usize, ho: usize, wo: usize) -> Rect {
    let lo = |a: usize| (a + pad + 1).saturating_sub(k).div_ceil(s);
    let hi = |b: usize, n: usize| ((b - 1 + pad) / s + 1).min(n);
    Rect { y0: lo(r.y0).min(ho), y1: hi(r.y1, ho), x0: lo(r.x0).min(wo), x1: hi(r.x1, wo) }
}

/// A forward pass that recomputes only what a patch changes.
#[derive(Debug, Clone)]
pub struct IncrementalForward {
    spec: NetSpec,
    /// Every layer's output for the unoccluded image (CHW), up to the scores.
    base: Vec<Vec<f32>>,
    /// The same, with the current patch's changes; restored to `base` after each evaluation.
    work: Vec<Vec<f32>>,
    cols: Vec<f32>,
    tmp: Vec<f32>,
}

impl IncrementalForward {
    /// From the layer outputs of the unoccluded image (CHW, layers 0..=score layer).
    pub fn new(spec: &NetSpec, base: Vec<Vec<f32>>) -> IncrementalForward {
        IncrementalForward { spec: spec.clone(), work: base.clone(), base, cols: vec![], tmp: vec![] }
    }

    /// The scores (the score layer's output) with the input's rectangle `patch` replaced by
    /// `baseline`'s pixels (CHW, the input's size).
    pub fn scores(&mut self, weights: &[Vec<Vec<f32>>], baseline: &[f32], patch: Rect) -> Vec<f32> {
        let last = self.spec.score_layer();
        let mut written: Vec<Option<Rect>> = vec![None; last + 1];
        let [c0, h0, w0] = self.spec.input_shape();
        for c in 0..c0 {
            for y in patch.y0..patch.y1 {
                let o = (c * h0 + y) * w0;
                self.work[0][o + patch.x0..o + patch.x1].copy_from_slice(&baseline[o + patch.x0..o + patch.x1]);
            }
        }
        written[0] = Some(patch);
        for i in 1..=last {
            let layer = &self.spec.layers[i];
            // What changed in its inputs (a graph's add or concat: the rectangle holding each
            // input's change); a layer none of whose inputs changed keeps its output.
            let Some(region) = layer.inputs.iter().filter_map(|&j| written[j]).reduce(Rect::union) else { continue };
            let (below, rest) = self.work.split_at_mut(i);
            let xs: Vec<&[f32]> = layer.inputs.iter().map(|&j| &below[j][..]).collect();
            let io =
                OccludeIo { layer, x: xs[0], xs: &xs, out: &mut rest[0], w: &weights[i], region, cols: &mut self.cols, tmp: &mut self.tmp };
            written[i] = Some(layer.kind.ops().fused(layer).expect("checked by cpu_train::supported()").occlude(io));
        }
        let scores = self.work[last].clone();
        // Put every changed value back.
        for (i, r) in written.into_iter().enumerate() {
            if let Some(r) = r {
                let [c, h, w] = self.spec.layers[i].out_shape;
                let (base, work) = (&self.base[i], &mut self.work[i]);
                copy_region(base, work, c, h, w, r);
            }
        }
        scores
    }
}

pub(crate) fn copy_region(src: &[f32], dst: &mut [f32], c: usize, h: usize, w: usize, r: Rect) {
    for ch in 0..c {
        for y in r.y0..r.y1 {
            let o = (ch * h + y) * w;
            dst[o + r.x0..o + r.x1].copy_from_slice(&src[o + r.x0..o + r.x1]);
        }
    }
}

/// A convolution's outputs inside `r` only: im2col of the region, one GEMM, bias and activation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_region(
    x: &[f32],
    [ci, hi, wi]: [usize; 3],
    w: &[f32],
    bias: Option<&[f32]>,
    co: usize,
    k: usize,
    s: usize,
    pad: usize,
    [ho, wo]: [usize; 2],
    r: Rect,
    activation: Option<Activation>,
    out: &mut [f32],
    cols: &mut Vec<f32>,
    tmp: &mut Vec<f32>,
) {
    let n = r.len();
    if n == 0 {
        return;
    }
    let kk = ci * k * k;
    cols.clear();
    cols.resize(kk * n, 0.0);
    for c in 0..ci {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((c * k + ky) * k + kx) * n..][..n];
                let mut j = 0;
                for oy in r.y0..r.y1 {
                    let iy = (oy * s + ky) as isize - pad as isize;
                    for ox in r.x0..r.x1 {
                        let ix = (ox * s + kx) as isize - pad as isize;
                        if iy >= 0 && (iy as usize) < hi && ix >= 0 && (ix as usize) < wi {
                            row[j] = x[(c * hi + iy as usize) * wi + ix as usize];
                        }
                        j += 1;
                    }
                }
            }
        }
    }
    tmp.clear();
    tmp.resize(co * n, 0.0);
    matmul(co, n, kk, tmp, (w, 1, kk as isize), (cols, 1, n as isize));
    for o in 0..co {
        let row = &mut tmp[o * n..(o + 1) * n];
        if let Some(b) = bias {
            row.iter_mut().for_each(|v| *v += b[o]);
        }
        activate(activation, row);
        let rw = r.x1 - r.x0;
        for (j, y) in (r.y0..r.y1).enumerate() {
            let d = (o * ho + y) * wo;
            out[d + r.x0..d + r.x1].copy_from_slice(&row[j * rw..(j + 1) * rw]);
        }
    }
}

/// A pooling layer's outputs inside `r` only (the same windows and tie rule as the full pass).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pool_region(
    x: &[f32],
    [c, h, w]: [usize; 3],
    k: usize,
    s: usize,
    pad: usize,
    mode: PoolMode,
    [ho, wo]: [usize; 2],
    r: Rect,
    out: &mut [f32],
) {
    for ch in 0..c {
        let src = &x[ch * h * w..(ch + 1) * h * w];
        for oy in r.y0..r.y1 {
            for ox in r.x0..r.x1 {
                out[(ch * ho + oy) * wo + ox] = pool_window(src, [h, w], k, s, pad, [oy, ox], mode).0;
            }
        }
    }
}
