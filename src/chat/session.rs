//! One interactive conversation as every front end shares it: the messages, sampling settings, the
//! saved session and what each slash command does to them. Front ends (full-screen chat, line
//! REPL) only decide how to show the [`Outcome`]s.

use super::prompt_job::{self, PromptJob};
use super::search::{SearchHit, SearchQuery};
use super::store::{self, SavedSession, SessionError, SessionStore};
use super::{Conversation, Message, Role};
use crate::classify::mode::ClassifyMode;
use crate::commands::{self, SlashCommand};
use crate::config::{Config, OverflowPolicy, SamplingConfig};
use crate::engine::{GenStats, ModelInfo, StopReason, Task};
use crate::prompts::Library;

/// What a command or turn asks the front end to do or show.
/// What a typed message becomes (see [`ChatSession::route`]).
#[derive(Debug)]
pub enum Turn {
    /// The library prompt or script set with `/prompt` runs on it.
    Job(PromptJob),
    /// Classifier mode: its lines are classified.
    Classify(Task),
    /// An ordinary message, now in the conversation: this task answers it.
    Reply(Task),
    /// Classifier mode, but nothing to classify (blank lines).
    Nothing,
}

#[derive(Debug)]
pub enum Outcome {
    Note(String),
    Error(String),
    /// Submit this task to the engine.
    Send(Task),
    SwitchModel(String),
    /// List the models `/model` can switch to (the server's, or the store's).
    ListModels,
    /// Put this text on the clipboard; `what` names it for the confirmation.
    Copy {
        what: String,
        text: String,
    },
    /// The conversation was replaced or rewound: redraw it from [`ChatSession::conversation`].
    Reset,
    /// Put this text in the input line for editing.
    Edit(String),
    /// A list with marked parts (`/search` hits): `head`, then one line per row, each row in
    /// pieces where `true` marks text to emphasise (a match). The text is as stored: front ends
    /// sanitise it.
    Listing {
        head: String,
        rows: Vec<Vec<(String, bool)>>,
    },
    /// Turn the per-reply figures line on or off.
    StatsLine(bool),
    /// Run a library prompt or script; its result becomes the reply.
    RunPrompt(PromptJob),
    Quit,
}

pub struct ChatSession {
    pub conversation: Conversation,
    pub sampling: SamplingConfig,
    pub overflow: OverflowPolicy,
    pub reserve: u32,
    /// Display name of the loaded model (the short form of a server's id: see
    /// [`crate::engine::short_model_name`]).
    pub model: String,
    /// Where it runs: `CPU`, `GPU` or `remote HOST:PORT` ([`ModelInfo::device`]).
    pub device: String,
    pub name: String,
    created: String,
    store: Option<SessionStore>,
    /// Where this copy of the conversation stands in the session database.
    sync: store::SyncPoint,
    /// The figures of the reply about to be saved (JSON), stored with it.
    reply_stats: Option<String>,
    pub last: Option<GenStats>,
    /// The last assistant reply's text, for `/copy`.
    pub last_reply: Option<String>,
    /// An autosave that failed, for the front end to show once.
    pub save_warning: Option<String>,
    /// Messages that other moat processes added to this session and a save took in, for the front
    /// end to mention once (see [`ChatSession::joined_note`]).
    pub joined: usize,
    /// The prompt library, for `/prompts`, `/prompt` and `/run`.
    pub library: Library,
    /// A prompt armed by `/prompt` or `/run` for the next message.
    pending_prompt: Option<PromptJob>,
    /// Classifier mode (`/classify`): lines are classified instead of answered.
    pub classify: Option<ClassifyMode>,
    /// What classification needs to know of the loaded model (its labels when it is a sequence
    /// classifier, which cannot chat).
    pub classify_model: crate::classify::spec::Model,
    /// The hits of the last `/search`, for `/open N`.
    hits: Vec<SearchHit>,
    /// `/regen` or `/edit` has said once that the old reply stays as a branch.
    told_branches: bool,
}

/// How many hits `/search` lists.
pub const SEARCH_HITS: usize = 10;

