//! A pretrained BERT-family checkpoint on disk (Hugging Face layout): `config.json`, the weights
//! (`model.safetensors`, or a PyTorch `pytorch_model.bin`), and the WordPiece vocab
//! (`tokenizer.json`, or `vocab.txt`), read into GGUF-named f32 tensors.

use super::bert::BertConfig;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// A WordPiece vocab as the checkpoint spells it (`##` continuations), with its normaliser.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// Entry `i` is token id `i`.
    pub tokens: Vec<String>,
    /// Lowercase before matching (an "uncased" model); llama.cpp's default for `bert` is true.
    pub lowercase: bool,
    /// Strip accents (NFD, drop combining marks); follows `lowercase` unless the tokenizer says.
    pub strip_accents: bool,
    pub cls: u32,
    pub sep: u32,
    pub unk: u32,
    pub pad: u32,
    pub mask: u32,
}

/// What [`load`] read.
pub struct Checkpoint {
    pub config: BertConfig,
    /// GGUF-named encoder tensors (`token_embd.weight`, `blk.0.attn_q.weight`, …) and, when the
    /// checkpoint has BERT's pooler, `cls.weight` / `cls.bias` (the head's first layer).
    pub tensors: HashMap<String, Tensor>,
    pub vocab: Vocab,
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

/// Reads the model shape from a Hugging Face `config.json`.
///
/// Errors: not JSON, a missing size, or a model type other than BERT (RoBERTa and others place
/// positions and tokens differently from llama.cpp's `bert` graph).
pub fn read_config(path: &Path) -> Result<BertConfig, String> {
    let v = read_json(path)?;
    let kind = v.get("model_type").and_then(|x| x.as_str()).unwrap_or("bert");
    if kind != "bert" {
        return Err(format!(
            "{}: model_type {kind:?} is not supported for fine-tuning; use a BERT checkpoint (model_type \"bert\")",
            path.display()
        ));
    }
    let size = |k: &str| -> Result<usize, String> {
        v.get(k)
            .and_then(|x| x.as_u64())
            .filter(|&n| n > 0 && n < (1 << 24))
            .map(|n| n as usize)
            .ok_or_else(|| format!("{}: {k} is missing or not a positive integer", path.display()))
    };
    let config = BertConfig {
        vocab_size: size("vocab_size")?,
        hidden_size: size("hidden_size")?,
        num_hidden_layers: size("num_hidden_layers")?,
        num_attention_heads: size("num_attention_heads")?,
        intermediate_size: size("intermediate_size")?,
        max_position_embeddings: size("max_position_embeddings")?,
        type_vocab_size: v.get("type_vocab_size").and_then(|x| x.as_u64()).unwrap_or(2).max(1) as usize,
        layer_norm_eps: v.get("layer_norm_eps").and_then(|x| x.as_f64()).unwrap_or(1e-12),
    };
    if !config.hidden_size.is_multiple_of(config.num_attention_heads) {
        return Err(format!("{}: hidden_size is not a multiple of num_attention_heads", path.display()));
    }
    Ok(config)
}

/// The GGUF name for a Hugging Face BERT tensor name, or None for tensors the classifier does not
/// use (a pretraining head, position ids).
pub fn gguf_name(hf: &str) -> Option<String> {
    let name = hf.strip_prefix("bert.").or_else(|| hf.strip_prefix("model.")).unwrap_or(hf);
    let suffix = |s: &str| match s {
        "weight" | "gamma" => Some("weight"),
        "bias" | "beta" => Some("bias"),
        _ => None,
    };
    let (base, last) = name.rsplit_once('.')?;
    let last = suffix(last)?;
    let fixed = match base {
        "embeddings.word_embeddings" => "token_embd".to_string(),
        "embeddings.token_type_embeddings" => "token_types".to_string(),
        "embeddings.position_embeddings" => "position_embd".to_string(),
        "embeddings.LayerNorm" => "token_embd_norm".to_string(),
        "pooler.dense" => "cls".to_string(),
        _ => {
            let rest = base.strip_prefix("encoder.layer.")?;
            let (i, part) = rest.split_once('.')?;
            let i: usize = i.parse().ok()?;
            let t = match part {
                "attention.self.query" => "attn_q",
                "attention.self.key" => "attn_k",
                "attention.self.value" => "attn_v",
                "attention.output.dense" => "attn_output",
                "attention.output.LayerNorm" => "attn_output_norm",
                "intermediate.dense" => "ffn_up",
                "output.dense" => "ffn_down",
                "output.LayerNorm" => "layer_output_norm",
                _ => return None,
            };
            format!("blk.{i}.{t}")
        }
    };
    Some(format!("{fixed}.{last}"))
}

/// Reads a checkpoint: `config` (config.json), `weights` (.safetensors or a PyTorch .bin),
/// and the vocab from `tokenizer_json` or `vocab_txt` (one must be given).
///
/// Errors: one line naming the file and what is wrong (unreadable, truncated, missing tensors
/// are reported later by [`super::bert::BertParams::from_tensors`]).
pub fn load(
    config: &Path,
    weights: &Path,
    tokenizer_json: Option<&Path>,
    vocab_txt: Option<&Path>,
) -> Result<Checkpoint, String> {
    let cfg = read_config(config)?;
    let raw: Vec<(String, Tensor)> = if weights.extension().is_some_and(|e| e == "safetensors") {
        candle_core::safetensors::load(weights, &Device::Cpu)
            .map_err(|e| format!("cannot read {} as safetensors: {e}", weights.display()))?
            .into_iter()
            .collect()
    } else {
        candle_core::pickle::read_all(weights)
            .map_err(|e| format!("cannot read {} as a PyTorch checkpoint: {e}", weights.display()))?
    };
    let mut tensors = HashMap::new();
    for (name, t) in raw {
        if let Some(g) = gguf_name(&name) {
            let t = t.to_dtype(candle_core::DType::F32).map_err(|e| format!("{}: {name}: {e}", weights.display()))?;
            tensors.insert(g, t);
        }
    }
    let dir_config = config.parent().map(|d| d.join("tokenizer_config.json"));
    let vocab = match (tokenizer_json, vocab_txt) {
        (Some(t), _) => vocab_from_tokenizer_json(t)?,
        (None, Some(v)) => vocab_from_txt(v, dir_config.as_deref())?,
        (None, None) => return Err("the encoder has no tokenizer.json or vocab.txt".into()),
    };
    if vocab.tokens.len() != cfg.vocab_size {
        return Err(format!(
            "the vocab has {} entries but config.json says vocab_size {}",
            vocab.tokens.len(),
            cfg.vocab_size
        ));
    }
    Ok(Checkpoint { config: cfg, tensors, vocab })
}

fn specials(tokens: &[String], lowercase: bool, strip_accents: bool, source: &Path) -> Result<Vocab, String> {
    let find = |s: &str| tokens.iter().position(|t| t == s).map(|i| i as u32);
    let need = |s: &str| find(s).ok_or_else(|| format!("{}: the vocab has no {s} token", source.display()));
    Ok(Vocab {
        tokens: tokens.to_vec(),
        lowercase,
        strip_accents,
        cls: need("[CLS]")?,
        sep: need("[SEP]")?,
        unk: need("[UNK]")?,
        pad: find("[PAD]").unwrap_or(0),
        mask: find("[MASK]").unwrap_or(0),
    })
}

/// A cased vocab has capitalised word entries; used only when no tokenizer setting says.
fn looks_cased(tokens: &[String]) -> bool {
    tokens.iter().filter(|t| !t.starts_with('[') && t.chars().next().is_some_and(|c| c.is_uppercase())).count() > 100
}

/// The vocab and normaliser of a `tokenizer.json` with a WordPiece model.
pub fn vocab_from_tokenizer_json(path: &Path) -> Result<Vocab, String> {
    let v = read_json(path)?;
    let model = v.get("model").ok_or_else(|| format!("{}: no \"model\"", path.display()))?;
    if model.get("type").and_then(|x| x.as_str()) != Some("WordPiece") {
        return Err(format!(
            "{}: the tokenizer is not WordPiece; BERT fine-tuning needs a WordPiece vocab",
            path.display()
        ));
    }
    let map = model
        .get("vocab")
        .and_then(|x| x.as_object())
        .ok_or_else(|| format!("{}: model.vocab is missing", path.display()))?;
    let mut tokens = vec![None; map.len()];
    for (tok, id) in map {
        let id = id.as_u64().map(|i| i as usize).filter(|&i| i < tokens.len());
        match id {
            Some(i) if tokens[i].is_none() => tokens[i] = Some(tok.clone()),
            _ => return Err(format!("{}: vocab ids are not 0..{} without gaps", path.display(), map.len())),
        }
    }
    let tokens: Vec<String> = tokens.into_iter().map(|t| t.expect("every id filled")).collect();
    let norm = v.get("normalizer");
    let lowercase =
        norm.and_then(|n| n.get("lowercase")).and_then(|x| x.as_bool()).unwrap_or_else(|| !looks_cased(&tokens));
    let strip_accents = norm.and_then(|n| n.get("strip_accents")).and_then(|x| x.as_bool()).unwrap_or(lowercase);
    specials(&tokens, lowercase, strip_accents, path)
}

/// The vocab of a `vocab.txt` (one entry per line); the case from `tokenizer_config.json`'s
/// `do_lower_case` when present, else from the vocab itself.
pub fn vocab_from_txt(path: &Path, tokenizer_config: Option<&Path>) -> Result<Vocab, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {} as UTF-8 text: {e}", path.display()))?;
    let tokens: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    let lower = tokenizer_config
        .filter(|p| p.exists())
        .and_then(|p| read_json(p).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|x| x.as_bool()));
    let lowercase = lower.unwrap_or_else(|| !looks_cased(&tokens));
    specials(&tokens, lowercase, lowercase, path)
}

