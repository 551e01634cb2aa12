//! The dataset views on the command line: maximally activating patches, a t-SNE map of a layer's
//! codes and the loss surface, each as .npy numbers and a PNG picture, through the same session
//! jobs as the page.

use std::path::{Path, PathBuf};

use convlens_core::data::{self, Dataset};
use convlens_core::jobs::{Budget, DatasetProgress, Inputs, Progress, SeedsProgress};
use convlens_core::session::Session;
use convlens_core::vis::grid;
use convlens_core::{Net, NetSpec};
use serde_json::Value;

use crate::optimize::SetArgs;
use crate::{ModelArgs, Result, load_with, npy, session, settings_of, write_png};

/// Where the images come from.
#[derive(clap::Args)]
pub struct DataArgs {
    /// mnist (60,000 train + 3,000 test digits), cifar10 (4,000 + 1,000), mnist5k (the built-in
    /// 4,500 + 500), or a folder of images (PNG/JPEG/BMP, centre-cropped square and resized to the
    /// network's input; both splits are the folder's images, in name order, label 0).
    #[arg(long, default_value = "mnist")]
    pub dataset: String,
    /// Data directory with mnist/ and cifar10/ (default: $CONVLENS_DATA_DIR; www/data for mnist5k).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct PatchesArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// The layer, by name or number [default: the last conv layer].
    #[arg(long)]
    pub layer: Option<String>,
    /// train or test [default: train].
    #[arg(long)]
    pub split: Option<String>,
    /// How many images to search, from the start of the split [default: all].
    #[arg(long)]
    pub images: Option<u64>,
    /// Patches per channel [default: 9].
    #[arg(long)]
    pub top: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
    /// Output directory: values.npy [C, top], images.npy [C, top] (indices in the split),
    /// units.npy [C, top, 2] (y, x of the peak), patches.npy [C, top, D, h, w], patches.png.
    #[arg(long)]
    pub out: PathBuf,
    /// Pixels per input pixel in the PNG.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
}

#[derive(clap::Args)]
pub struct TsneArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// The layer whose codes are mapped (0 or input: the pixels) [default: the last conv layer].
    #[arg(long)]
    pub layer: Option<String>,
    /// How many images (from the start of the test split) [default: 2000].
    #[arg(long)]
    pub points: Option<u64>,
    /// [default: 30]
    #[arg(long)]
    pub perplexity: Option<f64>,
    /// [default: 1000]
    #[arg(long)]
    pub iterations: Option<u64>,
    /// auto, exact or barnes_hut [default: auto: exact up to 2,000 points].
    #[arg(long)]
    pub method: Option<String>,
    #[command(flatten)]
    pub set: SetArgs,
    /// Output directory: embedding.npy [n, 2], labels.npy [n], kl.npy [m, 2] (iteration, KL),
    /// tsne.png.
    #[arg(long)]
    pub out: PathBuf,
    /// The PNG's side in pixels.
    #[arg(long, default_value_t = 800)]
    pub size: usize,
}

#[derive(clap::Args)]
pub struct LandscapeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// line (from the initial weights to the trained ones), plane (two random filter-normalized
    /// directions) or seeds (nets trained from several seeds at several widths: --set widths=0.25,0.5,1,2
    /// --set seeds=5 --set steps=500) [default: plane].
    #[arg(long)]
    pub kind: Option<String>,
    /// Test images the loss is measured on [default: 1,000 for the line, 256 for the plane].
    #[arg(long)]
    pub images: Option<u64>,
    /// Points along the line, or per side of the plane [default: 81 for the line (α = 0 and 1 on it), 51 for the plane].
    #[arg(long)]
    pub points: Option<u64>,
    #[command(flatten)]
    pub set: SetArgs,
    /// Output directory: line.npy [points, 3] (α, loss, accuracy) and line.png; or loss.npy and
    /// accuracy.npy [points, points] (rows: the second direction), axis.npy, plane.png; or (seeds)
    /// widths.npy [widths, 2] (width, parameters), seeds_loss.npy, seeds_accuracy.npy and
    /// seeds_train_loss.npy [widths, seeds], spread.npy [widths, 4] (mean, sd, min, max of the
    /// test losses) and seeds.png (min, mean and max against log2 width).
    #[arg(long)]
    pub out: PathBuf,
    /// Pixels per grid point in the plane's PNG.
    #[arg(long, default_value_t = 8)]
    pub scale: usize,
}

