//! Getting the JSON object out of model text.
//!
//! With a grammar the reply is already bare JSON, but engines without one (or a user running with grammar off)
//! get replies wrapped in code fences, prefixed with "Sure! Here is..." or preceded by `<think>` blocks.

use serde_json::Value;

/// Drops `<think>...</think>` blocks; an unclosed one drops everything after it (the model never finished it).
pub fn strip_think(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<think>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</think>") {
            Some(end) => rest = &rest[start + end + "</think>".len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Returns the first JSON object found in `text`. Tries every `{` as a start, scanning to its balanced close
/// while respecting strings, so braces inside prose or inside string values do not confuse it.
pub fn extract_json(text: &str) -> Result<Value, String> {
    let text = strip_think(text);
    let bytes = text.as_bytes();
    let mut first_err = None;
    for (start, _) in text.match_indices('{') {
        if let Some(end) = balanced_end(&bytes[start..]) {
            match serde_json::from_str::<Value>(&text[start..start + end]) {
                Ok(v @ Value::Object(_)) => return Ok(v),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert_with(|| format!("reply is not valid JSON: {e}"));
                }
            }
        } else {
            first_err.get_or_insert_with(|| "reply contains an unfinished JSON object (cut off by max_tokens?)".into());
        }
    }
    Err(first_err.unwrap_or_else(|| "reply contains no JSON object".into()))
}

fn balanced_end(b: &[u8]) -> Option<usize> {
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            match c {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_fenced_and_prose() {
        assert_eq!(extract_json(r#"{"a":1}"#).unwrap(), json!({"a":1}));
        assert_eq!(extract_json("```json\n{\"a\": [1, 2]}\n```").unwrap(), json!({"a":[1,2]}));
        assert_eq!(
            extract_json("Sure! {here} is it:\n{\"a\": \"x } y\"}\nHope it helps").unwrap(),
            json!({"a":"x } y"})
        );
        assert_eq!(extract_json("<think>maybe {\"a\":0}</think>{\"a\":2}").unwrap(), json!({"a":2}));
        assert_eq!(extract_json("{\"s\": \"中文 \\\" quote\"}").unwrap(), json!({"s":"中文 \" quote"}));
    }

    #[test]
    fn failures_say_why() {
        assert!(extract_json("no json here").unwrap_err().contains("no JSON object"));
        assert!(extract_json("{\"a\": [1, 2").unwrap_err().contains("unfinished"));
        assert!(extract_json("{a: 1}").unwrap_err().contains("not valid JSON"));
    }
}
