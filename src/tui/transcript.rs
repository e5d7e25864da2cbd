//! The conversation as the user sees it. Each entry caches its wrapped lines for one width, so a
//! frame re-wraps only the entry that changed (the streaming reply) or, after a resize, each entry
//! once; drawing walks back from the bottom and touches only what is visible.

use crate::render::{self, CodeBlock, Theme};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Assistant,
    /// moat's own messages: command output, notices.
    Note,
    Error,
}

pub struct Entry {
    pub kind: Kind,
    pub text: String,
    /// Shown after the label, e.g. the model name or "stopped".
    pub tag: String,
    /// A reasoning model's thinking, shown dimmed above the reply, folded to one line unless
    /// the transcript shows reasoning (Ctrl+T).
    pub reasoning: String,
    /// Lines after `text` in pieces, `true` marking text to emphasise (`/search` matches).
    pub rows: Vec<Vec<(String, bool)>>,
    cache: Option<Cache>,
}

struct Cache {
    width: u16,
    show_reasoning: bool,
    lines: Vec<Line<'static>>,
    code_blocks: Vec<CodeBlock>,
}

impl Entry {
    pub fn new(kind: Kind, text: impl Into<String>) -> Entry {
        Entry { kind, text: text.into(), tag: String::new(), reasoning: String::new(), rows: Vec::new(), cache: None }
    }

    /// A note with marked rows below its first line (see [`Entry::rows`]).
    pub fn listing(head: impl Into<String>, rows: Vec<Vec<(String, bool)>>) -> Entry {
        Entry { rows, ..Entry::new(Kind::Note, head) }
    }

    fn render(&mut self, width: u16, theme: &Theme, show_reasoning: bool) -> &Cache {
        let stale = self.cache.as_ref().is_none_or(|c| c.width != width || c.show_reasoning != show_reasoning);
        if stale {
            let mut lines = vec![self.label(theme)];
            let mut code_blocks = Vec::new();
            if !self.reasoning.is_empty() {
                let words = self.reasoning.split_whitespace().count();
                let style = theme.rule.add_modifier(Modifier::DIM);
                if show_reasoning {
                    lines.push(Line::from(Span::styled(format!("▾ thinking · {words} words · Ctrl+T folds"), style)));
                    lines.extend(render::render_plain(self.reasoning.trim(), width, style));
                    lines.push(Line::default());
                } else {
                    lines.push(Line::from(Span::styled(format!("▸ thinking · {words} words · Ctrl+T shows"), style)));
                }
            }
            match self.kind {
                Kind::Assistant => {
                    let r = render::render_markdown(&self.text, width, theme);
                    lines.extend(r.lines);
                    code_blocks = r.code_blocks;
                }
                Kind::User => lines.extend(render::render_plain(&self.text, width, theme.text)),
                Kind::Note => lines.extend(render::render_plain(&self.text, width, theme.rule)),
                Kind::Error => lines.extend(render::render_plain(&self.text, width, theme.error)),
            }
            let marked = theme.strong.fg(ratatui::style::Color::Yellow);
            for row in &self.rows {
                let spans = row
                    .iter()
                    .map(|(t, m)| {
                        Span::styled(render::sanitize_expand_tabs(t).into_owned(), if *m { marked } else { theme.rule })
                    })
                    .collect();
                lines.extend(render::wrap_spans(spans, width, Vec::new(), vec![Span::raw("     ")]));
            }
            lines.push(Line::default());
            self.cache = Some(Cache { width, show_reasoning, lines, code_blocks });
        }
        self.cache.as_ref().expect("just filled")
    }

    fn label(&self, theme: &Theme) -> Line<'static> {
        let (name, style) = match self.kind {
            Kind::User => ("you", theme.user_label),
            Kind::Assistant => ("assistant", theme.assistant_label),
            Kind::Note => ("moat", theme.rule.add_modifier(Modifier::BOLD)),
            Kind::Error => ("error", theme.error.add_modifier(Modifier::BOLD)),
        };
        let mut spans = vec![Span::styled(format!("▌{name}"), style)];
        if !self.tag.is_empty() {
            spans.push(Span::styled(format!("  {}", render::sanitize_expand_tabs(&self.tag)), theme.rule));
        }
        Line::from(spans)
    }

    fn invalidate(&mut self) {
        self.cache = None;
    }
}

#[derive(Default)]
pub struct Transcript {
    entries: Vec<Entry>,
    theme: Theme,
    /// Reasoning is shown in full (else folded to one line per reply).
    pub show_reasoning: bool,
}

impl Transcript {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn last_mut(&mut self) -> Option<&mut Entry> {
        self.entries.last_mut()
    }

    /// Appends streamed reasoning to entry `index`.
    pub fn append_reasoning(&mut self, index: usize, text: &str) {
        if let Some(e) = self.entries.get_mut(index) {
            e.reasoning.push_str(text);
            e.invalidate();
        }
    }

    /// Appends streamed text to entry `index`; only that entry will be re-wrapped.
    pub fn append_to(&mut self, index: usize, text: &str) {
        if let Some(e) = self.entries.get_mut(index) {
            e.text.push_str(text);
            e.invalidate();
        }
    }

    pub fn set_tag(&mut self, index: usize, tag: &str) {
        if let Some(e) = self.entries.get_mut(index) {
            e.tag = tag.to_string();
            e.invalidate();
        }
    }

    /// Takes entry `index` out (a streaming reply kept across a rebuild).
    pub fn take(&mut self, index: usize) -> Option<Entry> {
        (index < self.entries.len()).then(|| self.entries.remove(index))
    }

    /// Removes entry `index` (a reply that failed before it started).
    pub fn remove(&mut self, index: usize) {
        if index < self.entries.len() {
            self.entries.remove(index);
        }
    }

    /// Removes entries from `index` on.
    pub fn truncate(&mut self, index: usize) {
        self.entries.truncate(index);
    }

    /// Lines of every entry at `width` (each entry wrapped at most once per width).
    pub fn total_lines(&mut self, width: u16) -> usize {
        let (theme, show) = (&self.theme, self.show_reasoning);
        self.entries.iter_mut().map(|e| e.render(width, theme, show).lines.len()).sum()
    }

    /// The `height` lines that end `scroll` lines above the bottom.
    pub fn visible(&mut self, width: u16, height: usize, scroll: usize) -> Vec<Line<'static>> {
        let mut skip = scroll;
        let mut out: Vec<Line<'static>> = Vec::with_capacity(height);
        let (theme, show) = (&self.theme, self.show_reasoning);
        for e in self.entries.iter_mut().rev() {
            let lines = &e.render(width, theme, show).lines;
            if skip >= lines.len() {
                skip -= lines.len();
                continue;
            }
            let end = lines.len() - skip;
            skip = 0;
            let start = end.saturating_sub(height - out.len());
            out.extend(lines[start..end].iter().rev().cloned());
            if out.len() >= height {
                break;
            }
        }
        out.reverse();
        out
    }

    /// Code blocks of the last assistant reply, numbered from 1 as shown.
    pub fn last_reply_code(&mut self, width: u16) -> Option<(String, Vec<CodeBlock>)> {
        let (theme, show) = (&self.theme, self.show_reasoning);
        let e = self.entries.iter_mut().rev().find(|e| e.kind == Kind::Assistant)?;
        let blocks = e.render(width, theme, show).code_blocks.clone();
        Some((e.text.clone(), blocks))
    }
}

/// Plain style for dim notes in the status bar and elsewhere.
pub fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}
