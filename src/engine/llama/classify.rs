//! Classification inside the inference thread: label scoring (one forward pass per line, reading the
//! logits of each label's first token) and pooled embeddings for trained heads. Both run on a second
//! context with many sequences, so many lines share one decode; label scoring decodes the shared
//! instruction/few-shot prefix once and copies its KV cells to every sequence.

use super::model::LoadedModel;
use super::template::ChatFormat;
use crate::engine::{EngineError, Finish, GenStats, Responder, StopReason};
use crate::message::Message;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;

/// Where the line goes in a prompt: `template` holds `{text}` once.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSpec {
    pub template: String,
    /// Render `template` as a user message with the model's chat format (when it has one), then
    /// append `answer_prefix` after the generation prompt.
    pub chat: bool,
    pub answer_prefix: String,
}

impl PromptSpec {
    pub fn raw(template: impl Into<String>) -> Self {
        PromptSpec { template: template.into(), chat: false, answer_prefix: String::new() }
    }
}

#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub prompt: PromptSpec,
    pub items: Vec<String>,
    /// Label verbalisations exactly as they would continue the prompt (e.g. " positive").
    pub labels: Vec<String>,
    /// Longer lines keep their first and last halves (sentiment often sits at the end of a review).
    pub max_item_tokens: usize,
    /// Lines per decode; 1 with `share_prefix = false` is the naive one-prompt-at-a-time baseline.
    pub batch: usize,
    pub share_prefix: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    Mean,
    Last,
    /// A native sequence classifier's head (llama.cpp's RANK pooling): one logit per output label.
    Rank,
}

#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub prompt: PromptSpec,
    pub items: Vec<String>,
    pub pooling: Pooling,
    pub max_item_tokens: usize,
    pub batch: usize,
}

/// What one line produced: label logits (score) or a pooled vector (embed), or why it could not.
pub type ItemResult = Result<Vec<f32>, String>;

const MAX_SEQ: usize = 64;
const N_BATCH: usize = 2048;
const ENCODER_GROUP_TOKENS: usize = 512;

/// Cached second context; rebuilt only when its shape must change.
pub struct ClassifyCtx<'m> {
    ctx: LlamaContext<'m>,
    key: (bool, Option<Pooling>, usize, usize),
    /// Tokens of the prefix held in sequence 0 (label scoring).
    prefix: Vec<LlamaToken>,
}

/// The classification context, created on first use and kept while its shape still fits.
#[derive(Default)]
pub struct ClassifyContext<'m>(Option<ClassifyCtx<'m>>);

fn context<'s, 'm>(
    slot: &'s mut ClassifyContext<'m>,
    model: &'m LlamaModel,
    backend: &LlamaBackend,
    threads: i32,
    embed: Option<Pooling>,
    n_seq: usize,
    n_ctx: usize,
) -> Result<&'s mut ClassifyCtx<'m>, EngineError> {
    let n_ctx = n_ctx.div_ceil(256) * 256;
    let key = (embed.is_some(), embed, n_seq, n_ctx);
    if slot.0.as_ref().is_some_and(|c| c.key == key) {
        return Ok(slot.0.as_mut().expect("checked"));
    }
    slot.0 = None; // free the old one first
    let n_batch = N_BATCH.min(n_ctx) as u32;
    let mut p = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx as u32))
        .with_n_batch(n_batch)
        .with_n_ubatch(if embed.is_some() { n_batch } else { n_batch.min(512) })
        .with_n_seq_max(n_seq as u32)
        .with_kv_unified(true)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    if let Some(pool) = embed {
        let pt = match pool {
            Pooling::Mean => LlamaPoolingType::Mean,
            Pooling::Last => LlamaPoolingType::Last,
            Pooling::Rank => LlamaPoolingType::Rank,
        };
        p = p.with_embeddings(true).with_pooling_type(pt);
    }
    let ctx =
        model.new_context(backend, p).map_err(|e| EngineError::Context { n_ctx: n_ctx as u32, why: e.to_string() })?;
    slot.0 = Some(ClassifyCtx { ctx, key, prefix: Vec::new() });
    Ok(slot.0.as_mut().expect("just set"))
}

