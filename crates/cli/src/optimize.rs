//! The image-optimizing techniques on the command line: class and neuron visualization, feature
//! inversion, adversarial examples, DeepDream and style transfer, each rendered to PNG (or .npy).

use std::path::{Path, PathBuf};

use convlens_core::jobs::{Budget, Inputs, Progress};
use convlens_core::session::Session;
use convlens_core::vis::grid;
use convlens_core::{Net, Objective};
use serde_json::{Value, json};

use crate::{ModelArgs, Result, load, npy, session, settings_of, write_png};

/// Any setting of the technique as KEY=VALUE, by its key in the engine's settings schema (the
/// page's names); `convlens settings TECHNIQUE` lists them with their defaults and ranges.
#[derive(clap::Args)]
pub struct SetArgs {
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs a job to its end, calling `each` after every step.
async fn run_job(s: &Session, kind: &str, inputs: Inputs<'_>, settings: &Value, each: &mut dyn FnMut(&Progress)) -> Result<Progress> {
    let t0 = std::time::Instant::now();
    let clock = move || t0.elapsed().as_secs_f64() * 1e3;
    s.run_job(kind, inputs, settings, Budget::Items(1), &clock, each).await.map_err(|e| e.to_string())
}

#[derive(clap::Args)]
pub struct VisualizeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to maximize: class:K, prob:K, neuron:LAYER:INDEX or channel:LAYER:C.
    #[arg(long, default_value = "class:1")]
    pub target: String,
    /// lucid (Fourier, decorrelated colour, jitter), yosinski (pixels, decay, blur) or simonyan
    /// (pixels, L2 decay) [default: lucid].
    #[arg(long)]
    pub preset: Option<String>,
    /// Overrides of the preset: the image's parametrization (pixel, fourier, fourier-decorrelated).
    #[arg(long)]
    pub param: Option<String>,
    #[arg(long)]
    pub steps: Option<u64>,
    /// Adam's learning rate.
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Random roll before each step, in pixels.
    #[arg(long)]
    pub jitter: Option<u64>,
    /// Pixels: each step pulls the image towards gray by this fraction.
    #[arg(long, allow_negative_numbers = true)]
    pub l2: Option<f64>,
    #[arg(long)]
    pub blur_every: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub blur_sigma: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub norm_pct: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub contrib_pct: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub tv: Option<f64>,
    /// Seed of the starting image and the jitter [default: 1].
    #[arg(long)]
    pub noise_seed: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
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
    let given = settings_of(
        "visualize",
        vec![
            ("preset", a.preset.map(Into::into)),
            ("param", a.param.map(Into::into)),
            ("steps", a.steps.map(Into::into)),
            ("lr", a.lr.map(Into::into)),
            ("jitter", a.jitter.map(Into::into)),
            ("l2", a.l2.map(Into::into)),
            ("blurEvery", a.blur_every.map(Into::into)),
            ("blurSigma", a.blur_sigma.map(Into::into)),
            ("normPct", a.norm_pct.map(Into::into)),
            ("contribPct", a.contrib_pct.map(Into::into)),
            ("tv", a.tv.map(Into::into)),
            ("seed", a.noise_seed.map(Into::into)),
        ],
        &a.set.set,
    )?;
    let what = objective.describe(&net);
    let s = session(net.clone(), &a.model)?;
    let t0 = std::time::Instant::now();
    let p = run_job(&s, "visualize", Inputs { objective: Some(objective), ..Default::default() }, &given, &mut |p| {
        if p.step == 1 || p.step % 25 == 0 {
            println!("step {}: {what} = {:.4}", p.step, p.history.last().map_or(0.0, |h| h[0]));
        }
    })
    .await?;
    let image = &p.images[0].data;
    let (k, prob, name) = top(&net, image).await?;
    println!(
        "{} steps in {:.1} s ({:.2} steps/s); the net calls the result {name} (class {k}, {:.1}%)",
        p.step,
        t0.elapsed().as_secs_f64(),
        p.step as f64 / t0.elapsed().as_secs_f64(),
        100.0 * prob
    );
    write_image(&a.out, image, net.spec.input_shape(), a.scale)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

/// An image file as a square of `size` ([`load_fitted`]: short side scaled to `size`,
/// centre-cropped), as CHW in [0, 1] with `channels` channels (1 = gray).
pub fn load_square(path: &Path, size: usize, channels: usize) -> Result<Vec<f32>> {
    Ok(load_fitted(crate::open_image(path)?, size, size, channels))
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

/// `img`'s largest centred box of the input's shape, scaled to `h` x `w` (for a square input: the
/// short side scaled to the input's, centre-cropped), as CHW in [0, 1] with `channels` channels
/// (1: the mean of R, G and B): the pages' `loadSquare` (www/views/image-io.js), so the CLI and a
/// page read a file alike. Cropped before it is scaled, so a long thin image costs no more than
/// its box; an image of the input's size is taken as it is.
pub fn load_fitted(img: image::DynamicImage, h: usize, w: usize, channels: usize) -> Vec<f32> {
    let (iw, ih) = (img.width() as u64, img.height() as u64);
    let (bw, bh) = if iw * h as u64 > ih * w as u64 {
        (((ih * w as u64) as f64 / h as f64).round().max(1.0) as u64, ih)
    } else {
        (iw, ((iw * h as u64) as f64 / w as f64).round().max(1.0) as u64)
    };
    let (bw, bh) = (bw.min(iw) as u32, bh.min(ih) as u32);
    let boxed = img.crop_imm(((iw as u32) - bw) / 2, ((ih as u32) - bh) / 2, bw, bh);
    let (w32, h32) = (w as u32, h as u32);
    let img = if (bw, bh) == (w32, h32) { boxed } else { boxed.resize_exact(w32, h32, image::imageops::FilterType::Triangle) };
    let rgb = img.to_rgb8();
    let mut out = vec![0f32; channels * h * w];
    for y in 0..h {
        for x in 0..w {
            let p = rgb.get_pixel(x as u32, y as u32);
            if channels == 1 {
                out[y * w + x] = (p[0] as f32 + p[1] as f32 + p[2] as f32) / (3.0 * 255.0);
            } else {
                for c in 0..3 {
                    out[(c * h + y) * w + x] = p[c] as f32 / 255.0;
                }
            }
        }
    }
    out
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
    #[arg(long)]
    pub steps: Option<u64>,
    /// Adam's learning rate [default: 0.02].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// The alpha-norm's exponent [default: 6].
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub alpha_weight: Option<f64>,
    /// Total variation's exponent [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    pub beta: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub tv_weight: Option<f64>,
    #[arg(long)]
    pub jitter: Option<u64>,
    #[arg(long)]
    pub noise_seed: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
}

pub async fn invert(a: InvertArgs) -> Result<()> {
    let net = load(&a.model).await?;
    let image = crate::load_image(&a.image, &net.spec)?;
    let shape = net.spec.input_shape();
    let given = settings_of(
        "invert",
        vec![
            ("layers", (!a.layers.is_empty()).then(|| json!(a.layers))),
            ("steps", a.steps.map(Into::into)),
            ("lr", a.lr.map(Into::into)),
            ("alpha", a.alpha.map(Into::into)),
            ("alphaWeight", a.alpha_weight.map(Into::into)),
            ("beta", a.beta.map(Into::into)),
            ("tvWeight", a.tv_weight.map(Into::into)),
            ("jitter", a.jitter.map(Into::into)),
            ("seed", a.noise_seed.map(Into::into)),
        ],
        &a.set.set,
    )?;
    let s = session(net.clone(), &a.model)?;
    let t0 = std::time::Instant::now();
    let p = run_job(&s, "invert", Inputs { image: &image, ..Default::default() }, &given, &mut |_| {}).await?;
    let mut panels = vec![grid::picture(&image, shape, a.scale)];
    for im in &p.images {
        let layer = im.layer.unwrap_or_default();
        println!(
            "layer {layer} ({}): feature {:.4} (the loss before the last step)",
            net.spec.layers[layer].name,
            im.loss.unwrap_or_default()
        );
        panels.push(grid::picture(&im.data, shape, a.scale));
    }
    report("inversion", p.step, t0);
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
    /// Image size (short side, centre-cropped square); any size the layer fits [default: the
    /// network's input].
    #[arg(long)]
    pub size: Option<usize>,
    /// The layer (index or name).
    #[arg(long)]
    pub layer: String,
    #[arg(long)]
    pub channel: Option<u64>,
    #[arg(long)]
    pub octaves: Option<u64>,
    #[arg(long, allow_negative_numbers = true)]
    pub octave_scale: Option<f64>,
    /// Steps per octave.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Step size on 0-255 pixels per unit of normalized gradient [default: google/deepdream's 1.5].
    #[arg(long, allow_negative_numbers = true)]
    pub step: Option<f64>,
    #[arg(long)]
    pub jitter: Option<u64>,
    #[arg(long)]
    pub noise_seed: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
    #[arg(long)]
    pub out: PathBuf,
}

pub async fn dream(a: DreamArgs) -> Result<()> {
    let net = load(&a.model).await?;
    let [c, h, _] = net.spec.input_shape();
    let size = a.size.unwrap_or(h);
    let image = load_square(&a.image, size, c)?;
    let given = settings_of(
        "dream",
        vec![
            ("layer", Some(a.layer.clone().into())),
            ("width", Some(size.into())),
            ("height", Some(size.into())),
            ("channel", a.channel.map(Into::into)),
            ("octaves", a.octaves.map(Into::into)),
            ("octaveScale", a.octave_scale.map(Into::into)),
            ("steps", a.steps.map(Into::into)),
            ("step", a.step.map(Into::into)),
            ("jitter", a.jitter.map(Into::into)),
            ("seed", a.noise_seed.map(Into::into)),
        ],
        &a.set.set,
    )?;
    let s = session(net.clone(), &a.model)?;
    let t0 = std::time::Instant::now();
    let p = run_job(&s, "dream", Inputs { image: &image, ..Default::default() }, &given, &mut |_| {}).await?;
    let layer = net.spec.layer_index(&a.layer).map_err(|e| e.to_string())?;
    report(&format!("DeepDream on layer {layer} ({})", net.spec.layers[layer].name), p.step, t0);
    write_image(&a.out, &p.images[0].data, p.images[0].shape, 1)?;
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
    /// The square image's side [default: the network's input].
    #[arg(long)]
    pub size: Option<usize>,
    /// Content layer (index or name); default MobileNetV2's op16.
    #[arg(long)]
    pub content_layer: Option<String>,
    /// Style layers (comma-separated); default MobileNetV2's op0,op3,op6,op13,op24.
    #[arg(long, value_delimiter = ',')]
    pub style_layers: Vec<String>,
    #[arg(long, allow_negative_numbers = true)]
    pub content_weight: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub style_weight: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    pub tv_weight: Option<f64>,
    /// adam or lbfgs [default: adam].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// [default: 0.03 for Adam, 1 for L-BFGS]
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub steps: Option<u64>,
    /// Start from noise instead of the content image.
    #[arg(long)]
    pub from_noise: bool,
    #[arg(long)]
    pub noise_seed: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the Gram matrices of the style layers (style image | result) as heatmaps here.
    #[arg(long)]
    pub grams: Option<PathBuf>,
}

pub async fn style(a: StyleArgs) -> Result<()> {
    let net = load(&a.model).await?;
    let [c, h, _] = net.spec.input_shape();
    let size = a.size.unwrap_or(h);
    let content = load_square(&a.content, size, c)?;
    let style_img = load_fitted(trim_white(crate::open_image(&a.style)?), size, size, c);
    if net.spec.layers.iter().all(|l| l.name != "op16") && (a.content_layer.is_none() || a.style_layers.is_empty()) {
        return Err("this network has no MobileNetV2 layer names; give --content-layer and --style-layers".into());
    }
    let given = settings_of(
        "style",
        vec![
            ("size", Some(size.into())),
            ("contentLayer", a.content_layer.map(Into::into)),
            ("styleLayers", (!a.style_layers.is_empty()).then(|| json!(a.style_layers))),
            ("contentWeight", a.content_weight.map(Into::into)),
            ("styleWeight", a.style_weight.map(Into::into)),
            ("tvWeight", a.tv_weight.map(Into::into)),
            ("optimizer", a.optimizer.map(Into::into)),
            ("lr", a.lr.map(Into::into)),
            ("steps", a.steps.map(Into::into)),
            ("fromContent", a.from_noise.then_some(false.into())),
            ("seed", a.noise_seed.map(Into::into)),
        ],
        &a.set.set,
    )?;
    let s = session(net.clone(), &a.model)?;
    let t0 = std::time::Instant::now();
    let (id, mut p) = s
        .start_job("style", Inputs { image: &content, style: &style_img, ..Inputs::default() }, &given)
        .await
        .map_err(|e| e.to_string())?;
    let clock = move || t0.elapsed().as_secs_f64() * 1e3;
    while !p.done {
        p = s.step_job(id, Budget::Items(1), &clock).await.map_err(|e| e.to_string())?;
        if p.step == 1 || p.step % 50 == 0 {
            let h = &p.history[p.step - 1];
            println!("step {}: loss {:.4} (content {:.4}, style {:.4}, TV {:.4})", p.step, h[0], h[1], h[2], h[3]);
        }
    }
    report("style transfer", p.step, t0);
    write_image(&a.out, &p.images[0].data, p.images[0].shape, 1)?;
    println!("wrote {}", a.out.display());
    if let Some(path) = &a.grams {
        let g = s.style_grams(id).await.map_err(|e| e.to_string())?;
        let mut panels = vec![];
        for (t, n) in g.target.iter().zip(&g.current) {
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
    /// The image to attack (omit with --method fooling).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// fgsm, towards (iterative attack towards --class) or fooling (grown from noise).
    #[arg(long, default_value = "fgsm")]
    pub method: String,
    /// Pixels move by at most this much, on 0-255 [default: 2].
    #[arg(long, allow_negative_numbers = true)]
    pub eps: Option<f64>,
    /// The true label for FGSM (default: the predicted class); the target class otherwise.
    #[arg(long)]
    pub class: Option<u64>,
    /// The iterative attacks' step, on 0-255 [default: 0.5].
    #[arg(long, allow_negative_numbers = true)]
    pub step: Option<f64>,
    #[arg(long)]
    pub steps: Option<u64>,
    #[arg(long)]
    pub noise_seed: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
    /// PNG: original | amplified perturbation | adversarial image.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
}

pub async fn adversarial(a: AdversarialArgs) -> Result<()> {
    use convlens_core::settings::Resolved;
    let net = load(&a.model).await?;
    let shape = net.spec.input_shape();
    let flags = |target: Option<u64>| {
        vec![
            ("target", target.map(Into::into)),
            ("eps", a.eps.map(Into::into)),
            ("step", a.step.map(Into::into)),
            ("steps", a.steps.map(Into::into)),
            ("seed", a.noise_seed.map(Into::into)),
        ]
    };
    let s = session(net.clone(), &a.model)?;
    let (original, result) = match a.method.as_str() {
        "fgsm" => {
            let image = crate::load_image(a.image.as_ref().ok_or("fgsm needs --image")?, &net.spec)?;
            let label = match a.class {
                Some(k) => k as usize,
                None => top(&net, &image).await?.0,
            };
            let given = settings_of("attack", flags(Some(label as u64)), &a.set.set)?;
            let v = convlens_core::jobs::schema("attack").and_then(|sc| sc.resolve(&given, false)).map_err(|e| e.to_string())?;
            let adv = s.fgsm(&image, label, v.num("eps") as f32).await.map_err(|e| e.to_string())?;
            (image, adv)
        }
        "towards" | "fooling" => {
            let target = a.class.ok_or("give the target class as --class")?;
            let given = settings_of("attack", flags(Some(target)), &a.set.set)?;
            let image = match a.method.as_str() {
                "towards" => crate::load_image(a.image.as_ref().ok_or("towards needs --image")?, &net.spec)?,
                _ => vec![],
            };
            let kind = if a.method == "fooling" { "fooling" } else { "attack" };
            let t0 = std::time::Instant::now();
            let p = run_job(&s, kind, Inputs { image: &image, ..Default::default() }, &given, &mut |_| {}).await?;
            report(&format!("{} towards class {target}", a.method), p.step, t0);
            (p.images[0].data.clone(), p.images[1].data.clone())
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
