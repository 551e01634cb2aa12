//! Attribution: which input pixels a target (a class score or probability, a neuron, a channel)
//! depends on. Vanilla gradient (Simonyan et al. 2014), deconvnet (Zeiler & Fergus 2014) and
//! guided backpropagation (Springenberg et al. 2015) differ only in the ReLU's backward rule
//! ([`ReluRule`]); gradient x input, SmoothGrad (Smilkov et al. 2017), integrated gradients
//! (Sundararajan et al. 2017) and Grad-CAM (Selvaraju et al. 2017) are built on them. Each is
//! checked against Captum (tests/attribution.rs). Occlusion is in [`super::occlusion`].

use serde_json::{Map, Value, json};

use crate::settings::{Field, Schema};
use burn::tensor::{Tensor, TensorData};

use crate::cpu_train::CpuTrainer;
use crate::grad::{self, Objective, ReluRule};
use crate::rng::SplitMix64;
use crate::vis::layers::{self, Probe};
use crate::{Error, Net, read_all};

/// Where gradients come from: the fused CPU path when the net and objective allow it, else Burn
/// (WebGPU, or objectives above the scores). Both give the same numbers (tests/attribution.rs).
pub struct Attributor<'a> {
    pub net: &'a Net,
    pub fused: Option<&'a mut CpuTrainer>,
}

/// SmoothGrad's noisy copies and integrated gradients' path points go through in batches of this
/// many, counted from the first: a part of the samples (a worker's share, [`part`]) is whole
/// batches, so that its gradients are bit for bit those of one engine doing all of them.
pub const SAMPLE_BATCH: usize = 8;

impl<'a> Attributor<'a> {
    pub fn new(net: &'a Net, fused: Option<&'a mut CpuTrainer>) -> Attributor<'a> {
        Attributor { net, fused }
    }

    fn image_size(&self) -> usize {
        self.net.spec.input_shape().iter().product()
    }

    /// The objective's value for each of `n` images (NCHW) and its gradient with respect to each
    /// image, with `rule` at every ReLU.
    pub async fn input_grads(
        &mut self,
        images: &[f32],
        n: usize,
        objective: &Objective,
        rule: ReluRule,
    ) -> Result<(Vec<f32>, Vec<f32>), Error> {
        if let Some(fused) = self.fused.as_deref_mut()
            && let Some(r) = fused.input_grads(self.net, images, n, objective, rule)?
        {
            return Ok(r);
        }
        let [d, h, w] = self.net.spec.input_shape();
        if n == 0 || images.len() != n * d * h * w {
            self.net.input_tensor(images)?;
            return Err(Error::Input(format!("{} values are not {n} inputs of {d}x{h}x{w}", images.len())));
        }
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            return Err(Error::Input(format!("the image has a non-finite value ({}) at index {i}", images[i])));
        }
        let x = Tensor::<4>::from_data(TensorData::new(images.to_vec(), [n, d, h, w]), &self.net.device);
        objective.check(self.net)?;
        let outputs = self.net.forward_upto(x, objective.target_layer(self.net), &self.net.params);
        let (value, input_grad) = grad::input_grad(self.net, objective, &outputs, rule)?;
        let mut r = read_all(vec![value, input_grad.flatten(0, 3)]).await?.into_iter();
        Ok((r.next().unwrap_or_default(), r.next().unwrap_or_default()))
    }

    /// The gradients of many images, in batches of [`SAMPLE_BATCH`].
    async fn input_grads_batched(&mut self, images: &[f32], objective: &Objective, rule: ReluRule) -> Result<Vec<f32>, Error> {
        let size = self.image_size();
        let mut grads = Vec::with_capacity(images.len());
        for chunk in images.chunks(SAMPLE_BATCH * size) {
            let (_, g) = self.input_grads(chunk, chunk.len() / size, objective, rule).await?;
            grads.extend(g);
        }
        Ok(grads)
    }

    /// The net's last output (the probabilities, for a net ending in a softmax) for `n` images.
    pub async fn outputs(&mut self, images: &[f32], n: usize) -> Result<Vec<f32>, Error> {
        self.outputs_of(images, n, self.net.spec.layers.len() - 1).await
    }

    /// Layer `last`'s output for `n` images.
    pub async fn outputs_of(&mut self, images: &[f32], n: usize, last: usize) -> Result<Vec<f32>, Error> {
        if let Some(fused) = self.fused.as_deref_mut()
            && last <= self.net.spec.score_layer() + 1
        {
            return fused.layer_output(images, n, last);
        }
        let [d, h, w] = self.net.spec.input_shape();
        if n == 0 || images.len() != n * d * h * w {
            return Err(Error::Input(format!("{} values are not {n} inputs of {d}x{h}x{w}", images.len())));
        }
        let x = Tensor::<4>::from_data(TensorData::new(images.to_vec(), [n, d, h, w]), &self.net.device);
        let out = self.net.forward_upto(x, last, &self.net.params).pop().expect("a net has layers");
        crate::read(out.flatten::<1>(0, 3)).await
    }

    /// The layer view of one image with `rule` at every ReLU.
    pub async fn probe(&mut self, image: &[f32], objective: &Objective, rule: ReluRule) -> Result<Probe, Error> {
        if let Some(fused) = self.fused.as_deref_mut()
            && let Some(p) = fused.probe_with(self.net, image, objective, rule)?
        {
            return Ok(p);
        }
        layers::probe_with(self.net, image, objective, rule).await
    }
}

