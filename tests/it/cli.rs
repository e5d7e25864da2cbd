//! The `moat` binary as a user runs it: answers, JSON, and one clear line with the right exit code
//! for every kind of bad input.

use crate::common::{self, assert_fails, run, stderr, Sandbox};
use std::process::{Command, Stdio};

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

/// Every sampling flag is refused out of range with its rule, before any model loads.
#[test]
fn sampling_flags_out_of_range_are_refused_in_one_line() {
    let s = Sandbox::new();
    for (flag, value, rule) in [
        ("--top-p", "2", "a number in 0..1"),
        ("--temp", "-1", "a number ≥ 0"),
        ("--repeat-last-n", "-3", "a whole number ≥ 0"),
        ("--max-tokens", "0", "a whole number ≥ 1"),
    ] {
        let mut c = s.moat();
        c.args([flag, value, "ask", "hi"]);
        assert_fails(&run(c, b""), 2, rule);
    }
}

/// `moat completions SHELL` prints a script that calls this binary back; the call-back answers
/// with subcommands, flags, registry model names and prompt ids, the user's own prompts included.
#[test]
fn shell_completions_offer_subcommands_models_and_prompt_ids() {
    let s = Sandbox::new();
    for (shell, registers) in [
        ("bash", "complete -o nospace"),
        ("zsh", "#compdef moat"),
        ("fish", "complete --keep-order"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let mut c = s.moat();
        c.args(["completions", shell]);
        let o = run(c, b"");
        assert!(o.status.success(), "{}", stderr(&o));
        let script = String::from_utf8(o.stdout).expect("UTF-8 script");
        assert!(script.contains(registers) && script.contains("MOAT_COMPLETE"), "{shell}: {script}");
        assert!(script.contains(env!("CARGO_BIN_EXE_moat")), "{shell} calls this binary back: {script}");
    }
    let mut c = s.moat();
    c.args(["completions", "tcsh"]);
    assert_fails(&run(c, b""), 2, "tcsh");

    // What bash's script asks: the words after `--`, and the index of the one being completed.
    let complete = |words: &[&str]| -> Vec<String> {
        let mut c = s.moat();
        c.env("MOAT_COMPLETE", "bash").env("_CLAP_COMPLETE_INDEX", words.len().to_string());
        c.args(["--", "moat"]).args(words);
        let o = run(c, b"");
        assert!(o.status.success(), "{words:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).expect("UTF-8").lines().map(str::to_string).collect()
    };
    let top = complete(&[""]);
    for want in ["chat", "ask", "models", "run", "prompts", "completions", "man", "--temp", "--repeat-last-n"] {
        assert!(top.iter().any(|w| w == want), "{want} in {top:?}");
    }
    assert_eq!(complete(&["-m", "smollm2-13"]), ["smollm2-135m"]);
    assert_eq!(complete(&["ask", "--model", "smollm2"]), ["smollm2-135m", "smollm2-1.7b"]);
    assert_eq!(complete(&["-m", "qwen2.5-7b:q"]), ["qwen2.5-7b:q5_k_m", "qwen2.5-7b:q8_0"]);
    assert!(complete(&["models", "pull", "smol"]).contains(&"smollm2-135m".to_string()));
    // encoders: by name for --encoder and the models commands, never for -m (they cannot chat)
    assert_eq!(complete(&["classify", "train", "--encoder", "mini"]), ["minilm-l6"]);
    assert!(complete(&["models", "pull", "m3e"]).contains(&"m3e-small".to_string()));
    assert!(complete(&["models", "info", "minilm"]).contains(&"minilm-l6".to_string()));
    assert!(complete(&["-m", "m"]).iter().all(|w| w != "minilm-l6" && w != "m3e-small"));
    let ids = complete(&["run", "market/sw"]);
    assert_eq!(ids, ["market/swot"]);
    std::fs::create_dir_all(s.path("prompts/mine")).unwrap();
    std::fs::write(
        s.path("prompts/mine/hello.toml"),
        "format = 1\ntitle = \"Hello\"\n[prompt]\nuser = \"Say hello to {{ input }}\"\n",
    )
    .unwrap();
    assert_eq!(complete(&["prompts", "show", "mine/"]), ["mine/hello"]);

    // The bash script itself, as bash runs it on Tab.
    let Ok(bash) = Command::new("bash").arg("--version").output() else { return };
    assert!(bash.status.success());
    let script = format!(
        "source <({moat} completions bash); COMP_WORDS=(moat run mine/h); COMP_CWORD=2; COMP_TYPE=9; \
         _clap_complete_moat moat mine/h moat; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        moat = env!("CARGO_BIN_EXE_moat")
    );
    let mut c = Command::new("bash");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MOAT_")) {
        c.env_remove(k);
    }
    let o = c
        .args(["-c", &script])
        .env("MOAT_CONFIG", s.path("config.toml"))
        .env("MOAT_DATA_DIR", s.path("data"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "mine/hello\n", "{}", stderr(&o));
}

/// `moat man` prints the roff page; `-o DIR` writes it and the subcommands' pages, nothing else.
#[test]
fn man_page_prints_or_is_written_to_a_folder() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.arg("man");
    let o = run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let page = String::from_utf8(o.stdout).expect("UTF-8 roff");
    assert!(page.contains("\n.TH moat 1 "), "{page}");
    assert!(page.contains("\\-\\-repeat\\-last\\-n") && page.contains("completions"), "{page}");

    let dir = s.path("man/man1");
    let mut c = s.moat();
    c.args(["man", "-o"]).arg(&dir);
    let o = run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("man pages to"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.join("moat.1")).unwrap(), page);
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("moat") && n.ends_with(".1")), "{names:?}");
    assert!(names.contains(&"moat-models-pull.1".to_string()), "{names:?}");
}
