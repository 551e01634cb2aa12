//! The fuzzing harness (stable Rust: proptest generates and runs the cases; cargo-fuzz needs a
//! nightly toolchain). Every reader of user files gets mutated versions of small valid files:
//! the network spec, safetensors, a TF.js model (its model.json and its weight shards), a
//! .tflite, an op list, and the PNG sprite sheets and labels of a dataset. A case passes when the
//! reader returns (a value or an error) without panicking, within `HANG_S` seconds, and without
//! any single allocation over `MAX_ALLOC` (the browser's limit on a layer's values, 2^26 f32; the
//! seeds are at most 25 kB).
//!
//! Mutations are what AFL's havoc stage does, written as proptest strategies: bit flips, bytes set
//! to boundary values, integers of 1 to 8 bytes set to boundary values, inserted, deleted and
//! duplicated runs, truncation; for text also numbers replaced by boundary numbers (0, -1, 2^16,
//! 2^32, 1e400, ...) and keys duplicated. A failure is shrunk and saved in
//! tests/fuzz-regressions/<target>.txt, replayed first on every later run; tests/fuzz-corpus/
//! holds hostile inputs (the issue's, and inputs that gave new error messages in long runs),
//! replayed by `the_saved_corpus_replays`.
//!
//! `FUZZ_CASES` sets the cases per target (default 300, as CI runs it); `npm run fuzz` runs a
//! million per target in the test profile (overflow checks on: an arithmetic overflow is a panic)
//! and prints the counts. `FUZZ_SAVE=1` adds to tests/fuzz-corpus/
//! the inputs whose error message starts differently from every earlier one (at most 20 per
//! target).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use convlens_core::data::{self, Augment, Dataset};
use convlens_core::spec::NetSpec;
use convlens_core::{oplist, tfjs, tflite, weights};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

const MAX_ALLOC: usize = 1 << 28;
const HANG_S: u64 = 10;

