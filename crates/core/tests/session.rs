//! The session (crates/core/src/session.rs) that the page's facade and the CLI both drive: jobs by
//! id that step exactly as they would alone while other jobs and training go on, the fused path
//! picked by one rule, a load resetting what belongs to the old network, every technique's
//! settings schema (defaults, presets, a URL's values clamped), and the trainer patched by keys.

use convlens_core::backend::{self, Backend};
use convlens_core::jobs::{self, Budget, Inputs, TECHNIQUES};
use convlens_core::session::Session;
use convlens_core::settings::Resolved;
use convlens_core::vis::class_vis;
use convlens_core::{Net, NetSpec, Objective, data};
use serde_json::json;
use std::path::Path;

const NET: &str = r#"{"layers":[
  {"type":"input","width":24,"height":24,"depth":1},
  {"type":"conv","name":"c1","size":5,"filters":4,"stride":1,"padding":"same","activation":"relu"},
  {"type":"pool","name":"p1","size":2,"stride":2},
  {"type":"conv","name":"c2","size":3,"filters":6,"padding":"same","activation":"relu"},
  {"type":"pool","size":3,"stride":3},
  {"type":"fc","name":"scores","units":10},
  {"type":"softmax"}]}"#;

fn session(backend: Backend) -> Session {
    let s = Session::new(backend, backend::cpu());
    s.load(Net::init(NetSpec::parse(NET).unwrap(), 3, &backend::cpu()));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/data");
    let (train, test) = data::layout("mnist5k", None).unwrap().load(|f| Ok(std::fs::read(dir.join(f)).unwrap())).unwrap();
    s.set_data("mnist5k", train, test);
    s
}

fn clock() -> f64 {
    0.0
}

fn image(s: &Session) -> Vec<f32> {
    s.example("test", 0).unwrap()
}

#[test]
fn jobs_step_as_alone_while_others_and_training_run() {
    pollster::block_on(async {
        let vis = json!({"preset": "simonyan", "steps": 6, "seed": 4});
        let inv = json!({"layers": ["c1", 3], "steps": 4, "seed": 5});
        let target = || Inputs { objective: Some(Objective::Class(3)), ..Default::default() };
        // Alone.
        let s = session(Backend::Cpu);
        let img = image(&s);
        let solo_a = s.run_job("visualize", target(), &vis, Budget::Items(1), &clock, &mut |_| {}).await.unwrap();
        let solo_b =
            s.run_job("invert", Inputs { image: &img, ..Default::default() }, &inv, Budget::Items(1), &clock, &mut |_| {}).await.unwrap();
        // Interleaved with each other and with training, in a fresh session.
        let s = session(Backend::Cpu);
        let (a, _) = s.start_job("visualize", target(), &vis).await.unwrap();
        let (b, _) = s.start_job("invert", Inputs { image: &img, ..Default::default() }, &inv).await.unwrap();
        let (mut pa, mut pb) = (None, None);
        let mut trained = 0;
        while pa.as_ref().is_none_or(|p: &jobs::Progress| !p.done) || pb.as_ref().is_none_or(|p: &jobs::Progress| !p.done) {
            if pa.as_ref().is_none_or(|p: &jobs::Progress| !p.done) {
                pa = Some(s.step_job(a, Budget::Items(1), &clock).await.unwrap());
            }
            if pb.as_ref().is_none_or(|p: &jobs::Progress| !p.done) {
                pb = Some(s.step_job(b, Budget::Items(1), &clock).await.unwrap());
            }
            trained += s.train_steps(2, &clock).await.unwrap().stats.losses.len();
        }
        assert_eq!(pa.unwrap().history, solo_a.history, "job A as alone");
        assert_eq!(pb.as_ref().unwrap().history, solo_b.history, "job B as alone");
        assert_eq!(pb.unwrap().images, solo_b.images);
        assert!(trained >= 8, "training went on ({trained} steps)");
        assert!(s.cancel_job(a));
        assert!(!s.cancel_job(a), "a cancelled job is gone");
        assert_eq!(
            s.step_job(a, Budget::Items(1), &clock).await.unwrap_err().to_string().split(" (").next().unwrap(),
            "input: there is no job 1"
        );
    });
}

