//! The schema side of partial JSON: a JSON value that keeps key order ([`Ordered`]), and the schema
//! compiled to a flat list of nodes the way llama.cpp's grammar reads it, with the smallest valid
//! value of each node (what a completion adds for a missing property or item).

use super::*;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value with object keys in document order. serde_json's `Value` sorts keys, but the grammar follows the
/// schema's property order, and so must a completion.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ordered {
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
    pub(super) fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(v) => v.iter().find(|(k, _)| k == key).map(|(_, x)| x),
            _ => None,
        }
    }

    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            Ordered::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Ordered::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// Compact JSON text, keys in document order (how llama.cpp writes an enum option into its grammar).
    pub(super) fn write(&self, out: &mut String) {
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

pub(super) fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct Prop {
    pub(super) name: String,
    pub(super) node: usize,
    pub(super) required: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) kind: Kind,
    /// `Enum`: every option as compact JSON text.
    pub(super) options: Vec<String>,
    /// `Object`: properties in schema order.
    pub(super) props: Vec<Prop>,
    /// `Object`: indices into `props`, required ones first, each group in schema order (the grammar's order).
    pub(super) order: Vec<usize>,
    /// `Object`: the node of extra properties' values, where the grammar allows extra keys.
    pub(super) additional: Option<usize>,
    /// `Array`: the node of the items.
    pub(super) items: usize,
    pub(super) min_items: u64,
    pub(super) min_length: u64,
    // Only the tests' reply generator reads the upper bounds: a completion never adds items or characters
    // beyond the minimum, and the grammar keeps the model within them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) max_items: Option<u64>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) max_length: Option<u64>,
    pub(super) minimum: Option<f64>,
    pub(super) maximum: Option<f64>,
}

impl Node {
    pub(super) fn new(kind: Kind) -> Node {
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
pub(super) struct Schema {
    pub(super) nodes: Vec<Node>,
}

pub(super) const ANY: usize = 0;
pub(super) const ROOT: usize = 1;

impl Schema {
    pub(super) fn compile(schema: &Ordered) -> Schema {
        let mut s = Schema { nodes: vec![Node::new(Kind::Any)] };
        s.add(schema);
        s
    }

    /// Mirrors how llama.cpp's `json-schema.cpp` reads a schema: `enum` wins over `type`; without a `type` the
    /// structural keywords decide.
    pub(super) fn add(&mut self, s: &Ordered) -> usize {
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
    pub(super) fn minimal(&self, n: usize, out: &mut String) -> bool {
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
pub(super) fn smallest_integer(node: &Node) -> String {
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

pub(super) fn int_bounds(node: &Node) -> (i128, i128) {
    let lo = node.minimum.map_or(i64::MIN as i128, |m| m.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i128);
    let hi = node.maximum.map_or(i64::MAX as i128, |m| m.floor().clamp(i64::MIN as f64, i64::MAX as f64) as i128);
    (lo, hi)
}

pub(super) fn smallest_number(node: &Node) -> String {
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

pub(super) fn in_range(node: &Node, v: f64) -> bool {
    node.minimum.is_none_or(|m| v >= m) && node.maximum.is_none_or(|m| v <= m)
}
