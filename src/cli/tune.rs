//! `moat tune`: measures the fastest settings for the configured model on this device and keeps
//! them for `auto` settings (see `engine::tune`); and the same measurement done once, the first
//! time a model is used in chat or the REPL on a terminal. Never in a pipe unasked.

use super::args::{ModelArgs, TuneArgs};
use super::setup::Setup;
use super::Failure;
use crate::engine::tune::{self, Entry, TuneCache, MOAT_VERSION};
use crate::engine::{gpu, EngineOptions, TunePlan, TuneReport};
use crate::render::sanitize;
use std::io::IsTerminal;
use std::time::Duration;

pub fn run(flags: &ModelArgs, args: TuneArgs) -> Result<i32, Failure> {
    if !(args.budget.is_finite() && args.budget > 0.0 && args.budget <= 3600.0) {
        return Err(Failure::usage("--budget must be a number of seconds between 0 and 3600"));
    }
    if !(16..=65536).contains(&args.depth) {
        return Err(Failure::usage("--depth must be between 16 and 65536 tokens"));
    }
    let setup = Setup::new(flags)?;
    if setup.remote().is_some() {
        return Err(Failure::usage(
            "moat tune measures local models; a server (--remote, [remote] url) chooses its own settings",
        ));
    }
    let opts = setup.target()?;
    crate::engine::backend(opts.log_file.as_deref());
    let file = setup.tune_file();
    let mut cache = TuneCache::load(&file);
    let sha = model_sha256(&mut cache, &opts, args.json)?;
    let device = gpu::device_key(opts.gpu_layers);
    if !args.force {
        if let Some(entry) = cache.entry(&sha, &device, MOAT_VERSION) {
            if args.json {
                println!("{}", serde_json::json!({ "cached": true, "entry": entry }));
            } else {
                sayln!("{} was measured on this device already (`moat tune --force` measures again):", opts.model_name);
                for line in report_lines(Some(entry)) {
                    sayln!("{line}");
                }
            }
            return Ok(0);
        }
    }
    let plan = TunePlan { budget: Duration::from_secs_f64(args.budget), depth: args.depth, ..TunePlan::default() };
    if !args.json {
        sayln!("measuring {} on {device}", opts.model_name);
        sayln!(
            "(prompt of {} tokens, then {} generated after it; budget {:.0} s)",
            plan.depth,
            plan.gen_tokens,
            args.budget
        );
        sayln!("{}", trial_header());
    }
    let json = args.json;
    let entry = measure_and_keep(&file, &opts, &sha, &plan, &mut |t| {
        if !json {
            sayln!("{}", trial_row(t, false));
        }
    })?;
    if args.json {
        println!("{}", serde_json::json!({ "cached": false, "entry": entry }));
        return Ok(0);
    }
    sayln!("{}", chosen_line(&entry));
    sayln!("kept in {} ({:.1} s); `auto` settings use it from now on", file.display(), entry.took_ms / 1000.0);
    Ok(0)
}

/// Whether chat or the REPL should measure before loading: both ends on a terminal, a local
/// model with a tune source, `model.auto_tune` on, and some setting left to `auto`.
pub fn should_tune_first(stdin_tty: bool, stdout_tty: bool, auto_tune: bool, opts: &EngineOptions) -> bool {
    stdin_tty && stdout_tty && auto_tune && opts.remote.is_none() && opts.tune.is_some() && tune::wants_tuned(opts)
}

/// The first use of a model on this device in chat or the REPL on a terminal: measures it (about
/// ten seconds) unless it was measured already. Failures are reported in one line and the run
/// goes on with llama.cpp's defaults.
pub fn first_use(setup: &Setup, opts: &EngineOptions) {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !should_tune_first(tty, tty, setup.config().model.auto_tune, opts) {
        return;
    }
    crate::engine::backend(opts.log_file.as_deref());
    let file = setup.tune_file();
    let mut cache = TuneCache::load(&file);
    let device = gpu::device_key(opts.gpu_layers);
    if let Some(source) = &opts.tune {
        if let Some(sha) = cache.model_sha256(source, &opts.model_path) {
            if cache.entry(&sha, &device, MOAT_VERSION).is_some() {
                return;
            }
        }
    }
    warnln!(
        "moat: measuring the fastest settings for {} on this device, once (about 10 s; `moat doctor` shows them)…",
        opts.model_name
    );
    let result = model_sha256(&mut cache, opts, false)
        .and_then(|sha| measure_and_keep(&file, opts, &sha, &TunePlan::default(), &mut |_| {}));
    match result {
        Ok(entry) => warnln!("moat: {}", chosen_line(&entry)),
        Err(f) if f.code == crate::exit::INTERRUPTED => warnln!("moat: measuring stopped; using the defaults"),
        Err(f) => warnln!("moat: could not measure the settings ({}); using the defaults", f.message),
    }
}

