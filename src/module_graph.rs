//! The module graph, derived from the source: it has no cycles, and the top-level modules import
//! each other only as [`LAYERS`] (and README.md's architecture section) allow.
//!
//! The scan follows `mod` declarations from `src/lib.rs`, skips `#[cfg(test)]` items and modules,
//! comments, doc comments and string literals, and resolves every `use` tree (grouped, nested,
//! multi-line) and every `crate::…` / `super::…` / `self::…` path in code, including paths reached
//! through a name a `use` brought in and the `$crate::…` paths of a macro wherever it is invoked.
//! A reference from module `a::b::c` to `a::x::y` is an edge `a::b → a::x` in the graph of `a`'s
//! children; a reference to an ancestor (a child using its parent's types) or to a descendant (a
//! parent calling its children) is no edge, because that is how Rust modules are built. So each
//! module's children form one graph, and the crate's top-level modules form another.

use std::collections::{BTreeMap, BTreeSet};

/// A module's path from the crate root: `["engine", "worker"]`; the root is empty.
type ModPath = Vec<String>;

/// Which top-level module may import which: (module, layer, what it may import). A module whose
/// layer is `leaf` imports only the modules its row lists; any other module may import what its
/// row lists and every leaf. Each row lists only modules of lower rows, so the table is itself a
/// layering (`the_layering_table_is_acyclic`). A module missing here, or an import a row does not
/// allow, fails `top_level_imports_follow_the_layering_table`; README.md's architecture section
/// states the same table (`readme_states_the_layering_table`).
const LAYERS: &[(&str, &str, &[&str])] = &[
    (
        "cli",
        "entry",
        &[
            "tui", "repl", "chat", "commands", "finetune", "classify", "quantize", "engine", "prompts", "models",
            "config",
        ],
    ),
    ("tui", "front end", &["chat", "commands", "classify", "engine", "prompts", "models", "config"]),
    ("repl", "front end", &["chat", "commands", "classify", "engine", "prompts", "models", "config"]),
    ("chat", "conversation", &["commands", "classify", "engine", "prompts", "models", "config"]),
    ("commands", "slash commands", &["classify", "engine", "prompts", "models", "config"]),
    ("finetune", "model tools", &["classify", "engine", "models", "config"]),
    ("classify", "feature", &["engine", "prompts", "models", "config"]),
    ("quantize", "model tools", &["engine", "models", "config"]),
    ("engine", "inference", &["prompts", "models", "config"]),
    ("prompts", "prompt library", &["models", "config"]),
    ("models", "model files", &["config"]),
    ("config", "configuration", &[]),
    ("message", "leaf", &["text_input"]),
    ("sampling", "leaf", &["suggest"]),
    ("history", "leaf", &["atomic_write", "text_input"]),
    ("interrupt", "leaf", &["type_ahead"]),
    ("type_ahead", "leaf", &[]),
    ("exit", "leaf", &[]),
    ("clipboard", "leaf", &[]),
    ("text_input", "leaf", &[]),
    ("render", "leaf", &[]),
    ("atomic_write", "leaf", &[]),
    ("suggest", "leaf", &[]),
    ("rng", "leaf", &[]),
];

/// Edges skipped by the cycle check, each for a known cycle someone is removing. Delete an entry
/// when its cycle is gone: an entry whose edge is gone or in no cycle fails the test.
const KNOWN_CYCLE_EDGES: &[(&str, &str)] = &[];

/// A token of Rust source with comments, strings and literals already gone.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Splits source into identifiers, `::` and punctuation, dropping whitespace, comments (line,
/// nested block, doc), string/char/byte literals (raw ones too), lifetimes and numbers.
fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Skips to just past the closing quote of a (non-raw) string or char literal, counting lines.
    let skip_quoted = |i: &mut usize, line: &mut usize, quote: char| {
        while *i < c.len() {
            match c[*i] {
                '\\' => *i += 2,
                '\n' => {
                    *line += 1;
                    *i += 1
                }
                ch if ch == quote => {
                    *i += 1;
                    return;
                }
                _ => *i += 1,
            }
        }
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&c, i) {
            // r"…", r#"…"#, br"…", cr"…": no escapes; ends at a quote and as many hashes.
            i += hashes.0;
            let n = hashes.1;
            while i < c.len() {
                if c[i] == '"' && (1..=n).all(|k| at(i + k) == '#') {
                    i += 1 + n;
                    break;
                }
                if c[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            i += if ch == '"' { 1 } else { 2 };
            skip_quoted(&mut i, &mut line, '"');
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            if ch == 'b' {
                i += 1;
            }
            if at(i + 1) == '\\' || at(i + 2) == '\'' {
                i += 1;
                skip_quoted(&mut i, &mut line, '\'');
            } else {
                // A lifetime or label: `'a`.
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            if ch == 'r' && at(i + 1) == '#' {
                i += 2; // raw identifier r#type
            }
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Token { tok: Tok::Ident(c[start..i].iter().collect()), line });
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token { tok: Tok::PathSep, line });
            i += 2;
        } else {
            out.push(Token { tok: Tok::Punct(ch), line });
            i += 1;
        }
    }
    out
}

