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
}
