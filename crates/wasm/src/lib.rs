//! The browser facade: a thin wasm-bindgen layer over convlens-core, run inside a Web Worker.
//! See docs/ENGINE_API.md for the JS contract. Every fallible call returns a JS `Error` with the
//! engine's message; a panic is reported through the hook given to `installPanicHook`, after which
//! the page restarts the worker.

mod dataset;
mod optimize;
mod shards;

use std::cell::RefCell;
use std::rc::Rc;

use convlens_core::backend::{self, Backend};
#[cfg(feature = "webgpu")]
use convlens_core::burn::tensor::Device;
use convlens_core::data::{self, Dataset};
use convlens_core::jobs::{self, Budget, Inputs};
use convlens_core::session::{Session, Summary};
use convlens_core::train::TrainConfig;
use convlens_core::vis::attribution::{self, Display, Samples};
use convlens_core::vis::layers::{self, Values};
use convlens_core::{Net, Objective};
use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint8Array, Uint32Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

thread_local! {
    static PANIC_CALLBACK: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
    #[cfg(feature = "webgpu")]
    static GPU_DEVICE: RefCell<Option<Device>> = const { RefCell::new(None) };
    /// Decoded datasets by the worker's key (name, source, sheets), shared by its sessions (the
    /// elements of one page) while any of them holds one: weak, so the last to let go frees it.
    static DATASETS: RefCell<std::collections::HashMap<String, (std::rc::Weak<Dataset>, std::rc::Weak<Dataset>)>> = RefCell::new(Default::default());
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
        js_err("weights: this safetensors file carries no network spec (ConvLens writes one into every file it saves); put the network it was saved from into the Network box, Apply, and open the file again")
    })
}

