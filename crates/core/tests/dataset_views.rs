//! The dataset views (crates/core/src/vis/{patches,landscape}.rs) against independent
//! computations: the top patches against a brute-force search, every receptive field against the
//! input pixels a unit's gradient reaches, the loss surface's points against direct evaluations
//! of the loss, and the filter normalization against its definition.

use burn::tensor::{Tensor, TensorData};
use convlens_core::backend::{self, Backend};
use convlens_core::grad::{self, Objective, ReluRule};
use convlens_core::jobs::{Budget, DatasetProgress, Inputs};
use convlens_core::rng::SplitMix64;
use convlens_core::session::Session;
use convlens_core::vis::landscape::{self, Landscape};
use convlens_core::vis::patches;
use convlens_core::{Net, NetSpec, data};
use serde_json::json;
use std::path::Path;

fn www() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www")
}

mod common;
use common::mnist_net as mnist;

fn session(net: Net, fused: bool) -> Session {
    let s = Session::new(Backend::Cpu, backend::cpu());
    let s = if fused { s } else { s.without_fused_path() };
    s.load(net);
    let dir = www().join("data");
    let (train, test) = data::layout("mnist5k", None).unwrap().load(|f| Ok(std::fs::read(dir.join(f)).unwrap())).unwrap();
    s.set_data("mnist5k", train, test);
    s
}

fn clock() -> f64 {
    0.0
}

#[test]
fn top_patches_equal_a_brute_force_search() {
    pollster::block_on(async {
        let net = mnist();
        // Every test image through Burn, one at a time: each channel's maximum and its first
        // position in row-major order.
        let s0 = session(net.clone(), false);
        let n = 500;
        let images: Vec<Vec<f32>> = (0..n).map(|i| s0.example("test", i).unwrap()).collect();
        let acts: Vec<Vec<Vec<f32>>> = {
            let mut v = vec![];
            for im in &images {
                let x = net.input_tensor(im).unwrap();
                let outs = net.forward_all(x);
                let mut per = vec![];
                for o in outs {
                    per.push(convlens_core::read(o.flatten::<1>(0, 3)).await.unwrap());
                }
                v.push(per);
            }
            v
        };
        for layer in [1, 2, 3, 4, 5] {
            let [c, h, w] = net.spec.layers[layer].out_shape;
            for fused in [true, false] {
                let s = session(net.clone(), fused);
                let settings = json!({"layer": layer, "split": "test", "images": n, "top": 9});
                let p = s.run_job("patches", Inputs::default(), &settings, Budget::Items(37), &clock, &mut |_| {}).await.unwrap();
                let Some(DatasetProgress::Patches(pp)) = p.dataset else { panic!("no patches") };
                assert_eq!(p.step, n);
                for ch in 0..c {
                    let mut all: Vec<(f32, usize)> = (0..n)
                        .map(|i| {
                            let plane = &acts[i][layer][ch * h * w..(ch + 1) * h * w];
                            (plane.iter().copied().fold(f32::NEG_INFINITY, f32::max), i)
                        })
                        .collect();
                    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for r in 0..9 {
                        let at = ch * 9 + r;
                        let (v, i) = all[r];
                        let got = pp.values[at];
                        assert!((got - v).abs() <= 1e-4 * v.abs().max(1.0), "layer {layer} ch {ch} rank {r}: {got} vs {v}");
                        // The same image unless another one ties within rounding.
                        let tie = all.iter().filter(|a| (a.0 - v).abs() <= 1e-4 * v.abs().max(1.0)).count() > 1;
                        if !tie {
                            assert_eq!(pp.images[at] as usize, i, "layer {layer} ch {ch} rank {r} (fused {fused})");
                        }
                        // The unit named is where that image's channel peaks.
                        let img = pp.images[at] as usize;
                        let (y, x) = (pp.ys[at] as usize, pp.xs[at] as usize);
                        let there = acts[img][layer][ch * h * w + y * w + x];
                        assert!(
                            (there - got).abs() <= 1e-4 * got.abs().max(1.0),
                            "layer {layer} ch {ch}: the unit ({y},{x}) holds {there}, not {got}"
                        );
                    }
                }
                // Split across 2 and 3 engines (the page's worker pool), in other chunks: each part
                // searches its own run of images; the tops put together are the whole's bit for bit.
                for parts in [2, 3] {
                    let (mut values, mut imgs, mut ys, mut xs) = (vec![], vec![], vec![], vec![]);
                    let mut next = 0;
                    for k in 0..parts {
                        let inputs = Inputs { part: Some((k, parts)), ..Default::default() };
                        let q = s.run_job("patches", inputs, &settings, Budget::Items(1 + k), &clock, &mut |_| {}).await.unwrap();
                        let Some(DatasetProgress::Patches(part)) = q.dataset else { panic!("no patches") };
                        let (a, b) = part.part.expect("a part says its images");
                        assert_eq!((a, q.step, q.total), (next, b - a, b - a), "part {k} of {parts}");
                        assert!(a % patches::BLOCK == 0, "parts of whole blocks");
                        next = b;
                        values.extend(part.values);
                        imgs.extend(part.images);
                        ys.extend(part.ys);
                        xs.extend(part.xs);
                    }
                    assert_eq!(next, n, "the parts cover every image");
                    assert!(patches::merge_lists(c, 9, &values[1..], &imgs, &ys, &xs).is_err(), "a list cut short is refused");
                    let (v, i, y, x) = patches::merge_lists(c, 9, &values, &imgs, &ys, &xs).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&v), bits(&pp.values), "layer {layer}, {parts} parts (fused {fused})");
                    assert_eq!((i, y, x), (pp.images.clone(), pp.ys.clone(), pp.xs.clone()), "layer {layer}, {parts} parts");
                }
                assert_eq!(pp.part, None, "a whole search is no part");
                // The crops are the images' pixels in the unit's field, zero outside.
                let (crops, shape) = s.patch_crops("test", layer, &pp.images[..9], &pp.ys[..9], &pp.xs[..9]).unwrap();
                let field = patches::receptive_fields(&net.spec)[layer];
                let per = shape.iter().product::<usize>();
                for r in 0..9 {
                    let (y0, x0, fh, fw) = field.patch(pp.ys[r] as usize, pp.xs[r] as usize, 24, 24);
                    let img = &images[pp.images[r] as usize];
                    for dy in 0..fh {
                        for dx in 0..fw {
                            let (sy, sx) = (y0 + dy as i64, x0 + dx as i64);
                            let want =
                                if (0..24).contains(&sy) && (0..24).contains(&sx) { img[sy as usize * 24 + sx as usize] } else { 0.0 };
                            assert_eq!(crops[r * per + dy * fw + dx], want);
                        }
                    }
                }
            }
        }
    });
}

