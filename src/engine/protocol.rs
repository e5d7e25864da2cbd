//! What goes into the engine and what comes back.
//!
//! A front end hands the engine a [`Task`] and gets a [`Ticket`](super::Ticket); the engine
//! numbers it (ids are the engine's alone) and answers with a stream of [`Update`]s on the
//! ticket's own channel. Every request ends with exactly one terminal update:
//!
//! | task | updates, in order |
//! |------|-------------------|
//! | [`Task::Chat`] | `Trimmed`? (older turns dropped to fit), `Reasoning`*, `Token`*, then `Done` or `Failed` |
//! | [`Task::Structured`], [`Task::Complete`] | `Reasoning`*, `Token`*, then `Done` or `Failed` |
//! | [`Task::Bench`] | per repetition: `Token`* then `Bench`; then `Done` or `Failed` |
//! | [`Task::Score`], [`Task::Embed`] | one `Item` per input line, in input order, then `Done` or `Failed` |
//! | [`Task::Tokenize`] | one `Counted` per text, in input order, then `Done` or `Failed` |
//! | [`Task::StructuredMany`] | one `Generated` per request as each finishes (any order; a request's own failure is its `Err`), then `Done` or `Failed` |
//!
//! **Cancellation is the same for every task**: a cancelled request (its ticket cancelled or
//! dropped, [`Engine::cancel`](super::Engine::cancel), or the shared interrupt flag) stops at the
//! next check — between decodes, between batches of lines, between bench repetitions — and ends
//! with `Done { reason: StopReason::Cancelled }`, keeping every update already sent (the text so
//! far, the lines already scored). It is never an error. A request cancelled while still queued
//! ends the same way without running. In a `StructuredMany` task every reply not yet finished
//! is sent as a `Generated` with reason `Cancelled` (its text so far) before the `Done`.
//!
//! Units: token counts are tokens of the model in use; times are milliseconds of wall clock
//! measured in the inference thread; rates are tokens per second.
//!
//! Engine-level news (model loading) comes on the engine's own channel as [`Event`]s.

use super::{BenchRequest, BenchSample, EmbedRequest, ItemResult, ScoreRequest};
use crate::config::{FlashAttn, GpuLayers, OverflowPolicy, SamplingConfig};
use crate::message::Message;
use std::path::PathBuf;

/// The engine's number for a request, unique for the engine's lifetime.
pub type RequestId = u64;

/// Work for the engine.
#[derive(Debug, Clone)]
pub enum Task {
    /// Reply to a conversation. The prompt usually shares its prefix with the previous request's,
    /// so only the new tokens are decoded (the KV cache is kept across requests). When the
    /// rendered conversation plus `reserve` reply tokens exceeds n_ctx, `overflow` decides:
    /// drop the oldest turns (a `Trimmed` update says how many) or fail with
    /// [`EngineError::ContextOverflow`].
    Chat { messages: Vec<Message>, sampling: SamplingConfig, overflow: OverflowPolicy, reserve: u32 },
    /// One reply to `messages` for a prompt file: nothing is trimmed (too long fails with
    /// [`EngineError::PromptTooLong`]), and with `json_schema` decoding is constrained by the
    /// grammar derived from the schema and steered to close the JSON within `max_tokens`.
    Structured { messages: Vec<Message>, sampling: SamplingConfig, json_schema: Option<String> },
    /// Many independent [`Task::Structured`] requests, run at once: locally as up to
    /// `model.n_parallel` sequences decoded together in a context of their own, on a remote
    /// server as that many concurrent requests. One `Generated` per request as it finishes.
    StructuredMany { requests: Vec<StructuredRequest> },
    /// Each text's length in tokens of the model in use: locally the vocabulary's tokenizer with
    /// no BOS and special-token text left as text (exact); on a remote server its `/tokenize`
    /// (llama-server, vLLM, SGLang; exact, though llama-server adds a BOS where the model has one),
    /// else an estimate from `remote.tokenizer` or the characters ([`Update::Counted`] says
    /// which). One `Counted` per text.
    Tokenize { texts: Vec<String> },
    /// Continue raw text (no chat template, BOS added when the model wants one).
    Complete { prompt: String, sampling: SamplingConfig },
    /// llama-bench style measurements; one `Bench` update per repetition.
    Bench(BenchRequest),
    /// Label scores (logits of each label's first token) for many lines; one `Item` per line.
    Score(Box<ScoreRequest>),
    /// Pooled embeddings (or a classifier head's logits) for many lines; one `Item` per line.
    Embed(Box<EmbedRequest>),
}

