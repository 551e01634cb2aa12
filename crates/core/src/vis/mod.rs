//! The visualization techniques, one file each. Each takes a [`crate::Net`] and returns plain
//! numbers (`Vec<f32>` with shapes) for a front end to draw; [`grid`] turns them into images for
//! the CLI.

pub mod adversarial;
pub mod attribution;
pub mod class_vis;
pub mod deepdream;
pub mod grid;
pub mod image_param;
pub mod inversion;
pub mod landscape;
pub mod layers;
pub mod linear;
pub mod occlusion;
pub mod optimize;
pub mod patches;
pub mod pca;
pub mod regularizers;
pub mod seeds;
pub mod style;
pub mod tsne;
