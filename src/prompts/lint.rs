//! Static checks for prompt and script files, run by `moat prompts lint`, before every run, and in `cargo test`
//! over all built-ins. Each language variant is checked separately, since a locale can break a template.

use crate::sampling::Layers;
use std::collections::BTreeSet;

use minijinja::Environment;

use super::error::{locate, Problem, PromptError};
use super::format::{AssertKind, Format, OutputSpec, PromptFile, PromptText, Step};
use super::library::Library;
use super::locale::Lang;
use super::parse::Prompt;
use super::schema::{parse_schema, validate};
use super::template::{environment, expr_names_used, names_used};
use super::vars::{coerce, toml_to_json, RESERVED};

/// Lints one prompt by id (or path); a file that does not parse yields a single problem.
pub fn lint(lib: &Library, id: &str) -> Vec<Problem> {
    match lib.prompt(id) {
        Ok(p) => lint_prompt(lib, &p),
        Err(e) => vec![error_problem(lib, id, e)],
    }
}

/// Every problem in every file of the library.
pub fn lint_all(lib: &Library) -> Vec<Problem> {
    lib.ids().iter().flat_map(|id| lint(lib, id)).collect()
}

impl Library {
    pub fn lint(&self, id: &str) -> Vec<Problem> {
        lint(self, id)
    }

    pub fn lint_all(&self) -> Vec<Problem> {
        lint_all(self)
    }
}

fn error_problem(lib: &Library, id: &str, e: PromptError) -> Problem {
    match e {
        PromptError::Toml { file, line, col, message } => Problem { file, pos: Some((line, col)), message },
        other => {
            let file = lib.get(id).map(|e| e.display_path()).unwrap_or_else(|| id.to_string());
            Problem { file, pos: None, message: other.to_string() }
        }
    }
}

struct Linter<'a> {
    lib: &'a Library,
    prompt: &'a Prompt,
    env: Environment<'static>,
    out: Vec<Problem>,
}

impl Linter<'_> {
    fn push(&mut self, near: Option<&str>, message: String) {
        let pos = near.and_then(|n| locate(&self.prompt.text, n));
        let p = Problem { file: self.prompt.path.clone(), pos, message };
        if !self.out.contains(&p) {
            self.out.push(p);
        }
    }

    /// Checks a template's (or expression's) names: `allowed` top-level names, declared `vars.x`, and
    /// `steps.<id>` pointing only at steps in `earlier`.
    #[allow(clippy::too_many_arguments)]
    fn names(
        &mut self,
        what: &str,
        source: &str,
        is_expr: bool,
        allowed: &BTreeSet<String>,
        declared: &BTreeSet<String>,
        steps: Option<(&[String], usize)>,
        near: Option<&str>,
    ) {
        let used = if is_expr { expr_names_used(&self.env, source, true) } else { names_used(&self.env, source, true) };
        let used = match used {
            Ok(u) => u,
            Err(e) => return self.push(near, format!("{what}: {e}")),
        };
        for path in used {
            let mut segs = path.split('.');
            let head = segs.next().unwrap_or_default();
            let second = segs.next();
            if !allowed.contains(head) {
                self.push(
                    near,
                    format!("{what}: undefined variable `{head}`; declare it under [vars] or fix the name"),
                );
            } else if head == "vars" {
                if let Some(v) = second.filter(|v| !declared.contains(*v)) {
                    self.push(near, format!("{what}: `vars.{v}` is not declared under [vars]"));
                }
            } else if head == "steps" {
                let (Some(target), Some((ids, current))) = (second, steps) else { continue };
                let here = ids.get(current).map(String::as_str).unwrap_or("result");
                match ids.iter().position(|i| i == target) {
                    None => self.push(near, format!("{what}: step `{here}` refers to unknown step `{target}`")),
                    Some(j) if j >= current => {
                        self.push(near, format!("{what}: step `{here}` refers to step `{target}`, which has not run yet at that point (steps run in file order)"))
                    }
                    _ => {}
                }
            }
        }
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase() || f == '_')
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
}

pub fn lint_prompt(lib: &Library, prompt: &Prompt) -> Vec<Problem> {
    let mut l = Linter { lib, prompt, env: environment(lib.partials()), out: Vec::new() };
    for lang in prompt.languages() {
        match prompt.variant(lang) {
            Ok(f) => {
                lint_variant(&mut l, &f);
                if lang != Lang::En {
                    lint_locale_schemas(&mut l, lang, &prompt.file, &f);
                }
            }
            Err(e) => l.out.push(error_problem(lib, &prompt.id, e)),
        }
    }
    lint_tests(&mut l, &prompt.file);
    l.out
}

