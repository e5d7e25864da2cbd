//! Holding keys typed ahead ([`TypeAhead`]) for the full-screen chat and the line REPL alike. A
//! leaf, so the second Ctrl+C ([`crate::interrupt`]) can put the terminal back through
//! [`restore_terminal`] without reaching into a front end.

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