/// The GGUF token text of a WordPiece entry, as llama.cpp's converter stores it: word-initial
/// entries get the phantom space `▁`, `##` continuations lose `##`, `[…]` specials stay.
pub fn phantom(token: &str) -> String {
    if token.starts_with('[') && token.ends_with(']') {
        token.to_string()
    } else if let Some(rest) = token.strip_prefix("##") {
        rest.to_string()
    } else {
        format!("\u{2581}{token}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugging_face_names_map_to_llama_cpp_names() {
        assert_eq!(gguf_name("bert.embeddings.word_embeddings.weight").unwrap(), "token_embd.weight");
        assert_eq!(gguf_name("embeddings.LayerNorm.gamma").unwrap(), "token_embd_norm.weight");
        assert_eq!(gguf_name("encoder.layer.3.attention.self.key.bias").unwrap(), "blk.3.attn_k.bias");
        assert_eq!(gguf_name("encoder.layer.0.output.LayerNorm.weight").unwrap(), "blk.0.layer_output_norm.weight");
        assert_eq!(gguf_name("encoder.layer.0.intermediate.dense.weight").unwrap(), "blk.0.ffn_up.weight");
        assert_eq!(gguf_name("pooler.dense.bias").unwrap(), "cls.bias");
        assert_eq!(gguf_name("embeddings.position_ids"), None);
        assert_eq!(gguf_name("cls.predictions.bias"), None);
    }

    #[test]
    fn phantom_follows_the_upstream_converter() {
        assert_eq!(phantom("[CLS]"), "[CLS]");
        assert_eq!(phantom("##ing"), "ing");
        assert_eq!(phantom("play"), "\u{2581}play");
    }

    #[test]
    fn a_bad_config_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"model_type":"roberta","hidden_size":8}"#).unwrap();
        assert!(read_config(&p).unwrap_err().contains("roberta"));
        std::fs::write(&p, r#"{"model_type":"bert","hidden_size":8}"#).unwrap();
        assert!(read_config(&p).unwrap_err().contains("vocab_size"));
        std::fs::write(&p, b"\xff{").unwrap();
        assert!(read_config(&p).unwrap_err().contains("not valid JSON"));
    }
}