impl Task {
    /// What kind of work this is, for capability checks and error messages.
    pub fn kind(&self) -> TaskKind {
        match self {
            Task::Chat { .. } => TaskKind::Chat,
            Task::Structured { .. } => TaskKind::Structured,
            Task::StructuredMany { .. } => TaskKind::StructuredMany,
            Task::Tokenize { .. } => TaskKind::Tokenize,
            Task::Complete { .. } => TaskKind::Complete,
            Task::Bench(_) => TaskKind::Bench,
            Task::Score(_) => TaskKind::Score,
            Task::Embed(_) => TaskKind::Embed,
        }
    }
}

/// One request of a [`Task::StructuredMany`]: what a [`Task::Structured`] holds.
#[derive(Debug, Clone)]
pub struct StructuredRequest {
    pub messages: Vec<Message>,
    pub sampling: SamplingConfig,
    pub json_schema: Option<String>,
}

/// A finished request of a [`Task::StructuredMany`]: its reply text (a leading `<think>` block
/// moved to `reasoning`), why it ended and its figures.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    pub text: String,
    pub reasoning: String,
    pub reason: StopReason,
    pub stats: GenStats,
}

/// The kinds of [`Task`], without their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Chat,
    Structured,
    StructuredMany,
    Tokenize,
    Complete,
    Bench,
    Score,
    Embed,
}

impl TaskKind {
    /// What a user would call it ("label scoring").
    pub fn describe(self) -> &'static str {
        match self {
            TaskKind::Chat => "chat",
            TaskKind::Structured => "structured (JSON) output",
            TaskKind::StructuredMany => "parallel structured (JSON) output",
            TaskKind::Tokenize => "token counting",
            TaskKind::Complete => "text completion",
            TaskKind::Bench => "benchmarking",
            TaskKind::Score => "label scoring",
            TaskKind::Embed => "embeddings",
        }
    }
}

/// What a backend can do. Front ends check it before offering a mode; the engine refuses a task
/// outside it with a one-line error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    pub chat: bool,
    pub structured: bool,
    pub complete: bool,
    pub bench: bool,
    pub score: bool,
    pub embed: bool,
    /// Token counting ([`Task::Tokenize`]); encoders count too.
    pub tokenize: bool,
}

impl Capabilities {
    /// Everything a local generative model does.
    pub const ALL: Capabilities = Capabilities {
        chat: true,
        structured: true,
        complete: true,
        bench: true,
        score: true,
        embed: true,
        tokenize: true,
    };

    pub fn supports(&self, kind: TaskKind) -> bool {
        match kind {
            TaskKind::Chat => self.chat,
            TaskKind::Structured | TaskKind::StructuredMany => self.structured,
            TaskKind::Tokenize => self.tokenize,
            TaskKind::Complete => self.complete,
            TaskKind::Bench => self.bench,
            TaskKind::Score => self.score,
            TaskKind::Embed => self.embed,
        }
    }
}

/// What a request sends back, on its ticket's channel.
#[derive(Debug, Clone)]
pub enum Update {
    /// A piece of reply text: whole UTF-8 characters, stop strings already removed.
    Token(String),
    /// A piece of the model's reasoning (a leading `<think>…</think>` block, or a server's
    /// `reasoning_content`): shown apart from the answer, never part of the reply text.
    Reasoning(String),
    /// Older turns were dropped to fit the context (policy `drop-oldest`); `prompt_tokens` is the
    /// prompt's size after dropping.
    Trimmed { dropped_messages: usize, prompt_tokens: usize },
    /// The result for input line `index` of a `Score` or `Embed` task: label logits (one per
    /// label, in the request's order) or a pooled vector; an `Err` is that line's own one-line
    /// error (the rest go on).
    Item { index: usize, result: ItemResult },
    /// Text `index` of a `Tokenize` task is `tokens` long; `exact` = counted with the model's own
    /// tokenizer (always locally), else estimated (a remote server that cannot count).
    Counted { index: usize, tokens: usize, exact: bool },
    /// Request `index` of a `StructuredMany` task finished (or failed on its own: a prompt too
    /// long, a server error; the other requests go on).
    Generated { index: usize, result: Result<Generated, EngineError> },
    /// One benchmark repetition.
    Bench(BenchSample),
    /// The request ended (finished, hit a limit, or was cancelled).
    Done(Finish),
    /// The request failed; nothing follows.
    Failed(EngineError),
}

