//! A sans-IO reader of the one hot Redis reply of the tag bus, `XREADGROUP`, and the encoder
//! of the commands sent on the connection that reads it.
//!
//! Why: decoding `XREADGROUP` replies through redis-rs (a generic `Value` tree built by a
//! parser-combinator) was about 30 % of the MQTT publisher's CPU while it drained a backlog.
//! This reader walks the RESP2 bytes once and builds the [`StreamEntry`]s directly. It takes
//! a byte slice and returns entries, "need more bytes", or an error: nothing here does I/O,
//! and no input can panic it (cursor reads, checked arithmetic, bounded nesting).

use crate::stream::{decode_entry_fields, EntryBody, EntryId, StreamEntry};

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// Redis answered with an error (`-ERR ...`, `-NOGROUP ...`).
    #[error("redis error: {0}")]
    Server(String),
    /// The bytes are not the reply expected here.
    #[error("unexpected reply from redis: {0}")]
    Protocol(&'static str),
}

/// A parse result: the value and the bytes it took, or `None` when more bytes are needed.
pub(crate) type Parsed<T> = Result<Option<(T, usize)>, RespError>;

/// Longest bulk string accepted (a tag key or value is far shorter; Redis' own limit is
/// 512 MB): a corrupted length never makes us wait for, or reserve, gigabytes.
const MAX_BULK: usize = 16 * 1024 * 1024;
/// Most elements accepted in one array header.
const MAX_ARRAY: usize = 16 * 1024 * 1024;

/// Appends the RESP encoding of a command (an array of bulk strings) to `out`.
/// Reserved once: an `XACK` of a thousand ids is one command.
pub(crate) fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    // `$<len>\r\n<arg>\r\n`: at most 20 digits and 5 more bytes around each argument.
    let size = args.iter().fold(25, |n: usize, a| {
        n.saturating_add(a.len()).saturating_add(25)
    });
    out.reserve(size);
    out.push(b'*');
    push_decimal(out, args.len());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        push_decimal(out, a.len());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the decimal digits of `n` (no text allocated per argument).
fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut rest = n;
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        // `rest % 10` is a digit: `b'0' | digit` is its ASCII code.
        *slot = b'0' | u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
        start = start.saturating_sub(1);
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// A cursor over the reply bytes; every read returns `Ok(None)` when the bytes run out.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// One RESP header: the type byte and its line (without CRLF).
impl<'a> Cursor<'a> {
    fn line(&mut self) -> Option<(u8, &'a [u8])> {
        let rest = self.buf.get(self.pos..)?;
        let end = crlf(rest)?;
        let kind = *rest.first()?;
        // An empty line ("\r\n") has no type byte: it comes back as kind `\r`, which every
        // caller refuses as a protocol error (instead of waiting for bytes that fix nothing).
        let text = rest.get(1..end.max(1))?;
        self.pos = self.pos.checked_add(end)?.checked_add(2)?;
        Some((kind, text))
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let data = self.buf.get(self.pos..end)?;
        if self.buf.get(end..end.checked_add(2)?)? != b"\r\n" {
            // Not CRLF after the data: reported by the caller as a protocol error.
            self.pos = usize::MAX;
            return Some(data);
        }
        self.pos = end.checked_add(2)?;
        Some(data)
    }
}

/// Where the first `\r\n` in `bytes` starts.
fn crlf(bytes: &[u8]) -> Option<usize> {
    let mut from = 0usize;
    loop {
        let at = from.checked_add(bytes.get(from..)?.iter().position(|b| *b == b'\r')?)?;
        let next = at.checked_add(1)?;
        match bytes.get(next)? {
            b'\n' => return Some(at),
            _ => from = next,
        }
    }
}

/// The text of an error line (`-ERR ...`).
fn server_error(text: &[u8]) -> RespError {
    RespError::Server(String::from_utf8_lossy(text).into_owned())
}

