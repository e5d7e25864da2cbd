//! Turns chat message text into styled, width-wrapped ratatui lines.
//!
//! Everything here is a pure function of its inputs (plus process-wide caches that only
//! affect speed), so the UI can re-render any message at any width on every frame.
//! Model output is untrusted: every entry point that takes raw text sanitises it first,
//! so nothing a model prints can reach the terminal as a control sequence.

mod code;
mod markdown;
mod sanitize;
mod table;
mod theme;
mod wrap;

#[cfg(test)]
mod tests;

use ratatui::style::Style;
use ratatui::text::{Line, Span};

pub use code::{warm_up, AnsiHighlighter};
pub use markdown::render_markdown;
pub use sanitize::{for_terminal, sanitize, sanitize_expand_tabs, Sanitizer};
pub use theme::Theme;
pub use wrap::wrap_spans;

/// Output of [`render_markdown`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    pub lines: Vec<Line<'static>>,
    /// Fenced/indented code blocks in document order; the header of block `i` shows `[i + 1]`.
    pub code_blocks: Vec<CodeBlock>,
}

/// The source of one code block, as the user would want it copied (tabs kept, no gutter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeBlock {
    /// First word of the fence info string (`rust` for "```rust,ignore"); empty if none.
    pub lang: String,
    pub code: String,
}

/// The code blocks of a Markdown text, numbered as the renderer numbers them (for `/copy N`).
pub fn code_blocks(text: &str) -> Vec<CodeBlock> {
    render_markdown(text, 200, &Theme::default()).code_blocks
}

/// Plain text (user messages, errors) wrapped to `width`, no markdown interpretation.
///
/// Each `\n` starts a new line; a trailing newline does not add an empty line.
pub fn render_plain(text: &str, width: u16, style: Style) -> Vec<Line<'static>> {
    let clean = sanitize_expand_tabs(text);
    clean
        .lines()
        .flat_map(|line| wrap::wrap_spans(vec![Span::styled(line.to_owned(), style)], width, Vec::new(), Vec::new()))
        .collect()
}