/// A folder of images as a dataset at the network's input size.
fn folder(dir: &Path, spec: &NetSpec) -> Result<Dataset> {
    let [c, h, w] = spec.input_shape();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["png", "jpg", "jpeg", "bmp"].contains(&e.to_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("{} has no PNG, JPEG or BMP images", dir.display()));
    }
    if c != 1 && c != 3 {
        return Err(format!("images can feed 1- or 3-channel inputs; this network's input has {c}"));
    }
    let mut pixels = Vec::with_capacity(paths.len() * c * h * w);
    for p in &paths {
        // As a page reads a picked image (and `--image`): the centred box, scaled.
        pixels.extend(crate::optimize::load_fitted(crate::open_image(p)?, h, w, c));
    }
    let classes = spec.class_names.clone().unwrap_or_default();
    data::images([c, h, w], pixels, vec![], classes).map_err(|e| format!("{}: {e}", dir.display()))
}

/// The session with the model and the images loaded.
async fn open(model: &ModelArgs, d: &DataArgs) -> Result<(Session, Net)> {
    let net = load_with(model, true).await?;
    let (train, test) = if Path::new(&d.dataset).is_dir() {
        let set = folder(Path::new(&d.dataset), &net.spec)?;
        (set.clone(), set)
    } else {
        let layout = data::layout(&d.dataset, None).map_err(|e| e.to_string())?;
        let dir = match &d.data {
            Some(dir) => dir.clone(),
            None if d.dataset == "mnist5k" => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/data"),
            None => {
                std::env::var_os("CONVLENS_DATA_DIR").map(PathBuf::from).ok_or("no data directory: pass --data or set CONVLENS_DATA_DIR")?
            }
        };
        layout
            .load(|f| {
                std::fs::read(dir.join(f)).map_err(|e| convlens_core::Error::Data(format!("cannot read {}: {e}", dir.join(f).display())))
            })
            .map_err(|e| e.to_string())?
    };
    train.check_input(net.spec.input_shape()).map_err(|e| e.to_string())?;
    let s = session(net.clone(), model)?;
    s.set_data(&d.dataset, train, test);
    Ok((s, net))
}

