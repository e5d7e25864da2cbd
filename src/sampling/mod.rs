//! The sampling knobs, defined once.
//!
//! The `knobs!` table at the bottom of this file is the only list of them. Everything else is
//! derived from it:
//! - the `[sampling]` config section, [`SamplingConfig`] (re-exported as `config::SamplingConfig`),
//!   and its range checks ([`SamplingConfig::check`]);
//! - the command-line flags with their `--help` text: [`SamplingOverrides`] is a clap `Args`;
//! - the `/set` names, values and ranges: [`Setting`];
//! - the `[model]` table of prompt and script files, also [`SamplingOverrides`], refused when a
//!   value is out of range;
//! - the overlay order: [`Layers::merged`] (flags > script step > script > prompt file) and
//!   [`SamplingOverrides::apply_to`] (the config, or the chat's `/set` values, under all of them).
//!
//! Adding a knob is one entry in the table, plus its documented default in `config.toml` (the
//! embedded defaults file must name every key, or every test fails at start-up). Every refusal of a
//! value, wherever it was typed, quotes the same [`Knob::rule`].
//!
//! A leaf module: it knows serde, clap and shlex, and of moat only `suggest`.

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// One sampling knob as every front end names it; [`KNOBS`] lists them in config order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    /// The key under `[sampling]` in the config, under `[model]` in prompt files; `/set` takes it too.
    pub key: &'static str,
    /// The name `/set` lists and echoes (`temp` for `temperature`).
    pub set_name: &'static str,
    /// Further names `/set` accepts (`n` for `max_tokens`).
    pub set_aliases: &'static [&'static str],
    /// The long command-line flag, without its dashes.
    pub flag: &'static str,
    /// The short flag, if it has one.
    pub short: Option<char>,
    /// The placeholder for the value in `--help`.
    pub value_name: &'static str,
    /// The `--help` text.
    pub help: &'static str,
    /// What a valid value is, as a noun phrase ("a number in 0..1 (1 = off)"); every refusal quotes it:
    /// `config key `sampling.top_p` must be …`, `/set top_p 2: expected …`, `--top-p 2: expected …`.
    pub rule: &'static str,
    /// Whether the value is a list (one word per element: `--stop` repeated, `/set stop A B`).
    pub list: bool,
}

impl Knob {
    /// Whether `/set NAME` means this knob.
    pub fn answers_to(&self, name: &str) -> bool {
        name == self.key || name == self.set_name || self.set_aliases.contains(&name)
    }

    /// The knob `/set NAME` means, if any.
    pub fn find(name: &str) -> Option<&'static Knob> {
        KNOBS.iter().find(|k| k.answers_to(name))
    }
}

/// How a knob's type reads from words (a flag's value, the words after `/set NAME`) and shows in
/// `/show`. Scalars take exactly one word; a list takes one word per element.
pub trait KnobValue: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// One word as read: the value itself, or one element of a list.
    type Word: Clone + Send + Sync + 'static;
    /// Whether the value is a list.
    const LIST: bool;
    /// Reads one word; `None` when it is not of the type.
    fn word(s: &str) -> Option<Self::Word>;
    /// The value from its words; `None` when a scalar gets other than exactly one.
    fn from_words(words: Vec<Self::Word>) -> Option<Self>;
    /// The value as `/show` and `/set` echo it.
    fn show(&self) -> String;
}

