use ratatui::style::{Color, Modifier, Style};

/// Styles used by the renderers.
///
/// Named terminal colours are used (not RGB) so the defaults follow the user's terminal
/// palette; only syntax highlighting uses RGB, because syntect themes are defined that way.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Base style for ordinary message text.
    pub text: Style,
    pub heading: Style,
    /// The `#`/`##` marker in front of a heading.
    pub heading_marker: Style,
    pub emphasis: Style,
    pub strong: Style,
    pub strikethrough: Style,
    pub code_inline: Style,
    /// The `[N] lang` line above a code block.
    pub code_header: Style,
    /// Line numbers and the `│` separator of code blocks.
    pub code_gutter: Style,
    /// Code text when the language is unknown or not highlighted.
    pub code_text: Style,
    /// The `│` gutter of block quotes.
    pub quote: Style,
    /// Text inside block quotes (patched over the surrounding style).
    pub quote_text: Style,
    pub list_marker: Style,
    pub rule: Style,
    pub link: Style,
    /// The ` (url)` shown after link text.
    pub link_url: Style,
    pub table_border: Style,
    pub table_header: Style,
    pub user_label: Style,
    pub assistant_label: Style,
    pub error: Style,
    /// Name of a syntect default theme (e.g. "base16-ocean.dark", "InspiredGitHub").
    /// Unknown names fall back to "base16-ocean.dark".
    pub syntax_theme: String,
}

impl Default for Theme {
    fn default() -> Self {
        let bold = Modifier::BOLD;
        Self {
            text: Style::default(),
            heading: Style::default().fg(Color::Cyan).add_modifier(bold),
            heading_marker: Style::default().fg(Color::Cyan).add_modifier(Modifier::DIM),
            emphasis: Style::default().add_modifier(Modifier::ITALIC),
            strong: Style::default().add_modifier(bold),
            strikethrough: Style::default().add_modifier(Modifier::CROSSED_OUT),
            code_inline: Style::default().fg(Color::Yellow),
            code_header: Style::default().fg(Color::DarkGray).add_modifier(bold),
            code_gutter: Style::default().fg(Color::DarkGray),
            code_text: Style::default(),
            quote: Style::default().fg(Color::DarkGray),
            quote_text: Style::default().add_modifier(Modifier::ITALIC),
            list_marker: Style::default().fg(Color::Blue),
            rule: Style::default().fg(Color::DarkGray),
            link: Style::default().fg(Color::Blue).add_modifier(Modifier::UNDERLINED),
            link_url: Style::default().fg(Color::DarkGray),
            table_border: Style::default().fg(Color::DarkGray),
            table_header: Style::default().add_modifier(bold),
            user_label: Style::default().fg(Color::Green).add_modifier(bold),
            assistant_label: Style::default().fg(Color::Magenta).add_modifier(bold),
            error: Style::default().fg(Color::Red),
            syntax_theme: "base16-ocean.dark".to_owned(),
        }
    }
}
