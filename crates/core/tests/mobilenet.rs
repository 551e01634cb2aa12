//! MobileNetV2 (ImageNet, 1001 classes) from the data directory's float32 conversion and op list:
//! it becomes a graph spec (depthwise convolutions, relu6, residual adds, TensorFlow 'same'
//! padding) and classifies the test images as the data's README says.

use convlens_core::{Net, oplist, weights};
use safetensors::SafeTensors;
use std::path::PathBuf;

mod common;

fn data_dir() -> Option<PathBuf> {
    let dir = common::data_dir().join("mobilenet");
    dir.join("mobilenet_v2_f32.json").exists().then_some(dir)
}

/// An image resized to 224x224 (bilinear), RGB in [0, 1], channels first.
fn image_chw(path: &std::path::Path) -> Vec<f32> {
    common::rgb_chw(&image::open(path).unwrap().resize_exact(224, 224, image::imageops::FilterType::Triangle).to_rgb8())
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn mobilenet_v2_classifies_the_test_images() {
    let dir = data_dir().expect("mobilenet/ in the data directory (set CONVLENS_DATA_DIR)");
    let bytes = std::fs::read(dir.join("mobilenet_v2_f32.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
    let labels: Vec<String> = std::fs::read_to_string(dir.join("imagenet_labels.txt")).unwrap().lines().map(str::to_string).collect();
    let ops = std::fs::read_to_string(dir.join("mobilenet_v2_f32.json")).unwrap();
    let spec = oplist::spec(&ops, &shape, Some(labels.clone())).unwrap();
    assert_eq!(spec.classes(), 1001);
    assert_eq!(spec.param_count(), 3_504_872 - 15_775, "parameters");
    let w = weights::load(&spec, &bytes).unwrap();
    let net = Net::with_weights(spec, w, &convlens_core::backend::cpu());
    for (file, want) in
        [("grace_hopper.bmp", "military uniform"), ("parrot.jpg", "macaw"), ("hot_dog.jpg", "hotdog"), ("owl.jpg", "ruffed grouse")]
    {
        let x = net.input_tensor(&image_chw(&dir.join("test-images").join(file))).unwrap();
        let probs = pollster::block_on(convlens_core::read(net.forward_all(x).pop().unwrap().flatten::<1>(0, 3))).unwrap();
        let top = convlens_core::train::argmax(&probs);
        println!("{file}: {} ({:.1}%)", labels[top], 100.0 * probs[top]);
        assert!(labels[top].starts_with(want), "{file}: top-1 {} ({:.3}), want {want}", labels[top], probs[top]);
        // FGSM with epsilon 2/255 (below what the eye sees) flips the top class.
        let image = image_chw(&dir.join("test-images").join(file));
        let mut at = convlens_core::vis::attribution::Attributor::new(&net, None);
        let adv = pollster::block_on(convlens_core::vis::adversarial::fgsm(&mut at, &image, top, 2.0 / 255.0)).unwrap();
        let p2 = pollster::block_on(at.outputs(&adv, 1)).unwrap();
        let top2 = convlens_core::train::argmax(&p2);
        println!("  FGSM eps 2/255: {} ({:.1}%)", labels[top2], 100.0 * p2[top2]);
        assert_ne!(top2, top, "{file}: FGSM at 2/255 left the top class");
    }
}

/// The published quantized .tflite, read directly: its dequantized weights are the float32
/// conversion's, and it classifies the test images the same; a truncated or corrupt file is an
/// error with a message, not a panic.
#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn the_tflite_file_reads_as_the_float32_conversion() {
    let dir = data_dir().expect("mobilenet/ in the data directory (set CONVLENS_DATA_DIR)");
    let bytes = std::fs::read(dir.join("mobilenet_v2_1.0_224_quant.tflite")).unwrap();
    let model = convlens_core::tflite::read(&bytes).unwrap();
    let labels: Vec<String> = std::fs::read_to_string(dir.join("imagenet_labels.txt")).unwrap().lines().map(str::to_string).collect();
    let spec = model.spec(Some(labels.clone())).unwrap();
    assert_eq!(spec.param_count(), 3_489_097);
    let w = model.layer_weights(&spec).unwrap();
    let f32_bytes = std::fs::read(dir.join("mobilenet_v2_f32.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&f32_bytes).unwrap();
    let mut worst = 0f32;
    for (layer, ws) in spec.layers.iter().zip(&w) {
        for (p, v) in layer.params().iter().zip(ws) {
            let t = st.tensor(&p.name).unwrap();
            let want: Vec<f32> = t.data().chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(want.len(), v.len(), "{}", p.name);
            for (a, b) in v.iter().zip(&want) {
                worst = worst.max((a - b).abs() / b.abs().max(1e-3));
            }
        }
    }
    println!("tflite vs float32 conversion: largest relative weight difference {worst:.2e}");
    assert!(worst < 1e-5, "{worst}");
    let net = Net::with_weights(spec, w, &convlens_core::backend::cpu());
    let x = net.input_tensor(&image_chw(&dir.join("test-images/parrot.jpg"))).unwrap();
    let probs = pollster::block_on(convlens_core::read(net.forward_all(x).pop().unwrap().flatten::<1>(0, 3))).unwrap();
    assert_eq!(labels[convlens_core::train::argmax(&probs)], "macaw");
    for bad in [&bytes[..1000], &bytes[..bytes.len() / 2], b"not a model at all".as_slice()] {
        let e = convlens_core::tflite::read(bad).err().expect("refused");
        assert!(e.to_string().contains("tflite:"), "{e}");
    }
}
