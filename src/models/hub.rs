//! Hugging Face Hub: the endpoint and token, a repository's file listing with each file's LFS
//! sha256 and size (what downloads are verified against), and choosing a GGUF file by
//! quantisation the way `llama-cli -hf owner/repo[:quant]` does.

use super::ModelError;

/// The quantisation picked when an `hf:owner/repo` spec names none (as `llama-cli -hf` does).
pub const DEFAULT_QUANT: &str = "Q4_K_M";

/// The default hub, used when neither `models.hf_url` nor `HF_ENDPOINT` names another.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The hub to talk to: `configured` (`models.hf_url`) when set, else `HF_ENDPOINT` (the variable
/// huggingface_hub reads), else <https://huggingface.co>; without a trailing slash.
pub fn endpoint(configured: &str) -> String {
    let from_env = std::env::var("HF_ENDPOINT").ok().filter(|v| !v.trim().is_empty());
    let e = if !configured.trim().is_empty() {
        configured.trim().to_string()
    } else {
        from_env.unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
    };
    e.trim().trim_end_matches('/').to_string()
}

/// The access token for gated and private repositories: `HF_TOKEN`, else the legacy
/// `HUGGING_FACE_HUB_TOKEN`, else the file `huggingface-cli login` writes (`HF_TOKEN_PATH`, or
/// `$HF_HOME/token`, or `~/.cache/huggingface/token`).
pub fn token() -> Option<String> {
    let nonempty = |v: String| Some(v.trim().to_string()).filter(|t| !t.is_empty());
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Some(t) = std::env::var(var).ok().and_then(nonempty) {
            return Some(t);
        }
    }
    let path = std::env::var_os("HF_TOKEN_PATH").map(std::path::PathBuf::from).or_else(|| {
        std::env::var_os("HF_HOME")
            .map(|h| std::path::PathBuf::from(h).join("token"))
            .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join(".cache/huggingface/token")))
    })?;
    std::fs::read_to_string(path).ok().and_then(nonempty)
}

/// One file of a repository as the hub lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct HubFile {
    /// Path inside the repository (`sub/dir/name.gguf`).
    pub path: String,
    /// Size in bytes (the LFS object's size for an LFS file).
    pub size: u64,
    /// The LFS object's sha256 (lowercase hex); `None` for a file not stored in LFS.
    pub sha256: Option<String>,
}

/// Reads the hub's API with one agent, sending the token where there is one.
pub struct Hub<'a> {
    pub agent: &'a ureq::Agent,
    pub endpoint: String,
    pub token: Option<String>,
}

