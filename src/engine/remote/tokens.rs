//! A prompt's size in tokens on a remote server whose reply did not say it (no usage chunk), and
//! the new size of a conversation cut down by drop-oldest, for the context gauge.
//!
//! The ways, probed on the first count of a connection and remembered for the rest of it:
//! llama-server renders the chat template (`POST /apply-template`) and tokenizes the result
//! (`POST /tokenize`), which is exactly what a chat request costs; vLLM (`POST /tokenize`) and
//! SGLang (`POST /v1/tokenize`) count messages with their own template. Both are exact. A server
//! with neither is counted here: with the `tokenizer.json` named in `remote.tokenizer` (the
//! messages' text plus a few tokens per message for the template's markers), else by
//! characters; both are estimates, and [`Count::exact`] says which kind a count is.
//!
//! Every reply is read leniently: a shape that is not the one expected means the server does not
//! have that way, never a panic.

use super::client::Client;
use crate::engine::protocol::EngineError;
use crate::message::Message;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The longest wait for a count: it runs before the reply's figures are shown, so a server that
/// hangs on it must not hold them for the whole idle timeout.
const COUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// Tokens a chat template adds per message around its text (role name, start and end markers,
/// line break), for counts made here. ChatML-style templates add 4 or 5.
const PER_MESSAGE: usize = 4;

/// Tokens of the assistant header a chat template ends with (the generation prompt).
const GENERATION_PROMPT: usize = 3;

/// What is counted: a chat conversation (rendered by the server's chat template) or raw text.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    Chat(&'a [Message]),
    Text(&'a str),
}

/// A prompt's size in tokens; `exact` = the server counted it with the model's own tokenizer
/// and chat template, else it is an estimate made here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub tokens: usize,
    pub exact: bool,
}

/// How a connected server counts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Way {
    /// llama-server: `/apply-template` then `/tokenize`.
    Llama,
    /// vLLM or SGLang: a `/tokenize` at this URL that takes messages and answers `count`.
    Messages(String),
    /// Nothing on the server: count here.
    Here,
}

/// Counts prompts for one connection. The way is probed on the first count and kept (a probe
/// costs up to three round trips, a count one or two). Shared by the request threads of a
/// `StructuredMany` task.
#[derive(Debug)]
pub struct Counter {
    way: Mutex<Option<Way>>,
    tokenizer: Option<tokenizers::Tokenizer>,
}

impl Counter {
    /// A counter that counts here with `tokenizer` when the server cannot count.
    pub fn new(tokenizer: Option<tokenizers::Tokenizer>) -> Counter {
        Counter { way: Mutex::new(None), tokenizer }
    }

    /// Reads a Hugging Face `tokenizer.json` (the `remote.tokenizer` key).
    ///
    /// Errors: one line naming the key and the file when it cannot be read or is not a
    /// tokenizer.
    pub fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer, EngineError> {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| {
            EngineError::Remote(format!(
                "remote.tokenizer: cannot read {shown} ({e}); name a tokenizer.json that exists, or set it to \"\""
            ))
        })?;
        tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            let why = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            let why: String = why.chars().take(160).collect();
            EngineError::Remote(format!(
                "remote.tokenizer: {shown} is not a Hugging Face tokenizer.json ({why}); name the model's tokenizer.json, or set it to \"\""
            ))
        })
    }

    /// `prompt`'s size as `model` on the server would count it. Never fails: when the server's
    /// way fails this time, the count is made here (an estimate).
    pub fn count(&self, client: &Client, model: &str, prompt: Prompt<'_>) -> Count {
        let known = self.way.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let way = match known {
            Some(w) => w,
            None => {
                let (way, count) = probe(client, model, prompt);
                *self.way.lock().unwrap_or_else(|e| e.into_inner()) = Some(way);
                if let Some(tokens) = count {
                    return Count { tokens, exact: true };
                }
                return self.here(prompt);
            }
        };
        let counted = match &way {
            Way::Llama => llama_count(client, prompt),
            Way::Messages(url) => messages_count(client, url, model, prompt),
            Way::Here => None,
        };
        match counted {
            Some(tokens) => Count { tokens, exact: true },
            None => self.here(prompt),
        }
    }

    /// An estimate made here without asking the server (for a cancelled reply, which should end
    /// at once): with the tokenizer when one is loaded, else by characters.
    pub fn here(&self, prompt: Prompt<'_>) -> Count {
        let text = |s: &str| match &self.tokenizer {
            Some(t) => t.encode(s, false).map(|e| e.len()).unwrap_or_else(|_| estimate_chars(s)),
            None => estimate_chars(s),
        };
        let tokens = match prompt {
            Prompt::Chat(messages) => {
                messages.iter().map(|m| text(&m.content) + PER_MESSAGE).sum::<usize>() + GENERATION_PROMPT
            }
            Prompt::Text(s) => text(s),
        };
        Count { tokens, exact: false }
    }
}

