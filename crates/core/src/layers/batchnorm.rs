//! `batchnorm` (`eps`, `momentum`): per channel, `(x - mean) / sqrt(var + eps) * weight + bias`.
//! A training step normalizes with the batch's statistics (over N, H and W) and moves the running
//! statistics by the momentum (the variance's batch estimate unbiased), as PyTorch's BatchNorm2d;
//! evaluation uses the running statistics. Parameters: weight and bias (trained, not decayed),
//! running_mean and running_var (not trained: only a training step's forward pass moves them).

use burn::tensor::Tensor;

use super::{Kind, Mode, Parse, Source, param};
use crate::net::ParamTensor;
use crate::rng::SplitMix64;
use crate::spec::{Fields, Layer, ParamSpec, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    pub eps: f64,
    pub momentum: f64,
}

impl Parse for BatchNorm {
    const TYPES: &'static [&'static str] = &["batchnorm"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let eps = f.float("eps", 1e-5, 1e-12, 1.0, false)?;
        let momentum = f.float("momentum", 0.1, 0.0, 1.0, false)?;
        Ok((BatchNorm { eps, momentum }, inputs[0].shape))
    }
}

impl Kind for BatchNorm {
    fn type_name(&self) -> &'static str {
        "batchnorm"
    }
    fn describe(&self, _: &Layer) -> String {
        format!("batchnorm, eps {}, momentum {}", self.eps, self.momentum)
    }
    fn params(&self, l: &Layer) -> Vec<ParamSpec> {
        let c = l.in_shape[0];
        vec![
            param(l, "weight", vec![c], true, false),
            param(l, "bias", vec![c], true, false),
            param(l, "running_mean", vec![c], false, false),
            param(l, "running_var", vec![c], false, false),
        ]
    }
    /// Weight and running variance 1, bias and running mean 0.
    fn init(&self, _: &Layer, p: &ParamSpec, _: &mut SplitMix64) -> Vec<f32> {
        let n: usize = p.shape.iter().product();
        vec![if p.field == "weight" || p.field == "running_var" { 1.0 } else { 0.0 }; n]
    }
    fn forward(&self, l: &Layer, params: &[ParamTensor], inputs: &[Tensor<4>], _: bool, mode: &mut Mode) -> Tensor<4> {
        let x = inputs[0].clone();
        let c = l.in_shape[0];
        let view = |t: Tensor<1>| t.reshape([1, c, 1, 1]);
        let (g, b) = (view(params[0].d1()), view(params[1].d1()));
        let (m, v) = match mode {
            Mode::Eval => (view(params[2].d1()), view(params[3].d1())),
            Mode::Train(pass) => {
                let [n, _, h, w] = x.dims();
                let count = (n * h * w) as f64;
                let mean = x.clone().mean_dim(0).mean_dim(2).mean_dim(3);
                let var = (x.clone() - mean.clone()).powi_scalar(2).mean_dim(0).mean_dim(2).mean_dim(3);
                let (bm, bv) = (mean.clone().without_autodiff().reshape([c]), var.clone().without_autodiff().reshape([c]));
                let (rm, rv) = (params[2].d1().without_autodiff(), params[3].d1().without_autodiff());
                let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
                pass.updates.push((l.index, 2, rm * (1.0 - self.momentum) + bm * self.momentum));
                pass.updates.push((l.index, 3, rv * (1.0 - self.momentum) + bv * (self.momentum * unbiased)));
                (mean, var)
            }
        };
        (x - m) / (v + self.eps).sqrt() * g + b
    }
}
