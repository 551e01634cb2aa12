//! Weights on disk: safetensors with PyTorch's tensor names and layouts (`conv1.weight` as
//! (out, in, kh, kw), `fc1.weight` as (out, in), batchnorm `weight`, `bias`, `running_mean`,
//! `running_var`), so that a state_dict of the same architecture moves both ways. The spec is
//! stored in the file's metadata under `convlens_spec` so that one file can carry a whole model.

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::HashMap;

use crate::Error;
use crate::spec::NetSpec;

pub const SPEC_KEY: &str = "convlens_spec";

/// Reads the weights for `spec` from a safetensors file, strictly: every parameter must be there
/// with its exact shape, and nothing else may be (except batchnorm's `num_batches_tracked`).
pub fn load(spec: &NetSpec, bytes: &[u8]) -> Result<Vec<Vec<Vec<f32>>>, Error> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("not a valid safetensors file ({e})")))?;
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(spec.layers.len());
    for layer in &spec.layers {
        let mut lw = vec![];
        for p in layer.params() {
            let t = st.tensor(&p.name).map_err(|_| {
                Error::Weights(format!(
                    "the file has no tensor '{}' (expected shape {:?} for layer {} '{}')",
                    p.name, p.shape, layer.index, layer.name
                ))
            })?;
            if t.shape() != p.shape.as_slice() {
                return Err(Error::Weights(format!(
                    "tensor '{}' has shape {:?}; layer {} '{}' expects {:?}",
                    p.name,
                    t.shape(),
                    layer.index,
                    layer.name,
                    p.shape
                )));
            }
            lw.push(to_f32(&p.name, &t)?);
            used.insert(p.name.clone());
        }
        out.push(lw);
    }
    let mut extra: Vec<String> =
        st.names().into_iter().filter(|n| !used.contains(*n) && !n.ends_with(".num_batches_tracked")).map(String::from).collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(Error::Weights(format!(
            "the file has tensors this network does not use: {} (is it for another architecture?)",
            extra.join(", ")
        )));
    }
    Ok(out)
}

fn to_f32(name: &str, t: &TensorView) -> Result<Vec<f32>, Error> {
    let data = t.data();
    let v: Vec<f32> = match t.dtype() {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => data.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        other => return Err(Error::Weights(format!("tensor '{name}' is {other:?}; expected F32 (or F64)"))),
    };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::Weights(format!("tensor '{name}' has a non-finite value ({}) at index {i}", v[i])));
    }
    Ok(v)
}

/// The spec stored in a file's metadata, if any.
pub fn embedded_spec(bytes: &[u8]) -> Result<Option<String>, Error> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::Weights(format!("not a valid safetensors file ({e})")))?;
    Ok(meta.metadata().as_ref().and_then(|m| m.get(SPEC_KEY).cloned()))
}

/// Writes the weights as safetensors, with the spec in the metadata.
pub fn save(spec: &NetSpec, weights: &[Vec<Vec<f32>>]) -> Result<Vec<u8>, Error> {
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = vec![];
    for (layer, lw) in spec.layers.iter().zip(weights) {
        for (p, w) in layer.params().iter().zip(lw) {
            bytes.push((p.name.clone(), p.shape.clone(), w.iter().flat_map(|x| x.to_le_bytes()).collect()));
        }
        if matches!(layer.kind, crate::spec::LayerKind::BatchNorm(_)) {
            // PyTorch's BatchNorm2d state_dict has it; load_state_dict(strict=True) wants it.
            bytes.push((format!("{}.num_batches_tracked", layer.name), vec![], 0i64.to_le_bytes().to_vec()));
        }
    }
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            let dtype = if s.is_empty() { Dtype::I64 } else { Dtype::F32 };
            Ok((n.clone(), TensorView::new(dtype, s.clone(), b).map_err(|e| Error::Weights(e.to_string()))?))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let meta = HashMap::from([(SPEC_KEY.to_string(), spec.json.to_string())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::Weights(e.to_string()))
}
