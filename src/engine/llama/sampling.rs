use crate::config::SamplingConfig;
use crate::prompts::partial::PartialJson;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use std::collections::VecDeque;

/// Chooses the next token from the logits of the last decode.
pub enum Sampler<'m> {
    /// Plain greedy: an argmax over the logits. llama.cpp's sampler would first copy all of them
    /// into a candidate array (3 MB per token for a 262k vocabulary), which costs a few percent
    /// of generation speed on small models.
    Greedy,
    Chain(LlamaSampler),
    /// Grammar-constrained decoding. Checking every token of the vocabulary against the grammar
    /// costs far more than a decode on small models, so, like llama.cpp's own common sampler, the
    /// token is chosen without the grammar first and only that one is checked; the whole
    /// vocabulary is filtered only when the grammar rejects it.
    ///
    /// With `steer` (a JSON-schema grammar), the reply is also steered to close before its token
    /// budget runs out: see [`Steer`].
    Constrained {
        grammar: LlamaSampler,
        inner: Box<Sampler<'m>>,
        steer: Option<Box<Steer<'m>>>,
    },
}

impl Sampler<'_> {
    /// The next token from the logits of the last decode's last output.
    pub fn sample(&mut self, ctx: &LlamaContext) -> LlamaToken {
        self.sample_at(ctx, -1)
    }

    /// The next token from the logits of output `idx` of the last decode (its index in the
    /// batch; negative counts from the last output), for many sequences decoded together.
    pub fn sample_at(&mut self, ctx: &LlamaContext, idx: i32) -> LlamaToken {
        match self {
            Sampler::Greedy => LlamaToken(argmax(ctx.get_logits_ith(idx)) as i32),
            // `sample` also accepts the token into the chain's state (repeat penalties).
            Sampler::Chain(s) => s.sample(ctx, idx),
            Sampler::Constrained { grammar, inner, steer } => {
                let steer = steer.as_deref_mut().filter(|s| s.active);
                let Some(steer) = steer else {
                    let tok = choose(grammar, inner, ctx, idx);
                    grammar.accept(tok);
                    return tok;
                };
                if let Some(tok) = steer.forced.pop_front() {
                    if allows(grammar, tok) {
                        return steer.take(grammar, tok);
                    }
                    steer.give_up();
                    let tok = choose(grammar, inner, ctx, idx);
                    grammar.accept(tok);
                    return tok;
                }
                let tok = choose(grammar, inner, ctx, idx);
                if steer.leaves_room(tok) {
                    return steer.take(grammar, tok);
                }
                // Sampling on could leave too few tokens to close the JSON: close it now.
                match steer.closing_now() {
                    Some(plan) if plan.first().is_some_and(|&first| allows(grammar, first)) => {
                        steer.forced = plan.into();
                        let first = steer.forced.pop_front().expect("a non-empty plan");
                        steer.take(grammar, first)
                    }
                    _ => {
                        steer.give_up();
                        grammar.accept(tok);
                        tok
                    }
                }
            }
        }
    }
}

/// The next token as the sampler would choose it, among those the grammar allows; not yet accepted
/// by the grammar. Checking every token of the vocabulary against the grammar costs far more than a
/// decode on small models, so the unconstrained choice is checked first, then the top candidates,
/// and the whole vocabulary only if none of them is allowed.
fn choose(grammar: &mut LlamaSampler, inner: &mut Sampler<'_>, ctx: &LlamaContext, idx: i32) -> LlamaToken {
    let logits = ctx.get_logits_ith(idx);
    if let Sampler::Chain(chain) = inner {
        // Applied, not sampled: sampling would record the unconstrained choice in the chain's history
        // (repeat penalty, DRY), and the grammar may replace it. The token chosen is what is recorded.
        let mut all = full_candidates(logits);
        chain.apply(&mut all);
        let mut tok = all.selected_token().unwrap_or_else(|| best(&all));
        if !allows(grammar, tok) {
            let mut allowed = allowed_candidates(grammar, logits);
            chain.apply(&mut allowed);
            tok = allowed.selected_token().unwrap_or_else(|| best(&allowed));
        }
        chain.accept(tok);
        return tok;
    }
    let tok = inner.sample_at(ctx, idx);
    if allows(grammar, tok) {
        return tok;
    }
    best(&allowed_candidates(grammar, logits))
}

/// The top candidates the grammar allows, or the whole vocabulary's when it allows none of them.
fn allowed_candidates(grammar: &mut LlamaSampler, logits: &[f32]) -> LlamaTokenDataArray {
    let mut allowed = top_candidates(logits, TOP_CANDIDATES);
    grammar.apply(&mut allowed);
    if !allowed.data.iter().any(|d| d.logit() > f32::NEG_INFINITY) {
        allowed = full_candidates(logits);
        grammar.apply(&mut allowed);
    }
    allowed
}

