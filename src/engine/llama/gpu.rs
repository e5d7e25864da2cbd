//! Where the model runs: ggml's devices, how many layers go to the GPU, and the context options
//! that matter there (flash attention, KV-cache types). A GPU build without a usable GPU, or one
//! whose GPU runs out of memory, falls back to the CPU and says so once.

use crate::config::{FlashAttn, GpuLayers};
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::LlamaBackendDeviceType;
use std::ffi::CString;
use std::path::Path;

/// Free VRAM kept back when fitting layers, for the compute buffers and the rest of the desktop.
const FIT_MARGIN_BYTES: usize = 512 << 20;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Device {
    pub name: String,
    pub description: String,
    pub backend: String,
    pub kind: String,
    pub memory_free: u64,
    pub memory_total: u64,
}

pub fn devices() -> Vec<Device> {
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| Device {
            kind: match d.device_type {
                LlamaBackendDeviceType::Cpu => "CPU",
                LlamaBackendDeviceType::Gpu => "GPU",
                LlamaBackendDeviceType::IntegratedGpu => "integrated GPU",
                LlamaBackendDeviceType::Accelerator => "accelerator",
                LlamaBackendDeviceType::Unknown => "unknown",
            }
            .into(),
            name: d.name,
            description: d.description,
            backend: d.backend,
            memory_free: d.memory_free as u64,
            memory_total: d.memory_total as u64,
        })
        .collect()
}

/// The device tuned settings are measured on, as one line: every ggml device (the CPU by its
/// brand string and core counts, each GPU by name and memory), and, with a GPU, the
/// `gpu_layers` setting (another split is another measurement).
pub fn device_key(gpu_layers: GpuLayers) -> String {
    let devices = devices();
    let mut parts: Vec<String> = devices
        .iter()
        .map(|d| match d.kind.as_str() {
            "CPU" => format!(
                "CPU {} {} ({} physical/{} logical cores)",
                std::env::consts::ARCH,
                d.description.trim(),
                super::init::physical_cores(),
                super::init::logical_cores()
            ),
            kind => format!("{kind} {} {} ({} MiB)", d.name, d.description.trim(), d.memory_total >> 20),
        })
        .collect();
    if devices.iter().any(|d| d.kind != "CPU") {
        parts.push(format!("gpu_layers {gpu_layers}"));
    }
    parts.join("; ")
}

/// GPU backends compiled into this binary (cargo features).
pub fn compiled_backends() -> Vec<&'static str> {
    let mut v = vec!["CPU"];
    if cfg!(feature = "cuda") {
        v.push("CUDA");
    }
    if cfg!(feature = "metal") {
        v.push("Metal");
    }
    if cfg!(feature = "vulkan") {
        v.push("Vulkan");
    }
    if cfg!(feature = "dynamic-backends") {
        v.push("dynamic (ggml backend libraries found at run time)");
    }
    v
}

fn gpu_build() -> bool {
    cfg!(any(feature = "cuda", feature = "metal", feature = "vulkan", feature = "dynamic-backends"))
}

/// The number of layers to offload, and a note for the user when the request could not be met.
pub fn plan_layers(
    backend: &LlamaBackend,
    wanted: GpuLayers,
    model: &Path,
    cparams: &LlamaContextParams,
) -> (u32, Option<String>) {
    let has_gpu = backend.supports_gpu_offload() && devices().iter().any(|d| d.kind != "CPU");
    if !has_gpu {
        let note = (gpu_build() && wanted != GpuLayers::Count(0))
            .then(|| "this is a GPU build but no usable GPU was found; running on the CPU".to_string());
        return (0, note);
    }
    match wanted {
        GpuLayers::Count(n) => (n, None),
        GpuLayers::All => (u32::MAX, None),
        GpuLayers::Auto => fit(model, cparams),
    }
}

/// llama.cpp's own fitting: as many layers as free device memory holds next to the KV cache.
fn fit(model: &Path, cparams: &LlamaContextParams) -> (u32, Option<String>) {
    let Ok(path) = CString::new(model.to_string_lossy().as_bytes()) else { return (u32::MAX, None) };
    let mut params = LlamaModelParams::default();
    let mut cp = cparams.clone();
    let max_devices = unsafe { llama_cpp_sys_2::llama_max_devices() };
    let mut margins = vec![FIT_MARGIN_BYTES; max_devices.max(1)];
    let n_ctx_min = cp.n_ctx().map_or(4096, |n| n.get()).min(4096);
    match std::pin::Pin::new(&mut params).fit_params(
        &path,
        &mut cp,
        &mut margins,
        n_ctx_min,
        llama_cpp_sys_2::GGML_LOG_LEVEL_DEBUG,
    ) {
        Ok(_) => (params.n_gpu_layers().max(0) as u32, None),
        Err(e) => (0, Some(format!("the model does not fit in free GPU memory ({e:?}); running on the CPU"))),
    }
}

pub fn flash_attn(f: FlashAttn) -> llama_cpp_sys_2::llama_flash_attn_type {
    match f {
        FlashAttn::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        FlashAttn::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        FlashAttn::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }
}

/// Maps a validated `cache_type_*` name (see `config::CACHE_TYPES`).
pub fn kv_type(name: &str) -> KvCacheType {
    match name {
        "f32" => KvCacheType::F32,
        "bf16" => KvCacheType::BF16,
        "q8_0" => KvCacheType::Q8_0,
        "q5_1" => KvCacheType::Q5_1,
        "q5_0" => KvCacheType::Q5_0,
        "q4_1" => KvCacheType::Q4_1,
        "q4_0" => KvCacheType::Q4_0,
        "iq4_nl" => KvCacheType::IQ4_NL,
        _ => KvCacheType::F16,
    }
}
