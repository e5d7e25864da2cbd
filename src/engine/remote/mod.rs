//! The remote backend: an OpenAI-compatible server (llama.cpp's llama-server, vLLM, SGLang,
//! ollama) answers instead of a model in this process. Loading lists the server's models
//! (`GET /v1/models`) and reads its context size; chat and structured tasks stream from
//! `/v1/chat/completions`, completions from `/v1/completions`, and bench measures TTFT and
//! tokens/s over HTTP next to the server's own timings.
//!
//! The inference thread stays the one place requests run. Each request's HTTP exchange runs on
//! a helper thread (`client.rs`) that forwards server-sent events over a channel; the backend
//! waits on it in short slices so a cancel is seen within [`POLL`] even while a read blocks. A
//! cancelled request ends `Done { Cancelled }` with its text kept, and its helper drops the
//! connection at its next read, which is how llama-server and vLLM learn to stop generating.
//! Files: `sse.rs` (the event-stream parser), `wire.rs` (lenient JSON types), `client.rs` (HTTP,
//! the API key, one-line errors), `tokens.rs` (prompt sizes when a reply does not say them).

mod client;
mod score;
pub use score::SCORE_IN_FLIGHT;
mod sse;
mod tokens;
mod wire;

use super::backend::{split_think, Backend, Responder};
use super::protocol::{
    Capabilities, EngineError, EngineOptions, Event, Finish, GenStats, Generated, ModelInfo, RemoteOptions, StopReason,
    StructuredRequest, Task, TaskKind,
};
use super::serve::{self, Inbound, Next, NoModel};
use super::Cancel;
use super::{BenchRequest, BenchSample};
use crate::config::{OverflowPolicy, SamplingConfig};
use crate::message::{drop_oldest_turn, Message};
use client::{Client, HttpError, Piece};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokens::{Count, Counter, Prompt};
use wire::{Chunk, ModelCard, ModelList, Props, ServerError, Timings, Usage};

/// How long the backend waits on the helper thread before looking at the cancel flag again.
const POLL: Duration = Duration::from_millis(50);

/// What a remote server can do for moat: generate, be measured, and score labels from its
/// logprobs (`score.rs`). Embeddings for a trained head would come from another model than the
/// one the head was trained on, so they stay local.
const CAPABILITIES: Capabilities = Capabilities {
    chat: true,
    structured: true,
    complete: true,
    bench: true,
    score: true,
    embed: false,
    tokenize: true,
};

/// Connects to the server `opts.remote` names and serves tasks on it until the inbox asks for
/// another model or a shutdown. A failed connection is reported as `LoadFailed`, and the thread
/// then serves [`NoModel`] until the next `Load`.
pub(super) fn load_and_serve(opts: EngineOptions, inbox: &Receiver<Inbound>, events: &Sender<Event>) -> Next {
    let started = Instant::now();
    let tokenizer = match opts.remote.as_ref().and_then(|r| r.tokenizer.as_deref()).map(Counter::load_tokenizer) {
        Some(Err(e)) => {
            let _ = events.send(Event::LoadFailed(e));
            return serve::serve(&mut NoModel, inbox);
        }
        Some(Ok(t)) => Some(t),
        None => None,
    };
    let connected = match &opts.remote {
        Some(remote) => connect(remote),
        None => Err(EngineError::Remote("no server URL given; pass --remote URL or set remote.url".into())),
    };
    let (client, card, n_ctx) = match connected {
        Ok(c) => c,
        Err(e) => {
            let _ = events.send(Event::LoadFailed(e));
            return serve::serve(&mut NoModel, inbox);
        }
    };
    let meta = card.meta.clone().unwrap_or_default();
    let root = client.endpoint.root.clone();
    let info = ModelInfo {
        name: card.id.clone(),
        path: root.clone().into(),
        architecture: "remote".into(),
        description: card.owned_by.clone().unwrap_or_default(),
        n_params: meta.n_params.unwrap_or(0),
        size_bytes: meta.size.unwrap_or(0),
        n_ctx: n_ctx.min(u32::MAX as u64) as u32,
        n_ctx_train: meta.n_ctx_train.unwrap_or(n_ctx).min(u32::MAX as u64) as u32,
        chat_format: "the server's chat template".into(),
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
        system_info: format!("remote server {root}"),
        capabilities: CAPABILITIES,
        remote: Some(root),
        ..ModelInfo::default()
    };
    let _ = events.send(Event::Loaded(Box::new(info)));
    let counter = Counter::new(tokenizer);
    let mut backend = Remote {
        client,
        model: card.id,
        n_ctx: n_ctx as usize,
        stream_options: AtomicBool::new(true),
        counter,
        n_parallel: match opts.n_parallel {
            0 => crate::engine::protocol::AUTO_PARALLEL as usize,
            n => n as usize,
        },
    };
    serve::serve(&mut backend, inbox)
}

