//! `conv`: a 2-D convolution with bias and an optional fused activation; `groups` (depthwise when
//! it equals the channels) and TensorFlow's `"padding": "same"` (the odd zero row and column at
//! the bottom and right) and `dilation` (the kernel's taps `dilation` apart; ONNX's and PyTorch's).
//! Weight (out, in / groups, k, k), as PyTorch's Conv2d.
//!
//! On the fused CPU path a convolution is one GEMM per group over the batch's im2col (groups of
//! one channel, depthwise convolutions, are a direct kernel instead: each output plane sums k²
//! shifted, scaled rows of one input plane, which vectorizes along the row); TensorFlow's odd
//! bottom/right padding needs nothing there (positions past the input read zeros). In inference
//! (a forward with no training step: the layer view, attributions, occlusion's full pass) a 3x3
//! 'same' convolution of stride 1 with at least 16 channels in and out runs as Winograd's
//! F(2x2, 3x3) instead — 16 GEMMs over 4x4 input tiles, 2.25 times fewer multiplies (ResNet's and
//! VGG's 3x3 convolutions are most of their time); its outputs differ from the GEMM's by rounding
//! (~1e-6 relative). Dilated convolutions go through Burn.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

use super::act::{Activation, apply};
use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, param, Window};
use crate::cpu_occlude::{Rect, affected, conv_region};
use super::act::activate;
use crate::cpu_train::{bias_grads, col2im, im2col, matmul, matmul_add, pre_activation_grads};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, ParamSpec, Shape3, SpecError, describe_value};

#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub size: usize,
    pub filters: usize,
    pub stride: usize,
    /// Zeros added on every side...
    pub pad: usize,
    /// ...and this many more at the bottom and right (TensorFlow's 'same' padding with an odd
    /// total, e.g. a 3x3 stride-2 convolution of an even-sized input: 0 on top, 1 below).
    pub pad_end: usize,
    /// Channel groups: `groups` = input channels = filters is a depthwise convolution.
    pub groups: usize,
    /// Taps `dilation` apart (1: adjacent).
    pub dilation: usize,
    pub bias: bool,
    pub activation: Option<Activation>,
}

impl Parse for Conv {
    const TYPES: &'static [&'static str] = &["conv"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let in_shape = inputs[0].shape;
        let size = f.uint(&["size", "sx"], None, 1)?;
        let filters = f.uint(&["filters"], None, 1)?;
        let stride = f.uint(&["stride"], Some(1), 1)?;
        let groups = f.uint(&["groups"], Some(1), 1)?;
        let dilation = f.uint(&["dilation"], Some(1), 1)?;
        if dilation > 1 && f.obj.contains_key("padding") {
            return Err(f.err("dilation", "a dilated convolution takes pad, not padding"));
        }
        // The window the kernel spans.
        let span = size.checked_mul(dilation).map(|s| s - dilation + 1).unwrap_or(usize::MAX);
        if !in_shape[0].is_multiple_of(groups) || filters % groups != 0 {
            return Err(f.err(
                "groups",
                format!("expected a divisor of both the {} input channels and the {filters} filters, got {groups}", in_shape[0]),
            ));
        }
        // `padding: "same"` is TensorFlow's: the output is ceil(input / stride), the odd zero (if
        // any) at the bottom and right.
        let (pad, pad_end) = match f.get(&["padding"]) {
            None => (f.uint(&["pad"], Some(0), 0)?, 0),
            Some((n, v)) => {
                if f.obj.contains_key("pad") {
                    return Err(f.err(n, "give either pad or padding, not both"));
                }
                match v.as_str() {
                    Some("valid") => (0, 0),
                    Some("same") => {
                        let total = |n: usize| ((n.div_ceil(stride) - 1) * stride + size).saturating_sub(n);
                        let (th, tw) = (total(in_shape[1]), total(in_shape[2]));
                        if th != tw {
                            return Err(f.err(n, "'same' padding of a non-square input needs different padding per axis; not supported"));
                        }
                        (th / 2, th % 2)
                    }
                    _ => return Err(f.err(n, format!("expected \"same\" or \"valid\", got {}", describe_value(v)))),
                }
            }
        };
        let bias = f.boolean("bias", true)?;
        let activation = f.activation()?;
        let (h, w) = (in_shape[1] + 2 * pad + pad_end, in_shape[2] + 2 * pad + pad_end);
        if span > h || span > w {
            return Err(f.err(
                "size",
                format!(
                    "the {size}x{size} kernel{} does not fit the {}x{} input (padded to {h}x{w}); expected at most {}",
                    if dilation > 1 { format!(" dilated {dilation} ({span}x{span})") } else { String::new() },
                    in_shape[1],
                    in_shape[2],
                    h.min(w)
                ),
            ));
        }
        let out = [filters, (h - span) / stride + 1, (w - span) / stride + 1];
        Ok((Conv { size, filters, stride, pad, pad_end, groups, dilation, bias, activation }, out))
    }
}

