//! Shell completion from the one clap definition of the CLI (clap_complete's dynamic engine).
//!
//! `moat completions SHELL` prints a short script that, at each Tab, runs
//! `MOAT_COMPLETE=SHELL moat -- WORDS…`; [`answer_if_asked`] answers that before anything else
//! happens. Subcommands, flags and their values therefore always match the binary, and model names
//! and prompt ids are read when Tab is pressed: the registry's names, and the prompt library
//! including the user's own folders.

use super::args::{Cli, ShellName};
use super::Failure;
use clap::CommandFactory;
use clap_complete::env::{Bash, EnvCompleter, Fish, Powershell, Zsh};
use std::io::Write;
use std::path::Path;

/// The environment variable the scripts set when they ask moat for candidates. Namespaced, so an
/// unrelated `COMPLETE` in someone's environment cannot turn a normal run into a completion.
pub const VAR: &str = "MOAT_COMPLETE";

/// When a completion script called moat (`MOAT_COMPLETE=SHELL`), prints the candidates for the
/// words after `--` and exits; otherwise returns at once. Must run before anything is printed.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command).var(VAR).complete();
}

/// `moat completions SHELL`: prints the script that registers moat's completion in SHELL.
///
/// The script calls back the binary as it was invoked here: `moat` when found on `PATH` (so it
/// follows upgrades), or this binary's absolute path when run by a path.
pub fn run(shell: ShellName) -> Result<i32, Failure> {
    let completer: &dyn EnvCompleter = match shell {
        ShellName::Bash => &Bash,
        ShellName::Zsh => &Zsh,
        ShellName::Fish => &Fish,
        ShellName::Powershell => &Powershell,
    };
    let mut script = Vec::new();
    completer
        .write_registration(VAR, "moat", "moat", &callback_program(), &mut script)
        .map_err(|e| Failure::runtime(format!("cannot write the completion script: {e}")))?;
    std::io::stdout()
        .write_all(&script)
        .map_err(|e| Failure::runtime(format!("cannot write the completion script: {e}")))?;
    Ok(0)
}

/// The program the script runs for candidates: argv[0], made absolute when it is a path.
fn callback_program() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| "moat".into());
    let path = Path::new(&argv0);
    let path = match std::env::current_dir() {
        Ok(cwd) if path.components().count() > 1 => cwd.join(path),
        _ => path.to_path_buf(),
    };
    // `./target/release/moat` joins to `…/./target/…`; the `.` says nothing.
    let path: std::path::PathBuf = path.components().filter(|c| *c != std::path::Component::CurDir).collect();
    path.to_string_lossy().into_owned()
}