/// A graph net with every way a field grows: stride, padding, 'same' padding with an odd total,
/// max and average pooling with padding, a depthwise conv, two branches added and concatenated.
const GRAPH: &str = r#"{"layers":[
  {"type":"input","width":29,"height":29,"depth":2},
  {"type":"conv","name":"a","size":3,"filters":4,"stride":2,"pad":1},
  {"type":"conv","name":"b","size":3,"filters":4,"padding":"same","stride":2},
  {"type":"pool","name":"p","size":3,"stride":1,"pad":1,"mode":"avg"},
  {"type":"conv","name":"dw","size":3,"filters":4,"groups":4,"pad":1},
  {"type":"add","name":"sum","inputs":["p","dw"]},
  {"type":"conv","name":"c","size":1,"filters":3,"inputs":["sum"]},
  {"type":"concat","name":"cat","inputs":["c","sum"]},
  {"type":"conv","name":"d","size":5,"filters":2,"stride":3},
  {"type":"globalpool","name":"g"},
  {"type":"fc","name":"scores","units":3}]}"#;

#[test]
fn every_receptive_field_holds_exactly_the_pixels_its_gradient_reaches() {
    pollster::block_on(async {
        for (name, text, tight) in
            [("graph", GRAPH.to_string(), true), ("mnist", std::fs::read_to_string(www().join("nets/mnist.json")).unwrap(), false)]
        {
            let spec = NetSpec::parse(&text).unwrap();
            let net = Net::init(spec.clone(), 5, &backend::cpu());
            let fields = patches::receptive_fields(&spec);
            let [d, h, w] = spec.input_shape();
            let mut rng = SplitMix64(9);
            let image: Vec<f32> = (0..d * h * w).map(|_| rng.uniform() as f32 + 0.1).collect();
            let x = Tensor::<4>::from_data(TensorData::new(image.clone(), [1, d, h, w]), &net.device);
            let outs = net.forward_all(x);
            let mut checked = 0;
            for l in &spec.layers[1..] {
                let [c, oh, ow] = l.out_shape;
                if l.kind.type_name() == "softmax" {
                    continue;
                }
                for (y, x) in [(0, 0), (oh / 2, ow / 2), (oh - 1, ow - 1), (oh / 3, ow - 1)] {
                    let index = (c - 1) * oh * ow + y * ow + x;
                    let obj = Objective::Neuron { layer: l.index, index };
                    let (_, g) = grad::input_grad(&net, &obj, &outs, ReluRule::Gradient).unwrap();
                    let g = convlens_core::read(g).await.unwrap();
                    let (y0, x0, fh, fw) = fields[l.index].rect(y, x);
                    let (mut lo_y, mut hi_y, mut lo_x, mut hi_x) = (i64::MAX, i64::MIN, i64::MAX, i64::MIN);
                    for ch in 0..d {
                        for py in 0..h {
                            for px in 0..w {
                                if g[(ch * h + py) * w + px] != 0.0 {
                                    let (py, px) = (py as i64, px as i64);
                                    assert!(
                                        py >= y0 && py < y0 + fh as i64 && px >= x0 && px < x0 + fw as i64,
                                        "{name} layer {} ({}) unit ({y},{x}): pixel ({py},{px}) has a gradient outside the field {y0}+{fh}, {x0}+{fw}",
                                        l.index,
                                        l.name
                                    );
                                    lo_y = lo_y.min(py);
                                    hi_y = hi_y.max(py);
                                    lo_x = lo_x.min(px);
                                    hi_x = hi_x.max(px);
                                }
                            }
                        }
                    }
                    if tight {
                        // Without ReLUs or max pooling every pixel in the field (inside the image) counts.
                        let clip = |a: i64, n: usize| a.clamp(0, n as i64 - 1);
                        assert_eq!(
                            (lo_y, hi_y, lo_x, hi_x),
                            (clip(y0, h), clip(y0 + fh as i64 - 1, h), clip(x0, w), clip(x0 + fw as i64 - 1, w)),
                            "{name} layer {} ({}) unit ({y},{x}): the gradient's extent is not the field",
                            l.index,
                            l.name
                        );
                    }
                    checked += 1;
                }
            }
            assert!(checked >= 20, "{name}: {checked} units checked");
        }
    });
}

