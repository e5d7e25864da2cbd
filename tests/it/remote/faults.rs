//! moat against a scripted server: faults a real one cannot be made to produce on demand.

use super::*;

#[test]
fn a_lenient_stream_with_odd_framing_gives_exactly_the_text_and_usage() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        // CRLF and lone CR line ends, a comment, a role-only chunk, a multi-line data field, an
        // event name, reasoning (not reply text), empty choices, a usage-only chunk, and no
        // [DONE]: the stream just ends.
        let body = concat!(
            ": keep-alive\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\r\n\r\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"let me think\"}}]}\n\n",
            "event: message\rdata: {\"choices\":[{\"index\":0,\r",
            "data: \"delta\":{\"content\":\"Hello\"}}]}\r\r",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\", world\"},\"finish_reason\":\"stop\"}],\"x\":1}\n\n",
            "data: {\"choices\":[]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3}}\n\n",
        );
        let _ = s.write_all(body.as_bytes());
    });
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &fake.url, "ask", "--json", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["text"], "Hello, world");
    assert_eq!((j["prompt_tokens"].as_u64(), j["gen_tokens"].as_u64()), (Some(11), Some(3)));
    assert_eq!(j["model"], "fake");
    assert_eq!(j["stop_reason"], "end_of_generation");
}

#[test]
fn sampling_flags_and_the_usage_request_reach_the_server() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("ok")).as_bytes());
    });
    let sb = Sandbox::new();
    let args =
        ["--remote", &format!("{}/v1/", fake.url), "-m", "fake", "--temp", "0.25", "--top-k", "5", "--top-p", "0.5"];
    let more = ["--min-p", "0.1", "--repeat-penalty", "1.3", "--dry-multiplier", "0.8", "--dry-allowed-length", "3"];
    let more = [&more[..], &["--seed", "7", "-n", "9", "--stop", "END", "ask", "hi"]].concat();
    let o = run(sb.moat(&[&args[..], &more[..]].concat()), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "ok\n");
    let posts = fake.completions();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/v1/chat/completions");
    let b: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(b["model"], "fake");
    assert_eq!(b["stream"], true);
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!((b["temperature"].as_f64(), b["top_p"].as_f64()), (Some(0.25), Some(0.5)));
    assert_eq!((b["top_k"].as_i64(), b["seed"].as_u64(), b["max_tokens"].as_u64()), (Some(5), Some(7), Some(9)));
    assert!((b["min_p"].as_f64().unwrap() - 0.1).abs() < 1e-6);
    assert!((b["repeat_penalty"].as_f64().unwrap() - 1.3).abs() < 1e-6);
    assert!((b["dry_multiplier"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!((b["dry_allowed_length"].as_i64(), b["dry_base"].as_f64()), (Some(3), Some(1.75)));
    assert_eq!(b["stop"], serde_json::json!(["END"]));
    assert_eq!(b["messages"][0]["role"], "user");
    assert_eq!(b["messages"][0]["content"].as_str().map(str::trim), Some("hi"));
}

#[test]
fn a_server_that_rejects_stream_options_is_asked_again_without_it() {
    let fake = Fake::start(|req, s| {
        if req.body.contains("stream_options") {
            let body = r#"{"error":{"code":400,"message":"Unrecognized request argument supplied: stream_options","type":"invalid_request_error"}}"#;
            respond(s, "400 Bad Request", "application/json", body);
        } else {
            sse_head(s);
            let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("fine")).as_bytes());
        }
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    for _ in 0..2 {
        let reply = engine.submit(chat("hi", 8)).text(|_| {}).expect("a reply");
        assert_eq!(reply.text, "fine");
    }
    // Once rejected, it is no longer sent: three requests for two replies.
    let sent: Vec<bool> = fake.completions().iter().map(|r| r.body.contains("stream_options")).collect();
    assert_eq!(sent, vec![true, false, false]);
}

#[test]
fn malformed_events_a_mid_stream_error_and_a_close_mid_reply_keep_the_text_and_fail_in_one_line() {
    let cases: [(&str, &str, &str); 3] = [
        ("data: {\"choices\":[{\"delta\":{\"content\":\"part\"}}]}\n\ndata: {oops\n\n", "not JSON", "part"),
        ("data: {\"choices\":[{\"delta\":{\"content\":\"part\"}}]}\n\ndata: {\"error\":{\"message\":\"CUDA out of memory\",\"type\":\"server_error\"}}\n\n", "failed mid-reply: CUDA out of memory", "part"),
        ("data: {\"choices\":[{\"delta\":{\"content\":\"partial reply\"}}]}\n\n", "closed the connection mid-reply", "partial reply"),
    ];
    for (body, needle, shown) in cases {
        let fake = Fake::start(move |_, s| {
            sse_head(s);
            let _ = s.write_all(body.as_bytes());
            // Then the connection closes.
        });
        let sb = Sandbox::new();
        let o = run(sb.moat(&["--remote", &fake.url, "ask", "hi"]), "");
        assert_fails(&o, 1, needle);
        assert!(text(&o.stderr).contains("the reply so far is kept"), "{}", text(&o.stderr));
        assert!(text(&o.stdout).starts_with(shown), "the partial text was printed: {:?}", text(&o.stdout));
    }
}

#[test]
fn a_stream_that_stalls_past_the_idle_timeout_fails_in_one_line_on_time() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        let _ = s.write_all(delta("slow").as_bytes());
        let _ = s.flush();
        std::thread::sleep(Duration::from_secs(20));
    });
    let sb = Sandbox::new();
    let mut cmd = sb.moat(&["--remote", &fake.url, "ask", "hi"]);
    cmd.env("MOAT_REMOTE_IDLE_TIMEOUT_S", "1");
    let started = Instant::now();
    let o = run(cmd, "");
    assert_fails(&o, 1, "sent nothing for 1 s");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(text(&o.stdout).starts_with("slow"));
}

