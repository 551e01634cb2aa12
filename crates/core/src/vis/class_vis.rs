//! Class and neuron visualization by gradient ascent (Simonyan et al. 2014; Yosinski et al. 2015;
//! Olah et al. 2017): start from gray or noise and climb a class score, a neuron or a channel's
//! mean, with the regularizers that make the result look like something: L2 decay, a Gaussian blur
//! every k steps, jitter, clipping of pixels with a small norm or a small contribution (Yosinski et
//! al.), total variation, and Lucid's decorrelated Fourier parametrization. Runs a step at a time
//! so the page can show each step and stop at any point.

use crate::grad::{Objective, ReluRule};
use crate::rng::SplitMix64;
use crate::settings::{Field, Preset, Resolved, Schema};
use crate::vis::image_param::{self, Adam, ImageParam, Parametrization};
use crate::vis::optimize::objective_grad;
use crate::vis::regularizers;
use crate::{Error, Net};
use serde_json::{Map, Value, json};

/// Everything a run depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What to maximize: a class score (pre-softmax), a probability, a neuron or a channel's mean.
    pub objective: Objective,
    pub param: Parametrization,
    pub steps: usize,
    /// Adam's learning rate (in parameter units: pixels in [0, 1], or spectrum coefficients).
    pub lr: f32,
    /// Random roll of up to this many pixels before each step.
    pub jitter: usize,
    /// Random scale by a factor in [1 - s, 1 + s] and rotation by up to this many degrees before
    /// each step (Lucid's transformation robustness); 0 = off.
    pub scale_jitter: f32,
    pub rotate: f32,
    /// Pixel parametrization: each step pulls the image towards gray by this fraction.
    pub l2_decay: f32,
    /// Blur with this sigma (pixels) every `blur_every` steps; 0 = never.
    pub blur_every: usize,
    pub blur_sigma: f32,
    /// Set to gray the pixels whose norm (over channels, about gray) is below this percentile.
    pub norm_pct: f32,
    /// Set to gray the pixels whose contribution |sum_c (x - gray) dobj/dx| is below this percentile.
    pub contrib_pct: f32,
    /// Weight of total variation (beta 2), per pixel.
    pub tv: f32,
    /// Standard deviation of the starting noise about gray (pixel parametrization); 0 = gray.
    pub init_noise: f32,
    pub seed: u64,
}

/// The visualization settings (the objective comes separately): keys, defaults, ranges and the
/// three presets, written once (the page's form, the facade and the CLI read them from here).
pub fn schema() -> Schema {
    Schema {
        technique: "visualize",
        fields: vec![
            Field::choice("preset", "preset", vec!["lucid", "yosinski", "simonyan"], "lucid").help(
                "lucid: Fourier, decorrelated colour, jitter, scale and rotation (Olah et al. 2017); yosinski: pixels, L2 decay, \
                 blur (Yosinski et al. 2015); simonyan: pixels, L2 decay only (Simonyan et al. 2014)",
            ),
            Field::choice("param", "image", vec!["fourier-decorrelated", "fourier", "pixel"], "pixel")
                .help("What is optimized: the pixels, or a Fourier spectrum (optionally in decorrelated colour)"),
            Field::integer("steps", "steps", 200, 1, 10_000),
            Field::number("lr", "learning rate (Adam)", 0.05, 0.0, 10.0, 0.01)
                .help("In parameter units: pixels in [0, 1] or spectrum coefficients"),
            Field::integer("jitter", "jitter", 0, 0, 128).unit("px").help("Random roll before each step"),
            Field::number("scale", "random scale ±", 0.0, 0.0, 0.5, 0.01)
                .help("Random scale by a factor in [1 - s, 1 + s] before each step"),
            Field::number("rotate", "random rotation ±", 0.0, 0.0, 180.0, 1.0).unit("degrees"),
            Field::number("l2", "L2 decay", 0.0, 0.0, 1.0, 0.0001).help("Pixels: each step pulls the image towards gray by this fraction"),
            Field::integer("blurEvery", "blur every k steps", 0, 0, 1000).help("0: never"),
            Field::number("blurSigma", "blur σ", 0.0, 0.0, 10.0, 0.1).unit("px"),
            Field::number("normPct", "clip small norm", 0.0, 0.0, 100.0, 1.0)
                .unit("percentile")
                .help("Set to gray the pixels whose norm is below this percentile"),
            Field::number("contribPct", "clip small contribution", 0.0, 0.0, 100.0, 1.0)
                .unit("percentile")
                .help("Set to gray the pixels whose contribution to the objective is below this percentile"),
            Field::number("tv", "total variation", 0.0, 0.0, 100.0, 0.01).help("Weight of total variation (beta 2), per pixel"),
            Field::number("initNoise", "starting noise", 0.0, 0.0, 1.0, 0.01).help("Pixels: standard deviation of the start about gray"),
            Field::integer("seed", "seed", 1, 0, 1 << 32),
        ],
        presets: vec![
            Preset {
                name: "lucid",
                label: "Lucid (Fourier, decorrelated, transforms)",
                values: json!({"param": "fourier-decorrelated", "steps": 256, "jitter": 16, "scale": 0.1, "rotate": 10.0}),
            },
            Preset {
                name: "yosinski",
                label: "Yosinski et al. (decay, blur)",
                values: json!({"steps": 300, "jitter": 4, "l2": 0.0001, "blurEvery": 4, "blurSigma": 1.0, "initNoise": 0.1}),
            },
            Preset { name: "simonyan", label: "Simonyan et al. (L2 only)", values: json!({"steps": 200, "l2": 0.001}) },
        ],
    }
}