#[test]
fn loss_surface_points_equal_direct_evaluations() {
    pollster::block_on(async {
        let net = mnist();
        let s = session(net.clone(), true);
        let dir = www().join("data");
        let (_, test) = data::layout("mnist5k", None).unwrap().load(|f| Ok(std::fs::read(dir.join(f)).unwrap())).unwrap();
        let trained = net.read_weights().await.unwrap();
        let idx: Vec<usize> = (0..64).collect();
        let (x, labels) = test.batch(&idx, net.spec.input_shape(), None);
        // Directly: the network with those weights through Burn, then the mean cross-entropy.
        let direct = |w: landscape::Weights| {
            let moved = Net::with_weights(net.spec.clone(), w, &backend::cpu());
            let x = x.clone();
            let labels = labels.clone();
            async move {
                let p = convlens_core::train::probabilities(&moved, &x, 64).await.unwrap();
                let loss = p.chunks(10).zip(&labels).map(|(row, &y)| -(row[y] as f64).ln()).sum::<f64>() / 64.0;
                let acc = p.chunks(10).zip(&labels).filter(|(row, y)| convlens_core::train::argmax(row) == **y).count() as f64 / 64.0;
                (loss, acc)
            }
        };
        for bad in [(0, 0), (3, 3), (0, 65)] {
            let inputs = Inputs { part: Some(bad), ..Default::default() };
            let e = s.start_job("landscape", inputs, &json!({})).await.expect_err("refused");
            assert!(e.to_string().contains(&format!("part {} of {}", bad.0, bad.1)), "{e}");
        }
        for kind in ["plane", "line"] {
            let settings = json!({"kind": kind, "images": 64, "points": 9, "span": 0.5, "from": -0.5, "to": 1.5, "initSeed": 7, "seed": 3});
            let p = s.run_job("landscape", Inputs::default(), &settings, Budget::Items(5), &clock, &mut |_| {}).await.unwrap();
            let Some(DatasetProgress::Landscape(lp)) = p.dataset else { panic!("no landscape") };
            let v = convlens_core::jobs::schema("landscape").unwrap().resolve(&settings, false).unwrap();
            let l = Landscape::new(&net, trained.clone(), &test, landscape::Settings::from_values(&v).unwrap(), (0, 1)).unwrap();
            assert_eq!(lp.loss.len(), l.total());
            assert_eq!(lp.part, None);
            // Split across three engines (the page's worker pool): each point evaluated by exactly
            // one part, and the parts together equal the whole bit for bit.
            let mut merged = vec![f32::NAN; lp.loss.len()];
            let mut coarse = 0;
            for k in 0..3 {
                let inputs = Inputs { part: Some((k, 3)), ..Default::default() };
                let q = s.run_job("landscape", inputs, &settings, Budget::Items(5), &clock, &mut |_| {}).await.unwrap();
                let Some(DatasetProgress::Landscape(part)) = q.dataset else { panic!("no landscape") };
                assert_eq!(part.part, Some((k, 3)));
                assert!(part.coarse_done);
                coarse += part.coarse;
                assert_eq!(q.total, (lp.loss.len() + 2 - k) / 3, "part {k}'s share");
                for (i, &v) in part.loss.iter().enumerate() {
                    if v.is_nan() {
                        continue;
                    }
                    assert!(merged[i].is_nan(), "{kind} point {i} evaluated twice");
                    merged[i] = v;
                }
            }
            assert_eq!(coarse, lp.coarse);
            assert_eq!(merged.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), lp.loss.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
            for k in 0..l.total() {
                let (loss, acc) = direct(l.weights_at(k)).await;
                assert!((lp.loss[k] as f64 - loss).abs() < 1e-4 * loss.max(1.0), "{kind} point {k}: {} vs direct {loss}", lp.loss[k]);
                assert!((lp.accuracy[k] as f64 - acc).abs() < 1e-9, "{kind} point {k}: accuracy {} vs {acc}", lp.accuracy[k]);
            }
            if kind == "line" {
                // α = 0 is the seed-7 initialization, α = 1 the trained net.
                let init = Net::init(net.spec.clone(), 7, &backend::cpu()).read_weights().await.unwrap();
                let a0 = lp.axis.iter().position(|a| a.abs() < 1e-9).unwrap();
                let a1 = lp.axis.iter().position(|a| (a - 1.0).abs() < 1e-9).unwrap();
                assert!((lp.loss[a0] as f64 - direct(init).await.0).abs() < 1e-4);
                assert!((lp.loss[a1] as f64 - direct(trained.clone()).await.0).abs() < 1e-4);
                assert!(lp.loss[a1] < lp.loss[a0], "training lowered the loss");
            } else {
                // The centre is the trained net.
                let c = lp.loss.len() / 2;
                assert!((lp.loss[c] as f64 - direct(trained.clone()).await.0).abs() < 1e-4);
            }
        }
    });
}

