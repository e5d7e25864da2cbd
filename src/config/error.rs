use std::path::{Path, PathBuf};

/// Every variant displays as one line that names the file (or variable) and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}:{line}:{column}: {message}{}; fix or remove it (defaults: `moat config show --defaults`)",
        path.display(), key.as_ref().map(|k| format!(" (key `{k}`)")).unwrap_or_default())]
    Syntax { path: PathBuf, line: usize, column: usize, key: Option<String>, message: String },
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("bad environment override {vars}: {message}; fix or unset it")]
    Env { vars: String, message: String },
    #[error("config key `{key}` {message}")]
    Invalid { key: String, message: String },
    #[error("cannot find a home directory for moat's files; set MOAT_DATA_DIR and MOAT_CONFIG")]
    NoHome,
}

impl ConfigError {
    pub(crate) fn from_toml(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let (line, column, key) = match err.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                let column = before[line_start..].chars().count() + 1;
                (line, column, key_at(text, span.start))
            }
            None => (1, 1, None),
        };
        let message = err.message().trim().replace('\n', " ");
        ConfigError::Syntax { path: path.to_path_buf(), line, column, key, message }
    }
}

/// The dotted key (`section.key`) whose line contains byte offset `at`, found by reading back to the
/// nearest `[section]` header.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    if line.starts_with('[') {
        return Some(line.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    }
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}
