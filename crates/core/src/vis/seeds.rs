//! The seeds experiment (Choromanska, Henaff, Mathieu, Ben Arous & LeCun 2015, "The loss surfaces
//! of multilayer networks", fig. 2): train the same architecture from several random seeds at
//! several widths, and compare the spread of the final test losses. Small nets land in minima of
//! widely different quality; as the nets grow, the minima the seeds reach crowd into a narrow band
//! of good losses — the spread shrinks with the width.
//!
//! A width multiplies every hidden conv layer's filters and every hidden fc layer's units (the
//! score layer keeps one output per class; at least one each). Each (width, seed) net starts from
//! `Net::init` with that seed, trains `steps` minibatches of the trainer's defaults (that seed's
//! data order too) on the training split, and is measured on the same test images as every other.
//! Nets are trained seed by seed across the widths, so the picture fills in evenly. A net whose
//! loss or weights stop being finite is marked diverged and the next one starts.

use std::rc::Rc;

use serde_json::{Map, Value};

use crate::Error;
use crate::cpu_train::{self, CpuTrainer};
use crate::data::{Dataset, Sampler};
use crate::layers::LayerKind;
use crate::net::Net;
use crate::settings::Resolved;
use crate::spec::NetSpec;
use crate::train::{self, Optimizer, TrainConfig};
use crate::vis::landscape;

/// Minibatches trained per call of [`Seeds::run`].
const CHUNK: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Width multipliers, ascending.
    pub widths: Vec<f64>,
    pub seeds: usize,
    /// Training steps (minibatches) per net.
    pub steps: usize,
    pub learning_rate: f64,
    /// Test images each final loss is measured on.
    pub images: usize,
    pub split: String,
}

impl Settings {
    /// From the landscape schema's values (`widths`, `seeds`, `steps`, `learningRate`, `images`,
    /// `split`).
    pub fn from_values(v: &Map<String, Value>) -> Result<Settings, Error> {
        let text = v.text("widths");
        let mut widths = vec![];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let w: f64 = part.parse().map_err(|_| Error::Input(format!("seeds: the width '{part}' is not a number")))?;
            if !(0.05..=8.0).contains(&w) {
                return Err(Error::Input(format!("seeds: the width {w} is out of range; widths multiply the layers' sizes by 0.05 to 8")));
            }
            widths.push(w);
        }
        if widths.is_empty() || widths.len() > 8 {
            return Err(Error::Input(format!("seeds: give 1 to 8 widths separated by commas (e.g. 0.25, 0.5, 1, 2), got '{text}'")));
        }
        widths.sort_by(f64::total_cmp);
        widths.dedup();
        Ok(Settings {
            widths,
            seeds: v.int("seeds"),
            steps: v.int("steps"),
            learning_rate: v.num("learningRate"),
            images: match v.int("images") {
                0 => 1000,
                n => n,
            },
            split: v.text("split").to_string(),
        })
    }
}

/// `spec` with every hidden conv layer's filters and fc layer's units multiplied by `width`
/// (rounded, at least 1); the score layer and everything else as it was. Grouped convolutions
/// are refused (their groups would no longer divide the channels).
pub fn widen(spec: &NetSpec, width: f64) -> Result<NetSpec, Error> {
    let mut json = spec.json.clone();
    let layers = json["layers"].as_array_mut().ok_or_else(|| Error::Input("the spec has no layers".into()))?;
    let score = spec.score_layer();
    for (l, j) in spec.layers.iter().zip(layers.iter_mut()) {
        let key = match &l.kind {
            LayerKind::Conv(c) if c.groups > 1 => {
                return Err(Error::Input(format!(
                    "seeds: layer {} ({}) is a grouped convolution, which a width multiplier would break; the experiment takes nets of plain conv and fc layers",
                    l.index, l.name
                )));
            }
            _ if l.index == score => continue,
            LayerKind::Conv(_) => "filters",
            LayerKind::Fc(_) => ["units", "num_neurons"].into_iter().find(|k| j.get(k).is_some()).unwrap_or("units"),
            _ => continue,
        };
        let n = l.out_shape[0];
        j[key] = ((n as f64 * width).round().max(1.0) as u64).into();
    }
    NetSpec::from_value(&json).map_err(|e| Error::Input(format!("seeds: the net at width {width}: {e}")))
}

