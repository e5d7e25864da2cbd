//! Streams a Markdown reply to a terminal as it arrives, with light styling: headings and `**bold**`
//! in bold, `inline code` in a colour, fenced blocks highlighted line by line. Prose is printed at
//! once; only a marker that may still grow (`*`, a backtick, a possible fence) waits for the next
//! piece. Without colour the text passes through untouched.

use crate::render::AnsiHighlighter;
use std::io::Write;

const BOLD: &str = "\x1b[1m";
const CODE: &str = "\x1b[33m";
const HEADING: &str = "\x1b[1;36m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

pub struct Styler<W: Write> {
    out: W,
    color: bool,
    /// Text not yet printed because its meaning depends on what follows.
    held: String,
    at_line_start: bool,
    bold: bool,
    code: bool,
    heading: bool,
    /// Inside a fenced block: its highlighter and the current line so far.
    fence: Option<(AnsiHighlighter, String)>,
    /// Model text is untrusted: escape sequences are removed whole even when split across pieces.
    sanitizer: crate::render::Sanitizer,
    /// Everything written, for callers that keep the reply.
    pub ended_with_newline: bool,
    /// The reasoning shown so far (dimmed, before the answer) and its own sanitiser.
    aside: Option<crate::render::Sanitizer>,
}

impl<W: Write> Styler<W> {
    pub fn new(out: W, color: bool) -> Self {
        Styler {
            out,
            color,
            held: String::new(),
            at_line_start: true,
            bold: false,
            code: false,
            heading: false,
            fence: None,
            sanitizer: Default::default(),
            ended_with_newline: true,
            aside: None,
        }
    }

    /// The model's reasoning: printed as it comes, dimmed, apart from the answer (which starts on
    /// a fresh paragraph after it).
    pub fn aside(&mut self, text: &str) {
        let text = self.aside.get_or_insert_with(Default::default).push(text);
        if text.is_empty() {
            return;
        }
        self.ended_with_newline = text.ends_with('\n');
        let shown = if self.color { format!("{DIM}{text}{RESET}") } else { text };
        let _ = self.out.write_all(shown.as_bytes());
        let _ = self.out.flush();
    }