/// The model's sha256: known (registry), remembered, or hashed now and remembered in `cache`
/// (saved with the entry).
fn model_sha256(cache: &mut TuneCache, opts: &EngineOptions, quiet: bool) -> Result<String, Failure> {
    let source = opts.tune.clone().ok_or_else(|| Failure::runtime("no place to keep the measurements"))?;
    if let Some(sha) = cache.model_sha256(&source, &opts.model_path) {
        return Ok(sha);
    }
    if !quiet && std::io::stderr().is_terminal() {
        warnln!("moat: hashing {} once, to recognise it later…", opts.model_path.display());
    }
    let sha = tune::sha256_file(&opts.model_path)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", opts.model_path.display())))?;
    cache.remember_sha256(&opts.model_path, &sha);
    Ok(sha)
}

/// Measures, chooses, and writes the entry (with the model's hash remembered) into `file`.
fn measure_and_keep(
    file: &std::path::Path,
    opts: &EngineOptions,
    sha: &str,
    plan: &TunePlan,
    on_trial: &mut dyn FnMut(&tune::Trial),
) -> Result<Entry, Failure> {
    let cancel = crate::interrupt::install();
    let report: TuneReport = crate::engine::measure_settings(opts, plan, &cancel, on_trial)?;
    let choice = tune::choose(&report.trials).ok_or_else(|| {
        let why = report.trials.iter().find_map(|t| t.error.clone()).unwrap_or_else(|| "no trial ran".into());
        Failure::runtime(format!("no setting could run this model ({why}); check `moat doctor`"))
    })?;
    let entry = Entry {
        model_sha256: sha.to_string(),
        device: report.device.clone(),
        moat_version: MOAT_VERSION.to_string(),
        model_name: opts.model_name.clone(),
        measured_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        took_ms: report.took_ms,
        depth: report.depth,
        gen_tokens: report.gen_tokens,
        trials: report.trials,
        choice,
    };
    // Read again: another moat may have written meanwhile.
    let mut cache = TuneCache::load(file);
    cache.remember_sha256(&opts.model_path, sha);
    cache.insert(entry.clone());
    cache.save(file).map_err(|e| {
        Failure::runtime(format!("cannot write {}: {e}; check the data dir's permissions", file.display()))
    })?;
    Ok(entry)
}

fn trial_header() -> String {
    format!(
        "  {:<6} {:>7} {:>9} {:>6} {:>10} {:>10} {:>12}",
        "flash", "threads", "pp thr.", "batch", "pp t/s", "tg t/s", "turn ms"
    )
}

/// One trial as a table row; `best` marks the ones the choice took its numbers from.
fn trial_row(t: &tune::Trial, best: bool) -> String {
    let mark = if best { "*" } else { " " };
    match &t.error {
        Some(e) => format!(
            "{mark} {:<6} {:>7} {:>9} {:>6}   failed: {}",
            t.flash_attn.to_string(),
            t.threads,
            t.threads_batch,
            t.batch,
            sanitize(e)
        ),
        None => format!(
            "{mark} {:<6} {:>7} {:>9} {:>6} {:>10.1} {:>10.1} {:>12.0}",
            t.flash_attn.to_string(),
            t.threads,
            t.threads_batch,
            t.batch,
            t.pp_tok_s,
            t.tg_tok_s,
            tune::turn_ms(t.pp_tok_s, t.tg_tok_s)
        ),
    }
}

