//! moat against llama.cpp's real server (skipped without the Python that has `xllamacpp`).

use super::*;

#[test]
fn real_server_ask_streams_ask_json_has_stats_a_repl_keeps_two_turns_and_models_list() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &server.url, "ask", "-n", "8", "--temp", "0", "Say hello."]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).trim().is_empty());

    let o = run(
        sb.moat(&["--remote", &format!("{}/v1", server.url), "ask", "--json", "-n", "8", "--seed", "3", "Say hello."]),
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(j["model"], server.model_id.as_str());
    assert!(!j["text"].as_str().unwrap().is_empty());
    assert!(j["prompt_tokens"].as_u64().unwrap() > 5);
    assert!((1..=8).contains(&j["gen_tokens"].as_u64().unwrap()), "{j}");
    assert!(j["ttft_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(j["seed"], 3);

    // Two turns in one conversation: the second prompt holds the first exchange.
    let o = run(
        sb.moat(&["--remote", &server.url, "-n", "6", "--temp", "0", "repl"]),
        "My name is Ada.\nWhat is my name?\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let session = only_session(&sb);
    let messages = session["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{session}");

    // The file name moat shows for a path-like id names the model too.
    let file = Path::new(&server.model_id).file_name().unwrap().to_str().unwrap().to_string();
    let o = run(sb.moat(&["--remote", &server.url, "-m", &file, "ask", "--json", "-n", "2", "hi"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let o = run(sb.moat(&["models", "list", "--remote", &server.url]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let listed = text(&o.stdout);
    assert!(listed.contains(&server.model_id) && listed.contains("1024"), "{listed}");
    let o = run(sb.moat(&["models", "list", "--json", "--remote", &server.url]), "");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["models"][0]["n_ctx"], 1024);
}

#[test]
fn real_server_cancel_mid_stream_keeps_the_text_and_the_next_turn_runs() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let engine = engine_on(remote_options(&server.url)).expect("connects");
    let mut ticket = engine.submit(chat("Write a very long story about a lighthouse keeper.", 400));
    let mut got = first_text(&mut ticket);
    let cancelled_at = Instant::now();
    ticket.cancel();
    let end = loop {
        if let Some(end) = ticket.poll(&mut moat::engine::OnText(|t: &str| got.push_str(t))) {
            break end;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(cancelled_at.elapsed() < Duration::from_millis(250), "cancel took {:?}", cancelled_at.elapsed());
    assert_eq!(end.expect("not an error").reason, StopReason::Cancelled);
    assert!(!got.is_empty());
    // The server is free again: a second request runs to its end.
    let reply = engine.submit(chat("Say yes.", 4)).text(|_| {}).expect("the next turn");
    // "Yes." can end before 4 tokens: either end means the turn ran, not a leftover cancel.
    assert!(matches!(reply.reason, StopReason::MaxTokens | StopReason::EndOfGeneration), "{:?}", reply.reason);
    assert!(reply.stats.gen_tokens >= 1 && reply.stats.prompt_tokens > 0, "{:?}", reply.stats);
    assert!(reply.stats.server_gen_tok_s.is_some(), "llama-server reports its timings");
    assert_eq!(reply.stats.n_ctx, 1024);
}

#[test]
fn real_server_with_an_api_key_wants_the_right_one() {
    let Some(server) = LlamaServer::start(512, Some("test-key-123")) else { return };
    let sb = Sandbox::new();
    let o = run(sb.moat(&["--remote", &server.url, "ask", "-n", "4", "hi"]), "");
    assert_fails(&o, 1, "wants an API key (HTTP 401");
    let mut cmd = sb.moat(&["--remote", &server.url, "ask", "-n", "4", "hi"]);
    cmd.env("MOAT_API_KEY", "wrong-key");
    let o = run(cmd, "");
    assert_fails(&o, 1, "refused the API key from $MOAT_API_KEY");
    assert!(!text(&o.stderr).contains("wrong-key"));
    let mut cmd = sb.moat(&["--remote", &server.url, "ask", "-n", "4", "hi"]);
    cmd.env("MY_SERVER_KEY", "test-key-123").env("MOAT_REMOTE_API_KEY_ENV", "MY_SERVER_KEY");
    let o = run(cmd, "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn real_server_prompt_longer_than_its_context_is_one_line_with_the_figures() {
    let Some(server) = LlamaServer::start(256, None) else { return };
    let sb = Sandbox::new();
    let long = "word ".repeat(600);
    let o = run(sb.moat(&["--remote", &server.url, "ask", "-n", "4", "Summarise:"]), &long);
    assert_fails(&o, 2, "but the server's context holds 256");
    assert!(text(&o.stderr).contains(" over)"), "{}", text(&o.stderr));
}

#[test]
fn real_server_runs_a_prompt_library_json_step_with_its_schema() {
    let Some(server) = LlamaServer::start(2048, None) else { return };
    let sb = Sandbox::new();
    let input = "Acme AI sells claims software to insurers. It has 20 customers and grows 10% a month.";
    let args = [
        "--remote",
        &server.url,
        "--temp",
        "0",
        "--seed",
        "1",
        "run",
        "market/swot",
        "-v",
        "subject=Acme AI",
        "--as",
        "json",
    ];
    let o = run(sb.moat(&args), input);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    for key in ["strengths", "weaknesses", "opportunities", "threats"] {
        assert!(j["result"][key].is_array(), "{key} in {j}");
    }
}

#[test]
fn real_server_bench_measures_over_http_next_to_the_servers_timings() {
    let Some(server) = LlamaServer::start(512, None) else { return };
    let sb = Sandbox::new();
    let args =
        ["--remote", &server.url, "bench", "--json", "--reps", "1", "--prompt-tokens", "32", "--gen-tokens", "16"];
    let o = run(sb.moat(&args), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let row = &j["results"][0];
    assert!(row["pp_tokens"].as_u64().unwrap() >= 16, "{row}");
    assert!(row["gen_tok_s"].as_f64().unwrap() > 0.0 && row["llama_gen_tok_s"].as_f64().unwrap() > 0.0, "{row}");
    assert!(row["ratio"].as_f64().unwrap() > 0.0, "{row}");
}

#[test]
fn real_server_counts_a_prompt_exactly_as_its_usage_does_and_a_buffering_proxy_is_named() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    // A proxy that holds each reply until it is complete (as nginx does with proxy_buffering on)
    // and drops the usage request, so moat has to count the prompt itself.
    let upstream = server.url.clone();
    let proxy = Fake::start(move |req, s| {
        let mut body: serde_json::Value = serde_json::from_str(&req.body).unwrap_or_default();
        if let Some(b) = body.as_object_mut() {
            b.remove("stream_options");
        }
        let (status, kind, text) = match ureq::post(&format!("{upstream}{}", req.path)).send_json(body) {
            Ok(r) => ("200 OK", r.content_type().to_string(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => {
                let status = if code == 404 { "404 Not Found" } else { "400 Bad Request" };
                (status, r.content_type().to_string(), r.into_string().unwrap_or_default())
            }
            Err(_) => ("502 Bad Gateway", "text/plain".into(), String::new()),
        };
        respond(s, status, &kind, &text);
    });
    let sb = Sandbox::new();
    let question = "Write a long story about a lighthouse keeper.";
    let ask = |url: &str| ask_json(sb.moat(&["--remote", url, "ask", "--json", "-n", "40", "--temp", "0", question]));
    let (direct, direct_err) = ask(&server.url);
    let (proxied, proxied_err) = ask(&proxy.url);
    // The server's usage and moat's count (its template with its default system prompt, then
    // its tokenizer) agree to the token.
    let n = direct["prompt_tokens"].as_u64().unwrap();
    assert!(n > 10, "{direct}");
    assert_eq!(proxied["prompt_tokens"].as_u64(), Some(n), "{proxied}");
    assert_eq!(
        (direct["context_estimated"].as_bool(), proxied["context_estimated"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(proxied["context_used"], direct["context_used"]);
    // 40 tokens streamed straight from the server: no note; held back by the proxy: the note.
    assert_eq!(direct["gen_tokens"], 40, "{direct}");
    assert!(!direct_err.contains("arrived"), "{direct_err}");
    assert!(proxied_err.contains("the reply arrived all at once"), "{proxied_err}");
}

#[test]
fn real_server_killed_mid_reply_the_repl_keeps_the_partial_reply_marked_and_saved() {
    let Some(mut server) = LlamaServer::start(2048, None) else { return };
    let sb = Sandbox::new();
    let mut cmd = sb.moat(&["--remote", &server.url, "-n", "1500", "--temp", "0", "repl"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("moat starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // stdout as it comes: the first piece of the reply is signalled, then everything is kept.
    let (first_tx, first) = std::sync::mpsc::channel();
    let output = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    let _ = first_tx.send(());
                }
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    stdin.write_all(b"Write a very long story about a dragon who learns to trade spices.\n").unwrap();
    stdin.flush().unwrap();
    first.recv_timeout(Duration::from_secs(120)).expect("the reply starts streaming");
    server.kill();
    // The REPL goes on after the error: the next command runs and sees both messages.
    stdin.write_all(b"/show\n").unwrap();
    drop(stdin);
    let status = child.wait().expect("moat finishes");
    let (out, err) = (output.join().unwrap(), errors.join().unwrap());
    // A failed turn makes a scripted run exit 2.
    assert_eq!(status.code(), Some(2), "stdout: {out} stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    // The connection breaks (a reset) or closes, depending on timing; either way one line.
    assert!(err.starts_with("moat: the ") && err.contains(" 127.0.0.1:"), "{err}");
    assert!(err.contains("the reply so far is kept"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (reply, after) = out.split_once("\n[cut off by the error below; the reply so far is kept]\n").expect(&out);
    assert!(after.contains("(2 messages)"), "/show after the error: {after}");

    let session = only_session(&sb);
    let messages = session["messages"].as_array().expect("messages");
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"], "{session}");
    let kept = messages[1]["content"].as_str().unwrap();
    assert!(!kept.trim().is_empty() && reply.starts_with(kept), "saved {kept:?}, shown {reply:?}");
    assert_eq!(messages[1]["cut_off"].as_str(), Some(err.trim_end().trim_start_matches("moat: ")), "{session}");
    assert!(messages[0].get("cut_off").is_none(), "{session}");
}

#[test]
fn real_server_slash_model_lists_the_servers_models_switches_by_id_and_refuses_a_local_name() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let sb = Sandbox::new();
    let at = server.url.trim_start_matches("http://").to_string();
    let file = Path::new(&server.model_id).file_name().unwrap().to_str().unwrap().to_string();
    let script = format!("/model\n/model smollm2-135m\n/model {file}\nSay hi.\n/show\n");
    let o = run(sb.moat(&["--remote", &server.url, "-n", "4", "--temp", "0", "repl"]), &script);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    // The refused switch is the one failure.
    assert_eq!(o.status.code(), Some(2), "stdout: {out} stderr: {err}");
    assert!(out.contains(&format!("models on {} (/model ID switches; * = in use):", server.url)), "{out}");
    assert!(out.contains(&format!("  {} *  context 1024", server.model_id)), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let refused = format!(
        "moat: cannot switch: the server at {at} has no model \"smollm2-135m\" (it has: {}); /model lists them, and a local model needs moat started without --remote",
        server.model_id
    );
    assert_eq!(err.trim_end(), refused);
    // The short form shown in the status line switches too; the reply runs on the new target.
    assert!(out.contains(&format!("{file} loaded in ")) && out.contains(&format!(" · remote {at} · ")), "{out}");
    assert!(out.contains(&format!("model {file} (remote {at})")), "/show: {out}");
    let session = only_session(&sb);
    let roles: Vec<&str> =
        session["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"], "{session}");
    assert_eq!(session["model"], file.as_str());
}

#[test]
fn real_server_in_the_full_screen_chat_status_model_switch_and_a_kill_mid_reply() {
    let Some(mut server) = LlamaServer::start(2048, None) else { return };
    let sb = Sandbox::new();
    let at = server.url.trim_start_matches("http://").to_string();
    let file = Path::new(&server.model_id).file_name().unwrap().to_str().unwrap().to_string();
    let env = format!(
        "env -u TMUX MOAT_CONFIG={} MOAT_DATA_DIR={} TERM=xterm-256color",
        sb.dir.path().join("config.toml").display(),
        sb.dir.path().join("data").display()
    );
    let tmux = crate::common::tmux::Tmux::new("remote");
    let s = "chat";
    let moat = env!("CARGO_BIN_EXE_moat");
    tmux.start(s, &format!("{env} {moat} --remote {} chat --temp 0 -n 1500; echo MOAT-EXIT=$?; sleep 60", server.url));
    let screen = tmux.wait(s, 60, "the connection", |x| x.contains("loaded in"));
    let status = screen.trim_end().lines().last().unwrap_or_default().to_string();
    assert!(status.contains(&format!(" {file} remote {at} ")), "{screen}");
    assert!(!status.contains("CPU") && !status.contains(&server.model_id), "{screen}");

    tmux.type_line(s, "/model");
    tmux.wait(s, 20, "the server's models", |x| x.contains(&format!("models on {}", server.url)));
    tmux.type_line(s, "/model smollm2-135m");
    tmux.wait(s, 20, "the refusal", |x| x.contains("cannot switch: the server at") && x.contains("without --remote"));
    tmux.type_line(s, &format!("/model {file}"));
    tmux.wait(s, 20, "the switch", |x| x.matches("loaded in").count() == 2);

    tmux.type_line(s, "Write a very long story about a dragon who learns to trade spices.");
    tmux.wait(s, 60, "the reply to stream", |x| {
        let reply = x.rsplit("▌assistant").next().unwrap_or_default();
        x.contains("generating")
            && reply.lines().skip(1).take_while(|l| !l.starts_with('╭')).any(|l| !l.trim().is_empty())
    });
    server.kill();
    let screen =
        tmux.wait(s, 20, "the cut-off mark", |x| x.contains("cut off by an error") && !x.contains("generating"));
    assert!(screen.replace('\n', " ").contains("the reply so far is kept"), "{screen}");
    tmux.keys(s, &["C-d"]);
    let end = tmux.wait(s, 20, "moat to exit", |x| x.contains("MOAT-EXIT="));
    assert!(end.contains("MOAT-EXIT=0"), "{end}");
    let session = only_session(&sb);
    let last = session["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "assistant", "{session}");
    assert!(!last["content"].as_str().unwrap().trim().is_empty(), "{session}");
    assert!(last["cut_off"].as_str().is_some_and(|e| e.contains("the reply so far is kept")), "{session}");
}
