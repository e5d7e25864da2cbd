//! Text classification on the loaded model: label scoring with an instruction prompt (zero- or
//! few-shot, contextually calibrated) or a trained linear head over pooled hidden states. The
//! engine does the batched llama.cpp work; this module builds prompts, calibrates, trains and
//! measures.

pub mod bank;
pub mod calibrate;
pub mod chunk;
pub mod head;
pub mod input;
pub mod metrics;
pub mod mode;
pub mod output;
pub mod prompt;

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
    /// Label scoring with an instruction prompt.
    Prompt { plan: prompt::Plan, calibration: Option<Calibration> },
    /// A trained head over pooled hidden states.
    Head(Box<Head>),
    /// A sequence classifier's own head (llama.cpp RANK pooling); `order[i]` is the model output
    /// that holds label `i`.
    Native { order: Vec<usize> },
}

#[derive(Debug, Clone)]
pub struct Classifier {
    pub labels: Vec<String>,
    pub method: Method,
    /// Longest line in tokens; longer ones keep their first and last halves.
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
#[derive(Debug, Clone)]
pub struct PromptOptions {
    pub labels: Vec<String>,
    pub shots: usize,
    pub examples: Vec<(String, String)>,
    pub chat: bool,
    pub calibrate: bool,
    pub template: Option<String>,
}

impl Classifier {
    /// Label scoring; with `calibrate`, first scores the content-free inputs.
    pub fn prompt(
        engine: &mut Engine,
        o: &PromptOptions,
        max_tokens: usize,
        batch: usize,
    ) -> Result<Classifier, EngineError> {
        let mut plan = prompt::plan(&o.labels, o.shots, &o.examples, o.chat);
        if let Some(t) = &o.template {
            plan.spec = PromptSpec::raw(t.clone());
        }
        let mut c = Classifier {
            labels: o.labels.clone(),
            method: Method::Prompt { plan, calibration: None },
            max_tokens,
            batch,
            long: LongInput::default(),
        };
        if o.calibrate {
            let mut rows = Vec::new();
            c.scores(engine, CONTENT_FREE.iter().map(|s| s.to_string()).collect(), true, |_, r| {
                if let Ok(v) = r {
                    rows.push(v);
                }
            })?;
            if let Method::Prompt { calibration, .. } = &mut c.method {
                *calibration = Calibration::from_logits(&rows);
            }
        }
        Ok(c)
    }

    pub fn head(head: Head, batch: usize) -> Classifier {
        Classifier {
            labels: head.labels.clone(),
            max_tokens: head.max_tokens,
            method: Method::Head(Box::new(head)),
            batch,
            long: LongInput::default(),
        }
    }

    /// A native sequence classifier with `model_labels` (from its GGUF); see [`native_order`].
    pub fn native(
        model_labels: &[String],
        wanted: Option<&[String]>,
        max_tokens: usize,
        batch: usize,
    ) -> Result<Classifier, String> {
        let (labels, order) = native_order(model_labels, wanted)?;
        Ok(Classifier { labels, method: Method::Native { order }, max_tokens, batch, long: LongInput::default() })
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
            Method::Prompt { plan, calibration } => {
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

    /// Raw label logits per line (label scoring only).
    fn scores(
        &self,
        engine: &mut Engine,
        items: Vec<String>,
        share_prefix: bool,
        mut on: impl FnMut(usize, Result<Vec<f32>, String>),
    ) -> Result<(), EngineError> {
        let Method::Prompt { plan, .. } = &self.method else { unreachable!("scores needs a prompt method") };
        let req = ScoreRequest {
            prompt: plan.spec.clone(),
            items,
            labels: plan.verbalizers.clone(),
            max_item_tokens: self.max_tokens,
            batch: if share_prefix { self.batch } else { 1 },
            share_prefix,
        };
        collect(engine, Task::Score(Box::new(req)), &mut on)
    }

    /// Classifies `items` (all of them valid text), calling `on(index, result)` in input order.
    /// `share_prefix = false` is the naive path: every line decodes its whole prompt alone.
    pub fn run(
        &self,
        engine: &mut Engine,
        items: Vec<String>,
        share_prefix: bool,
        mut on: impl FnMut(usize, Result<Prediction, String>),
    ) -> Result<(), EngineError> {
        if self.long == LongInput::Truncate {
            return self.run_lines(engine, items, share_prefix, on);
        }
        let mut owner = Vec::with_capacity(items.len());
        let mut pieces = Vec::with_capacity(items.len());
        for (i, text) in items.iter().enumerate() {
            for c in chunk::split(text, self.max_tokens, self.chunk_budget()) {
                owner.push(i);
                pieces.push(c);
            }
        }
        let n_pieces: Vec<usize> = owner.iter().fold(vec![0; items.len()], |mut n, &i| {
            n[i] += 1;
            n
        });
        // Pieces arrive in input order, so each line completes before the next begins.
        let (mut sum, mut seen, mut ok, mut first_err): (Vec<f32>, usize, usize, Option<String>) =
            (Vec::new(), 0, 0, None);
        self.run_lines(engine, pieces, share_prefix, |pi, r| {
            let i = owner[pi];
            seen += 1;
            match r {
                Ok(p) => {
                    sum.resize(p.probs.len(), 0.0);
                    sum.iter_mut().zip(&p.probs).for_each(|(s, x)| *s += x);
                    ok += 1;
                }
                Err(e) => first_err = first_err.take().or(Some(e)),
            }
            if seen == n_pieces[i] {
                let result = if ok > 0 {
                    Ok(Prediction::from_probs(sum.iter().map(|s| s / ok as f32).collect()))
                } else {
                    Err(first_err.take().unwrap_or_else(|| "not classified".into()))
                };
                on(i, result);
                (sum, seen, ok, first_err) = (Vec::new(), 0, 0, None);
            }
        })
    }

    /// Classifies each item as one line (truncated to `max_tokens` by the engine).
    fn run_lines(
        &self,
        engine: &mut Engine,
        items: Vec<String>,
        share_prefix: bool,
        mut on: impl FnMut(usize, Result<Prediction, String>),
    ) -> Result<(), EngineError> {
        match &self.method {
            Method::Prompt { calibration, .. } => self.scores(engine, items, share_prefix, |i, r| {
                on(
                    i,
                    r.map(|logits| {
                        let p = softmax(&logits);
                        Prediction::from_probs(match calibration {
                            Some(c) => c.apply(&p),
                            None => p,
                        })
                    }),
                )
            }),
            Method::Head(h) => {
                let h = h.clone();
                features(engine, items, &h.prompt(), h.pooling, h.max_tokens, self.batch, |i, r| {
                    on(i, r.map(|x| Prediction::from_probs(h.predict(&x))))
                })
            }
            Method::Native { order } => {
                // Raw logits of a single-label head: softmax, then the user's label order.
                let batch = if share_prefix { self.batch } else { 1 };
                let raw = PromptSpec::raw("{text}");
                features(engine, items, &raw, Pooling::Rank, self.max_tokens, batch, |i, r| {
                    on(i, r.and_then(|logits| native_probs(order, &logits)).map(Prediction::from_probs))
                })
            }
        }
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
