//! Fine-tuning a pretrained BERT-family encoder into a sequence classifier, on the CPU, and
//! writing it as a GGUF that moat's native classifier path runs (`moat classify train --encoder`).
//!
//! - [`bert`]: llama.cpp's BERT graph in differentiable candle ops;
//! - [`checkpoint`]: a Hugging Face checkpoint directory → GGUF-named tensors and the vocab;
//! - [`tokens`]: tokenising with llama.cpp from the GGUF's own vocab (+ a parity check against
//!   the checkpoint's `tokenizer.json`);
//! - [`optim`]: AdamW with clipping and warm-up / linear decay;
//! - [`train`]: the loop (held-out evaluation, early stopping, checkpoints, Ctrl+C);
//! - [`gguf`]: the classifier GGUF with its provenance.

pub mod bert;
pub mod checkpoint;
pub mod gguf;
pub mod optim;
pub mod tokens;
pub mod train;

use bert::BertParams;
use candle_core::{Device, Tensor};
use gguf::{GgufMeta, OutType};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use train::{CheckpointPlan, Example, Observer, Outcome, Settings};

/// One fine-tuning job.
pub struct Job {
    /// The base encoder's files and where they came from (a registry entry or a directory).
    pub encoder: crate::models::EncoderFiles,
    /// Training lines and their label indices into `labels`.
    pub texts: Vec<String>,
    pub targets: Vec<usize>,
    pub labels: Vec<String>,
    /// Share of the lines held out for evaluation and early stopping (0 = none).
    pub holdout: f64,
    pub settings: Settings,
    pub outtype: OutType,
    pub output: PathBuf,
    /// Training files: (file name, sha256 of its bytes).
    pub data_files: Vec<(String, String)>,
    pub checkpoint_dir: Option<PathBuf>,
    pub resume: bool,
    /// Lines scored after every epoch for a learning curve (`--eval-file`): text and label
    /// index. They never choose the kept epoch.
    pub eval: Vec<(String, usize)>,
    /// The eval file: (file name, sha256), recorded in the GGUF with the scores.
    pub eval_file: Option<(String, String)>,
}

/// What the run did, for the report and `--json`.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub output: PathBuf,
    pub n_train: usize,
    pub n_heldout: usize,
    pub n_truncated: usize,
    pub tokenizer_parity: Option<tokens::Parity>,
    pub outcome: Outcome,
    pub heldout_accuracy: Option<f64>,
    pub heldout_macro_f1: Option<f64>,
    /// The `--eval-file` scores of the kept epoch.
    pub eval_accuracy: Option<f64>,
    pub eval_macro_f1: Option<f64>,
    pub n_eval: usize,
    pub trainable_parameters: usize,
    pub seconds: f64,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Normal(0, std) samples from the seeded generator (Box–Muller).