#[test]
fn cancelling_does_not_wait_for_a_blocked_read_and_the_connection_is_closed() {
    let closed = Arc::new(Mutex::new(None::<Instant>));
    let seen = closed.clone();
    let fake = Fake::start(move |_, s| {
        sse_head(s);
        let _ = s.write_all(delta("first").as_bytes());
        let _ = s.flush();
        // A token every 300 ms until the client goes away (a write fails).
        for i in 0..100 {
            std::thread::sleep(Duration::from_millis(300));
            if s.write_all(delta(&format!(" {i}")).as_bytes()).and_then(|_| s.flush()).is_err() {
                *seen.lock().unwrap() = Some(Instant::now());
                return;
            }
        }
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let mut ticket = engine.submit(chat("hi", 500));
    first_text(&mut ticket);
    let cancelled_at = Instant::now();
    ticket.cancel();
    let end = loop {
        if let Some(end) = ticket.poll(&mut ()) {
            break end;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(cancelled_at.elapsed() < Duration::from_millis(250), "cancel took {:?}", cancelled_at.elapsed());
    assert_eq!(end.expect("cancelled is not an error").reason, StopReason::Cancelled);
    // The server notices the client left within a couple of its writes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while closed.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed.lock().unwrap().is_some(), "the connection stayed open after the cancel");
}

#[test]
fn status_errors_and_unreachable_servers_are_one_line() {
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/v1/chat/completions" => respond(
            s,
            "401 Unauthorized",
            "application/json",
            r#"{"error":{"message":"Invalid API Key","type":"authentication_error","code":401}}"#,
        ),
        _ => respond(s, "404 Not Found", "text/plain", "nope"),
    });
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &fake.url, "ask", "hi"]), "");
    assert_fails(&o, 1, "wants an API key (HTTP 401: Invalid API Key); set the environment variable MOAT_API_KEY");
    let o = run(sb.moat(&["--remote", &fake.url, "-m", "other", "ask", "hi"]), "");
    assert_fails(&o, 1, "has no model \"other\"; it has: fake");
    let o = run(sb.moat(&["--remote", &format!("{}/prefix", fake.url), "ask", "hi"]), "");
    assert_fails(&o, 1, "GET /v1/models answered 404");
    // A port nobody listens on (bound, then released).
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = run(sb.moat(&["--remote", &format!("http://127.0.0.1:{port}"), "ask", "hi"]), "");
    assert_fails(&o, 1, "connection refused");
    let o = run(sb.moat(&["--remote", "http://no-such-host.invalid:8000", "ask", "hi"]), "");
    assert_fails(&o, 1, "DNS lookup failed");
    // https:// to a server that speaks plain HTTP.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in plain.incoming().map_while(Result::ok) {
            let _ = s.read(&mut [0u8; 4096]);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let o = run(sb.moat(&["--remote", &format!("https://127.0.0.1:{plain_port}"), "ask", "hi"]), "");
    assert_fails(&o, 1, "TLS with 127.0.0.1:");
    assert!(text(&o.stderr).contains("use http:// if it speaks plain HTTP"), "{}", text(&o.stderr));
    // And http:// to something that is not HTTP at all.
    let junk = TcpListener::bind("127.0.0.1:0").unwrap();
    let junk_port = junk.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in junk.incoming().map_while(Result::ok) {
            let _ = s.read(&mut [0u8; 4096]);
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n");
        }
    });
    let o = run(sb.moat(&["--remote", &format!("http://127.0.0.1:{junk_port}"), "ask", "hi"]), "");
    assert_fails(&o, 1, "did not answer in HTTP");
    let o = run(sb.moat(&["--remote", "gpu-box:8000", "ask", "hi"]), "");
    assert_fails(&o, 2, "--remote must start with http:// or https://");
    // The key is not sent in clear to another machine, and never shown.
    let mut cmd = sb.moat(&["--remote", "http://10.255.255.1:8000", "ask", "hi"]);
    cmd.env("MOAT_API_KEY", "sk-do-not-print");
    let o = run(cmd, "");
    assert_fails(&o, 1, "not sending the API key from $MOAT_API_KEY over plain http");
    assert!(!text(&o.stderr).contains("sk-do-not-print"));
    // Embeddings (for a head trained on a local model) are refused in one line before any work.
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let embed = Task::Embed(Box::new(moat::engine::EmbedRequest {
        prompt: moat::engine::PromptSpec::raw("{text}"),
        items: vec!["a".into()],
        pooling: moat::engine::Pooling::Mean,
        max_item_tokens: 8,
        batch: 1,
    }));
    let err = engine.submit(embed).wait(&mut ()).unwrap_err().to_string();
    assert!(err.contains("does not support embeddings"), "{err}");
}

