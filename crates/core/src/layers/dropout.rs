//! `dropout` (`rate`, default 0.5): in a training step each unit is zeroed with probability
//! `rate` and the others scaled by 1 / (1 - rate) (inverted dropout); in evaluation, and so in
//! every view, it is the identity. The masks come from the trainer's seed and the step number,
//! so a run repeats exactly, on either training path.

use burn::tensor::Tensor;

use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, host_tensor};
use crate::cpu_occlude::{Rect, copy_region};
use crate::net::ParamTensor;
use crate::rng::SplitMix64;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Dropout {
    pub rate: f64,
}

/// Dropout's keep mask for one layer at one training step: `n * size` values (NCHW order), each
/// `1 / (1 - rate)` (kept) or 0, drawn from a SplitMix64 stream that depends only on (seed, step,
/// layer), so a run repeats exactly and both training paths (Burn and the fused CPU path) drop
/// the same units. `scripts/make_layer_fixtures.py` draws the same masks.
pub fn dropout_mask(seed: u64, step: u64, layer: usize, rate: f64, n: usize, size: usize) -> Vec<f32> {
    dropout_mask_from(seed, step, layer, rate, 0, n * size)
}

/// Values `from..from + count` of [`dropout_mask`]'s stream (a shard of the step's batch,
/// [`crate::shards`]: its examples drop what they would in the whole batch).
pub fn dropout_mask_from(seed: u64, step: u64, layer: usize, rate: f64, from: usize, count: usize) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let mut rng = SplitMix64(rng.next_u64() ^ step);
    let mut rng = SplitMix64(rng.next_u64() ^ layer as u64);
    rng.skip(from as u64);
    let keep = (1.0 / (1.0 - rate)) as f32;
    (0..count).map(|_| if rng.uniform() < rate { 0.0 } else { keep }).collect()
}

impl Parse for Dropout {
    const TYPES: &'static [&'static str] = &["dropout"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let rate = f.float("rate", 0.5, 0.0, 1.0, true)?;
        Ok((Dropout { rate }, inputs[0].shape))
    }
}

impl Kind for Dropout {
    fn type_name(&self) -> &'static str {
        "dropout"
    }
    fn describe(&self, _: &Layer) -> String {
        format!("dropout {}", self.rate)
    }
    fn forward(&self, l: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, mode: &mut Mode) -> Tensor<4> {
        let x = inputs[0].clone();
        match mode {
            Mode::Train(pass) if self.rate > 0.0 => {
                let dims = x.dims();
                let mask = dropout_mask(pass.seed, pass.step, l.index, self.rate, dims[0], l.out_shape.iter().product());
                let mask = host_tensor(mask, dims, &x);
                x * mask
            }
            _ => x,
        }
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

/// In training the mask is kept channel-major in `cols` for the backward pass; evaluation leaves
/// `cols` empty.
impl Fused for Dropout {
    fn forward(&self, io: FusedForward) {
        let buf = io.buf;
        buf.out.copy_from_slice(io.x);
        buf.cols.clear();
        if let Some(t) = io.train.filter(|_| self.rate > 0.0) {
            let [c, h, w] = io.layer.in_shape;
            let (n, p) = (io.n, h * w);
            let mask = dropout_mask_from(t.seed, t.step, io.layer.index, self.rate, t.first * c * p, n * c * p);
            buf.cols.resize(mask.len(), 0.0);
            for b in 0..n {
                for ch in 0..c {
                    buf.cols[(ch * n + b) * p..(ch * n + b + 1) * p].copy_from_slice(&mask[(b * c + ch) * p..(b * c + ch + 1) * p]);
                }
            }
            buf.out.iter_mut().zip(&buf.cols).for_each(|(v, m)| *v *= m);
        }
    }
    fn backward(&self, io: FusedBackward) {
        io.dx.copy_from_slice(&io.buf.grad);
        if !io.buf.cols.is_empty() {
            io.dx.iter_mut().zip(&io.buf.cols).for_each(|(g, m)| *g *= m);
        }
    }
    fn occlude(&self, io: OccludeIo) -> Rect {
        let [c, h, w] = io.layer.out_shape;
        copy_region(io.x, io.out, c, h, w, io.region);
        io.region
    }
}
