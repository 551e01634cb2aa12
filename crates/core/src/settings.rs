//! One typed settings list per technique, as TF Playground keeps one list that is the form, the
//! defaults and the URL: each field's key (the same in the page, the wasm facade and the CLI's
//! `--set key=value`), label, type, default, range, unit and help, written once here.
//!
//! - The page builds its controls from [`Schema::describe`] (labels, defaults, ranges).
//! - Values from the page or the CLI go through [`Schema::resolve`]: missing keys take their
//!   defaults; a wrong type, an unknown key or a value out of range is refused with a message
//!   naming the field. Values from a URL are clamped to the range instead (`clamp`).
//! - A technique turns the resolved values into its settings struct (e.g.
//!   `vis::attribution::Settings::from_values`).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Error;

/// What a field holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "options")]
pub enum FieldType {
    Number,
    Integer,
    Boolean,
    /// One of these names.
    Choice(Vec<&'static str>),
    /// A layer, by number or name (null: the technique's choice).
    Layer,
    /// A list of layers, by number or name (null: the technique's choice).
    Layers,
    /// Free text the technique parses (e.g. occlusion's fill: gray, black, mean:R,G,B, ...).
    Text,
    /// A number, or a list of numbers (a baseline image, recorded noise).
    Numbers,
}

/// One setting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    pub key: &'static str,
    pub label: &'static str,
    #[serde(rename = "type")]
    pub ty: FieldType,
    pub default: Value,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The step a form's control moves by.
    pub step: Option<f64>,
    pub unit: &'static str,
    pub help: &'static str,
    /// The part of the technique it belongs to (e.g. the method that reads it), or "".
    pub group: &'static str,
    /// Null is allowed too, meaning the technique's choice (shown as "auto").
    pub nullable: bool,
}

impl Field {
    fn new(key: &'static str, label: &'static str, ty: FieldType, default: Value) -> Field {
        Field { key, label, ty, default, min: None, max: None, step: None, unit: "", help: "", group: "", nullable: false }
    }
    /// A number in `min..=max` (an infinite bound: none).
    pub fn number(key: &'static str, label: &'static str, default: f64, min: f64, max: f64, step: f64) -> Field {
        let (min, max) = (min.is_finite().then_some(min), max.is_finite().then_some(max));
        Field { min, max, step: Some(step), ..Field::new(key, label, FieldType::Number, json!(default)) }
    }
    pub fn integer(key: &'static str, label: &'static str, default: u64, min: u64, max: u64) -> Field {
        let (min, max) = (min as f64, max as f64);
        Field { min: Some(min), max: Some(max), step: Some(1.0), ..Field::new(key, label, FieldType::Integer, json!(default)) }
    }
    pub fn boolean(key: &'static str, label: &'static str, default: bool) -> Field {
        Field::new(key, label, FieldType::Boolean, json!(default))
    }
    pub fn choice(key: &'static str, label: &'static str, options: Vec<&'static str>, default: &'static str) -> Field {
        Field::new(key, label, FieldType::Choice(options), json!(default))
    }
    pub fn layer(key: &'static str, label: &'static str) -> Field {
        Field::new(key, label, FieldType::Layer, Value::Null)
    }
    pub fn layers(key: &'static str, label: &'static str) -> Field {
        Field::new(key, label, FieldType::Layers, Value::Null)
    }
    pub fn numbers(key: &'static str, label: &'static str, default: Value) -> Field {
        Field::new(key, label, FieldType::Numbers, default)
    }
    pub fn text(key: &'static str, label: &'static str, default: &'static str) -> Field {
        Field::new(key, label, FieldType::Text, json!(default))
    }
    /// Null allowed (the technique's choice), and the default.
    pub fn optional(self) -> Field {
        Field { nullable: true, default: Value::Null, ..self }
    }
    pub fn unit(self, unit: &'static str) -> Field {
        Field { unit, ..self }
    }
    pub fn help(self, help: &'static str) -> Field {
        Field { help, ..self }
    }
    pub fn group(self, group: &'static str) -> Field {
        Field { group, ..self }
    }

