//! Declared, typed template variables: coercion from CLI strings or TOML values, defaults, choices and ranges.
//!
//! Declaring variables (instead of discovering them from templates) is what gives a usage line, validation
//! before any tokens are spent, and completion in the REPL.

use serde_json::{Map, Value};

use super::error::PromptError;
use super::format::{PromptFile, VarSpec, VarType};
use super::parse::Prompt;

/// Names the runtime provides; a prompt may not declare them.
pub const RESERVED: &[&str] =
    &["input", "lang", "lang_name", "vars", "steps", "json", "computed", "output", "rendered", "result_step", "view"];

/// `usage: moat run market/risk-register -v subject=<text> [-v max_risks=8] < input.txt`
pub fn usage_line(prompt: &Prompt) -> String {
    usage_for(&prompt.id, &prompt.file)
}

pub(crate) fn usage_for(id: &str, file: &PromptFile) -> String {
    let mut parts = vec![format!("usage: moat run {id}")];
    let mut vars: Vec<(&String, &VarSpec)> = file.vars.iter().collect();
    vars.sort_by_key(|(name, v)| (!v.required, name.as_str()));
    for (name, v) in vars {
        let shown = match (&v.default, &v.example) {
            (Some(d), _) => display_toml(d),
            (None, Some(ex)) => format!("<{ex}>"),
            (None, None) if !v.choices.is_empty() => v.choices.join("|"),
            _ => format!("<{}>", type_word(v.ty)),
        };
        if v.required {
            parts.push(format!("-v {name}={shown}"));
        } else {
            parts.push(format!("[-v {name}={shown}]"));
        }
    }
    let needs_input = file.input.required;
    parts.push(if needs_input { "< input.txt".into() } else { "[< input.txt]".into() });
    parts.join(" ")
}

fn type_word(t: VarType) -> &'static str {
    match t {
        VarType::String | VarType::Text | VarType::Enum => "text",
        VarType::Int => "integer",
        VarType::Float => "number",
        VarType::Bool => "true|false",
        VarType::List => "a,b",
    }
}

fn display_toml(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(a) => a.iter().map(display_toml).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `--var k=v` pairs as given values: strings until each variable's spec coerces them.
pub(crate) fn from_cli(vars: &[(String, String)]) -> Vec<(String, Value)> {
    vars.iter()
        .map(|(k, v)| (k.clone(), Value::String(crate::text_input::normalize_newlines(v).into_owned())))
        .collect()
}

pub fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Coerces one value to its declared type and checks choices and ranges. Errors are short phrases; the caller
/// adds the variable name and the usage line.
pub fn coerce(spec: &VarSpec, value: &Value) -> Result<Value, String> {
    let v = match spec.ty {
        VarType::String | VarType::Text | VarType::Enum => {
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => return Err(format!("expected text, got {other}")),
            };
            check_choice(spec, &s)?;
            Value::String(s)
        }
        VarType::Int => {
            let n = match value {
                Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default(),
                Value::String(s) => s.trim().parse::<i64>().map_err(|_| format!("`{s}` is not a whole number"))?,
                other => return Err(format!("expected a whole number, got {other}")),
            };
            check_range(spec, n as f64)?;
            Value::from(n)
        }
        VarType::Float => {
            let x = match value {
                Value::Number(n) => n.as_f64().unwrap_or_default(),
                Value::String(s) => s.trim().parse::<f64>().map_err(|_| format!("`{s}` is not a number"))?,
                other => return Err(format!("expected a number, got {other}")),
            };
            check_range(spec, x)?;
            Value::from(x)
        }
        VarType::Bool => match value {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Value::Bool(true),
                "false" | "no" | "0" | "off" => Value::Bool(false),
                _ => return Err(format!("`{s}` is not true or false")),
            },
            other => return Err(format!("expected true or false, got {other}")),
        },
        VarType::List => {
            let items: Vec<String> = match value {
                Value::Array(a) => {
                    a.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect()
                }
                Value::String(s) if s.trim_start().starts_with('[') => {
                    serde_json::from_str::<Vec<String>>(s).map_err(|e| format!("not a JSON list of strings: {e}"))?
                }
                // Full-width comma and 、 are what Chinese keyboards type between items.
                Value::String(s) => {
                    s.split([',', '，', '、']).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
                }
                other => return Err(format!("expected a list, got {other}")),
            };
            for it in &items {
                check_choice(spec, it)?;
            }
            check_range(spec, items.len() as f64).map_err(|e| format!("number of items: {e}"))?;
            Value::from(items)
        }
    };
    Ok(v)
}

fn check_choice(spec: &VarSpec, s: &str) -> Result<(), String> {
    if !spec.choices.is_empty() && !spec.choices.iter().any(|c| c == s) {
        return Err(format!("`{s}` is not one of: {}", spec.choices.join(", ")));
    }
    Ok(())
}