fn lint_variant(l: &mut Linter<'_>, f: &PromptFile) {
    let declared: BTreeSet<String> = f.vars.keys().cloned().collect();
    for (name, spec) in &f.vars {
        let near = format!("[vars.{name}]");
        if !is_ident(name) || RESERVED.contains(&name.as_str()) {
            l.push(
                Some(&near),
                format!("variable name `{name}` must be lower_snake_case and not one of: {}", RESERVED.join(", ")),
            );
        }
        use super::format::VarType as T;
        if spec.ty == T::Enum && spec.choices.is_empty() {
            l.push(Some(&near), format!("variable `{name}` is an enum but has no `choices`"));
        }
        if !spec.choices.is_empty() && matches!(spec.ty, T::Int | T::Float | T::Bool) {
            l.push(Some(&near), format!("variable `{name}`: `choices` only apply to text, enum and list variables"));
        }
        if let (Some(a), Some(b)) = (spec.min, spec.max) {
            if a > b {
                l.push(Some(&near), format!("variable `{name}`: min {a} is above max {b}"));
            }
        }
        if !spec.caps.is_empty() {
            lint_caps(l, f, name, spec);
        }
        if let Some(d) = &spec.default {
            if let Err(e) = coerce(spec, &toml_to_json(d)) {
                l.push(Some(&near), format!("variable `{name}`: default is invalid: {e}"));
            }
        }
    }
    lint_input(l, f);
    let mut allowed = declared.clone();
    allowed.extend(set(&["input", "lang", "lang_name", "vars"]));
    if f.is_script() {
        lint_script(l, f, &allowed, &declared);
    } else {
        if f.kind == Some(super::format::Kind::Script) {
            l.push(Some("kind"), "kind = \"script\" but the file has no [[steps]]".into());
        }
        if !f.result.from.to_vec().is_empty() || f.result.view.is_some() {
            l.push(Some("[result]"), "[result] only applies to scripts".into());
        }
        match &f.prompt {
            None => l.push(None, "a prompt file needs a [prompt] table with `system` and/or `user`".into()),
            Some(p) => lint_text(l, "prompt", p, &allowed, &declared, None),
        }
        lint_output(l, "output", &f.output, &allowed, &declared, None);
        if let Some(schema) = f.output.schema.as_deref().and_then(|s| parse_schema(s).ok()) {
            for (i, ex) in f.examples.iter().enumerate() {
                let checked = super::extract::extract_json(&ex.output)
                    .and_then(|v| validate(&schema, &v).map_err(|e| e.join("; ")));
                if let Err(e) = checked {
                    l.push(Some("[[examples]]"), format!("examples[{i}].output does not match the schema: {e}"));
                }
            }
        }
    }
}

/// `caps`: only an `int` variable may cap, and only arrays of this file's own output schema.
fn lint_caps(l: &mut Linter<'_>, f: &PromptFile, name: &str, spec: &super::format::VarSpec) {
    let near = format!("[vars.{name}]");
    if spec.ty != super::format::VarType::Int {
        l.push(Some(&near), format!("variable `{name}`: `caps` needs type = \"int\" (a count of items)"));
        return;
    }
    let Some(mut schema) = f.output.schema.as_deref().and_then(|s| parse_schema(s).ok()) else {
        l.push(Some(&near), format!("variable `{name}`: `caps` needs an [output] schema with the arrays it caps"));
        return;
    };
    for path in &spec.caps {
        if let Err(e) = super::schema::array_at(&mut schema, path) {
            l.push(Some(&near), format!("variable `{name}` caps `{path}`: {e}"));
        }
    }
}

/// `[input] long` and `map`: `map` only means something for map-reduce, must name a fact-extracting prompt, and
/// `truncate` (the older key) must not contradict `long`.
fn lint_input(l: &mut Linter<'_>, f: &PromptFile) {
    use super::format::Long;
    let raw = &l.prompt.raw;
    let truncate_set = raw.get("input").and_then(|i| i.get("truncate")).is_some()
        || raw.get("locale").and_then(toml::Value::as_table).is_some_and(|locales| {
            locales.values().any(|loc| loc.get("input").and_then(|i| i.get("truncate")).is_some())
        });
    if let (Some(long), true) = (f.input.long, truncate_set) {
        let long = match long {
            Long::Error => "error",
            Long::Head => "head",
            Long::Tail => "tail",
            Long::MapReduce => "map-reduce",
        };
        l.push(
            Some("truncate ="),
            format!("[input] sets both `long` and `truncate`; keep `long = \"{long}\"` and remove `truncate` (the older key)"),
        );
    }
    let Some(map) = &f.input.map else { return };
    if f.input.long != Some(Long::MapReduce) {
        l.push(Some("map ="), "[input] map is used only with long = \"map-reduce\"; add it or remove `map`".into());
    }
    let used = match l.lib.prompt(map) {
        Ok(p) => p,
        Err(e) => return l.push(Some("map ="), format!("[input] map: {e}")),
    };
    if used.file.is_script() {
        return l.push(Some("map ="), format!("[input] map: `{map}` is a script; map runs one prompt on each chunk"));
    }
    let has_facts = used.file.output.format == Format::Json
        && used.file.output.schema.as_deref().and_then(|s| parse_schema(s).ok()).is_some_and(|s| {
            let item = s.pointer("/properties/facts/items");
            s.pointer("/properties/facts/type").and_then(serde_json::Value::as_str) == Some("array")
                && item.and_then(|i| i.get("type")).and_then(serde_json::Value::as_str) == Some("object")
                && item.and_then(|i| i.pointer("/properties/statement/type")).and_then(serde_json::Value::as_str)
                    == Some("string")
        });
    if !has_facts {
        l.push(
            Some("map ="),
            format!("[input] map: `{map}` must reply with format = \"json\" and a schema whose `facts` is an array of objects with a `statement` string (as market/extract-facts does)"),
        );
    }
}

