//! `moat classify` with the real default model: clear examples, batched = one at a time, train →
//! save → load → predict, evaluation reports, and every kind of bad input.

use crate::common::{self, fixture, jsonl, run, stderr, Sandbox};
use moat::classify::spec::{Model, Request};
use moat::classify::Classifier;
use std::process::Command;

const FIXTURES: &str = fixture!("classify");

/// `moat classify` on the test model with the prompt method.
fn classify(s: &Sandbox, args: &[&str]) -> Command {
    let mut c = s.moat();
    c.args(["-m", "smollm2-135m", "classify", "--method", "prompt"]).args(args);
    c
}

#[test]
fn clear_english_examples_in_order() {
    let s = Sandbox::new();
    let input = "I love this phone, the battery life is fantastic.\nTerrible service, the food was cold and the waiter was rude.\nA wonderful, moving film with brilliant acting.\nIt broke after one day; a complete waste of money.\n";
    let o = run(classify(&s, &["--format", "jsonl"]), input.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&o);
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["positive", "negative", "positive", "negative"]);
    for (r, line) in rows.iter().zip(input.lines()) {
        assert_eq!(r["text"], line);
        let p = r["probs"]["positive"].as_f64().unwrap() + r["probs"]["negative"].as_f64().unwrap();
        assert!((p - 1.0).abs() < 1e-3);
    }
    // Default output on a pipe: TSV with a header.
    let o = run(classify(&s, &[]), b"What a great day\n");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.starts_with("label\tconfidence\tp_positive\tp_negative\ttext\terror\npositive\t"), "{text}");
}

#[test]
fn batched_and_one_at_a_time_agree() {
    let mut engine = common::engine(512);
    let asked = Request { shots: Some(4), max_tokens: 128, batch: 8, ..Request::default() };
    let mut c = Classifier::new(&asked.resolve(&Model::default()).expect("label scoring"));
    let lines: Vec<String> = [
        "Fantastic value, I am delighted.",
        "The worst hotel I have ever stayed in.",
        "Quite good overall.",
        "Not worth the money at all.",
        "An enjoyable, clever comedy.",
        "Boring and far too long.",
        "The staff were lovely.",
        "It stopped working within a week.",
        "Brilliant!",
        "Awful.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut collect = |engine: &mut moat::engine::Engine, shared: bool| {
        let mut out = vec![None; lines.len()];
        let mut order = Vec::new();
        c.run(engine, lines.clone(), shared, |i, r| {
            order.push(i);
            out[i] = Some(r.expect("classified"));
        })
        .expect("runs");
        assert_eq!(order, (0..lines.len()).collect::<Vec<_>>(), "results come in input order");
        out.into_iter().map(|p| p.unwrap()).collect::<Vec<_>>()
    };
    let batched = collect(&mut engine, true);
    let single = collect(&mut engine, false);
    assert!(c.describe().contains("calibrated"), "{}", c.describe());
    for (b, s) in batched.iter().zip(&single) {
        assert_eq!(b.label, s.label);
        assert!((b.probs[0] - s.probs[0]).abs() < 0.1, "{b:?} vs {s:?}");
    }
}