    /// Checks (or, with `clamp`, clamps) one value.
    fn check(&self, technique: &str, v: &Value, clamp: bool) -> Result<Value, Error> {
        let bad = |want: String| Err(Error::Input(format!("{technique} setting '{}': expected {want}, got {v}", self.key)));
        if v.is_null() && self.accepts_null() {
            return Ok(Value::Null);
        }
        let range = |x: f64| -> Result<f64, Error> {
            let (lo, hi) = (self.min.unwrap_or(f64::NEG_INFINITY), self.max.unwrap_or(f64::INFINITY));
            if x.is_nan() {
                return Err(Error::Input(format!("{technique} setting '{}': expected a number, got NaN", self.key)));
            }
            if clamp {
                return Ok(x.clamp(lo, hi));
            }
            if x < lo || x > hi {
                return Err(Error::Input(format!(
                    "{technique} setting '{}': {x} is out of range; expected {lo} to {hi}{}",
                    self.key,
                    unit(self.unit)
                )));
            }
            Ok(x)
        };
        match &self.ty {
            FieldType::Number => match v.as_f64() {
                Some(x) => Ok(json!(range(x)?)),
                None => bad("a number".into()),
            },
            FieldType::Integer => match v.as_f64() {
                Some(x) if x.fract() == 0.0 || clamp => Ok(json!(range(x.round())? as u64)),
                _ => bad("a whole number".into()),
            },
            FieldType::Boolean => match v {
                Value::Bool(_) => Ok(v.clone()),
                _ => bad("true or false".into()),
            },
            FieldType::Choice(options) => match v.as_str() {
                Some(s) if options.contains(&s) => Ok(v.clone()),
                _ if clamp => Ok(self.default.clone()),
                _ => bad(format!("one of {}", options.join(", "))),
            },
            FieldType::Layer => match v {
                Value::Null | Value::String(_) => Ok(v.clone()),
                Value::Number(n) if n.is_u64() => Ok(v.clone()),
                _ => bad("a layer's number or name".into()),
            },
            FieldType::Layers => match v {
                Value::Array(a) if a.iter().all(|x| x.is_string() || x.is_u64()) => Ok(v.clone()),
                _ => bad("a list of layers (numbers or names)".into()),
            },
            FieldType::Text => match v {
                Value::String(_) => Ok(v.clone()),
                Value::Number(_) => Ok(json!(v.to_string())),
                _ => bad("text".into()),
            },
            FieldType::Numbers => match v {
                Value::Null | Value::Number(_) => Ok(v.clone()),
                Value::Array(a) if a.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)) => Ok(v.clone()),
                _ => bad("a number or a list of finite numbers".into()),
            },
        }
    }

    /// Whether null is a value of this field (the technique's choice) rather than "not given".
    fn accepts_null(&self) -> bool {
        self.nullable || matches!(self.ty, FieldType::Layer | FieldType::Layers | FieldType::Numbers)
    }

    /// The value of `key=value` text (the CLI's `--set`), checked.
    fn parse_text(&self, technique: &str, text: &str) -> Result<Value, Error> {
        self.check(technique, &self.text_value(technique, text)?, false)
    }

    /// The value text stands for (the CLI's `--set`, a URL's parameters), not yet checked.
    fn text_value(&self, technique: &str, text: &str) -> Result<Value, Error> {
        Ok(match &self.ty {
            FieldType::Number | FieldType::Integer => {
                json!(
                    text.parse::<f64>()
                        .map_err(|_| Error::Input(format!("{technique} setting '{}': '{text}' is not a number", self.key)))?
                )
            }
            FieldType::Boolean => match text {
                "true" | "on" | "yes" | "1" => json!(true),
                "false" | "off" | "no" | "0" => json!(false),
                _ => return Err(Error::Input(format!("{technique} setting '{}': expected true or false, got '{text}'", self.key))),
            },
            _ if self.nullable && matches!(text, "auto" | "null" | "") => Value::Null,
            FieldType::Layer => text.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(text)),
            FieldType::Layers => {
                json!(
                    text.split(',')
                        .map(|p| p.trim())
                        .map(|p| p.parse::<u64>().map(|n| json!(n)).unwrap_or_else(|_| json!(p)))
                        .collect::<Vec<_>>()
                )
            }
            FieldType::Text => json!(text),
            FieldType::Numbers => {
                let parts: Result<Vec<f64>, _> = text.split(',').map(|p| p.trim().parse::<f64>()).collect();
                let parts =
                    parts.map_err(|_| Error::Input(format!("{technique} setting '{}': expected numbers, got '{text}'", self.key)))?;
                if parts.len() == 1 { json!(parts[0]) } else { json!(parts) }
            }
            FieldType::Choice(_) => json!(text),
        })
    }
}

