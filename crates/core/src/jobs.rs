//! The techniques that run for a while — class visualization, feature inversion (of several layers
//! side by side), DeepDream, style transfer, an iterative attack or a fooling image, and occlusion —
//! as jobs: started from a technique's settings (its [`Schema`]), stepped a budget at a time (for
//! progress and cancel), and read as [`Progress`] (the step, the history, images to preview).
//! A [`crate::session::Session`] keeps them by id; the CLI runs one to its end.

use serde_json::Value;

use crate::backend::Backend;
use crate::cpu_train::{self, CpuTrainer};
use crate::data::Dataset;
use crate::settings::{Resolved, Schema};
use crate::train::{self, TrainConfig};
use crate::vis::adversarial::{self, Attack};
use crate::vis::attribution::{self, Attributor};
use crate::vis::class_vis::{self, ClassVis};
use crate::vis::landscape::{self, Landscape};
use crate::vis::occlusion::{self, Occlusion};
use crate::vis::patches::{self, Patches};
use crate::vis::seeds::{self, Seeds};
use crate::vis::tsne::{self, TsneRun};
use crate::vis::{deepdream, inversion, style};
use crate::{Error, Net, Objective};
use std::rc::Rc;

/// The techniques with a settings schema, by the name the page, the facade and the CLI use.
pub const TECHNIQUES: [&str; 12] =
    ["attribution", "occlusion", "visualize", "invert", "dream", "style", "attack", "fooling", "trainer", "patches", "tsne", "landscape"];

/// A technique's settings schema (see [`TECHNIQUES`]).
pub fn schema(technique: &str) -> Result<Schema, Error> {
    Ok(match technique {
        "attribution" => attribution::schema(),
        "occlusion" => occlusion::schema(),
        "visualize" => class_vis::schema(),
        "invert" => inversion::schema(),
        "dream" => deepdream::schema(),
        "style" => style::schema(),
        "attack" | "fooling" => adversarial::schema(),
        "trainer" => train::schema(),
        "patches" => patches::schema(),
        "tsne" => tsne::schema(),
        "landscape" => landscape::schema(),
        other => return Err(Error::Input(format!("no settings for '{other}'; expected one of {}", TECHNIQUES.join(", ")))),
    })
}

/// A job in progress (one per running view: the size of its largest variant does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// Class and neuron visualization: its gradients on the fused CPU path where it applies (as
    /// occlusion below), else through Burn.
    Visualize(ClassVis, Option<CpuTrainer>),
    /// One inversion per layer, stepped in turn.
    Invert(Vec<inversion::Inversion>),
    Dream(deepdream::Dream),
    Style(style::Style),
    /// Adversarial examples: on the fused CPU path where it applies, as class visualization.
    Attack(Attack, Option<CpuTrainer>),
    /// Runs on the fused CPU path where it applies: on the caller's state while that still holds
    /// the weights the job started with (lent to each step), else on its own copy, made once.
    Occlusion(Occlusion, Option<CpuTrainer>),
    /// The dataset views: like occlusion, on the fused CPU path where it applies.
    Patches(Patches, Option<CpuTrainer>),
    Tsne(Box<TsneRun>, Option<CpuTrainer>),
    Landscape(Landscape, Option<CpuTrainer>),
    /// The landscape's seeds experiment: trains its own nets.
    Seeds(Box<Seeds>),
}

/// What a job starts from.
#[derive(Default)]
pub struct Inputs<'a> {
    /// The image (visualize and fooling need none; style's content image; dream's at its size).
    pub image: &'a [f32],
    /// Style transfer's style image (square, any size).
    pub style: &'a [f32],
    /// Class visualization's objective (default: class 0's score).
    pub objective: Option<Objective>,
    /// The dataset views' images: the session's training and test splits.
    pub data: Option<(Rc<Dataset>, Rc<Dataset>)>,
    /// Whether the fused CPU path may run (the session's backend is the CPU and the path is not
    /// turned off): the seeds experiment's nets take it where they can.
    pub fused_allowed: bool,
    /// Part `k` of `n` of a job split across engines (the page's worker pool): the job does only
    /// its share, and the parts' results put together equal one engine's bit for bit. Jobs that do
    /// not split (t-SNE, the seeds experiment, the optimizations) run whole and say so in their
    /// progress (`part` None).
    pub part: Option<(usize, usize)>,
}

