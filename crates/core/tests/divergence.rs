//! Training that diverges (crates/core/src/divergence.rs, `Session::run_chunk`): the step that
//! diverged is found whatever the chunking, the weights come back to before it (not just to the
//! start of the chunk that noticed), a single step is judged the same way, and training goes on
//! at a lower rate; on the fused CPU path and through Burn's autodiff.

use convlens_core::backend::{self, Backend};
use convlens_core::session::Session;
use convlens_core::{Net, NetSpec, data};
use serde_json::json;
use std::path::Path;

const NET: &str = r#"{"layers":[
  {"type":"input","width":24,"height":24,"depth":1},
  {"type":"conv","size":5,"filters":4,"padding":"same","activation":"relu"},
  {"type":"pool","size":2,"stride":2},
  {"type":"conv","size":3,"filters":6,"padding":"same","activation":"relu"},
  {"type":"pool","size":3,"stride":3},
  {"type":"fc","units":10},
  {"type":"softmax"}]}"#;

fn session(fused: bool) -> Session {
    let s = Session::new(Backend::Cpu, backend::cpu());
    let s = if fused { s } else { s.without_fused_path() };
    let net = Net::init(NetSpec::parse(NET).unwrap(), 3, &backend::cpu());
    assert_eq!(s.fused_path(&net), fused);
    s.load(net);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../www/data");
    let (train, test) = data::layout("mnist5k", None).unwrap().load(|f| Ok(std::fs::read(dir.join(f)).unwrap())).unwrap();
    s.set_trainer(&json!({"method": "sgd", "learningRate": 0.01, "momentum": 0.9, "l2": 0.0, "batchSize": 8, "seed": 1})).unwrap();
    s.set_data("mnist5k", train, test);
    s
}

fn clock() -> f64 {
    0.0
}

fn weights(s: &Session) -> Vec<Vec<Vec<f32>>> {
    pollster::block_on(s.net().unwrap().read_weights()).unwrap()
}

/// The step number a divergence message names.
fn step_of(message: &str) -> u64 {
    let rest = message.split("training diverged: step ").nth(1).unwrap_or_else(|| panic!("{message}"));
    rest.split(' ').next().unwrap().replace(',', "").parse().unwrap()
}

/// `good` steps at the first rate, then steps at `rate` in chunks of `chunk` until training
/// stops (a pause judges the last step): the error and the weights it left.
fn diverge(fused: bool, good: usize, rate: f64, chunk: usize) -> (String, Vec<Vec<Vec<f32>>>, Session) {
    let s = session(fused);
    pollster::block_on(async {
        let mut done = 0;
        while done < good {
            let k = chunk.min(good - done);
            s.train_steps(k, &clock).await.unwrap();
            done += k;
        }
        s.set_trainer(&json!({ "learningRate": rate })).unwrap();
        for _ in 0..200 / chunk {
            if let Err(e) = s.train_steps(chunk, &clock).await {
                return (e.to_string(), weights(&s), s);
            }
        }
        let e = s.check_last_step(&clock).await.expect_err("training must diverge");
        (e.to_string(), weights(&s), s)
    })
}

/// The weights after the first `steps` steps of [`diverge`]'s run (none of them judged bad).
fn before(fused: bool, good: usize, rate: f64, steps: u64) -> Vec<Vec<Vec<f32>>> {
    let s = session(fused);
    pollster::block_on(async {
        s.train_steps(good, &clock).await.unwrap();
        s.set_trainer(&json!({ "learningRate": rate })).unwrap();
        if steps as usize > good {
            s.train_steps(steps as usize - good, &clock).await.unwrap();
        }
    });
    weights(&s)
}

#[test]
fn the_weights_come_back_to_before_the_step_that_diverged_whatever_the_chunking() {
    for fused in [true, false] {
        // The first step at this rate blows the loss up: found at the start of a chunk, at its
        // second loss, or by the check of a chunk's last step.
        let (good, rate) = (12, 0.9);
        let runs: Vec<_> = [1, 3, 7, 40].into_iter().map(|chunk| (chunk, diverge(fused, good, rate, chunk))).collect();
        let (_, (message, w, s)) = &runs[0];
        let n = step_of(message);
        println!("fused {fused}: {message}");
        assert_eq!(n, good as u64 + 1, "{message}");
        assert!(message.contains(&format!("The weights are back to before step {n}")), "{message}");
        assert!(message.contains("lower the learning rate (0.9): try 0.01"), "{message}");
        for (chunk, (m, w2, _)) in &runs[1..] {
            assert_eq!(step_of(m), n, "chunks of {chunk}: {m}");
            assert_eq!(w2, w, "chunks of {chunk}: the same weights");
        }
        assert_eq!(*w, before(fused, good, rate, n - 1), "the weights after step {}", n - 1);
        // Training goes on from there at a lower rate.
        s.set_trainer(&json!({ "learningRate": 0.01 })).unwrap();
        let r = pollster::block_on(s.train_steps(20, &clock)).unwrap();
        assert!(r.stats.losses.iter().all(|l| l.is_finite() && *l < 3.0), "{:?}", r.stats.losses);
        assert_eq!(r.total_examples, 8 * (n - 1 + 20), "examples of kept steps only");
    }
}

