//! `reshape` (`shape`: [depth, height, width]): the same values in another shape, row-major as
//! PyTorch's reshape.

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source, Window};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError, describe_value};

#[derive(Debug, Clone, PartialEq)]
pub struct Reshape;

impl Parse for Reshape {
    const TYPES: &'static [&'static str] = &["reshape"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let in_shape = inputs[0].shape;
        let flat: usize = in_shape.iter().product();
        let Some((n, v)) = f.get(&["shape"]) else { return Err(f.err("shape", "missing; expected [depth, height, width]")) };
        let dims = v.as_array().and_then(|a| {
            a.iter().map(|x| x.as_u64().filter(|&d| (1..=1 << 24).contains(&d)).map(|d| d as usize)).collect::<Option<Vec<usize>>>()
        });
        match dims.as_deref() {
            Some(&[d, h, w]) if d * h * w == flat => Ok((Reshape, [d, h, w])),
            Some(&[d, h, w]) => Err(f.err(n, format!("[{d}, {h}, {w}] holds {} values; the input {in_shape:?} has {flat}", d * h * w))),
            _ => Err(f.err(n, format!("expected [depth, height, width] of positive integers, got {}", describe_value(v)))),
        }
    }
}

impl Kind for Reshape {
    fn window(&self) -> Window {
        Window::Whole
    }
    fn type_name(&self) -> &'static str {
        "reshape"
    }
    fn describe(&self, l: &Layer) -> String {
        format!("reshape to {}x{}x{}", l.out_shape[0], l.out_shape[1], l.out_shape[2])
    }
    fn forward(&self, l: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let [d, h, w] = l.out_shape;
        inputs[0].clone().reshape([inputs[0].dims()[0], d, h, w])
    }
}
