//! The browser facade: a thin wasm-bindgen layer over convlens-core, run inside a Web Worker.
//! See docs/ENGINE_API.md for the JS contract. Every fallible call returns a JS `Error` with the
//! engine's message; a panic is reported through the hook given to `installPanicHook`, after which
//! the page restarts the worker.

mod optimize;

use std::cell::RefCell;
use std::rc::Rc;

use convlens_core::backend::{self, Backend};
use convlens_core::burn::tensor::Device;
use convlens_core::cpu_train::{self, CpuTrainer};
use convlens_core::data::{self, Dataset, Sampler};
use convlens_core::train::{self, Method, Optimizer, TrainConfig};
use convlens_core::vis::attribution::{self, Attributor, Display, Settings};
use convlens_core::vis::layers::{self, Values};
use convlens_core::vis::occlusion::{self, Fill, Occlusion};
use convlens_core::{Net, Objective};
use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint8Array, Uint32Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

thread_local! {
    static PANIC_CALLBACK: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
    static GPU_DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
}

#[cfg(target_family = "wasm")]
unsafe extern "C" {
    /// Static constructors (cubecl registers its IR through `inventory`), synthesized by wasm-ld.
    fn __wasm_call_ctors();
}

/// Runs the static constructors once, when the module starts. Without this explicit call wasm-ld
/// wraps every export in a call to `__wasm_call_ctors`, which re-ran all constructors on every
/// call from JS and made a probe about 100 times slower.
#[wasm_bindgen(start)]
fn start() {
    #[cfg(target_family = "wasm")]
    unsafe {
        __wasm_call_ctors()
    }
}

/// Reports a Rust panic to `callback(message)` (and to the console). The wasm instance cannot be
/// used after a panic: the page must start a new worker.
#[wasm_bindgen(js_name = installPanicHook)]
pub fn install_panic_hook(callback: js_sys::Function) {
    PANIC_CALLBACK.with(|c| *c.borrow_mut() = Some(callback));
    std::panic::set_hook(Box::new(|info| {
        let message = format!("engine panic: {info}");
        web_log(&message);
        PANIC_CALLBACK.with(|c| {
            if let Some(f) = c.borrow().as_ref() {
                let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&message));
            }
        });
    }));
}

fn web_log(message: &str) {
    let console = Reflect::get(&js_sys::global(), &"console".into()).ok();
    if let Some(console) = console
        && let Ok(error) = Reflect::get(&console, &"error".into())
        && let Ok(f) = error.dyn_into::<js_sys::Function>()
    {
        let _ = f.call1(&console, &JsValue::from_str(message));
    }
}

/// Whether this browser gives a WebGPU adapter (`navigator.gpu.requestAdapter()` is not null).
#[wasm_bindgen(js_name = webgpuAvailable)]
pub async fn webgpu_available() -> bool {
    async fn probe() -> Result<bool, JsValue> {
        let navigator = Reflect::get(&js_sys::global(), &"navigator".into())?;
        let gpu = Reflect::get(&navigator, &"gpu".into())?;
        if gpu.is_undefined() || gpu.is_null() {
            return Ok(false);
        }
        let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into())?.dyn_into()?;
        let adapter = wasm_bindgen_futures::JsFuture::from(Promise::from(request.call0(&gpu)?)).await?;
        Ok(!adapter.is_null() && !adapter.is_undefined())
    }
    probe().await.unwrap_or(false)
}

/// The network spec stored in a safetensors file written by ConvLens (`convlens export`, the
/// page's download), so that one file opens a whole model. Throws if the file is corrupt or
/// carries no spec.
#[wasm_bindgen(js_name = embeddedSpec)]
pub fn embedded_spec(bytes: &[u8]) -> Result<String, JsValue> {
    convlens_core::weights::embedded_spec(bytes).map_err(js_err)?.ok_or_else(|| {
        js_err("weights: this safetensors file carries no network spec; paste the spec into the Network box and load the weights with it")
    })
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// The trainer settings as JS sees them.
fn trainer_js(c: &TrainConfig) -> Object {
    let o = Object::new();
    set(&o, "method", c.method.as_str());
    set(&o, "learningRate", c.learning_rate);
    set(&o, "momentum", c.momentum);
    set(&o, "batchSize", c.batch_size as u32);
    set(&o, "l1", c.l1);
    set(&o, "l2", c.l2);
    set(&o, "beta1", c.beta1);
    set(&o, "beta2", c.beta2);
    set(&o, "rho", c.rho);
    set(&o, "eps", c.eps.unwrap_or(c.method.default_eps()));
    o
}

/// Runs a chunk of steps on `model`: on the CPU backend through the fused CPU path when the net
/// allows it (its weights and optimizer state persist in the session), else through Burn's
/// autodiff. On an error nothing of the chunk is kept.
async fn run_chunk(
    session: &Rc<RefCell<Session>>,
    model: &mut Net,
    cfg: TrainConfig,
    batches: Vec<(Vec<f32>, Vec<usize>)>,
    fused_ok: bool,
) -> Result<train::ChunkStats, JsValue> {
    if fused_ok && cpu_train::applies(Backend::Cpu, &model.spec) {
        let existing = session.borrow_mut().fused.take();
        let mut fused = match existing {
            Some(f) => f,
            None => CpuTrainer::new(model, model.read_weights().await.map_err(js_err)?, cfg),
        };
        fused.set_config(cfg);
        let result = fused.train_chunk(&batches, &now);
        if result.is_ok() {
            *model = fused.to_net(model);
        }
        session.borrow_mut().fused = Some(fused);
        return result.map_err(js_err);
    }
    let mut opt = take_optimizer(session, model, cfg);
    let result = train::train_chunk(model, &mut opt, batches, &now).await;
    session.borrow_mut().opt = Some(opt);
    result.map_err(js_err)
}

/// The optimizer for this net with these settings (its state kept from the last call).
fn take_optimizer(session: &Rc<RefCell<Session>>, net: &Net, cfg: TrainConfig) -> Optimizer {
    let mut opt = session.borrow_mut().opt.take().unwrap_or_else(|| Optimizer::new(net, cfg));
    opt.set_config(cfg);
    opt
}

fn split_of<'a>(s: &'a Session, split: &str) -> Result<&'a Dataset, JsValue> {
    match split {
        "train" => s.train.as_ref(),
        "test" => s.test.as_ref(),
        other => return Err(js_err(format!("unknown split '{other}'; expected train or test"))),
    }
    .ok_or_else(|| js_err("no dataset is loaded"))
}

