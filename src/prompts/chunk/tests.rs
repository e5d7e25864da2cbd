use super::*;
use proptest::prelude::*;

/// One token per character.
fn per_char(texts: &[&str]) -> Vec<usize> {
    texts.iter().map(|t| t.chars().count()).collect()
}

/// One token per whitespace-separated word, at least one per text.
fn per_word(texts: &[&str]) -> Vec<usize> {
    texts.iter().map(|t| t.split_whitespace().count().max(1)).collect()
}

fn run(source: &str, chunk_tokens: usize, overlap_tokens: usize, count: fn(&[&str]) -> Vec<usize>) -> Vec<Chunk> {
    let mut count = count;
    chunk(source, &ChunkOptions { chunk_tokens, overlap_tokens }, &mut count)
}

fn by_estimate(texts: &[&str]) -> Vec<usize> {
    texts.iter().map(|t| estimate_tokens(t)).collect()
}

/// Every invariant that holds for any input: ids in order, char boundaries, spans in order covering all
/// non-whitespace text, overlap only from the previous chunk, and sizes within budget unless one grapheme is bigger.
fn check_invariants(source: &str, chunks: &[Chunk], chunk_tokens: usize) {
    let mut covered = 0;
    for (i, c) in chunks.iter().enumerate() {
        let width = chunks.len().to_string().len().max(2);
        assert_eq!(c.id, format!("c{:0width$}", i + 1));
        for b in [c.span.start, c.span.end, c.with_overlap.start, c.with_overlap.end] {
            assert!(source.is_char_boundary(b), "chunk {} boundary {b} not a char boundary", c.id);
        }
        assert!(c.span.start < c.span.end, "empty chunk {c:?}");
        assert!(c.with_overlap.start <= c.span.start && c.with_overlap.end == c.span.end);
        let gap = &source[covered..c.span.start];
        assert!(gap.trim().is_empty(), "text {gap:?} before {} is in no chunk", c.id);
        if i > 0 {
            assert!(c.with_overlap.start >= chunks[i - 1].span.start, "{} overlaps more than the previous", c.id);
        } else {
            assert_eq!(c.with_overlap, c.span);
        }
        assert!(!source[c.span.clone()].starts_with('\n'), "span starts inside a line ending");
        let own = &source[c.span.clone()];
        assert!(
            c.tokens <= chunk_tokens.max(1) || own.graphemes(true).count() == 1,
            "{} has {} tokens over {chunk_tokens}: {own:?}",
            c.id,
            c.tokens
        );
        covered = c.span.end;
    }
    assert!(source[covered..].trim().is_empty(), "tail {:?} is in no chunk", &source[covered..]);
}

#[test]
fn empty_and_whitespace_give_no_chunks() {
    for s in ["", "   ", "\n\n\t\r\n", "\u{3000}\r\n"] {
        assert!(run(s, 10, 2, per_char).is_empty(), "{s:?}");
    }
}

#[test]
fn headings_give_paths_and_locators() {
    let doc = "Intro para.\n\n# Market\n\nFirst para.\n\nSecond para.\n\n## Size\n\nSize para.\n\n## Growth\n\n\
               - item one\n- item two\n\nOverview\n========\n\nSetext para.\n\n### Deep\n\nDeep para.\n";
    // Headings and paragraphs are 2 words each, list items 3: a budget of 5 words keeps only a heading with its
    // first paragraph together.
    let chunks = run(doc, 5, 0, per_word);
    check_invariants(doc, &chunks, 5);
    let got: Vec<(&str, String, &str)> = chunks
        .iter()
        .map(|c| (&doc[c.span.clone()], c.locator.clone(), c.heading_path.last().map_or("", |s| s.as_str())))
        .collect();
    let want = [
        ("Intro para.", "¶1", ""),
        ("# Market\n\nFirst para.", "§1", "Market"),
        ("Second para.", "§1¶2", "Market"),
        ("## Size\n\nSize para.", "§1.1", "Size"),
        ("## Growth\n\n- item one", "§1.2", "Growth"),
        ("- item two", "§1.2¶2", "Growth"),
        ("Overview\n========\n\nSetext para.", "§2", "Overview"),
        ("### Deep\n\nDeep para.", "§2.1", "Deep"),
    ];
    let want: Vec<(&str, String, &str)> = want.iter().map(|w| (w.0, w.1.to_string(), w.2)).collect();
    assert_eq!(got, want);
    assert_eq!(chunks[7].heading_path, ["Overview", "Deep"]);
    assert_eq!(chunks[5].heading_path, ["Market", "Growth"]);
}