/// The attribution methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// d target / d input (Simonyan et al.'s saliency before taking its absolute value).
    Gradient,
    Deconvnet,
    Guided,
    /// The gradient times the input.
    GradientXInput,
    /// The gradient averaged over noisy copies of the input.
    SmoothGrad,
    /// The gradient integrated along the straight path from a baseline to the input.
    IntegratedGradients,
    /// A conv layer's channels weighted by their mean gradient, summed (at that layer's size).
    GradCam,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Gradient,
        Method::Deconvnet,
        Method::Guided,
        Method::GradientXInput,
        Method::SmoothGrad,
        Method::IntegratedGradients,
        Method::GradCam,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::Deconvnet => "deconvnet",
            Method::Guided => "guided",
            Method::GradientXInput => "gradient-x-input",
            Method::SmoothGrad => "smoothgrad",
            Method::IntegratedGradients => "integrated-gradients",
            Method::GradCam => "grad-cam",
        }
    }

    pub fn parse(s: &str) -> Result<Method, Error> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
            Error::Input(format!("unknown attribution method '{s}'; expected one of {}", names.join(", ")))
        })
    }
}

/// How a map `[C, H, W]` becomes one plane to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// max over channels of |value| (Simonyan et al.'s saliency map).
    Abs,
    /// The sum over channels, sign kept (evidence for and against).
    Signed,
}

impl Method {
    /// How the method's maps are usually shown: signed where the sign means something.
    pub fn display(self) -> Display {
        match self {
            Method::Gradient | Method::SmoothGrad | Method::GradCam => Display::Abs,
            _ => Display::Signed,
        }
    }
}

/// One plane `[H, W]` from a map `[C, H, W]`.
pub fn reduce(map: &[f32], [c, h, w]: [usize; 3], display: Display) -> Vec<f32> {
    let p = h * w;
    (0..p)
        .map(|i| match display {
            Display::Abs => (0..c).map(|k| map[k * p + i].abs()).fold(0.0, f32::max),
            Display::Signed => (0..c).map(|k| map[k * p + i]).sum(),
        })
        .collect()
}

/// How integrated gradients samples the path (Captum's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quadrature {
    /// Gauss-Legendre nodes and weights on [0, 1] (Captum's default).
    GaussLegendre,
    /// Captum's `riemann_trapezoid`: `n` evenly spaced points from 0 to 1, each weighted 1/n
    /// and the two ends 1/(2n). (Captum's weights sum to (n-1)/n, not 1, so the completeness
    /// delta carries an extra 1/n of the score difference; it is kept for parity with Captum.)
    Trapezoid,
}

impl Quadrature {
    pub fn parse(s: &str) -> Result<Quadrature, Error> {
        match s {
            "gausslegendre" | "gauss-legendre" => Ok(Quadrature::GaussLegendre),
            "riemann_trapezoid" | "trapezoid" => Ok(Quadrature::Trapezoid),
            _ => Err(Error::Input(format!("unknown integration rule '{s}'; expected gausslegendre or trapezoid"))),
        }
    }

    /// The points `alpha` in [0, 1] and their weights.
    pub fn points(self, steps: usize) -> (Vec<f64>, Vec<f64>) {
        match self {
            Quadrature::GaussLegendre => gauss_legendre(steps),
            Quadrature::Trapezoid if steps == 1 => (vec![1.0], vec![1.0]),
            Quadrature::Trapezoid => {
                let h = 1.0 / steps as f64;
                let alphas = (0..steps).map(|i| i as f64 / (steps - 1) as f64).collect();
                let weights = (0..steps).map(|i| if i == 0 || i == steps - 1 { h / 2.0 } else { h }).collect();
                (alphas, weights)
            }
        }
    }
}

