//! Many structured replies at once ([`Task::StructuredMany`](crate::engine::Task)): up to
//! `model.n_parallel` requests run as sequences of one context of their own, and every decode
//! carries the next token of each sequence that is generating plus prompt tokens of sequences
//! still reading theirs, so the cores work on a batch instead of one token at a time. Each
//! request has its own sampler (grammar from its schema and [`Steer`], as a lone structured
//! request has) and its own [`ReplyText`], so it ends exactly as it would alone; when one ends,
//! the next queued request takes its sequence (its cells cleared first).
//!
//! The context is sized for the task: `n_parallel` sequences of the longest request's prompt plus
//! its `max_tokens`, each at most the main context's `n_ctx`, without a unified KV cache (each
//! sequence has its own cells and attends only to them). It is kept for the next task while its
//! shape still fits.

use super::model::LoadedModel;
use super::sampling::{self, Sampler, Steer};
use super::session::{decode, ReplyText};
use super::tokens_that_fit;
use crate::engine::backend::split_think;
use crate::engine::{EngineError, Finish, GenStats, Generated, Responder, StopReason, StructuredRequest};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::time::Instant;

/// The context of a `StructuredMany` task: `n_seq` sequences of `per_seq` cells each.
pub struct ParallelCtx<'m> {
    ctx: LlamaContext<'m>,
    n_seq: usize,
    per_seq: usize,
}

/// The parallel context, created on first use and kept while its shape still fits.
#[derive(Default)]
pub struct ParallelContext<'m>(Option<ParallelCtx<'m>>);

/// A context of `n_seq` sequences of at least `per_seq` cells: the kept one when it has exactly
/// `n_seq` sequences and room enough, else a new one (the old one freed first).
fn context<'s, 'm>(
    slot: &'s mut ParallelContext<'m>,
    env: &LoadedModel<'m>,
    n_seq: usize,
    per_seq: usize,
    n_batch: usize,
) -> Result<&'s mut ParallelCtx<'m>, EngineError> {
    if slot.0.as_ref().is_some_and(|c| c.n_seq == n_seq && c.per_seq >= per_seq && c.ctx.n_batch() as usize >= n_batch)
    {
        return Ok(slot.0.as_mut().expect("checked"));
    }
    slot.0 = None;
    let n_ctx = (per_seq.div_ceil(256) * 256 * n_seq).min(u32::MAX as usize) as u32;
    // The main context's settings (threads, flash attention, KV types), reshaped.
    let params = env
        .ctx_params
        .clone()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch as u32)
        .with_n_ubatch((n_batch as u32).min(512))
        .with_n_seq_max(n_seq as u32)
        .with_kv_unified(false);
    let ctx =
        env.model.new_context(env.backend, params).map_err(|e| EngineError::Context { n_ctx, why: e.to_string() })?;
    let per_seq = ctx.n_ctx() as usize / n_seq;
    Ok(slot.0.insert(ParallelCtx { ctx, n_seq, per_seq }))
}

/// A request whose prompt is tokenised, waiting for a sequence.
struct Queued {
    index: usize,
    tokens: Vec<LlamaToken>,
    req: StructuredRequest,
}

/// A request running in a sequence.
struct Running<'m> {
    index: usize,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens decoded so far.
    fed: usize,
    /// Tokens in the sequence's cells.
    pos: usize,
    sampler: Sampler<'m>,
    reply: ReplyText,
    text: String,
    /// A sampled token not yet decoded.
    next: Option<LlamaToken>,
    /// Where this sequence's logits are in the last decode's batch.
    output: Option<i32>,
    stats: GenStats,
    start: Instant,
}

impl Running<'_> {
    fn finish(self, reason: StopReason, out: &Responder<'_>) {
        let Running { index, text: mut raw, mut stats, start, reply, .. } = self;
        let gen = reply.finish(reason, &mut |t: &str| raw.push_str(t));
        gen.fill(&mut stats, start);
        stats.context_used = stats.prompt_tokens + gen.tokens;
        let (text, reasoning) = split_think(&raw);
        out.generated(index, Ok(Generated { text, reasoning, reason, stats }));
    }
}

