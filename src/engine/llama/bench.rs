//! `moat bench`: llama-bench's pp/tg measurements taken through moat's own generation path, plus
//! the ratio of moat's wall-clock generation rate to llama.cpp's internal eval timing (what moat's
//! sampling, detokenising and channel add per token).

use super::model::LoadedModel;
use super::session::{GenLimits, KvSession};
use crate::config::SamplingConfig;
use crate::engine::{EngineError, Finish, GenStats, Responder, StopReason};
use llama_cpp_2::token::LlamaToken;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchRequest {
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    pub reps: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchSample {
    pub rep: usize,
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
    let need = req.prompt_tokens + req.gen_tokens + 1;
    if need > session.n_ctx() {
        return Err(EngineError::PromptTooLong { tokens: need, n_ctx: session.n_ctx(), reserve: 0 });
    }
    let vocab = env.model.vocab();
    let n_vocab = env.model.n_vocab().max(2) as u32;
    // Deterministic pseudo-random ordinary tokens, like llama-bench's random prompt.
    let mut rng = crate::rng::Rng::new(0x2545_F491_4F6C_DD1D);
    let mut prompt: Vec<LlamaToken> = Vec::with_capacity(req.prompt_tokens);
    if vocab.should_add_bos() {
        prompt.push(vocab.bos());
    }
    while prompt.len() < req.prompt_tokens {
        let t = LlamaToken(rng.below(n_vocab as u64) as i32);
        if !vocab.is_control(t) && !vocab.is_eog(t) {
            prompt.push(t);
        }
    }
    let greedy = SamplingConfig { temperature: 0.0, repeat_penalty: 1.0, ..SamplingConfig::default() };

    // Warm-up: the first decode allocates compute graphs.
    session.reset();
    session.sync(&prompt[..prompt.len().min(32)], out.cancel())?;
    for rep in 0..req.reps {
        session.reset();
        let start = Instant::now();
        session.sync(&prompt, out.cancel())?;
        let pp_ms = start.elapsed().as_secs_f64() * 1000.0;
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
            pp_tokens: prompt.len(),
            pp_ms,
            pp_tok_s: prompt.len() as f64 / (pp_ms / 1000.0),
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
