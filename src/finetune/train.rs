//! The fine-tuning loop: shuffled mini-batches, AdamW, a held-out evaluation after every epoch,
//! early stopping on the held-out macro-F1, the best weights kept, per-epoch checkpoints for
//! `--resume`, and a stop flag (Ctrl+C) polled between steps.

use super::bert::{cross_entropy, BertParams, Dropout};
use super::optim::AdamW;
use crate::classify::metrics::Metrics;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// One labelled line, tokenised: `[CLS] … [SEP]` ids and the label index.
#[derive(Debug, Clone)]
pub struct Example {
    pub ids: Vec<u32>,
    pub label: usize,
}

/// Settings of one run; [`Settings::fingerprint`] ties a checkpoint to them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Settings {
    pub epochs: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub max_tokens: usize,
    /// Lower encoder layers (and the embeddings) kept frozen; their outputs are computed once.
    pub freeze: usize,
    pub seed: u64,
    /// Stop after this many epochs without a better held-out macro-F1 (0 = never).
    pub patience: usize,
    pub warmup: f64,
    pub weight_decay: f64,
    pub dropout: f32,
    pub threads: usize,
}

/// What happened in one epoch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub heldout_accuracy: Option<f64>,
    pub heldout_macro_f1: Option<f64>,
    /// Scores on the `--eval-file` set: reported for a learning curve, never used to pick the
    /// kept epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_macro_f1: Option<f64>,
    pub seconds: f64,
}

/// Progress as the loop goes: after each step and after each epoch's evaluation.
pub trait Observer {
    fn step(&mut self, epoch: usize, step_in_epoch: usize, steps_per_epoch: usize, loss: f64);
    fn epoch(&mut self, record: &EpochRecord, best: bool);
}

/// How the run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights are kept (the best held-out macro-F1, else the last).
    pub kept_epoch: usize,
    pub interrupted: bool,
    pub stopped_early: bool,
    pub resumed_from: Option<usize>,
    pub steps: usize,
}

/// The state a checkpoint directory holds besides tensors.
#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    fingerprint: String,
    epochs_done: usize,
    step: usize,
    best_epoch: Option<usize>,
    best_f1: Option<f64>,
    history: Vec<EpochRecord>,
}

fn batch_tensors(
    examples: &[&Example],
    cache: Option<&[Vec<f32>]>,
    idx: &[usize],
    hidden: usize,
    pad: u32,
) -> candle_core::Result<(Tensor, Vec<usize>, Option<Tensor>)> {
    let lengths: Vec<usize> = idx.iter().map(|&i| examples[i].ids.len()).collect();
    let t = lengths.iter().copied().max().unwrap_or(1);
    let mut ids = Vec::with_capacity(idx.len() * t);
    for &i in idx {
        let e = &examples[i].ids;
        ids.extend_from_slice(e);
        ids.extend(std::iter::repeat_n(pad, t - e.len()));
    }
    let ids = Tensor::from_vec(ids, (idx.len(), t), &Device::Cpu)?;
    let h = match cache {
        Some(c) => {
            let mut data = Vec::with_capacity(idx.len() * t * hidden);
            for &i in idx {
                data.extend_from_slice(&c[i]);
                data.extend(std::iter::repeat_n(0f32, (t - examples[i].ids.len()) * hidden));
            }
            Some(Tensor::from_vec(data, (idx.len(), t, hidden), &Device::Cpu)?)
        }
        None => None,
    };
    Ok((ids, lengths, h))
}

/// Runs `examples` through the frozen part (embeddings and layers `0..freeze`) once, in batches
/// sorted by length: row i is `[len_i × hidden]` floats.
fn frozen_outputs(
    p: &BertParams,
    examples: &[&Example],
    freeze: usize,
    pad: u32,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let h = p.config.hidden_size;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].ids.len());
    let mut out = vec![Vec::new(); examples.len()];
    for chunk in order.chunks(64) {
        let (ids, lengths, _) = batch_tensors(examples, None, chunk, h, pad)?;
        let mask = super::bert::key_mask(&lengths, ids.dim(1)?, &Device::Cpu)?;
        let mut x = p.embed(&ids)?.detach();
        for l in 0..freeze {
            x = p.layer(l, &x, &mask, None)?.detach();
        }
        for (row, &i) in chunk.iter().enumerate() {
            out[i] = x.get(row)?.narrow(0, 0, lengths[row])?.flatten_all()?.to_vec1::<f32>()?;
        }
    }
    Ok(out)
}