/// A model a server offers, as `moat models list --remote` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RemoteModel {
    pub id: String,
    /// The context the server runs it with, when the server says (vLLM's `max_model_len`,
    /// llama-server's `meta.n_ctx`).
    pub n_ctx: Option<u64>,
    pub owned_by: Option<String>,
}

/// The server's URL (without `/v1`) and the models it lists.
///
/// Errors: one line for a server that cannot be reached, refuses the key, or is not an
/// OpenAI-compatible API.
pub fn list_models(opts: &RemoteOptions) -> Result<(String, Vec<RemoteModel>), EngineError> {
    let client = Client::new(opts)?;
    let cards = models(&client)?;
    let list =
        cards.into_iter().map(|c| RemoteModel { n_ctx: c.n_ctx(), owned_by: c.owned_by.clone(), id: c.id }).collect();
    Ok((client.endpoint.root.clone(), list))
}

fn models(client: &Client) -> Result<Vec<ModelCard>, EngineError> {
    let root = &client.endpoint.root;
    let body = client.get(&client.endpoint.api("models")).map_err(|e| match e {
        HttpError::Status { code: 404, .. } => EngineError::Remote(format!(
            "no OpenAI-compatible API at {root}/v1 (GET /v1/models answered 404); give the server's own address, e.g. http://host:8000"
        )),
        e => client.explain(&e, "listing models", false),
    })?;
    let list: ModelList = serde_json::from_str(&body).map_err(|_| {
        EngineError::Remote(format!(
            "{root}/v1/models did not answer with a model list; is {} an OpenAI-compatible server (llama-server, vLLM, SGLang, ollama)?",
            client.endpoint.authority
        ))
    })?;
    Ok(list.data.into_iter().filter(|c| !c.id.is_empty()).collect())
}

/// Checks the server and picks the model: the one asked for (it must be listed), else the
/// server's only one. Reads the context size from the model list or llama-server's `/props`
/// (0 when the server does not say).
fn connect(opts: &RemoteOptions) -> Result<(Client, ModelCard, u64), EngineError> {
    let client = Client::new(opts)?;
    let cards = models(&client)?;
    let at = &client.endpoint.authority;
    let want = opts.model.trim();
    let listed = || {
        let mut ids: Vec<String> = cards.iter().take(12).map(|c| c.id.clone()).collect();
        if cards.len() > 12 {
            ids.push(format!("… and {} more", cards.len() - 12));
        }
        ids.join(", ")
    };
    let card = if want.is_empty() {
        match cards.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(EngineError::Remote(format!(
                    "the server at {at} lists no models; name one with -m ID (or remote.model)"
                )))
            }
            _ => {
                return Err(EngineError::Remote(format!(
                    "the server at {at} has {} models ({}); choose one with -m ID (or remote.model)",
                    cards.len(),
                    listed()
                )))
            }
        }
    } else {
        // The file name moat shows for an id that is a path also names it, when only one has it.
        let by_name: Vec<&ModelCard> =
            cards.iter().filter(|c| super::protocol::short_model_name(&c.id) == want).collect();
        match cards.iter().find(|c| c.id == want).or(match by_name.as_slice() {
            [one] => Some(*one),
            _ => None,
        }) {
            Some(c) => c.clone(),
            // A server that lists nothing may still serve the name it is given.
            None if cards.is_empty() => ModelCard { id: want.to_string(), ..ModelCard::default() },
            None => {
                return Err(EngineError::Remote(format!(
                    "the server at {at} has no model {want:?}; it has: {} (choose one with -m ID)",
                    listed()
                )))
            }
        }
    };
    let n_ctx = match card.n_ctx() {
        Some(n) => n,
        None => client
            .get(&format!("{}/props", client.endpoint.root))
            .ok()
            .and_then(|body| serde_json::from_str::<Props>(&body).ok())
            .and_then(|p| p.n_ctx())
            .unwrap_or(0),
    };
    Ok((client, card, n_ctx))
}

