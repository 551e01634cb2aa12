//! Principal component analysis of a layer's codes, on the host: a randomized SVD (Halko,
//! Martinsson & Tropp 2011, as scikit-learn's `PCA(svd_solver="randomized")`) with power
//! iterations (Gram-Schmidt between them), the small projected matrix's SVD from the eigenvectors
//! of its Gram matrix (cyclic Jacobi, in f64). t-SNE reduces the codes to 50 dimensions with it
//! first, and starts from the first two.
//!
//! Written here, on the fused path's GEMM, rather than on Burn tensors: the codes are on the host
//! already (t-SNE runs there) whatever the session's backend, and the WebGPU engine has no CPU
//! device (nor Burn's SVD, which reads its matrix back synchronously, a GPU's in the browser
//! cannot be). The matrices the SVD sees are tiny (k + 10 rows).

use crate::Error;
use crate::cpu_train::matmul;
use crate::rng::SplitMix64;

/// The codes projected on their first principal components.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Components kept.
    pub k: usize,
    /// `[n, k]`: each code's coordinates along the components (centred).
    pub scores: Vec<f32>,
    /// The share of the codes' variance along each component.
    pub explained: Vec<f32>,
}

/// The first `k` principal components of the `n` codes of `dim` values in `x` (row-major). With
/// `dim <= k` the centred codes come back as they are (nothing to reduce). Signs follow
/// scikit-learn's `svd_flip` on the components (each component's largest entry positive).
pub fn pca(x: &[f32], n: usize, dim: usize, k: usize, seed: u64) -> Result<Pca, Error> {
    if n == 0 || dim == 0 || x.len() != n * dim {
        return Err(Error::Input(format!("PCA: {} values are not {n} codes of {dim}", x.len())));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("PCA: code {} has a non-finite value ({})", i / dim, x[i])));
    }
    // Centred codes; the means in f64.
    let mut mean = vec![0f64; dim];
    for row in x.chunks(dim) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let xc: Vec<f32> = x.chunks(dim).flat_map(|row| row.iter().zip(&mean).map(|(v, m)| (*v as f64 - m) as f32)).collect();
    let mut var = vec![0f64; dim];
    for row in xc.chunks(dim) {
        var.iter_mut().zip(row).for_each(|(s, v)| *s += (*v as f64) * (*v as f64));
    }
    let total: f64 = var.iter().sum::<f64>().max(1e-30);
    let k = k.min(n).min(dim);
    if dim <= k {
        return Ok(Pca { k: dim, scores: xc, explained: var.iter().map(|v| (v / total) as f32).collect() });
    }
    // Range finder: Q spans X Ω, sharpened by power iterations (sklearn: 7 when k < 10% of the
    // smaller side, else 4).
    let l = (k + 10).min(n).min(dim);
    let iters = if (k as f64) < 0.1 * n.min(dim) as f64 { 7 } else { 4 };
    let mut rng = SplitMix64(seed ^ 0x5043_4131);
    let omega: Vec<f32> = (0..dim * l).map(|_| rng.normal() as f32).collect();
    let (di, li) = (dim as isize, l as isize);
    // (slice, column stride, row stride) of X (n x dim) and of its transpose.
    let xm = (xc.as_slice(), 1, di);
    let xt = (xc.as_slice(), di, 1);
    let mut q = vec![0f32; n * l];
    matmul(n, l, dim, &mut q, xm, (&omega, 1, li));
    gram_schmidt(&mut q, n, l);
    let mut z = vec![0f32; dim * l];
    for _ in 0..iters {
        matmul(dim, l, n, &mut z, xt, (&q, 1, li));
        gram_schmidt(&mut z, dim, l);
        matmul(n, l, dim, &mut q, xm, (&z, 1, li));
        gram_schmidt(&mut q, n, l);
    }
    // B = Qᵀ X is l x dim; its right singular vectors are X's: B Bᵀ = U Σ² Uᵀ, Vᵀ = Σ⁻¹ Uᵀ B.
    let mut b = vec![0f32; l * dim];
    matmul(l, dim, n, &mut b, (&q, li, 1), xm);
    let mut gram = vec![0f64; l * l];
    for i in 0..l {
        for j in 0..=i {
            let d: f64 = b[i * dim..(i + 1) * dim].iter().zip(&b[j * dim..(j + 1) * dim]).map(|(u, v)| *u as f64 * *v as f64).sum();
            gram[i * l + j] = d;
            gram[j * l + i] = d;
        }
    }
    let (eig, u) = eigh(gram, l);
    let s: Vec<f64> = eig.iter().map(|e| e.max(0.0).sqrt()).collect();
    let mut vt = vec![0f32; k * dim];
    for (c, row) in vt.chunks_mut(dim).enumerate() {
        // A component with no variance (rank-deficient codes) stays zero: below ~1e-8 of the
        // largest, the Gram matrix's eigenvalues no longer resolve a singular value.
        if s[c] <= 1e-7 * s[0] || s[c] == 0.0 {
            continue;
        }
        let mut acc = vec![0f64; dim];
        for (j, bj) in b.chunks(dim).enumerate() {
            let w = u[c][j];
            acc.iter_mut().zip(bj).for_each(|(a, v)| *a += w * *v as f64);
        }
        let big = acc.iter().copied().fold(0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        let scale = if big < 0.0 { -1.0 / s[c] } else { 1.0 / s[c] };
        row.iter_mut().zip(&acc).for_each(|(r, a)| *r = (a * scale) as f32);
    }
    let mut scores = vec![0f32; n * k];
    matmul(n, k, dim, &mut scores, xm, (&vt, di, 1));
    let explained = s.iter().take(k).map(|s| (s * s / total) as f32).collect();
    Ok(Pca { k, scores, explained })
}

