//! Public API behaviour on the built-in library, through the same entry points moat's CLI uses.

use moat::prompts::*;

const ARTICLE: &str = "ClaimPilot charges EUR 0.40 per claim. Two pilots with mid-size insurers started in 2024.";

fn feasibility_replies() -> Vec<&'static str> {
    vec![
        r#"{"facts": [{"statement": "Charges EUR 0.40 per claim", "kind": "metric", "sources": ["c01"]}], "open_questions": []}"#,
        r#"{"trends": [{"name": "Claims automation", "direction": "up", "impact": "high", "evidence": ["c01"]}]}"#,
        r#"{"risks": [{"id": "R1", "category": "legal", "description": "Consent.", "likelihood": 4, "impact": 5, "mitigation": "Anonymise", "evidence": []}], "summary": "Legal."}"#,
        r#"{"market_demand": 5, "competition": 4, "technical": 4, "financial": 4, "risk": 3}"#,
        "## Bottom line\nGo.",
    ]
}

#[test]
fn script_runs_with_param_precedence_and_formats() {
    let lib = Library::builtin();
    let mut gen = MockGenerator::new(feasibility_replies());
    let vars = vec![("company".to_string(), "ClaimPilot".to_string())];
    let cli = Params { seed: Some(42), ..Default::default() };
    let r = run_script(&lib, "scripts/ai-startup-feasibility", &vars, ARTICLE, Lang::En, &cli, Some(20_000), &mut gen)
        .unwrap();
    // facts: prompt file temperature 0.0, step temperature 0.0, max_tokens from the prompt file, seed from CLI.
    assert_eq!(
        gen.requests[0].params,
        Params { temperature: Some(0.0), max_tokens: Some(1400), seed: Some(42), ..Default::default() }
    );
    // trends: the script's [model] temperature 0.2 beats nothing set on the step; prompt file says 0.2 too.
    assert_eq!(gen.requests[1].params.temperature, Some(0.2));
    // score: feasibility's own seed 7 is overridden by the CLI seed.
    assert_eq!(gen.requests[3].params.seed, Some(42));
    assert!(gen.requests[3].json_schema.as_deref().unwrap().contains("market_demand"));
    assert_eq!(gen.requests.len(), 5, "gaps must be skipped");
    // 0.25*5 + 0.2*4*3 + 0.15*3 = 4.1
    assert_eq!(r.computed["score.weighted_score"], serde_json::json!(4.1));
    assert_eq!(r.computed["score.verdict"], "go");
    assert_eq!(r.result_step.as_deref(), Some("brief"));
    assert!(r.step("gaps").unwrap().skipped);
    assert_eq!(r.format(OutputFormat::Text), "## Bottom line\nGo.");
    let json: serde_json::Value = serde_json::from_str(&r.format(OutputFormat::Json)).unwrap();
    assert_eq!(json["result"]["output"], "## Bottom line\nGo.");
    assert_eq!(json["computed"]["risks.exposure"], 20);
    let view = r.format(OutputFormat::View);
    assert!(view.starts_with("# Feasibility report: ClaimPilot"), "{view}");
    assert!(view.contains("Verdict: **go**"), "{view}");
    let trace: serde_json::Value = serde_json::from_str(&r.format(OutputFormat::Trace)).unwrap();
    assert_eq!(trace["steps"].as_array().unwrap().len(), 6);
    assert_eq!(trace["steps"][5]["skipped"], true);
}

#[test]
fn write_outputs_is_atomic_and_complete() {
    let lib = Library::builtin();
    let mut gen = MockGenerator::new(feasibility_replies());
    let vars = vec![("company".to_string(), "ClaimPilot".to_string())];
    let r = run_script(
        &lib,
        "scripts/ai-startup-feasibility",
        &vars,
        ARTICLE,
        Lang::En,
        &Params::default(),
        None,
        &mut gen,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let written = write_outputs(&out, &r).unwrap();
    let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for n in ["facts.md", "facts.json", "score.json", "brief.md", "result.md", "trace.json"] {
        assert!(names.contains(&n.to_string()), "{names:?}");
    }
    assert!(!names.contains(&"gaps.md".to_string()));
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), names.len(), "no temp files left behind: {left:?}");
    let score: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("score.json")).unwrap()).unwrap();
    assert_eq!(score["verdict"], "go");
}

