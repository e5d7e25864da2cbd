//! `moat tune` on the default model with a small budget, what `moat doctor` shows before and
//! after, and that nothing tunes in a pipe unasked.

use crate::common::{self, Sandbox};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn tune_keeps_its_choice_and_doctor_shows_it() {
    let s = Sandbox::new();
    let cache = s.path("data").join("tune.json");
    let out = common::moat(&s, &["doctor"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("not tuned yet: run `moat tune`"), "{}", text(&out.stdout));

    // A short prompt and budget keep the test short: just flash attention off and on.
    let out = common::moat(&s, &["tune", "--budget", "1", "--depth", "64"], "");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("chosen: flash attention "), "{stdout}");
    assert!(cache.exists());
    // Flash attention off and on are measured whatever the budget.
    assert!(stdout.lines().filter(|l| l.starts_with("  off") || l.starts_with("  on")).count() >= 2, "{stdout}");

    let out = common::moat(&s, &["doctor", "--json"], "");
    let doctor: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    let choice = &doctor["tuning"]["choice"];
    let fa = choice["flash_attn"].as_str().expect("a measured choice");
    assert!(doctor["tuning"]["trials"].as_array().is_some_and(|t| t.len() >= 2), "{doctor}");
    // The loaded model runs with it (its auto settings took the measured values).
    assert_eq!(doctor["model"]["flash_attn"], fa, "{doctor}");
    assert_eq!(doctor["model"]["n_batch"], choice["batch"], "{doctor}");
    let out = common::moat(&s, &["doctor"], "");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tuning:") && stdout.contains("* ") && stdout.contains("pp t/s"), "{stdout}");
    assert!(stdout.contains(&format!("chosen: flash attention {fa}")), "{stdout}");

    // An explicit flag wins over the measurement.
    let other = if fa == "on" { "off" } else { "on" };
    let out = common::moat(&s, &["doctor", "--json", "--flash-attn", other], "");
    let doctor: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doctor["model"]["flash_attn"], other, "{doctor}");

    // Measured already: not again without --force.
    let before = std::fs::read(&cache).unwrap();
    let out = common::moat(&s, &["tune"], "");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("measured on this device already"), "{}", text(&out.stdout));
    assert_eq!(std::fs::read(&cache).unwrap(), before);
}

#[test]
fn nothing_tunes_in_a_pipe() {
    let s = Sandbox::new();
    let out = common::moat(&s, &["ask", "-n", "2", "--temp", "0", "Say hi"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = common::repl(&s, &["-n", "2", "--temp", "0"], "hello\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!s.path("data").join("tune.json").exists(), "a piped run measured settings");
}