/// One net being trained: on the fused CPU path, or through Burn.
// One per session or job, moved a few times per chunk: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Trainer {
    Fused(CpuTrainer),
    Burn(Optimizer),
}

struct Current {
    cell: usize,
    net: Net,
    trainer: Trainer,
    sampler: Sampler,
    step: usize,
    /// The training losses of the last chunk.
    recent: Vec<f32>,
}

/// What became of one (width, seed) net.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Done,
    Diverged,
}

/// The experiment, in progress or done. Cells are `[width][seed]`, row-major.
pub struct Seeds {
    pub settings: Settings,
    pub specs: Vec<NetSpec>,
    /// Parameters per width.
    pub params: Vec<usize>,
    /// Final test loss and accuracy, and the mean training loss of the last chunk, per cell (NaN
    /// until done).
    pub loss: Vec<f32>,
    pub accuracy: Vec<f32>,
    pub train_loss: Vec<f32>,
    pub outcome: Vec<Outcome>,
    /// Cells finished, in training order (seed by seed across the widths).
    pub finished: usize,
    current: Option<Current>,
    train: Rc<Dataset>,
    test_images: Vec<f32>,
    test_labels: Vec<usize>,
    fused: bool,
    device: burn::tensor::Device,
}

impl Seeds {
    /// `fused_allowed`: the fused CPU path may run (the session's backend is the CPU); each
    /// width's net takes it where [`cpu_train::supported`] says it can.
    pub fn new(net: &Net, train: Rc<Dataset>, test: &Dataset, settings: Settings, fused_allowed: bool) -> Result<Seeds, Error> {
        let spec = &net.spec;
        train.check_input(spec.input_shape())?;
        test.check_input(spec.input_shape())?;
        if train.is_empty() {
            return Err(Error::Input("seeds: the training split has no images".into()));
        }
        let classes = spec.classes();
        if let Some(&bad) = train.labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::Input(format!("seeds: the dataset has class {bad} but the network has {classes} classes")));
        }
        let n = settings.images.min(test.len());
        if n == 0 {
            return Err(Error::Input(format!("seeds: the {} split has no images", settings.split)));
        }
        let idx: Vec<usize> = (0..n).collect();
        let (test_images, test_labels) = test.batch(&idx, spec.input_shape(), None);
        if let Some(&bad) = test_labels.iter().find(|&&l| l >= classes) {
            return Err(Error::Input(format!("seeds: a label ({bad}) is not one of the network's {classes} classes")));
        }
        // Each widened spec is checked against this build's limits as it is read.
        let specs = settings.widths.iter().map(|&w| widen(spec, w)).collect::<Result<Vec<_>, _>>()?;
        let cells = specs.len() * settings.seeds;
        Ok(Seeds {
            params: specs.iter().map(NetSpec::param_count).collect(),
            specs,
            loss: vec![f32::NAN; cells],
            accuracy: vec![f32::NAN; cells],
            train_loss: vec![f32::NAN; cells],
            outcome: vec![Outcome::Pending; cells],
            finished: 0,
            current: None,
            train,
            test_images,
            test_labels,
            fused: fused_allowed,
            device: net.device.clone(),
            settings,
        })
    }

    /// Test images each net is measured on.
    pub fn test_count(&self) -> usize {
        self.test_labels.len()
    }

    pub fn cells(&self) -> usize {
        self.outcome.len()
    }

    pub fn done(&self) -> bool {
        self.finished >= self.cells()
    }

    /// Training steps taken in all, of [`Seeds::total_steps`].
    pub fn steps_done(&self) -> usize {
        self.finished * self.settings.steps + self.current.as_ref().map_or(0, |c| c.step)
    }

    pub fn total_steps(&self) -> usize {
        self.cells() * self.settings.steps
    }

    /// The cell trained `k`-th: seed by seed, across the widths.
    fn cell_of(&self, k: usize) -> usize {
        let widths = self.specs.len();
        (k % widths) * self.settings.seeds + k / widths
    }

    /// The seed of cell `cell` (seeds 1, 2, ...).
    pub fn seed_of(&self, cell: usize) -> u64 {
        (cell % self.settings.seeds) as u64 + 1
    }

    fn config(&self, seed: u64) -> TrainConfig {
        TrainConfig { learning_rate: self.settings.learning_rate, seed, ..TrainConfig::default() }
    }

    /// Trains the current net a chunk (starting the next one first if none is running), and
    /// measures it when its steps are done. `clock` gives milliseconds.
    pub async fn run(&mut self, clock: &dyn Fn() -> f64) -> Result<(), Error> {
        if self.done() {
            return Ok(());
        }
        if self.current.is_none() {
            let cell = self.cell_of(self.finished);
            let seed = self.seed_of(cell);
            let spec = self.specs[cell / self.settings.seeds].clone();
            let config = self.config(seed);
            let cpu_fused = self.fused && cpu_train::supported(&spec);
            let net = Net::init(spec, seed, &self.device);
            let trainer = if cpu_fused {
                Trainer::Fused(CpuTrainer::new(&net, net.read_weights().await?, config))
            } else {
                Trainer::Burn(Optimizer::new(&net, config))
            };
            let sampler = Sampler::new(self.train.len(), seed);
            self.current = Some(Current { cell, net, trainer, sampler, step: 0, recent: vec![] });
        }
        let (cell, step) = self.current.as_ref().map(|c| (c.cell, c.step)).expect("started above");
        // The learning rate falls linearly to 0 over the steps (constant within a chunk), so that
        // each net ends in its minimum rather than wherever its last minibatches threw it.
        let config = TrainConfig {
            learning_rate: self.settings.learning_rate * (1.0 - step as f64 / self.settings.steps as f64),
            ..self.config(self.seed_of(cell))
        };
        let c = self.current.as_mut().expect("started above");
        let input = c.net.spec.input_shape();
        let batch = TrainConfig::default().batch_size;
        let k = CHUNK.min(self.settings.steps - c.step);
        let batches: Vec<_> = (0..k)
            .map(|_| {
                let idx = c.sampler.next(batch);
                self.train.batch(&idx, input, Some(&mut c.sampler.rng))
            })
            .collect();
        let stats = if k == 0 {
            None
        } else {
            Some(match &mut c.trainer {
                Trainer::Fused(f) => {
                    f.set_config(config);
                    f.train_chunk(&batches, clock)?.0
                }
                Trainer::Burn(opt) => {
                    opt.set_config(config);
                    train::train_chunk(&mut c.net, opt, &batches, clock).await?.0
                }
            })
        };
        c.step += k;
        if let Some(s) = &stats {
            c.recent = s.losses.clone();
            if !s.weights_finite || s.losses.iter().any(|l| !l.is_finite()) {
                let cell = c.cell;
                self.outcome[cell] = Outcome::Diverged;
                self.current = None;
                self.finished += 1;
                return Ok(());
            }
        }
        if c.step < self.settings.steps {
            return Ok(());
        }
        let c = self.current.take().expect("running");
        let (loss, acc) = match c.trainer {
            Trainer::Fused(mut f) => {
                let w = f.weights.clone();
                landscape::evaluate(&c.net, w, &self.test_images, &self.test_labels, Some(&mut f)).await?
            }
            Trainer::Burn(_) => {
                let w = c.net.read_weights().await?;
                landscape::evaluate(&c.net, w, &self.test_images, &self.test_labels, None).await?
            }
        };
        let cell = c.cell;
        self.loss[cell] = loss as f32;
        self.accuracy[cell] = acc as f32;
        self.train_loss[cell] = (c.recent.iter().map(|&v| v as f64).sum::<f64>() / c.recent.len().max(1) as f64) as f32;
        self.outcome[cell] = if loss.is_finite() { Outcome::Done } else { Outcome::Diverged };
        self.finished += 1;
        Ok(())
    }

    /// Per width: the finished nets' test losses' mean, standard deviation (population), min and
    /// max (NaN where none finished).
    pub fn spread(&self) -> Vec<[f64; 4]> {
        (0..self.specs.len())
            .map(|w| {
                let s = self.settings.seeds;
                let v: Vec<f64> =
                    (0..s).filter(|&i| self.outcome[w * s + i] == Outcome::Done).map(|i| self.loss[w * s + i] as f64).collect();
                if v.is_empty() {
                    return [f64::NAN; 4];
                }
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let sd = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64).sqrt();
                [mean, sd, v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max)]
            })
            .collect()
    }
}
