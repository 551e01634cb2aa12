//! A fused CPU training path for the small ConvNetJS-style nets (conv, pool, fc, activations,
//! dropout; softmax cross-entropy on the scores): the same math as [`crate::train`], done on f32
//! slices with one large GEMM per layer and direction (the `gemm` crate, SIMD natively and in
//! wasm) and buffers kept between steps. Burn's per-operation overhead (allocation, layout copies,
//! a convolution-shaped weight gradient) cost more than the arithmetic at these sizes; see
//! docs/ARCHITECTURE.md. `tests/cpu_train.rs` checks it against the Burn path step by step.
//!
//! Activations are kept channel-major, `[C, N, H, W]`, so that a convolution over the whole batch
//! is a single GEMM `W[Cout, K] x cols[K, N*H*W]` whose result is already in that layout.

use crate::Error;
use crate::grad::{Objective, ReluRule};
use crate::layers::act::activation_back;
use crate::layers::{Fused, FusedBackward, FusedForward, TrainStep};
use crate::net::Net;
use crate::shards::{self, ShardOut, ShardPool, ShardTask};
use crate::spec::{Activation, Layer, LayerKind, NetSpec, PoolMode};
use crate::train::{ChunkStats, Method, TrainConfig, argmax};
use crate::vis::layers::{LayerProbe, Probe, Values, WeightProbe};

/// Whether a spec runs on this path: every layer up to the scores has a fused part
/// (`layers::Fused`: conv but dilated ones, pool, global pool, fc,
/// activations but hard swish, dropout, batchnorm, scale, flatten, add, concat), in a chain or a graph
/// (add and concat read several layers; a layer read by several gets their gradients summed).
/// The others (dilated convolutions, reshape, mul, pad) go through Burn.
pub fn supported(spec: &NetSpec) -> bool {
    spec.layers[..=spec.score_layer()].iter().all(|l| (l.index == 0 || !l.inputs.is_empty()) && l.kind.ops().fused(l).is_some())
}

/// Whether the layers after `from` (up to the scores) read nothing before it, so that a forward
/// pass can start from layer `from`'s output ([`CpuTrainer::layer_output_from`]).
pub fn starts_past(spec: &NetSpec, from: usize) -> bool {
    spec.layers[..=spec.score_layer()].iter().skip(from + 1).all(|l| l.inputs.iter().all(|&j| j >= from))
}

/// The one rule for which path runs, for every front end (the page's facade, the CLI): the fused
/// path on the CPU backend for the nets it takes, Burn otherwise (WebGPU, graphs, batchnorm).
pub fn applies(backend: crate::backend::Backend, spec: &NetSpec) -> bool {
    backend == crate::backend::Backend::Cpu && supported(spec)
}

/// The fused path's state for `net` (its current weights), when [`applies`] says it runs.
pub async fn for_net(net: &Net, backend: crate::backend::Backend, config: TrainConfig) -> Result<Option<CpuTrainer>, Error> {
    if !applies(backend, &net.spec) {
        return Ok(None);
    }
    Ok(Some(CpuTrainer::new(net, net.read_weights().await?, config)))
}

/// The fused part of a layer that [`supported`] accepted.
fn fused(l: &Layer) -> &dyn Fused {
    l.kind.ops().fused(l).expect("checked by supported()")
}

/// `dst[m x n] = lhs[m x k] * rhs[k x n]`, each given by (pointer, column stride, row stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: (&[f32], isize, isize), rhs: (&[f32], isize, isize)) {
    gemm_into(m, n, k, dst, lhs, rhs, false);
}

/// `dst[m x n] += lhs[m x k] * rhs[k x n]` (a convolution adds its products to its bias this way,
/// saving a pass over its output; the sum is the same, bit for bit).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_add(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: (&[f32], isize, isize), rhs: (&[f32], isize, isize)) {
    gemm_into(m, n, k, dst, lhs, rhs, true);
}

#[allow(clippy::too_many_arguments)]
fn gemm_into(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: (&[f32], isize, isize), rhs: (&[f32], isize, isize), add: bool) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: the callers pass slices whose extents cover every index the strides reach.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            add,
            lhs.0.as_ptr(),
            lhs.1,
            lhs.2,
            rhs.0.as_ptr(),
            rhs.1,
            rhs.2,
            if add { 1.0f32 } else { 0.0f32 },
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The gradient of `objective` with respect to one image's output `out` of the layer it reads,
/// and its value.
fn seed(spec: &NetSpec, objective: &Objective, out: &[f32], seed: &mut [f32]) -> f32 {
    seed.fill(0.0);
    let softmax = |z: &[f32]| {
        let mut p = z.to_vec();
        softmax_in_place(&mut p);
        p
    };
    match objective {
        Objective::Class(i) | Objective::Neuron { index: i, .. } => {
            seed[*i] = 1.0;
            out[*i]
        }
        Objective::Channel { layer, channel } => {
            let [_, th, tw] = spec.layers[*layer].out_shape;
            let hw = th * tw;
            seed[channel * hw..(channel + 1) * hw].fill(1.0 / hw as f32);
            out[channel * hw..(channel + 1) * hw].iter().sum::<f32>() / hw as f32
        }
        Objective::Seed { grad, .. } => {
            seed.copy_from_slice(grad);
            out.iter().zip(grad).map(|(o, g)| o * g).sum()
        }
        Objective::Prob(k) => {
            let p = softmax(out);
            for (j, (g, pj)) in seed.iter_mut().zip(&p).enumerate() {
                *g = p[*k] * ((j == *k) as u8 as f32 - pj);
            }
            p[*k]
        }
        Objective::Loss { label } => {
            let p = softmax(out);
            for (k, (g, pk)) in seed.iter_mut().zip(&p).enumerate() {
                *g = pk - (k == *label) as u8 as f32;
            }
            -p[*label].max(f32::MIN_POSITIVE).ln()
        }
    }
}

/// A conv or fc layer's backward, the part both share: the pre-activation gradient `gz` (from the
/// output gradient) and, when `need_dw`, the weight gradient `dW[m, k] = gz[m, n] x cols^T[n, k]`
/// and the bias gradient (the row sums of `gz`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grads(
    buf: &mut Buf,
    activation: Option<Activation>,
    rule: ReluRule,
    need_dw: bool,
    g: &mut [Vec<f32>],
    m: usize,
    k: usize,
    n: usize,
) {
    pre_activation_grads(buf, activation, rule);
    if !need_dw {
        return;
    }
    matmul(m, k, n, &mut g[0], (&buf.gz, 1, n as isize), (&buf.cols, n as isize, 1));
    bias_grads(&buf.gz, n, g);
}

