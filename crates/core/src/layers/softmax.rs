//! `softmax`: probabilities over the flattened input (the classes, after the score layer).

use burn::tensor::{Tensor, activation};

use super::{Kind, Mode, Parse, Source};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError, describe_value};

#[derive(Debug, Clone, PartialEq)]
pub struct Softmax;

impl Parse for Softmax {
    const TYPES: &'static [&'static str] = &["softmax"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let flat = inputs[0].shape.iter().product::<usize>();
        // ConvNetJS's softmax carries `num_classes`; here it must match its input.
        if let Some((n, v)) = f.get(&["num_classes"])
            && v.as_u64() != Some(flat as u64) {
                return Err(f.err(
                    n,
                    format!(
                        "expected {flat} (the size of the previous layer's output), got {}; add an fc layer with that many units before the softmax",
                        describe_value(v)
                    ),
                ));
            }
        Ok((Softmax, [flat, 1, 1]))
    }
}

impl Kind for Softmax {
    fn type_name(&self) -> &'static str {
        "softmax"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("softmax over {}", l.out_shape[0])
    }
    fn forward(&self, l: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let batch = inputs[0].dims()[0];
        let [d, h, w] = l.out_shape;
        let flat: Tensor<2> = inputs[0].clone().flatten(1, 3);
        activation::softmax(flat, 1).reshape([batch, d, h, w])
    }
}