impl Hub<'_> {
    /// The files under `dir` (the whole repository when `None`) at `revision` (default `main`),
    /// following the listing's pages. Errors (one line): the hub unreachable, an unknown
    /// repository or revision, a gated repository without a usable token (saying to set
    /// HF_TOKEN), an answer that is not the expected JSON.
    pub fn list(&self, repo: &str, revision: Option<&str>, dir: Option<&str>) -> Result<Vec<HubFile>, ModelError> {
        let rev = encode(revision.unwrap_or("main"));
        let mut url = format!("{}/api/models/{repo}/tree/{rev}", self.endpoint);
        if let Some(d) = dir.filter(|d| !d.is_empty()) {
            url.push('/');
            url.push_str(d);
        }
        url.push_str(if dir.is_none() { "?recursive=true" } else { "" });
        let mut out = Vec::new();
        // The hub pages long listings (1000 entries a page); a GGUF repository has a few dozen.
        for _ in 0..100 {
            let resp = self.get(&url).call().map_err(|e| hub_error(repo, &url, e, self.token.is_some()))?;
            let next = resp.header("link").and_then(next_link);
            let items: serde_json::Value = resp
                .into_json()
                .map_err(|e| ModelError::Download(format!("hf:{repo}: the hub's file list is unreadable: {e}")))?;
            let items = items
                .as_array()
                .ok_or_else(|| ModelError::Download(format!("hf:{repo}: the hub's file list is not a JSON array")))?;
            for it in items.iter().filter(|i| i["type"] == "file") {
                let Some(path) = it["path"].as_str() else { continue };
                let lfs = &it["lfs"];
                let sha256 = lfs["oid"]
                    .as_str()
                    .or_else(|| lfs["sha256"].as_str())
                    .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                    .map(str::to_ascii_lowercase);
                let size = lfs["size"].as_u64().or_else(|| it["size"].as_u64()).unwrap_or(0);
                out.push(HubFile { path: path.to_string(), size, sha256 });
            }
            match next {
                Some(n) => url = n,
                None => return Ok(out),
            }
        }
        Err(ModelError::Download(format!("hf:{repo}: the hub's file list did not end after 100 pages")))
    }

    /// The listing entry of one file (matched exactly, else case-insensitively when only one
    /// file matches that way). Errors as [`Hub::list`], and a file the repository does not have.
    pub fn file(&self, repo: &str, revision: Option<&str>, path: &str) -> Result<HubFile, ModelError> {
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let files = self.list(repo, revision, Some(dir))?;
        if let Some(f) = files.iter().find(|f| f.path == path) {
            return Ok(f.clone());
        }
        let ci: Vec<&HubFile> = files.iter().filter(|f| f.path.eq_ignore_ascii_case(path)).collect();
        match ci.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(ModelError::Download(format!(
                "hf:{repo} has no file {path}{}",
                revision.map(|r| format!(" at revision {r}")).unwrap_or_default()
            ))),
        }
    }

    /// The download URL of a file.
    pub fn resolve_url(&self, repo: &str, revision: Option<&str>, path: &str) -> String {
        format!("{}/{repo}/resolve/{}/{path}", self.endpoint, encode(revision.unwrap_or("main")))
    }

    /// A GET with the token (ureq drops it on a redirect to another host, such as the CDN). No
    /// overall timeout: a download may take hours; the agent bounds each connect and read.
    pub fn get(&self, url: &str) -> ureq::Request {
        let req = self.agent.get(url);
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }
}

/// Percent-encodes the `/` of a revision such as `refs/pr/1`, as the hub's URLs need.
fn encode(rev: &str) -> String {
    rev.replace('%', "%25").replace('/', "%2F")
}

/// The `rel="next"` URL of an HTTP `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_string()).filter(|u| !u.is_empty())
    })
}

/// A hub error as one line that says what to do: 401/403 name HF_TOKEN and the licence page.
pub fn hub_error(repo: &str, url: &str, e: ureq::Error, have_token: bool) -> ModelError {
    match e {
        ureq::Error::Status(code, resp) => {
            let kind = resp.header("x-error-code").unwrap_or_default().to_string();
            let page = format!("https://huggingface.co/{repo}");
            let msg = match code {
                401 | 403 if kind == "GatedRepo" || code == 403 => {
                    if have_token {
                        format!("hf:{repo} is gated (HTTP {code}) and your HF_TOKEN has no access to it: accept its licence at {page} with the account the token belongs to")
                    } else {
                        format!("hf:{repo} is gated (HTTP {code}): accept its licence at {page}, then set HF_TOKEN to a read token (https://huggingface.co/settings/tokens) and pull again")
                    }
                }
                401 if have_token => format!(
                    "hf:{repo}: HTTP 401: the repository does not exist, or your HF_TOKEN is not valid for it; check the name and the token"
                ),
                401 => format!(
                    "hf:{repo}: HTTP 401: the repository does not exist, or it is private or gated; check the name, or set HF_TOKEN to a token that can read it"
                ),
                404 => format!("hf:{repo}: not found on the hub (HTTP 404); check the repository, revision and file name"),
                429 => format!("hf:{repo}: the hub is rate-limiting this address (HTTP 429); wait a minute, or set HF_TOKEN"),
                _ => format!("{url}: HTTP {code}"),
            };
            ModelError::Download(msg)
        }
        ureq::Error::Transport(t) => ModelError::Download(format!("{url}: unreachable ({})", t.kind())),
    }
}

