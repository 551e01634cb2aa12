//! `pad` (`top`, `left`, `bottom`, `right`, `value`): a border of a constant around every channel
//! (ONNX's Pad in constant mode, as exporters write an asymmetric padding before a convolution).

use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

use super::{Kind, Mode, Parse, Source};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    pub top: usize,
    pub left: usize,
    pub bottom: usize,
    pub right: usize,
    pub value: f64,
}

impl Parse for Pad {
    const TYPES: &'static [&'static str] = &["pad"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let [c, h, w] = inputs[0].shape;
        let (top, left) = (f.uint(&["top"], Some(0), 0)?, f.uint(&["left"], Some(0), 0)?);
        let (bottom, right) = (f.uint(&["bottom"], Some(0), 0)?, f.uint(&["right"], Some(0), 0)?);
        let value = f.float("value", 0.0, -1e6, 1e6, false)?;
        // Each at most 2^24 (uint's limit): these sums do not overflow.
        Ok((Pad { top, left, bottom, right, value }, [c, h + top + bottom, w + left + right]))
    }
}

impl Kind for Pad {
    fn type_name(&self) -> &'static str {
        "pad"
    }
    fn describe(&self, _: &Layer) -> String {
        let Pad { top, left, bottom, right, value } = self;
        format!("pad top {top}, left {left}, bottom {bottom}, right {right} with {value}")
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        inputs[0].clone().pad((self.left, self.right, self.top, self.bottom), PadMode::Constant(self.value as f32))
    }
}
