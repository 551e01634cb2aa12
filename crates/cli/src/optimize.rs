//! The image-optimizing techniques on the command line: class and neuron visualization, feature
//! inversion, adversarial examples, DeepDream and style transfer, each rendered to PNG (or .npy).

use std::path::{Path, PathBuf};

use convlens_core::vis::class_vis::{ClassVis, Settings};
use convlens_core::vis::grid;
use convlens_core::vis::image_param::Parametrization;
use convlens_core::{Net, Objective};

use crate::{ModelArgs, Result, load, npy, write_png};

#[derive(clap::Args)]
pub struct VisualizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to maximize: class:K, prob:K, neuron:LAYER:INDEX or channel:LAYER:C.
    #[arg(long, default_value = "class:1")]
    pub target: String,
    /// lucid (Fourier, decorrelated colour, jitter), yosinski (pixels, decay, blur, clipping) or simonyan.
    #[arg(long, default_value = "lucid")]
    pub preset: String,
    /// Overrides of the preset.
    #[arg(long)]
    pub param: Option<String>,
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long)]
    pub jitter: Option<usize>,
    #[arg(long)]
    pub l2: Option<f32>,
    #[arg(long)]
    pub blur_every: Option<usize>,
    #[arg(long)]
    pub blur_sigma: Option<f32>,
    #[arg(long)]
    pub norm_pct: Option<f32>,
    #[arg(long)]
    pub contrib_pct: Option<f32>,
    #[arg(long)]
    pub tv: Option<f32>,
    /// Seed of the starting image and the jitter.
    #[arg(long, default_value_t = 1)]
    pub noise_seed: u64,
    /// PNG (or .npy, CHW floats).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
}

/// Writes an image (CHW in [0, 1]) as PNG or .npy.
pub fn write_image(path: &Path, image: &[f32], shape: [usize; 3], scale: usize) -> Result<()> {
    if path.extension().is_some_and(|e| e == "npy") {
        npy::write(path, &shape, image).map_err(|e| format!("cannot write {}: {e}", path.display()))
    } else {
        write_png(path, &grid::picture(image, shape, scale))
    }
}

/// The top class of an image and its probability, named if the net has class names.
pub async fn top(net: &Net, image: &[f32]) -> Result<(usize, f32, String)> {
    let mut at = convlens_core::vis::attribution::Attributor::new(net, None);
    let out = at.outputs(image, 1).await.map_err(|e| e.to_string())?;
    let k = convlens_core::train::argmax(&out);
    Ok((k, out[k], class_name(net, k)))
}

pub fn class_name(net: &Net, k: usize) -> String {
    net.spec.class_names.as_ref().and_then(|n| n.get(k).cloned()).unwrap_or_else(|| format!("class {k}"))
}

