//! Text plumbing between tokens and screens: UTF-8 assembly across token boundaries, stop strings
//! that never flash on screen. (Terminal safety is `render::sanitize`, applied where text is shown.)

/// Joins token bytes into whole characters; a character split over several tokens is held back
/// until it is complete.
#[derive(Default, Debug)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let ok = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..ok]).expect("checked prefix"));
                    match e.error_len() {
                        None => {
                            self.pending.drain(..ok);
                            return;
                        }
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..ok + bad);
                        }
                    }
                }
            }
        }
    }

    /// Bytes left at the end of generation are the start of a character the model never finished
    /// (`max_tokens`, a stop or a cancel cut it): dropped, so the reply holds only text the model
    /// produced, never a U+FFFD that it did not.
    pub fn finish(&mut self) {
        self.pending.clear();
    }
}

/// Streams text while watching for stop strings; text that could be the start of one is held back.
#[derive(Debug, Default)]
pub struct StopScanner {
    stops: Vec<String>,
    held: String,
}

pub enum Scan {
    /// Text that is safe to show now.
    Emit(String),
    /// A stop string was found; the text before it is safe to show.
    Stop(String),
}

impl StopScanner {
    pub fn new(stops: Vec<String>) -> Self {
        StopScanner { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), held: String::new() }
    }

    pub fn push(&mut self, text: &str) -> Scan {
        if self.stops.is_empty() {
            return Scan::Emit(text.to_string());
        }
        self.held.push_str(text);
        if let Some(pos) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let before = self.held[..pos].to_string();
            self.held.clear();
            return Scan::Stop(before);
        }
        let mut safe = self.held.len();
        for s in &self.stops {
            for k in (1..s.len()).rev() {
                if s.is_char_boundary(k) && self.held.ends_with(&s[..k]) {
                    safe = safe.min(self.held.len() - k);
                    break;
                }
            }
        }
        let rest = self.held.split_off(safe);
        Scan::Emit(std::mem::replace(&mut self.held, rest))
    }

    /// What is still held back when generation ends without a stop string.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// A piece of a streamed reply, sorted by [`ThinkSplitter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The model's reasoning (inside `<think>…</think>`), shown apart from the answer.
    Reasoning(String),
    /// The answer.
    Answer(String),
}

/// Splits a streamed reply that opens with a `<think>…</think>` block (DeepSeek-R1 distills, Qwen3
/// and other reasoning models) into reasoning and answer, however the tags are cut across tokens.
/// A reply that does not open with `<think>` (after leading whitespace) is all answer, byte for
/// byte; the newlines right after `</think>` are dropped so the answer starts at its text.
#[derive(Debug, Default)]
pub struct ThinkSplitter {
    state: ThinkState,
    /// Text held back because it may be the start of a tag.
    held: String,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ThinkState {
    /// Nothing but whitespace seen yet.
    #[default]
    Start,
    Reasoning,
    /// Just after `</think>`: newlines are skipped.
    AfterReasoning,
    Answer,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

impl ThinkSplitter {
    /// Feeds the next piece of text; returns what can be shown now.
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        self.held.push_str(text);
        loop {
            match self.state {
                ThinkState::Start => {
                    let trimmed = self.held.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.state = ThinkState::Reasoning;
                    } else if OPEN.starts_with(trimmed) {
                        return out; // all whitespace, or a cut-off "<thi"
                    } else {
                        self.state = ThinkState::Answer;
                    }
                }
                ThinkState::Reasoning => match self.held.find(CLOSE) {
                    Some(i) => {
                        let reasoning: String = self.held[..i].to_string();
                        self.held = self.held[i + CLOSE.len()..].to_string();
                        push_piece(&mut out, Piece::Reasoning(reasoning));
                        self.state = ThinkState::AfterReasoning;
                    }
                    None => {
                        let keep = partial_suffix(&self.held, CLOSE);
                        let ready: String = self.held[..self.held.len() - keep].to_string();
                        self.held.drain(..self.held.len() - keep);
                        push_piece(&mut out, Piece::Reasoning(ready));
                        return out;
                    }
                },
                ThinkState::AfterReasoning => {
                    let rest = self.held.trim_start_matches(['\n', '\r', ' ']).to_string();
                    self.held = rest;
                    if self.held.is_empty() {
                        return out;
                    }
                    self.state = ThinkState::Answer;
                }
                ThinkState::Answer => {
                    push_piece(&mut out, Piece::Answer(std::mem::take(&mut self.held)));
                    return out;
                }
            }
        }
    }

