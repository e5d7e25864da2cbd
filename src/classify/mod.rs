//! Text classification on the loaded model: label scoring with an instruction prompt (zero- or
//! few-shot, contextually calibrated) or a trained linear head over pooled hidden states. The
//! engine does the batched llama.cpp work; this module builds prompts, calibrates, trains and
//! measures.

pub mod calibrate;
pub mod head;
pub mod input;
pub mod metrics;
pub mod mode;
pub mod output;
pub mod prompt;

use crate::engine::{EmbedRequest, Engine, EngineError, Event, Pooling, PromptSpec, Request, ScoreRequest};
use calibrate::{softmax, Calibration, CONTENT_FREE};
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
}

#[derive(Debug, Clone)]
pub struct Classifier {
    pub labels: Vec<String>,
    pub method: Method,
    /// Longest line in tokens; longer ones keep their first and last halves.
    pub max_tokens: usize,
    /// Lines per decode.
    pub batch: usize,
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
        }
    }

    /// One line describing the method, for reports.
    pub fn describe(&self) -> String {
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
        let id = engine.send(|id| Request::Score { id, score: Box::new(req) });
        collect(engine, id, &mut on)
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
        }
    }
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
    let id = engine.send(|id| Request::Embed { id, embed: Box::new(req) });
    collect(engine, id, &mut on)
}

fn collect(
    engine: &mut Engine,
    id: u64,
    on: &mut impl FnMut(usize, Result<Vec<f32>, String>),
) -> Result<(), EngineError> {
    loop {
        match engine.events().recv().map_err(|_| EngineError::Gone)? {
            Event::Scored { id: i, index, result } | Event::Embedded { id: i, index, result } if i == id => {
                on(index, result)
            }
            Event::Done { id: i, .. } if i == id => return Ok(()),
            Event::Error { id: Some(i), error } if i == id => return Err(error),
            Event::Error { id: None, error } => return Err(error),
            _ => {}
        }
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
