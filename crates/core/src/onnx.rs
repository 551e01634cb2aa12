//! ONNX models (`.onnx`, as `torch.onnx.export` writes them) become a [`NetSpec`] and its weights,
//! so that every view works on a student's own model, with gradients.
//!
//! Parsed by onnx-ir 0.22, the parser of Burn's own ONNX importer (chosen over a hand-written
//! protobuf reader: it reads every opset, folds constants and shapes — the Shape/Gather/Concat
//! chains the TorchScript exporter writes for a padding or a flatten become plain numbers — and
//! turns Gemm and MatMul with constant weights into one linear node). Each remaining node becomes
//! one ConvLens layer named after it; Identity, Dropout and the Squeeze/Unsqueeze/Reshape/Flatten
//! of a `[N, C, 1, 1]` tensor only rename a tensor.
//!
//! Ops: Conv (groups, dilations, pads, strides, auto_pad; square kernels), Gemm, MatMul (a
//! constant weight), Add, Sub, Mul and Div (of two tensors of one shape, or of a tensor and a
//! constant per channel), Relu, LeakyRelu, Clip, Sigmoid, Tanh, HardSigmoid, HardSwish, MaxPool and
//! AveragePool (square windows, symmetric pads, ceil_mode, count_include_pad), GlobalAveragePool,
//! GlobalMaxPool, ReduceMean over height and width, BatchNormalization, Concat (channels),
//! Flatten, Reshape, Squeeze, Unsqueeze, Softmax, Dropout, Identity, Pad (constant). Anything else
//! is refused, before the graph is processed, with the node's name, its op type and where to ask.
//!
//! The input's normalization (`(x - mean) / std` per channel) is a setting kept with the model: it
//! becomes the net's first layer (`scale`), so that the views take [0, 1] images. It comes from the
//! caller, or from the file's metadata (`convlens.mean`, `convlens.std`: comma-separated).

use onnx_ir::{ArgType, Argument, Message, ModelProto, Node, OnnxGraphBuilder};
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::Error;
use crate::spec::{Names, NetSpec, Shape3, transpose};

/// Where users ask for an op that is not imported yet (the project has no public address yet:
/// when it has one, it goes here).
pub const ASK: &str = "ConvLens's issue tracker (name the op type and the exporter)";

/// The op types imported (as the file names them).
pub const OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "ReduceMean",
    "BatchNormalization",
    "Concat",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Softmax",
    "Dropout",
    "Identity",
    "Pad",
];

/// Ops that only compute constants (shapes, paddings) and fold away.
const FOLDED: &[&str] =
    &["Constant", "Shape", "Gather", "Cast", "Slice", "ConstantOfShape", "Range", "Transpose", "Equal", "Where", "Expand"];

fn err(m: impl Into<String>) -> Error {
    Error::Model(format!("ONNX: {}", m.into()))
}

pub use crate::import::Normalize;

/// A model read from an ONNX file.
pub struct Model {
    pub spec: NetSpec,
    /// Per layer, its parameters in [`crate::spec::Layer::params`]' order.
    pub weights: Vec<Vec<Vec<f32>>>,
    /// The normalization the net's first layer applies (None: the model takes [0, 1] images).
    pub normalize: Option<Normalize>,
    /// The producer named in the file (`pytorch 2.15.0`).
    pub producer: String,
}

