//! `conv`: a 2-D convolution with bias and an optional fused activation; `groups` (depthwise when
//! it equals the channels) and TensorFlow's `"padding": "same"` (the odd zero row and column at
//! the bottom and right) and `dilation` (the kernel's taps `dilation` apart; ONNX's and PyTorch's).
//! Weight (out, in / groups, k, k), as PyTorch's Conv2d.
//!
//! On the fused CPU path a convolution is one GEMM per group over the batch's im2col (groups of
//! one channel, depthwise convolutions, are a direct kernel instead: each output plane sums k²
//! shifted, scaled rows of one input plane, which vectorizes along the row); TensorFlow's odd
//! bottom/right padding needs nothing there (positions past the input read zeros). Dilated
//! convolutions go through Burn.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

use super::act::{Activation, apply};
use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, param, Window};
use crate::cpu_occlude::{Rect, affected, conv_region};
use super::act::{activate, activation_back};
use crate::cpu_train::{col2im, im2col, matmul, weight_grads};
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
/// (`h` x `w`) with the `k` x `k` kernel `wk`, at the outputs inside `r`.
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

/// The adjoints of [`depthwise_plane`] over a whole output plane: `dwk` += Σ g·x per tap, and
/// `dx` (when given) += w·g.
#[allow(clippy::too_many_arguments)]
fn depthwise_plane_back(
    src: &[f32],
    [h, w]: [usize; 2],
    wk: &[f32],
    k: usize,
    s: usize,
    pad: usize,
    [ho, wo]: [usize; 2],
    g: &[f32],
    dwk: &mut [f32],
    mut dx: Option<&mut [f32]>,
) {
    for oy in 0..ho {
        let grow = &g[oy * wo..][..wo];
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - pad as isize;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            let iy = iy as usize;
            let srow = &src[iy * w..][..w];
            for kx in 0..k {
                let (lo, hi) = inside(kx, s, pad, w, 0, wo);
                if hi == lo {
                    continue;
                }
                let wv = wk[ky * k + kx];
                if s == 1 {
                    let x0 = lo + kx - pad;
                    dwk[ky * k + kx] += grow[lo..hi].iter().zip(&srow[x0..x0 + hi - lo]).map(|(g, v)| g * v).sum::<f32>();
                    if let Some(dx) = dx.as_deref_mut() {
                        dx[iy * w + x0..iy * w + x0 + hi - lo].iter_mut().zip(&grow[lo..hi]).for_each(|(d, g)| *d += wv * g);
                    }
                } else {
                    let mut acc = 0f32;
                    for ox in lo..hi {
                        let ix = ox * s + kx - pad;
                        acc += grow[ox] * srow[ix];
                        if let Some(dx) = dx.as_deref_mut() {
                            dx[iy * w + ix] += wv * grow[ox];
                        }
                    }
                    dwk[ky * k + kx] += acc;
                }
            }
        }
    }
}

impl Conv {
    /// Whether each group has one input channel (a depthwise convolution, or one with a channel
    /// multiplier): the direct kernel.
    fn depthwise(&self, l: &Layer) -> bool {
        self.groups > 1 && l.in_shape[0] == self.groups
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
            let whole = Rect { y0: 0, y1: ho, x0: 0, x1: wo };
            for oc in 0..co {
                let wk = &w[0][oc * kk..][..kk];
                for b in 0..n {
                    let dst = &mut buf.out[(oc * n + b) * ho * wo..][..ho * wo];
                    dst.fill(0.0);
                    let src = &io.x[((oc / opg) * n + b) * hi * wi..][..hi * wi];
                    depthwise_plane(src, [hi, wi], wk, self.size, self.stride, self.pad, wo, whole, dst);
                }
            }
        } else {
            let k = cpg * kk;
            buf.cols.resize(g * k * np, 0.0);
            for gi in 0..g {
                let cols = &mut buf.cols[gi * k * np..][..k * np];
                im2col(&io.x[gi * cpg * n * hi * wi..][..cpg * n * hi * wi], [cpg, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], cols);
                matmul(opg, np, k, &mut buf.out[gi * opg * np..][..opg * np], (&w[0][gi * opg * k..], 1, k as isize), (cols, 1, np as isize));
            }
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
        if g == 1 {
            weight_grads(buf, self.activation, io.rule, io.dw, co, k, np);
            if io.need_dx {
                // dcols[K, NP] = W^T[K, Cout] x gz[Cout, NP], then col2im.
                buf.dcols.resize(k * np, 0.0);
                matmul(k, np, co, &mut buf.dcols, (&io.w[0], k as isize, 1), (&buf.gz, 1, np as isize));
                io.dx.iter_mut().for_each(|v| *v = 0.0);
                col2im(&mut buf.dcols, [ci, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], io.dx);
            }
            return;
        }
        buf.gz.clear();
        buf.gz.extend_from_slice(&buf.grad);
        activation_back(self.activation, io.rule, &buf.out, &mut buf.gz);
        if let Some(db) = io.dw.get_mut(1) {
            for (d, row) in db.iter_mut().zip(buf.gz.chunks(np)) {
                *d = row.iter().sum();
            }
        }
        if io.need_dx {
            io.dx.iter_mut().for_each(|v| *v = 0.0);
        }
        if self.depthwise(io.layer) {
            io.dw[0].fill(0.0);
            for oc in 0..co {
                let ic = oc / opg;
                let (wk, dwk) = (&io.w[0][oc * kk..][..kk], &mut io.dw[0][oc * kk..][..kk]);
                for b in 0..n {
                    let src = &io.xs[0][(ic * n + b) * hi * wi..][..hi * wi];
                    let gp = &buf.gz[(oc * n + b) * ho * wo..][..ho * wo];
                    let dx = io.need_dx.then(|| &mut io.dx[(ic * n + b) * hi * wi..][..hi * wi]);
                    depthwise_plane_back(src, [hi, wi], wk, self.size, self.stride, self.pad, [ho, wo], gp, dwk, dx);
                }
            }
            return;
        }
        buf.dcols.resize(k * np, 0.0);
        for gi in 0..g {
            let (cols, gz) = (&buf.cols[gi * k * np..][..k * np], &buf.gz[gi * opg * np..][..opg * np]);
            matmul(opg, k, np, &mut io.dw[0][gi * opg * k..][..opg * k], (gz, 1, np as isize), (cols, np as isize, 1));
            if io.need_dx {
                matmul(k, np, opg, &mut buf.dcols, (&io.w[0][gi * opg * k..], k as isize, 1), (gz, 1, np as isize));
                let dx = &mut io.dx[gi * cpg * n * hi * wi..][..cpg * n * hi * wi];
                col2im(&mut buf.dcols, [cpg, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], dx);
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
