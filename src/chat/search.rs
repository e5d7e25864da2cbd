//! Full-text search over every stored message (`moat history search`, `/search`): the FTS5
//! trigram index of the session database ([`super::db`]) finds the messages, and a snippet of
//! each is cut around the words that matched.
//!
//! A query is words (or `"quoted phrases"`) that must all occur, in any order, case-insensitively
//! (ASCII). The trigram index needs 3 characters, so words of 1–2 characters (`AI`, `股市`) are
//! matched by a scan of the messages the other words found, or of all messages when no word is
//! long enough; CJK text needs no spaces: `营销策略` finds `上海的市场营销策略`.

use super::store::{role_from, role_name, SessionError, SessionStore};
use super::Role;
use rusqlite::types::Value;

/// What to look for; `text` is the query, the rest narrow it.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    pub role: Option<Role>,
    /// Part of the model's name (case-insensitive): the model that wrote a reply, or the
    /// session's model for other messages.
    pub model: Option<String>,
    /// Only messages written at or after this local time (`YYYY-MM-DD[ HH:MM:SS]`).
    pub since: Option<String>,
    /// Only this session.
    pub session: Option<String>,
    /// At most this many hits (newest first).
    pub limit: usize,
}

/// A message that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// Its database id ([`SessionStore::open_message`] opens it).
    pub id: i64,
    pub session: String,
    pub role: Role,
    /// `YYYY-MM-DD HH:MM:SS`, local time.
    pub created: String,
    pub model: String,
    /// Up to [`SNIPPET_CHARS`] characters around the first match, on one line (runs of white
    /// space become one space), in pieces: `true` marks text that matched.
    pub snippet: Vec<(String, bool)>,
    /// The whole message.
    pub content: String,
}

/// How long a snippet is, in characters.
pub const SNIPPET_CHARS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("nothing to search for: give one or more words")]
    Empty,
    #[error("{0}")]
    Store(#[from] SessionError),
}

/// A query's words: `"quoted phrases"` stay whole, everything else splits on white space.
fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, part) in text.split('"').enumerate() {
        if i % 2 == 1 {
            let phrase = part.trim();
            if !phrase.is_empty() {
                out.push(phrase.to_string());
            }
        } else {
            out.extend(part.split_whitespace().map(str::to_string));
        }
    }
    out
}

