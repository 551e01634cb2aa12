//! Image priors for the optimization techniques (class and neuron visualization, feature
//! inversion, style transfer): each gives its value and its gradient with respect to the image
//! (CHW), so that an optimizer can add `weight * gradient` to the objective's.
//! Checked against finite differences in tests/regularizers.rs.

/// `sum |x|^alpha` (Mahendran & Vedaldi's alpha-norm; alpha = 2 is the L2 decay of Simonyan et
/// al. and Yosinski et al., up to its factor 1/2).
pub fn alpha_norm(x: &[f32], alpha: f32) -> (f32, Vec<f32>) {
    let mut value = 0f64;
    let grad = x
        .iter()
        .map(|&v| {
            let a = v.abs();
            value += (a as f64).powf(alpha as f64);
            if a == 0.0 { 0.0 } else { alpha * a.powf(alpha - 1.0) * v.signum() }
        })
        .collect();
    (value as f32, grad)
}

/// Total variation with exponent `beta` (Mahendran & Vedaldi): the sum over pixels of
/// `((x[y][x+1] - x[y][x])^2 + (x[y+1][x] - x[y][x])^2)^(beta/2)`, per channel, over the pixels
/// that have both a right and a lower neighbour. beta = 2 is the plain squared differences; beta
/// < 1 favours piecewise-constant images.
pub fn total_variation(x: &[f32], [c, h, w]: [usize; 3], beta: f32) -> (f32, Vec<f32>) {
    let mut value = 0f64;
    let mut grad = vec![0f32; x.len()];
    let half = beta / 2.0;
    for ch in 0..c {
        let p = &x[ch * h * w..(ch + 1) * h * w];
        let g = &mut grad[ch * h * w..(ch + 1) * h * w];
        for yy in 0..h.saturating_sub(1) {
            for xx in 0..w.saturating_sub(1) {
                let i = yy * w + xx;
                let (dx, dy) = (p[i + 1] - p[i], p[i + w] - p[i]);
                let s = dx * dx + dy * dy;
                if s == 0.0 {
                    continue;
                }
                value += (s as f64).powf(half as f64);
                // d/ds s^(beta/2) = (beta/2) s^(beta/2 - 1); ds/d(dx) = 2 dx.
                let k = half * s.powf(half - 1.0) * 2.0;
                g[i + 1] += k * dx;
                g[i + w] += k * dy;
                g[i] -= k * (dx + dy);
            }
        }
    }
    (value as f32, grad)
}
