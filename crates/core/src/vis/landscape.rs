//! The loss surface around a trained network (the lecture's section II):
//!
//! - **line**: the loss and accuracy along the straight line from the initial weights θ₀ to the
//!   trained ones θ₁, θ(α) = θ₀ + α (θ₁ − θ₀), past both ends (Goodfellow, Vinyals & Saxe 2015:
//!   α over [−0.5, 1.5]);
//! - **plane**: a 2-D slice θ₁ + a δ₁ + b δ₂ along two random Gaussian directions, each
//!   *filter-normalized* (Li et al. 2018: every filter of a direction — a conv weight's output
//!   channel, a fully connected weight's row — rescaled to the norm of the same filter of θ₁;
//!   biases and batchnorm's parameters 0, running statistics untouched), evaluated coarse to fine:
//!   the points of an 11 x 11 grid first, then the rest row by row.
//!
//! The third kind, `seeds`, trains nets rather than slicing one: see [`crate::vis::seeds`].
//!
//! Each point is the mean cross-entropy (and the accuracy) of the network with those weights on
//! one fixed set of images, through the fused CPU path where it runs, else Burn.

use serde_json::{Map, Value};

use crate::cpu_train::CpuTrainer;
use crate::data::Dataset;
use crate::rng::SplitMix64;
use crate::settings::{Field, Resolved, Schema};
use crate::spec::{Limits, NetSpec};
use crate::{Error, Net};

/// Weights per layer, per parameter, as [`crate::spec::Layer::params`] lists them.
pub type Weights = Vec<Vec<Vec<f32>>>;

/// The settings list (see [`crate::settings`]).
pub fn schema() -> Schema {
    Schema::new(
        "landscape",
        vec![
            Field::choice("kind", "slice", vec!["line", "plane", "seeds"], "plane").help(
                "line: from the initial weights to the trained ones; plane: two random filter-normalized directions; seeds: the spread of final test losses of nets trained from several seeds at several widths",
            ),
            Field::integer("images", "images", 0, 0, 10000)
                .help("Test images the loss is measured on (0: 1,000 for the line and the seeds, 256 for the plane)"),
            Field::choice("split", "split", vec!["test", "train"], "test"),
            Field::integer("points", "points", 0, 0, 401).help(
                "Points along the line, or per side of the grid (0: 81 for the line, every 0.025 with α = 0 and 1 on it; 51 for the plane)",
            ),
            Field::number("from", "line from α", -0.5, -10.0, 10.0, 0.1).group("line"),
            Field::number("to", "line to α", 1.5, -10.0, 10.0, 0.1).group("line"),
            Field::integer("initSeed", "initial weights' seed", 7, 0, u32::MAX as u64)
                .help("The line starts at the random initialization with this seed (the page's seed when it trained the net)")
                .group("line"),
            Field::number("span", "plane half-width", 1.0, 0.01, 100.0, 0.1).group("plane"),
            Field::integer("seed", "directions' seed", 0, 0, u32::MAX as u64).group("plane"),
            Field::text("widths", "widths", "0.25, 0.5, 1, 2")
                .help("Multipliers of every hidden conv layer's filters and fc layer's units, separated by commas (0.05 to 8)")
                .group("seeds"),
            Field::integer("seeds", "seeds per width", 5, 2, 50).group("seeds"),
            Field::integer("steps", "training steps per net", 500, 1, 100_000)
                .help("Minibatches of 20 (the trainer's defaults: SGD with momentum 0.9, L2 0.001), the learning rate falling linearly to 0")
                .group("seeds"),
            Field::number("learningRate", "learning rate", 0.01, 1e-6, f64::INFINITY, 0.001)
                .help("No upper bound: a net whose loss or weights stop being finite is marked diverged")
                .group("seeds"),
        ],
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice {
    Line,
    Plane,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub slice: Slice,
    pub images: usize,
    pub split: String,
    pub points: usize,
    pub from: f64,
    pub to: f64,
    pub init_seed: u64,
    pub span: f64,
    pub seed: u64,
}

impl Settings {
    pub fn from_values(v: &Map<String, Value>) -> Result<Settings, Error> {
        let slice = if v.text("kind") == "line" { Slice::Line } else { Slice::Plane };
        let images = match v.int("images") {
            0 if slice == Slice::Line => 1000,
            0 => 256,
            n => n,
        };
        let (from, to) = (v.num("from"), v.num("to"));
        if from >= to {
            return Err(Error::Input(format!("the line's 'from' ({from}) must be below its 'to' ({to})")));
        }
        Ok(Settings {
            slice,
            images,
            split: v.text("split").to_string(),
            points: match v.int("points") {
                0 if slice == Slice::Line => 81,
                0 => 51,
                n => n.max(2),
            },
            from,
            to,
            init_seed: v.int("initSeed") as u64,
            span: v.num("span"),
            seed: v.int("seed") as u64,
        })
    }
}

/// Li et al.'s filter normalization of `direction` against `weights` (in place): each filter (a
/// weight tensor's slice along its first axis) scaled to the norm of the weights' filter; tensors
/// of one axis (biases, batchnorm's scale and shift) and those not trained (running statistics)
/// set to 0.
pub fn filter_normalize(spec: &NetSpec, direction: &mut Weights, weights: &Weights) {
    for (l, (dl, wl)) in spec.layers.iter().zip(direction.iter_mut().zip(weights)) {
        for (p, (d, w)) in l.params().iter().zip(dl.iter_mut().zip(wl)) {
            if p.shape.len() <= 1 || !p.trainable {
                d.fill(0.0);
                continue;
            }
            let per = p.shape[1..].iter().product::<usize>().max(1);
            for (df, wf) in d.chunks_mut(per).zip(w.chunks(per)) {
                let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
                let s = (norm(wf) / (norm(df) + 1e-10)) as f32;
                df.iter_mut().for_each(|x| *x *= s);
            }
        }
    }
}

/// A random Gaussian direction shaped like `weights`.
pub fn random_direction(weights: &Weights, rng: &mut SplitMix64) -> Weights {
    weights.iter().map(|l| l.iter().map(|p| p.iter().map(|_| rng.normal() as f32).collect()).collect()).collect()
}

/// `origin + a·d1 + b·d2`.
pub fn combine(origin: &Weights, d1: &Weights, a: f32, d2: Option<&Weights>, b: f32) -> Weights {
    origin
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.iter()
                .enumerate()
                .map(|(j, p)| p.iter().enumerate().map(|(k, &o)| o + a * d1[i][j][k] + d2.map(|d| b * d[i][j][k]).unwrap_or(0.0)).collect())
                .collect()
        })
        .collect()
}

