//! Where prompt files come from: the built-in `prompts/` tree compiled into the binary, plus user directories
//! that add prompts and may shadow built-ins (so users can "eject" and edit a built-in without forking moat).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use super::error::PromptError;

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/prompts");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin,
    User(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// Path under its root without `.toml`, always with `/` separators: `market/risk-register`.
    pub id: String,
    pub source: Source,
    /// True when this entry replaced one with the same id from a lower layer (a built-in, or a later user dir).
    pub shadows: bool,
    pub text: String,
}

impl Entry {
    /// What to print in front of `:line:col` in messages.
    pub fn display_path(&self) -> String {
        match &self.source {
            Source::Builtin => format!("prompts/{}.toml", self.id),
            Source::User(p) => p.display().to_string(),
        }
    }
}

/// All known prompts plus the includable partials (`_`-prefixed folders or files, never runnable).
#[derive(Debug, Clone, Default)]
pub struct Library {
    entries: BTreeMap<String, Entry>,
    partials: BTreeMap<String, String>,
}

impl Library {
    pub fn builtin() -> Library {
        let mut lib = Library::default();
        let mut files = Vec::new();
        collect_embedded(&BUILTIN, &mut files);
        for (rel, text) in files {
            lib.add(&rel, text, Source::Builtin);
        }
        lib
    }

    /// The library `config` names: its `prompts.dirs`, then `prompts/` beside the config file,
    /// then the built-ins.
    pub fn for_config(config: &crate::config::Config, config_file: &std::path::Path) -> Result<Library, PromptError> {
        let mut dirs: Vec<PathBuf> = config.prompts.dirs.iter().map(PathBuf::from).collect();
        if let Some(parent) = config_file.parent() {
            dirs.push(parent.join("prompts"));
        }
        Library::load(&dirs)
    }

    /// Built-ins plus `dirs`; the first dir has the highest priority. Missing dirs are skipped because the
    /// default user dir usually does not exist yet.
    pub fn load(dirs: &[PathBuf]) -> Result<Library, PromptError> {
        let mut lib = Library::builtin();
        for dir in dirs.iter().rev() {
            if !dir.is_dir() {
                continue;
            }
            let mut files = Vec::new();
            collect_fs(dir, dir, &mut files)?;
            for (rel, path) in files {
                let text = read_text(&path)?;
                lib.add(&rel, text, Source::User(path));
            }
        }
        Ok(lib)
    }

    fn add(&mut self, rel: &str, text: String, source: Source) {
        let is_partial = rel.split('/').any(|seg| seg.starts_with('_'));
        match rel.strip_suffix(".toml") {
            Some(id) if !is_partial => {
                let shadows = self.entries.contains_key(id);
                self.entries.insert(id.to_string(), Entry { id: id.to_string(), source, shadows, text });
            }
            _ if is_partial => {
                self.partials.insert(rel.to_string(), text);
            }
            _ => {}
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    pub fn ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn partials(&self) -> &BTreeMap<String, String> {
        &self.partials
    }

    /// Finds a prompt by id (an `@1` pin is stripped here and checked by the caller) or loads a `.toml` path.
    pub fn resolve(&self, id_or_path: &str) -> Result<Entry, PromptError> {
        let id = id_or_path.split('@').next().unwrap_or(id_or_path);
        if let Some(e) = self.entries.get(id) {
            return Ok(e.clone());
        }
        let path = Path::new(id_or_path);
        if id_or_path.ends_with(".toml") && path.is_file() {
            let text = read_text(path)?;
            let id = id_or_path.trim_end_matches(".toml").to_string();
            return Ok(Entry { id, source: Source::User(path.to_path_buf()), shadows: false, text });
        }
        Err(PromptError::UnknownId { id: id_or_path.to_string(), suggestions: self.suggest(id) })
    }

    /// Close matches for a mistyped id, comparing against whole ids and their last segment so `swat` finds
    /// `market/swot`.
    pub fn suggest(&self, id: &str) -> Vec<String> {
        crate::suggest::did_you_mean(id, self.entries.keys().map(String::as_str))
            .into_iter()
            .map(String::from)
            .collect()
    }
}

fn collect_embedded(dir: &Dir<'static>, out: &mut Vec<(String, String)>) {
    for f in dir.files() {
        if let (Some(p), Some(text)) = (f.path().to_str(), f.contents_utf8()) {
            out.push((p.replace('\\', "/"), text.to_string()));
        }
    }
    for d in dir.dirs() {
        collect_embedded(d, out);
    }
}

fn collect_fs(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), PromptError> {
    let rd =
        fs::read_dir(dir).map_err(|e| PromptError::Io { path: dir.display().to_string(), message: e.to_string() })?;
    let mut items: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    items.sort();
    for path in items {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_fs(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push((rel.join("/"), path));
        }
    }
    Ok(())
}

/// A prompt file as text: BOM dropped, CRLF/CR → LF (a file saved on Windows renders the same
/// prompt, token for token), UTF-16 and binary refused with a one-line error.
fn read_text(path: &Path) -> Result<String, PromptError> {
    let io = |message: String| PromptError::Io { path: path.display().to_string(), message };
    let bytes = fs::read(path).map_err(|e| io(e.to_string()))?;
    crate::text_input::decode("the file", bytes).map_err(|e| io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_embedded_and_partials_separate() {
        let lib = Library::builtin();
        assert!(lib.get("market/risk-register").is_some());
        assert!(lib.ids().iter().all(|id| !id.starts_with('_')));
        assert!(lib.partials().keys().any(|k| k.starts_with("_partials/")));
    }

    #[test]
    fn user_dir_shadows_builtin() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("market")).unwrap();
        fs::write(dir.path().join("market/swot.toml"), "format = 1\n").unwrap();
        fs::write(dir.path().join("mine.toml"), "format = 1\n").unwrap();
        let lib = Library::load(&[dir.path().to_path_buf(), PathBuf::from("/nonexistent/dir")]).unwrap();
        let e = lib.get("market/swot").unwrap();
        assert!(e.shadows);
        assert_eq!(e.source, Source::User(dir.path().join("market/swot.toml")));
        let mine = lib.get("mine").unwrap();
        assert!(!mine.shadows);
        assert_eq!(lib.get("market/pricing").unwrap().source, Source::Builtin);
    }

    #[test]
    fn suggestions_for_typos() {
        let lib = Library::builtin();
        assert_eq!(lib.suggest("market/swat").first().map(String::as_str), Some("market/swot"));
        assert!(lib.suggest("risk-registr").contains(&"market/risk-register".to_string()));
        match lib.resolve("market/nope-nothing-like-it-zzz") {
            Err(PromptError::UnknownId { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
