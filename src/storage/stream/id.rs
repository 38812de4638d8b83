//! Stream entry ids: `<ms>-<seq>`, two 64-bit numbers ordered as a pair.

use std::fmt;

use crate::protocol::resp::parse_i64;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    /// The id right after this one; None past the last.
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId { ms: ms + 1, seq: 0 }),
            (ms, seq) => Some(StreamId { ms, seq: seq + 1 }),
        }
    }

    /// The id right before this one; None before the first.
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId { ms: ms - 1, seq: u64::MAX }),
            (ms, seq) => Some(StreamId { ms, seq: seq - 1 }),
        }
    }

    /// Parses `<ms>[-<seq>]`, `-` and `+` as Redis's
    /// streamGenericParseIDOrReply: a missing sequence is `missing_seq`;
    /// with `auto_seq`, `<ms>-*` parses with its sequence left to the
    /// caller (the flag returned is whether a sequence was given).
    pub fn parse(b: &[u8], missing_seq: u64, auto_seq: bool) -> Option<(StreamId, bool)> {
        if b.len() > 127 {
            return None;
        }
        match b {
            b"-" => return Some((StreamId::MIN, true)),
            b"+" => return Some((StreamId::MAX, true)),
            _ => {}
        }
        let (ms, seq) = match b.iter().position(|&c| c == b'-') {
            Some(dash) => (&b[..dash], Some(&b[dash + 1..])),
            None => (b, None),
        };
        let ms = parse_u64(ms)?;
        match seq {
            Some(b"*") if auto_seq => Some((StreamId { ms, seq: 0 }, false)),
            Some(seq) => Some((StreamId { ms, seq: parse_u64(seq)? }, true)),
            None => Some((StreamId { ms, seq: missing_seq }, true)),
        }
    }
}

/// Redis's string2ull: a strict integer, else what strtoull accepts
/// (leading spaces, a sign, leading zeros; a minus wraps around).
fn parse_u64(b: &[u8]) -> Option<u64> {
    if let Some(n) = parse_i64(b) {
        return u64::try_from(n).ok();
    }
    let s = b.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().try_fold(0u64, |v, d| v.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    Some(if neg { v.wrapping_neg() } else { v })
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_redis() {
        let id = |ms, seq| StreamId { ms, seq };
        assert_eq!(StreamId::parse(b"5-3", 0, false), Some((id(5, 3), true)));
        assert_eq!(StreamId::parse(b"5", 7, false), Some((id(5, 7), true)));
        assert_eq!(StreamId::parse(b"5-*", 0, true), Some((id(5, 0), false)));
        assert_eq!(StreamId::parse(b"5-*", 0, false), None);
        assert_eq!(StreamId::parse(b"-", 0, false), Some((StreamId::MIN, true)));
        assert_eq!(StreamId::parse(b"+", 0, false), Some((StreamId::MAX, true)));
        for bad in [&b"x"[..], b"1-x", b"-1", b"1-2-3", b"", b"18446744073709551616"] {
            assert_eq!(StreamId::parse(bad, 0, false), None, "{bad:?}");
        }
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(id(1, u64::MAX).next(), Some(id(2, 0)));
        assert_eq!(id(2, 0).prev(), Some(id(1, u64::MAX)));
        assert_eq!(id(3, 4).to_string(), "3-4");
    }
}
