//! Request parsing: RESP multibulk frames and inline commands.
//!
//! The parser never allocates from a length a client claims: it checks the
//! limits first and records argument positions as spans into the caller's
//! buffer. A frame that arrives in pieces is resumed where it stopped, so a
//! large request is scanned once, not once per read.

use thiserror::Error;

/// Longest inline request or multibulk/bulk header line, as Redis's
/// PROTO_INLINE_MAX_SIZE.
pub const INLINE_MAX: usize = 64 * 1024;

/// Unauthenticated clients may only send tiny frames (Redis's rule).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16384;

/// Protocol violations; the text follows Redis's `Protocol error: ` prefix.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("too big inline request")]
    TooBigInline,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
}

/// Limits the parser enforces before trusting a length.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk: usize,
    pub authenticated: bool,
}

/// A complete request found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    /// Bytes of the buffer the frame occupies.
    pub consumed: usize,
    /// Arguments live in the parser's scratch buffer (inline commands, whose
    /// quoting is unescaped), not in the caller's buffer.
    pub inline: bool,
}

/// Argument spans: `(offset, len)` into the frame's data.
pub type Span = (u32, u32);

#[derive(Debug, Default)]
struct Partial {
    /// Arguments the multibulk header announced.
    expected: usize,
    /// Offset (from the frame start) where parsing resumes.
    pos: usize,
    /// Length of the bulk whose header was read but whose data has not
    /// fully arrived.
    bulk: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Parser {
    partial: Option<Partial>,
    spans: Vec<Span>,
    scratch: Vec<u8>,
}

impl Parser {
    /// Parses one request from the start of `buf`. `Ok(None)` means more
    /// bytes are needed; the parser remembers how far it got.
    pub fn parse(&mut self, buf: &[u8], limits: Limits) -> Result<Option<Frame>, ProtocolError> {
        if buf.is_empty() {
            return Ok(None);
        }
        if self.partial.is_some() || buf[0] == b'*' {
            self.parse_multibulk(buf, limits)
        } else {
            self.parse_inline(buf)
        }
    }

    /// Spans of the last frame's arguments.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// Data the spans of an inline frame point into.
    pub fn scratch(&self) -> &[u8] {
        &self.scratch
    }

    /// Bytes the frame in progress needs in the buffer before it can
    /// complete, if known: lets the caller grow its buffer once.
    pub fn needed(&self) -> Option<usize> {
        let p = self.partial.as_ref()?;
        p.bulk.map(|b| p.pos + b + 2)
    }

