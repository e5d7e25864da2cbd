//! `moat sessions list|show|rm|rename|export|import|move-aside` and `moat history search` on a
//! session database filled through the store (no model needed).

use crate::common::{assert_fails, assert_terminal_safe, moat, stderr, stdout, Sandbox};
use moat::chat::store::{SavedSession, SessionStore, SyncPoint, VERSION};
use moat::chat::Message;
use moat::config::SamplingConfig;

fn session(name: &str, model: &str, updated: &str, messages: Vec<Message>) -> SavedSession {
    SavedSession {
        version: VERSION,
        name: name.into(),
        model: model.into(),
        sampling: SamplingConfig::default(),
        messages,
        created: updated.into(),
        updated: updated.into(),
        sync: SyncPoint::default(),
    }
}

/// Three conversations: `市场营销` (two branches: its reply was regenerated), `plain` (newest,
/// with a reply that carries escape sequences) and a logged ask from 2020 (stored first: search
/// lists hits by message id, newest first).
fn fill(s: &Sandbox) {
    let store = SessionStore::open(&s.path("data")).unwrap();
    let logged = session(
        "ask-2020-01-01-1000-00-abcd",
        "gemma3-270m",
        "2020-01-01 10:00:00",
        vec![Message::user("old lighthouse question"), Message::assistant("old answer")],
    );
    assert!(store.insert_new(&logged, None).unwrap());
    let mut cjk = session(
        "市场营销",
        "smollm2-135m",
        "2026-01-02 10:00:00",
        vec![Message::user("上海的市场营销策略是什么？"), Message::assistant("first answer about lighthouses")],
    );
    let mut sync = SyncPoint::default();
    cjk.messages = store.save(&cjk, &mut sync, None).unwrap();
    // /regen: the copy drops the reply and gets another one; the first stays as a branch.
    cjk.messages.pop();
    cjk.messages.push(Message::assistant("营销策略：先做品牌，再做渠道"));
    store.save(&cjk, &mut sync, Some(r#"{"model":"qwen-7b-instruct"}"#)).unwrap();

    let plain = session(
        "plain",
        "smollm2-135m",
        "2026-01-03 10:00:00",
        vec![
            Message::user("tell me about the lighthouse keeper"),
            Message::assistant("The \x1b[31mlighthouse\x1b[0m keeper\x1b]0;pwned\x07 kept the light."),
        ],
    );
    store.save(&plain, &mut SyncPoint::default(), None).unwrap();
}

fn ok(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert_terminal_safe(&o.stdout);
    assert_terminal_safe(&o.stderr);
    stdout(o)
}

#[test]
fn list_shows_sessions_newest_first_and_hides_logged_runs_unless_all() {
    let s = Sandbox::new();
    fill(&s);
    let o = moat(&s, &["sessions", "list"], "");
    let out = ok(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("NAME") && lines[0].contains("BRANCHES"), "{out}");
    assert!(lines[1].starts_with("plain "), "newest first: {out}");
    assert!(lines[2].starts_with("市场营销 "), "{out}");
    assert!(lines[2].contains("  2  smollm2-135m"), "two messages, two branches: {out}");
    assert!(!out.contains("ask-"), "{out}");
    assert!(stderr(&o).contains("1 logged run(s)") && stderr(&o).contains("--all"), "{}", stderr(&o));
    // CJK names take two columns each: the MODEL column starts at one terminal column.
    let col = |l: &str| {
        unicode_width::UnicodeWidthStr::width(&l[..l.find("smollm2").unwrap_or_else(|| l.find("MODEL").unwrap())])
    };
    assert_eq!(col(lines[0]), col(lines[1]));
    assert_eq!(col(lines[1]), col(lines[2]), "{out}");

    let out = ok(&moat(&s, &["sessions", "list", "--all"], ""));
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(out.lines().last().unwrap().starts_with("ask-2020-01-01"), "{out}");

    let o = moat(&s, &["sessions", "list", "--json"], "");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&ok(&o)).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["plain", "市场营销"]);
    assert_eq!(
        (rows[1]["messages"].as_u64(), rows[1]["stored"].as_u64(), rows[1]["branches"].as_u64()),
        (Some(2), Some(3), Some(2))
    );
}

