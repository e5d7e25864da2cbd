//! Measured fastest settings: the cache of `moat tune` results and how `auto` settings read it.
//!
//! One JSON file (`<data dir>/tune.json`) holds, per model file (by sha256), device and moat
//! version, the settings measured and the one chosen. A model's sha256 comes from the registry
//! when known, else from a memo of an earlier hash keyed by the file's path, size and mtime, so a
//! large file is hashed once and never while a model loads. Any change of model file, device or
//! moat version finds no entry, and `auto` settings fall back to llama.cpp's defaults.
//!
//! The measuring itself is in `llama/tune.rs`; this module only stores and applies.

use super::protocol::{EngineOptions, TuneSource};
use crate::config::FlashAttn;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The tuning objective: one chat turn reads a prompt of this many tokens…
pub const TURN_PROMPT_TOKENS: f64 = 512.0;
/// …and generates this many.
pub const TURN_REPLY_TOKENS: f64 = 128.0;

/// The file's format; a file of another version is read as empty (and rewritten on the next tune).
const FORMAT: u32 = 1;

/// This build's version, part of every key: a new moat may run llama.cpp differently.
pub const MOAT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One measured combination of settings. Rates are tokens per second; a trial that could not run
/// (a context llama.cpp refused) has `error` set and zero rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub flash_attn: FlashAttn,
    /// Generation threads.
    pub threads: u32,
    /// Prompt-processing threads.
    pub threads_batch: u32,
    /// Tokens per decode call while reading the prompt (`n_batch`; `n_ubatch` is the same).
    pub batch: u32,
    /// Prompt processing of `depth` tokens from an empty cache, tokens/s.
    pub pp_tok_s: f64,
    /// Generation after `depth` tokens, tokens/s.
    pub tg_tok_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The settings moat uses when they are `auto`, and the chat turn they are expected to cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub flash_attn: FlashAttn,
    pub threads: u32,
    pub threads_batch: u32,
    pub batch: u32,
    pub pp_tok_s: f64,
    pub tg_tok_s: f64,
    /// [`turn_ms`] of these rates.
    pub turn_ms: f64,
}

impl Choice {
    /// The prompt settings of `pp` and the generation threads of `tg` (trials of the same flash
    /// attention value), with their rates.
    fn of(pp: &Trial, tg: &Trial) -> Choice {
        Choice {
            flash_attn: pp.flash_attn,
            threads: tg.threads,
            threads_batch: pp.threads_batch,
            batch: pp.batch,
            pp_tok_s: pp.pp_tok_s,
            tg_tok_s: tg.tg_tok_s,
            turn_ms: turn_ms(pp.pp_tok_s, tg.tg_tok_s),
        }
    }
}

/// One model on one device under one moat version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub model_sha256: String,
    pub device: String,
    pub moat_version: String,
    /// For people reading the file and `moat doctor`.
    pub model_name: String,
    /// Seconds since the Unix epoch.
    pub measured_at: u64,
    /// Wall-clock time the measurement took, in milliseconds (loading the model included).
    pub took_ms: f64,
    /// Prompt tokens read before generation was timed.
    pub depth: u32,
    /// Tokens generated per trial.
    pub gen_tokens: u32,
    pub trials: Vec<Trial>,
    pub choice: Choice,
}

/// A remembered hash: `path` had `size` bytes and this mtime when it hashed to `sha256`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Hashed {
    path: String,
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

/// The whole cache file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TuneCache {
    #[serde(default)]
    format: u32,
    #[serde(default)]
    entries: Vec<Entry>,
    #[serde(default)]
    hashes: Vec<Hashed>,
}

impl TuneCache {
    /// Reads `file`. A missing, unreadable, damaged or other-version file is an empty cache: the
    /// cache only saves time, and the next `moat tune` rewrites it.
    pub fn load(file: &Path) -> TuneCache {
        let Ok(bytes) = std::fs::read(file) else { return TuneCache::default() };
        match serde_json::from_slice::<TuneCache>(&bytes) {
            Ok(c) if c.format == FORMAT => c,
            _ => TuneCache::default(),
        }
    }