#[test]
fn occlusion_is_a_job_and_matches_both_paths() {
    pollster::block_on(async {
        let settings = json!({"window": 6, "stride": 4, "fill": "gray", "class": 3});
        let mut grids = vec![];
        for backend in [Backend::Cpu, Backend::Gpu] {
            // Backend::Gpu on a CPU device: the same numbers through Burn alone (no fused path).
            let s = session(backend);
            let net = s.net().unwrap();
            assert_eq!(s.fused_path(&net), backend == Backend::Cpu);
            let img = image(&s);
            let p = s
                .run_job("occlusion", Inputs { image: &img, ..Default::default() }, &settings, Budget::Items(7), &clock, &mut |_| {})
                .await
                .unwrap();
            let o = p.occlusion.unwrap();
            assert_eq!((o.ny, o.nx, p.total), (6, 6, 36));
            assert!(o.map.is_some());
            grids.push(o.grid);
        }
        let d = grids[0].iter().zip(&grids[1]).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-5, "fused and Burn occlusion differ by {d}");
    });
}

#[test]
fn activations_match_on_both_paths_and_the_probe() {
    pollster::block_on(async {
        let mut all = vec![];
        for backend in [Backend::Cpu, Backend::Gpu] {
            // Backend::Gpu on a CPU device: Burn alone (no fused path).
            let s = session(backend);
            let net = s.net().unwrap();
            assert_eq!(s.fused_path(&net), backend == Backend::Cpu);
            let img = image(&s);
            let acts = s.activations(&img).await.unwrap();
            assert_eq!(acts.len(), net.spec.layers.len());
            for (a, l) in acts.iter().zip(&net.spec.layers) {
                assert_eq!(a.len(), l.out_shape.iter().product::<usize>(), "{}", l.name);
            }
            // The same numbers as the layer view's probe on this path, the softmax included.
            let probe = s.probe(&img, &Objective::Class(3)).await.unwrap();
            for (a, l) in acts.iter().zip(&probe.layers) {
                assert_eq!(a, &l.act.data);
            }
            let sum: f32 = acts.last().unwrap().iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "the softmax sums to {sum}");
            // A wrong image is named and changes nothing.
            assert!(s.activations(&img[1..]).await.unwrap_err().to_string().contains("values"));
            all.push(acts);
        }
        for (a, b) in all[0].iter().zip(&all[1]) {
            let d = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(d < 1e-5, "fused and Burn activations differ by {d}");
        }
        // A net that ends at its scores: one output per layer, the last the scores themselves.
        let s = Session::new(Backend::Cpu, backend::cpu());
        let spec = r#"{"layers":[{"type":"input","width":4,"height":4,"depth":1},{"type":"conv","size":3,"filters":2,"activation":"relu"},{"type":"fc","units":3}]}"#;
        s.load(Net::init(NetSpec::parse(spec).unwrap(), 1, &backend::cpu()));
        assert!(s.fused_path(&s.net().unwrap()));
        let img: Vec<f32> = (0..16).map(|i| i as f32 / 16.0).collect();
        let acts = s.activations(&img).await.unwrap();
        let probe = s.probe(&img, &Objective::Class(1)).await.unwrap();
        assert_eq!(acts.len(), 3);
        assert_eq!(acts[2], probe.layers[2].act.data, "the scores, not their softmax");
    });
}

#[test]
fn an_occlusion_keeps_its_weights_while_training_goes_on() {
    pollster::block_on(async {
        let settings = json!({"window": 4, "stride": 2, "fill": "black", "class": 3});
        let s = session(Backend::Cpu);
        let img = image(&s);
        let inputs = || Inputs { image: &img, ..Default::default() };
        let solo = s.run_job("occlusion", inputs(), &settings, Budget::Items(10), &clock, &mut |_| {}).await.unwrap();
        let (id, _) = s.start_job("occlusion", inputs(), &settings).await.unwrap();
        let mut p = s.step_job(id, Budget::Items(10), &clock).await.unwrap();
        s.set_trainer(&json!({"learningRate": 0.1})).unwrap();
        s.train_steps(5, &clock).await.unwrap();
        while !p.done {
            p = s.step_job(id, Budget::Items(10), &clock).await.unwrap();
        }
        let solo = solo.occlusion.unwrap();
        let solo_base = solo.base;
        assert_eq!(p.occlusion.unwrap().grid, solo.grid, "the weights it started with, to the end");
        let after = s.run_job("occlusion", inputs(), &settings, Budget::Items(10), &clock, &mut |_| {}).await.unwrap();
        let (a, b) = (after.occlusion.unwrap().base, solo_base);
        assert!((a - b).abs() > 1e-6, "a new occlusion sees the trained weights ({a} vs {b})");
    });
}

