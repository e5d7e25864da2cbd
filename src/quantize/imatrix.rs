//! Importance matrices (`llama-imatrix` output) for quantisation: the GGUF format
//! (`<tensor>.in_sum2` and `<tensor>.counts` per weight) and the older `.dat` format, turned into
//! the per-column mean squared activations that `llama_model_quantize` takes.

use std::ffi::{CStr, CString};
use std::path::Path;

/// One weight's importance values: mean squared input activation per column (per expert, one
/// after another, for a mixture-of-experts weight).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub values: Vec<f32>,
}

/// Reads `path`: a GGUF imatrix, else the legacy binary format. Errors are one line naming the
/// file and what is wrong with it.
pub fn load(path: &Path) -> Result<Vec<Entry>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the imatrix {}: {e}", path.display()))?;
    let entries = if bytes.starts_with(b"GGUF") { load_gguf(path)? } else { parse_legacy(&bytes)? };
    if entries.is_empty() {
        return Err(format!("the imatrix {} holds no entries", path.display()));
    }
    if let Some(e) = entries.iter().find(|e| e.values.iter().any(|v| !v.is_finite())) {
        return Err(format!("the imatrix {} has a non-finite value for {}; compute it again", path.display(), e.name));
    }
    Ok(entries)
}

/// The legacy format: i32 entry count, then per entry i32 name length, the name, i32 call count,
/// i32 value count and that many f32 sums; a chunk count and dataset name may follow. Values are
/// the sums over the call count, as llama-quantize computes them.
pub fn parse_legacy(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut at = 0usize;
    let i32_at = |at: &mut usize| -> Result<i32, String> {
        let b = bytes.get(*at..*at + 4).ok_or("the imatrix file is truncated")?;
        *at += 4;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let n = i32_at(&mut at)?;
    if n < 1 {
        return Err("the imatrix file has no entries (or is not an imatrix)".into());
    }
    let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
    for _ in 0..n {
        let len = i32_at(&mut at)?;
        let name = usize::try_from(len)
            .ok()
            .and_then(|len| bytes.get(at..at + len).map(|b| (b, len)))
            .ok_or("the imatrix file is truncated or corrupt (an entry name)")?;
        at += name.1;
        let name = String::from_utf8_lossy(name.0).into_owned();
        let ncall = i32_at(&mut at)?;
        let nval = i32_at(&mut at)?;
        let nval = usize::try_from(nval)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("imatrix entry {name} has no values"))?;
        let raw = bytes
            .get(at..at.saturating_add(nval.saturating_mul(4)))
            .ok_or_else(|| format!("the imatrix file is truncated (in entry {name})"))?;
        at += nval * 4;
        let scale = if ncall > 0 { 1.0 / ncall as f32 } else { 1.0 };
        let values = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * scale).collect();
        out.push(Entry { name, values });
    }
    Ok(out)
}

/// Turns one GGUF imatrix weight's sums and counts into values: each expert's slice of sums over
/// its count (1 where an expert was never used, as llama-quantize does).
pub fn mean_squares(sums: &[f32], counts: &[f32]) -> Result<Vec<f32>, String> {
    if counts.is_empty() || !sums.len().is_multiple_of(counts.len()) {
        return Err(format!("{} sums do not split into {} counted slices", sums.len(), counts.len()));
    }
    let per = sums.len() / counts.len();
    Ok(sums
        .chunks(per.max(1))
        .zip(counts)
        .flat_map(|(slice, &count)| {
            let count = count.round();
            slice.iter().map(move |&s| if count > 0.0 { s / count } else { 1.0 })
        })
        .collect())
}

