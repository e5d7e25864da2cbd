//! `moat chat` (and plain `moat` on a terminal): the full-screen chat; and what it shares with the
//! line REPL: choosing the session to open.

use super::args::{ChatArgs, ModelArgs};
use super::setup::Setup;
use super::Failure;
use crate::chat::db::DbError;
use crate::chat::inputs::InputLog;
use crate::chat::store::{SavedSession, SessionError, SessionStore};
use crate::history::History;
use crate::tui::{self, app::App};
use std::io::IsTerminal;
use std::path::Path;

pub fn run(flags: &ModelArgs, args: ChatArgs) -> Result<i32, Failure> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "the full-screen chat needs a terminal; for pipes and scripts use `moat ask`, `moat repl` (or pipe text into `moat`)",
        ));
    }
    // From the start: keys typed while the model downloads or loads wait, unechoed, for the chat
    // screen, and an Enter among them still sends.
    let _type_ahead = crate::type_ahead::TypeAhead::hold();
    let setup = Setup::new(flags)?;
    let data_dir = setup.loaded.paths.data_dir.clone();
    // --no-save with nothing to open touches no session database.
    let wanted = !args.no_save || args.session.is_some() || args.resume;
    let store = if wanted { open_sessions(&data_dir)? } else { None };
    let resume = session_to_open(&args, store.as_ref())?;
    let opts = setup.target()?;
    super::tune::first_use(&setup, &opts);
    let history = match store.as_ref().map(|_| InputLog::open(&data_dir)) {
        Some(Ok(log)) => History::with_sink(log.recent(crate::history::LIMIT), Box::new(log)),
        _ => History::load(Some(data_dir.join("history.jsonl"))),
    };
    let sessions = store.filter(|_| !args.no_save);
    let mut app = App::new(setup.config().clone(), sessions, history);
    app.session.library = super::prompts_cmd::library(setup.config(), &setup.loaded.paths.config_file)?;
    match resume {
        Some(Ok(saved)) => {
            app.resume(saved);
            // The session's own settings, except what this command line sets.
            app.session.sampling = flags.sampling.apply_to(&app.session.sampling);
        }
        Some(Err(new_name)) => app.session.name = new_name,
        None => {}
    }
    // Downloading inside the full-screen loop would freeze it, so /model only takes pulled models.
    tui::run(app, opts, setup.model_resolver(false)).map_err(Failure::runtime)?;
    Ok(0)
}

/// The session database in `data_dir`, its notes (JSON sessions imported) shown on stderr. A
/// damaged database stops the run (it is never overwritten); one that cannot be opened (a
/// read-only data dir) is reported in one line and the run goes on with the conversation in
/// memory only (`None`).
pub fn open_sessions(data_dir: &Path) -> Result<Option<SessionStore>, Failure> {
    match SessionStore::open(data_dir) {
        Ok(mut store) => {
            for note in store.take_notes() {
                warnln!("moat: {note}");
            }
            Ok(Some(store))
        }
        Err(e @ SessionError::Db(DbError::Damaged { .. })) => Err(Failure::runtime(e.to_string())),
        Err(e) => {
            warnln!("moat: {e}; this conversation is kept in memory only");
            Ok(None)
        }
    }
}

/// `--session NAME` (an existing one, or `Err(NAME)` to start it) or `--resume` (the last one),
/// read from `store` (none: sessions are unavailable, so `--session` starts a new one).
pub fn session_to_open(
    args: &ChatArgs,
    store: Option<&SessionStore>,
) -> Result<Option<Result<SavedSession, String>>, Failure> {
    if let Some(name) = &args.session {
        SessionStore::check_name(name).map_err(|e| Failure::usage(e.to_string()))?;
        let Some(reader) = store else { return Ok(Some(Err(name.clone()))) };
        return match reader.load(name) {
            Ok(s) => Ok(Some(Ok(s))),
            Err(SessionError::NotFound(_)) => Ok(Some(Err(name.clone()))),
            Err(e) => Err(Failure::usage(e.to_string())),
        };
    }
    if args.resume {
        let reader = store
            .ok_or_else(|| Failure::runtime("the session database is unavailable, so there is nothing to resume"))?;
        let name = reader.last().ok_or_else(|| Failure::usage("no saved session to resume; start one first"))?;
        return Ok(Some(Ok(reader.load(&name).map_err(|e| Failure::usage(e.to_string()))?)));
    }
    Ok(None)
}
