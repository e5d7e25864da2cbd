//! Saved chats, in the session database ([`super::db`], `<data dir>/moat.db`) that every moat
//! process shares. Each save appends the turn's new messages in one transaction, so a crash or
//! kill never loses a completed turn and two processes on one session never overwrite each other.
//!
//! The merge rule (several processes on one session): a conversation is a line of messages. Before
//! a process appends, it pulls in the messages other processes appended to the conversation's
//! active path since it last looked, puts them after the messages it already shared and before its
//! own new ones, and chains its new messages after them; the returned list is its conversation from
//! then on, so its next prompt sees them. Turns from several processes therefore interleave (a reply
//! can follow another process's question), and none is lost. A process that rewrote its copy
//! (`/system`, `/edit`, `/regen`) starts a branch where its copy leaves the stored path; its new
//! messages become the active path, and the old ones stay in the tree.
//!
//! JSON session files from earlier versions (`<data dir>/sessions/*.json`) are imported when the
//! database is first created; the files are left in place.

use super::db::{self, DbError};
use super::{Message, Role};
use crate::config::SamplingConfig;
use rusqlite::{params, Connection, OptionalExtension};
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
    /// Where these messages stand in the database (empty for a session read from a JSON file).
    #[serde(skip)]
    pub sync: SyncPoint,
}

/// What one process knows of its conversation in the database: `path` holds the database ids of
/// the messages of its copy that are stored (in the copy's order; messages the engine trimmed from
/// the copy are skipped over), and `seen` the newest message id it has looked at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncPoint {
    pub name: String,
    pub path: Vec<(i64, Message)>,
    pub seen: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session name {0:?} is not usable: use letters, digits, '-', '_' or '.', at most 64 characters")]
    BadName(String),
    #[error("no saved session named {0:?}; `/sessions` lists them")]
    NotFound(String),
    #[error("a session named {0:?} already exists; pick another name or remove it first")]
    Exists(String),
    #[error("session {session:?} has no branch {n}; `/branches` lists them")]
    NoBranch { session: String, n: usize },
    #[error("{0}")]
    Db(#[from] DbError),
}

pub struct SessionStore {
    /// Where JSON sessions of earlier versions live (read once, for the import).
    dir: PathBuf,
    db_path: PathBuf,
    conn: Connection,
    notes: Vec<String>,
}

/// One line of `/sessions`.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub name: String,
    pub model: String,
    pub created: String,
    pub updated: String,
    /// Messages on the active path.
    pub messages: usize,
    /// Messages in the whole tree (every branch).
    pub stored: usize,
    /// Leaves of the tree: 1 for a conversation never regenerated or edited.
    pub branches: usize,
    /// A logged one-shot run ([`SessionStore::insert_new`]), not a chat.
    pub logged: bool,
}

/// One branch of a conversation: the path from the root to one leaf of the message tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// 1-based, in the order the branches were started (stable while the tree grows).
    pub n: usize,
    /// The database id of the leaf.
    pub leaf: i64,
    /// Messages from the root to the leaf.
    pub messages: usize,
    /// How many leading messages it shares with the active path (equal to `messages` for the
    /// active branch).
    pub shared: usize,
    /// The first message after the shared part (the leaf for the active branch).
    pub first: Message,
    /// The leaf: the branch's last message.
    pub last: Message,
    /// When the leaf was written (`YYYY-MM-DD HH:MM:SS`, local time).
    pub updated: String,
    pub active: bool,
}

pub const VERSION: u32 = 1;

/// The database file's name in the data dir.
pub const DB_FILE: &str = "moat.db";

/// The message that ends the active path of conversation ?1: its chosen branch (`head`, set by
/// each save and by [`SessionStore::switch_branch`]) or, in a database from before branches, its
/// newest message.
const HEAD: &str = "SELECT coalesce(head, (SELECT max(id) FROM messages WHERE conversation_id = ?1))
        FROM conversations WHERE id = ?1";

