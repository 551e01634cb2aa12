//! `convlens`: the ConvLens engine on the command line, for slides, scripts and tests.

mod dataset;
mod npy;
mod optimize;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use convlens_core::backend::{self, Backend};
use convlens_core::burn::tensor::Device;
use convlens_core::import::Companion;
use convlens_core::jobs::{Budget, Inputs};
use convlens_core::session::Session;
use convlens_core::vis::attribution::{self, Display, Method};
use convlens_core::vis::grid::{self, ColorMap};
use convlens_core::{Net, NetSpec, Objective, weights};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "convlens", version, about = "See inside a convolutional network: the ConvLens engine on the command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Network spec (.json), a .safetensors file that carries its spec, a TF.js layers
    /// model.json (its weight shards are read from beside it), a .tflite file (such as
    /// mobilenet_v2_1.0_224_quant.tflite; class names from imagenet_labels.txt beside it), an
    /// ONNX model (.onnx, as torch.onnx.export writes it; class names from labels.txt beside it),
    /// or an op list such as mobilenet_v2_f32.json (with its safetensors as --weights).
    #[arg(long)]
    model: PathBuf,
    /// Weights (.safetensors, PyTorch names and layouts). Default: a seeded random init.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the random init when no weights are given (and of training's data order and
    /// dropout) [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// cpu (burn-flex) or gpu (burn-wgpu on Vulkan/Metal).
    #[arg(long, default_value = "cpu")]
    backend: String,
}