    /// The end of the reply: whatever was held back. An unclosed `<think>` stays reasoning.
    pub fn finish(&mut self) -> Vec<Piece> {
        let held = std::mem::take(&mut self.held);
        let piece = match self.state {
            ThinkState::Reasoning => Piece::Reasoning(held),
            ThinkState::AfterReasoning => return Vec::new(),
            ThinkState::Start | ThinkState::Answer => Piece::Answer(held),
        };
        let mut out = Vec::new();
        push_piece(&mut out, piece);
        out
    }
}

fn push_piece(out: &mut Vec<Piece>, piece: Piece) {
    match &piece {
        Piece::Reasoning(t) | Piece::Answer(t) if t.is_empty() => {}
        _ => out.push(piece),
    }
}

/// Bytes at the end of `text` that are a proper prefix of `tag` (so may become the tag).
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_survives_any_split() {
        let text = "歪 猫は可愛い 🦀 ok — 市场优势";
        let bytes = text.as_bytes();
        for chunk in 1..=5 {
            let mut s = Utf8Stream::default();
            let mut out = String::new();
            for piece in bytes.chunks(chunk) {
                s.push(piece, &mut out);
            }
            s.finish();
            assert_eq!(out, text, "chunk size {chunk}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        s.push(b"a\xffb", &mut out);
        s.push(&"é".as_bytes()[..1], &mut out);
        s.finish();
        // issue 12: `-n` ending inside a multi-byte character showed U+FFFD at the end.
        assert_eq!(out, "a\u{FFFD}b");
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        s.push("市场".as_bytes(), &mut out);
        s.push(&"优".as_bytes()[..2], &mut out);
        s.finish();
        assert_eq!(out, "市场");
    }

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut sc = StopScanner::new(stops.iter().map(|s| s.to_string()).collect());
        let mut shown = String::new();
        for p in pieces {
            match sc.push(p) {
                Scan::Emit(t) => shown.push_str(&t),
                Scan::Stop(t) => {
                    shown.push_str(&t);
                    return (shown, true);
                }
            }
        }
        shown.push_str(&sc.finish());
        (shown, false)
    }

    #[test]
    fn stop_strings_split_over_tokens_never_show() {
        assert_eq!(run(&["User:"], &["hello ", "Us", "er:", " more"]), ("hello ".into(), true));
        assert_eq!(run(&["User:"], &["hello Us", "ually"]), ("hello Usually".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["。结束"], &["好的", "。", "结束了"]), ("好的".into(), true));
    }

    fn split(pieces: &[&str]) -> (String, String) {
        let mut sp = ThinkSplitter::default();
        let (mut reasoning, mut answer) = (String::new(), String::new());
        let mut all: Vec<Piece> = pieces.iter().flat_map(|p| sp.push(p)).collect();
        all.extend(sp.finish());
        for p in all {
            match p {
                Piece::Reasoning(t) => reasoning.push_str(&t),
                Piece::Answer(t) => answer.push_str(&t),
            }
        }
        (reasoning, answer)
    }

    #[test]
    fn a_think_block_is_split_from_the_answer_however_the_tags_are_cut() {
        let whole = "<think>\nThe user wants 2+2.\n</think>\n\nIt is **4**.";
        let expected = ("\nThe user wants 2+2.\n".to_string(), "It is **4**.".to_string());
        assert_eq!(split(&[whole]), expected);
        // Every cut into two and three pieces (on character boundaries) gives the same.
        let cuts: Vec<usize> = (0..=whole.len()).filter(|&i| whole.is_char_boundary(i)).collect();
        for &i in &cuts {
            assert_eq!(split(&[&whole[..i], &whole[i..]]), expected, "cut at {i}");
            for &j in cuts.iter().filter(|&&j| j >= i) {
                assert_eq!(split(&[&whole[..i], &whole[i..j], &whole[j..]]), expected, "cuts at {i},{j}");
            }
        }
    }

    #[test]
    fn replies_without_a_leading_think_block_pass_through_byte_for_byte() {
        for text in ["Hello <think> is a tag", "  indented answer", "<thin ice>", "市场优势", "", "   "] {
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
            assert_eq!(split(&pieces), (String::new(), text.to_string()), "{text:?}");
        }
    }

    #[test]
    fn an_unclosed_think_block_is_all_reasoning_and_chinese_reasoning_survives() {
        assert_eq!(split(&["<think>还在想", "……</thi"]), ("还在想……</thi".into(), String::new()));
        assert_eq!(split(&[" <think>", "嗯</think>", "答案"]), ("嗯".into(), "答案".into()));
    }
}
