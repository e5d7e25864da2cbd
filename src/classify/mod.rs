//! Text classification on the loaded model: label scoring with an instruction prompt (zero- or
//! few-shot, contextually calibrated) or a trained linear head over pooled hidden states. The
//! engine does the batched llama.cpp work; this module builds prompts, calibrates, trains and
//! measures. What to run is decided once, for every front end, in [`spec`].

pub mod bank;
pub mod calibrate;
pub mod chunk;
pub mod head;
pub mod input;
pub mod metrics;
pub mod mode;
pub mod output;
pub mod prompt;
pub mod spec;

use crate::engine::{
    EmbedRequest, Engine, EngineError, ItemResult, Pooling, PromptSpec, ScoreRequest, Sink, StopReason, Task,
};
use calibrate::{softmax, Calibration, CONTENT_FREE};
use chunk::LongInput;
use head::Head;

/// The default label set.
pub fn sentiment_labels() -> Vec<String> {
    vec!["positive".into(), "negative".into()]
}

#[derive(Debug, Clone)]
pub enum Method {
    /// Label scoring with an instruction prompt. With `calibrate`, the first request also scores
    /// the content-free inputs and `calibration` is set from them.
    Prompt { plan: prompt::Plan, calibrate: bool, calibration: Option<Calibration> },
    /// A trained head over pooled hidden states.
    Head(Box<Head>),
    /// A sequence classifier's own head (llama.cpp RANK pooling); `order[i]` is the model output
    /// that holds label `i`.
    Native { order: Vec<usize> },
}

/// A [`spec::Spec`] ready to run. `moat classify` and `/classify` both classify through it: the
/// same pieces of a line go to the engine, and their results become the same prediction.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub labels: Vec<String>,
    pub method: Method,
    /// Longest piece in tokens the model reads at once.
    pub max_tokens: usize,
    /// Lines per decode.
    pub batch: usize,
    /// Lines longer than `max_tokens`: chunked and averaged, or truncated.
    pub long: LongInput,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub label: usize,
    pub probs: Vec<f32>,
}

impl Prediction {
    fn from_probs(probs: Vec<f32>) -> Prediction {
        let label = probs.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0);
        Prediction { label, probs }
    }
    /// The prediction for these probabilities (the most probable label).
    pub fn from_probs_pub(probs: Vec<f32>) -> Prediction {
        Prediction::from_probs(probs)
    }
    pub fn confidence(&self) -> f32 {
        self.probs.get(self.label).copied().unwrap_or(0.0)
    }
}

/// Label scoring options.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptOptions {
    pub labels: Vec<String>,
    pub shots: usize,
    pub examples: Vec<(String, String)>,
    pub chat: bool,
    pub calibrate: bool,
    pub template: Option<String>,
}

/// One request in flight: which line each engine item is a piece of, and the pieces' label
/// probabilities summed per line until the line is complete. Made by [`Classifier::job`], fed
/// by [`Classifier::take`].
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// Per engine item: the line it is a piece of; `None` for a content-free calibration input.
    owner: Vec<Option<usize>>,
    /// Per line: pieces not back yet, the sum of the good pieces' probabilities, how many were
    /// good, and the first error.
    left: Vec<usize>,
    sum: Vec<Vec<f32>>,
    ok: Vec<usize>,
    error: Vec<Option<String>>,
    /// Calibration inputs: how many were sent, and the label logits of those that came back.
    n_free: usize,
    free_back: usize,
    free: Vec<Vec<f32>>,
}

impl Classifier {
    /// The classifier for `spec`. Nothing runs yet: label scoring calibrates in its first request.
    pub fn new(spec: &spec::Spec) -> Classifier {
        let method = match &spec.kind {
            spec::Kind::Prompt(o) => {
                let mut plan = prompt::plan(&o.labels, o.shots, &o.examples, o.chat);
                if let Some(t) = &o.template {
                    plan.spec = PromptSpec::raw(t.clone());
                }
                Method::Prompt { plan, calibrate: o.calibrate, calibration: None }
            }
            spec::Kind::Head(h) => Method::Head(h.clone()),
            spec::Kind::Native { order } => Method::Native { order: order.clone() },
        };
        Classifier {
            labels: spec.labels.clone(),
            method,
            max_tokens: spec.max_tokens,
            batch: spec.batch.max(1),
            long: spec.long,
        }
    }

    /// One line describing the method, for reports.
    pub fn describe(&self) -> String {
        let long = match self.long {
            LongInput::Chunk => format!(
                "; lines over {} tokens are split at sentence ends into ~{}-token chunks (at most {}) and averaged",
                self.max_tokens,
                self.chunk_budget(),
                chunk::MAX_CHUNKS
            ),
            LongInput::Truncate => format!("; lines over {} tokens keep their first and last halves", self.max_tokens),
        };
        self.describe_method() + &long
    }

