//! The set type: `intset` while every member is an integer and there are
//! few, `listpack` while small, `hashtable` beyond; conversions only go
//! towards the table (Redis 7.2's rules and directive names).

use indexmap::IndexSet;

use super::SmallBytes;
use super::db::KeyHasher;
use super::encodings::{IntSet, Listpack};
use crate::protocol::resp::parse_i64;

#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    pub max_intset_entries: usize,
    pub max_listpack_entries: usize,
    pub max_listpack_value: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Set {
    Ints(IntSet),
    Packed(Listpack),
    /// Boxed so a small (packed) set stays small.
    Table(Box<IndexSet<SmallBytes, KeyHasher>>),
}

impl Default for Set {
    fn default() -> Set {
        Set::Ints(IntSet::default())
    }
}

impl Set {
    /// An empty set in the encoding its first member calls for.
    pub fn for_member(member: &[u8], limits: SetLimits) -> Set {
        if parse_i64(member).is_some() && limits.max_intset_entries > 0 {
            Set::Ints(IntSet::default())
        } else if limits.max_listpack_entries > 0 && member.len() <= limits.max_listpack_value {
            Set::Packed(Listpack::default())
        } else {
            Set::Table(Box::default())
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(s) => s.len(),
            Set::Packed(lp) => lp.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Packed(_) => "listpack",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self {
            Set::Ints(s) => parse_i64(member).is_some_and(|n| s.contains(n)),
            Set::Packed(lp) => lp.position(member, 1).is_some(),
            Set::Table(t) => t.contains(member),
        }
    }

    /// Adds `member`; true if it is new.
    pub fn insert(&mut self, member: &[u8], limits: SetLimits) -> bool {
        if let Set::Ints(s) = self {
            match parse_i64(member) {
                Some(n) if s.contains(n) => return false,
                Some(n) if s.len() < limits.max_intset_entries => return s.insert(n),
                _ => {
                    let fits = s.len() < limits.max_listpack_entries && member.len() <= limits.max_listpack_value;
                    self.convert(fits);
                }
            }
        }
        if let Set::Packed(lp) = self {
            if lp.position(member, 1).is_some() {
                return false;
            }
            if lp.len() < limits.max_listpack_entries && member.len() <= limits.max_listpack_value {
                lp.push(member);
                return true;
            }
            self.convert(false);
        }
        match self {
            Set::Table(t) => t.insert(SmallBytes::new(member)),
            _ => unreachable!("converted to a table above"),
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            Set::Ints(s) => parse_i64(member).is_some_and(|n| s.remove(n)),
            Set::Packed(lp) => match lp.position(member, 1) {
                Some(i) => {
                    lp.remove_range(i, 1);
                    true
                }
                None => false,
            },
            Set::Table(t) => t.swap_remove(member),
        }
    }

    /// Converts to a listpack (`packed`) or a table, keeping the members.
    fn convert(&mut self, packed: bool) {
        let members = self.members();
        *self = if packed {
            let mut lp = Listpack::default();
            members.iter().for_each(|m| lp.push(m));
            Set::Packed(lp)
        } else {
            Set::Table(Box::new(members.into_iter().collect()))
        };
    }

    /// The member at storage position `i`.
    pub fn nth(&self, i: usize) -> Option<SmallBytes> {
        match self {
            Set::Ints(s) => s.get(i).map(|n| SmallBytes::new(itoa::Buffer::new().format(n).as_bytes())),
            Set::Packed(lp) => lp.get(i).map(SmallBytes::new),
            Set::Table(t) => t.get_index(i).cloned(),
        }
    }

    pub fn members(&self) -> Vec<SmallBytes> {
        (0..self.len()).filter_map(|i| self.nth(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SetLimits = SetLimits { max_intset_entries: 3, max_listpack_entries: 4, max_listpack_value: 5 };

    #[test]
    fn encodings_progress() {
        let mut s = Set::for_member(b"1", LIMITS);
        for m in [&b"1"[..], b"2", b"3"] {
            assert!(s.insert(m, LIMITS));
        }
        assert!(!s.insert(b"2", LIMITS));
        assert_eq!(s.encoding(), "intset");
        assert!(s.insert(b"a", LIMITS));
        assert_eq!(s.encoding(), "listpack");
        assert!(s.contains(b"2") && s.contains(b"a"));
        assert!(s.insert(b"toolongvalue", LIMITS));
        assert_eq!((s.encoding(), s.len()), ("hashtable", 5));
        assert!(s.remove(b"1") && !s.remove(b"1"));
        let mut members = s.members();
        members.sort();
        assert_eq!(members, ["2", "3", "a", "toolongvalue"].map(|m| SmallBytes::new(m.as_bytes())).to_vec());
    }

    #[test]
    fn too_many_integers_leave_the_intset() {
        let mut s = Set::for_member(b"1", LIMITS);
        for i in 0..4 {
            s.insert(i.to_string().as_bytes(), LIMITS);
        }
        assert_eq!(s.encoding(), "listpack");
        assert_eq!(Set::for_member(b"x", LIMITS).encoding(), "listpack");
        assert_eq!(Set::for_member(b"sixsix", LIMITS).encoding(), "hashtable");
    }
}
