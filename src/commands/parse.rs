use crate::config::SamplingConfig;

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq)]
pub enum SlashCommand {
    Help,
    Clear,
    System(String),
    Model(String),
    Set(Setting),
    Show,
    Regen,
    Edit,
    Copy(Option<usize>),
    Save(String),
    Load(String),
    Sessions,
    /// Show the last reply's figures; `on`/`off` turns the per-reply line on or off (REPL).
    Stats(Option<bool>),
    /// List the prompt library (optionally one tag).
    Prompts(Option<String>),
    /// Run a library prompt (`/prompt`) or script (`/run`) on the next message, or with `--last`
    /// on the last reply. The raw argument text is parsed by the chat layer.
    Prompt(String),
    Run(String),
    /// Stop routing messages through a prompt.
    PromptOff,
    /// Classifier mode: every line is classified (labels comma-separated; default positive,negative).
    Classify(Option<Vec<String>>),
    /// Back to chatting from classifier mode.
    Chat,
    Quit,
}

/// A sampling setting with a value that has already been range-checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    Temperature(f32),
    TopK(i32),
    TopP(f32),
    MinP(f32),
    RepeatPenalty(f32),
    Seed(i64),
    MaxTokens(u32),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command /{0}{hint}; /help lists them", hint = crate::suggest::hint(.0, super::COMMANDS.iter().map(|c| c.0.trim_start_matches('/'))))]
    Unknown(String),
    #[error("/{name} needs {what}; e.g. {example}")]
    Missing { name: &'static str, what: &'static str, example: &'static str },
    #[error("{0}")]
    Invalid(String),
}

impl Setting {
    pub const NAMES: &'static [&'static str] =
        &["temp", "top_k", "top_p", "min_p", "repeat_penalty", "seed", "max_tokens"];

    pub fn parse(key: &str, value: &str) -> Result<Setting, CommandError> {
        let bad = |why: &str| CommandError::Invalid(format!("/set {key} {value}: {why}"));
        let float = || value.parse::<f32>().ok().filter(|v| v.is_finite());
        let s = match key {
            "temp" | "temperature" => {
                Setting::Temperature(float().filter(|v| *v >= 0.0).ok_or_else(|| bad("expected a number ≥ 0"))?)
            }
            "top_k" => Setting::TopK(value.parse().map_err(|_| bad("expected a whole number (0 = off)"))?),
            "top_p" => Setting::TopP(float().filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| bad("expected 0..1"))?),
            "min_p" => Setting::MinP(float().filter(|v| (0.0..=1.0).contains(v)).ok_or_else(|| bad("expected 0..1"))?),
            "repeat_penalty" => Setting::RepeatPenalty(
                float().filter(|v| *v > 0.0).ok_or_else(|| bad("expected a number > 0 (1 = off)"))?,
            ),
            "seed" => Setting::Seed(
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|v| (-1..=u32::MAX as i64).contains(v))
                    .ok_or_else(|| bad("expected -1 (random) or 0..4294967295"))?,
            ),
            "max_tokens" | "n" => Setting::MaxTokens(
                value.parse().ok().filter(|v| *v > 0).ok_or_else(|| bad("expected a whole number ≥ 1"))?,
            ),
            _ => {
                return Err(CommandError::Invalid(format!(
                    "/set: unknown setting {key:?}{}; one of {}",
                    crate::suggest::hint(key, Setting::NAMES.iter().copied()),
                    Setting::NAMES.join(", ")
                )))
            }
        };
        Ok(s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Setting::Temperature(_) => "temp",
            Setting::TopK(_) => "top_k",
            Setting::TopP(_) => "top_p",
            Setting::MinP(_) => "min_p",
            Setting::RepeatPenalty(_) => "repeat_penalty",
            Setting::Seed(_) => "seed",
            Setting::MaxTokens(_) => "max_tokens",
        }
    }

    pub fn value(self) -> String {
        match self {
            Setting::Temperature(v) | Setting::TopP(v) | Setting::MinP(v) | Setting::RepeatPenalty(v) => v.to_string(),
            Setting::TopK(v) => v.to_string(),
            Setting::Seed(v) => v.to_string(),
            Setting::MaxTokens(v) => v.to_string(),
        }
    }

    pub fn apply(self, s: &mut SamplingConfig) {
        match self {
            Setting::Temperature(v) => s.temperature = v,
            Setting::TopK(v) => s.top_k = v,
            Setting::TopP(v) => s.top_p = v,
            Setting::MinP(v) => s.min_p = v,
            Setting::RepeatPenalty(v) => s.repeat_penalty = v,
            Setting::Seed(v) => s.seed = v,
            Setting::MaxTokens(v) => s.max_tokens = v,
        }
    }
}

