//! Width-aware line wrapping of styled text.
//!
//! Widths are measured per grapheme cluster with `unicode-width`'s string width, which is what
//! ratatui uses both to measure a `Line` and to place graphemes in its buffer; measuring the same
//! way guarantees that a line we call N columns wide occupies N cells on screen.

use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Stand-in for a grapheme that cannot fit even on an empty line (a wide character when only
/// one column is available). Width 1.
const PLACEHOLDER: &str = "…";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Prose: break at spaces and around wide (CJK/emoji) characters, drop spaces at breaks.
    Words,
    /// Code and pre-laid-out text: break anywhere between graphemes, keep every space.
    Chars,
}

/// Display width of a string as ratatui will render it.
pub(super) fn str_width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

pub(super) fn spans_width(spans: &[Span<'_>]) -> usize {
    spans.iter().map(|s| str_width(&s.content)).sum()
}

/// Splits the total width between a prefix and content so content always gets at least
/// `min(width, 2)` columns (room for one wide character), truncating the prefix if needed.
/// Returns `(prefix_width, content_width)`; `width` 0 is treated as 1.
pub(super) fn fit_prefix(width: usize, prefix_width: usize) -> (usize, usize) {
    let width = width.max(1);
    let prefix = prefix_width.min(width - width.min(2));
    (prefix, width - prefix)
}

/// Width-aware wrapping of styled spans into lines of at most `width` columns, prefixes included.
///
/// The first output line starts with `first_prefix`, all others with `rest_prefix` (use a
/// blank prefix of the marker's width for a hanging indent). Breaks happen at spaces, between
/// CJK/emoji characters, and inside over-long words as a last resort; a grapheme cluster is
/// never split. A `\n` inside a span forces a line break; other control characters are dropped.
/// Leading spaces of the text (and after each `\n`) are kept, spaces at soft breaks are dropped.
///
/// Degenerate widths are safe: width 0 is treated as 1, prefixes are truncated so content keeps
/// at least `min(width, 2)` columns, and a grapheme wider than the room left on an empty line
/// is replaced by `…`. Always returns at least one line.
pub fn wrap_spans(
    spans: Vec<Span<'static>>,
    width: u16,
    first_prefix: Vec<Span<'static>>,
    rest_prefix: Vec<Span<'static>>,
) -> Vec<Line<'static>> {
    wrap(&spans, usize::from(width), &first_prefix, &rest_prefix, Mode::Words)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Space,
    Narrow,
    Wide,
    Newline,
}

/// The input spans joined into one string, so grapheme clusters are found across span
/// boundaries: a cluster split between two spans (`*` then U+FE0F, `e` then U+0301) is drawn
/// by the terminal as one glyph, so it must be measured and kept together as one.
struct Joined<'a> {
    text: String,
    spans: &'a [Span<'a>],
}

/// One grapheme cluster: a byte range of the joined text, styled like the span it starts in.
#[derive(Debug, Clone, Copy)]
struct Piece {
    span: usize,
    start: usize,
    end: usize,
    width: usize,
    kind: Kind,
}

fn pieces<'a>(spans: &'a [Span<'a>]) -> (Joined<'a>, Vec<Piece>) {
    let mut text = String::with_capacity(spans.iter().map(|s| s.content.len()).sum());
    let mut ends = Vec::with_capacity(spans.len());
    for span in spans {
        text.push_str(&span.content);
        ends.push(text.len());
    }
    let mut out = Vec::with_capacity(text.len());
    let mut span = 0;
    for (start, g) in text.grapheme_indices(true) {
        while ends[span] <= start {
            span += 1;
        }
        let end = start + g.len();
        let (kind, width) = if g == "\n" || g == "\r\n" {
            (Kind::Newline, 0)
        } else if g == " " {
            (Kind::Space, 1)
        } else if g.contains(char::is_control) {
            // ratatui would silently skip these when drawing; skipping here keeps the
            // measured width honest.
            continue;
        } else if g.chars().next().and_then(UnicodeWidthChar::width) == Some(0) {
            // An orphaned combining mark / ZWJ / variation selector (at the start of the text or
            // after a newline). Drawn after a prefix it would fuse with the prefix's last
            // character (`1` + U+FE0F is a two-column keycap emoji), so it is dropped.
            continue;
        } else {
            let w = str_width(g);
            (if w >= 2 { Kind::Wide } else { Kind::Narrow }, w)
        };
        out.push(Piece { span, start, end, width, kind });
    }
    (Joined { text, spans }, out)
}