/// Layer `layer`'s output for a batch of inputs, flat: on the CPU through the fused path (its
/// host copy of the weights is the current one: loads reset it, training updates both), else Burn.
async fn infer(
    session: &Rc<RefCell<Session>>,
    net: &Net,
    inputs: &[f32],
    layer: usize,
    fused_ok: bool,
) -> Result<Vec<f32>, convlens_core::Error> {
    if !(fused_ok && cpu_train::applies(Backend::Cpu, &net.spec) && layer <= net.spec.score_layer() + 1 && layer < net.spec.layers.len()) {
        return forward_to(net, inputs, layer).await;
    }
    let per: usize = net.spec.input_shape().iter().product();
    if inputs.is_empty() || !inputs.len().is_multiple_of(per) {
        return forward_to(net, inputs, layer).await; // for its message
    }
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(convlens_core::Error::Input(format!("the input has a non-finite value ({}) at index {i}", inputs[i])));
    }
    let existing = session.borrow_mut().fused.take();
    let mut fused = match existing {
        Some(f) => f,
        None => {
            let cfg = session.borrow().config;
            CpuTrainer::new(net, net.read_weights().await?, cfg)
        }
    };
    let out = fused.layer_output(inputs, inputs.len() / per, layer);
    session.borrow_mut().fused = Some(fused);
    out
}

/// Layer `layer`'s output for a batch of inputs, flat.
async fn forward_to(net: &Net, inputs: &[f32], layer: usize) -> Result<Vec<f32>, convlens_core::Error> {
    let [d, h, w] = net.spec.input_shape();
    let per = d * h * w;
    if inputs.is_empty() || !inputs.len().is_multiple_of(per) {
        return Err(convlens_core::Error::Input(format!("{} values are not a whole number of {d}x{h}x{w} inputs", inputs.len())));
    }
    if layer >= net.spec.layers.len() {
        return Err(convlens_core::Error::Input(format!("there is no layer {layer}; the network has {}", net.spec.layers.len())));
    }
    if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
        return Err(convlens_core::Error::Input(format!("the input has a non-finite value ({}) at index {i}", inputs[i])));
    }
    let n = inputs.len() / per;
    let x = convlens_core::burn::tensor::Tensor::<4>::from_data(
        convlens_core::burn::tensor::TensorData::new(inputs.to_vec(), [n, d, h, w]),
        &net.device,
    );
    let out = net.forward_upto(x, layer, &net.params).pop().expect("layer 0 at least");
    convlens_core::read(out.flatten::<1>(0, 3)).await
}

/// Decodes a dataset from its files (path -> bytes, as `datasetFiles` lists them).
fn decode_dataset(name: &str, files: &Object, max_train_sheets: Option<u32>) -> Result<(Dataset, Dataset), JsValue> {
    let layout = data::layout(name, max_train_sheets.map(|k| k as usize)).map_err(js_err)?;
    layout
        .load(|f| {
            let v = Reflect::get(files, &f.into()).unwrap_or(JsValue::UNDEFINED);
            if v.is_undefined() || v.is_null() {
                return Err(convlens_core::Error::Data(format!("the file {f} was not given")));
            }
            Ok(Uint8Array::new(&v).to_vec())
        })
        .map_err(js_err)
}

/// The files a dataset needs, relative to the data directory (`mnist`, `cifar10`) or to
/// `www/data` (`mnist5k`, built in).
#[wasm_bindgen(js_name = datasetFiles)]
pub fn dataset_files(name: &str, max_train_sheets: Option<u32>) -> Result<Array, JsValue> {
    let l = data::layout(name, max_train_sheets.map(|k| k as usize)).map_err(js_err)?;
    Ok(l.files().into_iter().map(JsValue::from).collect())
}