/// Gauss-Legendre nodes and weights mapped to [0, 1] (Newton's method on the Legendre
/// polynomial; the same as numpy's `leggauss`, which Captum uses, to rounding).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            // P_n(x) and its derivative by the three-term recurrence.
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let pn = if n == 1 { x } else { p1 };
            let pm = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (x * pn - pm) / (x * x - 1.0);
            let dx = pn / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        // Ascending order on [-1, 1]: -x first.
        nodes[i] = -x;
        nodes[n - 1 - i] = x;
        weights[i] = w;
        weights[n - 1 - i] = w;
    }
    (nodes.iter().map(|x| 0.5 * (1.0 + x)).collect(), weights.iter().map(|w| 0.5 * w).collect())
}

/// The settings of one attribution; [`Settings::default`] gives the papers' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub method: Method,
    /// SmoothGrad: the noise's standard deviation as a fraction of the image's value range
    /// (Smilkov et al. use 10-20%).
    pub noise: f32,
    pub samples: usize,
    pub seed: u64,
    /// SmoothGrad with given noise (`samples` x image), instead of drawing it from `seed`.
    pub noise_values: Option<Vec<f32>>,
    /// Integrated gradients: the baseline, one value for every pixel or a whole image.
    pub baseline: Vec<f32>,
    pub steps: usize,
    pub quadrature: Quadrature,
    /// Grad-CAM: the layer, and whether negative evidence is cut (the paper's ReLU).
    pub layer: Option<usize>,
    pub relu: bool,
}

/// The attribution settings: every key, default and range, written once (the page's controls,
/// the facade and the CLI's flags and `--set` read them from here).
pub fn schema() -> Schema {
    Schema::new(
        "attribution",
        vec![
            Field::choice("method", "method", Method::ALL.iter().map(|m| m.name()).collect(), "gradient"),
            Field::number("noise", "noise", 0.15, 0.0, 1.0, 0.05)
                .unit("of the value range")
                .help("SmoothGrad: the noise's standard deviation (Smilkov et al. use 10-20%)")
                .group("smoothgrad"),
            Field::integer("samples", "samples", 25, 1, 500).help("SmoothGrad: how many noisy copies are averaged").group("smoothgrad"),
            Field::integer("seed", "seed", 1, 0, 1 << 32).help("SmoothGrad: the noise's seed").group("smoothgrad"),
            Field::numbers("noiseValues", "noise values", Value::Null)
                .help("SmoothGrad: the noise itself (samples x image), instead of drawing it from the seed")
                .group("smoothgrad"),
            Field::numbers("baseline", "baseline", json!(0.0))
                .help("Integrated gradients: the baseline, one value for every pixel or a whole image")
                .group("integrated-gradients"),
            Field::integer("steps", "steps", 50, 1, 1000).help("Integrated gradients: points on the path").group("integrated-gradients"),
            Field::choice("rule", "rule", vec!["gausslegendre", "riemann_trapezoid"], "gausslegendre")
                .help("Integrated gradients: Gauss-Legendre, or Captum's trapezoid rule")
                .group("integrated-gradients"),
            Field::layer("layer", "layer").help("Grad-CAM: the layer (default: the last spatial layer below the target)").group("grad-cam"),
            Field::boolean("relu", "positive evidence only", true).help("Grad-CAM: the paper's ReLU on the weighted sum").group("grad-cam"),
        ],
    )
}

impl Settings {
    /// The settings from values [`Schema::resolve`] returned; `layer_of` turns a layer's name or
    /// number into its index (the net's [`crate::spec::NetSpec::layer_index`]).
    pub fn from_values(v: &Map<String, Value>, layer_of: &dyn Fn(&str) -> Result<usize, Error>) -> Result<Settings, Error> {
        let num = |k: &str| v[k].as_f64().expect("resolved");
        let floats = |k: &str| -> Option<Vec<f32>> {
            match &v[k] {
                Value::Null => None,
                Value::Array(a) => Some(a.iter().map(|x| x.as_f64().expect("resolved") as f32).collect()),
                x => Some(vec![x.as_f64().expect("resolved") as f32]),
            }
        };
        Ok(Settings {
            method: Method::parse(v["method"].as_str().expect("resolved"))?,
            noise: num("noise") as f32,
            samples: num("samples") as usize,
            seed: num("seed") as u64,
            noise_values: floats("noiseValues"),
            baseline: floats("baseline").unwrap_or_else(|| vec![0.0]),
            steps: num("steps") as usize,
            quadrature: Quadrature::parse(v["rule"].as_str().expect("resolved"))?,
            layer: match &v["layer"] {
                Value::Null => None,
                Value::Number(n) => Some(layer_of(&n.to_string())?),
                Value::String(s) => Some(layer_of(s)?),
                other => return Err(Error::Input(format!("attribution setting 'layer': expected a layer, got {other}"))),
            },
            relu: v["relu"].as_bool().expect("resolved"),
        })
    }
}

