//! The pieces every run shares: loading and checking a file, rendering its messages within the input budget,
//! generating through a [`StepGen`], and checking the reply against its contract (with one retry).

use crate::sampling::Layers;

use minijinja::Environment;
use serde_json::{Map, Value};

use super::error::{Problem, PromptError};
use super::extract::{extract_object, strip_think, ExtractError};
use super::format::{Example, Format, InputSpec, Long, OutputSpec, PromptFile, PromptText};
use super::library::Library;
use super::locale::Lang;
use super::params::{GenRequest, Generator, Params, Reply};
use super::parse::{check_pin, Prompt};
use super::schema::{parse_schema, validate};
use super::template::{eval, render, to_json};
use super::vars::resolve_vars;

/// What a generation produced once checked; shared by prompts and script steps.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub output: String,
    pub json: Option<Value>,
    pub computed: Map<String, Value>,
    pub view: Option<String>,
    pub attempts: u32,
}

/// A prompt file made ready to send: vars resolved, input budgeted, messages rendered.
pub(crate) struct Prepared {
    pub file: PromptFile,
    pub ctx: Value,
    pub system: Option<String>,
    pub user: String,
    pub truncated: bool,
}

/// What the runner generates with, told which step asks (embedded tests mock replies per step).
pub(crate) trait StepGen {
    fn generate(&mut self, step: &str, req: &GenRequest) -> Result<Reply, String>;

    /// See [`Generator::count_tokens`].
    fn count_tokens(&mut self, _texts: &[&str]) -> Option<Vec<usize>> {
        None
    }

    /// See [`Generator::generate_many`].
    fn generate_many(
        &mut self,
        step: &str,
        reqs: &[GenRequest],
        done: &mut dyn FnMut(usize, &Result<Reply, String>),
    ) -> Vec<Result<Reply, String>> {
        let mut out = Vec::with_capacity(reqs.len());
        for (i, r) in reqs.iter().enumerate() {
            let reply = self.generate(step, r);
            done(i, &reply);
            out.push(reply);
        }
        out
    }
}

impl<F: FnMut(&str, &GenRequest) -> Result<Reply, String>> StepGen for F {
    fn generate(&mut self, step: &str, req: &GenRequest) -> Result<Reply, String> {
        self(step, req)
    }
}

/// A [`Generator`] as a [`StepGen`]: every step goes to the same engine.
pub(crate) struct Whole<'g>(pub &'g mut dyn Generator);

impl StepGen for Whole<'_> {
    fn generate(&mut self, _step: &str, req: &GenRequest) -> Result<Reply, String> {
        self.0.generate(req)
    }

    fn count_tokens(&mut self, texts: &[&str]) -> Option<Vec<usize>> {
        self.0.count_tokens(texts)
    }

    fn generate_many(
        &mut self,
        _step: &str,
        reqs: &[GenRequest],
        done: &mut dyn FnMut(usize, &Result<Reply, String>),
    ) -> Vec<Result<Reply, String>> {
        self.0.generate_many(reqs, done)
    }
}

/// Records every reply text that passes through, so a run can say how many tokens it generated.
pub(crate) struct Recording<'a> {
    pub inner: &'a mut dyn StepGen,
    pub texts: Vec<String>,
}

impl StepGen for Recording<'_> {
    fn generate(&mut self, step: &str, req: &GenRequest) -> Result<Reply, String> {
        let r = self.inner.generate(step, req);
        if let Ok(reply) = &r {
            self.texts.push(reply.text.clone());
        }
        r
    }

    fn count_tokens(&mut self, texts: &[&str]) -> Option<Vec<usize>> {
        self.inner.count_tokens(texts)
    }

    fn generate_many(
        &mut self,
        step: &str,
        reqs: &[GenRequest],
        done: &mut dyn FnMut(usize, &Result<Reply, String>),
    ) -> Vec<Result<Reply, String>> {
        let out = self.inner.generate_many(step, reqs, done);
        self.texts.extend(out.iter().filter_map(|r| r.as_ref().ok()).map(|r| r.text.clone()));
        out
    }
}

