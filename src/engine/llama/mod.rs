//! The llama.cpp backend: loads a GGUF (placing layers on a GPU where one fits), then serves
//! tasks on one context whose KV cache is kept across requests (see `session.rs`). Label scoring
//! and embeddings run on a second, many-sequence context (`classify.rs`); many structured replies
//! at once on a third (`parallel.rs`).

pub(super) mod bench;
pub(super) mod classify;
pub mod gpu;
pub(super) mod init;
mod model;
mod parallel;
mod sampling;
mod session;
mod template;
pub(super) mod tune;

pub use bench::{BenchRequest, BenchSample};
pub use classify::{EmbedRequest, ItemResult, Pooling, PromptSpec, ScoreRequest};

use super::backend::{Backend, Responder};
use super::protocol::{
    Capabilities, EngineError, EngineOptions, Event, Finish, GenStats, ModelInfo, StopReason, Task, TaskKind,
};
use super::serve::{self, Inbound, Next, NoModel};
use crate::config::{OverflowPolicy, SamplingConfig};
use crate::message::{drop_oldest_turn, Message};
use crossbeam_channel::{Receiver, Sender};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use model::LoadedModel;
use session::{GenLimits, KvSession};
use std::num::NonZeroU32;
use std::time::Instant;
use template::ChatFormat;

/// `n_batch` when `auto` and not tuned: llama.cpp's default.
const DEFAULT_BATCH: u32 = 512;

/// Loads the model `opts` names and serves tasks on it until the inbox asks for another model or
/// a shutdown. A failed load is reported as `LoadFailed`, and the thread then serves
/// [`NoModel`] until the next `Load`.
pub(super) fn load_and_serve(mut opts: EngineOptions, inbox: &Receiver<Inbound>, events: &Sender<Event>) -> Next {
    let started = Instant::now();
    let backend = init::backend(opts.log_file.as_deref());
    // `auto` settings take the measured choice when this model was tuned on this device.
    let device = gpu::device_key(opts.gpu_layers);
    let tuned = super::tune::apply_cached(&mut opts, &device);
    let fail = |error: EngineError| {
        let _ = events.send(Event::LoadFailed(error));
        serve::serve(&mut NoModel, inbox)
    };
    let path = opts.model_path.display().to_string();
    // Sizes are known from the GGUF header, before loading: the layer plan needs the context.
    let header = crate::models::gguf::inspect(&opts.model_path).ok();
    let n_ctx_train = header.as_ref().and_then(|g| g.context_length).map_or(0, |n| n.min(u32::MAX as u64) as u32);
    let n_ctx = match (opts.n_ctx, n_ctx_train) {
        (0, 0) => 4096,
        (0, t) => t,
        (c, 0) => c,
        (c, t) => c.min(t.max(256)),
    };
    let threads = if opts.threads == 0 { init::physical_cores() } else { opts.threads };
    let threads_batch = if opts.threads_batch == 0 { init::logical_cores() } else { opts.threads_batch };
    let n_batch = if opts.n_batch == 0 { DEFAULT_BATCH } else { opts.n_batch }.min(n_ctx).max(1);
    let cparams = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch.min(512))
        .with_n_seq_max(1)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads_batch as i32)
        .with_flash_attention_policy(gpu::flash_attn(opts.flash_attn))
        .with_type_k(gpu::kv_type(&opts.cache_type_k))
        .with_type_v(gpu::kv_type(&opts.cache_type_v))
        .with_no_perf(false);
    let (mut gpu_layers, mut gpu_note) = gpu::plan_layers(backend, opts.gpu_layers, &opts.model_path, &cparams);
    if opts.gpu_fallback.is_some() {
        gpu_note = opts.gpu_fallback.clone();
    }
    let load = |layers: u32| {
        let progress_tx = events.clone();
        let mut last = -1.0f32;
        let params = LlamaModelParams::default().with_n_gpu_layers(layers).with_progress_callback(move |p| {
            if p - last >= 0.02 || p >= 1.0 {
                last = p;
                let _ = progress_tx.send(Event::Loading(p));
            }
            true
        });
        LlamaModel::load_from_file(backend, &opts.model_path, &params)
    };
    let model = match load(gpu_layers) {
        Ok(m) => m,
        Err(e) if gpu_layers > 0 => {
            gpu_note = Some(format!("loading on the GPU failed ({e}); running on the CPU"));
            gpu_layers = 0;
            match load(0) {
                Ok(m) => m,
                Err(e) => return fail(EngineError::Load { path, why: e.to_string() }),
            }
        }
        Err(e) => return fail(EngineError::Load { path, why: e.to_string() }),
    };
    let n_ctx_train = model.n_ctx_train();
    let ctx = match model.new_context(backend, cparams.clone()) {
        Ok(c) => c,
        Err(e) if gpu_layers > 0 => {
            // Out of device memory for the KV cache: load again, all on the CPU.
            let note = format!("the context did not fit in GPU memory ({e}); running on the CPU");
            return Next::Load(Box::new(EngineOptions {
                gpu_layers: crate::config::GpuLayers::Count(0),
                gpu_fallback: Some(note),
                ..opts
            }));
        }
        Err(e) => return fail(EngineError::Context { n_ctx, why: e.to_string() }),
    };
    let format = match ChatFormat::select(&opts.template, &model) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let vocab = model.vocab();
    let max_piece = vocab.tokens().map(|t| vocab.token_to_piece(t, true, None).len()).max().unwrap_or(1).max(1);
    let classifier_labels = header.as_ref().map(|h| h.classifier_labels.clone()).unwrap_or_default();
    // Encoders (BERT and kin, classifiers among them) have no next-token logits to sample or score.
    let encoder = !classifier_labels.is_empty() || header.as_ref().and_then(|h| h.causal) == Some(false);
    let capabilities = if encoder {
        Capabilities { embed: true, tokenize: true, ..Capabilities::default() }
    } else {
        Capabilities::ALL
    };
    let info = ModelInfo {
        name: opts.model_name.clone(),
        path: opts.model_path.clone(),
        architecture: model.meta_val_str("general.architecture").unwrap_or_default(),
        description: model.meta_val_str("general.name").unwrap_or_default(),
        n_params: model.n_params(),
        size_bytes: model.size(),
        n_ctx: ctx.n_ctx(),
        n_ctx_train,
        n_batch: ctx.n_batch(),
        threads,
        threads_batch,
        gpu: gpu_layers > 0,
        gpu_layers: gpu_layers.min(model.n_layer() + 1) as i32,
        n_layer: model.n_layer(),
        gpu_note,
        flash_attn: opts.flash_attn.to_string(),
        tuned,
        classifier_labels,
        cache_types: format!("{}/{}", opts.cache_type_k, opts.cache_type_v),
        chat_format: format.describe(),
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
        system_info: init::system_info(),
        capabilities,
        remote: None,
    };
    let _ = events.send(Event::Loaded(Box::new(info.clone())));
    let env = LoadedModel {
        model: &model,
        format,
        max_piece,
        backend,
        threads_batch: threads_batch as i32,
        encoder,
        ctx_params: cparams,
        n_parallel: match opts.n_parallel {
            0 if gpu_layers > 0 => super::protocol::AUTO_PARALLEL as usize,
            0 => 1,
            n => n as usize,
        },
    };
    let mut llama = LlamaCpp {
        env,
        session: KvSession::new(ctx),
        classify_ctx: classify::ClassifyContext::default(),
        parallel_ctx: parallel::ParallelContext::default(),
        info,
    };
    serve::serve(&mut llama, inbox)
}