/// Tries llama-server's way, then vLLM's, then SGLang's; the way found and, when it is the
/// server's, this prompt's count.
fn probe(client: &Client, model: &str, prompt: Prompt<'_>) -> (Way, Option<usize>) {
    if let Some(n) = llama_count(client, prompt) {
        return (Way::Llama, Some(n));
    }
    let root = &client.endpoint.root;
    for url in [format!("{root}/tokenize"), client.endpoint.api("tokenize")] {
        if let Some(n) = messages_count(client, &url, model, prompt) {
            return (Way::Messages(url), Some(n));
        }
    }
    (Way::Here, None)
}

fn post(client: &Client, url: &str, body: &Value) -> Option<Value> {
    let text = client.post_within(url, body, COUNT_TIMEOUT).ok()?;
    serde_json::from_str(&text).ok()
}

fn chat_messages(messages: &[Message]) -> Value {
    messages.iter().map(|m| json!({ "role": m.role.as_str(), "content": m.content })).collect()
}

/// llama-server: the chat template rendered by the server (its default system prompt
/// included), then tokenized as a chat request is (special tokens added and parsed).
fn llama_count(client: &Client, prompt: Prompt<'_>) -> Option<usize> {
    let root = &client.endpoint.root;
    let rendered;
    let text = match prompt {
        Prompt::Chat(messages) => {
            let reply =
                post(client, &format!("{root}/apply-template"), &json!({ "messages": chat_messages(messages) }))?;
            rendered = rendered_prompt(&reply)?;
            rendered.as_str()
        }
        Prompt::Text(s) => s,
    };
    let body = json!({ "content": text, "add_special": true, "parse_special": true });
    token_list_len(&post(client, &format!("{root}/tokenize"), &body)?)
}

/// `{"prompt": "..."}` from `/apply-template`.
fn rendered_prompt(reply: &Value) -> Option<String> {
    reply.get("prompt")?.as_str().map(str::to_string)
}

/// `{"tokens": [...]}` from llama-server's `/tokenize`: the list's length (its items may be ids
/// or `{id, piece}` objects).
fn token_list_len(reply: &Value) -> Option<usize> {
    reply.get("tokens")?.as_array().map(Vec::len)
}

/// vLLM's and SGLang's `/tokenize`: messages (with the generation prompt, as a chat request
/// renders them) or a raw prompt.
fn messages_count(client: &Client, url: &str, model: &str, prompt: Prompt<'_>) -> Option<usize> {
    let body = match prompt {
        Prompt::Chat(messages) => {
            json!({ "model": model, "messages": chat_messages(messages), "add_generation_prompt": true })
        }
        Prompt::Text(s) => json!({ "model": model, "prompt": s }),
    };
    count_field(&post(client, url, &body)?)
}

/// `{"count": N, ...}`. Only `count` is trusted: an older llama-server answers messages with
/// `{"tokens": []}`, which is not a count of them.
fn count_field(reply: &Value) -> Option<usize> {
    let n = reply.get("count")?.as_u64()?;
    usize::try_from(n).ok()
}

