//! Training: minibatch gradient descent on the softmax cross-entropy of the class scores, through
//! Burn's autodiff over the whole network, with ConvNetJS's six trainers (SGD, momentum, Nesterov,
//! Adagrad, Adadelta, Adam) and L1/L2 weight decay. Steps run in chunks with one read-back per
//! chunk (one sync on WebGPU); a chunk whose loss or weights stop being finite is undone as a whole.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Tensor, TensorData};

use crate::net::{LayerParams, Mode, Net, ParamTensor, TrainPass};
use crate::settings::{Field, Resolved, Schema};
use crate::{Error, read, read_all};
use serde_json::{Map, Value, json};

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Sgd,
    Momentum,
    Nesterov,
    Adagrad,
    Adadelta,
    Adam,
}

impl Method {
    pub const ALL: [Method; 6] = [Method::Sgd, Method::Momentum, Method::Nesterov, Method::Adagrad, Method::Adadelta, Method::Adam];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sgd => "sgd",
            Method::Momentum => "momentum",
            Method::Nesterov => "nesterov",
            Method::Adagrad => "adagrad",
            Method::Adadelta => "adadelta",
            Method::Adam => "adam",
        }
    }

    pub fn parse(s: &str) -> Result<Method, Error> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| Error::Input(format!("unknown trainer '{s}'; expected sgd, momentum, nesterov, adagrad, adadelta or adam")))
    }

    /// The epsilon ConvNetJS's demos use: 1e-6 for Adadelta, 1e-8 otherwise.
    pub fn default_eps(self) -> f64 {
        if self == Method::Adadelta { 1e-6 } else { 1e-8 }
    }
}

/// Trainer settings; all of them may change between steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub method: Method,
    /// Unused by Adadelta.
    pub learning_rate: f64,
    /// Momentum and Nesterov.
    pub momentum: f64,
    pub batch_size: usize,
    /// Weight decay on conv and fc weights (not biases or batchnorm), added to the batch-mean
    /// gradient as PyTorch does: `g += l2 * w + l1 * sign(w)`.
    pub l1: f64,
    pub l2: f64,
    /// Adam.
    pub beta1: f64,
    pub beta2: f64,
    /// Adadelta's decay.
    pub rho: f64,
    /// None: [`Method::default_eps`].
    pub eps: Option<f64>,
    /// Dropout's masks come from this seed and the step number ([`crate::net::dropout_mask`]).
    pub seed: u64,
}

/// The trainer settings: keys, defaults (ConvNetJS's MNIST demo: batch 20, L2 0.001; here SGD
/// with momentum 0.9 at 0.01) and ranges, written once.
pub fn schema() -> Schema {
    Schema::new(
        "trainer",
        vec![
            Field::choice("method", "method", Method::ALL.iter().map(|m| m.as_str()).collect(), "momentum"),
            Field::number("learningRate", "learning rate", 0.01, 1e-6, f64::INFINITY, 0.001)
                .help("Unused by Adadelta. No upper bound: a rate that makes training diverge is reported and its steps undone"),
            Field::number("momentum", "momentum", 0.9, 0.0, 0.999, 0.01).group("momentum"),
            Field::integer("batchSize", "batch size", 20, 1, 4096),
            Field::number("l1", "L1 decay", 0.0, 0.0, 1.0, 0.0001).help("On conv and fc weights (not biases or batchnorm)"),
            Field::number("l2", "L2 decay", 0.001, 0.0, 1.0, 0.0001).help("On conv and fc weights (not biases or batchnorm)"),
            Field::number("beta1", "β1", 0.9, 0.0, 0.9999, 0.001).group("adam"),
            Field::number("beta2", "β2", 0.999, 0.0, 0.9999, 0.001).group("adam"),
            Field::number("rho", "ρ", 0.95, 0.0, 0.9999, 0.01).group("adadelta"),
            Field::number("eps", "ε", 1e-8, 1e-12, 1.0, 1e-8).optional().help("auto: 1e-6 for Adadelta, 1e-8 otherwise"),
            Field::integer("seed", "seed", 1, 0, 1 << 32).help("The data order and dropout's masks"),
        ],
    )
}

impl Default for TrainConfig {
    /// The schema's defaults.
    fn default() -> Self {
        TrainConfig::from_values(&schema().resolve(&Value::Null, false).expect("the defaults are valid")).expect("the defaults are valid")
    }
}

