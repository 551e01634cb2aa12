//! The host PCA (crates/core/src/vis/pca.rs) against an exact PCA: the covariance's leading
//! eigenvectors by power iteration with deflation, in f64.

use convlens_core::rng::SplitMix64;
use convlens_core::vis::pca::pca;

/// `n` codes of `dim` values: `ranks` directions of falling scale, a mean, and a little noise.
fn codes(n: usize, dim: usize, ranks: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let dirs: Vec<Vec<f64>> = (0..ranks).map(|_| (0..dim).map(|_| rng.normal()).collect()).collect();
    let mean: Vec<f64> = (0..dim).map(|_| 3.0 * rng.normal()).collect();
    let mut x = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let coef: Vec<f64> = (0..ranks).map(|r| rng.normal() * 4.0 / (r + 1) as f64).collect();
        for j in 0..dim {
            let v = mean[j] + (0..ranks).map(|r| coef[r] * dirs[r][j]).sum::<f64>() + 0.05 * rng.normal();
            x.push(v as f32);
        }
    }
    x
}

/// The exact first `k` components (unit rows, scikit-learn's sign) and their variance shares.
fn exact(x: &[f32], n: usize, dim: usize, k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let mean: Vec<f64> = (0..dim).map(|j| (0..n).map(|i| x[i * dim + j] as f64).sum::<f64>() / n as f64).collect();
    let xc: Vec<f64> = (0..n * dim).map(|i| x[i] as f64 - mean[i % dim]).collect();
    let mut cov = vec![0f64; dim * dim];
    for i in 0..n {
        let row = &xc[i * dim..(i + 1) * dim];
        for a in 0..dim {
            for b in 0..dim {
                cov[a * dim + b] += row[a] * row[b];
            }
        }
    }
    let total: f64 = (0..dim).map(|a| cov[a * dim + a]).sum();
    let (mut comps, mut shares) = (vec![], vec![]);
    for c in 0..k {
        let mut v: Vec<f64> = (0..dim).map(|j| 1.0 + j as f64 * 0.01 + c as f64).collect();
        let mut lambda = 0.0;
        for _ in 0..2000 {
            let mut w: Vec<f64> = (0..dim).map(|a| (0..dim).map(|b| cov[a * dim + b] * v[b]).sum()).collect();
            lambda = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            w.iter_mut().for_each(|x| *x /= lambda);
            v = w;
        }
        let big = v.iter().copied().fold(0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        for a in 0..dim {
            for b in 0..dim {
                cov[a * dim + b] -= lambda * v[a] * v[b];
            }
        }
        shares.push(lambda / total);
        comps.push(v);
    }
    (comps, shares)
}

#[test]
fn randomized_pca_equals_the_exact_one() {
    for (n, dim, ranks, k) in [(300, 40, 5, 3), (120, 200, 8, 6), (50, 30, 30, 20)] {
        let x = codes(n, dim, ranks, n as u64);
        let p = pca(&x, n, dim, k, 0).unwrap();
        assert_eq!(p.k, k);
        assert_eq!(p.scores.len(), n * k);
        let (comps, shares) = exact(&x, n, dim, k);
        for c in 0..k {
            assert!(
                (p.explained[c] as f64 - shares[c]).abs() < 1e-4 * shares[0],
                "{n}x{dim}, component {c}: explained {} vs exact {}",
                p.explained[c],
                shares[c]
            );
        }
        // Scores: the centred codes along each exact component (the leading ones, whose gaps
        // make them well defined).
        let mean: Vec<f64> = (0..dim).map(|j| (0..n).map(|i| x[i * dim + j] as f64).sum::<f64>() / n as f64).collect();
        let scale = p.scores.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        for c in 0..k.min(ranks).min(3) {
            for i in 0..n {
                let want: f64 = (0..dim).map(|j| (x[i * dim + j] as f64 - mean[j]) * comps[c][j]).sum();
                let got = p.scores[i * k + c] as f64;
                assert!((got - want).abs() < 1e-3 * scale, "{n}x{dim}: code {i}, component {c}: {got} vs {want}");
            }
        }
    }
}

#[test]
fn pca_keeps_few_dimensions_and_refuses_bad_codes() {
    let x = codes(20, 3, 3, 1);
    let p = pca(&x, 20, 3, 5, 0).unwrap();
    assert_eq!(p.k, 3);
    let total: f32 = p.explained.iter().sum();
    assert!((total - 1.0).abs() < 1e-5, "the centred codes keep all the variance: {total}");
    // Fewer codes than components: k becomes n, and the centred codes' rank is n - 1.
    let x = codes(8, 30, 30, 3);
    let p = pca(&x, 8, 30, 20, 0).unwrap();
    assert_eq!(p.k, 8);
    let total: f32 = p.explained.iter().sum();
    assert!((total - 1.0).abs() < 1e-4, "8 codes: {total} of the variance");
    assert!(p.explained[7] < 1e-6, "the 8th component of 8 centred codes: {}", p.explained[7]);
    assert!(p.scores.iter().all(|v| v.is_finite()));
    // Constant codes: no variance, finite zeros.
    let flat = vec![2.5f32; 40 * 10];
    let p = pca(&flat, 40, 10, 4, 0).unwrap();
    assert!(p.scores.iter().all(|v| v.is_finite() && v.abs() < 1e-5));
    let mut bad = codes(10, 4, 2, 2);
    bad[13] = f32::NAN;
    let e = pca(&bad, 10, 4, 2, 0).unwrap_err().to_string();
    assert!(e.contains("code 3"), "{e}");
    assert!(pca(&bad, 10, 5, 2, 0).is_err());
}