fn full_candidates(logits: &[f32]) -> LlamaTokenDataArray {
    LlamaTokenDataArray::from_iter(
        logits.iter().enumerate().map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0)),
        false,
    )
}

/// Whether the grammar, in its current state, allows `tok` next.
fn allows(grammar: &mut LlamaSampler, tok: LlamaToken) -> bool {
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(tok, 1.0, 0.0)], false);
    grammar.apply(&mut one);
    one.data[0].logit() > f32::NEG_INFINITY
}

/// Steers a reply under a JSON-schema grammar so that it is never cut off open: it follows the
/// JSON as it is generated ([`PartialJson`]), and before each token checks that what would be
/// left of the budget after it still holds the shortest schema-valid completion. When it would
/// not, it stops sampling and emits that completion (the rest of a string, minimal values for
/// required fields still missing, the closing brackets). The check looks one token ahead with the
/// exact tokens it would emit, so no extra margin is needed. Every forced token is checked against
/// the grammar before it is accepted; a completion the grammar would refuse ends steering (the
/// reply may then be cut, which the prompt runner reports as such).
pub struct Steer<'m> {
    model: &'m LlamaModel,
    json: PartialJson,
    /// Reply tokens the budget still allows.
    left: usize,
    /// Leading bytes of a character whose other bytes are still to come.
    pending: Vec<u8>,
    /// The closing tokens still to emit once steering took over.
    forced: VecDeque<LlamaToken>,
    /// The closing plan from the state after a candidate token, computed by `leaves_room`.
    lookahead: Option<(LlamaToken, Option<Vec<LlamaToken>>)>,
    /// The closing plan from the current state, when already known.
    here: Option<Option<Vec<LlamaToken>>>,
    /// Tokens whose piece is one UTF-8 continuation byte (0x80 + index), found on first need.
    byte_tokens: Option<Vec<Option<LlamaToken>>>,
    active: bool,
}

