//! `scale` (`scale`, `offset`): `x * scale + offset`, each a number or one number per channel: an
//! input normalization inside the net (MobileNet takes 2x - 1 of [0, 1] pixels; torchvision's
//! models take (x - mean) / std per channel, i.e. scale 1/std, offset -mean/std), so that
//! gradients reach the image as the user sees it; an imported model's multiplication or addition
//! of a constant is one too.

use burn::tensor::Tensor;
use serde_json::Value;

use super::{Kind, Mode, Parse, Source, host_tensor};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError, describe_value};

#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// One value for every channel, or one per channel.
    pub scale: Vec<f64>,
    pub offset: Vec<f64>,
}

/// A number, or one number per channel, each in [-1e6, 1e6].
fn values(f: &mut Fields, name: &'static str, default: f64, channels: usize) -> Result<Vec<f64>, SpecError> {
    let Some((n, v)) = f.get(&[name]) else { return Ok(vec![default]) };
    let ok = |x: &Value| x.as_f64().filter(|x| x.abs() <= 1e6);
    let out = match v {
        Value::Array(a) if a.len() == channels => a.iter().map(ok).collect::<Option<Vec<f64>>>(),
        Value::Array(a) => return Err(f.err(n, format!("expected a number or {channels} (one per channel), got {} numbers", a.len()))),
        x => ok(x).map(|x| vec![x]),
    };
    out.ok_or_else(|| f.err(n, format!("expected numbers in [-1e6, 1e6], got {}", describe_value(v))))
}

impl Parse for Scale {
    const TYPES: &'static [&'static str] = &["scale"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let c = inputs[0].shape[0];
        let scale = values(f, "scale", 1.0, c)?;
        let offset = values(f, "offset", 0.0, c)?;
        Ok((Scale { scale, offset }, inputs[0].shape))
    }
}

impl Kind for Scale {
    fn type_name(&self) -> &'static str {
        "scale"
    }
    fn describe(&self, _: &Layer) -> String {
        let list = |v: &[f64]| if v.len() == 1 { format!("{}", v[0]) } else { format!("{v:?} per channel") };
        format!("x * {} + {}", list(&self.scale), list(&self.offset))
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let (x, like) = (inputs[0].clone(), &inputs[0]);
        let per_channel = |v: &[f64]| host_tensor(v.iter().map(|&t| t as f32).collect(), [1, v.len(), 1, 1], like);
        let x = match self.scale.as_slice() {
            [s] => x * (*s as f32),
            s => x * per_channel(s),
        };
        match self.offset.as_slice() {
            [o] => x + (*o as f32),
            o => x + per_channel(o),
        }
    }
}
