//! One classification specification for every front end. `moat classify` (from its flags) and
//! `/classify` in the REPL and the TUI (from its labels) build a [`Request`]; once the model is
//! loaded, [`Request::resolve`] turns it into a [`Spec`] — method, labels and their order,
//! prompt, calibration, token budget, long-line handling, batch — and [`super::Classifier::new`]
//! runs that spec the same way for both. Defaults, validation and the choice of method live here
//! so the same line gets the same labels whichever way it is classified.

use super::chunk::LongInput;
use super::head::Head;
use super::{native_order, prompt, sentiment_labels, PromptOptions};

/// The model label scoring uses when none is named: it measured best (see README "Classify").
pub const DEFAULT_PROMPT_MODEL: &str = "gemma3-270m";
/// Few-shot examples in the default prompt (built-in sentiment examples, or `--examples`).
pub const DEFAULT_SHOTS: usize = 8;
/// Longest line in tokens read at once; longer ones follow [`LongInput`].
pub const DEFAULT_MAX_TOKENS: usize = 256;
/// Lines per decode.
pub const DEFAULT_BATCH: usize = 16;

/// How to classify: `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MethodChoice {
    /// A head when --head is given, the model's own head when --model is a sequence classifier,
    /// else label scoring (the measured best without training).
    #[default]
    Auto,
    /// Label scoring with an instruction prompt (zero/few-shot, calibrated).
    Prompt,
    /// A trained head (--head FILE).
    Head,
    /// The model's own classification head: a GGUF sequence classifier (BERT, RoBERTa, ModernBERT…
    /// converted by llama.cpp) with its labels in the metadata. Auto picks it for such a model.
    Native,
}

/// What the user asked for, before the model is known. [`Request::default`] is `/classify` with
/// no labels: the method for the model, positive/negative, every default.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub method: MethodChoice,
    /// Labels in the order to report them; `None` = the head's, the model's, or positive/negative.
    pub labels: Option<Vec<String>>,
    /// A trained head (`--head`).
    pub head: Option<Head>,
    /// Labelled `(label, text)` pairs for few-shot prompts (`--examples`); those with a label
    /// outside the chosen ones are left out. `None` = none given.
    pub examples: Option<Vec<(String, String)>>,
    /// Few-shot examples to show; `None` = [`DEFAULT_SHOTS`] with examples to draw from, else 0.
    pub shots: Option<usize>,
    /// Contextual calibration of label scoring.
    pub calibrate: bool,
    /// Wrap the label-scoring prompt in the model's chat template (default: no).
    pub chat_prompt: Option<bool>,
    /// A completion prompt of the user's own, with `{text}` where the line goes.
    pub template: Option<String>,
    /// Longest line in tokens read at once.
    pub max_tokens: usize,
    /// Lines over `max_tokens`: chunked and averaged, or truncated.
    pub long: LongInput,
    /// Lines per decode.
    pub batch: usize,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            method: MethodChoice::Auto,
            labels: None,
            head: None,
            examples: None,
            shots: None,
            calibrate: true,
            chat_prompt: None,
            template: None,
            max_tokens: DEFAULT_MAX_TOKENS,
            long: LongInput::Chunk,
            batch: DEFAULT_BATCH,
        }
    }
}

/// What resolution needs to know about the loaded model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// The name reports and errors use.
    pub name: String,
    /// A sequence classifier's labels from its GGUF, in output order (empty for other models).
    pub classifier_labels: Vec<String>,
    /// The training context in tokens (0 = unknown): a classifier's position table ends there.
    pub n_ctx_train: usize,
}

impl From<&crate::engine::ModelInfo> for Model {
    fn from(info: &crate::engine::ModelInfo) -> Model {
        Model {
            name: info.short_name(),
            classifier_labels: info.classifier_labels.clone(),
            n_ctx_train: info.n_ctx_train as usize,
        }
    }
}

/// The method a [`Spec`] resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Label scoring with an instruction prompt.
    Prompt(PromptOptions),
    /// A trained head over pooled hidden states.
    Head(Box<Head>),
    /// A sequence classifier's own head; `order[i]` is the model output holding label `i`.
    Native { order: Vec<usize> },
}

/// A classification resolved against the loaded model: everything that decides a line's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Labels in report order.
    pub labels: Vec<String>,
    pub kind: Kind,
    /// Longest piece in tokens the model reads at once (a head's own budget; for a native
    /// classifier at most its position table, less its special tokens).
    pub max_tokens: usize,
    pub long: LongInput,
    /// Lines per decode (at least 1).
    pub batch: usize,
}

/// Tokens a native classifier's own specials ([CLS] … [SEP]) take from its position table.
const NATIVE_SPECIALS: usize = 2;

impl Request {
    /// Whether this needs the model's weights here (a head or a native classifier): a remote
    /// server only scores labels. `head` = a head file was named (checked before reading it).
    pub fn local_only(method: MethodChoice, head: bool) -> bool {
        head || matches!(method, MethodChoice::Head | MethodChoice::Native)
    }

