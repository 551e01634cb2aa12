//! Which Burn device runs the engine: the CPU (burn-flex) or the GPU (burn-wgpu: WebGPU in the
//! browser, Vulkan/Metal natively). The CLI and the tests hold both and choose at run time; the
//! browser's two engine builds hold one each (crates/wasm's features `cpu` and `webgpu`).

use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Gpu,
}

impl Backend {
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "cpu" | "flex" => Some(Backend::Cpu),
            "gpu" | "wgpu" | "webgpu" | "vulkan" => Some(Backend::Gpu),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "webgpu",
        }
    }
}

/// The CPU device. Only in builds with the CPU backend (feature `flex`): the browser's WebGPU
/// engine has none, so host work that any session does (PCA, the loss surface's first layer) is
/// plain Rust on host buffers, not Burn on this device.
#[cfg(feature = "flex")]
pub fn cpu() -> Device {
    Device::flex()
}

/// The GPU device, initialised (asynchronously, as the browser requires).
#[cfg(any(feature = "webgpu", feature = "wgpu"))]
pub async fn gpu() -> Result<Device, crate::Error> {
    let opts = Device::wgpu_options();
    #[cfg(all(target_family = "wasm", feature = "webgpu"))]
    let opts = opts.graphics_api(burn::tensor::wgpu::WgpuBackend::WebGpu);
    // Natively: Vulkan, with WGSL shaders translated by naga (as in the browser). Burn's SPIR-V
    // compiler (its `vulkan` feature) crashes Mesa 22's lavapipe, the driver CI runs on.
    #[cfg(all(not(target_family = "wasm"), feature = "wgpu"))]
    let opts = opts.graphics_api(burn::tensor::wgpu::WgpuBackend::Vulkan);
    let (device, setup) =
        opts.init_with_setup_async().await.map_err(|e| crate::Error::Backend(format!("no GPU adapter could be initialised: {e}")))?;
    // What cubecl allows in one allocation (its `max_page_size`): a larger tensor fails.
    let limits = setup.device.limits();
    GPU_BUFFER_LIMIT.store(limits.max_storage_buffer_binding_size.min(limits.max_buffer_size), Ordering::Relaxed);
    Ok(device)
}

/// The most bytes the GPU takes in one buffer (0 until [`gpu`] has run).
static GPU_BUFFER_LIMIT: AtomicU64 = AtomicU64::new(0);

/// The most bytes one tensor may take on `device`: the GPU's largest storage buffer (WebGPU's
/// default is 128 MiB; SwiftShader and lavapipe allow a few hundred MB), `None` on the CPU.
/// Larger weights are stored in blocks ([`crate::net::ParamTensor::Rows`]) and larger reads
/// are split ([`crate::read_all`]).
pub fn buffer_limit(device: &Device) -> Option<usize> {
    #[cfg(feature = "flex")]
    if device.clone().without_autodiff() == cpu() {
        return None;
    }
    #[cfg(not(feature = "flex"))]
    let _ = device;
    gpu_buffer_limit()
}

/// The GPU's largest buffer in bytes, once [`gpu`] has run.
pub fn gpu_buffer_limit() -> Option<usize> {
    match GPU_BUFFER_LIMIT.load(Ordering::Relaxed) {
        0 => None,
        n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

/// Test hook: pretend the GPU takes at most `bytes` in one buffer (to exercise the splitting on
/// any adapter).
#[doc(hidden)]
pub fn set_buffer_limit(bytes: u64) {
    GPU_BUFFER_LIMIT.store(bytes, Ordering::Relaxed);
}
