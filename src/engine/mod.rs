//! The engine: one inference thread owns a [`Backend`](backend::Backend) — llama.cpp in this
//! process (`llama/`: model, context, KV cache) or an OpenAI-compatible server (`remote/`).
//! Front ends never block on it: they [`submit`](Engine::submit) a [`Task`] and get a
//! [`Ticket`], whose updates arrive on the ticket's own channel and are read by the one reader
//! ([`Ticket::wait`] / [`Ticket::poll`]) into the front end's [`Sink`]. What each task sends
//! back, in what order, and how cancellation works: see [`protocol`]. Model loading is reported
//! on [`Engine::events`].
//!
//! Module layout: `protocol.rs` (the types that cross the thread boundary), `ticket.rs` (the
//! front end's side), `backend.rs` (the seam), `serve.rs` (the thread's loop), `llama/` (the
//! llama.cpp backend), `remote/` (an OpenAI-compatible server over HTTP, chosen when
//! [`EngineOptions::remote`] is set), `text.rs` (UTF-8 reassembly and stop strings,
//! backend-neutral), `tune.rs` (the measured-settings cache that `auto` settings read at load;
//! `llama/tune.rs` measures).

mod backend;
mod llama;
pub mod protocol;
mod remote;
mod serve;
pub mod text;
mod ticket;
pub mod tune;

pub use backend::{Backend, Responder};
/// llama.cpp's process-wide backend (initialised once; every engine and tool in the process
/// shares it).
pub use llama::init::backend;
pub use llama::tune::{measure as measure_settings, TunePlan, TuneReport};
pub use llama::{gpu, BenchRequest, BenchSample, EmbedRequest, ItemResult, Pooling, PromptSpec, ScoreRequest};
pub use protocol::{short_model_name, url_authority};
pub use protocol::{
    Capabilities, EngineError, EngineOptions, Event, Finish, GenStats, Generated, ModelInfo, RemoteOptions, RequestId,
    StopReason, StructuredRequest, Task, TaskKind, TuneSource, Update,
};
pub use remote::{list_models, RemoteModel, SCORE_IN_FLIGHT};
pub use ticket::{Cancel, OnText, Reply, Sink, Ticket};

use crossbeam_channel::{Receiver, Sender};
use serve::{Inbound, Job};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Starts llama.cpp (once per process, logs to `log_file`) and describes this machine to it:
/// the devices ggml found and the CPU features it uses.
pub fn probe(log_file: Option<&std::path::Path>) -> (Vec<gpu::Device>, String) {
    llama::init::backend(log_file);
    (gpu::devices(), llama::init::system_info())
}

/// Loads what `opts` names — a remote server when it has one, else a local GGUF — and serves it
/// (each `Load` may switch between them).
fn load_and_serve(opts: EngineOptions, inbox: &Receiver<serve::Inbound>, events: &Sender<Event>) -> serve::Next {
    if opts.remote.is_some() {
        remote::load_and_serve(opts, inbox, events)
    } else {
        llama::load_and_serve(opts, inbox, events)
    }
}

/// A seed for a request that asked for a random one (seed -1): different on every call.
pub(crate) fn random_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u32
}

/// A way to submit tasks, for work that runs on another thread beside a front end (a prompt job
/// beside the chat). Cheap to clone; ids come from the engine's one counter.
#[derive(Clone)]
pub struct Submitter {
    tx: Sender<Inbound>,
    next_id: Arc<AtomicU64>,
    epoch: Arc<AtomicU64>,
    shared: Arc<AtomicBool>,
}

impl Submitter {
    /// Queues `task` and returns its ticket. A stale interrupt (a Ctrl+C that already stopped an
    /// earlier request) is cleared first, so it does not stop this one.
    pub fn submit(&self, task: Task) -> Ticket {
        self.shared.store(false, Ordering::SeqCst);
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (reply, rx) = crossbeam_channel::unbounded();
        let cancel = Cancel::new(self.epoch.clone(), self.shared.clone());
        // If the thread is gone the job (and its reply sender) is dropped here, so the ticket
        // reads `EngineError::Gone`.
        let _ = self.tx.send(Inbound::Run(Job { id, task, reply, cancel: cancel.clone() }));
        Ticket::new(id, rx, cancel)
    }

    /// Cancels every request submitted so far, queued or running; later ones are unaffected.
    pub fn cancel_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running engine: the inference thread, its inbox and its load events.
pub struct Engine {
    submitter: Submitter,
    events: Receiver<Event>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts the inference thread; it begins loading at once and reports `Loading`, then
    /// `Loaded` or `LoadFailed`. `interrupt` may be shared with a Ctrl+C handler: setting it
    /// cancels the running request.
    pub fn spawn(opts: EngineOptions, interrupt: Arc<AtomicBool>) -> Engine {
        let (tx, inbox) = crossbeam_channel::unbounded();
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("moat-inference".into())
            .spawn(move || serve::thread(opts, inbox, ev_tx, load_and_serve))
            .expect("can spawn the inference thread");
        let submitter = Submitter {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
            epoch: Arc::new(AtomicU64::new(0)),
            shared: interrupt,
        };
        Engine { submitter, events, thread: Some(thread) }
    }

    /// Starts the engine and waits until the model is loaded, calling `progress` on the way.
    pub fn start(
        opts: EngineOptions,
        interrupt: Arc<AtomicBool>,
        progress: impl FnMut(f32),
    ) -> Result<(Engine, ModelInfo), EngineError> {
        let engine = Engine::spawn(opts, interrupt);
        let info = engine.wait_loaded(progress)?;
        Ok((engine, info))
    }

    /// Blocks until the model being loaded is ready (or failed), calling `progress` on the way.
    pub fn wait_loaded(&self, mut progress: impl FnMut(f32)) -> Result<ModelInfo, EngineError> {
        loop {
            match self.events.recv() {
                Ok(Event::Loading(p)) => progress(p),
                Ok(Event::Loaded(info)) => return Ok(*info),
                Ok(Event::LoadFailed(error)) => return Err(error),
                Err(_) => return Err(EngineError::Gone),
            }
        }
    }

    /// Replaces the model; the outcome comes as `Loaded` or `LoadFailed` on [`events`](Engine::events).
    pub fn load(&self, opts: EngineOptions) {
        let _ = self.submitter.tx.send(Inbound::Load(Box::new(opts)));
    }

    /// Queues `task`; see [`Submitter::submit`].
    pub fn submit(&self, task: Task) -> Ticket {
        self.submitter.submit(task)
    }

    /// A cloneable submitter for another thread.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// Load events.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Cancels every request submitted so far (see [`Submitter::cancel_all`]).
    pub fn cancel(&self) {
        self.submitter.cancel_all();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.submitter.cancel_all();
        let _ = self.submitter.tx.send(Inbound::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
