//! A network built from a [`NetSpec`]: its parameters as Burn tensors on one [`Device`], and the
//! forward pass of each layer on its own, so that every layer's output can be kept and every
//! layer can be differentiated alone (see [`crate::grad`]).

use burn::tensor::{Device, Tensor, TensorData};

use crate::Error;
use crate::rng::SplitMix64;
use crate::spec::NetSpec;

/// One parameter tensor, stored flat-shaped as Burn needs it for its layer.
#[derive(Clone, Debug)]
pub enum ParamTensor {
    D1(Tensor<1>),
    D2(Tensor<2>),
    D4(Tensor<4>),
    /// A rank-2 parameter larger than the GPU takes in one buffer (VGG's first fully connected
    /// layer holds 411 MB; WebGPU guarantees 128 MiB), as blocks of whole rows, in order.
    Rows(Vec<Tensor<2>>),
}

impl ParamTensor {
    fn from_vec(data: Vec<f32>, shape: &[usize], device: &Device) -> ParamTensor {
        if let (&[rows, cols], Some(limit)) = (shape, crate::backend::buffer_limit(device))
            && data.len() * 4 > limit
            && rows > 1
        {
            let per = (limit / (cols * 4).max(1)).clamp(1, rows);
            let blocks =
                data.chunks(per * cols).map(|c| Tensor::from_data(TensorData::new(c.to_vec(), [c.len() / cols, cols]), device)).collect();
            return ParamTensor::Rows(blocks);
        }
        let td = TensorData::new(data, shape.to_vec());
        match shape.len() {
            1 => ParamTensor::D1(Tensor::from_data(td, device)),
            2 => ParamTensor::D2(Tensor::from_data(td, device)),
            4 => ParamTensor::D4(Tensor::from_data(td, device)),
            n => unreachable!("parameters have rank 1, 2 or 4, not {n}"),
        }
    }

    pub fn d1(&self) -> Tensor<1> {
        match self {
            ParamTensor::D1(t) => t.clone(),
            _ => unreachable!("expected a rank-1 parameter"),
        }
    }
    pub fn d4(&self) -> Tensor<4> {
        match self {
            ParamTensor::D4(t) => t.clone(),
            _ => unreachable!("expected a rank-4 parameter"),
        }
    }
    /// A rank-2 parameter as its blocks of rows (one block unless it is stored split).
    pub fn rows(&self) -> Vec<Tensor<2>> {
        match self {
            ParamTensor::D2(t) => vec![t.clone()],
            ParamTensor::Rows(b) => b.clone(),
            _ => unreachable!("expected a rank-2 parameter"),
        }
    }

    /// The same tensor with autodiff on and its gradient retained.
    pub fn tracked(&self) -> ParamTensor {
        match self {
            ParamTensor::D1(t) => ParamTensor::D1(t.clone().autodiff().require_grad()),
            ParamTensor::D2(t) => ParamTensor::D2(t.clone().autodiff().require_grad()),
            ParamTensor::D4(t) => ParamTensor::D4(t.clone().autodiff().require_grad()),
            ParamTensor::Rows(b) => ParamTensor::Rows(b.iter().map(|t| t.clone().autodiff().require_grad()).collect()),
        }
    }

    /// The same tensor as a constant of an autodiff graph (no gradient of its own).
    pub fn constant(&self) -> ParamTensor {
        match self {
            ParamTensor::D1(t) => ParamTensor::D1(t.clone().autodiff()),
            ParamTensor::D2(t) => ParamTensor::D2(t.clone().autodiff()),
            ParamTensor::D4(t) => ParamTensor::D4(t.clone().autodiff()),
            ParamTensor::Rows(b) => ParamTensor::Rows(b.iter().map(|t| t.clone().autodiff()).collect()),
        }
    }

    /// Its gradient after a backward pass, flattened to rank 1 (on the inner device).
    pub fn grad_flat(&self, grads: &burn::tensor::Gradients) -> Option<Tensor<1>> {
        let pieces = self.grad_blocks(grads).into_iter().collect::<Option<Vec<_>>>()?;
        Some(if pieces.len() == 1 { pieces.into_iter().next().expect("one piece") } else { Tensor::cat(pieces, 0) })
    }

    /// Its gradient after a backward pass in the pieces of [`ParamTensor::pieces`] (zeros where
    /// it has none), so that a parameter stored in blocks is never joined on the device.
    pub fn grad_pieces(&self, grads: &burn::tensor::Gradients) -> Vec<Tensor<1>> {
        self.grad_blocks(grads)
            .into_iter()
            .zip(self.pieces())
            .map(|(g, p)| g.unwrap_or_else(|| p.without_autodiff().zeros_like()))
            .collect()
    }

    fn grad_blocks(&self, grads: &burn::tensor::Gradients) -> Vec<Option<Tensor<1>>> {
        match self {
            ParamTensor::D1(t) => vec![t.grad(grads)],
            ParamTensor::D2(t) => vec![t.grad(grads).map(|g| g.flatten(0, 1))],
            ParamTensor::D4(t) => vec![t.grad(grads).map(|g| g.flatten(0, 3))],
            ParamTensor::Rows(b) => b.iter().map(|t| t.grad(grads).map(|g| g.flatten(0, 1))).collect(),
        }
    }

