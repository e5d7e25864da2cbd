//! `moat classify train --encoder`: fine-tuning end to end on a tiny checkpoint, in seconds. The
//! checkpoint is made here from the tiny BERT fixture's weights, laid out as a Hugging Face BERT
//! directory (config.json, model.safetensors, vocab.txt, tokenizer.json), so the whole path runs:
//! reading the checkpoint, tokenising with llama.cpp (checked against `tokenizers`), training,
//! writing the GGUF, and classifying with it through llama.cpp.

use crate::common::{assert_fails, fixture, jsonl, moat, stderr, stdout, Sandbox, TINY_BERT};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const EXPECTED: &str = include_str!(fixture!("classify/native/expected.json"));

fn hf_name(gguf: &str) -> String {
    let (base, last) = gguf.rsplit_once('.').unwrap();
    let fixed = match base {
        "token_embd" => "embeddings.word_embeddings".to_string(),
        "token_types" => "embeddings.token_type_embeddings".to_string(),
        "position_embd" => "embeddings.position_embeddings".to_string(),
        "token_embd_norm" => "embeddings.LayerNorm".to_string(),
        "cls" => "pooler.dense".to_string(),
        "cls.output" => "classifier".to_string(),
        _ => {
            let rest = base.strip_prefix("blk.").unwrap();
            let (i, t) = rest.split_once('.').unwrap();
            let part = match t {
                "attn_q" => "attention.self.query",
                "attn_k" => "attention.self.key",
                "attn_v" => "attention.self.value",
                "attn_output" => "attention.output.dense",
                "attn_output_norm" => "attention.output.LayerNorm",
                "ffn_up" => "intermediate.dense",
                "ffn_down" => "output.dense",
                "layer_output_norm" => "output.LayerNorm",
                other => panic!("{other}"),
            };
            format!("encoder.layer.{i}.{part}")
        }
    };
    format!("bert.{fixed}.{last}")
}