#[test]
fn show_prints_a_safe_transcript_and_the_branches() {
    let s = Sandbox::new();
    fill(&s);
    let out = ok(&moat(&s, &["sessions", "show", "市场营销"], ""));
    assert!(out.contains("── user ──\n上海的市场营销策略是什么？"), "{out}");
    assert!(out.contains("── assistant ──\n营销策略：先做品牌，再做渠道"), "{out}");
    let transcript = &out[..out.find("\nbranches (").expect("a branch list")];
    assert!(!transcript.contains("first answer"), "the active branch only: {out}");
    assert!(out.contains("branch 2 of 2"), "{out}");
    let marks: Vec<&str> =
        out.lines().filter(|l| l.starts_with("  * ") || (l.starts_with("    ") && !l.contains("MESSAGES"))).collect();
    assert_eq!(marks.len(), 2, "{out}");
    assert!(marks[1].starts_with("  *  2") && marks[1].contains("营销策略"), "{marks:?}");
    assert!(marks[0].contains("first answer about lighthouses"), "{marks:?}");

    let out = ok(&moat(&s, &["sessions", "show", "市场营销", "--branch", "1"], ""));
    assert!(out.contains("first answer about lighthouses") && out.contains("branch 1 of 2"), "{out}");
    // Looking at a branch does not switch to it.
    let store = SessionStore::open(&s.path("data")).unwrap();
    assert_eq!(store.load("市场营销").unwrap().messages[1].content, "营销策略：先做品牌，再做渠道");

    let out = ok(&moat(&s, &["sessions", "show", "plain"], ""));
    assert!(out.contains("The lighthouse keeper kept the light."), "escapes removed whole: {out}");
    assert!(!out.contains("branches"), "one branch, no list: {out}");

    assert_fails(&moat(&s, &["sessions", "show", "市场营销", "--branch", "3"], ""), 2, "has no branch 3");
    assert_fails(&moat(&s, &["sessions", "show", "nope"], ""), 2, "`moat sessions list`");
}

#[test]
fn rm_reports_each_missing_name_and_rename_refuses_a_taken_one() {
    let s = Sandbox::new();
    fill(&s);
    // One missing name and nothing is removed: the fixed command line then does what was meant.
    let o = moat(&s, &["sessions", "rm", "plain", "nope", "../x"], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("moat: ")), "{err}");
    assert!(err.contains("\"nope\"") && err.contains("\"../x\""), "{err}");
    assert!(ok(&moat(&s, &["sessions", "list"], "")).contains("plain"), "kept");
    // A name given twice is removed once.
    assert_eq!(stdout(&moat(&s, &["sessions", "rm", "plain", "plain"], "")), "removed plain\n");
    let o = moat(&s, &["sessions", "list"], "");
    assert!(!ok(&o).contains("plain"));

    assert_eq!(ok(&moat(&s, &["sessions", "rename", "市场营销", "营销-2"], "")), "renamed 市场营销 to 营销-2\n");
    let store = SessionStore::open(&s.path("data")).unwrap();
    assert_eq!(store.branches("营销-2").unwrap().len(), 2, "the branches go with the name");
    assert_fails(&moat(&s, &["sessions", "rename", "营销-2", "ask-2020-01-01-1000-00-abcd"], ""), 2, "already exists");
    assert_fails(&moat(&s, &["sessions", "rename", "gone", "x"], ""), 2, "no saved session named \"gone\"");
}