#[test]
fn structured_tasks_send_the_schema_as_response_format() {
    let fake = Fake::start(|_, s| {
        sse_head(s);
        let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("{\"a\":1}")).as_bytes());
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let schema = r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#;
    let task = Task::Structured {
        messages: vec![Message::user("give a")],
        sampling: Config::default().sampling,
        json_schema: Some(schema.into()),
    };
    assert_eq!(engine.submit(task).text(|_| {}).unwrap().text, "{\"a\":1}");
    let b: serde_json::Value = serde_json::from_str(&fake.posts()[0].body).unwrap();
    assert_eq!(b["response_format"]["type"], "json_schema");
    assert_eq!(
        b["response_format"]["json_schema"]["schema"],
        serde_json::from_str::<serde_json::Value>(schema).unwrap()
    );
}

#[test]
fn drop_oldest_works_on_a_server_that_says_the_conversation_is_too_long() {
    // Too long while the conversation holds more than one message.
    let fake = Fake::start(|req, s| {
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        if body["messages"].as_array().map_or(0, Vec::len) > 1 {
            let e = r#"{"error":{"code":400,"message":"request (3031 tokens) exceeds the available context size (1024 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":3031,"n_ctx":1024}}"#;
            respond(s, "400 Bad Request", "application/json", e);
        } else {
            sse_head(s);
            let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("short")).as_bytes());
        }
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    let messages = vec![
        Message::user("one"),
        Message::assistant("1"),
        Message::user("two"),
        Message::assistant("2"),
        Message::user("three"),
    ];
    let task = |overflow| Task::Chat {
        messages: messages.clone(),
        sampling: Config::default().sampling,
        overflow,
        reserve: 0,
    };
    struct Trims(usize, usize);
    impl moat::engine::Sink for Trims {
        fn trimmed(&mut self, dropped: usize, prompt_tokens: usize) {
            self.0 += dropped;
            self.1 = prompt_tokens;
        }
    }
    let mut trims = Trims(0, 0);
    let end =
        engine.submit(task(moat::config::OverflowPolicy::DropOldest)).wait(&mut trims).expect("fits after dropping");
    assert_eq!((end.reason, trims.0), (StopReason::EndOfGeneration, 4));
    // The new prompt's size is counted once (this server cannot count: an estimate) and is the
    // reply's too.
    assert!(trims.1 > 0, "the trimmed note says the new size");
    assert_eq!((end.stats.prompt_tokens, end.stats.context_estimated), (trims.1, true));
    let counts = fake.posts().iter().filter(|r| r.path == "/apply-template").count();
    assert_eq!(counts, 1, "one count for the note and the stats");
    let last: serde_json::Value = serde_json::from_str(&fake.completions().last().unwrap().body).unwrap();
    assert_eq!(last["messages"], serde_json::json!([{"role": "user", "content": "three"}]));
    // With the error policy the server's figures reach the user.
    let err = engine.submit(task(moat::config::OverflowPolicy::Error)).wait(&mut ()).unwrap_err().to_string();
    assert!(err.contains("the prompt is 3031 tokens but the server's context holds 1024 (2007 over)"), "{err}");
}

