//! A session: what one page (or one CLI run) works on — the network, the dataset and its sampler,
//! the trainer's settings and state, the fused CPU path's state, and the running jobs by id — and
//! every decision about them: which path runs (the fused CPU path where [`cpu_train::applies`],
//! else Burn), what a load resets, what a failed step keeps. The wasm facade and the CLI only
//! convert values to and from it.
//!
//! Every method takes `&self` and holds no borrow across an await, so calls may interleave (the
//! page's worker runs the next message while a WebGPU read-back is pending): state that a call
//! takes out for its duration (the fused state, the optimizer, a job) goes back only if the
//! network was not replaced meanwhile, and a job that is stepping cannot be stepped twice.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use serde_json::Value;

use crate::backend::Backend;
use crate::cpu_train::{self, CpuTrainer};
use crate::data::{Dataset, Sampler};
use crate::divergence;
use crate::jobs::{Budget, Inputs, Job, Progress};
use crate::shards::{self, ShardOut, ShardPool, ShardTask};
use crate::spec::{LayerKind, Limits};
use crate::train::{self, ChunkStats, Optimizer, TrainConfig};
use crate::vis::adversarial;
use crate::vis::attribution::{self, Attribution, Attributor, Samples, Settings};
use crate::vis::layers::{self, Probe};
use crate::{Error, Net, Objective};

/// At most this many jobs are kept; starting another drops the oldest.
pub const MAX_JOBS: usize = 16;

/// A network's summary, as the page shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub name: String,
    pub input: InputInfo,
    pub classes: usize,
    pub class_names: Vec<String>,
    pub params: usize,
    pub layers: Vec<LayerInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    pub depth: usize,
    pub height: usize,
    pub width: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub index: usize,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// A conv or fc layer's fused activation.
    pub activation: Option<String>,
    /// The layers it reads, by index.
    pub inputs: Vec<usize>,
    pub desc: String,
    pub shape: [usize; 3],
    pub params: usize,
    pub weights: Vec<WeightInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WeightInfo {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Summary {
    pub fn of(net: &Net) -> Summary {
        let s = &net.spec;
        let [depth, height, width] = s.input_shape();
        Summary {
            name: s.name.clone(),
            input: InputInfo { depth, height, width },
            classes: s.classes(),
            class_names: s.class_names.clone().unwrap_or_else(|| (0..s.classes()).map(|i| i.to_string()).collect()),
            params: s.param_count(),
            layers: s
                .layers
                .iter()
                .map(|l| LayerInfo {
                    index: l.index,
                    name: l.name.clone(),
                    ty: l.kind.type_name().to_string(),
                    activation: match l.kind {
                        LayerKind::Conv(_) | LayerKind::Fc(_) => l.kind.activation().map(|a| a.as_str().to_string()),
                        _ => None,
                    },
                    inputs: l.inputs.clone(),
                    desc: l.describe(),
                    shape: l.out_shape,
                    params: l.param_count(),
                    weights: l.params().into_iter().map(|p| WeightInfo { name: p.name, shape: p.shape }).collect(),
                })
                .collect(),
        }
    }
}

/// The GPU allocator's state: [`Session::gpu_memory`].
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuMemory {
    pub allocations: u64,
    pub bytes_in_use: u64,
    pub bytes_reserved: u64,
}

/// The loaded dataset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatasetInfo {
    pub name: String,
    pub shape: [usize; 3],
    pub classes: Vec<String>,
    pub train: usize,
    pub test: usize,
}

/// What a chunk of training steps did.
#[derive(Debug, Clone)]
pub struct StepsReport {
    pub stats: ChunkStats,
    pub batch_size: usize,
    /// The sampler's epoch, and the examples trained on since the network was loaded.
    pub epoch: usize,
    pub total_examples: u64,
}

/// Images of a split, for drawing.
#[derive(Debug, Clone)]
pub struct Images {
    pub shape: [usize; 3],
    /// CHW each.
    pub data: Vec<f32>,
    pub labels: Vec<u8>,
}

/// Style transfer's Gram matrices, per style layer.
#[derive(Debug, Clone)]
pub struct Grams {
    pub target: Vec<Vec<f32>>,
    pub current: Vec<Vec<f32>>,
    pub layers: Vec<usize>,
}

struct Data {
    name: String,
    train: Rc<Dataset>,
    test: Rc<Dataset>,
    sampler: Sampler,
}

/// A job and the network it runs on (a snapshot taken when it started: tensors are shared
/// handles, so this costs nothing until training replaces the weights).
struct Slot {
    job: Job,
    net: Net,
    /// The session's weights version when it started.
    version: u64,
}

#[derive(Default)]
struct State {
    net: Option<Net>,
    /// Counts loads: state taken out across an await goes back only into the same network.
    generation: u64,
    /// Counts loads and training chunks: a job that started at this version runs on the
    /// session's fused state; after training, on its own copy of the weights it started with.
    version: u64,
    data: Option<Data>,
    config: TrainConfig,
    opt: Option<Optimizer>,
    /// The fused CPU path's state (weights, optimizer), while it serves the current net.
    fused: Option<CpuTrainer>,
    /// Examples trained on since the network was loaded.
    examples: u64,
    /// What judges the steps (see [`crate::divergence`]).
    watch: Watch,
    /// `None` while a step runs.
    jobs: BTreeMap<u32, Option<Slot>>,
    next_job: u32,
    /// Workers that share the training steps' shards ([`crate::shards`]).
    pool: Option<Rc<dyn ShardPool>>,
    /// As a pool's worker: the fused path's buffers for the shards it is sent (a load drops them).
    shard_trainer: Option<CpuTrainer>,
}

