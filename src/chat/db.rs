//! The session database: one SQLite file (`<data dir>/moat.db`, WAL mode) that every moat process
//! shares, so two processes on one conversation append turns instead of overwriting each other's
//! file. The schema carries a version (`PRAGMA user_version`) and [`migrate`] upgrades an older
//! file one step at a time.
//!
//! Tables:
//! - `conversations(id, name UNIQUE, model, sampling JSON, created, updated)`;
//! - `messages(id, conversation_id, parent_id NULL, role, content, cut_off NULL, created, stats
//!   JSON NULL)`: a tree by `parent_id` (a rewrite such as `/system` starts a branch); the active
//!   path of a conversation is the chain that ends at its newest message;
//! - `messages_fts`: an FTS5 index over `messages.content` with the `trigram` tokenizer (so text
//!   without spaces, such as Chinese, matches any 3+ character run), kept in sync by triggers;
//! - `meta(key, value)`: `last` = the name of the conversation saved most recently (`--resume`);
//! - `inputs(id, text, created)`: what was typed at the chat and REPL prompts (Up/Down, Ctrl+R),
//!   newest last, shared by every process;
//! - `conversations.logged`: 1 for a logged one-shot run (`ask --log`, `run --log`);
//! - `conversations.head`: the message that ends the active path (`/branches` moves it); NULL
//!   means the conversation's newest message.

use rusqlite::{params, Connection, ErrorCode};
use std::path::Path;
use std::time::Duration;

/// The schema this build writes. Version 1: conversations and a flat list of messages. 2: the
/// message tree (`parent_id`), per-reply `stats` and `meta`. 3: the FTS5 index. 4: the chosen
/// branch (`conversations.head`), an index of children, and the input history (`inputs`).
pub const SCHEMA_VERSION: i32 = 4;

/// How long a write waits for another process's write before it gives up with [`DbError::Busy`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Not a SQLite file, a corrupt one, or one from a newer moat: never written to.
    #[error("session database {path} is damaged or not a moat database ({why}); it is left as it is: `moat sessions move-aside` renames it so that a new one can start")]
    Damaged { path: String, why: String },
    /// Another process held the database for longer than [`BUSY_TIMEOUT`].
    #[error("session database {path} stayed busy for {}s (another moat process is writing); not saved this time", BUSY_TIMEOUT.as_secs())]
    Busy { path: String },
    /// It cannot be opened or written (a read-only data dir, a full disk, ...).
    #[error("cannot use session database {path}: {why}")]
    Unavailable { path: String, why: String },
}

impl DbError {
    /// Sorts a SQLite error on `path` into damaged / busy / unavailable.
    pub fn from_sqlite(path: &Path, e: rusqlite::Error) -> DbError {
        let path = path.display().to_string();
        let why = one_line(&e.to_string());
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => DbError::Damaged { path, why },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => DbError::Busy { path },
            _ => DbError::Unavailable { path, why },
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Opens (creating when missing) the database at `path` with WAL, foreign keys and the busy
/// timeout set, but does not migrate it: see [`migrate`].
pub fn connect(path: &Path) -> Result<Connection, DbError> {
    let err = |e| DbError::from_sqlite(path, e);
    // A read-write open of a file that is not a database deletes the `-wal` beside it, so an
    // existing file is first read without touching anything: a damaged one stays as it was found.
    if path.exists() {
        let probe = open_untouched(path).map_err(err)?;
        let foreign = version(&probe).and_then(|v| Ok(v == 0 && has_tables(&probe)?)).map_err(err)?;
        if foreign {
            return Err(DbError::Damaged {
                path: path.display().to_string(),
                why: "a SQLite file with tables of another program".into(),
            });
        }
    }
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    // The first statement that reads the file: a file that is not a database fails here.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Unavailable {
            path: path.display().to_string(),
            why: format!("journal mode {mode}, not WAL"),
        });
    }
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").map_err(err)?;
    Ok(conn)
}

/// Opens `path` read-only and immutable (SQLite neither writes nor deletes anything: not the
/// file, not its `-wal` or `-shm`), to look at a file that may be damaged. What it reads is the
/// file as last checkpointed.
pub fn open_untouched(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(&uri, flags)
}

/// Whether the file holds any table: a file at schema version 0 that does is not a new moat
/// database but another program's (migrating it would fail halfway, or worse, succeed).
pub fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get::<_, i64>(0)).map(|n| n > 0)
}