/// `buf.gz`: the gradient at a conv or fc layer's pre-activation, from the output's (`buf.grad`).
pub(crate) fn pre_activation_grads(buf: &mut Buf, activation: Option<Activation>, rule: ReluRule) {
    buf.gz.clear();
    buf.gz.extend_from_slice(&buf.grad);
    activation_back(activation, rule, &buf.out, &mut buf.gz);
}

/// The bias gradient (when the layer has a bias): the row sums of `gz` (`n` columns).
pub(crate) fn bias_grads(gz: &[f32], n: usize, g: &mut [Vec<f32>]) {
    if let Some(db) = g.get_mut(1) {
        for (d, row) in db.iter_mut().zip(gz.chunks(n)) {
            *d = row.iter().sum();
        }
    }
}

/// Softmax of one row of scores, in place.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// The update of one parameter tensor on the host: the same rules as [`crate::train::Optimizer`].
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn update(c: &TrainConfig, t: u64, decay: bool, w: &mut [f32], g: &[f32], a: &mut Vec<f32>, b: &mut Vec<f32>) {
    let n = w.len();
    if a.len() != n {
        *a = vec![0.0; n];
    }
    if b.len() != n && matches!(c.method, Method::Adadelta | Method::Adam) {
        *b = vec![0.0; n];
    }
    let (lr, mu) = (c.learning_rate as f32, c.momentum as f32);
    let eps = c.eps.unwrap_or(c.method.default_eps()) as f32;
    let (l1, l2) = (c.l1 as f32, c.l2 as f32);
    let (b1, b2, rho) = (c.beta1 as f32, c.beta2 as f32, c.rho as f32);
    let (c1, c2) = ((1.0 - c.beta1.powi(t as i32)) as f32, (1.0 - c.beta2.powi(t as i32)) as f32);
    for i in 0..n {
        let mut gi = g[i];
        if decay {
            if l2 > 0.0 {
                gi += w[i] * l2;
            }
            if l1 > 0.0 && w[i] != 0.0 {
                gi += l1.copysign(w[i]);
            }
        }
        let dx = match c.method {
            Method::Sgd => gi * -lr,
            Method::Momentum => {
                a[i] = a[i] * mu - gi * lr;
                a[i]
            }
            Method::Nesterov => {
                let v = a[i];
                a[i] = v * mu + gi * lr;
                v * mu - a[i] * (1.0 + mu)
            }
            Method::Adagrad => {
                a[i] += gi * gi;
                gi * -lr / (a[i] + eps).sqrt()
            }
            Method::Adadelta => {
                a[i] = a[i] * rho + gi * gi * (1.0 - rho);
                let dx = ((b[i] + eps) / (a[i] + eps)).sqrt() * -gi;
                b[i] = b[i] * rho + dx * dx * (1.0 - rho);
                dx
            }
            Method::Adam => {
                a[i] = a[i] * b1 + gi * (1.0 - b1);
                b[i] = b[i] * b2 + gi * gi * (1.0 - b2);
                (a[i] / c1) * -lr / ((b[i] / c2).sqrt() + eps)
            }
        };
        w[i] += dx;
    }
}

/// Working memory of one layer, reused between steps.
#[derive(Clone, Default)]
pub struct Buf {
    /// Output `[C, N, H, W]`.
    pub out: Vec<f32>,
    /// d loss / d output, same layout.
    pub grad: Vec<f32>,
    /// d loss / d pre-activation (scratch; `grad` stays d loss / d output).
    pub gz: Vec<f32>,
    /// Conv: im2col of the input `[K, N*Ho*Wo]`; fc: the input transposed `[in, N]`; dropout in
    /// training: its mask.
    pub cols: Vec<f32>,
    /// Conv/fc: gradient of `cols`.
    pub dcols: Vec<f32>,
    /// Max pool: the winning input position of each output (index within the input plane).
    pub arg: Vec<u32>,
    /// Conv by Winograd's F(2x2, 3x3) (inference): the transformed weights, input tiles and
    /// products (`crate::layers::conv::winograd`).
    pub wino: Vec<f32>,
}

/// Images per forward pass when only outputs are wanted ([`CpuTrainer::layer_output`]).
const INFER_CHUNK: usize = 4;

/// Training state on the host: weights, gradients, optimizer slots and buffers.
#[derive(Clone)]
pub struct CpuTrainer {
    spec: NetSpec,
    pub weights: Vec<Vec<Vec<f32>>>,
    grads: Vec<Vec<Vec<f32>>>,
    slots: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    decay: Vec<Vec<bool>>,
    /// Whether each parameter is trained (batchnorm's running statistics are not: a training
    /// step's forward pass moves them, [`Fused::after_step`]).
    trainable: Vec<Vec<bool>>,
    config: TrainConfig,
    pub steps: u64,
    /// Training steps taken (never reset: dropout's masks follow it).
    pub trained: u64,
    bufs: Vec<Buf>,
    /// Gradients of a branch point's readers, before they are summed ([`CpuTrainer::backward`]).
    scratch: Vec<Vec<f32>>,
    /// The sum of a step's shards' weight gradients ([`crate::shards`]), as `grads`.
    acc: Vec<Vec<Vec<f32>>>,
    /// [`shards::fingerprint`] of the net.
    net: u64,
}

impl CpuTrainer {
    /// From a net's current weights (read back by the caller: `net.read_weights()`).
    pub fn new(net: &Net, weights: Vec<Vec<Vec<f32>>>, config: TrainConfig) -> CpuTrainer {
        CpuTrainer::from_spec(net.spec.clone(), weights, config)
    }

