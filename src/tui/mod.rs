//! Full-screen chat (ratatui + crossterm). The loop owns the terminal and the engine handle; it
//! turns terminal and engine events into [`app::App`] updates and carries out the app's effects.
//! It waits on both channels at once and never on the model itself.

pub mod app;
pub mod bench;
pub mod editor;
pub mod transcript;
pub mod view;

use crate::chat::prompt_job::{self, ChannelGenerator, PromptJob, JOB_IDS};
use crate::engine::{Engine, EngineOptions, Request};
use crate::models::ModelResolver;
use app::{App, Effect};
use crossbeam_channel::{select, Receiver};
use ratatui::crossterm::event::{
    self, DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::crossterm::execute;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames are drawn at most this often; tokens that arrive in between are drawn together.
pub(crate) const FRAME: Duration = Duration::from_millis(16);

pub fn run(mut app: App, opts: EngineOptions, resolve: ModelResolver) -> Result<(), String> {
    std::thread::spawn(crate::render::warm_up);
    let cancel = Arc::new(AtomicBool::new(false));
    let mut engine = Engine::spawn(opts.clone(), cancel);
    let mut current = opts;
    let mut terminal = enter()?;
    let keys = spawn_input_reader();
    let interrupted = crate::interrupt::install();
    let mut last_draw = Instant::now() - FRAME;
    // A running prompt job: where its engine events go, and where its result comes back.
    let mut job_events: Option<crossbeam_channel::Sender<crate::engine::Event>> = None;
    let (job_done_tx, job_done) = crossbeam_channel::unbounded::<(PromptJob, Result<String, String>)>();
    let result = loop {
        if app.dirty && last_draw.elapsed() >= FRAME {
            if let Err(e) = terminal.draw(|f| view::draw(f, &mut app)) {
                break Err(format!("cannot draw: {e}"));
            }
            app.dirty = false;
            last_draw = Instant::now();
        }
        if app.quit || interrupted.load(std::sync::atomic::Ordering::SeqCst) {
            break Ok(());
        }
        let wait = if app.dirty { FRAME.saturating_sub(last_draw.elapsed()) } else { Duration::from_millis(250) };
        let effects = select! {
            recv(keys) -> ev => match ev {
                Ok(ev) => on_terminal_event(&mut app, ev),
                Err(_) => break Err("the terminal closed".into()),
            },
            recv(job_done) -> done => {
                job_events = None;
                if let Ok((job, result)) = done {
                    app.prompt_finished(&job, result);
                }
                app.ready_effects()
            },
            recv(engine.events()) -> ev => {
                match ev {
                    Ok(ev) if event_id(&ev).is_some_and(|id| id >= JOB_IDS) => {
                        if let Some(tx) = &job_events {
                            let _ = tx.send(ev);
                        }
                    }
                    Ok(ev) => app.on_engine(ev),
                    Err(_) => break Err("the inference thread stopped unexpectedly; see the log (`moat config path`)".into()),
                }
                // Drain what else arrived so a fast stream costs one frame, not one per token.
                while let Ok(ev) = engine.events().try_recv() {
                    match (&job_events, event_id(&ev)) {
                        (Some(tx), Some(id)) if id >= JOB_IDS => {
                            let _ = tx.send(ev);
                        }
                        _ => app.on_engine(ev),
                    }
                }
                app.ready_effects()
            },
            default(wait) => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Send(req) => {
                    let id = engine.send(|id| req.with_id(id));
                    app.started(id);
                }
                Effect::Cancel => engine.cancel(),
                Effect::Quit => app.quit = true,
                Effect::Copy(text) => crate::clipboard::copy_osc52(&text),
                Effect::RunPrompt(job) => {
                    engine.cancel_flag().store(false, std::sync::atomic::Ordering::SeqCst);
                    let (tx, rx) = crossbeam_channel::unbounded();
                    job_events = Some(tx);
                    let mut gen = ChannelGenerator::new(engine.sender(), rx, app.session.sampling.clone());
                    let lib = app.session.library.clone();
                    let n_ctx = app.status.n_ctx.max(512);
                    let done = job_done_tx.clone();
                    std::thread::spawn(move || {
                        let result = prompt_job::run(&job, &lib, n_ctx, &mut gen);
                        let _ = done.send((job, result));
                    });
                }
                Effect::SwitchModel(name) => match resolve.resolve(&name) {
                    Ok(model) => {
                        let next = EngineOptions {
                            model_path: model.path.clone(),
                            model_name: model.display_name(),
                            ..current.clone()
                        };
                        current = next.clone();
                        engine.send_plain(Request::Load(next));
                    }
                    Err(e) => {
                        app.status.loading = None;
                        app.note(format!("cannot switch: {e}"));
                    }
                },
            }
        }
    };
    leave();
    result
}

fn event_id(ev: &crate::engine::Event) -> Option<crate::engine::RequestId> {
    use crate::engine::Event as E;
    match ev {
        E::Token { id, .. }
        | E::Done { id, .. }
        | E::Trimmed { id, .. }
        | E::Bench { id, .. }
        | E::Scored { id, .. }
        | E::Embedded { id, .. } => Some(*id),
        E::Error { id, .. } => *id,
        E::Loading(_) | E::Loaded(_) => None,
    }
}

fn on_terminal_event(app: &mut App, ev: event::Event) -> Vec<Effect> {
    match ev {
        event::Event::Key(k) => app.on_key(k),
        event::Event::Paste(s) => {
            app.on_paste(&s);
            Vec::new()
        }
        event::Event::Mouse(m) => {
            app.on_mouse(m);
            Vec::new()
        }
        event::Event::Resize(..) => {
            app.dirty = true;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Terminal events from a thread of their own, so the loop can wait on them and the engine together.
fn spawn_input_reader() -> Receiver<event::Event> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("moat-input".into())
        .spawn(move || {
            while let Ok(ev) = event::read() {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .expect("can spawn the input thread");
    rx
}

fn enter() -> Result<ratatui::DefaultTerminal, String> {
    // ratatui's hook restores raw mode and the screen; ours also turns off paste and mouse modes
    // first, so a panic leaves a usable shell.
    let terminal = ratatui::try_init().map_err(|e| format!("cannot start the full-screen chat: {e}"))?;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableBracketedPaste, DisableMouseCapture);
        ratatui::restore();
        previous(info);
    }));
    let _ = execute!(std::io::stdout(), EnableBracketedPaste, EnableMouseCapture);
    Ok(terminal)
}

fn leave() {
    let _ = execute!(std::io::stdout(), DisableBracketedPaste, DisableMouseCapture);
    ratatui::restore();
}

#[cfg(test)]
mod tests;
