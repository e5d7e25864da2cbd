//! Fenced code blocks: syntax highlighting (syntect) and the numbered gutter.

use std::sync::{Mutex, OnceLock};

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use syntect::easy::HighlightLines;
use syntect::highlighting::{FontStyle, HighlightState, Theme as SynTheme, ThemeSet};
use syntect::parsing::{ParseState, SyntaxReference, SyntaxSet};
use syntect::util::LinesWithEndings;

use super::theme::Theme;
use super::wrap::{self, Mode};

const TAB_STOP: usize = 4;
const FALLBACK_THEME: &str = "base16-ocean.dark";

struct Assets {
    syntaxes: SyntaxSet,
    themes: ThemeSet,
}

/// Loading the bundled syntaxes takes tens of milliseconds, so it happens once per process.
fn assets() -> &'static Assets {
    static ASSETS: OnceLock<Assets> = OnceLock::new();
    ASSETS.get_or_init(|| Assets { syntaxes: SyntaxSet::load_defaults_newlines(), themes: ThemeSet::load_defaults() })
}

/// Loads the syntax set and compiles the regexes of common languages, so the first code block
/// of a session does not stall a frame. Call from a background thread at startup.
pub fn warm_up() {
    let theme = Theme::default();
    for lang in ["rust", "python", "sh", "js", "c", "cpp", "go", "json", "java", "html"] {
        highlight(lang, "x = 1 # a\n\"s\" // c\n", &theme.syntax_theme);
    }
}

/// Maps common fence labels that syntect's bundled token list does not know.
fn find_syntax<'a>(syntaxes: &'a SyntaxSet, lang: &str) -> Option<&'a SyntaxReference> {
    let lang = lang.trim().to_ascii_lowercase();
    if lang.is_empty() {
        return None;
    }
    let token = match lang.as_str() {
        "shell" | "console" | "shellscript" | "zsh" => "bash",
        "ts" | "typescript" | "tsx" | "jsx" | "javascript" | "node" => "js",
        "golang" => "go",
        "c++" => "cpp",
        "py3" | "python3" => "python",
        "yml" => "yaml",
        "rs" => "rust",
        other => other,
    };
    syntaxes.find_syntax_by_token(token)
}

fn to_style(s: syntect::highlighting::Style) -> Style {
    let mut style = Style::default();
    if s.foreground.a > 0 {
        style = style.fg(Color::Rgb(s.foreground.r, s.foreground.g, s.foreground.b));
    }
    for (flag, modifier) in [
        (FontStyle::BOLD, Modifier::BOLD),
        (FontStyle::ITALIC, Modifier::ITALIC),
        (FontStyle::UNDERLINE, Modifier::UNDERLINED),
    ] {
        if s.font_style.contains(flag) {
            style = style.add_modifier(modifier);
        }
    }
    style
}

type Highlighted = Vec<Vec<Span<'static>>>;

/// Highlighting state after a newline-terminated prefix of some code block.
///
/// While a reply streams, the same block is re-rendered every frame with a few more bytes, so
/// resuming from the longest cached prefix makes each frame cost only the new lines.
struct CacheEntry {
    syntax: String,
    theme: String,
    done: String,
    lines: Highlighted,
    state: (HighlightState, ParseState),
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: Vec<CacheEntry>,
    tick: u64,
}

const CACHE_CAPACITY: usize = 64;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// Highlights `code` as `lang`, one entry per `\n`-separated line (newlines removed).
/// `None` when the language is unknown, so the caller renders plain text.
fn highlight(lang: &str, code: &str, theme_name: &str) -> Option<Highlighted> {
    highlight_with(lang, code, theme_name, true)
}