/// A connected server and the model requests name.
struct Remote {
    client: Client,
    model: String,
    /// The server's context in tokens; 0 = it did not say.
    n_ctx: usize,
    /// Ask for a usage chunk (`stream_options.include_usage`); off once the server rejected it.
    stream_options: AtomicBool,
    /// Prompt sizes for replies that come without usage.
    counter: Counter,
    /// Requests of a `StructuredMany` task in flight at once (`model.n_parallel`).
    n_parallel: usize,
}

/// Where a streamed reply's pieces go: the request's [`Responder`], or a reply that a request
/// thread of a `StructuredMany` task collects.
trait Listener {
    fn cancelled(&self) -> bool;
    fn token(&self, text: &str);
    fn reasoning(&self, text: &str);
}

impl Listener for Responder<'_> {
    fn cancelled(&self) -> bool {
        Responder::cancelled(self)
    }
    fn token(&self, text: &str) {
        Responder::token(self, text)
    }
    fn reasoning(&self, text: &str) {
        Responder::reasoning(self, text)
    }
}

/// One reply of a `StructuredMany` task, collected on its request thread.
struct Collected<'a> {
    cancel: &'a Cancel,
    text: RefCell<String>,
    reasoning: RefCell<String>,
}

impl Listener for Collected<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.is_set()
    }
    fn token(&self, text: &str) {
        self.text.borrow_mut().push_str(text);
    }
    fn reasoning(&self, text: &str) {
        self.reasoning.borrow_mut().push_str(text);
    }
}

impl Backend for Remote {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn refuse(&self, kind: TaskKind) -> EngineError {
        EngineError::Unsupported {
            backend: format!("the remote server at {} (model {})", self.client.endpoint.authority, self.model),
            what: kind.describe(),
        }
    }

    fn run(&mut self, task: Task, out: &Responder<'_>) -> Result<Finish, EngineError> {
        match task {
            // The server checks the prompt against its own context; `reserve` is the local
            // engine's margin for the reply when it decides what fits.
            Task::Chat { messages, sampling, overflow, reserve: _ } => self.chat(messages, &sampling, overflow, out),
            Task::Structured { messages, sampling, json_schema } => {
                let format = match json_schema {
                    Some(schema) => Some(response_format(&schema)?),
                    None => None,
                };
                let (body, seed) = self.chat_body(&messages, &sampling, format);
                match self.open("chat/completions", body, out) {
                    Ok(Some(rx)) => self.reply(rx, out, Instant::now(), seed, Prompt::Chat(&messages), None),
                    Ok(None) => Ok(cancelled()),
                    Err(e) => Err(self.refused(&e, false)),
                }
            }
            Task::Complete { prompt, sampling } => {
                let mut body = self.base_body(&sampling);
                body.insert("prompt".into(), prompt.as_str().into());
                let seed = seed_of(&body);
                let start = Instant::now();
                match self.open("completions", body, out) {
                    Ok(Some(rx)) => self.reply(rx, out, start, seed, Prompt::Text(&prompt), None),
                    Ok(None) => Ok(cancelled()),
                    Err(e) => Err(self.refused(&e, false)),
                }
            }
            Task::StructuredMany { requests } => self.structured_many(&requests, out),
            Task::Tokenize { texts } => {
                for (index, text) in texts.iter().enumerate() {
                    if out.cancelled() {
                        return Ok(cancelled());
                    }
                    let c = self.counter.count(&self.client, &self.model, Prompt::Text(text));
                    out.counted(index, c.tokens, c.exact);
                }
                Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() })
            }
            Task::Bench(req) => self.bench(&req, out),
            Task::Score(req) => score::score(self, &req, out),
            Task::Embed(_) => Err(self.refuse(TaskKind::Embed)),
        }
    }
}

fn cancelled() -> Finish {
    Finish { reason: StopReason::Cancelled, stats: GenStats::default() }
}

