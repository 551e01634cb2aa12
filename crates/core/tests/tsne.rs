//! t-SNE against scikit-learn 1.7.2 (fixtures made by `scripts/make_tsne_fixtures.py`) and
//! against finite differences of its own objective.

use convlens_core::vis::tsne::{self, Affinities, Method};
use safetensors::SafeTensors;
use serde_json::Value;

struct Fixture {
    bytes: Vec<u8>,
    meta: Value,
}

fn fixture() -> Fixture {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tsne");
    let bytes = std::fs::read(dir.join("tsne.safetensors")).expect("tests/fixtures/tsne/tsne.safetensors");
    let meta = serde_json::from_str(&std::fs::read_to_string(dir.join("tsne.json")).unwrap()).unwrap();
    Fixture { bytes, meta }
}

impl Fixture {
    fn get(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture array {name}"));
        let v = t.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        (v, t.shape().to_vec())
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs())) / scale
}

/// KL(P‖Q) from its definition, in f64.
fn kl64(p: &[f32], y: &[f64], n: usize) -> f64 {
    let q = |i: usize, j: usize| 1.0 / (1.0 + (y[2 * i] - y[2 * j]).powi(2) + (y[2 * i + 1] - y[2 * j + 1]).powi(2));
    let mut z = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                z += q(i, j);
            }
        }
    }
    let mut kl = 0.0;
    for i in 0..n {
        for j in 0..n {
            let pij = p[i * n + j] as f64;
            if i != j && pij > 0.0 {
                kl += pij * (pij / (q(i, j) / z)).ln();
            }
        }
    }
    kl
}