fn unit(u: &str) -> String {
    if u.is_empty() { String::new() } else { format!(" ({u})") }
}

/// Named sets of values (a paper's settings): choosing one by the `preset` field makes its
/// values the defaults of the other fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preset {
    pub name: &'static str,
    pub label: &'static str,
    /// Field key -> value.
    pub values: Value,
}

/// A technique's settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    pub technique: &'static str,
    pub fields: Vec<Field>,
    /// Empty, or the options of a `preset` field.
    pub presets: Vec<Preset>,
}

impl Schema {
    pub fn new(technique: &'static str, fields: Vec<Field>) -> Schema {
        Schema { technique, fields, presets: vec![] }
    }

    /// The schema as the page reads it: `{technique, fields: [{key, label, type: {kind,
    /// options?}, default, min, max, step, unit, help, group, nullable}], presets: [{name, label,
    /// values}]}`. With presets, each field's `default` is the default preset's value.
    pub fn describe(&self) -> Value {
        let defaults = self.resolve(&Value::Null, false).expect("the defaults are valid");
        let mut fields = self.fields.clone();
        for f in &mut fields {
            f.default = defaults[f.key].clone();
        }
        // Each preset with every value it gives (its own and the fields' defaults).
        let presets: Vec<Value> = self
            .presets
            .iter()
            .map(|p| {
                let mut values = self.resolve(&json!({ "preset": p.name }), false).expect("the presets are valid");
                values.remove("preset");
                json!({ "name": p.name, "label": p.label, "values": values })
            })
            .collect();
        json!({ "technique": self.technique, "fields": fields, "presets": presets })
    }

    /// The field `key`.
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Every field's value: `given`'s (an object, or null for all defaults), checked, or clamped
    /// to its range with `clamp` (a URL's values); the default where `given` has none.
    pub fn resolve(&self, given: &Value, clamp: bool) -> Result<Map<String, Value>, Error> {
        self.resolve_over(given, None, clamp)
    }

