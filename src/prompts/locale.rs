//! Languages and `[locale.<lang>]` overlays.
//!
//! Chinese text is written natively in the file and merged over the English one at load time; nothing is
//! translated at run time. JSON keys and enum values stay English in every language so scripts chain the same way.

use std::fmt;
use std::str::FromStr;

use toml::{Table, Value};

use super::error::PromptError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// `--lang auto`: Chinese when at least ~30% of the non-space characters are CJK.
    pub fn detect(text: &str) -> Lang {
        if cjk_share(text) >= 0.3 {
            Lang::Zh
        } else {
            Lang::En
        }
    }

    /// Used inside prompts ("write every text value in {{ lang_name }}").
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Lang {
    type Err = PromptError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" | "english" => Ok(Lang::En),
            "zh" | "zh-cn" | "cn" | "chinese" | "中文" => Ok(Lang::Zh),
            other => Err(PromptError::BadLang(other.to_string())),
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, everything else (arrays included) is replaced whole,
/// so a locale's `examples` list replaces the English one instead of being appended to it.
pub fn deep_merge(base: &mut Table, over: &Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => deep_merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Applies the file-level overlay and each step's own overlay (so a script's inline steps can be translated
/// without repeating the whole `steps` array). Tests are never localised: they state their own `lang`.
pub fn localize(raw: &Table, lang: Lang) -> Table {
    let mut out = raw.clone();
    apply_overlay(&mut out, lang);
    if let Some(Value::Array(steps)) = out.get_mut("steps") {
        for step in steps.iter_mut() {
            if let Value::Table(t) = step {
                apply_overlay(t, lang);
            }
        }
    }
    out
}

fn apply_overlay(table: &mut Table, lang: Lang) {
    if let Some(Value::Table(locales)) = table.remove("locale") {
        if let Some(Value::Table(over)) = locales.get(lang.code()) {
            deep_merge(table, over);
        }
    }
}

/// Share of CJK characters among non-space characters; used by the `lang` assertion.
pub fn cjk_share(text: &str) -> f64 {
    let mut total = 0usize;
    let mut cjk = 0usize;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        total += 1;
        if matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x3000..=0x303F | 0xFF00..=0xFFEF) {
            cjk += 1;
        }
    }
    if total == 0 {
        0.0
    } else {
        cjk as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_replaces_arrays_and_merges_tables() {
        let raw: Table = toml::from_str(
            r#"
            title = "Risk"
            examples = [{input = "a", output = "b"}, {input = "c", output = "d"}]
            [prompt]
            system = "S"
            user = "U"
            [locale.zh]
            title = "风险"
            examples = [{input = "甲", output = "乙"}]
            [locale.zh.prompt]
            user = "用户"
            "#,
        )
        .unwrap();
        let zh = localize(&raw, Lang::Zh);
        assert_eq!(zh["title"].as_str(), Some("风险"));
        assert_eq!(zh["examples"].as_array().unwrap().len(), 1);
        assert_eq!(zh["prompt"]["system"].as_str(), Some("S"));
        assert_eq!(zh["prompt"]["user"].as_str(), Some("用户"));
        assert!(zh.get("locale").is_none());
        let en = localize(&raw, Lang::En);
        assert_eq!(en["title"].as_str(), Some("Risk"));
    }

    #[test]
    fn cjk_share_counts() {
        assert!(cjk_share("这是中文") > 0.9);
        assert!(cjk_share("plain English") < 0.01);
        assert_eq!(Lang::detect("智理赔按件收费 EUR 0.40"), Lang::Zh);
        assert_eq!(Lang::detect("ClaimPilot 智理赔 charges per claim"), Lang::En);
    }
}
