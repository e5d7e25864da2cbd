//! The inference thread: it loads a backend, then runs queued tasks one at a time until told to
//! load another or stop. Every request's terminal update (`Done` or `Failed`) is sent here, once,
//! so the cancellation and capability rules hold for every backend and every task.

use super::backend::{Backend, Responder};
use super::protocol::{
    Capabilities, EngineError, EngineOptions, Event, Finish, RequestId, StopReason, Task, TaskKind, Update,
};
use super::ticket::Cancel;
use crossbeam_channel::{Receiver, Sender};

/// What the thread's inbox carries.
pub(super) enum Inbound {
    Run(Job),
    /// Replace the backend (load another model).
    Load(Box<EngineOptions>),
    Shutdown,
}

/// A submitted task with where its updates go.
pub(super) struct Job {
    #[allow(dead_code)] // kept for debugging and logs
    pub id: RequestId,
    pub task: Task,
    pub reply: Sender<Update>,
    pub cancel: Cancel,
}

/// What the thread does after a backend stops serving.
pub(super) enum Next {
    Load(Box<EngineOptions>),
    Shutdown,
}

/// Loads what `opts` names (reporting `Loading`/`Loaded`/`LoadFailed` on the events channel)
/// and serves the inbox on it with [`serve`] until a `Load` or `Shutdown`.
pub(super) type Loader = fn(EngineOptions, &Receiver<Inbound>, &Sender<Event>) -> Next;

/// The thread's body: load, serve, and load again when asked.
pub(super) fn thread(opts: EngineOptions, inbox: Receiver<Inbound>, events: Sender<Event>, load: Loader) {
    let mut next = Next::Load(Box::new(opts));
    while let Next::Load(opts) = next {
        next = load(*opts, &inbox, &events);
    }
}

/// Runs jobs on `backend` until a `Load` or `Shutdown` arrives (or every sender is gone).
pub(super) fn serve(backend: &mut dyn Backend, inbox: &Receiver<Inbound>) -> Next {
    for msg in inbox.iter() {
        match msg {
            Inbound::Run(job) => run_job(backend, job),
            Inbound::Load(opts) => return Next::Load(opts),
            Inbound::Shutdown => return Next::Shutdown,
        }
    }
    Next::Shutdown
}

fn run_job(backend: &mut dyn Backend, job: Job) {
    let Job { task, reply, cancel, .. } = job;
    let kind = task.kind();
    let cancelled = || Update::Done(Finish { reason: StopReason::Cancelled, stats: Default::default() });
    let end = if cancel.is_set() {
        cancelled()
    } else if !backend.capabilities().supports(kind) {
        Update::Failed(backend.refuse(kind))
    } else {
        let out = Responder::new(&reply, &cancel);
        let result = backend.run(task, &out);
        // Text held back at a possible tag is part of the reply, even one that failed midway.
        out.flush();
        match result {
            Ok(finish) => Update::Done(finish),
            Err(EngineError::Cancelled) => cancelled(),
            Err(e) => Update::Failed(e),
        }
    };
    let _ = reply.send(end);
}

/// The backend while no model is loaded (after a failed load): every task fails with
/// [`EngineError::NoModel`] until a `Load` succeeds.
pub(super) struct NoModel;

impl Backend for NoModel {
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn refuse(&self, _: TaskKind) -> EngineError {
        EngineError::NoModel
    }

    fn run(&mut self, _: Task, _: &Responder<'_>) -> Result<Finish, EngineError> {
        Err(EngineError::NoModel)
    }
}

#[cfg(test)]
mod tests {
    //! The request rules, checked on a scripted backend through the real submitter, tickets and
    //! thread loop (no model).

    use super::*;
    use crate::engine::{ScoreRequest, Sink, Submitter, Ticket};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// `Complete { prompt: "forever" }` streams until cancelled (giving up after 10 s);
    /// `Score` sends one item per line, checking for a cancel before each; anything else says "hi".
    struct Scripted {
        capabilities: Capabilities,
        runs: Arc<AtomicUsize>,
        saw_cancel: Arc<AtomicBool>,
    }