/// A locale may give its own schema (shorter limits for a denser language), but scripts read the same JSON in
/// every language: keys, types, enums and required fields must match the base schema's.
fn lint_locale_schemas(l: &mut Linter<'_>, lang: Lang, base: &PromptFile, f: &PromptFile) {
    let mut pairs = vec![("[output]".to_string(), base.output.schema.clone(), f.output.schema.clone())];
    for (b, s) in base.steps.iter().zip(&f.steps) {
        let schema = |st: &Step| st.output.as_ref().and_then(|o| o.schema.clone());
        pairs.push((format!("id = \"{}\"", s.id), schema(b), schema(s)));
    }
    for (near, a, b) in pairs {
        let (Some(a), Some(b)) = (a, b) else { continue };
        let (Ok(a), Ok(b)) = (parse_schema(&a), parse_schema(&b)) else { continue };
        if shape(&a) != shape(&b) {
            l.push(Some(&near), format!("the `{lang}` locale's schema must keep the base schema's keys, types, enums, bounds and required fields (only maxLength, minLength, maxItems, minItems and descriptions may differ)"));
        }
    }
}

/// A schema without the keywords a locale may change.
fn shape(schema: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "maxLength" | "minLength" | "maxItems" | "minItems" | "description" | "title")
                })
                .map(|(k, v)| (k.clone(), if k == "enum" { v.clone() } else { shape(v) }))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        other => other.clone(),
    }
}

fn lint_text(
    l: &mut Linter<'_>,
    what: &str,
    p: &PromptText,
    allowed: &BTreeSet<String>,
    declared: &BTreeSet<String>,
    steps: Option<(&[String], usize)>,
) {
    if p.system.is_none() && p.user.is_none() {
        l.push(None, format!("{what}: needs `system` and/or `user`"));
    }
    let near = steps.and_then(|(ids, i)| ids.get(i)).map(|id| format!("id = \"{id}\""));
    for (key, src) in [("system", &p.system), ("user", &p.user)] {
        if let Some(src) = src {
            l.names(&format!("{what}.{key}"), src, false, allowed, declared, steps, near.as_deref());
        }
    }
}

fn lint_output(
    l: &mut Linter<'_>,
    what: &str,
    o: &OutputSpec,
    allowed: &BTreeSet<String>,
    declared: &BTreeSet<String>,
    steps: Option<(&[String], usize)>,
) {
    let near =
        steps.and_then(|(ids, i)| ids.get(i)).map(|id| format!("id = \"{id}\"")).unwrap_or_else(|| "[output]".into());
    if let Some(s) = &o.schema {
        if o.format != Format::Json {
            l.push(Some(&near), format!("{what}: a schema needs format = \"json\""));
        }
        if let Err(errs) = parse_schema(s) {
            for e in errs {
                l.push(Some(&near), format!("{what}.schema: {e}"));
            }
        }
    }
    if o.retries.is_some_and(|r| r > 3) {
        l.push(Some(&near), format!("{what}: retries above 3 only burn time on a small model"));
    }
    let mut allowed = allowed.clone();
    allowed.extend(set(&["json", "computed", "output"]));
    let mut seen = BTreeSet::new();
    for c in &o.compute {
        if !is_ident(&c.name) || !seen.insert(c.name.clone()) {
            l.push(Some(&near), format!("{what}.compute: name `{}` must be lower_snake_case and unique", c.name));
        }
        if o.format != Format::Json {
            l.push(Some(&near), format!("{what}.compute needs format = \"json\""));
        }
        l.names(&format!("{what}.compute.{}", c.name), &c.expr, true, &allowed, declared, steps, Some(&near));
    }
    if let Some(v) = &o.view {
        l.names(&format!("{what}.view"), v, false, &allowed, declared, steps, Some(&near));
    }
}

