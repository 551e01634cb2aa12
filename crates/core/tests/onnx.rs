//! ONNX import against PyTorch: for each model of `scripts/make_onnx_fixtures.py` (torchvision's
//! ResNet-18, MobileNetV2, SqueezeNet 1.1, VGG-11-bn and AlexNet, and a small net with every
//! imported op), the logits equal PyTorch's within 1e-4 of the largest, and the input gradient of
//! the top class, plain and guided, within 1e-4 of the largest value, or, where PyTorch's own
//! reference moves more than that when the image moves by 1e-6 (a ReLU or a max pool within
//! rounding of deciding the other way: float32 engines, PyTorch's too, differ there), within twice
//! that movement, which the fixtures record.
//!
//! The references are committed (tests/fixtures/onnx); the ONNX files are made by the script
//! (`npm run onnx-fixtures`, which `npm test` runs) into target/onnx-fixtures (or
//! $CONVLENS_ONNX_FIXTURES): these tests are ignored without them, and `npm test` runs them.

use convlens_core::cpu_train::{self, CpuTrainer};
use convlens_core::grad::{self, Objective, ReluRule};
use convlens_core::net::Net;
use convlens_core::train::TrainConfig;
use convlens_core::{Error, onnx, weights};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx")
}

fn onnx_dir() -> PathBuf {
    std::env::var("CONVLENS_ONNX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/onnx-fixtures"))
}

fn references() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("references.json")).unwrap()).unwrap()
}

fn tensor(file: &str, key: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let st = weights::read(&bytes).unwrap();
    let t = st.tensor(key).unwrap();
    let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    (v, t.shape().to_vec())
}

fn read_model(name: &str) -> onnx::Model {
    let path = onnx_dir().join(format!("{name}.onnx"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (make it with npm run onnx-fixtures)", path.display()));
    onnx::read(&bytes, None, None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Largest |a - b| over the largest |b|.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64)) / scale
}

fn check(name: &str) {
    let refs = references();
    let r = &refs[name];
    let base = if name == "custom_ts" { "custom" } else { name };
    let model = read_model(name);
    let spec = model.spec.clone();
    assert_eq!(model.normalize.as_ref().map(|n| n.mean.len()), Some(3), "{name}: the normalization from the file's metadata");
    let (images, shape) = tensor(r["images"].as_str().unwrap(), "images");
    let (logits, lshape) = tensor(&format!("{base}.safetensors"), "logits");
    let (grad, _) = tensor(&format!("{base}.safetensors"), "grad");
    let (guided, _) = tensor(&format!("{base}.safetensors"), "guided");
    let device = convlens_core::backend::cpu();
    let net = Net::with_weights(model.spec, model.weights, &device);
    let per = shape[1] * shape[2] * shape[3];
    let classes = lshape[1];
    let score = spec.score_layer();
    for (i, img) in images.chunks(per).enumerate() {
        let outs = net.forward_all(net.input_tensor(img).unwrap());
        let got = pollster::block_on(convlens_core::read(outs[score].clone().flatten::<1>(0, 3))).unwrap();
        let e = rel_err(&got, &logits[i * classes..(i + 1) * classes]);
        println!("{name}: image {i}: logits within {e:.2e} of PyTorch's (relative to the largest)");
        assert!(e < 1e-4, "{name}: image {i}: logits differ from PyTorch's by {e:.2e}");
    }
    let top = r["top"][0].as_u64().unwrap() as usize;
    let outs = net.forward_all(net.input_tensor(&images[..per]).unwrap());
    for (rule, want, what, key) in
        [(ReluRule::Gradient, &grad, "gradient", "grad"), (ReluRule::Guided, &guided, "guided gradient", "guided")]
    {
        // The reference's own instability: how far it moves when the image moves by 1e-6 (a ReLU or
        // a max pool within rounding of deciding the other way); 0 on a small net.
        let unstable = r["instability"][key].as_f64().unwrap();
        let bound = (2.0 * unstable).max(1e-4);
        let (_, g) = grad::input_grad(&net, &Objective::Class(top), &outs, rule).unwrap();
        let g = pollster::block_on(convlens_core::read(g.flatten::<1>(0, 3))).unwrap();
        let e = rel_err(&g, want);
        if std::env::var("DEBUG_ONNX").is_ok() {
            let (i, d) = g
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .enumerate()
                .fold((0, 0f32), |m, (i, d)| if d > m.1 { (i, d) } else { m });
            let bad = g.iter().zip(want.iter()).filter(|(a, b)| (*a - *b).abs() > 1e-3 * b.abs().max(1e-9)).count();
            println!(
                "  worst at {i} (c {}, y {}, x {}): {} vs {}; {bad} of {} differ",
                i / (shape[2] * shape[3]),
                (i / shape[3]) % shape[2],
                i % shape[3],
                g[i],
                want[i],
                g.len()
            );
            let _ = d;
        }
        println!(
            "{name}: {what} of class {top} within {e:.2e} of PyTorch's (the reference moves by {unstable:.1e} under 1e-6 moves of the image)"
        );
        assert!(e < bound, "{name}: the {what} differs from PyTorch's by {e:.2e} (allowed {bound:.1e})");
    }
    // The fused CPU path (what the pages and the CLI run on the CPU) against the same references.
    if cpu_train::supported(&spec) {
        let w = pollster::block_on(net.read_weights()).unwrap();
        let mut fast = CpuTrainer::new(&net, w, TrainConfig::default());
        let got = fast.layer_output(&images, images.len() / per, score).unwrap();
        let e = rel_err(&got, &logits[..got.len()]);
        println!("{name}: the fused path's logits within {e:.2e} of PyTorch's");
        assert!(e < 1e-4, "{name}: the fused path's logits differ from PyTorch's by {e:.2e}");
        let unstable = r["instability"]["grad"].as_f64().unwrap();
        let (_, g) = fast.input_grads(&net, &images[..per], 1, &Objective::Class(top), ReluRule::Gradient).unwrap().expect("the scores");
        let e = rel_err(&g, &grad);
        println!("{name}: the fused path's gradient within {e:.2e} of PyTorch's");
        assert!(e < (2.0 * unstable).max(1e-4), "{name}: the fused path's gradient differs from PyTorch's by {e:.2e}");
    } else {
        println!("{name}: not on the fused CPU path (Burn's only)");
    }
}

#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_custom_net_with_every_op() {
    check("custom");
}

