//! The set type: `intset` while every member is an integer and there are
//! few, `listpack` while small, `hashtable` beyond; conversions only go
//! towards the table (Redis 7.2's rules and directive names).

use super::SmallBytes;
use bytemuck::TransparentWrapper;

use super::encodings::{IntSet, Listpack};
use super::table::Table;
use crate::protocol::resp::parse_i64;

#[derive(Clone, Copy, Debug)]
pub struct SetLimits {
    pub max_intset_entries: usize,
    pub max_listpack_entries: usize,
    pub max_listpack_value: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Set {
    /// An intset or a listpack in one exact-size buffer whose first byte
    /// says which: a small set costs one allocation and no enum of its own.
    Small(Box<[u8]>),
    /// Boxed so a small set stays small.
    Table(Box<Table<SmallBytes>>),
}

enum Form<'a> {
    Ints(&'a IntSet),
    Packed(&'a Listpack),
    Table(&'a Table<SmallBytes>),
}

enum FormMut<'a> {
    Ints(&'a mut IntSet),
    Packed(&'a mut Listpack),
    Table(&'a mut Table<SmallBytes>),
}

impl Default for Set {
    fn default() -> Set {
        Set::ints(IntSet::default())
    }
}

impl Set {
    fn ints(s: IntSet) -> Set {
        Set::Small(IntSet::peel(s))
    }

    fn packed(lp: Listpack) -> Set {
        Set::Small(Listpack::peel(lp))
    }

    fn form(&self) -> Form<'_> {
        match self {
            Set::Small(b) if IntSet::is_width(b[0]) => Form::Ints(IntSet::wrap_ref(b)),
            Set::Small(b) => Form::Packed(Listpack::wrap_ref(b)),
            Set::Table(t) => Form::Table(t),
        }
    }

    fn form_mut(&mut self) -> FormMut<'_> {
        match self {
            Set::Small(b) => {
                if IntSet::is_width(b[0]) {
                    FormMut::Ints(IntSet::wrap_mut(b))
                } else {
                    FormMut::Packed(Listpack::wrap_mut(b))
                }
            }
            Set::Table(t) => FormMut::Table(t),
        }
    }

    /// An empty set in the encoding its first member calls for.
    pub fn for_member(member: &[u8], limits: SetLimits) -> Set {
        if parse_i64(member).is_some() && limits.max_intset_entries > 0 {
            Set::default()
        } else if limits.max_listpack_entries > 0 && member.len() <= limits.max_listpack_value {
            Set::packed(Listpack::default())
        } else {
            Set::Table(Box::default())
        }
    }

    pub fn len(&self) -> usize {
        match self.form() {
            Form::Ints(s) => s.len(),
            Form::Packed(lp) => lp.len(),
            Form::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self.form() {
            Form::Ints(_) => "intset",
            Form::Packed(_) => "listpack",
            Form::Table(_) => "hashtable",
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match self.form() {
            Form::Ints(s) => parse_i64(member).is_some_and(|n| s.contains(n)),
            Form::Packed(lp) => lp.position(member, 1).is_some(),
            Form::Table(t) => t.contains(member),
        }
    }

    /// Adds `member`; true if it is new.
    pub fn insert(&mut self, member: &[u8], limits: SetLimits) -> bool {
        if let FormMut::Ints(s) = self.form_mut() {
            match parse_i64(member) {
                Some(n) if s.contains(n) => return false,
                Some(n) if s.len() < limits.max_intset_entries => return s.insert(n),
                _ => {
                    let fits = s.len() < limits.max_listpack_entries && member.len() <= limits.max_listpack_value;
                    self.convert(fits);
                }
            }
        }
        if let FormMut::Packed(lp) = self.form_mut() {
            if lp.position(member, 1).is_some() {
                return false;
            }
            if lp.len() < limits.max_listpack_entries && member.len() <= limits.max_listpack_value {
                lp.push(member);
                return true;
            }
            self.convert(false);
        }
        match self.form_mut() {
            FormMut::Table(t) => t.insert(SmallBytes::new(member)).is_none(),
            _ => unreachable!("converted to a table above"),
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.form_mut() {
            FormMut::Ints(s) => parse_i64(member).is_some_and(|n| s.remove(n)),
            FormMut::Packed(lp) => match lp.position(member, 1) {
                Some(i) => {
                    lp.remove_range(i, 1);
                    true
                }
                None => false,
            },
            FormMut::Table(t) => t.remove(member).is_some(),
        }
    }

    /// Converts to a listpack (`packed`) or a table, keeping the members.
    fn convert(&mut self, packed: bool) {
        let members = self.members();
        *self = if packed {
            let mut lp = Listpack::default();
            members.iter().for_each(|m| lp.push(m));
            Set::packed(lp)
        } else {
            Set::Table(Box::new(members.into_iter().collect()))
        };
    }

    /// The member at position `pos` (an index in the packed forms, a
    /// bucket in the table).
    pub fn at(&self, pos: usize) -> Option<SmallBytes> {
        match self.form() {
            Form::Ints(s) => s.get(pos).map(|n| SmallBytes::new(itoa::Buffer::new().format(n).as_bytes())),
            Form::Packed(lp) => lp.get(pos).map(SmallBytes::new),
            Form::Table(t) => t.at(pos).cloned(),
        }
    }

    /// The position of a random member.
    pub fn random(&self) -> Option<usize> {
        match self.form() {
            Form::Table(t) => t.random(),
            _ => (!self.is_empty()).then(|| fastrand::usize(..self.len())),
        }
    }

    /// The positions of all members.
    pub fn positions(&self) -> Vec<usize> {
        match self.form() {
            Form::Table(t) => t.positions(),
            _ => (0..self.len()).collect(),
        }
    }

    /// SSCAN: visits members from `cursor`; returns the next cursor (0:
    /// done). A packed set is visited whole.
    pub fn scan(&self, cursor: usize, count: usize, mut visit: impl FnMut(&[u8])) -> usize {
        match self.form() {
            Form::Table(t) => t.scan(cursor, count, |m| visit(m)),
            _ => {
                self.members().iter().for_each(|m| visit(m));
                0
            }
        }
    }

    pub fn members(&self) -> Vec<SmallBytes> {
        match self.form() {
            Form::Table(t) => t.iter().cloned().collect(),
            _ => (0..self.len()).filter_map(|i| self.at(i)).collect(),
        }
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