/// Reads an ONNX model. `normalize` overrides the file's own (`convlens.mean`/`convlens.std`
/// metadata); `classes` names the scores (else they are numbered).
pub fn read(bytes: &[u8], normalize: Option<Normalize>, classes: Option<Vec<String>>) -> Result<Model, Error> {
    let proto = parse(bytes)?;
    let graph = proto.graph.as_ref().filter(|g| !g.node.is_empty()).ok_or_else(|| err("the file has no graph: it is not an ONNX model"))?;
    // Refuse unsupported ops before onnx-ir processes (and allocates for) the graph.
    for (i, n) in graph.node.iter().enumerate() {
        let domain = n.domain.as_str();
        let custom = !(domain.is_empty() || domain == "ai.onnx");
        if custom || !(OPS.contains(&n.op_type.as_str()) || FOLDED.contains(&n.op_type.as_str())) {
            return Err(unsupported(
                &node_label(&n.name, i),
                &format!("{}{}", if custom { format!("{domain}.") } else { String::new() }, n.op_type),
            ));
        }
    }
    let meta = |key: &str| proto.metadata_props.iter().find(|p| p.key == key).map(|p| p.value.clone());
    let from_file = match (meta("convlens.mean"), meta("convlens.std")) {
        (Some(m), Some(s)) => {
            let list = |t: &str| t.split(',').map(|v| v.trim().parse::<f64>()).collect::<Result<Vec<_>, _>>();
            match (list(&m), list(&s)) {
                (Ok(mean), Ok(std)) => Some(Normalize { mean, std }),
                _ => return Err(err(format!("the file's convlens.mean '{m}' or convlens.std '{s}' is not a list of numbers"))),
            }
        }
        _ => None,
    };
    let normalize = normalize.or(from_file);
    let producer = format!("{} {}", proto.producer_name, proto.producer_version).trim().to_string();
    drop(proto);

    let g = OnnxGraphBuilder::new().parse_bytes(bytes).map_err(|e| err(format!("the graph could not be read: {e}")))?;
    let mut b = Builder { layers: vec![], weights: vec![], tensors: HashMap::new(), names: Names::default(), producers: HashMap::new() };
    let input = g.inputs.iter().find(|a| a.value().is_none()).ok_or_else(|| err("the graph has no input"))?;
    let dims = static_dims(input).ok_or_else(|| {
        err(format!(
            "the input '{}' has no fixed size ({:?}); export the model with a fixed input size (torch.onnx.export with a 1x3xHxW example)",
            input.name, input.ty
        ))
    })?;
    let [_, c, h, w] = <[usize; 4]>::try_from(dims.as_slice())
        .map_err(|_| err(format!("the input '{}' has shape {dims:?}; expected an image batch [N, C, H, W]", input.name)))?;
    b.push("input", json!({"type": "input", "width": w, "height": h, "depth": c}), vec![]);
    let mut top = "input".to_string();
    if let Some(n) = &normalize {
        let mut layer = n.layer(c)?;
        layer["inputs"] = json!(["input"]);
        top = b.push("normalize", layer, vec![]);
    }
    b.tensors.insert(input.name.clone(), T { layer: top, shape: [c, h, w], rank: 4 });
    for (i, node) in g.nodes.iter().enumerate() {
        b.node(i, node)?;
    }
    let out = g.outputs.first().ok_or_else(|| err("the graph has no output"))?;
    let last = b.tensor(&out.name, "the graph's output")?;
    if b.layers.last().and_then(|l| l["name"].as_str()) != Some(last.layer.as_str()) {
        return Err(err(format!(
            "the output '{}' is not the last node's; ConvLens reads a net whose last node gives the scores",
            out.name
        )));
    }
    let mut spec = json!({"name": "onnx model", "layers": b.layers});
    if let Some(names) = classes {
        spec["classes"] = json!(names);
    }
    let spec = NetSpec::from_value(&spec)?;
    crate::spec::check_weights(&spec, &b.weights).map_err(err)?;
    Ok(Model { spec, weights: b.weights, normalize, producer })
}

fn node_label(name: &str, i: usize) -> String {
    if name.is_empty() { format!("node {i}") } else { format!("node {i} '{}'", crate::spec::cut(name, 60)) }
}

fn unsupported(node: &str, op: &str) -> Error {
    let article = if op.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    err(format!("{node} is {article} {op}, which ConvLens does not import (it imports {}); ask for it on {ASK}", OPS.join(", ")))
}

