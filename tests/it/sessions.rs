//! Sessions in the shared database (`<data dir>/moat.db`): several `moat repl` processes on one
//! session keep every turn; a damaged database stops the run and is kept; a data dir that cannot
//! be written keeps the conversation in memory. Replies come from a tiny fake OpenAI-style server,
//! so no model is needed.

use crate::common::{run, stderr, stdout, Sandbox};
use moat::chat::store::SessionStore;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;

/// Answers `GET /v1/models` with one model and every completion with a short streamed reply
/// (after `delay`, so that the processes' turns overlap). Returns its URL. A request whose text
/// holds `HANG` gets `partial` and then nothing for a minute; one with `CUT` gets `partial` and
/// a closed connection (the last message decides: the prompt as sent includes earlier turns); one
/// with `COUNT` gets `reply N`, N counting such requests from 1 (so a `/regen` differs).
fn fake_server(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream, delay));
        }
    });
    url
}

/// The last message of each request that got `partial` (HANG, CUT) so far, as JSON strings.
static HANGING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn answer(mut stream: TcpStream, delay: Duration) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    if line.contains("/v1/models") {
        let body =
            r#"{"object":"list","data":[{"id":"fake","object":"model","owned_by":"test","max_model_len":4096}]}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    std::thread::sleep(delay);
    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
    let last = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["messages"].as_array().and_then(|m| m.last()).map(|m| m["content"].to_string()))
        .unwrap_or_default();
    if last.contains("HANG") || last.contains("CUT") {
        let chunk =
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": null}]});
        let _ = write!(stream, "data: {chunk}\n\n");
        let _ = stream.flush();
        HANGING.lock().unwrap().push(last.clone());
        if last.contains("HANG") {
            std::thread::sleep(Duration::from_secs(60));
        }
        return;
    }
    let text = if last.contains("COUNT") {
        static COUNTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        format!("reply {}", COUNTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
    } else {
        "noted".to_string()
    };
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 1}});
    let _ = write!(stream, "data: {chunk}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
}

#[test]
fn processes_on_one_session_keep_every_turn() {
    const PROCESSES: usize = 6;
    const LINES: usize = 5;
    let url = fake_server(Duration::from_millis(30));
    let s = Sandbox::new();
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            let mut c = s.moat();
            c.args(["--remote", &url, "repl", "--session", "shared"]);
            c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = c.spawn().expect("moat starts");
            let script: String = (0..LINES).map(|l| format!("line {l} from process {p}\n")).collect();
            child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
            child
        })
        .collect();
    let mut joined = 0;
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        joined += usize::from(stderr(&o).contains("from another moat process joined session shared"));
    }
    // Every process but the first to save finds the others' messages already there and says so.
    assert!(joined >= PROCESSES - 1, "{joined} of {PROCESSES} processes took in others' messages");
    let store = SessionStore::open(&s.path("data")).unwrap();
    let saved = store.load("shared").unwrap();
    let mut users: Vec<&str> =
        saved.messages.iter().filter(|m| m.role == moat::chat::Role::User).map(|m| m.content.as_str()).collect();
    let stored = users.len();
    users.sort();
    users.dedup();
    let mut sent: Vec<String> =
        (0..PROCESSES).flat_map(|p| (0..LINES).map(move |l| format!("line {l} from process {p}"))).collect();
    sent.sort();
    eprintln!("turns stored / turns sent: {stored}/{}", sent.len());
    assert_eq!(users, sent, "every user turn is in the database once");
    assert_eq!(stored, sent.len());
    let replies = saved.messages.iter().filter(|m| m.content == "noted").count();
    assert_eq!(replies, sent.len(), "and every reply");
    // Each question is followed by its reply: a turn is saved whole, never split by another's.
    let roles: Vec<_> = saved.messages.iter().map(|m| m.role).collect();
    for (i, pair) in roles.chunks(2).enumerate() {
        assert_eq!(pair, [moat::chat::Role::User, moat::chat::Role::Assistant], "turn {i}: {roles:?}");
    }
    // Nor is any turn stored twice off the active path (a merge that copied or branched).
    let db = rusqlite::Connection::open(s.path("data/moat.db")).unwrap();
    let rows: i64 = db.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!(rows as usize, 2 * sent.len(), "every row in the database is one of the turns");
}

