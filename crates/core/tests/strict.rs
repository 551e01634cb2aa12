//! Specs are read strictly (issue 12): a key given twice is refused, a byte-order mark skipped, a
//! softmax anywhere but last refused, and long values cut in messages.

use convlens_core::NetSpec;

fn err(spec: &str) -> String {
    NetSpec::parse(spec).unwrap_err().to_string()
}

const OK: &str = r#"{"layers":[{"type":"input","width":8,"height":8,"depth":1},{"type":"conv","size":3,"filters":8},{"type":"fc","units":2},{"type":"softmax"}]}"#;

#[test]
fn a_key_given_twice_is_refused() {
    let e = err(r#"{"layers":[{"type":"input","width":8,"height":8,"depth":1},{"type":"conv","size":3,"filters":8,"filters":64}]}"#);
    assert_eq!(e, "not valid JSON: the key \"filters\" is given twice in one object at line 1 column 104");
    assert!(err(r#"{"name":"a","name":"b","layers":[]}"#).starts_with("not valid JSON: the key \"name\" is given twice"));
}

#[test]
fn a_byte_order_mark_is_skipped() {
    let with_bom = format!("\u{feff}{OK}");
    assert_eq!(NetSpec::parse(&with_bom).unwrap(), NetSpec::parse(OK).unwrap());
}

#[test]
fn a_softmax_is_only_last() {
    let e = err(
        r#"{"layers":[{"type":"input","width":8,"height":8,"depth":1},{"type":"fc","units":2},{"type":"softmax"},{"type":"softmax"}]}"#,
    );
    assert_eq!(e, "layer 2 (softmax): a softmax may only be the last layer (the class scores are read before it)");
}

#[test]
fn long_values_are_cut_in_messages() {
    let long = "x".repeat(10_000_000);
    let e = err(&format!(r#"{{"layers":[{{"type":"input","width":8,"height":8,"depth":1}},{{"type":"fc","units":2,"name":"{long} "}}]}}"#));
    assert!(e.len() < 300, "{} characters", e.len());
    assert!(e.contains("… (10000001 characters)"), "{e}");
}