/// The file as a protobuf ModelProto, or a message saying what it is instead.
fn parse(bytes: &[u8]) -> Result<ModelProto, Error> {
    if bytes.is_empty() {
        return Err(err("the file is empty"));
    }
    let looks = match bytes {
        [0x89, b'P', b'N', b'G', ..] => Some("a PNG image"),
        [0xff, 0xd8, ..] => Some("a JPEG image"),
        [b'P', b'K', ..] => Some("a zip archive (a PyTorch .pt/.pth checkpoint? export it with torch.onnx.export)"),
        [b'{', ..] | [b'[', ..] => Some("JSON (a TF.js model.json or a ConvLens spec? open it as that)"),
        [0x80, ..] => Some("a Python pickle (a PyTorch checkpoint? export it with torch.onnx.export)"),
        [_, _, _, _, b'T', b'F', b'L', b'3', ..] => Some("a TFLite model (open it as .tflite)"),
        [b'\x89', b'H', b'D', b'F', ..] => Some("an HDF5 file (a Keras .h5? convert it with tensorflowjs_converter)"),
        _ => None,
    };
    if let Some(what) = looks {
        return Err(err(format!("the file is not an ONNX model: it is {what}")));
    }
    match ModelProto::parse_from_bytes(bytes) {
        Ok(m) if m.graph.is_some() => Ok(m),
        Ok(_) => Err(err("the file is not an ONNX model (no graph in it)")),
        Err(e) => {
            let e = e.to_string();
            if e.contains("EOF") || e.contains("truncated") {
                Err(err(format!("the file is truncated or corrupt ({} bytes; {e}): export or download it again", bytes.len())))
            } else {
                Err(err(format!("the file is not an ONNX model ({e})")))
            }
        }
    }
}

fn static_dims(a: &Argument) -> Option<Vec<usize>> {
    match &a.ty {
        ArgType::Tensor(t) => {
            let s = t.static_shape.as_ref()?;
            // The batch may be symbolic; the rest must be known.
            Some(s.iter().enumerate().map(|(i, d)| d.unwrap_or(if i == 0 { 1 } else { 0 })).collect())
                .filter(|d: &Vec<usize>| d[1..].iter().all(|&x| x > 0))
        }
        _ => None,
    }
}

/// Where a tensor comes from: a layer, its shape as ConvLens sees it (`[C, H, W]`; a `[N, K]`
/// tensor is `[K, 1, 1]`) and its rank in the file.
#[derive(Debug, Clone)]
struct T {
    layer: String,
    shape: Shape3,
    rank: usize,
}

struct Builder {
    layers: Vec<Value>,
    weights: Vec<Vec<Vec<f32>>>,
    tensors: HashMap<String, T>,
    /// Layer names taken, for unique names.
    names: Names,
    /// Which op computed each tensor (for messages).
    producers: HashMap<String, String>,
}

/// A constant's values as f32 and its shape.
fn constant(a: &Argument) -> Option<(Vec<f32>, Vec<usize>)> {
    let d = a.value()?;
    let shape: Vec<usize> = d.shape().iter().copied().collect();
    let v = d.convert::<f32>().try_into_vec::<f32>().ok()?;
    Some((v, shape))
}

impl Builder {
    fn push(&mut self, name: &str, mut layer: Value, weights: Vec<Vec<f32>>) -> String {
        let name = self.names.make(name, "layer");
        layer["name"] = json!(name);
        self.layers.push(layer);
        self.weights.push(weights);
        name
    }

    /// The last layer's output shape, from the layer's own parser (the spec so far is parsed): the
    /// importer does no shape arithmetic of its own.
    fn shape(&self, fail: &dyn Fn(String) -> Error) -> Result<Shape3, Error> {
        crate::spec::last_shape(&self.layers).map_err(|e| fail(e.to_string()))
    }

    fn tensor(&self, name: &str, who: &str) -> Result<T, Error> {
        self.tensors.get(name).cloned().ok_or_else(|| match self.producers.get(name) {
            // Shape arithmetic onnx-ir leaves unfolded: the TorchScript exporter writes F.pad and
            // some reshapes so.
            Some(op) if ["ConstantOfShape", "Shape", "Gather", "Slice", "Cast", "Concat", "Range", "Expand"].contains(&op.as_str()) => {
                err(format!(
                    "{who} reads '{name}', computed by a {op} from the tensors' shapes, which ConvLens does not fold; export with the \
                 default exporter (torch.onnx.export(..., dynamo=True): PyTorch 2.5 and later, the default since 2.9), which folds it"
                ))
            }
            _ => err(format!("{who} reads '{name}', which is neither the input nor computed from it")),
        })
    }

