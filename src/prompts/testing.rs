//! Tests embedded in prompt files (`[[tests]]`), runnable without a model.
//!
//! Render-only tests check what would be sent; mocked tests feed canned replies through the real validation,
//! compute, view and script wiring, so a schema change in a library prompt breaks the scripts that use it in CI.

use serde_json::{Map, Value};

use super::error::PromptError;
use super::format::{Assert, AssertKind, OneOrMany, TestCase};
use super::library::Library;
use super::locale::{cjk_share, Lang};
use super::params::{GenRequest, Params, Reply};
use super::run::run_prompt_with;
use super::script::{run_script_with, step_value};
use super::step::{load_checked, prepare};
use super::template::{environment, eval};
use super::vars::toml_to_json;

#[derive(Debug, Clone, PartialEq)]
pub enum TestStatus {
    Passed,
    Failed(Vec<String>),
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    pub id: String,
    pub name: String,
    pub status: TestStatus,
}

impl std::fmt::Display for TestOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.status {
            TestStatus::Passed => write!(f, "ok      {} :: {}", self.id, self.name),
            TestStatus::Skipped(why) => write!(f, "skipped {} :: {} ({why})", self.id, self.name),
            TestStatus::Failed(msgs) => write!(f, "FAILED  {} :: {}: {}", self.id, self.name, msgs.join("; ")),
        }
    }
}

/// What a test run produced, in a shape the assertions can read uniformly for prompts and scripts.
#[derive(Default)]
struct Observed {
    rendered_all: String,
    rendered_by_step: Vec<(String, String)>,
    output: String,
    json: Option<Value>,
    computed: Value,
    view: Option<String>,
    steps: Value,
    result_step: Option<String>,
    vars: Value,
}

pub fn run_file_tests(lib: &Library, id: &str) -> Vec<TestOutcome> {
    let prompt = match load_checked(lib, id) {
        Ok(p) => p,
        Err(e) => {
            return vec![TestOutcome {
                id: id.into(),
                name: "(load + lint)".into(),
                status: TestStatus::Failed(vec![e.to_string()]),
            }]
        }
    };
    prompt
        .file
        .tests
        .iter()
        .map(|t| TestOutcome { id: prompt.id.clone(), name: t.name.clone(), status: run_one(lib, &prompt, t) })
        .collect()
}

pub fn run_all_tests(lib: &Library) -> Vec<TestOutcome> {
    lib.ids().iter().flat_map(|id| run_file_tests(lib, id)).collect()
}

fn run_one(lib: &Library, prompt: &super::parse::Prompt, t: &TestCase) -> TestStatus {
    if t.requires_model {
        return TestStatus::Skipped("needs a model".into());
    }
    let lang = match t.lang.as_deref().map(str::parse::<Lang>).transpose() {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => return TestStatus::Failed(vec![e.to_string()]),
    };
    let given: Vec<(String, Value)> = t.vars.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect();
    let observed = if prompt.file.is_script() {
        observe_script(lib, &prompt.id, t, &given, lang)
    } else if t.is_mocked() {
        observe_prompt(lib, &prompt.id, t, &given, lang)
    } else {
        let env = environment(lib.partials());
        prepare(&env, prompt, lang, &given, &t.input, None).map(|p| {
            let rendered = format!("{}\n\n{}", p.system.unwrap_or_default(), p.user);
            Observed { rendered_all: rendered, ..Default::default() }
        })
    };
    let env = environment(lib.partials());
    let mut failures: Vec<String> = Vec::new();
    for f in t.assert.iter().filter_map(|a| check(&env, &prompt.path, a, &observed, lang).err()) {
        if !failures.contains(&f) {
            failures.push(f);
        }
    }
    if failures.is_empty() {
        TestStatus::Passed
    } else {
        TestStatus::Failed(failures)
    }
}

fn replies(m: &OneOrMany) -> Vec<String> {
    m.to_vec()
}

fn observe_prompt(
    lib: &Library,
    id: &str,
    t: &TestCase,
    given: &[(String, Value)],
    lang: Lang,
) -> Result<Observed, PromptError> {
    let mut queue = t.mock_output.as_ref().map(replies).unwrap_or_default();
    let mut gen = |_: &str, _: &GenRequest| {
        if queue.is_empty() {
            Err("mock_output has no reply left".to_string())
        } else {
            Ok(Reply::from(queue.remove(0)))
        }
    };
    let r = run_prompt_with(lib, id, given, &t.input, lang, &Params::default(), None, &mut gen)?;
    let rendered = format!("{}\n\n{}", r.system.clone().unwrap_or_default(), r.user);
    Ok(Observed {
        rendered_all: rendered,
        output: r.output,
        json: r.json,
        computed: Value::Object(r.computed),
        view: r.view,
        vars: Value::Object(Map::new()),
        ..Default::default()
    })
}

const RENDER_ONLY: &str = "render-only test: stopped before generating";

