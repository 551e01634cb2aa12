//! Layers against PyTorch (fixtures made by scripts/make_layer_fixtures.py): the attribution rules
//! at ReLU6 and Clip, batchnorm trained with its batch statistics and running statistics moved by
//! its momentum, dropout's seeded masks in training and the identity in evaluation.

use convlens_core::cpu_train::CpuTrainer;
use convlens_core::grad::ReluRule;
use convlens_core::net::dropout_mask;
use convlens_core::spec::NetSpec;
use convlens_core::train::{self, Method, Optimizer, TrainConfig};
use convlens_core::vis::attribution::Attributor;
use convlens_core::{Net, Objective};
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/layers")
}

fn arrays(file: &str) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(fixture_dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e} (run scripts/make_layer_fixtures.py)"));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.names()
        .into_iter()
        .map(|k| (k.to_string(), st.tensor(k).unwrap().data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
        .collect()
}

fn meta(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_dir().join(file)).unwrap()).unwrap()
}

/// The net of a fixture: its spec and the weights stored under `prefix` + each parameter's name.
fn net_of(spec: &Value, a: &BTreeMap<String, Vec<f32>>, prefix: &str) -> Net {
    let spec = NetSpec::from_value(spec).unwrap();
    let w = spec.layers.iter().map(|l| l.params().iter().map(|p| a[&format!("{prefix}{}", p.name)].clone()).collect()).collect();
    Net::with_weights(spec, w, &convlens_core::backend::cpu())
}

/// max |got - want| / max |want|.
fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max) / scale
}

const RULES: [(&str, ReluRule); 3] = [("gradient", ReluRule::Gradient), ("deconvnet", ReluRule::Deconvnet), ("guided", ReluRule::Guided)];