    /// One node's layer (or a new name for its input's tensor).
    fn node(&mut self, i: usize, node: &Node) -> Result<(), Error> {
        let label = node_label(node.name(), i);
        let op = node.node_type().to_string();
        let ins = node.inputs();
        for o in node.outputs() {
            self.producers.insert(o.name.clone(), op.clone());
        }
        let Some(out) = node.outputs().first() else { return Ok(()) };
        let out_rank = match &out.ty {
            ArgType::Tensor(t) => t.rank,
            _ => 0,
        };
        let dynamic: Vec<&Argument> = ins.iter().filter(|a| a.value().is_none() && !a.name.is_empty()).collect();
        if matches!(node, Node::Constant(_)) || (dynamic.is_empty() && !ins.is_empty()) {
            return Ok(()); // a constant: folded into the nodes that read it
        }
        let x =
            self.tensor(&dynamic.first().ok_or_else(|| err(format!("{label} ({op}) has no input")))?.name, &format!("{label} ({op})"))?;
        let fail = |why: String| err(format!("{label} ({op}): {why}"));
        let alias = |b: &mut Builder, shape: Shape3, rank: usize| {
            b.tensors.insert(out.name.clone(), T { layer: x.layer.clone(), shape, rank });
            Ok(())
        };
        let act = |b: &mut Builder, layer: Value| {
            let name = b.push(node.name(), merge(layer, json!({"inputs": [x.layer]})), vec![]);
            b.tensors.insert(out.name.clone(), T { layer: name, shape: x.shape, rank: x.rank });
            Ok(())
        };
        match node {
            Node::Conv2d(n) => {
                let cfg = &n.config;
                let (wv, ws) = ins.get(1).and_then(constant).ok_or_else(|| fail("its weights are not a constant".into()))?;
                let [filters, _, kh, kw] = <[usize; 4]>::try_from(ws.as_slice()).map_err(|_| fail(format!("weights of shape {ws:?}")))?;
                if kh != kw || cfg.stride[0] != cfg.stride[1] || cfg.dilation[0] != cfg.dilation[1] {
                    return Err(fail(format!(
                        "a {kh}x{kw} kernel, stride {:?}, dilation {:?}: ConvLens takes square kernels, strides and dilations",
                        cfg.stride, cfg.dilation
                    )));
                }
                let (k, s, d) = (kh, cfg.stride[0], cfg.dilation[0]);
                let [t, l, bo, r] = self.pads(&x, &cfg.padding, &cfg.auto_pad, k, s, d);
                let mut src = x.clone();
                let pad = if t == l && t == bo && t == r {
                    t
                } else {
                    // An asymmetric padding: a pad layer of its own first.
                    let pname = format!("{}_pad", node.name());
                    let pl = self.push(
                        &pname,
                        json!({"type": "pad", "inputs": [x.layer], "top": t, "left": l, "bottom": bo, "right": r}),
                        vec![],
                    );
                    src = T { layer: pl, shape: self.shape(&fail)?, rank: 4 };
                    0
                };
                let mut w = vec![wv];
                if let Some((bv, _)) = ins.get(2).and_then(constant) {
                    w.push(bv);
                }
                let bias = w.len() == 2;
                let layer = json!({"type": "conv", "inputs": [src.layer], "size": k, "filters": filters, "stride": s, "pad": pad,
                                   "groups": cfg.groups, "dilation": d, "bias": bias});
                let name = self.push(node.name(), layer, w);
                self.tensors.insert(out.name.clone(), T { layer: name, shape: self.shape(&fail)?, rank: 4 });
                Ok(())
            }
            Node::BatchNormalization(n) => {
                let eps = match &n.config {
                    onnx_ir::node::batch_norm::BatchNormConfig::Static(c) => c.epsilon,
                    onnx_ir::node::batch_norm::BatchNormConfig::Runtime(c) => c.epsilon,
                };
                let w: Option<Vec<Vec<f32>>> = ins[1..].iter().take(4).map(|a| constant(a).map(|c| c.0)).collect();
                let w = w.filter(|w| w.len() == 4 && w.iter().all(|v| v.len() == x.shape[0])).ok_or_else(|| {
                    fail(format!("its scale, bias, mean and variance must be constants of {} values (one per channel)", x.shape[0]))
                })?;
                let name = self.push(node.name(), json!({"type": "batchnorm", "inputs": [x.layer], "eps": eps.max(1e-12)}), w);
                self.tensors.insert(out.name.clone(), T { layer: name, shape: x.shape, rank: x.rank });
                Ok(())
            }
            Node::Relu(_) => act(self, json!({"type": "relu"})),
            Node::Sigmoid(_) => act(self, json!({"type": "sigmoid"})),
            Node::Tanh(_) => act(self, json!({"type": "tanh"})),
            Node::HardSwish(_) => act(self, json!({"type": "hard_swish"})),
            Node::LeakyRelu(n) => act(self, json!({"type": "leaky_relu", "alpha": n.config.alpha})),
            Node::HardSigmoid(n) => act(self, json!({"type": "hard_sigmoid", "alpha": n.config.alpha, "beta": n.config.beta})),
            Node::Clip(n) => {
                use onnx_ir::node::clip::ClipInput;
                let bound = |c: &Option<ClipInput>| match c {
                    None => Ok(None),
                    Some(ClipInput::Static(v)) => Ok(Some(*v)),
                    Some(ClipInput::Runtime(_)) => Err(fail("its bounds are computed, not constants".into())),
                };
                match (bound(&n.config.min)?, bound(&n.config.max)?) {
                    (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => act(self, json!({"type": "relu6"})),
                    (Some(0.0), None) => act(self, json!({"type": "relu"})),
                    (Some(lo), Some(hi)) if lo < hi && lo.abs() <= 1e6 && hi.abs() <= 1e6 => {
                        act(self, json!({"type": "clip", "min": lo, "max": hi}))
                    }
                    (lo, hi) => Err(fail(format!("clip to [{lo:?}, {hi:?}] is not imported (needs finite bounds)"))),
                }
            }
            Node::MaxPool2d(_) | Node::AveragePool2d(_) => {
                let (k, s, d, pads, auto, ceil, count_pad, mode) = match node {
                    Node::MaxPool2d(n) => {
                        let c = &n.config;
                        (c.kernel_size, c.strides, c.dilation, &c.padding, &c.auto_pad, c.ceil_mode, false, "max")
                    }
                    Node::AveragePool2d(n) => {
                        let c = &n.config;
                        (c.kernel_size, c.strides, c.dilation, &c.padding, &c.auto_pad, c.ceil_mode, c.count_include_pad, "avg")
                    }
                    _ => unreachable!("matched above"),
                };
                if k[0] != k[1] || s[0] != s[1] || d != [1, 1] {
                    return Err(fail(format!("a {k:?} window, stride {s:?}, dilation {d:?}: ConvLens takes square windows and strides")));
                }
                let [t, l, bo, r] = self.pads(&x, pads, auto, k[0], s[0], 1);
                if !(t == l && t == bo && t == r) || t * 2 > k[0] {
                    return Err(fail(format!(
                        "padding (top {t}, left {l}, bottom {bo}, right {r}) must be the same on every side and at most half the window"
                    )));
                }
                let layer = json!({"type": "pool", "inputs": [x.layer], "mode": mode, "size": k[0], "stride": s[0], "pad": t,
                                   "ceil": ceil, "count_pad": count_pad});
                let name = self.push(node.name(), layer, vec![]);
                self.tensors.insert(out.name.clone(), T { layer: name, shape: self.shape(&fail)?, rank: 4 });
                Ok(())
            }
            Node::GlobalAveragePool(_) | Node::GlobalMaxPool(_) | Node::ReduceMean(_) => {
                if let Node::ReduceMean(n) = node {
                    use onnx_ir::node::reduce::ReduceAxes;
                    let ok =
                        x.rank == 4 && matches!(&n.config.axes, ReduceAxes::Static(a) if { let mut a = a.clone(); a.sort(); a == [2, 3] });
                    if !ok {
                        return Err(fail(format!("a mean over axes {:?} is imported only over height and width (2, 3)", n.config.axes)));
                    }
                }
                let mode = if matches!(node, Node::GlobalMaxPool(_)) { "max" } else { "avg" };
                let name = self.push(node.name(), json!({"type": "globalpool", "inputs": [x.layer], "mode": mode}), vec![]);
                self.tensors.insert(out.name.clone(), T { layer: name, shape: [x.shape[0], 1, 1], rank: out_rank.max(2) });
                Ok(())
            }
            Node::Linear(n) => {
                let (wv, ws) = ins.get(1).and_then(constant).ok_or_else(|| fail("its weights are not a constant".into()))?;
                let [a, b] = <[usize; 2]>::try_from(ws.as_slice()).map_err(|_| fail(format!("weights of shape {ws:?}")))?;
                // ConvLens keeps (out, in), as Gemm's transB.
                let (units, fan_in, wv) = if n.config.transpose_weight { (a, b, wv) } else { (b, a, transpose(&wv, a, b)) };
                self.fc(node, &x, out, units, fan_in, wv, ins.get(2).and_then(constant).map(|c| c.0), &fail)
            }
            Node::Gemm(n) => {
                let c = &n.config;
                if c.trans_a != 0 {
                    return Err(fail("transA is not imported".into()));
                }
                let (wv, ws) = ins.get(1).and_then(constant).ok_or_else(|| fail("its B is not a constant".into()))?;
                let [a, b] = <[usize; 2]>::try_from(ws.as_slice()).map_err(|_| fail(format!("B of shape {ws:?}")))?;
                let (units, fan_in, wv) = if c.trans_b != 0 { (a, b, wv) } else { (b, a, transpose(&wv, a, b)) };
                let wv = wv.into_iter().map(|v| v * c.alpha).collect();
                let bias = match ins.get(2).and_then(constant) {
                    None => None,
                    Some((v, _)) if v.len() == units => Some(v.into_iter().map(|t| t * c.beta).collect()),
                    Some((v, _)) if v.len() == 1 => Some(vec![v[0] * c.beta; units]),
                    Some((_, s)) => return Err(fail(format!("C of shape {s:?} is not a bias of {units} values"))),
                };
                self.fc(node, &x, out, units, fan_in, wv, bias, &fail)
            }
            Node::Add(_) | Node::Sub(_) | Node::Mul(_) | Node::Div(_) => {
                let consts: Vec<(usize, (Vec<f32>, Vec<usize>))> =
                    ins.iter().enumerate().filter_map(|(j, a)| constant(a).map(|c| (j, c))).collect();
                if consts.is_empty() {
                    let ts = ins.iter().map(|a| self.tensor(&a.name, &label)).collect::<Result<Vec<_>, _>>()?;
                    let ty = match node {
                        Node::Add(_) => "add",
                        Node::Mul(_) => "mul",
                        _ => return Err(fail("of two computed tensors, only Add and Mul are imported".into())),
                    };
                    let shape = if ts.iter().all(|t| t.shape == ts[0].shape) {
                        ts[0].shape
                    } else {
                        ts.iter().map(|t| t.shape).max_by_key(|s| s[1] * s[2]).expect("two")
                    };
                    let name = self.push(
                        node.name(),
                        json!({"type": ty, "inputs": ts.iter().map(|t| t.layer.clone()).collect::<Vec<_>>()}),
                        vec![],
                    );
                    self.tensors.insert(out.name.clone(), T { layer: name, shape, rank: x.rank.max(out_rank) });
                    return Ok(());
                }
                let (j, (v, _)) = &consts[0];
                let c = x.shape[0];
                let per = if v.len() == 1 || v.len() == c {
                    v.iter().map(|&t| t as f64).collect::<Vec<f64>>()
                } else {
                    return Err(fail(format!("a constant of {} values; ConvLens takes one number, or one per channel ({c})", v.len())));
                };
                let (scale, offset): (Vec<f64>, Vec<f64>) = match (node, j) {
                    (Node::Add(_), _) => (vec![1.0], per),
                    (Node::Sub(_), 1) => (vec![1.0], per.iter().map(|t| -t).collect()),
                    (Node::Sub(_), _) => (vec![-1.0], per),
                    (Node::Mul(_), _) => (per, vec![0.0]),
                    (Node::Div(_), 1) if per.iter().all(|t| t.abs() > 1e-12) => (per.iter().map(|t| 1.0 / t).collect(), vec![0.0]),
                    _ => return Err(fail("a constant divided by a tensor is not imported".into())),
                };
                let one = |v: Vec<f64>| if v.len() == 1 { json!(v[0]) } else { json!(v) };
                let name = self.push(
                    node.name(),
                    json!({"type": "scale", "inputs": [x.layer], "scale": one(scale), "offset": one(offset)}),
                    vec![],
                );
                self.tensors.insert(out.name.clone(), T { layer: name, shape: x.shape, rank: x.rank });
                Ok(())
            }
            Node::Concat(n) => {
                if n.config.axis != 1 {
                    return Err(fail(format!("a concatenation on axis {}; ConvLens concatenates channels (axis 1)", n.config.axis)));
                }
                let ts = ins.iter().map(|a| self.tensor(&a.name, &label)).collect::<Result<Vec<_>, _>>()?;
                let shape = [ts.iter().map(|t| t.shape[0]).sum(), x.shape[1], x.shape[2]];
                let name = self.push(
                    node.name(),
                    json!({"type": "concat", "inputs": ts.iter().map(|t| t.layer.clone()).collect::<Vec<_>>()}),
                    vec![],
                );
                self.tensors.insert(out.name.clone(), T { layer: name, shape, rank: x.rank });
                Ok(())
            }
            Node::Flatten(n) => {
                if n.config.axis != 1 {
                    return Err(fail(format!("a flatten from axis {}; imported from axis 1", n.config.axis)));
                }
                self.flatten(node, &x, out)
            }
            Node::Reshape(_) | Node::Squeeze(_) | Node::Unsqueeze(_) => {
                let dims = static_dims(out).unwrap_or_default();
                let total: usize = x.shape.iter().product();
                let vector = x.shape[1] == 1 && x.shape[2] == 1;
                if dims.len() > 1 && dims[1..].iter().product::<usize>() != total {
                    return Err(fail(format!("a reshape of {:?} to {dims:?} moves values between images", x.shape)));
                }
                match dims.as_slice() {
                    // [N, C, 1, 1] <-> [N, C] <-> [N, C, 1]: the same values in the same order.
                    _ if vector && (dims.len() >= 2 || out_rank >= 2) => alias(self, x.shape, dims.len().max(out_rank)),
                    [_, _] => self.flatten(node, &x, out),
                    [_, cc, hh, ww] if [*cc, *hh, *ww] == x.shape => alias(self, x.shape, 4),
                    _ => Err(fail(format!(
                        "a reshape of {:?} to {:?}; ConvLens imports flattening to [N, {total}] and adding or removing 1x1 axes",
                        x.shape, dims
                    ))),
                }
            }
            Node::Softmax(n) => {
                let last = x.rank.saturating_sub(1);
                if !(n.config.axis == 1 && (x.rank == 2 || (x.shape[1] == 1 && x.shape[2] == 1)) || n.config.axis == last && x.rank == 2) {
                    return Err(fail(format!(
                        "a softmax over axis {} of a rank-{} tensor; imported over the classes (axis 1)",
                        n.config.axis, x.rank
                    )));
                }
                act(self, json!({"type": "softmax"}))
            }
            Node::Dropout(_) | Node::Identity(_) => alias(self, x.shape, x.rank),
            Node::Pad(n) => {
                use onnx_ir::node::pad::{ConstantValueInput, PadInput, PadMode};
                let PadInput::Static(p) = &n.config.pads else { return Err(fail("its pads are computed, not constants".into())) };
                let ConstantValueInput::Static(value) = n.config.constant_value else { return Err(fail("its value is computed".into())) };
                if !matches!(n.config.mode, PadMode::Constant) || x.rank != 4 || p.len() != 4 || p[0] != (0, 0) || p[1] != (0, 0) {
                    return Err(fail(format!("padding {p:?} ({:?}); imported: a constant border around height and width", n.config.mode)));
                }
                let (t, l, bo, r) = (p[2].0, p[3].0, p[2].1, p[3].1);
                let layer = json!({"type": "pad", "inputs": [x.layer], "top": t, "left": l, "bottom": bo, "right": r, "value": value});
                let name = self.push(node.name(), layer, vec![]);
                self.tensors.insert(out.name.clone(), T { layer: name, shape: self.shape(&fail)?, rank: 4 });
                Ok(())
            }
            _ => Err(unsupported(&label, &op)),
        }
    }

    /// A fully connected layer (weights (units, fan_in)).
    fn fc(
        &mut self,
        node: &Node,
        x: &T,
        out: &Argument,
        units: usize,
        fan_in: usize,
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        fail: &dyn Fn(String) -> Error,
    ) -> Result<(), Error> {
        let total: usize = x.shape.iter().product();
        if x.rank != 2 && !(x.shape[1] == 1 && x.shape[2] == 1) || total != fan_in {
            return Err(fail(format!("a linear map of {fan_in} inputs applied to a tensor of shape {:?}", x.shape)));
        }
        let mut ws = vec![w];
        let has_bias = bias.is_some();
        if let Some(b) = bias {
            if b.len() != units {
                return Err(fail(format!("a bias of {} values for {units} outputs", b.len())));
            }
            ws.push(b);
        }
        let name = self.push(node.name(), json!({"type": "fc", "inputs": [x.layer], "units": units, "bias": has_bias}), ws);
        self.tensors.insert(out.name.clone(), T { layer: name, shape: [units, 1, 1], rank: 2 });
        Ok(())
    }

    fn flatten(&mut self, node: &Node, x: &T, out: &Argument) -> Result<(), Error> {
        let total = x.shape.iter().product();
        if x.shape[1] == 1 && x.shape[2] == 1 {
            // [N, C, 1, 1] -> [N, C]: the same values in the same order.
            self.tensors.insert(out.name.clone(), T { layer: x.layer.clone(), shape: [total, 1, 1], rank: 2 });
            return Ok(());
        }
        let name = self.push(node.name(), json!({"type": "flatten", "inputs": [x.layer]}), vec![]);
        self.tensors.insert(out.name.clone(), T { layer: name, shape: [total, 1, 1], rank: 2 });
        Ok(())
    }

    /// A convolution's or pool's padding [top, left, bottom, right], auto_pad resolved.
    fn pads(
        &self,
        x: &T,
        p: &onnx_ir::node::padding::PaddingConfig2d,
        auto: &onnx_ir::node::padding::AutoPad,
        k: usize,
        s: usize,
        d: usize,
    ) -> [usize; 4] {
        use onnx_ir::node::padding::{AutoPad, PaddingConfig2d};
        let same = |n: usize, upper: bool| {
            let total = ((n.div_ceil(s) - 1) * s + d * (k - 1) + 1).saturating_sub(n);
            if upper { (total / 2, total - total / 2) } else { (total - total / 2, total / 2) }
        };
        match (auto, p) {
            (AutoPad::SameUpper | AutoPad::SameLower, _) => {
                let upper = matches!(auto, AutoPad::SameUpper);
                let ((t, b), (l, r)) = (same(x.shape[1], upper), same(x.shape[2], upper));
                [t, l, b, r]
            }
            (_, PaddingConfig2d::Explicit(t, l, b, r)) => [*t, *l, *b, *r],
            _ => [0; 4],
        }
    }
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}
