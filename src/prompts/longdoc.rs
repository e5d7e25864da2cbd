//! Input longer than a prompt takes: split, extract, merge (map-reduce).
//!
//! A prompt file says what happens to input over its budget (`[input] long`). With `map-reduce` the input is
//! split into chunks sized in the model's tokens ([`super::chunk`]), so each fits the context beside the map
//! prompt and its reply; the map prompt (`[input] map`, default [`DEFAULT_MAP`]) extracts facts from every chunk
//! — all chunks at once where the engine runs several sequences — and moat, not the model, attaches each fact's
//! chunk id. The facts are de-duplicated and, when they still do not fit the prompt's budget, reduced again by
//! the map prompt in groups (hierarchically, each group's ids being the only ones it may cite) until they do.
//! The prompt itself then runs on the merged facts, one line each behind its ids: `- [c03, c07] statement`.
//!
//! Input that fits is passed through, behind passage tags when the prompt cites evidence (see
//! [`super::evidence`]).

use std::time::Instant;

use minijinja::Environment;
use serde::Serialize;
use serde_json::Value;

use super::chunk::{self, Chunk, ChunkOptions};
use super::error::PromptError;
use super::evidence::{self, Passage};
use super::format::{Format, InputSpec, Long};
use super::library::Library;
use super::locale::Lang;
use super::params::{GenRequest, Params};
use super::schema::parse_schema;
use super::step::{check_reply, constrained, load_checked, prepare_with, request, retry_request, Checked, StepGen};

/// The map prompt when a file names none.
pub const DEFAULT_MAP: &str = "market/extract-facts";
/// Chunk size when the context allows it. Small models extract better from short passages, and shorter chunks
/// keep more sequences busy at once; the instructions repeated per chunk cost about a fifth of this.
pub const DEFAULT_CHUNK_TOKENS: usize = 1024;
/// Passage size for citing input that fits: about a paragraph.
pub const PASSAGE_TOKENS: usize = 160;
/// Overlap between chunks: about a sentence, so a fact split by a chunk boundary is whole in one of them.
pub const OVERLAP_TOKENS: usize = 48;
/// Facts asked of each chunk when the map prompt has a `max_items` variable: a thousand tokens of a report hold
/// about this many worth keeping, and every extra fact is generated tokens on every chunk.
pub const MAP_ITEMS: i64 = 5;
/// Reduce rounds before what is left is cut to fit.
const MAX_ROUNDS: usize = 4;
/// Chat-template tokens around the map prompt, beyond its text.
const TEMPLATE_TOKENS: usize = 24;

/// The caller's control over long input (`moat run --chunk-tokens/--max-chunks`).
#[derive(Debug, Clone, Default)]
pub struct LongOptions {
    /// The model's context in tokens; 0 = unknown (a server that does not say).
    pub n_ctx: usize,
    /// Chunk size in tokens; `None` = as large as the context allows, at most [`DEFAULT_CHUNK_TOKENS`].
    pub chunk_tokens: Option<usize>,
    /// Refuse input that makes more chunks than this (before generating anything).
    pub max_chunks: Option<usize>,
}

/// Which part of a map-reduce run is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Extracting facts from the chunks.
    Map,
    /// Merging facts, round N (1-based).
    Reduce(usize),
}

/// How far a map-reduce run got: reported as each stage starts (`done` 0) and after every finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

/// What the map step did with one chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkTrace {
    pub id: String,
    pub locator: String,
    pub heading_path: Vec<String>,
    /// Character offsets of the chunk's own text (overlap excluded).
    pub span: [usize; 2],
    /// Tokens of the chunk with its overlap.
    pub tokens: usize,
    pub attempts: u32,
    /// Milliseconds from the start of the map step until this chunk was done.
    pub ms: u64,
    pub facts: usize,
    /// The map prompt's reply (its JSON, as validated).
    pub output: String,
    /// Why this chunk gave no facts, when it failed.
    pub error: Option<String>,
}

/// One reduce round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundTrace {
    pub round: usize,
    pub groups: usize,
    pub facts_in: usize,
    pub facts_out: usize,
    pub chars_in: usize,
    pub chars_out: usize,
    pub ms: u64,
}

