//! `moat quantize` on the real default model: the output loads, says its new type and generates;
//! the input is untouched; every failure is one line and leaves no file behind.

use crate::common::{self, assert_fails, moat, stderr, stdout, Sandbox};
use moat::models::gguf;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Stdio;

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("readable")))
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn quantising_the_default_model_gives_a_file_that_loads_and_generates() {
    let s = Sandbox::new();
    let input = common::model_path();
    let (before, mtime) = (sha256(&input), std::fs::metadata(&input).unwrap().modified().unwrap());
    let out_dir = s.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("small.Q8_0.gguf");
    let o = moat(
        &s,
        &["quantize", input.to_str().unwrap(), out.to_str().unwrap(), "--type", "q8_0", "--allow-requantize", "--json"],
        "",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(report["result"]["from"], "Q4_1", "{report}");
    assert_eq!(report["result"]["to"], "Q8_0", "{report}");
    let header = gguf::inspect(&out).expect("the output is a whole GGUF");
    assert_eq!(header.file_type.map(gguf::file_type_name), Some("Q8_0"));
    assert_eq!(report["result"]["tensors"].as_u64(), Some(header.tensor_count), "{report}");
    // Only the output: no temporary file is left beside it.
    assert_eq!(listing(&out_dir), ["small.Q8_0.gguf"]);
    assert_eq!(sha256(&input), before, "the input was changed");
    assert_eq!(std::fs::metadata(&input).unwrap().modified().unwrap(), mtime);

    let o = moat(&s, &["ask", "-m", out.to_str().unwrap(), "--temp", "0", "-n", "8", "--json", "Say hello."], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let reply: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert!(reply["gen_tokens"].as_u64().unwrap_or(0) > 0, "{reply}");
    assert!(!reply["text"].as_str().unwrap_or("").trim().is_empty(), "{reply}");

    // A second run does not replace the file unless asked to.
    let o = moat(
        &s,
        &["quantize", input.to_str().unwrap(), out.to_str().unwrap(), "--type", "Q8_0", "--allow-requantize"],
        "",
    );
    assert_fails(&o, 2, "--force");
}

#[test]
fn pull_with_quantize_writes_the_new_type_into_the_store_beside_the_download() {
    let s = Sandbox::new();
    // A private store holding the default model, so the pull finds it present and nothing is
    // written into the shared one.
    let store = s.path("models");
    std::fs::create_dir(&store).unwrap();
    std::fs::copy(common::model_path(), store.join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let mut c = s.moat();
    c.env("MOAT_MODELS_DIR", &store).args(["models", "pull", "smollm2-135m", "--quantize", "Q8_0"]);
    let o = common::run(c, b"");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = store.join("SmolLM2-135M-Instruct.Q8_0.gguf");
    assert_eq!(gguf::inspect(&out).expect("a whole GGUF").file_type.map(gguf::file_type_name), Some("Q8_0"));
    assert!(stderr(&o).contains("requantised from Q4_1"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("-m {}", out.display())), "{}", stderr(&o));
    assert_eq!(listing(&store), ["SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q8_0.gguf"]);
}

#[test]
fn an_unknown_type_is_refused_with_the_valid_ones() {
    let s = Sandbox::new();
    let o = moat(&s, &["quantize", "in.gguf", "out.gguf", "--type", "Q4_X"], "");
    assert_fails(&o, 2, "`Q4_X`");
    for name in ["Q4_K_M", "Q4_0", "Q8_0", "Q5_K_M", "Q6_K", "IQ4_NL"] {
        assert!(stderr(&o).contains(name), "{}", stderr(&o));
    }
    // `models pull --quantize` checks the type before downloading anything.
    let o = moat(&s, &["models", "pull", "smollm2-135m", "--quantize", "q9"], "");
    assert_fails(&o, 2, "`q9`");
}

#[test]
fn a_missing_input_is_one_line() {
    let s = Sandbox::new();
    let out = s.path("out.gguf");
    let o = moat(&s, &["quantize", "no/such/model.gguf", out.to_str().unwrap(), "--type", "q4_0"], "");
    assert_fails(&o, 2, "no/such/model.gguf");
    assert!(!out.exists());
}

#[test]
fn an_already_quantised_input_needs_allow_requantize() {
    let s = Sandbox::new();
    let out = s.path("out.gguf");
    let o =
        moat(&s, &["quantize", common::model_path().to_str().unwrap(), out.to_str().unwrap(), "--type", "q4_0"], "");
    assert_fails(&o, 2, "--allow-requantize");
    assert!(!out.exists());
}

#[test]
fn an_unwritable_output_leaves_nothing() {
    let s = Sandbox::new();
    // A folder that cannot exist: its parent is a file (root ignores permission bits).
    let blocker = s.path("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    let out = blocker.join("out.gguf");
    let o = moat(
        &s,
        &[
            "quantize",
            common::model_path().to_str().unwrap(),
            out.to_str().unwrap(),
            "--type",
            "q4_0",
            "--allow-requantize",
        ],
        "",
    );
    assert_fails(&o, 1, "cannot write");
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "not a folder");
}

#[test]
fn a_failed_quantisation_leaves_no_partial_file() {
    let s = Sandbox::new();
    let dir = s.path("work");
    std::fs::create_dir(&dir).unwrap();
    // A well-formed GGUF of an architecture llama.cpp does not know: the header check passes, so
    // it fails inside llama.cpp, after the temporary output exists.
    let input = dir.join("alien.gguf");
    std::fs::write(&input, alien_gguf()).unwrap();
    let out = dir.join("alien.Q4_0.gguf");
    let o = moat(&s, &["quantize", input.to_str().unwrap(), out.to_str().unwrap(), "--type", "q4_0"], "");
    assert_fails(&o, 1, "could not quantise");
    assert_eq!(listing(&dir), ["alien.gguf"]);
}

/// A GGUF v3 file with no tensors whose architecture is `alien`.
fn alien_gguf() -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // key-value pairs
    let key = b"general.architecture";
    b.extend((key.len() as u64).to_le_bytes());
    b.extend(key);
    b.extend(8u32.to_le_bytes()); // string
    b.extend(5u64.to_le_bytes());
    b.extend(b"alien");
    // The (empty) data section starts at the next 32-byte boundary.
    b.resize(b.len().div_ceil(32) * 32, 0);
    b
}

#[test]
fn ctrl_c_stops_quantising_and_removes_the_partial_output() {
    let s = Sandbox::new();
    let dir = s.path("work");
    std::fs::create_dir(&dir).unwrap();
    let out = dir.join("out.gguf");
    let mut c = s.moat();
    c.args(["quantize", common::model_path().to_str().unwrap(), out.to_str().unwrap(), "--type", "q6_k"])
        .arg("--allow-requantize")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("moat starts");
    // The temporary output appears before llama.cpp starts loading the model.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while listing(&dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no temporary output appeared");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_fails(&o, 130, "interrupted");
    assert!(stdout(&o).is_empty());
    assert_eq!(listing(&dir), Vec::<String>::new());
}