/// What `/save NAME` and `/load NAME` say when there is no session database.
const NOT_SAVING: &str = "no session database in this run (--no-save, or it could not be opened); `/save FILE.json` (or .md) writes the conversation to a file";

/// What `/branches`, `/search` and `/open` say when there is no session database.
const NO_STORE: &str =
    "no session database in this run (--no-save, or it could not be opened): nothing to list or open";

impl ChatSession {
    pub fn new(config: &Config, store: Option<SessionStore>) -> ChatSession {
        ChatSession {
            conversation: Conversation::new(&config.chat.system_prompt),
            sampling: config.sampling.clone(),
            overflow: config.chat.overflow,
            reserve: config.chat.reserve,
            model: config.model.name.clone(),
            device: "CPU".into(),
            name: store::fresh_name(),
            created: store::now_stamp(),
            store,
            sync: store::SyncPoint::default(),
            reply_stats: None,
            last: None,
            last_reply: None,
            save_warning: None,
            joined: 0,
            library: Library::builtin(),
            pending_prompt: None,
            classify: None,
            classify_model: crate::classify::spec::Model { name: config.model.name.clone(), ..Default::default() },
            hits: Vec::new(),
            told_branches: false,
        }
    }

    pub fn store(&self) -> Option<&SessionStore> {
        self.store.as_ref()
    }

