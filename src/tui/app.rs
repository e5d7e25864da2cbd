//! Chat state and how it changes: keys, pastes and engine events go in, effects for the event loop
//! come out. Nothing here touches the terminal or the engine directly, so the whole thing runs
//! against ratatui's `TestBackend` in tests and benchmarks.

use super::editor::Editor;
use super::transcript::{Entry, Kind, Transcript};
use crate::chat::prompt_job::PromptJob;
use crate::chat::session::{ChatSession, Outcome, Turn};
use crate::chat::store::{SavedSession, SessionStore};
use crate::chat::Role;
use crate::commands;
use crate::config::Config;
use crate::engine::{EngineError, Event, Finish, GenStats, ItemResult, ModelInfo, Sink, StopReason, Task};
use crate::history::History;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use std::time::{Duration, Instant};

/// What the event loop must do on the app's behalf.
#[derive(Debug)]
pub enum Effect {
    /// Submit this task; feed its updates to the app (it is a [`Sink`]) and its ending to
    /// [`App::request_ended`].
    Submit(Task),
    /// Cancel what is running (the reply, the classification or the prompt job).
    Cancel,
    /// Load another model (a name or path, or a server's model id; resolved by the loop off the
    /// event loop, see [`crate::chat::switch`]).
    SwitchModel(String),
    /// List the models `/model` can switch to; the loop shows the list with [`App::note`].
    ListModels,
    /// Put text on the clipboard (OSC 52).
    Copy(String),
    /// Run a library prompt or script beside the chat; report back with [`App::prompt_finished`].
    RunPrompt {
        job: PromptJob,
        /// The model's context in tokens for the job's input budget; 0 when a server does not
        /// say, which means no budget ([`crate::chat::prompt_job::budget`], as in the REPL).
        n_ctx: usize,
    },
    Quit,
}

/// What the status line shows.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// The model's short name ([`ModelInfo::short_name`]).
    pub model: String,
    /// Where it runs: `CPU`, `GPU` or `remote HOST:PORT` ([`ModelInfo::device`]).
    pub device: String,
    pub ctx_used: usize,
    pub n_ctx: usize,
    /// `ctx_used` is an estimate (shown as `~N`).
    pub ctx_estimated: bool,
    pub last: Option<GenStats>,
}

/// What the chat is doing; the one place that says whether the engine is busy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// A model is loading (progress 0..=1); messages sent now are queued.
    Loading(f32),
    /// Ready for a message.
    Idle,
    /// A reply streams into transcript entry `entry`.
    Replying { entry: usize },
    /// Classifier mode: the lines of a message are being classified.
    Classifying,
    /// A library prompt or script runs beside the chat; its view lands in entry `entry`.
    RunningJob { entry: usize },
}

/// Ctrl+R search state.
pub struct Search {
    pub query: String,
    pub hit: Option<usize>,
}

pub struct App {
    pub transcript: Transcript,
    pub editor: Editor,
    pub history: History,
    pub status: Status,
    pub search: Option<Search>,
    /// Lines scrolled up from the bottom; 0 follows new output.
    pub scroll: usize,
    /// Height of the transcript pane at the last frame, for paging.
    pub page: usize,
    pub width: u16,
    /// The conversation, its settings and its saved file, shared with the REPL.
    pub session: ChatSession,
    pub phase: Phase,
    ctrl_c_at: Option<Instant>,
    pub quit: bool,
    pub dirty: bool,
    pub hint: Option<String>,
    /// Messages sent with Enter while the model loaded or a reply streamed (text, was pasted), in
    /// order: each goes out as soon as the engine is free, so typed-ahead input is never dropped,
    /// merged with the next line, or left waiting for another key.
    queued: std::collections::VecDeque<(String, bool)>,
}

