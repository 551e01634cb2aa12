//! DeepDream (Mordvintsev et al. 2015, google/deepdream): amplify whatever a layer already sees in
//! an image by gradient ascent on half the squared norm of its activations (so the gradient at the
//! layer is the activations themselves), with normalized steps (step / mean |gradient|), jitter,
//! and octaves: the image is dreamt at successively larger scales (each `octave_scale` times the
//! last), the detail added at one scale carried up to the next.

use burn::tensor::{Tensor, TensorData};

use crate::rng::SplitMix64;
use crate::settings::{Field, Resolved, Schema};
use crate::vis::image_param;
use crate::vis::optimize::layer_loss_grad;
use crate::{Error, Net};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub layer: usize,
    /// Amplify this channel alone (its activations) instead of the whole layer.
    pub channel: Option<usize>,
    pub octaves: usize,
    pub octave_scale: f32,
    pub steps_per_octave: usize,
    /// Step size in pixels of [0, 1] per unit of normalized gradient (google/deepdream: 1.5 on
    /// 0-255 pixels).
    pub step: f32,
    pub jitter: usize,
    pub seed: u64,
}

/// The DeepDream settings: keys, defaults (google/deepdream's: 4 octaves of 1.4, 10 steps each,
/// step 1.5 on 0-255 pixels, jitter 32) and ranges, written once.
pub fn schema() -> Schema {
    Schema::new(
        "dream",
        vec![
            Field::layer("layer", "layer").help("The layer whose activations are amplified"),
            Field::integer("channel", "channel", 0, 0, 1 << 16).optional().help("Amplify this channel alone (auto: the whole layer)"),
            Field::integer("width", "width", 224, 8, 2048).unit("px").optional().help("The image's size (auto: the network's input)"),
            Field::integer("height", "height", 224, 8, 2048).unit("px").optional(),
            Field::integer("octaves", "octaves", 4, 1, 10),
            Field::number("octaveScale", "octave scale", 1.4, 1.0, 4.0, 0.1),
            Field::integer("steps", "steps per octave", 10, 1, 500),
            Field::number("step", "step size", 1.5, 0.01, 50.0, 0.1).unit("on 0-255 pixels").help("Per unit of normalized gradient"),
            Field::integer("jitter", "jitter", 32, 0, 256).unit("px"),
            Field::integer("seed", "seed", 1, 0, 1 << 32),
        ],
    )
}

impl Settings {
    /// The settings for `layer` from values [`Schema::resolve`] returned.
    pub fn from_values(v: &Map<String, Value>, layer: usize) -> Settings {
        Settings {
            layer,
            channel: v.opt_int("channel"),
            octaves: v.int("octaves"),
            octave_scale: v.num("octaveScale") as f32,
            steps_per_octave: v.int("steps"),
            step: v.num("step") as f32 / 255.0,
            jitter: v.int("jitter"),
            seed: v.num("seed") as u64,
        }
    }

    /// The defaults, for `layer`.
    pub fn new(layer: usize) -> Settings {
        Settings::from_values(&schema().resolve(&Value::Null, false).expect("the defaults are valid"), layer)
    }

    pub fn total_steps(&self) -> usize {
        self.octaves * self.steps_per_octave
    }
}

/// DeepDream's loss: half the squared activations of a layer (or of one channel), whose gradient
/// there is the activations themselves.
pub fn loss(layer: usize, channel: Option<usize>) -> impl Fn(&[Tensor<4>]) -> (Tensor<1>, Vec<(usize, Tensor<4>)>) {
    move |outs: &[Tensor<4>]| {
        let a = outs[layer].clone();
        let g = match channel {
            Some(ch) => {
                let d = a.dims()[1];
                let mask: Vec<f32> = (0..d).map(|k| if k == ch { 1.0 } else { 0.0 }).collect();
                a * Tensor::<4>::from_data(TensorData::new(mask, [1, d, 1, 1]), &outs[layer].device())
            }
            None => a,
        };
        ((g.clone() * g.clone()).sum() * 0.5, vec![(layer, g)])
    }
}

/// A dream in progress.
pub struct Dream {
    pub settings: Settings,
    image: Vec<f32>,
    shape: [usize; 3],
    /// Octave sizes, smallest first.
    sizes: Vec<(usize, usize)>,
    octave: usize,
    base: Vec<f32>,
    src: Vec<f32>,
    net: Option<Net>,
    rng: SplitMix64,
    /// The loss (half the squared activations) at each step.
    pub history: Vec<f32>,
}

