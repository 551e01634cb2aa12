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

use crate::layers::Source;
use std::fmt;

/// A shape of one example, channels first: `[depth, height, width]`.
pub type Shape3 = [usize; 3];

pub use crate::layers::{Activation, LayerKind, PoolMode};

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
    /// Takes the trainer's L1/L2 weight decay (conv and fc weights; not biases or batchnorm).
    pub decay: bool,
}

/// How large a network this engine takes, checked in 64-bit arithmetic while a spec is read,
/// before anything is allocated. The browser's engine is wasm32 (a 4 GiB address space that also
/// holds the activations, the gradients and the optimizer's state); natively memory is the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Values of one layer's output for one image.
    pub values: u64,
    /// Parameters of the whole network (trainable or not).
    pub params: u64,
    /// Values of one layer's output for a whole batch (a training step's, an occlusion's).
    pub batch_values: u64,
    pub what: &'static str,
}

impl Limits {
    /// 64M values per layer (256 MB per image), 256M parameters (1 GiB of weights), 256M values
    /// per layer and batch (1 GiB).
    pub const BROWSER: Limits = Limits { values: 1 << 26, params: 1 << 28, batch_values: 1 << 28, what: "in the browser" };
    /// 64M values per layer, 4G parameters (16 GiB of weights), 2G values per layer and batch.
    pub const NATIVE: Limits = Limits { values: 1 << 26, params: 1 << 32, batch_values: 1 << 31, what: "natively" };

    /// The largest batch of `spec`'s inputs whose every layer fits `batch_values`.
    pub fn max_batch(&self, spec: &NetSpec) -> usize {
        let most = spec.layers.iter().map(|l| l.out_shape.iter().map(|&d| d as u64).product::<u64>()).max().unwrap_or(1).max(1);
        (self.batch_values / most).max(1) as usize
    }

    /// Checks that a batch of `n` inputs fits (before the batch is made); the error gives the
    /// largest layer, the number and the limit.
    pub fn check_batch(&self, spec: &NetSpec, n: usize) -> Result<(), crate::Error> {
        if n <= self.max_batch(spec) {
            return Ok(());
        }
        let l = spec.layers.iter().max_by_key(|l| l.out_shape.iter().map(|&d| d as u64).product::<u64>()).expect("a layer");
        let values = l.out_shape.iter().map(|&d| d as u64).product::<u64>() * n as u64;
        Err(crate::Error::Input(format!(
            "a batch of {n} images needs {values} values in layer {} ({}); this engine takes at most {} per layer {}: use batches of at most {}",
            l.index,
            l.name,
            self.batch_values,
            self.what,
            self.max_batch(spec)
        )))
    }

    /// The limits of the build this runs in.
    pub fn here() -> Limits {
        if cfg!(target_pointer_width = "32") { Limits::BROWSER } else { Limits::NATIVE }
    }