/// A loaded model with its main context (KV cache kept across requests) and, once label scoring
/// or embeddings were asked for, the classification context.
struct LlamaCpp<'m> {
    env: LoadedModel<'m>,
    session: KvSession<'m>,
    classify_ctx: classify::ClassifyContext<'m>,
    /// The many-sequence context of `StructuredMany` tasks, once one ran.
    parallel_ctx: parallel::ParallelContext<'m>,
    info: ModelInfo,
}

impl Backend for LlamaCpp<'_> {
    fn capabilities(&self) -> Capabilities {
        self.info.capabilities
    }

    fn refuse(&self, kind: TaskKind) -> EngineError {
        let info = &self.info;
        match (info.classifier_labels.is_empty(), kind) {
            (_, TaskKind::Embed) => EngineError::Unsupported { backend: info.name.clone(), what: kind.describe() },
            (true, _) => EngineError::Encoder { name: info.name.clone() },
            (false, _) => {
                EngineError::Classifier { name: info.name.clone(), labels: info.classifier_labels.join(", ") }
            }
        }
    }

    fn run(&mut self, task: Task, out: &Responder<'_>) -> Result<Finish, EngineError> {
        let (env, session) = (&self.env, &mut self.session);
        match task {
            Task::Chat { messages, sampling, overflow, reserve } => {
                chat(env, session, out, messages, &sampling, overflow, reserve)
            }
            Task::Complete { prompt, sampling } => complete(env, session, out, &prompt, &sampling),
            Task::Structured { messages, sampling, json_schema } => {
                structured(env, session, out, &messages, &sampling, json_schema.as_deref())
            }
            // One at a time runs in the main context: the instructions the requests share stay in its KV
            // cache, so each request decodes only what follows them.
            Task::StructuredMany { requests } if env.n_parallel <= 1 || requests.len() == 1 => {
                Ok(one_at_a_time(env, session, out, requests))
            }
            Task::StructuredMany { requests } => {
                let (n_ctx, n_batch) = (session.n_ctx(), self.info.n_batch as usize);
                parallel::run(env, &mut self.parallel_ctx, out, requests, n_ctx, n_batch)
            }
            Task::Tokenize { texts } => Ok(count_tokens(env.model, &texts, out)),
            Task::Bench(req) => bench::run(env, session, out, &req),
            Task::Score(req) => classify::score(env, &mut self.classify_ctx, out, &req),
            Task::Embed(req) => classify::embed(env, &mut self.classify_ctx, out, &req),
        }
    }
}