/// At most this many parts (engines) per job.
pub const MAX_PARTS: usize = 64;

/// How much a step call may do: about this many milliseconds (at least one step), or this many
/// steps (occlusion: patch positions, evaluated as one batch; patches: blocks of images; t-SNE:
/// images read, or iterations).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Ms(f64),
    Items(usize),
}

/// A preview image.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub data: Vec<f32>,
    pub shape: [usize; 3],
    /// Inversion: the layer and its loss.
    pub layer: Option<usize>,
    pub loss: Option<f32>,
}

/// An occlusion's state.
#[derive(Debug, Clone, PartialEq)]
pub struct OcclusionProgress {
    pub ny: usize,
    pub nx: usize,
    /// The tracked class's output without a patch, and with the patch at each position so far.
    pub base: f32,
    pub grid: Vec<f32>,
    pub class: usize,
    pub window: usize,
    pub stride: usize,
    /// Captum's per-pixel [H, W] map, once done (a part's job: once merged).
    pub map: Option<Vec<f32>>,
    /// A part's positions (start, end) of the `ny * nx`; `grid` holds those.
    pub part: Option<(usize, usize)>,
}

/// A job's state after a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub kind: &'static str,
    pub step: usize,
    pub total: usize,
    pub done: bool,
    /// One row of values per step (the objective or losses it plots).
    pub history: Vec<Vec<f32>>,
    pub images: Vec<Preview>,
    pub occlusion: Option<OcclusionProgress>,
    /// A dataset view's state.
    pub dataset: Option<DatasetProgress>,
}

/// Maximally activating patches so far: each channel's best images (best first), the unit where
/// each peaks, and the layer's receptive field.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchesProgress {
    pub layer: usize,
    /// The layer's output shape, `[C, H, W]`.
    pub shape: [usize; 3],
    /// Patches per channel, and the patches' size (`[depth, height, width]`).
    pub top: usize,
    pub patch: [usize; 3],
    pub split: String,
    /// `[C, top]` each, row-major; `image` -1 where a channel has fewer hits.
    pub values: Vec<f32>,
    pub images: Vec<i32>,
    pub ys: Vec<i32>,
    pub xs: Vec<i32>,
    /// A part's images (start, end) of the search, if it is split; the lists are that part's.
    pub part: Option<(usize, usize)>,
}

/// A t-SNE map: where it is, the points, the KL divergence so far.
#[derive(Debug, Clone, PartialEq)]
pub struct TsneProgress {
    /// "codes", "affinities", "optimizing" or "done".
    pub stage: &'static str,
    pub layer: usize,
    pub points: usize,
    /// Values per code before the PCA, and the share of their variance the PCA kept.
    pub dim: usize,
    pub explained: f32,
    pub method: &'static str,
    pub iteration: usize,
    pub iterations: usize,
    pub learning_rate: f64,
    pub exaggerating: bool,
    /// `[points, 2]` (empty before the optimization).
    pub embedding: Vec<f32>,
    pub labels: Vec<u8>,
    pub split: String,
    /// (iteration, KL) each time it was measured.
    pub kl: Vec<(usize, f64)>,
}

/// A loss surface being evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeProgress {
    /// "line" or "plane".
    pub slice: &'static str,
    /// The line's α values, or each side's coordinates.
    pub axis: Vec<f64>,
    /// Per point (the line's, or the plane's row-major), NaN where not yet evaluated.
    pub loss: Vec<f32>,
    pub accuracy: Vec<f32>,
    /// The images each point is measured on: the split's first `images`.
    pub images: usize,
    pub split: String,
    /// The first `coarse` points evaluated make a coarse grid.
    pub coarse: usize,
    /// Whether the coarse grid's points (of this part) are all evaluated.
    pub coarse_done: bool,
    /// The part (k of n) this job evaluates, if it is split.
    pub part: Option<(usize, usize)>,
}