/// At a raw string literal (`r"`, `r#"`, `br#"`, `cr"`): (chars up to and including the opening
/// quote, number of hashes).
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if matches!(c.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None; // the end of an identifier such as `bar"`… is not a literal start
    }
    j += 1;
    let mut n = 0;
    while c.get(j) == Some(&'#') {
        n += 1;
        j += 1;
    }
    (c.get(j) == Some(&'"')).then_some((j + 1 - i, n))
}

/// A path as written, in the module it was written in.
#[derive(Debug, Clone)]
struct RawRef {
    module: ModPath,
    segs: Vec<String>,
    line: usize,
    via: Via,
}

#[derive(Debug, Clone, PartialEq)]
enum Via {
    /// A `use` item; `Some(name)` is the name it binds (`as` or the last segment).
    Use(Option<String>),
    /// A path in code.
    Path,
    /// `name!(…)`: the macro's `$crate::` paths apply here.
    Macro,
}

/// One file's findings.
#[derive(Debug, Default)]
struct FileScan {
    refs: Vec<RawRef>,
    /// Modules declared here: (path, inline or `mod x;`).
    modules: Vec<(ModPath, bool)>,
    /// `macro_rules! name { … }` → the `crate::…` paths its body names.
    macros: BTreeMap<String, Vec<Vec<String>>>,
}

