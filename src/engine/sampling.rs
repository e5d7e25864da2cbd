use crate::config::SamplingConfig;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;

/// Chooses the next token from the logits of the last decode.
pub enum Picker {
    /// Plain greedy: an argmax over the logits. llama.cpp's sampler would first copy all of them
    /// into a candidate array (3 MB per token for a 262k vocabulary), which costs a few percent
    /// of generation speed on small models.
    Greedy,
    Chain(LlamaSampler),
    /// Grammar-constrained decoding. Checking every token of the vocabulary against the grammar
    /// costs far more than a decode on small models, so, like llama.cpp's own common sampler, the
    /// token is chosen without the grammar first and only that one is checked; the whole
    /// vocabulary is filtered only when the grammar rejects it.
    Constrained {
        grammar: LlamaSampler,
        inner: Box<Picker>,
    },
}

impl Picker {
    pub fn pick(&mut self, ctx: &LlamaContext) -> LlamaToken {
        match self {
            Picker::Greedy => LlamaToken(argmax(ctx.get_logits_ith(-1)) as i32),
            // `sample` also accepts the token into the chain's state (repeat penalties).
            Picker::Chain(s) => s.sample(ctx, -1),
            Picker::Constrained { grammar, inner } => {
                let tok = inner.pick(ctx);
                let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(tok, 1.0, 0.0)], false);
                grammar.apply(&mut one);
                if one.data[0].logit() > f32::NEG_INFINITY {
                    grammar.accept(tok);
                    return tok;
                }
                // Rejected: the grammar checks the most likely candidates first (almost always one
                // of them is allowed), and the whole vocabulary only if none is.
                let logits = ctx.get_logits_ith(-1);
                let mut allowed = top_candidates(logits, TOP_CANDIDATES);
                grammar.apply(&mut allowed);
                if !allowed.data.iter().any(|d| d.logit() > f32::NEG_INFINITY) {
                    allowed = LlamaTokenDataArray::from_iter(
                        logits.iter().enumerate().map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
                        false,
                    );
                    grammar.apply(&mut allowed);
                }
                let tok = match inner.as_mut() {
                    Picker::Chain(chain) => {
                        chain.apply(&mut allowed);
                        allowed.selected_token().unwrap_or_else(|| best(&allowed))
                    }
                    _ => best(&allowed),
                };
                grammar.accept(tok);
                tok
            }
        }
    }
}

/// How many of the most likely tokens the grammar sees before it is shown the whole vocabulary.
const TOP_CANDIDATES: usize = 128;

/// The `k` tokens with the highest logits.
fn top_candidates(logits: &[f32], k: usize) -> LlamaTokenDataArray {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(idx.len());
    if k > 0 && k < idx.len() {
        idx.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        idx.truncate(k);
    }
    LlamaTokenDataArray::new(
        idx.into_iter().map(|i| LlamaTokenData::new(LlamaToken(i as i32), logits[i], 0.0)).collect(),
        false,
    )
}

/// The allowed candidate with the highest logit.
fn best(a: &LlamaTokenDataArray) -> LlamaToken {
    a.data
        .iter()
        .filter(|d| d.logit() > f32::NEG_INFINITY)
        .max_by(|x, y| x.logit().total_cmp(&y.logit()))
        .map_or(LlamaToken(0), |d| d.id())
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
    build_constrained(model, p, None).expect("no grammar, nothing to fail")
}

/// As [`build`], with an optional GBNF grammar (rule `root`) that masks every token the grammar
/// does not allow; it goes first so the other samplers only see allowed tokens.
pub fn build_constrained(
    model: &LlamaModel,
    p: &SamplingConfig,
    grammar: Option<&str>,
) -> Result<(Picker, u32), String> {
    let seed = if p.seed < 0 { random_seed() } else { p.seed as u32 };
    if let Some(g) = grammar {
        let grammar = LlamaSampler::grammar(model, g, "root").map_err(|e| e.to_string())?;
        let (inner, seed) = build_constrained(model, p, None)?;
        return Ok((Picker::Constrained { grammar, inner: Box::new(inner) }, seed));
    }
    if p.temperature <= 0.0 && p.repeat_penalty == 1.0 {
        return Ok((Picker::Greedy, seed));
    }
    let mut chain = Vec::new();
    if p.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(model.n_vocab(), p.repeat_last_n, p.repeat_penalty, 0.0, 0.0));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
        return Ok((Picker::Chain(LlamaSampler::chain_simple(chain)), seed));
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
    Ok((Picker::Chain(LlamaSampler::chain_simple(chain)), seed))
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
    fn top_candidates_are_the_highest_logits() {
        let logits = [0.1, 5.0, -2.0, 3.0, 4.0, f32::NEG_INFINITY];
        let mut ids: Vec<i32> = super::top_candidates(&logits, 3).data.iter().map(|d| d.id().0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 3, 4]);
        assert_eq!(super::top_candidates(&logits, 10).data.len(), 6);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(super::argmax(&[0.5, 2.0, -1.0, 2.0]), 1);
        assert_eq!(super::argmax(&[f32::NEG_INFINITY, -3.0]), 1);
    }
}