/// The seeds experiment so far: per (width, seed) net, row-major by width, its final test loss
/// and accuracy, and the mean training loss of its last steps (NaN until done).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedsProgress {
    pub widths: Vec<f64>,
    pub seeds: usize,
    /// Parameters of the net at each width.
    pub params: Vec<usize>,
    pub steps: usize,
    pub images: usize,
    pub loss: Vec<f32>,
    pub accuracy: Vec<f32>,
    pub train_loss: Vec<f32>,
    /// Per net: "pending", "done" or "diverged".
    pub outcome: Vec<&'static str>,
    /// Per width: the finished nets' test loss mean, standard deviation, min and max.
    pub spread: Vec<[f64; 4]>,
}

/// A dataset view's state.
#[derive(Debug, Clone, PartialEq)]
pub enum DatasetProgress {
    Patches(PatchesProgress),
    Tsne(TsneProgress),
    Landscape(LandscapeProgress),
    Seeds(SeedsProgress),
}

fn preview(data: Vec<f32>, shape: [usize; 3]) -> Preview {
    Preview { data, shape, layer: None, loss: None }
}

impl Job {
    /// Starts a `kind` job (visualize, invert, dream, style, attack, fooling or occlusion) on
    /// `net` with `settings` (an object of the technique's schema; missing keys take their
    /// defaults, values out of range are refused). `fused`: the
    /// fused CPU path's state for `net` where that path applies (occlusion runs on it).
    pub async fn start(kind: &str, net: &Net, inputs: Inputs<'_>, settings: &Value, fused: Option<&mut CpuTrainer>) -> Result<Job, Error> {
        let v = schema(kind)?.resolve(settings, false)?;
        let spec = &net.spec;
        let [c, h, w] = spec.input_shape();
        if let Some((k, n)) = inputs.part
            && (n == 0 || k >= n || n > MAX_PARTS)
        {
            return Err(Error::Input(format!("part {k} of {n}: a job splits into 1 to {MAX_PARTS} parts, numbered from 0")));
        }
        Ok(match kind {
            "visualize" => {
                let s = class_vis::Settings::from_values(&v, inputs.objective.unwrap_or(Objective::Class(0)))?;
                Job::Visualize(ClassVis::new(net, s)?, None)
            }
            "invert" => {
                let layers = v.layers("layers", spec)?.unwrap_or_default();
                if layers.is_empty() {
                    return Err(Error::Input("pick at least one layer to invert".into()));
                }
                let mut list = vec![];
                for layer in layers {
                    list.push(inversion::Inversion::new(net, inputs.image, inversion::Settings::from_values(&v, layer)).await?);
                }
                Job::Invert(list)
            }
            "dream" => {
                let layer = v.layer("layer", spec)?.ok_or_else(|| Error::Input("pick a layer to dream on".into()))?;
                let shape = [c, v.opt_int("height").unwrap_or(h), v.opt_int("width").unwrap_or(w)];
                Job::Dream(deepdream::Dream::new(net, inputs.image, shape, deepdream::Settings::from_values(&v, layer))?)
            }
            "style" => {
                let s = match (v.layer("contentLayer", spec)?, v.layers("styleLayers", spec)?) {
                    (Some(content), Some(styles)) => style::Settings::from_values(&v, content, styles),
                    (None, None) => {
                        let m =
                            style::Settings::mobilenet(net).ok_or_else(|| Error::Input("pick a content layer and style layers".into()))?;
                        style::Settings::from_values(&v, m.content_layer, m.style_layers)
                    }
                    _ => return Err(Error::Input("pick both a content layer and style layers".into())),
                };
                let size = v.opt_int("size").unwrap_or(h);
                Job::Style(style::Style::new(net, inputs.image, inputs.style, [c, size, size], s).await?)
            }
            "attack" | "fooling" => {
                Objective::Class(v.int("target")).check(net)?;
                if kind == "fooling" {
                    Job::Attack(Attack::fooling_from_values(c * h * w, &v), None)
                } else {
                    net.input_tensor(inputs.image)?;
                    Job::Attack(Attack::from_values(inputs.image, &v), None)
                }
            }
            "occlusion" => {
                let mut at = Attributor::new(net, fused);
                let part = inputs.part.unwrap_or((0, 1));
                Job::Occlusion(Occlusion::new(&mut at, inputs.image, occlusion::Settings::from_values(&v)?, part).await?, None)
            }
            "patches" | "tsne" | "landscape" => {
                let (train, test) = inputs.data.ok_or_else(|| Error::Input(format!("{kind} needs a dataset: load one first")))?;
                let data = if v.text("split") == "train" { train.clone() } else { test };
                match kind {
                    "patches" => {
                        let s = patches::Settings::from_values(&v, spec)?;
                        Job::Patches(Patches::new(net, data, s, inputs.part.unwrap_or((0, 1)))?, None)
                    }
                    "tsne" => Job::Tsne(Box::new(TsneRun::new(net, data, &v)?), None),
                    _ if v.text("kind") == "seeds" => {
                        let s = seeds::Settings::from_values(&v)?;
                        Job::Seeds(Box::new(Seeds::new(net, train, &data, s, inputs.fused_allowed)?))
                    }
                    _ => {
                        let weights = net.read_weights().await?;
                        let s = landscape::Settings::from_values(&v)?;
                        Job::Landscape(Landscape::new(net, weights, &data, s, inputs.part.unwrap_or((0, 1)))?, None)
                    }
                }
            }
            k => {
                return Err(Error::Input(format!(
                    "unknown job '{k}'; expected visualize, invert, dream, style, attack, fooling, occlusion, patches, tsne or landscape"
                )));
            }
        })
    }

