//! The keys of one hash slot: a tagged vector while the slot holds up to
//! `FEW` keys, a hash table beyond. Both hold cells of the database's
//! `Arena`, where the entries live.
//!
//! A million keys spread over 16384 slots is ~60 per slot. Tiny hash
//! tables would cost their power-of-two bucket arrays (often half empty)
//! per slot; the vector costs exactly 5 bytes per key (a cell and one tag
//! byte, 7 bits of the key's hash), and a lookup scans the tags, a cache
//! line or two, then compares only the entries whose tag matches.

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use super::arena::Arena;
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
        cells: Box<[u32]>,
    },
    Many(Box<HashTable<u32>>),
}

impl Default for SlotTable {
    fn default() -> SlotTable {
        SlotTable::Few { tags: Box::default(), cells: Box::default() }
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

fn position(tags: &[u8], cells: &[u32], arena: &Arena, h: u64, key: &[u8]) -> Option<usize> {
    let t = tag(h);
    tags.iter().enumerate().position(|(i, &x)| x == t && arena.get(cells[i]).key() == key)
}

impl SlotTable {
    pub fn len(&self) -> usize {
        match self {
            SlotTable::Few { cells, .. } => cells.len(),
            SlotTable::Many(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell holding `key`.
    pub fn find(&self, arena: &Arena, h: u64, key: &[u8]) -> Option<u32> {
        match self {
            SlotTable::Few { tags, cells } => position(tags, cells, arena, h, key).map(|i| cells[i]),
            SlotTable::Many(t) => t.find(h, |&c| arena.get(c).key() == key).copied(),
        }
    }

    /// The cell for `key`: (true, existing) or (false, newly made).
    /// `rehash` gives the hash of a stored entry when the table grows.
    pub fn entry(
        &mut self,
        arena: &mut Arena,
        h: u64,
        key: &[u8],
        make: impl FnOnce() -> Entry,
        rehash: impl Fn(&Entry) -> u64,
    ) -> (bool, u32) {
        if let SlotTable::Few { tags, cells } = self
            && cells.len() >= FEW
            && position(tags, cells, arena, h, key).is_none()
        {
            let mut t = HashTable::with_capacity(cells.len() * 2);
            for &c in cells.iter() {
                t.insert_unique(rehash(arena.get(c)), c, |&c| rehash(arena.get(c)));
            }
            *self = SlotTable::Many(Box::new(t));
        }
        match self {
            SlotTable::Few { tags, cells } => match position(tags, cells, arena, h, key) {
                Some(i) => (true, cells[i]),
                None => {
                    let cell = arena.alloc(make());
                    push_exact(tags, tag(h));
                    push_exact(cells, cell);
                    (false, cell)
                }
            },
            SlotTable::Many(t) => {
                let found = t.entry(h, |&c| arena.get(c).key() == key, |&c| rehash(arena.get(c)));
                match found {
                    TableEntry::Occupied(o) => (true, *o.get()),
                    TableEntry::Vacant(v) => {
                        let cell = arena.alloc(make());
                        v.insert(cell);
                        (false, cell)
                    }
                }
            }
        }
    }

    /// Forgets `key`; returns its cell (still occupied in the arena).
    pub fn remove(&mut self, arena: &Arena, h: u64, key: &[u8]) -> Option<u32> {
        match self {
            SlotTable::Few { tags, cells } => {
                let i = position(tags, cells, arena, h, key)?;
                swap_remove_exact(tags, i);
                Some(swap_remove_exact(cells, i))
            }
            SlotTable::Many(t) => t.find_entry(h, |&c| arena.get(c).key() == key).ok().map(|o| o.remove().0),
        }
    }

    pub fn cells(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            SlotTable::Few { cells, .. } => Box::new(cells.iter().copied()),
            SlotTable::Many(t) => Box::new(t.iter().copied()),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_tables_stay_small() {
        assert_eq!(std::mem::size_of::<SlotTable>(), 32);
    }
}