/// Mean cross-entropy and accuracy of class scores (`[n, classes]`) against labels, in f64.
pub fn loss_and_accuracy(scores: &[f32], labels: &[usize], classes: usize) -> (f64, f64) {
    let (mut loss, mut right) = (0f64, 0usize);
    for (row, &y) in scores.chunks(classes).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        loss += lse - row[y] as f64;
        let best = row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
        right += (best == y) as usize;
    }
    let n = labels.len().max(1) as f64;
    (loss / n, right as f64 / n)
}

/// A slice being evaluated, or done.
#[derive(Debug, Clone)]
pub struct Landscape {
    pub settings: Settings,
    /// The line's α values, or the plane's coordinates along each side.
    pub axis: Vec<f64>,
    /// Loss and accuracy per point (the line's, or the plane's row-major), NaN where not yet
    /// evaluated.
    pub loss: Vec<f32>,
    pub accuracy: Vec<f32>,
    /// The order points are evaluated in, and how many are done.
    order: Vec<usize>,
    pub done_points: usize,
    /// The first `coarse` points of `order` make the coarse grid.
    pub coarse: usize,
    /// This job's part (k of n): every n-th point of the whole order from the k-th.
    part: (usize, usize),
    origin: Weights,
    d1: Weights,
    d2: Option<Weights>,
    images: Vec<f32>,
    labels: Vec<usize>,
    /// The first layer's pre-activations for origin, d1 and d2 (see [`FirstLayer`]), made on the
    /// first step on the fused path; `Some(None)` where the shortcut does not apply.
    first: Option<Option<FirstLayer>>,
}

/// The first layer's output is an activation of an affine function of its parameters, so along
/// the slice its pre-activation is `z(origin) + a z(d1) + b z(d2)` (each z with its own bias) —
/// computed once for the images, which turns the layer's convolution at every point into two
/// multiply-adds per value.
#[derive(Debug, Clone)]
struct FirstLayer {
    /// `[n][C][H * W]` each: z(origin), z(d1), z(d2) (zeros for the line).
    z: [Vec<f32>; 3],
    activation: Option<crate::layers::Activation>,
}

/// At most this many values of the first layer's pre-activations (3 x images x its output size)
/// are kept (64 MiB).
const FIRST_LAYER_VALUES: usize = 16 << 20;