/// A 2-D toy dataset of ConvNetJS's classify2d demo ('circle', 'spiral', 'xor', 'clusters'):
/// `{points: Float32Array (x, y, ...), labels: Uint8Array}`.
#[wasm_bindgen(js_name = toyPoints)]
pub fn toy_points(kind: &str, seed: f64) -> Result<JsValue, JsValue> {
    let d = data::toy(kind, seed as u64).map_err(js_err)?;
    let out = Object::new();
    let pts: Vec<f32> = (0..d.len()).flat_map(|i| d.image(i)).collect();
    set(&out, "points", Float32Array::from(pts.as_slice()));
    set(&out, "labels", Uint8Array::from(d.labels.as_slice()));
    Ok(out.into())
}

#[wasm_bindgen]
pub struct Engine {
    backend: Backend,
    device: Device,
    net: Rc<RefCell<Option<Net>>>,
    /// Datasets, the trainer and its state.
    session: Rc<RefCell<Session>>,
}

/// The training side of the engine: datasets, trainer settings, the optimizer's state (reset when
/// a network is loaded or the method changes), the data order.
#[derive(Default)]
struct Session {
    name: String,
    train: Option<Dataset>,
    test: Option<Dataset>,
    sampler: Option<Sampler>,
    config: TrainConfig,
    opt: Option<Optimizer>,
    /// The fused CPU path's state (weights, optimizer), while it trains the current net.
    fused: Option<CpuTrainer>,
    /// Examples trained on since the network was loaded.
    examples: u64,
    /// The occlusion in progress (or last done), evaluated in chunks by `occlusionStep`.
    occlusion: Option<Occlusion>,
    /// The image optimizations, by id (see optimize.rs); `None` while a step runs.
    jobs: std::collections::BTreeMap<u32, Option<optimize::Slot>>,
    next_job: u32,
}

/// The trainer settings as JS gives them; missing fields keep their current values.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrainConfigJs {
    method: Option<String>,
    learning_rate: Option<f64>,
    momentum: Option<f64>,
    batch_size: Option<usize>,
    l1: Option<f64>,
    l2: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    rho: Option<f64>,
    eps: Option<f64>,
}

impl TrainConfigJs {
    fn apply(self, c: TrainConfig) -> Result<TrainConfig, JsValue> {
        let method = match self.method {
            Some(m) => Method::parse(&m).map_err(js_err)?,
            None => c.method,
        };
        let out = TrainConfig {
            method,
            learning_rate: self.learning_rate.unwrap_or(c.learning_rate),
            momentum: self.momentum.unwrap_or(c.momentum),
            batch_size: self.batch_size.unwrap_or(c.batch_size),
            l1: self.l1.unwrap_or(c.l1),
            l2: self.l2.unwrap_or(c.l2),
            beta1: self.beta1.unwrap_or(c.beta1),
            beta2: self.beta2.unwrap_or(c.beta2),
            rho: self.rho.unwrap_or(c.rho),
            eps: self.eps.or(c.eps),
            seed: c.seed,
        };
        out.validate().map_err(js_err)?;
        Ok(out)
    }
}

fn parse_config(value: JsValue, current: TrainConfig) -> Result<TrainConfig, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(current);
    }
    let js: TrainConfigJs = serde_wasm_bindgen::from_value(value).map_err(|e| {
        js_err(format!("trainer: {e}; expected {{method, learningRate, momentum, batchSize, l1, l2, beta1, beta2, rho, eps}}"))
    })?;
    js.apply(current)
}

