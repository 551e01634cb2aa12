//! Adversarial examples: FGSM's accuracy-versus-epsilon curve on the built-in MNIST digits, an
//! attack towards a chosen class, and (with the data directory) MobileNetV2's top class flipped
//! by a small epsilon.

use convlens_core::cpu_train::CpuTrainer;
use convlens_core::train::TrainConfig;
use convlens_core::vis::adversarial;
use convlens_core::vis::attribution::Attributor;
use convlens_core::{Net, NetSpec, data, weights};
use std::path::Path;

fn mnist() -> (Net, Vec<f32>, Vec<usize>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let spec = NetSpec::parse(&std::fs::read_to_string(root.join("www/nets/mnist.json")).unwrap()).unwrap();
    let w = weights::load(&spec, &std::fs::read(root.join("www/nets/mnist.safetensors")).unwrap()).unwrap();
    let net = Net::with_weights(spec, w, &convlens_core::backend::cpu());
    let dir = root.join("www/data");
    let (_, held) = data::layout("mnist5k", None)
        .unwrap()
        .load(|f| std::fs::read(dir.join(f)).map_err(|e| convlens_core::Error::Data(e.to_string())))
        .unwrap();
    let (x, y) = held.batch(&(0..held.len()).collect::<Vec<_>>(), net.spec.input_shape(), None);
    (net, x, y)
}

#[test]
fn fgsm_accuracy_falls_with_epsilon_on_mnist() {
    let (net, x, y) = mnist();
    let w = pollster::block_on(net.read_weights()).unwrap();
    let mut fused = CpuTrainer::new(&net, w, TrainConfig::default());
    let mut at = Attributor::new(&net, Some(&mut fused));
    let eps = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3];
    let curve = pollster::block_on(adversarial::fgsm_curve(&mut at, &x, &y, &eps)).unwrap();
    println!(
        "FGSM on the 500 held-out built-in digits (MNIST net, 99.0%): {:?}",
        curve.iter().map(|(e, c)| format!("eps {e}: {:.1}%", *c as f32 / 5.0)).collect::<Vec<_>>()
    );
    assert!(curve[0].1 >= 485, "clean accuracy {}", curve[0].1);
    assert!(curve.windows(2).all(|w| w[1].1 <= w[0].1), "accuracy falls as epsilon grows: {curve:?}");
    assert!(curve[6].1 < curve[0].1 / 2, "eps 0.3 at least halves the accuracy: {curve:?}");
}

#[test]
fn an_iterative_attack_reaches_the_chosen_class_within_epsilon() {
    let (net, x, y) = mnist();
    let size = 576;
    let mut at = Attributor::new(&net, None);
    let (image, label) = (&x[..size], y[0]);
    let target = (label + 1) % 10;
    let adv = pollster::block_on(adversarial::towards(&mut at, image, target, 0.2, 0.02, 40)).unwrap();
    assert!(adv.iter().zip(image).all(|(a, b)| (a - b).abs() <= 0.2 + 1e-6 && (0.0..=1.0).contains(a)));
    let probs = pollster::block_on(at.outputs(&adv, 1)).unwrap();
    assert_eq!(convlens_core::train::argmax(&probs), target, "{probs:?}");
}