/// How a request ended.
#[derive(Debug, Clone, Default)]
pub struct Finish {
    pub reason: StopReason,
    /// Generation figures (all zero for bench, score and embed tasks).
    pub stats: GenStats,
}

/// Engine-level news on [`Engine::events`](super::Engine::events): model loading.
#[derive(Debug, Clone)]
pub enum Event {
    /// Model load progress, 0..=1.
    Loading(f32),
    Loaded(Box<ModelInfo>),
    /// Loading failed; the engine stays up without a model (every task fails with
    /// [`EngineError::NoModel`]) until a model loads.
    LoadFailed(EngineError),
}

/// Why a request ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn.
    #[default]
    EndOfGeneration,
    MaxTokens,
    StopString,
    Cancelled,
    /// The context window filled up during the reply.
    ContextFull,
    /// A task that generates no text did all its work (bench, score, embed).
    Finished,
}

/// Figures for one generation request.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenStats {
    /// Tokens in the whole prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens already in the KV cache from earlier requests.
    pub reused_tokens: usize,
    /// Prompt tokens actually decoded for this request.
    pub decoded_tokens: usize,
    pub gen_tokens: usize,
    /// Milliseconds from the request's start to the end of prompt processing.
    pub prompt_ms: f64,
    /// Milliseconds from the request's start to the first token of the reply.
    pub ttft_ms: f64,
    /// Milliseconds from the first to the last reply token.
    pub gen_ms: f64,
    pub gen_tok_s: f64,
    /// Tokens in the KV cache after the reply.
    pub context_used: usize,
    /// n_ctx (JSON keeps its established name).
    #[serde(rename = "context_size")]
    pub n_ctx: usize,
    /// `context_used` is an estimate: a remote server gave no usage and could not count the
    /// prompt (see `remote.tokenizer`), or the reply was cancelled. Front ends show it as `~N`.
    pub context_estimated: bool,
    pub seed: u32,
    /// The server's own generation rate (llama-server's `timings.predicted_per_second`), for a
    /// remote backend whose server reports it; absent locally and from other servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_gen_tok_s: Option<f64>,
    /// One line about how the reply arrived, for the user after it (a remote reply that a
    /// buffering proxy held back and released at once); front ends show it as a note, `ask` on
    /// stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `n_parallel` when auto (0) and the work runs on a GPU or a server, which batch sequences.
pub const AUTO_PARALLEL: u32 = 4;

/// How to load a model and size its context.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub model_path: PathBuf,
    pub model_name: String,
    /// Context window in tokens; 0 = the model's training context.
    pub n_ctx: u32,
    /// Generation threads; 0 = auto: the tuned choice (see `tune`), else physical cores.
    pub threads: u32,
    /// Prompt-processing threads; 0 = auto: the tuned choice, else logical cores.
    pub threads_batch: u32,
    /// Sequences decoded together for a [`Task::StructuredMany`] (concurrent requests on a
    /// remote server); 0 = auto: 1 on the CPU, [`AUTO_PARALLEL`] with layers on a GPU or on a
    /// remote server.
    pub n_parallel: u32,
    /// Tokens per decode call for prompts; 0 = auto: the tuned choice, else 512.
    pub n_batch: u32,
    pub gpu_layers: GpuLayers,
    pub flash_attn: FlashAttn,
    pub cache_type_k: String,
    pub cache_type_v: String,
    /// Chat template: `auto`, `jinja`, `plain` or `builtin:NAME`.
    pub template: String,
    /// Where llama.cpp's log goes (never a terminal).
    pub log_file: Option<PathBuf>,
    /// Why an earlier attempt fell back to the CPU (set by the engine itself).
    pub gpu_fallback: Option<String>,
    /// Run everything on this OpenAI-compatible server instead of a local model (`model_path`
    /// is then unused).
    pub remote: Option<RemoteOptions>,
    /// Where measured settings are kept; `auto` settings take them from there when the model was
    /// tuned on this device. `None` = llama.cpp's defaults for `auto`.
    pub tune: Option<TuneSource>,
}

/// Where `moat tune`'s measurements are (see `engine::tune`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuneSource {
    /// The cache file, `<data dir>/tune.json`.
    pub file: PathBuf,
    /// A sha256 known without hashing (the registry's) and the model path it belongs to; a
    /// different path (after `/model` switched models) ignores it.
    pub known_sha256: Option<(PathBuf, String)>,
}

