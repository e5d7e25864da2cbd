//! Saved chats: one JSON file per session under `<data dir>/sessions`, written atomically (temp file
//! + rename) after every turn, so a crash or kill never loses a completed turn.

use super::Message;
use crate::config::SamplingConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSession {
    pub version: u32,
    pub name: String,
    pub model: String,
    pub sampling: SamplingConfig,
    pub messages: Vec<Message>,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session name {0:?} is not usable: use letters, digits, '-', '_' or '.', at most 64 characters")]
    BadName(String),
    #[error("no saved session named {0:?}; `/sessions` lists them")]
    NotFound(String),
    #[error("session file {path} is damaged ({why}); move it away or pick another session")]
    Damaged { path: String, why: String },
    #[error("cannot write session {path}: {why}")]
    Write { path: String, why: String },
}

pub struct SessionStore {
    dir: PathBuf,
}

/// One line of `/sessions`.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub name: String,
    pub updated: String,
    pub messages: usize,
}

pub const VERSION: u32 = 1;

impl SessionStore {
    pub fn new(data_dir: &Path) -> SessionStore {
        SessionStore { dir: data_dir.join("sessions") }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Session names become file names: keep them to a safe, portable alphabet (CJK letters too).
    pub fn check_name(name: &str) -> Result<(), SessionError> {
        let ok = !name.is_empty()
            && name.chars().count() <= 64
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(())
        } else {
            Err(SessionError::BadName(name.to_string()))
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn save(&self, s: &SavedSession) -> Result<(), SessionError> {
        Self::check_name(&s.name)?;
        let json = serde_json::to_vec_pretty(s).expect("sessions serialise");
        write_atomic(&self.path(&s.name), &json)?;
        write_atomic(&self.dir.join("last"), s.name.as_bytes())
    }

    pub fn load(&self, name: &str) -> Result<SavedSession, SessionError> {
        Self::check_name(name)?;
        let path = self.path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SessionError::NotFound(name.into())),
            Err(e) => return Err(SessionError::Damaged { path: path.display().to_string(), why: e.to_string() }),
        };
        parse(&bytes).map_err(|why| SessionError::Damaged { path: path.display().to_string(), why })
    }

    /// The session saved most recently, for `--resume`.
    pub fn last(&self) -> Option<String> {
        let name = std::fs::read_to_string(self.dir.join("last")).ok()?;
        let name = name.trim();
        (Self::check_name(name).is_ok() && self.path(name).exists()).then(|| name.to_string())
    }

    /// Newest first.
    pub fn list(&self) -> Vec<SessionSummary> {
        let mut out: Vec<SessionSummary> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
                let s = self.load(&name).ok()?;
                Some(SessionSummary { name, updated: s.updated, messages: s.messages.len() })
            })
            .collect();
        out.sort_by(|a, b| b.updated.cmp(&a.updated).then(a.name.cmp(&b.name)));
        out
    }
}

/// A session file's bytes → the session; the error is serde's one-line reason, or the sampling
/// knob that is out of range (a session file is edited by hand and copied between machines, so
/// it gets the same checks as the config). Message text gets CRLF/CR → LF (see [`Message`]).
pub fn parse(bytes: &[u8]) -> Result<SavedSession, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let session: SavedSession = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    session.sampling.check().map_err(|k| format!("sampling.{} must be {}", k.key, k.rule))?;
    Ok(session)
}

/// Writes a file so that readers see the old content or the new, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SessionError> {
    crate::atomic_write::write_atomic(path, bytes)
        .map_err(|e| SessionError::Write { path: path.display().to_string(), why: e.to_string() })
}

/// Local time as `YYYY-MM-DD HH:MM:SS`, for the `created`/`updated` fields.
pub fn now_stamp() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A fresh session name from the clock, e.g. `2026-11-26-0822-15`.
pub fn fresh_name() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d-%H%M-%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, n: usize) -> SavedSession {
        SavedSession {
            version: VERSION,
            name: name.into(),
            model: "smollm2-135m".into(),
            sampling: SamplingConfig::default(),
            messages: (0..n).map(|i| Message::user(format!("问题 {i}"))).collect(),
            created: now_stamp(),
            updated: now_stamp(),
        }
    }

    #[test]
    fn out_of_range_sampling_in_a_session_file_is_refused_in_one_line() {
        let mut bad = sample("x", 1);
        bad.sampling.top_p = 7.0;
        let err = parse(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(err.starts_with("sampling.top_p must be"), "{err}");
        assert!(!err.contains('\n'));
        bad.sampling.top_p = 0.5;
        bad.sampling.temperature = -1.0;
        assert!(parse(&serde_json::to_vec(&bad).unwrap()).unwrap_err().starts_with("sampling.temperature"));
        assert!(parse(&serde_json::to_vec(&sample("x", 1)).unwrap()).is_ok());
    }

    #[test]
    fn saves_loads_lists_and_remembers_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(dir.path());
        assert_eq!(store.last(), None);
        store.save(&sample("a", 2)).unwrap();
        store.save(&sample("市场", 3)).unwrap();
        assert_eq!(store.load("a").unwrap(), sample("a", 2).with_stamps_of(&store.load("a").unwrap()));
        assert_eq!(store.last().as_deref(), Some("市场"));
        let names: Vec<_> = store.list().into_iter().map(|s| (s.name, s.messages)).collect();
        assert!(names.contains(&("a".into(), 2)) && names.contains(&("市场".into(), 3)));
        // No temp files are left behind.
        let leftovers = std::fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn rejects_names_that_escape_the_directory_and_reports_damage() {
        for bad in ["", "../x", "a/b", ".hidden", "a b", "x\0"] {
            assert!(matches!(SessionStore::check_name(bad), Err(SessionError::BadName(_))), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::new(dir.path());
        assert!(matches!(store.load("nope"), Err(SessionError::NotFound(_))));
        std::fs::create_dir_all(store.dir()).unwrap();
        std::fs::write(store.dir().join("bad.json"), "{ not json").unwrap();
        assert!(matches!(store.load("bad"), Err(SessionError::Damaged { .. })));
        assert!(store.list().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn prop_session_file_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn prop_session_file_mutations_never_panic(cut in 0usize..2000, flip in proptest::prelude::any::<(usize, u8)>()) {
            let mut json = serde_json::to_vec_pretty(&sample("x", 2)).unwrap();
            let at = flip.0 % json.len();
            json[at] = flip.1;
            json.truncate(cut.min(json.len()));
            let _ = parse(&json);
        }

        #[test]
        fn prop_session_saved_text_loads_back(texts in proptest::collection::vec("\\PC*|[\r\n\t\x1b\u{202e}\u{0}]*", 1..5)) {
            let mut s = sample("p", 0);
            s.messages = texts.iter().enumerate().map(|(i, t)| if i % 2 == 0 { Message::user(t.clone()) } else { Message::assistant(t.clone()) }).collect();
            let back = parse(&serde_json::to_vec_pretty(&s).unwrap()).unwrap();
            for (m, t) in back.messages.iter().zip(&texts) {
                proptest::prop_assert_eq!(&m.content, &crate::text_input::normalize_newlines(t).into_owned());
            }
        }
    }

    impl SavedSession {
        fn with_stamps_of(mut self, other: &SavedSession) -> SavedSession {
            self.created = other.created.clone();
            self.updated = other.updated.clone();
            self
        }
    }
}