/// The active path of conversation ?1: the chain of parents from its head, newest first.
const ACTIVE_PATH: &str = "WITH RECURSIVE path(id, parent_id, role, content, cut_off) AS (
        SELECT id, parent_id, role, content, cut_off FROM messages
        WHERE id = (SELECT coalesce(head, (SELECT max(id) FROM messages WHERE conversation_id = ?1))
                    FROM conversations WHERE id = ?1)
        UNION ALL
        SELECT m.id, m.parent_id, m.role, m.content, m.cut_off FROM messages m JOIN path p ON m.id = p.parent_id)";

impl SessionStore {
    /// Opens `<data_dir>/moat.db`, creating and migrating it as needed; a new database imports the
    /// JSON sessions under `<data_dir>/sessions` (see [`SessionStore::take_notes`] for what to tell
    /// the user). Errors: [`DbError::Damaged`] (never written to), [`DbError::Busy`],
    /// [`DbError::Unavailable`] (e.g. a read-only data dir).
    pub fn open(data_dir: &Path) -> Result<SessionStore, SessionError> {
        let db_path = data_dir.join(DB_FILE);
        let unavailable =
            |e: std::io::Error| DbError::Unavailable { path: db_path.display().to_string(), why: e.to_string() };
        std::fs::create_dir_all(data_dir).map_err(unavailable)?;
        let conn = db::connect(&db_path)?;
        let mut store = SessionStore { dir: data_dir.join("sessions"), db_path, conn, notes: Vec::new() };
        let newer = store.sqlite(db::version(&store.conn))?;
        if newer > db::SCHEMA_VERSION {
            return Err(DbError::Damaged {
                path: store.db_path.display().to_string(),
                why: format!("schema version {newer}: written by a newer moat"),
            }
            .into());
        }
        if newer < db::SCHEMA_VERSION {
            let dir = store.dir.clone();
            let notes = store.sqlite(db::write_txn(&store.conn, |c| {
                // Another process may have migrated while this one waited for the lock.
                let from = db::version(c)?;
                if from >= db::SCHEMA_VERSION {
                    return Ok(Vec::new());
                }
                db::migrate(c, from, db::SCHEMA_VERSION)?;
                let mut notes = if from == 0 { import_json(c, &dir)? } else { Vec::new() };
                if from < 4 {
                    notes.extend(db::import_input_files(c, dir.parent().unwrap_or(&dir), &now_stamp())?);
                }
                Ok(notes)
            }))?;
            store.notes = notes;
        }
        Ok(store)
    }

