//! Values stored under keys.

use std::borrow::Cow;

use super::SmallBytes;
use super::hash::Hash;
use super::list::List;
use super::set::Set;
use super::stream::Stream;
use super::zset::ZSet;
use crate::protocol::resp::parse_i64;

/// Strings up to this length are stored exactly sized, like Redis's embstr.
pub const EMBSTR_MAX: usize = 44;

/// A string value in the encoding Redis would pick for it.
// The growable form is boxed on purpose: it keeps `Str`, and with it every
// key's entry, 8 bytes smaller; appends are rare next to lookups.
#[allow(clippy::box_collection)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Str {
    /// A canonical decimal integer (`int`).
    Int(i64),
    /// A short string, inline up to 22 bytes (`embstr`).
    Emb(SmallBytes),
    /// A string that grows in place (APPEND, SETRANGE) (`raw`).
    Raw(Box<Vec<u8>>),
}

impl Str {
    /// A growable string (the box keeps every string value, and so every
    /// key's entry, at 24 bytes).
    pub fn raw(data: Vec<u8>) -> Str {
        Str::Raw(Box::new(data))
    }

    /// Picks the encoding Redis's `tryObjectEncoding` would.
    pub fn from_bytes(data: &[u8]) -> Str {
        if data.len() <= 20
            && let Some(n) = parse_i64(data)
        {
            return Str::Int(n);
        }
        if data.len() <= EMBSTR_MAX { Str::Emb(data.into()) } else { Str::raw(data.to_vec()) }
    }

    pub fn as_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Str::Int(n) => Cow::Owned(itoa::Buffer::new().format(*n).as_bytes().to_vec()),
            Str::Emb(b) => Cow::Borrowed(b),
            Str::Raw(v) => Cow::Borrowed(v.as_slice()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Str::Int(n) => itoa::Buffer::new().format(*n).len(),
            Str::Emb(b) => b.len(),
            Str::Raw(v) => v.len(),
        }
    }

    /// The value as an integer, if it is one Redis would accept.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Str::Int(n) => Some(*n),
            Str::Emb(b) => parse_i64(b),
            Str::Raw(v) => parse_i64(v),
        }
    }

    /// Switches to the growable encoding, as APPEND and SETRANGE do.
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Str::Raw(_)) {
            *self = Str::raw(self.as_bytes().into_owned());
        }
        match self {
            Str::Raw(v) => v.as_mut(),
            _ => unreachable!("converted to raw above"),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Str::Int(_) => "int",
            Str::Emb(_) => "embstr",
            Str::Raw(_) => "raw",
        }
    }
}

/// A value of any type. Each collection is 16 bytes here (a packed buffer
/// or a boxed table), so a small one costs a single allocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Str),
    Hash(Hash),
    Set(Set),
    List(List),
    ZSet(ZSet),
    /// Boxed: a stream's header is larger than the other values.
    Stream(Box<Stream>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::List(l) => l.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    pub fn as_str(&self) -> Option<&Str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_str_mut(&mut self) -> Option<&mut Str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_redis() {
        assert_eq!(Str::from_bytes(b"12345").encoding(), "int");
        assert_eq!(Str::from_bytes(b"-12").encoding(), "int");
        assert_eq!(Str::from_bytes(b"012").encoding(), "embstr");
        assert_eq!(Str::from_bytes(b"+1").encoding(), "embstr");
        assert_eq!(Str::from_bytes(b"99999999999999999999").encoding(), "embstr");
        assert_eq!(Str::from_bytes(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(Str::from_bytes(&[b'a'; 45]).encoding(), "raw");
    }

    #[test]
    fn values_fit_in_24_bytes() {
        assert_eq!(std::mem::size_of::<Value>(), 24);
        for size in [size_of::<Hash>(), size_of::<Set>(), size_of::<List>(), size_of::<ZSet>()] {
            assert_eq!(size, 16);
        }
    }

    #[test]
    fn raw_conversion_keeps_bytes() {
        let mut s = Str::from_bytes(b"-42");
        assert_eq!(s.len(), 3);
        s.make_raw().extend_from_slice(b"x");
        assert_eq!(&*s.as_bytes(), b"-42x");
        assert_eq!(s.encoding(), "raw");
        assert_eq!(s.as_int(), None);
    }
}