/// The quantisation tag in a GGUF file name (`Q4_K_M`, `IQ4_XS`, `F16`, `BF16` …), upper-cased:
/// the last `-`/`.`-separated word of the name (split suffix and `.gguf` removed) that looks
/// like one.
pub fn quant_tag(path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.strip_suffix(".gguf").or_else(|| name.strip_suffix(".GGUF"))?;
    let stem = split_part(stem).map(|(prefix, _, _)| prefix).unwrap_or(stem);
    stem.rsplit(['-', '.']).find(|w| is_quant_word(w)).map(str::to_ascii_uppercase)
}

fn is_quant_word(w: &str) -> bool {
    let u = w.to_ascii_uppercase();
    let quant_like = |rest: &str| rest.chars().next().is_some_and(|c| c.is_ascii_digit());
    (u.starts_with("IQ") && quant_like(&u[2..]))
        || (u.starts_with("TQ") && quant_like(&u[2..]))
        || (u.starts_with('Q') && quant_like(&u[1..]))
        || matches!(u.as_str(), "F16" | "F32" | "BF16")
        || u.starts_with("MXFP4")
}

/// `name-00001-of-00003` → (`name`, 1, 3): a llama.cpp split file's stem.
pub fn split_part(stem: &str) -> Option<(&str, u32, u32)> {
    let (rest, total) = stem.rsplit_once("-of-")?;
    let (prefix, index) = rest.rsplit_once('-')?;
    let ok = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !ok(index) || !ok(total) {
        return None;
    }
    let (i, n) = (index.parse().ok()?, total.parse().ok()?);
    (i >= 1 && i <= n).then_some((prefix, i, n))
}

/// A split model's parts found so far: (directory + prefix, part count, (index, file) pairs).
type SplitSet<'a> = (String, u32, Vec<(u32, &'a HubFile)>);

/// What to download for one model: a single file, or every part of a split set in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    pub files: Vec<HubFile>,
}

