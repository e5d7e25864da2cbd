//! `moat repl` on a real terminal (tmux) with input that arrives faster than the line editor reads
//! it: a whole line and its Enter in one `send-keys`, two lines at once, keys typed while the model
//! loads, keys typed while a reply streams. None of it may stall waiting for another key, lose a
//! line, or echo into the reply. Skipped, with a message, where tmux is not installed.

use crate::common::tmux::Tmux;
use crate::common::Sandbox;
use std::process::Command;

const PROMPT_END: char = '›';

fn tmux_installed() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipping: tmux is not installed (apt-get install tmux); the REPL's terminal tests need it");
    }
    found
}

/// `moat repl ARGS` in a fresh tmux session "r" with its own config and data dir.
fn start(tag: &str, s: &Sandbox, args: &str) -> Tmux {
    let tmux = Tmux::new(tag);
    let moat = env!("CARGO_BIN_EXE_moat");
    tmux.start("r", &format!("{} {moat} repl --no-save {args}; echo MOAT-EXIT=$?; sleep 60", s.shell_env()));
    tmux
}

/// How many replies finished: each ends with the figures line.
fn replies(screen: &str) -> usize {
    screen.lines().filter(|l| l.contains("tokens · ttft")).count()
}

fn last_line(screen: &str) -> &str {
    screen.trim_end().lines().last().unwrap_or("")
}

fn at_prompt(screen: &str) -> bool {
    screen.trim_end().ends_with(PROMPT_END)
}

fn wait_for_prompt(tmux: &Tmux) {
    tmux.wait("r", 60, "the prompt", |x| x.contains("smollm2-135m 0% ›"));
}

/// Everything the pane has shown, scrollback included.
fn history(tmux: &Tmux) -> String {
    String::from_utf8_lossy(&tmux.cmd(&["capture-pane", "-p", "-S", "-", "-t", "r"]).stdout).into_owned()
}

fn quit(tmux: &Tmux) {
    tmux.keys("r", &["C-d"]);
    let end = tmux.wait("r", 20, "moat to exit", |x| x.contains("MOAT-EXIT="));
    assert!(end.contains("MOAT-EXIT=0"), "{end}");
}

#[test]
fn a_line_and_enter_sent_at_once_are_answered_with_no_further_key() {
    if !tmux_installed() {
        return;
    }
    let s = Sandbox::new();
    let tmux = start("at-once", &s, "--temp 0 -n 16");
    wait_for_prompt(&tmux);
    // One send-keys call: the text and Enter reach the terminal together, as from a slow SSH link.
    tmux.keys("r", &["Write a haiku about rain.", "Enter"]);
    let screen = tmux.wait("r", 60, "the reply, with no further key", |x| replies(x) == 1 && at_prompt(x));
    assert!(screen.contains("› Write a haiku about rain."), "{screen}");
    quit(&tmux);
}

#[test]
fn two_lines_sent_at_once_are_two_turns() {
    if !tmux_installed() {
        return;
    }
    let s = Sandbox::new();
    let tmux = start("two-lines", &s, "--temp 0 -n 16");
    wait_for_prompt(&tmux);
    tmux.keys("r", &["Name a colour.", "Enter", "Name a fruit.", "Enter"]);
    let screen = tmux.wait("r", 90, "two replies", |x| replies(x) == 2 && at_prompt(x));
    assert!(screen.contains("› Name a colour."), "{screen}");
    assert!(screen.contains("› Name a fruit."), "the second line was kept for the second prompt: {screen}");
    quit(&tmux);
}

#[test]
fn a_line_typed_while_the_model_loads_is_answered() {
    if !tmux_installed() {
        return;
    }
    let s = Sandbox::new();
    let tmux = start("early", &s, "--temp 0 -n 16");
    // No waiting for the prompt: the keys arrive while moat starts and loads the model.
    tmux.keys("r", &["Write a haiku about rain.", "Enter"]);
    let screen = tmux.wait("r", 90, "the reply", |x| replies(x) == 1 && at_prompt(x));
    assert!(screen.contains("› Write a haiku about rain."), "{screen}");
    quit(&tmux);
}

#[test]
fn keys_typed_during_a_reply_wait_unseen_for_the_next_prompt() {
    if !tmux_installed() {
        return;
    }
    let s = Sandbox::new();
    let tmux = start("during", &s, "--temp 0.8 --seed 5 -n 1500");
    wait_for_prompt(&tmux);
    tmux.keys("r", &["Write a very long story about a lighthouse keeper and the sea.", "Enter"]);
    tmux.wait("r", 60, "the reply to stream", |x| {
        replies(x) == 0 && x.lines().filter(|l| !l.trim().is_empty()).count() > 4
    });
    tmux.keys("r", &["-l", "Name a fruit."]);
    // Ctrl+C still stops the reply, and does not throw away what was typed ahead.
    tmux.keys("r", &["C-c"]);
    let screen = tmux.wait("r", 30, "the reply to stop and the typed keys to fill the prompt", |x| {
        x.contains("[stopped]") && last_line(x).ends_with("› Name a fruit.")
    });
    let all = history(&tmux);
    assert_eq!(all.matches("Name a fruit.").count(), 1, "the keys were echoed into the reply:\n{all}");
    assert!(last_line(&screen).starts_with("smollm2-135m "), "{screen}");
    // They are the editor's line, not a leftover on the screen: Ctrl+U clears it.
    tmux.keys("r", &["C-u"]);
    tmux.wait("r", 10, "the line to clear", at_prompt);
    quit(&tmux);
}
