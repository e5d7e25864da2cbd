//! HTTP to an OpenAI-compatible server: the endpoint, the API key (read from the environment,
//! never shown), small JSON GETs, and streamed POSTs whose body is read on a helper thread so the
//! inference thread can notice a cancel while a read blocks. Every failure becomes one line that
//! names the server and says what to do.

use super::sse::{SseEvent, SseParser};
use super::wire::ServerError;
use crate::engine::protocol::{EngineError, RemoteOptions};
use crossbeam_channel::{Receiver, Sender};
use std::io::Read;
use std::time::{Duration, Instant};

/// The largest error body or non-streamed reply read, in bytes.
const MAX_BODY: u64 = 64 << 20;
/// How much of an error body is read for its message.
const MAX_ERROR_BODY: u64 = 64 << 10;
/// A read of a stream that took this long waited for the network; quicker ones returned bytes
/// that were already waiting. A server streaming 2,000 tokens a second waits 500 µs per token.
const WAITED: Duration = Duration::from_micros(200);

/// Where the server is: `root` is the URL without `/v1` (and without a trailing slash), so
/// `{root}/v1/models` and llama-server's `{root}/props` can both be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub root: String,
    /// `host:port` as the user would write it, for messages.
    pub authority: String,
    pub host: String,
    pub https: bool,
}