#[test]
fn relu6_and_clip_take_the_deconvnet_and_guided_rules_as_pytorch() {
    let m = meta("rules.json");
    let a = arrays("rules.safetensors");
    let net = net_of(&m["spec"], &a, "");
    assert!(m["clipped_at_6"].as_array().unwrap().iter().all(|c| c.as_u64().unwrap() > 0), "some units pass 6");
    for case in m["cases"].as_array().unwrap() {
        let target = case["target"].as_u64().unwrap() as usize;
        let mut maps = BTreeMap::new();
        for (name, rule) in RULES {
            let mut at = Attributor::new(&net, None);
            let (_, g) = pollster::block_on(at.input_grads(&a["images"], 2, &Objective::Class(target), rule)).unwrap();
            let want = &a[case["keys"][name].as_str().unwrap()];
            let e = rel_err(&g, want);
            println!("class {target}, {name}: error {e:.2e}");
            assert!(e < 1e-4, "class {target}, {name}: error {e:.2e} against PyTorch");
            maps.insert(name, g);
        }
        assert!(rel_err(&maps["guided"], &maps["gradient"]) > 1e-2, "guided differs from the gradient");
        assert!(rel_err(&maps["deconvnet"], &maps["gradient"]) > 1e-2, "deconvnet differs from the gradient");
    }
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn mobilenet_guided_and_deconvnet_as_pytorch_with_the_rule_at_relu6() {
    let dir = common::data_dir().join("mobilenet");
    let bytes = std::fs::read(dir.join("mobilenet_v2_f32.safetensors")).expect("mobilenet_v2_f32.safetensors in the data directory");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let shape = |name: &str| st.tensor(name).ok().map(|t| t.shape().to_vec());
    let ops = std::fs::read_to_string(dir.join("mobilenet_v2_f32.json")).unwrap();
    let spec = convlens_core::oplist::spec(&ops, &shape, None).unwrap();
    let w = convlens_core::weights::load(&spec, &bytes).unwrap();
    let net = Net::with_weights(spec, w, &convlens_core::backend::cpu());
    let a = arrays("mobilenet_rules.safetensors");
    let target = a["target"][0] as usize;
    let mut maps = BTreeMap::new();
    for (name, rule) in RULES {
        let mut at = Attributor::new(&net, None);
        let (_, g) = pollster::block_on(at.input_grads(&a["image"], 1, &Objective::Class(target), rule)).unwrap();
        let e = rel_err(&g, &a[name]);
        println!("MobileNetV2 class {target}, {name}: error {e:.2e} against PyTorch");
        assert!(e < 1e-4, "{name}: error {e:.2e}");
        maps.insert(name, g);
    }
    let d = rel_err(&maps["guided"], &maps["gradient"]);
    println!("guided vs gradient: {d:.3}; deconvnet vs gradient: {:.3}", rel_err(&maps["deconvnet"], &maps["gradient"]));
    assert!(d > 0.1, "guided backprop differs from the gradient on MobileNetV2");
}

#[test]
fn batchnorm_and_dropout_train_as_pytorch() {
    let m = meta("train.json");
    let a = arrays("train.safetensors");
    let mut net = net_of(&m["spec"], &a, "init.");
    let (steps, batch) = (m["steps"].as_u64().unwrap() as usize, m["batch"].as_u64().unwrap() as usize);
    let seed = m["seed"].as_u64().unwrap();
    let size: usize = net.spec.input_shape().iter().product();
    assert_eq!(dropout_mask(seed, 0, 4, 0.3, batch, 4 * 36), a["mask_step0"], "dropout's masks are PyTorch's script's");
    let config = TrainConfig {
        method: Method::Sgd,
        learning_rate: m["lr"].as_f64().unwrap(),
        momentum: 0.0,
        l2: 0.0,
        batch_size: batch,
        seed,
        ..Default::default()
    };
    let mut opt = Optimizer::new(&net, config);
    let batches: Vec<(Vec<f32>, Vec<usize>)> = (0..steps)
        .map(|s| {
            (
                a["images"][s * batch * size..(s + 1) * batch * size].to_vec(),
                a["labels"][s * batch..(s + 1) * batch].iter().map(|&l| l as usize).collect(),
            )
        })
        .collect();
    let (stats, _) = pollster::block_on(train::train_chunk(&mut net, &mut opt, &batches, &|| 0.0)).unwrap();
    let e = rel_err(&stats.losses, &a["losses"]);
    println!("losses {:?} vs PyTorch {:?}: {e:.2e}", stats.losses, a["losses"]);
    assert!(e < 1e-4, "losses");
    let weights = pollster::block_on(net.read_weights()).unwrap();
    for (l, lw) in net.spec.layers.iter().zip(&weights) {
        for (p, v) in l.params().iter().zip(lw) {
            let e = rel_err(v, &a[&format!("final.{}", p.name)]);
            println!("{}: {e:.2e}", p.name);
            assert!(e < 1e-4, "{} after {steps} steps: error {e:.2e} against PyTorch", p.name);
        }
    }
    let probs = pollster::block_on(train::probabilities(&net, &a["test"], 5)).unwrap();
    let e = rel_err(&probs, &a["eval_probs"]);
    println!("eval(): {e:.2e}");
    assert!(e < 1e-4, "evaluation equals PyTorch's eval()");
}

#[test]
fn dropout_masks_follow_the_seed_and_evaluation_is_the_identity() {
    let m = dropout_mask(3, 5, 2, 0.25, 4, 1000);
    assert_eq!(m, dropout_mask(3, 5, 2, 0.25, 4, 1000), "the same (seed, step, layer), the same mask");
    assert_ne!(m, dropout_mask(4, 5, 2, 0.25, 4, 1000), "another seed, another mask");
    assert_ne!(m, dropout_mask(3, 6, 2, 0.25, 4, 1000), "another step, another mask");
    let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
    assert!((dropped - 0.25).abs() < 0.02, "a quarter dropped, got {dropped}");
    assert!(m.iter().all(|&v| v == 0.0 || v == (1.0f64 / 0.75) as f32), "kept units are scaled by 1 / (1 - rate)");

    // Evaluation: a net with dropout gives what it gives without it.
    let with = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":3,"height":3,"depth":2},{"type":"dropout","rate":0.6},{"type":"fc","units":4}]}"#,
    )
    .unwrap();
    let net = Net::init(with, 3, &convlens_core::backend::cpu());
    let x: Vec<f32> = (0..18).map(|i| i as f32 / 7.0 - 1.0).collect();
    let outs = net.forward_all(net.input_tensor(&x).unwrap());
    assert_eq!(pollster::block_on(convlens_core::read(outs[1].clone())).unwrap(), x);

    // Training drops units, on both paths alike (the fused path's masks are Burn's).
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":6,"height":6,"depth":1},{"type":"conv","size":3,"filters":3,"pad":1,"activation":"relu"},
        {"type":"dropout","rate":0.5},{"type":"pool","size":2},{"type":"fc","units":3},{"type":"softmax"}]}"#,
    )
    .unwrap();
    let run = |seed: u64, fused: bool| {
        let config = TrainConfig { method: Method::Sgd, learning_rate: 0.1, l2: 0.0, batch_size: 4, seed, ..Default::default() };
        let mut net = Net::init(spec.clone(), 9, &convlens_core::backend::cpu());
        let batches: Vec<(Vec<f32>, Vec<usize>)> =
            (0..3).map(|s| ((0..4 * 36).map(|i| ((i * 7 + s * 13) % 17) as f32 / 17.0).collect(), vec![0, 1, 2, s % 3])).collect();
        if fused {
            let w = pollster::block_on(net.read_weights()).unwrap();
            CpuTrainer::new(&net, w, config).train_chunk(&batches, &|| 0.0).unwrap().0.losses
        } else {
            let mut opt = Optimizer::new(&net, config);
            pollster::block_on(train::train_chunk(&mut net, &mut opt, &batches, &|| 0.0)).unwrap().0.losses
        }
    };
    let (burn, fused) = (run(1, false), run(1, true));
    assert!(rel_err(&fused, &burn) < 1e-5, "fused {fused:?} vs Burn {burn:?}");
    assert_ne!(run(2, false), burn, "another seed drops other units");
}
