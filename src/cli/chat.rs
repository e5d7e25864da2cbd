//! `moat chat` (and plain `moat` on a terminal): the full-screen chat.

use super::args::{ChatArgs, ModelArgs};
use super::setup::Setup;
use super::Failure;
use crate::chat::store::SessionStore;
use crate::history::History;
use crate::models::{ModelRef, Store};
use crate::tui::{self, app::App};
use std::io::IsTerminal;

pub fn run(flags: &ModelArgs, args: ChatArgs) -> Result<i32, Failure> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "the full-screen chat needs a terminal; for pipes and scripts use `moat ask` (or pipe text into `moat`)",
        ));
    }
    let setup = Setup::new(flags)?;
    let data_dir = setup.loaded.paths.data_dir.clone();
    let sessions = (!args.no_save).then(|| SessionStore::new(&data_dir));
    let reader = SessionStore::new(&data_dir);
    let resume = if let Some(name) = &args.session {
        SessionStore::check_name(name).map_err(|e| Failure::usage(e.to_string()))?;
        match reader.load(name) {
            Ok(s) => Some(Ok(s)),
            Err(crate::chat::store::SessionError::NotFound(_)) => Some(Err(name.clone())),
            Err(e) => return Err(Failure::usage(e.to_string())),
        }
    } else if args.resume {
        let name =
            reader.last().ok_or_else(|| Failure::usage("no saved session to resume; start one with `moat chat`"))?;
        Some(Ok(reader.load(&name).map_err(|e| Failure::usage(e.to_string()))?))
    } else {
        None
    };
    let (model, path) = setup.model_path()?;
    let opts = setup.engine_options(&model, path);
    let history = History::load(Some(data_dir.join("history.jsonl")));
    let mut app = App::new(setup.config().clone(), sessions, history);
    match resume {
        Some(Ok(saved)) => app.resume(saved),
        Some(Err(new_name)) => app.session.name = new_name,
        None => {}
    }
    let store = Store::new(setup.store.dir.clone());
    let pull = setup.pull_options(true);
    let resolver: tui::ModelResolver = Box::new(move |name, current| {
        let model = ModelRef::parse(name).map_err(|e| e.to_string())?;
        let quiet = crate::models::PullOptions { auto_pull: false, quiet: true, ..pull.clone() };
        let path = store.ensure(&model, &quiet).map_err(|e| e.to_string())?;
        let mut next = current.clone();
        next.model_path = path;
        next.model_name = model.display_name();
        Ok(next)
    });
    tui::run(app, opts, resolver).map_err(Failure::runtime)?;
    Ok(0)
}
