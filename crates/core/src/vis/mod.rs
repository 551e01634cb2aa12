//! The visualization techniques, one file each. Each takes a [`crate::Net`] and returns plain
//! numbers (`Vec<f32>` with shapes) for a front end to draw; [`grid`] turns them into images for
//! the CLI.

pub mod adversarial;
pub mod attribution;
pub mod grid;
pub mod layers;
pub mod occlusion;
pub mod regularizers;
pub mod class_vis;
pub mod image_param;
pub mod optimize;
pub mod deepdream;
pub mod inversion;
pub mod style;
pub mod linear;
