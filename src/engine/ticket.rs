//! The front-end side of a request: a [`Ticket`] holds its reply channel and cancel flag, and
//! [`Ticket::wait`] / [`Ticket::poll`] are the one reader that turns [`Update`]s into calls on a
//! front end's [`Sink`]. Nothing else in moat reads a request's updates.

use super::protocol::{EngineError, Finish, Generated, RequestId, StopReason, Update};
use super::{BenchSample, GenStats, ItemResult};
use crossbeam_channel::{Receiver, RecvError, TryRecvError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A front end's callbacks for a request's non-terminal updates. Every method has an empty
/// default, so a sink implements only what its task sends.
pub trait Sink {
    /// A piece of reply text (whole characters).
    fn token(&mut self, _text: &str) {}
    /// A piece of the model's reasoning, to show apart from the answer (dimmed, foldable).
    fn reasoning(&mut self, _text: &str) {}
    /// Older turns were dropped to fit the context.
    fn trimmed(&mut self, _dropped_messages: usize, _prompt_tokens: usize) {}
    /// The result for input line `index` (score and embed tasks, in input order).
    fn item(&mut self, _index: usize, _result: ItemResult) {}
    /// Text `index` of a `Tokenize` task is `tokens` long (`exact`: see [`Update::Counted`]).
    fn counted(&mut self, _index: usize, _tokens: usize, _exact: bool) {}
    /// Request `index` of a `StructuredMany` task ended (any order).
    fn generated(&mut self, _index: usize, _result: Result<Generated, EngineError>) {}
    /// One benchmark repetition.
    fn bench(&mut self, _sample: BenchSample) {}
}

/// A sink that ignores everything (the caller wants only the ending).
impl Sink for () {}

/// Reply text passed to a closure as it streams.
pub struct OnText<F: FnMut(&str)>(pub F);

impl<F: FnMut(&str)> Sink for OnText<F> {
    fn token(&mut self, text: &str) {
        (self.0)(text)
    }
}

/// What a finished text request produced: the whole reply and how it ended.
#[derive(Debug, Clone)]
pub struct Reply {
    pub text: String,
    /// The model's reasoning, apart from `text` (empty for models that do not reason aloud).
    pub reasoning: String,
    pub reason: StopReason,
    pub stats: GenStats,
    /// Messages the engine dropped to fit the context.
    pub trimmed_messages: usize,
}

/// How a request is cancelled: its own flag (the ticket's), the engine's cancel epoch (moved on
/// by [`Engine::cancel`](super::Engine::cancel), which cancels everything submitted before it),
/// and the flag shared with a Ctrl+C handler.
#[derive(Debug, Clone)]
pub struct Cancel {
    own: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
    submitted_in: u64,
    shared: Arc<AtomicBool>,
}

impl Cancel {
    pub(super) fn new(epoch: Arc<AtomicU64>, shared: Arc<AtomicBool>) -> Cancel {
        let submitted_in = epoch.load(Ordering::SeqCst);
        Cancel { own: Arc::new(AtomicBool::new(false)), epoch, submitted_in, shared }
    }

    /// A flag that never fires (tools and tests that drive a backend directly).
    pub fn never() -> Cancel {
        Cancel::new(Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)))
    }

    /// Whether the request should stop now.
    pub fn is_set(&self) -> bool {
        self.own.load(Ordering::Relaxed)
            || self.shared.load(Ordering::Relaxed)
            || self.epoch.load(Ordering::Relaxed) != self.submitted_in
    }

    fn set(&self) {
        self.own.store(true, Ordering::SeqCst);
    }
}

/// A submitted request. Read it with [`wait`](Ticket::wait) (blocking) or
/// [`poll`](Ticket::poll) (from an event loop that selects on [`updates`](Ticket::updates)).
/// Dropping a ticket before its request ends cancels the request.
#[derive(Debug)]
pub struct Ticket {
    id: RequestId,
    rx: Receiver<Update>,
    cancel: Cancel,
    open: bool,
}

impl Ticket {
    pub(super) fn new(id: RequestId, rx: Receiver<Update>, cancel: Cancel) -> Ticket {
        Ticket { id, rx, cancel, open: true }
    }

    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The channel to select on; call [`poll`](Ticket::poll) when it is ready.
    pub fn updates(&self) -> &Receiver<Update> {
        &self.rx
    }

    /// Asks the engine to stop this request; it still ends with `Done` (reason `Cancelled`).
    pub fn cancel(&self) {
        self.cancel.set();
    }

    /// Whether the request has ended (its terminal update was read).
    pub fn is_finished(&self) -> bool {
        !self.open
    }

