//! Training: the loss falls on a learnable toy problem, and a diverging learning rate is an error
//! that leaves the weights as they were.

use convlens_core::Net;
use convlens_core::spec::NetSpec;
use convlens_core::train::{self, Method, Optimizer, TrainConfig};

const SPEC: &str = r#"{"layers":[{"type":"input","width":4,"height":4,"depth":1},
  {"type":"conv","size":3,"filters":4,"pad":1,"activation":"relu"},{"type":"pool","size":2},
  {"type":"fc","units":2},{"type":"softmax"}]}"#;

/// Class 0: bright top half; class 1: bright bottom half.
fn batch(n: usize) -> (Vec<f32>, Vec<usize>) {
    let mut x = vec![];
    let mut y = vec![];
    for i in 0..n {
        let label = i % 2;
        for r in 0..4 {
            for c in 0..4 {
                let bright = (r < 2) == (label == 0);
                x.push(if bright { 0.8 } else { 0.1 } + 0.05 * ((i * 7 + r * 3 + c) % 5) as f32);
            }
        }
        y.push(label);
    }
    (x, y)
}

#[test]
fn loss_falls_and_the_toy_problem_is_learned() {
    let device = convlens_core::backend::cpu();
    let mut net = Net::init(NetSpec::parse(SPEC).unwrap(), 3, &device);
    let mut opt = Optimizer::new(&net, TrainConfig { learning_rate: 0.1, momentum: 0.9, l2: 0.0, ..Default::default() });
    let (x, y) = batch(8);
    let first = pollster::block_on(train::step(&mut net, &mut opt, &x, &y)).unwrap();
    let mut last = first;
    for _ in 0..60 {
        last = pollster::block_on(train::step(&mut net, &mut opt, &x, &y)).unwrap();
    }
    assert!(last < 0.1 * first, "loss {first} -> {last}");
    let pred = pollster::block_on(train::predict(&net, &x, 8)).unwrap();
    assert_eq!(pred, y);
}

/// A chunk takes every step whatever its loss (the session judges them: tests/divergence.rs), says
/// whether the weights stayed finite, and hands back the state before its last step.
#[test]
fn a_chunk_reports_divergence_and_the_state_before_its_last_step() {
    let device = convlens_core::backend::cpu();
    let mut net = Net::init(NetSpec::parse(SPEC).unwrap(), 3, &device);
    let mut opt =
        Optimizer::new(&net, TrainConfig { method: Method::Sgd, learning_rate: 1e30, momentum: 0.0, l2: 0.0, ..Default::default() });
    let (x, y) = batch(8);
    let batches = vec![(x.clone(), y.clone()); 3];
    let (stats, before_last) = pollster::block_on(train::train_chunk(&mut net, &mut opt, &batches, &|| 0.0)).unwrap();
    assert!(!stats.weights_finite || stats.losses.iter().any(|l| !l.is_finite()), "{:?}", stats.losses);
    assert_eq!((stats.losses.len(), opt.steps), (3, 3));
    assert_eq!(before_last.opt.steps, 2);
    assert!(
        pollster::block_on(train::step(&mut net, &mut opt, &x, &[0, 5, 0, 0, 0, 0, 0, 0]))
            .unwrap_err()
            .to_string()
            .contains("label 5 is out of range")
    );
}

/// The ConvNetJS MNIST net, trained from a seeded init on the built-in 4,500 digits for 3 epochs
/// (momentum 0.9, lr 0.01, batch 20, L2 0.001), classifies the 500 held-out digits at 95.0%
/// (deterministic on the CPU backend; asserted with a little slack).
#[test]
fn the_mnist_net_learns_the_built_in_digits() {
    use convlens_core::data::{self, Sampler};
    let device = convlens_core::backend::cpu();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/data");
    let (train_set, held) = data::layout("mnist5k", None)
        .unwrap()
        .load(|f| std::fs::read(dir.join(f)).map_err(|e| convlens_core::Error::Data(e.to_string())))
        .unwrap();
    let mut net = Net::init(NetSpec::parse(convlens_core::spec::MNIST_SPEC).unwrap(), 1, &device);
    let input = net.spec.input_shape();
    let mut opt = Optimizer::new(&net, TrainConfig::default());
    let mut sampler = Sampler::new(train_set.len(), 1);
    let steps = 3 * train_set.len() / 20;
    let mut losses = vec![];
    for _ in 0..steps / 25 {
        let batches: Vec<_> = (0..25).map(|_| train_set.batch(&sampler.next(20), input, Some(&mut sampler.rng))).collect();
        let (stats, _) = pollster::block_on(train::train_chunk(&mut net, &mut opt, &batches, &|| 0.0)).unwrap();
        assert_eq!((stats.examples, stats.correct.len()), (500, 25));
        losses.extend(stats.losses);
    }
    assert_eq!(sampler.epoch, 2, "three passes over the data");
    let (x, y) = held.batch(&(0..held.len()).collect::<Vec<_>>(), input, None);
    let pred = pollster::block_on(train::predict(&net, &x, held.len())).unwrap();
    let correct = pred.iter().zip(&y).filter(|(p, y)| p == y).count();
    eprintln!("held-out accuracy {correct}/500; loss {} -> {}", losses[0], losses.last().unwrap());
    assert!(correct >= 470, "held-out accuracy {correct}/500 (95.0% expected)");
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&losses[..25]) > 4.0 * mean(&losses[losses.len() - 25..]), "the loss falls");
}
