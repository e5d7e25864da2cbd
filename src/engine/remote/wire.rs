//! The JSON that OpenAI-compatible servers send, read leniently: "compatible" servers omit fields,
//! add their own, send `null` where others send a value, or a number as a string. Every field is
//! optional, unknown fields are ignored, and a field of an unexpected type reads as absent instead
//! of failing the whole chunk.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A field that reads as its default when it is missing, `null` or of another type.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(T::deserialize(v).unwrap_or_default())
}

/// A count that may come as a number (possibly fractional) or a numeric string.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// A measurement that may come as a number or a numeric string.
fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite()))
}

/// One streamed chunk of `/v1/chat/completions` or `/v1/completions` (or a whole non-streamed
/// reply, whose choices carry `message` instead of `delta`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Chunk {
    #[serde(deserialize_with = "lenient")]
    pub choices: Vec<Choice>,
    #[serde(deserialize_with = "lenient")]
    pub usage: Option<Usage>,
    /// llama-server's own measurements of the request.
    #[serde(deserialize_with = "lenient")]
    pub timings: Option<Timings>,
    /// A mid-stream failure (`{"error": {...}}` or `{"error": "..."}`).
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Choice {
    #[serde(deserialize_with = "count")]
    pub index: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub delta: Option<Delta>,
    /// A non-streamed chat reply.
    #[serde(deserialize_with = "lenient")]
    pub message: Option<Delta>,
    /// `/v1/completions` text.
    #[serde(deserialize_with = "lenient")]
    pub text: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub finish_reason: Option<String>,
}

impl Choice {
    /// The reply text this choice adds.
    pub fn content(&self) -> Option<&str> {
        let d = self.delta.as_ref().or(self.message.as_ref());
        d.and_then(|d| d.content.as_deref()).or(self.text.as_deref())
    }

