//! Partial JSON under a JSON Schema: an incremental tracker for a reply while it is generated, and the shortest
//! text that closes it so that the whole reply parses and validates.
//!
//! The engine uses it to steer grammar-constrained generation: when the token budget left is only just enough
//! for [`PartialJson::completion`], it stops sampling and emits that text, so a structured reply is never cut
//! off open. The completion follows the shape llama.cpp's JSON-schema grammar allows, so the grammar accepts it:
//! required properties in schema order, then optional ones in schema order, then extra keys (only where
//! `additionalProperties` allows them); `enum` before `type`; no whitespace.
//!
//! What a completion adds, innermost first: the rest of an escape sequence, of a literal (`tr` → `true`), of a
//! number (digits up to the schema's `minimum`), of an enum value or of a property name; a string's closing quote
//! (padded to `minLength`); then for every open container the smallest valid values for required properties still
//! missing and for items below `minItems`, and the closing bracket.

use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Longest completion worth computing; a schema demanding more (`minItems: 100000`) gets no completion.
const MAX_COMPLETION: usize = 64 * 1024;
/// What a string pads with when it must reach `minLength`.
const FILLER: char = '-';

/// A JSON value with object keys in document order. serde_json's `Value` sorts keys, but the grammar follows the
/// schema's property order, and so must a completion.
#[derive(Debug, Clone, PartialEq)]
enum Ordered {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Ordered, E> {
                serde_json::Number::from_f64(n).map(Ordered::Number).ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::String(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Ordered::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut v: Vec<(String, Ordered)> = Vec::new();
                while let Some((k, x)) = map.next_entry::<String, Ordered>()? {
                    // A repeated key replaces the earlier value where it stood, as in most JSON readers.
                    match v.iter_mut().find(|(name, _)| *name == k) {
                        Some(slot) => slot.1 = x,
                        None => v.push((k, x)),
                    }
                }
                Ok(Ordered::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Ordered {
    fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(v) => v.iter().find(|(k, _)| k == key).map(|(_, x)| x),
            _ => None,
        }
    }

    fn as_u64(&self) -> Option<u64> {
        match self {
            Ordered::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Ordered::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Compact JSON text, keys in document order (how llama.cpp writes an enum option into its grammar).
    fn write(&self, out: &mut String) {
        match self {
            Ordered::Null => out.push_str("null"),
            Ordered::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Ordered::Number(n) => out.push_str(&n.to_string()),
            Ordered::String(s) => out.push_str(&json_string(s)),
            Ordered::Array(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write(out);
                }
                out.push(']');
            }
            Ordered::Object(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&json_string(k));
                    out.push(':');
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    Object,
    Array,
    String,
    Integer,
    Number,
    Boolean,
    Null,
    Enum,
}

#[derive(Debug, Clone)]
struct Prop {
    name: String,
    node: usize,
    required: bool,
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// `Enum`: every option as compact JSON text.
    options: Vec<String>,
    /// `Object`: properties in schema order.
    props: Vec<Prop>,
    /// `Object`: indices into `props`, required ones first, each group in schema order (the grammar's order).
    order: Vec<usize>,
    /// `Object`: the node of extra properties' values, where the grammar allows extra keys.
    additional: Option<usize>,
    /// `Array`: the node of the items.
    items: usize,
    min_items: u64,
    min_length: u64,
    // Only the tests' reply generator reads the upper bounds: a completion never adds items or characters
    // beyond the minimum, and the grammar keeps the model within them.
    #[cfg_attr(not(test), allow(dead_code))]
    max_items: Option<u64>,
    #[cfg_attr(not(test), allow(dead_code))]
    max_length: Option<u64>,
    minimum: Option<f64>,
    maximum: Option<f64>,
}

impl Node {
    fn new(kind: Kind) -> Node {
        Node {
            kind,
            options: Vec::new(),
            props: Vec::new(),
            order: Vec::new(),
            // An object read where anything is allowed takes any keys, with any values.
            additional: (kind == Kind::Any).then_some(ANY),
            items: ANY,
            min_items: 0,
            min_length: 0,
            max_items: None,
            max_length: None,
            minimum: None,
            maximum: None,
        }
    }
}

/// A schema compiled for the tracker: a flat list of nodes, `nodes[ANY]` accepts anything, `nodes[ROOT]` is the
/// schema itself.
#[derive(Debug)]
struct Schema {
    nodes: Vec<Node>,
}

const ANY: usize = 0;
const ROOT: usize = 1;

impl Schema {
    fn compile(schema: &Ordered) -> Schema {
        let mut s = Schema { nodes: vec![Node::new(Kind::Any)] };
        s.add(schema);
        s
    }

    /// Mirrors how llama.cpp's `json-schema.cpp` reads a schema: `enum` wins over `type`; without a `type` the
    /// structural keywords decide.
    fn add(&mut self, s: &Ordered) -> usize {
        let at = self.nodes.len();
        self.nodes.push(Node::new(Kind::Any));
        if !matches!(s, Ordered::Object(_)) {
            return at;
        }
        let mut node = Node::new(Kind::Any);
        if let Some(Ordered::Array(options)) = s.get("enum") {
            node.kind = Kind::Enum;
            node.options = options
                .iter()
                .map(|o| {
                    let mut t = String::new();
                    o.write(&mut t);
                    t
                })
                .collect();
            if node.options.is_empty() {
                node.kind = Kind::Any;
            }
            self.nodes[at] = node;
            return at;
        }
        let has = |k: &str| s.get(k).is_some();
        let structural_object =
            has("properties") || s.get("additionalProperties").is_some_and(|a| *a != Ordered::Bool(true));
        node.kind = match s.get("type") {
            Some(Ordered::String(t)) => match t.as_str() {
                "object" => Kind::Object,
                "array" => Kind::Array,
                "string" => Kind::String,
                "integer" => Kind::Integer,
                "number" => Kind::Number,
                "boolean" => Kind::Boolean,
                "null" => Kind::Null,
                _ => Kind::Any,
            },
            _ if structural_object => Kind::Object,
            _ if has("items") => Kind::Array,
            _ if has("minLength") || has("maxLength") => Kind::String,
            _ => Kind::Any,
        };
        match node.kind {
            Kind::Object => {
                let required: Vec<&str> = match s.get("required") {
                    Some(Ordered::Array(r)) => r
                        .iter()
                        .filter_map(|x| if let Ordered::String(n) = x { Some(n.as_str()) } else { None })
                        .collect(),
                    _ => Vec::new(),
                };
                if let Some(Ordered::Object(props)) = s.get("properties") {
                    for (name, sub) in props {
                        let child = self.add(sub);
                        node.props.push(Prop {
                            name: name.clone(),
                            node: child,
                            required: required.contains(&name.as_str()),
                        });
                    }
                }
                node.order = (0..node.props.len())
                    .filter(|&i| node.props[i].required)
                    .chain((0..node.props.len()).filter(|&i| !node.props[i].required))
                    .collect();
                node.additional = match s.get("additionalProperties") {
                    Some(Ordered::Bool(true)) => Some(ANY),
                    Some(Ordered::Bool(_)) => None,
                    Some(sub @ Ordered::Object(_)) => Some(self.add(sub)),
                    Some(_) => None,
                    None if has("properties") => None,
                    None => Some(ANY),
                };
            }
            Kind::Array => {
                node.items = match s.get("items") {
                    Some(sub @ Ordered::Object(_)) => self.add(sub),
                    _ => ANY,
                };
                node.min_items = s.get("minItems").and_then(Ordered::as_u64).unwrap_or(0);
                node.max_items = s.get("maxItems").and_then(Ordered::as_u64);
            }
            Kind::String => {
                node.min_length = s.get("minLength").and_then(Ordered::as_u64).unwrap_or(0);
                node.max_length = s.get("maxLength").and_then(Ordered::as_u64);
            }
            Kind::Integer | Kind::Number => {
                node.minimum = s.get("minimum").and_then(Ordered::as_f64);
                node.maximum = s.get("maximum").and_then(Ordered::as_f64);
            }
            _ => {}
        }
        self.nodes[at] = node;
        at
    }

    /// The shortest valid value of node `n`, appended to `out`; false if it would exceed [`MAX_COMPLETION`].
    fn minimal(&self, n: usize, out: &mut String) -> bool {
        if out.len() > MAX_COMPLETION {
            return false;
        }
        let node = &self.nodes[n];
        match node.kind {
            Kind::Any | Kind::Null => out.push_str("null"),
            Kind::Boolean => out.push_str("false"),
            Kind::Enum => out.push_str(node.options.iter().min_by_key(|o| o.len()).map_or("null", |o| o.as_str())),
            Kind::String => {
                if node.min_length as usize > MAX_COMPLETION {
                    return false;
                }
                out.push('"');
                out.extend(std::iter::repeat_n(FILLER, node.min_length as usize));
                out.push('"');
            }
            Kind::Integer => out.push_str(&smallest_integer(node)),
            Kind::Number => out.push_str(&smallest_number(node)),
            Kind::Array => {
                out.push('[');
                for i in 0..node.min_items {
                    if i > 0 {
                        out.push(',');
                    }
                    if !self.minimal(node.items, out) {
                        return false;
                    }
                }
                out.push(']');
            }
            Kind::Object => {
                out.push('{');
                let mut first = true;
                for p in node.props.iter().filter(|p| p.required) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&json_string(&p.name));
                    out.push(':');
                    if !self.minimal(p.node, out) {
                        return false;
                    }
                }
                out.push('}');
            }
        }
        out.len() <= MAX_COMPLETION
    }
}

/// The integer nearest zero within the node's bounds (as llama.cpp rounds them: minimum up, maximum down).
fn smallest_integer(node: &Node) -> String {
    let (lo, hi) = int_bounds(node);
    let v = if lo > 0 {
        lo
    } else if hi < 0 {
        hi
    } else {
        0
    };
    v.to_string()
}

fn int_bounds(node: &Node) -> (i128, i128) {
    let lo = node.minimum.map_or(i64::MIN as i128, |m| m.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i128);
    let hi = node.maximum.map_or(i64::MAX as i128, |m| m.floor().clamp(i64::MIN as f64, i64::MAX as f64) as i128);
    (lo, hi)
}

fn smallest_number(node: &Node) -> String {
    let lo = node.minimum.unwrap_or(f64::NEG_INFINITY);
    let hi = node.maximum.unwrap_or(f64::INFINITY);
    let v = if lo > 0.0 {
        lo
    } else if hi < 0.0 {
        hi
    } else {
        0.0
    };
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or("0".into(), |n| n.to_string())
    }
}

fn in_range(node: &Node, v: f64) -> bool {
    node.minimum.is_none_or(|m| v >= m) && node.maximum.is_none_or(|m| v <= m)
}

/// Where a property value belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Prop(usize),
    Extra,
}

/// A string being read: its raw text (for enum matching), decoded text (for keys) and length as the schema
/// validator counts it.
#[derive(Debug, Clone, Default)]
struct Str {
    decoded: String,
    chars: u64,
    esc: Esc,
    /// A `\uD800`–`\uDBFF` escape was read; its low half must follow.
    high: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Esc {
    #[default]
    None,
    Backslash,
    /// `\u` and this many hex digits with this value so far.
    Hex(u8, u32),
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Consumed; the value goes on.
    More,
    /// Consumed, and it finished the value.
    Done,
    /// Not part of the value, which was already complete: the container reads it.
    Ended,
    /// Not valid JSON.
    Bad,
}

impl Str {
    fn push(&mut self, c: char) -> Step {
        match self.esc {
            Esc::None => match c {
                _ if self.high && c != '\\' => Step::Bad,
                '"' => Step::Done,
                '\\' => {
                    self.esc = Esc::Backslash;
                    Step::More
                }
                c if (c as u32) < 0x20 => Step::Bad,
                c => {
                    self.decoded.push(c);
                    self.chars += 1;
                    Step::More
                }
            },
            Esc::Backslash => {
                let decoded = match c {
                    'u' => {
                        self.esc = Esc::Hex(0, 0);
                        return Step::More;
                    }
                    _ if self.high => return Step::Bad,
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    _ => return Step::Bad,
                };
                self.decoded.push(decoded);
                self.chars += 1;
                self.esc = Esc::None;
                Step::More
            }
            Esc::Hex(k, v) => {
                let Some(d) = c.to_digit(16) else { return Step::Bad };
                let v = v * 16 + d;
                if k < 3 {
                    self.esc = Esc::Hex(k + 1, v);
                    return Step::More;
                }
                self.esc = Esc::None;
                match v {
                    0xD800..=0xDBFF if !self.high => {
                        self.high = true;
                        self.chars += 1;
                    }
                    0xDC00..=0xDFFF if self.high => {
                        self.high = false;
                        self.decoded.push('\u{FFFD}');
                    }
                    0xD800..=0xDFFF => return Step::Bad,
                    _ if self.high => return Step::Bad,
                    _ => {
                        self.decoded.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                        self.chars += 1;
                    }
                }
                Step::More
            }
        }
    }

