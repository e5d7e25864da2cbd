//! `moat classify`: classify lines, evaluate against gold labels, benchmark, or train a head.

use super::args::{ClassifyArgs, ClassifyIo, ModelArgs, TrainArgs};
use super::setup::{self, Setup};
use super::Failure;
use crate::classify::head::{Head, Provenance, TrainOptions};
use crate::classify::input::{self, Column, InputFormat, InputSpec, Item};
use crate::classify::metrics::Metrics;
use crate::classify::output::{self, OutputFormat, Row};
use crate::classify::spec::{Model, Request, DEFAULT_PROMPT_MODEL};
use crate::classify::{self as cls, Classifier, Prediction};
use crate::engine::{Engine, ModelInfo};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

pub fn run(flags: &ModelArgs, args: ClassifyArgs) -> Result<i32, Failure> {
    let on_server = !Setup::new(flags)?.config().remote.url.trim().is_empty();
    let local_only = args.action.is_some() || Request::local_only(args.method, args.head.is_some());
    if on_server && local_only {
        // Before reading a head file: its check would only hide this.
        return Err(Failure::usage(
            "trained heads and native classifiers run on the local model (they need its embeddings or its own head); drop --remote (or unset MOAT_REMOTE_URL / remote.url), or use label scoring",
        ));
    }
    if let Some(super::args::ClassifyAction::Train(t)) = args.action {
        return train(flags, t);
    }
    let mut request = Request {
        method: args.method,
        labels: args.labels.as_deref().map(cls::parse_labels).transpose().map_err(Failure::usage)?,
        head: args.head.as_deref().map(Head::load).transpose().map_err(Failure::usage)?,
        examples: None,
        shots: args.shots,
        calibrate: !args.no_calibrate,
        chat_prompt: args.chat_prompt,
        template: args.prompt.clone(),
        max_tokens: args.io.truncate,
        long: args.io.long,
        batch: args.io.batch,
    };
    request.check().map_err(Failure::usage)?;
    if let Some(p) = &args.examples {
        let items = read_items(&ClassifyIo { inputs: vec![p.clone()], ..args.io.clone() }, true)?;
        check_records(&items, &format!("the examples file {}", p.display()))?;
        request.examples = Some(items.into_iter().filter_map(|i| Some((i.label?, i.text.ok()?))).collect());
    }
    let items = read_items(&args.io, args.eval || args.bench)?;
    if args.eval || args.bench {
        // Before the model loads: a malformed file should not cost a model load to find out.
        check_records(&items, "the labelled file")?;
    }
    let model_name = request.model(flags.model.as_deref()).map_err(Failure::usage)?;
    let (mut engine, info) = start(flags, &model_name)?;
    let spec = request.resolve(&Model::from(&info)).map_err(Failure::usage)?;
    let mut classifier = Classifier::new(&spec);
    let labels = classifier.labels.clone();
    if args.eval || args.bench {
        check_gold(&items, &labels)?;
    }
    if args.bench {
        return bench(&mut engine, &info, &mut classifier, &items, args.json);
    }
    let format =
        args.format.unwrap_or(if std::io::stdout().is_terminal() { OutputFormat::Table } else { OutputFormat::Tsv });
    let started = Instant::now();
    let results = predict(&mut engine, &mut classifier, &items, !args.eval, format)?;
    let secs = started.elapsed().as_secs_f64();
    let skipped = results.iter().filter(|r| r.is_err()).count();
    if args.eval {
        let pairs: Vec<(usize, usize)> = items
            .iter()
            .zip(&results)
            .filter_map(|(i, r)| {
                let p = r.as_ref().ok()?;
                Some((labels.iter().position(|l| Some(l) == i.label.as_ref())?, p.label))
            })
            .collect();
        let m = Metrics::compute(&labels, &pairs, skipped);
        let rate = items.len() as f64 / secs.max(1e-9);
        if args.json {
            let j = serde_json::json!({
                "model": info.name, "method": classifier.describe(), "metrics": m,
                "seconds": secs, "lines_per_s": rate,
            });
            println!("{j}");
        } else {
            sayln!("{} · {}", info.name, classifier.describe());
            print!("{}", crate::render::sanitize(&m.report()));
            sayln!("\n{} lines in {:.1} s ({:.1} lines/s)", items.len(), secs, rate);
        }
    } else if skipped > 0 {
        warnln!("moat: {skipped} of {} line(s) could not be classified (see the error column)", items.len());
    }
    Ok(0)
}

