//! The bad-input matrix: every entry point fed what users and hostile files feed it — invalid
//! UTF-8, NUL bytes, UTF-16, a BOM, CRLF, empty and whitespace-only input, a 1 MB line, escape
//! sequences in model metadata, file names and arguments, truncated and non-GGUF model files, a
//! non-ASCII path with spaces and `#`, a reader that goes away. Each case checks the exit code, that
//! a failure is exactly one line saying what to do, that no escape sequence reaches the terminal,
//! and that nothing the user had was lost.
//!
//! The model-free cases use the tiny BERT classifier fixture; the rest use the default model with
//! a few tokens of output.

use crate::common::{assert_fails, assert_terminal_safe, jsonl, repl, run, stderr, stdout, Sandbox, TINY_BERT as TINY};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn assert_ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(o), stderr(o));
    assert!(!stderr(o).contains("panicked"));
}

fn utf16le(s: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(s.encode_utf16().flat_map(|u| u.to_le_bytes()));
    out
}

fn ask(s: &Sandbox, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = s.moat();
    c.arg("ask").args(args);
    run(c, stdin)
}

fn classify(s: &Sandbox, model: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = s.moat();
    c.arg("-m").arg(model).arg("classify").args(args);
    run(c, stdin)
}

fn write(s: &Sandbox, name: &str, bytes: &[u8]) -> PathBuf {
    let p = s.path(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

// ------------------------------------------------------------------------------------ GGUF files

/// Offset and length of the string value of `key` in a GGUF v3 header, or of element `index` of a
/// string array.
fn gguf_string(bytes: &[u8], key: &str, index: Option<usize>) -> (usize, usize) {
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let scalar = |t: u32| match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => panic!("type {t}"),
    };
    assert_eq!(&bytes[..4], b"GGUF");
    let n_kv = u64_at(16);
    let mut o = 24;
    for _ in 0..n_kv {
        let klen = u64_at(o);
        let k = std::str::from_utf8(&bytes[o + 8..o + 8 + klen]).unwrap().to_string();
        o += 8 + klen;
        let t = u32_at(o);
        o += 4;
        match t {
            8 => {
                let n = u64_at(o);
                if k == key && index.is_none() {
                    return (o + 8, n);
                }
                o += 8 + n;
            }
            9 => {
                let (at, n) = (u32_at(o), u64_at(o + 4));
                o += 12;
                for i in 0..n {
                    if at == 8 {
                        let len = u64_at(o);
                        if k == key && index == Some(i) {
                            return (o + 8, len);
                        }
                        o += 8 + len;
                    } else {
                        o += scalar(at);
                    }
                }
            }
            t => o += scalar(t),
        }
    }
    panic!("{key} not found");
}

/// The tiny classifier with hostile metadata, patched in place (same lengths, so the file stays
/// loadable): `general.name` clears the screen and retitles the terminal, the labels carry a CSI
/// sequence and a right-to-left override.
fn hostile_model(s: &Sandbox) -> PathBuf {
    let mut bytes = std::fs::read(TINY).unwrap();
    let mut patch = |key: &str, index: Option<usize>, value: &[u8]| {
        let (at, len) = gguf_string(&bytes, key, index);
        assert!(value.len() <= len);
        bytes[at..at + len].fill(b' ');
        bytes[at..at + value.len()].copy_from_slice(value);
    };
    // issue 12: ESC ] 0 ; P W N BEL ESC [ 2 J, padded with spaces.
    patch("general.name", None, b"\x1b]0;PWN\x07\x1b[2J");
    patch("bert.classifier.output_labels", Some(0), b"\x1b[2Jnega");
    patch("bert.classifier.output_labels", Some(1), "pos\u{202E}iv".as_bytes());
    write(s, "hostile.gguf", &bytes)
}

#[test]
fn m01_models_info_neutralises_hostile_gguf_metadata() {
    let s = Sandbox::new();
    let model = hostile_model(&s);
    let mut c = s.moat();
    c.arg("models").arg("info").arg("-m").arg(&model);
    let o = run(c, b"");
    assert_ok(&o);
    assert_terminal_safe(&o.stdout);
    assert_terminal_safe(&o.stderr);
    let out = stdout(&o);
    assert!(out.contains("PWN") || out.contains("classifier"), "{out}");
    assert!(!out.contains("[2J") && !out.contains("]0;"), "escape residue in {out:?}");
    // JSON keeps the bytes exact (serde escapes them).
    let mut c = s.moat();
    c.arg("models").arg("info").arg("--json").arg("-m").arg(&model);
    let o = run(c, b"");
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["gguf"]["classifier_labels"][0], "\x1b[2Jnega");
}

