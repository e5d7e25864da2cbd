//! Running one prompt: variables → input budget → rendered messages → generation → JSON check with one retry →
//! computed values → view.

use std::time::Instant;

use serde_json::{Map, Value};

use super::error::{Problem, PromptError};
use super::format::{Format, Long};
use super::library::{Library, Source};
use super::locale::Lang;
use super::params::{GenRequest, Generator, Params};
use super::step::{constrained, generate_checked, load_checked, prepare, prepare_with, request, StepGen, Whole};
use super::template::environment;
use super::vars::from_cli;

#[derive(Debug, Clone)]
pub struct RunResult {
    pub id: String,
    pub version: Option<String>,
    pub source: Source,
    pub lang: Lang,
    pub format: Format,
    pub params: Params,
    pub system: Option<String>,
    pub user: String,
    /// The last reply as the model wrote it (think blocks removed).
    pub output: String,
    /// The validated JSON with computed values merged in (they overwrite model fields of the same name: the
    /// program's arithmetic is authoritative).
    pub json: Option<Value>,
    pub computed: Map<String, Value>,
    pub view: Option<String>,
    pub attempts: u32,
    pub ms: u128,
    pub input_truncated: bool,
    /// The passages of the input replies could cite, marked when one did.
    pub sources: Vec<super::evidence::Passage>,
}

#[allow(clippy::too_many_arguments)]
pub fn run_prompt(
    lib: &Library,
    id_or_path: &str,
    vars: &[(String, String)],
    input: &str,
    lang: Lang,
    cli_params: &Params,
    max_input_chars: Option<usize>,
    gen: &mut dyn Generator,
) -> Result<RunResult, PromptError> {
    let given = from_cli(vars);
    run_prompt_with(lib, id_or_path, &given, input, lang, cli_params, max_input_chars, &mut Whole(gen))
}