/// Reads a GGUF imatrix with ggml's own GGUF reader (tensor data included).
fn load_gguf(path: &Path) -> Result<Vec<Entry>, String> {
    use llama_cpp_sys_2 as sys;
    let bad = |why: &str| format!("the imatrix {} {why}", path.display());
    let c_path = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| bad("has a NUL in its path"))?;
    let mut ctx: *mut sys::ggml_context = std::ptr::null_mut();
    let params = sys::gguf_init_params { no_alloc: false, ctx: &mut ctx };
    // SAFETY: a valid C path; on success ggml allocates `ctx` with every tensor's data.
    let gguf = unsafe { sys::gguf_init_from_file(c_path.as_ptr(), params) };
    if gguf.is_null() || ctx.is_null() {
        return Err(bad("is not a readable GGUF file"));
    }
    // Per weight: its `.in_sum2` and its `.counts`, as they turn up.
    type SumsCounts = (Option<Vec<f32>>, Option<Vec<f32>>);
    let mut sums: std::collections::BTreeMap<String, SumsCounts> = Default::default();
    // SAFETY: walking the tensors of a context ggml just built; each F32 tensor's data holds
    // ggml_nelements floats.
    unsafe {
        let mut t = sys::ggml_get_first_tensor(ctx);
        while !t.is_null() {
            let name = CStr::from_ptr(sys::ggml_get_name(t)).to_string_lossy().into_owned();
            let n = sys::ggml_nelements(t).max(0) as usize;
            let data = (*t).data as *const f32;
            let floats = ((*t).type_ == sys::GGML_TYPE_F32 && !data.is_null())
                .then(|| std::slice::from_raw_parts(data, n).to_vec());
            if let Some(w) = name.strip_suffix(".in_sum2") {
                sums.entry(w.to_string()).or_default().0 = floats;
            } else if let Some(w) = name.strip_suffix(".counts") {
                sums.entry(w.to_string()).or_default().1 = floats;
            }
            t = sys::ggml_get_next_tensor(ctx, t);
        }
        sys::gguf_free(gguf);
        sys::ggml_free(ctx);
    }
    sums.into_iter()
        .map(|(name, pair)| match pair {
            (Some(s), Some(c)) => mean_squares(&s, &c)
                .map(|values| Entry { name: name.clone(), values })
                .map_err(|why| bad(&format!("entry {name}: {why}"))),
            _ => Err(bad(&format!("lacks F32 sums or counts for {name}"))),
        })
        .collect()
}

/// The entries as llama.cpp's C array (terminated by a null name), with the storage it points
/// into; keep it alive for the whole quantisation.
pub struct CArray {
    _names: Vec<CString>,
    _values: Vec<Vec<f32>>,
    items: Vec<llama_cpp_sys_2::llama_model_imatrix_data>,
}

impl CArray {
    pub fn new(entries: Vec<Entry>) -> CArray {
        let mut names = Vec::with_capacity(entries.len());
        let mut values = Vec::with_capacity(entries.len());
        for e in entries {
            // A name with a NUL cannot match any tensor; it is dropped.
            if let Ok(n) = CString::new(e.name) {
                names.push(n);
                values.push(e.values);
            }
        }
        let mut items: Vec<_> = names
            .iter()
            .zip(&values)
            .map(|(n, v)| llama_cpp_sys_2::llama_model_imatrix_data {
                name: n.as_ptr(),
                data: v.as_ptr(),
                size: v.len(),
            })
            .collect();
        items.push(llama_cpp_sys_2::llama_model_imatrix_data {
            name: std::ptr::null(),
            data: std::ptr::null(),
            size: 0,
        });
        CArray { _names: names, _values: values, items }
    }

    pub fn as_ptr(&self) -> *const llama_cpp_sys_2::llama_model_imatrix_data {
        self.items.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(entries: &[(&str, i32, &[f32])]) -> Vec<u8> {
        let mut b = (entries.len() as i32).to_le_bytes().to_vec();
        for (name, ncall, vals) in entries {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(ncall.to_le_bytes());
            b.extend((vals.len() as i32).to_le_bytes());
            for v in *vals {
                b.extend(v.to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn legacy_values_are_sums_over_calls() {
        let b = legacy(&[("blk.0.ffn_up.weight", 4, &[4.0, 8.0]), ("output.weight", 0, &[3.0])]);
        let e = parse_legacy(&b).unwrap();
        assert_eq!(e[0], Entry { name: "blk.0.ffn_up.weight".into(), values: vec![1.0, 2.0] });
        assert_eq!(e[1].values, vec![3.0]);
    }

    #[test]
    fn truncated_or_foreign_legacy_files_are_errors_not_panics() {
        let b = legacy(&[("blk.0.ffn_up.weight", 4, &[4.0, 8.0])]);
        for cut in 0..b.len() {
            assert!(parse_legacy(&b[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_legacy(&(-5i32).to_le_bytes()).is_err());
        let mut huge = 1i32.to_le_bytes().to_vec();
        huge.extend(i32::MAX.to_le_bytes());
        assert!(parse_legacy(&huge).is_err());
    }

    #[test]
    fn gguf_sums_are_divided_per_expert_and_unused_experts_weigh_one() {
        assert_eq!(mean_squares(&[2.0, 4.0, 9.0, 3.0], &[2.0, 3.0]).unwrap(), vec![1.0, 2.0, 3.0, 1.0]);
        assert_eq!(mean_squares(&[2.0, 4.0], &[0.0]).unwrap(), vec![1.0, 1.0]);
        assert!(mean_squares(&[1.0, 2.0, 3.0], &[1.0, 1.0]).is_err());
        assert!(mean_squares(&[1.0], &[]).is_err());
    }
}
