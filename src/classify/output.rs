//! Printing results: TSV (the default on pipes), JSON Lines, or an aligned table with probability
//! bars (the default on a terminal). One row per input line, in input order.

use super::metrics::bar;
use super::Prediction;
use crate::render::sanitize;
use unicode_width::UnicodeWidthChar;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Tsv,
    Jsonl,
    Table,
}

pub struct Row<'a> {
    pub line: usize,
    pub id: Option<&'a str>,
    /// The text, or `None` when it could not be read (bad UTF-8 etc.).
    pub text: Option<&'a str>,
    pub result: &'a Result<Prediction, String>,
}

fn round(x: f32) -> f64 {
    (x as f64 * 10000.0).round() / 10000.0
}

pub fn header(labels: &[String], format: OutputFormat) -> Option<String> {
    match format {
        OutputFormat::Tsv => {
            let probs: Vec<String> = labels.iter().map(|l| format!("p_{l}")).collect();
            Some(format!("label\tconfidence\t{}\ttext\terror", probs.join("\t")))
        }
        OutputFormat::Jsonl | OutputFormat::Table => None,
    }
}

/// Cuts text to `width` terminal columns, with an ellipsis.
pub fn clip(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width.saturating_sub(1) {
            out.push('…');
            return out;
        }
        w += cw;
        out.push(c);
    }
    out
}

pub fn row(labels: &[String], format: OutputFormat, r: &Row<'_>, width: usize) -> String {
    let shown = r.id.or(r.text).unwrap_or("");
    match format {
        OutputFormat::Tsv => {
            let clean = shown.replace(['\t', '\r', '\n'], " ");
            match r.result {
                Ok(p) => {
                    let probs: Vec<String> = p.probs.iter().map(|x| format!("{:.4}", x)).collect();
                    format!("{}\t{:.4}\t{}\t{}\t", labels[p.label], p.confidence(), probs.join("\t"), clean)
                }
                Err(e) => format!("\t\t{}\t{}\t{}", vec![""; labels.len()].join("\t"), clean, e.replace('\t', " ")),
            }
        }
        OutputFormat::Jsonl => {
            let mut o = serde_json::json!({ "line": r.line });
            if let Some(id) = r.id {
                o["id"] = id.into();
            }
            if let Some(t) = r.text {
                o["text"] = t.into();
            }
            match r.result {
                Ok(p) => {
                    o["label"] = labels[p.label].clone().into();
                    o["confidence"] = round(p.confidence()).into();
                    o["probs"] =
                        labels.iter().zip(&p.probs).map(|(l, x)| (l.clone(), serde_json::json!(round(*x)))).collect();
                }
                Err(e) => o["error"] = e.clone().into(),
            }
            o.to_string()
        }
        OutputFormat::Table => {
            let lw = labels.iter().map(|l| l.chars().count()).max().unwrap_or(5).max(5);
            let text = sanitize(shown);
            // Labels can come from a model file (a native classifier's GGUF): sanitised too.
            let row = match r.result {
                Ok(p) => {
                    let head = format!(
                        "{:<lw$}  {:.2}  {}  ",
                        labels[p.label],
                        p.confidence(),
                        bar(p.confidence() as f64, 10)
                    );
                    let rest = width.saturating_sub(head.chars().count()).max(10);
                    format!("{head}{}", clip(&text, rest))
                }
                Err(e) => {
                    let head = format!("{:<lw$}  ----  {}  ", "error", " ".repeat(10));
                    format!("{head}line {}: {}", r.line, clip(e, width.saturating_sub(head.len() + 12).max(10)))
                }
            };
            sanitize(&row).into_owned()
        }
    }
}

/// Per-label probability bars and a running tally, for classifier mode in the chat and REPL.
pub fn detail(labels: &[String], p: &Prediction) -> String {
    let lw = labels.iter().map(|l| l.chars().count()).max().unwrap_or(5);
    let mut s = String::new();
    for (i, (l, x)) in labels.iter().zip(&p.probs).enumerate() {
        let mark = if i == p.label { '▶' } else { ' ' };
        s.push_str(&format!("{mark} {l:<lw$}  {} {:.2}\n", bar(*x as f64, 20), x));
    }
    sanitize(&s).into_owned()
}

pub fn tally(labels: &[String], counts: &[usize]) -> String {
    let total: usize = counts.iter().sum();
    let parts: Vec<String> = labels.iter().zip(counts).map(|(l, n)| format!("{l} {n}")).collect();
    sanitize(&format!("tally: {} ({} classified)", parts.join(" · "), total)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_every_format() {
        let labels = vec!["positive".to_string(), "negative".to_string()];
        let ok: Result<Prediction, String> = Ok(Prediction { label: 1, probs: vec![0.25, 0.75] });
        let r = Row { line: 3, id: None, text: Some("bad\tfood"), result: &ok };
        assert_eq!(row(&labels, OutputFormat::Tsv, &r, 80), "negative\t0.7500\t0.2500\t0.7500\tbad food\t");
        let j: serde_json::Value = serde_json::from_str(&row(&labels, OutputFormat::Jsonl, &r, 80)).unwrap();
        assert_eq!(j["label"], "negative");
        assert_eq!(j["probs"]["positive"], 0.25);
        assert!(row(&labels, OutputFormat::Table, &r, 80).starts_with("negative  0.75  "));
        let err: Result<Prediction, String> = Err("empty text".into());
        let r = Row { line: 4, id: None, text: None, result: &err };
        assert_eq!(row(&labels, OutputFormat::Tsv, &r, 80), "\t\t\t\t\tempty text");
        assert_eq!(header(&labels, OutputFormat::Tsv).unwrap().split('\t').count(), 6);
        assert_eq!(row(&labels, OutputFormat::Tsv, &r, 80).split('\t').count(), 6);
        assert!(detail(&labels, &Prediction { label: 0, probs: vec![0.9, 0.1] }).starts_with("▶ positive"));
    }

    #[test]
    fn labels_and_text_from_outside_cannot_drive_the_terminal() {
        let labels = vec!["\x1b]0;PWN\x07pos".to_string(), "neg\u{202E}".to_string()];
        let ok: Result<Prediction, String> = Ok(Prediction { label: 0, probs: vec![0.9, 0.1] });
        let r = Row { line: 1, id: None, text: Some("te\x1b[2Jxt"), result: &ok };
        let shown = row(&labels, OutputFormat::Table, &r, 80);
        assert!(shown.starts_with("pos") && shown.ends_with("text"), "{shown:?}");
        let d = detail(&labels, &Prediction { label: 0, probs: vec![0.9, 0.1] });
        assert!(!d.contains(['\x1b', '\x07', '\u{202E}']), "{d:?}");
        assert!(!tally(&labels, &[1, 2]).contains('\x1b'));
        // JSON stays byte-exact: serde escapes ESC, the label is kept whole.
        let j: serde_json::Value = serde_json::from_str(&row(&labels, OutputFormat::Jsonl, &r, 80)).unwrap();
        assert_eq!(j["label"], labels[0].as_str());
    }
}