/// Records the largest single allocation of each thread since its last reset (a const
/// thread-local: no allocation, no lazy initialisation inside the allocator).
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A file read once (the targets run millions of times).
fn cached(path: &'static str) -> &'static [u8] {
    static FILES: Mutex<Vec<(&'static str, &'static [u8])>> = Mutex::new(vec![]);
    let mut files = FILES.lock().unwrap();
    if let Some((_, b)) = files.iter().find(|(p, _)| *p == path) {
        return b;
    }
    let b: &'static [u8] = Box::leak(read(path).into_boxed_slice());
    files.push((path, b));
    b
}

// ---- the targets -------------------------------------------------------------------------------

/// A reader under test: takes one input; `Err` is the message of a refused input.
type Target = fn(&[u8]) -> Result<(), String>;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn spec(bytes: &[u8]) -> Result<(), String> {
    NetSpec::parse(&text(bytes)).map(|_| ()).map_err(|e| e.to_string())
}

fn safetensors(bytes: &[u8]) -> Result<(), String> {
    static SPEC: std::sync::OnceLock<NetSpec> = std::sync::OnceLock::new();
    let spec = SPEC.get_or_init(|| NetSpec::parse(std::str::from_utf8(cached("www/nets/mnist.json")).unwrap()).unwrap());
    let _ = weights::embedded_spec(bytes);
    weights::read(bytes).map_err(|e| e.to_string())?;
    weights::load(spec, bytes).map(|_| ()).map_err(|e| e.to_string())
}

fn tfjs_shard(name: &str) -> Vec<u8> {
    match name {
        "model.json" => cached("tests/fixtures/loaders/tiny_tfjs/model.json"),
        "group1-shard1of2.bin" => cached("tests/fixtures/loaders/tiny_tfjs/group1-shard1of2.bin"),
        _ => cached("tests/fixtures/loaders/tiny_tfjs/group1-shard2of2.bin"),
    }
    .to_vec()
}

fn tfjs_model(model: &str, first_shard: Vec<u8>) -> Result<(), String> {
    let mut shards = |name: &str| -> Result<Vec<u8>, convlens_core::Error> {
        match name {
            "group1-shard1of2.bin" => Ok(first_shard.clone()),
            "group1-shard2of2.bin" => Ok(tfjs_shard(name)),
            _ => Err(convlens_core::Error::Weights(format!("no shard {name}"))),
        }
    };
    tfjs::load(model, &mut shards).map(|_| ()).map_err(|e| e.to_string())
}

fn tfjs_json(bytes: &[u8]) -> Result<(), String> {
    tfjs_model(&text(bytes), tfjs_shard("group1-shard1of2.bin"))
}

fn tfjs_weights(bytes: &[u8]) -> Result<(), String> {
    tfjs_model(&text(&tfjs_shard("model.json")), bytes.to_vec())
}

fn tflite(bytes: &[u8]) -> Result<(), String> {
    tflite::read(bytes).map(|_| ()).map_err(|e| e.to_string())
}

fn op_list(bytes: &[u8]) -> Result<(), String> {
    let tensors = weights::read(cached("tests/fixtures/loaders/tiny_oplist.safetensors")).unwrap();
    let shape = |name: &str| tensors.tensor(name).ok().map(|t| t.shape().to_vec());
    oplist::spec(&text(bytes), &shape, None).map(|_| ()).map_err(|e| e.to_string())
}

/// A tiny dataset: a grayscale and an RGB sprite sheet of 4x4 images, 5 rows each.
fn sheet(channels: usize) -> Vec<u8> {
    let (w, rows) = (16u32, 5u32);
    let mut out = vec![];
    let mut enc = png::Encoder::new(&mut out, w, rows);
    enc.set_color(if channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
    enc.set_depth(png::BitDepth::Eight);
    let data: Vec<u8> = (0..w * rows * channels as u32).map(|i| (i * 37 % 251) as u8).collect();
    enc.write_header().unwrap().write_image_data(&data).unwrap();
    out
}

fn sprites(bytes: &[u8]) -> Result<(), String> {
    let classes = ["a", "b", "c"];
    let labels = [0, 1, 2, 0, 1];
    for c in [1, 3] {
        Dataset::from_sprites([c, 4, 4], &[(bytes, 0)], &labels, &classes, Augment::default()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn labels(bytes: &[u8]) -> Result<(), String> {
    data::parse_labels(&text(bytes)).map(|_| ()).map_err(|e| e.to_string())
}

/// Each target with its seeds and whether it reads text (then numbers and keys are mutated too).
fn targets() -> Vec<(&'static str, Target, Vec<Vec<u8>>, bool)> {
    vec![
        ("spec", spec, vec![read("www/nets/mnist.json"), read("www/nets/cifar10.json"), read("www/nets/toy2d.json")], true),
        ("safetensors", safetensors, vec![read("www/nets/mnist.safetensors")], false),
        ("tfjs-json", tfjs_json, vec![tfjs_shard("model.json")], true),
        ("tfjs-weights", tfjs_weights, vec![tfjs_shard("group1-shard1of2.bin")], false),
        ("tflite", tflite, vec![read("tests/fixtures/loaders/tiny.tflite")], false),
        ("oplist", op_list, vec![read("tests/fixtures/loaders/tiny_oplist.json")], true),
        ("png", sprites, vec![sheet(1), sheet(3)], false),
        ("labels", labels, vec![b"var labels=[0,1,2,0,1];".to_vec(), b"[3, 1, 4, 1, 5]".to_vec()], true),
    ]
}

// ---- the mutations -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Byte(usize, u8),
    Int(usize, u8, u64),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
    Truncate(usize),
    /// Text: the k-th number becomes this.
    Number(usize, &'static str),
    /// Text: the k-th `"key": value` pair is written twice.
    DuplicateKey(usize),
}

const BYTES: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'9'];
const INTS: [u64; 12] = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::MAX, 1 << 40];
const NUMBERS: [&str; 16] = [
    "0",
    "-1",
    "1",
    "2",
    "3",
    "65536",
    "4294967296",
    "18446744073709551616",
    "1e400",
    "-1e400",
    "-0",
    "2.5",
    "1e-320",
    "99999999999999999999999",
    "\"7\"",
    "null",
];

fn mutation(text: bool) -> BoxedStrategy<Mutation> {
    let bytes = prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), prop_oneof![proptest::sample::select(&BYTES[..]), any::<u8>()]).prop_map(|(p, b)| Mutation::Byte(p, b)),
        (any::<usize>(), proptest::sample::select(&[1u8, 2, 4, 8][..]), proptest::sample::select(&INTS[..]))
            .prop_map(|(p, w, v)| Mutation::Int(p, w, v)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..64, any::<usize>()).prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ];
    if !text {
        return bytes.boxed();
    }
    prop_oneof![
        3 => bytes,
        4 => (any::<usize>(), proptest::sample::select(&NUMBERS[..])).prop_map(|(k, n)| Mutation::Number(k, n)),
        1 => any::<usize>().prop_map(Mutation::DuplicateKey),
    ]
    .boxed()
}