/// Opens a user's model from the files given together (`[{name, bytes}]`: a .onnx, a TF.js
/// model.json with its .bin shards, a .tflite, a ConvLens .safetensors or spec .json with its
/// weights, and a .txt of class names), with the input normalization (`mean`/`std`, else the
/// file's own): `{spec, weights (safetensors, what `load` takes), info}` (crates/core: import.rs).
/// Every size and op is checked before anything is built. In the CPU build only: the importers
/// (onnx-ir among them) would add a sixth to the WebGPU build; www/worker.js opens every model's
/// files in the CPU build, whatever the session's backend.
#[cfg(feature = "cpu")]
#[wasm_bindgen(js_name = importModel)]
pub fn import_model(files: js_sys::Array, mean: Option<Vec<f64>>, std: Option<Vec<f64>>) -> Result<JsValue, JsValue> {
    let normalize = match (mean, std) {
        (Some(mean), Some(std)) => Some(convlens_core::import::Normalize { mean, std }),
        _ => None,
    };
    let mut list = vec![];
    for f in files.iter() {
        let name = Reflect::get(&f, &"name".into())?.as_string().ok_or_else(|| js_err("a file without a name"))?;
        let bytes = Uint8Array::new(&Reflect::get(&f, &"bytes".into())?).to_vec();
        list.push((name, bytes));
    }
    let model = convlens_core::import::open_files(&list, normalize).map_err(js_err)?;
    let weights = convlens_core::weights::save(&model.spec, &model.weights).map_err(js_err)?;
    let out = Object::new();
    let set = |k: &str, v: JsValue| Reflect::set(&out, &JsValue::from_str(k), &v).map(|_| ());
    set("spec", JsValue::from_str(&model.spec.json.to_string()))?;
    set("weights", Uint8Array::from(weights.as_slice()).into())?;
    set("info", js_sys::JSON::parse(&model.info.to_string())?)?;
    Ok(out.into())
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// A training error; a divergence carries the learning rate the engine suggests (`suggestedRate`)
/// so that the page can offer it.
fn train_err(e: convlens_core::Error) -> JsValue {
    let rate = if let convlens_core::Error::Diverged(_, rate) = &e { *rate } else { None };
    let err = js_err(e);
    if let Some(rate) = rate {
        let _ = Reflect::set(&err, &"suggestedRate".into(), &rate.into());
    }
    err
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

/// The engine of one page: a [`Session`] (network, dataset, trainer, jobs) behind JS values.
/// The engine of one page: a [`Session`] (network, dataset, trainer, jobs) behind JS values.
#[wasm_bindgen]
pub struct Engine {
    session: Rc<Session>,
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

/// Plain data (a summary, a schema) as a JS object.
fn to_js(v: &impl Serialize) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

/// The trainer settings as JS sees them (eps: the method's when automatic).
fn trainer_js(c: &TrainConfig) -> Result<JsValue, JsValue> {
    let mut v = c.to_values();
    v.insert("eps".into(), serde_json::json!(c.eps.unwrap_or(c.method.default_eps())));
    to_js(&v)
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

/// Copies `parts` into ONE Float32Array and returns a view into it per part: one buffer to
/// transfer instead of one per tensor (a probe has dozens). `into`: a buffer given back by the
/// caller (`EngineClient.release`), used when large enough: a fresh JS buffer costs ~30 times
/// the copy into one already in use (its pages are new), which made half of a small net's frame.
fn pack(parts: &[&[f32]], into: Option<Float32Array>) -> Vec<Float32Array> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let buf = into.filter(|b| b.length() as usize >= total).unwrap_or_else(|| Float32Array::new_with_length(total as u32));
    let mut off = 0u32;
    parts
        .iter()
        .map(|p| {
            let end = off + p.len() as u32;
            let view = buf.subarray(off, end);
            view.copy_from(p);
            off = end;
            view
        })
        .collect()
}

/// The layer view's probe as JS: every array a view into one buffer (the weights' values, when
/// sent, into a second one, which the client keeps while the weights stay the same).
/// `with_weights` false: each weight's `data` is null (the caller holds `weightsVersion`'s).
fn probe_js(p: &layers::Probe, version: u64, with_weights: bool, into: Option<Float32Array>) -> Object {
    let mut parts: Vec<&[f32]> = vec![];
    let mut weights: Vec<&[f32]> = vec![];
    if let Some(probs) = &p.probs {
        parts.push(probs);
    }
    for l in &p.layers {
        parts.extend([l.act.data.as_slice(), l.grad.data.as_slice()]);
        for w in &l.weights {
            parts.push(&w.grad.data);
            weights.push(&w.value.data);
        }
    }
    let mut views = pack(&parts, into).into_iter();
    let mut weight_views = if with_weights { pack(&weights, None) } else { vec![] }.into_iter();
    let out = Object::new();
    set(&out, "objective", p.objective);
    set(&out, "weightsVersion", version as f64);
    set(&out, "probs", if p.probs.is_some() { views.next().map(JsValue::from) } else { None }.unwrap_or(JsValue::NULL));
    let layers_js = Array::new();
    for l in &p.layers {
        let o = Object::new();
        set(&o, "shape", shape_js(&l.act.shape));
        let put = |obj: &Object, keys: [&str; 3], v: &Values, view: Option<Float32Array>| {
            set(obj, keys[0], view.map(JsValue::from).unwrap_or(JsValue::NULL));
            set(obj, keys[1], v.min);
            set(obj, keys[2], v.max);
        };
        put(&o, ["act", "actMin", "actMax"], &l.act, views.next());
        put(&o, ["grad", "gradMin", "gradMax"], &l.grad, views.next());
        let ws = Array::new();
        for w in &l.weights {
            let wo = Object::new();
            set(&wo, "name", w.name.as_str());
            set(&wo, "shape", shape_js(&w.value.shape));
            put(&wo, ["grad", "gradMin", "gradMax"], &w.grad, views.next());
            put(&wo, ["data", "min", "max"], &w.value, weight_views.next());
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
            #[cfg(feature = "cpu")]
            Backend::Cpu => backend::cpu(),
            #[cfg(not(feature = "cpu"))]
            Backend::Cpu => {
                return Err(js_err(
                    "this engine is the WebGPU build (convlens_webgpu): sessions on the CPU run in the CPU build (convlens_cpu)",
                ));
            }
            #[cfg(not(feature = "webgpu"))]
            Backend::Gpu => {
                return Err(js_err(
                    "this engine is the CPU build (convlens_cpu): sessions on WebGPU run in the WebGPU build (convlens_webgpu)",
                ));
            }
            #[cfg(feature = "webgpu")]
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
        Ok(Engine { session: Rc::new(Session::new(which, device)) })
    }

    /// 'webgpu' or 'cpu'.
    pub fn backend(&self) -> String {
        self.session.backend().as_str().to_string()
    }

    /// Builds a network from a spec and safetensors weights (or a random init from `seed`).
    /// On error the previous network stays loaded.
    pub fn load(&self, spec: &str, weights: Option<Vec<u8>>, seed: f64) -> Result<JsValue, JsValue> {
        let net = convlens_core::build(spec, weights.as_deref(), seed as u64, self.session.device()).map_err(js_err)?;
        self.install(net, None)
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
        self.install(Net::with_weights(model.spec, model.weights, self.session.device()), Some(spec_json))
    }

    /// Builds a network from a `.tflite` file (the published quantized MobileNetV2) and optional
    /// class names; resolves like `loadOpList` (its `spec` reloads with `exportWeights`' bytes).
    #[wasm_bindgen(js_name = loadTflite)]
    pub fn load_tflite(&self, bytes: Uint8Array, labels: Option<String>) -> Result<JsValue, JsValue> {
        let model = convlens_core::tflite::read(&bytes.to_vec()).map_err(js_err)?;
        let spec = model.spec(labels.map(|t| t.lines().map(str::to_string).collect())).map_err(js_err)?;
        let w = model.layer_weights(&spec).map_err(js_err)?;
        let spec_json = spec.json.to_string();
        self.install(Net::with_weights(spec, w, self.session.device()), Some(spec_json))
    }

    /// Builds a network from a TFLite-style op list (MobileNetV2's `mobilenet_v2_f32.json`), its
    /// safetensors and optional class names (one per line); resolves like `load`, plus `spec`
    /// (with the same safetensors it reloads through `load`, after a restart).
    #[wasm_bindgen(js_name = loadOpList)]
    pub fn load_op_list(&self, op_list: &str, weights: Uint8Array, labels: Option<String>) -> Result<JsValue, JsValue> {
        let bytes = weights.to_vec();
        let st = convlens_core::weights::read(&bytes).map_err(js_err)?;
        let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
        let names = labels.map(|t| t.lines().map(str::to_string).collect());
        let spec = convlens_core::oplist::spec(op_list, &shape, names).map_err(js_err)?;
        let w = convlens_core::weights::load(&spec, &bytes).map_err(js_err)?;
        let spec_json = spec.json.to_string();
        self.install(Net::with_weights(spec, w, self.session.device()), Some(spec_json))
    }

    /// The current weights as a safetensors file (Promise<Uint8Array>).
    #[wasm_bindgen(js_name = exportWeights)]
    pub fn export_weights(&self) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let bytes = session.export_weights().await.map_err(js_err)?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// Activations, gradients and weights of every layer for one image (Promise<Probe>), every
    /// array a view into one buffer (`into`'s when large enough; the weights' values into a
    /// second). `held`: the `weightsVersion` of the weights the caller already has; while the
    /// weights are still those, each weight's `data` is null.
    pub fn probe(&self, input: Vec<f32>, objective: JsValue, held: Option<f64>, into: Option<Float32Array>) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let objective: ObjectiveJs = serde_wasm_bindgen::from_value(objective)
                .map_err(|e| js_err(format!("objective: {e}; expected {{kind:'class', index}}, {{kind:'prob', index}}, {{kind:'neuron', layer, index}}, {{kind:'channel', layer, channel}} or {{kind:'loss', label}}")))?;
            let before = session.weights_version();
            let p = session.probe(&input, &objective.into()).await.map_err(js_err)?;
            let version = session.weights_version();
            // Weights that changed while it ran (a training chunk between its steps) are sent.
            let unchanged = version == before && held == Some(version as f64);
            Ok(probe_js(&p, version, !unchanged, into).into())
        })
    }

    /// Trains on the given examples (`images`: N images, CHW each; `labels`: N classes) in
    /// minibatches, with the trainer settings updated by `config` (see `setTrainer`); resolves to the
    /// mean loss. The optimizer's state persists until the next `load`. On an error (a diverging
    /// learning rate, a bad label) the weights stay as they were before the call.
    pub fn train(&self, images: Vec<f32>, labels: Vec<u32>, config: JsValue) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let patch = settings_json(&config, "trainer")?;
            let loss = session.train(&images, &labels, &patch, &now).await.map_err(js_err)?;
            Ok(JsValue::from_f64(loss))
        })
    }

    /// Changes trainer settings (any keys of `settingsSchema('trainer')`: method, learningRate,
    /// momentum, batchSize, l1, l2, beta1, beta2, rho, eps, seed; the others stay). Switching the
    /// method starts its state afresh. Returns the full settings.
    #[wasm_bindgen(js_name = setTrainer)]
    pub fn set_trainer(&self, config: JsValue) -> Result<JsValue, JsValue> {
        let cfg = self.session.set_trainer(&settings_json(&config, "trainer")?).map_err(js_err)?;
        trainer_js(&cfg)
    }

    /// Decodes a dataset from its files (`files`: an object from each path that `datasetFiles`
    /// lists to its bytes) and makes it the training data. Throws with the file and the problem if
    /// one is missing or corrupt; the previous dataset then stays.
    /// `key`: where the worker fetched it from; another session of this worker loading the same
    /// key takes the same decoded splits (`useDataset`).
    #[wasm_bindgen(js_name = loadDataset)]
    pub fn load_dataset(&self, name: &str, files: &Object, max_train_sheets: Option<u32>, key: Option<String>) -> Result<JsValue, JsValue> {
        let (train_set, test_set) = decode_dataset(name, files, max_train_sheets)?;
        let (train_set, test_set) = (Rc::new(train_set), Rc::new(test_set));
        if let Some(key) = key {
            DATASETS.with(|d| {
                let mut d = d.borrow_mut();
                d.retain(|_, (a, b)| a.strong_count() > 0 && b.strong_count() > 0);
                d.insert(key, (Rc::downgrade(&train_set), Rc::downgrade(&test_set)));
            });
        }
        to_js(&self.session.set_shared_data(name, train_set, test_set))
    }

    /// Makes the dataset another session of this worker decoded under `key` this session's too,
    /// without copying it; null if no session holds it now.
    #[wasm_bindgen(js_name = useDataset)]
    pub fn use_dataset(&self, name: &str, key: &str) -> Result<JsValue, JsValue> {
        let found = DATASETS.with(|d| d.borrow().get(key).and_then(|(a, b)| Some((a.upgrade()?, b.upgrade()?))));
        match found {
            Some((train_set, test_set)) => to_js(&self.session.set_shared_data(name, train_set, test_set)),
            None => Ok(JsValue::NULL),
        }
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
        to_js(&self.session.set_data("points", d.clone(), d))
    }

    /// Runs `steps` training steps on the loaded dataset (random augmented minibatches, a new
    /// shuffle each epoch), then reads back once. Resolves to `{losses, correct, examples,
    /// batchSize, forwardMs, backwardMs, syncMs, pooled, epoch, totalExamples}` (`pooled`: examples
    /// computed by pool workers, `setTrainPool`; the times are for the others). On an error nothing of
    /// the chunk is kept.
    #[wasm_bindgen(js_name = trainSteps)]
    pub fn train_steps(&self, steps: u32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let r = session.train_steps(steps as usize, &now).await.map_err(train_err)?;
            let out = Object::new();
            set(&out, "losses", Float32Array::from(r.stats.losses.as_slice()));
            set(&out, "correct", Uint32Array::from(r.stats.correct.as_slice()));
            set(&out, "examples", r.stats.examples as u32);
            set(&out, "batchSize", r.batch_size as u32);
            set(&out, "forwardMs", r.stats.forward_ms);
            set(&out, "backwardMs", r.stats.backward_ms);
            set(&out, "syncMs", r.stats.sync_ms);
            set(&out, "pooled", r.stats.pooled as u32);
            set(&out, "epoch", r.epoch as u32);
            set(&out, "totalExamples", r.total_examples as f64);
            Ok(out.into())
        })
    }

    /// Shares the training steps' shards with pool workers (data-parallel training,
    /// docs/ENGINE_API.md): `run(worker, task)` posts `task` to pool worker `worker` (0 to
    /// `workers` - 1) and returns a promise of its answer (`trainShards` there). Null: this engine
    /// alone. The weights come out the same either way.
    #[wasm_bindgen(js_name = setTrainPool)]
    pub fn set_train_pool(&self, run: Option<js_sys::Function>, workers: u32) {
        let pool = run.filter(|_| workers > 0).map(|run| Rc::new(shards::JsPool { run, workers: workers as usize }) as Rc<_>);
        self.session.set_shard_pool(pool);
    }

    /// How many shards a training step of the current net and batch size has (how many workers
    /// it can use; 1 when it is not cut).
    #[wasm_bindgen(js_name = trainShardCount)]
    pub fn train_shard_count(&self) -> u32 {
        self.session.shard_count() as u32
    }

    /// As a pool worker: a task another engine's `setTrainPool` function sent; resolves to its
    /// shards' gradients, losses and scores.
    #[wasm_bindgen(js_name = trainShards)]
    pub fn train_shards(&self, task: JsValue) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let task = shards::task_from_js(&task).map_err(js_err)?;
            let out = session.train_shards(&task).await.map_err(js_err)?;
            Ok(shards::out_js(&out))
        })
    }

    /// Judges the most recent training step now (after a Step, or when training pauses): if it
    /// diverged, the weights come back to before it and the promise rejects saying so.
    #[wasm_bindgen(js_name = checkLastStep)]
    pub fn check_last_step(&self) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            session.check_last_step(&now).await.map_err(train_err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Class probabilities of `count` images of a split ('train' or 'test') from `start`
    /// (centre crops): `{probs: Float32Array(count x classes), labels: Uint8Array}`.
    pub fn evaluate(&self, split: String, start: u32, count: u32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let (probs, labels) = session.evaluate(&split, start as usize, count as usize).await.map_err(js_err)?;
            let out = Object::new();
            set(&out, "probs", Float32Array::from(probs.as_slice()));
            set(&out, "labels", Uint8Array::from(labels.as_slice()));
            Ok(out.into())
        })
    }

    /// One image of a split as the network takes it (centre crop, CHW floats).
    pub fn example(&self, split: &str, index: u32) -> Result<Float32Array, JsValue> {
        let x = self.session.example(split, index as usize).map_err(js_err)?;
        Ok(Float32Array::from(x.as_slice()))
    }

    /// Whole images of a split, for drawing: `{shape: [c, h, w], data: Float32Array (CHW each),
    /// labels: Uint8Array}`.
    pub fn images(&self, split: &str, start: u32, count: u32) -> Result<JsValue, JsValue> {
        let im = self.session.images(split, start as usize, count as usize).map_err(js_err)?;
        let out = Object::new();
        set(&out, "shape", shape_js(&im.shape));
        set(&out, "data", Float32Array::from(im.data.as_slice()));
        set(&out, "labels", Uint8Array::from(im.labels.as_slice()));
        Ok(out.into())
    }

    /// The output of layer `layer` for N inputs (`inputs`: N images, CHW each), N x its size, in
    /// one pass: the 2-D demo's decision regions (the last layer over a grid) and warped grid (a
    /// hidden layer).
    #[wasm_bindgen(js_name = forwardBatch)]
    pub fn forward_batch(&self, inputs: Vec<f32>, layer: u32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let out = session.infer(&inputs, layer as usize).await.map_err(js_err)?;
            Ok(Float32Array::from(out.as_slice()).into())
        })
    }

    /// One image's class probabilities (the last layer's output), read back to JS.
    pub fn forward(&self, input: Vec<f32>) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let out = session.forward(&input).await.map_err(js_err)?;
            Ok(Float32Array::from(out.as_slice()).into())
        })
    }

    /// Every layer's output for one image (forward only), in one read-back: views into one buffer
    /// (`into`'s when large enough).
    pub fn activations(&self, input: Vec<f32>, into: Option<Float32Array>) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let views = session.activations_with(&input, |parts| pack(parts, into)).await.map_err(js_err)?;
            Ok(views.into_iter().map(JsValue::from).collect::<Array>().into())
        })
    }

    /// One attribution map for one image (Promise<{map, shape, abs, signed, display, value,
    /// layerMap?, layerShape?, delta?}>): `map` is the raw [C,H,W] attribution, `abs` and `signed`
    /// its [H,W] views (max |v| over channels; channel sum), `display` the one the method is
    /// usually shown with. `settings`: any keys of `settingsSchema('attribution')`.
    /// `samples` and `values`: SmoothGrad's or integrated gradients' per-sample gradients and
    /// end values, when a pool of engines computed them (`attributeSamples`, the parts in order):
    /// the same map, bit for bit.
    pub fn attribute(
        &self,
        input: Vec<f32>,
        objective: JsValue,
        settings: JsValue,
        samples: Option<Vec<f32>>,
        values: Option<Vec<f32>>,
    ) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let objective: ObjectiveJs = serde_wasm_bindgen::from_value(objective).map_err(|e| js_err(format!("objective: {e}")))?;
            let given = settings_json(&settings, "attribution")?;
            let samples = samples.map(|grads| Samples { grads, values: values.unwrap_or_default() });
            let (a, settings) = session.attribute(&input, &objective.into(), &given, samples).await.map_err(js_err)?;
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

    /// Part `part` of `parts` of SmoothGrad's or integrated gradients' per-sample gradients
    /// (Promise<{grads, values, start, end, total}>: samples start..end of total, one image after
    /// another; part 0's end values); total is 0 for a method of one pass, which does not split.
    #[wasm_bindgen(js_name = attributeSamples)]
    pub fn attribute_samples(&self, input: Vec<f32>, objective: JsValue, settings: JsValue, part: usize, parts: usize) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let objective: ObjectiveJs = serde_wasm_bindgen::from_value(objective).map_err(|e| js_err(format!("objective: {e}")))?;
            let given = settings_json(&settings, "attribution")?;
            let (samples, range, total) =
                session.attribute_samples(&input, &objective.into(), &given, part, parts).await.map_err(js_err)?;
            let out = Object::new();
            set(&out, "grads", Float32Array::from(samples.grads.as_slice()));
            set(&out, "values", Float32Array::from(samples.values.as_slice()));
            set(&out, "start", range.start as u32);
            set(&out, "end", range.end as u32);
            set(&out, "total", total as u32);
            Ok(out.into())
        })
    }

    /// Counts loads and training chunks: when it changes, the weights did.
    #[wasm_bindgen(js_name = weightsVersion)]
    pub fn weights_version(&self) -> f64 {
        self.session.weights_version() as f64
    }

    /// Starts an occlusion of one image (`settings`: any keys of `settingsSchema('occlusion')`:
    /// window, stride, fill, class, logit); resolves to its state ({id, done: 0, total, ny, nx,
    /// base, ...}). Run it with `occlusionStep(id, max)`, drop it with `optimizeCancel(id)`.
    /// `part` [k, n] (optional): this job evaluates the k-th of n runs of positions (its state's
    /// `part` says which: [start, end]); part 0's job takes every part's grid with
    /// `occlusionMerge`.
    #[wasm_bindgen(js_name = occlusionStart)]
    pub fn occlusion_start(&self, input: Vec<f32>, settings: JsValue, part: Option<Vec<u32>>) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let given = settings_json(&settings, "occlusion")?;
            let part = match part.as_deref() {
                None => None,
                Some(&[k, n]) => Some((k as usize, n as usize)),
                Some(other) => return Err(js_err(format!("part: expected [k, n], got {} numbers", other.len()))),
            };
            let (id, p) =
                session.start_job("occlusion", Inputs { image: &input, part, ..Default::default() }, &given).await.map_err(js_err)?;
            let js = optimize::occlusion_js(&p);
            set(&js, "id", id);
            Ok(js.into())
        })
    }

    /// Evaluates up to `max` more patch positions of occlusion `id` in one batch; resolves to its
    /// state (with `map`, Captum's per-pixel [H,W] map, once done).
    #[wasm_bindgen(js_name = occlusionStep)]
    pub fn occlusion_step(&self, id: u32, max: u32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let p = session.step_job(id, Budget::Items(max as usize), &now).await.map_err(js_err)?;
            let js = optimize::occlusion_js(&p);
            set(&js, "id", id);
            Ok(js.into())
        })
    }

    /// Occlusion `id` (part 0 of a split one) takes every position's value (the parts' grids
    /// in order); resolves to its state, with the map.
    #[wasm_bindgen(js_name = occlusionMerge)]
    pub fn occlusion_merge(&self, id: u32, grid: Vec<f32>) -> Result<JsValue, JsValue> {
        let p = self.session.occlusion_merge(id, grid).map_err(js_err)?;
        let js = optimize::occlusion_js(&p);
        set(&js, "id", id);
        Ok(js.into())
    }

    /// Memory now: `{wasmBytes, gpu: {allocations, bytesInUse, bytesReserved} | null}` (the wasm
    /// linear memory, which only grows; the GPU allocator's state on WebGPU).
    pub fn memory(&self) -> Result<JsValue, JsValue> {
        let out = Object::new();
        #[cfg(target_arch = "wasm32")]
        set(&out, "wasmBytes", (core::arch::wasm32::memory_size(0) * 65536) as f64);
        let gpu = match self.session.gpu_memory() {
            Some(m) => to_js(&m)?,
            None => JsValue::NULL,
        };
        set(&out, "gpu", gpu);
        Ok(out.into())
    }

    /// Panics on purpose, to test that the page survives an engine panic.
    #[wasm_bindgen(js_name = debugPanic)]
    pub fn debug_panic(&self) {
        panic!("debugPanic was called (a deliberate test panic)");
    }

    /// Traps without panicking (no panic hook runs), as an out-of-bounds access would: for tests.
    #[wasm_bindgen(js_name = debugTrap)]
    pub fn debug_trap(&self) {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
    }
}

