//! A small JSON Schema validator for the subset the library uses.
//!
//! The grammar built by the engine already forces the shape; this re-check catches what grammars do not enforce
//! well (ranges, lengths) and produces short messages a small model can act on in its one retry. Keywords outside
//! the subset are rejected by [`check_schema`] rather than silently ignored.

use serde_json::Value;

const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "description",
    "title",
    "format",
];

/// The one `format` the subset accepts: a string naming a passage of the input (`c07`). It is allowed only as the
/// `items` of an array (an evidence list); at run time moat replaces it with an `enum` of the ids the step's
/// input carries, so a grammar-constrained reply can only cite passages that exist.
pub const SOURCE_ID: &str = "source-id";

/// The most ids one evidence list may hold: a point rests on one or two passages, and every id costs tokens.
pub const MAX_SOURCE_IDS: u64 = 3;
const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean", "null"];

/// The array schema at `path` (property names joined by dots, from the root object), or why there is none.
pub fn array_at<'a>(schema: &'a mut Value, path: &str) -> Result<&'a mut Value, String> {
    let mut node = schema;
    for key in path.split('.') {
        node = node
            .get_mut("properties")
            .and_then(|p| p.get_mut(key))
            .ok_or_else(|| format!("the output schema has no property `{path}`"))?;
    }
    if node.get("type").and_then(Value::as_str) != Some("array") {
        return Err(format!("the output schema's `{path}` is not an array"));
    }
    Ok(node)
}

/// Lowers the `maxItems` of the array at `path` to `n` (never raises it), and `minItems` with it when it would
/// exceed `n`. Errors as [`array_at`].
pub fn cap_items(schema: &mut Value, path: &str, n: u64) -> Result<(), String> {
    let node = array_at(schema, path)?;
    let max = node.get("maxItems").and_then(Value::as_u64).map_or(n, |m| m.min(n));
    node["maxItems"] = Value::from(max);
    if node.get("minItems").and_then(Value::as_u64).is_some_and(|m| m > max) {
        node["minItems"] = Value::from(max);
    }
    Ok(())
}

/// Parses and checks a schema; returns problems as readable strings.
pub fn parse_schema(text: &str) -> Result<Value, Vec<String>> {
    let v: Value = serde_json::from_str(text).map_err(|e| vec![format!("schema is not valid JSON: {e}")])?;
    let mut problems = Vec::new();
    check_schema(&v, "$", false, &mut problems);
    if v.get("type").and_then(Value::as_str) != Some("object") {
        problems.push("schema root must have \"type\": \"object\" (the engine expects one JSON object)".into());
    }
    if problems.is_empty() {
        Ok(v)
    } else {
        Err(problems)
    }
}