impl App {
    pub fn new(config: Config, sessions: Option<SessionStore>, history: History) -> App {
        App {
            transcript: Transcript::default(),
            editor: Editor::default(),
            history,
            status: Status { model: config.model.name.clone(), device: "CPU".into(), ..Default::default() },
            search: None,
            scroll: 0,
            page: 10,
            width: 80,
            session: ChatSession::new(&config, sessions),
            phase: Phase::Loading(0.0),
            ctrl_c_at: None,
            quit: false,
            dirty: true,
            hint: None,
            queued: Default::default(),
        }
    }

    /// What to do now that the engine may have become free: a message queued with Enter while
    /// it was busy is sent.
    pub fn ready_effects(&mut self) -> Vec<Effect> {
        if self.phase != Phase::Idle {
            return Vec::new();
        }
        let Some((text, pasted)) = self.queued.pop_front() else { return Vec::new() };
        self.hint = None;
        self.dirty = true;
        // Whatever is being typed now waits in the editor until this one is on its way.
        let typing = self.editor.take();
        let was_pasted = self.editor.pasted;
        self.editor.set(&text);
        self.editor.pasted = pasted;
        let effects = self.submit_now();
        self.editor.set(&typing);
        self.editor.pasted = was_pasted;
        effects
    }

    /// Reopens a saved session: its messages, settings and name.
    pub fn resume(&mut self, s: SavedSession) {
        let note = self.session.resume(s);
        self.rebuild_transcript();
        self.show(vec![note]);
    }

    fn rebuild_transcript(&mut self) {
        self.transcript.clear();
        for m in &self.session.conversation.messages {
            let kind = match m.role {
                Role::User => Kind::User,
                Role::Assistant => Kind::Assistant,
                Role::System => Kind::Note,
            };
            let text = if m.role == Role::System { format!("system prompt: {}", m.content) } else { m.content.clone() };
            let mut entry = Entry::new(kind, text);
            if m.cut_off.is_some() {
                entry.tag = "cut off by an error".into();
            }
            self.transcript.push(entry);
        }
        self.scroll = 0;
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.transcript.push(Entry::new(Kind::Note, text));
        self.dirty = true;
    }

    fn error(&mut self, text: impl Into<String>) {
        self.transcript.push(Entry::new(Kind::Error, text));
        self.dirty = true;
    }

    /// Whether a reply, classification or prompt job is running (Esc and Ctrl+C stop it).
    pub fn generating(&self) -> bool {
        matches!(self.phase, Phase::Replying { .. } | Phase::Classifying | Phase::RunningJob { .. })
    }

    // ---- engine events -------------------------------------------------------------------------

    /// Load news from the engine.
    pub fn on_engine(&mut self, ev: Event) {
        self.dirty = true;
        match ev {
            Event::Loading(p) => self.phase = Phase::Loading(p),
            Event::Loaded(info) => self.loaded(&info),
            Event::LoadFailed(error) => self.load_failed(error.to_string()),
        }
    }

    /// A model could not be loaded (or the name given to /model not resolved).
    pub fn load_failed(&mut self, why: String) {
        if let Phase::Loading(_) = self.phase {
            self.phase = Phase::Idle;
        }
        self.error(why);
    }

    /// The submitted task ended.
    pub fn request_ended(&mut self, end: Result<Finish, EngineError>) {
        self.dirty = true;
        match (end, self.phase) {
            (Ok(Finish { reason, .. }), Phase::Classifying) => {
                self.phase = Phase::Idle;
                if reason == StopReason::Cancelled {
                    self.error("stopped: the lines above were classified, the rest were not");
                }
                if let Some(m) = &self.session.classify {
                    self.note(m.tally());
                }
            }
            (Ok(Finish { reason, stats }), Phase::Replying { entry }) => self.finished(entry, reason, stats),
            (Ok(_), _) => {}
            (Err(error), _) => self.failed(error.to_string()),
        }
    }

