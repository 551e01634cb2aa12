//! The dataset views for the page: maximally activating patches, a t-SNE map of a layer's codes
//! and the loss surface, as jobs over the session's dataset (`datasetStart(kind, settings)`, then
//! `datasetStep(id, budgetMs)` until done; `optimizeCancel(id)` drops one), the patches' pictures
//! (`patchCrops`), and a set of decoded images as the dataset (`loadImages`). The session
//! (convlens_core::session) does the work; this file only converts.

use convlens_core::data;
use convlens_core::jobs::{Budget, DatasetProgress, Inputs, Progress};
use js_sys::{Array, Float32Array, Float64Array, Int32Array, Object, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::{Engine, js_err, now, set, settings_json, shape_js, to_js};

/// A dataset job's state: {id, kind, step, total, done} and, by kind, `patches`, `tsne`,
/// `landscape` or (the landscape's seeds experiment) `seeds` (docs/ENGINE_API.md).
fn progress_js(id: u32, p: &Progress) -> Object {
    let o = Object::new();
    set(&o, "id", id);
    set(&o, "kind", p.kind);
    set(&o, "step", p.step as u32);
    set(&o, "total", p.total as u32);
    set(&o, "done", p.done);
    match &p.dataset {
        Some(DatasetProgress::Patches(pp)) => {
            let v = Object::new();
            set(&v, "layer", pp.layer as u32);
            set(&v, "shape", shape_js(&pp.shape));
            set(&v, "top", pp.top as u32);
            set(&v, "patch", shape_js(&pp.patch));
            set(&v, "split", pp.split.as_str());
            set(&v, "values", Float32Array::from(pp.values.as_slice()));
            set(&v, "images", Int32Array::from(pp.images.as_slice()));
            set(&v, "ys", Int32Array::from(pp.ys.as_slice()));
            set(&v, "xs", Int32Array::from(pp.xs.as_slice()));
            if let Some((a, b)) = pp.part {
                set(&v, "part", shape_js(&[a, b]));
            }
            set(&o, "patches", v);
        }
        Some(DatasetProgress::Tsne(t)) => {
            let v = Object::new();
            set(&v, "stage", t.stage);
            set(&v, "layer", t.layer as u32);
            set(&v, "points", t.points as u32);
            set(&v, "dim", t.dim as u32);
            set(&v, "explained", t.explained);
            set(&v, "method", t.method);
            set(&v, "iteration", t.iteration as u32);
            set(&v, "iterations", t.iterations as u32);
            set(&v, "learningRate", t.learning_rate);
            set(&v, "exaggerating", t.exaggerating);
            set(&v, "embedding", Float32Array::from(t.embedding.as_slice()));
            set(&v, "labels", Uint8Array::from(t.labels.as_slice()));
            set(&v, "split", t.split.as_str());
            let kl: Vec<f64> = t.kl.iter().flat_map(|&(i, k)| [i as f64, k]).collect();
            set(&v, "kl", Float64Array::from(kl.as_slice()));
            set(&o, "tsne", v);
        }
        Some(DatasetProgress::Landscape(l)) => {
            let v = Object::new();
            set(&v, "slice", l.slice);
            set(&v, "axis", Float64Array::from(l.axis.as_slice()));
            set(&v, "loss", Float32Array::from(l.loss.as_slice()));
            set(&v, "accuracy", Float32Array::from(l.accuracy.as_slice()));
            set(&v, "images", l.images as u32);
            set(&v, "split", l.split.as_str());
            set(&v, "coarse", l.coarse as u32);
            set(&v, "coarseDone", l.coarse_done);
            if let Some((k, n)) = l.part {
                set(&v, "part", shape_js(&[k, n]));
            }
            set(&o, "landscape", v);
        }
        Some(DatasetProgress::Seeds(sp)) => {
            let v = Object::new();
            set(&v, "widths", Float64Array::from(sp.widths.as_slice()));
            set(&v, "seeds", sp.seeds as u32);
            let params: Vec<f64> = sp.params.iter().map(|&p| p as f64).collect();
            set(&v, "params", Float64Array::from(params.as_slice()));
            set(&v, "steps", sp.steps as u32);
            set(&v, "images", sp.images as u32);
            set(&v, "loss", Float32Array::from(sp.loss.as_slice()));
            set(&v, "accuracy", Float32Array::from(sp.accuracy.as_slice()));
            set(&v, "trainLoss", Float32Array::from(sp.train_loss.as_slice()));
            set(&v, "outcome", sp.outcome.iter().map(|&s| JsValue::from_str(s)).collect::<Array>());
            let spread: Vec<f64> = sp.spread.iter().flatten().copied().collect();
            set(&v, "spread", Float64Array::from(spread.as_slice()));
            set(&o, "seeds", v);
        }
        None => {}
    }
    o
}

/// The tops of a split patches search put together: `values`, `images`, `ys`, `xs` are the
/// parts' lists one after another (`[parts, channels, top]`, as each part's state has them);
/// returns {values, images, ys, xs} (`[channels, top]`), one search's over all their images.
#[wasm_bindgen(js_name = patchesMerge)]
pub fn patches_merge(
    channels: usize,
    top: usize,
    values: Vec<f32>,
    images: Vec<i32>,
    ys: Vec<i32>,
    xs: Vec<i32>,
) -> Result<Object, JsValue> {
    let (values, images, ys, xs) = convlens_core::vis::patches::merge_lists(channels, top, &values, &images, &ys, &xs).map_err(js_err)?;
    let o = Object::new();
    set(&o, "values", Float32Array::from(values.as_slice()));
    set(&o, "images", Int32Array::from(images.as_slice()));
    set(&o, "ys", Int32Array::from(ys.as_slice()));
    set(&o, "xs", Int32Array::from(xs.as_slice()));
    Ok(o)
}

#[wasm_bindgen]
impl Engine {
    /// Starts a dataset view on the current network and dataset: `kind` is patches, tsne or
    /// landscape; `settings` any keys of `settingsSchema(kind)`; `part` [k, n] (optional): part k
    /// of a job split across n engines (the loss surface's line and plane split, its state then
    /// has `landscape.part`; patches split their images, `patches.part` [start, end], put
    /// together with `patchesMerge`; t-SNE runs whole). Resolves to its state with its `id`.
    #[wasm_bindgen(js_name = datasetStart)]
    pub fn dataset_start(&self, kind: String, settings: JsValue, part: Option<Vec<u32>>) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            if !matches!(kind.as_str(), "patches" | "tsne" | "landscape") {
                return Err(js_err(format!("unknown dataset view '{kind}'; expected patches, tsne or landscape")));
            }
            let given = settings_json(&settings, &kind)?;
            let part = match part.as_deref() {
                None => None,
                Some(&[k, n]) => Some((k as usize, n as usize)),
                Some(other) => return Err(js_err(format!("part: expected [k, n], got {} numbers", other.len()))),
            };
            let (id, p) = session.start_job(&kind, Inputs { part, ..Inputs::default() }, &given).await.map_err(js_err)?;
            Ok(progress_js(id, &p).into())
        })
    }

    /// Runs dataset job `id` for about `budget_ms`; resolves to its state.
    #[wasm_bindgen(js_name = datasetStep)]
    pub fn dataset_step(&self, id: u32, budget_ms: f64) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let p = session.step_job(id, Budget::Ms(budget_ms), &now).await.map_err(js_err)?;
            Ok(progress_js(id, &p).into())
        })
    }

    /// The pictures of patches: layer `layer`'s receptive field around units (`images`, `ys`,
    /// `xs`, as a patches state lists them; image -1: none) in the `split`'s images, zero-padded
    /// at the image's edge. Returns {data: Float32Array [n, D, h, w], shape: [D, h, w]}.
    #[wasm_bindgen(js_name = patchCrops)]
    pub fn patch_crops(&self, split: &str, layer: u32, images: Vec<i32>, ys: Vec<i32>, xs: Vec<i32>) -> Result<JsValue, JsValue> {
        let (data, shape) = self.session.patch_crops(split, layer as usize, &images, &ys, &xs).map_err(js_err)?;
        let o = Object::new();
        set(&o, "data", Float32Array::from(data.as_slice()));
        set(&o, "shape", shape_js(&shape));
        Ok(o.into())
    }

    /// The deconvnet (`rule` deconvnet) or guided-backprop (guided) pictures of units' patches:
    /// the gradient of each unit (`channels`, `ys`, `xs` of layer `layer`) with respect to its image
    /// (`images`, of the split), cropped like its patch. Resolves to {data: Float32Array
    /// [n, D, h, w], shape: [D, h, w]}.
    #[wasm_bindgen(js_name = patchMaps)]
    #[allow(clippy::too_many_arguments)]
    pub fn patch_maps(
        &self,
        split: String,
        layer: u32,
        channels: Vec<i32>,
        images: Vec<i32>,
        ys: Vec<i32>,
        xs: Vec<i32>,
        rule: String,
    ) -> Promise {
        let session = self.session.clone();
        future_to_promise(async move {
            let (data, shape) = session.patch_maps(&split, layer as usize, &channels, &images, &ys, &xs, &rule).await.map_err(js_err)?;
            let o = Object::new();
            set(&o, "data", Float32Array::from(data.as_slice()));
            set(&o, "shape", shape_js(&shape));
            Ok(o.into())
        })
    }

    /// Decoded images (CHW each, values in [0, 1]; `shape` [D, H, W]) as the dataset, both splits:
    /// a folder of photos for Tiny VGG or MobileNet. `labels`: one per image (empty: all 0);
    /// `classes`: the class names.
    #[wasm_bindgen(js_name = loadImages)]
    pub fn load_images(&self, name: &str, pixels: Vec<f32>, shape: Vec<u32>, labels: Vec<u8>, classes: Array) -> Result<JsValue, JsValue> {
        if shape.len() != 3 {
            return Err(js_err(format!("images: the shape needs 3 sizes (depth, height, width), got {}", shape.len())));
        }
        let classes: Vec<String> = classes.iter().map(|c| c.as_string().unwrap_or_default()).collect();
        let shape = [shape[0] as usize, shape[1] as usize, shape[2] as usize];
        let d = data::images(shape, pixels, labels, classes).map_err(js_err)?;
        to_js(&self.session.set_data(name, d.clone(), d))
    }
}

/// The first `k` principal components of `n` codes of `dim` values (row-major): the engine's PCA
/// (a randomized SVD on the host, as t-SNE reduces its codes): a Float32Array `[n, k']`
/// (k' = min(k, n, dim)). The dataset benchmark gives the same points to other t-SNEs.
#[wasm_bindgen]
pub fn pca(codes: Vec<f32>, n: u32, dim: u32, k: u32) -> Result<Float32Array, JsValue> {
    let p = convlens_core::vis::pca::pca(&codes, n as usize, dim as usize, k as usize, 0).map_err(js_err)?;
    Ok(Float32Array::from(p.scores.as_slice()))
}
