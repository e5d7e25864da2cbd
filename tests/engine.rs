//! The engine on the real default model: determinism, UTF-8 streaming, KV-cache reuse,
//! cancellation and the context-overflow policies.

mod common;

use moat::chat::Message;
use moat::config::{OverflowPolicy, SamplingConfig};
use moat::engine::{EngineError, Event, Request, StopReason};

fn greedy(max_tokens: u32) -> SamplingConfig {
    SamplingConfig { temperature: 0.0, seed: 7, max_tokens, ..SamplingConfig::default() }
}

fn chat(messages: Vec<Message>, sampling: SamplingConfig, overflow: OverflowPolicy) -> impl FnOnce(u64) -> Request {
    move |id| Request::Chat { id, messages, sampling, overflow, reserve: 64 }
}

#[test]
fn greedy_answer_is_deterministic_and_ends_its_turn() {
    let question = vec![Message::user("What is the capital of France? Answer in one sentence.")];
    let mut replies = Vec::new();
    for _ in 0..2 {
        // A fresh engine each time: nothing cached can make the runs agree by accident.
        let mut engine = common::engine(2048);
        let reply = engine.run(chat(question.clone(), greedy(200), OverflowPolicy::Error), |_| {}).unwrap();
        replies.push(reply);
    }
    assert!(!replies[0].text.trim().is_empty());
    assert_eq!(replies[0].reason, StopReason::EndOfGeneration, "{:?}", replies[0].text);
    assert_eq!(replies[0].text, replies[1].text);
    assert!(replies[0].text.contains("Paris"), "{:?}", replies[0].text);
    assert!(replies[0].stats.gen_tokens > 0 && replies[0].stats.gen_tokens < 200);
}

#[test]
fn chinese_and_emoji_stream_byte_exactly() {
    let mut engine = common::engine(1024);
    // Byte-level BPE splits these characters over several tokens; a repeated pattern makes a
    // greedy continuation produce them again.
    let prompt = "市场优势🦀 市场优势🦀 市场优势🦀 市场优势🦀 市场优势🦀 市场";
    let mut pieces = Vec::new();
    let reply = engine
        .run(|id| Request::Complete { id, prompt: prompt.into(), sampling: greedy(24) }, |t| pieces.push(t.to_string()))
        .unwrap();
    assert_eq!(pieces.concat(), reply.text);
    assert!(!reply.text.contains('\u{FFFD}'), "a character was split: {:?}", reply.text);
    assert!(reply.text.contains("优势"), "{:?}", reply.text);
    assert!(reply.text.contains('🦀'), "{:?}", reply.text);
    assert!(pieces.len() > 1, "the reply streamed in pieces");
}

#[test]
fn a_second_turn_decodes_only_its_new_tokens() {
    let mut engine = common::engine(2048);
    let mut messages = vec![Message::system("You are brief."), Message::user("Name a fruit.")];
    let first = engine.run(chat(messages.clone(), greedy(40), OverflowPolicy::Error), |_| {}).unwrap();
    assert_eq!(first.stats.reused_tokens, 0);
    assert_eq!(first.stats.decoded_tokens, first.stats.prompt_tokens);

    messages.push(Message::assistant(first.text.clone()));
    messages.push(Message::user("Name another one."));
    let second = engine.run(chat(messages, greedy(40), OverflowPolicy::Error), |_| {}).unwrap();
    let s = &second.stats;
    assert!(s.reused_tokens >= first.stats.prompt_tokens, "{s:?}");
    assert_eq!(s.decoded_tokens, s.prompt_tokens - s.reused_tokens);
    // Only the reply (already largely cached) and the new question are left to decode.
    assert!(s.decoded_tokens <= first.stats.gen_tokens + 20, "{s:?}");
}

#[test]
fn cancellation_stops_within_a_few_tokens() {
    let mut engine = common::engine(2048);
    let flag = engine.cancel_flag();
    let sampling = SamplingConfig { temperature: 0.8, seed: 1, max_tokens: 1000, ..SamplingConfig::default() };
    let id = engine.send(|id| Request::Complete { id, prompt: "Once upon a time".into(), sampling });
    let mut seen = 0;
    let stats = loop {
        match engine.events().recv().unwrap() {
            Event::Token { id: i, .. } if i == id => {
                seen += 1;
                if seen == 5 {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            Event::Done { id: i, reason, stats } if i == id => {
                assert_eq!(reason, StopReason::Cancelled);
                break stats;
            }
            Event::Error { error, .. } => panic!("{error}"),
            _ => {}
        }
    };
    assert!(stats.gen_tokens <= 8, "{stats:?}");
}

fn long_conversation() -> Vec<Message> {
    let mut messages = vec![Message::system("Keep answers short.")];
    for i in 0..12 {
        messages
            .push(Message::user(format!("Question {i}: tell me about the history of trade routes in some detail.")));
        messages.push(Message::assistant(format!(
            "Answer {i}: trade routes linked markets across continents and carried goods, ideas and money."
        )));
    }
    messages.push(Message::user("Summarise all of that in five words."));
    messages
}

#[test]
fn overflow_drop_oldest_trims_whole_turns_and_says_so() {
    let mut engine = common::engine(256);
    let reply = engine.run(chat(long_conversation(), greedy(16), OverflowPolicy::DropOldest), |_| {}).unwrap();
    assert!(reply.trimmed_messages >= 2 && reply.trimmed_messages.is_multiple_of(2), "{}", reply.trimmed_messages);
    assert!(reply.stats.prompt_tokens + 16 <= 256, "{:?}", reply.stats);
}

#[test]
fn overflow_error_policy_refuses_and_explains() {
    let mut engine = common::engine(256);
    let err = engine.run(chat(long_conversation(), greedy(16), OverflowPolicy::Error), |_| {}).unwrap_err();
    assert!(matches!(err, EngineError::ContextOverflow { .. }), "{err}");
    assert!(err.to_string().contains("drop-oldest"), "{err}");
    // The engine is still usable afterwards.
    let ok = engine.run(chat(vec![Message::user("Hi")], greedy(8), OverflowPolicy::Error), |_| {}).unwrap();
    assert!(ok.stats.gen_tokens > 0);
}
