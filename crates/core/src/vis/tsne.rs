//! t-SNE of a layer's codes (van der Maaten & Hinton 2008), with scikit-learn 1.7's choices so that
//! its maps and numbers can be compared with sklearn's: the perplexity calibrated per point by
//! binary search on squared Euclidean distances, the joint P symmetrized and normalized, early
//! exaggeration (12 for the first 250 iterations, momentum 0.5, then 0.8), per-coordinate gains
//! (+0.2 / ×0.8, at least 0.01), the automatic learning rate max(N / 12 / 4, 50), and a PCA
//! (scaled to a standard deviation of 1e-4) or random start.
//!
//! Two methods: **exact** (every pair, O(N²) per iteration: the teaching mode, up to 3,000
//! points) and **Barnes-Hut** (van der Maaten 2014: P on the 3·perplexity nearest neighbours, the
//! repulsion summarized by a quadtree with angle θ, O(N log N)).
//!
//! Written here rather than taken from a crate: the page animates the map while it optimizes, so
//! the optimizer is stepped a few iterations at a time under the worker's time budget and its state
//! (embedding, gains, update, iteration, KL) is read between chunks. The crates on crates.io
//! (`bhtsne`, `linfa-tsne` over it) run to the end in one call and have no exact mode.

use serde_json::{Map, Value};

use wide::f32x8;

use crate::Error;
use crate::rng::SplitMix64;
use crate::settings::{Field, Resolved, Schema};

/// numpy's `finfo(double).eps`, sklearn's floor for P and Q.
const MACHINE_EPSILON: f64 = f64::EPSILON;
/// sklearn's `_EXPLORATION_MAX_ITER`.
pub const EXPLORATION_ITERS: usize = 250;
/// How often the job measures the KL divergence (sklearn's `_N_ITER_CHECK`).
pub const KL_EVERY: usize = 50;