/// Predicted label indices for `examples` (eval mode: no dropout).
pub fn predict(
    p: &BertParams,
    examples: &[&Example],
    cache: Option<&[Vec<f32>]>,
    freeze: usize,
    pad: u32,
) -> candle_core::Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| examples[i].ids.len());
    let mut out = vec![Vec::new(); examples.len()];
    for chunk in order.chunks(64) {
        let (ids, lengths, h) = batch_tensors(examples, cache, chunk, p.config.hidden_size, pad)?;
        let logits = p.forward(&ids, &lengths, h.as_ref().map(|h| (h, freeze)), None)?.detach().to_vec2::<f32>()?;
        for (row, &i) in chunk.iter().enumerate() {
            out[i] = logits[row].clone();
        }
    }
    Ok(out)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap_or(0)
}

fn evaluate(
    p: &BertParams,
    held: &[&Example],
    cache: Option<&[Vec<f32>]>,
    freeze: usize,
    pad: u32,
    labels: &[String],
) -> Result<Option<Metrics>, String> {
    if held.is_empty() {
        return Ok(None);
    }
    let logits = predict(p, held, cache, freeze, pad).map_err(|e| e.to_string())?;
    let pairs: Vec<(usize, usize)> = held.iter().zip(&logits).map(|(e, l)| (e.label, argmax(l))).collect();
    Ok(Some(Metrics::compute(labels, &pairs, 0)))
}

fn snapshot(o: &AdamW) -> Vec<Vec<f32>> {
    o.slots.iter().map(|s| s.w.clone()).collect()
}

fn save_checkpoint(dir: &Path, o: &AdamW, best: &Option<Vec<Vec<f32>>>, state: &State) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut map: HashMap<String, Tensor> = HashMap::new();
    let t = |v: &[f32]| Tensor::from_slice(v, v.len(), &Device::Cpu).map_err(|e| e.to_string());
    for (i, s) in o.slots.iter().enumerate() {
        map.insert(format!("w.{}", s.name), t(&s.w)?);
        map.insert(format!("m.{}", s.name), t(&s.m)?);
        map.insert(format!("v.{}", s.name), t(&s.v)?);
        if let Some(b) = best {
            map.insert(format!("best.{}", s.name), t(&b[i])?);
        }
    }
    // tensors first, then the state that points at them, each atomically: a crash leaves the
    // previous epoch's pair or a new tensor file the old state does not trust (fingerprint + epoch)
    let tmp = tempfile::Builder::new().prefix(".tmp.").tempfile_in(dir).map_err(|e| e.to_string())?;
    candle_core::safetensors::save(&map, tmp.path()).map_err(|e| format!("cannot save the checkpoint: {e}"))?;
    tmp.persist(dir.join(format!("epoch-{}.safetensors", state.epochs_done))).map_err(|e| e.error.to_string())?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    crate::atomic_write::write_atomic(&dir.join("state.json"), &json).map_err(|e| e.to_string())?;
    if state.epochs_done > 1 {
        let _ = std::fs::remove_file(dir.join(format!("epoch-{}.safetensors", state.epochs_done - 1)));
    }
    Ok(())
}

/// Each trainable tensor's values, in the optimiser's slot order.
type Weights = Vec<Vec<f32>>;

fn load_checkpoint(dir: &Path, fingerprint: &str, o: &mut AdamW) -> Result<(State, Option<Weights>), String> {
    let path = dir.join("state.json");
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot resume: {}: {e}", path.display()))?;
    let state: State =
        serde_json::from_slice(&bytes).map_err(|e| format!("cannot resume: {} is damaged: {e}", path.display()))?;
    if state.fingerprint != fingerprint {
        return Err(format!(
            "cannot resume from {}: it was made with other data, encoder or settings; use a new --checkpoint directory",
            dir.display()
        ));
    }
    let file = dir.join(format!("epoch-{}.safetensors", state.epochs_done));
    let map = candle_core::safetensors::load(&file, &Device::Cpu)
        .map_err(|e| format!("cannot resume: {}: {e}", file.display()))?;
    let get = |k: String, n: usize| -> Result<Vec<f32>, String> {
        let v = map
            .get(&k)
            .ok_or_else(|| format!("cannot resume: {} has no {k}", file.display()))?
            .to_vec1::<f32>()
            .map_err(|e| e.to_string())?;
        if v.len() != n {
            return Err(format!("cannot resume: {k} in {} has the wrong size", file.display()));
        }
        Ok(v)
    };
    let mut best = Vec::new();
    for s in &mut o.slots {
        let n = s.w.len();
        s.w = get(format!("w.{}", s.name), n)?;
        s.m = get(format!("m.{}", s.name), n)?;
        s.v = get(format!("v.{}", s.name), n)?;
        if state.best_epoch.is_some() {
            best.push(get(format!("best.{}", s.name), n)?);
        }
    }
    o.step = state.step;
    o.sync_vars()?;
    Ok((state, state_best(best)))
}