/// `response_format` for a JSON schema, which llama-server, vLLM and SGLang turn into a grammar.
fn response_format(schema: &str) -> Result<Value, EngineError> {
    let schema: Value = serde_json::from_str(schema).map_err(|e| EngineError::Grammar(format!("not JSON: {e}")))?;
    Ok(json!({ "type": "json_schema", "json_schema": { "name": "output", "schema": schema, "strict": true } }))
}

fn seed_of(body: &Map<String, Value>) -> u32 {
    body.get("seed").and_then(Value::as_u64).unwrap_or(0) as u32
}

impl Remote {
    /// The model, streaming, and the sampling settings. A seed of -1 becomes a fresh random seed
    /// that is sent and reported, so a reply can be reproduced.
    fn base_body(&self, s: &SamplingConfig) -> Map<String, Value> {
        let mut b = Map::new();
        b.insert("model".into(), self.model.clone().into());
        b.insert("stream".into(), true.into());
        b.insert("max_tokens".into(), s.max_tokens.into());
        b.insert("temperature".into(), s.temperature.into());
        b.insert("top_p".into(), s.top_p.into());
        // 0 = off here; servers disagree on 0 but all read -1 as off.
        b.insert("top_k".into(), (if s.top_k > 0 { s.top_k } else { -1 }).into());
        b.insert("min_p".into(), s.min_p.into());
        if s.repeat_penalty != 1.0 {
            // llama-server's name and vLLM's / SGLang's; each server ignores the other's.
            b.insert("repeat_penalty".into(), s.repeat_penalty.into());
            b.insert("repetition_penalty".into(), s.repeat_penalty.into());
            b.insert("repeat_last_n".into(), s.repeat_last_n.into());
        }
        if s.dry_multiplier > 0.0 {
            // llama-server's names (KoboldCpp and text-generation-webui share them); vLLM and others ignore them.
            b.insert("dry_multiplier".into(), s.dry_multiplier.into());
            b.insert("dry_base".into(), s.dry_base.into());
            b.insert("dry_allowed_length".into(), s.dry_allowed_length.into());
        }
        let seed = if s.seed >= 0 { s.seed as u32 } else { super::random_seed() };
        b.insert("seed".into(), seed.into());
        if !s.stop.is_empty() {
            b.insert("stop".into(), s.stop.clone().into());
        }
        b
    }

    fn chat_body(
        &self,
        messages: &[Message],
        sampling: &SamplingConfig,
        response_format: Option<Value>,
    ) -> (Map<String, Value>, u32) {
        let mut body = self.base_body(sampling);
        let messages: Vec<Value> =
            messages.iter().map(|m| json!({ "role": m.role.as_str(), "content": m.content })).collect();
        body.insert("messages".into(), messages.into());
        if let Some(f) = response_format {
            body.insert("response_format".into(), f);
        }
        let seed = seed_of(&body);
        (body, seed)
    }

    /// A chat turn; with `drop-oldest`, a conversation the server says is too long loses its
    /// oldest turns until it fits (the server's 400 comes before any generation, so each retry is
    /// cheap).
    fn chat(
        &mut self,
        mut messages: Vec<Message>,
        sampling: &SamplingConfig,
        overflow: OverflowPolicy,
        out: &Responder<'_>,
    ) -> Result<Finish, EngineError> {
        let mut dropped = 0;
        loop {
            let (body, seed) = self.chat_body(&messages, sampling, None);
            let start = Instant::now();
            match self.open("chat/completions", body, out) {
                Ok(Some(rx)) => {
                    // The server does not say the new prompt's size before the reply; it is
                    // counted while the reply waits in the helper thread, and kept for its stats.
                    let counted = (dropped > 0).then(|| {
                        let c = self.counter.count(&self.client, &self.model, Prompt::Chat(&messages));
                        out.trimmed(dropped, c.tokens);
                        c
                    });
                    return self.reply(rx, out, start, seed, Prompt::Chat(&messages), counted);
                }
                Ok(None) => return Ok(cancelled()),
                Err(e) => {
                    let too_long =
                        matches!(&e, HttpError::Status { error: Some(se), .. } if se.context_exceeded().is_some());
                    if too_long && overflow == OverflowPolicy::DropOldest {
                        match drop_oldest_turn(&mut messages) {
                            0 => return Err(self.refused(&e, false)),
                            n => dropped += n,
                        }
                        continue;
                    }
                    return Err(self.refused(&e, false));
                }
            }
        }
    }

