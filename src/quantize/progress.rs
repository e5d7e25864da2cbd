//! What llama.cpp's quantiser says while it works, read from its log: one line per tensor
//! (`[  12/ 272] blk.0.attn_k.weight - [  576,   192,     1,     1], type =   q4_1, …`) and,
//! when it gives up, an error line saying why.
//!
//! llama.cpp has no progress callback for quantisation, only its log; the log callback is
//! process-wide, so [`LogTap`] replaces it for the length of one quantisation and hands every
//! message on to the callback it replaced (moat's log file keeps them all).

use crossbeam_channel::Sender;
use llama_cpp_sys_2::{ggml_log_callback, ggml_log_level, GGML_LOG_LEVEL_ERROR};
use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One tensor started: `index` of `total` (1-based, as llama.cpp counts), and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorLine {
    pub index: u64,
    pub total: u64,
    pub name: String,
}

/// Reads llama.cpp's per-tensor quantisation line; `None` for any other log text.
///
/// The line is `[%4d/%4d] %-36s - [shape], type = …`: the counters may be padded with spaces,
/// and the name ends at the first whitespace.
pub fn parse_tensor_line(text: &str) -> Option<TensorLine> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (counts, rest) = rest.split_once(']')?;
    let (index, total) = counts.split_once('/')?;
    let index: u64 = index.trim().parse().ok()?;
    let total: u64 = total.trim().parse().ok()?;
    if index == 0 || index > total {
        return None;
    }
    let name = rest.split_whitespace().next()?;
    // The tensor name is followed by ` - [shape]`: a bare `[1/2]` in some other message is not a
    // tensor line.
    if !rest.contains(" - [") {
        return None;
    }
    Some(TensorLine { index, total, name: name.to_string() })
}

/// The reason in llama.cpp's failure line (`llama_model_quantize: failed to quantize: WHY`), or
/// the error line itself when it has another shape.
pub fn error_reason(text: &str) -> Option<String> {
    let line = text.trim();
    if line.is_empty() || line.chars().all(|c| c == '=') {
        return None;
    }
    let why = line.split_once("failed to quantize: ").map_or(line, |(_, why)| why);
    Some(why.trim().to_string())
}

/// What the tap reports to the waiting thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    Tensor(TensorLine),
    Error(String),
}

/// The state behind the log callback while one quantisation runs. Shared with the callback
/// through a raw `Arc` pointer (llama.cpp's `user_data`).
pub(super) struct LogTap {
    prev: (ggml_log_callback, *mut c_void),
    notes: Sender<Note>,
    /// Set on Ctrl+C: the next log call (llama.cpp logs before each tensor) parks the quantising
    /// thread for good, so that it writes nothing more and the partial file can be removed.
    stop: AtomicBool,
    parked: Sender<()>,
    partial: Mutex<String>,
}

// SAFETY: `prev.1` is llama.cpp's user data for the callback it had; it is only handed back to
// that callback, which llama.cpp itself calls from any thread.
unsafe impl Send for LogTap {}
unsafe impl Sync for LogTap {}

/// Routes llama.cpp's log through a [`LogTap`] until [`Installed::restore`].
pub(super) struct Installed {
    tap: Arc<LogTap>,
}

impl Installed {
    /// Replaces the process's llama.cpp log callback. `notes` receives tensor and error lines;
    /// `parked` one message when the quantising thread has stopped for good after [`Self::stop`].
    pub fn install(notes: Sender<Note>, parked: Sender<()>) -> Installed {
        let mut prev: (ggml_log_callback, *mut c_void) = (None, std::ptr::null_mut());
        // SAFETY: llama_log_get writes the current callback and its user data into the pointers.
        unsafe { llama_cpp_sys_2::llama_log_get(&mut prev.0, &mut prev.1) };
        let tap =
            Arc::new(LogTap { prev, notes, stop: AtomicBool::new(false), parked, partial: Mutex::new(String::new()) });
        let user = Arc::into_raw(tap.clone()) as *mut c_void;
        // SAFETY: `user` stays valid for as long as the callback may run: restore() takes the
        // callback out before releasing it, and a stopped tap is never released (see stop()).
        unsafe { llama_cpp_sys_2::llama_log_set(Some(tap_log), user) };
        Installed { tap }
    }