fn highlight_with(lang: &str, code: &str, theme_name: &str, use_cache: bool) -> Option<Highlighted> {
    let assets = assets();
    let syntax = find_syntax(&assets.syntaxes, lang)?;
    let (theme_name, theme): (&str, &SynTheme) = match assets.themes.themes.get(theme_name) {
        Some(t) => (theme_name, t),
        None => (FALLBACK_THEME, &assets.themes.themes[FALLBACK_THEME]),
    };

    // Copy the best starting point out so the lock is not held while highlighting.
    let start = if !use_cache {
        None
    } else {
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        cache.tick += 1;
        let tick = cache.tick;
        let best = cache
            .entries
            .iter_mut()
            .filter(|e| e.syntax == syntax.name && e.theme == theme_name && code.starts_with(e.done.as_str()))
            .max_by_key(|e| e.done.len());
        best.map(|e| {
            e.last_used = tick;
            (e.done.len(), e.lines.clone(), e.state.clone())
        })
    };
    let (done_len, mut lines, mut hl) = match start {
        Some((len, lines, (hs, ps))) => (len, lines, HighlightLines::from_state(theme, hs, ps)),
        None => (0, Vec::new(), HighlightLines::new(syntax, theme)),
    };

    let rest = &code[done_len..];
    let complete_len = rest.rfind('\n').map_or(0, |i| i + 1);
    for line in LinesWithEndings::from(&rest[..complete_len]) {
        lines.push(highlight_line(&mut hl, line, &assets.syntaxes)?);
    }
    let state = hl.state();
    if use_cache && complete_len > 0 {
        store(CacheEntry {
            syntax: syntax.name.clone(),
            theme: theme_name.to_owned(),
            done: code[..done_len + complete_len].to_owned(),
            lines: lines.clone(),
            state: state.clone(),
            last_used: 0,
        });
    }

    // The unfinished last line of a streaming block: highlight it, but do not cache it.
    let tail = &rest[complete_len..];
    if !tail.is_empty() {
        let mut hl = HighlightLines::from_state(theme, state.0, state.1);
        lines.push(highlight_line(&mut hl, &format!("{tail}\n"), &assets.syntaxes)?);
    }
    Some(lines)
}

fn highlight_line(hl: &mut HighlightLines<'_>, line: &str, syntaxes: &SyntaxSet) -> Option<Vec<Span<'static>>> {
    let ranges = hl.highlight_line(line, syntaxes).ok()?;
    Some(
        ranges
            .into_iter()
            .filter_map(|(style, text)| {
                let text = text.trim_end_matches(['\n', '\r']);
                (!text.is_empty()).then(|| Span::styled(text.to_owned(), to_style(style)))
            })
            .collect(),
    )
}

fn store(entry: CacheEntry) {
    let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
    cache.tick += 1;
    let entry = CacheEntry { last_used: cache.tick, ..entry };
    // An entry whose text is a prefix of the new one is the same block, earlier in the stream.
    if let Some(old) = cache
        .entries
        .iter_mut()
        .find(|e| e.syntax == entry.syntax && e.theme == entry.theme && entry.done.starts_with(e.done.as_str()))
    {
        *old = entry;
        return;
    }
    if cache.entries.len() >= CACHE_CAPACITY {
        if let Some(lru) = cache.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used).map(|(i, _)| i) {
            cache.entries.swap_remove(lru);
        }
    }
    cache.entries.push(entry);
}

