//! The worker pool's parts: SmoothGrad and integrated gradients split by whole batches of samples,
//! occlusion by runs of positions. The parts put together give, bit for bit, what one engine
//! computes alone — on the fused CPU path (the MNIST net, a graph net) and on Burn's (the graph net).

use convlens_core::backend::{self, Backend};
use convlens_core::grad::Objective;
use convlens_core::jobs::{Budget, Inputs};
use convlens_core::session::Session;
use convlens_core::vis::attribution::{self, Samples};
use convlens_core::{Net, NetSpec};
use serde_json::json;

mod common;
use common::mnist_net as mnist;

/// A graph net with batchnorm, relu6, a depthwise conv and an add (on the fused CPU path, and on
/// Burn's with the fused path turned off).
fn graph() -> Net {
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":20,"height":20,"depth":3},
        {"type":"conv","name":"a","size":3,"filters":6,"pad":1},{"type":"batchnorm"},{"type":"relu6","name":"r"},
        {"type":"conv","name":"dw","size":3,"filters":6,"groups":6,"pad":1,"activation":"relu"},{"type":"add","inputs":["r","dw"]},
        {"type":"pool","size":2},{"type":"globalpool"},{"type":"fc","units":5},{"type":"softmax"}]}"#,
    )
    .unwrap();
    Net::init(spec, 11, &backend::cpu())
}

fn image(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 101) as f32) / 100.0).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sampled_attributions_split_into_parts_equal_one_engine_bit_for_bit() {
    pollster::block_on(async {
        for (name, net, fused) in
            [("mnist (fused path)", mnist(), true), ("graph (fused path)", graph(), true), ("graph (Burn's path)", graph(), false)]
        {
            let s = Session::new(Backend::Cpu, backend::cpu());
            let s = if fused { s } else { s.without_fused_path() };
            assert_eq!(s.fused_path(&net), fused, "{name}");
            s.load(net.clone());
            let size: usize = net.spec.input_shape().iter().product();
            let x = image(size);
            let obj = Objective::Class(3);
            for settings in [
                json!({"method": "integrated-gradients", "steps": 50}),
                json!({"method": "integrated-gradients", "steps": 7, "rule": "riemann_trapezoid"}),
                json!({"method": "smoothgrad", "samples": 25, "noise": 0.15, "seed": 4}),
            ] {
                let (whole, _) = s.attribute(&x, &obj, &settings, None).await.unwrap();
                for parts in [1, 2, 3, 8] {
                    let mut all = Samples::default();
                    let mut next = 0;
                    for k in 0..parts {
                        let (g, range, total) = s.attribute_samples(&x, &obj, &settings, k, parts).await.unwrap();
                        assert_eq!(range.start, next, "{name} {settings}: parts follow each other");
                        assert_eq!(range.start % attribution::SAMPLE_BATCH, 0, "whole batches");
                        assert_eq!(g.grads.len(), range.len() * size);
                        assert_eq!(g.values.is_empty(), k > 0, "part 0 computes the end values");
                        next = range.end;
                        all.grads.extend(g.grads);
                        all.values.extend(g.values);
                        if k == parts - 1 {
                            assert_eq!(range.end, total);
                        }
                    }
                    let (merged, _) = s.attribute(&x, &obj, &settings, Some(all)).await.unwrap();
                    assert_eq!(bits(&merged.map), bits(&whole.map), "{name} {settings}: {parts} parts");
                    assert_eq!(merged.value.to_bits(), whole.value.to_bits());
                    assert_eq!(merged.delta.map(f32::to_bits), whole.delta.map(f32::to_bits));
                }
            }
            // A method of one pass does not split; wrong parts and gradient counts are named.
            let (_, range, total) = s.attribute_samples(&x, &obj, &json!({"method": "gradient"}), 0, 2).await.unwrap();
            assert_eq!((range, total), (0..0, 0));
            let e = s.attribute_samples(&x, &obj, &json!({"method": "smoothgrad"}), 2, 2).await.unwrap_err().to_string();
            assert!(e.contains("part 2 of 2 does not exist"), "{e}");
            let given = Samples { grads: vec![0.0; 3], values: vec![1.0] };
            let e = s.attribute(&x, &obj, &json!({"method": "smoothgrad", "samples": 4}), Some(given)).await.unwrap_err().to_string();
            assert!(e.contains("3 gradient values are not the 4 samples"), "{e}");
            let given = Samples { grads: vec![0.0; 8 * size], values: vec![1.0] };
            let e =
                s.attribute(&x, &obj, &json!({"method": "integrated-gradients", "steps": 8}), Some(given)).await.unwrap_err().to_string();
            assert!(e.contains("1 end values are not the 2"), "{e}");
        }
    });
}

