//! `batchnorm` (`eps`, `momentum`): per channel, `(x - mean) / sqrt(var + eps) * weight + bias`.
//! A training step normalizes with the batch's statistics (over N, H and W) and moves the running
//! statistics by the momentum (the variance's batch estimate unbiased), as PyTorch's BatchNorm2d;
//! evaluation uses the running statistics. Parameters: weight and bias (trained, not decayed),
//! running_mean and running_var (not trained: only a training step's forward pass moves them).

use burn::tensor::Tensor;

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, param};
use crate::cpu_occlude::Rect;
use crate::cpu_train::Buf;
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
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

/// On the fused path (`[C, N, H, W]`: each channel's values are one run): the forward pass keeps
/// the normalized input x̂ in `buf.cols` (the weight's gradient and a training step's input
/// gradient need it), a training step's batch mean and variance in `buf.dcols` and whether it
/// trained in `buf.arg`.
impl Fused for BatchNorm {
    fn forward(&self, io: FusedForward) {
        let c = io.layer.in_shape[0];
        let (buf, w) = (io.buf, io.w);
        let m = io.x.len() / c;
        buf.cols.resize(io.x.len(), 0.0);
        buf.dcols.resize(2 * c, 0.0);
        buf.arg.clear();
        buf.arg.push(io.train.is_some() as u32);
        for ch in 0..c {
            let x = &io.x[ch * m..(ch + 1) * m];
            let (mean, var) = if io.train.is_some() {
                let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / m as f64) as f32;
                let var = (x.iter().map(|&v| ((v - mean) as f64).powi(2)).sum::<f64>() / m as f64) as f32;
                buf.dcols[ch] = mean;
                buf.dcols[c + ch] = var;
                (mean, var)
            } else {
                (w[2][ch], w[3][ch])
            };
            let s = (var + self.eps as f32).sqrt();
            let (g, b) = (w[0][ch], w[1][ch]);
            let xhat = &mut buf.cols[ch * m..(ch + 1) * m];
            let out = &mut buf.out[ch * m..(ch + 1) * m];
            for ((o, h), &v) in out.iter_mut().zip(xhat.iter_mut()).zip(x) {
                *h = (v - mean) / s;
                *o = *h * g + b;
            }
        }
    }
    fn backward(&self, io: FusedBackward) {
        let c = io.layer.in_shape[0];
        let buf = io.buf;
        let m = buf.grad.len() / c;
        let train = buf.arg.first() == Some(&1);
        for ch in 0..c {
            let dy = &buf.grad[ch * m..(ch + 1) * m];
            let xhat = &buf.cols[ch * m..(ch + 1) * m];
            let (mut db, mut dg) = (0f64, 0f64);
            for (&d, &h) in dy.iter().zip(xhat) {
                db += d as f64;
                dg += (d * h) as f64;
            }
            let var = if train { buf.dcols[c + ch] } else { io.w[3][ch] };
            let k = io.w[0][ch] / (var + self.eps as f32).sqrt();
            if io.need_dw {
                io.dw[0][ch] = dg as f32;
                io.dw[1][ch] = db as f32;
                // In evaluation the output depends on the running statistics too (the layer view
                // shows those gradients, as Burn's autodiff gives them).
                (io.dw[2][ch], io.dw[3][ch]) =
                    if train { (0.0, 0.0) } else { (-(db as f32) * k, -0.5 * (dg as f32) * io.w[0][ch] / (var + self.eps as f32)) };
            }
            if !io.need_dx {
                continue;
            }
            let dx = &mut io.dx[ch * m..(ch + 1) * m];
            if train {
                // The batch's mean and variance depend on every input of the channel.
                let (mb, mg) = ((db / m as f64) as f32, (dg / m as f64) as f32);
                for ((o, &d), &h) in dx.iter_mut().zip(dy).zip(xhat) {
                    *o = k * (d - mb - h * mg);
                }
            } else {
                dx.iter_mut().zip(dy).for_each(|(o, &d)| *o = d * k);
            }
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([c, h, w], r) = (io.layer.out_shape, io.region);
        for ch in 0..c {
            let s = (io.w[3][ch] + self.eps as f32).sqrt();
            let (mean, g, b) = (io.w[2][ch], io.w[0][ch], io.w[1][ch]);
            for y in r.y0..r.y1 {
                let row = (ch * h + y) * w + r.x0..(ch * h + y) * w + r.x1;
                io.out[row.clone()].iter_mut().zip(&io.x[row]).for_each(|(o, &v)| *o = (v - mean) / s * g + b);
            }
        }
        r
    }
    /// The running statistics move by the momentum toward the step's batch statistics (the
    /// variance's estimate unbiased), as PyTorch's BatchNorm2d and the Burn path do.
    fn batch_statistics(&self) -> bool {
        true
    }
    fn after_step(&self, layer: &Layer, buf: &Buf, w: &mut [Vec<f32>]) {
        if buf.arg.first() != Some(&1) {
            return;
        }
        let c = layer.in_shape[0];
        let m = buf.out.len() / c;
        let unbiased = if m > 1 { m as f64 / (m as f64 - 1.0) } else { 1.0 };
        let (keep, moved, moved_var) = ((1.0 - self.momentum) as f32, self.momentum as f32, (self.momentum * unbiased) as f32);
        for ch in 0..c {
            w[2][ch] = w[2][ch] * keep + buf.dcols[ch] * moved;
            w[3][ch] = w[3][ch] * keep + buf.dcols[c + ch] * moved_var;
        }
    }
}
