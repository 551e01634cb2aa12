//! Adversarial examples (Goodfellow et al. 2015; the lecture's section IX): the fast gradient sign
//! method, which moves every pixel by `eps` in the direction that raises the loss of the true
//! label, and an iterative attack that walks towards a chosen class (projected gradient descent on
//! that class's loss, kept within `eps` of the original in every pixel). Pixels stay in [0, 1].

use crate::Error;
use crate::grad::{Objective, ReluRule};
use crate::settings::{Field, Resolved, Schema};
use crate::vis::attribution::Attributor;
use serde_json::{Map, Value};

/// The settings of an iterative attack (and of a fooling image, which ignores `eps`): keys,
/// defaults and ranges, written once. Sizes are on 0-255 pixels, as the papers quote them.
pub fn schema() -> Schema {
    Schema::new(
        "attack",
        vec![
            Field::integer("target", "target class", 0, 0, 1 << 20).help("The class the image is pushed towards"),
            Field::number("eps", "ε", 2.0, 0.0, 255.0, 0.5).unit("on 0-255 pixels").help("How far any pixel may move from the original"),
            Field::number("step", "step size", 0.5, 0.0, 255.0, 0.1).unit("on 0-255 pixels"),
            Field::integer("steps", "steps", 20, 1, 10_000),
            Field::integer("seed", "seed", 1, 0, 1 << 32).help("Fooling images: the starting noise's seed"),
        ],
    )
}

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
    let mut attack = Attack::new(image, target, eps, step, steps);
    while !attack.done() {
        attack.step(at).await?;
    }
    Ok(attack.x)
}

/// An iterative attack towards a class, a step at a time (for progress and cancel): projected
/// signed-gradient descent on the target's cross-entropy. With `eps` 1 from noise it grows a
/// fooling image (Nguyen et al. 2015): noise the net calls `target` with high confidence.
pub struct Attack {
    pub original: Vec<f32>,
    pub x: Vec<f32>,
    pub target: usize,
    pub eps: f32,
    pub step_size: f32,
    pub steps: usize,
    /// The target's loss before each step.
    pub history: Vec<f32>,
}

impl Attack {
    pub fn new(image: &[f32], target: usize, eps: f32, step: f32, steps: usize) -> Attack {
        Attack { original: image.to_vec(), x: image.to_vec(), target, eps, step_size: step, steps, history: vec![] }
    }

    /// An attack on `image` from values [`schema`]'s `resolve` returned.
    pub fn from_values(image: &[f32], v: &Map<String, Value>) -> Attack {
        Attack::new(image, v.int("target"), v.num("eps") as f32 / 255.0, v.num("step") as f32 / 255.0, v.int("steps"))
    }

    /// A fooling image of `size` values from values [`schema`]'s `resolve` returned.
    pub fn fooling_from_values(size: usize, v: &Map<String, Value>) -> Attack {
        Attack::fooling(size, v.int("target"), v.num("step") as f32 / 255.0, v.int("steps"), v.num("seed") as u64)
    }

    /// A fooling image's start: uniform noise in [0, 1] from `seed`.
    pub fn fooling(size: usize, target: usize, step: f32, steps: usize, seed: u64) -> Attack {
        let mut rng = crate::rng::SplitMix64(seed);
        let noise: Vec<f32> = (0..size).map(|_| rng.uniform() as f32).collect();
        Attack::new(&noise, target, 1.0, step, steps)
    }

    pub fn done(&self) -> bool {
        self.history.len() >= self.steps
    }

    /// One step; returns the target's loss before it (-log p(target)).
    pub async fn step(&mut self, at: &mut Attributor<'_>) -> Result<f32, Error> {
        let (v, g) = at.input_grads(&self.x, 1, &Objective::Loss { label: self.target }, ReluRule::Gradient).await?;
        for ((v, g), x0) in self.x.iter_mut().zip(&g).zip(&self.original) {
            *v = (*v - self.step_size * sign(*g)).clamp(x0 - self.eps, x0 + self.eps).clamp(0.0, 1.0);
        }
        let loss = v.first().copied().unwrap_or(0.0);
        self.history.push(loss);
        Ok(loss)
    }
}

/// Accuracy of the net on `n` images (NCHW) with `labels` after FGSM at each epsilon: the
/// accuracy-versus-epsilon curve. Returns (epsilon, correct) pairs.
pub async fn fgsm_curve(at: &mut Attributor<'_>, images: &[f32], labels: &[usize], epsilons: &[f32]) -> Result<Vec<(f32, usize)>, Error> {
    let size = images.len() / labels.len().max(1);
    let mut correct = vec![0usize; epsilons.len()];
    for (image, &label) in images.chunks(size).zip(labels) {
        let (_, g) = at.input_grads(image, 1, &Objective::Loss { label }, ReluRule::Gradient).await?;
        let batch: Vec<f32> =
            epsilons.iter().flat_map(|&eps| image.iter().zip(&g).map(move |(x, g)| (x + eps * sign(*g)).clamp(0.0, 1.0))).collect();
        let out = at.outputs(&batch, epsilons.len()).await?;
        let k = out.len() / epsilons.len();
        for (e, row) in out.chunks(k).enumerate() {
            correct[e] += (crate::train::argmax(row) == label) as usize;
        }
    }
    Ok(epsilons.iter().copied().zip(correct).collect())
}
