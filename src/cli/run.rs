//! `moat run ID|FILE`: one prompt or a whole script, non-interactively, on the configured model.

use super::args::{ModelArgs, RunArgs};
use super::prompts_cmd::{library, prompt_failure};
use super::run_log::{self, RunLog};
use super::setup::{self, Setup};
use super::{input, Failure};
use crate::chat::prompt_job::{self, EngineGenerator};
use crate::chat::Message;
use crate::prompts::{self, Lang, OutputFormat};
use std::io::IsTerminal;

pub fn run(flags: &ModelArgs, args: RunArgs) -> Result<i32, Failure> {
    let setup = Setup::new(flags)?;
    let lib = library(setup.config(), &setup.loaded.paths.config_file)?;
    let vars = parse_vars(&args.var)?;
    // Fail on a bad id, variable or file before loading the model.
    let entry = lib.resolve(&args.id).map_err(prompt_failure)?;
    let input = match &args.input {
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
            input::decode(&path.display().to_string(), bytes)?
        }
        None => input::read_stdin()?.unwrap_or_default(),
    };
    let lang = match args.lang.as_deref() {
        None | Some("auto") => Lang::detect(&input),
        Some(l) => l.parse::<Lang>().map_err(|e| Failure::usage(format!("--lang: {e}")))?,
    };
    let format = match args.output.as_deref() {
        Some(f) => f.parse::<OutputFormat>().map_err(|e| Failure::usage(format!("--as: {e}")))?,
        None if std::io::stdout().is_terminal() => OutputFormat::View,
        None => OutputFormat::Text,
    };
    // Sampling flags beat the script step, the prompt file and the config.
    let cli_params = flags.sampling.clone();
    // A dry render catches missing variables and oversized input without a model.
    prompts::render_request(&lib, &entry.id_or(&args.id), &vars, &input, lang, &cli_params, None)
        .map_err(prompt_failure)?;

    let mut opts = setup.target()?;
    let local = opts.remote.is_none().then(|| opts.model_path.clone());
    if let Some(n_ctx) = local.and_then(|path| context_for_input(&setup, flags, &path, &input, lang)) {
        warnln!("moat: context raised to {n_ctx} tokens for this input (-c N chooses it)");
        opts.n_ctx = n_ctx;
    }
    let (engine, info) = setup::start(opts)?;
    let mut gen = EngineGenerator::new(engine.submitter(), setup.config().sampling.clone());
    let on_terminal = std::io::stderr().is_terminal();
    let bar = LongBar::new(on_terminal);
    if on_terminal {
        let busy = bar.active.clone();
        gen.on_request = Box::new(move |n| {
            if !busy.load(std::sync::atomic::Ordering::Relaxed) {
                eprint!("\rmoat: generating, request {n} …\x1b[K")
            }
        });
    }
    let budget = prompt_job::budget(info.n_ctx as usize, lang);
    let id = entry.id_or(&args.id);
    let mut run_opts = prompts::RunOptions {
        long: prompts::LongOptions {
            n_ctx: info.n_ctx as usize,
            chunk_tokens: args.chunk_tokens,
            max_chunks: args.max_chunks,
        },
        progress: Some(Box::new(|p: &prompts::Progress| bar.update(p))),
    };
    let result = prompts::run_script_opts(&lib, &id, &vars, &input, lang, &cli_params, budget, &mut gen, &mut run_opts);
    drop(run_opts);
    bar.finish();
    if on_terminal {
        eprint!("\r\x1b[K");
    }
    let result = match result {
        Ok(r) => r,
        Err(e @ prompts::PromptError::Interrupted { .. }) => {
            warnln!("moat: {e}");
            return Ok(super::exit::INTERRUPTED);
        }
        Err(e) => {
            if crate::interrupt::interrupted() {
                warnln!("moat: interrupted");
                return Ok(super::exit::INTERRUPTED);
            }
            return Err(prompt_failure(e));
        }
    };
    if let Some(long) = &result.long {
        let ratio = (long.material_chars * 100).checked_div(long.doc_chars).unwrap_or(0);
        warnln!(
            "moat: long input: {} chunks of up to {} tokens → {} facts ({} after merging, {} reduce round(s)) → {} \
             characters ({ratio}% of the input)",
            long.chunks.len(),
            long.chunk_tokens,
            long.facts_extracted,
            long.facts_merged,
            long.rounds.len(),
            long.material_chars
        );
        for note in &long.notes {
            warnln!("moat: note: {note}");
        }
    }
    if let Some(dir) = &args.out_dir {
        let written = prompts::write_outputs(dir, &result).map_err(prompt_failure)?;
        warnln!("moat: wrote {} file(s) to {}", written.len(), dir.display());
    }
    let text = result.format(format);
    // Model text and prompt views are untrusted on a terminal; JSON is escaped by serde already and
    // a pipe gets the bytes as they are.
    let on_terminal = std::io::stdout().is_terminal() && !matches!(format, OutputFormat::Json | OutputFormat::Trace);
    println!("{}", crate::render::for_terminal(text.trim_end(), on_terminal));
    if args.log {
        let model = info.short_name();
        let stats = serde_json::json!({ "model": model, "prompt": id }).to_string();
        let log = RunLog {
            kind: "run",
            model: &model,
            sampling: &setup.config().sampling,
            messages: log_messages(&result),
            stats: Some(stats),
        };
        run_log::save(&setup.loaded.paths.data_dir, log);
    }
    Ok(0)
}