    fn loaded(&mut self, info: &ModelInfo) {
        if let Phase::Loading(_) = self.phase {
            self.phase = Phase::Idle;
        }
        self.status.model = info.short_name();
        self.status.device = info.device();
        let classifier_note = self.session.model_loaded(info);
        self.status.n_ctx = info.n_ctx as usize;
        self.status.ctx_used = 0;
        self.note(format!(
            "{} loaded in {:.1} s · {} · chat format: {} · /help for commands",
            self.status.model,
            info.load_ms / 1000.0,
            match &info.remote {
                Some(_) => info.device(),
                None if info.gpu => format!("{} layers on the GPU", info.gpu_layers),
                None => "CPU".into(),
            },
            info.chat_format
        ));
        if let Some(n) = classifier_note {
            self.note(n);
        }
        if let Some(n) = &info.gpu_note {
            self.error(n.clone());
        }
    }

    fn stream(&mut self, text: &str) {
        let Phase::Replying { entry: index } = self.phase else { return };
        let before = if self.scroll > 0 { Some(self.transcript.total_lines(self.width)) } else { None };
        self.transcript.append_to(index, text);
        // Reading above: keep the same lines in view instead of following the new text.
        if let Some(before) = before {
            let after = self.transcript.total_lines(self.width);
            self.scroll += after.saturating_sub(before);
        }
    }

    fn finished(&mut self, index: usize, reason: StopReason, stats: GenStats) {
        self.phase = Phase::Idle;
        let reply = self.transcript.entries().get(index).map(|e| e.text.clone());
        let tag = match reason {
            StopReason::Cancelled => "stopped",
            StopReason::MaxTokens => "cut at max_tokens",
            StopReason::ContextFull => "cut: context full",
            _ => "",
        };
        let tag = format!("{}{}{}", self.status.model, if tag.is_empty() { "" } else { " · " }, tag);
        self.transcript.set_tag(index, &tag);
        self.status.ctx_used = stats.context_used;
        self.status.ctx_estimated = stats.context_estimated;
        self.status.n_ctx = stats.n_ctx.max(self.status.n_ctx);
        self.status.last = Some(stats.clone());
        let note = stats.note.clone();
        self.session.reply_done(reply.unwrap_or_default(), reason, stats);
        self.take_save_warning();
        if let Some(n) = note {
            self.note(n);
        }
    }

    fn take_save_warning(&mut self) {
        if let Some(w) = self.session.save_warning.take() {
            self.error(w);
        }
        if let Some(w) = self.history.take_warning() {
            self.error(w);
        }
        if self.session.joined > 0 {
            self.show_joined();
        }
        if let Some(n) = self.session.joined_note() {
            self.note(n);
        }
    }

    /// Another moat process's messages joined the conversation on a save, somewhere before this
    /// one's newest: the transcript is drawn again from the conversation, and a reply or job
    /// still streaming keeps its entry (moved to the end, where it belongs).
    fn show_joined(&mut self) {
        let streaming = match self.phase {
            Phase::Replying { entry } | Phase::RunningJob { entry } => self.transcript.take(entry),
            _ => None,
        };
        self.rebuild_transcript();
        if let Some(e) = streaming {
            self.transcript.push(e);
            let at = self.transcript.entries().len() - 1;
            if let Phase::Replying { entry } | Phase::RunningJob { entry } = &mut self.phase {
                *entry = at;
            }
        }
        self.dirty = true;
    }

    fn failed(&mut self, why: String) {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        let partial = match phase {
            Phase::Replying { entry } => self.transcript.entries().get(entry).map(|e| (entry, e.text.clone())),
            _ => None,
        };
        if let Some((index, text)) = partial.filter(|(_, t)| !t.is_empty()) {
            // Cut off mid-reply (a server that died): what came stays, marked, and is saved.
            self.transcript.set_tag(index, &format!("{} · cut off by an error", self.status.model));
            self.session.reply_cut_off(text, &why);
            self.take_save_warning();
        } else if let Phase::Replying { entry: index } = phase {
            // The question goes back into the input box so nothing typed is lost.
            self.transcript.remove(index);
            if let Some(q) = self.session.reply_failed() {
                if index > 0 && self.transcript.entries().get(index - 1).map(|e| e.kind) == Some(Kind::User) {
                    self.transcript.remove(index - 1);
                }
                if self.editor.is_empty() {
                    self.editor.set(&q);
                }
            }
        }
        self.error(why);
    }