/// Characters that must not start a line (closing punctuation, CJK and ASCII).
fn no_break_before(s: &str) -> bool {
    matches!(
        s,
        "," | "."
            | ";"
            | ":"
            | "!"
            | "?"
            | ")"
            | "]"
            | "}"
            | "%"
            | "'"
            | "\""
            | "、"
            | "。"
            | "，"
            | "．"
            | "！"
            | "？"
            | "："
            | "；"
            | "）"
            | "」"
            | "』"
            | "】"
            | "〉"
            | "》"
            | "〕"
            | "”"
            | "’"
            | "…"
            | "ー"
            | "～"
    )
}

/// Characters that must not end a line (opening punctuation).
fn no_break_after(s: &str) -> bool {
    matches!(s, "(" | "[" | "{" | "（" | "「" | "『" | "【" | "〈" | "《" | "〔" | "“" | "‘")
}

/// End (exclusive) of the word starting at non-space piece `i`: the run of graphemes up to
/// the next break opportunity.
fn word_end(joined: &Joined<'_>, pieces: &[Piece], i: usize) -> usize {
    let text = |p: &Piece| &joined.text[p.start..p.end];
    let mut j = i + 1;
    while j < pieces.len() {
        let (a, b) = (&pieces[j - 1], &pieces[j]);
        if matches!(b.kind, Kind::Space | Kind::Newline) {
            break;
        }
        let cjk_break = a.kind == Kind::Wide || b.kind == Kind::Wide;
        if cjk_break && !no_break_before(text(b)) && !no_break_after(text(a)) {
            break;
        }
        j += 1;
    }
    j
}

/// Width of the widest unbreakable word: below this, [`wrap`] must break inside a word.
pub(super) fn longest_word(spans: &[Span<'_>]) -> usize {
    let (joined, pieces) = pieces(spans);
    let mut longest = 0;
    let mut i = 0;
    while i < pieces.len() {
        if matches!(pieces[i].kind, Kind::Space | Kind::Newline) {
            i += 1;
            continue;
        }
        let j = word_end(&joined, &pieces, i);
        longest = longest.max(pieces[i..j].iter().map(|p| p.width).sum());
        i = j;
    }
    longest
}

/// Accumulates one output line, merging adjacent graphemes of the same span into one `Span`.
struct LineBuilder<'a> {
    joined: &'a Joined<'a>,
    out: Vec<Span<'static>>,
    /// Pending run of contiguous bytes of the joined text, styled like one input span.
    run: Option<(usize, usize, usize)>,
    width: usize,
    /// Content columns available on this line.
    avail: usize,
}

impl<'a> LineBuilder<'a> {
    fn new(joined: &'a Joined<'a>, prefix: Vec<Span<'static>>, avail: usize) -> Self {
        Self { joined, out: prefix, run: None, width: 0, avail }
    }

    fn room(&self) -> usize {
        self.avail - self.width
    }

    fn is_empty(&self) -> bool {
        self.width == 0
    }

    fn push(&mut self, p: &Piece) {
        if p.width > self.avail {
            // Cannot fit even on an empty line (e.g. a wide char with one column).
            self.flush_run();
            self.out.push(Span::styled(PLACEHOLDER, self.joined.spans[p.span].style));
            self.width += 1;
            return;
        }
        match &mut self.run {
            Some((span, _, end)) if *span == p.span && *end == p.start => *end = p.end,
            _ => {
                self.flush_run();
                self.run = Some((p.span, p.start, p.end));
            }
        }
        self.width += p.width;
    }

    fn flush_run(&mut self) {
        if let Some((span, start, end)) = self.run.take() {
            let style = self.joined.spans[span].style;
            self.out.push(Span::styled(self.joined.text[start..end].to_owned(), style));
        }
    }

    fn finish(mut self) -> Line<'static> {
        self.flush_run();
        Line::from(self.out)
    }
}

