//! The fused CPU training path against the Burn path (Burn's autodiff, checked against finite
//! differences in gradients.rs): the same losses, correct counts and weights (batchnorm's running
//! statistics too), step by step, for every layer type it takes, in chains and graphs, and every
//! trainer; every layer's output, gradient and weight gradient; and its divergence handling.

use convlens_core::Net;
use convlens_core::cpu_train::{self, CpuTrainer};
use convlens_core::rng::SplitMix64;
use convlens_core::spec::NetSpec;
use convlens_core::train::{self, Method, Optimizer, TrainConfig};

const SPECS: [&str; 10] = [
    convlens_core::spec::MNIST_SPEC,
    // Stride 2 with padding, average pooling with padding, sigmoid and tanh, a dropout, a bare act layer.
    r#"{"layers":[{"type":"input","width":9,"height":9,"depth":2},
      {"type":"conv","size":3,"filters":4,"stride":2,"pad":1,"activation":"sigmoid"},
      {"type":"pool","size":3,"stride":2,"pad":1,"mode":"avg"},
      {"type":"conv","size":2,"filters":5,"activation":"tanh"},{"type":"relu"},{"type":"dropout","rate":0.5},
      {"type":"fc","units":6,"activation":"relu"},{"type":"fc","units":3},{"type":"softmax"}]}"#,
    // 2-D toy net.
    r#"{"layers":[{"type":"input","width":1,"height":1,"depth":2},{"type":"fc","units":6,"activation":"tanh"},
      {"type":"fc","units":2,"activation":"tanh"},{"type":"fc","units":2},{"type":"softmax"}]}"#,
    // RGB, max pool with stride 1 and padding, conv without bias activation; scores without softmax.
    r#"{"layers":[{"type":"input","width":8,"height":8,"depth":3},
      {"type":"conv","size":5,"filters":6,"pad":2,"activation":"relu"},{"type":"pool","size":3,"stride":1,"pad":1},
      {"type":"pool","size":2,"stride":2},{"type":"conv","size":3,"filters":4,"pad":1},{"type":"fc","units":4}]}"#,
    // A graph: a scale, batchnorm, relu6, a residual add, a branch point read three times, a
    // concat, global average pooling. (A bias right before a batchnorm gets a zero gradient up to
    // rounding, which Adam would magnify: no bias there, as in ResNet and MobileNet.)
    r#"{"layers":[{"type":"input","width":7,"height":7,"depth":3},{"type":"scale","scale":2,"offset":-1},
      {"type":"conv","name":"a","size":3,"filters":6,"pad":1,"bias":false},{"type":"batchnorm","name":"bn"},{"type":"relu6","name":"r"},
      {"type":"conv","name":"b","size":3,"filters":6,"pad":1,"activation":"relu"},{"type":"batchnorm","name":"bn2","momentum":0.3},
      {"type":"add","name":"sum","inputs":["r","bn2"]},{"type":"conv","name":"c","size":1,"filters":4,"inputs":["r"]},
      {"type":"concat","name":"cat","inputs":["sum","c","r"]},{"type":"pool","size":2,"stride":2},
      {"type":"globalpool"},{"type":"fc","units":5},{"type":"softmax"}]}"#,
    // Global max pooling, an add of three, clip, per-channel scale; dropout in a branch.
    r#"{"layers":[{"type":"input","width":6,"height":6,"depth":2},{"type":"scale","scale":[0.5,2],"offset":[0,0.1]},
      {"type":"conv","name":"a","size":3,"filters":4,"pad":1,"activation":"tanh"},{"type":"dropout","name":"d","rate":0.3},
      {"type":"conv","name":"b","size":3,"filters":4,"pad":1,"inputs":["a"]},{"type":"clip","name":"k","min":-0.5,"max":0.7},
      {"type":"add","name":"s","inputs":["d","k","a"]},{"type":"batchnorm"},{"type":"globalpool","mode":"max"},
      {"type":"flatten"},{"type":"fc","units":3}]}"#,
    // MobileNet's block: 'same' padding with the odd zero row (stride 2), a depthwise conv with
    // relu6, one with a channel multiplier of 2, stride 2 and 'same' padding (zero at the top,
    // one at the bottom), a grouped 1x1 and 3x3 conv. (A clip
    // below zero before the depthwise conv: relu6 there would make all-zero patches, whose output
    // sits exactly on relu6's kink, where Burn's clamp passes the gradient and PyTorch's and this
    // path's do not.)
    r#"{"layers":[{"type":"input","width":8,"height":8,"depth":4},
      {"type":"conv","size":3,"filters":4,"stride":2,"padding":"same","bias":false},{"type":"batchnorm"},{"type":"clip","min":-1,"max":6},
      {"type":"conv","size":3,"filters":4,"groups":4,"pad":1,"activation":"relu6"},
      {"type":"conv","size":3,"filters":8,"groups":4,"stride":2,"padding":"same"},
      {"type":"conv","size":1,"filters":6,"groups":2,"activation":"relu"},{"type":"conv","size":3,"filters":4,"groups":2,"pad":1},
      {"type":"globalpool"},{"type":"fc","units":3}]}"#,
    // ResNet's 3x3 convolutions: 16 channels in and out, stride 1, padding 1, on maps of odd
    // sizes (9x7, then 4x3), which an inference forward runs by Winograd's F(2x2, 3x3); a
    // residual add over a batchnorm.
    r#"{"layers":[{"type":"input","width":9,"height":7,"depth":3},
      {"type":"conv","name":"a","size":3,"filters":16,"pad":1,"activation":"relu"},
      {"type":"conv","name":"b","size":3,"filters":16,"pad":1,"activation":"relu"},
      {"type":"conv","name":"c","size":3,"filters":16,"pad":1,"bias":false},{"type":"batchnorm","name":"bn"},
      {"type":"add","inputs":["a","bn"]},{"type":"relu"},{"type":"pool","size":2,"stride":2},
      {"type":"conv","size":3,"filters":20,"pad":1,"activation":"relu"},{"type":"globalpool"},{"type":"fc","units":4},{"type":"softmax"}]}"#,
    // SqueezeNet's pooling: ceil mode, whose last window hangs over the map's edge (max 3x3
    // stride 2 on 10x10: 5x5; average 2x2 stride 2 on 5x5, padding counted but none there, and not
    // counted: 3x3).
    r#"{"layers":[{"type":"input","width":12,"height":12,"depth":3},{"type":"conv","size":3,"filters":4,"activation":"relu"},
      {"type":"pool","name":"p","size":3,"stride":2,"ceil":true},{"type":"conv","name":"s","size":1,"filters":5,"activation":"relu"},
      {"type":"pool","name":"a1","size":2,"stride":2,"mode":"avg","ceil":true,"count_pad":true},
      {"type":"conv","name":"e","size":1,"filters":4,"inputs":["p"]},{"type":"pool","name":"a2","size":2,"stride":2,"mode":"avg","ceil":true},
      {"type":"pool","name":"m","size":2,"stride":2,"ceil":true,"inputs":["s"]},
      {"type":"concat","inputs":["a1","a2","m"]},{"type":"globalpool"},{"type":"fc","units":3},{"type":"softmax"}]}"#,
    // A flatten of a spatial map (a transpose on this path) before the scores.
    r#"{"layers":[{"type":"input","width":5,"height":5,"depth":2},{"type":"conv","size":3,"filters":3,"activation":"relu"},
      {"type":"flatten"},{"type":"fc","units":4,"activation":"relu"},{"type":"fc","units":3},{"type":"softmax"}]}"#,
];

