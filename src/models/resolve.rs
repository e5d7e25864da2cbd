//! What a user names as a model — a registry name or alias, a path to a .gguf file,
//! `hf:owner/repo/file.gguf` or an https URL — turned into a verified local file. Every command
//! (`-m`) and both interactive front ends (`/model`) resolve names here.

use super::{ModelError, ModelRef, PullOptions, Store};
use std::path::PathBuf;

/// A model name resolved to a file on disk.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    pub model: ModelRef,
    /// The GGUF file: present, its header checked, and checksummed when it came from the registry.
    pub path: PathBuf,
}

impl ResolvedModel {
    /// The name to show: the registry name, else the file name.
    pub fn display_name(&self) -> String {
        self.model.display_name()
    }
}

/// Resolves model names against one store with one download policy.
#[derive(Clone)]
pub struct ModelResolver {
    store: Store,
    pull: PullOptions,
}

impl ModelResolver {
    /// `pull.auto_pull` decides whether a registry model that is not on disk yet is downloaded.
    pub fn new(store: Store, pull: PullOptions) -> Self {
        ModelResolver { store, pull }
    }

    /// The store names resolve in (for listing what `/model` can switch to).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The file `name` stands for, downloaded first when allowed. Errors (one line each): an
    /// unknown name (with close matches), no file at a path, a model not downloaded while
    /// downloads are off, a failed download or checksum, a file that is not GGUF.
    pub fn resolve(&self, name: &str) -> Result<ResolvedModel, ModelError> {
        let model = ModelRef::parse(name)?;
        let path = self.store.ensure(&model, &self.pull)?;
        Ok(ResolvedModel { model, path })
    }
}