#[test]
fn m02_classify_table_neutralises_labels_jsonl_keeps_them() {
    let s = Sandbox::new();
    let model = hostile_model(&s);
    let o = classify(&s, &model, &["--format", "table"], b"great film\nawful plot\n");
    assert_ok(&o);
    assert_terminal_safe(&o.stdout);
    assert!(!stdout(&o).contains("[2J"), "{}", stdout(&o));
    let o = classify(&s, &model, &["--format", "jsonl"], b"great film\n");
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["probs"].as_object().unwrap().contains_key("\x1b[2Jnega"), "{j}");
}

#[test]
fn m03_a_truncated_model_file() {
    let s = Sandbox::new();
    let bytes = std::fs::read(TINY).unwrap();
    let path = write(&s, "cut.gguf", &bytes[..bytes.len() / 3]);
    let mut c = s.moat();
    c.arg("-m").arg(&path).args(["classify"]);
    assert_fails(&run(c, b"hello\n"), 2, "cut.gguf");
}

#[test]
fn m04_a_file_that_is_not_gguf() {
    let s = Sandbox::new();
    let path = write(&s, "notes.gguf", b"just some text, not a model\n");
    assert_fails(&ask(&s, &["-m", path.to_str().unwrap(), "hi"], b""), 2, "notes.gguf");
}

#[test]
fn m05_a_non_ascii_model_path_with_spaces_and_hash() {
    let s = Sandbox::new();
    let path = s.path("模型 dir #1/my model #2.gguf");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(TINY, &path).unwrap();
    let o = classify(&s, &path, &["--format", "jsonl"], b"a wonderful, moving film\n");
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["label"].is_string(), "{j}");
}

#[test]
fn m06_escape_sequences_in_a_missing_model_path_do_not_reach_the_terminal() {
    let s = Sandbox::new();
    let o = ask(&s, &["-m", "/tmp/\x1b]0;owned\x07\x1b[2Jmodel.gguf", "hi"], b"");
    assert_fails(&o, 2, "model.gguf");
}

#[test]
fn m07_escape_sequences_in_a_prompt_id() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["prompts", "show", "market/\x1b[2Jswot\x1b]0;x\x07"]);
    assert_fails(&run(c, b""), 2, "market/");
}

// ------------------------------------------------------------------------------------ ask / stdin

#[test]
fn m08_invalid_utf8_on_stdin() {
    let s = Sandbox::new();
    assert_fails(&ask(&s, &[], b"caf\xe9 au lait\n"), 2, "not valid UTF-8");
}

#[test]
fn m09_nul_bytes_on_stdin() {
    let s = Sandbox::new();
    assert_fails(&ask(&s, &[], b"abc\0def\n"), 2, "NUL byte");
}

#[test]
fn m10_utf16_on_stdin() {
    let s = Sandbox::new();
    assert_fails(&ask(&s, &[], &utf16le("What is a moat?\r\n")), 2, "stdin is UTF-16; save it as UTF-8");
}

#[test]
fn m11_empty_and_whitespace_only_input() {
    let s = Sandbox::new();
    assert_fails(&ask(&s, &[], b""), 2, "no prompt");
    assert_fails(&ask(&s, &[], b"  \n\t\r\n"), 2, "no prompt");
    assert_fails(&ask(&s, &["   "], b""), 2, "no prompt");
}

#[test]
fn m12_a_one_megabyte_single_line() {
    let s = Sandbox::new();
    let line = "market ".repeat(150_000) + "\n";
    assert!(line.len() > 1_000_000);
    let o = ask(&s, &["-c", "512"], line.as_bytes());
    assert_fails(&o, 2, "context");
}