/// A `StructuredMany` task in order on the main session: each request's updates are gathered into
/// its one `Generated`; after a cancel the rest end `Cancelled` without running.
fn one_at_a_time(
    env: &LoadedModel<'_>,
    session: &mut KvSession<'_>,
    out: &Responder<'_>,
    requests: Vec<super::protocol::StructuredRequest>,
) -> Finish {
    for (index, req) in requests.into_iter().enumerate() {
        if out.cancelled() {
            let generated = super::protocol::Generated { reason: StopReason::Cancelled, ..Default::default() };
            out.generated(index, Ok(generated));
            continue;
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let one = Responder::new(&tx, out.cancel());
        let result = structured(env, session, &one, &req.messages, &req.sampling, req.json_schema.as_deref());
        one.flush();
        drop(one);
        drop(tx);
        let (mut text, mut reasoning) = (String::new(), String::new());
        for update in rx.try_iter() {
            match update {
                super::protocol::Update::Token(t) => text.push_str(&t),
                super::protocol::Update::Reasoning(t) => reasoning.push_str(&t),
                _ => {}
            }
        }
        let result = result.map(|f| super::protocol::Generated { text, reasoning, reason: f.reason, stats: f.stats });
        out.generated(index, result);
    }
    Finish { reason: StopReason::Finished, stats: GenStats::default() }
}

/// Each text's tokens as the model reads it inside a prompt: no BOS, special-token text kept as
/// text (what user input costs). Cancellation is checked between texts.
fn count_tokens(model: &LlamaModel, texts: &[String], out: &Responder<'_>) -> Finish {
    for (index, text) in texts.iter().enumerate() {
        if out.cancelled() {
            return Finish { reason: StopReason::Cancelled, stats: GenStats::default() };
        }
        out.counted(index, model.vocab().tokenize(text.as_bytes(), false, false).len(), true);
    }
    Finish { reason: StopReason::Finished, stats: GenStats::default() }
}

fn tokenize(model: &LlamaModel, text: &str, add_special: bool) -> Vec<LlamaToken> {
    model.vocab().tokenize(text.as_bytes(), add_special, true)
}

fn chat(
    env: &LoadedModel<'_>,
    session: &mut KvSession<'_>,
    out: &Responder<'_>,
    mut messages: Vec<Message>,
    sampling: &SamplingConfig,
    overflow: OverflowPolicy,
    reserve: u32,
) -> Result<Finish, EngineError> {
    let start = Instant::now();
    let n_ctx = session.n_ctx();
    let reserve = (reserve.min(sampling.max_tokens) as usize).min(n_ctx / 2);
    let mut dropped = 0;
    let tokens = loop {
        let text = env.format.render(env.model, &messages, true)?;
        check_size(env, &text, n_ctx, reserve)?;
        let tokens = tokenize(env.model, &text, !env.format.starts_with_bos(&text));
        if tokens.len() + reserve <= n_ctx {
            break tokens;
        }
        let too_long = EngineError::PromptTooLong { tokens: tokens.len(), n_ctx, reserve };
        match overflow {
            OverflowPolicy::Error if messages.iter().filter(|m| m.role != crate::message::Role::System).count() > 1 => {
                return Err(EngineError::ContextOverflow { tokens: tokens.len(), n_ctx, reserve });
            }
            OverflowPolicy::Error => return Err(too_long),
            OverflowPolicy::DropOldest => match drop_oldest_turn(&mut messages) {
                0 => return Err(too_long),
                n => dropped += n,
            },
        }
    };
    if dropped > 0 {
        out.trimmed(dropped, tokens.len());
    }
    let stops: Vec<String> = sampling.stop.iter().cloned().chain(env.format.stop_strings()).collect();
    respond(env, session, out, &tokens, sampling, stops, start, None)
}

fn complete(
    env: &LoadedModel<'_>,
    session: &mut KvSession<'_>,
    out: &Responder<'_>,
    prompt: &str,
    sampling: &SamplingConfig,
) -> Result<Finish, EngineError> {
    let start = Instant::now();
    let n_ctx = session.n_ctx();
    let reserve = (sampling.max_tokens as usize).min(n_ctx / 2);
    let tokens = tokens_that_fit(env, prompt, true, n_ctx, reserve)?;
    respond(env, session, out, &tokens, sampling, sampling.stop.clone(), start, None)
}

fn structured(
    env: &LoadedModel<'_>,
    session: &mut KvSession<'_>,
    out: &Responder<'_>,
    messages: &[Message],
    sampling: &SamplingConfig,
    json_schema: Option<&str>,
) -> Result<Finish, EngineError> {
    let start = Instant::now();
    let n_ctx = session.n_ctx();
    let reserve = (sampling.max_tokens as usize).min(n_ctx / 2);
    let text = env.format.render(env.model, messages, true)?;
    let tokens = tokens_that_fit(env, &text, !env.format.starts_with_bos(&text), n_ctx, reserve)?;
    let constraint = match json_schema {
        Some(schema) => Some(Constraint {
            grammar: llama_cpp_2::json_schema_to_grammar(schema).map_err(|e| EngineError::Grammar(e.to_string()))?,
            schema: Some(schema),
        }),
        None => None,
    };
    let stops: Vec<String> = sampling.stop.iter().cloned().chain(env.format.stop_strings()).collect();
    respond(env, session, out, &tokens, sampling, stops, start, constraint)
}

/// How a reply is constrained: a GBNF grammar, and the JSON schema it was made from (the reply is
/// then steered to close its JSON within the token budget).
struct Constraint<'a> {
    grammar: String,
    schema: Option<&'a str>,
}