#[test]
fn numbering_starts_at_one_whatever_the_first_level() {
    let doc = "## A\n\na\n\n# B\n\nb\n\n### C\n\nc\n\n## D\n\nd\n";
    let chunks = run(doc, 3, 0, per_word);
    let locs: Vec<&str> = chunks.iter().map(|c| c.locator.as_str()).collect();
    assert_eq!(locs, ["§1", "§2", "§2.1", "§2.2"]);
}

#[test]
fn a_heading_never_ends_a_chunk() {
    // Budget 5 words: "one two three four." fills 4, the heading would fit but its paragraph would not.
    let doc = "one two three four.\n\n# Next\n\nfive six seven.\n";
    let chunks = run(doc, 5, 0, per_word);
    check_invariants(doc, &chunks, 5);
    for c in &chunks {
        let own = &doc[c.span.clone()];
        let last_line = own.lines().last().unwrap_or("");
        assert!(!last_line.starts_with('#'), "chunk ends with a heading: {own:?}");
    }
    assert_eq!(&doc[chunks[1].span.clone()], "# Next\n\nfive six seven.");
}

#[test]
fn a_full_chunk_ends_before_a_section() {
    // 6 of 10 words used; the section (2 + 11 words) does not fit, so it starts the next chunk even though its
    // heading and first sentence would fit in the 4 words left.
    let doc = "a b c d e f.\n\n# H\n\nX y. Z w v u t s r q p.\n";
    let chunks = run(doc, 10, 0, per_word);
    assert_eq!(&doc[chunks[0].span.clone()], "a b c d e f.", "{chunks:?}");
    assert_eq!(&doc[chunks[1].span.clone()], "# H\n\nX y.", "{chunks:?}");
    // A section that fits a chunk of its own is not split, however empty the chunk before.
    let doc = "a b c.\n\n# H\n\nx y. z w v u.\n";
    let chunks = run(doc, 10, 0, per_word);
    assert_eq!(&doc[chunks[1].span.clone()], "# H\n\nx y. z w v u.", "{chunks:?}");
    // Less full, and the section bigger than a chunk: its first sentence fills the chunk.
    let doc = "a b c.\n\n# H\n\nX y. Z w v u t s r q p.\n";
    let chunks = run(doc, 10, 0, per_word);
    assert_eq!(&doc[chunks[0].span.clone()], "a b c.\n\n# H\n\nX y.");
}

#[test]
fn a_document_of_only_headings() {
    let doc = "# One\n## Two\n### Three\n# Four\n## Five\n";
    let chunks = run(doc, 4, 1, per_word);
    check_invariants(doc, &chunks, 4);
    assert_eq!(chunks.len(), 5);
    let all = chunks.iter().map(|c| &doc[c.span.clone()]).collect::<Vec<_>>().join("\n");
    assert_eq!(all, doc.trim_end());
    assert_eq!(chunks[0].locator, "§1");
    assert_eq!(chunks.last().map(|c| c.heading_path.clone()), Some(vec!["Four".to_string(), "Five".to_string()]));
    assert_eq!(run(doc, 100, 0, per_word).len(), 1);
}