/// The prompt split around the line: (text before, text after), special tokens allowed in both.
fn split_prompt(model: &LlamaModel, format: &ChatFormat, spec: &PromptSpec) -> Result<(String, String), EngineError> {
    const MARK: &str = "\u{1}MOATTEXT\u{1}";
    if spec.template.matches("{text}").count() != 1 {
        return Err(EngineError::Classify("the prompt template must contain {text} exactly once".into()));
    }
    let body = spec.template.replace("{text}", MARK);
    let rendered = if spec.chat && !matches!(format, ChatFormat::Plain) {
        let mut r = format.render(model, &[Message::user(body)], true)?;
        r.push_str(&spec.answer_prefix);
        r
    } else {
        format!("{body}{}", spec.answer_prefix)
    };
    let (a, b) = rendered
        .split_once(MARK)
        .ok_or_else(|| EngineError::Classify("the chat format dropped the text placeholder".into()))?;
    Ok((a.to_string(), b.to_string()))
}

/// The line's tokens (special-token text in user input stays text), trimmed to `max` keeping head and tail.
fn item_tokens(model: &LlamaModel, text: &str, max: usize) -> Result<Vec<LlamaToken>, String> {
    if text.trim().is_empty() {
        return Err("empty text".into());
    }
    // Cheap guard before tokenising a huge line: keep generous byte windows from both ends.
    let window = max.saturating_mul(16).max(64);
    let clipped;
    let text = if text.len() > 2 * window {
        let mut a = window;
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        let mut b = text.len() - window;
        while !text.is_char_boundary(b) {
            b += 1;
        }
        clipped = format!("{} … {}", &text[..a], &text[b..]);
        &clipped
    } else {
        text
    };
    let mut toks = model.vocab().tokenize(text.as_bytes(), false, false);
    if toks.is_empty() {
        return Err("empty text".into());
    }
    if toks.len() > max {
        let head = max / 2;
        let tail = max - head;
        let end = toks.split_off(toks.len() - tail);
        toks.truncate(head);
        toks.extend(end);
    }
    Ok(toks)
}

fn label_tokens(model: &LlamaModel, labels: &[String]) -> Result<Vec<LlamaToken>, EngineError> {
    let mut out = Vec::new();
    for l in labels {
        let t = model.vocab().tokenize(l.as_bytes(), false, false);
        let Some(first) = t.first() else {
            return Err(EngineError::Classify(format!("label {l:?} has no tokens; use a non-empty label")));
        };
        if let Some(i) = out.iter().position(|x| x == first) {
            return Err(EngineError::Classify(format!(
                "labels {:?} and {l:?} start with the same token; pick labels that differ in their first word",
                labels[i].trim()
            )));
        }
        out.push(*first);
    }
    Ok(out)
}

/// Lines waiting for a decode: their index and tokens, or why they have none.
type Pending = (usize, Result<Vec<LlamaToken>, String>);

/// The next group for one decode: up to `cap` lines whose tokens together fit `n_batch`. Failed
/// lines are reported as they come up, but never ahead of a gathered group, so output order holds.
fn next_group(
    it: &mut std::iter::Peekable<impl Iterator<Item = Pending>>,
    cap: usize,
    n_batch: usize,
    emit: &impl Fn(usize, ItemResult),
) -> Vec<(usize, Vec<LlamaToken>)> {
    let mut group = Vec::new();
    let mut used = 0;
    while let Some((_, r)) = it.peek() {
        let fits = r.as_ref().is_ok_and(|t| group.len() < cap && used + t.len() <= n_batch);
        let alone_too_long = group.is_empty() && r.as_ref().is_ok_and(|t| t.len() > n_batch);
        match (fits, r.is_err() || alone_too_long) {
            (true, _) => {
                let (i, r) = it.next().expect("peeked");
                let t = r.expect("fits");
                used += t.len();
                group.push((i, t));
            }
            (false, true) if group.is_empty() => {
                let (i, r) = it.next().expect("peeked");
                emit(i, Err(r.err().unwrap_or_else(|| "the line does not fit one decode; lower --truncate".into())));
            }
            _ => break,
        }
    }
    group
}

fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch) -> Result<(), String> {
    ctx.decode(batch).map_err(|e| e.to_string())
}

fn add(batch: &mut LlamaBatch, toks: &[LlamaToken], start: usize, seq: i32) -> Result<(), EngineError> {
    for (i, t) in toks.iter().enumerate() {
        batch
            .add(*t, (start + i) as i32, &[seq], i + 1 == toks.len())
            .map_err(|e| EngineError::Decode(e.to_string()))?;
    }
    Ok(())
}

