//! The engine: one inference thread owns llama.cpp's backend, model and context. Front ends send
//! [`Request`]s and read [`Event`]s over channels, and cancel with an atomic flag that the thread
//! checks between decodes, so no front end ever blocks on the model.

mod backend;

/// llama.cpp's process-wide backend (initialised once; every engine and tool in the process
/// shares it).
pub use backend::backend;
mod bench;
mod classify;
pub mod gpu;
mod sampling;
mod session;
mod template;
pub mod text;
mod worker;

pub use bench::{BenchRequest, BenchSample};
pub use classify::{EmbedRequest, ItemResult, Pooling, PromptSpec, ScoreRequest};

/// Starts llama.cpp (once per process, logs to `log_file`) and describes this machine to it:
/// the devices ggml found and the CPU features it uses.
pub fn probe(log_file: Option<&std::path::Path>) -> (Vec<gpu::Device>, String) {
    backend::backend(log_file);
    (gpu::devices(), backend::system_info())
}

impl ModelInfo {
    /// Where the layers went, in one line ("CPU" or "GPU: 31 of 31 layers …").
    pub fn placement(&self) -> String {
        let mut s = if self.gpu {
            format!("GPU: {} of {} layers (+ output) offloaded", self.gpu_layers.min(self.n_layer as i32), self.n_layer)
        } else {
            format!("CPU ({} layers)", self.n_layer)
        };
        s.push_str(&format!("; flash attention {}; KV cache {}", self.flash_attn, self.cache_types));
        if let Some(n) = &self.gpu_note {
            s.push_str(&format!("; note: {n}"));
        }
        s
    }
}

use crate::config::{Config, FlashAttn, GpuLayers, OverflowPolicy, SamplingConfig};
use crate::message::Message;
use crossbeam_channel::{Receiver, Sender};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How to load a model and size its context.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    pub model_name: String,
    /// 0 = the model's training context.
    pub context: u32,
    /// 0 = physical cores.
    pub threads: u32,
    /// 0 = logical cores.
    pub threads_batch: u32,
    pub batch: u32,
    pub gpu_layers: GpuLayers,
    pub flash_attn: FlashAttn,
    pub cache_type_k: String,
    pub cache_type_v: String,
    pub template: String,
    pub log_file: Option<PathBuf>,
    /// Why an earlier attempt fell back to the CPU (set by the engine itself).
    pub gpu_fallback: Option<String>,
}

impl EngineOptions {
    pub fn from_config(config: &Config, model_path: PathBuf, model_name: String, log_file: Option<PathBuf>) -> Self {
        EngineOptions {
            model_path,
            model_name,
            context: config.model.n_ctx,
            threads: config.model.threads,
            threads_batch: config.model.threads_batch,
            batch: config.model.batch,
            gpu_layers: config.model.gpu_layers,
            flash_attn: config.model.flash_attn,
            cache_type_k: config.model.cache_type_k.clone(),
            cache_type_v: config.model.cache_type_v.clone(),
            template: config.model.template.clone(),
            log_file,
            gpu_fallback: None,
        }
    }
}

pub type RequestId = u64;

#[derive(Debug, Clone)]
pub enum Request {
    /// Reply to a conversation; the prompt shares its prefix with the previous one, so only new
    /// tokens are decoded.
    Chat {
        id: RequestId,
        messages: Vec<Message>,
        sampling: SamplingConfig,
        overflow: OverflowPolicy,
        reserve: u32,
    },
    /// One reply to `messages` for a prompt file: nothing is trimmed to fit, and with `json_schema`
    /// decoding is constrained by the grammar llama.cpp derives from the schema.
    Structured {
        id: RequestId,
        messages: Vec<Message>,
        sampling: SamplingConfig,
        json_schema: Option<String>,
    },
    /// Continue raw text (no chat template).
    Complete {
        id: RequestId,
        prompt: String,
        sampling: SamplingConfig,
    },
    Bench {
        id: RequestId,
        bench: BenchRequest,
    },
    /// Label scores (logits of each label's first token) for many lines; answers with one
    /// `Scored` per line, in input order, then `Done`.
    Score {
        id: RequestId,
        score: Box<ScoreRequest>,
    },
    /// Pooled embeddings for many lines; one `Embedded` per line in input order, then `Done`.
    Embed {
        id: RequestId,
        embed: Box<EmbedRequest>,
    },
    /// Replace the loaded model (and context) with another.
    Load(EngineOptions),
    Shutdown,
}

