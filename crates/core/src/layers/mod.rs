//! Every kind of layer, one file each, as ConvNetJS keeps them: the file says the layer's spec
//! fields and shape rule (`Parse`), its parameters (trainable or not, decayed or not) and their
//! initial values, its forward pass on Burn in evaluation and in training (`Kind::forward`, with
//! [`Mode`]), the activation whose backward rule the attribution methods replace
//! (`Kind::activation`: a ReLU-like gate takes deconvnet's and guided backpropagation's rule), and,
//! where it has one, its part of the fused CPU path and of incremental occlusion (`Fused`; none by
//! default: such nets run on Burn).
//!
//! The backward pass needs nothing from a kind: `grad.rs` takes each layer's vector-Jacobian
//! product from Burn's autodiff of `forward`. So a new kind is a new file here, its line in
//! `kinds!` below, and a finite-difference test (`crates/core/tests/gradients.rs`).

use std::fmt::Debug;

use burn::tensor::{Tensor, TensorData};

use crate::cpu_train::Buf;
use crate::grad::ReluRule;
use crate::net::ParamTensor;
use crate::rng::SplitMix64;
use crate::spec::{Fields, Layer, ParamSpec, Shape3, SpecError};

pub use act::Activation;
pub use pool::PoolMode;

/// What a layer's parser knows of a layer it reads.
pub struct Source<'a> {
    pub name: &'a str,
    pub shape: Shape3,
}

/// A kind of layer's behaviour.
pub trait Kind: Debug {
    /// The name its layers are counted under (`conv` -> `conv1`, `conv2`, ...).
    fn type_name(&self) -> &'static str;
    /// A short human description, e.g. `conv 5x5, 8 filters, stride 1, pad 2, relu`.
    fn describe(&self, layer: &Layer) -> String;
    /// Its parameters in PyTorch's names and layouts (none by default).
    fn params(&self, _layer: &Layer) -> Vec<ParamSpec> {
        vec![]
    }
    /// A parameter's initial value: weights ~ N(0, 2/fan_in) (He) before a ReLU, N(0, 1/fan_in)
    /// otherwise, as ConvNetJS does; biases 0 (0.1 before a ReLU, as ConvNetJS).
    fn init(&self, _layer: &Layer, p: &ParamSpec, rng: &mut SplitMix64) -> Vec<f32> {
        let n: usize = p.shape.iter().product();
        let relu = self.activation() == Some(Activation::Relu);
        if p.field == "bias" {
            return vec![if relu { 0.1 } else { 0.0 }; n];
        }
        let fan_in: usize = p.shape[1..].iter().product();
        let std = ((if relu { 2.0 } else { 1.0 }) / fan_in as f64).sqrt();
        (0..n).map(|_| (rng.normal() * std) as f32).collect()
    }
    /// Its activation (fused into it, or the layer's own): where a ReLU-like one
    /// ([`Activation::gate`]) is, deconvnet and guided backpropagation replace its backward rule.
    fn activation(&self) -> Option<Activation> {
        None
    }
    /// The forward pass of a batch (NCHW) on Burn, from its inputs (one per entry of the layer's
    /// `inputs`) and parameters (tracked copies when differentiated). `act` false skips a fused
    /// ReLU-like activation (deconvnet differentiates the linear part alone; an activation layer
    /// becomes the identity).
    fn forward(&self, layer: &Layer, params: &[ParamTensor], inputs: &[Tensor<4>], act: bool, mode: &mut Mode) -> Tensor<4>;
    /// Its part of the fused CPU path, if it has one.
    fn fused(&self, _layer: &Layer) -> Option<&dyn Fused> {
        None
    }
    /// Which input positions an output position reads (receptive fields: `vis/patches.rs`).
    fn window(&self) -> Window {
        Window::Pointwise
    }
}