    pub fn push(&mut self, text: &str) {
        if self.aside.take().is_some() {
            let gap = if self.ended_with_newline { "\n" } else { "\n\n" };
            let _ = self.out.write_all(gap.as_bytes());
            self.ended_with_newline = true;
        }
        let text = self.sanitizer.push(text);
        if !text.is_empty() {
            self.ended_with_newline = text.ends_with('\n');
        }
        if !self.color {
            let _ = self.out.write_all(text.as_bytes());
            let _ = self.out.flush();
            return;
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(&text);
        let mut rest = buf.as_str();
        let mut out = String::new();
        while !rest.is_empty() {
            if let Some((_, line)) = &mut self.fence {
                // Code lines are highlighted once complete.
                match rest.find('\n') {
                    Some(i) => {
                        line.push_str(&rest[..=i]);
                        rest = &rest[i + 1..];
                        let done = std::mem::take(line);
                        if done.trim_start().starts_with("```") {
                            out.push_str(&format!("{DIM}{}{RESET}", done));
                            self.fence = None;
                        } else {
                            let (h, _) = self.fence.as_mut().expect("in a fence");
                            out.push_str(&h.line(&done));
                        }
                        self.at_line_start = true;
                    }
                    None => {
                        line.push_str(rest);
                        rest = "";
                    }
                }
                continue;
            }
            if self.at_line_start {
                let trimmed = rest.trim_start_matches(' ');
                if let Some(after) = trimmed.strip_prefix("```") {
                    match rest.find('\n') {
                        Some(i) => {
                            let lang = after.split(['\n', ' ', ',']).next().unwrap_or("").to_string();
                            out.push_str(&format!("{DIM}{}{RESET}", &rest[..=i]));
                            rest = &rest[i + 1..];
                            self.fence = Some((AnsiHighlighter::new(&lang), String::new()));
                            continue;
                        }
                        None => {
                            self.held = rest.to_string();
                            break;
                        }
                    }
                }
                if "```".starts_with(trimmed) && !trimmed.is_empty() && !rest.contains('\n') {
                    self.held = rest.to_string();
                    break;
                }
                if trimmed.starts_with('#') {
                    self.heading = true;
                    out.push_str(HEADING);
                }
                self.at_line_start = false;
            }
            let c = rest.chars().next().expect("not empty");
            match c {
                '\n' => {
                    if self.heading {
                        out.push_str(RESET);
                        self.heading = false;
                        self.restore(&mut out);
                    }
                    out.push('\n');
                    self.at_line_start = true;
                    rest = &rest[1..];
                }
                '`' => {
                    self.code = !self.code;
                    out.push_str(if self.code { CODE } else { RESET });
                    if !self.code {
                        self.restore(&mut out);
                    }
                    rest = &rest[1..];
                }
                '*' if !self.code => {
                    if rest.len() == 1 {
                        self.held = rest.to_string();
                        break;
                    }
                    if rest.starts_with("**") {
                        self.bold = !self.bold;
                        out.push_str(if self.bold { BOLD } else { RESET });
                        if !self.bold {
                            self.restore(&mut out);
                        }
                        rest = &rest[2..];
                    } else {
                        out.push('*');
                        rest = &rest[1..];
                    }
                }
                _ => {
                    let end = rest.find(['\n', '`', '*']).unwrap_or(rest.len()).max(c.len_utf8());
                    out.push_str(&rest[..end]);
                    rest = &rest[end..];
                }
            }
        }
        let _ = self.out.write_all(out.as_bytes());
        let _ = self.out.flush();
    }

    /// Re-applies the styles still open after a reset.
    fn restore(&self, out: &mut String) {
        if self.bold {
            out.push_str(BOLD);
        }
        if self.code {
            out.push_str(CODE);
        }
        if self.heading {
            out.push_str(HEADING);
        }
    }

    /// Prints whatever was held back and closes every style.
    pub fn finish(&mut self) {
        self.sanitizer.finish();
        let mut tail = std::mem::take(&mut self.held);
        if let Some((mut h, line)) = self.fence.take() {
            if !line.is_empty() {
                tail = h.line(&line) + &tail;
            }
        }
        if self.color {
            tail.push_str(RESET);
        }
        let _ = self.out.write_all(tail.as_bytes());
        let _ = self.out.flush();
        self.bold = false;
        self.code = false;
        self.heading = false;
        self.at_line_start = true;
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn styled(pieces: &[&str], color: bool) -> String {
        let mut s = Styler::new(Vec::new(), color);
        for p in pieces {
            s.push(p);
        }
        s.finish();
        String::from_utf8(s.into_inner()).unwrap()
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn reasoning_is_dimmed_and_the_answer_starts_a_new_paragraph() {
        let mut st = Styler::new(Vec::new(), true);
        st.aside("Let me think\x1b[2J.");
        st.aside(" Done");
        st.push("**4**");
        st.finish();
        let out = String::from_utf8(st.into_inner()).unwrap();
        assert!(out.starts_with(&format!("{DIM}Let me think.{RESET}")), "{out:?}");
        assert!(!out.contains("\x1b[2J"), "{out:?}");
        assert_eq!(strip_ansi(&out), "Let me think. Done\n\n4");
        let mut plain = Styler::new(Vec::new(), false);
        plain.aside("hmm\n");
        plain.push("yes");
        plain.finish();
        assert_eq!(String::from_utf8(plain.into_inner()).unwrap(), "hmm\n\nyes");
    }

    #[test]
    fn plain_output_is_the_text_unchanged() {
        let text = ["**a** `b`\n", "```py\nx = 1\n```\n", "市场优势 🦀"];
        assert_eq!(styled(&text, false), text.concat());
    }

    #[test]
    fn markers_split_across_pieces_still_style_and_vanish() {
        let out = styled(&["Some *", "*bold*", "* and `co", "de` here.\n# Ti", "tle\n"], true);
        assert!(out.contains(&format!("{BOLD}bold")), "{out:?}");
        assert!(out.contains(&format!("{CODE}code")), "{out:?}");
        assert_eq!(strip_ansi(&out), "Some bold and code here.\n# Title\n");
    }

    #[test]
    fn fenced_code_is_highlighted_and_the_fence_kept() {
        let out = styled(&["Here:\n`", "``rust\nfn main() {}\n", "```\ndone"], true);
        assert_eq!(strip_ansi(&out), "Here:\n```rust\nfn main() {}\n```\ndone");
        assert!(out.contains("\x1b[38;2;"), "24-bit colours in {out:?}");
    }

    #[test]
    fn model_escape_sequences_are_neutralised() {
        let out = styled(&["safe\x1b[2J text"], true);
        assert!(!out.contains("\x1b[2J"), "{out:?}");
        // issue 12: a colour sequence split across tokens left a visible `[31m` behind.
        for color in [true, false] {
            let out = styled(&["red \x1b", "[31", "mtext\x1b]0;t", "itle\x07 \u{202E}end"], color);
            assert_eq!(strip_ansi(&out), "red text end", "{out:?}");
            assert!(!out.contains("[31m") && !out.contains("title") && !out.contains('\u{202E}'), "{out:?}");
        }
    }

    #[test]
    fn an_unclosed_fence_is_flushed_at_the_end() {
        let out = styled(&["```\nlet x", " = 1;"], true);
        assert_eq!(strip_ansi(&out), "```\nlet x = 1;");
    }
}
