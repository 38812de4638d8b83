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

/// 16 bytes: every database has one per slot, used or not, so at 100k
/// keys each byte here costs a sixth of a byte per key.
#[derive(Debug)]
pub enum SlotTable {
    /// One exactly sized allocation (a slot grows one key at a time):
    /// the keys' tags, then their cells (u32, native order).
    Few(Box<[u8]>),
    Many(Box<HashTable<u32>>),
}

impl Default for SlotTable {
    fn default() -> SlotTable {
        SlotTable::Few(Box::default())
    }
}

/// Bytes per key in a `Few` table: a tag and a cell.
const PER_KEY: usize = 5;

/// A `Few` table's tags and cells.
struct Packed<'a> {
    tags: &'a [u8],
    cells: &'a [u8],
}

impl<'a> Packed<'a> {
    fn of(bytes: &'a [u8]) -> Packed<'a> {
        let (tags, cells) = bytes.split_at(bytes.len() / PER_KEY);
        Packed { tags, cells }
    }

    fn len(&self) -> usize {
        self.tags.len()
    }

    fn cell(&self, i: usize) -> u32 {
        let at = i * 4;
        u32::from_ne_bytes([self.cells[at], self.cells[at + 1], self.cells[at + 2], self.cells[at + 3]])
    }

    fn cells(&self) -> impl Iterator<Item = u32> + 'a {
        self.cells.chunks_exact(4).map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
    }

    fn position(&self, arena: &Arena, h: u64, key: &[u8]) -> Option<usize> {
        let t = tag(h);
        (0..self.len()).find(|&i| self.tags[i] == t && arena.get(self.cell(i)).key() == key)
    }

    /// The packed bytes with (tag, cell) appended.
    fn with(&self, tag: u8, cell: u32) -> Box<[u8]> {
        let mut v = Vec::with_capacity((self.len() + 1) * PER_KEY);
        v.extend_from_slice(self.tags);
        v.push(tag);
        v.extend_from_slice(self.cells);
        v.extend_from_slice(&cell.to_ne_bytes());
        v.into_boxed_slice()
    }

    /// The packed bytes with key `i` swap-removed.
    fn without(&self, i: usize) -> Box<[u8]> {
        let last = self.len() - 1;
        let mut tags = self.tags.to_vec();
        tags.swap_remove(i);
        let mut v = tags;
        v.reserve_exact(last * 4);
        for j in 0..last {
            let from = if j == i { last } else { j };
            v.extend_from_slice(&self.cells[from * 4..from * 4 + 4]);
        }
        v.into_boxed_slice()
    }
}

impl SlotTable {
    /// Heap bytes of the index itself (the entries are the arena's).
    fn index_bytes(&self) -> usize {
        match self {
            SlotTable::Few(b) => b.len(),
            SlotTable::Many(t) => std::mem::size_of::<HashTable<u32>>() + t.allocation_size(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            SlotTable::Few(bytes) => bytes.len() / PER_KEY,
            SlotTable::Many(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cell holding `key`.
    pub fn find(&self, arena: &Arena, h: u64, key: &[u8]) -> Option<u32> {
        match self {
            SlotTable::Few(bytes) => {
                let p = Packed::of(bytes);
                p.position(arena, h, key).map(|i| p.cell(i))
            }
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
        if let SlotTable::Few(bytes) = self {
            let p = Packed::of(bytes);
            if let Some(i) = p.position(arena, h, key) {
                return (true, p.cell(i));
            }
            if p.len() < FEW {
                let cell = arena.alloc(make());
                *bytes = p.with(tag(h), cell);
                return (false, cell);
            }
            let mut t = HashTable::with_capacity(p.len() * 2);
            for c in p.cells() {
                t.insert_unique(rehash(arena.get(c)), c, |&c| rehash(arena.get(c)));
            }
            *self = SlotTable::Many(Box::new(t));
        }
        let SlotTable::Many(t) = self else { unreachable!("a full Few table was just converted") };
        match t.entry(h, |&c| arena.get(c).key() == key, |&c| rehash(arena.get(c))) {
            TableEntry::Occupied(o) => (true, *o.get()),
            TableEntry::Vacant(v) => {
                let cell = arena.alloc(make());
                v.insert(cell);
                (false, cell)
            }
        }
    }

    /// Forgets `key`; returns its cell (still occupied in the arena).
    pub fn remove(&mut self, arena: &Arena, h: u64, key: &[u8]) -> Option<u32> {
        match self {
            SlotTable::Few(bytes) => {
                let p = Packed::of(bytes);
                let i = p.position(arena, h, key)?;
                let cell = p.cell(i);
                *bytes = p.without(i);
                Some(cell)
            }
            SlotTable::Many(t) => t.find_entry(h, |&c| arena.get(c).key() == key).ok().map(|o| o.remove().0),
        }
    }

    pub fn cells(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match self {
            SlotTable::Few(bytes) => Box::new(Packed::of(bytes).cells()),
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
    /// Heap bytes of the directory and its slots' indexes (MEMORY STATS's
    /// overhead.hashtable.main).
    pub fn index_bytes(&self) -> usize {
        let groups = self.groups.capacity() * std::mem::size_of::<Option<Box<[SlotTable]>>>();
        let tables = self.groups.iter().flatten().flat_map(|g| g.iter());
        groups + tables.map(|t| std::mem::size_of::<SlotTable>() + t.index_bytes()).sum::<usize>()
    }

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
        assert_eq!(std::mem::size_of::<SlotTable>(), 16);
    }

    #[test]
    fn packed_keys_append_and_swap_remove() {
        let mut bytes: Box<[u8]> = Box::default();
        for (t, c) in [(1u8, 10u32), (2, 20), (3, 30), (4, 40)] {
            bytes = Packed::of(&bytes).with(t, c);
        }
        let p = Packed::of(&bytes);
        assert_eq!((p.tags, p.cells().collect::<Vec<_>>()), (&[1u8, 2, 3, 4][..], vec![10, 20, 30, 40]));
        let bytes = p.without(1);
        let p = Packed::of(&bytes);
        assert_eq!((p.tags, p.cells().collect::<Vec<_>>()), (&[1u8, 4, 3][..], vec![10, 40, 30]));
        let bytes = p.without(2);
        let p = Packed::of(&bytes);
        assert_eq!((p.tags, p.cells().collect::<Vec<_>>()), (&[1u8, 4][..], vec![10, 40]));
    }
}