#[test]
fn a_load_resets_the_networks_state_and_keeps_the_data() {
    pollster::block_on(async {
        let s = session(Backend::Cpu);
        s.set_trainer(&json!({"learningRate": 0.05})).unwrap();
        s.train_steps(3, &clock).await.unwrap();
        let (id, _) = s.start_job("visualize", Inputs::default(), &json!({"steps": 3})).await.unwrap();
        s.load(Net::init(NetSpec::parse(NET).unwrap(), 9, &backend::cpu()));
        assert!(s.step_job(id, Budget::Items(1), &clock).await.is_err(), "the old network's jobs are gone");
        let r = s.train_steps(1, &clock).await.unwrap();
        assert_eq!(r.total_examples, 20, "the example count starts afresh");
        assert_eq!(s.trainer().learning_rate, 0.05, "the trainer's settings stay");
        assert_eq!(s.dataset().train, 4500, "the dataset stays");
    });
}

#[test]
fn the_trainer_is_patched_by_key_and_checked() {
    let s = Session::new(Backend::Cpu, backend::cpu());
    let c = s.set_trainer(&json!({"method": "adam", "batchSize": 50})).unwrap();
    assert_eq!((c.method.as_str(), c.batch_size, c.learning_rate), ("adam", 50, 0.01));
    let c = s.set_trainer(&json!({"learningRate": 0.002})).unwrap();
    assert_eq!((c.method.as_str(), c.batch_size, c.learning_rate), ("adam", 50, 0.002), "the other settings stay");
    let e = s.set_trainer(&json!({"batchSize": 0})).unwrap_err().to_string();
    assert_eq!(e, "input: trainer setting 'batchSize': 0 is out of range; expected 1 to 4096");
    assert_eq!(s.trainer().batch_size, 50, "a refused change leaves the settings as they were");
    let e = s.set_trainer(&json!({"learnignRate": 1})).unwrap_err().to_string();
    assert!(e.starts_with("input: trainer settings: unknown setting 'learnignRate'"), "{e}");
}

#[test]
fn every_technique_has_a_schema_whose_defaults_resolve() {
    for t in TECHNIQUES {
        let schema = jobs::schema(t).unwrap();
        let d = schema.describe();
        assert_eq!(d["technique"], if t == "fooling" { "attack" } else { t });
        for f in d["fields"].as_array().unwrap() {
            assert!(!f["label"].as_str().unwrap().is_empty(), "{t}.{} has a label", f["key"]);
        }
        schema.resolve(&serde_json::Value::Null, false).unwrap();
    }
    assert!(jobs::schema("lime").unwrap_err().to_string().starts_with("input: no settings for 'lime'"));
}

#[test]
fn presets_give_their_values_and_the_rest_stay_defaults() {
    let schema = class_vis::schema();
    let lucid = class_vis::Settings::preset("lucid", Objective::Class(0)).unwrap();
    assert_eq!((lucid.steps, lucid.jitter, lucid.scale_jitter, lucid.rotate, lucid.l2_decay), (256, 16, 0.1, 10.0, 0.0));
    let yos = class_vis::Settings::preset("yosinski", Objective::Class(0)).unwrap();
    assert_eq!((yos.steps, yos.jitter, yos.l2_decay, yos.blur_every, yos.blur_sigma, yos.init_noise), (300, 4, 1e-4, 4, 1.0, 0.1));
    // A preset with an override: the override wins.
    let v = schema.resolve(&json!({"preset": "simonyan", "steps": 20}), false).unwrap();
    assert_eq!((v.int("steps"), v.num("l2")), (20, 0.001));
    // Described: each preset complete, the defaults those of the default preset (lucid).
    let d = schema.describe();
    let simonyan = d["presets"].as_array().unwrap().iter().find(|p| p["name"] == "simonyan").unwrap();
    assert_eq!((simonyan["values"]["l2"].as_f64(), simonyan["values"]["jitter"].as_u64()), (Some(0.001), Some(0)));
    let steps = d["fields"].as_array().unwrap().iter().find(|f| f["key"] == "steps").unwrap();
    assert_eq!(steps["default"], 256);
}

#[test]
fn a_urls_values_are_read_and_clamped() {
    let schema = jobs::schema("dream").unwrap();
    let got = schema.from_url(&json!({"octaves": "40", "step": "0.5", "jitter": "lots", "view": "dream", "channel": "3", "layer": "op20"}));
    assert_eq!(got, json!({"octaves": 10, "step": 0.5, "channel": 3, "layer": "op20"}).as_object().unwrap().clone());
    let t = jobs::schema("trainer").unwrap();
    let got = t.from_url(&json!({"learningRate": "-1", "method": "rmsprop", "batchSize": "50.4"}));
    assert_eq!(got, json!({"learningRate": 1e-6, "batchSize": 50}).as_object().unwrap().clone(), "an unknown method is dropped");
}