    /// One-line messages from [`SessionStore::open`] (JSON sessions imported, damaged ones skipped).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db_path
    }

    fn sqlite<T>(&self, r: rusqlite::Result<T>) -> Result<T, SessionError> {
        r.map_err(|e| DbError::from_sqlite(&self.db_path, e).into())
    }

    /// Session names stay a safe, portable alphabet (CJK letters too): they were file names, and
    /// they are typed on command lines.
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

    /// A sync point that makes the next save of `name` start a new active path from its root
    /// (`/save NAME` over another session: its messages stay in the tree, as a branch).
    pub fn branch_point(&self, name: &str) -> Result<SyncPoint, SessionError> {
        let seen: Option<i64> = self.sqlite(self.conn.query_row(
            "SELECT max(m.id) FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.name = ?1",
            [name],
            |r| r.get(0),
        ))?;
        Ok(SyncPoint { name: name.into(), path: Vec::new(), seen: seen.unwrap_or(0).max(1) })
    }

    /// Appends what is new in `s` to the database in one transaction, after pulling in what other
    /// processes appended (see the module docs for the rule); `stats` (JSON) goes with the last new
    /// message when it is a reply. Returns the conversation as this process should now hold it and
    /// updates `sync`. On an error nothing was written and `sync` is unchanged, so the next save
    /// writes this turn too.
    pub fn save(
        &self,
        s: &SavedSession,
        sync: &mut SyncPoint,
        stats: Option<&str>,
    ) -> Result<Vec<Message>, SessionError> {
        Self::check_name(&s.name)?;
        if sync.name != s.name {
            *sync = SyncPoint { name: s.name.clone(), path: Vec::new(), seen: 0 };
        }
        let sampling = serde_json::to_string(&s.sampling).expect("sampling serialises");
        let (merged, next) = self.sqlite(db::write_txn(&self.conn, |c| {
            c.execute(
                "INSERT INTO conversations (name, model, sampling, created, updated) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(name) DO UPDATE SET model = excluded.model, sampling = excluded.sampling, updated = excluded.updated",
                params![s.name, s.model, sampling, s.created, s.updated],
            )?;
            let conv: i64 = c.query_row("SELECT id FROM conversations WHERE name = ?1", [&s.name], |r| r.get(0))?;
            let (kept, mut tip, pulled) = take_in(c, conv, s, sync)?;
            let matched = kept.len();
            let mut path = kept;
            path.extend(pulled.iter().cloned());
            if let Some((id, _)) = pulled.last() {
                tip = Some(*id);
            }
            let now = now_stamp();
            let fresh = &s.messages[matched..];
            for (i, m) in fresh.iter().enumerate() {
                let stats = stats.filter(|_| i + 1 == fresh.len() && m.role == Role::Assistant);
                c.execute(
                    "INSERT INTO messages (conversation_id, parent_id, role, content, cut_off, created, stats)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![conv, tip, role_name(m.role), m.content, m.cut_off, now, stats],
                )?;
                let id = c.last_insert_rowid();
                tip = Some(id);
                path.push((id, m.clone()));
            }
            if let Some(tip) = tip {
                c.execute("UPDATE conversations SET head = ?2 WHERE id = ?1", params![conv, tip])?;
            }
            c.execute(
                "INSERT INTO meta (key, value) VALUES ('last', ?1) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [&s.name],
            )?;
            let seen: i64 =
                c.query_row("SELECT coalesce(max(id), 0) FROM messages WHERE conversation_id = ?1", [conv], |r| r.get(0))?;
            let mut merged = s.messages[..matched].to_vec();
            merged.extend(pulled.into_iter().map(|(_, m)| m));
            merged.extend_from_slice(fresh);
            Ok((merged, SyncPoint { name: s.name.clone(), path, seen }))
        }))?;
        *sync = next;
        Ok(merged)
    }

    /// Takes in what other processes appended to `s`'s conversation since `sync` (the merge rule
    /// of the module docs) without writing anything: returns the conversation as this process
    /// should now hold it (its own unsaved messages last) and updates `sync`. Called before a
    /// prompt is sent, so the prompt holds the other processes' turns; the turn itself is saved,
    /// question and reply together, by [`SessionStore::save`] when the reply is done.
    pub fn refresh(&self, s: &SavedSession, sync: &mut SyncPoint) -> Result<Vec<Message>, SessionError> {
        if sync.name != s.name {
            *sync = SyncPoint { name: s.name.clone(), path: Vec::new(), seen: 0 };
        }
        let conv: Option<i64> = self.sqlite(
            self.conn.query_row("SELECT id FROM conversations WHERE name = ?1", [&s.name], |r| r.get(0)).optional(),
        )?;
        let Some(conv) = conv else { return Ok(s.messages.clone()) };
        let (kept, _, pulled) = self.sqlite(take_in(&self.conn, conv, s, sync))?;
        if pulled.is_empty() {
            return Ok(s.messages.clone());
        }
        let matched = kept.len();
        let mut merged = s.messages[..matched].to_vec();
        merged.extend(pulled.iter().map(|(_, m)| m.clone()));
        merged.extend_from_slice(&s.messages[matched..]);
        let seen = pulled.iter().map(|(id, _)| *id).max().unwrap_or(0).max(sync.seen);
        let mut path = kept;
        path.extend(pulled);
        *sync = SyncPoint { name: s.name.clone(), path, seen };
        Ok(merged)
    }

    /// Stores `s` as a new conversation in one transaction, its messages chained in order and
    /// `stats` (JSON) on the last one when it is a reply. For logged one-shot runs (`moat ask
    /// --log`): unlike [`SessionStore::save`] it never joins an existing conversation (`Ok(false)`,
    /// nothing written, when the name is taken, so the caller picks another) and it leaves the
    /// session `--resume` opens alone. Errors: a bad name, database errors.
    pub fn insert_new(&self, s: &SavedSession, stats: Option<&str>) -> Result<bool, SessionError> {
        Self::check_name(&s.name)?;
        let sampling = serde_json::to_string(&s.sampling).expect("sampling serialises");
        self.sqlite(db::write_txn(&self.conn, |c| {
            let inserted = c.execute(
                "INSERT INTO conversations (name, model, sampling, created, updated, logged) VALUES (?1, ?2, ?3, ?4, ?5, 1)
                 ON CONFLICT(name) DO NOTHING",
                params![s.name, s.model, sampling, s.created, s.updated],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            let conv = c.last_insert_rowid();
            let mut parent: Option<i64> = None;
            for (i, m) in s.messages.iter().enumerate() {
                let stats = stats.filter(|_| i + 1 == s.messages.len() && m.role == Role::Assistant);
                c.execute(
                    "INSERT INTO messages (conversation_id, parent_id, role, content, cut_off, created, stats)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![conv, parent, role_name(m.role), m.content, m.cut_off, s.updated, stats],
                )?;
                parent = Some(c.last_insert_rowid());
            }
            Ok(true)
        }))
    }

    /// The session's active path and settings. Errors: [`SessionError::NotFound`], database errors.
    pub fn load(&self, name: &str) -> Result<SavedSession, SessionError> {
        Self::check_name(name)?;
        let row = self.sqlite(
            self.conn
                .query_row(
                    "SELECT id, model, sampling, created, updated FROM conversations WHERE name = ?1",
                    [name],
                    |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional(),
        )?;
        let Some((conv, model, sampling, created, updated)) = row else {
            return Err(SessionError::NotFound(name.into()));
        };
        let damaged = |why: String| DbError::Damaged { path: self.db_path.display().to_string(), why };
        let sampling: SamplingConfig =
            serde_json::from_str(&sampling).map_err(|e| damaged(format!("session {name}: sampling: {e}")))?;
        let mut path = self.sqlite(active_path(&self.conn, conv))?;
        path.reverse();
        let seen = path.iter().map(|(id, _)| *id).max().unwrap_or(0);
        Ok(SavedSession {
            version: VERSION,
            name: name.into(),
            model,
            sampling,
            messages: path.iter().map(|(_, m)| m.clone()).collect(),
            created,
            updated,
            sync: SyncPoint { name: name.into(), path, seen },
        })
    }

    /// The session saved most recently, for `--resume`.
    pub fn last(&self) -> Option<String> {
        let name: String = self.conn.query_row("SELECT value FROM meta WHERE key = 'last'", [], |r| r.get(0)).ok()?;
        let exists = self.conn.query_row("SELECT 1 FROM conversations WHERE name = ?1", [&name], |_| Ok(())).is_ok();
        (Self::check_name(&name).is_ok() && exists).then_some(name)
    }

    /// Newest first; empty when the database cannot be read.
    pub fn list(&self) -> Vec<SessionSummary> {
        let rows = || -> rusqlite::Result<Vec<SessionSummary>> {
            let mut st = self.conn.prepare(
                "SELECT c.id, c.name, c.model, c.created, c.updated, c.logged,
                    (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id),
                    (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id
                        AND NOT EXISTS (SELECT 1 FROM messages k WHERE k.parent_id = m.id))
                 FROM conversations c ORDER BY c.updated DESC, c.name",
            )?;
            let convs: Vec<(i64, SessionSummary)> = st
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        SessionSummary {
                            name: r.get(1)?,
                            model: r.get(2)?,
                            created: r.get(3)?,
                            updated: r.get(4)?,
                            messages: 0,
                            stored: r.get::<_, i64>(6)? as usize,
                            branches: r.get::<_, i64>(7)? as usize,
                            logged: r.get(5)?,
                        },
                    ))
                })?
                .collect::<Result<_, _>>()?;
            let mut count = self.conn.prepare(&format!("{ACTIVE_PATH} SELECT count(*) FROM path"))?;
            convs
                .into_iter()
                .map(|(id, mut summary)| {
                    summary.messages = count.query_row([id], |r| r.get::<_, i64>(0))? as usize;
                    Ok(summary)
                })
                .collect()
        };
        rows().unwrap_or_default()
    }

    /// The database id of conversation `name`. Errors: [`SessionError::NotFound`].
    pub(super) fn conversation_id(&self, name: &str) -> Result<i64, SessionError> {
        Self::check_name(name)?;
        self.sqlite(
            self.conn.query_row("SELECT id FROM conversations WHERE name = ?1", [name], |r| r.get(0)).optional(),
        )?
        .ok_or_else(|| SessionError::NotFound(name.into()))
    }

    pub(super) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(super) fn db_error(&self, e: rusqlite::Error) -> SessionError {
        DbError::from_sqlite(&self.db_path, e).into()
    }

    /// Deletes the session and every message of it (all branches), in one transaction.
    /// Errors: [`SessionError::NotFound`], database errors.
    pub fn remove(&self, name: &str) -> Result<(), SessionError> {
        let conv = self.conversation_id(name)?;
        self.sqlite(db::write_txn(&self.conn, |c| {
            // Children before parents: the tree's foreign key refuses a parent that is still pointed at.
            c.execute("UPDATE messages SET parent_id = NULL WHERE conversation_id = ?1", [conv])?;
            c.execute("DELETE FROM conversations WHERE id = ?1", [conv])?;
            c.execute("DELETE FROM meta WHERE key = 'last' AND value = ?1", [name])?;
            Ok(())
        }))
    }

    /// Renames a session (and `--resume`'s memory of it). Errors: [`SessionError::BadName`],
    /// [`SessionError::NotFound`], [`SessionError::Exists`], database errors.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), SessionError> {
        Self::check_name(to)?;
        let conv = self.conversation_id(from)?;
        if from == to {
            return Ok(());
        }
        let done = self.sqlite(db::write_txn(&self.conn, |c| {
            if c.query_row("SELECT 1 FROM conversations WHERE name = ?1", [to], |_| Ok(())).optional()?.is_some() {
                return Ok(false);
            }
            c.execute("UPDATE conversations SET name = ?2 WHERE id = ?1", params![conv, to])?;
            c.execute("UPDATE meta SET value = ?2 WHERE key = 'last' AND value = ?1", [from, to])?;
            Ok(true)
        }))?;
        if done {
            Ok(())
        } else {
            Err(SessionError::Exists(to.into()))
        }
    }

    /// The branches of session `name`, in the order they were started. Errors:
    /// [`SessionError::NotFound`], database errors.
    pub fn branches(&self, name: &str) -> Result<Vec<Branch>, SessionError> {
        let conv = self.conversation_id(name)?;
        self.sqlite(branches_of(&self.conn, conv))
    }

    /// Makes branch `n` (1-based, as [`SessionStore::branches`] numbers them) the active path of
    /// `name` and returns the session as it now loads. Errors: [`SessionError::NoBranch`],
    /// [`SessionError::NotFound`], database errors.
    pub fn switch_branch(&self, name: &str, n: usize) -> Result<SavedSession, SessionError> {
        let branches = self.branches(name)?;
        let Some(b) = branches.get(n.wrapping_sub(1)) else {
            return Err(SessionError::NoBranch { session: name.into(), n });
        };
        self.sqlite(self.conn.execute("UPDATE conversations SET head = ?2 WHERE name = ?1", params![name, b.leaf]))?;
        self.load(name)
    }

    /// The messages of branch `n` of `name` (1-based, as [`SessionStore::branches`] numbers
    /// them), root first, without making it the active one (`moat sessions show --branch N`).
    /// Errors: [`SessionError::NoBranch`], [`SessionError::NotFound`], database errors.
    pub fn branch_messages(&self, name: &str, n: usize) -> Result<Vec<Message>, SessionError> {
        let branches = self.branches(name)?;
        let Some(b) = branches.get(n.wrapping_sub(1)) else {
            return Err(SessionError::NoBranch { session: name.into(), n });
        };
        Ok(self.sqlite(path_to(&self.conn, b.leaf))?.into_iter().map(|(_, m)| m).collect())
    }

    /// Checks the database file in `data_dir` without changing anything on disk, not even
    /// SQLite's own -wal/-shm housekeeping (an ordinary open of a damaged file deletes a -wal it
    /// cannot use): the main file is opened read-only and immutable, then its header, schema
    /// version and every page (`PRAGMA quick_check`) are read. For `moat sessions move-aside`,
    /// which keeps what it moves as it was. Errors: [`DbError::Damaged`] (with SQLite's first
    /// finding), [`DbError::Unavailable`] (no file, unreadable).
    pub fn check_file(data_dir: &Path) -> Result<(), SessionError> {
        let path = data_dir.join(DB_FILE);
        let err = |e| DbError::from_sqlite(&path, e);
        let conn = db::open_untouched(&path).map_err(err)?;
        let damaged = |why: String| DbError::Damaged { path: path.display().to_string(), why };
        let found: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0)).map_err(err)?;
        if !found.eq_ignore_ascii_case("ok") {
            return Err(damaged(found.split_whitespace().collect::<Vec<_>>().join(" ")).into());
        }
        let version = db::version(&conn).map_err(err)?;
        if version > db::SCHEMA_VERSION {
            return Err(damaged(format!("schema version {version}: written by a newer moat")).into());
        }
        if version == 0 && db::has_tables(&conn).map_err(err)? {
            return Err(damaged("a SQLite file with tables of another program".into()).into());
        }
        Ok(())
    }

    /// Opens the session that holds message `id` on a branch through it: the active path when
    /// the message is on it, otherwise the newest branch below the message (which becomes the
    /// active one). Returns the session and the message's index in its messages. Errors:
    /// [`SessionError::NotFound`] (no such message), database errors.
    pub fn open_message(&self, id: i64) -> Result<(SavedSession, usize), SessionError> {
        let row: Option<(i64, String)> = self.sqlite(
            self.conn
                .query_row(
                    "SELECT c.id, c.name FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional(),
        )?;
        let Some((conv, name)) = row else { return Err(SessionError::NotFound(format!("message {id}"))) };
        let on_path = |s: &SavedSession| s.sync.path.iter().position(|(m, _)| *m == id);
        let saved = self.load(&name)?;
        if let Some(at) = on_path(&saved) {
            return Ok((saved, at));
        }
        let leaf: i64 = self.sqlite(self.conn.query_row(
            "WITH RECURSIVE below(id) AS (SELECT ?1 UNION ALL SELECT m.id FROM messages m JOIN below b ON m.parent_id = b.id)
             SELECT max(id) FROM below",
            [id],
            |r| r.get(0),
        ))?;
        self.sqlite(self.conn.execute("UPDATE conversations SET head = ?2 WHERE id = ?1", params![conv, leaf]))?;
        let saved = self.load(&name)?;
        let at = on_path(&saved).unwrap_or(0);
        Ok((saved, at))
    }
}

