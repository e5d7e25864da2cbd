//! Behavioural and snapshot tests for the renderers.
//!
//! Snapshots hold plain text (span contents concatenated, one output line per line, `|` marking
//! the right edge) and are named without the module path, so they stay valid when this module
//! moves to another crate path.

use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::*;

fn line_text(line: &Line<'_>) -> String {
    line.spans.iter().map(|s| &*s.content).collect()
}

fn plain(lines: &[Line<'_>]) -> String {
    lines.iter().map(|l| format!("{}|\n", line_text(l))).collect()
}

fn snapshot(name: &str, value: String) {
    insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!(name, value);
    });
}

fn md(text: &str, width: u16) -> Rendered {
    render_markdown(text, width, &Theme::default())
}

/// Every line fits in `width` (0 counts as 1), measured both the way ratatui measures a `Line`
/// and grapheme by grapheme, and no line contains control characters.
fn assert_fits(lines: &[Line<'_>], width: u16, context: &str) {
    let max = usize::from(width.max(1));
    for line in lines {
        let text = line_text(line);
        let by_grapheme: usize = text.graphemes(true).map(UnicodeWidthStr::width).sum();
        assert!(
            line.width() <= max && by_grapheme <= max,
            "{context}: width {} > {max}: {text:?}",
            line.width().max(by_grapheme)
        );
        assert!(!text.contains(|c: char| c.is_control()), "{context}: control char in {text:?}");
    }
}

/// The graphemes of the output, in order, are exactly the non-space graphemes of `source`:
/// nothing lost, nothing split (a split cluster would segment differently).
fn assert_graphemes_intact(lines: &[Line<'_>], source: &str) {
    let expected: Vec<&str> = source.graphemes(true).filter(|g| !g.trim().is_empty()).collect();
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    let actual: Vec<&str> = texts.iter().flat_map(|t| t.graphemes(true)).filter(|g| !g.trim().is_empty()).collect();
    assert_eq!(actual, expected);
}

const MIXED_DOC: &str = concat!(
    "# 混合 Mixed 文档 👨‍👩‍👧‍👦\n\n",
    "Rust 是一门系统编程语言，it focuses on **safety** and *speed* 🚀. ",
    "Emoji: 👍🏽 🇯🇵 ❤️ 🧑‍💻 and a verylongwordthatcannotpossiblyfitonanynarrowline.\n\n",
    "- 第一项 first item with `inline code` and [链接](https://example.com/一些/路径)\n",
    "  - 嵌套 nested 项目，带有很长的中文文本需要换行处理\n",
    "- second\n\n",
    "> 引用 quote 👩‍🔬 text that goes on for a while\n",
    ">\n",
    "> > nested 嵌套引用\n\n",
    "| 列 | Column | 数 |\n|---|:---:|--:|\n| 中文单元格内容很长 | emoji 🎉 | 42 |\n| a | b | 1234567 |\n\n",
    "```rust\nfn main() { println!(\"你好, 世界 🌍 {}\", 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10); }\n```\n\n",
    "---\n\n",
    "1. one\n",
    "2. 二\n",
);

// ---------------------------------------------------------------- snapshots

#[test]
fn snapshot_headings_lists_emphasis() {
    let text = "# Heading one\n\n## Heading *two*\n\nA paragraph with *emphasis*, **strong**, ~~strike~~, \
`inline code` and a [link](https://example.com). It is long enough to wrap at forty columns.\n\n\
- bullet one\n- bullet two wraps because it is much longer than the available width\n  - nested bullet\n\
- [x] done task\n\n3. third\n4. fourth\n\n> quoted text\n>\n> > nested quote\n\n---\n\nAfter the rule.\n";
    snapshot("headings_lists_emphasis", plain(&md(text, 40).lines));
}

#[test]
fn snapshot_table_with_cjk_cells() {
    let text = "| 名前 | Role | 説明 |\n|:--|:-:|--:|\n| 山田太郎 | dev | 日本語のテキスト |\n| Bob | 设计师 | ok |\n";
    let r = md(text, 60);
    let widths: Vec<usize> = r.lines.iter().map(Line::width).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "table lines are not aligned: {widths:?}");
    snapshot("table_cjk", plain(&r.lines));
}

#[test]
fn snapshot_table_squeezed_into_narrow_width() {
    let text = "| 名前 | Description |\n|---|---|\n| 山田太郎さん | a long description that must wrap |\n";
    let r = md(text, 24);
    assert_fits(&r.lines, 24, "narrow table");
    // Rows interleave the wrapped cells, so compare the characters as multisets.
    let mut shown: Vec<char> = plain(&r.lines).chars().filter(|c| !"│─┌┐└┘├┤┬┴┼| \n".contains(*c)).collect();
    let mut source: Vec<char> = "名前Description山田太郎さんalongdescriptionthatmustwrap".chars().collect();
    shown.sort_unstable();
    source.sort_unstable();
    assert_eq!(shown, source, "every cell character is shown once");
    snapshot("table_narrow", plain(&r.lines));
}

#[test]
fn snapshot_code_block_with_numbers_and_index() {
    let text = "Intro\n\n```sh\necho one\n```\n\n```rust\nfn main() {\n    let greeting = \"a line long enough to wrap at this width\";\n\n    println!(\"{greeting}\");\n}\n```\n";
    let r = md(text, 44);
    assert_eq!(r.code_blocks.len(), 2);
    assert_eq!(r.code_blocks[0], CodeBlock { lang: "sh".into(), code: "echo one\n".into() });
    assert_eq!(r.code_blocks[1].lang, "rust");
    assert!(r.code_blocks[1].code.starts_with("fn main() {\n"));
    let text = plain(&r.lines);
    assert!(text.contains("[1] sh|") && text.contains("[2] rust|"), "{text}");
    assert!(text.contains("  1 │ fn main() {|"), "{text}");
    snapshot("code_block", text);
}

#[test]
fn snapshot_unclosed_fence_while_streaming() {
    let text = "Here is the code:\n\n```python\ndef f(x):\n    return x * 2\n``";
    let r = md(text, 40);
    assert_eq!(r.code_blocks.len(), 1);
    assert_eq!(r.code_blocks[0].code, "def f(x):\n    return x * 2\n", "partial closing fence is not code");
    snapshot("unclosed_fence", plain(&r.lines));
}

#[test]
fn snapshot_mixed_document() {
    let r = md(MIXED_DOC, 36);
    assert_fits(&r.lines, 36, "mixed");
    snapshot("mixed_doc_36", plain(&r.lines));
}

// ---------------------------------------------------------------- wrapping

#[test]
fn cjk_paragraph_wraps_at_20_without_splitting() {
    let text =
        "中文文本的自动换行需要按照显示宽度来计算，每个汉字占两列。混合English单词也应该正确处理，并且不能把字符劈开。";
    let r = md(text, 20);
    assert!(r.lines.len() > 3);
    assert_fits(&r.lines, 20, "cjk");
    assert_graphemes_intact(&r.lines, text);
    // A wide char would fill 20 columns only if the break logic packs lines fully.
    assert!(r.lines.iter().any(|l| l.width() >= 19));
    // Closing punctuation never starts a line.
    assert!(r.lines.iter().all(|l| !line_text(l).starts_with(['，', '。'])));
}

#[test]
fn emoji_zwj_sequences_are_never_split() {
    let family = "👨‍👩‍👧‍👦";
    let text = format!("{family}{family}{family} 👍🏽👍🏽 🇯🇵🇯🇵 🧑‍💻🧑‍💻 ❤️❤️ {family}");
    for width in 0..=12u16 {
        let lines = wrap_spans(vec![Span::raw(text.clone())], width, vec![], vec![]);
        assert_fits(&lines, width, &format!("width {width}"));
        if width >= 2 {
            assert_graphemes_intact(&lines, &text);
        }
        for line in &lines {
            let t = line_text(line);
            assert!(!t.starts_with('\u{200d}') && !t.ends_with('\u{200d}'), "ZWJ at a line edge: {t:?}");
            assert!(!t.starts_with(['\u{fe0f}', '\u{1f3fd}']), "modifier orphaned: {t:?}");
        }
    }
}

#[test]
fn wrap_breaks_at_spaces_and_hangs_under_prefix() {
    let spans = vec![Span::raw("alpha beta "), Span::styled("gamma", Style::new().fg(Color::Red)), Span::raw(" delta")];
    let lines = wrap_spans(spans, 12, vec![Span::raw("- ")], vec![Span::raw("  ")]);
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    assert_eq!(texts, ["- alpha beta", "  gamma", "  delta"]);
    assert_eq!(lines[1].spans[1].style.fg, Some(Color::Red), "style survives wrapping");
}

#[test]
fn wrap_hard_breaks_long_words_and_keeps_indentation() {
    let lines = wrap_spans(vec![Span::raw("  indented abcdefghijklmnop")], 8, vec![], vec![]);
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    assert_eq!(texts, ["  ", "indented", "abcdefgh", "ijklmnop"]);

    let lines = wrap_spans(vec![Span::raw("see https://example.com/x")], 10, vec![], vec![]);
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    assert_eq!(texts, ["see", "https://ex", "ample.com/", "x"]);
}

#[test]
fn wrap_honours_newlines_and_empty_input() {
    let lines = wrap_spans(vec![Span::raw("a\n\nb")], 10, vec![Span::raw("> ")], vec![Span::raw(". ")]);
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    assert_eq!(texts, ["> a", ". ", ". b"]);
    assert_eq!(wrap_spans(vec![], 10, vec![Span::raw("x")], vec![]).len(), 1);
}

#[test]
fn wide_char_in_one_column_becomes_placeholder() {
    let lines = wrap_spans(vec![Span::raw("中a")], 1, vec![], vec![]);
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    assert_eq!(texts, ["…", "a"]);
}

#[test]
fn plain_text_is_wrapped_but_not_interpreted() {
    let style = Style::new().fg(Color::Green);
    let lines = render_plain("**not bold** # nor heading\n\n\tindented\x1b[2J", 12, style);
    let texts: Vec<String> = lines.iter().map(line_text).collect();
    assert_eq!(texts, ["**not bold**", "# nor", "heading", "", "    indented"]);
    assert!(lines.iter().flat_map(|l| &l.spans).all(|s| s.style == style));
    assert!(render_plain("", 10, style).is_empty());
}

#[test]
fn lists_have_hanging_indent() {
    let r = md(
        "- item text that is long enough to wrap twice at this width\n  1. nested ordered item that wraps too\n",
        22,
    );
    let texts: Vec<String> = r.lines.iter().map(line_text).collect();
    assert!(texts[0].starts_with("• item"));
    let nested = texts.iter().position(|t| t.starts_with("  1. ")).expect("nested marker");
    assert!(texts[1..nested].iter().all(|t| t.starts_with("  ") && !t.starts_with("   ")), "{texts:?}");
    assert!(texts[nested + 1..].iter().all(|t| t.starts_with("     ") && !t.starts_with("      ")), "{texts:?}");
}

#[test]
fn long_code_lines_wrap_with_blank_gutter() {
    let code = format!("```\n{}\n```", "x".repeat(50));
    let r = md(&code, 20);
    let texts: Vec<String> = r.lines.iter().map(line_text).collect();
    assert_eq!(texts[0], "[1]");
    assert!(texts[1].starts_with("  1 │ "));
    assert!(texts[2..].iter().all(|t| t.starts_with("    │ x")), "{texts:?}");
    assert_eq!(texts[1..].iter().map(|t| t.matches('x').count()).sum::<usize>(), 50, "nothing truncated");
    assert_fits(&r.lines, 20, "code");
}

#[test]
fn code_keeps_tabs_for_copy_but_not_on_screen() {
    let r = md("```make\nall:\n\tcc main.c\n```\n", 40);
    assert_eq!(r.code_blocks[0].code, "all:\n\tcc main.c\n");
    assert!(plain(&r.lines).contains("  2 │     cc main.c|"));
}

#[test]
fn code_is_highlighted_and_unknown_languages_are_plain() {
    let theme = Theme::default();
    let r = render_markdown("```rust\nlet x = \"s\"; // c\n```\n```nosuchlang\nlet x\n```\n", 40, &theme);
    let rgb = |line: &Line<'_>| line.spans.iter().filter(|s| matches!(s.style.fg, Some(Color::Rgb(..)))).count();
    assert!(rgb(&r.lines[1]) >= 2, "{:?}", r.lines[1]);
    let plain_line = r.lines.iter().rev().find(|l| line_text(l).contains("let x")).unwrap();
    assert_eq!(rgb(plain_line), 0);
}

// ---------------------------------------------------------------- sanitising

#[test]
fn sanitize_removes_escape_sequences_whole() {
    let cases = [
        ("\x1b[31mred\x1b[0m", "red"),
        ("a\x1b]52;c;SGVsbG8=\x07b", "ab"),
        ("a\x1b]8;;http://x.y\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),
        ("\x1b[2Jcleared", "cleared"),
        ("\x1b[?1049hx\x1b[?25l", "x"),
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),
        ("\x1b_apc\u{9c}z", "z"),
        ("\x1b(Bx\x1bcy\x1b7z", "xyz"),
        ("ok\x1b]0;never terminated", "ok"),
        ("trailing\x1b", "trailing"),
        ("a\x1b]2;t\x1b[31mb", "ab"),
    ];
    for (input, expected) in cases {
        assert_eq!(sanitize(input), expected, "{input:?}");
    }
}

#[test]
fn sanitize_drops_controls_and_expands_tabs() {
    use crate::render::sanitize_expand_tabs as sanitize;
    let cases = [
        ("over\rwrite", "overwrite"),
        ("crlf\r\nline", "crlf\nline"),
        ("bell\x07", "bell"),
        ("nul\0 bs\x08 del\x7f", "nul bs del"),
        ("c1\u{85}\u{9b}31m\u{9d}", "c1"),
        ("a\tb", "a   b"),
        ("\tx\nab\ty", "    x\nab  y"),
        ("中\tx", "中  x"),
    ];
    for (input, expected) in cases {
        assert_eq!(sanitize(input), expected, "{input:?}");
    }
}

#[test]
fn sanitize_keeps_unicode_and_borrows_clean_text() {
    let text = "中文 日本語 한국어 👨‍👩‍👧‍👦 👍🏽 🇯🇵 ❤️ é\u{301} \u{200b}\n next";
    assert!(matches!(sanitize(text), std::borrow::Cow::Borrowed(s) if s == text));
}

#[test]
fn rendered_output_never_contains_controls() {
    let text = "# Title\x1b[31m red\n\nPara \x1b]52;c;ZXZpbA==\x07 \x07\r text\u{9b}2J\n\n```sh\n\x1b[2Jrm -rf\n```\n| a\x1b[1m | b |\n|---|---|\n| \x1b]0;x\x07c | d |\n";
    let r = md(text, 30);
    assert_fits(&r.lines, 30, "controls");
    assert!(!r.code_blocks[0].code.contains('\x1b'));
    assert!(plain(&r.lines).contains("Para   text|"), "{}", plain(&r.lines));
    let lines = render_plain(text, 30, Style::default());
    assert_fits(&lines, 30, "controls plain");
}

// ---------------------------------------------------------------- robustness

#[test]
fn narrow_widths_never_overflow() {
    for width in 0..=6u16 {
        let r = md(MIXED_DOC, width);
        assert!(!r.lines.is_empty());
        assert_fits(&r.lines, width, &format!("markdown width {width}"));
        assert_fits(&render_plain(MIXED_DOC, width, Style::default()), width, &format!("plain width {width}"));
    }
}

#[test]
fn every_width_respects_the_limit() {
    for width in 1..=130u16 {
        let r = md(MIXED_DOC, width);
        assert_fits(&r.lines, width, &format!("width {width}"));
        assert_eq!(r.code_blocks.len(), 1);
        // Text is never silently dropped once there is room for a wide character.
        let all = plain(&r.lines);
        let needles: &[&str] = match width {
            ..12 => &[],
            12..40 => &["👨‍👩‍👧‍👦", "🧑‍💻", "二"],
            40.. => &["👨‍👩‍👧‍👦", "🧑‍💻", "二", "1234567", "中文单元格"],
        };
        for needle in needles {
            assert!(all.contains(needle), "width {width}: {needle} missing\n{all}");
        }
    }
}

#[test]
fn every_streaming_prefix_renders() {
    let boundaries: Vec<usize> = (0..=MIXED_DOC.len()).filter(|&i| MIXED_DOC.is_char_boundary(i)).collect();
    for (n, &end) in boundaries.iter().enumerate() {
        let width = [7u16, 23, 50][n % 3];
        let r = md(&MIXED_DOC[..end], width);
        assert_fits(&r.lines, width, &format!("prefix {end}"));
    }
}

/// Random markdown-ish soup (fixed seed, so failures reproduce): no panics, no overflow.
#[test]
fn random_documents_never_overflow() {
    const ATOMS: &[&str] = &[
        "word",
        " ",
        " ",
        "\n",
        "\n\n",
        "# ",
        "- ",
        "1. ",
        "> ",
        "  ",
        "\t",
        "*",
        "**",
        "~~",
        "`",
        "```",
        "```rs\n",
        "~~~\n",
        "|",
        "|---|",
        "[a](http://x.y/z)",
        "<http://a.b>",
        "---",
        "中文",
        "，",
        "。",
        "（",
        "👨‍👩‍👧‍👦",
        "👍🏽",
        "🇯🇵",
        "❤️",
        "e\u{301}",
        "\u{200d}",
        "\u{fe0f}",
        "\x1b[31m",
        "\x1b]0;t\x07",
        "\r",
        "\u{9b}",
        "<b>",
        "\\",
        "verylongwordwithoutanyspaces",
        "[ ] ",
        "[x] ",
        "![img](u)",
        " \u{301}",
        "한국어",
        "\u{1161}",
        "لا",
        "\u{1f1ef}",
        "\u{200b}",
        "\u{ad}",
        "\u{600}1",
        "ｱ",
        "\u{2028}",
        "\u{202e}",
        "1.",
        "\n    code\n",
        "<div>\n",
    ];
    let mut rng = crate::rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    for case in 0..500 {
        let len = (next() % 60) as usize;
        let doc: String = (0..len).map(|_| ATOMS[(next() % ATOMS.len() as u64) as usize]).collect();
        let width = (next() % 48) as u16;
        let r = md(&doc, width);
        assert_fits(&r.lines, width, &format!("case {case} {doc:?}"));
        assert_fits(&render_plain(&doc, width, Style::default()), width, &format!("plain case {case}"));
    }
}