fn check_range(spec: &VarSpec, x: f64) -> Result<(), String> {
    if let Some(min) = spec.min {
        if x < min {
            return Err(format!("{x} is below the minimum {min}"));
        }
    }
    if let Some(max) = spec.max {
        if x > max {
            return Err(format!("{x} is above the maximum {max}"));
        }
    }
    Ok(())
}

/// Given values (last one wins) → the full variable map: every declared var, defaulted, coerced, or `null`
/// for optional ones without a default (so templates can test `{% if region %}` under strict undefined).
pub fn resolve_vars(id: &str, file: &PromptFile, given: &[(String, Value)]) -> Result<Map<String, Value>, PromptError> {
    let usage = || usage_for(id, file);
    for (name, _) in given {
        if !file.vars.contains_key(name) {
            let declared: Vec<&str> = file.vars.keys().map(String::as_str).collect();
            let close = crate::suggest::did_you_mean(name, declared.iter().copied()).into_iter().next();
            let hint = match close {
                Some(c) => format!("not declared (did you mean `{c}`?)"),
                None if declared.is_empty() => "not declared; this prompt takes no variables".into(),
                None => format!("not declared; known: {}", declared.join(", ")),
            };
            return Err(PromptError::BadVar { name: name.clone(), message: hint, usage: usage() });
        }
    }
    let mut out = Map::new();
    for (name, spec) in &file.vars {
        let given_value = given.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let value = match (given_value, &spec.default) {
            (Some(v), _) => v,
            (None, Some(d)) => toml_to_json(d),
            (None, None) if spec.required => {
                return Err(PromptError::MissingVar { name: name.clone(), usage: usage() });
            }
            (None, None) => {
                out.insert(name.clone(), Value::Null);
                continue;
            }
        };
        let v = coerce(spec, &value).map_err(|message| PromptError::BadVar {
            name: name.clone(),
            message,
            usage: usage(),
        })?;
        out.insert(name.clone(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PromptFile {
        toml::from_str(
            r#"
            format = 1
            [input]
            required = true
            [vars.subject]
            required = true
            example = "ClaimPilot"
            [vars.max_risks]
            type = "int"
            default = 8
            min = 3
            max = 20
            [vars.ratio]
            type = "float"
            default = 0.5
            min = 0
            max = 1
            [vars.strict]
            type = "bool"
            default = false
            [vars.tone]
            type = "enum"
            choices = ["formal", "plain"]
            default = "plain"
            [vars.categories]
            type = "list"
            default = ["legal", "market"]
            choices = ["legal", "market", "technical"]
            "#,
        )
        .unwrap()
    }

    fn s(k: &str, v: &str) -> (String, Value) {
        (k.to_string(), Value::String(v.to_string()))
    }

    #[test]
    fn defaults_and_coercion() {
        let v =
            resolve_vars("x", &file(), &[s("subject", "A"), s("max_risks", "5"), s("categories", "legal，technical")])
                .unwrap();
        assert_eq!(v["max_risks"], Value::from(5));
        assert_eq!(v["ratio"], Value::from(0.5));
        assert_eq!(v["strict"], Value::Bool(false));
        assert_eq!(v["categories"], serde_json::json!(["legal", "technical"]));
    }

    #[test]
    fn type_choice_range_errors() {
        let f = file();
        let err = |given: &[(String, Value)]| resolve_vars("x", &f, given).unwrap_err().to_string();
        let e = err(&[s("subject", "A"), s("max_risks", "many")]);
        assert!(e.starts_with("variable `max_risks`: `many` is not a whole number; usage:"), "{e}");
        let e = err(&[s("subject", "A"), s("max_risks", "99")]);
        assert!(e.contains("99 is above the maximum 20"), "{e}");
        let e = err(&[s("subject", "A"), s("tone", "angry")]);
        assert!(e.contains("`angry` is not one of: formal, plain"), "{e}");
        let e = err(&[s("subject", "A"), s("categories", "legal、weather")]);
        assert!(e.contains("`weather` is not one of"), "{e}");
        let e = err(&[s("subject", "A"), s("strict", "maybe")]);
        assert!(e.contains("not true or false"), "{e}");
        let e = err(&[s("subject", "A"), s("ratio", "1.5")]);
        assert!(e.contains("above the maximum 1"), "{e}");
        let e = err(&[s("subject", "A"), s("subjcet", "B")]);
        assert!(e.contains("did you mean `subject`"), "{e}");
    }

    #[test]
    fn missing_required_gives_usage() {
        let e = resolve_vars("market/x", &file(), &[]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let s = e.to_string();
        assert!(s.starts_with("missing variable `subject`; usage: moat run market/x -v subject=<ClaimPilot>"), "{s}");
        assert!(s.contains("[-v max_risks=8]") && s.ends_with("< input.txt"), "{s}");
    }
}