    fn parse_multibulk(&mut self, buf: &[u8], limits: Limits) -> Result<Option<Frame>, ProtocolError> {
        if self.partial.is_none() {
            let Some(cr) = find_crlf(buf, 0) else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtocolError::TooBigMultibulkCount);
                }
                return Ok(None);
            };
            if cr > INLINE_MAX {
                return Err(ProtocolError::TooBigMultibulkCount);
            }
            let n = parse_i64(&buf[1..cr])
                .filter(|&n| n <= i32::MAX as i64)
                .ok_or(ProtocolError::InvalidMultibulkLength)?;
            if !limits.authenticated && n > UNAUTH_MAX_MULTIBULK {
                return Err(ProtocolError::UnauthenticatedMultibulkLength);
            }
            self.spans.clear();
            if n <= 0 {
                return Ok(Some(Frame { consumed: cr + 2, inline: false }));
            }
            // Reserve for what fits in the bytes at hand, not for the claim.
            self.spans.reserve((n as usize).min(1024));
            self.partial = Some(Partial { expected: n as usize, pos: cr + 2, bulk: None });
        }
        let p = self.partial.as_mut().expect("partial frame set above");
        while self.spans.len() < p.expected {
            let len = match p.bulk {
                Some(len) => len,
                None => {
                    if p.pos >= buf.len() {
                        return Ok(None);
                    }
                    let Some(cr) = find_crlf(buf, p.pos) else {
                        if buf.len() - p.pos > INLINE_MAX {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        return Ok(None);
                    };
                    if cr - p.pos > INLINE_MAX {
                        return Err(ProtocolError::TooBigBulkCount);
                    }
                    if buf[p.pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(buf[p.pos] as char));
                    }
                    let len = parse_i64(&buf[p.pos + 1..cr])
                        .filter(|&l| l >= 0 && l as u64 <= limits.max_bulk as u64)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    if !limits.authenticated && len > UNAUTH_MAX_BULK {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    p.pos = cr + 2;
                    p.bulk = Some(len as usize);
                    len as usize
                }
            };
            if buf.len() < p.pos + len + 2 {
                return Ok(None);
            }
            self.spans.push((p.pos as u32, len as u32));
            p.pos += len + 2;
            p.bulk = None;
        }
        let consumed = p.pos;
        self.partial = None;
        Ok(Some(Frame { consumed, inline: false }))
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let Some(nl) = memchr(b'\n', buf) else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        let mut line = &buf[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        split_args(line, &mut self.scratch, &mut self.spans)?;
        Ok(Some(Frame { consumed: nl + 1, inline: true }))
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Position of the `\r` of the first `\r\n` at or after `from`, once the
/// `\n` has arrived too.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let cr = from + memchr(b'\r', &buf[from..])?;
    (cr + 1 < buf.len()).then_some(cr)
}

/// Strict decimal i64 as Redis's string2ll: optional '-', no '+', no spaces.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A closing quote at `i` must be followed by a space or the end of the
/// line; returns the position after it.
fn after_closing_quote(line: &[u8], i: usize) -> Result<usize, ProtocolError> {
    if line.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
        return Err(ProtocolError::UnbalancedQuotes);
    }
    Ok(i + 1)
}