    /// Reopens a saved session: its messages, settings and name.
    pub fn resume(&mut self, s: SavedSession) -> Outcome {
        self.name = s.name;
        self.created = s.created;
        self.sampling = s.sampling;
        self.sync = s.sync;
        self.conversation = Conversation { messages: s.messages };
        self.last_reply =
            self.conversation.messages.iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.content.clone());
        Outcome::Note(format!("resumed session {} ({} messages)", self.name, self.conversation.messages.len()))
    }

    /// What a message typed into the conversation turns into, by the mode the session is in: a
    /// pending `/prompt` takes it as input, classifier mode classifies its lines, otherwise it
    /// is a user turn (saved with its reply) and the task answers it. Both front ends route input here.
    pub fn route(&mut self, text: String) -> Turn {
        if let Some(job) = self.take_prompt(&text) {
            return Turn::Job(job);
        }
        if let Some(mode) = self.classify.as_mut() {
            return mode.request(&text).map_or(Turn::Nothing, Turn::Classify);
        }
        Turn::Reply(self.user_turn(text))
    }

    /// A new user message; returns the request that answers it. The question is saved with its
    /// reply, as one turn in one transaction ([`ChatSession::reply_done`]), so turns from several
    /// processes never split a question from its answer; before it is sent, the turns other
    /// processes saved meanwhile join the conversation, so the prompt holds them.
    pub fn user_turn(&mut self, text: String) -> Task {
        self.conversation.push(Message::user(text));
        self.refresh();
        self.request()
    }

    /// Takes in what other moat processes saved to this session (nothing is written).
    fn refresh(&mut self) {
        let Some(store) = &self.store else { return };
        let saved = self.snapshot();
        match store.refresh(&saved, &mut self.sync) {
            Ok(merged) => {
                self.joined += merged.len().saturating_sub(self.conversation.messages.len());
                self.conversation.messages = merged;
            }
            Err(e) => self.save_warning = Some(e.to_string()),
        }
    }

    /// The request that answers the conversation as it stands.
    pub fn request(&self) -> Task {
        Task::Chat {
            messages: self.conversation.messages.clone(),
            sampling: self.sampling.clone(),
            overflow: self.overflow,
            reserve: self.reserve,
        }
    }

    /// The reply finished (or was stopped): it joins the conversation and the session is saved.
    pub fn reply_done(&mut self, text: String, reason: StopReason, stats: GenStats) {
        self.last_reply = Some(text.clone());
        self.conversation.push(Message::assistant(text));
        self.reply_stats = Some(reply_stats_json(&self.model, &stats, reason));
        self.last = Some(stats);
        self.autosave();
    }

    /// An error cut the reply off after `text` came: the text joins the conversation marked with
    /// `error` (see [`Message::cut_off`]) and the session is saved, so nothing that came is lost.
    pub fn reply_cut_off(&mut self, text: String, error: &str) {
        self.last_reply = Some(text.clone());
        let mut reply = Message::assistant(text);
        reply.cut_off = Some(error.to_string());
        self.conversation.push(reply);
        self.last = Some(GenStats::default());
        self.autosave();
    }

    /// The request failed before a reply: the question leaves the conversation and is returned so
    /// the front end can offer it for editing.
    pub fn reply_failed(&mut self) -> Option<String> {
        if self.conversation.messages.last().map(|m| m.role) == Some(Role::User) {
            return self.conversation.messages.pop().map(|m| m.content);
        }
        None
    }

    /// The engine dropped the oldest `n` messages to fit the context; mirror that here.
    pub fn trimmed(&mut self, n: usize) {
        let mut left = n;
        while left > 0 {
            match self.conversation.drop_oldest_turn() {
                0 => break,
                k => left = left.saturating_sub(k),
            }
        }
    }

    /// Takes note of a newly loaded model. A sequence classifier cannot chat, so classifier mode is
    /// switched on for it; the returned note says so.
    pub fn model_loaded(&mut self, info: &ModelInfo) -> Option<String> {
        let name = info.short_name();
        self.model = name.clone();
        self.device = info.device();
        self.classify_model = crate::classify::spec::Model::from(info);
        let labels = &info.classifier_labels;
        // Classifier mode is resolved again for the new model (its calibration, its head).
        let kept = self.classify.take().filter(|m| !m.is_native() || !labels.is_empty());
        if labels.is_empty() {
            // Label scoring needs a model that writes text: a native mode from an earlier model ends.
            self.classify = kept.and_then(|m| ClassifyMode::new(m.asked, &self.classify_model).ok());
            return None;
        }
        // The user's label order when it fits this model's labels, else the model's own.
        let mode = kept
            .and_then(|m| ClassifyMode::new(m.asked, &self.classify_model).ok())
            .or_else(|| ClassifyMode::for_model(None, &self.classify_model).ok())?;
        self.classify = Some(mode);
        Some(format!(
            "{name} is a sequence classifier ({}): classifier mode is on, each line you send is classified",
            labels.join(", ")
        ))
    }

    /// Carries out a slash command. `busy` = a reply is streaming, which rules out commands that
    /// rewrite the conversation.
    pub fn execute(&mut self, cmd: SlashCommand, busy: bool) -> Vec<Outcome> {
        let rewrites = matches!(
            cmd,
            SlashCommand::Clear
                | SlashCommand::System(_)
                | SlashCommand::Model(Some(_))
                | SlashCommand::Regen
                | SlashCommand::Edit(_)
                | SlashCommand::Load(_)
                | SlashCommand::Branches(Some(_))
                | SlashCommand::Open(_)
        );
        if busy && rewrites {
            return vec![Outcome::Error("a reply is still coming; stop it first (Esc or Ctrl+C)".into())];
        }
        let one = |o: Outcome| vec![o];
        match cmd {
            SlashCommand::Help => one(Outcome::Note(commands::help())),
            SlashCommand::Quit => one(Outcome::Quit),
            SlashCommand::Classify(labels) => {
                match ClassifyMode::for_model(labels, &self.classify_model) {
                    Ok(m) => {
                        let note = format!(
                            "classifier mode ({}): each line you send is classified on {}{}; /chat goes back",
                            m.labels.join(", "),
                            self.model,
                            if m.is_native() { " with its own head" } else { "" }
                        );
                        self.classify = Some(m);
                        one(Outcome::Note(note))
                    }
                    Err(e) => one(Outcome::Error(e)),
                }
            }
            SlashCommand::Chat => match self.classify.take() {
                Some(m) => one(Outcome::Note(format!("back to chat · {}", m.tally()))),
                None => one(Outcome::Note("already chatting".into())),
            },
            SlashCommand::Clear => {
                let system = self.conversation.messages.iter().find(|m| m.role == Role::System).cloned();
                self.conversation = Conversation::default();
                self.conversation.messages.extend(system);
                self.name = store::fresh_name();
                self.created = store::now_stamp();
                self.last_reply = None;
                vec![Outcome::Reset, Outcome::Note(format!("new conversation (session {})", self.name))]
            }
            SlashCommand::System(text) => {
                self.conversation.messages.retain(|m| m.role != Role::System);
                let note = if text.is_empty() {
                    "system prompt removed".to_string()
                } else {
                    self.conversation.messages.insert(0, Message::system(text.clone()));
                    format!("system prompt: {text}")
                };
                self.autosave();
                one(Outcome::Note(note))
            }
            SlashCommand::Model(Some(name)) => one(Outcome::SwitchModel(name)),
            SlashCommand::Model(None) => one(Outcome::ListModels),
            SlashCommand::Set(setting) => {
                setting.apply(&mut self.sampling);
                one(Outcome::Note(format!("{} = {}", setting.name(), setting.value())))
            }
            SlashCommand::Show => one(Outcome::Note(self.show())),
            SlashCommand::Regen => match self.unwind_to_last_user(false) {
                Some(_) => {
                    let mut out = vec![Outcome::Reset];
                    out.extend(self.branch_hint());
                    out.push(Outcome::Send(self.request()));
                    out
                }
                None => one(Outcome::Error("nothing to answer again yet".into())),
            },
            SlashCommand::Edit(replacement) => match self.unwind_to_last_user(true) {
                Some(text) => {
                    let mut out = vec![Outcome::Reset];
                    out.extend(self.branch_hint());
                    match replacement {
                        // `/edit TEXT` (the form a pipe can type): TEXT is the new message.
                        Some(new) => out.push(Outcome::Send(self.user_turn(new))),
                        None => out.push(Outcome::Edit(text)),
                    }
                    out
                }
                None => one(Outcome::Error("no message to edit yet".into())),
            },
            SlashCommand::Branches(None) => one(self.list_branches()),
            SlashCommand::Branches(Some(n)) => self.switch_branch(n),
            SlashCommand::Search(text) => one(self.search(&text)),
            SlashCommand::Open(n) => self.open_hit(n),
            SlashCommand::Copy(n) => one(self.copy(n)),
            SlashCommand::Save(name) if is_file_name(&name) => one(self.save_file(&name)),
            SlashCommand::Load(name) if is_file_name(&name) => self.load_file(&name),
            SlashCommand::Save(name) => {
                if let Err(e) = SessionStore::check_name(&name) {
                    return one(Outcome::Error(e.to_string()));
                }
                if name != self.name {
                    // Over another session: this conversation becomes its active path, a branch.
                    match self.store.as_ref().map(|st| st.branch_point(&name)) {
                        Some(Err(e)) => return one(Outcome::Error(e.to_string())),
                        Some(Ok(point)) => self.sync = point,
                        None => {}
                    }
                }
                self.name = name;
                match self.save() {
                    Ok(true) => one(Outcome::Note(format!("saved as {}", self.name))),
                    Ok(false) => one(Outcome::Error(NOT_SAVING.into())),
                    Err(e) => one(Outcome::Error(e)),
                }
            }
            SlashCommand::Load(name) => match self.store.as_ref().map(|s| s.load(&name)) {
                Some(Ok(s)) => {
                    let note = self.resume(s);
                    vec![Outcome::Reset, note]
                }
                Some(Err(e)) => one(Outcome::Error(e.to_string())),
                None => one(Outcome::Error(NOT_SAVING.into())),
            },
            SlashCommand::Sessions => {
                let list = self.store.as_ref().map(|s| s.list()).unwrap_or_default();
                if list.is_empty() {
                    return one(Outcome::Note("no saved sessions yet".into()));
                }
                let lines: Vec<String> = list
                    .iter()
                    .take(30)
                    .map(|s| format!("{:<28} {:>4} messages  {}", s.name, s.messages, s.updated))
                    .collect();
                one(Outcome::Note(format!("saved sessions (newest first; /load NAME):\n{}", lines.join("\n"))))
            }
            SlashCommand::Stats(Some(on)) => one(Outcome::StatsLine(on)),
            SlashCommand::Prompts(tag) => one(Outcome::Note(self.list_prompts(tag.as_deref()))),
            SlashCommand::PromptOff => {
                self.pending_prompt = None;
                one(Outcome::Note("messages go to the model as they are again".into()))
            }
            SlashCommand::Prompt(args) | SlashCommand::Run(args) => one(self.arm_prompt(&args)),
            SlashCommand::Stats(None) => one(Outcome::Note(match &self.last {
                Some(s) => format!(
                    "last reply: {} prompt tokens ({} reused from cache, {} decoded), {} generated, ttft {:.0} ms, {:.1} tok/s; context {}{}/{}{}",
                    s.prompt_tokens, s.reused_tokens, s.decoded_tokens, s.gen_tokens, s.ttft_ms, s.gen_tok_s,
                    if s.context_estimated { "~" } else { "" }, s.context_used, s.n_ctx,
                    if s.context_estimated { " (estimated: the server did not count it; see remote.tokenizer)" } else { "" }
                ),
                None => "no reply yet".into(),
            })),
        }
    }

    /// Once per session, when the reply being replaced is stored: where to find it again.
    fn branch_hint(&mut self) -> Option<Outcome> {
        if self.told_branches || self.store.is_none() || self.sync.path.is_empty() {
            return None;
        }
        self.told_branches = true;
        Some(Outcome::Note("the previous reply is kept: /branches lists and switches".into()))
    }

    /// `/branches`: one line per branch, the active one marked with `*`: its number, its length in
    /// messages, where it leaves the active path (1-based message index) and the first words of the
    /// message there and of its last one.
    fn list_branches(&self) -> Outcome {
        let Some(store) = &self.store else { return Outcome::Error(NO_STORE.into()) };
        let branches = match store.branches(&self.name) {
            Ok(b) => b,
            Err(SessionError::NotFound(_)) => {
                return Outcome::Note(format!("session {} is not saved yet: it has one branch", self.name))
            }
            Err(e) => return Outcome::Error(e.to_string()),
        };
        let mut lines = vec![format!("branches of session {} (/branches N switches):", self.name)];
        for b in &branches {
            let mark = if b.active { '*' } else { ' ' };
            let head = format!("{mark}{:>3}  {:>3} messages", b.n, b.messages);
            // One line of at most 80 columns: what comes before the excerpts takes up to 37.
            let line = if b.active {
                format!("{head} · active: {}", excerpt(&b.last.content, 40))
            } else if b.shared + 1 >= b.messages {
                format!("{head} · differs at {}: {}", b.shared + 1, excerpt(&b.first.content, 40))
            } else {
                format!(
                    "{head} · differs at {}: {} … {}",
                    b.shared + 1,
                    excerpt(&b.first.content, 16),
                    excerpt(&b.last.content, 16)
                )
            };
            lines.push(line);
        }
        Outcome::Note(lines.join("\n"))
    }

    /// `/branches N`: the conversation becomes branch `n`'s path, here and in the database.
    fn switch_branch(&mut self, n: usize) -> Vec<Outcome> {
        let Some(store) = &self.store else { return vec![Outcome::Error(NO_STORE.into())] };
        match store.switch_branch(&self.name, n) {
            Ok(s) => {
                let count = s.messages.len();
                self.sync = s.sync;
                self.conversation = Conversation { messages: s.messages };
                self.last_reply = self.last_reply_in_conversation();
                vec![
                    Outcome::Reset,
                    Outcome::Note(format!("switched to branch {n} of session {} ({count} messages)", self.name)),
                ]
            }
            Err(SessionError::NotFound(_)) => {
                vec![Outcome::Error(format!("session {} is not saved yet: it has no other branch", self.name))]
            }
            Err(e) => vec![Outcome::Error(e.to_string())],
        }
    }

    /// `/search WORDS`: the newest [`SEARCH_HITS`] matches over every session, kept for `/open`.
    fn search(&mut self, text: &str) -> Outcome {
        // Whatever this search gives, `/open N` never opens a hit of an earlier one.
        self.hits.clear();
        let Some(store) = &self.store else { return Outcome::Error(NO_STORE.into()) };
        let q = SearchQuery { text: text.to_string(), limit: SEARCH_HITS, ..Default::default() };
        let hits = match store.search(&q) {
            Ok(h) => h,
            Err(e) => return Outcome::Error(e.to_string()),
        };
        if hits.is_empty() {
            return Outcome::Note(format!("no saved message matches {text}"));
        }
        let rows = hits
            .iter()
            .enumerate()
            .flat_map(|(i, h)| {
                let head = format!("{:>3}  {} · {} · {}", i + 1, h.session, h.role.as_str(), h.created);
                let mut snippet = vec![("     ".to_string(), false)];
                snippet.extend(h.snippet.iter().cloned());
                [vec![(head, false)], snippet]
            })
            .collect();
        let head = format!("{} hit(s), newest first (/open N opens one):", hits.len());
        self.hits = hits;
        Outcome::Listing { head, rows }
    }

    /// `/open N`: the session that holds hit `n`, on the branch through it (like `/load`: the
    /// conversation open now is already saved).
    fn open_hit(&mut self, n: usize) -> Vec<Outcome> {
        let Some(store) = &self.store else { return vec![Outcome::Error(NO_STORE.into())] };
        let Some(hit) = self.hits.get(n.wrapping_sub(1)).cloned() else {
            return vec![Outcome::Error(match self.hits.len() {
                0 => "no search hits to open: /search WORDS first".to_string(),
                k => format!("the last /search has {k} hit(s): /open 1 to /open {k}"),
            })];
        };
        match store.open_message(hit.id) {
            Ok((s, at)) => {
                let count = s.messages.len();
                self.resume(s);
                vec![
                    Outcome::Reset,
                    Outcome::Note(format!(
                        "opened session {} at message {} of {count} (the {} message of hit {n})",
                        self.name,
                        at + 1,
                        hit.role.as_str()
                    )),
                ]
            }
            Err(e) => vec![Outcome::Error(e.to_string())],
        }
    }

    fn last_reply_in_conversation(&self) -> Option<String> {
        self.conversation.messages.iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.content.clone())
    }

    fn list_prompts(&self, tag: Option<&str>) -> String {
        let mut lines =
            vec!["prompt library (/prompt ID k=v, /run SCRIPT k=v; `moat prompts show ID` for details):".to_string()];
        for id in self.library.ids() {
            let Ok(p) = self.library.prompt(&id) else { continue };
            if tag.is_some_and(|t| !p.file.tags.iter().any(|x| x == t)) {
                continue;
            }
            let kind = if p.file.is_script() { "script" } else { "prompt" };
            lines.push(format!("  {id:<34} {kind:<7} {}", p.file.title.as_deref().unwrap_or("")));
        }
        lines.join("\n")
    }

    /// `/prompt ID k=v [--last | --file PATH]`: runs now on the last reply or the file, or waits
    /// for the next message.
    fn arm_prompt(&mut self, args: &str) -> Outcome {
        let prompt_job::JobArgs { id, vars, last, file } = match prompt_job::parse_args(args) {
            Ok(x) => x,
            Err(e) => return Outcome::Error(e),
        };
        if let Err(e) = self.library.resolve(&id) {
            return Outcome::Error(e.to_string());
        }
        if let Some(path) = file {
            return match prompt_job::read_input_file(&path) {
                Ok(input) => Outcome::RunPrompt(PromptJob { id, vars, input }),
                Err(e) => Outcome::Error(e),
            };
        }
        if last {
            return match &self.last_reply {
                Some(input) => Outcome::RunPrompt(PromptJob { id, vars, input: input.clone() }),
                None => Outcome::Error("there is no reply yet to run it on".into()),
            };
        }
        let note = format!("your next message goes through {id}; /prompt off cancels");
        self.pending_prompt = Some(PromptJob { id, vars, input: String::new() });
        Outcome::Note(note)
    }

    /// The armed prompt, with `input` as its input (once: the message after is a normal one).
    pub fn take_prompt(&mut self, input: &str) -> Option<PromptJob> {
        self.pending_prompt.take().map(|mut j| {
            j.input = input.to_string();
            j
        })
    }

    /// A prompt job finished: its input and result join the conversation like a turn.
    pub fn prompt_done(&mut self, job: &PromptJob, result: String) {
        self.conversation.push(Message::user(format!("[{}] {}", job.id, job.input)));
        self.last_reply = Some(result.clone());
        self.conversation.push(Message::assistant(result));
        self.autosave();
    }

    /// Removes the last user message and everything after it (`to_edit`), or only what follows it.
    /// Returns that message's text.
    fn unwind_to_last_user(&mut self, to_edit: bool) -> Option<String> {
        let i = self.conversation.messages.iter().rposition(|m| m.role == Role::User)?;
        let text = self.conversation.messages[i].content.clone();
        self.conversation.messages.truncate(if to_edit { i } else { i + 1 });
        self.last_reply =
            self.conversation.messages.iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.content.clone());
        Some(text)
    }

    fn copy(&self, n: Option<usize>) -> Outcome {
        let Some(reply) = &self.last_reply else { return Outcome::Error("no reply to copy yet".into()) };
        match n {
            None => Outcome::Copy { what: "the last reply".into(), text: reply.clone() },
            Some(n) => {
                let blocks = crate::render::code_blocks(reply);
                match blocks.get(n - 1) {
                    Some(b) => Outcome::Copy { what: format!("code block {n}"), text: b.code.clone() },
                    None => Outcome::Error(format!("the last reply has {} code block(s)", blocks.len())),
                }
            }
        }
    }

    pub fn show(&self) -> String {
        let settings: Vec<String> =
            self.sampling.settings().iter().map(|x| format!("{} {}", x.name(), x.value())).collect();
        let settings = settings.join(" · ");
        let system = self.conversation.messages.iter().find(|m| m.role == Role::System).map(|m| m.content.as_str());
        format!(
            "model {} ({})\n{}\nsystem prompt: {}\nsession: {} ({} messages){}",
            self.model,
            self.device,
            settings,
            system.unwrap_or("(none)"),
            self.name,
            self.conversation.messages.len(),
            self.store.as_ref().map(|st| format!(" in {}", st.path().display())).unwrap_or_default(),
        )
    }

    /// Saves when there is something to save; `Ok(false)` when sessions are off. Messages another
    /// process added to this session meanwhile join the conversation (see [`store`]'s merge rule).
    pub fn save(&mut self) -> Result<bool, String> {
        let Some(store) = &self.store else { return Ok(false) };
        let saved = self.snapshot();
        let merged = store.save(&saved, &mut self.sync, self.reply_stats.as_deref()).map_err(|e| e.to_string())?;
        self.reply_stats = None;
        self.joined += merged.len().saturating_sub(self.conversation.messages.len());
        self.conversation.messages = merged;
        Ok(true)
    }

    /// The conversation as a session to save.
    fn snapshot(&self) -> SavedSession {
        SavedSession {
            version: store::VERSION,
            name: self.name.clone(),
            model: self.model.clone(),
            sampling: self.sampling.clone(),
            messages: self.conversation.messages.clone(),
            created: self.created.clone(),
            updated: store::now_stamp(),
            sync: store::SyncPoint::default(),
        }
    }

    /// The note about messages other processes added, once: `None` when there were none.
    pub fn joined_note(&mut self) -> Option<String> {
        let n = std::mem::take(&mut self.joined);
        (n > 0).then(|| {
            format!(
                "{n} message(s) from another moat process joined session {} (the next prompt holds them)",
                self.name
            )
        })
    }

    /// Saves after a change, unless nothing but a system prompt exists yet. A failure is kept in
    /// `save_warning` for the front end to show.
    fn autosave(&mut self) {
        if self.conversation.messages.iter().all(|m| m.role == Role::System) {
            return;
        }
        if let Err(e) = self.save() {
            self.save_warning = Some(format!("{e}; `/save FILE.json` (or .md) writes this conversation to a file"));
        }
    }

    /// The conversation as held in memory, written to the file `name` (`/save ./notes.json`):
    /// what saves it when the database cannot. An existing file is never replaced.
    fn save_file(&self, name: &str) -> Outcome {
        let path = expand_home(name);
        if path.exists() {
            return Outcome::Error(format!("{} exists; pick another file name", path.display()));
        }
        let text = super::export::session_file(&self.snapshot(), &path);
        match crate::atomic_write::write_atomic(&path, text.as_bytes()) {
            Ok(()) => {
                Outcome::Note(format!("wrote {} messages to {}", self.conversation.messages.len(), path.display()))
            }
            Err(e) => Outcome::Error(format!("cannot write {}: {e}", path.display())),
        }
    }

    /// `/load ./notes.json`: a session file (a JSON export, or one of an earlier version).
    fn load_file(&mut self, name: &str) -> Vec<Outcome> {
        let path = expand_home(name);
        let bytes = match std::fs::metadata(&path) {
            Ok(m) if m.len() > 64 << 20 => {
                return vec![Outcome::Error(format!("{} is over 64 MiB; not a session file", path.display()))]
            }
            Ok(_) => std::fs::read(&path),
            Err(e) => Err(e),
        };
        let parsed = bytes.map_err(|e| e.to_string()).and_then(|b| store::parse(&b));
        match parsed {
            Ok(mut s) => {
                if SessionStore::check_name(&s.name).is_err() {
                    s.name = store::fresh_name();
                }
                // A new copy in the database (under the file's name when that is free), never a
                // merge into a stored session of the same name.
                let taken = self.store.as_ref().is_some_and(|st| st.load(&s.name).is_ok());
                if taken {
                    s.name = store::fresh_name();
                }
                let note = self.resume(s);
                self.autosave();
                vec![Outcome::Reset, note]
            }
            Err(why) => vec![Outcome::Error(format!("{} is not a moat session file: {why}", path.display()))],
        }
    }
}

