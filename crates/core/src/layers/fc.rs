//! `fc`: fully connected, `y = x W^T + b` on the input flattened in (C, H, W) order (PyTorch's
//! Linear after flatten), with an optional fused activation. Weight (units, inputs).

use burn::tensor::Tensor;

use super::act::{Activation, apply};
use super::{Fused, FusedBackward, FusedForward, Kind, Mode, OccludeIo, Parse, Source, param, Window};
use crate::cpu_occlude::Rect;
use super::act::activate;
use crate::cpu_train::{matmul, weight_grads};
use crate::net::ParamTensor;
use crate::spec::{Fields, Layer, ParamSpec, Shape3, SpecError};

#[derive(Debug, Clone, PartialEq)]
pub struct Fc {
    pub units: usize,
    pub bias: bool,
    pub activation: Option<Activation>,
}

impl Parse for Fc {
    const TYPES: &'static [&'static str] = &["fc"];
    fn parse(_: &str, f: &mut Fields, _: &[Source]) -> Result<(Self, Shape3), SpecError> {
        let units = f.uint(&["units", "num_neurons"], None, 1)?;
        let bias = f.boolean("bias", true)?;
        let activation = f.activation()?;
        Ok((Fc { units, bias, activation }, [units, 1, 1]))
    }
}

impl Kind for Fc {
    fn window(&self) -> Window {
        Window::Whole
    }
    fn type_name(&self) -> &'static str {
        "fc"
    }
    fn describe(&self, _: &Layer) -> String {
        format!("fc {}{}", self.units, self.activation.map(|a| format!(", {}", a.as_str())).unwrap_or_default())
    }
    fn params(&self, l: &Layer) -> Vec<ParamSpec> {
        let fan_in = l.in_shape.iter().product();
        let mut v = vec![param(l, "weight", vec![self.units, fan_in], true, true)];
        if self.bias {
            v.push(param(l, "bias", vec![self.units], true, false));
        }
        v
    }
    fn activation(&self) -> Option<Activation> {
        self.activation
    }
    fn forward(&self, l: &Layer, params: &[ParamTensor], inputs: &[Tensor<4>], act: bool, _: &mut Mode) -> Tensor<4> {
        let batch = inputs[0].dims()[0];
        let [d, h, w] = l.out_shape;
        // PyTorch's flatten order (C, H, W) and y = x W^T + b.
        let flat: Tensor<2> = inputs[0].clone().flatten(1, 3);
        // A weight stored in blocks of rows (larger than the GPU's largest buffer): one product
        // per block, side by side.
        let blocks = params[0].rows();
        let mut y = if blocks.len() == 1 {
            flat.matmul(blocks[0].clone().transpose())
        } else {
            Tensor::cat(blocks.into_iter().map(|w| flat.clone().matmul(w.transpose())).collect(), 1)
        };
        if let Some(b) = params.get(1) {
            y = y + b.d1().unsqueeze_dim(0);
        }
        apply(y, if act { self.activation } else { None }).reshape([batch, d, h, w])
    }
    fn fused(&self, _: &Layer) -> Option<&dyn Fused> {
        Some(self)
    }
}

/// `out[units, N] = W[units, in] x x^T[in, N]`, the input transposed into `cols`.
impl Fused for Fc {
    fn forward(&self, io: FusedForward) {
        let ([ci, hi, wi], [co, _, _]) = (io.layer.in_shape, io.layer.out_shape);
        let (buf, w, n, x) = (io.buf, io.w, io.n, io.x);
        let inp = ci * hi * wi;
        let p = hi * wi;
        buf.cols.resize(inp * n, 0.0);
        // x^T [in, N] with in = c*HW + p (PyTorch's flatten order).
        for c in 0..ci {
            for b in 0..n {
                for q in 0..p {
                    buf.cols[(c * p + q) * n + b] = x[(c * n + b) * p + q];
                }
            }
        }
        matmul(co, n, inp, &mut buf.out, (&w[0], 1, inp as isize), (&buf.cols, 1, n as isize));
        if let Some(bias) = w.get(1) {
            for (row, &b) in buf.out.chunks_mut(n).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
        activate(self.activation, &mut buf.out);
    }
    fn backward(&self, io: FusedBackward) {
        let ([ci, hi, wi], [co, _, _]) = (io.layer.in_shape, io.layer.out_shape);
        let (buf, n) = (io.buf, io.n);
        let inp = ci * hi * wi;
        let p = hi * wi;
        // x^T is kept as cols [in, N].
        weight_grads(buf, self.activation, io.rule, io.need_dw, io.dw, co, inp, n);
        if io.need_dx {
            // dx^T[in, N] = W^T[in, out] x gz[out, N]
            buf.dcols.resize(inp * n, 0.0);
            matmul(inp, n, co, &mut buf.dcols, (&io.w[0], inp as isize, 1), (&buf.gz, 1, n as isize));
            for c in 0..ci {
                for b in 0..n {
                    for q in 0..p {
                        io.dx[(c * n + b) * p + q] = buf.dcols[(c * p + q) * n + b];
                    }
                }
            }
        }
    }
    /// An fc layer reads every input: its whole output is recomputed (it is small).
    fn occlude(&self, io: OccludeIo) -> Rect {
        let ([ci, hi, wi], [co, ho, wo]) = (io.layer.in_shape, io.layer.out_shape);
        let inp = ci * hi * wi;
        matmul(co, 1, inp, io.out, (&io.w[0], 1, inp as isize), (io.x, 1, 1));
        if let Some(b) = io.w.get(1) {
            io.out.iter_mut().zip(b).for_each(|(v, b)| *v += b);
        }
        activate(self.activation, io.out);
        Rect { y0: 0, y1: ho, x0: 0, x1: wo }
    }
}