    impl Backend for Scripted {
        fn capabilities(&self) -> Capabilities {
            self.capabilities
        }
        fn refuse(&self, kind: TaskKind) -> EngineError {
            EngineError::Unsupported { backend: "scripted".into(), what: kind.describe() }
        }
        fn run(&mut self, task: Task, out: &Responder<'_>) -> Result<Finish, EngineError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            match task {
                Task::Complete { prompt, .. } if prompt == "forever" => {
                    for _ in 0..10_000 {
                        if out.cancelled() {
                            self.saw_cancel.store(true, Ordering::SeqCst);
                            return Err(EngineError::Cancelled);
                        }
                        out.token("x");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(Finish { reason: StopReason::MaxTokens, ..Default::default() })
                }
                Task::Score(req) => {
                    for index in 0..req.items.len() {
                        if out.cancelled() {
                            return Ok(Finish { reason: StopReason::Cancelled, ..Default::default() });
                        }
                        out.item(index, Ok(vec![index as f32]));
                    }
                    Ok(Finish { reason: StopReason::Finished, ..Default::default() })
                }
                _ => {
                    out.token("hi");
                    Ok(Finish::default())
                }
            }
        }
    }

    struct Harness {
        submitter: Submitter,
        runs: Arc<AtomicUsize>,
        saw_cancel: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Harness {
        fn new(capabilities: Capabilities) -> Harness {
            let (tx, inbox) = crossbeam_channel::unbounded();
            let (runs, saw_cancel) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
            let mut backend = Scripted { capabilities, runs: runs.clone(), saw_cancel: saw_cancel.clone() };
            let thread = std::thread::spawn(move || {
                serve(&mut backend, &inbox);
            });
            let submitter = Submitter {
                tx,
                next_id: Arc::new(AtomicU64::new(1)),
                epoch: Arc::new(AtomicU64::new(0)),
                shared: Arc::new(AtomicBool::new(false)),
            };
            Harness { submitter, runs, saw_cancel, thread: Some(thread) }
        }
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.submitter.cancel_all();
            let _ = self.submitter.tx.send(Inbound::Shutdown);
            let _ = self.thread.take().map(|t| t.join());
        }
    }

    fn forever() -> Task {
        Task::Complete { prompt: "forever".into(), sampling: Default::default() }
    }

    fn hello() -> Task {
        Task::Complete { prompt: "hello".into(), sampling: Default::default() }
    }

    fn score(lines: usize) -> Task {
        Task::Score(Box::new(ScoreRequest {
            prompt: crate::engine::PromptSpec::raw("{text}"),
            items: (0..lines).map(|i| format!("line {i}")).collect(),
            labels: vec!["a".into(), "b".into()],
            max_item_tokens: 8,
            batch: 1,
            share_prefix: false,
        }))
    }

    /// Reads a ticket until its first token.
    fn first_token(ticket: &mut Ticket) {
        struct Seen(bool);
        impl Sink for Seen {
            fn token(&mut self, _: &str) {
                self.0 = true;
            }
        }
        let mut seen = Seen(false);
        while !seen.0 {
            let got = ticket.updates().recv();
            assert!(ticket.poll_received(got, &mut seen).is_none(), "ended before its first token");
        }
    }

    #[test]
    fn every_request_ends_with_exactly_one_terminal_update() {
        let h = Harness::new(Capabilities::ALL);
        for task in [hello(), score(3)] {
            let ticket = h.submitter.submit(task);
            // The reply channel closes after the request: everything it ever carried is here.
            let updates: Vec<Update> = ticket.updates().iter().collect();
            let terminal = updates.iter().filter(|u| matches!(u, Update::Done(_) | Update::Failed(_))).count();
            assert_eq!(terminal, 1, "{updates:?}");
            assert!(matches!(updates.last(), Some(Update::Done(_))), "{updates:?}");
        }
    }