    /// The same shape, new values (given flat).
    pub fn with_flat(&self, flat: Tensor<1>) -> ParamTensor {
        match self {
            ParamTensor::D1(_) => ParamTensor::D1(flat),
            ParamTensor::D2(t) => ParamTensor::D2(flat.reshape(t.dims())),
            ParamTensor::D4(t) => ParamTensor::D4(flat.reshape(t.dims())),
            ParamTensor::Rows(b) => {
                let mut at = 0;
                ParamTensor::Rows(
                    b.iter()
                        .map(|t| {
                            let n = t.dims()[0] * t.dims()[1];
                            at += n;
                            flat.clone().slice(at - n..at).reshape(t.dims())
                        })
                        .collect(),
                )
            }
        }
    }

    /// Its values flattened to rank 1 (a parameter stored in blocks is joined: see `pieces`).
    pub fn flat(&self) -> Tensor<1> {
        match self {
            ParamTensor::Rows(_) => Tensor::cat(self.pieces(), 0),
            _ => self.pieces().pop().expect("one piece"),
        }
    }

    /// Its values flattened to rank 1 in as many pieces as it is stored in (one, or a block
    /// of rows each): what is read back.
    pub fn pieces(&self) -> Vec<Tensor<1>> {
        match self {
            ParamTensor::D1(t) => vec![t.clone()],
            ParamTensor::D2(t) => vec![t.clone().flatten(0, 1)],
            ParamTensor::D4(t) => vec![t.clone().flatten(0, 3)],
            ParamTensor::Rows(b) => b.iter().map(|t| t.clone().flatten(0, 1)).collect(),
        }
    }
}

/// The parameters of one layer, in the order of [`Layer::params`].
pub type LayerParams = Vec<ParamTensor>;

#[derive(Clone)]
pub struct Net {
    pub spec: NetSpec,
    pub params: Vec<LayerParams>,
    pub device: Device,
}

pub use crate::layers::dropout::{dropout_mask, dropout_mask_from};
pub use crate::layers::{Mode, TrainPass};

impl Net {
    /// A network with deterministic random weights from `seed`.
    pub fn init(spec: NetSpec, seed: u64, device: &Device) -> Net {
        let weights = Net::init_weights(&spec, seed);
        Net::with_weights(spec, weights, device)
    }

    /// The weights [`Net::init`] gives, on the host: one `Vec<f32>` per entry of each layer's
    /// [`Layer::params`].
    pub fn init_weights(spec: &NetSpec, seed: u64) -> Vec<Vec<Vec<f32>>> {
        let mut rng = SplitMix64(seed);
        spec.layers.iter().map(|l| l.params().iter().map(|p| l.kind.ops().init(l, p, &mut rng)).collect()).collect()
    }

    /// A network with the given weights, one `Vec<f32>` per entry of each layer's
    /// [`Layer::params`], already checked for size.
    pub fn with_weights(spec: NetSpec, weights: Vec<Vec<Vec<f32>>>, device: &Device) -> Net {
        let params = spec
            .layers
            .iter()
            .zip(weights)
            .map(|(l, ws)| l.params().iter().zip(ws).map(|(p, w)| ParamTensor::from_vec(w, &p.shape, device)).collect())
            .collect();
        Net { spec, params, device: device.clone() }
    }

    /// The same network on another device (weights copied through the host).
    pub async fn to_device(&self, device: &Device) -> Result<Net, Error> {
        let weights = self.read_weights().await?;
        Ok(Net::with_weights(self.spec.clone(), weights, device))
    }

    /// The net cut after layer `last`, for an input of `h` x `w` (the optimization techniques run
    /// convolutional layers on images of other sizes: octaves, style transfer at 512 px). The
    /// parameters are shared, not copied. Fails with the spec's message when a layer up to `last`
    /// does not fit the new size (too small an image, or a fully connected layer).
    pub fn resized(&self, last: usize, h: usize, w: usize) -> Result<Net, Error> {
        let mut json = self.spec.json.clone();
        let layers = json["layers"].as_array_mut().ok_or_else(|| Error::Input("the spec has no layers".into()))?;
        layers.truncate(last + 1);
        if let Some(input) = layers[0].as_object_mut() {
            input.remove("out_sx");
            input.remove("out_sy");
            input.insert("width".into(), w.into());
            input.insert("height".into(), h.into());
        }
        if let Some(o) = json.as_object_mut() {
            o.remove("classes");
        }
        let spec = NetSpec::from_value(&json)?;
        // A fully connected layer's weights fit one input size only.
        for (new, old) in spec.layers.iter().zip(&self.spec.layers) {
            if new.params().iter().map(|p| &p.shape).ne(old.params().iter().map(|p| &p.shape)) {
                return Err(Error::Input(format!(
                    "layer {} ({}) only works on {}x{} inputs; pick an earlier layer",
                    new.index,
                    new.name,
                    self.spec.input_shape()[2],
                    self.spec.input_shape()[1]
                )));
            }
        }
        Ok(Net { spec, params: self.params[..=last].to_vec(), device: self.device.clone() })
    }