#[test]
fn filter_normalization_follows_its_definition() {
    pollster::block_on(async {
        let net = mnist();
        let w = net.read_weights().await.unwrap();
        let raw = landscape::random_direction(&w, &mut SplitMix64(11));
        let mut d = raw.clone();
        landscape::filter_normalize(&net.spec, &mut d, &w);
        let mut filters = 0;
        for (l, ((dl, wl), rl)) in net.spec.layers.iter().zip(d.iter().zip(&w).zip(&raw)) {
            for (p, ((dp, wp), rp)) in l.params().iter().zip(dl.iter().zip(wl).zip(rl)) {
                if p.shape.len() == 1 {
                    assert!(dp.iter().all(|&v| v == 0.0), "{} is not zero", p.name);
                    continue;
                }
                // Filter f: the slice [f, ...] of a (out, in, kh, kw) conv weight or an (out, in) fc weight.
                let out = p.shape[0];
                let per = dp.len() / out;
                for f in 0..out {
                    let (df, wf, rf) = (&dp[f * per..(f + 1) * per], &wp[f * per..(f + 1) * per], &rp[f * per..(f + 1) * per]);
                    let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
                    assert!(
                        (norm(df) - norm(wf)).abs() < 1e-5 * norm(wf).max(1e-3),
                        "{} filter {f}: |d| {} vs |w| {}",
                        p.name,
                        norm(df),
                        norm(wf)
                    );
                    // The same direction as the raw draw.
                    let dot: f64 = df.iter().zip(rf).map(|(a, b)| *a as f64 * *b as f64).sum();
                    assert!((dot / (norm(df) * norm(rf)) - 1.0).abs() < 1e-6, "{} filter {f} turned", p.name);
                    filters += 1;
                }
            }
        }
        assert_eq!(filters, 8 + 16 + 10);
    });
}