#[test]
fn plain_prompt_runs_as_one_step_script_and_alone() {
    let lib = Library::builtin();
    let reply = r#"{"strengths": [{"point": "Data", "evidence": ["c01"]}], "weaknesses": [], "opportunities": [], "threats": [{"point": "Big tech", "evidence": []}]}"#;
    let vars = vec![("subject".to_string(), "ClaimPilot".to_string())];
    let mut gen = MockGenerator::new([reply]);
    let s = run_script(&lib, "market/swot", &vars, ARTICLE, Lang::En, &Params::default(), None, &mut gen).unwrap();
    assert_eq!(s.steps.len(), 1);
    assert!(s.format(OutputFormat::View).contains("## SWOT: ClaimPilot"));
    assert!(s.format(OutputFormat::View).contains("**Strengths**<br>Data [c01] |"), "{}", s.format(OutputFormat::View));
    let mut gen = MockGenerator::new([reply]);
    let r = run_prompt(&lib, "market/swot", &vars, ARTICLE, Lang::Zh, &Params::default(), None, &mut gen).unwrap();
    assert!(r.format(OutputFormat::View).contains("## SWOT 分析：ClaimPilot"));
    assert!(gen.requests[0].user.contains("为ClaimPilot做 SWOT 分析"));
    assert_eq!(r.format(OutputFormat::Json), serde_json::to_string_pretty(r.json.as_ref().unwrap()).unwrap());
}

#[test]
fn unknown_id_suggests_and_exits_2() {
    let lib = Library::builtin();
    let mut gen = MockGenerator::default();
    let e =
        run_prompt(&lib, "market/risk-registr", &[], "x", Lang::En, &Params::default(), None, &mut gen).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("did you mean `market/risk-register`"), "{e}");
}

#[test]
fn usage_line_lists_required_first() {
    let lib = Library::builtin();
    let p = lib.prompt("market/risk-register").unwrap();
    assert_eq!(
        usage_line(&p),
        "usage: moat run market/risk-register -v subject=<ClaimPilot> [-v categories=technical,market,legal,financial,operational] [-v max_risks=5] < input.txt"
    );
}

#[test]
fn embedded_test_runner_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        r#"
format = 1
[prompt]
user = "Hello {{ input }}"
[[tests]]
name = "wrong expectation"
input = "world"
[[tests.assert]]
type = "rendered-contains"
value = "goodbye"
[[tests]]
name = "right expectation"
input = "world"
[[tests.assert]]
type = "rendered-contains"
value = "Hello world"
[[tests]]
name = "model only"
requires_model = true
[[tests.assert]]
type = "contains"
value = "x"
"#,
    )
    .unwrap();
    let lib = Library::load(&[dir.path().to_path_buf()]).unwrap();
    let out = run_file_tests(&lib, "bad");
    assert!(matches!(&out[0].status, TestStatus::Failed(m) if m[0].contains("does not contain `goodbye`")), "{out:?}");
    assert_eq!(out[1].status, TestStatus::Passed);
    assert!(matches!(out[2].status, TestStatus::Skipped(_)));
}

#[test]
fn user_prompt_dir_can_shadow_a_builtin_used_by_a_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("market")).unwrap();
    // A user copy with a new major version breaks the `@2` pin in the scripts: refused, not silently used.
    let builtin = Library::builtin().get("market/trends").unwrap().text.clone();
    std::fs::write(
        dir.path().join("market/trends.toml"),
        builtin.replace("version = \"2.0.0\"", "version = \"3.0.0\""),
    )
    .unwrap();
    let lib = Library::load(&[dir.path().to_path_buf()]).unwrap();
    assert!(lib.get("market/trends").unwrap().shadows);
    let problems = lint(&lib, "scripts/ai-startup-feasibility");
    assert!(
        problems.iter().any(|p| p.message.contains("wants major version 2, but this file has version 3.0.0")),
        "{problems:?}"
    );
}