/// A run as a conversation: each step that ran is one exchange, its rendered prompt as the user
/// message and what the model wrote as the reply; the first step's system prompt (if any) opens
/// it (`--as trace` shows every step's).
fn log_messages(result: &prompts::ScriptResult) -> Vec<Message> {
    let ran: Vec<_> = result.steps.iter().filter(|s| !s.skipped).collect();
    let system = ran.first().and_then(|s| s.system.clone()).filter(|s| !s.trim().is_empty());
    let mut messages: Vec<Message> = system.into_iter().map(Message::system).collect();
    for step in ran {
        messages.push(Message::user(step.user.clone()));
        messages.push(Message::assistant(step.output.clone()));
    }
    messages
}

/// A context big enough for `input`, when the user left the context at its default and the input
/// would not fit in it: Chinese costs the default model about 1.8 tokens per character
/// (`prompts::lint::ratios`), so a 2,000-character article alone is ~3,500 tokens. Input tokens + 3,072 for instructions and the largest reply, rounded up to 256,
/// capped at the model's training context. `None` keeps the configured context.
fn context_for_input(setup: &Setup, flags: &ModelArgs, path: &std::path::Path, input: &str, lang: Lang) -> Option<u32> {
    let configured = setup.config().model.n_ctx;
    if flags.n_ctx.is_some() || configured != crate::config::Config::default().model.n_ctx {
        return None;
    }
    let per_char = match lang {
        Lang::Zh => crate::prompts::lint::ratios::ZH_TEXT,
        Lang::En => crate::prompts::lint::ratios::EN_TEXT,
    };
    let need = (input.chars().count() as f64 * per_char) as u32 + 3072;
    let n_ctx_train = crate::models::gguf::inspect(path).ok()?.context_length? as u32;
    let want = need.div_ceil(256) * 256;
    (want > configured).then(|| want.min(n_ctx_train)).filter(|&n| n > configured)
}

/// The map-reduce progress bar on stderr: chunks done of total, elapsed time and ETA, then each
/// reduce round. Not on a terminal, one line as each stage starts.
struct LongBar {
    bar: std::cell::RefCell<Option<(prompts::Stage, indicatif::ProgressBar)>>,
    on_terminal: bool,
    /// Set while the bar is drawn, so the per-request line stays quiet.
    active: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl LongBar {
    fn new(on_terminal: bool) -> Self {
        LongBar { bar: Default::default(), on_terminal, active: Default::default() }
    }

    fn update(&self, p: &prompts::Progress) {
        if !self.on_terminal {
            // A log gets one line per stage, as it starts.
            if p.done == 0 {
                warnln!("moat: {}", prompt_job::progress_line(p));
            }
            return;
        }
        let mut slot = self.bar.borrow_mut();
        if slot.as_ref().is_none_or(|(stage, _)| *stage != p.stage) {
            if let Some((_, old)) = slot.take() {
                old.finish_and_clear();
            }
            eprint!("\r\x1b[K");
            let what = match p.stage {
                prompts::Stage::Map => "moat: map: chunks".to_string(),
                prompts::Stage::Reduce(n) => format!("moat: reduce round {n}: fact groups"),
            };
            let bar =
                indicatif::ProgressBar::with_draw_target(Some(p.total as u64), indicatif::ProgressDrawTarget::stderr());
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} elapsed {elapsed} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(what);
            // Elapsed time and ETA keep moving while one slow chunk is read.
            bar.enable_steady_tick(std::time::Duration::from_millis(500));
            self.active.store(true, std::sync::atomic::Ordering::Relaxed);
            *slot = Some((p.stage, bar));
        }
        if let Some((_, bar)) = slot.as_ref() {
            bar.set_position(p.done as u64);
            if p.done >= p.total {
                bar.finish_and_clear();
                self.active.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn finish(&self) {
        if let Some((_, bar)) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
        self.active.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

trait EntryId {
    fn id_or(&self, given: &str) -> String;
}

impl EntryId for prompts::Entry {
    /// Library ids run by id; files run by path (the runner reads them again).
    fn id_or(&self, given: &str) -> String {
        match self.source {
            prompts::Source::User(_) if given.ends_with(".toml") => given.to_string(),
            _ => self.id.clone(),
        }
    }
}

fn parse_vars(raw: &[String]) -> Result<Vec<(String, String)>, Failure> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(Failure::usage(format!("-v {kv:?}: expected key=value, e.g. -v subject=\"Acme AI\""))),
        })
        .collect()
}
