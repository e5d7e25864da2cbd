//! One sequence in the KV cache and the tokens that mirror it. A new prompt is compared with what is
//! cached and only the differing tail is decoded, so a follow-up chat turn costs only its new tokens.

use super::sampling::Sampler;
use crate::engine::text::{Scan, StopScanner, Utf8Stream};
use crate::engine::{Cancel, EngineError, StopReason};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::DecodeError;
use std::time::Instant;

pub struct KvSession<'m> {
    pub ctx: LlamaContext<'m>,
    /// Exactly the tokens in sequence 0 of the cache, in order.
    cached: Vec<LlamaToken>,
    n_batch: usize,
}

pub struct SyncStats {
    pub reused: usize,
    pub decoded: usize,
}

pub struct GenOutcome {
    pub reason: StopReason,
    pub tokens: usize,
    /// Tokens sampled, including a final end-of-generation token.
    pub samples: usize,
    pub first_token_at: Option<Instant>,
    pub last_token_at: Option<Instant>,
}

impl GenOutcome {
    /// Puts the reply's token count, time to first token (from `start`), generation time and rate into `stats`.
    pub fn fill(&self, stats: &mut crate::engine::GenStats, start: std::time::Instant) {
        stats.gen_tokens = self.tokens;
        if let (Some(first), Some(last)) = (self.first_token_at, self.last_token_at) {
            stats.ttft_ms = first.duration_since(start).as_secs_f64() * 1000.0;
            stats.gen_ms = last.duration_since(first).as_secs_f64() * 1000.0;
            if self.samples > 1 && stats.gen_ms > 0.0 {
                stats.gen_tok_s = (self.samples - 1) as f64 / (stats.gen_ms / 1000.0);
            }
        }
    }
}

/// Generation settings that are not sampling.
pub struct GenLimits<'a> {
    pub max_tokens: usize,
    pub stops: Vec<String>,
    pub cancel: &'a Cancel,
    /// Keep going past end-of-generation tokens (benchmarks measure a fixed count).
    pub ignore_eog: bool,
}

impl<'m> KvSession<'m> {
    pub fn new(ctx: LlamaContext<'m>) -> Self {
        let n_batch = ctx.n_batch() as usize;
        KvSession { ctx, cached: Vec::new(), n_batch }
    }

    pub fn n_ctx(&self) -> usize {
        self.ctx.n_ctx() as usize
    }

    pub fn used(&self) -> usize {
        self.cached.len()
    }

