//! ConvLens's engine: a network spec, the network on Burn (CPU through burn-flex, GPU through
//! burn-wgpu), gradients of any objective, weights in PyTorch's safetensors layout, and the
//! visualization techniques in [`vis`], one file each. Backend-agnostic: the caller picks the
//! [`burn::tensor::Device`]; the browser facade (crates/wasm) and the CLI (crates/cli) both sit
//! on this crate.

pub mod backend;
pub mod cpu_occlude;
pub mod cpu_train;
pub mod data;
pub mod divergence;
pub mod grad;
pub mod import;
pub mod jobs;
pub mod layers;
pub mod net;
pub mod onnx;
pub mod oplist;
pub mod rng;
pub mod session;
pub mod settings;
pub mod shards;
pub mod spec;
pub mod tfjs;
pub mod tflite;
pub mod train;
pub mod vis;
pub mod weights;

pub use burn;
pub use grad::Objective;
pub use net::Net;
pub use safetensors;
pub use spec::NetSpec;

use burn::tensor::Tensor;

/// Every error the engine reports to a user, with a message meant for them.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Spec(spec::SpecError),
    Weights(String),
    Input(String),
    Objective(String),
    Backend(String),
    Data(String),
    /// A model file that cannot be imported (ONNX): what is wrong and where.
    Model(String),
    /// Training diverged: the message (which step, what came back; it starts "training
    /// diverged") and the learning rate to suggest, if the method has one.
    Diverged(String, Option<f64>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Spec(e) => write!(f, "network spec: {e}"),
            Error::Weights(m) => write!(f, "weights: {m}"),
            Error::Input(m) => write!(f, "input: {m}"),
            Error::Objective(m) => write!(f, "objective: {m}"),
            Error::Backend(m) => write!(f, "backend: {m}"),
            Error::Data(m) => write!(f, "data: {m}"),
            Error::Model(m) => write!(f, "model: {m}"),
            Error::Diverged(m, _) => write!(f, "{m}"),
        }
    }
}

impl Error {
    /// The message without its "data: "-style prefix.
    pub fn message(&self) -> String {
        match self {
            Error::Spec(e) => e.to_string(),
            Error::Weights(m)
            | Error::Input(m)
            | Error::Objective(m)
            | Error::Backend(m)
            | Error::Data(m)
            | Error::Model(m)
            | Error::Diverged(m, _) => m.clone(),
        }
    }
}

impl std::error::Error for Error {}

impl From<spec::SpecError> for Error {
    fn from(e: spec::SpecError) -> Self {
        Error::Spec(e)
    }
}

/// A backend failure as a message: a buffer larger than the GPU takes (cubecl's "can't allocate
/// buffer of size: N") says how large, what the GPU takes, and to use the CPU.
pub(crate) fn gpu_error(context: &str, detail: &str) -> Error {
    const TOO_BIG: &str = "can't allocate buffer of size: ";
    if let Some(at) = detail.find(TOO_BIG) {
        let size: u64 = detail[at + TOO_BIG.len()..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
        let limit = backend::gpu_buffer_limit().map(|l| format!(" (it takes at most {:.0} MB)", l as f64 / 1e6)).unwrap_or_default();
        return Error::Backend(format!(
            "this network needs a buffer of {:.0} MB, more than the GPU holds in one buffer{limit}: run it on the CPU instead (backend cpu)",
            size as f64 / 1e6
        ));
    }
    Error::Backend(format!("{context}: {detail}"))
}

/// Reads a tensor back to the host (asynchronously: WebGPU reads cannot block).
pub async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, Error> {
    let data = t.into_data_async().await.map_err(|e| gpu_error("reading a tensor back failed", &format!("{e:?}")))?;
    data.try_into_vec::<f32>().map_err(|e| Error::Backend(format!("unexpected tensor data: {e:?}")))
}

/// Reads several tensors back in one round trip (concatenated on the device, split on the
/// host): each read is an async map on WebGPU and a turn of the event loop in the browser. On a
/// GPU whose largest buffer is smaller than the whole, in as few reads as fit.
pub async fn read_all(parts: Vec<Tensor<1>>) -> Result<Vec<Vec<f32>>, Error> {
    let Some(first) = parts.first() else { return Ok(vec![]) };
    let limit = backend::buffer_limit(&first.device()).map_or(usize::MAX, |b| b / 4);
    let mut out = Vec::with_capacity(parts.len());
    let mut group: Vec<Tensor<1>> = vec![];
    let mut group_len = 0;
    for t in parts {
        let n = t.dims()[0];
        if !group.is_empty() && group_len + n > limit {
            read_group(std::mem::take(&mut group), &mut out).await?;
            group_len = 0;
        }
        group_len += n;
        group.push(t);
    }
    read_group(group, &mut out).await?;
    Ok(out)
}

async fn read_group(group: Vec<Tensor<1>>, out: &mut Vec<Vec<f32>>) -> Result<(), Error> {
    if group.len() == 1 {
        out.push(read(group.into_iter().next().expect("one tensor")).await?);
        return Ok(());
    }
    let lens: Vec<usize> = group.iter().map(|t| t.dims()[0]).collect();
    let all = read(Tensor::cat(group, 0)).await?;
    let mut rest = all.as_slice();
    for n in lens {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        out.push(head.to_vec());
    }
    Ok(())
}

/// Builds a network from a spec and optional safetensors weights (or a seeded random init).
pub fn build(spec_json: &str, weights: Option<&[u8]>, seed: u64, device: &burn::tensor::Device) -> Result<Net, Error> {
    let spec = NetSpec::parse(spec_json)?;
    Ok(match weights {
        Some(bytes) => {
            let w = weights::load(&spec, bytes)?;
            Net::with_weights(spec, w, device)
        }
        None => Net::init(spec, seed, device),
    })
}
