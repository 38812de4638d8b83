//! Replies and their encoding in RESP2 and RESP3.
//!
//! Commands build a `Reply`; only `encode` knows how each shape looks in
//! each protocol version (a map is a flat array in RESP2, a double a bulk
//! string, a null `$-1` or `*-1`).

use std::borrow::Cow;

use bytes::Bytes;

use super::error::CmdError;

/// Protocol version a client speaks (HELLO 2 / HELLO 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

/// Every reply shape of RESP3; the doubles, booleans and nested errors are
/// produced by the data-type and transaction families.
#[derive(Clone, Debug, PartialEq)]
#[allow(dead_code)]
pub enum Reply {
    /// `+OK`
    Ok,
    Status(Cow<'static, str>),
    Int(i64),
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2.
    Null,
    /// A missing aggregate: `*-1` in RESP2.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    /// Pairs that RESP3 shows as 2-element arrays and RESP2 flattens
    /// (HRANDFIELD WITHVALUES, ZRANGE WITHSCORES).
    Pairs(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    /// A double already printed (GEOPOS's long-double digits): `,` in
    /// RESP3, a bulk string in RESP2.
    DoubleText(String),
    Bool(bool),
    /// A big number (`(` in RESP3, a bulk string in RESP2).
    BigNum(String),
    /// Attributes about the reply that follows (`|` in RESP3; RESP2 has
    /// none, so nothing is sent).
    Attribute(Vec<(Reply, Reply)>),
    /// Text with a format hint (`=txt:` in RESP3, a bulk string in RESP2).
    Verbatim(Bytes),
    /// An error reply placed inside an aggregate (e.g. EXEC results).
    Error(CmdError),
    /// Out-of-band data (Pub/Sub): `>` in RESP3, an array in RESP2.
    Push(Vec<Reply>),
    /// Several replies to one command (SUBSCRIBE confirms each channel).
    Seq(Vec<Reply>),
    /// An array of bulk strings already in wire form (the same bytes in
    /// RESP2 and RESP3): LRANGE builds it without an allocation per item.
    BulkArray(Vec<u8>),
    /// No reply at all (CLIENT REPLY OFF / SKIP).
    Nothing,
}

impl Reply {
    pub fn bulk(data: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(data))
    }

    /// An array of `count` bulk strings that `fill` hands over one by one,
    /// encoded as they come (it must hand over exactly `count`).
    pub fn bulk_array(count: usize, fill: impl FnOnce(&mut dyn FnMut(&[u8]))) -> Reply {
        let mut out = Vec::with_capacity(16 + count * 16);
        header(&mut out, b'*', count as i64);
        fill(&mut |item| encode_bulk(&mut out, item));
        Reply::BulkArray(out)
    }

    /// The items of a `BulkArray` (for scripts, which see replies as values).
    pub fn bulk_array_items(encoded: &[u8]) -> Vec<&[u8]> {
        let mut items = Vec::new();
        let mut rest = encoded.splitn(2, |&b| b == b'\n').nth(1).unwrap_or_default();
        while let Some(after_dollar) = rest.strip_prefix(b"$") {
            let line_end = after_dollar.iter().position(|&b| b == b'\r').unwrap_or(after_dollar.len());
            let len: usize =
                std::str::from_utf8(&after_dollar[..line_end]).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
            let start = (line_end + 2).min(after_dollar.len());
            let end = (start + len).min(after_dollar.len());
            items.push(&after_dollar[start..end]);
            rest = after_dollar.get(end + 2..).unwrap_or_default();
        }
        items
    }

    pub fn status(s: &'static str) -> Reply {
        Reply::Status(Cow::Borrowed(s))
    }

    /// A HELP subcommand's reply: one status line per entry.
    pub fn help(lines: &[&'static str]) -> Reply {
        Reply::Array(lines.iter().map(|l| Reply::status(l)).collect())
    }

    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(Bytes::from(s.into()))
    }

    pub fn bulks<I, T>(items: I) -> Reply
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Reply::Array(items.into_iter().map(|i| Reply::bulk(i.as_ref())).collect())
    }
}