impl Default for Settings {
    /// The schema's defaults (the papers').
    fn default() -> Settings {
        let v = schema().resolve(&Value::Null, false).expect("the defaults are valid");
        Settings::from_values(&v, &|s| s.parse().map_err(|_| Error::Input(format!("no layer '{s}'")))).expect("the defaults are valid")
    }
}

/// An attribution map and what goes with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// The map at the input's shape `[C, H, W]` (Grad-CAM: upsampled bilinearly, one channel).
    pub map: Vec<f32>,
    pub shape: [usize; 3],
    /// The target's value for the image.
    pub value: f32,
    /// Grad-CAM: the map at its layer's size `[h, w]`.
    pub layer_map: Option<(Vec<f32>, [usize; 2])>,
    /// Integrated gradients: sum of the map minus (f(input) - f(baseline)); near 0 when the
    /// path integral is well approximated (the completeness axiom).
    pub delta: Option<f32>,
}

/// Gaussian noise for SmoothGrad: `samples` images of N(0, (level * range)^2), range being the
/// image's max minus min (or 1 for a flat image).
pub fn smoothgrad_noise(image: &[f32], level: f32, samples: usize, seed: u64) -> Vec<f32> {
    let (lo, hi) = image.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let range = if hi > lo { hi - lo } else { 1.0 };
    let std = (level * range) as f64;
    let mut rng = SplitMix64(seed);
    (0..samples * image.len()).map(|_| (rng.normal() * std) as f32).collect()
}

/// How many images a method differentiates and averages: SmoothGrad's noisy copies, integrated
/// gradients' path points; 0 for the methods of one pass. Checks the settings those need.
pub fn sample_count(s: &Settings, size: usize) -> Result<usize, Error> {
    match s.method {
        Method::SmoothGrad => match &s.noise_values {
            Some(n) if n.is_empty() || n.len() % size != 0 => {
                Err(Error::Input(format!("SmoothGrad noise has {} values, not a multiple of the image's {size}", n.len())))
            }
            Some(n) => Ok(n.len() / size),
            None if s.samples == 0 || s.samples > 1000 => {
                Err(Error::Input(format!("SmoothGrad needs 1 to 1000 samples, not {}", s.samples)))
            }
            None => Ok(s.samples),
        },
        Method::IntegratedGradients => {
            if s.steps == 0 || s.steps > 1000 {
                return Err(Error::Input(format!("integrated gradients needs 1 to 1000 steps, not {}", s.steps)));
            }
            baseline(s, size)?;
            Ok(s.steps)
        }
        _ => Ok(0),
    }
}

/// Part `k` of `n` of `total` samples: whole batches of [`SAMPLE_BATCH`], as even as they go.
pub fn part(total: usize, k: usize, n: usize) -> std::ops::Range<usize> {
    let batches = total.div_ceil(SAMPLE_BATCH);
    let n = n.max(1);
    let at = |k: usize| (batches * k.min(n) / n * SAMPLE_BATCH).min(total);
    at(k)..at(k + 1)
}

fn baseline(s: &Settings, size: usize) -> Result<Vec<f32>, Error> {
    match s.baseline.len() {
        1 => Ok(vec![s.baseline[0]; size]),
        n if n == size => Ok(s.baseline.clone()),
        n => Err(Error::Input(format!("the baseline has {n} values; expected 1 or the image's {size}"))),
    }
}