impl Settings {
    /// The settings from values [`Schema::resolve`] returned.
    pub fn from_values(v: &Map<String, Value>, objective: Objective) -> Result<Settings, Error> {
        let param = v.text("param");
        Ok(Settings {
            objective,
            param: Parametrization::parse(param).ok_or_else(|| Error::Input(format!("unknown parametrization '{param}'")))?,
            steps: v.int("steps"),
            lr: v.num("lr") as f32,
            jitter: v.int("jitter"),
            scale_jitter: v.num("scale") as f32,
            rotate: v.num("rotate") as f32,
            l2_decay: v.num("l2") as f32,
            blur_every: v.int("blurEvery"),
            blur_sigma: v.num("blurSigma") as f32,
            norm_pct: v.num("normPct") as f32,
            contrib_pct: v.num("contribPct") as f32,
            tv: v.num("tv") as f32,
            init_noise: v.num("initNoise") as f32,
            seed: v.num("seed") as u64,
        })
    }

    /// A preset's settings (see [`schema`]): `lucid` gives recognizable images on MobileNetV2,
    /// `yosinski` and `simonyan` the papers' pixel-space images. Adam everywhere, so one
    /// learning rate fits every net.
    pub fn preset(name: &str, objective: Objective) -> Result<Settings, Error> {
        let v = schema().resolve(&json!({ "preset": name }), false)?;
        Settings::from_values(&v, objective)
    }
}

/// A run in progress.
pub struct ClassVis {
    pub settings: Settings,
    pub image: ImageParam,
    adam: Adam,
    rng: SplitMix64,
    /// The objective's value at each step so far (measured before that step's update).
    pub history: Vec<f32>,
}

/// The `pct` percentile of `v` (0..100).
fn percentile(v: &[f32], pct: f32) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s[(((pct / 100.0) * (s.len() - 1) as f32).round() as usize).min(s.len() - 1)]
}

impl ClassVis {
    pub fn new(net: &Net, settings: Settings) -> Result<ClassVis, Error> {
        settings.objective.check(net)?;
        if !(settings.lr > 0.0 && settings.lr.is_finite()) {
            return Err(Error::Input(format!("the learning rate must be positive, not {}", settings.lr)));
        }
        let shape = net.spec.input_shape();
        let mut rng = SplitMix64(settings.seed);
        let image = ImageParam::new(settings.param, shape, None, settings.init_noise, &mut rng);
        let adam = Adam::new(settings.lr, image.params.len());
        Ok(ClassVis { settings, image, adam, rng, history: vec![] })
    }