/// The choice in one line, with the turn it saves over the first flash-attention-on trial (the
/// settings llama.cpp's defaults come to on a CPU: flash attention on, physical cores, batch 512).
fn chosen_line(e: &Entry) -> String {
    let c = &e.choice;
    let mut s = format!(
        "chosen: flash attention {}, {} threads, {} prompt threads, batch {} — a chat turn ({} prompt + {} reply tokens) ≈ {:.0} ms",
        c.flash_attn,
        c.threads,
        c.threads_batch,
        c.batch,
        tune::TURN_PROMPT_TOKENS,
        tune::TURN_REPLY_TOKENS,
        c.turn_ms
    );
    // The first flash-attention-on trial runs llama.cpp's defaults on a CPU.
    let default = e.trials.iter().find(|t| t.flash_attn == crate::config::FlashAttn::On && t.error.is_none());
    if let Some(d) = default {
        let base = tune::turn_ms(d.pp_tok_s, d.tg_tok_s);
        let same =
            (c.flash_attn, c.threads, c.threads_batch, c.batch) == (d.flash_attn, d.threads, d.threads_batch, d.batch);
        if same {
            s.push_str(&format!(
                " (llama.cpp's defaults: no other setting measured a turn {:.0}% shorter)",
                tune::NOISE_MARGIN * 100.0
            ));
        } else if base.is_finite() && c.turn_ms > 0.0 {
            s.push_str(&format!(
                " ({:.2}× faster than flash attention on, {} threads, batch {})",
                base / c.turn_ms,
                d.threads,
                d.batch
            ));
        }
    }
    s
}

/// What `moat doctor` shows under "tuning": every trial with its rates, the winner, and when; or
/// how to measure when nothing was.
pub fn report_lines(entry: Option<&Entry>) -> Vec<String> {
    let Some(e) = entry else {
        return vec!["  not tuned yet: run `moat tune` (chat and repl on a terminal do it once by themselves)".into()];
    };
    let c = &e.choice;
    let is_best = |t: &tune::Trial| {
        t.error.is_none()
            && t.flash_attn == c.flash_attn
            && ((t.threads == c.threads && t.tg_tok_s == c.tg_tok_s)
                || (t.threads_batch == c.threads_batch && t.batch == c.batch && t.pp_tok_s == c.pp_tok_s))
    };
    let mut lines = vec![format!(
        "  measured by moat {} in {:.1} s: a prompt of {} tokens, then {} generated after it (* = taken)",
        e.moat_version,
        e.took_ms / 1000.0,
        e.depth,
        e.gen_tokens
    )];
    lines.push(trial_header());
    lines.extend(e.trials.iter().map(|t| trial_row(t, is_best(t))));
    lines.push(format!("  {}", chosen_line(e)));
    lines
}

