//! The settings schema (crates/core/src/settings.rs) on attribution's settings: defaults written
//! once, checked values with messages naming the field, a URL's values clamped, the CLI's --set.

use convlens_core::settings::FieldType;
use convlens_core::vis::attribution::{self, Method, Quadrature, Settings};
use serde_json::{Value, json};

fn no_layers(s: &str) -> Result<usize, convlens_core::Error> {
    s.parse().map_err(|_| convlens_core::Error::Input(format!("no layer '{s}'")))
}

#[test]
fn the_defaults_are_the_papers_and_live_in_the_schema() {
    let d = Settings::default();
    assert_eq!(d.method, Method::Gradient);
    assert_eq!((d.noise, d.samples, d.seed), (0.15, 25, 1));
    assert_eq!((d.baseline.clone(), d.steps, d.quadrature), (vec![0.0], 50, Quadrature::GaussLegendre));
    assert_eq!((d.layer, d.relu, d.noise_values.clone()), (None, true, None));
    let schema = attribution::schema();
    let described = schema.describe();
    let noise = described["fields"].as_array().unwrap().iter().find(|f| f["key"] == "noise").unwrap();
    assert_eq!(noise["default"], json!(0.15));
    assert_eq!((noise["min"].as_f64(), noise["max"].as_f64()), (Some(0.0), Some(1.0)));
    assert_eq!(noise["group"], "smoothgrad");
    let method = schema.fields.iter().find(|f| f.key == "method").unwrap();
    assert_eq!(method.ty, FieldType::Choice(Method::ALL.iter().map(|m| m.name()).collect()));
}

#[test]
fn values_are_checked_with_the_field_named() {
    let schema = attribution::schema();
    let err = |v: Value| schema.resolve(&v, false).unwrap_err().to_string();
    assert_eq!(err(json!({"noise": 3})), "input: attribution setting 'noise': 3 is out of range; expected 0 to 1 (of the value range)");
    assert_eq!(err(json!({"samples": 2.5})), "input: attribution setting 'samples': expected a whole number, got 2.5");
    assert_eq!(
        err(json!({"method": "lime"})),
        "input: attribution setting 'method': expected one of gradient, deconvnet, guided, gradient-x-input, smoothgrad, integrated-gradients, grad-cam, got \"lime\""
    );
    assert!(err(json!({"nosie": 0.1})).starts_with("input: attribution settings: unknown setting 'nosie'; expected one of method, noise,"));
    assert_eq!(
        err(json!({"baseline": [0.5, "x"]})),
        "input: attribution setting 'baseline': expected a number or a list of finite numbers, got [0.5,\"x\"]"
    );
    let v = schema.resolve(&json!({"method": "smoothgrad", "samples": 8, "baseline": [0.5]}), false).unwrap();
    let s = Settings::from_values(&v, &no_layers).unwrap();
    assert_eq!((s.method, s.samples, s.baseline.clone(), s.noise), (Method::SmoothGrad, 8, vec![0.5], 0.15));
}

#[test]
fn a_urls_values_are_clamped_and_the_cli_sets_by_key() {
    let schema = attribution::schema();
    let v = schema.resolve(&json!({"noise": 7, "samples": 0, "steps": 12.6, "rule": "nope", "junk": 1}), true).unwrap();
    assert_eq!((v["noise"].as_f64(), v["samples"].as_u64(), v["steps"].as_u64()), (Some(1.0), Some(1), Some(13)));
    assert_eq!(v["rule"], "gausslegendre");
    let set = schema.parse_set(&["method=grad-cam".into(), "layer=conv2".into(), "relu=false".into(), "baseline=0.5".into()]).unwrap();
    let v = schema.resolve(&set, false).unwrap();
    let s = Settings::from_values(&v, &|l| if l == "conv2" { Ok(3) } else { no_layers(l) }).unwrap();
    assert_eq!((s.method, s.layer, s.relu, s.baseline), (Method::GradCam, Some(3), false, vec![0.5]));
    assert_eq!(
        schema.parse_set(&["sampels=3".into()]).unwrap_err().to_string(),
        "input: --set sampels=3: attribution has no setting 'sampels'; expected one of method, noise, samples, seed, noiseValues, baseline, steps, rule, layer, relu"
    );
    assert_eq!(
        schema.parse_set(&["relu=maybe".into()]).unwrap_err().to_string(),
        "input: attribution setting 'relu': expected true or false, got 'maybe'"
    );
}
