//! TensorFlow.js layers models (Keras `Sequential` models saved by `tensorflowjs_converter`, such
//! as CNN Explainer's Tiny VGG): `model.json` plus its binary weight shards, turned into a
//! [`NetSpec`] and weights in PyTorch's layout.
//!
//! Supported Keras layers: InputLayer, Conv2D (stride s, 'valid', or 'same' with an odd kernel
//! and stride 1, any of linear/relu/sigmoid/tanh/softmax activations), MaxPooling2D and
//! AveragePooling2D ('valid'), Flatten, Dense, Activation, ReLU, Softmax, Dropout and
//! BatchNormalization. Anything else is refused with a message naming the layer and its type.
//! Keras is channels-last: conv kernels `[kh, kw, in, out]` become `(out, in, kh, kw)`, and a
//! Dense layer after Flatten has its input rows reordered from HWC to PyTorch's CHW flatten.
//! Weights may be float32 or uint8/uint16-quantized (dequantized as `q * scale + min`).

use serde_json::{Map, Value, json};

use crate::Error;
use crate::spec::NetSpec;

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
    for group in groups {
        let mut bytes = vec![];
        for path in group["paths"].as_array().ok_or_else(|| err("a weightsManifest group has no paths"))? {
            let path = path.as_str().ok_or_else(|| err("a weight shard path is not a string"))?;
            bytes.extend(read(path)?);
        }
        let mut at = 0usize;
        for w in group["weights"].as_array().ok_or_else(|| err("a weightsManifest group has no weights"))? {
            let name = crate::spec::cut(w["name"].as_str().unwrap_or("?"), 60);
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
            out.push(Entry { name, shape, values });
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

/// A model: its spec (as ConvLens JSON) and its weights, per layer, in [`crate::spec::Layer::params`] order.
pub struct Model {
    pub spec: NetSpec,
    pub weights: Vec<Vec<Vec<f32>>>,
}

/// Reads a TF.js layers model; `read` fetches a weight shard named in the manifest.
pub fn load(model_json: &str, read: &mut dyn FnMut(&str) -> Result<Vec<u8>, Error>) -> Result<Model, Error> {
    let model: Value = crate::spec::strict_json(model_json).map_err(|e| err(format!("model.json is not valid JSON ({e})")))?;
    let topo = &model["modelTopology"];
    let config = if topo["model_config"].is_object() { &topo["model_config"] } else { topo };
    let class = config["class_name"].as_str().unwrap_or("?");
    if class != "Sequential" {
        return Err(err(format!("model.json holds a Keras '{class}' model; only Sequential layers models are supported")));
    }
    let layers =
        config["config"]["layers"].as_array().or_else(|| config["config"].as_array()).ok_or_else(|| err("model.json has no layer list"))?;
    let mut entries: std::collections::HashMap<String, Entry> =
        read_weights(&model, read)?.into_iter().map(|e| (e.name.clone(), e)).collect();
    let mut take = |layer: &str, field: &str| -> Result<Entry, Error> {
        entries.remove(&format!("{layer}/{field}")).ok_or_else(|| err(format!("the weights have no '{layer}/{field}' for layer '{layer}'")))
    };

    let mut specs: Vec<Value> = vec![];
    let mut weights: Vec<Vec<Vec<f32>>> = vec![];
    // The running [depth, height, width], and whether a Flatten of a channels-last map is pending.
    let mut shape: Option<[usize; 3]> = None;
    let mut flattened_hwc: Option<[usize; 3]> = None;
    for (i, l) in layers.iter().enumerate() {
        let kind = l["class_name"].as_str().unwrap_or("?");
        let c = &l["config"];
        let name = c["name"].as_str().map(str::to_string).unwrap_or_else(|| format!("layer{i}"));
        let unsupported = |what: String| err(format!("layer {i} '{name}' ({kind}): {what}"));
        if let Some(input) = c["batch_input_shape"].as_array() {
            let dims: Vec<usize> = input.iter().skip(1).filter_map(|d| d.as_u64().map(|d| d as usize)).collect();
            let [h, w, d] = match dims.as_slice() {
                [h, w, d] => [*h, *w, *d],
                [n] => [1, 1, *n],
                _ => return Err(unsupported(format!("input shape {input:?} is not [height, width, channels]"))),
            };
            let limits = crate::spec::Limits::here();
            let values = [h, w, d].iter().try_fold(1u64, |a, &x| a.checked_mul(x as u64)).unwrap_or(u64::MAX);
            if h == 0 || w == 0 || d == 0 || values > limits.values {
                return Err(unsupported(format!(
                    "input shape {h}x{w}x{d} ({values} values) must be nonzero and at most {} values {}",
                    limits.values, limits.what
                )));
            }
            specs.push(json!({"type": "input", "name": "input", "width": w, "height": h, "depth": d}));
            weights.push(vec![]);
            shape = Some([d, h, w]);
        }
        if c["data_format"].as_str().is_some_and(|f| f != "channels_last") {
            return Err(unsupported("only channels_last data is supported".into()));
        }
        let Some([d, h, w]) = shape else {
            return Err(unsupported("the first layer must give batch_input_shape".into()));
        };
        let activation = |key: &str| -> Result<Option<&'static str>, Error> {
            match c[key].as_str().unwrap_or("linear") {
                "linear" => Ok(None),
                "relu" => Ok(Some("relu")),
                "sigmoid" => Ok(Some("sigmoid")),
                "tanh" => Ok(Some("tanh")),
                "softmax" => Ok(Some("softmax")),
                other => Err(unsupported(format!("activation '{other}' is not supported (relu, sigmoid, tanh, softmax, linear)"))),
            }
        };
        let pair = |key: &str| -> Option<[usize; 2]> {
            let a = c[key].as_array()?;
            Some([a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize])
        };
        // An activation Keras fuses into Conv2D/Dense: relu/sigmoid/tanh stay fused, softmax becomes its own layer.
        let push_activation = |specs: &mut Vec<Value>, mut layer: Map<String, Value>, act: Option<&str>| match act {
            Some("softmax") => {
                specs.push(Value::Object(layer));
                specs.push(json!({"type": "softmax", "name": format!("{name}_softmax")}));
            }
            Some(a) => {
                layer.insert("activation".into(), json!(a));
                specs.push(Value::Object(layer));
            }
            None => specs.push(Value::Object(layer)),
        };
        match kind {
            "InputLayer" => {}
            "Conv2D" => {
                let [kh, kw] = pair("kernel_size").ok_or_else(|| unsupported("no kernel_size".into()))?;
                let [sy, sx] = pair("strides").unwrap_or([1, 1]);
                if kh != kw || sy != sx {
                    return Err(unsupported(format!("only square kernels and strides are supported, not {kh}x{kw} stride {sy}x{sx}")));
                }
                if pair("dilation_rate").is_some_and(|d| d != [1, 1]) {
                    return Err(unsupported("dilated convolution is not supported".into()));
                }
                let pad = match c["padding"].as_str().unwrap_or("valid") {
                    "valid" => 0,
                    "same" if kh % 2 == 1 && sy == 1 => kh / 2,
                    p => return Err(unsupported(format!("padding '{p}' with a {kh}x{kw} kernel and stride {sy} is not supported"))),
                };
                let filters = c["filters"].as_u64().ok_or_else(|| unsupported("no filters".into()))? as usize;
                let bias = c["use_bias"].as_bool().unwrap_or(true);
                let kernel = take(&name, "kernel")?;
                if kernel.shape != [kh, kw, d, filters] {
                    return Err(unsupported(format!("kernel shape {:?} is not [{kh}, {kw}, {d}, {filters}]", kernel.shape)));
                }
                // [kh, kw, in, out] -> (out, in, kh, kw)
                let mut wt = vec![0f32; kernel.values.len()];
                for y in 0..kh {
                    for x in 0..kw {
                        for ci in 0..d {
                            for co in 0..filters {
                                wt[((co * d + ci) * kh + y) * kw + x] = kernel.values[((y * kw + x) * d + ci) * filters + co];
                            }
                        }
                    }
                }
                let mut lw = vec![wt];
                if bias {
                    lw.push(take(&name, "bias")?.values);
                }
                let layer = json!({"type": "conv", "name": name, "size": kh, "filters": filters, "stride": sy, "pad": pad, "bias": bias});
                push_activation(&mut specs, layer.as_object().unwrap().clone(), activation("activation")?);
                weights.push(lw);
                if specs.last().is_some_and(|s| s["type"] == "softmax") {
                    weights.push(vec![]);
                }
                if kh == 0 || sy == 0 || h + 2 * pad < kh || w + 2 * pad < kh {
                    return Err(unsupported(format!("a {kh}x{kh} kernel with stride {sy} does not fit the {h}x{w} input")));
                }
                let out = |n: usize| (n + 2 * pad - kh) / sy + 1;
                shape = Some([filters, out(h), out(w)]);
            }
            "MaxPooling2D" | "AveragePooling2D" => {
                let [ph, pw] = pair("pool_size").unwrap_or([2, 2]);
                let [sy, sx] = pair("strides").unwrap_or([ph, pw]);
                if ph != pw || sy != sx {
                    return Err(unsupported("only square pools are supported".into()));
                }
                if c["padding"].as_str().unwrap_or("valid") != "valid" {
                    return Err(unsupported("only 'valid' pooling is supported".into()));
                }
                if ph == 0 || sy == 0 || h < ph || w < ph {
                    return Err(unsupported(format!("a {ph}x{ph} pool with stride {sy} does not fit the {h}x{w} input")));
                }
                let mode = if kind == "MaxPooling2D" { "max" } else { "avg" };
                specs.push(json!({"type": "pool", "name": name, "size": ph, "stride": sy, "mode": mode}));
                weights.push(vec![]);
                shape = Some([d, (h - ph) / sy + 1, (w - ph) / sy + 1]);
            }
            "Flatten" => {
                if h * w > 1 {
                    flattened_hwc = Some([d, h, w]);
                }
            }
            "Dense" => {
                let units = c["units"].as_u64().ok_or_else(|| unsupported("no units".into()))? as usize;
                let bias = c["use_bias"].as_bool().unwrap_or(true);
                let fan_in = d * h * w;
                let kernel = take(&name, "kernel")?;
                if kernel.shape != [fan_in, units] {
                    return Err(unsupported(format!("kernel shape {:?} is not [{fan_in}, {units}]", kernel.shape)));
                }
                if h * w > 1 && flattened_hwc.is_none() {
                    return Err(unsupported("a Dense layer on a spatial map needs a Flatten before it".into()));
                }
                // kernel [in, out] -> (out, in); with a channels-last flatten before it, input
                // row (y, x, c) moves to PyTorch's (c, y, x).
                let mut wt = vec![0f32; kernel.values.len()];
                for r in 0..fan_in {
                    let chw = match flattened_hwc {
                        Some([fd, fh, fw]) => {
                            let (y, x, ch) = (r / (fw * fd), (r / fd) % fw, r % fd);
                            (ch * fh + y) * fw + x
                        }
                        None => r,
                    };
                    for u in 0..units {
                        wt[u * fan_in + chw] = kernel.values[r * units + u];
                    }
                }
                flattened_hwc = None;
                let mut lw = vec![wt];
                if bias {
                    lw.push(take(&name, "bias")?.values);
                }
                let layer = json!({"type": "fc", "name": name, "units": units, "bias": bias});
                push_activation(&mut specs, layer.as_object().unwrap().clone(), activation("activation")?);
                weights.push(lw);
                if specs.last().is_some_and(|s| s["type"] == "softmax") {
                    weights.push(vec![]);
                }
                shape = Some([units, 1, 1]);
            }
            "Activation" | "ReLU" | "Softmax" => {
                let act = match kind {
                    "ReLU" => Some("relu"),
                    "Softmax" => Some("softmax"),
                    _ => activation("activation")?,
                };
                if kind == "ReLU" && (c["max_value"].is_number() || c["negative_slope"].as_f64().is_some_and(|s| s != 0.0)) {
                    return Err(unsupported("ReLU with max_value or negative_slope is not supported".into()));
                }
                match act {
                    None => {}
                    Some(a) => {
                        specs.push(json!({"type": a, "name": name}));
                        weights.push(vec![]);
                    }
                }
            }
            "Dropout" => {
                specs.push(json!({"type": "dropout", "name": name, "rate": c["rate"].as_f64().unwrap_or(0.5)}));
                weights.push(vec![]);
            }
            "BatchNormalization" => {
                if c["axis"].as_i64().is_some_and(|a| a != -1 && a != 3) {
                    return Err(unsupported("batch normalization over an axis other than channels".into()));
                }
                let eps = c["epsilon"].as_f64().unwrap_or(1e-3);
                let ones = vec![1f32; d];
                let zeros = vec![0f32; d];
                let gamma = if c["scale"].as_bool().unwrap_or(true) { take(&name, "gamma")?.values } else { ones };
                let beta = if c["center"].as_bool().unwrap_or(true) { take(&name, "beta")?.values } else { zeros };
                let mean = take(&name, "moving_mean")?.values;
                let var = take(&name, "moving_variance")?.values;
                specs.push(json!({"type": "batchnorm", "name": name, "eps": eps}));
                weights.push(vec![gamma, beta, mean, var]);
            }
            _ => {
                return Err(unsupported(
                    "this layer type is not supported; ConvLens reads InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Activation, ReLU, Softmax, Dropout and BatchNormalization".into(),
                ))
            }
        }
    }
    if !entries.is_empty() {
        let mut names: Vec<&String> = entries.keys().collect();
        names.sort();
        return Err(err(format!("the weights have tensors no layer uses: {names:?}")));
    }
    let name = config["config"]["name"].as_str().or(model["modelTopology"]["config"]["name"].as_str()).unwrap_or("tfjs-model");
    let spec = NetSpec::from_value(&json!({"name": name, "layers": specs}))?;
    // Check the sizes once more against the spec's own parameter list.
    for (layer, lw) in spec.layers.iter().zip(&weights) {
        let want: Vec<usize> = layer.params().iter().map(|p| p.shape.iter().product()).collect();
        let got: Vec<usize> = lw.iter().map(Vec::len).collect();
        if want != got {
            return Err(err(format!("layer '{}': weights of sizes {got:?} do not fit its parameters {want:?}", layer.name)));
        }
    }
    Ok(Model { spec, weights })
}