#[test]
fn export_and_import_round_trip_json_with_every_branch_and_markdown() {
    let s = Sandbox::new();
    fill(&s);
    std::fs::create_dir(s.path("out")).unwrap();
    let file = s.path("out/cjk.json");
    let file_arg = file.to_str().unwrap();
    let o = moat(&s, &["sessions", "export", "市场营销", "--all", "-o", file_arg], "");
    ok(&o);
    assert!(stderr(&o).contains("wrote session 市场营销"), "{}", stderr(&o));
    let written = std::fs::read(&file).unwrap();
    // An existing file is kept unless --force.
    assert_fails(&moat(&s, &["sessions", "export", "plain", "-o", file_arg], ""), 2, "already exists");
    assert_eq!(std::fs::read(&file).unwrap(), written);

    assert_eq!(
        ok(&moat(&s, &["sessions", "import", file_arg, "--as", "copy"], "")),
        format!("imported {file_arg} as copy\n")
    );
    let store = SessionStore::open(&s.path("data")).unwrap();
    let (a, b) = (store.load("市场营销").unwrap(), store.load("copy").unwrap());
    assert_eq!(a.messages, b.messages);
    let leaves = |n: &str| {
        store.branches(n).unwrap().into_iter().map(|b| (b.messages, b.last.content, b.active)).collect::<Vec<_>>()
    };
    assert_eq!(leaves("copy"), leaves("市场营销"), "both branches, the same one active");

    // Without --all only the active path travels; from stdin too.
    let o = moat(&s, &["sessions", "export", "市场营销"], "");
    let json = ok(&o);
    let o = moat(&s, &["sessions", "import", "-", "--as", "active-only"], json.as_bytes());
    assert_eq!(ok(&o), "imported stdin as active-only\n");
    let store = SessionStore::open(&s.path("data")).unwrap();
    assert_eq!(store.branches("active-only").unwrap().len(), 1);
    assert_eq!(store.load("active-only").unwrap().messages, a.messages);

    let md = ok(&moat(&s, &["sessions", "export", "市场营销", "--format", "md", "--all"], ""));
    assert!(md.starts_with("# Session 市场营销"), "{md}");
    assert!(md.contains("营销策略：先做品牌") && md.contains("## Branch 1") && md.contains("first answer"), "{md}");
    let md = ok(&moat(&s, &["sessions", "export", "市场营销", "--format", "md"], ""));
    assert!(!md.contains("first answer"), "{md}");

    // A JSON export to a pipe is the stored text, byte for byte (escapes included).
    let raw = stdout(&moat(&s, &["sessions", "export", "plain"], ""));
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert!(v["messages"][1]["content"].as_str().unwrap().contains("\x1b[31m"));

    // Errors: one line each, the others still imported, exit 2.
    std::fs::write(s.path("junk.json"), b"{ not json").unwrap();
    let o = moat(&s, &["sessions", "import", s.path("junk.json").to_str().unwrap(), file_arg], "");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("junk.json is not a moat session file"), "{err}");
    assert!(err.contains("\"市场营销\" already exists") && err.contains("--as NAME"), "{err}");
    assert_fails(&moat(&s, &["sessions", "import", file_arg, file_arg, "--as", "x"], ""), 2, "--as names one session");
    let big = std::fs::File::create(s.path("big.json")).unwrap();
    big.set_len((64 << 20) + 1).unwrap();
    assert_fails(&moat(&s, &["sessions", "import", s.path("big.json").to_str().unwrap()], ""), 2, "larger than 64 MiB");
    assert_fails(&moat(&s, &["sessions", "import", s.path("missing.json").to_str().unwrap()], ""), 2, "cannot read");
}

fn search(s: &Sandbox, args: &[&str]) -> std::process::Output {
    let mut c = s.moat();
    // Colour is on by default; a pipe must still get no escape codes.
    c.env_remove("NO_COLOR").args(["history", "search"]).args(args);
    crate::common::run(c, b"")
}

