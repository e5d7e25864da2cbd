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

/// Whether `bytes` are UTF-16 rather than UTF-8: a UTF-16 byte-order mark (FF FE or FE FF, bytes
/// that never start UTF-8), or, without one, the NUL pattern of mostly-ASCII UTF-16 (at least
/// three quarters of the first 512 two-byte units have exactly one NUL byte, on the same side).
/// Binary data and a stray NUL do not match; callers refuse such input as a whole instead of
/// reporting a NUL on every line.
pub fn is_utf16(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return true;
    }
    let units: Vec<&[u8]> = bytes.chunks_exact(2).take(512).collect();
    if units.len() < 2 {
        return false;
    }
    let one_nul = |side: usize| units.iter().filter(|u| (u[side] == 0) && (u[1 - side] != 0)).count();
    one_nul(0).max(one_nul(1)) * 4 >= units.len() * 3
}

/// CRLF and lone CR → LF on bytes that may not be UTF-8 yet (line-oriented readers decode each
/// line on its own, so one bad line does not spoil the rest). Borrows when there is no CR.
pub fn normalize_newlines_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&b'\r') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(p) = rest.iter().position(|&b| b == b'\r') {
        out.extend_from_slice(&rest[..p]);
        out.push(b'\n');
        rest = &rest[p + 1..];
        rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

/// CRLF and lone CR → LF. Borrows when there is no CR.
pub fn normalize_newlines(text: &str) -> Cow<'_, str> {
    match normalize_newlines_bytes(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // CR and LF are ASCII: swapping one for the other keeps the text valid UTF-8.
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8(bytes).expect("CR → LF keeps UTF-8 valid")),
    }
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