/// Which input positions one output position of a layer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The same position (activations, batchnorm, add, concat, ...).
    Pointwise,
    /// A `size` x `size` window, `stride` apart, the input padded by `pad` on the top and left.
    Slide { size: usize, stride: usize, pad: usize },
    /// Every position (fully connected, global pooling, flatten, reshape).
    Whole,
}

/// How a kind is read from the spec.
pub trait Parse: Kind + Sized {
    /// The spec's `type` values it reads.
    const TYPES: &'static [&'static str];
    /// Whether it reads two or more layers (else exactly one).
    const MULTI_INPUT: bool = false;
    /// Reads its fields; returns the kind and its output shape. `ty` is one of `TYPES`.
    fn parse(ty: &str, f: &mut Fields, inputs: &[Source]) -> Result<(Self, Shape3), SpecError>;
}

/// A layer on the fused CPU path (`cpu_train.rs`): activations channel-major, `[C, N, H, W]`.
pub trait Fused {
    /// `io.buf.out` from `io.x`.
    fn forward(&self, io: FusedForward);
    /// `io.dx` (when asked) and the weight gradients from `io.buf.grad`.
    fn backward(&self, io: FusedBackward);
    /// Incremental occlusion (`cpu_occlude.rs`, one image, CHW): the outputs inside the returned
    /// rectangle, which holds every output that reads an input inside `io.region`.
    fn occlude(&self, io: OccludeIo) -> crate::cpu_occlude::Rect;
    /// After a training step: whatever the step's forward pass moved besides the trained
    /// parameters (batchnorm's running statistics, from `buf`) goes into `w`.
    fn after_step(&self, _layer: &Layer, _buf: &Buf, _w: &mut [Vec<f32>]) {}
    /// Whether its training forward reads the whole batch at once (batchnorm's statistics): then
    /// a step's batch is never cut into shards ([`crate::shards`]).
    fn batch_statistics(&self) -> bool {
        false
    }
}

/// A fused forward pass: the input `x` (the output of the layer's first input), every input
/// `xs` (a graph's add and concat read several), the layer's buffers and weights.
pub struct FusedForward<'a> {
    pub layer: &'a Layer,
    pub n: usize,
    pub x: &'a [f32],
    pub xs: &'a [&'a [f32]],
    pub buf: &'a mut Buf,
    pub w: &'a [Vec<f32>],
    /// A training step's pass, or None in evaluation.
    pub train: Option<TrainStep>,
}

/// A training step's forward pass on the fused path: the trainer's seed and the step's number
/// (dropout's masks), and the index of the pass's first example in the step's batch (a shard's,
/// [`crate::shards`]; 0 for the whole batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainStep {
    pub seed: u64,
    pub step: u64,
    pub first: usize,
}

/// A fused backward pass: `buf.grad` holds d loss / d output; `dx` (already sized) gets the
/// first input's gradient when `need_dx`, `dx_rest` the other inputs' (a graph's add and concat);
/// each is written, not added to (the trainer sums where a layer's output feeds several);
/// `dw` the parameters' gradients.
pub struct FusedBackward<'a> {
    pub layer: &'a Layer,
    pub n: usize,
    /// The inputs, as the forward pass read them.
    pub xs: &'a [&'a [f32]],
    pub buf: &'a mut Buf,
    pub dx: &'a mut [f32],
    pub dx_rest: Vec<&'a mut [f32]>,
    pub need_dx: bool,
    /// Whether `dw` is wanted (an input-gradient map needs none: only training and the layer
    /// view do).
    pub need_dw: bool,
    pub w: &'a [Vec<f32>],
    pub dw: &'a mut [Vec<f32>],
    pub rule: ReluRule,
}

/// Incremental occlusion: recompute `out` (CHW) where the input `x` changed inside `region`.
pub struct OccludeIo<'a> {
    pub layer: &'a Layer,
    pub x: &'a [f32],
    /// Every input (a graph's add and concat read several); `x` is the first.
    pub xs: &'a [&'a [f32]],
    pub out: &'a mut [f32],
    pub w: &'a [Vec<f32>],
    pub region: crate::cpu_occlude::Rect,
    pub cols: &'a mut Vec<f32>,
    pub tmp: &'a mut Vec<f32>,
}

