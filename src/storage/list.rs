//! The list type: packed while small (`listpack`, sized by
//! `list-max-listpack-size`), a double-ended queue beyond (`quicklist`),
//! as Redis 7.2 names them.

use std::collections::VecDeque;

use super::SmallBytes;
use super::encodings::Listpack;

/// `list-max-listpack-size`: a positive entry count, or -1..-5 for a byte
/// budget of 4..64 KiB.
#[derive(Clone, Copy, Debug)]
pub struct ListLimits {
    pub max_listpack_size: i64,
}

impl ListLimits {
    fn fits(self, entries: usize, bytes: usize) -> bool {
        match self.max_listpack_size {
            n if n > 0 => entries <= n as usize,
            n => bytes <= 4096usize << ((-n).clamp(1, 5) - 1),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    Left,
    Right,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List {
    Packed(Listpack),
    Deque(VecDeque<SmallBytes>),
}

impl Default for List {
    fn default() -> List {
        List::Packed(Listpack::default())
    }
}

impl List {
    pub fn len(&self) -> usize {
        match self {
            List::Packed(lp) => lp.len(),
            List::Deque(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            List::Packed(_) => "listpack",
            List::Deque(_) => "quicklist",
        }
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        match self {
            List::Packed(lp) => lp.get(i),
            List::Deque(d) => d.get(i).map(|e| &**e),
        }
    }

    pub fn iter(&self) -> Box<dyn DoubleEndedIterator<Item = &[u8]> + '_> {
        match self {
            List::Packed(lp) => {
                // Listpack walks forward only; collect for reverse walks.
                let items: Vec<&[u8]> = lp.iter().collect();
                Box::new(items.into_iter())
            }
            List::Deque(d) => Box::new(d.iter().map(|e| &**e)),
        }
    }

    /// Converts to a deque once the packed form outgrows its limit.
    fn check(&mut self, limits: ListLimits) {
        if let List::Packed(lp) = self
            && !limits.fits(lp.len(), lp.bytes())
        {
            *self = List::Deque(lp.iter().map(SmallBytes::new).collect());
        }
    }

    pub fn push(&mut self, end: End, v: &[u8], limits: ListLimits) {
        match (self as &mut List, end) {
            (List::Packed(lp), End::Right) => lp.push(v),
            (List::Packed(lp), End::Left) => lp.insert(0, v),
            (List::Deque(d), End::Right) => d.push_back(SmallBytes::new(v)),
            (List::Deque(d), End::Left) => d.push_front(SmallBytes::new(v)),
        }
        self.check(limits);
    }

    pub fn pop(&mut self, end: End) -> Option<SmallBytes> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        match self {
            List::Packed(lp) => {
                let i = if end == End::Left { 0 } else { len - 1 };
                let v = lp.get(i).map(SmallBytes::new);
                lp.remove_range(i, 1);
                v
            }
            List::Deque(d) => {
                if end == End::Left {
                    d.pop_front()
                } else {
                    d.pop_back()
                }
            }
        }
    }

    pub fn set(&mut self, i: usize, v: &[u8], limits: ListLimits) {
        match self {
            List::Packed(lp) => lp.replace(i, v),
            List::Deque(d) => d[i] = SmallBytes::new(v),
        }
        self.check(limits);
    }

    pub fn insert(&mut self, i: usize, v: &[u8], limits: ListLimits) {
        match self {
            List::Packed(lp) => lp.insert(i, v),
            List::Deque(d) => d.insert(i, SmallBytes::new(v)),
        }
        self.check(limits);
    }

    pub fn remove(&mut self, i: usize) {
        match self {
            List::Packed(lp) => lp.remove_range(i, 1),
            List::Deque(d) => {
                d.remove(i);
            }
        }
    }

    /// Keeps entries `start..end` only.
    pub fn keep(&mut self, start: usize, end: usize) {
        match self {
            List::Packed(lp) => {
                let len = lp.len();
                lp.remove_range(end, len - end);
                lp.remove_range(0, start);
            }
            List::Deque(d) => {
                d.truncate(end);
                d.drain(..start);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: ListLimits = ListLimits { max_listpack_size: 3 };

    fn items(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn both_encodings_behave_alike() {
        let mut l = List::default();
        l.push(End::Right, b"b", SMALL);
        l.push(End::Left, b"a", SMALL);
        l.push(End::Right, b"c", SMALL);
        assert_eq!(l.encoding(), "listpack");
        l.push(End::Right, b"d", SMALL);
        assert_eq!(l.encoding(), "quicklist");
        assert_eq!(items(&l), [b"a", b"b", b"c", b"d"].map(|x| x.to_vec()).to_vec());
        assert_eq!(l.pop(End::Left).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.pop(End::Right).as_deref(), Some(&b"d"[..]));
        l.insert(1, b"x", SMALL);
        l.set(0, b"B", SMALL);
        l.keep(1, 3);
        assert_eq!(items(&l), [b"x", b"c"].map(|x| x.to_vec()).to_vec());
        l.remove(0);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn byte_budgets() {
        let l = ListLimits { max_listpack_size: -2 };
        assert!(l.fits(1000, 8192) && !l.fits(1, 8193));
        let mut list = List::default();
        list.push(End::Right, &[b'x'; 5000], ListLimits { max_listpack_size: -1 });
        assert_eq!(list.encoding(), "quicklist");
    }
}