#[test]
fn chinese_head_train_save_load_predict() {
    let s = Sandbox::new();
    let head = s.path("zh-head.json");
    let mut c = s.moat();
    c.args(["-m", "smollm2-135m", "classify", "train", "--heldout", "0", "-o"])
        .arg(&head)
        .arg(format!("{FIXTURES}/zh_train.tsv"));
    let o = run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    assert_eq!(saved["provenance"]["model"], "smollm2-135m");
    assert_eq!(saved["provenance"]["model_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(saved["provenance"]["training_set"], "zh_train.tsv");
    assert_eq!(saved["labels"], serde_json::json!(["positive", "negative"]));

    let mut c = s.moat();
    c.args(["classify", "--format", "jsonl", "--head"]).arg(&head);
    let o = run(c, "质量很好，非常满意\n太差了，很失望，差评\n".as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let labels: Vec<String> = jsonl(&o).iter().map(|r| r["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels, ["positive", "negative"]);
}

#[test]
fn eval_report_and_json() {
    let s = Sandbox::new();
    let o = run(classify(&s, &["--eval", "--json", &format!("{FIXTURES}/en_eval.tsv")]), b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["metrics"]["total"], 4);
    assert_eq!(j["metrics"]["accuracy"], 1.0);
    let o = run(classify(&s, &["--eval", &format!("{FIXTURES}/en_eval.tsv")]), b"");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("accuracy  1.000  (4 / 4)") && text.contains("confusion") && text.contains("F1 per class"),
        "{text}"
    );
}

#[test]
fn bad_lines_get_an_error_field_and_the_rest_completes() {
    let s = Sandbox::new();
    let mut input = Vec::new();
    input.extend_from_slice(b"Great product, works perfectly.\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"bad \xff\xfe utf8\n");
    input.extend_from_slice(b"nul\0byte\n");
    input.extend(std::iter::repeat_n(b'a', 1 << 20));
    input.extend_from_slice(b"\nHorrible, it broke immediately.\n");
    let o = run(classify(&s, &["--format", "jsonl"]), &input);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows = jsonl(&o);
    assert_eq!(rows.len(), 6);
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
    assert_eq!(rows[0]["label"], "positive");
    assert!(rows[1]["error"].as_str().unwrap().contains("empty"));
    assert!(rows[2]["error"].as_str().unwrap().contains("UTF-8"));
    assert!(rows[3]["error"].as_str().unwrap().contains("NUL"));
    assert!(rows[4]["label"].is_string(), "a 1 MB line is truncated, not rejected: {}", rows[4]);
    assert_eq!(rows[5]["label"], "negative");
    assert!(stderr(&o).contains("3 of 6 line(s) could not be classified"), "{}", stderr(&o));

    // A TSV row with the wrong number of columns.
    let o =
        run(classify(&s, &["--input-format", "tsv", "--format", "jsonl"]), b"id\ttext\n1\tlovely\n2\n3\tdreadful\n");
    assert_eq!(o.status.code(), Some(0));
    let rows = jsonl(&o);
    assert_eq!(rows.len(), 3);
    assert!(rows[1]["error"].as_str().unwrap().contains("columns"));
    assert_eq!(rows[2]["line"], 4);
}

#[test]
fn malformed_eval_files_fail_with_exit_2() {
    let s = Sandbox::new();
    for (file, needle) in [("unknown_label.tsv", "unknown label \"maybe\""), ("short_row.tsv", "line 3")] {
        let o = run(classify(&s, &["--eval", &format!("{FIXTURES}/{file}")]), b"");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.starts_with("moat: ") && err.contains(needle) && err.trim_end().lines().count() == 1, "{err}");
    }
    let o = run(classify(&s, &["--labels", "solo"]), b"x\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("at least two labels"));
}

#[test]
fn any_label_set() {
    let s = Sandbox::new();
    let o = run(
        classify(&s, &["--labels", "sports,politics", "--format", "jsonl"]),
        b"The striker scored twice in the final minutes of the match.\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&o);
    assert!(rows[0]["probs"]["politics"].is_number());
    assert_eq!(rows[0]["label"], "sports");
}

/// Issue 12: a quoted CSV field over two lines became an error row plus a row whose id was
/// "first great"; now it is one record on its first line, and `--eval` reads the file.
#[test]
fn csv_quoted_line_break_is_one_record_issue_12() {
    let s = Sandbox::new();
    let file = format!("{FIXTURES}/issue12_quoted_newline.csv");
    let o = run(classify(&s, &["--input-format", "csv", "--id-column", "id", "--format", "jsonl", &file]), b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&o);
    let got: Vec<(u64, &str)> = rows.iter().map(|r| (r["line"].as_u64().unwrap(), r["id"].as_str().unwrap())).collect();
    assert_eq!(got, [(2, "1"), (3, "3"), (5, "4")]);
    for r in &rows {
        assert!(r.get("error").is_none() && r["label"].is_string(), "{r}");
    }
    assert_eq!(rows[1]["text"], "Two lines here:\nfirst great, then boring");
    assert!(!stderr(&o).contains("could not be classified"), "{}", stderr(&o));

    let o = run(classify(&s, &["--eval", "--json", &file]), b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["metrics"]["total"], 3);
}

/// Broken CSV quoting in labelled data stops with the record's first line, before any model loads.
#[test]
fn malformed_csv_records_stop_labelled_runs() {
    let s = Sandbox::new();
    let bad = s.path("bad.csv");
    std::fs::write(&bad, "text,label\nLovely.,positive\n\"Never closed,negative\nAwful.,negative\n").unwrap();
    let bad = bad.to_str().unwrap();
    let good = format!("{FIXTURES}/en_eval.tsv");
    let mut train = s.moat();
    train.args(["-m", "smollm2-135m", "classify", "train", "-o"]).arg(s.path("h.json")).arg(bad);
    for c in [
        classify(&s, &["--eval", bad]),
        classify(&s, &["--bench", bad]),
        classify(&s, &["--examples", bad, &good]),
        train,
    ] {
        let o = run(c, b"");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.starts_with("moat: line 3: a quoted field is never closed (lines 3-4"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// CRLF, a lone CR and a UTF-8 BOM read like plain LF; UTF-16 is refused as a whole.
#[test]
fn crlf_bom_and_utf16_inputs() {
    let s = Sandbox::new();
    let input = b"\xEF\xBB\xBFGreat product, works perfectly.\r\nHorrible, it broke immediately.\rA wonderful, moving film.\r\n";
    let o = run(classify(&s, &["--format", "jsonl"]), input);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = jsonl(&o);
    let got: Vec<(u64, &str)> =
        rows.iter().map(|r| (r["line"].as_u64().unwrap(), r["text"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        [
            (1, "Great product, works perfectly."),
            (2, "Horrible, it broke immediately."),
            (3, "A wonderful, moving film.")
        ]
    );

    // The evaluation fixture with a BOM and CRLF gives the same report.
    let eval = std::fs::read_to_string(format!("{FIXTURES}/en_eval.tsv")).unwrap();
    let crlf = s.path("crlf.tsv");
    std::fs::write(&crlf, format!("\u{feff}{}", eval.replace('\n', "\r\n"))).unwrap();
    let o = run(classify(&s, &["--eval", "--json", crlf.to_str().unwrap()]), b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((j["metrics"]["total"].as_u64(), j["metrics"]["accuracy"].as_f64()), (Some(4), Some(1.0)));

    // UTF-16: one line naming the file (or stdin), exit 2, for every reader.
    let utf16 = s.path("utf16.tsv");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(eval.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&utf16, &bytes).unwrap();
    let f = utf16.to_str().unwrap();
    let mut train = s.moat();
    train.args(["-m", "smollm2-135m", "classify", "train", "-o"]).arg(s.path("h.json")).arg(f);
    let good = format!("{FIXTURES}/en_eval.tsv");
    for c in [classify(&s, &["--eval", f]), classify(&s, &[f]), classify(&s, &["--examples", f, &good]), train] {
        let o = run(c, b"");
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o), format!("moat: {f} is UTF-16; save it as UTF-8\n"));
    }
    // Without a BOM, by its NUL pattern, on stdin.
    let be: Vec<u8> = "Great product\nAwful\n".encode_utf16().flat_map(u16::to_be_bytes).collect();
    let o = run(classify(&s, &[]), &be);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o), "moat: stdin is UTF-16; save it as UTF-8\n");
}
