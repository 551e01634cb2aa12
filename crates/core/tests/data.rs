//! Datasets: sprite-sheet decoding (layout, labels, errors), crops/shifts/flips, the built-in
//! MNIST subset, and (when the data directory is there) the ConvNetJS MNIST and CIFAR-10 files.

use std::path::{Path, PathBuf};

use convlens_core::data::{self, Augment, Dataset, Sampler};
use convlens_core::rng::SplitMix64;

fn png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(data).unwrap();
    out
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The data directory: $CONVLENS_DATA_DIR, else ../shared/data beside the repository.
fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CONVLENS_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/data"));
    dir.join("mnist/mnist_labels.js").exists().then_some(dir)
}

fn load(name: &str, dir: &Path, sheets: Option<usize>) -> (Dataset, Dataset) {
    data::layout(name, sheets).unwrap().load(|f| std::fs::read(dir.join(f)).map_err(|e| convlens_core::Error::Data(e.to_string()))).unwrap()
}

#[test]
fn rgb_sprites_become_chw_images_with_their_labels() {
    // Two 1x2 RGB images, one per row: pixels (r, g, b) = (10*i+1, 10*i+2, 10*i+3) for pixel i.
    let rows: Vec<u8> = (0..4u8).flat_map(|i| [10 * i + 1, 10 * i + 2, 10 * i + 3]).collect();
    let sheet = png(2, 2, png::ColorType::Rgb, &rows);
    let labels = [9, 9, 3, 7];
    let d = Dataset::from_sprites([3, 1, 2], &[(&sheet, 2)], &labels, &data::CIFAR10_CLASSES, Augment::default()).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.labels, vec![3, 7]);
    let v = |x: u8| x as f32 / 255.0;
    assert_eq!(d.image(0), vec![v(1), v(11), v(2), v(12), v(3), v(13)]);
    assert_eq!(d.image(1), vec![v(21), v(31), v(22), v(32), v(23), v(33)]);
}

#[test]
fn bad_files_get_clear_messages() {
    let sheet = png(4, 1, png::ColorType::Grayscale, &[0, 1, 2, 3]);
    let e = |r: Result<Dataset, convlens_core::Error>| r.unwrap_err().to_string();
    let cls = &data::MNIST_CLASSES;
    assert_eq!(
        e(Dataset::from_sprites([1, 2, 3], &[(&sheet, 0)], &[1], cls, Augment::default())),
        "data: sprite sheet 1: expected 6 px wide (one 2x3 image per row), got 4"
    );
    assert_eq!(
        e(Dataset::from_sprites([1, 2, 2], &[(&sheet, 5)], &[1], cls, Augment::default())),
        "data: sprite sheet 1: 1 images need labels 5..6, the labels file has 1"
    );
    assert!(e(Dataset::from_sprites([1, 2, 2], &[(&sheet[..30], 0)], &[1], cls, Augment::default())).starts_with("data: sprite sheet 1: "));
    assert!(e(Dataset::from_sprites([1, 2, 2], &[(b"GIF89a", 0)], &[1], cls, Augment::default())).contains("not a readable PNG file"));
    assert_eq!(data::parse_labels("var labels=[1,2,x];").unwrap_err().to_string(), "data: label 2 is 'x', not a class number");
    assert_eq!(data::parse_labels("nothing").unwrap_err().to_string(), "data: the labels file has no [...] list");
    assert_eq!(data::parse_labels("var labels=[5, 0,4 ];").unwrap(), vec![5, 0, 4]);
    let layout = data::layout("mnist5k", None).unwrap();
    let missing = layout.load(|f| Err(convlens_core::Error::Data(format!("the file {f} was not given")))).unwrap_err();
    assert_eq!(missing.to_string(), "data: the file mnist5k_labels.js was not given");
    assert_eq!(
        data::layout("imagenet", None).unwrap_err().to_string(),
        "data: unknown dataset 'imagenet'; expected mnist, cifar10 or mnist5k"
    );
}