fn batch(spec: &NetSpec, n: usize, rng: &mut SplitMix64) -> (Vec<f32>, Vec<usize>) {
    let size: usize = spec.input_shape().iter().product();
    let x = (0..n * size).map(|_| rng.range(-1.0, 1.5) as f32).collect();
    let y = (0..n).map(|_| rng.below(spec.classes())).collect();
    (x, y)
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn the_fused_path_matches_burn_step_by_step() {
    let device = convlens_core::backend::cpu();
    for (si, text) in SPECS.iter().enumerate() {
        let spec = NetSpec::parse(text).unwrap();
        assert!(cpu_train::supported(&spec));
        for method in Method::ALL {
            let config =
                TrainConfig { method, learning_rate: 0.02, momentum: 0.9, l1: 0.001, l2: 0.01, batch_size: 5, ..Default::default() };
            let mut burn_net = Net::init(spec.clone(), 5 + si as u64, &device);
            let mut opt = Optimizer::new(&burn_net, config);
            let w0 = pollster::block_on(burn_net.read_weights()).unwrap();
            let mut fast = CpuTrainer::new(&burn_net, w0, config);
            let mut rng = SplitMix64(si as u64);
            let batches: Vec<_> = (0..4).map(|_| batch(&spec, 5, &mut rng)).collect();
            let (a, _) = pollster::block_on(train::train_chunk(&mut burn_net, &mut opt, &batches, &|| 0.0)).unwrap();
            let (b, _) = fast.train_chunk(&batches, &|| 0.0).unwrap();
            let what = format!("spec {si}, {}", method.as_str());
            assert_eq!(a.correct, b.correct, "{what}: correct counts");
            for (x, y) in a.losses.iter().zip(&b.losses) {
                assert!(close(*x, *y, 1e-5), "{what}: losses {:?} vs {:?}", a.losses, b.losses);
            }
            let wa = pollster::block_on(burn_net.read_weights()).unwrap();
            for (li, (la, lb)) in wa.iter().zip(&fast.weights).enumerate() {
                for (pi, (pa, pb)) in la.iter().zip(lb).enumerate() {
                    for (k, (x, y)) in pa.iter().zip(pb).enumerate() {
                        assert!(close(*x, *y, 2e-4), "{what}: layer {li} param {pi}[{k}]: burn {x} vs fused {y}");
                    }
                }
            }
        }
    }
}

#[test]
fn dilated_convolutions_are_left_to_burn_and_a_diverged_chunk_can_be_undone() {
    let dilated = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":6,"height":6,"depth":2},{"type":"conv","size":3,"filters":2,"dilation":2},
      {"type":"batchnorm"},{"type":"fc","units":2},{"type":"softmax"}]}"#,
    )
    .unwrap();
    assert!(!cpu_train::supported(&dilated));
    let device = convlens_core::backend::cpu();
    let spec = NetSpec::parse(SPECS[0]).unwrap();
    let net = Net::init(spec.clone(), 1, &device);
    let w0 = pollster::block_on(net.read_weights()).unwrap();
    let mut fast = CpuTrainer::new(&net, w0.clone(), TrainConfig { method: Method::Sgd, learning_rate: 1e30, ..Default::default() });
    let mut rng = SplitMix64(9);
    let batches: Vec<_> = (0..3).map(|_| batch(&spec, 4, &mut rng)).collect();
    let saved = fast.save();
    let (stats, before_last) = fast.train_chunk(&batches, &|| 0.0).unwrap();
    assert!(!stats.weights_finite || stats.losses.iter().any(|l| !l.is_finite()), "{:?}", stats.losses);
    assert_eq!(fast.steps, 3);
    fast.restore(before_last);
    assert_eq!(fast.steps, 2);
    fast.restore(saved);
    assert_eq!(fast.weights, w0);
    assert_eq!(fast.steps, 0);
}

