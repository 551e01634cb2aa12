//! TFLite flatbuffers (`.tflite`): the quantized MobileNets as they are published (google-coral's
//! `mobilenet_v2_1.0_224_quant.tflite`), read directly so that the page and the CLI need no
//! conversion step. The model's ops become the same op list as `oplist.rs` reads (a float32
//! conversion: weights dequantized as (q - zero_point) * scale, laid out (out, in, kh, kw)), and
//! the uint8 input's dequantization becomes its `scale` layer.
//!
//! The flatbuffer is read by hand (only the tables a CNN needs: Model, OperatorCode, SubGraph,
//! Tensor, QuantizationParameters, Operator, Buffer and the conv/pool/add options), every offset
//! checked, so a truncated or corrupt file gives a message, not a panic.

use serde_json::{Value, json};
use std::collections::HashMap;

use crate::Error;
use crate::spec::NetSpec;

fn err(m: impl Into<String>) -> Error {
    Error::Weights(format!("tflite: {}", m.into()))
}

/// Bounds-checked reads of a flatbuffer.
struct Fb<'a>(&'a [u8]);

impl<'a> Fb<'a> {
    fn bytes(&self, pos: usize, n: usize) -> Result<&'a [u8], Error> {
        self.0
            .get(pos..pos.checked_add(n).ok_or_else(|| err("offset overflow"))?)
            .ok_or_else(|| err(format!("the file is truncated or corrupt (read of {n} bytes at {pos} past its {} bytes)", self.0.len())))
    }
    fn u8(&self, pos: usize) -> Result<u8, Error> {
        Ok(self.bytes(pos, 1)?[0])
    }
    fn u16(&self, pos: usize) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.bytes(pos, 2)?.try_into().expect("2 bytes")))
    }
    fn u32(&self, pos: usize) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.bytes(pos, 4)?.try_into().expect("4 bytes")))
    }
    fn i32(&self, pos: usize) -> Result<i32, Error> {
        Ok(self.u32(pos)? as i32)
    }
    /// The position of field `i` of the table at `t`, if present.
    fn field(&self, t: usize, i: usize) -> Result<Option<usize>, Error> {
        let vt = (t as i64 - self.i32(t)? as i64) as usize;
        let vsize = self.u16(vt)? as usize;
        let at = 4 + 2 * i;
        if at + 2 > vsize {
            return Ok(None);
        }
        let off = self.u16(vt + at)? as usize;
        Ok((off != 0).then_some(t + off))
    }
    /// The table, vector or string that field `i` points to.
    fn deref(&self, t: usize, i: usize) -> Result<Option<usize>, Error> {
        Ok(match self.field(t, i)? {
            Some(p) => Some(p + self.u32(p)? as usize),
            None => None,
        })
    }
    fn scalar_u32(&self, t: usize, i: usize, default: u32) -> Result<u32, Error> {
        self.field(t, i)?.map_or(Ok(default), |p| self.u32(p))
    }
    fn scalar_i32(&self, t: usize, i: usize, default: i32) -> Result<i32, Error> {
        self.field(t, i)?.map_or(Ok(default), |p| self.i32(p))
    }
    fn scalar_u8(&self, t: usize, i: usize, default: u8) -> Result<u8, Error> {
        self.field(t, i)?.map_or(Ok(default), |p| self.u8(p))
    }
    /// A vector's length and the position of its first element.
    fn vector(&self, v: usize) -> Result<(usize, usize), Error> {
        Ok((self.u32(v)? as usize, v + 4))
    }
    /// The tables of a vector of tables (field `i` of table `t`).
    fn tables(&self, t: usize, i: usize) -> Result<Vec<usize>, Error> {
        let Some(v) = self.deref(t, i)? else { return Ok(vec![]) };
        let (n, start) = self.vector(v)?;
        (0..n)
            .map(|k| {
                let p = start + 4 * k;
                Ok(p + self.u32(p)? as usize)
            })
            .collect()
    }
    fn i32s(&self, t: usize, i: usize) -> Result<Vec<i32>, Error> {
        let Some(v) = self.deref(t, i)? else { return Ok(vec![]) };
        let (n, start) = self.vector(v)?;
        (0..n).map(|k| self.i32(start + 4 * k)).collect()
    }
    fn f32s(&self, t: usize, i: usize) -> Result<Vec<f32>, Error> {
        Ok(self.i32s(t, i)?.into_iter().map(|v| f32::from_bits(v as u32)).collect())
    }
    fn i64s(&self, t: usize, i: usize) -> Result<Vec<i64>, Error> {
        let Some(v) = self.deref(t, i)? else { return Ok(vec![]) };
        let (n, start) = self.vector(v)?;
        (0..n).map(|k| Ok(i64::from_le_bytes(self.bytes(start + 8 * k, 8)?.try_into().expect("8 bytes")))).collect()
    }
    fn ubytes(&self, t: usize, i: usize) -> Result<&'a [u8], Error> {
        let Some(v) = self.deref(t, i)? else { return Ok(&[]) };
        let (n, start) = self.vector(v)?;
        self.bytes(start, n)
    }
}

