//! The line REPL: replies stream into the terminal's own scrollback. Interactive on a terminal
//! (rustyline: history, Ctrl+R, completion, multi-line input); with piped stdin it reads lines as
//! turns and slash commands, so a conversation can be scripted.

pub mod input;
mod stream;

pub use input::{is_complete, message, EditorSignals};
pub use stream::Styler;

/// The rustyline helper: completion and multi-line input.
pub fn helper(models: Vec<String>, sessions: Box<dyn Fn() -> Vec<String>>) -> input::ReplHelper {
    input::ReplHelper::new(models, sessions)
}

use crate::chat::prompt_job::{self, EngineGenerator, PromptJob};
use crate::chat::session::{ChatSession, Outcome, Turn};
use crate::commands;
use crate::engine::{Engine, EngineOptions, ItemResult, ModelInfo, Sink, StopReason, Task};
use crate::models::ModelResolver;
use std::io::{BufRead, IsTerminal, Write};

/// Where the interactive REPL keeps what was typed (Up/Down, Ctrl+R).
pub enum InputHistory {
    /// The session database's input table, shared with the chat and other processes.
    Log(crate::chat::inputs::InputLog),
    /// A rustyline history file (when the database cannot be opened).
    File(std::path::PathBuf),
}

pub struct Repl {
    pub session: ChatSession,
    engine: Engine,
    current: EngineOptions,
    resolve: ModelResolver,
    /// Styled output (a terminal, and `NO_COLOR` unset).
    color: bool,
    /// Print the figures line after each reply.
    stats_line: bool,
    /// A command or turn failed (the exit status of a scripted run).
    pub failed: bool,
    /// Text to pre-fill the next prompt with (`/edit`).
    edit: Option<String>,
    ctx_pct: usize,
    /// `ctx_pct` is an estimate (shown as `~N%`).
    ctx_estimated: bool,
    n_ctx: usize,
}

enum Flow {
    Continue,
    Quit,
    Interrupted,
}

impl Repl {
    pub fn new(
        session: ChatSession,
        engine: Engine,
        info: &ModelInfo,
        current: EngineOptions,
        resolve: ModelResolver,
    ) -> Repl {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let mut repl = Repl {
            session,
            engine,
            current,
            resolve,
            color,
            stats_line: std::io::stdout().is_terminal(),
            failed: false,
            edit: None,
            ctx_pct: 0,
            ctx_estimated: false,
            n_ctx: info.n_ctx as usize,
        };
        repl.loaded(info);
        repl
    }

    fn loaded(&mut self, info: &ModelInfo) {
        if let Some(note) = self.session.model_loaded(info) {
            warnln!("{}", self.dim(&note));
        }
    }

    /// `smollm2-135m 3% › `: the model and how full its context is (`~3%` when estimated).
    pub fn prompt(&self) -> String {
        let about = if self.ctx_estimated { "~" } else { "" };
        format!("{} {about}{}% › ", crate::render::sanitize(&self.session.model), self.ctx_pct)
    }

