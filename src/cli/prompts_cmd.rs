//! `moat prompts list|show|lint|test`: the prompt library.

use super::args::{ModelArgs, PromptsCommand};
use super::Failure;
use crate::config::Config;
use crate::prompts::{self, Library, PromptError, Source, TestStatus};
use std::path::Path;

/// The library: built-ins plus the user's folders (configured ones first, then `prompts/` next to
/// the config file).
pub fn library(config: &Config, config_file: &Path) -> Result<Library, Failure> {
    Library::for_config(config, config_file).map_err(prompt_failure)
}

pub fn prompt_failure(e: PromptError) -> Failure {
    Failure { code: e.exit_code(), message: e.to_string() }
}

pub fn run(flags: &ModelArgs, cmd: PromptsCommand) -> Result<i32, Failure> {
    let mut loaded = Config::load()?;
    flags.apply(&mut loaded.config);
    let lib = library(&loaded.config, &loaded.paths.config_file)?;
    match cmd {
        PromptsCommand::List { tag, json } => list(&lib, tag.as_deref(), json),
        PromptsCommand::Show { id } => show(&lib, &id),
        PromptsCommand::Lint { path } => lint(&lib, path.as_deref()),
        PromptsCommand::Test { id } => test(&lib, id.as_deref()),
    }
}

fn list(lib: &Library, tag: Option<&str>, json: bool) -> Result<i32, Failure> {
    let mut rows = Vec::new();
    for id in lib.ids() {
        let p = lib.prompt(&id).map_err(prompt_failure)?;
        let f = &p.file;
        if tag.is_some_and(|t| !f.tags.iter().any(|x| x == t)) {
            continue;
        }
        let source = match (&p.source, p.shadows) {
            (Source::Builtin, _) => "built-in".to_string(),
            (Source::User(path), true) => format!("user, shadows built-in ({})", path.display()),
            (Source::User(path), false) => format!("user ({})", path.display()),
        };
        rows.push(serde_json::json!({
            "id": id,
            "kind": if f.is_script() { "script" } else { "prompt" },
            "title": f.title.clone().unwrap_or_default(),
            "version": f.version.clone().unwrap_or_default(),
            "source": source,
            "languages": f.languages,
            "tags": f.tags,
        }));
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(0);
    }
    if rows.is_empty() {
        sayln!("no prompts{}", tag.map(|t| format!(" tagged {t:?}")).unwrap_or_default());
        return Ok(0);
    }
    sayln!("{:<36} {:<7} {:<32} {:<8} {:<6} SOURCE", "ID", "KIND", "TITLE", "VERSION", "LANGS");
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        let langs: Vec<&str> = r["languages"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        sayln!(
            "{:<36} {:<7} {:<32} {:<8} {:<6} {}",
            s("id"),
            s("kind"),
            s("title"),
            s("version"),
            langs.join(","),
            s("source")
        );
    }
    sayln!("\n`moat prompts show ID` for details; `moat run ID -v key=value < input` to run one.");
    Ok(0)
}