/// Tokens in `s` by characters: one per CJK character (Han, kana, Hangul), one per four of the
/// rest, rounded up.
pub fn estimate_chars(s: &str) -> usize {
    let (mut cjk, mut other) = (0usize, 0usize);
    for c in s.chars() {
        if is_cjk(c) {
            cjk += 1;
        } else {
            other += 1;
        }
    }
    cjk + other.div_ceil(4)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF // Hiragana, Katakana
        | 0x3400..=0x4DBF // CJK Extension A
        | 0x4E00..=0x9FFF // CJK Unified Ideographs
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // CJK Compatibility Ideographs
        | 0x20000..=0x2FFFF // CJK Extensions B and on
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_leniently_and_only_in_the_expected_shape() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            rendered_prompt(&v(r#"{"prompt":"<|im_start|>user\nhi"}"#)).as_deref(),
            Some("<|im_start|>user\nhi")
        );
        assert_eq!(token_list_len(&v(r#"{"tokens":[1,2,3]}"#)), Some(3));
        assert_eq!(token_list_len(&v(r#"{"tokens":[{"id":1,"piece":"a"}]}"#)), Some(1));
        assert_eq!(count_field(&v(r#"{"count":17,"max_model_len":4096,"tokens":[1]}"#)), Some(17));
        for hostile in [
            "null",
            "[]",
            "7",
            r#""prompt""#,
            r#"{"prompt":7}"#,
            r#"{"prompt":null}"#,
            r#"{"tokens":"1,2"}"#,
            r#"{"tokens":{"a":1}}"#,
            r#"{"count":-1}"#,
            r#"{"count":1.5}"#,
            r#"{"count":"9"}"#,
            r#"{"count":1e300}"#,
            r#"{"error":{"message":"no"}}"#,
        ] {
            let h = v(hostile);
            assert_eq!(rendered_prompt(&h), None, "{hostile}");
            assert_eq!(token_list_len(&h), None, "{hostile}");
            assert_eq!(count_field(&h), None, "{hostile}");
        }
        // An older llama-server's answer to messages is no count.
        assert_eq!(count_field(&v(r#"{"tokens":[]}"#)), None);
    }

    #[test]
    fn characters_estimate_cjk_per_character_and_the_rest_per_four() {
        assert_eq!(estimate_chars(""), 0);
        assert_eq!(estimate_chars("abcd"), 1);
        assert_eq!(estimate_chars("abcde"), 2);
        assert_eq!(estimate_chars("你好世界"), 4);
        assert_eq!(estimate_chars("こんにちは"), 5);
        assert_eq!(estimate_chars("한국어"), 3);
        assert_eq!(estimate_chars("hi 你好"), 3);
    }

    /// A tokenizer.json with a word-level model: one token per word or punctuation run.
    const WORD_LEVEL: &str = r#"{
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2}, "unk_token": "[UNK]"}
    }"#;

    #[test]
    fn a_tokenizer_json_counts_words_where_characters_would_guess() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, WORD_LEVEL).unwrap();
        let counter = Counter::new(Some(Counter::load_tokenizer(&path).unwrap()));
        // Six words and a comma: 7 tokens; by characters (46 of them) it would be 12.
        let text = "hello world, hello extraordinarily world hello";
        assert_eq!(counter.here(Prompt::Text(text)), Count { tokens: 7, exact: false });
        assert_eq!(Counter::new(None).here(Prompt::Text(text)).tokens, 12);
        let messages = [Message::user(text)];
        assert_eq!(counter.here(Prompt::Chat(&messages)).tokens, 7 + PER_MESSAGE + GENERATION_PROMPT);
    }

    #[test]
    fn a_missing_or_bad_tokenizer_json_is_one_line_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\n\"model\": {\"type\": \"Nope\"}\n}").unwrap();
        let half = dir.path().join("half.json");
        std::fs::write(&half, &WORD_LEVEL[..40]).unwrap();
        for path in [dir.path().join("missing.json"), bad, half, dir.path().to_path_buf()] {
            let e = Counter::load_tokenizer(&path).unwrap_err().to_string();
            assert!(e.starts_with("remote.tokenizer: ") && !e.contains('\n'), "{e}");
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
    }

    #[test]
    fn a_chat_counted_here_adds_the_template_markers() {
        let counter = Counter::new(None);
        let messages = [Message::user("abcdefgh"), Message::assistant("你好")];
        let c = counter.here(Prompt::Chat(&messages));
        assert_eq!(c, Count { tokens: 2 + 2 + 2 * PER_MESSAGE + GENERATION_PROMPT, exact: false });
        assert_eq!(counter.here(Prompt::Text("abcdefgh")), Count { tokens: 2, exact: false });
    }
}