    /// Checks that need no model. Errors are one line saying what to change.
    pub fn check(&self) -> Result<(), String> {
        if self.method == MethodChoice::Head && self.head.is_none() {
            return Err("no head: pass --head FILE (train one with `moat classify train`)".into());
        }
        if let (Some(h), Some(l)) = (self.used_head(), &self.labels) {
            if &h.labels != l {
                return Err(format!(
                    "the head's labels are {}; drop --labels or train a head for yours",
                    h.labels.join(",")
                ));
            }
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if self.template.as_ref().is_some_and(|t| !t.contains("{text}")) {
            return Err("--prompt must contain {text} where the line goes".into());
        }
        Ok(())
    }

    /// The head in use: `--method prompt` or `native` set a given head aside.
    fn used_head(&self) -> Option<&Head> {
        self.head.as_ref().filter(|_| matches!(self.method, MethodChoice::Auto | MethodChoice::Head))
    }

    /// The model to load: `-m` (`flag`), else the head's base model, else the default label-scoring
    /// model. Errors: a head with another `-m`, or `--method native` without `-m`.
    pub fn model(&self, flag: Option<&str>) -> Result<String, String> {
        match (flag, self.used_head()) {
            (Some(m), Some(h)) if m != h.provenance.model => Err(format!(
                "the head was trained on {}, not {m}; drop --model or train a head on {m}",
                h.provenance.model
            )),
            (Some(m), _) => Ok(m.to_string()),
            (None, Some(h)) => Ok(h.provenance.model.clone()),
            (None, None) if self.method == MethodChoice::Native => {
                Err("--method native needs --model: a GGUF sequence classifier".into())
            }
            (None, None) => Ok(DEFAULT_PROMPT_MODEL.to_string()),
        }
    }

    /// Resolves against the loaded model: a head when one is in use, the model's own head when
    /// it is a sequence classifier (unless `--method prompt`), else label scoring.
    pub fn resolve(&self, model: &Model) -> Result<Spec, String> {
        self.check()?;
        let batch = self.batch;
        if let Some(h) = self.used_head() {
            // The head was trained on features of lines cut at its own budget.
            let (labels, max_tokens) = (h.labels.clone(), h.max_tokens);
            return Ok(Spec { labels, kind: Kind::Head(Box::new(h.clone())), max_tokens, long: self.long, batch });
        }
        let classifier = !model.classifier_labels.is_empty();
        if self.method == MethodChoice::Native && !classifier {
            return Err(format!(
                "{} is not a sequence classifier (its GGUF has no classifier.output_labels); drop --method native",
                model.name
            ));
        }
        if classifier && self.method != MethodChoice::Prompt {
            if self.examples.is_some() || self.shots.is_some() || self.template.is_some() {
                return Err(format!(
                    "{} is a sequence classifier with its own head; --examples, --shots and --prompt need --method prompt",
                    model.name
                ));
            }
            let (labels, order) = native_order(&model.classifier_labels, self.labels.as_deref())?;
            let mut max_tokens = self.max_tokens;
            if model.n_ctx_train > NATIVE_SPECIALS {
                // Past its position table the engine would cut the line; chunk it here instead.
                max_tokens = max_tokens.min(model.n_ctx_train - NATIVE_SPECIALS);
            }
            return Ok(Spec { labels, kind: Kind::Native { order }, max_tokens, long: self.long, batch });
        }
        let labels = self.labels.clone().unwrap_or_else(sentiment_labels);
        let examples: Vec<(String, String)> =
            self.examples.iter().flatten().filter(|(l, _)| labels.contains(l)).cloned().collect();
        // A known scheme shows its bank's examples (three labels: 3 each); user examples alone: 8.
        let default_shots = if prompt::is_sentiment(&labels) {
            super::bank::Scheme::default_shots(labels.len())
        } else if !examples.is_empty() {
            DEFAULT_SHOTS
        } else {
            0
        };
        let options = PromptOptions {
            labels: labels.clone(),
            shots: self.shots.unwrap_or(default_shots),
            examples,
            // Measured: a completion-style prompt beats the chat template even on instruction models.
            chat: self.chat_prompt.unwrap_or(false),
            calibrate: self.calibrate,
            template: self.template.clone(),
        };
        Ok(Spec { labels, kind: Kind::Prompt(options), max_tokens: self.max_tokens, long: self.long, batch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::head::Provenance;
    use crate::engine::Pooling;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    fn chat_model() -> Model {
        Model { name: "smollm2".into(), classifier_labels: Vec::new(), n_ctx_train: 8192 }
    }

    fn native_model() -> Model {
        Model { name: "tiny-bert".into(), classifier_labels: v(&["negative", "positive"]), n_ctx_train: 128 }
    }

    fn head(labels: &[&str]) -> Head {
        Head {
            format: crate::classify::head::FORMAT.into(),
            labels: v(labels),
            pooling: Pooling::Mean,
            template: "{text}".into(),
            max_tokens: 200,
            mean: vec![0.0],
            scale: vec![1.0],
            weights: vec![vec![1.0]; labels.len()],
            bias: vec![0.0; labels.len()],
            provenance: Provenance {
                model: "smollm2-135m".into(),
                model_sha256: String::new(),
                training_set: "t.tsv".into(),
                n_train: 1,
                n_heldout: 0,
                heldout_accuracy: None,
                heldout_macro_f1: None,
                created: String::new(),
            },
        }
    }

    #[test]
    fn the_default_is_calibrated_eight_shot_sentiment_chunking_long_lines() {
        let s = Request::default().resolve(&chat_model()).unwrap();
        assert_eq!(s.labels, ["positive", "negative"]);
        assert_eq!((s.max_tokens, s.long, s.batch), (256, LongInput::Chunk, 16));
        let Kind::Prompt(o) = s.kind else { panic!("label scoring") };
        assert_eq!((o.shots, o.calibrate, o.chat), (8, true, false));
        // Sentiment words by another name use the bank: 8 shots for two labels, 3 each for three.
        let r = Request { labels: Some(v(&["bullish", "bearish"])), ..Request::default() };
        let Kind::Prompt(o) = r.resolve(&chat_model()).unwrap().kind else { panic!() };
        assert_eq!(o.shots, 8);
        let r = Request { labels: Some(v(&["利好", "利空", "中性"])), ..Request::default() };
        let Kind::Prompt(o) = r.resolve(&chat_model()).unwrap().kind else { panic!() };
        assert_eq!(o.shots, 9);
        // Other labels without examples: zero-shot.
        let r = Request { labels: Some(v(&["sports", "politics"])), ..Request::default() };
        let Kind::Prompt(o) = r.resolve(&chat_model()).unwrap().kind else { panic!() };
        assert_eq!(o.shots, 0);
    }

    #[test]
    fn examples_outside_the_labels_are_left_out_and_make_it_few_shot() {
        let ex = vec![("a".to_string(), "x".to_string()), ("z".to_string(), "y".to_string())];
        let r = Request { labels: Some(v(&["a", "b"])), examples: Some(ex), ..Request::default() };
        let Kind::Prompt(o) = r.resolve(&chat_model()).unwrap().kind else { panic!() };
        assert_eq!((o.shots, o.examples.len()), (DEFAULT_SHOTS, 1));
    }

    #[test]
    fn a_sequence_classifier_uses_its_head_in_the_users_order_within_its_context() {
        let s = Request::default().resolve(&native_model()).unwrap();
        assert_eq!((s.labels.clone(), s.kind), (v(&["negative", "positive"]), Kind::Native { order: vec![0, 1] }));
        assert_eq!(s.max_tokens, 126);
        let r = Request { labels: Some(v(&["positive", "negative"])), ..Request::default() };
        assert_eq!(r.resolve(&native_model()).unwrap().kind, Kind::Native { order: vec![1, 0] });
        let r = Request { labels: Some(v(&["bullish", "bearish"])), ..Request::default() };
        assert!(r.resolve(&native_model()).unwrap_err().contains("negative,positive"));
        let r = Request { shots: Some(4), ..Request::default() };
        assert!(r.resolve(&native_model()).unwrap_err().contains("--method prompt"));
        // --method prompt on a classifier is label scoring (which the engine then refuses).
        let r = Request { method: MethodChoice::Prompt, ..Request::default() };
        assert!(matches!(r.resolve(&native_model()).unwrap().kind, Kind::Prompt(_)));
        let r = Request { method: MethodChoice::Native, ..Request::default() };
        assert!(r.resolve(&chat_model()).unwrap_err().contains("not a sequence classifier"));
        assert!(r.model(None).unwrap_err().contains("needs --model"));
    }

    #[test]
    fn a_head_brings_its_labels_model_and_budget() {
        let r = Request { head: Some(head(&["pos", "neg"])), ..Request::default() };
        assert_eq!(r.model(None).unwrap(), "smollm2-135m");
        assert!(r.model(Some("gemma3-270m")).unwrap_err().contains("trained on smollm2-135m"));
        let s = r.resolve(&native_model()).unwrap();
        assert_eq!((s.labels, s.max_tokens), (v(&["pos", "neg"]), 200));
        let r = Request { labels: Some(v(&["neg", "pos"])), ..r };
        assert!(r.check().unwrap_err().contains("the head's labels are pos,neg"));
        // --method prompt sets the head aside.
        let r = Request { method: MethodChoice::Prompt, ..r };
        assert!(r.check().is_ok() && matches!(r.resolve(&chat_model()).unwrap().kind, Kind::Prompt(_)));
        let r = Request { method: MethodChoice::Head, ..Request::default() };
        assert!(r.check().unwrap_err().contains("--head FILE"));
        assert!(Request::local_only(MethodChoice::Auto, true) && !Request::local_only(MethodChoice::Prompt, false));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Request { batch: 0, ..Request::default() }.check().is_err());
        assert!(Request { template: Some("no slot".into()), ..Request::default() }.check().is_err());
    }
}