// The signature is the one moat's CLI and REPL call; bundling it into a struct would hide the precedence order.
/// The output contract a request is checked against once its source-id fields are narrowed to the ids its
/// prompt shows (all of the run's when it shows none); `req.json_schema` gets the same.
pub(crate) fn constrained(spec: &OutputSpec, req: &mut GenRequest, sources: &[super::evidence::Passage]) -> OutputSpec {
    let mut spec = spec.clone();
    if let Some(schema) = spec.schema.as_deref().filter(|s| super::evidence::cites(Some(s))) {
        let prompt = format!("{}\n{}", req.system.as_deref().unwrap_or(""), req.user);
        let mut ids = super::evidence::ids_in(&prompt, sources);
        if ids.is_empty() {
            ids = sources.iter().map(|s| s.id.clone()).collect();
        }
        let narrowed = super::evidence::constrain(schema, &ids);
        req.json_schema = Some(narrowed.clone());
        spec.schema = Some(narrowed);
    }
    spec
}

/// Resolves, parses and lints one file, so a broken file fails before any tokens are spent.
pub(crate) fn load_checked(lib: &Library, id_or_path: &str) -> Result<Prompt, PromptError> {
    let prompt = lib.prompt(id_or_path)?;
    check_pin(&prompt, id_or_path)?;
    let problems = super::lint::lint_prompt(lib, &prompt);
    if !problems.is_empty() {
        return Err(PromptError::Invalid { problems });
    }
    Ok(prompt)
}

pub(crate) fn prepare(
    env: &Environment<'_>,
    prompt: &Prompt,
    lang: Lang,
    given: &[(String, Value)],
    input: &str,
    max_input_chars: Option<usize>,
) -> Result<Prepared, PromptError> {
    prepare_with(env, prompt, lang, given, input, Some(max_input_chars))
}

/// [`prepare`], or with `budget: None` no input budget at all (a map step's chunk was sized in tokens already).
pub(crate) fn prepare_with(
    env: &Environment<'_>,
    prompt: &Prompt,
    lang: Lang,
    given: &[(String, Value)],
    input: &str,
    budget: Option<Option<usize>>,
) -> Result<Prepared, PromptError> {
    let mut file = prompt.variant(lang)?;
    let vars = resolve_vars(&prompt.id, &file, given)?;
    apply_caps(&mut file, &vars).map_err(|message| PromptError::Invalid {
        problems: vec![Problem { file: prompt.path.clone(), pos: None, message }],
    })?;
    let (input, truncated) = match budget {
        Some(max_input_chars) => budget_input(&prompt.id, &file.input, input, max_input_chars)?,
        None => (input.to_string(), false),
    };
    let ctx = base_ctx(&vars, &input, lang);
    let text = file.prompt.clone().unwrap_or_default();
    let (system, user) = render_messages(env, &prompt.path, &text, &file.examples, &ctx, lang, true)?;
    Ok(Prepared { file, ctx, system, user, truncated })
}

/// Narrows the output schema to the counts the variables ask for (`caps`), so the grammar and the validator keep
/// "at most N" and the reply spends no tokens past it. Errors name a cap whose path is not an array (lint reports
/// the same before any run).
fn apply_caps(file: &mut PromptFile, vars: &Map<String, Value>) -> Result<(), String> {
    let caps: Vec<(&String, u64)> = file
        .vars
        .iter()
        .filter(|(_, spec)| !spec.caps.is_empty())
        .filter_map(|(name, _)| Some((name, vars.get(name)?.as_u64()?)))
        .collect();
    let Some(text) = file.output.schema.as_deref().filter(|_| !caps.is_empty()) else { return Ok(()) };
    let mut schema: Value = serde_json::from_str(text).map_err(|e| format!("schema is not valid JSON: {e}"))?;
    for (name, n) in caps {
        for path in &file.vars[name].caps {
            super::schema::cap_items(&mut schema, path, n).map_err(|e| format!("variable `{name}` caps: {e}"))?;
        }
    }
    file.output.schema = Some(schema.to_string());
    Ok(())
}

