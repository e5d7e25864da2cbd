//! Token counting and parallel structured generation on the real default model: counts match the
//! vocabulary's own tokenizer and come from one task; many structured requests decoded together
//! give the replies each gives alone; a cancel ends them all.

use crate::common;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use moat::chat::prompt_job::EngineGenerator;
use moat::chat::Message;
use moat::config::SamplingConfig;
use moat::engine::{Engine, EngineError, Generated, Sink, StopReason, StructuredRequest, Task};
use moat::prompts::{validate, GenRequest, Generator, Params, Reply};
use serde_json::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Texts of many shapes: ASCII, CJK, emoji, special-token text a user might paste, whitespace.
fn texts() -> Vec<String> {
    let shapes = [
        "Acme sells tools to builders.",
        "長い文書を要約してください。",
        "emoji 🦀🦀 and accents: café, naïve",
        "<|im_start|>user\nnot a control token<|im_end|>",
        "   leading and trailing spaces   ",
        "",
        "x",
    ];
    let mut texts: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
    texts.extend((texts.len()..2000).map(|i| format!("{} {i}", shapes[i % shapes.len()])));
    texts
}

#[test]
fn counts_match_the_vocabulary_and_two_thousand_texts_are_one_task() {
    let engine = common::engine(1024);
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut gen = EngineGenerator::new(engine.submitter(), SamplingConfig::default());
    let before = engine.submit(Task::Tokenize { texts: vec![] }).id();
    let counts = gen.count_tokens(&refs).expect("the local engine counts");
    let after = engine.submit(Task::Tokenize { texts: vec![] }).id();
    assert_eq!(after, before + 2, "2,000 texts were counted in one task");
    assert_eq!(counts.len(), texts.len());

    // The same counts from the model's vocabulary, loaded apart (no BOS, special text as text).
    let backend = moat::engine::backend(None);
    let model =
        LlamaModel::load_from_file(backend, common::model_path(), &LlamaModelParams::default().with_vocab_only(true))
            .expect("the vocabulary loads");
    for (text, n) in texts.iter().zip(&counts) {
        assert_eq!(*n, model.vocab().tokenize(text.as_bytes(), false, false).len(), "{text:?}");
    }
    // Special-token text in user input is text: more than the one control token it looks like.
    assert!(counts[3] > 4, "{}", counts[3]);
    assert_eq!(counts[5], model.vocab().tokenize(b"", false, false).len());
    // One text alone counts the same as inside the batch.
    assert_eq!(gen.count_tokens(&[refs[2]]), Some(vec![counts[2]]));
}

const SCHEMA: &str = r#"{"type":"object","properties":{"summary":{"type":"string"},"topics":{"type":"array","items":{"type":"string"}}},"required":["summary","topics"]}"#;

/// Six map-step requests over different chunks, two of them with a budget so small that steering
/// has to close the JSON.
fn requests() -> Vec<GenRequest> {
    let chunks = [
        "Acme sells hammers and saws to builders in Ohio. Sales rose 12% last year.",
        "The river flooded the town twice in March; the council voted to raise the levee.",
        "Our new phone has a larger battery, a brighter screen and costs less than the old one.",
        "Bees pollinate most fruit crops. Farmers rent hives each spring.",
        "The library will close on Mondays from June to save money on heating.",
        "A chess club meets every Thursday at the school; beginners are welcome.",
    ];
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| GenRequest {
            system: Some("You summarise text as JSON.".into()),
            user: format!("Summarise this text and list its topics.\n\n{chunk}"),
            params: Params {
                temperature: Some(0.0),
                seed: Some(7),
                max_tokens: Some(if i % 3 == 2 { 24 } else { 120 }),
                ..Params::default()
            },
            json_schema: Some(SCHEMA.into()),
        })
        .collect()
}

fn parallel_engine(n_parallel: u32) -> Engine {
    let mut opts = common::options(2048);
    opts.n_parallel = n_parallel;
    Engine::start(opts, Arc::new(AtomicBool::new(false)), |_| {}).expect("the model loads").0
}

#[test]
fn six_structured_requests_three_at_a_time_give_the_replies_each_gives_alone() {
    let engine = parallel_engine(3);
    let mut gen = EngineGenerator::new(engine.submitter(), SamplingConfig::default());
    let reqs = requests();
    let alone: Vec<Reply> = reqs.iter().map(|r| gen.generate(r).expect("a reply")).collect();
    let mut order = Vec::new();
    let before = engine.submit(Task::Tokenize { texts: vec![] }).id();
    let together = gen.generate_many(&reqs, &mut |i, r| order.push((i, r.is_ok())));
    let after = engine.submit(Task::Tokenize { texts: vec![] }).id();
    assert_eq!(after, before + 2, "the six requests ran as one task");
    assert_eq!(order.len(), reqs.len(), "done is called once per request: {order:?}");
    let mut seen: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
    seen.sort();
    assert_eq!(seen, (0..reqs.len()).collect::<Vec<_>>());
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        let t = t.as_ref().expect("a reply");
        assert_eq!(t.text, a.text, "request {i}: the same text as alone");
        assert_eq!(t.cut, a.cut, "request {i}");
        let v: Value = serde_json::from_str(&t.text).unwrap_or_else(|e| panic!("request {i}: {e}: {}", t.text));
        validate(&schema, &v).unwrap_or_else(|e| panic!("request {i}: {e:?}: {}", t.text));
    }
    // The small budgets were reached and steering closed the JSON inside them.
    assert!(together.iter().any(|t| t.as_ref().unwrap().cut.is_some()), "{together:?}");
}

