//! A sorted set of integers stored at the narrowest width that holds them
//! all (16, 32 or 64 bits), as Redis's intset: one exact-size buffer whose
//! first byte is the width, then the members little-endian, so a small
//! integer set costs two or four bytes per member and one of header.

use bytemuck::TransparentWrapper;

#[derive(Clone, Debug, PartialEq, Eq, TransparentWrapper)]
#[repr(transparent)]
pub struct IntSet {
    buf: Box<[u8]>,
}

impl Default for IntSet {
    fn default() -> IntSet {
        IntSet { buf: Box::new([2]) }
    }
}

/// The narrowest width in bytes that holds `n`.
fn width_for(n: i64) -> usize {
    if i16::try_from(n).is_ok() {
        2
    } else if i32::try_from(n).is_ok() {
        4
    } else {
        8
    }
}

fn encode(n: i64, width: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    match width {
        2 => out[..2].copy_from_slice(&(n as i16).to_le_bytes()),
        4 => out[..4].copy_from_slice(&(n as i32).to_le_bytes()),
        _ => out = n.to_le_bytes(),
    }
    out
}

impl IntSet {
    /// The first byte of an intset's buffer is one of these.
    pub fn is_width(kind: u8) -> bool {
        matches!(kind, 2 | 4 | 8)
    }

    fn width(&self) -> usize {
        self.buf[0] as usize
    }

    pub fn len(&self) -> usize {
        (self.buf.len() - 1) / self.width()
    }

    pub fn get(&self, i: usize) -> Option<i64> {
        let w = self.width();
        let b = self.buf.get(1 + i * w..1 + (i + 1) * w)?;
        Some(match w {
            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
            _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        })
    }

    /// Where `n` is, or where it would go.
    fn search(&self, n: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).unwrap_or(i64::MAX).cmp(&n) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    pub fn contains(&self, n: i64) -> bool {
        width_for(n) <= self.width() && self.search(n).is_ok()
    }

    /// Rewrites the members at `width` (wider than now).
    fn widen(&mut self, width: usize) {
        let mut v = Vec::with_capacity(1 + self.len() * width);
        v.push(width as u8);
        for x in self.iter() {
            v.extend_from_slice(&encode(x, width)[..width]);
        }
        self.buf = v.into_boxed_slice();
    }

    /// Adds `n`; true if it was not there.
    pub fn insert(&mut self, n: i64) -> bool {
        if width_for(n) > self.width() {
            self.widen(width_for(n));
        }
        let Err(at) = self.search(n) else { return false };
        let w = self.width();
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(w);
        let pos = 1 + at * w;
        v.splice(pos..pos, encode(n, w)[..w].iter().copied());
        self.buf = v.into_boxed_slice();
        true
    }

    pub fn remove(&mut self, n: i64) -> bool {
        if width_for(n) > self.width() {
            return false;
        }
        let Ok(at) = self.search(n) else { return false };
        let w = self.width();
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.drain(1 + at * w..1 + (at + 1) * w);
        self.buf = v.into_boxed_slice();
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("index below len"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widens_and_stays_sorted() {
        let mut s = IntSet::default();
        assert!(s.insert(5));
        assert!(s.insert(-3));
        assert!(!s.insert(5));
        assert_eq!(s.width(), 2);
        s.insert(100_000);
        assert_eq!(s.width(), 4);
        s.insert(i64::MIN);
        assert_eq!(s.width(), 8);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![i64::MIN, -3, 5, 100_000]);
        assert!(s.contains(-3) && !s.contains(4));
        assert!(s.remove(5) && !s.remove(5));
        assert_eq!(s.len(), 3);
        let narrow = IntSet::default();
        assert!(!narrow.contains(1 << 40));
    }
}