fn header(out: &mut Vec<u8>, prefix: u8, n: i64) {
    out.push(prefix);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn encode_bulk(out: &mut Vec<u8>, data: &[u8]) {
    header(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes an error reply; `text` already carries its prefix (`ERR`, ...).
pub fn encode_error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    // Newlines would break the framing; Redis replaces them with spaces.
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// Formats a double as Redis 7.0 does in replies: C's `%.17g`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // 17 significant digits, correctly rounded, then %g's layout rules.
    let sci = format!("{d:.16e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if !(-4..17).contains(&exp) {
        format!("{}e{}{:02}", trim(mant), if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        trim(&format!("{:.*}", (16 - exp) as usize, d))
    }
}

pub fn encode(reply: &Reply, proto: Proto, out: &mut Vec<u8>) {
    let resp3 = proto == Proto::Resp3;
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Status(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(n) => header(out, b':', *n),
        Reply::Bulk(b) => encode_bulk(out, b),
        Reply::Null if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::Null => out.extend_from_slice(b"$-1\r\n"),
        Reply::NullArray if resp3 => out.extend_from_slice(b"_\r\n"),
        Reply::NullArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(items) => {
            header(out, b'*', items.len() as i64);
            items.iter().for_each(|i| encode(i, proto, out));
        }
        Reply::Set(items) => {
            header(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|i| encode(i, proto, out));
        }
        Reply::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len() as i64);
            } else {
                header(out, b'*', 2 * pairs.len() as i64);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Pairs(pairs) => {
            header(out, b'*', if resp3 { pairs.len() } else { 2 * pairs.len() } as i64);
            for (a, b) in pairs {
                if resp3 {
                    out.extend_from_slice(b"*2\r\n");
                }
                encode(a, proto, out);
                encode(b, proto, out);
            }
        }
        Reply::Double(d) if resp3 => {
            out.push(b',');
            out.extend_from_slice(format_double(*d).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Double(d) => encode_bulk(out, format_double(*d).as_bytes()),
        Reply::DoubleText(text) if resp3 => {
            out.push(b',');
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::DoubleText(text) => encode_bulk(out, text.as_bytes()),
        Reply::BigNum(digits) if resp3 => {
            out.push(b'(');
            out.extend_from_slice(digits.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::BigNum(digits) => encode_bulk(out, digits.as_bytes()),
        Reply::Attribute(pairs) if resp3 => {
            header(out, b'|', pairs.len() as i64);
            for (a, b) in pairs {
                encode(a, proto, out);
                encode(b, proto, out);
            }
        }
        Reply::Attribute(_) => {}
        Reply::Bool(b) if resp3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Reply::Bool(b) => header(out, b':', *b as i64),
        Reply::Verbatim(text) if resp3 => {
            header(out, b'=', text.len() as i64 + 4);
            out.extend_from_slice(b"txt:");
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Verbatim(text) => encode_bulk(out, text),
        Reply::Error(e) => encode_error(out, &e.to_string()),
        Reply::Push(items) => {
            header(out, if resp3 { b'>' } else { b'*' }, items.len() as i64);
            items.iter().for_each(|i| encode(i, proto, out));
        }
        Reply::Seq(replies) => replies.iter().for_each(|r| encode(r, proto, out)),
        Reply::BulkArray(encoded) => out.extend_from_slice(encoded),
        Reply::Nothing => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Proto) -> String {
        let mut out = Vec::new();
        encode(r, p, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn bulk_arrays_are_plain_arrays() {
        let items: [&[u8]; 3] = [b"a", b"", b"with\r\nnewline"];
        let r = Reply::bulk_array(3, |push| items.iter().for_each(|i| push(i)));
        let plain = Reply::Array(items.iter().map(|i| Reply::bulk(i)).collect());
        for p in [Proto::Resp2, Proto::Resp3] {
            assert_eq!(enc(&r, p), enc(&plain, p));
        }
        let Reply::BulkArray(encoded) = &r else { unreachable!() };
        assert_eq!(Reply::bulk_array_items(encoded), items.to_vec());
    }

    #[test]
    fn shapes_per_protocol() {
        let map = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, Proto::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, Proto::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Null, Proto::Resp2), "$-1\r\n");
        let pairs = Reply::Pairs(vec![(Reply::text("f"), Reply::Int(1))]);
        assert_eq!(enc(&pairs, Proto::Resp2), "*2\r\n$1\r\nf\r\n:1\r\n");
        assert_eq!(enc(&pairs, Proto::Resp3), "*1\r\n*2\r\n$1\r\nf\r\n:1\r\n");
        assert_eq!(enc(&Reply::NullArray, Proto::Resp2), "*-1\r\n");
        assert_eq!(enc(&Reply::Null, Proto::Resp3), "_\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Proto::Resp3), ",1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Proto::Resp2), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), Proto::Resp2), ":1\r\n");
        assert_eq!(enc(&Reply::Set(vec![Reply::Int(1)]), Proto::Resp3), "~1\r\n:1\r\n");
        assert_eq!(enc(&Reply::Verbatim("hi".into()), Proto::Resp3), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&Reply::Int(-42), Proto::Resp2), ":-42\r\n");
    }

    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(-0.5), "-0.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1.25), "1.25");
        assert_eq!(format_double(123456.5), "123456.5");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(0.0001), "0.0001");
    }
}