/// The settings list (see [`crate::settings`]).
pub fn schema() -> Schema {
    Schema::new(
        "tsne",
        vec![
            Field::layer("layer", "layer").help("The layer whose codes are mapped (0: the raw pixels; default: the last conv layer)"),
            Field::integer("points", "points", 2000, 10, 10000).help("How many images (from the start of the split)"),
            Field::choice("split", "images", vec!["test", "train"], "test"),
            Field::number("perplexity", "perplexity", 30.0, 2.0, 100.0, 1.0)
                .help("About how many neighbours each point keeps close (sklearn's default: 30)"),
            Field::integer("iterations", "iterations", 1000, 250, 10000),
            Field::choice("method", "method", vec!["auto", "exact", "barnes_hut"], "auto")
                .help("exact: every pair (O(N²), the teaching mode, up to 3,000 points); Barnes-Hut: a quadtree, O(N log N) (auto: exact up to 1,000 points)"),
            Field::number("theta", "Barnes-Hut angle θ", 0.5, 0.0, 1.0, 0.05)
                .help("0: exact forces through the tree; larger: faster, rougher"),
            Field::integer("pca", "PCA dimensions", 50, 2, 512).help("The codes are first reduced by PCA to this many dimensions"),
            Field::choice("init", "start", vec!["pca", "random"], "pca"),
            Field::number("exaggeration", "early exaggeration", 12.0, 1.0, 100.0, 1.0),
            Field::number("learningRate", "learning rate", 0.0, 0.0, 100000.0, 10.0)
                .help("0: sklearn's automatic rate, max(N / exaggeration / 4, 50)"),
            Field::integer("seed", "seed", 0, 0, u32::MAX as u64),
        ],
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Exact,
    BarnesHut { theta: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Pca,
    Random,
}

/// How a map is made (everything but which codes).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub perplexity: f64,
    pub iterations: usize,
    pub method: Method,
    pub init: Init,
    pub exaggeration: f64,
    /// None: sklearn's automatic rate.
    pub learning_rate: Option<f64>,
    pub seed: u64,
    pub pca: usize,
}

/// The most points the exact method takes (its P alone is N² floats).
pub const MAX_EXACT: usize = 3000;
/// Up to this many points `auto` picks the exact method.
pub const AUTO_EXACT: usize = 1000;

impl Settings {
    /// From values [`schema`] resolved, for `n` points.
    pub fn from_values(v: &Map<String, Value>, n: usize) -> Result<Settings, Error> {
        let theta = v.num("theta");
        let method = match v.text("method") {
            "exact" => Method::Exact,
            "barnes_hut" => Method::BarnesHut { theta },
            _ if n <= AUTO_EXACT => Method::Exact,
            _ => Method::BarnesHut { theta },
        };
        if method == Method::Exact && n > MAX_EXACT {
            return Err(Error::Input(format!(
                "the exact t-SNE takes at most {MAX_EXACT} points ({n} asked): pick Barnes-Hut or fewer points"
            )));
        }
        let lr = v.num("learningRate");
        Ok(Settings {
            perplexity: v.num("perplexity"),
            iterations: v.int("iterations"),
            method,
            init: if v.text("init") == "random" { Init::Random } else { Init::Pca },
            exaggeration: v.num("exaggeration"),
            learning_rate: (lr > 0.0).then_some(lr),
            seed: v.int("seed") as u64,
            pca: v.int("pca"),
        })
    }

    pub fn default_for(n: usize) -> Settings {
        let v = schema().resolve(&Value::Object(Map::new()), false).expect("defaults resolve");
        Settings::from_values(&v, n.min(AUTO_EXACT)).expect("defaults are valid")
    }
}

// ---- affinities -------------------------------------------------------------------------------

/// sklearn's `_binary_search_perplexity` for one point: the conditional probabilities p(j|i) from
/// its squared distances `d` (to every point, or to its neighbours), found by bisection on the
/// precision β so that the entropy is ln(perplexity) within 1e-5 (at most 100 steps). `skip`: the
/// point's own index in `d` (its probability stays 0), for the dense case.
pub fn conditional_row(d: &[f32], perplexity: f64, skip: Option<usize>, out: &mut [f64]) {
    let desired = perplexity.ln();
    let (mut beta, mut beta_min, mut beta_max) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..100 {
        let mut sum = 0.0;
        for (j, (&dj, o)) in d.iter().zip(out.iter_mut()).enumerate() {
            if Some(j) == skip {
                *o = 0.0;
                continue;
            }
            *o = (-(dj as f64) * beta).exp();
            sum += *o;
        }
        if sum == 0.0 {
            sum = 1e-8;
        }
        let mut sum_dp = 0.0;
        for (&dj, o) in d.iter().zip(out.iter_mut()) {
            *o /= sum;
            sum_dp += dj as f64 * *o;
        }
        let entropy = sum.ln() + beta * sum_dp;
        let diff = entropy - desired;
        if diff.abs() <= 1e-5 {
            break;
        }
        if diff > 0.0 {
            beta_min = beta;
            beta = if beta_max == f64::INFINITY { beta * 2.0 } else { (beta + beta_max) / 2.0 };
        } else {
            beta_max = beta;
            beta = if beta_min == f64::NEG_INFINITY { beta / 2.0 } else { (beta + beta_min) / 2.0 };
        }
    }
}

/// Squared Euclidean distances between every pair of the `n` rows of `x` (`dim` values each),
/// `[n, n]`, as sklearn's exact method computes them (in f32, from the differences).
pub fn squared_distances(x: &[f32], n: usize, dim: usize) -> Vec<f32> {
    let mut d = vec![0f32; n * n];
    for i in 0..n {
        let xi = &x[i * dim..(i + 1) * dim];
        for j in i + 1..n {
            let xj = &x[j * dim..(j + 1) * dim];
            let s: f32 = xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum();
            d[i * n + j] = s;
            d[j * n + i] = s;
        }
    }
    d
}

/// The conditional probabilities p(j|i) of every pair, `[n, n]` (sklearn's `_binary_search_perplexity`
/// on the full distance matrix).
pub fn conditional_p(dist: &[f32], n: usize, perplexity: f64) -> Vec<f64> {
    let mut p = vec![0f64; n * n];
    for i in 0..n {
        conditional_row(&dist[i * n..(i + 1) * n], perplexity, Some(i), &mut p[i * n..(i + 1) * n]);
    }
    p
}

/// The exact method's joint P, `[n, n]` (sklearn's `_joint_probabilities`): (p(j|i) + p(i|j)) / sum,
/// at least 2.2e-16 off the diagonal, 0 on it.
pub fn joint_p(dist: &[f32], n: usize, perplexity: f64) -> Vec<f32> {
    joint_from_conditional(&conditional_p(dist, n, perplexity), n)
}

fn joint_from_conditional(c: &[f64], n: usize) -> Vec<f32> {
    let mut sum = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            sum += 2.0 * (c[i * n + j] + c[j * n + i]);
        }
    }
    let sum = sum.max(MACHINE_EPSILON);
    let mut p = vec![0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = ((c[i * n + j] + c[j * n + i]) / sum).max(MACHINE_EPSILON) as f32;
            p[i * n + j] = v;
            p[j * n + i] = v;
        }
    }
    p
}

/// The `k` nearest neighbours of each of the `n` rows of `x` (Euclidean, itself excluded), nearest
/// first, with their squared distances: `([n, k] indices, [n, k] squared distances)`. The
/// candidates come from dot products in blocks (one GEMM per block), the kept distances are
/// recomputed from the differences.
pub fn nearest(x: &[f32], n: usize, dim: usize, k: usize) -> (Vec<u32>, Vec<f32>) {
    let k = k.min(n.saturating_sub(1));
    let norms = squared_norms(x, dim);
    let (mut idx, mut dist) = (vec![0u32; n * k], vec![0f32; n * k]);
    nearest_rows(x, n, dim, k, &norms, 0..n, &mut idx, &mut dist);
    (idx, dist)
}

fn squared_norms(x: &[f32], dim: usize) -> Vec<f32> {
    x.chunks(dim).map(|r| r.iter().map(|v| v * v).sum()).collect()
}