/// Scripts without mocks run as render-only tests: every request is captured and the run stops at the first
/// generation, so the first step's rendered prompt (and variable handling) can still be asserted on.
fn observe_script(
    lib: &Library,
    id: &str,
    t: &TestCase,
    given: &[(String, Value)],
    lang: Lang,
) -> Result<Observed, PromptError> {
    let mut queues: std::collections::BTreeMap<String, Vec<String>> =
        t.mock.iter().map(|(k, v)| (k.clone(), replies(v))).collect();
    let render_only = !t.is_mocked();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut gen = |step: &str, req: &GenRequest| {
        if !seen.iter().any(|(s, _)| s == step) {
            seen.push((step.to_string(), format!("{}\n\n{}", req.system.clone().unwrap_or_default(), req.user)));
        }
        match queues.get_mut(step) {
            _ if render_only => Err(RENDER_ONLY.to_string()),
            Some(q) if !q.is_empty() => Ok(Reply::from(q.remove(0))),
            _ => Err(format!("no mock reply for step `{step}`")),
        }
    };
    let run = run_script_with(
        lib,
        id,
        given,
        &t.input,
        lang,
        &Params::default(),
        None,
        &mut gen,
        &mut super::script::RunOptions::default(),
    );
    let rendered_all = seen.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join("\n\n");
    let r = match run {
        Err(PromptError::Generation { message, .. }) if message == RENDER_ONLY => {
            return Ok(Observed { rendered_all, rendered_by_step: seen, ..Default::default() });
        }
        other => other?,
    };
    let result = r.result().cloned().unwrap_or_default();
    let steps: Map<String, Value> = r.steps.iter().map(|s| (s.id.clone(), step_value(s))).collect();
    Ok(Observed {
        rendered_all,
        rendered_by_step: seen,
        output: result.output.clone(),
        json: result.json.clone(),
        computed: serde_json::to_value(&r.computed).unwrap_or(Value::Null),
        view: r.view.clone().or(result.view.clone()),
        steps: Value::Object(steps),
        result_step: r.result_step.clone(),
        vars: Value::Object(r.vars.clone()),
    })
}

fn check(
    env: &minijinja::Environment<'_>,
    path: &str,
    a: &Assert,
    obs: &Result<Observed, PromptError>,
    lang: Lang,
) -> Result<(), String> {
    let value = a.value.clone().unwrap_or_default();
    let o = match (a.kind, obs) {
        (AssertKind::ErrorContains, Err(e)) => {
            let msg = e.to_string();
            return if msg.contains(&value) {
                Ok(())
            } else {
                Err(format!("error `{msg}` does not contain `{value}`"))
            };
        }
        (AssertKind::ErrorContains, Ok(_)) => {
            return Err(format!("expected an error containing `{value}`, but the run succeeded"))
        }
        (_, Err(e)) => return Err(format!("run failed: {e}")),
        (_, Ok(o)) => o,
    };
    let contains = |hay: &str, what: &str, negate: bool| -> Result<(), String> {
        match (hay.contains(&value), negate) {
            (true, false) | (false, true) => Ok(()),
            (false, false) => Err(format!("{what} does not contain `{value}`:\n{hay}")),
            (true, true) => Err(format!("{what} contains `{value}`")),
        }
    };
    let rendered = match &a.step {
        Some(s) => match o.rendered_by_step.iter().find(|(id, _)| id == s) {
            Some((_, t)) => t.as_str(),
            None => return Err(format!("step `{s}` did not run")),
        },
        None => o.rendered_all.as_str(),
    };
    let ctx = || {
        serde_json::json!({
            "output": o.output, "json": o.json, "computed": o.computed, "view": o.view, "rendered": rendered,
            "steps": o.steps, "result_step": o.result_step, "vars": o.vars, "lang": lang.code(),
        })
    };
    match a.kind {
        AssertKind::RenderedContains => contains(rendered, "rendered prompt", false),
        AssertKind::RenderedNotContains => contains(rendered, "rendered prompt", true),
        AssertKind::Contains => contains(&o.output, "output", false),
        AssertKind::NotContains => contains(&o.output, "output", true),
        AssertKind::ViewContains => match &o.view {
            Some(v) => contains(v, "view", false),
            None => Err("there is no view".into()),
        },
        // Validation already ran inside the runner; reaching here with JSON means it passed.
        AssertKind::Schema => o.json.as_ref().map(|_| ()).ok_or_else(|| "no JSON output".to_string()),
        AssertKind::Expr => match eval(env, path, "test expr", &value, &ctx()) {
            Ok(v) if v.is_true() => Ok(()),
            Ok(v) => Err(format!("`{value}` is {v}")),
            Err(e) => Err(e.to_string()),
        },
        AssertKind::Lang => {
            let text = match &a.of {
                Some(expr) => {
                    eval(env, path, "test lang.of", expr, &ctx()).map(|v| v.to_string()).map_err(|e| e.to_string())?
                }
                None => o.output.clone(),
            };
            let want: Lang = value.parse().map_err(|e: PromptError| e.to_string())?;
            let share = cjk_share(&text);
            let ok = if want == Lang::Zh { share >= 0.3 } else { share < 0.3 };
            if ok {
                Ok(())
            } else {
                Err(format!("text is {:.0}% CJK, expected {want}: {text}", share * 100.0))
            }
        }
        AssertKind::ErrorContains => unreachable!("handled above"),
    }
}
