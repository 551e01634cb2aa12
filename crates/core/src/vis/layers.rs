//! The layer view: every layer's activations, the gradient of an objective with respect to every
//! layer's output, and every layer's weights and weight gradients, read back to the host.

use crate::grad::{self, Objective};
use crate::{read, Error, Net};

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
        let (min, max) = data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
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
    let x = net.input_tensor(image)?;
    let outputs = net.forward_all(x);
    let grads = grad::gradients(net, objective, &outputs)?;
    let objective_value = read(grads.value).await?[0];

    let mut layers = Vec::with_capacity(outputs.len());
    for (i, ((out, g), pg)) in outputs.into_iter().zip(grads.outputs).zip(grads.params).enumerate() {
        let layer = &net.spec.layers[i];
        let shape = layer.out_shape.to_vec();
        let act = Values::new(shape.clone(), read(out).await?);
        let grad = Values::new(shape, read(g).await?);
        let mut weights = vec![];
        for ((spec, p), g) in layer.params().into_iter().zip(&net.params[i]).zip(pg) {
            weights.push(WeightProbe {
                name: spec.name,
                value: Values::new(spec.shape.clone(), read(p.flat()).await?),
                grad: Values::new(spec.shape, read(g).await?),
            });
        }
        layers.push(LayerProbe { act, grad, weights });
    }
    let probs = net.spec.softmax_index().map(|i| layers[i].act.data.clone());
    Ok(Probe { objective: objective_value, probs, layers })
}