/// [`nearest`] for the points `rows` (their entries of `idx` and `dist`, `[n, k]`).
#[allow(clippy::too_many_arguments)]
fn nearest_rows(x: &[f32], n: usize, dim: usize, k: usize, norms: &[f32], rows: std::ops::Range<usize>, idx: &mut [u32], dist: &mut [f32]) {
    let block = 256.min(rows.len().max(1));
    let mut dots = vec![0f32; block * n];
    let mut cand: Vec<(f32, u32)> = Vec::with_capacity(n);
    for b0 in rows.clone().step_by(block) {
        let m = block.min(rows.end - b0);
        // dots[m x n] = x[b0..b0+m] * x^T
        crate::cpu_train::matmul(m, n, dim, &mut dots, (&x[b0 * dim..], 1, dim as isize), (x, dim as isize, 1));
        for r in 0..m {
            let i = b0 + r;
            cand.clear();
            cand.extend((0..n).filter(|&j| j != i).map(|j| (norms[i] + norms[j] - 2.0 * dots[r * n + j], j as u32)));
            // A margin of candidates beyond k absorbs the dot products' rounding.
            let keep = (k + 8).min(cand.len());
            if keep < cand.len() {
                cand.select_nth_unstable_by(keep, |a, b| a.0.total_cmp(&b.0));
                cand.truncate(keep);
            }
            let xi = &x[i * dim..(i + 1) * dim];
            for c in cand.iter_mut() {
                let xj = &x[c.1 as usize * dim..(c.1 as usize + 1) * dim];
                c.0 = xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum();
            }
            cand.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (t, c) in cand.iter().take(k).enumerate() {
                idx[i * k + t] = c.1;
                dist[i * k + t] = c.0;
            }
        }
    }
}

/// A sparse symmetric P in compressed rows (each row's columns ascending).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseP {
    pub indptr: Vec<usize>,
    pub cols: Vec<u32>,
    pub vals: Vec<f32>,
}

impl SparseP {
    pub fn dense(&self, n: usize) -> Vec<f32> {
        let mut d = vec![0f32; n * n];
        for i in 0..n {
            for t in self.indptr[i]..self.indptr[i + 1] {
                d[i * n + self.cols[t] as usize] = self.vals[t];
            }
        }
        d
    }
}

/// The Barnes-Hut method's P (sklearn's `_joint_probabilities_nn`): p(j|i) over each point's
/// nearest neighbours (`idx`/`dist` from [`nearest`], `k` per point), symmetrized
/// (p(j|i) + p(i|j)) and normalized to sum 1.
pub fn joint_p_nn(idx: &[u32], dist: &[f32], n: usize, k: usize, perplexity: f64) -> SparseP {
    let mut cond = vec![0f64; n * k];
    for i in 0..n {
        conditional_row(&dist[i * k..(i + 1) * k], perplexity, None, &mut cond[i * k..(i + 1) * k]);
    }
    joint_from_conditional_nn(idx, &cond, n, k)
}

fn joint_from_conditional_nn(idx: &[u32], cond: &[f64], n: usize, k: usize) -> SparseP {
    // Rows of cond + cond^T.
    let mut rows: Vec<Vec<(u32, f64)>> = vec![Vec::with_capacity(2 * k); n];
    for i in 0..n {
        for t in 0..k {
            let j = idx[i * k + t];
            rows[i].push((j, cond[i * k + t]));
            rows[j as usize].push((i as u32, cond[i * k + t]));
        }
    }
    let mut indptr = Vec::with_capacity(n + 1);
    indptr.push(0);
    let (mut cols, mut vals64) = (vec![], vec![]);
    for row in rows.iter_mut() {
        row.sort_by_key(|e| e.0);
        let mut t = 0;
        while t < row.len() {
            let (j, mut v) = row[t];
            t += 1;
            while t < row.len() && row[t].0 == j {
                v += row[t].1;
                t += 1;
            }
            cols.push(j);
            vals64.push(v);
        }
        indptr.push(cols.len());
    }
    let sum = vals64.iter().sum::<f64>().max(MACHINE_EPSILON);
    SparseP { indptr, cols, vals: vals64.iter().map(|v| (v / sum) as f32).collect() }
}

/// P for either method.
#[derive(Debug, Clone, PartialEq)]
pub enum Affinities {
    /// `[n, n]`, symmetric.
    Dense(Vec<f32>),
    Sparse(SparseP),
}

/// The P a method uses, from the (PCA-reduced) codes `x` (`n` rows of `dim`).
pub fn affinities(x: &[f32], n: usize, dim: usize, perplexity: f64, method: Method) -> Affinities {
    let mut b = AffinityBuilder::new(x.to_vec(), n, dim, perplexity, method);
    b.step(n);
    b.finish()
}

/// P computed a few points at a time (a job's step stays short): each point's distances (to all,
/// or to its nearest neighbours) and its perplexity search, then the symmetrization.
#[derive(Debug, Clone)]
pub struct AffinityBuilder {
    x: Vec<f32>,
    n: usize,
    dim: usize,
    perplexity: f64,
    method: Method,
    /// Neighbours per point (Barnes-Hut).
    k: usize,
    norms: Vec<f32>,
    /// Points done.
    pub next: usize,
    /// p(j|i): `[n, n]` (exact) or `[n, k]` over `idx` (Barnes-Hut).
    cond: Vec<f64>,
    idx: Vec<u32>,
    dist: Vec<f32>,
}

