//! Opt-in logging of one-shot runs into the session database (`moat ask --log`, `[chat] log_ask =
//! true`, `moat run --log`): each run becomes its own conversation, named like
//! `ask-2026-11-30-0102-03-k3x9` (`run-…` for `moat run`), which `moat repl --session NAME`,
//! `/load` and search then find. A logged run never becomes the session `--resume` opens.
//!
//! Logging is a side job of the answer: when the database cannot take the run (damaged, busy, a
//! read-only data dir), the answer has been printed all the same, one warning line on stderr says
//! why it was not logged, and the exit code stays the answer's.

use crate::chat::store::{self, SavedSession, SessionStore, SyncPoint};
use crate::chat::Message;
use crate::config::SamplingConfig;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

/// Attempts at a free name before giving up (each draws a new suffix; 36^4 per second to pick from).
const NAME_TRIES: usize = 16;

/// What one run leaves in the database.
pub struct RunLog<'a> {
    /// `ask` or `run`: the first word of the conversation's name.
    pub kind: &'a str,
    pub model: &'a str,
    pub sampling: &'a SamplingConfig,
    /// The system prompt (if any), the user text and the reply, in order.
    pub messages: Vec<Message>,
    /// The reply's figures (JSON, see [`crate::chat::session::reply_stats_json`]).
    pub stats: Option<String>,
}

/// Stores `log` as a new conversation in `<data_dir>/moat.db` and returns its name; on any
/// failure prints one warning line (`moat: not logged: …`) and returns `None`.
pub fn save(data_dir: &Path, log: RunLog<'_>) -> Option<String> {
    match try_save(data_dir, log) {
        Ok(name) => Some(name),
        Err(why) => {
            warnln!("moat: not logged: {why}");
            None
        }
    }
}

fn try_save(data_dir: &Path, log: RunLog<'_>) -> Result<String, String> {
    let mut store = SessionStore::open(data_dir).map_err(|e| e.to_string())?;
    for note in store.take_notes() {
        warnln!("moat: {note}");
    }
    let now = store::now_stamp();
    let mut session = SavedSession {
        version: store::VERSION,
        name: String::new(),
        model: log.model.to_string(),
        sampling: log.sampling.clone(),
        messages: log.messages,
        created: now.clone(),
        updated: now,
        sync: SyncPoint::default(),
    };
    let mut suffixes = Suffixes::new();
    for _ in 0..NAME_TRIES {
        session.name = format!("{}-{}-{}", log.kind, store::fresh_name(), suffixes.next());
        if store.insert_new(&session, log.stats.as_deref()).map_err(|e| e.to_string())? {
            return Ok(session.name);
        }
    }
    Err(format!("no free name of the form {}-{}-XXXX after {NAME_TRIES} tries", log.kind, store::fresh_name()))
}

/// Four-character suffixes (`[0-9a-z]`, inside [`SessionStore::check_name`]'s alphabet) that differ
/// between processes started in the same second: the generator is seeded from the standard
/// library's per-process random hash keys, so no two runs share a sequence.
struct Suffixes(crate::rng::Rng);

impl Suffixes {
    fn new() -> Suffixes {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Suffixes(crate::rng::Rng::new(h.finish()))
    }

    fn next(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..4).map(|_| ALPHABET[self.0.below(ALPHABET.len() as u64) as usize] as char).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(kind: &'static str) -> RunLog<'static> {
        static SAMPLING: std::sync::OnceLock<SamplingConfig> = std::sync::OnceLock::new();
        RunLog {
            kind,
            model: "m",
            sampling: SAMPLING.get_or_init(SamplingConfig::default),
            messages: vec![Message::user("q"), Message::assistant("a")],
            stats: Some(r#"{"gen_tokens":1}"#.into()),
        }
    }

    #[test]
    fn runs_in_the_same_second_get_names_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..20).map(|_| save(dir.path(), log("ask")).unwrap()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let store = SessionStore::open(dir.path()).unwrap();
        for n in &names {
            assert!(n.starts_with("ask-") && SessionStore::check_name(n).is_ok(), "{n}");
            assert_eq!(store.load(n).unwrap().messages, log("ask").messages);
        }
        assert_eq!(store.last(), None, "a logged run is not what --resume opens");
    }

    #[test]
    fn suffixes_differ_between_generators() {
        let (mut a, mut b) = (Suffixes::new(), Suffixes::new());
        let (x, y): (Vec<String>, Vec<String>) = (0..4).map(|_| (a.next(), b.next())).unzip();
        assert_ne!(x, y);
        assert!(x.iter().all(|s| s.len() == 4 && s.chars().all(|c| c.is_ascii_alphanumeric())));
    }

    #[test]
    fn a_damaged_database_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let junk = vec![7u8; 4096];
        std::fs::write(dir.path().join(store::DB_FILE), &junk).unwrap();
        let err = try_save(dir.path(), log("run")).unwrap_err();
        assert!(err.contains("damaged") && !err.contains('\n'), "{err}");
        assert_eq!(std::fs::read(dir.path().join(store::DB_FILE)).unwrap(), junk);
    }
}
