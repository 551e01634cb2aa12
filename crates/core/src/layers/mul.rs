//! `mul`: the elementwise product of two or more layers of one shape; an input of shape
//! `[C, 1, 1]` scales each channel (squeeze-and-excitation, ONNX's broadcasting Mul).

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Mul;

impl Parse for Mul {
    const TYPES: &'static [&'static str] = &["mul"];
    const MULTI_INPUT: bool = true;
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let first = &inputs[0];
        let fits = |s: Shape3| s == first.shape || s == [first.shape[0], 1, 1];
        if let Some(other) = inputs.iter().find(|s| !fits(s.shape)) {
            return Err(f.err(
                "inputs",
                format!(
                    "\"mul\" needs inputs of one shape, or [C, 1, 1] to scale channels; {} is {:?}, {} is {:?}",
                    first.name, first.shape, other.name, other.shape
                ),
            ));
        }
        Ok((Mul, first.shape))
    }
}

impl Kind for Mul {
    fn type_name(&self) -> &'static str {
        "mul"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("product of {} inputs", l.inputs.len())
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let dims = inputs[0].dims();
        inputs.iter().skip(1).fold(inputs[0].clone(), |a, b| a * b.clone().expand(dims))
    }
}
