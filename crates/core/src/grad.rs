//! Gradients of a scalar objective with respect to the input, every layer's output and every
//! weight, computed one layer at a time: each step is a vector-Jacobian product from Burn's
//! autodiff on that layer alone. Going layer by layer yields every intermediate gradient (Burn
//! keeps only the gradients of leaves), and is where the ReLU rule of deconvnet and guided
//! backpropagation plugs in ([`ReluRule`]). Every function takes a batch: the objective is summed
//! over the images, which are independent, so each image gets its own gradient.

use burn::tensor::{Tensor, TensorData};

use crate::Error;
use crate::net::{Net, ParamTensor};
use crate::spec::{Activation, LayerKind};

/// What to differentiate.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// A class score: the pre-softmax logit of that class.
    Class(usize),
    /// A class probability: the softmax of the scores at that class.
    Prob(usize),
    /// One unit of a layer's output, by its flat CHW index.
    Neuron { layer: usize, index: usize },
    /// The mean of one channel of a layer's output.
    Channel { layer: usize, channel: usize },
    /// Softmax cross-entropy of the class scores against a label.
    Loss { label: usize },
    /// A loss defined on a layer's output, given by its gradient there (one image's worth, CHW):
    /// feature inversion, style and DeepDream losses are computed on activations and enter here.
    /// Its value is `sum(output * grad)` (the same gradient at this output).
    Seed { layer: usize, grad: Vec<f32> },
}

