//! Full-screen chat (ratatui + crossterm). The loop owns the terminal and the engine handle; it
//! turns terminal and engine events into [`app::App`] updates and carries out the app's effects.
//! It waits on both channels at once and never on the model itself.

pub mod app;
pub mod bench;
pub mod editor;
pub mod transcript;
pub mod view;

use crate::chat::prompt_job::{self, EngineGenerator, PromptJob};
use crate::chat::switch;
use crate::engine::{Engine, EngineOptions, Ticket};
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
    let engine = Engine::spawn(opts.clone(), Arc::new(AtomicBool::new(false)));
    let mut current = opts;
    let mut terminal = enter()?;
    let keys = spawn_input_reader();
    let interrupted = crate::interrupt::install();
    let mut last_draw = Instant::now() - FRAME;
    // The task the chat submitted (a reply or a classification): its updates go to the app.
    let mut running: Option<Ticket> = None;
    let idle = crossbeam_channel::never();
    // A prompt job runs on its own thread (it submits and waits for its own tickets); its view
    // comes back here.
    let (job_done_tx, job_done) = crossbeam_channel::unbounded::<(PromptJob, Result<String, String>)>();
    // `/model` looks models up (the store, or a server over HTTP) on a thread too.
    let (models_tx, models) = crossbeam_channel::unbounded::<ModelAnswer>();
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
        let updates = running.as_ref().map_or(&idle, Ticket::updates);
        let effects = select! {
            recv(keys) -> ev => match ev {
                Ok(ev) => on_terminal_event(&mut app, ev),
                Err(_) => break Err("the terminal closed".into()),
            },
            recv(job_done) -> done => {
                if let Ok((job, result)) = done {
                    app.prompt_finished(&job, result);
                }
                app.ready_effects()
            },
            recv(models) -> answer => {
                match answer {
                    Ok(ModelAnswer::Listed(Ok(list))) => app.note(list),
                    Ok(ModelAnswer::Listed(Err(e))) => app.note(format!("cannot list models: {e}")),
                    Ok(ModelAnswer::Switch(Ok(next))) => {
                        current = (*next).clone();
                        engine.load(*next);
                    }
                    Ok(ModelAnswer::Switch(Err(e))) => app.load_failed(format!("cannot switch: {e}")),
                    Err(_) => {}
                }
                app.ready_effects()
            },
            recv(engine.events()) -> ev => match ev {
                Ok(ev) => {
                    app.on_engine(ev);
                    app.ready_effects()
                }
                Err(_) => break Err("the inference thread stopped unexpectedly; see the log (`moat config path`)".into()),
            },
            recv(updates) -> first => {
                // Everything that has arrived is drawn in one frame, not one frame per token.
                let ticket = running.as_mut().expect("selected on its channel");
                match ticket.poll_received(first, &mut app) {
                    Some(end) => {
                        running = None;
                        app.request_ended(end);
                        app.ready_effects()
                    }
                    None => Vec::new(),
                }
            },
            default(wait) => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::Submit(task) => running = Some(engine.submit(task)),
                Effect::Cancel => engine.cancel(),
                Effect::Quit => app.quit = true,
                Effect::Copy(text) => crate::clipboard::copy_osc52(&text),
                Effect::RunPrompt { job, n_ctx } => {
                    let mut gen = EngineGenerator::new(engine.submitter(), app.session.sampling.clone());
                    let lib = app.session.library.clone();
                    let done = job_done_tx.clone();
                    std::thread::spawn(move || {
                        let result = prompt_job::run(&job, &lib, n_ctx, &mut gen);
                        let _ = done.send((job, result));
                    });
                }
                Effect::SwitchModel(name) => {
                    let (from, resolve, answer) = (current.clone(), resolve.clone(), models_tx.clone());
                    std::thread::spawn(move || {
                        let _ = answer.send(ModelAnswer::Switch(switch::target(&from, &name, &resolve).map(Box::new)));
                    });
                }
                Effect::ListModels => {
                    let (from, resolve, answer) = (current.clone(), resolve.clone(), models_tx.clone());
                    std::thread::spawn(move || {
                        let _ = answer.send(ModelAnswer::Listed(switch::listing(&from, &resolve)));
                    });
                }
            }
        }
    };
    leave();
    result
}

/// What a `/model` look-up thread sends back.
enum ModelAnswer {
    Listed(Result<String, String>),
    Switch(Result<Box<EngineOptions>, String>),
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
