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
    let st = read(bytes)?;
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

/// A safetensors file, read; a broken one is refused with what is wrong and, where one is at
/// fault, the tensor's name (the safetensors crate's messages name neither).
pub fn read(bytes: &[u8]) -> Result<SafeTensors<'_>, Error> {
    SafeTensors::deserialize(bytes).map_err(|e| invalid(bytes, &e.to_string()))
}

/// What is wrong with a file the safetensors crate refused, found by reading its header again.
fn invalid(bytes: &[u8], crate_says: &str) -> Error {
    let bad = |m: String| Error::Weights(format!("not a valid safetensors file: {m}"));
    let Some(n) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))) else {
        return bad(format!("{} bytes, shorter than the 8-byte header length", bytes.len()));
    };
    let Some(header) = usize::try_from(n).ok().and_then(|n| bytes.get(8..8usize.checked_add(n)?)) else {
        return bad(format!("the header claims {n} bytes; the file has {} after the length", bytes.len() - 8));
    };
    let Ok(serde_json::Value::Object(h)) = serde_json::from_slice::<serde_json::Value>(header) else {
        return bad(format!("the header is not a JSON object ({crate_says})"));
    };
    let data = (bytes.len() - 8 - header.len()) as u64;
    let mut covered = 0u64;
    for (name, t) in h.iter().filter(|(k, _)| *k != "__metadata__") {
        let name = crate::spec::cut(name, 60);
        let size: u64 = match t["dtype"].as_str() {
            Some("F64" | "I64" | "U64") => 8,
            Some("F32" | "I32" | "U32") => 4,
            Some("F16" | "BF16" | "I16" | "U16") => 2,
            Some("I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2") => 1,
            other => return bad(format!("tensor '{name}' has dtype {other:?}")),
        };
        let shape: Option<Vec<u64>> = t["shape"].as_array().and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let offsets: Option<Vec<u64>> = t["data_offsets"].as_array().and_then(|a| a.iter().map(|d| d.as_u64()).collect());
        let (Some(shape), Some([start, end])) = (shape, offsets.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok())) else {
            return bad(format!("tensor '{name}' has no valid shape or data_offsets"));
        };
        let want = shape.iter().try_fold(size, |a, &d| a.checked_mul(d));
        if want != end.checked_sub(start) {
            return bad(format!(
                "tensor '{name}' is {} {shape:?} ({} bytes) but its data_offsets [{start}, {end}] hold {} bytes",
                t["dtype"].as_str().unwrap_or("?"),
                want.map_or("over 2^64".into(), |w| w.to_string()),
                end.saturating_sub(start)
            ));
        }
        if end > data {
            return bad(format!("tensor '{name}' ends at byte {end} of the data, which has {data} bytes (a truncated file?)"));
        }
        covered = covered.max(end);
    }
    if covered != data {
        return bad(format!("the tensors cover {covered} of the {data} data bytes (a truncated file, or bytes appended to it)"));
    }
    bad(crate_says.to_string())
}

/// The spec stored in a file's metadata, if any.
pub fn embedded_spec(bytes: &[u8]) -> Result<Option<String>, Error> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| invalid(bytes, &e.to_string()))?;
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
