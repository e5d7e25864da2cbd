//! Errors and lint problems.
//!
//! Every message is one line that names the culprit and says what to do, because it ends up on a terminal
//! after `moat run` and the user should not need a second command to understand it.

use std::fmt;

/// One lint finding. `pos` is 1-based (line, column) when it could be located in the file text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub pos: Option<(usize, usize)>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("unknown prompt `{id}`{}; run `moat prompts list` to see what exists", did_you_mean(.suggestions))]
    UnknownId { id: String, suggestions: Vec<String> },

    #[error("{file}:{line}:{col}: {message}; fix the file, then run `moat prompts lint`")]
    Toml { file: String, line: usize, col: usize, message: String },

    #[error("{}{}; run `moat prompts lint` for the full list", .problems.first().map(|p| p.to_string()).unwrap_or_default(), more(.problems.len()))]
    Invalid { problems: Vec<Problem> },

    #[error("missing variable `{name}`; {usage}")]
    MissingVar { name: String, usage: String },

    #[error("variable `{name}`: {message}; {usage}")]
    BadVar { name: String, message: String, usage: String },

    #[error("{file}: template `{template}`: {message}")]
    Template { file: String, template: String, message: String },

    #[error("input is {chars} characters but the limit is {max}; shorten it, use a model with a larger context, or set `[input] long = \"map-reduce\"` (or \"head\") in the prompt")]
    InputTooLarge { chars: usize, max: usize },

    #[error("`{id}` needs input; pipe text on stdin or pass --input FILE")]
    InputRequired { id: String },

    #[error("step `{step}` of `{script}` got empty input because earlier steps produced nothing for it; inspect them with --as trace")]
    StepInputEmpty { script: String, step: String },

    #[error("unsupported language `{0}`; use --lang en or --lang zh")]
    BadLang(String),

    #[error("`{id}`: output failed validation after {attempts} attempt(s): {message}; try a larger model, a lower temperature, or --as trace to see the raw reply")]
    OutputInvalid { id: String, attempts: u32, message: String, raw: String },

    #[error("`{id}`: {}", cut_message(.cut))]
    OutputCut { id: String, cut: super::params::Cut, raw: String },

    #[error("generation failed in `{id}`: {message}")]
    Generation { id: String, message: String },

    #[error("{path}: {message}")]
    Io { path: String, message: String },

    #[error("interrupted after {done} of {total} {what}")]
    Interrupted { done: usize, total: usize, what: String },

    /// Long input that cannot be split as asked (chunk size, chunk count, context).
    #[error("{message}")]
    LongInput { message: String },
}

impl PromptError {
    /// 2 = the user or the file must change something; 3 = the model never produced valid output; 1 = runtime.
    pub fn exit_code(&self) -> i32 {
        match self {
            PromptError::OutputInvalid { .. } | PromptError::OutputCut { .. } => crate::exit::OUTPUT_INVALID,
            PromptError::Interrupted { .. } => crate::exit::INTERRUPTED,
            PromptError::Generation { .. } | PromptError::Io { .. } | PromptError::StepInputEmpty { .. } => {
                crate::exit::RUNTIME
            }
            _ => crate::exit::USAGE,
        }
    }
}

fn cut_message(cut: &super::params::Cut) -> String {
    match cut {
        super::params::Cut::MaxTokens(n) => format!(
            "the reply was cut at max_tokens {n} before its JSON closed; raise max_tokens (-n N, or the step's [model] max_tokens) or shorten the input"
        ),
        super::params::Cut::ContextFull(n) => format!(
            "the reply filled the {n}-token context before its JSON closed; shorten the input or raise --ctx-size"
        ),
    }
}

fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", s.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", "))
    }
}

fn more(n: usize) -> String {
    if n > 1 {
        format!(" (and {} more problem(s))", n - 1)
    } else {
        String::new()
    }
}

/// Byte offset → 1-based (line, column in chars). TOML spans and `str::find` both give byte offsets.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// Where `needle` first appears, to point lint problems at a plausible line.
pub fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    text.find(needle).map(|o| line_col(text, o))
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(PromptError::UnknownId { id: "x".into(), suggestions: vec![] }.exit_code(), 2);
        let e = PromptError::OutputInvalid { id: "x".into(), attempts: 2, message: "m".into(), raw: String::new() };
        assert_eq!(e.exit_code(), 3);
        assert_eq!(PromptError::Generation { id: "x".into(), message: "m".into() }.exit_code(), 1);
    }

    #[test]
    fn messages_are_one_line_and_suggest() {
        let e = PromptError::UnknownId { id: "market/swat".into(), suggestions: vec!["market/swot".into()] };
        let s = e.to_string();
        assert!(s.contains("did you mean `market/swot`"), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\n风险x", 8), (2, 2));
        assert_eq!(line_col("abc", 0), (1, 1));
    }
}
