//! Data-parallel training (`convlens_core::shards`) between workers: a step's shards as JS
//! messages. The engine that trains sends them through a function worker.js gives it (posting on
//! a MessagePort to each pool worker); a pool worker's engine answers them.

use convlens_core::Error;
use convlens_core::shards::{Pending, ShardOut, ShardPool, ShardTask};
use js_sys::{Float32Array, Float64Array, Function, Object, Promise, Reflect, Uint32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::set;

/// The pool worker.js gives: `run(worker, task)` posts `task` ([`task_js`]) to pool worker
/// `worker` and returns a promise of its answer ([`out_js`]).
pub struct JsPool {
    pub run: Function,
    pub workers: usize,
}

impl ShardPool for JsPool {
    fn workers(&self) -> usize {
        self.workers
    }

    fn run(&self, worker: usize, task: ShardTask) -> Pending {
        let sent = self.run.call2(&JsValue::NULL, &(worker as u32).into(), &task_js(&task));
        Box::pin(async move {
            let promise: Promise = sent.ok().and_then(|p| p.dyn_into().ok()).ok_or_else(|| bad("the pool did not take a task"))?;
            let answer = JsFuture::from(promise).await.map_err(|e| bad(&format!("a pool worker failed ({})", describe(&e))))?;
            out_from_js(&answer)
        })
    }
}

fn bad(what: &str) -> Error {
    Error::Input(format!("data-parallel training: {what}"))
}

fn describe(e: &JsValue) -> String {
    Reflect::get(e, &"message".into()).ok().and_then(|m| m.as_string()).or_else(|| e.as_string()).unwrap_or_else(|| "no message".into())
}

/// Two u32 halves of a u64 (JS numbers hold 53 bits).
fn halves(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

/// `{meta: Uint32Array [net lo, net hi, seed lo, seed hi, step lo, step hi, batch], weights,
/// images: Float32Array, labels: Uint32Array, shards: Uint32Array [start, end, ...]}`.
pub fn task_js(t: &ShardTask) -> JsValue {
    let o = Object::new();
    let meta: Vec<u32> = [halves(t.net), halves(t.seed), halves(t.step)].concat().into_iter().chain([t.batch as u32]).collect();
    set(&o, "meta", Uint32Array::from(meta.as_slice()));
    set(&o, "weights", Float32Array::from(t.weights.as_slice()));
    set(&o, "images", Float32Array::from(t.images.as_slice()));
    set(&o, "labels", Uint32Array::from(t.labels.iter().map(|&l| l as u32).collect::<Vec<_>>().as_slice()));
    set(&o, "shards", Uint32Array::from(t.shards.iter().flat_map(|r| [r.start as u32, r.end as u32]).collect::<Vec<_>>().as_slice()));
    o.into()
}

fn field<T: JsCast>(o: &JsValue, key: &str) -> Result<T, Error> {
    Reflect::get(o, &key.into()).ok().and_then(|v| v.dyn_into::<T>().ok()).ok_or_else(|| bad(&format!("a message without its '{key}'")))
}

/// The task [`task_js`] made.
pub fn task_from_js(o: &JsValue) -> Result<ShardTask, Error> {
    let meta = field::<Uint32Array>(o, "meta")?.to_vec();
    let [a, b, c, d, e, f, batch] = meta[..] else { return Err(bad("a task's meta is not 7 numbers")) };
    let whole = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
    let bounds = field::<Uint32Array>(o, "shards")?.to_vec();
    if bounds.len() % 2 != 0 {
        return Err(bad("a task's shards are not pairs"));
    }
    Ok(ShardTask {
        net: whole(a, b),
        seed: whole(c, d),
        step: whole(e, f),
        batch: batch as usize,
        weights: field::<Float32Array>(o, "weights")?.to_vec(),
        images: field::<Float32Array>(o, "images")?.to_vec(),
        labels: field::<Uint32Array>(o, "labels")?.to_vec().into_iter().map(|l| l as usize).collect(),
        shards: bounds.chunks(2).map(|p| p[0] as usize..p[1] as usize).collect(),
    })
}

/// `{grads: Float32Array, losses: Float64Array, correct: Uint32Array}`.
pub fn out_js(out: &ShardOut) -> JsValue {
    let o = Object::new();
    set(&o, "grads", Float32Array::from(out.grads.as_slice()));
    set(&o, "losses", Float64Array::from(out.losses.as_slice()));
    set(&o, "correct", Uint32Array::from(out.correct.as_slice()));
    o.into()
}

fn out_from_js(o: &JsValue) -> Result<ShardOut, Error> {
    Ok(ShardOut {
        grads: field::<Float32Array>(o, "grads")?.to_vec(),
        losses: field::<Float64Array>(o, "losses")?.to_vec(),
        correct: field::<Uint32Array>(o, "correct")?.to_vec(),
    })
}
