//! Decoding untrusted text input — stdin, files, arguments, pastes — the same way everywhere.
//!
//! Text moat reads is UTF-8 with `\n` line ends by the time anything else sees it: a UTF-8 BOM is
//! dropped silently, CRLF and lone CR become LF (so the same prompt gives the same tokens on every
//! platform), and bytes that are not UTF-8 text get one error that says what to do.

use std::borrow::Cow;

/// Why bytes are not usable text. `Display` is one line naming the input and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is UTF-16; save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")]
    Utf16 { what: String },
    #[error(
        "{what} contains a NUL byte at offset {offset}: moat reads text, not binary data; strip it (e.g. `tr -d '\\0'`)"
    )]
    Nul { what: String, offset: usize },
    #[error(
        "{what} is not valid UTF-8 (first bad byte at offset {offset}); convert it first, e.g. `iconv -f GBK -t UTF-8`"
    )]
    InvalidUtf8 { what: String, offset: usize },
}

/// Bytes → text: BOM dropped, UTF-16 and binary refused, line ends normalised to `\n`.
///
/// `what` names the input in the error ("stdin", a file path). Offsets are 0-based byte offsets
/// into `bytes`.
pub fn decode(what: &str, bytes: Vec<u8>) -> Result<String, DecodeError> {
    if is_utf16(&bytes) {
        return Err(DecodeError::Utf16 { what: what.to_string() });
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(DecodeError::Nul { what: what.to_string(), offset });
    }
    let bom = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
    let mut bytes = bytes;
    let text = match std::str::from_utf8(&bytes[bom..]) {
        Ok(_) => {
            bytes.drain(..bom);
            String::from_utf8(bytes).unwrap_or_default()
        }
        Err(e) => return Err(DecodeError::InvalidUtf8 { what: what.to_string(), offset: bom + e.valid_up_to() }),
    };
    Ok(match normalize_newlines(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    })
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A UTF-16 byte order mark, or text whose every other byte is NUL (ASCII saved as UTF-16
/// without a BOM).
pub fn is_utf16(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return true;
    }
    let sample = &bytes[..bytes.len().min(4096)];
    if sample.len() < 4 {
        return false;
    }
    let pairs = sample.len() / 2;
    let nul_at = |parity: usize| sample.iter().skip(parity).step_by(2).filter(|&&b| b == 0).count();
    // UTF-16 text in a Latin script has a NUL in nearly every pair; binary data and a stray NUL
    // do not.
    nul_at(0).max(nul_at(1)) * 10 >= pairs * 9
}

/// CRLF and lone CR → LF. Borrows when there is no CR.
pub fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// [`normalize_newlines`] in place, for owned strings that may already be clean.
pub fn normalize_newlines_owned(text: String) -> String {
    match normalize_newlines(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_ends_bom_and_encodings() {
        assert_eq!(decode("x", b"a\r\nb\rc\n".to_vec()).unwrap(), "a\nb\nc\n");
        assert_eq!(decode("x", b"\xEF\xBB\xBFhi".to_vec()).unwrap(), "hi");
        let utf16: Vec<u8> = "hello\r\n".encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        assert_eq!(
            decode("notes.txt", utf16.clone()).unwrap_err().to_string().split(';').next().unwrap(),
            "notes.txt is UTF-16"
        );
        let mut with_bom = b"\xFF\xFE".to_vec();
        with_bom.extend(&utf16);
        assert!(matches!(decode("x", with_bom), Err(DecodeError::Utf16 { .. })));
        assert!(matches!(decode("x", b"ab\0c".to_vec()), Err(DecodeError::Nul { offset: 2, .. })));
        assert!(matches!(decode("x", b"ok \xff".to_vec()), Err(DecodeError::InvalidUtf8 { offset: 3, .. })));
        assert!(matches!(
            decode("x", b"\xEF\xBB\xBFok \xff".to_vec()),
            Err(DecodeError::InvalidUtf8 { offset: 6, .. })
        ));
        assert_eq!(decode("x", "市场优势 🦀".as_bytes().to_vec()).unwrap(), "市场优势 🦀");
        assert_eq!(decode("x", Vec::new()).unwrap(), "");
    }

    proptest! {
        #[test]
        fn prop_text_input_decode_never_panics_and_leaves_no_cr(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(s) = decode("x", bytes) {
                prop_assert!(!s.contains('\r') && !s.contains('\0') && !s.starts_with('\u{feff}'), "{:?}", s);
            }
        }

        #[test]
        fn prop_text_input_crlf_and_lf_decode_alike(lines in proptest::collection::vec("[^\r\n\0]*", 0..8)) {
            let lf = lines.join("\n");
            let crlf = lines.join("\r\n");
            prop_assert_eq!(decode("x", crlf.into_bytes()).unwrap(), decode("x", lf.clone().into_bytes()).unwrap());
        }
    }
}