    /// Writes the cache atomically (readers see the old file or the new one).
    ///
    /// Errors: the I/O error of creating the directory, writing or renaming.
    pub fn save(&self, file: &Path) -> std::io::Result<()> {
        let mut me = self.clone();
        me.format = FORMAT;
        let json = serde_json::to_vec_pretty(&me).expect("the cache serialises to JSON");
        crate::atomic_write::write_atomic(file, &json)
    }

    /// The sha256 remembered for `path` if the file still has the size and mtime it had then.
    pub fn remembered_sha256(&self, path: &Path) -> Option<String> {
        let (size, mtime_ns) = file_stamp(path)?;
        let key = path_key(path);
        self.hashes.iter().find(|h| h.path == key && h.size == size && h.mtime_ns == mtime_ns).map(|h| h.sha256.clone())
    }

    /// Remembers `sha256` for `path` as it is now (size and mtime), replacing what was known of it.
    pub fn remember_sha256(&mut self, path: &Path, sha256: &str) {
        let Some((size, mtime_ns)) = file_stamp(path) else { return };
        let key = path_key(path);
        self.hashes.retain(|h| h.path != key);
        self.hashes.push(Hashed { path: key, size, mtime_ns, sha256: sha256.to_string() });
    }

    /// The model's sha256 without reading the model: the registry's (`source.known_sha256`, for
    /// this very path) or the remembered one. `None` when neither is known.
    pub fn model_sha256(&self, source: &TuneSource, path: &Path) -> Option<String> {
        match &source.known_sha256 {
            Some((p, sha)) if p == path && !sha.is_empty() => Some(sha.to_ascii_lowercase()),
            _ => self.remembered_sha256(path),
        }
    }

    /// The entry for exactly this model, device and moat version.
    pub fn entry(&self, model_sha256: &str, device: &str, moat_version: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.model_sha256 == model_sha256 && e.device == device && e.moat_version == moat_version)
    }

    /// Adds `entry`, dropping any older one for the same model and device (whatever its version:
    /// an old version's numbers are never used again).
    pub fn insert(&mut self, entry: Entry) {
        self.entries.retain(|e| !(e.model_sha256 == entry.model_sha256 && e.device == entry.device));
        self.entries.push(entry);
    }
}

/// The file's size and modification time, or `None` when it cannot be read.
fn file_stamp(path: &Path) -> Option<(u64, u128)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    Some((meta.len(), mtime))
}

fn path_key(path: &Path) -> String {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).to_string_lossy().into_owned()
}

/// The sha256 of a file, as 64 lowercase hex digits.
///
/// Errors: the I/O error of opening or reading it.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Milliseconds for one chat turn ([`TURN_PROMPT_TOKENS`] read, [`TURN_REPLY_TOKENS`] generated)
/// at these rates; infinite when either rate is zero.
pub fn turn_ms(pp_tok_s: f64, tg_tok_s: f64) -> f64 {
    if pp_tok_s <= 0.0 || tg_tok_s <= 0.0 {
        return f64::INFINITY;
    }
    1000.0 * (TURN_PROMPT_TOKENS / pp_tok_s + TURN_REPLY_TOKENS / tg_tok_s)
}

/// How much shorter a turn must be to leave llama.cpp's defaults: the same trial varies by a few
/// percent from run to run on a shared machine, and the defaults also hold at depths the tune does
/// not measure (on a CPU, flash attention ties at depth 512 but is faster at depth 0).
pub const NOISE_MARGIN: f64 = 0.05;

