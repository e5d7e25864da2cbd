//! Configuration: built-in defaults (the repo's `config.toml`, embedded) < the user's file < `MOAT_*`
//! environment variables < command-line flags. One resolved [`Config`] is passed down; nothing deeper
//! re-reads the disk.

mod error;
mod gpu;
mod paths;

pub use crate::sampling::SamplingConfig;
pub use error::ConfigError;
pub use gpu::{FlashAttn, GpuLayers, CACHE_TYPES};
pub use paths::{expand_home, Paths};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The documented defaults, compiled in so the binary works from any directory.
pub const DEFAULT_TOML: &str = include_str!("../../config.toml");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub model: ModelConfig,
    pub sampling: SamplingConfig,
    pub chat: ChatConfig,
    pub models: ModelsConfig,
    pub prompts: PromptsConfig,
    pub log: LogConfig,
    pub remote: RemoteConfig,
}

/// Defines a config section twice from one field list: the public struct, whose missing keys take
/// the built-in defaults, and a strict twin without defaults that reads the embedded `config.toml`.
/// The twin is needed because `serde(default)` calls `Default` eagerly, and `Default` is what is
/// being built while the embedded file is read; it also makes a key missing there fail loudly.
/// A field's attributes (such as `serde(rename)`) apply to both structs.
macro_rules! section {
    ($name:ident, $strict:ident, $field:ident { $($(#[$meta:meta])* $f:ident: $t:ty),* $(,)? }) => {
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name { $($(#[$meta])* pub $f: $t,)* }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $strict { $($(#[$meta])* $f: $t,)* }

        impl From<$strict> for $name {
            fn from(s: $strict) -> Self { $name { $($f: s.$f,)* } }
        }

        impl Default for $name {
            fn default() -> Self { builtin().$field.clone() }
        }
    };
}

section!(
    ModelConfig,
    StrictModel,
    model {
        name: String,
        /// The context window in tokens (0 = the model's training context); the key is `context`.
        #[serde(rename = "context")]
        n_ctx: u32,
        /// Generation threads; 0 = `auto` (written so): the tuned choice, else physical cores.
        #[serde(with = "auto_count")]
        threads: u32,
        /// Prompt threads; 0 = `auto`: the tuned choice, else logical cores.
        #[serde(with = "auto_count")]
        threads_batch: u32,
        /// Tokens per prompt decode; 0 = `auto`: the tuned choice, else 512.
        #[serde(with = "auto_count")]
        batch: u32,
        /// Requests decoded at once by parallel structured generation (a prompt's map step); 0 =
        /// auto (see [`EngineOptions::n_parallel`](crate::engine::EngineOptions)).
        n_parallel: u32,
        gpu_layers: GpuLayers,
        flash_attn: FlashAttn,
        /// Measure the fastest settings (`moat tune`) the first time a model is used in chat or
        /// the REPL on a terminal.
        auto_tune: bool,
        cache_type_k: String,
        cache_type_v: String,
        template: String,
    }
);

// The sampling section is defined with the other sampling front ends in `crate::sampling`.
impl Default for SamplingConfig {
    fn default() -> Self {
        builtin().sampling.clone()
    }
}

section!(
    ChatConfig,
    StrictChat,
    chat {
        system_prompt: String,
        overflow: OverflowPolicy,
        reserve: u32,
        /// Log every `moat ask` to the session database (`--no-log` skips one run).
        log_ask: bool,
    }
);

section!(ModelsConfig, StrictModels, models { dir: String, auto_pull: bool, pypi_url: String, hf_url: String });

section!(LogConfig, StrictLog, log { file: String });

section!(PromptsConfig, StrictPrompts, prompts { dirs: Vec<String> });

section!(
    RemoteConfig,
    StrictRemote,
    remote {
        url: String,
        model: String,
        api_key_env: String,
        allow_insecure_key: bool,
        connect_timeout_s: u64,
        idle_timeout_s: u64,
        headers: std::collections::BTreeMap<String, String>,
        tokenizer: String,
    }
);

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowPolicy {
    DropOldest,
    Error,
}

impl Default for OverflowPolicy {
    fn default() -> Self {
        builtin().chat.overflow
    }
}

/// A count where `"auto"` (or 0) leaves the choice to moat: the measured one (`moat tune`), else
/// llama.cpp's default. Written as `"auto"` for 0.
pub mod auto_count {
    use serde::{Deserialize, Deserializer, Serializer};

    /// `"auto"` → 0, a number → itself.
    ///
    /// Errors: anything else (`expected "auto" or a number, not …`).
    pub fn parse(s: &str) -> Result<u32, String> {
        match s.trim() {
            "auto" => Ok(0),
            n => n.parse().map_err(|_| format!("expected \"auto\" or a number, not {n:?}")),
        }
    }

    pub fn serialize<S: Serializer>(n: &u32, s: S) -> Result<S::Ok, S::Error> {
        match n {
            0 => s.serialize_str("auto"),
            n => s.serialize_u32(*n),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if (0..=u32::MAX as i64).contains(&n) => Ok(n as u32),
            Raw::Int(n) => Err(serde::de::Error::custom(format!("expected \"auto\" or a number, not {n}"))),
            Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// The most sequences `model.n_parallel` may ask for (llama.cpp allows 256; each costs a share
/// of the KV cache).
pub const MAX_PARALLEL: u32 = 64;

/// The embedded defaults, parsed once.
struct BuiltinDefaults {
    model: ModelConfig,
    sampling: SamplingConfig,
    chat: ChatConfig,
    models: ModelsConfig,
    prompts: PromptsConfig,
    log: LogConfig,
    remote: RemoteConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StrictFile {
    model: StrictModel,
    sampling: crate::sampling::StrictSamplingConfig,
    chat: StrictChat,
    models: StrictModels,
    prompts: StrictPrompts,
    log: StrictLog,
    remote: StrictRemote,
}

fn builtin() -> &'static BuiltinDefaults {
    static CELL: OnceLock<BuiltinDefaults> = OnceLock::new();
    CELL.get_or_init(|| {
        let f: StrictFile = toml::from_str(DEFAULT_TOML).expect("the embedded config.toml is complete and valid");
        BuiltinDefaults {
            model: f.model.into(),
            sampling: f.sampling.into(),
            chat: f.chat.into(),
            models: f.models.into(),
            prompts: f.prompts.into(),
            log: f.log.into(),
            remote: f.remote.into(),
        }
    })
}

impl Default for Config {
    fn default() -> Self {
        let b = builtin();
        Config {
            model: b.model.clone(),
            sampling: b.sampling.clone(),
            chat: b.chat.clone(),
            models: b.models.clone(),
            prompts: b.prompts.clone(),
            log: b.log.clone(),
            remote: b.remote.clone(),
        }
    }
}

/// Where the resolved configuration came from, for `moat config show`.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub paths: Paths,
    /// The user's config file, if it exists and was read.
    pub user_file: Option<PathBuf>,
    /// Environment variables that changed a value, as `NAME=value`.
    pub env_overrides: Vec<String>,
}

impl Config {
    /// Defaults < user file < environment.
    pub fn load() -> Result<LoadedConfig, ConfigError> {
        let paths = Paths::from_env()?;
        let (mut config, user_file) = match std::fs::read(&paths.config_file) {
            Ok(bytes) => (Self::parse_file(&paths.config_file, &bytes)?, Some(paths.config_file.clone())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Config::default(), None),
            Err(e) => {
                return Err(ConfigError::Read { path: paths.config_file.clone(), source: e });
            }
        };
        let env_overrides = config.apply_env(std::env::vars())?;
        config.validate()?;
        Ok(LoadedConfig { config, paths, user_file, env_overrides })
    }

    /// Parses a user config file; missing keys keep their defaults, unknown keys are errors.
    pub fn parse_file(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = crate::text_input::decode(&path.display().to_string(), bytes.to_vec()).map_err(|e| {
            let at = match &e {
                crate::text_input::DecodeError::Nul { offset, .. }
                | crate::text_input::DecodeError::InvalidUtf8 { offset, .. } => *offset,
                crate::text_input::DecodeError::Utf16 { .. } => 0,
            };
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line: 1 + bytes[..at.min(bytes.len())].iter().filter(|&&b| b == b'\n').count(),
                column: 1,
                key: None,
                message: match e {
                    crate::text_input::DecodeError::Utf16 { .. } => "the file is UTF-16; save it as UTF-8".into(),
                    crate::text_input::DecodeError::Nul { .. } => "the file contains a NUL byte".into(),
                    crate::text_input::DecodeError::InvalidUtf8 { .. } => "the file is not valid UTF-8".into(),
                },
            }
        })?;
        toml::from_str::<Config>(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))
    }

    /// Applies `MOAT_<SECTION>_<KEY>` variables; returns the ones used.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<Vec<String>, ConfigError> {
        let mut value = toml::Value::try_from(&*self).expect("Config serialises to TOML");
        let known = env_names(&value);
        let mut used = Vec::new();
        let mut vars: Vec<_> = vars.into_iter().filter(|(k, _)| k.starts_with("MOAT_")).collect();
        vars.sort();
        for (name, raw) in vars {
            let Some((section, key)) = known.iter().find(|(n, _, _)| *n == name).map(|(_, s, k)| (s, k)) else {
                continue;
            };
            let table = value.get_mut(section).and_then(|v| v.as_table_mut()).expect("section exists");
            let old = table.get(key).expect("key exists");
            table.insert(key.clone(), env_value(old, &raw));
            // Checked one at a time, so an error names the one bad variable, not every MOAT_ set.
            value.clone().try_into::<Config>().map_err(|e: toml::de::Error| ConfigError::Env {
                vars: format!("{name}={raw}"),
                message: e.message().trim().to_string(),
            })?;
            used.push(format!("{name}={raw}"));
        }
        if !used.is_empty() {
            *self = value.try_into().map_err(|e: toml::de::Error| ConfigError::Env {
                vars: used.join(" "),
                message: e.message().to_string(),
            })?;
        }
        Ok(used)
    }

    /// Checks ranges that the types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError::Invalid { key: key.into(), message: why.into() });
        if let Err(k) = self.sampling.check() {
            return Err(ConfigError::Invalid {
                key: format!("sampling.{}", k.key),
                message: format!("must be {}", k.rule),
            });
        }
        for (key, v) in
            [("model.cache_type_k", &self.model.cache_type_k), ("model.cache_type_v", &self.model.cache_type_v)]
        {
            if !CACHE_TYPES.contains(&v.as_str()) {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    message: format!("must be one of {}", CACHE_TYPES.join(", ")),
                });
            }
        }
        if self.model.flash_attn == FlashAttn::Off
            && !matches!(self.model.cache_type_v.as_str(), "f16" | "bf16" | "f32")
        {
            return bad(
                "model.cache_type_v",
                "a quantised V cache needs flash attention (flash_attn = \"auto\" or \"on\")",
            );
        }
        if self.model.n_parallel > MAX_PARALLEL {
            return bad("model.n_parallel", "must be between 0 (auto) and 64");
        }
        if self.model.n_ctx != 0 && self.model.n_ctx < 64 {
            return bad("model.context", "must be 0 (the model's own) or at least 64");
        }
        let t = self.model.template.as_str();
        if !(matches!(t, "auto" | "jinja" | "plain") || t.strip_prefix("builtin:").is_some_and(|n| !n.is_empty())) {
            return bad("model.template", "must be auto, jinja, plain or builtin:NAME");
        }
        self.remote.validate()
    }

    /// The configuration as TOML, for `moat config show`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("Config serialises to TOML")
    }
}

impl RemoteConfig {
    /// The URL's scheme, the timeouts, the variable name and the headers (a header that could
    /// smuggle a second header or request line is refused).
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError::Invalid { key: format!("remote.{key}"), message: why });
        let url = self.url.trim();
        if !url.is_empty() {
            let lower = url.to_ascii_lowercase();
            let Some(rest) = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://")) else {
                return bad("url", "must start with http:// or https:// (e.g. http://gpu-box:8000), or be \"\"".into());
            };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.is_empty() {
                return bad("url", "has no host (e.g. http://gpu-box:8000)".into());
            }
            if authority.contains('@') {
                return bad(
                    "url",
                    "must not carry credentials; put the API key in an environment variable and name it in remote.api_key_env".into(),
                );
            }
        }
        if !self.api_key_env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return bad(
                "api_key_env",
                "must be the NAME of an environment variable (letters, digits, _), not the key itself".into(),
            );
        }
        if self.connect_timeout_s == 0 {
            return bad("connect_timeout_s", "must be at least 1".into());
        }
        if self.idle_timeout_s == 0 {
            return bad("idle_timeout_s", "must be at least 1".into());
        }
        for (name, value) in &self.headers {
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return bad("headers", format!("has a bad header name {name:?} (letters, digits and -)"));
            }
            if value.chars().any(|c| c.is_control() && c != '\t') {
                return bad("headers", format!("the value of {name} has a control character"));
            }
        }
        Ok(())
    }
}

/// Every `MOAT_<SECTION>_<KEY>` name with its section and key.
fn env_names(value: &toml::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (section, table) in value.as_table().into_iter().flatten() {
        for key in table.as_table().into_iter().flat_map(|t| t.keys()) {
            let name = format!("MOAT_{}_{}", section.to_uppercase(), key.to_uppercase());
            out.push((name, section.clone(), key.clone()));
        }
    }
    out
}

/// Reads an environment value with the type of the key it replaces, so `MOAT_SAMPLING_STOP` can be a
/// TOML array and `MOAT_MODEL_NAME` needs no quotes.
fn env_value(old: &toml::Value, raw: &str) -> toml::Value {
    match old {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        _ => {
            let wrapped = format!("v = {raw}");
            match toml::from_str::<toml::Table>(&wrapped) {
                Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
                Err(_) => toml::Value::String(raw.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
