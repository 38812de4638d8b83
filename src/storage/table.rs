//! The hash table behind large hashes, sets and sorted sets.
//!
//! A SwissTable (hashbrown) of the elements themselves: no stored hash and
//! no separate index, so an element costs its own bytes plus one control
//! byte, at a load of 7/8 or more before growing.
//!
//! Its bucket positions serve as HSCAN/SSCAN/ZSCAN cursors (with the
//! table's size, see `scan`) and for random picks: removing an element
//! never moves another, and the table never shrinks by itself.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::SmallBytes;
use super::db::KeyHasher;

/// An element found by its key bytes.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

impl Keyed for SmallBytes {
    fn key(&self) -> &[u8] {
        self
    }
}

impl<V> Keyed for (SmallBytes, V) {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

fn hash(key: &[u8]) -> u64 {
    KeyHasher.hash_one(key)
}

#[derive(Clone)]
pub struct Table<T> {
    inner: HashTable<T>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table { inner: HashTable::new() }
    }
}

impl<T: Keyed> Table<T> {
    pub fn with_capacity(n: usize) -> Table<T> {
        Table { inner: HashTable::with_capacity(n) }
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.inner.find(hash(key), |e| e.key() == key)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `item`, returning the element it replaced.
    pub fn insert(&mut self, item: T) -> Option<T> {
        let h = hash(item.key());
        match self.inner.find_mut(h, |e| e.key() == item.key()) {
            Some(old) => Some(std::mem::replace(old, item)),
            None => {
                self.inner.insert_unique(h, item, |e| hash(e.key()));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        self.inner.find_entry(hash(key), |e| e.key() == key).ok().map(|o| o.remove().0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.inner.iter()
    }

    /// The element at bucket `pos`, if that bucket is full.
    pub fn at(&self, pos: usize) -> Option<&T> {
        self.inner.get_bucket(pos)
    }

    /// The positions of all elements.
    pub fn positions(&self) -> Vec<usize> {
        (0..self.inner.num_buckets()).filter(|&b| self.inner.get_bucket(b).is_some()).collect()
    }

    /// The position of a uniformly chosen element (None when empty).
    pub fn random(&self) -> Option<usize> {
        let buckets = self.inner.num_buckets();
        if self.len() == 0 {
            return None;
        }
        // Expected tries: buckets / len, small unless most elements were
        // removed; then fall back to counting.
        for _ in 0..64 {
            let b = fastrand::usize(..buckets);
            if self.inner.get_bucket(b).is_some() {
                return Some(b);
            }
        }
        self.positions().get(fastrand::usize(..self.len())).copied()
    }

    /// Visits elements from the cursor's bucket on until `count` were
    /// seen; returns the cursor to continue from (0 when done).
    ///
    /// A cursor also records the table's size: if the table grew since it
    /// was handed out, elements moved, so the scan starts over (an element
    /// may come twice, as Redis allows, but none present for the whole
    /// scan is missed). Each restart doubles the work per call (counted in
    /// the cursor too), so a scan ends even while the table keeps growing.
    pub fn scan(&self, cursor: usize, count: usize, mut visit: impl FnMut(&T)) -> usize {
        let buckets = self.inner.num_buckets();
        let size = buckets.trailing_zeros() as usize;
        let (mut b, mut restarts) = (cursor & CURSOR_BUCKET, (cursor >> CURSOR_RESTARTS_SHIFT) & 0xf);
        if cursor != 0 && (cursor >> CURSOR_SIZE_SHIFT) & 0x3f != size {
            (b, restarts) = (0, (restarts + 1).min(15));
        }
        let count = count.max(1).saturating_mul(1 << restarts);
        let mut seen = 0;
        while b < buckets && seen < count {
            if let Some(e) = self.inner.get_bucket(b) {
                visit(e);
                seen += 1;
            }
            b += 1;
        }
        if b >= buckets { 0 } else { b | (size << CURSOR_SIZE_SHIFT) | (restarts << CURSOR_RESTARTS_SHIFT) }
    }
}

/// A scan cursor: the bucket in its low 40 bits, then log2 of the table's
/// bucket count (6 bits), then how often the scan restarted (4 bits).
const CURSOR_SIZE_SHIFT: usize = 40;
const CURSOR_RESTARTS_SHIFT: usize = 46;
const CURSOR_BUCKET: usize = (1 << CURSOR_SIZE_SHIFT) - 1;

impl<T: fmt::Debug> fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.inner.iter()).finish()
    }
}

impl<T: Keyed + PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Table<T>) -> bool {
        self.len() == other.len() && self.iter().all(|e| other.get(e.key()) == Some(e))
    }
}

impl<T: Keyed + Eq> Eq for Table<T> {}

impl<T: Keyed> FromIterator<T> for Table<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Table<T> {
        let mut t = Table::default();
        items.into_iter().for_each(|e| {
            t.insert(e);
        });
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> SmallBytes {
        SmallBytes::new(s.as_bytes())
    }

    #[test]
    fn insert_replace_remove() {
        let mut t: Table<(SmallBytes, u32)> = Table::default();
        assert_eq!(t.insert((b("a"), 1)), None);
        assert_eq!(t.insert((b("a"), 2)).map(|e| e.1), Some(1));
        assert_eq!(t.get(b"a").map(|e| e.1), Some(2));
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(b"a").map(|e| e.1), Some(2));
        assert!(t.remove(b"a").is_none() && t.len() == 0);
        assert_eq!(t.random(), None);
    }

    /// ... and when the table grows between calls.
    #[test]
    fn scan_survives_growth() {
        let mut t: Table<SmallBytes> = (0..500).map(|i| b(&format!("m{i}"))).collect();
        let mut seen = std::collections::HashSet::new();
        let (mut cursor, mut added, mut calls) = (0, 0, 0);
        loop {
            cursor = t.scan(cursor, 20, |e| {
                seen.insert(e.to_vec());
            });
            calls += 1;
            for _ in 0..100 {
                t.insert(b(&format!("new{added}")));
                added += 1;
            }
            if cursor == 0 {
                break;
            }
            assert!(calls < 10_000, "the scan must end");
        }
        for i in 0..500 {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} missed");
        }
    }

    /// A scan returns every element that stays for its whole duration,
    /// even when others are removed between calls.
    #[test]
    fn scan_survives_removals() {
        let mut t: Table<SmallBytes> = (0..1000).map(|i| b(&format!("m{i}"))).collect();
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = t.scan(cursor, 10, |e| {
                seen.insert(e.to_vec());
            });
            // Remove some elements not yet necessarily seen (odd ones).
            for i in (round * 5..round * 5 + 5).map(|i| 2 * i + 1) {
                t.remove(format!("m{i}").as_bytes());
            }
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in (0..1000).step_by(2) {
            assert!(seen.contains(format!("m{i}").as_bytes()), "m{i} missed");
        }
    }

    #[test]
    fn random_positions_hold_elements() {
        let t: Table<SmallBytes> = (0..50).map(|i| b(&i.to_string())).collect();
        for _ in 0..100 {
            assert!(t.random().and_then(|p| t.at(p)).is_some());
        }
        assert_eq!(t.positions().len(), 50);
    }
}
