//! `input`: the image, `[depth, height, width]` (the first layer, and only it).

use burn::tensor::Tensor;

use super::{FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source};
use crate::cpu_occlude::Rect;
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Input;

impl Parse for Input {
    const TYPES: &'static [&'static str] = &["input"];
    fn parse(_: &str, f: &mut Fields, _: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let w = f.uint(&["width", "out_sx"], None, 1)?;
        let h = f.uint(&["height", "out_sy"], None, 1)?;
        let d = f.uint(&["depth", "out_depth"], None, 1)?;
        Ok((Input, [d, h, w]))
    }
}

impl Kind for Input {
    fn type_name(&self) -> &'static str {
        "input"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("input {}x{}x{}", l.out_shape[2], l.out_shape[1], l.out_shape[0])
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        inputs[0].clone()
    }
    fn fused(&self, _: &Layer) -> Option<&dyn super::Fused> {
        Some(self)
    }
}

impl super::Fused for Input {
    fn forward(&self, io: FusedForward) {
        io.buf.out.copy_from_slice(io.x);
    }
    fn backward(&self, io: FusedBackward) {
        io.dx.copy_from_slice(&io.buf.grad);
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let [c, h, w] = io.layer.out_shape;
        crate::cpu_occlude::copy_region(io.x, io.out, c, h, w, io.region);
        io.region
    }
}