struct Tensor {
    shape: Vec<usize>,
    ty: u8,
    buffer: usize,
    scale: Vec<f32>,
    zero_point: Vec<i64>,
    qdim: usize,
}

/// A `.tflite` model as an op list (the format of `oplist.rs`) and its float32 weights by name
/// (`op<i>.weight` / `op<i>.bias`, with shapes).
pub struct Model {
    pub op_list: Value,
    pub weights: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

const ACT: [&str; 4] = ["none", "relu", "relu_n1_to_1", "relu6"];

/// Reads a `.tflite` file.
pub fn read(bytes: &[u8]) -> Result<Model, Error> {
    if bytes.len() < 8 || &bytes[4..8] != b"TFL3" {
        return Err(err("not a TFLite file (no 'TFL3' identifier)"));
    }
    let fb = Fb(bytes);
    let model = fb.u32(0)? as usize;
    let codes: Vec<i32> = fb
        .tables(model, 1)?
        .into_iter()
        .map(|c| {
            let old = fb.scalar_u8(c, 0, 0)? as i32;
            let new = fb.scalar_i32(c, 3, 0)?;
            Ok(new.max(old))
        })
        .collect::<Result<_, Error>>()?;
    let buffers = fb.tables(model, 4)?;
    let subgraphs = fb.tables(model, 2)?;
    let sg = *subgraphs.first().ok_or_else(|| err("the model has no subgraph"))?;
    let tensors: Vec<Tensor> = fb
        .tables(sg, 0)?
        .into_iter()
        .map(|t| {
            let q = fb.deref(t, 4)?;
            let (scale, zero_point, qdim) = match q {
                Some(q) => (fb.f32s(q, 2)?, fb.i64s(q, 3)?, fb.scalar_i32(q, 6, 0)? as usize),
                None => (vec![], vec![], 0),
            };
            Ok(Tensor {
                shape: fb.i32s(t, 0)?.into_iter().map(|d| d.max(0) as usize).collect(),
                ty: fb.scalar_u8(t, 1, 0)?,
                buffer: fb.scalar_u32(t, 2, 0)? as usize,
                scale,
                zero_point,
                qdim,
            })
        })
        .collect::<Result<_, Error>>()?;
    let inputs = fb.i32s(sg, 1)?;
    let outputs = fb.i32s(sg, 2)?;
    let input = *inputs.first().ok_or_else(|| err("the model has no input"))? as usize;
    let it = tensors.get(input).ok_or_else(|| err("the input tensor does not exist"))?;
    // Dequantized values of a constant tensor.
    let values = |id: usize| -> Result<Vec<f32>, Error> {
        let t = tensors.get(id).ok_or_else(|| err(format!("tensor {id} does not exist")))?;
        let b = *buffers.get(t.buffer).ok_or_else(|| err(format!("tensor {id} names buffer {}, which does not exist", t.buffer)))?;
        let data = fb.ubytes(b, 0)?;
        let n = t
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| err(format!("tensor {id}: shape {:?} is too large", t.shape)))?;
        let raw: Vec<f32> = match t.ty {
            0 if data.len() / 4 == n && data.len() % 4 == 0 => {
                data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
            }
            2 if data.len() / 4 == n && data.len() % 4 == 0 => {
                data.chunks(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f32).collect()
            }
            3 if data.len() == n => data.iter().map(|&v| v as f32).collect(),
            9 if data.len() == n => data.iter().map(|&v| v as i8 as f32).collect(),
            ty => {
                return Err(err(format!(
                    "tensor {id}: type {ty} with {} bytes for {n} values is not supported (float32, int32, uint8, int8)",
                    data.len()
                )));
            }
        };
        if t.ty == 0 || t.scale.is_empty() {
            return Ok(raw);
        }
        // Per-tensor or per-channel (along `qdim`) scale and zero point.
        let inner = t.shape.iter().skip(t.qdim + 1).fold(1usize, |a, &d| a.saturating_mul(d));
        let chans = t.shape.get(t.qdim).copied().unwrap_or(1);
        Ok(raw
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let c = if t.scale.len() > 1 { (i / inner.max(1)) % chans.max(1) } else { 0 };
                let zp = t.zero_point.get(c).or(t.zero_point.first()).copied().unwrap_or(0) as f32;
                (q - zp) * t.scale[c.min(t.scale.len() - 1)]
            })
            .collect())
    };
    let mut ops = vec![];
    let mut weights = HashMap::new();
    for (i, op) in fb.tables(sg, 3)?.into_iter().enumerate() {
        let code = *codes.get(fb.scalar_u32(op, 0, 0)? as usize).ok_or_else(|| err(format!("op {i} has an unknown opcode index")))?;
        let ins: Vec<usize> = fb.i32s(op, 1)?.into_iter().filter(|&v| v >= 0).map(|v| v as usize).collect();
        let outs: Vec<usize> = fb.i32s(op, 2)?.into_iter().map(|v| v.max(0) as usize).collect();
        let opts = fb.deref(op, 4)?;
        let opt_i32 = |k: usize, d: i32| opts.map_or(Ok(d), |o| fb.scalar_i32(o, k, d));
        let opt_u8 = |k: usize, d: u8| opts.map_or(Ok(d), |o| fb.scalar_u8(o, k, d));
        let padding = |k| -> Result<&str, Error> { Ok(if opt_u8(k, 0)? == 0 { "SAME" } else { "VALID" }) };
        let act = |k| -> Result<&str, Error> { Ok(ACT.get(opt_u8(k, 0)? as usize).copied().unwrap_or("unknown")) };
        let name = format!("op{i}");
        let v = match code {
            3 | 4 => {
                // Weights: CONV_2D [out, kh, kw, in]; DEPTHWISE_CONV_2D [1, kh, kw, channels].
                let w = *ins.get(1).ok_or_else(|| err(format!("op {i} has no weights")))?;
                let s = &tensors.get(w).ok_or_else(|| err(format!("op {i}: its weights are tensor {w}, which does not exist")))?.shape;
                let [o, kh, kw, ci] = <[usize; 4]>::try_from(s.as_slice()).map_err(|_| err(format!("op {i}: weights of shape {s:?}")))?;
                let q = values(w)?;
                let (shape, data) = if code == 3 {
                    let mut d = vec![0f32; o * ci * kh * kw];
                    for a in 0..o {
                        for y in 0..kh {
                            for x in 0..kw {
                                for c in 0..ci {
                                    d[((a * ci + c) * kh + y) * kw + x] = q[((a * kh + y) * kw + x) * ci + c];
                                }
                            }
                        }
                    }
                    (vec![o, ci, kh, kw], d)
                } else {
                    let mut d = vec![0f32; ci * kh * kw];
                    for y in 0..kh {
                        for x in 0..kw {
                            for c in 0..ci {
                                d[(c * kh + y) * kw + x] = q[(y * kw + x) * ci + c];
                            }
                        }
                    }
                    (vec![ci, 1, kh, kw], d)
                };
                weights.insert(format!("{name}.weight"), (shape, data));
                let mut j = json!({"op": if code == 3 { "CONV_2D" } else { "DEPTHWISE_CONV_2D" }, "inputs": ins, "outputs": outs,
                    "stride": [opt_i32(2, 1)?, opt_i32(1, 1)?], "padding": padding(0)?, "act": act(if code == 3 { 3 } else { 4 })?, "weight": format!("{name}.weight")});
                if let Some(&b) = ins.get(2) {
                    let n = if code == 3 { o } else { ci };
                    weights.insert(format!("{name}.bias"), (vec![n], values(b)?));
                    j["bias"] = json!(format!("{name}.bias"));
                }
                j
            }
            0 => json!({"op": "ADD", "inputs": ins, "outputs": outs, "act": act(0)?}),
            1 | 17 => json!({"op": if code == 1 { "AVERAGE_POOL_2D" } else { "MAX_POOL_2D" }, "inputs": ins, "outputs": outs,
                "stride": [opt_i32(2, 1)?, opt_i32(1, 1)?], "kernel": [opt_i32(4, 1)?, opt_i32(3, 1)?], "padding": padding(0)?, "act": act(5)?}),
            22 => json!({"op": "RESHAPE", "inputs": &ins[..1.min(ins.len())], "outputs": outs}),
            25 => json!({"op": "SOFTMAX", "inputs": ins, "outputs": outs}),
            c => {
                return Err(err(format!(
                    "op {i}: builtin operator {c} is not supported (CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE, SOFTMAX)"
                )));
            }
        };
        ops.push(v);
    }
    let [_, h, w, c] = <[usize; 4]>::try_from(it.shape.as_slice())
        .map_err(|_| err(format!("the input has shape {:?}; expected [1, H, W, C]", it.shape)))?;
    let mut op_list = json!({"source": "TFLite model", "input_tensor": input, "output_tensor": outputs.first().copied().unwrap_or(0), "input_shape_nhwc": [1, h, w, c], "ops": ops});
    if it.ty == 3 && !it.scale.is_empty() {
        op_list["input_quant"] = json!({"scale": it.scale[0], "zero_point": it.zero_point.first().copied().unwrap_or(0)});
    }
    Ok(Model { op_list, weights })
}

impl Model {
    /// The network spec (class names if given).
    pub fn spec(&self, classes: Option<Vec<String>>) -> Result<NetSpec, Error> {
        let shape = |n: &str| self.weights.get(n).map(|(s, _)| s.clone());
        crate::oplist::spec(&self.op_list.to_string(), &shape, classes)
    }

    /// The weights in each layer's parameter order, for [`crate::Net::with_weights`].
    pub fn layer_weights(&self, spec: &NetSpec) -> Result<Vec<Vec<Vec<f32>>>, Error> {
        spec.layers
            .iter()
            .map(|l| {
                l.params()
                    .iter()
                    .map(|p| {
                        let (shape, data) = self.weights.get(&p.name).ok_or_else(|| err(format!("no tensor for {}", p.name)))?;
                        if *shape != p.shape {
                            return Err(err(format!("{} has shape {shape:?}; the layer needs {:?}", p.name, p.shape)));
                        }
                        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                            return Err(err(format!("{} has a non-finite value ({}) at index {i}", p.name, data[i])));
                        }
                        Ok(data.clone())
                    })
                    .collect()
            })
            .collect()
    }
}