/// Everything a map-reduce run did, for `--as trace` and the benchmarks.
#[derive(Debug, Clone, Serialize)]
pub struct LongTrace {
    pub map: String,
    pub chunk_tokens: usize,
    pub overlap_tokens: usize,
    pub doc_chars: usize,
    /// The whole input's tokens in the model in use (an estimate when `tokens_exact` is false).
    pub doc_tokens: usize,
    pub tokens_exact: bool,
    pub chunks: Vec<ChunkTrace>,
    pub facts_extracted: usize,
    /// Facts left after de-duplication of the map output.
    pub facts_merged: usize,
    pub rounds: Vec<RoundTrace>,
    /// Facts cut because reduce rounds stopped shrinking them (0 normally).
    pub facts_dropped: usize,
    pub material_chars: usize,
    /// The input budget the merged facts had to fit, in characters.
    pub target_chars: usize,
    pub map_ms: u64,
    pub reduce_ms: u64,
    /// One-line notes for the user (chunks that failed, facts dropped).
    pub notes: Vec<String>,
}

/// The input a run's steps read, and what it may cite.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunInput {
    pub text: String,
    pub sources: Vec<Passage>,
    pub long: Option<LongTrace>,
    pub truncated: bool,
}

/// What [`prepare_input`] needs to know about the run.
pub(crate) struct InputJob<'a> {
    pub lib: &'a Library,
    pub env: &'a Environment<'a>,
    /// The prompt or script the input is for (messages name it).
    pub owner: &'a str,
    pub spec: &'a InputSpec,
    pub lang: Lang,
    pub cli: &'a Params,
    /// The caller's budget in characters (from the model's context), if any.
    pub caller_max: Option<usize>,
    /// Whether some step's schema has source-id fields: the input is then shown with passage tags.
    pub cites: bool,
    pub opts: &'a LongOptions,
}

