//! The input history (what was typed at the chat and REPL prompts: Up/Down, Ctrl+R) in the
//! session database's `inputs` table, so that any number of moat processes append to it without
//! one rewriting the others away. Files of earlier versions (`history.jsonl` of the full-screen
//! chat, `repl-history.txt` of the REPL) are imported when the table is created and left in place.

use super::store::{now_stamp, SessionError, SessionStore};
use rusqlite::params;
use std::path::Path;

pub use super::db::INPUTS_KEPT as KEEP;

/// The input history of one process, on its own connection to the session database.
pub struct InputLog {
    store: SessionStore,
}

impl InputLog {
    /// Opens the session database in `data_dir` (see [`SessionStore::open`] for the errors).
    pub fn open(data_dir: &Path) -> Result<InputLog, SessionError> {
        Ok(InputLog { store: SessionStore::open(data_dir)? })
    }

    /// The newest `limit` entries, oldest first; empty when the database cannot be read.
    pub fn recent(&self, limit: usize) -> Vec<String> {
        let rows = || -> rusqlite::Result<Vec<String>> {
            let mut st = self.store.conn().prepare("SELECT text FROM inputs ORDER BY id DESC LIMIT ?1")?;
            let mut out: Vec<String> = st.query_map([limit as i64], |r| r.get(0))?.collect::<Result<_, _>>()?;
            out.reverse();
            Ok(out)
        };
        rows().unwrap_or_default()
    }

    /// Appends `entry` unless it repeats the newest stored entry, and drops entries beyond [`KEEP`].
    /// An error (a busy or read-only database) loses only this entry, and is returned for a
    /// one-time warning.
    pub fn add(&self, entry: &str) -> Result<(), SessionError> {
        let c = self.store.conn();
        let r = super::db::write_txn(c, |c| {
            let last: Option<String> =
                c.query_row("SELECT text FROM inputs ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).ok();
            if last.as_deref() != Some(entry) {
                c.execute("INSERT INTO inputs (text, created) VALUES (?1, ?2)", params![entry, now_stamp()])?;
                c.execute("DELETE FROM inputs WHERE id <= (SELECT max(id) FROM inputs) - ?1", [KEEP])?;
            }
            Ok(())
        });
        r.map_err(|e| self.store.db_error(e))
    }
}

impl crate::history::Persist for InputLog {
    fn append(&mut self, entry: &str) -> Result<(), String> {
        self.add(entry).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_shared_between_processes_and_repeats_are_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (InputLog::open(dir.path()).unwrap(), InputLog::open(dir.path()).unwrap());
        a.add("first").unwrap();
        b.add("second\nline").unwrap();
        a.add("第三").unwrap();
        a.add("第三").unwrap();
        b.add("first").unwrap();
        let want = ["first", "second\nline", "第三", "first"];
        assert_eq!(a.recent(10), want);
        assert_eq!(InputLog::open(dir.path()).unwrap().recent(2), ["第三", "first"]);
    }

    #[test]
    fn old_history_files_are_imported_once_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = "\"chat one\"\n\"two\\nlines\"\nnot json\n";
        std::fs::write(dir.path().join("history.jsonl"), jsonl).unwrap();
        std::fs::write(dir.path().join("repl-history.txt"), "#V2\nrepl \\\\ one\nmulti\\nline\n\n").unwrap();
        let mut store = SessionStore::open(dir.path()).unwrap();
        let notes = store.take_notes();
        assert!(notes.iter().any(|n| n.contains("imported 4 input history entries")), "{notes:?}");
        drop(store);
        let log = InputLog::open(dir.path()).unwrap();
        assert_eq!(log.recent(10), ["chat one", "two\nlines", "repl \\ one", "multi\nline"]);
        assert_eq!(std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap(), jsonl);
        log.add("new").unwrap();
        assert_eq!(InputLog::open(dir.path()).unwrap().recent(10).len(), 5, "imported once");
    }
}
