use super::{gguf, Downloader, Entry, ModelError, ModelRef, PullOptions, Registry};
use std::path::{Path, PathBuf};

/// The directory that holds downloaded models.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

/// A registry model and whether it is on disk.
#[derive(Debug, Clone)]
pub struct StoredModel {
    pub entry: &'static Entry,
    pub path: PathBuf,
    pub present: bool,
    /// On disk but with the wrong size (an old or damaged copy).
    pub damaged: bool,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn path_of(&self, entry: &Entry) -> PathBuf {
        self.dir.join(&entry.file)
    }

    pub fn list(&self) -> Vec<StoredModel> {
        Registry::builtin()
            .models
            .iter()
            .map(|entry| {
                let path = self.path_of(entry);
                let size = std::fs::metadata(&path).ok().map(|m| m.len());
                StoredModel {
                    entry,
                    present: size == Some(entry.size),
                    damaged: size.is_some_and(|s| s != entry.size),
                    path,
                }
            })
            .collect()
    }

    /// Other .gguf files found in the store (from `hf:` or URL pulls).
    pub fn extra_files(&self) -> Vec<(PathBuf, u64)> {
        let known: Vec<PathBuf> = Registry::builtin().models.iter().map(|e| self.path_of(e)).collect();
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for ent in rd.flatten() {
                let p = ent.path();
                let Ok(md) = ent.metadata() else { continue };
                if md.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "gguf") && !known.contains(&p) {
                    out.push((p, md.len()));
                }
            }
        }
        out.sort();
        out
    }

    /// Turns a model reference into a verified file path, pulling it first when allowed.
    pub fn ensure(&self, model: &ModelRef, opts: &PullOptions) -> Result<PathBuf, ModelError> {
        let path = match model {
            ModelRef::Local(p) => p.clone(),
            ModelRef::Registry(entry) => {
                let path = self.path_of(entry);
                let size = std::fs::metadata(&path).ok().map(|m| m.len());
                if size != Some(entry.size) {
                    if !opts.auto_pull {
                        return Err(ModelError::NotPulled { name: entry.name.clone() });
                    }
                    let why = if size.is_some() { "is incomplete or outdated" } else { "is not downloaded yet" };
                    opts.say(&format!(
                        "model {} {why}; fetching it ({}) — this happens once",
                        entry.name,
                        human_bytes(entry.size)
                    ));
                    Downloader::new(opts.clone()).pull_entry(entry, &path)?;
                }
                path
            }
            ModelRef::Remote { source, file, store_subdir } => {
                let path = self.dir.join(store_subdir).join(file);
                if !path.exists() {
                    if !opts.auto_pull {
                        return Err(ModelError::NotPulled { name: model.display_name() });
                    }
                    opts.say(&format!("fetching {} into {}", source.label(), path.display()));
                    Downloader::new(opts.clone()).pull_unverified(source, &path)?;
                }
                path
            }
        };
        gguf::inspect(&path)?;
        Ok(path)
    }

    /// Removes a downloaded registry model; returns whether a file was there.
    pub fn remove(&self, entry: &Entry) -> Result<bool, ModelError> {
        let path = self.path_of(entry);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ModelError::io(format!("cannot remove {}", path.display()), e)),
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.0} {}", UNITS[u])
    }
}

/// Where a path lives, shortened with `~` for display.
pub fn tilde(path: &Path) -> String {
    if let Some(home) = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()) {
        if let Ok(rest) = path.strip_prefix(&home) {
            return format!("~/{}", rest.display());
        }
    }
    path.display().to_string()
}