#[test]
fn a_single_step_is_judged_and_undone() {
    for fused in [true, false] {
        let s = session(fused);
        pollster::block_on(async {
            s.train_steps(30, &clock).await.unwrap();
            s.check_last_step(&clock).await.unwrap();
            let good = weights(&s);
            s.set_trainer(&json!({ "learningRate": 1e6 })).unwrap();
            // The step is taken (only a later loss can judge it); the check undoes it.
            s.train_steps(1, &clock).await.unwrap();
            assert_ne!(weights(&s), good);
            let e = s.check_last_step(&clock).await.unwrap_err().to_string();
            assert_eq!(step_of(&e), 31, "{e}");
            assert!(e.contains("raised the loss from") || e.contains("made the loss"), "{e}");
            assert!(e.contains("try 0.01"), "{e}");
            assert_eq!(weights(&s), good, "fused {fused}");
            // Nothing left to judge; the next chunk's first loss would have said the same.
            s.check_last_step(&clock).await.unwrap();
            s.train_steps(1, &clock).await.unwrap();
            let e = s.train_steps(3, &clock).await.unwrap_err().to_string();
            assert_eq!(step_of(&e), 31, "{e}");
            assert_eq!(weights(&s), good, "fused {fused}");
        });
    }
}

#[test]
fn a_rate_of_1e30_gives_non_finite_values_and_the_same_restore() {
    for fused in [true, false] {
        let (message, w, _) = diverge(fused, 5, 1e30, 4);
        assert_eq!(step_of(&message), 6, "{message}");
        assert_eq!(w, before(fused, 5, 1e30, 5));
    }
}

/// A chunk's bad step found in its middle: the steps before it are taken again from the chunk's
/// start. A batch of images scaled ×40 (finite, labels shuffled) has a loss far over the limit,
/// which blames the step before it; every chunking of the same batches agrees.
#[test]
fn a_bad_step_inside_a_chunk_keeps_the_steps_before_it() {
    for fused in [true, false] {
        let run = |splits: &[usize]| {
            let s = session(fused);
            let per = 24 * 24;
            let mut images: Vec<f32> = (0..7 * 8).flat_map(|i| s.example("train", i).unwrap()).collect();
            let mut labels: Vec<u32> = s.images("train", 0, 7 * 8).unwrap().labels.iter().map(|&l| l as u32).collect();
            images[3 * 8 * per..4 * 8 * per].iter_mut().for_each(|v| *v *= 40.0);
            labels[3 * 8..4 * 8].rotate_left(1);
            let mut at = 0;
            let mut error = None;
            pollster::block_on(async {
                for &k in splits {
                    let (x, y) = (&images[at * 8 * per..(at + k) * 8 * per], &labels[at * 8..(at + k) * 8]);
                    at += k;
                    if let Err(e) = s.train(x, y, &json!({}), &clock).await {
                        error = Some(e.to_string());
                        break;
                    }
                }
                if error.is_none() {
                    error = s.check_last_step(&clock).await.err().map(|e| e.to_string());
                }
            });
            (error, weights(&s), s.dataset())
        };
        let (e, w, _) = run(&[7]);
        let e = e.expect("the scaled batch is reported");
        assert_eq!(step_of(&e), 3, "{e}");
        for splits in [&[2, 5][..], &[3, 4], &[1, 1, 1, 1, 1, 1, 1], &[5, 2]] {
            let (e2, w2, _) = run(splits);
            assert_eq!(e2.as_deref(), Some(e.as_str()), "{splits:?}");
            assert_eq!(w2, w, "{splits:?}: the same weights");
        }
        let (e0, w0, _) = run(&[2]);
        assert_eq!(e0, None);
        assert_eq!(w, w0, "the weights after the two steps before the one that diverged");
    }
}
