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
/// (after `delay`, so that the processes' turns overlap). Returns its URL.
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
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": "noted"}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 1}});
    let _ = write!(stream, "data: {chunk}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
}

#[test]
fn processes_on_one_session_keep_every_turn() {
    const PROCESSES: usize = 6;
    const LINES: usize = 3;
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
