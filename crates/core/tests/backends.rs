//! The CPU backend (burn-flex) and the GPU backend (burn-wgpu, natively on Vulkan: Mesa's lavapipe
//! where there is no GPU) give the same numbers for the same weights and input.
#![cfg(feature = "wgpu")]

use convlens_core::spec::{MNIST_SPEC, NetSpec};
use convlens_core::vis::layers;
use convlens_core::{Net, Objective};

#[test]
fn cpu_and_wgpu_agree_on_every_layer() {
    let gpu = match pollster::block_on(convlens_core::backend::gpu()) {
        Ok(d) => d,
        Err(e) => panic!("{e} (install mesa-vulkan-drivers for lavapipe, Mesa's Vulkan on the CPU)"),
    };
    let cpu = convlens_core::backend::cpu();
    let spec = NetSpec::parse(MNIST_SPEC).unwrap();
    let a = Net::init(spec.clone(), 7, &cpu);
    let b = pollster::block_on(a.to_device(&gpu)).unwrap();
    let image: Vec<f32> = (0..576).map(|i| ((i * 53 % 97) as f32) / 96.0).collect();
    for obj in [Objective::Class(3), Objective::Loss { label: 1 }, Objective::Channel { layer: 3, channel: 5 }] {
        let pa = pollster::block_on(layers::probe(&a, &image, &obj)).unwrap();
        let pb = pollster::block_on(layers::probe(&b, &image, &obj)).unwrap();
        assert!((pa.objective - pb.objective).abs() < 1e-4 * pa.objective.abs().max(1.0));
        for (i, (la, lb)) in pa.layers.iter().zip(&pb.layers).enumerate() {
            let cmp = |what: &str, x: &[f32], y: &[f32]| {
                let scale = x.iter().fold(1f32, |m, v| m.max(v.abs()));
                let diff = x.iter().zip(y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(diff <= 1e-4 * scale, "{obj:?} layer {i} {what}: max diff {diff} (scale {scale})");
            };
            cmp("activation", &la.act.data, &lb.act.data);
            cmp("gradient", &la.grad.data, &lb.grad.data);
            for (wa, wb) in la.weights.iter().zip(&lb.weights) {
                cmp(&wa.name, &wa.grad.data, &wb.grad.data);
            }
        }
    }
    graph_agrees(&gpu);
    import_layers_and_training_agree(&gpu);
    blocks_agree(&gpu);
}

/// The same for a MobileNetV2-style graph (input scaling, TensorFlow 'same' padding with stride 2,
/// relu6, a depthwise convolution, a residual add), with the vanilla and guided ReLU rules. (Called
/// from the test above: the GPU device is set up once per process.)
fn graph_agrees(gpu: &convlens_core::burn::tensor::Device) {
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":16,"height":16,"depth":3},{"type":"scale","scale":2,"offset":-1},
        {"type":"conv","name":"stem","size":3,"filters":8,"stride":2,"padding":"same","activation":"relu6"},
        {"type":"conv","name":"expand","size":1,"filters":16,"activation":"relu6"},
        {"type":"conv","name":"dw","size":3,"filters":16,"groups":16,"padding":"same","activation":"relu6"},
        {"type":"conv","name":"project","size":1,"filters":8},
        {"type":"add","inputs":["stem","project"]},{"type":"relu"},
        {"type":"pool","size":8,"stride":1,"mode":"avg"},{"type":"fc","units":5},{"type":"softmax"}]}"#,
    )
    .unwrap();
    let a = Net::init(spec, 3, &convlens_core::backend::cpu());
    let b = pollster::block_on(a.to_device(gpu)).unwrap();
    let image: Vec<f32> = (0..768).map(|i| ((i * 31 % 89) as f32) / 88.0).collect();
    use convlens_core::grad::ReluRule;
    for rule in [ReluRule::Gradient, ReluRule::Deconvnet, ReluRule::Guided] {
        let obj = Objective::Class(2);
        let pa = pollster::block_on(layers::probe_with(&a, &image, &obj, rule)).unwrap();
        let pb = pollster::block_on(layers::probe_with(&b, &image, &obj, rule)).unwrap();
        for (i, (la, lb)) in pa.layers.iter().zip(&pb.layers).enumerate() {
            for (what, x, y) in [("activation", &la.act.data, &lb.act.data), ("gradient", &la.grad.data, &lb.grad.data)] {
                let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
                let diff = x.iter().zip(y.iter()).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(diff <= 1e-4 * scale.max(1.0), "{rule:?} layer {i} {what}: max diff {diff} (scale {scale})");
            }
        }
    }
}

