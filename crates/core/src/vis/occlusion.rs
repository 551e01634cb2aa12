//! Occlusion (Zeiler & Fergus 2014): slide a patch over the image and record how one class's
//! probability changes with the patch's position. Hiding the object lowers it; hiding a
//! competing object can raise it. Positions follow Captum's `Occlusion` (the last window may be
//! clipped at the image's edge), and [`Occlusion::attribution`] is Captum's per-pixel map: the
//! drop in the target averaged over every window that covers the pixel.
//!
//! The work is split into chunks ([`Occlusion::run`]) so that a front end can show progress
//! and cancel.

use crate::Error;
use crate::cpu_occlude::{IncrementalForward, Rect};
use crate::cpu_train::softmax_in_place;
use crate::settings::{Field, Resolved, Schema};
use crate::vis::attribution::Attributor;
use serde_json::{Map, Value};

/// What the patch is filled with.
#[derive(Debug, Clone, PartialEq)]
pub enum Fill {
    /// One value in the net's input space (0 black, 0.5 gray, 1 white for [0, 1] images).
    Constant(f32),
    /// One value per channel (a dataset's mean colour).
    PerChannel(Vec<f32>),
    /// The image blurred with a Gaussian of this standard deviation in pixels.
    Blur(f32),
}

impl Fill {
    /// `gray`, `black`, `white`, `blur` (sigma = half the window), `mean:R,G,B`, or a number.
    pub fn parse(s: &str, window: usize) -> Result<Fill, Error> {
        let bad = || Error::Input(format!("unknown fill '{s}'; expected gray, black, white, blur, mean:V[,V,V] or a number"));
        Ok(match s {
            "gray" | "grey" => Fill::Constant(0.5),
            "black" => Fill::Constant(0.0),
            "white" => Fill::Constant(1.0),
            "blur" | "blurred" => Fill::Blur((window as f32 / 2.0).max(1.0)),
            _ => match s.strip_prefix("mean:") {
                Some(list) => Fill::PerChannel(list.split(',').map(|v| v.trim().parse().map_err(|_| bad())).collect::<Result<_, _>>()?),
                None => Fill::Constant(s.parse().map_err(|_| bad())?),
            },
        })
    }

    /// The image the patch copies its pixels from.
    pub fn baseline(&self, image: &[f32], [c, h, w]: [usize; 3]) -> Result<Vec<f32>, Error> {
        let p = h * w;
        Ok(match self {
            Fill::Constant(v) => vec![*v; image.len()],
            Fill::PerChannel(m) if m.len() == c => (0..c).flat_map(|ch| std::iter::repeat_n(m[ch], p)).collect(),
            Fill::PerChannel(m) if m.len() == 1 => vec![m[0]; image.len()],
            Fill::PerChannel(m) => {
                return Err(Error::Input(format!("the fill has {} channel values; the image has {c} channels", m.len())));
            }
            Fill::Blur(sigma) => image.chunks(p).flat_map(|plane| gaussian_blur(plane, h, w, *sigma)).collect(),
        })
    }
}

/// A separable Gaussian blur of one plane, edges replicated.
pub fn gaussian_blur(plane: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 {
        return plane.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    let clamp = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut tmp = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = k.iter().enumerate().map(|(j, kv)| kv * plane[y * w + clamp(x as isize + j as isize - r, w)]).sum();
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = k.iter().enumerate().map(|(j, kv)| kv * tmp[clamp(y as isize + j as isize - r, h) * w + x]).sum();
        }
    }
    out
}

/// The occlusion settings (Zeiler & Fergus): keys, defaults and ranges, written once.
pub fn schema() -> Schema {
    Schema::new(
        "occlusion",
        vec![
            Field::integer("window", "window", 8, 1, 512).unit("px").help("The occluding square's side"),
            Field::integer("stride", "stride", 2, 1, 512).unit("px"),
            Field::text("fill", "fill", "gray").help("gray, black, white, blur, mean:R,G,B (the dataset's mean colour) or a number"),
            Field::integer("class", "class", 0, 0, 1 << 20).help("The class whose probability is tracked"),
            Field::boolean("logit", "track the score", false).help("The class's score (the logit, before the softmax) instead"),
        ],
    )
}