#[derive(Subcommand)]
enum Command {
    /// Print the layers, their output shapes and parameter counts.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Write every layer's activation and gradient (and weights) as .npy and as PNG grids.
    Probe {
        #[command(flatten)]
        model: ModelArgs,
        /// Image: .npy (float32, CHW) or PNG/JPEG/BMP (values in [0,1], scaled to cover the input and centre-cropped, as the pages read it).
        #[arg(long)]
        image: PathBuf,
        /// Objective: class:K, neuron:LAYER:INDEX, channel:LAYER:C or loss:LABEL.
        #[arg(long, default_value = "class:0")]
        target: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Pixels per value in the PNG grids.
        #[arg(long, default_value_t = 4)]
        scale: usize,
        /// Also time the probe this many times and print the median (a benchmark).
        #[arg(long, default_value_t = 0)]
        repeat: usize,
        /// Write only the activations (.npy) and probe.json: no gradients, weights or PNG grids.
        #[arg(long)]
        activations_only: bool,
    },
    /// Train a network on a dataset (random crops, shifts and flips as ConvNetJS augments; test
    /// images centre-cropped), report its test accuracy, and write the weights as safetensors.
    Train {
        #[command(flatten)]
        model: ModelArgs,
        /// mnist (60,000 + 3,000 test), cifar10 (4,000 + 1,000 test) or mnist5k (the built-in
        /// 4,500 + 500 held out).
        #[arg(long, default_value = "mnist")]
        dataset: String,
        /// Data directory with mnist/ and cifar10/ (default: $CONVLENS_DATA_DIR; www/data for mnist5k).
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 1.0)]
        epochs: f64,
        /// sgd, momentum, nesterov, adagrad, adadelta or adam [default: momentum].
        #[arg(long)]
        trainer: Option<String>,
        /// [default: 20]
        #[arg(long)]
        batch: Option<u64>,
        /// [default: 0.01]
        #[arg(long, allow_negative_numbers = true)]
        lr: Option<f64>,
        /// [default: 0.9]
        #[arg(long, allow_negative_numbers = true)]
        momentum: Option<f64>,
        #[arg(long, allow_negative_numbers = true)]
        l1: Option<f64>,
        /// [default: 0.001]
        #[arg(long, allow_negative_numbers = true)]
        l2: Option<f64>,
        /// Any trainer setting as KEY=VALUE (`convlens settings trainer` lists them).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Learning-rate schedule: constant, or cosine (from --lr down to 0 over the run).
        #[arg(long, default_value = "constant")]
        schedule: String,
        /// Train through Burn's autodiff even on the CPU (instead of the fused CPU path).
        #[arg(long)]
        burn: bool,
        #[arg(long)]
        out: PathBuf,
    },
    /// Attribution map for one image: gradient, deconvnet, guided, gradient-x-input,
    /// smoothgrad, integrated-gradients or grad-cam. Writes .npy (the raw [C,H,W] map) or .png.
    Attribute {
        #[command(flatten)]
        model: ModelArgs,
        /// Image: .npy (float32, CHW) or PNG/JPEG/BMP (values in [0,1], scaled to cover the input and centre-cropped, as the pages read it).
        #[arg(long)]
        image: PathBuf,
        /// gradient (the default), deconvnet, guided, gradient-x-input, smoothgrad,
        /// integrated-gradients or grad-cam.
        #[arg(long)]
        method: Option<String>,
        /// predicted (the top class's score), class:K, prob:K, neuron:LAYER:INDEX or channel:LAYER:C.
        #[arg(long, default_value = "predicted")]
        target: String,
        /// map.npy (raw values) or map.png (drawn; see --display).
        #[arg(long)]
        out: PathBuf,
        /// PNG: abs (max |value| over channels, viridis), signed (channel sum, RdBu) or overlay
        /// (on the image). Default: signed for deconvnet, guided, gradient-x-input and
        /// integrated-gradients; abs for gradient and smoothgrad; overlay for grad-cam.
        #[arg(long)]
        display: Option<String>,
        /// SmoothGrad: the noise level, a fraction of the image's value range.
        #[arg(long, allow_negative_numbers = true)]
        noise: Option<f64>,
        /// SmoothGrad: how many noisy copies are averaged.
        #[arg(long)]
        samples: Option<u64>,
        /// SmoothGrad: the noise's seed.
        #[arg(long)]
        noise_seed: Option<u64>,
        /// Integrated gradients: the baseline's value (every pixel).
        #[arg(long, allow_negative_numbers = true)]
        baseline: Option<f64>,
        /// Integrated gradients: the number of points on the path from the baseline.
        #[arg(long)]
        steps: Option<u64>,
        /// Integrated gradients: the quadrature rule, gausslegendre or riemann_trapezoid (Captum's).
        #[arg(long)]
        rule: Option<String>,
        /// Grad-CAM: the layer, by name or number (default: the last spatial layer below the target).
        #[arg(long)]
        layer: Option<String>,
        /// Grad-CAM: keep the negative part of the map (no ReLU on the weighted sum).
        #[arg(long)]
        no_relu: bool,
        /// Any attribution setting as KEY=VALUE, by its key in the engine's settings schema (the
        /// page's names): method, noise, samples, seed, baseline, steps, rule, layer, relu.
        /// `--settings` lists them with their defaults and ranges.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Print the attribution settings (keys, defaults, ranges) and exit.
        #[arg(long)]
        settings: bool,
        /// Pixels per input pixel in the PNG.
        #[arg(long, default_value_t = 8)]
        scale: usize,
        /// Also time the attribution this many times and print the median (a benchmark).
        #[arg(long, default_value_t = 0)]
        repeat: usize,
    },
    /// Occlusion: slide a patch over the image and map one class's probability (and its drop)
    /// against the patch position. Writes .npy ([ny, nx] probabilities) or .png (the drop in
    /// probability, RdBu, over the image), and prints the most damaging position.
    Occlude {
        #[command(flatten)]
        model: ModelArgs,
        /// Image: .npy (float32, CHW) or PNG/JPEG/BMP (values in [0,1], scaled to cover the input and centre-cropped, as the pages read it).
        #[arg(long)]
        image: PathBuf,
        /// The class to track (default: the predicted one).
        #[arg(long)]
        class: Option<usize>,
        /// Track the class's score (the logit) instead of its probability.
        #[arg(long)]
        logit: bool,
        /// The patch's side in pixels [default: 8].
        #[arg(long)]
        window: Option<u64>,
        /// Pixels between patch positions [default: 2].
        #[arg(long)]
        stride: Option<u64>,
        /// gray (the default), black, white, blur, mean:V[,V,V] or a number.
        #[arg(long)]
        fill: Option<String>,
        /// Any occlusion setting as KEY=VALUE (`convlens settings occlusion` lists them).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Occluded images per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// map.npy ([ny, nx] of the tracked value) or map.png (its drop, RdBu, over the image).
        #[arg(long)]
        out: PathBuf,
        /// Pixels per input pixel in the PNG.
        #[arg(long, default_value_t = 8)]
        scale: usize,
        /// Also time the whole occlusion this many times and print the median (a benchmark).
        #[arg(long, default_value_t = 0)]
        repeat: usize,
    },
    /// A technique's settings: keys, defaults, ranges, units and presets (give them to a command
    /// as --set KEY=VALUE). TECHNIQUE: attribution, occlusion, visualize, invert, dream, style,
    /// attack (adversarial's towards and fooling), trainer, patches, tsne or landscape.
    Settings { technique: String },
    /// Class and neuron visualization by gradient ascent (presets lucid, yosinski, simonyan).
    Visualize(optimize::VisualizeArgs),
    /// Feature inversion (Mahendran & Vedaldi): reconstruct an image from layers' codes, side by side.
    Invert(optimize::InvertArgs),
    /// DeepDream on any image: octaves, jitter, normalized steps.
    Dream(optimize::DreamArgs),
    /// Neural style transfer (Gatys et al.) with Gram matrices; L-BFGS or Adam.
    Style(optimize::StyleArgs),
    /// Adversarial examples: FGSM, an iterative attack towards a class, fooling images.
    Adversarial(optimize::AdversarialArgs),
    /// Maximally activating patches: for every channel of a layer, the images of a dataset that
    /// excite it most, cropped to the receptive field of the unit where each peaks.
    Patches(dataset::PatchesArgs),
    /// A t-SNE map of a layer's codes over a dataset's images (exact or Barnes-Hut), as
    /// scikit-learn makes it.
    Tsne(dataset::TsneArgs),
    /// The loss surface: along the line from the initial weights to the trained ones, or a 2-D
    /// slice along two random filter-normalized directions.
    Landscape(dataset::LandscapeArgs),
    /// Write the model's weights (e.g. a seeded init) as safetensors with the spec embedded, so
    /// one file opens the whole model (in the page's "Open model…" or as --model).
    Export {
        #[command(flatten)]
        model: ModelArgs,
        /// The .safetensors file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

type Result<T> = std::result::Result<T, String>;

impl ModelArgs {
    fn seed(&self) -> u64 {
        self.seed.unwrap_or(1)
    }
}

fn main() {
    // `convlens info | head -3`: end quietly when the reader goes away, as other command-line
    // tools do (Rust ignores SIGPIPE, so println! would panic on the broken pipe).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of a signal, before any other thread runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" once per probe when it
    // is unset (a headless machine, a container); a private empty directory quiets them.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("convlens-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            // SAFETY: no other thread runs yet.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    if let Err(e) = pollster::block_on(run(cli)) {
        eprintln!("convlens: {e}");
        std::process::exit(1);
    }
}