/// `is_items`: `s` is the `items` of an array (the only place `format` may appear).
fn check_schema(s: &Value, path: &str, is_items: bool, out: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        out.push(format!("schema at {path} must be an object"));
        return;
    };
    if obj.get("items").and_then(|i| i.get("format")).and_then(Value::as_str) == Some(SOURCE_ID)
        && obj.get("maxItems").and_then(Value::as_u64).is_none_or(|n| n > MAX_SOURCE_IDS)
    {
        out.push(format!("schema at {path}: an evidence list (items with format \"{SOURCE_ID}\") needs maxItems of at most {MAX_SOURCE_IDS}"));
    }
    for (k, v) in obj {
        if !KEYWORDS.contains(&k.as_str()) {
            out.push(format!("schema at {path}: keyword `{k}` is not supported (supported: {})", KEYWORDS.join(", ")));
            continue;
        }
        match k.as_str() {
            "type" => match v.as_str() {
                Some(t) if TYPES.contains(&t) => {}
                _ => out.push(format!("schema at {path}: `type` must be one of {}", TYPES.join(", "))),
            },
            "properties" => match v.as_object() {
                Some(props) => {
                    for (name, sub) in props {
                        check_schema(sub, &format!("{path}.{name}"), false, out);
                    }
                }
                None => out.push(format!("schema at {path}: `properties` must be an object")),
            },
            "required" => {
                let names: Vec<&str> =
                    v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                let props = obj.get("properties").and_then(Value::as_object);
                for n in names {
                    if !props.is_some_and(|p| p.contains_key(n)) {
                        out.push(format!("schema at {path}: required field `{n}` is not in `properties`"));
                    }
                }
            }
            "additionalProperties" if !v.is_boolean() => {
                out.push(format!("schema at {path}: `additionalProperties` must be true or false"))
            }
            "enum" if v.as_array().is_none_or(|a| a.is_empty()) => {
                out.push(format!("schema at {path}: `enum` must be a non-empty array"))
            }
            "items" => check_schema(v, &format!("{path}[]"), true, out),
            "format" => {
                if v.as_str() != Some(SOURCE_ID) {
                    out.push(format!(
                        "schema at {path}: `format` may only be \"{SOURCE_ID}\" (an id of a passage of the input)"
                    ));
                } else if !is_items || obj.get("type").and_then(Value::as_str) != Some("string") {
                    out.push(format!("schema at {path}: `format: \"{SOURCE_ID}\"` applies only to a string schema that is the `items` of an array, e.g. \"evidence\": {{\"type\": \"array\", \"maxItems\": 2, \"items\": {{\"type\": \"string\", \"format\": \"{SOURCE_ID}\"}}}}"));
                } else if obj.keys().any(|k| !matches!(k.as_str(), "type" | "format" | "description" | "title")) {
                    out.push(format!("schema at {path}: a \"{SOURCE_ID}\" string takes no other constraints (moat sets its values at run time)"));
                }
            }
            "minItems" | "maxItems" | "minLength" | "maxLength" if !v.is_u64() => {
                out.push(format!("schema at {path}: `{k}` must be a non-negative integer"))
            }
            "minimum" | "maximum" if !v.is_number() => out.push(format!("schema at {path}: `{k}` must be a number")),
            _ => {}
        }
    }
}