    pub fn done(&self) -> bool {
        match self {
            Job::Visualize(v, _) => v.done(),
            Job::Invert(list) => list.iter().all(|l| l.done()),
            Job::Dream(d) => d.done(),
            Job::Style(s) => s.done(),
            Job::Attack(a, _) => a.done(),
            Job::Occlusion(o, _) => o.done() == o.total(),
            Job::Patches(p, _) => p.done(),
            Job::Tsne(t, _) => t.done(),
            Job::Landscape(l, _) => l.done(),
            Job::Seeds(s) => s.done(),
        }
    }

    /// Whether a step wants the fused CPU path's state lent (see [`Job::step`]).
    pub fn wants_fused(&self) -> bool {
        match self {
            Job::Occlusion(_, None) | Job::Patches(_, None) | Job::Landscape(_, None) | Job::Visualize(_, None) | Job::Attack(_, None) => {
                true
            }
            Job::Tsne(t, None) => t.reading(),
            _ => false,
        }
    }

    /// Makes the job's own copy of the fused CPU path's state from `net` (the network it started
    /// on), where the path applies on `backend`: when the caller's state no longer holds `net`'s
    /// weights (training went on).
    pub async fn own_fused(&mut self, net: &Net, backend: Backend) -> Result<(), Error> {
        if let Job::Occlusion(_, own @ None)
        | Job::Patches(_, own @ None)
        | Job::Tsne(_, own @ None)
        | Job::Landscape(_, own @ None)
        | Job::Visualize(_, own @ None)
        | Job::Attack(_, own @ None) = self
        {
            *own = cpu_train::for_net(net, backend, TrainConfig::default()).await?;
        }
        Ok(())
    }