    /// The text that closes this string with at least `min_length` characters.
    fn close(&self, min_length: u64) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.chars;
        let mut high = self.high;
        match self.esc {
            Esc::None => {}
            Esc::Backslash if high => {
                out.push_str("udc00");
                high = false;
            }
            Esc::Backslash => {
                out.push('n');
                chars += 1;
            }
            Esc::Hex(k, v) => {
                let free = 4 * (4 - k as u32);
                let (lo, hi) = (v << free, (v << free) | ((1u32 << free) - 1));
                let code = if high {
                    let c = lo.max(0xDC00);
                    if c > hi.min(0xDFFF) {
                        return None;
                    }
                    high = false;
                    c
                } else if (lo..=hi).contains(&0x20) {
                    chars += 1;
                    0x20
                } else if (0xDC00..=0xDFFF).contains(&lo) {
                    // Only low surrogates start this way unless the range reaches past them.
                    if hi < 0xE000 {
                        return None;
                    }
                    chars += 1;
                    0xE000
                } else {
                    chars += 1;
                    high = (0xD800..=0xDBFF).contains(&lo);
                    lo
                };
                out.push_str(&format!("{code:04x}")[k as usize..]);
            }
        }
        if high {
            out.push_str("\\udc00");
        }
        if min_length > chars {
            let pad = (min_length - chars) as usize;
            if pad > MAX_COMPLETION {
                return None;
            }
            out.extend(std::iter::repeat_n(FILLER, pad));
        }
        out.push('"');
        Some(out)
    }
}

/// A number being read (JSON's number grammar as a state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumAt {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl NumAt {
    fn next(self, c: char) -> Option<NumAt> {
        use NumAt::*;
        let digit = c.is_ascii_digit();
        Some(match (self, c) {
            (Minus, '0') => Zero,
            (Minus, _) if digit => Int,
            (Int, _) if digit => Int,
            (Zero | Int, '.') => Dot,
            (Dot | Frac, _) if digit => Frac,
            (Zero | Int | Frac, 'e' | 'E') => E,
            (E, '+' | '-') => ESign,
            (E | ESign | Exp, _) if digit => Exp,
            _ => return None,
        })
    }

