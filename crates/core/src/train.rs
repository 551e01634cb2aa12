//! Training: minibatch SGD with momentum and L2 weight decay on the softmax cross-entropy of the
//! class scores, through Burn's autodiff over the whole network. (The browser's live training
//! view and ConvNetJS's other trainers build on this.)

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

use crate::net::{Net, ParamTensor};
use crate::{read, Error};

#[derive(Debug, Clone, Copy)]
pub struct SgdConfig {
    pub learning_rate: f64,
    pub momentum: f64,
    pub l2: f64,
}

impl Default for SgdConfig {
    /// ConvNetJS's MNIST demo uses batch 20 and L2 0.001; SGD lr 0.01 with momentum 0.9.
    fn default() -> Self {
        SgdConfig { learning_rate: 0.01, momentum: 0.9, l2: 0.001 }
    }
}

pub struct Sgd {
    pub config: SgdConfig,
    velocity: Vec<Vec<Option<Tensor<1>>>>,
}

impl Sgd {
    pub fn new(net: &Net, config: SgdConfig) -> Sgd {
        Sgd { config, velocity: net.params.iter().map(|l| vec![None; l.len()]).collect() }
    }
}

/// A batch of images (N x C x H x W, flat) and labels.
pub fn batch_tensors(net: &Net, images: &[f32], labels: &[usize]) -> Result<(Tensor<4>, Tensor<2>), Error> {
    let [d, h, w] = net.spec.input_shape();
    let n = labels.len();
    if n == 0 || images.len() != n * d * h * w {
        return Err(Error::Input(format!("a batch of {n} labels needs {} image values, got {}", n * d * h * w, images.len())));
    }
    let classes = net.spec.classes();
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(Error::Input(format!("label {bad} is out of range; the network has {classes} classes")));
    }
    let mut onehot = vec![0f32; n * classes];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * classes + l] = 1.0;
    }
    let x = Tensor::from_data(TensorData::new(images.to_vec(), [n, d, h, w]), &net.device);
    let y = Tensor::from_data(TensorData::new(onehot, [n, classes]), &net.device);
    Ok((x, y))
}

/// Class scores (the score layer's output) for a batch, N x classes.
pub fn scores(net: &Net, x: Tensor<4>, params: &[Vec<ParamTensor>]) -> Tensor<2> {
    let mut cur = x;
    for i in 1..=net.spec.score_layer() {
        cur = net.forward_layer(i, &params[i], cur);
    }
    cur.flatten(1, 3)
}

/// One SGD step on a batch; returns the mean cross-entropy loss before the step.
pub async fn step(net: &mut Net, opt: &mut Sgd, images: &[f32], labels: &[usize]) -> Result<f32, Error> {
    let (x, y) = batch_tensors(net, images, labels)?;
    let n = labels.len() as f64;
    let tracked: Vec<Vec<ParamTensor>> =
        net.params.iter().map(|l| l.iter().map(ParamTensor::tracked).collect()).collect();
    let z = scores(net, x.autodiff(), &tracked);
    let loss = (log_softmax(z, 1) * y.autodiff()).sum().neg() / n;
    let grads = loss.backward();
    let c = opt.config;
    // The updated parameters and velocities, not yet committed.
    let mut updates = vec![];
    let mut sumsq = Tensor::<1>::zeros([1], &net.device);
    for (li, layer) in tracked.iter().enumerate() {
        for (pi, p) in layer.iter().enumerate() {
            let Some(g) = p.grad_flat(&grads) else { continue };
            let w = net.params[li][pi].flat();
            let g = g + w.clone() * c.l2;
            let v = match &opt.velocity[li][pi] {
                Some(v) => v.clone() * c.momentum - g * c.learning_rate,
                None => g * (-c.learning_rate),
            };
            let w = w + v.clone();
            sumsq = sumsq + w.clone().powf_scalar(2.0).sum();
            updates.push((li, pi, w, v));
        }
    }
    // One read for the loss and a finiteness check of the new weights.
    let both = read(Tensor::cat(vec![loss.without_autodiff(), sumsq], 0)).await?;
    let (value, norm) = (both[0], both[1]);
    if !value.is_finite() || !norm.is_finite() {
        return Err(Error::Input(format!(
            "the {} became {}: training diverged (lower the learning rate; the weights were not changed)",
            if value.is_finite() { "weights" } else { "loss" },
            if value.is_finite() { norm } else { value }
        )));
    }
    for (li, pi, w, v) in updates {
        net.params[li][pi] = net.params[li][pi].with_flat(w);
        opt.velocity[li][pi] = Some(v);
    }
    Ok(value)
}

/// Predicted classes for a batch.
pub async fn predict(net: &Net, images: &[f32], n: usize) -> Result<Vec<usize>, Error> {
    let (x, _) = batch_tensors(net, images, &vec![0; n])?;
    let z = scores(net, x, &net.params);
    let v = read(z.flatten::<1>(0, 1)).await?;
    let k = net.spec.classes();
    Ok(v.chunks(k)
        .map(|r| r.iter().enumerate().fold(0, |b, (i, &s)| if s > r[b] { i } else { b }))
        .collect())
}