pub async fn visualize(a: VisualizeArgs) -> Result<()> {
    let net = load(&a.model).await?;
    let objective = Objective::parse_in(&a.target, &net.spec).map_err(|e| e.to_string())?;
    let mut s = Settings::preset(&a.preset, objective).map_err(|e| e.to_string())?;
    if let Some(p) = &a.param {
        s.param = Parametrization::parse(p)
            .ok_or_else(|| format!("unknown parametrization '{p}'; expected pixel, fourier or fourier-decorrelated"))?;
    }
    s.steps = a.steps.unwrap_or(s.steps);
    s.lr = a.lr.unwrap_or(s.lr);
    s.jitter = a.jitter.unwrap_or(s.jitter);
    s.l2_decay = a.l2.unwrap_or(s.l2_decay);
    s.blur_every = a.blur_every.unwrap_or(s.blur_every);
    s.blur_sigma = a.blur_sigma.unwrap_or(s.blur_sigma);
    s.norm_pct = a.norm_pct.unwrap_or(s.norm_pct);
    s.contrib_pct = a.contrib_pct.unwrap_or(s.contrib_pct);
    s.tv = a.tv.unwrap_or(s.tv);
    s.seed = a.noise_seed;
    let what = s.objective.describe(&net);
    let mut run = ClassVis::new(&net, s).map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    while !run.done() {
        let v = run.step(&net).await.map_err(|e| e.to_string())?;
        let i = run.history.len();
        if i == 1 || i % 25 == 0 {
            println!("step {i}: {what} = {v:.4}");
        }
    }
    let image = run.current();
    let (k, p, name) = top(&net, &image).await?;
    println!(
        "{} steps in {:.1} s ({:.2} steps/s); the net calls the result {name} (class {k}, {:.1}%)",
        run.history.len(),
        t0.elapsed().as_secs_f64(),
        run.history.len() as f64 / t0.elapsed().as_secs_f64(),
        100.0 * p
    );
    write_image(&a.out, &image, net.spec.input_shape(), a.scale)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

/// An image file scaled (short side to `size`, or as it is with `None`) and centre-cropped to a
/// square of `size`, as CHW in [0, 1] with `channels` channels (1 = gray).
pub fn load_square(path: &Path, size: usize, channels: usize) -> Result<Vec<f32>> {
    load_square_of(image::open(path).map_err(|e| format!("cannot decode {}: {e}", path.display()))?, size, channels)
}

/// The image inside plain white margins (a scanned painting's border, as starry.jpg has).
fn trim_white(img: image::DynamicImage) -> image::DynamicImage {
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let white = |x: u32, y: u32| rgb.get_pixel(x, y).0.iter().all(|&v| v > 235);
    let row = |y: u32| (0..w).step_by(2).all(|x| white(x, y));
    let col = |x: u32| (0..h).step_by(2).all(|y| white(x, y));
    let (mut y0, mut y1, mut x0, mut x1) = (0, h - 1, 0, w - 1);
    while y0 < y1 && row(y0) {
        y0 += 1;
    }
    while y1 > y0 && row(y1) {
        y1 -= 1;
    }
    while x0 < x1 && col(x0) {
        x0 += 1;
    }
    while x1 > x0 && col(x1) {
        x1 -= 1;
    }
    img.crop_imm(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
}

fn load_square_of(img: image::DynamicImage, size: usize, channels: usize) -> Result<Vec<f32>> {
    let (w, h) = (img.width(), img.height());
    let s = size as f32 / w.min(h) as f32;
    let (nw, nh) = (((w as f32 * s).round() as u32).max(size as u32), ((h as f32 * s).round() as u32).max(size as u32));
    let img = img.resize_exact(nw, nh, image::imageops::FilterType::Triangle);
    let (ox, oy) = ((nw - size as u32) / 2, (nh - size as u32) / 2);
    let rgb = img.to_rgb8();
    let mut out = vec![0f32; channels * size * size];
    for y in 0..size {
        for x in 0..size {
            let p = rgb.get_pixel(ox + x as u32, oy + y as u32);
            if channels == 1 {
                out[y * size + x] = (p[0] as f32 + p[1] as f32 + p[2] as f32) / (3.0 * 255.0);
            } else {
                for c in 0..3 {
                    out[(c * size + y) * size + x] = p[c] as f32 / 255.0;
                }
            }
        }
    }
    Ok(out)
}

/// The net's input image from a file: .npy as it is, else scaled and centre-cropped.
fn input_image(path: &Path, net: &Net) -> Result<Vec<f32>> {
    let [c, h, w] = net.spec.input_shape();
    if path.extension().is_some_and(|e| e == "npy") || h != w {
        return crate::load_image(path, &net.spec);
    }
    load_square(path, h, c)
}

/// A layer by index or name.
fn layer_index(net: &Net, s: &str) -> Result<usize> {
    net.spec.layer_index(s).map_err(|e| e.to_string())
}

fn report(what: &str, steps: usize, t0: std::time::Instant) {
    let t = t0.elapsed().as_secs_f64();
    println!("{what}: {steps} steps in {t:.1} s ({:.2} steps/s)", steps as f64 / t);
}

#[derive(clap::Args)]
pub struct InvertArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub image: PathBuf,
    /// Layers to invert (indices or names, comma-separated); the PNG shows the image and each
    /// reconstruction side by side.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    #[arg(long, default_value_t = 0.02)]
    pub lr: f32,
    #[arg(long, default_value_t = 6.0)]
    pub alpha: f32,
    #[arg(long, default_value_t = 1.0)]
    pub alpha_weight: f32,
    #[arg(long, default_value_t = 2.0)]
    pub beta: f32,
    #[arg(long, default_value_t = 20.0)]
    pub tv_weight: f32,
    #[arg(long, default_value_t = 0)]
    pub jitter: usize,
    #[arg(long, default_value_t = 1)]
    pub noise_seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
}

pub async fn invert(a: InvertArgs) -> Result<()> {
    use convlens_core::vis::inversion::{Inversion, Settings};
    let net = load(&a.model).await?;
    let image = input_image(&a.image, &net)?;
    let shape = net.spec.input_shape();
    let mut panels = vec![grid::picture(&image, shape, a.scale)];
    for l in &a.layers {
        let layer = layer_index(&net, l)?;
        let s = Settings {
            steps: a.steps,
            lr: a.lr,
            alpha: a.alpha,
            alpha_weight: a.alpha_weight,
            tv_beta: a.beta,
            tv_weight: a.tv_weight,
            jitter: a.jitter,
            seed: a.noise_seed,
            ..Settings::new(layer)
        };
        let mut inv = Inversion::new(&net, &image, s).await.map_err(|e| e.to_string())?;
        let t0 = std::time::Instant::now();
        while !inv.done() {
            inv.step(&net).await.map_err(|e| e.to_string())?;
        }
        let h = inv.history.last().copied().unwrap_or_default();
        report(
            &format!(
                "layer {} ({}): loss {:.4} (feature {:.4}, alpha {:.4}, TV {:.4})",
                layer, net.spec.layers[layer].name, h[0], h[1], h[2], h[3]
            ),
            inv.history.len(),
            t0,
        );
        panels.push(grid::picture(&inv.current(), shape, a.scale));
    }
    write_png(&a.out, &grid::hstack(&panels, 4))?;
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct DreamArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub image: PathBuf,
    /// Image size (short side, centre-cropped square); any size the layer fits.
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// The layer (index or name).
    #[arg(long)]
    pub layer: String,
    #[arg(long)]
    pub channel: Option<usize>,
    #[arg(long, default_value_t = 4)]
    pub octaves: usize,
    #[arg(long, default_value_t = 1.4)]
    pub octave_scale: f32,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Step size on 0-255 pixels per unit of normalized gradient (google/deepdream's 1.5).
    #[arg(long, default_value_t = 1.5)]
    pub step: f32,
    #[arg(long, default_value_t = 32)]
    pub jitter: usize,
    #[arg(long, default_value_t = 1)]
    pub noise_seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn dream(a: DreamArgs) -> Result<()> {
    use convlens_core::vis::deepdream::{Dream, Settings};
    let net = load(&a.model).await?;
    let c = net.spec.input_shape()[0];
    let image = load_square(&a.image, a.size, c)?;
    let layer = layer_index(&net, &a.layer)?;
    let s = Settings {
        channel: a.channel,
        octaves: a.octaves,
        octave_scale: a.octave_scale,
        steps_per_octave: a.steps,
        step: a.step / 255.0,
        jitter: a.jitter,
        seed: a.noise_seed,
        ..Settings::new(layer)
    };
    let mut d = Dream::new(&net, &image, [c, a.size, a.size], s).map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    while !d.done() {
        d.step(&net).await.map_err(|e| e.to_string())?;
    }
    report(&format!("DeepDream on layer {layer} ({})", net.spec.layers[layer].name), d.history.len(), t0);
    let (img, shape) = d.current();
    write_image(&a.out, &img, shape, 1)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct StyleArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub content: PathBuf,
    #[arg(long)]
    pub style: PathBuf,
    #[arg(long, default_value_t = 224)]
    pub size: usize,
    /// Content layer (index or name); default MobileNetV2's op16.
    #[arg(long)]
    pub content_layer: Option<String>,
    /// Style layers (comma-separated); default MobileNetV2's op0,op3,op6,op13,op24.
    #[arg(long, value_delimiter = ',')]
    pub style_layers: Vec<String>,
    #[arg(long, default_value_t = 1.0)]
    pub content_weight: f32,
    #[arg(long, default_value_t = 1e4)]
    pub style_weight: f32,
    #[arg(long, default_value_t = 1.0)]
    pub tv_weight: f32,
    /// lbfgs or adam.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    #[arg(long)]
    pub lr: Option<f32>,
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Start from noise instead of the content image.
    #[arg(long)]
    pub from_noise: bool,
    #[arg(long, default_value_t = 1)]
    pub noise_seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the Gram matrices of the style layers (style image | result) as heatmaps here.
    #[arg(long)]
    pub grams: Option<PathBuf>,
}

pub async fn style(a: StyleArgs) -> Result<()> {
    use convlens_core::vis::style::{Optimizer, Settings, Style};
    let net = load(&a.model).await?;
    let c = net.spec.input_shape()[0];
    let content = load_square(&a.content, a.size, c)?;
    let style_img =
        load_square_of(trim_white(image::open(&a.style).map_err(|e| format!("cannot decode {}: {e}", a.style.display()))?), a.size, c)?;
    let mut s = match (&a.content_layer, a.style_layers.is_empty()) {
        (Some(cl), false) => {
            Settings::new(layer_index(&net, cl)?, a.style_layers.iter().map(|l| layer_index(&net, l)).collect::<Result<_>>()?)
        }
        _ => Settings::mobilenet(&net).ok_or("this network has no MobileNetV2 layer names; give --content-layer and --style-layers")?,
    };
    s.content_weight = a.content_weight;
    s.style_weight = a.style_weight;
    s.tv_weight = a.tv_weight;
    s.steps = a.steps;
    s.from_content = !a.from_noise;
    s.seed = a.noise_seed;
    s.optimizer = match a.optimizer.as_str() {
        "lbfgs" => Optimizer::Lbfgs { lr: a.lr.unwrap_or(1.0) },
        "adam" => Optimizer::Adam { lr: a.lr.unwrap_or(0.03) },
        o => return Err(format!("unknown optimizer '{o}'; expected lbfgs or adam")),
    };
    let shape = [c, a.size, a.size];
    let mut st = Style::new(&net, &content, &style_img, shape, s).await.map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    while !st.done() {
        let v = st.step().await.map_err(|e| e.to_string())?;
        let i = st.history.len();
        if i == 1 || i % 50 == 0 {
            let h = st.history[i - 1];
            println!("step {i}: loss {v:.4} (content {:.4}, style {:.4}, TV {:.4})", h[1], h[2], h[3]);
        }
    }
    report("style transfer", st.history.len(), t0);
    write_image(&a.out, &st.current(), shape, 1)?;
    println!("wrote {}", a.out.display());
    if let Some(path) = &a.grams {
        let (target, now) = (st.target_grams().await.map_err(|e| e.to_string())?, st.grams_of(None).await.map_err(|e| e.to_string())?);
        let mut panels = vec![];
        for (t, n) in target.iter().zip(&now) {
            let c = (t.len() as f64).sqrt() as usize;
            let scale = (192 / c).max(1);
            panels.push(grid::heatmap(t, c, c, grid::ColorMap::Viridis, scale));
            panels.push(grid::heatmap(n, c, c, grid::ColorMap::Viridis, scale));
        }
        write_png(path, &grid::hstack(&panels, 6))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct AdversarialArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image to attack (omit with --fooling).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// fgsm, towards (iterative attack towards --class) or fooling (grown from noise).
    #[arg(long, default_value = "fgsm")]
    pub method: String,
    /// Pixels move by at most this much (on 0-255).
    #[arg(long, default_value_t = 2.0)]
    pub eps: f32,
    /// The true label for FGSM (default: the predicted class); the target class otherwise.
    #[arg(long)]
    pub class: Option<usize>,
    #[arg(long, default_value_t = 0.5)]
    pub step: f32,
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value_t = 1)]
    pub noise_seed: u64,
    /// PNG: original | amplified perturbation | adversarial image.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
}

pub async fn adversarial(a: AdversarialArgs) -> Result<()> {
    use convlens_core::vis::adversarial::{self, Attack};
    use convlens_core::vis::attribution::Attributor;
    let net = load(&a.model).await?;
    let shape = net.spec.input_shape();
    let (eps, step) = (a.eps / 255.0, a.step / 255.0);
    let mut at = Attributor::new(&net, None);
    let (original, result) = match a.method.as_str() {
        "fgsm" => {
            let image = input_image(a.image.as_ref().ok_or("fgsm needs --image")?, &net)?;
            let label = match a.class {
                Some(k) => k,
                None => top(&net, &image).await?.0,
            };
            let adv = adversarial::fgsm(&mut at, &image, label, eps).await.map_err(|e| e.to_string())?;
            (image, adv)
        }
        "towards" | "fooling" => {
            let target = a.class.ok_or("give the target class as --class")?;
            let mut attack = if a.method == "fooling" {
                Attack::fooling(shape.iter().product(), target, step, a.steps, a.noise_seed)
            } else {
                Attack::new(&input_image(a.image.as_ref().ok_or("towards needs --image")?, &net)?, target, eps, step, a.steps)
            };
            let t0 = std::time::Instant::now();
            while !attack.done() {
                attack.step(&mut at).await.map_err(|e| e.to_string())?;
            }
            report(&format!("{} towards class {target}", a.method), attack.history.len(), t0);
            (attack.original, attack.x)
        }
        m => return Err(format!("unknown method '{m}'; expected fgsm, towards or fooling")),
    };
    let (k0, p0, n0) = top(&net, &original).await?;
    let (k1, p1, n1) = top(&net, &result).await?;
    let delta: Vec<f32> = result.iter().zip(&original).map(|(a, b)| a - b).collect();
    let m = delta.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let amplified: Vec<f32> = delta.iter().map(|d| 0.5 + 0.5 * d / m).collect();
    println!(
        "original: {n0} (class {k0}, {:.1}%); max |perturbation| {:.2}/255; adversarial: {n1} (class {k1}, {:.1}%)",
        100.0 * p0,
        m * 255.0,
        100.0 * p1
    );
    let panels =
        [grid::picture(&original, shape, a.scale), grid::picture(&amplified, shape, a.scale), grid::picture(&result, shape, a.scale)];
    write_png(&a.out, &grid::hstack(&panels, 4))?;
    println!("wrote {}", a.out.display());
    Ok(())
}
