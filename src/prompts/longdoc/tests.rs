use super::*;
use crate::prompts::params::Reply;
use crate::prompts::script::{run_script_with, RunOptions};
use crate::prompts::vars::from_cli;

const FACTS: &str = r#"
format = 1
version = "1.0.0"
[input]
required = true
[model]
max_tokens = 300
[prompt]
user = "List facts.\nText:\n{{ input }}"
[output]
format = "json"
schema = '{"type":"object","required":["facts"],"properties":{"facts":{"type":"array","maxItems":8,"items":{"type":"object","required":["statement"],"properties":{"statement":{"type":"string","maxLength":200},"sources":{"type":"array","maxItems":2,"items":{"type":"string","format":"source-id"}}}}}}}'
"#;

const BRIEF: &str = r#"
format = 1
version = "1.0.0"
[input]
required = true
max_chars = 500
long = "map-reduce"
map = "t/facts"
[prompt]
user = "Brief.\n{{ input }}"
[output]
format = "json"
schema = '{"type":"object","required":["points"],"properties":{"points":{"type":"array","maxItems":3,"items":{"type":"object","required":["point","evidence"],"properties":{"point":{"type":"string","maxLength":100},"evidence":{"type":"array","maxItems":2,"items":{"type":"string","format":"source-id"}}}}}}}'
"#;

fn library(brief: &str) -> (tempfile::TempDir, Library) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(dir.path().join("t/facts.toml"), FACTS).unwrap();
    std::fs::write(dir.path().join("t/brief.toml"), brief).unwrap();
    let lib = Library::load(&[dir.path().to_path_buf()]).unwrap();
    (dir, lib)
}

/// Twelve sections, one "fact:" sentence each among filler; the last one is planted.
fn document() -> String {
    let mut doc = String::from("# Report\n\n");
    for k in 1..=12 {
        doc.push_str(&format!("## Section {k}\n\n"));
        doc.push_str("The market kept moving while analysts watched the numbers closely. ");
        if k == 12 {
            doc.push_str("Fact: Nordhavn Mutual signed for 4.2 million a year. ");
        } else {
            doc.push_str(&format!("Fact: metric {k} rose to {} units. ", k * 7));
        }
        doc.push_str("Teams argued about pricing, hiring and the roadmap for another quarter.\n\n");
    }
    doc
}

/// The ids a request's schema allows, from its `enum`.
fn allowed(req: &GenRequest) -> Vec<String> {
    let schema = req.json_schema.as_deref().unwrap_or("");
    let Some(at) = schema.find("\"enum\": ") else { return Vec::new() };
    let rest = &schema[at + 8..];
    let end = rest.find(']').unwrap();
    serde_json::from_str(&rest[..=end]).unwrap()
}

/// A deterministic model: a map request answers each "Fact:" sentence of its chunk; a reduce request
/// (fact lines) keeps `keep` of each group's lines, citing the first id it may; the prompt cites the
/// first allowed id.
struct Mock {
    keep: usize,
    requests: Vec<(String, GenRequest)>,
    fail_reduce: bool,
}

impl StepGen for Mock {
    fn generate(&mut self, step: &str, req: &GenRequest) -> Result<Reply, String> {
        self.requests.push((step.to_string(), req.clone()));
        let ids = allowed(req);
        if step == "t/facts" {
            let text = req.user.split_once("Text:\n").map(|x| x.1).unwrap_or("");
            let reduce = text.trim_start().starts_with("- ");
            if reduce && self.fail_reduce {
                return Ok(Reply::from("not json"));
            }
            let facts: Vec<Value> = if reduce {
                text.lines()
                    .take(self.keep)
                    .filter_map(|l| l.split_once("] "))
                    .map(|(_, s)| serde_json::json!({"statement": s, "sources": [ids[0]]}))
                    .collect()
            } else {
                text.split(". ")
                    .filter_map(|s| s.find("Fact: ").map(|i| &s[i + 6..]))
                    .map(|s| serde_json::json!({"statement": s.trim_end_matches('.'), "sources": []}))
                    .collect()
            };
            return Ok(Reply::from(serde_json::json!({ "facts": facts }).to_string()));
        }
        let ev: Vec<&String> = ids.iter().take(1).collect();
        Ok(Reply::from(serde_json::json!({"points": [{"point": "p", "evidence": ev}]}).to_string()))
    }
}

fn run(
    lib: &Library,
    doc: &str,
    mock: &mut Mock,
    long: LongOptions,
) -> Result<crate::prompts::ScriptResult, PromptError> {
    let given = from_cli(&[]);
    let mut opts = RunOptions { long, progress: None };
    run_script_with(lib, "t/brief", &given, doc, Lang::En, &Params::default(), None, mock, &mut opts)
}