/// The file's schema version (0 for a new, empty file).
pub fn version(conn: &Connection) -> rusqlite::Result<i32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Upgrades the schema from `from` to `to`, one version at a time, setting `user_version` after
/// each step. The caller holds the write transaction, so two processes never both migrate.
pub fn migrate(conn: &Connection, from: i32, to: i32) -> rusqlite::Result<()> {
    for v in from..to {
        match v {
            0 => conn.execute_batch(
                "CREATE TABLE conversations (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    model TEXT NOT NULL,
                    sampling TEXT NOT NULL,
                    created TEXT NOT NULL,
                    updated TEXT NOT NULL);
                 CREATE TABLE messages (
                    id INTEGER PRIMARY KEY,
                    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
                    role TEXT NOT NULL,
                    content TEXT NOT NULL,
                    cut_off TEXT,
                    created TEXT NOT NULL);
                 CREATE INDEX messages_by_conversation ON messages(conversation_id, id);",
            )?,
            1 => conn.execute_batch(
                "ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id);
                 ALTER TABLE messages ADD COLUMN stats TEXT;
                 -- A version-1 conversation was one flat list: each message's parent is the one before.
                 UPDATE messages SET parent_id = (
                    SELECT max(p.id) FROM messages p
                    WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id);
                 CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
            )?,
            2 => conn.execute_batch(
                "CREATE VIRTUAL TABLE messages_fts USING fts5(
                    content, content='messages', content_rowid='id', tokenize='trigram');
                 CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
                    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
                 END;
                 CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
                    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
                 END;
                 CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
                    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
                    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
                 END;
                 INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');",
            )?,
            3 => conn.execute_batch(
                "ALTER TABLE conversations ADD COLUMN head INTEGER;
                 ALTER TABLE conversations ADD COLUMN logged INTEGER NOT NULL DEFAULT 0;
                 CREATE INDEX messages_by_parent ON messages(parent_id);
                 CREATE TABLE inputs (id INTEGER PRIMARY KEY, text TEXT NOT NULL, created TEXT NOT NULL);",
            )?,
            _ => unreachable!("no migration from schema version {v}"),
        }
        conn.pragma_update(None, "user_version", v + 1)?;
    }
    Ok(())
}

/// Runs `f` inside `BEGIN IMMEDIATE … COMMIT` (the write lock is taken up front, so a concurrent
/// writer waits for the busy timeout instead of failing at commit); rolls back on error.
pub fn write_txn<T>(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f(conn).and_then(|t| conn.execute_batch("COMMIT").map(|()| t)) {
        Ok(t) => Ok(t),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// How many input history entries are kept; older ones are deleted as new ones come.
pub const INPUTS_KEPT: i64 = 10_000;

/// Copies the input history files of earlier versions in `data_dir` (`history.jsonl` of the
/// full-screen chat, `repl-history.txt` of the REPL) into `inputs` (in the
/// caller's transaction, when the table is created); returns the line to show when any were.
pub fn import_input_files(c: &Connection, data_dir: &Path, stamp: &str) -> rusqlite::Result<Vec<String>> {
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
    let skip = entries.len().saturating_sub(INPUTS_KEPT as usize);
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
    fn a_version_1_database_migrates_step_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moat.db");
        {
            let conn = connect(&path).unwrap();
            write_txn(&conn, |c| migrate(c, 0, 1)).unwrap();
            conn.execute_batch(
                "INSERT INTO conversations VALUES (1, 'old', 'm', '{}', 't', 't');
                 INSERT INTO messages VALUES (1, 1, 'user', 'hello lighthouse', NULL, 't');
                 INSERT INTO messages VALUES (2, 1, 'assistant', '你好，灯塔看守人', NULL, 't');
                 INSERT INTO messages VALUES (3, 1, 'user', 'more', NULL, 't');",
            )
            .unwrap();
            assert_eq!(version(&conn).unwrap(), 1);
        }
        let conn = connect(&path).unwrap();
        write_txn(&conn, |c| migrate(c, version(c)?, SCHEMA_VERSION)).unwrap();
        assert_eq!(version(&conn).unwrap(), SCHEMA_VERSION);
        let parents: Vec<Option<i64>> = conn
            .prepare("SELECT parent_id FROM messages ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parents, [None, Some(1), Some(2)]);
        // The index was built from the old rows, and new rows join it through the triggers.
        let hits = |q: &str| -> Vec<i64> {
            conn.prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY rowid")
                .unwrap()
                .query_map([q], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(hits("\"lighthouse\""), [1]);
        assert_eq!(hits("\"灯塔看\""), [2]);
        conn.execute("INSERT INTO messages (conversation_id, role, content, created) VALUES (1, 'user', 'a lighthouse again', 't')", [])
            .unwrap();
        assert_eq!(hits("\"lighthouse\""), [1, 4]);
        conn.execute("DELETE FROM messages WHERE id = 4", []).unwrap();
        assert_eq!(hits("\"lighthouse\""), [1]);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_damaged_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moat.db");
        let junk = b"this is not sqlite at all, just some bytes that are long enough to look like a header....";
        std::fs::write(&path, junk).unwrap();
        let wal = dir.path().join("moat.db-wal");
        std::fs::write(&wal, b"whatever was in the write-ahead log").unwrap();
        let Err(err) = connect(&path) else { panic!("refused") };
        assert!(matches!(err, DbError::Damaged { .. }), "{err}");
        let line = err.to_string();
        assert!(line.contains("moat.db") && !line.contains('\n'), "{line}");
        assert_eq!(std::fs::read(&path).unwrap(), junk);
        assert_eq!(std::fs::read(&wal).unwrap(), b"whatever was in the write-ahead log", "the -wal is kept too");
    }

    #[test]
    fn a_version_1_rustyline_file_is_read_as_it_is() {
        assert_eq!(rustyline_entries("plain \\n text\nsecond\n"), ["plain \\n text", "second"]);
    }

    #[test]
    fn a_write_that_waits_too_long_is_busy_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moat.db");
        let a = connect(&path).unwrap();
        let b = connect(&path).unwrap();
        b.busy_timeout(Duration::from_millis(200)).unwrap();
        a.execute_batch("BEGIN IMMEDIATE").unwrap();
        let t = std::time::Instant::now();
        let e = write_txn(&b, |_| Ok(())).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        let err = DbError::from_sqlite(&path, e);
        assert!(matches!(err, DbError::Busy { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
