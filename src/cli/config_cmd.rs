//! `moat config path|show`.

use super::args::{ConfigCommand, ModelArgs};
use super::Failure;
use crate::config::{Config, DEFAULT_TOML};

pub fn run(flags: &ModelArgs, cmd: ConfigCommand) -> Result<i32, Failure> {
    match cmd {
        ConfigCommand::Show { defaults: true } => {
            print!("{DEFAULT_TOML}");
            Ok(0)
        }
        ConfigCommand::Show { defaults: false } => {
            let mut loaded = Config::load()?;
            flags.apply(&mut loaded.config);
            loaded.config.validate()?;
            match &loaded.user_file {
                Some(p) => sayln!("# defaults < {}", p.display()),
                None => sayln!("# defaults (no config file at {})", loaded.paths.config_file.display()),
            }
            for v in &loaded.env_overrides {
                sayln!("# < environment: {v}");
            }
            if flags != &ModelArgs::default() {
                sayln!("# < command-line flags");
            }
            print!("{}", loaded.config.to_toml());
            Ok(0)
        }
        ConfigCommand::Path => {
            let loaded = Config::load()?;
            let p = &loaded.paths;
            let exists = if p.config_file.exists() { "" } else { " (not created yet)" };
            sayln!("config  {}{exists}", p.config_file.display());
            sayln!("data    {}", p.data_dir.display());
            sayln!("models  {}", p.models_dir(&loaded.config.models.dir).display());
            match p.log_file(&loaded.config.log.file) {
                Some(l) => sayln!("log     {}", l.display()),
                None => sayln!("log     off"),
            }
            Ok(0)
        }
    }
}
