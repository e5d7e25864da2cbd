//! Long inputs (a whole review, an article): split at sentence ends into chunks the classifier
//! reads whole, so a verdict in the middle of a text counts; the chunks' label probabilities are
//! averaged. Measured on IMDb reviews this beats keeping only the head and tail (README, Classify).
//! Splitting happens before tokenising, so chunk sizes are estimated from characters.

/// Chunks per line at most: beyond this the middle of the text is dropped (first and last halves
/// kept), which bounds the cost of a pathological 1 MB line.
pub const MAX_CHUNKS: usize = 12;

/// How to treat a line longer than the token budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LongInput {
    /// Split at sentence ends into chunks and average their probabilities.
    #[default]
    Chunk,
    /// Keep the first and last halves of the token budget.
    Truncate,
}

fn is_wide(c: char) -> bool {
    matches!(c as u32, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x3FFFD)
}

/// Rough token count: a CJK character is about one token, other text about four bytes per token.
pub fn estimate_tokens(s: &str) -> usize {
    let (wide, other) = s.chars().fold((0, 0), |(w, o), c| if is_wide(c) { (w + 1, o) } else { (w, o + c.len_utf8()) });
    wide + other.div_ceil(4)
}

/// Sentences: split after . ! ? … (followed by whitespace), after CJK full stops, at line breaks
/// and at HTML `<br>` tags (common in scraped reviews).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        // (where this sentence ends, where the next one starts)
        let cut = match c {
            '。' | '！' | '？' | '；' | '\n' => Some((i + c.len_utf8(), i + c.len_utf8())),
            '.' | '!' | '?' | '…' if next.is_none_or(char::is_whitespace) => {
                Some((i + c.len_utf8(), i + c.len_utf8()))
            }
            '<' => ["<br />", "<br/>", "<br>"].iter().find(|t| text[i..].starts_with(**t)).map(|t| (i, i + t.len())),
            _ => None,
        };
        if let Some((end, next_start)) = cut {
            out.push(&text[start..end]);
            start = next_start;
            while chars.peek().is_some_and(|&(j, _)| j < next_start) {
                chars.next();
            }
        }
    }
    out.push(&text[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Cuts one over-long sentence at whitespace (or anywhere, for unspaced CJK) into pieces of at most
/// about `budget` estimated tokens; a run with no break at all is cut at twice the budget. The
/// count is kept incrementally: a 1 MB line without spaces must stay linear.
fn hard_split(s: &str, budget: usize, out: &mut Vec<String>) {
    let mut cur = String::new();
    let (mut wide, mut other) = (0usize, 0usize);
    for c in s.chars() {
        let tokens = wide + other.div_ceil(4);
        let at_break = is_wide(c) || cur.ends_with(char::is_whitespace);
        if !cur.is_empty() && tokens >= budget && (at_break || tokens >= 2 * budget) {
            out.push(std::mem::take(&mut cur).trim().to_string());
            (wide, other) = (0, 0);
        }
        cur.push(c);
        if is_wide(c) {
            wide += 1;
        } else {
            other += c.len_utf8();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
}

/// The text as chunks of at most about `budget` tokens (one chunk when it fits `limit`).
pub fn split(text: &str, limit: usize, budget: usize) -> Vec<String> {
    let budget = budget.max(8);
    if estimate_tokens(text) <= limit {
        return vec![text.to_string()];
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut cur = String::new();
    for s in sentences(text) {
        let n = estimate_tokens(s);
        if !cur.is_empty() && estimate_tokens(&cur) + n > budget {
            chunks.push(std::mem::take(&mut cur));
        }
        if n > budget {
            hard_split(s, budget, &mut chunks);
            continue;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(s);
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    if chunks.len() > MAX_CHUNKS {
        let tail = chunks.split_off(chunks.len() - MAX_CHUNKS / 2);
        chunks.truncate(MAX_CHUNKS - tail.len());
        chunks.extend(tail);
    }
    if chunks.is_empty() {
        chunks.push(text.to_string()); // only whitespace and tags: let the engine report it
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_chunk_untouched() {
        assert_eq!(split("  Great phone.  ", 256, 128), vec!["  Great phone.  "]);
    }

    #[test]
    fn splits_at_sentence_ends_within_budget() {
        let s = "The plot is thin. ".repeat(60) + "But the ending is wonderful!";
        let chunks = split(&s, 64, 32);
        assert!(chunks.len() > 2);
        for c in &chunks {
            assert!(estimate_tokens(c) <= 32, "{c:?}");
            assert!(c.ends_with('.') || c.ends_with('!'), "{c:?}");
        }
        assert_eq!(chunks.last().unwrap().split(". ").last().unwrap(), "But the ending is wonderful!");
    }

    #[test]
    fn html_breaks_and_cjk_stops_split() {
        assert_eq!(sentences("Bad.<br /><br />Really bad"), vec!["Bad.", "Really bad"]);
        assert_eq!(sentences("质量很差。不推荐！"), vec!["质量很差。", "不推荐！"]);
        assert_eq!(sentences("v1.2 is out"), vec!["v1.2 is out"]);
    }

    #[test]
    fn unspaced_cjk_and_huge_lines_are_bounded() {
        let zh = "这个手机的电池非常耐用".repeat(100);
        let chunks = split(&zh, 64, 32);
        assert_eq!(chunks.len(), MAX_CHUNKS);
        assert!(chunks.iter().all(|c| estimate_tokens(c) <= 33 && !c.is_empty()));
        let huge = "word ".repeat(300_000);
        let chunks = split(&huge, 256, 128);
        assert_eq!(chunks.len(), MAX_CHUNKS);
        assert!(chunks.iter().all(|c| c.is_ascii() && c.len() < 1024));
        // No break anywhere: cut at twice the budget (this once took quadratic time).
        let chunks = split(&"a".repeat(1 << 20), 256, 128);
        assert_eq!(chunks.len(), MAX_CHUNKS);
        assert!(chunks.iter().all(|c| c.len() <= 4 * 256), "{}", chunks[0].len());
    }

    #[test]
    fn estimates_cjk_per_char() {
        assert_eq!(estimate_tokens("好评"), 2);
        assert_eq!(estimate_tokens("good"), 1);
        assert_eq!(estimate_tokens(""), 0);
    }
}
