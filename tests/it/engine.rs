//! The engine on the real default model: determinism, UTF-8 streaming, KV-cache reuse,
//! cancellation and the context-overflow policies.

use crate::common;
use moat::chat::Message;
use moat::config::{OverflowPolicy, SamplingConfig};
use moat::engine::{Engine, EngineError, Reply, Sink, StopReason, Task};

fn greedy(max_tokens: u32) -> SamplingConfig {
    SamplingConfig { temperature: 0.0, seed: 7, max_tokens, ..SamplingConfig::default() }
}

fn chat(
    engine: &Engine,
    messages: Vec<Message>,
    sampling: SamplingConfig,
    overflow: OverflowPolicy,
) -> Result<Reply, EngineError> {
    engine.submit(Task::Chat { messages, sampling, overflow, reserve: 64 }).text(|_| {})
}

#[test]
fn greedy_answer_is_deterministic_and_ends_its_turn() {
    let question = vec![Message::user("What is the capital of France? Answer in one sentence.")];
    let mut replies = Vec::new();
    for _ in 0..2 {
        // A fresh engine each time: nothing cached can make the runs agree by accident.
        let engine = common::engine(2048);
        let reply = chat(&engine, question.clone(), greedy(200), OverflowPolicy::Error).unwrap();
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
    let engine = common::engine(1024);
    // Byte-level BPE splits these characters over several tokens; a repeated pattern makes a
    // greedy continuation produce them again.
    let prompt = "市场优势🦀 市场优势🦀 市场优势🦀 市场优势🦀 市场优势🦀 市场";
    let mut pieces = Vec::new();
    let task = Task::Complete { prompt: prompt.into(), sampling: greedy(24) };
    let reply = engine.submit(task).text(|t| pieces.push(t.to_string())).unwrap();
    assert_eq!(pieces.concat(), reply.text);
    assert!(!reply.text.contains('\u{FFFD}'), "a character was split: {:?}", reply.text);
    assert!(reply.text.contains("优势"), "{:?}", reply.text);
    assert!(reply.text.contains('🦀'), "{:?}", reply.text);
    assert!(pieces.len() > 1, "the reply streamed in pieces");
}

/// `--dry-multiplier` once did nothing: the look-back moat passed (-1, "the whole context") is
/// clamped to 0 by this llama.cpp, which disables DRY. A greedy continuation of a counting loop
/// repeats it exactly; with DRY on it must leave the loop.
#[test]
fn dry_breaks_a_greedy_repetition_loop() {
    let engine = common::engine(1024);
    let periodic = |text: &str| {
        let words: Vec<&str> = text.split_whitespace().collect();
        words.len() >= 9 && words.windows(4).all(|w| w[0] == w[3])
    };
    // The first of these that this model continues as an exact loop.
    let prompts = [
        "a b c a b c a b c a b c a b c a b c a b",
        "1 2 3 1 2 3 1 2 3 1 2 3 1 2 3 1 2 3 1",
        "red green blue red green blue red green blue red green blue red",
    ];
    let looping = prompts.iter().find(|p| {
        let r = engine.submit(Task::Complete { prompt: p.to_string(), sampling: greedy(24) }).text(|_| {}).unwrap();
        periodic(&r.text)
    });
    let prompt = looping.expect("none of the prompts makes this model loop; add one that does");
    let dry = SamplingConfig { dry_multiplier: 0.8, ..greedy(24) };
    let reply = engine.submit(Task::Complete { prompt: prompt.to_string(), sampling: dry }).text(|_| {}).unwrap();
    assert!(!periodic(&reply.text), "DRY left the loop as it was: {:?}", reply.text);
}

#[test]
fn a_second_turn_decodes_only_its_new_tokens() {
    let engine = common::engine(2048);
    let mut messages = vec![Message::system("You are brief."), Message::user("Name a fruit.")];
    let first = chat(&engine, messages.clone(), greedy(40), OverflowPolicy::Error).unwrap();
    assert_eq!(first.stats.reused_tokens, 0);
    assert_eq!(first.stats.decoded_tokens, first.stats.prompt_tokens);

    messages.push(Message::assistant(first.text.clone()));
    messages.push(Message::user("Name another one."));
    let second = chat(&engine, messages, greedy(40), OverflowPolicy::Error).unwrap();
    let s = &second.stats;
    assert!(s.reused_tokens >= first.stats.prompt_tokens, "{s:?}");
    assert_eq!(s.decoded_tokens, s.prompt_tokens - s.reused_tokens);
    // Only the reply (already largely cached) and the new question are left to decode.
    assert!(s.decoded_tokens <= first.stats.gen_tokens + 20, "{s:?}");
}

#[test]
fn cancellation_stops_within_a_few_tokens() {
    let engine = common::engine(2048);
    /// Cancels everything in flight after five tokens.
    struct CancelAfter<'a>(&'a Engine, usize);
    impl Sink for CancelAfter<'_> {
        fn token(&mut self, _: &str) {
            self.1 += 1;
            if self.1 == 5 {
                self.0.cancel();
            }
        }
    }
    let sampling = SamplingConfig { temperature: 0.8, seed: 1, max_tokens: 1000, ..SamplingConfig::default() };
    let ticket = engine.submit(Task::Complete { prompt: "Once upon a time".into(), sampling: sampling.clone() });
    let end = ticket.wait(&mut CancelAfter(&engine, 0)).unwrap();
    assert_eq!(end.reason, StopReason::Cancelled);
    assert!(end.stats.gen_tokens <= 8, "{:?}", end.stats);
    // A request submitted after the cancel runs normally.
    let next = engine.submit(Task::Complete { prompt: "Once upon a time".into(), sampling: greedy(4) });
    assert_eq!(next.text(|_| {}).unwrap().reason, StopReason::MaxTokens);
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
    let engine = common::engine(256);
    let reply = chat(&engine, long_conversation(), greedy(16), OverflowPolicy::DropOldest).unwrap();
    assert!(reply.trimmed_messages >= 2 && reply.trimmed_messages.is_multiple_of(2), "{}", reply.trimmed_messages);
    assert!(reply.stats.prompt_tokens + 16 <= 256, "{:?}", reply.stats);
}