fn normal(rng: &mut crate::rng::Rng, n: usize, std: f32) -> Vec<f32> {
    let mut u = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (0..n).map(|_| ((-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos()) as f32 * std).collect()
}

/// The encoder with a fresh head for `n_labels`: `cls` from BERT's pooler when the checkpoint
/// has one (as BertForSequenceClassification loads it), else N(0, 0.02); `cls.output` N(0, 0.02).
pub fn init_params(ck: &mut checkpoint::Checkpoint, n_labels: usize, seed: u64) -> Result<BertParams, String> {
    let h = ck.config.hidden_size;
    let mut rng = crate::rng::Rng::new(seed ^ 0xC1A5_51F1);
    let has_pooler = ck.tensors.contains_key("cls.weight");
    let dev = Device::Cpu;
    let mut put = |name: &str, shape: Vec<usize>, data: Vec<f32>| -> Result<(), String> {
        let t = Tensor::from_vec(data, shape, &dev).map_err(|e| e.to_string())?;
        ck.tensors.insert(name.to_string(), t);
        Ok(())
    };
    if !has_pooler {
        put("cls.weight", vec![h, h], normal(&mut rng, h * h, 0.02))?;
        put("cls.bias", vec![h], vec![0.0; h])?;
    }
    put("cls.output.weight", vec![n_labels, h], normal(&mut rng, n_labels * h, 0.02))?;
    put("cls.output.bias", vec![n_labels], vec![0.0; n_labels])?;
    BertParams::from_tensors(ck.config.clone(), n_labels, std::mem::take(&mut ck.tensors))
}

/// A GGUF with the checkpoint's vocab and no tensors: enough for llama.cpp to tokenise.
fn vocab_gguf(
    params: &BertParams,
    vocab: &checkpoint::Vocab,
    labels: &[String],
    dir: &Path,
) -> Result<PathBuf, String> {
    let empty = BertParams { config: params.config.clone(), n_labels: params.n_labels, vars: Vec::new() };
    let meta = GgufMeta { name: "vocab", description: "", license: "", labels, vocab, extra: &[] };
    let path = dir.join("vocab.gguf");
    gguf::write(&path, &empty, &meta, OutType::F32)?;
    Ok(path)
}

/// Every training step allocates and frees the same large activation and gradient buffers. With
/// glibc's defaults each one over 128 KiB is a fresh mmap, returned on free, so every step pays
/// for page faults and zeroing pages again (a 1-epoch run measured 72 M minor faults and 222 s of
/// system time in 1,200 s). Keeping freed memory in the heap for reuse avoids that.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator's thresholds; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Runs `job`: load, tokenise (llama.cpp), split, train, write the GGUF.
///
/// Errors: one line for any input problem (checkpoint, data, checkpoint directory) or a training
/// failure; the output file is only ever replaced whole.
pub fn run(job: &Job, stop: &AtomicBool, obs: &mut dyn Observer) -> Result<Report, String> {
    let started = std::time::Instant::now();
    if job.settings.threads > 0 {
        // candle sizes its matmul parallelism from this on every call
        std::env::set_var("RAYON_NUM_THREADS", job.settings.threads.to_string());
    }
    keep_freed_memory();
    let e = &job.encoder;
    let mut ck = checkpoint::load(&e.config, &e.weights, e.tokenizer_json.as_deref(), e.vocab_txt.as_deref())?;
    let vocab = ck.vocab.clone();
    let params = init_params(&mut ck, job.labels.len(), job.settings.seed)?;
    let max_tokens = job.settings.max_tokens.clamp(4, params.config.max_position_embeddings);

    let tmp = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let tok = tokens::GgufTokenizer::load(&vocab_gguf(&params, &vocab, &job.labels, tmp.path())?)?;
    let refs: Vec<&str> = job.texts.iter().map(|s| s.as_str()).collect();
    let tokenizer_parity = match &e.tokenizer_json {
        Some(t) => Some(tokens::parity(&tok, t, &refs)?),
        None => None,
    };
    let mut n_truncated = 0;
    let examples: Vec<Example> = job
        .texts
        .iter()
        .zip(&job.targets)
        .map(|(t, &label)| {
            let ids = tok.encode(t, max_tokens);
            if ids.len() >= max_tokens && tok.encode(t, usize::MAX).len() > max_tokens {
                n_truncated += 1;
            }
            Example { ids, label }
        })
        .collect();

    // a seeded shuffle, then the held-out tail
    let mut order: Vec<usize> = (0..examples.len()).collect();
    crate::rng::Rng::new(job.settings.seed).shuffle(&mut order);
    let n_held = ((examples.len() as f64) * job.holdout.clamp(0.0, 0.9)).round() as usize;
    let (tr, he) = order.split_at(order.len() - n_held);
    let train_set: Vec<Example> = tr.iter().map(|&i| examples[i].clone()).collect();
    let held_set: Vec<Example> = he.iter().map(|&i| examples[i].clone()).collect();
    if train_set.is_empty() {
        return Err("nothing left to train on after the held-out split; lower --holdout or add data".into());
    }

    let settings_json = serde_json::to_string(&job.settings).map_err(|e| e.to_string())?;
    let data_json = serde_json::to_string(&job.data_files).map_err(|e| e.to_string())?;
    let fingerprint = sha256_hex(
        format!("{}|{}|{}|{:?}|{}|{}", e.weights_sha256, data_json, settings_json, job.labels, job.holdout, max_tokens)
            .as_bytes(),
    );
    let plan = CheckpointPlan { dir: job.checkpoint_dir.clone(), resume: job.resume, fingerprint };
    let freeze = job.settings.freeze.min(params.config.num_hidden_layers);
    let trainable_parameters = params
        .vars
        .iter()
        .filter(|(n, _)| train::is_trainable(n, freeze))
        .map(|(_, v)| v.as_tensor().elem_count())
        .sum();
    let eval_set: Vec<Example> =
        job.eval.iter().map(|(t, label)| Example { ids: tok.encode(t, max_tokens), label: *label }).collect();
    let outcome =
        train::fit(&params, &train_set, &held_set, &eval_set, &job.labels, &job.settings, vocab.pad, &plan, stop, obs)?;
    if outcome.history.is_empty() {
        return Err(format!("interrupted before the first training step; {} was not written", job.output.display()));
    }
    let kept = outcome.history.iter().find(|r| r.epoch == outcome.kept_epoch);
    let heldout_accuracy = kept.and_then(|r| r.heldout_accuracy);
    let heldout_macro_f1 = kept.and_then(|r| r.heldout_macro_f1);
    let (eval_accuracy, eval_macro_f1) = (kept.and_then(|r| r.eval_accuracy), kept.and_then(|r| r.eval_macro_f1));

    let fmt = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_else(|| "none".into());
    let extra = vec![
        ("moat.finetune.base_encoder".to_string(), format!("{} ({})", e.name, e.source)),
        ("moat.finetune.base_sha256".to_string(), e.weights_sha256.clone()),
        ("moat.finetune.data".to_string(), data_json),
        ("moat.finetune.settings".to_string(), settings_json),
        ("moat.finetune.holdout".to_string(), format!("{} of {} lines", held_set.len(), examples.len())),
        ("moat.finetune.heldout_accuracy".to_string(), fmt(heldout_accuracy)),
        ("moat.finetune.heldout_macro_f1".to_string(), fmt(heldout_macro_f1)),
        (
            "moat.finetune.eval_data".to_string(),
            match &job.eval_file {
                Some((name, sha)) => {
                    format!("{} lines of {name} (sha256 {sha}), scored after every epoch", eval_set.len())
                }
                None => "none".into(),
            },
        ),
        ("moat.finetune.history".to_string(), serde_json::to_string(&outcome.history).map_err(|e| e.to_string())?),
        (
            "moat.finetune.tokenizer_parity".to_string(),
            tokenizer_parity
                .as_ref()
                .map(|p| format!("{}/{} lines identical to tokenizer.json", p.identical, p.total))
                .unwrap_or_else(|| "no tokenizer.json".into()),
        ),
        ("moat.finetune.created".to_string(), jiff::Timestamp::now().to_string()),
    ];
    let description = format!("{} fine-tuned by moat as a {}-label classifier", e.name, job.labels.len());
    let meta = GgufMeta {
        name: &format!("{}-classifier", e.name),
        description: &description,
        license: &e.license,
        labels: &job.labels,
        vocab: &vocab,
        extra: &extra,
    };
    gguf::write(&job.output, &params, &meta, job.outtype)?;
    Ok(Report {
        output: job.output.clone(),
        n_train: train_set.len(),
        n_heldout: held_set.len(),
        n_truncated,
        tokenizer_parity,
        outcome,
        heldout_accuracy,
        heldout_macro_f1,
        eval_accuracy,
        eval_macro_f1,
        n_eval: eval_set.len(),
        trainable_parameters,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Logits `[n, n_labels]` of `texts` from `params`, tokenised by llama.cpp from `gguf`, as the
/// training forward pass computes them (eval mode). For checking a written GGUF against training.
pub fn logits(
    params: &BertParams,
    gguf: &Path,
    texts: &[&str],
    max_tokens: usize,
    pad: u32,
) -> Result<Vec<Vec<f32>>, String> {
    let tok = tokens::GgufTokenizer::load(gguf)?;
    let ex: Vec<Example> = texts.iter().map(|t| Example { ids: tok.encode(t, max_tokens), label: 0 }).collect();
    let refs: Vec<&Example> = ex.iter().collect();
    train::predict(params, &refs, None, 0, pad).map_err(|e| e.to_string())
}
