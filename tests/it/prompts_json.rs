//! Structured output under a token budget, on the default model: how many tokens a character costs
//! it, Chinese articles through the built-in prompts and scripts, and replies steered to close their
//! JSON (or, when even that cannot fit, the one-line cut-off error) at small budgets.

use crate::common::{self, fixture, moat, stderr as err, Sandbox};
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use moat::chat::Message;
use moat::config::Config;
use moat::engine::{StopReason, Task};
use moat::prompts::extract::{extract_object, ExtractError};
use moat::prompts::lint::ratios;
use moat::prompts::partial::PartialJson;
use moat::prompts::{render_request, validate, Lang, Library, Params};
use serde_json::Value;

/// An article written for these tests (not copied from anywhere): 2,002 characters of Chinese.
const ZH: &str = include_str!(fixture!("prompts/zh-article.txt"));
/// The same story in English, shorter.
const EN: &str = include_str!(fixture!("prompts/en-article.txt"));

/// Tokens of `text` as the default model's tokenizer sees it (no BOS), from the model loaded once
/// on the process's shared llama.cpp backend.
fn count(text: &str) -> usize {
    static MODEL: std::sync::OnceLock<LlamaModel> = std::sync::OnceLock::new();
    let model = MODEL.get_or_init(|| {
        LlamaModel::load_from_file(moat::engine::backend(None), common::model_path(), &LlamaModelParams::default())
            .expect("the model loads")
    });
    model.vocab().tokenize(text.as_bytes(), false, false).len()
}

