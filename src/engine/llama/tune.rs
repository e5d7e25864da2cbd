//! `moat tune`'s measurements: the model loaded once, then one short context per combination of
//! the settings that matter on this device, each timed on a prompt (pp) and on generation after
//! it (tg at the prompt's depth). What is kept and how the winner is chosen is `engine::tune`.

use super::gpu;
use super::init;
use crate::config::FlashAttn;
use crate::engine::tune::Trial;
use crate::engine::{EngineError, EngineOptions};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How much to measure.
#[derive(Debug, Clone)]
pub struct TunePlan {
    /// Prompt tokens per trial; generation is timed after them (a chat with some history).
    pub depth: u32,
    /// Tokens generated per trial.
    pub gen_tokens: u32,
    /// Wall-clock budget, loading included. The first pair of trials (flash attention off and on)
    /// always runs; a further pair starts only if twice the last trial's duration still fits.
    pub budget: Duration,
}

impl Default for TunePlan {
    fn default() -> Self {
        TunePlan { depth: 512, gen_tokens: 32, budget: Duration::from_secs(10) }
    }
}

/// What a tune measured.
#[derive(Debug, Clone)]
pub struct TuneReport {
    /// Every trial in the order run (failed ones carry their error).
    pub trials: Vec<Trial>,
    /// The depth actually used (the plan's, shortened for a small training context).
    pub depth: u32,
    pub gen_tokens: u32,
    /// The device key the numbers belong to ([`gpu::device_key`]).
    pub device: String,
    pub load_ms: f64,
    pub took_ms: f64,
}

/// The combinations worth trying, most telling first: flash attention off and on with
/// llama.cpp's default threads and batch, then other generation thread counts (physical, one
/// fewer, logical) paired with other prompt settings (prompt threads logical or physical, batch
/// 512 or 256). With layers on a GPU, threads hardly matter and only the batch varies.
fn candidates(physical: u32, logical: u32, on_gpu: bool) -> Vec<Trial> {
    let mut tg: Vec<u32> = vec![physical];
    if !on_gpu {
        for t in [physical.saturating_sub(1), logical] {
            if t > 0 && !tg.contains(&t) {
                tg.push(t);
            }
        }
    }
    let mut pp: Vec<(u32, u32)> = Vec::new();
    for c in [(logical, 512), (physical, 512), (logical, 256)] {
        // On a GPU the prompt runs there: only the batch is worth varying.
        let worth = !on_gpu || c.0 == logical;
        if worth && !pp.contains(&c) {
            pp.push(c);
        }
    }
    let n = tg.len().max(pp.len());
    let mut out = Vec::new();
    for i in 0..n {
        let threads = tg[i.min(tg.len() - 1)];
        let (threads_batch, batch) = pp[i.min(pp.len() - 1)];
        for flash_attn in [FlashAttn::Off, FlashAttn::On] {
            out.push(Trial { flash_attn, threads, threads_batch, batch, pp_tok_s: 0.0, tg_tok_s: 0.0, error: None });
        }
    }
    out
}

