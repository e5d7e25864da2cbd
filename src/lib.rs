//! moat: a terminal workbench for local language models.

pub mod chat;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
pub mod history;
pub mod interrupt;
pub mod models;
pub mod prompts;
pub mod render;
pub mod repl;
pub mod tui;
