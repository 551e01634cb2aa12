//! Opening a user's model from the files given together (crates/core/src/import.rs): which file is
//! the model, the files it needs, a labels file and the normalization; and the messages when the
//! files are not a model ConvLens opens.

use std::path::PathBuf;

use convlens_core::import::{Normalize, open_files};
use convlens_core::{Error, Net};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn file(path: &str) -> (String, Vec<u8>) {
    let p = root().join(path);
    (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
}

fn keras() -> Vec<(String, Vec<u8>)> {
    vec![file("tests/fixtures/keras/graph/model.json"), file("tests/fixtures/keras/graph/group1-shard1of1.bin")]
}

fn labels(n: usize) -> (String, Vec<u8>) {
    ("classes.txt".into(), (0..n).map(|i| format!("class {i}\n")).collect::<String>().into_bytes())
}

fn message(files: &[(String, Vec<u8>)]) -> String {
    match open_files(files, None) {
        Err(Error::Model(m)) | Err(Error::Weights(m)) => m,
        Err(e) => panic!("another kind of error: {e}"),
        Ok(_) => panic!("opened"),
    }
}

fn logits(net: &Net, image: &[f32]) -> Vec<f32> {
    let outs = net.forward_all(net.input_tensor(image).unwrap());
    pollster::block_on(convlens_core::read(outs[net.spec.score_layer()].clone().flatten::<1>(0, 3))).unwrap()
}

#[test]
fn a_keras_model_with_labels_and_a_normalization() {
    let mut files = keras();
    files.push(labels(10));
    let m = open_files(&files, None).unwrap();
    assert_eq!(m.spec.name, "keras_graph");
    assert_eq!(m.spec.class_names.as_ref().unwrap()[3], "class 3");
    assert_eq!(m.info["format"], "TF.js layers model (tfjs-layers 4.22.0)");
    assert_eq!(m.info["labels"], "classes.txt");
    assert_eq!(m.info["classes"], 10);
    assert!(m.info["normalize"].is_null());
    let plain = Net::with_weights(m.spec.clone(), m.weights.clone(), &convlens_core::backend::cpu());

    // (x - mean) / std as the net's first layer: the same logits as the plain net on the normalized image.
    let n = Normalize { mean: vec![0.4, 0.5, 0.6], std: vec![0.2, 0.25, 0.3] };
    let m = open_files(&files, Some(n.clone())).unwrap();
    assert_eq!(m.spec.layers[1].name, "normalize");
    assert_eq!(m.info["normalize"]["from"], "settings");
    let normed = Net::with_weights(m.spec.clone(), m.weights.clone(), &convlens_core::backend::cpu());
    let image: Vec<f32> = (0..3 * 20 * 18).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
    let shifted: Vec<f32> = image.iter().enumerate().map(|(i, &v)| (v - n.mean[i / 360] as f32) / n.std[i / 360] as f32).collect();
    let (a, b) = (logits(&normed, &image), logits(&plain, &shifted));
    let e = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(e < 1e-5, "{a:?} vs {b:?}");

    // A normalization of the wrong length is named.
    let bad = Normalize { mean: vec![0.5], std: vec![0.5] };
    let e = open_files(&files, Some(bad)).err().unwrap().to_string();
    assert!(e.contains("the normalization needs 3 means and 3 non-zero standard deviations"), "{e}");
}

#[test]
fn files_that_make_no_model_are_named() {
    let k = keras();
    assert!(message(&k[..1]).contains("the weight file 'group1-shard1of1.bin' that model.json names is missing"));
    assert!(message(&k[1..]).contains("none of the files is a model"));
    let mut with = k.clone();
    with.push(labels(3));
    assert!(message(&with).contains("the labels file has 3 class names; the model gives 10 scores"));
    with.push(labels(10));
    with.last_mut().unwrap().0 = "more.txt".into();
    assert!(message(&with).contains("give one labels file"));
    let mut two = k.clone();
    two.push(file("tests/fixtures/loaders/tiny.tflite"));
    assert!(message(&two).contains("give one model at a time; these are all models: model.json, tiny.tflite"));
    assert!(
        message(&[("net.h5".into(), b"\x89HDF\r\n\x1a\n".to_vec())])
            .contains("net.h5 is a Keras file; convert it for the browser with tensorflowjs_converter")
    );
    assert!(message(&[("net.pth".into(), b"PK\x03\x04".to_vec())]).contains("torch.onnx.export"));
    assert!(message(&[("photo.png".into(), b"\x89PNG".to_vec())]).contains("photo.png is not a model ConvLens opens"));
    assert!(message(&[("w.safetensors".into(), b"\x08\0\0\0\0\0\0\0{}      ".to_vec())]).contains("carries no network spec"));
}

#[test]
fn tflite_safetensors_and_a_spec_with_its_weights() {
    let m = open_files(&[file("tests/fixtures/loaders/tiny.tflite"), labels(5)], None).unwrap();
    assert_eq!((m.spec.name.as_str(), m.info["format"].as_str().unwrap(), m.spec.classes()), ("tiny", "TFLite", 5));
    let m = open_files(&[file("www/nets/mnist.safetensors")], None).unwrap();
    assert_eq!(m.info["format"], "ConvLens safetensors");
    let m = open_files(&[file("www/nets/mnist.json"), file("www/nets/mnist.safetensors")], None).unwrap();
    assert_eq!((m.spec.name.as_str(), m.info["format"].as_str().unwrap()), ("mnist", "ConvLens spec and weights"));
    assert!(message(&[file("www/nets/mnist.json")]).contains("a network spec without weights"));
}
