//! The closing text that steering emits must be text llama.cpp's own JSON-schema grammar accepts,
//! token by token: checked with the default model's vocabulary and the real grammar sampler (no
//! decoding), for prefixes of the built-in library's valid example and test replies, every schema in
//! both languages.

use crate::common;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use moat::prompts::partial::PartialJson;
use moat::prompts::{validate, Library};
use serde_json::Value;

fn allows(grammar: &mut LlamaSampler, tok: LlamaToken) -> bool {
    let mut one = LlamaTokenDataArray::new(vec![LlamaTokenData::new(tok, 1.0, 0.0)], false);
    grammar.apply(&mut one);
    one.data[0].logit() > f32::NEG_INFINITY
}

/// Feeds `text` token by token; false at the first token the grammar refuses.
fn feed(model: &LlamaModel, grammar: &mut LlamaSampler, text: &str) -> bool {
    for tok in model.vocab().tokenize(text.as_bytes(), false, false) {
        if !allows(grammar, tok) {
            return false;
        }
        grammar.accept(tok);
    }
    true
}

/// Every reply the library itself gives as valid for a prompt's `lang` variant: example outputs and
/// mocked test replies that validate against that variant's schema.
fn valid_replies(lib: &Library) -> Vec<(String, Value, String)> {
    let mut out = Vec::new();
    for id in lib.ids() {
        let p = lib.prompt(&id).unwrap();
        for lang in p.languages() {
            let f = p.variant(lang).unwrap();
            let Some(schema_text) = f.output.schema.clone() else { continue };
            let schema: Value = serde_json::from_str(&schema_text).unwrap();
            let mut texts: Vec<String> = f.examples.iter().map(|e| e.output.trim().to_string()).collect();
            for t in &p.file.tests {
                if t.lang.as_deref().unwrap_or("en") == lang.code() {
                    texts.extend(t.mock_output.iter().flat_map(|m| m.to_vec()));
                }
            }
            for text in texts {
                let valid = serde_json::from_str::<Value>(&text).is_ok_and(|v| validate(&schema, &v).is_ok());
                if valid {
                    out.push((schema_text.clone(), schema.clone(), text));
                }
            }
        }
    }
    out
}

#[test]
fn closing_text_is_accepted_by_the_grammar_token_by_token() {
    // llama.cpp's backend may start only once a process: the one moat's engine starts, shared.
    let model =
        LlamaModel::load_from_file(moat::engine::backend(None), common::model_path(), &LlamaModelParams::default())
            .expect("the default model loads");
    let eos = model.vocab().eos();
    let lib = Library::builtin();
    let replies = valid_replies(&lib);
    let (mut usable, mut prefixes) = (0, 0);
    for (schema_text, schema, reply) in &replies {
        let gbnf = llama_cpp_2::json_schema_to_grammar(schema_text).unwrap();
        let fresh = LlamaSampler::grammar(&model, &gbnf, "root").unwrap();
        // Hand-written replies may order keys or space lines differently from the grammar; those say
        // nothing about completions.
        if !feed(&model, &mut fresh.clone(), reply) {
            continue;
        }
        usable += 1;
        let bounds: Vec<usize> = reply.char_indices().map(|(i, _)| i).chain([reply.len()]).collect();
        for &k in bounds.iter().step_by(3) {
            let prefix = &reply[..k];
            let mut grammar = fresh.clone();
            if !feed(&model, &mut grammar, prefix) {
                // A token boundary the grammar cannot take in this split (it can in the reply's own).
                continue;
            }
            let mut tracker = PartialJson::new(schema_text).unwrap();
            tracker.push_str(prefix);
            let completion = tracker.completion().unwrap_or_else(|| panic!("no completion after {prefix:?}"));
            assert!(feed(&model, &mut grammar, &completion), "grammar refuses {completion:?} after {prefix:?}");
            assert!(allows(&mut grammar, eos), "the grammar is not complete after {prefix:?} + {completion:?}");
            let whole: Value = serde_json::from_str(&format!("{prefix}{completion}")).unwrap();
            validate(schema, &whole).unwrap_or_else(|e| panic!("{e:?}: {prefix}{completion}"));
            prefixes += 1;
        }
    }
    println!("{usable} of {} library replies in grammar form, {prefixes} prefixes closed", replies.len());
    assert!(usable >= 10 && prefixes >= 1000, "{usable} replies, {prefixes} prefixes");
}