/// The images of samples `range` (SmoothGrad: the image plus its noise; integrated gradients:
/// the points of the path from the baseline).
fn sample_images(image: &[f32], s: &Settings, range: std::ops::Range<usize>) -> Result<Vec<f32>, Error> {
    let size = image.len();
    Ok(match s.method {
        Method::SmoothGrad => {
            let generated;
            let noise = match &s.noise_values {
                Some(n) => n,
                None => {
                    generated = smoothgrad_noise(image, s.noise, s.samples, s.seed);
                    &generated
                }
            };
            noise[range.start * size..range.end * size].chunks(size).flat_map(|n| n.iter().zip(image).map(|(n, x)| x + n)).collect()
        }
        Method::IntegratedGradients => {
            let baseline = baseline(s, size)?;
            let (alphas, _) = s.quadrature.points(s.steps);
            alphas[range].iter().flat_map(|&a| baseline.iter().zip(image).map(move |(b, x)| b + (a as f32) * (x - b))).collect()
        }
        _ => vec![],
    })
}

/// The input gradients of samples `range` (see [`sample_count`]), `range.len()` images one after
/// another: a part of SmoothGrad or integrated gradients that another engine (a worker of the
/// pool) computes; [`attribute_with`] puts the parts together. `range` starts at a batch
/// boundary ([`part`]).
pub async fn sample_grads(
    at: &mut Attributor<'_>,
    image: &[f32],
    objective: &Objective,
    s: &Settings,
    range: std::ops::Range<usize>,
) -> Result<Vec<f32>, Error> {
    let size = at.image_size();
    if image.len() != size {
        at.net.input_tensor(image)?;
    }
    let total = sample_count(s, size)?;
    if range.end > total || range.start > range.end || !range.start.is_multiple_of(SAMPLE_BATCH) {
        return Err(Error::Input(format!("samples {}..{} are not whole batches of the {total} the method takes", range.start, range.end)));
    }
    let images = sample_images(image, s, range)?;
    at.input_grads_batched(&images, objective, ReluRule::Gradient).await
}

/// The objective's values a sampling method reports beside its map: SmoothGrad's at the image;
/// integrated gradients' at the image and at the baseline (for the completeness check). Part 0 of
/// a pool computes them while the other parts compute their samples.
pub async fn end_values(at: &mut Attributor<'_>, image: &[f32], objective: &Objective, s: &Settings) -> Result<Vec<f32>, Error> {
    match s.method {
        Method::IntegratedGradients => {
            let ends: Vec<f32> = image.iter().chain(&baseline(s, image.len())?).copied().collect();
            Ok(at.input_grads(&ends, 2, objective, ReluRule::Gradient).await?.0)
        }
        _ => Ok(at.input_grads(image, 1, objective, ReluRule::Gradient).await?.0),
    }
}

/// A sampling method's work done by a pool of engines: every sample's gradient (the parts' in
/// order: [`sample_grads`]) and [`end_values`].
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub grads: Vec<f32>,
    pub values: Vec<f32>,
}

/// Computes one attribution map for one image (CHW).
pub async fn attribute(at: &mut Attributor<'_>, image: &[f32], objective: &Objective, s: &Settings) -> Result<Attribution, Error> {
    attribute_with(at, image, objective, s, None).await
}

