//! Running a script: steps in file order, each reading earlier results through `steps.<id>.output|json`.
//!
//! Steps are strictly sequential: one local model means there is nothing to gain from a DAG, and a linear order
//! is what lint checks references against.

use crate::sampling::Layers;
use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Map, Value};

use super::error::PromptError;
use super::evidence::{self, Passage};
use super::format::{OutputSpec, PromptFile, Step};
use super::library::{Library, Source};
use super::locale::Lang;
use super::longdoc::{self, LongOptions, LongTrace, Progress};
use super::params::{Generator, Params};
use super::parse::{check_pin, Prompt};
use super::step::{
    base_ctx, budget_input, constrained, generate_checked, load_checked, prepare, render_messages, request, Recording,
    StepGen, Whole,
};
use super::template::{environment, eval, render};
use super::vars::{from_cli, resolve_vars, toml_to_json};

#[derive(Debug, Clone, Default)]
pub struct StepResult {
    pub id: String,
    pub title: Option<String>,
    pub uses: Option<String>,
    pub skipped: bool,
    pub params: Params,
    pub system: Option<String>,
    pub user: String,
    pub output: String,
    pub json: Option<Value>,
    pub computed: Map<String, Value>,
    pub view: Option<String>,
    pub attempts: u32,
    pub ms: u128,
    /// Source ids the reply cited (see [`super::evidence`]).
    pub cited: Vec<String>,
}

/// Tokens a run read and wrote, for comparing its time with the model's speed.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TokenFigures {
    /// The input as given (before chunking or tagging).
    pub document: usize,
    /// Every reply of the run: map, reduce, steps and retries.
    pub generated: usize,
    /// Counted by the engine's tokenizer; `false` = estimated from characters.
    pub exact: bool,
}

#[derive(Debug, Clone)]
pub struct ScriptResult {
    pub id: String,
    pub version: Option<String>,
    pub source: Source,
    pub lang: Lang,
    pub vars: Map<String, Value>,
    pub steps: Vec<StepResult>,
    /// The step whose output is "the" result: first of `[result] from` that ran, else the last step that ran.
    pub result_step: Option<String>,
    /// Every step's computed values, keyed `step.name`.
    pub computed: BTreeMap<String, Value>,
    /// `[result] view` rendered over all steps, if the script has one.
    pub view: Option<String>,
    pub ms: u128,
    /// The passages of the input replies could cite, marked when one did.
    pub sources: Vec<Passage>,
    /// What map-reduce did, when the input was too long to pass whole.
    pub long: Option<LongTrace>,
    pub tokens: TokenFigures,
}

impl ScriptResult {
    pub fn step(&self, id: &str) -> Option<&StepResult> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn result(&self) -> Option<&StepResult> {
        self.result_step.as_deref().and_then(|id| self.step(id))
    }
}

/// Runs a script, or a plain prompt as a one-step script.
// The signature is the one moat's CLI and REPL call; bundling it into a struct would hide the precedence order.
#[allow(clippy::too_many_arguments)]
pub fn run_script(
    lib: &Library,
    id_or_path: &str,
    vars: &[(String, String)],
    input: &str,
    lang: Lang,
    cli_params: &Params,
    max_input_chars: Option<usize>,
    gen: &mut dyn Generator,
) -> Result<ScriptResult, PromptError> {
    run_script_opts(lib, id_or_path, vars, input, lang, cli_params, max_input_chars, gen, &mut RunOptions::default())
}

/// A progress callback for map-reduce runs.
pub type OnProgress<'a> = Box<dyn FnMut(&Progress) + 'a>;

/// How a run treats long input and reports progress.
#[derive(Default)]
pub struct RunOptions<'a> {
    pub long: LongOptions,
    /// Called after each finished map or reduce request.
    pub progress: Option<OnProgress<'a>>,
}