    // ---- input ---------------------------------------------------------------------------------

    pub fn on_paste(&mut self, text: &str) {
        self.search = None;
        self.editor.paste(text);
        self.dirty = true;
    }

    pub fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollUp => self.scroll_by(3),
            MouseEventKind::ScrollDown => self.scroll_by(-3),
            _ => {}
        }
    }

    fn scroll_by(&mut self, lines: isize) {
        let total = self.transcript.total_lines(self.width);
        let max = total.saturating_sub(self.page);
        self.scroll = (self.scroll as isize + lines).clamp(0, max as isize) as usize;
        self.dirty = true;
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        self.dirty = true;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if key.code != KeyCode::Char('c') || !ctrl {
            self.ctrl_c_at = None;
        }
        if self.search.is_some() {
            return self.on_search_key(key);
        }
        self.hint = None;
        match key.code {
            KeyCode::Char('c') if ctrl => return self.ctrl_c(),
            KeyCode::Char('d') if ctrl => {
                if self.editor.is_empty() {
                    return self.quit();
                }
                self.editor.delete();
            }
            KeyCode::Esc => {
                if self.generating() {
                    return vec![Effect::Cancel];
                }
            }
            KeyCode::Enter if alt => self.editor.insert('\n'),
            KeyCode::Char('j') if ctrl => self.editor.insert('\n'),
            KeyCode::Enter => return self.submit(),
            KeyCode::Char('r') if ctrl => {
                self.search = Some(Search { query: String::new(), hit: None });
            }
            KeyCode::Char('u') if ctrl => self.editor.kill_to_start(),
            KeyCode::Char('w') if ctrl => self.editor.delete_word(),
            KeyCode::Char('a') if ctrl => self.editor.home(),
            KeyCode::Char('e') if ctrl => self.editor.end(),
            KeyCode::Char('l') if ctrl => self.scroll = 0,
            KeyCode::Char('t') if ctrl => self.transcript.show_reasoning = !self.transcript.show_reasoning,
            KeyCode::Char(c) if !ctrl => self.editor.insert(c),
            KeyCode::Tab => self.complete(),
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home if ctrl || self.editor.is_empty() => self.scroll_by(isize::MAX / 2),
            KeyCode::End if ctrl || self.editor.is_empty() => self.scroll = 0,
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::PageUp => self.scroll_by(self.page.saturating_sub(2).max(1) as isize),
            KeyCode::PageDown => self.scroll_by(-(self.page.saturating_sub(2).max(1) as isize)),
            KeyCode::Up if self.editor.on_first_line() => {
                let current = self.editor.text().to_string();
                if let Some(e) = self.history.older(&current).map(str::to_string) {
                    self.editor.set(&e);
                }
            }
            KeyCode::Down if self.editor.on_last_line() => {
                if let Some(e) = self.history.newer().map(str::to_string) {
                    self.editor.set(&e);
                }
            }
            KeyCode::Up => self.editor.vertical(true),
            KeyCode::Down => self.editor.vertical(false),
            _ => self.dirty = false,
        }
        Vec::new()
    }

    fn ctrl_c(&mut self) -> Vec<Effect> {
        if self.generating() {
            return vec![Effect::Cancel];
        }
        if !self.editor.is_empty() {
            self.editor.take();
            return Vec::new();
        }
        let now = Instant::now();
        if self.ctrl_c_at.is_some_and(|t| now.duration_since(t) < Duration::from_secs(3)) {
            return self.quit();
        }
        self.ctrl_c_at = Some(now);
        self.hint = Some("press Ctrl+C again to quit (or Ctrl+D, /quit)".into());
        Vec::new()
    }

    fn quit(&mut self) -> Vec<Effect> {
        self.quit = true;
        let mut out = Vec::new();
        if self.generating() {
            out.push(Effect::Cancel);
        }
        out.push(Effect::Quit);
        out
    }

    fn on_search_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let search = self.search.as_mut().expect("searching");
        match key.code {
            KeyCode::Esc => self.search = None,
            KeyCode::Char('c') | KeyCode::Char('g') if ctrl => self.search = None,
            KeyCode::Enter | KeyCode::Right | KeyCode::Left => {
                if let Some(i) = search.hit {
                    let e = self.history.entries()[i].clone();
                    self.editor.set(&e);
                }
                self.search = None;
            }
            KeyCode::Char('r') if ctrl => {
                let before = search.hit.unwrap_or(self.history.entries().len());
                if let Some((i, _)) = self.history.search(&search.query, before) {
                    search.hit = Some(i);
                }
            }
            KeyCode::Backspace => {
                search.query.pop();
                search.hit = self.history.search(&search.query, usize::MAX).map(|(i, _)| i);
            }
            KeyCode::Char(c) if !ctrl => {
                search.query.push(c);
                search.hit = self.history.search(&search.query, usize::MAX).map(|(i, _)| i);
            }
            _ => {}
        }
        Vec::new()
    }

    fn complete(&mut self) {
        let text = self.editor.text().to_string();
        let options = commands::complete(&text);
        match options.as_slice() {
            [] => {}
            [one] => {
                let completed = match text.rsplit_once(char::is_whitespace) {
                    Some((head, _)) => format!("{head} {one} "),
                    None => format!("/{one} "),
                };
                self.editor.set(&completed);
            }
            many => self.hint = Some(many.join("  ")),
        }
    }

    fn submit(&mut self) -> Vec<Effect> {
        let text = self.editor.text().to_string();
        if text.trim().is_empty() {
            return Vec::new();
        }
        let pasted = self.editor.pasted;
        if !pasted {
            if let Some(parsed) = commands::parse(&text) {
                self.history.add(&text);
                self.editor.take();
                return match parsed {
                    Ok(cmd) => {
                        let outcomes = self.session.execute(cmd, self.generating());
                        self.show(outcomes)
                    }
                    Err(e) => {
                        self.error(e.to_string());
                        Vec::new()
                    }
                };
            }
        }
        if self.phase != Phase::Idle || !self.queued.is_empty() {
            self.history.add(&text);
            self.editor.take();
            self.queued.push_back((text, pasted));
            let when = if self.generating() { "this reply ends; Esc stops it" } else { "the model has loaded" };
            let n = self.queued.len();
            self.hint = Some(format!("{n} message{} queued; sent when {when}", if n == 1 { "" } else { "s" }));
            return Vec::new();
        }
        self.history.add(&text);
        self.submit_now()
    }

    /// Sends the editor's message now (the engine is free; history already has it).
    fn submit_now(&mut self) -> Vec<Effect> {
        let text = self.editor.text().to_string();
        let pasted = self.editor.pasted;
        self.editor.take();
        // `//text` sends `/text`.
        let text = if !pasted && text.starts_with("//") { text[1..].to_string() } else { text };
        match self.session.route(text.clone()) {
            Turn::Job(job) => {
                self.transcript.push(Entry::new(Kind::User, format!("[{}] {text}", job.id)));
                self.start_job(job)
            }
            Turn::Classify(task) => {
                self.transcript.push(Entry::new(Kind::User, text));
                self.phase = Phase::Classifying;
                self.scroll = 0;
                vec![Effect::Submit(task)]
            }
            Turn::Nothing => {
                self.transcript.push(Entry::new(Kind::User, text));
                Vec::new()
            }
            Turn::Reply(task) => {
                self.transcript.push(Entry::new(Kind::User, text));
                self.take_save_warning();
                self.ask(task)
            }
        }
    }

    /// Starts streaming a reply to `task`.
    fn ask(&mut self, task: Task) -> Vec<Effect> {
        let mut reply = Entry::new(Kind::Assistant, "");
        reply.tag = format!("{} …", self.status.model);
        self.transcript.push(reply);
        self.phase = Phase::Replying { entry: self.transcript.entries().len() - 1 };
        self.scroll = 0;
        vec![Effect::Submit(task)]
    }

    fn start_job(&mut self, job: PromptJob) -> Vec<Effect> {
        let mut reply = Entry::new(Kind::Assistant, "");
        reply.tag = format!("{} · running {} …", self.status.model, job.id);
        self.transcript.push(reply);
        self.phase = Phase::RunningJob { entry: self.transcript.entries().len() - 1 };
        self.scroll = 0;
        vec![Effect::RunPrompt { job, n_ctx: self.status.n_ctx }]
    }

    /// A prompt job ended: its view becomes the reply.
    pub fn prompt_finished(&mut self, job: &PromptJob, result: Result<String, String>) {
        self.dirty = true;
        let Phase::RunningJob { entry: index } = std::mem::replace(&mut self.phase, Phase::Idle) else { return };
        match result {
            Ok(view) => {
                self.transcript.append_to(index, &view);
                self.transcript.set_tag(index, &format!("{} · {}", self.status.model, job.id));
                self.session.prompt_done(job, view);
                self.take_save_warning();
            }
            Err(e) => {
                self.transcript.remove(index);
                self.error(format!("{}: {e}", job.id));
            }
        }
    }

    /// Shows what the shared command layer decided, turning it into effects for the loop.
    fn show(&mut self, outcomes: Vec<Outcome>) -> Vec<Effect> {
        let mut effects = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Note(t) => self.note(t),
                Outcome::Error(t) => self.error(t),
                Outcome::Send(task) => effects.extend(self.ask(task)),
                Outcome::SwitchModel(name) => {
                    self.phase = Phase::Loading(0.0);
                    self.note(format!("loading {name} …"));
                    effects.push(Effect::SwitchModel(name));
                }
                Outcome::ListModels => effects.push(Effect::ListModels),
                Outcome::Copy { what, text } => {
                    self.note(format!("copied {what} ({} characters) to the clipboard", text.chars().count()));
                    effects.push(Effect::Copy(text));
                }
                Outcome::Reset => {
                    self.rebuild_transcript();
                    self.status.ctx_used = 0;
                }
                Outcome::Edit(text) => self.editor.set(&text),
                Outcome::Listing { head, rows } => {
                    self.transcript.push(Entry::listing(head, rows));
                    self.dirty = true;
                }
                Outcome::StatsLine(_) => {
                    self.note("the status line always shows the last reply's speed; /stats gives the details")
                }
                Outcome::RunPrompt(job) => {
                    self.transcript.push(Entry::new(Kind::User, format!("[{}] (the last reply)", job.id)));
                    effects.extend(self.start_job(job));
                }
                Outcome::Quit => effects.extend(self.quit()),
            }
        }
        self.take_save_warning();
        effects
    }
}

/// A running task's updates go straight into the chat.
impl Sink for App {
    fn token(&mut self, text: &str) {
        self.dirty = true;
        self.stream(text);
    }

    fn trimmed(&mut self, dropped_messages: usize, prompt_tokens: usize) {
        self.note(format!(
            "dropped the {dropped_messages} oldest messages so the conversation fits the context ({prompt_tokens} tokens now)"
        ));
        self.session.trimmed(dropped_messages);
    }

    fn reasoning(&mut self, text: &str) {
        self.dirty = true;
        if let Phase::Replying { entry } = self.phase {
            self.transcript.append_reasoning(entry, text);
        }
    }

    fn item(&mut self, index: usize, result: ItemResult) {
        if let Some(shown) = self.session.classify.as_mut().and_then(|m| m.result(index, result)) {
            self.note(shown);
        }
    }
}