fn state_best(b: Weights) -> Option<Weights> {
    (!b.is_empty()).then_some(b)
}

/// One epoch's batches (indices into `train`): a seeded shuffle, then within each window of 50
/// batches the lines are sorted by length and cut into batches, whose order is shuffled again.
/// Batches of similar lengths waste less on padding (every line is padded to its batch's longest)
/// while each batch still draws from a random tenth or so of the data.
pub fn epoch_batches(train: &[Example], bs: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    rng.shuffle(&mut order);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks_mut(bs * 50) {
        window.sort_by_key(|&i| train[i].ids.len());
        batches.extend(window.chunks(bs).map(|c| c.to_vec()));
    }
    rng.shuffle(&mut batches);
    batches
}

/// Whether the tensor `name` (GGUF naming) trains when the embeddings and layers `0..freeze` are
/// frozen: the head always, a layer `blk.i.*` when `i ≥ freeze`, everything when `freeze` is 0.
pub fn is_trainable(name: &str, freeze: usize) -> bool {
    match name.strip_prefix("blk.") {
        Some(rest) => rest.split('.').next().and_then(|i| i.parse::<usize>().ok()).is_some_and(|i| i >= freeze),
        None => name.starts_with("cls") || freeze == 0,
    }
}

/// Where checkpoints go and whether to continue from one.
pub struct CheckpointPlan {
    pub dir: Option<PathBuf>,
    pub resume: bool,
    /// Identifies data + encoder + settings; a checkpoint made with others is refused.
    pub fingerprint: String,
}