fn lint_script(l: &mut Linter<'_>, f: &PromptFile, allowed: &BTreeSet<String>, declared: &BTreeSet<String>) {
    if f.kind == Some(super::format::Kind::Prompt) {
        l.push(Some("kind"), "kind = \"prompt\" but the file has [[steps]]".into());
    }
    if f.prompt.is_some() || !f.examples.is_empty() || f.output.schema.is_some() || f.output.view.is_some() {
        l.push(None, "a script takes [prompt], [[examples]] and [output] per step, not at the top level".into());
    }
    let ids: Vec<String> = f.steps.iter().map(|s| s.id.clone()).collect();
    let mut allowed = allowed.clone();
    allowed.insert("steps".into());
    for (i, step) in f.steps.iter().enumerate() {
        let near = format!("id = \"{}\"", step.id);
        if !is_ident(&step.id) {
            l.push(Some(&near), format!("step id `{}` must be lower_snake_case", step.id));
        }
        if ids[..i].contains(&step.id) {
            l.push(Some(&near), format!("step id `{}` is used twice", step.id));
        }
        let scope = Some((ids.as_slice(), i));
        let what = format!("steps.{}", step.id);
        if let Some(w) = &step.when {
            l.names(&format!("{what}.when"), w, true, &allowed, declared, scope, Some(&near));
        }
        if let Some(inp) = &step.input {
            l.names(&format!("{what}.input"), inp, false, &allowed, declared, scope, Some(&near));
        }
        match (&step.uses, &step.prompt) {
            (Some(_), Some(_)) | (None, None) => {
                l.push(Some(&near), format!("step `{}` needs exactly one of `uses` or [steps.prompt]", step.id))
            }
            (Some(uses), None) => lint_uses(l, step, uses, &allowed, declared, scope),
            (None, Some(p)) => {
                lint_text(l, &what, p, &allowed, declared, scope);
                if let Some(o) = &step.output {
                    lint_output(l, &format!("{what}.output"), o, &allowed, declared, scope);
                }
            }
        }
    }
    for from in f.result.from.to_vec() {
        if !ids.contains(&from) {
            l.push(Some("[result]"), format!("[result] from names unknown step `{from}`"));
        }
    }
    if let Some(v) = &f.result.view {
        let mut a = allowed.clone();
        a.insert("result_step".into());
        l.names("result.view", v, false, &a, declared, Some((ids.as_slice(), ids.len())), Some("[result]"));
    }
}

fn lint_uses(
    l: &mut Linter<'_>,
    step: &Step,
    uses: &str,
    allowed: &BTreeSet<String>,
    declared: &BTreeSet<String>,
    scope: Option<(&[String], usize)>,
) {
    let near = format!("id = \"{}\"", step.id);
    if step.output.is_some() {
        l.push(Some(&near), format!("step `{}`: a `uses` step takes its [output] from the used prompt", step.id));
    }
    for (k, v) in &step.with_vars {
        if let toml::Value::String(s) = v {
            l.names(&format!("steps.{}.with.{k}", step.id), s, false, allowed, declared, scope, Some(&near));
        }
    }
    let used = match l.lib.prompt(uses) {
        Ok(p) => p,
        Err(e) => return l.push(Some(&near), format!("step `{}`: {e}", step.id)),
    };
    if let Err(e) = super::parse::check_pin(&used, uses) {
        return l.push(Some(&near), format!("step `{}`: {e}", step.id));
    }
    if used.file.is_script() {
        return l.push(Some(&near), format!("step `{}`: `{uses}` is a script; scripts cannot be nested", step.id));
    }
    for k in step.with_vars.keys() {
        if !used.file.vars.contains_key(k) {
            l.push(Some(&near), format!("step `{}`: `{uses}` has no variable `{k}`", step.id));
        }
    }
    for (name, spec) in &used.file.vars {
        if spec.required && spec.default.is_none() && !step.with_vars.contains_key(name) {
            l.push(Some(&near), format!("step `{}`: `{uses}` needs `{name}`; add it to `with`", step.id));
        }
    }
}

