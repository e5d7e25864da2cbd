//! Writes a fine-tuned encoder as a BERT sequence-classifier GGUF that llama.cpp (and so moat's
//! native classifier path) loads: the layout of llama.cpp's `convert_hf_to_gguf.py` for BERT, with
//! RANK pooling, the labels in `bert.classifier.output_labels`, and the provenance under `moat.*`.

use super::bert::BertParams;
use super::checkpoint::{phantom, Vocab};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use std::path::Path;

/// How matrices are stored. Norms, biases and the position / token-type tables stay F32 either
/// way, as the upstream converter keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutType {
    /// Half the size; logits move by ~1e-3 against F32.
    F16,
    F32,
}

/// Everything the GGUF says about the model besides its tensors.
pub struct GgufMeta<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub license: &'a str,
    pub labels: &'a [String],
    pub vocab: &'a Vocab,
    /// `moat.*` string keys (provenance: base encoder and sha256, data files and sha256,
    /// settings, held-out metrics), written as given.
    pub extra: &'a [(String, String)],
}

const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
/// llama.cpp's `LLAMA_POOLING_TYPE_RANK`.
const POOLING_RANK: u32 = 4;

/// The GGUF bytes of `params` with `meta`.
///
/// Errors: a tensor that cannot be converted (never expected for f32 tensors) or written.
pub fn to_bytes(params: &BertParams, meta: &GgufMeta<'_>, out: OutType) -> Result<Vec<u8>, String> {
    let c = &params.config;
    let u = |n: usize| Value::U32(n as u32);
    let s = |x: &str| Value::String(x.to_string());
    let v = meta.vocab;
    let control = [v.cls, v.sep, v.unk, v.pad, v.mask];
    let mut kv: Vec<(String, Value)> = vec![
        ("general.architecture".into(), s("bert")),
        ("general.name".into(), s(meta.name)),
        ("general.description".into(), s(meta.description)),
        ("general.license".into(), s(meta.license)),
        ("general.file_type".into(), u(if out == OutType::F16 { 1 } else { 0 })),
        ("bert.context_length".into(), u(c.max_position_embeddings)),
        ("bert.embedding_length".into(), u(c.hidden_size)),
        ("bert.feed_forward_length".into(), u(c.intermediate_size)),
        ("bert.block_count".into(), u(c.num_hidden_layers)),
        ("bert.attention.head_count".into(), u(c.num_attention_heads)),
        ("bert.attention.layer_norm_epsilon".into(), Value::F32(c.layer_norm_eps as f32)),
        ("bert.attention.causal".into(), Value::Bool(false)),
        ("bert.pooling_type".into(), Value::U32(POOLING_RANK)),
        ("bert.classifier.output_labels".into(), Value::Array(meta.labels.iter().map(|l| s(l)).collect())),
        ("tokenizer.ggml.model".into(), s("bert")),
        ("tokenizer.ggml.pre".into(), s("default")),
        ("tokenizer.ggml.tokens".into(), Value::Array(v.tokens.iter().map(|t| Value::String(phantom(t))).collect())),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                (0..v.tokens.len() as u32)
                    .map(|i| Value::I32(if control.contains(&i) { TOKEN_CONTROL } else { TOKEN_NORMAL }))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.token_type_count".into(), u(c.type_vocab_size)),
        // llama.cpp adds tokenizer.ggml.bos_token_id as [CLS]; it does not read cls_token_id
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(v.cls)),
        ("tokenizer.ggml.cls_token_id".into(), Value::U32(v.cls)),
        ("tokenizer.ggml.seperator_token_id".into(), Value::U32(v.sep)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(v.unk)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(v.pad)),
        ("tokenizer.ggml.mask_token_id".into(), Value::U32(v.mask)),
        ("tokenizer.ggml.normalizer.lowercase".into(), Value::Bool(v.lowercase)),
        ("tokenizer.ggml.normalizer.strip_accents".into(), Value::Bool(v.strip_accents)),
    ];
    for (k, x) in meta.extra {
        kv.push((k.clone(), s(x)));
    }
    let mut tensors = Vec::new();
    for (name, var) in &params.vars {
        let t = var.as_tensor();
        let keep_f32 = t.rank() == 1 || name == "token_types.weight" || name == "position_embd.weight";
        let dtype = if out == OutType::F16 && !keep_f32 { GgmlDType::F16 } else { GgmlDType::F32 };
        let q = QTensor::quantize(t, dtype).map_err(|e| format!("cannot convert {name}: {e}"))?;
        tensors.push((name.clone(), q));
    }
    let kv_refs: Vec<(&str, &Value)> = kv.iter().map(|(k, x)| (k.as_str(), x)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, x)| (k.as_str(), x)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    candle_core::quantized::gguf_file::write(&mut buf, &kv_refs, &t_refs)
        .map_err(|e| format!("cannot write the GGUF: {e}"))?;
    Ok(buf.into_inner())
}

