//! The process exit codes: one table for every front end and command, also listed in README.md.

/// Something failed at run time (download, model load, decode).
pub const RUNTIME: i32 = 1;
/// Bad usage or bad input: unknown flag or model, bad config, unreadable stdin, too-long prompt.
pub const USAGE: i32 = 2;
/// A prompt's reply never matched its output contract, or was cut off before its JSON closed.
pub const OUTPUT_INVALID: i32 = 3;
/// Interrupted with Ctrl+C.
pub const INTERRUPTED: i32 = 130;
