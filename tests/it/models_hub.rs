//! `moat models pull|rm|search|list` against a stand-in Hugging Face Hub on 127.0.0.1 (pointed at
//! with HF_ENDPOINT): the tree API gives each file's LFS sha256 and size, `resolve/` serves the
//! bytes with `Range` support, and a switch cuts a transfer short. The files are the tiny BERT
//! fixture (a real GGUF), so every download also passes the header check.

use crate::common::{run, stderr, stdout, Sandbox, TINY_BERT};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// One request the stand-in hub answered.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
    auth: Option<String>,
    /// Body bytes sent.
    sent: usize,
}

#[derive(Default)]
struct HubState {
    /// repo → path → (bytes, the sha256 the API reports).
    repos: BTreeMap<String, BTreeMap<String, (Vec<u8>, String)>>,
    /// Answer only requests with `Authorization: Bearer TOKEN` (401 GatedRepo otherwise).
    token: Option<String>,
    /// Cut the next N file transfers after this many body bytes.
    cut_after: Option<usize>,
    cuts_left: usize,
    /// Ignore `Range` (answer 200 with the whole file).
    no_range: bool,
    seen: Vec<Seen>,
}

struct FakeHub {
    url: String,
    state: Arc<Mutex<HubState>>,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn gguf_bytes() -> Vec<u8> {
    std::fs::read(TINY_BERT).expect("the tiny BERT fixture")
}

impl FakeHub {
    fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(HubState::default()));
        let st = state.clone();
        // Lives until the test process ends; each connection is answered on its own thread.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        FakeHub { url, state }
    }

    /// Adds a file whose reported sha256 is its real one.
    fn add(&self, repo: &str, path: &str, bytes: Vec<u8>) {
        let sha = sha256_hex(&bytes);
        self.add_with_sha(repo, path, bytes, &sha);
    }

    fn add_with_sha(&self, repo: &str, path: &str, bytes: Vec<u8>, sha: &str) {
        let mut s = self.state.lock().unwrap();
        s.repos.entry(repo.into()).or_default().insert(path.into(), (bytes, sha.into()));
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The requests for file bytes (not the API).
    fn downloads(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path.contains("/resolve/")).collect()
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<HubState>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (mut range, mut auth) = (None, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut st = state.lock().unwrap();
    let mut seen = Seen { path: target.clone(), range: range.clone(), auth: auth.clone(), sent: 0 };
    let reply = |conn: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        let _ =
            write!(conn, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n", body.len());
        let _ = conn.write_all(body);
    };
    if let Some(t) = &st.token {
        if auth.as_deref() != Some(&format!("Bearer {t}")) {
            st.seen.push(seen);
            return reply(&mut conn, "401 Unauthorized", "X-Error-Code: GatedRepo\r\n", b"gated");
        }
    }
    // /api/models/OWNER/NAME/tree/REV[/DIR]
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let parts: Vec<&str> = rest.splitn(5, '/').collect();
        let repo = format!("{}/{}", parts[0], parts.get(1).unwrap_or(&""));
        let dir = parts.get(4).copied().unwrap_or("");
        let recursive = query.contains("recursive=true");
        let Some(files) = st.repos.get(&repo) else {
            st.seen.push(seen);
            return reply(&mut conn, "404 Not Found", "X-Error-Code: RepositoryNotFound\r\n", b"{}");
        };
        let items: Vec<serde_json::Value> = files
            .iter()
            .filter(|(p, _)| {
                let parent = p.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                if recursive {
                    dir.is_empty() || p.starts_with(&format!("{dir}/"))
                } else {
                    parent == dir
                }
            })
            .map(|(p, (bytes, sha))| {
                serde_json::json!({"type": "file", "path": p, "size": bytes.len(), "oid": "0000",
                    "lfs": {"oid": sha, "size": bytes.len(), "pointerSize": 134}})
            })
            .collect();
        st.seen.push(seen);
        return reply(
            &mut conn,
            "200 OK",
            "Content-Type: application/json\r\n",
            serde_json::to_string(&items).unwrap().as_bytes(),
        );
    }
    // /OWNER/NAME/resolve/REV/PATH
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() == 5 && parts[2] == "resolve" {
        let repo = format!("{}/{}", parts[0], parts[1]);
        let Some((bytes, _)) = st.repos.get(&repo).and_then(|f| f.get(parts[4])).cloned() else {
            st.seen.push(seen);
            return reply(&mut conn, "404 Not Found", "", b"no such file");
        };
        let start = range
            .as_deref()
            .filter(|_| !st.no_range)
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok());
        let (status, headers, body) = match start {
            Some(s) if s >= bytes.len() => {
                st.seen.push(seen);
                return reply(&mut conn, "416 Range Not Satisfiable", "", b"");
            }
            Some(s) => (
                "206 Partial Content",
                format!("Content-Range: bytes {s}-{}/{}\r\n", bytes.len() - 1, bytes.len()),
                bytes[s..].to_vec(),
            ),
            None => ("200 OK", String::new(), bytes),
        };
        let cut = if st.cuts_left > 0 { st.cut_after } else { None };
        if cut.is_some() {
            st.cuts_left -= 1;
        }
        let send = cut.map_or(body.len(), |c| c.min(body.len()));
        seen.sent = send;
        st.seen.push(seen);
        drop(st);
        // Promises the whole body, then (when cutting) closes the connection part way.
        let _ =
            write!(conn, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n", body.len());
        let _ = conn.write_all(&body[..send]);
        let _ = conn.flush();
        let _ = conn.shutdown(std::net::Shutdown::Both);
        return;
    }
    st.seen.push(seen);
    reply(&mut conn, "404 Not Found", "", b"not found")
}

