//! Models: the registry of known models, the on-disk store, downloads, and GGUF header checks.

pub mod gguf;
mod pull;
mod registry;
mod resolve;
mod spec;
pub mod store;

pub use pull::{Downloader, PullOptions};
pub use registry::{Entry, PypiPart, Registry, Source};
pub use resolve::{ModelResolver, ResolvedModel};
pub use spec::ModelRef;
pub use store::{Store, StoredModel};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}`{}; `moat models list` shows the known ones (a path to a .gguf file, hf:owner/repo/file.gguf or a URL also works)",
        if suggestions.is_empty() { String::new() } else { format!(" — did you mean {}?", suggestions.join(" or ")) })]
    Unknown { name: String, suggestions: Vec<String> },
    #[error("no model file at {}; check the path, or use a registry name from `moat models list`", path.display())]
    NoSuchFile { path: PathBuf },
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
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl ModelError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ModelError::Io { context: context.into(), source }
    }
}