#[test]
fn crops_shifts_and_flips() {
    // One 1x4x4 image with values 0..15 (as bytes), a 2x2 network input.
    let sheet = png(16, 1, png::ColorType::Grayscale, &(0..16).collect::<Vec<u8>>());
    let mut d = Dataset::from_sprites([1, 4, 4], &[(&sheet, 0)], &[0], &data::MNIST_CLASSES, Augment::default()).unwrap();
    let px = |out: &[f32]| out.iter().map(|v| (v * 255.0).round() as i32).collect::<Vec<_>>();
    let mut out = vec![];
    d.example(0, [1, 2, 2], None, &mut out);
    assert_eq!(px(&out), vec![5, 6, 9, 10], "centre crop");
    let mut rng = SplitMix64(3);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        out.clear();
        d.example(0, [1, 2, 2], Some(&mut rng), &mut out);
        let p = px(&out);
        assert_eq!((p[1] - p[0], p[2] - p[0]), (1, 4), "a contiguous crop");
        seen.insert(p[0]);
    }
    assert_eq!(seen.len(), 9, "all 3x3 crop positions occur");
    d.augment = Augment { flip: true, shift: 1 };
    let (mut flipped, mut padded) = (false, false);
    for _ in 0..200 {
        out.clear();
        d.example(0, [1, 4, 4], Some(&mut rng), &mut out);
        let p = px(&out);
        flipped |= p[4..8] == [7, 6, 5, 4];
        padded |= p[..4] == [0, 0, 0, 0] && p[4..8] == [0, 1, 2, 3];
    }
    assert!(flipped && padded, "flips and zero-padded shifts occur");
    d.augment = Augment::default();
    assert_eq!(
        d.check_input([3, 2, 2]).unwrap_err().to_string(),
        "data: the dataset's images are 1x4x4 (depth x height x width) but the network's input is 3x2x2; it needs depth 1 and at most 4x4 (smaller inputs get crops)"
    );
}

#[test]
fn the_sampler_visits_every_example_once_per_epoch() {
    let mut s = Sampler::new(10, 1);
    let mut a = s.next(7);
    a.extend(s.next(3));
    a.sort();
    assert_eq!(a, (0..10).collect::<Vec<_>>());
    assert_eq!(s.epoch, 0);
    s.next(1);
    assert_eq!(s.epoch, 1);
}

#[test]
fn toy_sets() {
    for (kind, n) in [("circle", 100), ("spiral", 200), ("xor", 100), ("clusters", 100)] {
        let d = data::toy(kind, 1).unwrap();
        assert_eq!((d.len(), d.shape), (n, [2, 1, 1]), "{kind}");
        let ones = d.labels.iter().filter(|&&l| l == 1).count();
        assert!(ones > n / 4 && ones < 3 * n / 4, "{kind}: both classes");
        assert!((0..n).all(|i| d.image(i).iter().all(|v| v.abs() < 8.0)), "{kind}: in view");
    }
    let c = data::toy("circle", 1).unwrap();
    assert!((0..100).all(|i| {
        let p = c.image(i);
        let r = (p[0] * p[0] + p[1] * p[1]).sqrt();
        if c.labels[i] == 1 { r <= 2.0 } else { (3.0..=5.0).contains(&r) }
    }));
}

#[test]
fn the_built_in_mnist_subset() {
    let (train, held) = load("mnist5k", &repo().join("www/data"), None);
    assert_eq!((train.len(), held.len(), train.shape), (4500, 500, [1, 28, 28]));
    for c in 0..10u8 {
        assert_eq!(train.labels.iter().filter(|&&l| l == c).count(), 450);
        assert_eq!(held.labels.iter().filter(|&&l| l == c).count(), 50);
    }
    let img = train.image(0);
    let max = img.iter().cloned().fold(0f32, f32::max);
    assert!(max > 0.9 && img[0] == 0.0, "white digit on black");
}

#[test]
#[ignore = "needs the data directory (../shared/data, or $CONVLENS_DATA_DIR): npm test runs it when the data is there"]
fn convnetjs_mnist_and_cifar10_from_the_data_directory() {
    let dir = data_dir().expect("mnist/ and cifar10/ in the data directory (set CONVLENS_DATA_DIR)");
    let (train, test) = load("mnist", &dir, Some(1));
    assert_eq!((train.len(), test.len()), (3000, 3000));
    assert_eq!(train.labels[..5], [5, 0, 4, 1, 9]);
    let (train, test) = load("cifar10", &dir, None);
    assert_eq!((train.len(), test.len(), train.shape), (4000, 1000, [3, 32, 32]));
    assert_eq!(train.augment, Augment { flip: true, shift: 2 });
    assert!(train.labels.iter().all(|&l| l < 10));
}
