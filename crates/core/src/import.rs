//! A user's own model from the files they give together (dropped on a page, picked, fetched from a
//! `?model=` link, or named on the command line): which file is the model and in which format, the
//! files it needs beside it (TF.js weight shards, an op list's weights, a spec's safetensors), a
//! labels file, and the input normalization; the result is a ConvLens spec and weights named after
//! the file, and a summary of what was found for the page to show.
//!
//! Formats: ONNX (`.onnx`, [`crate::onnx`]), TF.js layers models (`model.json` + `.bin` shards,
//! Keras's, [`crate::tfjs`]), TFLite (`.tflite`, [`crate::tflite`]), ConvLens's own safetensors
//! (the spec in its metadata) or a ConvLens spec `.json` with a `.safetensors` of weights. Class
//! names: a `.txt` file, one name per line. Normalization (`(x - mean) / std` per channel on
//! [0, 1] images): given, else the ONNX file's own (`convlens.mean`/`convlens.std` metadata);
//! it becomes the net's first layer (`scale`, named `normalize`), so that every view takes and
//! shows [0, 1] images and gradients reach them.

use serde_json::{Value, json};

use crate::Error;
use crate::spec::NetSpec;

fn err(m: impl Into<String>) -> Error {
    Error::Model(m.into())
}

/// How an imported model's input is normalized: `(x - mean) / std` per channel, on [0, 1] images.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Normalize {
    /// The `scale` layer that computes it for a `channels`-channel input.
    pub fn layer(&self, channels: usize) -> Result<Value, Error> {
        if self.mean.len() != channels || self.std.len() != channels || self.std.iter().any(|s| !(s.abs() > 1e-6 && s.is_finite())) {
            return Err(err(format!(
                "the normalization needs {channels} means and {channels} non-zero standard deviations (one per input channel), got {:?} and {:?}",
                self.mean, self.std
            )));
        }
        if let Some(m) = self.mean.iter().find(|m| !(m.abs() <= 1e6)) {
            return Err(err(format!("the normalization's mean {m} is out of range")));
        }
        let scale: Vec<f64> = self.std.iter().map(|s| 1.0 / s).collect();
        let offset: Vec<f64> = self.mean.iter().zip(&self.std).map(|(m, s)| -m / s).collect();
        Ok(json!({"type": "scale", "name": "normalize", "scale": scale, "offset": offset}))
    }
}

/// A model opened from the user's files.
pub struct Imported {
    pub spec: NetSpec,
    /// Per layer, its parameters in [`crate::spec::Layer::params`]' order.
    pub weights: Vec<Vec<Vec<f32>>>,
    /// What was found, for the page's summary: `file`, `format`, `classes` (how many scores),
    /// `labels` (the labels file's name, or null), `normalize` ({mean, std, from: "file" |
    /// "settings"} or null), `files` (every file given).
    pub info: Value,
}

/// The kinds of file a drop may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Onnx,
    Tfjs,
    Tflite,
    Safetensors,
    /// A ConvLens spec (JSON with `layers`).
    Spec,
    /// TF.js weight shard or other binary companion.
    Bin,
    Labels,
}

/// What a file is, by its name and its first bytes; or why it cannot be opened.
fn kind(name: &str, bytes: &[u8]) -> Result<Kind, Error> {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    Ok(match ext {
        "onnx" => Kind::Onnx,
        "tflite" => Kind::Tflite,
        "safetensors" => Kind::Safetensors,
        "bin" => Kind::Bin,
        "txt" => Kind::Labels,
        "json" => {
            let head = &bytes[..bytes.len().min(4096)];
            if head.windows(13).any(|w| w == b"modelTopology") { Kind::Tfjs } else { Kind::Spec }
        }
        "h5" | "keras" => {
            return Err(err(format!(
                "{name} is a Keras file; convert it for the browser with tensorflowjs_converter --input_format=keras {name} out/ \
                 and open out/model.json with its .bin files"
            )));
        }
        "pt" | "pth" | "ckpt" => {
            return Err(err(format!(
                "{name} is a PyTorch checkpoint; export the model with torch.onnx.export(model, torch.rand(1, 3, H, W), 'model.onnx') and open the .onnx"
            )));
        }
        "pb" => {
            return Err(err(format!(
                "{name} is a TensorFlow graph; ConvLens opens Keras models as TF.js layers models (tensorflowjs_converter)"
            )));
        }
        _ if bytes.len() >= 8 && &bytes[4..8] == b"TFL3" => Kind::Tflite,
        _ => {
            return Err(err(format!(
                "{} is not a model ConvLens opens: give a .onnx, a TF.js model.json with its .bin files, a .tflite, or a .safetensors \
                 (with its ConvLens spec .json if it has none inside), and a .txt of class names if you have one",
                crate::spec::cut(name, 60)
            )));
        }
    })
}

