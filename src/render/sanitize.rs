//! The one sanitiser for text that reaches a terminal.
//!
//! Everything moat shows that came from outside the program — model replies, GGUF metadata (names,
//! labels, template errors), server replies, session, history and prompt files, input lines, file
//! paths, error messages — goes through [`sanitize`] (whole strings) or [`Sanitizer`] (streams)
//! before it is written to a terminal. JSON output never does: serde escapes control characters, and
//! the bytes must stay exact.
//!
//! Rules:
//! * Escape sequences are removed whole, so no parameter residue (`[31m`) leaks into the visible
//!   text: CSI (`ESC [` or C1 `U+009B`, parameters, one final byte), OSC/DCS/SOS/PM/APC strings
//!   (`ESC ] P X ^ _` or their C1 forms, up to BEL, ST or `ESC \`), and short `ESC x` / `ESC ( B`
//!   forms. An unterminated string sequence swallows the rest of the text, as a terminal would.
//! * C0 controls other than `\n` and `\t` are dropped (so `\r\n` becomes `\n`), as are DEL and the C1
//!   controls U+0080–U+009F.
//! * Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069) are dropped: they reorder
//!   what a user sees (a file name or label that reads differently from its bytes).
//! * Every other character, including CJK, emoji, ZWJ and variation selectors, is kept.

use std::borrow::Cow;

use unicode_width::UnicodeWidthChar;

const ESC: char = '\x1b';
const BEL: char = '\x07';
/// C1 "string terminator"; ends OSC/DCS strings just like `ESC \`.
const ST: char = '\u{9c}';
/// C1 control sequence introducer, the one-character form of `ESC [`.
const CSI: char = '\u{9b}';
const TAB_STOP: usize = 4;

/// Removes terminal control and escape sequences from untrusted text (see the module docs).
///
/// Tabs are kept. Returns the input unchanged (borrowed) when there is nothing to remove.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_work) {
        return Cow::Borrowed(text);
    }
    let mut s = Sanitizer::default();
    let mut out = s.push(text);
    s.finish();
    out.shrink_to_fit();
    Cow::Owned(out)
}

/// [`sanitize`], then tabs expanded to spaces up to the next multiple of 4 columns, for widgets
/// that measure text in cells (a tab has no width of its own there).
pub fn sanitize_expand_tabs(text: &str) -> Cow<'_, str> {
    let clean = sanitize(text);
    if !clean.contains('\t') {
        return clean;
    }
    let mut out = String::with_capacity(clean.len() + 8);
    let mut col = 0usize;
    for c in clean.chars() {
        match c {
            '\t' => {
                let n = TAB_STOP - col % TAB_STOP;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            '\n' => {
                out.push(c);
                col = 0;
            }
            c => {
                out.push(c);
                col += c.width().unwrap_or(0);
            }
        }
    }
    Cow::Owned(out)
}

/// Sanitises text for a terminal only when it goes to one: data written to a pipe or a file (a
/// model's reply, a classified line) stays byte-exact.
pub fn for_terminal(text: &str, is_terminal: bool) -> Cow<'_, str> {
    if is_terminal {
        sanitize(text)
    } else {
        Cow::Borrowed(text)
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn needs_work(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        c => c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) || is_bidi_control(c),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After ESC and one or more intermediate bytes (0x20–0x2F), e.g. `ESC ( B`.
    EscIntermediate,
    /// Inside a CSI sequence's parameters.
    Csi,
    /// Inside an OSC/DCS/SOS/PM/APC string.
    Str,
    /// ESC inside a string: `\` ends it, anything else starts a new sequence.
    StrEsc,
}

/// A streaming [`sanitize`]: an escape sequence split across pushed pieces (a model emits `ESC` in
/// one token and `[31m` in the next) is still removed whole. Tabs are kept.
#[derive(Debug, Default)]
pub struct Sanitizer {
    state: State,
}

impl Sanitizer {
    /// Returns the safe part of `piece`; a sequence still open at its end is remembered and its
    /// remainder dropped from the next pieces.
    pub fn push(&mut self, piece: &str) -> String {
        let mut out = String::with_capacity(piece.len());
        for c in piece.chars() {
            self.step(c, &mut out);
        }
        out
    }