#[test]
fn conditional_and_joint_p_equal_sklearn() {
    let f = fixture();
    let (x, shape) = f.get("blobs.x");
    let (n, dim) = (shape[0], shape[1]);
    for perp in [5.0, 30.0] {
        let d = tsne::squared_distances(&x, n, dim);
        let c: Vec<f32> = tsne::conditional_p(&d, n, perp).iter().map(|&v| v as f32).collect();
        let (c_ref, _) = f.get(&format!("blobs.p{perp}.conditional"));
        let e = max_rel(&c, &c_ref);
        assert!(e < 1e-5, "perplexity {perp}: conditional P differs from sklearn's by {e:e} (relative to its largest)");
        let p = tsne::joint_p(&d, n, perp);
        let (p_ref, _) = f.get(&format!("blobs.p{perp}.joint"));
        let e = max_rel(&p, &p_ref);
        assert!(e < 1e-5, "perplexity {perp}: joint P differs from sklearn's by {e:e}");
        assert!((p.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() < 1e-5);

        // Barnes-Hut: the same neighbours, and the same sparse P.
        let k = tsne::neighbours(n, perp);
        assert_eq!(k as f64, f.meta["cases"]["blobs"]["nn_k"][format!("{perp}")].as_f64().unwrap());
        let (idx, dist) = tsne::nearest(&x, n, dim, k);
        let (idx_ref, _) = f.get(&format!("blobs.p{perp}.nn_index"));
        let same = idx.iter().zip(&idx_ref).filter(|(a, b)| **a as f32 == **b).count();
        assert!(same as f64 >= 0.999 * idx.len() as f64, "perplexity {perp}: {same} of {} neighbours agree", idx.len());
        let sp = tsne::joint_p_nn(&idx, &dist, n, k, perp);
        let (pnn_ref, _) = f.get(&format!("blobs.p{perp}.joint_nn"));
        let e = max_rel(&sp.dense(n), &pnn_ref);
        assert!(e < 1e-5, "perplexity {perp}: Barnes-Hut P differs from sklearn's by {e:e}");
    }
}

#[test]
fn kl_and_gradient_equal_sklearn() {
    let f = fixture();
    let (x, shape) = f.get("blobs.x");
    let (n, dim) = (shape[0], shape[1]);
    let (y, _) = f.get("blobs.y");
    let case = &f.meta["cases"]["blobs"];
    let p = Affinities::Dense(tsne::joint_p(&tsne::squared_distances(&x, n, dim), n, 30.0));
    let mut g = vec![0f32; 2 * n];
    let kl = tsne::gradient(&p, &y, 1.0, Method::Exact, true, &mut g).unwrap();
    let (g_ref, _) = f.get("blobs.kl_grad");
    assert!(max_rel(&g, &g_ref) < 1e-4, "exact gradient differs from sklearn's by {:e}", max_rel(&g, &g_ref));
    let kl_ref = case["kl_exact"].as_f64().unwrap();
    assert!((kl - kl_ref).abs() < 1e-4 * kl_ref.abs().max(1.0), "exact KL {kl} vs sklearn {kl_ref}");

    let k = tsne::neighbours(n, 30.0);
    let (idx, dist) = tsne::nearest(&x, n, dim, k);
    let sp = Affinities::Sparse(tsne::joint_p_nn(&idx, &dist, n, k, 30.0));
    for (theta, name, kl_key) in [(0.0, "blobs.kl_grad_bh0", "kl_bh0"), (0.5, "blobs.kl_grad_bh05", "kl_bh05")] {
        let kl = tsne::gradient(&sp, &y, 1.0, Method::BarnesHut { theta }, true, &mut g).unwrap();
        let (g_ref, _) = f.get(name);
        let e = max_rel(&g, &g_ref);
        // θ = 0 is exact; at 0.5 the two trees split cells differently.
        let tol = if theta == 0.0 { 1e-3 } else { 0.05 };
        assert!(e < tol, "Barnes-Hut θ={theta}: gradient differs from sklearn's by {e:e}");
        let kl_ref = case[kl_key].as_f64().unwrap();
        assert!((kl - kl_ref).abs() < 0.02 * kl_ref.abs().max(0.1), "Barnes-Hut θ={theta}: KL {kl} vs sklearn {kl_ref}");
    }
}

#[test]
fn gradient_equals_finite_differences() {
    // 40 points in 5 dims, a random embedding.
    let mut rng = convlens_core::rng::SplitMix64(7);
    let (n, dim) = (40, 5);
    let x: Vec<f32> = (0..n * dim).map(|i| rng.normal() as f32 + if i % dim == 0 { (i / dim % 3) as f32 * 3.0 } else { 0.0 }).collect();
    let y: Vec<f32> = (0..2 * n).map(|_| rng.normal() as f32).collect();
    let pd = tsne::joint_p(&tsne::squared_distances(&x, n, dim), n, 8.0);
    let p = Affinities::Dense(pd.clone());
    let mut g = vec![0f32; 2 * n];
    let kl = tsne::gradient(&p, &y, 1.0, Method::Exact, true, &mut g).unwrap();
    let y64: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    assert!((kl - kl64(&pd, &y64, n)).abs() < 1e-5, "KL {kl} vs {}", kl64(&pd, &y64, n));
    let h = 1e-5;
    let mut worst = 0f64;
    for c in 0..2 * n {
        let (mut a, mut b) = (y64.clone(), y64.clone());
        a[c] += h;
        b[c] -= h;
        let fd = (kl64(&pd, &a, n) - kl64(&pd, &b, n)) / (2.0 * h);
        worst = worst.max((fd - g[c] as f64).abs());
    }
    let scale = g.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    assert!(worst < 1e-3 * scale, "gradient vs finite differences: {worst:e} (largest component {scale:e})");

    // Through the tree with θ = 0, on the full P as a sparse matrix: the same gradient.
    let full = tsne::SparseP {
        indptr: (0..=n).map(|i| i * (n - 1)).collect(),
        cols: (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(|j| j as u32)).collect(),
        vals: (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| pd[i * n + j]).collect(),
    };
    let mut g2 = vec![0f32; 2 * n];
    let kl2 = tsne::gradient(&Affinities::Sparse(full), &y, 1.0, Method::BarnesHut { theta: 0.0 }, true, &mut g2).unwrap();
    assert!(max_rel(&g2, &g) < 1e-4, "tree at θ=0 vs exact: {:e}", max_rel(&g2, &g));
    assert!((kl2 - kl).abs() < 1e-5);
}

#[test]
fn trustworthiness_equals_sklearn() {
    let f = fixture();
    let (x, shape) = f.get("blobs.x");
    let (y, _) = f.get("blobs.y");
    for k in [5, 10] {
        let t = tsne::trustworthiness(&x, shape[1], &y, 2, k);
        let t_ref = f.meta["cases"]["blobs"][format!("trust{k}")].as_f64().unwrap();
        assert!((t - t_ref).abs() < 1e-9, "trustworthiness k={k}: {t} vs sklearn {t_ref}");
    }
}

mod common;

/// The first 2,000 MNIST test digits (28x28, /255) from the data directory, with their labels.
fn mnist2000() -> Option<(Vec<f32>, Vec<u8>)> {
    let dir = common::data_dir();
    if !dir.join("mnist/mnist_labels.js").exists() {
        return None;
    }
    let layout = convlens_core::data::layout("mnist", Some(1)).unwrap();
    let (_, test) = layout.load(|f| std::fs::read(dir.join(f)).map_err(|e| convlens_core::Error::Data(e.to_string()))).unwrap();
    let x: Vec<f32> = (0..2000).flat_map(|i| test.image(i)).collect();
    Some((x, test.labels[..2000].to_vec()))
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn mnist_map_is_as_trustworthy_as_sklearns() {
    let f = fixture();
    let m = &f.meta["mnist2000"];
    let (x, labels) = mnist2000().expect("mnist/ in the data directory (set CONVLENS_DATA_DIR)");
    assert_eq!(
        labels[..5].iter().map(|&l| l as u64).collect::<Vec<_>>(),
        m["labels_first5"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>()
    );
    let sum0: f64 = x[..784].iter().map(|&v| v as f64).sum();
    assert!((sum0 - m["digit0_pixel_sum"].as_f64().unwrap()).abs() < 1e-3, "digit 0's pixels: {sum0}");
    let n = 2000;
    let t0 = std::time::Instant::now();
    let p = convlens_core::vis::pca::pca(&x, n, 784, 50, 0).unwrap();
    let t_pca = t0.elapsed().as_secs_f64();
    let sk_ratio = m["pca_explained_variance_ratio_sum"].as_f64().unwrap();
    let ours: f64 = p.explained.iter().map(|&v| v as f64).sum();
    assert!((ours - sk_ratio).abs() < 1e-3, "PCA keeps {ours} of the variance; sklearn's {sk_ratio}");
    let pca2: Vec<f32> = p.scores.chunks(50).flat_map(|r| [r[0], r[1]]).collect();
    for (method, key) in [(Method::BarnesHut { theta: 0.5 }, "barnes_hut"), (Method::Exact, "exact")] {
        let mut s = tsne::Settings::default_for(n);
        s.method = method;
        let t0 = std::time::Instant::now();
        let mut t = tsne::Tsne::new(&p.scores, n, 50, tsne::start(s.init, &pca2, n, 0), s).unwrap();
        while !t.done() {
            t.step(t.iteration + 1 == 1000);
        }
        let secs = t0.elapsed().as_secs_f64();
        let trust = tsne::trustworthiness(&x, 784, &t.y, 2, 10);
        let sk = m[key]["trust_pixels"].as_f64().unwrap();
        let kl = t.kl.last().unwrap().1;
        println!(
            "{key}: trustworthiness {trust:.4} (sklearn {sk:.4}), KL {kl:.3} (sklearn {:.3}), {secs:.2} s (sklearn {:.1} s), PCA {t_pca:.2} s",
            m[key]["kl_divergence"].as_f64().unwrap(),
            m[key]["seconds"].as_f64().unwrap()
        );
        assert!((trust - sk).abs() < 0.02, "{key}: trustworthiness {trust} vs sklearn's {sk}");
    }
}
