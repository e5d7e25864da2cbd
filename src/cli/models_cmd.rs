//! `moat models list|pull|info|rm`.

use super::args::{ModelArgs, ModelsCommand};
use super::setup::{self, Setup};
use super::Failure;
use crate::models::gguf::{self, file_type_name};
use crate::models::store::{human_bytes, tilde};
use crate::models::{Downloader, ModelRef};

pub fn run(flags: &ModelArgs, cmd: ModelsCommand) -> Result<i32, Failure> {
    let setup = Setup::new(flags)?;
    match cmd {
        ModelsCommand::List { json } => list(&setup, json),
        ModelsCommand::Pull { name, force, quantize } => pull(&setup, &name, force, quantize.as_deref()),
        ModelsCommand::Info { name, json } => info(&setup, name, json),
        ModelsCommand::Rm { name } => rm(&setup, &name),
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
            .map(|m| {
                serde_json::json!({
                    "name": m.entry.name, "description": m.entry.description, "file": m.entry.file,
                    "size": m.entry.size, "present": m.present, "damaged": m.damaged, "path": m.path,
                    "license": m.entry.license, "chat_template": m.entry.chat_template,
                    "sources": m.entry.sources.iter().map(|s| s.label()).collect::<Vec<_>>(),
                })
            })
            .chain(extra.iter().map(|(p, size)| serde_json::json!({ "name": p.file_name().map(|f| f.to_string_lossy()), "size": size, "present": true, "path": p })))
            .collect();
        println!("{}", serde_json::json!({ "store": setup.store.dir, "models": rows }));
        return Ok(0);
    }
    sayln!("{:<15} {:>7}  {:<10} {:<19} DESCRIPTION", "NAME", "SIZE", "STATUS", "LICENSE");
    for m in &models {
        let status = if m.present {
            "present"
        } else if m.damaged {
            "damaged"
        } else {
            "-"
        };
        let mark = if m.entry.name == *default || m.entry.aliases.contains(default) { "*" } else { " " };
        sayln!(
            "{mark}{:<14} {:>7}  {:<10} {:<19} {}",
            m.entry.name,
            human_bytes(m.entry.size),
            status,
            m.entry.license,
            m.entry.description
        );
    }
    for (path, size) in &extra {
        sayln!(" {:<14} {:>7}  {:<10} {:<19} {}", "(file)", human_bytes(*size), "present", "-", tilde(path));
    }
    sayln!("\nstore: {}   (* = default; `moat models pull NAME` downloads)", tilde(&setup.store.dir));
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
    let model = ModelRef::parse(name)?;
    let opts = setup.pull_options(false);
    match &model {
        ModelRef::Local(p) => {
            gguf::inspect(p).map_err(crate::models::ModelError::from)?;
            warnln!("moat: {} is a local file; nothing to download", p.display());
        }
        ModelRef::Registry(entry) => {
            let path = setup.store.path_of(entry);
            let present = std::fs::metadata(&path).map(|m| m.len() == entry.size).unwrap_or(false);
            if present && !force {
                warnln!("moat: {} is already present at {} (use --force to download again)", entry.name, tilde(&path));
            } else {
                warnln!("moat: pulling {} ({}) into {}", entry.name, human_bytes(entry.size), tilde(&setup.store.dir));
                Downloader::new(opts).pull_entry(entry, &path)?;
            }
        }
        ModelRef::Remote { source, file, store_subdir } => {
            let path = setup.store.dir.join(store_subdir).join(file);
            if path.exists() && !force {
                warnln!("moat: {} is already present (use --force to download again)", tilde(&path));
            } else {
                Downloader::new(opts).pull_unverified(source, &path)?;
            }
        }
    }
    if let Some(ty) = quantize {
        let path = match &model {
            ModelRef::Local(p) => p.clone(),
            ModelRef::Registry(entry) => setup.store.path_of(entry),
            ModelRef::Remote { file, store_subdir, .. } => setup.store.dir.join(store_subdir).join(file),
        };
        super::quantize::after_pull(setup, &path, ty)?;
    }
    Ok(0)
}

fn info(setup: &Setup, name: Option<String>, json: bool) -> Result<i32, Failure> {
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
                    "sources": e.sources.iter().map(|s| s.label()).collect::<Vec<_>>()})),
            })
        );
        return Ok(0);
    }
    let row = |k: &str, v: String| sayln!("{k:<16} {v}");
    row("model", info.name.clone());
    if let Some(e) = entry {
        row("description", e.description.clone());
        row("license", e.license.clone());
        row("sources", e.sources.iter().map(|s| s.label()).collect::<Vec<_>>().join(", "));
    }
    row("file", format!("{} ({})", tilde(&path), human_bytes(header.file_size)));
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
    match ModelRef::parse(name)? {
        ModelRef::Registry(entry) => {
            if setup.store.remove(entry)? {
                warnln!("moat: removed {}", entry.name);
            } else {
                warnln!("moat: {} was not downloaded", entry.name);
            }
            Ok(0)
        }
        _ => Err(Failure::usage(format!("`{name}` is not a registry model; delete the file yourself"))),
    }
}
