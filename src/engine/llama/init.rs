//! llama.cpp's process-wide state: the backend (initialised once per process) and its log, which
//! must never reach a terminal that a TUI or a pipe is using.

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The backend, initialised on first use. llama.cpp allows one per process; every engine in the
/// process (tests start several) shares it.
pub fn backend(log_file: Option<&Path>) -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        route_logs(log_file);
        LlamaBackend::init().expect("llama.cpp backend initialises once")
    })
}

/// Sends llama.cpp's log to `file` (appending), or drops it. Must run before the backend starts.
fn route_logs(file: Option<&Path>) {
    let writer = file.and_then(|p| {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::OpenOptions::new().create(true).append(true).open(p).ok()
    });
    match writer {
        Some(f) => {
            send_logs_to_tracing(LogOptions::default());
            let _ = tracing_subscriber::fmt()
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .try_init();
        }
        None => send_logs_to_tracing(LogOptions::default().with_logs_enabled(false)),
    }
}

/// llama.cpp's CPU feature line, e.g. `CPU : SSE3 = 1 | AVX2 = 1 | …`.
pub fn system_info() -> String {
    // SAFETY: returns a pointer to a static C string owned by llama.cpp.
    unsafe {
        let p = llama_cpp_sys_2::llama_print_system_info();
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().trim().to_string()
        }
    }
}

pub fn physical_cores() -> u32 {
    num_cpus::get_physical().max(1) as u32
}

pub fn logical_cores() -> u32 {
    num_cpus::get().max(1) as u32
}
