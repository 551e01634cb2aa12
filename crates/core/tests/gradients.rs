//! Every layer type's gradients against central finite differences, for the input, every layer's
//! output and every weight; and for every kind of objective.

use convlens_core::burn::tensor::Device;
use convlens_core::grad::{self, Objective};
use convlens_core::spec::NetSpec;
use convlens_core::vis::layers;
use convlens_core::{Net, read};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn device() -> Device {
    convlens_core::backend::cpu()
}

/// A net with random weights (batchnorm's running variance kept positive).
fn random_net(spec: &str, seed: u64) -> Net {
    let spec = NetSpec::parse(spec).unwrap();
    let mut rng = Rng(seed);
    let w = spec
        .layers
        .iter()
        .map(|l| {
            l.params()
                .iter()
                .map(|p| {
                    let n: usize = p.shape.iter().product();
                    (0..n).map(|_| if p.field == "running_var" { 0.5 + rng.next().abs() } else { rng.next() * 0.5 }).collect()
                })
                .collect()
        })
        .collect();
    Net::with_weights(spec, w, &device())
}

fn objective_value(net: &Net, image: &[f32], obj: &Objective) -> f64 {
    let outs = net.forward_all(net.input_tensor(image).unwrap());
    let g = grad::gradients(net, obj, &outs).unwrap();
    pollster::block_on(read(g.value)).unwrap()[0] as f64
}

fn sample(n: usize, k: usize) -> Vec<usize> {
    if n <= k { (0..n).collect() } else { (0..k).map(|i| i * n / k + (i * 7) % (n / k).max(1)).collect() }
}

fn assert_close(what: &str, analytic: f64, numeric: f64, scale: f64) {
    let tol = 2e-2 * scale.max(1e-3) + 1e-4;
    assert!((analytic - numeric).abs() <= tol, "{what}: autodiff {analytic:.6} vs finite difference {numeric:.6} (tolerance {tol:.2e})");
}

/// Checks d objective / d input, d objective / d every weight, and d objective / d each layer's
/// output (by perturbing that layer's output and running the layers above it).
fn check(spec: &str, obj: Objective, seed: u64) {
    check_with(spec, obj, seed, 1e-2);
}