#[test]
fn m13_bom_is_accepted_and_crlf_gives_the_same_tokens_and_reply() {
    let s = Sandbox::new();
    let lf = "List two risks of a startup.\nBe brief.\nUse plain words.\n";
    let crlf = lf.replace('\n', "\r\n");
    let bom = format!("\u{feff}{lf}");
    let answer = |input: &str| {
        let o = ask(&s, &["--json", "--temp", "0", "-n", "12"], input.as_bytes());
        assert_ok(&o);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (j["prompt_tokens"].as_u64().unwrap(), j["text"].as_str().unwrap().to_string())
    };
    let want = answer(lf);
    assert_eq!(answer(&crlf), want, "CRLF must tokenise like LF");
    assert_eq!(answer(&bom), want, "a UTF-8 BOM is dropped silently");
    // Lone CR (old Mac line ends) too.
    assert_eq!(answer(&lf.replace('\n', "\r")), want);
}

#[test]
fn m14_a_bad_environment_override_names_only_itself() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.env("MOAT_SAMPLING_TEMPERATURE", "hot").env("MOAT_SAMPLING_TOP_K", "7").args(["ask", "hi"]);
    let o = run(c, b"");
    assert_fails(&o, 2, "MOAT_SAMPLING_TEMPERATURE=hot");
    assert!(!stderr(&o).contains("MOAT_MODELS_DIR") && !stderr(&o).contains("TOP_K"), "{}", stderr(&o));
}

#[test]
fn m15_output_piped_into_head_ends_quietly() {
    let s = Sandbox::new();
    for args in [&["models", "list"][..], &["prompts", "list"][..], &["config", "show"][..]] {
        let mut c = s.moat();
        c.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        // The reader is gone now (the pipe is dropped), like `| head -1`.
        let o = child.wait_with_output().unwrap();
        assert!(!first.is_empty());
        let code = o.status.code();
        #[cfg(unix)]
        let by_sigpipe = std::os::unix::process::ExitStatusExt::signal(&o.status) == Some(libc_sigpipe());
        #[cfg(not(unix))]
        let by_sigpipe = false;
        assert!(code == Some(0) || code == Some(141) || by_sigpipe, "{args:?}: {:?}", o.status);
        assert!(!stderr(&o).contains("Broken pipe") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn m16_a_non_utf8_argument() {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let s = Sandbox::new();
        let mut c = s.moat();
        c.arg("ask").arg(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        let o = run(c, b"");
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    }
}

// ------------------------------------------------------------------------------------ classify

const CSV: &str = "id,text,label\n\
1,\"Loved it, would watch again\",positive\n\
3,\"Two lines here:\nfirst great, then boring\",negative\n\
4,plain text without quotes,positive\n";

#[test]
fn m17_csv_records_with_quoted_newlines_keep_their_columns() {
    let s = Sandbox::new();
    let o = classify(
        &s,
        Path::new(TINY),
        &["--format", "jsonl", "--input-format", "csv", "--text-column", "text", "--id-column", "id"],
        CSV.as_bytes(),
    );
    assert_ok(&o);
    let rows = jsonl(&o);
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap_or("?")).collect();
    assert_eq!(ids, ["1", "3", "4"], "{rows:?}");
    assert!(rows.iter().all(|r| r.get("error").is_none()), "{rows:?}");
    // Each result keeps its record's first line number.
    let lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 3, 5]);
}

#[test]
fn m18_csv_crlf_line_ends_inside_and_outside_quotes() {
    let s = Sandbox::new();
    let crlf = CSV.replace('\n', "\r\n");
    let o = classify(
        &s,
        Path::new(TINY),
        &["--format", "jsonl", "--input-format", "csv", "--text-column", "text"],
        crlf.as_bytes(),
    );
    assert_ok(&o);
    let rows = jsonl(&o);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[1]["text"], "Two lines here:\nfirst great, then boring");
}

#[test]
fn m19_classify_a_utf16_file() {
    let s = Sandbox::new();
    let path = write(&s, "reviews.txt", &utf16le("great\r\nawful\r\n"));
    let mut c = s.moat();
    c.arg("-m").arg(TINY).arg("classify").arg(&path);
    assert_fails(&run(c, b""), 2, "is UTF-16; save it as UTF-8");
}