/// Parses a line that starts with `/`. Returns `None` for text that is not a command (including
/// `//...`, which sends a message starting with a single slash).
pub fn parse(line: &str) -> Option<Result<SlashCommand, CommandError>> {
    let body = line.trim_end().strip_prefix('/')?;
    if body.starts_with('/') || body.is_empty() {
        return None;
    }
    let (name, arg) = match body.find(char::is_whitespace) {
        Some(i) => (&body[..i], body[i..].trim()),
        None => (body, ""),
    };
    let need = |name: &'static str, what: &'static str, example: &'static str| {
        if arg.is_empty() {
            Err(CommandError::Missing { name, what, example })
        } else {
            Ok(arg.to_string())
        }
    };
    let cmd = match name {
        "help" | "?" => Ok(SlashCommand::Help),
        "clear" | "new" => Ok(SlashCommand::Clear),
        "system" => Ok(SlashCommand::System(arg.to_string())),
        "model" => need("model", "a model name or path", "/model gemma3-270m").map(SlashCommand::Model),
        "set" => {
            let mut it = arg.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(k), Some(v), None) => Setting::parse(k, v).map(SlashCommand::Set),
                _ => {
                    Err(CommandError::Missing { name: "set", what: "a setting and a value", example: "/set temp 0.2" })
                }
            }
        }
        "show" => Ok(SlashCommand::Show),
        "regen" | "retry" => Ok(SlashCommand::Regen),
        "edit" => Ok(SlashCommand::Edit),
        "copy" => match arg {
            "" => Ok(SlashCommand::Copy(None)),
            n => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| SlashCommand::Copy(Some(n)))
                .ok_or_else(|| CommandError::Invalid(format!("/copy {n}: expected a code block number like 1"))),
        },
        "save" => need("save", "a name", "/save pricing-notes").map(SlashCommand::Save),
        "load" => need("load", "a name", "/load pricing-notes").map(SlashCommand::Load),
        "sessions" => Ok(SlashCommand::Sessions),
        "stats" => match arg {
            "" => Ok(SlashCommand::Stats(None)),
            "on" => Ok(SlashCommand::Stats(Some(true))),
            "off" => Ok(SlashCommand::Stats(Some(false))),
            other => Err(CommandError::Invalid(format!("/stats {other}: expected on or off (or nothing)"))),
        },
        "prompts" => Ok(SlashCommand::Prompts((!arg.is_empty()).then(|| arg.to_string()))),
        "prompt" if arg == "off" => Ok(SlashCommand::PromptOff),
        "prompt" => need("prompt", "a prompt id", "/prompt market/swot subject=Acme").map(SlashCommand::Prompt),
        "run" => need("run", "a script id", "/run scripts/competitive-brief company=Acme").map(SlashCommand::Run),
        "classify" => match arg {
            "" => Ok(SlashCommand::Classify(None)),
            list => crate::classify::parse_labels(list)
                .map(|l| SlashCommand::Classify(Some(l)))
                .map_err(|e| CommandError::Invalid(format!("/classify: {e}"))),
        },
        "chat" => Ok(SlashCommand::Chat),
        "quit" | "exit" | "q" => Ok(SlashCommand::Quit),
        other => Err(CommandError::Unknown(other.to_string())),
    };
    Some(cmd)
}
