//! The slash-command layer shared by every interactive front end (full-screen chat, line REPL).
//! Parsing and help live here so that `/set temp 0.2` means the same thing everywhere; front ends
//! only decide how to show the outcome.

mod parse;

pub use parse::{parse, CommandError, Setting, SlashCommand};

/// Name, argument synopsis and one-line help of every command, in `/help` order.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "", "list the commands"),
    ("clear", "", "start a fresh conversation (keeps the system prompt)"),
    ("system", "TEXT", "set the system prompt (empty TEXT removes it)"),
    ("model", "[NAME|PATH]", "switch to another model (with --remote: a server's model id); alone: list them"),
    ("set", "KEY VALUE", crate::sampling::SET_NAMES),
    ("show", "", "current model, settings and session"),
    ("regen", "", "answer the last message again"),
    ("edit", "[TEXT]", "edit the last message and send it again; with TEXT: send TEXT in its place"),
    ("copy", "[N]", "copy the last reply, or its code block N (OSC 52)"),
    ("save", "NAME|FILE", "save the conversation under NAME, or to FILE (.json/.md, or a path)"),
    ("load", "NAME|FILE", "open a saved conversation, or a session file"),
    ("sessions", "", "list saved conversations"),
    (
        "branches",
        "[N]",
        "list this conversation's branches (/regen and /edit keep the old reply); N: switch to branch N",
    ),
    ("search", "WORDS", "search every saved conversation (newest 10 hits; CJK text too)"),
    ("open", "N", "open hit N of the last /search: its session, on the branch that holds it"),
    ("stats", "[on|off]", "token counts and speed of the last reply; on/off: after every reply"),
    ("prompts", "[TAG]", "list the prompt library"),
    (
        "prompt",
        "ID [k=v…] [--last|--file PATH]",
        "run the next message (or the last reply, or a file) through a library prompt; off: stop",
    ),
    (
        "run",
        "SCRIPT [k=v…] [--last|--file PATH]",
        "run a prompt script on the next message (or the last reply, or a file)",
    ),
    ("classify", "[LABELS]", "classifier mode: classify each line (labels a,b,c; default positive,negative)"),
    ("chat", "", "leave classifier mode"),
    ("quit", "", "leave (also /exit, Ctrl+D)"),
];

/// Commands whose names start with what was typed after the slash (for Tab completion).
pub fn complete(typed: &str) -> Vec<&'static str> {
    let Some(word) = typed.strip_prefix('/') else { return Vec::new() };
    if word.contains(char::is_whitespace) {
        let mut parts = word.splitn(2, char::is_whitespace);
        if parts.next() == Some("set") {
            let rest = parts.next().unwrap_or("").trim_start();
            if !rest.contains(char::is_whitespace) {
                return Setting::NAMES.iter().copied().filter(|n| n.starts_with(rest)).collect();
            }
        }
        return Vec::new();
    }
    COMMANDS.iter().map(|c| c.0).filter(|n| n.starts_with(word)).collect()
}

/// The `/help` text, one command per line.
pub fn help() -> String {
    let mut out = String::from("Commands (Tab completes):\n");
    for (name, args, what) in COMMANDS {
        let head = if args.is_empty() { format!("/{name}") } else { format!("/{name} {args}") };
        out.push_str(&format!("  {head:<22} {what}\n"));
    }
    out.push_str("Keys: Enter send · Alt+Enter/Ctrl+J newline · Esc stop reply · Up/Down history · Ctrl+R search · Ctrl+T show/fold reasoning · PgUp/PgDn scroll · Ctrl+D quit");
    out
}

#[cfg(test)]
mod tests;