    /// For `spec` with `weights` (one `Vec<f32>` per entry of each layer's params, sized as the
    /// spec says), on no device: the host is where it runs.
    pub fn from_spec(spec: NetSpec, weights: Vec<Vec<Vec<f32>>>, config: TrainConfig) -> CpuTrainer {
        let decay = spec.layers.iter().map(|l| l.params().iter().map(|p| p.decay).collect()).collect();
        let trainable = spec.layers.iter().map(|l| l.params().iter().map(|p| p.trainable).collect()).collect();
        CpuTrainer {
            grads: weights.iter().map(|l| l.iter().map(|p| vec![0.0; p.len()]).collect()).collect(),
            slots: weights.iter().map(|l| l.iter().map(|_| (vec![], vec![])).collect()).collect(),
            bufs: vec![Buf::default(); spec.layers.len()],
            scratch: vec![],
            acc: vec![],
            net: shards::fingerprint(&spec),
            spec,
            weights,
            decay,
            trainable,
            config,
            steps: 0,
            trained: 0,
        }
    }

    pub fn config(&self) -> TrainConfig {
        self.config
    }

    /// New settings; switching the method starts its state afresh.
    pub fn set_config(&mut self, config: TrainConfig) {
        if config.method != self.config.method {
            self.slots.iter_mut().flatten().for_each(|s| *s = (vec![], vec![]));
            self.steps = 0;
        }
        self.config = config;
    }

    /// The net with these weights, on `net`'s device.
    pub fn to_net(&self, net: &Net) -> Net {
        Net::with_weights(self.spec.clone(), self.weights.clone(), &net.device)
    }

    /// Forward pass of a batch (NCHW images), every layer's output kept in `bufs`; `train`: a
    /// training step's pass (dropout drops), else evaluation.
    #[inline(never)]
    fn forward(&mut self, images: &[f32], n: usize, train: Option<TrainStep>) {
        let [c0, h0, w0] = self.spec.input_shape();
        let p0 = h0 * w0;
        let input = &mut self.bufs[0].out;
        input.resize(c0 * n * p0, 0.0);
        for b in 0..n {
            for c in 0..c0 {
                input[(c * n + b) * p0..(c * n + b + 1) * p0].copy_from_slice(&images[(b * c0 + c) * p0..(b * c0 + c + 1) * p0]);
            }
        }
        self.forward_from(0, n, train);
    }

    /// The forward pass from layer `from`'s output (already in `bufs[from].out`) to the scores.
    fn forward_from(&mut self, from: usize, n: usize, train: Option<TrainStep>) {
        let last = self.spec.score_layer();
        for i in from + 1..=last {
            let (before, rest) = self.bufs.split_at_mut(i);
            let layer = &self.spec.layers[i];
            let [co, ho, wo] = layer.out_shape;
            let buf = &mut rest[0];
            buf.out.resize(co * n * ho * wo, 0.0);
            let xs: Vec<&[f32]> = layer.inputs.iter().map(|&j| &before[j].out[..]).collect();
            let io = FusedForward { layer, n, x: xs[0], xs: &xs, buf, w: &self.weights[i], train };
            fused(layer).forward(io);
        }
    }