/// Opens the model among `files` (name, bytes), with the files beside it. `normalize` overrides
/// the file's own normalization.
pub fn open_files(files: &[(String, Vec<u8>)], normalize: Option<Normalize>) -> Result<Imported, Error> {
    let kinds = files.iter().map(|(n, b)| kind(n, b).map(|k| (n.as_str(), k))).collect::<Result<Vec<_>, _>>()?;
    let main: Vec<&(&str, Kind)> = kinds.iter().filter(|(_, k)| matches!(k, Kind::Onnx | Kind::Tfjs | Kind::Tflite | Kind::Spec)).collect();
    let main = match main.as_slice() {
        [one] => one.0,
        [] => match kinds.iter().filter(|(_, k)| *k == Kind::Safetensors).collect::<Vec<_>>().as_slice() {
            [one] => one.0,
            [] => {
                return Err(err(
                    "none of the files is a model: give a .onnx, a TF.js model.json with its .bin files, a .tflite or a .safetensors",
                ));
            }
            many => return Err(err(format!("give one model at a time; these are all models: {}", names(many)))),
        },
        many => return Err(err(format!("give one model at a time; these are all models: {}", names(many)))),
    };
    let labels: Vec<&str> = kinds.iter().filter(|(_, k)| *k == Kind::Labels).map(|(n, _)| *n).collect();
    if labels.len() > 1 {
        return Err(err(format!("give one labels file (class names, one per line); these are all .txt files: {}", labels.join(", "))));
    }
    let bytes = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, b)| b.clone());
    let main_bytes = bytes(main).expect("listed");
    open(
        main,
        &main_bytes,
        &mut |want: Companion| match want {
            Companion::Named(p) => {
                // A shard by its name in the manifest (the dropped file has no folder).
                let base = p.rsplit('/').next().unwrap_or(p);
                bytes(base).map(Ok)
            }
            Companion::Labels => labels.first().and_then(|n| bytes(n)).map(Ok),
            Companion::Weights => {
                let w: Vec<&str> = kinds.iter().filter(|(_, k)| *k == Kind::Safetensors).map(|(n, _)| *n).collect();
                w.first().and_then(|n| bytes(n)).map(Ok)
            }
        },
        normalize,
    )
    .map(|mut m| {
        m.info["files"] = json!(files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>());
        m.info["labels"] = json!(labels.first());
        m
    })
}