/// The tiny fixture as a Hugging Face BERT checkpoint directory.
fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let ck = dir.join("tiny-encoder");
    std::fs::create_dir_all(&ck).unwrap();
    let mut f = std::fs::File::open(TINY_BERT).unwrap();
    let content = Content::read(&mut f).unwrap();
    let md = &content.metadata;
    let u = |k: &str| md[k].to_u32().unwrap();
    let tokens: Vec<String> = match &md["tokenizer.ggml.tokens"] {
        Value::Array(a) => a
            .iter()
            .map(|v| {
                let t = v.to_string().unwrap();
                if t.starts_with('[') && t.ends_with(']') {
                    t.clone()
                } else if let Some(w) = t.strip_prefix('\u{2581}') {
                    w.to_string()
                } else {
                    format!("##{t}")
                }
            })
            .collect(),
        _ => panic!("no tokens"),
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in content.tensor_infos.keys() {
        let t = content.tensor(&mut f, name, &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
        tensors.insert(hf_name(name), t);
    }
    candle_core::safetensors::save(&tensors, ck.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "bert",
        "vocab_size": tokens.len(),
        "hidden_size": u("bert.embedding_length"),
        "num_hidden_layers": u("bert.block_count"),
        "num_attention_heads": u("bert.attention.head_count"),
        "intermediate_size": u("bert.feed_forward_length"),
        "max_position_embeddings": u("bert.context_length"),
        "type_vocab_size": u("tokenizer.ggml.token_type_count"),
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu"
    });
    std::fs::write(ck.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    std::fs::write(ck.join("vocab.txt"), tokens.join("\n") + "\n").unwrap();
    let vocab: serde_json::Map<String, serde_json::Value> =
        tokens.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect();
    let id = |s: &str| tokens.iter().position(|t| t == s).unwrap();
    let special = |s: &str| serde_json::json!({"id": s, "ids": [id(s)], "tokens": [s]});
    let added: Vec<serde_json::Value> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| {
            serde_json::json!({"id": id(s), "content": s, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": {"direction": "Right", "max_length": 8, "strategy": "LongestFirst", "stride": 0},
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": special("[CLS]"), "[SEP]": special("[SEP]")}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(ck.join("tokenizer.json"), serde_json::to_vec(&tokenizer).unwrap()).unwrap();
    ck
}

/// Three market-style classes from words the tiny vocab spells (any lowercase word tokenises).
fn training_tsv() -> String {
    let up = ["shares jump on strong earnings", "stock rallies after upgrade", "profit beats forecast, shares rise"];
    let down = ["shares plunge after weak guidance", "stock falls on lawsuit", "loss widens, shares drop"];
    let flat = ["company to hold annual meeting", "ceo speaks at conference today", "firm files quarterly report"];
    let tails = ["", " today", " in early trading", " says analyst", " again", " this week"];
    let mut s = String::from("label\ttext\n");
    for tail in tails {
        for (label, set) in [("bullish", &up), ("bearish", &down), ("neutral", &flat)] {
            for line in set.iter() {
                s.push_str(&format!("{label}\t{line}{tail}\n"));
            }
        }
    }
    s
}

fn train_cmd(s: &Sandbox, ck: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "classify",
        "train",
        "--encoder",
        ck.to_str().unwrap(),
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--epochs",
        "6",
        "--lr",
        "2e-3",
        "--train-batch",
        "8",
        "--threads",
        "1",
        "--outtype",
        "f32",
        "--dropout",
        "0",
    ];
    args.extend_from_slice(extra);
    moat(s, &args, b"")
}

fn sha256(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn train_write_and_classify_with_llama_cpp_matching_the_training_forward_pass() {
    let s = Sandbox::new();
    let ck = tiny_checkpoint(&s.path(""));
    let data = s.path("market.tsv");
    std::fs::write(&data, training_tsv()).unwrap();
    let out = s.path("market.gguf");
    // a separate file scored after every epoch (a learning curve); it never picks the epoch
    let eval = s.path("unseen.tsv");
    std::fs::write(
        &eval,
        "label\ttext\nbullish\tprofit beats forecast\nbearish\tloss widens\nneutral\tannual meeting\n",
    )
    .unwrap();
    let o = train_cmd(&s, &ck, &data, &out, &["--holdout", "0.2", "--eval-file", eval.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches(", eval accuracy ").count(), 6, "{}", stderr(&o));
    let said = stdout(&o);
    assert!(said.contains("unseen.tsv (3 lines), the kept epoch scores accuracy"), "{said}");
    // tokenizer.json's own truncation (8 tokens) is switched off for the check
    assert!(said.contains("agree on 54/54 lines"), "{said}");
    assert!(said.contains("saved"), "{said}");
    assert!(stderr(&o).contains("epoch 1/6"), "{}", stderr(&o));

    // labels, provenance
    let mut f = std::fs::File::open(&out).unwrap();
    let content = Content::read(&mut f).unwrap();
    let md = &content.metadata;
    let labels: Vec<String> = match &md["bert.classifier.output_labels"] {
        Value::Array(a) => a.iter().map(|v| v.to_string().unwrap().clone()).collect(),
        _ => panic!(),
    };
    assert_eq!(labels, ["bullish", "bearish", "neutral"]);
    assert_eq!(md["moat.finetune.base_sha256"].to_string().unwrap(), &sha256(&ck.join("model.safetensors")));
    let data_md = md["moat.finetune.data"].to_string().unwrap();
    assert!(data_md.contains("market.tsv") && data_md.contains(&sha256(&data)), "{data_md}");
    let eval_md = md["moat.finetune.eval_data"].to_string().unwrap();
    assert!(eval_md.contains("3 lines of unseen.tsv") && eval_md.contains(&sha256(&eval)), "{eval_md}");
    assert!(md["moat.finetune.history"].to_string().unwrap().contains("eval_macro_f1"));
    assert!(
        md["moat.finetune.heldout_macro_f1"].to_string().unwrap().starts_with("0.")
            || md["moat.finetune.heldout_macro_f1"].to_string().unwrap() == "1.0000"
    );

    // llama.cpp's probabilities equal the training graph's on the written weights
    let lines = [
        "stock rallies after upgrade today",
        "shares plunge after weak guidance",
        "company to hold annual meeting",
        "what a day",
    ];
    let o = moat(&s, &["-m", out.to_str().unwrap(), "classify", "--format", "jsonl"], lines.join("\n") + "\n");
    let rows = jsonl(&o);
    let (params, _) = moat::finetune::gguf::read(&out).unwrap();
    let logits = moat::finetune::logits(&params, &out, &lines, 128, 0).unwrap();
    for ((row, l), line) in rows.iter().zip(&logits).zip(lines) {
        let max = l.iter().cloned().fold(f32::MIN, f32::max);
        let z: f32 = l.iter().map(|x| (x - max).exp()).sum();
        for (i, name) in labels.iter().enumerate() {
            let want = ((l[i] - max).exp() / z) as f64;
            let got = row["probs"][name].as_f64().unwrap();
            assert!((got - want).abs() < 1e-3, "{line}: p({name}) llama.cpp {got}, training graph {want}");
        }
    }
    // and it learned the classes it was taught
    assert_eq!(rows[0]["label"], "bullish");
    assert_eq!(rows[1]["label"], "bearish");
    assert_eq!(rows[2]["label"], "neutral");
}

#[test]
fn training_tokens_are_llama_cpps_and_match_the_reference_tokenizer() {
    let s = Sandbox::new();
    let ck = tiny_checkpoint(&s.path(""));
    let v: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    let vocab = moat::finetune::checkpoint::vocab_from_tokenizer_json(&ck.join("tokenizer.json")).unwrap();
    let from_txt = moat::finetune::checkpoint::vocab_from_txt(&ck.join("vocab.txt"), None).unwrap();
    assert_eq!(vocab.tokens, from_txt.tokens);
    assert!(vocab.lowercase && from_txt.lowercase);
    // the GGUF moat writes tokenises every reference sentence as the PyTorch mirror did
    let out = s.path("vocab.gguf");
    let mut ckpt = moat::finetune::checkpoint::load(
        &ck.join("config.json"),
        &ck.join("model.safetensors"),
        Some(&ck.join("tokenizer.json")),
        None,
    )
    .unwrap();
    let params = moat::finetune::init_params(&mut ckpt, 2, 1).unwrap();
    let labels = vec!["negative".to_string(), "positive".to_string()];
    let meta = moat::finetune::gguf::GgufMeta {
        name: "t",
        description: "",
        license: "",
        labels: &labels,
        vocab: &vocab,
        extra: &[],
    };
    moat::finetune::gguf::write(&out, &params, &meta, moat::finetune::gguf::OutType::F32).unwrap();
    let tok = moat::finetune::tokens::GgufTokenizer::load(&out).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    for c in cases {
        let want: Vec<u32> = c["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(c["text"].as_str().unwrap(), 128), want, "{}", c["text"]);
    }
    let p = moat::finetune::tokens::parity(&tok, &ck.join("tokenizer.json"), &texts).unwrap();
    assert_eq!((p.identical, p.total), (texts.len(), texts.len()), "{p:?}");
}

#[test]
fn bad_training_data_stops_with_the_line_and_what_to_do() {
    let s = Sandbox::new();
    let ck = tiny_checkpoint(&s.path(""));
    let out = s.path("x.gguf");
    // a record with a stray column on line 4
    let bad = s.path("bad.tsv");
    std::fs::write(&bad, "label\ttext\nbullish\tshares jump\nbearish\tshares fall\nneutral\tmeeting today\textra\n")
        .unwrap();
    let o = train_cmd(&s, &ck, &bad, &out, &[]);
    assert_fails(&o, 2, "line 4");
    // a label asked for that no line has
    let data = s.path("two.tsv");
    std::fs::write(&data, "label\ttext\nbullish\tshares jump\nbearish\tshares fall\n").unwrap();
    let o = train_cmd(&s, &ck, &data, &out, &["--labels", "bullish,bearish,neutral"]);
    assert_fails(&o, 2, "label \"neutral\" has no lines");
    // an eval file whose label is not being trained, or that is not there
    let eval = s.path("eval.tsv");
    std::fs::write(&eval, "label\ttext\nbullish\tshares jump\nsideways\tflat day\n").unwrap();
    let o = train_cmd(&s, &ck, &data, &out, &["--eval-file", eval.to_str().unwrap()]);
    assert_fails(&o, 2, "sideways");
    let o = train_cmd(&s, &ck, &data, &out, &["--eval-file", s.path("missing.tsv").to_str().unwrap()]);
    assert_fails(&o, 2, "missing.tsv");
    let o = train_cmd(&s, &ck, &data, &out, &["--eval-file", "-"]);
    assert_fails(&o, 2, "--eval-file needs a file");
    // a setting that is not a number
    let o = train_cmd(&s, &ck, &data, &out, &["--weight-decay", "nan"]);
    assert_fails(&o, 2, "--weight-decay");
    // not a checkpoint
    let o = train_cmd(&s, &s.path("nowhere"), &data, &out, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    assert!(!out.exists());
}