fn start(flags: &ModelArgs, model: &str) -> Result<(Engine, ModelInfo), Failure> {
    let mut flags = flags.clone();
    let setup = Setup::new(&flags)?;
    // On a server, -m (if given) names its model; the local default classifier is not sent there.
    let setup = if setup.remote().is_some() {
        setup
    } else {
        flags.model = Some(model.to_string());
        Setup::new(&flags)?
    };
    let mut opts = setup.target()?;
    opts.n_ctx = 512; // the chat context is not used; classification has its own
    setup::start(opts)
}

/// Reads every input (files in order, or stdin) into items; `labelled` = gold labels are needed.
fn read_items(io: &ClassifyIo, labelled: bool) -> Result<Vec<Item>, Failure> {
    let mut items = Vec::new();
    let sources: Vec<Option<&Path>> = if io.inputs.is_empty() {
        vec![None]
    } else {
        io.inputs.iter().map(|p| Some(p.as_path()).filter(|p| *p != Path::new("-"))).collect()
    };
    for src in sources {
        let (name, bytes) = match src {
            Some(p) => (
                p.display().to_string(),
                std::fs::read(p).map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))?,
            ),
            None => {
                if std::io::stdin().is_terminal() {
                    return Err(Failure::usage("no input: pass a file (`moat classify reviews.txt`) or pipe lines in"));
                }
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| Failure::runtime(format!("cannot read stdin: {e}")))?;
                ("stdin".to_string(), b)
            }
        };
        if input::is_utf16(&bytes) {
            return Err(Failure::usage(format!("{name} is UTF-16; save it as UTF-8")));
        }
        let format = io.input_format.unwrap_or_else(|| {
            let ext = src.and_then(|p| p.extension()).and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
            match ext.as_str() {
                "tsv" => InputFormat::Tsv,
                "csv" => InputFormat::Csv,
                "jsonl" | "ndjson" => InputFormat::Jsonl,
                _ if labelled => InputFormat::Tsv,
                _ => InputFormat::Lines,
            }
        });
        let spec = spec_for(format, io, &bytes, labelled);
        let mut got = input::parse(&bytes, &spec).map_err(|e| Failure::usage(format!("{name}: {}", e.0)))?;
        if io.inputs.len() > 1 {
            for i in got.iter_mut() {
                i.text = std::mem::replace(&mut i.text, Ok(String::new())).map_err(|e| format!("{name}: {e}"));
            }
        }
        items.extend(got);
    }
    if items.is_empty() {
        return Err(Failure::usage(
            "nothing to classify: the input has no lines (or only a header); pass a file or pipe lines in",
        ));
    }
    if let Some(n) = io.limit {
        items.truncate(n);
    }
    Ok(items)
}

/// Column defaults: "text"/"label" when the header names them, else last/first column.
fn spec_for(format: InputFormat, io: &ClassifyIo, bytes: &[u8], labelled: bool) -> InputSpec {
    // The first record as the parser reads it (quoted CSV header cells, BOM, CRLF).
    let cells: Vec<String> = input::first_row(bytes, format).iter().map(|c| c.trim().to_lowercase()).collect();
    let table = matches!(format, InputFormat::Tsv | InputFormat::Csv);
    let text = match &io.text_column {
        Some(c) => Column::parse(c),
        None if !table || cells.iter().any(|c| c == "text") => Column::Name("text".into()),
        None => Column::Index(cells.len().saturating_sub(1)),
    };
    let label = match &io.label_column {
        Some(c) => Some(Column::parse(c)),
        None if !labelled => None,
        None if !table || cells.iter().any(|c| c == "label") => Some(Column::Name("label".into())),
        None => Some(Column::Index(0)),
    };
    InputSpec { format, text, label, id: io.id_column.as_deref().map(Column::parse) }
}

