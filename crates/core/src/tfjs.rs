//! TensorFlow.js layers models (Keras models saved by `tensorflowjs_converter` or by TF.js's
//! `model.save`, such as CNN Explainer's Tiny VGG): `model.json` plus its binary weight shards,
//! turned into a [`NetSpec`] graph and weights in PyTorch's layout.
//!
//! Both Keras's `Sequential` and functional (`Functional`/`Model`) models, in the Keras 2 layout
//! TF.js writes and the Keras 3 layout (`batch_shape`, `inbound_nodes` as `args` of
//! `__keras_tensor__`s, weights named by position: `conv/0`) that `tensorflowjs_converter` writes
//! for a Keras 3 model. One input, one output; every layer applied once.
//!
//! Layers: InputLayer, Rescaling, ZeroPadding2D, Conv2D (strides, dilation, groups, 'valid' or
//! 'same': an asymmetric 'same' becomes a pad layer before the convolution), DepthwiseConv2D,
//! SeparableConv2D, MaxPooling2D and AveragePooling2D ('valid', or 'same' where ConvLens's
//! padding and ceil mode give TensorFlow's windows), GlobalAverage/MaxPooling2D, Flatten,
//! Reshape (of a vector only), Dense, BatchNormalization, Dropout, SpatialDropout2D, Add,
//! Multiply, Concatenate (channels), Activation, ReLU (max_value, negative_slope), LeakyReLU,
//! Softmax. Activations: linear, relu, relu6, sigmoid, tanh, softmax, hard_sigmoid (Keras 2 and
//! TF.js: 0.2x + 0.5; Keras 3: x/6 + 1/2), hard_swish/hard_silu, leaky_relu. Anything else is
//! refused with a message naming the layer and its type.
//!
//! Keras is channels-last: conv kernels `[kh, kw, in, out]` become `(out, in, kh, kw)`; a Flatten
//! of a map adds no layer, and the Dense layer after it has its input rows reordered from HWC to
//! PyTorch's CHW flatten. Output shapes come from the layers' own parsers (the spec so far is
//! parsed after each layer), so the reader does no shape arithmetic of its own beyond TensorFlow's
//! 'same' padding. Weights may be float32 or uint8/uint16-quantized (dequantized as
//! `q * scale + min`).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::Error;
use crate::spec::{Names, NetSpec, Shape3, transpose};

fn err(m: impl Into<String>) -> Error {
    Error::Weights(m.into())
}

/// One weight tensor from the manifest, in file order.
struct Entry {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Decodes every weight of the manifest; `read` gives a shard's bytes by its path.
fn read_weights(model: &Value, read: &mut dyn FnMut(&str) -> Result<Vec<u8>, Error>) -> Result<Vec<Entry>, Error> {
    let groups = model["weightsManifest"].as_array().ok_or_else(|| err("model.json has no weightsManifest"))?;
    let mut out = vec![];
    let mut seen = std::collections::HashSet::new();
    for group in groups {
        // The bytes the manifest describes (checked: a hostile shape must not wrap), before any shard
        // is read; a shard named twice, or shards holding more than that, are refused as they come.
        let weights = group["weights"].as_array().ok_or_else(|| err("a weightsManifest group has no weights"))?;
        let mut expected = 0u64;
        for w in weights {
            let width =
                if w["quantization"].is_object() { if w["quantization"]["dtype"].as_str() == Some("uint16") { 2 } else { 1 } } else { 4 };
            let n = w["shape"]
                .as_array()
                .map(|s| s.iter().try_fold(width as u64, |a, d| d.as_u64().and_then(|d| a.checked_mul(d))))
                .unwrap_or(Some(0));
            expected = n.and_then(|n| expected.checked_add(n)).ok_or_else(|| {
                err(format!("weight '{}' has a shape too large to hold", crate::spec::cut(w["name"].as_str().unwrap_or("?"), 60)))
            })?;
        }
        let mut bytes = vec![];
        for path in group["paths"].as_array().ok_or_else(|| err("a weightsManifest group has no paths"))? {
            let path = path.as_str().ok_or_else(|| err("a weight shard path is not a string"))?;
            if !seen.insert(path.to_string()) {
                return Err(err(format!("the manifest names the weight file '{}' twice", crate::spec::cut(path, 60))));
            }
            bytes.extend(read(path)?);
            if bytes.len() as u64 > expected {
                return Err(err(format!("the weight files hold {} bytes; the manifest describes {expected}", bytes.len())));
            }
        }
        let mut at = 0usize;
        for w in weights {
            let raw = w["name"].as_str().unwrap_or("?").to_string();
            let name = crate::spec::cut(&raw, 60);
            let shape: Vec<usize> = w["shape"]
                .as_array()
                .ok_or_else(|| err(format!("weight '{name}' has no shape")))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| err(format!("weight '{name}' has a bad shape")))?;
            // Checked: a hostile shape must not wrap (32-bit sizes in the browser) past the bytes.
            let n = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= bytes.len().saturating_sub(at))
                .ok_or_else(|| short(&name))?;
            let q = &w["quantization"];
            let (width, values): (usize, Vec<f32>) = if q.is_object() {
                let (scale, min) = (q["scale"].as_f64().unwrap_or(1.0) as f32, q["min"].as_f64().unwrap_or(0.0) as f32);
                match q["dtype"].as_str() {
                    Some("uint8") => {
                        (1, bytes.get(at..at + n).ok_or_else(|| short(&name))?.iter().map(|&b| b as f32 * scale + min).collect())
                    }
                    Some("uint16") => (
                        2,
                        bytes
                            .get(at..at + 2 * n)
                            .ok_or_else(|| short(&name))?
                            .chunks(2)
                            .map(|b| u16::from_le_bytes([b[0], b[1]]) as f32 * scale + min)
                            .collect(),
                    ),
                    other => {
                        return Err(err(format!("weight '{name}' has quantization dtype {other:?}; only uint8 and uint16 are supported")));
                    }
                }
            } else {
                match w["dtype"].as_str().unwrap_or("float32") {
                    "float32" => (
                        4,
                        bytes
                            .get(at..at + 4 * n)
                            .ok_or_else(|| short(&name))?
                            .chunks(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect(),
                    ),
                    other => return Err(err(format!("weight '{name}' has dtype {other}; only float32 is supported"))),
                }
            };
            at += width * n;
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(err(format!("weight '{name}' has a non-finite value ({}) at index {i}", values[i])));
            }
            out.push(Entry { name: raw, shape, values });
        }
        if at != bytes.len() {
            return Err(err(format!("the weight files hold {} bytes; the manifest describes {at}", bytes.len())));
        }
    }
    Ok(out)
}

