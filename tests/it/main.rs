//! moat's integration tests in one binary (`cargo test --release --test it`; a module alone with
//! `--test it engine::`). One binary links llama.cpp once instead of once per file, and the
//! helpers live in one place, `common`.
//!
//! All modules share one process: llama.cpp's backend is initialised once, through
//! `moat::engine::backend`; nothing here sets environment variables in-process (the `moat` commands
//! get theirs from `common::Sandbox`), and each tmux server has its own socket name.

mod common;

mod bad_input;
mod classify;
mod classify_native;
mod cli;
mod encoders;
mod engine;
mod engine_parallel;
mod finetune;
mod models_hub;
mod prompts_api;
mod prompts_grammar;
mod prompts_json;
mod prompts_library;
mod prompts_long;
mod prompts_run;
mod quantize;
mod remote;
mod repl;
mod repl_tty;
mod sessions;
mod sessions_cli;
mod tui_e2e;
mod tune;
