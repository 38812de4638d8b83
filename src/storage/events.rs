//! Keyspace event classes (`notify-keyspace-events`): what storage
//! records and the server publishes.

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 12;
pub const NEW: u32 = 1 << 13;
/// `A`: every class but key-miss and new.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The classes `A` covers, in Redis's order, then the others.
const FLAG_CHARS: &[(char, u32)] = &[
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('m', KEY_MISS),
    ('n', NEW),
];

/// Parses a `notify-keyspace-events` value; None on an unknown flag.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            c => FLAG_CHARS.iter().find(|(f, _)| *f == c)?.1,
        };
    }
    Some(flags)
}

/// The canonical text of `flags`, as CONFIG GET shows it: `A` or the
/// classes it covers, then K, E, m, n.
pub fn flags_to_string(flags: u32) -> String {
    let mut s = String::new();
    let class = |f: u32| FLAG_CHARS.iter().filter(move |(_, x)| x & f != 0).map(|(c, _)| *c);
    if flags & ALL == ALL {
        s.push('A');
    } else {
        s.extend(class(flags & ALL));
    }
    for (c, f) in [('K', KEYSPACE), ('E', KEYEVENT)] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s.extend(class(flags & (KEY_MISS | NEW)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_like_redis() {
        assert_eq!(parse_flags("KEA").map(flags_to_string).as_deref(), Some("AKE"));
        assert_eq!(parse_flags("Elg").map(flags_to_string).as_deref(), Some("glE"));
        assert_eq!(parse_flags("").map(flags_to_string).as_deref(), Some(""));
        assert_eq!(parse_flags("Kq"), None);
        assert_eq!(parse_flags("nmAKE").map(flags_to_string).as_deref(), Some("AKEmn"));
    }
}