fn short(name: &str) -> Error {
    err(format!("the weight files end before weight '{name}' (truncated or the wrong file?)"))
}

/// A model's structure refused: a message naming the layer.
fn model_err(m: impl Into<String>) -> Error {
    Error::Model(format!("TF.js/Keras: {}", m.into()))
}

/// A model: its spec (as ConvLens JSON) and its weights, per layer, in [`crate::spec::Layer::params`] order.
pub struct Model {
    pub spec: NetSpec,
    pub weights: Vec<Vec<Vec<f32>>>,
}

/// A Keras tensor as ConvLens computes it.
#[derive(Debug, Clone)]
struct T {
    /// The ConvLens layer whose output it is.
    layer: String,
    /// `[C, H, W]`.
    shape: Shape3,
    /// The Keras tensor is the channels-last Flatten of this map (no ConvLens layer flattens it):
    /// only a Dense layer, which reorders its rows, or an elementwise layer may read it.
    flat: bool,
}

struct Builder {
    specs: Vec<Value>,
    weights: Vec<Vec<Vec<f32>>>,
    entries: HashMap<String, Entry>,
    names: Names,
    /// The file is Keras 3's layout (which changes hard_sigmoid's slope).
    keras3: bool,
}

/// TensorFlow's 'same' padding of `n` pixels for a window spanning `span` at stride `s`: (before, after).
fn same(n: usize, span: usize, s: usize) -> (usize, usize) {
    let total = ((n.div_ceil(s).max(1) - 1) * s + span).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// `[a, b]` of a config field (Keras writes pairs; a bare number means both).
fn pair(c: &Value, key: &str) -> Option<[usize; 2]> {
    match &c[key] {
        Value::Array(a) => Some([a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize]),
        v => v.as_u64().map(|n| [n as usize; 2]),
    }
}

/// A Keras activation (a name, or Keras 3's serialized function) as a ConvLens layer; None: linear.
fn activation(v: &Value, keras3: bool) -> Result<Option<Value>, String> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.as_str(),
        Value::Object(o) => o.get("config").and_then(Value::as_str).unwrap_or("?"),
        _ => "?",
    };
    Ok(Some(match s {
        "linear" => return Ok(None),
        "relu" | "relu6" | "sigmoid" | "tanh" | "softmax" => json!({"type": s}),
        // Keras 2 and TF.js: clip(0.2 x + 0.5); Keras 3: relu6(x + 3) / 6.
        "hard_sigmoid" | "hardSigmoid" => json!({"type": "hard_sigmoid", "alpha": if keras3 { 1.0 / 6.0 } else { 0.2 }, "beta": 0.5}),
        "hard_swish" | "hard_silu" => json!({"type": "hard_swish"}),
        "leaky_relu" => json!({"type": "leaky_relu", "alpha": 0.2}),
        other => {
            return Err(format!(
                "activation '{}' is not supported (linear, relu, relu6, sigmoid, tanh, softmax, hard_sigmoid, hard_swish, leaky_relu)",
                crate::spec::cut(other, 40)
            ));
        }
    }))
}

