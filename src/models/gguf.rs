//! Reads a GGUF file's header without llama.cpp, so that a missing, truncated or foreign file gets a
//! clear error before the loader sees it, and `moat models info` can show metadata cheaply.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: no such file")]
    Missing { path: String },
    #[error("{path}: cannot read it: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a GGUF model file (it starts with {magic:?}, not \"GGUF\")")]
    NotGguf { path: String, magic: String },
    #[error("{path} uses GGUF version {version}, which this build cannot read")]
    Version { path: String, version: u32 },
    #[error("{path} is truncated: {have} bytes, but its tensors need {need}; download it again")]
    Truncated { path: String, have: u64, need: u64 },
    #[error("{path} has a corrupt GGUF header ({why}); download it again")]
    Corrupt { path: String, why: String },
}

/// What the header says about a model.
#[derive(Debug, Clone, Default)]
pub struct GgufInfo {
    pub version: u32,
    pub file_size: u64,
    pub tensor_count: u64,
    pub architecture: Option<String>,
    pub name: Option<String>,
    pub context_length: Option<u64>,
    pub block_count: Option<u64>,
    pub chat_template: Option<String>,
    pub file_type: Option<u32>,
    pub bos_token_id: Option<u64>,
    pub eos_token_id: Option<u64>,
    /// `<arch>.classifier.output_labels`: a sequence classifier's outputs, in order (empty otherwise).
    pub classifier_labels: Vec<String>,
    /// `<arch>.attention.causal`: false for encoders (BERT and kin), which cannot write text.
    pub causal: Option<bool>,
}

/// Guards against absurd lengths in a corrupt header (a 2^60-byte string, say).
const MAX_STRING: u64 = 64 << 20;
const MAX_ARRAY: u64 = 1 << 28;

pub fn inspect(path: &Path) -> Result<GgufInfo, GgufError> {
    let p = path.display().to_string();
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => GgufError::Missing { path: p.clone() },
        _ => GgufError::Io { path: p.clone(), source: e },
    })?;
    let file_size = file.metadata().map_err(|e| GgufError::Io { path: p.clone(), source: e })?.len();
    read_header(BufReader::new(file), file_size, p)
}

/// The header of a GGUF whose bytes `inner` reads (`file_size` of them); `p` names it in errors.
fn read_header<R: Read + Seek>(inner: R, file_size: u64, p: String) -> Result<GgufInfo, GgufError> {
    let mut r = Reader { inner, pos: 0, size: file_size };
    let corrupt = |why: &str| GgufError::Corrupt { path: p.clone(), why: why.into() };
    let short = |_| GgufError::Truncated { path: p.clone(), have: file_size, need: file_size + 1 };

    let mut magic = [0u8; 4];
    if r.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        let shown = String::from_utf8_lossy(&magic[..file_size.min(4) as usize]).into_owned();
        return Err(GgufError::NotGguf { path: p, magic: shown });
    }
    let version = r.u32().map_err(short)?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version { path: p, version });
    }
    let tensor_count = r.u64().map_err(short)?;
    let kv_count = r.u64().map_err(short)?;
    if tensor_count > MAX_ARRAY || kv_count > MAX_ARRAY {
        return Err(corrupt("impossible tensor or key count"));
    }
    let mut info = GgufInfo { version, file_size, tensor_count, ..Default::default() };
    let mut alignment = 32u64;
    for _ in 0..kv_count {
        let key = r.string().map_err(|e| e.into_gguf(&p, file_size))?;
        let ty = r.u32().map_err(short)?;
        // Only this one string array is kept: the vocabulary arrays are large and not needed here.
        let keep = key.ends_with(".classifier.output_labels");
        let value = r.value(ty, keep, 0).map_err(|e| e.into_gguf(&p, file_size))?;
        match (key.as_str(), value) {
            (_, Value::Strs(labels)) => info.classifier_labels = labels,
            ("general.architecture", Value::Str(s)) => info.architecture = Some(s),
            ("general.name", Value::Str(s)) => info.name = Some(s),
            ("general.alignment", Value::Int(n)) if n.is_power_of_two() => alignment = n,
            ("general.file_type", Value::Int(n)) => info.file_type = Some(n as u32),
            ("tokenizer.chat_template", Value::Str(s)) => info.chat_template = Some(s),
            ("tokenizer.ggml.bos_token_id", Value::Int(n)) => info.bos_token_id = Some(n),
            ("tokenizer.ggml.eos_token_id", Value::Int(n)) => info.eos_token_id = Some(n),
            (k, Value::Int(n)) if k.ends_with(".context_length") => info.context_length = Some(n),
            (k, Value::Int(n)) if k.ends_with(".block_count") => info.block_count = Some(n),
            (k, Value::Int(n)) if k.ends_with(".attention.causal") => info.causal = Some(n != 0),
            _ => {}
        }
    }
    // Tensor infos: the data section must hold every tensor.
    let mut need = 0u64;
    for _ in 0..tensor_count {
        r.string().map_err(|e| e.into_gguf(&p, file_size))?;
        let n_dims = r.u32().map_err(short)?;
        if n_dims > 8 {
            return Err(corrupt("tensor with more than 8 dimensions"));
        }
        let mut elems = 1u64;
        for _ in 0..n_dims {
            elems = elems.saturating_mul(r.u64().map_err(short)?);
        }
        let ty = r.u32().map_err(short)?;
        let offset = r.u64().map_err(short)?;
        let bytes = tensor_bytes(ty, elems).unwrap_or(1);
        need = need.max(offset.saturating_add(bytes));
    }
    let data_start = r.pos.div_ceil(alignment) * alignment;
    let need = data_start.saturating_add(need);
    if need > file_size {
        return Err(GgufError::Truncated { path: p, have: file_size, need });
    }
    Ok(info)
}