/// A header's length: -1 (nil) as `None`.
fn length(text: &[u8], max: usize) -> Result<Option<usize>, RespError> {
    if text == b"-1" {
        return Ok(None);
    }
    // Digits read in place (what `str::parse::<usize>` accepts: an optional `+`, then digits).
    let digits = text.strip_prefix(b"+").unwrap_or(text);
    if digits.is_empty() {
        return Err(RespError::Protocol("bad length"));
    }
    let mut n: usize = 0;
    for b in digits {
        let digit = char::from(*b)
            .to_digit(10)
            .ok_or(RespError::Protocol("bad length"))?;
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(usize::try_from(digit).ok()?))
            .ok_or(RespError::Protocol("bad length"))?;
    }
    if n > max {
        return Err(RespError::Protocol("length too large"));
    }
    Ok(Some(n))
}

/// Reads an array header; `Ok(Some(None))` is a nil array.
fn array(c: &mut Cursor<'_>) -> Result<Option<Option<usize>>, RespError> {
    let Some((kind, text)) = c.line() else {
        return Ok(None);
    };
    match kind {
        b'*' => length(text, MAX_ARRAY).map(Some),
        b'_' => Ok(Some(None)),
        b'-' => Err(server_error(text)),
        _ => Err(RespError::Protocol("expected an array")),
    }
}

/// Reads a bulk (or simple) string; `Ok(Some(None))` is a nil string.
fn bulk<'a>(c: &mut Cursor<'a>) -> Result<Option<Option<&'a [u8]>>, RespError> {
    let Some((kind, text)) = c.line() else {
        return Ok(None);
    };
    match kind {
        b'$' => match length(text, MAX_BULK)? {
            None => Ok(Some(None)),
            Some(n) => match c.bytes(n) {
                None => Ok(None),
                Some(_) if c.pos == usize::MAX => Err(RespError::Protocol("bulk without CRLF")),
                Some(data) => Ok(Some(Some(data))),
            },
        },
        b'+' => Ok(Some(Some(text))),
        b'-' => Err(server_error(text)),
        _ => Err(RespError::Protocol("expected a string")),
    }
}

/// Where a walk of a reply that is not whole yet stopped ([`reply_len_from`]): at the start of
/// the first element not whole, with the elements still to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walk {
    pos: usize,
    pending: usize,
}

impl Walk {
    /// The start of a reply.
    pub(crate) const START: Walk = Walk { pos: 0, pending: 1 };
}

/// [`reply_len_from`] from the start.
#[cfg(test)]
pub(crate) fn reply_len(buf: &[u8]) -> Result<Option<usize>, RespError> {
    let mut walk = Walk::START;
    reply_len_from(buf, &mut walk)
}

/// The length of the first whole reply in `buf` (any RESP2 shape), `None` while bytes are
/// missing: a walk over the headers that decodes and allocates nothing, so a reply that
/// arrives in several reads is decoded once, when it is whole (a 512-entry `XREADGROUP`
/// reply is ~50 KB and often comes in 2-4 reads). The walk goes on from `walk`, where the
/// walk of a shorter `buf` (the same bytes, fewer of them) stopped, so each byte is walked
/// once however many reads a reply takes. Start with [`Walk::START`]; `walk` is updated when
/// bytes are missing.
pub(crate) fn reply_len_from(buf: &[u8], walk: &mut Walk) -> Result<Option<usize>, RespError> {
    let mut c = Cursor { buf, pos: walk.pos };
    // Elements still to walk: the reply itself, then the members of the arrays met.
    let mut pending = walk.pending;
    while let Some(left) = pending.checked_sub(1) {
        let at = Walk {
            pos: c.pos,
            pending,
        };
        pending = left;
        let Some((kind, text)) = c.line() else {
            *walk = at;
            return Ok(None);
        };
        match kind {
            b'*' => {
                if let Some(n) = length(text, MAX_ARRAY)? {
                    pending = pending
                        .checked_add(n)
                        .ok_or(RespError::Protocol("length too large"))?;
                }
            }
            b'$' => {
                if let Some(n) = length(text, MAX_BULK)? {
                    if c.bytes(n).is_none() {
                        *walk = at;
                        return Ok(None);
                    }
                    if c.pos == usize::MAX {
                        return Err(RespError::Protocol("bulk without CRLF"));
                    }
                }
            }
            b'+' | b'-' | b':' | b'_' => {}
            _ => return Err(RespError::Protocol("unknown reply type")),
        }
    }
    Ok(Some(c.pos))
}