#[test]
fn occlusion_split_into_parts_equals_one_job_bit_for_bit() {
    pollster::block_on(async {
        for (name, net, fused) in
            [("mnist (fused path)", mnist(), true), ("graph (fused path)", graph(), true), ("graph (Burn's path)", graph(), false)]
        {
            let s = Session::new(Backend::Cpu, backend::cpu());
            let s = if fused { s } else { s.without_fused_path() };
            assert_eq!(s.fused_path(&net), fused, "{name}");
            s.load(net.clone());
            let x = image(net.spec.input_shape().iter().product());
            let settings = json!({"window": 5, "stride": 2, "class": 2});
            let run = |part: Option<(usize, usize)>, batch: usize| {
                let (s, x, settings) = (&s, &x, &settings);
                async move {
                    let (id, mut p) = s.start_job("occlusion", Inputs { image: x, part, ..Default::default() }, settings).await.unwrap();
                    while !p.done {
                        p = s.step_job(id, Budget::Items(batch), &|| 0.0).await.unwrap();
                    }
                    (id, p)
                }
            };
            let (_, whole) = run(None, 16).await;
            let whole = whole.occlusion.unwrap();
            for parts in [2, 3] {
                let mut grid = vec![];
                let mut first = None;
                for k in 0..parts {
                    // Other batch sizes than the whole job's: each position is evaluated alone.
                    let (id, p) = run(Some((k, parts)), 5 + k).await;
                    let o = p.occlusion.unwrap();
                    let (a, b) = o.part.expect("a part says which positions it has");
                    assert_eq!((a, b - a), (grid.len(), o.grid.len()));
                    assert!(o.map.is_none(), "a part has no map of its own");
                    grid.extend(o.grid);
                    first.get_or_insert(id);
                }
                let merged = s.occlusion_merge(first.unwrap(), grid).unwrap().occlusion.unwrap();
                assert_eq!(bits(&merged.grid), bits(&whole.grid), "{name}: {parts} parts' grid");
                assert_eq!(bits(merged.map.as_ref().unwrap()), bits(whole.map.as_ref().unwrap()), "{name}: {parts} parts' map");
                assert_eq!(merged.part, None);
            }
            // One position (the patch as large as the image): part 0 has none, part 1 has it.
            let one = json!({"window": net.spec.input_shape()[1], "stride": 2, "class": 2});
            let (_, p0) = s.start_job("occlusion", Inputs { image: &x, part: Some((0, 2)), ..Default::default() }, &one).await.unwrap();
            let (_, p1) = s.start_job("occlusion", Inputs { image: &x, part: Some((1, 2)), ..Default::default() }, &one).await.unwrap();
            assert_eq!((p0.occlusion.unwrap().part, p1.occlusion.unwrap().part), (Some((0, 0)), Some((0, 1))));
            let (id, _) = run(Some((0, 2)), 8).await;
            let e = s.occlusion_merge(id, vec![0.5; 3]).unwrap_err().to_string();
            assert!(e.contains("3 values are not the"), "{e}");
        }
    });
}
