//! `/model` in both front ends: what it lists, and the engine options a switch loads.
//!
//! With a local model, `/model` lists the models in the store and `/model NAME|PATH` resolves a
//! name or path as `-m` does. On a server (`--remote`), `/model` lists the server's models (as
//! `moat models list --remote`) and `/model ID` switches to one of them, keeping the server's
//! options (URL, key, timeouts, headers). A name the server does not list is refused in one line
//! before anything is unloaded: one engine serves one target, so a local model needs moat started
//! without `--remote`. Both calls block (a store lookup, an HTTP request); the full-screen chat
//! runs them off its event loop.

use crate::engine::{list_models, short_model_name, url_authority, EngineOptions, RemoteModel};
use crate::models::ModelResolver;

/// The models `/model` can switch to, as a note: the server's (marked `*` where in use) or the
/// store's. Errors: one line when the server cannot be reached.
pub fn listing(current: &EngineOptions, resolver: &ModelResolver) -> Result<String, String> {
    let Some(remote) = &current.remote else { return Ok(local_listing(current, resolver)) };
    let (root, models) = list_models(remote).map_err(|e| e.to_string())?;
    if models.is_empty() {
        return Ok(format!("the server at {root} lists no models"));
    }
    let mut lines = vec![format!("models on {root} (/model ID switches; * = in use):")];
    let width = models.iter().map(|m| m.id.chars().count()).max().unwrap_or(0);
    for m in &models {
        let mark = if in_use(&remote.model, m, &models) { " *" } else { "  " };
        let n_ctx = m.n_ctx.map(|n| format!("  context {n}")).unwrap_or_default();
        lines.push(format!("  {:<width$}{mark}{n_ctx}", m.id));
    }
    Ok(lines.join("\n"))
}

/// The server's model in use: the one asked for, or the only one when none was named.
fn in_use(asked: &str, m: &RemoteModel, all: &[RemoteModel]) -> bool {
    if asked.trim().is_empty() {
        all.len() == 1
    } else {
        m.id == asked.trim()
    }
}

fn local_listing(current: &EngineOptions, resolver: &ModelResolver) -> String {
    let store = resolver.store();
    let mut lines =
        vec![format!("models in {} (/model NAME switches; a .gguf path works too; * = in use):", store.dir.display())];
    for m in store.list().into_iter().filter(|m| m.present) {
        let mark = if m.entry.name == current.model_name || m.path == current.model_path { " *" } else { "" };
        lines.push(format!("  {}{mark}", m.entry.name));
    }
    for (path, _) in store.extra_files() {
        let mark = if path == current.model_path { " *" } else { "" };
        lines.push(format!("  {}{mark}", path.display()));
    }
    if lines.len() == 1 {
        lines.push("  (none downloaded yet; `moat models pull NAME` fetches one)".into());
    }
    lines.join("\n")
}

/// The engine options that load `name` in place of `current`. On a server, `name` is one of its
/// model ids (or the short form shown for a path-like id, when only one id has it); locally, a
/// registry name, alias or path resolved by `resolver`.
///
/// Errors (one line): a server that cannot be reached or does not list `name` (saying what it
/// has), or a local name that does not resolve.
pub fn target(current: &EngineOptions, name: &str, resolver: &ModelResolver) -> Result<EngineOptions, String> {
    let name = name.trim();
    let Some(remote) = &current.remote else {
        let m = resolver.resolve(name).map_err(|e| e.to_string())?;
        return Ok(EngineOptions { model_path: m.path.clone(), model_name: m.display_name(), ..current.clone() });
    };
    let (_, models) = list_models(remote).map_err(|e| e.to_string())?;
    let id = pick(name, &models).map_err(|listed| {
        format!(
            "the server at {} has no model {name:?} (it has: {listed}); /model lists them, and a local model needs moat started without --remote",
            url_authority(&remote.url)
        )
    })?;
    let mut next = current.clone();
    next.model_name = id.clone();
    next.remote = Some(crate::engine::RemoteOptions { model: id, ..remote.clone() });
    Ok(next)
}

/// The listed id `name` stands for: itself, or the one id whose short form it is. A server that
/// lists nothing is given the name as it is (it may still serve it). `Err` holds the listed ids.
fn pick(name: &str, models: &[RemoteModel]) -> Result<String, String> {
    if models.is_empty() || models.iter().any(|m| m.id == name) {
        return Ok(name.to_string());
    }
    let short: Vec<&RemoteModel> = models.iter().filter(|m| short_model_name(&m.id) == name).collect();
    if let [one] = short.as_slice() {
        return Ok(one.id.clone());
    }
    let mut ids: Vec<&str> = models.iter().take(8).map(|m| m.id.as_str()).collect();
    let more = models.len().saturating_sub(8);
    let extra = if more > 0 { format!(" … and {more} more") } else { String::new() };
    ids.sort_unstable();
    Err(format!("{}{extra}", ids.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str) -> RemoteModel {
        RemoteModel { id: id.into(), n_ctx: None, owned_by: None }
    }

    #[test]
    fn a_server_model_is_picked_by_its_id_or_its_unique_short_form() {
        let models = [m("/srv/models/a.gguf"), m("/other/b.gguf"), m("/third/b.gguf"), m("Qwen/Qwen2.5-7B")];
        assert_eq!(pick("Qwen/Qwen2.5-7B", &models).unwrap(), "Qwen/Qwen2.5-7B");
        assert_eq!(pick("a.gguf", &models).unwrap(), "/srv/models/a.gguf");
        // Two ids share the short form: only the full id will do.
        let err = pick("b.gguf", &models).unwrap_err();
        assert!(err.contains("/other/b.gguf") && err.contains("/third/b.gguf"), "{err}");
        assert!(pick("smollm2-135m", &models).is_err());
        assert_eq!(pick("anything", &[]).unwrap(), "anything");
    }
}
