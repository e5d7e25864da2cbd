//! The seam between the inference thread and what answers: a [`Backend`] runs one task at a time
//! and reports through a [`Responder`]. llama.cpp in this process ([`super::llama`]) is one
//! backend; front ends never learn which one answers.

use super::protocol::{Capabilities, EngineError, Finish, Generated, TaskKind, Update};
use super::text::{Piece, ThinkSplitter};
use super::ticket::Cancel;
use super::{BenchSample, ItemResult, Task};
use crossbeam_channel::Sender;
use std::cell::RefCell;

/// Something that can run engine tasks. The inference thread owns it and calls it for one task
/// at a time.
pub trait Backend {
    /// What it can do; the inference thread refuses anything else with [`Backend::refuse`].
    fn capabilities(&self) -> Capabilities;

    /// The one-line error for a task outside [`capabilities`](Backend::capabilities).
    fn refuse(&self, kind: TaskKind) -> EngineError;

    /// Runs `task`, sending its non-terminal updates through `out`, and says how it ended. A
    /// backend checks `out.cancelled()` between units of work and returns
    /// `StopReason::Cancelled` (or `Err(EngineError::Cancelled)`; both end the request the same
    /// way). It never sends `Done`/`Failed` itself: the inference thread does, exactly once.
    fn run(&mut self, task: Task, out: &Responder<'_>) -> Result<Finish, EngineError>;
}

/// The backend's side of one request: where its updates go and whether it was cancelled.
/// Reply text passes through a [`ThinkSplitter`], so a leading `<think>` block reaches the front
/// end as reasoning whichever backend produced it.
pub struct Responder<'a> {
    tx: &'a Sender<Update>,
    cancel: &'a Cancel,
    think: RefCell<ThinkSplitter>,
}

impl<'a> Responder<'a> {
    pub(super) fn new(tx: &'a Sender<Update>, cancel: &'a Cancel) -> Self {
        Responder { tx, cancel, think: RefCell::default() }
    }

    /// A piece of reply text. A front end that went away is not an error: the request runs on
    /// until it notices the cancel that dropping its ticket set.
    pub fn token(&self, text: &str) {
        let pieces = self.think.borrow_mut().push(text);
        self.send_pieces(pieces);
    }

    /// Reasoning a server sends apart from the content (`reasoning_content`).
    pub fn reasoning(&self, text: &str) {
        if !text.is_empty() {
            let _ = self.tx.send(Update::Reasoning(text.to_string()));
        }
    }

    /// Sends what the splitter still holds (the serving loop calls it when the task returns).
    pub(super) fn flush(&self) {
        let pieces = self.think.borrow_mut().finish();
        self.send_pieces(pieces);
    }

    fn send_pieces(&self, pieces: Vec<Piece>) {
        for p in pieces {
            let update = match p {
                Piece::Reasoning(t) => Update::Reasoning(t),
                Piece::Answer(t) => Update::Token(t),
            };
            let _ = self.tx.send(update);
        }
    }

    pub fn trimmed(&self, dropped_messages: usize, prompt_tokens: usize) {
        let _ = self.tx.send(Update::Trimmed { dropped_messages, prompt_tokens });
    }

    pub fn item(&self, index: usize, result: ItemResult) {
        let _ = self.tx.send(Update::Item { index, result });
    }

    pub fn counted(&self, index: usize, tokens: usize, exact: bool) {
        let _ = self.tx.send(Update::Counted { index, tokens, exact });
    }

    /// Request `index` of a `StructuredMany` task ended; its text must already have been through
    /// its own [`ThinkSplitter`] (see [`split_think`]).
    pub fn generated(&self, index: usize, result: Result<Generated, EngineError>) {
        let _ = self.tx.send(Update::Generated { index, result });
    }

    pub fn bench(&self, sample: BenchSample) {
        let _ = self.tx.send(Update::Bench(sample));
    }

    pub fn cancel(&self) -> &Cancel {
        self.cancel
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.is_set()
    }
}

/// `text` with a leading `<think>` block moved out: (answer, reasoning), as a [`Responder`] splits
/// a streamed reply. For replies collected apart from the request's stream (`StructuredMany`).
pub fn split_think(text: &str) -> (String, String) {
    let mut splitter = ThinkSplitter::default();
    let mut pieces = splitter.push(text);
    pieces.extend(splitter.finish());
    let (mut answer, mut reasoning) = (String::new(), String::new());
    for p in pieces {
        match p {
            Piece::Answer(t) => answer.push_str(&t),
            Piece::Reasoning(t) => reasoning.push_str(&t),
        }
    }
    (answer, reasoning)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_collected_reply_loses_its_think_block_as_a_streamed_one_does() {
        assert_eq!(
            super::split_think("  <think>plan the JSON</think>\n\n{\"a\":1}"),
            ("{\"a\":1}".to_string(), "plan the JSON".to_string())
        );
        assert_eq!(super::split_think("{\"a\":\"<think>\"}"), ("{\"a\":\"<think>\"}".to_string(), String::new()));
        assert_eq!(super::split_think("<think>cut off"), (String::new(), "cut off".to_string()));
    }
}