    fn start(c: char) -> Option<NumAt> {
        match c {
            '-' => Some(NumAt::Minus),
            '0' => Some(NumAt::Zero),
            '1'..='9' => Some(NumAt::Int),
            _ => None,
        }
    }

    fn complete(self) -> bool {
        matches!(self, NumAt::Zero | NumAt::Int | NumAt::Frac | NumAt::Exp)
    }
}

#[derive(Debug, Clone)]
enum Scalar {
    Str {
        node: usize,
        s: Str,
    },
    Num {
        node: usize,
        raw: String,
        at: NumAt,
    },
    /// An enum option or a literal (`true`, `false`, `null`), matched as raw text.
    Raw {
        node: usize,
        literal: bool,
        raw: String,
    },
}

const LITERALS: [&str; 3] = ["true", "false", "null"];

#[derive(Debug, Clone)]
enum Obj {
    /// After `{`: a key or `}`.
    Open,
    /// After `,`: a key.
    Comma,
    Key(Str),
    /// After a key: `:`.
    Colon(Slot),
    /// After `:`: the value.
    Value(Slot),
    /// After a value (or while it is being read): `,` or `}`.
    After,
}

#[derive(Debug, Clone, Copy)]
enum Arr {
    Open,
    Comma,
    After,
}

#[derive(Debug, Clone)]
enum Frame {
    Object { node: usize, seen: Vec<Slot>, at: Obj },
    Array { node: usize, count: u64, at: Arr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    Start,
    Inside,
    Done,
    Broken,
}

/// The state of a JSON reply read so far, against a schema. Cloning is cheap (the schema is shared).
#[derive(Debug, Clone)]
pub struct PartialJson {
    schema: Arc<Schema>,
    stack: Vec<Frame>,
    scalar: Option<Scalar>,
    top: Top,
}

impl PartialJson {
    /// A tracker for replies to `schema` (JSON Schema text); an error if the text is not JSON.
    pub fn new(schema: &str) -> Result<PartialJson, String> {
        let parsed: Ordered = serde_json::from_str(schema).map_err(|e| format!("schema is not valid JSON: {e}"))?;
        Ok(PartialJson { schema: Arc::new(Schema::compile(&parsed)), stack: Vec::new(), scalar: None, top: Top::Start })
    }

