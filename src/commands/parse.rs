use crate::sampling::Knob;
pub use crate::sampling::Setting;

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq)]
pub enum SlashCommand {
    Help,
    Clear,
    System(String),
    /// Switch to this model (a name or path; on a server, one of its ids); `None` lists them.
    Model(Option<String>),
    Set(Setting),
    Show,
    Regen,
    /// Rewrite the last message: put it in the input line, or (with text) replace it and send.
    Edit(Option<String>),
    Copy(Option<usize>),
    Save(String),
    Load(String),
    Sessions,
    /// List the branches of the current session; `Some(n)` switches to branch `n` (1-based).
    Branches(Option<usize>),
    /// Full-text search over every saved conversation (the words, as typed).
    Search(String),
    /// Open hit `n` (1-based) of the last `/search`.
    Open(usize),
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

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command /{0}{hint}; /help lists them", hint = crate::suggest::hint(.0, super::COMMANDS.iter().map(|c| c.0.trim_start_matches('/'))))]
    Unknown(String),
    #[error("/{name} needs {what}; e.g. {example}")]
    Missing { name: &'static str, what: &'static str, example: &'static str },
    #[error("{0}")]
    Invalid(String),
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
    // 1-based numbers as lists show them.
    let number = |n: &str| n.parse::<usize>().ok().filter(|n| *n > 0);
    let cmd = match name {
        "help" | "?" => Ok(SlashCommand::Help),
        "clear" | "new" => Ok(SlashCommand::Clear),
        "system" => Ok(SlashCommand::System(arg.to_string())),
        "model" => Ok(SlashCommand::Model((!arg.is_empty()).then(|| arg.to_string()))),
        "set" => {
            let (key, value) = arg.split_once(char::is_whitespace).map_or((arg, ""), |(k, v)| (k, v.trim()));
            // A list (`/set stop`) may be set to no words at all: that clears it.
            if key.is_empty() || (value.is_empty() && !Knob::find(key).is_some_and(|k| k.list)) {
                Err(CommandError::Missing { name: "set", what: "a setting and a value", example: "/set temp 0.2" })
            } else {
                Setting::parse(key, value).map(SlashCommand::Set).map_err(CommandError::Invalid)
            }
        }
        "show" => Ok(SlashCommand::Show),
        "regen" | "retry" => Ok(SlashCommand::Regen),
        "edit" => Ok(SlashCommand::Edit((!arg.is_empty()).then(|| arg.to_string()))),
        "copy" => match arg {
            "" => Ok(SlashCommand::Copy(None)),
            n => number(n)
                .map(|n| SlashCommand::Copy(Some(n)))
                .ok_or_else(|| CommandError::Invalid(format!("/copy {n}: expected a code block number like 1"))),
        },
        "save" => need("save", "a name", "/save pricing-notes").map(SlashCommand::Save),
        "load" => need("load", "a name", "/load pricing-notes").map(SlashCommand::Load),
        "sessions" => Ok(SlashCommand::Sessions),
        "branches" | "branch" => match arg {
            "" => Ok(SlashCommand::Branches(None)),
            n => number(n)
                .map(|n| SlashCommand::Branches(Some(n)))
                .ok_or_else(|| CommandError::Invalid(format!("/branches {n}: expected a branch number like 1"))),
        },
        "search" => need("search", "words to look for", "/search pricing 定价").map(SlashCommand::Search),
        "open" => match arg {
            "" => Err(CommandError::Missing { name: "open", what: "a hit number from /search", example: "/open 1" }),
            n => number(n)
                .map(SlashCommand::Open)
                .ok_or_else(|| CommandError::Invalid(format!("/open {n}: expected a hit number from /search like 1"))),
        },
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