impl State {
    /// The most recent step (on a batch of `examples`) was undone.
    fn forget_last_step(&mut self, examples: usize) {
        self.examples -= examples as u64;
        self.watch.steps -= 1;
        self.watch.last_loss = None;
    }
}

/// Training steps since the network was loaded, as [`crate::divergence`] judges them.
#[derive(Default)]
struct Watch {
    /// Steps kept.
    steps: u64,
    /// The loss of the first step: with ln(classes), it sets the limit.
    start_loss: Option<f32>,
    /// The loss of the most recent step (before its update).
    last_loss: Option<f32>,
    /// The state before the most recent step, and that step's batch, until a later loss judges
    /// the step.
    unjudged: Option<(Saved, (Vec<f32>, Vec<usize>))>,
}

/// Training state to come back to: the fused path's or Burn's.
#[derive(Clone)]
enum Saved {
    Fused(cpu_train::Saved),
    Burn(train::Saved),
}

/// What trains the current network: the fused CPU path or Burn's autodiff with its optimizer.
// One per session or job, moved a few times per chunk: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Trainer {
    Fused(CpuTrainer),
    Burn(Optimizer),
}

impl Trainer {
    fn save(&self, net: &Net) -> Saved {
        match self {
            Trainer::Fused(f) => Saved::Fused(f.save()),
            Trainer::Burn(opt) => Saved::Burn(train::Saved { params: net.params.clone(), opt: opt.clone() }),
        }
    }

    /// Brings back `saved` (false, and nothing changed, if it was saved by the other path).
    fn restore(&mut self, net: &mut Net, saved: Saved) -> bool {
        match (self, saved) {
            (Trainer::Fused(f), Saved::Fused(s)) => {
                f.restore(s);
                *net = f.to_net(net);
            }
            (Trainer::Burn(opt), Saved::Burn(s)) => {
                net.params = s.params;
                *opt = s.opt;
            }
            _ => return false,
        }
        true
    }

    /// One step per batch (not judged); the statistics and the state before the last step. On
    /// the fused path the steps' shards are shared with `pool`'s workers.
    async fn chunk(
        &mut self,
        net: &mut Net,
        batches: &[(Vec<f32>, Vec<usize>)],
        clock: &dyn Fn() -> f64,
        pool: Option<&dyn ShardPool>,
    ) -> Result<(ChunkStats, Saved), Error> {
        match self {
            Trainer::Fused(f) => {
                let (stats, saved) = f.train_chunk_with(batches, clock, pool).await?;
                *net = f.to_net(net);
                Ok((stats, Saved::Fused(saved)))
            }
            Trainer::Burn(opt) => {
                let (stats, saved) = train::train_chunk(net, opt, batches, clock).await?;
                Ok((stats, Saved::Burn(saved)))
            }
        }
    }
}

/// One page's (or one CLI run's) engine state; see the module docs.
pub struct Session {
    backend: Backend,
    device: Device,
    /// The fused CPU path may run (the CLI's `--burn` turns it off).
    fused_allowed: bool,
    state: RefCell<State>,
}

fn no_net() -> Error {
    Error::Input("no network is loaded".into())
}

impl Session {
    pub fn new(backend: Backend, device: Device) -> Session {
        Session { backend, device, fused_allowed: true, state: RefCell::new(State::default()) }
    }

