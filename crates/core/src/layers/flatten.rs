//! `flatten`: `[C, H, W]` -> `[C*H*W, 1, 1]`, in PyTorch's (C, H, W) order.

use burn::tensor::Tensor;

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, Window};
use crate::cpu_occlude::Rect;
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Flatten;

impl Parse for Flatten {
    const TYPES: &'static [&'static str] = &["flatten"];
    fn parse(_: &str, _: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        Ok((Flatten, [inputs[0].shape.iter().product(), 1, 1]))
    }
}

impl Kind for Flatten {
    fn window(&self) -> Window {
        Window::Whole
    }
    fn type_name(&self) -> &'static str {
        "flatten"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("flatten to {}", l.out_shape[0])
    }
    fn forward(&self, l: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let [d, h, w] = l.out_shape;
        inputs[0].clone().reshape([inputs[0].dims()[0], d, h, w])
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

/// On the fused path (`[C, N, H, W]` in, `[C*H*W, N, 1, 1]` out) a transpose of each image's
/// values; a copy when the input is `[C, 1, 1]` (after a global pool).
impl Fused for Flatten {
    fn forward(&self, io: FusedForward) {
        let [c, h, w] = io.layer.in_shape;
        let (n, p) = (io.n, h * w);
        if p == 1 {
            io.buf.out.copy_from_slice(io.x);
            return;
        }
        for ch in 0..c {
            for b in 0..n {
                for q in 0..p {
                    io.buf.out[(ch * p + q) * n + b] = io.x[(ch * n + b) * p + q];
                }
            }
        }
    }
    fn backward(&self, io: FusedBackward) {
        if !io.need_dx {
            return;
        }
        let [c, h, w] = io.layer.in_shape;
        let (n, p) = (io.n, h * w);
        if p == 1 {
            io.dx.copy_from_slice(&io.buf.grad);
            return;
        }
        for ch in 0..c {
            for b in 0..n {
                for q in 0..p {
                    io.dx[(ch * n + b) * p + q] = io.buf.grad[(ch * p + q) * n + b];
                }
            }
        }
    }
    /// One image: the same values in the same order, all of them.
    fn occlude(&self, io: OccludeIo) -> Rect {
        io.out.copy_from_slice(io.x);
        Rect { y0: 0, y1: 1, x0: 0, x1: 1 }
    }
}