#[test]
fn a_server_that_neither_reports_usage_nor_counts_gets_an_estimate_marked_as_one() {
    // Streams without usage; has no /apply-template or /tokenize.
    let fake = Fake::start(|req, s| {
        if req.path.ends_with("/chat/completions") {
            sse_head(s);
            let _ = s.write_all(format!("{}data: [DONE]\n\n", delta("ok")).as_bytes());
        } else {
            respond(s, "404 Not Found", "text/plain", "File Not Found");
        }
    });
    let sb = Sandbox::new();
    let words = |n: usize| vec!["word"; n].join(" ");
    let asked = |cmd: Command| {
        let (j, _) = ask_json(cmd);
        assert_eq!(j["text"], "ok");
        assert_eq!(j["context_estimated"], true, "{j}");
        assert_eq!(j["context_size"], 1024, "{j}");
        let prompt = j["prompt_tokens"].as_u64().unwrap();
        assert_eq!(j["context_used"].as_u64(), Some(prompt + 1), "{j}");
        prompt
    };
    // By characters: 20 more words of five characters (with the space) are 25 tokens more.
    let short = asked(sb.moat(&["--remote", &fake.url, "ask", "--json", &words(10)]));
    let long = asked(sb.moat(&["--remote", &fake.url, "ask", "--json", &words(30)]));
    assert!(short > 10 && long - short == 25, "{short} {long}");
    // The three ways a server could count were each tried once per connection.
    let probes: Vec<String> =
        fake.posts().iter().map(|r| r.path.clone()).filter(|p| !p.ends_with("/completions")).collect();
    assert_eq!(probes, ["/apply-template", "/tokenize", "/v1/tokenize"].repeat(2), "{probes:?}");

    // With remote.tokenizer, the tokenizer counts: 20 more words are 20 more tokens.
    let path = sb.dir.path().join("tokenizer.json");
    std::fs::write(&path, WORD_LEVEL_TOKENIZER).unwrap();
    let with_tokenizer = |n: usize| {
        let mut cmd = sb.moat(&["--remote", &fake.url, "ask", "--json", &words(n)]);
        cmd.env("MOAT_REMOTE_TOKENIZER", &path);
        asked(cmd)
    };
    let (short, long) = (with_tokenizer(10), with_tokenizer(30));
    assert!(short > 10 && long - short == 20, "{short} {long}");

    // A tokenizer.json that is missing or is not one fails at connect, in one line naming the key.
    std::fs::write(sb.dir.path().join("bad.json"), "{\"model\": 1}").unwrap();
    for name in ["missing.json", "bad.json"] {
        let mut cmd = sb.moat(&["--remote", &fake.url, "ask", "hi"]);
        cmd.env("MOAT_REMOTE_TOKENIZER", sb.dir.path().join(name));
        assert_fails(&run(cmd, ""), 1, "remote.tokenizer: ");
    }
}

