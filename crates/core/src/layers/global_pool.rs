//! `globalpool`: the mean (default) or max of each channel, `[C, H, W]` -> `[C, 1, 1]`
//! (Keras's GlobalAveragePooling2D, ONNX's GlobalAveragePool).

use burn::tensor::Tensor;

use super::pool::PoolMode;
use super::{Kind, Mode, Parse, Source, Window};
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
}
