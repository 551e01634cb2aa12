//! `concat`: two or more layers of one height and width stacked along the channels (Inception
//! blocks, ONNX's Concat on axis 1).

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Concat;

impl Parse for Concat {
    const TYPES: &'static [&'static str] = &["concat"];
    const MULTI_INPUT: bool = true;
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let first = &inputs[0];
        if let Some(other) = inputs.iter().find(|s| s.shape[1..] != first.shape[1..]) {
            return Err(f.err(
                "inputs",
                format!(
                    "\"concat\" stacks channels of inputs of one height and width; {} is {:?}, {} is {:?}",
                    first.name, first.shape, other.name, other.shape
                ),
            ));
        }
        let c = inputs.iter().map(|s| s.shape[0]).sum();
        Ok((Concat, [c, first.shape[1], first.shape[2]]))
    }
}

impl Kind for Concat {
    fn type_name(&self) -> &'static str {
        "concat"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("concat of {} inputs", l.inputs.len())
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        Tensor::cat(inputs.to_vec(), 1)
    }
}
