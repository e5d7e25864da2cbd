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
        self.ctx.decode(batch).map_err(|e| match e {
            DecodeError::NoKvCacheSlot => EngineError::Decode("the context is full".into()),
            other => EngineError::Decode(other.to_string()),
        })
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
        let vocab = model.vocab();
        let mut utf8 = Utf8Stream::default();
        let mut scanner = StopScanner::new(limits.stops);
        let mut batch = LlamaBatch::new(1, 1);
        let mut piece = Vec::with_capacity(32);
        let mut chunk = String::new();
        let mut out = GenOutcome {
            reason: StopReason::MaxTokens,
            tokens: 0,
            samples: 0,
            first_token_at: None,
            last_token_at: None,
        };
        while out.tokens < limits.max_tokens {
            if limits.cancel.is_set() {
                out.reason = StopReason::Cancelled;
                break;
            }
            let tok = sampler.sample(&self.ctx);
            let now = Instant::now();
            out.samples += 1;
            out.first_token_at.get_or_insert(now);
            out.last_token_at = Some(now);
            if vocab.is_eog(tok) && !limits.ignore_eog {
                out.reason = StopReason::EndOfGeneration;
                break;
            }
            out.tokens += 1;
            piece.clear();
            vocab.token_to_piece_into(tok, &mut piece, false, None);
            chunk.clear();
            utf8.push(&piece, &mut chunk);
            match scanner.push(&chunk) {
                Scan::Emit(t) => {
                    if !t.is_empty() {
                        on_text(&t);
                    }
                }
                Scan::Stop(t) => {
                    if !t.is_empty() {
                        on_text(&t);
                    }
                    out.reason = StopReason::StopString;
                    return Ok(out);
                }
            }
            if self.cached.len() >= self.n_ctx() {
                out.reason = StopReason::ContextFull;
                break;
            }
            batch.clear();
            batch.add(tok, self.cached.len() as i32, &[0], true).map_err(|e| EngineError::Decode(e.to_string()))?;
            self.decode(&mut batch)?;
            self.cached.push(tok);
        }
        utf8.finish();
        let tail = scanner.finish();
        if !tail.is_empty() {
            on_text(&tail);
        }
        Ok(out)
    }
}