impl Engine {
    /// Makes `net` the current network; returns its summary (with `spec`, the spec it became,
    /// for an imported model).
    fn install(&self, net: Net, spec: Option<String>) -> Result<JsValue, JsValue> {
        let summary: Summary = self.session.load(net);
        let js = to_js(&summary)?;
        if let Some(spec) = spec {
            set(js.unchecked_ref(), "spec", spec);
        }
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

/// A technique's settings, described for the page's forms (see `convlens_core::jobs::TECHNIQUES`):
/// `{technique, fields: [{key, label, type: {kind, options?}, default, min, max, step, unit, help,
/// group, nullable}], presets: [{name, label, values}]}`.
#[wasm_bindgen(js_name = settingsSchema)]
pub fn settings_schema(technique: &str) -> Result<JsValue, JsValue> {
    to_js(&jobs::schema(technique).map_err(js_err)?.describe())
}

/// A technique's settings from a page's URL (`given`: an object of strings or values), each
/// clamped to its range, unknown keys ignored: what the page puts in its form.
#[wasm_bindgen(js_name = settingsFromUrl)]
pub fn settings_from_url(technique: &str, given: JsValue) -> Result<JsValue, JsValue> {
    let schema = jobs::schema(technique).map_err(js_err)?;
    let given = settings_json(&given, technique)?;
    to_js(&schema.from_url(&given))
}
