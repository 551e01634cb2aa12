#!/usr/bin/env python3
"""Reference t-SNE quantities for ConvLens's t-SNE tests, computed with scikit-learn.

Writes

    tests/fixtures/tsne/tsne.safetensors  float32 arrays of the small synthetic case ("blobs")
    tests/fixtures/tsne/tsne.json         metadata, scalar references (KL values, trustworthiness) and the
                                          MNIST-2000 reference run (trustworthiness, KL, n_iter_, timings)

so that the Rust tests can check ConvLens's perplexity calibration, joint probabilities (exact and kNN /
Barnes-Hut), KL divergence and gradient, trustworthiness, and the quality of a full MNIST embedding, without Python.

Made with scikit-learn 1.7.2 (numpy 2.4.6, scipy 1.17.1, safetensors 0.8.0, pillow 13.0.0, Python 3.11.7). To
remake them, from the project root:

    python3 -m venv .venv
    .venv/bin/pip install scikit-learn==1.7.2 numpy safetensors pillow
    .venv/bin/python scripts/make_tsne_fixtures.py --data ../shared/data

The data directory is only read (MNIST test digits 0..1999 of `mnist/mnist_batch_20.png` and their labels); no
pixel, PCA projection or embedding of it is written to the fixtures, only scalars and checksums.

Determinism: the "blobs" arrays are fully deterministic (numpy's default_rng(0) and default_rng(1), single-threaded
sklearn calls with num_threads=1) and rerunning gives the same bytes. The MNIST t-SNE runs are seeded
(random_state=0) but their last digits depend on the BLAS, on the OpenMP thread count the Barnes-Hut gradient uses
(its sum over the tree is a parallel reduction) and on the machine. Two runs on the machine that made them (2 CPUs,
2 OpenMP threads) gave identical MNIST numbers. Timings are wall-clock on that machine (see "machine" in the JSON),
with another process competing for the CPUs, so they are indicative only.

Private sklearn functions used (sklearn/manifold/_t_sne.py and _utils.pyx, 1.7.2):
  _utils._binary_search_perplexity(sqdistances: float32[N, K], desired_perplexity: float, verbose: int)
      -> float64[N, K]; K == N means "exact": the diagonal j == i is skipped (stays 0), otherwise every column is a
      neighbour. beta starts at 1, up to 100 bisection steps on beta (doubling/halving while unbounded), stop when
      |H - log(perplexity)| <= 1e-5 (H in nats, H = log(sum_P) + beta * sum_j d_ij p_j|i); a zero sum_P becomes 1e-8.
  _t_sne._joint_probabilities(distances, desired_perplexity, verbose) -> condensed float64 P:
      P = C + C.T; P = max(squareform(P) / max(sum(P), MACHINE_EPSILON), MACHINE_EPSILON),
      MACHINE_EPSILON = np.finfo(np.double).eps (2.22e-16) -- so every off-diagonal joint is at least 2.22e-16.
  _t_sne._joint_probabilities_nn(distances: CSR, desired_perplexity, verbose) -> CSR float64 P:
      distances.sort_indices() (rows reordered by column index!), binary search on data.reshape(N, K),
      P = csr(C) + csr(C).T, P /= max(P.sum(), MACHINE_EPSILON) (no floor).
  _t_sne._kl_divergence(params, P, degrees_of_freedom, n_samples, n_components, skip_num_points=0,
      compute_error=True) -> (kl, grad); Q = max(w / (2 sum_condensed w), MACHINE_EPSILON), w = (1 + d^2/dof)^-(dof+1)/2,
      kl = 2 * P . log(max(P, eps) / Q), grad_i = c * sum_j (p_ij - q_ij) w_ij (y_i - y_j), c = 2 (dof+1)/dof.
  _t_sne._kl_divergence_bh(params, P, degrees_of_freedom, n_samples, n_components, angle=0.5,
      skip_num_points=0, verbose=False, compute_error=True, num_threads=1) -> (kl, grad); float32 throughout,
      kl = sum over P's stored entries of p_ij log(max(p_ij, f32 tiny) / max(q_ij, f32 tiny)) (no factor 2: P is
      stored both ways), q_ij = w_ij / sum_Q where sum_Q is the quadtree's (approximate) sum over all pairs i != j.
  TSNE._fit (barnes_hut): n_neighbors = min(N - 1, int(3 * perplexity + 1)); NearestNeighbors(algorithm="auto",
      n_neighbors=n_neighbors, metric="euclidean").fit(X).kneighbors_graph(mode="distance") (self excluded),
      distances_nn.data **= 2, P = _joint_probabilities_nn(distances_nn, perplexity, verbose).
  TSNE._fit (exact): distances = pairwise_distances(X, metric="euclidean", squared=True) (float32 input is upcast to
      float64 in chunks, result float32, diagonal forced to 0), P = _joint_probabilities(distances, perplexity, verbose).
  learning_rate="auto": learning_rate_ = max(N / early_exaggeration / 4, 50).
  init="pca": PCA(n_components, svd_solver="randomized", random_state=random_state).fit_transform(X) as float32,
      then X_embedded / np.std(X_embedded[:, 0]) * 1e-4.
  Optimisation: 250 iterations at momentum 0.5 with P *= early_exaggeration (12), then momentum 0.8 up to max_iter,
      gains +0.2 / *0.8 clipped at 0.01, progress checked every 50 iterations (n_iter_without_progress=300,
      min_grad_norm=1e-7; the exploration stage uses n_iter_without_progress=250).
"""
import argparse
import json
import os
import platform
import re
import sys
import time

