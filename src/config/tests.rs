use super::*;

#[test]
fn defaults_come_from_config_toml() {
    let c = Config::default();
    assert_eq!(c.model.name, "smollm2-135m");
    assert_eq!(c.chat.overflow, OverflowPolicy::DropOldest);
    c.validate().unwrap();
}

#[test]
fn user_file_overrides_only_what_it_names() {
    let c = Config::parse_file(Path::new("u.toml"), b"[sampling]\ntemperature = 0.2\n").unwrap();
    assert_eq!(c.sampling.temperature, 0.2);
    assert_eq!(c.sampling.top_k, Config::default().sampling.top_k);
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let text = b"[model]\nname = \"x\"\n\n[sampling]\ntempreature = 0.5\n";
    let e = Config::parse_file(Path::new("/tmp/u.toml"), text).unwrap_err().to_string();
    assert!(e.starts_with("/tmp/u.toml:5:1: "), "{e}");
    assert!(e.contains("tempreature"), "{e}");
    assert!(e.contains("sampling.tempreature"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn wrong_type_names_the_key() {
    let e = Config::parse_file(Path::new("u.toml"), b"[sampling]\ntop_k = \"many\"\n").unwrap_err().to_string();
    assert!(e.contains("u.toml:2:"), "{e}");
    assert!(e.contains("sampling.top_k"), "{e}");
}

#[test]
fn syntax_error_has_position() {
    let e = Config::parse_file(Path::new("u.toml"), b"[model\nname = 1").unwrap_err().to_string();
    assert!(e.starts_with("u.toml:1:"), "{e}");
}

#[test]
fn env_overrides_file_with_typed_values() {
    let mut c = Config::default();
    let used = c
        .apply_env([
            ("MOAT_SAMPLING_TEMPERATURE".to_string(), "0".to_string()),
            ("MOAT_MODELS_DIR".to_string(), "/data/m".to_string()),
            ("MOAT_SAMPLING_STOP".to_string(), "[\"###\"]".to_string()),
            ("MOAT_UNRELATED".to_string(), "x".to_string()),
        ])
        .unwrap();
    assert_eq!(used.len(), 3);
    assert_eq!(c.sampling.temperature, 0.0);
    assert_eq!(c.models.dir, "/data/m");
    assert_eq!(c.sampling.stop, vec!["###".to_string()]);
}

#[test]
fn bad_env_value_is_reported() {
    let mut c = Config::default();
    let e = c.apply_env([("MOAT_MODEL_CONTEXT".to_string(), "big".to_string())]).unwrap_err();
    assert!(e.to_string().contains("MOAT_MODEL_CONTEXT=big"), "{e}");
    // issue 12: only the bad variable is named, not every MOAT_ variable that is set.
    let mut c = Config::default();
    let e = c
        .apply_env([
            ("MOAT_MODELS_DIR".to_string(), "/data/m".to_string()),
            ("MOAT_SAMPLING_TEMPERATURE".to_string(), "hot".to_string()),
            ("MOAT_SAMPLING_TOP_K".to_string(), "5".to_string()),
        ])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad environment override MOAT_SAMPLING_TEMPERATURE=hot: "), "{e}");
    assert!(!e.contains("MOAT_MODELS_DIR") && !e.contains("TOP_K") && !e.contains('\n'), "{e}");
}

#[test]
fn config_files_with_crlf_bom_or_utf16_are_read_or_refused_in_one_line() {
    let c = Config::parse_file(Path::new("u.toml"), b"\xEF\xBB\xBF[chat]\r\nsystem_prompt = '''a\r\nb'''\r\n").unwrap();
    assert_eq!(c.chat.system_prompt, "a\nb");
    let utf16: Vec<u8> = "[chat]\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let e = Config::parse_file(Path::new("u.toml"), &utf16).unwrap_err().to_string();
    assert!(e.contains("UTF-16; save it as UTF-8") && !e.contains('\n'), "{e}");
}

#[test]
fn out_of_range_values_are_rejected() {
    let c = Config::parse_file(Path::new("u.toml"), b"[sampling]\ntop_p = 2.0\n").unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("sampling.top_p"));
    let c = Config::parse_file(Path::new("u.toml"), b"[model]\ntemplate = \"weird\"\n").unwrap();
    assert!(c.validate().is_err());
    for bad in ["65", "1000"] {
        let text = format!("[model]\nn_parallel = {bad}\n");
        let c = Config::parse_file(Path::new("u.toml"), text.as_bytes()).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("model.n_parallel"), "{bad}");
    }
    let mut c = Config::default();
    assert_eq!(c.model.n_parallel, 0, "auto");
    c.apply_env([("MOAT_MODEL_N_PARALLEL".to_string(), "8".to_string())]).unwrap();
    assert!(c.validate().is_ok() && c.to_toml().contains("n_parallel = 8"), "{}", c.to_toml());
}

#[test]
fn the_context_key_stays_context_in_files_env_and_show() {
    let c = Config::parse_file(Path::new("u.toml"), b"[model]\ncontext = 8192\n").unwrap();
    assert_eq!(c.model.n_ctx, 8192);
    let mut c = Config::default();
    let used = c.apply_env([("MOAT_MODEL_CONTEXT".to_string(), "2048".to_string())]).unwrap();
    assert_eq!((used.len(), c.model.n_ctx), (1, 2048));
    assert!(c.to_toml().contains("context = 2048"), "{}", c.to_toml());
    let e = Config::parse_file(Path::new("u.toml"), b"[model]\nn_ctx = 8192\n").unwrap_err().to_string();
    assert!(e.contains("model.n_ctx"), "the code's name is not a key: {e}");
    let c = Config::parse_file(Path::new("u.toml"), b"[model]\ncontext = 16\n").unwrap();
    assert!(c.validate().unwrap_err().to_string().contains("model.context"));
}

#[test]
fn the_remote_table_reads_from_file_and_env_and_checks_what_would_reach_the_wire() {
    let c = Config::default();
    assert_eq!((c.remote.url.as_str(), c.remote.api_key_env.as_str()), ("", "MOAT_API_KEY"));
    let text = b"[remote]\nurl = \"http://gpu-box:8000/v1\"\nmodel = \"Qwen/Qwen2.5-32B-Instruct\"\n[remote.headers]\nX-Team = \"research\"\n";
    let c = Config::parse_file(Path::new("u.toml"), text).unwrap();
    c.validate().unwrap();
    assert_eq!(c.remote.headers.get("X-Team").map(String::as_str), Some("research"));
    let mut c = Config::default();
    let used = c
        .apply_env([
            ("MOAT_REMOTE_URL".to_string(), "https://llm.example".to_string()),
            ("MOAT_REMOTE_IDLE_TIMEOUT_S".to_string(), "30".to_string()),
            ("MOAT_REMOTE_HEADERS".to_string(), "{ X-A = \"b\" }".to_string()),
        ])
        .unwrap();
    assert_eq!(used.len(), 3);
    assert_eq!((c.remote.url.as_str(), c.remote.idle_timeout_s), ("https://llm.example", 30));
    assert_eq!(c.remote.headers.len(), 1);
    c.validate().unwrap();
    for (text, key) in [
        ("url = \"gpu-box:8000\"", "remote.url"),
        ("url = \"http://user:sk-123@gpu-box\"", "remote.url"),
        ("api_key_env = \"sk-live-123=\"", "remote.api_key_env"),
        ("idle_timeout_s = 0", "remote.idle_timeout_s"),
        ("headers = { \"Bad Name\" = \"x\" }", "remote.headers"),
        ("headers = { X-A = \"a\\r\\nHost: evil\" }", "remote.headers"),
    ] {
        let c = Config::parse_file(Path::new("u.toml"), format!("[remote]\n{text}\n").as_bytes()).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key) && !e.contains('\n') && !e.contains("sk-"), "{text}: {e}");
    }
}