#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_resnet18() {
    check("resnet18");
}

#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_mobilenet_v2() {
    check("mobilenet_v2");
}

#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_squeezenet1_1() {
    check("squeezenet1_1");
}

#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_vgg11_bn() {
    check("vgg11_bn");
}

#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_alexnet() {
    check("alexnet");
}

fn message(bytes: &[u8]) -> String {
    match onnx::read(bytes, None, None) {
        Err(Error::Model(m)) => m,
        Err(e) => panic!("another kind of error: {e}"),
        Ok(_) => panic!("read"),
    }
}

#[test]
fn files_that_are_not_onnx_are_named() {
    assert!(message(b"").contains("the file is empty"));
    assert!(message(b"\x89PNG\r\n\x1a\n....").contains("not an ONNX model: it is a PNG image"));
    assert!(message(b"{\"modelTopology\": {}}").contains("JSON"));
    assert!(message(b"PK\x03\x04rest").contains("PyTorch .pt"));
    // Random bytes: not a protobuf, or a protobuf with no graph.
    let m = message(&[0x5a; 64]);
    assert!(m.contains("not an ONNX model") || m.contains("truncated"), "{m}");
}

/// An unsupported op is named with its node; a truncated file and bytes changed anywhere give an
/// error, never a panic.
#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_bad_files_are_refused_with_a_message() {
    let read = |name: &str| std::fs::read(onnx_dir().join(name)).unwrap();
    let m = message(&read("unsupported.onnx"));
    println!("unsupported: {m}");
    assert!(m.contains("is an Erf, which ConvLens does not import") && m.contains("node ") && m.contains(onnx::ASK), "{m}");
    let good = read("custom.onnx");
    let m = message(&good[..good.len() / 2]);
    println!("truncated: {m}");
    assert!(m.contains("truncated"), "{m}");
    // Every cut and a spread of changed bytes: Ok or Err, never a panic.
    let mut panics = vec![];
    let mut rng = convlens_core::rng::SplitMix64(9);
    let mut cases: Vec<Vec<u8>> = (0..good.len()).step_by(97).map(|n| good[..n].to_vec()).collect();
    for _ in 0..300 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len());
            b[i] = rng.below(256) as u8;
        }
        cases.push(b);
    }
    for (i, b) in cases.iter().enumerate() {
        if std::panic::catch_unwind(|| onnx::read(b, None, None).map(|_| ())).is_err() {
            panics.push(i);
        }
    }
    assert!(panics.is_empty(), "{} of {} damaged files panicked: {panics:?}", panics.len(), cases.len());
}

/// The custom net as the TorchScript exporter writes it: its F.pad is a chain of shape arithmetic
/// (Shape, Gather, ConstantOfShape, Concat...) that onnx-ir does not fold; the message says so and
/// what to do. (torchvision's five models exported so import and match: checked by hand, see the
/// issue's note.)
#[test]
#[ignore = "needs the ONNX fixtures (npm run onnx-fixtures)"]
fn onnx_torchscript_padding_chain_is_named() {
    let bytes = std::fs::read(onnx_dir().join("custom_ts.onnx")).unwrap();
    let m = message(&bytes);
    assert!(
        m.contains(
            "computed by a ConstantOfShape from the tensors' shapes, which ConvLens does not fold; export with the default exporter"
        ),
        "{m}"
    );
}
