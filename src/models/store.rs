//! The model store: a directory of GGUF files. Beside each downloaded file moat writes
//! `FILE.verified` (JSON: the sha256 and size it was checked against, and where it came from), so
//! that later runs know the file is whole without hashing it again; an unfinished download is
//! `FILE.part` (with `FILE.part.expect`, the sha256 it must reach), which the next pull resumes.

use super::hub::{self, HubFile};
use super::{gguf, Downloader, Entry, ModelError, ModelRef, PullOptions, Registry};
use serde::{Deserialize, Serialize};
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
    /// On disk but not whole (wrong size, or never verified).
    pub damaged: bool,
    /// Bytes of an unfinished download that the next pull resumes.
    pub partial: Option<u64>,
    /// The verified sha256, when recorded.
    pub sha256: Option<String>,
}

/// What was checked about a downloaded file (`FILE.verified`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// sha256 of the whole file, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it came from (`hf:owner/repo/file`, a URL, `PyPI package`).
    pub source: String,
    /// What the sha256 was compared with: `registry` (pinned), `hub` (the hub's LFS sha256) or
    /// `none` (a plain URL: recorded as downloaded).
    pub checked_against: String,
}

impl Verified {
    /// How the sha256 was checked, for people: `checked against the hub's sha256` and so on.
    pub fn how(&self) -> &'static str {
        match self.checked_against.as_str() {
            "hub" => "checked against the hub's sha256",
            "registry" => "checked against the registry's sha256",
            _ => "not checked: recorded as downloaded",
        }
    }
}

/// `FILE.verified`: the record beside a verified file.
pub fn verified_path(file: &Path) -> PathBuf {
    with_suffix(file, ".verified")
}

/// `FILE.part`: an unfinished download.
pub fn part_path(file: &Path) -> PathBuf {
    with_suffix(file, ".part")
}

/// `FILE.part.expect`: the sha256 (or URL) an unfinished download is aiming at, so that a
/// partial file is resumed only toward the same file.
pub fn part_expect_path(file: &Path) -> PathBuf {
    with_suffix(file, ".part.expect")
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The record beside `file`, when there is one and it still describes the file (same size).
pub fn verified(file: &Path) -> Option<Verified> {
    let size = std::fs::metadata(file).ok()?.len();
    let v: Verified = serde_json::from_str(&std::fs::read_to_string(verified_path(file)).ok()?).ok()?;
    let hex64 = v.sha256.len() == 64 && v.sha256.bytes().all(|b| b.is_ascii_hexdigit());
    (v.size == size && hex64).then_some(v)
}

/// The sha256 recorded for a model file (downloaded and verified by moat), without hashing it;
/// `None` for a file moat did not verify, or one changed since.
pub fn recorded_sha256(file: &Path) -> Option<String> {
    verified(file).map(|v| v.sha256)
}

/// Writes `FILE.verified` (through a temp file, so a crash leaves the old record or the new).
pub fn record(file: &Path, v: &Verified) -> Result<(), ModelError> {
    let path = verified_path(file);
    let tmp = with_suffix(file, ".verified.tmp");
    let text = serde_json::to_string_pretty(v).expect("serialisable") + "\n";
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| ModelError::io(format!("cannot write {}", path.display()), e))
}

