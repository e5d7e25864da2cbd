//! The loaded model and what every task needs from it besides a context.

use super::template::ChatFormat;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;

/// A model as loaded for one engine: borrowed by every task handler for the time it is loaded.
pub(super) struct LoadedModel<'m> {
    pub model: &'m LlamaModel,
    pub format: ChatFormat,
    /// Longest token in bytes: lets a huge input be rejected without tokenising all of it.
    pub max_piece: usize,
    pub backend: &'m LlamaBackend,
    pub threads_batch: i32,
    /// Non-causal (BERT and kin): no next-token logits, attention across the whole batch.
    pub encoder: bool,
    /// The main context's parameters, for contexts made in their image (`parallel.rs`).
    pub ctx_params: LlamaContextParams,
    /// Sequences decoded together by a `StructuredMany` task (`model.n_parallel`).
    pub n_parallel: usize,
}