fn lint_tests(l: &mut Linter<'_>, f: &PromptFile) {
    let is_script = f.is_script();
    let ids: Vec<String> = f.steps.iter().map(|s| s.id.clone()).collect();
    let mut names = BTreeSet::new();
    for t in &f.tests {
        let near = format!("name = \"{}\"", t.name);
        let what = format!("test `{}`", t.name);
        if !names.insert(t.name.clone()) {
            l.push(Some(&near), format!("{what}: duplicate test name"));
        }
        if let Some(lang) = &t.lang {
            if let Err(e) = lang.parse::<Lang>() {
                l.push(Some(&near), format!("{what}: {e}"));
            }
        }
        for k in t.vars.keys() {
            if !f.vars.contains_key(k) {
                l.push(Some(&near), format!("{what}: variable `{k}` is not declared"));
            }
        }
        if is_script && t.mock_output.is_some() {
            l.push(Some(&near), format!("{what}: scripts use [tests.mock] (step id = reply), not mock_output"));
        }
        if !is_script && !t.mock.is_empty() {
            l.push(Some(&near), format!("{what}: prompt files use mock_output, not [tests.mock]"));
        }
        for k in t.mock.keys() {
            if !ids.contains(k) {
                l.push(Some(&near), format!("{what}: [tests.mock] names unknown step `{k}`"));
            }
        }
        if t.assert.is_empty() {
            l.push(Some(&near), format!("{what}: has no [[tests.assert]]"));
        }
        for a in &t.assert {
            if a.kind != AssertKind::Schema && a.value.is_none() {
                l.push(Some(&near), format!("{what}: a {:?} assertion needs `value`", a.kind));
            }
            if a.kind.needs_output() && a.kind != AssertKind::ErrorContains && !t.is_mocked() && !t.requires_model {
                l.push(Some(&near), format!("{what}: a {:?} assertion needs a mocked output", a.kind));
            }
            if let Some(s) = &a.step {
                if !is_script {
                    l.push(Some(&near), format!("{what}: `step` only applies to script tests"));
                } else if !ids.contains(s) {
                    l.push(Some(&near), format!("{what}: assertion names unknown step `{s}`"));
                }
            }
            for expr in
                [a.value.as_deref().filter(|_| a.kind == AssertKind::Expr), a.of.as_deref()].into_iter().flatten()
            {
                if let Err(e) = expr_names_used(&l.env, expr, false) {
                    l.push(Some(&near), format!("{what}: expression `{expr}`: {e}"));
                }
            }
        }
    }
}

/// Tokens per character of the default model (SmolLM2-135M, 49,152-token byte-level BPE), measured by tokenising
/// text with it (`tests/it/prompts_json.rs` checks them): a 2,002-character Chinese article took 3,523 tokens (1.76 per
/// character), its 1,743-character English counterpart 401 (0.23), and a risk-register reply's keys, brackets,
/// numbers and enum values 0.34 per character pretty-printed (0.29 compact). The estimates use these figures rounded
/// up, so a budget that passes holds the largest reply with room to spare. Chinese is the expensive case: most of
/// its characters are two or three byte-level tokens for this English-trained vocabulary.
pub mod ratios {
    /// English prose (measured 0.23).
    pub const EN_TEXT: f64 = 0.30;
    /// Chinese prose, per character, CJK punctuation included (measured 1.76).
    pub const ZH_TEXT: f64 = 1.90;
    /// JSON syntax: keys with their quotes and colons, brackets, commas, numbers, enum values (measured 0.34).
    pub const JSON_SYNTAX: f64 = 0.40;
}

/// Characters assumed for a number without both bounds (`-1234.5678`: the grammar would allow more, but no prompt
/// asks for 30-digit figures).
const NUMBER_CHARS: f64 = 10.0;

/// Characters of a quoted passage id (`"c123"`).
const SOURCE_ID_CHARS: f64 = 6.0;

/// The largest reply a schema allows, split by how it tokenises.
#[derive(Debug, Default, Clone, Copy)]
struct Size {
    /// Keys, punctuation, numbers, literals and enum values.
    syntax: f64,
    /// Characters of free text (string values), written in the prompt's language.
    text: f64,
    /// Places where the grammar lets the model put a line break and indentation (one token each).
    breaks: f64,
}

impl Size {
    fn add(self, o: Size) -> Size {
        Size { syntax: self.syntax + o.syntax, text: self.text + o.text, breaks: self.breaks + o.breaks }
    }

    fn times(self, n: f64) -> Size {
        Size { syntax: self.syntax * n, text: self.text * n, breaks: self.breaks * n }
    }

    fn tokens(self, lang: Lang) -> f64 {
        let text = match lang {
            Lang::En => ratios::EN_TEXT,
            Lang::Zh => ratios::ZH_TEXT,
        };
        self.syntax * ratios::JSON_SYNTAX + self.text * text + self.breaks
    }
}