impl Dream {
    /// Starts dreaming on `image` (CHW in [0, 1], any size the layer fits).
    pub fn new(net: &Net, image: &[f32], shape: [usize; 3], settings: Settings) -> Result<Dream, Error> {
        let n = net.spec.layers.len();
        if settings.layer == 0 || settings.layer >= n {
            return Err(Error::Input(format!("layer {} cannot be dreamt on; pick one of 1..{}", settings.layer, n - 1)));
        }
        if let Some(c) = settings.channel {
            let depth = net.spec.layers[settings.layer].out_shape[0];
            if c >= depth {
                return Err(Error::Input(format!("channel {c} does not exist; layer {} has {depth} channels", settings.layer)));
            }
        }
        if settings.octaves == 0 || !(settings.octave_scale >= 1.0) || !(settings.step > 0.0) {
            return Err(Error::Input("DeepDream needs at least one octave, an octave scale of at least 1 and a positive step".into()));
        }
        if image.len() != shape.iter().product::<usize>() || shape[0] != net.spec.input_shape()[0] {
            return Err(Error::Input(format!("the image is {shape:?}; the network takes {} channels", net.spec.input_shape()[0])));
        }
        let [_, h, w] = shape;
        let mut sizes: Vec<(usize, usize)> = (0..settings.octaves)
            .map(|i| {
                let f = settings.octave_scale.powi(i as i32);
                (((h as f32 / f).round() as usize).max(1), ((w as f32 / f).round() as usize).max(1))
            })
            .collect();
        sizes.reverse();
        if sizes[0].0.min(sizes[0].1) < 8 {
            return Err(Error::Input(format!(
                "the smallest octave ({}x{}) is too small; use fewer octaves or a larger image",
                sizes[0].1, sizes[0].0
            )));
        }
        // Fail now, with the spec's message, if the smallest octave is too small for the layer.
        net.resized(settings.layer, sizes[0].0, sizes[0].1).map_err(|e| {
            Error::Input(format!(
                "the smallest octave ({}x{}) is too small for this layer ({e}); use fewer octaves or a larger image",
                sizes[0].1, sizes[0].0
            ))
        })?;
        Ok(Dream {
            rng: SplitMix64(settings.seed),
            settings,
            image: image.to_vec(),
            shape,
            sizes,
            octave: 0,
            base: vec![],
            src: vec![],
            net: None,
            history: vec![],
        })
    }

    pub fn done(&self) -> bool {
        self.history.len() >= self.settings.total_steps()
    }

    /// The image as it is now (at the current octave's size) and that size.
    pub fn current(&self) -> (Vec<f32>, [usize; 3]) {
        if self.src.is_empty() {
            return (self.image.clone(), self.shape);
        }
        let (h, w) = self.sizes[self.octave];
        (self.src.clone(), [self.shape[0], h, w])
    }

    /// One ascent step; returns the loss before it.
    pub async fn step(&mut self, net: &Net) -> Result<f32, Error> {
        let s = self.settings.clone();
        let c = self.shape[0];
        let i = self.history.len();
        let octave = (i / s.steps_per_octave).min(self.sizes.len() - 1);
        if self.net.is_none() || octave != self.octave {
            let (h, w) = self.sizes[octave];
            let base = image_param::resize(&self.image, self.shape, h, w);
            self.src = if self.src.is_empty() {
                base.clone()
            } else {
                // Carry the detail dreamt so far up to this scale.
                let (ph, pw) = self.sizes[self.octave];
                let detail: Vec<f32> = self.src.iter().zip(&self.base).map(|(s, b)| s - b).collect();
                let up = image_param::resize(&detail, [c, ph, pw], h, w);
                base.iter().zip(&up).map(|(b, d)| (b + d).clamp(0.0, 1.0)).collect()
            };
            self.base = base;
            self.octave = octave;
            self.net = Some(net.resized(s.layer, h, w)?);
        }
        let onet = self.net.as_ref().expect("set above");
        let (h, w) = self.sizes[octave];
        let shape = [c, h, w];
        let j = s.jitter.min(h / 2).min(w / 2);
        let (dy, dx) = (image_param::jitter_offset(&mut self.rng, j), image_param::jitter_offset(&mut self.rng, j));
        let loss = loss(s.layer, s.channel);
        let (values, g) = layer_loss_grad(onet, &image_param::roll(&self.src, shape, dy, dx), s.layer, &loss).await?;
        let g = image_param::roll(&g, shape, -dy, -dx);
        let mean = g.iter().map(|v| v.abs()).sum::<f32>() / g.len() as f32;
        if mean > 0.0 {
            let k = s.step / mean;
            self.src.iter_mut().zip(&g).for_each(|(x, g)| *x = (*x + k * g).clamp(0.0, 1.0));
        }
        self.history.push(values[0]);
        Ok(values[0])
    }
}