/// Where an OpenAI-compatible server is and how to talk to it. Holds no secret: the API key is
/// read from the environment variable `api_key_env` names when the backend loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// `http(s)://host[:port][/prefix]`, with or without a trailing `/v1`.
    pub url: String,
    /// The server's model id; empty = the server's only (or first) model.
    pub model: String,
    /// The name of the environment variable holding the API key; empty or unset = no key.
    pub api_key_env: String,
    /// Send the key over plain http to a host other than loopback.
    pub allow_insecure_key: bool,
    /// Seconds to wait for a TCP (and TLS) connection.
    pub connect_timeout_s: u64,
    /// Seconds without a byte from the server before a request gives up (there is no limit on
    /// a whole request: a long prompt may take minutes before its first token).
    pub idle_timeout_s: u64,
    /// Extra HTTP headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// The model's Hugging Face `tokenizer.json`, for estimating prompt sizes on a server that
    /// neither reports usage nor counts tokens; `None` = estimate by characters.
    pub tokenizer: Option<PathBuf>,
}

impl RemoteOptions {
    /// The `[remote]` table as options; `None` when no URL is set (local models).
    pub fn from_config(c: &crate::config::RemoteConfig) -> Option<RemoteOptions> {
        (!c.url.trim().is_empty()).then(|| RemoteOptions {
            url: c.url.trim().to_string(),
            model: c.model.clone(),
            api_key_env: c.api_key_env.clone(),
            allow_insecure_key: c.allow_insecure_key,
            connect_timeout_s: c.connect_timeout_s,
            idle_timeout_s: c.idle_timeout_s,
            headers: c.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            tokenizer: (!c.tokenizer.trim().is_empty()).then(|| crate::config::expand_home(c.tokenizer.trim())),
        })
    }
}

impl EngineOptions {
    pub fn from_config(
        config: &crate::config::Config,
        model_path: PathBuf,
        model_name: String,
        log_file: Option<PathBuf>,
    ) -> Self {
        EngineOptions {
            model_path,
            model_name,
            n_ctx: config.model.n_ctx,
            threads: config.model.threads,
            threads_batch: config.model.threads_batch,
            n_parallel: config.model.n_parallel,
            n_batch: config.model.batch,
            gpu_layers: config.model.gpu_layers,
            flash_attn: config.model.flash_attn,
            cache_type_k: config.model.cache_type_k.clone(),
            cache_type_v: config.model.cache_type_v.clone(),
            template: config.model.template.clone(),
            log_file,
            gpu_fallback: None,
            remote: RemoteOptions::from_config(&config.remote),
            tune: None,
        }
    }
}

/// The short form of a model id for display: the file name when the id looks like a path (it
/// starts with `/`, `~`, `./`, `../` or a Windows drive or share, or names a `.gguf` file inside a
/// folder), as llama-server and vLLM report a model loaded from a file; any other id unchanged
/// (`Qwen/Qwen2.5-7B-Instruct` and `llama3:8b` are names, not paths).
pub fn short_model_name(id: &str) -> &str {
    let t = id.trim_end_matches(['/', '\\']);
    let drive = t.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && t.as_bytes().get(1..3) == Some(b":\\");
    let pathlike = t.starts_with(['/', '~', '\\'])
        || t.starts_with("./")
        || t.starts_with("../")
        || drive
        || (t.contains(['/', '\\']) && t.to_ascii_lowercase().ends_with(".gguf"));
    if !pathlike {
        return id;
    }
    match t.rsplit(['/', '\\']).next() {
        Some(file) if !file.is_empty() => file,
        _ => id,
    }
}

/// `host:port` of a URL (`http://gpu-box:8000/v1` → `gpu-box:8000`), for short displays.
pub fn url_authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // userinfo never shows (it may hold a password).
    rest[..end].rsplit('@').next().unwrap_or(&rest[..end])
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
    /// Which `auto` settings came from `moat tune`'s measurements, e.g. `tuned: flash attention
    /// off, 2 threads`; `None` when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuned: Option<String>,
    /// A sequence classifier's output labels, read from the GGUF (empty for other models).
    pub classifier_labels: Vec<String>,
    pub cache_types: String,
    pub chat_format: String,
    pub load_ms: f64,
    pub system_info: String,
    /// What the backend serving this model can do.
    pub capabilities: Capabilities,
    /// The server's URL when the model runs on a remote server (`path` is then that URL too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