    /// Reads more of the reply. Text that is not a JSON prefix breaks the tracker for good.
    pub fn push_str(&mut self, text: &str) {
        for c in text.chars() {
            self.push(c);
        }
    }

    pub fn push(&mut self, c: char) {
        if self.top != Top::Broken && !self.step(c) {
            self.top = Top::Broken;
        }
    }

    /// The text read so far was not a prefix of a JSON value this tracker can follow.
    pub fn is_broken(&self) -> bool {
        self.top == Top::Broken
    }

    /// The value is complete (only whitespace may follow).
    pub fn is_complete(&self) -> bool {
        self.top == Top::Done
    }

    fn step(&mut self, c: char) -> bool {
        if let Some(sc) = self.scalar.as_mut() {
            match self.schema.push_scalar(sc, c) {
                Step::More => return true,
                Step::Done => {
                    self.end_value();
                    return true;
                }
                Step::Ended => self.end_value(),
                Step::Bad => return false,
            }
        }
        let ws = matches!(c, ' ' | '\t' | '\n' | '\r');
        let Some(frame) = self.stack.last_mut() else {
            return match self.top {
                Top::Start if ws => true,
                Top::Start => {
                    self.top = Top::Inside;
                    self.begin_value(ROOT, c)
                }
                Top::Done => ws,
                Top::Inside | Top::Broken => false,
            };
        };
        let schema = Arc::clone(&self.schema);
        match frame {
            Frame::Object { node, seen, at } => {
                let node = *node;
                match at {
                    _ if ws && !matches!(at, Obj::Key(_)) => true,
                    Obj::Open | Obj::Comma if c == '"' => {
                        *at = Obj::Key(Str::default());
                        true
                    }
                    Obj::Open | Obj::After if c == '}' => {
                        self.stack.pop();
                        self.end_value();
                        true
                    }
                    Obj::After if c == ',' => {
                        *at = Obj::Comma;
                        true
                    }
                    Obj::Key(s) => match s.push(c) {
                        Step::More => true,
                        Step::Done => {
                            let Some(slot) = schema.slot_for(node, seen, &s.decoded) else { return false };
                            seen.push(slot);
                            *at = Obj::Colon(slot);
                            true
                        }
                        _ => false,
                    },
                    Obj::Colon(slot) if c == ':' => {
                        *at = Obj::Value(*slot);
                        true
                    }
                    Obj::Value(slot) => {
                        let child = schema.slot_node(node, *slot);
                        *at = Obj::After;
                        self.begin_value(child, c)
                    }
                    _ => false,
                }
            }
            Frame::Array { node, count, at } => match at {
                _ if ws => true,
                Arr::Open | Arr::After if c == ']' => {
                    self.stack.pop();
                    self.end_value();
                    true
                }
                Arr::After if c == ',' => {
                    *at = Arr::Comma;
                    true
                }
                Arr::Open | Arr::Comma => {
                    let items = schema.nodes[*node].items;
                    *count += 1;
                    *at = Arr::After;
                    self.begin_value(items, c)
                }
                Arr::After => false,
            },
        }
    }

