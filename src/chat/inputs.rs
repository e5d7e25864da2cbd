//! The input history (what was typed at the chat and REPL prompts: Up/Down, Ctrl+R) in the
//! session database's `inputs` table, so that any number of moat processes append to it without
//! one rewriting the others away. Files of earlier versions (`history.jsonl` of the full-screen
//! chat, `repl-history.txt` of the REPL) are imported when the table is created and left in place.

use super::store::{now_stamp, SessionError, SessionStore};
use rusqlite::{params, Connection};
use std::path::Path;

/// How many entries are kept; older ones are deleted as new ones come.
pub const KEEP: i64 = 10_000;

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

/// Copies the input history files of earlier versions in `data_dir` into `inputs` (in the
/// caller's transaction, when the table is created); returns the line to show when any were.
pub(super) fn import_files(c: &Connection, data_dir: &Path) -> rusqlite::Result<Vec<String>> {
    let mut entries: Vec<String> = Vec::new();
    let mut names = Vec::new();
    if let Ok(text) = std::fs::read_to_string(data_dir.join("history.jsonl")) {
        entries.extend(text.lines().filter_map(|l| serde_json::from_str::<String>(l).ok()));
        names.push("history.jsonl");
    }
    if let Ok(text) = std::fs::read_to_string(data_dir.join("repl-history.txt")) {
        entries.extend(rustyline_entries(&text));
        names.push("repl-history.txt");
    }
    entries.retain(|e| !e.trim().is_empty());
    let skip = entries.len().saturating_sub(KEEP as usize);
    let stamp = now_stamp();
    for e in &entries[skip..] {
        c.execute("INSERT INTO inputs (text, created) VALUES (?1, ?2)", params![e, stamp])?;
    }
    Ok(if entries.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "imported {} input history entries from {} in {} (the files are left in place)",
            entries.len() - skip,
            names.join(" and "),
            data_dir.display()
        )]
    })
}

/// The entries of a rustyline history file: after a `#V2` line, `\n` and `\\` are escapes;
/// without it (version 1), each line is an entry as it is.
fn rustyline_entries(text: &str) -> Vec<String> {
    let mut lines = text.lines();
    let v2 = text.starts_with("#V2");
    if v2 {
        lines.next();
    }
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            if !v2 {
                return l.to_string();
            }
            let mut out = String::with_capacity(l.len());
            let mut chars = l.chars();
            while let Some(ch) = chars.next() {
                match (ch, ch == '\\') {
                    (_, true) => match chars.next() {
                        Some('n') => out.push('\n'),
                        Some(other) => out.push(other),
                        None => out.push('\\'),
                    },
                    (ch, false) => out.push(ch),
                }
            }
            out
        })
        .collect()
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

    #[test]
    fn a_version_1_rustyline_file_is_read_as_it_is() {
        assert_eq!(rustyline_entries("plain \\n text\nsecond\n"), ["plain \\n text", "second"]);
    }
}