impl InputJob<'_> {
    fn budget(&self) -> Option<usize> {
        match (self.spec.max_chars, self.caller_max) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Token counts from the engine, or the character estimate when it cannot count.
fn count(gen: &mut dyn StepGen, texts: &[&str]) -> (Vec<usize>, bool) {
    match gen.count_tokens(texts) {
        Some(n) if n.len() == texts.len() => (n, true),
        _ => (texts.iter().map(|t| chunk::estimate_tokens(t)).collect(), false),
    }
}

/// Makes `input` ready for a run: unchanged or tagged when it fits; cut, refused or map-reduced when it does not,
/// as `[input] long` says.
pub(crate) fn prepare_input(
    job: &InputJob<'_>,
    input: &str,
    gen: &mut dyn StepGen,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RunInput, PromptError> {
    if job.spec.required && input.trim().is_empty() {
        return Err(PromptError::InputRequired { id: job.owner.to_string() });
    }
    let passages = |text: &str, gen: &mut dyn StepGen| -> (String, Vec<Passage>) {
        if !job.cites || text.trim().is_empty() {
            return (text.to_string(), Vec::new());
        }
        let opts = ChunkOptions { chunk_tokens: PASSAGE_TOKENS, overlap_tokens: 0 };
        let chunks = chunk::chunk(text, &opts, &mut |t| count(gen, t).0);
        (evidence::tagged(text, &chunks), Passage::from_chunks(text, &chunks))
    };
    let (text, sources) = passages(input, gen);
    let chars = text.chars().count();
    let Some(max) = job.budget().filter(|&m| chars > m) else {
        return Ok(RunInput { text, sources, long: None, truncated: false });
    };
    match job.spec.long_policy() {
        Long::Error => Err(PromptError::InputTooLarge { chars: input.chars().count(), max }),
        Long::Head | Long::Tail => {
            // Cut the raw input so that, tagged, it fits: tags cost a few characters per passage.
            let room = max.saturating_sub(chars.saturating_sub(input.chars().count()));
            let n = input.chars().count();
            let cut: String = if job.spec.long_policy() == Long::Head {
                input.chars().take(room).collect()
            } else {
                input.chars().skip(n.saturating_sub(room)).collect()
            };
            let (text, sources) = passages(&cut, gen);
            Ok(RunInput { text, sources, long: None, truncated: true })
        }
        Long::MapReduce => map_reduce(job, input, max, gen, progress),
    }
}

/// A fact from the map step, with the ids of the chunks it came from.
#[derive(Debug, Clone, PartialEq)]
struct Fact {
    statement: String,
    sources: Vec<String>,
    /// Its rank among its chunk's facts (0 = first), for a fair cut.
    rank: usize,
}

fn render_facts(facts: &[Fact]) -> String {
    let mut out = String::new();
    for f in facts {
        if f.sources.is_empty() {
            out.push_str(&format!("- {}\n", f.statement));
        } else {
            out.push_str(&format!("- [{}] {}\n", f.sources.join(", "), f.statement));
        }
    }
    out
}

/// Lower-case letters and digits only: two statements that differ in case, spacing or punctuation are one.
fn normalise(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

fn trigrams(s: &str) -> std::collections::HashSet<[char; 3]> {
    let c: Vec<char> = s.chars().collect();
    c.windows(3).map(|w| [w[0], w[1], w[2]]).collect()
}

/// Merges facts that say the same thing (equal once normalised, or sharing 80% of their character trigrams),
/// keeping the first wording and every source id, in document order.
fn dedupe(facts: Vec<Fact>) -> Vec<Fact> {
    let mut out: Vec<(Fact, String, std::collections::HashSet<[char; 3]>)> = Vec::new();
    for f in facts {
        let norm = normalise(&f.statement);
        if norm.is_empty() {
            continue;
        }
        let grams = trigrams(&norm);
        let same = out.iter_mut().find(|(_, n, g)| {
            *n == norm || {
                let inter = g.intersection(&grams).count();
                let union = g.len() + grams.len() - inter;
                union > 0 && inter * 5 >= union * 4
            }
        });
        match same {
            Some((kept, _, _)) => {
                for s in f.sources {
                    if !kept.sources.contains(&s) {
                        kept.sources.push(s);
                    }
                }
                kept.rank = kept.rank.min(f.rank);
            }
            None => out.push((f, norm, grams)),
        }
    }
    let mut facts: Vec<Fact> = out.into_iter().map(|(f, _, _)| f).collect();
    for f in &mut facts {
        f.sources.sort();
    }
    facts
}

/// The facts that fit `max` characters when rendered, returned in document order. Every chunk's first fact
/// comes before any chunk's second, and among equals the picks spread over the document — first, last, middle,
/// quarters… — so what is lost is thinned out evenly, never the whole end of the document.
fn fair_cut(facts: &[Fact], max: usize) -> Vec<Fact> {
    let spread = spread_order(facts.len());
    let mut order: Vec<usize> = (0..facts.len()).collect();
    order.sort_by_key(|&i| (facts[i].rank, spread[i]));
    let mut keep = vec![false; facts.len()];
    let mut used = 0;
    for i in order {
        let len = render_facts(std::slice::from_ref(&facts[i])).chars().count();
        if used + len <= max {
            used += len;
            keep[i] = true;
        }
    }
    facts.iter().zip(keep).filter(|(_, k)| *k).map(|(f, _)| f.clone()).collect()
}

/// For each of `n` positions, its turn in the order first, last, then midpoints of ever smaller intervals.
fn spread_order(n: usize) -> Vec<usize> {
    let mut turn = vec![usize::MAX; n];
    let mut next = 0;
    let mut take = |i: usize, turn: &mut Vec<usize>| {
        if turn[i] == usize::MAX {
            turn[i] = next;
            next += 1;
        }
    };
    if n == 0 {
        return turn;
    }
    take(0, &mut turn);
    take(n - 1, &mut turn);
    let mut intervals = std::collections::VecDeque::from([(0, n - 1)]);
    while let Some((a, b)) = intervals.pop_front() {
        if b > a + 1 {
            let m = a + (b - a) / 2;
            take(m, &mut turn);
            intervals.push_back((a, m));
            intervals.push_back((m, b));
        }
    }
    turn
}

/// The facts in a map reply's JSON: `facts[].statement`, and `facts[].sources` when `own_ids` is `None`
/// (a reduce round: the model chose among the ids it was shown, and the grammar kept it to them).
///
/// A statement that carries nothing is dropped: fewer than [`MIN_LETTERS`] letters (a bare date, number
/// or id), or only a copy of the headings the chunk was shown under (`echo`), which small models
/// return as a "fact" when a chunk has little to say.
fn facts_of(json: &Value, own_ids: Option<&[String]>, allowed: &[String], echo: &[String]) -> Vec<Fact> {
    let Some(items) = json.get("facts").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .enumerate()
        .filter_map(|(rank, item)| {
            let statement = item.get("statement")?.as_str()?.trim().to_string();
            let sources = match own_ids {
                Some(ids) => ids.to_vec(),
                None => item
                    .get("sources")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter().filter_map(Value::as_str).filter(|s| allowed.iter().any(|x| x == s)).map(String::from)
                    })
                    .into_iter()
                    .flatten()
                    .collect(),
            };
            informative(&statement, echo).then_some(Fact { statement, sources, rank })
        })
        .collect()
}

/// Letters (any script) a statement needs to say anything: "2026-04-30" or "c12" say nothing alone.
const MIN_LETTERS: usize = 3;

/// Whether a statement says something beyond a bare value or the headings in `echo`.
fn informative(statement: &str, echo: &[String]) -> bool {
    if statement.chars().filter(|c| c.is_alphabetic()).count() < MIN_LETTERS {
        return false;
    }
    let said = normalise(statement);
    let headings = normalise(&echo.concat());
    !headings.contains(&said)
}

/// The map prompt made ready: how much of the context its instructions and reply take.
struct MapPrompt {
    prompt: super::parse::Prompt,
    /// Tokens of the rendered instructions around a chunk, with the chat template's.
    overhead: usize,
    /// Reply budget per request.
    max_tokens: u32,
}

/// One request of a map or reduce pass, and how it went.
struct Job {
    input: String,
    /// Ids the reply may cite (for a map chunk, its own id, which moat attaches anyway).
    ids: Vec<String>,
    attempts: u32,
    result: Option<Result<(String, Value), String>>,
    ms: u64,
}

/// Runs the map prompt on every job's input, all at once where the engine can, with one retry for a reply
/// that does not validate. Ctrl+C (a request answered "interrupted") stops the run with how far it got.
fn run_pass(
    job: &InputJob<'_>,
    map: &MapPrompt,
    jobs: &mut [Job],
    stage: Stage,
    gen: &mut dyn StepGen,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), PromptError> {
    let file = map.prompt.variant(job.lang)?;
    let is_json = file.output.format == Format::Json;
    let started = Instant::now();
    let total = jobs.len();
    let mut reqs = Vec::with_capacity(total);
    let mut specs = Vec::with_capacity(total);
    let given: Vec<(String, Value)> = match stage {
        Stage::Map if file.vars.contains_key("max_items") => vec![("max_items".into(), Value::from(MAP_ITEMS))],
        _ => Vec::new(),
    };
    for j in jobs.iter() {
        let p = prepare_with(job.env, &map.prompt, job.lang, &given, &j.input, None)?;
        let mut req = request(&p, job.cli);
        req.params.max_tokens = Some(map.max_tokens);
        let sources: Vec<Passage> = j.ids.iter().map(|id| bare_source(id)).collect();
        let mut output = pass_output(&p.file.output, stage);
        if let Some(schema) = output.schema.clone() {
            req.json_schema = Some(schema);
        }
        let spec = constrained(&output, &mut req, &sources);
        output.schema = spec.schema.clone();
        let schema = match &spec.schema {
            Some(s) => Some(parse_schema(s).map_err(|errs| {
                PromptError::Invalid {
                    problems: errs
                        .into_iter()
                        .map(|m| super::error::Problem { file: map.prompt.path.clone(), pos: None, message: m })
                        .collect(),
                }
            })?),
            None => None,
        };
        reqs.push(req);
        specs.push(schema);
    }
    let mut pending: Vec<usize> = (0..total).collect();
    let mut done = 0;
    progress(&Progress { stage, done, total });
    for attempt in 0..=file.output.retries() {
        if pending.is_empty() {
            break;
        }
        let batch: Vec<GenRequest> = pending.iter().map(|&i| reqs[i].clone()).collect();
        let mut done_at = vec![0u64; batch.len()];
        // Progress counts first answers; a retry is part of the same chunk's work.
        let replies = gen.generate_many(&map.prompt.id, &batch, &mut |k, _| {
            if let Some(at) = done_at.get_mut(k) {
                *at = started.elapsed().as_millis() as u64;
            }
            if attempt == 0 {
                done += 1;
                progress(&Progress { stage, done, total });
            }
        });
        let mut again = Vec::new();
        let mut interrupted = false;
        for ((&i, reply), at) in pending.iter().zip(replies).zip(done_at) {
            let j = &mut jobs[i];
            j.attempts += 1;
            j.ms = at;
            match reply {
                Err(message) if message == "interrupted" => interrupted = true,
                Err(message) => j.result = Some(Err(message)),
                Ok(reply) => match check_reply(&map.prompt.id, &reply, is_json, specs[i].as_ref()) {
                    Ok(Checked::Valid(text, Some(v))) => j.result = Some(Ok((text, v))),
                    Ok(Checked::Valid(text, None)) => j.result = Some(Err(format!("no JSON in the reply: {text}"))),
                    Ok(Checked::Invalid(_, message)) if attempt < file.output.retries() => {
                        reqs[i] = retry_request(&reqs[i], &message, job.lang);
                        again.push(i);
                    }
                    Ok(Checked::Invalid(_, message)) => j.result = Some(Err(message)),
                    Err(e) => j.result = Some(Err(e.to_string())),
                },
            }
        }
        if interrupted {
            let finished = jobs.iter().filter(|j| matches!(j.result, Some(Ok(_)))).count();
            return Err(PromptError::Interrupted { done: finished, total, what: stage_name(stage) });
        }
        pending = again;
    }
    Ok(())
}

/// The map prompt's output contract for one pass, cut to what the run reads, since every token the
/// model writes costs time: only the required top-level fields (the run reads the facts list, not
/// open questions), and in the map pass no source-id lists (moat attaches the chunk id itself) and at
/// most [`MAP_ITEMS`] facts. A schema that is not a JSON object is left as it is.
fn pass_output(spec: &super::format::OutputSpec, stage: Stage) -> super::format::OutputSpec {
    let mut out = spec.clone();
    let Some(Ok(mut schema)) = spec.schema.as_deref().map(serde_json::from_str::<Value>) else {
        return out;
    };
    let required: Vec<Value> = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return out;
    };
    props.retain(|k, _| required.iter().any(|r| r.as_str() == Some(k)));
    if stage == Stage::Map {
        for list in props.values_mut().filter(|v| v.get("type").and_then(Value::as_str) == Some("array")) {
            let cap = list.get("maxItems").and_then(Value::as_i64).map_or(MAP_ITEMS, |m| m.min(MAP_ITEMS));
            list["maxItems"] = Value::from(cap);
            let Some(item) = list.get_mut("items").filter(|i| i.is_object()) else { continue };
            let cited: Vec<String> = item
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.iter().filter(|(_, v)| is_source_list(v)).map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            if let Some(p) = item.get_mut("properties").and_then(Value::as_object_mut) {
                p.retain(|k, _| !cited.contains(k));
            }
            if let Some(r) = item.get_mut("required").and_then(Value::as_array_mut) {
                r.retain(|k| !k.as_str().is_some_and(|k| cited.iter().any(|c| c == k)));
            }
        }
    }
    out.schema = Some(schema.to_string());
    out
}

