//! The image-optimizing techniques (class visualization, feature inversion, DeepDream, style
//! transfer, the Fourier parametrization, the linear adversarial demo): every loss's gradient
//! against central finite differences, the transforms' adjoints, the objectives falling or rising,
//! and (with the data directory) MobileNetV2 results.

mod common;

use convlens_core::cpu_train::CpuTrainer;
use convlens_core::grad::Objective;
use convlens_core::rng::SplitMix64;
use convlens_core::vis::class_vis::{ClassVis, Settings};
use convlens_core::vis::image_param::{self, ImageParam, Parametrization};
use convlens_core::vis::optimize::{Lbfgs, layer_loss_grad};
use convlens_core::vis::{deepdream, inversion, linear, style};
use convlens_core::{Net, NetSpec, data};
use std::path::Path;

/// A MobileNetV2-style residual block with smooth activations (finite differences need them).
const NET: &str = r#"{"layers":[
  {"type":"input","width":12,"height":12,"depth":3},
  {"type":"conv","name":"stem","size":3,"filters":4,"stride":2,"padding":"same","activation":"tanh"},
  {"type":"conv","name":"expand","size":1,"filters":6,"activation":"tanh"},
  {"type":"conv","name":"dw","size":3,"filters":6,"groups":6,"padding":"same","activation":"tanh"},
  {"type":"conv","name":"project","size":1,"filters":4},
  {"type":"add","name":"res","inputs":["stem","project"]},
  {"type":"pool","size":6,"stride":1,"mode":"avg"},
  {"type":"fc","units":3},
  {"type":"softmax"}]}"#;

fn net() -> Net {
    Net::init(NetSpec::parse(NET).unwrap(), 7, &convlens_core::backend::cpu())
}

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix64(seed);
    (0..n).map(|_| r.uniform() as f32).collect()
}

/// Central differences of `f` at a sample of coordinates of `x` against `grad`.
fn fd_check(what: &str, x: &[f32], grad: &[f32], eps: f32, f: &mut dyn FnMut(&[f32]) -> f64) {
    let scale = grad.iter().fold(0f32, |m, g| m.max(g.abs())) as f64;
    assert!(scale > 0.0, "{what}: the gradient is zero");
    let n = x.len();
    for k in 0..24 {
        let i = (k * 7919 + 13) % n;
        let (mut a, mut b) = (x.to_vec(), x.to_vec());
        a[i] += eps;
        b[i] -= eps;
        let num = (f(&a) - f(&b)) / (2.0 * eps as f64);
        let tol = 2e-2 * scale + 1e-5;
        assert!(
            (num - grad[i] as f64).abs() <= tol,
            "{what}: coordinate {i}: analytic {} vs finite difference {num} (tolerance {tol:.2e})",
            grad[i]
        );
    }
}