    /// The current image (CHW in [0, 1]).
    pub fn current(&self) -> Vec<f32> {
        self.image.image()
    }

    pub fn done(&self) -> bool {
        self.history.len() >= self.settings.steps
    }

    /// One step of gradient ascent; returns the objective's value before it. The gradient comes
    /// from the fused CPU path (`fused`, holding `net`'s weights) where it reaches the objective,
    /// else through Burn.
    pub async fn step(&mut self, net: &Net, fused: Option<&mut crate::cpu_train::CpuTrainer>) -> Result<f32, Error> {
        let s = &self.settings;
        let shape = self.image.shape;
        let [_, h, w] = shape;
        let img = self.image.image();
        let (dy, dx) = (image_param::jitter_offset(&mut self.rng, s.jitter), image_param::jitter_offset(&mut self.rng, s.jitter));
        let scale = 1.0 + s.scale_jitter * (2.0 * self.rng.uniform() as f32 - 1.0);
        let angle = s.rotate * (2.0 * self.rng.uniform() as f32 - 1.0);
        let warped = s.scale_jitter > 0.0 || s.rotate > 0.0;
        let mut x = image_param::roll(&img, shape, dy, dx);
        if warped {
            x = image_param::warp(&x, shape, scale, angle);
        }
        let on_fused = match fused {
            Some(f) => f.input_grads(net, &x, 1, &s.objective, ReluRule::Gradient)?.map(|(v, g)| (v[0], g)),
            None => None,
        };
        let (value, mut g) = match on_fused {
            Some(r) => r,
            None => objective_grad(net, &x, &s.objective, ReluRule::Gradient).await?,
        };
        if !value.is_finite() {
            return Err(Error::Input(format!("the objective became {value} at step {}; lower the learning rate", self.history.len())));
        }
        if warped {
            g = image_param::warp_adjoint(&g, shape, scale, angle);
        }
        let mut g = image_param::roll(&g, shape, -dy, -dx);
        // Ascent on the objective, descent on the priors: Adam descends, so the sign is flipped.
        if s.tv > 0.0 {
            let (_, tv) = regularizers::total_variation(&img, shape, 2.0);
            g.iter_mut().zip(&tv).for_each(|(g, t)| *g -= s.tv * t);
        }
        let descent: Vec<f32> = self.image.backprop(&g).into_iter().map(|v| -v).collect();
        self.adam.step(&mut self.image.params, &descent);
        let step = self.history.len() + 1;
        if self.image.kind == Parametrization::Pixel {
            let p = &mut self.image.params;
            if s.l2_decay > 0.0 {
                p.iter_mut().for_each(|v| *v = 0.5 + (1.0 - s.l2_decay) * (*v - 0.5));
            }
            if s.blur_every > 0 && step.is_multiple_of(s.blur_every) && s.blur_sigma > 0.0 {
                *p = image_param::gaussian_blur(p, shape, s.blur_sigma);
            }
            let hw = h * w;
            let c = shape[0];
            let clip = |p: &mut Vec<f32>, score: Vec<f32>, pct: f32| {
                let t = percentile(&score, pct);
                for (i, sc) in score.iter().enumerate() {
                    if *sc < t {
                        (0..c).for_each(|ch| p[ch * hw + i] = 0.5);
                    }
                }
            };
            if s.norm_pct > 0.0 {
                let norms = (0..hw).map(|i| (0..c).map(|ch| (p[ch * hw + i] - 0.5).powi(2)).sum::<f32>().sqrt()).collect();
                clip(p, norms, s.norm_pct);
            }
            if s.contrib_pct > 0.0 {
                let contrib = (0..hw).map(|i| (0..c).map(|ch| (p[ch * hw + i] - 0.5) * g[ch * hw + i]).sum::<f32>().abs()).collect();
                clip(p, contrib, s.contrib_pct);
            }
            self.image.clip();
        }
        self.history.push(value);
        Ok(value)
    }
}
