//! Helpers shared by the tests that read the data directory.
#![allow(dead_code)]

use std::path::PathBuf;

/// The data directory: $CONVLENS_DATA_DIR, else ../shared/data beside the repository.
pub fn data_dir() -> PathBuf {
    std::env::var("CONVLENS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// An RGB image as a net takes it: values in [0, 1], channels first.
pub fn rgb_chw(img: &image::RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            out[c * plane + (y * w + x) as usize] = p[c] as f32 / 255.0;
        }
    }
    out
}

/// The repository's www/ folder (the page's nets and built-in data).
pub fn www() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../www")
}

/// The page's trained MNIST net (www/nets/mnist.json and its weights), on the CPU.
pub fn mnist_net() -> convlens_core::Net {
    let spec = convlens_core::NetSpec::parse(&std::fs::read_to_string(www().join("nets/mnist.json")).unwrap()).unwrap();
    let w = convlens_core::weights::load(&spec, &std::fs::read(www().join("nets/mnist.safetensors")).unwrap()).unwrap();
    convlens_core::Net::with_weights(spec, w, &convlens_core::backend::cpu())
}