#[test]
fn a_damaged_database_stops_the_run_and_is_kept() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("data")).unwrap();
    let junk = "not a database, only text that happens to be long enough to fill a header.\n".repeat(60);
    std::fs::write(s.path("data/moat.db"), &junk).unwrap();
    let o = run(
        {
            let mut c = s.moat();
            c.args(["repl", "--session", "x"]);
            c
        },
        b"hello\n",
    );
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains("moat.db") && err.contains("damaged"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(s.path("data/moat.db")).unwrap(), junk, "never overwritten");
}

#[test]
fn an_unwritable_data_dir_keeps_the_conversation_in_memory() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    // A data dir whose parent is a file cannot be created (as root, permission bits would not stop it).
    std::fs::write(s.path("file"), b"x").unwrap();
    let mut c = s.moat();
    c.env("MOAT_DATA_DIR", s.path("file/data")).args(["--remote", &url, "repl"]);
    let o = run(c, b"first\nsecond\n/show\n");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("session database")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("kept in memory only"), "{err}");
    assert!(stdout(&o).contains("(4 messages)"), "both turns stayed in the conversation: {}", stdout(&o));
}

#[test]
fn json_sessions_are_imported_with_a_note_and_a_damaged_one_is_named() {
    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("data/sessions")).unwrap();
    let session = serde_json::json!({
        "version": 1, "name": "old", "created": "2026-01-01 00:00:00", "updated": "2026-01-01 00:00:00",
        "model": "m", "sampling": serde_json::to_value(moat::config::Config::default().sampling).unwrap(),
        "messages": [{"role": "user", "content": "a question from last year"}, {"role": "assistant", "content": "an answer"}]
    });
    let good = serde_json::to_string(&session).unwrap();
    std::fs::write(s.path("data/sessions/old.json"), &good).unwrap();
    std::fs::write(s.path("data/sessions/torn.json"), b"{\"name\": \"torn\", \"mess").unwrap();
    std::fs::write(s.path("data/sessions/last"), "old").unwrap();
    let mut c = s.moat();
    c.args(["repl", "--session", "old", "--no-save"]);
    let o = run(c, b"/show\n");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("skipped damaged session file") && err.contains("torn.json"), "{err}");
    assert_eq!(err.matches("imported 1 saved session").count(), 1, "{err}");
    assert!(stdout(&o).contains("session: old (2 messages)"), "{}", stdout(&o));
    assert_eq!(std::fs::read_to_string(s.path("data/sessions/old.json")).unwrap(), good);
    // Said once: the second run finds the database.
    let mut c = s.moat();
    c.args(["repl", "--resume", "--no-save"]);
    let o = run(c, b"/show\n");
    assert!(!stderr(&o).contains("imported"), "{}", stderr(&o));
    assert!(stdout(&o).contains("session: old (2 messages)"), "{}", stdout(&o));
}

#[test]
fn no_save_with_nothing_to_open_creates_no_database() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["--remote", &url, "repl", "--no-save"]);
    let o = run(c, b"hello\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!s.path("data/moat.db").exists());
    let mut c = s.moat();
    c.args(["--remote", &url, "repl"]);
    let o = run(c, b"hello\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(SessionStore::open(&s.path("data")).unwrap().list().len(), 1);
}

/// One stored message: role, content, cut_off.
type Row = (String, String, Option<String>);

/// The conversations whose names start with `prefix`, each with its messages in order.
fn logged(s: &Sandbox, prefix: &str) -> Vec<(String, Vec<Row>)> {
    let store = SessionStore::open(&s.path("data")).unwrap();
    let mut names: Vec<String> = store.list().into_iter().map(|c| c.name).filter(|n| n.starts_with(prefix)).collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let rows = store.load(&n).unwrap().messages;
            let rows =
                rows.into_iter().map(|m| (format!("{:?}", m.role).to_lowercase(), m.content, m.cut_off)).collect();
            (n, rows)
        })
        .collect()
}

fn ask(s: &Sandbox, url: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = s.moat();
    c.args(["--remote", url, "ask"]).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c, b"")
}