    /// Asks the quantising thread to park at its next log call.
    pub fn stop(&self) {
        self.tap.stop.store(true, Ordering::SeqCst);
    }

    /// Puts the previous callback back. Only after the quantising thread has returned: a parked
    /// thread still holds the tap, which is then leaked on purpose (the process is ending).
    pub fn restore(self) {
        let (cb, user) = self.tap.prev;
        // SAFETY: the previous callback and its data, as llama_log_get gave them.
        unsafe { llama_cpp_sys_2::llama_log_set(cb, user) };
        // SAFETY: balances the Arc::into_raw in install(); the callback no longer uses it.
        unsafe { drop(Arc::from_raw(Arc::as_ptr(&self.tap))) };
    }
}

unsafe extern "C" fn tap_log(level: ggml_log_level, text: *const c_char, user: *mut c_void) {
    if user.is_null() || text.is_null() {
        return;
    }
    // SAFETY: `user` is the Arc pointer install() registered, alive while this callback is set.
    let tap = unsafe { &*(user as *const LogTap) };
    if tap.stop.load(Ordering::SeqCst) {
        let _ = tap.parked.send(());
        loop {
            std::thread::park();
        }
    }
    if let (Some(cb), _) = tap.prev {
        // SAFETY: forwarding the same arguments to the callback llama.cpp had before.
        unsafe { cb(level, text, tap.prev.1) };
    }
    // SAFETY: llama.cpp passes a NUL-terminated string.
    let chunk = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if level == GGML_LOG_LEVEL_ERROR {
        if let Some(why) = error_reason(&chunk) {
            let _ = tap.notes.send(Note::Error(why));
        }
        return;
    }
    // The tensor line arrives as one call without its newline (the sizes follow in later calls),
    // so each call is read on its own; only a call that does not start a line is joined on.
    let Ok(mut partial) = tap.partial.lock() else { return };
    if chunk.starts_with('[') {
        partial.clear();
    }
    partial.push_str(&chunk);
    if let Some(line) = parse_tensor_line(&partial) {
        let _ = tap.notes.send(Note::Tensor(line));
        partial.clear();
    } else if partial.contains('\n') || partial.len() > 4096 {
        partial.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_tensor_line_gives_index_total_and_name() {
        let line = "[  12/ 272]                  blk.0.attn_k.weight - [  576,   192,     1,     1], type =   q4_1, ";
        assert_eq!(
            parse_tensor_line(line),
            Some(TensorLine { index: 12, total: 272, name: "blk.0.attn_k.weight".into() })
        );
        let wide =
            "[1000/1000] output.weight - [ 4096, 128256, 1, 1], type = f16, converting to q8_0 .. size = 1.0 MiB";
        assert_eq!(parse_tensor_line(wide).map(|t| (t.index, t.total)), Some((1000, 1000)));
    }

    #[test]
    fn other_log_text_is_not_a_tensor_line() {
        for text in [
            "llama_model_loader: - kv   0: general.architecture str = llama",
            "converting to q4_0 .. ",
            "size =     0.11 MiB ->     0.06 MiB\n",
            "[  0/ 272] blk.0 - [1]",
            "[ 13/  12] blk.0.x - [1]",
            "[ 1/ x] blk.0.x - [1]",
            "[3/4] no shape here",
            "",
            "[",
        ] {
            assert_eq!(parse_tensor_line(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_failure_line_gives_its_reason() {
        assert_eq!(
            error_reason("llama_model_quantize: failed to quantize: requantizing from type q4_1 is disabled\n")
                .as_deref(),
            Some("requantizing from type q4_1 is disabled")
        );
        assert_eq!(error_reason("\n============\n"), None);
        assert_eq!(error_reason("some other error\n").as_deref(), Some("some other error"));
    }
}