/// Whether a schema node is a list of source ids (`items` with `"format": "source-id"`).
fn is_source_list(node: &Value) -> bool {
    node.get("items").and_then(|i| i.get("format")).and_then(Value::as_str) == Some(evidence::SOURCE_ID)
}

fn stage_name(stage: Stage) -> String {
    match stage {
        Stage::Map => "chunks".into(),
        Stage::Reduce(n) => format!("fact groups of reduce round {n}"),
    }
}

fn bare_source(id: &str) -> Passage {
    Passage {
        id: id.to_string(),
        locator: String::new(),
        heading_path: Vec::new(),
        span: [0, 0],
        preview: String::new(),
        cited: false,
    }
}

fn map_prompt(job: &InputJob<'_>, gen: &mut dyn StepGen) -> Result<MapPrompt, PromptError> {
    let id = job.spec.map.as_deref().unwrap_or(DEFAULT_MAP);
    let prompt = load_checked(job.lib, id)?;
    let probe = prepare_with(job.env, &prompt, job.lang, &[], "[c01] .", None)?;
    let req = request(&probe, job.cli);
    let text = format!("{}\n{}", req.system.as_deref().unwrap_or(""), req.user);
    let overhead = count(gen, &[&text]).0[0] + TEMPLATE_TOKENS;
    let mut max_tokens = req.params.max_tokens.unwrap_or(512);
    if job.opts.n_ctx > 0 {
        // A reply budget that leaves no room for a chunk is shrunk: the engine closes the JSON within it.
        max_tokens = max_tokens.min((job.opts.n_ctx / 3) as u32).max(64);
    }
    Ok(MapPrompt { prompt, overhead, max_tokens })
}

