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
    cache: Option<Cache>,
}

struct Cache {
    width: u16,
    lines: Vec<Line<'static>>,
    code_blocks: Vec<CodeBlock>,
}

impl Entry {
    pub fn new(kind: Kind, text: impl Into<String>) -> Entry {
        Entry { kind, text: text.into(), tag: String::new(), cache: None }
    }

    fn render(&mut self, width: u16, theme: &Theme) -> &Cache {
        let stale = self.cache.as_ref().is_none_or(|c| c.width != width);
        if stale {
            let mut lines = vec![self.label(theme)];
            let mut code_blocks = Vec::new();
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
            lines.push(Line::default());
            self.cache = Some(Cache { width, lines, code_blocks });
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
        let theme = &self.theme;
        self.entries.iter_mut().map(|e| e.render(width, theme).lines.len()).sum()
    }

    /// The `height` lines that end `scroll` lines above the bottom.
    pub fn visible(&mut self, width: u16, height: usize, scroll: usize) -> Vec<Line<'static>> {
        let mut skip = scroll;
        let mut out: Vec<Line<'static>> = Vec::with_capacity(height);
        let theme = &self.theme;
        for e in self.entries.iter_mut().rev() {
            let lines = &e.render(width, theme).lines;
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
        let theme = &self.theme;
        let e = self.entries.iter_mut().rev().find(|e| e.kind == Kind::Assistant)?;
        let blocks = e.render(width, theme).code_blocks.clone();
        Some((e.text.clone(), blocks))
    }
}

/// Plain style for dim notes in the status bar and elsewhere.
pub fn dim() -> Style {
    Style::default().add_modifier(Modifier::DIM)
}