import numpy as np
import scipy
import scipy.sparse
import sklearn
from PIL import Image
from safetensors.numpy import save_file
from scipy.spatial.distance import squareform
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.manifold import _t_sne
from sklearn.manifold import _utils as tsne_utils
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

try:
    import safetensors
    SAFETENSORS_VERSION = safetensors.__version__
except Exception:  # pragma: no cover
    SAFETENSORS_VERSION = "unknown"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "tsne")
MACHINE_EPSILON = float(np.finfo(np.double).eps)
assert _t_sne.MACHINE_EPSILON == MACHINE_EPSILON


def check(cond, msg):
    if not cond:
        print("CHECK FAILED:", msg, file=sys.stderr)
        sys.exit(1)


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Independent re-implementations used to check sklearn's results (float64 numpy).
# ---------------------------------------------------------------------------------------------------------------

def row_entropy_nats(p_row):
    """Perplexity check: entropy of a conditional row, H = -sum p log p (nats)."""
    nz = p_row > 0
    return float(-np.sum(p_row[nz] * np.log(p_row[nz])))


def kl_and_grad_dense(Y, Pfull):
    """KL(P || Q) over i != j and its gradient, for a full symmetric P (zeros allowed), dof = 1."""
    Y = Y.astype(np.float64)
    d2 = np.sum((Y[:, None, :] - Y[None, :, :]) ** 2, axis=-1)
    w = 1.0 / (1.0 + d2)
    np.fill_diagonal(w, 0.0)
    Q = w / w.sum()
    mask = Pfull > 0
    kl = float(np.sum(Pfull[mask] * np.log(Pfull[mask] / Q[mask])))
    PQw = (Pfull - Q) * w
    grad = 4.0 * (PQw.sum(axis=1)[:, None] * Y - PQw @ Y)
    return kl, grad


def trustworthiness_ref(X, E, k):
    """Venna & Kaski trustworthiness, written from the formula (ranks start at 1 for the nearest other point)."""
    n = X.shape[0]
    dx = pairwise_distances(X.astype(np.float64))
    de = pairwise_distances(E.astype(np.float64))
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(de, np.inf)
    order_x = np.argsort(dx, axis=1, kind="stable")
    rank = np.empty((n, n), dtype=np.int64)
    rank[np.arange(n)[:, None], order_x] = np.arange(1, n + 1)[None, :]
    nn_e = np.argsort(de, axis=1, kind="stable")[:, :k]
    r = rank[np.arange(n)[:, None], nn_e] - k
    t = r[r > 0].sum()
    return 1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * t


# ---------------------------------------------------------------------------------------------------------------
# Part 1 and 3: blobs
# ---------------------------------------------------------------------------------------------------------------