/// [`run_script`] with control over long input and a progress callback.
#[allow(clippy::too_many_arguments)]
pub fn run_script_opts(
    lib: &Library,
    id_or_path: &str,
    vars: &[(String, String)],
    input: &str,
    lang: Lang,
    cli_params: &Params,
    max_input_chars: Option<usize>,
    gen: &mut dyn Generator,
    opts: &mut RunOptions<'_>,
) -> Result<ScriptResult, PromptError> {
    let given = from_cli(vars);
    run_script_with(lib, id_or_path, &given, input, lang, cli_params, max_input_chars, &mut Whole(gen), opts)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run_script_with(
    lib: &Library,
    id_or_path: &str,
    given: &[(String, Value)],
    input: &str,
    lang: Lang,
    cli_params: &Params,
    max_input_chars: Option<usize>,
    gen: &mut dyn StepGen,
    opts: &mut RunOptions<'_>,
) -> Result<ScriptResult, PromptError> {
    let started = Instant::now();
    let script = load_checked(lib, id_or_path)?;
    let mut file = script.variant(lang)?;
    if !file.is_script() {
        file = as_one_step(&script);
    }
    let env = environment(lib.partials());
    let vars = resolve_vars(&script.id, &file, given)?;
    let cites = cites_anywhere(lib, &script, &file, lang);
    let mut gen = Recording { inner: gen, texts: Vec::new() };
    let gen = &mut gen;
    let job = longdoc::InputJob {
        lib,
        env: &env,
        owner: &script.id,
        spec: &file.input,
        lang,
        cli: cli_params,
        caller_max: max_input_chars,
        cites,
        opts: &opts.long,
    };
    let mut progress = opts.progress.take();
    let run_input = longdoc::prepare_input(&job, input, gen, &mut |p| progress.as_mut().map_or((), |f| f(p)))?;
    opts.progress = progress;
    let input_given = input;
    let input = run_input.text.clone();
    let mut sources = run_input.sources;
    let mut steps_ctx = Map::new();
    let mut results = Vec::new();
    for step in &file.steps {
        let t0 = Instant::now();
        let mut ctx = base_ctx(&vars, &input, lang);
        ctx["steps"] = Value::Object(steps_ctx.clone());
        let run = match &step.when {
            Some(expr) => eval(&env, &script.path, &format!("steps.{}.when", step.id), expr, &ctx)?.is_true(),
            None => true,
        };
        let mut r = if !run {
            StepResult {
                id: step.id.clone(),
                title: step.title.clone(),
                uses: step.uses.clone(),
                skipped: true,
                ..Default::default()
            }
        } else if let Some(uses) = &step.uses {
            run_uses_step(
                lib,
                &env,
                &script,
                &file,
                step,
                uses,
                &ctx,
                lang,
                cli_params,
                max_input_chars,
                &sources,
                gen,
            )?
        } else {
            run_inline_step(&env, &script, &file, step, &ctx, lang, cli_params, max_input_chars, &sources, gen)?
        };
        evidence::mark_cited(&mut sources, &r.cited);
        r.ms = t0.elapsed().as_millis();
        steps_ctx.insert(step.id.clone(), step_value(&r));
        results.push(r);
    }
    let from = file.result.from.to_vec();
    let ran = |id: &String| results.iter().any(|r: &StepResult| &r.id == id && !r.skipped);
    let result_step = from
        .iter()
        .find(|id| ran(id))
        .cloned()
        .or_else(|| results.iter().rev().find(|r| !r.skipped).map(|r| r.id.clone()));
    let mut computed = BTreeMap::new();
    for r in &results {
        for (k, v) in &r.computed {
            computed.insert(format!("{}.{k}", r.id), v.clone());
        }
    }
    let view = match &file.result.view {
        Some(v) => {
            let mut ctx = base_ctx(&vars, &input, lang);
            ctx["steps"] = Value::Object(steps_ctx);
            ctx["result_step"] = result_step.clone().map(Value::String).unwrap_or(Value::Null);
            Some(render(&env, &script.path, "result.view", v, &ctx)?.trim().to_string())
        }
        None => None,
    };
    let generated = std::mem::take(&mut gen.texts);
    let texts: Vec<&str> = std::iter::once(input_given).chain(generated.iter().map(String::as_str)).collect();
    let tokens = match gen.count_tokens(&texts) {
        Some(n) if n.len() == texts.len() => {
            TokenFigures { document: n[0], generated: n[1..].iter().sum(), exact: true }
        }
        _ => TokenFigures {
            document: super::chunk::estimate_tokens(input_given),
            generated: texts[1..].iter().map(|t| super::chunk::estimate_tokens(t)).sum(),
            exact: false,
        },
    };
    Ok(ScriptResult {
        id: script.id.clone(),
        version: file.version.clone(),
        source: script.source.clone(),
        lang,
        vars,
        steps: results,
        result_step,
        computed,
        view,
        ms: started.elapsed().as_millis(),
        sources,
        long: run_input.long,
        tokens,
    })
}

/// Whether any step that may run has an output schema with source-id fields.
fn cites_anywhere(lib: &Library, script: &Prompt, file: &PromptFile, lang: Lang) -> bool {
    file.steps.iter().any(|step| match &step.uses {
        Some(uses) => {
            let used = if *uses == script.id { Ok(script.clone()) } else { lib.prompt(uses) };
            used.and_then(|p| p.variant(lang)).is_ok_and(|f| evidence::cites(f.output.schema.as_deref()))
        }
        None => evidence::cites(step.output.as_ref().and_then(|o| o.schema.as_deref())),
    })
}

/// What later steps see as `steps.<id>`.
pub(crate) fn step_value(r: &StepResult) -> Value {
    serde_json::json!({
        "output": r.output,
        "json": r.json.clone().unwrap_or(Value::Null),
        "computed": r.computed,
        "view": r.view,
        "skipped": r.skipped,
        "ms": r.ms as u64,
    })
}

fn as_one_step(prompt: &Prompt) -> PromptFile {
    let mut f = prompt.file.clone();
    f.prompt = None;
    f.steps = vec![Step { id: "main".into(), uses: Some(prompt.id.clone()), ..Default::default() }];
    f
}

#[allow(clippy::too_many_arguments)]
fn run_uses_step(
    lib: &Library,
    env: &minijinja::Environment<'_>,
    script: &Prompt,
    file: &PromptFile,
    step: &Step,
    uses: &str,
    ctx: &Value,
    lang: Lang,
    cli: &Params,
    max_input_chars: Option<usize>,
    sources: &[Passage],
    gen: &mut dyn StepGen,
) -> Result<StepResult, PromptError> {
    let used = if uses == script.id { script.clone() } else { lib.prompt(uses)? };
    check_pin(&used, uses)?;
    let mut given = Vec::new();
    for (k, v) in &step.with_vars {
        let value = match v {
            toml::Value::String(s) => {
                Value::String(render(env, &script.path, &format!("steps.{}.with.{k}", step.id), s, ctx)?)
            }
            other => toml_to_json(other),
        };
        given.push((k.clone(), value));
    }
    // A one-step run of a plain prompt passes the caller's typed vars straight through.
    if step.id == "main" && uses == script.id {
        given = ctx["vars"]
            .as_object()
            .map(|m| m.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
    }
    let input_tmpl = step.input.as_deref().unwrap_or("{{ input }}");
    let step_input = render(env, &script.path, &format!("steps.{}.input", step.id), input_tmpl, ctx)?;
    let p = prepare(env, &used, lang, &given, &step_input, max_input_chars).map_err(|e| match e {
        PromptError::InputRequired { .. } => {
            PromptError::StepInputEmpty { script: script.id.clone(), step: step.id.clone() }
        }
        other => other,
    })?;
    let mut req = request(&p, &Params::default());
    req.params = Layers {
        prompt_file: Some(&p.file.model),
        script: Some(&file.model),
        step: Some(&step.model),
        flags: Some(cli),
    }
    .merged();
    // A plain prompt run as a one-step script is named by its own id in messages.
    let label =
        if step.id == "main" && uses == script.id { script.id.clone() } else { format!("{}/{}", script.id, step.id) };
    let spec = constrained(&p.file.output, &mut req, sources);
    let mut out = generate_checked(env, &used.path, &label, &spec, req.clone(), &p.ctx, lang, &mut |r| {
        gen.generate(&step.id, r)
    })?;
    let cited = evidence::cited(p.file.output.schema.as_deref(), out.json.as_mut());
    Ok(StepResult {
        id: step.id.clone(),
        title: step.title.clone().or(p.file.title.clone()),
        uses: Some(uses.to_string()),
        skipped: false,
        params: req.params,
        system: p.system,
        user: p.user,
        output: out.output,
        json: out.json,
        computed: out.computed,
        view: out.view,
        attempts: out.attempts,
        ms: 0,
        cited,
    })
}

#[allow(clippy::too_many_arguments)]
fn run_inline_step(
    env: &minijinja::Environment<'_>,
    script: &Prompt,
    file: &PromptFile,
    step: &Step,
    ctx: &Value,
    lang: Lang,
    cli: &Params,
    max_input_chars: Option<usize>,
    sources: &[Passage],
    gen: &mut dyn StepGen,
) -> Result<StepResult, PromptError> {
    let mut ctx = ctx.clone();
    // An inline step sees the script's input unless it builds its own; only an explicit input is appended.
    if let Some(tmpl) = &step.input {
        let rendered = render(env, &script.path, &format!("steps.{}.input", step.id), tmpl, &ctx)?;
        let spec = super::format::InputSpec::default();
        let (budgeted, _) = budget_input(&script.id, &spec, &rendered, max_input_chars)?;
        ctx["input"] = Value::String(budgeted);
    }
    let text = step.prompt.clone().unwrap_or_default();
    let (system, user) = render_messages(env, &script.path, &text, &[], &ctx, lang, step.input.is_some())?;
    let spec: OutputSpec = step.output.clone().unwrap_or_default();
    let params =
        Layers { script: Some(&file.model), step: Some(&step.model), flags: Some(cli), ..Layers::default() }.merged();
    let mut req = super::params::GenRequest {
        system: system.clone(),
        user: user.clone(),
        params: params.clone(),
        json_schema: spec.schema.clone(),
    };
    let narrowed = constrained(&spec, &mut req, sources);
    let label = format!("{}/{}", script.id, step.id);
    let mut out =
        generate_checked(env, &script.path, &label, &narrowed, req, &ctx, lang, &mut |r| gen.generate(&step.id, r))?;
    let cited = evidence::cited(spec.schema.as_deref(), out.json.as_mut());
    Ok(StepResult {
        id: step.id.clone(),
        title: step.title.clone(),
        uses: None,
        skipped: false,
        params,
        system,
        user,
        output: out.output,
        json: out.json,
        computed: out.computed,
        view: out.view,
        attempts: out.attempts,
        ms: 0,
        cited,
    })
}