impl TrainConfig {
    /// The settings from values [`Schema::resolve`] returned; checked.
    pub fn from_values(v: &Map<String, Value>) -> Result<TrainConfig, Error> {
        let c = TrainConfig {
            method: Method::parse(v.text("method"))?,
            learning_rate: v.num("learningRate"),
            momentum: v.num("momentum"),
            batch_size: v.int("batchSize"),
            l1: v.num("l1"),
            l2: v.num("l2"),
            beta1: v.num("beta1"),
            beta2: v.num("beta2"),
            rho: v.num("rho"),
            eps: v["eps"].as_f64(),
            seed: v.num("seed") as u64,
        };
        c.validate()?;
        Ok(c)
    }

    /// The values, by the schema's keys (`eps` shows the method's when it is automatic).
    pub fn to_values(&self) -> Map<String, Value> {
        let v = json!({
            "method": self.method.as_str(), "learningRate": self.learning_rate, "momentum": self.momentum,
            "batchSize": self.batch_size, "l1": self.l1, "l2": self.l2, "beta1": self.beta1, "beta2": self.beta2,
            "rho": self.rho, "eps": self.eps, "seed": self.seed,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    /// These settings changed by `patch` (any of the schema's keys; the others stay).
    pub fn patched(&self, patch: &Value) -> Result<TrainConfig, Error> {
        TrainConfig::from_values(&schema().resolve_over(patch, Some(&self.to_values()), false)?)
    }

    /// Checks the ranges, with a message naming the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str, v: f64, want: &str| Err(Error::Input(format!("trainer: {what} is {v}; it must be {want}")));
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        if self.batch_size == 0 || self.batch_size > 4096 {
            return bad("the batch size", self.batch_size as f64, "between 1 and 4096");
        }
        if self.method != Method::Adadelta && !finite_pos(self.learning_rate) {
            return bad("the learning rate", self.learning_rate, "a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("the momentum", self.momentum, "at least 0 and below 1");
        }
        if !(self.l1.is_finite() && self.l1 >= 0.0) {
            return bad("L1 decay", self.l1, "0 or more");
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad("L2 decay", self.l2, "0 or more");
        }
        for (what, v) in [("beta1", self.beta1), ("beta2", self.beta2), ("rho", self.rho)] {
            if !(0.0..1.0).contains(&v) {
                return bad(what, v, "at least 0 and below 1");
            }
        }
        if let Some(e) = self.eps
            && !finite_pos(e)
        {
            return bad("epsilon", e, "a positive number");
        }
        Ok(())
    }
}

/// Per-parameter optimizer state: velocity / squared-gradient sums / Adam's moments.
#[derive(Clone, Default)]
struct Slots {
    a: Option<Tensor<1>>,
    b: Option<Tensor<1>>,
}

#[derive(Clone)]
pub struct Optimizer {
    config: TrainConfig,
    slots: Vec<Vec<Slots>>,
    /// Steps taken (Adam's bias correction).
    pub steps: u64,
    /// Training steps taken (never reset: dropout's masks follow it).
    pub trained: u64,
    /// Whether each parameter gets weight decay.
    decay: Vec<Vec<bool>>,
    /// Whether each parameter is learned (batchnorm's running statistics are not: the forward
    /// pass of a training step moves them, never the optimizer).
    trainable: Vec<Vec<bool>>,
}

impl Optimizer {
    pub fn new(net: &Net, config: TrainConfig) -> Optimizer {
        let decay = net.spec.layers.iter().map(|l| l.params().iter().map(|p| p.decay).collect()).collect();
        let trainable = net.spec.layers.iter().map(|l| l.params().iter().map(|p| p.trainable).collect()).collect();
        Optimizer {
            config,
            slots: net.params.iter().map(|l| vec![Slots::default(); l.len()]).collect(),
            steps: 0,
            trained: 0,
            decay,
            trainable,
        }
    }

    pub fn config(&self) -> TrainConfig {
        self.config
    }

    /// New settings; switching the method starts its state afresh.
    pub fn set_config(&mut self, config: TrainConfig) {
        if config.method != self.config.method {
            self.slots.iter_mut().flatten().for_each(|s| *s = Slots::default());
            self.steps = 0;
        }
        self.config = config;
    }

    /// The update of one parameter `w` with gradient `g`: the new value (state updated in place).
    fn update(&mut self, li: usize, pi: usize, w: Tensor<1>, g: Tensor<1>) -> Tensor<1> {
        let c = self.config;
        let mut g = g;
        if self.decay[li][pi] {
            if c.l2 > 0.0 {
                g = g + w.clone() * c.l2;
            }
            if c.l1 > 0.0 {
                g = g + w.clone().sign() * c.l1;
            }
        }
        let eps = c.eps.unwrap_or(c.method.default_eps());
        let s = &mut self.slots[li][pi];
        let zeros = || w.zeros_like();
        let dx = match c.method {
            Method::Sgd => g * (-c.learning_rate),
            Method::Momentum => {
                let v = s.a.take().unwrap_or_else(zeros) * c.momentum - g * c.learning_rate;
                s.a = Some(v.clone());
                v
            }
            Method::Nesterov => {
                // ConvNetJS's form: v' = mu v + lr g; dx = mu v - (1 + mu) v'.
                let v = s.a.take().unwrap_or_else(zeros);
                let v2 = v.clone() * c.momentum + g * c.learning_rate;
                s.a = Some(v2.clone());
                v * c.momentum - v2 * (1.0 + c.momentum)
            }
            Method::Adagrad => {
                let gsum = s.a.take().unwrap_or_else(zeros) + g.clone().powi_scalar(2);
                s.a = Some(gsum.clone());
                g * (-c.learning_rate) / (gsum + eps).sqrt()
            }
            Method::Adadelta => {
                let gsum = s.a.take().unwrap_or_else(zeros) * c.rho + g.clone().powi_scalar(2) * (1.0 - c.rho);
                let xsum = s.b.take().unwrap_or_else(zeros);
                let dx = ((xsum.clone() + eps) / (gsum.clone() + eps)).sqrt() * g.neg();
                s.b = Some(xsum * c.rho + dx.clone().powi_scalar(2) * (1.0 - c.rho));
                s.a = Some(gsum);
                dx
            }
            Method::Adam => {
                let t = (self.steps + 1) as i32;
                let m = s.a.take().unwrap_or_else(zeros) * c.beta1 + g.clone() * (1.0 - c.beta1);
                let v = s.b.take().unwrap_or_else(zeros) * c.beta2 + g.powi_scalar(2) * (1.0 - c.beta2);
                let mhat = m.clone() / (1.0 - c.beta1.powi(t));
                let vhat = v.clone() / (1.0 - c.beta2.powi(t));
                s.a = Some(m);
                s.b = Some(v);
                mhat * (-c.learning_rate) / (vhat.sqrt() + eps)
            }
        };
        w + dx
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
    let mut outs = net.forward_upto(x, net.spec.score_layer(), params);
    outs.pop().expect("the score layer's output").flatten(1, 3)
}

/// What a chunk of training steps did.
#[derive(Debug, Clone, Default)]
pub struct ChunkStats {
    /// Mean cross-entropy of each step's batch, before its update.
    pub losses: Vec<f32>,
    /// Correctly classified examples of each step's batch, before its update.
    pub correct: Vec<u32>,
    pub examples: usize,
    /// Wall time of the forward passes (with the loss), and of the backward passes with the updates.
    /// On WebGPU work is queued, so only their sum with `sync_ms` is meaningful.
    pub forward_ms: f64,
    pub backward_ms: f64,
    /// The time waiting for the chunk's one read-back.
    pub sync_ms: f64,
    /// Whether every weight after the chunk is finite.
    pub weights_finite: bool,
    /// Examples of its steps computed by pool workers (data-parallel training, [`crate::shards`]);
    /// the forward and backward times are this engine's, for the others.
    pub pooled: usize,
}

/// Runs one step per batch, committing each update, and reads the losses and scores back once at
/// the end. Every step is taken, whatever its loss: the caller judges the losses and
/// `weights_finite` (see `crate::session`, which restores a diverged run to its last good step).
/// Returns the statistics and the state before the chunk's last step. On an error (a bad batch, a
/// failed read-back) the net and optimizer are as before the chunk. `clock` gives milliseconds.
pub async fn train_chunk(
    net: &mut Net,
    opt: &mut Optimizer,
    batches: &[(Vec<f32>, Vec<usize>)],
    clock: &dyn Fn() -> f64,
) -> Result<(ChunkStats, Saved), Error> {
    opt.config.validate()?;
    if batches.is_empty() {
        return Err(Error::Input("a training chunk needs at least one batch".into()));
    }
    let last = batches.len() - 1;
    let mut before_last = None;
    let snapshot = (net.params.clone(), opt.clone());
    let mut stats = ChunkStats::default();
    let mut losses = vec![];
    let mut all_scores = vec![];
    let mut labels_all = vec![];
    let inputs = batches.iter().map(|(x, y)| batch_tensors(net, x, y)).collect::<Result<Vec<_>, _>>()?;
    for (k, ((x, y), (_, labels))) in inputs.into_iter().zip(batches).enumerate() {
        if k == last {
            before_last = Some(Saved { params: net.params.clone(), opt: opt.clone() });
        }
        let t0 = clock();
        let n = labels.len() as f64;
        // Only learned parameters are tracked; batchnorm's running statistics are constants of
        // the graph, replaced after the step by what the forward pass recorded.
        let tracked: Vec<Vec<ParamTensor>> = net
            .params
            .iter()
            .zip(&opt.trainable)
            .map(|(l, t)| l.iter().zip(t).map(|(p, &t)| if t { p.tracked() } else { p.constant() }).collect())
            .collect();
        let mut pass = TrainPass::new(opt.config.seed, opt.trained);
        let mut outs = net.forward_upto_in(x.autodiff(), net.spec.score_layer(), &tracked, &mut Mode::Train(&mut pass));
        let z: Tensor<2> = outs.pop().expect("the score layer's output").flatten(1, 3);
        let loss = (log_softmax(z.clone(), 1) * y.autodiff()).sum().neg() / n;
        let t1 = clock();
        let grads = loss.backward();
        for (li, layer) in tracked.iter().enumerate() {
            for (pi, p) in layer.iter().enumerate() {
                if !opt.trainable[li][pi] {
                    continue;
                }
                let Some(g) = p.grad_flat(&grads) else { continue };
                let w = opt.update(li, pi, net.params[li][pi].flat(), g);
                net.params[li][pi] = net.params[li][pi].with_flat(w);
            }
        }
        for (li, pi, v) in pass.updates {
            net.params[li][pi] = net.params[li][pi].with_flat(v);
        }
        opt.steps += 1;
        opt.trained += 1;
        stats.forward_ms += t1 - t0;
        stats.backward_ms += clock() - t1;
        losses.push(loss.without_autodiff());
        all_scores.push(z.without_autodiff().flatten::<1>(0, 1));
        labels_all.push(labels);
        stats.examples += labels.len();
    }
    let t2 = clock();
    let sumsq = net.params.iter().flatten().fold(Tensor::<1>::zeros([1], &net.device), |acc, p| acc + p.flat().powi_scalar(2).sum());
    let parts = vec![Tensor::cat(losses, 0), Tensor::cat(all_scores, 0), sumsq];
    let read = read_all(parts).await;
    stats.sync_ms = clock() - t2;
    let undo = |net: &mut Net, opt: &mut Optimizer| {
        net.params = snapshot.0.clone();
        *opt = snapshot.1.clone();
    };
    let values = match read {
        Ok(v) => v,
        Err(e) => {
            undo(net, opt);
            return Err(e);
        }
    };
    let (loss_v, scores_v, norm) = (&values[0], &values[1], values[2][0]);
    // A sum of squares overflows for huge but finite weights: treated as not finite (diverged).
    stats.weights_finite = norm.is_finite();
    let k = net.spec.classes();
    let mut rows = scores_v.chunks(k);
    for labels in labels_all {
        let correct = labels.iter().filter(|&&l| rows.next().is_some_and(|r| argmax(r) == l)).count();
        stats.correct.push(correct as u32);
    }
    stats.losses = loss_v.clone();
    Ok((stats, before_last.expect("a chunk has a last step")))
}

/// The net's parameters and the optimizer's state, to come back to (cheap: tensors are shared).
#[derive(Clone)]
pub struct Saved {
    pub params: Vec<LayerParams>,
    pub opt: Optimizer,
}

/// One step on one batch; returns the mean cross-entropy loss before the step (not judged: see
/// [`train_chunk`]).
pub async fn step(net: &mut Net, opt: &mut Optimizer, images: &[f32], labels: &[usize]) -> Result<f32, Error> {
    let (stats, _) = train_chunk(net, opt, &[(images.to_vec(), labels.to_vec())], &|| 0.0).await?;
    Ok(stats.losses[0])
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |b, (i, &s)| if s > v[b] { i } else { b })
}

/// Class probabilities (softmax of the scores) for a batch of `n` images, n x classes.
pub async fn probabilities(net: &Net, images: &[f32], n: usize) -> Result<Vec<f32>, Error> {
    let (x, _) = batch_tensors(net, images, &vec![0; n])?;
    read(softmax(scores(net, x, &net.params), 1).flatten::<1>(0, 1)).await
}

/// Predicted classes for a batch.
pub async fn predict(net: &Net, images: &[f32], n: usize) -> Result<Vec<usize>, Error> {
    let p = probabilities(net, images, n).await?;
    Ok(p.chunks(net.spec.classes()).map(argmax).collect())
}