    pub fn reset(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// Makes the cache hold exactly `tokens`, decoding only what differs from what it holds now.
    /// Cancellation is checked between batches; the cache stays consistent either way.
    pub fn sync(&mut self, tokens: &[LlamaToken], cancel: &Cancel) -> Result<SyncStats, EngineError> {
        let mut keep = self.cached.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        if keep == tokens.len() && keep > 0 {
            keep -= 1; // the last token is decoded again so that its logits exist
        }
        if keep < self.cached.len() {
            if self.ctx.kv_cache_seq_rm(0, Some(keep as u32), None).is_err() {
                // Recurrent models cannot cut a tail: start over.
                self.reset();
                keep = 0;
            }
            self.cached.truncate(keep);
        }
        let mut batch = LlamaBatch::new(self.n_batch, 1);
        for chunk in tokens[keep..].chunks(self.n_batch) {
            if cancel.is_set() {
                return Err(EngineError::Cancelled);
            }
            batch.clear();
            let base = self.cached.len();
            for (i, t) in chunk.iter().enumerate() {
                batch
                    .add(*t, (base + i) as i32, &[0], i + 1 == chunk.len())
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
            self.decode(&mut batch)?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(SyncStats { reused: keep, decoded: tokens.len() - keep })
    }

    fn decode(&mut self, batch: &mut LlamaBatch) -> Result<(), EngineError> {
        decode(&mut self.ctx, batch)
    }

    /// Samples and decodes one token at a time, passing finished text to `on_text`. Stops at an
    /// end-of-generation token, a stop string, `max_tokens`, a full context, or cancellation.
    pub fn generate(
        &mut self,
        model: &LlamaModel,
        sampler: &mut Sampler,
        limits: GenLimits<'_>,
        mut on_text: impl FnMut(&str),
    ) -> Result<GenOutcome, EngineError> {
        let mut reply = ReplyText::new(limits.max_tokens, limits.stops, limits.ignore_eog);
        let mut batch = LlamaBatch::new(1, 1);
        let mut reason = StopReason::MaxTokens;
        while reply.has_room() {
            if limits.cancel.is_set() {
                reason = StopReason::Cancelled;
                break;
            }
            let tok = sampler.sample(&self.ctx);
            if let Some(end) = reply.push(model, tok, &mut on_text) {
                reason = end;
                break;
            }
            if self.cached.len() >= self.n_ctx() {
                reason = StopReason::ContextFull;
                break;
            }
            batch.clear();
            batch.add(tok, self.cached.len() as i32, &[0], true).map_err(|e| EngineError::Decode(e.to_string()))?;
            self.decode(&mut batch)?;
            self.cached.push(tok);
        }
        Ok(reply.finish(reason, &mut on_text))
    }
}

/// One `llama_decode`, its errors as one line.
pub fn decode(ctx: &mut LlamaContext<'_>, batch: &mut LlamaBatch) -> Result<(), EngineError> {
    ctx.decode(batch).map_err(|e| match e {
        DecodeError::NoKvCacheSlot => EngineError::Decode("the context is full".into()),
        other => EngineError::Decode(other.to_string()),
    })
}

/// Turns one reply's sampled tokens into text: whole UTF-8 characters, stop strings cut off and
/// never shown, counted against `max_tokens`. Shared by the one-sequence loop
/// ([`KvSession::generate`]) and the many-sequence one (`parallel.rs`), so both end replies alike.
pub struct ReplyText {
    utf8: Utf8Stream,
    scanner: StopScanner,
    piece: Vec<u8>,
    chunk: String,
    out: GenOutcome,
    max_tokens: usize,
    ignore_eog: bool,
}

impl ReplyText {
    pub fn new(max_tokens: usize, stops: Vec<String>, ignore_eog: bool) -> Self {
        ReplyText {
            utf8: Utf8Stream::default(),
            scanner: StopScanner::new(stops),
            piece: Vec::with_capacity(32),
            chunk: String::new(),
            out: GenOutcome {
                reason: StopReason::MaxTokens,
                tokens: 0,
                samples: 0,
                first_token_at: None,
                last_token_at: None,
            },
            max_tokens,
            ignore_eog,
        }
    }

    /// Whether another token may be sampled (`max_tokens` not reached).
    pub fn has_room(&self) -> bool {
        self.out.tokens < self.max_tokens
    }

    /// Takes one sampled token, passing the text it completes to `on_text`; `Some` when the reply
    /// ends with it (end of generation, or a stop string, whose text is not passed on).
    pub fn push(&mut self, model: &LlamaModel, tok: LlamaToken, on_text: &mut impl FnMut(&str)) -> Option<StopReason> {
        let vocab = model.vocab();
        let now = Instant::now();
        self.out.samples += 1;
        self.out.first_token_at.get_or_insert(now);
        self.out.last_token_at = Some(now);
        if vocab.is_eog(tok) && !self.ignore_eog {
            return Some(StopReason::EndOfGeneration);
        }
        self.out.tokens += 1;
        self.piece.clear();
        vocab.token_to_piece_into(tok, &mut self.piece, false, None);
        self.chunk.clear();
        self.utf8.push(&self.piece, &mut self.chunk);
        match self.scanner.push(&self.chunk) {
            Scan::Emit(t) => {
                if !t.is_empty() {
                    on_text(&t);
                }
                None
            }
            Scan::Stop(t) => {
                if !t.is_empty() {
                    on_text(&t);
                }
                Some(StopReason::StopString)
            }
        }
    }

    /// Ends the reply with `reason`, passing on the text held back in case it began a stop string
    /// (nothing after a stop string: the rest was the stop string's).
    pub fn finish(mut self, reason: StopReason, on_text: &mut impl FnMut(&str)) -> GenOutcome {
        self.out.reason = reason;
        if reason != StopReason::StopString {
            self.utf8.finish();
            let tail = self.scanner.finish();
            if !tail.is_empty() {
                on_text(&tail);
            }
        }
        self.out
    }
}
