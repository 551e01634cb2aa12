//! Training: the loss falls on a learnable toy problem, and a diverging learning rate is an error
//! that leaves the weights as they were.

use convlens_core::spec::NetSpec;
use convlens_core::train::{self, Sgd, SgdConfig};
use convlens_core::Net;

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
    let mut opt = Sgd::new(&net, SgdConfig { learning_rate: 0.1, momentum: 0.9, l2: 0.0 });
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

#[test]
fn a_diverging_learning_rate_is_reported_and_changes_nothing() {
    let device = convlens_core::backend::cpu();
    let mut net = Net::init(NetSpec::parse(SPEC).unwrap(), 3, &device);
    let mut opt = Sgd::new(&net, SgdConfig { learning_rate: 1e30, momentum: 0.0, l2: 0.0 });
    let (x, y) = batch(8);
    let mut err = None;
    for _ in 0..5 {
        let before = pollster::block_on(net.read_weights()).unwrap();
        match pollster::block_on(train::step(&mut net, &mut opt, &x, &y)) {
            Ok(_) => continue,
            Err(e) => {
                assert_eq!(pollster::block_on(net.read_weights()).unwrap(), before, "weights unchanged on error");
                err = Some(e.to_string());
                break;
            }
        }
    }
    let err = err.expect("training at lr 1e30 must diverge");
    assert!(err.contains("training diverged (lower the learning rate; the weights were not changed)"), "{err}");
    assert!(pollster::block_on(train::step(&mut net, &mut opt, &x, &[0, 5, 0, 0, 0, 0, 0, 0])).unwrap_err().to_string().contains("label 5 is out of range"));
}