/// The layers model import needs (leaky relu, clip, mul with channel scaling, concat, global
/// pooling, reshape, flatten) under every rule, and a training step of batchnorm and dropout
/// (batch statistics, running statistics, the same seeded masks) on both backends.
fn import_layers_and_training_agree(gpu: &convlens_core::burn::tensor::Device) {
    use convlens_core::grad::ReluRule;
    use convlens_core::train::{self, Method, Optimizer, TrainConfig};
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":8,"height":8,"depth":3},
        {"type":"conv","name":"a","size":3,"filters":4,"pad":1},{"type":"batchnorm","name":"bn"},{"type":"leaky_relu","name":"la","alpha":0.1},
        {"type":"conv","name":"b","size":1,"filters":2,"inputs":["input"],"activation":"relu6"},{"type":"clip","name":"cb","min":-0.5,"max":0.8},
        {"type":"concat","name":"cat","inputs":["la","cb"]},{"type":"globalpool","name":"gap"},{"type":"fc","name":"se","units":6,"activation":"sigmoid"},
        {"type":"mul","name":"scaled","inputs":["cat","se"]},{"type":"dropout","rate":0.4},{"type":"pool","size":2},
        {"type":"reshape","shape":[6,16,1]},{"type":"globalpool","mode":"max"},{"type":"flatten"},{"type":"fc","units":4},{"type":"softmax"}]}"#,
    )
    .unwrap();
    let a = Net::init(spec, 5, &convlens_core::backend::cpu());
    let b = pollster::block_on(a.to_device(gpu)).unwrap();
    let image: Vec<f32> = (0..192).map(|i| ((i * 37 % 91) as f32) / 45.0 - 1.0).collect();
    let close = |what: &str, x: &[f32], y: &[f32]| {
        let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let diff = x.iter().zip(y.iter()).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff <= 1e-4 * scale.max(1.0), "{what}: max diff {diff} (scale {scale})");
    };
    for rule in [ReluRule::Gradient, ReluRule::Deconvnet, ReluRule::Guided] {
        let obj = Objective::Class(1);
        let pa = pollster::block_on(layers::probe_with(&a, &image, &obj, rule)).unwrap();
        let pb = pollster::block_on(layers::probe_with(&b, &image, &obj, rule)).unwrap();
        for (i, (la, lb)) in pa.layers.iter().zip(&pb.layers).enumerate() {
            close(&format!("{rule:?} layer {i} activation"), &la.act.data, &lb.act.data);
            close(&format!("{rule:?} layer {i} gradient"), &la.grad.data, &lb.grad.data);
        }
    }
    let config = TrainConfig { method: Method::Sgd, learning_rate: 0.05, l2: 0.0, batch_size: 4, seed: 3, ..Default::default() };
    let batches: Vec<(Vec<f32>, Vec<usize>)> =
        (0..2).map(|s| ((0..4 * 192).map(|i| ((i * 13 + s * 7) % 29) as f32 / 14.0 - 1.0).collect(), vec![0, 1, 2, 3])).collect();
    let (mut na, mut nb) = (a.clone(), b.clone());
    let (mut oa, mut ob) = (Optimizer::new(&na, config), Optimizer::new(&nb, config));
    let (sa, _) = pollster::block_on(train::train_chunk(&mut na, &mut oa, &batches, &|| 0.0)).unwrap();
    let (sb, _) = pollster::block_on(train::train_chunk(&mut nb, &mut ob, &batches, &|| 0.0)).unwrap();
    close("training losses", &sa.losses, &sb.losses);
    let (wa, wb) = (pollster::block_on(na.read_weights()).unwrap(), pollster::block_on(nb.read_weights()).unwrap());
    for (l, (x, y)) in na.spec.layers.iter().zip(wa.iter().zip(&wb)) {
        for (p, (u, v)) in l.params().iter().zip(x.iter().zip(y)) {
            close(&format!("{} after two steps", p.name), u, v);
        }
    }
}

