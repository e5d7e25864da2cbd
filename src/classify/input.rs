//! Turning input bytes into items: plain lines, TSV, CSV or JSONL, each line checked on its own so
//! one bad line (invalid UTF-8, NUL, empty, wrong column count) becomes one error result.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    Lines,
    Tsv,
    Csv,
    Jsonl,
}

/// A column named by 1-based number or by header name.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Index(usize),
    Name(String),
}

impl Column {
    pub fn parse(s: &str) -> Column {
        match s.parse::<usize>() {
            Ok(n) if n >= 1 => Column::Index(n - 1),
            _ => Column::Name(s.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputSpec {
    pub format: InputFormat,
    /// Text column (TSV/CSV) or field (JSONL).
    pub text: Column,
    /// Gold label column/field (evaluation and training).
    pub label: Option<Column>,
    /// Optional id column/field, shown instead of the text.
    pub id: Option<Column>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// 1-based line number in the input.
    pub line: usize,
    pub id: Option<String>,
    pub text: Result<String, String>,
    pub label: Option<String>,
}

/// Why a whole input cannot be used (e.g. a named column that is not in the header).
#[derive(Debug, Clone, PartialEq)]
pub struct InputError(pub String);

/// Splits bytes into physical lines (LF, optional CR), without a phantom empty line at the end.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == b'\n')
        .filter(move |_| !empty)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

fn text_of(line: &[u8]) -> Result<&str, String> {
    if let Some(p) = line.iter().position(|&b| b == 0) {
        return Err(format!("NUL byte at column {}", p + 1));
    }
    std::str::from_utf8(line).map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1))
}

fn non_empty(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err("empty text".into())
    } else {
        Ok(s.to_string())
    }
}

/// Parses the whole input. A first TSV/CSV row that has a column named like the text column (or
/// "text") is a header.
pub fn parse(bytes: &[u8], spec: &InputSpec) -> Result<Vec<Item>, InputError> {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    match spec.format {
        InputFormat::Lines => Ok(lines(bytes)
            .map(|(n, l)| Item { line: n, id: None, text: text_of(l).and_then(non_empty), label: None })
            .collect()),
        InputFormat::Tsv | InputFormat::Csv => table(bytes, spec),
        InputFormat::Jsonl => Ok(lines(bytes).map(|(n, l)| jsonl_item(n, l, spec)).collect()),
    }
}

fn split_row(line: &str, format: InputFormat) -> Vec<String> {
    if format == InputFormat::Tsv {
        return line.split('\t').map(str::to_string).collect();
    }
    // CSV (RFC 4180 within one line): quoted fields, doubled quotes.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn resolve(col: &Column, header: Option<&[String]>, what: &str) -> Result<usize, InputError> {
    match col {
        Column::Index(i) => Ok(*i),
        Column::Name(n) => header
            .and_then(|h| h.iter().position(|c| c.trim().eq_ignore_ascii_case(n)))
            .ok_or_else(|| InputError(format!("no {what} column named {n:?} in the header; pass its number instead"))),
    }
}

fn table(bytes: &[u8], spec: &InputSpec) -> Result<Vec<Item>, InputError> {
    let mut rows = lines(bytes).peekable();
    let mut header: Option<Vec<String>> = None;
    if let Some((_, first)) = rows.peek() {
        if let Ok(t) = text_of(first) {
            let cells = split_row(t, spec.format);
            let named = |c: &Option<Column>| matches!(c, Some(Column::Name(n)) if cells.iter().any(|x| x.trim().eq_ignore_ascii_case(n)));
            let is_header = cells.iter().any(|c| c.trim().eq_ignore_ascii_case("text"))
                || named(&Some(spec.text.clone()))
                || named(&spec.label);
            if is_header {
                header = Some(cells);
                rows.next();
            }
        }
    }
    let h = header.as_deref();
    let text_col = resolve(&spec.text, h, "text")?;
    let label_col = spec.label.as_ref().map(|c| resolve(c, h, "label")).transpose()?;
    let id_col = spec.id.as_ref().map(|c| resolve(c, h, "id")).transpose()?;
    let width = h.map(|h| h.len());
    let mut items = Vec::new();
    let mut expected = width;
    for (n, raw) in rows {
        let mut item = Item { line: n, id: None, text: Err(String::new()), label: None };
        match text_of(raw) {
            Err(e) => item.text = Err(e),
            Ok(t) if t.trim().is_empty() => item.text = Err("empty line".into()),
            Ok(t) => {
                let cells = split_row(t, spec.format);
                let want = *expected.get_or_insert(cells.len());
                let need = text_col.max(label_col.unwrap_or(0)).max(id_col.unwrap_or(0)) + 1;
                if cells.len() != want || cells.len() < need {
                    item.text = Err(format!("{} columns, expected {}", cells.len(), want.max(need)));
                } else {
                    item.text = non_empty(&cells[text_col]);
                    item.label = label_col.map(|c| cells[c].trim().to_string());
                    item.id = id_col.map(|c| cells[c].trim().to_string());
                }
            }
        }
        items.push(item);
    }
    Ok(items)
}

fn field(v: &serde_json::Value, col: &Column) -> Option<String> {
    let f = match col {
        Column::Name(n) => v.get(n),
        Column::Index(i) => v.as_array().and_then(|a| a.get(*i)),
    }?;
    Some(match f {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn jsonl_item(n: usize, raw: &[u8], spec: &InputSpec) -> Item {
    let mut item = Item { line: n, id: None, text: Err(String::new()), label: None };
    let v = match text_of(raw) {
        Err(e) => {
            item.text = Err(e);
            return item;
        }
        Ok(t) if t.trim().is_empty() => {
            item.text = Err("empty line".into());
            return item;
        }
        Ok(t) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(v) => v,
            Err(e) => {
                item.text = Err(format!("not JSON: {e}"));
                return item;
            }
        },
    };
    let text_name = match &spec.text {
        Column::Name(n) => n.clone(),
        Column::Index(i) => format!("#{}", i + 1),
    };
    item.text = match field(&v, &spec.text) {
        Some(t) => non_empty(&t),
        None => Err(format!("no field {text_name:?}")),
    };
    item.label = spec.label.as_ref().and_then(|c| field(&v, c));
    item.id = spec.id.as_ref().and_then(|c| field(&v, c));
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: InputFormat, text: &str, label: Option<&str>) -> InputSpec {
        InputSpec { format, text: Column::parse(text), label: label.map(Column::parse), id: None }
    }

    #[test]
    fn lines_keep_order_and_flag_bad_ones() {
        let items = parse(b"good\n\nbad \xff\nnul\0x\r\nlast", &spec(InputFormat::Lines, "1", None)).unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items[0].text, Ok("good".into()));
        assert!(items[1].text.is_err() && items[2].text.as_ref().unwrap_err().contains("UTF-8"));
        assert!(items[3].text.as_ref().unwrap_err().contains("NUL"));
        assert_eq!((items[4].line, items[4].text.clone()), (5, Ok("last".into())));
        assert!(parse(b"", &spec(InputFormat::Lines, "1", None)).unwrap().is_empty());
        assert_eq!(parse(b"a\n", &spec(InputFormat::Lines, "1", None)).unwrap().len(), 1);
    }

    #[test]
    fn tsv_with_header_names_and_bad_rows() {
        let data = b"label\ttext\npositive\tgreat\nnegative\tbad\textra\nnegative\tawful\n";
        let items = parse(data, &spec(InputFormat::Tsv, "text", Some("label"))).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!((items[0].text.clone(), items[0].label.clone()), (Ok("great".into()), Some("positive".into())));
        assert!(items[1].text.as_ref().unwrap_err().contains("3 columns"));
        assert_eq!(items[2].line, 4);
        let e = parse(data, &spec(InputFormat::Tsv, "body", None)).unwrap_err();
        assert!(e.0.contains("body"));
        // Numbered columns, no header.
        let items = parse(b"1\tfine\n2\tok\n", &spec(InputFormat::Tsv, "2", None)).unwrap();
        assert_eq!(items[1].text, Ok("ok".into()));
    }

    #[test]
    fn csv_quotes_and_jsonl_fields() {
        let items = parse(b"id,text\n7,\"a, \"\"quoted\"\" one\"\n", &spec(InputFormat::Csv, "text", None)).unwrap();
        assert_eq!(items[0].text, Ok("a, \"quoted\" one".into()));
        let s = InputSpec { id: Some(Column::parse("id")), ..spec(InputFormat::Jsonl, "text", Some("y")) };
        let items = parse(b"{\"text\":\"hi\",\"y\":\"positive\",\"id\":3}\n{oops\n{\"t\":1}\n", &s).unwrap();
        assert_eq!((items[0].id.clone(), items[0].label.clone()), (Some("3".into()), Some("positive".into())));
        assert!(items[1].text.as_ref().unwrap_err().contains("JSON"));
        assert!(items[2].text.as_ref().unwrap_err().contains("text"));
    }
}
