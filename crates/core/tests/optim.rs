//! The six trainers against a plain host implementation of ConvNetJS's update rules (in f64), with
//! the gradients taken from the probe (checked against finite differences in gradients.rs): three
//! steps on one example, weight decay on weights only, not biases.

use convlens_core::spec::NetSpec;
use convlens_core::train::{self, Method, Optimizer, TrainConfig};
use convlens_core::vis::layers;
use convlens_core::{Net, Objective};

const SPEC: &str = r#"{"layers":[{"type":"input","width":1,"height":1,"depth":3},
  {"type":"fc","units":4,"activation":"tanh"},{"type":"fc","units":2},{"type":"softmax"}]}"#;

/// The reference state of one parameter value.
#[derive(Clone, Copy, Default)]
struct Slot {
    a: f64,
    b: f64,
}

fn reference(c: &TrainConfig, t: u64, w: f64, g: f64, decay: bool, s: &mut Slot) -> f64 {
    let g = if decay { g + c.l2 * w + c.l1 * w.signum() } else { g };
    let eps = c.eps.unwrap_or(c.method.default_eps());
    let dx = match c.method {
        Method::Sgd => -c.learning_rate * g,
        Method::Momentum => {
            s.a = c.momentum * s.a - c.learning_rate * g;
            s.a
        }
        Method::Nesterov => {
            let v = s.a;
            s.a = s.a * c.momentum + c.learning_rate * g;
            c.momentum * v - (1.0 + c.momentum) * s.a
        }
        Method::Adagrad => {
            s.a += g * g;
            -c.learning_rate * g / (s.a + eps).sqrt()
        }
        Method::Adadelta => {
            s.a = c.rho * s.a + (1.0 - c.rho) * g * g;
            let dx = -((s.b + eps) / (s.a + eps)).sqrt() * g;
            s.b = c.rho * s.b + (1.0 - c.rho) * dx * dx;
            dx
        }
        Method::Adam => {
            s.a = c.beta1 * s.a + (1.0 - c.beta1) * g;
            s.b = c.beta2 * s.b + (1.0 - c.beta2) * g * g;
            let mhat = s.a / (1.0 - c.beta1.powi(t as i32));
            let vhat = s.b / (1.0 - c.beta2.powi(t as i32));
            -c.learning_rate * mhat / (vhat.sqrt() + eps)
        }
    };
    w + dx
}

#[test]
fn every_trainer_matches_the_reference_update() {
    let device = convlens_core::backend::cpu();
    let x = [0.5f32, -1.0, 2.0];
    for method in Method::ALL {
        let config = TrainConfig { method, learning_rate: 0.05, momentum: 0.8, l1: 0.01, l2: 0.02, batch_size: 1, ..Default::default() };
        let mut net = Net::init(NetSpec::parse(SPEC).unwrap(), 11, &device);
        let mut opt = Optimizer::new(&net, config);
        let mut expected: Vec<Vec<Vec<f64>>> = pollster::block_on(net.read_weights())
            .unwrap()
            .into_iter()
            .map(|l| l.into_iter().map(|p| p.into_iter().map(f64::from).collect()).collect())
            .collect();
        let mut slots: Vec<Vec<Vec<Slot>>> = expected.iter().map(|l| l.iter().map(|p| vec![Slot::default(); p.len()]).collect()).collect();
        for t in 1..=3u64 {
            let probe = pollster::block_on(layers::probe(&net, &x, &Objective::Loss { label: 1 })).unwrap();
            for (li, lp) in probe.layers.iter().enumerate() {
                for (pi, wp) in lp.weights.iter().enumerate() {
                    let decay = wp.name.ends_with(".weight");
                    for (k, &g) in wp.grad.data.iter().enumerate() {
                        let w = expected[li][pi][k];
                        expected[li][pi][k] = reference(&config, t, w, g as f64, decay, &mut slots[li][pi][k]);
                    }
                }
            }
            pollster::block_on(train::step(&mut net, &mut opt, &x, &[1])).unwrap();
            let got = pollster::block_on(net.read_weights()).unwrap();
            for (li, layer) in got.iter().enumerate() {
                for (pi, p) in layer.iter().enumerate() {
                    for (k, &v) in p.iter().enumerate() {
                        let e = expected[li][pi][k];
                        assert!(
                            (v as f64 - e).abs() <= 1e-5 * (1.0 + e.abs()),
                            "{}: step {t}, layer {li} param {pi}[{k}]: got {v}, expected {e}",
                            method.as_str()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn switching_the_method_resets_its_state_and_bad_settings_are_named() {
    let device = convlens_core::backend::cpu();
    let net = Net::init(NetSpec::parse(SPEC).unwrap(), 11, &device);
    let mut opt = Optimizer::new(&net, TrainConfig::default());
    opt.steps = 5;
    opt.set_config(TrainConfig { learning_rate: 0.5, ..TrainConfig::default() });
    assert_eq!(opt.steps, 5, "same method: state kept");
    opt.set_config(TrainConfig { method: Method::Adam, ..TrainConfig::default() });
    assert_eq!(opt.steps, 0, "new method: state reset");
    let e = |c: TrainConfig| c.validate().unwrap_err().to_string();
    assert_eq!(
        e(TrainConfig { learning_rate: -1.0, ..Default::default() }),
        "input: trainer: the learning rate is -1; it must be a positive number"
    );
    assert_eq!(
        e(TrainConfig { batch_size: 0, ..Default::default() }),
        "input: trainer: the batch size is 0; it must be between 1 and 4096"
    );
    assert_eq!(
        e(TrainConfig { momentum: 1.0, ..Default::default() }),
        "input: trainer: the momentum is 1; it must be at least 0 and below 1"
    );
    assert_eq!(e(TrainConfig { l2: f64::NAN, ..Default::default() }), "input: trainer: L2 decay is NaN; it must be 0 or more");
    assert!(
        TrainConfig { method: Method::Adadelta, learning_rate: 0.0, ..Default::default() }.validate().is_ok(),
        "adadelta has no learning rate"
    );
}