/// Fine-tunes `p` on `train`, evaluating on `held` (and scoring `eval`, for the report only)
/// after every epoch. On return `p` holds the kept weights: the best held-out macro-F1's (or the
/// last epoch's without a held-out set).
///
/// Errors: a tensor error, a non-finite loss or gradient, or a checkpoint that cannot be read
/// or written; one line each.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    p: &BertParams,
    train: &[Example],
    held: &[Example],
    eval: &[Example],
    labels: &[String],
    s: &Settings,
    pad: u32,
    plan: &CheckpointPlan,
    stop: &AtomicBool,
    obs: &mut dyn Observer,
) -> Result<Outcome, String> {
    let freeze = s.freeze.min(p.config.num_hidden_layers);
    let trainable: Vec<(String, candle_core::Var)> =
        p.vars.iter().filter(|(n, _)| is_trainable(n, freeze)).cloned().collect();
    let train_refs: Vec<&Example> = train.iter().collect();
    let held_refs: Vec<&Example> = held.iter().collect();
    let eval_refs: Vec<&Example> = eval.iter().collect();
    let tensor_err = |e: candle_core::Error| e.to_string();
    let cache = |set: &[&Example]| -> Result<Option<Vec<Vec<f32>>>, String> {
        (freeze > 0).then(|| frozen_outputs(p, set, freeze, pad).map_err(tensor_err)).transpose()
    };
    let (train_cache, held_cache, eval_cache) = (cache(&train_refs)?, cache(&held_refs)?, cache(&eval_refs)?);
    let bs = s.batch_size.max(1);
    let steps_per_epoch = epoch_batches(train, bs, 0).len();
    let total = steps_per_epoch * s.epochs;
    let mut opt = AdamW::new(&trainable, s.lr, s.weight_decay, (total as f64 * s.warmup).round() as usize, total);
    opt.threads = s.threads;
    let mut best: Option<Vec<Vec<f32>>> = None;
    let mut best_f1: Option<f64> = None;
    let mut best_epoch: Option<usize> = None;
    let mut history = Vec::new();
    let mut start_epoch = 0;
    let mut resumed_from = None;
    if plan.resume {
        let dir = plan.dir.as_deref().ok_or("--resume needs --checkpoint DIR")?;
        let (state, b) = load_checkpoint(dir, &plan.fingerprint, &mut opt)?;
        start_epoch = state.epochs_done;
        resumed_from = Some(state.epochs_done);
        best = b;
        best_f1 = state.best_f1;
        best_epoch = state.best_epoch;
        history = state.history;
    }
    let mut interrupted = false;
    let mut stopped_early = false;
    let mut since_best = history.len().saturating_sub(best_epoch.unwrap_or(0));
    for epoch in start_epoch..s.epochs {
        if since_best >= s.patience && s.patience > 0 && best_epoch.is_some() {
            stopped_early = true;
            break;
        }
        let started = std::time::Instant::now();
        let batches = epoch_batches(train, bs, s.seed ^ 0x5851_F42D_4C95_7F2D_u64.wrapping_mul(epoch as u64 + 1));
        let mut loss_sum = 0f64;
        let mut n_steps = 0usize;
        for (k, idx) in batches.iter().enumerate() {
            if stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            let (ids, lengths, h) = batch_tensors(&train_refs, train_cache.as_deref(), idx, p.config.hidden_size, pad)
                .map_err(tensor_err)?;
            let targets = Tensor::from_vec(
                idx.iter().map(|&i| train[i].label as u32).collect::<Vec<_>>(),
                idx.len(),
                &Device::Cpu,
            )
            .map_err(tensor_err)?;
            let mut drop = Dropout {
                p: s.dropout,
                rng: crate::rng::Rng::new(s.seed ^ (opt.step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            };
            let logits =
                p.forward(&ids, &lengths, h.as_ref().map(|h| (h, freeze)), Some(&mut drop)).map_err(tensor_err)?;
            let loss = cross_entropy(&logits, &targets).map_err(tensor_err)?;
            let l = loss.to_scalar::<f32>().map_err(tensor_err)? as f64;
            if !l.is_finite() {
                return Err(format!("the loss became {l} at epoch {} step {}; try a lower --lr", epoch + 1, k + 1));
            }
            let grads = loss.backward().map_err(tensor_err)?;
            opt.update(&grads)?;
            loss_sum += l;
            n_steps += 1;
            obs.step(epoch, k + 1, steps_per_epoch, loss_sum / n_steps as f64);
        }
        if interrupted && n_steps == 0 {
            break;
        }
        let m = evaluate(p, &held_refs, held_cache.as_deref(), freeze, pad, labels)?;
        let ev = evaluate(p, &eval_refs, eval_cache.as_deref(), freeze, pad, labels)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / n_steps.max(1) as f64,
            heldout_accuracy: m.as_ref().map(|m| m.accuracy),
            heldout_macro_f1: m.as_ref().map(|m| m.macro_f1),
            eval_accuracy: ev.as_ref().map(|m| m.accuracy),
            eval_macro_f1: ev.as_ref().map(|m| m.macro_f1),
            seconds: started.elapsed().as_secs_f64(),
        };
        let f1 = record.heldout_macro_f1;
        let is_best = f1.is_some_and(|f| best_f1.is_none_or(|b| f > b));
        if is_best {
            best = Some(snapshot(&opt));
            best_f1 = f1;
            best_epoch = Some(epoch + 1);
            since_best = 0;
        } else {
            since_best += 1;
        }
        obs.epoch(&record, is_best);
        history.push(record);
        if interrupted {
            break;
        }
        if let Some(dir) = &plan.dir {
            let state = State {
                fingerprint: plan.fingerprint.clone(),
                epochs_done: epoch + 1,
                step: opt.step,
                best_epoch,
                best_f1,
                history: history.clone(),
            };
            save_checkpoint(dir, &opt, &best, &state)?;
        }
    }
    let kept_epoch = match &best {
        Some(b) => {
            for (slot, w) in opt.slots.iter_mut().zip(b) {
                slot.w.clone_from(w);
            }
            opt.sync_vars()?;
            best_epoch.unwrap_or(history.len())
        }
        None => history.len(),
    };
    Ok(Outcome { history, kept_epoch, interrupted, stopped_early, resumed_from, steps: opt.step })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finetune::bert::toy::toy;

    struct Quiet {
        stop_after: Option<usize>,
        stop: std::sync::Arc<AtomicBool>,
    }
    impl Observer for Quiet {
        fn step(&mut self, _: usize, _: usize, _: usize, _: f64) {}
        fn epoch(&mut self, r: &EpochRecord, _: bool) {
            if self.stop_after == Some(r.epoch) {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Label 0 with token 5 in the line, label 1 with token 6, label 2 with neither.
    fn data(n: usize, seed: u64) -> Vec<Example> {
        let mut rng = crate::rng::Rng::new(seed);
        (0..n)
            .map(|i| {
                let label = i % 3;
                let len = 3 + rng.below(6) as usize;
                let mut ids = vec![1u32];
                for _ in 0..len {
                    ids.push(7 + rng.below(12) as u32);
                }
                if label < 2 {
                    let at = 1 + rng.below(len as u64) as usize;
                    ids[at] = 5 + label as u32;
                }
                ids.push(2);
                Example { ids, label }
            })
            .collect()
    }

    fn settings(epochs: usize, freeze: usize) -> Settings {
        Settings {
            epochs,
            lr: 3e-2,
            batch_size: 8,
            max_tokens: 16,
            freeze,
            seed: 9,
            patience: 0,
            warmup: 0.1,
            weight_decay: 0.01,
            dropout: 0.1,
            threads: 1,
        }
    }

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn weights(p: &BertParams) -> Vec<Vec<f32>> {
        p.vars.iter().map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    fn run(epochs: usize, freeze: usize, plan: &CheckpointPlan, stop_after: Option<usize>) -> (BertParams, Outcome) {
        let p = toy(21);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let mut obs = Quiet { stop_after, stop: stop.clone() };
        let out =
            fit(&p, &data(120, 1), &data(45, 2), &[], &labels(), &settings(epochs, freeze), 0, plan, &stop, &mut obs)
                .unwrap();
        (p, out)
    }

    fn no_plan() -> CheckpointPlan {
        CheckpointPlan { dir: None, resume: false, fingerprint: "x".into() }
    }

    #[test]
    fn training_learns_a_learnable_rule_and_keeps_the_best_epoch() {
        let p = toy(21);
        let stop = AtomicBool::new(false);
        let mut obs = Quiet { stop_after: None, stop: std::sync::Arc::new(AtomicBool::new(false)) };
        let s = Settings { lr: 1e-2, dropout: 0.0, ..settings(30, 0) };
        let out = fit(&p, &data(120, 1), &data(45, 2), &[], &labels(), &s, 0, &no_plan(), &stop, &mut obs).unwrap();
        let first = out.history[0].heldout_macro_f1.unwrap();
        let best = out.history.iter().filter_map(|r| r.heldout_macro_f1).fold(0.0, f64::max);
        // a hidden size of 8 learns part of the rule; what matters is that it learns
        assert!(best > first + 0.2, "{:?}", out.history);
        assert!(out.history.last().unwrap().train_loss < 0.75 * out.history[0].train_loss, "{:?}", out.history);
        let kept = out.history.iter().find(|r| r.epoch == out.kept_epoch).unwrap();
        assert_eq!(kept.heldout_macro_f1.unwrap(), best);
    }

    #[test]
    fn epoch_batches_cover_every_line_once_in_length_sorted_batches() {
        let train = data(2000, 4);
        let a = epoch_batches(&train, 16, 5);
        assert_eq!(a, epoch_batches(&train, 16, 5));
        assert_ne!(a, epoch_batches(&train, 16, 6));
        let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..2000).collect::<Vec<_>>());
        assert!(a.iter().all(|b| !b.is_empty() && b.len() <= 16));
        // padding: tokens padded in length-sorted batches vs plain shuffled ones
        let pad = |bs: &[Vec<usize>]| -> usize {
            bs.iter()
                .map(|b| {
                    b.iter()
                        .map(|&i| b.iter().map(|&j| train[j].ids.len()).max().unwrap() - train[i].ids.len())
                        .sum::<usize>()
                })
                .sum()
        };
        let mut order: Vec<usize> = (0..2000).collect();
        crate::rng::Rng::new(5).shuffle(&mut order);
        let plain: Vec<Vec<usize>> = order.chunks(16).map(|c| c.to_vec()).collect();
        assert!(pad(&a) * 4 < pad(&plain), "{} vs {}", pad(&a), pad(&plain));
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let (a, _) = run(2, 0, &no_plan(), None);
        let (b, _) = run(2, 0, &no_plan(), None);
        assert_eq!(weights(&a), weights(&b));
    }

    #[test]
    fn frozen_layers_stay_put_and_the_rest_learns() {
        let before = weights(&toy(21));
        let (p, out) = run(3, 1, &no_plan(), None);
        let after = weights(&p);
        for (i, (name, _)) in p.vars.iter().enumerate() {
            let frozen = !name.starts_with("cls") && !name.starts_with("blk.1.");
            assert_eq!(before[i] == after[i], frozen, "{name}");
        }
        assert!(out.steps > 0);
    }

    #[test]
    fn a_run_stopped_after_an_epoch_resumes_to_the_same_weights() {
        let dir = tempfile::tempdir().unwrap();
        let plan = CheckpointPlan { dir: Some(dir.path().to_path_buf()), resume: false, fingerprint: "f".into() };
        let (straight, _) = run(3, 0, &no_plan(), None);
        let (_, first) = run(3, 0, &plan, Some(1));
        assert!(first.interrupted);
        assert_eq!(first.history.len(), 1);
        let resume = CheckpointPlan { resume: true, ..plan };
        let (resumed, out) = run(3, 0, &resume, None);
        assert_eq!(out.resumed_from, Some(1));
        assert_eq!(out.history.len(), 3);
        assert_eq!(weights(&resumed), weights(&straight));
        // other settings or data: refused
        let other = CheckpointPlan { fingerprint: "g".into(), ..resume };
        let p = toy(21);
        let stop = AtomicBool::new(false);
        let mut obs = Quiet { stop_after: None, stop: std::sync::Arc::new(AtomicBool::new(false)) };
        let err = fit(&p, &data(120, 1), &data(45, 2), &[], &labels(), &settings(3, 0), 0, &other, &stop, &mut obs)
            .err()
            .unwrap();
        assert!(err.contains("other data"), "{err}");
    }

    #[test]
    fn an_eval_file_is_scored_every_epoch_and_changes_nothing_else() {
        for freeze in [0, 1] {
            let (plain, a) = run(3, freeze, &no_plan(), None);
            let p = toy(21);
            let stop = AtomicBool::new(false);
            let mut obs = Quiet { stop_after: None, stop: std::sync::Arc::new(AtomicBool::new(false)) };
            let eval = data(30, 3);
            let b = fit(
                &p,
                &data(120, 1),
                &data(45, 2),
                &eval,
                &labels(),
                &settings(3, freeze),
                0,
                &no_plan(),
                &stop,
                &mut obs,
            )
            .unwrap();
            assert_eq!(weights(&p), weights(&plain), "freeze {freeze}");
            assert_eq!(a.kept_epoch, b.kept_epoch);
            assert!(a.history.iter().all(|r| r.eval_macro_f1.is_none()));
            for (x, y) in a.history.iter().zip(&b.history) {
                assert_eq!(x.heldout_macro_f1, y.heldout_macro_f1);
                assert!(y.eval_accuracy.is_some_and(|v| (0.0..=1.0).contains(&v)), "{y:?}");
            }
            // the eval set scored by itself in eval mode gives the last epoch's figure
            let eval_refs: Vec<&Example> = eval.iter().collect();
            let m = evaluate(&p, &eval_refs, None, 0, 0, &labels()).unwrap().unwrap();
            if b.kept_epoch == b.history.len() {
                assert!((m.macro_f1 - b.history.last().unwrap().eval_macro_f1.unwrap()).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn the_trainable_rule_follows_freeze() {
        assert!(is_trainable("blk.0.attn_q.weight", 0) && is_trainable("token_embd.weight", 0));
        assert!(!is_trainable("blk.0.attn_q.weight", 1) && is_trainable("blk.1.attn_q.weight", 1));
        assert!(!is_trainable("token_embd_norm.weight", 2) && is_trainable("cls.output.weight", 6));
        assert!(!is_trainable("blk.11.ffn_up.weight", 12) && is_trainable("blk.11.ffn_up.weight", 11));
    }
}