    /// Runs steps until the budget is spent or the job is done (at least one step); `clock` is in
    /// milliseconds. `lent`: the fused CPU path's state for `net`, for a job that
    /// [`Job::wants_fused`] (its own copy is used otherwise).
    pub async fn step(
        &mut self,
        net: &Net,
        budget: Budget,
        clock: &dyn Fn() -> f64,
        mut lent: Option<&mut CpuTrainer>,
    ) -> Result<(), Error> {
        let t0 = clock();
        let mut n = 0;
        loop {
            match self {
                Job::Visualize(v, own) => {
                    v.step(net, own.as_mut().or(lent.as_deref_mut())).await?;
                }
                Job::Invert(list) => {
                    // The inversion furthest behind takes the next step.
                    let i = (0..list.len()).min_by_key(|&i| list[i].history.len()).unwrap_or(0);
                    if !list[i].done() {
                        list[i].step(net).await?;
                    }
                }
                Job::Dream(d) => {
                    d.step(net).await?;
                }
                Job::Style(s) => {
                    s.step().await?;
                }
                Job::Attack(a, own) => {
                    let mut at = Attributor::new(net, own.as_mut().or(lent.as_deref_mut()));
                    a.step(&mut at).await?;
                }
                Job::Occlusion(o, own) => {
                    let fused = match own.as_mut() {
                        Some(f) => Some(f),
                        None => lent.as_deref_mut(),
                    };
                    let mut at = Attributor::new(net, fused);
                    // As many positions as asked, as far as a batch of them fits.
                    let batch = match budget {
                        Budget::Items(k) => k.max(1),
                        Budget::Ms(_) => 16,
                    }
                    .min(crate::spec::Limits::here().max_batch(&net.spec));
                    o.run(&mut at, batch).await?;
                    if matches!(budget, Budget::Items(_)) {
                        return Ok(());
                    }
                }
                Job::Patches(p, own) => {
                    // A block of images a step (Budget::Items: that many blocks).
                    p.run(net, own.as_mut().or(lent.as_deref_mut())).await?;
                }
                Job::Tsne(t, own) => {
                    let fused = own.as_mut().or(lent.as_deref_mut());
                    // Budget::Items: that many images, or iterations.
                    let k = match budget {
                        Budget::Items(k) => k.max(1),
                        Budget::Ms(_) => 64,
                    };
                    let iters = if matches!(budget, Budget::Items(_)) { k } else { 1 };
                    t.run(net, fused, k, iters).await?;
                    if matches!(budget, Budget::Items(_)) {
                        return Ok(());
                    }
                }
                Job::Landscape(l, own) => {
                    let fused = own.as_mut().or(lent.as_deref_mut());
                    l.run(net, fused).await?;
                }
                Job::Seeds(s) => {
                    s.run(clock).await?;
                }
            }
            n += 1;
            let spent = match budget {
                Budget::Ms(ms) => clock() - t0 >= ms,
                Budget::Items(k) => n >= k,
            };
            if self.done() || spent {
                return Ok(());
            }
        }
    }

