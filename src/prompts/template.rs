//! MiniJinja in strict mode, plus the few filters prompts need.
//!
//! Strict undefined turns a typo into an error instead of an empty string in the prompt; before rendering we
//! also check top-level names ourselves, because MiniJinja's own message does not name the missing variable.
//! Values (user input, model output) are passed in the context and never parsed as templates, so `{{` inside an
//! article is just text.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use minijinja::value::{Kwargs, Value as MjValue, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use super::error::PromptError;

/// Functions MiniJinja provides globally; they look like undeclared variables to static analysis.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "cycler", "joiner", "lipsum"];

pub fn environment(partials: &BTreeMap<String, String>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Prompts are plain text and markdown: HTML escaping would corrupt quotes and ampersands in material.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_keep_trailing_newline(false);
    for (name, src) in partials {
        // A broken partial surfaces when a prompt includes it, with the partial's name in the message.
        let _ = env.add_template_owned(name.clone(), src.clone());
    }
    env.add_filter("json", json_filter);
    env.add_filter("bullets", bullets);
    env.add_filter("md_cell", md_cell);
    env.add_filter("truncate_chars", truncate_chars);
    env.add_filter("weighted_mean", weighted_mean);
    env.add_filter("sum_product", sum_product);
    env.add_filter("score_items", score_items);
    env
}

fn json_filter(v: MjValue, kwargs: Kwargs) -> Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let r = if indent.is_some() { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) };
    r.map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn bullets(v: MjValue) -> Result<String, Error> {
    if v.kind() == ValueKind::Seq {
        let items: Vec<String> = v.try_iter()?.map(|x| format!("- {x}")).collect();
        Ok(items.join("\n"))
    } else if v.is_none() || v.is_undefined() {
        Ok(String::new())
    } else {
        Ok(format!("- {v}"))
    }
}

fn md_cell(v: MjValue) -> String {
    v.to_string().replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn truncate_chars(v: MjValue, n: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= n {
        s
    } else {
        let mut t: String = s.chars().take(n).collect();
        t.push('…');
        t
    }
}

fn num(v: &MjValue, what: &str) -> Result<f64, Error> {
    f64::try_from(v.clone())
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("{what} is not a number: {v}")))
}

/// `scores | weighted_mean(weights)` for a mapping of name → score, or
/// `items | weighted_mean(weights, "name", "score")` for a list of records. Every weight must find its score:
/// a silently missing dimension would inflate the result.
fn weighted_mean(v: MjValue, weights: MjValue, key: Option<String>, val: Option<String>) -> Result<f64, Error> {
    let mut scores: Vec<(String, f64)> = Vec::new();
    match (v.kind(), key, val) {
        (ValueKind::Map, None, None) => {
            for k in v.try_iter()? {
                let name = k.to_string();
                scores.push((name.clone(), num(&v.get_item(&k)?, &name).unwrap_or(f64::NAN)));
            }
        }
        (ValueKind::Seq, Some(key), Some(val)) => {
            for it in v.try_iter()? {
                let name = it.get_attr(&key)?.to_string();
                scores.push((name.clone(), num(&it.get_attr(&val)?, &name)?));
            }
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "weighted_mean needs a mapping, or a list plus key and value attribute names",
            ))
        }
    }
    let (mut total, mut wsum) = (0.0, 0.0);
    for k in weights.try_iter()? {
        let name = k.to_string();
        let w = num(&weights.get_item(&k)?, &format!("weight {name}"))?;
        let s = scores
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .filter(|s| !s.is_nan())
            .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("no numeric score for `{name}`")))?;
        total += w * s;
        wsum += w;
    }
    if wsum == 0.0 {
        return Err(Error::new(ErrorKind::InvalidOperation, "weights sum to zero"));
    }
    Ok(total / wsum)
}

