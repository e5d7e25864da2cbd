//! Label scoring on a server: the scripted server's logprob layouts, and llama.cpp's real server
//! next to the local model.

use super::*;

/// A vLLM-style reply to a one-token completion: the first position's top entries as a
/// `{token: logprob}` map.
fn vllm_logprobs(entries: &[(&str, f64)]) -> String {
    let top: serde_json::Map<String, serde_json::Value> =
        entries.iter().map(|(t, lp)| (t.to_string(), serde_json::json!(lp))).collect();
    serde_json::json!({"choices": [{"index": 0, "text": entries[0].0, "finish_reason": "length",
        "logprobs": {"tokens": [entries[0].0], "token_logprobs": [entries[0].1], "top_logprobs": [top]}}]})
    .to_string()
}

/// Twelve lines whose sentiment is plain, half each way.
const LABELLED: &str = "label\ttext
positive\tA wonderful, heartfelt film with superb acting.
negative\tThe plot was a mess and I walked out halfway.
positive\tI loved every minute of it.
negative\tTerrible service and the food was cold.
positive\tGreat phone, the battery lasts for days.
negative\tIt broke after two days; a waste of money.
positive\tThe staff were kind and the room was spotless.
negative\tThe worst hotel I have ever stayed in.
positive\tA delightful book that I will read again.
negative\tBoring, slow and far too long.
positive\tExcellent value and fast delivery.
negative\tThe screen cracked on the first day.
";

