//! `moat sessions list|show|rm|rename|export|import|move-aside` and `moat history search`: the
//! session database ([`crate::chat::store`]) from the command line.
//!
//! Text that came from the database (names, models, messages) reaches a terminal only through the
//! sanitiser (`sayln!`, [`sanitize`]); JSON and exported files stay byte-exact. Colour (search
//! highlights, role headers) only when stdout is a terminal and `NO_COLOR` is unset or empty, as in
//! the REPL.

use super::args::{ExportFormat, HistoryCommand, HistorySearchArgs, RoleArg, SessionsCommand};
use super::Failure;
use crate::chat::db::DbError;
use crate::chat::export::{Format, ImportError};
use crate::chat::search::{SearchError, SearchHit, SearchQuery};
use crate::chat::store::{SessionError, SessionStore, SessionSummary, DB_FILE};
use crate::chat::{Message, Role};
use crate::config::Paths;
use crate::exit;
use crate::render::{for_terminal, sanitize};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The largest file `moat sessions import` reads, in bytes (64 MiB): far above any conversation,
/// small enough to hold in memory twice while it is parsed.
pub const MAX_IMPORT_BYTES: u64 = 64 << 20;

/// The widest model name `moat sessions list` shows, in terminal columns (longer ones end in `…`).
const MODEL_COLUMNS: usize = 40;

/// The most characters of a name or query that an error message repeats (longer ones end in `…`):
/// a mistyped 5,000-character argument should not fill the screen.
const ECHO_CHARS: usize = 80;

pub fn run(cmd: SessionsCommand) -> Result<i32, Failure> {
    match cmd {
        SessionsCommand::List { json, all } => list(&open_store()?, json, all),
        SessionsCommand::Show { name, branch } => show(&open_store()?, &name, branch),
        SessionsCommand::Rm { names } => rm(&open_store()?, &names),
        SessionsCommand::Rename { old, new } => {
            open_store()?.rename(&old, &new).map_err(session_failure)?;
            sayln!("renamed {old} to {new}");
            Ok(0)
        }
        SessionsCommand::Export { name, format, all, output, force } => {
            export(&open_store()?, &name, format, all, output.as_deref(), force)
        }
        SessionsCommand::Import { files, name } => import(&files, name.as_deref()),
        SessionsCommand::MoveAside { force } => move_aside(&data_dir()?, force),
    }
}

pub fn history(cmd: HistoryCommand) -> Result<i32, Failure> {
    match cmd {
        HistoryCommand::Search(args) => search(&open_store()?, args),
    }
}

fn data_dir() -> Result<PathBuf, Failure> {
    Ok(Paths::from_env()?.data_dir)
}

/// The session database; unlike the chat (which goes on in memory), these commands have nothing
/// to do without it, so every error is a one-line failure.
fn open_store() -> Result<SessionStore, Failure> {
    let mut store = SessionStore::open(&data_dir()?).map_err(session_failure)?;
    for note in store.take_notes() {
        warnln!("moat: {note}");
    }
    Ok(store)
}

/// A store error as a failure: what the user named wrongly is bad usage (exit 2), a database that
/// cannot be used is a runtime failure (exit 1). The store's own wording points at the chat's
/// slash commands; here the commands are `moat sessions …`.
fn session_failure(e: SessionError) -> Failure {
    match e {
        SessionError::NotFound(name) => {
            Failure::usage(format!("no saved session named {:?}; `moat sessions list` lists them", echo(&name)))
        }
        SessionError::NoBranch { session, n } => {
            Failure::usage(format!("session {session:?} has no branch {n}; `moat sessions show {session}` lists them"))
        }
        // The store's own wording, with the name cut to what a terminal line can hold.
        SessionError::BadName(name) => Failure::usage(SessionError::BadName(echo(&name)).to_string()),
        SessionError::Exists(name) => Failure::usage(SessionError::Exists(echo(&name)).to_string()),
        e @ SessionError::Db(_) => Failure::runtime(e.to_string()),
    }
}