#[test]
fn a_server_that_counts_is_asked_only_when_usage_lacks_the_prompt_and_its_way_is_remembered() {
    // vLLM's shape: no /apply-template, a /tokenize that counts messages. The reply's usage has
    // the completion's size but not the prompt's, unless the question asks for full usage.
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/v1/chat/completions" => {
            sse_head(s);
            let usage = if req.body.contains("full usage") {
                r#"{"prompt_tokens":7,"completion_tokens":1}"#
            } else {
                r#"{"completion_tokens":1}"#
            };
            let _ = s.write_all(
                format!("{}data: {{\"choices\":[],\"usage\":{usage}}}\n\ndata: [DONE]\n\n", delta("ok")).as_bytes(),
            );
        }
        "/tokenize" => {
            let body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
            let ok = body["add_generation_prompt"] == true && body["messages"].is_array() && body["model"] == "fake";
            let reply = if ok { r#"{"count":42,"max_model_len":1024,"tokens":[1]}"# } else { r#"{"error":"bad"}"# };
            respond(s, "200 OK", "application/json", reply);
        }
        _ => respond(s, "404 Not Found", "text/plain", "Not Found"),
    });
    let engine = engine_on(remote_options(&fake.url)).expect("connects");
    for _ in 0..2 {
        let reply = engine.submit(chat("hi", 8)).text(|_| {}).expect("a reply");
        let s = &reply.stats;
        assert_eq!((s.prompt_tokens, s.context_used, s.context_estimated), (42, 43, false), "{s:?}");
    }
    let reply = engine.submit(chat("full usage", 8)).text(|_| {}).expect("a reply");
    assert_eq!((reply.stats.prompt_tokens, reply.stats.context_estimated), (7, false));
    let paths: Vec<String> = fake.posts().iter().map(|r| r.path.clone()).collect();
    let chat = "/v1/chat/completions";
    assert_eq!(paths, [chat, "/apply-template", "/tokenize", chat, "/tokenize", chat], "{paths:?}");
}

#[test]
fn a_reply_that_arrives_all_at_once_says_a_proxy_buffers_and_a_streamed_one_does_not() {
    let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":40}}\n\ndata: [DONE]\n\n";
    let all_at_once = Fake::start(move |_, s| {
        sse_head(s);
        let body: String = (0..40).map(|i| delta(&format!("t{i} "))).collect();
        let _ = s.write_all(format!("{body}{usage}").as_bytes());
    });
    let streamed = Fake::start(move |_, s| {
        sse_head(s);
        for i in 0..40 {
            let _ = s.write_all(delta(&format!("t{i} ")).as_bytes());
            let _ = s.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.write_all(usage.as_bytes());
    });
    let expected: String = (0..40).map(|i| format!("t{i} ")).collect();
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &all_at_once.url, "ask", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim_end(), expected.trim_end());
    let err = text(&o.stderr);
    assert!(err.starts_with("moat: the reply arrived all at once") && err.contains("proxy_buffering off"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The REPL says it too, after the reply.
    let o = run(sb.moat(&["--remote", &all_at_once.url, "repl"]), "hi\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("t39"), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains("the reply arrived all at once"), "{}", text(&o.stderr));
    let o = run(sb.moat(&["--remote", &streamed.url, "ask", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim_end(), expected.trim_end());
    assert_eq!(text(&o.stderr), "", "no note for a reply that streamed");
}

#[test]
fn a_port_that_accepts_and_never_answers_fails_in_one_line_within_the_short_limit() {
    // Accepts connections and holds them open without a byte; also what https to a plain-http
    // port looks like to the TLS handshake.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().map_while(Result::ok) {
            held.push(s);
        }
    });
    let sb = Sandbox::new();
    for (url, needle) in [
        (format!("http://127.0.0.1:{port}"), "did not answer within 11 s during listing models"),
        (
            format!("https://127.0.0.1:{port}"),
            "did not answer the TLS handshake in time; if the server speaks plain HTTP use http://",
        ),
    ] {
        let started = Instant::now();
        let mut cmd = sb.moat(&["--remote", &url, "ask", "hi"]);
        cmd.env("MOAT_REMOTE_CONNECT_TIMEOUT_S", "1");
        let o = run(cmd, "");
        assert_fails(&o, 1, needle);
        // Not the 600 s idle timeout meant for generation.
        assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    }
}
