fn main() {
    // A reader that goes away (`moat … | head`) ends moat quietly, as it ends `cat`: exit by
    // SIGPIPE (141 in a shell) instead of a "Broken pipe" panic from `println!`. Rust ignores the
    // signal by default; sockets are unaffected (std sends with MSG_NOSIGNAL / SO_NOSIGPIPE).
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(moat::cli::main());
}
