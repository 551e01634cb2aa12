//! `scale` (`scale`, `offset`): `x * scale + offset`, each a number or one number per channel: an
//! input normalization inside the net (MobileNet takes 2x - 1 of [0, 1] pixels; torchvision's
//! models take (x - mean) / std per channel, i.e. scale 1/std, offset -mean/std), so that
//! gradients reach the image as the user sees it; an imported model's multiplication or addition
//! of a constant is one too.

use burn::tensor::Tensor;
use serde_json::Value;

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, host_tensor};
use crate::cpu_occlude::Rect;
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
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

impl Scale {
    /// Channel `c`'s scale and offset, as f32 (as Burn multiplies and adds them).
    fn at(&self, c: usize) -> (f32, f32) {
        let pick = |v: &[f64]| (if v.len() == 1 { v[0] } else { v[c] }) as f32;
        (pick(&self.scale), pick(&self.offset))
    }
}

/// `x * scale + offset` per channel; the input's gradient is the output's times the scale.
impl Fused for Scale {
    fn forward(&self, io: FusedForward) {
        let m = io.buf.out.len() / io.layer.in_shape[0];
        for (c, (o, x)) in io.buf.out.chunks_mut(m).zip(io.x.chunks(m)).enumerate() {
            let (s, b) = self.at(c);
            o.iter_mut().zip(x).for_each(|(o, x)| *o = x * s + b);
        }
    }
    fn backward(&self, io: FusedBackward) {
        if !io.need_dx {
            return;
        }
        let m = io.buf.grad.len() / io.layer.in_shape[0];
        for (c, (d, g)) in io.dx.chunks_mut(m).zip(io.buf.grad.chunks(m)).enumerate() {
            let (s, _) = self.at(c);
            d.iter_mut().zip(g).for_each(|(d, g)| *d = g * s);
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([c, h, w], r) = (io.layer.out_shape, io.region);
        for ch in 0..c {
            let (s, b) = self.at(ch);
            for y in r.y0..r.y1 {
                let row = (ch * h + y) * w + r.x0..(ch * h + y) * w + r.x1;
                io.out[row.clone()].iter_mut().zip(&io.x[row]).for_each(|(o, x)| *o = x * s + b);
            }
        }
        r
    }
}