    /// Forgets an unterminated sequence (the text ended inside it).
    pub fn finish(&mut self) {
        self.state = State::Ground;
    }

    fn step(&mut self, c: char, out: &mut String) {
        use State::*;
        match self.state {
            Ground => match c {
                ESC => self.state = Escape,
                CSI => self.state = Csi,
                '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => self.state = Str,
                c if needs_work(c) => {}
                c => out.push(c),
            },
            Escape => match c {
                '[' => self.state = Csi,
                ']' | 'P' | 'X' | '^' | '_' => self.state = Str,
                ESC => {}
                '\x20'..='\x2f' => self.state = EscIntermediate,
                '\x30'..='\x7e' => self.state = Ground,
                // A lone ESC before text or a newline: drop just the ESC.
                c => {
                    self.state = Ground;
                    self.step(c, out);
                }
            },
            EscIntermediate => match c {
                '\x20'..='\x2f' => {}
                '\x30'..='\x7e' => self.state = Ground,
                c => {
                    self.state = Ground;
                    self.step(c, out);
                }
            },
            Csi => match c {
                '\x20'..='\x3f' => {}
                '\x40'..='\x7e' => self.state = Ground,
                // Anything else aborts the sequence and is ordinary text, as terminals do.
                c => {
                    self.state = Ground;
                    self.step(c, out);
                }
            },
            Str => match c {
                BEL | ST => self.state = Ground,
                ESC => self.state = StrEsc,
                _ => {}
            },
            StrEsc => match c {
                '\\' => self.state = Ground,
                c => {
                    self.state = Escape;
                    self.step(c, out);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bidi_overrides_and_c1_sequences_are_removed() {
        assert_eq!(sanitize("file\u{202E}gpj.exe"), "filegpj.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}c"), "abc");
        assert_eq!(sanitize("\u{9b}2Jabc\u{9d}0;title\u{9c}d"), "abcd");
    }

    #[test]
    fn the_reported_model_name_is_harmless() {
        // issue 12: general.name = ESC ] 0 ; PWN BEL ESC [ 2 J, padded with spaces to 31 bytes.
        let name = format!("{:<31}", "\x1b]0;PWN\x07\x1b[2J");
        assert_eq!(sanitize(&name).trim_end(), "");
        assert!(!sanitize(&name).contains(['\x1b', '\x07']));
    }

    #[test]
    fn sequences_split_across_pieces_leave_no_residue() {
        let mut s = Sanitizer::default();
        let pieces = ["red \x1b", "[3", "1mtext\x1b]0;ti", "tle\x07 done\x1b", "\\ ok"];
        let out: String = pieces.iter().map(|p| s.push(p)).collect();
        assert_eq!(out, "red text done ok");
    }

    #[test]
    fn tabs_are_kept_or_expanded() {
        assert_eq!(sanitize("a\tb"), "a\tb");
        assert_eq!(sanitize_expand_tabs("a\tb"), "a   b");
        assert_eq!(sanitize_expand_tabs("\tx\nab\ty"), "    x\nab  y");
        assert_eq!(sanitize_expand_tabs("中\tx"), "中  x");
    }

    proptest! {
        #[test]
        fn prop_sanitize_output_has_no_controls(s in "(\\PC|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}])*") {
            let out = sanitize(&s);
            prop_assert!(!out.chars().any(needs_work), "{out:?}");
        }

        #[test]
        fn prop_sanitize_streaming_equals_whole(s in "(\\PC|[\\x1b\\x07\\[\\]0-9;m\\\\])*", cut in 0usize..64) {
            let cut = s.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(s.len());
            let mut st = Sanitizer::default();
            let streamed = st.push(&s[..cut]) + &st.push(&s[cut..]);
            prop_assert_eq!(streamed, sanitize(&s).into_owned());
        }

        #[test]
        fn prop_sanitize_keeps_clean_text(s in "[^\\x00-\\x1f\\x7f-\\u{9f}\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}]*") {
            prop_assert_eq!(sanitize(&s), s.as_str());
        }
    }
}
