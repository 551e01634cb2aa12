//! Every attribution method against Captum 0.9 / PyTorch 2.15 (fixtures made by
//! scripts/make_attribution_fixtures.py from the same weights and pixels), on both gradient
//! paths: the fused CPU path and Burn's per-layer VJPs (which also run on WebGPU; the browser
//! test checks that backend). The error of a map is max|ours - reference| / max|reference|.

use convlens_core::cpu_train::CpuTrainer;
use convlens_core::grad::ReluRule;
use convlens_core::train::TrainConfig;
use convlens_core::vis::attribution::{self, Attributor, Method, Quadrature, Settings};
use convlens_core::vis::occlusion::{self, Fill, Occlusion};
use convlens_core::{Error, Net, NetSpec, Objective, tfjs};
use safetensors::SafeTensors;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

mod common;
use common::data_dir;

struct Fixture {
    meta: Value,
    arrays: BTreeMap<String, Vec<f32>>,
    net: Net,
}

fn load(name: &str) -> Option<Fixture> {
    let dir = root().join("tests/fixtures/attribution");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let arrays = st
        .names()
        .into_iter()
        .map(|k| (k.to_string(), st.tensor(k).unwrap().data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
        .collect();
    let device = convlens_core::backend::cpu();
    let net = if meta["data_relative"] == true {
        // Tiny VGG: through the TF.js loader, from the data directory.
        let base = data_dir().join("tiny-vgg");
        let json = std::fs::read_to_string(base.join("model.json")).ok()?;
        let m = tfjs::load(&json, &mut |p| std::fs::read(base.join(p)).map_err(|e| Error::Weights(e.to_string()))).unwrap();
        Net::with_weights(m.spec, m.weights, &device)
    } else {
        let spec = NetSpec::parse(&std::fs::read_to_string(root().join(meta["spec"].as_str().unwrap())).unwrap()).unwrap();
        let w = convlens_core::weights::load(&spec, &std::fs::read(root().join(meta["weights"].as_str().unwrap())).unwrap()).unwrap();
        Net::with_weights(spec, w, &device)
    };
    Some(Fixture { meta, arrays, net })
}

fn objective(t: &Value) -> Objective {
    let n = |k: &str| t[k].as_u64().unwrap() as usize;
    match t["kind"].as_str().unwrap() {
        "class" => Objective::Class(n("class")),
        "prob" => Objective::Prob(n("class")),
        "neuron" => Objective::Neuron { layer: n("layer"), index: n("index") },
        "channel" => Objective::Channel { layer: n("layer"), channel: n("channel") },
        k => panic!("unknown target {k}"),
    }
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
    got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max) / scale
}

/// Runs every case of one fixture on one path; returns the worst error per method.
fn run(fx: &Fixture, fused: bool) -> BTreeMap<String, (f64, String)> {
    let net = &fx.net;
    let w = pollster::block_on(net.read_weights()).unwrap();
    let mut trainer = CpuTrainer::new(net, w, TrainConfig::default());
    let mut worst: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for case in fx.meta["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap().to_string();
        let image = &fx.arrays[&format!("image{}", case["image"])];
        let arr = |k: &str| &fx.arrays[case["arrays"][k].as_str().unwrap()];
        let method = case["method"].as_str().unwrap();
        let p = &case["params"];
        let mut at = Attributor::new(net, if fused { Some(&mut trainer) } else { None });
        let mut record = |name: &str, err: f64| {
            let e = worst.entry(name.to_string()).or_insert((0.0, String::new()));
            if err >= e.0 {
                *e = (err, id.clone());
            }
        };
        if method == "occlusion" {
            let t = objective(&case["target"]);
            let Objective::Prob(class) = t else { panic!("occlusion tracks a probability") };
            let fill = match &p["fill"] {
                Value::String(s) if s == "mean" => {
                    Fill::PerChannel(p["mean"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
                }
                v => Fill::Constant(v.as_f64().unwrap() as f32),
            };
            let settings = occlusion::Settings {
                window: p["k"].as_u64().unwrap() as usize,
                stride: p["stride"].as_u64().unwrap() as usize,
                fill,
                class,
                logit: false,
            };
            let mut occ = pollster::block_on(Occlusion::new(&mut at, image, settings, (0, 1))).unwrap();
            while !pollster::block_on(occ.run(&mut at, 7)).unwrap() {}
            let base = case["base_prob"].as_f64().unwrap();
            assert!((occ.base as f64 - base).abs() < 1e-5, "{id}: base {} vs {base}", occ.base);
            let grid = arr("grid");
            assert_eq!(occ.grid.len(), grid.len(), "{id}: positions");
            record("occlusion (grid)", rel_err(&occ.grid, grid));
            let map = occ.attribution();
            let want = arr("attr");
            for plane in want.chunks(map.len()) {
                record("occlusion (Captum map)", rel_err(&map, plane));
            }
            continue;
        }
        let method = match method {
            "saliency" => Method::Gradient,
            "deconvnet" => Method::Deconvnet,
            "guided" => Method::Guided,
            "input_x_gradient" => Method::GradientXInput,
            "smoothgrad" => Method::SmoothGrad,
            "integrated_gradients" => Method::IntegratedGradients,
            "grad_cam" => Method::GradCam,
            m => panic!("unknown method {m}"),
        };
        let mut s = Settings { method, ..Settings::default() };
        match s.method {
            Method::SmoothGrad => s.noise_values = Some(arr("noise").clone()),
            Method::IntegratedGradients => {
                s.baseline = vec![p["baseline"].as_f64().unwrap() as f32];
                s.steps = p["steps"].as_u64().unwrap() as usize;
                s.quadrature = Quadrature::parse(p["rule"].as_str().unwrap()).unwrap();
                let (alphas, weights) = s.quadrature.points(s.steps);
                record("integrated-gradients (alphas)", rel_err(&alphas.iter().map(|&a| a as f32).collect::<Vec<_>>(), arr("alphas")));
                record("integrated-gradients (weights)", rel_err(&weights.iter().map(|&a| a as f32).collect::<Vec<_>>(), arr("weights")));
            }
            Method::GradCam => {
                s.layer = Some(p["layer"].as_u64().unwrap() as usize);
                s.relu = p["relu"].as_bool().unwrap();
            }
            _ => {}
        }
        let a = pollster::block_on(attribution::attribute(&mut at, image, &objective(&case["target"]), &s)).unwrap();
        let value = case["value"].as_f64().unwrap();
        assert!((a.value as f64 - value).abs() <= 1e-4 * value.abs().max(1.0), "{id}: value {} vs {value}", a.value);
        if s.method == Method::GradCam {
            record("grad-cam (layer)", rel_err(&a.layer_map.as_ref().unwrap().0, arr("attr")));
            record("grad-cam (upsampled)", rel_err(&a.map, arr("upsampled")));
        } else {
            record(s.method.name(), rel_err(&a.map, arr("attr")));
            if let (Some(d), Some(want)) = (a.delta, case["delta"].as_f64()) {
                // The convergence delta is a small difference of large sums: compare to the target's scale.
                record("integrated-gradients (delta)", (d as f64 - want).abs() / value.abs().max(1.0));
            }
        }
    }
    worst
}

/// 1e-4 relative, except integrated gradients' map: its 50 path points cross thousands of
/// max-pool windows, and where two inputs of a window are closer than float32's rounding of a
/// convolution (CIFAR-10 image 1 at alpha 0.057: 0.39578055 vs 0.39578081 in float64, a gap of
/// 2.5e-7 against a rounding error of 5e-7), float32 may route that step's gradient to the other
/// input. One such flip among 50 steps moves the map by up to ~3e-3 of its maximum.
fn tolerance(method: &str) -> f64 {
    if method == "integrated-gradients" { 5e-3 } else { 1e-4 }
}

fn check(name: &str) {
    let fx = load(name).unwrap_or_else(|| panic!("{name}: its weights are not in the data directory (set CONVLENS_DATA_DIR)"));
    for fused in [true, false] {
        let path = if fused { "fused CPU" } else { "Burn" };
        let worst = run(&fx, fused);
        println!("{name}, {path} path: largest error vs Captum per method");
        for (method, (err, id)) in &worst {
            println!("  {method:32} {err:.2e}  ({id})");
        }
        for (method, (err, id)) in &worst {
            assert!(*err <= tolerance(method), "{name} {path}: {method} off by {err:.2e} relative in {id}");
        }
    }
}

#[test]
fn mnist_matches_captum() {
    check("mnist");
}

#[test]
fn cifar10_matches_captum() {
    check("cifar10");
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn tiny_vgg_matches_captum() {
    check("tiny_vgg");
}

#[test]
fn gauss_legendre_integrates_polynomials_exactly() {
    for n in [1, 2, 5, 50] {
        let (x, w) = attribution::gauss_legendre(n);
        for k in 0..(2 * n).min(12) {
            let got: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(k as i32)).sum();
            assert!((got - 1.0 / (k + 1) as f64).abs() < 1e-12, "n {n}, x^{k}: {got}");
        }
        assert!(x.windows(2).all(|p| p[0] < p[1]));
    }
}

#[test]
fn blur_fill_keeps_a_flat_image_and_smooths_an_edge() {
    let flat = vec![0.3f32; 36];
    assert!(occlusion::gaussian_blur(&flat, 6, 6, 2.0).iter().all(|v| (v - 0.3).abs() < 1e-6));
    let edge: Vec<f32> = (0..36).map(|i| if i % 6 < 3 { 0.0 } else { 1.0 }).collect();
    let b = occlusion::gaussian_blur(&edge, 6, 6, 1.0);
    assert!(b[2] > 0.1 && b[3] < 0.9 && (b[2] + b[3] - 1.0).abs() < 1e-5);
    assert_eq!(Fill::parse("mean:0.1,0.2,0.3", 8).unwrap(), Fill::PerChannel(vec![0.1, 0.2, 0.3]));
    assert_eq!(Fill::parse("blur", 8).unwrap(), Fill::Blur(4.0));
    assert!(Fill::parse("purple", 8).unwrap_err().to_string().contains("unknown fill 'purple'"));
}

#[test]
fn bad_settings_get_messages() {
    let fx = load("mnist").unwrap();
    let image = &fx.arrays["image0"];
    let mut at = Attributor::new(&fx.net, None);
    let err = |s: Settings, o: Objective| {
        pollster::block_on(attribution::attribute(&mut Attributor::new(&fx.net, None), image, &o, &s)).unwrap_err().to_string()
    };
    let cam = Settings { method: Method::GradCam, layer: Some(5), ..Settings::default() };
    assert_eq!(
        err(cam, Objective::Class(1)),
        "input: Grad-CAM needs a layer between the input and the target's layer 5 (fc1); layer 5 is not"
    );
    let ig = Settings { method: Method::IntegratedGradients, baseline: vec![0.0; 3], ..Settings::default() };
    assert_eq!(err(ig, Objective::Class(1)), "input: the baseline has 3 values; expected 1 or the image's 576");
    assert_eq!(err(Settings::default(), Objective::Prob(10)), "objective: class 10 does not exist; the network has 10 classes (0..9)");
    let big = occlusion::Settings { window: 25, stride: 2, fill: Fill::Constant(0.5), class: 1, logit: false };
    let e = pollster::block_on(Occlusion::new(&mut at, image, big, (0, 1))).unwrap_err().to_string();
    assert_eq!(e, "input: the patch must be 1 to 24 pixels wide, not 25");
    assert_eq!(
        Method::parse("lime").unwrap_err().to_string(),
        "input: unknown attribution method 'lime'; expected one of gradient, deconvnet, guided, gradient-x-input, smoothgrad, integrated-gradients, grad-cam"
    );
    // The rule changes the map (guided is the gradient with negative signals cut at every ReLU).
    let g = pollster::block_on(at.input_grads(image, 1, &Objective::Class(1), ReluRule::Guided)).unwrap().1;
    let v = pollster::block_on(at.input_grads(image, 1, &Objective::Class(1), ReluRule::Gradient)).unwrap().1;
    assert_ne!(g, v);
    let _ = Path::new(".");
}