/// Bytes a tensor of `ty` with `elems` elements takes (ggml block sizes); `None` for unknown types.
fn tensor_bytes(ty: u32, elems: u64) -> Option<u64> {
    let (block, bytes) = match ty {
        0 => (1, 4),       // F32
        1 | 30 => (1, 2),  // F16, BF16
        2 => (32, 18),     // Q4_0
        3 => (32, 20),     // Q4_1
        6 => (32, 22),     // Q5_0
        7 => (32, 24),     // Q5_1
        8 => (32, 34),     // Q8_0
        9 => (32, 36),     // Q8_1
        10 => (256, 84),   // Q2_K
        11 => (256, 110),  // Q3_K
        12 => (256, 144),  // Q4_K
        13 => (256, 176),  // Q5_K
        14 => (256, 210),  // Q6_K
        15 => (256, 292),  // Q8_K
        16 => (256, 66),   // IQ2_XXS
        17 => (256, 74),   // IQ2_XS
        18 => (256, 98),   // IQ3_XXS
        19 => (256, 50),   // IQ1_S
        20 => (32, 18),    // IQ4_NL
        21 => (256, 110),  // IQ3_S
        22 => (256, 82),   // IQ2_S
        23 => (256, 136),  // IQ4_XS
        24 => (1, 1),      // I8
        25 => (1, 2),      // I16
        26 => (1, 4),      // I32
        27 | 28 => (1, 8), // I64, F64
        29 => (256, 56),   // IQ1_M
        34 => (256, 54),   // TQ1_0
        35 => (256, 66),   // TQ2_0
        39 => (32, 17),    // MXFP4
        _ => return None,
    };
    Some(elems.div_ceil(block) * bytes)
}

/// llama.cpp's `general.file_type` names for the common quantisations.
pub fn file_type_name(ft: u32) -> &'static str {
    match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => "other",
    }
}

enum Value {
    Int(u64),
    Str(String),
    Strs(Vec<String>),
    Other,
}