fn ident(t: &[Token], i: usize) -> Option<&str> {
    match t.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

fn punct(t: &[Token], i: usize, p: char) -> bool {
    t.get(i).map(|t| &t.tok) == Some(&Tok::Punct(p))
}

fn path_sep(t: &[Token], i: usize) -> bool {
    t.get(i).map(|t| &t.tok) == Some(&Tok::PathSep)
}

/// From an opening bracket at `i`, the index just past its matching close.
fn skip_group(t: &[Token], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < t.len() {
        match t[i].tok {
            Tok::Punct('{' | '(' | '[') => depth += 1,
            Tok::Punct('}' | ')' | ']') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// From the first token of an item (after its attributes were seen), the index just past it.
fn skip_item(t: &[Token], mut i: usize) -> usize {
    while punct(t, i, '#') {
        i = skip_group(t, i + 1);
    }
    let mut k = i;
    if ident(t, k) == Some("pub") {
        k += 1;
        if punct(t, k, '(') {
            k = skip_group(t, k);
        }
    }
    let is_use = ident(t, k) == Some("use");
    while i < t.len() {
        match t[i].tok {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('(' | '[') => i = skip_group(t, i),
            Tok::Punct('{') if is_use => i = skip_group(t, i),
            Tok::Punct('{') => return skip_group(t, i),
            _ => i += 1,
        }
    }
    i
}

/// Whether the attribute `#[…]` spanning `t[from..to]` is `cfg(test)` or another cfg that holds
/// only under test (`cfg(all(test, …))`).
fn is_cfg_test(t: &[Token], from: usize, to: usize) -> bool {
    let words: Vec<&str> = (from..to).filter_map(|k| ident(t, k)).collect();
    words.first() == Some(&"cfg") && words.contains(&"test") && !words.contains(&"not") && !words.contains(&"any")
}

/// Parses a `use` tree starting at `i`, pushing each leaf path (with the name it binds).
fn use_tree(t: &[Token], i: &mut usize, prefix: Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut path = prefix;
    if path_sep(t, *i) {
        *i += 1;
        path.push("::".into()); // `use ::name` is an external crate
    }
    loop {
        if punct(t, *i, '{') {
            *i += 1;
            while *i < t.len() && !punct(t, *i, '}') {
                let before = *i;
                use_tree(t, i, path.clone(), out);
                if punct(t, *i, ',') {
                    *i += 1;
                } else if *i == before {
                    *i += 1; // malformed: make progress
                }
            }
            *i += 1;
            return;
        }
        if punct(t, *i, '*') {
            *i += 1;
            path.push("*".into());
            out.push((path, None));
            return;
        }
        let Some(seg) = ident(t, *i) else { return };
        path.push(seg.to_string());
        *i += 1;
        if path_sep(t, *i) {
            *i += 1;
            continue;
        }
        let mut bound = None;
        if ident(t, *i) == Some("as") {
            bound = ident(t, *i + 1).map(str::to_string);
            *i += 2;
        }
        if path.last().map(String::as_str) == Some("self") {
            path.pop(); // `use a::b::{self}` names `a::b`
        }
        let bound = bound.or_else(|| path.last().cloned());
        out.push((path, bound));
        return;
    }
}

/// Scans one file that holds module `module`.
fn scan_file(src: &str, module: &ModPath) -> FileScan {
    let t = tokenize(src);
    let mut scan = FileScan::default();
    // One entry per open `{`: the inline module it opens, if any.
    let mut scopes: Vec<Option<ModPath>> = Vec::new();
    let current = |scopes: &Vec<Option<ModPath>>| scopes.iter().rev().find_map(|s| s.clone()).unwrap_or(module.clone());
    let mut i = 0;
    while i < t.len() {
        let here = current(&scopes);
        match &t[i].tok {
            Tok::Punct('#') => {
                let open = if punct(&t, i + 1, '!') { i + 2 } else { i + 1 };
                if punct(&t, open, '[') {
                    let close = skip_group(&t, open);
                    if open == i + 1 && is_cfg_test(&t, open + 1, close) {
                        i = skip_item(&t, close);
                        continue;
                    }
                }
                i += 1;
            }
            Tok::Punct('{') => {
                scopes.push(None);
                i += 1;
            }
            Tok::Punct('}') => {
                scopes.pop();
                i += 1;
            }
            Tok::Ident(w) if w == "mod" && ident(&t, i + 1).is_some() => {
                let mut path = here.clone();
                path.push(ident(&t, i + 1).unwrap_or_default().to_string());
                if punct(&t, i + 2, '{') {
                    scan.modules.push((path.clone(), true));
                    scopes.push(Some(path));
                    i += 3;
                } else {
                    scan.modules.push((path, false));
                    i += 2;
                }
            }
            Tok::Ident(w) if w == "macro_rules" && punct(&t, i + 1, '!') => {
                let name = ident(&t, i + 2).unwrap_or_default().to_string();
                let end = skip_group(&t, i + 3);
                let mut paths = Vec::new();
                let mut k = i + 3;
                while k < end {
                    if ident(&t, k) == Some("crate") && path_sep(&t, k + 1) {
                        let (segs, next) = path_at(&t, k);
                        paths.push(segs);
                        k = next;
                    } else {
                        k += 1;
                    }
                }
                scan.macros.insert(name, paths);
                i = end;
            }
            Tok::Ident(w) if w == "use" && !path_sep(&t, i.wrapping_sub(1)) => {
                let line = t[i].line;
                let mut k = i + 1;
                let mut leaves = Vec::new();
                use_tree(&t, &mut k, Vec::new(), &mut leaves);
                for (segs, bound) in leaves {
                    scan.refs.push(RawRef { module: here.clone(), segs, line, via: Via::Use(bound) });
                }
                i = k.max(i + 1);
            }
            Tok::Ident(name)
                if punct(&t, i + 1, '!')
                    && (punct(&t, i + 2, '(') || punct(&t, i + 2, '[') || punct(&t, i + 2, '{')) =>
            {
                scan.refs.push(RawRef { module: here, segs: vec![name.clone()], line: t[i].line, via: Via::Macro });
                i += 2;
            }
            Tok::Ident(_) if path_sep(&t, i + 1) && !path_sep(&t, i.wrapping_sub(1)) => {
                let line = t[i].line;
                let (segs, next) = path_at(&t, i);
                scan.refs.push(RawRef { module: here, segs, line, via: Via::Path });
                i = next;
            }
            _ => i += 1,
        }
    }
    scan
}

/// The path `a::b::c` starting at `i` (an identifier), and the index after it.
fn path_at(t: &[Token], mut i: usize) -> (Vec<String>, usize) {
    let mut segs = Vec::new();
    while let Some(s) = ident(t, i) {
        segs.push(s.to_string());
        if path_sep(t, i + 1) && ident(t, i + 2).is_some() {
            i += 2;
        } else {
            return (segs, i + 1);
        }
    }
    (segs, i)
}

/// A reference that names a module of the crate: from where, to which module, written how.
#[derive(Debug, Clone)]
struct Reference {
    from: ModPath,
    to: ModPath,
    file: String,
    line: usize,
    written: String,
}

/// The crate as scanned: every module and every reference between its modules.
#[derive(Debug, Default)]
struct CrateGraph {
    modules: BTreeSet<ModPath>,
    refs: Vec<Reference>,
}

/// Scans the crate whose `src/` files `read` returns (by path relative to `src/`, `/`-separated),
/// following `mod` declarations from `lib.rs`.
fn scan_crate(read: &dyn Fn(&str) -> Option<String>) -> Result<CrateGraph, String> {
    let mut graph = CrateGraph::default();
    graph.modules.insert(Vec::new());
    let mut scans: Vec<(String, FileScan)> = Vec::new();
    let mut queue: Vec<(String, ModPath)> = vec![("lib.rs".into(), Vec::new())];
    while let Some((file, module)) = queue.pop() {
        let src = read(&file).ok_or_else(|| format!("cannot read src/{file}"))?;
        let scan = scan_file(&src, &module);
        // `mod x;` in lib.rs or a/mod.rs lives in the same folder; in a/b.rs, in a/b/.
        let dir = if file == "lib.rs" || file.ends_with("/mod.rs") || file == "mod.rs" {
            file.rsplit_once('/').map(|(d, _)| format!("{d}/")).unwrap_or_default()
        } else {
            format!("{}/", file.trim_end_matches(".rs"))
        };
        for (path, inline) in &scan.modules {
            graph.modules.insert(path.clone());
            if *inline {
                continue;
            }
            // Inline modules between the file's module and the declared one add folders.
            let nested = path[module.len()..path.len() - 1].join("/");
            let nested = if nested.is_empty() { String::new() } else { format!("{nested}/") };
            let name = &path[path.len() - 1];
            let flat = format!("{dir}{nested}{name}.rs");
            let folder = format!("{dir}{nested}{name}/mod.rs");
            let found = [flat, folder].into_iter().find(|f| read(f).is_some());
            let found = found.ok_or_else(|| format!("src/{file}: no file for module `{}`", path.join("::")))?;
            queue.push((found, path.clone()));
        }
        scans.push((file, scan));
    }
    let macros: BTreeMap<String, Vec<Vec<String>>> =
        scans.iter().flat_map(|(_, s)| s.macros.iter().map(|(k, v)| (k.clone(), v.clone()))).collect();
    for (file, scan) in &scans {
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut globs: Vec<Vec<String>> = Vec::new();
        let mut refs: Vec<(ModPath, Vec<String>, usize, String)> = Vec::new();
        // `use` first: later paths may start with a name a `use` brought in.
        for r in scan.refs.iter().filter(|r| matches!(r.via, Via::Use(_))) {
            let Some(abs) = resolve(&graph.modules, &r.module, &r.segs, &BTreeMap::new(), &[]) else { continue };
            if abs.last().map(String::as_str) == Some("*") {
                globs.push(abs[..abs.len() - 1].to_vec());
            } else if let Via::Use(Some(bound)) = &r.via {
                if bound != "_" {
                    aliases.insert(bound.clone(), abs.clone());
                }
            }
            refs.push((r.module.clone(), abs, r.line, format!("use {}", r.segs.join("::"))));
        }
        for r in &scan.refs {
            match r.via {
                Via::Use(_) => {}
                Via::Path => {
                    if let Some(abs) = resolve(&graph.modules, &r.module, &r.segs, &aliases, &globs) {
                        refs.push((r.module.clone(), abs, r.line, r.segs.join("::")));
                    }
                }
                Via::Macro => {
                    for abs in macros.get(&r.segs[0]).into_iter().flatten() {
                        refs.push((
                            r.module.clone(),
                            abs[1..].to_vec(),
                            r.line,
                            format!("{}! → {}", r.segs[0], abs.join("::")),
                        ));
                    }
                }
            }
        }
        for (from, abs, line, written) in refs {
            let to = (0..=abs.len())
                .rev()
                .map(|n| abs[..n].to_vec())
                .find(|p| graph.modules.contains(p))
                .unwrap_or_default();
            graph.refs.push(Reference { from, to, file: format!("src/{file}"), line, written });
        }
    }
    Ok(graph)
}

/// The absolute path `segs` names when written in module `here`, or `None` when it is outside
/// the crate (std, a dependency, a local item).
fn resolve(
    modules: &BTreeSet<ModPath>,
    here: &ModPath,
    segs: &[String],
    aliases: &BTreeMap<String, Vec<String>>,
    globs: &[Vec<String>],
) -> Option<Vec<String>> {
    let first = segs.first()?.as_str();
    let with = |base: &[String], rest: &[String]| -> Vec<String> { base.iter().chain(rest).cloned().collect() };
    match first {
        "crate" => Some(segs[1..].to_vec()),
        "self" => Some(with(here, &segs[1..])),
        "super" => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            let base = here.get(..here.len().checked_sub(ups)?)?;
            Some(with(base, &segs[ups..]))
        }
        _ => {
            if modules.contains(&with(here, &segs[..1])) {
                return Some(with(here, segs));
            }
            if let Some(base) = aliases.get(first) {
                return Some(with(base, &segs[1..]));
            }
            globs.iter().find(|g| modules.contains(&with(g, &segs[..1]))).map(|g| with(g, segs))
        }
    }
}

/// An edge in the graph of `parent`'s children, with where it comes from.
type Edges = BTreeMap<(String, String), Vec<Reference>>;

/// Per parent module: the edges between its children (child names, not paths).
fn child_graphs(graph: &CrateGraph) -> BTreeMap<ModPath, Edges> {
    let mut out: BTreeMap<ModPath, Edges> = BTreeMap::new();
    for r in &graph.refs {
        let common = r.from.iter().zip(&r.to).take_while(|(a, b)| a == b).count();
        if common < r.from.len() && common < r.to.len() {
            let parent = r.from[..common].to_vec();
            let edge = (r.from[common].clone(), r.to[common].clone());
            out.entry(parent).or_default().entry(edge).or_default().push(r.clone());
        }
    }
    out
}

/// A child's full path written out: `engine::worker`, or `chat` at the top.
fn qualified(parent: &[String], child: &str) -> String {
    parent.iter().map(String::as_str).chain([child]).collect::<Vec<_>>().join("::")
}

/// The strongly connected groups of more than one node, each sorted, in a stable order.
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for (a, b) in edges {
                if *a == n && seen.insert(b.clone()) {
                    stack.push(b.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for n in &nodes {
        if !reaches[n].contains(*n) {
            continue;
        }
        let group: Vec<String> = nodes
            .iter()
            .filter(|m| reaches[n].contains(**m) && reaches[*m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        groups.insert(group);
    }
    groups.into_iter().collect()
}

/// Every cycle in every child graph, with the edges that make it, one example each; the `known`
/// edges are left out. Also returns the `known` entries that are stale: no such edge, or an edge
/// that is no longer part of any cycle.
fn cycle_report(graph: &CrateGraph, known: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let mut used = BTreeSet::new();
    let mut found = Vec::new();
    for (parent, edges) in child_graphs(graph) {
        let all: BTreeSet<(String, String)> = edges.keys().cloned().collect();
        let in_cycle = cycles(&all);
        let kept: BTreeSet<(String, String)> = all
            .iter()
            .filter(|(a, b)| {
                let pair = (qualified(&parent, a), qualified(&parent, b));
                let skip = known.iter().any(|(x, y)| *x == pair.0 && *y == pair.1);
                if skip && in_cycle.iter().any(|g| g.contains(a) && g.contains(b)) {
                    used.insert(pair);
                }
                !skip
            })
            .cloned()
            .collect();
        for group in cycles(&kept) {
            let names: Vec<String> = group.iter().map(|g| qualified(&parent, g)).collect();
            let mut text = format!("cycle: {}", names.join(" ↔ "));
            for (a, b) in kept.iter().filter(|(a, b)| group.contains(a) && group.contains(b)) {
                let r = &edges[&(a.clone(), b.clone())][0];
                let more = edges[&(a.clone(), b.clone())].len() - 1;
                let more = if more > 0 { format!(" (+{more} more)") } else { String::new() };
                text += &format!(
                    "\n    {} → {}: {}:{} `{}`{more}",
                    qualified(&parent, a),
                    qualified(&parent, b),
                    r.file,
                    r.line,
                    r.written
                );
            }
            found.push(text);
        }
    }
    let stale = known
        .iter()
        .filter(|(a, b)| !used.contains(&(a.to_string(), b.to_string())))
        .map(|(a, b)| format!("{a} → {b}"))
        .collect();
    (found, stale)
}

/// Whether the layering table lets top-level module `from` import `to`.
fn allowed(layers: &[(&str, &str, &[&str])], from: &str, to: &str) -> bool {
    let row = |m: &str| layers.iter().find(|(name, _, _)| *name == m);
    let Some((_, layer, may)) = row(from) else { return false };
    may.contains(&to) || (*layer != "leaf" && row(to).is_some_and(|(_, l, _)| *l == "leaf"))
}

/// Top-level imports the layering table does not allow, and top-level modules it does not list.
fn layering_report(graph: &CrateGraph, layers: &[(&str, &str, &[&str])]) -> Vec<String> {
    let mut problems = Vec::new();
    let top: BTreeSet<&str> = graph.modules.iter().filter(|m| m.len() == 1).map(|m| m[0].as_str()).collect();
    for m in &top {
        if !layers.iter().any(|(name, _, _)| name == m) {
            problems.push(format!("module `{m}` is not in the layering table: add it with what it may import"));
        }
    }
    for (name, _, may) in layers {
        for m in std::iter::once(name).chain(may.iter()) {
            if !top.contains(m) {
                problems.push(format!("the layering table names `{m}`, which is not a top-level module"));
            }
        }
    }
    let graphs = child_graphs(graph);
    for ((from, to), refs) in graphs.get(&Vec::new()).into_iter().flatten() {
        if !allowed(layers, from, to) {
            let r = &refs[0];
            problems.push(format!("{from} → {to} is not allowed: {}:{} `{}`", r.file, r.line, r.written));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn this_crate() -> CrateGraph {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        scan_crate(&|rel| std::fs::read_to_string(src.join(rel)).ok()).expect("scan src/")
    }

    fn crate_of(files: &[(&str, &str)]) -> CrateGraph {
        let files: BTreeMap<String, String> = files.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect();
        scan_crate(&|rel| files.get(rel).cloned()).expect("scan")
    }

    fn edges_of(graph: &CrateGraph, parent: &[&str]) -> BTreeSet<(String, String)> {
        let parent: ModPath = parent.iter().map(|s| s.to_string()).collect();
        child_graphs(graph).remove(&parent).unwrap_or_default().into_keys().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn module_graph_has_no_cycles() {
        let graph = this_crate();
        assert!(graph.modules.len() > 30, "the scan found only {} modules", graph.modules.len());
        let (found, stale) = cycle_report(&graph, KNOWN_CYCLE_EDGES);
        assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
        assert!(
            stale.is_empty(),
            "KNOWN_CYCLE_EDGES entries match no edge any more; delete them: {}",
            stale.join(", ")
        );
    }

    #[test]
    fn top_level_imports_follow_the_layering_table() {
        let problems = layering_report(&this_crate(), LAYERS);
        assert!(problems.is_empty(), "layering:\n{}", problems.join("\n"));
    }

    #[test]
    fn the_layering_table_is_acyclic() {
        let edges: BTreeSet<(String, String)> = LAYERS
            .iter()
            .flat_map(|(from, _, _)| LAYERS.iter().map(move |(to, _, _)| (from.to_string(), to.to_string())))
            .filter(|(from, to)| from != to && allowed(LAYERS, from, to))
            .collect();
        assert_eq!(cycles(&edges), Vec::<Vec<String>>::new(), "LAYERS lets these modules import each other");
    }

    /// README.md's architecture section states the layering as a table `| module | layer | may import |`.
    #[test]
    fn readme_states_the_layering_table() {
        let readme =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
        let header = "| module | layer | may import |";
        let start = readme.find(header).expect("README.md has the layering table `| module | layer | may import |`");
        let stated: Vec<(String, String, Vec<String>)> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                let name = cells[0].trim_matches('`').to_string();
                let may = cells[2]
                    .split(',')
                    .map(|m| m.trim().trim_matches('`').to_string())
                    .filter(|m| !m.is_empty() && m != "—")
                    .collect();
                (name, cells[1].to_string(), may)
            })
            .collect();
        let coded: Vec<(String, String, Vec<String>)> = LAYERS
            .iter()
            .map(|(n, layer, may)| (n.to_string(), layer.to_string(), may.iter().map(|m| m.to_string()).collect()))
            .collect();
        assert_eq!(stated, coded, "README.md's layering table and LAYERS in src/module_graph.rs differ");
    }

    #[test]
    fn grouped_nested_and_multiline_use_trees_are_edges() {
        let g = crate_of(&[
            ("lib.rs", "mod a; mod b; mod c; mod d;"),
            ("a.rs", "use crate::{\n    b::{self, X},\n    c::{deep::Y as Z},\n};\n"),
            ("b.rs", ""),
            ("c.rs", "pub mod deep { }"),
            ("d.rs", "fn f() { let _ = crate::a::g(); }"),
        ]);
        assert_eq!(edges_of(&g, &[]), pairs(&[("a", "b"), ("a", "c"), ("d", "a")]));
    }

    #[test]
    fn comments_strings_and_test_modules_are_not_edges() {
        let g = crate_of(&[
            ("lib.rs", "mod a; mod b;"),
            (
                "a.rs",
                concat!(
                    "//! uses crate::b::X\n",
                    "/// see crate::b::Y\n",
                    "/* crate::b /* nested */ crate::b */\n",
                    "const S: &str = \"crate::b::Z\";\n",
                    "const R: &str = r#\"use crate::b;\"#;\n",
                    "const C: char = '\"'; fn f<'a>(x: &'a str) {}\n",
                    "#[cfg(test)]\nmod tests { use crate::b::T; }\n",
                    "#[cfg(test)]\nuse crate::b::{U, V};\n",
                    "#[cfg(test)] mod more;\n",
                ),
            ),
            ("b.rs", "use crate::a::A;"),
        ]);
        assert_eq!(edges_of(&g, &[]), pairs(&[("b", "a")]));
    }

    #[test]
    fn submodule_edges_resolve_super_self_aliases_and_inline_modules() {
        let g = crate_of(&[
            ("lib.rs", "mod e;"),
            ("e/mod.rs", "mod w; mod c; mod b; pub struct Event; fn f() { w::run(); }"),
            ("e/w.rs", "use super::Event; fn g() { super::c::score(); }"),
            ("e/c.rs", "use super::w::Loaded;"),
            ("e/b.rs", "use crate::e; fn h() { e::w::go(); } mod inner { fn i() { super::super::c::x(); } }"),
        ]);
        assert_eq!(edges_of(&g, &["e"]), pairs(&[("w", "c"), ("c", "w"), ("b", "w"), ("b", "c")]));
        let (found, _) = cycle_report(&g, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("cycle: e::c ↔ e::w"), "{}", found[0]);
        assert!(found[0].contains("src/e/c.rs:1 `use super::w::Loaded`"), "{}", found[0]);
        let (found, stale) = cycle_report(&g, &[("e::c", "e::w"), ("e::x", "e::y"), ("e::b", "e::w")]);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(stale, vec!["e::x → e::y".to_string(), "e::b → e::w".to_string()], "b → w is in no cycle");
    }

    #[test]
    fn macros_bring_their_crate_paths_to_where_they_are_used() {
        let g = crate_of(&[
            ("lib.rs", "macro_rules! say { ($($a:tt)*) => { $crate::r::clean(format!($($a)*)) }; }\nmod r; mod u;"),
            ("r.rs", ""),
            ("u.rs", "fn f() { say!(\"hi\"); }"),
        ]);
        assert_eq!(edges_of(&g, &[]), pairs(&[("u", "r")]));
    }

    #[test]
    fn layering_names_the_forbidden_import() {
        let g = crate_of(&[
            ("lib.rs", "mod low; mod high;"),
            ("low.rs", "use crate::high::X;"),
            ("high.rs", "use crate::low::Y;"),
        ]);
        let problems = layering_report(&g, &[("high", "top", &["low"]), ("low", "bottom", &[])]);
        assert_eq!(problems, vec!["low → high is not allowed: src/low.rs:1 `use crate::high::X`".to_string()]);
        let problems = layering_report(&g, &[("high", "top", &["low"])]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        // Leaves: anyone may import one; a leaf imports only what its row lists.
        assert!(allowed(&[("high", "top", &[]), ("low", "leaf", &[])], "high", "low"));
        assert!(!allowed(&[("high", "leaf", &[]), ("low", "leaf", &[])], "high", "low"));
        assert!(allowed(&[("high", "leaf", &["low"]), ("low", "leaf", &[])], "high", "low"));
    }
}
