//! Structure-aware chunking of long documents for map-reduce.
//!
//! A document is cut where its author already cut it, so that each chunk reads as a whole and the ids moat gives
//! chunks point at places a reader can find. Split points, from preferred to last resort:
//!
//! 1. **Headings** (Markdown `#` and setext). A heading opens a section, so it always travels with the text after
//!    it; a chunk that is already ≥ 60% full ends before a section that does not fit rather than starting it.
//! 2. **Blocks**: blank-line paragraphs, list items and fenced code blocks (```` ``` ```` or `~~~`). A block that
//!    fits in a chunk is never split; one that does not fit in what is left moves whole to the next chunk.
//! 3. **Sentences** (CJK `。！？；`, English `.!?` before whitespace, closing quotes allowed; "e.g.", "U.S.", "Mr."
//!    and decimals are not ends), or **lines** inside a code block, only when the block alone exceeds the budget.
//! 4. **Words** (English, at whitespace) or **between CJK characters**, only when one sentence alone exceeds it.
//! 5. **Grapheme clusters**, only when one word alone exceeds it (a URL, base64): never inside a character, and
//!    never between the `\r` and `\n` of a CRLF.
//!
//! Sizes are in tokens of the model in use: every unit of level 3 is counted in one batch call of the caller's
//! counter, and finer pieces (levels 4 and 5) in one more call each, only for the units that need them. A chunk's
//! size is the sum of its parts, which is close to, not exactly, the count of its whole text.
//!
//! Each chunk after the first repeats the last whole sentences of the previous one (the overlap) so that a fact
//! straddling a boundary is seen whole at least once; the chunk's own content is packed into the budget less the
//! overlap, so that with the overlap a chunk still fits `chunk_tokens`.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// How big chunks are, in tokens of the model in use.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    /// The most tokens a chunk holds, overlap included (0 is taken as 1).
    pub chunk_tokens: usize,
    /// The most tokens of the previous chunk's last sentences repeated at the start of a chunk (0 = none); capped
    /// at half of `chunk_tokens`.
    pub overlap_tokens: usize,
}

/// One chunk of a document: where it is, what encloses it and how big it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chunk {
    /// moat's id: `c01`, `c02`, … zero-padded to the width of the count (at least 2 digits).
    pub id: String,
    /// Where it starts: heading numbers and paragraph number within that section, e.g. `§2.3¶4` (`¶4` when no
    /// heading precedes; `§2.3` when the chunk starts at that heading). Sections are numbered by their position
    /// in the heading tree.
    pub locator: String,
    /// Titles of the enclosing headings, outermost first (Markdown `#` headings and setext headings); a chunk
    /// starting at a heading includes that heading.
    pub heading_path: Vec<String>,
    /// Byte range in the source of the chunk's own text (no overlap); always on char boundaries.
    pub span: Range<usize>,
    /// Byte range including the overlap taken from the end of the previous chunk (start <= span.start).
    pub with_overlap: Range<usize>,
    /// Estimated tokens of `source[with_overlap]` (sum of the counted units).
    pub tokens: usize,
}

impl Chunk {
    /// The chunk's text with its overlap: `source[with_overlap]` (empty if `source` is not the chunked text).
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.with_overlap.clone()).unwrap_or("")
    }

    /// The first `words` words of the chunk's own text with whitespace collapsed, ending in "…" if cut; for CJK
    /// text (no spaces between words), the first `words × 2` characters.
    pub fn preview(&self, source: &str, words: usize) -> String {
        let own = source.get(self.span.clone()).unwrap_or("");
        let collapsed = own.split_whitespace().collect::<Vec<_>>();
        let cjk = own.chars().take(40).filter(|&c| is_cjk(c)).count() * 2 > own.chars().take(40).count();
        if cjk {
            let joined = collapsed.join(" ");
            let limit = words * 2;
            if joined.chars().count() > limit {
                return joined.chars().take(limit).collect::<String>() + "…";
            }
            joined
        } else if collapsed.len() > words {
            collapsed[..words].join(" ") + "…"
        } else {
            collapsed.join(" ")
        }
    }
}