/// The fastest chat turn the trials allow. Prompt settings (prompt threads, batch) and generation
/// threads act on different phases, so for each flash-attention value the fastest prompt trial
/// and the fastest generation trial are combined; the flash-attention value with the shorter turn
/// wins, unless llama.cpp's defaults (the first flash-attention-on trial: the candidates start with
/// llama.cpp's threads and batch) are within [`NOISE_MARGIN`] of it. `None` when no trial ran.
pub fn choose(trials: &[Trial]) -> Option<Choice> {
    let ok: Vec<&Trial> = trials.iter().filter(|t| t.error.is_none() && t.pp_tok_s > 0.0 && t.tg_tok_s > 0.0).collect();
    let best = fastest(&ok)?;
    let default = ok.iter().find(|t| t.flash_attn == FlashAttn::On).map(|d| Choice::of(d, d));
    match default {
        Some(d) if best.turn_ms > d.turn_ms * (1.0 - NOISE_MARGIN) => Some(d),
        _ => Some(best),
    }
}

fn fastest(ok: &[&Trial]) -> Option<Choice> {
    [FlashAttn::Off, FlashAttn::On]
        .into_iter()
        .filter_map(|fa| {
            let of_fa = || ok.iter().filter(move |t| t.flash_attn == fa);
            let pp = of_fa().max_by(|a, b| a.pp_tok_s.total_cmp(&b.pp_tok_s))?;
            let tg = of_fa().max_by(|a, b| a.tg_tok_s.total_cmp(&b.tg_tok_s))?;
            Some(Choice::of(pp, tg))
        })
        .min_by(|a, b| a.turn_ms.total_cmp(&b.turn_ms))
}

/// Whether any setting a tune decides is left to `auto` in `opts`.
pub fn wants_tuned(opts: &EngineOptions) -> bool {
    opts.flash_attn == FlashAttn::Auto || opts.threads == 0 || opts.threads_batch == 0 || opts.n_batch == 0
}

/// Puts `choice` into the `auto` settings of `opts` (explicit values stay) and returns what
/// changed, e.g. `flash attention off, 2 threads`; empty when nothing did. Flash attention stays
/// `auto` when the V cache is quantised, which needs it on.
pub fn apply(opts: &mut EngineOptions, choice: &Choice) -> Vec<String> {
    let mut changed = Vec::new();
    let quantised_v = !matches!(opts.cache_type_v.as_str(), "f16" | "bf16" | "f32");
    if opts.flash_attn == FlashAttn::Auto && !(quantised_v && choice.flash_attn == FlashAttn::Off) {
        opts.flash_attn = choice.flash_attn;
        changed.push(format!("flash attention {}", choice.flash_attn));
    }
    if opts.threads == 0 && choice.threads > 0 {
        opts.threads = choice.threads;
        changed.push(format!("{} threads", choice.threads));
    }
    if opts.threads_batch == 0 && choice.threads_batch > 0 {
        opts.threads_batch = choice.threads_batch;
        changed.push(format!("{} prompt threads", choice.threads_batch));
    }
    if opts.n_batch == 0 && choice.batch > 0 {
        opts.n_batch = choice.batch;
        changed.push(format!("batch {}", choice.batch));
    }
    changed
}

