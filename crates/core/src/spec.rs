//! Network specification: a JSON list of layers in the spirit of ConvNetJS's `layer_defs`.
//!
//! ```json
//! { "name": "mnist",
//!   "layers": [
//!     {"type": "input", "width": 24, "height": 24, "depth": 1},
//!     {"type": "conv", "size": 5, "filters": 8, "pad": 2, "activation": "relu"},
//!     {"type": "pool", "size": 2},
//!     {"type": "fc", "units": 10},
//!     {"type": "softmax"} ] }
//! ```
//!
//! ConvNetJS's own field names are accepted too (`sx`, `out_sx`, `out_sy`, `out_depth`,
//! `num_neurons`), so its `layer_defs` paste in.
//!
//! Every layer has an optional `name` (default: its type and a count, `conv1`, `conv2`, ...) and
//! an optional `inputs` list naming the earlier layers it reads (default: the previous layer), so
//! graphs with branches can be described: a residual block ends in an `add` of two layers.
//!
//! Validation parses the JSON by hand rather than through serde's derive so that each error names
//! the layer's index, the field and what was expected.

use serde_json::{Map, Value};
use std::fmt;

/// A shape of one example, channels first: `[depth, height, width]`.
pub type Shape3 = [usize; 3];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Relu,
    /// min(max(x, 0), 6), as MobileNet uses.
    Relu6,
    Sigmoid,
    Tanh,
    /// `x` where positive, `alpha * x` below (PyTorch's LeakyReLU).
    LeakyRelu {
        alpha: f64,
    },
    /// min(max(x, min), max): ONNX's Clip (what exporters write for ReLU6 and hard limits).
    Clip {
        min: f64,
        max: f64,
    },
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Relu6 => "relu6",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Clip { .. } => "clip",
        }
    }

    /// A ReLU-like gate (relu, relu6, clip): deconvnet and guided backpropagation replace its
    /// backward pass (see [`crate::grad::ReluRule`]). `Some((lo, hi))`: the unit is active where
    /// `lo < x < hi`.
    pub fn gate(self) -> Option<(f64, f64)> {
        match self {
            Activation::Relu => Some((0.0, f64::INFINITY)),
            Activation::Relu6 => Some((0.0, 6.0)),
            Activation::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Max,
    Avg,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    Input,
    Conv {
        size: usize,
        filters: usize,
        stride: usize,
        /// Zeros added on every side...
        pad: usize,
        /// ...and this many more at the bottom and right (TensorFlow's 'same' padding with an
        /// even total, e.g. a 3x3 stride-2 convolution of an even-sized input: 0 on top, 1 below).
        pad_end: usize,
        /// Channel groups: `groups` = input channels = filters is a depthwise convolution.
        groups: usize,
        bias: bool,
        activation: Option<Activation>,
    },
    /// The sum of its inputs (a residual connection).
    Add,
    /// `x * scale + offset`: an input normalization inside the net (MobileNet takes 2x - 1 of
    /// [0, 1] pixels), so that gradients reach the image as the user sees it.
    Scale {
        scale: f64,
        offset: f64,
    },
    Pool {
        size: usize,
        stride: usize,
        pad: usize,
        mode: PoolMode,
    },
    Fc {
        units: usize,
        bias: bool,
        activation: Option<Activation>,
    },
    Act(Activation),
    Softmax,
    Dropout {
        rate: f64,
    },
    BatchNorm {
        eps: f64,
        momentum: f64,
    },
    /// The mean (or max) of each channel: `[C, H, W]` -> `[C, 1, 1]`.
    GlobalPool {
        mode: PoolMode,
    },
    /// Its inputs stacked along the channels (same height and width).
    Concat,
    /// The elementwise product of its inputs; an input of shape `[C, 1, 1]` scales each channel
    /// (squeeze-and-excitation).
    Mul,
    /// `[C, H, W]` -> `[C*H*W, 1, 1]` (PyTorch's flatten order).
    Flatten,
    /// The same values in another `[C, H, W]` shape (row-major, as PyTorch's reshape).
    Reshape,
}

impl LayerKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            LayerKind::Input => "input",
            LayerKind::Conv { .. } => "conv",
            LayerKind::Add => "add",
            LayerKind::Scale { .. } => "scale",
            LayerKind::Pool { .. } => "pool",
            LayerKind::Fc { .. } => "fc",
            LayerKind::Act(a) => a.as_str(),
            LayerKind::Softmax => "softmax",
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::BatchNorm { .. } => "batchnorm",
            LayerKind::GlobalPool { .. } => "globalpool",
            LayerKind::Concat => "concat",
            LayerKind::Mul => "mul",
            LayerKind::Flatten => "flatten",
            LayerKind::Reshape => "reshape",
        }
    }

    /// Whether the layer reads several inputs.
    pub fn multi_input(&self) -> bool {
        matches!(self, LayerKind::Add | LayerKind::Concat | LayerKind::Mul)
    }

    /// The activation fused into a conv or fc layer, or the activation layer's own.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            LayerKind::Conv { activation, .. } | LayerKind::Fc { activation, .. } => *activation,
            LayerKind::Act(a) => Some(*a),
            _ => None,
        }
    }
}