    /// Backward pass from layer `from`'s output gradient (in `bufs[from].grad`), filling the
    /// `grad` of every layer below it and, if `weights`, `grads`; the input's gradient only if
    /// `input_grad`.
    /// A layer whose output feeds several (a graph's branch point) gets the sum of their
    /// gradients; layers `from` does not depend on get zeros.
    #[inline(never)]
    fn backward(&mut self, n: usize, from: usize, input_grad: bool, weights: bool, rule: ReluRule) {
        let layers = &self.spec.layers;
        // Which layers reach `from`, and how many times each output is read on the way.
        let mut reach = vec![false; from + 1];
        reach[from] = true;
        let mut readers = vec![0usize; from + 1];
        for i in (1..=from).rev() {
            if reach[i] {
                for &j in &layers[i].inputs {
                    reach[j] = true;
                    readers[j] += 1;
                }
            }
        }
        for j in 0..from {
            let b = &mut self.bufs[j];
            b.grad.clear();
            b.grad.resize(b.out.len(), 0.0);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        for i in (1..=from).rev() {
            let layer = &layers[i];
            if !reach[i] {
                self.grads[i].iter_mut().for_each(|g| g.fill(0.0));
                continue;
            }
            let (before, rest) = self.bufs.split_at_mut(i);
            // A gradient read once goes straight into the layer's `grad`; the others into
            // scratch, summed below.
            let ins = &layer.inputs;
            let direct = |p: usize| readers[ins[p]] == 1;
            let sizes: Vec<usize> = ins.iter().map(|&j| before[j].out.len()).collect();
            let mut slots: Vec<Option<&mut [f32]>> = (0..ins.len()).map(|_| None).collect();
            let mut xs: Vec<&[f32]> = vec![&[]; ins.len()];
            for (j, b) in before.iter_mut().enumerate() {
                let Buf { out, grad, .. } = b;
                let out: &Vec<f32> = out;
                for (p, _) in ins.iter().enumerate().filter(|&(_, &x)| x == j) {
                    xs[p] = out;
                }
                if let Some(p) = ins.iter().position(|&x| x == j)
                    && direct(p)
                {
                    slots[p] = Some(&mut grad[..]);
                }
            }
            if scratch.len() < ins.len() {
                scratch.resize(ins.len(), vec![]);
            }
            let mut dxs: Vec<&mut [f32]> = Vec::with_capacity(ins.len());
            for ((slot, sc), size) in slots.into_iter().zip(scratch.iter_mut()).zip(sizes) {
                dxs.push(match slot {
                    Some(d) => d,
                    None => {
                        sc.clear();
                        sc.resize(size, 0.0);
                        &mut sc[..]
                    }
                });
            }
            let mut dxs = dxs.into_iter();
            let io = FusedBackward {
                layer,
                n,
                xs: &xs,
                buf: &mut rest[0],
                dx: dxs.next().expect("a layer above the input reads one"),
                dx_rest: dxs.collect(),
                need_dx: ins.iter().any(|&j| j > 0 || input_grad),
                need_dw: weights,
                w: &self.weights[i],
                dw: &mut self.grads[i],
                rule,
            };
            fused(layer).backward(io);
            for (p, &j) in ins.iter().enumerate() {
                if !direct(p) {
                    self.bufs[j].grad.iter_mut().zip(&scratch[p]).for_each(|(g, s)| *g += s);
                }
            }
        }
        self.scratch = scratch;
    }

    /// One step: the batch's gradient (its shards' summed, [`crate::shards`]: on `pool`'s
    /// workers and here), then the update. Returns (mean loss, correct) and adds this engine's
    /// forward and backward times to `stats`.
    async fn step(
        &mut self,
        images: &[f32],
        labels: &[usize],
        clock: &dyn Fn() -> f64,
        stats: &mut ChunkStats,
        pool: Option<&dyn ShardPool>,
    ) -> (f32, u32) {
        let n = labels.len();
        let per = images.len() / n;
        let plan = shards::plan(&self.spec, n);
        let train = TrainStep { seed: self.config.seed, step: self.trained, first: 0 };
        self.trained += 1;
        let (mut loss, mut correct) = (0f64, 0u32);
        if plan.len() == 1 {
            (loss, correct) = self.shard_pass(images, labels, n, train, clock, stats);
        } else {
            // Groups of consecutive shards: the first here, the others on the pool's workers.
            let workers = pool.map_or(0, |p| p.workers()).min(plan.len() - 1);
            let groups = shards::split(plan.len(), workers + 1);
            let mut sent = Vec::with_capacity(workers);
            if let Some(pool) = pool.filter(|_| workers > 0) {
                let weights: Vec<f32> = self.weights.iter().flatten().flatten().copied().collect();
                for (w, g) in groups[1..].iter().enumerate() {
                    let part = plan[g.clone()].to_vec();
                    let (a, b) = (part[0].start, part[part.len() - 1].end);
                    let task = ShardTask {
                        net: self.net,
                        weights: weights.clone(),
                        images: images[a * per..b * per].to_vec(),
                        labels: labels[a..b].to_vec(),
                        shards: part,
                        batch: n,
                        seed: train.seed,
                        step: train.step,
                    };
                    sent.push((g.clone(), pool.run(w, task)));
                }
            }
            let params: usize = self.grads.iter().flatten().map(Vec::len).sum();
            let local = |me: &mut Self, k: usize, stats: &mut ChunkStats| {
                let r = plan[k].clone();
                let pass = TrainStep { first: r.start, ..train };
                let (l, c) = me.shard_pass(&images[r.start * per..r.end * per], &labels[r.clone()], n, pass, clock, stats);
                me.add_grads(k == 0, None);
                (l, c)
            };
            for k in groups[0].clone() {
                let (l, c) = local(self, k, stats);
                loss += l;
                correct += c;
            }
            for (g, pending) in sent {
                match pending.await {
                    Ok(out) if out.fits(g.len(), params) => {
                        stats.pooled += plan[g.clone()].iter().map(|r| r.len()).sum::<usize>();
                        for (j, _) in g.enumerate() {
                            self.add_grads(false, Some(&out.grads[j * params..(j + 1) * params]));
                            loss += out.losses[j];
                            correct += out.correct[j];
                        }
                    }
                    // A worker that failed: its shards are computed here (the same numbers).
                    _ => {
                        for k in g {
                            let (l, c) = local(self, k, stats);
                            loss += l;
                            correct += c;
                        }
                    }
                }
            }
            std::mem::swap(&mut self.grads, &mut self.acc);
        }
        let t1 = clock();
        self.steps += 1;
        let c = self.config;
        for (li, layer) in self.weights.iter_mut().enumerate() {
            for (pi, w) in layer.iter_mut().enumerate() {
                if !self.trainable[li][pi] {
                    continue;
                }
                let (a, b) = &mut self.slots[li][pi];
                update(&c, self.steps, self.decay[li][pi], w, &self.grads[li][pi], a, b);
            }
        }
        let last = self.spec.score_layer();
        for (i, layer) in self.spec.layers[..=last].iter().enumerate().skip(1) {
            fused(layer).after_step(layer, &self.bufs[i], &mut self.weights[i]);
        }
        stats.backward_ms += clock() - t1;
        ((loss / n as f64) as f32, correct)
    }

    /// Adds a shard's weight gradients (`flat`, else `grads`) to the step's sum; `first` (shard 0,
    /// always computed here) starts it.
    fn add_grads(&mut self, first: bool, flat: Option<&[f32]>) {
        match flat {
            _ if first => self.acc.clone_from(&self.grads),
            Some(flat) => self.acc.iter_mut().flatten().flatten().zip(flat).for_each(|(a, &g)| *a += g),
            None => self.acc.iter_mut().flatten().zip(self.grads.iter().flatten()).for_each(|(a, g)| {
                a.iter_mut().zip(g).for_each(|(a, &g)| *a += g);
            }),
        }
    }

    /// One shard of a training step (`images`, `labels`: its examples, from example `pass.first`
    /// of the step's batch of `batch`): forward, the gradient of the batch's mean softmax
    /// cross-entropy (so the shards' gradients add up to the batch's), backward, the weight
    /// gradients left in `grads`. Returns the sum of its examples' losses and how many it
    /// classified correctly; adds its times to `stats`.
    fn shard_pass(
        &mut self,
        images: &[f32],
        labels: &[usize],
        batch: usize,
        pass: TrainStep,
        clock: &dyn Fn() -> f64,
        stats: &mut ChunkStats,
    ) -> (f64, u32) {
        let n = labels.len();
        let t0 = clock();
        self.forward(images, n, Some(pass));
        let last = self.spec.score_layer();
        let k = self.spec.classes();
        let [c, h, w] = self.spec.layers[last].out_shape;
        let p = h * w;
        let buf = &mut self.bufs[last];
        buf.grad.resize(buf.out.len(), 0.0);
        let (mut loss, mut correct) = (0.0f64, 0u32);
        let mut z = vec![0f32; k];
        for b in 0..n {
            for ch in 0..c {
                for q in 0..p {
                    z[ch * p + q] = buf.out[(ch * n + b) * p + q];
                }
            }
            correct += (argmax(&z) == labels[b]) as u32;
            let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
            loss += (sum.ln() + max - z[labels[b]]) as f64;
            for ch in 0..c {
                for q in 0..p {
                    let j = ch * p + q;
                    let prob = (z[j] - max).exp() / sum;
                    buf.grad[(ch * n + b) * p + q] = (prob - (j == labels[b]) as u8 as f32) / batch as f32;
                }
            }
        }
        let t1 = clock();
        self.backward(n, last, false, true, ReluRule::Gradient);
        stats.forward_ms += t1 - t0;
        stats.backward_ms += clock() - t1;
        (loss, correct)
    }

    /// A pool worker's part of a training step ([`crate::shards`]): each of `task`'s shards'
    /// weight gradients at `task`'s weights (which become this trainer's), its loss and score.
    pub fn shard_grads(&mut self, task: &ShardTask) -> Result<ShardOut, Error> {
        if task.net != self.net {
            return Err(Error::Input("a training shard for another network than this engine's".into()));
        }
        let params: usize = self.weights.iter().flatten().map(Vec::len).sum();
        if task.weights.len() != params {
            return Err(Error::Input(format!("a training shard has {} weights; the network has {params}", task.weights.len())));
        }
        let per: usize = self.spec.input_shape().iter().product();
        let first = task.shards.first().map_or(0, |r| r.start);
        let mut at = first;
        for r in &task.shards {
            if r.start != at || r.end <= r.start || r.end > task.batch {
                return Err(Error::Input(format!("a training shard's examples {r:?} do not follow {at} in a batch of {}", task.batch)));
            }
            at = r.end;
        }
        if task.shards.is_empty() || task.labels.len() != at - first || task.images.len() != task.labels.len() * per {
            return Err(Error::Input(format!(
                "a training shard of {} labels and {} image values does not match its examples",
                task.labels.len(),
                task.images.len()
            )));
        }
        let classes = self.spec.classes();
        if let Some(&bad) = task.labels.iter().find(|&&l| l >= classes) {
            return Err(Error::Input(format!("label {bad} is out of range; the network has {classes} classes")));
        }
        let mut values = task.weights.iter();
        self.weights.iter_mut().flatten().flatten().for_each(|w| *w = *values.next().expect("counted above"));
        let mut out = ShardOut { grads: Vec::with_capacity(task.shards.len() * params), ..Default::default() };
        let mut stats = ChunkStats::default();
        for r in &task.shards {
            let pass = TrainStep { seed: task.seed, step: task.step, first: r.start };
            let (a, b) = (r.start - first, r.end - first);
            let (loss, correct) =
                self.shard_pass(&task.images[a * per..b * per], &task.labels[a..b], task.batch, pass, &|| 0.0, &mut stats);
            out.grads.extend(self.grads.iter().flatten().flatten());
            out.losses.push(loss);
            out.correct.push(correct);
        }
        Ok(out)
    }

    /// Layer `layer`'s output for a batch of `n` images (NCHW in and out), as
    /// `Net::forward_layer` gives it: any layer up to the scores, or the softmax after them.
    pub fn layer_output(&mut self, images: &[f32], n: usize, layer: usize) -> Result<Vec<f32>, Error> {
        let [d, h, w] = self.spec.input_shape();
        if n == 0 || images.len() != n * d * h * w {
            return Err(Error::Input(format!("{} values are not {n} inputs of {d}x{h}x{w}", images.len())));
        }
        let p0 = h * w;
        self.layer_output_from(0, n, layer, &mut |b0, m, input| {
            for b in 0..m {
                for c in 0..d {
                    input[(c * m + b) * p0..(c * m + b + 1) * p0]
                        .copy_from_slice(&images[((b0 + b) * d + c) * p0..((b0 + b) * d + c + 1) * p0]);
                }
            }
        })
    }

    /// Layer `layer`'s output (NCHW, as [`CpuTrainer::layer_output`]) for `n` examples given by
    /// their outputs of an earlier layer `from`: `fill(b0, m, out)` writes examples `b0..b0 + m`
    /// of layer `from`'s output into `out`, laid out `[C][m][H * W]` (this path's channel-major
    /// layout). The loss surface starts past its first layer this way.
    pub fn layer_output_from(
        &mut self,
        from: usize,
        n: usize,
        layer: usize,
        fill: &mut dyn FnMut(usize, usize, &mut [f32]),
    ) -> Result<Vec<f32>, Error> {
        let last = self.spec.score_layer();
        if layer > last + 1 || layer >= self.spec.layers.len() {
            return Err(Error::Input(format!("there is no layer {layer} to read; the network has {}", self.spec.layers.len())));
        }
        if from > layer.min(last) {
            return Err(Error::Input(format!("layer {layer} comes before layer {from}")));
        }
        if !starts_past(&self.spec, from) {
            return Err(Error::Input(format!("a layer after layer {from} reads one before it: the pass cannot start there")));
        }
        let at = layer.min(last);
        let [c, hh, ww] = self.spec.layers[at].out_shape;
        let p = hh * ww;
        let mut out = vec![0f32; n * c * p];
        let from_size = self.spec.layers[from].out_shape.iter().product::<usize>();
        // A few images at a time: each layer's im2col matrix then stays in the cache (the MNIST
        // net's forward is 3x faster at 4 to 8 images than at 256; 4 is the browser's best).
        for b0 in (0..n).step_by(INFER_CHUNK) {
            let m = INFER_CHUNK.min(n - b0);
            let start = &mut self.bufs[from].out;
            start.resize(m * from_size, 0.0);
            fill(b0, m, start);
            self.forward_from(from, m, None);
            let src = &self.bufs[at].out;
            for b in 0..m {
                for ch in 0..c {
                    out[((b0 + b) * c + ch) * p..((b0 + b) * c + ch + 1) * p].copy_from_slice(&src[(ch * m + b) * p..(ch * m + b + 1) * p]);
                }
            }
        }
        if layer > last {
            out.chunks_mut(c * p).for_each(softmax_in_place);
        }
        Ok(out)
    }

    /// Every layer's output for one image (CHW), layers 0 up to the scores.
    pub fn layer_outputs(&mut self, image: &[f32]) -> Vec<Vec<f32>> {
        self.layer_outputs_with(image, |outs| outs.iter().map(|o| o.to_vec()).collect())
    }

    /// [`CpuTrainer::layer_outputs`] lent to `f` as this path's own buffers (no copies).
    pub fn layer_outputs_with<R>(&mut self, image: &[f32], f: impl FnOnce(&[&[f32]]) -> R) -> R {
        self.forward(image, 1, None);
        f(&self.bufs[..=self.spec.score_layer()].iter().map(|b| b.out.as_slice()).collect::<Vec<_>>())
    }

    /// The layer view of one image, as [`crate::vis::layers::probe`] computes it through Burn:
    /// every layer's output, the gradient of `objective` with respect to it, and every weight with
    /// its gradient. None when the objective sits above the scores (Burn's path handles that).
    pub fn probe(&mut self, net: &Net, image: &[f32], objective: &Objective) -> Result<Option<Probe>, Error> {
        self.probe_with(net, image, objective, ReluRule::Gradient)
    }

    /// Checks a batch of `n` images and the objective; None when the objective reads a layer
    /// above the scores (Burn's path handles those).
    fn check_input(&self, net: &Net, images: &[f32], n: usize, objective: &Objective) -> Result<Option<usize>, Error> {
        objective.check(net)?;
        let [d, h, w] = self.spec.input_shape();
        if n == 0 || images.len() != n * d * h * w {
            net.input_tensor(images)?; // its message for one image
            return Err(Error::Input(format!("{} values are not {n} inputs of {d}x{h}x{w}", images.len())));
        }
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("the image has a non-finite value ({}) at index {i}", images[i])));
        }
        let target = objective.target_layer(net);
        Ok((target <= self.spec.score_layer()).then_some(target))
    }

    /// The objective's value for each of `n` images (NCHW) and its gradient with respect to each
    /// image (NCHW), with `rule` at every ReLU. None when the objective sits above the scores.
    pub fn input_grads(
        &mut self,
        net: &Net,
        images: &[f32],
        n: usize,
        objective: &Objective,
        rule: ReluRule,
    ) -> Result<Option<(Vec<f32>, Vec<f32>)>, Error> {
        let Some(target) = self.check_input(net, images, n, objective)? else { return Ok(None) };
        self.forward(images, n, None);
        let [c, h, w] = self.spec.layers[target].out_shape;
        let p = h * w;
        let size = c * p;
        let (mut one, mut g) = (vec![0f32; size], vec![0f32; size]);
        let mut values = Vec::with_capacity(n);
        let buf = &mut self.bufs[target];
        buf.grad.resize(buf.out.len(), 0.0);
        for b in 0..n {
            for ch in 0..c {
                one[ch * p..(ch + 1) * p].copy_from_slice(&buf.out[(ch * n + b) * p..(ch * n + b + 1) * p]);
            }
            values.push(seed(&self.spec, objective, &one, &mut g));
            for ch in 0..c {
                buf.grad[(ch * n + b) * p..(ch * n + b + 1) * p].copy_from_slice(&g[ch * p..(ch + 1) * p]);
            }
        }
        self.backward(n, target, true, false, rule);
        let [d, hh, ww] = self.spec.input_shape();
        let q = hh * ww;
        let src = &self.bufs[0].grad;
        let mut out = vec![0f32; n * d * q];
        for b in 0..n {
            for ch in 0..d {
                out[(b * d + ch) * q..(b * d + ch + 1) * q].copy_from_slice(&src[(ch * n + b) * q..(ch * n + b + 1) * q]);
            }
        }
        Ok(Some((values, out)))
    }

    /// [`CpuTrainer::probe`] with `rule` at every ReLU.
    pub fn probe_with(&mut self, net: &Net, image: &[f32], objective: &Objective, rule: ReluRule) -> Result<Option<Probe>, Error> {
        let Some(target) = self.check_input(net, image, 1, objective)? else { return Ok(None) };
        let last = self.spec.score_layer();
        let nl = self.spec.layers.len();
        self.forward(image, 1, None);
        // With one image, the channel-major buffers are plain CHW.
        let mut acts: Vec<Vec<f32>> = (0..=last).map(|i| self.bufs[i].out.clone()).collect();
        for _ in last + 1..nl {
            let mut p = acts[last].clone();
            softmax_in_place(&mut p);
            acts.push(p);
        }
        let mut g = vec![0f32; acts[target].len()];
        let value = seed(&self.spec, objective, &acts[target], &mut g);
        self.bufs[target].grad.clear();
        self.bufs[target].grad.extend_from_slice(&g);
        self.backward(1, target, true, true, rule);
        let mut layers = Vec::with_capacity(nl);
        for (i, layer) in self.spec.layers.iter().enumerate() {
            let shape = layer.out_shape.to_vec();
            let grad = if i <= target {
                self.bufs[i].grad.clone()
            } else {
                let mut g = vec![0f32; acts[i].len()];
                match (objective, &layer.kind) {
                    (Objective::Loss { label }, LayerKind::Softmax(_)) => g[*label] = -1.0 / acts[i][*label].max(1e-30),
                    (Objective::Prob(k), LayerKind::Softmax(_)) => g[*k] = 1.0,
                    _ => {}
                }
                g
            };
            let weights = layer
                .params()
                .into_iter()
                .enumerate()
                .map(|(pi, ps)| {
                    let g = if i <= target { self.grads[i][pi].clone() } else { vec![0.0; self.weights[i][pi].len()] };
                    WeightProbe {
                        name: ps.name,
                        value: Values::new(ps.shape.clone(), self.weights[i][pi].clone()),
                        grad: Values::new(ps.shape, g),
                    }
                })
                .collect();
            layers.push(LayerProbe { act: Values::new(shape.clone(), acts[i].clone()), grad: Values::new(shape, grad), weights });
        }
        let probs = self.spec.softmax_index().map(|i| acts[i].clone());
        Ok(Some(Probe { objective: value, probs, layers }))
    }

    /// The training state (weights, the optimizer's, the step counts), to come back to.
    pub fn save(&self) -> Saved {
        Saved { weights: self.weights.clone(), slots: self.slots.clone(), config: self.config, steps: self.steps, trained: self.trained }
    }

    pub fn restore(&mut self, saved: Saved) {
        Saved { weights: self.weights, slots: self.slots, config: self.config, steps: self.steps, trained: self.trained } = saved;
    }

    /// Runs one step per batch (the same contract as [`crate::train::train_chunk`]): every step is
    /// taken, whatever its loss; the caller judges the losses (see `crate::session`). Returns the
    /// statistics and the state before the chunk's last step.
    pub fn train_chunk(&mut self, batches: &[(Vec<f32>, Vec<usize>)], clock: &dyn Fn() -> f64) -> Result<(ChunkStats, Saved), Error> {
        // Without a pool nothing waits: the future is ready when first polled.
        let mut chunk = std::pin::pin!(self.train_chunk_with(batches, clock, None));
        match chunk.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => unreachable!("a chunk without a pool waits for nothing"),
        }
    }

    /// [`CpuTrainer::train_chunk`] with each step's shards ([`crate::shards`]) shared with
    /// `pool`'s workers: the same numbers, bit for bit.
    pub async fn train_chunk_with(
        &mut self,
        batches: &[(Vec<f32>, Vec<usize>)],
        clock: &dyn Fn() -> f64,
        pool: Option<&dyn ShardPool>,
    ) -> Result<(ChunkStats, Saved), Error> {
        self.config.validate()?;
        let [d, h, w] = self.spec.input_shape();
        let classes = self.spec.classes();
        for (x, y) in batches {
            if y.is_empty() || x.len() != y.len() * d * h * w {
                return Err(Error::Input(format!(
                    "a batch of {} labels needs {} image values, got {}",
                    y.len(),
                    y.len() * d * h * w,
                    x.len()
                )));
            }
            if let Some(&bad) = y.iter().find(|&&l| l >= classes) {
                return Err(Error::Input(format!("label {bad} is out of range; the network has {classes} classes")));
            }
        }
        if batches.is_empty() {
            return Err(Error::Input("a training chunk needs at least one batch".into()));
        }
        let mut stats = ChunkStats::default();
        let mut before_last = None;
        for (k, (x, y)) in batches.iter().enumerate() {
            if k + 1 == batches.len() {
                before_last = Some(self.save());
            }
            let (loss, correct) = self.step(x, y, clock, &mut stats, pool).await;
            stats.losses.push(loss);
            stats.correct.push(correct);
            stats.examples += y.len();
        }
        stats.weights_finite = self.weights.iter().flatten().flatten().all(|v| v.is_finite());
        Ok((stats, before_last.expect("a chunk has a last step")))
    }
}