pub(crate) fn request(p: &Prepared, cli: &Params) -> GenRequest {
    GenRequest {
        system: p.system.clone(),
        user: p.user.clone(),
        params: Layers { prompt_file: Some(&p.file.model), flags: Some(cli), ..Layers::default() }.merged(),
        json_schema: p.file.output.schema.clone(),
    }
}

/// Declared vars are visible both bare (`{{ subject }}`) and as `vars.subject`.
pub(crate) fn base_ctx(vars: &Map<String, Value>, input: &str, lang: Lang) -> Value {
    let mut ctx = vars.clone();
    ctx.insert("vars".into(), Value::Object(vars.clone()));
    ctx.insert("input".into(), Value::String(input.to_string()));
    ctx.insert("lang".into(), Value::String(lang.code().into()));
    ctx.insert("lang_name".into(), Value::String(lang.name().into()));
    Value::Object(ctx)
}

pub(crate) fn budget_input(
    id: &str,
    spec: &InputSpec,
    input: &str,
    caller_max: Option<usize>,
) -> Result<(String, bool), PromptError> {
    if spec.required && input.trim().is_empty() {
        return Err(PromptError::InputRequired { id: id.to_string() });
    }
    let max = match (spec.max_chars, caller_max) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => match a.or(b) {
            Some(m) => m,
            None => return Ok((input.to_string(), false)),
        },
    };
    let chars = input.chars().count();
    if chars <= max {
        return Ok((input.to_string(), false));
    }
    match spec.long_policy() {
        // Map-reduce happens before this point (`longdoc::prepare_input`); input still too long here is a step's
        // own, rendered by a script.
        Long::Error | Long::MapReduce => Err(PromptError::InputTooLarge { chars, max }),
        Long::Head => Ok((input.chars().take(max).collect(), true)),
        Long::Tail => Ok((input.chars().skip(chars - max).collect(), true)),
    }
}

/// Renders system and user. Few-shot examples are folded into the user message because the engine request has
/// no turn list; with `append_input`, input the template never placed is added after a blank line (fabric's
/// rule), and a missing user template makes the input itself the user message.
pub(crate) fn render_messages(
    env: &Environment<'_>,
    path: &str,
    text: &PromptText,
    examples: &[Example],
    ctx: &Value,
    lang: Lang,
    append_input: bool,
) -> Result<(Option<String>, String), PromptError> {
    let system = match &text.system {
        Some(s) => Some(render(env, path, "system", s, ctx)?.trim().to_string()),
        None => None,
    };
    let input = ctx.get("input").and_then(Value::as_str).unwrap_or("");
    let mut user = match &text.user {
        Some(u) => {
            let mut out = render(env, path, "user", u, ctx)?.trim().to_string();
            let uses_input = super::template::names_used(env, u, false).map(|n| n.contains("input")).unwrap_or(true);
            if append_input && !uses_input && !input.trim().is_empty() {
                out.push_str("\n\n");
                out.push_str(input);
            }
            out
        }
        None => input.to_string(),
    };
    if !examples.is_empty() {
        let (qi, qo) = match lang {
            Lang::Zh => ("示例输入：", "示例输出："),
            Lang::En => ("Example input:", "Example output:"),
        };
        let mut block = String::new();
        for ex in examples {
            block.push_str(&format!("{qi}\n{}\n{qo}\n{}\n\n", ex.input.trim(), ex.output.trim()));
        }
        user = format!("{block}{user}");
    }
    Ok((system, user))
}

