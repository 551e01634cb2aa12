//! Neural style transfer (Gatys et al. 2016): an image whose activations at a content layer match
//! a content image's and whose Gram matrices (channel-by-channel correlations, which forget where
//! things are) at the style layers match a style image's. The losses are computed on the device:
//! `G = F F^T / M` for a layer's C x M activations F (normalized by the number of positions),
//! style `mean_l |G_l - A_l|^2 / |A_l|^2`, content `|F - P|^2 / |P|^2` (each term relative, so
//! that layers of any scale count alike and the weights carry over between nets), plus total
//! variation;
//! minimized by L-BFGS (as neural-style) or Adam.

use burn::tensor::Tensor;

use crate::rng::SplitMix64;
use crate::settings::{Field, Resolved, Schema};
use crate::vis::image_param::Adam;
use crate::vis::optimize::{self, Lbfgs, layer_loss_grad};
use crate::vis::regularizers;
use crate::{Error, Net, read_all};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    Adam { lr: f32 },
    Lbfgs { lr: f32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub content_layer: usize,
    pub style_layers: Vec<usize>,
    pub content_weight: f32,
    pub style_weight: f32,
    /// Total variation (beta 2) per pixel.
    pub tv_weight: f32,
    pub optimizer: Optimizer,
    pub steps: usize,
    /// Start from the content image (else from noise about gray).
    pub from_content: bool,
    pub seed: u64,
}

/// The style-transfer settings: keys, defaults (Gatys et al.'s losses; weights for images in
/// [0, 1]) and ranges, written once.
pub fn schema() -> Schema {
    Schema::new(
        "style",
        vec![
            Field::integer("size", "size", 224, 16, 1024).unit("px").optional().help("The square image's side (auto: the network's input)"),
            Field::layer("contentLayer", "content layer").help("auto: MobileNetV2's op16"),
            Field::layers("styleLayers", "style layers").help("auto: MobileNetV2's op0, op3, op6, op13, op24"),
            Field::number("contentWeight", "content weight", 1.0, 0.0, 1e6, 0.1),
            Field::number("styleWeight", "style weight", 1e4, 0.0, 1e9, 1000.0),
            Field::number("tvWeight", "TV weight", 1.0, 0.0, 1e4, 0.1),
            Field::choice("optimizer", "optimizer", vec!["adam", "lbfgs"], "adam"),
            Field::number("lr", "learning rate", 0.03, 0.0, 10.0, 0.01).optional().help("auto: 0.03 for Adam, 1 for L-BFGS"),
            Field::integer("steps", "steps", 300, 1, 10_000),
            Field::boolean("fromContent", "start from the content image", true).help("Else from noise about gray"),
            Field::integer("seed", "seed", 1, 0, 1 << 32),
        ],
    )
}

impl Settings {
    /// The settings from values [`Schema::resolve`] returned, with the layers resolved.
    pub fn from_values(v: &Map<String, Value>, content_layer: usize, style_layers: Vec<usize>) -> Settings {
        let lr = v["lr"].as_f64().map(|x| x as f32);
        Settings {
            content_layer,
            style_layers,
            content_weight: v.num("contentWeight") as f32,
            style_weight: v.num("styleWeight") as f32,
            tv_weight: v.num("tvWeight") as f32,
            optimizer: match v.text("optimizer") {
                "lbfgs" => Optimizer::Lbfgs { lr: lr.unwrap_or(1.0) },
                _ => Optimizer::Adam { lr: lr.unwrap_or(0.03) },
            },
            steps: v.int("steps"),
            from_content: v.flag("fromContent"),
            seed: v.num("seed") as u64,
        }
    }

    /// The defaults, for these layers.
    pub fn new(content_layer: usize, style_layers: Vec<usize>) -> Settings {
        Settings::from_values(&schema().resolve(&Value::Null, false).expect("the defaults are valid"), content_layer, style_layers)
    }

