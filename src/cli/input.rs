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

/// Checks that bytes are text: no NUL bytes, valid UTF-8.
pub fn decode(what: &str, bytes: Vec<u8>) -> Result<String, Failure> {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        return Err(Failure::usage(format!(
            "{what} contains a NUL byte at offset {pos}: moat reads text, not binary data; strip it (e.g. `tr -d '\\0'`)"
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let pos = e.utf8_error().valid_up_to();
        Failure::usage(format!(
            "{what} is not valid UTF-8 (first bad byte at offset {pos}); convert it first, e.g. `iconv -f GBK -t UTF-8`"
        ))
    })
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