    /// Checks one layer's output size and adds its parameters to `total`, in checked 64-bit
    /// arithmetic; the error gives the number and the limit.
    pub fn check(&self, l: &Layer, total: &mut u64) -> Result<(), SpecError> {
        let err = |message: String| SpecError { layer: Some((l.index, l.kind.type_name().to_string())), field: None, message };
        let product = |dims: &[usize]| dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        match product(&l.out_shape) {
            Some(v) if v <= self.values => {}
            v => {
                return Err(err(format!(
                    "its output {:?} has {} values; this engine takes at most {} per layer {}",
                    l.out_shape,
                    v.map_or("over 2^64".into(), |v| v.to_string()),
                    self.values,
                    self.what
                )));
            }
        }
        for p in l.params() {
            let n = product(&p.shape).and_then(|n| total.checked_add(n));
            match n {
                Some(t) if t <= self.params => *total = t,
                _ => {
                    return Err(err(format!(
                        "its {} {:?} takes the network past {} parameters, the most this engine takes {} ({} GiB of weights)",
                        p.name,
                        p.shape,
                        self.params,
                        self.what,
                        (self.params * 4) >> 30
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks a whole spec against these limits (a spec read natively, against the browser's).
    pub fn check_spec(&self, spec: &NetSpec) -> Result<(), SpecError> {
        let mut total = 0;
        spec.layers.iter().try_for_each(|l| self.check(l, &mut total))
    }
}

impl Layer {
    /// The parameters of this layer in PyTorch's layout: conv weight (out, in, kh, kw), linear
    /// weight (out, in), batchnorm weight/bias/running_mean/running_var (C).
    pub fn params(&self) -> Vec<ParamSpec> {
        self.kind.ops().params(self)
    }

    /// Number of trainable parameters.
    pub fn param_count(&self) -> usize {
        self.params().iter().filter(|p| p.trainable).map(|p| p.shape.iter().product::<usize>()).sum()
    }

    /// A short human description, e.g. `conv 5x5, 8 filters, stride 1, pad 2, relu`.
    pub fn describe(&self) -> String {
        self.kind.ops().describe(self)
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
        matches!(self.layers[last].kind, LayerKind::Softmax(_)).then_some(last)
    }

    /// The layer whose output holds the class scores (the logits): the one before a final
    /// softmax, else the last layer.
    pub fn score_layer(&self) -> usize {
        match self.softmax_index() {
            Some(i) => i - 1,
            None => self.layers.len() - 1,
        }
    }

    /// A layer by name (`conv2`) or number (`3`), with a message listing the names.
    pub fn layer_index(&self, s: &str) -> Result<usize, SpecError> {
        let found = match s.parse::<usize>() {
            Ok(i) => (i < self.layers.len()).then_some(i),
            Err(_) => self.layers.iter().position(|l| l.name == s),
        };
        found.ok_or_else(|| SpecError {
            layer: None,
            field: None,
            message: format!(
                "there is no layer '{s}'; the layers are {} (or their numbers 0..{})",
                self.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "),
                self.layers.len() - 1
            ),
        })
    }

    /// Number of classes: the size of the score layer's output.
    pub fn classes(&self) -> usize {
        self.layers[self.score_layer()].out_shape.iter().product()
    }

    pub fn parse(text: &str) -> Result<NetSpec, SpecError> {
        let value = strict_json(text).map_err(|e| SpecError { layer: None, field: None, message: format!("not valid JSON: {e}") })?;
        NetSpec::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<NetSpec, SpecError> {
        validate(value)
    }
}

/// JSON as a person wrote it, read strictly: a key given twice in one object is refused (serde_json
/// keeps the last silently, so `"filters": 8, "filters": 64` would mean 64), and a leading UTF-8
/// byte-order mark (which some editors save) is skipped. Hand-written because serde_json has no
/// option for duplicate keys; it is serde_json's parser with a stricter object visitor.
pub fn strict_json(text: &str) -> Result<Value, serde_json::Error> {
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Strict(Value);
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
            let mut out = vec![];
            while let Some(Strict(v)) = a.next_element()? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Value, A::Error> {
            let mut out = serde_json::Map::new();
            while let Some(k) = a.next_key::<String>()? {
                if out.contains_key(&k) {
                    return Err(de::Error::custom(format!("the key \"{}\" is given twice in one object", cut(&k, 40))));
                }
                let Strict(v) = a.next_value()?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }
    }
    impl<'de> Deserialize<'de> for Strict {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            d.deserialize_any(V).map(Strict)
        }
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut de = serde_json::Deserializer::from_str(text);
    let Strict(v) = Strict::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// `s` cut to about `max` characters (a name or a value echoed in a message).
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}… ({} characters)", s.chars().take(max).collect::<String>(), s.chars().count())
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

/// A value as a message shows it, cut to 60 characters (a 10 MB name is not echoed whole).
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{}\"", cut(s, 60)),
        other => cut(&other.to_string(), 60),
    }
}

/// Reads one layer object, field by field, remembering which fields were read (each layer kind's
/// `Parse::parse` reads its own fields through it; see `layers/`).
pub struct Fields<'a> {
    index: usize,
    ty: String,
    pub obj: &'a Map<String, Value>,
    seen: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub fn err(&self, field: &str, message: impl Into<String>) -> SpecError {
        SpecError { layer: Some((self.index, self.ty.clone())), field: Some(field.to_string()), message: message.into() }
    }

    /// Looks a field up under its name or one of its aliases.
    pub fn get(&mut self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        let mut found = None;
        for n in names {
            self.seen.push(n);
            if let Some(v) = self.obj.get(*n)
                && found.is_none()
            {
                found = Some((*n, v));
            }
        }
        found
    }

    pub fn uint(&mut self, names: &[&'static str], default: Option<usize>, min: usize) -> Result<usize, SpecError> {
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

    pub fn float(&mut self, name: &'static str, default: f64, lo: f64, hi: f64, hi_open: bool) -> Result<f64, SpecError> {
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

    pub fn boolean(&mut self, name: &'static str, default: bool) -> Result<bool, SpecError> {
        match self.get(&[name]) {
            None => Ok(default),
            Some((n, v)) => v.as_bool().ok_or_else(|| self.err(n, format!("expected true or false, got {}", describe_value(v)))),
        }
    }

    pub fn activation(&mut self) -> Result<Option<Activation>, SpecError> {
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
    let mut total_params = 0u64;
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
                    message: format!("expected one of {}, got {}", LayerKind::types().join(", "), describe_value(v)),
                });
            }
            None => {
                return Err(SpecError {
                    layer: Some((index, String::new())),
                    field: Some("type".into()),
                    message: format!("missing; expected one of {}", LayerKind::types().join(", ")),
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
        let multi = LayerKind::multi_input_type(&ty);
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
            let several: Vec<&str> = LayerKind::types().into_iter().filter(|t| LayerKind::multi_input_type(t)).collect();
            return Err(f.err("inputs", format!("expected one layer (only {} read several), got {}", and_list(&several), inputs.len())));
        }
        if multi && inputs.len() < 2 {
            let verb = match ty.as_str() {
                "add" => "sums",
                "mul" => "multiplies",
                "concat" => "stacks",
                _ => "combines",
            };
            return Err(f.err("inputs", format!("\"{ty}\" {verb} two or more layers; got {}", inputs.len())));
        }
        let sources: Vec<Source> = inputs.iter().map(|&i| Source { name: &layers[i].name, shape: layers[i].out_shape }).collect();
        let in_shape = sources.first().map(|s| s.shape).unwrap_or([0, 0, 0]);
        let (kind, out_shape) = match LayerKind::parse(&ty, &mut f, &sources) {
            Some(parsed) => parsed?,
            None => {
                return Err(f.err("type", format!("unknown layer type \"{ty}\"; expected one of {}", LayerKind::types().join(", "))));
            }
        };

        // Name: given, or type + count.
        let type_name = kind.type_name();
        let count = counts.entry(type_name).or_insert(0);
        *count += 1;
        let name = match lobj.get("name") {
            None => {
                if matches!(kind, LayerKind::Input(_)) {
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
        f.finish(COMMON)?;
        let layer = Layer { index, name, kind, inputs, in_shape, out_shape };
        // Before the next layer reads this one's size (which would wrap in the browser's 32-bit
        // arithmetic) and before anything is allocated.
        Limits::here().check(&layer, &mut total_params)?;
        layers.push(layer);
    }
    if layers.len() < 2 {
        return Err(top_err("layers", "expected at least an input layer and one more layer".into()));
    }
    // The class scores are the input of a final softmax: a softmax anywhere else would be read as
    // the scores.
    if let Some(l) = layers.iter().find(|l| matches!(l.kind, LayerKind::Softmax(_)) && l.index + 1 < layers.len()) {
        return Err(SpecError {
            layer: Some((l.index, "softmax".into())),
            field: None,
            message: "a softmax may only be the last layer (the class scores are read before it)".into(),
        });
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

/// "a, b and c".
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The output shape of the last of `layers` (spec JSON, the input first), from the layers' own
/// parsers: an importer building a spec layer by layer asks this instead of computing shapes.
pub(crate) fn last_shape(layers: &[Value]) -> Result<Shape3, SpecError> {
    let spec = NetSpec::from_value(&serde_json::json!({"name": "import", "layers": layers}))?;
    Ok(spec.layers.last().expect("validated: at least two layers").out_shape)
}

/// An importer's weights checked against the spec's own parameter list (count and sizes per layer).
pub(crate) fn check_weights(spec: &NetSpec, weights: &[Vec<Vec<f32>>]) -> Result<(), String> {
    for (layer, lw) in spec.layers.iter().zip(weights) {
        let want: Vec<usize> = layer.params().iter().map(|p| p.shape.iter().product()).collect();
        let got: Vec<usize> = lw.iter().map(Vec::len).collect();
        if want != got {
            return Err(format!("layer '{}': weights of sizes {got:?} do not fit its parameters {want:?}", layer.name));
        }
    }
    Ok(())
}

/// (rows, cols) row-major to (cols, rows): an importer's weight matrix into PyTorch's layout.
pub(crate) fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// Unique layer names made from an imported model's own (ONNX nodes, Keras layers): letters, digits
/// and `_`, at most 48 characters, not starting with a digit; a name taken gets `_2`, `_3`...
#[derive(Default)]
pub(crate) struct Names(std::collections::HashSet<String>);

impl Names {
    pub(crate) fn make(&mut self, raw: &str, fallback: &str) -> String {
        let mut s: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        s = s.trim_matches('_').to_string();
        while s.contains("__") {
            s = s.replace("__", "_");
        }
        if s.is_empty() {
            s = fallback.to_string();
        }
        if s.len() > 48 {
            s = s[s.len() - 48..].trim_start_matches('_').to_string();
        }
        if s.starts_with(|c: char| c.is_ascii_digit()) {
            s = format!("n{s}");
        }
        let mut name = s.clone();
        let mut n = 1;
        while self.0.contains(&name) {
            n += 1;
            name = format!("{s}_{n}");
        }
        self.0.insert(name.clone());
        name
    }
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
            "layer 1 (conv): field 'fitlers': unknown field; expected one of: size, filters, stride, groups, dilation, padding, pad, bias, activation, type, name, inputs"
        );
        assert_eq!(
            err(&base(r#"{"type":"conv","size":3,"filters":2,"activation":"rleu"}"#)),
            "layer 1 (conv): field 'activation': expected one of \"relu\", \"relu6\", \"sigmoid\", \"tanh\", \"none\", got \"rleu\""
        );
        assert_eq!(
            err(&base(r#"{"type":"convolution"}"#)),
            "layer 1 (convolution): field 'type': unknown layer type \"convolution\"; expected one of input, conv, pool, globalpool, fc, relu, relu6, leaky_relu, clip, sigmoid, tanh, hard_sigmoid, hard_swish, softmax, dropout, batchnorm, add, mul, concat, flatten, reshape, scale, pad"
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
