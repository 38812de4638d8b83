//! A packed sequence of byte strings in one allocation: the role Redis's
//! listpack plays for small hashes, sets, sorted sets and lists. Each entry
//! is a LEB128 length followed by its bytes, so a small collection costs
//! its payload plus one or two bytes per entry, and scanning it touches
//! consecutive memory.

#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Listpack {
    data: Vec<u8>,
    count: u32,
}

fn read_len(data: &[u8], mut pos: usize) -> (usize, usize) {
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

fn write_len(out: &mut Vec<u8>, mut len: usize) {
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
fn encoded(entry: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entry.len() + 2);
    write_len(&mut e, entry.len());
    e.extend_from_slice(entry);
    e
}

impl Listpack {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter { data: &self.data, pos: 0 }
    }

    /// Byte offset of entry `index` (entries are found by walking).
    fn offset(&self, index: usize) -> usize {
        let mut it = self.iter();
        for _ in 0..index {
            it.next();
        }
        it.pos
    }

    /// Bytes used by the entries.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Inserts `entry` so it becomes entry number `index`.
    pub fn insert(&mut self, index: usize, entry: &[u8]) {
        let at = self.offset(index);
        self.data.reserve_exact(entry.len() + 3);
        self.data.splice(at..at, encoded(entry));
        self.count += 1;
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.iter().nth(index)
    }

    pub fn push(&mut self, entry: &[u8]) {
        // Exact growth: a small collection should cost its bytes, not the
        // next power of two (jemalloc grows in place within a size class).
        self.data.reserve_exact(entry.len() + 3);
        write_len(&mut self.data, entry.len());
        self.data.extend_from_slice(entry);
        self.count += 1;
    }

    /// Removes `n` entries starting at entry `index`.
    pub fn remove_range(&mut self, index: usize, n: usize) {
        let from = self.offset(index);
        let mut it = Iter { data: &self.data, pos: from };
        for _ in 0..n {
            it.next();
        }
        let to = it.pos;
        self.data.drain(from..to);
        self.count -= n as u32;
    }

    pub fn replace(&mut self, index: usize, entry: &[u8]) {
        let at = self.offset(index);
        self.data.reserve_exact(entry.len() + 3);
        let (len, start) = read_len(&self.data, at);
        self.data.splice(at..start + len, encoded(entry));
    }

    /// Position of the first entry equal to `needle` among entries
    /// `index % step == 0` (step 2 searches the fields of field/value pairs).
    pub fn position(&self, needle: &[u8], step: usize) -> Option<usize> {
        self.iter().step_by(step).position(|e| e == needle).map(|i| i * step)
    }
}

pub struct Iter<'a> {
    data: &'a [u8],
    pos: usize,
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