    /// MobileNetV2's layers for style (the expanded, post-relu6 activations of the first blocks,
    /// as ../REFERENCE.md suggests: op0, op3, op6, op13, op24) and content (the block output op16).
    pub fn mobilenet(net: &Net) -> Option<Settings> {
        let find = |n: &str| net.spec.layers.iter().position(|l| l.name == n);
        let style = ["op0", "op3", "op6", "op13", "op24"].iter().map(|n| find(n)).collect::<Option<Vec<_>>>()?;
        Some(Settings::new(find("op16")?, style))
    }
}

fn gram(f: Tensor<4>) -> Tensor<2> {
    let [_, c, h, w] = f.dims();
    let m: Tensor<2> = f.reshape([c, h * w]);
    m.clone().matmul(m.transpose()) / (h * w) as f32
}

/// A transfer in progress.
pub struct Style {
    pub settings: Settings,
    net: Net,
    shape: [usize; 3],
    content: Tensor<4>,
    grams: Vec<Tensor<2>>,
    content_norm: f32,
    gram_norms: Vec<f32>,
    pub x: Vec<f32>,
    adam: Option<Adam>,
    lbfgs: Option<Lbfgs>,
    /// Per step: total, content, style, TV.
    pub history: Vec<[f32; 4]>,
}

impl Style {
    /// `content` and `style` are CHW images of the same size (`shape`), at which the net's
    /// convolutional layers run.
    pub async fn new(net: &Net, content: &[f32], style: &[f32], shape: [usize; 3], settings: Settings) -> Result<Style, Error> {
        let n = net.spec.layers.len();
        if settings.style_layers.is_empty() {
            return Err(Error::Input("pick at least one style layer".into()));
        }
        let last = settings.style_layers.iter().copied().chain([settings.content_layer]).max().unwrap_or(0);
        if let Some(bad) = settings.style_layers.iter().chain([&settings.content_layer]).find(|&&l| l == 0 || l >= n) {
            return Err(Error::Input(format!("layer {bad} does not exist or is the input; pick layers 1..{}", n - 1)));
        }
        let [c, h, w] = shape;
        if c != net.spec.input_shape()[0] || content.len() != c * h * w || style.len() != c * h * w {
            return Err(Error::Input(format!("the content and style images must both be {c}x{h}x{w}")));
        }
        let net = net.resized(last, h, w)?;
        let p = optimize::layer_output(&net, content, settings.content_layer).await?;
        let content_norm = p.iter().map(|v| v * v).sum::<f32>().max(1e-12);
        let content_t = optimize::tensor(&net, p, net.spec.layers[settings.content_layer].out_shape);
        let outs = net.forward_upto(net.input_tensor(style)?, last, &net.params);
        let grams: Vec<Tensor<2>> = settings.style_layers.iter().map(|&l| gram(outs[l].clone())).collect();
        let gram_norms =
            read_all(grams.iter().map(|g| (g.clone() * g.clone()).sum()).collect()).await?.into_iter().map(|v| v[0].max(1e-12)).collect();
        let mut rng = SplitMix64(settings.seed);
        let x = if settings.from_content {
            content.to_vec()
        } else {
            (0..c * h * w).map(|_| (0.5 + 0.1 * rng.normal() as f32).clamp(0.0, 1.0)).collect()
        };
        let (adam, lbfgs) = match settings.optimizer {
            Optimizer::Adam { lr } => (Some(Adam::new(lr, x.len())), None),
            Optimizer::Lbfgs { lr } => (None, Some(Lbfgs::new(lr, 10))),
        };
        Ok(Style { settings, net, shape, content: content_t, grams, content_norm, gram_norms, x, adam, lbfgs, history: vec![] })
    }

    pub fn done(&self) -> bool {
        self.history.len() >= self.settings.steps
    }

    /// The image's shape (CHW).
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The image now, clipped to [0, 1].
    pub fn current(&self) -> Vec<f32> {
        self.x.iter().map(|v| v.clamp(0.0, 1.0)).collect()
    }