/// The chunk size: the caller's, checked against the context, or the largest that fits up to the default.
fn chunk_size(job: &InputJob<'_>, map: &MapPrompt) -> Result<usize, PromptError> {
    let n_ctx = job.opts.n_ctx;
    let room = n_ctx.saturating_sub(map.overhead + map.max_tokens as usize + 16);
    match job.opts.chunk_tokens {
        Some(0) => Err(PromptError::LongInput { message: "--chunk-tokens must be at least 1".into() }),
        Some(n) if n_ctx > 0 && n > room => Err(PromptError::LongInput {
            message: format!(
                "--chunk-tokens {n} does not fit the {n_ctx}-token context beside the map prompt ({} tokens) and its \
                 reply ({}); use at most {room}, or a larger -c",
                map.overhead, map.max_tokens
            ),
        }),
        Some(n) => Ok(n),
        None if n_ctx == 0 => Ok(DEFAULT_CHUNK_TOKENS),
        None if room < 64 => Err(PromptError::LongInput {
            message: format!(
                "the {n_ctx}-token context leaves no room for a chunk beside the map prompt ({} tokens) and its \
                 reply ({}); use a larger -c",
                map.overhead, map.max_tokens
            ),
        }),
        None => Ok(room.min(DEFAULT_CHUNK_TOKENS)),
    }
}