impl Objective {
    /// Parses `class:3`, `prob:3`, `neuron:2:17`, `channel:1:4`, `loss:3`.
    pub fn parse(s: &str) -> Result<Objective, Error> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| -> Result<usize, Error> {
            parts.get(i).and_then(|p| p.parse().ok()).ok_or_else(|| {
                Error::Objective(format!("'{s}': expected class:K, prob:K, neuron:LAYER:INDEX, channel:LAYER:C or loss:LABEL"))
            })
        };
        match parts[0] {
            "class" if parts.len() == 2 => Ok(Objective::Class(num(1)?)),
            "prob" if parts.len() == 2 => Ok(Objective::Prob(num(1)?)),
            "loss" if parts.len() == 2 => Ok(Objective::Loss { label: num(1)? }),
            "neuron" if parts.len() == 3 => Ok(Objective::Neuron { layer: num(1)?, index: num(2)? }),
            "channel" if parts.len() == 3 => Ok(Objective::Channel { layer: num(1)?, channel: num(2)? }),
            _ => Err(Error::Objective(format!("'{s}': expected class:K, prob:K, neuron:LAYER:INDEX, channel:LAYER:C or loss:LABEL"))),
        }
    }

    /// [`Objective::parse`] with layers also by name (`neuron:conv2:17`, `channel:op20:5`).
    pub fn parse_in(s: &str, spec: &crate::spec::NetSpec) -> Result<Objective, Error> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [kind @ ("neuron" | "channel"), layer, rest] if layer.parse::<usize>().is_err() => {
                let i = spec.layer_index(layer).map_err(|e| Error::Objective(e.message))?;
                Objective::parse(&format!("{kind}:{i}:{rest}"))
            }
            _ => Objective::parse(s),
        }
    }

    pub fn describe(&self, net: &Net) -> String {
        let name = |i: usize| net.spec.layers.get(i).map(|l| l.name.as_str()).unwrap_or("?");
        match self {
            Objective::Class(k) => format!("score of class {k}"),
            Objective::Prob(k) => format!("probability of class {k}"),
            Objective::Neuron { layer, index } => format!("{} unit {index}", name(*layer)),
            Objective::Channel { layer, channel } => format!("{} channel {channel} mean", name(*layer)),
            Objective::Loss { label } => format!("cross-entropy loss, label {label}"),
            Objective::Seed { layer, .. } => format!("a loss on {}", name(*layer)),
        }
    }

    /// The layer whose output the objective reads.
    pub fn target_layer(&self, net: &Net) -> usize {
        match self {
            Objective::Class(_) | Objective::Prob(_) | Objective::Loss { .. } => net.spec.score_layer(),
            Objective::Neuron { layer, .. } | Objective::Channel { layer, .. } | Objective::Seed { layer, .. } => *layer,
        }
    }

    /// Whether the objective exists in this net, with a message naming what does not.
    pub fn check(&self, net: &Net) -> Result<(), Error> {
        let n = net.spec.layers.len();
        let classes = net.spec.classes();
        let bad = |m: String| Err(Error::Objective(m));
        match self {
            Objective::Class(k) | Objective::Prob(k) | Objective::Loss { label: k } if *k >= classes => {
                bad(format!("class {k} does not exist; the network has {classes} classes (0..{})", classes - 1))
            }
            Objective::Neuron { layer, .. } | Objective::Channel { layer, .. } | Objective::Seed { layer, .. } if *layer >= n => {
                bad(format!("layer {layer} does not exist; the network has layers 0..{}", n - 1))
            }
            Objective::Neuron { layer, index } => {
                let size: usize = net.spec.layers[*layer].out_shape.iter().product();
                if *index >= size { bad(format!("unit {index} does not exist; layer {layer} has {size} units")) } else { Ok(()) }
            }
            Objective::Channel { layer, channel } => {
                let c = net.spec.layers[*layer].out_shape[0];
                if *channel >= c { bad(format!("channel {channel} does not exist; layer {layer} has {c} channels")) } else { Ok(()) }
            }
            Objective::Seed { layer, grad } => {
                let size: usize = net.spec.layers[*layer].out_shape.iter().product();
                if grad.len() != size {
                    bad(format!("the gradient given for layer {layer} has {} values; the layer has {size}", grad.len()))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// All the gradients of one objective, on the net's device (not yet read back).
pub struct Gradients {
    /// The objective's value, one per image.
    pub value: Tensor<1>,
    /// d objective / d output of each layer; `outputs[0]` is the gradient with respect to the input.
    pub outputs: Vec<Tensor<4>>,
    /// d objective / d each parameter, flattened, per layer in [`crate::spec::Layer::params`] order,
    /// each in the pieces the parameter is stored in ([`ParamTensor::pieces`]: one unless it is
    /// larger than the GPU's largest buffer).
    pub params: Vec<Vec<Vec<Tensor<1>>>>,
}

/// How backpropagation passes a gradient `g` through a ReLU whose forward input was `z`: the
/// three saliency techniques differ only in this rule (Springenberg et al. 2015, fig. 1). Every
/// ReLU-like gate takes it: relu, relu6 and clip (active where `lo < z < hi`); other
/// activations (leaky relu, sigmoid, tanh) keep their true gradient, as in Captum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReluRule {
    /// The true gradient: `g` where `z > 0`.
    #[default]
    Gradient,
    /// Zeiler & Fergus's deconvnet: `max(g, 0)`, wherever `z` was.
    Deconvnet,
    /// Guided backpropagation: `max(g, 0)` where `z > 0`.
    Guided,
}

impl ReluRule {
    pub fn parse(s: &str) -> Option<ReluRule> {
        match s {
            "gradient" => Some(ReluRule::Gradient),
            "deconvnet" => Some(ReluRule::Deconvnet),
            "guided" => Some(ReluRule::Guided),
            _ => None,
        }
    }
}

/// A one-hot row of `size` at `i`, repeated for a batch of `n`.
fn onehot(i: usize, dims: [usize; 4], device: &burn::tensor::Device) -> Tensor<4> {
    let size = dims[1] * dims[2] * dims[3];
    let mut v = vec![0f32; dims[0] * size];
    v.chunks_mut(size).for_each(|row| row[i] = 1.0);
    Tensor::<4>::from_data(TensorData::new(v, dims), device)
}

/// The gradient of one layer's output for the objective, and the objective's value per image.
fn seed(net: &Net, objective: &Objective, out: &Tensor<4>) -> (Tensor<1>, Tensor<4>) {
    let dims = out.dims();
    let n = dims[0];
    let size = dims[1] * dims[2] * dims[3];
    let device = &net.device;
    let flat: Tensor<2> = out.clone().flatten(1, 3);
    let column = |t: Tensor<2>, i: usize| -> Tensor<1> { t.slice([0..n, i..i + 1]).reshape([n]) };
    match objective {
        Objective::Class(i) | Objective::Neuron { index: i, .. } => (column(flat, *i), onehot(*i, dims, device)),
        Objective::Channel { channel, .. } => {
            let hw = dims[2] * dims[3];
            let mut v = vec![0f32; n * size];
            v.chunks_mut(size).for_each(|row| row[channel * hw..(channel + 1) * hw].fill(1.0 / hw as f32));
            let g = Tensor::<4>::from_data(TensorData::new(v, dims), device);
            let value: Tensor<2> = (out.clone() * g.clone()).flatten::<2>(1, 3).sum_dim(1);
            (value.reshape([n]), g)
        }
        Objective::Seed { grad, .. } => {
            let v: Vec<f32> = (0..n).flat_map(|_| grad.iter().copied()).collect();
            let g = Tensor::<4>::from_data(TensorData::new(v, dims), device);
            let value: Tensor<2> = (out.clone() * g.clone()).flatten::<2>(1, 3).sum_dim(1);
            (value.reshape([n]), g)
        }
        Objective::Prob(k) => {
            // d p_k / d z = p_k (onehot(k) - p).
            let p = burn::tensor::activation::softmax(flat, 1);
            let pk: Tensor<2> = p.clone().slice([0..n, *k..*k + 1]);
            let g = (onehot(*k, dims, device).flatten::<2>(1, 3) - p) * pk.clone();
            (pk.reshape([n]), g.reshape(dims))
        }
        Objective::Loss { label } => {
            // loss = logsumexp(z) - z[label];  d loss / d z = softmax(z) - onehot(label).
            let log_p = burn::tensor::activation::log_softmax(flat.clone(), 1);
            let value = column(log_p, *label).neg();
            let p = burn::tensor::activation::softmax(flat, 1).reshape(dims);
            (value, p - onehot(*label, dims, device))
        }
    }
}

/// Every gradient of `objective` for one image, given the outputs of [`Net::forward_all`].
pub fn gradients(net: &Net, objective: &Objective, outputs: &[Tensor<4>]) -> Result<Gradients, Error> {
    gradients_with(net, objective, outputs, ReluRule::Gradient)
}

/// Every gradient of `objective`, summed over a batch (so per image), with `rule` at every ReLU
/// (activation layers and activations fused into conv and fc layers alike).
pub fn gradients_with(net: &Net, objective: &Objective, outputs: &[Tensor<4>], rule: ReluRule) -> Result<Gradients, Error> {
    objective.check(net)?;
    let n = net.spec.layers.len();
    let target = objective.target_layer(net);
    let (value, g) = seed(net, objective, &outputs[target]);

    let mut out_grads: Vec<Option<Tensor<4>>> = vec![None; n];
    let mut param_grads: Vec<Vec<Vec<Tensor<1>>>> = vec![vec![]; n];

    // Layers above the target: the objective does not depend on them, except the loss on the
    // softmax output it is defined through (d(-log p_label)/dp = -1/p_label at the label).
    for i in target + 1..n {
        out_grads[i] = Some(match (objective, &net.spec.layers[i].kind) {
            (Objective::Loss { label }, LayerKind::Softmax(_)) => {
                let dims = outputs[i].dims();
                let p: Tensor<2> = outputs[i].clone().flatten(1, 3);
                let pl = p.slice([0..dims[0], *label..*label + 1]).clamp_min(1e-30);
                let mask: Tensor<2> = onehot(*label, dims, &net.device).flatten(1, 3).neg();
                (mask / pl).reshape(dims)
            }
            (Objective::Prob(k), LayerKind::Softmax(_)) => onehot(*k, outputs[i].dims(), &net.device),
            _ => outputs[i].zeros_like(),
        });
        param_grads[i] = net.params[i].iter().map(|p| p.pieces().into_iter().map(|t| t.zeros_like()).collect()).collect();
    }

    let mut acc: Vec<Option<Tensor<4>>> = vec![None; n];
    acc[target] = Some(g);
    backward(net, outputs, &mut acc, target, rule, Some((&mut out_grads, &mut param_grads)));
    out_grads[0] = Some(acc[0].take().unwrap_or_else(|| outputs[0].zeros_like()));

    Ok(Gradients {
        value,
        outputs: out_grads.into_iter().map(|g| g.expect("every layer's gradient is set")).collect(),
        params: param_grads,
    })
}

/// The target layer down to layer 1: one vector-Jacobian product each, a layer's input gradients
/// added to what the layers it feeds have sent (a layer read by two others, as a residual block's
/// input, gets the sum). `acc` holds the gradients seeded so far (any layers at or below `top`);
/// on return `acc[0]` is the input's gradient. With `keep`, every layer's output gradient and
/// every parameter gradient is stored there; without it the weights are not differentiated at all
/// (what optimizing the image needs, and much cheaper).
fn backward(
    net: &Net,
    outputs: &[Tensor<4>],
    acc: &mut [Option<Tensor<4>>],
    top: usize,
    rule: ReluRule,
    mut keep: Option<(&mut Vec<Option<Tensor<4>>>, &mut Vec<Vec<Vec<Tensor<1>>>>)>,
) {
    for i in (1..=top).rev() {
        let mut g = match acc[i].take() {
            Some(g) => g,
            None if keep.is_some() => outputs[i].zeros_like(),
            // Nothing flows through this layer (it only feeds layers above the seeds).
            None => continue,
        };
        let layer = &net.spec.layers[i];
        // A ReLU-like gate (relu, relu6, clip), fused into the layer or a layer of its own.
        let relu = layer.kind.activation().and_then(Activation::gate).is_some();
        if let Some((out_grads, _)) = keep.as_mut() {
            out_grads[i] = Some(g.clone());
        }
        // Deconvnet and guided backprop pass only positive gradients into a ReLU; deconvnet then
        // skips the ReLU's own mask, so it differentiates the layer's linear part alone; guided
        // keeps it (a clipped unit, relu6 above 6, passes nothing, as it is not active).
        if relu && rule != ReluRule::Gradient {
            g = g.clamp_min(0.0);
        }
        let xs: Vec<Tensor<4>> = layer.inputs.iter().map(|&j| outputs[j].clone().autodiff().require_grad()).collect();
        let tracked: Vec<ParamTensor> = if keep.is_some() {
            net.params[i].iter().map(ParamTensor::tracked).collect()
        } else {
            net.params[i].iter().map(ParamTensor::constant).collect()
        };
        let y = net.forward_node(i, &tracked, &xs, !(relu && rule == ReluRule::Deconvnet));
        let grads = (y * g.autodiff()).sum().backward();
        if let Some((_, param_grads)) = keep.as_mut() {
            param_grads[i] = tracked.iter().map(|p| p.grad_pieces(&grads)).collect();
        }
        for (x, &j) in xs.iter().zip(&layer.inputs) {
            let Some(gx) = x.grad(&grads) else { continue };
            acc[j] = Some(match acc[j].take() {
                Some(a) => a + gx,
                None => gx,
            });
        }
    }
}

/// The objective's value per image and its gradient with respect to the input alone (the weights
/// are not differentiated): what attribution and adversarial examples need.
pub fn input_grad(net: &Net, objective: &Objective, outputs: &[Tensor<4>], rule: ReluRule) -> Result<(Tensor<1>, Tensor<4>), Error> {
    objective.check(net)?;
    let target = objective.target_layer(net);
    let (value, g) = seed(net, objective, &outputs[target]);
    Ok((value, input_grad_seeded(net, outputs, vec![(target, g)], rule)))
}

/// The gradient with respect to the input (a batch, NCHW) of a loss given by its gradients at
/// several layers' outputs (`seeds`: layer, d loss / d output; the same layer may appear more than
/// once), with `rule` at every ReLU. The weights are not differentiated. Feature inversion, style
/// transfer and DeepDream compute their losses on the activations and come in here.
pub fn input_grad_seeded(net: &Net, outputs: &[Tensor<4>], seeds: Vec<(usize, Tensor<4>)>, rule: ReluRule) -> Tensor<4> {
    let mut acc: Vec<Option<Tensor<4>>> = vec![None; net.spec.layers.len()];
    let top = seeds.iter().map(|(l, _)| *l).max().unwrap_or(0);
    for (l, g) in seeds {
        acc[l] = Some(match acc[l].take() {
            Some(a) => a + g,
            None => g,
        });
    }
    backward(net, outputs, &mut acc, top, rule, None);
    acc[0].take().unwrap_or_else(|| outputs[0].zeros_like())
}
