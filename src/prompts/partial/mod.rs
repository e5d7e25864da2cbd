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

/// Longest completion worth computing; a schema demanding more (`minItems: 100000`) gets no completion.
const MAX_COMPLETION: usize = 64 * 1024;
/// What a string pads with when it must reach `minLength`.
const FILLER: char = '-';

mod schema;
use schema::*;

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
