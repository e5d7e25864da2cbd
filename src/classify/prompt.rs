//! Instruction prompts for label scoring: zero-shot for any label set, with optional few-shot
//! examples (built-in English sentiment examples, or drawn from a labelled file).

use crate::engine::PromptSpec;

/// Built-in few-shot examples for positive/negative sentiment.
const SENTIMENT_SHOTS: &[(&str, &str)] = &[
    ("negative", "The food was cold and the waiter ignored us for an hour."),
    ("positive", "An absolute delight from start to finish."),
    ("negative", "I would not recommend this phone to anyone; it broke in a week."),
    ("positive", "Great value, and it works perfectly."),
    ("negative", "A dull, lifeless film with nothing to say."),
    ("positive", "The staff were friendly and the room was spotless."),
    ("negative", "Worst purchase I have made this year."),
    ("positive", "A moving, beautifully acted story."),
];

#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: PromptSpec,
    /// What the model should continue the prompt with, one per label.
    pub verbalizers: Vec<String>,
}

/// Whether these labels are the built-in sentiment pair (in any order).
pub fn is_sentiment(labels: &[String]) -> bool {
    let mut l: Vec<String> = labels.iter().map(|s| s.to_lowercase()).collect();
    l.sort();
    l == ["negative", "positive"]
}

/// One line of text as it appears inside a prompt (no newlines, bounded length is the engine's job).
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The prompt for `labels`. `shots`: examples to show (0 = zero-shot); `examples`: (label, text)
/// pairs to draw them from, else the built-in sentiment ones when the labels are positive/negative.
pub fn plan(labels: &[String], shots: usize, examples: &[(String, String)], chat: bool) -> Plan {
    let sentiment = is_sentiment(labels);
    let list = labels.join(", ");
    let (noun, field) = if sentiment { ("sentiment", "Sentiment") } else { ("category", "Category") };
    let mut t = if sentiment {
        "Classify the sentiment of each text as positive or negative.\n\n".to_string()
    } else {
        format!("Classify each text into exactly one {noun}: {list}.\n\n")
    };
    let pool: Vec<(String, String)> = if !examples.is_empty() {
        interleave(labels, examples)
    } else if sentiment {
        SENTIMENT_SHOTS.iter().map(|(l, s)| (l.to_string(), s.to_string())).collect()
    } else {
        Vec::new()
    };
    for (l, s) in pool.iter().take(shots) {
        t.push_str(&format!("Text: {}\n{field}: {}\n\n", flat(s), l));
    }
    t.push_str(&format!("Text: {{text}}\n{field}:"));
    let verbalizers = labels.iter().map(|l| format!(" {l}")).collect();
    let spec = if chat {
        // Instruction-tuned models: the whole prompt is the user turn; the answer line is primed.
        let body = t.trim_end_matches(&format!("\n{field}:")).to_string();
        PromptSpec { template: body, chat: true, answer_prefix: format!("{field}:") }
    } else {
        PromptSpec::raw(t)
    };
    Plan { spec, verbalizers }
}

/// Examples ordered label by label in turn (a, b, c, a, b, c …), so any `shots` prefix is balanced.
fn interleave(labels: &[String], examples: &[(String, String)]) -> Vec<(String, String)> {
    let mut per: Vec<Vec<&(String, String)>> =
        labels.iter().map(|l| examples.iter().filter(|e| &e.0 == l).collect()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while per.iter().any(|p| i < p.len()) {
        for p in per.iter_mut() {
            if let Some(e) = p.get(i) {
                out.push((*e).clone());
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn zero_shot_any_labels() {
        let p = plan(&v(&["bullish", "bearish", "neutral"]), 0, &[], false);
        assert!(p.spec.template.contains("bullish, bearish, neutral") && p.spec.template.ends_with("Category:"));
        assert_eq!(p.verbalizers, v(&[" bullish", " bearish", " neutral"]));
        assert_eq!(p.spec.template.matches("{text}").count(), 1);
    }

    #[test]
    fn few_shot_balanced_from_examples() {
        let ex = vec![
            ("a".to_string(), "x1".to_string()),
            ("a".to_string(), "x2".to_string()),
            ("b".to_string(), "y1\nmore".to_string()),
        ];
        let p = plan(&v(&["a", "b"]), 2, &ex, true);
        assert!(p.spec.chat && p.spec.template.contains("Text: x1\nCategory: a\n\nText: y1 more\nCategory: b"));
        assert!(p.spec.template.ends_with("Text: {text}"));
        assert!(is_sentiment(&v(&["Positive", "negative"])));
    }
}
