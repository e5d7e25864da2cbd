//! Chat state and how it changes: keys, pastes and engine events go in, effects for the event loop
//! come out. Nothing here touches the terminal or the engine directly, so the whole thing runs
//! against ratatui's `TestBackend` in tests and benchmarks.

use super::editor::Editor;
use super::transcript::{Entry, Kind, Transcript};
use crate::chat::store::{self, SavedSession, SessionStore};
use crate::chat::{Conversation, Message, Role};
use crate::commands::{self, Command};
use crate::config::{Config, SamplingConfig};
use crate::engine::{Event, GenStats, ModelInfo, Request, RequestId, StopReason};
use crate::history::History;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use std::time::{Duration, Instant};

/// What the event loop must do on the app's behalf.
#[derive(Debug)]
pub enum Effect {
    /// Send this request; report its id back with [`App::started`].
    Send(Request),
    Cancel,
    /// Load another model (a name or path, resolved by the loop).
    SwitchModel(String),
    /// Put text on the clipboard (OSC 52).
    Copy(String),
    Quit,
}

/// What the status line shows.
#[derive(Debug, Default, Clone)]
pub struct Status {
    pub model: String,
    pub gpu: bool,
    pub loading: Option<f32>,
    pub ctx_used: usize,
    pub ctx_size: usize,
    pub last: Option<GenStats>,
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
    pub conversation: Conversation,
    pub sampling: SamplingConfig,
    config: Config,
    sessions: Option<SessionStore>,
    pub session_name: String,
    created: String,
    pending: Option<RequestId>,
    /// The request is being prepared or running (set before its id is known).
    pub generating: bool,
    /// Transcript index of the reply being streamed (notes may be added after it meanwhile).
    streaming: Option<usize>,
    stopped: bool,
    ctrl_c_at: Option<Instant>,
    pub quit: bool,
    pub dirty: bool,
    pub hint: Option<String>,
}

impl App {
    pub fn new(config: Config, sessions: Option<SessionStore>, history: History) -> App {
        App {
            transcript: Transcript::default(),
            editor: Editor::default(),
            history,
            status: Status { model: config.model.name.clone(), loading: Some(0.0), ..Default::default() },
            search: None,
            scroll: 0,
            page: 10,
            width: 80,
            conversation: Conversation::new(&config.chat.system_prompt),
            sampling: config.sampling.clone(),
            config,
            sessions,
            session_name: store::fresh_name(),
            created: store::now_stamp(),
            pending: None,
            generating: false,
            streaming: None,
            stopped: false,
            ctrl_c_at: None,
            quit: false,
            dirty: true,
            hint: None,
        }
    }

    /// Reopens a saved session: its messages, settings and name.
    pub fn resume(&mut self, s: SavedSession) {
        self.session_name = s.name;
        self.created = s.created;
        self.sampling = s.sampling;
        self.conversation = Conversation { messages: s.messages };
        self.rebuild_transcript();
        self.note(format!("resumed session {} ({} messages)", self.session_name, self.conversation.messages.len()));
    }

