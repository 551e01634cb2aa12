//! Principal component analysis of a layer's codes on Burn tensors (the CPU device): a randomized
//! SVD (Halko, Martinsson & Tropp 2011, as scikit-learn's `PCA(svd_solver="randomized")`) with
//! power iterations (Gram-Schmidt between them), and Burn's SVD of the small projected matrix.
//! t-SNE reduces the codes to 50 dimensions with it first, and starts from the first two.
//!
//! It runs on the CPU device whatever the session's backend: the codes are on the host already
//! (t-SNE runs there), and Burn's SVD reads its matrix back synchronously, which WebGPU in the
//! browser cannot do.

use burn::tensor::{Tensor, TensorData};

use crate::Error;
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
pub async fn pca(x: &[f32], n: usize, dim: usize, k: usize, seed: u64) -> Result<Pca, Error> {
    if n == 0 || dim == 0 || x.len() != n * dim {
        return Err(Error::Input(format!("PCA: {} values are not {n} codes of {dim}", x.len())));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("PCA: code {} has a non-finite value ({})", i / dim, x[i])));
    }
    let dev = crate::backend::cpu();
    let xt = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [n, dim]), &dev);
    let xc = xt.clone() - xt.mean_dim(0);
    let total: f64 = crate::read(xc.clone().powi_scalar(2).sum()).await?[0] as f64;
    let k = k.min(n).min(dim);
    if dim <= k {
        let scores = crate::read(xc.clone()).await?;
        let var: Vec<f32> = crate::read(xc.powi_scalar(2).sum_dim(0)).await?;
        return Ok(Pca { k: dim, scores, explained: var.iter().map(|v| (*v as f64 / total.max(1e-30)) as f32).collect() });
    }
    // Range finder: Q spans X Ω, sharpened by power iterations (sklearn: 7 when k < 10% of the
    // smaller side, else 4).
    let l = (k + 10).min(n).min(dim);
    let iters = if (k as f64) < 0.1 * n.min(dim) as f64 { 7 } else { 4 };
    let mut rng = SplitMix64(seed ^ 0x5043_4131);
    let omega: Vec<f32> = (0..dim * l).map(|_| rng.normal() as f32).collect();
    let omega = Tensor::<2>::from_data(TensorData::new(omega, [dim, l]), &dev);
    let mut q = orth(xc.clone().matmul(omega), n, l, &dev).await?;
    for _ in 0..iters {
        let z = orth(xc.clone().transpose().matmul(q), dim, l, &dev).await?;
        q = orth(xc.clone().matmul(z), n, l, &dev).await?;
    }
    // B = Qᵀ X is l x dim; its right singular vectors are X's.
    let b = q.transpose().matmul(xc.clone());
    let (_, s, vt) = burn::linalg::svd::<2, 1>(b, 60);
    let mut vt_host = crate::read(vt.slice([0..k, 0..dim])).await?;
    let s = crate::read(s).await?;
    for row in vt_host.chunks_mut(dim) {
        let big = row.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
        if big < 0.0 {
            row.iter_mut().for_each(|v| *v = -*v);
        }
    }
    let v = Tensor::<2>::from_data(TensorData::new(vt_host, [k, dim]), &dev);
    let scores = crate::read(xc.matmul(v.transpose())).await?;
    let explained = s.iter().take(k).map(|s| ((*s as f64).powi(2) / total.max(1e-30)) as f32).collect();
    Ok(Pca { k, scores, explained })
}

/// An orthonormal basis of the columns of `t` (`rows` x `l`). The QRs of these tall, thin
/// matrices are modified Gram-Schmidt on the host (n·l² work): Burn's Householder QR forms an
/// n x n Q, thousands of times slower at n = 10,000.
async fn orth(t: Tensor<2>, rows: usize, l: usize, dev: &burn::tensor::Device) -> Result<Tensor<2>, Error> {
    let mut m = crate::read(t).await?;
    gram_schmidt(&mut m, rows, l);
    Ok(Tensor::<2>::from_data(TensorData::new(m, [rows, l]), dev))
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
