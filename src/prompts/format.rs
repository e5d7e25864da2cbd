//! The on-disk shape of prompt and script files (format = 1).
//!
//! Every struct denies unknown fields: a typo such as `temprature` must fail loudly instead of being ignored.
//! Values whose type depends on a declaration (`default`, `with`, test `vars`) stay as `toml::Value` and are
//! coerced later against the declared variable type.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::params::Params;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptFile {
    pub format: u32,
    #[serde(default)]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub input: InputSpec,
    #[serde(default)]
    pub vars: BTreeMap<String, VarSpec>,
    #[serde(default)]
    pub model: Params,
    #[serde(default)]
    pub prompt: Option<PromptText>,
    #[serde(default)]
    pub examples: Vec<Example>,
    #[serde(default)]
    pub output: OutputSpec,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub result: ResultSpec,
    /// Raw overlays; merged away by `locale::localize` before this struct is used for running.
    #[serde(default)]
    pub locale: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

impl PromptFile {
    pub fn is_script(&self) -> bool {
        self.kind == Some(Kind::Script) || !self.steps.is_empty()
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Prompt,
    Script,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// The prompt's own ceiling; the caller's budget (from the model context) applies too, the smaller wins.
    #[serde(default)]
    pub max_chars: Option<usize>,
    #[serde(default)]
    pub truncate: Truncate,
    /// What to do with input longer than fits (`long = "map-reduce" | "head" | "tail" | "error"`); when
    /// absent, `truncate` decides (the older key).
    #[serde(default)]
    pub long: Option<Long>,
    /// The prompt that extracts facts from each chunk in a map-reduce run (default
    /// `market/extract-facts`).
    #[serde(default)]
    pub map: Option<String>,
}

impl InputSpec {
    /// The policy for input over budget: `long` if the file sets it, else the one `truncate` names.
    pub fn long_policy(&self) -> Long {
        self.long.unwrap_or(match self.truncate {
            Truncate::Error => Long::Error,
            Truncate::Head => Long::Head,
            Truncate::Tail => Long::Tail,
        })
    }
}

/// `[input] long`: input longer than the budget is refused, cut, or split into chunks whose extracted facts are
/// merged (map-reduce) before the prompt itself runs.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Long {
    Error,
    Head,
    Tail,
    MapReduce,
}

/// What to do with input over budget. Silent truncation loses the end of an article without anyone noticing,
/// so the default is an error; `head` keeps the beginning (drops the tail), `tail` keeps the end.
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Truncate {
    #[default]
    Error,
    Head,
    Tail,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct VarSpec {
    #[serde(rename = "type", default)]
    pub ty: VarType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<toml::Value>,
    #[serde(default)]
    pub choices: Vec<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub example: Option<String>,
    /// For an `int` variable: the output schema's arrays whose `maxItems` its value caps, as property paths
    /// (`"risks"`, or `"a.b"` for `properties.a.properties.b`). "At most {{ n }} points" is then kept by the
    /// grammar and the validator instead of being left to the model.
    #[serde(default)]
    pub caps: Vec<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    #[default]
    String,
    Text,
    Int,
    Float,
    Bool,
    Enum,
    List,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct PromptText {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub input: String,
    pub output: String,
}

#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Text,
    Markdown,
    Json,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub format: Format,
    /// JSON Schema kept as a JSON string: it goes to the engine verbatim and TOML has no JSON literal.
    #[serde(default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub view: Option<String>,
    /// Values the program computes from the validated JSON (weighted scores, margins...). Small models are bad
    /// at arithmetic, so the model only supplies the inputs. An array keeps evaluation order explicit.
    #[serde(default)]
    pub compute: Vec<Compute>,
}

impl OutputSpec {
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(1)
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    pub name: String,
    pub expr: String,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    /// `group/name` or `group/name@1` (major-version pin).
    #[serde(default)]
    pub uses: Option<String>,
    #[serde(default, rename = "with")]
    pub with_vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub prompt: Option<PromptText>,
    #[serde(default)]
    pub output: Option<OutputSpec>,
    #[serde(default)]
    pub model: Params,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub locale: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ResultSpec {
    #[serde(default)]
    pub from: OneOrMany,
    #[serde(default)]
    pub view: Option<String>,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Default for OneOrMany {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub input: String,
    /// Canned reply (or replies, in order, to exercise the retry) for a plain prompt.
    #[serde(default)]
    pub mock_output: Option<OneOrMany>,
    /// Canned replies per step id, for scripts.
    #[serde(default)]
    pub mock: BTreeMap<String, OneOrMany>,
    #[serde(default)]
    pub requires_model: bool,
    #[serde(default)]
    pub assert: Vec<Assert>,
}

impl TestCase {
    pub fn is_mocked(&self) -> bool {
        self.mock_output.is_some() || !self.mock.is_empty()
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Assert {
    #[serde(rename = "type")]
    pub kind: AssertKind,
    #[serde(default)]
    pub value: Option<String>,
    /// For scripts: which step's rendered prompt a `rendered-*` assertion looks at.
    #[serde(default)]
    pub step: Option<String>,
    /// For `lang`: an expression selecting the text to check (default: the output).
    #[serde(default)]
    pub of: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AssertKind {
    RenderedContains,
    RenderedNotContains,
    Contains,
    NotContains,
    Schema,
    Expr,
    ViewContains,
    /// The run must fail and its message contain `value` (e.g. an invalid mock that must be rejected).
    ErrorContains,
    Lang,
}

impl AssertKind {
    /// Assertions that only look at rendered messages can run without any (mock) output.
    pub fn needs_output(self) -> bool {
        !matches!(self, AssertKind::RenderedContains | AssertKind::RenderedNotContains)
    }
}
