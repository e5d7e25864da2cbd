use crate::config::SamplingConfig;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

/// Chooses the next token from the logits of the last decode.
pub enum Picker {
    /// Plain greedy: an argmax over the logits. llama.cpp's sampler would first copy all of them
    /// into a candidate array (3 MB per token for a 262k vocabulary), which costs a few percent
    /// of generation speed on small models.
    Greedy,
    Chain(LlamaSampler),
}

impl Picker {
    pub fn pick(&mut self, ctx: &LlamaContext) -> LlamaToken {
        match self {
            Picker::Greedy => LlamaToken(argmax(ctx.get_logits_ith(-1)) as i32),
            // `sample` also accepts the token into the chain's state (repeat penalties).
            Picker::Chain(s) => s.sample(ctx, -1),
        }
    }
}

/// Index of the largest value; the first one on ties, like llama.cpp's greedy sampler.
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best
}

/// Builds llama.cpp's sampler chain for a reply. Temperature 0 means greedy: the same prompt then
/// always gives the same reply.
pub fn build(model: &LlamaModel, p: &SamplingConfig) -> (Picker, u32) {
    let seed = if p.seed < 0 { random_seed() } else { p.seed as u32 };
    if p.temperature <= 0.0 && p.repeat_penalty == 1.0 {
        return (Picker::Greedy, seed);
    }
    let mut chain = Vec::new();
    if p.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(model.n_vocab(), p.repeat_last_n, p.repeat_penalty, 0.0, 0.0));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
        return (Picker::Chain(LlamaSampler::chain_simple(chain)), seed);
    }
    if p.top_k > 0 {
        chain.push(LlamaSampler::top_k(p.top_k));
    }
    if p.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(p.top_p, 1));
    }
    if p.min_p > 0.0 {
        chain.push(LlamaSampler::min_p(p.min_p, 1));
    }
    chain.push(LlamaSampler::temp(p.temperature));
    chain.push(LlamaSampler::dist(seed));
    (Picker::Chain(LlamaSampler::chain_simple(chain)), seed)
}

fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(super::argmax(&[0.5, 2.0, -1.0, 2.0]), 1);
        assert_eq!(super::argmax(&[f32::NEG_INFINITY, -3.0]), 1);
    }
}
