//! Label scoring on a server. A server exposes no logits, but llama-server, vLLM and SGLang return
//! the log-probabilities of the most likely next tokens (`logprobs`). Each line's prompt is sent
//! as a one-token greedy completion and each label is scored by the log-probability of its first
//! token. A log-probability is the logit minus one constant per position, so a softmax over the
//! labels' values (what the classifier does next, calibration included) is the same as over
//! their logits locally.
//!
//! Where the prompt comes from: a completion-style prompt (the default) goes to `/v1/completions`
//! as text. A chat prompt is rendered by the server's own chat template: llama-server's
//! `/apply-template`, else `/v1/chat/completions` with the answer prefix as a final assistant
//! message that the server continues (`continue_final_message`, vLLM's and SGLang's name).
//!
//! Which entry is a label's first token: llama-server and vLLM tokenize the label on `/tokenize`,
//! and an entry matches by token id (llama-server reports ids) or by its text. A server without
//! `/tokenize` gets a text match: the entries whose text begins exactly one label's text.
//!
//! Only the top entries come back, and a label outside them would get a bound, not a value. So
//! on llama-server each line is asked with the labels as a grammar and the probabilities read
//! after it (`post_sampling_probs`): every label's first token is then listed, exactly. Other
//! servers get the top 20, then the top 1000 for a line whose labels are not all listed.
//!
//! Lines go out on a few requests at once (a server batches concurrent requests); results come
//! back in input order.

use super::client::{Client, HttpError};
use super::{Remote, POLL};
use crate::engine::backend::Responder;
use crate::engine::{EngineError, Finish, GenStats, ItemResult, ScoreRequest, StopReason};
use crossbeam_channel::RecvTimeoutError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Entries asked for per position: vLLM's default ceiling (`max_logprobs`); a server that allows
/// fewer is asked again with [`TOP_K_FALLBACK`], and later lines use that.
const TOP_K: usize = 20;
const TOP_K_FALLBACK: usize = 5;
/// A line whose labels are not all among the first entries is asked again for this many: a label
/// left out gets only a bound, and labels left out together would tie (and calibration would
/// divide by bounds). llama-server and SGLang allow it; vLLM's ceiling refuses it, once.
const TOP_K_WIDE: usize = 1000;
/// Entries asked for under the labels' grammar: every token that begins a label can appear.
const TOP_K_EXACT: usize = 200;
/// Label-scoring requests in flight at once, at most (fewer when the request's batch is smaller).
pub const SCORE_IN_FLIGHT: usize = 8;
const MARK: &str = "\u{1}MOATTEXT\u{1}";

/// How a line's prompt reaches the server.
#[derive(Debug, Clone)]
enum Route {
    /// `/v1/completions` with `before + line + after` as the prompt.
    Completion { before: String, after: String },
    /// `/v1/chat/completions`: the user turn holds `template` with the line, and the assistant's
    /// answer begins with `answer_prefix`, which the server continues.
    Chat { template: String, answer_prefix: String },
}

/// What identifies a label's first token among a reply's top entries: its id and text as the
/// server's tokenizer gives them, when it has one (`/tokenize`), else the label's own text as it
/// continues the prompt.
#[derive(Debug, Clone, PartialEq)]
struct LabelKey {
    id: Option<i64>,
    text: Option<String>,
    label: String,
}

/// One of the most likely next tokens.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TopEntry {
    pub id: Option<i64>,
    pub text: String,
    pub logprob: f64,
}

