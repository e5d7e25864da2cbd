//! rustyline's side of the REPL: completion of commands and their arguments, multi-line input
//! (a `"""` fence, or a trailing backslash), and the signal handlers rustyline would take.

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

pub struct ReplHelper {
    files: FilenameCompleter,
    /// Registry names and aliases, plus .gguf files in the store.
    pub models: Vec<String>,
    pub sessions: Box<dyn Fn() -> Vec<String>>,
}

impl ReplHelper {
    pub fn new(models: Vec<String>, sessions: Box<dyn Fn() -> Vec<String>>) -> Self {
        ReplHelper { files: FilenameCompleter::new(), models, sessions }
    }
}

fn pairs(start_of: &str, options: impl IntoIterator<Item = String>) -> Vec<Pair> {
    options
        .into_iter()
        .filter(|o| o.starts_with(start_of))
        .map(|o| Pair { display: o.clone(), replacement: format!("{o} ") })
        .collect()
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        if !head.starts_with('/') || head.contains('\n') {
            return Ok((pos, Vec::new()));
        }
        let Some((cmd, arg)) = head[1..].split_once(' ') else {
            let names = crate::commands::COMMANDS.iter().map(|c| c.0.to_string());
            return Ok((1, pairs(&head[1..], names)));
        };
        let start = pos - arg.len();
        match cmd {
            "set" if !arg.contains(' ') => {
                Ok((start, pairs(arg, crate::commands::Setting::NAMES.iter().map(|s| s.to_string()))))
            }
            "stats" => Ok((start, pairs(arg, ["on".to_string(), "off".to_string()]))),
            "load" => Ok((start, pairs(arg, (self.sessions)()))),
            "model" if arg.starts_with(['.', '/', '~']) => self.files.complete(line, pos, ctx),
            "model" => Ok((start, pairs(arg, self.models.clone()))),
            _ => Ok((pos, Vec::new())),
        }
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if is_complete(ctx.input()) { ValidationResult::Valid(None) } else { ValidationResult::Incomplete })
    }
}

impl Helper for ReplHelper {}

/// A `"""` block is complete once closed; a line ending in `\` continues on the next.
pub fn is_complete(input: &str) -> bool {
    let t = input.trim_start();
    if let Some(body) = t.strip_prefix("\"\"\"") {
        return body.trim_end().ends_with("\"\"\"") && body.trim_end().len() >= 3;
    }
    !input.ends_with('\\')
}

/// The message a complete input stands for: fences removed, continuation backslashes dropped.
pub fn message(input: &str) -> String {
    let t = input.trim();
    if let Some(body) = t.strip_prefix("\"\"\"").and_then(|b| b.strip_suffix("\"\"\"")) {
        return body.trim_matches('\n').to_string();
    }
    input.lines().map(|l| l.strip_suffix('\\').unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

/// Which signal handlers rustyline has, and when.
///
/// rustyline is built without its `signal-hook` feature: with it, it waits for the terminal in
/// `select()` while keys it has already read sit in its buffer, so a line that arrives at once
/// shows one character and stalls. Without it, rustyline installs SIGINT and SIGWINCH handlers of
/// its own when the editor is made and keeps them until the editor is dropped. Its SIGINT handler
/// would take Ctrl+C from [`crate::interrupt`], so Ctrl+C would no longer stop a reply; its SIGWINCH
/// handler, installed without `SA_RESTART`, would let a window resize interrupt system calls
/// anywhere in the process while a reply streams. So the process's own handlers are put back as
/// soon as the editor is made, and rustyline's SIGWINCH handler (it redraws the line on a resize)
/// is in place only while a prompt is being read. rustyline never needs its SIGINT handler: in its
/// raw mode Ctrl+C is a key, not a signal.
pub struct EditorSignals {
    #[cfg(unix)]
    outside: libc::sigaction,
    #[cfg(unix)]
    reading: libc::sigaction,
}

impl EditorSignals {
    /// Makes the editor with `make`, then puts the process's own handlers back.
    pub fn around<R>(make: impl FnOnce() -> R) -> (R, EditorSignals) {
        #[cfg(unix)]
        {
            let interrupt = signals::action(libc::SIGINT);
            let outside = signals::action(libc::SIGWINCH);
            let made = make();
            let reading = signals::action(libc::SIGWINCH);
            signals::set(libc::SIGINT, &interrupt);
            signals::set(libc::SIGWINCH, &outside);
            (made, EditorSignals { outside, reading })
        }
        #[cfg(not(unix))]
        (make(), EditorSignals {})
    }

    /// Runs `read` (one `readline`) with rustyline's SIGWINCH handler in place.
    pub fn reading<T>(&self, read: impl FnOnce() -> T) -> T {
        #[cfg(unix)]
        signals::set(libc::SIGWINCH, &self.reading);
        let result = read();
        #[cfg(unix)]
        signals::set(libc::SIGWINCH, &self.outside);
        result
    }
}

#[cfg(unix)]
mod signals {
    /// The current disposition of `signal`.
    pub fn action(signal: libc::c_int) -> libc::sigaction {
        let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a null new action only reads the current one into `current`.
        unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
        // SAFETY: zeroed is a valid sigaction (SIG_DFL), and sigaction filled it in otherwise.
        unsafe { current.assume_init() }
    }

    pub fn set(signal: libc::c_int, action: &libc::sigaction) {
        // SAFETY: `action` was read by `action()` for a handler that stays valid: the process's
        // own, or rustyline's, which lives as long as the editor that `EditorSignals` belongs to.
        unsafe { libc::sigaction(signal, action, std::ptr::null_mut()) };
    }

    #[cfg(test)]
    mod tests {
        use super::super::EditorSignals;
        use super::*;

        extern "C" fn editor_handler(_: libc::c_int) {}

        fn handler(signal: libc::c_int) -> libc::sighandler_t {
            action(signal).sa_sigaction
        }

        #[test]
        fn the_editor_keeps_its_handlers_only_while_reading() {
            let (interrupt, winch) = (action(libc::SIGINT), action(libc::SIGWINCH));
            let ours = editor_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
            // As rustyline does when the editor is made.
            let ((), signals) = EditorSignals::around(|| {
                let mut taken = action(libc::SIGWINCH);
                taken.sa_sigaction = ours;
                set(libc::SIGINT, &taken);
                set(libc::SIGWINCH, &taken);
            });
            assert_eq!(handler(libc::SIGINT), interrupt.sa_sigaction, "Ctrl+C goes to the process's handler");
            assert_eq!(handler(libc::SIGWINCH), winch.sa_sigaction);
            let inside = signals.reading(|| (handler(libc::SIGINT), handler(libc::SIGWINCH)));
            assert_eq!(inside, (interrupt.sa_sigaction, ours), "a resize reaches the editor while it reads");
            assert_eq!(handler(libc::SIGWINCH), winch.sa_sigaction);
            set(libc::SIGINT, &interrupt);
            set(libc::SIGWINCH, &winch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_and_backslashes_make_multiline_messages() {
        assert!(!is_complete("\"\"\"\nfirst line"));
        assert!(is_complete("\"\"\"\nfirst\nsecond\n\"\"\""));
        assert_eq!(message("\"\"\"\nfirst\nsecond\n\"\"\""), "first\nsecond");
        assert!(!is_complete("one \\"));
        assert_eq!(message("one \\\ntwo"), "one \ntwo");
        assert!(is_complete("plain"));
        assert!(!is_complete("\"\"\""));
    }
}