    /// Starts a streamed request and waits for its headers. `Ok(None)` = cancelled first. A 400
    /// while asking for a usage chunk is retried once without it (some servers reject
    /// `stream_options`), and later requests leave it out.
    fn open(
        &self,
        path: &str,
        mut body: Map<String, Value>,
        out: &dyn Listener,
    ) -> Result<Option<Receiver<Piece>>, HttpError> {
        let url = self.client.endpoint.api(path);
        loop {
            let asked_usage = self.stream_options.load(Ordering::Relaxed);
            if asked_usage {
                body.insert("stream_options".into(), json!({ "include_usage": true }));
            } else {
                body.remove("stream_options");
            }
            let rx = self.client.post_stream(&url, &Value::Object(body.clone()));
            let first = loop {
                if out.cancelled() {
                    return Ok(None);
                }
                match rx.recv_timeout(POLL) {
                    Ok(p) => break p,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => {
                        return Err(HttpError::Transport {
                            kind: client::Transport::Broken,
                            detail: "the request thread stopped".into(),
                        })
                    }
                }
            };
            match first {
                Piece::Open => return Ok(Some(rx)),
                Piece::Failed(HttpError::Status { code: 400, error })
                    if asked_usage && error.as_ref().is_none_or(|e| e.context_exceeded().is_none()) =>
                {
                    self.stream_options.store(false, Ordering::Relaxed);
                }
                Piece::Failed(e) => return Err(e),
                Piece::Event(..) | Piece::End => {
                    return Err(HttpError::Transport {
                        kind: client::Transport::Broken,
                        detail: "the reply began without headers".into(),
                    })
                }
            }
        }
    }

    /// `requests` as that many structured chat requests, `n_parallel` in flight at once (request
    /// threads sharing the client), one `Generated` each as it ends. A request the server refuses
    /// is that request's `Err`; the others go on. A cancel ends each reply at its next read.
    fn structured_many(&self, requests: &[StructuredRequest], out: &Responder<'_>) -> Result<Finish, EngineError> {
        let next = AtomicUsize::new(0);
        let cancel = out.cancel();
        let (tx, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::scope(|scope| {
            let mut spawned = 0;
            for _ in 0..self.n_parallel.clamp(1, requests.len().max(1)) {
                let (tx, next) = (tx.clone(), &next);
                let worker =
                    std::thread::Builder::new().name("moat-request".into()).spawn_scoped(scope, move || loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(req) = requests.get(index) else { break };
                        if tx.send((index, self.structured_one(req, cancel))).is_err() {
                            break;
                        }
                    });
                if worker.is_err() {
                    break;
                }
                spawned += 1;
            }
            drop(tx);
            for (index, result) in rx.iter() {
                out.generated(index, result);
            }
            spawned
        });
        if spawned == 0 && !requests.is_empty() {
            return Err(EngineError::Remote("cannot start a request thread; the system is out of threads".into()));
        }
        let reason = if out.cancelled() { StopReason::Cancelled } else { StopReason::Finished };
        Ok(Finish { reason, stats: GenStats::default() })
    }

    /// One request of a `StructuredMany` task, collected rather than streamed.
    fn structured_one(&self, req: &StructuredRequest, cancel: &Cancel) -> Result<Generated, EngineError> {
        let format = match &req.json_schema {
            Some(schema) => Some(response_format(schema)?),
            None => None,
        };
        let (body, seed) = self.chat_body(&req.messages, &req.sampling, format);
        let got = Collected { cancel, text: RefCell::default(), reasoning: RefCell::default() };
        let start = Instant::now();
        let end = match self.open("chat/completions", body, &got) {
            Ok(Some(rx)) => self.reply(rx, &got, start, seed, Prompt::Chat(&req.messages), None)?,
            Ok(None) => cancelled(),
            Err(e) => return Err(self.refused(&e, false)),
        };
        let (text, think) = split_think(&got.text.into_inner());
        let mut reasoning = got.reasoning.into_inner();
        reasoning.push_str(&think);
        Ok(Generated { text, reasoning, reason: end.reason, stats: end.stats })
    }

