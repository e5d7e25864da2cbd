//! Native GGUF sequence classifiers: a tiny trained BERT (tests/fixtures/classify/native, made by
//! its make_tiny_bert.py) must give the logits its PyTorch twin gave, with labels and their order
//! read from the GGUF. Needs no downloaded model.

use crate::common::{fixture, jsonl, run, Sandbox, TINY_BERT as MODEL};
use std::process::{Command, Output};

const EXPECTED: &str = include_str!(fixture!("classify/native/expected.json"));

struct Case {
    text: String,
    probs: Vec<f64>,
    label: String,
}

fn cases() -> Vec<Case> {
    let v: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    assert_eq!(v["labels"], serde_json::json!(["negative", "positive"]));
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            probs: c["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap()).collect(),
            label: c["label"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn classify(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = s.moat();
    c.args(["-m", MODEL, "classify"]).args(args);
    c
}

fn rows(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    jsonl(o)
}

fn input(cases: &[Case]) -> Vec<u8> {
    cases.iter().map(|c| format!("{}\n", c.text)).collect::<String>().into_bytes()
}

#[test]
fn reproduces_the_reference_logits_batched_and_one_at_a_time() {
    let s = Sandbox::new();
    let cases = cases();
    for batch in ["16", "1"] {
        let got = rows(&run(classify(&s, &["--format", "jsonl", "--batch", batch]), &input(&cases)));
        assert_eq!(got.len(), cases.len());
        for (g, c) in got.iter().zip(&cases) {
            assert_eq!(g["text"], c.text.as_str());
            assert_eq!(g["label"], c.label.as_str(), "{}", c.text);
            // Reference probabilities from PyTorch; jsonl rounds to 4 decimals, flash attention
            // and batch shapes move the logits by < 4e-4.
            for (name, want) in ["negative", "positive"].iter().zip(&c.probs) {
                let p = g["probs"][name].as_f64().unwrap();
                assert!((p - want).abs() < 2e-3, "{}: p({name}) = {p}, reference {want}", c.text);
            }
        }
    }
}

#[test]
fn label_order_comes_from_the_gguf_and_may_be_reordered_not_changed() {
    let s = Sandbox::new();
    let o = run(classify(&s, &[]), b"i love this phone\n");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with("label\tconfidence\tp_negative\tp_positive\ttext"), "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("positive\t"), "{out}");

    let o = run(classify(&s, &["--labels", "positive,negative", "--format", "jsonl"]), b"this is terrible\n");
    let r = &rows(&o)[0];
    assert_eq!(r["label"], "negative");
    assert!(r["probs"]["negative"].as_f64().unwrap() > 0.9);
    let o = run(classify(&s, &["--labels", "positive,negative"]), b"this is terrible\n");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("label\tconfidence\tp_positive\tp_negative"));

    let o = run(classify(&s, &["--labels", "bullish,bearish"]), b"this is terrible\n");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("negative,positive") && err.lines().count() == 1, "{err}");
    let o = run(classify(&s, &["--shots", "4"]), b"this is terrible\n");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn eval_and_long_lines() {
    let s = Sandbox::new();
    let tsv = "label\ttext\npositive\ti love this phone\nnegative\tthis is terrible\npositive\tthe battery life is fantastic\n";
    let path = s.path("gold.tsv");
    std::fs::write(&path, tsv).unwrap();
    let o = s.moat().args(["-m", MODEL, "classify", "--eval", "--json"]).arg(&path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["metrics"]["accuracy"], 1.0);
    assert!(j["method"].as_str().unwrap().starts_with("native sequence classifier"));

    // Past the model's 128-token position table: chunked (default) or truncated, never an error.
    let long = format!(
        "{} the screen broke and support never answered. this is terrible.\n",
        "it arrived on tuesday. ".repeat(80)
    );
    for mode in ["chunk", "truncate"] {
        let r = &rows(&run(classify(&s, &["--format", "jsonl", "--long", mode]), long.as_bytes()))[0];
        assert!(r.get("error").is_none(), "{mode}: {r}");
        assert!(r["probs"]["negative"].as_f64().is_some());
    }
}

#[test]
fn a_classifier_refuses_to_chat_and_a_chat_model_refuses_native() {
    let s = Sandbox::new();
    let o = s.moat().args(["-m", MODEL, "ask", "hello"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is a sequence classifier (negative, positive)") && err.contains("moat classify"), "{err}");

    // Label scoring needs next-token logits, which an encoder does not have.
    let o = run(classify(&s, &["--method", "prompt"]), b"good\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a sequence classifier"));

    let mut c = s.moat();
    c.args(["-m", "smollm2-135m", "classify", "--method", "native"]);
    let o = run(c, b"good\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a sequence classifier"));
}

#[test]
fn classifier_mode_in_the_repl_uses_the_models_head() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["-m", MODEL, "repl", "--no-save"]);
    let o = run(c, b"/classify\nthe battery life is fantastic\nthis is terrible\n/chat\n");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}{out}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("with its own head"), "{out}");
    assert!(out.contains("positive  0.98  the battery life is fantastic"), "{out}");
    assert!(out.contains("negative  0.97  this is terrible"), "{out}");
    assert!(out.contains("back to chat · tally: negative 1 · positive 1 (2 classified)"), "{out}");
}

