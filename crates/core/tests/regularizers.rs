//! The image priors' gradients against central finite differences (in f64 on the same formula).

use convlens_core::rng::SplitMix64;
use convlens_core::vis::regularizers::{alpha_norm, total_variation};

fn check(name: &str, x: &[f32], f: &dyn Fn(&[f32]) -> (f32, Vec<f32>)) {
    let (_, g) = f(x);
    let scale = g.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    let eps = 1e-2f32;
    for i in 0..x.len() {
        let (mut a, mut b) = (x.to_vec(), x.to_vec());
        a[i] += eps;
        b[i] -= eps;
        let num = (f(&a).0 - f(&b).0) / (2.0 * eps);
        assert!((num - g[i]).abs() <= 2e-2 * scale, "{name}: d/dx[{i}] = {} vs finite difference {num}", g[i]);
    }
}

#[test]
fn alpha_norm_and_total_variation_gradients() {
    let mut rng = SplitMix64(5);
    let shape = [2, 5, 6];
    let x: Vec<f32> = (0..60).map(|_| rng.range(-1.0, 1.0) as f32).collect();
    for alpha in [2.0, 3.0, 6.0] {
        check(&format!("alpha-norm {alpha}"), &x, &|v| alpha_norm(v, alpha));
    }
    for beta in [1.0, 1.5, 2.0] {
        check(&format!("TV beta {beta}"), &x, &|v| total_variation(v, shape, beta));
    }
    // Values: a flat image has no variation; alpha 2 is the squared L2 norm.
    assert_eq!(total_variation(&[0.3; 60], shape, 2.0).0, 0.0);
    let (v, _) = alpha_norm(&[3.0, -4.0], 2.0);
    assert!((v - 25.0).abs() < 1e-5);
    let (tv, _) = total_variation(&[0.0, 1.0, 0.0, 0.0], [1, 2, 2], 2.0);
    assert!((tv - 1.0).abs() < 1e-6, "one pixel with a right neighbour differing by 1: {tv}");
}
