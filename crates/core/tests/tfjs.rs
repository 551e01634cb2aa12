//! The TF.js layers-model loader: CNN Explainer's Tiny VGG (from the data directory) loads with
//! the same weights as the data's PyTorch-layout conversion and classifies its example images as
//! the data's README says; unsupported and broken models get messages naming what is wrong.

use convlens_core::{Error, Net, tfjs};
use safetensors::SafeTensors;
use std::path::PathBuf;

mod common;

fn data_dir() -> Option<PathBuf> {
    let dir = common::data_dir();
    dir.join("tiny-vgg/model.json").exists().then_some(dir)
}

fn load_tiny_vgg(dir: &std::path::Path) -> tfjs::Model {
    let json = std::fs::read_to_string(dir.join("tiny-vgg/model.json")).unwrap();
    let base = dir.join("tiny-vgg");
    tfjs::load(&json, &mut |p| std::fs::read(base.join(p)).map_err(|e| Error::Weights(e.to_string()))).unwrap()
}

/// Tiny VGG's image as the net takes it: RGB in [0, 1], channels first.
fn image_chw(path: &std::path::Path) -> Vec<f32> {
    common::rgb_chw(&image::open(path).unwrap().to_rgb8())
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn tiny_vgg_matches_the_pytorch_layout_and_classifies_its_images() {
    let dir = data_dir().expect("tiny-vgg/model.json in the data directory (set CONVLENS_DATA_DIR)");
    let model = load_tiny_vgg(&dir);
    let names: Vec<&str> = model.spec.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "input",
            "conv_1_1",
            "relu_1_1",
            "conv_1_2",
            "relu_1_2",
            "max_pool_1",
            "conv_2_1",
            "relu_2_1",
            "conv_2_2",
            "relu_2_2",
            "max_pool_2",
            "output",
            "output_softmax"
        ]
    );
    assert_eq!(model.spec.layers[10].out_shape, [10, 13, 13]);
    assert_eq!(model.spec.param_count(), 19_920);

    // The data's safetensors conversion: conv kernels (out, in, kh, kw), dense (in, out) with
    // rows already in channels-first order.
    let bytes = std::fs::read(dir.join("tiny-vgg/tiny_vgg.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name).unwrap().data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    for (layer, lw) in model.spec.layers.iter().zip(&model.weights) {
        for (p, w) in layer.params().iter().zip(lw) {
            let mut want = f32s(&p.name);
            if p.name == "output.weight" {
                let (fan_in, units) = (1690, 10);
                want = (0..units * fan_in).map(|i| want[(i % fan_in) * units + i / fan_in]).collect();
            }
            assert_eq!(w, &want, "{}", p.name);
        }
    }

    // The data's README: 14 of the 20 example images are classified as their file name says, with
    // PIL's JPEG decoder (tests/attribution.rs checks PIL-decoded pixels against PyTorch exactly);
    // the image crate's decoder rounds a few pixels differently and one close call flips.
    let net = Net::with_weights(model.spec.clone(), model.weights.clone(), &convlens_core::backend::cpu());
    let classes = ["boat", "bug", "pizza", "pepper", "bus", "koala", "espresso", "panda", "orange", "car"];
    let mut right = 0;
    let mut total = 0;
    for entry in std::fs::read_dir(dir.join("tiny-vgg/img")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let Some(want) = classes.iter().position(|c| stem.starts_with(c)) else { continue };
        let x = net.input_tensor(&image_chw(&path)).unwrap();
        let probs = pollster::block_on(convlens_core::read(net.forward_all(x).pop().unwrap().flatten::<1>(0, 3))).unwrap();
        right += (convlens_core::train::argmax(&probs) == want) as usize;
        total += 1;
    }
    assert_eq!(total, 20);
    assert!(right >= 13, "{right}/20 classified as their file name");
}

#[test]
fn unsupported_and_broken_models_are_refused_with_a_message() {
    let model = |layers: &str, weights: &str| {
        format!(
            r#"{{"modelTopology":{{"model_config":{{"class_name":"Sequential","config":{{"name":"m","layers":[{layers}]}}}}}},
            "weightsManifest":[{{"paths":["w.bin"],"weights":[{weights}]}}]}}"#
        )
    };
    let input = r#"{"class_name":"Dense","config":{"name":"d","units":2,"batch_input_shape":[null,3],"activation":"relu"}}"#;
    let dense_w = r#"{"name":"d/kernel","shape":[3,2],"dtype":"float32"},{"name":"d/bias","shape":[2],"dtype":"float32"}"#;
    let bytes = vec![0u8; 4 * 8];
    let load = |json: &str, bytes: Vec<u8>| tfjs::load(json, &mut |_| Ok(bytes.clone())).map(|_| ()).unwrap_err().to_string();

    let ok = tfjs::load(&model(input, dense_w), &mut |_| Ok(bytes.clone())).unwrap();
    assert_eq!(ok.spec.layers.len(), 2);

    let lstm = format!(r#"{input},{{"class_name":"LSTM","config":{{"name":"lstm_1","units":4}}}}"#);
    let e = load(&model(&lstm, dense_w), bytes.clone());
    assert!(
        e.starts_with(
            "model: TF.js/Keras: layer 1 'lstm_1' (LSTM): this layer type is not supported; ConvLens reads InputLayer, Rescaling,"
        ),
        "{e}"
    );
    assert_eq!(
        load(&model(input, dense_w), vec![0u8; 28]),
        "weights: the weight files end before weight 'd/bias' (truncated or the wrong file?)"
    );
    assert_eq!(load(&model(input, dense_w), vec![0u8; 36]), "weights: the weight files hold 36 bytes; the manifest describes 32");
    assert!(load("{not json", vec![]).starts_with("weights: model.json is not valid JSON"));
    let functional = r#"{"modelTopology":{"model_config":{"class_name":"Model","config":{}}},"weightsManifest":[]}"#;
    assert_eq!(load(functional, vec![]), "model: TF.js/Keras: model.json has no layer list");
    let other = r#"{"modelTopology":{"model_config":{"class_name":"Lambda","config":{}}},"weightsManifest":[]}"#;
    assert_eq!(
        load(other, vec![]),
        "model: TF.js/Keras: model.json holds a Keras 'Lambda' model; ConvLens reads Sequential and functional models"
    );
    // A NaN in a shard is refused by the weight's name (issue 12), as safetensors does.
    let mut nan = bytes.clone();
    nan[4 * 6..4 * 7].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(load(&model(input, dense_w), nan), "weights: weight 'd/bias' has a non-finite value (NaN) at index 0");
    // A shape whose size would wrap 64-bit arithmetic is refused before any shard is read.
    let huge = r#"{"name":"d/kernel","shape":[4294967296,4294967296],"dtype":"float32"},{"name":"d/bias","shape":[2],"dtype":"float32"}"#;
    assert_eq!(load(&model(input, huge), bytes.clone()), "weights: weight 'd/kernel' has a shape too large to hold");
    let swish = input.replace("\"relu\"", "\"swish\"");
    assert_eq!(
        load(&model(&swish, dense_w), bytes.clone()),
        "model: TF.js/Keras: layer 0 'd' (Dense): activation 'swish' is not supported (linear, relu, relu6, sigmoid, tanh, softmax, hard_sigmoid, hard_swish, leaky_relu)"
    );
}