#[test]
fn fourier_parametrization_backprop_matches_finite_differences() {
    for kind in [Parametrization::Fourier { decorrelate: true }, Parametrization::Fourier { decorrelate: false }] {
        let shape = [3, 8, 10];
        let mut p = ImageParam::new(kind, shape, None, 0.0, &mut SplitMix64(3));
        let n = p.params.len();
        p.params.iter_mut().zip(noise(n, 4)).for_each(|(v, r)| *v = r - 0.5);
        let r = noise(240, 5);
        let grad = p.backprop(&r);
        let x = p.params.clone();
        fd_check(&format!("{kind:?}"), &x, &grad, 1e-2, &mut |v| {
            p.params = v.to_vec();
            p.image().iter().zip(&r).map(|(a, b)| (a * b) as f64).sum()
        });
        assert!(p.image().iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn jitter_and_warp_adjoints() {
    let shape = [3, 9, 11];
    let (x, y) = (noise(297, 1), noise(297, 2));
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
    for (s, a) in [(1.1, 7.0), (0.9, -10.0), (1.0, 0.0)] {
        let lhs = dot(&image_param::warp(&x, shape, s, a), &y);
        let rhs = dot(&x, &image_param::warp_adjoint(&y, shape, s, a));
        assert!((lhs - rhs).abs() < 1e-3 * lhs.abs(), "warp {s} {a}: {lhs} vs {rhs}");
    }
    assert_eq!(image_param::roll(&image_param::roll(&x, shape, 3, -4), shape, -3, 4), x);
    let same = image_param::warp(&x, shape, 1.0, 0.0);
    assert!(same.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-6), "the identity warp changes nothing");
}

#[test]
fn inversion_loss_gradient() {
    let net = net();
    let image = noise(432, 11);
    let s = inversion::Settings { alpha_weight: 1.0, tv_weight: 20.0, ..inversion::Settings::new(4) };
    let inv = pollster::block_on(inversion::Inversion::new(&net, &image, s)).unwrap();
    let x = noise(432, 12);
    let (v, g) = pollster::block_on(inv.loss_grad(&net, &x)).unwrap();
    assert!(v[1] > 0.0 && v[2] > 0.0 && v[3] > 0.0, "{v:?}");
    fd_check("inversion", &x, &g, 1e-2, &mut |p| pollster::block_on(inv.loss_grad(&net, p)).unwrap().0[0] as f64);
    // The image itself has zero feature loss.
    assert!(pollster::block_on(inv.loss_grad(&net, &image)).unwrap().0[1] < 1e-10);
}

#[test]
fn style_loss_gradient() {
    let net = net();
    let (content, style_img) = (noise(432, 21), noise(432, 22));
    let s = style::Settings { content_weight: 1.0, style_weight: 10.0, tv_weight: 1.0, ..style::Settings::new(5, vec![1, 3]) };
    let st = pollster::block_on(style::Style::new(&net, &content, &style_img, [3, 12, 12], s)).unwrap();
    let x = noise(432, 23);
    let (v, g) = pollster::block_on(st.loss_grad(&x)).unwrap();
    assert!(v[1] > 0.0 && v[2] > 0.0, "{v:?}");
    fd_check("style", &x, &g, 1e-2, &mut |p| pollster::block_on(st.loss_grad(p)).unwrap().0[0] as f64);
    // At a larger size (the net cut after the deepest layer the losses read).
    let (c2, s2) = (noise(3 * 20 * 20, 1), noise(3 * 20 * 20, 2));
    assert!(pollster::block_on(style::Style::new(&net, &c2, &s2, [3, 20, 20], style::Settings::new(5, vec![1, 3]))).is_ok());
    let grams = pollster::block_on(st.target_grams()).unwrap();
    assert_eq!(grams.iter().map(Vec::len).collect::<Vec<_>>(), vec![16, 36]);
}

#[test]
fn deepdream_loss_gradient_and_octaves() {
    let net = net();
    let x = noise(432, 31);
    for channel in [None, Some(2)] {
        let loss = deepdream::loss(3, channel);
        let (_, g) = pollster::block_on(layer_loss_grad(&net, &x, 3, &loss)).unwrap();
        fd_check("dream", &x, &g, 1e-2, &mut |p| pollster::block_on(layer_loss_grad(&net, p, 3, &loss)).unwrap().0[0] as f64);
    }
    let image = noise(3 * 24 * 24, 32);
    let s = deepdream::Settings { octaves: 3, steps_per_octave: 3, jitter: 2, ..deepdream::Settings::new(3) };
    let mut d = deepdream::Dream::new(&net, &image, [3, 24, 24], s).unwrap();
    while !d.done() {
        pollster::block_on(d.step(&net)).unwrap();
    }
    let (out, shape) = d.current();
    assert_eq!(shape, [3, 24, 24]);
    assert!(out.iter().zip(&image).any(|(a, b)| (a - b).abs() > 1e-3), "the dream changed the image");
    // Too many octaves for the image: a clear message.
    let e =
        deepdream::Dream::new(&net, &image, [3, 24, 24], deepdream::Settings { octaves: 12, ..deepdream::Settings::new(3) }).err().unwrap();
    assert!(e.to_string().contains("too small"), "{e}");
    // Layers past the fully connected layer only fit the net's own size.
    let e = net.resized(7, 24, 24).err().unwrap();
    assert!(e.to_string().contains("only works on 12x12"), "{e}");
}

#[test]
fn class_visualization_objective_rises() {
    let net = net();
    // Through Burn, and on the fused CPU path (as the session runs it on the CPU): the same climb.
    let weights = pollster::block_on(net.read_weights()).unwrap();
    for preset in ["lucid", "yosinski", "simonyan"] {
        let mut histories = vec![];
        for on_fused in [false, true] {
            let mut s = Settings::preset(preset, Objective::Class(1)).unwrap();
            s.steps = 40;
            s.jitter = s.jitter.min(2);
            let mut run = ClassVis::new(&net, s).unwrap();
            let mut fused = on_fused.then(|| CpuTrainer::new(&net, weights.clone(), Default::default()));
            while !run.done() {
                pollster::block_on(run.step(&net, fused.as_mut())).unwrap();
            }
            let (first, last) = (run.history[0], run.history[39]);
            assert!(last > first + 0.1, "{preset} (fused {on_fused}): the class score rose from {first} to {last}");
            assert!(run.current().iter().all(|v| (0.0..=1.0).contains(v)));
            histories.push(run.history);
        }
        for (i, (a, b)) in histories[0].iter().zip(&histories[1]).take(10).enumerate() {
            assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{preset} step {i}: Burn {a} vs fused {b}");
        }
    }
    let mut s = Settings::preset("yosinski", Objective::Channel { layer: 3, channel: 2 }).unwrap();
    s.steps = 20;
    s.norm_pct = 20.0;
    s.contrib_pct = 20.0;
    let mut run = ClassVis::new(&net, s).unwrap();
    while !run.done() {
        pollster::block_on(run.step(&net, None)).unwrap();
    }
    assert!(run.history[19] > run.history[0], "a channel's mean rose: {:?}", run.history);
    assert!(ClassVis::new(&net, Settings::preset("lucid", Objective::Class(3)).unwrap()).is_err());
    assert!(Settings::preset("nope", Objective::Class(0)).is_err());
}

#[test]
fn lbfgs_solves_a_quadratic() {
    let a: Vec<f32> = (0..50).map(|i| 1.0 + i as f32 / 10.0).collect();
    let mut x = vec![0f32; 50];
    let mut opt = Lbfgs::new(1.0, 10);
    for _ in 0..60 {
        let g: Vec<f32> = x.iter().zip(&a).map(|(x, a)| 2.0 * a * (x - 1.0)).collect();
        opt.step(&mut x, &g);
    }
    assert!(x.iter().all(|v| (v - 1.0).abs() < 1e-3), "{x:?}");
}

#[test]
fn linear_demo_shift_grows_with_dimension() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("www/data");
    let (train, held) = data::layout("mnist5k", None)
        .unwrap()
        .load(|f| std::fs::read(dir.join(f)).map_err(|e| convlens_core::Error::Data(e.to_string())))
        .unwrap();
    let (mut x, mut y) = train.batch(&(0..train.len()).collect::<Vec<_>>(), [1, 24, 24], None);
    let (hx, hy) = held.batch(&(0..held.len()).collect::<Vec<_>>(), [1, 24, 24], None);
    x.extend(hx);
    y.extend(hy);
    let pts = linear::run(&x, &y, 24, train.len(), &[4, 8, 12, 16, 24], 0.1, 3, 1);
    for p in &pts {
        println!(
            "side {:>2} (d = {:>3}): accuracy {:.1}% -> {:.1}%, eps |w_t - w_y|_1 = {:.2}, measured {:.2}",
            p.side,
            p.dim,
            100.0 * p.accuracy,
            100.0 * p.adversarial_accuracy,
            p.predicted_shift,
            p.measured_shift
        );
        assert!(p.measured_shift <= p.predicted_shift + 1e-3);
    }
    assert!(pts.windows(2).all(|w| w[1].predicted_shift > w[0].predicted_shift), "the shift grows with the dimension");
    assert!(pts[4].accuracy > 0.85 && pts[4].adversarial_accuracy < pts[4].accuracy / 2.0, "{:?}", pts[4]);
}

fn mobilenet() -> Option<Net> {
    let dir = common::data_dir().join("mobilenet");
    let bytes = std::fs::read(dir.join("mobilenet_v2_f32.safetensors")).ok()?;
    let st = convlens_core::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let shape = |n: &str| st.tensor(n).ok().map(|t| t.shape().to_vec());
    let labels = std::fs::read_to_string(dir.join("imagenet_labels.txt")).ok().map(|t| t.lines().map(str::to_string).collect());
    let spec = convlens_core::oplist::spec(&std::fs::read_to_string(dir.join("mobilenet_v2_f32.json")).unwrap(), &shape, labels).unwrap();
    let w = convlens_core::weights::load(&spec, &bytes).unwrap();
    Some(Net::with_weights(spec, w, &convlens_core::backend::cpu()))
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn mobilenet_class_visualization_and_fooling_image() {
    let net = mobilenet().expect("mobilenet/ in the data directory (set CONVLENS_DATA_DIR)");
    let mut s = Settings::preset("lucid", Objective::Class(89)).unwrap();
    s.steps = 48;
    let mut run = ClassVis::new(&net, s).unwrap();
    // On the fused CPU path, as the page and the CLI run it.
    let mut fused = CpuTrainer::new(&net, pollster::block_on(net.read_weights()).unwrap(), Default::default());
    while !run.done() {
        pollster::block_on(run.step(&net, Some(&mut fused))).unwrap();
    }
    let mut at = convlens_core::vis::attribution::Attributor::new(&net, None);
    let p = pollster::block_on(at.outputs(&run.current(), 1)).unwrap();
    assert_eq!(convlens_core::train::argmax(&p), 89, "the visualization of 'macaw' is a macaw to the net");
    assert!(run.history[47] > run.history[0] + 10.0, "{:?}", run.history);
    let mut f = convlens_core::vis::adversarial::Attack::fooling(3 * 224 * 224, 131, 2.0 / 255.0, 12, 1);
    while !f.done() {
        pollster::block_on(f.step(&mut at)).unwrap();
    }
    let p = pollster::block_on(at.outputs(&f.x, 1)).unwrap();
    assert!(p[131] > 0.9, "noise became 'flamingo': {}", p[131]);
}