/// Replaces tabs with spaces up to the next multiple of [`TAB_STOP`] columns.
fn expand_tabs(spans: Vec<Span<'static>>) -> Vec<Span<'static>> {
    if !spans.iter().any(|s| s.content.contains('\t')) {
        return spans;
    }
    let mut col = 0;
    spans
        .into_iter()
        .map(|span| {
            let mut text = String::with_capacity(span.content.len());
            for c in span.content.chars() {
                if c == '\t' {
                    let n = TAB_STOP - col % TAB_STOP;
                    text.extend(std::iter::repeat_n(' ', n));
                    col += n;
                } else {
                    text.push(c);
                    col += unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
                }
            }
            Span::styled(text, span.style)
        })
        .collect()
}

/// Renders one code block: a `[N] lang` header, then each source line behind a numbered gutter
/// (`  1 │ `). Long lines wrap at any grapheme with a blank-numbered gutter, so nothing is cut off.
pub(super) fn render_code_block(
    index: usize,
    lang: &str,
    code: &str,
    width: usize,
    first_prefix: &[Span<'static>],
    rest_prefix: &[Span<'static>],
    theme: &Theme,
) -> Vec<Line<'static>> {
    let header_text = if lang.is_empty() { format!("[{index}]") } else { format!("[{index}] {lang}") };
    let mut out =
        wrap::wrap(&[Span::styled(header_text, theme.code_header)], width, first_prefix, rest_prefix, Mode::Words);

    let body = code.strip_suffix('\n').unwrap_or(code);
    if code.is_empty() {
        return out;
    }
    let source_lines: Vec<&str> = body.split('\n').collect();
    let highlighted = highlight(lang, code, &theme.syntax_theme).filter(|h| h.len() == source_lines.len());
    let highlighted = highlighted
        .unwrap_or_else(|| source_lines.iter().map(|l| vec![Span::styled((*l).to_owned(), theme.code_text)]).collect());

    let digits = source_lines.len().to_string().len().max(3);
    let blank_gutter = Span::styled(format!("{:digits$} │ ", ""), theme.code_gutter);
    let mut cont_prefix = rest_prefix.to_vec();
    cont_prefix.push(blank_gutter);
    for (n, spans) in highlighted.into_iter().enumerate() {
        let mut first = rest_prefix.to_vec();
        first.push(Span::styled(format!("{:>digits$} │ ", n + 1), theme.code_gutter));
        out.extend(wrap::wrap(&expand_tabs(spans), width, &first, &cont_prefix, Mode::Chars));
    }
    out
}

/// Line-by-line highlighting to ANSI escapes, for the line REPL (which prints code as it streams
/// instead of drawing frames).
pub struct AnsiHighlighter {
    inner: Option<HighlightLines<'static>>,
}

impl AnsiHighlighter {
    pub fn new(lang: &str) -> AnsiHighlighter {
        let a = assets();
        let theme = a.themes.themes.get(FALLBACK_THEME).or_else(|| a.themes.themes.values().next());
        let inner = match (find_syntax(&a.syntaxes, lang), theme) {
            (Some(syntax), Some(theme)) => Some(HighlightLines::new(syntax, theme)),
            _ => None,
        };
        AnsiHighlighter { inner }
    }

    /// One line of code (with its newline) as coloured terminal text.
    pub fn line(&mut self, line: &str) -> String {
        let plain =
            || format!("\x1b[33m{}\x1b[0m", line.trim_end_matches('\n')) + if line.ends_with('\n') { "\n" } else { "" };
        let Some(h) = &mut self.inner else { return plain() };
        match h.highlight_line(line, &assets().syntaxes) {
            Ok(ranges) => {
                let body = syntect::util::as_24_bit_terminal_escaped(&ranges, false);
                let body = body.trim_end_matches('\n');
                format!("{body}\x1b[0m{}", if line.ends_with('\n') { "\n" } else { "" })
            }
            Err(_) => plain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn styled(h: &Highlighted) -> Vec<Vec<(String, Style)>> {
        h.iter().map(|l| l.iter().map(|s| (s.content.to_string(), s.style)).collect()).collect()
    }

    #[test]
    fn streamed_highlighting_matches_one_shot() {
        let code = "/* multi\nline comment */\nfn main() {\n    let s = \"str\\n\";\n}\n";
        // Feed the block the way a stream would, so every step resumes from the cache.
        let mut last = None;
        for end in (1..=code.len()).filter(|&i| code.is_char_boundary(i)) {
            last = highlight("rust", &code[..end], FALLBACK_THEME);
        }
        let fresh = highlight_with("rust", code, FALLBACK_THEME, false).unwrap();
        assert_eq!(styled(&last.unwrap()), styled(&fresh));
    }

    #[test]
    fn known_languages_get_several_colours() {
        let lines = highlight("rs", "fn main() { let x = \"s\"; } // c\n", FALLBACK_THEME).unwrap();
        let mut colours: Vec<_> = lines[0].iter().filter_map(|s| s.style.fg).collect();
        colours.dedup();
        assert!(colours.len() >= 3, "{colours:?}");
        assert!(colours.iter().all(|c| matches!(c, Color::Rgb(..))));
    }

    #[test]
    fn unknown_language_is_not_highlighted() {
        assert!(highlight("no-such-language", "x\n", FALLBACK_THEME).is_none());
        assert!(highlight("", "x\n", FALLBACK_THEME).is_none());
    }

    #[test]
    fn fence_aliases_resolve() {
        let syntaxes = &assets().syntaxes;
        for lang in ["rust", "Rust", "py", "python3", "sh", "shell", "ts", "js", "golang", "c++", "json", "yml"] {
            assert!(find_syntax(syntaxes, lang).is_some(), "{lang}");
        }
    }

    #[test]
    fn tabs_expand_to_stops() {
        let spans = expand_tabs(vec![Span::raw("\tx"), Span::raw("ab\ty")]);
        let text: String = spans.iter().map(|s| &*s.content).collect();
        assert_eq!(text, "    xab y");
    }
}