/// A character-based estimate usable as `count` when no tokenizer is available: tokens ≈ ASCII chars × 0.30 +
/// other chars × 1.9 (the default model's measured ratios, see [`super::lint::ratios`]), rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    let ascii = text.bytes().filter(u8::is_ascii).count();
    let other = text.chars().count() - ascii;
    (ascii as f64 * super::lint::ratios::EN_TEXT + other as f64 * super::lint::ratios::ZH_TEXT).ceil() as usize
}

/// Splits `source` into chunks of at most `opts.chunk_tokens` tokens (unless a single unsplittable unit, one
/// grapheme cluster, is bigger). `count` returns the token length of each text it is given, in one call per batch
/// (the engine's tokenizer; a wrong-length answer falls back to [`estimate_tokens`] for the missing ones). Never
/// panics on any input; empty or whitespace-only input gives no chunks.
pub fn chunk(source: &str, opts: &ChunkOptions, count: &mut dyn FnMut(&[&str]) -> Vec<usize>) -> Vec<Chunk> {
    let chunk_tokens = opts.chunk_tokens.max(1);
    let overlap = opts.overlap_tokens.min(chunk_tokens / 2);
    let budget = chunk_tokens - overlap;
    let blocks = parse_blocks(source);
    if blocks.is_empty() {
        return Vec::new();
    }
    let metas = locate_blocks(&blocks);
    let groups = build_tree(source, &blocks, budget, count);
    let mut packer = Packer { budget, cur: Vec::new(), cur_tokens: 0, done: Vec::new() };
    for g in &groups {
        packer.place(g);
    }
    packer.close_all();
    let packed = packer.done;
    let width = packed.len().to_string().len().max(2);
    let mut out = Vec::with_capacity(packed.len());
    for (i, leaves) in packed.iter().enumerate() {
        let Some(first) = leaves.first() else { continue };
        let last = leaves.last().unwrap_or(first);
        let span = trim_range(source, first.range.start..last.range.end);
        let own: usize = leaves.iter().map(|l| l.tokens).sum();
        let (ov_start, ov_tokens) = match i.checked_sub(1).and_then(|p| packed.get(p)) {
            Some(prev) if overlap > 0 => overlap_of(prev, overlap),
            _ => (None, 0),
        };
        // A code line's range starts at its indentation, which is not part of the previous chunk's span.
        let start = ov_start.map_or(span.start, |s| trim_range(source, s.min(span.start)..span.start).start);
        let meta = &metas[first.block];
        out.push(Chunk {
            id: format!("c{:0width$}", out.len() + 1),
            locator: meta.locator.clone(),
            heading_path: meta.path.clone(),
            with_overlap: start..span.end,
            span,
            tokens: own + ov_tokens,
        });
    }
    out
}

/// The start and tokens of the last whole sentences (or code lines) of `prev` that fit in `limit` tokens.
fn overlap_of(prev: &[Leaf], limit: usize) -> (Option<usize>, usize) {
    let mut start = None;
    let mut total = 0;
    for leaf in prev.iter().rev() {
        if !leaf.whole || leaf.heading || total + leaf.tokens > limit {
            break;
        }
        total += leaf.tokens;
        start = Some(leaf.range.start);
    }
    (start, total)
}

/// `r` without whitespace at either end (an empty range at `r.start` if all whitespace).
fn trim_range(source: &str, r: Range<usize>) -> Range<usize> {
    let text = &source[r.clone()];
    let start = r.start + (text.len() - text.trim_start().len());
    let end = r.end - (text.len() - text.trim_end().len());
    start..end.max(start)
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Heading { level: usize, title: String },
    Para,
    Item,
    Code,
}

/// A paragraph, list item, code block or heading: its range has no whitespace at either end.
#[derive(Debug, Clone)]
struct Block {
    kind: Kind,
    range: Range<usize>,
}

