//! Token counting and parallel structured generation on the real default model: counts match the
//! vocabulary's own tokenizer and come from one task; many structured requests decoded together
//! give the replies each gives alone; a cancel ends them all.

use crate::common;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use moat::chat::prompt_job::EngineGenerator;
use moat::config::SamplingConfig;
use moat::engine::Task;
use moat::prompts::Generator;

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