impl FirstLayer {
    /// None where layer 1 is not a conv or fc layer reading the input on the fused path, or its
    /// values would take too much memory.
    fn new(net: &Net, parts: [Option<&Weights>; 3], images: &[f32], n: usize) -> Result<Option<FirstLayer>, Error> {
        let spec = &net.spec;
        let Some(l) = spec.layers.get(1) else { return Ok(None) };
        let affine = matches!(l.kind, crate::layers::LayerKind::Conv(_) | crate::layers::LayerKind::Fc(_));
        let size = l.out_shape.iter().product::<usize>();
        let past = crate::cpu_train::starts_past(spec, 1);
        if !affine
            || l.inputs != [0]
            || spec.score_layer() < 2
            || !crate::cpu_train::supported(spec)
            || !past
            || 3 * n * size > FIRST_LAYER_VALUES
        {
            return Ok(None);
        }
        // The same net with layer 1's activation off: its layer-1 output is the pre-activation.
        let mut json = spec.json.clone();
        json["layers"][1]["activation"] = "none".into();
        let linear = NetSpec::from_value(&json)?;
        let zero = vec![0f32; n * size];
        let mut z: [Vec<f32>; 3] = [zero.clone(), zero.clone(), zero];
        for (zk, w) in z.iter_mut().zip(parts) {
            let Some(w) = w else { continue };
            let mut f = CpuTrainer::from_spec(linear.clone(), w.clone(), crate::train::TrainConfig::default());
            *zk = f.layer_output(images, n, 1)?;
        }
        Ok(Some(FirstLayer { z, activation: l.kind.ops().activation() }))
    }
}

impl Landscape {
    /// `weights`: the trained network's (`net`'s, read back by the caller). `part` (k, n): this
    /// job evaluates every n-th point of the whole order from the k-th ((0, 1): all of them), so n
    /// engines with parts 0..n evaluate every point once, each point exactly as one engine would.
    pub fn new(net: &Net, weights: Weights, data: &Dataset, settings: Settings, part: (usize, usize)) -> Result<Landscape, Error> {
        let (pk, pn) = part;
        if pn == 0 || pk >= pn {
            return Err(Error::Input(format!("part {pk} of {pn}: parts are numbered 0 to n - 1")));
        }
        let spec = &net.spec;
        data.check_input(spec.input_shape())?;
        let n = settings.images.min(data.len());
        if n == 0 {
            return Err(Error::Input(format!("the {} split has no images", settings.split)));
        }
        let idx: Vec<usize> = (0..n).collect();
        let (images, labels) = data.batch(&idx, spec.input_shape(), None);
        let classes = spec.classes();
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(Error::Input(format!("a label ({bad}) is not one of the network's {classes} classes")));
        }
        let p = settings.points;
        let (axis, origin, d1, d2, order, coarse) = match settings.slice {
            Slice::Line => {
                let theta0 = Net::init_weights(spec, settings.init_seed);
                let d1 = combine(&weights, &theta0, -1.0, None, 0.0);
                let axis: Vec<f64> = (0..p).map(|i| settings.from + (settings.to - settings.from) * i as f64 / (p - 1) as f64).collect();
                (axis, theta0, d1, None, (0..p).collect(), p)
            }
            Slice::Plane => {
                let mut rng = SplitMix64(settings.seed ^ 0x4c41_4e44);
                let mut d1 = random_direction(&weights, &mut rng);
                let mut d2 = random_direction(&weights, &mut rng);
                filter_normalize(spec, &mut d1, &weights);
                filter_normalize(spec, &mut d2, &weights);
                let axis: Vec<f64> = (0..p).map(|i| -settings.span + 2.0 * settings.span * i as f64 / (p - 1) as f64).collect();
                // Coarse first: the points of an 11 x 11 grid (every 5th of 51), then the rest.
                let step = ((p - 1) / 10).max(1);
                let on = |i: usize| i.is_multiple_of(step);
                let mut order: Vec<usize> = (0..p * p).filter(|&k| on(k / p) && on(k % p)).collect();
                let coarse = order.len();
                order.extend((0..p * p).filter(|&k| !(on(k / p) && on(k % p))));
                (axis, weights, d1, Some(d2), order, coarse)
            }
        };
        let total = order.len();
        // This part's share, in the same order; its coarse points are those of the whole coarse grid.
        let coarse = (0..coarse).filter(|i| i % pn == pk).count();
        let order: Vec<usize> = order.into_iter().skip(pk).step_by(pn).collect();
        Ok(Landscape {
            axis,
            loss: vec![f32::NAN; total],
            accuracy: vec![f32::NAN; total],
            order,
            done_points: 0,
            coarse,
            origin,
            d1,
            d2,
            images,
            labels,
            first: None,
            settings,
            part,
        })
    }

    /// The points this job evaluates.
    pub fn total(&self) -> usize {
        self.order.len()
    }

    /// How many images each point is measured on (the split's first ones).
    pub fn images(&self) -> usize {
        self.labels.len()
    }

    /// The part (k of n) this job is, if the slice is split.
    pub fn part(&self) -> Option<(usize, usize)> {
        (self.part.1 > 1).then_some(self.part)
    }

    pub fn done(&self) -> bool {
        self.done_points >= self.total()
    }

    /// The weights at point `k` (the line's index, or the plane's row-major index).
    pub fn weights_at(&self, k: usize) -> Weights {
        let p = self.settings.points;
        match &self.d2 {
            None => combine(&self.origin, &self.d1, self.axis[k] as f32, None, 0.0),
            Some(d2) => combine(&self.origin, &self.d1, self.axis[k % p] as f32, Some(d2), self.axis[k / p] as f32),
        }
    }

    /// Evaluates the next point.
    pub async fn run(&mut self, net: &Net, fused: Option<&mut CpuTrainer>) -> Result<(), Error> {
        if self.done() {
            return Ok(());
        }
        let k = self.order[self.done_points];
        let w = self.weights_at(k);
        let (loss, acc) = match fused {
            Some(f) => {
                if self.first.is_none() {
                    let parts = [Some(&self.origin), Some(&self.d1), self.d2.as_ref()];
                    self.first = Some(FirstLayer::new(net, parts, &self.images, self.labels.len())?);
                }
                match self.first.as_ref().and_then(Option::as_ref) {
                    Some(first) => {
                        let p = self.settings.points;
                        let (a, b) = match self.d2 {
                            None => (self.axis[k] as f32, 0.0),
                            Some(_) => (self.axis[k % p] as f32, self.axis[k / p] as f32),
                        };
                        evaluate_past_first(net, w, first, a, b, &self.labels, f)?
                    }
                    None => evaluate(net, w, &self.images, &self.labels, Some(f)).await?,
                }
            }
            None => evaluate(net, w, &self.images, &self.labels, None).await?,
        };
        self.loss[k] = loss as f32;
        self.accuracy[k] = acc as f32;
        self.done_points += 1;
        Ok(())
    }
}