impl Request {
    /// The same request under another id (front ends build requests before the engine numbers them).
    pub fn with_id(self, new: RequestId) -> Request {
        match self {
            Request::Chat { messages, sampling, overflow, reserve, .. } => {
                Request::Chat { id: new, messages, sampling, overflow, reserve }
            }
            Request::Complete { prompt, sampling, .. } => Request::Complete { id: new, prompt, sampling },
            Request::Structured { messages, sampling, json_schema, .. } => {
                Request::Structured { id: new, messages, sampling, json_schema }
            }
            Request::Bench { bench, .. } => Request::Bench { id: new, bench },
            Request::Score { score, .. } => Request::Score { id: new, score },
            Request::Embed { embed, .. } => Request::Embed { id: new, embed },
            other => other,
        }
    }
}

/// What the model is and how it runs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub path: PathBuf,
    pub architecture: String,
    pub description: String,
    pub n_params: u64,
    pub size_bytes: u64,
    pub n_ctx: u32,
    pub n_ctx_train: u32,
    pub n_batch: u32,
    pub threads: u32,
    pub threads_batch: u32,
    /// Some layers run on a GPU.
    pub gpu: bool,
    /// Layers offloaded (of `n_layer` + the output layer).
    pub gpu_layers: i32,
    pub n_layer: u32,
    /// Why the GPU was not used as asked, if it was not.
    pub gpu_note: Option<String>,
    pub flash_attn: String,
    /// A sequence classifier's output labels, read from the GGUF (empty for other models).
    pub classifier_labels: Vec<String>,
    pub cache_types: String,
    pub chat_format: String,
    pub load_ms: f64,
    pub system_info: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    EndOfGeneration,
    MaxTokens,
    StopString,
    Cancelled,
    /// The context window filled up during the reply.
    ContextFull,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenStats {
    /// Tokens in the whole prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens already in the KV cache from earlier turns.
    pub reused_tokens: usize,
    /// Prompt tokens actually decoded for this request.
    pub decoded_tokens: usize,
    pub gen_tokens: usize,
    pub prompt_ms: f64,
    /// From the request to the first token of the reply.
    pub ttft_ms: f64,
    pub gen_ms: f64,
    pub gen_tok_s: f64,
    /// Tokens in the context after the reply.
    pub context_used: usize,
    pub context_size: usize,
    pub seed: u32,
}