impl Kind for Conv {
    fn window(&self) -> Window {
        Window::Slide { size: self.dilation * (self.size - 1) + 1, stride: self.stride, pad: self.pad }
    }
    fn type_name(&self) -> &'static str {
        "conv"
    }
    fn describe(&self, l: &Layer) -> String {
        let Conv { size, filters, stride, pad, pad_end, groups, dilation, activation, .. } = self;
        let act = activation.map(|a| format!(", {}", a.as_str())).unwrap_or_default();
        let depthwise = *groups > 1 && *groups == *filters && *groups == l.in_shape[0];
        format!(
            "{}conv {size}x{size}, {filters} filters, stride {stride}, pad {pad}{}{}{}",
            if depthwise { "depthwise " } else { "" },
            if *pad_end > 0 { format!("(+{pad_end} bottom/right)") } else { String::new() },
            if *dilation > 1 { format!(", dilation {dilation}") } else { String::new() },
            if *groups > 1 && !depthwise { format!(", {groups} groups{act}") } else { act }
        )
    }
    fn params(&self, l: &Layer) -> Vec<ParamSpec> {
        let mut v = vec![param(l, "weight", vec![self.filters, l.in_shape[0] / self.groups, self.size, self.size], true, true)];
        if self.bias {
            v.push(param(l, "bias", vec![self.filters], true, false));
        }
        v
    }
    fn activation(&self) -> Option<Activation> {
        self.activation
    }
    fn forward(&self, _: &Layer, params: &[ParamTensor], inputs: &[Tensor<4>], act: bool, _: &mut Mode) -> Tensor<4> {
        let opts = ConvOptions::new([self.stride, self.stride], [self.pad, self.pad], [self.dilation, self.dilation], self.groups);
        let bias = params.get(1).map(ParamTensor::d1);
        let x = inputs[0].clone();
        // TensorFlow's 'same' padding: the odd zero row and column at the bottom and right.
        let x = if self.pad_end > 0 { x.pad((0, self.pad_end, 0, self.pad_end), PadMode::Constant(0.0)) } else { x };
        apply(conv2d(x, params[0].d4(), bias, opts), if act { self.activation } else { None })
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        (self.dilation == 1).then_some(self as &dyn Fused)
    }
}

/// The output columns `ox` of a row whose input column `ox * s + kx - pad` lies in `[0, w)`,
/// within `[x0, x1)`.
fn inside(kx: usize, s: usize, pad: usize, w: usize, x0: usize, x1: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(kx).div_ceil(s).max(x0);
    let hi = if w + pad > kx { ((w + pad - kx - 1) / s + 1).min(x1) } else { 0 };
    (lo, hi.max(lo))
}

/// Adds to `dst` (one output plane, `wo` wide) the depthwise convolution of one input plane `src`
/// (`h` x `w`) with the `k` x `k` kernel `wk`, at the outputs inside `r` (incremental occlusion).
#[allow(clippy::too_many_arguments)]
fn depthwise_plane(src: &[f32], [h, w]: [usize; 2], wk: &[f32], k: usize, s: usize, pad: usize, wo: usize, r: Rect, dst: &mut [f32]) {
    for oy in r.y0..r.y1 {
        let drow = &mut dst[oy * wo..][..wo];
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - pad as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let srow = &src[iy as usize * w..][..w];
            for kx in 0..k {
                let wv = wk[ky * k + kx];
                let (lo, hi) = inside(kx, s, pad, w, r.x0, r.x1);
                if s == 1 {
                    let x0 = lo + kx - pad;
                    drow[lo..hi].iter_mut().zip(&srow[x0..x0 + hi - lo]).for_each(|(d, v)| *d += wv * v);
                } else {
                    for ox in lo..hi {
                        drow[ox] += wv * srow[ox * s + kx - pad];
                    }
                }
            }
        }
    }
}