/// The active path of `conv`, newest first.
fn active_path(c: &Connection, conv: i64) -> rusqlite::Result<Vec<(i64, Message)>> {
    let mut st = c.prepare_cached(&format!("{ACTIVE_PATH} SELECT id, role, content, cut_off FROM path"))?;
    let rows = st.query_map([conv], |r| {
        let mut m = Message::new(role_from(&r.get::<_, String>(1)?), r.get::<_, String>(2)?);
        m.cut_off = r.get(3)?;
        Ok((r.get(0)?, m))
    })?;
    rows.collect()
}

/// The branches of `conv` (see [`SessionStore::branches`]).
fn branches_of(c: &Connection, conv: i64) -> rusqlite::Result<Vec<Branch>> {
    let mut active: Vec<i64> = active_path(c, conv)?.into_iter().map(|(id, _)| id).collect();
    active.reverse();
    let mut st = c.prepare_cached(
        "SELECT id, created FROM messages m WHERE conversation_id = ?1
            AND NOT EXISTS (SELECT 1 FROM messages k WHERE k.parent_id = m.id) ORDER BY id",
    )?;
    let leaves: Vec<(i64, String)> = st.query_map([conv], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut paths = Vec::with_capacity(leaves.len());
    for (leaf, updated) in leaves {
        paths.push((path_to(c, leaf)?, leaf, updated));
    }
    // A branch started with its first message on no other branch; ordering by that message (not
    // by the leaf) keeps a branch's number when it grows.
    let mut on = std::collections::HashMap::new();
    for (path, _, _) in &paths {
        for (id, _) in path {
            *on.entry(*id).or_insert(0usize) += 1;
        }
    }
    let start =
        |path: &[(i64, Message)], leaf: i64| path.iter().find(|(id, _)| on[id] == 1).map_or(leaf, |(id, _)| *id);
    paths.sort_by_key(|(path, leaf, _)| (start(path, *leaf), *leaf));
    let mut out = Vec::new();
    for (i, (path, leaf, updated)) in paths.into_iter().enumerate() {
        let shared = path.iter().zip(&active).take_while(|((a, _), b)| a == *b).count();
        let first = path.get(shared).or(path.last()).map(|(_, m)| m.clone()).unwrap_or_else(|| Message::user(""));
        out.push(Branch {
            n: i + 1,
            leaf,
            messages: path.len(),
            shared,
            first,
            last: path.last().map(|(_, m)| m.clone()).unwrap_or_else(|| Message::user("")),
            updated,
            active: active.last() == Some(&leaf),
        });
    }
    Ok(out)
}

/// The messages from the root of the tree to `leaf`, oldest first.
pub(super) fn path_to(c: &Connection, leaf: i64) -> rusqlite::Result<Vec<(i64, Message)>> {
    let mut st = c.prepare_cached(
        "WITH RECURSIVE path(id, parent_id, role, content, cut_off) AS (
            SELECT id, parent_id, role, content, cut_off FROM messages WHERE id = ?1
            UNION ALL
            SELECT m.id, m.parent_id, m.role, m.content, m.cut_off FROM messages m JOIN path p ON m.id = p.parent_id)
         SELECT id, role, content, cut_off FROM path",
    )?;
    let mut path: Vec<(i64, Message)> = st
        .query_map([leaf], |r| {
            let mut m = Message::new(role_from(&r.get::<_, String>(1)?), r.get::<_, String>(2)?);
            m.cut_off = r.get(3)?;
            Ok((r.get(0)?, m))
        })?
        .collect::<Result<_, _>>()?;
    path.reverse();
    Ok(path)
}

