use super::*;
use crate::prompts::schema::validate;
use proptest::prelude::*;
use serde_json::Value;

fn close(schema: &str, prefix: &str) -> Option<String> {
    let mut p = PartialJson::new(schema).unwrap();
    p.push_str(prefix);
    p.completion()
}

const RISKS: &str = r#"{"type":"object","additionalProperties":false,"required":["risks","summary"],
  "properties":{"risks":{"type":"array","minItems":1,"maxItems":8,"items":{"type":"object",
    "additionalProperties":false,"required":["id","category","description","likelihood","impact","mitigation"],
    "properties":{"id":{"type":"string","maxLength":4},
      "category":{"enum":["technical","market","legal","financial","operational","ethical"]},
      "description":{"type":"string","maxLength":160},
      "likelihood":{"type":"integer","minimum":1,"maximum":5},
      "impact":{"type":"integer","minimum":1,"maximum":5},
      "mitigation":{"type":"string","maxLength":120}}}},
    "summary":{"type":"string","maxLength":200}}}"#;

#[test]
fn closes_the_field_report_prefix() {
    let prefix = r#"{"risks": [{"id": "R1", "category": "legal", "description": "数据合规", "likelihood": 4,
        "impact": 5, "mitigation": "脱敏"}, {"id": "R2", "category": "mar"#;
    let c = close(RISKS, prefix).unwrap();
    assert_eq!(c, r#"ket","description":"","likelihood":1,"impact":1,"mitigation":""}],"summary":""}"#);
    assert_eq!(
        close(RISKS, "").unwrap(),
        r#"{"risks":[{"id":"","category":"legal","description":"","likelihood":1,"impact":1,"mitigation":""}],"summary":""}"#
    );
    assert_eq!(
        close(RISKS, r#"{"ri"#).unwrap(),
        r#"sks":[{"id":"","category":"legal","description":"","likelihood":1,"impact":1,"mitigation":""}],"summary":""}"#
    );
    let escape = close(RISKS, r#"{"risks":[{"id":"R1","category":"legal","description":"x\u4e"#).unwrap();
    assert!(escape.starts_with(r#"00","likelihood":1"#), "{escape}");
    let high = close(RISKS, r#"{"risks":[{"id":"R1","category":"legal","description":"x\ud83d"#).unwrap();
    assert!(high.starts_with(r#"\udc00","likelihood":1"#), "{high}");
    assert_eq!(
        close(
            RISKS,
            r#"{"risks":[{"id":"R1","category":"legal","description":"x","likelihood":4,"impact":5,
        "mitigation":"y"}], "summary": "done"} "#
        )
        .unwrap(),
        ""
    );
}

#[test]
fn numbers_reach_their_bounds() {
    let s = r#"{"type":"object","required":["n","m","x"],"properties":{"n":{"type":"integer","minimum":100,"maximum":150},
        "m":{"type":"integer","minimum":-20,"maximum":-10},"x":{"type":"number","minimum":0.5}}}"#;
    assert_eq!(close(s, r#"{"n":1"#).unwrap(), r#"00,"m":-10,"x":0.5}"#);
    assert_eq!(close(s, r#"{"n":14"#).unwrap(), r#"0,"m":-10,"x":0.5}"#);
    assert_eq!(close(s, r#"{"n":120,"m":-"#).unwrap(), r#"10,"x":0.5}"#);
    assert_eq!(close(s, r#"{"n":120,"m":-1"#).unwrap(), r#"0,"x":0.5}"#);
    assert_eq!(close(s, r#"{"n":120,"m":-15,"x":0."#).unwrap(), r#"5}"#);
    assert_eq!(close(s, r#"{"n":120,"m":-15,"x":2e"#).unwrap(), r#"0}"#);
}

#[test]
fn invalid_text_breaks_the_tracker() {
    for bad in ["x", "{]", r#"{"a" 1"#, "{\"a\":tru ", "{} {", "{\"s\":\"\\x", "[1,]"] {
        assert_eq!(close(r#"{"type":"object"}"#, bad), None, "{bad}");
    }
    // The grammar's rules, not just JSON's: a key the schema does not allow.
    assert_eq!(close(RISKS, r#"{"extra""#), None);
}

/// A small deterministic generator (xorshift64*), driven by a proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn space(r: &mut Rng, out: &mut String) {
    match r.below(6) {
        0 => out.push(' '),
        1 => out.push_str("\n  "),
        _ => {}
    }
}

/// Writes a random value valid for node `n`, as JSON text with random whitespace and escapes.
fn gen(s: &Schema, n: usize, r: &mut Rng, depth: u32, out: &mut String) {
    let node = &s.nodes[n];
    match node.kind {
        Kind::Any => {
            let k = if depth > 2 { r.below(4) } else { r.below(6) };
            let sub = match k {
                0 => Kind::Null,
                1 => Kind::Boolean,
                2 => Kind::Number,
                3 => Kind::String,
                4 => Kind::Array,
                _ => Kind::Object,
            };
            let mut tmp = Schema { nodes: vec![Node::new(Kind::Any), Node::new(sub)] };
            tmp.nodes[1].additional = Some(ANY);
            gen(&tmp, 1, r, depth + 1, out)
        }
        Kind::Null => out.push_str("null"),
        Kind::Boolean => out.push_str(if r.chance(50) { "true" } else { "false" }),
        Kind::Enum => out.push_str(&node.options[r.below(node.options.len() as u64) as usize]),
        Kind::Integer => {
            let (lo, hi) = int_bounds(node);
            let (lo, hi) = (lo.max(-100_000), hi.min(100_000).max(lo));
            out.push_str(&(lo + r.below((hi - lo + 1) as u64) as i128).to_string());
        }
        Kind::Number => {
            let lo = node.minimum.unwrap_or(-1000.0);
            let hi = node.maximum.unwrap_or(1000.0);
            let v = lo + (hi - lo) * (r.below(1001) as f64 / 1000.0);
            let text = match r.below(3) {
                0 => format!("{}", v.round()),
                1 => format!("{v:.3}"),
                _ => format!("{v:e}"),
            };
            let valid = text.parse::<f64>().is_ok_and(|x| in_range(node, x));
            out.push_str(&if valid { text } else { smallest_number(node) });
        }
        Kind::String => {
            let len = (node.min_length + r.below(12)).min(node.max_length.unwrap_or(u64::MAX));
            out.push('"');
            for _ in 0..len {
                let c = ['a', 'Z', ' ', '中', '文', '"', '\\', '\n', '/', '😀', 'é', '{', '}'][r.below(13) as usize];
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str(if r.chance(50) { "\\n" } else { "\\u000A" }),
                    '/' if r.chance(50) => out.push_str("\\/"),
                    c if !c.is_ascii() && r.chance(30) => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Kind::Array => {
            out.push('[');
            let count =
                (node.min_items + r.below(if depth > 3 { 1 } else { 4 })).min(node.max_items.unwrap_or(u64::MAX));
            for i in 0..count {
                if i > 0 {
                    out.push(',');
                }
                space(r, out);
                gen(s, node.items, r, depth + 1, out);
            }
            space(r, out);
            out.push(']');
        }
        Kind::Object => {
            out.push('{');
            let mut first = true;
            let mut key = |out: &mut String, r: &mut Rng, name: &str| {
                if !first {
                    out.push(',');
                }
                first = false;
                space(r, out);
                out.push_str(&json_string(name));
                space(r, out);
                out.push(':');
                space(r, out);
            };
            for &i in &node.order {
                let p = &node.props[i];
                if p.required || (depth < 4 && r.chance(50)) {
                    key(out, r, &p.name);
                    gen(s, p.node, r, depth + 1, out);
                }
            }
            if let Some(extra) = node.additional.filter(|_| depth < 3 && r.chance(30)) {
                let name = format!("x{}", r.below(1000));
                if !node.props.iter().any(|p| p.name == name) {
                    key(out, r, &name);
                    gen(s, extra, r, depth + 1, out);
                }
            }
            space(r, out);
            out.push('}');
        }
    }
}

const SYNTHETIC: &[&str] = &[
    RISKS,
    r#"{"type":"object","additionalProperties":true,"required":["a","n","tags"],"properties":{
        "opt1":{"type":"boolean"},"a":{"type":"string","minLength":3,"maxLength":10},
        "n":{"type":"integer","minimum":100,"maximum":150},"x":{"type":"number","minimum":0.5,"maximum":9.5},
        "tags":{"type":"array","minItems":2,"maxItems":4,"items":{"enum":["alpha","alps","beta",1,10,true,null]}},
        "neg":{"type":"integer","minimum":-20,"maximum":-10},"nothing":{"type":"null"}}}"#,
    r#"{"type":"object"}"#,
    r#"{"properties":{"list":{"items":{"properties":{"k":{"maxLength":3}},"required":["k"]},"minItems":1},
        "any":{}},"required":["list"]}"#,
    r#"{"type":"object","required":["grid"],"properties":{"grid":{"type":"array","minItems":1,
        "items":{"type":"array","minItems":2,"items":{"type":"integer","minimum":0,"maximum":100}}}}}"#,
];

/// Every output schema in the built-in library, in both languages (script steps included).
fn library_schemas() -> Vec<String> {
    let lib = crate::prompts::Library::builtin();
    let mut out = Vec::new();
    for id in lib.ids() {
        let p = lib.prompt(&id).unwrap();
        for lang in p.languages() {
            let f = p.variant(lang).unwrap();
            out.extend(f.output.schema.clone());
            out.extend(f.steps.iter().filter_map(|s| s.output.as_ref().and_then(|o| o.schema.clone())));
        }
    }
    out
}

/// Checks every prefix of `text` (a valid reply): prefix + completion parses and validates.
fn check_prefixes(schema_text: &str, text: &str) -> Result<(), TestCaseError> {
    let schema: Value = serde_json::from_str(schema_text).unwrap();
    let mut p = PartialJson::new(schema_text).unwrap();
    let mut prefix = String::new();
    for c in std::iter::once(None).chain(text.chars().map(Some)) {
        if let Some(c) = c {
            p.push(c);
            prefix.push(c);
        }
        let completion = p.completion();
        prop_assert!(completion.is_some(), "no completion after {prefix:?}");
        let whole = format!("{prefix}{}", completion.unwrap());
        let v: Value = serde_json::from_str(&whole)
            .map_err(|e| TestCaseError::fail(format!("{e}: {whole}\nprefix {prefix:?}")))?;
        if let Err(e) = validate(&schema, &v) {
            return Err(TestCaseError::fail(format!("{e:?}: {whole}\nprefix {prefix:?}")));
        }
    }
    prop_assert_eq!(p.completion(), Some(String::new()), "a complete reply needs nothing: {}", text);
    Ok(())
}

#[test]
fn every_library_schema_closes_from_empty() {
    let schemas = library_schemas();
    assert!(schemas.len() >= 20, "{}", schemas.len());
    for s in schemas {
        let c = close(&s, "").unwrap();
        let v: Value = serde_json::from_str(&c).unwrap();
        validate(&serde_json::from_str(&s).unwrap(), &v).unwrap_or_else(|e| panic!("{e:?}: {c}"));
    }
}

proptest! {
    /// For every prefix of a valid reply, prefix + completion parses and validates against the schema.
    #[test]
    fn prop_json_closer_completes_every_prefix_of_a_valid_reply(seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        let mut schemas: Vec<String> = SYNTHETIC.iter().map(|s| s.to_string()).collect();
        schemas.extend(library_schemas());
        let schema_text = &schemas[pick.index(schemas.len())];
        let compiled = Schema::compile(&serde_json::from_str(schema_text).unwrap());
        let mut text = String::new();
        gen(&compiled, ROOT, &mut Rng(seed | 1), 0, &mut text);
        let schema: Value = serde_json::from_str(schema_text).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        prop_assert!(validate(&schema, &v).is_ok(), "generator made an invalid reply: {text}");
        check_prefixes(schema_text, &text)?;
    }

    /// Whatever the text, a completion that is offered makes it parse, and nothing panics.
    #[test]
    fn prop_json_closer_completion_always_parses(text in "[{}\\[\\]\":, \\\\a-z0-9.eE+\\-un中]{0,40}", pick in any::<prop::sample::Index>()) {
        let schema_text = SYNTHETIC[pick.index(SYNTHETIC.len())];
        let mut p = PartialJson::new(schema_text).unwrap();
        p.push_str(&text);
        if let Some(c) = p.completion() {
            let whole = format!("{text}{c}");
            prop_assert!(serde_json::from_str::<Value>(&whole).is_ok(), "{whole}");
        }
    }

    #[test]
    fn prop_json_closer_never_panics_on_any_text(text in any::<String>()) {
        let mut p = PartialJson::new(RISKS).unwrap();
        p.push_str(&text);
        let _ = p.completion();
    }
}