    /// Every parameter's values, per layer, in [`Layer::params`] order (one read-back).
    pub async fn read_weights(&self) -> Result<Vec<Vec<Vec<f32>>>, Error> {
        let pieces: Vec<Vec<Tensor<1>>> = self.params.iter().flatten().map(ParamTensor::pieces).collect();
        let counts: Vec<usize> = pieces.iter().map(Vec::len).collect();
        let mut values = crate::read_all(pieces.into_iter().flatten().collect()).await?.into_iter();
        let mut joined = counts.into_iter().map(|k| values.by_ref().take(k).flatten().collect::<Vec<f32>>());
        Ok(self.params.iter().map(|lp| joined.by_ref().take(lp.len()).collect()).collect())
    }

    /// Turns a flat CHW image into a batch of one, checking its size.
    pub fn input_tensor(&self, image: &[f32]) -> Result<Tensor<4>, Error> {
        self.check_input(image)?;
        let [d, h, w] = self.spec.input_shape();
        Ok(Tensor::from_data(TensorData::new(image.to_vec(), [1, d, h, w]), &self.device))
    }

    /// Checks one image against the input shape, and that its values are finite.
    pub fn check_input(&self, image: &[f32]) -> Result<(), Error> {
        let [d, h, w] = self.spec.input_shape();
        if image.len() != d * h * w {
            return Err(Error::Input(format!(
                "the image has {} values; the network's input is {d}x{h}x{w} (depth x height x width) = {} values",
                image.len(),
                d * h * w
            )));
        }
        if let Some(i) = image.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("the image has a non-finite value ({}) at index {i}", image[i])));
        }
        Ok(())
    }

    /// Layer `index`'s forward pass on a batch, in inference mode (dropout off, batchnorm with
    /// running statistics), with the given parameters (so that tracked copies can be passed).
    pub fn forward_layer(&self, index: usize, params: &[ParamTensor], x: Tensor<4>) -> Tensor<4> {
        self.forward_layer_as(index, params, x, true, &mut Mode::Eval)
    }

    /// Layer `index`'s forward pass without the activation fused into a conv or fc layer (an
    /// activation layer of its own becomes the identity): deconvnet's backward needs the VJP of
    /// the linear part alone.
    pub fn forward_layer_linear(&self, index: usize, params: &[ParamTensor], x: Tensor<4>) -> Tensor<4> {
        self.forward_layer_as(index, params, x, false, &mut Mode::Eval)
    }

    fn forward_layer_as(&self, index: usize, params: &[ParamTensor], x: Tensor<4>, act: bool, mode: &mut Mode) -> Tensor<4> {
        self.forward_node_in(index, params, &[x], act, mode)
    }

    /// Layer `index`'s forward pass from its inputs (one per entry of its `inputs`; `add` sums
    /// them), with `act` false to skip a fused activation (see `forward_layer_linear`).
    pub fn forward_node(&self, index: usize, params: &[ParamTensor], inputs: &[Tensor<4>], act: bool) -> Tensor<4> {
        self.forward_node_in(index, params, inputs, act, &mut Mode::Eval)
    }

    /// [`Net::forward_node`] in the given mode.
    pub fn forward_node_in(&self, index: usize, params: &[ParamTensor], inputs: &[Tensor<4>], act: bool, mode: &mut Mode) -> Tensor<4> {
        let layer = &self.spec.layers[index];
        layer.kind.ops().forward(layer, params, inputs, act, mode)
    }

    /// Every layer's output for a batch, input first (layers in order; each reads earlier ones).
    pub fn forward_all(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        self.forward_upto(x, self.spec.layers.len() - 1, &self.params)
    }

    /// The outputs of layers 0..=`last` for a batch, with the given parameters (tracked copies
    /// when training).
    pub fn forward_upto(&self, x: Tensor<4>, last: usize, params: &[LayerParams]) -> Vec<Tensor<4>> {
        self.forward_upto_in(x, last, params, &mut Mode::Eval)
    }

    /// [`Net::forward_upto`] in the given mode (a training step's: see [`TrainPass`]).
    pub fn forward_upto_in(&self, x: Tensor<4>, last: usize, params: &[LayerParams], mode: &mut Mode) -> Vec<Tensor<4>> {
        let mut outs: Vec<Tensor<4>> = Vec::with_capacity(last + 1);
        outs.push(x);
        for i in 1..=last {
            let inputs: Vec<Tensor<4>> = self.spec.layers[i].inputs.iter().map(|&j| outs[j].clone()).collect();
            let y = self.forward_node_in(i, &params[i], &inputs, true, mode);
            outs.push(y);
        }
        outs
    }
}
