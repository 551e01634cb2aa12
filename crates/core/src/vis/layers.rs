//! The layer view: every layer's activations, the gradient of an objective with respect to every
//! layer's output, and every layer's weights and weight gradients, read back to the host.

use burn::tensor::Tensor;

use crate::grad::{self, Objective, ReluRule};
use crate::{Error, Net, read_all};

/// A tensor read back, with its shape and range.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub min: f32,
    pub max: f32,
}

impl Values {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Values {
        let (min, max) = data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let (min, max) = if data.is_empty() { (0.0, 0.0) } else { (min, max) };
        Values { shape, data, min, max }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightProbe {
    pub name: String,
    pub value: Values,
    pub grad: Values,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LayerProbe {
    /// The layer's output, `[depth, height, width]`.
    pub act: Values,
    /// d objective / d output, same shape.
    pub grad: Values,
    pub weights: Vec<WeightProbe>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub objective: f32,
    /// The softmax output, if the net ends in a softmax.
    pub probs: Option<Vec<f32>>,
    /// One per layer; `layers[0]` is the input and its gradient.
    pub layers: Vec<LayerProbe>,
}

/// Runs one image through the net and differentiates the objective.
pub async fn probe(net: &Net, image: &[f32], objective: &Objective) -> Result<Probe, Error> {
    probe_with(net, image, objective, ReluRule::Gradient).await
}

/// [`probe`] with `rule` at every ReLU (deconvnet or guided backpropagation).
pub async fn probe_with(net: &Net, image: &[f32], objective: &Objective, rule: ReluRule) -> Result<Probe, Error> {
    let x = net.input_tensor(image)?;
    let outputs = net.forward_all(x);
    let grads = grad::gradients_with(net, objective, &outputs, rule)?;

    // Everything goes back to the host in one read (a probe has dozens of tensors).
    // A parameter stored in several blocks (larger than the GPU's largest buffer) is read in
    // pieces and joined here.
    let mut parts: Vec<Tensor<1>> = vec![grads.value];
    let mut counts: Vec<usize> = vec![1];
    for (((out, g), pg), params) in outputs.into_iter().zip(grads.outputs).zip(grads.params).zip(&net.params) {
        parts.push(out.flatten(0, 3));
        parts.push(g.flatten(0, 3));
        counts.extend([1, 1]);
        for (p, g) in params.iter().zip(pg) {
            let pieces = p.pieces();
            counts.extend([pieces.len(), g.len()]);
            parts.extend(pieces);
            parts.extend(g);
        }
    }
    let mut values = read_all(parts).await?.into_iter();
    let mut counts = counts.into_iter();
    let mut take = || {
        let k = counts.next().expect("one count per value read");
        let mut v = values.next().expect("one value per tensor read");
        for _ in 1..k {
            v.extend(values.next().expect("one value per piece read"));
        }
        v
    };

    let objective_value = take()[0];
    let mut layers = Vec::with_capacity(net.spec.layers.len());
    for layer in &net.spec.layers {
        let shape = layer.out_shape.to_vec();
        let act = Values::new(shape.clone(), take());
        let grad = Values::new(shape, take());
        let weights = layer
            .params()
            .into_iter()
            .map(|spec| {
                let value = Values::new(spec.shape.clone(), take());
                WeightProbe { name: spec.name, value, grad: Values::new(spec.shape, take()) }
            })
            .collect();
        layers.push(LayerProbe { act, grad, weights });
    }
    let probs = net.spec.softmax_index().map(|i| layers[i].act.data.clone());
    Ok(Probe { objective: objective_value, probs, layers })
}
