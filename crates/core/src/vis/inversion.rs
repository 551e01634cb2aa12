//! Feature inversion (Mahendran & Vedaldi 2015): the image whose code at a chosen layer matches an
//! image's, found by gradient descent from noise on
//! `|phi(x) - phi(x0)|^2 / |phi(x0)|^2 + w_a R_alpha(x) + w_tv R_TV(x)`,
//! where R_alpha is the alpha-norm and R_TV the total variation (beta), both per pixel of the
//! image about gray. Deeper layers keep less of the image: inverting several layers side by side
//! shows what each keeps.

use burn::tensor::Tensor;

use crate::rng::SplitMix64;
use crate::settings::{Field, Resolved, Schema};
use crate::vis::image_param::{self, Adam, ImageParam, Parametrization};
use crate::vis::optimize::{self, layer_loss_grad};
use crate::vis::regularizers;
use crate::{Error, Net};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub layer: usize,
    pub steps: usize,
    /// Adam's learning rate on pixels in [0, 1].
    pub lr: f32,
    pub alpha: f32,
    pub alpha_weight: f32,
    pub tv_beta: f32,
    pub tv_weight: f32,
    /// Random roll of up to this many pixels before each step.
    pub jitter: usize,
    /// Standard deviation of the starting noise about gray.
    pub init_noise: f32,
    pub seed: u64,
}

/// The inversion settings: keys, defaults (Mahendran & Vedaldi's regularizers, alpha 6 and beta
/// 2, weights for images in [0, 1]) and ranges, written once.
pub fn schema() -> Schema {
    Schema::new(
        "invert",
        vec![
            Field::layers("layers", "layers").help("The layers whose codes are inverted, side by side"),
            Field::integer("steps", "steps", 200, 1, 10_000),
            Field::number("lr", "learning rate (Adam)", 0.02, 0.0, 10.0, 0.005),
            Field::number("alpha", "α (norm exponent)", 6.0, 1.0, 12.0, 1.0).help("The alpha-norm regularizer's exponent"),
            Field::number("alphaWeight", "α-norm weight", 1.0, 0.0, 1000.0, 0.1),
            Field::number("beta", "β (TV exponent)", 2.0, 1.0, 4.0, 0.5).help("Total variation's exponent"),
            Field::number("tvWeight", "TV weight", 20.0, 0.0, 10_000.0, 1.0),
            Field::integer("jitter", "jitter", 0, 0, 64).unit("px"),
            Field::number("initNoise", "starting noise", 0.1, 0.0, 1.0, 0.01).help("Standard deviation of the start about gray"),
            Field::integer("seed", "seed", 1, 0, 1 << 32),
        ],
    )
}

impl Settings {
    /// The settings for `layer` from values [`Schema::resolve`] returned.
    pub fn from_values(v: &Map<String, Value>, layer: usize) -> Settings {
        Settings {
            layer,
            steps: v.int("steps"),
            lr: v.num("lr") as f32,
            alpha: v.num("alpha") as f32,
            alpha_weight: v.num("alphaWeight") as f32,
            tv_beta: v.num("beta") as f32,
            tv_weight: v.num("tvWeight") as f32,
            jitter: v.int("jitter"),
            init_noise: v.num("initNoise") as f32,
            seed: v.num("seed") as u64,
        }
    }

    /// The defaults, for `layer`.
    pub fn new(layer: usize) -> Settings {
        Settings::from_values(&schema().resolve(&Value::Null, false).expect("the defaults are valid"), layer)
    }
}

/// An inversion in progress.
pub struct Inversion {
    pub settings: Settings,
    target: Tensor<4>,
    norm: f32,
    pub image: ImageParam,
    adam: Adam,
    rng: SplitMix64,
    /// Per step: total, feature term, alpha-norm term, TV term.
    pub history: Vec<[f32; 4]>,
}

impl Inversion {
    /// Starts inverting `image`'s code at `settings.layer`.
    pub async fn new(net: &Net, image: &[f32], settings: Settings) -> Result<Inversion, Error> {
        let n = net.spec.layers.len();
        if settings.layer == 0 || settings.layer >= n {
            return Err(Error::Input(format!("layer {} cannot be inverted; pick one of 1..{}", settings.layer, n - 1)));
        }
        if !(settings.lr > 0.0 && settings.lr.is_finite()) {
            return Err(Error::Input(format!("the learning rate must be positive, not {}", settings.lr)));
        }
        let code = optimize::layer_output(net, image, settings.layer).await?;
        let norm = code.iter().map(|v| v * v).sum::<f32>().max(1e-12);
        let target = optimize::tensor(net, code, net.spec.layers[settings.layer].out_shape);
        let mut rng = SplitMix64(settings.seed);
        let image = ImageParam::new(Parametrization::Pixel, net.spec.input_shape(), None, settings.init_noise, &mut rng);
        let adam = Adam::new(settings.lr, image.params.len());
        Ok(Inversion { settings, target, norm, image, adam, rng, history: vec![] })
    }

    pub fn current(&self) -> Vec<f32> {
        self.image.image()
    }

    pub fn done(&self) -> bool {
        self.history.len() >= self.settings.steps
    }

    /// The loss (total, feature term, alpha-norm term, TV term) at image `x` and its gradient.
    pub async fn loss_grad(&self, net: &Net, x: &[f32]) -> Result<([f32; 4], Vec<f32>), Error> {
        let s = &self.settings;
        let (layer, norm, target) = (s.layer, self.norm, self.target.clone());
        let loss = move |outs: &[Tensor<4>]| {
            let d = outs[layer].clone() - target.clone();
            let v = (d.clone() * d.clone()).sum() / norm;
            (v, vec![(layer, d * (2.0 / norm))])
        };
        let (values, mut g) = layer_loss_grad(net, x, layer, &loss).await?;
        let pixels = x.len() as f32;
        let centered: Vec<f32> = x.iter().map(|v| (v - 0.5) * 2.0).collect();
        let (ra, ga) = regularizers::alpha_norm(&centered, s.alpha);
        let (rt, gt) = regularizers::total_variation(x, self.image.shape, s.tv_beta);
        for i in 0..g.len() {
            g[i] += s.alpha_weight / pixels * ga[i] * 2.0 + s.tv_weight / pixels * gt[i];
        }
        let (fa, ft) = (s.alpha_weight * ra / pixels, s.tv_weight * rt / pixels);
        Ok(([values[0] + fa + ft, values[0], fa, ft], g))
    }

    /// One descent step (with jitter: the loss of the rolled image); returns the total loss before it.
    pub async fn step(&mut self, net: &Net) -> Result<f32, Error> {
        let shape = self.image.shape;
        let j = self.settings.jitter;
        let (dy, dx) = (image_param::jitter_offset(&mut self.rng, j), image_param::jitter_offset(&mut self.rng, j));
        let x = image_param::roll(&self.image.image(), shape, dy, dx);
        let (values, g) = self.loss_grad(net, &x).await?;
        let g = image_param::roll(&g, shape, -dy, -dx);
        self.adam.step(&mut self.image.params, &g);
        self.image.clip();
        self.history.push(values);
        Ok(values[0])
    }
}
