//! `moat prompts` and `moat run` as a user runs them: real-model smoke runs of one JSON prompt and
//! one script, and each kind of bad input with its exit code.

use crate::common::{fixture, moat, stderr as err, Sandbox};

const ARTICLE: &str = "ClaimPilot is a Berlin start-up that automates insurance claims handling with a small \
language model. It charges EUR 0.40 per processed claim. Two pilots with mid-size insurers started in 2024 and \
cut handling time by 35%. Competitors include Shift Technology and Tractable. The team has 12 people.\n";

fn schema_of(id: &str) -> serde_json::Value {
    let lib = moat::prompts::Library::builtin();
    let p = lib.prompt(id).unwrap();
    serde_json::from_str(p.file.output.schema.as_deref().unwrap()).unwrap()
}

#[test]
fn a_json_prompt_runs_on_the_default_model_and_validates() {
    let s = Sandbox::new();
    let o = moat(&s, &["run", "market/swot", "-v", "subject=ClaimPilot", "--as", "json", "--temp", "0"], ARTICLE);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let mut result = out["result"].clone();
    // Values the program computed sit beside the model's; the schema covers the model's part.
    for name in out["computed"].as_object().unwrap().keys() {
        result.as_object_mut().unwrap().remove(name.rsplit('.').next().unwrap());
    }
    moat::prompts::validate(&schema_of("market/swot"), &result).unwrap_or_else(|e| panic!("{e:?}: {result}"));
}

#[test]
fn a_script_runs_end_to_end_with_a_trace() {
    let s = Sandbox::new();
    let dir = s.path("out");
    let o = moat(
        &s,
        &[
            "run",
            "scripts/ai-startup-feasibility",
            "-v",
            "company=ClaimPilot",
            "--as",
            "trace",
            "--temp",
            "0",
            "--out-dir",
        ],
        "",
    );
    // `--out-dir` needs its value: a usage error, before any model work.
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let o = moat(
        &s,
        &[
            "run",
            "scripts/ai-startup-feasibility",
            "-v",
            "company=ClaimPilot",
            "--as",
            "trace",
            "--temp",
            "0",
            "--out-dir",
            dir.to_str().unwrap(),
        ],
        ARTICLE,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let trace: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON trace");
    let steps = trace["steps"].as_array().expect("steps");
    let ran: Vec<&str> = steps.iter().filter_map(|st| st["id"].as_str()).collect();
    assert!(ran.starts_with(&["facts", "trends", "risks", "score"]), "{ran:?}");
    // The weighted score is the program's arithmetic on the model's sub-scores.
    let score = steps.iter().find(|st| st["id"] == "score").unwrap();
    let w = score["computed"]["weighted_score"].as_f64().expect("a computed score");
    assert!((1.0..=5.0).contains(&w), "{score}");
    assert!(dir.join("trace.json").is_file() && dir.join("score.json").is_file());
    let leftovers =
        std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with('.')).count();
    assert_eq!(leftovers, 0, "no temp files left");
}

#[test]
fn library_commands_list_show_lint_and_test() {
    let s = Sandbox::new();
    let o = moat(&s, &["prompts", "list", "--json"], "");
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = list.as_array().unwrap();
    assert!(rows.iter().filter(|r| r["kind"] == "prompt").count() >= 14);
    assert!(rows.iter().filter(|r| r["kind"] == "script").count() >= 3);
    assert!(rows.iter().all(|r| r["languages"].as_array().unwrap().len() == 2));
    let o = moat(&s, &["prompts", "list", "--tag", "risk"], "");
    assert!(String::from_utf8_lossy(&o.stdout).contains("market/risk-register"));
    let o = moat(&s, &["prompts", "show", "market/risk-register"], "");
    assert!(String::from_utf8_lossy(&o.stdout).contains("usage: moat run market/risk-register"));
    assert_eq!(moat(&s, &["prompts", "lint"], "").status.code(), Some(0));
    let o = moat(&s, &["prompts", "test"], "");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_user_prompt_shadows_a_built_in() {
    let s = Sandbox::new();
    let dir = s.path("prompts/market");
    std::fs::create_dir_all(&dir).unwrap();
    let builtin = moat::prompts::Library::builtin().get("market/swot").unwrap().text.clone();
    std::fs::write(dir.join("swot.toml"), builtin.replace("title = \"SWOT\"", "title = \"My SWOT\"")).unwrap();
    let o = moat(&s, &["prompts", "list"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("My SWOT") && out.contains("shadows built-in"), "{out}");
}

#[test]
fn bad_inputs_get_one_line_and_the_documented_code() {
    let s = Sandbox::new();
    let fixtures = fixture!("prompts");
    let cases: Vec<(Vec<String>, &str, i32, &str)> = vec![
        (vec!["run".into(), "market/swat".into()], "x", 2, "did you mean `market/swot`"),
        (vec!["run".into(), "market/swot".into()], "x", 2, "usage: moat run market/swot"),
        (
            vec![
                "run".into(),
                "market/swot".into(),
                "-v".into(),
                "subject=A".into(),
                "-v".into(),
                "max_per_quadrant=9".into(),
            ],
            "x",
            2,
            "max_per_quadrant",
        ),
        (vec!["run".into(), format!("{fixtures}/broken.toml")], "x", 2, "broken.toml:3:"),
        (vec!["run".into(), format!("{fixtures}/later-step.toml")], "x", 2, "has not run yet"),
        (vec!["run".into(), "market/swot".into(), "-v".into(), "subject=A".into()], "", 2, "input"),
        (vec!["run".into(), "market/swot".into(), "-v".into(), "subject".into()], "x", 2, "key=value"),
    ];
    for (args, stdin, code, needle) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = moat(&s, &a, stdin);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: expected {needle:?} in {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{args:?}: one line: {e}");
    }
    // Input far beyond the prompt's own limit is map-reduced; a cap on the chunks refuses it in one
    // line before any generation, and a chunk size the context cannot hold likewise.
    let huge = "word ".repeat(20_000);
    let o = moat(&s, &["run", "market/swot", "-v", "subject=A", "--max-chunks", "3"], &huge);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("more than --max-chunks 3") && !e.contains("map: 0/"), "{e}");
    let o = moat(&s, &["run", "market/swot", "-v", "subject=A", "-c", "2048", "--chunk-tokens", "5000"], &huge);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("does not fit the 2048-token context"), "{}", err(&o));
}

#[test]
fn output_that_never_validates_exits_3() {
    let s = Sandbox::new();
    // Eight tokens cannot hold even the shortest valid SWOT object, so steering cannot close it: the
    // reply is cut, and the error says so (no retry with the same budget).
    let o = moat(&s, &["run", "market/swot", "-v", "subject=ClaimPilot", "--temp", "0", "-n", "8"], ARTICLE);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("`market/swot`: the reply was cut at max_tokens 8 before its JSON closed"), "{}", err(&o));
    assert_eq!(err(&o).trim_end().lines().count(), 1, "{}", err(&o));
}