#[test]
fn every_layer_output_matches_burn() {
    let device = convlens_core::backend::cpu();
    for (si, text) in SPECS.iter().enumerate() {
        let spec = NetSpec::parse(text).unwrap();
        let net = Net::init(spec.clone(), 3, &device);
        let w = pollster::block_on(net.read_weights()).unwrap();
        let mut fast = CpuTrainer::new(&net, w, TrainConfig::default());
        let (x, _) = batch(&spec, 3, &mut SplitMix64(4));
        let [d, h, wd] = spec.input_shape();
        let t = convlens_core::burn::tensor::Tensor::<4>::from_data(
            convlens_core::burn::tensor::TensorData::new(x.clone(), [3, d, h, wd]),
            &device,
        );
        let outs = net.forward_all(t);
        for layer in 0..spec.layers.len() {
            let want = pollster::block_on(convlens_core::read(outs[layer].clone().flatten::<1>(0, 3))).unwrap();
            let got = fast.layer_output(&x, 3, layer).unwrap();
            assert_eq!(got.len(), want.len());
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(close(*a, *b, 1e-5), "spec {si} layer {layer}[{k}]: fused {a} vs burn {b}");
            }
        }
    }
}

#[test]
fn the_fused_probe_matches_burns_layer_view() {
    use convlens_core::Objective;
    use convlens_core::grad::ReluRule;
    use convlens_core::vis::layers;
    let device = convlens_core::backend::cpu();
    for (si, text) in SPECS.iter().enumerate() {
        let spec = NetSpec::parse(text).unwrap();
        let net = Net::init(spec.clone(), 8, &device);
        let w = pollster::block_on(net.read_weights()).unwrap();
        let mut fast = CpuTrainer::new(&net, w, TrainConfig::default());
        let (x, _) = batch(&spec, 1, &mut SplitMix64(2));
        let last = spec.score_layer();
        let mut objectives =
            vec![Objective::Class(1), Objective::Loss { label: spec.classes() - 1 }, Objective::Neuron { layer: 1, index: 3 }];
        objectives.push(Objective::Channel { layer: last.min(2), channel: 0 });
        let size: usize = spec.layers[1].out_shape.iter().product();
        objectives.push(Objective::Seed { layer: 1, grad: (0..size).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect() });
        for objective in objectives {
            let want = pollster::block_on(layers::probe(&net, &x, &objective)).unwrap();
            let got = fast.probe(&net, &x, &objective).unwrap().expect("at or below the scores");
            // A gradient map alone (no weights' gradients: a backward after an inference forward
            // that needs no im2col) is the probe's input gradient.
            let (values, map) = fast.input_grads(&net, &x, 1, &objective, ReluRule::Gradient).unwrap().expect("at or below the scores");
            assert!(close(values[0], got.objective, 1e-5), "spec {si}, {objective:?}: input_grads' value");
            for (k, (u, v)) in map.iter().zip(&got.layers[0].grad.data).enumerate() {
                assert!(close(*u, *v, 1e-5), "spec {si}, {objective:?}: input gradient [{k}]: {u} vs the probe's {v}");
            }
            let what = format!("spec {si}, {objective:?}");
            assert!(close(got.objective, want.objective, 1e-5), "{what}: objective {} vs {}", got.objective, want.objective);
            assert_eq!(got.probs.is_some(), want.probs.is_some());
            for (li, (a, b)) in got.layers.iter().zip(&want.layers).enumerate() {
                for (name, x, y) in [("act", &a.act, &b.act), ("grad", &a.grad, &b.grad)] {
                    assert_eq!(x.shape, y.shape);
                    for (k, (u, v)) in x.data.iter().zip(&y.data).enumerate() {
                        assert!(close(*u, *v, 1e-4), "{what}: layer {li} {name}[{k}]: fused {u} vs burn {v}");
                    }
                }
                for (wa, wb) in a.weights.iter().zip(&b.weights) {
                    assert_eq!(wa.name, wb.name);
                    for (k, (u, v)) in wa.grad.data.iter().zip(&wb.grad.data).enumerate() {
                        assert!(close(*u, *v, 1e-4), "{what}: {} grad[{k}]: fused {u} vs burn {v}", wa.name);
                    }
                }
            }
        }
    }
}