    /// Without the fused CPU path: everything through Burn (the CLI's `--burn`).
    pub fn without_fused_path(self) -> Session {
        Session { fused_allowed: false, ..self }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether `net` runs on the fused CPU path here (the rule is [`cpu_train::applies`]).
    pub fn fused_path(&self, net: &Net) -> bool {
        self.fused_allowed && cpu_train::applies(self.backend, &net.spec)
    }

    /// Makes `net` the current network: the optimizer's and the fused path's state, the jobs and
    /// the example count start afresh; the dataset and the trainer's settings stay.
    pub fn load(&self, net: Net) -> Summary {
        let summary = Summary::of(&net);
        let mut s = self.state.borrow_mut();
        s.net = Some(net);
        s.generation += 1;
        s.version += 1;
        s.opt = None;
        s.fused = None;
        s.shard_trainer = None;
        s.jobs.clear();
        s.examples = 0;
        s.watch = Watch::default();
        summary
    }

    /// The device allocator's state (GPU: live allocations, bytes in use and reserved); `None` on
    /// the CPU, which reports none. For the memory soak (scripts/memory-soak.mjs).
    pub fn gpu_memory(&self) -> Option<GpuMemory> {
        let u = self.device.memory_pool_usage()?;
        Some(GpuMemory { allocations: u.number_allocs, bytes_in_use: u.bytes_in_use, bytes_reserved: u.bytes_reserved })
    }

    /// The current network (a cheap clone: tensors are shared handles).
    pub fn net(&self) -> Result<Net, Error> {
        self.state.borrow().net.clone().ok_or_else(no_net)
    }

    /// The current network's weights as a safetensors file (with its spec).
    pub async fn export_weights(&self) -> Result<Vec<u8>, Error> {
        let net = self.net()?;
        let w = net.read_weights().await?;
        crate::weights::save(&net.spec, &w)
    }

    // ---- the trainer -------------------------------------------------------------------------

    pub fn trainer(&self) -> TrainConfig {
        self.state.borrow().config
    }

    /// Changes trainer settings (`patch`: any of [`train::schema`]'s keys; the others stay).
    /// Switching the method starts its state afresh. Returns the full settings.
    pub fn set_trainer(&self, patch: &Value) -> Result<TrainConfig, Error> {
        let mut s = self.state.borrow_mut();
        let cfg = s.config.patched(patch)?;
        s.config = cfg;
        if let Some(opt) = s.opt.as_mut() {
            opt.set_config(cfg);
        }
        if let Some(f) = s.fused.as_mut() {
            f.set_config(cfg);
        }
        Ok(cfg)
    }

    /// What trains `net` here, taken out of the session (give it back with
    /// [`Session::put_trainer`]): the fused path's state (or a new one from the net's weights)
    /// when it runs here, else the optimizer (or a new one).
    async fn take_trainer(&self, net: &Net) -> Result<Trainer, Error> {
        let cfg = self.trainer();
        if !self.fused_path(net) {
            let existing = self.state.borrow_mut().opt.take();
            let mut opt = existing.unwrap_or_else(|| Optimizer::new(net, cfg));
            opt.set_config(cfg);
            return Ok(Trainer::Burn(opt));
        }
        let mut fused = self.take_fused(net).await?.expect("the fused path runs here");
        fused.set_config(cfg);
        Ok(Trainer::Fused(fused))
    }

    /// The fused path's state for `net` when it runs here: the session's (taken out; give it
    /// back with [`Session::put_fused`]) or a new one from the net's weights.
    async fn take_fused(&self, net: &Net) -> Result<Option<CpuTrainer>, Error> {
        if !self.fused_path(net) {
            return Ok(None);
        }
        let (existing, cfg) = {
            let mut s = self.state.borrow_mut();
            (s.fused.take(), s.config)
        };
        Ok(Some(match existing {
            Some(f) => f,
            None => CpuTrainer::new(net, net.read_weights().await?, cfg),
        }))
    }

    fn put_fused(&self, generation: u64, fused: Option<CpuTrainer>) {
        let mut s = self.state.borrow_mut();
        if fused.is_some() && s.generation == generation {
            s.fused = fused;
        }
    }

    /// Gives the trainer back, and the net if it changed, unless another network was loaded
    /// meanwhile (then an error).
    fn put_trainer(&self, generation: u64, trainer: Trainer, net: Option<Net>) -> Result<(), Error> {
        let mut s = self.state.borrow_mut();
        if s.generation != generation {
            return Err(Error::Input("the network was replaced while it trained; the steps were dropped".into()));
        }
        match trainer {
            Trainer::Fused(f) => s.fused = Some(f),
            Trainer::Burn(opt) => s.opt = Some(opt),
        }
        if let Some(net) = net {
            s.net = Some(net);
            s.version += 1;
        }
        Ok(())
    }

    fn generation(&self) -> u64 {
        self.state.borrow().generation
    }

    fn limit(&self, net: &Net, first_loss: f32) -> f32 {
        divergence::limit(self.state.borrow().watch.start_loss.unwrap_or(first_loss), net.spec.classes())
    }

    /// Trains on `batches` (images CHW each, labels; their size checked against the limits by the
    /// caller, before it made them): through the fused CPU path when it runs here, else Burn's
    /// autodiff. Every step is judged ([`crate::divergence`]): when one diverged (in this chunk
    /// or, judged by this chunk's first loss, the last step before it), the weights and the
    /// optimizer come back to before that step (the good steps of this chunk before it are taken
    /// again from the chunk's start) and the error says so. On any other error nothing of the
    /// chunk is kept.
    async fn run_chunk(&self, batches: Vec<(Vec<f32>, Vec<usize>)>, clock: &dyn Fn() -> f64) -> Result<ChunkStats, Error> {
        let mut model = self.net()?;
        let pool = self.state.borrow().pool.clone();
        let generation = self.generation();
        let mut trainer = self.take_trainer(&model).await?;
        let start = trainer.save(&model);
        let (stats, before_last) = match trainer.chunk(&mut model, &batches, clock, pool.as_deref()).await {
            Ok(r) => r,
            Err(e) => {
                self.put_trainer(generation, trainer, None)?;
                return Err(e);
            }
        };
        let limit = self.limit(&model, stats.losses[0]);
        let n = batches.len();
        let Some(j) = divergence::first_bad(&stats.losses, stats.weights_finite, limit) else {
            self.put_trainer(generation, trainer, Some(model))?;
            let mut s = self.state.borrow_mut();
            s.examples += stats.examples as u64;
            let w = &mut s.watch;
            w.steps += n as u64;
            w.start_loss.get_or_insert(stats.losses[0]);
            w.last_loss = stats.losses.last().copied();
            w.unjudged = Some((before_last, batches.into_iter().next_back().expect("a chunk has a batch")));
            return Ok(stats);
        };
        let (steps, last_loss, unjudged) = {
            let mut s = self.state.borrow_mut();
            (s.watch.steps, s.watch.last_loss, s.watch.unjudged.take())
        };
        let cfg = self.trainer();
        if j == 0 {
            // The step before this chunk diverged (or the net was already unusable).
            let Some((saved, batch)) = unjudged else {
                trainer.restore(&mut model, start);
                self.put_trainer(generation, trainer, Some(model))?;
                return Err(divergence::bad_start(stats.losses[0], limit));
            };
            if !trainer.restore(&mut model, saved) {
                trainer.restore(&mut model, start);
            }
            self.put_trainer(generation, trainer, Some(model))?;
            self.state.borrow_mut().forget_last_step(batch.1.len());
            return Err(divergence::diverged(steps, last_loss, Some(stats.losses[0]), limit, &cfg));
        }
        // Step j - 1 of this chunk diverged: keep the j - 1 steps before it.
        let keep = j - 1;
        let kept = if keep + 1 == n {
            trainer.restore(&mut model, before_last);
            stats.examples - batches[n - 1].1.len()
        } else {
            trainer.restore(&mut model, start);
            if keep > 0 {
                match trainer.chunk(&mut model, &batches[..keep], clock, pool.as_deref()).await {
                    Ok((again, _)) => again.examples,
                    Err(e) => {
                        self.put_trainer(generation, trainer, Some(model))?;
                        return Err(e);
                    }
                }
            } else {
                0
            }
        };
        self.put_trainer(generation, trainer, Some(model))?;
        let mut s = self.state.borrow_mut();
        s.examples += kept as u64;
        s.watch.steps += keep as u64;
        s.watch.start_loss.get_or_insert(stats.losses[0]);
        s.watch.last_loss = Some(stats.losses[keep]);
        let after = stats.losses.get(j).copied();
        Err(divergence::diverged(steps + j as u64, Some(stats.losses[j - 1]), after, limit, &cfg))
    }

    /// Judges the most recent training step now (a Step, a pause, the end of a run), by the loss
    /// of its weights on its batch (a trial step, undone): if it diverged, the weights and the
    /// optimizer come back to before it and the error says so. Nothing to judge: `Ok`.
    pub async fn check_last_step(&self, clock: &dyn Fn() -> f64) -> Result<(), Error> {
        let Some((saved, batch)) = self.state.borrow_mut().watch.unjudged.take() else { return Ok(()) };
        let mut model = self.net()?;
        let pool = self.state.borrow().pool.clone();
        let generation = self.generation();
        let mut trainer = self.take_trainer(&model).await?;
        let here = trainer.save(&model);
        let mut trial = model.clone();
        let r = trainer.chunk(&mut trial, std::slice::from_ref(&batch), clock, pool.as_deref()).await;
        trainer.restore(&mut trial, here);
        let loss = match r {
            Ok((stats, _)) => stats.losses[0],
            Err(e) => {
                self.put_trainer(generation, trainer, None)?;
                return Err(e);
            }
        };
        let limit = self.limit(&model, loss);
        if divergence::first_bad(&[loss], true, limit).is_none() {
            self.put_trainer(generation, trainer, None)?;
            return Ok(());
        }
        let (steps, last_loss, cfg) = {
            let s = self.state.borrow();
            (s.watch.steps, s.watch.last_loss, s.config)
        };
        if !trainer.restore(&mut model, saved) {
            self.put_trainer(generation, trainer, None)?;
            return Ok(());
        }
        self.put_trainer(generation, trainer, Some(model))?;
        self.state.borrow_mut().forget_last_step(batch.1.len());
        Err(divergence::diverged(steps, last_loss, Some(loss), limit, &cfg))
    }

    /// Trains on the given examples (N images, CHW each; N labels) in minibatches, with the
    /// trainer settings changed by `patch` first; returns the mean loss.
    pub async fn train(&self, images: &[f32], labels: &[u32], patch: &Value, clock: &dyn Fn() -> f64) -> Result<f64, Error> {
        let net = self.net()?;
        let per = net.spec.input_shape().iter().product::<usize>();
        if images.len() != labels.len() * per {
            return Err(Error::Input(format!(
                "train: {} labels need {} image values, got {}",
                labels.len(),
                labels.len() * per,
                images.len()
            )));
        }
        let cfg = self.set_trainer(patch)?;
        Limits::here().check_batch(&net.spec, cfg.batch_size.min(labels.len()))?;
        let batches = labels
            .chunks(cfg.batch_size)
            .enumerate()
            .map(|(k, chunk)| {
                let start = k * cfg.batch_size * per;
                (images[start..start + chunk.len() * per].to_vec(), chunk.iter().map(|&l| l as usize).collect())
            })
            .collect();
        let stats = self.run_chunk(batches, clock).await?;
        Ok(stats.losses.iter().map(|&l| l as f64).sum::<f64>() / stats.losses.len().max(1) as f64)
    }

    /// Workers to share the training steps' shards with ([`crate::shards`]; None: this engine
    /// alone). The numbers are the same either way.
    pub fn set_shard_pool(&self, pool: Option<Rc<dyn ShardPool>>) {
        self.state.borrow_mut().pool = pool;
    }

    /// How many shards a training step of the current net and batch size has ([`shards::plan`]):
    /// how many workers it can use. 1 when the net does not train on the fused path here.
    pub fn shard_count(&self) -> usize {
        let s = self.state.borrow();
        match &s.net {
            Some(net) if self.fused_path(net) => shards::plan(&net.spec, s.config.batch_size).len(),
            _ => 1,
        }
    }

    /// As a pool's worker: the weight gradients of `task`'s shards of another engine's training
    /// step (the same net, loaded here; the weights come with the task). The session's own
    /// weights and training state are not touched.
    pub async fn train_shards(&self, task: &ShardTask) -> Result<ShardOut, Error> {
        let net = self.net()?;
        if !self.fused_path(&net) {
            return Err(Error::Input("this engine cannot train shards: its network does not run on the fused CPU path".into()));
        }
        let generation = self.generation();
        let held = self.state.borrow_mut().shard_trainer.take();
        let mut trainer = match held {
            Some(t) => t,
            None => CpuTrainer::new(&net, net.read_weights().await?, self.trainer()),
        };
        let out = trainer.shard_grads(task);
        let mut s = self.state.borrow_mut();
        if s.generation == generation {
            s.shard_trainer = Some(trainer);
        }
        out
    }

    // ---- data --------------------------------------------------------------------------------

    /// Makes these the training and test data; the data order starts afresh from the trainer's
    /// seed (a run can be repeated exactly).
    pub fn set_data(&self, name: &str, train: Dataset, test: Dataset) -> DatasetInfo {
        self.set_shared_data(name, Rc::new(train), Rc::new(test))
    }

    /// [`Session::set_data`] with splits other sessions may hold too (the wasm worker decodes a
    /// dataset once for all its sessions).
    pub fn set_shared_data(&self, name: &str, train: Rc<Dataset>, test: Rc<Dataset>) -> DatasetInfo {
        let mut s = self.state.borrow_mut();
        let sampler = Sampler::new(train.len(), s.config.seed);
        s.data = Some(Data { name: name.to_string(), train, test, sampler });
        drop(s);
        self.dataset()
    }

    /// The dataset's splits (shared handles), if one is loaded.
    pub fn data_splits(&self) -> Option<(Rc<Dataset>, Rc<Dataset>)> {
        self.state.borrow().data.as_ref().map(|d| (d.train.clone(), d.test.clone()))
    }

    pub fn dataset(&self) -> DatasetInfo {
        let s = self.state.borrow();
        match &s.data {
            None => DatasetInfo::default(),
            Some(d) => DatasetInfo {
                name: d.name.clone(),
                shape: d.train.shape,
                classes: d.train.classes.clone(),
                train: d.train.len(),
                test: d.test.len(),
            },
        }
    }

    /// Runs `steps` training steps on the loaded dataset (random augmented minibatches, a new
    /// shuffle each epoch). On an error nothing of the chunk is kept.
    pub async fn train_steps(&self, steps: usize, clock: &dyn Fn() -> f64) -> Result<StepsReport, Error> {
        let net = self.net()?;
        let batches = {
            let mut s = self.state.borrow_mut();
            let cfg = s.config;
            let d = s.data.as_mut().ok_or_else(|| Error::Input("no dataset is loaded".into()))?;
            Limits::here().check_batch(&net.spec, cfg.batch_size)?;
            let input = net.spec.input_shape();
            d.train.check_input(input)?;
            if let Some(&bad) = d.train.labels.iter().find(|&&l| l as usize >= net.spec.classes()) {
                return Err(Error::Data(format!("the dataset has class {bad} but the network has {} classes", net.spec.classes())));
            }
            (0..steps.max(1))
                .map(|_| {
                    let idx = d.sampler.next(cfg.batch_size);
                    d.train.batch(&idx, input, Some(&mut d.sampler.rng))
                })
                .collect()
        };
        let stats = self.run_chunk(batches, clock).await?;
        let s = self.state.borrow();
        Ok(StepsReport {
            stats,
            batch_size: s.config.batch_size,
            epoch: s.data.as_ref().map_or(0, |d| d.sampler.epoch),
            total_examples: s.examples,
        })
    }

    fn with_split<T>(&self, split: &str, f: impl FnOnce(&Dataset) -> Result<T, Error>) -> Result<T, Error> {
        let s = self.state.borrow();
        let d = s.data.as_ref().ok_or_else(|| Error::Input("no dataset is loaded".into()))?;
        match split {
            "train" => f(&d.train),
            "test" => f(&d.test),
            other => Err(Error::Input(format!("unknown split '{other}'; expected train or test"))),
        }
    }

    /// Class probabilities of `count` images of a split from `start` (centre crops), and their
    /// labels.
    pub async fn evaluate(&self, split: &str, start: usize, count: usize) -> Result<(Vec<f32>, Vec<u8>), Error> {
        let net = self.net()?;
        let (images, labels) = self.with_split(split, |d| {
            d.check_input(net.spec.input_shape())?;
            let (a, b) = (start, (start + count).min(d.len()));
            if a >= b {
                return Err(Error::Input(format!("evaluate: no images at {start}.. of the {} {split} images", d.len())));
            }
            Limits::here().check_batch(&net.spec, b - a)?;
            let idx: Vec<usize> = (a..b).collect();
            let (x, _) = d.batch(&idx, net.spec.input_shape(), None);
            Ok((x, d.labels[a..b].to_vec()))
        })?;
        let probs = if self.fused_path(&net) {
            // Softmax of the scores, as train::probabilities.
            let k = net.spec.classes();
            let mut p = self.infer(&images, net.spec.score_layer()).await?;
            p.chunks_mut(k).for_each(cpu_train::softmax_in_place);
            p
        } else {
            train::probabilities(&net, &images, labels.len()).await?
        };
        Ok((probs, labels))
    }

    /// One image of a split as the network takes it (centre crop, CHW).
    pub fn example(&self, split: &str, index: usize) -> Result<Vec<f32>, Error> {
        let net = self.net()?;
        self.with_split(split, |d| {
            d.check_input(net.spec.input_shape())?;
            if index >= d.len() {
                return Err(Error::Input(format!("there is no {split} image {index} (the split has {})", d.len())));
            }
            let mut out = vec![];
            d.example(index, net.spec.input_shape(), None, &mut out);
            Ok(out)
        })
    }

    /// The crops of layer `layer`'s receptive field around units (`images`, `ys`, `xs`; image -1:
    /// none) in a split's images: maximally activating patches' pictures. `[hits, D, h, w]` and
    /// the crop's shape.
    pub fn patch_crops(&self, split: &str, layer: usize, images: &[i32], ys: &[i32], xs: &[i32]) -> Result<(Vec<f32>, [usize; 3]), Error> {
        let net = self.net()?;
        self.with_split(split, |d| crate::vis::patches::crops(d, &net.spec, layer, images, ys, xs))
    }

    /// The deconvnet or guided-backprop pictures of units' patches (see
    /// [`crate::vis::patches::maps`]): `rule` is `deconvnet`, `guided` or `gradient`.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch_maps(
        &self,
        split: &str,
        layer: usize,
        channels: &[i32],
        images: &[i32],
        ys: &[i32],
        xs: &[i32],
        rule: &str,
    ) -> Result<(Vec<f32>, [usize; 3]), Error> {
        let net = self.net()?;
        let rule = crate::grad::ReluRule::parse(rule)
            .ok_or_else(|| Error::Input(format!("unknown rule '{rule}'; expected gradient, deconvnet or guided")))?;
        let data = {
            let s = self.state.borrow();
            let d = s.data.as_ref().ok_or_else(|| Error::Input("no dataset is loaded".into()))?;
            match split {
                "train" => d.train.clone(),
                "test" => d.test.clone(),
                other => return Err(Error::Input(format!("unknown split '{other}'; expected train or test"))),
            }
        };
        let generation = self.generation();
        let mut fused = self.take_fused(&net).await?;
        let r = {
            let mut at = Attributor::new(&net, fused.as_mut());
            crate::vis::patches::maps(&mut at, &data, layer, channels, images, ys, xs, rule).await
        };
        self.put_fused(generation, fused);
        r
    }