/// Evaluates to the inner value, or returns `Ok(None)` (need more bytes) from the function.
macro_rules! more {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

/// Parses a whole `XREADGROUP` reply (RESP2): `*-1` when a blocking read timed out, else
/// `[[stream, [[id, [field, value, ...] | nil], ...]], ...]`. Entries without fields (their
/// body was trimmed) are [`EntryBody::Trimmed`].
pub(crate) fn parse_read_reply(buf: &[u8]) -> Parsed<Vec<StreamEntry>> {
    let mut c = Cursor { buf, pos: 0 };
    let mut out = Vec::new();
    let Some(streams) = more!(array(&mut c)) else {
        return Ok(Some((out, c.pos)));
    };
    for _ in 0..streams {
        if more!(array(&mut c)) != Some(2) {
            return Err(RespError::Protocol("a stream is not [name, entries]"));
        }
        let _name = more!(bulk(&mut c));
        let Some(entries) = more!(array(&mut c)) else {
            continue;
        };
        out.reserve(entries.min(4096));
        for _ in 0..entries {
            if more!(array(&mut c)) != Some(2) {
                return Err(RespError::Protocol("an entry is not [id, fields]"));
            }
            let id = more!(bulk(&mut c)).ok_or(RespError::Protocol("nil entry id"))?;
            let id = std::str::from_utf8(id).map_err(|_| RespError::Protocol("entry id"))?;
            let body = match more!(array(&mut c)) {
                None => EntryBody::Trimmed,
                Some(n) => {
                    let (mut key, mut value) = (None, None);
                    for _ in 0..n / 2 {
                        let name = more!(bulk(&mut c));
                        let v = more!(bulk(&mut c));
                        match name {
                            Some(f) if f == crate::STREAM_FIELD_KEY.as_bytes() => key = v,
                            Some(f) if f == crate::STREAM_FIELD_VALUE.as_bytes() => value = v,
                            _ => {}
                        }
                    }
                    if n % 2 == 1 {
                        let _odd = more!(bulk(&mut c));
                    }
                    decode_entry_fields(key, value)
                }
            };
            out.push(StreamEntry {
                id: EntryId::new(id),
                body,
            });
        }
    }
    Ok(Some((out, c.pos)))
}

/// Parses an integer reply (`:3`); a Redis error is [`RespError::Server`].
pub(crate) fn parse_integer(buf: &[u8]) -> Parsed<i64> {
    let mut c = Cursor { buf, pos: 0 };
    let Some((kind, text)) = c.line() else {
        return Ok(None);
    };
    match kind {
        b':' => std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .map(|n| Some((n, c.pos)))
            .ok_or(RespError::Protocol("bad integer")),
        b'-' => Err(server_error(text)),
        _ => Err(RespError::Protocol("expected an integer")),
    }
}

/// Parses a status reply (`+OK`); a Redis error is [`RespError::Server`].
pub(crate) fn parse_status(buf: &[u8]) -> Parsed<String> {
    let mut c = Cursor { buf, pos: 0 };
    match more!(bulk(&mut c)) {
        Some(text) => Ok(Some((String::from_utf8_lossy(text).into_owned(), c.pos))),
        None => Err(RespError::Protocol("nil status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TagKey;

    fn entry(id: &str, key: &str, value: &str) -> Vec<u8> {
        format!(
            "*2\r\n${}\r\n{id}\r\n*4\r\n$1\r\nk\r\n${}\r\n{key}\r\n$1\r\nv\r\n${}\r\n{value}\r\n",
            id.len(),
            key.len(),
            value.len()
        )
        .into_bytes()
    }

    fn reply(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut r =
            format!("*1\r\n*2\r\n$13\r\ntagbus:stream\r\n*{}\r\n", entries.len()).into_bytes();
        for e in entries {
            r.extend_from_slice(e);
        }
        r
    }

    #[test]
    fn encodes_a_command() {
        let mut out = Vec::new();
        encode_command(&[b"XACK", b"s", b"g", b"1-0"], &mut out);
        assert_eq!(
            out,
            b"*4\r\n$4\r\nXACK\r\n$1\r\ns\r\n$1\r\ng\r\n$3\r\n1-0\r\n"
        );
        let long = vec![b'x'; 1234];
        let mut out = Vec::new();
        encode_command(&[b"", &long], &mut out);
        let mut expected = b"*2\r\n$0\r\n\r\n$1234\r\n".to_vec();
        expected.extend_from_slice(&long);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(out, expected);
        for n in [0, 9, 10, 99, 100, 65_535, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn lengths_read_like_str_parse() {
        for text in ["0", "7", "+7", "512", "0012", "16777216"] {
            assert_eq!(
                length(text.as_bytes(), MAX_ARRAY),
                Ok(Some(text.parse().unwrap())),
                "{text}"
            );
        }
        assert_eq!(length(b"-1", MAX_ARRAY), Ok(None));
        for bad in [
            "",
            "+",
            "-2",
            "1x",
            " 1",
            "99999999999999999999999",
            "16777217",
        ] {
            assert!(length(bad.as_bytes(), MAX_ARRAY).is_err(), "{bad}");
        }
        assert_eq!(crlf(b"a\rb\r\n"), Some(3));
        assert_eq!(crlf(b"ab\r"), None);
        assert_eq!(crlf(b"\r\r\n"), Some(1));
    }

    #[test]
    fn an_empty_line_is_a_protocol_error_not_a_wait() {
        assert!(parse_read_reply(b"\r\n").is_err());
        assert!(parse_status(b"\r\n").is_err());
        assert!(parse_integer(b"\r\n").is_err());
        let mut inner = b"*1\r\n".to_vec();
        inner.extend_from_slice(b"\r\n");
        assert!(parse_read_reply(&inner).is_err());
    }

    #[test]
    fn reads_entries_exactly() {
        let bytes = reply(&[
            entry("1700000000000-0", "tag/rtu1/s1/in", "1.5,1700000000000,"),
            entry("1700000000000-1", "tag/rtu1/s2/in", "7,1700000000001,iv"),
        ]);
        let (entries, used) = parse_read_reply(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id.as_str(), "1700000000000-0");
        let EntryBody::Tag { key, value } = &entries[1].body else {
            panic!("{:?}", entries[1]);
        };
        assert_eq!(key, &"tag/rtu1/s2/in".parse::<TagKey>().unwrap());
        assert_eq!(value.to_string(), "7,1700000000001,iv");
    }

    /// Both readers on every prefix of a two-entry reply: not whole yet (never a panic); with
    /// a further reply behind it, exactly its length.
    #[test]
    fn every_prefix_needs_more_bytes_and_never_panics() {
        let bytes = reply(&[
            entry("1-0", "tag/a/b/in", "1,2,"),
            entry("1-1", "tag/a/c/in", "3,4,"),
        ]);
        for n in 0..bytes.len() {
            assert_eq!(parse_read_reply(&bytes[..n]), Ok(None), "prefix {n}");
            assert_eq!(reply_len(&bytes[..n]), Ok(None), "prefix {n}");
        }
        // Walked on from where each shorter prefix stopped: the same answers.
        let mut walk = Walk::START;
        for n in 0..bytes.len() {
            assert_eq!(
                reply_len_from(&bytes[..n], &mut walk),
                Ok(None),
                "prefix {n}"
            );
        }
        assert_eq!(reply_len_from(&bytes, &mut walk), Ok(Some(bytes.len())));
        let mut extra = bytes.clone();
        extra.extend_from_slice(b"+OK\r\n");
        assert_eq!(parse_read_reply(&extra).unwrap().unwrap().1, bytes.len());
        assert_eq!(reply_len(&extra), Ok(Some(bytes.len())));
    }

    #[test]
    fn reply_len_finds_the_end_of_any_reply() {
        let trimmed = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-0\r\n*-1\r\n";
        assert_eq!(reply_len(trimmed), Ok(Some(trimmed.len())));
        assert_eq!(reply_len(b"*-1\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b":12\r\n+OK"), Ok(Some(5)));
        assert_eq!(reply_len(b"-NOGROUP x\r\n"), Ok(Some(12)));
        assert!(reply_len(b"*1\r\n$1\r\nsXX").is_err());
        assert!(reply_len(b"\r\n").is_err());
        assert!(reply_len(b"*99999999999999999999\r\n").is_err());
    }

    #[test]
    fn nil_timeout_trimmed_and_malformed_entries() {
        assert_eq!(parse_read_reply(b"*-1\r\n"), Ok(Some((vec![], 5))));
        assert_eq!(parse_read_reply(b"_\r\n"), Ok(Some((vec![], 3))));
        // a pending entry whose body the cap trimmed
        let trimmed = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-0\r\n*-1\r\n";
        let (e, _) = parse_read_reply(trimmed).unwrap().unwrap();
        assert_eq!(e[0].body, EntryBody::Trimmed);
        // fields other than k/v, and a bad key: entries, not errors
        let odd = reply(&[
            b"*2\r\n$3\r\n6-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n".to_vec(),
            entry("6-1", "not a key", "1,2,"),
        ]);
        let (e, _) = parse_read_reply(&odd).unwrap().unwrap();
        assert!(matches!(e[0].body, EntryBody::Malformed(_)), "{:?}", e[0]);
        assert!(matches!(e[1].body, EntryBody::Malformed(_)), "{:?}", e[1]);
    }

    #[test]
    fn errors_and_garbage_are_errors() {
        assert_eq!(
            parse_read_reply(b"-NOGROUP No such key\r\n"),
            Err(RespError::Server("NOGROUP No such key".into()))
        );
        assert!(parse_read_reply(b":5\r\n").is_err());
        assert!(parse_read_reply(b"*1\r\n*3\r\n").is_err());
        assert!(parse_read_reply(b"*x\r\n").is_err());
        assert!(parse_read_reply(b"*99999999999999999999\r\n").is_err());
        assert!(parse_read_reply(b"*1\r\n*2\r\n$1\r\nsXX").is_err());
        assert!(parse_read_reply(b"*1\r\n*2\r\n$999999999\r\n").is_err());
        assert_eq!(parse_status(b"+OK\r\n"), Ok(Some(("OK".into(), 5))));
        assert_eq!(parse_integer(b":12\r\n"), Ok(Some((12, 5))));
        assert_eq!(parse_integer(b":1"), Ok(None));
        assert!(parse_integer(b":x\r\n").is_err());
        assert!(parse_integer(b"-ERR no\r\n").is_err());
        assert!(parse_status(b"-WRONGPASS bad\r\n").is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let valid = reply(&[entry("1-0", "tag/a/b/in", "1,2,")]);
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = valid.clone();
            let i = (x as usize) % b.len();
            b[i] = (x >> 32) as u8;
            let _ = parse_read_reply(&b);
            let _ = parse_read_reply(&b[..i]);
            let _ = reply_len(&b);
            let _ = reply_len(&b[..i]);
        }
    }
}