#[test]
fn history_search_finds_english_and_chinese_with_filters() {
    let s = Sandbox::new();
    fill(&s);
    let o = search(&s, &["lighthouse"]);
    let out = ok(&o);
    let blocks: Vec<&str> = out.split("\n\n").collect();
    assert_eq!(blocks.len(), 4, "every branch and logged runs too: {out}");
    assert!(
        blocks[0].starts_with("plain · assistant · ")
            && blocks[0].ends_with(" · smollm2-135m\n  The lighthouse keeper kept the light."),
        "{out}"
    );
    assert!(!out.contains("[31m") && !out.contains("pwned"), "{out}");

    let out = ok(&search(&s, &["营销策略"]));
    assert_eq!(out.lines().filter(|l| l.starts_with("市场营销 · ")).count(), 2, "{out}");
    assert!(
        out.contains("市场营销 · assistant · ") && out.contains(" · qwen-7b-instruct\n  营销策略：先做品牌，再做渠道"),
        "the reply's own model: {out}"
    );

    let heads = |o: &std::process::Output| -> Vec<String> {
        ok(o).lines().filter(|l| !l.starts_with("  ") && !l.is_empty()).map(String::from).collect()
    };
    let h = heads(&search(&s, &["营销策略", "--role", "user"]));
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].starts_with("市场营销 · user · "), "{h:?}");
    let h = heads(&search(&s, &["营销", "--model", "QWEN"]));
    assert_eq!(h.len(), 1, "short words and the model filter: {h:?}");
    let h = heads(&search(&s, &["lighthouse", "--session", "市场营销"]));
    assert_eq!(h.len(), 1, "{h:?}");
    let h = heads(&search(&s, &["lighthouse", "--since", "2021-01-01"]));
    assert_eq!(h.len(), 3, "the 2020 ask is older: {h:?}");
    let h = heads(&search(&s, &["lighthouse", "--since", "2w"]));
    assert_eq!(h.len(), 3, "{h:?}");
    let h = heads(&search(&s, &["lighthouse", "--limit", "1"]));
    assert_eq!(h.len(), 1, "{h:?}");
    let h = heads(&search(&s, &["lighthouse keeper"]));
    assert_eq!(h.len(), 1, "one shell argument is a phrase: {h:?}");

    let o = search(&s, &["营销", "--json"]);
    let hits: Vec<serde_json::Value> = serde_json::from_str(&ok(&o)).unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["role"], "assistant");
    assert!(
        hits[0]["snippet"].as_array().unwrap().iter().any(|p| p["match"] == true && p["text"] == "营销"),
        "{hits:?}"
    );

    let o = search(&s, &["submarine"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).starts_with("moat: no stored message matches submarine"), "{}", stderr(&o));
    assert_fails(&search(&s, &["x", "--since", "yesterday"]), 2, "YYYY-MM-DD");
    assert_fails(&search(&s, &["x", "--since", "2026-02-30"]), 2, "YYYY-MM-DD");
    assert_fails(&search(&s, &["x", "--since", "99999999999w"]), 2, "further back");
    assert_fails(&search(&s, &["x", "--role", "robot"]), 2, "robot");
    assert_fails(&search(&s, &["\"\""]), 2, "nothing to search for");
}

#[test]
fn a_damaged_database_is_refused_then_moved_aside_and_a_new_one_starts() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("data")).unwrap();
    let junk = vec![b'x'; 8192];
    std::fs::write(s.path("data/moat.db"), &junk).unwrap();
    assert_fails(&moat(&s, &["sessions", "list"], ""), 1, "moat sessions move-aside");
    assert_fails(&search(&s, &["anything"]), 1, "is damaged");
    assert_eq!(std::fs::read(s.path("data/moat.db")).unwrap(), junk, "never written to");
    // A -wal beside it goes with it, untouched by the check that it is damaged.
    std::fs::write(s.path("data/moat.db-wal"), b"stale wal").unwrap();

    let o = moat(&s, &["sessions", "move-aside"], "");
    let out = ok(&o);
    assert!(out.starts_with("moved ") && out.contains("moat.db.damaged-") && out.contains("-wal/-shm"), "{out}");
    let mut names: Vec<String> =
        std::fs::read_dir(s.path("data")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("moat.db.damaged-") && names[1] == format!("{}-wal", names[0]), "{names:?}");
    assert_eq!(std::fs::read(s.path("data").join(&names[0])).unwrap(), junk, "kept as it was");
    assert_eq!(std::fs::read(s.path("data").join(&names[1])).unwrap(), b"stale wal");

    let o = moat(&s, &["sessions", "list"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("no saved sessions"));
    // A database that is fine is not moved without --force.
    assert_fails(&moat(&s, &["sessions", "move-aside"], ""), 2, "opens and reads fine");
    assert!(s.path("data/moat.db").exists());
    ok(&moat(&s, &["sessions", "move-aside", "--force"], ""));
    assert!(!s.path("data/moat.db").exists());
    assert_fails(&moat(&s, &["sessions", "move-aside"], ""), 2, "nothing to move aside");
}

