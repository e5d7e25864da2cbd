//! Models: the registry of known models, the on-disk store, downloads, and GGUF header checks.

mod encoder;
mod encoder_pull;
pub mod gguf;
pub mod hub;
mod pull;
mod registry;
mod resolve;
mod spec;
pub mod store;

pub use encoder::{local_encoder, resolve_encoder, EncoderConfig, EncoderFiles, EncoderRecord, EncoderStatus};
pub use hub::DEFAULT_QUANT;
pub use pull::{Downloader, PullOptions};
pub use registry::{EncoderEntry, EncoderFile, Entry, PypiPart, Registry, Source, WheelSource};
pub use resolve::{ModelResolver, ResolvedModel};
pub use spec::ModelRef;
pub use store::{Store, StoredModel};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}`{}; `moat models search WORD` finds catalogue models (a path to a .gguf file, hf:owner/repo[:QUANT], hf:owner/repo/file.gguf or a URL also works)",
        if suggestions.is_empty() { String::new() } else { format!(" — did you mean {}?", suggestions.join(" or ")) })]
    Unknown { name: String, suggestions: Vec<String> },
    #[error("no model file at {}; check the path, or use a registry name from `moat models list`", path.display())]
    NoSuchFile { path: PathBuf },
    #[error("{name} has no {quant} file in the catalogue; it has {} (`moat models search` lists them; hf:OWNER/REPO:QUANT fetches any quantisation a repository has)", if have.is_empty() { "one file".to_string() } else { have.join(", ") })]
    UnknownQuant { name: String, quant: String, have: Vec<String> },
    /// An encoder named where a generative (GGUF) model is needed.
    #[error("`{name}` is an encoder (a BERT checkpoint for `moat classify train --encoder {name}`), not a chat or completion model; pick one from `moat models list`")]
    IsEncoder { name: String },
    /// `--encoder` names something that is not an encoder checkpoint (the message says what to do).
    #[error("{0}")]
    NotEncoder(String),
    #[error("model `{name}` is not downloaded; run `moat models pull {name}` (or set models.auto_pull = true)")]
    NotPulled { name: String },
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    #[error("{0}")]
    Download(String),
    #[error("download of {what} failed sha256 check (got {got}, expected {expected}); the file was not kept — try again, or report a registry error")]
    Checksum { what: String, got: String, expected: String },
    #[error("interrupted; the partial download was removed")]
    Interrupted,
    /// Ctrl+C during a resumable download: the partial file stays for the next pull.
    #[error("interrupted while downloading {what}: {kept}; run the same pull again to resume")]
    Paused { what: String, kept: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl ModelError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ModelError::Io { context: context.into(), source }
    }
}