/// The cache entry for `opts`'s model on this device, if one exists, found without hashing.
pub fn cached_entry(setup: &Setup, opts: &EngineOptions) -> Option<Entry> {
    let source = opts.tune.as_ref()?;
    let cache = TuneCache::load(&setup.tune_file());
    let sha = cache.model_sha256(source, &opts.model_path)?;
    cache.entry(&sha, &gpu::device_key(opts.gpu_layers), MOAT_VERSION).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FlashAttn;
    use crate::engine::tune::Trial;
    use crate::engine::TuneSource;

    fn opts() -> EngineOptions {
        let mut o = EngineOptions::from_config(&crate::config::Config::default(), "m.gguf".into(), "m".into(), None);
        o.tune = Some(TuneSource { file: "tune.json".into(), known_sha256: None });
        o
    }

    #[test]
    fn never_tunes_in_a_pipe_or_when_everything_is_explicit() {
        let o = opts();
        assert!(should_tune_first(true, true, true, &o));
        assert!(!should_tune_first(false, true, true, &o), "stdin piped");
        assert!(!should_tune_first(true, false, true, &o), "stdout piped");
        assert!(!should_tune_first(true, true, false, &o), "model.auto_tune = false");
        let mut explicit = o.clone();
        (explicit.flash_attn, explicit.threads, explicit.threads_batch, explicit.n_batch) = (FlashAttn::Off, 2, 2, 512);
        assert!(!should_tune_first(true, true, true, &explicit));
        let mut remote = o.clone();
        remote.remote = crate::engine::RemoteOptions::from_config(&crate::config::RemoteConfig {
            url: "http://localhost:1".into(),
            ..Default::default()
        });
        assert!(!should_tune_first(true, true, true, &remote));
    }

    #[test]
    fn the_report_lists_every_trial_and_marks_the_winner_or_says_how_to_tune() {
        assert!(report_lines(None)[0].contains("not tuned yet: run `moat tune`"));
        let trials = vec![
            Trial {
                flash_attn: FlashAttn::Off,
                threads: 2,
                threads_batch: 2,
                batch: 512,
                pp_tok_s: 400.0,
                tg_tok_s: 55.0,
                error: None,
            },
            Trial {
                flash_attn: FlashAttn::On,
                threads: 2,
                threads_batch: 2,
                batch: 512,
                pp_tok_s: 410.0,
                tg_tok_s: 35.0,
                error: None,
            },
            Trial {
                flash_attn: FlashAttn::On,
                threads: 1,
                threads_batch: 2,
                batch: 256,
                pp_tok_s: 0.0,
                tg_tok_s: 0.0,
                error: Some("refused".into()),
            },
        ];
        let entry = Entry {
            model_sha256: "s".into(),
            device: "d".into(),
            moat_version: MOAT_VERSION.into(),
            model_name: "m".into(),
            measured_at: 0,
            took_ms: 6500.0,
            depth: 512,
            gen_tokens: 32,
            choice: tune::choose(&trials).unwrap(),
            trials,
        };
        let lines = report_lines(Some(&entry));
        assert_eq!(lines.len(), 2 + 3 + 1, "{lines:#?}");
        assert!(lines[2].starts_with("* off") && lines[2].contains("55.0"), "{lines:#?}");
        assert!(lines[3].starts_with("  on") && lines[3].contains("35.0"), "{lines:#?}");
        assert!(lines[4].contains("failed: refused"), "{lines:#?}");
        assert!(lines[5].contains("chosen: flash attention off, 2 threads"), "{lines:#?}");
        assert!(lines[5].contains("faster than flash attention on"), "{lines:#?}");
    }
}

#[cfg(test)]
mod precedence {
    use crate::cli::args::ModelArgs;
    use crate::config::{Config, FlashAttn};
    use crate::engine::tune::{apply, Choice};
    use crate::engine::EngineOptions;

    /// Flag > config file > measured choice > llama.cpp's default, for each tuned setting.
    #[test]
    fn an_explicit_flag_beats_the_config_which_beats_the_measurement_which_beats_the_default() {
        let file = b"[model]\nflash_attn = \"on\"\nthreads = 3\n";
        let mut config = Config::parse_file(std::path::Path::new("u.toml"), file).unwrap();
        let flags = ModelArgs { flash_attn: Some(FlashAttn::Off), ..ModelArgs::default() };
        flags.apply(&mut config);
        let choice = Choice {
            flash_attn: FlashAttn::On,
            threads: 2,
            threads_batch: 2,
            batch: 256,
            pp_tok_s: 1.0,
            tg_tok_s: 1.0,
            turn_ms: 1.0,
        };
        let untuned = EngineOptions::from_config(&config, "m.gguf".into(), "m".into(), None);
        let mut tuned = untuned.clone();
        apply(&mut tuned, &choice);
        assert_eq!(tuned.flash_attn, FlashAttn::Off, "the flag");
        assert_eq!(tuned.threads, 3, "the config file");
        assert_eq!((tuned.threads_batch, tuned.n_batch), (2, 256), "the measurement");
        // Not measured: auto stays auto (0), for llama.cpp's defaults.
        assert_eq!((untuned.threads_batch, untuned.n_batch), (0, 0));
        // `--flash-attn auto` on the command line asks for the measured choice again.
        let flags = ModelArgs { flash_attn: Some(FlashAttn::Auto), batch_size: Some(128), ..ModelArgs::default() };
        flags.apply(&mut config);
        let mut o = EngineOptions::from_config(&config, "m.gguf".into(), "m".into(), None);
        apply(&mut o, &choice);
        assert_eq!((o.flash_attn, o.n_batch), (FlashAttn::On, 128));
    }
}