    /// The job's state: kind, step, total steps, history, previews.
    pub fn progress(&self, net: &Net) -> Progress {
        let shape = net.spec.input_shape();
        let one = |h: &[f32]| h.iter().map(|&v| vec![v]).collect::<Vec<_>>();
        let (kind, step, total, history, images): (&'static str, usize, usize, Vec<Vec<f32>>, Vec<Preview>) = match self {
            Job::Visualize(v, _) => ("visualize", v.history.len(), v.settings.steps, one(&v.history), vec![preview(v.current(), shape)]),
            Job::Invert(list) => {
                let history =
                    (0..list[0].history.len()).map(|i| list.iter().filter_map(|inv| inv.history.get(i).map(|h| h[1])).collect()).collect();
                let images = list
                    .iter()
                    .map(|inv| Preview {
                        layer: Some(inv.settings.layer),
                        loss: Some(inv.history.last().copied().unwrap_or_default()[1]),
                        ..preview(inv.current(), shape)
                    })
                    .collect();
                ("invert", list.iter().map(|i| i.history.len()).sum(), list.iter().map(|i| i.settings.steps).sum(), history, images)
            }
            Job::Dream(d) => {
                let (im, s) = d.current();
                ("dream", d.history.len(), d.settings.total_steps(), one(&d.history), vec![preview(im, s)])
            }
            Job::Style(s) => (
                "style",
                s.history.len(),
                s.settings.steps,
                s.history.iter().map(|h| h.to_vec()).collect(),
                vec![preview(s.current(), s.shape())],
            ),
            Job::Attack(a, _) => {
                ("attack", a.history.len(), a.steps, one(&a.history), vec![preview(a.original.clone(), shape), preview(a.x.clone(), shape)])
            }
            Job::Occlusion(o, _) => {
                let done = o.done() == o.total();
                let occlusion = OcclusionProgress {
                    part: (!o.whole()).then_some((o.range.start, o.range.end)),
                    ny: o.ny,
                    nx: o.nx,
                    base: o.base,
                    grid: o.grid.clone(),
                    class: o.settings.class,
                    window: o.settings.window,
                    stride: o.settings.stride,
                    map: (done && o.whole()).then(|| o.attribution()),
                };
                return Progress {
                    kind: "occlusion",
                    step: o.done(),
                    total: o.total(),
                    done,
                    history: vec![],
                    images: vec![],
                    occlusion: Some(occlusion),
                    dataset: None,
                };
            }
            Job::Patches(p, _) => {
                let (values, images, ys, xs) = p.top.lists();
                let pp = PatchesProgress {
                    layer: p.settings.layer,
                    shape: p.shape,
                    top: p.top.k,
                    patch: {
                        let (h, w) = p.field.patch_size(p.input[1], p.input[2]);
                        [p.input[0], h, w]
                    },
                    split: p.settings.split.clone(),
                    values,
                    images,
                    ys,
                    xs,
                    part: p.split.then_some((p.range.start, p.range.end)),
                };
                return Progress {
                    kind: "patches",
                    step: p.next - p.range.start,
                    total: p.range.len(),
                    done: p.done(),
                    history: vec![],
                    images: vec![],
                    occlusion: None,
                    dataset: Some(DatasetProgress::Patches(pp)),
                };
            }
            Job::Tsne(t, _) => {
                let s = &t.settings;
                let method = match s.method {
                    tsne::Method::Exact => "exact",
                    tsne::Method::BarnesHut { .. } => "barnes_hut",
                };
                let (stage, iteration, embedding, kl, lr) = match &t.stage {
                    tsne::Stage::Codes => ("codes", 0, vec![], vec![], 0.0),
                    tsne::Stage::Pca => ("pca", 0, vec![], vec![], 0.0),
                    tsne::Stage::Affinities(..) => ("affinities", 0, vec![], vec![], 0.0),
                    tsne::Stage::Optimizing(m) => {
                        (if m.done() { "done" } else { "optimizing" }, m.iteration, m.y.clone(), m.kl.clone(), m.learning_rate)
                    }
                };
                // Progress counts images read, points whose P is done, then iterations.
                let affinities = match &t.stage {
                    tsne::Stage::Affinities(b, _) => b.next,
                    tsne::Stage::Optimizing(_) => t.n,
                    _ => 0,
                };
                let (step, total) = (t.next + affinities + iteration, 2 * t.n + s.iterations);
                let tp = TsneProgress {
                    stage,
                    layer: t.layer,
                    points: t.n,
                    dim: t.dim,
                    explained: t.explained,
                    method,
                    iteration,
                    iterations: s.iterations,
                    learning_rate: lr,
                    exaggerating: iteration < tsne::EXPLORATION_ITERS,
                    embedding,
                    labels: t.labels.clone(),
                    split: t.split.clone(),
                    kl,
                };
                return Progress {
                    kind: "tsne",
                    step,
                    total,
                    done: t.done(),
                    history: vec![],
                    images: vec![],
                    occlusion: None,
                    dataset: Some(DatasetProgress::Tsne(tp)),
                };
            }
            Job::Seeds(s) => {
                let sp = SeedsProgress {
                    widths: s.settings.widths.clone(),
                    seeds: s.settings.seeds,
                    params: s.params.clone(),
                    steps: s.settings.steps,
                    images: s.test_count(),
                    loss: s.loss.clone(),
                    accuracy: s.accuracy.clone(),
                    train_loss: s.train_loss.clone(),
                    outcome: s
                        .outcome
                        .iter()
                        .map(|o| match o {
                            seeds::Outcome::Pending => "pending",
                            seeds::Outcome::Done => "done",
                            seeds::Outcome::Diverged => "diverged",
                        })
                        .collect(),
                    spread: s.spread(),
                };
                return Progress {
                    kind: "landscape",
                    step: s.steps_done(),
                    total: s.total_steps(),
                    done: s.done(),
                    history: vec![],
                    images: vec![],
                    occlusion: None,
                    dataset: Some(DatasetProgress::Seeds(sp)),
                };
            }
            Job::Landscape(l, _) => {
                let lp = LandscapeProgress {
                    slice: if l.settings.slice == landscape::Slice::Line { "line" } else { "plane" },
                    axis: l.axis.clone(),
                    loss: l.loss.clone(),
                    accuracy: l.accuracy.clone(),
                    images: l.images(),
                    split: l.settings.split.clone(),
                    coarse: l.coarse,
                    coarse_done: l.done_points >= l.coarse,
                    part: l.part(),
                };
                return Progress {
                    kind: "landscape",
                    step: l.done_points,
                    total: l.total(),
                    done: l.done(),
                    history: vec![],
                    images: vec![],
                    occlusion: None,
                    dataset: Some(DatasetProgress::Landscape(lp)),
                };
            }
        };
        Progress { kind, step, total, done: step >= total, history, images, occlusion: None, dataset: None }
    }
}