def make_blobs_case(arrays):
    n_per, n_clusters, dim = 40, 3, 10
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(n_clusters, dim))
    X = np.concatenate([centres[c] + rng.normal(size=(n_per, dim)) for c in range(n_clusters)]).astype(np.float32)
    n = X.shape[0]
    Y = (np.random.default_rng(1).standard_normal((n, 2)) * 1.0).astype(np.float32)
    arrays["blobs.x"] = f32(X)
    arrays["blobs.y"] = f32(Y)
    case = {"n": n, "dim": dim, "clusters": n_clusters, "points_per_cluster": n_per,
            "x_recipe": "rng = np.random.default_rng(0); centres = rng.normal(scale=4, size=(3, 10)); "
                        "X = concat(centres[c] + rng.normal(size=(40, 10)) for c in 0..3), float32",
            "y_recipe": "np.random.default_rng(1).standard_normal((120, 2)) * 1.0, float32",
            "perplexities": [5, 30], "nn_k": {}, "conditional_perplexity_max_abs_log_err": {},
            "joint_sum": {}, "joint_nn_sum": {}, "joint_nn_nnz": {}}

    distances = pairwise_distances(X, metric="euclidean", squared=True)
    check(distances.dtype == np.float32, "pairwise_distances of float32 X should be float32")
    check(np.all(np.diag(distances) == 0), "diagonal should be 0")
    P_cond_exact = {}
    P_joint_condensed = {}
    P_nn = {}
    for perp in case["perplexities"]:
        # Conditional P, exact (square) input.
        C = tsne_utils._binary_search_perplexity(distances.astype(np.float32), float(perp), 0)
        C = np.asarray(C)
        check(C.shape == (n, n), "conditional shape")
        check(np.allclose(C.sum(axis=1), 1.0, atol=1e-9), "conditional rows sum to 1")
        check(np.all(np.diag(C) == 0), "conditional diagonal 0")
        errs = [abs(row_entropy_nats(C[i]) - np.log(perp)) for i in range(n)]
        case["conditional_perplexity_max_abs_log_err"][str(perp)] = float(max(errs))
        check(max(errs) <= 1e-4, f"perplexity {perp}: entropy off by {max(errs)}")
        P_cond_exact[perp] = C
        arrays[f"blobs.p{perp}.conditional"] = f32(C)

        # Joint P, exact.
        Pc = _t_sne._joint_probabilities(distances, float(perp), 0)
        Pfull = squareform(Pc)
        mine = (C + C.T)
        mine = np.maximum(squareform(mine, checks=False) / max(mine.sum(), MACHINE_EPSILON), MACHINE_EPSILON)
        check(np.allclose(mine, Pc, rtol=1e-12, atol=0), "joint P independent recomputation")
        check(np.allclose(Pfull, Pfull.T, rtol=0, atol=0), "joint symmetric")
        check(abs(Pfull.sum() - 1.0) < 1e-9, f"joint sums to 1 (got {Pfull.sum()})")
        case["joint_sum"][str(perp)] = float(Pfull.sum())
        P_joint_condensed[perp] = Pc
        arrays[f"blobs.p{perp}.joint"] = f32(Pfull)

        # Joint P, kNN (Barnes-Hut), exactly as TSNE._fit does.
        k = min(n - 1, int(3.0 * perp + 1))
        case["nn_k"][str(perp)] = k
        knn = NearestNeighbors(algorithm="auto", n_neighbors=k, metric="euclidean")
        knn.fit(X)
        distances_nn = knn.kneighbors_graph(mode="distance")
        nn_dist, nn_index = knn.kneighbors()  # same query (self excluded), sorted by distance
        check(nn_index.shape == (n, k), "kNN index shape")
        check(np.all(np.diff(nn_dist, axis=1) >= 0), "kNN sorted by distance")
        check(np.array_equal(distances_nn.indices.reshape(n, k), nn_index), "kneighbors_graph order")
        check(np.all(nn_index != np.arange(n)[:, None]), "kNN excludes self")
        distances_nn.data **= 2
        P = _t_sne._joint_probabilities_nn(distances_nn, float(perp), 0)
        check(scipy.sparse.issparse(P) and P.format == "csr", "P_nn should be CSR")
        Pd = P.toarray()
        check(np.array_equal(Pd, Pd.T), "joint_nn symmetric")
        check(abs(Pd.sum() - 1.0) < 1e-9, f"joint_nn sums to 1 (got {Pd.sum()})")
        # Independent: binary search on the kNN rows (distance order), scatter, symmetrise, normalise.
        Cn = np.asarray(tsne_utils._binary_search_perplexity(f32(nn_dist.astype(np.float64) ** 2), float(perp), 0))
        check(np.allclose(Cn.sum(axis=1), 1.0, atol=1e-9), "kNN conditional rows sum to 1")
        Cfull = np.zeros((n, n))
        Cfull[np.arange(n)[:, None], nn_index] = Cn
        mine = Cfull + Cfull.T
        mine /= mine.sum()
        check(np.allclose(mine, Pd, rtol=1e-5, atol=1e-12), "joint_nn independent recomputation")
        case["joint_nn_sum"][str(perp)] = float(Pd.sum())
        case["joint_nn_nnz"][str(perp)] = int(P.nnz)
        P_nn[perp] = P
        arrays[f"blobs.p{perp}.joint_nn"] = f32(Pd)
        arrays[f"blobs.p{perp}.nn_index"] = f32(nn_index)

    # KL divergence and gradient at Y, exact (perplexity 30 joint, condensed, float64).
    params = Y.ravel().copy()
    kl, grad = _t_sne._kl_divergence(params, P_joint_condensed[30], degrees_of_freedom=1, n_samples=n,
                                     n_components=2)
    grad = np.asarray(grad).reshape(n, 2)
    kl_ref, grad_ref = kl_and_grad_dense(Y, squareform(P_joint_condensed[30]))
    check(abs(kl - kl_ref) < 1e-6 * max(1.0, abs(kl_ref)), f"exact KL {kl} vs {kl_ref}")
    check(np.allclose(grad, grad_ref, rtol=1e-4, atol=1e-7), "exact KL gradient")
    arrays["blobs.kl_grad"] = f32(grad)
    case["kl_exact"] = float(kl)

    # Barnes-Hut KL and gradient (perplexity 30 sparse P) at angle 0.5 and 0.0.
    for angle, key in ((0.5, "bh05"), (0.0, "bh0")):
        kl_bh, grad_bh = _t_sne._kl_divergence_bh(params.copy(), P_nn[30], 1, n, 2, angle=angle, skip_num_points=0,
                                                  verbose=False, compute_error=True, num_threads=1)
        grad_bh = np.asarray(grad_bh).reshape(n, 2)
        arrays[f"blobs.kl_grad_{key}"] = f32(grad_bh)
        case[f"kl_{key}"] = float(kl_bh)
    kl_ref_nn, grad_ref_nn = kl_and_grad_dense(Y, P_nn[30].toarray())
    check(abs(case["kl_bh0"] - kl_ref_nn) < 1e-4 * max(1.0, abs(kl_ref_nn)),
          f"BH angle 0 KL {case['kl_bh0']} vs dense {kl_ref_nn}")
    check(np.allclose(arrays["blobs.kl_grad_bh0"], grad_ref_nn, rtol=1e-3, atol=1e-5), "BH angle-0 gradient")
    case["kl_nn_dense_float64"] = float(kl_ref_nn)
    case["kl_grad_bh05_max_abs_diff_vs_bh0"] = float(np.abs(arrays["blobs.kl_grad_bh05"] -
                                                            arrays["blobs.kl_grad_bh0"]).max())

    # Part 3: trustworthiness of Y as an embedding of X.
    for kk in (5, 10):
        t = float(trustworthiness(X, Y, n_neighbors=kk))
        t_ref = trustworthiness_ref(X, Y, kk)
        check(abs(t - t_ref) < 1e-12, f"trustworthiness k={kk}: {t} vs {t_ref}")
        case[f"trust{kk}"] = t
    return case


