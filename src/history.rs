//! Input history (Up/Down, Ctrl+R) for the full-screen chat. Entries persist through a
//! [`Persist`] sink (the session database's input table, shared by every process and by the
//! REPL), or, when that database is unavailable, as JSON lines in a file of the data dir.

use std::io::Write;
use std::path::PathBuf;

/// Entries held in memory (a sink may keep more).
pub const LIMIT: usize = 1000;

/// Where new entries go to outlive the process.
pub trait Persist {
    /// Stores one entry; the error is one line, shown once.
    fn append(&mut self, entry: &str) -> Result<(), String>;
}

pub struct History {
    entries: Vec<String>,
    file: Option<PathBuf>,
    sink: Option<Box<dyn Persist>>,
    /// The first failure to store an entry, for the front end to show once.
    warning: Option<String>,
    warned: bool,
    /// Position while browsing with Up/Down; `None` = not browsing.
    pos: Option<usize>,
    /// What was being typed before browsing started.
    draft: String,
}

impl History {
    pub fn load(file: Option<PathBuf>) -> History {
        let entries = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(crate::text_input::normalize_newlines_owned)
            .map(|s| s.lines().filter_map(|l| serde_json::from_str::<String>(l).ok()).collect())
            .unwrap_or_default();
        History { entries, file, sink: None, warning: None, warned: false, pos: None, draft: String::new() }
    }

    /// A history of `entries` (oldest first) whose new entries go to `sink`.
    pub fn with_sink(entries: Vec<String>, sink: Box<dyn Persist>) -> History {
        History { entries, file: None, sink: Some(sink), warning: None, warned: false, pos: None, draft: String::new() }
    }

    /// Why entries could not be stored, the first time only.
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Records a submitted entry (not an immediate repeat) and appends it to the file.
    pub fn add(&mut self, entry: &str) {
        self.pos = None;
        if entry.trim().is_empty() || self.entries.last().map(String::as_str) == Some(entry) {
            return;
        }
        self.entries.push(entry.to_string());
        if let Some(sink) = self.sink.as_mut() {
            if let Err(e) = sink.append(entry) {
                if !std::mem::replace(&mut self.warned, true) {
                    self.warning = Some(format!("input history not saved: {e}"));
                }
            }
            if self.entries.len() > LIMIT * 2 {
                self.entries.drain(..self.entries.len() - LIMIT);
            }
        } else if let Some(f) = &self.file {
            if self.entries.len() > LIMIT * 2 {
                self.entries.drain(..self.entries.len() - LIMIT);
                let body: String =
                    self.entries.iter().map(|e| serde_json::to_string(e).expect("strings serialise") + "\n").collect();
                let _ = crate::atomic_write::write_atomic(f, body.as_bytes());
            } else if let Some(parent) = f.parent() {
                let _ = std::fs::create_dir_all(parent);
                if let Ok(mut out) = std::fs::OpenOptions::new().create(true).append(true).open(f) {
                    let _ = writeln!(out, "{}", serde_json::to_string(entry).expect("strings serialise"));
                }
            }
        }
    }

    /// The previous (older) entry, remembering `current` as the draft when browsing starts.
    pub fn older(&mut self, current: &str) -> Option<&str> {
        let next = match self.pos {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_string();
                self.entries.len() - 1
            }
            Some(0) => 0,
            Some(p) => p - 1,
        };
        self.pos = Some(next);
        Some(&self.entries[next])
    }

    /// The next (newer) entry, or the draft after the newest.
    pub fn newer(&mut self) -> Option<&str> {
        let p = self.pos?;
        if p + 1 >= self.entries.len() {
            self.pos = None;
            return Some(&self.draft);
        }
        self.pos = Some(p + 1);
        Some(&self.entries[p + 1])
    }

    pub fn stop_browsing(&mut self) {
        self.pos = None;
    }

    /// The newest entry before index `before` that contains `query` (Ctrl+R).
    pub fn search(&self, query: &str, before: usize) -> Option<(usize, &str)> {
        let end = before.min(self.entries.len());
        self.entries[..end].iter().enumerate().rev().find(|(_, e)| e.contains(query)).map(|(i, e)| (i, e.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browses_searches_and_persists_multiline_entries() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history");
        let mut h = History::load(Some(file.clone()));
        h.add("first");
        h.add("second\nline");
        h.add("second\nline");
        h.add("第三");
        assert_eq!(h.older("draft"), Some("第三"));
        assert_eq!(h.older(""), Some("second\nline"));
        assert_eq!(h.newer(), Some("第三"));
        assert_eq!(h.newer(), Some("draft"));
        assert_eq!(h.search("line", 3), Some((1, "second\nline")));
        assert_eq!(h.search("first", 1), Some((0, "first")));
        assert_eq!(h.search("nothing", 3), None);
        let again = History::load(Some(file));
        assert_eq!(again.entries(), &["first", "second\nline", "第三"]);
    }

    struct Broken(usize);
    impl Persist for Broken {
        fn append(&mut self, _: &str) -> Result<(), String> {
            self.0 += 1;
            Err(format!("disk full ({})", self.0))
        }
    }

    #[test]
    fn a_sink_that_fails_is_reported_once_and_entries_stay_in_memory() {
        let mut h = History::with_sink(vec!["old".into()], Box::new(Broken(0)));
        h.add("one");
        h.add("two");
        assert_eq!(h.take_warning().as_deref(), Some("input history not saved: disk full (1)"));
        h.add("three");
        assert_eq!(h.take_warning(), None);
        assert_eq!(h.entries(), &["old", "one", "two", "three"]);
    }
}