/// One validated layer: what it is, its name, and the shapes around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub index: usize,
    pub name: String,
    pub kind: LayerKind,
    /// The layers it reads, by index (the previous layer unless `inputs` says otherwise; `add`
    /// reads two or more).
    pub inputs: Vec<usize>,
    pub in_shape: Shape3,
    pub out_shape: Shape3,
}

/// A parameter tensor a layer owns, with its PyTorch name and layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Full name, `<layer>.<field>` (`conv1.weight`).
    pub name: String,
    /// Field alone (`weight`, `bias`, `running_mean`, `running_var`).
    pub field: &'static str,
    pub shape: Vec<usize>,
    /// Learned by gradient descent (false for batchnorm's running statistics).
    pub trainable: bool,
}

impl Layer {
    /// The parameters of this layer in PyTorch's layout: conv weight (out, in, kh, kw), linear
    /// weight (out, in), batchnorm weight/bias/running_mean/running_var (C).
    pub fn params(&self) -> Vec<ParamSpec> {
        let p = |field: &'static str, shape: Vec<usize>, trainable: bool| ParamSpec {
            name: format!("{}.{}", self.name, field),
            field,
            shape,
            trainable,
        };
        match &self.kind {
            LayerKind::Conv { size, filters, groups, bias, .. } => {
                let mut v = vec![p("weight", vec![*filters, self.in_shape[0] / groups, *size, *size], true)];
                if *bias {
                    v.push(p("bias", vec![*filters], true));
                }
                v
            }
            LayerKind::Fc { units, bias, .. } => {
                let fan_in = self.in_shape.iter().product();
                let mut v = vec![p("weight", vec![*units, fan_in], true)];
                if *bias {
                    v.push(p("bias", vec![*units], true));
                }
                v
            }
            LayerKind::BatchNorm { .. } => {
                let c = self.in_shape[0];
                vec![
                    p("weight", vec![c], true),
                    p("bias", vec![c], true),
                    p("running_mean", vec![c], false),
                    p("running_var", vec![c], false),
                ]
            }
            _ => vec![],
        }
    }

    /// Number of trainable parameters.
    pub fn param_count(&self) -> usize {
        self.params().iter().filter(|p| p.trainable).map(|p| p.shape.iter().product::<usize>()).sum()
    }

    /// A short human description, e.g. `conv 5x5, 8 filters, stride 1, pad 2, relu`.
    pub fn describe(&self) -> String {
        let act = |a: &Option<Activation>| a.map(|a| format!(", {}", a.as_str())).unwrap_or_default();
        match &self.kind {
            LayerKind::Input => format!("input {}x{}x{}", self.out_shape[2], self.out_shape[1], self.out_shape[0]),
            LayerKind::Conv { size, filters, stride, pad, pad_end, groups, activation, .. } => format!(
                "{}conv {size}x{size}, {filters} filters, stride {stride}, pad {pad}{}{}",
                if *groups > 1 && *groups == *filters && *groups == self.in_shape[0] { "depthwise " } else { "" },
                if *pad_end > 0 { format!("(+{pad_end} bottom/right)") } else { String::new() },
                if *groups > 1 && !(*groups == *filters && *groups == self.in_shape[0]) {
                    format!(", {groups} groups{}", act(activation))
                } else {
                    act(activation)
                }
            ),
            LayerKind::Add => format!("add of {} inputs", self.inputs.len()),
            LayerKind::Scale { scale, offset } => format!("x * {scale} + {offset}"),
            LayerKind::Pool { size, stride, pad, mode } => format!(
                "{} pool {size}x{size}, stride {stride}{}",
                if *mode == PoolMode::Max { "max" } else { "avg" },
                if *pad > 0 { format!(", pad {pad}") } else { String::new() }
            ),
            LayerKind::Fc { units, activation, .. } => format!("fc {units}{}", act(activation)),
            LayerKind::Act(Activation::LeakyRelu { alpha }) => format!("leaky relu, slope {alpha}"),
            LayerKind::Act(Activation::Clip { min, max }) => format!("clip to [{min}, {max}]"),
            LayerKind::Act(a) => a.as_str().to_string(),
            LayerKind::Softmax => format!("softmax over {}", self.out_shape[0]),
            LayerKind::Dropout { rate } => format!("dropout {rate}"),
            LayerKind::BatchNorm { eps, momentum } => format!("batchnorm, eps {eps}, momentum {momentum}"),
            LayerKind::GlobalPool { mode } => format!("global {} pool", if *mode == PoolMode::Max { "max" } else { "avg" }),
            LayerKind::Concat => format!("concat of {} inputs", self.inputs.len()),
            LayerKind::Mul => format!("product of {} inputs", self.inputs.len()),
            LayerKind::Flatten => format!("flatten to {}", self.out_shape[0]),
            LayerKind::Reshape => format!("reshape to {}x{}x{}", self.out_shape[0], self.out_shape[1], self.out_shape[2]),
        }
    }
}