impl Endpoint {
    /// Reads `url` (`http(s)://host[:port][/prefix][/v1][/]`).
    ///
    /// Errors: a one-line message for a URL that is not http(s), has no host, or carries
    /// credentials, a query or a fragment.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url.trim();
        if !url.contains("://") {
            return Err(format!(
                "the server URL {url:?} must start with http:// or https:// (e.g. http://gpu-box:8000)"
            ));
        }
        let parsed = ureq::get(url)
            .request_url()
            .map_err(|_| format!("the server URL {url:?} is not a URL; write it like http://gpu-box:8000"))?;
        let u = parsed.as_url();
        let https = match u.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(format!("the server URL must start with http:// or https://, not {other}://")),
        };
        if !u.username().is_empty() || u.password().is_some() {
            return Err("the server URL must not carry credentials; put the API key in an environment variable and name it in remote.api_key_env".into());
        }
        if u.query().is_some() || u.fragment().is_some() {
            return Err(format!("the server URL {url:?} has a query or fragment; give just http(s)://host:port"));
        }
        let host = parsed.host().to_string();
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let mut path = u.path().trim_end_matches('/').to_string();
        if path.ends_with("/v1") {
            path.truncate(path.len() - 3);
        }
        let scheme = if https { "https" } else { "http" };
        Ok(Endpoint { root: format!("{scheme}://{authority}{path}"), authority, host, https })
    }

    /// The server is this machine (the key may go to it over plain http).
    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost")
            || h.to_ascii_lowercase().ends_with(".localhost")
            || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `{root}/v1/{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/v1/{}", self.root, path.trim_start_matches('/'))
    }
}

/// An API key. Its `Debug` never shows it, so it cannot leak through a log or a panic message.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// Why an HTTP exchange failed, before it is worded for the user.
#[derive(Debug)]
pub enum HttpError {
    /// The server answered with an error status.
    Status { code: u16, error: Option<ServerError> },
    /// No answer: the connection, DNS, TLS, or a read failed.
    Transport { kind: Transport, detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Dns,
    Refused,
    ConnectTimeout,
    Connect,
    Tls,
    /// A TLS handshake that got no answer in time (often https to a plain-http port).
    TlsTimeout,
    /// No byte for the idle timeout.
    Idle,
    /// A short exchange (listing models, `/props`) not done within [`Client::short_limit`].
    Slow,
    /// Not HTTP (a wrong port, or https spoken to an http port).
    NotHttp,
    /// The connection closed or reset mid-exchange.
    Broken,
    /// The event stream broke the parser's limits.
    Malformed,
}

/// What the helper thread of a streamed request reports, in order: `Open` (the headers said
/// 2xx) or `Failed`; then `Event`s; then `End` (the server closed the stream) or `Failed`.
#[derive(Debug)]
pub enum Piece {
    Open,
    /// An event and the arrival it came in: events with the same number reached moat together
    /// (read without waiting for the network in between), which tells a reply that a proxy held
    /// back and released at once from one that streamed.
    Event(SseEvent, u32),
    End,
    Failed(HttpError),
}

/// A configured connection to one server. Clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    pub endpoint: Endpoint,
    key: Option<ApiKey>,
    /// The variable the key comes from (named in 401 errors).
    pub key_env: String,
    headers: Vec<(String, String)>,
    pub connect_timeout_s: u64,
    pub idle_timeout_s: u64,
}

impl Client {
    /// Reads the key from the environment variable `opts.api_key_env` names (unset or empty =
    /// no key) and checks where it would go.
    ///
    /// Errors: a bad URL, or a key that would go over plain http to another machine without
    /// `allow_insecure_key`.
    pub fn new(opts: &RemoteOptions) -> Result<Client, EngineError> {
        Client::with_env(opts, |name| std::env::var(name).ok())
    }

    /// [`Client::new`] reading variables through `var` (tests give their own environment).
    pub fn with_env(opts: &RemoteOptions, var: impl Fn(&str) -> Option<String>) -> Result<Client, EngineError> {
        let endpoint = Endpoint::parse(&opts.url).map_err(EngineError::Remote)?;
        let key_env = opts.api_key_env.trim().to_string();
        let key = (!key_env.is_empty())
            .then(|| var(&key_env))
            .flatten()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey);
        if key.is_some() && !endpoint.https && !endpoint.is_loopback() && !opts.allow_insecure_key {
            return Err(EngineError::Remote(format!(
                "not sending the API key from ${key_env} over plain http to {}: anyone on the network could read it; use https://, unset {key_env}, or set remote.allow_insecure_key = true on a network you trust",
                endpoint.authority
            )));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(opts.connect_timeout_s.max(1)))
            // Per read, not per request: a stream may last as long as it keeps sending.
            .timeout_read(Duration::from_secs(opts.idle_timeout_s.max(1)))
            .timeout_write(Duration::from_secs(opts.idle_timeout_s.max(1)))
            .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
            // No pooled connections: llama-server may close an idle keep-alive connection just as
            // the next request goes out on it, and ureq does not retry a POST, so the request
            // failed as "connection broke (Unexpected EOF)" (the real-server bench test, 3 of 5
            // runs under load); a fresh connection per request costs a TCP (or TLS) handshake.
            .max_idle_connections(0)
            .build();
        Ok(Client {
            agent,
            endpoint,
            key,
            key_env,
            headers: opts.headers.clone(),
            connect_timeout_s: opts.connect_timeout_s,
            idle_timeout_s: opts.idle_timeout_s,
        })
    }

    /// Whether a key is sent.
    #[cfg(test)]
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let mut r = self.agent.request(method, url);
        for (k, v) in &self.headers {
            r = r.set(k, v);
        }
        if let Some(key) = &self.key {
            r = r.set("Authorization", &format!("Bearer {}", key.0));
        }
        r
    }

    /// GETs `url` and returns its body (at most 64 MiB).
    ///
    /// The whole exchange must end within [`Client::short_limit`]: a port that accepts and never
    /// answers must not hold a start for the idle timeout (meant for generation).
    pub fn get(&self, url: &str) -> Result<String, HttpError> {
        let resp = self
            .request("GET", url)
            .timeout(self.short_limit())
            .set("Accept", "application/json")
            .call()
            .map_err(classify)
            .map_err(|e| match e {
                HttpError::Transport { kind: Transport::Idle, detail } => {
                    HttpError::Transport { kind: Transport::Slow, detail }
                }
                e => e,
            })?;
        let mut body = String::new();
        let mut bytes = Vec::new();
        resp.into_reader().take(MAX_BODY).read_to_end(&mut bytes).map_err(|e| io_error(&e))?;
        body.push_str(&String::from_utf8_lossy(&bytes));
        Ok(body)
    }

    /// The limit on a short exchange: the connect timeout and 10 s.
    pub fn short_limit(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_s.max(1) + 10)
    }

    /// POSTs `body` as JSON and returns the reply's body (at most 64 MiB), for the short
    /// non-streamed exchanges (`/tokenize`, `/apply-template`, one-token completions). The
    /// read timeout is the idle timeout, as for streams.
    ///
    /// Errors: as [`classify`] sorts them (status with the server's message, or transport).
    pub fn post(&self, url: &str, body: &serde_json::Value) -> Result<String, HttpError> {
        self.post_json(self.request("POST", url), body)
    }

    /// [`Client::post`] that gives up after `limit` in all (connection, sending and reading),
    /// for exchanges that must not hold a reply's end for the idle timeout (token counts).
    pub fn post_within(&self, url: &str, body: &serde_json::Value, limit: Duration) -> Result<String, HttpError> {
        self.post_json(self.request("POST", url).timeout(limit), body)
    }

    fn post_json(&self, request: ureq::Request, body: &serde_json::Value) -> Result<String, HttpError> {
        let resp = request
            .set("Accept", "application/json")
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .map_err(classify)?;
        let mut bytes = Vec::new();
        resp.into_reader().take(MAX_BODY).read_to_end(&mut bytes).map_err(|e| io_error(&e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// POSTs `body` and streams the reply on a helper thread (see [`Piece`]). Dropping the
    /// receiver tells the thread to stop: it drops the response, closing the connection, as soon
    /// as its read in progress returns (the next bytes, or the idle timeout).
    pub fn post_stream(&self, url: &str, body: &serde_json::Value) -> Receiver<Piece> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let request = self.request("POST", url).set("Accept", "text/event-stream, application/json");
        let body = body.to_string();
        let spawned = std::thread::Builder::new().name("moat-http".into()).spawn(move || {
            stream_reply(request, &body, &tx);
        });
        if let Err(e) = spawned {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = tx.send(Piece::Failed(HttpError::Transport {
                kind: Transport::Connect,
                detail: format!("cannot start a thread: {e}"),
            }));
            return rx;
        }
        rx
    }
}

/// The helper thread's body: send, then forward the reply's events until it ends or the
/// receiver is gone.
fn stream_reply(request: ureq::Request, body: &str, tx: &Sender<Piece>) {
    let resp = match request.set("Content-Type", "application/json").send_string(body) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Piece::Failed(classify(e)));
            return;
        }
    };
    if tx.send(Piece::Open).is_err() {
        return;
    }
    let streamed = resp.content_type().contains("event-stream");
    let mut reader = resp.into_reader();
    if !streamed {
        // A server that ignored `stream: true`: its whole JSON reply is one event.
        let mut bytes = Vec::new();
        let end = match (&mut reader).take(MAX_BODY).read_to_end(&mut bytes) {
            Ok(_) => Piece::End,
            Err(e) => Piece::Failed(io_error(&e)),
        };
        let data = String::from_utf8_lossy(&bytes).into_owned();
        let _ = tx.send(Piece::Event(SseEvent { event: None, data }, 0));
        let _ = tx.send(end);
        return;
    }
    let mut parser = SseParser::default();
    let mut buf = vec![0u8; 16 << 10];
    let mut events = Vec::new();
    let mut arrival = 0u32;
    loop {
        let began = Instant::now();
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.send(Piece::Failed(io_error(&e)));
                return;
            }
        };
        // Bytes already waiting (in the kernel, or in ureq's buffer and chunk decoder) come back
        // at once; a read that had to wait for the network starts a new arrival.
        if began.elapsed() >= WAITED {
            arrival = arrival.wrapping_add(1);
        }
        if let Err(e) = parser.push(&buf[..n], &mut events) {
            let _ = tx.send(Piece::Failed(HttpError::Transport { kind: Transport::Malformed, detail: e.to_string() }));
            return;
        }
        for e in events.drain(..) {
            if tx.send(Piece::Event(e, arrival)).is_err() {
                return;
            }
        }
    }
    if let Some(e) = parser.finish() {
        let _ = tx.send(Piece::Event(e, arrival));
    }
    let _ = tx.send(Piece::End);
}

/// Sorts a ureq error into status or transport, reading an error body for its message.
pub fn classify(e: ureq::Error) -> HttpError {
    match e {
        ureq::Error::Status(code, resp) => {
            let mut bytes = Vec::new();
            let _ = resp.into_reader().take(MAX_ERROR_BODY).read_to_end(&mut bytes);
            HttpError::Status { code, error: ServerError::from_body(&String::from_utf8_lossy(&bytes)) }
        }
        ureq::Error::Transport(t) => {
            let detail = chain(&t);
            let io_kind = io_kind(&t);
            let lower = detail.to_ascii_lowercase();
            // rustls's wording for a handshake that failed (a bad certificate, or a peer that does
            // not speak TLS at all).
            let tls = [
                "certificate",
                "tls",
                "handshake",
                "ssl",
                "alert",
                "corrupt message",
                "peer is incompatible",
                "peer misbehaved",
                "close_notify",
            ]
            .iter()
            .any(|w| lower.contains(w));
            let kind = match t.kind() {
                ureq::ErrorKind::Dns => Transport::Dns,
                _ if tls && matches!(io_kind, Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)) => {
                    Transport::TlsTimeout
                }
                _ if tls => Transport::Tls,
                ureq::ErrorKind::ConnectionFailed => match io_kind {
                    Some(std::io::ErrorKind::ConnectionRefused) => Transport::Refused,
                    Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => Transport::ConnectTimeout,
                    _ if lower.contains("timed out") => Transport::ConnectTimeout,
                    _ => Transport::Connect,
                },
                ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => Transport::NotHttp,
                _ => match io_kind {
                    Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => Transport::Idle,
                    _ if lower.contains("timed out") => Transport::Idle,
                    _ => Transport::Broken,
                },
            };
            HttpError::Transport { kind, detail }
        }
    }
}

/// A failed read of a body.
fn io_error(e: &std::io::Error) -> HttpError {
    let kind = match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Transport::Idle,
        _ => Transport::Broken,
    };
    HttpError::Transport { kind, detail: e.to_string() }
}

/// The error's own message and its sources', one line, without ureq's URL prefix.
fn chain(t: &ureq::Transport) -> String {
    let mut parts: Vec<String> = t.message().map(|m| vec![m.to_string()]).unwrap_or_default();
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(t.kind().to_string());
    }
    parts.join(": ").split_whitespace().collect::<Vec<_>>().join(" ")
}

fn io_kind(t: &ureq::Transport) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(t);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

impl Client {
    /// The one-line error for a failed exchange. `during` says what was being done ("listing
    /// models", "the reply"); `partial` = some of a reply was already shown (it is kept).
    pub fn explain(&self, e: &HttpError, during: &str, partial: bool) -> EngineError {
        let at = &self.endpoint.authority;
        let kept = if partial { "; the reply so far is kept" } else { "" };
        let msg = match e {
            HttpError::Transport { kind, detail } => match kind {
                Transport::Dns => format!("cannot find the server {}: DNS lookup failed ({detail}); check the host in --remote / remote.url", self.endpoint.host),
                Transport::Refused => format!("nothing is listening at {at} (connection refused); start the server there, or check the port in --remote / remote.url"),
                Transport::ConnectTimeout if self.endpoint.https => format!("no answer from {at} within {} s while connecting over TLS; check the host, port and firewall, and use http:// if the server speaks plain HTTP (remote.connect_timeout_s sets the wait)", self.connect_timeout_s),
                Transport::ConnectTimeout => format!("no answer from {at} within {} s while connecting; check the host, port and firewall (remote.connect_timeout_s sets the wait)", self.connect_timeout_s),
                Transport::Connect => format!("cannot connect to {at}: {detail}; check --remote / remote.url"),
                Transport::Tls => format!("TLS with {at} failed ({detail}); check the server's certificate, or use http:// if it speaks plain HTTP"),
                Transport::TlsTimeout => format!("{at} did not answer the TLS handshake in time; if the server speaks plain HTTP use http://, else check the host and port"),
                Transport::Slow => format!("the server at {at} did not answer within {} s during {during}; check that it is an OpenAI-compatible server (llama-server, vLLM, SGLang, ollama) and not overloaded", self.short_limit().as_secs()),
                Transport::Idle => format!("the server at {at} sent nothing for {} s during {during}{kept}; it may be stuck or overloaded (remote.idle_timeout_s sets the wait)", self.idle_timeout_s),
                Transport::NotHttp => format!("{at} did not answer in HTTP ({detail}); check the port, and http:// versus https://"),
                Transport::Broken if partial => format!("the connection to {at} broke during {during} ({detail}){kept}; the server may have stopped, check its log"),
                Transport::Broken => format!("the connection to {at} broke during {during} ({detail}); check that the server is running"),
                Transport::Malformed => format!("{at}: {detail}{kept}"),
            },
            HttpError::Status { code, error } => {
                let said = error.as_ref().map(ServerError::describe).filter(|s| !s.is_empty());
                let said = said.map(|s| format!(": {s}")).unwrap_or_default();
                match code {
                    401 | 403 if self.key.is_none() && self.key_env.is_empty() => format!("the server at {at} wants an API key (HTTP {code}{said}); set remote.api_key_env to the name of an environment variable that holds it"),
                    401 | 403 if self.key.is_none() => format!("the server at {at} wants an API key (HTTP {code}{said}); set the environment variable {} to it", self.key_env),
                    401 | 403 => format!("the server at {at} refused the API key from ${} (HTTP {code}{said}); set {} to a key the server accepts", self.key_env, self.key_env),
                    404 => format!("the server at {at} answered HTTP 404 during {during}{said}; check the URL (moat adds /v1 itself) and the model id"),
                    408 | 504 => format!("{at} (or a proxy before it) timed out during {during} (HTTP {code}{said}){kept}; try again, or raise the proxy's timeout"),
                    413 => format!("the request is too large for {at} (HTTP 413{said}); shorten the input"),
                    429 => format!("{at} is rate-limiting requests (HTTP 429{said}); wait and try again"),
                    502 | 503 => format!("{at} is unavailable (HTTP {code}{said}); the server may be loading or down, try again shortly"),
                    500..=599 => format!("the server at {at} failed (HTTP {code}{said}); check its log"),
                    400 | 422 => format!("the server at {at} rejected the request (HTTP {code}{said}); change or unset the setting it names"),
                    _ => format!("the server at {at} answered HTTP {code}{said} during {during}"),
                }
            }
        };
        EngineError::Remote(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn urls_with_or_without_v1_name_the_same_root() {
        for url in [
            "http://gpu-box:8000",
            "http://gpu-box:8000/",
            "http://gpu-box:8000/v1",
            "http://gpu-box:8000/v1/",
            " http://GPU-box:8000/v1 ",
        ] {
            let e = ep(url);
            assert_eq!(e.root, "http://gpu-box:8000", "{url}");
            assert_eq!(e.api("models"), "http://gpu-box:8000/v1/models");
        }
        assert_eq!(ep("https://proxy.example/llm/v1").root, "https://proxy.example/llm");
        assert_eq!(ep("https://proxy.example").authority, "proxy.example");
        assert_eq!(ep("http://[::1]:9/v1").api("models"), "http://[::1]:9/v1/models");
    }

    #[test]
    fn bad_urls_are_one_line_errors() {
        for (url, needle) in [
            ("ftp://x", "http:// or https://"),
            ("gpu-box:8000", "http:// or https://"),
            ("http://user:pw@x:1", "credentials"),
            ("http://x:1/?a=b", "query"),
            ("not a url", "http:// or https://"),
            ("http://", "not a URL"),
        ] {
            let e = Endpoint::parse(url).unwrap_err();
            assert!(e.contains(needle) && !e.contains('\n'), "{url}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for url in
            ["http://localhost:1", "http://127.0.0.1:1", "http://127.9.9.9", "http://[::1]:8", "http://api.localhost"]
        {
            assert!(ep(url).is_loopback(), "{url}");
        }
        for url in ["http://10.0.0.1", "http://gpu-box", "http://localhost.evil.com", "http://[::2]"] {
            assert!(!ep(url).is_loopback(), "{url}");
        }
    }

    fn opts(url: &str, env: &str) -> RemoteOptions {
        RemoteOptions {
            url: url.into(),
            model: String::new(),
            api_key_env: env.into(),
            allow_insecure_key: false,
            connect_timeout_s: 1,
            idle_timeout_s: 1,
            headers: Vec::new(),
            tokenizer: None,
        }
    }

    #[test]
    fn the_key_goes_over_plain_http_only_to_loopback_or_when_allowed() {
        // The key's value must never appear in any message.
        let var = "MY_KEY";
        let env = |name: &str| (name == var).then(|| "sk-secret-value".to_string());
        let err = Client::with_env(&opts("http://10.1.2.3:8000", var), env).unwrap_err().to_string();
        assert!(err.contains(var) && err.contains("allow_insecure_key") && !err.contains("sk-secret"), "{err}");
        assert!(Client::with_env(&opts("http://127.0.0.1:8000", var), env).unwrap().has_key());
        assert!(Client::with_env(&opts("https://10.1.2.3:8000", var), env).unwrap().has_key());
        let allowed = RemoteOptions { allow_insecure_key: true, ..opts("http://10.1.2.3:8000", var) };
        let client = Client::with_env(&allowed, env).unwrap();
        assert!(client.has_key());
        assert!(!format!("{client:?}").contains("sk-secret"));
        // Unset or empty: no key, and plain http is fine.
        assert!(!Client::with_env(&opts("http://10.1.2.3:8000", "OTHER"), env).unwrap().has_key());
        assert!(!Client::with_env(&opts("http://10.1.2.3:8000", ""), env).unwrap().has_key());
        let blank = |_: &str| Some("  ".to_string());
        assert!(!Client::with_env(&opts("http://10.1.2.3:8000", var), blank).unwrap().has_key());
    }

    #[test]
    fn status_errors_say_what_to_do_in_one_line() {
        let client = Client::with_env(&opts("http://127.0.0.1:9", "MY_KEY"), |_| None).unwrap();
        let status = |code, msg: &str| HttpError::Status {
            code,
            error: Some(ServerError { message: msg.into(), ..Default::default() }),
        };
        let cases = [
            (status(401, "Invalid API Key"), "set the environment variable MY_KEY"),
            (status(404, "not found"), "moat adds /v1 itself"),
            (status(401, ""), "wants an API key (HTTP 401)"),
            (status(503, "Loading model"), "Loading model"),
            (status(500, "boom"), "check its log"),
            (status(400, "top_k must be -1 or at least 1"), "top_k"),
            (HttpError::Transport { kind: Transport::Refused, detail: "x".into() }, "connection refused"),
            (HttpError::Transport { kind: Transport::Idle, detail: "x".into() }, "sent nothing for 1 s"),
        ];
        for (e, needle) in cases {
            let line = client.explain(&e, "the reply", false).to_string();
            assert!(line.contains(needle) && !line.contains('\n'), "{line}");
        }
        let line = client.explain(
            &HttpError::Transport { kind: Transport::Broken, detail: "reset".into() },
            "the reply",
            true,
        );
        assert!(line.to_string().contains("the reply so far is kept"), "{line}");
    }
}