/// Cuts `source` into blocks, line by line (a line ends at `\n`; a `\r` before it belongs to the line ending).
fn parse_blocks(source: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut cur: Option<Block> = None;
    // Open fence: its character, its length.
    let mut fence: Option<(char, usize)> = None;
    let mut pos = 0;
    while pos < source.len() {
        let nl = source[pos..].find('\n').map_or(source.len(), |i| pos + i);
        let next = (nl + 1).min(source.len()).max(nl);
        let line = source[pos..nl].trim_end_matches('\r');
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let content_end = pos + line.trim_end().len();
        let line_start = pos;
        pos = if nl < source.len() { nl + 1 } else { next };
        if let Some((ch, len)) = fence {
            if let Some(b) = cur.as_mut() {
                if !t.is_empty() {
                    b.range.end = content_end;
                }
            }
            let run = t.chars().take_while(|&c| c == ch).count();
            if run >= len && t[run * ch.len_utf8()..].trim().is_empty() {
                blocks.extend(cur.take());
                fence = None;
            }
            continue;
        }
        if t.is_empty() {
            blocks.extend(cur.take());
            continue;
        }
        let start = line_start + indent;
        if let Some((ch, len)) = fence_open(t) {
            blocks.extend(cur.take());
            cur = Some(Block { kind: Kind::Code, range: start..content_end });
            fence = Some((ch, len));
            continue;
        }
        if indent <= 3 {
            if let Some((level, title)) = atx_heading(t) {
                blocks.extend(cur.take());
                blocks.push(Block { kind: Kind::Heading { level, title }, range: start..content_end });
                continue;
            }
            if let Some(level) = setext_underline(t) {
                if let Some(b) = cur.as_mut().filter(|b| b.kind == Kind::Para) {
                    let title = source[b.range.clone()].split_whitespace().collect::<Vec<_>>().join(" ");
                    b.kind = Kind::Heading { level, title };
                    b.range.end = content_end;
                    blocks.extend(cur.take());
                    continue;
                }
            }
        }
        if is_list_item(t) {
            blocks.extend(cur.take());
            cur = Some(Block { kind: Kind::Item, range: start..content_end });
            continue;
        }
        match cur.as_mut() {
            Some(b) => b.range.end = content_end,
            None => cur = Some(Block { kind: Kind::Para, range: start..content_end }),
        }
    }
    blocks.extend(cur);
    blocks
}

/// A fence opening line: three or more backticks or tildes (a backtick fence's info string has no backtick).
fn fence_open(t: &str) -> Option<(char, usize)> {
    let ch = t.chars().next().filter(|&c| c == '`' || c == '~')?;
    let run = t.chars().take_while(|&c| c == ch).count();
    (run >= 3 && !(ch == '`' && t[run..].contains('`'))).then_some((ch, run))
}

/// An ATX heading (`## Title ##`): its level and title.
fn atx_heading(t: &str) -> Option<(usize, String)> {
    let level = t.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim();
    let closed = rest.trim_end_matches('#');
    let title = if closed.is_empty() || closed.ends_with([' ', '\t']) { closed.trim() } else { rest };
    Some((level, title.to_string()))
}

/// A setext underline (`===` for level 1, `---` for level 2).
fn setext_underline(t: &str) -> Option<usize> {
    let t = t.trim_end();
    if !t.is_empty() && t.chars().all(|c| c == '=') {
        Some(1)
    } else if !t.is_empty() && t.chars().all(|c| c == '-') {
        Some(2)
    } else {
        None
    }
}