/// A validated network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    pub name: String,
    pub layers: Vec<Layer>,
    /// Optional names of the classes (top-level `classes`), one per score.
    pub class_names: Option<Vec<String>>,
    /// The JSON it came from, normalised (kept to write next to weights).
    pub json: Value,
}

impl NetSpec {
    pub fn input_shape(&self) -> Shape3 {
        self.layers[0].out_shape
    }

    pub fn param_count(&self) -> usize {
        self.layers.iter().map(Layer::param_count).sum()
    }

    /// Index of the last layer if it is a softmax.
    pub fn softmax_index(&self) -> Option<usize> {
        let last = self.layers.len() - 1;
        (self.layers[last].kind == LayerKind::Softmax).then_some(last)
    }

    /// The layer whose output holds the class scores (the logits): the one before a final
    /// softmax, else the last layer.
    pub fn score_layer(&self) -> usize {
        match self.softmax_index() {
            Some(i) => i - 1,
            None => self.layers.len() - 1,
        }
    }

    /// Number of classes: the size of the score layer's output.
    pub fn classes(&self) -> usize {
        self.layers[self.score_layer()].out_shape.iter().product()
    }

    pub fn parse(text: &str) -> Result<NetSpec, SpecError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| SpecError { layer: None, field: None, message: format!("not valid JSON: {e}") })?;
        NetSpec::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<NetSpec, SpecError> {
        validate(value)
    }
}

/// A spec error: which layer (by index), which field, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub layer: Option<(usize, String)>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((i, t)) = &self.layer {
            if t.is_empty() {
                write!(f, "layer {i}: ")?;
            } else {
                write!(f, "layer {i} ({t}): ")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, "field '{field}': ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Reads one layer object, field by field, remembering which fields were read.
struct Fields<'a> {
    index: usize,
    ty: String,
    obj: &'a Map<String, Value>,
    seen: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &str, message: impl Into<String>) -> SpecError {
        SpecError { layer: Some((self.index, self.ty.clone())), field: Some(field.to_string()), message: message.into() }
    }

    /// Looks a field up under its name or one of its aliases.
    fn get(&mut self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        let mut found = None;
        for n in names {
            self.seen.push(n);
            if let Some(v) = self.obj.get(*n) {
                if found.is_none() {
                    found = Some((*n, v));
                }
            }
        }
        found
    }

    fn uint(&mut self, names: &[&'static str], default: Option<usize>, min: usize) -> Result<usize, SpecError> {
        match self.get(names) {
            None => default.ok_or_else(|| self.err(names[0], "missing; expected an integer")),
            Some((n, v)) => {
                let what = if min == 0 { "a non-negative integer" } else { "a positive integer" };
                match v.as_u64() {
                    Some(x) if (x as usize) >= min && x <= 1 << 24 => Ok(x as usize),
                    _ => Err(self.err(n, format!("expected {what}, got {}", describe_value(v)))),
                }
            }
        }
    }

    fn float(&mut self, name: &'static str, default: f64, lo: f64, hi: f64, hi_open: bool) -> Result<f64, SpecError> {
        match self.get(&[name]) {
            None => Ok(default),
            Some((n, v)) => {
                match v.as_f64() {
                    Some(x) if x >= lo && (x < hi || (!hi_open && x == hi)) => Ok(x),
                    _ => Err(self
                        .err(n, format!("expected a number in [{lo}, {hi}{}, got {}", if hi_open { ")" } else { "]" }, describe_value(v)))),
                }
            }
        }
    }

    fn boolean(&mut self, name: &'static str, default: bool) -> Result<bool, SpecError> {
        match self.get(&[name]) {
            None => Ok(default),
            Some((n, v)) => v.as_bool().ok_or_else(|| self.err(n, format!("expected true or false, got {}", describe_value(v)))),
        }
    }

    fn activation(&mut self) -> Result<Option<Activation>, SpecError> {
        match self.get(&["activation"]) {
            None | Some((_, Value::Null)) => Ok(None),
            Some((n, v)) => match v.as_str() {
                Some("relu") => Ok(Some(Activation::Relu)),
                Some("relu6") => Ok(Some(Activation::Relu6)),
                Some("sigmoid") => Ok(Some(Activation::Sigmoid)),
                Some("tanh") => Ok(Some(Activation::Tanh)),
                Some("none") | Some("linear") => Ok(None),
                _ => {
                    Err(self
                        .err(n, format!("expected one of \"relu\", \"relu6\", \"sigmoid\", \"tanh\", \"none\", got {}", describe_value(v))))
                }
            },
        }
    }

    /// Fails on a field that no reader asked for (a typo such as `fitlers`).
    fn finish(self, common: &[&str]) -> Result<(), SpecError> {
        let mut keys: Vec<&String> = self.obj.keys().collect();
        keys.sort();
        for k in keys {
            if !self.seen.contains(&k.as_str()) && !common.contains(&k.as_str()) {
                let mut known: Vec<&str> = self.seen.iter().copied().filter(|s| !ALIASES.contains(s)).collect();
                known.extend_from_slice(common);
                return Err(self.err(k, format!("unknown field; expected one of: {}", known.join(", "))));
            }
        }
        Ok(())
    }
}