/// `check` with step `eps` for the differences (smaller where many units sit near a ReLU's kink,
/// as in a net of 1x1 convolutions whose biases move a whole channel at once).
fn check_with(spec: &str, obj: Objective, seed: u64, eps: f32) {
    let net = random_net(spec, seed);
    let [d, h, w] = net.spec.input_shape();
    let mut rng = Rng(seed + 1);
    let image: Vec<f32> = (0..d * h * w).map(|_| rng.next()).collect();
    let p = pollster::block_on(layers::probe(&net, &image, &obj)).unwrap();
    let f0 = objective_value(&net, &image, &obj);
    assert!((f0 - p.objective as f64).abs() < 1e-4 * f0.abs().max(1.0), "objective value");

    // Input.
    let g = &p.layers[0].grad;
    let scale = g.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    for i in sample(image.len(), 12) {
        let (mut a, mut b) = (image.clone(), image.clone());
        a[i] += eps;
        b[i] -= eps;
        let num = (objective_value(&net, &a, &obj) - objective_value(&net, &b, &obj)) / (2.0 * eps as f64);
        assert_close(&format!("{obj:?}: d/d input[{i}]"), g.data[i] as f64, num, scale);
    }

    // Weights.
    for (li, lp) in p.layers.iter().enumerate() {
        for (wi, wp) in lp.weights.iter().enumerate() {
            let scale = wp.grad.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            let values = pollster::block_on(net.read_weights()).unwrap();
            for i in sample(wp.value.data.len(), 8) {
                let eval = |delta: f32| {
                    let mut v = values.clone();
                    v[li][wi][i] += delta;
                    let n2 = Net::with_weights(net.spec.clone(), v, &device());
                    objective_value(&n2, &image, &obj)
                };
                let num = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
                assert_close(&format!("{obj:?}: d/d {}[{i}]", wp.name), wp.grad.data[i] as f64, num, scale);
            }
        }
    }

    // Each layer's output: perturb it and run only the layers above. ReLU and max-pool make some
    // points non-differentiable (a zero that becomes a window's max when nudged up); there the
    // one-sided differences disagree, and such points are skipped. The softmax layer is checked
    // separately for the loss (it is defined through the logits, d/dp = -1/p at the label).
    let x = net.input_tensor(&image).unwrap();
    let outs = net.forward_all(x);
    let mut checked = 0;
    let mut skipped = 0;
    for li in 1..net.spec.layers.len() {
        if matches!(obj, Objective::Loss { .. }) && net.spec.softmax_index() == Some(li) {
            let Objective::Loss { label } = obj else { unreachable!() };
            let probs = p.probs.as_ref().unwrap();
            for (k, g) in p.layers[li].grad.data.iter().enumerate() {
                let want = if k == label { -1.0 / probs[k] } else { 0.0 };
                assert!((g - want).abs() <= 1e-3 * want.abs().max(1.0), "d loss / d p[{k}] = {g}, want {want}");
            }
            continue;
        }
        let out = pollster::block_on(read(outs[li].clone())).unwrap();
        let g = &p.layers[li].grad;
        let scale = g.data.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        let dims = outs[li].dims();
        for i in sample(out.len(), 8) {
            let eval = |delta: f32| {
                let mut v = out.clone();
                v[i] += delta;
                let cur =
                    convlens_core::burn::tensor::Tensor::<4>::from_data(convlens_core::burn::tensor::TensorData::new(v, dims), &device());
                let mut all = outs[..=li].to_vec();
                all[li] = cur;
                for k in li + 1..net.spec.layers.len() {
                    let inputs: Vec<_> = net.spec.layers[k].inputs.iter().map(|&j| all[j].clone()).collect();
                    let y = net.forward_node(k, &net.params[k], &inputs, true);
                    all.push(y);
                }
                let g = grad::gradients(&net, &obj, &all).unwrap();
                pollster::block_on(read(g.value)).unwrap()[0] as f64
            };
            let (fp, fm) = (eval(eps), eval(-eps));
            let (up, down) = ((fp - f0) / eps as f64, (f0 - fm) / eps as f64);
            if (up - down).abs() > 0.05 * up.abs().max(down.abs()) + 1e-3 * scale.max(1e-3) {
                skipped += 1;
                continue;
            }
            checked += 1;
            assert_close(&format!("{obj:?}: d/d layer {li} output[{i}]"), g.data[i] as f64, (up + down) / 2.0, scale);
        }
    }
    assert!(checked >= 3 * skipped, "too many non-differentiable points: {checked} checked, {skipped} skipped");
}

const CONV_NET: &str = r#"{"layers":[
  {"type":"input","width":9,"height":9,"depth":2},
  {"type":"conv","size":3,"filters":3,"pad":1,"activation":"relu"},
  {"type":"pool","size":2,"stride":2,"mode":"max"},
  {"type":"conv","size":2,"filters":4,"stride":2,"pad":1,"activation":"tanh"},
  {"type":"pool","size":2,"stride":1,"mode":"avg"},
  {"type":"fc","units":5,"activation":"sigmoid"},
  {"type":"fc","units":4},
  {"type":"softmax"}]}"#;

const ELEMENTWISE_NET: &str = r#"{"layers":[
  {"type":"input","width":4,"height":4,"depth":3},
  {"type":"batchnorm"},
  {"type":"relu"},
  {"type":"conv","size":3,"filters":2,"pad":1,"bias":false},
  {"type":"sigmoid"},
  {"type":"dropout","rate":0.3},
  {"type":"tanh"},
  {"type":"fc","units":3,"activation":"relu"},
  {"type":"fc","units":3}]}"#;