#[test]
fn ask_log_keeps_each_run_as_a_conversation_of_its_own() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    let o = ask(&s, &url, &["not logged"], &[]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "noted\n"), "{}", stderr(&o));
    assert!(!s.path("data/moat.db").exists(), "ask logs nothing unless asked to");

    // Two runs in the same second get conversations of their own.
    let o = ask(&s, &url, &["--log", "first question"], &[]);
    assert_eq!((o.status.code(), stdout(&o).as_str(), stderr(&o).as_str()), (Some(0), "noted\n", ""));
    let o = ask(&s, &url, &["--log", "--json", "second question"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let runs = logged(&s, "ask-");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let name = json["session"].as_str().expect("--json names the logged conversation");
    let second = runs.iter().find(|(n, _)| n == name).expect("that conversation exists");
    let row = |role: &str, text: &str| (role.to_string(), text.to_string(), None);
    assert_eq!(second.1, [row("user", "second question"), row("assistant", "noted")]);
    assert!(runs.iter().any(|(_, m)| m == &[row("user", "first question"), row("assistant", "noted")]), "{runs:?}");
    for (n, _) in &runs {
        assert!(n.len() == "ask-2026-11-30-0102-03-xxxx".len(), "{n}");
    }
    // The reply's figures are stored with it, in the chat's shape.
    let db = rusqlite::Connection::open(s.path("data/moat.db")).unwrap();
    let stats: String =
        db.query_row("SELECT stats FROM messages WHERE role = 'assistant' LIMIT 1", [], |r| r.get(0)).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        (stats["model"].as_str(), stats["stop_reason"].as_str()),
        (Some("fake"), Some("end_of_generation")),
        "{stats}"
    );
    assert_eq!(stats["gen_tokens"], 1, "{stats}");
    assert!(stats["ttft_ms"].is_number() && stats["gen_tok_s"].is_number() && stats["prompt_tokens"] == 10);
    assert_eq!(SessionStore::open(&s.path("data")).unwrap().last(), None, "--resume does not open a logged ask");

    // `[chat] log_ask` logs by default (with the system prompt); --no-log skips one run.
    let config = [("MOAT_CHAT_LOG_ASK", "true"), ("MOAT_CHAT_SYSTEM_PROMPT", "Answer in one word.")];
    let o = ask(&s, &url, &["third question"], &config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = ask(&s, &url, &["--no-log", "fourth question"], &config);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let runs = logged(&s, "ask-");
    assert_eq!(runs.len(), 3, "{runs:?}");
    let third = [row("system", "Answer in one word."), row("user", "third question"), row("assistant", "noted")];
    assert!(runs.iter().any(|(_, m)| m == &third), "{runs:?}");
    let o = ask(&s, &url, &["--log", "--no-log", "x"], &[]);
    assert_eq!(o.status.code(), Some(2), "the two flags contradict: {}", stderr(&o));
}

#[test]
fn ask_log_keeps_a_cut_off_reply_and_a_damaged_database_only_warns() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    // The server closes the connection mid-reply: what came is stored, marked as cut off.
    let o = ask(&s, &url, &["--log", "CUT me off"], &[]);
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let runs = logged(&s, "ask-");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let m = &runs[0].1;
    assert_eq!((m.len(), m[0].1.as_str(), m[1].1.as_str()), (2, "CUT me off", "partial"), "{m:?}");
    assert!(m[1].2.as_deref().is_some_and(|why| !why.is_empty()), "marked as cut off: {m:?}");

    // A damaged database: the answer is printed, one warning line says it was not logged, exit 0.
    let junk = "not a database, only text that happens to be long enough to fill a header.\n".repeat(60);
    std::fs::write(s.path("data/moat.db"), &junk).unwrap();
    for f in ["moat.db-wal", "moat.db-shm"] {
        let _ = std::fs::remove_file(s.path("data").join(f));
    }
    let o = ask(&s, &url, &["--log", "hello"], &[]);
    let err = stderr(&o);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "noted\n"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("moat: not logged:") && err.contains("moat.db") && err.contains("damaged"), "{err}");
    assert_eq!(std::fs::read_to_string(s.path("data/moat.db")).unwrap(), junk, "never overwritten");
}