/// Eigenvalues (largest first) and unit eigenvectors (`[i]` for the i-th value) of the symmetric
/// `l` x `l` matrix `a` (row-major): cyclic Jacobi rotations until the off-diagonal part is
/// negligible (quadratic convergence: a handful of sweeps at these sizes).
fn eigh(mut a: Vec<f64>, l: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut v = vec![0f64; l * l];
    (0..l).for_each(|i| v[i * l + i] = 1.0);
    for _ in 0..64 {
        let off: f64 = (0..l).flat_map(|i| (0..i).map(move |j| (i, j))).map(|(i, j)| a[i * l + j] * a[i * l + j]).sum();
        let diag: f64 = (0..l).map(|i| a[i * l + i] * a[i * l + i]).sum();
        if off <= 1e-30 * diag || off == 0.0 {
            break;
        }
        for p in 0..l {
            for q in p + 1..l {
                let apq = a[p * l + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * l + q] - a[p * l + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for r in 0..l {
                    let (x, y) = (a[r * l + p], a[r * l + q]);
                    a[r * l + p] = c * x - s * y;
                    a[r * l + q] = s * x + c * y;
                }
                for r in 0..l {
                    let (x, y) = (a[p * l + r], a[q * l + r]);
                    a[p * l + r] = c * x - s * y;
                    a[q * l + r] = s * x + c * y;
                }
                for r in 0..l {
                    let (x, y) = (v[r * l + p], v[r * l + q]);
                    v[r * l + p] = c * x - s * y;
                    v[r * l + q] = s * x + c * y;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..l).collect();
    order.sort_by(|&i, &j| a[j * l + j].total_cmp(&a[i * l + i]));
    let values = order.iter().map(|&i| a[i * l + i]).collect();
    let vectors = order.iter().map(|&i| (0..l).map(|r| v[r * l + i]).collect()).collect();
    (values, vectors)
}

/// Orthonormalizes the `cols` columns of the row-major `rows` x `cols` matrix `m` in place
/// (modified Gram-Schmidt, twice for stability; a column that vanishes is left at zero).
fn gram_schmidt(m: &mut [f32], rows: usize, cols: usize) {
    let mut col = vec![0f64; rows];
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(cols);
    for j in 0..cols {
        for (r, c) in col.iter_mut().enumerate() {
            *c = m[r * cols + j] as f64;
        }
        for _ in 0..2 {
            for b in &basis {
                let d: f64 = b.iter().zip(&col).map(|(x, y)| x * y).sum();
                col.iter_mut().zip(b).for_each(|(c, x)| *c -= d * x);
            }
        }
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
        col.iter_mut().for_each(|c| *c *= inv);
        for (r, c) in col.iter().enumerate() {
            m[r * cols + j] = *c as f32;
        }
        basis.push(col.clone());
    }
}
