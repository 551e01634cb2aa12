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
        Err(e) if std::env::var("CONVLENS_ALLOW_NO_GPU").is_ok() => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("{e} (install mesa-vulkan-drivers for lavapipe, or set CONVLENS_ALLOW_NO_GPU=1)"),
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
}