/// `text` as an error message repeats it: at most [`ECHO_CHARS`] characters, ending in `…` when
/// cut (on a character boundary, so CJK text stays whole characters).
fn echo(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Styled output: a terminal, and `NO_COLOR` unset or empty (the REPL's rule).
fn color_on() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` cut to at most `columns` terminal columns (ending in `…` when cut).
fn fit(text: &str, columns: usize) -> String {
    if text.width() <= columns {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > columns {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `text` padded with spaces to `columns` terminal columns (CJK characters take two).
fn pad(text: &str, columns: usize) -> String {
    format!("{text}{}", " ".repeat(columns.saturating_sub(text.width())))
}

/// The rows of `moat sessions list` as lines: a header, then one line per session.
fn table(rows: &[SessionSummary]) -> Vec<String> {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|s| {
            [
                sanitize(&s.name).into_owned(),
                s.messages.to_string(),
                if s.branches > 1 { s.branches.to_string() } else { String::new() },
                fit(&sanitize(&s.model), MODEL_COLUMNS),
                sanitize(&s.updated).into_owned(),
            ]
        })
        .collect();
    let header = ["NAME", "MESSAGES", "BRANCHES", "MODEL", "UPDATED"];
    let widths: Vec<usize> =
        (0..5).map(|i| cells.iter().map(|c| c[i].width()).chain([header[i].width()]).max().unwrap_or(0)).collect();
    let line = |c: [&str; 5]| {
        format!(
            "{}  {:>w1$}  {:>w2$}  {}  {}",
            pad(c[0], widths[0]),
            c[1],
            c[2],
            pad(c[3], widths[3]),
            c[4],
            w1 = widths[1],
            w2 = widths[2]
        )
        .trim_end()
        .to_string()
    };
    let mut out = vec![line(header)];
    out.extend(cells.iter().map(|c| line([&c[0], &c[1], &c[2], &c[3], &c[4]])));
    out
}

fn list(store: &SessionStore, json: bool, all: bool) -> Result<i32, Failure> {
    let (shown, hidden): (Vec<SessionSummary>, Vec<SessionSummary>) =
        store.list().into_iter().partition(|s| all || !s.logged);
    if json {
        let rows: Vec<serde_json::Value> = shown
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "model": s.model, "created": s.created, "updated": s.updated,
                    "messages": s.messages, "stored": s.stored, "branches": s.branches,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if shown.is_empty() {
        warnln!("moat: no saved sessions");
    } else {
        for line in table(&shown) {
            println!("{line}");
        }
    }
    if !hidden.is_empty() {
        warnln!("moat: {} logged run(s) (ask-*, run-*) not shown; --all lists them too", hidden.len());
    }
    Ok(0)
}

/// The first words of `text` on one line, at most `columns` terminal columns.
fn first_words(text: &str, columns: usize) -> String {
    fit(&sanitize(text).split_whitespace().collect::<Vec<_>>().join(" "), columns)
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn show(store: &SessionStore, name: &str, branch: Option<usize>) -> Result<i32, Failure> {
    let saved = store.load(name).map_err(session_failure)?;
    let branches = store.branches(name).map_err(session_failure)?;
    let messages: Vec<Message> = match branch {
        Some(n) => store.branch_messages(name, n).map_err(session_failure)?,
        None => saved.messages.clone(),
    };
    let color = color_on();
    sayln!("{} · {} · {} messages · updated {}", saved.name, saved.model, messages.len(), saved.updated);
    let active = branches.iter().find(|b| b.active).map_or(1, |b| b.n);
    match branch {
        Some(n) if n != active => sayln!("branch {n} of {} (branch {active} is the active one)", branches.len()),
        _ if branches.len() > 1 => sayln!("branch {active} of {} (the active one)", branches.len()),
        _ => {}
    }
    for m in &messages {
        let label = role_label(m.role);
        println!();
        if color {
            println!("\x1b[1m── {label} ──\x1b[0m");
        } else {
            println!("── {label} ──");
        }
        sayln!("{}", m.content.trim_end());
        if let Some(why) = &m.cut_off {
            sayln!("[cut off: {why}]");
        }
    }
    if branches.len() > 1 {
        sayln!();
        sayln!("branches (`moat sessions show {name} --branch N` shows one):");
        sayln!("     N  MESSAGES  SHARED  LAST MESSAGE");
        for b in &branches {
            sayln!(
                "  {} {:>2}  {:>8}  {:>6}  {}",
                if b.active { '*' } else { ' ' },
                b.n,
                b.messages,
                b.shared,
                first_words(&b.last.content, 60)
            );
        }
    }
    Ok(0)
}

/// Removes every named session, or none: a mistyped name among several stops the command before
/// anything is deleted, so that running it again once fixed does what was meant.
fn rm(store: &SessionStore, names: &[String]) -> Result<i32, Failure> {
    let mut unique: Vec<&String> = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    let mut code = 0;
    for name in &unique {
        if let Err(e) = store.load(name) {
            let f = session_failure(e);
            warnln!("moat: {}", f.message);
            code = code.max(f.code);
        }
    }
    if code != 0 {
        return Ok(code);
    }
    for name in unique {
        store.remove(name).map_err(session_failure)?;
        sayln!("removed {name}");
    }
    Ok(0)
}

/// Refuses an output file whose directory is missing or is not a directory, rather than letting
/// [`crate::atomic_write::write_atomic`] create the directories (a typo in the path would
/// silently make new ones) or fail with the bare "File exists (os error 17)".
fn check_output_dir(path: &Path) -> Result<(), Failure> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let not_a_directory = |d: &Path| Failure::usage(format!("{} is not a directory", d.display()));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(not_a_directory(dir)),
        Err(_) => {
            // `a-file/sub/x.json`: the file in the way is what to fix, not the missing `sub`.
            if let Some(m) = dir
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .find_map(|a| std::fs::metadata(a).ok().map(|m| (a, m)))
            {
                if !m.1.is_dir() {
                    return Err(not_a_directory(m.0));
                }
            }
            Err(Failure::usage(format!("directory {} does not exist", dir.display())))
        }
    }
}

fn export(
    store: &SessionStore,
    name: &str,
    format: ExportFormat,
    all: bool,
    output: Option<&Path>,
    force: bool,
) -> Result<i32, Failure> {
    let format = match format {
        ExportFormat::Json => Format::Json,
        ExportFormat::Md => Format::Markdown,
    };
    let text = store.export(name, format, all).map_err(session_failure)?;
    match output {
        None => {
            let mut out = std::io::stdout().lock();
            // JSON and Markdown written to a pipe or a file stay exact; a terminal gets them sanitised.
            let text = for_terminal(&text, out.is_terminal());
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| Failure::runtime(format!("cannot write the export: {e}")))?;
        }
        Some(path) => {
            check_output_dir(path)?;
            if !force && std::fs::symlink_metadata(path).is_ok() {
                return Err(Failure::usage(format!(
                    "{} already exists; --force replaces it, or pick another file",
                    path.display()
                )));
            }
            crate::atomic_write::write_atomic(path, text.as_bytes())
                .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
            warnln!("moat: wrote session {name} to {}", path.display());
        }
    }
    Ok(0)
}

/// The bytes of `file` (`-`: stdin), refused past [`MAX_IMPORT_BYTES`]. Errors are one line
/// naming the file.
fn read_import(file: &Path) -> Result<Vec<u8>, String> {
    let label = file.display();
    let too_large = || format!("{label} is larger than {} MiB; a session file is far smaller", MAX_IMPORT_BYTES >> 20);
    let reader: Box<dyn Read> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).map_err(|e| format!("cannot read {label}: {e}"))?;
        let meta = f.metadata().map_err(|e| format!("cannot read {label}: {e}"))?;
        if meta.is_dir() {
            return Err(format!("{label} is a folder; give the session files in it"));
        }
        if meta.len() > MAX_IMPORT_BYTES {
            return Err(too_large());
        }
        Box::new(f)
    };
    let mut bytes = Vec::new();
    reader.take(MAX_IMPORT_BYTES + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {label}: {e}"))?;
    if bytes.len() as u64 > MAX_IMPORT_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

fn import(files: &[PathBuf], name: Option<&str>) -> Result<i32, Failure> {
    if name.is_some() && files.len() > 1 {
        return Err(Failure::usage("--as names one session: give it with one FILE"));
    }
    let store = open_store()?;
    let mut code = 0;
    for file in files {
        let label = if file == Path::new("-") { "stdin".to_string() } else { file.display().to_string() };
        let result = read_import(file).map_err(|why| (exit::USAGE, why)).and_then(|bytes| {
            store.import(&label, &bytes, name).map_err(|e| match e {
                ImportError::Store(SessionError::Exists(taken)) => (
                    exit::USAGE,
                    format!(
                        "{label}: a session named {taken:?} already exists; `--as NAME` imports it under another name"
                    ),
                ),
                ImportError::Store(e) => {
                    let f = session_failure(e);
                    (f.code, format!("{label}: {}", f.message))
                }
                e @ ImportError::Invalid { .. } => (exit::USAGE, e.to_string()),
            })
        });
        match result {
            Ok(imported) => sayln!("imported {label} as {imported}"),
            Err((c, why)) => {
                warnln!("moat: {why}");
                code = code.max(c);
            }
        }
    }
    Ok(code)
}

/// `path` with `suffix` appended to its file name (`moat.db` + `-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn move_aside(data_dir: &Path, force: bool) -> Result<i32, Failure> {
    let db = data_dir.join(DB_FILE);
    if std::fs::symlink_metadata(&db).is_err() {
        return Err(Failure::usage(format!("there is no session database at {}; nothing to move aside", db.display())));
    }
    if !force {
        match SessionStore::check_file(data_dir) {
            Ok(()) => {
                return Err(Failure::usage(format!(
                    "session database {} opens and reads fine; nothing to move aside (--force moves it anyway)",
                    db.display()
                )))
            }
            Err(SessionError::Db(DbError::Damaged { .. })) => {}
            Err(e) => {
                return Err(Failure::runtime(format!("{e}; it was not moved (--force moves it anyway)")));
            }
        }
    }
    let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
    let mut target = with_suffix(&db, &format!(".damaged-{stamp}"));
    let mut k = 2;
    while std::fs::symlink_metadata(&target).is_ok() {
        target = with_suffix(&db, &format!(".damaged-{stamp}-{k}"));
        k += 1;
    }
    // The -wal and -shm files go first and keep their pairing (`X-wal` belongs to `X`): a stale
    // -wal left next to a new moat.db would be replayed into it.
    let mut moved = Vec::new();
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(&db, suffix);
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        let to = with_suffix(&target, suffix);
        if let Err(e) = std::fs::rename(&from, &to) {
            undo(&moved);
            return Err(Failure::runtime(format!("cannot move {} to {}: {e}", from.display(), to.display())));
        }
        moved.push((from, to));
    }
    if let Err(e) = std::fs::rename(&db, &target) {
        undo(&moved);
        return Err(Failure::runtime(format!("cannot move {} to {}: {e}", db.display(), target.display())));
    }
    let extra = if moved.is_empty() { String::new() } else { " (with its -wal/-shm files)".to_string() };
    sayln!("moved {} to {}{extra}; the next moat run starts a new session database", db.display(), target.display());
    Ok(0)
}

/// Puts back files moved before a later rename failed.
fn undo(moved: &[(PathBuf, PathBuf)]) {
    for (from, to) in moved.iter().rev() {
        let _ = std::fs::rename(to, from);
    }
}

/// The query text from the command line's words: a word with spaces in it (one shell-quoted
/// argument) is a phrase.
fn query_text(words: &[String]) -> String {
    words
        .iter()
        .map(|w| if w.contains(char::is_whitespace) && !w.contains('"') { format!("\"{w}\"") } else { w.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One hit as the lines `moat history search` prints: `session · role · created · model`, then the
/// snippet indented, matches in bold yellow when `color`. Every piece is sanitised first, so the
/// only escape sequences are the highlights.
fn hit_lines(hit: &SearchHit, color: bool) -> [String; 2] {
    let mut header = vec![sanitize(&hit.session).into_owned(), role_label(hit.role).into(), hit.created.clone()];
    if !hit.model.is_empty() {
        header.push(sanitize(&hit.model).into_owned());
    }
    let header = sanitize(&header.join(" · ")).into_owned();
    let header = if color { format!("\x1b[1m{header}\x1b[0m") } else { header };
    let mut snippet = String::from("  ");
    for (text, matched) in &hit.snippet {
        let text = sanitize(text);
        match (matched, color) {
            (true, true) => snippet.push_str(&format!("\x1b[1;33m{text}\x1b[0m")),
            _ => snippet.push_str(&text),
        }
    }
    [header, snippet]
}

fn search(store: &SessionStore, args: HistorySearchArgs) -> Result<i32, Failure> {
    let q = SearchQuery {
        text: query_text(&args.words()),
        role: args.role.map(|r| match r {
            RoleArg::User => Role::User,
            RoleArg::Assistant => Role::Assistant,
            RoleArg::System => Role::System,
        }),
        model: args.model,
        since: args.since,
        session: args.session,
        limit: args.limit as usize,
    };
    // A session that does not exist is a mistyped name (exit 2), not a search with no hits.
    if let Some(name) = &q.session {
        store.load(name).map_err(session_failure)?;
    }
    let hits = store.search(&q).map_err(|e| match e {
        SearchError::Empty => Failure::usage(e.to_string()),
        SearchError::Store(e) => session_failure(e),
    })?;
    if args.json {
        let rows: Vec<serde_json::Value> = hits
            .iter()
            .map(|h| {
                serde_json::json!({
                    "id": h.id, "session": h.session, "role": h.role, "created": h.created,
                    "model": h.model,
                    "snippet": h.snippet.iter().map(|(t, m)| serde_json::json!({"text": t, "match": m})).collect::<Vec<_>>(),
                    "content": h.content,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let color = color_on();
        for (i, hit) in hits.iter().enumerate() {
            if i > 0 {
                println!();
            }
            for line in hit_lines(hit, color) {
                println!("{line}");
            }
        }
    }
    if hits.is_empty() {
        warnln!("moat: no stored message matches {}", echo(&q.text));
        return Ok(exit::RUNTIME);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(snippet: &[(&str, bool)]) -> SearchHit {
        SearchHit {
            id: 1,
            session: "市场\x1b[31m".into(),
            role: Role::Assistant,
            created: "2026-03-10 12:00:00".into(),
            model: "smollm2\u{202e}".into(),
            snippet: snippet.iter().map(|(t, m)| (t.to_string(), *m)).collect(),
            content: String::new(),
        }
    }

    #[test]
    fn hits_are_highlighted_only_with_colour_and_never_carry_foreign_escapes() {
        let h = hit(&[("the ", false), ("market\x1b]0;pwned\x07", true), (" outlook", false)]);
        let [header, snippet] = hit_lines(&h, false);
        assert_eq!(header, "市场 · assistant · 2026-03-10 12:00:00 · smollm2");
        assert_eq!(snippet, "  the market outlook");
        let [header, snippet] = hit_lines(&h, true);
        assert_eq!(header, "\x1b[1m市场 · assistant · 2026-03-10 12:00:00 · smollm2\x1b[0m");
        assert_eq!(snippet, "  the \x1b[1;33mmarket\x1b[0m outlook");
    }

    #[test]
    fn the_table_aligns_wide_names_and_shows_only_real_branch_counts() {
        let row = |name: &str, messages, branches| SessionSummary {
            name: name.into(),
            model: "smollm2-135m".into(),
            created: "2026-03-10 12:00:00".into(),
            updated: "2026-03-10 12:00:00".into(),
            messages,
            stored: messages,
            branches,
            logged: false,
        };
        let lines = table(&[row("市场营销", 12, 3), row("plain", 4, 1)]);
        assert_eq!(lines.len(), 3);
        // The model column starts at the same terminal column on every line.
        let model_at: Vec<usize> = lines[1..].iter().map(|l| l[..l.find("smollm2").unwrap()].width()).collect();
        assert_eq!(model_at[0], model_at[1], "{lines:#?}");
        assert_eq!(lines[0][..lines[0].find("MODEL").unwrap()].width(), model_at[0], "{lines:#?}");
        assert!(lines[1].contains(" 3  smollm2"), "{lines:#?}");
        assert!(!lines[2].contains(" 1  smollm2"), "one branch is not shown: {lines:#?}");
        assert_eq!(fit("市场营销策略", 7), "市场营…");
    }

    #[test]
    fn a_shell_quoted_phrase_stays_a_phrase() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(query_text(&words(&["keeper of", "bees"])), "\"keeper of\" bees");
        assert_eq!(query_text(&words(&["\"keeper of\"", "bees"])), "\"keeper of\" bees");
        assert_eq!(query_text(&words(&["营销策略"])), "营销策略");
    }

    #[test]
    fn echoed_input_is_cut_on_character_boundaries() {
        assert_eq!(echo("plain"), "plain");
        let exact = "a".repeat(ECHO_CHARS);
        assert_eq!(echo(&exact), exact);
        assert_eq!(echo(&"x".repeat(100_000)), format!("{}…", "x".repeat(ECHO_CHARS)));
        let cjk = "营".repeat(5_000);
        assert_eq!(echo(&cjk), format!("{}…", "营".repeat(ECHO_CHARS)));
        let m = session_failure(SessionError::NotFound("名".repeat(5_000))).message;
        assert!(m.chars().count() < 160 && m.contains('…') && m.contains("`moat sessions list`"), "{m}");
        let m = session_failure(SessionError::BadName("/".repeat(5_000))).message;
        assert!(m.chars().count() < 200 && m.contains("not usable"), "{m}");
    }
}