impl ModelInfo {
    /// The model's name as front ends show it: [`short_model_name`] of `name`, so a server that
    /// reports a GGUF's full path as its id shows the file name. `name` itself stays the id that
    /// `-m` and `/model` take.
    pub fn short_name(&self) -> String {
        short_model_name(&self.name).to_string()
    }

    /// Where the model runs, in a word or two for a status line: `remote HOST:PORT`, `GPU` (some
    /// layers offloaded) or `CPU`.
    pub fn device(&self) -> String {
        match &self.remote {
            Some(url) => format!("remote {}", url_authority(url)),
            None if self.gpu && self.gpu_layers != 0 => "GPU".into(),
            None => "CPU".into(),
        }
    }

    /// Where the layers went, in one line ("CPU" or "GPU: 31 of 31 layers …").
    pub fn placement(&self) -> String {
        if let Some(url) = &self.remote {
            return format!("remote server at {url}");
        }
        let mut s = if self.gpu {
            format!("GPU: {} of {} layers (+ output) offloaded", self.gpu_layers.min(self.n_layer as i32), self.n_layer)
        } else {
            format!("CPU ({} layers)", self.n_layer)
        };
        s.push_str(&format!("; flash attention {}; KV cache {}", self.flash_attn, self.cache_types));
        if let Some(t) = &self.tuned {
            s.push_str(&format!("; {t}"));
        }
        if let Some(n) = &self.gpu_note {
            s.push_str(&format!("; note: {n}"));
        }
        s
    }
}

/// Why a request or a load failed. Each message is one line that says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("llama.cpp could not load {path}: {why}")]
    Load { path: String, why: String },
    #[error("no model is loaded; load one with /model NAME (or -m)")]
    NoModel,
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
    #[error("{backend} does not support {what}; use a local model for it")]
    Unsupported { backend: String, what: &'static str },
    #[error("decode failed: {0}")]
    Decode(String),
    /// A remote server could not be reached or refused the request; the text is one line that
    /// says what to do.
    #[error("{0}")]
    Remote(String),
    /// A remote server said the prompt does not fit its context; `tokens` and `n_ctx` when its
    /// message gave them, else the server's own words in `detail`.
    #[error("{}", server_context_message(*tokens, *n_ctx, detail))]
    ServerContext { tokens: Option<usize>, n_ctx: Option<usize>, detail: String },
    /// Only for callers that turn a cancelled ending into an error of their own (the engine
    /// itself ends a cancelled request with `StopReason::Cancelled`).
    #[error("cancelled")]
    Cancelled,
    #[error("the inference thread stopped unexpectedly")]
    Gone,
}

fn server_context_message(tokens: Option<usize>, n_ctx: Option<usize>, detail: &str) -> String {
    let fix = "shorten the input or start a new conversation, or serve the model with a larger context \
               (llama-server -c N, vLLM --max-model-len N)";
    match (tokens, n_ctx) {
        (Some(t), Some(n)) if t > n => {
            format!("the prompt is {t} tokens but the server's context holds {n} ({} over); {fix}", t - n)
        }
        (Some(t), Some(n)) => {
            format!("the prompt ({t} tokens) and the reply do not fit the server's context of {n}; {fix}")
        }
        _ => format!("the prompt does not fit the server's context (the server said: {detail}); {fix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_paths_show_their_file_name_and_names_stay_whole() {
        let cases = [
            ("/root/.local/share/moat/models/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"),
            ("/models/llama-3-8b/", "llama-3-8b"),
            ("~/m/x.gguf", "x.gguf"),
            ("./x.gguf", "x.gguf"),
            ("C:\\models\\q.gguf", "q.gguf"),
            ("models/q.GGUF", "q.GGUF"),
            ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
            ("llama3:8b", "llama3:8b"),
            ("smollm2-135m", "smollm2-135m"),
            ("/", "/"),
            ("", ""),
            ("é:\\x", "é:\\x"),
        ];
        for (id, short) in cases {
            assert_eq!(short_model_name(id), short, "{id}");
        }
    }

    #[test]
    fn the_device_names_the_server_for_a_remote_model() {
        let mut info = ModelInfo { remote: Some("http://user:pw@gpu-box:8000/v1".into()), ..Default::default() };
        assert_eq!(info.device(), "remote gpu-box:8000");
        info.remote = None;
        assert_eq!(info.device(), "CPU");
        (info.gpu, info.gpu_layers) = (true, 12);
        assert_eq!(info.device(), "GPU");
        assert_eq!(url_authority("https://h"), "h");
    }
}
