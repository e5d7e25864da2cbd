//! Parallel structured requests and token counting on a scripted server: requests go out
//! `n_parallel` at a time, replies come back in request order whatever order they finish in, a
//! request the server refuses fails alone, and counts come from the server's `/tokenize`.

use super::*;
use moat::chat::prompt_job::EngineGenerator;
use moat::prompts::{GenRequest, Generator, Params};
use std::sync::atomic::{AtomicUsize, Ordering};

fn engine_with(remote: RemoteOptions, n_parallel: u32) -> Engine {
    let mut opts = EngineOptions::from_config(&Config::default(), PathBuf::new(), "remote".into(), None);
    opts.remote = Some(remote);
    opts.n_parallel = n_parallel;
    Engine::start(opts, Arc::new(AtomicBool::new(false)), |_| {}).expect("connects").0
}

#[test]
fn structured_many_runs_n_parallel_at_once_and_returns_replies_in_request_order() {
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let fake = Fake::start(move |req, s| {
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        let user = body["messages"][0]["content"].as_str().unwrap_or_default().to_string();
        if user.contains("refuse") {
            respond(s, "500 Internal Server Error", "application/json", r#"{"error":{"message":"no"}}"#);
            return;
        }
        let k: u64 = user.trim_start_matches("chunk ").parse().unwrap_or(0);
        m.fetch_max(n.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
        // Later chunks answer sooner, so replies finish out of order.
        std::thread::sleep(Duration::from_millis(400 - 50 * k));
        n.fetch_sub(1, Ordering::SeqCst);
        sse_head(s);
        let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#;
        let _ = s.write_all(format!("{}{usage}\n\ndata: [DONE]\n\n", delta(&format!("{{\"n\":{k}}}"))).as_bytes());
    });
    let engine = engine_with(remote_options(&fake.url), 3);
    let mut gen = EngineGenerator::new(engine.submitter(), Config::default().sampling);
    let schema = r#"{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}"#;
    let reqs: Vec<GenRequest> = (0..7)
        .map(|k| GenRequest {
            system: None,
            user: if k == 6 { "refuse".into() } else { format!("chunk {k}") },
            params: Params::default(),
            json_schema: Some(schema.into()),
        })
        .collect();
    let mut finished = Vec::new();
    let replies = gen.generate_many(&reqs, &mut |i, _| finished.push(i));
    for (k, r) in replies.iter().take(6).enumerate() {
        assert_eq!(r.as_ref().expect("a reply").text, format!("{{\"n\":{k}}}"));
    }
    let refused = replies[6].as_ref().expect_err("the refused request fails alone");
    assert!(!refused.contains('\n'), "{refused}");
    assert_eq!(most.load(Ordering::SeqCst), 3, "three requests in flight at once, never more");
    assert_ne!(finished, (0..7).collect::<Vec<_>>(), "replies finished in the server's order: {finished:?}");
    finished.sort();
    assert_eq!(finished, (0..7).collect::<Vec<_>>());
    assert!(fake.completions().iter().all(|r| r.body.contains("\"response_format\"")));
}

#[test]
fn token_counts_come_from_the_servers_tokenize_in_one_task() {
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/tokenize" => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            let words = body["content"].as_str().unwrap_or_default().split_whitespace().count();
            let tokens: Vec<usize> = (0..words).collect();
            respond(s, "200 OK", "application/json", &serde_json::json!({ "tokens": tokens }).to_string());
        }
        _ => respond(s, "404 Not Found", "text/plain", "Not Found"),
    });
    let engine = engine_with(remote_options(&fake.url), 4);
    let mut gen = EngineGenerator::new(engine.submitter(), Config::default().sampling);
    let before = engine.submit(Task::Tokenize { texts: vec![] }).id();
    assert_eq!(gen.count_tokens(&["one two three", "", "a b"]), Some(vec![3, 0, 2]));
    assert_eq!(engine.submit(Task::Tokenize { texts: vec![] }).id(), before + 2);
}
