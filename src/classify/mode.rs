//! Classifier mode for the interactive front ends (`/classify [labels]` … `/chat`): every line the
//! user sends is classified on the loaded model instead of answered, shown with per-label
//! probability bars, with a running tally. The first request also scores the content-free inputs
//! so the rest are calibrated. On a native sequence classifier the model's own head is used instead.

use super::calibrate::{softmax, Calibration, CONTENT_FREE};
use super::{output, prompt, Prediction};
use crate::engine::{EmbedRequest, ItemResult, Pooling, PromptSpec, ScoreRequest, Task};

#[derive(Debug, Clone)]
pub struct ClassifyMode {
    pub labels: Vec<String>,
    pub counts: Vec<usize>,
    plan: prompt::Plan,
    calibration: Option<Calibration>,
    /// Lines of the request in flight, and how many content-free inputs precede them.
    lines: Vec<String>,
    offset: usize,
    cf_rows: Vec<Vec<f32>>,
    /// A native classifier: `order[i]` is the model output holding label `i`.
    native: Option<Vec<usize>>,
}

impl ClassifyMode {
    pub fn new(labels: Vec<String>) -> ClassifyMode {
        let shots = if prompt::is_sentiment(&labels) { super::bank::Scheme::default_shots(labels.len()) } else { 0 };
        let plan = prompt::plan(&labels, shots, &[], false);
        let counts = vec![0; labels.len()];
        ClassifyMode {
            labels,
            counts,
            plan,
            calibration: None,
            lines: Vec::new(),
            offset: 0,
            cf_rows: Vec::new(),
            native: None,
        }
    }

    /// Classifier mode for the loaded model: its own head when it is a sequence classifier
    /// (`model_labels` from its GGUF; `labels` may reorder them), else label scoring.
    pub fn for_model(labels: Option<Vec<String>>, model_labels: &[String]) -> Result<ClassifyMode, String> {
        if model_labels.is_empty() {
            return Ok(ClassifyMode::new(labels.unwrap_or_else(super::sentiment_labels)));
        }
        let (labels, order) = super::native_order(model_labels, labels.as_deref())?;
        let mut m = ClassifyMode::new(labels);
        m.native = Some(order);
        Ok(m)
    }

    /// Uses a native classifier's own head (not label scoring).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// A request for every non-empty line of `text` (a paste of many lines is many items).
    pub fn request(&mut self, text: &str) -> Option<Task> {
        self.lines = crate::text_input::normalize_newlines(text)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        if self.lines.is_empty() {
            return None;
        }
        if self.native.is_some() {
            self.offset = 0;
            let embed = EmbedRequest {
                prompt: PromptSpec::raw("{text}"),
                items: self.lines.clone(),
                pooling: Pooling::Rank,
                max_item_tokens: 256,
                batch: 16,
            };
            return Some(Task::Embed(Box::new(embed)));
        }
        let mut items: Vec<String> = Vec::new();
        self.offset = 0;
        if self.calibration.is_none() {
            items.extend(CONTENT_FREE.iter().map(|s| s.to_string()));
            self.offset = items.len();
            self.cf_rows.clear();
        }
        items.extend(self.lines.iter().cloned());
        let score = ScoreRequest {
            prompt: self.plan.spec.clone(),
            items,
            labels: self.plan.verbalizers.clone(),
            max_item_tokens: 256,
            batch: 16,
            share_prefix: true,
        };
        Some(Task::Score(Box::new(score)))
    }

    /// Formats one result of the request in flight (`None` for the calibration inputs).
    pub fn result(&mut self, index: usize, result: ItemResult) -> Option<String> {
        if index < self.offset {
            if let Ok(r) = result {
                self.cf_rows.push(r);
            }
            if self.cf_rows.len() == self.offset {
                self.calibration = Calibration::from_logits(&self.cf_rows);
            }
            return None;
        }
        let line = self.lines.get(index - self.offset).cloned().unwrap_or_default();
        Some(match result {
            Ok(logits) => {
                let p = match &self.native {
                    Some(order) => match super::native_probs(order, &logits) {
                        Ok(p) => p,
                        Err(e) => return Some(format!("error  {}: {e}", output::clip(&line, 60))),
                    },
                    None => {
                        let p = softmax(&logits);
                        self.calibration.as_ref().map(|c| c.apply(&p)).unwrap_or(p)
                    }
                };
                let pred = Prediction::from_probs_pub(p);
                self.counts[pred.label] += 1;
                format!(
                    "{}  {:.2}  {}\n{}",
                    self.labels[pred.label],
                    pred.confidence(),
                    output::clip(&line, 60),
                    output::detail(&self.labels, &pred).trim_end()
                )
            }
            Err(e) => format!("error  {}: {e}", output::clip(&line, 60)),
        })
    }

    pub fn tally(&self) -> String {
        output::tally(&self.labels, &self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_request_calibrates_then_tallies() {
        let mut m = ClassifyMode::new(vec!["positive".into(), "negative".into()]);
        let Some(Task::Score(score)) = m.request("great\n\n awful \n") else { panic!("a request") };
        assert_eq!(score.items.len(), CONTENT_FREE.len() + 2);
        assert_eq!(&score.items[CONTENT_FREE.len()..], ["great", "awful"]);
        for i in 0..CONTENT_FREE.len() {
            assert!(m.result(i, Ok(vec![1.0, 0.0])).is_none());
        }
        let shown = m.result(CONTENT_FREE.len(), Ok(vec![3.0, 0.0])).unwrap();
        assert!(shown.starts_with("positive") && shown.contains("great"), "{shown}");
        let _ = m.result(CONTENT_FREE.len() + 1, Ok(vec![0.0, 3.0]));
        assert_eq!(m.tally(), "tally: positive 1 · negative 1 (2 classified)");
        let Some(Task::Score(score)) = m.request("again") else { panic!("a request") };
        assert_eq!(score.items, ["again"]);
        assert!(m.request(" \n").is_none());
    }

    #[test]
    fn native_classifier_uses_its_head_in_the_users_label_order() {
        let model = ["negative".to_string(), "positive".to_string()];
        let mut m = ClassifyMode::for_model(Some(vec!["positive".into(), "negative".into()]), &model).unwrap();
        let Some(Task::Embed(embed)) = m.request("great\nawful") else { panic!("an embed request") };
        assert_eq!((embed.pooling, embed.items.len()), (Pooling::Rank, 2));
        let shown = m.result(0, Ok(vec![-2.0, 2.0])).unwrap();
        assert!(shown.starts_with("positive  0.98"), "{shown}");
        let shown = m.result(1, Ok(vec![1.0, 2.0, 3.0])).unwrap();
        assert!(shown.starts_with("error"), "{shown}");
        assert!(ClassifyMode::for_model(Some(vec!["a".into(), "b".into()]), &model).is_err());
        assert!(ClassifyMode::for_model(None, &[]).unwrap().native.is_none());
    }
}