/// How a forward pass runs: evaluation (every view, prediction: dropout off, batchnorm with its
/// running statistics) or a training step.
pub enum Mode<'a> {
    Eval,
    Train(&'a mut TrainPass),
}

/// A training step's forward pass: dropout draws its masks from (seed, step), batchnorm
/// normalizes with the batch's statistics and records its new running statistics here.
pub struct TrainPass {
    pub seed: u64,
    pub step: u64,
    /// (layer, parameter index, new value): batchnorm's running mean and variance, moved by the
    /// layer's momentum as PyTorch does (the variance's batch estimate unbiased).
    pub updates: Vec<(usize, usize, Tensor<1>)>,
}

impl TrainPass {
    pub fn new(seed: u64, step: u64) -> TrainPass {
        TrainPass { seed, step, updates: vec![] }
    }
}

/// A parameter of `layer` (`<layer>.<field>`).
pub fn param(layer: &Layer, field: &'static str, shape: Vec<usize>, trainable: bool, decay: bool) -> ParamSpec {
    ParamSpec { name: format!("{}.{}", layer.name, field), field, shape, trainable, decay }
}

/// A constant tensor shaped like `like`, from host values.
pub fn host_tensor(values: Vec<f32>, dims: [usize; 4], like: &Tensor<4>) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(values, dims), &like.device())
}

macro_rules! kinds {
    ($($variant:ident($module:ident::$ty:ident)),* $(,)?) => {
        $(pub mod $module;)*

        /// A layer's kind and settings: one variant per kind, each defined in its own file.
        #[derive(Debug, Clone, PartialEq)]
        pub enum LayerKind {
            $($variant($module::$ty)),*
        }

        impl LayerKind {
            /// Its behaviour.
            pub fn ops(&self) -> &dyn Kind {
                match self {
                    $(LayerKind::$variant(k) => k),*
                }
            }

            /// Reads a layer of type `ty`; None if no kind has that type.
            pub(crate) fn parse(ty: &str, f: &mut Fields, inputs: &[Source]) -> Option<Result<(LayerKind, Shape3), SpecError>> {
                $(
                    if <$module::$ty as Parse>::TYPES.contains(&ty) {
                        return Some(<$module::$ty as Parse>::parse(ty, f, inputs).map(|(k, s)| (LayerKind::$variant(k), s)));
                    }
                )*
                None
            }

            /// Every `type` a spec may use.
            pub fn types() -> Vec<&'static str> {
                let mut v = vec![];
                $(v.extend_from_slice(<$module::$ty as Parse>::TYPES);)*
                v
            }

            /// Whether layers of type `ty` read several layers.
            pub fn multi_input_type(ty: &str) -> bool {
                $(
                    if <$module::$ty as Parse>::TYPES.contains(&ty) {
                        return <$module::$ty as Parse>::MULTI_INPUT;
                    }
                )*
                false
            }
        }
    };
}

kinds! {
    Input(input::Input),
    Conv(conv::Conv),
    Pool(pool::Pool),
    GlobalPool(global_pool::GlobalPool),
    Fc(fc::Fc),
    Act(act::Activation),
    Softmax(softmax::Softmax),
    Dropout(dropout::Dropout),
    BatchNorm(batchnorm::BatchNorm),
    Add(add::Add),
    Mul(mul::Mul),
    Concat(concat::Concat),
    Flatten(flatten::Flatten),
    Reshape(reshape::Reshape),
    Scale(scale::Scale),
    Pad(pad::Pad),
}

impl LayerKind {
    pub fn type_name(&self) -> &'static str {
        self.ops().type_name()
    }

    /// The activation fused into a conv or fc layer, or the activation layer's own.
    pub fn activation(&self) -> Option<Activation> {
        self.ops().activation()
    }
}