/// Each line's (label, p of the first label) from `moat classify --format tsv` output.
fn predictions(o: &Output) -> Vec<(String, f64)> {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    text(&o.stdout)
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn labels_are_scored_from_a_servers_logprobs_and_a_server_without_them_fails_in_one_line() {
    // No /tokenize (as on ollama): labels match the entries' text.
    let fake = Fake::start(|req, s| match req.path.as_str() {
        "/v1/completions" => {
            let prompt = serde_json::from_str::<serde_json::Value>(&req.body).unwrap()["prompt"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let good = prompt.trim_end().ends_with("Text: good day\nSentiment:");
            let (p, n) = if good { (-0.1, -2.5) } else { (-2.5, -0.1) };
            respond(s, "200 OK", "application/json", &vllm_logprobs(&[(" pos", p), (" neg", n), (" ", -3.0)]));
        }
        _ => respond(s, "404 Not Found", "application/json", r#"{"error":"not found"}"#),
    });
    let sb = Sandbox::new();
    let o =
        run(sb.moat(&["--remote", &fake.url, "classify", "--no-calibrate", "--format", "tsv"]), "good day\nbad day\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Vec<String>> =
        text(&o.stdout).lines().skip(1).map(|l| l.split('\t').map(String::from).collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["positive", "negative"], "{rows:?}");
    let p: f64 = rows[0][2].parse().unwrap();
    let want = 1.0 / (1.0 + (-2.4f64).exp());
    assert!((p - want).abs() < 1e-3, "p_positive {p}, softmax of the logprobs {want}");
    let scored: Vec<serde_json::Value> = fake
        .posts()
        .iter()
        .filter(|r| r.path == "/v1/completions")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(scored.len(), 2);
    assert!(scored.iter().all(|b| b["max_tokens"] == 1 && b["logprobs"] == 20 && b["stream"] == false), "{scored:?}");

    // A server that allows fewer entries (vLLM's --max-logprobs 5) is asked again with 5.
    let few = Fake::start(|req, s| match req.path.as_str() {
        "/v1/completions" if req.body.contains("\"logprobs\":20") => respond(
            s,
            "400 Bad Request",
            "application/json",
            r#"{"object":"error","message":"Requested sample logprobs of 20, which is greater than max allowed: 5","type":"BadRequestError","code":400}"#,
        ),
        "/v1/completions" => {
            respond(s, "200 OK", "application/json", &vllm_logprobs(&[(" neg", -0.2), (" pos", -1.9)]))
        }
        _ => respond(s, "404 Not Found", "text/plain", "no"),
    });
    let o = run(sb.moat(&["--remote", &few.url, "classify", "--no-calibrate", "--format", "tsv"]), "meh\nmeh\n");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().filter(|l| l.starts_with("negative\t")).count(), 2, "{}", text(&o.stdout));
    let asked: Vec<bool> =
        few.posts().iter().filter(|r| r.path == "/v1/completions").map(|r| r.body.contains("\"logprobs\":5")).collect();
    assert!(asked.iter().filter(|x| **x).count() == 2 && asked.len() <= 4, "{asked:?}");

    // A trained head needs the local model's embeddings: refused before the head file is read.
    let o = run(sb.moat(&["--remote", &fake.url, "classify", "--head", "no-such-head.json"]), "good day\n");
    assert_fails(&o, 2, "trained heads and native classifiers run on the local model");
    // An empty --remote is not a silent fall back to a local model.
    let o = run(sb.moat(&["--remote", " ", "ask", "hi"]), "");
    assert_fails(&o, 2, "--remote needs the server's URL");

    // A server that answers without logprobs.
    let bare = Fake::start(|req, s| match req.path.as_str() {
        "/v1/completions" => respond(s, "200 OK", "application/json", r#"{"choices":[{"index":0,"text":" pos"}]}"#),
        _ => respond(s, "404 Not Found", "text/plain", "no"),
    });
    let o = run(sb.moat(&["--remote", &bare.url, "classify"]), "good day\n");
    assert_fails(&o, 1, "returned no logprobs, so it cannot score labels");
}

#[test]
fn real_server_classifies_a_labelled_file_reports_accuracy_and_agrees_with_the_local_model() {
    let Some(server) = LlamaServer::start(1024, None) else { return };
    let sb = Sandbox::new();
    let file = sb.dir.path().join("labelled.tsv");
    std::fs::write(&file, LABELLED).unwrap();
    let file = file.to_str().unwrap();

    let o = run(sb.moat(&["--remote", &server.url, "classify", "--eval", "--json", file]), "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(j["model"], server.model_id.as_str());
    let accuracy = j["metrics"]["accuracy"].as_f64().expect("accuracy");
    assert!(accuracy >= 0.75, "accuracy {accuracy}: {j}");

    // The same model locally and on the server, completion prompt and chat prompt: the same
    // labels, and probabilities that differ only by the two builds' arithmetic.
    let model = server.model_id.clone();
    for chat in ["false", "true"] {
        let remote = predictions(&run(
            sb.moat(&["--remote", &server.url, "classify", "--chat-prompt", chat, "--format", "tsv", file]),
            "",
        ));
        let local =
            predictions(&run(sb.moat(&["-m", &model, "classify", "--chat-prompt", chat, "--format", "tsv", file]), ""));
        assert_eq!(remote.len(), 12);
        let agree = remote.iter().zip(&local).filter(|(r, l)| r.0 == l.0).count();
        assert!(agree >= 11, "chat prompt {chat}: {agree}/12 agree; remote {remote:?} local {local:?}");
        for (r, l) in remote.iter().zip(&local) {
            assert!((r.1 - l.1).abs() < 0.15, "chat prompt {chat}: remote {remote:?} local {local:?}");
        }
    }

    // Any label set, not only sentiment: one probability per label, summing to 1, and the same
    // labels as locally, though this small model ranks " bear" and " neutral" outside its top
    // 1000 tokens after some of these lines (so the server's top logprobs alone cannot say).
    let headlines =
        "Shares jumped 20% after record earnings.\nCompany files for bankruptcy\nStocks soar after record earnings\n";
    let labels = ["classify", "--labels", "bullish,bearish,neutral", "--format", "tsv"];
    let o = run(sb.moat(&[&["--remote", server.url.as_str()][..], &labels[..]].concat()), headlines);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let rows: Vec<Vec<String>> =
        text(&o.stdout).lines().skip(1).map(|l| l.split('\t').map(String::from).collect()).collect();
    for row in &rows {
        let sum: f64 = row[2..5].iter().map(|p| p.parse::<f64>().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-3, "{row:?}");
    }
    let o = run(sb.moat(&[&["-m", model.as_str()][..], &labels[..]].concat()), headlines);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let local: Vec<String> =
        text(&o.stdout).lines().skip(1).map(|l| l.split('\t').next().unwrap().to_string()).collect();
    let remote: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(remote, local, "remote {rows:?}");
}
