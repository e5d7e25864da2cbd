//! The `moat` binary as a user runs it: answers, JSON, and one clear line with the right exit code
//! for every kind of bad input.

use crate::common::{self, assert_fails, run, stderr, Sandbox};
use std::process::Stdio;

#[test]
fn ask_json_is_deterministic_with_a_seed() {
    let s = Sandbox::new();
    let go = || {
        let mut c = s.moat();
        c.args(["ask", "--json", "--temp", "0", "-n", "48", "What is 2 + 2?"]);
        run(c, b"")
    };
    let (a, b) = (go(), go());
    assert!(a.status.success(), "{}", stderr(&a));
    let ja: serde_json::Value = serde_json::from_slice(&a.stdout).expect("one JSON object");
    let jb: serde_json::Value = serde_json::from_slice(&b.stdout).expect("one JSON object");
    assert_eq!(ja["text"], jb["text"]);
    assert!(!ja["text"].as_str().unwrap().trim().is_empty());
    assert_eq!(ja["model"], "smollm2-135m");
    for key in ["prompt_tokens", "gen_tokens", "ttft_ms", "gen_tok_s"] {
        assert!(ja[key].as_f64().unwrap() > 0.0, "{key} in {ja}");
    }
}

#[test]
fn piped_stdin_is_the_prompt() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["--temp", "0", "-n", "32"]);
    let o = run(c, "Translate to English: 市场优势\n".as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).expect("UTF-8 output");
    assert!(!text.trim().is_empty());
}

#[test]
fn unknown_flag() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["ask", "--temperature", "1", "hi"]);
    assert_fails(&run(c, b""), 2, "--temperature");
}

#[test]
fn unknown_model_name_suggests_the_close_one() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["ask", "-m", "smollm3-135m", "hi"]);
    assert_fails(&run(c, b""), 2, "smollm2-135m");
}

#[test]
fn missing_model_file() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["ask", "-m", "./no/such/model.gguf", "hi"]);
    assert_fails(&run(c, b""), 2, "no/such/model.gguf");
}

#[test]
fn truncated_model_file() {
    let s = Sandbox::new();
    let bytes = std::fs::read(common::model_path()).unwrap();
    let cut = s.path("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let mut c = s.moat();
    c.args(["ask", "-m"]).arg(&cut).arg("hi");
    assert_fails(&run(c, b""), 2, "truncated");
}

#[test]
fn a_file_that_is_not_gguf() {
    let s = Sandbox::new();
    let fake = s.path("notes.gguf");
    std::fs::write(&fake, "these are my notes, not a model\n").unwrap();
    let mut c = s.moat();
    c.args(["ask", "-m"]).arg(&fake).arg("hi");
    assert_fails(&run(c, b""), 2, "not a GGUF");
}

#[test]
fn invalid_utf8_on_stdin() {
    let s = Sandbox::new();
    let o = run(s.moat(), b"caf\xe9 au lait\n");
    assert_fails(&o, 2, "UTF-8");
}

#[test]
fn nul_bytes_on_stdin() {
    let s = Sandbox::new();
    let o = run(s.moat(), b"hello\0world\n");
    assert_fails(&o, 2, "NUL byte");
}

#[test]
fn empty_stdin() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.arg("ask");
    assert_fails(&run(c, b""), 2, "no prompt");
}

#[test]
fn a_ten_megabyte_line_longer_than_the_context() {
    let s = Sandbox::new();
    let mut line = "market ".repeat(10 * 1024 * 1024 / 7).into_bytes();
    line.push(b'\n');
    let o = run(s.moat(), &line);
    assert_fails(&o, 2, "context");
}

#[test]
fn bad_config_names_file_line_and_key() {
    let s = Sandbox::new();
    std::fs::write(s.path("config.toml"), "[sampling]\ntemperature = 0.5\ntop_kk = 3\n").unwrap();
    let mut c = s.moat();
    c.args(["config", "show"]);
    let o = run(c, b"");
    assert_fails(&o, 2, "top_kk");
    let err = stderr(&o);
    assert!(err.contains("config.toml") && err.contains(":3:"), "{err}");
}

#[test]
fn config_layers_flags_over_env_over_file() {
    let s = Sandbox::new();
    std::fs::write(s.path("config.toml"), "[sampling]\ntemperature = 0.5\ntop_k = 3\n").unwrap();
    let mut c = s.moat();
    c.env("MOAT_SAMPLING_TOP_K", "9").args(["--seed", "11", "config", "show"]);
    let o = run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: toml::Table = toml::from_str(&String::from_utf8(o.stdout).unwrap()).expect("show prints TOML");
    let sampling = shown["sampling"].as_table().unwrap();
    assert_eq!(sampling["temperature"].as_float(), Some(0.5));
    assert_eq!(sampling["top_k"].as_integer(), Some(9));
    assert_eq!(sampling["seed"].as_integer(), Some(11));
}

#[test]
fn offline_with_a_missing_model_says_how_to_fetch_it() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.env("MOAT_MODELS_DIR", s.path("empty-store")).args(["--offline", "ask", "hi"]);
    assert_fails(&run(c, b""), 2, "moat models pull");
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_what_was_generated_and_exits_130() {
    use std::io::Read;
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["ask", "--temp", "0.8", "--seed", "3", "-n", "2000", "Write a long story about a lighthouse keeper."]);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("the reply starts");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"));
    assert!(!rest.is_empty() || first[0] != 0);
}

#[test]
fn doctor_reports_backends_devices_and_where_the_layers_went() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["doctor", "--json"]);
    let o = run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert!(j["backends"].as_array().unwrap().iter().any(|b| b == "CPU"));
    assert!(j["devices"].as_array().unwrap().iter().any(|d| d["kind"] == "CPU"));
    assert!(j["cpu"].as_str().unwrap().contains("AVX"), "{j}");
    assert!(j["model"]["n_layer"].as_u64().unwrap() > 0, "{j}");
    if !cfg!(any(feature = "cuda", feature = "metal", feature = "vulkan")) {
        assert_eq!(j["model"]["gpu"], false);
        assert_eq!(j["model"]["gpu_note"], serde_json::Value::Null, "a CPU build has nothing to apologise for");
    }
}

#[test]
fn gpu_options_are_checked() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["--gpu-layers", "most", "ask", "hi"]);
    assert_fails(&run(c, b""), 2, "auto, all or a number");
    let mut c = s.moat();
    c.args(["--cache-type-v", "q8_0", "--flash-attn", "off", "ask", "hi"]);
    assert_fails(&run(c, b""), 2, "needs flash attention");
    let mut c = s.moat();
    c.args([
        "ask",
        "--gpu-layers",
        "0",
        "--cache-type-k",
        "q8_0",
        "--cache-type-v",
        "q8_0",
        "--flash-attn",
        "on",
        "--temp",
        "0",
        "-n",
        "8",
        "Hi",
    ]);
    let o = run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
}