/// The largest valid reply to `schema` (string `maxLength` × array `maxItems`, keys, punctuation), or the path of
/// the first part with no upper bound.
fn largest(schema: &serde_json::Value, path: &str) -> Result<Size, String> {
    use serde_json::Value;
    let syntax = |n: f64| Size { syntax: n, ..Size::default() };
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return Ok(syntax(options.iter().map(|o| o.to_string().chars().count()).max().unwrap_or(4) as f64));
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let ty = ty.or_else(|| {
        if schema.get("properties").is_some() {
            Some("object")
        } else if schema.get("items").is_some() {
            Some("array")
        } else if schema.get("maxLength").is_some() {
            Some("string")
        } else {
            None
        }
    });
    let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
    if schema.get("format").and_then(Value::as_str) == Some(super::schema::SOURCE_ID) {
        // Replaced at run time by an enum of ids such as "c07"; a long document may reach "c123".
        return Ok(syntax(SOURCE_ID_CHARS));
    }
    match ty {
        Some("string") => match schema.get("maxLength").and_then(Value::as_u64) {
            Some(n) => Ok(Size { syntax: 2.0, text: n as f64, breaks: 0.0 }),
            None => Err(format!("{path} (a string without maxLength)")),
        },
        Some("integer") => Ok(syntax(match (bound("minimum"), bound("maximum")) {
            (Some(lo), Some(hi)) => {
                lo.abs().max(hi.abs()).max(1.0).log10().floor() + 1.0 + if lo < 0.0 { 1.0 } else { 0.0 }
            }
            _ => NUMBER_CHARS,
        })),
        Some("number") => Ok(syntax(NUMBER_CHARS)),
        Some("boolean") => Ok(syntax(5.0)),
        Some("null") => Ok(syntax(4.0)),
        Some("array") => {
            let Some(max) = schema.get("maxItems").and_then(Value::as_u64) else {
                return Err(format!("{path} (an array without maxItems)"));
            };
            let item = match schema.get("items") {
                Some(items) => largest(items, &format!("{path}[]"))?,
                None => return Err(format!("{path}[] (items of any kind)")),
            };
            let each = item.add(Size { syntax: 1.0, text: 0.0, breaks: 1.0 });
            Ok(syntax(2.0).add(each.times(max as f64)))
        }
        Some("object") => {
            let props = schema.get("properties").and_then(Value::as_object);
            let closed = schema.get("additionalProperties") == Some(&Value::Bool(false))
                || (props.is_some() && schema.get("additionalProperties").is_none());
            if !closed {
                return Err(format!("{path} (an object that allows extra properties)"));
            }
            let mut size = syntax(2.0).add(Size { breaks: 1.0, ..Size::default() });
            for (name, sub) in props.into_iter().flatten() {
                // "name": value, and the line it sits on
                let key = Size { syntax: name.chars().count() as f64 + 4.0, text: 0.0, breaks: 1.0 };
                size = size.add(key).add(largest(sub, &format!("{path}.{name}"))?);
            }
            Ok(size)
        }
        _ => Err(format!("{path} (a value of any kind)")),
    }
}