fn show(lib: &Library, id: &str) -> Result<i32, Failure> {
    let p = lib.prompt(id).map_err(prompt_failure)?;
    let f = &p.file;
    sayln!("{}  {}  (v{}, {})", p.id, f.title.as_deref().unwrap_or(""), f.version.as_deref().unwrap_or("?"), p.path);
    if let Some(d) = &f.description {
        sayln!("\n{}", d.trim());
    }
    if !f.tags.is_empty() {
        sayln!("\ntags: {}    languages: {}", f.tags.join(", "), f.languages.join(", "));
    }
    sayln!("\n{}", prompts::usage_line(&p));
    if !f.vars.is_empty() {
        sayln!("\nvariables:");
        for (name, v) in &f.vars {
            let mut bits = vec![format!("{:?}", v.ty).to_lowercase()];
            if v.required {
                bits.push("required".into());
            }
            if let Some(d) = &v.default {
                bits.push(format!("default {d}"));
            }
            if !v.choices.is_empty() {
                bits.push(format!("one of {}", v.choices.join("|")));
            }
            if v.min.is_some() || v.max.is_some() {
                let r = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
                bits.push(format!("range {}..{}", r(v.min), r(v.max)));
            }
            sayln!(
                "  {name:<18} {}{}",
                bits.join(", "),
                v.description.as_deref().map(|d| format!(" — {d}")).unwrap_or_default()
            );
        }
    }
    let input = &f.input;
    sayln!(
        "\ninput: {}{}",
        if input.required { "required (stdin or --input FILE)" } else { "optional" },
        input
            .max_chars
            .map(|m| format!(", at most {m} characters ({:?} when longer)", input.truncate).to_lowercase())
            .unwrap_or_default()
    );
    if f.is_script() {
        sayln!("\nsteps:");
        for s in &f.steps {
            let what = s.uses.clone().unwrap_or_else(|| "inline prompt".into());
            let when = s.when.as_deref().map(|w| format!("  (when {w})")).unwrap_or_default();
            sayln!("  {:<14} {what}{when}", s.id);
        }
    } else {
        sayln!(
            "\noutput: {:?}{}",
            f.output.format,
            if f.output.schema.is_some() { " (JSON Schema, grammar-constrained, validated)" } else { "" }
        );
        if let Some(schema) = &f.output.schema {
            sayln!("{}", schema.trim());
        }
    }
    sayln!("\nembedded tests: {}", f.tests.len());
    Ok(0)
}

fn lint(lib: &Library, path: Option<&Path>) -> Result<i32, Failure> {
    let (problems, warnings): (Vec<prompts::Problem>, Vec<prompts::Problem>) = match path {
        None => (lib.lint_all(), prompts::lint::budget_warnings_all(lib)),
        Some(p) if p.is_dir() => {
            let local = Library::load(&[p.to_path_buf()]).map_err(prompt_failure)?;
            let ids: Vec<String> =
                local.entries().filter(|e| matches!(e.source, Source::User(_))).map(|e| e.id.clone()).collect();
            (
                ids.iter().flat_map(|id| local.lint(id)).collect(),
                ids.iter().flat_map(|id| prompts::lint::budget_warnings(&local, id)).collect(),
            )
        }
        Some(p) => (lib.lint(&p.to_string_lossy()), prompts::lint::budget_warnings(lib, &p.to_string_lossy())),
    };
    // Token-budget findings are warnings: `-n` can still raise the budget at run time.
    for pr in problems.iter().chain(&warnings) {
        match pr.pos {
            Some((l, c)) => warnln!("{}:{l}:{c}: {}", pr.file, pr.message),
            None => warnln!("{}: {}", pr.file, pr.message),
        }
    }
    if problems.is_empty() {
        match warnings.len() {
            0 => sayln!("ok: no problems"),
            n => sayln!("ok: no problems, {n} warning(s)"),
        }
        Ok(0)
    } else {
        Err(Failure::usage(format!("{} problem(s) found", problems.len())))
    }
}

fn test(lib: &Library, id: Option<&str>) -> Result<i32, Failure> {
    let outcomes = match id {
        Some(id) => {
            lib.resolve(id).map_err(prompt_failure)?;
            prompts::run_file_tests(lib, id)
        }
        None => prompts::run_all_tests(lib),
    };
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for o in &outcomes {
        match &o.status {
            TestStatus::Passed => passed += 1,
            TestStatus::Failed(_) => {
                failed += 1;
                sayln!("{o}");
            }
            TestStatus::Skipped(_) => skipped += 1,
        }
    }
    sayln!("{passed} passed, {failed} failed, {skipped} skipped (they need a model; `moat run` exercises the prompts on one)");
    Ok(if failed > 0 { 1 } else { 0 })
}
