//! Quantisation and its quality measure: `moat quantize IN OUT --type T` through llama.cpp's own
//! `llama_model_quantize` (progress read from its per-tensor log lines, an optional importance
//! matrix, the output written to a temporary file beside OUT and renamed only when complete), and
//! perplexity on a text file, the figure that says what a quantisation cost.
//!
//! Layout: `mod.rs` the type table, checks and the run; `progress.rs` the log tap and its line
//! parser; `imatrix.rs` importance-matrix files; `perplexity.rs` the quality measure.

mod imatrix;
mod perplexity;
pub mod progress;

pub use perplexity::{perplexity, Perplexity, PerplexityRequest};
pub use progress::TensorLine;

use crate::models::gguf::{self, file_type_name, GgufError};
use crossbeam_channel::{after, select, unbounded};
use progress::{Installed, Note};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A quantisation llama.cpp can write: its name as llama-quantize spells it, its `llama_ftype`,
/// and whether it needs an importance matrix (the 1–2-bit types and Q2_K_S, whose output is
/// garbage without one; llama.cpp refuses them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantType {
    pub name: &'static str,
    pub ftype: u32,
    pub needs_imatrix: bool,
}

const fn t(name: &'static str, ftype: u32, needs_imatrix: bool) -> QuantType {
    QuantType { name, ftype, needs_imatrix }
}

/// Every type `--type` takes, in llama-quantize's order; Q3_K, Q4_K and Q5_K are its aliases
/// for the _M variants. `llama_ftype` values from the bundled llama.h.
pub const TYPES: &[QuantType] = &[
    t("Q4_0", 2, false),
    t("Q4_1", 3, false),
    t("Q5_0", 8, false),
    t("Q5_1", 9, false),
    t("IQ2_XXS", 19, true),
    t("IQ2_XS", 20, true),
    t("IQ2_S", 28, true),
    t("IQ2_M", 29, true),
    t("IQ1_S", 24, true),
    t("IQ1_M", 31, true),
    t("TQ1_0", 36, false),
    t("TQ2_0", 37, false),
    t("Q2_K", 10, false),
    t("Q2_K_S", 21, true),
    t("IQ3_XXS", 23, true),
    t("IQ3_S", 26, false),
    t("IQ3_M", 27, false),
    t("Q3_K", 12, false),
    t("IQ3_XS", 22, false),
    t("Q3_K_S", 11, false),
    t("Q3_K_M", 12, false),
    t("Q3_K_L", 13, false),
    t("IQ4_NL", 25, false),
    t("IQ4_XS", 30, false),
    t("Q4_K", 15, false),
    t("Q4_K_S", 14, false),
    t("Q4_K_M", 15, false),
    t("Q5_K", 17, false),
    t("Q5_K_S", 16, false),
    t("Q5_K_M", 17, false),
    t("Q6_K", 18, false),
    t("Q8_0", 7, false),
    t("MXFP4_MOE", 38, false),
    t("F16", 1, false),
    t("BF16", 32, false),
    t("F32", 0, false),
];

/// The `--type` list for help and errors: `Q4_0, Q4_1, …`.
pub fn type_names() -> String {
    TYPES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

/// `name` as a [`QuantType`], case-insensitively (`q4_k_m` = `Q4_K_M`).
///
/// Errors: [`QuantizeError::UnknownType`], which lists the valid names.
pub fn parse_type(name: &str) -> Result<&'static QuantType, QuantizeError> {
    let want = name.trim();
    TYPES
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(want))
        .ok_or_else(|| QuantizeError::UnknownType { given: want.to_string(), valid: type_names() })
}

/// The `general.file_type` values of unquantised files (F32, F16, BF16): what llama.cpp
/// quantises without `allow_requantize`.
fn is_unquantised(file_type: u32) -> bool {
    matches!(file_type, 0 | 1 | 32)
}

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("unknown quantisation type `{given}`; valid types: {valid}")]
    UnknownType { given: String, valid: String },
    #[error(transparent)]
    Input(#[from] GgufError),
    #[error("{path} is already quantised ({from}); requantising adds the new type's rounding error to {from}'s — pass --allow-requantize to do it anyway, or start from an F16/BF16/F32 GGUF")]
    Requantize { path: String, from: String },
    #[error("{ty} needs an importance matrix (without one llama.cpp's output is garbage); pass --imatrix FILE from llama-imatrix, or pick Q4_K_M, Q4_0 or IQ4_XS")]
    NeedsImatrix { ty: &'static str },
    #[error("{0}")]
    Imatrix(String),
    #[error("{path} already exists; pass --force to replace it, or choose another OUT")]
    Exists { path: String },
    #[error("OUT is IN ({path}); write the quantised model to another file")]
    SameFile { path: String },
    #[error("cannot write {path}: {source}; choose a folder you can write to")]
    Output { path: String, source: std::io::Error },
    #[error("llama.cpp could not quantise {input}: {why}")]
    Failed { input: String, why: String },
    #[error("interrupted; the partial output was removed")]
    Interrupted,
}

impl QuantizeError {
    /// Whether the fault is in what the user asked for (exit 2) rather than in the run (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, QuantizeError::Output { .. } | QuantizeError::Failed { .. } | QuantizeError::Interrupted)
    }
}