/// Every part of the split set `first` belongs to (just `first` when it is not split).
fn parts_of(first: &Path) -> Vec<PathBuf> {
    let name = first.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".gguf").unwrap_or(&name);
    match hub::split_part(stem) {
        Some((prefix, _, n)) => {
            (1..=n).map(|i| first.with_file_name(format!("{prefix}-{i:05}-of-{n:05}.gguf"))).collect()
        }
        None => vec![first.to_path_buf()],
    }
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn path_of(&self, entry: &Entry) -> PathBuf {
        self.dir.join(&entry.file)
    }

    /// Whether a registry model's file is whole: its pinned size, or a record of a verified
    /// download of this size.
    pub fn is_present(&self, entry: &Entry) -> bool {
        let path = self.path_of(entry);
        let size = std::fs::metadata(&path).ok().map(|m| m.len());
        match entry.size {
            Some(pinned) => size == Some(pinned),
            None => size.is_some() && verified(&path).is_some(),
        }
    }

    pub fn list(&self) -> Vec<StoredModel> {
        Registry::builtin()
            .models
            .iter()
            .map(|entry| {
                let path = self.path_of(entry);
                let exists = path.exists();
                let present = self.is_present(entry);
                StoredModel {
                    entry,
                    present,
                    damaged: exists && !present,
                    partial: std::fs::metadata(part_path(&path)).ok().map(|m| m.len()),
                    sha256: recorded_sha256(&path).or_else(|| entry.sha256.clone().filter(|_| present)),
                    path,
                }
            })
            .collect()
    }

    /// Other .gguf files found in the store (from `hf:` or URL pulls).
    pub fn extra_files(&self) -> Vec<(PathBuf, u64)> {
        let known: Vec<PathBuf> = Registry::builtin().models.iter().map(|e| self.path_of(e)).collect();
        let mut out: Vec<(PathBuf, u64)> =
            self.gguf_files(&self.dir).into_iter().filter(|(p, _)| !known.contains(p)).collect();
        out.sort();
        out
    }

    /// The .gguf files under `dir`, with their sizes.
    fn gguf_files(&self, dir: &Path) -> Vec<(PathBuf, u64)> {
        files_under(dir).into_iter().filter(|(p, _)| p.extension().is_some_and(|e| e == "gguf")).collect()
    }

    /// Verified files of a hub repository already in the store, as a listing `hub::pick` reads.
    fn local_listing(&self, subdir: &Path) -> Vec<HubFile> {
        let root = self.dir.join(subdir);
        self.gguf_files(&root)
            .into_iter()
            .filter_map(|(p, size)| {
                let v = verified(&p)?;
                let rel = p.strip_prefix(&root).ok()?.to_string_lossy().replace('\\', "/");
                Some(HubFile { path: rel, size, sha256: Some(v.sha256) })
            })
            .collect()
    }

    /// Whether `file` and, for a split model, every other part are downloaded and verified.
    /// A file from before moat kept records (no `.verified`) counts when `legacy_ok`.
    fn complete(file: &Path, legacy_ok: bool) -> bool {
        parts_of(file).iter().all(|p| verified(p).is_some() || (legacy_ok && p.exists() && !verified_path(p).exists()))
    }

    /// Turns a model reference into a verified file path, pulling it first when allowed.
    pub fn ensure(&self, model: &ModelRef, opts: &PullOptions) -> Result<PathBuf, ModelError> {
        let path = match model {
            ModelRef::Local(p) => p.clone(),
            ModelRef::Registry(entry) => {
                let path = self.path_of(entry);
                if !self.is_present(entry) {
                    if !opts.auto_pull {
                        return Err(ModelError::NotPulled { name: entry.name.clone() });
                    }
                    let why = if path.exists() { "is incomplete or outdated" } else { "is not downloaded yet" };
                    let size = entry.size_hint().map(human_bytes).unwrap_or_else(|| "size unknown".into());
                    opts.say(&format!("model {} {why}; fetching it ({size}) — this happens once", entry.name));
                    Downloader::new(opts.clone()).pull_entry(entry, &path, false)?;
                }
                path
            }
            ModelRef::Remote { source, file, store_subdir } => {
                let path = self.dir.join(store_subdir).join(file);
                // Offline, a file fetched before moat kept records is taken as it is.
                if !Self::complete(&path, !opts.auto_pull) {
                    if !opts.auto_pull {
                        return Err(ModelError::NotPulled { name: model.display_name() });
                    }
                    opts.say(&format!("fetching {} into {}", source.label(), tilde(&path)));
                    Downloader::new(opts.clone()).pull_remote(source, &path, false)?;
                }
                path
            }
            ModelRef::HubRepo { repo, revision, quant, store_subdir } => {
                let local = self.local_listing(store_subdir);
                match hub::pick(repo, &local, quant.as_deref()) {
                    Ok(p)
                        if p.files
                            .iter()
                            .all(|f| Self::complete(&self.dir.join(store_subdir).join(&f.path), false)) =>
                    {
                        self.dir.join(store_subdir).join(&p.files[0].path)
                    }
                    _ if !opts.auto_pull => return Err(ModelError::NotPulled { name: model.display_name() }),
                    _ => {
                        let dir = self.dir.join(store_subdir);
                        Downloader::new(opts.clone()).pull_hub_repo(
                            repo,
                            revision.as_deref(),
                            quant.as_deref(),
                            &dir,
                            false,
                        )?
                    }
                }
            }
        };
        gguf::inspect(&path)?;
        Ok(path)
    }

    /// Removes a downloaded registry model, its record and any unfinished download; returns
    /// whether anything was there.
    pub fn remove(&self, entry: &Entry) -> Result<bool, ModelError> {
        remove_files(&self.path_of(entry))
    }

    /// Removes what an `hf:` or URL reference fetched (every part of a split model, the records
    /// and unfinished downloads); returns whether anything was there.
    pub fn remove_ref(&self, model: &ModelRef) -> Result<bool, ModelError> {
        match model {
            ModelRef::Registry(e) => self.remove(e),
            ModelRef::Local(_) => Ok(false),
            ModelRef::Remote { file, store_subdir, .. } => {
                let mut any = false;
                for p in parts_of(&self.dir.join(store_subdir).join(file)) {
                    any |= remove_files(&p)?;
                }
                Ok(any)
            }
            ModelRef::HubRepo { repo, quant, store_subdir, .. } => {
                let root = self.dir.join(store_subdir);
                // What the pick would choose among the files there, verified or not (a damaged
                // or unfinished download is removed too).
                let listing: Vec<HubFile> = self
                    .gguf_files(&root)
                    .into_iter()
                    .map(|(p, size)| {
                        p.strip_prefix(&root).map(|r| r.to_string_lossy().replace('\\', "/")).map(|r| (r, size))
                    })
                    .filter_map(Result::ok)
                    .chain(self.partials(&root))
                    .map(|(path, size)| HubFile { path, size, sha256: None })
                    .collect();
                let mut listing = listing;
                listing.sort_by(|a, b| a.path.cmp(&b.path));
                listing.dedup_by(|a, b| a.path == b.path);
                let Ok(p) = hub::pick(repo, &listing, quant.as_deref()) else { return Ok(false) };
                let mut any = false;
                for f in &p.files {
                    any |= remove_files(&root.join(&f.path))?;
                }
                Ok(any)
            }
        }
    }

    /// Unfinished downloads under `root`, as (path of the file they will become, bytes so far).
    fn partials(&self, root: &Path) -> Vec<(String, u64)> {
        files_under(root)
            .into_iter()
            .filter_map(|(p, len)| {
                let target = format!("{}.gguf", p.to_str()?.strip_suffix(".gguf.part")?);
                let rel = Path::new(&target).strip_prefix(root).ok()?.to_string_lossy().replace('\\', "/");
                Some((rel, len))
            })
            .collect()
    }
}