impl AffinityBuilder {
    pub fn new(x: Vec<f32>, n: usize, dim: usize, perplexity: f64, method: Method) -> AffinityBuilder {
        let k = neighbours(n, perplexity);
        let (cond, idx, dist, norms) = match method {
            Method::Exact => (vec![0.0; n * n], vec![], vec![], vec![]),
            Method::BarnesHut { .. } => (vec![0.0; n * k], vec![0; n * k], vec![0.0; n * k], squared_norms(&x, dim)),
        };
        AffinityBuilder { x, n, dim, perplexity, method, k, norms, next: 0, cond, idx, dist }
    }

    pub fn done(&self) -> bool {
        self.next >= self.n
    }

    /// The next `rows` points.
    pub fn step(&mut self, rows: usize) {
        let (n, dim) = (self.n, self.dim);
        let rows = self.next..(self.next + rows.max(1)).min(n);
        match self.method {
            Method::Exact => {
                let mut d = vec![0f32; n];
                for i in rows.clone() {
                    let xi = &self.x[i * dim..(i + 1) * dim];
                    for (j, dj) in d.iter_mut().enumerate() {
                        let xj = &self.x[j * dim..(j + 1) * dim];
                        *dj = if i == j { 0.0 } else { xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum() };
                    }
                    conditional_row(&d, self.perplexity, Some(i), &mut self.cond[i * n..(i + 1) * n]);
                }
            }
            Method::BarnesHut { .. } => {
                let k = self.k;
                nearest_rows(&self.x, n, dim, k, &self.norms, rows.clone(), &mut self.idx, &mut self.dist);
                for i in rows.clone() {
                    conditional_row(&self.dist[i * k..(i + 1) * k], self.perplexity, None, &mut self.cond[i * k..(i + 1) * k]);
                }
            }
        }
        self.next = rows.end;
    }

    /// The joint P (every point done).
    pub fn finish(self) -> Affinities {
        match self.method {
            Method::Exact => Affinities::Dense(joint_from_conditional(&self.cond, self.n)),
            Method::BarnesHut { .. } => Affinities::Sparse(joint_from_conditional_nn(&self.idx, &self.cond, self.n, self.k)),
        }
    }
}

/// sklearn's neighbour count for Barnes-Hut: min(n - 1, ⌊3·perplexity + 1⌋).
pub fn neighbours(n: usize, perplexity: f64) -> usize {
    ((3.0 * perplexity + 1.0) as usize).min(n.saturating_sub(1))
}

/// Σ P log P (the KL divergence's constant part).
fn plogp(p: &[f32]) -> f64 {
    p.iter().filter(|&&v| v > 0.0).map(|&v| v as f64 * (v as f64).ln()).sum()
}

// ---- the gradient -----------------------------------------------------------------------------

/// The gradient of KL(P‖Q) with respect to the 2-D embedding `y` (`[n, 2]`), with P scaled by
/// `exaggeration`: 4 Σ_j (P_ij − Q_ij) q_ij (y_i − y_j), q_ij = 1 / (1 + ‖y_i − y_j‖²),
/// Q = q / Σ q. With `kl`, also returns KL(P‖Q) for the unscaled P.
pub fn gradient(p: &Affinities, y: &[f32], exaggeration: f32, method: Method, kl: bool, grad: &mut [f32]) -> Option<f64> {
    match (p, method) {
        (Affinities::Dense(p), _) => exact_gradient(p, y, exaggeration, kl, grad),
        (Affinities::Sparse(s), Method::BarnesHut { theta }) => bh_gradient(s, y, exaggeration, theta as f32, kl, grad),
        (Affinities::Sparse(s), Method::Exact) => bh_gradient(s, y, exaggeration, 0.0, kl, grad),
    }
}