#[test]
fn run_log_keeps_the_rendered_prompt_and_the_reply() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    let file = s.path("echo.toml");
    std::fs::write(
        &file,
        "format = 1\ntitle = \"Echo\"\n[prompt]\nsystem = \"You repeat things.\"\nuser = \"Repeat: {{ input }}\"\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let mut c = s.moat();
    c.args(["--remote", &url, "run", &file]);
    let o = run(c, b"the quarterly figures");
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "noted"), "{}", stderr(&o));
    assert!(!s.path("data/moat.db").exists(), "run logs nothing unless asked to");
    let mut c = s.moat();
    c.args(["--remote", &url, "run", &file, "--log"]);
    let o = run(c, b"the quarterly figures");
    assert_eq!((o.status.code(), stdout(&o).trim(), stderr(&o).as_str()), (Some(0), "noted", ""));
    let runs = logged(&s, "run-");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let m = &runs[0].1;
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!((m[0].0.as_str(), m[0].1.as_str()), ("system", "You repeat things."));
    assert_eq!((m[1].0.as_str(), m[1].1.trim()), ("user", "Repeat: the quarterly figures"));
    assert_eq!((m[2].0.as_str(), m[2].1.as_str()), ("assistant", "noted"));
}

#[test]
fn kill_9_during_a_reply_keeps_every_earlier_turn_for_resume() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["--remote", &url, "repl", "--session", "x"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("moat starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first turn\nsecond turn\nHANG third turn\n").unwrap();
    stdin.flush().unwrap();
    // The reply to the third question is mid-stream (its first words came) when the kill comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !HANGING.lock().unwrap().iter().any(|m| m.contains("HANG third turn")) {
        assert!(std::time::Instant::now() < deadline, "the third question never reached the server");
        assert!(child.try_wait().unwrap().is_none(), "moat exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);

    let mut c = s.moat();
    c.args(["--remote", &url, "repl", "--resume"]);
    let o = run(c, b"/show\nfourth turn\n");
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{err}");
    // Every completed turn; the turn being answered (question and partial reply) is what a kill
    // may lose, as one transaction (its question stays in the input history for Up).
    assert!(err.contains("resumed session x (4 messages)"), "{err}");
    assert!(out.contains("session: x (4 messages)"), "{out}");
    let saved = SessionStore::open(&s.path("data")).unwrap().load("x").unwrap();
    let texts: Vec<&str> = saved.messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["first turn", "noted", "second turn", "noted", "fourth turn", "noted"]);
}

#[test]
fn repl_lists_and_switches_branches_and_opens_a_search_hit() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["--remote", &url, "repl", "--session", "fruit"]);
    let script = "Name a fruit COUNT\n/regen\n/regen\n/branches\n/branches 1\n/show\n/search reply\n/open 2\n/show\n";
    let o = run(c, script.as_bytes());
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out.matches("the previous reply is kept: /branches").count(), 1, "{out}");
    let listed: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("branches of session fruit")).take(4).collect();
    assert_eq!(listed.len(), 4, "{out}");
    assert_eq!(listed[1], "   1    2 messages · differs at 2: \"reply 1\"", "{out}");
    assert!(listed[3].starts_with("*  3 ") && listed[3].contains("active: \"reply 3\""), "{out}");
    assert!(out.contains("switched to branch 1 of session fruit"), "{out}");
    // Newest first: reply 3, reply 2, reply 1; hit 2 is on branch 2.
    let hits: Vec<&str> = out.lines().filter(|l| l.contains("fruit · assistant · ")).collect();
    assert_eq!(hits.len(), 3, "{out}");
    assert!(out.contains("opened session fruit at message 2 of 2"), "{out}");
    let saved = SessionStore::open(&s.path("data")).unwrap().load("fruit").unwrap();
    assert_eq!(saved.messages.last().unwrap().content, "reply 2", "the hit's branch is the active one now");
}

#[test]
fn repl_branches_and_search_without_a_database_say_so() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["repl", "--no-save"]);
    let o = run(c, b"/branches\n/search anything\n/open 1\n");
    let err = stderr(&o);
    assert_eq!(err.matches("no session database in this run").count(), 3, "{err}");
}

#[test]
fn flags_on_the_command_line_override_what_a_resumed_session_stored() {
    let url = fake_server(Duration::ZERO);
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["--remote", &url, "-n", "15", "--temp", "1", "repl", "--session", "x"]);
    let o = run(c, b"hello\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut c = s.moat();
    c.args(["--remote", &url, "-n", "5", "repl", "--resume"]);
    let out = stdout(&run(c, b"/show\n"));
    assert!(out.contains("max_tokens 5"), "the flag wins: {out}");
    assert!(out.contains("temp 1"), "what the flags leave alone comes from the session: {out}");
}