/// A depthwise convolution's input plane zero-padded and split into `s` column phases (`ph` rows
/// of `pws` values each, phase by phase), so that what a tap reads along a row of outputs is one
/// contiguous run: output `ox` of tap `kx` reads padded column `ox * s + kx`, which is in phase
/// `kx % s` at `ox + kx / s`. The kernel then is k² branch-free runs per output row, which
/// vectorize (the bounds-checked row walk it replaced ran at a tenth of a 1x1 GEMM's speed).
struct Phased {
    s: usize,
    ph: usize,
    pws: usize,
    pad: usize,
    w: usize,
}

impl Phased {
    fn new(k: usize, s: usize, pad: usize, [h, w]: [usize; 2], [ho, wo]: [usize; 2]) -> Phased {
        let ph = (h + pad).max((ho - 1) * s + k);
        let pw = (w + pad).max((wo - 1) * s + k);
        Phased { s, ph, pws: pw.div_ceil(s), pad, w }
    }

    fn len(&self) -> usize {
        self.s * self.ph * self.pws
    }

    /// Where padded row `r`, column `c` is.
    fn at(&self, r: usize, c: usize) -> usize {
        ((c % self.s) * self.ph + r) * self.pws + c / self.s
    }

    /// For each phase `q`: the first column `x0` of a plane row in it, and where that lands in
    /// the phase's padded row.
    fn phases(&self) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..self.s).map(move |q| {
            let x0 = (q + self.s - self.pad % self.s) % self.s;
            (q, x0, (x0 + self.pad) / self.s)
        })
    }

    /// `src` (`h` x `w`) into `dst`, zeros around.
    fn fill(&self, src: &[f32], dst: &mut Vec<f32>) {
        dst.clear();
        dst.resize(self.len(), 0.0);
        for (y, row) in src.chunks(self.w).enumerate() {
            for (q, x0, j0) in self.phases() {
                let at = (q * self.ph + y + self.pad) * self.pws + j0;
                for (d, &v) in dst[at..].iter_mut().zip(row.iter().skip(x0).step_by(self.s)) {
                    *d = v;
                }
            }
        }
    }

    /// Adds the values of padded `src` that lie inside the plane into `dst` (`h` x `w`).
    fn add_inside(&self, src: &[f32], dst: &mut [f32]) {
        for (y, row) in dst.chunks_mut(self.w).enumerate() {
            for (q, x0, j0) in self.phases() {
                let at = (q * self.ph + y + self.pad) * self.pws + j0;
                for (d, &v) in row.iter_mut().skip(x0).step_by(self.s).zip(&src[at..]) {
                    *d += v;
                }
            }
        }
    }
}

/// One output plane (`ho` x `wo`, overwritten) of a depthwise convolution of the input plane `src`
/// (`h` x `w`) with the `k` x `k` kernel `wk`; `pbuf` is scratch.
#[allow(clippy::too_many_arguments)]
fn depthwise_forward(src: &[f32], hw: [usize; 2], wk: &[f32], k: usize, s: usize, pad: usize, [ho, wo]: [usize; 2], out: &mut [f32], pbuf: &mut Vec<f32>) {
    let p = Phased::new(k, s, pad, hw, [ho, wo]);
    p.fill(src, pbuf);
    for oy in 0..ho {
        let o = &mut out[oy * wo..][..wo];
        let tap = |ky: usize, kx: usize| &pbuf[p.at(oy * s + ky, kx)..][..wo];
        if k == 3 {
            // The 3x3 kernel (MobileNet's) in one pass over the row, in the order of the loop below.
            let (a0, a1, a2, b0, b1, b2, c0, c1, c2) = (tap(0, 0), tap(0, 1), tap(0, 2), tap(1, 0), tap(1, 1), tap(1, 2), tap(2, 0), tap(2, 1), tap(2, 2));
            let w = &wk[..9];
            for i in 0..wo {
                o[i] = w[0] * a0[i] + w[1] * a1[i] + w[2] * a2[i] + w[3] * b0[i] + w[4] * b1[i] + w[5] * b2[i] + w[6] * c0[i] + w[7] * c1[i] + w[8] * c2[i];
            }
        } else {
            o.fill(0.0);
            for ky in 0..k {
                for kx in 0..k {
                    let wv = wk[ky * k + kx];
                    o.iter_mut().zip(tap(ky, kx)).for_each(|(o, v)| *o += wv * v);
                }
            }
        }
    }
}