    /// A value of node `n` starts with `c`.
    fn begin_value(&mut self, n: usize, c: char) -> bool {
        let kind = self.schema.nodes[n].kind;
        let fits = |k: Kind| kind == k || kind == Kind::Any;
        let scalar = match c {
            _ if kind == Kind::Enum => Scalar::Raw { node: n, literal: false, raw: String::new() },
            '{' if fits(Kind::Object) => {
                self.stack.push(Frame::Object { node: n, seen: Vec::new(), at: Obj::Open });
                return true;
            }
            '[' if fits(Kind::Array) => {
                self.stack.push(Frame::Array { node: n, count: 0, at: Arr::Open });
                return true;
            }
            '"' if fits(Kind::String) => {
                self.scalar = Some(Scalar::Str { node: n, s: Str::default() });
                return true;
            }
            '-' | '0'..='9' if fits(Kind::Integer) || kind == Kind::Number => {
                let Some(at) = NumAt::start(c) else { return false };
                self.scalar = Some(Scalar::Num { node: n, raw: c.to_string(), at });
                return true;
            }
            't' | 'f' | 'n' if fits(Kind::Boolean) || kind == Kind::Null => {
                Scalar::Raw { node: n, literal: true, raw: String::new() }
            }
            _ => return false,
        };
        let mut sc = scalar;
        match self.schema.push_scalar(&mut sc, c) {
            Step::More => {
                self.scalar = Some(sc);
                true
            }
            Step::Done => {
                self.end_value();
                true
            }
            Step::Ended | Step::Bad => false,
        }
    }

