//! Turning file text into a [`Prompt`]: TOML errors carry file:line:col, and locale overlays are validated with
//! the same unknown-key rules as the base file.

use toml::Table;

use super::error::{line_col, locate, Problem, PromptError};
use super::format::{PromptFile, FORMAT_VERSION};
use super::library::{Entry, Library, Source};
use super::locale::{localize, Lang};

/// A parsed prompt or script file. `file` is the base (English) variant; use [`Prompt::variant`] for a language.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub id: String,
    pub source: Source,
    pub shadows: bool,
    pub path: String,
    pub text: String,
    pub raw: Table,
    pub file: PromptFile,
}

impl Prompt {
    pub fn parse(entry: &Entry) -> Result<Prompt, PromptError> {
        let path = entry.display_path();
        let toml_err = |e: toml::de::Error| {
            let (line, col) = e.span().map(|s| line_col(&entry.text, s.start)).unwrap_or((1, 1));
            PromptError::Toml { file: path.clone(), line, col, message: e.message().trim().replace('\n', " ") }
        };
        // Deserializing the text directly (not via toml::Value) keeps spans, so unknown keys get a position too.
        let file: PromptFile = toml::from_str(&entry.text).map_err(toml_err)?;
        let raw: Table = toml::from_str(&entry.text).map_err(toml_err)?;
        if file.format > FORMAT_VERSION {
            let (line, col) = locate(&entry.text, "format").unwrap_or((1, 1));
            return Err(PromptError::Toml {
                file: path,
                line,
                col,
                message: format!(
                    "format = {} is newer than this moat understands ({FORMAT_VERSION}); upgrade moat",
                    file.format
                ),
            });
        }
        Ok(Prompt {
            id: entry.id.clone(),
            source: entry.source.clone(),
            shadows: entry.shadows,
            path,
            text: entry.text.clone(),
            raw,
            file,
        })
    }

    /// The file as seen in `lang`. A file without that locale falls back to its base text; the templates still
    /// get `lang_name`, so they can ask for answers in that language.
    pub fn variant(&self, lang: Lang) -> Result<PromptFile, PromptError> {
        let has_locale = self.file.locale.contains_key(lang.code())
            || self.file.steps.iter().any(|s| s.locale.contains_key(lang.code()));
        if !has_locale {
            let mut f = self.file.clone();
            f.locale.clear();
            f.steps.iter_mut().for_each(|s| s.locale.clear());
            return Ok(f);
        }
        let merged = localize(&self.raw, lang);
        let text = toml::to_string(&merged).unwrap_or_default();
        toml::from_str::<PromptFile>(&text).map_err(|e| {
            let (line, col) = locate(&self.text, &format!("[locale.{}", lang.code())).unwrap_or((1, 1));
            PromptError::Toml {
                file: self.path.clone(),
                line,
                col,
                message: format!("in the `{}` locale: {}", lang.code(), e.message().trim().replace('\n', " ")),
            }
        })
    }

    /// Languages this file has native text for (English is always the base).
    pub fn languages(&self) -> Vec<Lang> {
        let has = |l: Lang| {
            self.file.locale.contains_key(l.code()) || self.file.steps.iter().any(|s| s.locale.contains_key(l.code()))
        };
        Lang::ALL.into_iter().filter(|l| *l == Lang::En || has(*l)).collect()
    }
}

impl Library {
    pub fn prompt(&self, id_or_path: &str) -> Result<Prompt, PromptError> {
        Prompt::parse(&self.resolve(id_or_path)?)
    }
}