/// The adjoints of [`depthwise_forward`] for one plane pair, given the output's gradient `g`:
/// `dwk` += Σ g·x per tap, `dx` (`h` x `w`) += the input's gradient. `pbuf`, `dbuf` and `acc` are
/// scratch.
#[allow(clippy::too_many_arguments)]
fn depthwise_backward(
    src: &[f32],
    hw: [usize; 2],
    wk: &[f32],
    k: usize,
    s: usize,
    pad: usize,
    [ho, wo]: [usize; 2],
    g: &[f32],
    dwk: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    [pbuf, dbuf, acc]: [&mut Vec<f32>; 3],
) {
    let p = Phased::new(k, s, pad, hw, [ho, wo]);
    if let Some(dwk) = dwk {
        p.fill(src, pbuf);
        acc.clear();
        acc.resize(k * k * wo, 0.0);
        for oy in 0..ho {
            let grow = &g[oy * wo..][..wo];
            for ky in 0..k {
                for kx in 0..k {
                    let (t, at) = (ky * k + kx, p.at(oy * s + ky, kx));
                    acc[t * wo..][..wo].iter_mut().zip(grow).zip(&pbuf[at..][..wo]).for_each(|((a, g), v)| *a += g * v);
                }
            }
        }
        for (d, run) in dwk.iter_mut().zip(acc.chunks(wo)) {
            *d += run.iter().sum::<f32>();
        }
    }
    let Some(dx) = dx else { return };
    if s == 1 && pad < k {
        // With stride 1 the input's gradient is itself a depthwise convolution: of the output's
        // gradient, with the kernel turned 180° and padded by k - 1 - pad (one pass per value).
        let flipped: Vec<f32> = wk.iter().rev().copied().collect();
        dbuf.resize(hw[0] * hw[1], 0.0);
        depthwise_forward(g, [ho, wo], &flipped, k, 1, k - 1 - pad, hw, dbuf, pbuf);
        dx.iter_mut().zip(dbuf.iter()).for_each(|(d, v)| *d += v);
        return;
    }
    dbuf.clear();
    dbuf.resize(p.len(), 0.0);
    for oy in 0..ho {
        let grow = &g[oy * wo..][..wo];
        for ky in 0..k {
            for kx in 0..k {
                let (wv, at) = (wk[ky * k + kx], p.at(oy * s + ky, kx));
                dbuf[at..][..wo].iter_mut().zip(grow).for_each(|(d, g)| *d += wv * g);
            }
        }
    }
    p.add_inside(dbuf, dx);
}

impl Conv {
    /// Whether each group has one input channel (a depthwise convolution, or one with a channel
    /// multiplier): the direct kernel.
    fn depthwise(&self, l: &Layer) -> bool {
        self.groups > 1 && l.in_shape[0] == self.groups
    }

    /// Whether it is a 1x1 convolution with stride 1 and no padding: the input (`[C, N*H*W]` on
    /// the fused path) is its own im2col.
    fn pointwise(&self) -> bool {
        self.size == 1 && self.stride == 1 && self.pad == 0 && self.pad_end == 0
    }

    /// Whether an inference forward runs by Winograd's F(2x2, 3x3) ([`winograd`]): a 3x3 'same'
    /// convolution of stride 1, ungrouped, with channels enough for its GEMMs to pay.
    fn winograd(&self, l: &Layer) -> bool {
        let ([ci, hi, wi], [co, ho, wo]) = (l.in_shape, l.out_shape);
        self.size == 3 && self.stride == 1 && self.pad == 1 && self.pad_end == 0 && self.groups == 1 && ci >= 16 && co >= 16 && (ho, wo) == (hi, wi)
    }
}