#[test]
fn every_chunk_is_mapped_with_its_own_id_and_the_prompt_cites_only_real_ids() {
    let (_d, lib) = library(&BRIEF.replace("max_chars = 500", "max_chars = 2000"));
    let mut mock = Mock { keep: 2, requests: Vec::new(), fail_reduce: false };
    let r = run(&lib, &document(), &mut mock, LongOptions { chunk_tokens: Some(40), ..Default::default() }).unwrap();
    let long = r.long.as_ref().expect("the input was map-reduced");
    assert!(long.chunks.len() >= 12, "{} chunks", long.chunks.len());
    assert_eq!(long.facts_extracted, long.chunks.iter().map(|c| c.facts).sum::<usize>());
    assert!(long.rounds.is_empty(), "the facts fit at once");
    // Every map request shows exactly its chunk's id. The model is not asked for ids there (moat attaches the
    // chunk's), nor for more than MAP_ITEMS facts: every token it writes costs time.
    let maps: Vec<&GenRequest> = mock.requests.iter().filter(|(s, _)| s == "t/facts").map(|(_, r)| r).collect();
    assert_eq!(maps.len(), long.chunks.len());
    for (req, c) in maps.iter().zip(&long.chunks) {
        assert!(req.user.contains(&format!("[{}] ", c.id)), "{}", req.user);
        let schema: Value = serde_json::from_str(req.json_schema.as_deref().unwrap()).unwrap();
        let facts = &schema["properties"]["facts"];
        assert_eq!(facts["maxItems"], MAP_ITEMS, "{schema}");
        assert!(facts["items"]["properties"].get("sources").is_none(), "{schema}");
        assert!(!req.json_schema.as_deref().unwrap().contains(evidence::SOURCE_ID));
    }
    // The prompt's input is the merged facts behind their ids; its schema allows exactly those ids.
    let step = &r.steps[0];
    assert!(step.user.contains("Nordhavn Mutual signed for 4.2 million a year"), "{}", step.user);
    let (_, last) = mock.requests.last().unwrap();
    let shown = evidence::ids_in(&last.user, &r.sources);
    assert!(!shown.is_empty());
    assert_eq!(allowed(last), shown);
    assert_eq!(step.cited, vec![shown[0].clone()]);
    assert!(r.sources.iter().any(|s| s.cited && s.id == shown[0]));
    // The planted fact carries the id of the chunk that holds it, and that chunk spans the planted text.
    let line = step.user.lines().find(|l| l.contains("Nordhavn")).unwrap();
    let id = &evidence::ids_in(line, &r.sources)[0];
    let src = r.sources.iter().find(|s| &s.id == id).unwrap();
    let doc = document();
    let text: String = doc.chars().skip(src.span[0]).take(src.span[1] - src.span[0]).collect();
    assert!(text.contains("Nordhavn"), "{id}: {text}");
}

#[test]
fn facts_that_do_not_fit_are_reduced_in_rounds_citing_only_their_groups_ids() {
    let (_d, lib) = library(&BRIEF.replace("max_chars = 500", "max_chars = 300"));
    let mut mock = Mock { keep: 2, requests: Vec::new(), fail_reduce: false };
    let r = run(&lib, &document(), &mut mock, LongOptions { chunk_tokens: Some(40), ..Default::default() }).unwrap();
    let long = r.long.as_ref().unwrap();
    assert!(!long.rounds.is_empty(), "{long:?}");
    assert!(long.rounds[0].facts_out < long.rounds[0].facts_in);
    assert!(long.material_chars <= long.target_chars, "{long:?}");
    for (step, req) in &mock.requests {
        if step == "t/facts" && req.user.contains("- [") {
            let shown = evidence::ids_in(&req.user, &r.sources);
            assert_eq!(allowed(req), shown, "a reduce group may cite only the ids it shows");
        }
    }
}

#[test]
fn a_fact_planted_in_the_last_chunk_survives_when_reduction_fails() {
    let (_d, lib) = library(&BRIEF.replace("max_chars = 500", "max_chars = 300"));
    let mut mock = Mock { keep: 2, requests: Vec::new(), fail_reduce: true };
    let r = run(&lib, &document(), &mut mock, LongOptions { chunk_tokens: Some(40), ..Default::default() }).unwrap();
    let long = r.long.as_ref().unwrap();
    assert!(long.facts_dropped > 0, "{long:?}");
    assert!(long.notes.iter().any(|n| n.contains("did not fit")), "{:?}", long.notes);
    let user = &r.steps[0].user;
    assert!(user.contains("metric 1 rose") && user.contains("Nordhavn"), "the cut keeps both ends: {user}");
}

#[test]
fn spread_order_starts_with_both_ends() {
    assert_eq!(spread_order(5), vec![0, 3, 2, 4, 1]);
    assert_eq!(spread_order(1), vec![0]);
    assert!(spread_order(0).is_empty());
    let mut seen = spread_order(37);
    seen.sort();
    assert_eq!(seen, (0..37).collect::<Vec<_>>());
}

#[test]
fn duplicates_merge_their_sources() {
    let f = |s: &str, id: &str| Fact { statement: s.into(), sources: vec![id.into()], rank: 0 };
    let merged = dedupe(vec![
        f("Revenue grew 40% in 2025.", "c02"),
        f("revenue grew 40 % in 2025", "c05"),
        f("Churn fell to 3%.", "c03"),
        f("营收增长40%。", "c04"),
        f("营收增长 40%", "c01"),
    ]);
    assert_eq!(merged.len(), 3, "{merged:?}");
    assert_eq!(merged[0].sources, vec!["c02", "c05"]);
    assert_eq!(merged[2].sources, vec!["c01", "c04"]);
}

