//! Keras models through TF.js (crates/core/src/tfjs.rs): a functional model with every layer the
//! reader takes, made and saved by TensorFlow.js (scripts/make_keras_fixtures.mjs), read in its own
//! Keras 2 layout and rewritten into Keras 3's (as tensorflowjs_converter writes a Keras 3 model);
//! the logits and the input gradient of the top class equal the reference within 1e-4 of the
//! largest (scripts/keras_reference.py: the Keras graph evaluated in float64 PyTorch, its logits
//! checked against TensorFlow.js's; TF.js's own gradient is wrong at odd 'same' pools). Models ConvLens cannot read are refused with a message naming the layer.

use std::path::PathBuf;

use convlens_core::grad::{self, Objective, ReluRule};
use convlens_core::{Error, Net, tfjs};
use serde_json::{Value, json};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/keras/graph")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

fn shard(p: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(dir().join(p)).map_err(|e| Error::Weights(format!("{p}: {e}")))
}

fn model_json() -> Value {
    serde_json::from_slice(&read("model.json")).unwrap()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max) / scale.max(1e-12)
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// The model's logits and top-class gradients against the reference.
fn check(json: &Value, what: &str) {
    let model = tfjs::load(&json.to_string(), &mut shard).unwrap_or_else(|e| panic!("{what}: {e}"));
    let reference: Value = serde_json::from_slice(&read("reference.json")).unwrap();
    let net = Net::with_weights(model.spec.clone(), model.weights.clone(), &convlens_core::backend::cpu());
    assert_eq!(net.spec.input_shape(), [3, 20, 18]);
    for (k, r) in reference["images"].as_array().unwrap().iter().enumerate() {
        let image = floats(&r["image"]);
        let outs = net.forward_all(net.input_tensor(&image).unwrap());
        let score = net.spec.score_layer();
        let logits = pollster::block_on(convlens_core::read(outs[score].clone().flatten::<1>(0, 3))).unwrap();
        let e = rel_err(&logits, &floats(&r["logits"]));
        println!("{what}, image {k}: logits within {e:.1e} of the float64 reference");
        assert!(e < 1e-4, "{what}, image {k}: logits differ by {e:.2e}: {logits:?} vs {}", r["logits"]);
        let top = r["top"].as_u64().unwrap() as usize;
        let (_, g) = grad::input_grad(&net, &Objective::Class(top), &outs, ReluRule::Gradient).unwrap();
        let g = pollster::block_on(convlens_core::read(g.flatten::<1>(0, 3))).unwrap();
        let e = rel_err(&g, &floats(&r["grad"]));
        if std::env::var("DEBUG_KERAS").is_ok() {
            let want = floats(&r["grad"]);
            let mut d: Vec<(usize, f32, f32)> = g.iter().zip(&want).enumerate().map(|(i, (a, b))| (i, *a, *b)).collect();
            d.sort_by(|a, b| (b.1 - b.2).abs().total_cmp(&(a.1 - a.2).abs()));
            println!("worst (index c*360+y*18+x, ConvLens, TF.js): {:?}", &d[..8]);
        }
        println!("{what}, image {k}: gradient of class {top} within {e:.1e}");
        assert!(e < 1e-4, "{what}, image {k}: the gradient differs by {e:.2e}");
    }
}

#[test]
fn a_functional_keras_model_from_tfjs_matches_tfjs() {
    check(&model_json(), "Keras 2 layout (TF.js)");
    // The spec: one ConvLens layer per Keras layer but the Flatten (read by the Dense layer) and
    // the asymmetric 'same' padding's pad layer.
    let model = tfjs::load(&model_json().to_string(), &mut shard).unwrap();
    let names: Vec<&str> = model.spec.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "input",
            "rescale",
            "pad",
            "conv1",
            "bn1",
            "dw",
            "relu6",
            "project",
            "residual",
            "leaky",
            "maxpool",
            "avgpool",
            "avgpool2",
            "concat",
            "sep_depthwise",
            "sep",
            "conv2",
            "hsig",
            "tanh",
            "drop",
            "gap",
            "fc_flat",
            "fc_gap",
            "logits",
            "probs"
        ]
    );
}

