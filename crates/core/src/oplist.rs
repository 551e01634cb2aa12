//! A network given as a TFLite-style op list (the float32 conversion of MobileNetV2 in the data
//! directory: `mobilenet_v2_f32.json` with its safetensors): ops in execution order, each with
//! tensor ids for its inputs and outputs. Each op becomes a layer named `op<i>` (so its weights,
//! `op<i>.weight` / `op<i>.bias`, load as they are), tensors become `inputs` edges, and the
//! uint8 input's dequantization (x/127.5 - 1 of 0..255 bytes, i.e. 2x - 1 of [0, 1] pixels) becomes
//! a `scale` layer, so that the net takes [0, 1] images as every other net here does.
//!
//! Ops: CONV_2D, DEPTHWISE_CONV_2D (SAME or VALID padding, fused relu6/relu/none), ADD,
//! AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE (a no-op before the softmax), SOFTMAX.

use serde_json::{Value, json};
use std::collections::HashMap;

use crate::Error;
use crate::spec::NetSpec;

fn err(m: impl Into<String>) -> Error {
    Error::Weights(m.into())
}

/// Builds the spec of an op list; `weight_shape` gives a weight tensor's shape by name (from the
/// safetensors file), `classes` the class names if known.
pub fn spec(op_list: &str, weight_shape: &dyn Fn(&str) -> Option<Vec<usize>>, classes: Option<Vec<String>>) -> Result<NetSpec, Error> {
    let v: Value = crate::spec::strict_json(op_list).map_err(|e| err(format!("the op list is not valid JSON ({e})")))?;
    let shape = v["input_shape_nhwc"].as_array().and_then(|a| a.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<Vec<_>>>());
    let Some([_, h, w, c]) = shape.as_deref().and_then(|s| <[usize; 4]>::try_from(s).ok()) else {
        return Err(err("the op list has no input_shape_nhwc [1, H, W, C]"));
    };
    let input = v["input_tensor"].as_u64().ok_or_else(|| err("the op list has no input_tensor"))?;
    let mut layers = vec![json!({"type": "input", "name": "input", "width": w, "height": h, "depth": c})];
    // Where each tensor id comes from (a layer name).
    let mut producer: HashMap<u64, String> = HashMap::new();
    match v.get("input_quant") {
        Some(q) if q.is_object() => {
            // Bytes b = 255 x; the op list's model takes (b - zero_point) * scale.
            let (s, z) = (q["scale"].as_f64().unwrap_or(1.0), q["zero_point"].as_f64().unwrap_or(0.0));
            layers.push(json!({"type": "scale", "name": "normalize", "scale": 255.0 * s, "offset": -z * s}));
            producer.insert(input, "normalize".into());
        }
        _ => {
            producer.insert(input, "input".into());
        }
    }
    let ops = v["ops"].as_array().ok_or_else(|| err("the op list has no ops"))?;
    for (i, op) in ops.iter().enumerate() {
        let kind = op["op"].as_str().unwrap_or("?");
        let ids: Vec<u64> = op["inputs"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        let out = op["outputs"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .ok_or_else(|| err(format!("op {i} ({kind}) has no output")))?;
        let from = |id: u64| {
            producer.get(&id).cloned().ok_or_else(|| err(format!("op {i} ({kind}) reads tensor {id}, which no earlier op writes")))
        };
        let first = || ids.first().copied().ok_or_else(|| err(format!("op {i} ({kind}) has no input")));
        let name = format!("op{i}");
        let act = match op["act"].as_str().unwrap_or("none") {
            "none" => Value::Null,
            a @ ("relu" | "relu6") => json!(a),
            a => return Err(err(format!("op {i} ({kind}): fused activation '{a}' is not supported"))),
        };
        let padding = match op["padding"].as_str() {
            Some("SAME") => "same",
            _ => "valid",
        };
        let stride = op["stride"].as_array().and_then(|s| s.first()).and_then(Value::as_u64).unwrap_or(1);
        let layer = match kind {
            "CONV_2D" | "DEPTHWISE_CONV_2D" => {
                let wname = op["weight"].as_str().unwrap_or("");
                let ws = weight_shape(wname).ok_or_else(|| err(format!("op {i} ({kind}): the weights have no '{wname}'")))?;
                if ws.len() != 4 || ws[2] != ws[3] {
                    return Err(err(format!("op {i} ({kind}): weight '{wname}' has shape {ws:?}; expected (out, in, k, k)")));
                }
                let groups = if kind == "DEPTHWISE_CONV_2D" { ws[0] } else { 1 };
                json!({"type": "conv", "name": name, "inputs": [from(first()?)?], "size": ws[2], "filters": ws[0], "stride": stride,
                       "padding": padding, "groups": groups, "activation": act, "bias": op["bias"].is_string()})
            }
            "ADD" => {
                if !act.is_null() {
                    return Err(err(format!("op {i} (ADD): a fused activation on an add is not supported")));
                }
                json!({"type": "add", "name": name, "inputs": ids.iter().map(|&id| from(id)).collect::<Result<Vec<_>, _>>()?})
            }
            "AVERAGE_POOL_2D" | "MAX_POOL_2D" => {
                let k = op["kernel"]
                    .as_array()
                    .and_then(|s| s.first())
                    .and_then(Value::as_u64)
                    .ok_or_else(|| err(format!("op {i} ({kind}) has no kernel")))?;
                if padding != "valid" {
                    return Err(err(format!("op {i} ({kind}): only VALID pooling is supported")));
                }
                json!({"type": "pool", "name": name, "inputs": [from(first()?)?], "size": k, "stride": stride,
                       "mode": if kind == "MAX_POOL_2D" { "max" } else { "avg" }})
            }
            "RESHAPE" => {
                // A flatten before the softmax: the same values, nothing to compute.
                producer.insert(out, from(first()?)?);
                continue;
            }
            "SOFTMAX" => json!({"type": "softmax", "name": name, "inputs": [from(first()?)?]}),
            other => {
                return Err(err(format!(
                    "op {i}: {other} is not supported (CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE, SOFTMAX)"
                )));
            }
        };
        producer.insert(out, name);
        layers.push(layer);
    }
    let mut spec = json!({"name": v["source"].as_str().unwrap_or("op-list model"), "layers": layers});
    if let Some(names) = classes {
        spec["classes"] = json!(names);
    }
    Ok(NetSpec::from_value(&spec)?)
}