/// One quantisation.
#[derive(Debug, Clone)]
pub struct Request {
    pub input: PathBuf,
    pub output: PathBuf,
    pub ty: &'static QuantType,
    /// Quantising threads; 0 = physical cores.
    pub threads: u32,
    /// Let llama.cpp dequantise already-quantised tensors and quantise them again.
    pub allow_requantize: bool,
    /// An importance matrix from llama-imatrix (GGUF or legacy .dat).
    pub imatrix: Option<PathBuf>,
    /// Replace `output` when it exists.
    pub force: bool,
}

/// What a finished quantisation wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub output: PathBuf,
    /// The input's quantisation (`general.file_type`), e.g. "Q4_1".
    pub from: String,
    pub to: &'static str,
    pub tensors: u64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub seconds: f64,
}

/// Where OUT goes when none is given: beside `input`, its name with the quantisation swapped
/// (`SmolLM2-135M-Instruct.Q4_1.gguf` → `SmolLM2-135M-Instruct.Q8_0.gguf`) or appended
/// (`model.gguf` → `model.Q8_0.gguf`).
pub fn default_output(input: &Path, ty: &QuantType) -> PathBuf {
    let stem = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let base = match stem.rsplit_once(['.', '-']) {
        Some((head, tail)) if !head.is_empty() && TYPES.iter().any(|t| t.name.eq_ignore_ascii_case(tail)) => head,
        _ => stem.as_str(),
    };
    input.with_file_name(format!("{base}.{}.gguf", ty.name))
}