/// A MobileNetV2-style residual block: TensorFlow 'same' padding with stride 2 (an extra zero row
/// and column at the bottom and right), relu6, a depthwise convolution, and an add of two branches.
const GRAPH_NET: &str = r#"{"layers":[
  {"type":"input","width":8,"height":8,"depth":3},
  {"type":"conv","name":"stem","size":3,"filters":4,"stride":2,"padding":"same","activation":"relu6"},
  {"type":"conv","name":"expand","size":1,"filters":8,"activation":"relu6"},
  {"type":"conv","name":"dw","size":3,"filters":8,"groups":8,"padding":"same","activation":"relu6"},
  {"type":"conv","name":"project","size":1,"filters":4},
  {"type":"add","name":"res","inputs":["stem","project"]},
  {"type":"pool","size":4,"stride":1,"mode":"avg"},
  {"type":"fc","units":3},
  {"type":"softmax"}]}"#;

#[test]
fn residual_depthwise_relu6_same_padding() {
    let spec = NetSpec::parse(GRAPH_NET).unwrap();
    let stem = &spec.layers[1];
    assert_eq!(stem.out_shape, [4, 4, 4]);
    assert!(matches!(&stem.kind, convlens_core::spec::LayerKind::Conv(c) if c.pad == 0 && c.pad_end == 1));
    assert_eq!(spec.layers[3].params()[0].shape, vec![8, 1, 3, 3]);
    assert_eq!(spec.layers[5].inputs, vec![1, 4]);
    // The fused CPU path takes it too (checked against these Burn gradients in cpu_train.rs).
    assert!(convlens_core::cpu_train::supported(&spec));
    check_with(GRAPH_NET, Objective::Class(1), 21, 1e-3);
    check_with(GRAPH_NET, Objective::Loss { label: 2 }, 22, 1e-3);
    check_with(GRAPH_NET, Objective::Channel { layer: 5, channel: 2 }, 23, 1e-3);
    check_with(GRAPH_NET, Objective::Neuron { layer: 2, index: 17 }, 24, 1e-3);
}