    fn rebuild_transcript(&mut self) {
        self.transcript.clear();
        for m in &self.conversation.messages {
            let kind = match m.role {
                Role::User => Kind::User,
                Role::Assistant => Kind::Assistant,
                Role::System => Kind::Note,
            };
            let text = if m.role == Role::System { format!("system prompt: {}", m.content) } else { m.content.clone() };
            self.transcript.push(Entry::new(kind, text));
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

    /// The loop sent the request and got this id.
    pub fn started(&mut self, id: RequestId) {
        self.pending = Some(id);
    }

    // ---- engine events -------------------------------------------------------------------------

    pub fn on_engine(&mut self, ev: Event) {
        self.dirty = true;
        match ev {
            Event::Loading(p) => self.status.loading = Some(p),
            Event::Loaded(info) => self.loaded(&info),
            Event::Trimmed { id, dropped_messages, prompt_tokens } if Some(id) == self.pending => {
                self.note(format!(
                    "dropped the {dropped_messages} oldest messages so the conversation fits the context ({prompt_tokens} tokens now)"
                ));
                self.drop_oldest_from_conversation(dropped_messages);
            }
            Event::Token { id, text } if Some(id) == self.pending => self.stream(&text),
            Event::Done { id, reason, stats } if Some(id) == self.pending => self.finished(reason, stats),
            Event::Error { id, error } if id.is_none() || id == self.pending => {
                if id.is_none() {
                    self.status.loading = None;
                }
                self.failed(error.to_string());
            }
            _ => self.dirty = false,
        }
    }

    fn loaded(&mut self, info: &ModelInfo) {
        self.status.loading = None;
        self.status.model = info.name.clone();
        self.status.gpu = info.gpu && info.gpu_layers != 0;
        self.status.ctx_size = info.n_ctx as usize;
        self.status.ctx_used = 0;
        self.note(format!(
            "{} loaded in {:.1} s · chat format: {} · /help for commands",
            info.name,
            info.load_ms / 1000.0,
            info.chat_format
        ));
    }

    /// Mirrors the engine's trimming in the saved conversation (it only trimmed its copy).
    fn drop_oldest_from_conversation(&mut self, n: usize) {
        let mut left = n;
        while left > 0 {
            match self.conversation.drop_oldest_turn() {
                0 => break,
                k => left = left.saturating_sub(k),
            }
        }
    }

    fn stream(&mut self, text: &str) {
        let Some(index) = self.streaming else { return };
        let before = if self.scroll > 0 { Some(self.transcript.total_lines(self.width)) } else { None };
        self.transcript.append_to(index, text);
        // Reading above: keep the same lines in view instead of following the new text.
        if let Some(before) = before {
            let after = self.transcript.total_lines(self.width);
            self.scroll += after.saturating_sub(before);
        }
    }

    fn finished(&mut self, reason: StopReason, stats: GenStats) {
        self.pending = None;
        self.generating = false;
        let Some(index) = self.streaming.take() else { return };
        let reply = self.transcript.entries().get(index).map(|e| e.text.clone());
        let tag = match reason {
            StopReason::Cancelled => "stopped",
            StopReason::MaxTokens => "cut at max_tokens",
            StopReason::ContextFull => "cut: context full",
            _ => "",
        };
        let tag = format!("{}{}{}", self.status.model, if tag.is_empty() { "" } else { " · " }, tag);
        self.transcript.set_tag(index, &tag);
        if let Some(text) = reply {
            self.conversation.push(Message::assistant(text));
        }
        self.status.ctx_used = stats.context_used;
        self.status.ctx_size = stats.context_size.max(self.status.ctx_size);
        self.status.last = Some(stats);
        if reason == StopReason::Cancelled {
            self.stopped = true;
        }
        self.autosave();
    }

    fn failed(&mut self, why: String) {
        let was_generating = self.generating;
        self.pending = None;
        self.generating = false;
        if let (true, Some(index)) = (was_generating, self.streaming.take()) {
            // The question goes back into the input box so nothing typed is lost.
            self.transcript.remove(index);
            if self.conversation.messages.last().map(|m| m.role) == Some(Role::User) {
                let q = self.conversation.messages.pop().expect("just checked");
                if index > 0 && self.transcript.entries().get(index - 1).map(|e| e.kind) == Some(Kind::User) {
                    self.transcript.remove(index - 1);
                }
                if self.editor.is_empty() {
                    self.editor.set(&q.content);
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
                if self.generating {
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
        if self.generating {
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
        if self.generating {
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
                    Ok(cmd) => self.command(cmd),
                    Err(e) => {
                        self.error(e.to_string());
                        Vec::new()
                    }
                };
            }
        }
        if self.generating {
            self.hint = Some("a reply is still coming; Esc stops it".into());
            return Vec::new();
        }
        if self.status.loading.is_some() {
            self.hint = Some("the model is still loading".into());
            return Vec::new();
        }
        self.history.add(&text);
        self.editor.take();
        // `//text` sends `/text`.
        let text = if !pasted && text.starts_with("//") { text[1..].to_string() } else { text };
        self.conversation.push(Message::user(text.clone()));
        self.transcript.push(Entry::new(Kind::User, text));
        self.ask()
    }

    /// Asks the model to answer the conversation as it stands.
    fn ask(&mut self) -> Vec<Effect> {
        let mut reply = Entry::new(Kind::Assistant, "");
        reply.tag = format!("{} …", self.status.model);
        self.transcript.push(reply);
        self.streaming = Some(self.transcript.entries().len() - 1);
        self.generating = true;
        self.stopped = false;
        self.scroll = 0;
        self.autosave();
        vec![Effect::Send(Request::Chat {
            id: 0,
            messages: self.conversation.messages.clone(),
            sampling: self.sampling.clone(),
            overflow: self.config.chat.overflow,
            reserve: self.config.chat.reserve,
        })]
    }

    fn command(&mut self, cmd: Command) -> Vec<Effect> {
        let busy = |app: &mut App| {
            app.error("a reply is still coming; press Esc to stop it first");
            Vec::new()
        };
        match cmd {
            Command::Help => self.note(commands::help()),
            Command::Quit => return self.quit(),
            Command::Clear if self.generating => return busy(self),
            Command::Clear => {
                let system = self.conversation.messages.iter().find(|m| m.role == Role::System).cloned();
                self.conversation = Conversation::default();
                self.conversation.messages.extend(system);
                self.transcript.clear();
                self.session_name = store::fresh_name();
                self.created = store::now_stamp();
                self.status.ctx_used = 0;
                self.note(format!("new conversation (session {})", self.session_name));
            }
            Command::System(_) if self.generating => return busy(self),
            Command::System(text) => {
                self.conversation.messages.retain(|m| m.role != Role::System);
                if text.is_empty() {
                    self.note("system prompt removed");
                } else {
                    self.conversation.messages.insert(0, Message::system(text.clone()));
                    self.note(format!("system prompt: {text}"));
                }
                self.autosave();
            }
            Command::Model(_) if self.generating => return busy(self),
            Command::Model(name) => {
                self.status.loading = Some(0.0);
                self.note(format!("loading {name} …"));
                return vec![Effect::SwitchModel(name)];
            }
            Command::Set(setting) => {
                setting.apply(&mut self.sampling);
                self.note(format!("{setting:?}").to_lowercase().replace('(', " = ").replace(')', ""));
            }
            Command::Show => self.note(self.show()),
            Command::Regen | Command::Edit if self.generating => return busy(self),
            Command::Regen => {
                if !self.unwind_to_last_user(false) {
                    self.error("nothing to answer again yet");
                    return Vec::new();
                }
                return self.ask();
            }
            Command::Edit => {
                if !self.unwind_to_last_user(true) {
                    self.error("no message to edit yet");
                }
            }
            Command::Copy(n) => return self.copy(n),
            Command::Save(name) => {
                if let Err(e) = SessionStore::check_name(&name) {
                    self.error(e.to_string());
                } else {
                    self.session_name = name;
                    if self.autosave() {
                        self.note(format!("saved as {}", self.session_name));
                    }
                }
            }
            Command::Load(_) if self.generating => return busy(self),
            Command::Load(name) => match self.sessions.as_ref().map(|s| s.load(&name)) {
                Some(Ok(s)) => self.resume(s),
                Some(Err(e)) => self.error(e.to_string()),
                None => self.error("sessions are off in this run"),
            },
            Command::Sessions => {
                let list = self.sessions.as_ref().map(|s| s.list()).unwrap_or_default();
                if list.is_empty() {
                    self.note("no saved sessions yet");
                } else {
                    let lines: Vec<String> = list
                        .iter()
                        .take(30)
                        .map(|s| format!("{:<28} {:>4} messages  {}", s.name, s.messages, s.updated))
                        .collect();
                    self.note(format!("saved sessions (newest first; /load NAME):\n{}", lines.join("\n")));
                }
            }
            Command::Stats => match &self.status.last {
                Some(s) => self.note(format!(
                    "last reply: {} prompt tokens ({} reused from cache, {} decoded), {} generated, ttft {:.0} ms, {:.1} tok/s; context {}/{}",
                    s.prompt_tokens, s.reused_tokens, s.decoded_tokens, s.gen_tokens, s.ttft_ms, s.gen_tok_s, s.context_used, s.context_size
                )),
                None => self.note("no reply yet"),
            },
        }
        Vec::new()
    }

    /// Removes the last user message and everything after it; with `to_editor` its text goes back
    /// into the input box, otherwise the message stays (for /regen).
    fn unwind_to_last_user(&mut self, to_editor: bool) -> bool {
        let Some(i) = self.conversation.messages.iter().rposition(|m| m.role == Role::User) else { return false };
        let keep = if to_editor { i } else { i + 1 };
        let removed: Vec<Message> = self.conversation.messages.drain(keep..).collect();
        if let Some(t) = self.transcript.entries().iter().rposition(|e| e.kind == Kind::User) {
            self.transcript.truncate(if to_editor { t } else { t + 1 });
        }
        if to_editor {
            self.editor.set(&removed[0].content);
        }
        true
    }

    fn copy(&mut self, n: Option<usize>) -> Vec<Effect> {
        let Some((text, blocks)) = self.transcript.last_reply_code(self.width) else {
            self.error("no reply to copy yet");
            return Vec::new();
        };
        let (what, content) = match n {
            None => ("the last reply".to_string(), text),
            Some(n) => match blocks.get(n - 1) {
                Some(b) => (format!("code block {n}"), b.code.clone()),
                None => {
                    self.error(format!("the last reply has {} code block(s)", blocks.len()));
                    return Vec::new();
                }
            },
        };
        self.note(format!("copied {what} ({} characters) to the clipboard", content.chars().count()));
        vec![Effect::Copy(content)]
    }

    fn show(&self) -> String {
        let s = &self.sampling;
        let system = self.conversation.messages.iter().find(|m| m.role == Role::System).map(|m| m.content.as_str());
        format!(
            "model {} ({})\ntemp {} · top_k {} · top_p {} · min_p {} · repeat_penalty {} · seed {} · max_tokens {}\nsystem prompt: {}\nsession: {} ({} messages){}",
            self.status.model,
            if self.status.gpu { "GPU" } else { "CPU" },
            s.temperature,
            s.top_k,
            s.top_p,
            s.min_p,
            s.repeat_penalty,
            s.seed,
            s.max_tokens,
            system.unwrap_or("(none)"),
            self.session_name,
            self.conversation.messages.len(),
            self.sessions.as_ref().map(|st| format!(" in {}", st.dir().display())).unwrap_or_default(),
        )
    }

    /// Writes the session file; says so (once) if it cannot.
    fn autosave(&mut self) -> bool {
        let Some(store) = &self.sessions else { return false };
        if self.conversation.messages.iter().all(|m| m.role == Role::System) {
            return false;
        }
        let saved = SavedSession {
            version: store::VERSION,
            name: self.session_name.clone(),
            model: self.status.model.clone(),
            sampling: self.sampling.clone(),
            messages: self.conversation.messages.clone(),
            created: self.created.clone(),
            updated: store::now_stamp(),
        };
        match store.save(&saved) {
            Ok(()) => true,
            Err(e) => {
                self.error(e.to_string());
                false
            }
        }
    }
}
