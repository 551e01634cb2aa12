//! `concat`: two or more layers of one height and width stacked along the channels (Inception
//! blocks, ONNX's Concat on axis 1).

use burn::tensor::Tensor;

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source};
use crate::cpu_occlude::{Rect, copy_region};
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
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

/// The fused path keeps activations channel-major (`[C, N, H, W]`), so stacking channels is
/// laying the inputs one after another, and each input's gradient is its run of the output's.
impl Fused for Concat {
    fn forward(&self, io: FusedForward) {
        let mut at = 0;
        for x in io.xs {
            io.buf.out[at..at + x.len()].copy_from_slice(x);
            at += x.len();
        }
    }
    fn backward(&self, io: FusedBackward) {
        let g = &io.buf.grad;
        let mut at = io.dx.len();
        io.dx.copy_from_slice(&g[..at]);
        for d in io.dx_rest {
            d.copy_from_slice(&g[at..at + d.len()]);
            at += d.len();
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let [_, h, w] = io.layer.out_shape;
        let mut at = 0;
        for x in io.xs {
            copy_region(x, &mut io.out[at..at + x.len()], x.len() / (h * w), h, w, io.region);
            at += x.len();
        }
        io.region
    }
}