#[test]
fn graph_spec_errors_name_the_layer() {
    let err = |layers: &str| {
        NetSpec::parse(&format!(r#"{{"layers":[{{"type":"input","width":4,"height":4,"depth":2}},{layers}]}}"#)).unwrap_err().to_string()
    };
    assert_eq!(
        err(r#"{"type":"conv","size":3,"filters":3,"groups":2}"#),
        "layer 1 (conv): field 'groups': expected a divisor of both the 2 input channels and the 3 filters, got 2"
    );
    assert_eq!(
        err(r#"{"type":"relu","inputs":["nope"]}"#),
        "layer 1 (relu): field 'inputs': \"nope\" is not an earlier layer; expected names among input"
    );
    assert_eq!(err(r#"{"type":"add","inputs":["input"]}"#), "layer 1 (add): field 'inputs': \"add\" sums two or more layers; got 1");
    assert_eq!(
        err(r#"{"type":"conv","name":"c","size":1,"filters":3},{"type":"add","inputs":["input","c"]}"#),
        "layer 2 (add): field 'inputs': \"add\" needs inputs of one shape; input is [2, 4, 4], c is [3, 4, 4]"
    );
    assert_eq!(
        err(r#"{"type":"conv","size":3,"filters":2,"pad":1,"padding":"same"}"#),
        "layer 1 (conv): field 'padding': give either pad or padding, not both"
    );
    assert_eq!(
        err(r#"{"type":"relu","inputs":["input","input"]}"#),
        "layer 1 (relu): field 'inputs': expected one layer (only add, mul and concat read several), got 2"
    );
    assert_eq!(
        err(r#"{"type":"concat","inputs":["input"]}"#),
        "layer 1 (concat): field 'inputs': \"concat\" stacks two or more layers; got 1"
    );
    assert_eq!(
        err(r#"{"type":"pool","name":"p","size":2},{"type":"concat","inputs":["input","p"]}"#),
        "layer 2 (concat): field 'inputs': \"concat\" stacks channels of inputs of one height and width; input is [2, 4, 4], p is [2, 2, 2]"
    );
    assert_eq!(
        err(r#"{"type":"pool","name":"p","size":2},{"type":"mul","inputs":["input","p"]}"#),
        "layer 2 (mul): field 'inputs': \"mul\" needs inputs of one shape, or [C, 1, 1] to scale channels; input is [2, 4, 4], p is [2, 2, 2]"
    );
    assert_eq!(
        err(r#"{"type":"reshape","shape":[3,3,3]}"#),
        "layer 1 (reshape): field 'shape': [3, 3, 3] holds 27 values; the input [2, 4, 4] has 32"
    );
    assert_eq!(
        err(r#"{"type":"reshape","shape":[32]}"#),
        "layer 1 (reshape): field 'shape': expected [depth, height, width] of positive integers, got [32]"
    );
    assert_eq!(err(r#"{"type":"clip","min":1,"max":1}"#), "layer 1 (clip): field 'max': expected more than min (1), got 1");
    assert_eq!(err(r#"{"type":"leaky_relu","alpha":2}"#), "layer 1 (leaky_relu): field 'alpha': expected a number in [0, 1), got 2");
}

/// The layers model import needs (ONNX and Keras graphs): leaky relu, clip, a product of two
/// layers and a channel scaling by a [C, 1, 1] branch (squeeze-and-excitation), concat, global
/// average and max pooling, reshape and flatten.
const IMPORT_NET: &str = r#"{"layers":[
  {"type":"input","width":6,"height":6,"depth":2},
  {"type":"conv","name":"a","size":3,"filters":3,"pad":1},
  {"type":"leaky_relu","name":"la","alpha":0.1},
  {"type":"mul","name":"sq","inputs":["la","la"]},
  {"type":"conv","name":"b","size":1,"filters":2,"inputs":["input"]},
  {"type":"clip","name":"cb","min":-0.5,"max":0.8},
  {"type":"concat","name":"cat","inputs":["sq","cb"]},
  {"type":"globalpool","name":"gap"},
  {"type":"fc","name":"se","units":5,"activation":"sigmoid"},
  {"type":"mul","name":"scaled","inputs":["cat","se"]},
  {"type":"pool","size":2,"mode":"avg"},
  {"type":"reshape","shape":[5,9,1]},
  {"type":"globalpool","mode":"max"},
  {"type":"flatten"},
  {"type":"fc","units":3},
  {"type":"softmax"}]}"#;

#[test]
fn import_layers_leaky_clip_mul_concat_globalpool_reshape_flatten() {
    let spec = NetSpec::parse(IMPORT_NET).unwrap();
    let shapes: Vec<_> = spec.layers.iter().map(|l| l.out_shape).collect();
    assert_eq!(shapes[6], [5, 6, 6], "concat stacks 3 + 2 channels");
    assert_eq!(shapes[7], [5, 1, 1], "global pooling");
    assert_eq!(shapes[9], [5, 6, 6], "a [C, 1, 1] factor scales channels");
    assert_eq!(shapes[11], [5, 9, 1]);
    assert_eq!(shapes[13], [5, 1, 1]);
    // mul and reshape have no fused part: this net runs on Burn.
    assert!(!convlens_core::cpu_train::supported(&spec));
    check_with(IMPORT_NET, Objective::Class(1), 31, 1e-3);
    check_with(IMPORT_NET, Objective::Loss { label: 2 }, 32, 1e-3);
    check_with(IMPORT_NET, Objective::Channel { layer: 9, channel: 3 }, 33, 1e-3);
}

#[test]
fn layers_by_name_or_number() {
    let spec = NetSpec::parse(CONV_NET).unwrap();
    assert_eq!(spec.layer_index("conv2").unwrap(), 3);
    assert_eq!(spec.layer_index("3").unwrap(), 3);
    assert_eq!(Objective::parse_in("channel:pool1:1", &spec).unwrap(), Objective::Channel { layer: 2, channel: 1 });
    assert_eq!(Objective::parse_in("neuron:5:2", &spec).unwrap(), Objective::Neuron { layer: 5, index: 2 });
    assert_eq!(
        spec.layer_index("nope").unwrap_err().to_string(),
        "there is no layer 'nope'; the layers are input, conv1, pool1, conv2, pool2, fc1, fc2, softmax1 (or their numbers 0..7)"
    );
    assert!(spec.layer_index("8").is_err());
}

#[test]
fn conv_pool_fc_softmax_class_score() {
    check(CONV_NET, Objective::Class(2), 11);
}

#[test]
fn conv_pool_fc_softmax_loss() {
    check(CONV_NET, Objective::Loss { label: 1 }, 12);
}

#[test]
fn hidden_neuron_and_channel() {
    check(CONV_NET, Objective::Neuron { layer: 3, index: 5 }, 13);
    check(CONV_NET, Objective::Channel { layer: 2, channel: 1 }, 14);
}

/// A loss on a hidden layer given by its gradient there (how feature inversion, style and
/// DeepDream losses enter), on a chain and on the residual graph.
#[test]
fn a_gradient_given_at_a_hidden_layer() {
    let mut rng = Rng(77);
    let grad: Vec<f32> = (0..4 * 3 * 3).map(|_| rng.next()).collect();
    check(CONV_NET, Objective::Seed { layer: 3, grad }, 17);
    let grad: Vec<f32> = (0..8 * 4 * 4).map(|_| rng.next()).collect();
    check_with(GRAPH_NET, Objective::Seed { layer: 3, grad }, 25, 1e-3);
    let net = random_net(CONV_NET, 1);
    let e = Objective::Seed { layer: 3, grad: vec![0.0; 7] }.check(&net).unwrap_err().to_string();
    assert_eq!(e, "objective: the gradient given for layer 3 has 7 values; the layer has 36");
}

#[test]
fn batchnorm_relu_sigmoid_dropout_tanh() {
    check(ELEMENTWISE_NET, Objective::Class(0), 15);
    check(ELEMENTWISE_NET, Objective::Loss { label: 2 }, 16);
}

#[test]
fn gradients_above_the_objective_are_zero_and_loss_is_cross_entropy() {
    let net = random_net(CONV_NET, 3);
    let image = vec![0.3f32; 2 * 81];
    let p = pollster::block_on(layers::probe(&net, &image, &Objective::Neuron { layer: 2, index: 0 })).unwrap();
    for l in &p.layers[3..] {
        assert!(l.grad.data.iter().all(|&v| v == 0.0));
        for w in &l.weights {
            assert!(w.grad.data.iter().all(|&v| v == 0.0));
        }
    }
    let p = pollster::block_on(layers::probe(&net, &image, &Objective::Loss { label: 3 })).unwrap();
    let probs = p.probs.unwrap();
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!((p.objective + probs[3].ln()).abs() < 1e-4, "loss = -ln p[label]");
}

#[test]
fn bad_objectives_and_inputs_are_errors() {
    let net = random_net(CONV_NET, 3);
    let image = vec![0.0f32; 2 * 81];
    let err = |o: Objective| pollster::block_on(layers::probe(&net, &image, &o)).unwrap_err().to_string();
    assert_eq!(err(Objective::Class(4)), "objective: class 4 does not exist; the network has 4 classes (0..3)");
    assert_eq!(err(Objective::Neuron { layer: 9, index: 0 }), "objective: layer 9 does not exist; the network has layers 0..7");
    assert_eq!(err(Objective::Neuron { layer: 1, index: 243 }), "objective: unit 243 does not exist; layer 1 has 243 units");
    assert_eq!(err(Objective::Channel { layer: 1, channel: 3 }), "objective: channel 3 does not exist; layer 1 has 3 channels");
    let e = pollster::block_on(layers::probe(&net, &[0.0; 5], &Objective::Class(0))).unwrap_err().to_string();
    assert_eq!(e, "input: the image has 5 values; the network's input is 2x9x9 (depth x height x width) = 162 values");
    let mut nan = image.clone();
    nan[7] = f32::NAN;
    let e = pollster::block_on(layers::probe(&net, &nan, &Objective::Class(0))).unwrap_err().to_string();
    assert_eq!(e, "input: the image has a non-finite value (NaN) at index 7");
    assert_eq!(Objective::parse("neuron:2:17").unwrap(), Objective::Neuron { layer: 2, index: 17 });
    assert!(Objective::parse("class").is_err());
}