pub(super) fn score<'m>(
    env: &LoadedModel<'m>,
    slot: &mut ClassifyContext<'m>,
    out: &Responder<'_>,
    req: &ScoreRequest,
) -> Result<Finish, EngineError> {
    let model = env.model;
    let (before, after) = split_prompt(model, &env.format, &req.prompt)?;
    let vocab = model.vocab();
    let prefix = vocab.tokenize(before.as_bytes(), !env.format.starts_with_bos(&before), true);
    let suffix = vocab.tokenize(after.as_bytes(), false, true);
    let labels = label_tokens(model, &req.labels)?;
    let max_item = req.max_item_tokens.max(8).min(N_BATCH - 8 - suffix.len().min(N_BATCH / 2));
    let per_item_max = max_item + suffix.len();
    if prefix.len() + per_item_max > N_BATCH * 4 {
        return Err(EngineError::Classify("the prompt prefix is too long; shorten the instruction or examples".into()));
    }
    let n_seq = if req.share_prefix { req.batch.clamp(1, MAX_SEQ) + 1 } else { 1 };
    let n_ctx = prefix.len() + N_BATCH.max(per_item_max) + 64;
    let cc = context(slot, model, env.backend, env.threads_batch, None, n_seq, n_ctx)?;
    let n_batch = cc.ctx.n_batch() as usize;
    if per_item_max > n_batch || (!req.share_prefix && prefix.len() + per_item_max > cc.ctx.n_ctx() as usize) {
        return Err(EngineError::Classify("a line cannot fit the classifier context; lower --max-tokens".into()));
    }
    let mut batch = LlamaBatch::new(n_batch.max(prefix.len().min(n_batch)), 1);
    let pending: Vec<(usize, Result<Vec<LlamaToken>, String>)> = req
        .items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                i,
                item_tokens(model, t, max_item).map(|mut v| {
                    v.extend_from_slice(&suffix);
                    v
                }),
            )
        })
        .collect();
    let emit = |index: usize, result: ItemResult| {
        out.item(index, result);
    };
    if req.share_prefix {
        // Sequence 0 holds the prefix; reuse it across requests when it is unchanged.
        if cc.prefix != prefix {
            cc.ctx.clear_kv_cache();
            cc.prefix.clear();
            for chunk in prefix.chunks(n_batch) {
                batch.clear();
                add(&mut batch, chunk, cc.prefix.len(), 0)?;
                decode(&mut cc.ctx, &mut batch).map_err(EngineError::Decode)?;
                cc.prefix.extend_from_slice(chunk);
            }
        }
    } else {
        cc.prefix.clear();
    }
    let p_len = prefix.len();
    let mut it = pending.into_iter().peekable();
    while it.peek().is_some() {
        if out.cancelled() {
            return Err(EngineError::Cancelled);
        }
        let group = next_group(&mut it, if req.share_prefix { n_seq - 1 } else { 1 }, n_batch, &emit);
        if group.is_empty() {
            continue;
        }
        let results = if req.share_prefix {
            score_shared(&mut cc.ctx, &mut batch, &group, p_len, &labels)
        } else {
            score_full(&mut cc.ctx, &mut batch, &prefix, &group[0].1, &labels).map(|r| vec![r])
        };
        match results {
            Ok(rs) => {
                for ((i, _), r) in group.iter().zip(rs) {
                    emit(*i, Ok(r));
                }
            }
            Err(e) => {
                for (i, _) in &group {
                    emit(*i, Err(format!("decode failed: {e}")));
                }
            }
        }
    }
    Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() })
}

fn pick(logits: &[f32], labels: &[LlamaToken]) -> Vec<f32> {
    labels.iter().map(|t| logits.get(t.0 as usize).copied().unwrap_or(f32::NEG_INFINITY)).collect()
}

fn score_shared(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    group: &[(usize, Vec<LlamaToken>)],
    p_len: usize,
    labels: &[LlamaToken],
) -> Result<Vec<Vec<f32>>, String> {
    batch.clear();
    let mut last = Vec::with_capacity(group.len());
    for (s, (_, toks)) in group.iter().enumerate() {
        let seq = (s + 1) as i32;
        let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        if p_len > 0 {
            ctx.copy_kv_cache_seq(0, seq, None, None).map_err(|e| e.to_string())?;
        }
        add(batch, toks, p_len, seq).map_err(|e| e.to_string())?;
        last.push(batch.n_tokens() - 1);
    }
    decode(ctx, batch)?;
    let out = last.iter().map(|&i| pick(ctx.get_logits_ith(i), labels)).collect();
    for s in 0..group.len() {
        let _ = ctx.clear_kv_cache_seq(Some((s + 1) as u32), None, None);
    }
    Ok(out)
}