#[test]
fn tab_completes_session_names_and_never_creates_the_database() {
    let s = Sandbox::new();
    let complete = |words: &[&str]| -> Vec<String> {
        let mut c = s.moat();
        c.env("MOAT_COMPLETE", "bash").env("_CLAP_COMPLETE_INDEX", words.len().to_string());
        c.args(["--", "moat"]).args(words);
        let o = crate::common::run(c, b"");
        assert!(o.status.success(), "{words:?}: {}", stderr(&o));
        stdout(&o).lines().map(str::to_string).collect()
    };
    let none = complete(&["sessions", "show", ""]);
    assert!(none.iter().all(|w| w.starts_with('-')), "flags only: {none:?}");
    assert!(!s.path("data/moat.db").exists(), "Tab does not create the database");
    fill(&s);
    assert_eq!(complete(&["sessions", "show", "市"]), ["市场营销"]);
    assert_eq!(complete(&["sessions", "rm", "plain", "p"]), ["plain"]);
    assert_eq!(complete(&["repl", "--session", "ask-"]), ["ask-2020-01-01-1000-00-abcd"]);
    assert_eq!(complete(&["history", "search", "x", "--session", "pl"]), ["plain"]);
}

#[test]
fn export_refuses_a_missing_or_blocked_directory_and_writes_files_readable_as_usual() {
    let s = Sandbox::new();
    fill(&s);
    let missing = s.path("no/such/dir");
    let o = moat(&s, &["sessions", "export", "plain", "-o", missing.join("x.json").to_str().unwrap()], "");
    assert_fails(&o, 2, &format!("directory {} does not exist", missing.display()));
    assert!(!s.path("no").exists(), "no directories made");

    let afile = s.path("afile");
    std::fs::write(&afile, b"keep").unwrap();
    for target in [afile.join("x.json"), afile.join("sub/x.json")] {
        let o = moat(&s, &["sessions", "export", "plain", "-o", target.to_str().unwrap()], "");
        assert_fails(&o, 2, &format!("{} is not a directory", afile.display()));
    }
    assert_eq!(std::fs::read(&afile).unwrap(), b"keep");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let out = s.path("plain.json");
        let mut c = s.moat();
        c.args(["sessions", "export", "plain", "-o", out.to_str().unwrap()]);
        // umask 022 as a login shell has it; the file must not come out private (0600).
        let o = crate::common::run(umask_022(c), b"");
        ok(&o);
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o644);
    }
}

/// `c` run under umask 022 whatever the test runner's umask is.
#[cfg(unix)]
fn umask_022(mut c: std::process::Command) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    c
}

#[test]
fn history_search_names_a_missing_session_and_takes_a_leading_hyphen() {
    let s = Sandbox::new();
    fill(&s);
    assert_fails(&search(&s, &["lighthouse", "--session", "nope"]), 2, "no saved session named \"nope\"");
    // `-horses` is a word to search for, not `-h` (help) and more.
    let o = search(&s, &["-horses"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).starts_with("moat: no stored message matches -horses"), "{}", stderr(&o));
    let o = search(&s, &["--role", "user", "-lighthouse", "keeper"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("matches -lighthouse keeper"), "{}", stderr(&o));
}

#[test]
fn long_names_and_queries_are_cut_short_in_errors() {
    let s = Sandbox::new();
    fill(&s);
    let query = "x".repeat(100_000);
    let o = search(&s, &[&query]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{}", err.len());
    assert!(err.len() < 200 && err.contains(&format!("matches {}…", "x".repeat(80))), "{} bytes", err.len());

    for name in ["n".repeat(5_000), "名".repeat(5_000)] {
        for args in [
            vec!["sessions", "show", name.as_str()],
            vec!["sessions", "rm", name.as_str()],
            vec!["sessions", "rename", "plain", name.as_str()],
        ] {
            let o = moat(&s, &args, "");
            let err = stderr(&o);
            assert!(err.chars().count() < 200 && err.contains('…'), "{args:.20?}: {} chars", err.chars().count());
            assert_fails(&o, 2, "…");
        }
    }
}
