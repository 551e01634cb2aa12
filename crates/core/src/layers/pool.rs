//! `pool`: max or average pooling (`size`, `stride` default `size`, `pad`); the average leaves
//! padding out of the count (`count_pad: false`, PyTorch's `count_include_pad=False`) unless
//! `count_pad` is true (PyTorch's default for AvgPool2d, ONNX's `count_include_pad=1`). `ceil`:
//! the output size rounds up (PyTorch's and ONNX's `ceil_mode`; SqueezeNet's max pools), the last
//! window starting inside the input.

use burn::tensor::Tensor;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, Window};
use crate::cpu_occlude::{Rect, affected, pool_region};
use crate::cpu_train::{pool_backward, pool_forward};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError, describe_value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Max,
    Avg,
}

impl PoolMode {
    /// Reads a `mode` field (`max`, `avg` or `average`).
    pub fn read(f: &mut Fields, default: PoolMode) -> Result<PoolMode, SpecError> {
        match f.get(&["mode"]) {
            None => Ok(default),
            Some((n, v)) => match v.as_str() {
                Some("max") => Ok(PoolMode::Max),
                Some("avg") | Some("average") => Ok(PoolMode::Avg),
                _ => {
                    let (a, b) = if default == PoolMode::Max { ("max", "avg") } else { ("avg", "max") };
                    Err(f.err(n, format!("expected \"{a}\" or \"{b}\", got {}", describe_value(v))))
                }
            },
        }
    }

    pub fn as_str(self) -> &'static str {
        if self == PoolMode::Max { "max" } else { "avg" }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
    pub mode: PoolMode,
    /// Rounds the output size up.
    pub ceil: bool,
    /// An average counts the padding's zeros.
    pub count_pad: bool,
}

impl Parse for Pool {
    const TYPES: &'static [&'static str] = &["pool"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let in_shape = inputs[0].shape;
        let size = f.uint(&["size", "sx"], None, 1)?;
        let stride = f.uint(&["stride"], Some(size), 1)?;
        let pad = f.uint(&["pad"], Some(0), 0)?;
        let mode = PoolMode::read(f, PoolMode::Max)?;
        let ceil = f.boolean("ceil", false)?;
        let count_pad = f.boolean("count_pad", false)?;
        if pad * 2 > size {
            return Err(f.err("pad", format!("expected at most half the pool size ({}), got {pad}", size / 2)));
        }
        let (h, w) = (in_shape[1] + 2 * pad, in_shape[2] + 2 * pad);
        if size > h || size > w {
            return Err(f.err(
                "size",
                format!("the {size}x{size} window does not fit the {}x{} input; expected at most {}", in_shape[1], in_shape[2], h.min(w)),
            ));
        }
        // PyTorch's rule: rounding up may add a window, but not one that starts in the padding.
        let len = |n: usize, padded: usize| {
            let o = if ceil { (padded - size).div_ceil(stride) + 1 } else { (padded - size) / stride + 1 };
            if ceil && (o - 1) * stride >= n + pad { o - 1 } else { o }
        };
        let out = [in_shape[0], len(in_shape[1], h), len(in_shape[2], w)];
        Ok((Pool { size, stride, pad, mode, ceil, count_pad }, out))
    }
}

impl Kind for Pool {
    fn window(&self) -> Window {
        Window::Slide { size: self.size, stride: self.stride, pad: self.pad }
    }
    fn type_name(&self) -> &'static str {
        "pool"
    }
    fn describe(&self, _: &Layer) -> String {
        let Pool { size, stride, pad, mode, ceil, count_pad } = self;
        format!(
            "{} pool {size}x{size}, stride {stride}{}{}{}",
            mode.as_str(),
            if *pad > 0 { format!(", pad {pad}") } else { String::new() },
            if *ceil { ", ceil" } else { "" },
            if *count_pad && *pad > 0 && *mode == PoolMode::Avg { " (padding counted)" } else { "" }
        )
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let (k, s, p) = ([self.size, self.size], [self.stride, self.stride], [self.pad, self.pad]);
        let x = inputs[0].clone();
        match self.mode {
            PoolMode::Max => max_pool2d(x, MaxPoolOptions::new(k).with_stride(s).with_padding(p).with_ceil_mode(self.ceil)),
            PoolMode::Avg => avg_pool2d(
                x,
                AvgPoolOptions::new(k).with_stride(s).with_padding(p).with_count_include_pad(self.count_pad).with_ceil_mode(self.ceil),
            ),
        }
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        // The fused kernels clip every window to the map: ceil mode's last window, which hangs over
        // its edge, averages over what it covers (PyTorch's rule when no padding is counted).
        (!(self.count_pad && self.mode == PoolMode::Avg && self.pad > 0)).then_some(self as &dyn Fused)
    }
}

impl Fused for Pool {
    fn forward(&self, io: FusedForward) {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let (buf, n) = (io.buf, io.n);
        buf.arg.resize(if self.mode == PoolMode::Max { co * n * ho * wo } else { 0 }, 0);
        pool_forward(io.x, [ci * n, hi, wi], self.size, self.stride, self.pad, [ho, wo], self.mode, &mut buf.out, &mut buf.arg);
    }
    fn backward(&self, io: FusedBackward) {
        let ([ci, hi, wi], [_, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        if io.need_dx {
            io.dx.iter_mut().for_each(|v| *v = 0.0);
            let n = io.n;
            pool_backward(&io.buf.grad, [ci * n, hi, wi], self.size, self.stride, self.pad, [ho, wo], self.mode, &io.buf.arg, io.dx);
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([ci, hi, wi], [_, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let r = affected(io.region, self.size, self.stride, self.pad, ho, wo);
        pool_region(io.x, [ci, hi, wi], self.size, self.stride, self.pad, self.mode, [ho, wo], r, io.out);
        r
    }
}