    /// Interactive loop on a terminal.
    pub fn interactive(&mut self, history: InputHistory, helper: input::ReplHelper) -> i32 {
        let config = rustyline::Config::builder()
            .auto_add_history(false)
            .history_ignore_dups(true)
            .and_then(|b| b.max_history_size(5000))
            .map(|b| {
                b.history_ignore_space(true)
                    .completion_type(rustyline::CompletionType::List)
                    .bracketed_paste(true)
                    .build()
            });
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                warnln!("moat: cannot configure the line editor: {e}");
                return 1;
            }
        };
        let (rl, signals) = EditorSignals::around(|| {
            rustyline::Editor::<input::ReplHelper, rustyline::history::FileHistory>::with_config(config)
        });
        let mut rl = match rl {
            Ok(rl) => rl,
            Err(e) => {
                warnln!("moat: cannot start the line editor: {e}");
                return 1;
            }
        };
        rl.set_helper(Some(helper));
        match &history {
            InputHistory::Log(log) => {
                for entry in log.recent(5000) {
                    let _ = rl.add_history_entry(entry);
                }
            }
            InputHistory::File(file) => {
                if let Some(parent) = file.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = rl.load_history(file);
            }
        }
        let mut history_warned = false;
        sayln!(
            "{} · {} · /help for commands · \"\"\" for multi-line · Ctrl+D to leave",
            self.session.model,
            self.session.device
        );
        loop {
            let prompt = self.prompt();
            let line = signals.reading(|| match self.edit.take() {
                Some(text) => rl.readline_with_initial(&prompt, (&text, "")),
                None => rl.readline(&prompt),
            });
            let line = match line {
                Ok(l) => l,
                Err(rustyline::error::ReadlineError::Interrupted) => continue,
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => {
                    warnln!("moat: cannot read input: {e}");
                    self.failed = true;
                    break;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let _ = rl.add_history_entry(line.as_str());
            match &history {
                InputHistory::Log(log) => {
                    if let Err(e) = log.add(&line) {
                        if !std::mem::replace(&mut history_warned, true) {
                            warnln!("moat: input history not saved: {e}");
                        }
                    }
                }
                InputHistory::File(file) => {
                    let _ = rl.append_history(file).or_else(|_| rl.save_history(file));
                }
            }
            match self.handle(&message(&line)) {
                Flow::Continue | Flow::Interrupted => {}
                Flow::Quit => break,
            }
        }
        0
    }

    /// Scripted run: every complete input from `reader` is a turn or a command.
    pub fn scripted(&mut self, reader: impl BufRead) -> i32 {
        let mut pending = String::new();
        for line in reader.split(b'\n') {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    warnln!("moat: cannot read stdin: {e}");
                    return crate::exit::RUNTIME;
                }
            };
            let line = match crate::text_input::decode("stdin", line) {
                Ok(l) => l,
                Err(e) => {
                    warnln!("moat: {e}");
                    return crate::exit::USAGE;
                }
            };
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(&line);
            if !is_complete(&pending) {
                continue;
            }
            let input = message(&std::mem::take(&mut pending));
            if input.trim().is_empty() {
                continue;
            }
            match self.handle(&input) {
                Flow::Continue => {}
                Flow::Quit => break,
                Flow::Interrupted => return crate::exit::INTERRUPTED,
            }
        }
        if !pending.trim().is_empty() {
            warnln!("moat: the input ended inside a \"\"\" block; close it with \"\"\"");
            self.failed = true;
        }
        if self.failed {
            crate::exit::USAGE
        } else {
            0
        }
    }

    fn handle(&mut self, input: &str) -> Flow {
        if let Some(parsed) = commands::parse(input) {
            return match parsed {
                Ok(cmd) => {
                    let outcomes = self.session.execute(cmd, false);
                    self.outcomes(outcomes)
                }
                Err(e) => {
                    self.error(&e.to_string());
                    Flow::Continue
                }
            };
        }
        let text = input.strip_prefix('/').filter(|t| t.starts_with('/')).unwrap_or(input).to_string();
        match self.session.route(text) {
            Turn::Job(job) => self.run_job(job),
            Turn::Classify(task) => self.classify(task),
            Turn::Nothing => Flow::Continue,
            Turn::Reply(task) => {
                self.warn_save();
                self.turn(task)
            }
        }
    }

    fn outcomes(&mut self, outcomes: Vec<Outcome>) -> Flow {
        for o in outcomes {
            match o {
                Outcome::Note(t) => println!("{}", self.dim(&t)),
                Outcome::Error(t) => self.error(&t),
                Outcome::Send(req) => {
                    if let Flow::Interrupted = self.turn(req) {
                        return Flow::Interrupted;
                    }
                }
                Outcome::SwitchModel(name) => self.switch_model(&name),
                Outcome::ListModels => match crate::chat::switch::listing(&self.current, &self.resolve) {
                    Ok(list) => println!("{}", self.dim(&list)),
                    Err(e) => self.error(&e),
                },
                Outcome::Copy { what, text } => {
                    if std::io::stdout().is_terminal() {
                        crate::clipboard::copy_osc52(&text);
                        println!(
                            "{}",
                            self.dim(&format!("copied {what} ({} characters) to the clipboard", text.chars().count()))
                        );
                    } else {
                        // A pipe gets the reply's bytes as they are.
                        println!("{text}");
                    }
                }
                Outcome::Reset => {}
                Outcome::Edit(text) => self.edit = Some(text),
                Outcome::Listing { head, rows } => {
                    println!("{}", self.dim(&head));
                    for row in rows {
                        println!("{}", self.marked(&row));
                    }
                }
                Outcome::StatsLine(on) => {
                    self.stats_line = on;
                    println!("{}", self.dim(&format!("figures after each reply: {}", if on { "on" } else { "off" })));
                }
                Outcome::RunPrompt(job) => {
                    if let Flow::Interrupted = self.run_job(job) {
                        return Flow::Interrupted;
                    }
                }
                Outcome::Quit => return Flow::Quit,
            }
        }
        self.warn_save();
        Flow::Continue
    }

    fn warn_save(&mut self) {
        if let Some(w) = self.session.save_warning.take() {
            self.error(&w);
        }
        if let Some(n) = self.session.joined_note() {
            warnln!("moat: {n}");
        }
    }

    fn error(&mut self, msg: &str) {
        self.failed = true;
        warnln!("moat: {msg}");
    }

    /// A row of pieces, sanitised; the marked ones bold when colour is on.
    fn marked(&self, row: &[(String, bool)]) -> String {
        let mut out = String::new();
        for (text, mark) in row {
            let text = crate::render::sanitize(text);
            match (mark, self.color) {
                (true, true) => out.push_str(&format!("\x1b[1m{text}\x1b[0m")),
                _ => out.push_str(&text),
            }
        }
        out
    }

    /// Notes quote outside text (model names, file paths, labels): sanitised before styling.
    fn dim(&self, s: &str) -> String {
        let s = crate::render::sanitize(s);
        if self.color {
            format!("\x1b[2m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Classifier mode: prints each line's label and bars as results arrive, then the tally.
    fn classify(&mut self, task: Task) -> Flow {
        crate::interrupt::reset();
        struct Lines<'a>(&'a mut ChatSession);
        impl Sink for Lines<'_> {
            fn item(&mut self, index: usize, result: ItemResult) {
                if let Some(shown) = self.0.classify.as_mut().and_then(|m| m.result(index, result)) {
                    println!("{}", crate::render::sanitize(&shown));
                }
            }
        }
        match self.engine.submit(task).wait(&mut Lines(&mut self.session)) {
            Ok(end) if end.reason == StopReason::Cancelled => {
                self.error("stopped: the lines above were classified, the rest were not")
            }
            Ok(_) => {}
            Err(e) => self.error(&e.to_string()),
        }
        if let Some(m) = &self.session.classify {
            println!("{}", self.dim(&m.tally()));
        }
        Flow::Continue
    }

    /// Streams one reply; Ctrl+C stops it and keeps what came.
    fn turn(&mut self, task: Task) -> Flow {
        crate::interrupt::reset();
        let stdout = std::io::stdout();
        /// The reply as it streams: styled to the terminal, kept for the conversation.
        struct Streamed<'a, W: Write> {
            styler: Styler<W>,
            text: String,
            session: &'a mut ChatSession,
        }
        impl<W: Write> Sink for Streamed<'_, W> {
            fn token(&mut self, t: &str) {
                self.styler.push(t);
                self.text.push_str(t);
            }
            fn reasoning(&mut self, t: &str) {
                self.styler.aside(t);
            }
            fn trimmed(&mut self, dropped_messages: usize, prompt_tokens: usize) {
                self.session.trimmed(dropped_messages);
                warnln!("moat: dropped the {dropped_messages} oldest messages to fit the context ({prompt_tokens} tokens now)");
            }
        }
        let mut sink = Streamed {
            styler: Styler::new(stdout.lock(), self.color),
            text: String::new(),
            session: &mut self.session,
        };
        let result = self.engine.submit(task).wait(&mut sink);
        let Streamed { mut styler, text, .. } = sink;
        styler.finish();
        let newline = !styler.ended_with_newline;
        drop(styler);
        match result {
            Ok(crate::engine::Finish { reason, stats }) => {
                if newline || text.is_empty() {
                    println!();
                }
                let note = match reason {
                    StopReason::Cancelled => Some("[stopped]"),
                    StopReason::MaxTokens => Some("[cut at max_tokens; /set max_tokens N for longer replies]"),
                    StopReason::ContextFull => Some("[cut: the context is full; /clear starts afresh]"),
                    _ => None,
                };
                if let Some(n) = note {
                    println!("{}", self.dim(n));
                }
                if self.stats_line {
                    println!(
                        "{}",
                        self.dim(&format!(
                            "[{} tokens · ttft {:.0} ms · {:.1} tok/s · context {}{}/{}]",
                            stats.gen_tokens,
                            stats.ttft_ms,
                            stats.gen_tok_s,
                            if stats.context_estimated { "~" } else { "" },
                            stats.context_used,
                            stats.n_ctx
                        ))
                    );
                }
                if let Some(note) = &stats.note {
                    warnln!("{}", self.dim(note));
                }
                self.ctx_pct = (stats.context_used * 100).checked_div(stats.n_ctx).unwrap_or(0);
                self.ctx_estimated = stats.context_estimated;
                let cancelled = reason == StopReason::Cancelled;
                self.session.reply_done(text, reason, stats);
                self.warn_save();
                let _ = std::io::stdout().flush();
                if cancelled && !std::io::stdin().is_terminal() {
                    return Flow::Interrupted;
                }
                Flow::Continue
            }
            Err(e) => {
                if text.is_empty() {
                    self.session.reply_failed();
                } else {
                    // Cut off mid-reply (a server that died): what came stays in the conversation
                    // and is saved, marked here as cut.
                    println!();
                    println!("{}", self.dim("[cut off by the error below; the reply so far is kept]"));
                    self.session.reply_cut_off(text, &e.to_string());
                    self.warn_save();
                }
                self.error(&e.to_string());
                Flow::Continue
            }
        }
    }

    /// Runs a library prompt or script on the engine and prints its view like a reply.
    fn run_job(&mut self, job: PromptJob) -> Flow {
        crate::interrupt::reset();
        println!("{}", self.dim(&format!("running {} …", job.id)));
        let result = {
            let mut gen = EngineGenerator::new(self.engine.submitter(), self.session.sampling.clone());
            let on_terminal = std::io::stderr().is_terminal();
            let mut shown = false;
            let result = prompt_job::run_with_progress(&job, &self.session.library, self.n_ctx, &mut gen, &mut |p| {
                if on_terminal {
                    eprint!("\r{}\x1b[K", prompt_job::progress_line(p));
                    shown = true;
                }
            });
            if shown {
                eprint!("\r\x1b[K");
            }
            result
        };
        match result {
            Ok(view) => {
                let mut styler = Styler::new(std::io::stdout().lock(), self.color);
                styler.push(&view);
                styler.finish();
                if !view.ends_with('\n') {
                    println!();
                }
                self.session.prompt_done(&job, view);
                self.warn_save();
                Flow::Continue
            }
            Err(e) if crate::interrupt::interrupted() => {
                self.error(&format!("{}: {e}", job.id));
                if std::io::stdin().is_terminal() {
                    Flow::Continue
                } else {
                    Flow::Interrupted
                }
            }
            Err(e) => {
                self.error(&format!("{}: {e}", job.id));
                Flow::Continue
            }
        }
    }

    fn switch_model(&mut self, name: &str) {
        let next = match crate::chat::switch::target(&self.current, name, &self.resolve) {
            Ok(next) => next,
            Err(e) => return self.error(&format!("cannot switch: {e}")),
        };
        self.engine.load(next.clone());
        let info = match self.engine.wait_loaded(|_| {}) {
            Ok(info) => {
                self.current = next;
                info
            }
            Err(error) => {
                self.error(&format!(
                    "cannot switch: {error}; going back to {}",
                    crate::engine::short_model_name(&self.current.model_name)
                ));
                self.engine.load(self.current.clone());
                match self.engine.wait_loaded(|_| {}) {
                    Ok(info) => info,
                    Err(error) => return self.error(&format!("cannot reload either: {error}")),
                }
            }
        };
        self.loaded(&info);
        self.ctx_pct = 0;
        self.ctx_estimated = false;
        self.n_ctx = info.n_ctx as usize;
        println!(
            "{}",
            self.dim(&format!(
                "{} loaded in {:.1} s · {} · chat format: {}",
                self.session.model,
                info.load_ms / 1000.0,
                info.device(),
                info.chat_format
            ))
        );
    }
}