/// The stored messages of `s` (in its order, trimmed ones skipped), its last stored message's id,
/// and what other processes appended after that on the active path (see [`pull`]).
#[allow(clippy::type_complexity)]
fn take_in(
    c: &Connection,
    conv: i64,
    s: &SavedSession,
    sync: &SyncPoint,
) -> rusqlite::Result<(Vec<(i64, Message)>, Option<i64>, Vec<(i64, Message)>)> {
    let (mut kept, mut j) = (Vec::new(), 0);
    for m in &s.messages {
        match sync.path[j..].iter().position(|(_, p)| p == m) {
            Some(k) => {
                kept.push(sync.path[j + k].clone());
                j += k + 1;
            }
            None => break,
        }
    }
    let last_j = j.checked_sub(1);
    let linear = last_j.map_or(sync.path.is_empty(), |l| l + 1 == sync.path.len());
    let tip = last_j.map(|l| sync.path[l].0);
    let pulled = if linear { pull(c, conv, tip, sync.seen)? } else { Vec::new() };
    Ok((kept, tip, pulled))
}

/// What other processes appended after `tip` on the active path of `conv` (oldest first): nothing
/// when `tip` is no longer on it (someone branched), or when this process starts a branch from the
/// root (`tip` none, `seen` set).
fn pull(c: &Connection, conv: i64, tip: Option<i64>, seen: i64) -> rusqlite::Result<Vec<(i64, Message)>> {
    if tip.is_none() && seen > 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut st = c.prepare_cached("SELECT parent_id, role, content, cut_off FROM messages WHERE id = ?1")?;
    let mut cur: Option<i64> = c.query_row(HEAD, [conv], |r| r.get(0))?;
    while let Some(id) = cur {
        if Some(id) == tip {
            break;
        }
        if id <= seen {
            return Ok(Vec::new());
        }
        let (parent, m) = st.query_row([id], |r| {
            let mut m = Message::new(role_from(&r.get::<_, String>(1)?), r.get::<_, String>(2)?);
            m.cut_off = r.get(3)?;
            Ok((r.get::<_, Option<i64>>(0)?, m))
        })?;
        out.push((id, m));
        cur = parent;
    }
    if cur.is_none() && tip.is_some() {
        return Ok(Vec::new());
    }
    out.reverse();
    Ok(out)
}

