//! Perplexity of a model on a text, llama-perplexity's way: the text's tokens cut into windows of
//! `n_ctx`, each window decoded from an empty cache (its first token replaced by BOS where the
//! model adds one), and only the second half of each window scored, so that every scored token
//! has at least `n_ctx / 2` tokens of context. PPL = exp(mean negative log-likelihood).

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

/// What to measure.
#[derive(Debug, Clone)]
pub struct PerplexityRequest {
    pub model: PathBuf,
    /// The text, as decoded by the caller.
    pub text: String,
    /// Window length in tokens (≥ 16).
    pub n_ctx: u32,
    /// Threads; 0 = physical cores.
    pub threads: u32,
}

/// The result: `ppl` over `scored` tokens in `windows` windows of `n_ctx`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Perplexity {
    pub ppl: f64,
    /// The standard error of the mean negative log-likelihood, in nats (PPL's own uncertainty
    /// is about `ppl * nll_stderr`).
    pub nll_stderr: f64,
    pub scored: usize,
    pub windows: usize,
    pub n_ctx: u32,
    pub text_tokens: usize,
    pub seconds: f64,
}

/// The negative log-likelihood (nats) of `target` under `logits` (log-softmax, computed stably).
pub fn token_nll(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    (max + sum.ln()) - logits.get(target).copied().unwrap_or(f32::NEG_INFINITY) as f64
}

/// The windows a text of `n_tokens` tokens gives at `n_ctx`: whole windows only, as
/// llama-perplexity counts them.
pub fn windows(n_tokens: usize, n_ctx: usize) -> usize {
    n_tokens.checked_div(n_ctx).unwrap_or(0)
}

/// Measures `req` on llama.cpp's CPU/GPU backend (started if needed, logging to `log_file`).
///
/// Errors: one line — the model does not load, the text is shorter than one window of `n_ctx`
/// tokens (the message asks for a longer text or a smaller `-c`), or a decode fails.
pub fn perplexity(req: &PerplexityRequest, log_file: Option<&Path>) -> Result<Perplexity, String> {
    let started = std::time::Instant::now();
    if req.n_ctx < 16 {
        return Err("the perplexity window (-c) must be at least 16 tokens".into());
    }
    let backend = crate::engine::backend(log_file);
    let model = LlamaModel::load_from_file(backend, &req.model, &LlamaModelParams::default())
        .map_err(|e| format!("cannot load {}: {e}", req.model.display()))?;
    let vocab = model.vocab();
    let add_bos = vocab.should_add_bos();
    let tokens = vocab.tokenize(req.text.as_bytes(), add_bos, false);
    let n_ctx = req.n_ctx as usize;
    let n_windows = windows(tokens.len(), n_ctx);
    if n_windows < 1 {
        return Err(format!(
            "the text is {} tokens, shorter than one window of {n_ctx}; give a longer text or a smaller -c",
            tokens.len()
        ));
    }
    let threads = if req.threads == 0 { num_cpus::get_physical().max(1) as i32 } else { req.threads as i32 };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(req.n_ctx))
        .with_n_batch(req.n_ctx)
        .with_n_ubatch(req.n_ctx.min(512))
        .with_n_seq_max(1)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params).map_err(|e| format!("cannot make a context of {n_ctx}: {e}"))?;
    let bos = vocab.bos();
    let first = n_ctx / 2;
    let (mut sum, mut sum_sq, mut scored) = (0.0f64, 0.0f64, 0usize);
    let mut batch = LlamaBatch::new(n_ctx, 1);
    for w in 0..n_windows {
        if crate::interrupt::interrupted() {
            return Err("interrupted".into());
        }
        let window = &tokens[w * n_ctx..(w + 1) * n_ctx];
        ctx.clear_kv_cache();
        batch.clear();
        for (i, &tok) in window.iter().enumerate() {
            let tok = if i == 0 && add_bos { bos } else { tok };
            batch.add(tok, i as i32, &[0], i >= first && i + 1 < n_ctx).map_err(|e| e.to_string())?;
        }
        ctx.decode(&mut batch).map_err(|e| format!("decode failed: {e}"))?;
        for i in first..n_ctx - 1 {
            let nll = token_nll(ctx.get_logits_ith(i as i32), window[i + 1].0 as usize);
            sum += nll;
            sum_sq += nll * nll;
            scored += 1;
        }
    }
    let mean = sum / scored as f64;
    let var = (sum_sq / scored as f64 - mean * mean).max(0.0);
    Ok(Perplexity {
        ppl: mean.exp(),
        nll_stderr: (var / (scored.max(2) - 1) as f64).sqrt(),
        scored,
        windows: n_windows,
        n_ctx: req.n_ctx,
        text_tokens: tokens.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_is_log_softmax_of_the_target() {
        // Uniform over 4: -ln(1/4).
        assert!((token_nll(&[0.5; 4], 2) - 4f64.ln()).abs() < 1e-9);
        // Large logits do not overflow.
        let l = [1000.0, 0.0];
        assert!(token_nll(&l, 0).abs() < 1e-9);
        assert!((token_nll(&l, 1) - 1000.0).abs() < 1e-6);
        // An index past the vocabulary is infinitely unlikely, not a panic.
        assert!(token_nll(&l, 9).is_infinite());
    }

    #[test]
    fn only_whole_windows_count() {
        assert_eq!(windows(1000, 256), 3);
        assert_eq!(windows(255, 256), 0);
        assert_eq!(windows(10, 0), 0);
    }
}