macro_rules! scalar_values {
    ($($t:ty),*) => {$(
        impl KnobValue for $t {
            type Word = $t;
            const LIST: bool = false;
            fn word(s: &str) -> Option<$t> {
                s.parse().ok()
            }
            fn from_words(mut words: Vec<$t>) -> Option<$t> {
                if words.len() == 1 { words.pop() } else { None }
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

// f32 reads "nan" and "inf" as TOML does, so the range check (not the type) refuses them and the
// message is the knob's rule in the config, on the command line and in `/set` alike.
scalar_values!(f32, i32, i64, u32);

impl KnobValue for Vec<String> {
    type Word = String;
    const LIST: bool = true;
    fn word(s: &str) -> Option<String> {
        Some(s.to_string())
    }
    fn from_words(words: Vec<String>) -> Option<Vec<String>> {
        Some(words)
    }
    fn show(&self) -> String {
        format!("{self:?}")
    }
}

/// Reads the text after `/set NAME`: one word for a scalar, shell-like words (quotes keep spaces)
/// for a list.
fn read_set_value<T: KnobValue>(text: &str) -> Option<T> {
    let words: Vec<String> =
        if T::LIST { shlex::split(text)? } else { text.split_whitespace().map(str::to_string).collect() };
    T::from_words(words.iter().map(|w| T::word(w)).collect::<Option<Vec<_>>>()?)
}

/// The clap argument for one knob: its flag, help, and a value parser that refuses a value out of
/// range with the knob's rule. Every sampling flag is global, so it goes before or after the
/// subcommand.
fn flag_arg<T: KnobValue>(knob: &'static Knob, valid: fn(&T) -> bool) -> clap::Arg {
    let parse = move |s: &str| -> Result<T::Word, String> {
        T::word(s)
            .filter(|w| T::from_words(vec![w.clone()]).is_some_and(|v| valid(&v)))
            .ok_or_else(|| format!("expected {}", knob.rule))
    };
    let arg = clap::Arg::new(knob.key)
        .long(knob.flag)
        .help(knob.help)
        .value_name(knob.value_name)
        .global(true)
        .allow_negative_numbers(true)
        .value_parser(parse)
        .action(if T::LIST { clap::ArgAction::Append } else { clap::ArgAction::Set });
    match knob.short {
        Some(c) => arg.short(c),
        None => arg,
    }
}

/// The knob's value from parsed flags, when it was given.
fn from_matches<T: KnobValue>(m: &clap::ArgMatches, id: &str) -> Option<T> {
    let words = m.try_get_many::<T::Word>(id).ok()??;
    T::from_words(words.cloned().collect())
}

/// The layers one request's sampling comes from, named so the precedence is written once:
/// command-line flags > script step > script > prompt file ([`Layers::merged`]); whatever none of
/// them sets comes from the config, or in a chat from its `/set` values
/// ([`SamplingOverrides::apply_to`]). A layer that does not apply is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layers<'a> {
    /// The prompt file's `[model]`; for a script step that `uses` a library prompt, that prompt's.
    pub prompt_file: Option<&'a SamplingOverrides>,
    /// The script's own top-level `[model]`.
    pub script: Option<&'a SamplingOverrides>,
    /// The script step's `[model]`.
    pub step: Option<&'a SamplingOverrides>,
    /// The sampling flags on the command line.
    pub flags: Option<&'a SamplingOverrides>,
}

impl Layers<'_> {
    /// The overrides in effect: each knob from the highest layer that sets it.
    pub fn merged(&self) -> SamplingOverrides {
        [self.prompt_file, self.script, self.step, self.flags]
            .into_iter()
            .flatten()
            .fold(SamplingOverrides::default(), |acc, layer| acc.overlay(layer))
    }
}

/// Joins string literals with ", " at compile time.
macro_rules! comma_list {
    ($first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

/// The one table. For each knob: its config key and Rust type, its `Setting` variant, `/set` name
/// and aliases, flag, `--help` text, and validity check with the rule every refusal quotes.
macro_rules! knobs {
    ($(
        $field:ident: $t:ty => $Variant:ident {
            set: $set:literal,
            aliases: [$($alias:literal),* $(,)?],
            flag: $flag:literal,
            short: $short:expr,
            value: $value_name:literal,
            help: $help:literal,
            valid: $valid:expr => $rule:literal $(,)?
        }
    ),* $(,)?) => {
        /// Each knob's table entry, by its config key.
        #[allow(non_upper_case_globals)]
        mod knob {
            use super::{Knob, KnobValue};
            $(pub const $field: Knob = Knob {
                key: stringify!($field),
                set_name: $set,
                set_aliases: &[$($alias),*],
                flag: $flag,
                short: $short,
                value_name: $value_name,
                help: $help,
                rule: $rule,
                list: <$t as KnobValue>::LIST,
            };)*
        }

        /// Each knob's validity check, by its config key.
        mod valid {
            $(pub fn $field(v: &$t) -> bool {
                let check: fn(&$t) -> bool = $valid;
                check(v)
            })*
        }

        /// Every knob, in config order.
        pub const KNOBS: &[Knob] = &[$(knob::$field),*];

        /// The `/set` names in config order, comma-separated, for `/help`.
        pub const SET_NAMES: &str = comma_list!($($set),*);

        /// The `[sampling]` configuration: every knob with a value. `Default` is the embedded
        /// `config.toml` (see `config`); missing keys in a user's file keep it, unknown keys are errors.
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(default, deny_unknown_fields)]
        pub struct SamplingConfig {
            $(#[doc = $help] pub $field: $t,)*
        }

        /// [`SamplingConfig`] without defaults, for reading the embedded `config.toml`, where a
        /// missing key must fail loudly.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct StrictSamplingConfig {
            $($field: $t,)*
        }

        impl From<StrictSamplingConfig> for SamplingConfig {
            fn from(s: StrictSamplingConfig) -> Self {
                SamplingConfig { $($field: s.$field,)* }
            }
        }

        impl SamplingConfig {
            /// Checks every knob's range; the error is the first knob out of range.
            pub fn check(&self) -> Result<(), &'static Knob> {
                $(if !valid::$field(&self.$field) {
                    return Err(&knob::$field);
                })*
                Ok(())
            }

            /// Every knob's value as a `/set` would give it, in config order (for `/show`).
            pub fn settings(&self) -> Vec<Setting> {
                vec![$(Setting::$Variant(self.$field.clone())),*]
            }
        }

        /// Knob values set at one layer (flags, a prompt file's `[model]`, a script step); `None`
        /// means "not set here". Reading it from a file refuses unknown keys and out-of-range values
        /// (the error quotes the knob's rule). As clap `Args`, it is the sampling flags.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(try_from = "RawSamplingOverrides")]
        pub struct SamplingOverrides {
            $(
                #[doc = $help]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<$t>,
            )*
        }

        /// [`SamplingOverrides`] before its ranges are checked.
        #[derive(Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct RawSamplingOverrides {
            $($field: Option<$t>,)*
        }

        impl TryFrom<RawSamplingOverrides> for SamplingOverrides {
            type Error = String;
            fn try_from(r: RawSamplingOverrides) -> Result<Self, String> {
                let o = SamplingOverrides { $($field: r.$field,)* };
                o.check().map_err(|k| format!("`{}` must be {}", k.key, k.rule))?;
                Ok(o)
            }
        }

        impl SamplingOverrides {
            /// `over` wins wherever it is set. [`Layers::merged`] stacks the layers in their order.
            pub fn overlay(&self, over: &SamplingOverrides) -> SamplingOverrides {
                SamplingOverrides { $($field: over.$field.clone().or_else(|| self.$field.clone()),)* }
            }

            /// `base` (the config, or a chat's `/set` values) with every knob set here replaced.
            pub fn apply_to(&self, base: &SamplingConfig) -> SamplingConfig {
                SamplingConfig { $($field: self.$field.clone().unwrap_or_else(|| base.$field.clone()),)* }
            }

            /// Checks the range of every knob that is set; the error is the first knob out of range.
            pub fn check(&self) -> Result<(), &'static Knob> {
                $(if self.$field.as_ref().is_some_and(|v| !valid::$field(v)) {
                    return Err(&knob::$field);
                })*
                Ok(())
            }
        }

        impl clap::FromArgMatches for SamplingOverrides {
            fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
                let mut o = SamplingOverrides::default();
                o.update_from_arg_matches(m)?;
                Ok(o)
            }

            fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
                $(if let Some(v) = from_matches::<$t>(m, stringify!($field)) {
                    self.$field = Some(v);
                })*
                Ok(())
            }
        }

        impl clap::Args for SamplingOverrides {
            fn augment_args(cmd: clap::Command) -> clap::Command {
                cmd $(.arg(flag_arg::<$t>(&knob::$field, valid::$field)))*
            }

            fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
                Self::augment_args(cmd)
            }
        }

        /// One knob with a range-checked value, as `/set NAME VALUE` gives it.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Setting {
            $($Variant($t),)*
        }

        impl Setting {
            /// The `/set` names, in config order.
            pub const NAMES: &'static [&'static str] = &[$($set),*];

            /// Reads `/set NAME VALUE`, where `value` is all the text after the name. Errors are one
            /// line: an unknown name lists the known ones; a bad value quotes the knob's rule.
            pub fn parse(name: &str, value: &str) -> Result<Setting, String> {
                let Some(knob) = Knob::find(name) else {
                    return Err(format!(
                        "/set: unknown setting {name:?}{}; one of {}",
                        crate::suggest::hint(name, Setting::NAMES.iter().copied()),
                        SET_NAMES
                    ));
                };
                let bad = || format!("/set {name} {value}: expected {}", knob.rule);
                $(if knob.key == stringify!($field) {
                    let v = read_set_value::<$t>(value).filter(valid::$field).ok_or_else(bad)?;
                    return Ok(Setting::$Variant(v));
                })*
                Err(bad())
            }

            /// The knob this sets.
            pub fn knob(&self) -> &'static Knob {
                match self {
                    $(Setting::$Variant(_) => &knob::$field,)*
                }
            }

            /// The `/set` name (`temp`, not `temperature`).
            pub fn name(&self) -> &'static str {
                self.knob().set_name
            }

            /// The value as `/set` echoes it.
            pub fn value(&self) -> String {
                match self {
                    $(Setting::$Variant(v) => v.show(),)*
                }
            }

            /// Sets the knob in `s`.
            pub fn apply(&self, s: &mut SamplingConfig) {
                match self {
                    $(Setting::$Variant(v) => s.$field = v.clone(),)*
                }
            }
        }
    };
}