/// The start of `text` on one line (runs of white space become one space), sanitised, at most
/// `cols` terminal columns (CJK characters take two), with `…` when cut, quoted.
fn excerpt(text: &str, cols: usize) -> String {
    use unicode_width::UnicodeWidthChar;
    let flat = crate::render::sanitize(text).split_whitespace().collect::<Vec<_>>().join(" ");
    let (mut out, mut used) = (String::new(), 0);
    for c in flat.chars() {
        used += c.width().unwrap_or(0);
        if used > cols {
            out.push('…');
            break;
        }
        out.push(c);
    }
    format!("\"{out}\"")
}

/// `/save` and `/load` take a file when the name has a path separator or a `.json`/`.md` ending
/// (session names are plain words: see [`SessionStore::check_name`]).
fn is_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.contains('/') || name.contains('\\') || [".json", ".md", ".markdown"].iter().any(|e| lower.ends_with(e))
}

fn expand_home(name: &str) -> std::path::PathBuf {
    match (name.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
        _ => std::path::PathBuf::from(name),
    }
}

/// The figures stored with a reply in the session database, as JSON: `model`, `prompt_tokens`,
/// `gen_tokens`, `ttft_ms` (milliseconds), `gen_tok_s` (tokens per second) and `stop_reason` (the
/// name `ask --json` uses). The chat, the REPL and logged `ask` runs store the same shape.
pub fn reply_stats_json(model: &str, stats: &GenStats, reason: StopReason) -> String {
    serde_json::json!({
        "model": model,
        "prompt_tokens": stats.prompt_tokens,
        "gen_tokens": stats.gen_tokens,
        "ttft_ms": stats.ttft_ms,
        "gen_tok_s": stats.gen_tok_s,
        "stop_reason": reason,
    })
    .to_string()
}

#[cfg(test)]
mod tests;