#[derive(Debug, Clone)]
pub enum Event {
    /// Model load progress, 0..=1.
    Loading(f32),
    Loaded(Box<ModelInfo>),
    /// Older turns were dropped to fit the context (policy `drop-oldest`).
    Trimmed {
        id: RequestId,
        dropped_messages: usize,
        prompt_tokens: usize,
    },
    Token {
        id: RequestId,
        text: String,
    },
    Done {
        id: RequestId,
        reason: StopReason,
        stats: GenStats,
    },
    Bench {
        id: RequestId,
        sample: BenchSample,
    },
    Scored {
        id: RequestId,
        index: usize,
        result: ItemResult,
    },
    Embedded {
        id: RequestId,
        index: usize,
        result: ItemResult,
    },
    Error {
        id: Option<RequestId>,
        error: EngineError,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("llama.cpp could not load {path}: {why}")]
    Load { path: String, why: String },
    #[error("cannot create a context of {n_ctx} tokens: {why}; try a smaller --ctx-size")]
    Context { n_ctx: u32, why: String },
    #[error("chat template: {0}")]
    Template(String),
    #[error("the prompt is {tokens} tokens but the context holds {n_ctx} (with {reserve} kept for the reply); shorten the input or raise --ctx-size")]
    PromptTooLong { tokens: usize, n_ctx: usize, reserve: usize },
    #[error("the conversation is {tokens} tokens but the context holds {n_ctx} (with {reserve} kept for the reply); start a new one, or set chat.overflow = \"drop-oldest\"")]
    ContextOverflow { tokens: usize, n_ctx: usize, reserve: usize },
    #[error("the output schema cannot be turned into a grammar: {0}; check the prompt file's [output] schema")]
    Grammar(String),
    #[error("{0}")]
    Classify(String),
    #[error("{name} is a sequence classifier ({labels}), not a model that writes text; use it with `moat classify -m {name}`")]
    Classifier { name: String, labels: String },
    #[error("{name} is an encoder (embedding) model: it cannot write text or score labels; train a head on it with `moat classify train -m {name}`")]
    Encoder { name: String },
    #[error("decode failed: {0}")]
    Decode(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the inference thread stopped unexpectedly")]
    Gone,
}

/// A running engine: the channel ends and the cancel flag.
pub struct Engine {
    tx: Sender<Request>,
    rx: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    next_id: RequestId,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts the inference thread; it begins loading at once and reports `Loading`/`Loaded` or
    /// `Error`. `cancel` may be shared with a Ctrl+C handler.
    pub fn spawn(opts: EngineOptions, cancel: Arc<AtomicBool>) -> Engine {
        let (tx, req_rx) = crossbeam_channel::unbounded();
        let (ev_tx, rx) = crossbeam_channel::unbounded();
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("moat-inference".into())
            .spawn(move || worker::run(opts, req_rx, ev_tx, flag))
            .expect("can spawn the inference thread");
        Engine { tx, rx, cancel, next_id: 1, thread: Some(thread) }
    }

    /// Starts the engine and waits until the model is loaded, calling `progress` on the way.
    pub fn start(
        opts: EngineOptions,
        cancel: Arc<AtomicBool>,
        mut progress: impl FnMut(f32),
    ) -> Result<(Engine, ModelInfo), EngineError> {
        let engine = Engine::spawn(opts, cancel);
        loop {
            match engine.rx.recv() {
                Ok(Event::Loading(p)) => progress(p),
                Ok(Event::Loaded(info)) => return Ok((engine, *info)),
                Ok(Event::Error { error, .. }) => return Err(error),
                Ok(_) => {}
                Err(_) => return Err(EngineError::Gone),
            }
        }
    }

    /// Sends a request built around a fresh id; clears a stale cancel first.
    pub fn send(&mut self, make: impl FnOnce(RequestId) -> Request) -> RequestId {
        let id = self.next_id;
        self.next_id += 1;
        self.cancel.store(false, Ordering::SeqCst);
        let _ = self.tx.send(make(id));
        id
    }

    pub fn send_plain(&self, req: Request) {
        let _ = self.tx.send(req);
    }

    /// A second way in, for work that runs beside a front end (prompt jobs); such senders pick
    /// their own ids and the front end forwards their events.
    pub fn sender(&self) -> Sender<Request> {
        self.tx.clone()
    }

    pub fn events(&self) -> &Receiver<Event> {
        &self.rx
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        let _ = self.tx.send(Request::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a finished request produced, gathered from the event stream.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    pub reason: StopReason,
    pub stats: GenStats,
    pub trimmed_messages: usize,
}

impl Engine {
    /// Runs a request to completion, passing each piece of text to `on_text`.
    pub fn run(
        &mut self,
        make: impl FnOnce(RequestId) -> Request,
        mut on_text: impl FnMut(&str),
    ) -> Result<Reply, EngineError> {
        let id = self.send(make);
        let mut text = String::new();
        let mut trimmed = 0;
        loop {
            match self.rx.recv().map_err(|_| EngineError::Gone)? {
                Event::Token { id: i, text: t } if i == id => {
                    on_text(&t);
                    text.push_str(&t);
                }
                Event::Trimmed { id: i, dropped_messages, .. } if i == id => trimmed += dropped_messages,
                Event::Done { id: i, reason, stats } if i == id => {
                    return Ok(Reply { text, reason, stats, trimmed_messages: trimmed })
                }
                Event::Error { id: Some(i), error } if i == id => return Err(error),
                Event::Error { id: None, error } => return Err(error),
                _ => {}
            }
        }
    }
}
