//! `flatten`: `[C, H, W]` -> `[C*H*W, 1, 1]`, in PyTorch's (C, H, W) order.

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source, Window};
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
}
