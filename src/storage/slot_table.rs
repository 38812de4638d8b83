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
use super::slots::SLOTS;

/// A slot switches to a hash table past this many keys.
const FEW: usize = 128;

fn tag(h: u64) -> u8 {
    (h >> 57) as u8
}

/// 32 bytes: every database has one per slot, used or not, so at 100k
/// keys each byte here costs a sixth of a byte per key.
#[derive(Debug)]
pub enum SlotTable {
    /// Exactly sized: a slot grows one key at a time.
    Few {
        tags: Box<[u8]>,
        entries: Box<[Entry]>,
    },
    Many(Box<HashTable<Entry>>),
}

impl Default for SlotTable {
    fn default() -> SlotTable {
        SlotTable::Few { tags: Box::default(), entries: Box::default() }
    }
}

/// Appends to an exactly sized boxed slice.
fn push_exact<T>(slice: &mut Box<[T]>, item: T) {
    let mut v = std::mem::take(slice).into_vec();
    v.reserve_exact(1);
    v.push(item);
    *slice = v.into_boxed_slice();
}

/// Swap-removes from an exactly sized boxed slice.
fn swap_remove_exact<T>(slice: &mut Box<[T]>, i: usize) -> T {
    let mut v = std::mem::take(slice).into_vec();
    let item = v.swap_remove(i);
    *slice = v.into_boxed_slice();
    item
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
            for e in std::mem::take(entries) {
                t.insert_unique(rehash(&e), e, &rehash);
            }
            *self = SlotTable::Many(Box::new(t));
        }
        match self {
            SlotTable::Few { tags, entries } => match position(tags, entries, h, key) {
                Some(i) => (true, &mut entries[i]),
                None => {
                    push_exact(tags, tag(h));
                    push_exact(entries, make());
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
                swap_remove_exact(tags, i);
                Some(swap_remove_exact(entries, i))
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

/// Slots per directory group.
const GROUP: usize = 128;

/// A database's slot tables by slot, allocated a group of 128 slots at a
/// time: a database holding a few keys does not pay for 16384 tables
/// (512 KiB), and a group whose slots all empty is freed.
#[derive(Debug, Default)]
pub struct SlotDir {
    groups: Vec<Option<Box<[SlotTable]>>>,
}

impl SlotDir {
    pub fn get(&self, slot: usize) -> Option<&SlotTable> {
        self.groups.get(slot / GROUP)?.as_ref().map(|g| &g[slot % GROUP])
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut SlotTable> {
        self.groups.get_mut(slot / GROUP)?.as_mut().map(|g| &mut g[slot % GROUP])
    }

    pub fn get_or_create(&mut self, slot: usize) -> &mut SlotTable {
        if self.groups.is_empty() {
            self.groups.resize_with(SLOTS / GROUP, || None);
        }
        let group = self.groups[slot / GROUP].get_or_insert_with(|| (0..GROUP).map(|_| SlotTable::default()).collect());
        &mut group[slot % GROUP]
    }

    /// Resets `slot`'s table once it is empty (giving back its peak
    /// size), and frees its group when that was the group's last key.
    pub fn release_if_empty(&mut self, slot: usize) {
        let Some(Some(group)) = self.groups.get_mut(slot / GROUP) else { return };
        if !group[slot % GROUP].is_empty() {
            return;
        }
        group[slot % GROUP] = SlotTable::default();
        if group.iter().all(SlotTable::is_empty) {
            self.groups[slot / GROUP] = None;
        }
    }

    /// The slots holding at least one key.
    pub fn occupied(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups.iter().enumerate().flat_map(|(g, group)| {
            group.iter().flat_map(move |tables| {
                tables.iter().enumerate().filter(|(_, t)| !t.is_empty()).map(move |(i, _)| g * GROUP + i)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_tables_stay_small() {
        assert_eq!(std::mem::size_of::<SlotTable>(), 32);
    }
}
