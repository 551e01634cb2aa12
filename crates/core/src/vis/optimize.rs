//! What the image-optimizing techniques share: the gradient of an objective, or of a loss on
//! several layers' activations, with respect to the input image (the weights are not
//! differentiated), and L-BFGS. Adam and the image parametrizations are in [`super::image_param`].

use burn::tensor::{Tensor, TensorData};

use crate::grad::{self, Objective, ReluRule};
use crate::{Error, Net, read_all};

/// The value and input gradient of an objective for one image.
pub async fn objective_grad(net: &Net, image: &[f32], objective: &Objective, rule: ReluRule) -> Result<(f32, Vec<f32>), Error> {
    objective.check(net)?;
    let x = net.input_tensor(image)?;
    let outputs = net.forward_upto(x, objective.target_layer(net), &net.params);
    let (value, g) = grad::input_grad(net, objective, &outputs, rule)?;
    let mut r = read_all(vec![value, g.flatten(0, 3)]).await?.into_iter();
    Ok((r.next().unwrap_or_default().first().copied().unwrap_or(0.0), r.next().unwrap_or_default()))
}

/// A loss on layer outputs, computed on the net's device from every output up to the deepest
/// layer it reads: its value (a tensor of one element, or several values to report, the first
/// being the total) and its gradient at each layer it reads.
pub type LayerLoss<'a> = dyn Fn(&[Tensor<4>]) -> (Tensor<1>, Vec<(usize, Tensor<4>)>) + 'a;

/// The loss's values and its gradient with respect to one image (CHW) fed to `net` (whose input
/// size it must have), through layers 0..=`last`.
pub async fn layer_loss_grad(net: &Net, image: &[f32], last: usize, loss: &LayerLoss<'_>) -> Result<(Vec<f32>, Vec<f32>), Error> {
    let x = net.input_tensor(image)?;
    let outputs = net.forward_upto(x, last, &net.params);
    let (value, seeds) = loss(&outputs);
    let g = grad::input_grad_seeded(net, &outputs, seeds, ReluRule::Gradient);
    let mut r = read_all(vec![value, g.flatten(0, 3)]).await?.into_iter();
    let values = r.next().unwrap_or_default();
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::Input(format!("the loss became {v}; lower the learning rate or the weights")));
    }
    Ok((values, r.next().unwrap_or_default()))
}

/// A layer's output for one image, read back (targets for inversion, Gram matrices of a style).
pub async fn layer_output(net: &Net, image: &[f32], layer: usize) -> Result<Vec<f32>, Error> {
    let x = net.input_tensor(image)?;
    let out = net.forward_upto(x, layer, &net.params).pop().expect("at least the input");
    crate::read(out.flatten::<1>(0, 3)).await
}

/// A host vector as a batch-of-one tensor of `shape` on the net's device.
pub fn tensor(net: &Net, values: Vec<f32>, [c, h, w]: [usize; 3]) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(values, [1, c, h, w]), &net.device)
}

/// L-BFGS as PyTorch's `torch.optim.LBFGS` without a line search (what neural-style uses): one
/// function evaluation per step, a history of `m` curvature pairs, a fixed step `lr` (the first
/// step scaled by min(1, 1/|g|_1)).
pub struct Lbfgs {
    pub lr: f32,
    m: usize,
    s: Vec<Vec<f32>>,
    y: Vec<Vec<f32>>,
    prev: Option<(Vec<f32>, Vec<f32>)>,
    h_diag: f32,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Lbfgs {
    pub fn new(lr: f32, m: usize) -> Lbfgs {
        Lbfgs { lr, m, s: vec![], y: vec![], prev: None, h_diag: 1.0 }
    }

    /// One descent step on `x` given the gradient there.
    pub fn step(&mut self, x: &mut [f32], g: &[f32]) {
        let first = self.prev.is_none();
        if let Some((px, pg)) = self.prev.take() {
            let s: Vec<f32> = x.iter().zip(&px).map(|(a, b)| a - b).collect();
            let y: Vec<f32> = g.iter().zip(&pg).map(|(a, b)| a - b).collect();
            let ys = dot(&y, &s);
            if ys > 1e-10 {
                if self.s.len() == self.m {
                    self.s.remove(0);
                    self.y.remove(0);
                }
                self.h_diag = ys / dot(&y, &y);
                self.s.push(s);
                self.y.push(y);
            }
        }
        // The two-loop recursion: d = -H g.
        let mut q: Vec<f32> = g.iter().map(|v| -v).collect();
        let k = self.s.len();
        let mut alpha = vec![0f32; k];
        for i in (0..k).rev() {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            alpha[i] = rho * dot(&self.s[i], &q);
            q.iter_mut().zip(&self.y[i]).for_each(|(q, y)| *q -= alpha[i] * y);
        }
        q.iter_mut().for_each(|v| *v *= self.h_diag);
        for i in 0..k {
            let rho = 1.0 / dot(&self.y[i], &self.s[i]);
            let beta = rho * dot(&self.y[i], &q);
            q.iter_mut().zip(&self.s[i]).for_each(|(q, s)| *q += (alpha[i] - beta) * s);
        }
        let t = if first { self.lr * (1.0 / g.iter().map(|v| v.abs()).sum::<f32>()).min(1.0) } else { self.lr };
        self.prev = Some((x.to_vec(), g.to_vec()));
        x.iter_mut().zip(&q).for_each(|(x, d)| *x += t * d);
    }
}