fn exact_gradient(p: &[f32], y: &[f32], exaggeration: f32, kl: bool, grad: &mut [f32]) -> Option<f64> {
    const L: usize = 8;
    let n = y.len() / 2;
    let (xs, ys): (Vec<f32>, Vec<f32>) = y.chunks(2).map(|v| (v[0], v[1])).unzip();
    // Attraction (Σ_j P q d) and repulsion (Σ_j q² d) of each point, and Z = Σ_{i≠j} q: whole rows,
    // 8 pairs at a time in SIMD (`wide`: SSE natively, simd128 in the browser; the compiler alone
    // does not vectorize these sums, as it may not reorder a float sum). The pair (i, i) adds 0 to
    // the forces (d = 0, P = 0) and exactly 1 to Z, taken off after.
    let mut acc = [vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]];
    let mut z = 0f64;
    let full = n / L * L;
    let load = |v: &[f32]| f32x8::new(v.try_into().expect("8 values"));
    let one = f32x8::splat(1.0);
    for i in 0..n {
        let (xi, yi) = (xs[i], ys[i]);
        let prow = &p[i * n..(i + 1) * n];
        let (xi8, yi8) = (f32x8::splat(xi), f32x8::splat(yi));
        let mut lanes = [f32x8::ZERO; 5];
        for c in (0..full).step_by(L) {
            let dx = xi8 - load(&xs[c..c + L]);
            let dy = yi8 - load(&ys[c..c + L]);
            let q = one / (one + dx * dx + dy * dy);
            let pq = load(&prow[c..c + L]) * q;
            let qq = q * q;
            lanes[0] += q;
            lanes[1] += pq * dx;
            lanes[2] += pq * dy;
            lanes[3] += qq * dx;
            lanes[4] += qq * dy;
        }
        let mut tail = [0f32; 5];
        for j in full..n {
            let dx = xi - xs[j];
            let dy = yi - ys[j];
            let q = 1.0 / (1.0 + dx * dx + dy * dy);
            let pq = prow[j] * q;
            let qq = q * q;
            tail[0] += q;
            tail[1] += pq * dx;
            tail[2] += pq * dy;
            tail[3] += qq * dx;
            tail[4] += qq * dy;
        }
        let sum = |k: usize| lanes[k].reduce_add() + tail[k];
        z += sum(0) as f64 - 1.0;
        for (k, a) in acc.iter_mut().enumerate() {
            a[i] = sum(k + 1);
        }
    }
    let zinv = (1.0 / z) as f32;
    for (i, g) in grad.chunks_mut(2).enumerate() {
        g[0] = 4.0 * (exaggeration * acc[0][i] - acc[2][i] * zinv);
        g[1] = 4.0 * (exaggeration * acc[1][i] - acc[3][i] * zinv);
    }
    kl.then(|| {
        let mut plogq = 0f64;
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (xs[i] - xs[j], ys[i] - ys[j]);
                let q = 1.0 / (1.0 + dx as f64 * dx as f64 + dy as f64 * dy as f64);
                plogq += 2.0 * p[i * n + j] as f64 * q.ln();
            }
        }
        let psum: f64 = p.iter().map(|&v| v as f64).sum();
        plogp(p) - plogq + psum * z.ln()
    })
}

/// A quadtree over the embedding, each cell with its points' count and centre of mass.
struct QuadTree {
    cells: Vec<Cell>,
}

#[derive(Clone)]
struct Cell {
    cx: f32,
    cy: f32,
    half: f32,
    count: u32,
    mx: f32,
    my: f32,
    /// First child (four in a row), 0 for a leaf.
    child: u32,
    /// A leaf's point (u32::MAX: empty).
    point: u32,
}

const MAX_DEPTH: usize = 40;

impl QuadTree {
    fn new(xs: &[f32], ys: &[f32]) -> QuadTree {
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for (&x, &y) in xs.iter().zip(ys) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        let half = ((x1 - x0).max(y1 - y0) / 2.0).max(1e-6) * (1.0 + 1e-3);
        let root = Cell { cx: (x0 + x1) / 2.0, cy: (y0 + y1) / 2.0, half, count: 0, mx: 0.0, my: 0.0, child: 0, point: u32::MAX };
        let mut t = QuadTree { cells: Vec::with_capacity(4 * xs.len() + 1) };
        t.cells.push(root);
        for i in 0..xs.len() {
            t.insert(i as u32, xs, ys);
        }
        t
    }

    fn quadrant(c: &Cell, x: f32, y: f32) -> u32 {
        (x > c.cx) as u32 + 2 * (y > c.cy) as u32
    }

    fn insert(&mut self, i: u32, xs: &[f32], ys: &[f32]) {
        let (x, y) = (xs[i as usize], ys[i as usize]);
        let mut c = 0usize;
        let mut depth = 0;
        loop {
            let cell = &mut self.cells[c];
            // The running centre of mass.
            let n = cell.count as f32;
            cell.mx = (cell.mx * n + x) / (n + 1.0);
            cell.my = (cell.my * n + y) / (n + 1.0);
            cell.count += 1;
            if cell.child != 0 {
                c = (cell.child + Self::quadrant(cell, x, y)) as usize;
                depth += 1;
                continue;
            }
            if cell.point == u32::MAX {
                cell.point = i;
                return;
            }
            let other = cell.point;
            let (ox, oy) = (xs[other as usize], ys[other as usize]);
            // A duplicate (or too deep): the leaf keeps several points at one place.
            if (ox == x && oy == y) || depth >= MAX_DEPTH {
                return;
            }
            // Split: the leaf's point moves down into a child.
            let (cx, cy, half, count) = (cell.cx, cell.cy, cell.half / 2.0, cell.count - 1);
            let first = self.cells.len() as u32;
            self.cells[c].child = first;
            self.cells[c].point = u32::MAX;
            for q in 0..4u32 {
                let (sx, sy) = (if q & 1 == 1 { 1.0 } else { -1.0 }, if q & 2 == 2 { 1.0 } else { -1.0 });
                self.cells.push(Cell {
                    cx: cx + sx * half,
                    cy: cy + sy * half,
                    half,
                    count: 0,
                    mx: 0.0,
                    my: 0.0,
                    child: 0,
                    point: u32::MAX,
                });
            }
            let oq = Self::quadrant(&self.cells[c], ox, oy);
            let oc = &mut self.cells[(first + oq) as usize];
            oc.point = other;
            oc.count = count;
            oc.mx = ox;
            oc.my = oy;
            c = (first + Self::quadrant(&self.cells[c], x, y)) as usize;
            depth += 1;
        }
    }

