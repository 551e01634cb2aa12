//! `scale` (`scale`, `offset`): `x * scale + offset`, an input normalization inside the net
//! (MobileNet takes 2x - 1 of [0, 1] pixels), so that gradients reach the image as the user sees it.

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub scale: f64,
    pub offset: f64,
}

impl Parse for Scale {
    const TYPES: &'static [&'static str] = &["scale"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let scale = f.float("scale", 1.0, -1e6, 1e6, false)?;
        let offset = f.float("offset", 0.0, -1e6, 1e6, false)?;
        Ok((Scale { scale, offset }, inputs[0].shape))
    }
}

impl Kind for Scale {
    fn type_name(&self) -> &'static str {
        "scale"
    }
    fn describe(&self, _: &Layer) -> String {
        format!("x * {} + {}", self.scale, self.offset)
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        inputs[0].clone() * (self.scale as f32) + (self.offset as f32)
    }
}