async fn device(name: &str) -> Result<Device> {
    match Backend::parse(name) {
        Some(Backend::Cpu) => Ok(backend::cpu()),
        Some(Backend::Gpu) => backend::gpu().await.map_err(|e| e.to_string()),
        None => Err(format!("unknown backend '{name}'; expected cpu or gpu")),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Loads the model; warns when it runs on random weights (a spec alone, without --weights).
async fn load(m: &ModelArgs) -> Result<Net> {
    load_with(m, true).await
}

async fn load_with(m: &ModelArgs, warn_random: bool) -> Result<Net> {
    let device = device(&m.backend).await?;
    let model_bytes = read(&m.model)?;
    let tfjs = m.model.extension().is_some_and(|e| e == "json") && model_bytes.windows(13).any(|w| w == b"modelTopology");
    if tfjs || m.model.extension().is_some_and(|e| e == "onnx" || e == "tflite") {
        // A model of one's own (crates/core: import.rs): TF.js shards and class names
        // (labels.txt, or imagenet_labels.txt as the published MobileNets have) from beside it.
        let dir = m.model.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = m.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let model = convlens_core::import::open(
            &name,
            &model_bytes,
            &mut |want| match want {
                Companion::Named(p) => Some(
                    std::fs::read(dir.join(p))
                        .map_err(|e| convlens_core::Error::Weights(format!("cannot read {}: {e}", dir.join(p).display()))),
                ),
                Companion::Labels => ["labels.txt", "imagenet_labels.txt"].iter().find_map(|f| std::fs::read(dir.join(f)).ok()).map(Ok),
                Companion::Weights => None,
            },
            None,
        )
        .map_err(|e| format!("{}: {e}", m.model.display()))?;
        return Ok(Net::with_weights(model.spec, model.weights, &device));
    }
    if m.model.extension().is_some_and(|e| e == "json") && model_bytes.windows(16).any(|w| w == b"input_shape_nhwc") {
        // A TF-style op list (the data's MobileNetV2 conversion): weights from --weights, class
        // names from imagenet_labels.txt beside it if there.
        let weights_path =
            m.weights.as_ref().ok_or_else(|| format!("{} is an op list; give its safetensors as --weights", m.model.display()))?;
        let bytes = read(weights_path)?;
        let st = weights::read(&bytes).map_err(|e| format!("{}: {e}", weights_path.display()))?;
        let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
        let labels =
            std::fs::read_to_string(m.model.with_file_name("imagenet_labels.txt")).ok().map(|t| t.lines().map(str::to_string).collect());
        let text = String::from_utf8(model_bytes).map_err(|_| format!("{} is not UTF-8 JSON", m.model.display()))?;
        let spec = convlens_core::oplist::spec(&text, &shape, labels).map_err(|e| format!("{}: {e}", m.model.display()))?;
        let w = weights::load(&spec, &bytes).map_err(|e| e.to_string())?;
        return Ok(Net::with_weights(spec, w, &device));
    }
    let (spec_text, embedded_weights) = if m.model.extension().is_some_and(|e| e == "safetensors") {
        let spec = weights::embedded_spec(&model_bytes)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} has no embedded spec; pass the spec as --model and the file as --weights", m.model.display()))?;
        (spec, Some(model_bytes))
    } else {
        (String::from_utf8(model_bytes).map_err(|_| format!("{} is not UTF-8 JSON", m.model.display()))?, None)
    };
    let weight_bytes = match &m.weights {
        Some(p) => Some(read(p)?),
        None => embedded_weights,
    };
    if weight_bytes.is_none() && warn_random && m.seed.is_none() {
        let beside = m.model.with_extension("safetensors");
        let hint =
            if beside.exists() { format!(" (trained weights are beside it: --weights {})", beside.display()) } else { String::new() };
        eprintln!(
            "convlens: warning: {} has no weights, so this runs on random weights (seed {}); give --weights{hint}",
            m.model.display(),
            m.seed()
        );
    }
    convlens_core::build(&spec_text, weight_bytes.as_deref(), m.seed(), &device).map_err(|e| e.to_string())
}

/// Loads an image as the network's input: CHW floats; a .npy as it is (its shape checked), an
/// image file scaled to cover the input and centre-cropped, as the pages read one.
fn load_image(path: &Path, spec: &NetSpec) -> Result<Vec<f32>> {
    let [d, h, w] = spec.input_shape();
    if path.extension().is_some_and(|e| e == "npy") {
        let (shape, data) = npy::read(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
        // CHW, optionally with a batch of one in front; an HWC array (channels last) is refused,
        // not read in the wrong order.
        let chw = match shape.as_slice() {
            [c, y, x] | [1, c, y, x] => [*c, *y, *x],
            [y, x] if d == 1 => [1, *y, *x],
            _ => [0, 0, 0],
        };
        if chw != [d, h, w] {
            let hint = if shape.len() >= 3 && shape[shape.len() - 1] == d && shape[shape.len() - 3..shape.len() - 1] == [h, w] {
                " (channels last: transpose it to channels first, e.g. numpy's a.transpose(2, 0, 1))"
            } else {
                ""
            };
            return Err(format!(
                "{}: shape {shape:?}; the network's input is [{d}, {h}, {w}] (channels, height, width){hint}",
                path.display()
            ));
        }
        return Ok(data);
    }
    if d != 1 && d != 3 {
        return Err(format!("images can feed 1- or 3-channel inputs; this network's input has {d}; use .npy"));
    }
    Ok(optimize::load_fitted(open_image(path)?, h, w, d))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A session (the page's engine state, and its choice of path: the fused CPU path where it
/// applies, else Burn) on the model's backend, with `net` loaded.
fn session(net: Net, m: &ModelArgs) -> Result<Session> {
    let backend = Backend::parse(&m.backend).ok_or_else(|| format!("unknown backend '{}'; expected cpu or gpu", m.backend))?;
    let s = Session::new(backend, net.device.clone());
    s.load(net);
    Ok(s)
}

/// A technique's settings: the flags that were given, then `--set KEY=VALUE` pairs, as an object
/// for the engine's schema, which holds the defaults and ranges (`convlens settings TECHNIQUE`).
fn settings_of(technique: &str, flags: Vec<(&str, Option<Value>)>, set: &[String]) -> Result<Value> {
    let schema = convlens_core::jobs::schema(technique).map_err(|e| e.to_string())?;
    let mut given: serde_json::Map<String, Value> = flags.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect();
    if let Value::Object(o) = schema.parse_set(set).map_err(|e| e.to_string())? {
        given.extend(o);
    }
    Ok(Value::Object(given))
}

/// Prints a technique's settings: keys, defaults, ranges, units, presets.
fn print_schema(technique: &str) -> Result<()> {
    let schema = convlens_core::jobs::schema(technique).map_err(|e| e.to_string())?;
    let described = schema.describe();
    println!("{technique} settings (give them as --set KEY=VALUE):");
    for f in described["fields"].as_array().into_iter().flatten() {
        let range = match (f["min"].as_f64(), f["max"].as_f64()) {
            (Some(a), Some(b)) => format!(" [{a} to {b}]"),
            _ => String::new(),
        };
        let options = f["type"]["options"]
            .as_array()
            .map(|o| format!(" one of {}", o.iter().map(|v| v.as_str().unwrap_or("")).collect::<Vec<_>>().join(", ")))
            .unwrap_or_default();
        let unit = f["unit"].as_str().filter(|u| !u.is_empty()).map(|u| format!(" ({u})")).unwrap_or_default();
        let default = if f["default"].is_null() { "auto".to_string() } else { f["default"].to_string() };
        println!("  {:<14} default {default}{range}{options}{unit}  {}", f["key"].as_str().unwrap_or(""), f["help"].as_str().unwrap_or(""));
    }
    for p in described["presets"].as_array().into_iter().flatten() {
        println!("  preset {:<10} {}: {}", p["name"].as_str().unwrap_or(""), p["label"].as_str().unwrap_or(""), p["values"]);
    }
    Ok(())
}

/// An image file, decoded; one with transparency is composited on black, as the page's canvas does
/// (dropping the alpha channel would show whatever colour the transparent pixels happen to hold).
pub fn open_image(path: &Path) -> Result<image::DynamicImage> {
    // The size is read from the header and checked before anything is decoded: at most the
    // values of one layer the engine takes (as RGBA), and the decoder may allocate no more.
    let max = convlens_core::spec::Limits::here().values;
    let cannot = |e: image::ImageError| format!("cannot decode {}: {e}", path.display());
    let reader = || {
        image::ImageReader::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .with_guessed_format()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    // The header alone (no limits: the decoder's own would answer "Memory limit exceeded").
    let mut header = reader()?;
    header.no_limits();
    let (w, h) = header.into_dimensions().map_err(cannot)?;
    if w as u64 * h as u64 > max {
        return Err(format!("{} is {w}x{h} pixels; this engine takes images of at most {max} pixels", path.display()));
    }
    let mut decoder = reader()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(4 * max);
    decoder.limits(limits);
    let img = decoder.decode().map_err(cannot)?;
    if !img.color().has_alpha() {
        return Ok(img);
    }
    let mut rgba = img.to_rgba8();
    for p in rgba.pixels_mut() {
        let a = p[3] as u32;
        for c in 0..3 {
            p[c] = ((p[c] as u32 * a + 127) / 255) as u8;
        }
        p[3] = 255;
    }
    Ok(image::DynamicImage::ImageRgba8(rgba))
}

/// The class with the highest score for one image.
async fn predicted(s: &Session, image: &[f32]) -> Result<usize> {
    let net = s.net().map_err(|e| e.to_string())?;
    let out = s.infer(image, net.spec.score_layer()).await.map_err(|e| e.to_string())?;
    Ok(convlens_core::train::argmax(&out))
}

fn write_png(path: &Path, img: &grid::Image) -> Result<()> {
    image::save_buffer(path, &img.rgb, img.width as u32, img.height as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn as3(shape: &[usize]) -> [usize; 3] {
    match shape {
        [c, h, w] => [*c, *h, *w],
        [o, i, h, w] => [o * i, *h, *w],
        [n, m] => [1, *n, *m],
        [n] => [1, 1, *n],
        _ => [1, 1, shape.iter().product()],
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { model } => {
            let net = load_with(&model, false).await?;
            let s = &net.spec;
            println!("{}: {} layers, {} parameters, {} classes", s.name, s.layers.len(), s.param_count(), s.classes());
            println!("{:>3}  {:<10} {:<44} {:>14} {:>8}", "#", "name", "layer", "output (CxHxW)", "params");
            for l in &s.layers {
                let [c, h, w] = l.out_shape;
                println!("{:>3}  {:<10} {:<44} {:>14} {:>8}", l.index, l.name, l.describe(), format!("{c}x{h}x{w}"), l.param_count());
            }
            Ok(())
        }
        Command::Train { model, dataset, data, epochs, trainer, batch, lr, momentum, l1, l2, set, schedule, burn, out } => {
            use convlens_core::data;
            if schedule != "constant" && schedule != "cosine" {
                return Err(format!("unknown schedule '{schedule}'; expected constant or cosine"));
            }
            let layout = data::layout(&dataset, None).map_err(|e| e.to_string())?;
            let dir = match data {
                Some(d) => d,
                None if dataset == "mnist5k" => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/data"),
                None => std::env::var_os("CONVLENS_DATA_DIR")
                    .map(PathBuf::from)
                    .ok_or("no data directory: pass --data or set CONVLENS_DATA_DIR")?,
            };
            let (train_set, test_set) = layout
                .load(|f| {
                    std::fs::read(dir.join(f))
                        .map_err(|e| convlens_core::Error::Data(format!("cannot read {}: {e}", dir.join(f).display())))
                })
                .map_err(|e| e.to_string())?;
            let net = load_with(&model, false).await?;
            train_set.check_input(net.spec.input_shape()).map_err(|e| e.to_string())?;
            let s = session(net, &model)?;
            let s = if burn { s.without_fused_path() } else { s };
            let e = |e: convlens_core::Error| e.to_string();
            let given = settings_of(
                "trainer",
                vec![
                    ("method", trainer.map(Into::into)),
                    ("batchSize", batch.map(Into::into)),
                    ("learningRate", lr.map(Into::into)),
                    ("momentum", momentum.map(Into::into)),
                    ("l1", l1.map(Into::into)),
                    ("l2", l2.map(Into::into)),
                    ("seed", Some(model.seed().into())),
                ],
                &set,
            )?;
            let config = s.set_trainer(&given).map_err(e)?;
            let (n_train, n_test) = (train_set.len(), test_set.len());
            s.set_data(&dataset, train_set, test_set);
            let net = s.net().map_err(e)?;
            let batch = config.batch_size;
            let steps = (epochs * n_train as f64 / batch as f64).ceil() as usize;
            println!(
                "training {} on {} ({n_train} train, {n_test} test images) for {steps} steps of {batch} ({})",
                net.spec.name,
                dataset,
                if s.fused_path(&net) { "fused CPU path" } else { "Burn autodiff" }
            );
            let t0 = std::time::Instant::now();
            let clock = || t0.elapsed().as_secs_f64() * 1e3;
            let mut avg = None::<f32>;
            let mut k0 = 0;
            while k0 < steps {
                let k = 50.min(steps - k0);
                if schedule == "cosine" {
                    // The rate moves once per chunk of 50 steps.
                    let rate = config.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * k0 as f64 / steps as f64).cos());
                    s.set_trainer(&serde_json::json!({ "learningRate": rate })).map_err(e)?;
                }
                let r = s.train_steps(k, &clock).await.map_err(e)?;
                for l in r.stats.losses {
                    avg = Some(avg.map_or(l, |a| 0.99 * a + 0.01 * l));
                }
                k0 += k;
                if k0 % 500 < k || k0 == steps {
                    println!(
                        "step {k0}/{steps}: loss {:.4} ({:.0} examples/s)",
                        avg.unwrap(),
                        (k0 * batch) as f64 / t0.elapsed().as_secs_f64()
                    );
                }
            }
            // The last step is judged too (a later chunk's first loss judges the others).
            s.check_last_step(&clock).await.map_err(e)?;
            let mut correct = 0;
            for start in (0..n_test).step_by(500) {
                let (probs, labels) = s.evaluate("test", start, 500).await.map_err(e)?;
                let k = net.spec.classes();
                correct += labels.iter().zip(probs.chunks(k)).filter(|&(&l, p)| l as usize == convlens_core::train::argmax(p)).count();
            }
            println!(
                "test accuracy: {:.2}% ({correct}/{n_test}) after {steps} steps in {:.1} s",
                100.0 * correct as f64 / n_test as f64,
                t0.elapsed().as_secs_f64()
            );
            std::fs::write(&out, s.export_weights().await.map_err(e)?).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Settings { technique } => print_schema(&technique),
        Command::Patches(a) => dataset::patches(a).await,
        Command::Tsne(a) => dataset::tsne(a).await,
        Command::Landscape(a) => dataset::landscape(a).await,
        Command::Visualize(a) => optimize::visualize(a).await,
        Command::Invert(a) => optimize::invert(a).await,
        Command::Dream(a) => optimize::dream(a).await,
        Command::Style(a) => optimize::style(a).await,
        Command::Adversarial(a) => optimize::adversarial(a).await,
        Command::Export { model, out } => {
            let net = load_with(&model, false).await?;
            let w = net.read_weights().await.map_err(|e| e.to_string())?;
            let bytes = weights::save(&net.spec, &w).map_err(|e| e.to_string())?;
            std::fs::write(&out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Attribute {
            model,
            image,
            method,
            target,
            out,
            display,
            noise,
            samples,
            noise_seed,
            baseline,
            steps,
            rule,
            layer,
            no_relu,
            set,
            settings,
            scale,
            repeat,
        } => {
            if settings {
                return print_schema("attribution");
            }
            let net = load(&model).await?;
            let input = load_image(&image, &net.spec)?;
            let s = session(net.clone(), &model)?;
            let objective = match target.as_str() {
                "predicted" => Objective::Class(predicted(&s, &input).await?),
                t => Objective::parse_in(t, &net.spec).map_err(|e| e.to_string())?,
            };
            // The flags, then --set, through the engine's schema (its defaults and ranges).
            let given = settings_of(
                "attribution",
                vec![
                    ("method", method.map(Into::into)),
                    ("noise", noise.map(Into::into)),
                    ("samples", samples.map(Into::into)),
                    ("seed", noise_seed.map(Into::into)),
                    ("baseline", baseline.map(Into::into)),
                    ("steps", steps.map(Into::into)),
                    ("rule", rule.map(Into::into)),
                    ("layer", layer.map(Into::into)),
                    ("relu", no_relu.then_some(false.into())),
                ],
                &set,
            )?;
            if repeat > 0 {
                let mut times = vec![];
                for _ in 0..repeat + 2 {
                    let t0 = std::time::Instant::now();
                    s.attribute(&input, &objective, &given, None).await.map_err(|e| e.to_string())?;
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                let method = s.attribute(&input, &objective, &given, None).await.map_err(|e| e.to_string())?.1.method;
                println!(
                    "{}: median {:.2} ms over {repeat} runs ({} backend)",
                    method.name(),
                    median(&mut times[2..].to_vec()),
                    model.backend
                );
            }
            let (a, settings) = s.attribute(&input, &objective, &given, None).await.map_err(|e| e.to_string())?;
            let method = settings.method;
            let [c, h, w] = a.shape;
            if out.extension().is_some_and(|e| e == "npy") {
                npy::write(&out, &a.shape, &a.map).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            } else {
                let display = display.unwrap_or_else(|| {
                    if method == Method::GradCam {
                        "overlay"
                    } else if method.display() == Display::Signed {
                        "signed"
                    } else {
                        "abs"
                    }
                    .to_string()
                });
                let img = match display.as_str() {
                    "abs" => grid::heatmap(&attribution::reduce(&a.map, a.shape, Display::Abs), h, w, ColorMap::Viridis, scale),
                    "signed" => grid::heatmap(&attribution::reduce(&a.map, a.shape, Display::Signed), h, w, ColorMap::Diverging, scale),
                    "overlay" => {
                        let plane = attribution::reduce(&a.map, a.shape, method.display());
                        let map = if method.display() == Display::Signed { ColorMap::Diverging } else { ColorMap::Viridis };
                        grid::overlay(&input, net.spec.input_shape()[0], &plane, h, w, map, scale)
                    }
                    d => return Err(format!("unknown display '{d}'; expected abs, signed or overlay")),
                };
                write_png(&out, &img)?;
            }
            let extra = a.delta.map(|d| format!(", completeness delta {d:.3e}")).unwrap_or_default();
            println!("{} of {} = {}{extra}; wrote {c}x{h}x{w} map to {}", method.name(), objective.describe(&net), a.value, out.display());
            Ok(())
        }
        Command::Occlude { model, image, class, logit, window, stride, fill, set, batch, out, scale, repeat } => {
            let net = load(&model).await?;
            let input = load_image(&image, &net.spec)?;
            let s = session(net.clone(), &model)?;
            let class = match class {
                Some(k) => k,
                None => predicted(&s, &input).await?,
            };
            let given = settings_of(
                "occlusion",
                vec![
                    ("window", window.map(Into::into)),
                    ("stride", stride.map(Into::into)),
                    ("fill", fill.map(Into::into)),
                    ("class", Some(class.into())),
                    ("logit", logit.then_some(true.into())),
                ],
                &set,
            )?;
            let t = std::time::Instant::now();
            let clock = move || t.elapsed().as_secs_f64() * 1e3;
            let mut times = vec![];
            let mut occ = None;
            for _ in 0..repeat.max(1) + if repeat > 0 { 2 } else { 0 } {
                let t0 = std::time::Instant::now();
                let inputs = Inputs { image: &input, ..Default::default() };
                let p =
                    s.run_job("occlusion", inputs, &given, Budget::Items(batch), &clock, &mut |_| {}).await.map_err(|e| e.to_string())?;
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                occ = Some(p);
            }
            let p = occ.expect("ran at least once");
            let occ = p.occlusion.as_ref().expect("an occlusion's progress");
            if repeat > 0 {
                println!(
                    "occlusion: {} positions, median {:.1} ms over {repeat} runs ({} backend)",
                    p.total,
                    median(&mut times[2..].to_vec()),
                    model.backend
                );
            }
            if out.extension().is_some_and(|e| e == "npy") {
                npy::write(&out, &[occ.ny, occ.nx], &occ.grid).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            } else {
                let [_, h, w] = net.spec.input_shape();
                let drop = occ.map.clone().expect("a finished occlusion has its map");
                write_png(&out, &grid::overlay(&input, net.spec.input_shape()[0], &drop, h, w, ColorMap::Diverging, scale))?;
            }
            let (worst, low) = occ.grid.iter().enumerate().fold((0, f32::INFINITY), |a, (i, &v)| if v < a.1 { (i, v) } else { a });
            let what = if logit || net.spec.softmax_index().is_none() { "score" } else { "probability" };
            println!(
                "class {class} {what}: {} unoccluded; lowest {low} with the patch at y={}, x={}; {}x{} positions; wrote {}",
                occ.base,
                (worst / occ.nx) * occ.stride,
                (worst % occ.nx) * occ.stride,
                occ.ny,
                occ.nx,
                out.display()
            );
            Ok(())
        }
        Command::Probe { model, image, target, out, scale, repeat, activations_only } => {
            let net = load(&model).await?;
            let objective = Objective::parse_in(&target, &net.spec).map_err(|e| e.to_string())?;
            let input = load_image(&image, &net.spec)?;
            // The page's path: the fused CPU path when it applies, else Burn.
            let s = session(net.clone(), &model)?;
            if repeat > 0 {
                let mut times = vec![];
                for _ in 0..repeat + 2 {
                    let t0 = std::time::Instant::now();
                    s.probe(&input, &objective).await.map_err(|e| e.to_string())?;
                    times.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                let mut t = times[2..].to_vec();
                t.sort_by(f64::total_cmp);
                println!("probe: median {:.2} ms over {repeat} runs ({} backend)", t[t.len() / 2], model.backend);
            }
            let p = s.probe(&input, &objective).await.map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            let mut summary = vec![];
            for (l, lp) in net.spec.layers.iter().zip(&p.layers) {
                let stem = format!("{}_{}", l.index, l.name);
                let io = |e: std::io::Error| format!("cannot write into {}: {e}", out.display());
                npy::write(&out.join(format!("{stem}_act.npy")), &lp.act.shape, &lp.act.data).map_err(io)?;
                summary.push(serde_json::json!({
                    "index": l.index, "name": l.name, "shape": l.out_shape,
                    "act": [lp.act.min, lp.act.max], "grad": [lp.grad.min, lp.grad.max],
                }));
                if activations_only {
                    continue;
                }
                npy::write(&out.join(format!("{stem}_grad.npy")), &lp.grad.shape, &lp.grad.data).map_err(io)?;
                let cols = (l.out_shape[0] as f64).sqrt().ceil() as usize;
                write_png(&out.join(format!("{stem}_act.png")), &grid::tile(&lp.act.data, l.out_shape, cols, scale, 1, ColorMap::Gray))?;
                write_png(
                    &out.join(format!("{stem}_grad.png")),
                    &grid::tile(&lp.grad.data, l.out_shape, cols, scale, 1, ColorMap::Diverging),
                )?;
                for w in &lp.weights {
                    npy::write(&out.join(format!("{}.npy", w.name)), &w.value.shape, &w.value.data).map_err(io)?;
                    npy::write(&out.join(format!("{}.grad.npy", w.name)), &w.grad.shape, &w.grad.data).map_err(io)?;
                    if w.value.shape.len() == 4 {
                        let s = &w.value.shape;
                        let shape = as3(s);
                        write_png(
                            &out.join(format!("{}.png", w.name)),
                            &grid::tile(&w.value.data, shape, s[1], scale * 2, 1, ColorMap::Gray),
                        )?;
                    }
                }
            }
            let meta = serde_json::json!({
                "objective": objective.describe(&net), "value": p.objective, "probs": p.probs, "layers": summary,
                "spec": net.spec.json,
            });
            std::fs::write(out.join("probe.json"), serde_json::to_string_pretty(&meta).unwrap())
                .map_err(|e| format!("cannot write probe.json: {e}"))?;
            println!("{} = {}; wrote {} layers to {}", objective.describe(&net), p.objective, p.layers.len(), out.display());
            Ok(())
        }
    }
}
