//! Evidence ids that moat assigns, never the model.
//!
//! Every input a citing prompt reads is split into passages (or, for long input, chunks) named
//! `c01`, `c02`, …, and the model sees each one behind its tag: `[c03] text…`. A schema marks an
//! evidence list as an array whose items are `{"type": "string", "format": "source-id"}`; before
//! each request moat rewrites those items into an `enum` of the ids that appear in that request's
//! prompt, so grammar-constrained decoding can only produce a real id and validation refuses any
//! other (a server that ignores the grammar gets the usual retry). A request whose prompt shows no
//! id may cite none: the items become `maxLength: 0` and the empty strings are dropped after.

use serde::Serialize;
use serde_json::Value;

use super::chunk::Chunk;
use super::locale::Lang;

/// The schema keyword value that marks a string as a source id.
pub const SOURCE_ID: &str = "source-id";

/// One passage of the input that replies may cite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// `c01`, `c02`, … in document order.
    pub id: String,
    /// Heading numbers and paragraph (`§2.3¶4`).
    pub locator: String,
    /// Titles of the enclosing headings, outermost first.
    pub heading_path: Vec<String>,
    /// Character offsets `[start, end)` of the passage in the input (not bytes: what an editor or a Python
    /// slice uses).
    pub span: [usize; 2],
    /// The first words of the passage.
    pub preview: String,
    /// Whether any step's reply cited it.
    pub cited: bool,
}

impl Passage {
    pub fn from_chunks(source: &str, chunks: &[Chunk]) -> Vec<Passage> {
        chunks
            .iter()
            .map(|c| Passage {
                id: c.id.clone(),
                locator: c.locator.clone(),
                heading_path: c.heading_path.clone(),
                span: [char_offset(source, c.span.start), char_offset(source, c.span.end)],
                preview: c.preview(source, 12),
                cited: false,
            })
            .collect()
    }
}

fn char_offset(s: &str, byte: usize) -> usize {
    s.get(..byte.min(s.len())).map_or(0, |p| p.chars().count())
}

/// The input with each chunk's own text behind its tag, chunks separated by a blank line.
pub fn tagged(source: &str, chunks: &[Chunk]) -> String {
    let mut out = String::with_capacity(source.len() + chunks.len() * 8);
    for c in chunks {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&format!("[{}] ", c.id));
        out.push_str(source[c.span.clone()].trim());
    }
    out
}