/// Loads `opts.model_path` (its GPU layers as `opts` asks) and runs the trials of `plan`, calling
/// `on_trial` after each. Settings in `opts` other than the ones tuned (context types, GPU
/// layers) are used as they are.
///
/// Errors: the model does not load, or `cancel` was set (`Cancelled`). A trial llama.cpp refuses
/// (e.g. flash attention off with a quantised V cache) is kept with its error instead.
pub fn measure(
    opts: &EngineOptions,
    plan: &TunePlan,
    cancel: &AtomicBool,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<TuneReport, EngineError> {
    let started = Instant::now();
    let backend = init::backend(opts.log_file.as_deref());
    let path = opts.model_path.display().to_string();
    let header = crate::models::gguf::inspect(&opts.model_path).ok();
    let n_ctx_train = header.as_ref().and_then(|g| g.context_length).map_or(0, |n| n.min(u32::MAX as u64) as u32);
    let mut depth = plan.depth.max(1);
    if n_ctx_train > 0 {
        depth = depth.min(n_ctx_train.saturating_sub(plan.gen_tokens + 8).max(16));
    }
    let n_ctx = (depth + plan.gen_tokens + 16).div_ceil(256) * 256;
    let base = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(1)
        .with_type_k(gpu::kv_type(&opts.cache_type_k))
        .with_type_v(gpu::kv_type(&opts.cache_type_v))
        .with_no_perf(false);
    let (layers, _) = gpu::plan_layers(backend, opts.gpu_layers, &opts.model_path, &base);
    let params = LlamaModelParams::default().with_n_gpu_layers(layers);
    let model = LlamaModel::load_from_file(backend, &opts.model_path, &params)
        .map_err(|e| EngineError::Load { path: path.clone(), why: e.to_string() })?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let prompt = super::bench::random_prompt(&model, depth as usize);
    let gen_tokens = plan.gen_tokens.max(1) as usize;
    // Tokens fed back one at a time; the first random one (or the BOS) is skipped.
    let generated = super::bench::random_prompt(&model, gen_tokens + 2);
    let mut trials = Vec::new();
    let mut last = Duration::ZERO;
    // Trials come in pairs (flash attention off, on) and only whole pairs run: the choice takes each
    // setting's best trial, so a setting measured more often than the other would win on noise.
    for pair in candidates(init::physical_cores(), init::logical_cores(), layers > 0).chunks(2) {
        if !trials.is_empty() && started.elapsed() + last * pair.len() as u32 > plan.budget {
            break;
        }
        for trial in pair {
            let mut trial = trial.clone();
            if cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let t0 = Instant::now();
            let cparams = base
                .clone()
                .with_n_threads(trial.threads as i32)
                .with_n_threads_batch(trial.threads_batch as i32)
                .with_flash_attention_policy(gpu::flash_attn(trial.flash_attn));
            // The first trial reads the prompt once untimed: cold, flash attention off (always first)
            // read prompts at 0.64-0.93x the speed of on in five tunes, where llama-bench, warm, has
            // the two at 0.89-0.90x.
            let warm_prompt = trials.is_empty();
            let gen = &generated[1..1 + gen_tokens];
            match run_trial(&model, backend, cparams, &prompt, gen, trial.batch as usize, warm_prompt, cancel) {
                Ok((pp, tg)) => (trial.pp_tok_s, trial.tg_tok_s) = (pp, tg),
                Err(TrialError::Cancelled) => return Err(EngineError::Cancelled),
                Err(TrialError::Failed(why)) => trial.error = Some(why),
            }
            last = t0.elapsed();
            on_trial(&trial);
            trials.push(trial);
        }
    }
    Ok(TuneReport {
        trials,
        depth,
        gen_tokens: gen_tokens as u32,
        device: gpu::device_key(opts.gpu_layers),
        load_ms,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

enum TrialError {
    Cancelled,
    Failed(String),
}

/// One context with `cparams`: `prompt` read in decodes of `batch` tokens (timed: pp), then one
/// token at a time from `gen` after it (timed: tg). With `warm_prompt` the prompt is read once
/// untimed first. Returns (pp, tg) in tokens/s.
#[allow(clippy::too_many_arguments)]
fn run_trial(
    model: &LlamaModel,
    backend: &LlamaBackend,
    cparams: LlamaContextParams,
    prompt: &[LlamaToken],
    gen: &[LlamaToken],
    batch: usize,
    warm_prompt: bool,
    cancel: &AtomicBool,
) -> Result<(f64, f64), TrialError> {
    let mut ctx = model.new_context(backend, cparams).map_err(|e| TrialError::Failed(e.to_string()))?;
    let mut b = LlamaBatch::new(batch.max(1), 1);
    // Warm-up: thread pools start and both graph shapes (a batch, one token) are built untimed.
    let warm = if warm_prompt { prompt.len() } else { prompt.len().min(8) };
    for (i, chunk) in prompt[..warm].chunks(batch.max(1)).enumerate() {
        decode_at(&mut ctx, &mut b, chunk, i * batch)?;
    }
    decode_at(&mut ctx, &mut b, &gen[..1], warm)?;
    ctx.clear_kv_cache();

    let start = Instant::now();
    for (i, chunk) in prompt.chunks(batch.max(1)).enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrialError::Cancelled);
        }
        decode_at(&mut ctx, &mut b, chunk, i * batch)?;
    }
    ctx.synchronize();
    let pp_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    for (i, t) in gen.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrialError::Cancelled);
        }
        decode_at(&mut ctx, &mut b, std::slice::from_ref(t), prompt.len() + i)?;
        // Generation reads each token's logits before the next: wait for them as it would.
        ctx.synchronize();
    }
    let tg_s = start.elapsed().as_secs_f64();
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    Ok((rate(prompt.len(), pp_s), rate(gen.len(), tg_s)))
}

/// Decodes `tokens` at positions from `pos` in sequence 0, with logits for the last one.
fn decode_at(
    ctx: &mut LlamaContext<'_>,
    b: &mut LlamaBatch,
    tokens: &[LlamaToken],
    pos: usize,
) -> Result<(), TrialError> {
    b.clear();
    for (i, t) in tokens.iter().enumerate() {
        b.add(*t, (pos + i) as i32, &[0], i + 1 == tokens.len()).map_err(|e| TrialError::Failed(e.to_string()))?;
    }
    ctx.decode(b).map_err(|e| TrialError::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(v: &[Trial]) -> Vec<(FlashAttn, u32, u32, u32)> {
        v.iter().map(|t| (t.flash_attn, t.threads, t.threads_batch, t.batch)).collect()
    }

    #[test]
    fn flash_attention_off_and_on_come_first_then_other_threads_and_batches() {
        use FlashAttn::{Off, On};
        assert_eq!(
            shape(&candidates(2, 2, false)),
            vec![(Off, 2, 2, 512), (On, 2, 2, 512), (Off, 1, 2, 256), (On, 1, 2, 256)]
        );
        let v = shape(&candidates(8, 16, false));
        assert_eq!(v.len(), 6);
        assert_eq!(&v[..2], &[(Off, 8, 16, 512), (On, 8, 16, 512)]);
        assert_eq!(v[2..].iter().map(|c| c.1).collect::<Vec<_>>(), vec![7, 7, 16, 16]);
        assert_eq!(
            v[2..].iter().map(|c| (c.2, c.3)).collect::<Vec<_>>(),
            vec![(8, 512), (8, 512), (16, 256), (16, 256)]
        );
        // One core: nothing to vary but the batch.
        assert_eq!(
            shape(&candidates(1, 1, false)),
            vec![(Off, 1, 1, 512), (On, 1, 1, 512), (Off, 1, 1, 256), (On, 1, 1, 256)]
        );
        // On a GPU the batch varies, not the threads.
        assert_eq!(
            shape(&candidates(8, 16, true)),
            vec![(Off, 8, 16, 512), (On, 8, 16, 512), (Off, 8, 16, 256), (On, 8, 16, 256)]
        );
    }
}
