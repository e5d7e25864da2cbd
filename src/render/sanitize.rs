use std::borrow::Cow;

use unicode_width::UnicodeWidthChar;

const ESC: char = '\x1b';
const BEL: char = '\x07';
/// C1 "string terminator"; ends OSC/DCS strings just like `ESC \`.
const ST: char = '\u{9c}';
const TAB_STOP: usize = 4;

/// Removes terminal control and escape sequences from untrusted text.
///
/// * ESC sequences (CSI `ESC [ … final`, OSC/DCS/SOS/PM/APC strings up to BEL or ST,
///   and short `ESC x` / `ESC ( B` forms) are removed whole, so no parameter residue leaks
///   into the visible text. An unterminated string sequence swallows the rest of the text:
///   while streaming, its terminator simply has not arrived yet.
/// * C0 controls other than `\n` and `\t` are dropped (so `\r\n` becomes `\n`), `\t` becomes
///   spaces up to the next multiple of 4 columns, DEL and C1 controls (U+0080–U+009F) are dropped.
/// * Every other character, including CJK, emoji, ZWJ and variation selectors, is kept.
///
/// Returns the input unchanged (borrowed) when there is nothing to remove.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    clean(text, false)
}

/// Like [`sanitize`] but keeps tabs, for code that is later copied verbatim (Makefiles, Go).
pub(super) fn sanitize_keep_tabs(text: &str) -> Cow<'_, str> {
    clean(text, true)
}

fn needs_work(c: char, keep_tabs: bool) -> bool {
    match c {
        '\n' => false,
        '\t' => !keep_tabs,
        c => c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c),
    }
}

fn clean(text: &str, keep_tabs: bool) -> Cow<'_, str> {
    let Some(first) = text.find(|c| needs_work(c, keep_tabs)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut chars = text[first..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ESC => skip_escape(&mut chars),
            '\t' if !keep_tabs => {
                let line_start = out.rfind('\n').map_or(0, |i| i + 1);
                let col: usize = out[line_start..].chars().map(|c| c.width().unwrap_or(0)).sum();
                let n = TAB_STOP - col % TAB_STOP;
                out.extend(std::iter::repeat_n(' ', n));
            }
            c if needs_work(c, keep_tabs) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Consumes the remainder of an escape sequence whose ESC has already been read.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek().copied() {
        Some('[') => {
            chars.next();
            // Parameter and intermediate bytes, then one final byte. Anything else aborts the
            // sequence and is processed as ordinary text (as terminals do).
            while chars.next_if(|c| ('\x20'..='\x3f').contains(c)).is_some() {}
            chars.next_if(|c| ('\x40'..='\x7e').contains(c));
        }
        Some(']' | 'P' | 'X' | '^' | '_') => {
            chars.next();
            skip_string(chars);
        }
        Some(c) if ('\x20'..='\x2f').contains(&c) => {
            while chars.next_if(|c| ('\x20'..='\x2f').contains(c)).is_some() {}
            chars.next_if(|c| ('\x30'..='\x7e').contains(c));
        }
        Some(c) if ('\x30'..='\x7e').contains(&c) => {
            chars.next();
        }
        // A lone ESC (or ESC before text/newline): drop just the ESC.
        _ => {}
    }
}

/// Skips an OSC/DCS-style string up to and including its terminator (BEL, ST or `ESC \`).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.peek().copied() {
        match c {
            BEL | ST => {
                chars.next();
                return;
            }
            ESC => {
                chars.next();
                // `ESC \` is the terminator; any other ESC aborts the string and starts a new
                // sequence, which must be removed too.
                if chars.next_if_eq(&'\\').is_none() {
                    skip_escape(chars);
                }
                return;
            }
            _ => {
                chars.next();
            }
        }
    }
}
