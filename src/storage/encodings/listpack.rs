//! A packed sequence of byte strings in one exact-size allocation: the
//! role Redis's listpack plays for small hashes, sets, sorted sets and
//! lists. A one-byte kind (shared with `IntSet`, so a set can hold either
//! in the same slot) and the entry count come first; then each entry is a
//! LEB128 length followed by its bytes. A small collection costs its
//! payload plus one or two bytes per entry, and scanning it touches
//! consecutive memory.

use std::ops::Range;

use bytemuck::TransparentWrapper;

/// The first byte of every listpack (an intset's is its width: 2, 4 or 8).
pub const KIND: u8 = 0;
const HEADER: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq, TransparentWrapper)]
#[repr(transparent)]
pub struct Listpack {
    buf: Box<[u8]>,
}

impl Default for Listpack {
    fn default() -> Listpack {
        Listpack { buf: Box::new([KIND, 0, 0, 0, 0]) }
    }
}

pub(crate) fn read_len(data: &[u8], mut pos: usize) -> (usize, usize) {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = data[pos];
        pos += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (len, pos);
        }
        shift += 7;
    }
}

pub(crate) fn write_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// An entry in its stored form.
pub(crate) fn encoded(entry: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entry.len() + 2);
    write_len(&mut e, entry.len());
    e.extend_from_slice(entry);
    e
}

impl Listpack {
    pub fn len(&self) -> usize {
        let b = &self.buf;
        u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize
    }

    fn entries(&self) -> &[u8] {
        &self.buf[HEADER..]
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter::new(self.entries())
    }

    /// Byte offset (within the entries) of entry `index`, found by walking.
    fn offset(&self, index: usize) -> usize {
        let mut it = self.iter();
        for _ in 0..index {
            it.next();
        }
        it.pos
    }

    /// Bytes used by the entries.
    pub fn bytes(&self) -> usize {
        self.buf.len() - HEADER
    }

    /// Replaces entry bytes `range` with `with` and adjusts the count,
    /// leaving the allocation exactly as large as its contents (jemalloc
    /// resizes in place within a size class).
    fn splice(&mut self, range: Range<usize>, with: &[u8], count: usize) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        let grow = with.len().saturating_sub(range.len());
        v.reserve_exact(grow);
        v.splice(HEADER + range.start..HEADER + range.end, with.iter().copied());
        v[1..HEADER].copy_from_slice(&(count as u32).to_le_bytes());
        self.buf = v.into_boxed_slice();
    }

    /// Inserts `entry` so it becomes entry number `index`.
    pub fn insert(&mut self, index: usize, entry: &[u8]) {
        let at = self.offset(index);
        self.splice(at..at, &encoded(entry), self.len() + 1);
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.iter().nth(index)
    }

    pub fn push(&mut self, entry: &[u8]) {
        let end = self.bytes();
        self.splice(end..end, &encoded(entry), self.len() + 1);
    }

    /// Removes `n` entries starting at entry `index`.
    pub fn remove_range(&mut self, index: usize, n: usize) {
        let from = self.offset(index);
        let mut it = Iter { data: self.entries(), pos: from };
        for _ in 0..n {
            it.next();
        }
        let to = it.pos;
        self.splice(from..to, &[], self.len() - n);
    }

    pub fn replace(&mut self, index: usize, entry: &[u8]) {
        let at = self.offset(index);
        let (len, start) = read_len(self.entries(), at);
        self.splice(at..start + len, &encoded(entry), self.len());
    }

    /// Position of the first entry equal to `needle` among entries
    /// `index % step == 0` (step 2 searches the fields of field/value pairs).
    pub fn position(&self, needle: &[u8], step: usize) -> Option<usize> {
        self.iter().step_by(step).position(|e| e == needle).map(|i| i * step)
    }
}

/// Walks entries in the packed form (a listpack's, or a quicklist node's).
#[derive(Clone)]
pub struct Iter<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iter<'a> {
    pub fn new(data: &'a [u8]) -> Iter<'a> {
        Iter { data, pos: 0 }
    }

    /// Byte offset of the next entry.
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.data.len() {
            return None;
        }
        let (len, start) = read_len(self.data, self.pos);
        self.pos = start + len;
        Some(&self.data[start..start + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(lp: &Listpack) -> Vec<Vec<u8>> {
        lp.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn push_remove_replace() {
        let mut lp = Listpack::default();
        lp.push(b"a");
        lp.push(b"b");
        lp.push(&[b'x'; 300]);
        lp.push(b"");
        assert_eq!(lp.len(), 4);
        assert_eq!(lp.get(1), Some(&b"b"[..]));
        assert_eq!(lp.get(2).map(|e| e.len()), Some(300));
        lp.replace(2, b"short");
        assert_eq!(all(&lp), vec![b"a".to_vec(), b"b".to_vec(), b"short".to_vec(), b"".to_vec()]);
        lp.remove_range(0, 1);
        assert_eq!(all(&lp), vec![b"b".to_vec(), b"short".to_vec(), b"".to_vec()]);
        lp.remove_range(0, 2);
        assert_eq!(all(&lp), vec![b"".to_vec()]);
        assert_eq!(lp.len(), 1);
        lp.insert(0, b"first");
        lp.insert(2, b"last");
        assert_eq!(all(&lp), vec![b"first".to_vec(), b"".to_vec(), b"last".to_vec()]);
        assert_eq!(lp.bytes(), 6 + 1 + 5);
        assert_eq!(std::mem::size_of::<Listpack>(), 16);
    }

    #[test]
    fn position_by_step() {
        let mut lp = Listpack::default();
        for e in [&b"f1"[..], b"v", b"v", b"f2"] {
            lp.push(e);
        }
        assert_eq!(lp.position(b"v", 2), Some(2));
        assert_eq!(lp.position(b"f2", 2), None);
        assert_eq!(lp.position(b"f2", 1), Some(3));
    }

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 16383, 16384, 70000] {
            let mut v = Vec::new();
            write_len(&mut v, len);
            assert_eq!(read_len(&v, 0), (len, v.len()));
        }
    }
}