/// Cuts `spans` down to at most `max` columns without splitting a grapheme.
pub(super) fn truncate_spans(spans: &[Span<'static>], max: usize) -> Vec<Span<'static>> {
    let mut out = Vec::with_capacity(spans.len());
    let mut used = 0;
    for span in spans {
        let w = str_width(&span.content);
        if used + w <= max {
            used += w;
            out.push(span.clone());
            continue;
        }
        let mut end = 0;
        for (i, g) in span.content.grapheme_indices(true) {
            let gw = str_width(g);
            if used + gw > max {
                break;
            }
            used += gw;
            end = i + g.len();
        }
        if end > 0 {
            out.push(Span::styled(span.content[..end].to_owned(), span.style));
        }
        break;
    }
    out
}

struct Prefixes {
    first: Vec<Span<'static>>,
    first_avail: usize,
    rest: Vec<Span<'static>>,
    rest_avail: usize,
}

impl Prefixes {
    fn new(width: usize, first: &[Span<'static>], rest: &[Span<'static>]) -> Self {
        let fit = |p: &[Span<'static>]| {
            let (pw, avail) = fit_prefix(width, spans_width(p));
            let p = if pw < spans_width(p) { truncate_spans(p, pw) } else { p.to_vec() };
            (p, avail)
        };
        let (first, first_avail) = fit(first);
        let (rest, rest_avail) = fit(rest);
        Self { first, first_avail, rest, rest_avail }
    }
}

/// Core wrapper shared by prose, code and table cells.
pub(super) fn wrap(
    spans: &[Span<'static>],
    width: usize,
    first_prefix: &[Span<'static>],
    rest_prefix: &[Span<'static>],
    mode: Mode,
) -> Vec<Line<'static>> {
    let prefixes = Prefixes::new(width, first_prefix, rest_prefix);
    let (joined, pieces) = pieces(spans);

    let mut lines = Vec::new();
    let mut line = LineBuilder::new(&joined, prefixes.first.clone(), prefixes.first_avail);
    let new_line = |lines: &mut Vec<Line<'static>>, line: LineBuilder<'_>| {
        lines.push(line.finish());
        LineBuilder::new(&joined, prefixes.rest.clone(), prefixes.rest_avail)
    };

    // True at the start of the text and after each `\n`: leading spaces there are indentation.
    let mut hard_start = true;
    // Spaces seen since the last word; committed only if another word follows on this line.
    let mut pending: std::ops::Range<usize> = 0..0;
    let mut pending_width = 0;

    let mut i = 0;
    while i < pieces.len() {
        let p = pieces[i];
        if p.kind == Kind::Newline {
            line = new_line(&mut lines, line);
            hard_start = true;
            pending = 0..0;
            pending_width = 0;
            i += 1;
            continue;
        }
        if mode == Mode::Chars {
            if p.width > line.room() && !line.is_empty() {
                line = new_line(&mut lines, line);
            }
            line.push(&p);
            i += 1;
            continue;
        }

        if p.kind == Kind::Space {
            let mut j = i;
            while j < pieces.len() && pieces[j].kind == Kind::Space {
                j += 1;
            }
            if hard_start && line.is_empty() {
                for sp in &pieces[i..j] {
                    if sp.width <= line.room() {
                        line.push(sp);
                    }
                }
            } else if !line.is_empty() {
                pending = i..j;
                pending_width = j - i;
            }
            i = j;
            continue;
        }

        let j = word_end(&joined, &pieces, i);
        let word = &pieces[i..j];
        let word_width: usize = word.iter().map(|p| p.width).sum();
        hard_start = false;

        if pending_width + word_width <= line.room() {
            for sp in &pieces[pending.clone()] {
                line.push(sp);
            }
            word.iter().for_each(|p| line.push(p));
        } else if !line.is_empty() && word_width <= prefixes.rest_avail {
            // Fits on a fresh line.
            line = new_line(&mut lines, line);
            word.iter().for_each(|p| line.push(p));
        } else {
            // Longer than any line: hard-break it, starting on a fresh line so the first
            // piece is as long as possible (the tail of a line is usually too short to help).
            if !line.is_empty() {
                line = new_line(&mut lines, line);
            }
            for p in word {
                if p.width > line.room() && !line.is_empty() {
                    line = new_line(&mut lines, line);
                }
                line.push(p);
            }
        }
        pending = 0..0;
        pending_width = 0;
        i = j;
    }
    lines.push(line.finish());
    lines
}