    /// The non-empty cells in depth-first order, each with the index just past its subtree, and
    /// the points in the order the leaves hold them.
    fn flatten(&self) -> (Vec<Flat>, Vec<u32>) {
        let mut out = Vec::with_capacity(self.cells.len());
        let mut order = Vec::new();
        self.flatten_from(0, &mut out, &mut order);
        (out, order)
    }

    fn flatten_from(&self, c: usize, out: &mut Vec<Flat>, order: &mut Vec<u32>) {
        let cell = &self.cells[c];
        if cell.count == 0 {
            return;
        }
        let at = out.len();
        let side = 2.0 * cell.half;
        out.push(Flat { mx: cell.mx, my: cell.my, count: cell.count as f32, side2: side * side, next: 0, point: u32::MAX });
        if cell.child == 0 {
            out[at].point = cell.point;
            order.push(cell.point);
        } else {
            for k in 0..4 {
                self.flatten_from((cell.child + k) as usize, out, order);
            }
        }
        out[at].next = out.len() as u32;
    }
}

/// A non-empty cell of the flattened quadtree.
#[derive(Clone, Copy)]
struct Flat {
    mx: f32,
    my: f32,
    count: f32,
    side2: f32,
    /// The first cell after its subtree.
    next: u32,
    /// A leaf's point (u32::MAX for an inner cell).
    point: u32,
}

/// The repulsion on point `i` at (x, y): (Σ q² (y_i − y_j) over x and y, Σ q), cells far enough
/// (side² < θ² · distance²) taken as one mass at their centre. The tree is walked in depth-first
/// order, jumping past a subtree it summarized (no stack).
fn repulsion(cells: &[Flat], i: u32, x: f32, y: f32, theta2: f32) -> (f32, f32, f32) {
    let (mut fx, mut fy, mut z) = (0f32, 0f32, 0f32);
    let mut c = 0usize;
    while c < cells.len() {
        let cell = &cells[c];
        let (dx, dy) = (x - cell.mx, y - cell.my);
        let d2 = dx * dx + dy * dy;
        let leaf = cell.point != u32::MAX;
        if leaf || cell.side2 < theta2 * d2 {
            // A leaf holding i (with any duplicates of it: they count, at distance 0).
            let size = if cell.point == i { cell.count - 1.0 } else { cell.count };
            let q = 1.0 / (1.0 + d2);
            z += size * q;
            let m = size * q * q;
            fx += m * dx;
            fy += m * dy;
            c = cell.next as usize;
        } else {
            c += 1;
        }
    }
    (fx, fy, z)
}

fn bh_gradient(p: &SparseP, y: &[f32], exaggeration: f32, theta: f32, kl: bool, grad: &mut [f32]) -> Option<f64> {
    let n = y.len() / 2;
    let (xs, ys): (Vec<f32>, Vec<f32>) = y.chunks(2).map(|v| (v[0], v[1])).unzip();
    let (cells, mut order) = QuadTree::new(&xs, &ys).flatten();
    if order.len() < n {
        // Points sharing a leaf (duplicates) are not in the leaves' order.
        let mut seen = vec![false; n];
        order.iter().for_each(|&i| seen[i as usize] = true);
        order.extend((0..n as u32).filter(|&i| !seen[i as usize]));
    }
    let mut z = 0f64;
    let mut rep = vec![0f32; 2 * n];
    // In the leaves' order: neighbouring points walk much the same cells.
    for &i in &order {
        let i = i as usize;
        let (fx, fy, zi) = repulsion(&cells, i as u32, xs[i], ys[i], theta * theta);
        rep[2 * i] = fx;
        rep[2 * i + 1] = fy;
        z += zi as f64;
    }
    let zinv = (1.0 / z) as f32;
    let mut plogq = 0f64;
    for i in 0..n {
        let (mut ax, mut ay) = (0f32, 0f32);
        for t in p.indptr[i]..p.indptr[i + 1] {
            let j = p.cols[t] as usize;
            let (dx, dy) = (xs[i] - xs[j], ys[i] - ys[j]);
            let q = 1.0 / (1.0 + dx * dx + dy * dy);
            let pq = p.vals[t] * q;
            ax += pq * dx;
            ay += pq * dy;
            if kl {
                plogq += p.vals[t] as f64 * (q as f64).ln();
            }
        }
        grad[2 * i] = 4.0 * (exaggeration * ax - rep[2 * i] * zinv);
        grad[2 * i + 1] = 4.0 * (exaggeration * ay - rep[2 * i + 1] * zinv);
    }
    kl.then(|| {
        let psum: f64 = p.vals.iter().map(|&v| v as f64).sum();
        plogp(&p.vals) - plogq + psum * z.ln()
    })
}

/// Refuses codes t-SNE cannot map (too few, not finite, a perplexity as large as the set).
pub fn check(x: &[f32], n: usize, dim: usize, settings: &Settings) -> Result<(), Error> {
    if n < 2 || x.len() != n * dim {
        return Err(Error::Input(format!("t-SNE needs at least 2 points with codes ({n} given)")));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("code {} has a non-finite value ({}); the map needs finite codes", i / dim, x[i])));
    }
    if settings.perplexity >= n as f64 {
        return Err(Error::Input(format!(
            "the perplexity ({}) must be less than the number of points ({n}): lower it or take more points",
            settings.perplexity
        )));
    }
    Ok(())
}