    fn chunk_budget(&self) -> usize {
        (self.max_tokens / 2).max(16)
    }

    fn describe_method(&self) -> String {
        match &self.method {
            Method::Prompt { plan, calibration, .. } => {
                let shots = plan.spec.template.matches("Text: ").count().saturating_sub(1);
                format!(
                    "label scoring, {} ({}){}",
                    if shots == 0 { "zero-shot".to_string() } else { format!("{shots}-shot") },
                    if plan.spec.chat { "chat prompt" } else { "completion prompt" },
                    if calibration.is_some() { ", calibrated" } else { "" }
                )
            }
            Method::Head(h) => format!(
                "trained head ({:?} pooling, {} features) from {} on {} ({} examples)",
                h.pooling,
                h.dim(),
                h.provenance.model,
                h.provenance.training_set,
                h.provenance.n_train
            ),
            Method::Native { .. } => "native sequence classifier (the model's own head, labels from its GGUF)".into(),
        }
    }

    /// Whether this is a sequence classifier's own head.
    pub fn is_native(&self) -> bool {
        matches!(self.method, Method::Native { .. })
    }

    /// The engine task for `lines` (valid, non-empty text) and the job that turns its item
    /// results into one prediction per line ([`Classifier::take`]). A line over `max_tokens` is
    /// split into chunks ([`LongInput::Chunk`]) or left for the engine to cut (`Truncate`); label
    /// scoring that is not calibrated yet scores the content-free inputs first.
    /// `share_prefix = false` is the naive path: every piece decodes its whole prompt alone.
    pub fn job(&self, lines: &[String], share_prefix: bool) -> (Task, Job) {
        let mut job = Job::default();
        let mut items = Vec::new();
        if let Method::Prompt { calibrate: true, calibration: None, .. } = &self.method {
            items.extend(CONTENT_FREE.iter().map(|s| s.to_string()));
            job.owner.extend(CONTENT_FREE.iter().map(|_| None));
            job.n_free = CONTENT_FREE.len();
        }
        for (i, text) in lines.iter().enumerate() {
            let pieces = match self.long {
                LongInput::Chunk => chunk::split(text, self.max_tokens, self.chunk_budget()),
                LongInput::Truncate => vec![text.clone()],
            };
            job.left.push(pieces.len());
            job.owner.extend(pieces.iter().map(|_| Some(i)));
            items.extend(pieces);
        }
        job.sum = vec![Vec::new(); lines.len()];
        job.ok = vec![0; lines.len()];
        job.error = vec![None; lines.len()];
        let batch = if share_prefix { self.batch } else { 1 };
        let task = match &self.method {
            Method::Prompt { plan, .. } => Task::Score(Box::new(ScoreRequest {
                prompt: plan.spec.clone(),
                items,
                labels: plan.verbalizers.clone(),
                max_item_tokens: self.max_tokens,
                batch,
                share_prefix,
            })),
            Method::Head(h) => Task::Embed(Box::new(EmbedRequest {
                prompt: h.prompt(),
                items,
                pooling: h.pooling,
                max_item_tokens: h.max_tokens,
                batch: self.batch,
            })),
            Method::Native { .. } => Task::Embed(Box::new(EmbedRequest {
                prompt: PromptSpec::raw("{text}"),
                items,
                pooling: Pooling::Rank,
                max_item_tokens: self.max_tokens,
                batch,
            })),
        };
        (task, job)
    }

    /// Takes the result of engine item `index` of `job`'s task; returns the line it completes,
    /// with its prediction (the mean of its pieces' probabilities, or the first error when no
    /// piece could be classified), if it completes one.
    pub fn take(
        &mut self,
        job: &mut Job,
        index: usize,
        result: ItemResult,
    ) -> Option<(usize, Result<Prediction, String>)> {
        let &owner = job.owner.get(index)?;
        let Some(line) = owner else {
            job.free_back += 1;
            if let Ok(logits) = result {
                job.free.push(logits);
            }
            if job.free_back == job.n_free {
                if let Method::Prompt { calibration, .. } = &mut self.method {
                    *calibration = Calibration::from_logits(&job.free);
                }
            }
            return None;
        };
        match result.and_then(|raw| self.probs(&raw)) {
            Ok(p) => {
                let sum = &mut job.sum[line];
                sum.resize(p.len(), 0.0);
                sum.iter_mut().zip(&p).for_each(|(s, x)| *s += x);
                job.ok[line] += 1;
            }
            Err(e) => {
                job.error[line].get_or_insert(e);
            }
        }
        job.left[line] = job.left[line].checked_sub(1)?;
        if job.left[line] > 0 {
            return None;
        }
        let result = match job.ok[line] {
            0 => Err(job.error[line].take().unwrap_or_else(|| "not classified".into())),
            n => Ok(Prediction::from_probs(job.sum[line].iter().map(|s| s / n as f32).collect())),
        };
        Some((line, result))
    }

