//! Values a shell completes while the user types (the dynamic part of [`super::completions`]):
//! model and encoder names from the registry and prompt ids from the library, read when Tab is pressed.
//! Kept apart from the completion script code so that the CLI definition (`args.rs`) can name
//! these functions without importing the code that builds on it.

use clap_complete::engine::{CompletionCandidate, PathCompleter, ValueCompleter};
use std::ffi::OsStr;

/// Whether a word is a file path rather than a name or id (ids contain `/` too, so only a leading
/// `.`, `/` or `~` counts).
fn looks_like_path(typed: &str) -> bool {
    typed.starts_with(['.', '/', '~'])
}

/// Paths whose extension is `ext`, and folders to descend into.
fn paths_with_extension(current: &OsStr, ext: &'static str) -> Vec<CompletionCandidate> {
    PathCompleter::any().filter(move |p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))).complete(current)
}

/// Candidates for a model (`-m`, `models pull|info|rm`): registry names starting with what was typed
/// (a model's other quantisations, `NAME:QUANT`, once a `:` is typed),
/// each with its description; a path-like word completes to `.gguf` files.
pub fn model_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    if looks_like_path(&typed) {
        return paths_with_extension(current, "gguf");
    }
    crate::models::Registry::builtin()
        .models
        .iter()
        // Other quantisations (`NAME:QUANT`) once a `:` is typed.
        .filter(|m| m.name.starts_with(typed.as_ref()) && (m.is_default() || typed.contains(':')))
        .map(|m| CompletionCandidate::new(&m.name).help(Some(m.description.clone().into())))
        .collect()
}

/// The registry's encoders (and their aliases) starting with `typed`, each with its licence.
fn encoders_starting_with(typed: &str) -> Vec<CompletionCandidate> {
    crate::models::Registry::builtin()
        .encoders
        .iter()
        .flat_map(|e| std::iter::once(&e.name).chain(&e.aliases).map(move |n| (n, e)))
        .filter(|(n, _)| n.starts_with(typed))
        .map(|(n, e)| CompletionCandidate::new(n).help(Some(format!("{} ({})", e.description, e.license).into())))
        .collect()
}

/// Candidates for `models pull|info|rm`: the chat models of [`model_names`] and, by name, the
/// encoders, which those commands also manage.
pub fn model_or_encoder_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let mut out = model_names(current);
    if !looks_like_path(&current.to_string_lossy()) {
        out.extend(encoders_starting_with(&current.to_string_lossy()));
    }
    out
}

/// Candidates for `classify train --encoder`: the registry's encoders; a path-like word completes
/// to directories (a checkpoint directory holds config.json and the weights).
pub fn encoder_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    if looks_like_path(&typed) {
        return PathCompleter::dir().complete(current);
    }
    encoders_starting_with(&typed)
}

/// Candidates for a prompt or script id (`run`, `prompts show|test`): the library as `moat prompts
/// list` sees it (configured folders, `prompts/` beside the config file, the built-ins), each with
/// its title; a path-like word completes to `.toml` files. A config or library that does not load
/// gives no candidates rather than an error in the middle of the command line.
pub fn prompt_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    if looks_like_path(&typed) {
        return paths_with_extension(current, "toml");
    }
    let Ok(loaded) = crate::config::Config::load() else { return Vec::new() };
    let Ok(lib) = crate::prompts::Library::for_config(&loaded.config, &loaded.paths.config_file) else {
        return Vec::new();
    };
    lib.entries()
        .filter(|e| e.id.starts_with(typed.as_ref()))
        .map(|e| {
            let title = crate::prompts::Prompt::parse(e).ok().and_then(|p| p.file.title);
            CompletionCandidate::new(&e.id).help(title.map(Into::into))
        })
        .collect()
}

/// Candidates for a session name (`sessions show|rm|rename|export`, `--session`): the saved
/// sessions starting with what was typed, newest first, each with its size and last update. Tab
/// never creates the session database: with none (or a damaged one) there are no candidates.
pub fn session_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let Ok(paths) = crate::config::Paths::from_env() else { return Vec::new() };
    if !paths.data_dir.join(crate::chat::store::DB_FILE).is_file() {
        return Vec::new();
    }
    let Ok(store) = crate::chat::store::SessionStore::open(&paths.data_dir) else { return Vec::new() };
    store
        .list()
        .into_iter()
        .filter(|s| s.name.starts_with(typed.as_ref()))
        .map(|s| {
            let help = format!("{} messages, updated {}", s.messages, s.updated);
            CompletionCandidate::new(&s.name).help(Some(help.into()))
        })
        .collect()
}
