//! Keys, stored inline when short.
//!
//! Most keys are short ("user:1000", "key:000000012345"): up to 22 bytes
//! live inside the 24-byte key itself, so a lookup compares bytes already
//! in the table's cache line instead of following a pointer, and a short
//! key costs no allocation of its own.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

const INLINE: usize = 22;

#[derive(Clone)]
pub enum Key {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Key {
    pub fn new(bytes: &[u8]) -> Key {
        if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            Key::Inline { len: bytes.len() as u8, data }
        } else {
            Key::Heap(bytes.into())
        }
    }
}

impl Deref for Key {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, data } => &data[..*len as usize],
            Key::Heap(b) => b,
        }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        Key::new(b)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

/// Hashes as the byte slice does, so tables can be probed with `&[u8]`.
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn inline_and_heap_behave_alike() {
        let short = Key::new(b"user:1000");
        let long = Key::new(&[b'x'; 40]);
        assert!(matches!(short, Key::Inline { .. }));
        assert!(matches!(long, Key::Heap(_)));
        assert_eq!(&*short, b"user:1000");
        assert_eq!(long.len(), 40);
        assert_eq!(Key::new(b""), Key::new(b""));
        assert_eq!(Key::new(&[b'a'; 22]).len(), 22);
        assert!(Key::new(b"a") < Key::new(b"b"));
        let s = ahash::RandomState::with_seeds(1, 2, 3, 4);
        assert_eq!(s.hash_one(&short), s.hash_one(&b"user:1000"[..]));
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }
}