/// Quantises `req.input` into `req.output` with llama.cpp, reporting each tensor as it starts.
///
/// Starts llama.cpp's backend first if nothing has (its log goes to `log_file`, as for a model
/// run); while it runs, llama.cpp's log passes through this module (see [`progress`]) and on to
/// the same place. The output is written to `.OUT.*.part` in OUT's folder, flushed and renamed
/// over OUT only once llama.cpp has finished and the result reads back as a GGUF of the asked
/// type; on any failure, or Ctrl+C ([`crate::interrupt`]), that file is removed and OUT is as it
/// was. A second Ctrl+C ends the process at once and may leave the `.part` file.
///
/// Errors: [`QuantizeError`], one line each; checks that need no quantising (input, type,
/// requantising, imatrix, OUT) come first.
pub fn quantize(
    req: &Request,
    log_file: Option<&Path>,
    on_tensor: &mut dyn FnMut(&TensorLine),
) -> Result<Outcome, QuantizeError> {
    let header = gguf::inspect(&req.input)?;
    let from = header.file_type.map_or("unknown", file_type_name).to_string();
    let same = match (std::fs::canonicalize(&req.input), std::fs::canonicalize(&req.output)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(QuantizeError::SameFile { path: req.output.display().to_string() });
    }
    if req.output.exists() && !req.force {
        return Err(QuantizeError::Exists { path: req.output.display().to_string() });
    }
    if !req.allow_requantize && header.file_type.is_some_and(|ft| !is_unquantised(ft)) {
        return Err(QuantizeError::Requantize { path: req.input.display().to_string(), from });
    }
    let imatrix = match &req.imatrix {
        Some(p) => Some(imatrix::load(p).map_err(QuantizeError::Imatrix)?),
        None if req.ty.needs_imatrix => return Err(QuantizeError::NeedsImatrix { ty: req.ty.name }),
        None => None,
    };
    let output_err = |source| QuantizeError::Output { path: req.output.display().to_string(), source };
    let dir = match req.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = req.output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
    builder.prefix(&prefix).suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let temp = builder.tempfile_in(&dir).map_err(output_err)?.into_temp_path();

    crate::engine::backend(log_file);
    let (c_in, c_out) =
        match (CString::new(req.input.to_string_lossy().as_bytes()), CString::new(temp.to_string_lossy().as_bytes())) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                return Err(QuantizeError::Failed {
                    input: req.input.display().to_string(),
                    why: "a path holds a NUL byte".into(),
                })
            }
        };
    let threads = if req.threads == 0 { num_cpus::get_physical().max(1) as i32 } else { req.threads as i32 };
    let (ftype, allow_requantize) = (req.ty.ftype, req.allow_requantize);

    let started = Instant::now();
    let (notes_tx, notes) = unbounded();
    let (parked_tx, parked) = unbounded();
    let (done_tx, done) = unbounded::<u32>();
    let tap = Installed::install(notes_tx, parked_tx);
    let worker = std::thread::spawn(move || {
        let imatrix = imatrix.map(imatrix::CArray::new);
        // SAFETY: default params from llama.cpp, then plain fields; the imatrix array (and the
        // storage it points into) outlives the call.
        let rc = unsafe {
            let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
            params.nthread = threads;
            params.ftype = ftype;
            params.allow_requantize = allow_requantize;
            if let Some(m) = &imatrix {
                params.imatrix = m.as_ptr();
            }
            llama_cpp_sys_2::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params)
        };
        let _ = done_tx.send(rc);
    });

    let mut last_error = None;
    let mut tensors = 0u64;
    let mut note = |n: Note| match n {
        Note::Tensor(t) => {
            tensors = tensors.max(t.index);
            on_tensor(&t);
        }
        Note::Error(why) => last_error = Some(why),
    };
    let rc = loop {
        if crate::interrupt::interrupted() {
            tap.stop();
            select! {
                recv(parked) -> _ => {
                    // The worker never returns; its tap stays installed and alive.
                    drop(temp);
                    return Err(QuantizeError::Interrupted);
                }
                recv(done) -> _ => {
                    let _ = worker.join();
                    tap.restore();
                    drop(temp);
                    return Err(QuantizeError::Interrupted);
                }
            }
        }
        select! {
            recv(notes) -> n => {
                if let Ok(n) = n {
                    note(n);
                }
            }
            recv(done) -> rc => break rc.unwrap_or(1),
            recv(after(Duration::from_millis(100))) -> _ => {}
        }
    };
    let _ = worker.join();
    tap.restore();
    while let Ok(n) = notes.try_recv() {
        note(n);
    }
    let failed = |why: String| QuantizeError::Failed { input: req.input.display().to_string(), why };
    if rc != 0 {
        return Err(failed(last_error.unwrap_or_else(|| "it gave no reason; see moat's log file".into())));
    }
    // llama.cpp writes through a C++ stream; make its bytes durable before the rename.
    std::fs::File::open(&temp).and_then(|f| f.sync_all()).map_err(output_err)?;
    let written = gguf::inspect(&temp).map_err(|e| failed(format!("its output does not read back: {e}")))?;
    if written.file_type != Some(ftype) {
        let got = written.file_type.map_or("none", file_type_name);
        return Err(failed(format!("the output says file type {got}, not {}", req.ty.name)));
    }
    temp.persist(&req.output).map_err(|e| output_err(e.error))?;
    Ok(Outcome {
        output: req.output.clone(),
        from: header.file_type.map_or("unknown", file_type_name).to_string(),
        to: req.ty.name,
        tensors: tensors.max(written.tensor_count),
        input_bytes: header.file_size,
        output_bytes: written.file_size,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_parse_case_insensitively() {
        assert_eq!(parse_type("q4_k_m").unwrap().ftype, 15);
        assert_eq!(parse_type("Q8_0").unwrap().ftype, 7);
        assert_eq!(parse_type(" iq4_nl ").unwrap().name, "IQ4_NL");
        assert_eq!(parse_type("q4_k").unwrap().ftype, parse_type("Q4_K_M").unwrap().ftype);
    }

    #[test]
    fn an_unknown_type_is_one_line_listing_the_valid_ones() {
        let e = parse_type("Q4_X").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(e.contains("`Q4_X`") && e.contains("Q4_K_M") && e.contains("Q8_0") && e.contains("IQ4_NL"), "{e}");
    }

    #[test]
    fn every_type_has_a_distinct_name_and_the_file_type_reader_knows_the_common_ones() {
        let mut names: Vec<_> = TYPES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TYPES.len());
        for name in ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "F16", "BF16"] {
            assert_eq!(file_type_name(parse_type(name).unwrap().ftype), name);
        }
    }

    #[test]
    fn the_default_output_swaps_or_appends_the_type() {
        let q8 = parse_type("q8_0").unwrap();
        assert_eq!(
            default_output(Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf"), q8),
            Path::new("/m/SmolLM2-135M-Instruct.Q8_0.gguf")
        );
        assert_eq!(
            default_output(Path::new("/m/gemma-3-270m-q4_k_m.gguf"), q8),
            Path::new("/m/gemma-3-270m.Q8_0.gguf")
        );
        assert_eq!(default_output(Path::new("model.gguf"), q8), Path::new("model.Q8_0.gguf"));
        assert_eq!(default_output(Path::new("/m/v1.5-chat.gguf"), q8), Path::new("/m/v1.5-chat.Q8_0.gguf"));
    }
}
