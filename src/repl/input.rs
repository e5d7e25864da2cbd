//! rustyline's side of the REPL: completion of commands and their arguments, and multi-line input
//! (a `"""` fence, or a trailing backslash).

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

pub struct ReplHelper {
    files: FilenameCompleter,
    /// Registry names and aliases, plus .gguf files in the store.
    pub models: Vec<String>,
    pub sessions: Box<dyn Fn() -> Vec<String>>,
}

impl ReplHelper {
    pub fn new(models: Vec<String>, sessions: Box<dyn Fn() -> Vec<String>>) -> Self {
        ReplHelper { files: FilenameCompleter::new(), models, sessions }
    }
}

fn pairs(start_of: &str, options: impl IntoIterator<Item = String>) -> Vec<Pair> {
    options
        .into_iter()
        .filter(|o| o.starts_with(start_of))
        .map(|o| Pair { display: o.clone(), replacement: format!("{o} ") })
        .collect()
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        if !head.starts_with('/') || head.contains('\n') {
            return Ok((pos, Vec::new()));
        }
        let Some((cmd, arg)) = head[1..].split_once(' ') else {
            let names = crate::commands::COMMANDS.iter().map(|c| c.0.to_string());
            return Ok((1, pairs(&head[1..], names)));
        };
        let start = pos - arg.len();
        match cmd {
            "set" if !arg.contains(' ') => {
                Ok((start, pairs(arg, crate::commands::Setting::NAMES.iter().map(|s| s.to_string()))))
            }
            "stats" => Ok((start, pairs(arg, ["on".to_string(), "off".to_string()]))),
            "load" => Ok((start, pairs(arg, (self.sessions)()))),
            "model" if arg.starts_with(['.', '/', '~']) => self.files.complete(line, pos, ctx),
            "model" => Ok((start, pairs(arg, self.models.clone()))),
            _ => Ok((pos, Vec::new())),
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) { ValidationResult::Valid(None) } else { ValidationResult::Incomplete })
    }
}

impl Helper for ReplHelper {}

/// A `"""` block is complete once closed; a line ending in `\` continues on the next.
pub fn is_complete(input: &str) -> bool {
    let t = input.trim_start();
    if let Some(body) = t.strip_prefix("\"\"\"") {
        return body.trim_end().ends_with("\"\"\"") && body.trim_end().len() >= 3;
    }
    !input.ends_with('\\')
}

/// The message a complete input stands for: fences removed, continuation backslashes dropped.
pub fn message(input: &str) -> String {
    let t = input.trim();
    if let Some(body) = t.strip_prefix("\"\"\"").and_then(|b| b.strip_suffix("\"\"\"")) {
        return body.trim_matches('\n').to_string();
    }
    input.lines().map(|l| l.strip_suffix('\\').unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_and_backslashes_make_multiline_messages() {
        assert!(!is_complete("\"\"\"\nfirst line"));
        assert!(is_complete("\"\"\"\nfirst\nsecond\n\"\"\""));
        assert_eq!(message("\"\"\"\nfirst\nsecond\n\"\"\""), "first\nsecond");
        assert!(!is_complete("one \\"));
        assert_eq!(message("one \\\ntwo"), "one \ntwo");
        assert!(is_complete("plain"));
        assert!(!is_complete("\"\"\""));
    }
}
