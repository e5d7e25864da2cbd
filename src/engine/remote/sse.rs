//! Server-sent events (`text/event-stream`), the format OpenAI-compatible servers stream replies
//! in, parsed from raw bytes as they arrive. Lenient where servers differ and the spec allows it:
//! LF, CRLF and lone CR line ends (even split across reads), comments (`:` lines, keep-alives),
//! `data:` with or without the space, several `data:` lines joined with `\n`, `event:` names,
//! unknown fields ignored, and an event cut off by the end of the stream still delivered (some
//! servers close without the final blank line). Pure: no I/O, so every case is unit-tested.

/// One dispatched event: its `event:` name (if any) and its data lines joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// The largest line or event data the parser holds, in bytes. A reply chunk is a few hundred
/// bytes; a stream that never ends its line is a broken or hostile server.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// An event stream that broke the parser's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server sent an event of more than {} MiB without ending it; it is not a reply stream", MAX_EVENT_BYTES >> 20)]
pub struct TooLong;

/// Turns bytes into [`SseEvent`]s; feed it with [`push`](SseParser::push) and call
/// [`finish`](SseParser::finish) at the end of the stream.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte ended a line with CR: a LF right after it belongs to that line end.
    after_cr: bool,
    /// No line has been completed yet (a UTF-8 BOM may start the stream).
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
}

impl SseParser {
    /// Parses `bytes`, appending every event they complete to `out`.
    ///
    /// Errors: [`TooLong`] when a line or an event's data grows past [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLong> {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                    if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
                        return Err(TooLong);
                    }
                }
            }
        }
        if self.data.len() > MAX_EVENT_BYTES {
            return Err(TooLong);
        }
        Ok(())
    }

    /// The end of the stream: a last line without its line end, and an event without its
    /// closing blank line, are delivered.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        out.pop()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{FEFF}') {
                line = rest.to_string();
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            // `id` and `retry` steer reconnection, which a reply stream never does.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if std::mem::take(&mut self.has_data) {
            out.push(SseEvent { event, data: std::mem::take(&mut self.data) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        out.extend(p.finish());
        out
    }

    fn data(d: &str) -> SseEvent {
        SseEvent { event: None, data: d.into() }
    }

    #[test]
    fn line_ends_lf_crlf_and_cr_give_the_same_events() {
        let want = vec![data("{\"a\":1}"), data("[DONE]")];
        assert_eq!(parse(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]), want);
        assert_eq!(parse(&[b"data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n"]), want);
        assert_eq!(parse(&[b"data: {\"a\":1}\r\rdata: [DONE]\r\r"]), want);
        // A CRLF split between two reads is one line end, not two (which would dispatch early).
        assert_eq!(parse(&[b"data: {\"a\":1}\r", b"\n\r", b"\ndata: [DONE]\r\n\r\n"]), want);
    }

    #[test]
    fn comments_fields_and_multi_line_data() {
        let got = parse(&[b": keep-alive\n\nevent: message\ndata:first\ndata: second\nid: 7\nretry: 10\nfoo: bar\n\n"]);
        assert_eq!(got, vec![SseEvent { event: Some("message".into()), data: "first\nsecond".into() }]);
        // A field without a colon is a name with an empty value; `data` alone is an empty line.
        assert_eq!(parse(&[b"data\ndata\n\n"]), vec![data("\n")]);
        // Only the first space after the colon is dropped.
        assert_eq!(parse(&[b"data:  two spaces\n\n"]), vec![data(" two spaces")]);
        // An event with no data is not dispatched, and its name does not leak into the next one.
        assert_eq!(parse(&[b"event: ping\n\ndata: x\n\n"]), vec![data("x")]);
    }

    #[test]
    fn end_of_stream_delivers_a_cut_off_event_and_a_bom_is_dropped() {
        assert_eq!(parse(&[b"data: {\"a\":1}"]), vec![data("{\"a\":1}")]);
        assert_eq!(parse(&[b"data: {\"a\":1}\n"]), vec![data("{\"a\":1}")]);
        assert_eq!(parse(&["\u{FEFF}data: x\n\n".as_bytes()]), vec![data("x")]);
        assert_eq!(parse(&[b""]), vec![]);
    }

    #[test]
    fn a_line_that_never_ends_is_refused_not_buffered_forever() {
        let mut p = SseParser::default();
        let chunk = vec![b'a'; 1 << 20];
        let mut out = Vec::new();
        let mut result = Ok(());
        for _ in 0..20 {
            result = p.push(&chunk, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(TooLong));
        assert!(!TooLong.to_string().contains('\n'));
    }

    /// Builds a stream of `events` (data only) with the given line end, and cuts it at `cuts`.
    fn stream(events: &[String], eol: &str) -> Vec<u8> {
        let mut s = String::new();
        for e in events {
            for line in e.split('\n') {
                s.push_str("data: ");
                s.push_str(line);
                s.push_str(eol);
            }
            s.push_str(": comment");
            s.push_str(eol);
            s.push_str(eol);
        }
        s.into_bytes()
    }

    proptest! {
        /// However the bytes are split into reads, and whichever line end the server uses, the
        /// same events come out.
        #[test]
        fn prop_splitting_and_line_ends_do_not_change_events(
            events in proptest::collection::vec("[^\r\n]{0,20}(\n[^\r\n]{0,20}){0,2}", 0..6),
            eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let bytes = stream(&events, eol);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(&bytes[at..c]);
                at = c;
            }
            pieces.push(&bytes[at..]);
            let got: Vec<String> = parse(&pieces).into_iter().map(|e| e.data).collect();
            prop_assert_eq!(got, events);
        }

        /// Any bytes at all: no panic, and every event's data is bounded.
        #[test]
        fn prop_arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut p = SseParser::default();
            let mut out = Vec::new();
            for c in &chunks {
                p.push(c, &mut out).unwrap();
            }
            out.extend(p.finish());
            let total: usize = chunks.iter().map(Vec::len).sum();
            for e in out {
                prop_assert!(e.data.len() <= total * 3 + 3);
            }
        }
    }
}
