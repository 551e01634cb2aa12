//! `add`: the sum of two or more layers of one shape (a residual connection).

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Add;

impl Parse for Add {
    const TYPES: &'static [&'static str] = &["add"];
    const MULTI_INPUT: bool = true;
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let first = &inputs[0];
        if let Some(other) = inputs.iter().find(|s| s.shape != first.shape) {
            return Err(f.err(
                "inputs",
                format!("\"add\" needs inputs of one shape; {} is {:?}, {} is {:?}", first.name, first.shape, other.name, other.shape),
            ));
        }
        Ok((Add, first.shape))
    }
}

impl Kind for Add {
    fn type_name(&self) -> &'static str {
        "add"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("add of {} inputs", l.inputs.len())
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        inputs.iter().skip(1).fold(inputs[0].clone(), |a, b| a + b.clone())
    }
}