    /// A scalar finished or a container closed.
    fn end_value(&mut self) {
        self.scalar = None;
        if self.stack.is_empty() {
            self.top = Top::Done;
        }
    }

    /// The shortest text that, appended to what was read, makes a complete value that the schema accepts
    /// (given that what was read so far does). `Some("")` once complete; `None` if the tracker is broken or no
    /// completion exists (a property name that matches nothing allowed, an over-long requirement).
    pub fn completion(&self) -> Option<String> {
        let s = &*self.schema;
        let mut out = String::new();
        match self.top {
            Top::Broken => return None,
            Top::Done => return Some(out),
            Top::Start => return s.minimal(ROOT, &mut out).then_some(out),
            Top::Inside => {}
        }
        if let Some(sc) = &self.scalar {
            out.push_str(&s.close_scalar(sc)?);
        }
        for frame in self.stack.iter().rev() {
            match frame {
                Frame::Object { node, seen, at } => {
                    let obj = &s.nodes[*node];
                    let mut seen = seen.clone();
                    match at {
                        Obj::Open | Obj::After => {}
                        Obj::Comma => {
                            let slot = s.candidates(*node, &seen).into_iter().next()?;
                            out.push_str(&s.slot_key(*node, slot));
                            out.push(':');
                            seen.push(slot);
                            if !s.minimal(s.slot_node(*node, slot), &mut out) {
                                return None;
                            }
                        }
                        Obj::Key(k) => {
                            if k.esc != Esc::None || k.high {
                                return None;
                            }
                            let slot = s
                                .candidates(*node, &seen)
                                .into_iter()
                                .find(|sl| matches!(sl, Slot::Prop(i) if obj.props[*i].name.starts_with(&k.decoded)))
                                .or(obj.additional.map(|_| Slot::Extra))?;
                            if let Slot::Prop(i) = slot {
                                let full = json_string(&obj.props[i].name);
                                let written = json_string(&k.decoded);
                                out.push_str(&full[written.len() - 1..]);
                            } else {
                                // An extra key must not be a property's name (the grammar excludes those).
                                let mut name = k.decoded.clone();
                                while obj.props.iter().any(|p| p.name == name) {
                                    name.push('_');
                                    out.push('_');
                                }
                                out.push('"');
                            }
                            out.push(':');
                            seen.push(slot);
                            if !s.minimal(s.slot_node(*node, slot), &mut out) {
                                return None;
                            }
                        }
                        Obj::Colon(slot) => {
                            out.push(':');
                            if !s.minimal(s.slot_node(*node, *slot), &mut out) {
                                return None;
                            }
                        }
                        Obj::Value(slot) => {
                            if !s.minimal(s.slot_node(*node, *slot), &mut out) {
                                return None;
                            }
                        }
                    }
                    let mut any = !seen.is_empty();
                    for &i in &obj.order {
                        let p = &obj.props[i];
                        if p.required && !seen.contains(&Slot::Prop(i)) {
                            if any {
                                out.push(',');
                            }
                            any = true;
                            out.push_str(&json_string(&p.name));
                            out.push(':');
                            if !s.minimal(p.node, &mut out) {
                                return None;
                            }
                        }
                    }
                    out.push('}');
                }
                Frame::Array { node, count, at } => {
                    let arr = &s.nodes[*node];
                    let mut count = *count;
                    if let Arr::Comma = at {
                        if !s.minimal(arr.items, &mut out) {
                            return None;
                        }
                        count += 1;
                    }
                    while count < arr.min_items {
                        if count > 0 {
                            out.push(',');
                        }
                        if !s.minimal(arr.items, &mut out) {
                            return None;
                        }
                        count += 1;
                    }
                    out.push(']');
                }
            }
            if out.len() > MAX_COMPLETION {
                return None;
            }
        }
        Some(out)
    }
}

impl Schema {
    fn slot_node(&self, obj: usize, slot: Slot) -> usize {
        match slot {
            Slot::Prop(i) => self.nodes[obj].props[i].node,
            Slot::Extra => self.nodes[obj].additional.unwrap_or(ANY),
        }
    }