/// `id@1` / `id@^1` pins the major version, so a user file shadowing a built-in with a different output contract
/// is refused instead of breaking a script downstream.
pub(crate) fn check_pin(prompt: &Prompt, reference: &str) -> Result<(), PromptError> {
    let Some((_, pin)) = reference.split_once('@') else { return Ok(()) };
    let want = pin.trim_start_matches('^').split('.').next().unwrap_or("");
    let have = prompt.file.version.as_deref().unwrap_or("0.0.0");
    if have.split('.').next() == Some(want) {
        Ok(())
    } else {
        Err(PromptError::Invalid {
            problems: vec![Problem {
                file: prompt.path.clone(),
                pos: None,
                message: format!("`{reference}` wants major version {want}, but this file has version {have}"),
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(text: &str) -> Entry {
        Entry { id: "t/x".into(), source: Source::Builtin, shadows: false, text: text.into() }
    }

    #[test]
    fn bad_toml_has_position() {
        let e = Prompt::parse(&entry("format = 1\ntitle = \"a\"\n[prompt]\nuser = \"unterminated\n")).unwrap_err();
        match &e {
            PromptError::Toml { file, line, .. } => {
                assert_eq!(file, "prompts/t/x.toml");
                assert_eq!(*line, 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("prompts/t/x.toml:4:"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn unknown_key_has_position() {
        let e = Prompt::parse(&entry("format = 1\n[model]\ntemprature = 0.2\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("prompts/t/x.toml:3:1:"), "{s}");
        assert!(s.contains("temprature"), "{s}");
    }

    #[test]
    fn out_of_range_sampling_is_refused_with_the_knobs_rule() {
        let e =
            Prompt::parse(&entry("format = 1\ntitle = \"t\"\n[model]\ntemperature = -1\n")).unwrap_err().to_string();
        assert!(e.starts_with("prompts/t/x.toml:3:"), "the `[model]` line: {e}");
        assert!(e.contains("`temperature` must be a number ≥ 0 (0 = greedy)"), "{e}");
        let e = Prompt::parse(&entry("format = 1\n[[steps]]\nid = \"a\"\n[steps.model]\ntop_p = 1.5\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`top_p` must be a number in 0..1"), "{e}");
    }

    #[test]
    fn unknown_key_in_locale_is_reported() {
        let p = Prompt::parse(&entry("format = 1\n[prompt]\nuser = \"u\"\n[locale.zh.prompt]\nusr = \"x\"\n")).unwrap();
        let e = p.variant(Lang::Zh).unwrap_err().to_string();
        assert!(e.contains("`zh` locale") && e.contains("usr") && e.contains(":4:"), "{e}");
    }

    /// Parses `text` as a prompt file and, if that works, builds every language variant and lints it: none of it
    /// may panic, whatever the file says.
    fn parse_all(text: &str) {
        if let Ok(p) = Prompt::parse(&entry(text)) {
            for lang in Lang::ALL {
                let _ = p.variant(lang);
            }
            let _ = crate::prompts::lint::lint_prompt(&Library::builtin(), &p);
        }
    }

    proptest! {
        #[test]
        fn prop_prompt_toml_never_panics_on_arbitrary_text(text in any::<String>()) {
            parse_all(&text);
        }

        #[test]
        fn prop_prompt_toml_never_panics_on_toml_like_text(
            text in r#"(format = [0-9]{1,3}\n|\[(prompt|output|model|input|vars\.[a-z]{1,3}|locale\.zh(\.output|\.prompt)?)\]\n|\[\[(steps|tests|examples)\]\]\n|(user|system|schema|view|format|id|uses|max_tokens|retries|type|default|when) = ("[a-z{}%\\ ]{0,12}"|'[{}\[\]":a-z, ]{0,30}'|[0-9]{1,4}|true)\n){0,14}"#
        ) {
            parse_all(&text);
        }

        /// Built-in files cut short or with a stray character inserted: the errors must be errors, not panics.
        #[test]
        fn prop_prompt_toml_never_panics_on_damaged_library_files(
            pick in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            insert in r#"["'\[\]{}=\n#%\\中]?"#,
            cut in any::<bool>()
        ) {
            let lib = Library::builtin();
            let ids = lib.ids();
            let text = lib.get(&ids[pick.index(ids.len())]).unwrap().text.clone();
            let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let i = bounds[at.index(bounds.len())];
            let damaged = if cut { text[..i].to_string() } else { format!("{}{insert}{}", &text[..i], &text[i..]) };
            parse_all(&damaged);
        }
    }

    #[test]
    fn newer_format_is_refused() {
        let e = Prompt::parse(&entry("format = 2\n")).unwrap_err().to_string();
        assert!(e.contains("upgrade moat"), "{e}");
    }
}
