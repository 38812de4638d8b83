//! The keys of one hash slot: a short vector while the slot holds few keys,
//! a hash table beyond. Most slots hold a handful of keys (a million keys
//! spread over 16384 slots is ~60 each), and a tiny hash table costs its
//! power-of-two bucket array and control bytes per slot; the vector costs
//! exactly its entries and is scanned in a few cache lines.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::db::Entry;

/// A slot switches to a hash table past this many keys.
const FEW: usize = 16;

#[derive(Debug)]
pub enum SlotTable {
    Few(Vec<Entry>),
    Many(HashTable<Entry>),
}

impl Default for SlotTable {
    fn default() -> SlotTable {
        SlotTable::Few(Vec::new())
    }
}

impl SlotTable {
    pub fn len(&self) -> usize {
        match self {
            SlotTable::Few(v) => v.len(),
            SlotTable::Many(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn find(&self, h: u64, key: &[u8]) -> Option<&Entry> {
        match self {
            SlotTable::Few(v) => v.iter().find(|e| e.key() == key),
            SlotTable::Many(t) => t.find(h, |e| e.key() == key),
        }
    }

    pub fn find_mut(&mut self, h: u64, key: &[u8]) -> Option<&mut Entry> {
        match self {
            SlotTable::Few(v) => v.iter_mut().find(|e| e.key() == key),
            SlotTable::Many(t) => t.find_mut(h, |e| e.key() == key),
        }
    }

    /// The entry for `key`: (true, existing) or (false, newly made).
    /// `rehash` gives the hash of a stored entry when the table grows.
    pub fn entry(
        &mut self,
        h: u64,
        key: &[u8],
        make: impl FnOnce() -> Entry,
        rehash: impl Fn(&Entry) -> u64,
    ) -> (bool, &mut Entry) {
        if let SlotTable::Few(v) = self
            && v.len() >= FEW
            && !v.iter().any(|e| e.key() == key)
        {
            let mut t = HashTable::with_capacity(v.len() * 2);
            for e in v.drain(..) {
                t.insert_unique(rehash(&e), e, &rehash);
            }
            *self = SlotTable::Many(t);
        }
        match self {
            SlotTable::Few(v) => match v.iter().position(|e| e.key() == key) {
                Some(i) => (true, &mut v[i]),
                None => {
                    v.reserve_exact(1);
                    v.push(make());
                    let last = v.len() - 1;
                    (false, &mut v[last])
                }
            },
            SlotTable::Many(t) => match t.entry(h, |e| e.key() == key, rehash) {
                TableEntry::Occupied(o) => (true, o.into_mut()),
                TableEntry::Vacant(v) => (false, v.insert(make()).into_mut()),
            },
        }
    }

    pub fn remove(&mut self, h: u64, key: &[u8]) -> Option<Entry> {
        match self {
            SlotTable::Few(v) => {
                let i = v.iter().position(|e| e.key() == key)?;
                Some(v.swap_remove(i))
            }
            SlotTable::Many(t) => t.find_entry(h, |e| e.key() == key).ok().map(|o| o.remove().0),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = &Entry> + '_> {
        match self {
            SlotTable::Few(v) => Box::new(v.iter()),
            SlotTable::Many(t) => Box::new(t.iter()),
        }
    }
}