#[test]
fn code_blocks_stay_whole() {
    let code = "```rust\nfn main() {\n    let x = 1. + 2.;\n\n    println!(\"{x}\");\n}\n```";
    let doc = format!("Before. Text here.\n\n{code}\n\nAfter it. More.\n");
    let chunks = run(&doc, 80, 0, per_char);
    check_invariants(&doc, &chunks, 80);
    assert!(chunks.iter().any(|c| &doc[c.span.clone()] == code), "{chunks:?}");
    // A block bigger than the budget is split at line boundaries.
    let chunks = run(&doc, 25, 0, per_char);
    check_invariants(&doc, &chunks, 25);
    for c in &chunks {
        let end = c.span.end;
        assert!(end == doc.trim_end().len() || doc[end..].starts_with('\n'), "split mid-line at {end}");
    }
    // Tilde fences, with a blank line inside, are one block too.
    let doc = "~~~\na\n\nb\n~~~\n\nc\n";
    let chunks = run(doc, 12, 0, per_char);
    assert_eq!(&doc[chunks[0].span.clone()], "~~~\na\n\nb\n~~~");
}

#[test]
fn chinese_splits_at_sentence_ends() {
    let sentences =
        ["人工智能创业公司的优势在于速度。", "它们能更快地试错吗？", "当然！", "市场很大；", "竞争也很激烈。"];
    let doc: String = sentences.iter().cycle().take(40).cloned().collect();
    let chunks = run(&doc, 30, 0, per_char);
    check_invariants(&doc, &chunks, 30);
    assert!(chunks.len() > 5);
    for c in &chunks {
        let own = &doc[c.span.clone()];
        assert!(own.ends_with(['。', '？', '！', '；']), "chunk splits a sentence: {own:?}");
        assert!(c.tokens <= 30);
    }
    // The estimate counts Chinese at ~1.9 tokens a character.
    let chunks = run(&doc, 60, 0, by_estimate);
    check_invariants(&doc, &chunks, 60);
    assert!(chunks.iter().all(|c| doc[c.span.clone()].ends_with(['。', '？', '！', '；'])));
}

#[test]
fn english_sentences_respect_abbreviations_and_decimals() {
    let s = sentences("It grew 3.5 times, e.g. in the U.S. Market. Mr. Smith agreed! \"Really?\" Yes.");
    let doc = "It grew 3.5 times, e.g. in the U.S. Market. Mr. Smith agreed! \"Really?\" Yes.";
    let got: Vec<&str> = s.iter().map(|r| doc[r.clone()].trim_end()).collect();
    assert_eq!(got, ["It grew 3.5 times, e.g. in the U.S. Market.", "Mr. Smith agreed!", "\"Really?\"", "Yes."]);
}

#[test]
fn a_long_english_paragraph_splits_between_words() {
    let words = ["market", "advantage", "strategy", "product", "a", "growth"];
    let mut doc = String::new();
    let mut i = 0;
    while doc.len() < 20_000 {
        doc.push_str(words[i % words.len()]);
        doc.push(' ');
        i += 1;
    }
    let doc = doc.trim_end().to_string();
    let chunks = run(&doc, 100, 10, per_char);
    check_invariants(&doc, &chunks, 100);
    assert!(chunks.len() > 200);
    for c in &chunks {
        let own = &doc[c.span.clone()];
        for w in own.split(' ') {
            assert!(words.contains(&w), "broken word {w:?} in {}", c.id);
        }
    }
    let chunks = run(&doc, 500, 0, by_estimate);
    check_invariants(&doc, &chunks, 500);
}

#[test]
fn a_long_chinese_paragraph_splits_between_characters() {
    let doc: String = "市场优势产品战略".chars().cycle().take(20_000).collect();
    let chunks = run(&doc, 700, 0, by_estimate);
    check_invariants(&doc, &chunks, 700);
    assert!(chunks.len() >= 20_000 * 19 / 10 / 700);
    assert_eq!(chunks.iter().map(|c| &doc[c.span.clone()]).collect::<String>(), doc);
}

#[test]
fn a_long_word_splits_between_graphemes_and_crlf_stays_whole() {
    let doc = format!("{}\r\n{}", "x".repeat(50), "y".repeat(50));
    let chunks = run(&doc, 7, 0, per_char);
    check_invariants(&doc, &chunks, 7);
    for c in &chunks {
        assert!(!doc[c.span.clone()].contains('\r') || doc[c.span.clone()].contains("\r\n"));
    }
    let doc = "line one.\r\nline two.\r\n\r\n# H\r\n\r\npara.\r\n";
    let chunks = run(doc, 4, 0, per_word);
    check_invariants(doc, &chunks, 4);
    assert_eq!(chunks.last().map(|c| c.heading_path.clone()), Some(vec!["H".to_string()]));
}