    /// Reasoning text ("thinking") this choice adds: `reasoning_content` (llama-server, DeepSeek,
    /// SGLang) or `reasoning` (vLLM, ollama).
    pub fn reasoning(&self) -> Option<&str> {
        let d = self.delta.as_ref().or(self.message.as_ref())?;
        d.reasoning_content.as_deref().or(d.reasoning.as_deref())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Delta {
    #[serde(deserialize_with = "lenient")]
    pub content: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub reasoning_content: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub reasoning: Option<String>,
}

/// Token counts (`stream_options.include_usage`, or the last chunk on servers that always send it).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Usage {
    #[serde(deserialize_with = "count")]
    pub prompt_tokens: Option<u64>,
    #[serde(deserialize_with = "count")]
    pub completion_tokens: Option<u64>,
    #[serde(deserialize_with = "lenient")]
    pub prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct PromptDetails {
    #[serde(deserialize_with = "count")]
    pub cached_tokens: Option<u64>,
}

/// llama-server's `timings`: prompt tokens taken from its cache (`cache_n`) and decoded
/// (`prompt_n`), and its own milliseconds and rates.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Timings {
    #[serde(deserialize_with = "count")]
    pub cache_n: Option<u64>,
    #[serde(deserialize_with = "count")]
    pub prompt_n: Option<u64>,
    #[serde(deserialize_with = "float")]
    pub prompt_ms: Option<f64>,
    #[serde(deserialize_with = "count")]
    pub predicted_n: Option<u64>,
    #[serde(deserialize_with = "float")]
    pub predicted_ms: Option<f64>,
    #[serde(deserialize_with = "float")]
    pub predicted_per_second: Option<f64>,
}

/// `GET /v1/models`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ModelList {
    #[serde(deserialize_with = "lenient")]
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ModelCard {
    #[serde(deserialize_with = "lenient")]
    pub id: String,
    #[serde(deserialize_with = "lenient")]
    pub owned_by: Option<String>,
    /// vLLM's and SGLang's context length.
    #[serde(deserialize_with = "count")]
    pub max_model_len: Option<u64>,
    /// llama-server's model facts.
    #[serde(deserialize_with = "lenient")]
    pub meta: Option<ModelMeta>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ModelMeta {
    #[serde(deserialize_with = "count")]
    pub n_ctx: Option<u64>,
    #[serde(deserialize_with = "count")]
    pub n_ctx_train: Option<u64>,
    #[serde(deserialize_with = "count")]
    pub n_params: Option<u64>,
    #[serde(deserialize_with = "count")]
    pub size: Option<u64>,
}

impl ModelCard {
    /// The context the server runs this model with, when it says.
    pub fn n_ctx(&self) -> Option<u64> {
        self.max_model_len.or_else(|| self.meta.as_ref().and_then(|m| m.n_ctx)).filter(|&n| n > 0)
    }
}

/// llama-server's `GET /props` (the parts moat reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Props {
    #[serde(deserialize_with = "lenient")]
    pub default_generation_settings: Option<GenerationSettings>,
    #[serde(deserialize_with = "count")]
    pub n_ctx: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GenerationSettings {
    #[serde(deserialize_with = "count")]
    pub n_ctx: Option<u64>,
}

impl Props {
    pub fn n_ctx(&self) -> Option<u64> {
        self.default_generation_settings.as_ref().and_then(|g| g.n_ctx).or(self.n_ctx).filter(|&n| n > 0)
    }
}

/// What a server said went wrong, from an error body or a mid-stream error object, in the shapes
/// servers use: OpenAI's and llama-server's `{"error": {"message", "type", "code", ...}}`, vLLM's
/// `{"object": "error", "message", ...}`, ollama's `{"error": "..."}`, FastAPI's `{"detail": ...}`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The server's message, one line (may be empty).
    pub message: String,
    /// Its `type` (`exceed_context_size_error`, `BadRequestError`, …).
    pub kind: String,
    /// llama-server's figures for a prompt that does not fit.
    pub n_prompt_tokens: Option<usize>,
    pub n_ctx: Option<usize>,
}

impl ServerError {
    /// Reads an error out of a response body; `None` when the body says nothing usable.
    pub fn from_body(body: &str) -> Option<ServerError> {
        match serde_json::from_str::<Value>(body.trim()) {
            Ok(v) => ServerError::from_value(&v),
            // A proxy's HTML or plain-text page: its first non-empty line, if short.
            Err(_) => {
                let line = body.lines().map(str::trim).find(|l| !l.is_empty())?;
                (!line.starts_with('<')).then(|| ServerError { message: clip(line), ..Default::default() })
            }
        }
    }

    /// Reads an error object: the whole body, or the value of a chunk's `error` field.
    pub fn from_value(v: &Value) -> Option<ServerError> {
        let inner = match v.get("error") {
            Some(e) if !e.is_null() => e,
            _ => v,
        };
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let (message, kind) = match inner {
            Value::String(s) => (s.clone(), String::new()),
            Value::Object(_) => {
                let message = match inner.get("message").or_else(|| inner.get("detail")) {
                    Some(Value::Array(items)) => {
                        // FastAPI validation errors: [{"loc": [...], "msg": "..."}].
                        items.iter().filter_map(|i| i.get("msg").and_then(Value::as_str)).collect::<Vec<_>>().join("; ")
                    }
                    other => text(other),
                };
                (message, text(inner.get("type")))
            }
            _ => return None,
        };
        let n = |k: &str| inner.get(k).and_then(Value::as_u64).map(|n| n as usize);
        let e = ServerError { message: clip(&message), kind, n_prompt_tokens: n("n_prompt_tokens"), n_ctx: n("n_ctx") };
        (!e.message.is_empty() || !e.kind.is_empty()).then_some(e)
    }