/// The same model in Keras 3's layout: `batch_shape`, `__keras_tensor__` arguments, a `module` on
/// each layer, weights named by position within their layer.
fn keras3(mut m: Value) -> Value {
    let topo = &mut m["modelTopology"];
    topo["keras_version"] = json!("3.6.0");
    topo["class_name"] = json!("Functional");
    for l in topo["config"]["layers"].as_array_mut().unwrap() {
        l["module"] = json!("keras.layers");
        let c = l["config"].as_object_mut().unwrap();
        if let Some(s) = c.remove("batch_input_shape") {
            c.insert("batch_shape".into(), s);
        }
        let nodes = l["inbound_nodes"].as_array().unwrap().clone();
        l["inbound_nodes"] = json!(
            nodes
                .iter()
                .map(|node| {
                    let args: Vec<Value> = node
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(
                            |e| json!({"class_name": "__keras_tensor__", "config": {"shape": [null], "keras_history": [e[0], e[1], e[2]]}}),
                        )
                        .collect();
                    // One tensor is the call's only argument; several are one list argument.
                    if args.len() == 1 { json!({"args": args, "kwargs": {}}) } else { json!({"args": [args], "kwargs": {}}) }
                })
                .collect::<Vec<_>>()
        );
    }
    topo["config"]["input_layers"] = json!(["image", 0, 0]);
    topo["config"]["output_layers"] = json!(["probs", 0, 0]);
    // Weights by position: conv1/kernel -> conv1/0, ...
    let mut counts = std::collections::HashMap::<String, usize>::new();
    let order = |field: &str| {
        ["kernel", "depthwise_kernel", "pointwise_kernel", "gamma", "beta", "moving_mean", "moving_variance", "bias"]
            .iter()
            .position(|f| *f == field)
            .unwrap()
    };
    let ws = m["weightsManifest"][0]["weights"].as_array_mut().unwrap();
    // Keras orders a layer's variables kernel (depthwise, pointwise), bias; gamma, beta, mean, variance.
    let mut by_layer: Vec<(String, String, usize)> = ws
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let n = w["name"].as_str().unwrap();
            let (l, f) = n.rsplit_once('/').unwrap();
            (l.to_string(), f.to_string(), i)
        })
        .collect();
    by_layer.sort_by_key(|(l, f, _)| (l.clone(), if f == "bias" { 10 } else { order(f) }));
    for (l, _, i) in by_layer {
        let n = counts.entry(l.clone()).or_insert(0);
        ws[i]["name"] = json!(format!("{l}/{n}"));
        *n += 1;
    }
    m
}

#[test]
fn the_same_model_in_keras_3_layout_matches() {
    // hard_sigmoid differs between the layouts; swap it for relu6 in both (the TF.js reference is
    // for 0.2x + 0.5, so compare the Keras 3 reading with the Keras 2 one on the swapped model).
    let m = model_json();
    let swapped = |mut m: Value| {
        for l in m["modelTopology"]["config"]["layers"].as_array_mut().unwrap() {
            if l["config"]["activation"] == "hard_sigmoid" {
                l["config"]["activation"] = json!("relu6");
            }
        }
        m
    };
    let a = tfjs::load(&swapped(m.clone()).to_string(), &mut shard).unwrap();
    let b = tfjs::load(&keras3(swapped(m.clone())).to_string(), &mut shard).unwrap();
    assert_eq!(a.weights, b.weights);
    let (mut ja, mut jb) = (a.spec.json.clone(), b.spec.json.clone());
    ja["name"] = json!("");
    jb["name"] = json!("");
    assert_eq!(ja, jb);
    // And hard_sigmoid is Keras 3's there.
    let k3 = tfjs::load(&keras3(m).to_string(), &mut shard).unwrap();
    let hs = k3.spec.json["layers"].as_array().unwrap().iter().find(|l| l["name"] == "hsig").unwrap().clone();
    assert!((hs["alpha"].as_f64().unwrap() - 1.0 / 6.0).abs() < 1e-12, "{hs}");
}

fn refused(m: &Value) -> String {
    match tfjs::load(&m.to_string(), &mut shard) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("read"),
    }
}