/// Applies the cached choice for `opts`'s model on `device` to its `auto` settings, without
/// hashing the model (see [`TuneCache::model_sha256`]). Returns a note for the model's
/// description (`tuned: flash attention off, 2 threads`), or `None` when there is no tune source,
/// nothing is `auto`, or no entry matches.
pub fn apply_cached(opts: &mut EngineOptions, device: &str) -> Option<String> {
    let source = opts.tune.clone()?;
    if !wants_tuned(opts) {
        return None;
    }
    let cache = TuneCache::load(&source.file);
    let sha = cache.model_sha256(&source, &opts.model_path)?;
    let entry = cache.entry(&sha, device, MOAT_VERSION)?;
    let changed = apply(opts, &entry.choice);
    (!changed.is_empty()).then(|| format!("tuned: {}", changed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn trial(fa: FlashAttn, threads: u32, batch: u32, pp: f64, tg: f64) -> Trial {
        Trial { flash_attn: fa, threads, threads_batch: 2, batch, pp_tok_s: pp, tg_tok_s: tg, error: None }
    }

    fn entry(sha: &str, device: &str, version: &str) -> Entry {
        let trials = vec![trial(FlashAttn::Off, 2, 512, 400.0, 55.0), trial(FlashAttn::On, 2, 512, 420.0, 35.0)];
        Entry {
            model_sha256: sha.into(),
            device: device.into(),
            moat_version: version.into(),
            model_name: "m".into(),
            measured_at: 0,
            took_ms: 0.0,
            depth: 512,
            gen_tokens: 32,
            choice: choose(&trials).unwrap(),
            trials,
        }
    }

    fn opts(dir: &Path, model: &Path) -> EngineOptions {
        let mut o =
            EngineOptions::from_config(&crate::config::Config::default(), model.to_path_buf(), "m".into(), None);
        o.tune = Some(TuneSource { file: dir.join("tune.json"), known_sha256: None });
        o.flash_attn = FlashAttn::Auto;
        o.threads = 0;
        o.threads_batch = 0;
        o.n_batch = 0;
        o
    }

    #[test]
    fn the_faster_turn_wins_combining_prompt_and_generation_trials_per_flash_setting() {
        let trials = vec![
            trial(FlashAttn::Off, 2, 512, 300.0, 50.0),
            trial(FlashAttn::Off, 1, 256, 350.0, 56.0),
            trial(FlashAttn::On, 2, 512, 500.0, 30.0),
            Trial { error: Some("refused".into()), ..trial(FlashAttn::On, 1, 256, 0.0, 0.0) },
        ];
        let c = choose(&trials).unwrap();
        assert_eq!((c.flash_attn, c.threads, c.batch), (FlashAttn::Off, 1, 256));
        assert!((c.turn_ms - turn_ms(350.0, 56.0)).abs() < 1e-9);
        // Fast prompts, slow generation: flash attention wins once generation is close enough.
        let c =
            choose(&[trial(FlashAttn::Off, 2, 512, 100.0, 50.0), trial(FlashAttn::On, 2, 512, 400.0, 45.0)]).unwrap();
        assert_eq!(c.flash_attn, FlashAttn::On);
        assert!(choose(&[]).is_none());
    }

    /// Measured here (`moat tune`, idle machine): off 250.0/72.0 tok/s, on 251.0/71.6 — a tie at
    /// depth 512 that flipped between runs, while at depth 0 flash attention generated 93.8 against
    /// 70.7. Within the margin the defaults stay; a clear win still leaves them.
    #[test]
    fn a_win_within_the_noise_margin_keeps_llama_cpp_defaults() {
        let tie = [trial(FlashAttn::Off, 2, 512, 250.0, 72.0), trial(FlashAttn::On, 2, 512, 251.0, 71.6)];
        assert!(fastest(&tie.iter().collect::<Vec<_>>()).unwrap().flash_attn == FlashAttn::Off);
        let c = choose(&tie).unwrap();
        assert_eq!((c.flash_attn, c.threads, c.batch), (FlashAttn::On, 2, 512));
        // A combination inside flash attention on counts as leaving the defaults too.
        let c =
            choose(&[trial(FlashAttn::On, 2, 512, 250.0, 70.0), trial(FlashAttn::On, 1, 256, 252.0, 71.0)]).unwrap();
        assert_eq!((c.threads, c.batch), (2, 512));
        // Off clearly faster (generation 1.3x): it wins.
        let c =
            choose(&[trial(FlashAttn::Off, 2, 512, 250.0, 95.0), trial(FlashAttn::On, 2, 512, 251.0, 71.6)]).unwrap();
        assert_eq!(c.flash_attn, FlashAttn::Off);
        // No flash-attention trial ran: the fastest of the rest.
        let c = choose(&[
            Trial { error: Some("refused".into()), ..trial(FlashAttn::On, 2, 512, 0.0, 0.0) },
            trial(FlashAttn::Off, 2, 512, 250.0, 70.0),
        ])
        .unwrap();
        assert_eq!(c.flash_attn, FlashAttn::Off);
    }

    #[test]
    fn cache_hits_for_the_same_model_device_and_version_and_misses_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"GGUF one").unwrap();
        let file = dir.path().join("tune.json");
        // Miss: nothing measured yet.
        let mut o = opts(dir.path(), &model);
        assert_eq!(apply_cached(&mut o, "cpu A"), None);
        assert_eq!(o.flash_attn, FlashAttn::Auto);

        let sha = sha256_file(&model).unwrap();
        let mut cache = TuneCache::load(&file);
        cache.remember_sha256(&model, &sha);
        cache.insert(entry(&sha, "cpu A", MOAT_VERSION));
        cache.save(&file).unwrap();
        // Hit.
        let mut o = opts(dir.path(), &model);
        let note = apply_cached(&mut o, "cpu A").unwrap();
        assert_eq!((o.flash_attn, o.threads, o.threads_batch, o.n_batch), (FlashAttn::Off, 2, 2, 512));
        assert!(note.contains("flash attention off"), "{note}");
        // Another device.
        let mut o = opts(dir.path(), &model);
        assert_eq!(apply_cached(&mut o, "cpu B"), None);
        assert_eq!(o.flash_attn, FlashAttn::Auto);
        // Another moat version.
        let mut cache = TuneCache::load(&file);
        cache.entries[0].moat_version = "0.0.0-older".into();
        cache.save(&file).unwrap();
        let mut o = opts(dir.path(), &model);
        assert_eq!(apply_cached(&mut o, "cpu A"), None);
    }

    #[test]
    fn a_new_model_file_at_the_same_path_is_not_the_tuned_one() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"GGUF one").unwrap();
        let file = dir.path().join("tune.json");
        let mut cache = TuneCache::default();
        let sha = sha256_file(&model).unwrap();
        cache.remember_sha256(&model, &sha);
        cache.insert(entry(&sha, "cpu", MOAT_VERSION));
        cache.save(&file).unwrap();
        assert!(apply_cached(&mut opts(dir.path(), &model), "cpu").is_some());
        // Replaced by another file (other size, later mtime): the memo no longer vouches for it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&model, b"GGUF two, longer").unwrap();
        assert_eq!(TuneCache::load(&file).remembered_sha256(&model), None);
        assert_eq!(apply_cached(&mut opts(dir.path(), &model), "cpu"), None);
        // The registry's sha256 applies only to the path it was given for.
        let mut o = opts(dir.path(), &model);
        o.tune.as_mut().unwrap().known_sha256 = Some((PathBuf::from("/elsewhere.gguf"), sha.clone()));
        assert_eq!(apply_cached(&mut o, "cpu"), None);
        let mut o = opts(dir.path(), &model);
        o.tune.as_mut().unwrap().known_sha256 = Some((model.clone(), sha.to_uppercase()));
        assert!(apply_cached(&mut o, "cpu").is_some());
    }

    #[test]
    fn explicit_settings_are_kept_and_only_auto_ones_take_the_tuned_choice() {
        let choice = entry("s", "d", "v").choice;
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path(), Path::new("m.gguf"));
        o.flash_attn = FlashAttn::On;
        o.threads = 7;
        let changed = apply(&mut o, &choice);
        assert_eq!((o.flash_attn, o.threads, o.threads_batch, o.n_batch), (FlashAttn::On, 7, 2, 512));
        assert_eq!(changed, vec!["2 prompt threads".to_string(), "batch 512".to_string()]);
        // A quantised V cache needs flash attention: a tuned "off" does not apply to it.
        let mut o = opts(dir.path(), Path::new("m.gguf"));
        o.cache_type_v = "q8_0".into();
        apply(&mut o, &choice);
        assert_eq!(o.flash_attn, FlashAttn::Auto);
    }

    #[test]
    fn a_damaged_or_foreign_cache_file_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tune.json");
        for bytes in [&b"{not json"[..], b"{\"format\": 99, \"entries\": []}", b"\xff\xfe"] {
            std::fs::write(&file, bytes).unwrap();
            assert_eq!(TuneCache::load(&file), TuneCache::default());
        }
    }
}