/// A [`CpuTrainer`]'s training state: [`CpuTrainer::save`], [`CpuTrainer::restore`].
#[derive(Clone)]
pub struct Saved {
    weights: Vec<Vec<Vec<f32>>>,
    slots: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    config: TrainConfig,
    steps: u64,
    trained: u64,
}

/// For a 'same' convolution (stride 1, output size = input size w x w', plane size p) and kernel
/// offset (ky, kx): the shift from output to input position, the output range [j0, j1) whose
/// shifted position is inside the plane, and the valid output columns [lo, hi) (the others wrap
/// around a row edge and must be zero).
fn same_offset(ky: usize, kx: usize, pad: usize, w: usize, p: usize) -> (isize, usize, usize, usize, usize) {
    let shift = (ky as isize - pad as isize) * w as isize + kx as isize - pad as isize;
    let (j0, j1) = ((-shift).max(0) as usize, (p as isize - shift).min(p as isize).max(0) as usize);
    let lo = pad.saturating_sub(kx).min(w);
    let hi = (w + pad).saturating_sub(kx).min(w).max(lo);
    (shift, j0, j1, lo, hi)
}

/// im2col over a channel-major batch `[C, N, H, W]`: row (c, ky, kx), column (n, oy, ox).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn im2col(x: &[f32], [c, n, h, w]: [usize; 4], k: usize, s: usize, pad: usize, [ho, wo]: [usize; 2], cols: &mut [f32]) {
    let np = n * ho * wo;
    if s == 1 && (ho, wo) == (h, w) {
        // A 'same' convolution: for one kernel offset, the column block of an image is its plane
        // shifted by a constant, so it is one copy (then the wrapped-around edge columns are zeroed).
        let p = h * w;
        for ch in 0..c {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((ch * k + ky) * k + kx) * np..][..np];
                    let (shift, j0, j1, lo, hi) = same_offset(ky, kx, pad, w, p);
                    for b in 0..n {
                        let plane = &x[(ch * n + b) * p..][..p];
                        let dst = &mut row[b * p..][..p];
                        dst[..j0].fill(0.0);
                        dst[j1.max(j0)..].fill(0.0);
                        if j1 > j0 {
                            dst[j0..j1].copy_from_slice(&plane[(j0 as isize + shift) as usize..(j1 as isize + shift) as usize]);
                        }
                        // Column by column (strided stores; at most `pad` columns).
                        for col in (0..lo).chain(hi..wo) {
                            for j in (col..p).step_by(wo) {
                                dst[j] = 0.0;
                            }
                        }
                    }
                }
            }
        }
        return;
    }
    for ch in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                let row = &mut cols[((ch * k + ky) * k + kx) * np..][..np];
                // The output columns whose input x is inside: ox*s + kx - pad in [0, w).
                let lo = (pad.saturating_sub(kx)).div_ceil(s).min(wo);
                let hi = if w + pad > kx { ((w + pad - kx - 1) / s + 1).min(wo) } else { 0 }.max(lo);
                for b in 0..n {
                    let plane = &x[(ch * n + b) * h * w..][..h * w];
                    for oy in 0..ho {
                        let dst = &mut row[(b * ho + oy) * wo..][..wo];
                        let iy = (oy * s + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * w..][..w];
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if s == 1 {
                            let x0 = lo + kx - pad;
                            dst[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                        } else {
                            for ox in lo..hi {
                                dst[ox] = src[ox * s + kx - pad];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each column entry back into its input position.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn col2im(cols: &mut [f32], [c, n, h, w]: [usize; 4], k: usize, s: usize, pad: usize, [ho, wo]: [usize; 2], x: &mut [f32]) {
    let np = n * ho * wo;
    if s == 1 && (ho, wo) == (h, w) {
        // The adjoint of im2col's 'same' case: zero the edge columns that wrapped around (cols is
        // scratch), then add each block back with one shifted, contiguous add.
        let p = h * w;
        for ch in 0..c {
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut cols[((ch * k + ky) * k + kx) * np..][..np];
                    let (shift, j0, j1, lo, hi) = same_offset(ky, kx, pad, w, p);
                    for b in 0..n {
                        let src = &mut row[b * p..][..p];
                        for col in (0..lo).chain(hi..wo) {
                            for j in (col..p).step_by(wo) {
                                src[j] = 0.0;
                            }
                        }
                        if j1 > j0 {
                            let plane = &mut x[(ch * n + b) * p..][..p];
                            let dst = &mut plane[(j0 as isize + shift) as usize..(j1 as isize + shift) as usize];
                            dst.iter_mut().zip(&src[j0..j1]).for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
        }
        return;
    }
    for ch in 0..c {
        for ky in 0..k {
            for kx in 0..k {
                let row = &cols[((ch * k + ky) * k + kx) * np..][..np];
                let lo = (pad.saturating_sub(kx)).div_ceil(s).min(wo);
                let hi = if w + pad > kx { ((w + pad - kx - 1) / s + 1).min(wo) } else { 0 }.max(lo);
                for b in 0..n {
                    let plane = &mut x[(ch * n + b) * h * w..][..h * w];
                    for oy in 0..ho {
                        let iy = (oy * s + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let src = &row[(b * ho + oy) * wo..][..wo];
                        let dst = &mut plane[iy as usize * w..][..w];
                        if s == 1 {
                            let x0 = lo + kx - pad;
                            dst[x0..x0 + hi - lo].iter_mut().zip(&src[lo..hi]).for_each(|(d, v)| *d += v);
                        } else {
                            for ox in lo..hi {
                                dst[ox * s + kx - pad] += src[ox];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Max or average pooling over `planes` planes of h x w (padding never wins a max and is not
/// counted in an average, as Burn's max_pool2d / avg_pool2d(count_include_pad = false)).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn pool_forward(
    x: &[f32],
    [planes, h, w]: [usize; 3],
    k: usize,
    s: usize,
    pad: usize,
    [ho, wo]: [usize; 2],
    mode: PoolMode,
    out: &mut [f32],
    arg: &mut [u32],
) {
    if mode == PoolMode::Max && pad == 0 && (ho - 1) * s + k <= h && (wo - 1) * s + k <= w {
        // Every window inside the plane: no clamping. The common sizes are their own calls, so
        // that the inlined loops see a constant window.
        match k {
            2 => max_pool_inside(x, [planes, h, w], 2, s, [ho, wo], out, arg),
            3 => max_pool_inside(x, [planes, h, w], 3, s, [ho, wo], out, arg),
            _ => max_pool_inside(x, [planes, h, w], k, s, [ho, wo], out, arg),
        }
        return;
    }
    for pl in 0..planes {
        let src = &x[pl * h * w..][..h * w];
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (pl * ho + oy) * wo + ox;
                let (v, at) = pool_window(src, [h, w], k, s, pad, [oy, ox], mode);
                out[o] = v;
                if mode == PoolMode::Max {
                    arg[o] = at as u32;
                }
            }
        }
    }
}

/// Max pooling where every `k` x `k` window lies inside its plane (no padding): each output's value
/// and where its first maximum is. Inlined into its callers, so that a constant `k` (2, 3) unrolls
/// the window's loops.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn max_pool_inside(x: &[f32], [planes, h, w]: [usize; 3], k: usize, s: usize, [ho, wo]: [usize; 2], out: &mut [f32], arg: &mut [u32]) {
    for pl in 0..planes {
        let src = &x[pl * h * w..][..h * w];
        let (o, a) = (&mut out[pl * ho * wo..][..ho * wo], &mut arg[pl * ho * wo..][..ho * wo]);
        for oy in 0..ho {
            for ox in 0..wo {
                let at0 = oy * s * w + ox * s;
                let (mut best, mut at) = (f32::NEG_INFINITY, at0);
                for yy in 0..k {
                    // The caller checked (ho - 1) * s + k <= h and (wo - 1) * s + k <= w.
                    let row = &src[at0 + yy * w..][..k];
                    for (xx, &v) in row.iter().enumerate() {
                        // Selects rather than a branch: which value wins is data, and a
                        // mispredicted branch per compare costs more than the pooling itself.
                        let better = v > best;
                        at = if better { at0 + yy * w + xx } else { at };
                        best = if better { v } else { best };
                    }
                }
                o[oy * wo + ox] = best;
                a[oy * wo + ox] = at as u32;
            }
        }
    }
}

/// One pooling window (output position `[oy, ox]` of a plane `[h, w]`): its value and, for max
/// pooling, where the first maximum is (PyTorch's tie rule); averages count only positions inside
/// the plane. Shared by the full pass and occlusion's partial one (`cpu_occlude.rs`).
#[inline]
pub(crate) fn pool_window(
    src: &[f32],
    [h, w]: [usize; 2],
    k: usize,
    s: usize,
    pad: usize,
    [oy, ox]: [usize; 2],
    mode: PoolMode,
) -> (f32, usize) {
    let y0 = (oy * s) as isize - pad as isize;
    let (ya, yb) = (y0.max(0) as usize, ((y0 + k as isize).min(h as isize)) as usize);
    let x0 = (ox * s) as isize - pad as isize;
    let (xa, xb) = (x0.max(0) as usize, ((x0 + k as isize).min(w as isize)) as usize);
    match mode {
        PoolMode::Max => {
            let (mut best, mut at) = (f32::NEG_INFINITY, ya * w + xa);
            for yy in ya..yb {
                for xx in xa..xb {
                    let v = src[yy * w + xx];
                    if v > best {
                        best = v;
                        at = yy * w + xx;
                    }
                }
            }
            (best, at)
        }
        PoolMode::Avg => {
            let mut sum = 0.0;
            for yy in ya..yb {
                sum += src[yy * w + xa..yy * w + xb].iter().sum::<f32>();
            }
            (sum / ((yb - ya) * (xb - xa)).max(1) as f32, 0)
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn pool_backward(
    g: &[f32],
    [planes, h, w]: [usize; 3],
    k: usize,
    s: usize,
    pad: usize,
    [ho, wo]: [usize; 2],
    mode: PoolMode,
    arg: &[u32],
    dx: &mut [f32],
) {
    for pl in 0..planes {
        let dst = &mut dx[pl * h * w..][..h * w];
        for oy in 0..ho {
            for ox in 0..wo {
                let o = (pl * ho + oy) * wo + ox;
                match mode {
                    PoolMode::Max => dst[arg[o] as usize] += g[o],
                    PoolMode::Avg => {
                        let y0 = (oy * s) as isize - pad as isize;
                        let x0 = (ox * s) as isize - pad as isize;
                        let (ya, yb) = (y0.max(0) as usize, ((y0 + k as isize).min(h as isize)) as usize);
                        let (xa, xb) = (x0.max(0) as usize, ((x0 + k as isize).min(w as isize)) as usize);
                        let share = g[o] / ((yb - ya) * (xb - xa)).max(1) as f32;
                        for yy in ya..yb {
                            dst[yy * w + xa..yy * w + xb].iter_mut().for_each(|v| *v += share);
                        }
                    }
                }
            }
        }
    }
}
