//! `conv`: a 2-D convolution with bias and an optional fused activation; `groups` (depthwise when
//! it equals the channels) and TensorFlow's `"padding": "same"` (the odd zero row and column at
//! the bottom and right) and `dilation` (the kernel's taps `dilation` apart; ONNX's and PyTorch's).
//! Weight (out, in / groups, k, k), as PyTorch's Conv2d.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};

use super::act::{Activation, apply};
use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, param, Window};
use crate::cpu_occlude::{Rect, affected, conv_region};
use super::act::activate;
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
        (self.groups == 1 && self.pad_end == 0 && self.dilation == 1).then_some(self as &dyn Fused)
    }
}

/// One GEMM over the whole batch: `out[Cout, N*Ho*Wo] = W[Cout, K] x im2col(x)[K, N*Ho*Wo]`.
impl Fused for Conv {
    fn forward(&self, io: FusedForward) {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let (buf, w, n) = (io.buf, io.w, io.n);
        let k = ci * self.size * self.size;
        let np = n * ho * wo;
        buf.cols.resize(k * np, 0.0);
        im2col(io.x, [ci, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], &mut buf.cols);
        matmul(co, np, k, &mut buf.out, (&w[0], 1, k as isize), (&buf.cols, 1, np as isize));
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
        let k = ci * self.size * self.size;
        let np = n * ho * wo;
        weight_grads(buf, self.activation, io.rule, io.dw, co, k, np);
        if io.need_dx {
            // dcols[K, NP] = W^T[K, Cout] x gz[Cout, NP], then col2im.
            buf.dcols.resize(k * np, 0.0);
            matmul(k, np, co, &mut buf.dcols, (&io.w[0], k as isize, 1), (&buf.gz, 1, np as isize));
            io.dx.iter_mut().for_each(|v| *v = 0.0);
            col2im(&mut buf.dcols, [ci, n, hi, wi], self.size, self.stride, self.pad, [ho, wo], io.dx);
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let r = affected(io.region, self.size, self.stride, self.pad, ho, wo);
        conv_region(
            io.x,
            [ci, hi, wi],
            &io.w[0],
            io.w.get(1).map(Vec::as_slice),
            co,
            self.size,
            self.stride,
            self.pad,
            [ho, wo],
            r,
            self.activation,
            io.out,
            io.cols,
            io.tmp,
        );
        r
    }
}
