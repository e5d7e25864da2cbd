//! Markdown → lines, by walking pulldown-cmark events.
//!
//! Block structure is tracked as a stack of containers (quotes, list items), each contributing
//! a prefix to every line rendered inside it: the item marker on its first line and blank
//! padding of the same width afterwards, which gives wrapped text a hanging indent.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::code::render_code_block;
use super::sanitize::sanitize;
use super::table::{render_table, Table};
use super::theme::Theme;
use super::wrap::{self, fit_prefix, spans_width, Mode};
use super::{CodeBlock, Rendered};

/// Markdown message text -> styled lines wrapped to `width` display columns.
///
/// The input is sanitised first, so raw model output can be passed directly. Incomplete input
/// (as seen while streaming) renders as far as it goes: an unclosed fence is a code block that
/// runs to the end of the text.
pub fn render_markdown(text: &str, width: u16, theme: &Theme) -> Rendered {
    let text = sanitize(text);
    let mut r = Renderer::new(&text, usize::from(width).max(1), theme);
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for (event, range) in Parser::new_ext(&text, options).into_offset_iter() {
        r.event(event, range);
    }
    r.flush_inline();
    Rendered { lines: r.lines, code_blocks: r.code_blocks }
}

struct Container {
    first: Vec<Span<'static>>,
    rest: Vec<Span<'static>>,
    /// Whether a line has been emitted inside, so the next one gets `rest`.
    used: bool,
    kind: ContainerKind,
}

#[derive(PartialEq, Eq)]
enum ContainerKind {
    Quote,
    Item,
}

struct List {
    next_number: Option<u64>,
    /// Set when an item holds paragraphs (a "loose" list), which are separated by blank lines.
    loose: bool,
}

struct PendingCode {
    lang: String,
    code: String,
    range: Range<usize>,
    fence: Option<(char, usize)>,
}

struct PendingLink {
    url: String,
    /// Index into `inline` where the link text starts.
    text_start: usize,
}

struct Renderer<'a> {
    src: &'a str,
    width: usize,
    theme: &'a Theme,
    lines: Vec<Line<'static>>,
    code_blocks: Vec<CodeBlock>,
    containers: Vec<Container>,
    lists: Vec<List>,
    /// Inline content of the block being built (paragraph, heading, tight list item, cell).
    inline: Vec<Span<'static>>,
    styles: Vec<Style>,
    links: Vec<PendingLink>,
    code: Option<PendingCode>,
    table: Option<Table>,
    row: Vec<Vec<Span<'static>>>,
    /// A block ended; the next block starts after a blank line.
    needs_blank: bool,
}

impl<'a> Renderer<'a> {
    fn new(src: &'a str, width: usize, theme: &'a Theme) -> Self {
        Self {
            src,
            width,
            theme,
            lines: Vec::new(),
            code_blocks: Vec::new(),
            containers: Vec::new(),
            lists: Vec::new(),
            inline: Vec::new(),
            styles: vec![theme.text],
            links: Vec::new(),
            code: None,
            table: None,
            row: Vec::new(),
            needs_blank: false,
        }
    }

    fn style(&self) -> Style {
        self.styles.last().copied().unwrap_or_default()
    }

    fn push_style(&mut self, s: Style) {
        self.styles.push(self.style().patch(s));
    }

    fn pop_style(&mut self) {
        if self.styles.len() > 1 {
            self.styles.pop();
        }
    }

    fn text(&mut self, s: &str, style: Style) {
        if s.is_empty() {
            return;
        }
        let s = if s.contains('\t') { s.replace('\t', "    ") } else { s.to_owned() };
        self.inline.push(Span::styled(s, style));
    }