pub(super) fn score(remote: &Remote, req: &ScoreRequest, out: &Responder<'_>) -> Result<Finish, EngineError> {
    let spec = &req.prompt;
    if spec.template.matches("{text}").count() != 1 {
        return Err(EngineError::Classify("the prompt template must contain {text} exactly once".into()));
    }
    let client = &remote.client;
    let route = if spec.chat {
        chat_route(client, &spec.template, &spec.answer_prefix)?
    } else {
        let (a, b) = spec.template.split_once("{text}").expect("counted once");
        Route::Completion { before: a.to_string(), after: format!("{b}{}", spec.answer_prefix) }
    };
    let keys = label_keys(remote, &req.labels)?;
    // llama-server (its /tokenize gives ids and pieces) can hold the next token to the labels
    // with a grammar and report the probabilities after that: exact label values.
    let llama_server =
        matches!(route, Route::Completion { .. }) && keys.iter().all(|k| k.id.is_some() && k.text.is_some());
    let job = Arc::new(Job {
        client: client.clone(),
        model: remote.model.clone(),
        route,
        keys,
        items: req.items.iter().map(|t| clip(t, req.max_item_tokens.max(8))).collect(),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        top_k: AtomicUsize::new(TOP_K),
        wide: AtomicBool::new(true),
        exact: AtomicBool::new(llama_server),
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    let workers = req.batch.clamp(1, SCORE_IN_FLIGHT).min(req.items.len().max(1));
    for _ in 0..workers {
        let (mine, tx) = (Arc::clone(&job), tx.clone());
        // Detached: a worker blocked on a stalled server must not hold up a cancel; it sees
        // `stop` after its request and exits.
        let spawned = std::thread::Builder::new().name("moat-score".into()).spawn(move || {
            while !mine.stop.load(Ordering::Relaxed) {
                let i = mine.next.fetch_add(1, Ordering::Relaxed);
                let Some(text) = mine.items.get(i) else { break };
                if tx.send((i, mine.one(text))).is_err() {
                    break;
                }
            }
        });
        if let Err(e) = spawned {
            job.stop.store(true, Ordering::Relaxed);
            return Err(EngineError::Remote(format!("cannot start a request thread: {e}")));
        }
    }
    drop(tx);
    let _stop = StopOnDrop(&job.stop);
    let mut done: BTreeMap<usize, Result<Vec<f32>, Fatal>> = BTreeMap::new();
    let mut emitted = 0;
    while emitted < req.items.len() {
        if out.cancelled() {
            return Err(EngineError::Cancelled);
        }
        match rx.recv_timeout(POLL) {
            Ok((i, r)) => {
                done.insert(i, r);
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(EngineError::Remote("the request threads stopped before every line was scored".into()))
            }
        }
        while let Some(r) = done.remove(&emitted) {
            let result: ItemResult = match r {
                Ok(v) => Ok(v),
                Err(Fatal::Line(why)) => Err(why),
                Err(Fatal::Task(e)) => return Err(remote.refused(&e, false)),
                Err(Fatal::NoLogprobs) => return Err(no_logprobs(client)),
            };
            out.item(emitted, result);
            emitted += 1;
        }
    }
    Ok(Finish { reason: StopReason::Finished, stats: GenStats::default() })
}

/// Tells the workers to stop taking lines, however scoring ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn no_logprobs(client: &Client) -> EngineError {
    EngineError::Remote(format!(
        "the server at {} returned no logprobs, so it cannot score labels; use a server that returns them (llama-server, vLLM, SGLang) or a local model (drop --remote)",
        client.endpoint.authority
    ))
}

/// How one line failed: the line alone, or the whole task.
#[derive(Debug)]
enum Fatal {
    Line(String),
    Task(HttpError),
    NoLogprobs,
}

/// What the workers share.
struct Job {
    client: Client,
    model: String,
    route: Route,
    keys: Vec<LabelKey>,
    items: Vec<Option<String>>,
    next: AtomicUsize,
    stop: AtomicBool,
    /// Entries asked for per position.
    top_k: AtomicUsize,
    /// Whether a line with labels left out is asked again for [`TOP_K_WIDE`] entries (off once
    /// the server refused that many).
    wide: AtomicBool,
    /// Whether lines are asked with the labels as a grammar (llama-server; off once refused).
    exact: AtomicBool,
}

impl Job {
    /// One line's label values (log-probabilities), or why not.
    fn one(&self, text: &Option<String>) -> Result<Vec<f32>, Fatal> {
        let Some(text) = text else { return Err(Fatal::Line("empty text".into())) };
        if self.exact.load(Ordering::Relaxed) {
            match self.ask_exact(text) {
                Ok(top) if all_listed(&top, &self.keys) => return Ok(label_values(&top, &self.keys)),
                Ok(_) | Err(Fatal::Task(HttpError::Status { code: 400 | 422, .. })) | Err(Fatal::NoLogprobs) => {
                    self.exact.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(e),
            }
        }
        let k = self.top_k.load(Ordering::Relaxed);
        let top = match self.ask(text, k) {
            Err(Fatal::Task(HttpError::Status { code: 400 | 422, error: Some(se) }))
                if k > TOP_K_FALLBACK && se.describe().contains("logprob") =>
            {
                self.top_k.store(TOP_K_FALLBACK, Ordering::Relaxed);
                self.ask(text, TOP_K_FALLBACK)?
            }
            r => r?,
        };
        let mut values = label_values(&top, &self.keys);
        if !all_listed(&top, &self.keys) && self.wide.load(Ordering::Relaxed) {
            match self.ask(text, TOP_K_WIDE) {
                Ok(wide) => values = label_values(&wide, &self.keys),
                // The server caps the entries (vLLM's max_logprobs): keep the bounds.
                Err(Fatal::Task(HttpError::Status { code: 400 | 422, .. })) => {
                    self.wide.store(false, Ordering::Relaxed)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(values)
    }

    /// The first position's entries for `text`'s prompt with the next token held to the labels'
    /// beginnings by a grammar, and probabilities taken after it (llama-server's
    /// `post_sampling_probs`, every other sampler off). Each label's value is then its first
    /// token's logit minus one constant: exact, however unlikely the label.
    fn ask_exact(&self, text: &str) -> Result<Vec<TopEntry>, Fatal> {
        let Route::Completion { before, after } = &self.route else { return Err(Fatal::NoLogprobs) };
        let alternatives: Vec<String> = self.keys.iter().map(|k| gbnf_literal(&k.label)).collect();
        let body = json!({
            "model": self.model, "prompt": format!("{before}{text}{after}"), "max_tokens": 1, "stream": false,
            "cache_prompt": true, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0,
            "post_sampling_probs": true, "logprobs": TOP_K_EXACT, "n_probs": TOP_K_EXACT,
            "grammar": format!("root ::= {}", alternatives.join(" | ")),
        });
        let reply = self.client.post(&self.client.endpoint.api("completions"), &body).map_err(Fatal::Task)?;
        let value: Value = serde_json::from_str(&reply).map_err(|_| Fatal::NoLogprobs)?;
        Ok(first_top_logprobs(&value))
    }

    /// The first position's top `k` entries for `text`'s prompt.
    fn ask(&self, text: &str, k: usize) -> Result<Vec<TopEntry>, Fatal> {
        let mut body = Map::new();
        body.insert("model".into(), self.model.clone().into());
        body.insert("max_tokens".into(), 1.into());
        body.insert("temperature".into(), 0.0.into());
        body.insert("stream".into(), false.into());
        // llama-server: keep the shared instruction prefix in the slot's KV cache.
        body.insert("cache_prompt".into(), true.into());
        let path = match &self.route {
            Route::Completion { before, after } => {
                body.insert("prompt".into(), format!("{before}{text}{after}").into());
                body.insert("logprobs".into(), k.into());
                "completions"
            }
            Route::Chat { template, answer_prefix } => {
                let user = template.replace("{text}", text);
                body.insert(
                    "messages".into(),
                    json!([{ "role": "user", "content": user }, { "role": "assistant", "content": answer_prefix }]),
                );
                body.insert("continue_final_message".into(), true.into());
                body.insert("add_generation_prompt".into(), false.into());
                body.insert("logprobs".into(), true.into());
                body.insert("top_logprobs".into(), k.into());
                "chat/completions"
            }
        };
        let reply = match self.client.post(&self.client.endpoint.api(path), &Value::Object(body)) {
            Ok(r) => r,
            Err(e @ HttpError::Status { code: 400 | 413 | 422, .. }) => {
                return Err(match &e {
                    HttpError::Status { error: Some(se), .. } if se.context_exceeded().is_some() => {
                        Fatal::Line("too long for the server's context; lower --truncate".into())
                    }
                    HttpError::Status { error: Some(se), .. } if se.describe().contains("logprob") => Fatal::Task(e),
                    HttpError::Status { code, error } => Fatal::Line(format!(
                        "the server rejected this line (HTTP {code}{})",
                        error.as_ref().map(|s| format!(": {}", s.describe())).unwrap_or_default()
                    )),
                    _ => unreachable!("matched a status"),
                })
            }
            Err(e) => return Err(Fatal::Task(e)),
        };
        let value: Value = serde_json::from_str(&reply).map_err(|_| Fatal::NoLogprobs)?;
        let top = first_top_logprobs(&value);
        if top.is_empty() {
            return Err(Fatal::NoLogprobs);
        }
        Ok(top)
    }
}

/// The route for a chat prompt: llama-server renders its chat template on `/apply-template`;
/// other servers continue an assistant message on `/v1/chat/completions`.
fn chat_route(client: &Client, template: &str, answer_prefix: &str) -> Result<Route, EngineError> {
    let body = json!({ "messages": [{ "role": "user", "content": template.replace("{text}", MARK) }] });
    let url = format!("{}/apply-template", client.endpoint.root);
    match client.post(&url, &body) {
        Ok(reply) => {
            let prompt = serde_json::from_str::<Value>(&reply)
                .ok()
                .and_then(|v| v.get("prompt").and_then(Value::as_str).map(str::to_string));
            match prompt.as_deref().and_then(|p| p.split_once(MARK)) {
                Some((a, b)) => {
                    Ok(Route::Completion { before: a.to_string(), after: format!("{b}{answer_prefix}") })
                }
                None => Err(EngineError::Remote(format!(
                    "the server at {} rendered its chat template without the text; use a completion-style prompt (drop --chat-prompt)",
                    client.endpoint.authority
                ))),
            }
        }
        Err(HttpError::Status { code: 404 | 405 | 501, .. }) => {
            Ok(Route::Chat { template: template.to_string(), answer_prefix: answer_prefix.to_string() })
        }
        Err(e) => Err(client.explain(&e, "rendering the chat template", false)),
    }
}

/// Each label's key, from the server's tokenizer when it has one. Two labels that begin with
/// the same token cannot be told apart by one position's probabilities.
fn label_keys(remote: &Remote, labels: &[String]) -> Result<Vec<LabelKey>, EngineError> {
    let client = &remote.client;
    let mut keys = Vec::with_capacity(labels.len());
    for label in labels {
        if label.trim().is_empty() {
            return Err(EngineError::Classify(format!("label {label:?} has no tokens; use a non-empty label")));
        }
        let (id, text) = first_token(client, &remote.model, label).unwrap_or((None, None));
        keys.push(LabelKey { id, text, label: label.clone() });
    }
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate().skip(i + 1) {
            let same = match (a, b) {
                (LabelKey { id: Some(x), .. }, LabelKey { id: Some(y), .. }) => x == y,
                (LabelKey { text: Some(x), .. }, LabelKey { text: Some(y), .. }) => x == y,
                _ => a.label == b.label,
            };
            if same {
                return Err(EngineError::Classify(format!(
                    "labels {:?} and {:?} start with the same token; pick labels that differ in their first word",
                    labels[i].trim(),
                    labels[j].trim()
                )));
            }
        }
    }
    Ok(keys)
}

/// The first token of `text` as the server tokenizes it: (id, text). llama-server answers
/// `{"tokens":[{"id":…,"piece":…}]}` with `with_pieces`; vLLM answers `{"tokens":[ids],
/// "token_strs":[…]}`. `None` when the server has no `/tokenize` or answers something else.
fn first_token(client: &Client, model: &str, text: &str) -> Option<(Option<i64>, Option<String>)> {
    let body = json!({
        "content": text, "with_pieces": true, "add_special": false,
        "model": model, "prompt": text, "return_token_strs": true, "add_special_tokens": false,
    });
    let reply = client.post(&format!("{}/tokenize", client.endpoint.root), &body).ok()?;
    parse_first_token(&serde_json::from_str(&reply).ok()?)
}

fn parse_first_token(v: &Value) -> Option<(Option<i64>, Option<String>)> {
    let first = v.get("tokens")?.as_array()?.first()?;
    let (id, text) = match first {
        Value::Number(n) => (n.as_i64(), None),
        Value::Object(o) => {
            (o.get("id").and_then(Value::as_i64), o.get("piece").and_then(Value::as_str).map(String::from))
        }
        _ => return None,
    };
    let text = text.or_else(|| v.get("token_strs")?.as_array()?.first()?.as_str().map(String::from));
    (id.is_some() || text.is_some()).then_some((id, text))
}

/// The top entries at the reply's first position, in either layout servers use:
/// `logprobs.content[0].top_logprobs = [{id?, token, logprob}]` (chat, and llama-server's
/// completions) or `logprobs.top_logprobs[0] = {token: logprob}` (vLLM's completions).
/// Entries that are not finite numbers are dropped; nothing usable gives an empty list.
pub(super) fn first_top_logprobs(reply: &Value) -> Vec<TopEntry> {
    let Some(lp) = reply.get("choices").and_then(|c| c.get(0)).and_then(|c| c.get("logprobs")) else {
        return Vec::new();
    };
    let finite = |v: Option<&Value>| v.and_then(Value::as_f64).filter(|x| x.is_finite());
    if let Some(first) = lp.get("content").and_then(|c| c.get(0)) {
        // llama-server's post-sampling layout says `top_probs` / `prob` instead.
        let logprob =
            |e: &Value| finite(e.get("logprob")).or_else(|| finite(e.get("prob")).filter(|p| *p > 0.0).map(f64::ln));
        let mut out: Vec<TopEntry> = first
            .get("top_logprobs")
            .or_else(|| first.get("top_probs"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                Some(TopEntry {
                    id: e.get("id").and_then(Value::as_i64),
                    text: e.get("token").and_then(Value::as_str)?.to_string(),
                    logprob: logprob(e)?,
                })
            })
            .collect();
        if out.is_empty() {
            // A server that sent only the chosen token.
            if let (Some(text), Some(logprob)) = (
                first.get("token").and_then(Value::as_str),
                finite(first.get("logprob")).or_else(|| finite(first.get("prob")).filter(|p| *p > 0.0).map(f64::ln)),
            ) {
                out.push(TopEntry { id: first.get("id").and_then(Value::as_i64), text: text.into(), logprob });
            }
        }
        return out;
    }
    match lp.get("top_logprobs").and_then(|t| t.get(0)).and_then(Value::as_object) {
        Some(map) => map
            .iter()
            .filter_map(|(k, v)| Some(TopEntry { id: None, text: k.clone(), logprob: finite(Some(v))? }))
            .collect(),
        None => Vec::new(),
    }
}

/// Each label's value: the log-probability of its first token, or, for a token the server did
/// not list, an upper bound (below the least likely entry listed, and within the mass the list
/// leaves over). An entry matches by id when both sides have one, else by the token's text;
/// without either, the value sums every entry whose text begins this label and no other.
fn label_values(top: &[TopEntry], keys: &[LabelKey]) -> Vec<f32> {
    let min = top.iter().map(|e| e.logprob).fold(f64::INFINITY, f64::min);
    let listed: f64 = top.iter().map(|e| e.logprob.exp()).sum();
    let floor = min.min((1.0 - listed).max(1e-12).ln());
    keys.iter()
        .map(|key| {
            let hits: Vec<f64> = top.iter().filter(|e| matches(e, key, keys)).map(|e| e.logprob).collect();
            let v = if hits.is_empty() {
                floor
            } else {
                let m = hits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m + hits.iter().map(|h| (h - m).exp()).sum::<f64>().ln()
            };
            v as f32
        })
        .collect()
}

/// Whether `e` is (the start of) `key`'s label: by id when both sides have one, else by the
/// token's text, else (no tokenizer) when its text begins this label and no other.
fn matches(e: &TopEntry, key: &LabelKey, keys: &[LabelKey]) -> bool {
    match (key.id, e.id, &key.text) {
        (Some(want), Some(id), _) => id == want,
        (_, _, Some(t)) => &e.text == t,
        _ => {
            !e.text.trim().is_empty()
                && key.label.starts_with(e.text.as_str())
                && keys.iter().filter(|k| k.label.starts_with(e.text.as_str())).count() == 1
        }
    }
}

/// `text` as a GBNF string literal.
fn gbnf_literal(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether every label has an entry among `top`.
fn all_listed(top: &[TopEntry], keys: &[LabelKey]) -> bool {
    keys.iter().all(|k| top.iter().any(|e| matches(e, k, keys)))
}

/// The line as sent, at most about `max_tokens` tokens: a longer one keeps its first and last
/// halves (sentiment often sits at the end of a review), as the local engine does by token.
/// Without the server's tokenizer the length is estimated: a CJK character is about a token,
/// other text about three characters per token (a cautious figure, so lines fit). `None` for a
/// line with no text.
fn clip(text: &str, max_tokens: usize) -> Option<String> {
    if text.trim().is_empty() {
        return None;
    }
    let weight = |c: char| if (c as u32) >= 0x2E80 { 1.0 } else { 1.0 / 3.0 };
    let total: f64 = text.chars().map(weight).sum();
    if total <= max_tokens as f64 {
        return Some(text.to_string());
    }
    let half = max_tokens as f64 / 2.0;
    let (mut used, mut head_end) = (0.0, 0);
    for (i, c) in text.char_indices() {
        used += weight(c);
        if used > half {
            break;
        }
        head_end = i + c.len_utf8();
    }
    let (mut used, mut tail_start) = (0.0, text.len());
    for (i, c) in text.char_indices().rev() {
        used += weight(c);
        if used > half {
            break;
        }
        tail_start = i;
    }
    Some(format!("{} … {}", &text[..head_end], &text[tail_start.max(head_end)..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: Option<i64>, text: &str, logprob: f64) -> TopEntry {
        TopEntry { id, text: text.into(), logprob }
    }

    fn key(id: Option<i64>, text: Option<&str>, label: &str) -> LabelKey {
        LabelKey { id, text: text.map(String::from), label: label.into() }
    }

    #[test]
    fn reads_both_logprob_layouts() {
        let llama = json!({"choices":[{"text":" positive","logprobs":{"content":[{"id":2731,"token":" positive","logprob":-1.3,
            "top_logprobs":[{"id":2731,"token":" positive","logprob":-1.3},{"id":3524,"token":" negative","logprob":-2.5}]}]}}]});
        assert_eq!(
            first_top_logprobs(&llama),
            vec![entry(Some(2731), " positive", -1.3), entry(Some(3524), " negative", -2.5)]
        );
        let vllm = json!({"choices":[{"logprobs":{"tokens":[" neg"],"token_logprobs":[-0.1],
            "top_logprobs":[{" neg": -0.1, " pos": -2.4}]}}]});
        let mut got = first_top_logprobs(&vllm);
        got.sort_by(|a, b| a.text.cmp(&b.text));
        assert_eq!(got, vec![entry(None, " neg", -0.1), entry(None, " pos", -2.4)]);
    }

    #[test]
    fn hostile_or_missing_logprobs_read_as_none() {
        for v in [
            json!({}),
            json!({"choices": []}),
            json!({"choices": [{"logprobs": null}]}),
            json!({"choices": [{"logprobs": {"content": []}}]}),
            json!({"choices": [{"logprobs": {"content": [{"top_logprobs": [{"token": 5, "logprob": "x"}]}]}}]}),
            json!({"choices": [{"logprobs": {"top_logprobs": [[1, 2]]}}]}),
            json!({"choices": [{"logprobs": {"top_logprobs": [{"a": "NaN"}]}}]}),
        ] {
            assert!(first_top_logprobs(&v).is_empty(), "{v}");
        }
        // Only the chosen token: still one entry.
        let v = json!({"choices": [{"logprobs": {"content": [{"token": " a", "logprob": -0.5}]}}]});
        assert_eq!(first_top_logprobs(&v), vec![entry(None, " a", -0.5)]);
    }

    #[test]
    fn labels_match_by_id_then_text_and_missing_ones_get_a_bound() {
        let top =
            vec![entry(Some(1), " positive", -0.2), entry(Some(2), " negative", -2.0), entry(Some(3), " Pos", -3.0)];
        let keys = vec![
            key(Some(1), Some(" positive"), " positive"),
            key(Some(2), None, " negative"),
            key(Some(9), Some(" neutral"), " neutral"),
        ];
        let v = label_values(&top, &keys);
        assert!((v[0] + 0.2).abs() < 1e-6 && (v[1] + 2.0).abs() < 1e-6);
        // Below the least likely entry listed.
        assert!(v[2] <= -3.0, "{v:?}");
        // Text match when the entries carry no ids (vLLM).
        let top = vec![entry(None, " bull", -0.5), entry(None, " bear", -1.5)];
        let keys = vec![key(Some(7), Some(" bear"), " bearish")];
        assert!((label_values(&top, &keys)[0] + 1.5).abs() < 1e-6);
        // An id-only tokenizer reply (older vLLM) against entries without ids: the text rule.
        let keys = vec![key(Some(7), None, " bearish")];
        assert!((label_values(&top, &keys)[0] + 1.5).abs() < 1e-6);
    }

    #[test]
    fn prefix_keys_sum_the_entries_only_they_begin() {
        // " b" begins both labels and counts for neither; " bull" and " bu" count for bullish.
        let top = vec![
            entry(None, " bull", -1.0),
            entry(None, " bu", -2.0),
            entry(None, " b", -0.5),
            entry(None, " bear", -3.0),
        ];
        let keys = vec![key(None, None, " bullish"), key(None, None, " bearish")];
        let v = label_values(&top, &keys);
        let want = ((-1.0f64).exp() + (-2.0f64).exp()).ln();
        assert!((v[0] as f64 - want).abs() < 1e-5, "{v:?}");
        assert!((v[1] + 3.0).abs() < 1e-6);
        // Whitespace alone is no evidence.
        let v = label_values(&[entry(None, " ", -0.1)], &[key(None, None, " up")]);
        assert!(v[0] <= -0.1);
    }

    #[test]
    fn tokenize_replies_of_llama_server_and_vllm() {
        assert_eq!(
            parse_first_token(&json!({"tokens":[{"id":2731,"piece":" positive"}]})),
            Some((Some(2731), Some(" positive".into())))
        );
        assert_eq!(
            parse_first_token(&json!({"count":2,"tokens":[44, 9],"token_strs":[" bull","ish"]})),
            Some((Some(44), Some(" bull".into())))
        );
        assert_eq!(parse_first_token(&json!({"tokens":[]})), None);
        assert_eq!(parse_first_token(&json!({"tokens":"x"})), None);
        assert_eq!(parse_first_token(&json!({"error":"no"})), None);
    }

    #[test]
    fn post_sampling_probabilities_and_label_grammars() {
        let v = json!({"choices":[{"logprobs":{"content":[{"id":216,"token":" ","prob":0.9,
            "top_probs":[{"id":216,"token":" ","prob":0.9},{"id":7012,"token":" bear","prob":0.05},{"id":1,"token":" x","prob":0.0}]}]}}]});
        let top = first_top_logprobs(&v);
        assert_eq!(top.len(), 2, "a zero probability is no entry: {top:?}");
        assert!((top[1].logprob - 0.05f64.ln()).abs() < 1e-9);
        assert_eq!(gbnf_literal(" bull"), r#"" bull""#);
        assert_eq!(gbnf_literal("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
    }

    #[test]
    fn long_lines_keep_head_and_tail() {
        assert_eq!(clip("  ", 10), None);
        assert_eq!(clip("short", 10).as_deref(), Some("short"));
        let long = format!("{}{}", "a".repeat(300), "z".repeat(300));
        let c = clip(&long, 20).unwrap();
        assert!(c.starts_with("aaa") && c.ends_with("zzz") && c.contains(" … ") && c.len() < 80, "{c}");
        let cjk = "好".repeat(100);
        let c = clip(&cjk, 10).unwrap();
        assert_eq!(c.chars().filter(|&ch| ch == '好').count(), 10);
    }
}