/// The prompt's tokens, or `PromptTooLong` when they and `reserve` reply tokens exceed the context.
fn tokens_that_fit(
    env: &LoadedModel<'_>,
    text: &str,
    add_bos: bool,
    n_ctx: usize,
    reserve: usize,
) -> Result<Vec<LlamaToken>, EngineError> {
    check_size(env, text, n_ctx, reserve)?;
    let tokens = tokenize(env.model, text, add_bos);
    if tokens.len() + reserve > n_ctx {
        return Err(EngineError::PromptTooLong { tokens: tokens.len(), n_ctx, reserve });
    }
    Ok(tokens)
}

/// Rejects text that cannot fit even if every token were the longest one, before tokenising it.
fn check_size(env: &LoadedModel<'_>, text: &str, n_ctx: usize, reserve: usize) -> Result<(), EngineError> {
    let at_least = text.len() / env.max_piece;
    if at_least + reserve > n_ctx {
        return Err(EngineError::PromptTooLong { tokens: at_least, n_ctx, reserve });
    }
    Ok(())
}

/// Decodes the prompt (only what is not cached), then streams the reply through `out`; a
/// `constraint` (grammar) shapes it.
#[allow(clippy::too_many_arguments)]
fn respond(
    env: &LoadedModel<'_>,
    session: &mut KvSession<'_>,
    out: &Responder<'_>,
    tokens: &[LlamaToken],
    sampling: &SamplingConfig,
    stops: Vec<String>,
    start: Instant,
    constraint: Option<Constraint<'_>>,
) -> Result<Finish, EngineError> {
    let mut stats = GenStats { prompt_tokens: tokens.len(), n_ctx: session.n_ctx(), ..Default::default() };
    let synced = match session.sync(tokens, out.cancel()) {
        Ok(s) => s,
        Err(EngineError::Cancelled) => {
            stats.context_used = session.used();
            return Ok(Finish { reason: StopReason::Cancelled, stats });
        }
        Err(e) => return Err(e),
    };
    stats.reused_tokens = synced.reused;
    stats.decoded_tokens = synced.decoded;
    stats.prompt_ms = start.elapsed().as_secs_f64() * 1000.0;
    // The reply ends at max_tokens or when the context is full, whichever comes first.
    let budget = (sampling.max_tokens as usize).min(session.n_ctx().saturating_sub(tokens.len()));
    let (grammar, steer) = match &constraint {
        Some(c) => (Some(c.grammar.as_str()), c.schema.and_then(|s| sampling::Steer::new(env.model, s, budget))),
        None => (None, None),
    };
    let (mut sampler, seed) =
        sampling::build_constrained(env.model, sampling, grammar, steer).map_err(EngineError::Grammar)?;
    stats.seed = seed;
    let limits = GenLimits { max_tokens: sampling.max_tokens as usize, stops, cancel: out.cancel(), ignore_eog: false };
    let gen = session.generate(env.model, &mut sampler, limits, |t| out.token(t))?;
    gen.fill(&mut stats, start);
    stats.context_used = session.used();
    Ok(Finish { reason: gen.reason, stats })
}
