//! Prompt library and prompt scripts.
//!
//! A prompt is one TOML file (`prompts/<group>/<name>.toml`, id = path without `.toml`) with typed variables,
//! MiniJinja templates rendered in strict mode, per-prompt sampling parameters, an optional JSON output contract
//! (schema + view + computed values) and embedded tests. A script is the same kind of file with `[[steps]]`.
//! Nothing here depends on llama.cpp: generation goes through the [`Generator`] trait.

pub mod chunk;
pub mod error;
pub mod extract;
pub mod format;
pub mod library;
pub mod lint;
pub mod locale;
pub mod output;
pub mod params;
pub mod parse;
pub mod partial;
pub mod run;
pub mod schema;
pub mod script;
pub mod template;
pub mod testing;
pub mod vars;

pub use error::{Problem, PromptError};
pub use extract::extract_json;
pub use format::PromptFile;
pub use library::{Entry, Library, Source};
pub use lint::{lint, lint_all};
pub use locale::Lang;
pub use output::{write_outputs, OutputFormat};
pub use params::{Cut, GenRequest, Generator, MockGenerator, Params, Reply};
pub use parse::Prompt;
pub use run::{render_request, run_prompt, RunResult};
pub use schema::validate;
pub use script::{run_script, ScriptResult, StepResult};
pub use testing::{run_all_tests, run_file_tests, TestOutcome, TestStatus};
pub use vars::usage_line;