#[test]
fn overflow_error_policy_refuses_and_explains() {
    let engine = common::engine(256);
    let err = chat(&engine, long_conversation(), greedy(16), OverflowPolicy::Error).unwrap_err();
    assert!(matches!(err, EngineError::ContextOverflow { .. }), "{err}");
    assert!(err.to_string().contains("drop-oldest"), "{err}");
    // The engine is still usable afterwards.
    let ok = chat(&engine, vec![Message::user("Hi")], greedy(8), OverflowPolicy::Error).unwrap();
    assert!(ok.stats.gen_tokens > 0);
}

/// Runs what the chat layer asks for on `engine` and hands the reply back to it, as a front end does.
fn answer(engine: &Engine, session: &mut moat::chat::session::ChatSession, task: Task) -> moat::engine::GenStats {
    let reply = engine.submit(task).text(|_| {}).unwrap();
    session.reply_done(reply.text, reply.reason, reply.stats.clone());
    reply.stats
}

#[test]
fn a_switched_branch_decodes_only_what_differs_from_the_cache() {
    use moat::chat::session::{ChatSession, Outcome};
    use moat::chat::store::SessionStore;
    use moat::commands::{Setting, SlashCommand};
    let dir = tempfile::tempdir().unwrap();
    let engine = common::engine(2048);
    let mut config = moat::config::Config::default();
    config.chat.system_prompt = "You are brief.".into();
    config.sampling = greedy(40);
    let mut session = ChatSession::new(&config, Some(SessionStore::open(dir.path()).unwrap()));

    let task = session.user_turn("Name a fruit and say why you like it.".into());
    let first = answer(&engine, &mut session, task);
    let branch_1 = session.conversation.messages.clone();
    // A shorter regenerated reply differs from the first one: a second branch.
    session.execute(SlashCommand::Set(Setting::MaxTokens(6)), false);
    let regen = session.execute(SlashCommand::Regen, false);
    let Some(Outcome::Send(task)) = regen.into_iter().last() else { panic!("/regen sends") };
    let second = answer(&engine, &mut session, task);
    assert_ne!(session.conversation.messages, branch_1);

    let switched = session.execute(SlashCommand::Branches(Some(1)), false);
    assert!(matches!(switched[0], Outcome::Reset), "{switched:?}");
    assert_eq!(session.conversation.messages, branch_1);
    session.execute(SlashCommand::Set(Setting::MaxTokens(8)), false);
    let task = session.user_turn("And another one?".into());
    let after = answer(&engine, &mut session, task);
    eprintln!(
        "first turn: {} prompt / {} decoded; regen: {} prompt, {} reused, {} decoded; after /branches 1: {} prompt, {} reused, {} decoded",
        first.prompt_tokens, first.decoded_tokens, second.prompt_tokens, second.reused_tokens, second.decoded_tokens,
        after.prompt_tokens, after.reused_tokens, after.decoded_tokens
    );
    // The regenerated reply was asked for with the same prompt: nearly nothing to decode.
    assert!(second.decoded_tokens <= 1, "{second:?}");
    // After the switch the cached prefix (system prompt, question) is reused and only branch
    // 1's reply (beyond what it shares with the cached one) and the new question are decoded.
    assert!(after.reused_tokens >= first.prompt_tokens, "{after:?}");
    assert_eq!(after.decoded_tokens, after.prompt_tokens - after.reused_tokens);
    assert!(after.decoded_tokens <= first.gen_tokens + 20, "{after:?}");
}
