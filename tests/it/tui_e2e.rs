//! The full-screen chat driven as a person would, in tmux, with the real default model: ask, watch
//! the reply stream, stop one with Esc, save, quit, resume.

use crate::common;
use crate::common::tmux::Tmux;
use std::time::Duration;

#[test]
fn chat_stream_stop_save_quit_resume() {
    let sandbox = common::Sandbox::new();
    let moat = env!("CARGO_BIN_EXE_moat");
    let env = sandbox.shell_env();
    let tmux = Tmux::new("e2e");
    let s = "chat";
    tmux.start(s, &format!("{env} {moat} chat --temp 0 -n 200; echo MOAT-EXIT=$?; sleep 60"));
    tmux.wait(s, 90, "the model to load", |x| x.contains("loaded in"));

    tmux.type_line(s, "What is the capital of France?");
    let screen = tmux.wait(s, 90, "a finished reply", |x| {
        x.contains("▌assistant") && !x.contains("generating") && x.contains("tok/s")
    });
    assert!(screen.contains("What is the capital of France?"), "{screen}");
    assert!(screen.contains("Paris"), "{screen}");

    tmux.type_line(s, "Write a very long story about a dragon who learns to trade spices.");
    tmux.wait(s, 60, "the reply to start streaming", |x| {
        x.contains("generating") && x.matches("▌assistant").count() >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(s, &["Escape"]);
    tmux.wait(s, 30, "the reply to stop", |x| x.contains("stopped") && !x.contains("generating"));

    tmux.type_line(s, "/save e2e-test");
    tmux.wait(s, 10, "the save", |x| x.contains("saved as e2e-test"));
    tmux.type_line(s, "/quit");
    let end = tmux.wait(s, 20, "moat to exit", |x| x.contains("MOAT-EXIT="));
    assert!(end.contains("MOAT-EXIT=0"), "{end}");
    assert!(!end.contains("▌assistant"), "the alternate screen was left: {end}");

    let saved = moat::chat::store::SessionStore::open(&sandbox.path("data")).unwrap().load("e2e-test").unwrap();
    let saved = serde_json::to_string(&saved).unwrap();
    assert!(saved.contains("capital of France") && saved.contains("dragon"), "{saved}");

    let r = "resume";
    tmux.start(r, &format!("{env} {moat} chat --resume; echo MOAT-EXIT=$?; sleep 60"));
    let screen =
        tmux.wait(r, 90, "the resumed session", |x| x.contains("resumed session e2e-test") && x.contains("loaded in"));
    assert!(screen.contains("dragon"), "{screen}");
    tmux.keys(r, &["C-d"]);
    let end = tmux.wait(r, 20, "moat to exit", |x| x.contains("MOAT-EXIT="));
    assert!(end.contains("MOAT-EXIT=0"), "{end}");
}