/// Writes the GGUF to `path` atomically (the old file, if any, stays until the new one is whole).
pub fn write(path: &Path, params: &BertParams, meta: &GgufMeta<'_>, out: OutType) -> Result<(), String> {
    let bytes = to_bytes(params, meta, out)?;
    crate::atomic_write::write_atomic(path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a BERT classifier GGUF back into trainable parameters (F16 matrices widened to F32),
/// with its labels: for checking a written file against the training forward pass, and for
/// tests.
///
/// Errors: not a GGUF, not a BERT classifier, or a tensor missing or of the wrong shape.
pub fn read(path: &Path) -> Result<(BertParams, Vec<String>), String> {
    use candle_core::quantized::gguf_file::Content;
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let content = Content::read(&mut f).map_err(|e| format!("{} is not a readable GGUF: {e}", path.display()))?;
    let md = &content.metadata;
    let u = |k: &str| -> Result<usize, String> {
        md.get(k)
            .and_then(|v| v.to_u32().ok())
            .map(|x| x as usize)
            .ok_or_else(|| format!("{}: {k} is missing", path.display()))
    };
    let labels: Vec<String> = match md.get("bert.classifier.output_labels") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.to_string().ok().cloned()).collect(),
        _ => return Err(format!("{}: not a BERT classifier (no bert.classifier.output_labels)", path.display())),
    };
    let n_vocab = match md.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => a.len(),
        _ => return Err(format!("{}: no tokenizer.ggml.tokens", path.display())),
    };
    let mut tensors = std::collections::HashMap::new();
    let mut type_rows = 2;
    let mut pos_rows = u("bert.context_length")?;
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut f, name, &candle_core::Device::Cpu).map_err(|e| format!("{name}: {e}"))?;
        let t = q.dequantize(&candle_core::Device::Cpu).map_err(|e| format!("{name}: {e}"))?;
        if name == "token_types.weight" {
            type_rows = t.dim(0).map_err(|e| e.to_string())?;
        }
        if name == "position_embd.weight" {
            pos_rows = t.dim(0).map_err(|e| e.to_string())?;
        }
        tensors.insert(name.clone(), t);
    }
    let config = super::bert::BertConfig {
        vocab_size: n_vocab,
        hidden_size: u("bert.embedding_length")?,
        num_hidden_layers: u("bert.block_count")?,
        num_attention_heads: u("bert.attention.head_count")?,
        intermediate_size: u("bert.feed_forward_length")?,
        max_position_embeddings: pos_rows,
        type_vocab_size: type_rows,
        layer_norm_eps: md.get("bert.attention.layer_norm_epsilon").and_then(|v| v.to_f32().ok()).unwrap_or(1e-12)
            as f64,
    };
    let n = labels.len();
    Ok((BertParams::from_tensors(config, n, tensors)?, labels))
}