    /// The one-line error for a request the server refused before replying.
    fn refused(&self, e: &HttpError, partial: bool) -> EngineError {
        if let HttpError::Status { error: Some(se), .. } = e {
            if let Some((tokens, n_ctx)) = se.context_exceeded() {
                let n_ctx = n_ctx.or((self.n_ctx > 0).then_some(self.n_ctx));
                return EngineError::ServerContext { tokens, n_ctx, detail: se.describe() };
            }
        }
        self.client.explain(e, "the reply", partial)
    }

    /// Streams a reply's text to `out` and says how it ended. Without a prompt size in the
    /// reply's usage, `prompt` is counted (one round trip, none for a cancelled reply) unless
    /// `counted` already holds its size.
    fn reply(
        &self,
        rx: Receiver<Piece>,
        out: &dyn Listener,
        start: Instant,
        seed: u32,
        prompt: Prompt<'_>,
        counted: Option<Count>,
    ) -> Result<Finish, EngineError> {
        let s = self.read(rx, out, &mut |t| out.token(t))?;
        let counted = match counted {
            Some(c) => Some(c),
            None if s.usage.as_ref().is_some_and(|u| u.prompt_tokens.is_some()) => None,
            None if s.cancelled => Some(self.counter.here(prompt)),
            None => Some(self.counter.count(&self.client, &self.model, prompt)),
        };
        let mut stats = self.stats(&s, start, seed, counted);
        stats.note = s.buffered().then(|| s.buffered_note());
        let reason = if s.cancelled {
            StopReason::Cancelled
        } else {
            match s.finish.as_deref() {
                Some("length") if self.n_ctx > 0 && stats.context_used >= self.n_ctx => StopReason::ContextFull,
                Some("length") => StopReason::MaxTokens,
                _ => StopReason::EndOfGeneration,
            }
        };
        Ok(Finish { reason, stats })
    }

