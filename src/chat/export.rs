//! Sessions out of and into the session database: `moat sessions export|import`.
//!
//! JSON export is the session file format of earlier versions (`version`, `name`, `model`,
//! `sampling`, `messages`, `created`, `updated`) with the active path as `messages`, so any
//! export imports into an older moat too. With every branch (`--all`) it adds `tree`: each stored
//! message as `{id, parent, role, content, cut_off?, created, stats?}`, parents before children,
//! and `head`, the id that ends the active path. Markdown export is for reading: the active path,
//! then (with every branch) each other branch from where it leaves the active one.

use super::db;
use super::store::{path_to, role_from, role_name, SavedSession, SessionError, SessionStore};
use super::{Message, Role};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// One stored message in a JSON export with every branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeMessage {
    pub id: i64,
    pub parent: Option<i64>,
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_off: Option<String>,
    pub created: String,
    /// The reply's figures (model, tokens, ttft, tok/s, stop reason), as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TreePart {
    #[serde(default)]
    tree: Option<Vec<TreeMessage>>,
    #[serde(default)]
    head: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path} is not a moat session file: {why}")]
    Invalid { path: String, why: String },
    #[error("{0}")]
    Store(#[from] SessionError),
}

impl SessionStore {
    /// Session `name` as JSON or Markdown text: its active path, or every branch with `all`.
    /// Errors: [`SessionError::NotFound`], database errors.
    pub fn export(&self, name: &str, format: Format, all: bool) -> Result<String, SessionError> {
        let session = self.load(name)?;
        match format {
            Format::Json => {
                let mut v = serde_json::to_value(&session).expect("a session serialises");
                if all {
                    let conv = self.conversation_id(name)?;
                    let tree = self.tree(conv)?;
                    v["tree"] = serde_json::to_value(tree).expect("messages serialise");
                    v["head"] = session.sync.path.last().map(|(id, _)| *id).into();
                }
                Ok(serde_json::to_string_pretty(&v).expect("a session serialises") + "\n")
            }
            Format::Markdown => {
                let mut out = markdown_head(&session);
                let branches = self.branches(name)?;
                if let (true, Some(active)) = (branches.len() > 1, branches.iter().find(|b| b.active)) {
                    out.push_str(&format!("- branch {} of {}\n", active.n, branches.len()));
                }
                out.push('\n');
                push_messages(&mut out, &session.messages);
                if all {
                    for b in branches.iter().filter(|b| !b.active) {
                        let path = self.sqlite_result(path_to(self.conn(), b.leaf))?;
                        out.push_str(&format!(
                            "---\n\n## Branch {} (after message {} of the active one)\n\n",
                            b.n, b.shared
                        ));
                        let rest: Vec<Message> = path.into_iter().skip(b.shared).map(|(_, m)| m).collect();
                        push_messages(&mut out, &rest);
                    }
                }
                Ok(out)
            }
        }
    }

    fn sqlite_result<T>(&self, r: rusqlite::Result<T>) -> Result<T, SessionError> {
        r.map_err(|e| self.db_error(e))
    }

