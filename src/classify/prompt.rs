//! Instruction prompts for label scoring: zero-shot for any label set, with optional few-shot
//! examples (built-in English sentiment examples, or drawn from a labelled file).

use crate::engine::PromptSpec;

use super::bank::{self, Concept};

#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: PromptSpec,
    /// What the model should continue the prompt with, one per label.
    pub verbalizers: Vec<String>,
    /// Each label's meaning when the labels are a scheme the built-in banks know (see [`bank`]).
    pub concepts: Option<Vec<Concept>>,
}

/// Whether these labels are a sentiment scheme the built-in banks know (`positive,negative`,
/// `bullish,bearish,neutral`, `利好,利空,中性` …), so the default prompt shows their examples.
pub fn is_sentiment(labels: &[String]) -> bool {
    bank::scheme(labels).is_some()
}

/// One line of text as it appears inside a prompt (no newlines, bounded length is the engine's job).
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The prompt for `labels`. `shots`: examples to show (0 = zero-shot); `examples`: (label, text)
/// pairs to draw them from, else the built-in bank when the labels are a known scheme. For a known
/// scheme the prompt and the verbalizers use each label's concept word (`bullish` is scored as
/// " positive"), so label words a tokenizer cannot tell apart by their first token still work.
pub fn plan(labels: &[String], shots: usize, examples: &[(String, String)], chat: bool) -> Plan {
    let scheme = bank::scheme(labels);
    let concepts = scheme.and_then(|_| bank::concepts(labels));
    let (field, mut t) = match (&scheme, &concepts) {
        (Some(s), Some(cs)) => ("Sentiment", s.bank.instruction.replace("{labels}", &concept_list(cs)) + "\n\n"),
        _ => ("Category", format!("Classify each text into exactly one category: {}.\n\n", labels.join(", "))),
    };
    // The word shown after `field:` for label `i`.
    let shown = |i: usize| concepts.as_ref().map_or(labels[i].clone(), |cs| cs[i].word().to_string());
    let pool: Vec<(String, String)> = if !examples.is_empty() {
        let named: Vec<(String, String)> = interleave(labels, examples);
        named.into_iter().map(|(l, s)| (labels.iter().position(|x| *x == l).map_or(l, shown), s)).collect()
    } else if let (Some(s), Some(cs)) = (&scheme, &concepts) {
        s.examples(cs).into_iter().map(|(c, s)| (c.word().to_string(), s.to_string())).collect()
    } else {
        Vec::new()
    };
    for (l, s) in pool.iter().take(shots) {
        t.push_str(&format!("Text: {}\n{field}: {}\n\n", flat(s), l));
    }
    t.push_str(&format!("Text: {{text}}\n{field}:"));
    let verbalizers = (0..labels.len()).map(|i| format!(" {}", shown(i))).collect();
    let spec = if chat {
        // Instruction-tuned models: the whole prompt is the user turn; the answer line is primed.
        let body = t.trim_end_matches(&format!("\n{field}:")).to_string();
        PromptSpec { template: body, chat: true, answer_prefix: format!("{field}:") }
    } else {
        PromptSpec::raw(t)
    };
    Plan { spec, verbalizers, concepts }
}

/// The concept words of a scheme in a fixed order: "positive or negative", "positive, negative or neutral".
fn concept_list(cs: &[Concept]) -> String {
    let words: Vec<&str> = [Concept::Positive, Concept::Negative, Concept::Neutral]
        .into_iter()
        .filter(|c| cs.contains(c))
        .map(Concept::word)
        .collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.join(""),
    }
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
        let p = plan(&v(&["sports", "politics", "science"]), 0, &[], false);
        assert!(p.spec.template.contains("sports, politics, science") && p.spec.template.ends_with("Category:"));
        assert_eq!(p.verbalizers, v(&[" sports", " politics", " science"]));
        assert_eq!(p.spec.template.matches("{text}").count(), 1);
        assert!(p.concepts.is_none());
    }

    #[test]
    fn known_schemes_share_the_bank_and_the_concept_words() {
        let a = plan(&v(&["positive", "neutral", "negative"]), 9, &[], false);
        let b = plan(&v(&["bullish", "neutral", "bearish"]), 9, &[], false);
        // Same meaning, same prompt: only the names reported differ.
        assert_eq!((&a.spec.template, &a.verbalizers), (&b.spec.template, &b.verbalizers));
        assert_eq!(b.verbalizers, v(&[" positive", " neutral", " negative"]));
        assert!(a
            .spec
            .template
            .starts_with("Classify the sentiment of each financial news headline as positive, negative or neutral."));
        assert_eq!(a.spec.template.matches("\nSentiment: neutral\n").count(), 3);
        // Label words whose first tokens collide are scored through their concept words.
        let z = plan(&v(&["利好", "利空", "中性"]), 9, &[], false);
        assert_eq!(z.verbalizers, v(&[" positive", " negative", " neutral"]));
        assert!(z.spec.template.contains("净利润"));
        // The binary default keeps the prompt it has always had.
        let s = plan(&v(&["positive", "negative"]), 8, &[], false);
        assert!(s
            .spec
            .template
            .starts_with("Classify the sentiment of each text as positive or negative.\n\nText: The food was cold"));
        assert_eq!(s.spec.template.matches("Sentiment: ").count(), 8);
        assert!(!s.spec.template.contains("neutral"));
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
        // User examples for a known scheme are shown under the concept words.
        let ex = vec![("利好".to_string(), "涨".to_string()), ("利空".to_string(), "跌".to_string())];
        let p = plan(&v(&["利好", "利空"]), 2, &ex, false);
        assert!(p.spec.template.contains("Text: 涨\nSentiment: positive\n\nText: 跌\nSentiment: negative"));
    }
}