/// Milliseconds from `performance.now()` (the worker's clock).
fn now() -> f64 {
    Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| {
            let f: js_sys::Function = Reflect::get(&p, &"now".into()).ok()?.dyn_into().ok()?;
            f.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DatasetInfo {
    name: String,
    shape: [usize; 3],
    classes: Vec<String>,
    train: usize,
    test: usize,
}

fn dataset_info(s: &Session) -> DatasetInfo {
    let t = s.train.as_ref();
    DatasetInfo {
        name: s.name.clone(),
        shape: t.map(|d| d.shape).unwrap_or_default(),
        classes: t.map(|d| d.classes.clone()).unwrap_or_default(),
        train: t.map_or(0, Dataset::len),
        test: s.test.as_ref().map_or(0, Dataset::len),
    }
}

#[derive(Serialize)]
struct WeightInfo {
    name: String,
    shape: Vec<usize>,
}

#[derive(Serialize)]
struct LayerInfo {
    index: usize,
    name: String,
    #[serde(rename = "type")]
    ty: String,
    activation: Option<String>,
    /// The layers it reads, by index.
    inputs: Vec<usize>,
    desc: String,
    shape: [usize; 3],
    params: usize,
    weights: Vec<WeightInfo>,
}

#[derive(Serialize)]
struct InputInfo {
    depth: usize,
    height: usize,
    width: usize,
}

#[derive(Serialize)]
struct Summary {
    name: String,
    input: InputInfo,
    classes: usize,
    #[serde(rename = "classNames")]
    class_names: Vec<String>,
    params: usize,
    layers: Vec<LayerInfo>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum ObjectiveJs {
    Class { index: usize },
    Prob { index: usize },
    Neuron { layer: usize, index: usize },
    Channel { layer: usize, channel: usize },
    Loss { label: usize },
}

impl From<ObjectiveJs> for Objective {
    fn from(o: ObjectiveJs) -> Objective {
        match o {
            ObjectiveJs::Class { index } => Objective::Class(index),
            ObjectiveJs::Prob { index } => Objective::Prob(index),
            ObjectiveJs::Neuron { layer, index } => Objective::Neuron { layer, index },
            ObjectiveJs::Channel { layer, channel } => Objective::Channel { layer, channel },
            ObjectiveJs::Loss { label } => Objective::Loss { label },
        }
    }
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

fn shape_js(shape: &[usize]) -> Array {
    shape.iter().map(|&d| JsValue::from(d as u32)).collect()
}

/// `{data, min, max}`-style fields of a tensor, under the given key names.
fn put_values(obj: &Object, data_key: &str, min_key: &str, max_key: &str, v: &Values) {
    set(obj, data_key, Float32Array::from(v.data.as_slice()));
    set(obj, min_key, v.min);
    set(obj, max_key, v.max);
}

fn probe_js(p: &layers::Probe) -> Object {
    let out = Object::new();
    set(&out, "objective", p.objective);
    set(&out, "probs", p.probs.as_ref().map(|v| JsValue::from(Float32Array::from(v.as_slice()))).unwrap_or(JsValue::NULL));
    let layers_js = Array::new();
    for l in &p.layers {
        let o = Object::new();
        set(&o, "shape", shape_js(&l.act.shape));
        put_values(&o, "act", "actMin", "actMax", &l.act);
        put_values(&o, "grad", "gradMin", "gradMax", &l.grad);
        let ws = Array::new();
        for w in &l.weights {
            let wo = Object::new();
            set(&wo, "name", w.name.as_str());
            set(&wo, "shape", shape_js(&w.value.shape));
            put_values(&wo, "data", "min", "max", &w.value);
            put_values(&wo, "grad", "gradMin", "gradMax", &w.grad);
            ws.push(&wo);
        }
        set(&o, "weights", ws);
        layers_js.push(&o);
    }
    set(&out, "layers", layers_js);
    out
}

#[wasm_bindgen]
impl Engine {
    /// An engine on 'webgpu' or 'cpu'. Rejects if WebGPU gives no adapter.
    pub async fn create(backend: String) -> Result<Engine, JsValue> {
        let which = Backend::parse(&backend).ok_or_else(|| js_err(format!("unknown backend '{backend}'; expected 'webgpu' or 'cpu'")))?;
        let device = match which {
            Backend::Cpu => backend::cpu(),
            Backend::Gpu => {
                if let Some(d) = GPU_DEVICE.with(|g| g.borrow().clone()) {
                    d
                } else {
                    if !webgpu_available().await {
                        return Err(js_err("WebGPU is not available in this browser (navigator.gpu gave no adapter)"));
                    }
                    let d = backend::gpu().await.map_err(js_err)?;
                    GPU_DEVICE.with(|g| *g.borrow_mut() = Some(d.clone()));
                    d
                }
            }
        };
        Ok(Engine { backend: which, device, net: Rc::new(RefCell::new(None)), session: Rc::new(RefCell::new(Session::default())) })
    }

    /// 'webgpu' or 'cpu'.
    pub fn backend(&self) -> String {
        self.backend.as_str().to_string()
    }

    /// Builds a network from a spec and safetensors weights (or a random init from `seed`).
    /// On error the previous network stays loaded.
    pub fn load(&self, spec: &str, weights: Option<Vec<u8>>, seed: f64) -> Result<JsValue, JsValue> {
        let net = convlens_core::build(spec, weights.as_deref(), seed as u64, &self.device).map_err(js_err)?;
        self.install(net)
    }

    /// Builds a network from a TF.js layers model (`model.json`'s text and its weight shards by
    /// path, `{"group1-shard1of1.bin": Uint8Array}`); resolves like `load`, plus `spec`, the
    /// ConvLens spec it became. On error the previous network stays loaded.
    #[wasm_bindgen(js_name = loadTfjs)]
    pub fn load_tfjs(&self, model_json: &str, shards: &Object) -> Result<JsValue, JsValue> {
        let model = convlens_core::tfjs::load(model_json, &mut |path| {
            let v = Reflect::get(shards, &JsValue::from_str(path)).unwrap_or(JsValue::UNDEFINED);
            if v.is_undefined() {
                return Err(convlens_core::Error::Weights(format!("the weight shard '{path}' named in model.json was not given")));
            }
            Ok(Uint8Array::new(&v).to_vec())
        })
        .map_err(js_err)?;
        let spec_json = model.spec.json.to_string();
        let net = Net::with_weights(model.spec, model.weights, &self.device);
        let summary = self.install(net)?;
        set(summary.unchecked_ref(), "spec", spec_json);
        Ok(summary)
    }
}

impl Engine {
    /// Makes `net` the current network; resolves to its summary.
    fn install(&self, net: Net) -> Result<JsValue, JsValue> {
        let s = &net.spec;
        let summary = Summary {
            name: s.name.clone(),
            input: InputInfo { depth: s.input_shape()[0], height: s.input_shape()[1], width: s.input_shape()[2] },
            classes: s.classes(),
            class_names: s.class_names.clone().unwrap_or_else(|| (0..s.classes()).map(|i| i.to_string()).collect()),
            params: s.param_count(),
            layers: s
                .layers
                .iter()
                .map(|l| LayerInfo {
                    index: l.index,
                    name: l.name.clone(),
                    ty: l.kind.type_name().to_string(),
                    activation: match l.kind {
                        convlens_core::spec::LayerKind::Conv(convlens_core::layers::conv::Conv { activation, .. })
                        | convlens_core::spec::LayerKind::Fc(convlens_core::layers::fc::Fc { activation, .. }) => {
                            activation.map(|a| a.as_str().to_string())
                        }
                        _ => None,
                    },
                    inputs: l.inputs.clone(),
                    desc: l.describe(),
                    shape: l.out_shape,
                    params: l.param_count(),
                    weights: l.params().into_iter().map(|p| WeightInfo { name: p.name, shape: p.shape }).collect(),
                })
                .collect(),
        };
        let js = serde_wasm_bindgen::to_value(&summary).map_err(js_err)?;
        *self.net.borrow_mut() = Some(net);
        let mut session = self.session.borrow_mut();
        session.opt = None;
        session.fused = None;
        session.occlusion = None;
        session.jobs.clear();
        session.examples = 0;
        Ok(js)
    }
}

/// A settings object from JS as JSON (typed arrays become plain lists), for a core schema.
fn settings_json(settings: &JsValue, what: &str) -> Result<serde_json::Value, JsValue> {
    if settings.is_undefined() || settings.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let plain = Object::new();
    if let Some(obj) = settings.dyn_ref::<Object>() {
        for entry in Object::entries(obj).iter() {
            let pair: Array = entry.unchecked_into();
            let v = pair.get(1);
            let v = if js_sys::ArrayBuffer::is_view(&v) { Array::from(&v).into() } else { v };
            let _ = Reflect::set(&plain, &pair.get(0), &v);
        }
    }
    serde_wasm_bindgen::from_value(plain.into()).map_err(|e| js_err(format!("{what} settings: {e}")))
}

/// A technique's settings, described for the page's forms: `[{key, label, type: {kind, options?},
/// default, min, max, step, unit, help, group}]` (`attribution`).
#[wasm_bindgen(js_name = settingsSchema)]
pub fn settings_schema(technique: &str) -> Result<JsValue, JsValue> {
    let schema = match technique {
        "attribution" => attribution::schema(),
        other => return Err(js_err(format!("no settings schema for '{other}'; expected attribution"))),
    };
    schema.describe().serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OcclusionJs {
    window: usize,
    stride: usize,
    /// gray, black, white, blur, mean:R,G,B or a number.
    fill: String,
    class: usize,
    /// Track the class's score (the logit) instead of its probability.
    #[serde(default)]
    logit: bool,
}

/// Takes the fused CPU path's state out of the session (building it if needed) when the backend
/// is the CPU and the net allows it; give it back with `session.fused = ...` after use.
async fn take_fused(session: &Rc<RefCell<Session>>, net: &Net, fused_ok: bool) -> Result<Option<CpuTrainer>, JsValue> {
    if !(fused_ok && cpu_train::applies(Backend::Cpu, &net.spec)) {
        return Ok(None);
    }
    let existing = session.borrow_mut().fused.take();
    Ok(Some(match existing {
        Some(f) => f,
        None => {
            let cfg = session.borrow().config;
            CpuTrainer::new(net, net.read_weights().await.map_err(js_err)?, cfg)
        }
    }))
}

fn occlusion_js(o: &Occlusion) -> Object {
    let out = Object::new();
    set(&out, "done", o.done() as u32);
    set(&out, "total", o.total() as u32);
    set(&out, "ny", o.ny as u32);
    set(&out, "nx", o.nx as u32);
    set(&out, "base", o.base);
    set(&out, "class", o.settings.class as u32);
    set(&out, "window", o.settings.window as u32);
    set(&out, "stride", o.settings.stride as u32);
    set(&out, "grid", Float32Array::from(o.grid.as_slice()));
    if o.done() == o.total() {
        set(&out, "map", Float32Array::from(o.attribution().as_slice()));
    }
    out
}

#[wasm_bindgen]
impl Engine {
    /// One attribution map for one image (Promise<{map, shape, abs, signed, display, value,
    /// layerMap?, layerShape?, delta?}>): `map` is the raw [C,H,W] attribution, `abs` and `signed`
    /// its [H,W] views (max |v| over channels; channel sum), `display` the one the method is
    /// usually shown with. `settings`: {method, noise, samples, seed, baseline, steps, rule, layer,
    /// relu}, all optional. Uses the fused CPU path when it can, Burn otherwise (WebGPU).
    pub fn attribute(&self, input: Vec<f32>, objective: JsValue, settings: JsValue) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let objective: ObjectiveJs = serde_wasm_bindgen::from_value(objective).map_err(|e| js_err(format!("objective: {e}")))?;
            let objective: Objective = objective.into();
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let values = attribution::schema().resolve(&settings_json(&settings, "attribution")?, false).map_err(js_err)?;
            let settings = Settings::from_values(&values, &|l| net.spec.layer_index(l).map_err(Into::into)).map_err(js_err)?;
            let mut fused = take_fused(&session, &net, fused_ok).await?;
            let r = {
                let mut at = Attributor::new(&net, fused.as_mut());
                attribution::attribute(&mut at, &input, &objective, &settings).await
            };
            if fused.is_some() {
                session.borrow_mut().fused = fused;
            }
            let a = r.map_err(js_err)?;
            let out = Object::new();
            set(&out, "map", Float32Array::from(a.map.as_slice()));
            set(&out, "shape", shape_js(&a.shape));
            set(&out, "abs", Float32Array::from(attribution::reduce(&a.map, a.shape, Display::Abs).as_slice()));
            set(&out, "signed", Float32Array::from(attribution::reduce(&a.map, a.shape, Display::Signed).as_slice()));
            set(&out, "display", if settings.method.display() == Display::Signed { "signed" } else { "abs" });
            set(&out, "value", a.value);
            if let Some((m, [h, w])) = &a.layer_map {
                set(&out, "layerMap", Float32Array::from(m.as_slice()));
                set(&out, "layerShape", shape_js(&[*h, *w]));
            }
            if let Some(d) = a.delta {
                set(&out, "delta", d);
            }
            Ok(out.into())
        })
    }

    /// Starts an occlusion of one image ({window, stride, fill, class}); resolves to its state
    /// ({done: 0, total, ny, nx, base, ...}). Run it with `occlusionStep`.
    #[wasm_bindgen(js_name = occlusionStart)]
    pub fn occlusion_start(&self, input: Vec<f32>, settings: JsValue) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let s: OcclusionJs = serde_wasm_bindgen::from_value(settings).map_err(|e| js_err(format!("occlusion settings: {e}")))?;
            let settings = occlusion::Settings {
                window: s.window,
                stride: s.stride,
                fill: Fill::parse(&s.fill, s.window).map_err(js_err)?,
                class: s.class,
                logit: s.logit,
            };
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let mut fused = take_fused(&session, &net, fused_ok).await?;
            let r = {
                let mut at = Attributor::new(&net, fused.as_mut());
                Occlusion::new(&mut at, &input, settings).await
            };
            let mut sess = session.borrow_mut();
            if fused.is_some() {
                sess.fused = fused;
            }
            let o = r.map_err(js_err)?;
            let js = occlusion_js(&o);
            sess.occlusion = Some(o);
            Ok(js.into())
        })
    }

    /// Evaluates up to `max` more patch positions of the current occlusion in one batch;
    /// resolves to its state (with `map`, Captum's per-pixel [H,W] map, once done).
    #[wasm_bindgen(js_name = occlusionStep)]
    pub fn occlusion_step(&self, max: u32) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let mut occ = session.borrow_mut().occlusion.take().ok_or_else(|| js_err("no occlusion was started"))?;
            let mut fused = take_fused(&session, &net, fused_ok).await?;
            let r = {
                let mut at = Attributor::new(&net, fused.as_mut());
                occ.run(&mut at, max as usize).await
            };
            let js = occlusion_js(&occ);
            let mut sess = session.borrow_mut();
            if fused.is_some() {
                sess.fused = fused;
            }
            sess.occlusion = Some(occ);
            r.map_err(js_err)?;
            Ok(js.into())
        })
    }

    /// The current weights as a safetensors file (Promise<Uint8Array>).
    #[wasm_bindgen(js_name = exportWeights)]
    pub fn export_weights(&self) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            // A clone (tensors are shared handles): no borrow is held across an await.
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let w = net.read_weights().await.map_err(js_err)?;
            let bytes = convlens_core::weights::save(&net.spec, &w).map_err(js_err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Activations, gradients and weights of every layer for one image (Promise<Probe>).
    pub fn probe(&self, input: Vec<f32>, objective: JsValue) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let objective: ObjectiveJs = serde_wasm_bindgen::from_value(objective)
                .map_err(|e| js_err(format!("objective: {e}; expected {{kind:'class', index}}, {{kind:'prob', index}}, {{kind:'neuron', layer, index}}, {{kind:'channel', layer, channel}} or {{kind:'loss', label}}")))?;
            let objective: Objective = objective.into();
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            // On the CPU, the fused path (the same numbers as Burn's, tests/cpu_train.rs), much
            // faster for one image; Burn for objectives above the scores, other nets and WebGPU.
            let mut fast = None;
            if fused_ok && cpu_train::applies(Backend::Cpu, &net.spec) {
                let existing = session.borrow_mut().fused.take();
                let mut fused = match existing {
                    Some(f) => f,
                    None => {
                        let cfg = session.borrow().config;
                        CpuTrainer::new(&net, net.read_weights().await.map_err(js_err)?, cfg)
                    }
                };
                let r = fused.probe(&net, &input, &objective);
                session.borrow_mut().fused = Some(fused);
                fast = r.map_err(js_err)?;
            }
            let p = match fast {
                Some(p) => p,
                None => layers::probe(&net, &input, &objective).await.map_err(js_err)?,
            };
            Ok(probe_js(&p).into())
        })
    }

    /// Trains on the given examples (`images`: N images, CHW each; `labels`: N classes) in
    /// minibatches, with the trainer settings updated by `config` (see `setTrainer`); resolves to the
    /// mean loss. The optimizer's state persists until the next `load`. On an error (a diverging
    /// learning rate, a bad label) the weights stay as they were before the call.
    pub fn train(&self, images: Vec<f32>, labels: Vec<u32>, config: JsValue) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let cfg = parse_config(config, session.borrow().config)?;
            let mut model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let per = model.spec.input_shape().iter().product::<usize>();
            if images.len() != labels.len() * per {
                return Err(js_err(format!(
                    "train: {} labels need {} image values, got {}",
                    labels.len(),
                    labels.len() * per,
                    images.len()
                )));
            }
            let batches: Vec<(Vec<f32>, Vec<usize>)> = labels
                .chunks(cfg.batch_size)
                .enumerate()
                .map(|(k, chunk)| {
                    let start = k * cfg.batch_size * per;
                    (images[start..start + chunk.len() * per].to_vec(), chunk.iter().map(|&l| l as usize).collect())
                })
                .collect();
            session.borrow_mut().config = cfg;
            let stats = run_chunk(&session, &mut model, cfg, batches, fused_ok).await?;
            session.borrow_mut().examples += stats.examples as u64;
            *net.borrow_mut() = Some(model);
            Ok(JsValue::from_f64(stats.losses.iter().map(|&l| l as f64).sum::<f64>() / stats.losses.len().max(1) as f64))
        })
    }

    /// Changes trainer settings (any of `{method, learningRate, momentum, batchSize, l1, l2, beta1,
    /// beta2, rho, eps}`; the others stay). Switching the method starts its state afresh. Returns
    /// the full settings.
    #[wasm_bindgen(js_name = setTrainer)]
    pub fn set_trainer(&self, config: JsValue) -> Result<JsValue, JsValue> {
        let mut s = self.session.borrow_mut();
        let cfg = parse_config(config, s.config)?;
        s.config = cfg;
        if let Some(opt) = s.opt.as_mut() {
            opt.set_config(cfg);
        }
        if let Some(f) = s.fused.as_mut() {
            f.set_config(cfg);
        }
        Ok(trainer_js(&cfg).into())
    }

    /// Decodes a dataset from its files (`files`: an object from each path that `datasetFiles`
    /// lists to its bytes) and makes it the training data. Throws with the file and the problem if
    /// one is missing or corrupt; the previous dataset then stays.
    #[wasm_bindgen(js_name = loadDataset)]
    pub fn load_dataset(&self, name: &str, files: &Object, max_train_sheets: Option<u32>) -> Result<JsValue, JsValue> {
        let (train_set, test_set) = decode_dataset(name, files, max_train_sheets)?;
        self.set_data(name, train_set, test_set)
    }

    /// 2-D points as the dataset (`points`: x0, y0, x1, y1, ...; `labels`: one class each), for
    /// both training and testing.
    #[wasm_bindgen(js_name = loadPoints)]
    pub fn load_points(&self, points: Vec<f32>, labels: Vec<u8>) -> Result<JsValue, JsValue> {
        if points.len() != 2 * labels.len() || labels.is_empty() {
            return Err(js_err(format!("data: {} labels need {} coordinates, got {}", labels.len(), 2 * labels.len(), points.len())));
        }
        if points.iter().any(|v| !v.is_finite()) {
            return Err(js_err("data: a point has a non-finite coordinate"));
        }
        let pts: Vec<(f32, f32, u8)> = points.chunks(2).zip(&labels).map(|(p, &l)| (p[0], p[1], l)).collect();
        let d = data::points(&pts);
        self.set_data("points", d.clone(), d)
    }

    fn set_data(&self, name: &str, train_set: Dataset, test_set: Dataset) -> Result<JsValue, JsValue> {
        let mut s = self.session.borrow_mut();
        // The same data order on every load: a run can be repeated exactly.
        s.sampler = Some(Sampler::new(train_set.len(), 1));
        s.name = name.to_string();
        s.train = Some(train_set);
        s.test = Some(test_set);
        serde_wasm_bindgen::to_value(&dataset_info(&s)).map_err(js_err)
    }

    /// Runs `steps` training steps on the loaded dataset (random augmented minibatches, a new
    /// shuffle each epoch), then reads back once. Resolves to `{losses, correct, examples,
    /// batchSize, forwardMs, backwardMs, syncMs, epoch, totalExamples}`. On an error nothing of
    /// the chunk is kept.
    #[wasm_bindgen(js_name = trainSteps)]
    pub fn train_steps(&self, steps: u32) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let mut model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let (batches, cfg) = {
                let mut s = session.borrow_mut();
                let cfg = s.config;
                let Session { train: Some(train_set), sampler: Some(sampler), .. } = &mut *s else {
                    return Err(js_err("no dataset is loaded"));
                };
                let input = model.spec.input_shape();
                train_set.check_input(input).map_err(js_err)?;
                if let Some(&bad) = train_set.labels.iter().find(|&&l| l as usize >= model.spec.classes()) {
                    return Err(js_err(format!("data: the dataset has class {bad} but the network has {} classes", model.spec.classes())));
                }
                let batches: Vec<_> = (0..steps.max(1))
                    .map(|_| {
                        let idx = sampler.next(cfg.batch_size);
                        train_set.batch(&idx, input, Some(&mut sampler.rng))
                    })
                    .collect();
                (batches, cfg)
            };
            let stats = run_chunk(&session, &mut model, cfg, batches, fused_ok).await?;
            let mut s = session.borrow_mut();
            s.examples += stats.examples as u64;
            *net.borrow_mut() = Some(model);
            let out = Object::new();
            set(&out, "losses", Float32Array::from(stats.losses.as_slice()));
            set(&out, "correct", Uint32Array::from(stats.correct.as_slice()));
            set(&out, "examples", stats.examples as u32);
            set(&out, "batchSize", cfg.batch_size as u32);
            set(&out, "forwardMs", stats.forward_ms);
            set(&out, "backwardMs", stats.backward_ms);
            set(&out, "syncMs", stats.sync_ms);
            set(&out, "epoch", s.sampler.as_ref().map_or(0, |x| x.epoch) as u32);
            set(&out, "totalExamples", s.examples as f64);
            Ok(out.into())
        })
    }

    /// Class probabilities of `count` images of a split ('train' or 'test') from `start`
    /// (centre crops): `{probs: Float32Array(count x classes), labels: Uint8Array}`.
    pub fn evaluate(&self, split: String, start: u32, count: u32) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let (images, labels) = {
                let s = session.borrow();
                let d = split_of(&s, &split)?;
                d.check_input(model.spec.input_shape()).map_err(js_err)?;
                let (a, b) = (start as usize, (start as usize + count as usize).min(d.len()));
                if a >= b {
                    return Err(js_err(format!("evaluate: no images at {start}.. of the {} {split} images", d.len())));
                }
                let idx: Vec<usize> = (a..b).collect();
                let (x, _) = d.batch(&idx, model.spec.input_shape(), None);
                (x, d.labels[a..b].to_vec())
            };
            let probs = if fused_ok && cpu_train::applies(Backend::Cpu, &model.spec) {
                // Softmax of the scores, as train::probabilities.
                let k = model.spec.classes();
                let mut p = infer(&session, &model, &images, model.spec.score_layer(), true).await.map_err(js_err)?;
                p.chunks_mut(k).for_each(cpu_train::softmax_in_place);
                p
            } else {
                train::probabilities(&model, &images, labels.len()).await.map_err(js_err)?
            };
            let out = Object::new();
            set(&out, "probs", Float32Array::from(probs.as_slice()));
            set(&out, "labels", Uint8Array::from(labels.as_slice()));
            Ok(out.into())
        })
    }

    /// One image of a split as the network takes it (centre crop, CHW floats).
    pub fn example(&self, split: &str, index: u32) -> Result<Float32Array, JsValue> {
        let net = self.net.borrow();
        let model = net.as_ref().ok_or_else(|| js_err("no network is loaded"))?;
        let s = self.session.borrow();
        let d = split_of(&s, split)?;
        d.check_input(model.spec.input_shape()).map_err(js_err)?;
        if index as usize >= d.len() {
            return Err(js_err(format!("there is no {split} image {index} (the split has {})", d.len())));
        }
        let mut out = vec![];
        d.example(index as usize, model.spec.input_shape(), None, &mut out);
        Ok(Float32Array::from(out.as_slice()))
    }

    /// Whole images of a split, for drawing: `{shape: [c, h, w], data: Float32Array (CHW each),
    /// labels: Uint8Array}`.
    pub fn images(&self, split: &str, start: u32, count: u32) -> Result<JsValue, JsValue> {
        let s = self.session.borrow();
        let d = split_of(&s, split)?;
        let (a, b) = (start as usize, (start as usize + count as usize).min(d.len()));
        let data: Vec<f32> = (a..b.max(a)).flat_map(|i| d.image(i)).collect();
        let out = Object::new();
        set(&out, "shape", shape_js(&d.shape));
        set(&out, "data", Float32Array::from(data.as_slice()));
        set(&out, "labels", Uint8Array::from(&d.labels[a..b.max(a)]));
        Ok(out.into())
    }

    /// The output of layer `layer` for N inputs (`inputs`: N images, CHW each), N x its size, in
    /// one pass: the 2-D demo's decision regions (the last layer over a grid) and warped grid (a
    /// hidden layer).
    #[wasm_bindgen(js_name = forwardBatch)]
    pub fn forward_batch(&self, inputs: Vec<f32>, layer: u32) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let out = infer(&session, &model, &inputs, layer as usize, fused_ok).await.map_err(js_err)?;
            Ok(Float32Array::from(out.as_slice()).into())
        })
    }

    /// One image's class probabilities (the last layer's output), read back to JS.
    pub fn forward(&self, input: Vec<f32>) -> Promise {
        let (net, session) = (self.net.clone(), self.session.clone());
        let fused_ok = self.backend == Backend::Cpu;
        future_to_promise(async move {
            let model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let last = model.spec.layers.len() - 1;
            let out = infer(&session, &model, &input, last, fused_ok).await.map_err(js_err)?;
            Ok(Float32Array::from(out.as_slice()).into())
        })
    }

    /// Every layer's output for one image (forward only), in one read-back.
    pub fn activations(&self, input: Vec<f32>) -> Promise {
        let net = self.net.clone();
        future_to_promise(async move {
            let model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let x = model.input_tensor(&input).map_err(js_err)?;
            let outs = model.forward_all(x).into_iter().map(|t| t.flatten::<1>(0, 3)).collect();
            let values = convlens_core::read_all(outs).await.map_err(js_err)?;
            Ok(values.iter().map(|v| JsValue::from(Float32Array::from(v.as_slice()))).collect::<Array>().into())
        })
    }

    /// Panics on purpose, to test that the page survives an engine panic.
    #[wasm_bindgen(js_name = debugPanic)]
    pub fn debug_panic(&self) {
        panic!("debugPanic was called (a deliberate test panic)");
    }
}