# ---------------------------------------------------------------------------------------------------------------
# Part 2: MNIST-2000
# ---------------------------------------------------------------------------------------------------------------

def load_mnist_test(data_dir, count):
    img = Image.open(os.path.join(data_dir, "mnist", "mnist_batch_20.png"))
    check(img.size == (784, 3000), f"unexpected sprite size {img.size}")
    a = np.asarray(img.convert("L"), dtype=np.uint8)
    rows = a[:count]
    with open(os.path.join(data_dir, "mnist", "mnist_labels.js")) as f:
        text = f.read()
    m = re.search(r"\[(.*)\]", text, re.S)
    labels = np.array([int(v) for v in m.group(1).split(",") if v.strip()], dtype=np.int64)
    check(labels.shape[0] == 70000, "expected 70,000 labels")
    return rows, labels[60000:60000 + count], img.mode


def run_tsne(Z, method, seed):
    t0 = time.perf_counter()
    tsne = TSNE(n_components=2, perplexity=30, init="pca", learning_rate="auto", max_iter=1000, random_state=seed,
                method=method, angle=0.5)
    E = tsne.fit_transform(Z)
    dt = time.perf_counter() - t0
    return E, tsne, dt


def make_mnist_case(data_dir, n=2000):
    raw, labels, mode = load_mnist_test(data_dir, n)
    pixels = (raw.astype(np.float32) / np.float32(255.0)).astype(np.float32)
    out = {"n": n, "source": "mnist/mnist_batch_20.png rows 0..1999 (test digits 0..1999), mode " + mode,
           "pixels": "uint8 / 255 as float32, 784 = 28x28 row-major",
           "labels_first5": [int(v) for v in labels[:5]],
           "label_counts": [int(c) for c in np.bincount(labels, minlength=10)],
           "digit0_pixel_sum_u8": int(raw[0].astype(np.int64).sum()),
           "digit0_pixel_sum": float(pixels[0].astype(np.float64).sum()),
           "all_pixel_sum_u8": int(raw.astype(np.int64).sum()),
           "pca": 'PCA(n_components=50, svd_solver="full").fit_transform(pixels), float32',
           "tsne": 'TSNE(n_components=2, perplexity=30, init="pca", learning_rate="auto", max_iter=1000, '
                   'random_state=0, method=..., angle=0.5).fit_transform(Z)',
           "trust_k": 10}
    t0 = time.perf_counter()
    pca = PCA(n_components=50, svd_solver="full")
    Z = pca.fit_transform(pixels).astype(np.float32)
    out["pca_seconds"] = time.perf_counter() - t0
    check(Z.dtype == np.float32 and Z.shape == (n, 50), "Z float32 [2000, 50]")
    out["pca_explained_variance_ratio_sum"] = float(pca.explained_variance_ratio_.sum())

    out["learning_rate_auto"] = float(max(n / 12.0 / 4.0, 50.0))
    for method, key in (("barnes_hut", "barnes_hut"), ("exact", "exact")):
        print(f"[mnist2000] t-SNE {method} ...", flush=True)
        E, tsne, dt = run_tsne(Z, method, 0)
        check(abs(float(tsne.learning_rate_) - out["learning_rate_auto"]) < 1e-9, "learning_rate_ auto")
        r = {"seconds": dt, "kl_divergence": float(tsne.kl_divergence_), "n_iter": int(tsne.n_iter_),
             "trust_pixels": float(trustworthiness(pixels, E, n_neighbors=10)),
             "trust_pca50": float(trustworthiness(Z, E, n_neighbors=10)),
             "embedding_std": [float(v) for v in E.astype(np.float64).std(axis=0)]}
        out[key] = r
        print(f"[mnist2000]   {method}: {dt:.1f}s KL={r['kl_divergence']:.4f} n_iter={r['n_iter']} "
              f"T(pixels)={r['trust_pixels']:.4f} T(Z)={r['trust_pca50']:.4f}", flush=True)

    # Context: a trivially bad embedding, and the plain 2-D PCA projection.
    bad = np.random.default_rng(0).standard_normal((n, 2))
    out["random_embedding"] = {"recipe": "np.random.default_rng(0).standard_normal((2000, 2))",
                               "trust_pixels": float(trustworthiness(pixels, bad, n_neighbors=10)),
                               "trust_pca50": float(trustworthiness(Z, bad, n_neighbors=10))}
    P2 = Z[:, :2]
    out["pca2_embedding"] = {"recipe": "first two columns of Z",
                             "trust_pixels": float(trustworthiness(pixels, P2, n_neighbors=10)),
                             "trust_pca50": float(trustworthiness(Z, P2, n_neighbors=10))}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="the data directory (normally ../shared/data)")
    ap.add_argument("--out", default=OUT_DIR)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    arrays = {}
    t0 = time.perf_counter()
    blobs = make_blobs_case(arrays)
    print(f"[blobs] done in {time.perf_counter() - t0:.2f}s")
    mnist = make_mnist_case(args.data)

    meta = {
        "generator": "scripts/make_tsne_fixtures.py",
        "sklearn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
        "safetensors": SAFETENSORS_VERSION, "python": platform.python_version(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "openmp_threads": int(_openmp_effective_n_threads())},
        "machine_epsilon": MACHINE_EPSILON,
        "arrays": {k: list(v.shape) for k, v in sorted(arrays.items())},
        "cases": {"blobs": blobs},
        "mnist2000": mnist,
    }
    st_path = os.path.join(args.out, "tsne.safetensors")
    save_file({k: arrays[k] for k in sorted(arrays)}, st_path)
    with open(os.path.join(args.out, "tsne.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=False)
        f.write("\n")

    print("\nSummary")
    for k in sorted(arrays):
        a = arrays[k]
        print(f"  {k:28s} {str(list(a.shape)):12s} sum={a.astype(np.float64).sum():.6g}")
    print(json.dumps({"blobs": blobs, "mnist2000": mnist}, indent=1))
    print(f"wrote {st_path} ({os.path.getsize(st_path)} bytes)")


if __name__ == "__main__":
    main()