#[test]
fn too_many_chunks_and_oversized_chunks_are_refused_before_generating() {
    let (_d, lib) = library(BRIEF);
    let mut mock = Mock { keep: 2, requests: Vec::new(), fail_reduce: false };
    let e = run(&lib, &document(), &mut mock, LongOptions { chunk_tokens: Some(40), max_chunks: Some(3), n_ctx: 0 })
        .unwrap_err();
    assert!(e.to_string().contains("more than --max-chunks 3"), "{e}");
    assert_eq!(e.exit_code(), 2);
    let e =
        run(&lib, &document(), &mut mock, LongOptions { chunk_tokens: Some(4000), n_ctx: 2048, ..Default::default() })
            .unwrap_err();
    assert!(e.to_string().contains("does not fit the 2048-token context"), "{e}");
    assert!(mock.requests.is_empty());
}

#[test]
fn ctrl_c_mid_map_says_how_far_it_got() {
    let (_d, lib) = library(BRIEF);
    let mut calls = 0;
    let mut gen = |step: &str, _: &GenRequest| {
        calls += 1;
        match (step, calls) {
            ("t/facts", 1..=3) => Ok(Reply::from(r#"{"facts": [{"statement": "x"}]}"#)),
            _ => Err("interrupted".to_string()),
        }
    };
    let given = from_cli(&[]);
    let mut opts = RunOptions { long: LongOptions { chunk_tokens: Some(40), ..Default::default() }, progress: None };
    let e =
        run_script_with(&lib, "t/brief", &given, &document(), Lang::En, &Params::default(), None, &mut gen, &mut opts)
            .unwrap_err();
    assert_eq!(e.exit_code(), crate::exit::INTERRUPTED);
    assert!(e.to_string().starts_with("interrupted after 3 of "), "{e}");
}

#[test]
fn short_input_is_tagged_by_passage_when_the_prompt_cites() {
    let (_d, lib) = library(BRIEF);
    let mut mock = Mock { keep: 2, requests: Vec::new(), fail_reduce: false };
    let input = "ClaimPilot sells claims triage.\n\nIt has 12 insurers as customers.";
    let r = run(&lib, input, &mut mock, LongOptions::default()).unwrap();
    assert!(r.long.is_none());
    let (_, req) = mock.requests.last().unwrap();
    assert!(req.user.contains("[c01] ClaimPilot sells claims triage."), "{}", req.user);
    assert_eq!(allowed(req), r.sources.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    let view = r.format(crate::prompts::OutputFormat::View);
    assert!(view.contains("## Sources") && view.contains("| c01 |"), "{view}");
}

#[test]
fn pass_output_keeps_required_fields_and_schema_order() {
    let spec = crate::prompts::format::OutputSpec {
        format: Format::Json,
        schema: Some(
            r#"{"type":"object","required":["facts"],"properties":{"facts":{"type":"array","maxItems":12,"items":{"type":"object","required":["statement","kind","sources"],"properties":{"statement":{"type":"string"},"kind":{"enum":["a","b"]},"sources":{"type":"array","items":{"type":"string","format":"source-id"}}}}},"open_questions":{"type":"array"}}}"#
                .into(),
        ),
        ..Default::default()
    };
    let map: Value = serde_json::from_str(pass_output(&spec, Stage::Map).schema.as_deref().unwrap()).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&map["properties"]), ["facts"], "optional fields go");
    // The engine's grammar follows the schema's property order, so the model still writes the statement first.
    assert_eq!(keys(&map["properties"]["facts"]["items"]["properties"]), ["statement", "kind"]);
    assert_eq!(map["properties"]["facts"]["items"]["required"], serde_json::json!(["statement", "kind"]));
    assert_eq!(map["properties"]["facts"]["maxItems"], MAP_ITEMS);
    // A reduce round keeps the ids: there the model chooses which of its group's ids a merged fact has.
    let reduce: Value = serde_json::from_str(pass_output(&spec, Stage::Reduce(1)).schema.as_deref().unwrap()).unwrap();
    assert!(reduce["properties"]["facts"]["items"]["properties"].get("sources").is_some());
    assert_eq!(reduce["properties"]["facts"]["maxItems"], 12);
}

#[test]
fn facts_that_say_nothing_are_dropped() {
    let reply = serde_json::json!({"facts": [
        {"statement": "2026-04-30"},
        {"statement": "c123456789"},
        {"statement": "Report › Section 12"},
        {"statement": "section 12"},
        {"statement": "Nordhavn Mutual signed for 4.2 million a year"},
        {"statement": "每件收费 0.4 欧元"},
    ]});
    let ids = vec!["c12".to_string()];
    let echo = vec!["Report".to_string(), "Section 12".to_string()];
    let kept: Vec<String> = facts_of(&reply, Some(&ids), &ids, &echo).into_iter().map(|f| f.statement).collect();
    assert_eq!(kept, ["Nordhavn Mutual signed for 4.2 million a year", "每件收费 0.4 欧元"]);
}