/// The label probabilities `/classify` printed for each line, from its `▶ label  bar 0.98` rows.
fn repl_probs(out: &str, labels: &[&str]) -> Vec<Vec<f64>> {
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut cur: Vec<f64> = Vec::new();
    for line in out.lines() {
        let cells: Vec<&str> = line.trim_start_matches(['▶', ' ']).split_whitespace().collect();
        let (Some(name), Some(p)) = (cells.first(), cells.last()) else { continue };
        if cells.len() < 3 || labels.get(cur.len()) != Some(name) {
            continue;
        }
        let Ok(p) = p.parse::<f64>() else { continue };
        cur.push(p);
        if cur.len() == labels.len() {
            rows.push(std::mem::take(&mut cur));
        }
    }
    rows
}

#[test]
fn classify_in_the_repl_reads_long_lines_as_the_cli_does() {
    // Praise at both ends, complaints in the middle, ~275 estimated tokens: over the 256-token
    // budget, so the CLI splits it into chunks and averages them; keeping only the head and tail
    // would read mostly praise.
    let long = format!(
        "{}{}{}",
        "i love this phone. ".repeat(10),
        "this is terrible. ".repeat(40),
        "i love this phone. ".repeat(10)
    );
    let lines = [long.trim_end(), "the battery life is fantastic"];
    let s = Sandbox::new();
    for (labels, flag) in [(["negative", "positive"], None), (["positive", "negative"], Some("positive,negative"))] {
        let mut args = vec!["--format", "jsonl"];
        args.extend(flag.iter().flat_map(|l| ["--labels", *l]));
        let cli = rows(&run(classify(&s, &args), lines.join("\n").as_bytes()));
        let mut c = s.moat();
        c.args(["-m", MODEL, "repl", "--no-save"]);
        let script = format!("/classify {}\n{}\n{}\n/chat\n", flag.unwrap_or(""), lines[0], lines[1]);
        let o = run(c, script.as_bytes());
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{}{out}", String::from_utf8_lossy(&o.stderr));
        let shown = repl_probs(&out, &labels);
        assert_eq!(shown.len(), lines.len(), "{out}");
        for ((row, got), text) in cli.iter().zip(&shown).zip(lines) {
            assert!(row.get("error").is_none(), "{row}");
            for (name, p) in labels.iter().zip(got) {
                // The REPL shows two decimals.
                let want = row["probs"][name].as_f64().unwrap();
                assert!(
                    (p - want).abs() <= 0.0051,
                    "{}: /classify p({name}) = {p}, the CLI {want}\n{out}",
                    &text[..30]
                );
            }
            let label = row["label"].as_str().unwrap();
            assert!(out.contains(&format!("{label}  ")), "{out}");
        }
    }
}