/// Runs a job to its end, printing its progress about once a second.
async fn run(s: &Session, kind: &str, given: &Value, items: usize) -> Result<(Progress, f64)> {
    let t0 = std::time::Instant::now();
    let clock = move || t0.elapsed().as_secs_f64() * 1e3;
    let mut last = 0.0;
    let p = s
        .run_job(kind, Inputs::default(), given, Budget::Items(items), &clock, &mut |p| {
            let now = t0.elapsed().as_secs_f64();
            if now - last > 1.0 {
                last = now;
                eprintln!("{kind}: {} of {}", p.step, p.total);
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok((p, t0.elapsed().as_secs_f64()))
}

fn npy_write(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    npy::write(path, shape, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn out_dir(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))
}

pub async fn patches(a: PatchesArgs) -> Result<()> {
    let (s, net) = open(&a.model, &a.data).await?;
    let layer = a.layer.as_deref().map(|l| l.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(l)));
    let given = settings_of(
        "patches",
        vec![("layer", layer), ("split", a.split.map(Into::into)), ("images", a.images.map(Into::into)), ("top", a.top.map(Into::into))],
        &a.set.set,
    )?;
    let (p, secs) = run(&s, "patches", &given, 4).await?;
    let Some(DatasetProgress::Patches(pp)) = &p.dataset else { return Err("patches: no result".into()) };
    let (c, k) = (pp.shape[0], pp.top);
    out_dir(&a.out)?;
    npy_write(&a.out.join("values.npy"), &[c, k], &pp.values)?;
    npy_write(&a.out.join("images.npy"), &[c, k], &pp.images.iter().map(|&v| v as f32).collect::<Vec<_>>())?;
    let units: Vec<f32> = pp.ys.iter().zip(&pp.xs).flat_map(|(&y, &x)| [y as f32, x as f32]).collect();
    npy_write(&a.out.join("units.npy"), &[c, k, 2], &units)?;
    // The crops, through the session's job (the same code as the page's).
    let (crops, _) = s.patch_crops(&pp.split, pp.layer, &pp.images, &pp.ys, &pp.xs).map_err(|e| e.to_string())?;
    let [d, h, w] = pp.patch;
    npy_write(&a.out.join("patches.npy"), &[c, k, d, h, w], &crops)?;
    let rows: Vec<grid::Image> = (0..c)
        .map(|ch| {
            let tiles: Vec<grid::Image> =
                (0..k).map(|r| grid::picture(&crops[(ch * k + r) * d * h * w..(ch * k + r + 1) * d * h * w], [d, h, w], a.scale)).collect();
            grid::hstack(&tiles, 1)
        })
        .collect();
    write_png(&a.out.join("patches.png"), &grid::vstack(&rows, 4))?;
    let name = &net.spec.layers[pp.layer].name;
    println!(
        "patches: layer {} ({name}), {c} channels x top {k}, receptive field {h}x{w}, {} {} images searched in {secs:.2} s; wrote {}",
        pp.layer,
        p.total,
        pp.split,
        a.out.display()
    );
    Ok(())
}

pub async fn tsne(a: TsneArgs) -> Result<()> {
    let (s, net) = open(&a.model, &a.data).await?;
    let layer = a.layer.as_deref().map(|l| l.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::from(l)));
    let given = settings_of(
        "tsne",
        vec![
            ("layer", layer),
            ("points", a.points.map(Into::into)),
            ("perplexity", a.perplexity.map(Into::into)),
            ("iterations", a.iterations.map(Into::into)),
            ("method", a.method.map(Into::into)),
        ],
        &a.set.set,
    )?;
    let (p, secs) = run(&s, "tsne", &given, 256).await?;
    let Some(DatasetProgress::Tsne(tp)) = &p.dataset else { return Err("tsne: no result".into()) };
    out_dir(&a.out)?;
    npy_write(&a.out.join("embedding.npy"), &[tp.points, 2], &tp.embedding)?;
    npy_write(&a.out.join("labels.npy"), &[tp.points], &tp.labels.iter().map(|&l| l as f32).collect::<Vec<_>>())?;
    let kl: Vec<f32> = tp.kl.iter().flat_map(|&(i, v)| [i as f32, v as f32]).collect();
    npy_write(&a.out.join("kl.npy"), &[tp.kl.len(), 2], &kl)?;
    write_png(&a.out.join("tsne.png"), &grid::scatter(&tp.embedding, &tp.labels, a.size))?;
    println!(
        "tsne: layer {} ({}), {} points of {} values (PCA keeps {:.1}% of the variance), {} t-SNE, {} iterations, KL {:.4}, {secs:.2} s; wrote {}",
        tp.layer,
        net.spec.layers[tp.layer].name,
        tp.points,
        tp.dim,
        100.0 * tp.explained,
        tp.method,
        tp.iteration,
        tp.kl.last().map(|k| k.1).unwrap_or(f64::NAN),
        a.out.display()
    );
    Ok(())
}

pub async fn landscape(a: LandscapeArgs) -> Result<()> {
    let (s, _) = open(&a.model, &a.data).await?;
    let given = settings_of(
        "landscape",
        vec![
            ("kind", a.kind.map(Into::into)),
            ("images", a.images.map(Into::into)),
            ("points", a.points.map(Into::into)),
            ("initSeed", Some(a.model.seed.unwrap_or(7).into())),
        ],
        &a.set.set,
    )?;
    let (p, secs) = run(&s, "landscape", &given, 16).await?;
    out_dir(&a.out)?;
    if let Some(DatasetProgress::Seeds(sp)) = &p.dataset {
        return seeds(sp, &a.out, secs);
    }
    let Some(DatasetProgress::Landscape(lp)) = &p.dataset else { return Err("landscape: no result".into()) };
    let axis: Vec<f32> = lp.axis.iter().map(|&v| v as f32).collect();
    npy_write(&a.out.join("axis.npy"), &[axis.len()], &axis)?;
    if lp.slice == "line" {
        let rows: Vec<f32> = (0..axis.len()).flat_map(|i| [axis[i], lp.loss[i], lp.accuracy[i]]).collect();
        npy_write(&a.out.join("line.npy"), &[axis.len(), 3], &rows)?;
        let loss: Vec<f64> = lp.loss.iter().map(|&v| v as f64).collect();
        let acc: Vec<f64> = lp.accuracy.iter().map(|&v| v as f64).collect();
        write_png(&a.out.join("line.png"), &grid::plot(&[(&lp.axis, &loss), (&lp.axis, &acc)], 640, 320, true))?;
        let at = |alpha: f64| lp.axis.iter().position(|&x| (x - alpha).abs() < 1e-9);
        let show = |i: Option<usize>| i.map(|i| format!("{:.4} ({:.1}%)", lp.loss[i], 100.0 * lp.accuracy[i])).unwrap_or("-".into());
        println!(
            "landscape line: {} points over α ∈ [{}, {}] on {} images in {secs:.2} s; loss at α=0 {}, α=1 {}; wrote {}",
            axis.len(),
            lp.axis[0],
            lp.axis[axis.len() - 1],
            lp.images,
            show(at(0.0)),
            show(at(1.0)),
            a.out.display()
        );
    } else {
        let p = axis.len();
        npy_write(&a.out.join("loss.npy"), &[p, p], &lp.loss)?;
        npy_write(&a.out.join("accuracy.npy"), &[p, p], &lp.accuracy)?;
        // Log loss reads better: the basin is deep and the walls are steep.
        let log: Vec<f32> = lp.loss.iter().map(|v| v.max(1e-6).ln()).collect();
        let mut flipped = vec![0f32; p * p];
        for r in 0..p {
            flipped[(p - 1 - r) * p..(p - r) * p].copy_from_slice(&log[r * p..(r + 1) * p]);
        }
        write_png(&a.out.join("plane.png"), &grid::contours(&flipped, p, p, 12, a.scale))?;
        let centre = lp.loss[(p / 2) * p + p / 2];
        println!(
            "landscape plane: {p}x{p} points over [{}, {}]² on {} images in {secs:.2} s; loss at the centre {centre:.4}, lowest {:.4}, highest {:.4}; wrote {}",
            lp.axis[0],
            lp.axis[p - 1],
            lp.images,
            lp.loss.iter().copied().fold(f32::INFINITY, f32::min),
            lp.loss.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            a.out.display()
        );
    }
    Ok(())
}

/// The seeds experiment's files and summary.
fn seeds(sp: &SeedsProgress, out: &Path, secs: f64) -> Result<()> {
    let (w, k) = (sp.widths.len(), sp.seeds);
    let widths: Vec<f32> = sp.widths.iter().zip(&sp.params).flat_map(|(&x, &p)| [x as f32, p as f32]).collect();
    npy_write(&out.join("widths.npy"), &[w, 2], &widths)?;
    npy_write(&out.join("seeds_loss.npy"), &[w, k], &sp.loss)?;
    npy_write(&out.join("seeds_accuracy.npy"), &[w, k], &sp.accuracy)?;
    npy_write(&out.join("seeds_train_loss.npy"), &[w, k], &sp.train_loss)?;
    let spread: Vec<f32> = sp.spread.iter().flatten().map(|&v| v as f32).collect();
    npy_write(&out.join("spread.npy"), &[w, 4], &spread)?;
    // The lowest, mean and highest final test loss against log2 of the width: the band narrows.
    let x: Vec<f64> = sp.widths.iter().map(|v| v.log2()).collect();
    let col = |j: usize| sp.spread.iter().map(|s| s[j]).collect::<Vec<f64>>();
    let (lo, mean, hi) = (col(2), col(0), col(3));
    write_png(&out.join("seeds.png"), &grid::plot(&[(&x, &lo), (&x, &mean), (&x, &hi)], 640, 320, false))?;
    println!(
        "landscape seeds: {k} seeds x {w} widths, {} steps each, test loss on {} images, in {secs:.2} s; wrote {}",
        sp.steps,
        sp.images,
        out.display()
    );
    for (i, s) in sp.spread.iter().enumerate() {
        let diverged = (0..k).filter(|&j| sp.outcome[i * k + j] == "diverged").count();
        println!(
            "  width {:<5} {:>8} parameters: test loss {:.4} ± {:.4} (min {:.4}, max {:.4}){}",
            sp.widths[i],
            sp.params[i],
            s[0],
            s[1],
            s[2],
            s[3],
            if diverged > 0 { format!(", {diverged} diverged") } else { String::new() }
        );
    }
    Ok(())
}