// ---- the optimizer ----------------------------------------------------------------------------

/// A map being optimized.
#[derive(Debug, Clone)]
pub struct Tsne {
    pub settings: Settings,
    pub n: usize,
    pub p: Affinities,
    /// `[n, 2]`.
    pub y: Vec<f32>,
    update: Vec<f32>,
    gains: Vec<f32>,
    grad: Vec<f32>,
    /// Iterations done.
    pub iteration: usize,
    pub learning_rate: f64,
    /// (iteration, KL divergence) each time it was measured.
    pub kl: Vec<(usize, f64)>,
}

impl Tsne {
    /// Starts from the reduced codes `x` (`n` rows of `dim`) and a start `y0` (`[n, 2]`: see
    /// [`start`]).
    pub fn new(x: &[f32], n: usize, dim: usize, y0: Vec<f32>, settings: Settings) -> Result<Tsne, Error> {
        check(x, n, dim, &settings)?;
        let p = affinities(x, n, dim, settings.perplexity, settings.method);
        Tsne::from_affinities(p, n, y0, settings)
    }

    /// Starts from P (see [`AffinityBuilder`]) and a start `y0`.
    pub fn from_affinities(p: Affinities, n: usize, y0: Vec<f32>, settings: Settings) -> Result<Tsne, Error> {
        if y0.len() != 2 * n {
            return Err(Error::Input(format!("t-SNE: {} start values for {n} points", y0.len())));
        }
        let learning_rate = settings.learning_rate.unwrap_or_else(|| (n as f64 / settings.exaggeration / 4.0).max(50.0));
        Ok(Tsne {
            n,
            p,
            update: vec![0.0; 2 * n],
            gains: vec![1.0; 2 * n],
            grad: vec![0.0; 2 * n],
            y: y0,
            iteration: 0,
            learning_rate,
            kl: vec![],
            settings,
        })
    }

    pub fn done(&self) -> bool {
        self.iteration >= self.settings.iterations
    }

    /// One iteration (sklearn's `_gradient_descent` body); with `measure`, records the KL
    /// divergence at the embedding before the step.
    pub fn step(&mut self, measure: bool) {
        if self.done() {
            return;
        }
        let it = self.iteration;
        let exploring = it < EXPLORATION_ITERS;
        if it == EXPLORATION_ITERS {
            // sklearn's second `_gradient_descent` call starts afresh.
            self.update.fill(0.0);
            self.gains.fill(1.0);
        }
        let (momentum, exaggeration) = if exploring { (0.5f32, self.settings.exaggeration as f32) } else { (0.8, 1.0) };
        let kl = gradient(&self.p, &self.y, exaggeration, self.settings.method, measure, &mut self.grad);
        if let Some(kl) = kl {
            self.kl.push((it, kl));
        }
        let lr = self.learning_rate as f32;
        for ((g, u), (gain, y)) in self.grad.iter().zip(self.update.iter_mut()).zip(self.gains.iter_mut().zip(self.y.iter_mut())) {
            if *u * *g < 0.0 {
                *gain += 0.2;
            } else {
                *gain *= 0.8;
            }
            *gain = gain.max(0.01);
            *u = momentum * *u - lr * *gain * *g;
            *y += *u;
        }
        self.iteration += 1;
    }
}

/// The start: the first two principal components of `x` scaled to a standard deviation of 1e-4
/// along the first (sklearn's `init="pca"`; `pca2` are those components), or N(0, 1e-4²) noise.
pub fn start(init: Init, pca2: &[f32], n: usize, seed: u64) -> Vec<f32> {
    match init {
        Init::Pca => {
            let col0: Vec<f64> = pca2.chunks(2).map(|r| r[0] as f64).collect();
            let mean = col0.iter().sum::<f64>() / n as f64;
            let sd = (col0.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64).sqrt().max(1e-12);
            pca2.iter().map(|&v| (v as f64 / sd * 1e-4) as f32).collect()
        }
        Init::Random => {
            let mut rng = SplitMix64(seed ^ 0x7453_4e45);
            (0..2 * n).map(|_| (1e-4 * rng.normal()) as f32).collect()
        }
    }
}

// ---- how good a map is ------------------------------------------------------------------------

/// sklearn's `trustworthiness`: 1 − 2 / (n k (2n − 3k − 1)) Σ_i Σ_{j ∈ k-NN of i in the map}
/// max(0, r(i, j) − k), r the rank of j among i's neighbours in the original space.
pub fn trustworthiness(x: &[f32], dim: usize, y: &[f32], ydim: usize, k: usize) -> f64 {
    let n = x.len() / dim;
    let (emb, _) = nearest(y, n, ydim, k);
    let mut rank = vec![0u32; n];
    let mut order: Vec<(f32, u32)> = Vec::with_capacity(n);
    let mut t = 0f64;
    for i in 0..n {
        let xi = &x[i * dim..(i + 1) * dim];
        order.clear();
        order.extend((0..n).filter(|&j| j != i).map(|j| {
            let xj = &x[j * dim..(j + 1) * dim];
            (xi.iter().zip(xj).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), j as u32)
        }));
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (r, &(_, j)) in order.iter().enumerate() {
            rank[j as usize] = r as u32 + 1;
        }
        for &j in &emb[i * k..(i + 1) * k] {
            let r = rank[j as usize] as i64 - k as i64;
            if r > 0 {
                t += r as f64;
            }
        }
    }
    let (n, k) = (n as f64, k as f64);
    1.0 - t * (2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))
}

