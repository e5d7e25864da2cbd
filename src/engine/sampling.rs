use crate::config::SamplingConfig;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;

/// Builds llama.cpp's sampler chain for a reply. Temperature 0 means greedy: the same prompt then
/// always gives the same reply.
pub fn build(model: &LlamaModel, p: &SamplingConfig) -> (LlamaSampler, u32) {
    let seed = if p.seed < 0 { random_seed() } else { p.seed as u32 };
    let mut chain = Vec::new();
    if p.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(model.n_vocab(), p.repeat_last_n, p.repeat_penalty, 0.0, 0.0));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
        return (LlamaSampler::chain_simple(chain), seed);
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
    (LlamaSampler::chain_simple(chain), seed)
}

fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}
