//! Byte strings stored inline when short: keys and short string values.
//!
//! Most keys and many values are short ("user:1000", "key:000000012345"):
//! up to 22 bytes live inside the 24-byte value itself, so a lookup
//! compares (and GET copies) bytes already in the table's cache line
//! instead of following a pointer, and costs no allocation of its own.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

const INLINE: usize = 22;

#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    pub fn new(bytes: &[u8]) -> SmallBytes {
        if bytes.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            SmallBytes::Inline { len: bytes.len() as u8, data }
        } else {
            SmallBytes::Heap(bytes.into())
        }
    }
}

impl Deref for SmallBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, data } => &data[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> SmallBytes {
        SmallBytes::new(b)
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &SmallBytes) -> bool {
        **self == **other
    }
}

impl Eq for SmallBytes {}

impl PartialOrd for SmallBytes {
    fn partial_cmp(&self, other: &SmallBytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallBytes {
    fn cmp(&self, other: &SmallBytes) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

/// Hashes as the byte slice does, so tables can be probed with `&[u8]`.
impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_behave_alike() {
        let short = SmallBytes::new(b"user:1000");
        let long = SmallBytes::new(&[b'x'; 40]);
        assert!(matches!(short, SmallBytes::Inline { .. }));
        assert!(matches!(long, SmallBytes::Heap(_)));
        assert_eq!(&*short, b"user:1000");
        assert_eq!(long.len(), 40);
        assert_eq!(SmallBytes::new(b""), SmallBytes::new(b""));
        assert_eq!(SmallBytes::new(&[b'a'; 22]).len(), 22);
        assert!(SmallBytes::new(b"a") < SmallBytes::new(b"b"));
        let s = ahash::RandomState::with_seeds(1, 2, 3, 4);
        assert_eq!(s.hash_one(&short), s.hash_one(&b"user:1000"[..]));
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
    }
}