#[test]
fn m20_classify_bad_lines_become_error_rows_and_the_rest_completes() {
    let s = Sandbox::new();
    let o = classify(
        &s,
        Path::new(TINY),
        &["--format", "jsonl"],
        b"good film\n\xff\xfe bad bytes\nnul\0here\n\n   \nlast one\n",
    );
    assert_ok(&o);
    let rows = jsonl(&o);
    let errors = rows.iter().filter(|r| r.get("error").is_some()).count();
    let labelled = rows.iter().filter(|r| r.get("label").is_some()).count();
    assert_eq!((labelled, errors), (2, 4), "{rows:?}");
    assert!(stderr(&o).contains("could not be classified"), "{}", stderr(&o));
}

#[test]
fn m21_classify_eval_stops_on_a_malformed_record_naming_its_line() {
    let s = Sandbox::new();
    let path = write(&s, "gold.tsv", b"great\tpositive\nawful\tnegative\nno label here\nfine\tpositive\n");
    let mut c = s.moat();
    c.arg("-m")
        .arg(TINY)
        .arg("classify")
        .args(["--input-format", "tsv", "--text-column", "1", "--label-column", "2", "--eval"])
        .arg(&path);
    assert_fails(&run(c, b""), 2, "line 3");
}

#[test]
fn m22_classify_empty_input() {
    let s = Sandbox::new();
    assert_fails(&classify(&s, Path::new(TINY), &["--format", "jsonl"], b""), 2, "nothing to classify");
    let header_only =
        classify(&s, Path::new(TINY), &["--input-format", "csv", "--text-column", "text"], b"id,text\r\n");
    assert_fails(&header_only, 2, "nothing to classify");
}

#[test]
fn m23_classify_a_one_megabyte_line() {
    let s = Sandbox::new();
    let line = "The plot was dull and the acting was worse. ".repeat(24_000) + "\n";
    assert!(line.len() > 1_000_000);
    let o = classify(&s, Path::new(TINY), &["--format", "jsonl"], line.as_bytes());
    assert_ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["label"].is_string(), "{j}");
}

#[test]
fn m24_a_damaged_head_file() {
    let s = Sandbox::new();
    let head = write(&s, "head.json", b"{\"labels\": [\"a\", ");
    let mut c = s.moat();
    c.arg("-m").arg(TINY).arg("classify").arg("--head").arg(&head);
    let o = run(c, b"text\n");
    assert_fails(&o, 2, "head.json");
    assert_eq!(std::fs::read(&head).unwrap(), b"{\"labels\": [\"a\", ", "the file is left as it was");
}

// ------------------------------------------------------------------------------------ config, prompts

#[test]
fn m25_config_file_in_utf16_is_refused_in_one_line() {
    let s = Sandbox::new();
    write(&s, "config.toml", &utf16le("[sampling]\r\ntemperature = 0.2\r\n"));
    let mut c = s.moat();
    c.args(["config", "show"]);
    assert_fails(&run(c, b""), 2, "UTF-16");
}

#[test]
fn m26_config_file_with_bom_and_crlf_is_read() {
    let s = Sandbox::new();
    write(&s, "config.toml", b"\xEF\xBB\xBF[chat]\r\nsystem_prompt = '''Be terse.\r\nAnswer in English.'''\r\n");
    let mut c = s.moat();
    c.args(["config", "show"]);
    let o = run(c, b"");
    assert_ok(&o);
    assert!(
        stdout(&o).contains("Be terse.\\nAnswer in English.") || stdout(&o).contains("Be terse.\nAnswer"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains('\r'), "{:?}", stdout(&o));
}

#[test]
fn m27_config_file_with_invalid_utf8() {
    let s = Sandbox::new();
    write(&s, "config.toml", b"[sampling]\ntemperature = 0.2\n# caf\xe9\n");
    let mut c = s.moat();
    c.args(["config", "show"]);
    assert_fails(&run(c, b""), 2, "config.toml:3:");
}

const PROMPT: &str = "format = 1\r\ntitle = \"Echo\"\r\ndescription = \"\"\"Repeats the input.\r\nTwo lines.\"\"\"\r\n\r\n[input]\r\nrequired = true\r\n\r\n[prompt]\r\nuser = \"\"\"Repeat:\r\n{{ input }}\"\"\"\r\n";

#[test]
fn m28_a_prompt_file_with_crlf_lints_and_shows_like_lf() {
    let s = Sandbox::new();
    let crlf = write(&s, "mine/echo.toml", PROMPT.as_bytes());
    let lf = write(&s, "lf/echo.toml", PROMPT.replace("\r\n", "\n").as_bytes());
    let show = |p: &Path| {
        let mut c = s.moat();
        c.arg("prompts").arg("show").arg(p);
        run(c, b"")
    };
    let (a, b) = (show(&crlf), show(&lf));
    assert_ok(&a);
    assert_ok(&b);
    assert!(!stdout(&a).contains('\r'));
    let dir = |p: &Path| p.parent().unwrap().to_str().unwrap().to_string();
    assert_eq!(stdout(&a).replace(&dir(&crlf), "D"), stdout(&b).replace(&dir(&lf), "D"));
}

#[test]
fn m29_a_prompt_file_in_utf16() {
    let s = Sandbox::new();
    let p = write(&s, "u16.toml", &utf16le(PROMPT));
    let mut c = s.moat();
    c.arg("prompts").arg("show").arg(&p);
    let o = run(c, b"");
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("UTF-16"), "{}", stderr(&o));
}

