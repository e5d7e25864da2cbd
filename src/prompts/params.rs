//! The boundary between prompt files and whatever engine produces text.
//!
//! Nothing here knows about llama.cpp: the engine receives the rendered messages, sampling overrides and
//! the JSON Schema as text, and compiles that schema into its own grammar.

/// One generation request. `json_schema` is the schema exactly as written in the prompt file, so the key order
/// the author chose (e.g. reasons before verdicts) survives into the grammar.
#[derive(Clone, Debug, PartialEq)]
pub struct GenRequest {
    pub system: Option<String>,
    pub user: String,
    pub params: Params,
    pub json_schema: Option<String>,
}

/// Sampling parameters of one layer (a prompt file's or step's `[model]`, the command-line flags).
/// `None` means "not set at this level"; [`crate::sampling::Layers`] stacks the layers in their
/// precedence, and whatever is still `None` at the end is left to the engine's config defaults.
pub use crate::sampling::SamplingOverrides as Params;

/// Why a reply stopped before the model ended it, when the engine knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The reply reached its `max_tokens` (the number).
    MaxTokens(u32),
    /// The context window (this many tokens) filled up during the reply.
    ContextFull(u32),
}

/// What a generator produced: the text, and whether it was cut off.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub text: String,
    pub cut: Option<Cut>,
}

impl From<String> for Reply {
    fn from(text: String) -> Reply {
        Reply { text, cut: None }
    }
}

impl From<&str> for Reply {
    fn from(text: &str) -> Reply {
        Reply { text: text.to_string(), cut: None }
    }
}

/// Anything that turns a request into text: the llama.cpp engine in moat, a mock in tests.
pub trait Generator {
    fn generate(&mut self, req: &GenRequest) -> Result<Reply, String>;

    /// Each text's length in tokens of the model in use (no BOS, no chat template), or `None` when
    /// this generator cannot count; callers then estimate from characters.
    fn count_tokens(&mut self, _texts: &[&str]) -> Option<Vec<usize>> {
        None
    }

    /// Independent requests, run at once where the engine can (parallel sequences in one context
    /// locally, concurrent requests on a server). `done(index, reply)` is called as each one
    /// finishes, in any order; the result is in request order. The default runs them one by one.
    fn generate_many(
        &mut self,
        reqs: &[GenRequest],
        done: &mut dyn FnMut(usize, &Result<Reply, String>),
    ) -> Vec<Result<Reply, String>> {
        let mut out = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.iter().enumerate() {
            let reply = self.generate(r);
            done(i, &reply);
            out.push(reply);
        }
        out
    }
}

/// Replays canned replies in order; used by embedded tests and unit tests. Records what it was asked so tests can
/// check the wiring (e.g. that a retry carried the validator's message).
#[derive(Default, Debug)]
pub struct MockGenerator {
    pub replies: Vec<String>,
    pub requests: Vec<GenRequest>,
}

impl MockGenerator {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(replies: I) -> Self {
        MockGenerator { replies: replies.into_iter().map(Into::into).collect(), requests: Vec::new() }
    }
}

impl Generator for MockGenerator {
    fn generate(&mut self, req: &GenRequest) -> Result<Reply, String> {
        self.requests.push(req.clone());
        if self.replies.is_empty() {
            return Err("mock generator has no reply left".into());
        }
        Ok(Reply::from(self.replies.remove(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_precedence() {
        let file = Params { temperature: Some(0.2), max_tokens: Some(500), ..Default::default() };
        let step = Params { temperature: Some(0.0), ..Default::default() };
        let cli = Params { seed: Some(7), ..Default::default() };
        let p = file.overlay(&step).overlay(&cli);
        assert_eq!(p, Params { temperature: Some(0.0), max_tokens: Some(500), seed: Some(7), ..Default::default() });
    }
}