/// A record of labelled data that cannot be read (bad bytes, broken quoting, wrong column
/// count, empty) or has no label stops the run (exit 2), naming the line the first such record
/// starts on. Whether the labels are known is [`check_gold`]'s part, once the labels are.
fn check_records(items: &[Item], what: &str) -> Result<(), Failure> {
    for i in items {
        if let Err(e) = &i.text {
            return Err(Failure::usage(format!("line {}: {e}; fix {what}", i.line)));
        }
        if i.label.is_none() {
            return Err(Failure::usage(format!("line {}: no gold label; pass --label-column", i.line)));
        }
    }
    Ok(())
}

/// Malformed evaluation data is an error for the whole run (exit 2), naming the first bad line.
fn check_gold(items: &[Item], labels: &[String]) -> Result<(), Failure> {
    if items.is_empty() {
        return Err(Failure::usage("the labelled input has no rows"));
    }
    for i in items {
        if let Err(e) = &i.text {
            return Err(Failure::usage(format!("line {}: {e}; fix the labelled file", i.line)));
        }
        match &i.label {
            None => return Err(Failure::usage(format!("line {}: no gold label; pass --label-column", i.line))),
            Some(l) if !labels.contains(l) => {
                return Err(Failure::usage(format!(
                    "line {}: unknown label {l:?} (labels: {}); pass --labels",
                    i.line,
                    labels.join(",")
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

fn progress(n: usize) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() && n >= 32 {
        let b = indicatif::ProgressBar::with_draw_target(Some(n as u64), indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template("classifying [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .expect("valid"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    }
}

/// Classifies every item, printing rows in input order as they finish when `print` is set.
fn predict(
    engine: &mut Engine,
    c: &mut Classifier,
    items: &[Item],
    print: bool,
    format: OutputFormat,
) -> Result<Vec<Result<Prediction, String>>, Failure> {
    let labels = c.labels.clone();
    let valid: Vec<usize> = (0..items.len()).filter(|&i| items[i].text.is_ok()).collect();
    let texts: Vec<String> = valid.iter().map(|&i| items[i].text.clone().expect("valid")).collect();
    let mut results: Vec<Option<Result<Prediction, String>>> =
        items.iter().map(|i| i.text.as_ref().err().map(|e| Err(e.clone()))).collect();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let width = terminal_width();
    let tty = out.is_terminal();
    if print {
        if let Some(h) = output::header(&labels, format) {
            let _ = writeln!(out, "{h}");
        }
    }
    let bar = progress(items.len());
    let mut next = 0usize; // first item not printed yet
    let mut flush = |results: &mut Vec<Option<Result<Prediction, String>>>, out: &mut std::io::StdoutLock<'_>| {
        while next < items.len() {
            let Some(r) = &results[next] else { break };
            if print {
                let it = &items[next];
                let row = Row { line: it.line, id: it.id.as_deref(), text: it.text.as_deref().ok(), result: r };
                let line = output::row(&labels, format, &row, width);
                // TSV is data on a pipe; on a terminal its text column is untrusted (tables are
                // sanitised by `output::row` itself, JSON is escaped by serde).
                let _ = writeln!(out, "{}", crate::render::for_terminal(&line, tty && format == OutputFormat::Tsv));
            }
            next += 1;
            bar.inc(1);
        }
        let _ = out.flush();
    };
    flush(&mut results, &mut out);
    c.run(engine, texts, true, |vi, r| {
        results[valid[vi]] = Some(r);
        flush(&mut results, &mut out);
    })?;
    bar.finish_and_clear();
    Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err("not classified".into()))).collect())
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100)
}

/// The naive path (every line's whole prompt decoded alone, one line per decode) against the
/// batched default, on the same lines: lines/s, speed-up, and accuracy of each.
fn bench(
    engine: &mut Engine,
    info: &ModelInfo,
    c: &mut Classifier,
    items: &[Item],
    json: bool,
) -> Result<i32, Failure> {
    let texts: Vec<String> = items.iter().map(|i| i.text.clone().expect("checked")).collect();
    let gold: Vec<usize> =
        items.iter().map(|i| c.labels.iter().position(|l| Some(l) == i.label.as_ref()).expect("checked")).collect();
    // Warm-up: graphs, the shared prefix and the calibration, so both paths are timed alike.
    let _ = c.run(engine, texts.iter().take(2).cloned().collect(), true, |_, _| {});
    let mut naive_c = Classifier { batch: 1, ..c.clone() };
    let mut measure = |naive: bool| -> Result<(f64, f64), Failure> {
        let mut correct = 0usize;
        let t = Instant::now();
        let which = if naive { &mut naive_c } else { &mut *c };
        which.run(engine, texts.clone(), !naive, |i, r| {
            if r.is_ok_and(|p| p.label == gold[i]) {
                correct += 1;
            }
        })?;
        Ok((texts.len() as f64 / t.elapsed().as_secs_f64().max(1e-9), correct as f64 / texts.len() as f64))
    };
    let (naive_rate, naive_acc) = measure(true)?;
    let (rate, acc) = measure(false)?;
    let speedup = rate / naive_rate.max(1e-9);
    if json {
        sayln!(
            "{}",
            serde_json::json!({"model": info.name, "method": c.describe(), "lines": texts.len(), "threads": info.threads_batch,
                "naive_lines_per_s": naive_rate, "naive_accuracy": naive_acc, "lines_per_s": rate, "accuracy": acc, "speedup": speedup})
        );
    } else {
        let (place, how) = match &info.remote {
            // A server batches the requests in flight itself; moat keeps a few going at once.
            Some(url) => (
                format!("server {url}"),
                format!("{} requests in flight", c.batch.clamp(1, crate::engine::SCORE_IN_FLIGHT)),
            ),
            None => {
                let how = if matches!(c.method, cls::Method::Prompt { .. }) { "shared prefix" } else { "batched" };
                (format!("{} threads", info.threads_batch), format!("{how}, {:>2} per decode", c.batch))
            }
        };
        sayln!("{} · {} · {} lines · {place}", info.name, c.describe(), texts.len());
        sayln!("  one at a time, full prompt   {naive_rate:>8.1} lines/s   accuracy {naive_acc:.3}");
        sayln!("  moat ({how}) {rate:>7.1} lines/s   accuracy {acc:.3}");
        sayln!("  speed-up {speedup:.2}x");
    }
    Ok(0)
}

fn train(flags: &ModelArgs, t: TrainArgs) -> Result<i32, Failure> {
    let heldout = t.heldout.unwrap_or(0.2);
    if t.encoder.encoder.is_none() && !(0.0..0.9).contains(&heldout) {
        return Err(Failure::usage("--heldout must be between 0 and 0.9"));
    }
    let items = read_items(&t.io, true)?;
    check_records(&items, "the training file")?;
    let labels = match &t.labels {
        Some(l) => cls::parse_labels(l).map_err(Failure::usage)?,
        None => {
            let mut l: Vec<String> = Vec::new();
            for i in &items {
                if let Some(x) = &i.label {
                    if !l.contains(x) {
                        l.push(x.clone());
                    }
                }
            }
            l
        }
    };
    if labels.len() < 2 {
        return Err(Failure::usage("the training data needs at least two different labels"));
    }
    check_gold(&items, &labels)?;
    if t.encoder.encoder.is_some() {
        let eval = match &t.encoder.eval_file {
            Some(p) if p.as_os_str() == "-" => {
                return Err(Failure::usage("--eval-file needs a file (stdin is for the training lines)"))
            }
            Some(p) => {
                let items = read_items(&ClassifyIo { inputs: vec![p.clone()], ..t.io.clone() }, true)?;
                check_records(&items, &format!("the eval file {}", p.display()))?;
                check_gold(&items, &labels)
                    .map_err(|f| Failure { message: format!("{}: {}", p.display(), f.message), ..f })?;
                items
            }
            None => Vec::new(),
        };
        return super::finetune::run(flags, t, items, labels, eval);
    }
    if !t.feature_prompt.contains("{text}") {
        return Err(Failure::usage("--feature-prompt must contain {text}"));
    }
    let model_name = flags.model.clone().unwrap_or_else(|| DEFAULT_PROMPT_MODEL.to_string());
    let (mut engine, info) = start(flags, &model_name)?;
    // Deterministic shuffle, then the held-out tail.
    let mut order: Vec<usize> = (0..items.len()).collect();
    crate::rng::Rng::new(0x9E37_79B9_7F4A_7C15).shuffle(&mut order);
    let texts: Vec<String> = order.iter().map(|&i| items[i].text.clone().expect("checked")).collect();
    let ys: Vec<usize> = order
        .iter()
        .map(|&i| labels.iter().position(|l| Some(l) == items[i].label.as_ref()).expect("checked"))
        .collect();
    let prompt = crate::engine::PromptSpec::raw(t.feature_prompt.clone());
    let mut xs: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    let bar = progress(texts.len());
    let started = Instant::now();
    cls::features(&mut engine, texts.clone(), &prompt, t.pooling.into(), t.io.truncate, t.io.batch, |i, r| {
        xs[i] = r.ok();
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let feat_s = started.elapsed().as_secs_f64();
    let keep: Vec<usize> = (0..texts.len()).filter(|&i| xs[i].is_some()).collect();
    let n_held = ((keep.len() as f64) * heldout).round() as usize;
    let (train_idx, held_idx) = keep.split_at(keep.len() - n_held);
    let tx: Vec<Vec<f32>> = train_idx.iter().map(|&i| xs[i].clone().expect("kept")).collect();
    let ty: Vec<usize> = train_idx.iter().map(|&i| ys[i]).collect();
    let training_set =
        t.io.inputs
            .iter()
            .map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("+");
    let prov = Provenance {
        model: model_name.clone(),
        model_sha256: sha256_file(&info.path).unwrap_or_default(),
        training_set: if training_set.is_empty() { "stdin".into() } else { training_set },
        n_train: tx.len(),
        n_heldout: held_idx.len(),
        heldout_accuracy: None,
        heldout_macro_f1: None,
        created: jiff::Timestamp::now().to_string(),
    };
    let opts = TrainOptions { epochs: t.epochs.unwrap_or(300), l2: t.l2, ..TrainOptions::default() };
    let mut head =
        Head::train(labels.clone(), &tx, &ty, t.pooling.into(), t.feature_prompt.clone(), t.io.truncate, opts, prov);
    let pairs: Vec<(usize, usize)> = held_idx
        .iter()
        .map(|&i| (ys[i], Prediction::from_probs_pub(head.predict(xs[i].as_ref().expect("kept"))).label))
        .collect();
    let m = (!pairs.is_empty()).then(|| Metrics::compute(&labels, &pairs, 0));
    if let Some(m) = &m {
        head.provenance.heldout_accuracy = Some(m.accuracy);
        head.provenance.heldout_macro_f1 = Some(m.macro_f1);
    }
    head.save(&t.output).map_err(Failure::runtime)?;
    if t.json {
        sayln!(
            "{}",
            serde_json::json!({"head": t.output, "provenance": head.provenance, "heldout": m, "feature_seconds": feat_s})
        );
    } else {
        sayln!(
            "trained a {}-label head on {} examples ({} features from {}, {:.1} s); saved {}",
            labels.len(),
            tx.len(),
            head.dim(),
            info.name,
            feat_s,
            t.output.display()
        );
        if let Some(m) = &m {
            sayln!("held-out ({} examples):", pairs.len());
            print!("{}", crate::render::sanitize(&m.report()));
        }
    }
    Ok(0)
}

fn sha256_file(path: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(hex::encode(h.finalize()))
}
