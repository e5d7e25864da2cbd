//! Presenting results: text, JSON, the human view, or a full trace; and writing `--out-dir` files atomically so
//! an interrupted run never leaves a half-written report next to good ones.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::error::PromptError;
use super::run::RunResult;
use super::script::{ScriptResult, StepResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    View,
    Trace,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(OutputFormat::Text),
            "json" => Ok(OutputFormat::Json),
            "view" => Ok(OutputFormat::View),
            "trace" => Ok(OutputFormat::Trace),
            other => Err(format!("unknown output format `{other}`; use text, json, view or trace")),
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn text_of(output: &str, json: Option<&Value>) -> String {
    match json {
        Some(j) => pretty(j),
        None => output.to_string(),
    }
}

fn json_of(output: &str, json: Option<&Value>) -> Value {
    json.cloned().unwrap_or_else(|| json!({ "output": output }))
}

impl RunResult {
    /// View falls back to text for prompts without a `view` template, so `--as view` is always safe to pass.
    pub fn format(&self, f: OutputFormat) -> String {
        match f {
            OutputFormat::Text => text_of(&self.output, self.json.as_ref()),
            OutputFormat::Json => pretty(&json_of(&self.output, self.json.as_ref())),
            OutputFormat::View => with_sources(
                self.view.clone().unwrap_or_else(|| self.format(OutputFormat::Text)),
                &self.sources,
                self.lang,
            ),
            OutputFormat::Trace => pretty(&self.trace()),
        }
    }

    pub fn trace(&self) -> Value {
        json!({
            "prompt": self.id,
            "version": self.version,
            "lang": self.lang.code(),
            "params": self.params,
            "system": self.system,
            "user": self.user,
            "output": self.output,
            "json": self.json,
            "computed": self.computed,
            "attempts": self.attempts,
            "ms": self.ms as u64,
            "input_truncated": self.input_truncated,
            "sources": self.sources,
        })
    }
}

fn step_trace(s: &StepResult) -> Value {
    json!({
        "id": s.id,
        "title": s.title,
        "uses": s.uses,
        "skipped": s.skipped,
        "params": s.params,
        "system": s.system,
        "user": s.user,
        "output": s.output,
        "json": s.json,
        "computed": s.computed,
        "attempts": s.attempts,
        "ms": s.ms as u64,
        "cited": s.cited,
    })
}

impl ScriptResult {
    pub fn format(&self, f: OutputFormat) -> String {
        let result = self.result();
        match f {
            OutputFormat::Text => result.map(|r| text_of(&r.output, r.json.as_ref())).unwrap_or_default(),
            OutputFormat::Json => {
                let mut out = json!({
                    "script": self.id,
                    "result_step": self.result_step,
                    "result": result.map(|r| json_of(&r.output, r.json.as_ref())),
                    "computed": self.computed,
                });
                if !self.sources.is_empty() {
                    out["sources"] = json!(self.sources);
                }
                pretty(&out)
            }
            OutputFormat::View => with_sources(
                self.view
                    .clone()
                    .or_else(|| result.and_then(|r| r.view.clone()))
                    .unwrap_or_else(|| self.format(OutputFormat::Text)),
                &self.sources,
                self.lang,
            ),
            OutputFormat::Trace => pretty(&self.trace()),
        }
    }

    pub fn trace(&self) -> Value {
        json!({
            "script": self.id,
            "version": self.version,
            "lang": self.lang.code(),
            "vars": self.vars,
            "result_step": self.result_step,
            "computed": self.computed,
            "ms": self.ms as u64,
            "steps": self.steps.iter().map(step_trace).collect::<Vec<_>>(),
            "sources": self.sources,
            "long_input": self.long,
            "tokens": self.tokens,
        })
    }
}

/// A view followed by the table of the sources it cites (nothing is added when it cites none).
fn with_sources(view: String, sources: &[super::evidence::Passage], lang: super::locale::Lang) -> String {
    let table = super::evidence::sources_view(sources, lang);
    if table.is_empty() {
        view
    } else {
        format!("{}\n\n{}", view.trim_end(), table.trim_end())
    }
}

/// Writes `<step>.md` (view, else text) and `<step>.json` for every step that ran, plus `result.md` and
/// `trace.json`. Each file goes through a temp file in the same directory and is renamed into place.
pub fn write_outputs(dir: &Path, result: &ScriptResult) -> Result<Vec<PathBuf>, PromptError> {
    let io = |p: &Path, e: std::io::Error| PromptError::Io { path: p.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut files: Vec<(String, String)> = Vec::new();
    for s in result.steps.iter().filter(|s| !s.skipped) {
        files.push((format!("{}.md", s.id), s.view.clone().unwrap_or_else(|| text_of(&s.output, s.json.as_ref()))));
        if let Some(j) = &s.json {
            files.push((format!("{}.json", s.id), pretty(j)));
        }
    }
    files.push(("result.md".into(), result.format(OutputFormat::View)));
    files.push(("trace.json".into(), pretty(&result.trace())));
    let mut written = Vec::new();
    for (name, body) in files {
        let path = dir.join(&name);
        let body = if body.ends_with('\n') { body } else { body + "\n" };
        crate::atomic_write::write_atomic(&path, body.as_bytes()).map_err(|e| io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}