    #[test]
    fn ids_are_issued_by_the_engine_and_never_repeat() {
        let h = Harness::new(Capabilities::ALL);
        let other = h.submitter.clone();
        let ids: Vec<u64> = (0..4)
            .map(|i| if i % 2 == 0 { h.submitter.submit(hello()) } else { other.submit(hello()) })
            .map(|t| t.id())
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_dropped_ticket_cancels_its_running_request() {
        let h = Harness::new(Capabilities::ALL);
        let mut ticket = h.submitter.submit(forever());
        first_token(&mut ticket);
        drop(ticket);
        // The thread is free again only once "forever" stopped.
        let reply = h.submitter.submit(hello()).text(|_| {}).unwrap();
        assert_eq!(reply.text, "hi");
        assert!(h.saw_cancel.load(Ordering::SeqCst), "the backend never saw the cancel");
    }

    #[test]
    fn cancelling_is_the_same_for_every_task_kind() {
        let h = Harness::new(Capabilities::ALL);
        // A generation cancelled mid-stream keeps its text and ends with Cancelled, not an error.
        let mut ticket = h.submitter.submit(forever());
        first_token(&mut ticket);
        ticket.cancel();
        let end = ticket.wait(&mut ()).unwrap();
        assert_eq!(end.reason, StopReason::Cancelled);
        // A scoring request cancelled while queued behind it ends the same way, without running.
        let mut running = h.submitter.submit(forever());
        let queued = h.submitter.submit(score(5));
        first_token(&mut running);
        queued.cancel();
        running.cancel();
        let runs_before = h.runs.load(Ordering::SeqCst);
        assert_eq!(queued.wait(&mut ()).unwrap().reason, StopReason::Cancelled);
        assert_eq!(running.wait(&mut ()).unwrap().reason, StopReason::Cancelled);
        assert_eq!(h.runs.load(Ordering::SeqCst), runs_before, "the cancelled score request ran");
    }

    #[test]
    fn cancel_all_stops_what_was_submitted_before_it_and_nothing_after() {
        let h = Harness::new(Capabilities::ALL);
        let mut a = h.submitter.submit(forever());
        let b = h.submitter.submit(score(2));
        first_token(&mut a);
        h.submitter.cancel_all();
        let c = h.submitter.submit(score(2));
        assert_eq!(a.wait(&mut ()).unwrap().reason, StopReason::Cancelled);
        assert_eq!(b.wait(&mut ()).unwrap().reason, StopReason::Cancelled);
        assert_eq!(c.wait(&mut ()).unwrap().reason, StopReason::Finished);
    }

    #[test]
    fn a_stale_interrupt_is_cleared_by_the_next_submit() {
        let h = Harness::new(Capabilities::ALL);
        h.submitter.shared.store(true, Ordering::SeqCst);
        assert_eq!(h.submitter.submit(hello()).text(|_| {}).unwrap().text, "hi");
        // While a request runs, the interrupt stops it.
        let mut t = h.submitter.submit(forever());
        first_token(&mut t);
        h.submitter.shared.store(true, Ordering::SeqCst);
        assert_eq!(t.wait(&mut ()).unwrap().reason, StopReason::Cancelled);
    }

    #[test]
    fn a_task_outside_the_backends_capabilities_fails_in_one_line_without_running() {
        let h = Harness::new(Capabilities { chat: true, ..Capabilities::default() });
        let err = h.submitter.submit(score(2)).wait(&mut ()).unwrap_err();
        assert_eq!(err.to_string(), "scripted does not support label scoring; use a local model for it");
        assert_eq!(h.runs.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn no_model_fails_every_task_with_the_same_line() {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let (reply, rx) = crossbeam_channel::unbounded();
        let cancel = crate::engine::Cancel::never();
        tx.send(Inbound::Run(Job { id: 1, task: hello(), reply, cancel })).unwrap();
        tx.send(Inbound::Shutdown).unwrap();
        assert!(matches!(serve(&mut NoModel, &inbox), Next::Shutdown));
        assert!(matches!(rx.recv().unwrap(), Update::Failed(EngineError::NoModel)));
    }

    #[test]
    fn a_ticket_whose_engine_is_gone_reads_gone() {
        let (tx, inbox) = crossbeam_channel::unbounded::<Inbound>();
        drop(inbox);
        let submitter = Submitter {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
            epoch: Arc::new(AtomicU64::new(0)),
            shared: Arc::new(AtomicBool::new(false)),
        };
        assert!(matches!(submitter.submit(hello()).wait(&mut ()), Err(EngineError::Gone)));
    }
}
