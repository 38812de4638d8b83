//! A sorted set of integers stored at the narrowest width that holds them
//! all (16, 32 or 64 bits), as Redis's intset: small integer sets cost two
//! or four bytes per member.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntSet {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl Default for IntSet {
    fn default() -> IntSet {
        IntSet::I16(Vec::new())
    }
}

impl IntSet {
    pub fn len(&self) -> usize {
        match self {
            IntSet::I16(v) => v.len(),
            IntSet::I32(v) => v.len(),
            IntSet::I64(v) => v.len(),
        }
    }

    pub fn contains(&self, n: i64) -> bool {
        match self {
            IntSet::I16(v) => i16::try_from(n).is_ok_and(|n| v.binary_search(&n).is_ok()),
            IntSet::I32(v) => i32::try_from(n).is_ok_and(|n| v.binary_search(&n).is_ok()),
            IntSet::I64(v) => v.binary_search(&n).is_ok(),
        }
    }

    /// Widens the encoding until `n` fits.
    fn fit(&mut self, n: i64) {
        let widen = match self {
            IntSet::I16(_) => i16::try_from(n).is_err(),
            IntSet::I32(_) => i32::try_from(n).is_err(),
            IntSet::I64(_) => false,
        };
        if widen {
            let all: Vec<i64> = self.iter().collect();
            *self = if i32::try_from(n).is_ok() {
                IntSet::I32(all.into_iter().map(|x| x as i32).collect())
            } else {
                IntSet::I64(all)
            };
        }
    }

    /// Adds `n`; true if it was not there.
    pub fn insert(&mut self, n: i64) -> bool {
        self.fit(n);
        match self {
            IntSet::I16(v) => insert_sorted(v, n as i16),
            IntSet::I32(v) => insert_sorted(v, n as i32),
            IntSet::I64(v) => insert_sorted(v, n),
        }
    }

    pub fn remove(&mut self, n: i64) -> bool {
        match self {
            IntSet::I16(v) => i16::try_from(n).is_ok_and(|n| remove_sorted(v, n)),
            IntSet::I32(v) => i32::try_from(n).is_ok_and(|n| remove_sorted(v, n)),
            IntSet::I64(v) => remove_sorted(v, n),
        }
    }

    pub fn get(&self, i: usize) -> Option<i64> {
        match self {
            IntSet::I16(v) => v.get(i).map(|&x| x as i64),
            IntSet::I32(v) => v.get(i).map(|&x| x as i64),
            IntSet::I64(v) => v.get(i).copied(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("index below len"))
    }
}

fn insert_sorted<T: Ord + Copy>(v: &mut Vec<T>, x: T) -> bool {
    match v.binary_search(&x) {
        Ok(_) => false,
        Err(at) => {
            v.insert(at, x);
            true
        }
    }
}

fn remove_sorted<T: Ord + Copy>(v: &mut Vec<T>, x: T) -> bool {
    match v.binary_search(&x) {
        Ok(at) => {
            v.remove(at);
            true
        }
        Err(_) => false,
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
        assert!(matches!(s, IntSet::I16(_)));
        s.insert(100_000);
        assert!(matches!(s, IntSet::I32(_)));
        s.insert(i64::MIN);
        assert!(matches!(s, IntSet::I64(_)));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![i64::MIN, -3, 5, 100_000]);
        assert!(s.contains(-3) && !s.contains(4));
        assert!(s.remove(5) && !s.remove(5));
        assert_eq!(s.len(), 3);
        let narrow = IntSet::default();
        assert!(!narrow.contains(1 << 40));
    }
}