/// Generates, and for JSON outputs extracts, validates and retries with the validator's message appended, then
/// runs `compute` and the `view`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn generate_checked(
    env: &Environment<'_>,
    path: &str,
    id: &str,
    spec: &OutputSpec,
    req: GenRequest,
    ctx: &Value,
    lang: Lang,
    gen: &mut dyn FnMut(&GenRequest) -> Result<Reply, String>,
) -> Result<Outcome, PromptError> {
    let schema = match &spec.schema {
        Some(s) => Some(parse_schema(s).map_err(|errs| PromptError::Invalid {
            problems: errs.into_iter().map(|m| Problem { file: path.to_string(), pos: None, message: m }).collect(),
        })?),
        None => None,
    };
    let is_json = spec.format == Format::Json;
    let max_attempts = if is_json { 1 + spec.retries() } else { 1 };
    let mut current = req.clone();
    let mut attempts = 0;
    let (output, json) = loop {
        attempts += 1;
        let reply = gen(&current).map_err(|message| PromptError::Generation { id: id.to_string(), message })?;
        match check_reply(id, &reply, is_json, schema.as_ref())? {
            Checked::Valid(text, json) => break (text, json),
            Checked::Invalid(text, message) if attempts >= max_attempts => {
                return Err(PromptError::OutputInvalid { id: id.to_string(), attempts, message, raw: text });
            }
            Checked::Invalid(_, message) => current = retry_request(&req, &message, lang),
        }
    };
    let mut full = ctx.as_object().cloned().unwrap_or_default();
    full.insert("output".into(), Value::String(output.clone()));
    let mut json = json;
    let mut computed = Map::new();
    for c in &spec.compute {
        full.insert("json".into(), json.clone().unwrap_or(Value::Null));
        full.insert("computed".into(), Value::Object(computed.clone()));
        let v = eval(env, path, &format!("compute.{}", c.name), &c.expr, &Value::Object(full.clone()))?;
        let v = to_json(&v);
        if let Some(Value::Object(obj)) = json.as_mut() {
            obj.insert(c.name.clone(), v.clone());
        }
        computed.insert(c.name.clone(), v);
    }
    full.insert("json".into(), json.clone().unwrap_or(Value::Null));
    full.insert("computed".into(), Value::Object(computed.clone()));
    let view = match &spec.view {
        Some(v) => Some(render(env, path, "view", v, &Value::Object(full))?.trim().to_string()),
        None => None,
    };
    Ok(Outcome { output, json, computed, view, attempts })
}

/// A reply as checked against its contract.
pub(crate) enum Checked {
    /// The text (think blocks removed, trimmed) and, for JSON output, the validated object.
    Valid(String, Option<Value>),
    /// The text and what is wrong with it, for the retry.
    Invalid(String, String),
}

/// Extracts and validates one reply. A reply cut off before its JSON closed is an error, not a retry: it is the
/// budget's fault, not the model's; a retry with the same budget (and a longer prompt) would be cut again, and
/// the schema errors of a fragment only mislead.
pub(crate) fn check_reply(
    id: &str,
    reply: &Reply,
    is_json: bool,
    schema: Option<&Value>,
) -> Result<Checked, PromptError> {
    let text = strip_think(&reply.text).trim().to_string();
    if !is_json {
        return Ok(Checked::Valid(text, None));
    }
    let extracted = extract_object(&text);
    if let (Err(ExtractError::Unclosed | ExtractError::NoObject), Some(cut)) = (&extracted, reply.cut) {
        return Err(PromptError::OutputCut { id: id.to_string(), cut, raw: text });
    }
    let checked = extracted.map_err(|e| e.to_string()).and_then(|v| match schema {
        Some(s) => validate(s, &v).map(|_| v).map_err(|errs| errs.join("; ")),
        None => Ok(v),
    });
    Ok(match checked {
        Ok(v) => Checked::Valid(text, Some(v)),
        Err(message) => Checked::Invalid(text, message),
    })
}

/// Small models fix a concrete complaint better than a restated instruction, so the retry quotes the validator.
pub(crate) fn retry_request(req: &GenRequest, message: &str, lang: Lang) -> GenRequest {
    let note = match lang {
        Lang::Zh => format!("\n\n你上一次的回答未通过校验：{message}\n请只输出一个修正后的 JSON 对象。"),
        Lang::En => {
            format!("\n\nYour previous answer was rejected: {message}\nReply with one corrected JSON object only.")
        }
    };
    GenRequest { user: format!("{}{note}", req.user), ..req.clone() }
}
