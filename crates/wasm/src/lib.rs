//! The browser facade: a thin wasm-bindgen layer over convlens-core, run inside a Web Worker.
//! See docs/ENGINE_API.md for the JS contract. Every fallible call returns a JS `Error` with the
//! engine's message; a panic is reported through the hook given to `installPanicHook`, after which
//! the page restarts the worker.

use std::cell::RefCell;
use std::rc::Rc;

use convlens_core::backend::{self, Backend};
use convlens_core::burn::tensor::Device;
use convlens_core::vis::layers::{self, Values};
use convlens_core::train::{self, Sgd, SgdConfig};
use convlens_core::{Net, Objective};
use js_sys::{Array, Float32Array, Object, Promise, Reflect, Uint8Array};
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
    if let Some(console) = console {
        if let Ok(error) = Reflect::get(&console, &"error".into()) {
            if let Ok(f) = error.dyn_into::<js_sys::Function>() {
                let _ = f.call1(&console, &JsValue::from_str(message));
            }
        }
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
    convlens_core::weights::embedded_spec(bytes)
        .map_err(js_err)?
        .ok_or_else(|| js_err("weights: this safetensors file carries no network spec; paste the spec into the Network box and load the weights with it"))
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

#[wasm_bindgen]
pub struct Engine {
    backend: Backend,
    device: Device,
    net: Rc<RefCell<Option<Net>>>,
    /// The optimizer's state (momentum), reset when a network is loaded.
    sgd: Rc<RefCell<Option<Sgd>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrainConfig {
    batch_size: usize,
    learning_rate: f64,
    #[serde(default)]
    momentum: f64,
    #[serde(default)]
    l2: f64,
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
    Neuron { layer: usize, index: usize },
    Channel { layer: usize, channel: usize },
    Loss { label: usize },
}

impl From<ObjectiveJs> for Objective {
    fn from(o: ObjectiveJs) -> Objective {
        match o {
            ObjectiveJs::Class { index } => Objective::Class(index),
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
    set(
        &out,
        "probs",
        p.probs.as_ref().map(|v| JsValue::from(Float32Array::from(v.as_slice()))).unwrap_or(JsValue::NULL),
    );
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
        let which = Backend::parse(&backend)
            .ok_or_else(|| js_err(format!("unknown backend '{backend}'; expected 'webgpu' or 'cpu'")))?;
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
        Ok(Engine { backend: which, device, net: Rc::new(RefCell::new(None)), sgd: Rc::new(RefCell::new(None)) })
    }

    /// 'webgpu' or 'cpu'.
    pub fn backend(&self) -> String {
        self.backend.as_str().to_string()
    }

    /// Builds a network from a spec and safetensors weights (or a random init from `seed`).
    /// On error the previous network stays loaded.
    pub fn load(&self, spec: &str, weights: Option<Vec<u8>>, seed: f64) -> Result<JsValue, JsValue> {
        let net = convlens_core::build(spec, weights.as_deref(), seed as u64, &self.device).map_err(js_err)?;
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
                        convlens_core::spec::LayerKind::Conv { activation, .. }
                        | convlens_core::spec::LayerKind::Fc { activation, .. } => activation.map(|a| a.as_str().to_string()),
                        _ => None,
                    },
                    desc: l.describe(),
                    shape: l.out_shape,
                    params: l.param_count(),
                    weights: l.params().into_iter().map(|p| WeightInfo { name: p.name, shape: p.shape }).collect(),
                })
                .collect(),
        };
        let js = serde_wasm_bindgen::to_value(&summary).map_err(js_err)?;
        *self.net.borrow_mut() = Some(net);
        *self.sgd.borrow_mut() = None;
        Ok(js)
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
        let net = self.net.clone();
        future_to_promise(async move {
            let objective: ObjectiveJs = serde_wasm_bindgen::from_value(objective)
                .map_err(|e| js_err(format!("objective: {e}; expected {{kind:'class', index}}, {{kind:'neuron', layer, index}}, {{kind:'channel', layer, channel}} or {{kind:'loss', label}}")))?;
            let net = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let p = layers::probe(&net, &input, &objective.into()).await.map_err(js_err)?;
            Ok(probe_js(&p).into())
        })
    }

    /// SGD over the given examples (`images`: N images, CHW each; `labels`: N classes) in
    /// minibatches of `config.batchSize` with `{learningRate, momentum, l2}`; resolves to the mean
    /// loss. The momentum persists between calls until the next `load`. On an error (a diverging
    /// learning rate, a bad label) the weights stay as they were before the failing step.
    pub fn train(&self, images: Vec<f32>, labels: Vec<u32>, config: JsValue) -> Promise {
        let (net, sgd) = (self.net.clone(), self.sgd.clone());
        future_to_promise(async move {
            let config: TrainConfig = serde_wasm_bindgen::from_value(config)
                .map_err(|e| js_err(format!("train: {e}; expected {{batchSize, learningRate, momentum, l2}}")))?;
            if config.batch_size == 0 || !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
                return Err(js_err("train: batchSize must be positive and learningRate a positive number"));
            }
            let mut model = net.borrow().clone().ok_or_else(|| js_err("no network is loaded"))?;
            let cfg = SgdConfig { learning_rate: config.learning_rate, momentum: config.momentum, l2: config.l2 };
            let mut opt = sgd.borrow_mut().take().unwrap_or_else(|| Sgd::new(&model, cfg));
            opt.config = cfg;
            let per = model.spec.input_shape().iter().product::<usize>();
            let labels: Vec<usize> = labels.into_iter().map(|l| l as usize).collect();
            let (mut total, mut steps) = (0.0f64, 0usize);
            let mut result = Ok(());
            for (k, chunk) in labels.chunks(config.batch_size).enumerate() {
                let start = k * config.batch_size * per;
                let imgs = images.get(start..start + chunk.len() * per).ok_or_else(|| {
                    js_err(format!("train: {} labels need {} image values, got {}", labels.len(), labels.len() * per, images.len()))
                })?;
                match train::step(&mut model, &mut opt, imgs, chunk).await {
                    Ok(loss) => {
                        total += loss as f64;
                        steps += 1;
                    }
                    Err(e) => {
                        result = Err(js_err(e));
                        break;
                    }
                }
            }
            // Keep the steps that succeeded (each failing step changes nothing).
            *net.borrow_mut() = Some(model);
            *sgd.borrow_mut() = Some(opt);
            result?;
            Ok(JsValue::from_f64(total / steps.max(1) as f64))
        })
    }

    /// Panics on purpose, to test that the page survives an engine panic.
    #[wasm_bindgen(js_name = debugPanic)]
    pub fn debug_panic(&self) {
        panic!("debugPanic was called (a deliberate test panic)");
    }
}
