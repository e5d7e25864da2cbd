//! Running a library prompt or script from a conversation (`/prompt`, `/run`) or the command line
//! (`moat run`): the prompt runner talks to the engine through [`Generator`] implementations.

use super::Message;
use crate::config::SamplingConfig;
use crate::engine::{EngineError, GenStats, Generated, Sink, StopReason, StructuredRequest, Submitter, Task};
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
    run_with_progress(job, lib, n_ctx, gen, &mut |_| {})
}

/// [`run`], reporting map-reduce progress on long input. A long input's view ends with one line
/// saying how it was condensed.
pub fn run_with_progress(
    job: &PromptJob,
    lib: &Library,
    n_ctx: usize,
    gen: &mut dyn Generator,
    progress: &mut dyn FnMut(&prompts::Progress),
) -> Result<String, String> {
    let lang = Lang::detect(&job.input);
    let mut opts = prompts::RunOptions {
        long: prompts::LongOptions { n_ctx, ..Default::default() },
        progress: Some(Box::new(|p: &prompts::Progress| progress(p))),
    };
    let r = prompts::run_script_opts(
        lib,
        &job.id,
        &job.vars,
        &job.input,
        lang,
        &Params::default(),
        budget(n_ctx, lang),
        gen,
        &mut opts,
    )
    .map_err(|e| e.to_string())?;
    let mut view = r.format(OutputFormat::View);
    if let Some(long) = &r.long {
        view.push_str(&format!(
            "\n\n({} characters in {} chunks → {} facts, {} after merging; --as trace in `moat run` shows each chunk)",
            long.doc_chars,
            long.chunks.len(),
            long.facts_extracted,
            long.facts_merged
        ));
        for note in &long.notes {
            view.push_str(&format!("\n({note})"));
        }
    }
    Ok(view)
}

/// A one-line progress report for front ends without a progress bar.
pub fn progress_line(p: &prompts::Progress) -> String {
    match p.stage {
        prompts::Stage::Map => format!("map: {}/{} chunks", p.done, p.total),
        prompts::Stage::Reduce(n) => format!("reduce round {n}: {}/{} fact groups", p.done, p.total),
    }
}

/// Variables given as `key=value`.
pub type Vars = Vec<(String, String)>;

/// What `/prompt` and `/run` were given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobArgs {
    pub id: String,
    pub vars: Vars,
    /// `--last`: run on the last reply.
    pub last: bool,
    /// `--file PATH`: run on this file.
    pub file: Option<String>,
}

/// Splits `/prompt ID k=v "k2=two words" [--last | --file PATH]` arguments.
pub fn parse_args(args: &str) -> Result<JobArgs, String> {
    let words = shlex::split(args).ok_or_else(|| "unbalanced quotes".to_string())?;
    let mut it = words.into_iter();
    let id = it.next().ok_or_else(|| "which prompt? e.g. /prompt market/swot subject=Acme".to_string())?;
    let mut out = JobArgs { id, ..Default::default() };
    while let Some(w) = it.next() {
        if w == "--last" {
            out.last = true;
        } else if w == "--file" {
            out.file = Some(it.next().ok_or_else(|| "--file needs a path, e.g. --file report.md".to_string())?);
        } else if let Some((k, v)) = w.split_once('=') {
            out.vars.push((k.to_string(), v.to_string()));
        } else {
            return Err(format!("{w:?}: expected key=value (or --last, --file PATH)"));
        }
    }
    if out.last && out.file.is_some() {
        return Err("--last and --file both name the input; give one".into());
    }
    Ok(out)
}

