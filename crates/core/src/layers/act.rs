//! Activations: `relu`, `relu6`, `leaky_relu` (`alpha`), `clip` (`min`, `max`), `sigmoid`, `tanh`,
//! `hard_sigmoid` (`alpha`, `beta`: ONNX's and Keras's; PyTorch's Hardsigmoid is alpha 1/6, beta
//! 1/2) and `hard_swish` (`x * hard_sigmoid(x)` with PyTorch's alpha and beta) — as layers of their own, or fused into a conv or fc layer (`"activation": "relu"`). The
//! ReLU-like ones (relu, relu6, clip) are gates: deconvnet and guided backpropagation replace
//! their backward rule (`grad::ReluRule`).

use burn::tensor::{Tensor, activation};

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source};
use crate::cpu_occlude::{Rect, copy_region};
use crate::grad::ReluRule;
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    /// min(max(x, 0), 6), as MobileNet uses.
    Relu6,
    Sigmoid,
    Tanh,
    /// `x` where positive, `alpha * x` below (PyTorch's LeakyReLU).
    LeakyRelu { alpha: f64 },
    /// min(max(x, min), max): ONNX's Clip (what exporters write for ReLU6 and hard limits).
    Clip { min: f64, max: f64 },
    /// max(0, min(1, alpha * x + beta)).
    HardSigmoid { alpha: f64, beta: f64 },
    /// x * max(0, min(1, x / 6 + 1 / 2)) (MobileNetV3's; not on the fused CPU path, whose backward
    /// pass has only the output, from which this one's input is not known).
    HardSwish,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Clip { .. } => "clip",
            Activation::HardSigmoid { .. } => "hard_sigmoid",
            Activation::HardSwish => "hard_swish",
        }
    }

    /// A ReLU-like gate (relu, relu6, clip): deconvnet and guided backpropagation replace its
    /// backward pass (see [`crate::grad::ReluRule`]). `Some((lo, hi))`: the unit is active where
    /// `lo < x < hi`.
    pub fn gate(self) -> Option<(f64, f64)> {
        match self {
            Activation::Relu => Some((0.0, f64::INFINITY)),
            Activation::Relu6 => Some((0.0, 6.0)),
            Activation::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }
}

/// `a` applied to `x` on Burn (the identity for None).
pub fn apply<const D: usize>(x: Tensor<D>, a: Option<Activation>) -> Tensor<D> {
    match a {
        None => x,
        Some(Activation::Relu) => activation::relu(x),
        Some(Activation::Relu6) => x.clamp(0.0, 6.0),
        Some(Activation::Sigmoid) => activation::sigmoid(x),
        Some(Activation::Tanh) => activation::tanh(x),
        Some(Activation::LeakyRelu { alpha }) => activation::leaky_relu(x, alpha),
        Some(Activation::Clip { min, max }) => x.clamp(min as f32, max as f32),
        Some(Activation::HardSigmoid { alpha, beta }) => (x * alpha as f32 + beta as f32).clamp(0.0, 1.0),
        Some(Activation::HardSwish) => x.clone() * (x / 6.0 + 0.5).clamp(0.0, 1.0),
    }
}

impl Parse for Activation {
    const TYPES: &'static [&'static str] = &["relu", "relu6", "leaky_relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "hard_swish"];
    fn parse(ty: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let a = match ty {
            "relu" => Activation::Relu,
            "relu6" => Activation::Relu6,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "leaky_relu" => Activation::LeakyRelu { alpha: f.float("alpha", 0.01, 0.0, 1.0, true)? },
            "hard_sigmoid" => {
                Activation::HardSigmoid { alpha: f.float("alpha", 0.2, 1e-6, 1e6, false)?, beta: f.float("beta", 0.5, -1e6, 1e6, false)? }
            }
            "hard_swish" => Activation::HardSwish,
            _ => {
                let min = f.float("min", 0.0, -1e6, 1e6, false)?;
                let max = f.float("max", 6.0, -1e6, 1e6, false)?;
                if min >= max {
                    return Err(f.err("max", format!("expected more than min ({min}), got {max}")));
                }
                Activation::Clip { min, max }
            }
        };
        Ok((a, inputs[0].shape))
    }
}

impl Kind for Activation {
    fn type_name(&self) -> &'static str {
        self.as_str()
    }
    fn describe(&self, _: &Layer) -> String {
        match self {
            Activation::LeakyRelu { alpha } => format!("leaky relu, slope {alpha}"),
            Activation::Clip { min, max } => format!("clip to [{min}, {max}]"),
            Activation::HardSigmoid { alpha, beta } => format!("hard sigmoid, {alpha} x + {beta} clipped to [0, 1]"),
            Activation::HardSwish => "hard swish".into(),
            a => a.as_str().to_string(),
        }
    }
    fn activation(&self) -> Option<Activation> {
        Some(*self)
    }
    fn forward(&self, _: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], act: bool, _: &mut Mode) -> Tensor<4> {
        apply(inputs[0].clone(), if act { Some(*self) } else { None })
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        (*self != Activation::HardSwish).then_some(self as &dyn Fused)
    }
}

