//! Which Burn device runs the engine: the CPU (burn-flex) or the GPU (burn-wgpu: WebGPU in the
//! browser, Vulkan/Metal natively). One binary holds both; the choice is made at run time.

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

/// The CPU device.
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
    opts.init_async().await.map_err(|e| crate::Error::Backend(format!("no GPU adapter could be initialised: {e}")))
}