#[test]
fn models_convlens_cannot_read_are_refused_naming_the_layer() {
    let with = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut m = model_json();
        f(m["modelTopology"]["config"]["layers"].as_array_mut().unwrap());
        m
    };
    let e = refused(&with(&|ls| ls[5]["class_name"] = json!("LSTM")));
    assert!(e.contains("layer 5 'dw' (LSTM): this layer type is not supported; ConvLens reads InputLayer"), "{e}");
    let e = refused(&with(&|ls| ls[3]["config"]["activation"] = json!("gelu")));
    assert!(e.contains("layer 3 'conv1' (Conv2D): activation 'gelu' is not supported"), "{e}");
    let e = refused(&with(&|ls| ls[5]["inbound_nodes"] = json!([[["bn1", 0, 0, {}]], [["conv1", 0, 0, {}]]])));
    assert!(e.contains("'dw' (DepthwiseConv2D): it is applied 2 times (a shared layer)"), "{e}");
    let e = refused(&with(&|ls| ls[5]["inbound_nodes"] = json!([[["later", 0, 0, {}]]])));
    assert!(e.contains("it reads 'later', which is not a layer before it"), "{e}");
    let e = refused(&with(&|ls| ls[5]["class_name"] = json!("Functional")));
    assert!(e.contains("a model inside the model"), "{e}");
    let e = refused(&with(&|ls| ls[3]["config"]["kernel_size"] = json!([1, 3])));
    assert!(e.contains("a 1x3 kernel"), "{e}");
    // A Flatten read by something other than Dense or an elementwise layer.
    let e = refused(&with(&|ls| {
        let gap = ls.iter().position(|l| l["name"] == "gap").unwrap();
        ls[gap]["inbound_nodes"] = json!([[["flatten", 0, 0, {}]]]);
    }));
    assert!(e.contains("'gap' (GlobalAveragePooling2D): it reads the Flatten of a"), "{e}");
    let mut m = model_json();
    m["modelTopology"]["config"]["output_layers"] = json!([["fc_gap", 0, 0]]);
    assert!(refused(&m).contains("the output 'fc_gap' is not the last layer computed"));
    m["modelTopology"]["config"]["output_layers"] = json!([["probs", 0, 0], ["fc_gap", 0, 0]]);
    assert!(refused(&m).contains("the model has 2 outputs"));
    let mut m = model_json();
    m["format"] = json!("graph-model");
    assert!(refused(&m).contains("a TF.js graph model"));
    // An input of no fixed size; a shard named twice; a Flatten of a map as the output.
    let e = refused(&with(&|ls| ls[0]["config"]["batch_input_shape"] = json!([null, null, null, 3])));
    assert!(e.contains("has no fixed size"), "{e}");
    let mut m = model_json();
    m["weightsManifest"][0]["paths"] = json!(["group1-shard1of1.bin", "group1-shard1of1.bin"]);
    assert!(refused(&m).contains("the manifest names the weight file 'group1-shard1of1.bin' twice"));
    let mut m = model_json();
    let ls = m["modelTopology"]["config"]["layers"].as_array_mut().unwrap();
    let flatten = ls.iter().position(|l| l["name"] == "flatten").unwrap();
    ls.truncate(flatten + 1);
    m["modelTopology"]["config"]["output_layers"] = json!([["flatten", 0, 0]]);
    m["weightsManifest"][0]["weights"] = json!(
        m["weightsManifest"][0]["weights"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| !w["name"].as_str().unwrap().starts_with("fc_"))
            .collect::<Vec<_>>()
    );
    let e = match tfjs::load(&m.to_string(), &mut |p| shard(p).map(|b| b[..b.len() - 4 * (360 * 10 + 10 + 12 * 10 + 10)].to_vec())) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("read"),
    };
    assert!(e.contains("the output 'flatten' is the Flatten of a"), "{e}");
    // A missing weight names itself; a weight no layer reads is named too.
    let mut m = model_json();
    m["weightsManifest"][0]["weights"][0]["name"] = json!("other/kernel");
    let e = refused(&m);
    assert!(e.contains("the weights have no 'conv1/kernel' for layer 'conv1'"), "{e}");
}

/// Layer names longer than messages show, tf.keras's list-valued axes, and a Keras 2 file that
/// carries Keras 3's `module` fields (its stated version decides hard_sigmoid's slope).
#[test]
fn long_names_list_axes_and_the_stated_version() {
    let mut m = model_json();
    let long = "a_very_long_layer_name_that_goes_on_and_on_well_past_sixty_characters_dw";
    for l in m["modelTopology"]["config"]["layers"].as_array_mut().unwrap() {
        if l["name"] == "dw" {
            l["name"] = json!(long);
            l["config"]["name"] = json!(long);
        }
        if l["name"] == "relu6" {
            l["inbound_nodes"] = json!([[[long, 0, 0, {}]]]);
        }
        if l["name"] == "bn1" {
            l["config"]["axis"] = json!([3]);
        }
        l["module"] = json!("keras.layers");
    }
    m["modelTopology"]["keras_version"] = json!("2.15.0");
    for w in m["weightsManifest"][0]["weights"].as_array_mut().unwrap() {
        let n = w["name"].as_str().unwrap().to_string();
        if let Some(rest) = n.strip_prefix("dw/") {
            w["name"] = json!(format!("{long}/{rest}"));
        }
    }
    let k = tfjs::load(&m.to_string(), &mut shard).unwrap();
    let hs = k.spec.json["layers"].as_array().unwrap().iter().find(|l| l["name"] == "hsig").unwrap().clone();
    assert_eq!(hs["alpha"], json!(0.2), "Keras 2's slope: the stated version wins");
    let plain = tfjs::load(&model_json().to_string(), &mut shard).unwrap();
    assert_eq!(k.weights, plain.weights);
}