// ---- the job: codes, PCA, affinities, then the optimization -----------------------------------

/// Where a map is.
#[derive(Debug, Clone)]
pub enum Stage {
    /// Reading the layer's codes, image by image (`next` done).
    Codes,
    /// Reducing them (PCA), in one step.
    Pca,
    /// Computing P a few points at a time, from the start it will optimize.
    Affinities(Box<AffinityBuilder>, Vec<f32>),
    Optimizing(Box<Tsne>),
}

/// A t-SNE of a layer's codes over the first `n` images of a split, as a job.
#[derive(Debug, Clone)]
pub struct TsneRun {
    pub settings: Settings,
    pub layer: usize,
    pub data: std::rc::Rc<crate::data::Dataset>,
    pub n: usize,
    /// Images whose codes are read.
    pub next: usize,
    pub codes: Vec<f32>,
    /// Values per code (the layer's output size).
    pub dim: usize,
    pub labels: Vec<u8>,
    pub split: String,
    pub stage: Stage,
    /// The share of the variance the PCA kept.
    pub explained: f32,
}

impl TsneRun {
    pub fn new(net: &crate::Net, data: std::rc::Rc<crate::data::Dataset>, v: &Map<String, Value>) -> Result<TsneRun, Error> {
        let spec = &net.spec;
        data.check_input(spec.input_shape())?;
        let layer = match v.layer("layer", spec)? {
            Some(l) => l,
            None => crate::vis::patches::default_layer(spec),
        };
        let n = v.int("points").min(data.len());
        if n < 10 {
            return Err(Error::Input(format!("a t-SNE map needs at least 10 images; the split has {}", data.len())));
        }
        let settings = Settings::from_values(v, n)?;
        let [c, h, w] = spec.layers[layer].out_shape;
        Ok(TsneRun {
            settings,
            layer,
            labels: data.labels[..n].to_vec(),
            split: v.text("split").to_string(),
            data,
            n,
            next: 0,
            codes: Vec::with_capacity(n * c * h * w),
            dim: c * h * w,
            stage: Stage::Codes,
            explained: 0.0,
        })
    }

    pub fn done(&self) -> bool {
        matches!(&self.stage, Stage::Optimizing(t) if t.done())
    }

    /// Whether a step wants the fused CPU path's state (reading codes).
    pub fn reading(&self) -> bool {
        matches!(self.stage, Stage::Codes)
    }

    /// One piece of work: a batch of codes, the PCA and P, or `iterations` of the optimization.
    pub async fn run(
        &mut self,
        net: &crate::Net,
        fused: Option<&mut crate::cpu_train::CpuTrainer>,
        batch: usize,
        iterations: usize,
    ) -> Result<(), Error> {
        match &mut self.stage {
            Stage::Codes => {
                let k = batch.clamp(1, crate::spec::Limits::here().max_batch(&net.spec)).min(self.n - self.next);
                let idx: Vec<usize> = (self.next..self.next + k).collect();
                let (x, _) = self.data.batch(&idx, net.spec.input_shape(), None);
                let out = crate::vis::patches::layer_output(net, fused, x, k, self.layer).await?;
                self.codes.extend_from_slice(&out);
                self.next += k;
                if self.next >= self.n {
                    self.stage = Stage::Pca;
                }
            }
            Stage::Pca => {
                let p = crate::vis::pca::pca(&self.codes, self.n, self.dim, self.settings.pca, self.settings.seed)?;
                self.explained = p.explained.iter().sum();
                let pca2: Vec<f32> = if p.k >= 2 {
                    p.scores.chunks(p.k).flat_map(|r| [r[0], r[1]]).collect()
                } else {
                    p.scores.iter().flat_map(|&v| [v, 0.0]).collect()
                };
                let y0 = start(self.settings.init, &pca2, self.n, self.settings.seed);
                check(&p.scores, self.n, p.k, &self.settings)?;
                let b = AffinityBuilder::new(p.scores, self.n, p.k, self.settings.perplexity, self.settings.method);
                self.codes = vec![];
                self.stage = Stage::Affinities(Box::new(b), y0);
            }
            Stage::Affinities(b, _) => {
                b.step(batch);
                if !b.done() {
                    return Ok(());
                }
                let Stage::Affinities(b, y0) = std::mem::replace(&mut self.stage, Stage::Pca) else { unreachable!() };
                let t = Tsne::from_affinities(b.finish(), self.n, y0, self.settings.clone())?;
                self.stage = Stage::Optimizing(Box::new(t));
            }
            Stage::Optimizing(t) => {
                for _ in 0..iterations.max(1) {
                    if t.done() {
                        break;
                    }
                    // The KL divergence every 50 iterations (as sklearn checks it) and at the end:
                    // measuring costs about as much as an iteration.
                    t.step(t.iteration.is_multiple_of(KL_EVERY) || t.iteration + 1 == t.settings.iterations);
                }
            }
        }
        Ok(())
    }
}
