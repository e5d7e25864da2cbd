//! Classifier mode for the interactive front ends (`/classify [labels]` … `/chat`): every line the
//! user sends is classified on the loaded model instead of answered, shown with per-label
//! probability bars, with a running tally. It classifies through the same [`Spec`] and
//! [`Classifier`] as `moat classify`, so a line gets the labels the CLI gives it: long lines are
//! split and averaged, label scoring is calibrated by its first request, and a native sequence
//! classifier uses its own head.

use super::spec::{Model, Request, Spec};
use super::{output, Classifier, Job};
use crate::engine::{ItemResult, Task};

#[derive(Debug, Clone)]
pub struct ClassifyMode {
    /// What `/classify` asked for, resolved again when another model loads.
    pub asked: Request,
    pub labels: Vec<String>,
    pub counts: Vec<usize>,
    classifier: Classifier,
    /// Lines of the request in flight, and how its engine items map onto them.
    lines: Vec<String>,
    job: Job,
}

impl ClassifyMode {
    /// Classifier mode for `asked` on the loaded `model`; see [`Request::resolve`] for the errors.
    pub fn new(asked: Request, model: &Model) -> Result<ClassifyMode, String> {
        let spec: Spec = asked.resolve(model)?;
        let classifier = Classifier::new(&spec);
        Ok(ClassifyMode {
            asked,
            labels: spec.labels.clone(),
            counts: vec![0; spec.labels.len()],
            classifier,
            lines: Vec::new(),
            job: Job::default(),
        })
    }

    /// Classifier mode for `/classify [labels]`: every other setting as `moat classify` defaults it.
    pub fn for_model(labels: Option<Vec<String>>, model: &Model) -> Result<ClassifyMode, String> {
        ClassifyMode::new(Request { labels, ..Request::default() }, model)
    }

    /// Uses a native classifier's own head (not label scoring).
    pub fn is_native(&self) -> bool {
        self.classifier.is_native()
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
        let (task, job) = self.classifier.job(&self.lines, true);
        self.job = job;
        Some(task)
    }

    /// Takes the result of engine item `index` of the request in flight; returns the line it
    /// completes, formatted (`None` for calibration inputs and chunks of a line still coming).
    pub fn result(&mut self, index: usize, result: ItemResult) -> Option<String> {
        let (i, result) = self.classifier.take(&mut self.job, index, result)?;
        let line = self.lines.get(i).cloned().unwrap_or_default();
        Some(match result {
            Ok(pred) => {
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
    use crate::classify::calibrate::CONTENT_FREE;
    use crate::engine::Pooling;

    fn chat_model() -> Model {
        Model { name: "smollm2".into(), classifier_labels: Vec::new(), n_ctx_train: 8192 }
    }

    fn native_model() -> Model {
        Model {
            name: "tiny-bert".into(),
            classifier_labels: vec!["negative".into(), "positive".into()],
            n_ctx_train: 128,
        }
    }

    #[test]
    fn first_request_calibrates_then_tallies() {
        let mut m = ClassifyMode::for_model(None, &chat_model()).unwrap();
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
        let model = native_model();
        let mut m = ClassifyMode::for_model(Some(vec!["positive".into(), "negative".into()]), &model).unwrap();
        let Some(Task::Embed(embed)) = m.request("great\nawful") else { panic!("an embed request") };
        assert_eq!((embed.pooling, embed.items.len()), (Pooling::Rank, 2));
        let shown = m.result(0, Ok(vec![-2.0, 2.0])).unwrap();
        assert!(shown.starts_with("positive  0.98"), "{shown}");
        let shown = m.result(1, Ok(vec![1.0, 2.0, 3.0])).unwrap();
        assert!(shown.starts_with("error"), "{shown}");
        assert!(ClassifyMode::for_model(Some(vec!["a".into(), "b".into()]), &model).is_err());
        assert!(!ClassifyMode::for_model(None, &chat_model()).unwrap().is_native());
    }

    #[test]
    fn a_long_line_is_split_as_the_cli_splits_it_and_its_chunks_averaged() {
        let mut m = ClassifyMode::for_model(None, &native_model()).unwrap();
        let long = "this is terrible. ".repeat(60);
        let Some(Task::Embed(embed)) = m.request(&format!("{long}\nfine")) else { panic!("an embed request") };
        let pieces = embed.items.len() - 1;
        assert!(pieces > 1, "{:?}", embed.items);
        assert_eq!(embed.items[..pieces], crate::classify::chunk::split(long.trim(), 126, 63));
        // Chunks alternate between negative and positive: the line gets the mean.
        let sure = 1.0 / (1.0 + (-4.0f32).exp());
        let n_neg = pieces.div_ceil(2);
        let p_neg = (n_neg as f32 * sure + (pieces - n_neg) as f32 * (1.0 - sure)) / pieces as f32;
        for i in 0..pieces {
            let logits = if i % 2 == 0 { vec![2.0, -2.0] } else { vec![-2.0, 2.0] };
            let shown = m.result(i, Ok(logits));
            assert_eq!(shown.is_some(), i + 1 == pieces, "{shown:?}");
            if let Some(s) = shown {
                let row = s.lines().skip(1).find(|l| l.trim_start_matches(['▶', ' ']).starts_with("negative")).unwrap();
                assert!(row.ends_with(&format!(" {p_neg:.2}")), "{s}");
            }
        }
        assert!(m.result(pieces, Ok(vec![0.0, 1.0])).unwrap().starts_with("positive"));
    }
}