/// The request that would be sent, without generating (`--dry-run`, `prompts show --render`, render tests).
pub fn render_request(
    lib: &Library,
    id_or_path: &str,
    vars: &[(String, String)],
    input: &str,
    lang: Lang,
    cli_params: &Params,
    max_input_chars: Option<usize>,
) -> Result<GenRequest, PromptError> {
    let given = from_cli(vars);
    let prompt = load_checked(lib, id_or_path)?;
    let env = environment(lib.partials());
    // Input a map-reduce file takes at any length is not refused here: the run splits it.
    let budget = match prompt.variant(lang)?.input.long_policy() {
        Long::MapReduce => None,
        _ => Some(max_input_chars),
    };
    let p = prepare_with(&env, &prompt, lang, &given, input, budget)?;
    Ok(request(&p, cli_params))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_prompt_with(
    lib: &Library,
    id_or_path: &str,
    given: &[(String, Value)],
    input: &str,
    lang: Lang,
    cli_params: &Params,
    max_input_chars: Option<usize>,
    gen: &mut dyn StepGen,
) -> Result<RunResult, PromptError> {
    let started = Instant::now();
    let prompt = load_checked(lib, id_or_path)?;
    if prompt.file.is_script() {
        return Err(PromptError::Invalid {
            problems: vec![Problem {
                file: prompt.path.clone(),
                pos: None,
                message: format!("`{}` is a script; run it with run_script", prompt.id),
            }],
        });
    }
    let env = environment(lib.partials());
    let file = prompt.variant(lang)?;
    let run_input = super::longdoc::prepare_input(
        &super::longdoc::InputJob {
            lib,
            env: &env,
            owner: &prompt.id,
            spec: &file.input,
            lang,
            cli: cli_params,
            caller_max: max_input_chars,
            cites: super::evidence::cites(file.output.schema.as_deref()),
            opts: &super::longdoc::LongOptions::default(),
        },
        input,
        gen,
        &mut |_| {},
    )?;
    let mut sources = run_input.sources;
    let p = prepare(&env, &prompt, lang, given, &run_input.text, max_input_chars)?;
    let mut req = request(&p, cli_params);
    let spec = constrained(&p.file.output, &mut req, &sources);
    let mut out = generate_checked(&env, &prompt.path, &prompt.id, &spec, req.clone(), &p.ctx, lang, &mut |r| {
        gen.generate(&prompt.id, r)
    })?;
    let ids = super::evidence::cited(p.file.output.schema.as_deref(), out.json.as_mut());
    super::evidence::mark_cited(&mut sources, &ids);
    Ok(RunResult {
        id: prompt.id.clone(),
        version: p.file.version.clone(),
        source: prompt.source.clone(),
        lang,
        format: p.file.output.format,
        params: req.params,
        system: p.system,
        user: p.user,
        output: out.output,
        json: out.json,
        computed: out.computed,
        view: out.view,
        attempts: out.attempts,
        ms: started.elapsed().as_millis(),
        input_truncated: p.truncated || run_input.truncated,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::format::{InputSpec, Truncate};
    use crate::prompts::params::MockGenerator;
    use crate::prompts::params::Reply;
    use crate::prompts::step::budget_input;

    fn lib_with(id: &str, text: &str) -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{id}.toml"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        let lib = Library::load(&[dir.path().to_path_buf()]).unwrap();
        (dir, lib)
    }

    const SCORE: &str = r#"
format = 1
version = "1.0.0"
[input]
required = true
[vars.subject]
required = true
[model]
temperature = 0.2
max_tokens = 300
[prompt]
system = "Score {{ subject }}."
user = "Material:\n{{ input }}"
[output]
format = "json"
schema = '{"type":"object","required":["demand","risk"],"properties":{"demand":{"type":"integer","minimum":1,"maximum":5},"risk":{"type":"integer","minimum":1,"maximum":5}}}'
compute = [
  { name = "weighted_score", expr = "json | weighted_mean({'demand': 0.6, 'risk': 0.4}) | round(2)" },
  { name = "verdict", expr = "'go' if computed.weighted_score >= 3.5 else 'no-go'" },
]
view = "Score {{ json.weighted_score }} → {{ computed.verdict }}"
"#;

    fn vars() -> Vec<(String, String)> {
        vec![("subject".into(), "ClaimPilot".into())]
    }

    #[test]
    fn retry_on_invalid_then_valid_with_computed_score() {
        let (_d, lib) = lib_with("t/score", SCORE);
        let mut gen = MockGenerator::new([
            "Here you go: {\"demand\": 9, \"risk\": 2}",
            "```json\n{\"demand\": 4, \"risk\": 3, \"weighted_score\": 1.0}\n```",
        ]);
        let cli = Params { temperature: Some(0.0), ..Default::default() };
        let r = run_prompt(&lib, "t/score", &vars(), "notes", Lang::En, &cli, None, &mut gen).unwrap();
        assert_eq!(r.attempts, 2);
        assert!(gen.requests[1].user.contains("$.demand: 9 is greater than the maximum 5"), "{}", gen.requests[1].user);
        assert_eq!(
            gen.requests[0].params,
            Params { temperature: Some(0.0), max_tokens: Some(300), ..Default::default() }
        );
        assert!(gen.requests[0].json_schema.as_deref().unwrap().contains("\"demand\""));
        // 4*0.6 + 3*0.4 = 3.6: the model's own 1.0 is overwritten by the program's arithmetic.
        assert_eq!(r.json.as_ref().unwrap()["weighted_score"], serde_json::json!(3.6));
        assert_eq!(r.computed["verdict"], "go");
        assert_eq!(r.view.as_deref(), Some("Score 3.6 → go"));
    }

    /// `market/swot -v max_per_quadrant=2` used to send a schema allowing 5 points a list, and the model wrote 5:
    /// the count a variable asks for is now the schema's `maxItems`, so the grammar stops at it and a longer
    /// reply fails validation.
    #[test]
    fn a_count_variable_caps_the_schema_arrays() {
        let lib = Library::builtin();
        let point = r#"{"point": "p", "evidence": []}"#;
        let three = format!(
            r#"{{"strengths": [{point}, {point}, {point}], "weaknesses": [], "opportunities": [], "threats": []}}"#
        );
        let two =
            format!(r#"{{"strengths": [{point}, {point}], "weaknesses": [], "opportunities": [], "threats": []}}"#);
        let mut gen = MockGenerator::new([three.as_str(), two.as_str()]);
        let given = vec![
            ("subject".to_string(), Value::String("ClaimPilot".into())),
            ("max_per_quadrant".to_string(), Value::from(2)),
        ];
        let r = run_prompt_with(
            &lib,
            "market/swot",
            &given,
            "Exclusive claim data.",
            Lang::En,
            &Params::default(),
            None,
            &mut super::super::step::Whole(&mut gen),
        )
        .unwrap();
        assert_eq!(r.attempts, 2);
        let schema: Value = serde_json::from_str(gen.requests[0].json_schema.as_deref().unwrap()).unwrap();
        for list in ["strengths", "weaknesses", "opportunities", "threats"] {
            assert_eq!(schema["properties"][list]["maxItems"], 2, "{list}");
        }
        assert!(gen.requests[1].user.contains("strengths"), "{}", gen.requests[1].user);
        assert_eq!(r.json.unwrap()["strengths"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn invalid_twice_exits_3() {
        let (_d, lib) = lib_with("t/score", SCORE);
        let mut gen = MockGenerator::new(["{\"demand\": 9, \"risk\": 2}", "not json at all"]);
        let e =
            run_prompt(&lib, "t/score", &vars(), "notes", Lang::En, &Params::default(), None, &mut gen).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("no JSON object"), "{e}");
    }

    /// The field report: `market/risk-register --lang zh` cut by max_tokens used to fail with "missing required
    /// field `risks`; field `category` is not allowed" (the first inner risk, validated as the whole reply).
    #[test]
    fn a_reply_cut_at_max_tokens_says_so_without_retrying() {
        let lib = Library::builtin();
        let cut = r#"{"risks": [{"id": "R1", "category": "legal", "description": "理赔档案含健康数据", "likelihood": 4,
            "impact": 5, "mitigation": "只用脱敏数据"}, {"id": "R2", "category": "market", "description": "保险公"#;
        let mut calls = 0;
        let mut gen = |_: &str, _: &GenRequest| {
            calls += 1;
            Ok(Reply { text: cut.to_string(), cut: Some(crate::prompts::Cut::MaxTokens(700)) })
        };
        let given = vec![("subject".to_string(), Value::String("智理赔".into()))];
        let e = run_prompt_with(
            &lib,
            "market/risk-register",
            &given,
            "智理赔按件收费。",
            Lang::Zh,
            &Params::default(),
            None,
            &mut gen,
        )
        .unwrap_err();
        assert_eq!(calls, 1, "a cut-off reply is not retried with the same budget");
        assert_eq!(e.exit_code(), 3);
        let msg = e.to_string();
        assert!(
            msg.contains("cut at max_tokens 700 before its JSON closed") && msg.contains("raise max_tokens"),
            "{msg}"
        );
        assert!(!msg.contains("missing required field") && !msg.contains("not allowed"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");

        // Without the engine's word on why it stopped, the reply is still never mistaken for its first risk.
        let mut gen = MockGenerator::new([cut, cut]);
        let e = run_prompt(
            &lib,
            "market/risk-register",
            &[("subject".into(), "智理赔".into())],
            "x",
            Lang::Zh,
            &Params::default(),
            None,
            &mut gen,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("unfinished JSON object") && !msg.contains("missing required field"), "{msg}");
        assert!(gen.requests[1].user.contains("unfinished JSON object"), "the retry quotes the real problem");
    }

    #[test]
    fn a_cut_reply_whose_json_closed_is_used() {
        let (_d, lib) = lib_with("t/score", SCORE);
        let mut gen = |_: &str, _: &GenRequest| {
            Ok(Reply { text: "{\"demand\": 4, \"risk\": 2}".into(), cut: Some(crate::prompts::Cut::MaxTokens(12)) })
        };
        let r = run_prompt_with(
            &lib,
            "t/score",
            &[("subject".into(), Value::String("X".into()))],
            "n",
            Lang::En,
            &Params::default(),
            None,
            &mut gen,
        )
        .unwrap();
        assert_eq!(r.json.unwrap()["demand"], 4);
        let mut gen = |_: &str, _: &GenRequest| {
            Ok(Reply { text: "{\"demand\": 4".into(), cut: Some(crate::prompts::Cut::ContextFull(4096)) })
        };
        let e = run_prompt_with(
            &lib,
            "t/score",
            &[("subject".into(), Value::String("X".into()))],
            "n",
            Lang::En,
            &Params::default(),
            None,
            &mut gen,
        )
        .unwrap_err();
        assert!(e.to_string().contains("filled the 4096-token context"), "{e}");
    }

    #[test]
    fn user_input_with_template_syntax_stays_literal() {
        let (_d, lib) = lib_with("t/score", SCORE);
        let req =
            render_request(&lib, "t/score", &vars(), "price is {{ x }} {% if %}", Lang::En, &Params::default(), None)
                .unwrap();
        assert!(req.user.ends_with("price is {{ x }} {% if %}"), "{}", req.user);
        let vars = vec![("subject".to_string(), "{{ input }}".to_string())];
        let req = render_request(&lib, "t/score", &vars, "a", Lang::En, &Params::default(), None).unwrap();
        assert_eq!(req.system.as_deref(), Some("Score {{ input }}."));
    }

    #[test]
    fn input_budget_error_and_truncation() {
        let (_d, lib) = lib_with("t/score", SCORE);
        let e =
            render_request(&lib, "t/score", &vars(), "0123456789", Lang::En, &Params::default(), Some(5)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("input is 10 characters but the limit is 5"), "{e}");
        let e = render_request(&lib, "t/score", &vars(), "  ", Lang::En, &Params::default(), None).unwrap_err();
        assert!(matches!(e, PromptError::InputRequired { .. }));
        let head = InputSpec { max_chars: Some(4), truncate: Truncate::Head, ..Default::default() };
        assert_eq!(budget_input("x", &head, "风险登记表", Some(100)).unwrap(), ("风险登记".to_string(), true));
        let tail = InputSpec { truncate: Truncate::Tail, ..Default::default() };
        assert_eq!(budget_input("x", &tail, "abcdef", Some(2)).unwrap(), ("ef".to_string(), true));
    }

    #[test]
    fn unused_input_is_appended_and_missing_var_gives_usage() {
        let (_d, lib) =
            lib_with("t/plain", "format = 1\n[vars.x]\nrequired = true\n[prompt]\nuser = \"Summarise for {{ x }}.\"\n");
        let req =
            render_request(&lib, "t/plain", &[("x".into(), "me".into())], "TEXT", Lang::En, &Params::default(), None)
                .unwrap();
        assert_eq!(req.user, "Summarise for me.\n\nTEXT");
        let e = render_request(&lib, "t/plain", &[], "TEXT", Lang::En, &Params::default(), None).unwrap_err();
        assert_eq!(e.to_string(), "missing variable `x`; usage: moat run t/plain -v x=<text> [< input.txt]");
    }

    #[test]
    fn pin_mismatch_is_refused() {
        let (_d, lib) = lib_with("t/score", SCORE);
        let e = render_request(&lib, "t/score@2", &vars(), "a", Lang::En, &Params::default(), None).unwrap_err();
        assert!(e.to_string().contains("wants major version 2"), "{e}");
        assert!(render_request(&lib, "t/score@^1", &vars(), "a", Lang::En, &Params::default(), None).is_ok());
    }
}