/// Runs `requests` `env.n_parallel` at a time (fewer when there are fewer), sending one
/// `Generated` per request as it ends. A request that cannot run (its prompt too long, a schema
/// that makes no grammar) gets its own `Err`; the rest go on. `n_ctx` is the main context's size,
/// the most one sequence may hold.
pub fn run<'m>(
    env: &LoadedModel<'m>,
    slot: &mut ParallelContext<'m>,
    out: &Responder<'_>,
    requests: Vec<StructuredRequest>,
    n_ctx: usize,
    n_batch: usize,
) -> Result<Finish, EngineError> {
    let done = || Finish { reason: StopReason::Finished, stats: GenStats::default() };
    let mut queue = VecDeque::new();
    let mut per_seq = 0;
    for (index, req) in requests.into_iter().enumerate() {
        match prompt_tokens(env, &req, n_ctx) {
            Ok(tokens) => {
                per_seq = per_seq.max((tokens.len() + req.sampling.max_tokens as usize).min(n_ctx));
                queue.push_back(Queued { index, tokens, req });
            }
            Err(e) => out.generated(index, Err(e)),
        }
    }
    if queue.is_empty() {
        return Ok(done());
    }
    let n_seq = env.n_parallel.clamp(1, queue.len());
    let n_batch = n_batch.max(n_seq);
    let pc = context(slot, env, n_seq, per_seq, n_batch)?;
    // A sequence holds no more than the main context would: a reply ends "context full" where it
    // would alone.
    let limit = pc.per_seq.min(n_ctx);
    let ctx = &mut pc.ctx;
    let mut running: Vec<Option<Running<'m>>> = (0..n_seq).map(|_| None).collect();
    let mut batch = LlamaBatch::new(n_batch, 1);
    loop {
        if out.cancelled() {
            for r in running.iter_mut().filter_map(Option::take) {
                r.finish(StopReason::Cancelled, out);
            }
            for q in queue {
                out.generated(
                    q.index,
                    Ok(Generated {
                        reason: StopReason::Cancelled,
                        stats: stats_for(&q.tokens, limit),
                        ..Default::default()
                    }),
                );
            }
            return Ok(Finish { reason: StopReason::Cancelled, stats: GenStats::default() });
        }
        for (seq, place) in running.iter_mut().enumerate() {
            while place.is_none() {
                let Some(q) = queue.pop_front() else { break };
                match start(env, q, limit) {
                    Ok(r) => {
                        ctx.clear_kv_cache_seq(Some(seq as u32), None, None)
                            .map_err(|e| EngineError::Decode(e.to_string()))?;
                        *place = Some(r);
                    }
                    Err((index, e)) => out.generated(index, Err(e)),
                }
            }
        }
        if running.iter().all(Option::is_none) {
            return Ok(done());
        }
        batch.clear();
        let add = |batch: &mut LlamaBatch, tok, pos: usize, seq: usize, logits| {
            batch.add(tok, pos as i32, &[seq as i32], logits).map_err(|e| EngineError::Decode(e.to_string()))
        };
        // The next token of every generating sequence first, then prompt tokens in what is left.
        for (seq, r) in running.iter_mut().enumerate() {
            let Some(r) = r else { continue };
            r.output = None;
            if let Some(tok) = r.next.take() {
                add(&mut batch, tok, r.pos, seq, true)?;
                r.pos += 1;
                r.output = Some(batch.n_tokens() - 1);
            }
        }
        for (seq, r) in running.iter_mut().enumerate() {
            let Some(r) = r else { continue };
            let room = n_batch - batch.n_tokens() as usize;
            if r.fed == r.prompt.len() || room == 0 {
                continue;
            }
            let take = room.min(r.prompt.len() - r.fed);
            for i in r.fed..r.fed + take {
                add(&mut batch, r.prompt[i], r.pos, seq, i + 1 == r.prompt.len())?;
                r.pos += 1;
            }
            r.fed += take;
            if r.fed == r.prompt.len() {
                r.output = Some(batch.n_tokens() - 1);
                r.stats.prompt_ms = r.start.elapsed().as_secs_f64() * 1000.0;
            }
        }
        decode(ctx, &mut batch)?;
        for place in running.iter_mut() {
            let Some(idx) = place.as_ref().and_then(|r| r.output) else { continue };
            let r = place.as_mut().expect("checked");
            let ended = if !r.reply.has_room() {
                Some(StopReason::MaxTokens)
            } else {
                let tok = r.sampler.sample_at(ctx, idx);
                let text = &mut r.text;
                match r.reply.push(env.model, tok, &mut |t: &str| text.push_str(t)) {
                    Some(reason) => Some(reason),
                    None if r.pos >= limit => Some(StopReason::ContextFull),
                    None if !r.reply.has_room() => Some(StopReason::MaxTokens),
                    None => {
                        r.next = Some(tok);
                        None
                    }
                }
            };
            if let Some(reason) = ended {
                place.take().expect("checked").finish(reason, out);
            }
        }
    }
}