knobs! {
    temperature: f32 => Temperature {
        set: "temp",
        aliases: [],
        flag: "temp",
        short: None,
        value: "T",
        help: "Sampling temperature: 0 = greedy (deterministic), higher = more varied",
        valid: |v| v.is_finite() && *v >= 0.0 => "a number ≥ 0 (0 = greedy)",
    },
    top_k: i32 => TopK {
        set: "top_k",
        aliases: [],
        flag: "top-k",
        short: None,
        value: "K",
        help: "Sample only from the K most likely tokens (0 = off)",
        valid: |_| true => "a whole number (0 = off)",
    },
    top_p: f32 => TopP {
        set: "top_p",
        aliases: [],
        flag: "top-p",
        short: None,
        value: "P",
        help: "Sample only from the most likely tokens whose probabilities add up to P (1 = off)",
        valid: |v| (0.0..=1.0).contains(v) => "a number in 0..1 (1 = off)",
    },
    min_p: f32 => MinP {
        set: "min_p",
        aliases: [],
        flag: "min-p",
        short: None,
        value: "P",
        help: "Drop tokens less likely than P times the most likely one (0 = off)",
        valid: |v| (0.0..=1.0).contains(v) => "a number in 0..1 (0 = off)",
    },
    repeat_penalty: f32 => RepeatPenalty {
        set: "repeat_penalty",
        aliases: [],
        flag: "repeat-penalty",
        short: None,
        value: "X",
        help: "Penalise tokens seen in the last --repeat-last-n tokens by a factor X (1 = off)",
        valid: |v| v.is_finite() && *v > 0.0 => "a number > 0 (1 = off)",
    },
    repeat_last_n: i32 => RepeatLastN {
        set: "repeat_last_n",
        aliases: [],
        flag: "repeat-last-n",
        short: None,
        value: "N",
        help: "How many recent tokens the repeat penalty looks at (0 = off)",
        valid: |v| *v >= 0 => "a whole number ≥ 0 (0 = off)",
    },
    dry_multiplier: f32 => DryMultiplier {
        set: "dry_multiplier",
        aliases: [],
        flag: "dry-multiplier",
        short: None,
        value: "X",
        help: "DRY (don't repeat yourself): penalise continuing text the reply already wrote, X × base^(repeat length − allowed length) (0 = off; 0.8 is usual)",
        valid: |v| v.is_finite() && *v >= 0.0 => "a number ≥ 0 (0 = off)",
    },
    dry_base: f32 => DryBase {
        set: "dry_base",
        aliases: [],
        flag: "dry-base",
        short: None,
        value: "X",
        help: "DRY: how fast the penalty grows with each repeated token",
        valid: |v| v.is_finite() && *v >= 1.0 => "a number ≥ 1",
    },
    dry_allowed_length: i32 => DryAllowedLength {
        set: "dry_allowed_length",
        aliases: [],
        flag: "dry-allowed-length",
        short: None,
        value: "N",
        help: "DRY: repeats of up to N tokens are not penalised",
        valid: |v| *v >= 1 => "a whole number ≥ 1",
    },
    seed: i64 => Seed {
        set: "seed",
        aliases: [],
        flag: "seed",
        short: None,
        value: "SEED",
        help: "Random seed: -1 = a new one each run, any other value makes sampling reproducible",
        valid: |v| (-1..=u32::MAX as i64).contains(v) => "-1 (random) or a whole number in 0..4294967295",
    },
    max_tokens: u32 => MaxTokens {
        set: "max_tokens",
        aliases: ["n"],
        flag: "max-tokens",
        short: Some('n'),
        value: "N",
        help: "Most tokens in the reply",
        valid: |v| *v >= 1 => "a whole number ≥ 1",
    },
    stop: Vec<String> => Stop {
        set: "stop",
        aliases: [],
        flag: "stop",
        short: None,
        value: "TEXT",
        help: "A string that ends the reply (repeatable; the model's end-of-turn token always does)",
        valid: |v| v.iter().all(|s| !s.is_empty()) => "a list of strings, none of them empty",
    },
}