    fn slot_key(&self, obj: usize, slot: Slot) -> String {
        match slot {
            Slot::Prop(i) => json_string(&self.nodes[obj].props[i].name),
            Slot::Extra => "\"\"".into(),
        }
    }

    /// The slot of a key just read: a property not seen yet, or an extra key where allowed.
    fn slot_for(&self, obj: usize, seen: &[Slot], key: &str) -> Option<Slot> {
        let node = &self.nodes[obj];
        match node.props.iter().position(|p| p.name == key) {
            Some(i) if seen.contains(&Slot::Prop(i)) => None,
            Some(i) => Some(Slot::Prop(i)),
            None => node.additional.map(|_| Slot::Extra),
        }
    }

    /// Slots the grammar allows next, preferred first: the first missing required property (the grammar
    /// allows no other while one is missing), else optional properties after the last one written, then an
    /// extra key.
    fn candidates(&self, obj: usize, seen: &[Slot]) -> Vec<Slot> {
        let node = &self.nodes[obj];
        if let Some(&i) = node.order.iter().find(|&&i| node.props[i].required && !seen.contains(&Slot::Prop(i))) {
            return vec![Slot::Prop(i)];
        }
        let last = node.order.iter().rposition(|&i| seen.contains(&Slot::Prop(i))).map_or(0, |p| p + 1);
        let mut out: Vec<Slot> =
            node.order[last..].iter().filter(|&&i| !seen.contains(&Slot::Prop(i))).map(|&i| Slot::Prop(i)).collect();
        if node.additional.is_some() {
            out.push(Slot::Extra);
        }
        out
    }

    fn push_scalar(&self, sc: &mut Scalar, c: char) -> Step {
        match sc {
            Scalar::Str { s, .. } => s.push(c),
            Scalar::Num { raw, at, .. } => match at.next(c) {
                Some(next) => {
                    *at = next;
                    raw.push(c);
                    Step::More
                }
                None if at.complete() => Step::Ended,
                None => Step::Bad,
            },
            Scalar::Raw { node, literal, raw } => {
                let options = self.raw_options(*node, *literal);
                let mut longer = raw.clone();
                longer.push(c);
                if options.iter().any(|o| o.starts_with(longer.as_str())) {
                    *raw = longer;
                    let exact = options.iter().any(|o| o == raw);
                    let extends = options.iter().any(|o| o.len() > raw.len() && o.starts_with(raw.as_str()));
                    if exact && !extends {
                        Step::Done
                    } else {
                        Step::More
                    }
                } else if options.iter().any(|o| o == raw) {
                    Step::Ended
                } else {
                    Step::Bad
                }
            }
        }
    }