/// Splits an inline line into arguments the way redis-cli and Redis's
/// `sdssplitargs` do: whitespace separated, "double quotes" with escapes,
/// 'single quotes' with only \' escaped.
pub fn split_args(line: &[u8], out: &mut Vec<u8>, spans: &mut Vec<Span>) -> Result<(), ProtocolError> {
    out.clear();
    spans.clear();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        let start = out.len();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\'
                    && line.get(i + 1) == Some(&b'x')
                    && let (Some(h), Some(l)) =
                        (line.get(i + 2).copied().and_then(hex_digit), line.get(i + 3).copied().and_then(hex_digit))
                {
                    out.push(h * 16 + l);
                    i += 3;
                } else if c == b'\\' && i + 1 < line.len() {
                    i += 1;
                    out.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    i = after_closing_quote(line, i)?;
                    break;
                } else {
                    out.push(c);
                }
            } else if in_sq {
                let Some(&c) = line.get(i) else {
                    return Err(ProtocolError::UnbalancedQuotes);
                };
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    i += 1;
                    out.push(b'\'');
                } else if c == b'\'' {
                    i = after_closing_quote(line, i)?;
                    break;
                } else {
                    out.push(c);
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => out.push(c),
                }
            }
            i += 1;
        }
        spans.push((start as u32, (out.len() - start) as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: Limits = Limits { max_bulk: 512 * 1024 * 1024, authenticated: true };

    fn args<'a>(p: &'a Parser, buf: &'a [u8], f: &Frame) -> Vec<&'a [u8]> {
        let data = if f.inline { p.scratch() } else { buf };
        p.spans().iter().map(|&(o, l)| &data[o as usize..(o + l) as usize]).collect()
    }

    #[test]
    fn multibulk() {
        let mut p = Parser::default();
        let buf = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n";
        let f = p.parse(buf, AUTH).unwrap().unwrap();
        assert_eq!(f.consumed, 22);
        assert_eq!(args(&p, buf, &f), vec![&b"GET"[..], b"key"]);
        let rest = &buf[22..];
        let f = p.parse(rest, AUTH).unwrap().unwrap();
        assert_eq!(args(&p, rest, &f), vec![&b"PING"[..]]);
    }

    #[test]
    fn resumes_byte_by_byte() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut p = Parser::default();
        for end in 1..buf.len() {
            assert_eq!(p.parse(&buf[..end], AUTH).unwrap(), None, "at {end}");
        }
        let f = p.parse(buf, AUTH).unwrap().unwrap();
        assert_eq!(f.consumed, buf.len());
        assert_eq!(args(&p, buf, &f), vec![&b"SET"[..], b"k", b"hello"]);
    }

    #[test]
    fn binary_bulk_and_empty() {
        let buf = b"*2\r\n$0\r\n\r\n$2\r\n\r\n\r\n";
        let mut p = Parser::default();
        let f = p.parse(buf, AUTH).unwrap().unwrap();
        assert_eq!(args(&p, buf, &f), vec![&b""[..], b"\r\n"]);
        let f = p.parse(b"*0\r\n", AUTH).unwrap().unwrap();
        assert_eq!(f.consumed, 4);
        assert!(p.spans().is_empty());
    }

    #[test]
    fn protocol_errors() {
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*x\r\n", AUTH), Err(ProtocolError::InvalidMultibulkLength));
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*1\r\n+a\r\n", AUTH), Err(ProtocolError::ExpectedDollar('+')));
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*1\r\n$-5\r\n", AUTH), Err(ProtocolError::InvalidBulkLength));
        let mut p = Parser::default();
        let small = Limits { max_bulk: 10, authenticated: true };
        assert_eq!(p.parse(b"*1\r\n$11\r\n", small), Err(ProtocolError::InvalidBulkLength));
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*3000000000\r\n", AUTH), Err(ProtocolError::InvalidMultibulkLength));
        let mut p = Parser::default();
        let unauth = Limits { authenticated: false, ..AUTH };
        assert_eq!(p.parse(b"*11\r\n", unauth), Err(ProtocolError::UnauthenticatedMultibulkLength));
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*1\r\n$16385\r\n", unauth), Err(ProtocolError::UnauthenticatedBulkLength));
        let mut p = Parser::default();
        let long = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(p.parse(&long, AUTH), Err(ProtocolError::TooBigInline));
        let mut long = b"*1".to_vec();
        long.extend(vec![b'1'; INLINE_MAX + 1]);
        assert_eq!(Parser::default().parse(&long, AUTH), Err(ProtocolError::TooBigMultibulkCount));
    }

    #[test]
    fn huge_claims_do_not_allocate() {
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*2147483647\r\n", AUTH).unwrap(), None);
        assert!(p.spans.capacity() <= 1024);
        let mut p = Parser::default();
        assert_eq!(p.parse(b"*1\r\n$536870912\r\n", AUTH).unwrap(), None);
        assert_eq!(p.needed(), Some(16 + 536870912 + 2));
    }

    #[test]
    fn inline_commands() {
        let mut p = Parser::default();
        let buf = b"set  key \"a b\\x41\\n\" 'it\\'s'\r\nping\n";
        let f = p.parse(buf, AUTH).unwrap().unwrap();
        assert!(f.inline);
        assert_eq!(args(&p, buf, &f), vec![&b"set"[..], b"key", b"a bA\n", b"it's"]);
        let f2 = p.parse(&buf[f.consumed..], AUTH).unwrap().unwrap();
        assert_eq!(args(&p, &buf[f.consumed..], &f2), vec![&b"ping"[..]]);
        assert_eq!(p.parse(b"get \"abc\n", AUTH), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(p.parse(b"get \"a\"b\n", AUTH), Err(ProtocolError::UnbalancedQuotes));
        let f = p.parse(b"   \r\n", AUTH).unwrap().unwrap();
        assert!(p.spans().is_empty());
        assert_eq!(f.consumed, 5);
        assert_eq!(p.parse(b"ping", AUTH).unwrap(), None);
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"+1", b"01", b" 1", b"1 ", b"1.0", b"-0x", b"-0"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }
}
