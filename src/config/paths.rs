use super::ConfigError;
use std::path::PathBuf;

/// Where moat keeps its files. `MOAT_CONFIG` and `MOAT_DATA_DIR` override the platform defaults
/// (XDG on Linux, Application Support on macOS, AppData on Windows).
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    pub fn from_env() -> Result<Paths, ConfigError> {
        let dirs = directories::ProjectDirs::from("", "", "moat");
        let config_file = match std::env::var_os("MOAT_CONFIG") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => dirs.as_ref().ok_or(ConfigError::NoHome)?.config_dir().join("config.toml"),
        };
        let data_dir = match std::env::var_os("MOAT_DATA_DIR") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => dirs.as_ref().ok_or(ConfigError::NoHome)?.data_dir().to_path_buf(),
        };
        Ok(Paths { config_file, data_dir })
    }

    /// The model store: `models.dir` if set, else `<data dir>/models`.
    pub fn models_dir(&self, configured: &str) -> PathBuf {
        if configured.is_empty() {
            self.data_dir.join("models")
        } else {
            expand_home(configured)
        }
    }

    /// llama.cpp's log file, or `None` when logging is off.
    pub fn log_file(&self, configured: &str) -> Option<PathBuf> {
        match configured {
            "off" => None,
            "" => Some(self.data_dir.join("moat.log")),
            p => Some(expand_home(p)),
        }
    }
}

/// `p` with a leading `~/` replaced by the home directory.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = directories::BaseDirs::new() {
            return home.home_dir().join(rest);
        }
    }
    PathBuf::from(p)
}