/// [`attribute`], with the samples' gradients and end values when a pool of engines computed
/// them; the map is then bit for bit the one this engine makes alone.
pub async fn attribute_with(
    at: &mut Attributor<'_>,
    image: &[f32],
    objective: &Objective,
    s: &Settings,
    given: Option<Samples>,
) -> Result<Attribution, Error> {
    let shape = at.net.spec.input_shape();
    let size = at.image_size();
    if image.len() != size {
        at.net.input_tensor(image)?;
    }
    let simple = |value: f32, map: Vec<f32>| Attribution { map, shape, value, layer_map: None, delta: None };
    let samples = sample_count(s, size)?;
    let ends = if s.method == Method::IntegratedGradients { 2 } else { 1 };
    let (grads, values) = match given {
        Some(g) if g.grads.len() != samples * size => {
            return Err(Error::Input(format!(
                "{} gradient values are not the {samples} samples of {size} the method takes",
                g.grads.len()
            )));
        }
        Some(g) if samples > 0 && g.values.len() != ends => {
            return Err(Error::Input(format!("{} end values are not the {ends} the method takes", g.values.len())));
        }
        Some(g) => (g.grads, g.values),
        None if samples > 0 => {
            let grads = sample_grads(at, image, objective, s, 0..samples).await?;
            (grads, end_values(at, image, objective, s).await?)
        }
        None => (vec![], vec![]),
    };
    match s.method {
        Method::Gradient | Method::Deconvnet | Method::Guided | Method::GradientXInput => {
            let rule = match s.method {
                Method::Deconvnet => ReluRule::Deconvnet,
                Method::Guided => ReluRule::Guided,
                _ => ReluRule::Gradient,
            };
            let (v, mut g) = at.input_grads(image, 1, objective, rule).await?;
            if s.method == Method::GradientXInput {
                g.iter_mut().zip(image).for_each(|(g, x)| *g *= x);
            }
            Ok(simple(v[0], g))
        }
        Method::SmoothGrad => {
            let mut map = vec![0f32; size];
            for g in grads.chunks(size) {
                map.iter_mut().zip(g).for_each(|(m, g)| *m += g);
            }
            map.iter_mut().for_each(|m| *m /= samples as f32);
            Ok(simple(values[0], map))
        }
        Method::IntegratedGradients => {
            let baseline = baseline(s, size)?;
            let (_, weights) = s.quadrature.points(s.steps);
            let mut sum = vec![0f64; size];
            for (g, w) in grads.chunks(size).zip(&weights) {
                sum.iter_mut().zip(g).for_each(|(s, g)| *s += w * *g as f64);
            }
            let map: Vec<f32> = sum.iter().zip(image).zip(&baseline).map(|((s, x), b)| (s * (x - b) as f64) as f32).collect();
            let v = values;
            let total: f64 = map.iter().map(|&m| m as f64).sum();
            let delta = (total - (v[0] as f64 - v[1] as f64)) as f32;
            Ok(Attribution { map, shape, value: v[0], layer_map: None, delta: Some(delta) })
        }
        Method::GradCam => {
            let target = objective.target_layer(at.net);
            let layer = s.layer.unwrap_or_else(|| default_cam_layer(at.net, target));
            if layer == 0 || layer >= target {
                return Err(Error::Input(format!(
                    "Grad-CAM needs a layer between the input and the target's layer {target} ({}); layer {layer} is not",
                    at.net.spec.layers[target].name
                )));
            }
            let probe = at.probe(image, objective, ReluRule::Gradient).await?;
            let lp = &probe.layers[layer];
            let [c, h, w] = at.net.spec.layers[layer].out_shape;
            let mut cam = grad_cam(&lp.act.data, &lp.grad.data, c, h * w);
            if s.relu {
                cam.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            let up = upsample_bilinear(&cam, [h, w], [shape[1], shape[2]]);
            Ok(Attribution { map: up, shape: [1, shape[1], shape[2]], value: probe.objective, layer_map: Some((cam, [h, w])), delta: None })
        }
    }
}

/// The last layer below `target` with more than one position (Grad-CAM's usual choice: the
/// last convolutional feature maps).
pub fn default_cam_layer(net: &Net, target: usize) -> usize {
    (1..target)
        .rev()
        .find(|&i| {
            let [_, h, w] = net.spec.layers[i].out_shape;
            h * w > 1 && !matches!(net.spec.layers[i].kind, crate::spec::LayerKind::Pool(_))
        })
        .unwrap_or(1)
}

/// Grad-CAM before its ReLU: `sum_c mean(grad_c) * act_c`.
pub fn grad_cam(act: &[f32], grad: &[f32], channels: usize, positions: usize) -> Vec<f32> {
    let mut cam = vec![0f32; positions];
    for c in 0..channels {
        let g = &grad[c * positions..(c + 1) * positions];
        let alpha = g.iter().map(|&v| v as f64).sum::<f64>() / positions as f64;
        for (m, a) in cam.iter_mut().zip(&act[c * positions..(c + 1) * positions]) {
            *m += (alpha * *a as f64) as f32;
        }
    }
    cam
}

/// Bilinear resize of one plane as PyTorch's `interpolate(mode="bilinear", align_corners=False)`.
pub fn upsample_bilinear(src: &[f32], [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> Vec<f32> {
    let coord = |o: usize, n: usize, on: usize| -> (usize, usize, f32) {
        let x = ((o as f32 + 0.5) * (n as f32 / on as f32) - 0.5).max(0.0);
        let i0 = (x.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, x - i0 as f32)
    };
    let mut out = vec![0f32; oh * ow];
    for y in 0..oh {
        let (y0, y1, ly) = coord(y, h, oh);
        for x in 0..ow {
            let (x0, x1, lx) = coord(x, w, ow);
            let top = src[y0 * w + x0] * (1.0 - lx) + src[y0 * w + x1] * lx;
            let bottom = src[y1 * w + x0] * (1.0 - lx) + src[y1 * w + x1] * lx;
            out[y * ow + x] = top * (1.0 - ly) + bottom * ly;
        }
    }
    out
}
