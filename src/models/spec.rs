use super::{ModelError, Registry, Source};
use std::path::{Path, PathBuf};

/// What a user may name as a model.
#[derive(Debug, Clone)]
pub enum ModelRef {
    /// A registry entry (by name or alias).
    Registry(&'static super::Entry),
    /// A .gguf file on disk.
    Local(PathBuf),
    /// A file to fetch into the store (`hf:` or a URL); not checksummed by the registry.
    Remote { source: Source, file: String, store_subdir: PathBuf },
}

impl ModelRef {
    pub fn parse(spec: &str) -> Result<ModelRef, ModelError> {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix("hf:") {
            let parts: Vec<&str> = rest.split('/').collect();
            if parts.len() < 3 || parts.iter().any(|p| p.is_empty() || *p == "..") {
                return Err(ModelError::Download(format!(
                    "`{spec}` is not a Hugging Face file reference; write hf:OWNER/REPO/FILE.gguf"
                )));
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
        match reg.find(spec) {
            Some(e) => Ok(ModelRef::Registry(e)),
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
        assert!(ModelRef::parse("hf:owner/repo").is_err());
        assert!(ModelRef::parse("hf:owner/../x.gguf").is_err());
        let e = ModelRef::parse("smolm2").unwrap_err().to_string();
        assert!(e.contains("did you mean smollm2-135m"), "{e}");
    }
}