    /// Blocks until the request ends, passing every update before the end to `sink`.
    ///
    /// Errors: the request's own failure, or [`EngineError::Gone`] if the inference thread died.
    pub fn wait(mut self, sink: &mut dyn Sink) -> Result<Finish, EngineError> {
        loop {
            let update = self.rx.recv().unwrap_or(Update::Failed(EngineError::Gone));
            if let Some(end) = self.deliver(update, sink) {
                return end;
            }
        }
    }

    /// Passes every update that has arrived to `sink` without blocking; `Some` once the request
    /// has ended (then the ticket is spent).
    pub fn poll(&mut self, sink: &mut dyn Sink) -> Option<Result<Finish, EngineError>> {
        while self.open {
            let update = match self.rx.try_recv() {
                Ok(u) => u,
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => Update::Failed(EngineError::Gone),
            };
            if let Some(end) = self.deliver(update, sink) {
                return Some(end);
            }
        }
        None
    }

    /// Like [`poll`](Ticket::poll), starting with an update a `select!` already took from
    /// [`updates`](Ticket::updates).
    pub fn poll_received(
        &mut self,
        first: Result<Update, RecvError>,
        sink: &mut dyn Sink,
    ) -> Option<Result<Finish, EngineError>> {
        let first = first.unwrap_or(Update::Failed(EngineError::Gone));
        match self.deliver(first, sink) {
            Some(end) => Some(end),
            None => self.poll(sink),
        }
    }

    /// Blocks until a text request ends and returns the whole reply, passing each piece to
    /// `on_text` as it arrives.
    pub fn text(self, on_text: impl FnMut(&str)) -> Result<Reply, EngineError> {
        self.text_and_reasoning(on_text, |_| {})
    }

    /// Like [`text`](Ticket::text), also passing each piece of reasoning to `on_reasoning`.
    pub fn text_and_reasoning(
        self,
        on_text: impl FnMut(&str),
        on_reasoning: impl FnMut(&str),
    ) -> Result<Reply, EngineError> {
        struct Collect<F, G> {
            on_text: F,
            on_reasoning: G,
            text: String,
            reasoning: String,
            trimmed: usize,
        }
        impl<F: FnMut(&str), G: FnMut(&str)> Sink for Collect<F, G> {
            fn token(&mut self, t: &str) {
                (self.on_text)(t);
                self.text.push_str(t);
            }
            fn reasoning(&mut self, t: &str) {
                (self.on_reasoning)(t);
                self.reasoning.push_str(t);
            }
            fn trimmed(&mut self, dropped: usize, _: usize) {
                self.trimmed += dropped;
            }
        }
        let mut sink = Collect { on_text, on_reasoning, text: String::new(), reasoning: String::new(), trimmed: 0 };
        let end = self.wait(&mut sink)?;
        Ok(Reply {
            text: sink.text,
            reasoning: sink.reasoning,
            reason: end.reason,
            stats: end.stats,
            trimmed_messages: sink.trimmed,
        })
    }

    /// Blocks until a `Tokenize` task ends and returns each text's count, in input order.
    ///
    /// Errors: the request's failure; [`EngineError::Cancelled`] when it was cancelled (some
    /// counts would be missing).
    pub fn counts(self) -> Result<Vec<usize>, EngineError> {
        struct Counts(Vec<Option<usize>>);
        impl Sink for Counts {
            fn counted(&mut self, index: usize, tokens: usize, _: bool) {
                if index >= self.0.len() {
                    self.0.resize(index + 1, None);
                }
                self.0[index] = Some(tokens);
            }
        }
        let mut sink = Counts(Vec::new());
        let end = self.wait(&mut sink)?;
        if end.reason == StopReason::Cancelled {
            return Err(EngineError::Cancelled);
        }
        sink.0.into_iter().map(|c| c.ok_or(EngineError::Gone)).collect()
    }

    /// The one place an update is interpreted.
    fn deliver(&mut self, update: Update, sink: &mut dyn Sink) -> Option<Result<Finish, EngineError>> {
        match update {
            Update::Token(t) => sink.token(&t),
            Update::Reasoning(t) => sink.reasoning(&t),
            Update::Trimmed { dropped_messages, prompt_tokens } => sink.trimmed(dropped_messages, prompt_tokens),
            Update::Item { index, result } => sink.item(index, result),
            Update::Counted { index, tokens, exact } => sink.counted(index, tokens, exact),
            Update::Generated { index, result } => sink.generated(index, result),
            Update::Bench(sample) => sink.bench(sample),
            Update::Done(finish) => {
                self.open = false;
                return Some(Ok(finish));
            }
            Update::Failed(error) => {
                self.open = false;
                return Some(Err(error));
            }
        }
        None
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.open {
            self.cancel.set();
        }
    }
}