impl<'m> Steer<'m> {
    /// Steering for a reply to `schema` (JSON Schema text) that may take `budget` tokens; `None`
    /// if the schema is not JSON.
    pub fn new(model: &'m LlamaModel, schema: &str, budget: usize) -> Option<Steer<'m>> {
        Some(Steer {
            model,
            json: PartialJson::new(schema).ok()?,
            left: budget,
            pending: Vec::new(),
            forced: VecDeque::new(),
            lookahead: None,
            here: None,
            byte_tokens: None,
            active: true,
        })
    }

    fn piece(&self, tok: LlamaToken) -> Vec<u8> {
        let mut piece = Vec::new();
        self.model.vocab().token_to_piece_into(tok, &mut piece, false, None);
        piece
    }

    /// Accepts `tok` into the grammar and follows it.
    fn take(&mut self, grammar: &mut LlamaSampler, tok: LlamaToken) -> LlamaToken {
        grammar.accept(tok);
        if self.model.vocab().is_eog(tok) {
            return tok;
        }
        let piece = self.piece(tok);
        let looked = self.lookahead.take();
        if !feed(&mut self.json, &mut self.pending, &piece) {
            self.give_up();
        }
        self.left = self.left.saturating_sub(1);
        // The plan computed for this very token is the plan from here.
        self.here = looked.filter(|(t, _)| *t == tok).map(|(_, plan)| plan);
        tok
    }

    fn give_up(&mut self) {
        self.active = false;
        self.forced.clear();
    }

    /// Whether, after `tok`, the rest of the budget still holds the shortest completion.
    fn leaves_room(&mut self, tok: LlamaToken) -> bool {
        if self.model.vocab().is_eog(tok) {
            return true;
        }
        let (mut json, mut pending) = (self.json.clone(), self.pending.clone());
        let plan = match feed(&mut json, &mut pending, &self.piece(tok)) {
            true => self.plan(&json, &pending),
            false => None,
        };
        // No plan from there (text the tracker cannot follow): steering cannot help either way.
        let room = plan.as_ref().is_none_or(|p| p.len() < self.left);
        self.lookahead = Some((tok, plan));
        room
    }

    /// The tokens that close the reply from the current state, if they fit the budget.
    fn closing_now(&mut self) -> Option<Vec<LlamaToken>> {
        let plan = match self.here.take() {
            Some(plan) => plan,
            None => {
                let (json, pending) = (self.json.clone(), self.pending.clone());
                self.plan(&json, &pending)
            }
        }?;
        (!plan.is_empty() && plan.len() <= self.left).then_some(plan)
    }

    /// Tokens that finish a pending character, then the text of the JSON completion, tokenised and
    /// checked to read back as exactly that text.
    fn plan(&mut self, json: &PartialJson, pending: &[u8]) -> Option<Vec<LlamaToken>> {
        let mut tokens = Vec::new();
        let mut json = json.clone();
        if let Some(&lead) = pending.first() {
            let width = match lead {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let mut bytes = pending.to_vec();
            while bytes.len() < width {
                // Continuation bytes that make a valid character whatever the lead byte was.
                let b = match (bytes.len(), lead) {
                    (1, 0xE0) => 0xA0,
                    (1, 0xF0) => 0x90,
                    _ => 0x80,
                };
                tokens.push(self.byte_token(b)?);
                bytes.push(b);
            }
            json.push_str(std::str::from_utf8(&bytes).ok()?);
        }
        let text = json.completion()?;
        let closing = self.model.vocab().tokenize(text.as_bytes(), false, false);
        let read_back: Vec<u8> = closing.iter().flat_map(|&t| self.piece(t)).collect();
        if read_back != text.as_bytes() {
            return None;
        }
        tokens.extend(closing);
        Some(tokens)
    }

    fn byte_token(&mut self, byte: u8) -> Option<LlamaToken> {
        if self.byte_tokens.is_none() {
            let mut found = vec![None; 64];
            let vocab = self.model.vocab();
            let mut piece = Vec::new();
            for tok in vocab.tokens() {
                piece.clear();
                vocab.token_to_piece_into(tok, &mut piece, false, None);
                if let [b @ 0x80..=0xBF] = piece[..] {
                    found[(b - 0x80) as usize].get_or_insert(tok);
                }
            }
            self.byte_tokens = Some(found);
        }
        self.byte_tokens.as_ref()?.get(byte.checked_sub(0x80)? as usize).copied().flatten()
    }
}

/// Feeds token bytes to the tracker, holding back an unfinished character; false on invalid UTF-8.
fn feed(json: &mut PartialJson, pending: &mut Vec<u8>, bytes: &[u8]) -> bool {
    pending.extend_from_slice(bytes);
    match std::str::from_utf8(pending) {
        Ok(s) => {
            json.push_str(s);
            pending.clear();
            true
        }
        Err(e) if e.error_len().is_none() => {
            let ok = e.valid_up_to();
            json.push_str(std::str::from_utf8(&pending[..ok]).expect("checked prefix"));
            pending.drain(..ok);
            true
        }
        Err(_) => false,
    }
}

/// How many tokens back DRY looks for a repeat: the whole reply (only the reply's tokens are accepted
/// into the chain). A positive count is required: this llama.cpp clamps a negative one ("the whole
/// context" in older versions and in llama-server) to 0, which turns DRY off without a word.
fn dry_look_back(p: &SamplingConfig) -> i32 {
    (p.max_tokens as i64).clamp(64, 1 << 16) as i32
}

/// Where a DRY repeat stops counting (llama.cpp's defaults).
const DRY_SEQUENCE_BREAKERS: [&str; 4] = ["\n", ":", "\"", "*"];

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
pub fn build<'m>(model: &'m LlamaModel, p: &SamplingConfig) -> (Sampler<'m>, u32) {
    build_constrained(model, p, None, None).expect("no grammar, nothing to fail")
}

/// As [`build`], with an optional GBNF grammar (rule `root`) that masks every token the grammar
/// does not allow; it goes first so the other samplers only see allowed tokens. `steer` (for a
/// grammar made from a JSON schema) closes the JSON before the token budget runs out.
pub fn build_constrained<'m>(
    model: &'m LlamaModel,
    p: &SamplingConfig,
    grammar: Option<&str>,
    steer: Option<Steer<'m>>,
) -> Result<(Sampler<'m>, u32), String> {
    let seed = if p.seed < 0 { crate::engine::random_seed() } else { p.seed as u32 };
    if let Some(g) = grammar {
        let grammar = LlamaSampler::grammar(model, g, "root").map_err(|e| e.to_string())?;
        let (inner, seed) = build_constrained(model, p, None, None)?;
        return Ok((Sampler::Constrained { grammar, inner: Box::new(inner), steer: steer.map(Box::new) }, seed));
    }
    if p.temperature <= 0.0 && p.repeat_penalty == 1.0 && p.dry_multiplier <= 0.0 {
        return Ok((Sampler::Greedy, seed));
    }
    let mut chain = Vec::new();
    if p.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(model.n_vocab(), p.repeat_last_n, p.repeat_penalty, 0.0, 0.0));
    }
    if p.dry_multiplier > 0.0 {
        // A newline, colon, quote or asterisk ends a sequence (llama.cpp's defaults), so JSON keys and
        // Markdown markup may repeat freely.
        chain.push(LlamaSampler::dry(
            model,
            p.dry_multiplier,
            p.dry_base,
            p.dry_allowed_length,
            dry_look_back(p),
            DRY_SEQUENCE_BREAKERS,
        ));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
        return Ok((Sampler::Chain(LlamaSampler::chain_simple(chain)), seed));
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
    Ok((Sampler::Chain(LlamaSampler::chain_simple(chain)), seed))
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