    /// The prompt's and the context's sizes, when this error says the prompt does not fit:
    /// `Some((tokens, n_ctx))` with whichever figures the message gives. Recognises llama-server
    /// (`exceed_context_size_error`), vLLM ("maximum context length is N tokens. However, you
    /// requested M tokens"), SGLang ("maximum context length of N tokens. You requested a total of
    /// M tokens") and OpenAI's own wording.
    pub fn context_exceeded(&self) -> Option<(Option<usize>, Option<usize>)> {
        let m = self.message.to_ascii_lowercase();
        let said = self.kind.contains("exceed_context")
            || m.contains("context length")
            || m.contains("context size")
            || m.contains("context window")
            || m.contains("too many tokens")
            || m.contains("exceeds the available context");
        if !said {
            return None;
        }
        let tokens = self.n_prompt_tokens.or_else(|| {
            number_after(&m, "you requested a total of")
                .or_else(|| number_after(&m, "you requested"))
                .or_else(|| number_after(&m, "resulted in"))
                .or_else(|| number_after(&m, "request ("))
        });
        let n_ctx = self.n_ctx.or_else(|| {
            number_after(&m, "maximum context length is")
                .or_else(|| number_after(&m, "maximum context length of"))
                .or_else(|| number_after(&m, "context size ("))
        });
        Some((tokens, n_ctx))
    }

    /// The message with its type, for an error line ("… (HTTP 400: message)").
    pub fn describe(&self) -> String {
        match (self.message.is_empty(), self.kind.is_empty()) {
            (false, _) => self.message.clone(),
            (true, false) => self.kind.clone(),
            (true, true) => String::new(),
        }
    }
}

/// The first whole number after `marker` in `text` (skipping spaces and punctuation such as `(`).
fn number_after(text: &str, marker: &str) -> Option<usize> {
    let at = text.find(marker)? + marker.len();
    let rest = text[at..].trim_start_matches([' ', '(', ':']);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == ',').filter(|c| *c != ',').collect();
    digits.parse().ok()
}