/// Chooses the GGUF of quantisation `quant` (default `Q4_K_M`) among a repository's files, as
/// `llama-cli -hf` does: the tag matched case-insensitively as a word of the file name;
/// projector (`mmproj`) files and imatrix data left out; a single file preferred over a split
/// set; a split set complete (all N parts). Errors (one line): no file of that quantisation
/// (listing the ones there are), or more than one (listing them).
pub fn pick(repo: &str, files: &[HubFile], quant: Option<&str>) -> Result<Pick, ModelError> {
    let want = quant.unwrap_or(DEFAULT_QUANT).to_ascii_uppercase();
    let ggufs: Vec<&HubFile> = files
        .iter()
        .filter(|f| f.path.to_ascii_lowercase().ends_with(".gguf"))
        .filter(|f| {
            let name = f.path.rsplit('/').next().unwrap_or(&f.path).to_ascii_lowercase();
            !name.contains("mmproj") && !name.contains("imatrix")
        })
        .collect();
    let matching: Vec<&HubFile> =
        ggufs.iter().copied().filter(|f| quant_tag(&f.path).as_deref() == Some(&want)).collect();
    let singles: Vec<&HubFile> = matching.iter().copied().filter(|f| split_part(stem_of(&f.path)).is_none()).collect();
    if let [one] = singles.as_slice() {
        return Ok(Pick { files: vec![(*one).clone()] });
    }
    if singles.len() > 1 {
        let names: Vec<&str> = singles.iter().map(|f| f.path.as_str()).collect();
        return Err(ModelError::Download(format!(
            "hf:{repo} has {} {want} files ({}); name one with hf:{repo}/FILE.gguf",
            names.len(),
            names.join(", ")
        )));
    }
    // Split sets: group the parts by their directory and prefix.
    let mut sets: Vec<SplitSet<'_>> = Vec::new();
    for f in &matching {
        let stem = stem_of(&f.path);
        let Some((prefix, i, n)) = split_part(stem) else { continue };
        let key = format!("{}{prefix}", &f.path[..f.path.len() - f.path.rsplit('/').next().unwrap_or("").len()]);
        match sets.iter_mut().find(|(k, total, _)| *k == key && *total == n) {
            Some((_, _, parts)) => parts.push((i, f)),
            None => sets.push((key, n, vec![(i, f)])),
        }
    }
    match sets.as_slice() {
        [] => {
            let mut have: Vec<String> = ggufs.iter().filter_map(|f| quant_tag(&f.path)).collect();
            have.sort();
            have.dedup();
            Err(ModelError::Download(if have.is_empty() {
                format!("hf:{repo} has no GGUF files")
            } else {
                format!("hf:{repo} has no {want} file; it has {} (pick one with hf:{repo}:QUANT)", have.join(", "))
            }))
        }
        [(key, n, parts)] => {
            let mut parts = parts.clone();
            parts.sort_by_key(|(i, _)| *i);
            parts.dedup_by_key(|(i, _)| *i);
            if parts.len() as u32 != *n {
                return Err(ModelError::Download(format!(
                    "hf:{repo}: the split model {key} lists {} of its {n} parts; it cannot be loaded",
                    parts.len()
                )));
            }
            Ok(Pick { files: parts.into_iter().map(|(_, f)| f.clone()).collect() })
        }
        many => {
            let names: Vec<String> = many.iter().map(|(k, n, _)| format!("{k} ({n} parts)")).collect();
            Err(ModelError::Download(format!(
                "hf:{repo} has {} split {want} models ({}); name the first part with hf:{repo}/FILE.gguf",
                names.len(),
                names.join(", ")
            )))
        }
    }
}

/// The file name without directory and `.gguf`.
fn stem_of(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".gguf").or_else(|| name.strip_suffix(".GGUF")).unwrap_or(name)
}

