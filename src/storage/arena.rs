//! The entries of one database, in chunks that never move.
//!
//! Slot tables hold 4-byte cell numbers instead of the entries themselves.
//! Per-slot vectors of entries grew one entry at a time; after a bulk load
//! the blocks they had outgrown, in every size class, sat half-reused in
//! the allocator's slabs (up to ~20 bytes per key of RSS). Here an entry
//! is written once into a chunk; a freed cell is reused by the next key.

use super::db::Entry;

/// Cells per chunk: one large allocation (56 KiB) whose pages become
/// resident as they fill.
const CHUNK: usize = 1024;

#[derive(Debug, Default)]
pub struct Arena {
    chunks: Vec<Vec<Option<Entry>>>,
    /// Emptied cells, reused before the last chunk grows.
    free: Vec<u32>,
    live: usize,
}

impl Arena {
    /// Stores `e`; returns its cell.
    pub fn alloc(&mut self, e: Entry) -> u32 {
        self.live += 1;
        if let Some(cell) = self.free.pop() {
            self.chunks[cell as usize / CHUNK][cell as usize % CHUNK] = Some(e);
            return cell;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let n = self.chunks.len() - 1;
        let last = &mut self.chunks[n];
        last.push(Some(e));
        (n * CHUNK + last.len() - 1) as u32
    }

    /// The entry in `cell`, which must be occupied (slot tables only hold
    /// occupied cells).
    pub fn get(&self, cell: u32) -> &Entry {
        self.chunks[cell as usize / CHUNK][cell as usize % CHUNK].as_ref().expect("slot tables hold live cells")
    }

    pub fn get_mut(&mut self, cell: u32) -> &mut Entry {
        self.chunks[cell as usize / CHUNK][cell as usize % CHUNK].as_mut().expect("slot tables hold live cells")
    }

    /// Empties `cell` and returns its entry. The last entry gone gives
    /// every chunk back.
    pub fn take(&mut self, cell: u32) -> Entry {
        let e = self.chunks[cell as usize / CHUNK][cell as usize % CHUNK].take().expect("slot tables hold live cells");
        self.live -= 1;
        if self.live == 0 {
            *self = Arena::default();
        } else {
            self.free.push(cell);
        }
        e
    }

    /// A random occupied cell (by a few random probes, then a walk from
    /// the last probe), or None when empty.
    pub fn random(&self) -> Option<u32> {
        // Every chunk but the last is full.
        let cells = self.chunks.last().map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len());
        if self.live == 0 || cells == 0 {
            return None;
        }
        let occupied = |c: usize| self.chunks[c / CHUNK][c % CHUNK].is_some();
        let mut probe = fastrand::usize(..cells);
        for _ in 0..32 {
            if occupied(probe) {
                return Some(probe as u32);
            }
            probe = fastrand::usize(..cells);
        }
        (0..cells).map(|i| (probe + i) % cells).find(|&c| occupied(c)).map(|c| c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_reused_and_everything_goes_with_the_last() {
        assert_eq!(std::mem::size_of::<Entry>(), 56);
        assert_eq!(std::mem::size_of::<Option<Entry>>(), std::mem::size_of::<Entry>());
        let mut a = Arena::default();
        let cells: Vec<u32> = (0..3000).map(|i| a.alloc(Entry::for_test(format!("k{i}").as_bytes()))).collect();
        assert_eq!(a.get(cells[2500]).key(), b"k2500");
        let e = a.take(cells[7]);
        assert_eq!(e.key(), b"k7");
        assert_eq!(a.alloc(Entry::for_test(b"again")), cells[7]);
        assert!(a.random().is_some());
        for &c in &cells {
            a.take(c);
        }
        assert!(a.chunks.is_empty() && a.free.is_empty() && a.random().is_none());
    }
}