pub(super) fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

pub(super) fn role_from(s: &str) -> Role {
    match s {
        "system" => Role::System,
        "assistant" => Role::Assistant,
        _ => Role::User,
    }
}

/// Copies `<dir>/*.json` sessions into a new database (in the caller's transaction); returns the
/// lines to show: one per damaged file skipped, one saying what was imported.
fn import_json(c: &Connection, dir: &Path) -> rusqlite::Result<Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut notes, mut imported) = (Vec::new(), 0);
    for file in &files {
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        let session = match std::fs::read(file).map_err(|e| e.to_string()).and_then(|b| parse(&b)) {
            Ok(s) if SessionStore::check_name(&name).is_ok() => s,
            Ok(_) => {
                notes.push(format!("skipped session file {}: its name is not a usable session name", file.display()));
                continue;
            }
            Err(why) => {
                notes.push(format!(
                    "skipped damaged session file {} ({})",
                    file.display(),
                    why.lines().next().unwrap_or("")
                ));
                continue;
            }
        };
        let sampling = serde_json::to_string(&session.sampling).expect("sampling serialises");
        c.execute(
            "INSERT INTO conversations (name, model, sampling, created, updated) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, session.model, sampling, session.created, session.updated],
        )?;
        let conv = c.last_insert_rowid();
        let mut parent: Option<i64> = None;
        for m in &session.messages {
            c.execute(
                "INSERT INTO messages (conversation_id, parent_id, role, content, cut_off, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![conv, parent, role_name(m.role), m.content, m.cut_off, session.updated],
            )?;
            parent = Some(c.last_insert_rowid());
        }
        imported += 1;
    }
    if let Ok(last) = std::fs::read_to_string(dir.join("last")) {
        let last = last.trim();
        if SessionStore::check_name(last).is_ok() {
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last', ?1)", [last])?;
        }
    }
    if imported > 0 {
        notes.push(format!(
            "imported {imported} saved session(s) from {} into the session database (the JSON files are left in place)",
            dir.display()
        ));
    }
    Ok(notes)
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

/// Local time as `YYYY-MM-DD HH:MM:SS`, for the `created`/`updated` fields.
pub fn now_stamp() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// A fresh session name from the clock, e.g. `2026-11-26-0822-15`.
pub fn fresh_name() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d-%H%M-%S").to_string()
}

#[cfg(test)]
mod tests;
