//! Reading untrusted text from stdin: every way it can be unusable gets its own one-line error.

use super::Failure;
use std::io::{IsTerminal, Read};

/// The whole of stdin as text, or `None` when stdin is a terminal (nothing piped).
pub fn read_stdin() -> Result<Option<String>, Failure> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    stdin.read_to_end(&mut bytes).map_err(|e| Failure::runtime(format!("cannot read stdin: {e}")))?;
    decode("stdin", bytes).map(Some)
}

/// Bytes → text with [`crate::text_input::decode`]: BOM dropped, CRLF/CR → LF, UTF-16, NUL bytes
/// and invalid UTF-8 refused with exit code 2.
pub fn decode(what: &str, bytes: Vec<u8>) -> Result<String, Failure> {
    crate::text_input::decode(what, bytes).map_err(|e| Failure::usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nul_and_bad_utf8_with_offsets() {
        let e = decode("stdin", b"ab\0c".to_vec()).unwrap_err();
        assert!(e.message.contains("offset 2") && e.code == 2, "{}", e.message);
        let e = decode("stdin", b"ok \xff".to_vec()).unwrap_err();
        assert!(e.message.contains("offset 3") && e.message.contains("UTF-8"), "{}", e.message);
        assert_eq!(decode("stdin", "市场优势 🦀".as_bytes().to_vec()).unwrap(), "市场优势 🦀");
    }
}