/// [`evaluate`] on the fused path from the first layer's output `act(z0 + a z1 + b z2)`, made a
/// chunk at a time ([`CpuTrainer::layer_output_from`]); `w` supplies the other layers' weights.
fn evaluate_past_first(
    net: &Net,
    w: Weights,
    first: &FirstLayer,
    a: f32,
    b: f32,
    labels: &[usize],
    f: &mut CpuTrainer,
) -> Result<(f64, f64), Error> {
    let spec = &net.spec;
    let (n, classes, score) = (labels.len(), spec.classes(), spec.score_layer());
    let [c, h, wd] = spec.layers[1].out_shape;
    let p = h * wd;
    let [z0, z1, z2] = &first.z;
    let kept = std::mem::replace(&mut f.weights, w);
    let scores = f.layer_output_from(1, n, score, &mut |b0, m, out| {
        for ch in 0..c {
            for i in 0..m {
                let src = ((b0 + i) * c + ch) * p;
                let dst = &mut out[(ch * m + i) * p..][..p];
                for (((d, &x0), &x1), &x2) in dst.iter_mut().zip(&z0[src..src + p]).zip(&z1[src..src + p]).zip(&z2[src..src + p]) {
                    *d = x0 + a * x1 + b * x2;
                }
                crate::layers::act::activate(first.activation, dst);
            }
        }
    });
    f.weights = kept;
    Ok(loss_and_accuracy(&scores?, labels, classes))
}

/// Mean cross-entropy and accuracy of the network with weights `w` on `images`: on the fused CPU
/// path (`fused`, whose weights are swapped for the call) or through Burn.
pub async fn evaluate(
    net: &Net,
    w: Weights,
    images: &[f32],
    labels: &[usize],
    fused: Option<&mut CpuTrainer>,
) -> Result<(f64, f64), Error> {
    let spec = &net.spec;
    let (n, classes, score) = (labels.len(), spec.classes(), spec.score_layer());
    let mut scores = Vec::with_capacity(n * classes);
    let per = images.len() / n.max(1);
    let batch = Limits::here().max_batch(spec).max(1);
    match fused {
        Some(f) => {
            let kept = std::mem::replace(&mut f.weights, w);
            let r = (|| {
                for (a, b) in (0..n).step_by(batch).map(|a| (a, (a + batch).min(n))) {
                    scores.extend(f.layer_output(&images[a * per..b * per], b - a, score)?);
                }
                Ok::<(), Error>(())
            })();
            f.weights = kept;
            r?;
        }
        None => {
            let moved = Net::with_weights(spec.clone(), w, &net.device);
            let [d, h, wd] = spec.input_shape();
            for (a, b) in (0..n).step_by(batch).map(|a| (a, (a + batch).min(n))) {
                let x = burn::tensor::Tensor::<4>::from_data(
                    burn::tensor::TensorData::new(images[a * per..b * per].to_vec(), [b - a, d, h, wd]),
                    &net.device,
                );
                let y = moved.forward_upto(x, score, &moved.params).pop().expect("layer 0 at least");
                scores.extend(crate::read(y.flatten::<1>(0, 3)).await?);
            }
        }
    }
    Ok(loss_and_accuracy(&scores, labels, classes))
}