    fn raw_options(&self, node: usize, literal: bool) -> Vec<&str> {
        let n = &self.nodes[node];
        if !literal {
            return n.options.iter().map(String::as_str).collect();
        }
        match n.kind {
            Kind::Boolean => vec!["true", "false"],
            Kind::Null => vec!["null"],
            _ => LITERALS.to_vec(),
        }
    }

    fn close_scalar(&self, sc: &Scalar) -> Option<String> {
        match sc {
            Scalar::Str { node, s } => s.close(self.nodes[*node].min_length),
            Scalar::Raw { node, literal, raw } => {
                let options = self.raw_options(*node, *literal);
                if options.contains(&raw.as_str()) {
                    return Some(String::new());
                }
                options
                    .iter()
                    .filter(|o| o.starts_with(raw.as_str()))
                    .min_by_key(|o| o.len())
                    .map(|o| o[raw.len()..].to_string())
            }
            Scalar::Num { node, raw, at } => Some(close_number(&self.nodes[*node], raw, *at)),
        }
    }
}

/// The fewest characters that end the number `raw` (read up to state `at`) within the node's type and bounds;
/// if none exists (the model already left the range), just enough to make it a number.
fn close_number(node: &Node, raw: &str, at: NumAt) -> String {
    let syntactic = if at.complete() { String::new() } else { "0".into() };
    match node.kind {
        Kind::Integer if matches!(at, NumAt::Minus | NumAt::Zero | NumAt::Int) => {
            close_integer(node, raw, at).unwrap_or(syntactic)
        }
        Kind::Integer | Kind::Number => {
            let integer = node.kind == Kind::Integer;
            let ok = |t: &str| {
                t.parse::<f64>().is_ok_and(|v| in_range(node, v) && (!integer || v.fract() == 0.0))
                    && t.chars()
                        .try_fold(None::<NumAt>, |st, c| match st {
                            None => NumAt::start(c).map(Some),
                            Some(s) => s.next(c).map(Some),
                        })
                        .flatten()
                        .is_some_and(NumAt::complete)
            };
            if at.complete() && ok(raw) {
                return String::new();
            }
            // Shortest first: up to three more digits, or a decimal point and up to three decimals.
            for len in 1..=4usize {
                let digits = (len <= 3).then(|| (0..10u32.pow(len as u32)).map(move |d| format!("{d:0len$}")));
                let decimals =
                    (len >= 2).then(|| (0..10u32.pow(len as u32 - 1)).map(move |d| format!(".{d:0w$}", w = len - 1)));
                for suffix in digits.into_iter().flatten().chain(decimals.into_iter().flatten()) {
                    if ok(&format!("{raw}{suffix}")) {
                        return suffix;
                    }
                }
            }
            syntactic
        }
        _ => syntactic,
    }
}

/// Digits that end an integer `raw` ("-", "-0", "12", …) inside the node's bounds, nearest zero first.
fn close_integer(node: &Node, raw: &str, at: NumAt) -> Option<String> {
    let (lo, hi) = int_bounds(node);
    let negative = raw.starts_with('-');
    let digits = raw.trim_start_matches('-');
    if digits.len() > 18 {
        return None;
    }
    let prefix: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let signed = |m: i128| if negative { -m } else { m };
    if at.complete() && (lo..=hi).contains(&signed(prefix)) {
        return Some(String::new());
    }
    if at == NumAt::Zero {
        return None;
    }
    for len in 1..=(18 - digits.len() as u32) {
        let scale = 10i128.pow(len);
        // Magnitudes reachable by appending `len` digits (no leading zero after a bare "-").
        let (m_lo, m_hi) = match digits.is_empty() {
            true if len == 1 => (0, 9),
            true => (scale / 10, scale - 1),
            false => (prefix * scale, prefix * scale + scale - 1),
        };
        let (want_lo, want_hi) = if negative { (-hi, -lo) } else { (lo, hi) };
        let (a, b) = (m_lo.max(want_lo), m_hi.min(want_hi));
        if a <= b {
            let tail = a - if digits.is_empty() { 0 } else { prefix * scale };
            let text = if digits.is_empty() { a.to_string() } else { format!("{tail:0width$}", width = len as usize) };
            return Some(text);
        }
    }
    None
}

#[cfg(test)]
mod tests;
