//! `moat bench`: llama-bench's pp/tg measurements taken through moat's own generation path, plus
//! the ratio of moat's wall-clock generation rate to llama.cpp's internal eval timing (what moat's
//! sampling, detokenising and channel add per token).

use super::model::LoadedModel;
use super::session::{GenLimits, KvSession};
use crate::config::SamplingConfig;
use crate::engine::{EngineError, Finish, GenStats, Responder, StopReason};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::time::Instant;

/// `n` deterministic pseudo-random ordinary tokens (BOS first when the model wants one), like
/// llama-bench's random prompt: no control or end-of-generation tokens.
pub(super) fn random_prompt(model: &LlamaModel, n: usize) -> Vec<LlamaToken> {
    let vocab = model.vocab();
    let n_vocab = model.n_vocab().max(2) as u32;
    let mut rng = crate::rng::Rng::new(0x2545_F491_4F6C_DD1D);
    let mut prompt: Vec<LlamaToken> = Vec::with_capacity(n);
    if vocab.should_add_bos() {
        prompt.push(vocab.bos());
    }
    while prompt.len() < n {
        let t = LlamaToken(rng.below(n_vocab as u64) as i32);
        if !vocab.is_control(t) && !vocab.is_eog(t) {
            prompt.push(t);
        }
    }
    prompt
}

#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Tokens already in the cache before each measurement (llama-bench's `-d`): the prompt is
    /// read after them and generation starts from them (at least one token, the first), so both
    /// rates are at that depth. `None`: generation follows the prompt, as in a chat turn.
    pub depth: Option<usize>,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub reps: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchSample {
    pub rep: usize,
    pub depth: usize,
    pub pp_tokens: usize,
    pub pp_ms: f64,
    pub pp_tok_s: f64,
    pub ttft_ms: f64,
    pub gen_tokens: usize,
    pub gen_wall_ms: f64,
    /// moat's wall-clock rate: sampling + decode + detokenise + channel, per token.
    pub gen_tok_s: f64,
    /// llama.cpp's own eval timing for the same tokens.
    pub llama_gen_tok_s: f64,
    pub ratio: f64,
}

pub(super) fn run(
    env: &LoadedModel<'_>,
    session: &mut KvSession<'_>,
    out: &Responder<'_>,
    req: &BenchRequest,
) -> Result<Finish, EngineError> {
    let depth = req.depth.unwrap_or(0);
    let need = depth + req.prompt_tokens + req.gen_tokens + 1;
    if need > session.n_ctx() {
        return Err(EngineError::PromptTooLong { tokens: need, n_ctx: session.n_ctx(), reserve: 0 });
    }
    let all = random_prompt(env.model, depth + req.prompt_tokens);
    let prefix = &all[..depth.min(all.len())];
    let greedy = SamplingConfig { temperature: 0.0, repeat_penalty: 1.0, ..SamplingConfig::default() };

    // Warm-up: the first decode allocates compute graphs.
    session.reset();
    session.sync(&all[..all.len().min(32)], out.cancel())?;
    for rep in 0..req.reps {
        session.reset();
        if !prefix.is_empty() {
            session.sync(prefix, out.cancel())?;
        }
        let start = Instant::now();
        let synced = session.sync(&all, out.cancel())?;
        let pp_ms = start.elapsed().as_secs_f64() * 1000.0;
        if req.depth.is_some() {
            // Back to the depth (its last token decoded again for its logits), as llama-bench's tg at `-d`.
            session.sync(&all[..depth.clamp(1, all.len())], out.cancel())?;
        }
        session.ctx.reset_timings();
        let (mut sampler, _) = super::sampling::build(env.model, &greedy);
        let limits =
            GenLimits { max_tokens: req.gen_tokens, stops: Vec::new(), cancel: out.cancel(), ignore_eog: true };
        let gen = session.generate(env.model, &mut sampler, limits, |t| out.token(t))?;
        let end = Instant::now();
        if gen.reason == StopReason::Cancelled {
            return Err(EngineError::Cancelled);
        }
        let first = gen.first_token_at.unwrap_or(end);
        let gen_wall_ms = end.duration_since(first).as_secs_f64() * 1000.0;
        let timings = session.ctx.timings();
        let llama_gen_tok_s =
            if timings.t_eval_ms() > 0.0 { timings.n_eval() as f64 / (timings.t_eval_ms() / 1000.0) } else { 0.0 };
        let gen_tok_s = if gen_wall_ms > 0.0 { gen.tokens as f64 / (gen_wall_ms / 1000.0) } else { 0.0 };
        let sample = BenchSample {
            rep,
            depth: prefix.len(),
            pp_tokens: synced.decoded,
            pp_ms,
            pp_tok_s: synced.decoded as f64 / (pp_ms / 1000.0),
            ttft_ms: first.duration_since(start).as_secs_f64() * 1000.0,
            gen_tokens: gen.tokens,
            gen_wall_ms,
            gen_tok_s,
            llama_gen_tok_s,
            ratio: if llama_gen_tok_s > 0.0 { gen_tok_s / llama_gen_tok_s } else { 0.0 },
        };
        out.bench(sample);
    }
    session.reset();
    Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() })
}
