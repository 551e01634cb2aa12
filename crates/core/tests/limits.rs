//! Sizes are checked in 64-bit arithmetic while a spec is read, before anything is allocated
//! (issue 12): each layer's output and the network's parameters against stated limits, the
//! browser's (wasm32) and the native ones, with the number and the limit in the message.

use convlens_core::NetSpec;
use convlens_core::spec::Limits;

fn err(spec: &str) -> String {
    NetSpec::parse(spec).unwrap_err().to_string()
}

#[test]
fn an_input_whose_size_wraps_32_bits_is_refused() {
    // 65536 x 65536 = 2^32: 0 in the browser's 32-bit sizes before this check.
    let e = err(r#"{"layers":[{"type":"input","width":65536,"height":65536,"depth":1},{"type":"fc","units":10},{"type":"softmax"}]}"#);
    assert_eq!(
        e,
        "layer 0 (input): its output [1, 65536, 65536] has 4294967296 values; this engine takes at most 67108864 per layer natively"
    );
}

#[test]
fn a_layer_too_large_for_the_kernels_is_refused() {
    let e = err(
        r#"{"layers":[{"type":"input","width":4096,"height":4096,"depth":1},{"type":"conv","size":1,"filters":256},{"type":"fc","units":10}]}"#,
    );
    assert!(e.starts_with("layer 1 (conv): its output [256, 4096, 4096] has 4294967296 values; this engine takes at most"), "{e}");
}

#[test]
fn parameters_are_counted_before_they_are_allocated() {
    // A 1x1 conv with 10^6 filters over 10^6 channels: 10^12 weights (4 TB).
    let e = err(
        r#"{"layers":[{"type":"input","width":1,"height":1,"depth":1000000},{"type":"conv","size":1,"filters":1000000},{"type":"fc","units":2}]}"#,
    );
    assert_eq!(
        e,
        "layer 1 (conv): its conv1.weight [1000000, 1000000, 1, 1] takes the network past 4294967296 parameters, the most this engine takes natively (16 GiB of weights)"
    );
    // An fc of 2^24 units on 24x24 inputs: 9.7e9 weights.
    let e = err(r#"{"layers":[{"type":"input","width":24,"height":24,"depth":1},{"type":"fc","units":16777216}]}"#);
    assert!(e.starts_with("layer 1 (fc): its fc1.weight [16777216, 576] takes the network past 4294967296 parameters"), "{e}");
    // The total counts too: two layers that fit alone.
    let e = err(
        r#"{"layers":[{"type":"input","width":1,"height":1,"depth":65536},{"type":"fc","units":40000},{"type":"fc","units":65536},{"type":"fc","units":2}]}"#,
    );
    assert!(e.starts_with("layer 2 (fc): its fc2.weight [65536, 40000] takes the network past 4294967296"), "{e}");
}

#[test]
fn a_net_too_large_for_the_browser_runs_natively() {
    // 655M parameters, 2.6 GB of weights: fine natively, too large for wasm32.
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":1,"height":1,"depth":25600},{"type":"fc","units":25600},{"type":"softmax"}]}"#,
    )
    .unwrap();
    assert_eq!(spec.param_count(), 25600 * 25600 + 25600);
    assert_eq!(Limits::here(), Limits::NATIVE);
    let e = Limits::BROWSER.check_spec(&spec).unwrap_err().to_string();
    assert_eq!(
        e,
        "layer 1 (fc): its fc1.weight [25600, 25600] takes the network past 268435456 parameters, the most this engine takes in the browser (1 GiB of weights)"
    );
}

#[test]
fn a_batch_is_checked_before_it_is_made() {
    // 2^26 values in the input layer: 32 of them are 2^31 values (8 GiB).
    let spec = NetSpec::parse(
        r#"{"layers":[{"type":"input","width":8192,"height":8192,"depth":1},{"type":"pool","size":8,"stride":8},{"type":"fc","units":2}]}"#,
    )
    .unwrap();
    assert_eq!(Limits::NATIVE.max_batch(&spec), 32);
    assert_eq!(Limits::BROWSER.max_batch(&spec), 4);
    Limits::NATIVE.check_batch(&spec, 32).unwrap();
    assert_eq!(
        Limits::BROWSER.check_batch(&spec, 20).unwrap_err().to_string(),
        "input: a batch of 20 images needs 1342177280 values in layer 0 (input); this engine takes at most 268435456 per layer in the browser: use batches of at most 4"
    );
}