/// Every file under `root`, in any subfolder, with its size; what cannot be read is skipped.
fn files_under(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for ent in rd.flatten() {
            let Ok(md) = ent.metadata() else { continue };
            if md.is_dir() {
                stack.push(ent.path());
            } else {
                out.push((ent.path(), md.len()));
            }
        }
    }
    out
}

/// Deletes `file`, its record, and an unfinished download of it; whether any was there.
fn remove_files(file: &Path) -> Result<bool, ModelError> {
    let mut any = false;
    let part = part_path(file);

    for p in [file.to_path_buf(), verified_path(file), part, part_expect_path(file)] {
        match std::fs::remove_file(&p) {
            Ok(()) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ModelError::io(format!("cannot remove {}", p.display()), e)),
        }
    }
    Ok(any)
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
    } else if v < 10.0 && u >= 3 {
        format!("{v:.1} {}", UNITS[u])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_describe_the_file_they_sit_beside() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.gguf");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(recorded_sha256(&f), None);
        let v = Verified {
            sha256: "ab".repeat(32),
            size: 5,
            source: "hf:o/r/m.gguf".into(),
            checked_against: "hub".into(),
        };
        record(&f, &v).unwrap();
        assert_eq!(verified(&f), Some(v.clone()));
        assert_eq!(recorded_sha256(&f), Some("ab".repeat(32)));
        // A file that changed size since is no longer vouched for.
        std::fs::write(&f, b"123456").unwrap();
        assert_eq!(verified(&f), None);
        std::fs::write(part_path(&f), b"12").unwrap();
        assert!(remove_files(&f).unwrap());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "the file, record and part are gone");
    }

    #[test]
    fn split_parts_are_found_beside_the_first() {
        let p = Path::new("/s/M-Q8_0-00001-of-00002.gguf");
        assert_eq!(
            parts_of(p),
            [PathBuf::from("/s/M-Q8_0-00001-of-00002.gguf"), PathBuf::from("/s/M-Q8_0-00002-of-00002.gguf")]
        );
        assert_eq!(parts_of(Path::new("/s/m.gguf")), [PathBuf::from("/s/m.gguf")]);
        assert_eq!(human_bytes(4_680_000_000), "4.7 GB");
        assert_eq!(human_bytes(98_362_432), "98 MB");
    }
}
