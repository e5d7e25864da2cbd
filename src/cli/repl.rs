//! `moat repl`: the line REPL, interactive on a terminal and scripted with piped stdin.

use super::args::{ChatArgs, ModelArgs};
use super::chat::{open_sessions, session_to_open};
use super::setup::{self, Setup};
use super::Failure;
use crate::chat::session::ChatSession;
use crate::chat::store::SessionStore;
use crate::models::Registry;
use crate::repl::Repl;
use std::io::IsTerminal;

pub fn run(flags: &ModelArgs, args: ChatArgs) -> Result<i32, Failure> {
    // From the start, so keys typed while the model loads wait for the first prompt too.
    let _type_ahead = crate::type_ahead::TypeAhead::hold();
    let setup = Setup::new(flags)?;
    let data_dir = setup.loaded.paths.data_dir.clone();
    // --no-save with nothing to open touches no session database.
    let wanted = !args.no_save || args.session.is_some() || args.resume;
    let store = if wanted { open_sessions(&data_dir)? } else { None };
    let resume = session_to_open(&args, store.as_ref())?;
    let opts = setup.target()?;
    super::tune::first_use(&setup, &opts);
    let sessions = store.filter(|_| !args.no_save);
    let mut session = ChatSession::new(setup.config(), sessions);
    session.library = super::prompts_cmd::library(setup.config(), &setup.loaded.paths.config_file)?;
    let mut greeting = None;
    match resume {
        Some(Ok(saved)) => {
            greeting = Some(session.resume(saved));
            // The session's own settings, except what this command line sets.
            session.sampling = flags.sampling.apply_to(&session.sampling);
        }
        Some(Err(new_name)) => session.name = new_name,
        None => {}
    }
    let (engine, info) = setup::start(opts.clone())?;
    let mut repl = Repl::new(session, engine, &info, opts, setup.model_resolver(true));
    if let Some(crate::chat::session::Outcome::Note(n)) = greeting {
        warnln!("moat: {n}");
    }
    if !std::io::stdin().is_terminal() {
        return Ok(repl.scripted(std::io::stdin().lock()));
    }
    let mut models: Vec<String> = Registry::builtin()
        .models
        .iter()
        .flat_map(|m| std::iter::once(m.name.clone()).chain(m.aliases.clone()))
        .collect();
    models.sort();
    let sessions_dir = data_dir.clone();
    let helper = crate::repl::helper(
        models,
        Box::new(move || {
            SessionStore::open(&sessions_dir)
                .map(|s| s.list())
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.name)
                .collect()
        }),
    );
    // The input history lives in the session database when it can be opened (with --no-save too:
    // it is what was typed, not the conversation), else in the file of earlier versions.
    let history = match crate::chat::inputs::InputLog::open(&data_dir) {
        Ok(log) => crate::repl::InputHistory::Log(log),
        Err(_) => crate::repl::InputHistory::File(data_dir.join("repl-history.txt")),
    };
    Ok(repl.interactive(history, helper))
}