    /// As [`Schema::resolve`], with `base`'s values (the current settings) in place of the
    /// defaults for the keys `given` lacks: a patch.
    pub fn resolve_over(&self, given: &Value, base: Option<&Map<String, Value>>, clamp: bool) -> Result<Map<String, Value>, Error> {
        let empty = Map::new();
        let given = match given {
            Value::Null => &empty,
            Value::Object(o) => o,
            other => return Err(Error::Input(format!("{} settings: expected an object, got {other}", self.technique))),
        };
        // A URL may carry other pages' keys; the page and the CLI may not.
        if !clamp && let Some(k) = given.keys().find(|k| !self.fields.iter().any(|f| f.key == k.as_str())) {
            let known: Vec<&str> = self.fields.iter().map(|f| f.key).collect();
            return Err(Error::Input(format!("{} settings: unknown setting '{k}'; expected one of {}", self.technique, known.join(", "))));
        }
        // The preset's values stand in for the defaults.
        let mut defaults: Map<String, Value> = self.fields.iter().map(|f| (f.key.to_string(), f.default.clone())).collect();
        if let Some(base) = base {
            defaults.extend(base.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(pf) = self.field("preset") {
            let chosen = match given.get("preset") {
                Some(v) if !v.is_null() => pf.check(self.technique, v, clamp)?,
                _ => defaults["preset"].clone(),
            };
            if let Some(p) = self.presets.iter().find(|p| Some(p.name) == chosen.as_str())
                && let Value::Object(values) = &p.values
            {
                defaults.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut out = Map::new();
        for f in &self.fields {
            let v = match given.get(f.key) {
                Some(v) if !v.is_null() || f.accepts_null() => f.check(self.technique, v, clamp)?,
                _ => defaults[f.key].clone(),
            };
            out.insert(f.key.to_string(), v);
        }
        Ok(out)
    }

    /// Values from a page's URL (an object of texts or values): each known key read and clamped
    /// to its range; unknown keys and unreadable values are dropped, so their fields keep what
    /// the page had. Returns the keys that were kept.
    pub fn from_url(&self, given: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        let Value::Object(given) = given else { return out };
        for f in &self.fields {
            let Some(v) = given.get(f.key) else { continue };
            if let (FieldType::Choice(options), Some(t)) = (&f.ty, v.as_str())
                && !options.contains(&t)
            {
                continue;
            }
            let v = match v {
                Value::String(t) => match f.text_value(self.technique, t.trim()) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
                v => v.clone(),
            };
            if let Ok(v) = f.check(self.technique, &v, true) {
                out.insert(f.key.to_string(), v);
            }
        }
        out
    }

    /// `key=value` pairs (the CLI's `--set`) as an object for [`Schema::resolve`].
    pub fn parse_set(&self, pairs: &[String]) -> Result<Value, Error> {
        let mut out = Map::new();
        for p in pairs {
            let (k, text) =
                p.split_once('=').ok_or_else(|| Error::Input(format!("--set {p}: expected key=value (keys: {})", self.keys())))?;
            let f = self.fields.iter().find(|f| f.key == k.trim()).ok_or_else(|| {
                Error::Input(format!("--set {p}: {} has no setting '{k}'; expected one of {}", self.technique, self.keys()))
            })?;
            out.insert(f.key.to_string(), f.parse_text(self.technique, text.trim())?);
        }
        Ok(Value::Object(out))
    }

    fn keys(&self) -> String {
        self.fields.iter().map(|f| f.key).collect::<Vec<_>>().join(", ")
    }
}

/// Typed reads of values [`Schema::resolve`] returned (they are checked there, so a missing or
/// mistyped key here is a bug in the technique's own schema).
pub trait Resolved {
    fn num(&self, key: &str) -> f64;
    fn int(&self, key: &str) -> usize {
        self.num(key) as usize
    }
    fn opt_int(&self, key: &str) -> Option<usize>;
    fn flag(&self, key: &str) -> bool;
    fn text(&self, key: &str) -> &str;
    /// A layer field as an index of `spec` (None: null, the technique's choice).
    fn layer(&self, key: &str, spec: &crate::spec::NetSpec) -> Result<Option<usize>, Error>;
    /// A layers field as indices of `spec` (None: null).
    fn layers(&self, key: &str, spec: &crate::spec::NetSpec) -> Result<Option<Vec<usize>>, Error>;
}

/// A layer setting's value as an index of `spec`; an error names the setting.
fn layer_of(key: &str, v: &Value, spec: &crate::spec::NetSpec) -> Result<usize, Error> {
    let found = match v {
        Value::Number(n) => spec.layer_index(&n.to_string()),
        Value::String(s) => spec.layer_index(s),
        other => return Err(Error::Input(format!("setting '{key}': expected a layer's number or name, got {other}"))),
    };
    found.map_err(|e| Error::Input(format!("setting '{key}': {}", e.message)))
}

impl Resolved for Map<String, Value> {
    fn num(&self, key: &str) -> f64 {
        self[key].as_f64().unwrap_or_else(|| panic!("setting '{key}' is not a number"))
    }
    fn opt_int(&self, key: &str) -> Option<usize> {
        self[key].as_f64().map(|v| v as usize)
    }
    fn flag(&self, key: &str) -> bool {
        self[key].as_bool().unwrap_or_else(|| panic!("setting '{key}' is not a boolean"))
    }
    fn text(&self, key: &str) -> &str {
        self[key].as_str().unwrap_or_else(|| panic!("setting '{key}' is not text"))
    }
    fn layer(&self, key: &str, spec: &crate::spec::NetSpec) -> Result<Option<usize>, Error> {
        match &self[key] {
            Value::Null => Ok(None),
            v => layer_of(key, v, spec).map(Some),
        }
    }
    fn layers(&self, key: &str, spec: &crate::spec::NetSpec) -> Result<Option<Vec<usize>>, Error> {
        match &self[key] {
            Value::Null => Ok(None),
            Value::Array(a) => a.iter().map(|v| layer_of(key, v, spec)).collect::<Result<Vec<_>, _>>().map(Some),
            v => layer_of(key, v, spec).map(|l| Some(vec![l])),
        }
    }
}
