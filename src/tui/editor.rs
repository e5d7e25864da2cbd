//! The input box: a small multi-line editor. Positions are byte offsets kept on char boundaries;
//! display positions use `unicode-width` so the cursor sits right after CJK text.

use unicode_width::UnicodeWidthChar;

#[derive(Debug, Default, Clone)]
pub struct Editor {
    text: String,
    cursor: usize,
    /// The text came from a bracketed paste: a leading `/` is then text, not a command.
    pub pasted: bool,
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn set(&mut self, text: &str) {
        self.text = text.to_string();
        self.cursor = self.text.len();
        self.pasted = false;
    }

    pub fn take(&mut self) -> String {
        self.cursor = 0;
        self.pasted = false;
        std::mem::take(&mut self.text)
    }

    pub fn insert(&mut self, c: char) {
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    pub fn insert_str(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
    }

    pub fn paste(&mut self, s: &str) {
        if self.text.is_empty() {
            self.pasted = true;
        }
        // Pasted text can hold escape sequences (copied from a terminal): removed whole, not
        // left as `[31m` residue.
        let text = crate::text_input::normalize_newlines(s);
        self.insert_str(&crate::render::sanitize(&text));
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor].char_indices().next_back().map(|(i, _)| i)
    }

    fn next_boundary(&self) -> Option<usize> {
        self.text[self.cursor..].chars().next().map(|c| self.cursor + c.len_utf8())
    }

    pub fn backspace(&mut self) {
        if let Some(p) = self.prev_boundary() {
            self.text.replace_range(p..self.cursor, "");
            self.cursor = p;
        }
    }

    pub fn delete(&mut self) {
        if let Some(n) = self.next_boundary() {
            self.text.replace_range(self.cursor..n, "");
        }
    }

    pub fn left(&mut self) {
        if let Some(p) = self.prev_boundary() {
            self.cursor = p;
        }
    }

    pub fn right(&mut self) {
        if let Some(n) = self.next_boundary() {
            self.cursor = n;
        }
    }

    fn line_start(&self) -> usize {
        self.text[..self.cursor].rfind('\n').map_or(0, |i| i + 1)
    }

    fn line_end(&self) -> usize {
        self.text[self.cursor..].find('\n').map_or(self.text.len(), |i| self.cursor + i)
    }

    pub fn home(&mut self) {
        self.cursor = self.line_start();
    }

    pub fn end(&mut self) {
        self.cursor = self.line_end();
    }

    /// Deletes the word before the cursor (Ctrl+W).
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(char::is_whitespace);
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Deletes from the start of the line to the cursor (Ctrl+U).
    pub fn kill_to_start(&mut self) {
        let start = self.line_start();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    pub fn on_first_line(&self) -> bool {
        !self.text[..self.cursor].contains('\n')
    }

    pub fn on_last_line(&self) -> bool {
        !self.text[self.cursor..].contains('\n')
    }

    /// Moves to the same column on the previous (`up`) or next line.
    pub fn vertical(&mut self, up: bool) {
        let col = self.text[self.line_start()..self.cursor].chars().count();
        let target_start = if up {
            let start = self.line_start();
            if start == 0 {
                return;
            }
            self.text[..start - 1].rfind('\n').map_or(0, |i| i + 1)
        } else {
            let end = self.line_end();
            if end == self.text.len() {
                return;
            }
            end + 1
        };
        let line_end = self.text[target_start..].find('\n').map_or(self.text.len(), |i| target_start + i);
        let line = &self.text[target_start..line_end];
        self.cursor = target_start + line.char_indices().nth(col).map_or(line.len(), |(i, _)| i);
    }

    /// The text wrapped to `width` columns (by character; wide characters never split) and the
    /// cursor's (column, row) in it.
    pub fn layout(&self, width: u16) -> (Vec<String>, (u16, u16)) {
        let width = width.max(2) as usize;
        let mut rows = vec![String::new()];
        let mut col = 0usize;
        let mut cursor = (0u16, 0u16);
        for (i, c) in self.text.char_indices() {
            if i == self.cursor {
                cursor = (col as u16, (rows.len() - 1) as u16);
            }
            if c == '\n' {
                rows.push(String::new());
                col = 0;
                continue;
            }
            let c = if c == '\t' { ' ' } else { c };
            let w = c.width().unwrap_or(0);
            if col + w > width {
                rows.push(String::new());
                col = 0;
            }
            rows.last_mut().expect("one row").push(c);
            col += w;
        }
        if self.cursor >= self.text.len() {
            if col >= width {
                rows.push(String::new());
                col = 0;
            }
            cursor = (col as u16, (rows.len() - 1) as u16);
        }
        (rows, cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_on_char_boundaries_with_cjk() {
        let mut e = Editor::default();
        for c in "市场a".chars() {
            e.insert(c);
        }
        e.left();
        e.backspace();
        assert_eq!(e.text(), "市a");
        e.home();
        e.delete();
        assert_eq!(e.text(), "a");
    }

    #[test]
    fn layout_puts_the_cursor_after_wide_characters_and_wraps_them_whole() {
        let mut e = Editor::default();
        e.set("市场优势");
        let (rows, cursor) = e.layout(5);
        assert_eq!(rows, vec!["市场", "优势"]);
        assert_eq!(cursor, (4, 1));
    }

    #[test]
    fn vertical_moves_keep_the_column_and_paste_cleans_controls() {
        let mut e = Editor::default();
        e.paste("/not a command\r\nsecond\x1b[31m line");
        assert!(e.pasted);
        assert_eq!(e.text(), "/not a command\nsecond line");
        e.vertical(true);
        assert!(e.on_first_line());
        e.delete_word();
        e.kill_to_start();
        // Column 11 of "second line" is kept on the first line: "/not a comm|and".
        assert_eq!(e.text(), "and\nsecond line");
    }
}
