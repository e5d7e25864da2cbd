//! rustyline's side of the REPL: completion of commands and their arguments, multi-line input
//! (a `"""` fence, or a trailing backslash), and keys typed while no prompt is shown.

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

/// Keys typed while no prompt is shown (the model loading, a reply streaming) wait unseen for the
/// next prompt.
///
/// A terminal in its ordinary (canonical) mode echoes every key as it arrives, so text typed ahead
/// would be drawn into the middle of a streaming reply. While this guard lives, standard input has
/// echo, canonical line editing and `IEXTEN` off; `ISIG` stays on, so Ctrl+C still stops a reply
/// (the SIGINT handler in [`crate::interrupt`]). `NOFLSH` is set, so that Ctrl+C neither throws away
/// what was typed ahead nor cuts the reply's output mid escape sequence. rustyline takes the held
/// mode as the one to return to after each prompt, so the keys stay held between prompts without
/// a window in which they would echo. Dropping the guard, or the process exiting (a second Ctrl+C
/// exits at once with 130), puts back the mode the terminal had.
///
/// On anything but a Unix terminal it does nothing.
pub struct TypeAhead {
    #[cfg(unix)]
    held: bool,
}

impl TypeAhead {
    /// Holds typed keys on standard input, if it is a terminal.
    pub fn hold() -> TypeAhead {
        #[cfg(unix)]
        {
            use std::io::IsTerminal;
            let held = std::io::stdin().is_terminal() && held_mode::hold(libc::STDIN_FILENO);
            TypeAhead { held }
        }
        #[cfg(not(unix))]
        TypeAhead {}
    }
}

impl Drop for TypeAhead {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.held {
            held_mode::restore();
        }
    }
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

/// Puts back the terminal mode a [`TypeAhead`] changed, for exits that skip destructors and
/// `atexit` (the second Ctrl+C). Nothing happens when no mode is held.
pub fn restore_terminal() {
    #[cfg(unix)]
    held_mode::restore();
}

#[cfg(unix)]
mod held_mode {
    use std::sync::{Mutex, Once};

    /// The terminal and the mode it had before [`hold`], for [`restore`] and the exit hook.
    static ORIGINAL: Mutex<Option<(libc::c_int, libc::termios)>> = Mutex::new(None);

    /// Switches `fd` to the held mode; false when it is not a terminal or is already held.
    pub fn hold(fd: libc::c_int) -> bool {
        let mut original = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: tcgetattr fills the termios it is given, or fails and leaves it zeroed.
        if unsafe { libc::tcgetattr(fd, original.as_mut_ptr()) } != 0 {
            return false;
        }
        // SAFETY: tcgetattr succeeded, so the value is initialised.
        let original = unsafe { original.assume_init() };
        {
            let Ok(mut saved) = ORIGINAL.lock() else { return false };
            if saved.is_some() {
                return false;
            }
            *saved = Some((fd, original));
        }
        static AT_EXIT: Once = Once::new();
        // SAFETY: registers a plain function with no captured state.
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(restore_at_exit);
        });
        let mut held = original;
        held.c_lflag &= !(libc::ECHO | libc::ICANON | libc::IEXTEN);
        held.c_lflag |= libc::NOFLSH;
        // Enter stays CR, as in raw mode: translated to LF it would read as Ctrl+J in the chat
        // (a new line in the message, not "send") when it was typed before the screen started.
        held.c_iflag &= !libc::ICRNL;
        // Without canonical mode a read would return per VMIN/VTIME; keep it one byte, blocking,
        // in case anything reads before rustyline sets its own.
        held.c_cc[libc::VMIN] = 1;
        held.c_cc[libc::VTIME] = 0;
        // SAFETY: `held` is a valid termios for `fd`; TCSANOW keeps the queued input.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &held) } != 0 {
            if let Ok(mut saved) = ORIGINAL.lock() {
                *saved = None;
            }
            return false;
        }
        true
    }

    /// Puts back the mode saved by [`hold`].
    pub fn restore() {
        let original = match ORIGINAL.lock() {
            Ok(mut saved) => saved.take(),
            Err(_) => None,
        };
        if let Some((fd, mode)) = original {
            // SAFETY: `mode` came from tcgetattr on this fd.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &mode) };
        }
    }

    /// `exit` (a second Ctrl+C, a fatal error) skips destructors; this leaves the terminal usable.
    extern "C" fn restore_at_exit() {
        // try_lock: another thread may hold the lock at the moment of exit; never block here.
        let original = match ORIGINAL.try_lock() {
            Ok(mut saved) => saved.take(),
            Err(_) => None,
        };
        if let Some((fd, mode)) = original {
            // SAFETY: as in `restore`.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &mode) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn mode(fd: libc::c_int) -> libc::termios {
            let mut t = std::mem::MaybeUninit::<libc::termios>::zeroed();
            assert_eq!(unsafe { libc::tcgetattr(fd, t.as_mut_ptr()) }, 0);
            unsafe { t.assume_init() }
        }

        #[test]
        fn holding_turns_echo_off_keeps_signals_and_restores_the_mode() {
            let (mut primary, mut secondary) = (0, 0);
            let opened = unsafe {
                libc::openpty(&mut primary, &mut secondary, std::ptr::null_mut(), std::ptr::null(), std::ptr::null())
            };
            assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
            let before = mode(secondary);
            assert_ne!(before.c_lflag & libc::ECHO, 0, "a new pty echoes");

            assert!(hold(secondary));
            assert!(!hold(secondary), "a second hold is refused, so the first mode is the one kept");
            let held = mode(secondary);
            assert_eq!(held.c_lflag & (libc::ECHO | libc::ICANON | libc::IEXTEN), 0);
            assert_ne!(held.c_lflag & libc::ISIG, 0, "Ctrl+C still signals");
            assert_ne!(held.c_lflag & libc::NOFLSH, 0, "Ctrl+C keeps what was typed");
            assert_eq!(held.c_oflag, before.c_oflag, "output is untouched");

            // Typed-ahead bytes stay queued through the switch back.
            let typed = b"typed ahead\r";
            assert_eq!(unsafe { libc::write(primary, typed.as_ptr().cast(), typed.len()) }, typed.len() as isize);
            // The pty hands written bytes to the line discipline asynchronously: wait for them.
            let mut ready = libc::pollfd { fd: secondary, events: libc::POLLIN, revents: 0 };
            assert_eq!(unsafe { libc::poll(&mut ready, 1, 10_000) }, 1, "the typed bytes arrive");
            restore();
            let after = mode(secondary);
            assert_eq!(after.c_lflag, before.c_lflag);
            assert_eq!(after.c_iflag, before.c_iflag);
            let mut queued: libc::c_int = 0;
            assert_eq!(unsafe { libc::ioctl(secondary, libc::FIONREAD, &mut queued) }, 0);
            assert!(queued > 0, "the typed-ahead input is still there");
            unsafe {
                libc::close(primary);
                libc::close(secondary);
            }
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
