//! Copying to the system clipboard from a terminal program, for every front end.

use std::io::Write;

/// The OSC 52 escape sequence that asks the terminal to put `text` on the system clipboard
/// (base64 of its UTF-8 bytes).
pub fn osc52(text: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    format!("\x1b]52;c;{encoded}\x07")
}

/// OSC 52 asks the terminal (also over SSH, and through tmux with `set-clipboard on`) to set the
/// system clipboard. Write errors are ignored: a terminal that cannot take it simply does not copy.
pub fn copy_osc52(text: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(osc52(text).as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_carries_the_text_as_base64() {
        assert_eq!(osc52("hi"), "\x1b]52;c;aGk=\x07");
        assert_eq!(osc52("市场"), "\x1b]52;c;5biC5Zy6\x07");
    }
}