/// `risks | sum_product("likelihood", "impact")`: total exposure without asking the model to multiply.
fn sum_product(v: MjValue, a: String, b: String) -> Result<MjValue, Error> {
    let mut total = 0.0;
    for it in v.try_iter()? {
        total += num(&it.get_attr(&a)?, &a)? * num(&it.get_attr(&b)?, &b)?;
    }
    // Scores are integers; "32" reads better than "32.0" in a view.
    Ok(if total.fract() == 0.0 && total.abs() < 1e15 { MjValue::from(total as i64) } else { MjValue::from(total) })
}

/// `segments | score_items({"size": 1, "reach": 2})`: each record gets `score` = the weighted sum of its fields,
/// highest first; ties keep input order. Ranking is arithmetic, so the program does it, not the model.
fn score_items(v: MjValue, weights: MjValue) -> Result<MjValue, Error> {
    let mut rows: Vec<(f64, Value)> = Vec::new();
    for it in v.try_iter()? {
        let mut score = 0.0;
        for k in weights.try_iter()? {
            let name = k.to_string();
            score += num(&weights.get_item(&k)?, &name)? * num(&it.get_attr(&name)?, &name)?;
        }
        let mut row = to_json(&it);
        if let Value::Object(m) = &mut row {
            m.insert("score".into(), serde_json::json!(score));
        }
        rows.push((score, row));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(MjValue::from_serialize(rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>()))
}

/// Renders `source` (named `name` in messages) against a JSON object context.
pub fn render(env: &Environment<'_>, file: &str, name: &str, source: &str, ctx: &Value) -> Result<String, PromptError> {
    let terr = |message: String| PromptError::Template { file: file.to_string(), template: name.to_string(), message };
    let tmpl = env.template_from_named_str(name, source).map_err(|e| terr(describe(&e)))?;
    tmpl.render(ctx).map_err(|e| {
        terr(explain(&e, source, &tmpl.undeclared_variables(false), &tmpl.undeclared_variables(true), ctx))
    })
}

/// Evaluates a bare expression (`when`, `compute`, test `expr`).
pub fn eval(env: &Environment<'_>, file: &str, name: &str, expr: &str, ctx: &Value) -> Result<MjValue, PromptError> {
    let terr = |message: String| PromptError::Template { file: file.to_string(), template: name.to_string(), message };
    let compiled = env.compile_expression(expr).map_err(|e| terr(describe(&e)))?;
    compiled.eval(ctx).map_err(|e| {
        let why = explain(&e, expr, &compiled.undeclared_variables(false), &compiled.undeclared_variables(true), ctx);
        terr(format!("{why} in `{expr}`"))
    })
}

/// Names (or dotted paths) a template reads from its context, for lint. Compile errors come back as Err.
pub fn names_used(env: &Environment<'_>, source: &str, nested: bool) -> Result<BTreeSet<String>, String> {
    let t = env.template_from_named_str("lint", source).map_err(|e| describe(&e))?;
    Ok(t.undeclared_variables(nested).into_iter().filter(|n| !is_global(n)).collect())
}

pub fn expr_names_used(env: &Environment<'_>, expr: &str, nested: bool) -> Result<BTreeSet<String>, String> {
    let e = env.compile_expression(expr).map_err(|e| describe(&e))?;
    Ok(e.undeclared_variables(nested).into_iter().filter(|n| !is_global(n)).collect())
}

fn is_global(name: &str) -> bool {
    GLOBALS.contains(&name.split('.').next().unwrap_or(name))
}

/// MiniJinja's strict-mode error says "undefined value" without naming it; name the first unresolvable variable
/// (top-level names first, then dotted paths), skipping ones the template guards with `is defined` / `default`.
fn explain(e: &Error, source: &str, top: &HashSet<String>, nested: &HashSet<String>, ctx: &Value) -> String {
    if e.kind() == ErrorKind::UndefinedError || describe(e).contains("undefined") {
        if let Some(name) = first_missing(top, source, ctx) {
            return format!("undefined variable `{name}`; declare it under [vars] or fix the name");
        }
        if let Some(path) = first_missing(nested, source, ctx) {
            return format!("{} (`{path}` is undefined)", describe(e));
        }
    }
    describe(e)
}

fn first_missing(paths: &HashSet<String>, source: &str, ctx: &Value) -> Option<String> {
    let guarded = |p: &str| {
        let compact: String = source.split_whitespace().collect();
        compact.contains(&format!("{p}isdefined")) || compact.contains(&format!("{p}|default"))
    };
    let mut sorted: Vec<&String> = paths.iter().filter(|p| !is_global(p) && !guarded(p)).collect();
    sorted.sort();
    sorted.into_iter().find(|p| !resolves(ctx, p)).cloned()
}

fn resolves(ctx: &Value, path: &str) -> bool {
    let mut cur = ctx;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

fn describe(e: &Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

pub fn to_json(v: &MjValue) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> Environment<'static> {
        let mut p = BTreeMap::new();
        p.insert("_partials/rules.md".to_string(), "Write in {{ lang_name }}.".to_string());
        environment(&p)
    }

    #[test]
    fn undefined_variable_is_named() {
        let e = render(&env(), "f.toml", "user", "Hello {{ subjcet }}", &json!({"subject": "x"})).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("undefined variable `subjcet`"), "{e}");
    }

    #[test]
    fn undefined_in_expression_is_named_but_guards_work() {
        let e = eval(&env(), "f", "when", "stpes.x.skipped", &json!({"steps": {}})).unwrap_err().to_string();
        assert!(e.contains("undefined variable `stpes`"), "{e}");
        let out =
            render(&env(), "f", "u", "{% if region is defined %}{{ region }}{% endif %}{{ a }}", &json!({"a": 1}));
        assert_eq!(out.unwrap(), "1");
    }

    #[test]
    fn missing_nested_field_is_named() {
        let ctx = json!({"steps": {"facts": {"json": {"facts": []}}}});
        let e = render(&env(), "f", "user", "{{ steps.facts.json.fatcs | length }}", &ctx).unwrap_err().to_string();
        assert!(e.contains("`steps.facts.json.fatcs` is undefined"), "{e}");
    }

    #[test]
    fn input_is_never_template_processed() {
        let out = render(&env(), "f", "user", "<m>{{ input }}</m>", &json!({"input": "{{ x }} {% if %}"})).unwrap();
        assert_eq!(out, "<m>{{ x }} {% if %}</m>");
    }

    #[test]
    fn partials_filters_and_arithmetic() {
        let ctx = json!({"lang_name": "English", "items": ["a", "b|c"], "d": {"a": 4, "b": 2},
            "rs": [{"name": "a", "l": 2, "i": 3}, {"name": "b", "l": 1, "i": 5}]});
        let out = render(
            &env(),
            "f",
            "t",
            "{% include '_partials/rules.md' %}\n{{ items | bullets }}\n{{ items[1] | md_cell }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "Write in English.\n- a\n- b|c\nb\\|c");
        let v = eval(&env(), "f", "c", "d | weighted_mean({'a': 0.75, 'b': 0.25})", &ctx).unwrap();
        assert_eq!(f64::try_from(v).unwrap(), 3.5);
        let v = eval(&env(), "f", "c", "rs | weighted_mean({'a': 1, 'b': 1}, 'name', 'l')", &ctx).unwrap();
        assert_eq!(f64::try_from(v).unwrap(), 1.5);
        let v = eval(&env(), "f", "c", "(rs | score_items({'l': 1, 'i': 2}) | first).name", &ctx).unwrap();
        assert_eq!(v.as_str(), Some("b"));
        let v = eval(&env(), "f", "c", "missing | default(0) + 1", &ctx).unwrap();
        assert_eq!(i64::try_from(v).unwrap(), 1);
        let v = eval(&env(), "f", "c", "rs | sum_product('l', 'i')", &ctx).unwrap();
        assert_eq!(v.to_string(), "11");
        let e = eval(&env(), "f", "c", "d | weighted_mean({'a': 1, 'zz': 1})", &ctx).unwrap_err().to_string();
        assert!(e.contains("no numeric score for `zz`"), "{e}");
        assert_eq!(render(&env(), "f", "t", "{{ d | json }}", &ctx).unwrap(), r#"{"a":4,"b":2}"#);
    }
}