    /// Every message of conversation `conv`, parents before children.
    fn tree(&self, conv: i64) -> Result<Vec<TreeMessage>, SessionError> {
        let mut st = self
            .conn()
            .prepare(
                "SELECT id, parent_id, role, content, cut_off, created, stats FROM messages
                 WHERE conversation_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.db_error(e))?;
        let rows = st.query_map([conv], |r| {
            let stats: Option<String> = r.get(6)?;
            Ok(TreeMessage {
                id: r.get(0)?,
                parent: r.get(1)?,
                role: role_from(&r.get::<_, String>(2)?),
                content: r.get(3)?,
                cut_off: r.get(4)?,
                created: r.get(5)?,
                stats: stats.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s))),
            })
        });
        self.sqlite_result(rows.and_then(|rows| rows.collect()))
    }

    /// Adds the session in `bytes` (a JSON export, or a session file of an earlier version) under
    /// its own name or `name`, in one transaction; returns the name. `path` names the file in
    /// errors. Errors: [`ImportError::Invalid`] (not JSON, bad sampling values, a `tree` whose
    /// parents do not come first), [`SessionError::Exists`], [`SessionError::BadName`], database
    /// errors.
    pub fn import(&self, path: &str, bytes: &[u8], name: Option<&str>) -> Result<String, ImportError> {
        let invalid = |why: String| ImportError::Invalid { path: path.into(), why };
        let session: SavedSession = super::store::parse(bytes).map_err(invalid)?;
        if session.version > super::store::VERSION {
            return Err(invalid(format!(
                "version {} is newer than this moat reads ({}); export it again from the moat that wrote it",
                session.version,
                super::store::VERSION
            )));
        }
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let extra: TreePart = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let name = name.unwrap_or(&session.name).to_string();
        Self::check_name(&name)?;
        let tree = match extra.tree {
            Some(tree) => {
                check_tree(&tree, extra.head).map_err(invalid)?;
                tree
            }
            None => linear_tree(&session.messages, &session.updated),
        };
        let head = extra.head.or(tree.last().map(|m| m.id));
        let sampling = serde_json::to_string(&session.sampling).expect("sampling serialises");
        let done = self.sqlite_result(db::write_txn(self.conn(), |c| {
            let exists = c.query_row("SELECT 1 FROM conversations WHERE name = ?1", [&name], |_| Ok(()));
            if exists.is_ok() {
                return Ok(false);
            }
            c.execute(
                "INSERT INTO conversations (name, model, sampling, created, updated) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, session.model, sampling, session.created, session.updated],
            )?;
            let conv = c.last_insert_rowid();
            let mut ids = std::collections::HashMap::new();
            for m in &tree {
                let content = if m.role == Role::Assistant {
                    m.content.clone()
                } else {
                    crate::text_input::normalize_newlines(&m.content).into_owned()
                };
                c.execute(
                    "INSERT INTO messages (conversation_id, parent_id, role, content, cut_off, created, stats)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        conv,
                        m.parent.and_then(|p| ids.get(&p).copied()),
                        role_name(m.role),
                        content,
                        m.cut_off,
                        m.created,
                        m.stats.as_ref().map(|s| s.to_string())
                    ],
                )?;
                ids.insert(m.id, c.last_insert_rowid());
            }
            let head = head.and_then(|h| ids.get(&h).copied());
            c.execute("UPDATE conversations SET head = ?2 WHERE id = ?1", params![conv, head])?;
            Ok(true)
        }))?;
        if done {
            Ok(name)
        } else {
            Err(SessionError::Exists(name).into())
        }
    }
}

/// A flat message list as a tree: each message's parent is the one before.
fn linear_tree(messages: &[Message], created: &str) -> Vec<TreeMessage> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| TreeMessage {
            id: i as i64 + 1,
            parent: (i > 0).then_some(i as i64),
            role: m.role,
            content: m.content.clone(),
            cut_off: m.cut_off.clone(),
            created: created.into(),
            stats: None,
        })
        .collect()
}

/// A tree from a file is hand-editable: ids unique, each parent listed before its child (so there
/// is no cycle), the head one of the ids.
fn check_tree(tree: &[TreeMessage], head: Option<i64>) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for m in tree {
        if let Some(p) = m.parent {
            if !seen.contains(&p) {
                return Err(format!("tree: message {} comes before its parent {p}, or the parent is missing", m.id));
            }
        }
        if !seen.insert(m.id) {
            return Err(format!("tree: message id {} appears twice", m.id));
        }
    }
    match head {
        Some(h) if !seen.contains(&h) => Err(format!("head {h} is not a message of the tree")),
        // The head ends the active path: a message with replies below it would hide them.
        Some(h) if tree.iter().any(|m| m.parent == Some(h)) => {
            Err(format!("head {h} has messages below it; it must be the last message of a branch"))
        }
        _ => Ok(()),
    }
}

fn markdown_head(session: &SavedSession) -> String {
    format!(
        "# Session {}\n\n- model: {}\n- created: {}\n- updated: {}\n",
        session.name, session.model, session.created, session.updated
    )
}

/// `session` (its messages as held, e.g. in memory when the database is unavailable) as the text
/// of a file named `path`: Markdown for `.md`/`.markdown`, otherwise the JSON session format,
/// which `moat sessions import` and `/load FILE` read back.
pub fn session_file(session: &SavedSession, path: &std::path::Path) -> String {
    let md = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("md") || e.eq_ignore_ascii_case("markdown"));
    if md {
        let mut out = markdown_head(session);
        out.push('\n');
        push_messages(&mut out, &session.messages);
        out
    } else {
        serde_json::to_string_pretty(session).expect("a session serialises") + "\n"
    }
}