    /// One piece's label probabilities from what the engine gave for it.
    fn probs(&self, raw: &[f32]) -> Result<Vec<f32>, String> {
        match &self.method {
            Method::Prompt { calibration, .. } => {
                let p = softmax(raw);
                Ok(match calibration {
                    Some(c) => c.apply(&p),
                    None => p,
                })
            }
            Method::Head(h) => Ok(h.predict(raw)),
            // Raw logits of a single-label head: softmax, then the user's label order.
            Method::Native { order } => native_probs(order, raw),
        }
    }

    /// Classifies `items` (all of them valid text), calling `on(index, result)` as each line
    /// completes (in input order). `share_prefix = false` is the naive path: every line decodes
    /// its whole prompt alone.
    pub fn run(
        &mut self,
        engine: &mut Engine,
        items: Vec<String>,
        share_prefix: bool,
        mut on: impl FnMut(usize, Result<Prediction, String>),
    ) -> Result<(), EngineError> {
        let (task, mut job) = self.job(&items, share_prefix);
        collect(engine, task, &mut |i, r| {
            if let Some((line, p)) = self.take(&mut job, i, r) {
                on(line, p)
            }
        })
    }
}

/// The labels a native classifier reports and, for each, the model output that holds it. `wanted`
/// may reorder the model's labels but not change the set: the head was trained for exactly these.
pub fn native_order(model_labels: &[String], wanted: Option<&[String]>) -> Result<(Vec<String>, Vec<usize>), String> {
    let labels = wanted.map_or_else(|| model_labels.to_vec(), <[String]>::to_vec);
    let order: Option<Vec<usize>> = labels.iter().map(|l| model_labels.iter().position(|m| m == l)).collect();
    match order {
        Some(order) if labels.len() == model_labels.len() => Ok((labels, order)),
        _ => Err(format!(
            "this model classifies into {} (labels from its GGUF); give no labels or exactly those",
            model_labels.join(",")
        )),
    }
}

/// A native head's raw logits as probabilities in the user's label order (`order[i]` = the model
/// output for label `i`). The head is single-label, so softmax.
pub fn native_probs(order: &[usize], logits: &[f32]) -> Result<Vec<f32>, String> {
    if logits.len() != order.len() {
        return Err(format!("the model gave {} outputs for {} labels", logits.len(), order.len()));
    }
    let p = softmax(logits);
    Ok(order.iter().map(|&k| p[k]).collect())
}

/// Pooled hidden states per line, in input order.
pub fn features(
    engine: &mut Engine,
    items: Vec<String>,
    prompt: &PromptSpec,
    pooling: Pooling,
    max_tokens: usize,
    batch: usize,
    mut on: impl FnMut(usize, Result<Vec<f32>, String>),
) -> Result<(), EngineError> {
    let req = EmbedRequest { prompt: prompt.clone(), items, pooling, max_item_tokens: max_tokens, batch };
    collect(engine, Task::Embed(Box::new(req)), &mut on)
}

/// Runs a score or embed task, passing each line's result to `on` in input order. A cancelled
/// run (Ctrl+C) is an error here: a partial classification must not look like a finished one.
fn collect(
    engine: &Engine,
    task: Task,
    on: &mut impl FnMut(usize, Result<Vec<f32>, String>),
) -> Result<(), EngineError> {
    struct Items<'a, F>(&'a mut F);
    impl<F: FnMut(usize, ItemResult)> Sink for Items<'_, F> {
        fn item(&mut self, index: usize, result: ItemResult) {
            (self.0)(index, result)
        }
    }
    match engine.submit(task).wait(&mut Items(on))?.reason {
        StopReason::Cancelled => Err(EngineError::Cancelled),
        _ => Ok(()),
    }
}

/// Parses `--labels a,b,c`: trimmed, non-empty, distinct.
pub fn parse_labels(s: &str) -> Result<Vec<String>, String> {
    let labels: Vec<String> = s.split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return Err("give at least two labels, e.g. --labels positive,negative".into());
    }
    for (i, l) in labels.iter().enumerate() {
        if labels[..i].contains(l) {
            return Err(format!("label {l:?} is listed twice"));
        }
    }
    Ok(labels)
}