/// A request's rendered prompt as tokens, checked to fit `n_ctx` with its reply's reserve (as a
/// lone structured request is).
fn prompt_tokens(env: &LoadedModel<'_>, req: &StructuredRequest, n_ctx: usize) -> Result<Vec<LlamaToken>, EngineError> {
    let reserve = (req.sampling.max_tokens as usize).min(n_ctx / 2);
    let text = env.format.render(env.model, &req.messages, true)?;
    let tokens = tokens_that_fit(env, &text, !env.format.starts_with_bos(&text), n_ctx, reserve)?;
    if tokens.is_empty() {
        // Nothing to decode would leave the sequence without logits to sample from.
        return Err(EngineError::Template("the rendered prompt is empty; give the prompt some text".into()));
    }
    Ok(tokens)
}

fn stats_for(prompt: &[LlamaToken], n_ctx: usize) -> GenStats {
    GenStats { prompt_tokens: prompt.len(), n_ctx, ..Default::default() }
}

/// A queued request made ready to run: its sampler (grammar and steering from its schema, with
/// the budget its sequence leaves) and its stop strings.
fn start<'m>(env: &LoadedModel<'m>, q: Queued, limit: usize) -> Result<Running<'m>, (usize, EngineError)> {
    let Queued { index, tokens, req } = q;
    let sampling = &req.sampling;
    let budget = (sampling.max_tokens as usize).min(limit.saturating_sub(tokens.len()));
    let grammar = match req.json_schema.as_deref() {
        Some(schema) => Some(
            llama_cpp_2::json_schema_to_grammar(schema).map_err(|e| (index, EngineError::Grammar(e.to_string())))?,
        ),
        None => None,
    };
    let steer = req.json_schema.as_deref().and_then(|s| Steer::new(env.model, s, budget));
    let (sampler, seed) = sampling::build_constrained(env.model, sampling, grammar.as_deref(), steer)
        .map_err(|e| (index, EngineError::Grammar(e)))?;
    let stops: Vec<String> = sampling.stop.iter().cloned().chain(env.format.stop_strings()).collect();
    let mut stats = stats_for(&tokens, limit);
    stats.decoded_tokens = tokens.len();
    stats.seed = seed;
    Ok(Running {
        index,
        prompt: tokens,
        fed: 0,
        pos: 0,
        sampler,
        reply: ReplyText::new(sampling.max_tokens as usize, stops, false),
        text: String::new(),
        next: None,
        output: None,
        stats,
        start: Instant::now(),
    })
}
