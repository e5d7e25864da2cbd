//! `moat classify train --encoder NAME|DIR data.tsv -o model.gguf`: argument plumbing, the
//! progress bar and the report around [`crate::finetune`].

use super::args::{ModelArgs, TrainArgs};
use super::Failure;
use crate::classify::input::Item;
use crate::finetune::train::{EpochRecord, Observer, Settings};
use crate::finetune::Job;
use std::path::Path;

/// A data file as the GGUF's provenance names it: (file name, sha256 of its bytes).
fn file_record(path: &Path) -> Result<(String, String), Failure> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((name, hex::encode(Sha256::digest(&bytes))))
}

/// Each item's text and the index of its gold label in `labels` (items the caller checked).
fn labelled(items: &[Item], labels: &[String]) -> Vec<(String, usize)> {
    items
        .iter()
        .filter_map(|i| Some((i.text.as_ref().ok()?.clone(), labels.iter().position(|x| Some(x) == i.label.as_ref())?)))
        .collect()
}

/// The progress bar (epoch, step, running loss, held-out score, ETA) and one line per epoch.
struct Progress {
    bar: indicatif::ProgressBar,
    epochs: usize,
    last_f1: Option<f64>,
    quiet: bool,
}

impl Observer for Progress {
    fn step(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        if self.bar.length() != Some((steps * self.epochs) as u64) {
            self.bar.set_length((steps * self.epochs) as u64);
        }
        self.bar.set_position((epoch * steps + step) as u64);
        let f1 = self.last_f1.map(|f| format!(" · held-out F1 {f:.3}")).unwrap_or_default();
        self.bar.set_message(format!("epoch {}/{} · step {step}/{steps} · loss {loss:.4}{f1}", epoch + 1, self.epochs));
    }

    fn epoch(&mut self, r: &EpochRecord, best: bool) {
        self.last_f1 = r.heldout_macro_f1.or(self.last_f1);
        if self.quiet {
            return;
        }
        let held = match (r.heldout_accuracy, r.heldout_macro_f1) {
            (Some(a), Some(f)) => {
                format!(", held-out accuracy {a:.4}, macro-F1 {f:.4}{}", if best { " (best)" } else { "" })
            }
            _ => String::new(),
        };
        let eval = match (r.eval_accuracy, r.eval_macro_f1) {
            (Some(a), Some(f)) => format!(", eval accuracy {a:.4}, macro-F1 {f:.4}"),
            _ => String::new(),
        };
        self.bar.suspend(|| {
            warnln!("epoch {}/{}: loss {:.4}{held}{eval} ({:.0} s)", r.epoch, self.epochs, r.train_loss, r.seconds);
        });
    }
}

/// Runs the fine-tuning job `t` describes; `eval` holds the `--eval-file` lines, checked against
/// `labels`.
pub fn run(
    flags: &ModelArgs,
    t: TrainArgs,
    items: Vec<Item>,
    labels: Vec<String>,
    eval: Vec<Item>,
) -> Result<i32, Failure> {
    let spec = t.encoder.encoder.clone().expect("called with --encoder");
    let e = &t.encoder;
    let holdout = t.heldout.unwrap_or(0.1);
    if !(0.0..0.9).contains(&holdout) {
        return Err(Failure::usage("--holdout must be between 0 and 0.9"));
    }
    if !(e.lr > 0.0 && e.lr < 1.0) {
        return Err(Failure::usage("--lr must be between 0 and 1 (e.g. 5e-5)"));
    }
    // range checks, so NaN fails each of them too
    if !(0.0..1.0).contains(&e.dropout) || !(0.0..1.0).contains(&e.warmup) || !(0.0..).contains(&e.weight_decay) {
        return Err(Failure::usage("--dropout and --warmup must be in [0, 1) and --weight-decay ≥ 0"));
    }
    if e.train_batch == 0 || e.max_tokens < 4 {
        return Err(Failure::usage("--train-batch must be ≥ 1 and --max-tokens ≥ 4"));
    }
    if t.output.extension().is_none_or(|x| x != "gguf") {
        return Err(Failure::usage("with --encoder the output is a GGUF: use -o NAME.gguf"));
    }
    for l in &labels {
        if !items.iter().any(|i| i.label.as_ref() == Some(l)) {
            return Err(Failure::usage(format!(
                "label {l:?} has no lines in the training data; add some or leave it out of --labels"
            )));
        }
    }
    // a registry name is pulled on first use, as the chat model is
    let setup = super::setup::Setup::new(flags)?;
    let encoder = crate::models::resolve_encoder(&spec, &setup.store, &setup.pull_options(false))?;
    let mut data_files = Vec::new();
    for p in &t.io.inputs {
        if p != Path::new("-") {
            data_files.push(file_record(p)?);
        }
    }
    if data_files.is_empty() {
        data_files.push(("stdin".into(), String::new()));
    }
    let threads = flags.threads.filter(|&n| n > 0).map(|n| n as usize).unwrap_or_else(num_cpus::get_physical);
    let epochs = t.epochs.unwrap_or(3).max(1);
    let settings = Settings {
        epochs,
        lr: e.lr,
        batch_size: e.train_batch,
        max_tokens: e.max_tokens,
        freeze: e.freeze,
        seed: e.seed,
        patience: e.patience,
        warmup: e.warmup,
        weight_decay: e.weight_decay,
        dropout: e.dropout,
        threads,
    };
    let (texts, targets) = labelled(&items, &labels).into_iter().unzip();
    let eval = labelled(&eval, &labels);
    let eval_file = match &e.eval_file {
        Some(p) => Some(file_record(p)?),
        None => None,
    };
    let job = Job {
        encoder,
        texts,
        targets,
        labels: labels.clone(),
        holdout,
        settings,
        outtype: e.outtype,
        output: t.output.clone(),
        data_files,
        checkpoint_dir: e.checkpoint.clone(),
        resume: e.resume,
        eval,
        eval_file,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {msg} · ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = Progress { bar, epochs, last_f1: None, quiet: t.json };
    let stop = crate::interrupt::install();
    let report = crate::finetune::run(&job, &stop, &mut progress).map_err(Failure::runtime)?;
    progress.bar.finish_and_clear();
    if t.json {
        sayln!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        let o = &report.outcome;
        if let Some(p) = &report.tokenizer_parity {
            sayln!("tokenizer: llama.cpp and tokenizer.json agree on {}/{} lines", p.identical, p.total);
        }
        let why = if o.interrupted {
            "interrupted; "
        } else if o.stopped_early {
            "stopped early; "
        } else {
            ""
        };
        let score = match (report.heldout_accuracy, report.heldout_macro_f1) {
            (Some(a), Some(f)) => format!(", held-out ({} lines) accuracy {a:.4}, macro-F1 {f:.4}", report.n_heldout),
            _ => String::new(),
        };
        sayln!(
            "fine-tuned {} on {} lines ({} epochs run, {}kept epoch {}{score}) in {:.0} s; saved {}",
            spec,
            report.n_train,
            o.history.len(),
            why,
            o.kept_epoch,
            report.seconds,
            t.output.display()
        );
        if let (Some(a), Some(f)) = (report.eval_accuracy, report.eval_macro_f1) {
            let name = e.eval_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            sayln!("on {name} ({} lines), the kept epoch scores accuracy {a:.4}, macro-F1 {f:.4}", report.n_eval);
        }
        if report.n_truncated > 0 {
            sayln!(
                "{} lines were longer than --max-tokens {} and kept their first and last halves",
                report.n_truncated,
                e.max_tokens
            );
        }
    }
    Ok(if report.outcome.interrupted { 130 } else { 0 })
}
