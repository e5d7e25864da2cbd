//! Training text is tokenised by llama.cpp itself, from the GGUF being written, so training sees
//! exactly the ids that `moat classify` will feed the model. The checkpoint's own `tokenizer.json`
//! (Hugging Face `tokenizers`) is run beside it as a check, and any line where the two differ is
//! reported.

use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use std::path::Path;

/// A WPM tokenizer loaded from a BERT GGUF (vocab only: no weights are read).
pub struct GgufTokenizer {
    model: LlamaModel,
    /// The model's own specials around a text: `[CLS]` before, `[SEP]` after.
    open: Vec<u32>,
    close: Vec<u32>,
}

impl GgufTokenizer {
    /// Errors: the file is not a GGUF llama.cpp can read the vocab of.
    pub fn load(gguf: &Path) -> Result<GgufTokenizer, String> {
        let backend = crate::engine::backend(None);
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend, gguf, &params)
            .map_err(|e| format!("llama.cpp cannot read the vocab of {}: {e}", gguf.display()))?;
        let wrap: Vec<u32> = model.vocab().tokenize(b"", true, false).iter().map(|t| t.0 as u32).collect();
        let bos = model.vocab().bos().0 as u32;
        let n_open = wrap.iter().take_while(|&&t| t == bos).count();
        Ok(GgufTokenizer { open: wrap[..n_open].to_vec(), close: wrap[n_open..].to_vec(), model })
    }

    /// The ids of `text` wrapped in the model's specials, at most `max_tokens` in all: a longer
    /// text keeps its first and last halves, as `moat classify --long truncate` does.
    pub fn encode(&self, text: &str, max_tokens: usize) -> Vec<u32> {
        let mut toks: Vec<u32> =
            self.model.vocab().tokenize(text.as_bytes(), false, false).iter().map(|t| t.0 as u32).collect();
        let max = max_tokens.saturating_sub(self.open.len() + self.close.len()).max(1);
        if toks.len() > max {
            let head = max / 2;
            let tail = toks.split_off(toks.len() - (max - head));
            toks.truncate(head);
            toks.extend(tail);
        }
        let mut out = self.open.clone();
        out.extend(toks);
        out.extend(&self.close);
        out
    }
}

/// Lines where llama.cpp and the checkpoint's `tokenizer.json` agree, out of all, and the first
/// line (index) where they do not.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Parity {
    pub identical: usize,
    pub total: usize,
    pub first_difference: Option<usize>,
}

/// Compares llama.cpp's ids (no truncation) with `tokenizers`' on every text.
///
/// Errors: the tokenizer.json cannot be loaded by `tokenizers`.
pub fn parity(gguf: &GgufTokenizer, tokenizer_json: &Path, texts: &[&str]) -> Result<Parity, String> {
    let mut hf = tokenizers::Tokenizer::from_file(tokenizer_json)
        .map_err(|e| format!("cannot load {}: {e}", tokenizer_json.display()))?;
    hf.with_truncation(None).map_err(|e| format!("{}: {e}", tokenizer_json.display()))?;
    hf.with_padding(None);
    let mut p = Parity { identical: 0, total: texts.len(), first_difference: None };
    for (i, t) in texts.iter().enumerate() {
        let ours = gguf.encode(t, usize::MAX);
        let theirs = hf.encode(*t, true).map(|e| e.get_ids().to_vec()).unwrap_or_default();
        if ours == theirs {
            p.identical += 1;
        } else if p.first_difference.is_none() {
            p.first_difference = Some(i);
        }
    }
    Ok(p)
}