/// Byte ranges of the numbers in a JSON text.
fn numbers(s: &[u8]) -> Vec<(usize, usize)> {
    let mut out = vec![];
    let mut i = 0;
    while i < s.len() {
        let starts = s[i].is_ascii_digit() || (s[i] == b'-' && s.get(i + 1).is_some_and(u8::is_ascii_digit));
        if starts && (i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_' || s[i - 1] == b'.')) {
            let j = i + 1 + s[i + 1..].iter().take_while(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')).count();
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// `"key": value` pairs with a simple value (up to the next comma or closing bracket).
fn pairs(s: &[u8]) -> Vec<(usize, usize)> {
    let mut out = vec![];
    for (i, &c) in s.iter().enumerate() {
        if c == b'"'
            && (i == 0 || matches!(s[i - 1], b'{' | b',' | b' ' | b'\n'))
            && let Some(end) = s[i..].iter().position(|&c| matches!(c, b',' | b'}' | b']'))
        {
            out.push((i, i + end));
        }
    }
    out
}

fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in muts {
        let n = v.len();
        let at = |p: usize| if n == 0 { 0 } else { p % n };
        match m {
            Mutation::Flip(p, b) if n > 0 => v[at(*p)] ^= 1 << b,
            Mutation::Byte(p, b) if n > 0 => v[at(*p)] = *b,
            Mutation::Int(p, w, x) => {
                let w = *w as usize;
                if n >= w {
                    let p = at(*p) % (n - w + 1);
                    v[p..p + w].copy_from_slice(&x.to_le_bytes()[..w]);
                }
            }
            Mutation::Insert(p, b) => {
                let p = if n == 0 { 0 } else { p % (n + 1) };
                v.splice(p..p, b.iter().copied());
            }
            Mutation::Delete(p, k) if n > 0 => {
                let p = at(*p);
                v.drain(p..(p + k).min(n));
            }
            Mutation::Duplicate(a, k, b) if n > 0 => {
                let a = at(*a);
                let chunk = v[a..(a + k).min(n)].to_vec();
                let b = b % (n + 1);
                v.splice(b..b, chunk);
            }
            Mutation::Truncate(p) => v.truncate(if n == 0 { 0 } else { p % n }),
            Mutation::Number(k, s) => {
                let list = numbers(&v);
                if !list.is_empty() {
                    let (a, b) = list[k % list.len()];
                    v.splice(a..b, s.bytes());
                }
            }
            Mutation::DuplicateKey(k) => {
                let list = pairs(&v);
                if !list.is_empty() {
                    let (a, b) = list[k % list.len()];
                    let mut pair = v[a..b].to_vec();
                    pair.push(b',');
                    v.splice(a..a, pair);
                }
            }
            _ => {}
        }
    }
    v
}

// ---- running -----------------------------------------------------------------------------------

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(300)
}

/// Runs one input: a panic, a hang (the watchdog aborts the process after saving the input) or an
/// allocation over the limit fails the case.
fn check(name: &str, target: Target, input: &[u8], watch: &Watch) -> Result<Result<(), String>, String> {
    watch.start(input);
    LARGEST.with(|l| l.set(0));
    let r = std::panic::catch_unwind(|| target(input));
    let largest = LARGEST.with(Cell::get);
    watch.stop();
    let r = r.map_err(|p| {
        let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        format!("{name}: panicked: {msg}")
    })?;
    if largest > MAX_ALLOC {
        return Err(format!("{name}: an allocation of {largest} bytes (limit {MAX_ALLOC})"));
    }
    Ok(r)
}

/// Aborts the process when one input runs longer than `HANG_S`, after writing it to
/// target/fuzz-hang-<name>.bin.
struct Watch {
    started: Arc<AtomicU64>,
    input: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
    t0: Instant,
}

impl Watch {
    fn new(name: &'static str) -> Watch {
        let w = Watch { started: Arc::default(), input: Arc::default(), done: Arc::default(), t0: Instant::now() };
        let (started, input, done, t0) = (w.started.clone(), w.input.clone(), w.done.clone(), w.t0);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let s = started.load(Ordering::Relaxed);
                if s > 0 && t0.elapsed().as_millis() as u64 - s > HANG_S * 1000 {
                    let path = root().join(format!("target/fuzz-hang-{name}.bin"));
                    let _ = std::fs::write(&path, &*input.lock().unwrap());
                    eprintln!("{name}: an input ran over {HANG_S} s (a hang); it is in {}", path.display());
                    std::process::abort();
                }
            }
        });
        w
    }
    fn start(&self, input: &[u8]) {
        input.clone_into(&mut self.input.lock().unwrap());
        self.started.store((self.t0.elapsed().as_millis() as u64).max(1), Ordering::Relaxed);
    }
    fn stop(&self) {
        self.started.store(0, Ordering::Relaxed);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn fuzz(name: &'static str) {
    let (_, target, seeds, is_text) = targets().into_iter().find(|t| t.0 == name).unwrap();
    for s in &seeds {
        assert_eq!(target(s), Ok(()), "{name}: a seed must be valid");
    }
    let persist: &'static str = Box::leak(format!("{}/tests/fuzz-regressions/{name}.txt", env!("CARGO_MANIFEST_DIR")).into_boxed_str());
    let config = Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persist))),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let watch = Watch::new(name);
    let save = std::env::var("FUZZ_SAVE").is_ok();
    let seen = Mutex::new(HashSet::new());
    let (count, refused, saved) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let strategy = (0..seeds.len(), proptest::collection::vec(mutation(is_text), 1..8));
    let t0 = Instant::now();
    let result = TestRunner::new(config).run(&strategy, |(k, muts)| {
        let input = apply(&seeds[k], &muts);
        count.fetch_add(1, Ordering::Relaxed);
        match check(name, target, &input, &watch).map_err(TestCaseError::fail)? {
            Ok(()) => {}
            Err(message) => {
                refused.fetch_add(1, Ordering::Relaxed);
                let key: String = message.chars().take(48).collect();
                if save && saved.load(Ordering::Relaxed) < 20 && seen.lock().unwrap().insert(key) {
                    let dir = root().join(format!("tests/fuzz-corpus/{name}"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let n = saved.fetch_add(1, Ordering::Relaxed);
                    std::fs::write(dir.join(format!("found-{n:02}.bin")), &input).unwrap();
                }
            }
        }
        Ok(())
    });
    let (n, refused) = (count.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    let secs = t0.elapsed().as_secs_f64();
    if let Err(e) = result {
        println!("fuzz {name}: FAILED after {n} inputs ({secs:.1} s); the shrunk input is saved in tests/fuzz-regressions/{name}.txt");
        panic!("{name}: {e}");
    }
    let mib = MAX_ALLOC >> 20;
    println!(
        "fuzz {name}: {n} inputs ({refused} refused with a message), 0 panics, 0 hangs, every allocation under {mib} MiB, {secs:.1} s"
    );
}

#[test]
fn fuzz_spec() {
    fuzz("spec");
}

#[test]
fn fuzz_safetensors() {
    fuzz("safetensors");
}

#[test]
fn fuzz_tfjs_model_json() {
    fuzz("tfjs-json");
}

#[test]
fn fuzz_tfjs_weights() {
    fuzz("tfjs-weights");
}

#[test]
fn fuzz_tflite() {
    fuzz("tflite");
}

#[test]
fn fuzz_op_list() {
    fuzz("oplist");
}

#[test]
fn fuzz_png_sprite_sheets() {
    fuzz("png");
}

#[test]
fn fuzz_labels() {
    fuzz("labels");
}

/// Every file of tests/fuzz-corpus/<target>/ through its target: no panic, no allocation over the
/// limit (each must be refused or read; which one is not asserted).
#[test]
fn the_saved_corpus_replays() {
    let dir = root().join("tests/fuzz-corpus");
    let mut n = 0;
    for (name, target, _, _) in targets() {
        let watch = Watch::new(name);
        let Ok(files) = std::fs::read_dir(dir.join(name)) else { continue };
        for f in files {
            let path = f.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            if let Err(e) = check(name, target, &input, &watch) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    println!("replayed {n} saved inputs");
    assert!(n >= 20, "the corpus is there ({n} files)");
}
