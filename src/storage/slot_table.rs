//! The keys of one hash slot: a tagged vector while the slot holds up to
//! `FEW` keys, a hash table beyond.
//!
//! A million keys spread over 16384 slots is ~60 per slot. Tiny hash
//! tables would cost their power-of-two bucket arrays (often half empty)
//! per slot; the vector costs exactly its entries plus one tag byte each
//! (7 bits of the key's hash), and a lookup scans the tags, a cache line
//! or two, then compares only the entries whose tag matches.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::db::Entry;

/// A slot switches to a hash table past this many keys.
const FEW: usize = 128;

fn tag(h: u64) -> u8 {
    (h >> 57) as u8
}

#[derive(Debug)]
pub enum SlotTable {
    Few { tags: Vec<u8>, entries: Vec<Entry> },
    Many(HashTable<Entry>),
}

impl Default for SlotTable {
    fn default() -> SlotTable {
        SlotTable::Few { tags: Vec::new(), entries: Vec::new() }
    }
}

fn position(tags: &[u8], entries: &[Entry], h: u64, key: &[u8]) -> Option<usize> {
    let t = tag(h);
    tags.iter().enumerate().position(|(i, &x)| x == t && entries[i].key() == key)
}

impl SlotTable {
    pub fn len(&self) -> usize {
        match self {
            SlotTable::Few { entries, .. } => entries.len(),
            SlotTable::Many(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn find(&self, h: u64, key: &[u8]) -> Option<&Entry> {
        match self {
            SlotTable::Few { tags, entries } => position(tags, entries, h, key).map(|i| &entries[i]),
            SlotTable::Many(t) => t.find(h, |e| e.key() == key),
        }
    }

    pub fn find_mut(&mut self, h: u64, key: &[u8]) -> Option<&mut Entry> {
        match self {
            SlotTable::Few { tags, entries } => position(tags, entries, h, key).map(|i| &mut entries[i]),
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
        if let SlotTable::Few { tags, entries } = self
            && entries.len() >= FEW
            && position(tags, entries, h, key).is_none()
        {
            let mut t = HashTable::with_capacity(entries.len() * 2);
            for e in entries.drain(..) {
                t.insert_unique(rehash(&e), e, &rehash);
            }
            *self = SlotTable::Many(t);
        }
        match self {
            SlotTable::Few { tags, entries } => match position(tags, entries, h, key) {
                Some(i) => (true, &mut entries[i]),
                None => {
                    tags.reserve_exact(1);
                    entries.reserve_exact(1);
                    tags.push(tag(h));
                    entries.push(make());
                    let last = entries.len() - 1;
                    (false, &mut entries[last])
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
            SlotTable::Few { tags, entries } => {
                let i = position(tags, entries, h, key)?;
                tags.swap_remove(i);
                Some(entries.swap_remove(i))
            }
            SlotTable::Many(t) => t.find_entry(h, |e| e.key() == key).ok().map(|o| o.remove().0),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = &Entry> + '_> {
        match self {
            SlotTable::Few { entries, .. } => Box::new(entries.iter()),
            SlotTable::Many(t) => Box::new(t.iter()),
        }
    }
}
