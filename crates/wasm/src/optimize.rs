//! The image-optimizing techniques for the page: jobs (class visualization, feature inversion of
//! several layers, DeepDream, style transfer, an iterative attack or a fooling image), started by
//! `optimizeStart` and run by `optimizeStep(id, budget)` a time budget at a time, each chunk
//! resolving to the job's state with a preview. The session (convlens_core::session) keeps them by
//! id; this file only converts. FGSM and the linear demo are here too.

use convlens_core::Objective;
use convlens_core::jobs::{Budget, Inputs, Progress};
use convlens_core::vis::linear;
use js_sys::{Array, Float32Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{Engine, ObjectiveJs, js_err, now, set, settings_json, shape_js};

fn image_js(image: &[f32], shape: [usize; 3]) -> Object {
    let o = Object::new();
    set(&o, "data", Float32Array::from(image));
    set(&o, "shape", shape_js(&shape));
    o
}

/// A job's state: {kind, step, total, done, history (one array of values per step), images
/// (each {data, shape, layer?, loss?})}.
fn progress_js(p: &Progress) -> Object {
    let o = Object::new();
    let history: Array = p.history.iter().map(|row| JsValue::from(row.iter().map(|&v| JsValue::from(v)).collect::<Array>())).collect();
    let images = Array::new();
    for im in &p.images {
        let js = image_js(&im.data, im.shape);
        if let Some(l) = im.layer {
            set(&js, "layer", l as u32);
        }
        if let Some(l) = im.loss {
            set(&js, "loss", l);
        }
        images.push(&js);
    }
    set(&o, "kind", p.kind);
    set(&o, "step", p.step as u32);
    set(&o, "total", p.total as u32);
    set(&o, "done", p.done);
    set(&o, "history", history);
    set(&o, "images", images);
    o
}

/// An occlusion's state: {done (positions), total, ny, nx, base, class, window, stride, grid,
/// map (once done)}.
pub(crate) fn occlusion_js(p: &Progress) -> Object {
    let out = Object::new();
    set(&out, "done", p.step as u32);
    set(&out, "total", p.total as u32);
    if let Some(o) = &p.occlusion {
        set(&out, "ny", o.ny as u32);
        set(&out, "nx", o.nx as u32);
        set(&out, "base", o.base);
        set(&out, "class", o.class as u32);
        set(&out, "window", o.window as u32);
        set(&out, "stride", o.stride as u32);
        set(&out, "grid", Float32Array::from(o.grid.as_slice()));
        if let Some((a, b)) = o.part {
            set(&out, "part", shape_js(&[a, b]));
        }
        if let Some(m) = &o.map {
            set(&out, "map", Float32Array::from(m.as_slice()));
        }
    }
    out
}

/// Takes `key` out of a settings object (a value that is not a setting: visualize's target,
/// style's image).
fn take_key(settings: &JsValue, key: &str) -> JsValue {
    let Some(obj) = settings.dyn_ref::<Object>() else { return JsValue::UNDEFINED };
    let v = Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED);
    let _ = Reflect::delete_property(obj, &key.into());
    v
}