/// Validates `value`; returns every violation (capped) as `path: what is wrong`. A `format: "source-id"` string is
/// checked as a plain string here: the run replaces it with an `enum` of the ids the step's input carries.
pub fn validate(schema: &Value, value: &Value) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    walk(schema, value, "$", &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        errs.truncate(8);
        Err(errs)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "integer" => v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn walk(s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        if !type_ok(t, v) {
            errs.push(format!("{path}: expected {t}, got {}", type_name(v)));
            return;
        }
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            errs.push(format!("{path}: {v} is not one of {}", list.join(", ")));
        }
    }
    match v {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for name in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(name) {
                        errs.push(format!("{path}: missing required field `{name}`"));
                    }
                }
            }
            for (k, child) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => walk(sub, child, &format!("{path}.{k}"), errs),
                    None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        errs.push(format!("{path}: field `{k}` is not allowed"))
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if n < min {
                    errs.push(format!("{path}: has {n} item(s), needs at least {min}"));
                }
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if n > max {
                    errs.push(format!("{path}: has {n} items, allowed at most {max}"));
                }
            }
            if let Some(sub) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    walk(sub, it, &format!("{path}[{i}]"), errs);
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as u64;
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if n > max {
                    errs.push(format!("{path}: text is {n} characters, allowed at most {max}"));
                }
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if n < min {
                    errs.push(format!("{path}: text is {n} characters, needs at least {min}"));
                }
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(0.0);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    errs.push(format!("{path}: {num} is less than the minimum {min}"));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    errs.push(format!("{path}: {num} is greater than the maximum {max}"));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        parse_schema(
            r#"{"type":"object","additionalProperties":false,"required":["risks"],
            "properties":{"risks":{"type":"array","maxItems":2,"items":{"type":"object","required":["category","likelihood"],
            "properties":{"category":{"enum":["legal","market"]},"likelihood":{"type":"integer","minimum":1,"maximum":5},
            "note":{"type":"string","maxLength":5}}}}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn messages_name_path_and_rule() {
        let v = json!({"risks":[{"category":"weather","likelihood":9,"note":"toolong"},{"likelihood":"x"},{"category":"legal","likelihood":1}],"extra":1});
        let errs = validate(&schema(), &v).unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("$.risks: has 3 items, allowed at most 2"), "{all}");
        assert!(all.contains("$.risks[0].category: \"weather\" is not one of \"legal\", \"market\""), "{all}");
        assert!(all.contains("$.risks[0].likelihood: 9 is greater than the maximum 5"), "{all}");
        assert!(all.contains("$.risks[0].note: text is 7 characters, allowed at most 5"), "{all}");
        assert!(all.contains("$.risks[1]: missing required field `category`"), "{all}");
        assert!(all.contains("$.risks[1].likelihood: expected integer, got string"), "{all}");
        assert!(all.contains("$: field `extra` is not allowed"), "{all}");
    }

    #[test]
    fn caps_lower_max_items_and_never_raise_them() {
        let mut s = serde_json::json!({"type": "object", "properties": {
            "a": {"type": "array", "minItems": 2, "maxItems": 5, "items": {"type": "string"}},
            "o": {"type": "object", "properties": {"b": {"type": "array", "items": {"type": "string"}}}},
            "t": {"type": "string"}}});
        super::cap_items(&mut s, "a", 3).unwrap();
        assert_eq!(
            (s["properties"]["a"]["maxItems"].as_u64(), s["properties"]["a"]["minItems"].as_u64()),
            (Some(3), Some(2))
        );
        super::cap_items(&mut s, "a", 9).unwrap();
        assert_eq!(s["properties"]["a"]["maxItems"], 3);
        super::cap_items(&mut s, "a", 1).unwrap();
        assert_eq!(
            (s["properties"]["a"]["maxItems"].as_u64(), s["properties"]["a"]["minItems"].as_u64()),
            (Some(1), Some(1))
        );
        super::cap_items(&mut s, "o.b", 4).unwrap();
        assert_eq!(s["properties"]["o"]["properties"]["b"]["maxItems"], 4);
        assert!(super::cap_items(&mut s, "t", 2).unwrap_err().contains("not an array"));
        assert!(super::cap_items(&mut s, "zz", 2).unwrap_err().contains("no property `zz`"));
    }

    #[test]
    fn valid_passes() {
        assert!(validate(&schema(), &json!({"risks":[{"category":"legal","likelihood":3}]})).is_ok());
    }

    #[test]
    fn unsupported_keywords_are_rejected() {
        let e = parse_schema(r#"{"type":"object","properties":{"id":{"type":"string","pattern":"^R"}}}"#).unwrap_err();
        assert!(e[0].contains("keyword `pattern` is not supported"), "{e:?}");
        let e = parse_schema(r#"{"type":"object","required":["x"]}"#).unwrap_err();
        assert!(e[0].contains("required field `x`"), "{e:?}");
        assert!(parse_schema("{nope").unwrap_err()[0].contains("not valid JSON"));
    }

    fn with_evidence(evidence: &str) -> Result<Value, Vec<String>> {
        parse_schema(&format!(
            r#"{{"type":"object","required":["points"],"properties":{{"points":{{"type":"array","maxItems":3,"items":{{"type":"object","properties":{{"point":{{"type":"string"}},"evidence":{evidence}}}}}}}}}}}"#
        ))
    }

    #[test]
    fn source_id_is_accepted_only_as_the_items_of_a_short_array() {
        let ok = with_evidence(r#"{"type":"array","maxItems":2,"items":{"type":"string","format":"source-id"}}"#);
        let schema = ok.unwrap();
        let v = json!({"points":[{"point":"Fast growth","evidence":["c01","c03"]},{"point":"x","evidence":[]}]});
        assert!(validate(&schema, &v).is_ok());
        let e = validate(&schema, &json!({"points":[{"point":"x","evidence":[7]}]})).unwrap_err();
        assert!(e[0].contains("$.points[0].evidence[0]: expected string"), "{e:?}");

        for (bad, needle) in [
            (r#"{"type":"array","maxItems":2,"items":{"type":"string","format":"date"}}"#, "may only be \"source-id\""),
            (r#"{"type":"string","format":"source-id"}"#, "only to a string schema that is the `items` of an array"),
            (r#"{"type":"array","maxItems":2,"items":{"type":"integer","format":"source-id"}}"#, "only to a string"),
            (
                r#"{"type":"array","maxItems":2,"items":{"type":"string","format":"source-id","maxLength":4}}"#,
                "no other constraints",
            ),
            (
                r#"{"type":"array","maxItems":5,"items":{"type":"string","format":"source-id"}}"#,
                "maxItems of at most 3",
            ),
            (r#"{"type":"array","items":{"type":"string","format":"source-id"}}"#, "maxItems of at most 3"),
        ] {
            let e = with_evidence(bad).unwrap_err().join("\n");
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