/// A 3x3 convolution of stride 1 and padding 1 by Winograd's F(2x2, 3x3) (Lavin & Gray 2016):
/// `x` is `[ci][n][h*w]`, `w` the weights `[co][ci][3][3]`, `out` `[co][n][h*w]` (the bias added,
/// no activation). Each 4x4 input tile `d` (stride 2) becomes `B^T d B`, each 3x3 kernel `g`
/// becomes `G g G^T`; their products summed over the input channels are 16 GEMMs
/// (`[co x ci] x [ci x tiles]`), and `A^T m A` of each tile's 16 sums is its 2x2 outputs.
/// `scratch` holds the transformed weights, tiles and products.
pub(crate) fn winograd(x: &[f32], w: &[f32], bias: Option<&[f32]>, [ci, n, h, wd]: [usize; 4], co: usize, out: &mut [f32], scratch: &mut Vec<f32>) {
    let (th, tw) = (h.div_ceil(2), wd.div_ceil(2));
    let tiles = n * th * tw;
    let (su, sv, sm) = (16 * co * ci, 16 * ci * tiles, 16 * co * tiles);
    scratch.resize(su + sv + sm, 0.0);
    let (u, rest) = scratch.split_at_mut(su);
    let (v, m) = rest.split_at_mut(sv);
    // The kernels: U[xi][o][c] = (G g G^T)[xi].
    for o in 0..co {
        for c in 0..ci {
            let g = &w[(o * ci + c) * 9..][..9];
            let mut t = [[0f32; 3]; 4]; // G g
            for j in 0..3 {
                let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
                t[0][j] = g0;
                t[1][j] = 0.5 * (g0 + g1 + g2);
                t[2][j] = 0.5 * (g0 - g1 + g2);
                t[3][j] = g2;
            }
            for (i, r) in t.iter().enumerate() {
                let row = [r[0], 0.5 * (r[0] + r[1] + r[2]), 0.5 * (r[0] - r[1] + r[2]), r[2]];
                for (j, &val) in row.iter().enumerate() {
                    u[((i * 4 + j) * co + o) * ci + c] = val;
                }
            }
        }
    }
    // The input tiles: V[xi][c][tile] = (B^T d B)[xi], from a zero-padded copy of each plane.
    let (ph, pw) = (2 * th + 2, 2 * tw + 2);
    let mut padded = vec![0f32; ph * pw];
    for c in 0..ci {
        for b in 0..n {
            let plane = &x[(c * n + b) * h * wd..][..h * wd];
            for y in 0..h {
                padded[(y + 1) * pw + 1..][..wd].copy_from_slice(&plane[y * wd..][..wd]);
            }
            for ty in 0..th {
                for tx in 0..tw {
                    let t = (b * th + ty) * tw + tx;
                    let d = |r: usize, q: usize| padded[(2 * ty + r) * pw + 2 * tx + q];
                    let mut r = [[0f32; 4]; 4]; // B^T d
                    for q in 0..4 {
                        let (d0, d1, d2, d3) = (d(0, q), d(1, q), d(2, q), d(3, q));
                        r[0][q] = d0 - d2;
                        r[1][q] = d1 + d2;
                        r[2][q] = d2 - d1;
                        r[3][q] = d1 - d3;
                    }
                    for (i, ri) in r.iter().enumerate() {
                        let row = [ri[0] - ri[2], ri[1] + ri[2], ri[2] - ri[1], ri[1] - ri[3]];
                        for (j, &val) in row.iter().enumerate() {
                            v[((i * 4 + j) * ci + c) * tiles + t] = val;
                        }
                    }
                }
            }
        }
    }
    for xi in 0..16 {
        let (dst, lhs, rhs) = (&mut m[xi * co * tiles..][..co * tiles], &u[xi * co * ci..], &v[xi * ci * tiles..]);
        matmul(co, tiles, ci, dst, (lhs, 1, ci as isize), (rhs, 1, tiles as isize));
    }
    // The outputs: A^T m A of each tile, cropped at the bottom and right edges.
    for o in 0..co {
        let b0 = bias.map_or(0.0, |b| b[o]);
        for b in 0..n {
            let dst = &mut out[(o * n + b) * h * wd..][..h * wd];
            for ty in 0..th {
                for tx in 0..tw {
                    let t = (b * th + ty) * tw + tx;
                    let mm = |i: usize, j: usize| m[((i * 4 + j) * co + o) * tiles + t];
                    let mut s = [[0f32; 4]; 2]; // A^T m
                    for q in 0..4 {
                        let (m0, m1, m2, m3) = (mm(0, q), mm(1, q), mm(2, q), mm(3, q));
                        s[0][q] = m0 + m1 + m2;
                        s[1][q] = m1 - m2 - m3;
                    }
                    for (a, sa) in s.iter().enumerate() {
                        let y = 2 * ty + a;
                        if y >= h {
                            continue;
                        }
                        let pair = [sa[0] + sa[1] + sa[2], sa[1] - sa[2] - sa[3]];
                        for (e, &val) in pair.iter().enumerate() {
                            let xx = 2 * tx + e;
                            if xx < wd {
                                dst[y * wd + xx] = val + b0;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One GEMM per group over the whole batch: `out[Cout/g, N*Ho*Wo] = W[Cout/g, K] x
/// im2col(x)[K, N*Ho*Wo]` (the groups' im2col kept side by side in `cols`); a depthwise
/// convolution directly.
impl Fused for Conv {
    fn forward(&self, io: FusedForward) {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let (buf, w, n) = (io.buf, io.w, io.n);
        let (g, kk) = (self.groups, self.size * self.size);
        let (cpg, opg) = (ci / g, co / g);
        let np = n * ho * wo;
        if self.depthwise(io.layer) {
            for oc in 0..co {
                let wk = &w[0][oc * kk..][..kk];
                for b in 0..n {
                    let dst = &mut buf.out[(oc * n + b) * ho * wo..][..ho * wo];
                    let src = &io.x[((oc / opg) * n + b) * hi * wi..][..hi * wi];
                    depthwise_forward(src, [hi, wi], wk, self.size, self.stride, self.pad, [ho, wo], dst, &mut buf.cols);
                }
            }
        } else if io.train.is_none() && self.winograd(io.layer) {
            buf.cols.clear(); // no im2col: a backward after it makes one (see there)
            winograd(io.x, &w[0], w.get(1).map(|b| &b[..]), [ci, n, hi, wi], co, &mut buf.out, &mut buf.wino);
            activate(self.activation, &mut buf.out);
            return;
        } else {
            let k = cpg * kk;
            let pointwise = self.pointwise();
            buf.cols.resize(if pointwise { 0 } else { g * k * np }, 0.0);
            // The bias first, the products added to it.
            if let Some(bias) = w.get(1) {
                for (row, &b) in buf.out.chunks_mut(np).zip(bias) {
                    row.fill(b);
                }
            }
            for gi in 0..g {
                let x = &io.x[gi * cpg * n * hi * wi..][..cpg * n * hi * wi];
                let cols = if pointwise {
                    x
                } else {
                    let cols = &mut buf.cols[gi * k * np..][..k * np];
                    im2col(x, [cpg, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], cols);
                    cols
                };
                let (out, wg) = (&mut buf.out[gi * opg * np..][..opg * np], (&w[0][gi * opg * k..], 1, k as isize));
                if w.len() > 1 { matmul_add(opg, np, k, out, wg, (cols, 1, np as isize)) } else { matmul(opg, np, k, out, wg, (cols, 1, np as isize)) }
            }
            activate(self.activation, &mut buf.out);
            return;
        }
        if let Some(bias) = w.get(1) {
            for (row, &b) in buf.out.chunks_mut(np).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
        activate(self.activation, &mut buf.out);
    }
    fn backward(&self, io: FusedBackward) {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let (buf, n) = (io.buf, io.n);
        let (g, kk) = (self.groups, self.size * self.size);
        let (cpg, opg) = (ci / g, co / g);
        let k = cpg * kk;
        let np = n * ho * wo;
        pre_activation_grads(buf, self.activation, io.rule);
        if io.need_dw {
            bias_grads(&buf.gz, np, io.dw);
        }
        if self.depthwise(io.layer) {
            if io.need_dw {
                io.dw[0].fill(0.0);
            }
            if io.need_dx {
                io.dx.fill(0.0);
            }
            let mut acc = vec![];
            for oc in 0..co {
                let ic = oc / opg;
                let wk = &io.w[0][oc * kk..][..kk];
                for b in 0..n {
                    let src = &io.xs[0][(ic * n + b) * hi * wi..][..hi * wi];
                    let gp = &buf.gz[(oc * n + b) * ho * wo..][..ho * wo];
                    let dwk = io.need_dw.then(|| &mut io.dw[0][oc * kk..][..kk]);
                    let dx = io.need_dx.then(|| &mut io.dx[(ic * n + b) * hi * wi..][..hi * wi]);
                    let scratch = [&mut buf.cols, &mut buf.dcols, &mut acc];
                    depthwise_backward(src, [hi, wi], wk, self.size, self.stride, self.pad, [ho, wo], gp, dwk, dx, scratch);
                }
            }
            return;
        }
        // Per group: dW = gz x cols^T; dx from dcols = W^T x gz by col2im (a 1x1 convolution's
        // cols are its input, and its dcols its input's gradient).
        let pointwise = self.pointwise();
        if !pointwise && io.need_dx {
            buf.dcols.resize(k * np, 0.0);
        }
        if !pointwise && io.need_dw && buf.cols.len() != g * k * np {
            // The forward ran by Winograd (inference): the weights' gradient needs the im2col.
            buf.cols.resize(g * k * np, 0.0);
            for gi in 0..g {
                let x = &io.xs[0][gi * cpg * n * hi * wi..][..cpg * n * hi * wi];
                im2col(x, [cpg, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], &mut buf.cols[gi * k * np..][..k * np]);
            }
        }
        for gi in 0..g {
            let gz = &buf.gz[gi * opg * np..][..opg * np];
            if io.need_dw {
                let cols = if pointwise { &io.xs[0][gi * cpg * np..][..cpg * np] } else { &buf.cols[gi * k * np..][..k * np] };
                matmul(opg, k, np, &mut io.dw[0][gi * opg * k..][..opg * k], (gz, 1, np as isize), (cols, np as isize, 1));
            }
            if io.need_dx {
                let dx = &mut io.dx[gi * cpg * n * hi * wi..][..cpg * n * hi * wi];
                let wg = (&io.w[0][gi * opg * k..], k as isize, 1);
                if pointwise {
                    matmul(k, np, opg, dx, wg, (gz, 1, np as isize));
                } else {
                    matmul(k, np, opg, &mut buf.dcols, wg, (gz, 1, np as isize));
                    dx.fill(0.0);
                    col2im(&mut buf.dcols, [cpg, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], dx);
                }
            }
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let r = affected(io.region, self.size, self.stride, self.pad, ho, wo);
        let (g, kk) = (self.groups, self.size * self.size);
        let (cpg, opg) = (ci / g, co / g);
        if self.depthwise(io.layer) {
            for oc in 0..co {
                let plane = &mut io.out[oc * ho * wo..][..ho * wo];
                for oy in r.y0..r.y1 {
                    plane[oy * wo + r.x0..oy * wo + r.x1].fill(0.0);
                }
                let src = &io.x[(oc / opg) * hi * wi..][..hi * wi];
                depthwise_plane(src, [hi, wi], &io.w[0][oc * kk..][..kk], self.size, self.stride, self.pad, wo, r, plane);
                let b = io.w.get(1).map_or(0.0, |b| b[oc]);
                for oy in r.y0..r.y1 {
                    let row = &mut plane[oy * wo + r.x0..oy * wo + r.x1];
                    row.iter_mut().for_each(|v| *v += b);
                    activate(self.activation, row);
                }
            }
            return r;
        }
        for gi in 0..g {
            conv_region(
                &io.x[gi * cpg * hi * wi..][..cpg * hi * wi],
                [cpg, hi, wi],
                &io.w[0][gi * opg * cpg * kk..][..opg * cpg * kk],
                io.w.get(1).map(|b| &b[gi * opg..(gi + 1) * opg]),
                opg,
                self.size,
                self.stride,
                self.pad,
                [ho, wo],
                r,
                self.activation,
                &mut io.out[gi * opg * ho * wo..][..opg * ho * wo],
                io.cols,
                io.tmp,
            );
        }
        r
    }
}
