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

/// Why no JSON object could be taken from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    /// Nothing that starts like a JSON object.
    NoObject,
    /// A JSON object starts but the text ends before it closes: the reply was cut off (by `max_tokens`, a full
    /// context or a stop string). Nothing nested inside it is returned instead.
    Unclosed,
    /// A JSON object starts but is malformed; serde_json's message.
    Invalid(String),
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractError::NoObject => f.write_str("reply contains no JSON object"),
            ExtractError::Unclosed => {
                f.write_str("reply ends inside an unfinished JSON object (cut off by max_tokens?)")
            }
            ExtractError::Invalid(e) => write!(f, "reply is not valid JSON: {e}"),
        }
    }
}

/// Returns the first JSON object found in `text`; the error as a message (see [`extract_object`]).
pub fn extract_json(text: &str) -> Result<Value, String> {
    extract_object(text).map_err(|e| e.to_string())
}

/// Returns the first top-level JSON object in `text` (after [`strip_think`]).
///
/// Every `{` is a candidate start, scanned by serde_json, so braces inside string values never confuse it. A `{`
/// that does not look like JSON (`{here}` in prose: no `"` or `}` after it) is skipped. A JSON-looking object that
/// runs into the end of the text is [`ExtractError::Unclosed`], and the search stops there: every later `{` lies
/// inside it, and returning one of those inner objects (one risk out of a cut-off risk register) would only
/// produce misleading schema errors. A malformed JSON-looking object is skipped as a whole, for the same reason.
pub fn extract_object(text: &str) -> Result<Value, ExtractError> {
    let text = strip_think(text);
    let mut first_err = None;
    let mut from = 0;
    while let Some(offset) = text[from..].find('{') {
        let start = from + offset;
        from = start + 1;
        let rest = &text[start..];
        if !looks_like_json(rest) {
            continue;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v @ Value::Object(_))) => return Ok(v),
            Some(Ok(_)) | None => {}
            Some(Err(e)) if e.is_eof() => return Err(first_err.unwrap_or(ExtractError::Unclosed)),
            Some(Err(e)) => {
                first_err.get_or_insert_with(|| ExtractError::Invalid(e.to_string()));
                // Resume after the malformed object, never inside it.
                match balanced_end(rest.as_bytes()) {
                    Some(end) => from = start + end,
                    None => break,
                }
            }
        }
    }
    Err(first_err.unwrap_or(ExtractError::NoObject))
}

/// `{` followed (after whitespace) by a key, by `}`, or by the end of the text (a reply cut right after it).
fn looks_like_json(from_brace: &str) -> bool {
    matches!(from_brace[1..].trim_start().chars().next(), Some('"') | Some('}') | None)
}

/// Byte length of the balanced `{…}` / `[…]` that `b` starts with, respecting strings.
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
    use proptest::prelude::*;
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
        assert_eq!(extract_json("I think { so. {}").unwrap(), json!({}));
        assert_eq!(extract_json("Use {\"x\": …}. Here: {\"a\": 1}").unwrap(), json!({"a":1}));
    }

    #[test]
    fn failures_say_why() {
        assert!(extract_json("no json here").unwrap_err().contains("no JSON object"));
        assert!(extract_json("{\"a\": [1, 2").unwrap_err().contains("unfinished"));
        assert!(extract_json("{\"a\": 1 oops}").unwrap_err().contains("not valid JSON"));
        assert_eq!(extract_object("{a: 1}"), Err(ExtractError::NoObject));
    }

    /// The field report: a risk register cut by max_tokens used to come back as its first risk, and the schema
    /// check then complained about `risks` missing and `category` not being allowed.
    #[test]
    fn a_cut_off_reply_never_yields_an_inner_object() {
        let cut = r#"{"risks": [{"id": "R1", "category": "legal", "description": "数据合规", "likelihood": 4,
            "impact": 5, "mitigation": "脱敏"}, {"id": "R2", "category": "market", "descrip"#;
        assert_eq!(extract_object(cut), Err(ExtractError::Unclosed));
        assert_eq!(extract_object(&format!("Here it is:\n```json\n{cut}")), Err(ExtractError::Unclosed));
        // A malformed outer object is skipped whole, not mined for the objects inside it.
        assert!(matches!(extract_object(r#"{"risks": [{"id": "R1"}] oops}"#), Err(ExtractError::Invalid(_))));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z {}\\[\\]\"\\\\,:中文]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z{}\"]{1,5}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn json_object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-z]{1,5}", json_value(), 1..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn prop_json_extract_never_panics(text in any::<String>()) {
            let _ = extract_object(&text);
        }

        #[test]
        fn prop_json_extract_never_panics_on_json_like_text(text in "[{}\\[\\]\":,a1 \\\\<>/think]{0,40}") {
            let _ = extract_object(&text);
        }

        /// Every strict prefix of an object (after some prose) is an unclosed outer object: extraction must say
        /// so instead of returning an object nested inside it; the whole text gives back the object.
        #[test]
        fn prop_json_extract_never_returns_an_inner_object_of_a_cut_reply(
            v in json_object(),
            pretty in any::<bool>(),
            prose in "[A-Za-z :.!]{0,20}",
            cut in any::<prop::sample::Index>(),
        ) {
            let body = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
            let bounds: Vec<usize> = body.char_indices().map(|(i, _)| i).collect();
            let k = bounds[cut.index(bounds.len())].max(1);
            let text = format!("{prose}{}", &body[..k]);
            prop_assert_eq!(extract_object(&text), Err(ExtractError::Unclosed));
            prop_assert_eq!(extract_object(&format!("{prose}{body}")), Ok(v));
        }
    }
}