    /// The Gram matrices (C x C each) of the style layers for an image at this transfer's size
    /// (the current image when `None`), for heatmaps.
    pub async fn grams_of(&self, image: Option<&[f32]>) -> Result<Vec<Vec<f32>>, Error> {
        let x = match image {
            Some(v) => v.to_vec(),
            None => self.current(),
        };
        let last = *self.settings.style_layers.iter().max().expect("checked in new");
        let outs = self.net.forward_upto(self.net.input_tensor(&x)?, last, &self.net.params);
        read_all(self.settings.style_layers.iter().map(|&l| gram(outs[l].clone()).flatten(0, 1)).collect()).await
    }

    /// The style image's Gram matrices (the targets).
    pub async fn target_grams(&self) -> Result<Vec<Vec<f32>>, Error> {
        read_all(self.grams.iter().map(|g| g.clone().flatten(0, 1)).collect()).await
    }

    /// The loss (total, content, style, TV) at image `x` (CHW at this transfer's size) and its
    /// gradient.
    pub async fn loss_grad(&self, x: &[f32]) -> Result<([f32; 4], Vec<f32>), Error> {
        let s = &self.settings;
        let (cl, cw, sw) = (s.content_layer, s.content_weight, s.style_weight);
        let layers = s.style_layers.clone();
        let (content, grams) = (self.content.clone(), self.grams.clone());
        let last = layers.iter().copied().chain([cl]).max().unwrap_or(0);
        let (cnorm, snorms) = (self.content_norm, self.gram_norms.clone());
        let loss = move |outs: &[Tensor<4>]| {
            let mut seeds = vec![];
            // Content: |F - P|^2 / |P|^2, gradient 2 (F - P) / |P|^2.
            let d = outs[cl].clone() - content.clone();
            let content_loss = (d.clone() * d.clone()).sum() * (cw / cnorm);
            seeds.push((cl, d * (2.0 * cw / cnorm)));
            // Style: per layer |G - A|^2 / |A|^2 (each layer counts alike whatever the scale of its
            // activations), gradient 4 (G - A) F / (M |A|^2), averaged over the layers.
            let mut style_loss = content_loss.zeros_like();
            for ((&l, a), an) in layers.iter().zip(&grams).zip(&snorms) {
                let f = outs[l].clone();
                let [_, c, h, w] = f.dims();
                let diff = gram(f.clone()) - a.clone();
                let k = sw / (layers.len() as f32 * an);
                style_loss = style_loss + (diff.clone() * diff.clone()).sum() * k;
                let fm: Tensor<2> = f.reshape([c, h * w]);
                let g = diff.matmul(fm) * (4.0 * k / (h * w) as f32);
                seeds.push((l, g.reshape([1, c, h, w])));
            }
            let total = content_loss.clone() + style_loss.clone();
            (Tensor::cat(vec![total, content_loss, style_loss], 0), seeds)
        };
        let (values, mut g) = layer_loss_grad(&self.net, x, last, &loss).await?;
        let pixels = x.len() as f32;
        let (tv, tg) = regularizers::total_variation(x, self.shape, 2.0);
        let tvw = self.settings.tv_weight / pixels;
        g.iter_mut().zip(&tg).for_each(|(g, t)| *g += tvw * t);
        Ok(([values[0] + tvw * tv, values[1], values[2], tvw * tv], g))
    }

    /// One step; returns the total loss before it.
    pub async fn step(&mut self) -> Result<f32, Error> {
        let (values, g) = self.loss_grad(&self.x).await?;
        match (&mut self.adam, &mut self.lbfgs) {
            (Some(adam), _) => {
                adam.step(&mut self.x, &g);
                self.x.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
            }
            (_, Some(l)) => l.step(&mut self.x, &g),
            _ => unreachable!("one optimizer is set"),
        }
        self.history.push(values);
        Ok(values[0])
    }
}