#[test]
fn m30_run_with_a_utf16_input_file() {
    let s = Sandbox::new();
    let input = write(&s, "article.txt", &utf16le("A short article.\r\n"));
    let mut c = s.moat();
    c.args(["run", "market/swot", "-v", "subject=Acme", "--input"]).arg(&input);
    assert_fails(&run(c, b""), 2, "UTF-16");
}

#[test]
fn m31_a_mistyped_prompt_id_is_suggested() {
    let s = Sandbox::new();
    let mut c = s.moat();
    c.args(["prompts", "show", "market/swat"]);
    assert_fails(&run(c, b""), 2, "did you mean `market/swot`");
}

// ------------------------------------------------------------------------------------ repl, sessions

#[test]
fn m32_scripted_repl_with_crlf_lines_and_a_typo() {
    let s = Sandbox::new();
    let o = repl(&s, &["--no-save"], b"/set temp 0\r\n/claer\r\n/show\r\n");
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(out.contains("temp 0") || out.contains("temp = 0"), "{out}");
    assert!(err.contains("unknown command /claer (did you mean `clear`?)"), "{err}");
    assert!(!out.contains('\r') && !err.contains('\r'));
}

#[test]
fn m33_scripted_repl_with_invalid_utf8() {
    let s = Sandbox::new();
    let o = repl(&s, &["--no-save"], b"/show\n\xc3\x28 bad\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not valid UTF-8"), "{}", stderr(&o));
    assert_terminal_safe(&o.stderr);
}

#[test]
fn m34_a_damaged_session_file_is_reported_and_kept() {
    let s = Sandbox::new();
    let damaged = b"{\"name\": \"work\", \"messages\": [{\"role\": \"user\", \"content\": \"hel";
    let path = write(&s, "data/sessions/work.json", damaged);
    // The import into the session database skips it, naming it; `--session work` starts anew.
    let o = repl(&s, &["--session", "work"], b"/show\n");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("work.json")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("skipped damaged session file"), "{err}");
    assert!(!err.contains("panicked"));
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "the damaged file is never overwritten");
}

#[test]
fn m35_a_session_file_with_crlf_and_escapes_loads_clean() {
    let s = Sandbox::new();
    let session = serde_json::json!({
        "version": 1,
        "name": "win",
        "created": "2026-01-01 00:00:00",
        "updated": "2026-01-01 00:00:00",
        "model": "smollm2-135m",
        "sampling": serde_json::to_value(moat::config::Config::default().sampling).unwrap(),
        "messages": [
            {"role": "user", "content": "first line\r\nsecond \u{1b}]0;pwn\u{7}line"},
            {"role": "assistant", "content": "ok"}
        ]
    });
    write(&s, "data/sessions/win.json", serde_json::to_string(&session).unwrap().as_bytes());
    let o = repl(&s, &["--session", "win", "--no-save"], b"/show\n");
    assert_ok(&o);
    assert_terminal_safe(&o.stdout);
    assert_terminal_safe(&o.stderr);
}