/// `%`, `_` and `\` match themselves in a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(term: &str) -> String {
    let mut p = String::from("%");
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl SessionStore {
    /// The messages that match `q`, newest first. Errors: [`SearchError::Empty`] for a query with
    /// no words, database errors.
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>, SearchError> {
        // Control characters and escape sequences are never in stored text's words.
        let words = terms(&crate::render::sanitize(&q.text));
        if words.is_empty() {
            return Err(SearchError::Empty);
        }
        let (long, short): (Vec<&String>, Vec<&String>) = words.iter().partition(|w| w.chars().count() >= 3);
        let mut args: Vec<Value> = Vec::new();
        let mut filters = Vec::new();
        let from = if long.is_empty() {
            "messages m"
        } else {
            let phrases: Vec<String> = long.iter().map(|w| format!("\"{}\"", w.replace('"', "\"\""))).collect();
            args.push(Value::Text(phrases.join(" ")));
            filters.push(format!("messages_fts MATCH ?{}", args.len()));
            "messages_fts f JOIN messages m ON m.id = f.rowid"
        };
        for w in &short {
            args.push(Value::Text(like_pattern(w)));
            filters.push(format!("m.content LIKE ?{} ESCAPE '\\'", args.len()));
        }
        if let Some(role) = q.role {
            args.push(Value::Text(role_name(role).into()));
            filters.push(format!("m.role = ?{}", args.len()));
        }
        if let Some(model) = &q.model {
            args.push(Value::Text(model.to_lowercase()));
            filters.push(format!(
                "instr(lower(coalesce(json_extract(m.stats, '$.model'), c.model)), ?{}) > 0",
                args.len()
            ));
        }
        if let Some(since) = &q.since {
            args.push(Value::Text(since.clone()));
            filters.push(format!("m.created >= ?{}", args.len()));
        }
        if let Some(session) = &q.session {
            args.push(Value::Text(session.clone()));
            filters.push(format!("c.name = ?{}", args.len()));
        }
        args.push(Value::Integer(q.limit.min(i64::MAX as usize) as i64));
        // The FTS table's rowid order is the index's own, so newest-first stops after `limit` hits.
        let order = if long.is_empty() { "m.id" } else { "f.rowid" };
        let sql = format!(
            "SELECT m.id, c.name, m.role, m.created, coalesce(json_extract(m.stats, '$.model'), c.model), m.content
             FROM {from} JOIN conversations c ON c.id = m.conversation_id
             WHERE {} ORDER BY {order} DESC LIMIT ?{}",
            filters.join(" AND "),
            args.len()
        );
        let mut st = self.conn().prepare_cached(&sql).map_err(|e| self.db_error(e))?;
        let rows = st
            .query_map(rusqlite::params_from_iter(args), |r| {
                let content: String = r.get(5)?;
                Ok(SearchHit {
                    id: r.get(0)?,
                    session: r.get(1)?,
                    role: role_from(&r.get::<_, String>(2)?),
                    created: r.get(3)?,
                    model: r.get(4)?,
                    snippet: snippet(&content, &words, SNIPPET_CHARS),
                    content,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
        rows.map_err(|e| SearchError::Store(self.db_error(e)))
    }
}

/// ASCII case folding only, as the trigram index and `LIKE` fold: one char in, one char out, so
/// positions in the folded text are positions in the original.
fn fold(c: char) -> char {
    c.to_ascii_lowercase()
}

/// Up to `width` characters of `content` around the first occurrence of any of `words`, white
/// space runs made one space, in pieces with the occurrences marked. Escape sequences in the
/// stored text go whole ([`crate::render::sanitize`]), so none leaves residue such as `[31m`.
pub fn snippet(content: &str, words: &[String], width: usize) -> Vec<(String, bool)> {
    let content = crate::render::sanitize(content);
    let mut text: Vec<char> = Vec::with_capacity(content.len());
    for c in content.chars() {
        let c = if c.is_whitespace() || c.is_control() { ' ' } else { c };
        if c == ' ' && text.last().is_none_or(|&p| p == ' ') {
            continue;
        }
        text.push(c);
    }
    while text.last() == Some(&' ') {
        text.pop();
    }
    let folded: Vec<char> = text.iter().map(|&c| fold(c)).collect();
    let mut marks = vec![false; text.len()];
    for w in words {
        let w: Vec<char> = w.chars().map(fold).filter(|c| !c.is_whitespace()).collect();
        if w.is_empty() || w.len() > folded.len() {
            continue;
        }
        for start in 0..=folded.len() - w.len() {
            if folded[start..start + w.len()] == w[..] {
                marks[start..start + w.len()].iter_mut().for_each(|m| *m = true);
            }
        }
    }
    let first = marks.iter().position(|&m| m).unwrap_or(0);
    let start = first.saturating_sub(width / 3);
    let end = (start + width).min(text.len());
    let start = end.saturating_sub(width).min(start);
    let mut out: Vec<(String, bool)> = Vec::new();
    if start > 0 {
        out.push(("…".into(), false));
    }
    for i in start..end {
        match out.last_mut() {
            Some((s, m)) if *m == marks[i] && !(s == "…" && !*m && i == start) => s.push(text[i]),
            _ => out.push((text[i].to_string(), marks[i])),
        }
    }
    if end < text.len() {
        match out.last_mut() {
            Some((s, false)) => s.push('…'),
            _ => out.push(("…".into(), false)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::store::{SavedSession, SyncPoint, VERSION};
    use crate::chat::Message;
    use crate::config::SamplingConfig;

    fn store_with(messages: &[(&str, Message)]) -> (tempfile::TempDir, SessionStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        for (name, m) in messages {
            let mut s = match store.load(name) {
                Ok(s) => s,
                Err(_) => SavedSession {
                    version: VERSION,
                    name: name.to_string(),
                    model: format!("model-of-{name}"),
                    sampling: SamplingConfig::default(),
                    messages: Vec::new(),
                    created: "2026-11-01 10:00:00".into(),
                    updated: "2026-11-01 10:00:00".into(),
                    sync: SyncPoint::default(),
                },
            };
            let mut sync = std::mem::take(&mut s.sync);
            s.messages.push(m.clone());
            store.save(&s, &mut sync, None).unwrap();
        }
        (dir, store)
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery { text: text.into(), limit: 10, ..SearchQuery::default() }
    }

    fn found(store: &SessionStore, q: &SearchQuery) -> Vec<String> {
        store.search(q).unwrap().into_iter().map(|h| h.content).collect()
    }

    #[test]
    fn words_in_any_order_english_and_chinese_short_and_long() {
        let (_dir, store) = store_with(&[
            ("a", Message::user("Tell me about the Lighthouse keeper")),
            ("a", Message::assistant("上海的市场营销策略很有意思")),
            ("b", Message::user("the keeper of bees")),
            ("b", Message::assistant("AI 股市 outlook: bullish")),
        ]);
        assert_eq!(found(&store, &query("lighthouse")), ["Tell me about the Lighthouse keeper"]);
        assert_eq!(found(&store, &query("keeper lighthouse")), ["Tell me about the Lighthouse keeper"]);
        assert_eq!(found(&store, &query("keeper")), ["the keeper of bees", "Tell me about the Lighthouse keeper"]);
        assert_eq!(found(&store, &query("营销策略")), ["上海的市场营销策略很有意思"]);
        // Shorter than a trigram: a scan finds them, alone or with a longer word.
        assert_eq!(found(&store, &query("股市")), ["AI 股市 outlook: bullish"]);
        assert_eq!(found(&store, &query("ai bullish")), ["AI 股市 outlook: bullish"]);
        assert_eq!(found(&store, &query("\"keeper of\"")), ["the keeper of bees"]);
        assert!(found(&store, &query("submarine")).is_empty());
        assert!(found(&store, &query("100%")).is_empty(), "LIKE wildcards are text");
        assert!(store.search(&query("say \"hi")).is_ok(), "an unclosed quote is text");
        assert!(matches!(store.search(&query("  \" \" ")), Err(SearchError::Empty)));
        assert!(matches!(store.search(&query("\x1b]0;PWN\x07\x1b[2J")), Err(SearchError::Empty)));
    }

    #[test]
    fn filters_narrow_by_role_model_time_and_session() {
        let (_dir, store) = store_with(&[
            ("a", Message::user("market outlook please")),
            ("a", Message::assistant("the market outlook is mixed")),
            ("b", Message::user("market news")),
        ]);
        let q = SearchQuery { role: Some(Role::Assistant), ..query("market") };
        assert_eq!(found(&store, &q), ["the market outlook is mixed"]);
        let q = SearchQuery { model: Some("OF-B".into()), ..query("market") };
        assert_eq!(found(&store, &q), ["market news"]);
        let q = SearchQuery { session: Some("a".into()), ..query("market") };
        assert_eq!(found(&store, &q).len(), 2);
        let q = SearchQuery { since: Some("2999-01-01".into()), ..query("market") };
        assert!(found(&store, &q).is_empty());
        let q = SearchQuery { since: Some("2000-01-01".into()), limit: 2, ..query("market") };
        assert_eq!(found(&store, &q), ["market news", "the market outlook is mixed"]);
        let hit = &store.search(&query("news")).unwrap()[0];
        assert_eq!((hit.session.as_str(), hit.role, hit.model.as_str()), ("b", Role::User, "model-of-b"));
    }

    fn shown(pieces: &[(String, bool)]) -> String {
        pieces.iter().map(|(s, m)| if *m { format!("[{s}]") } else { s.clone() }).collect()
    }

    #[test]
    fn snippets_mark_matches_on_one_line_around_the_first() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            shown(&snippet("The Keeper\r\n\tkept  keeping", &words(&["keep"]), 100)),
            "The [Keep]er kept [keep]ing"
        );
        let long = format!("{} needle {}", "hay ".repeat(50), "straw ".repeat(50));
        let s = shown(&snippet(&long, &words(&["needle"]), 40));
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("[needle]"), "{s}");
        assert_eq!(s.chars().count(), 40 + 2 + 2, "{s}");
        assert_eq!(shown(&snippet("上海的市场营销策略", &words(&["营销"]), 100)), "上海的市场[营销]策略");
        assert_eq!(shown(&snippet("no match \x1b[31m here", &words(&["zzz"]), 100)), "no match here");
        assert_eq!(shown(&snippet("a \x1b]0;title\x07b\u{202e}c", &words(&["b"]), 100)), "a [b]c");
        assert!(snippet("", &words(&["x"]), 10).is_empty());
    }
}

/// A benchmark, not a check: it fills a database with 100,000 messages (English and Chinese, in
/// 1,000 conversations), then times queries of each kind and prints the median and p99 per kind
/// and the file size per 1,000 messages. It asserts no timing, so CI skips it; run it with
/// `cargo test --release --lib search_bench -- --ignored --nocapture` (or `bench/sessions_search.sh`).
#[cfg(test)]
mod bench {
    use super::*;
    use crate::chat::db;
    use rusqlite::params;
    use std::time::{Duration, Instant};

    const EN: &[&str] = &[
        "market",
        "outlook",
        "earnings",
        "guidance",
        "revenue",
        "inflation",
        "rates",
        "bond",
        "yield",
        "equity",
        "lighthouse",
        "keeper",
        "storm",
        "harbor",
        "supply",
        "chain",
        "demand",
        "pricing",
        "margin",
        "growth",
        "the",
        "a",
        "of",
        "and",
        "to",
        "in",
        "is",
        "for",
        "on",
        "with",
        "analyst",
        "quarter",
        "forecast",
        "volatility",
        "dividend",
        "buyback",
        "merger",
        "tariff",
        "export",
        "consumer",
    ];
    const ZH: &[&str] = &[
        "市场",
        "营销",
        "策略",
        "股市",
        "上涨",
        "下跌",
        "利率",
        "通胀",
        "消费者",
        "供应链",
        "季度",
        "收入",
        "利润",
        "分析师",
        "预测",
        "风险",
        "投资",
        "银行",
        "政策",
        "出口",
        "的",
        "了",
        "和",
        "在",
        "是",
        "我们",
        "他们",
    ];

    fn fill(store: &SessionStore, n: usize) {
        let mut rng = crate::rng::Rng::new(7);
        let mut pick = |words: &[&str]| words[rng.below(words.len() as u64) as usize].to_string();
        db::write_txn(store.conn(), |c| {
            for conv in 0..n / 100 {
                c.execute(
                    "INSERT INTO conversations (name, model, sampling, created, updated) VALUES (?1, ?2, '{}', ?3, ?3)",
                    params![format!("c{conv}"), if conv % 2 == 0 { "smollm2-135m" } else { "gemma-3-270m" }, "2026-11-01 10:00:00"],
                )?;
                let id = c.last_insert_rowid();
                let mut parent: Option<i64> = None;
                for i in 0..100 {
                    let len = 8 + (i * 7) % 60;
                    // A third of the conversations are in Chinese (no spaces), the rest English
                    // with a Chinese word now and then.
                    let chinese = conv % 3 == 0;
                    let text: Vec<String> =
                        (0..len).map(|k| if chinese || k % 11 == 5 { pick(ZH) } else { pick(EN) }).collect();
                    let joined = if chinese { text.concat() } else { text.join(" ") };
                    let role = if i % 2 == 0 { "user" } else { "assistant" };
                    let created = format!("2026-{:02}-{:02} 10:00:00", 1 + conv % 11, 1 + i % 28);
                    c.execute(
                        "INSERT INTO messages (conversation_id, parent_id, role, content, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, parent, role, joined, created],
                    )?;
                    parent = Some(c.last_insert_rowid());
                }
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    #[ignore = "benchmark: prints timings, asserts none"]
    fn search_bench() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        let n = 100_000;
        let t = Instant::now();
        fill(&store, n);
        store.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let bytes = std::fs::metadata(store.path()).unwrap().len();
        println!(
            "{n} messages written in {:.1?}; database {:.1} MB = {:.0} KB per 1,000 messages",
            t.elapsed(),
            bytes as f64 / 1e6,
            bytes as f64 / 1e3 / (n as f64 / 1000.0)
        );
        let kinds: &[(&str, SearchQuery)] = &[
            ("rare English word", SearchQuery { text: "buyback".into(), ..Default::default() }),
            ("two English words", SearchQuery { text: "lighthouse keeper".into(), ..Default::default() }),
            ("common English word", SearchQuery { text: "market".into(), ..Default::default() }),
            ("Chinese, 4 chars", SearchQuery { text: "营销策略".into(), ..Default::default() }),
            ("Chinese, 2 chars (scan)", SearchQuery { text: "股市".into(), ..Default::default() }),
            (
                "English + role + since",
                SearchQuery {
                    text: "dividend".into(),
                    role: Some(Role::Assistant),
                    since: Some("2026-10-01".into()),
                    ..Default::default()
                },
            ),
            ("no hit", SearchQuery { text: "submarine".into(), ..Default::default() }),
            ("no hit, 2 chars (scan)", SearchQuery { text: "zq".into(), ..Default::default() }),
        ];
        for (what, q) in kinds {
            let q = SearchQuery { limit: 20, ..q.clone() };
            let mut times: Vec<Duration> = Vec::new();
            let mut hits = 0;
            for _ in 0..50 {
                let t = Instant::now();
                hits = store.search(&q).unwrap().len();
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "{what:<26} {hits:>2} hits  median {:>9.2?}  p99 {:>9.2?}",
                times[times.len() / 2],
                times[times.len() * 99 / 100]
            );
        }
    }
}