#[test]
fn patch_maps_are_each_units_guided_and_deconvnet_gradient_cropped() {
    pollster::block_on(async {
        let net = mnist();
        let s = session(net.clone(), true);
        let settings = json!({"layer": 3, "split": "test", "images": 60, "top": 2});
        let p = s.run_job("patches", Inputs::default(), &settings, Budget::Items(60), &clock, &mut |_| {}).await.unwrap();
        let Some(DatasetProgress::Patches(pp)) = p.dataset else { panic!("no patches") };
        let channels: Vec<i32> = (0..pp.images.len()).map(|i| (i / 2) as i32).collect();
        let field = patches::receptive_fields(&net.spec)[3];
        let [_, oh, ow] = net.spec.layers[3].out_shape;
        for rule in ["guided", "deconvnet"] {
            let (maps, shape) = s.patch_maps("test", 3, &channels, &pp.images, &pp.ys, &pp.xs, rule).await.unwrap();
            let per = shape.iter().product::<usize>();
            for i in [0, 5, 17, 31] {
                let (img, y, x) = (pp.images[i] as usize, pp.ys[i] as usize, pp.xs[i] as usize);
                let image = s.example("test", img).unwrap();
                let obj = Objective::Neuron { layer: 3, index: (channels[i] as usize * oh + y) * ow + x };
                let (a, _) = s.attribute(&image, &obj, &json!({"method": rule}), None).await.unwrap();
                let (y0, x0, h, w) = field.patch(y, x, 24, 24);
                let want = patches::crop(&a.map, [1, 24, 24], y0, x0, h, w);
                let got = &maps[i * per..(i + 1) * per];
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
                let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err <= 1e-5 * scale, "{rule} hit {i}: {err} (of {scale})");
                // The unit reads only its field: the map outside the crop is zero.
                let inside: f32 = want.iter().map(|v| v.abs()).sum();
                let total: f32 = a.map.iter().map(|v| v.abs()).sum();
                assert!((inside - total).abs() <= 1e-5 * total.max(1e-6), "{rule} hit {i}: gradient outside the field");
            }
        }
        assert!(s.patch_maps("test", 3, &channels, &pp.images, &pp.ys, &pp.xs, "backwards").await.is_err());
    });
}