    /// Prefixes for the next line: (first line, continuation lines).
    fn prefixes(&mut self) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
        let mut first = Vec::new();
        let mut rest = Vec::new();
        for c in &mut self.containers {
            first.extend(if c.used { c.rest.iter().cloned() } else { c.first.iter().cloned() });
            rest.extend(c.rest.iter().cloned());
            c.used = true;
        }
        (first, rest)
    }

    /// Columns left for content after the container prefixes.
    fn content_width(&self) -> usize {
        let prefix: usize = self.containers.iter().map(|c| spans_width(&c.rest)).sum();
        fit_prefix(self.width, prefix).1
    }

    fn start_block(&mut self) {
        if self.needs_blank && !self.lines.is_empty() {
            let mut gutter: Vec<Span<'static>> = self.containers.iter().flat_map(|c| c.rest.iter().cloned()).collect();
            // A blank line shows only the quote bars, without trailing padding.
            while let Some(last) = gutter.last_mut() {
                let trimmed = last.content.trim_end();
                if trimmed.is_empty() {
                    gutter.pop();
                } else {
                    if trimmed.len() < last.content.len() {
                        last.content = trimmed.to_owned().into();
                    }
                    break;
                }
            }
            let blank = wrap::wrap(&[], self.width, &gutter, &gutter, Mode::Chars);
            self.lines.extend(blank);
        }
        self.needs_blank = false;
    }

    fn flush_inline(&mut self) {
        if self.inline.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.inline);
        let (first, rest) = self.prefixes();
        self.lines.extend(wrap::wrap(&spans, self.width, &first, &rest, Mode::Words));
    }

    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        if let Some(code) = &mut self.code {
            match event {
                Event::Text(t) => code.code.push_str(&t),
                Event::End(TagEnd::CodeBlock) => self.end_code_block(),
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag, range),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => self.text(&t, self.style()),
            Event::Code(t) => self.text(&t, self.style().patch(self.theme.code_inline)),
            Event::InlineMath(t) | Event::DisplayMath(t) => self.text(&t, self.style()),
            Event::Html(t) => {
                // Raw HTML block: shown as written, one source line per line.
                let t = t.trim_end_matches('\n');
                self.text(t, self.style());
                self.text("\n", self.style());
            }
            Event::InlineHtml(t) => self.text(&t, self.style()),
            Event::FootnoteReference(t) => self.text(&format!("[^{t}]"), self.theme.link_url),
            Event::SoftBreak => self.text(" ", self.style()),
            Event::HardBreak => self.text("\n", self.style()),
            Event::Rule => {
                self.flush_inline();
                self.start_block();
                let rule = "─".repeat(self.content_width());
                let (first, rest) = self.prefixes();
                let line = [Span::styled(rule, self.theme.rule)];
                self.lines.extend(wrap::wrap(&line, self.width, &first, &rest, Mode::Chars));
                self.needs_blank = true;
            }
            Event::TaskListMarker(done) => {
                self.text(if done { "[x] " } else { "[ ] " }, self.theme.list_marker);
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match tag {
            Tag::Paragraph => {
                self.flush_inline();
                if self.containers.last().is_some_and(|c| c.kind == ContainerKind::Item) {
                    if let Some(list) = self.lists.last_mut() {
                        list.loose = true;
                    }
                }
                self.start_block();
            }
            Tag::Heading { level, .. } => {
                self.flush_inline();
                self.start_block();
                let marker = format!("{} ", "#".repeat(heading_depth(level)));
                self.inline.push(Span::styled(marker, self.theme.heading_marker));
                self.push_style(self.theme.heading);
            }
            Tag::BlockQuote(_) => {
                self.flush_inline();
                self.start_block();
                let bar = vec![Span::styled("│ ", self.theme.quote)];
                self.containers.push(Container {
                    first: bar.clone(),
                    rest: bar,
                    used: false,
                    kind: ContainerKind::Quote,
                });
                self.push_style(self.theme.quote_text);
            }
            Tag::CodeBlock(kind) => {
                self.flush_inline();
                self.start_block();
                let (lang, fence) = match kind {
                    CodeBlockKind::Fenced(info) => {
                        let lang = info.split(|c: char| c.is_whitespace() || c == ',' || c == '{').next().unwrap_or("");
                        (lang.to_owned(), opening_fence(&self.src[range.clone()]))
                    }
                    CodeBlockKind::Indented => (String::new(), None),
                };
                self.code = Some(PendingCode { lang, code: String::new(), range, fence });
            }
            Tag::HtmlBlock => {
                self.flush_inline();
                self.start_block();
            }
            Tag::List(start) => {
                self.flush_inline();
                self.start_block();
                self.lists.push(List { next_number: start, loose: false });
            }
            Tag::Item => {
                self.flush_inline();
                let depth = self.lists.len().saturating_sub(1);
                let marker = match self.lists.last_mut().and_then(|l| l.next_number.as_mut()) {
                    Some(n) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    None => format!("{} ", ["•", "◦", "▪"][depth % 3]),
                };
                let pad = " ".repeat(wrap::str_width(&marker));
                self.containers.push(Container {
                    first: vec![Span::styled(marker, self.theme.list_marker)],
                    rest: vec![Span::raw(pad)],
                    used: false,
                    kind: ContainerKind::Item,
                });
            }
            Tag::Table(aligns) => {
                self.flush_inline();
                self.start_block();
                self.table = Some(Table { aligns, header_rows: 0, rows: Vec::new() });
            }
            Tag::TableHead | Tag::TableRow => self.row.clear(),
            Tag::TableCell => self.inline.clear(),
            Tag::Emphasis => self.push_style(self.theme.emphasis),
            Tag::Strong => self.push_style(self.theme.strong),
            Tag::Strikethrough => self.push_style(self.theme.strikethrough),
            Tag::Link { dest_url, .. } => {
                self.links.push(PendingLink { url: dest_url.into_string(), text_start: self.inline.len() });
                self.push_style(self.theme.link);
            }
            Tag::Image { dest_url, .. } => {
                self.text("[image: ", self.theme.link_url);
                self.links.push(PendingLink { url: dest_url.into_string(), text_start: self.inline.len() });
                self.push_style(self.theme.link);
            }
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => {
                self.flush_inline();
                self.start_block();
            }
            Tag::Superscript | Tag::Subscript => self.push_style(Style::default()),
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => {
                // Raw HTML ends with the newline we added per source line.
                if tag == TagEnd::HtmlBlock && self.inline.last().is_some_and(|s| s.content == "\n") {
                    self.inline.pop();
                }
                self.flush_inline();
                self.needs_blank = true;
            }
            TagEnd::Heading(_) => {
                self.flush_inline();
                self.pop_style();
                self.needs_blank = true;
            }
            TagEnd::BlockQuote(_) => {
                self.flush_inline();
                self.containers.pop();
                self.pop_style();
                self.needs_blank = true;
            }
            TagEnd::CodeBlock => self.end_code_block(),
            TagEnd::List(_) => {
                self.flush_inline();
                let list = self.lists.pop();
                let nested = self.containers.last().is_some_and(|c| c.kind == ContainerKind::Item);
                self.needs_blank = !nested || list.is_some_and(|l| l.loose);
            }
            TagEnd::Item => {
                self.flush_inline();
                if let Some(item) = self.containers.pop() {
                    if !item.used {
                        // An empty item still shows its marker.
                        let mut prefix: Vec<Span<'static>> =
                            self.prefixes().0.into_iter().chain(item.first.iter().cloned()).collect();
                        if let Some(last) = prefix.last_mut() {
                            last.content = last.content.trim_end().to_owned().into();
                        }
                        self.lines.extend(wrap::wrap(&[], self.width, &prefix, &prefix, Mode::Chars));
                    }
                }
            }
            TagEnd::Table => {
                if let Some(table) = self.table.take() {
                    let rendered = render_table(table, self.content_width(), self.theme);
                    for line in rendered {
                        let (first, rest) = self.prefixes();
                        self.lines.extend(wrap::wrap(&line.spans, self.width, &first, &rest, Mode::Chars));
                    }
                }
                self.needs_blank = true;
            }
            TagEnd::TableHead => {
                if let Some(t) = &mut self.table {
                    t.rows.push(std::mem::take(&mut self.row));
                    t.header_rows = 1;
                }
            }
            TagEnd::TableRow => {
                if let Some(t) = &mut self.table {
                    t.rows.push(std::mem::take(&mut self.row));
                }
            }
            TagEnd::TableCell => {
                let cell = std::mem::take(&mut self.inline);
                self.row.push(cell);
            }
            TagEnd::Emphasis | TagEnd::Strong | TagEnd::Strikethrough | TagEnd::Superscript | TagEnd::Subscript => {
                self.pop_style()
            }
            TagEnd::Link => self.end_link(false),
            TagEnd::Image => self.end_link(true),
            TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
            | TagEnd::MetadataBlock(_) => {
                self.flush_inline();
                self.needs_blank = true;
            }
        }
    }

    /// Shows the URL after the link text unless the text already is the URL (autolinks).
    fn end_link(&mut self, image: bool) {
        self.pop_style();
        let Some(link) = self.links.pop() else { return };
        let text: String = self.inline[link.text_start.min(self.inline.len())..].iter().map(|s| &*s.content).collect();
        let url = link.url.strip_prefix("mailto:").unwrap_or(&link.url);
        if image {
            let close = if url.is_empty() { "]".to_owned() } else { format!(" {url}]") };
            self.text(&close, self.theme.link_url);
        } else if !url.is_empty() && text != url && text != link.url {
            self.text(&format!(" ({url})"), self.theme.link_url);
        }
    }

    fn end_code_block(&mut self) {
        let Some(PendingCode { lang, mut code, range, fence }) = self.code.take() else { return };
        if let Some((ch, len)) = fence {
            if !fence_is_closed(&self.src[range], ch, len) {
                drop_partial_fence(&mut code, ch);
            }
        }
        let (first, rest) = self.prefixes();
        let index = self.code_blocks.len() + 1;
        self.lines.extend(render_code_block(index, &lang, &code, self.width, &first, &rest, self.theme));
        self.code_blocks.push(CodeBlock { lang, code });
        self.needs_blank = true;
    }
}

fn heading_depth(level: HeadingLevel) -> usize {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// The fence character and length that open a fenced block, from its source text.
fn opening_fence(block: &str) -> Option<(char, usize)> {
    let line = block.trim_start();
    let ch = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    Some((ch, line.chars().take_while(|c| *c == ch).count()))
}

fn fence_is_closed(block: &str, ch: char, len: usize) -> bool {
    let mut lines = block.trim_end_matches('\n').lines();
    lines.next();
    lines.next_back().is_some_and(|last| {
        let t = last.trim();
        t.chars().count() >= len && t.chars().all(|c| c == ch)
    })
}

/// While streaming, the closing fence arrives one character at a time; a last line made only
/// of fence characters is that fence in progress, not code.
fn drop_partial_fence(code: &mut String, ch: char) {
    let body = code.strip_suffix('\n').unwrap_or(code);
    let start = body.rfind('\n').map_or(0, |i| i + 1);
    let last = body[start..].trim();
    if !last.is_empty() && last.chars().all(|c| c == ch) {
        code.truncate(start);
    }
}
