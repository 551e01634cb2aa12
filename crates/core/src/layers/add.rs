//! `add`: the sum of two or more layers of one shape (a residual connection).

use burn::tensor::Tensor;

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source};
use crate::cpu_occlude::Rect;
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
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

/// The sum in the inputs' order, as Burn's fold adds them; each input's gradient is the output's.
impl Fused for Add {
    fn forward(&self, io: FusedForward) {
        let out = &mut io.buf.out;
        out.copy_from_slice(io.x);
        for x in &io.xs[1..] {
            out.iter_mut().zip(x.iter()).for_each(|(o, v)| *o += v);
        }
    }
    fn backward(&self, io: FusedBackward) {
        let g = &io.buf.grad;
        io.dx.copy_from_slice(g);
        for d in io.dx_rest {
            d.copy_from_slice(g);
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([c, h, w], r) = (io.layer.out_shape, io.region);
        for ch in 0..c {
            for y in r.y0..r.y1 {
                let row = (ch * h + y) * w + r.x0..(ch * h + y) * w + r.x1;
                let out = &mut io.out[row.clone()];
                out.copy_from_slice(&io.x[row.clone()]);
                for x in &io.xs[1..] {
                    out.iter_mut().zip(&x[row.clone()]).for_each(|(o, v)| *o += v);
                }
            }
        }
        r
    }
}
