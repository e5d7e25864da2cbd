//! Command-line front end: parses arguments, resolves configuration and the model, and dispatches.

mod args;
mod ask;
mod bench;
mod candidates;
mod chat;
mod classify;
mod completions;
mod config_cmd;
mod doctor;
mod finetune;
mod input;
mod man;
mod models_cmd;
mod prompts_cmd;
mod quantize;
mod repl;
mod run;
mod run_log;
mod sessions_cmd;
mod setup;
mod since;
mod tune;

pub use args::{Cli, MoatCommand};

use crate::exit;

use clap::Parser;
use std::io::IsTerminal;

/// A user-facing failure: one line, and the process exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { code: exit::USAGE, message: message.into() }
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        Failure { code: exit::RUNTIME, message: message.into() }
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<crate::models::ModelError> for Failure {
    fn from(e: crate::models::ModelError) -> Self {
        use crate::models::ModelError as M;
        let code = match e {
            M::Unknown { .. }
            | M::UnknownQuant { .. }
            | M::NoSuchFile { .. }
            | M::NotPulled { .. }
            | M::Gguf(_)
            | M::IsEncoder { .. }
            | M::NotEncoder(_) => exit::USAGE,
            M::Interrupted | M::Paused { .. } => exit::INTERRUPTED,
            _ => exit::RUNTIME,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<crate::engine::EngineError> for Failure {
    fn from(e: crate::engine::EngineError) -> Self {
        use crate::engine::EngineError as E;
        let code = match e {
            E::PromptTooLong { .. }
            | E::ContextOverflow { .. }
            | E::ServerContext { .. }
            | E::Template(_)
            | E::Classify(_) => exit::USAGE,
            E::Cancelled => exit::INTERRUPTED,
            _ => exit::RUNTIME,
        };
        Failure { code, message: e.to_string() }
    }
}

/// Runs moat with the process arguments and returns the exit code.
pub fn main() -> i32 {
    completions::answer_if_asked();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return clap_error(e),
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(f) => {
            if !f.message.is_empty() {
                warnln!("moat: {}", first_line(&f.message));
            }
            f.code
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Some(MoatCommand::Chat(c)) => chat::run(&cli.model, c),
        Some(MoatCommand::Repl(c)) => repl::run(&cli.model, c),
        Some(MoatCommand::Ask(a)) => ask::run(&cli.model, a),
        Some(MoatCommand::Models(m)) => models_cmd::run(&cli.model, m),
        Some(MoatCommand::Bench(b)) => bench::run(&cli.model, b),
        Some(MoatCommand::Prompts(p)) => prompts_cmd::run(&cli.model, p),
        Some(MoatCommand::Run(r)) => run::run(&cli.model, r),
        Some(MoatCommand::Doctor(d)) => doctor::run(&cli.model, d),
        Some(MoatCommand::Tune(t)) => tune::run(&cli.model, t),
        Some(MoatCommand::Sessions(c)) => sessions_cmd::run(c),
        Some(MoatCommand::History(c)) => sessions_cmd::history(c),
        Some(MoatCommand::Config(c)) => config_cmd::run(&cli.model, c),
        Some(MoatCommand::Classify(c)) => classify::run(&cli.model, *c),
        Some(MoatCommand::Completions(c)) => completions::run(c.shell),
        Some(MoatCommand::Man(m)) => man::run(m),
        Some(MoatCommand::Quantize(q)) => quantize::run(&cli.model, q),
        None if !std::io::stdin().is_terminal() => ask::run(&cli.model, args::AskArgs::default()),
        None => chat::run(&cli.model, args::ChatArgs::default()),
    }
}

/// Clap's errors span several lines; moat's are one line that says what to do.
fn clap_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                exit::USAGE
            } else {
                0
            }
        }
        _ => {
            let rendered = e.render().to_string();
            let msg = rendered.lines().next().unwrap_or("bad arguments").trim_start_matches("error: ");
            let tip = rendered
                .lines()
                .find_map(|l| l.trim().strip_prefix("tip: "))
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            warnln!("moat: {msg}{tip}; see `moat --help`");
            exit::USAGE
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}