impl Settings {
    /// The settings from values [`schema`]'s `resolve` returned.
    pub fn from_values(v: &Map<String, Value>) -> Result<Settings, Error> {
        let window = v.int("window");
        Ok(Settings {
            window,
            stride: v.int("stride"),
            fill: Fill::parse(v.text("fill"), window)?,
            class: v.int("class"),
            logit: v.flag("logit"),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub window: usize,
    pub stride: usize,
    pub fill: Fill,
    /// The class whose probability (or score, for a net without a softmax) is tracked.
    pub class: usize,
    /// Track the class's score (the logit, before the softmax) instead.
    pub logit: bool,
}

/// An occlusion in progress, or done.
#[derive(Debug, Clone)]
pub struct Occlusion {
    image: Vec<f32>,
    baseline: Vec<f32>,
    shape: [usize; 3],
    pub settings: Settings,
    /// Window positions per axis.
    pub ny: usize,
    pub nx: usize,
    /// The tracked class's output without a patch.
    pub base: f32,
    /// The tracked class's output with the patch at each position of `range`, row-major; filled
    /// as chunks run.
    pub grid: Vec<f32>,
    /// The positions this job evaluates: all, or one part's (a worker of a pool: [`Occlusion::new`]).
    pub range: std::ops::Range<usize>,
    /// Started as a part of several (until merged): its state says which positions it has.
    pub split: bool,
    /// On the fused CPU path: the unoccluded image's activations, for incremental passes.
    fast: Option<IncrementalForward>,
}

/// The layer whose output is tracked: the last (probabilities, after a softmax), or the scores.
fn tracked_layer(at: &Attributor, s: &Settings) -> usize {
    if s.logit { at.net.spec.score_layer() } else { at.net.spec.layers.len() - 1 }
}

/// Windows per axis, as Captum counts them: `ceil((n - window) / stride) + 1`.
fn positions(n: usize, window: usize, stride: usize) -> usize {
    (n - window).div_ceil(stride) + 1
}

impl Occlusion {
    /// Checks the settings and measures the unoccluded image. `part` (k, n): this job evaluates
    /// the k-th of n runs of consecutive positions (each position is evaluated alone, so the parts
    /// are bit for bit what one job computes); [`Occlusion::merge`] puts them together.
    pub async fn new(at: &mut Attributor<'_>, image: &[f32], settings: Settings, part: (usize, usize)) -> Result<Occlusion, Error> {
        let (pk, pn) = part;
        if pn == 0 || pk >= pn {
            return Err(Error::Input(format!("part {pk} of {pn}: parts are numbered 0 to n - 1")));
        }
        let shape = at.net.spec.input_shape();
        let [_, h, w] = shape;
        let classes = at.net.spec.classes();
        if image.len() != shape.iter().product::<usize>() {
            at.net.input_tensor(image)?;
        }
        if settings.window == 0 || settings.window > h.min(w) {
            return Err(Error::Input(format!("the patch must be 1 to {} pixels wide, not {}", h.min(w), settings.window)));
        }
        if settings.stride == 0 {
            return Err(Error::Input("the stride must be at least 1".into()));
        }
        if settings.class >= classes {
            return Err(Error::Objective(format!(
                "class {} does not exist; the network has {classes} classes (0..{})",
                settings.class,
                classes - 1
            )));
        }
        let baseline = settings.fill.baseline(image, shape)?;
        let out = at.outputs_of(image, 1, tracked_layer(at, &settings)).await?;
        let (ny, nx) = (positions(h, settings.window, settings.stride), positions(w, settings.window, settings.stride));
        let range = ny * nx * pk / pn..ny * nx * (pk + 1) / pn;
        Ok(Occlusion {
            range,
            split: pn > 1,
            image: image.to_vec(),
            baseline,
            shape,
            base: out[settings.class],
            ny,
            nx,
            grid: Vec::with_capacity(ny * nx),
            settings,
            fast: None,
        })
    }

    /// Positions this job evaluates (all of them, unless it is a part).
    pub fn total(&self) -> usize {
        self.range.len()
    }

    pub fn done(&self) -> usize {
        self.grid.len()
    }

    /// Whether this job covers every position (not a part, or the parts merged).
    pub fn whole(&self) -> bool {
        !self.split
    }

    /// Every position's value, from the parts in order (part 0's job takes them): the job is then
    /// whole and done, and its map is the one a single job makes.
    pub fn merge(&mut self, grid: Vec<f32>) -> Result<(), Error> {
        let n = self.ny * self.nx;
        if grid.len() != n {
            return Err(Error::Input(format!("{} values are not the {n} positions of this occlusion", grid.len())));
        }
        self.range = 0..n;
        self.split = false;
        self.grid = grid;
        Ok(())
    }

    /// The window at position `i` (row-major): rows and columns, clipped at the edge.
    fn window(&self, i: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let [_, h, w] = self.shape;
        let (s, k) = (self.settings.stride, self.settings.window);
        let (y, x) = ((i / self.nx) * s, (i % self.nx) * s);
        (y..(y + k).min(h), x..(x + k).min(w))
    }

    /// Evaluates up to `max` more positions in one batch; true when all are done.
    pub async fn run(&mut self, at: &mut Attributor<'_>, max: usize) -> Result<bool, Error> {
        let [c, h, w] = self.shape;
        let size = c * h * w;
        let start = self.range.start + self.done();
        let n = max.max(1).min(self.total() - self.done());
        if n == 0 {
            return Ok(true);
        }
        if let Some(fused) = at.fused.as_deref_mut() {
            // Incremental passes: only what each patch changes is recomputed.
            let spec = &at.net.spec;
            let mut fast = match self.fast.take() {
                Some(f) => f,
                None => IncrementalForward::new(spec, fused.layer_outputs(&self.image)),
            };
            let softmax = spec.softmax_index().is_some() && !self.settings.logit;
            for i in start..start + n {
                let (rows, cols) = self.window(i);
                let mut scores =
                    fast.scores(&fused.weights, &self.baseline, Rect { y0: rows.start, y1: rows.end, x0: cols.start, x1: cols.end });
                if softmax {
                    softmax_in_place(&mut scores);
                }
                self.grid.push(scores[self.settings.class]);
            }
            self.fast = Some(fast);
            return Ok(self.done() == self.total());
        }
        let mut batch = Vec::with_capacity(n * size);
        for i in start..start + n {
            let (rows, cols) = self.window(i);
            let at0 = batch.len();
            batch.extend_from_slice(&self.image);
            for ch in 0..c {
                for y in rows.clone() {
                    let o = ch * h * w + y * w;
                    batch[at0 + o + cols.start..at0 + o + cols.end].copy_from_slice(&self.baseline[o + cols.start..o + cols.end]);
                }
            }
        }
        let out = at.outputs_of(&batch, n, tracked_layer(at, &self.settings)).await?;
        let k = out.len() / n;
        self.grid.extend((0..n).map(|b| out[b * k + self.settings.class]));
        Ok(self.done() == self.total())
    }

    /// Captum's per-pixel map `[H, W]`: base minus occluded output, averaged over the windows
    /// covering each pixel (the same for every channel).
    pub fn attribution(&self) -> Vec<f32> {
        let [_, h, w] = self.shape;
        let mut sum = vec![0f64; h * w];
        let mut count = vec![0u32; h * w];
        for (i, &v) in self.range.clone().zip(&self.grid) {
            let (rows, cols) = self.window(i);
            for y in rows {
                for x in cols.clone() {
                    sum[y * w + x] += (self.base - v) as f64;
                    count[y * w + x] += 1;
                }
            }
        }
        sum.iter().zip(&count).map(|(s, &n)| if n > 0 { (s / n as f64) as f32 } else { 0.0 }).collect()
    }
}