/// One line of at most 300 characters: server messages go into one-line errors.
fn clip(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn llama_server_chunks_with_usage_and_timings() {
        let c: Chunk = serde_json::from_str(r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],"created":1,"id":"x","object":"chat.completion.chunk"}"#).unwrap();
        assert_eq!(c.choices[0].content(), Some("Hi"));
        let c: Chunk = serde_json::from_str(r#"{"choices":[],"usage":{"completion_tokens":3,"prompt_tokens":32,"total_tokens":35,"prompt_tokens_details":{"cached_tokens":31}},"timings":{"cache_n":31,"prompt_n":1,"prompt_ms":29.4,"predicted_n":3,"predicted_ms":171.3,"predicted_per_second":11.67}}"#).unwrap();
        assert!(c.choices.is_empty());
        let u = c.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(32), Some(3)));
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(31));
        let t = c.timings.unwrap();
        assert_eq!((t.cache_n, t.prompt_n, t.predicted_per_second), (Some(31), Some(1), Some(11.67)));
    }

    #[test]
    fn odd_but_harmless_fields_read_as_absent() {
        // null choices, a string count, content as an array, an unknown field, a bad usage.
        let c: Chunk = serde_json::from_str(
            r#"{"choices":null,"usage":"n/a","timings":{"predicted_per_second":"12.5","prompt_n":"7"},"extra":{"a":[1]}}"#,
        )
        .unwrap();
        assert!(c.choices.is_empty() && c.usage.is_none());
        let t = c.timings.unwrap();
        assert_eq!((t.predicted_per_second, t.prompt_n), (Some(12.5), Some(7)));
        let c: Chunk = serde_json::from_str(
            r#"{"choices":[{"delta":{"content":[{"type":"text"}],"reasoning":"hmm"},"finish_reason":7}]}"#,
        )
        .unwrap();
        assert_eq!((c.choices[0].content(), c.choices[0].reasoning()), (None, Some("hmm")));
        assert_eq!(c.choices[0].finish_reason, None);
        // Completions text and a non-streamed message.
        let c: Chunk = serde_json::from_str(r#"{"choices":[{"text":" the","index":0,"logprobs":null}]}"#).unwrap();
        assert_eq!(c.choices[0].content(), Some(" the"));
        let c: Chunk = serde_json::from_str(
            r#"{"choices":[{"message":{"role":"assistant","content":"Hello","reasoning_content":"think"}}]}"#,
        )
        .unwrap();
        assert_eq!((c.choices[0].content(), c.choices[0].reasoning()), (Some("Hello"), Some("think")));
    }

    #[test]
    fn model_lists_and_props_from_each_server() {
        let l: ModelList = serde_json::from_str(r#"{"object":"list","data":[{"id":"m.gguf","object":"model","owned_by":"llamacpp","meta":{"n_ctx":2048,"n_ctx_train":8192,"n_params":134515008}}]}"#).unwrap();
        assert_eq!((l.data[0].id.as_str(), l.data[0].n_ctx()), ("m.gguf", Some(2048)));
        let l: ModelList = serde_json::from_str(
            r#"{"data":[{"id":"Qwen/Qwen2.5-32B-Instruct","max_model_len":32768,"owned_by":"vllm"},{"id":"llama3"}]}"#,
        )
        .unwrap();
        assert_eq!((l.data[0].n_ctx(), l.data[1].n_ctx()), (Some(32768), None));
        let p: Props =
            serde_json::from_str(r#"{"default_generation_settings":{"params":{},"n_ctx":4096},"total_slots":1}"#)
                .unwrap();
        assert_eq!(p.n_ctx(), Some(4096));
        let p: Props = serde_json::from_str(r#"{"n_ctx":0}"#).unwrap();
        assert_eq!(p.n_ctx(), None);
    }

    #[test]
    fn error_bodies_in_every_servers_shape() {
        let e = ServerError::from_body(r#"{"error":{"code":400,"message":"request (3031 tokens) exceeds the available context size (2048 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":3031,"n_ctx":2048}}"#).unwrap();
        assert_eq!(e.context_exceeded(), Some((Some(3031), Some(2048))));
        let e = ServerError::from_body(r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#).unwrap();
        assert_eq!(e.context_exceeded(), Some((Some(5000), Some(4096))));
        let e = ServerError::from_body(r#"{"object":"error","message":"Requested token count exceeds the model's maximum context length of 4096 tokens. You requested a total of 5,120 tokens: 4096 tokens from the input messages and 1024 tokens for the completion.","code":400}"#).unwrap();
        assert_eq!(e.context_exceeded(), Some((Some(5120), Some(4096))));
        let e = ServerError::from_body(r#"{"error":"model 'x' not found"}"#).unwrap();
        assert_eq!((e.message.as_str(), e.context_exceeded()), ("model 'x' not found", None));
        let e =
            ServerError::from_body(r#"{"detail":[{"loc":["body","top_k"],"msg":"Input should be a valid integer"}]}"#)
                .unwrap();
        assert_eq!(e.message, "Input should be a valid integer");
        let e = ServerError::from_body("upstream connect error\nor disconnect").unwrap();
        assert_eq!(e.message, "upstream connect error");
        assert_eq!(ServerError::from_body("<html><body>502</body></html>"), None);
        assert_eq!(ServerError::from_body(""), None);
        assert_eq!(ServerError::from_body("{}"), None);
    }

    proptest! {
        /// Any JSON text at all: no panic, and an error message is one line.
        #[test]
        fn prop_arbitrary_bodies_never_panic_and_messages_are_one_line(body in "\\PC{0,200}", msg in "\\PC{0,400}") {
            let _: Result<Chunk, _> = serde_json::from_str(&body);
            let _: Result<ModelList, _> = serde_json::from_str(&body);
            if let Some(e) = ServerError::from_body(&body) {
                prop_assert!(!e.message.contains('\n'));
            }
            let wrapped = serde_json::json!({"error": {"message": msg, "n_ctx": 5}}).to_string();
            if let Some(e) = ServerError::from_body(&wrapped) {
                prop_assert!(!e.message.contains('\n') && e.message.chars().count() <= 301);
            }
        }
    }
}