fn score_full(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    prefix: &[LlamaToken],
    item: &[LlamaToken],
    labels: &[LlamaToken],
) -> Result<Vec<f32>, String> {
    ctx.clear_kv_cache();
    let all: Vec<LlamaToken> = prefix.iter().chain(item).copied().collect();
    let n_batch = ctx.n_batch() as usize;
    let mut pos = 0;
    for chunk in all.chunks(n_batch) {
        batch.clear();
        add(batch, chunk, pos, 0).map_err(|e| e.to_string())?;
        decode(ctx, batch)?;
        pos += chunk.len();
    }
    Ok(pick(ctx.get_logits_ith(batch.n_tokens() - 1), labels))
}

pub(super) fn embed<'m>(
    env: &LoadedModel<'m>,
    slot: &mut ClassifyContext<'m>,
    out: &Responder<'_>,
    req: &EmbedRequest,
) -> Result<Finish, EngineError> {
    let model = env.model;
    let (before, after) = split_prompt(model, &env.format, &req.prompt)?;
    let vocab = model.vocab();
    // Under RANK the model's own specials wrap the line instead (below).
    let add_bos = req.pooling != Pooling::Rank && !env.format.starts_with_bos(&before);
    let prefix = vocab.tokenize(before.as_bytes(), add_bos, true);
    let suffix = vocab.tokenize(after.as_bytes(), false, true);
    let fixed = prefix.len() + suffix.len();
    if fixed + 8 > N_BATCH {
        return Err(EngineError::Classify("the embedding prompt is too long".into()));
    }
    let mut max_item = req.max_item_tokens.max(8).min(N_BATCH - fixed);
    // A classifier's head reads the model's own special tokens ([CLS] … [SEP]) around the text, and
    // absolute position tables end at the training context.
    let (open, close) = if req.pooling == Pooling::Rank {
        let wrap = vocab.tokenize(b"", true, false);
        let n_open = wrap.iter().take_while(|t| **t == vocab.bos()).count();
        max_item = max_item.min((model.n_ctx_train() as usize).saturating_sub(wrap.len()).max(1));
        (wrap[..n_open].to_vec(), wrap[n_open..].to_vec())
    } else {
        (Vec::new(), Vec::new())
    };
    let n_seq = req.batch.clamp(1, MAX_SEQ);
    let cc = context(slot, model, env.backend, env.threads_batch, Some(req.pooling), n_seq, N_BATCH)?;
    cc.prefix.clear();
    let n_batch = cc.ctx.n_batch() as usize;
    // An encoder attends across the whole batch (other sequences are only masked out), so its cost
    // grows with the square of the tokens per decode; measured best near 512 (README, Classify).
    let group_tokens = match env.encoder {
        true => (fixed + max_item + open.len() + close.len()).max(ENCODER_GROUP_TOKENS).min(n_batch),
        false => n_batch,
    };
    let mut batch = LlamaBatch::new(n_batch, 1);
    let emit = |index: usize, result: ItemResult| {
        out.item(index, result);
    };
    let mut it = req
        .items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                i,
                item_tokens(model, t, max_item)
                    .map(|v| [&open, &prefix, &v, &suffix, &close].into_iter().flatten().copied().collect::<Vec<_>>()),
            )
        })
        .peekable();
    while it.peek().is_some() {
        if out.cancelled() {
            return Err(EngineError::Cancelled);
        }
        let group = next_group(&mut it, n_seq, group_tokens, &emit);
        if group.is_empty() {
            continue;
        }
        cc.ctx.clear_kv_cache();
        batch.clear();
        let mut ok = true;
        for (s, (_, toks)) in group.iter().enumerate() {
            ok &= batch.add_sequence(toks, s as i32, true).is_ok();
        }
        let res = if ok { decode(&mut cc.ctx, &mut batch) } else { Err("batch overflow".into()) };
        for (s, (i, _)) in group.iter().enumerate() {
            let r = match &res {
                Ok(()) => cc.ctx.embeddings_seq_ith(s as i32).map(|v| v.to_vec()).map_err(|e| e.to_string()),
                Err(e) => Err(format!("decode failed: {e}")),
            };
            emit(*i, r);
        }
    }
    cc.ctx.clear_kv_cache();
    Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() })
}