/// Budget warnings for one file: every structured step (a prompt, or a script's steps) in every language, checked
/// against the largest reply its schema allows, and against the default context. These are warnings, not lint
/// errors: `-n` or a script step's `max_tokens` can change the budget at run time.
pub fn budget_warnings(lib: &Library, id: &str) -> Vec<Problem> {
    let Ok(prompt) = lib.prompt(id) else { return Vec::new() };
    let defaults = crate::config::Config::default();
    let (default_max, n_ctx) = (defaults.sampling.max_tokens, defaults.model.n_ctx as usize);
    let mut out: Vec<Problem> = Vec::new();
    let mut warn = |near: &str, message: String| {
        let p = Problem { file: prompt.path.clone(), pos: locate(&prompt.text, near), message };
        if !out.contains(&p) {
            out.push(p);
        }
    };
    for lang in prompt.languages() {
        let Ok(f) = prompt.variant(lang) else { continue };
        // (label, where, schema, max_tokens)
        let mut checks: Vec<(String, String, Option<String>, Option<u32>)> = Vec::new();
        if f.is_script() {
            for step in &f.steps {
                let near = format!("id = \"{}\"", step.id);
                match (&step.uses, &step.output) {
                    (Some(uses), _) => {
                        let Ok(used) = lib.prompt(uses) else { continue };
                        let Ok(u) = used.variant(lang) else { continue };
                        let params = Layers {
                            prompt_file: Some(&u.model),
                            script: Some(&f.model),
                            step: Some(&step.model),
                            flags: None,
                        }
                        .merged();
                        checks.push((format!("step `{}`", step.id), near, u.output.schema.clone(), params.max_tokens));
                    }
                    (None, Some(o)) => {
                        let params =
                            Layers { script: Some(&f.model), step: Some(&step.model), ..Layers::default() }.merged();
                        checks.push((format!("step `{}`", step.id), near, o.schema.clone(), params.max_tokens));
                    }
                    (None, None) => {}
                }
            }
        } else {
            checks.push(("the reply".into(), "max_tokens".into(), f.output.schema.clone(), f.model.max_tokens));
        }
        for (label, near, schema, max_tokens) in checks {
            let max_tokens = max_tokens.unwrap_or(default_max) as usize;
            if max_tokens > n_ctx / 2 {
                warn(&near, format!(
                    "warning ({lang}): {label}: max_tokens {max_tokens} is more than half the default {n_ctx}-token context; the engine keeps at most half for the reply, so a long input leaves it less"
                ));
            }
            let Some(schema) = schema.as_deref().and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else {
                continue;
            };
            match largest(&schema, "$") {
                Err(part) => warn(&near, format!(
                    "warning ({lang}): {label}: the schema allows replies of any length at {part}, so no max_tokens can be checked; bound it"
                )),
                Ok(size) => {
                    let need = size.tokens(lang).ceil() as usize;
                    if need > max_tokens {
                        warn(&near, format!(
                            "warning ({lang}): {label}: max_tokens {max_tokens} cannot hold the largest reply the schema allows (about {need} tokens); raise max_tokens or lower the schema's maxLength/maxItems"
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Budget warnings for every file in the library (see [`budget_warnings`]).
pub fn budget_warnings_all(lib: &Library) -> Vec<Problem> {
    lib.ids().iter().flat_map(|id| budget_warnings(lib, id)).collect()
}

/// The estimated tokens of the largest reply `schema` allows in `lang` (for tests and tools); `None` when unbounded.
pub fn largest_reply_tokens(schema: &str, lang: Lang) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(schema).ok()?;
    largest(&v, "$").ok().map(|s| s.tokens(lang).ceil() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        for (id, text) in files {
            let path = dir.path().join(format!("{id}.toml"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let lib = Library::load(&[dir.path().to_path_buf()]).unwrap();
        (dir, lib)
    }

    const SCRIPT: &str = r#"
format = 1
kind = "script"
[vars.company]
required = true

[[steps]]
id = "facts"
uses = "market/extract-facts@1"
[steps.with]
focus = "{{ steps.brief.output }}"

[[steps]]
id = "score"
[steps.prompt]
user = "{{ steps.facts.output }} {{ steps.nope.json }} {{ vars.compnay }} {{ companyy }}"

[[steps]]
id = "brief"
uses = "market/exec-brief"
when = "steps.score.json.verdict != 'x'"
"#;

    #[test]
    fn budgets_are_checked_against_the_schema_per_language() {
        let text = r#"
format = 1
[model]
max_tokens = 300
[prompt]
user = "x"
[output]
format = "json"
schema = '{"type":"object","additionalProperties":false,"required":["items"],"properties":{"items":{"type":"array","maxItems":8,"items":{"type":"string","maxLength":100}}}}'
[locale.zh.prompt]
user = "x"
"#;
        let (_d, lib) = lib_with(&[("t/p", text)]);
        assert!(lint(&lib, "t/p").is_empty(), "budget findings are warnings, not errors");
        let w: Vec<String> = budget_warnings(&lib, "t/p").iter().map(|p| p.to_string()).collect();
        // 800 characters of text: about 240 tokens in English, but 800 in Chinese with this model.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("warning (zh)") && w[0].contains("max_tokens 300 cannot hold"), "{w:?}");
        assert!(w[0].contains(":4:1:"), "points at max_tokens: {w:?}");

        let unbounded = text.replace(r#","maxItems":8"#, "");
        let (_d, lib) = lib_with(&[("t/p", &unbounded)]);
        let w: Vec<String> = budget_warnings(&lib, "t/p").iter().map(|p| p.to_string()).collect();
        assert!(w.iter().any(|m| m.contains("any length at $.items (an array without maxItems)")), "{w:?}");
    }

    #[test]
    fn a_locale_schema_may_only_change_limits() {
        let base = r#"
format = 1
[prompt]
user = "x"
[output]
format = "json"
schema = '{"type":"object","required":["a"],"properties":{"a":{"type":"string","maxLength":100}}}'
[locale.zh.output]
schema = 'SCHEMA'
"#;
        let ok = base.replace(
            "SCHEMA",
            r#"{"type":"object","required":["a"],"properties":{"a":{"type":"string","maxLength":40}}}"#,
        );
        let (_d, lib) = lib_with(&[("t/p", &ok)]);
        assert!(lint(&lib, "t/p").is_empty(), "{:?}", lint(&lib, "t/p"));
        let renamed = base.replace(
            "SCHEMA",
            r#"{"type":"object","required":["b"],"properties":{"b":{"type":"string","maxLength":40}}}"#,
        );
        let (_d, lib) = lib_with(&[("t/p", &renamed)]);
        let all: Vec<String> = lint(&lib, "t/p").iter().map(|p| p.to_string()).collect();
        assert!(all.iter().any(|m| m.contains("`zh` locale's schema must keep the base schema's keys")), "{all:?}");
    }

    #[test]
    fn input_long_and_map_are_checked() {
        let prompt = |input: &str| format!("format = 1\n[input]\n{input}\n[prompt]\nuser = \"x\"\n");
        let facts = r#"
format = 1
[prompt]
user = "x"
[output]
format = "json"
schema = '{"type":"object","properties":{"facts":{"type":"array","maxItems":3,"items":{"type":"object","properties":{"statement":{"type":"string","maxLength":80}}}}}}'
"#;
        let no_facts = facts.replace("statement", "claim");
        let cases: [(&str, Option<&str>); 7] = [
            ("long = \"map-reduce\"\nmap = \"t/facts\"", None),
            ("long = \"map-reduce\"", None),
            ("long = \"head\"\nmap = \"t/facts\"", Some("map is used only with long = \"map-reduce\"")),
            ("long = \"map-reduce\"\nmap = \"t/nope\"", Some("[input] map: unknown prompt")),
            (
                "long = \"map-reduce\"\nmap = \"t/claims\"",
                Some("`t/claims` must reply with format = \"json\" and a schema whose `facts`"),
            ),
            ("long = \"map-reduce\"\nmap = \"t/s\"", Some("`t/s` is a script")),
            ("long = \"map-reduce\"\ntruncate = \"head\"", Some("keep `long = \"map-reduce\"` and remove `truncate`")),
        ];
        for (input, want) in cases {
            let text = prompt(input);
            let (_d, lib) = lib_with(&[("t/p", &text), ("t/facts", facts), ("t/claims", &no_facts), ("t/s", SCRIPT)]);
            let all: Vec<String> = lint(&lib, "t/p").iter().map(|p| p.to_string()).collect();
            match want {
                None => assert!(all.is_empty(), "{input}: {all:?}"),
                Some(needle) => {
                    assert!(all.iter().any(|m| m.contains(needle)), "{input}: want `{needle}` in {all:?}");
                    assert!(all.iter().all(|m| m.contains(":4:1:")), "points at the second [input] line: {all:?}");
                }
            }
        }
    }

    #[test]
    fn an_evidence_list_counts_as_bounded_in_the_budget() {
        let schema = r#"{"type":"object","additionalProperties":false,"properties":{"e":{"type":"array","maxItems":2,"items":{"type":"string","format":"source-id"}}}}"#;
        let n = largest_reply_tokens(schema, Lang::En).expect("bounded");
        assert!((5..20).contains(&n), "{n}");
    }

    #[test]
    fn the_built_in_library_passes_the_budget_lint_in_both_languages() {
        let w: Vec<String> = budget_warnings_all(&Library::builtin()).iter().map(|p| p.to_string()).collect();
        assert!(w.is_empty(), "{}", w.join("\n"));
    }

    /// A built-in count ("at most {{ max_risks }} risks") must be kept by the schema, not only asked for.
    #[test]
    fn every_built_in_count_variable_caps_its_lists() {
        let lib = Library::builtin();
        for id in lib.ids() {
            let Ok(prompt) = lib.prompt(&id) else { continue };
            for (name, spec) in &prompt.file.vars {
                if name.starts_with("max_") && spec.ty == super::super::format::VarType::Int {
                    assert!(!spec.caps.is_empty(), "{id}: `{name}` has no `caps`");
                }
            }
        }
    }

    #[test]
    fn step_references_are_checked() {
        let (_d, lib) = lib_with(&[("t/s", SCRIPT)]);
        let msgs: Vec<String> = lint(&lib, "t/s").iter().map(|p| p.to_string()).collect();
        let all = msgs.join("\n");
        assert!(all.contains("step `facts` refers to step `brief`, which has not run yet"), "{all}");
        assert!(all.contains("step `score` refers to unknown step `nope`"), "{all}");
        assert!(all.contains("`vars.compnay` is not declared"), "{all}");
        assert!(all.contains("undefined variable `companyy`"), "{all}");
        assert!(all.contains("`market/exec-brief` needs `subject`"), "{all}");
        assert!(msgs.iter().any(|m| m.contains(":8:") && m.contains("`brief`")), "position of the facts step: {all}");
    }

    #[test]
    fn running_a_script_with_bad_refs_exits_2() {
        let (_d, lib) = lib_with(&[("t/s", SCRIPT)]);
        let mut gen = crate::prompts::params::MockGenerator::default();
        let e =
            crate::prompts::script::run_script(&lib, "t/s", &[], "x", Lang::En, &Default::default(), None, &mut gen)
                .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(gen.requests.is_empty());
    }

    #[test]
    fn bad_schema_vars_and_tests_are_reported() {
        let text = r#"
format = 1
[vars.n]
type = "int"
default = 50
max = 10
[vars.input]
[vars.kind]
type = "enum"
[vars.few]
type = "int"
caps = ["a", "nope"]
[vars.label]
caps = ["a"]
[prompt]
user = "x"
[output]
format = "json"
schema = '{"type":"object","properties":{"a":{"type":"string"}}}'
[[examples]]
input = "i"
output = "{\"a\": 1}"
[[tests]]
name = "t"
vars = { zzz = 1 }
[[tests.assert]]
type = "contains"
value = "x"
"#;
        let (_d, lib) = lib_with(&[("t/p", text)]);
        let all: Vec<String> = lint(&lib, "t/p").iter().map(|p| p.to_string()).collect();
        let all = all.join("\n");
        for needle in [
            "default is invalid: 50 is above the maximum 10",
            "variable name `input`",
            "enum but has no `choices`",
            "examples[0].output does not match the schema",
            "variable `zzz` is not declared",
            "needs a mocked output",
            "variable `few` caps `a`: the output schema's `a` is not an array",
            "variable `few` caps `nope`: the output schema has no property `nope`",
            "variable `label`: `caps` needs type = \"int\"",
        ] {
            assert!(all.contains(needle), "missing `{needle}` in:\n{all}");
        }
    }
}
