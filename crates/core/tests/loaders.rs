//! The model loaders on tiny fixtures that scripts/make_loader_fixtures.py makes (tests/fixtures/loaders/), so
//! that they are tested without the data directory: a quantized .tflite shaped like Coral's MobileNetV2
//! (tflite.rs: uint8 input, uint8 and int8 weights per tensor and per channel, int32 biases, SAME padding,
//! relu6, a residual add, a global average pool, reshape and softmax), the same network as a float32 op list
//! with its safetensors (oplist.rs), and a Keras Sequential TF.js layers model in two weight shards (tfjs.rs),
//! each against PyTorch float64 references; a truncated or corrupt .tflite is an error with a message, not a
//! panic.

use convlens_core::layers::{add::Add, conv::Conv, scale::Scale};
use convlens_core::spec::{Activation, LayerKind, NetSpec};
use convlens_core::{Error, Net, oplist, tfjs, tflite, weights};
use safetensors::SafeTensors;
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/loaders")
}

fn fixture(file: &str) -> Vec<u8> {
    std::fs::read(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run scripts/make_loader_fixtures.py)"))
}

/// One network's entry of expected.json ("tiny": the .tflite and its op list; "tfjs").
fn expected(net: &str) -> Value {
    let all: Value = serde_json::from_slice(&fixture("expected.json")).unwrap();
    all[net].clone()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// A fixture image as ConvLens takes images: its uint8 pixels (C, H, W) / 255.
fn image(case: &Value) -> Vec<f32> {
    case["pixels"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as f32 / 255.0).collect()
}

/// Every layer's output for one image, flattened (the input first).
fn outputs(net: &Net, image: &[f32]) -> Vec<Vec<f32>> {
    let x = net.input_tensor(image).unwrap();
    net.forward_all(x).into_iter().map(|t| pollster::block_on(convlens_core::read(t.flatten::<1>(0, 3))).unwrap()).collect()
}

/// `got` within `tol` of `want`, relative to `want`'s largest magnitude.
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, want {}", got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, w| m.max(w.abs()));
    let worst = got.iter().zip(want).fold(0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    assert!(worst <= tol * scale, "{what}: off by {worst:.3e} (largest value {scale:.3e})\n got {got:?}\nwant {want:?}");
}

/// The layer names, class count, parameter count and input shape that expected.json gives.
fn check_spec(spec: &NetSpec, fixture: &Value) {
    let names: Vec<&str> = spec.layers.iter().map(|l| l.name.as_str()).collect();
    let want: Vec<&str> = fixture["layers"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, want);
    assert_eq!(spec.classes(), fixture["classes"].as_u64().unwrap() as usize);
    assert_eq!(spec.param_count(), fixture["param_count"].as_u64().unwrap() as usize);
    assert_eq!(spec.input_shape().to_vec(), usizes(&fixture["shape"]));
}

/// The net's logits (its score layer) and probabilities (its last layer) on each fixture image against
/// PyTorch's, to 1e-4 of the largest value; returns the probabilities.
fn check_against_pytorch(what: &str, net: &Net, fixture: &Value) -> Vec<Vec<f32>> {
    let score = net.spec.score_layer();
    let mut probs = vec![];
    for (k, case) in fixture["images"].as_array().unwrap().iter().enumerate() {
        let mut outs = outputs(net, &image(case));
        assert_close(&format!("{what}, image {k}: logits"), &outs[score], &f64s(&case["logits"]), 1e-4);
        let p = outs.pop().unwrap();
        assert_close(&format!("{what}, image {k}: probabilities"), &p, &f64s(&case["probs"]), 1e-4);
        probs.push(p);
    }
    probs
}

/// A weight shard of the TF.js fixture.
fn shard(path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(dir().join("tiny_tfjs").join(path)).map_err(|e| Error::Weights(format!("{path}: {e}")))
}

/// Reads a .tflite as the page and the CLI do: the model, its spec, its weights.
fn load_tflite(bytes: &[u8]) -> Result<(), Error> {
    let model = tflite::read(bytes)?;
    let spec = model.spec(None)?;
    model.layer_weights(&spec)?;
    Ok(())
}

#[test]
fn the_tflite_fixture_reads_as_its_dequantized_weights_and_matches_pytorch() {
    let fx = expected("tiny");
    let model = tflite::read(&fixture("tiny.tflite")).unwrap();

    // The op list it becomes is the fixture's (tensor ids, strides, padding, fused activations, weight names);
    // RESHAPE keeps its data input only.
    let ops: Value = serde_json::from_slice(&fixture("tiny_oplist.json")).unwrap();
    for key in ["input_tensor", "output_tensor", "input_shape_nhwc", "input_quant"] {
        assert_eq!(model.op_list[key], ops[key], "{key}");
    }
    assert_eq!(model.op_list["input_quant"], fx["input_quant"]);
    let (got, want) = (model.op_list["ops"].as_array().unwrap(), ops["ops"].as_array().unwrap());
    assert_eq!(got.len(), want.len(), "ops");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for key in ["op", "outputs", "stride", "padding", "kernel", "weight", "bias"] {
            assert_eq!(g[key], w[key], "op {i}: {key}");
        }
        if w.get("act").is_some() {
            assert_eq!(g["act"], w["act"], "op {i}: act");
        }
        let (gi, wi) = (g["inputs"].as_array().unwrap(), w["inputs"].as_array().unwrap());
        let n = if w["op"] == "RESHAPE" { 1 } else { wi.len() };
        assert_eq!(&gi[..], &wi[..n], "op {i}: inputs");
    }

    let spec = model.spec(None).unwrap();
    check_spec(&spec, &fx);
    // The uint8 input's dequantization, (255 x - 128) / 128 of [0, 1] pixels; TensorFlow's SAME padding (a 3x3
    // stride-2 convolution of 8x8 pads 0 on top and left, 1 at the bottom and right); the depthwise groups; the
    // residual add of the projection (layer 4) and the first convolution (layer 2).
    assert_eq!(spec.layers[1].kind, LayerKind::Scale(Scale { scale: vec![255.0 * 0.0078125], offset: vec![-128.0 * 0.0078125] }));
    let conv = |stride, pad, pad_end, groups, activation| {
        LayerKind::Conv(Conv { size: 3, filters: 8, stride, pad, pad_end, groups, dilation: 1, bias: true, activation })
    };
    assert_eq!(spec.layers[2].kind, conv(2, 0, 1, 1, Some(Activation::Relu6)));
    assert_eq!(spec.layers[3].kind, conv(1, 1, 0, 8, Some(Activation::Relu6)));
    assert_eq!(spec.layers[5].kind, LayerKind::Add(Add));
    assert_eq!(spec.layers[5].inputs, [4, 2]);
    assert_eq!(spec.layers[6].out_shape, [8, 1, 1]);

    // The dequantized weights are exactly the fixture's float32 ones ((q - zero_point) * scale in float32:
    // uint8 per tensor, uint8 per channel along dimension 3 with a zero point per channel, int8 per channel along
    // dimension 0, int32 biases), in ConvLens's layouts.
    let w = model.layer_weights(&spec).unwrap();
    let bytes = fixture("tiny_oplist.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(model.weights.len(), st.names().len());
    for (layer, lw) in spec.layers.iter().zip(&w) {
        for (p, v) in layer.params().iter().zip(lw) {
            let t = st.tensor(&p.name).unwrap();
            assert_eq!(t.shape(), p.shape.as_slice(), "{}", p.name);
            let want: Vec<f32> = t.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            assert_eq!(v, &want, "{}: tflite.rs's dequantized weights differ from the fixture's", p.name);
        }
    }

    let net = Net::with_weights(spec, w, &convlens_core::backend::cpu());
    check_against_pytorch("tiny.tflite", &net, &fx);
}

#[test]
fn the_op_list_fixture_matches_pytorch_and_the_tflite() {
    let fx = expected("tiny");
    let text = String::from_utf8(fixture("tiny_oplist.json")).unwrap();
    let bytes = fixture("tiny_oplist.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
    let classes: Vec<String> = (0..5).map(|c| format!("class_{c}")).collect();
    let spec = oplist::spec(&text, &shape, Some(classes.clone())).unwrap();
    check_spec(&spec, &fx);
    assert_eq!(spec.class_names.as_deref(), Some(classes.as_slice()));
    let w = weights::load(&spec, &bytes).unwrap();
    let cpu = convlens_core::backend::cpu();
    let net = Net::with_weights(spec.clone(), w.clone(), &cpu);
    let probs = check_against_pytorch("tiny_oplist.json", &net, &fx);

    // The .tflite becomes the same network: the same layers, the same weights, the same outputs.
    let model = tflite::read(&fixture("tiny.tflite")).unwrap();
    let tspec = model.spec(Some(classes)).unwrap();
    assert_eq!(tspec.json["layers"], spec.json["layers"]);
    let tw = model.layer_weights(&tspec).unwrap();
    assert_eq!(tw, w);
    let tnet = Net::with_weights(tspec, tw, &cpu);
    for (k, (case, p)) in fx["images"].as_array().unwrap().iter().zip(&probs).enumerate() {
        let got = outputs(&tnet, &image(case)).pop().unwrap();
        let want: Vec<f64> = p.iter().map(|&v| v as f64).collect();
        assert_close(&format!("image {k}: the .tflite against the op list"), &got, &want, 1e-6);
    }
}

#[test]
fn a_broken_op_list_is_an_error_with_a_message() {
    let ops: Value = serde_json::from_slice(&fixture("tiny_oplist.json")).unwrap();
    let bytes = fixture("tiny_oplist.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
    // The op list with one op changed, read: the error's message (never a panic).
    let broken = |op: usize, key: &str, value: Value| -> String {
        let mut v = ops.clone();
        match value {
            Value::Null => v["ops"][op].as_object_mut().unwrap().remove(key),
            value => v["ops"][op].as_object_mut().unwrap().insert(key.to_string(), value),
        };
        let text = v.to_string();
        match std::panic::catch_unwind(|| oplist::spec(&text, &shape, None).map(|spec| weights::load(&spec, &bytes))) {
            Ok(Ok(Ok(_))) => panic!("op {op} with {key} changed read as a network"),
            Ok(Ok(Err(e))) | Ok(Err(e)) => e.to_string(),
            Err(_) => panic!("op {op} with {key} changed: oplist::spec panicked"),
        }
    };
    let e = broken(7, "op", Value::from("GELU"));
    assert!(e.starts_with("weights: op 7: GELU is not supported (CONV_2D,"), "{e}");
    assert_eq!(broken(3, "inputs", serde_json::json!([10, 99])), "weights: op 3 (ADD) reads tensor 99, which no earlier op writes");
    assert_eq!(broken(0, "weight", Value::from("nope")), "weights: op 0 (CONV_2D): the weights have no 'nope'");
    assert_eq!(broken(3, "act", Value::from("relu6")), "weights: op 3 (ADD): a fused activation on an add is not supported");
    assert_eq!(broken(0, "act", Value::from("relu_n1_to_1")), "weights: op 0 (CONV_2D): fused activation 'relu_n1_to_1' is not supported");
    // Without op 5's bias the safetensors file holds a tensor the network does not use.
    assert_eq!(
        broken(5, "bias", Value::Null),
        "weights: the file has tensors this network does not use: op5.bias (is it for another architecture?)"
    );
    // An op with no input at all.
    for op in [4, 6, 7] {
        let e = broken(op, "inputs", serde_json::json!([]));
        let want = format!("op {op} (");
        assert!(e.contains(want.as_str()), "{e}");
    }
}

#[test]
fn the_tfjs_fixture_matches_keras() {
    let fx = expected("tfjs");
    let json = String::from_utf8(fixture("tiny_tfjs/model.json")).unwrap();
    let model = tfjs::load(&json, &mut shard).unwrap();
    check_spec(&model.spec, &fx);
    // 10 high, 8 wide: a valid 3x3 convolution, a 'same' one (pad 1), a 2x2 max pool to 6 x 4 x 3, whose
    // channels-last flatten the Dense layer's rows are reordered from.
    assert!(matches!(model.spec.layers[1].kind, LayerKind::Conv(Conv { pad: 0, pad_end: 0, activation: None, .. })));
    assert!(matches!(model.spec.layers[3].kind, LayerKind::Conv(Conv { pad: 1, pad_end: 0, activation: Some(Activation::Relu), .. })));
    assert_eq!(model.spec.layers[4].out_shape.to_vec(), usizes(&fx["pooled_shape"]));
    let net = Net::with_weights(model.spec.clone(), model.weights.clone(), &convlens_core::backend::cpu());
    check_against_pytorch("tiny_tfjs", &net, &fx);

    // The weights lie in two shards split inside a tensor; a shard cut short or missing is an error naming it.
    let short = tfjs::load(&json, &mut |p| {
        shard(p).map(|mut b| {
            if p.ends_with("2of2.bin") {
                b.truncate(b.len() - 4);
            }
            b
        })
    })
    .err()
    .unwrap();
    assert_eq!(short.to_string(), "weights: the weight files end before weight 'output/bias' (truncated or the wrong file?)");
    let missing =
        tfjs::load(&json, &mut |p| if p.ends_with("2of2.bin") { Err(Error::Weights(format!("cannot read {p}"))) } else { shard(p) })
            .err()
            .unwrap();
    assert_eq!(missing.to_string(), "weights: cannot read group1-shard2of2.bin");
}

#[test]
fn a_truncated_tflite_is_an_error_with_a_message() {
    let bytes = fixture("tiny.tflite");
    // Every strict prefix: the file ends with weight bytes the reader needs (the script makes it so).
    for n in 0..bytes.len() {
        match std::panic::catch_unwind(|| tflite::read(&bytes[..n])) {
            Ok(Ok(_)) => panic!("the first {n} of {} bytes read as a model", bytes.len()),
            Ok(Err(e)) => assert!(e.to_string().starts_with("weights: tflite: "), "the first {n} bytes: {e}"),
            Err(_) => panic!("the first {n} of {} bytes: tflite::read panicked", bytes.len()),
        }
    }
    let e = tflite::read(&bytes[..6]).err().unwrap().to_string();
    assert_eq!(e, "weights: tflite: not a TFLite file (no 'TFL3' identifier)");
    let e = tflite::read(&bytes[..bytes.len() - 1]).err().unwrap().to_string();
    assert!(e.contains("truncated or corrupt"), "{e}");
    let e = tflite::read(b"not a model at all").err().unwrap().to_string();
    assert!(e.starts_with("weights: tflite: not a TFLite file"), "{e}");
}

#[test]
fn a_corrupt_tflite_is_an_error_with_a_message_not_a_panic() {
    let bytes = fixture("tiny.tflite");
    let mut bad = bytes.clone();
    bad[5] ^= 0xFF;
    assert_eq!(load_tflite(&bad).err().unwrap().to_string(), "weights: tflite: not a TFLite file (no 'TFL3' identifier)");
    let mut bad = bytes.clone();
    bad[3] ^= 0x80; // the root table's offset, now past the end
    let e = load_tflite(&bad).err().unwrap().to_string();
    assert!(e.contains("truncated or corrupt"), "{e}");

    // Every byte with all its bits, its top bit or its bottom bit flipped: a model (a weight or a scale
    // changed), or an error with a message; never a panic.
    let (mut panics, mut errors) = (vec![], 0);
    for i in 0..bytes.len() {
        for mask in [0xFFu8, 0x80, 0x01] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            match std::panic::catch_unwind(|| load_tflite(&bad)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    assert!(!e.message().is_empty(), "byte {i} ^ {mask:#04x}: an empty message");
                    errors += 1;
                }
                Err(_) => panics.push(format!("byte {i} ^ {mask:#04x}")),
            }
        }
    }
    assert!(
        panics.is_empty(),
        "{} of {} corrupt files panicked instead of giving an error: {}",
        panics.len(),
        3 * bytes.len(),
        panics.join(", ")
    );
    assert!(errors >= bytes.len() / 2, "only {errors} corrupt files gave an error");
}
