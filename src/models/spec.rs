use super::{ModelError, Registry, Source};
use std::path::{Path, PathBuf};

/// What a user may name as a model.
#[derive(Debug, Clone)]
pub enum ModelRef {
    /// A registry entry (by name or alias).
    Registry(&'static super::Entry),
    /// A .gguf file on disk.
    Local(PathBuf),
    /// A file to fetch into the store (`hf:owner/repo/file.gguf` or a URL); an `hf:` file is
    /// checked against the hub's sha256, a URL is not checked.
    Remote { source: Source, file: String, store_subdir: PathBuf },
    /// `hf:owner/repo[@revision][:QUANT]`: the repository's GGUF file (or split set) of that
    /// quantisation, chosen as `llama-cli -hf` does (default `Q4_K_M`).
    HubRepo { repo: String, revision: Option<String>, quant: Option<String>, store_subdir: PathBuf },
}

impl ModelRef {
    pub fn parse(spec: &str) -> Result<ModelRef, ModelError> {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix("hf:") {
            let bad = || {
                ModelError::Download(format!(
                    "`{spec}` is not a Hugging Face reference; write hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/FILE.gguf"
                ))
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let clean = |p: &str| !p.is_empty() && p != ".." && p != "." && !p.contains('\\');
            if parts.len() == 2 {
                let (repo_part, quant) = match parts[1].split_once(':') {
                    Some((r, q)) => (r, Some(q)),
                    None => (parts[1], None),
                };
                let (name, revision) = match repo_part.split_once('@') {
                    Some((n, rev)) => (n, Some(rev)),
                    None => (repo_part, None),
                };
                let quant_ok =
                    quant.is_none_or(|q| !q.is_empty() && q.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                if !clean(parts[0]) || !clean(name) || revision.is_some_and(str::is_empty) || !quant_ok {
                    return Err(bad());
                }
                let repo = format!("{}/{name}", parts[0]);
                return Ok(ModelRef::HubRepo {
                    store_subdir: Path::new("hf").join(&repo),
                    repo,
                    revision: revision.map(String::from),
                    quant: quant.map(str::to_ascii_uppercase),
                });
            }
            if parts.len() < 3 || !parts.iter().all(|p| clean(p)) {
                return Err(bad());
            }
            let (repo_rev, file) = (parts[..2].join("/"), parts[2..].join("/"));
            let (repo, revision) = match repo_rev.split_once('@') {
                Some((r, rev)) => (r.to_string(), Some(rev.to_string())),
                None => (repo_rev, None),
            };
            let store_subdir = Path::new("hf").join(&repo);
            return Ok(ModelRef::Remote {
                source: Source::Hf { repo, file: file.clone(), revision },
                file,
                store_subdir,
            });
        }
        if spec.starts_with("https://") || spec.starts_with("http://") {
            let file = spec
                .split(['?', '#'])
                .next()
                .and_then(|u| u.rsplit('/').next())
                .filter(|f| !f.is_empty() && *f != "..")
                .ok_or_else(|| ModelError::Download(format!("`{spec}` does not end in a file name")))?;
            return Ok(ModelRef::Remote {
                source: Source::Url { url: spec.to_string() },
                file: file.to_string(),
                store_subdir: PathBuf::from("url"),
            });
        }
        let looks_like_path = spec.contains('/') || spec.contains('\\') || spec.ends_with(".gguf");
        if looks_like_path || Path::new(spec).is_file() {
            let path = PathBuf::from(spec);
            if !path.exists() {
                return Err(ModelError::NoSuchFile { path });
            }
            return Ok(ModelRef::Local(path));
        }
        let reg = Registry::builtin();
        if let (None, Some((base, quant))) = (reg.find(spec), spec.split_once(':')) {
            if let Some(e) = reg.find(base) {
                let mut have: Vec<String> = e.quant.iter().chain(&e.other_quants).cloned().collect();
                have.sort();
                if have.is_empty() {
                    have.extend(super::hub::quant_tag(&e.file));
                }
                return Err(ModelError::UnknownQuant { name: e.name.clone(), quant: quant.to_ascii_uppercase(), have });
            }
        }
        match reg.find(spec) {
            Some(e) => Ok(ModelRef::Registry(e)),
            None if reg.find_encoder(spec).is_some() => {
                Err(ModelError::IsEncoder { name: reg.find_encoder(spec).map(|e| e.name.clone()).unwrap_or_default() })
            }
            None => Err(ModelError::Unknown {
                name: spec.to_string(),
                suggestions: reg.suggest(spec).into_iter().map(String::from).collect(),
            }),
        }
    }

    /// Short display name: the registry name or the file name.
    pub fn display_name(&self) -> String {
        match self {
            ModelRef::Registry(e) => e.name.clone(),
            ModelRef::Local(p) => p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            ModelRef::Remote { file, .. } => file.rsplit('/').next().unwrap_or(file).to_string(),
            ModelRef::HubRepo { repo, quant, .. } => {
                format!("{repo}:{}", quant.as_deref().unwrap_or(super::hub::DEFAULT_QUANT))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert!(matches!(ModelRef::parse("smollm2").unwrap(), ModelRef::Registry(e) if e.name == "smollm2-135m"));
        match ModelRef::parse("hf:owner/repo@main/sub/f.gguf").unwrap() {
            ModelRef::Remote { source: Source::Hf { repo, file, revision }, .. } => {
                assert_eq!(
                    (repo.as_str(), file.as_str(), revision.as_deref()),
                    ("owner/repo", "sub/f.gguf", Some("main"))
                );
            }
            other => panic!("{other:?}"),
        }
        match ModelRef::parse("https://example.com/m/x.gguf?download=1").unwrap() {
            ModelRef::Remote { file, .. } => assert_eq!(file, "x.gguf"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(ModelRef::parse("./missing.gguf"), Err(ModelError::NoSuchFile { .. })));
        assert!(ModelRef::parse("hf:owner/../x.gguf").is_err());
        assert!(ModelRef::parse("hf:owner").is_err());
        assert!(ModelRef::parse("hf:owner/repo:").is_err());
        assert!(ModelRef::parse("hf:owner/repo:Q4 K").is_err());
        match ModelRef::parse("hf:Owner/Repo-GGUF").unwrap() {
            ModelRef::HubRepo { repo, revision, quant, store_subdir } => {
                assert_eq!((repo.as_str(), revision, quant), ("Owner/Repo-GGUF", None, None));
                assert_eq!(store_subdir, Path::new("hf/Owner/Repo-GGUF"));
            }
            other => panic!("{other:?}"),
        }
        match ModelRef::parse("hf:o/r@v1:q8_0").unwrap() {
            ModelRef::HubRepo { repo, revision, quant, .. } => {
                assert_eq!((repo.as_str(), revision.as_deref(), quant.as_deref()), ("o/r", Some("v1"), Some("Q8_0")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ModelRef::parse("hf:o/r").unwrap().display_name(), "o/r:Q4_K_M");
        assert!(
            matches!(ModelRef::parse("qwen2.5-7b:q8_0").unwrap(), ModelRef::Registry(e) if e.file == "Qwen2.5-7B-Instruct-Q8_0.gguf")
        );
        let e = ModelRef::parse("qwen2.5-7b:q2_k").unwrap_err().to_string();
        assert!(e.starts_with("qwen2.5-7b has no Q2_K file in the catalogue; it has Q4_K_M, Q5_K_M, Q8_0"), "{e}");
        let e = ModelRef::parse("smollm2:q8_0").unwrap_err().to_string();
        assert!(e.starts_with("smollm2-135m has no Q8_0 file in the catalogue; it has Q4_1 ("), "{e}");
        let e = ModelRef::parse("minilm-l6").unwrap_err().to_string();
        assert!(e.starts_with("`minilm-l6` is an encoder"), "{e}");
        let e = ModelRef::parse("smolm2").unwrap_err().to_string();
        assert!(e.contains("did you mean smollm2-135m"), "{e}");
    }
}
