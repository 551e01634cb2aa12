//! `globalpool`: the mean (default) or max of each channel, `[C, H, W]` -> `[C, 1, 1]`
//! (Keras's GlobalAveragePooling2D, ONNX's GlobalAveragePool).

use burn::tensor::Tensor;

use super::pool::PoolMode;
use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, Window};
use crate::cpu_occlude::Rect;
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPool {
    pub mode: PoolMode,
}

impl Parse for GlobalPool {
    const TYPES: &'static [&'static str] = &["globalpool"];
    fn parse(_: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let mode = PoolMode::read(f, PoolMode::Avg)?;
        Ok((GlobalPool { mode }, [inputs[0].shape[0], 1, 1]))
    }
}

impl Kind for GlobalPool {
    fn window(&self) -> Window {
        Window::Whole
    }
    fn type_name(&self) -> &'static str {
        "globalpool"
    }
    fn describe(&self, _: &Layer) -> String {
        format!("global {} pool", self.mode.as_str())
    }
    fn forward(&self, l: &Layer, _: &[ParamTensor], inputs: &[Tensor<4>], _: bool, _: &mut Mode) -> Tensor<4> {
        let [c, h, w] = l.in_shape;
        let n = inputs[0].dims()[0];
        let planes: Tensor<3> = inputs[0].clone().reshape([n, c, h * w]);
        let pooled = match self.mode {
            PoolMode::Avg => planes.mean_dim(2),
            PoolMode::Max => planes.max_dim(2),
        };
        pooled.reshape([n, c, 1, 1])
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

impl GlobalPool {
    /// Each plane's mean or max (its first largest value's position in `arg`).
    fn pool(&self, x: &[f32], p: usize, out: &mut [f32], arg: &mut [u32]) {
        for (k, (o, plane)) in out.iter_mut().zip(x.chunks(p)).enumerate() {
            *o = match self.mode {
                PoolMode::Avg => plane.iter().sum::<f32>() / p as f32,
                PoolMode::Max => {
                    let (mut best, mut at) = (plane[0], 0);
                    for (q, &v) in plane.iter().enumerate().skip(1) {
                        if v > best {
                            best = v;
                            at = q;
                        }
                    }
                    arg[k] = at as u32;
                    best
                }
            };
        }
    }
}

/// `[C, N, H, W]` -> `[C, N, 1, 1]`: one value per plane.
impl Fused for GlobalPool {
    fn forward(&self, io: FusedForward) {
        let [_, h, w] = io.layer.in_shape;
        let buf = io.buf;
        buf.arg.resize(if self.mode == PoolMode::Max { buf.out.len() } else { 0 }, 0);
        self.pool(io.x, h * w, &mut buf.out, &mut buf.arg);
    }
    fn backward(&self, io: FusedBackward) {
        if !io.need_dx {
            return;
        }
        let [_, h, w] = io.layer.in_shape;
        let p = h * w;
        for (k, (d, &g)) in io.dx.chunks_mut(p).zip(&io.buf.grad).enumerate() {
            match self.mode {
                PoolMode::Avg => d.fill(g / p as f32),
                PoolMode::Max => {
                    d.fill(0.0);
                    d[io.buf.arg[k] as usize] = g;
                }
            }
        }
    }
    /// Every output reads the whole plane: all of them are recomputed (one per channel).
    fn occlude(&self, io: OccludeIo) -> Rect {
        let [c, h, w] = io.layer.in_shape;
        let mut arg = vec![0u32; if self.mode == PoolMode::Max { c } else { 0 }];
        self.pool(io.x, h * w, io.out, &mut arg);
        Rect { y0: 0, y1: 1, x0: 0, x1: 1 }
    }
}