enum ReadError {
    Eof,
    Corrupt(&'static str),
}

impl ReadError {
    fn into_gguf(self, path: &str, size: u64) -> GgufError {
        match self {
            ReadError::Eof => GgufError::Truncated { path: path.into(), have: size, need: size + 1 },
            ReadError::Corrupt(why) => GgufError::Corrupt { path: path.into(), why: why.into() },
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(_: std::io::Error) -> Self {
        ReadError::Eof
    }
}

struct Reader<R> {
    inner: R,
    pos: u64,
    /// Bytes in the file: a length that cannot fit in what is left is a truncation, found before
    /// anything is allocated for it.
    size: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }
    fn skip(&mut self, n: u64) -> Result<(), ReadError> {
        self.inner.seek(SeekFrom::Current(n as i64))?;
        self.pos += n;
        Ok(())
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        let mut b = [0; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> std::io::Result<u64> {
        let mut b = [0; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn string(&mut self) -> Result<String, ReadError> {
        let len = self.u64()?;
        if len > MAX_STRING {
            return Err(ReadError::Corrupt("string longer than 64 MiB"));
        }
        if len > self.size.saturating_sub(self.pos) {
            return Err(ReadError::Eof);
        }
        let mut buf = vec![0; len as usize];
        self.read_exact(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
    /// One metadata value; `keep` collects a string array instead of skipping it.
    /// `depth` counts arrays nested inside arrays: a hostile file could nest them deep enough to
    /// overflow the stack, and no real GGUF nests at all.
    fn value(&mut self, ty: u32, keep: bool, depth: u32) -> Result<Value, ReadError> {
        let scalar = |n: u64| -> Result<Value, ReadError> { Ok(Value::Int(n)) };
        match ty {
            0 | 1 | 7 => {
                let mut b = [0; 1];
                self.read_exact(&mut b)?;
                scalar(b[0] as u64)
            }
            2 | 3 => {
                let mut b = [0; 2];
                self.read_exact(&mut b)?;
                scalar(u16::from_le_bytes(b) as u64)
            }
            4 | 5 => scalar(self.u32()? as u64),
            6 => {
                self.u32()?;
                Ok(Value::Other)
            }
            10 | 11 => scalar(self.u64()?),
            12 => {
                self.u64()?;
                Ok(Value::Other)
            }
            8 => Ok(Value::Str(self.string()?)),
            9 if depth >= 4 => Err(ReadError::Corrupt("arrays nested more than 4 deep")),
            9 => {
                let elem = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ARRAY {
                    return Err(ReadError::Corrupt("array longer than 2^28 items"));
                }
                // Every element takes at least one byte.
                if n > self.size.saturating_sub(self.pos) {
                    return Err(ReadError::Eof);
                }
                let width = match elem {
                    0 | 1 | 7 => Some(1),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                match width {
                    Some(w) => self.skip(n * w)?,
                    None if keep && elem == 8 => {
                        let mut v = Vec::new();
                        for _ in 0..n {
                            v.push(self.string()?);
                        }
                        return Ok(Value::Strs(v));
                    }
                    None => {
                        for _ in 0..n {
                            self.value(elem, false, depth + 1)?;
                        }
                    }
                }
                Ok(Value::Other)
            }
            _ => Err(ReadError::Corrupt("unknown metadata value type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal valid GGUF: one string key, one F32 tensor of 4 elements.
    pub(crate) fn tiny_gguf() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"GGUF");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes()); // tensors
        v.extend_from_slice(&1u64.to_le_bytes()); // kvs
        let key = b"general.architecture";
        v.extend_from_slice(&(key.len() as u64).to_le_bytes());
        v.extend_from_slice(key);
        v.extend_from_slice(&8u32.to_le_bytes());
        v.extend_from_slice(&5u64.to_le_bytes());
        v.extend_from_slice(b"llama");
        let name = b"w";
        v.extend_from_slice(&(name.len() as u64).to_le_bytes());
        v.extend_from_slice(name);
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&4u64.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes()); // F32
        v.extend_from_slice(&0u64.to_le_bytes()); // offset
        while v.len() % 32 != 0 {
            v.push(0);
        }
        v.extend_from_slice(&[0u8; 16]);
        v
    }

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn reads_a_valid_header() {
        let f = write(&tiny_gguf());
        let info = inspect(f.path()).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.tensor_count, 1);
    }

    #[test]
    fn detects_truncation_in_data_and_header() {
        let full = tiny_gguf();
        let f = write(&full[..full.len() - 1]);
        assert!(matches!(inspect(f.path()), Err(GgufError::Truncated { .. })));
        let f = write(&full[..30]);
        assert!(matches!(inspect(f.path()), Err(GgufError::Truncated { .. })));
    }

    #[test]
    fn rejects_other_files() {
        let f = write(b"<html>not a model</html>");
        let e = inspect(f.path()).unwrap_err();
        assert!(matches!(e, GgufError::NotGguf { .. }));
        assert!(e.to_string().contains("not a GGUF"));
        let f = write(b"");
        assert!(matches!(inspect(f.path()), Err(GgufError::NotGguf { .. })));
        assert!(matches!(inspect(Path::new("/nonexistent/x.gguf")), Err(GgufError::Missing { .. })));
    }

    #[test]
    fn reads_classifier_labels_only_from_their_key() {
        let s = |v: &mut Vec<u8>, t: &str| {
            v.extend_from_slice(&(t.len() as u64).to_le_bytes());
            v.extend_from_slice(t.as_bytes());
        };
        let arr = |v: &mut Vec<u8>, key: &str, items: &[&str]| {
            s(v, key);
            v.extend_from_slice(&9u32.to_le_bytes());
            v.extend_from_slice(&8u32.to_le_bytes());
            v.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                s(v, i);
            }
        };
        let mut v = Vec::new();
        v.extend_from_slice(b"GGUF");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&2u64.to_le_bytes());
        arr(&mut v, "tokenizer.ggml.tokens", &["[CLS]", "good"]);
        arr(&mut v, "bert.classifier.output_labels", &["negative", "positive"]);
        v.resize(v.len().div_ceil(32) * 32, 0); // the (empty) data section starts aligned
        let f = write(&v);
        assert_eq!(inspect(f.path()).unwrap().classifier_labels, ["negative", "positive"]);
        assert!(inspect(write(&tiny_gguf()).path()).unwrap().classifier_labels.is_empty());
    }

    fn header(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
        read_header(std::io::Cursor::new(bytes), bytes.len() as u64, "x.gguf".into())
    }

    #[test]
    fn deeply_nested_arrays_are_corrupt_not_a_stack_overflow() {
        let mut v = Vec::new();
        v.extend_from_slice(b"GGUF");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
        v.push(b'k');
        v.extend_from_slice(&9u32.to_le_bytes());
        for _ in 0..200_000 {
            v.extend_from_slice(&9u32.to_le_bytes()); // an array of arrays of arrays …
            v.extend_from_slice(&1u64.to_le_bytes());
        }
        assert!(matches!(header(&v), Err(GgufError::Corrupt { .. })));
    }

    proptest::proptest! {
        #[test]
        fn prop_gguf_header_never_panics_on_arbitrary_bytes(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), magic in proptest::prelude::any::<bool>()) {
            if magic && bytes.len() >= 8 {
                bytes[..4].copy_from_slice(b"GGUF");
                bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
            }
            let _ = header(&bytes);
        }

        #[test]
        fn prop_gguf_every_truncation_is_an_error(cut in 0usize..1000) {
            let full = tiny_gguf();
            let cut = cut % full.len();
            proptest::prop_assert!(header(&full[..cut]).is_err());
            proptest::prop_assert!(header(&full).is_ok());
        }

        #[test]
        fn prop_gguf_corrupted_bytes_never_panic(flips in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 1..6)) {
            let mut v = tiny_gguf();
            for (at, b) in flips {
                let at = at % v.len();
                v[at] = b;
            }
            let _ = header(&v);
        }
    }

    #[test]
    fn rejects_absurd_lengths() {
        let mut v = tiny_gguf();
        // key length field of the first kv → huge
        v[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let f = write(&v);
        assert!(matches!(inspect(f.path()), Err(GgufError::Corrupt { .. })));
    }
}