/// The seeds experiment's nets, each trained again here step by step through Burn from its
/// definition (the widened spec, `Net::init` with its seed, the seed's data order, the learning
/// rate falling linearly per chunk of 10 steps) and measured directly: the job's losses equal
/// those, on the fused path and through Burn; the spread is the losses' statistics; the widths
/// scale every hidden layer; a diverging rate marks nets diverged and the experiment still ends.
#[test]
fn seeds_experiment_nets_equal_a_direct_training() {
    use convlens_core::data::Sampler;
    use convlens_core::train::{self, Optimizer, TrainConfig};
    use convlens_core::vis::seeds;
    pollster::block_on(async {
        let net = mnist();
        let dir = www().join("data");
        let (train_set, test) = data::layout("mnist5k", None).unwrap().load(|f| Ok(std::fs::read(dir.join(f)).unwrap())).unwrap();
        let (steps, images, lr) = (30usize, 200usize, 0.02);
        let settings = json!({"kind": "seeds", "widths": "1, 0.5", "seeds": 2, "steps": steps, "images": images, "learningRate": lr});

        // Widths: conv1 8 -> 4 filters, conv2 16 -> 8, the score layer keeps its 10 units.
        let half = seeds::widen(&net.spec, 0.5).unwrap();
        let filters: Vec<usize> = half.layers.iter().map(|l| l.out_shape[0]).collect();
        assert_eq!(filters, vec![1, 4, 4, 8, 8, 10, 10]);
        assert_eq!(seeds::widen(&net.spec, 0.01).unwrap().layers[1].out_shape[0], 1, "at least one filter");

        // The reference: width w, seed s.
        let reference = |w: f64, seed: u64| {
            let (spec, train_set, test) = (seeds::widen(&net.spec, w).unwrap(), &train_set, &test);
            async move {
                let mut n = Net::init(spec, seed, &backend::cpu());
                let base = TrainConfig { learning_rate: lr, seed, ..TrainConfig::default() };
                let mut opt = Optimizer::new(&n, base);
                let mut sampler = Sampler::new(train_set.len(), seed);
                for chunk in 0..steps / 10 {
                    opt.set_config(TrainConfig { learning_rate: lr * (1.0 - (chunk * 10) as f64 / steps as f64), ..base });
                    let batches: Vec<_> = (0..10)
                        .map(|_| {
                            let idx = sampler.next(20);
                            train_set.batch(&idx, n.spec.input_shape(), Some(&mut sampler.rng))
                        })
                        .collect();
                    train::train_chunk(&mut n, &mut opt, &batches, &clock).await.unwrap();
                }
                let idx: Vec<usize> = (0..images).collect();
                let (x, labels) = test.batch(&idx, n.spec.input_shape(), None);
                let p = train::probabilities(&n, &x, images).await.unwrap();
                p.chunks(10).zip(&labels).map(|(row, &y)| -(row[y] as f64).ln()).sum::<f64>() / images as f64
            }
        };
        let mut want = vec![];
        for w in [0.5, 1.0] {
            for seed in [1, 2] {
                want.push(reference(w, seed).await);
            }
        }
        for fused in [true, false] {
            let s = session(net.clone(), fused);
            let p = s.run_job("landscape", Inputs::default(), &settings, Budget::Items(3), &clock, &mut |_| {}).await.unwrap();
            assert!(p.done);
            assert_eq!((p.step, p.total), (4 * steps, 4 * steps));
            let Some(DatasetProgress::Seeds(sp)) = p.dataset else { panic!("no seeds progress") };
            assert_eq!(sp.widths, vec![0.5, 1.0], "sorted");
            assert_eq!(sp.params, vec![half.param_count(), net.spec.param_count()]);
            assert_eq!(sp.images, images);
            assert!(sp.outcome.iter().all(|&o| o == "done"), "{:?}", sp.outcome);
            // The fused path's float sums differ from Burn's in the last bits; 30 steps keep it small.
            let tol = if fused { 2e-3 } else { 1e-5 };
            for (k, (&got, &w)) in sp.loss.iter().zip(&want).enumerate() {
                assert!((got as f64 - w).abs() < tol * w.max(1.0), "fused {fused}, net {k}: {got} vs direct {w}");
            }
            for (i, row) in sp.spread.iter().enumerate() {
                let (a, b) = (sp.loss[2 * i] as f64, sp.loss[2 * i + 1] as f64);
                let mean = (a + b) / 2.0;
                assert!((row[0] - mean).abs() < 1e-12 && (row[1] - (a - b).abs() / 2.0).abs() < 1e-9, "{row:?}");
                assert_eq!((row[2], row[3]), (a.min(b), a.max(b)));
            }
            assert!(sp.loss.iter().all(|&l| l < 2.3), "30 steps already beat chance: {:?}", sp.loss);
        }

        // A rate that diverges: every net is marked and the experiment ends.
        let s = session(net.clone(), true);
        let wild = json!({"kind": "seeds", "widths": "1", "seeds": 2, "steps": 20, "images": 50, "learningRate": 1e4});
        let p = s.run_job("landscape", Inputs::default(), &wild, Budget::Items(5), &clock, &mut |_| {}).await.unwrap();
        let Some(DatasetProgress::Seeds(sp)) = p.dataset else { panic!("no seeds progress") };
        assert!(p.done && sp.outcome.iter().all(|&o| o == "diverged"), "{:?} {:?}", sp.outcome, sp.loss);
        assert!(sp.spread[0][0].is_nan());

        // Bad settings and nets get a message naming the problem.
        for (bad, needle) in [("0.25, x", "'x' is not a number"), ("100", "out of range"), ("", "give 1 to 8 widths")] {
            let e = s
                .start_job("landscape", Inputs::default(), &json!({"kind": "seeds", "widths": bad}))
                .await
                .err()
                .unwrap_or_else(|| panic!("widths '{bad}' accepted"));
            assert!(e.to_string().contains(needle), "{e}");
        }
        let grouped = NetSpec::parse(
            r#"{"layers":[{"type":"input","width":8,"height":8,"depth":2},{"type":"conv","size":3,"filters":4,"groups":2},{"type":"fc","units":3},{"type":"softmax"}]}"#,
        )
        .unwrap();
        assert!(seeds::widen(&grouped, 2.0).unwrap_err().to_string().contains("grouped convolution"));
    });
}