impl Fused for Activation {
    fn forward(&self, io: FusedForward) {
        // ReLU and ReLU6 (MobileNet has 35 such layers) in one pass; the others copy, then apply.
        match self {
            Activation::Relu => io.buf.out.iter_mut().zip(io.x).for_each(|(o, &x)| *o = if x > 0.0 { x } else { 0.0 }),
            Activation::Relu6 => {
                io.buf.out.iter_mut().zip(io.x).for_each(|(o, &x)| *o = if x > 0.0 { if x < 6.0 { x } else { 6.0 } } else { 0.0 })
            }
            _ => {
                io.buf.out.copy_from_slice(io.x);
                activate(Some(*self), &mut io.buf.out);
            }
        }
    }
    fn backward(&self, io: FusedBackward) {
        let (y, g) = (&io.buf.out, &io.buf.grad);
        match (self, io.rule) {
            (Activation::Relu, ReluRule::Gradient) => io.dx.iter_mut().zip(g).zip(y).for_each(|((d, &g), &y)| *d = if y > 0.0 { g } else { 0.0 }),
            (Activation::Relu6, ReluRule::Gradient) => {
                io.dx.iter_mut().zip(g).zip(y).for_each(|((d, &g), &y)| *d = if y > 0.0 && y < 6.0 { g } else { 0.0 })
            }
            _ => {
                io.dx.copy_from_slice(g);
                activation_back(Some(*self), io.rule, y, io.dx);
            }
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let [c, h, w] = io.layer.out_shape;
        let r = io.region;
        copy_region(io.x, io.out, c, h, w, r);
        for ch in 0..c {
            for y in r.y0..r.y1 {
                let o = (ch * h + y) * w;
                activate(Some(*self), &mut io.out[o + r.x0..o + r.x1]);
            }
        }
        r
    }
}

/// `a` applied in place on the host (the fused CPU path).
#[inline(never)]
pub(crate) fn activate(a: Option<Activation>, v: &mut [f32]) {
    match a {
        None => {}
        // A compare and select (f32::max is a libm call in wasm), which vectorizes.
        Some(Activation::Relu) => v.iter_mut().for_each(|x| *x = if *x > 0.0 { *x } else { 0.0 }),
        Some(Activation::Relu6) => v.iter_mut().for_each(|x| *x = if *x > 0.0 { if *x < 6.0 { *x } else { 6.0 } } else { 0.0 }),
        Some(Activation::Tanh) => v.iter_mut().for_each(|x| *x = x.tanh()),
        Some(Activation::Sigmoid) => v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
        Some(Activation::LeakyRelu { alpha }) => {
            let alpha = alpha as f32;
            v.iter_mut().for_each(|x| *x = if *x > 0.0 { *x } else { alpha * *x })
        }
        Some(Activation::Clip { min, max }) => {
            let (lo, hi) = (min as f32, max as f32);
            v.iter_mut().for_each(|x| *x = if *x > lo { if *x < hi { *x } else { hi } } else { lo })
        }
        Some(Activation::HardSigmoid { alpha, beta }) => {
            let (a, b) = (alpha as f32, beta as f32);
            v.iter_mut().for_each(|x| *x = (a * *x + b).clamp(0.0, 1.0))
        }
        Some(Activation::HardSwish) => v.iter_mut().for_each(|x| *x *= (*x / 6.0 + 0.5).clamp(0.0, 1.0)),
    }
}

/// Multiplies a gradient by the activation's derivative, given the activation's output `y`.
#[inline(never)]
fn activate_back(a: Option<Activation>, y: &[f32], g: &mut [f32]) {
    match a {
        None => {}
        Some(Activation::Relu) => g.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 { *g } else { 0.0 }),
        Some(Activation::Relu6) => g.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 && y < 6.0 { *g } else { 0.0 }),
        Some(Activation::Tanh) => g.iter_mut().zip(y).for_each(|(g, &y)| *g *= 1.0 - y * y),
        Some(Activation::Sigmoid) => g.iter_mut().zip(y).for_each(|(g, &y)| *g *= y * (1.0 - y)),
        // alpha >= 0: the output's sign is the input's (alpha 0 is a ReLU).
        Some(Activation::LeakyRelu { alpha }) => {
            let alpha = alpha as f32;
            g.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 { *g } else { alpha * *g })
        }
        Some(Activation::Clip { min, max }) => {
            let (lo, hi) = (min as f32, max as f32);
            g.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > lo && y < hi { *g } else { 0.0 })
        }
        Some(Activation::HardSigmoid { alpha, .. }) => {
            let a = alpha as f32;
            g.iter_mut().zip(y).for_each(|(g, &y)| *g = if y > 0.0 && y < 1.0 { a * *g } else { 0.0 })
        }
        // Never here: `Activation::fused` keeps hard swish off the fused path.
        Some(Activation::HardSwish) => {}
    }
}

/// [`activate_back`] with the rule of deconvnet or guided backpropagation at a ReLU-like gate
/// (relu, relu6, clip): both pass only positive gradients; deconvnet then ignores where the unit
/// was off.
pub(crate) fn activation_back(a: Option<Activation>, rule: ReluRule, y: &[f32], g: &mut [f32]) {
    if a.and_then(Activation::gate).is_some() && rule != ReluRule::Gradient {
        g.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
        if rule == ReluRule::Deconvnet {
            return;
        }
    }
    activate_back(a, y, g);
}