proptest::proptest! {
    #[test]
    fn prop_config_file_never_panics_and_errors_are_one_line(text in "(\\PC|[\r\n\t\\[\\]=\"'#.])*") {
        match Config::parse_file(Path::new("u.toml"), text.as_bytes()) {
            Ok(c) => { let _ = c.validate(); }
            Err(e) => proptest::prop_assert!(!e.to_string().contains('\n'), "{e}"),
        }
    }

    #[test]
    fn prop_config_env_never_panics_and_names_one_variable(value in "\\PC*", key in 0usize..6) {
        let names = ["MOAT_SAMPLING_TEMPERATURE", "MOAT_SAMPLING_TOP_K", "MOAT_MODEL_CONTEXT", "MOAT_SAMPLING_STOP", "MOAT_MODEL_GPU_LAYERS", "MOAT_CHAT_OVERFLOW"];
        let mut c = Config::default();
        let vars = [(names[key].to_string(), value.clone()), ("MOAT_MODELS_DIR".to_string(), "/m".to_string())];
        if let Err(e) = c.apply_env(vars) {
            let e = e.to_string();
            proptest::prop_assert!(e.contains(names[key]) && !e.contains("MOAT_MODELS_DIR"), "{e}");
        }
    }
}

#[test]
fn remote_tokenizer_is_optional_and_a_home_path_is_expanded() {
    let options = |text: &str| {
        let c = Config::parse_file(Path::new("u.toml"), format!("[remote]\nurl = \"http://h:1\"\n{text}").as_bytes());
        crate::engine::RemoteOptions::from_config(&c.unwrap().remote).unwrap()
    };
    assert_eq!(Config::default().remote.tokenizer, "");
    assert_eq!(options("").tokenizer, None);
    assert_eq!(options("tokenizer = \"  \"").tokenizer, None);
    assert_eq!(options("tokenizer = \"/m/tokenizer.json\"").tokenizer, Some(PathBuf::from("/m/tokenizer.json")));
    let home = options("tokenizer = \"~/m/tokenizer.json\"").tokenizer.unwrap();
    assert!(home.is_absolute() && home.ends_with("m/tokenizer.json"), "{}", home.display());
}

#[test]
fn threads_and_batch_take_auto_or_a_number() {
    let c = Config::default();
    assert_eq!((c.model.threads, c.model.threads_batch, c.model.batch), (0, 0, 0), "the defaults are auto");
    assert!(c.to_toml().contains("batch = \"auto\""), "{}", c.to_toml());
    let c = Config::parse_file(Path::new("u.toml"), b"[model]\nthreads = 3\nbatch = \"auto\"\nthreads_batch = 0\n")
        .unwrap();
    assert_eq!((c.model.threads, c.model.batch, c.model.threads_batch), (3, 0, 0));
    let e = Config::parse_file(Path::new("u.toml"), b"[model]\nbatch = \"many\"\n").unwrap_err().to_string();
    assert!(e.contains("model.batch") && e.contains("\"auto\" or a number"), "{e}");
    assert!(Config::parse_file(Path::new("u.toml"), b"[model]\nthreads = -2\n").is_err());
    let mut c = Config::default();
    c.apply_env([("MOAT_MODEL_BATCH".to_string(), "256".to_string())]).unwrap();
    assert_eq!(c.model.batch, 256);
    c.apply_env([("MOAT_MODEL_BATCH".to_string(), "auto".to_string())]).unwrap();
    assert_eq!(c.model.batch, 0);
}