/// ConvNetJS field names accepted as aliases (not listed in "expected one of").
const ALIASES: &[&str] = &["sx", "out_sx", "out_sy", "out_depth", "num_neurons"];
const COMMON: &[&str] = &["type", "name", "inputs"];
const TYPES: &str = "input, conv, pool, globalpool, fc, relu, relu6, leaky_relu, clip, sigmoid, tanh, softmax, dropout, batchnorm, add, mul, concat, flatten, reshape, scale";

fn validate(value: &Value) -> Result<NetSpec, SpecError> {
    let top_err = |field: &str, message: String| SpecError { layer: None, field: Some(field.to_string()), message };
    let obj = value.as_object().ok_or_else(|| SpecError {
        layer: None,
        field: None,
        message: "expected a JSON object with a 'layers' list".into(),
    })?;
    for k in obj.keys() {
        if !["name", "layers", "classes", "format", "version"].contains(&k.as_str()) {
            return Err(top_err(k, "unknown field; expected one of: name, layers, classes, format, version".into()));
        }
    }
    let name = match obj.get("name") {
        None => "net".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => return Err(top_err("name", format!("expected a string, got {}", describe_value(v)))),
    };
    let list = match obj.get("layers") {
        Some(Value::Array(a)) => a,
        Some(v) => return Err(top_err("layers", format!("expected a list of layers, got {}", describe_value(v)))),
        None => return Err(top_err("layers", "missing; expected a list of layers".into())),
    };
    if list.is_empty() {
        return Err(top_err("layers", "expected at least an input layer and one more layer".into()));
    }

    let mut layers: Vec<Layer> = Vec::with_capacity(list.len());
    let mut counts: std::collections::HashMap<&'static str, usize> = Default::default();
    for (index, lv) in list.iter().enumerate() {
        let lobj = lv.as_object().ok_or_else(|| SpecError {
            layer: Some((index, String::new())),
            field: None,
            message: format!("expected a layer object, got {}", describe_value(lv)),
        })?;
        let ty = match lobj.get("type") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(SpecError {
                    layer: Some((index, String::new())),
                    field: Some("type".into()),
                    message: format!("expected one of {TYPES}, got {}", describe_value(v)),
                });
            }
            None => {
                return Err(SpecError {
                    layer: Some((index, String::new())),
                    field: Some("type".into()),
                    message: format!("missing; expected one of {TYPES}"),
                });
            }
        };
        let mut f = Fields { index, ty: ty.clone(), obj: lobj, seen: vec![] };
        if index == 0 && ty != "input" {
            return Err(f.err("type", format!("the first layer must be \"input\", got \"{ty}\"")));
        }
        if index > 0 && ty == "input" {
            return Err(f.err("type", "only the first layer may be \"input\""));
        }
        // Inputs: earlier layers by name (default: the previous one); add, mul and concat take several.
        let multi = matches!(ty.as_str(), "add" | "mul" | "concat");
        let inputs: Vec<usize> = match lobj.get("inputs") {
            None => {
                if index == 0 {
                    vec![]
                } else {
                    vec![index - 1]
                }
            }
            Some(v) => {
                let names = v.as_array().and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<&str>>>());
                let Some(names) = names else {
                    return Err(f.err("inputs", format!("expected a list of earlier layers' names, got {}", describe_value(v))));
                };
                let mut found = vec![];
                for n in names {
                    match layers.iter().find(|l| l.name == n) {
                        Some(l) => found.push(l.index),
                        None => {
                            let known: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
                            return Err(
                                f.err("inputs", format!("\"{n}\" is not an earlier layer; expected names among {}", known.join(", ")))
                            );
                        }
                    }
                }
                found
            }
        };
        if index == 0 && !inputs.is_empty() {
            return Err(f.err("inputs", "expected [] (the input layer reads nothing)"));
        }
        if index > 0 && !multi && inputs.len() != 1 {
            return Err(f.err("inputs", format!("expected one layer (only add, mul and concat read several), got {}", inputs.len())));
        }
        if multi && inputs.len() < 2 {
            let verb = match ty.as_str() {
                "add" => "sums",
                "mul" => "multiplies",
                _ => "stacks",
            };
            return Err(f.err("inputs", format!("\"{ty}\" {verb} two or more layers; got {}", inputs.len())));
        }
        let in_shape = inputs.first().map(|&i| layers[i].out_shape).unwrap_or([0, 0, 0]);
        let flat = in_shape.iter().product::<usize>();
        let (kind, out_shape) = match ty.as_str() {
            "input" => {
                let w = f.uint(&["width", "out_sx"], None, 1)?;
                let h = f.uint(&["height", "out_sy"], None, 1)?;
                let d = f.uint(&["depth", "out_depth"], None, 1)?;
                (LayerKind::Input, [d, h, w])
            }
            "conv" => {
                let size = f.uint(&["size", "sx"], None, 1)?;
                let filters = f.uint(&["filters"], None, 1)?;
                let stride = f.uint(&["stride"], Some(1), 1)?;
                let groups = f.uint(&["groups"], Some(1), 1)?;
                if in_shape[0] % groups != 0 || filters % groups != 0 {
                    return Err(f.err(
                        "groups",
                        format!("expected a divisor of both the {} input channels and the {filters} filters, got {groups}", in_shape[0]),
                    ));
                }
                // `padding: "same"` is TensorFlow's: the output is ceil(input / stride), the odd
                // zero (if any) at the bottom and right.
                let (pad, pad_end) = match f.get(&["padding"]) {
                    None => (f.uint(&["pad"], Some(0), 0)?, 0),
                    Some((n, v)) => {
                        if f.obj.contains_key("pad") {
                            return Err(f.err(n, "give either pad or padding, not both"));
                        }
                        match v.as_str() {
                            Some("valid") => (0, 0),
                            Some("same") => {
                                let total = |n: usize| ((n.div_ceil(stride) - 1) * stride + size).saturating_sub(n);
                                let (th, tw) = (total(in_shape[1]), total(in_shape[2]));
                                if th != tw {
                                    return Err(
                                        f.err(n, "'same' padding of a non-square input needs different padding per axis; not supported")
                                    );
                                }
                                (th / 2, th % 2)
                            }
                            _ => return Err(f.err(n, format!("expected \"same\" or \"valid\", got {}", describe_value(v)))),
                        }
                    }
                };
                let bias = f.boolean("bias", true)?;
                let activation = f.activation()?;
                let (h, w) = (in_shape[1] + 2 * pad + pad_end, in_shape[2] + 2 * pad + pad_end);
                if size > h || size > w {
                    return Err(f.err(
                        "size",
                        format!(
                            "the {size}x{size} kernel does not fit the {}x{} input (padded to {h}x{w}); expected at most {}",
                            in_shape[1],
                            in_shape[2],
                            h.min(w)
                        ),
                    ));
                }
                let out = [filters, (h - size) / stride + 1, (w - size) / stride + 1];
                (LayerKind::Conv { size, filters, stride, pad, pad_end, groups, bias, activation }, out)
            }
            "pool" => {
                let size = f.uint(&["size", "sx"], None, 1)?;
                let stride = f.uint(&["stride"], Some(size), 1)?;
                let pad = f.uint(&["pad"], Some(0), 0)?;
                let mode = match f.get(&["mode"]) {
                    None => PoolMode::Max,
                    Some((n, v)) => match v.as_str() {
                        Some("max") => PoolMode::Max,
                        Some("avg") | Some("average") => PoolMode::Avg,
                        _ => return Err(f.err(n, format!("expected \"max\" or \"avg\", got {}", describe_value(v)))),
                    },
                };
                if pad * 2 > size {
                    return Err(f.err("pad", format!("expected at most half the pool size ({}), got {pad}", size / 2)));
                }
                let (h, w) = (in_shape[1] + 2 * pad, in_shape[2] + 2 * pad);
                if size > h || size > w {
                    return Err(f.err(
                        "size",
                        format!(
                            "the {size}x{size} window does not fit the {}x{} input; expected at most {}",
                            in_shape[1],
                            in_shape[2],
                            h.min(w)
                        ),
                    ));
                }
                let out = [in_shape[0], (h - size) / stride + 1, (w - size) / stride + 1];
                (LayerKind::Pool { size, stride, pad, mode }, out)
            }
            "fc" => {
                let units = f.uint(&["units", "num_neurons"], None, 1)?;
                let bias = f.boolean("bias", true)?;
                let activation = f.activation()?;
                (LayerKind::Fc { units, bias, activation }, [units, 1, 1])
            }
            "relu" => (LayerKind::Act(Activation::Relu), in_shape),
            "relu6" => (LayerKind::Act(Activation::Relu6), in_shape),
            "add" => {
                if let Some(&j) = inputs.iter().find(|&&j| layers[j].out_shape != in_shape) {
                    return Err(f.err(
                        "inputs",
                        format!(
                            "\"add\" needs inputs of one shape; {} is {:?}, {} is {:?}",
                            layers[inputs[0]].name, in_shape, layers[j].name, layers[j].out_shape
                        ),
                    ));
                }
                (LayerKind::Add, in_shape)
            }
            "mul" => {
                let broadcast = |s: Shape3| s == in_shape || s == [in_shape[0], 1, 1];
                if let Some(&j) = inputs.iter().find(|&&j| !broadcast(layers[j].out_shape)) {
                    return Err(f.err(
                        "inputs",
                        format!(
                            "\"mul\" needs inputs of one shape, or [C, 1, 1] to scale channels; {} is {:?}, {} is {:?}",
                            layers[inputs[0]].name, in_shape, layers[j].name, layers[j].out_shape
                        ),
                    ));
                }
                (LayerKind::Mul, in_shape)
            }
            "concat" => {
                if let Some(&j) = inputs.iter().find(|&&j| layers[j].out_shape[1..] != in_shape[1..]) {
                    return Err(f.err(
                        "inputs",
                        format!(
                            "\"concat\" stacks channels of inputs of one height and width; {} is {:?}, {} is {:?}",
                            layers[inputs[0]].name, in_shape, layers[j].name, layers[j].out_shape
                        ),
                    ));
                }
                let c = inputs.iter().map(|&j| layers[j].out_shape[0]).sum();
                (LayerKind::Concat, [c, in_shape[1], in_shape[2]])
            }
            "globalpool" => {
                let mode = match f.get(&["mode"]) {
                    None => PoolMode::Avg,
                    Some((n, v)) => match v.as_str() {
                        Some("max") => PoolMode::Max,
                        Some("avg") | Some("average") => PoolMode::Avg,
                        _ => return Err(f.err(n, format!("expected \"avg\" or \"max\", got {}", describe_value(v)))),
                    },
                };
                (LayerKind::GlobalPool { mode }, [in_shape[0], 1, 1])
            }
            "flatten" => (LayerKind::Flatten, [flat, 1, 1]),
            "reshape" => {
                let shape = match f.get(&["shape"]) {
                    Some((_, v)) => v.as_array().and_then(|a| {
                        a.iter().map(|x| x.as_u64().filter(|&d| d >= 1 && d <= 1 << 24).map(|d| d as usize)).collect::<Option<Vec<usize>>>()
                    }),
                    None => return Err(f.err("shape", "missing; expected [depth, height, width]")),
                };
                match shape.as_deref() {
                    Some(&[d, h, w]) if d * h * w == flat => (LayerKind::Reshape, [d, h, w]),
                    Some(&[d, h, w]) => {
                        return Err(
                            f.err("shape", format!("[{d}, {h}, {w}] holds {} values; the input {in_shape:?} has {flat}", d * h * w))
                        );
                    }
                    _ => {
                        return Err(f.err(
                            "shape",
                            format!("expected [depth, height, width] of positive integers, got {}", describe_value(&lobj["shape"])),
                        ));
                    }
                }
            }
            "leaky_relu" => {
                let alpha = f.float("alpha", 0.01, 0.0, 1.0, true)?;
                (LayerKind::Act(Activation::LeakyRelu { alpha }), in_shape)
            }
            "clip" => {
                let min = f.float("min", 0.0, -1e6, 1e6, false)?;
                let max = f.float("max", 6.0, -1e6, 1e6, false)?;
                if min >= max {
                    return Err(f.err("max", format!("expected more than min ({min}), got {max}")));
                }
                (LayerKind::Act(Activation::Clip { min, max }), in_shape)
            }
            "sigmoid" => (LayerKind::Act(Activation::Sigmoid), in_shape),
            "tanh" => (LayerKind::Act(Activation::Tanh), in_shape),
            "softmax" => {
                // ConvNetJS's softmax carries `num_classes`; here it must match its input.
                if let Some((n, v)) = f.get(&["num_classes"]) {
                    if v.as_u64() != Some(flat as u64) {
                        return Err(f.err(
                            n,
                            format!("expected {flat} (the size of the previous layer's output), got {}; add an fc layer with that many units before the softmax", describe_value(v)),
                        ));
                    }
                }
                (LayerKind::Softmax, [flat, 1, 1])
            }
            "scale" => {
                let scale = f.float("scale", 1.0, -1e6, 1e6, false)?;
                let offset = f.float("offset", 0.0, -1e6, 1e6, false)?;
                (LayerKind::Scale { scale, offset }, in_shape)
            }
            "dropout" => {
                let rate = f.float("rate", 0.5, 0.0, 1.0, true)?;
                (LayerKind::Dropout { rate }, in_shape)
            }
            "batchnorm" => {
                let eps = f.float("eps", 1e-5, 1e-12, 1.0, false)?;
                let momentum = f.float("momentum", 0.1, 0.0, 1.0, false)?;
                (LayerKind::BatchNorm { eps, momentum }, in_shape)
            }
            other => return Err(f.err("type", format!("unknown layer type \"{other}\"; expected one of {TYPES}"))),
        };

        // Name: given, or type + count.
        let type_name = kind.type_name();
        let count = counts.entry(type_name).or_insert(0);
        *count += 1;
        let name = match lobj.get("name") {
            None => {
                if matches!(kind, LayerKind::Input) {
                    "input".to_string()
                } else {
                    format!("{type_name}{count}")
                }
            }
            Some(Value::String(s)) if valid_name(s) => s.clone(),
            Some(v) => {
                return Err(f.err(
                    "name",
                    format!("expected a name of letters, digits and '_' (not starting with a digit), got {}", describe_value(v)),
                ));
            }
        };
        if let Some(prev) = layers.iter().find(|l| l.name == name) {
            return Err(f.err("name", format!("\"{name}\" is already the name of layer {}; names must be unique", prev.index)));
        }
        if out_shape.iter().product::<usize>() > 1 << 26 {
            return Err(f.err("type", format!("the output {out_shape:?} is too large (over 67M values)")));
        }
        f.finish(COMMON)?;
        layers.push(Layer { index, name, kind, inputs, in_shape, out_shape });
    }
    if layers.len() < 2 {
        return Err(top_err("layers", "expected at least an input layer and one more layer".into()));
    }
    let mut spec = NetSpec { name, layers, class_names: None, json: value.clone() };
    if let Some(v) = obj.get("classes") {
        let n = spec.classes();
        let names: Option<Vec<String>> = v.as_array().and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect());
        match names {
            Some(names) if names.len() == n => spec.class_names = Some(names),
            _ => {
                return Err(top_err(
                    "classes",
                    format!(
                        "expected a list of {n} class names (one per output of layer {}), got {}",
                        spec.score_layer(),
                        describe_value(v)
                    ),
                ));
            }
        }
    }
    Ok(spec)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The ConvNetJS MNIST network, ConvLens's built-in default.