fn push_messages(out: &mut String, messages: &[Message]) {
    for m in messages {
        let role = match m.role {
            Role::System => "System",
            Role::User => "User",
            Role::Assistant => "Assistant",
        };
        out.push_str(&format!("### {role}\n\n{}\n\n", m.content.trim_end()));
        if let Some(why) = &m.cut_off {
            out.push_str(&format!("> (cut off: {why})\n\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::store::{Branch, SyncPoint, VERSION};
    use crate::config::SamplingConfig;

    fn contents(ms: &[Message]) -> Vec<&str> {
        ms.iter().map(|m| m.content.as_str()).collect()
    }

    /// A session "t": q1 → a1 → q2 → a2, then /regen (a2') and /edit (q2' → a2'').
    fn branched(store: &SessionStore) {
        let mut s = SavedSession {
            version: VERSION,
            name: "t".into(),
            model: "m".into(),
            sampling: SamplingConfig::default(),
            messages: Vec::new(),
            created: "2026-11-01 10:00:00".into(),
            updated: "2026-11-01 10:00:00".into(),
            sync: SyncPoint::default(),
        };
        let mut sync = SyncPoint::default();
        for m in [Message::user("q1"), Message::assistant("a1"), Message::user("q2")] {
            s.messages.push(m);
            s.messages = store.save(&s, &mut sync, None).unwrap();
        }
        s.messages.push(Message::assistant("a2"));
        s.messages = store.save(&s, &mut sync, Some(r#"{"model":"m","gen_tokens":2}"#)).unwrap();
        s.messages.pop();
        s.messages.push(Message::assistant("a2'"));
        s.messages = store.save(&s, &mut sync, None).unwrap();
        s.messages.truncate(2);
        s.messages.push(Message::user("q2'"));
        s.messages.push(Message::assistant("a2''"));
        store.save(&s, &mut sync, None).unwrap();
    }

    fn id_of(store: &SessionStore, conv: &str, content: &str) -> i64 {
        store
            .conn()
            .query_row(
                "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.name = ?1 AND m.content = ?2",
                [conv, content],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn branches_list_switch_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        branched(&store);
        let b = store.branches("t").unwrap();
        assert_eq!(
            b.iter().map(|b| (b.messages, b.shared, b.active)).collect::<Vec<_>>(),
            [(4, 2, false), (4, 2, false), (4, 4, true)]
        );
        assert_eq!(b.iter().map(|b| b.first.content.as_str()).collect::<Vec<_>>(), ["q2", "q2", "a2''"]);
        assert_eq!(b.iter().map(|b| b.last.content.as_str()).collect::<Vec<_>>(), ["a2", "a2'", "a2''"]);
        let s = store.switch_branch("t", 1).unwrap();
        assert_eq!(contents(&s.messages), ["q1", "a1", "q2", "a2"]);
        // Reopened (a new process), the switched-to branch is the session.
        let again = SessionStore::open(dir.path()).unwrap();
        assert_eq!(contents(&again.load("t").unwrap().messages), ["q1", "a1", "q2", "a2"]);
        let b = again.branches("t").unwrap();
        assert_eq!(b.iter().map(|b| (b.shared, b.active)).collect::<Vec<_>>(), [(4, true), (3, false), (2, false)]);
        assert!(matches!(again.switch_branch("t", 4), Err(SessionError::NoBranch { n: 4, .. })));
        assert!(matches!(again.switch_branch("t", 0), Err(SessionError::NoBranch { n: 0, .. })));
        // A turn on the switched-to branch extends it.
        let mut s = again.load("t").unwrap();
        let mut sync = std::mem::take(&mut s.sync);
        s.messages.push(Message::user("q3"));
        again.save(&s, &mut sync, None).unwrap();
        assert_eq!(contents(&again.load("t").unwrap().messages), ["q1", "a1", "q2", "a2", "q3"]);
        assert_eq!(again.branches("t").unwrap().len(), 3);
        let listed = again.list();
        assert_eq!((listed[0].messages, listed[0].stored, listed[0].branches), (5, 8, 3));
    }

    #[test]
    fn opening_a_search_hit_off_the_active_path_switches_to_its_branch() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        branched(&store);
        let (s, at) = store.open_message(id_of(&store, "t", "a2''")).unwrap();
        assert_eq!((contents(&s.messages), at), (vec!["q1", "a1", "q2'", "a2''"], 3));
        let (s, at) = store.open_message(id_of(&store, "t", "q2")).unwrap();
        assert_eq!((contents(&s.messages), at), (vec!["q1", "a1", "q2", "a2'"], 2), "the newest branch below q2");
        assert!(matches!(store.open_message(999), Err(SessionError::NotFound(_))));
    }

    #[test]
    fn export_all_then_import_keeps_the_tree_and_the_active_branch() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        branched(&store);
        store.switch_branch("t", 2).unwrap();
        let json = store.export("t", Format::Json, true).unwrap();
        // The active path alone is a session file of earlier versions.
        let plain = store.export("t", Format::Json, false).unwrap();
        let old = crate::chat::store::parse(plain.as_bytes()).unwrap();
        assert_eq!(contents(&old.messages), ["q1", "a1", "q2", "a2'"]);
        assert!(!plain.contains("\"tree\""));
        assert!(matches!(
            store.import("t.json", json.as_bytes(), None),
            Err(ImportError::Store(SessionError::Exists(_)))
        ));
        assert_eq!(store.import("t.json", json.as_bytes(), Some("copy")).unwrap(), "copy");
        assert_eq!(contents(&store.load("copy").unwrap().messages), ["q1", "a1", "q2", "a2'"]);
        let shape = |v: &[Branch]| {
            v.iter().map(|b| (b.messages, b.shared, b.active, b.first.content.clone())).collect::<Vec<_>>()
        };
        assert_eq!(shape(&store.branches("t").unwrap()), shape(&store.branches("copy").unwrap()));
        let stats: String = store
            .conn()
            .query_row("SELECT stats FROM messages WHERE id = ?1", [id_of(&store, "copy", "a2")], |r| r.get(0))
            .unwrap();
        assert!(stats.contains("\"gen_tokens\":2"), "{stats}");
        // A plain file (or an old session file) imports as one branch.
        assert_eq!(store.import("p.json", plain.as_bytes(), Some("plain")).unwrap(), "plain");
        assert_eq!(store.branches("plain").unwrap().len(), 1);
        assert_eq!(contents(&store.load("plain").unwrap().messages), ["q1", "a1", "q2", "a2'"]);
    }

    #[test]
    fn a_bad_file_is_refused_in_one_line_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        branched(&store);
        let json = store.export("t", Format::Json, true).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["tree"][1]["parent"] = 99.into();
        let bad = serde_json::to_vec(&v).unwrap();
        v["tree"][1]["parent"] = 1.into();
        v["head"] = 1.into();
        let inner_head = serde_json::to_vec(&v).unwrap();
        v["head"] = serde_json::Value::Null;
        v["version"] = 99.into();
        let future = serde_json::to_vec(&v).unwrap();
        let cases: [(&[u8], &str); 6] = [
            (&bad, "parent 99"),
            (&inner_head, "head 1 has messages below it"),
            (&future, "version 99 is newer"),
            (b"{\"name\": \"x\"", "not a moat session file"),
            (b"\xff\xfe garbage", "not a moat session file"),
            (b"", "not a moat session file"),
        ];
        for (bytes, want) in cases {
            let err = store.import("f.json", bytes, Some("new")).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("f.json") && !err.contains('\n'), "{err}");
        }
        assert!(matches!(store.load("new"), Err(SessionError::NotFound(_))));
        let bad_name = store.import("f.json", json.as_bytes(), Some("../x"));
        assert!(matches!(bad_name, Err(ImportError::Store(SessionError::BadName(_)))));
    }

    #[test]
    fn markdown_export_reads_as_a_transcript_with_the_other_branches_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        branched(&store);
        let md = store.export("t", Format::Markdown, false).unwrap();
        assert!(md.starts_with("# Session t\n") && md.contains("- branch 3 of 3\n"), "{md}");
        assert!(md.contains("### User\n\nq2'\n") && !md.contains("## Branch"), "{md}");
        let all = store.export("t", Format::Markdown, true).unwrap();
        assert!(all.contains("a2''\n\n---\n\n## Branch 1 (after message 2 of the active one)\n\n### User\n\nq2\n\n### Assistant\n\na2\n"), "{all}");
        assert!(
            all.contains("## Branch 2 (after message 2 of the active one)\n\n### User\n\nq2\n\n### Assistant\n\na2'\n"),
            "{all}"
        );
    }
}