/// Every part of the split set `path` is the first part of, in order (just `path` when it is not
/// split). Errors: a part the listing lacks.
pub fn split_set(repo: &str, files: &[HubFile], first: &HubFile) -> Result<Vec<HubFile>, ModelError> {
    let Some((prefix, _, n)) = split_part(stem_of(&first.path)) else { return Ok(vec![first.clone()]) };
    let dir = &first.path[..first.path.len() - first.path.rsplit('/').next().unwrap_or("").len()];
    (1..=n)
        .map(|i| {
            let want = format!("{dir}{prefix}-{i:05}-of-{n:05}.gguf");
            files.iter().find(|f| f.path == want).cloned().ok_or_else(|| {
                ModelError::Download(format!("hf:{repo}: the split model lacks part {want}; it cannot be loaded"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str) -> HubFile {
        HubFile { path: path.into(), size: 1, sha256: Some("a".repeat(64)) }
    }

    fn paths(p: &Pick) -> Vec<&str> {
        p.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn quant_tags_are_read_from_names() {
        assert_eq!(quant_tag("Qwen2.5-7B-Instruct-Q4_K_M.gguf").as_deref(), Some("Q4_K_M"));
        assert_eq!(quant_tag("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf").as_deref(), Some("Q4_K_M"));
        assert_eq!(quant_tag("SmolLM2-135M-Instruct.Q4_1.gguf").as_deref(), Some("Q4_1"));
        assert_eq!(quant_tag("sub/Model-UD-IQ2_XXS.gguf").as_deref(), Some("IQ2_XXS"));
        assert_eq!(quant_tag("model-bf16.gguf").as_deref(), Some("BF16"));
        // A size such as 7B or a version such as v0.3 is not a quantisation.
        assert_eq!(quant_tag("Mistral-7B-Instruct-v0.3.gguf"), None);
        assert_eq!(quant_tag("README.md"), None);
        assert_eq!(split_part("m-Q8_0-00002-of-00003"), Some(("m-Q8_0", 2, 3)));
        assert_eq!(split_part("m-Q8_0-2-of-3"), None);
        assert_eq!(split_part("m-00004-of-00003"), None);
    }

    #[test]
    fn picks_q4_k_m_by_default_and_a_named_quant() {
        let files = [
            f("README.md"),
            f("Model-Q4_K_M.gguf"),
            f("Model-Q8_0.gguf"),
            f("Model-IQ4_K_M.gguf"),
            f("mmproj-Model-Q4_K_M.gguf"),
            f("Model-Q4_K_M.imatrix.gguf"),
        ];
        assert_eq!(paths(&pick("o/r", &files, None).unwrap()), ["Model-Q4_K_M.gguf"]);
        assert_eq!(paths(&pick("o/r", &files, Some("q8_0")).unwrap()), ["Model-Q8_0.gguf"]);
        let e = pick("o/r", &files, Some("Q5_K_M")).unwrap_err().to_string();
        assert_eq!(e, "hf:o/r has no Q5_K_M file; it has IQ4_K_M, Q4_K_M, Q8_0 (pick one with hf:o/r:QUANT)");
        let e = pick("o/r", &[f("x.txt")], None).unwrap_err().to_string();
        assert!(e.contains("no GGUF files"), "{e}");
    }

    #[test]
    fn prefers_a_single_file_and_fetches_every_split_part() {
        let split = [
            f("Big-Q8_0/Big-Q8_0-00002-of-00002.gguf"),
            f("Big-Q8_0/Big-Q8_0-00001-of-00002.gguf"),
            f("Big-Q4_K_M.gguf"),
        ];
        assert_eq!(paths(&pick("o/r", &split, None).unwrap()), ["Big-Q4_K_M.gguf"]);
        assert_eq!(
            paths(&pick("o/r", &split, Some("Q8_0")).unwrap()),
            ["Big-Q8_0/Big-Q8_0-00001-of-00002.gguf", "Big-Q8_0/Big-Q8_0-00002-of-00002.gguf"]
        );
        let incomplete = [f("Big-Q8_0-00001-of-00003.gguf"), f("Big-Q8_0-00003-of-00003.gguf")];
        assert!(pick("o/r", &incomplete, Some("Q8_0")).unwrap_err().to_string().contains("2 of its 3 parts"));
        let first = f("Big-Q8_0/Big-Q8_0-00001-of-00002.gguf");
        assert_eq!(split_set("o/r", &split, &first).unwrap().len(), 2);
        assert!(split_set("o/r", &split[1..], &first).is_err());
    }

    #[test]
    fn refuses_ambiguity_with_a_list() {
        let files = [f("A-Q4_K_M.gguf"), f("A-abliterated-Q4_K_M.gguf")];
        let e = pick("o/r", &files, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "hf:o/r has 2 Q4_K_M files (A-Q4_K_M.gguf, A-abliterated-Q4_K_M.gguf); name one with hf:o/r/FILE.gguf"
        );
        let sets = [f("a/A-Q4_K_M-00001-of-00001.gguf"), f("b/B-Q4_K_M-00001-of-00001.gguf")];
        assert!(pick("o/r", &sets, None).unwrap_err().to_string().contains("2 split Q4_K_M models"));
    }

    #[test]
    fn endpoint_and_link_parsing() {
        assert_eq!(endpoint("http://127.0.0.1:9/ "), "http://127.0.0.1:9");
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(
            next_link("<https://hf.co/api/models/o/r/tree/main?cursor=abc>; rel=\"next\"").as_deref(),
            Some("https://hf.co/api/models/o/r/tree/main?cursor=abc")
        );
        assert_eq!(next_link("<https://x>; rel=\"prev\""), None);
    }
}