fn names(list: &[&(&str, Kind)]) -> String {
    list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// A file the model asks for beside it.
pub enum Companion<'a> {
    /// A TF.js weight shard, by its path in the manifest.
    Named(&'a str),
    /// The labels file (class names, one per line), if any.
    Labels,
    /// A ConvLens spec's weights (a .safetensors), if any.
    Weights,
}

/// Opens the model file `name`; `beside` gives the files it asks for (None: not there).
pub fn open(
    name: &str,
    bytes: &[u8],
    beside: &mut dyn FnMut(Companion) -> Option<Result<Vec<u8>, Error>>,
    normalize: Option<Normalize>,
) -> Result<Imported, Error> {
    let kind = kind(name, bytes)?;
    let labels = match beside(Companion::Labels).transpose()? {
        Some(b) => {
            let text = String::from_utf8(b).map_err(|_| err("the labels file is not UTF-8 text"))?;
            let names: Vec<String> =
                text.trim_start_matches('\u{feff}').lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
            if names.is_empty() {
                return Err(err("the labels file holds no class names (one per line)"));
            }
            Some(names)
        }
        None => None,
    };
    let stem = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = stem.rsplit_once('.').map(|(s, _)| s).unwrap_or(stem);
    let (spec, weights, format) = match kind {
        Kind::Onnx => {
            // The ONNX reader applies the normalization itself (it knows the file's own).
            let m = crate::onnx::read(bytes, normalize.clone(), None)?;
            let from = m.normalize.as_ref().map(|_| if normalize.is_some() { "settings" } else { "file" });
            let n = m.normalize.clone().map(|n| (n, from.unwrap_or("file")));
            let format = if m.producer.is_empty() { "ONNX".to_string() } else { format!("ONNX from {}", m.producer) };
            return finish(m.spec.json, m.weights, labels, format, n, name, stem, false, false);
        }
        Kind::Tfjs => {
            let text = std::str::from_utf8(bytes).map_err(|_| err(format!("{name} is not UTF-8 JSON")))?;
            let m = crate::tfjs::load(text, &mut |p| {
                beside(Companion::Named(p)).unwrap_or_else(|| {
                    Err(Error::Weights(format!("the weight file '{p}' that {name} names is missing: give it together with {name}")))
                })
            })?;
            let version = crate::spec::strict_json(text).ok().and_then(|v| {
                let t = &v["modelTopology"];
                t["keras_version"].as_str().or(t["model_config"]["keras_version"].as_str()).map(str::to_string)
            });
            let format = match version {
                Some(v) => format!("TF.js layers model ({v})"),
                None => "TF.js layers model".to_string(),
            };
            (m.spec.json, m.weights, format)
        }
        Kind::Tflite => {
            let m = crate::tflite::read(bytes)?;
            let spec = m.spec(None)?;
            let w = m.layer_weights(&spec)?;
            (spec.json, w, "TFLite".to_string())
        }
        Kind::Safetensors => {
            let spec = crate::weights::embedded_spec(bytes)?.ok_or_else(|| {
                err(format!("{name} carries no network spec: give the ConvLens spec (.json) it was trained with together with it"))
            })?;
            let spec = NetSpec::parse(&spec)?;
            let w = crate::weights::load(&spec, bytes)?;
            (spec.json, w, "ConvLens safetensors".to_string())
        }
        Kind::Spec => {
            let text = std::str::from_utf8(bytes).map_err(|_| err(format!("{name} is not UTF-8 JSON")))?;
            let spec = NetSpec::parse(text)?;
            let w = beside(Companion::Weights)
                .transpose()?
                .ok_or_else(|| err(format!("{name} is a network spec without weights: give its .safetensors together with it")))?;
            let w = crate::weights::load(&spec, &w)?;
            (spec.json, w, "ConvLens spec and weights".to_string())
        }
        Kind::Bin | Kind::Labels => {
            return Err(err(format!("{name} is not a model by itself (a weight shard or a labels file): give the model with it")));
        }
    };
    let n = normalize.map(|n| (n, "settings"));
    finish(spec, weights, labels, format, n, name, stem, true, kind == Kind::Tfjs)
}

/// The spec named after its file, with class names and (`add`: for formats other than ONNX,
/// which adds its own) the normalization layer; the summary.
#[allow(clippy::too_many_arguments)]
fn finish(
    mut spec: Value,
    mut weights: Vec<Vec<Vec<f32>>>,
    labels: Option<Vec<String>>,
    format: String,
    normalize: Option<(Normalize, &str)>,
    file: &str,
    stem: &str,
    add: bool,
    keep_name: bool,
) -> Result<Imported, Error> {
    // Named after the file; a TF.js model.json (always so named) after the Keras model instead.
    if spec["name"].as_str().is_none_or(|_| !keep_name) {
        spec["name"] = json!(stem);
    }
    if let Some((n, _)) = normalize.as_ref().filter(|_| add) {
        let channels = NetSpec::from_value(&spec)?.input_shape()[0];
        let layers = spec["layers"].as_array_mut().ok_or_else(|| err("the spec has no layers"))?;
        if layers.get(1).and_then(|l| l["name"].as_str()) == Some("normalize") {
            return Err(err("the model already has a normalize layer"));
        }
        let input = layers[0]["name"].as_str().unwrap_or("input").to_string();
        for l in layers.iter_mut().skip(1) {
            if let Some(ins) = l.get_mut("inputs").and_then(Value::as_array_mut) {
                for i in ins.iter_mut().filter(|i| i.as_str() == Some(&input)) {
                    *i = json!("normalize");
                }
            }
        }
        let mut layer = n.layer(channels)?;
        if layers.iter().any(|l| l.get("inputs").is_some()) {
            layer["inputs"] = json!([input]);
        }
        layers.insert(1, layer);
        weights.insert(1, vec![]);
    }
    let classes = NetSpec::from_value(&spec)?.classes();
    if let Some(names) = &labels {
        if names.len() != classes {
            return Err(err(format!(
                "the labels file has {} class names; the model gives {classes} scores (one name per line, one line per class)",
                names.len()
            )));
        }
        spec["classes"] = json!(names);
    }
    let spec = NetSpec::from_value(&spec)?;
    let info = json!({
        "file": file,
        "format": format,
        "classes": classes,
        "labels": null,
        "normalize": normalize.map(|(n, from)| json!({"mean": n.mean, "std": n.std, "from": from})),
        "files": [file],
    });
    Ok(Imported { spec, weights, info })
}