/// A list item's first line: `-`, `*` or `+`, or 1–9 digits and `.` or `)`, then a space or the end of the line.
fn is_list_item(t: &str) -> bool {
    let after_marker = |rest: &str| rest.is_empty() || rest.starts_with([' ', '\t']);
    if let Some(rest) = t.strip_prefix(['-', '*', '+']) {
        return after_marker(rest);
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    (1..=9).contains(&digits) && t[digits..].strip_prefix(['.', ')']).is_some_and(after_marker)
}

/// Where a block is: its locator and the titles of its enclosing headings.
struct Meta {
    locator: String,
    path: Vec<String>,
}

/// Numbers sections by their position in the heading tree and paragraphs within their section.
fn locate_blocks(blocks: &[Block]) -> Vec<Meta> {
    // (level, number, title) of each open heading, outermost first.
    let mut open: Vec<(usize, usize, String)> = Vec::new();
    let mut para = 0;
    let section = |open: &[(usize, usize, String)]| {
        if open.is_empty() {
            String::new()
        } else {
            let nums = open.iter().map(|o| o.1.to_string()).collect::<Vec<_>>();
            format!("§{}", nums.join("."))
        }
    };
    let mut metas = Vec::with_capacity(blocks.len());
    for b in blocks {
        if let Kind::Heading { level, title } = &b.kind {
            // Closing deeper headings; a heading shallower than all open ones continues the numbering of the
            // shallowest one closed, so `## A` then `# B` gives §1 then §2.
            let mut carried = 0;
            while let Some(top) = open.last() {
                if top.0 <= *level {
                    break;
                }
                carried = top.1;
                open.pop();
            }
            match open.last_mut() {
                Some(top) if top.0 == *level => {
                    top.1 += 1;
                    top.2 = title.clone();
                }
                _ => open.push((*level, carried + 1, title.clone())),
            }
            para = 0;
            metas.push(Meta { locator: section(&open), path: open.iter().map(|o| o.2.clone()).collect() });
        } else {
            para += 1;
            metas.push(Meta {
                locator: format!("{}¶{para}", section(&open)),
                path: open.iter().map(|o| o.2.clone()).collect(),
            });
        }
    }
    metas
}

/// A piece of the document at some level: a group (headings and the block after them), a block, a unit
/// (sentence, code line, heading), a word or CJK character, or a grapheme cluster.
#[derive(Debug)]
struct Node {
    range: Range<usize>,
    tokens: usize,
    /// Starts with a heading.
    heading: bool,
    /// A whole sentence, code line or heading (may be repeated as overlap).
    whole: bool,
    block: usize,
    children: Vec<Node>,
}

/// Counts `texts` in one call, filling in an estimate for any the counter did not answer.
fn count_batch(source: &str, ranges: &[Range<usize>], count: &mut dyn FnMut(&[&str]) -> Vec<usize>) -> Vec<usize> {
    if ranges.is_empty() {
        return Vec::new();
    }
    let texts: Vec<&str> = ranges.iter().map(|r| &source[r.clone()]).collect();
    let answered = count(&texts);
    texts.iter().enumerate().map(|(i, t)| answered.get(i).copied().unwrap_or_else(|| estimate_tokens(t))).collect()
}

/// Builds the tree of groups → blocks → units (→ words → graphemes where a unit or word exceeds `budget`).
fn build_tree(
    source: &str,
    blocks: &[Block],
    budget: usize,
    count: &mut dyn FnMut(&[&str]) -> Vec<usize>,
) -> Vec<Node> {
    let unit_ranges: Vec<Vec<Range<usize>>> = blocks.iter().map(|b| units_of(source, b)).collect();
    let flat: Vec<Range<usize>> = unit_ranges.iter().flatten().cloned().collect();
    let unit_tokens = count_batch(source, &flat, count);

    // Words of oversized units, counted in one batch.
    let mut word_ranges: Vec<Vec<Range<usize>>> = Vec::with_capacity(flat.len());
    for (r, &t) in flat.iter().zip(&unit_tokens) {
        word_ranges.push(if t > budget { words_of(source, r.clone()) } else { Vec::new() });
    }
    let flat_words: Vec<Range<usize>> = word_ranges.iter().flatten().cloned().collect();
    let word_tokens = count_batch(source, &flat_words, count);

    // Graphemes of oversized words, counted in one batch.
    let mut grapheme_ranges: Vec<Vec<Range<usize>>> = Vec::with_capacity(flat_words.len());
    for (r, &t) in flat_words.iter().zip(&word_tokens) {
        grapheme_ranges.push(if t > budget { graphemes_of(source, r.clone()) } else { Vec::new() });
    }
    let flat_graphemes: Vec<Range<usize>> = grapheme_ranges.iter().flatten().cloned().collect();
    let grapheme_tokens = count_batch(source, &flat_graphemes, count);

    let mut next_unit = 0;
    let mut next_word = 0;
    let mut next_grapheme = 0;
    let mut block_nodes = Vec::with_capacity(blocks.len());
    for (bi, (b, units)) in blocks.iter().zip(&unit_ranges).enumerate() {
        let heading = matches!(b.kind, Kind::Heading { .. });
        let mut unit_nodes = Vec::with_capacity(units.len());
        for r in units {
            let mut word_nodes = Vec::new();
            for wr in &word_ranges[next_unit] {
                let graphemes = grapheme_ranges[next_word]
                    .iter()
                    .map(|gr| {
                        let tokens = grapheme_tokens[next_grapheme];
                        next_grapheme += 1;
                        leaf(gr.clone(), tokens, heading, false, bi)
                    })
                    .collect();
                word_nodes
                    .push(Node { children: graphemes, ..leaf(wr.clone(), word_tokens[next_word], heading, false, bi) });
                next_word += 1;
            }
            unit_nodes
                .push(Node { children: word_nodes, ..leaf(r.clone(), unit_tokens[next_unit], heading, true, bi) });
            next_unit += 1;
        }
        let tokens = unit_nodes.iter().map(|n| n.tokens).sum();
        block_nodes.push(Node {
            range: b.range.clone(),
            tokens,
            heading,
            whole: false,
            block: bi,
            children: unit_nodes,
        });
    }

    // Headings go with the block after them: a run of headings and the next block make one group.
    let mut groups = Vec::new();
    let mut pending: Vec<Node> = Vec::new();
    for node in block_nodes {
        let is_heading = node.heading;
        pending.push(node);
        if !is_heading {
            groups.push(group(std::mem::take(&mut pending)));
        }
    }
    if !pending.is_empty() {
        groups.push(group(pending));
    }
    groups
}

fn leaf(range: Range<usize>, tokens: usize, heading: bool, whole: bool, block: usize) -> Node {
    Node { range, tokens, heading, whole, block, children: Vec::new() }
}

fn group(mut members: Vec<Node>) -> Node {
    if members.len() == 1 {
        return members.remove(0);
    }
    let start = members.first().map_or(0, |m| m.range.start);
    let end = members.last().map_or(0, |m| m.range.end);
    Node {
        range: start..end,
        tokens: members.iter().map(|m| m.tokens).sum(),
        heading: members.first().is_some_and(|m| m.heading),
        whole: false,
        block: members.first().map_or(0, |m| m.block),
        children: members,
    }
}

/// The units of a block: a heading whole, a code block's lines (blank lines joined to the line before), a
/// paragraph's or list item's sentences. Each range starts at its first byte and runs to the next unit's start.
fn units_of(source: &str, b: &Block) -> Vec<Range<usize>> {
    match b.kind {
        Kind::Heading { .. } => vec![b.range.clone()],
        Kind::Code => {
            let text = &source[b.range.clone()];
            let mut out: Vec<Range<usize>> = Vec::new();
            let mut pos = 0;
            for line in text.split_inclusive('\n') {
                let r = b.range.start + pos..b.range.start + pos + line.len();
                pos += line.len();
                match out.last_mut() {
                    Some(last) if line.trim().is_empty() => last.end = r.end,
                    _ => out.push(r),
                }
            }
            out
        }
        Kind::Para | Kind::Item => sentences(&source[b.range.clone()])
            .into_iter()
            .map(|r| b.range.start + r.start..b.range.start + r.end)
            .collect(),
    }
}

/// Ends of sentences in Chinese/Japanese text.
fn is_cjk_end(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '｡')
}