/// A sandbox with its own empty model store, talking to `hub`, with no hub token of the user's.
struct Env {
    sb: Sandbox,
    store: PathBuf,
    hub_url: String,
}

impl Env {
    fn new(hub: &FakeHub) -> Env {
        let sb = Sandbox::new();
        let store = sb.path("store");
        Env { sb, store, hub_url: hub.url.clone() }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.sb.moat();
        c.env("MOAT_MODELS_DIR", &self.store)
            .env("HF_ENDPOINT", &self.hub_url)
            .env("HF_HOME", self.sb.path("hf-home"))
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .env_remove("HF_TOKEN_PATH")
            .args(args);
        c
    }

    fn moat(&self, args: &[&str]) -> Output {
        run(self.cmd(args), b"")
    }

    /// Every file under the store, relative to it, sorted.
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.store.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(&self.store).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

/// The last line of stderr (the error), checked to be one clean line.
fn last_err(o: &Output) -> String {
    let err = stderr(o);
    let last = err.trim_end().lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("moat: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    last
}

fn recorded(path: &Path) -> serde_json::Value {
    let mut p = path.as_os_str().to_owned();
    p.push(".verified");
    serde_json::from_str(&std::fs::read_to_string(PathBuf::from(p)).expect("a .verified record")).unwrap()
}

#[test]
fn hf_repo_pull_picks_q4_k_m_then_a_named_quant_and_records_the_hub_sha256() {
    let hub = FakeHub::start();
    let q4 = gguf_bytes();
    let mut q8 = gguf_bytes();
    q8.extend_from_slice(b"trailing bytes make a different file");
    hub.add("acme/Tiny-GGUF", "README.md", b"# tiny".to_vec());
    hub.add("acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", q4.clone());
    hub.add("acme/Tiny-GGUF", "Tiny-Q8_0.gguf", q8.clone());
    let env = Env::new(&hub);

    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = env.store.join("hf/acme/Tiny-GGUF/Tiny-Q4_K_M.gguf");
    assert_eq!(std::fs::read(&path).unwrap(), q4);
    let rec = recorded(&path);
    assert_eq!(
        (rec["sha256"].as_str(), rec["checked_against"].as_str()),
        (Some(sha256_hex(&q4).as_str()), Some("hub"))
    );
    assert_eq!(env.files(), ["hf/acme/Tiny-GGUF/Tiny-Q4_K_M.gguf", "hf/acme/Tiny-GGUF/Tiny-Q4_K_M.gguf.verified"]);

    // A tag in any case picks that file; the default one is left alone.
    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF:q8_0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(env.store.join("hf/acme/Tiny-GGUF/Tiny-Q8_0.gguf")).unwrap(), q8);

    // Pulled files resolve offline, and `models list --json` shows the recorded sha256.
    let before = hub.seen().len();
    let o = env.moat(&["models", "list", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let row = j["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"].as_str().is_some_and(|p| p.ends_with("Tiny-Q8_0.gguf")));
    assert_eq!(row.expect("the pulled file is listed")["sha256"].as_str(), Some(sha256_hex(&q8).as_str()));
    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF:Q8_0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        hub.downloads().len(),
        2,
        "the file already verified is not fetched again: {:?}",
        hub.seen()[before..].to_vec()
    );

    // A quantisation the repository does not have: one line listing what it has.
    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF:Q5_K_M"]);
    assert_eq!(o.status.code(), Some(1));
    let e = last_err(&o);
    assert!(e.contains("has no Q5_K_M file; it has Q4_K_M, Q8_0"), "{e}");

    // rm takes the same reference and removes the file with its record.
    let o = env.moat(&["models", "rm", "hf:acme/Tiny-GGUF"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(env.files(), ["hf/acme/Tiny-GGUF/Tiny-Q8_0.gguf", "hf/acme/Tiny-GGUF/Tiny-Q8_0.gguf.verified"]);
}

#[test]
fn a_file_that_fails_the_hub_checksum_is_not_kept() {
    let hub = FakeHub::start();
    hub.add_with_sha("acme/Bad-GGUF", "Bad-Q4_K_M.gguf", gguf_bytes(), &"0".repeat(64));
    let env = Env::new(&hub);
    let o = env.moat(&["models", "pull", "hf:acme/Bad-GGUF"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = last_err(&o);
    assert!(e.contains("failed sha256 check") && e.contains("not kept"), "{e}");
    assert!(env.files().is_empty(), "nothing stays in the store: {:?}", env.files());
    // And the model is not taken as present afterwards.
    let o = env.moat(&["models", "rm", "hf:acme/Bad-GGUF"]);
    assert!(stderr(&o).contains("was not downloaded"), "{}", stderr(&o));
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let hub = FakeHub::start();
    let bytes = gguf_bytes();
    hub.add("acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", bytes.clone());
    let cut = 50_000;
    {
        let mut s = hub.state.lock().unwrap();
        s.cut_after = Some(cut);
        s.cuts_left = 1;
    }
    let env = Env::new(&hub);
    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = last_err(&o);
    assert!(e.contains("run the same pull again to resume"), "{e}");
    let target = env.store.join("hf/acme/Tiny-GGUF/Tiny-Q4_K_M.gguf");
    let part = env.store.join("hf/acme/Tiny-GGUF/Tiny-Q4_K_M.gguf.part");
    assert!(!target.exists(), "a partial file is never in place");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64, "the partial download is kept");

    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming Tiny-Q4_K_M.gguf"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&target).unwrap(), bytes, "the resumed file is whole");
    assert!(!part.exists());
    assert_eq!(recorded(&target)["sha256"].as_str(), Some(sha256_hex(&bytes).as_str()));
    let d = hub.downloads();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[1].range.as_deref(), Some(format!("bytes={cut}-").as_str()));
    assert_eq!(d[1].sent, bytes.len() - cut, "only the missing bytes were sent");
}

#[test]
fn a_server_that_ignores_range_restarts_the_download() {
    let hub = FakeHub::start();
    let bytes = gguf_bytes();
    hub.add("acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", bytes.clone());
    {
        let mut s = hub.state.lock().unwrap();
        s.cut_after = Some(10_000);
        s.cuts_left = 1;
        s.no_range = true;
    }
    let env = Env::new(&hub);
    assert_eq!(env.moat(&["models", "pull", "hf:acme/Tiny-GGUF"]).status.code(), Some(1));
    let o = env.moat(&["models", "pull", "hf:acme/Tiny-GGUF"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not resume downloads; starting over"), "{}", stderr(&o));
    assert_eq!(std::fs::read(env.store.join("hf/acme/Tiny-GGUF/Tiny-Q4_K_M.gguf")).unwrap(), bytes);
}

#[test]
fn split_models_fetch_every_part_and_ambiguity_is_refused() {
    let hub = FakeHub::start();
    hub.add("acme/Big-GGUF", "Big-Q8_0/Big-Q8_0-00001-of-00002.gguf", gguf_bytes());
    hub.add("acme/Big-GGUF", "Big-Q8_0/Big-Q8_0-00002-of-00002.gguf", gguf_bytes());
    hub.add("acme/Two-GGUF", "A-Q4_K_M.gguf", gguf_bytes());
    hub.add("acme/Two-GGUF", "B-Q4_K_M.gguf", gguf_bytes());
    let env = Env::new(&hub);
    let o = env.moat(&["models", "pull", "hf:acme/Big-GGUF:Q8_0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let files = env.files();
    for i in 1..=2 {
        let p = format!("hf/acme/Big-GGUF/Big-Q8_0/Big-Q8_0-0000{i}-of-00002.gguf");
        assert!(files.contains(&p) && files.contains(&format!("{p}.verified")), "{files:?}");
    }
    let o = env.moat(&["models", "pull", "hf:acme/Two-GGUF"]);
    assert_eq!(o.status.code(), Some(1));
    let e = last_err(&o);
    assert!(e.contains("has 2 Q4_K_M files (A-Q4_K_M.gguf, B-Q4_K_M.gguf)"), "{e}");
}

#[test]
fn gated_repositories_need_hf_token() {
    let hub = FakeHub::start();
    hub.add("meta/Gated-GGUF", "Gated-Q4_K_M.gguf", gguf_bytes());
    hub.state.lock().unwrap().token = Some("hf_secret".into());
    let env = Env::new(&hub);
    let o = env.moat(&["models", "pull", "hf:meta/Gated-GGUF"]);
    assert_eq!(o.status.code(), Some(1));
    let e = last_err(&o);
    assert!(e.contains("gated") && e.contains("set HF_TOKEN"), "{e}");
    let mut c = env.cmd(&["models", "pull", "hf:meta/Gated-GGUF"]);
    c.env("HF_TOKEN", "hf_secret");
    let o = run(c, b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(hub.downloads().iter().all(|s| s.auth.as_deref() == Some("Bearer hf_secret")));
}

#[test]
fn catalogue_models_are_verified_against_the_hub_and_removed_whole() {
    // The catalogue's first source for qwen2.5-0.5b, served by the stand-in hub.
    let hub = FakeHub::start();
    let bytes = gguf_bytes();
    hub.add("bartowski/Qwen2.5-0.5B-Instruct-GGUF", "Qwen2.5-0.5B-Instruct-Q8_0.gguf", bytes.clone());
    let env = Env::new(&hub);
    let o = env.moat(&["models", "pull", "qwen2.5-0.5b:Q8_0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let path = env.store.join("Qwen2.5-0.5B-Instruct-Q8_0.gguf");
    assert_eq!(recorded(&path)["sha256"].as_str(), Some(sha256_hex(&bytes).as_str()));
    let o = env.moat(&["models", "list", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let row =
        j["models"].as_array().unwrap().iter().find(|m| m["name"] == "qwen2.5-0.5b:q8_0").expect("listed").clone();
    assert_eq!((row["present"].as_bool(), row["sha256"].as_str()), (Some(true), Some(sha256_hex(&bytes).as_str())));
    let o = env.moat(&["models", "search", "qwen2.5", "0.5b"]);
    assert!(stdout(&o).contains("qwen2.5-0.5b:q8_0") && stdout(&o).contains("present"), "{}", stdout(&o));
    let o = env.moat(&["models", "rm", "qwen2.5-0.5b:q8_0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(env.files().is_empty(), "{:?}", env.files());
}

#[test]
fn search_finds_catalogue_models_and_says_when_none_match() {
    let hub = FakeHub::start();
    let env = Env::new(&hub);
    let o = env.moat(&["models", "search", "deepseek"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for name in ["deepseek-r1-qwen-1.5b", "deepseek-r1-qwen-7b", "deepseek-r1-qwen-14b", "deepseek-r1-llama-8b"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(!out.contains("qwen3-8b") && out.contains("MIT"), "{out}");
    let o = env.moat(&["models", "search", "--json", "gemma"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let names: Vec<&str> = j["models"].as_array().unwrap().iter().filter_map(|m| m["name"].as_str()).collect();
    assert!(names.contains(&"gemma3-27b") && names.contains(&"gemma3-270m"), "{names:?}");
    let o = env.moat(&["models", "search", "no-such-model-anywhere"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(last_err(&o).contains("no catalogue model matches"));
    // Nothing here touched the network.
    assert!(hub.seen().is_empty());
}