#[wasm_bindgen]
impl Engine {
    /// Starts an optimization job on the current network: `kind` is visualize, invert, dream,
    /// style, attack or fooling; `input` the image it needs (empty for visualize and fooling; the
    /// content image for style); `settings` any keys of `settingsSchema(kind)`, plus visualize's
    /// `target` (an objective) and style's `style` (the style image). Resolves to the job's state,
    /// with its `id`; run it with `optimizeStep(id, budgetMs)`, drop it with `optimizeCancel(id)`.
    #[wasm_bindgen(js_name = optimizeStart)]
    pub fn optimize_start(&self, kind: String, input: Vec<f32>, settings: JsValue) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            if kind == "occlusion" {
                return Err(js_err("start an occlusion with occlusionStart"));
            }
            let target = if kind == "visualize" { take_key(&settings, "target") } else { JsValue::UNDEFINED };
            let objective: Option<Objective> = if target.is_undefined() || target.is_null() {
                None
            } else {
                let o: ObjectiveJs = serde_wasm_bindgen::from_value(target).map_err(|e| js_err(format!("target: {e}")))?;
                Some(o.into())
            };
            let style_js = take_key(&settings, "style");
            let style: Vec<f32> = if style_js.is_undefined() { vec![] } else { Float32Array::new(&style_js).to_vec() };
            let given = settings_json(&settings, &kind)?;
            let inputs = Inputs { image: &input, style: &style, objective, ..Inputs::default() };
            let (id, p) = session.start_job(&kind, inputs, &given).await.map_err(js_err)?;
            let js = progress_js(&p);
            set(&js, "id", id);
            Ok(js.into())
        })
    }

    /// Drops job `id` (an optimization or an occlusion; a step in progress finishes, and its job
    /// is not kept).
    #[wasm_bindgen(js_name = optimizeCancel)]
    pub fn optimize_cancel(&self, id: u32) -> bool {
        self.session.cancel_job(id)
    }

    /// Runs job `id` for about `budget_ms` (at least one step); resolves to its state.
    #[wasm_bindgen(js_name = optimizeStep)]
    pub fn optimize_step(&self, id: u32, budget_ms: f64) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let p = session.step_job(id, Budget::Ms(budget_ms), &now).await.map_err(js_err)?;
            let js = progress_js(&p);
            set(&js, "id", id);
            Ok(js.into())
        })
    }

    /// Style job `id`'s Gram matrices: {target: [Float32Array], current: [Float32Array],
    /// channels: [C per layer], layers: [index]}.
    #[wasm_bindgen(js_name = styleGrams)]
    pub fn style_grams(&self, id: u32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let g = session.style_grams(id).await.map_err(js_err)?;
            let arrays = |v: &[Vec<f32>]| v.iter().map(|m| JsValue::from(Float32Array::from(m.as_slice()))).collect::<Array>();
            let o = Object::new();
            set(&o, "channels", g.target.iter().map(|m| JsValue::from((m.len() as f64).sqrt() as u32)).collect::<Array>());
            set(&o, "target", arrays(&g.target));
            set(&o, "current", arrays(&g.current));
            set(&o, "layers", g.layers.iter().map(|&l| JsValue::from(l as u32)).collect::<Array>());
            Ok(o.into())
        })
    }

    /// FGSM: the image moved by `eps` (on 0-255) along the sign of the gradient of the loss of
    /// `label` (Promise<Float32Array>).
    pub fn fgsm(&self, input: Vec<f32>, label: u32, eps: f32) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let adv = session.fgsm(&input, label as usize, eps).await.map_err(js_err)?;
            Ok(Float32Array::from(adv.as_slice()).into())
        })
    }

    /// The linear explanation of adversarial examples on the built-in digits (`files`: the
    /// `mnist5k` files that `datasetFiles` lists, path -> bytes; decoded here for this run alone,
    /// so the session's dataset stays as it was): softmax regression at each side length, the
    /// shift eps * |w_t - w_y|_1 predicted and measured. Returns an array of {side, dim,
    /// accuracy, adversarialAccuracy, predictedShift, measuredShift, wL1}.
    #[wasm_bindgen(js_name = linearDemo)]
    pub fn linear_demo(&self, files: &Object, sides: Vec<u32>, eps: f32, epochs: u32) -> Result<JsValue, JsValue> {
        let (train, test) = crate::decode_dataset("mnist5k", files, None)?;
        let sides: Vec<usize> = sides.iter().map(|&s| s as usize).collect();
        let out = Array::new();
        for p in linear::demo(&train, &test, &sides, eps, epochs as usize) {
            let o = Object::new();
            set(&o, "side", p.side as u32);
            set(&o, "dim", p.dim as u32);
            set(&o, "accuracy", p.accuracy);
            set(&o, "adversarialAccuracy", p.adversarial_accuracy);
            set(&o, "predictedShift", p.predicted_shift);
            set(&o, "measuredShift", p.measured_shift);
            set(&o, "wL1", p.w_l1);
            out.push(&o);
        }
        Ok(out.into())
    }
}