/// Closing quotes and brackets that belong to the sentence they follow.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '”' | '’' | '」' | '』' | '）' | '》' | '】' | '〉')
}

/// Abbreviations that end in a full stop without ending a sentence (lowercased, without the stop).
const ABBREVIATIONS: &[&str] =
    &["mr", "mrs", "ms", "dr", "prof", "st", "vs", "inc", "ltd", "jr", "sr", "no", "fig", "cf", "approx", "co", "corp"];

/// Sentence ranges of `text` (trimmed): each runs from its first non-space byte to the next sentence's start.
fn sentences(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        let cjk = is_cjk_end(c);
        if !(cjk || matches!(c, '.' | '!' | '?')) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && (is_cjk_end(chars[j].1) || matches!(chars[j].1, '.' | '!' | '?')) {
            j += 1;
        }
        while j < chars.len() && is_closer(chars[j].1) {
            j += 1;
        }
        let mut k = j;
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        let ends = if cjk {
            true
        } else {
            let spaced = j == chars.len() || k > j;
            let next_lower = chars.get(k).is_some_and(|c| c.1.is_lowercase());
            spaced && !next_lower && !(c == '.' && j == i + 1 && is_abbreviation(&text[..chars[i].0]))
        };
        if ends && k < chars.len() {
            out.push(start..at(k));
            start = at(k);
        }
        i = k.max(i + 1);
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// Whether the word ending `before` (the text before a full stop) is an abbreviation or an initial: "e.g",
/// "U.S", "Mr", "J".
fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
    if word.contains('.') {
        return true;
    }
    let mut letters = word.chars();
    if let (Some(c), None) = (letters.next(), letters.next()) {
        return c.is_uppercase();
    }
    ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// Words of the text at `r`: each CJK character on its own, other runs of non-space characters, each with the
/// whitespace after it (so a CRLF stays whole).
fn words_of(source: &str, r: Range<usize>) -> Vec<Range<usize>> {
    let text = &source[r.clone()];
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let end = i + c.len_utf8();
        if c.is_whitespace() {
            if let Some(s) = word_start.take() {
                out.push(s..end);
            } else if let Some(last) = out.last_mut() {
                last.end = end;
            } else {
                out.push(i..end);
            }
        } else if is_cjk(c) {
            if let Some(s) = word_start.take() {
                out.push(s..i);
            }
            out.push(i..end);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(s) = word_start {
        out.push(s..text.len());
    }
    // A leading whitespace range joins the first word.
    if out.len() > 1 && text[out[0].clone()].trim().is_empty() {
        let first = out.remove(0);
        out[0].start = first.start;
    }
    out.into_iter().map(|w| r.start + w.start..r.start + w.end).collect()
}

/// Grapheme clusters of the text at `r` (a CRLF is one cluster), whitespace joined to the cluster before it so
/// that no piece is only whitespace.
fn graphemes_of(source: &str, r: Range<usize>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (i, g) in source[r.clone()].grapheme_indices(true) {
        let g_range = r.start + i..r.start + i + g.len();
        match out.last_mut() {
            Some(last) if g.trim().is_empty() || source[last.clone()].trim().is_empty() => last.end = g_range.end,
            _ => out.push(g_range),
        }
    }
    out
}

/// CJK ideographs, kana, hangul, CJK punctuation and full-width forms: text written without spaces between
/// words, where a break between any two characters is a word break.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF | 0x20000..=0x2FA1F)
}

/// A leaf placed in a chunk.
#[derive(Debug, Clone)]
struct Leaf {
    range: Range<usize>,
    tokens: usize,
    heading: bool,
    whole: bool,
    block: usize,
}

/// Greedy packing of the tree into chunks of at most `budget` tokens.
struct Packer {
    budget: usize,
    cur: Vec<Leaf>,
    cur_tokens: usize,
    done: Vec<Vec<Leaf>>,
}

impl Packer {
    /// Whether the open chunk holds anything besides headings waiting for their section.
    fn has_content(&self) -> bool {
        self.cur.iter().any(|l| !l.heading)
    }

    /// Closes the open chunk; headings at its end move on to the next one, since they belong to what follows.
    fn close(&mut self) {
        let split = match self.cur.iter().rposition(|l| !l.heading) {
            Some(i) => i + 1,
            None => self.cur.len(),
        };
        let carried = self.cur.split_off(split);
        if !self.cur.is_empty() {
            self.done.push(std::mem::take(&mut self.cur));
        }
        self.cur_tokens = carried.iter().map(|l| l.tokens).sum();
        self.cur = carried;
    }

    fn close_all(&mut self) {
        self.close();
        if !self.cur.is_empty() {
            self.done.push(std::mem::take(&mut self.cur));
        }
        self.cur_tokens = 0;
    }

    fn add(&mut self, node: &Node) {
        if node.children.is_empty() {
            self.cur_tokens += node.tokens;
            self.cur.push(Leaf {
                range: node.range.clone(),
                tokens: node.tokens,
                heading: node.heading,
                whole: node.whole,
                block: node.block,
            });
        } else {
            node.children.iter().for_each(|c| self.add(c));
        }
    }

    fn place(&mut self, node: &Node) {
        let room = self.budget.saturating_sub(self.cur_tokens);
        if node.tokens <= room {
            return self.add(node);
        }
        if self.has_content() {
            // A section that does not fit starts a new chunk when this one is already well filled; a block that
            // fits a chunk of its own is not split.
            let well_filled = node.heading && self.cur_tokens * 10 >= self.budget * 6;
            if well_filled || node.tokens <= self.budget || node.children.is_empty() {
                self.close();
                return self.place(node);
            }
        }
        if !node.children.is_empty() {
            return node.children.iter().for_each(|c| self.place(c));
        }
        // One indivisible piece bigger than what is left: it goes alone (after any headings, which go alone).
        if !self.cur.is_empty() {
            self.close_all();
        }
        self.add(node);
    }
}

#[cfg(test)]
mod tests;
