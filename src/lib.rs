//! moat: a terminal workbench for local language models.

/// `eprintln!` for every message moat writes to stderr. Messages quote outside text (file paths,
/// model names, template errors, server replies), so the whole line goes through the one
/// sanitiser, [`render::sanitize`].
macro_rules! warnln {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::render::sanitize(&format!($($arg)*)))
    };
}

/// `println!` for human-readable views (tables, info, reports) that quote outside text; sanitised
/// like [`warnln!`]. Machine output (JSON, TSV data, a reply on a pipe) is printed as it is.
macro_rules! sayln {
    () => {
        println!()
    };
    ($($arg:tt)*) => {
        println!("{}", $crate::render::sanitize(&format!($($arg)*)))
    };
}

pub mod atomic_write;
pub mod chat;
pub mod classify;
pub mod cli;
pub mod clipboard;
pub mod commands;
pub mod config;
pub mod engine;
pub mod exit;
pub mod finetune;
pub mod history;
pub mod interrupt;
pub mod message;
pub mod models;
pub mod prompts;
pub mod quantize;
pub mod render;
pub mod repl;
pub mod rng;
pub mod sampling;
pub mod suggest;
pub mod text_input;
pub mod tui;
pub mod type_ahead;

#[cfg(test)]
mod module_graph;