fn map_reduce(
    job: &InputJob<'_>,
    input: &str,
    budget: usize,
    gen: &mut dyn StepGen,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RunInput, PromptError> {
    let map = map_prompt(job, gen)?;
    let chunk_tokens = chunk_size(job, &map)?;
    let overlap_tokens = OVERLAP_TOKENS.min(chunk_tokens / 8);
    let (doc_tokens, tokens_exact) = {
        let (n, exact) = count(gen, &[input]);
        (n[0], exact)
    };
    let opts = ChunkOptions { chunk_tokens, overlap_tokens };
    let chunks: Vec<Chunk> = chunk::chunk(input, &opts, &mut |t| count(gen, t).0);
    if let Some(max) = job.opts.max_chunks.filter(|&m| chunks.len() > m) {
        return Err(PromptError::LongInput {
            message: format!(
                "the input ({} characters, about {doc_tokens} tokens) makes {} chunks of up to {chunk_tokens} tokens, \
                 more than --max-chunks {max}; raise --max-chunks or --chunk-tokens",
                input.chars().count(),
                chunks.len()
            ),
        });
    }
    let sources = Passage::from_chunks(input, &chunks);
    let started = Instant::now();
    let mut jobs: Vec<Job> = chunks
        .iter()
        .map(|c| {
            let text = c.text(input).trim();
            let heading = if c.heading_path.is_empty() || text.starts_with('#') {
                String::new()
            } else {
                format!("({})\n", c.heading_path.join(" › "))
            };
            Job {
                input: format!("[{}] {heading}{text}", c.id),
                ids: vec![c.id.clone()],
                attempts: 0,
                result: None,
                ms: 0,
            }
        })
        .collect();
    run_pass(job, &map, &mut jobs, Stage::Map, gen, progress)?;
    let map_ms = started.elapsed().as_millis() as u64;
    let mut notes = Vec::new();
    let mut facts = Vec::new();
    let mut traces = Vec::new();
    for (c, j) in chunks.iter().zip(&jobs) {
        let (output, found, error) = match &j.result {
            Some(Ok((text, v))) => {
                let f = facts_of(v, Some(&j.ids), &j.ids, &c.heading_path);
                (text.clone(), f, None)
            }
            Some(Err(e)) => (String::new(), Vec::new(), Some(e.clone())),
            None => (String::new(), Vec::new(), Some("not run".into())),
        };
        traces.push(ChunkTrace {
            id: c.id.clone(),
            locator: c.locator.clone(),
            heading_path: c.heading_path.clone(),
            span: sources.iter().find(|s| s.id == c.id).map_or([0, 0], |s| s.span),
            tokens: c.tokens,
            attempts: j.attempts,
            ms: j.ms,
            facts: found.len(),
            output,
            error,
        });
        facts.extend(found);
    }
    let failed: Vec<&ChunkTrace> = traces.iter().filter(|t| t.error.is_some()).collect();
    if !failed.is_empty() {
        if failed.len() == traces.len() {
            return Err(PromptError::Generation {
                id: map.prompt.id.clone(),
                message: format!(
                    "no chunk gave facts ({}: {})",
                    failed[0].id,
                    failed[0].error.as_deref().unwrap_or("")
                ),
            });
        }
        let ids: Vec<&str> = failed.iter().map(|t| t.id.as_str()).take(8).collect();
        notes.push(format!(
            "{} of {} chunks gave no facts ({}{}); --as trace shows why",
            failed.len(),
            traces.len(),
            ids.join(", "),
            if failed.len() > ids.len() { ", …" } else { "" }
        ));
    }
    let facts_extracted = facts.len();
    let mut facts = dedupe(facts);
    let facts_merged = facts.len();
    // The merged facts must fit the prompt's budget, with room for the run's own wording around them.
    let target = budget * 9 / 10;
    let reduce_started = Instant::now();
    let mut rounds = Vec::new();
    let mut facts_dropped = 0;
    while render_facts(&facts).chars().count() > target {
        let round = rounds.len() + 1;
        let chars_in = render_facts(&facts).chars().count();
        if round > MAX_ROUNDS {
            break;
        }
        let t0 = Instant::now();
        let groups = group_facts(&facts, chunk_tokens, gen);
        let mut jobs: Vec<Job> = groups
            .iter()
            .map(|g| {
                let text = render_facts(g);
                let ids = evidence::ids_in(&text, &sources);
                Job { input: text, ids, attempts: 0, result: None, ms: 0 }
            })
            .collect();
        run_pass(job, &map, &mut jobs, Stage::Reduce(round), gen, progress)?;
        let mut next = Vec::new();
        for (g, j) in groups.iter().zip(&jobs) {
            match &j.result {
                Some(Ok((_, v))) => {
                    let out = facts_of(v, None, &j.ids, &[]);
                    // A group the model emptied keeps its facts: nothing is lost to a bad reply.
                    if out.is_empty() {
                        next.extend(g.iter().cloned());
                    } else {
                        next.extend(out);
                    }
                }
                _ => next.extend(g.iter().cloned()),
            }
        }
        let next = dedupe(next);
        let chars_out = render_facts(&next).chars().count();
        rounds.push(RoundTrace {
            round,
            groups: groups.len(),
            facts_in: facts.len(),
            facts_out: next.len(),
            chars_in,
            chars_out,
            ms: t0.elapsed().as_millis() as u64,
        });
        let shrank = chars_out * 10 < chars_in * 9;
        facts = next;
        if !shrank {
            break;
        }
    }
    if render_facts(&facts).chars().count() > target {
        let kept = fair_cut(&facts, target);
        facts_dropped = facts.len() - kept.len();
        notes.push(format!(
            "{facts_dropped} of {} merged facts did not fit the prompt's input budget and were left out \
             (a larger -c fits more)",
            facts.len()
        ));
        facts = kept;
    }
    let material = render_facts(&facts);
    let trace = LongTrace {
        map: map.prompt.id.clone(),
        chunk_tokens,
        overlap_tokens,
        doc_chars: input.chars().count(),
        doc_tokens,
        tokens_exact,
        chunks: traces,
        facts_extracted,
        facts_merged,
        rounds,
        facts_dropped,
        material_chars: material.chars().count(),
        target_chars: target,
        map_ms,
        reduce_ms: reduce_started.elapsed().as_millis() as u64,
        notes,
    };
    Ok(RunInput { text: material, sources, long: Some(trace), truncated: false })
}

/// Consecutive facts in groups of at most `tokens` tokens each (a fact longer than that is a group alone).
fn group_facts(facts: &[Fact], tokens: usize, gen: &mut dyn StepGen) -> Vec<Vec<Fact>> {
    let lines: Vec<String> = facts.iter().map(|f| render_facts(std::slice::from_ref(f))).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (sizes, _) = count(gen, &refs);
    let mut groups: Vec<Vec<Fact>> = Vec::new();
    let mut used = 0;
    for (f, n) in facts.iter().zip(sizes) {
        if groups.is_empty() || used + n > tokens {
            groups.push(Vec::new());
            used = 0;
        }
        used += n;
        if let Some(g) = groups.last_mut() {
            g.push(f.clone());
        }
    }
    groups
}

#[cfg(test)]
mod tests;