/// The text of `path` for a prompt job: the same decoding as `moat run --input` (BOM, CRLF;
/// UTF-16, NUL and invalid UTF-8 refused), at most 64 MiB.
pub fn read_input_file(path: &str) -> Result<String, String> {
    const MAX: u64 = 64 << 20;
    let shown = crate::render::for_terminal(path, true);
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if meta.len() > MAX {
        return Err(format!("{shown} is {} MiB; the limit is 64 MiB", meta.len() >> 20));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    crate::text_input::decode(&shown, bytes).map_err(|e| e.to_string())
}

fn sampling_for(base: &SamplingConfig, p: &Params) -> SamplingConfig {
    p.apply_to(base)
}

fn task(base: &SamplingConfig, req: &GenRequest) -> Task {
    let StructuredRequest { messages, sampling, json_schema } = request(base, req);
    Task::Structured { messages, sampling, json_schema }
}

/// A prompt step's request as the engine takes it: the system message (when there is one), the
/// user message, the sampling settings and the schema.
fn request(base: &SamplingConfig, req: &GenRequest) -> StructuredRequest {
    let mut messages = Vec::new();
    if let Some(system) = req.system.as_ref().filter(|s| !s.trim().is_empty()) {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(req.user.clone()));
    StructuredRequest { messages, sampling: sampling_for(base, &req.params), json_schema: req.json_schema.clone() }
}

/// A finished engine reply as the prompt runner takes it: cancelled = interrupted, else the text
/// and whether it was cut off.
fn reply_of(text: String, reason: StopReason, max_tokens: u32, stats: &GenStats) -> Result<Reply, String> {
    match reason {
        StopReason::Cancelled => Err("interrupted".into()),
        reason => Ok(Reply { cut: cut_of(reason, max_tokens, stats), text }),
    }
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
        reply_of(reply.text, reply.reason, max_tokens, &reply.stats)
    }

    /// One `StructuredMany` task for all of `reqs`; `on_request` is called once per request as
    /// they are handed over. A request the engine never answered (the task failed or was
    /// interrupted before it) gets the task's error.
    fn generate_many(
        &mut self,
        reqs: &[GenRequest],
        done: &mut dyn FnMut(usize, &Result<Reply, String>),
    ) -> Vec<Result<Reply, String>> {
        for _ in reqs {
            self.calls += 1;
            (self.on_request)(self.calls);
        }
        let requests: Vec<StructuredRequest> = reqs.iter().map(|r| request(&self.base, r)).collect();
        let max_tokens: Vec<u32> = requests.iter().map(|r| r.sampling.max_tokens).collect();
        struct Collect<'d> {
            max_tokens: Vec<u32>,
            results: Vec<Option<Result<Reply, String>>>,
            done: &'d mut dyn FnMut(usize, &Result<Reply, String>),
        }
        impl Sink for Collect<'_> {
            fn generated(&mut self, index: usize, result: Result<Generated, EngineError>) {
                let (Some(&max_tokens), Some(slot)) = (self.max_tokens.get(index), self.results.get_mut(index)) else {
                    return;
                };
                let reply =
                    result.map_err(|e| e.to_string()).and_then(|g| reply_of(g.text, g.reason, max_tokens, &g.stats));
                (self.done)(index, &reply);
                *slot = Some(reply);
            }
        }
        let mut sink = Collect { max_tokens, results: vec![None; reqs.len()], done };
        let end = self.submitter.submit(Task::StructuredMany { requests }).wait(&mut sink);
        let missing = match end {
            Ok(f) if f.reason == StopReason::Cancelled => "interrupted".to_string(),
            Ok(_) => "the engine gave no reply to this request".to_string(),
            Err(e) => e.to_string(),
        };
        let Collect { results, done, .. } = sink;
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| {
                    let reply = Err(missing.clone());
                    done(i, &reply);
                    reply
                })
            })
            .collect()
    }

    /// One `Tokenize` task for all of `texts`; `None` when the engine cannot count (the caller
    /// estimates) or the count was interrupted.
    fn count_tokens(&mut self, texts: &[&str]) -> Option<Vec<usize>> {
        let task = Task::Tokenize { texts: texts.iter().map(|t| t.to_string()).collect() };
        self.submitter.submit(task).counts().ok().filter(|c| c.len() == texts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_keep_quoted_values_and_spot_mistakes() {
        let a = parse_args(r#"market/swot subject="Acme AI" max_per_quadrant=2 --last"#).unwrap();
        assert_eq!(a.id, "market/swot");
        assert_eq!(a.vars, vec![("subject".into(), "Acme AI".into()), ("max_per_quadrant".into(), "2".into())]);
        assert!(a.last && a.file.is_none());
        assert!(parse_args("market/swot oops").unwrap_err().contains("key=value"));
        assert!(parse_args("").is_err());
        let a = parse_args(r#"market/swot --file "my report.md" subject=X"#).unwrap();
        assert_eq!(a.file.as_deref(), Some("my report.md"));
        assert!(parse_args("market/swot --file").unwrap_err().contains("needs a path"));
        assert!(parse_args("market/swot --file a --last").unwrap_err().contains("give one"));
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
