//! `moat quantize IN [OUT] --type TYPE`, and the quantising step of `moat models pull --quantize`.

use super::args::{ModelArgs, QuantizeArgs};
use super::setup::Setup;
use super::Failure;
use crate::models::gguf;
use crate::models::store::{human_bytes, tilde};
use crate::quantize::{self, Outcome, QuantizeError, Request};
use std::io::IsTerminal;
use std::path::Path;

impl From<QuantizeError> for Failure {
    fn from(e: QuantizeError) -> Self {
        let code = match &e {
            QuantizeError::Interrupted => crate::exit::INTERRUPTED,
            e if e.is_usage() => crate::exit::USAGE,
            _ => crate::exit::RUNTIME,
        };
        Failure { code, message: e.to_string() }
    }
}

pub fn run(flags: &ModelArgs, args: QuantizeArgs) -> Result<i32, Failure> {
    let ty = quantize::parse_type(&args.ty)?;
    let setup = Setup::new(flags)?;
    let output = args.output.clone().unwrap_or_else(|| quantize::default_output(&args.input, ty));
    let req = Request {
        input: args.input,
        output,
        ty,
        threads: setup.config().model.threads,
        allow_requantize: args.allow_requantize,
        imatrix: args.imatrix,
        force: args.force,
    };
    let done = run_request(&setup, &req)?;
    if args.json {
        println!("{}", serde_json::json!({ "result": done }));
    } else {
        report(&done);
    }
    Ok(0)
}

/// Runs one quantisation with a progress bar (tensors done of the GGUF header's count) on a
/// terminal's stderr.
pub(super) fn run_request(setup: &Setup, req: &Request) -> Result<Outcome, Failure> {
    crate::interrupt::install();
    let log = setup.loaded.paths.log_file(&setup.config().log.file);
    let bar = match gguf::inspect(&req.input) {
        Ok(h) if std::io::stderr().is_terminal() => {
            let b =
                indicatif::ProgressBar::with_draw_target(Some(h.tensor_count), indicatif::ProgressDrawTarget::stderr());
            b.set_style(
                indicatif::ProgressStyle::with_template("quantising to {prefix} [{bar:24}] {pos}/{len} tensors {msg}")
                    .expect("valid template"),
            );
            b.set_prefix(req.ty.name);
            b
        }
        _ => indicatif::ProgressBar::hidden(),
    };
    let result = quantize::quantize(req, log.as_deref(), &mut |t| {
        bar.set_length(t.total);
        bar.set_position(t.index);
        bar.set_message(crate::render::sanitize(&t.name).into_owned());
    });
    bar.finish_and_clear();
    Ok(result?)
}

/// `moat bench --perplexity FILE`: the configured model's perplexity on FILE's text, in windows
/// of `-c` tokens (512 when the context is left at 0, the model's own).
pub(super) fn perplexity(setup: &Setup, file: &Path, json: bool) -> Result<i32, Failure> {
    if setup.remote().is_some() {
        return Err(Failure::usage("--perplexity needs a local model (a server does not return every token's logits)"));
    }
    crate::interrupt::install();
    let bytes = std::fs::read(file).map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let text = super::input::decode(&file.display().to_string(), bytes)?;
    let (model, path) = setup.model_path()?;
    let cfg = &setup.config().model;
    let req = quantize::PerplexityRequest {
        model: path,
        text,
        n_ctx: if cfg.n_ctx == 0 { 512 } else { cfg.n_ctx },
        // Scoring is prompt processing: the prompt-processing thread count (0 = logical cores).
        threads: if cfg.threads_batch == 0 { num_cpus::get().max(1) as u32 } else { cfg.threads_batch },
    };
    let log = setup.loaded.paths.log_file(&setup.config().log.file);
    let r = quantize::perplexity(&req, log.as_deref()).map_err(|e| {
        if crate::interrupt::interrupted() {
            Failure { code: crate::exit::INTERRUPTED, message: e }
        } else {
            Failure::runtime(e)
        }
    })?;
    if json {
        println!("{}", serde_json::json!({ "model": model.display_name(), "perplexity": r }));
    } else {
        sayln!(
            "{}: PPL {:.4} ± {:.4} over {} tokens ({} windows of {}, second halves scored; {} tokens of text, {:.1} s)",
            model.display_name(),
            r.ppl,
            r.ppl * r.nll_stderr,
            r.scored,
            r.windows,
            r.n_ctx,
            r.text_tokens,
            r.seconds
        );
    }
    Ok(0)
}

/// The one line a finished quantisation prints.
pub(super) fn report(done: &Outcome) {
    warnln!(
        "moat: wrote {} ({} -> {}, {} tensors, {} -> {}, {:.1} s)",
        tilde(&done.output),
        done.from,
        done.to,
        done.tensors,
        human_bytes(done.input_bytes),
        human_bytes(done.output_bytes),
        done.seconds
    );
}

/// `models pull NAME --quantize TYPE`: quantises the pulled file at `path` into the same folder.
/// Requantising is implied (every download is already quantised); an existing output is kept.
pub(super) fn after_pull(setup: &Setup, path: &Path, ty: &'static quantize::QuantType) -> Result<(), Failure> {
    let output = quantize::default_output(path, ty);
    if output.exists() {
        warnln!(
            "moat: {} is already present (remove it to quantise again); use it with -m {}",
            tilde(&output),
            output.display()
        );
        return Ok(());
    }
    let req = Request {
        input: path.to_path_buf(),
        output: output.clone(),
        ty,
        threads: setup.config().model.threads,
        allow_requantize: true,
        imatrix: None,
        force: false,
    };
    let done = run_request(setup, &req)?;
    if done.from != "F32" && done.from != "F16" && done.from != "BF16" {
        warnln!("moat: note: requantised from {}, so it keeps {}'s rounding error too", done.from, done.from);
    }
    report(&done);
    warnln!("moat: use it with -m {}", output.display());
    Ok(())
}
