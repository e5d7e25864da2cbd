//! `moat doctor`: what this build can use and what it found: compiled-in backends, ggml's devices
//! with their memory, the CPU features llama.cpp uses, where the configured model's layers go, and
//! the settings `moat tune` measured for it on this device (or that it was not measured yet).

use super::args::{DoctorArgs, ModelArgs};
use super::setup::{self, Setup};
use super::Failure;
use crate::engine::gpu;
use crate::models::store::human_bytes;
use crate::models::ModelRef;

pub fn run(flags: &ModelArgs, args: DoctorArgs) -> Result<i32, Failure> {
    let setup = Setup::new(flags)?;
    let log = setup.loaded.paths.log_file(&setup.config().log.file);
    let (devices, cpu) = crate::engine::probe(log.as_deref());
    let backends = gpu::compiled_backends();
    let model = if args.no_model { Err("skipped (--no-model)".to_string()) } else { load_model(&setup) };
    // Looked up without hashing the model: a file never tuned is "not tuned yet".
    let local = if setup.remote().is_some() { None } else { local_options(&setup).ok() };
    let tuned = local.as_ref().and_then(|opts| super::tune::cached_entry(&setup, opts));
    if args.json {
        let json = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backends": backends,
            "devices": devices,
            "cpu": cpu,
            "model": match &model {
                Ok(info) => serde_json::to_value(info).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e }),
            },
            "tuning": tuned,
        });
        println!("{json}");
        return Ok(0);
    }
    sayln!("moat {}   backends compiled in: {}", env!("CARGO_PKG_VERSION"), backends.join(", "));
    sayln!("devices:");
    for d in &devices {
        let memory = if d.memory_total > 0 {
            format!("{} free of {}", human_bytes(d.memory_free), human_bytes(d.memory_total))
        } else {
            "memory n/a".into()
        };
        sayln!("  {:<8} {:<15} {}  ({memory})", d.name, d.kind, d.description);
    }
    if !devices.iter().any(|d| d.kind != "CPU") {
        let why = if backends.len() == 1 {
            "this is a CPU build; rebuild with `--features cuda` (NVIDIA), `metal` (Apple) or `vulkan` to use a GPU"
        } else {
            "no GPU was found by the compiled-in backends: check the driver (`nvidia-smi`) and that the toolkit's libraries are on the library path"
        };
        sayln!("  (no GPU: {why})");
    }
    sayln!("cpu:     {cpu}");
    match model {
        Ok(info) => {
            sayln!("model:   {} — {}", info.name, info.path.display());
            sayln!("         {} · load {:.0} ms · context {}", info.placement(), info.load_ms, info.n_ctx);
            if let Some(v) = crate::models::store::verified(&info.path) {
                sayln!("         sha256 {} ({})", v.sha256, v.how());
            }
        }
        Err(e) => sayln!("model:   {e}"),
    }
    if local.is_some() {
        sayln!("tuning:");
        for line in super::tune::report_lines(tuned.as_ref()) {
            sayln!("{line}");
        }
    }
    Ok(0)
}

/// Loads the configured model (never downloading it) to see where its layers go.
fn load_model(setup: &Setup) -> Result<crate::engine::ModelInfo, String> {
    if setup.remote().is_some() {
        let opts = setup.target().map_err(|f| f.message)?;
        return setup::start(opts).map(|(_, info)| info).map_err(|f| f.message);
    }
    setup::start(local_options(setup)?).map(|(_, info)| info).map_err(|f| f.message)
}

/// The configured local model's options, never downloading it.
fn local_options(setup: &Setup) -> Result<crate::engine::EngineOptions, String> {
    let model = ModelRef::parse(&setup.config().model.name).map_err(|e| e.to_string())?;
    let mut opts = setup.pull_options(true);
    opts.auto_pull = false;
    let path = setup.store.ensure(&model, &opts).map_err(|e| e.to_string())?;
    Ok(setup.engine_options(&model, path))
}