/// The ids of `sources` that appear in `text` as whole words (`[c03]`, `[c03, c07]`), in source order.
pub fn ids_in(text: &str, sources: &[Passage]) -> Vec<String> {
    let mut found = std::collections::HashSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        if bytes[i] == b'c' && word_start {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 && (j == bytes.len() || !bytes[j].is_ascii_alphanumeric()) {
                found.insert(&text[i..j]);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    sources.iter().filter(|s| found.contains(s.id.as_str())).map(|s| s.id.clone()).collect()
}

/// Whether a schema (as written in a prompt file) has any source-id field.
pub fn cites(schema: Option<&str>) -> bool {
    schema.is_some_and(|s| !marks(s).is_empty())
}

/// Byte ranges of every `"format": "source-id"` member in the schema text.
fn marks(schema: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let needle = format!("\"{SOURCE_ID}\"");
    let mut from = 0;
    while let Some(pos) = schema[from..].find(&needle) {
        let value_at = from + pos;
        from = value_at + needle.len();
        let before = schema[..value_at].trim_end();
        let Some(before) = before.strip_suffix(':') else { continue };
        let before = before.trim_end();
        if let Some(key_start) = before.strip_suffix("\"format\"").map(str::len) {
            out.push(key_start..from);
        }
    }
    out
}

/// The schema with each source-id string replaced by an `enum` of `ids` (or `maxLength: 0` when
/// there are none). Rewritten in the text, so the author's key order reaches the grammar intact.
pub fn constrain(schema: &str, ids: &[String]) -> String {
    let with = if ids.is_empty() {
        "\"maxLength\": 0".to_string()
    } else {
        format!("\"enum\": {}", serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
    };
    let mut out = String::with_capacity(schema.len() + ids.len() * 8);
    let mut last = 0;
    for m in marks(schema) {
        out.push_str(&schema[last..m.start]);
        out.push_str(&with);
        last = m.end;
    }
    out.push_str(&schema[last..]);
    out
}

/// A step through a JSON value: an object key, or every element of an array.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Each,
}

/// Paths (from the root of a reply) to every source-id string the schema allows.
fn paths(schema: &Value) -> Vec<Vec<Seg>> {
    fn walk(s: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        if s.get("format").and_then(Value::as_str) == Some(SOURCE_ID) {
            out.push(at.clone());
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                at.push(Seg::Key(k.clone()));
                walk(sub, at, out);
                at.pop();
            }
        }
        if let Some(items) = s.get("items") {
            at.push(Seg::Each);
            walk(items, at, out);
            at.pop();
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

fn visit<'v>(v: &'v Value, path: &[Seg], out: &mut Vec<&'v str>) {
    match path.split_first() {
        None => {
            if let Some(s) = v.as_str() {
                out.push(s);
            }
        }
        Some((Seg::Key(k), rest)) => {
            if let Some(sub) = v.get(k) {
                visit(sub, rest, out);
            }
        }
        Some((Seg::Each, rest)) => {
            if let Some(items) = v.as_array() {
                for item in items {
                    visit(item, rest, out);
                }
            }
        }
    }
}

/// Drops empty strings (what a `maxLength: 0` item allows) and repeats of an id (the grammar's enum allows
/// `["c01", "c01"]`) from the arrays that hold source ids.
fn tidy_ids(v: &mut Value, path: &[Seg]) {
    match path.split_first() {
        None => {}
        Some((Seg::Each, [])) => {
            if let Some(items) = v.as_array_mut() {
                let mut seen: Vec<Value> = Vec::new();
                items.retain(|i| {
                    let keep = i.as_str() != Some("") && !seen.contains(i);
                    seen.push(i.clone());
                    keep
                });
            }
        }
        Some((Seg::Key(k), rest)) => {
            if let Some(sub) = v.get_mut(k) {
                tidy_ids(sub, rest);
            }
        }
        Some((Seg::Each, rest)) => {
            if let Some(items) = v.as_array_mut() {
                for item in items {
                    tidy_ids(item, rest);
                }
            }
        }
    }
}

/// After a reply validated: removes empty and repeated ids and returns the ids it cites, in order, once each.
/// `schema` is the prompt file's schema (with `format: source-id`), not the constrained one.
pub fn cited(schema: Option<&str>, json: Option<&mut Value>) -> Vec<String> {
    let (Some(schema), Some(json)) = (schema, json) else { return Vec::new() };
    if !cites(Some(schema)) {
        return Vec::new();
    }
    let Ok(schema) = serde_json::from_str::<Value>(schema) else { return Vec::new() };
    let mut ids: Vec<String> = Vec::new();
    for p in paths(&schema) {
        tidy_ids(json, &p);
        let mut found = Vec::new();
        visit(json, &p, &mut found);
        for id in found {
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// Marks the sources any of `ids` names as cited.
pub fn mark_cited(sources: &mut [Passage], ids: &[String]) {
    for s in sources.iter_mut() {
        if ids.contains(&s.id) {
            s.cited = true;
        }
    }
}

/// The Markdown table that ends a human view: every cited source, where it is and how it begins.
/// Empty when nothing was cited.
pub fn sources_view(sources: &[Passage], lang: Lang) -> String {
    let cited: Vec<&Passage> = sources.iter().filter(|s| s.cited).collect();
    if cited.is_empty() {
        return String::new();
    }
    let (title, head) = match lang {
        Lang::Zh => ("## 来源", "| 编号 | 位置 | 原文开头 |"),
        Lang::En => ("## Sources", "| Id | Where | Passage |"),
    };
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = format!("{title}\n\n{head}\n|---|---|---|\n");
    for s in cited {
        let place = if s.heading_path.is_empty() {
            s.locator.clone()
        } else {
            format!("{} {}", s.locator, s.heading_path.join(" › "))
        };
        out.push_str(&format!("| {} | {} | {} |\n", s.id, cell(&place), cell(&s.preview)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(id: &str) -> Passage {
        Passage {
            id: id.into(),
            locator: "¶1".into(),
            heading_path: vec![],
            span: [0, 1],
            preview: "p".into(),
            cited: false,
        }
    }

    const SCHEMA: &str = r#"{"type": "object", "required": ["points"], "properties": {"points": {"type": "array",
        "items": {"type": "object", "properties": {"point": {"type": "string"},
        "evidence": {"type": "array", "maxItems": 2, "items": {"type": "string", "format" :  "source-id"}}}}}}}"#;

    #[test]
    fn ids_are_found_as_whole_words_only() {
        let sources = vec![src("c01"), src("c02"), src("c10")];
        let text = "[c02] a\n- [c10, c01] b; abc01 c1 c100 c02x";
        assert_eq!(ids_in(text, &sources), vec!["c01", "c02", "c10"]);
        assert!(ids_in("no tags here, c3", &sources).is_empty());
    }

    #[test]
    fn the_schema_is_rewritten_in_place_keeping_key_order() {
        let ids = vec!["c01".to_string(), "c07".to_string()];
        let out = constrain(SCHEMA, &ids);
        assert!(out.contains(r#"{"type": "string", "enum": ["c01","c07"]}"#), "{out}");
        assert!(out.find("\"point\"").unwrap() < out.find("\"evidence\"").unwrap());
        let parsed: Value = serde_json::from_str(&out).unwrap();
        let items = &parsed["properties"]["points"]["items"]["properties"]["evidence"]["items"];
        assert_eq!(items["enum"], serde_json::json!(["c01", "c07"]));
        let none = constrain(SCHEMA, &[]);
        assert!(none.contains(r#""maxLength": 0"#), "{none}");
        assert!(!none.contains(SOURCE_ID));
        // A description that merely mentions the word is left alone.
        let text = r#"{"type":"object","description":"\"source-id\" fields","properties":{}}"#;
        assert_eq!(constrain(text, &ids), text);
        assert!(!cites(Some(text)) && cites(Some(SCHEMA)));
    }

    #[test]
    fn cited_ids_are_collected_and_empty_and_repeated_ones_dropped() {
        let mut reply = serde_json::json!({"points": [
            {"point": "a", "evidence": ["c07", ""]},
            {"point": "b", "evidence": ["c01", "c01", "c07"]},
            {"point": "c"}
        ]});
        let ids = cited(Some(SCHEMA), Some(&mut reply));
        assert_eq!(ids, vec!["c07", "c01"]);
        assert_eq!(reply["points"][0]["evidence"], serde_json::json!(["c07"]));
        // A one-point SWOT on the default model cited `["c01", "c01"]`: each id once.
        assert_eq!(reply["points"][1]["evidence"], serde_json::json!(["c01", "c07"]));
        let mut sources = vec![src("c01"), src("c02"), src("c07")];
        mark_cited(&mut sources, &ids);
        let view = sources_view(&sources, Lang::En);
        assert!(view.starts_with("## Sources") && view.contains("| c01 |") && !view.contains("| c02 |"), "{view}");
    }
}
