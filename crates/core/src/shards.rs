//! Data-parallel training on the fused CPU path: a training step's batch is cut into shards, each
//! shard's gradient is computed on its own (here or on a pool worker), and the step's gradient is
//! their sum, taken in shard order.
//!
//! The cut depends only on the net and the batch size ([`plan`]), never on how many workers there
//! are, and a shard's numbers are the same wherever it runs (its dropout masks continue the
//! batch's stream from its first example, its loss is averaged over the whole batch): so training
//! on one worker and on N gives the same weights bit for bit. A worker that fails or is gone only
//! means its shards are computed here.
//!
//! Where it does not pay, the batch stays whole (one shard): a batch under 2 x [`MIN_SHARD`]
//! examples, a net cheaper than [`MIN_MACS`] multiply-adds per example (the messages would cost
//! more than the work), and a net whose training forward reads the whole batch (batchnorm's
//! statistics: [`crate::layers::Fused::batch_statistics`]).

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;

use crate::Error;
use crate::spec::NetSpec;

/// The fewest examples in a shard.
pub const MIN_SHARD: usize = 10;
/// The most shards in a step.
pub const MAX_SHARDS: usize = 8;
/// The fewest multiply-adds per example (forward) of a net whose batches are cut.
pub const MIN_MACS: u64 = 100_000;

/// Multiply-adds per example of a net's forward pass: each layer's weight tensor applied at each
/// output position (convolutions, fully connected layers; the others are not counted).
pub fn macs(spec: &NetSpec) -> u64 {
    spec.layers
        .iter()
        .map(|l| {
            let per: usize = l.params().first().filter(|p| p.trainable).map_or(0, |p| p.shape.iter().product());
            (per * l.out_shape[1] * l.out_shape[2]) as u64
        })
        .sum()
}

/// The shards of a training step's batch of `batch` examples (ranges of the batch, in order).
pub fn plan(spec: &NetSpec, batch: usize) -> Vec<Range<usize>> {
    let whole = spec.layers.iter().skip(1).any(|l| l.kind.ops().fused(l).is_some_and(|f| f.batch_statistics()));
    let count = if whole || macs(spec) < MIN_MACS { 1 } else { (batch / MIN_SHARD).clamp(1, MAX_SHARDS) };
    split(batch, count)
}

/// `0..n` in `parts` contiguous ranges of as equal sizes as can be (the first ones one longer).
pub fn split(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let (size, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = size + usize::from(i < extra);
            start += len;
            start - len..start
        })
        .collect()
}

/// A fingerprint of a net's layers and shapes: a worker checks it holds the same net.
pub fn fingerprint(spec: &NetSpec) -> u64 {
    // FNV-1a over each layer's description, inputs and shapes.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for l in &spec.layers {
        eat(l.describe().as_bytes());
        eat(format!("{:?}{:?}{:?}", l.inputs, l.in_shape, l.out_shape).as_bytes());
    }
    h
}

/// Shards of one training step for a worker: the current weights (every parameter, flat, in layer
/// and parameter order), the shards' examples (NCHW) and labels, and where they are in the step.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardTask {
    /// [`fingerprint`] of the net.
    pub net: u64,
    pub weights: Vec<f32>,
    /// The examples of `shards`, one after the other.
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    /// Ranges of the step's batch (contiguous, in order: `images` holds them one after the other).
    pub shards: Vec<Range<usize>>,
    /// The step's batch size (the loss is its mean over the whole batch).
    pub batch: usize,
    /// The trainer's seed and the step's number (dropout's masks).
    pub seed: u64,
    pub step: u64,
}

/// What a worker gives back for a [`ShardTask`]: each shard's weight gradients (flat, as the
/// weights), the sum of its examples' losses and how many it classified correctly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShardOut {
    /// One flat gradient per shard, one after the other.
    pub grads: Vec<f32>,
    pub losses: Vec<f64>,
    pub correct: Vec<u32>,
}

impl ShardOut {
    /// Whether it answers a task of `k` shards with `params` values per gradient.
    pub fn fits(&self, k: usize, params: usize) -> bool {
        self.grads.len() == k * params && self.losses.len() == k && self.correct.len() == k
    }
}

/// The answer of a worker: its shards' gradients, or why it has none.
pub type Pending = Pin<Box<dyn Future<Output = Result<ShardOut, Error>>>>;

/// Workers that compute shards of training steps (the browser's pool, `crates/wasm`).
pub trait ShardPool {
    /// How many workers there are besides this engine.
    fn workers(&self) -> usize;
    /// Sends `task` to worker `worker` (0-based) now; the answer comes when it is awaited.
    fn run(&self, worker: usize, task: ShardTask) -> Pending;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_in_order() {
        assert_eq!(split(20, 2), vec![0..10, 10..20]);
        assert_eq!(split(25, 3), vec![0..9, 9..17, 17..25]);
        assert_eq!(split(3, 8), vec![0..1, 1..2, 2..3]);
        assert_eq!(split(5, 1), vec![0..5]);
    }
}
