//! The image-optimizing techniques for the page: jobs (class visualization, feature inversion of
//! several layers, DeepDream, style transfer, an iterative attack or a fooling image), started by
//! `optimizeStart` and run by `optimizeStep(id, budget)` a time budget at a time, each chunk
//! resolving to the job's state with a preview. Jobs are addressed by id, so several views (tabs,
//! embedded views) run side by side; each keeps the network as it was when it started, so
//! training meanwhile does not change it. FGSM, the linear demo and MobileNetV2's op-list loader
//! are here too.

use convlens_core::vis::adversarial::{self, Attack};
use convlens_core::vis::attribution::Attributor;
use convlens_core::vis::class_vis::{self, ClassVis};
use convlens_core::vis::image_param::Parametrization;
use convlens_core::vis::{deepdream, inversion, linear, style};
use convlens_core::{Net, Objective};
use js_sys::{Array, Float32Array, Object, Promise, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{Engine, ObjectiveJs, js_err, now, set, shape_js};

/// A job in progress (one per running view: the size of its largest variant does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    Visualize(ClassVis),
    /// One inversion per layer, stepped in turn.
    Invert(Vec<inversion::Inversion>),
    Dream(deepdream::Dream),
    Style(style::Style),
    Attack(Attack),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VisualizeJs {
    preset: Option<String>,
    target: Option<ObjectiveJs>,
    param: Option<String>,
    steps: Option<usize>,
    lr: Option<f32>,
    jitter: Option<usize>,
    scale: Option<f32>,
    rotate: Option<f32>,
    l2: Option<f32>,
    blur_every: Option<usize>,
    blur_sigma: Option<f32>,
    norm_pct: Option<f32>,
    contrib_pct: Option<f32>,
    tv: Option<f32>,
    seed: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct InvertJs {
    layers: Vec<usize>,
    steps: Option<usize>,
    lr: Option<f32>,
    alpha: Option<f32>,
    alpha_weight: Option<f32>,
    beta: Option<f32>,
    tv_weight: Option<f32>,
    jitter: Option<usize>,
    seed: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DreamJs {
    width: usize,
    height: usize,
    layer: usize,
    channel: Option<usize>,
    octaves: Option<usize>,
    octave_scale: Option<f32>,
    steps: Option<usize>,
    /// On 0-255 pixels, as google/deepdream's 1.5.
    step: Option<f32>,
    jitter: Option<usize>,
    seed: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StyleJs {
    size: usize,
    style: Vec<f32>,
    content_layer: Option<usize>,
    style_layers: Option<Vec<usize>>,
    content_weight: Option<f32>,
    style_weight: Option<f32>,
    tv_weight: Option<f32>,
    optimizer: Option<String>,
    lr: Option<f32>,
    steps: Option<usize>,
    from_content: Option<bool>,
    seed: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AttackJs {
    target: usize,
    /// On 0-255 pixels.
    eps: Option<f32>,
    step: Option<f32>,
    steps: Option<usize>,
    seed: Option<f64>,
}

fn parse<T: for<'de> Deserialize<'de> + Default>(v: JsValue, what: &str) -> Result<T, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| js_err(format!("{what} settings: {e}")))
}

fn image_js(image: &[f32], shape: [usize; 3]) -> Object {
    let o = Object::new();
    set(&o, "data", Float32Array::from(image));
    set(&o, "shape", shape_js(&shape));
    o
}

/// The job's state: kind, step, total steps, done, its history (one array of values per step),
/// the images to preview (each {data, shape, label}).
fn state(job: &Job, net: &Net) -> Object {
    let o = Object::new();
    let shape = net.spec.input_shape();
    let images = Array::new();
    let history = Array::new();
    let push_hist = |vals: &[f32]| {
        history.push(&vals.iter().map(|&v| JsValue::from(v)).collect::<Array>());
    };
    let (kind, step, total) = match job {
        Job::Visualize(v) => {
            v.history.iter().for_each(|h| push_hist(&[*h]));
            images.push(&image_js(&v.current(), shape));
            ("visualize", v.history.len(), v.settings.steps)
        }
        Job::Invert(list) => {
            list[0].history.iter().enumerate().for_each(|(i, _)| {
                let row: Vec<f32> = list.iter().filter_map(|inv| inv.history.get(i).map(|h| h[1])).collect();
                push_hist(&row);
            });
            for inv in list {
                let im = image_js(&inv.current(), shape);
                set(&im, "layer", inv.settings.layer as u32);
                let h = inv.history.last().copied().unwrap_or_default();
                set(&im, "loss", h[1]);
                images.push(&im);
            }
            ("invert", list.iter().map(|i| i.history.len()).sum(), list.iter().map(|i| i.settings.steps).sum())
        }
        Job::Dream(d) => {
            d.history.iter().for_each(|h| push_hist(&[*h]));
            let (im, s) = d.current();
            images.push(&image_js(&im, s));
            ("dream", d.history.len(), d.settings.total_steps())
        }
        Job::Style(s) => {
            s.history.iter().for_each(|h| push_hist(h));
            images.push(&image_js(&s.current(), s.shape()));
            ("style", s.history.len(), s.settings.steps)
        }
        Job::Attack(a) => {
            a.history.iter().for_each(|h| push_hist(&[*h]));
            images.push(&image_js(&a.original, shape));
            images.push(&image_js(&a.x, shape));
            ("attack", a.history.len(), a.steps)
        }
    };
    set(&o, "kind", kind);
    set(&o, "step", step as u32);
    set(&o, "total", total as u32);
    set(&o, "done", step >= total);
    set(&o, "history", history);
    set(&o, "images", images);
    o
}

/// A job and the network it runs on (a snapshot taken when it started: tensors are shared
/// handles, so this costs nothing until training replaces the weights).
pub(crate) struct Slot {
    job: Job,
    net: Net,
}

/// At most this many jobs are kept; starting another drops the oldest.
const MAX_JOBS: usize = 16;

type SessionRc = std::rc::Rc<std::cell::RefCell<crate::Session>>;

/// Takes job `id` out of the session for a step (its entry stays, empty, so that a second step of
/// the same job meanwhile is refused and a cancel meanwhile is seen).
fn take(session: &SessionRc, id: u32) -> Result<Slot, JsValue> {
    let mut s = session.borrow_mut();
    match s.jobs.get_mut(&id) {
        None => Err(js_err(format!("there is no job {id} (finished and released, cancelled, or the network was replaced)"))),
        Some(slot) => slot.take().ok_or_else(|| js_err(format!("job {id} is already running a step"))),
    }
}

/// Returns a job taken out for a step, unless it was cancelled meanwhile.
fn put_back(session: &SessionRc, id: u32, slot: Slot) {
    if let Some(entry) = session.borrow_mut().jobs.get_mut(&id) {
        *entry = Some(slot);
    }
}

fn seed(s: Option<f64>) -> u64 {
    s.unwrap_or(1.0).max(0.0) as u64
}

#[wasm_bindgen]
impl Engine {
    /// Starts an optimization job on the current network: `kind` is visualize, invert, dream,
    /// style, attack or fooling; `input` the image it needs (empty for visualize and fooling; the
    /// content image for style); `settings` as in docs/ENGINE_API.md. Resolves to the job's state,
    /// with its `id`; run it with `optimizeStep(id, budgetMs)`, drop it with `optimizeCancel(id)`.
    #[wasm_bindgen(js_name = optimizeStart)]
    pub fn optimize_start(&self, kind: String, input: Vec<f32>, settings: JsValue) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        future_to_promise(async move {
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let input_size: usize = net.spec.input_shape().iter().product();
            let job = match kind.as_str() {
                "visualize" => {
                    let s: VisualizeJs = parse(settings, "visualization")?;
                    let objective: Objective = s.target.map(Into::into).unwrap_or(Objective::Class(0));
                    let mut v = class_vis::Settings::preset(s.preset.as_deref().unwrap_or("lucid"), objective).map_err(js_err)?;
                    if let Some(p) = &s.param {
                        v.param = Parametrization::parse(p).ok_or_else(|| js_err(format!("unknown parametrization '{p}'")))?;
                    }
                    v.steps = s.steps.unwrap_or(v.steps);
                    v.lr = s.lr.unwrap_or(v.lr);
                    v.jitter = s.jitter.unwrap_or(v.jitter);
                    v.scale_jitter = s.scale.unwrap_or(v.scale_jitter);
                    v.rotate = s.rotate.unwrap_or(v.rotate);
                    v.l2_decay = s.l2.unwrap_or(v.l2_decay);
                    v.blur_every = s.blur_every.unwrap_or(v.blur_every);
                    v.blur_sigma = s.blur_sigma.unwrap_or(v.blur_sigma);
                    v.norm_pct = s.norm_pct.unwrap_or(v.norm_pct);
                    v.contrib_pct = s.contrib_pct.unwrap_or(v.contrib_pct);
                    v.tv = s.tv.unwrap_or(v.tv);
                    v.seed = seed(s.seed);
                    Job::Visualize(ClassVis::new(&net, v).map_err(js_err)?)
                }
                "invert" => {
                    let s: InvertJs = parse(settings, "inversion")?;
                    if s.layers.is_empty() {
                        return Err(js_err("pick at least one layer to invert"));
                    }
                    let mut list = vec![];
                    for &layer in &s.layers {
                        let d = inversion::Settings::new(layer);
                        let st = inversion::Settings {
                            steps: s.steps.unwrap_or(d.steps),
                            lr: s.lr.unwrap_or(d.lr),
                            alpha: s.alpha.unwrap_or(d.alpha),
                            alpha_weight: s.alpha_weight.unwrap_or(d.alpha_weight),
                            tv_beta: s.beta.unwrap_or(d.tv_beta),
                            tv_weight: s.tv_weight.unwrap_or(d.tv_weight),
                            jitter: s.jitter.unwrap_or(d.jitter),
                            seed: seed(s.seed),
                            ..d
                        };
                        list.push(inversion::Inversion::new(&net, &input, st).await.map_err(js_err)?);
                    }
                    Job::Invert(list)
                }
                "dream" => {
                    let s: DreamJs = parse(settings, "DeepDream")?;
                    let d = deepdream::Settings::new(s.layer);
                    let st = deepdream::Settings {
                        channel: s.channel,
                        octaves: s.octaves.unwrap_or(d.octaves),
                        octave_scale: s.octave_scale.unwrap_or(d.octave_scale),
                        steps_per_octave: s.steps.unwrap_or(d.steps_per_octave),
                        step: s.step.map(|v| v / 255.0).unwrap_or(d.step),
                        jitter: s.jitter.unwrap_or(d.jitter),
                        seed: seed(s.seed),
                        ..d
                    };
                    let c = net.spec.input_shape()[0];
                    Job::Dream(deepdream::Dream::new(&net, &input, [c, s.height, s.width], st).map_err(js_err)?)
                }
                "style" => {
                    let s: StyleJs = parse(settings, "style")?;
                    let mut st = match (s.content_layer, s.style_layers) {
                        (Some(c), Some(l)) => style::Settings::new(c, l),
                        _ => style::Settings::mobilenet(&net).ok_or_else(|| js_err("pick a content layer and style layers"))?,
                    };
                    st.content_weight = s.content_weight.unwrap_or(st.content_weight);
                    st.style_weight = s.style_weight.unwrap_or(st.style_weight);
                    st.tv_weight = s.tv_weight.unwrap_or(st.tv_weight);
                    st.steps = s.steps.unwrap_or(st.steps);
                    st.from_content = s.from_content.unwrap_or(true);
                    st.seed = seed(s.seed);
                    st.optimizer = match s.optimizer.as_deref().unwrap_or("adam") {
                        "adam" => style::Optimizer::Adam { lr: s.lr.unwrap_or(0.03) },
                        "lbfgs" => style::Optimizer::Lbfgs { lr: s.lr.unwrap_or(1.0) },
                        o => return Err(js_err(format!("unknown optimizer '{o}'; expected adam or lbfgs"))),
                    };
                    let c = net.spec.input_shape()[0];
                    Job::Style(style::Style::new(&net, &input, &s.style, [c, s.size, s.size], st).await.map_err(js_err)?)
                }
                "attack" | "fooling" => {
                    let s: AttackJs = parse(settings, "attack")?;
                    Objective::Class(s.target).check(&net).map_err(js_err)?;
                    let (step, steps) = (s.step.unwrap_or(0.5) / 255.0, s.steps.unwrap_or(20));
                    if kind == "fooling" {
                        Job::Attack(Attack::fooling(input_size, s.target, step, steps, seed(s.seed)))
                    } else {
                        if input.len() != input_size {
                            net.input_tensor(&input).map_err(js_err)?;
                        }
                        Job::Attack(Attack::new(&input, s.target, s.eps.unwrap_or(2.0) / 255.0, step, steps))
                    }
                }
                k => return Err(js_err(format!("unknown job '{k}'; expected visualize, invert, dream, style, attack or fooling"))),
            };
            let js = state(&job, &net);
            let mut s = session.borrow_mut();
            s.next_job += 1;
            let id = s.next_job;
            set(&js, "id", id);
            while s.jobs.len() >= MAX_JOBS {
                let oldest = *s.jobs.keys().next().expect("not empty");
                s.jobs.remove(&oldest);
            }
            s.jobs.insert(id, Some(Slot { job, net }));
            Ok(js.into())
        })
    }

    /// Drops job `id` (a step in progress finishes, and its job is not kept).
    #[wasm_bindgen(js_name = optimizeCancel)]
    pub fn optimize_cancel(&self, id: u32) -> bool {
        self.session.borrow_mut().jobs.remove(&id).is_some()
    }

    /// Runs job `id` for about `budget_ms` (at least one step); resolves to its state.
    #[wasm_bindgen(js_name = optimizeStep)]
    pub fn optimize_step(&self, id: u32, budget_ms: f64) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let Slot { mut job, net } = take(&session, id)?;
            let t0 = now();
            let r: Result<(), convlens_core::Error> = async {
                loop {
                    let done = match &mut job {
                        Job::Visualize(v) => {
                            v.step(&net).await?;
                            v.done()
                        }
                        Job::Invert(list) => {
                            // The inversion furthest behind takes the next step.
                            let i = (0..list.len()).min_by_key(|&i| list[i].history.len()).unwrap_or(0);
                            if !list[i].done() {
                                list[i].step(&net).await?;
                            }
                            list.iter().all(|l| l.done())
                        }
                        Job::Dream(d) => {
                            d.step(&net).await?;
                            d.done()
                        }
                        Job::Style(s) => {
                            s.step().await?;
                            s.done()
                        }
                        Job::Attack(a) => {
                            let mut at = Attributor::new(&net, None);
                            a.step(&mut at).await?;
                            a.done()
                        }
                    };
                    if done || now() - t0 >= budget_ms {
                        return Ok(());
                    }
                }
            }
            .await;
            let js = state(&job, &net);
            set(&js, "id", id);
            put_back(&session, id, Slot { job, net });
            r.map_err(js_err)?;
            Ok(js.into())
        })
    }

    /// Style job `id`'s Gram matrices: {target: [Float32Array], current: [Float32Array],
    /// channels: [C per layer], layers: [index]}.
    #[wasm_bindgen(js_name = styleGrams)]
    pub fn style_grams(&self, id: u32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let slot = take(&session, id)?;
            let r = match &slot.job {
                Job::Style(s) => {
                    let t = s.target_grams().await;
                    let c = s.grams_of(None).await;
                    Some((t, c, s.settings.style_layers.clone()))
                }
                _ => None,
            };
            put_back(&session, id, slot);
            let (t, c, layers) = r.ok_or_else(|| js_err(format!("job {id} is not a style transfer")))?;
            let (t, c) = (t.map_err(js_err)?, c.map_err(js_err)?);
            let o = Object::new();
            set(&o, "channels", t.iter().map(|g| JsValue::from((g.len() as f64).sqrt() as u32)).collect::<Array>());
            set(&o, "target", t.iter().map(|g| JsValue::from(Float32Array::from(g.as_slice()))).collect::<Array>());
            set(&o, "current", c.iter().map(|g| JsValue::from(Float32Array::from(g.as_slice()))).collect::<Array>());
            set(&o, "layers", layers.iter().map(|&l| JsValue::from(l as u32)).collect::<Array>());
            Ok(o.into())
        })
    }

    /// FGSM: the image moved by `eps` (on 0-255) along the sign of the gradient of the loss of
    /// `label` (Promise<Float32Array>).
    pub fn fgsm(&self, input: Vec<f32>, label: u32, eps: f32) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            Objective::Class(label as usize).check(&net).map_err(js_err)?;
            let mut at = Attributor::new(&net, None);
            let adv = adversarial::fgsm(&mut at, &input, label as usize, eps / 255.0).await.map_err(js_err)?;
            Ok(Float32Array::from(adv.as_slice()).into())
        })
    }

    /// The linear explanation of adversarial examples on the built-in digits (`files`: the
    /// `mnist5k` files that `datasetFiles` lists, path -> bytes; decoded here for this run alone,
    /// so the session's dataset stays as it was): softmax regression at each side length, the
    /// shift eps * |w_t - w_y|_1 predicted and measured. Returns an array of {side, dim,
    /// accuracy, adversarialAccuracy, predictedShift, measuredShift, wL1}.
    #[wasm_bindgen(js_name = linearDemo)]
    pub fn linear_demo(&self, files: &Object, sides: Vec<u32>, eps: f32, epochs: u32) -> Result<JsValue, JsValue> {
        let (train, test) = crate::decode_dataset("mnist5k", files, None)?;
        let side = 24;
        let shape = [1, side, side];
        let (mut x, mut y) = train.batch(&(0..train.len()).collect::<Vec<_>>(), shape, None);
        let (hx, hy) = test.batch(&(0..test.len()).collect::<Vec<_>>(), shape, None);
        x.extend(hx);
        y.extend(hy);
        let sides: Vec<usize> = sides.iter().map(|&s| (s as usize).clamp(2, side)).collect();
        let pts = linear::run(&x, &y, side, train.len(), &sides, eps, epochs as usize, 1);
        let out = Array::new();
        for p in pts {
            let o = Object::new();
            set(&o, "side", p.side as u32);
            set(&o, "dim", p.dim as u32);
            set(&o, "accuracy", p.accuracy);
            set(&o, "adversarialAccuracy", p.adversarial_accuracy);
            set(&o, "predictedShift", p.predicted_shift);
            set(&o, "measuredShift", p.measured_shift);
            set(&o, "wL1", p.w_l1);
            out.push(&o);
        }
        Ok(out.into())
    }

    /// Builds a network from a `.tflite` file (the published quantized MobileNetV2) and optional
    /// class names; resolves like `loadOpList` (its `spec` reloads with `exportWeights`' bytes).
    #[wasm_bindgen(js_name = loadTflite)]
    pub fn load_tflite(&self, bytes: Uint8Array, labels: Option<String>) -> Result<JsValue, JsValue> {
        let model = convlens_core::tflite::read(&bytes.to_vec()).map_err(js_err)?;
        let spec = model.spec(labels.map(|t| t.lines().map(str::to_string).collect())).map_err(js_err)?;
        let w = model.layer_weights(&spec).map_err(js_err)?;
        let spec_json = spec.json.to_string();
        let summary = self.install(Net::with_weights(spec, w, &self.device))?;
        set(summary.unchecked_ref(), "spec", spec_json);
        Ok(summary)
    }

    /// Builds a network from a TFLite-style op list (MobileNetV2's `mobilenet_v2_f32.json`), its
    /// safetensors and optional class names (one per line); resolves like `load`.
    #[wasm_bindgen(js_name = loadOpList)]
    pub fn load_op_list(&self, op_list: &str, weights: Uint8Array, labels: Option<String>) -> Result<JsValue, JsValue> {
        let bytes = weights.to_vec();
        let st = convlens_core::safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| js_err(format!("weights: not a valid safetensors file ({e})")))?;
        let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
        let names = labels.map(|t| t.lines().map(str::to_string).collect());
        let spec = convlens_core::oplist::spec(op_list, &shape, names).map_err(js_err)?;
        let w = convlens_core::weights::load(&spec, &bytes).map_err(js_err)?;
        let spec_json = spec.json.to_string();
        let summary = self.install(Net::with_weights(spec, w, &self.device))?;
        // The spec it became: with the same safetensors it reloads through `load` (after a restart).
        set(summary.unchecked_ref(), "spec", spec_json);
        Ok(summary)
    }
}