    /// Reads the stream until `[DONE]`, the end of the stream after the reply finished, a
    /// cancel, or a failure. Reply text goes to `on_text`; reasoning (`reasoning_content`) goes
    /// to the front end apart from it, as a leading `<think>` block would.
    fn read(
        &self,
        rx: Receiver<Piece>,
        out: &dyn Listener,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Streamed, EngineError> {
        let mut s = Streamed::default();
        let at = &self.client.endpoint.authority;
        loop {
            if out.cancelled() {
                // Dropping `rx` tells the helper thread to drop the connection.
                s.cancelled = true;
                return Ok(s);
            }
            let piece = match rx.recv_timeout(POLL) {
                Ok(p) => p,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => Piece::End,
            };
            let (event, arrival) = match piece {
                Piece::Open => continue,
                Piece::Event(e, arrival) => (e, arrival),
                Piece::End if s.finish.is_some() || s.usage.is_some() => return Ok(s),
                Piece::End if s.pieces > 0 => {
                    return Err(EngineError::Remote(format!(
                        "the server at {at} closed the connection mid-reply; the reply so far is kept; the server may have stopped, check its log"
                    )))
                }
                Piece::End => {
                    return Err(EngineError::Remote(format!(
                        "the server at {at} closed the connection without replying; check that it is running and its log"
                    )))
                }
                Piece::Failed(e) => return Err(self.refused(&e, s.pieces > 0)),
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return Ok(s);
            }
            let kept = if s.pieces > 0 { "; the reply so far is kept" } else { "" };
            let Ok(value) = serde_json::from_str::<Value>(data) else {
                let shown: String = data.chars().take(60).collect();
                return Err(EngineError::Remote(format!(
                    "the server at {at} sent an event that is not JSON ({shown:?}){kept}; is it an OpenAI-compatible server?"
                )));
            };
            if event.event.as_deref() == Some("error") || value.get("error").is_some_and(|e| !e.is_null()) {
                let error = ServerError::from_value(&value).unwrap_or_default();
                if let (0, Some((tokens, n_ctx))) = (s.pieces, error.context_exceeded()) {
                    let n_ctx = n_ctx.or((self.n_ctx > 0).then_some(self.n_ctx));
                    return Err(EngineError::ServerContext { tokens, n_ctx, detail: error.describe() });
                }
                let said = error.describe();
                let said = if said.is_empty() { "no reason given".to_string() } else { said };
                let when = if s.pieces > 0 { "mid-reply" } else { "before replying" };
                return Err(EngineError::Remote(format!(
                    "the server at {at} failed {when}: {said}{kept}; check its log"
                )));
            }
            let chunk: Chunk = serde_json::from_value(value).unwrap_or_default();
            for choice in chunk.choices.iter().filter(|c| c.index.unwrap_or(0) == 0) {
                let reasoning = choice.reasoning().is_some_and(|r| !r.is_empty());
                let text = choice.content().filter(|t| !t.is_empty());
                if reasoning || text.is_some() {
                    let now = Instant::now();
                    s.first.get_or_insert(now);
                    s.last = Some(now);
                    s.pieces += 1;
                    if s.arrival != Some(arrival) {
                        s.arrival = Some(arrival);
                        s.arrivals += 1;
                    }
                }
                if let Some(r) = choice.reasoning().filter(|r| !r.is_empty()) {
                    out.reasoning(r);
                }
                if let Some(t) = text {
                    on_text(t);
                }
                if let Some(r) = &choice.finish_reason {
                    s.finish = Some(r.clone());
                }
            }
            if chunk.usage.is_some() {
                s.usage = chunk.usage;
            }
            if chunk.timings.is_some() {
                s.timings = chunk.timings;
            }
        }
    }

    /// Figures for a streamed reply: token counts from the server (usage, else llama-server's
    /// timings, else `counted` for the prompt and the number of text pieces for the reply),
    /// times measured here.
    fn stats(&self, s: &Streamed, start: Instant, seed: u32, counted: Option<Count>) -> GenStats {
        let usage = s.usage.clone().unwrap_or_default();
        let t = s.timings.clone().unwrap_or_default();
        let counted = counted.filter(|_| usage.prompt_tokens.is_none());
        let prompt_tokens = usage.prompt_tokens.map(|n| n as usize).or(counted.map(|c| c.tokens)).unwrap_or(0);
        let gen_counted = usage.completion_tokens.or(t.predicted_n);
        let gen_tokens = gen_counted.map(|n| n as usize).unwrap_or(s.pieces);
        let reused = t.cache_n.or(usage.prompt_tokens_details.and_then(|d| d.cached_tokens)).map(|n| n as usize);
        let mut stats = GenStats {
            prompt_tokens,
            reused_tokens: reused.unwrap_or(0),
            decoded_tokens: t.prompt_n.map(|n| n as usize).unwrap_or(prompt_tokens.saturating_sub(reused.unwrap_or(0))),
            gen_tokens,
            context_used: prompt_tokens + gen_tokens,
            n_ctx: self.n_ctx,
            context_estimated: (usage.prompt_tokens.is_none() && !counted.is_some_and(|c| c.exact))
                || gen_counted.is_none(),
            seed,
            server_gen_tok_s: t.predicted_per_second,
            ..GenStats::default()
        };
        if let (Some(first), Some(last)) = (s.first, s.last) {
            stats.ttft_ms = ms(first.duration_since(start));
            stats.gen_ms = ms(last.duration_since(first));
            if gen_tokens > 1 && stats.gen_ms > 0.0 {
                stats.gen_tok_s = (gen_tokens - 1) as f64 / (stats.gen_ms / 1000.0);
            }
        }
        stats.prompt_ms = t.prompt_ms.unwrap_or(stats.ttft_ms);
        stats
    }

    /// `reps` completions of a prompt of about `prompt_tokens` tokens (pseudo-random words, new
    /// ones each time so no server cache helps) generating `gen_tokens` tokens each (end of
    /// sequence ignored, greedy), measured here and compared with the server's own timings.
    fn bench(&mut self, req: &BenchRequest, out: &Responder<'_>) -> Result<Finish, EngineError> {
        // A fresh seed per run: a server keeps the last prompt in its KV cache, and the same
        // words as the previous run would be served from it.
        let mut rng = crate::rng::Rng::new(0x2545_F491_4F6C_DD1D ^ u64::from(super::random_seed()));
        // A warm-up request: the first one may load weights or compile graphs.
        let warm = BenchRequest { depth: None, prompt_tokens: 16, gen_tokens: 4, reps: 1 };
        for rep in 0..=req.reps {
            let (r, warmup) = if rep == 0 { (&warm, true) } else { (req, false) };
            let mut body = Map::new();
            body.insert("model".into(), self.model.clone().into());
            body.insert("prompt".into(), bench_prompt(&mut rng, r.prompt_tokens).into());
            body.insert("max_tokens".into(), r.gen_tokens.into());
            body.insert("temperature".into(), 0.0.into());
            body.insert("ignore_eos".into(), true.into());
            body.insert("stream".into(), true.into());
            let start = Instant::now();
            let rx = match self.open("completions", body, out) {
                Ok(Some(rx)) => rx,
                Ok(None) => return Err(EngineError::Cancelled),
                Err(e) => return Err(self.refused(&e, false)),
            };
            let s = self.read(rx, out, &mut |t| {
                if !warmup {
                    out.token(t)
                }
            })?;
            let end = s.last.unwrap_or_else(Instant::now);
            if s.cancelled {
                return Err(EngineError::Cancelled);
            }
            if warmup {
                continue;
            }
            let stats = self.stats(&s, start, 0, None);
            let first = s.first.unwrap_or(end);
            let gen_wall_ms = ms(end.duration_since(first));
            // The server's own definition (tokens over the time from the first to the last), so
            // the ratio compares like with like.
            let gen_tok_s = if gen_wall_ms > 0.0 { stats.gen_tokens as f64 / (gen_wall_ms / 1000.0) } else { 0.0 };
            let server = stats.server_gen_tok_s.unwrap_or(0.0);
            let pp_ms = stats.prompt_ms;
            // The server's prompt time covers only the tokens it decoded, not those its cache held.
            let decoded = if stats.decoded_tokens > 0 { stats.decoded_tokens } else { stats.prompt_tokens };
            out.bench(BenchSample {
                rep: rep - 1,
                depth: 0,
                pp_tokens: stats.prompt_tokens,
                pp_ms,
                pp_tok_s: if pp_ms > 0.0 { decoded as f64 / (pp_ms / 1000.0) } else { 0.0 },
                ttft_ms: stats.ttft_ms,
                gen_tokens: stats.gen_tokens,
                gen_wall_ms,
                gen_tok_s,
                llama_gen_tok_s: server,
                ratio: if server > 0.0 { gen_tok_s / server } else { 0.0 },
            });
        }
        Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() })
    }
}

