//! `moat repl` with the real default model: a scripted conversation through piped stdin, resuming
//! it in a new process, and the interactive prompt in tmux (Ctrl+C mid-reply, history recall).

use crate::common::tmux::Tmux;
use crate::common::{repl, stderr, stdout, Sandbox};

#[test]
fn a_scripted_conversation_with_commands_then_resume() {
    let s = Sandbox::new();
    let script = "What is the capital of France?\n\
                  /set max_tokens 24\n\
                  /stats\n\
                  \"\"\"\nNow name\ntwo fruits.\n\"\"\"\n\
                  /save fruit-chat\n";
    let o = repl(&s, &["--temp", "0", "-n", "64"], script);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Paris"), "{out}");
    assert!(out.contains("max_tokens = 24"), "{out}");
    assert!(out.contains("last reply:") && out.contains("generated"), "{out}");
    assert!(out.contains("saved as fruit-chat"), "{out}");
    assert!(!out.contains('\x1b'), "no colour when stdout is a pipe: {out:?}");

    let saved = moat::chat::store::SessionStore::open(&s.path("data")).unwrap().load("fruit-chat").unwrap();
    assert_eq!(saved.messages.len(), 4, "{saved:?}");
    assert_eq!(saved.messages[2].content, "Now name\ntwo fruits.");
    assert_eq!(saved.sampling.max_tokens, 24);

    let o = repl(&s, &["--resume"], "/show\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resumed session fruit-chat (4 messages)"), "{}", stderr(&o));
    assert!(stdout(&o).contains("session: fruit-chat (4 messages)"), "{}", stdout(&o));
}

#[test]
fn a_bad_command_is_reported_and_the_run_fails_at_the_end() {
    let s = Sandbox::new();
    let o = repl(&s, &["--no-save"], "/frobnicate\n/set temp hot\n/show\n");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown command /frobnicate; /help lists them"), "{err}");
    assert!(err.contains("/set temp hot: expected a number"), "{err}");
    assert!(stdout(&o).contains("temp 0.7"), "the script went on: {}", stdout(&o));
}

#[test]
fn an_unclosed_block_and_bad_bytes_are_errors() {
    let s = Sandbox::new();
    let o = repl(&s, &["--no-save"], "\"\"\"\nnever closed\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("\"\"\" block"), "{}", stderr(&o));
    let o = repl(&s, &["--no-save"], b"caf\xe9\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not valid UTF-8"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_stops_a_reply_and_history_recalls_it() {
    let s = Sandbox::new();
    let tmux = Tmux::new("repl");
    let moat = env!("CARGO_BIN_EXE_moat");
    tmux.start("r", &format!("{} {moat} repl --temp 0.8 --seed 5 -n 1500; echo MOAT-EXIT=$?; sleep 60", s.shell_env()));
    tmux.wait("r", 60, "the prompt", |x| x.contains("smollm2-135m 0% ›"));
    tmux.type_line("r", "Write a very long story about a lighthouse keeper and the sea.");
    tmux.wait("r", 60, "the reply to stream", |x| x.lines().filter(|l| !l.trim().is_empty()).count() > 4);
    tmux.keys("r", &["C-c"]);
    tmux.wait("r", 30, "the reply to stop", |x| x.contains("[stopped]") && x.trim_end().ends_with('›'));
    tmux.keys("r", &["Up"]);
    tmux.wait("r", 10, "history recall", |x| x.trim_end().ends_with("keeper and the sea."));
    tmux.keys("r", &["C-c"]);
    // as a person would: Ctrl+D once the cleared prompt is back. Sent at once, on a loaded machine
    // it could arrive between two line reads, while the terminal is not in raw mode, and be lost
    tmux.wait("r", 10, "the line to clear", |x| x.trim_end().ends_with('›'));
    tmux.keys("r", &["C-d"]);
    let end = tmux.wait("r", 20, "moat to exit", |x| x.contains("MOAT-EXIT="));
    assert!(end.contains("MOAT-EXIT=0"), "{end}");
}

#[test]
fn classifier_mode_classifies_each_line_then_chat_returns() {
    let s = Sandbox::new();
    let script = "/classify\n\
                  \"\"\"\nI love this phone, the battery life is fantastic.\nIt broke after one day; a complete waste of money.\n\"\"\"\n\
                  /chat\n";
    let o = repl(&s, &["--temp", "0", "-n", "16"], script);
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("classifier mode (positive, negative)"), "{out}");
    let labels: Vec<&str> =
        out.lines().filter_map(|l| l.split("  ").next()).filter(|w| *w == "positive" || *w == "negative").collect();
    assert_eq!(labels, ["positive", "negative"], "{out}");
    assert!(out.contains("▶ positive") && out.contains("tally: positive 1 · negative 1 (2 classified)"), "{out}");
    assert!(out.contains("back to chat"), "{out}");
}
