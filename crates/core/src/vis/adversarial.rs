//! Adversarial examples (Goodfellow et al. 2015; the lecture's section IX): the fast gradient sign
//! method, which moves every pixel by `eps` in the direction that raises the loss of the true
//! label, and an iterative attack that walks towards a chosen class (projected gradient descent on
//! that class's loss, kept within `eps` of the original in every pixel). Pixels stay in [0, 1].

use crate::grad::{Objective, ReluRule};
use crate::vis::attribution::Attributor;
use crate::Error;

fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// FGSM: `clip(x + eps * sign(d loss(label) / dx), 0, 1)`.
pub async fn fgsm(at: &mut Attributor<'_>, image: &[f32], label: usize, eps: f32) -> Result<Vec<f32>, Error> {
    let (_, g) = at.input_grads(image, 1, &Objective::Loss { label }, ReluRule::Gradient).await?;
    Ok(image.iter().zip(&g).map(|(x, g)| (x + eps * sign(*g)).clamp(0.0, 1.0)).collect())
}

/// `steps` signed-gradient steps of size `step` that lower the loss of `target` (making the net
/// call the image `target`), each followed by a projection into the `eps` box around the image
/// and into [0, 1]. Returns the image after the last step.
pub async fn towards(at: &mut Attributor<'_>, image: &[f32], target: usize, eps: f32, step: f32, steps: usize) -> Result<Vec<f32>, Error> {
    let mut x = image.to_vec();
    for _ in 0..steps {
        let (_, g) = at.input_grads(&x, 1, &Objective::Loss { label: target }, ReluRule::Gradient).await?;
        for ((v, g), x0) in x.iter_mut().zip(&g).zip(image) {
            *v = (*v - step * sign(*g)).clamp(x0 - eps, x0 + eps).clamp(0.0, 1.0);
        }
    }
    Ok(x)
}

/// Accuracy of the net on `n` images (NCHW) with `labels` after FGSM at each epsilon: the
/// accuracy-versus-epsilon curve. Returns (epsilon, correct) pairs.
pub async fn fgsm_curve(at: &mut Attributor<'_>, images: &[f32], labels: &[usize], epsilons: &[f32]) -> Result<Vec<(f32, usize)>, Error> {
    let size = images.len() / labels.len().max(1);
    let mut correct = vec![0usize; epsilons.len()];
    for (image, &label) in images.chunks(size).zip(labels) {
        let (_, g) = at.input_grads(image, 1, &Objective::Loss { label }, ReluRule::Gradient).await?;
        let batch: Vec<f32> = epsilons
            .iter()
            .flat_map(|&eps| image.iter().zip(&g).map(move |(x, g)| (x + eps * sign(*g)).clamp(0.0, 1.0)))
            .collect();
        let out = at.outputs(&batch, epsilons.len()).await?;
        let k = out.len() / epsilons.len();
        for (e, row) in out.chunks(k).enumerate() {
            correct[e] += (crate::train::argmax(row) == label) as usize;
        }
    }
    Ok(epsilons.iter().copied().zip(correct).collect())
}