/// The schema a prompt's replies are held to in `lang`.
fn schema_of(id: &str, lang: Lang) -> (String, Value) {
    let p = Library::builtin().prompt(id).unwrap();
    let text = p.variant(lang).unwrap().output.schema.unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// The model's part of a step's JSON: values the program computed are taken out again.
fn model_part(step: &Value) -> Value {
    let mut json = step["json"].clone();
    for name in step["computed"].as_object().into_iter().flat_map(|c| c.keys()) {
        json.as_object_mut().unwrap().remove(name);
    }
    json
}

/// The budget lint's ratios must stay conservative for the default model: measured on the fixtures
/// (2,002 Chinese characters: 3,523 tokens; 1,743 English characters: 401; reply syntax: 0.34/char).
#[test]
fn tokens_per_character_stay_within_the_lint_ratios() {
    let zh = count(ZH) as f64 / ZH.chars().count() as f64;
    let en = count(EN) as f64 / EN.chars().count() as f64;
    let skeleton = r#"{"risks": [{"id": "R1", "category": "technical", "description": "", "likelihood": 4, "impact": 5, "mitigation": ""}, {"id": "R2", "category": "operational", "description": "", "likelihood": 3, "impact": 2, "mitigation": ""}], "summary": ""}"#;
    let json = count(skeleton) as f64 / skeleton.chars().count() as f64;
    println!("tokens per character: zh {zh:.3}, en {en:.3}, JSON syntax {json:.3}");
    assert!(zh > 1.0, "Chinese costs this model more than a token a character: {zh}");
    assert!(zh <= ratios::ZH_TEXT && en <= ratios::EN_TEXT && json <= ratios::JSON_SYNTAX, "{zh} {en} {json}");
}

/// The field report's command on a Chinese article of 2,000 characters: valid JSON that meets the
/// Chinese schema. The article takes about 3,500 tokens, so it needs the model's own 8,192-token
/// context (at the default 4,096, about 1,000 characters fit next to this prompt's reply budget).
#[test]
fn risk_register_on_a_chinese_article_gives_valid_json() {
    let s = Sandbox::new();
    let o = moat(
        &s,
        &[
            "run",
            "market/risk-register",
            "-v",
            "subject=灵犀智服",
            "--lang",
            "zh",
            "--as",
            "json",
            "--temp",
            "0",
            "-c",
            "8192",
        ],
        ZH,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let out: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let json = result_part(&out);
    validate(&schema_of("market/risk-register", Lang::Zh).1, &json).unwrap_or_else(|e| panic!("{e:?}: {json}"));
}

/// The model's part of `--as json` output: computed values (`main.exposure`, …) are taken out again.
fn result_part(out: &Value) -> Value {
    let mut result = out["result"].clone();
    for name in out["computed"].as_object().into_iter().flat_map(|c| c.keys()) {
        result.as_object_mut().unwrap().remove(name.rsplit('.').next().unwrap());
    }
    result
}

/// A whole script on the same article: every step's JSON validates against its prompt's Chinese
/// schema. With the steps' own budgets the model fills every one of them and the run takes about six
/// minutes on one thread (it passes that way too); `-n 250` keeps this test to a couple of minutes
/// and has every step closed by steering instead.
#[test]
fn a_script_on_a_chinese_article_gives_valid_json_at_every_step() {
    let s = Sandbox::new();
    let args = [
        "run",
        "scripts/product-risk-review",
        "-v",
        "product=灵犀智服",
        "--lang",
        "zh",
        "--as",
        "trace",
        "--temp",
        "0",
        "-c",
        "8192",
        "-n",
        "250",
    ];
    let o = moat(&s, &args, ZH);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let trace: Value = serde_json::from_slice(&o.stdout).expect("a JSON trace on stdout");
    let mut checked = 0;
    for step in trace["steps"].as_array().unwrap() {
        let (Some(uses), false) = (step["uses"].as_str(), step["skipped"].as_bool().unwrap_or(false)) else { continue };
        let id = uses.split('@').next().unwrap();
        let Some(schema) = Library::builtin().prompt(id).unwrap().variant(Lang::Zh).unwrap().output.schema else {
            continue;
        };
        let json = model_part(step);
        validate(&serde_json::from_str(&schema).unwrap(), &json)
            .unwrap_or_else(|e| panic!("step {}: {e:?}: {json}", step["id"]));
        checked += 1;
    }
    assert!(checked >= 3, "{trace}");
}

/// Small budgets straight through the engine (the prompt stays cached, so each budget costs only
/// its reply): from the size of the shortest valid reply up, every reply is closed JSON that
/// validates; below it, the reply is cut open and extraction says so instead of handing back an
/// object from inside it.
#[test]
fn small_budgets_are_steered_to_valid_json() {
    let lib = Library::builtin();
    let input: String = ZH.chars().take(500).collect();
    let vars = vec![("subject".to_string(), "灵犀智服".to_string())];
    let req = render_request(&lib, "market/risk-register", &vars, &input, Lang::Zh, &Params::default(), None).unwrap();
    let (schema_text, schema) = schema_of("market/risk-register", Lang::Zh);
    let engine = common::engine(2048);
    let shortest = count(&PartialJson::new(&schema_text).unwrap().completion().unwrap());
    let mut sampling = Config::default().sampling;
    sampling.temperature = 0.0;
    for n in [shortest / 2, shortest - 1, shortest, shortest + 3, shortest + 10, shortest + 25, shortest + 60, 160] {
        sampling.max_tokens = n as u32;
        let messages = vec![Message::system(req.system.clone().unwrap()), Message::user(req.user.clone())];
        let task = Task::Structured { messages, sampling: sampling.clone(), json_schema: req.json_schema.clone() };
        let reply = engine.submit(task).text(|_| {}).unwrap();
        assert!(reply.stats.gen_tokens <= n, "{n}: {}", reply.stats.gen_tokens);
        match extract_object(&reply.text) {
            Ok(v) => validate(&schema, &v).unwrap_or_else(|e| panic!("max_tokens {n}: {e:?}: {}", reply.text)),
            Err(e) => {
                assert!(n < shortest, "max_tokens {n} ≥ {shortest} must close: {e:?}: {}", reply.text);
                assert_eq!(e, ExtractError::Unclosed, "{}", reply.text);
                assert_eq!(reply.reason, StopReason::MaxTokens);
            }
        }
    }
}

/// The same through `moat run`: a small -n gives closed, valid JSON; one too small for even the
/// shortest valid reply gives the one-line cut-off error and exit code 3, never the schema errors of
/// a fragment.
#[test]
fn a_forced_small_budget_gives_valid_json_or_the_cut_off_error() {
    let s = Sandbox::new();
    let input: String = ZH.chars().take(500).collect();
    let args = |n: &'static str| {
        [
            "run",
            "market/risk-register",
            "-v",
            "subject=灵犀智服",
            "--lang",
            "zh",
            "--as",
            "json",
            "--temp",
            "0",
            "-n",
            n,
        ]
    };
    let o = moat(&s, &args("80"), &input);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let out: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let result = result_part(&out);
    validate(&schema_of("market/risk-register", Lang::Zh).1, &result).unwrap_or_else(|e| panic!("{e:?}: {result}"));

    let o = moat(&s, &args("12"), &input);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    assert!(e.contains("`market/risk-register`: the reply was cut at max_tokens 12 before its JSON closed"), "{e}");
    assert!(e.contains("raise max_tokens"), "{e}");
    assert!(!e.contains("missing required field") && !e.contains("is not allowed"), "{e}");
}
