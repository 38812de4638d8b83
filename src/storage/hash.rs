//! The hash type: packed while small (`listpack`), a hash table past the
//! `hash-max-listpack-*` thresholds (`hashtable`), never converting back,
//! as Redis does.

use super::SmallBytes;
use super::encodings::Listpack;
use super::table::Table;

/// When a packed hash must become a table.
#[derive(Clone, Copy, Debug)]
pub struct PackLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hash {
    /// Field, value, field, value...
    Packed(Listpack),
    /// Boxed so a small (packed) hash stays small.
    Table(Box<Table<(SmallBytes, SmallBytes)>>),
}

impl Default for Hash {
    fn default() -> Hash {
        Hash::Packed(Listpack::default())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Packed(lp) => lp.len() / 2,
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Packed(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Packed(lp) => lp.position(field, 2).and_then(|i| lp.get(i + 1)),
            Hash::Table(t) => t.get(field).map(|(_, v)| &**v),
        }
    }

    /// Converts to a table ahead of a write that would break the packed
    /// limits (Redis checks argument lengths before writing).
    pub fn prepare(&mut self, lengths: impl Iterator<Item = usize>, limits: PackLimits) {
        if matches!(self, Hash::Packed(_)) && lengths.into_iter().any(|l| l > limits.max_value) {
            self.convert();
        }
    }

    /// Sets `field`; true if it is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: PackLimits) -> bool {
        let new = match self {
            Hash::Packed(lp) => match lp.position(field, 2) {
                Some(i) => {
                    lp.replace(i + 1, value);
                    false
                }
                None => {
                    lp.push(field);
                    lp.push(value);
                    true
                }
            },
            Hash::Table(t) => t.insert((SmallBytes::new(field), SmallBytes::new(value))).is_none(),
        };
        if let Hash::Packed(lp) = self
            && (lp.len() / 2 > limits.max_entries || value.len() > limits.max_value || field.len() > limits.max_value)
        {
            self.convert();
        }
        new
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Packed(lp) => match lp.position(field, 2) {
                Some(i) => {
                    lp.remove_range(i, 2);
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(field).is_some(),
        }
    }

    fn convert(&mut self) {
        if let Hash::Packed(lp) = self {
            let mut t = Table::with_capacity(lp.len() / 2);
            let mut it = lp.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                t.insert((SmallBytes::new(f), SmallBytes::new(v)));
            }
            *self = Hash::Table(Box::new(t));
        }
    }

    /// Field/value pairs in storage order.
    pub fn pairs(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Packed(lp) => {
                let mut it = lp.iter();
                Box::new(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
            }
            Hash::Table(t) => Box::new(t.iter().map(|(f, v)| (&**f, &**v))),
        }
    }

    /// The pair at position `pos` (an index in the packed form, a bucket
    /// in the table).
    pub fn at(&self, pos: usize) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Packed(lp) => Some((lp.get(2 * pos)?, lp.get(2 * pos + 1)?)),
            Hash::Table(t) => t.at(pos).map(|(f, v)| (&**f, &**v)),
        }
    }

    /// The position of a random pair.
    pub fn random(&self) -> Option<usize> {
        match self {
            Hash::Packed(_) => (!self.is_empty()).then(|| fastrand::usize(..self.len())),
            Hash::Table(t) => t.random(),
        }
    }

    /// The positions of all pairs.
    pub fn positions(&self) -> Vec<usize> {
        match self {
            Hash::Packed(_) => (0..self.len()).collect(),
            Hash::Table(t) => t.positions(),
        }
    }

    /// HSCAN: visits pairs from `cursor`; returns the next cursor (0: done).
    /// A packed hash is visited whole.
    pub fn scan(&self, cursor: usize, count: usize, mut visit: impl FnMut(&[u8], &[u8])) -> usize {
        match self {
            Hash::Packed(_) => {
                self.pairs().for_each(|(f, v)| visit(f, v));
                0
            }
            Hash::Table(t) => t.scan(cursor, count, |(f, v)| visit(f, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PackLimits = PackLimits { max_entries: 4, max_value: 8 };

    #[test]
    fn packed_until_a_limit_then_table() {
        let mut h = Hash::default();
        assert!(h.set(b"a", b"1", LIMITS));
        assert!(!h.set(b"a", b"2", LIMITS));
        assert_eq!(h.get(b"a"), Some(&b"2"[..]));
        for f in [&b"b"[..], b"c", b"d"] {
            h.set(f, b"x", LIMITS);
        }
        assert_eq!((h.encoding(), h.len()), ("listpack", 4));
        h.set(b"e", b"x", LIMITS);
        assert_eq!((h.encoding(), h.len()), ("hashtable", 5));
        assert_eq!(h.get(b"a"), Some(&b"2"[..]));
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 4);
    }

    #[test]
    fn long_values_convert() {
        let mut h = Hash::default();
        h.set(b"f", b"0123456789", LIMITS);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.prepare([1, 9].into_iter(), LIMITS);
        assert_eq!(h.encoding(), "hashtable");
    }

    #[test]
    fn pairs_and_positions_agree() {
        let mut h = Hash::default();
        h.set(b"x", b"1", LIMITS);
        h.set(b"y", b"2", LIMITS);
        h.remove(b"x");
        assert_eq!(h.pairs().collect::<Vec<_>>(), vec![(&b"y"[..], &b"2"[..])]);
        assert_eq!(h.at(0), Some((&b"y"[..], &b"2"[..])));
        assert_eq!(h.at(1), None);
    }
}