#[test]
fn incremental_occlusion_equals_a_whole_forward_pass_on_every_spec() {
    use convlens_core::cpu_occlude::{IncrementalForward, Rect};
    let device = convlens_core::backend::cpu();
    for (si, text) in SPECS.iter().enumerate() {
        let spec = NetSpec::parse(text).unwrap();
        let [d, h, w] = spec.input_shape();
        if h < 3 {
            continue;
        }
        let net = Net::init(spec.clone(), 6, &device);
        let weights = pollster::block_on(net.read_weights()).unwrap();
        let mut fast = CpuTrainer::new(&net, weights.clone(), TrainConfig::default());
        let (x, _) = batch(&spec, 1, &mut SplitMix64(7));
        let baseline: Vec<f32> = (0..x.len()).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut inc = IncrementalForward::new(&spec, fast.layer_outputs(&x));
        let last = spec.score_layer();
        for patch in [Rect { y0: 0, y1: 2, x0: 0, x1: 3 }, Rect { y0: 2, y1: 5, x0: 1, x1: 3 }, Rect { y0: h - 1, y1: h, x0: w - 2, x1: w }]
        {
            let got = inc.scores(&weights, &baseline, patch);
            let mut occluded = x.clone();
            for c in 0..d {
                for y in patch.y0..patch.y1 {
                    for xx in patch.x0..patch.x1 {
                        occluded[(c * h + y) * w + xx] = baseline[(c * h + y) * w + xx];
                    }
                }
            }
            let want = fast.layer_output(&occluded, 1, last).unwrap();
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(close(*a, *b, 1e-5), "spec {si}, patch {patch:?}: score {k}: incremental {a} vs whole {b}");
            }
        }
    }
}
