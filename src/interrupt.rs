//! Ctrl+C for the line-oriented commands: the first press sets a flag that long operations poll
//! (generation stops between decodes, downloads stop between chunks and delete their temp files);
//! a second press exits at once with 130.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

fn state() -> &'static (Arc<AtomicBool>, AtomicUsize) {
    static CELL: OnceLock<(Arc<AtomicBool>, AtomicUsize)> = OnceLock::new();
    CELL.get_or_init(|| (Arc::new(AtomicBool::new(false)), AtomicUsize::new(0)))
}

/// Installs the handler (once) and returns the shared flag.
pub fn install() -> Arc<AtomicBool> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            let (flag, presses) = state();
            flag.store(true, Ordering::SeqCst);
            if presses.fetch_add(1, Ordering::SeqCst) >= 1 {
                exit_now();
            }
        });
    });
    state().0.clone()
}

/// The second Ctrl+C: the terminal is put back and the process ends with 130 at once.
/// `std::process::exit` would run `atexit` handlers and static destructors (ggml's, the OpenMP
/// runtime's) while the inference thread is still inside a decode, which crashed with SIGSEGV;
/// `_exit` skips them. Nothing is lost: sessions are saved atomically after each turn.
fn exit_now() -> ! {
    crate::type_ahead::restore_terminal();
    #[cfg(unix)]
    {
        // No stdout flush: another thread may hold its lock mid-print.
        // SAFETY: _exit is async-signal-safe and ends the process without running any user code.
        unsafe { libc::_exit(130) }
    }
    #[cfg(not(unix))]
    std::process::exit(130)
}

pub fn interrupted() -> bool {
    state().0.load(Ordering::SeqCst)
}

/// Forgets earlier presses: the REPL calls this before each reply, so a Ctrl+C that stopped one
/// reply does not count towards exiting during the next.
pub fn reset() {
    let (flag, presses) = state();
    flag.store(false, Ordering::SeqCst);
    presses.store(0, Ordering::SeqCst);
}