/// A weight larger than the GPU's largest buffer (VGG-11's fc1: 411 MB) is stored in blocks of
/// rows, and reads larger than it are split: with the limit set to 16 KB, a 20x1000 fully connected
/// layer (80 KB) becomes 5 blocks, and the probe (activations, gradients, weights and their
/// gradients), a training step and the weights read back equal the CPU's. (Last in the process:
/// the limit is global.)
fn blocks_agree(gpu: &convlens_core::burn::tensor::Device) {
    use convlens_core::net::ParamTensor;
    use convlens_core::train::{self, Method, Optimizer, TrainConfig};
    let real = convlens_core::backend::gpu_buffer_limit().expect("the GPU's limit is known once it is set up");
    println!("this GPU takes at most {real} bytes in one buffer");
    convlens_core::backend::set_buffer_limit(16 << 10);
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":10,"height":10,"depth":10},{"type":"fc","name":"big","units":20,"activation":"relu"},
        {"type":"fc","units":7},{"type":"softmax"}]}"#,
    )
    .unwrap();
    let a = Net::init(spec, 9, &convlens_core::backend::cpu());
    let b = pollster::block_on(a.to_device(gpu)).unwrap();
    match &b.params[1][0] {
        ParamTensor::Rows(blocks) => assert_eq!(blocks.iter().map(|t| t.dims()[0]).collect::<Vec<_>>(), vec![4; 5]),
        other => panic!("the 80 KB weight should be stored in blocks, not {other:?}"),
    }
    assert!(matches!(a.params[1][0], ParamTensor::D2(_)), "the CPU has no limit");
    let close = |what: &str, x: &[f32], y: &[f32]| {
        assert_eq!(x.len(), y.len(), "{what}: lengths");
        let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let diff = x.iter().zip(y.iter()).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff <= 1e-4 * scale.max(1.0), "{what}: max diff {diff} (scale {scale})");
    };
    let image: Vec<f32> = (0..1000).map(|i| ((i * 37 % 91) as f32) / 45.0 - 1.0).collect();
    let obj = Objective::Class(4);
    let pa = pollster::block_on(layers::probe(&a, &image, &obj)).unwrap();
    let pb = pollster::block_on(layers::probe(&b, &image, &obj)).unwrap();
    for (i, (la, lb)) in pa.layers.iter().zip(&pb.layers).enumerate() {
        close(&format!("layer {i} activation"), &la.act.data, &lb.act.data);
        close(&format!("layer {i} gradient"), &la.grad.data, &lb.grad.data);
        for (wa, wb) in la.weights.iter().zip(&lb.weights) {
            close(&format!("layer {i} {}", wa.name), &wa.value.data, &wb.value.data);
            close(&format!("layer {i} {} gradient", wa.name), &wa.grad.data, &wb.grad.data);
        }
    }
    let config = TrainConfig { method: Method::Adam, learning_rate: 0.01, l2: 0.001, batch_size: 2, seed: 3, ..Default::default() };
    let batches: Vec<(Vec<f32>, Vec<usize>)> =
        (0..2).map(|s| ((0..2 * 1000).map(|i| ((i * 13 + s * 7) % 29) as f32 / 14.0 - 1.0).collect(), vec![1, 5])).collect();
    let (mut na, mut nb) = (a.clone(), b.clone());
    let (mut oa, mut ob) = (Optimizer::new(&na, config), Optimizer::new(&nb, config));
    let (sa, _) = pollster::block_on(train::train_chunk(&mut na, &mut oa, &batches, &|| 0.0)).unwrap();
    let (sb, _) = pollster::block_on(train::train_chunk(&mut nb, &mut ob, &batches, &|| 0.0)).unwrap();
    close("training losses", &sa.losses, &sb.losses);
    assert!(matches!(nb.params[1][0], ParamTensor::Rows(_)), "still in blocks after a step");
    let (wa, wb) = (pollster::block_on(na.read_weights()).unwrap(), pollster::block_on(nb.read_weights()).unwrap());
    close("big.weight after two steps", &wa[1][0], &wb[1][0]);
    close("fc.weight after two steps", &wa[2][0], &wb[2][0]);
    convlens_core::backend::set_buffer_limit(real as u64);

    // An activation larger than the GPU's largest buffer cannot be split: a clear message, not a
    // panic (9 maps of 2048x2048 take 151 MB; lavapipe and WebGPU take 134 MB).
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":2048,"height":2048,"depth":1},{"type":"conv","size":1,"filters":9},
        {"type":"globalpool"},{"type":"fc","units":2}]}"#,
    )
    .unwrap();
    let big = pollster::block_on(Net::init(spec, 1, &convlens_core::backend::cpu()).to_device(gpu)).unwrap();
    if real < 9 * 2048 * 2048 * 4 {
        let e = pollster::block_on(layers::probe(&big, &vec![0.5; 2048 * 2048], &Objective::Class(0))).unwrap_err().to_string();
        println!("{e}");
        assert!(e.contains("this network needs a buffer of 151 MB, more than the GPU holds in one buffer"), "{e}");
        assert!(e.contains("run it on the CPU instead"), "{e}");
    }
}