pub const MNIST_SPEC: &str = r#"{
  "name": "mnist-convnetjs",
  "layers": [
    {"type": "input", "width": 24, "height": 24, "depth": 1},
    {"type": "conv", "name": "conv1", "size": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "name": "pool1", "size": 2, "stride": 2, "mode": "max"},
    {"type": "conv", "name": "conv2", "size": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "name": "pool2", "size": 3, "stride": 3, "mode": "max"},
    {"type": "fc", "name": "fc1", "units": 10},
    {"type": "softmax", "name": "softmax"}
  ]
}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        NetSpec::parse(json).unwrap_err().to_string()
    }

    #[test]
    fn mnist_shapes_and_params() {
        let s = NetSpec::parse(MNIST_SPEC).unwrap();
        let shapes: Vec<_> = s.layers.iter().map(|l| l.out_shape).collect();
        assert_eq!(shapes, vec![[1, 24, 24], [8, 24, 24], [8, 12, 12], [16, 12, 12], [16, 4, 4], [10, 1, 1], [10, 1, 1]]);
        let params: Vec<_> = s.layers.iter().map(|l| l.param_count()).collect();
        assert_eq!(params, vec![0, 208, 0, 3216, 0, 2570, 0]);
        assert_eq!(s.param_count(), 5994);
        assert_eq!(s.classes(), 10);
        assert_eq!(s.score_layer(), 5);
        assert_eq!(s.layers[1].describe(), "conv 5x5, 8 filters, stride 1, pad 2, relu");
    }

    #[test]
    fn convnetjs_aliases() {
        let s = NetSpec::parse(
            r#"{"layers":[{"type":"input","out_sx":28,"out_sy":28,"out_depth":1},
            {"type":"conv","sx":5,"filters":4},{"type":"fc","num_neurons":3,"activation":"tanh"},{"type":"softmax","num_classes":3}]}"#,
        )
        .unwrap();
        assert_eq!(s.layers[1].out_shape, [4, 24, 24]);
        assert_eq!(s.layers[1].name, "conv1");
        assert_eq!(s.layers[2].params()[0].shape, vec![3, 4 * 24 * 24]);
    }

    #[test]
    fn exact_messages() {
        let base = |layer: &str| format!(r#"{{"layers":[{{"type":"input","width":8,"height":8,"depth":1}},{layer}]}}"#);
        assert_eq!(
            err(&base(r#"{"type":"conv","size":3,"filters":-3}"#)),
            "layer 1 (conv): field 'filters': expected a positive integer, got -3"
        );
        assert_eq!(err(&base(r#"{"type":"conv","size":3}"#)), "layer 1 (conv): field 'filters': missing; expected an integer");
        assert_eq!(
            err(&base(r#"{"type":"conv","size":9,"filters":2}"#)),
            "layer 1 (conv): field 'size': the 9x9 kernel does not fit the 8x8 input (padded to 8x8); expected at most 8"
        );
        assert_eq!(err(&base(r#"{"type":"conv","size":3,"fitlers":2}"#)), "layer 1 (conv): field 'filters': missing; expected an integer");
        assert_eq!(
            err(&base(r#"{"type":"conv","size":3,"filters":2,"fitlers":2}"#)),
            "layer 1 (conv): field 'fitlers': unknown field; expected one of: size, filters, stride, groups, padding, pad, bias, activation, type, name, inputs"
        );
        assert_eq!(
            err(&base(r#"{"type":"conv","size":3,"filters":2,"activation":"rleu"}"#)),
            "layer 1 (conv): field 'activation': expected one of \"relu\", \"relu6\", \"sigmoid\", \"tanh\", \"none\", got \"rleu\""
        );
        assert_eq!(
            err(&base(r#"{"type":"convolution"}"#)),
            "layer 1 (convolution): field 'type': unknown layer type \"convolution\"; expected one of input, conv, pool, globalpool, fc, relu, relu6, leaky_relu, clip, sigmoid, tanh, softmax, dropout, batchnorm, add, mul, concat, flatten, reshape, scale"
        );
        assert_eq!(
            err(&base(r#"{"type":"pool","size":2,"mode":"min"}"#)),
            "layer 1 (pool): field 'mode': expected \"max\" or \"avg\", got \"min\""
        );
        assert_eq!(err(&base(r#"{"type":"dropout","rate":1}"#)), "layer 1 (dropout): field 'rate': expected a number in [0, 1), got 1");
        assert_eq!(
            err(&base(r#"{"type":"fc","units":2,"inputs":["x"]}"#)),
            "layer 1 (fc): field 'inputs': \"x\" is not an earlier layer; expected names among input"
        );
        assert_eq!(
            err(&base(r#"{"type":"fc","units":2,"name":"input"}"#)),
            "layer 1 (fc): field 'name': \"input\" is already the name of layer 0; names must be unique"
        );
        assert_eq!(
            err(&base(r#"{"type":"softmax","num_classes":10}"#)),
            "layer 1 (softmax): field 'num_classes': expected 64 (the size of the previous layer's output), got 10; add an fc layer with that many units before the softmax"
        );
        assert_eq!(err(&base(r#"7"#)), "layer 1: expected a layer object, got 7");
        assert_eq!(
            err(r#"{"layers":[{"type":"conv","size":3,"filters":1}]}"#),
            "layer 0 (conv): field 'type': the first layer must be \"input\", got \"conv\""
        );
        assert_eq!(
            err(r#"{"layers":[{"type":"input","width":0,"height":8,"depth":1}]}"#),
            "layer 0 (input): field 'width': expected a positive integer, got 0"
        );
        assert_eq!(err(r#"{"layers":[]}"#), "field 'layers': expected at least an input layer and one more layer");
        assert_eq!(
            err(r#"{"classes":["a"],"layers":[{"type":"input","width":1,"height":1,"depth":1},{"type":"fc","units":2}]}"#),
            "field 'classes': expected a list of 2 class names (one per output of layer 1), got [\"a\"]"
        );
        assert_eq!(err(r#"{"layer":[]}"#), "field 'layer': unknown field; expected one of: name, layers, classes, format, version");
        assert!(err("{").starts_with("not valid JSON: EOF while parsing"));
    }
}
