//! Running a library prompt or script from a conversation (`/prompt`, `/run`) or the command line
//! (`moat run`): the prompt runner talks to the engine through [`Generator`] implementations.

use super::Message;
use crate::config::SamplingConfig;
use crate::engine::{GenStats, StopReason, Submitter, Task};
use crate::prompts::{self, Cut, GenRequest, Generator, Lang, Library, OutputFormat, Params, Reply};

/// A prompt or script to run on some input, as asked for in a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptJob {
    pub id: String,
    pub vars: Vec<(String, String)>,
    pub input: String,
}

/// Characters of input that fit a context of `n_ctx` tokens next to the instructions and reply
/// (about 1,200 tokens). The default model takes about 0.23 tokens per English character but 1.76
/// per Chinese one (measured: see [`prompts::lint::ratios`]), so English gets 3 characters a token
/// and Chinese 1/1.8. The engine still checks exactly.
pub fn input_budget(n_ctx: usize, lang: Lang) -> usize {
    let tokens = n_ctx.saturating_sub(1200);
    match lang {
        Lang::En => tokens * 3,
        Lang::Zh => tokens * 10 / 18,
    }
}

/// The input budget every front end (`moat run`, the REPL, the full-screen chat) gives a prompt
/// job: [`input_budget`] of the model's context, or `None` when `n_ctx` is 0 — a server that
/// does not report its context. Then no budget applies beyond the prompt file's own: guessing a
/// context would refuse inputs the server takes, and the server checks the prompt exactly and
/// says in one line by how much it is over.
pub fn budget(n_ctx: usize, lang: Lang) -> Option<usize> {
    (n_ctx > 0).then(|| input_budget(n_ctx, lang))
}

/// Runs `job` and returns its human view (or text), for showing in a conversation. `n_ctx` is
/// the model's context in tokens, 0 when unknown (see [`budget`]).
pub fn run(job: &PromptJob, lib: &Library, n_ctx: usize, gen: &mut dyn Generator) -> Result<String, String> {
    let lang = Lang::detect(&job.input);
    let r =
        prompts::run_script(lib, &job.id, &job.vars, &job.input, lang, &Params::default(), budget(n_ctx, lang), gen)
            .map_err(|e| e.to_string())?;
    Ok(r.format(OutputFormat::View))
}

/// Variables given as `key=value`.
pub type Vars = Vec<(String, String)>;

/// Splits `/prompt ID k=v "k2=two words"` arguments; `last` is set by a trailing `--last`.
pub fn parse_args(args: &str) -> Result<(String, Vars, bool), String> {
    let words = shlex::split(args).ok_or_else(|| "unbalanced quotes".to_string())?;
    let mut it = words.into_iter();
    let id = it.next().ok_or_else(|| "which prompt? e.g. /prompt market/swot subject=Acme".to_string())?;
    let (mut vars, mut last) = (Vec::new(), false);
    for w in it {
        if w == "--last" {
            last = true;
        } else if let Some((k, v)) = w.split_once('=') {
            vars.push((k.to_string(), v.to_string()));
        } else {
            return Err(format!("{w:?}: expected key=value (or --last)"));
        }
    }
    Ok((id, vars, last))
}

fn sampling_for(base: &SamplingConfig, p: &Params) -> SamplingConfig {
    p.apply_to(base)
}

fn task(base: &SamplingConfig, req: &GenRequest) -> Task {
    let mut messages = Vec::new();
    if let Some(system) = req.system.as_ref().filter(|s| !s.trim().is_empty()) {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(req.user.clone()));
    Task::Structured { messages, sampling: sampling_for(base, &req.params), json_schema: req.json_schema.clone() }
}

/// Why a finished reply stopped early, for the prompt runner's cut-off message.
fn cut_of(reason: StopReason, max_tokens: u32, stats: &GenStats) -> Option<Cut> {
    match reason {
        StopReason::MaxTokens => Some(Cut::MaxTokens(max_tokens)),
        StopReason::ContextFull => Some(Cut::ContextFull(stats.n_ctx.min(u32::MAX as usize) as u32)),
        _ => None,
    }
}

/// A generator that submits each step to the engine and waits for it: from the CLI and the REPL
/// (which own the engine), or from a job thread beside the chat (through a [`Submitter`]).
pub struct EngineGenerator<'a> {
    submitter: Submitter,
    pub base: SamplingConfig,
    /// Called before each request with its number, e.g. for a progress line.
    pub on_request: Box<dyn FnMut(usize) + Send + 'a>,
    calls: usize,
}

impl<'a> EngineGenerator<'a> {
    pub fn new(submitter: Submitter, base: SamplingConfig) -> Self {
        EngineGenerator { submitter, base, on_request: Box::new(|_| {}), calls: 0 }
    }
}

impl Generator for EngineGenerator<'_> {
    fn generate(&mut self, req: &GenRequest) -> Result<Reply, String> {
        self.calls += 1;
        (self.on_request)(self.calls);
        let max_tokens = sampling_for(&self.base, &req.params).max_tokens;
        let reply = self.submitter.submit(task(&self.base, req)).text(|_| {}).map_err(|e| e.to_string())?;
        match reply.reason {
            StopReason::Cancelled => Err("interrupted".into()),
            reason => Ok(Reply { cut: cut_of(reason, max_tokens, &reply.stats), text: reply.text }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_keep_quoted_values_and_spot_mistakes() {
        let (id, vars, last) = parse_args(r#"market/swot subject="Acme AI" max_per_quadrant=2 --last"#).unwrap();
        assert_eq!(id, "market/swot");
        assert_eq!(vars, vec![("subject".into(), "Acme AI".into()), ("max_per_quadrant".into(), "2".into())]);
        assert!(last);
        assert!(parse_args("market/swot oops").unwrap_err().contains("key=value"));
        assert!(parse_args("").is_err());
    }

    #[test]
    fn chinese_input_is_budgeted_at_its_real_token_cost() {
        // 2,896 tokens of room: a 2,000-character Chinese article (3,523 tokens) does not fit, 1,600 characters do.
        assert_eq!(input_budget(4096, Lang::Zh), 1608);
        assert_eq!(input_budget(4096, Lang::En), 8688);
        assert_eq!(input_budget(100, Lang::Zh), 0);
    }

    #[test]
    fn a_mocked_job_returns_the_view() {
        let lib = Library::builtin();
        let job = PromptJob {
            id: "market/swot".into(),
            vars: vec![("subject".into(), "Acme".into())],
            input: "Acme sells tools.".into(),
        };
        let mut gen = prompts::MockGenerator::new([
            r#"{"strengths":[{"point":"brand","evidence":[]}],"weaknesses":[],"opportunities":[{"point":"export","evidence":[]}],"threats":[{"point":"rivals","evidence":[]}]}"#,
        ]);
        let view = run(&job, &lib, 4096, &mut gen).unwrap();
        assert!(view.contains("brand") && view.contains("rivals"), "{view}");
    }
}