/// What a streamed reply brought.
#[derive(Debug, Default)]
struct Streamed {
    /// Chunks that carried text (reply or reasoning).
    pieces: usize,
    first: Option<Instant>,
    last: Option<Instant>,
    finish: Option<String>,
    usage: Option<Usage>,
    timings: Option<Timings>,
    cancelled: bool,
    /// The arrival (see [`Piece::Event`]) of the last chunk with text, and how many arrivals
    /// brought text.
    arrival: Option<u32>,
    arrivals: usize,
}

/// Chunks with text a reply must have, on average per arrival, to be called held back: a
/// streaming server's come one or two at a time, a buffering proxy's by the dozen.
const BURST: usize = 24;

impl Streamed {
    /// The reply's text came all at once, or in a few large bursts, rather than as it was
    /// generated: a proxy between moat and the server (or the server itself) buffers the stream.
    fn buffered(&self) -> bool {
        self.pieces >= BURST && self.arrivals > 0 && self.pieces >= BURST * self.arrivals
    }

    fn buffered_note(&self) -> String {
        let how = match self.arrivals {
            1 => "all at once".to_string(),
            n => format!("in {n} bursts"),
        };
        format!(
            "the reply arrived {how}, not token by token: something between moat and the server (a proxy such as nginx) buffers the stream; turn buffering off there (nginx: proxy_buffering off, or the header X-Accel-Buffering: no) to see tokens as they come"
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// About `tokens` tokens of ordinary words (one token each in common vocabularies).
fn bench_prompt(rng: &mut crate::rng::Rng, tokens: usize) -> String {
    const WORDS: [&str; 32] = [
        "market", "model", "price", "value", "growth", "team", "product", "risk", "cost", "sales", "data", "plan",
        "year", "time", "work", "world", "house", "water", "light", "money", "state", "order", "power", "field",
        "story", "table", "paper", "music", "river", "green", "happy", "small",
    ];
    let mut s = String::with_capacity(tokens * 7);
    for i in 0..tokens.max(1) {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}