#[test]
fn overlap_repeats_the_last_sentences_of_the_previous_chunk() {
    let doc = "One two. Three four. Five six. Seven eight. Nine ten. Eleven twelve.";
    let chunks = run(doc, 6, 2, per_word);
    check_invariants(doc, &chunks, 6);
    assert!(chunks.len() >= 2);
    for w in chunks.windows(2) {
        let overlap = &doc[w[1].with_overlap.start..w[1].span.start];
        let prev = &doc[w[0].span.clone()];
        assert!(!overlap.trim().is_empty(), "no overlap before {}", w[1].id);
        assert!(prev.ends_with(overlap.trim_end()), "{overlap:?} is not the end of {prev:?}");
        assert_eq!(w[1].tokens, per_word(&[w[1].text(doc)])[0]);
    }
    let none = run(doc, 6, 0, per_word);
    assert!(none.iter().all(|c| c.with_overlap == c.span));
}

#[test]
fn batches_are_counted_once() {
    let doc = "# A\n\nOne. Two.\n\n- x\n- y\n";
    let mut calls = 0;
    let mut count = |t: &[&str]| {
        calls += 1;
        per_char(t)
    };
    chunk(doc, &ChunkOptions { chunk_tokens: 100, overlap_tokens: 0 }, &mut count);
    assert_eq!(calls, 1);
    // A counter that answers too few falls back to the estimate instead of panicking.
    let mut short = |_: &[&str]| vec![1];
    let chunks = chunk(doc, &ChunkOptions { chunk_tokens: 100, overlap_tokens: 0 }, &mut short);
    check_invariants(doc, &chunks, 100);
}

#[test]
fn preview_gives_the_first_words() {
    let doc = "Alpha  beta\ngamma delta epsilon.\n\n人工智能创业公司的优势在于速度。";
    let chunks = run(doc, 5, 0, per_word);
    assert_eq!(chunks[0].preview(doc, 3), "Alpha beta gamma…");
    assert_eq!(chunks[0].preview(doc, 5), "Alpha beta gamma delta epsilon.");
    assert_eq!(chunks[1].preview(doc, 3), "人工智能创业…");
}

#[test]
fn ids_pad_to_the_width_of_the_count() {
    let doc = (1..=120).map(|i| format!("Para {i}.")).collect::<Vec<_>>().join("\n\n");
    let chunks = run(&doc, 2, 0, per_word);
    assert_eq!(chunks.len(), 120);
    assert_eq!(chunks[0].id, "c001");
    assert_eq!(chunks[119].id, "c120");
    assert_eq!(chunks[41].locator, "¶42");
}

#[test]
fn estimate_uses_the_measured_ratios() {
    assert_eq!(estimate_tokens(""), 0);
    assert_eq!(estimate_tokens("abcdefghij"), 3);
    assert_eq!(estimate_tokens("市场"), 4);
}

fn mixed_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("# Title\n".to_string()),
        Just("## Sub\r\n".to_string()),
        Just("Setext\n---\n".to_string()),
        Just("\n\n".to_string()),
        Just("\r\n".to_string()),
        Just("- item\n".to_string()),
        Just("```\ncode line\n".to_string()),
        Just("```\n".to_string()),
        Just("e.g. 3.5 U.S. ".to_string()),
        Just("。".to_string()),
        Just("！？".to_string()),
        Just(". ".to_string()),
        Just(" ".to_string()),
        "[a-z]{1,30}",
        "[市场优势产品战略]{1,20}",
        "[a-zé\u{301}😀\u{200d}👍🏽 ]{1,10}",
        "\\PC{1,8}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn any_text_chunks_within_budget(doc in mixed_text(), budget in 1usize..40, overlap in 0usize..10) {
        let chunks = run(&doc, budget, overlap, per_char);
        check_invariants(&doc, &chunks, budget);
        let chunks = run(&doc, budget * 3, overlap, by_estimate);
        check_invariants(&doc, &chunks, budget * 3);
    }
}
