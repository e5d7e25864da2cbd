//! Driving the real binary in a terminal, as a person would: tmux send-keys and capture-pane.

use std::process::Command;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(tag: &str) -> Tmux {
        Tmux { socket: format!("moat-{tag}-{}", std::process::id()) }
    }

    pub fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs (apt-get install tmux)")
    }

    pub fn start(&self, session: &str, shell: &str) {
        let o = self.cmd(&["new-session", "-d", "-s", session, "-x", "100", "-y", "32", shell]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    pub fn keys(&self, session: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", session];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    pub fn type_line(&self, session: &str, text: &str) {
        assert!(self.cmd(&["send-keys", "-t", session, "-l", text]).status.success());
        std::thread::sleep(Duration::from_millis(200));
        self.keys(session, &["Enter"]);
    }

    pub fn screen(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `ok`, failing with the screen after `secs`.
    pub fn wait(&self, session: &str, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen(session);
            if ok(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(secs), "timed out waiting for {what}; screen:\n{s}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}