#[test]
fn a_cancel_ends_every_request_at_once() {
    let engine = parallel_engine(3);
    let sampling = SamplingConfig { temperature: 0.0, seed: 7, max_tokens: 2000, ..SamplingConfig::default() };
    let requests: Vec<StructuredRequest> = (0..6)
        .map(|i| StructuredRequest {
            messages: vec![Message::user(format!("Count from {i} to 5000, one number per line."))],
            sampling: sampling.clone(),
            json_schema: None,
        })
        .collect();
    let ticket = engine.submit(Task::StructuredMany { requests });
    std::thread::sleep(Duration::from_millis(500));
    ticket.cancel();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        struct Ends(Vec<(usize, StopReason)>);
        impl Sink for Ends {
            fn generated(&mut self, index: usize, result: Result<Generated, EngineError>) {
                self.0.push((index, result.expect("no request fails").reason));
            }
        }
        let mut ends = Ends(Vec::new());
        let end = ticket.wait(&mut ends);
        let _ = tx.send((end.map(|f| f.reason), ends.0));
    });
    let (end, mut ends) = rx.recv_timeout(Duration::from_secs(30)).expect("the task ends soon after the cancel");
    assert_eq!(end.unwrap(), StopReason::Cancelled);
    ends.sort_by_key(|e| e.0);
    assert_eq!(ends.iter().map(|e| e.0).collect::<Vec<_>>(), (0..6).collect::<Vec<_>>(), "{ends:?}");
    assert!(ends.iter().any(|e| e.1 == StopReason::Cancelled), "{ends:?}");
    // The engine is free again at once.
    let counts = engine.submit(Task::Tokenize { texts: vec!["hello".into()] }).counts().unwrap();
    assert_eq!(counts.len(), 1);
}

/// Eight map-step requests of over 1,000 prompt tokens each (`max_tokens` 200): one after another
/// (`Task::Structured` each) and as one `StructuredMany` with `n_parallel` 4, three runs each, on
/// one generation and one prompt thread. Prints wall times and their medians.
/// `cargo test --release --test it engine_parallel::bench -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: 10 minutes or more on 2 cores; prints sequential vs parallel wall times"]
fn bench_eight_structured_requests_sequential_vs_four_parallel() {
    let engine = parallel_engine(4);
    let mut gen = EngineGenerator::new(engine.submitter(), SamplingConfig::default());
    let words = ["river", "budget", "council", "harvest", "engine", "library", "storm", "market", "school", "bridge"];
    let reqs: Vec<GenRequest> = (0..8)
        .map(|k| {
            let text: Vec<String> = (0..150)
                .map(|i| format!("The {} report {} noted item {i}.", words[(i + k) % 10], words[(i * 7 + k) % 10]))
                .collect();
            GenRequest {
                system: Some("You summarise text as JSON.".into()),
                user: format!("Summarise this text and list its topics.\n\n{}", text.join(" ")),
                params: Params { temperature: Some(0.0), seed: Some(7), max_tokens: Some(200), ..Params::default() },
                json_schema: Some(SCHEMA.into()),
            }
        })
        .collect();
    let prompt_tokens = gen.count_tokens(&[reqs[0].user.as_str()]).unwrap()[0];
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut seq, mut par) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let t = std::time::Instant::now();
        let a: Vec<Reply> = reqs.iter().map(|r| gen.generate(r).unwrap()).collect();
        seq.push(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        let b: Vec<Reply> = gen.generate_many(&reqs, &mut |_, _| {}).into_iter().map(Result::unwrap).collect();
        par.push(t.elapsed().as_secs_f64());
        let same = a.iter().zip(&b).filter(|(x, y)| x.text == y.text).count();
        let chars: usize = b.iter().map(|r| r.text.len()).sum();
        println!(
            "run {run}: sequential {:.1} s, parallel {:.1} s; {same}/8 replies identical; {chars} reply chars",
            seq[run], par[run]
        );
    }
    println!(
        "user message {prompt_tokens} tokens each; median sequential {:.1} s, parallel (n_parallel 4) {:.1} s",
        median(seq),
        median(par)
    );
}