/// The Keras layers a layer reads, as `(layer, node index, tensor index)`, from either layout:
/// Keras 2's `[[["conv", 0, 0, {}], ...]]` or Keras 3's `[{"args": [{"class_name":
/// "__keras_tensor__", "config": {"keras_history": ["conv", 0, 0]}}, ...]}]`.
fn inbound(l: &Value) -> Result<Vec<(String, u64, u64)>, String> {
    let nodes = l["inbound_nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    match nodes.len() {
        0 => return Err("it reads no tensor (its inbound_nodes are empty)".into()),
        1 => {}
        n => return Err(format!("it is applied {n} times (a shared layer); ConvLens reads layers applied once")),
    }
    fn history(h: &Value) -> Option<(String, u64, u64)> {
        Some((h.get(0)?.as_str()?.to_string(), h.get(1)?.as_u64()?, h.get(2)?.as_u64()?))
    }
    fn walk(v: &Value, out: &mut Vec<(String, u64, u64)>) {
        match v {
            Value::Object(o) if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") => {
                out.extend(history(&o["config"]["keras_history"]));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    match &nodes[0] {
        Value::Object(o) => walk(o.get("args").unwrap_or(&Value::Null), &mut out),
        Value::Array(entries) => out.extend(entries.iter().filter_map(history)),
        _ => {}
    }
    if out.is_empty() {
        return Err("its inbound_nodes name no layer".into());
    }
    Ok(out)
}

/// The first layer name in `input_layers`/`output_layers` (`[["name", 0, 0]]` or Keras 3's
/// `["name", 0, 0]`), and how many there are.
fn endpoints(v: &Value) -> (Option<String>, usize) {
    match v.as_array() {
        Some(a) if a.first().is_some_and(Value::is_string) => (a[0].as_str().map(str::to_string), 1),
        Some(a) => (a.first().and_then(|e| e.get(0)).and_then(Value::as_str).map(str::to_string), a.len()),
        None => (None, 0),
    }
}

/// Reads a TF.js layers model; `read` fetches a weight shard named in the manifest.
pub fn load(model_json: &str, read: &mut dyn FnMut(&str) -> Result<Vec<u8>, Error>) -> Result<Model, Error> {
    let model: Value = crate::spec::strict_json(model_json).map_err(|e| err(format!("model.json is not valid JSON ({e})")))?;
    let topo = &model["modelTopology"];
    if model["format"].as_str() == Some("graph-model") || topo.get("node").is_some() {
        return Err(model_err(
            "model.json is a TF.js graph model (a frozen TensorFlow graph); ConvLens reads layers models: convert the Keras model with \
             tensorflowjs_converter --output_format=tfjs_layers_model",
        ));
    }
    let config = if topo["model_config"].is_object() { &topo["model_config"] } else { topo };
    let class = crate::spec::cut(config["class_name"].as_str().unwrap_or("?"), 40);
    let sequential = match class.as_str() {
        "Sequential" => true,
        "Model" | "Functional" => false,
        _ => return Err(model_err(format!("model.json holds a Keras '{class}' model; ConvLens reads Sequential and functional models"))),
    };
    let layers = config["config"]["layers"]
        .as_array()
        .or_else(|| config["config"].as_array())
        .ok_or_else(|| model_err("model.json has no layer list"))?;
    if layers.len() > MAX_LAYERS {
        return Err(model_err(format!("model.json has {} layers; ConvLens reads at most {MAX_LAYERS}", layers.len())));
    }
    let version = topo["keras_version"].as_str().or(config["keras_version"].as_str()).unwrap_or("");
    // The version when the file states one; else the layout's clues.
    let keras3 = if version.starts_with(|c: char| c.is_ascii_digit()) {
        version.starts_with('3')
    } else {
        layers.iter().any(|l| {
            l.get("module").is_some()
                || l["config"].get("batch_shape").is_some()
                || l["inbound_nodes"].as_array().is_some_and(|n| n.iter().any(Value::is_object))
        })
    };
    let entries = read_weights(&model, read)?.into_iter().map(|e| (e.name.clone(), e)).collect();
    let mut b = Builder { specs: vec![], weights: vec![], entries, names: Names::default(), keras3 };
    if !sequential {
        let (_, n) = endpoints(&config["config"]["input_layers"]);
        if n > 1 {
            return Err(model_err(format!("the model has {n} inputs; ConvLens reads models with one image input")));
        }
    }

    let mut tensors: HashMap<String, T> = HashMap::new();
    let mut prev: Option<T> = None;
    let mut last_keras = String::new();
    for (i, l) in layers.iter().enumerate() {
        let kind = crate::spec::cut(l["class_name"].as_str().unwrap_or("?"), 40);
        let c = &l["config"];
        // The layer's own name keys its tensors and weights; messages show it cut short.
        let name = l["name"].as_str().or(c["name"].as_str()).map(str::to_string).unwrap_or_else(|| format!("layer{i}"));
        let shown = crate::spec::cut(&name, 60);
        let fail = |what: String| model_err(format!("layer {i} '{shown}' ({kind}): {what}"));
        if let Some(dims) = c["batch_input_shape"].as_array().or(c["batch_shape"].as_array()) {
            if !b.specs.is_empty() {
                if kind == "InputLayer" {
                    return Err(fail("a second input; ConvLens reads models with one image input".into()));
                }
            } else {
                let Some(dims) = dims.iter().skip(1).map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<usize>>>() else {
                    return Err(fail(format!(
                        "input shape {} has no fixed size; ConvLens reads a model whose input is [height, width, channels] with fixed sizes \
                         (build it with keras.Input(shape=(H, W, C)))",
                        crate::spec::cut(&Value::Array(dims.clone()).to_string(), 60)
                    )));
                };
                let [h, w, d] = match dims.as_slice() {
                    [h, w, d] => [*h, *w, *d],
                    [n] => [1, 1, *n],
                    _ => return Err(fail(format!("input shape {dims:?} is not [height, width, channels] with fixed sizes"))),
                };
                let limits = crate::spec::Limits::here();
                let values = [h, w, d].iter().try_fold(1u64, |a, &x| a.checked_mul(x as u64)).unwrap_or(u64::MAX);
                if h == 0 || w == 0 || d == 0 || values > limits.values {
                    return Err(fail(format!(
                        "input shape {h}x{w}x{d} ({values} values) must be nonzero and at most {} values {}",
                        limits.values, limits.what
                    )));
                }
                let t = b.push("input", json!({"type": "input", "width": w, "height": h, "depth": d}), &[], vec![]).map_err(&fail)?;
                if kind == "InputLayer" {
                    tensors.insert(name.clone(), t.clone());
                }
                prev = Some(t);
            }
        }
        if kind == "InputLayer" {
            if b.specs.is_empty() {
                return Err(fail("the input layer gives no batch_input_shape".into()));
            }
            last_keras = name.clone();
            continue;
        }
        let ins: Vec<T> = if sequential {
            vec![prev.clone().ok_or_else(|| fail("the first layer must give batch_input_shape".into()))?]
        } else {
            inbound(l)
                .map_err(&fail)?
                .into_iter()
                .map(|(from, node, tensor)| {
                    if node != 0 || tensor != 0 {
                        return Err(fail(format!(
                            "it reads output {tensor} of call {node} of '{from}'; ConvLens reads layers applied once"
                        )));
                    }
                    tensors.get(&from).cloned().ok_or_else(|| {
                        fail(format!("it reads '{}', which is not a layer before it in model.json", crate::spec::cut(&from, 60)))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        let out = b.layer(&kind, c, &name, &ins).map_err(&fail)?;
        tensors.insert(name.clone(), out.clone());
        prev = Some(out);
        last_keras = name.clone();
    }
    if !b.entries.is_empty() {
        let mut names: Vec<&String> = b.entries.keys().collect();
        names.sort();
        return Err(err(format!("the weights have tensors no layer uses: {names:?}")));
    }
    let (output, n) = if sequential { (Some(last_keras), 1) } else { endpoints(&config["config"]["output_layers"]) };
    if n != 1 {
        return Err(model_err(format!("the model has {n} outputs; ConvLens reads models with one output (the class scores)")));
    }
    let output = output.unwrap_or_default();
    let out = tensors
        .get(&output)
        .ok_or_else(|| model_err(format!("the output layer '{}' is not in the model", crate::spec::cut(&output, 60))))?;
    if out.flat {
        return Err(model_err(format!(
            "the output '{}' is the Flatten of a {}x{}x{} map; ConvLens reads a model whose output is a vector of scores (a Dense or a global pool last)",
            crate::spec::cut(&output, 60),
            out.shape[1],
            out.shape[2],
            out.shape[0]
        )));
    }
    if b.specs.len() < 2 || b.specs.last().and_then(|l| l["name"].as_str()) != Some(out.layer.as_str()) {
        return Err(model_err(format!(
            "the output '{output}' is not the last layer computed; ConvLens reads a model whose last layer gives the scores"
        )));
    }
    let name = config["config"]["name"].as_str().unwrap_or("tfjs-model");
    let spec = NetSpec::from_value(&json!({"name": name, "layers": b.specs}))?;
    // Check the sizes once more against the spec's own parameter list.
    crate::spec::check_weights(&spec, &b.weights).map_err(err)?;
    Ok(Model { spec, weights: b.weights })
}

impl Builder {
    /// Adds a layer reading `inputs`; its output shape from the layer's own parser (the spec so far
    /// is parsed).
    fn push(&mut self, keras: &str, mut layer: Value, inputs: &[&T], w: Vec<Vec<f32>>) -> Result<T, String> {
        let name = self.names.make(keras, "layer");
        layer["name"] = json!(name);
        if !inputs.is_empty() {
            layer["inputs"] = json!(inputs.iter().map(|t| t.layer.clone()).collect::<Vec<_>>());
        }
        let input = self.specs.is_empty();
        self.specs.push(layer);
        self.weights.push(w);
        let shape = if input {
            let l = &self.specs[0];
            let n = |k: &str| l[k].as_u64().unwrap_or(0) as usize;
            [n("depth"), n("height"), n("width")]
        } else {
            crate::spec::last_shape(&self.specs).map_err(|e| e.to_string())?
        };
        Ok(T { layer: name, shape, flat: false })
    }

    /// A layer, then its activation: fused (relu, relu6, sigmoid, tanh) or a layer of its own.
    fn push_act(&mut self, keras: &str, mut layer: Value, inputs: &[&T], w: Vec<Vec<f32>>, act: Option<Value>) -> Result<T, String> {
        match act {
            Some(a) if matches!(a["type"].as_str(), Some("relu" | "relu6" | "sigmoid" | "tanh")) => {
                layer["activation"] = a["type"].clone();
                self.push(keras, layer, inputs, w)
            }
            Some(a) => {
                let t = self.push(keras, layer, inputs, w)?;
                let ty = a["type"].as_str().unwrap_or("act").to_string();
                self.push(&format!("{keras}_{ty}"), a, &[&t], vec![])
            }
            None => self.push(keras, layer, inputs, w),
        }
    }

    /// A weight of Keras layer `layer`: by one of its names (`conv/kernel`), by its position (`conv/0`,
    /// as the converter names a Keras 3 model's), or either under a scope (`model/conv/kernel`).
    fn take(&mut self, layer: &str, fields: &[&str], pos: &mut usize) -> Result<Entry, String> {
        let mut keys: Vec<String> = fields.iter().map(|f| format!("{layer}/{f}")).collect();
        keys.push(format!("{layer}/{pos}"));
        *pos += 1;
        for k in &keys {
            if let Some(e) = self.entries.remove(k) {
                return Ok(e);
            }
        }
        let scoped: Vec<String> =
            self.entries.keys().filter(|k| keys.iter().any(|want| k.ends_with(&format!("/{want}")))).cloned().collect();
        match scoped.as_slice() {
            [one] => Ok(self.entries.remove(one).expect("listed")),
            _ => Err(format!("the weights have no '{layer}/{}' for layer '{layer}'", fields[0])),
        }
    }

    /// One Keras layer reading `ins`.
    fn layer(&mut self, kind: &str, c: &Value, name: &str, ins: &[T]) -> Result<T, String> {
        let x = &ins[0];
        let [d, h, w] = x.shape;
        if c["data_format"].as_str().is_some_and(|f| f != "channels_last") {
            return Err("only channels_last data is supported".into());
        }
        let elementwise =
            matches!(kind, "Dense" | "Dropout" | "SpatialDropout2D" | "Activation" | "ReLU" | "LeakyReLU" | "Add" | "Multiply");
        if let Some(f) = ins.iter().find(|t| t.flat)
            && (!elementwise || ins.iter().any(|t| !t.flat))
        {
            return Err(format!(
                "it reads the Flatten of a {}x{}x{} map; ConvLens reads such a Flatten only into Dense, Dropout, activations, Add and Multiply",
                f.shape[1], f.shape[2], f.shape[0]
            ));
        }
        if ins.len() > 1 && !matches!(kind, "Add" | "Multiply" | "Average" | "Concatenate") {
            return Err(format!("it reads {} tensors; a {kind} reads one", ins.len()));
        }
        let ins_ref: Vec<&T> = ins.iter().collect();
        let keep_flat = |mut t: T| {
            t.flat = x.flat;
            t
        };
        let mut pos = 0;
        let bias = c["use_bias"].as_bool().unwrap_or(true);
        let act = activation(&c["activation"], self.keras3)?;
        match kind {
            "Rescaling" => {
                let num = |v: &Value, default: f64| if v.is_null() { json!(default) } else { v.clone() };
                self.push(name, json!({"type": "scale", "scale": num(&c["scale"], 1.0), "offset": num(&c["offset"], 0.0)}), &[x], vec![])
            }
            "ZeroPadding2D" => {
                let p = &c["padding"];
                let [t, bo, l, r] = match (p.as_u64(), pair(c, "padding")) {
                    (Some(n), _) => [n as usize; 4],
                    (None, Some([a, b])) => [a, a, b, b],
                    _ => {
                        let two = |v: &Value| Some([v.get(0)?.as_u64()? as usize, v.get(1)?.as_u64()? as usize]);
                        match (two(&p[0]), two(&p[1])) {
                            (Some([t, b]), Some([l, r])) => [t, b, l, r],
                            _ => return Err(format!("padding {} is not a number, [rows, cols] or [[top, bottom], [left, right]]", p)),
                        }
                    }
                };
                self.push(name, json!({"type": "pad", "top": t, "left": l, "bottom": bo, "right": r}), &[x], vec![])
            }
            "Conv2D" | "DepthwiseConv2D" | "SeparableConv2D" => {
                let [kh, kw] = pair(c, "kernel_size").ok_or("no kernel_size")?;
                let [sy, sx] = pair(c, "strides").unwrap_or([1, 1]);
                let [dy, dx] = pair(c, "dilation_rate").unwrap_or([1, 1]);
                if kh != kw || sy != sx || dy != dx || kh == 0 || sy == 0 || dy == 0 {
                    return Err(format!(
                        "a {kh}x{kw} kernel, strides {sy}x{sx}, dilation {dy}x{dx}: ConvLens takes square kernels, strides and dilations"
                    ));
                }
                let (k, s, dil) = (kh, sy, dy);
                if k > 1 << 12 || s > 1 << 24 || dil > 1 << 12 {
                    return Err(format!("a {k}x{k} kernel with stride {s} and dilation {dil} is too large"));
                }
                let span = dil * (k - 1) + 1;
                // The padding: on the conv (equal sides, or TensorFlow's 'same' of a square input),
                // else a pad layer of its own before it.
                let padding = c["padding"].as_str().unwrap_or("valid");
                let ((t, bo), (l, r)) = match padding {
                    "valid" => ((0, 0), (0, 0)),
                    "same" => (same(h, span, s), same(w, span, s)),
                    p => return Err(format!("padding '{p}' is not supported ('valid' or 'same')")),
                };
                let (src, pad) = if t == bo && t == l && t == r {
                    (x.clone(), json!({"pad": t}))
                } else if dil == 1 && h == w {
                    (x.clone(), json!({"padding": "same"}))
                } else {
                    let p = self.push(
                        &format!("{name}_pad"),
                        json!({"type": "pad", "top": t, "left": l, "bottom": bo, "right": r}),
                        &[x],
                        vec![],
                    )?;
                    (p, json!({"pad": 0}))
                };
                let with = |mut layer: Value| {
                    for (k, v) in pad.as_object().expect("object") {
                        layer[k] = v.clone();
                    }
                    layer
                };
                // [kh, kw, in, out] -> (out, in, kh, kw)
                let reorder = |v: &[f32], cin: usize, cout: usize| {
                    let mut wt = vec![0f32; v.len()];
                    for y in 0..k {
                        for xx in 0..k {
                            for ci in 0..cin {
                                for co in 0..cout {
                                    wt[((co * cin + ci) * k + y) * k + xx] = v[((y * k + xx) * cin + ci) * cout + co];
                                }
                            }
                        }
                    }
                    wt
                };
                if kind == "Conv2D" {
                    let filters = c["filters"].as_u64().ok_or("no filters")? as usize;
                    let groups = c["groups"].as_u64().unwrap_or(1).max(1) as usize;
                    let kernel = self.take(name, &["kernel"], &mut pos)?;
                    if !d.is_multiple_of(groups) || kernel.shape != [k, k, d / groups, filters] {
                        return Err(format!("kernel shape {:?} is not [{k}, {k}, {}, {filters}]", kernel.shape, d / groups));
                    }
                    let mut lw = vec![reorder(&kernel.values, d / groups, filters)];
                    if bias {
                        lw.push(self.take(name, &["bias"], &mut pos)?.values);
                    }
                    let layer = json!({"type": "conv", "size": k, "filters": filters, "stride": s, "dilation": dil, "groups": groups, "bias": bias});
                    return self.push_act(name, with(layer), &[&src], lw, act);
                }
                // Depthwise: [k, k, C, m] -> (C * m, 1, k, k), output channel c * m + j.
                let dw = self.take(name, &["depthwise_kernel", "kernel"], &mut pos)?;
                let m = c["depth_multiplier"].as_u64().unwrap_or(1) as usize;
                if dw.shape != [k, k, d, m] {
                    return Err(format!("depthwise kernel shape {:?} is not [{k}, {k}, {d}, {m}]", dw.shape));
                }
                let dwt = reorder(&dw.values, 1, d * m);
                if kind == "DepthwiseConv2D" {
                    let mut lw = vec![dwt];
                    if bias {
                        lw.push(self.take(name, &["bias"], &mut pos)?.values);
                    }
                    let layer =
                        json!({"type": "conv", "size": k, "filters": d * m, "stride": s, "dilation": dil, "groups": d, "bias": bias});
                    return self.push_act(name, with(layer), &[&src], lw, act);
                }
                // Separable: the depthwise step, then a 1x1 convolution with the bias and activation.
                let pw = self.take(name, &["pointwise_kernel"], &mut pos)?;
                let filters = c["filters"].as_u64().ok_or("no filters")? as usize;
                if pw.shape != [1, 1, d * m, filters] {
                    return Err(format!("pointwise kernel shape {:?} is not [1, 1, {}, {filters}]", pw.shape, d * m));
                }
                let layer = json!({"type": "conv", "size": k, "filters": d * m, "stride": s, "dilation": dil, "groups": d, "bias": false});
                let depthwise = self.push(&format!("{name}_depthwise"), with(layer), &[&src], vec![dwt])?;
                let mut lw = vec![transpose(&pw.values, d * m, filters)];
                if bias {
                    lw.push(self.take(name, &["bias"], &mut pos)?.values);
                }
                let layer = json!({"type": "conv", "size": 1, "filters": filters, "bias": bias});
                self.push_act(name, layer, &[&depthwise], lw, act)
            }
            "MaxPooling2D" | "AveragePooling2D" => {
                let [ph, pw] = pair(c, "pool_size").unwrap_or([2, 2]);
                let [sy, sx] = pair(c, "strides").unwrap_or([ph, pw]);
                if ph != pw || sy != sx || ph == 0 || sy == 0 {
                    return Err(format!("a {ph}x{pw} window with strides {sy}x{sx}: ConvLens takes square windows and strides"));
                }
                let (k, s) = (ph, sy);
                if k > 1 << 24 || s > 1 << 24 {
                    return Err(format!("a {k}x{k} window with stride {s} is too large"));
                }
                // 'same': TensorFlow's windows are ConvLens's with the padding before, and ceil mode
                // for the odd one after (not at stride 1, where ceil mode adds no window).
                let (pad, ceil) = match c["padding"].as_str().unwrap_or("valid") {
                    "valid" => (0, false),
                    "same" => {
                        let ((t, bo), (l, r)) = (same(h, k, s), same(w, k, s));
                        let odd = bo > t || r > l;
                        if t != l || (odd && s == 1) {
                            return Err(format!(
                                "'same' padding of a {h}x{w} input (top {t}, bottom {bo}, left {l}, right {r}) is not supported"
                            ));
                        }
                        (t, odd)
                    }
                    p => return Err(format!("padding '{p}' is not supported ('valid' or 'same')")),
                };
                let mode = if kind == "MaxPooling2D" { "max" } else { "avg" };
                self.push(name, json!({"type": "pool", "size": k, "stride": s, "pad": pad, "ceil": ceil, "mode": mode}), &[x], vec![])
            }
            "GlobalAveragePooling2D" | "GlobalMaxPooling2D" => {
                let mode = if kind == "GlobalMaxPooling2D" { "max" } else { "avg" };
                self.push(name, json!({"type": "globalpool", "mode": mode}), &[x], vec![])
            }
            "Flatten" => Ok(T { flat: h * w > 1, ..x.clone() }),
            "Reshape" => {
                let target: Vec<u64> =
                    c["target_shape"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
                let vector = target == [d as u64] || target == [1, 1, d as u64];
                if h * w == 1 && !x.flat && vector {
                    Ok(x.clone())
                } else {
                    Err(format!("a reshape of {h}x{w}x{d} to {target:?}: ConvLens reads a reshape of a vector ([C] or [1, 1, C]) only"))
                }
            }
            "Dense" => {
                let units = c["units"].as_u64().ok_or("no units")? as usize;
                let fan_in = d * h * w;
                if h * w > 1 && !x.flat {
                    return Err("a Dense layer on a spatial map needs a Flatten before it".into());
                }
                let kernel = self.take(name, &["kernel"], &mut pos)?;
                if kernel.shape != [fan_in, units] {
                    return Err(format!("kernel shape {:?} is not [{fan_in}, {units}]", kernel.shape));
                }
                // kernel [in, out] -> (out, in); after a channels-last flatten, input row (y, x, c)
                // moves to PyTorch's (c, y, x).
                let mut wt = vec![0f32; kernel.values.len()];
                for row in 0..fan_in {
                    let chw = if x.flat {
                        let (y, xx, ch) = (row / (w * d), (row / d) % w, row % d);
                        (ch * h + y) * w + xx
                    } else {
                        row
                    };
                    for u in 0..units {
                        wt[u * fan_in + chw] = kernel.values[row * units + u];
                    }
                }
                let mut lw = vec![wt];
                if bias {
                    lw.push(self.take(name, &["bias"], &mut pos)?.values);
                }
                self.push_act(name, json!({"type": "fc", "units": units, "bias": bias}), &[x], lw, act)
            }
            "BatchNormalization" => {
                let axis = c["axis"].as_i64().or_else(|| c["axis"].get(0).and_then(Value::as_i64)).unwrap_or(-1);
                if !(axis == -1 || axis == 3 || (axis == 1 && h * w == 1)) {
                    return Err(format!("batch normalization over axis {axis}, not the channels"));
                }
                let eps = c["epsilon"].as_f64().unwrap_or(1e-3);
                let per_channel = |b: &mut Builder, field: &str, on: bool, default: f32, pos: &mut usize| -> Result<Vec<f32>, String> {
                    if !on {
                        return Ok(vec![default; d]);
                    }
                    let v = b.take(name, &[field], pos)?;
                    if v.values.len() != d {
                        return Err(format!("its {field} has {} values for {d} channels", v.values.len()));
                    }
                    Ok(v.values)
                };
                let gamma = per_channel(self, "gamma", c["scale"].as_bool().unwrap_or(true), 1.0, &mut pos)?;
                let beta = per_channel(self, "beta", c["center"].as_bool().unwrap_or(true), 0.0, &mut pos)?;
                let mean = per_channel(self, "moving_mean", true, 0.0, &mut pos)?;
                let var = per_channel(self, "moving_variance", true, 1.0, &mut pos)?;
                self.push(name, json!({"type": "batchnorm", "eps": eps}), &[x], vec![gamma, beta, mean, var])
            }
            "Dropout" | "SpatialDropout2D" => {
                let t = self.push(name, json!({"type": "dropout", "rate": c["rate"].as_f64().unwrap_or(0.5)}), &[x], vec![])?;
                Ok(keep_flat(t))
            }
            "Activation" | "ReLU" | "LeakyReLU" | "Softmax" => {
                let layer = match kind {
                    "Activation" => act,
                    "Softmax" => Some(json!({"type": "softmax"})),
                    "LeakyReLU" => {
                        let alpha = c["alpha"].as_f64().or(c["negative_slope"].as_f64()).unwrap_or(0.3);
                        Some(json!({"type": "leaky_relu", "alpha": alpha}))
                    }
                    _ => {
                        let slope = c["negative_slope"].as_f64().unwrap_or(0.0);
                        if c["threshold"].as_f64().is_some_and(|t| t != 0.0) {
                            return Err("a ReLU with a threshold is not supported".into());
                        }
                        match (c["max_value"].as_f64(), slope == 0.0) {
                            (None, true) => Some(json!({"type": "relu"})),
                            (None, false) => Some(json!({"type": "leaky_relu", "alpha": slope})),
                            (Some(6.0), true) => Some(json!({"type": "relu6"})),
                            (Some(m), true) => Some(json!({"type": "clip", "min": 0.0, "max": m})),
                            _ => return Err("a ReLU with both max_value and negative_slope is not supported".into()),
                        }
                    }
                };
                match layer {
                    None => Ok(x.clone()),
                    Some(a) => {
                        if a["type"] == "softmax" && (x.flat || h * w > 1) {
                            return Err("a softmax over a map (Keras's is per pixel) is not supported; ConvLens's softmax is over a vector of scores".into());
                        }
                        let t = self.push(name, a, &[x], vec![])?;
                        Ok(keep_flat(t))
                    }
                }
            }
            "Add" | "Multiply" | "Average" => {
                if ins.len() < 2 {
                    return Err(format!("a {kind} of {} tensors", ins.len()));
                }
                let ty = if kind == "Multiply" { "mul" } else { "add" };
                let t = self.push(name, json!({"type": ty}), &ins_ref, vec![])?;
                let t = if kind == "Average" {
                    self.push(&format!("{name}_mean"), json!({"type": "scale", "scale": 1.0 / ins.len() as f64}), &[&t], vec![])?
                } else {
                    t
                };
                Ok(keep_flat(t))
            }
            "Concatenate" => {
                let axis = c["axis"].as_i64().unwrap_or(-1);
                if !(axis == -1 || axis == 3 || (axis == 1 && h * w == 1)) {
                    return Err(format!("a concatenation along axis {axis}; ConvLens concatenates channels (axis -1)"));
                }
                self.push(name, json!({"type": "concat"}), &ins_ref, vec![])
            }
            "Sequential" | "Functional" | "Model" => {
                Err("a model inside the model; ConvLens reads one flat model: build it without nesting (for a pretrained base, \
                 keras.Model(base.input, head(base.output)))"
                    .into())
            }
            _ => Err(format!("this layer type is not supported; ConvLens reads {}", LAYERS.join(", "))),
        }
    }
}

/// The most layers read (each layer's shape comes from parsing the spec so far).
pub const MAX_LAYERS: usize = 2000;

/// The Keras layers read.
pub const LAYERS: &[&str] = &[
    "InputLayer",
    "Rescaling",
    "ZeroPadding2D",
    "Conv2D",
    "DepthwiseConv2D",
    "SeparableConv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Flatten",
    "Reshape",
    "Dense",
    "BatchNormalization",
    "Dropout",
    "SpatialDropout2D",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "Add",
    "Multiply",
    "Average",
    "Concatenate",
];