    /// Whole images of a split, for drawing.
    pub fn images(&self, split: &str, start: usize, count: usize) -> Result<Images, Error> {
        self.with_split(split, |d| {
            let (a, b) = (start, (start + count).min(d.len()));
            let b = b.max(a);
            Ok(Images { shape: d.shape, data: (a..b).flat_map(|i| d.image(i)).collect(), labels: d.labels[a..b].to_vec() })
        })
    }

    // ---- one image or a batch ----------------------------------------------------------------

    /// Layer `layer`'s output for a batch of inputs (N images, CHW each), flat: on the fused CPU
    /// path when it runs here (its host copy of the weights is the current one), else Burn.
    pub async fn infer(&self, inputs: &[f32], layer: usize) -> Result<Vec<f32>, Error> {
        let net = self.net()?;
        let [d, h, w] = net.spec.input_shape();
        let per = d * h * w;
        if inputs.is_empty() || !inputs.len().is_multiple_of(per) {
            return Err(Error::Input(format!("{} values are not a whole number of {d}x{h}x{w} inputs", inputs.len())));
        }
        if layer >= net.spec.layers.len() {
            return Err(Error::Input(format!("there is no layer {layer}; the network has {}", net.spec.layers.len())));
        }
        if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("the input has a non-finite value ({}) at index {i}", inputs[i])));
        }
        let n = inputs.len() / per;
        Limits::here().check_batch(&net.spec, n)?;
        if layer <= net.spec.score_layer() + 1 {
            let generation = self.generation();
            if let Some(mut fused) = self.take_fused(&net).await? {
                let out = fused.layer_output(inputs, n, layer);
                self.put_fused(generation, Some(fused));
                return out;
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(inputs.to_vec(), [n, d, h, w]), &net.device);
        let out = net.forward_upto(x, layer, &net.params).pop().expect("layer 0 at least");
        crate::read(out.flatten::<1>(0, 3)).await
    }

    /// One image's output of the last layer (the class probabilities).
    pub async fn forward(&self, input: &[f32]) -> Result<Vec<f32>, Error> {
        let last = self.state.borrow().net.as_ref().ok_or_else(no_net)?.spec.layers.len() - 1;
        self.infer(input, last).await
    }

    /// Every layer's output for one image (forward only), in one read-back: on the fused CPU
    /// path when it runs here (the same numbers, tests/cpu_train.rs), else Burn.
    pub async fn activations(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, Error> {
        self.activations_with(input, |layers| layers.iter().map(|l| l.to_vec()).collect()).await
    }

    /// [`Session::activations`] handed to `f` as slices, without copies of their own: on the
    /// fused path they are its buffers (the wasm adapter copies them straight into one JS array).
    pub async fn activations_with<R>(&self, input: &[f32], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R, Error> {
        let net = self.net()?;
        net.check_input(input)?;
        let last = net.spec.score_layer();
        let above = net.spec.layers.len() - 1 - last; // a final softmax
        let generation = self.generation();
        if let Some(mut fused) = self.take_fused(&net).await? {
            let r = fused.layer_outputs_with(input, |outs| {
                // The layers past the scores (a final softmax) are the scores' softmax, as in
                // CpuTrainer::probe_with; none for a net that ends at its scores.
                let probs = (above > 0).then(|| {
                    let mut p = outs[last].to_vec();
                    crate::cpu_train::softmax_in_place(&mut p);
                    p
                });
                let mut all = outs.to_vec();
                all.extend(probs.iter().flat_map(|p| std::iter::repeat_n(p.as_slice(), above)));
                f(&all)
            });
            self.put_fused(generation, Some(fused));
            return Ok(r);
        }
        let x = net.input_tensor(input)?;
        let outs = crate::read_all(net.forward_all(x).into_iter().map(|t| t.flatten::<1>(0, 3)).collect()).await?;
        Ok(f(&outs.iter().map(Vec::as_slice).collect::<Vec<_>>()))
    }

    /// Activations, gradients and weights of every layer for one image: on the fused CPU path
    /// when it can (the same numbers, tests/cpu_train.rs), else Burn.
    pub async fn probe(&self, input: &[f32], objective: &Objective) -> Result<Probe, Error> {
        let net = self.net()?;
        let generation = self.generation();
        if let Some(mut fused) = self.take_fused(&net).await? {
            let r = fused.probe(&net, input, objective);
            self.put_fused(generation, Some(fused));
            if let Some(p) = r? {
                return Ok(p);
            }
        }
        layers::probe(&net, input, objective).await
    }

    /// One attribution map (`settings`: an object of [`attribution::schema`]'s keys).
    /// `given`: the samples' gradients and end values when a pool of engines computed them
    /// ([`Session::attribute_samples`], every part in order); the map is the same bit for bit.
    pub async fn attribute(
        &self,
        input: &[f32],
        objective: &Objective,
        settings: &Value,
        given: Option<Samples>,
    ) -> Result<(Attribution, Settings), Error> {
        let net = self.net()?;
        let values = attribution::schema().resolve(settings, false)?;
        let settings = Settings::from_values(&values, &|l| net.spec.layer_index(l).map_err(Into::into))?;
        let generation = self.generation();
        let mut fused = self.take_fused(&net).await?;
        let r = {
            let mut at = Attributor::new(&net, fused.as_mut());
            attribution::attribute_with(&mut at, input, objective, &settings, given).await
        };
        self.put_fused(generation, fused);
        Ok((r?, settings))
    }

    /// Part `part` of `parts` of a sampling method's gradients (SmoothGrad, integrated gradients:
    /// see [`attribution::sample_grads`]): the gradients (part 0's with the end values), which
    /// samples they are, and how many the method takes (0 for a method of one pass, which does not
    /// split).
    pub async fn attribute_samples(
        &self,
        input: &[f32],
        objective: &Objective,
        settings: &Value,
        part: usize,
        parts: usize,
    ) -> Result<(Samples, std::ops::Range<usize>, usize), Error> {
        let net = self.net()?;
        let values = attribution::schema().resolve(settings, false)?;
        let settings = Settings::from_values(&values, &|l| net.spec.layer_index(l).map_err(Into::into))?;
        let total = attribution::sample_count(&settings, net.spec.input_shape().iter().product())?;
        if parts == 0 || part >= parts {
            return Err(Error::Input(format!("part {part} of {parts} does not exist")));
        }
        let range = attribution::part(total, part, parts);
        let generation = self.generation();
        let mut fused = self.take_fused(&net).await?;
        let r = {
            let mut at = Attributor::new(&net, fused.as_mut());
            let grads = attribution::sample_grads(&mut at, input, objective, &settings, range.clone()).await;
            match grads {
                Ok(grads) if part == 0 && total > 0 => {
                    attribution::end_values(&mut at, input, objective, &settings).await.map(|values| Samples { grads, values })
                }
                Ok(grads) => Ok(Samples { grads, values: vec![] }),
                Err(e) => Err(e),
            }
        };
        self.put_fused(generation, fused);
        Ok((r?, range, total))
    }

    /// Counts loads and training chunks: the weights changed when it did (a pool's engines reload).
    pub fn weights_version(&self) -> u64 {
        self.state.borrow().version
    }

    /// FGSM: the image moved by `eps` (on 0-255 pixels) along the sign of the gradient of the
    /// loss of `label`.
    pub async fn fgsm(&self, input: &[f32], label: usize, eps: f32) -> Result<Vec<f32>, Error> {
        let net = self.net()?;
        Objective::Class(label).check(&net)?;
        let mut at = Attributor::new(&net, None);
        adversarial::fgsm(&mut at, input, label, eps / 255.0).await
    }

    // ---- jobs --------------------------------------------------------------------------------

    /// Starts a job (see [`Job::start`]) on the current network; returns its id and state. The
    /// job keeps the network as it is now, so training meanwhile does not change it.
    pub async fn start_job(&self, kind: &str, mut inputs: Inputs<'_>, settings: &Value) -> Result<(u32, Progress), Error> {
        let net = self.net()?;
        if inputs.data.is_none() {
            inputs.data = self.state.borrow().data.as_ref().map(|d| (d.train.clone(), d.test.clone()));
        }
        inputs.fused_allowed = self.fused_allowed && self.backend == Backend::Cpu;
        let generation = self.generation();
        let version = self.state.borrow().version;
        // Occlusion runs on the fused path's state (the same weights as `net`).
        let mut fused = if kind == "occlusion" { self.take_fused(&net).await? } else { None };
        let job = Job::start(kind, &net, inputs, settings, fused.as_mut()).await;
        self.put_fused(generation, fused);
        let job = job?;
        let progress = job.progress(&net);
        let mut s = self.state.borrow_mut();
        if s.generation != generation {
            return Err(Error::Input("the network was replaced while the job started".into()));
        }
        s.next_job += 1;
        let id = s.next_job;
        while s.jobs.len() >= MAX_JOBS {
            let oldest = *s.jobs.keys().next().expect("not empty");
            s.jobs.remove(&oldest);
        }
        s.jobs.insert(id, Some(Slot { job, net, version }));
        Ok((id, progress))
    }

    /// Takes job `id` out for a step (its entry stays, empty, so that a second step meanwhile is
    /// refused and a cancel meanwhile is seen).
    fn take_job(&self, id: u32) -> Result<Slot, Error> {
        match self.state.borrow_mut().jobs.get_mut(&id) {
            None => Err(Error::Input(format!("there is no job {id} (finished and released, cancelled, or the network was replaced)"))),
            Some(slot) => slot.take().ok_or_else(|| Error::Input(format!("job {id} is already running a step"))),
        }
    }

    /// Returns a job taken out for a step, unless it was cancelled meanwhile.
    fn put_job(&self, id: u32, slot: Slot) {
        if let Some(entry) = self.state.borrow_mut().jobs.get_mut(&id) {
            *entry = Some(slot);
        }
    }

    /// Runs job `id` for `budget`; returns its state (on an error, the job stays as it was
    /// after its last good step).
    pub async fn step_job(&self, id: u32, budget: Budget, clock: &dyn Fn() -> f64) -> Result<Progress, Error> {
        let Slot { mut job, net, version } = self.take_job(id)?;
        let r = async {
            if !job.wants_fused() || !self.fused_path(&net) {
                return job.step(&net, budget, clock, None).await;
            }
            if self.state.borrow().version != version {
                job.own_fused(&net, self.backend).await?;
                return job.step(&net, budget, clock, None).await;
            }
            let generation = self.generation();
            let mut fused = self.take_fused(&net).await?;
            let r = job.step(&net, budget, clock, fused.as_mut()).await;
            self.put_fused(generation, fused);
            r
        }
        .await;
        let progress = job.progress(&net);
        self.put_job(id, Slot { job, net, version });
        r.map(|_| progress)
    }

    /// Occlusion `id` (part 0 of a pool's) takes every position's value, the parts' grids in
    /// order; its state then has the map.
    pub fn occlusion_merge(&self, id: u32, grid: Vec<f32>) -> Result<Progress, Error> {
        let Slot { mut job, net, version } = self.take_job(id)?;
        let r = match &mut job {
            Job::Occlusion(o, _) => o.merge(grid),
            _ => Err(Error::Input(format!("job {id} is not an occlusion"))),
        };
        let progress = job.progress(&net);
        self.put_job(id, Slot { job, net, version });
        r.map(|_| progress)
    }

    /// Drops job `id` (a step in progress finishes, and its job is not kept).
    pub fn cancel_job(&self, id: u32) -> bool {
        self.state.borrow_mut().jobs.remove(&id).is_some()
    }

    /// Style job `id`'s Gram matrices (the style image's and the current image's).
    pub async fn style_grams(&self, id: u32) -> Result<Grams, Error> {
        let slot = self.take_job(id)?;
        let r = match &slot.job {
            Job::Style(s) => {
                let target = s.target_grams().await;
                let current = s.grams_of(None).await;
                Some((target, current, s.settings.style_layers.clone()))
            }
            _ => None,
        };
        self.put_job(id, slot);
        let (target, current, layers) = r.ok_or_else(|| Error::Input(format!("job {id} is not a style transfer")))?;
        Ok(Grams { target: target?, current: current?, layers })
    }

    /// Runs a job to its end on the current network (the CLI), calling `each` after every chunk
    /// of `budget`.
    pub async fn run_job(
        &self,
        kind: &str,
        inputs: Inputs<'_>,
        settings: &Value,
        budget: Budget,
        clock: &dyn Fn() -> f64,
        each: &mut dyn FnMut(&Progress),
    ) -> Result<Progress, Error> {
        let (id, mut p) = self.start_job(kind, inputs, settings).await?;
        while !p.done {
            p = self.step_job(id, budget, clock).await?;
            each(&p);
        }
        self.cancel_job(id);
        Ok(p)
    }
}
