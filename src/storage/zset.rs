//! The sorted set type: members ordered by (score, member).
//!
//! Small sets are packed (`listpack`: member, then the score's 8 bytes,
//! in order). Large ones (`skiplist`, Redis's name) keep a member -> score
//! map plus the ordered elements in sorted chunks of at most `CHUNK`:
//! finding a position is a binary search over chunks and within one, a
//! rank adds the chunk sizes before it (a few hundred additions for a
//! million members), and an insert moves at most one chunk's tail.

use super::SmallBytes;
use super::encodings::Listpack;
use super::table::Table;

const CHUNK: usize = 256;

#[derive(Clone, Copy, Debug)]
pub struct ZLimits {
    pub max_entries: usize,
    pub max_value: usize,
}

/// (score, member) order; scores are never NaN.
fn less(a: (f64, &[u8]), b: (f64, &[u8])) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chunked {
    scores: Table<(SmallBytes, f64)>,
    chunks: Vec<Vec<(f64, SmallBytes)>>,
}

impl Chunked {
    /// First chunk whose last element is not below `e` (where `e` goes).
    fn chunk_for(&self, e: (f64, &[u8])) -> usize {
        let c = self.chunks.partition_point(|ch| ch.last().is_some_and(|l| less((l.0, &l.1), e)));
        c.min(self.chunks.len().saturating_sub(1))
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        self.scores.insert((SmallBytes::new(member), score));
        if self.chunks.is_empty() {
            self.chunks.push(Vec::new());
        }
        let c = self.chunk_for((score, member));
        let ch = &mut self.chunks[c];
        let at = ch.partition_point(|x| less((x.0, &x.1), (score, member)));
        // Exact growth: a chunk costs its elements, not the next power of two.
        ch.reserve_exact(1);
        ch.insert(at, (score, SmallBytes::new(member)));
        if ch.len() > CHUNK {
            let tail = ch.split_off(CHUNK / 2);
            ch.shrink_to_fit();
            self.chunks.insert(c + 1, tail);
        }
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (_, score) = self.scores.remove(member)?;
        let c = self.chunk_for((score, member));
        let ch = &mut self.chunks[c];
        let at = ch.partition_point(|x| less((x.0, &x.1), (score, member)));
        ch.remove(at);
        if ch.is_empty() {
            self.chunks.remove(c);
        } else if ch.len() < ch.capacity() / 2 {
            ch.shrink_to_fit();
        }
        Some(score)
    }

    fn count_while(&self, pred: &dyn Fn(f64, &[u8]) -> bool) -> usize {
        let c = self.chunks.partition_point(|ch| ch.last().is_some_and(|l| pred(l.0, &l.1)));
        let before: usize = self.chunks[..c].iter().map(|ch| ch.len()).sum();
        before + self.chunks.get(c).map_or(0, |ch| ch.partition_point(|x| pred(x.0, &x.1)))
    }

    fn iter_from(&self, mut rank: usize) -> impl DoubleEndedIterator<Item = (f64, &[u8])> + '_ {
        let mut first = 0;
        while first < self.chunks.len() && rank >= self.chunks[first].len() {
            rank -= self.chunks[first].len();
            first += 1;
        }
        self.chunks[first.min(self.chunks.len())..]
            .iter()
            .enumerate()
            .flat_map(move |(i, ch)| ch[if i == 0 { rank.min(ch.len()) } else { 0 }..].iter())
            .map(|(s, m)| (*s, &**m))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ZSet {
    Packed(Listpack),
    Chunked(Box<Chunked>),
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::Packed(Listpack::default())
    }
}

/// Marks a packed score stored as the 8 bytes of an f64 (decimal text
/// never starts with it).
const RAW_SCORE: u8 = 0xff;

/// Packed scores: whole numbers as decimal text (1-3 bytes for typical
/// scores, as Redis's listpack stores integers), others as raw f64.
fn encode_score(s: f64) -> Vec<u8> {
    if s.fract() == 0.0 && s.abs() < 1e15 && !(s == 0.0 && s.is_sign_negative()) {
        return itoa::Buffer::new().format(s as i64).as_bytes().to_vec();
    }
    let mut v = vec![RAW_SCORE];
    v.extend_from_slice(&s.to_le_bytes());
    v
}

fn decode_score(b: &[u8]) -> f64 {
    match b.split_first() {
        Some((&RAW_SCORE, raw)) => f64::from_le_bytes(raw.try_into().unwrap_or([0; 8])),
        _ => crate::protocol::resp::parse_i64(b).unwrap_or(0) as f64,
    }
}

impl ZSet {
    /// An empty set in the encoding its first member calls for.
    pub fn for_member(member: &[u8], limits: ZLimits) -> ZSet {
        if limits.max_entries == 0 || member.len() > limits.max_value {
            ZSet::Chunked(Box::default())
        } else {
            ZSet::default()
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Packed(lp) => lp.len() / 2,
            ZSet::Chunked(c) => c.scores.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Packed(_) => "listpack",
            ZSet::Chunked(_) => "skiplist",
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Packed(lp) => lp.position(member, 2).and_then(|i| lp.get(i + 1)).map(decode_score),
            ZSet::Chunked(c) => c.scores.get(member).map(|&(_, s)| s),
        }
    }

    /// Sets `member`'s score (adding it if new); true if it was new.
    pub fn insert(&mut self, member: &[u8], score: f64, limits: ZLimits) -> bool {
        let new = self.remove(member).is_none();
        if let ZSet::Chunked(c) = self {
            c.insert(member, score);
            return new;
        }
        let at = self.count_while(&|s, m| less((s, m), (score, member)));
        if let ZSet::Packed(lp) = self {
            lp.insert(2 * at, member);
            lp.insert(2 * at + 1, &encode_score(score));
        }
        if self.len() > limits.max_entries || member.len() > limits.max_value {
            let mut c = Chunked::default();
            self.iter_from(0).for_each(|(s, m)| c.insert(m, s));
            *self = ZSet::Chunked(Box::new(c));
        }
        new
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match self {
            ZSet::Packed(lp) => {
                let i = lp.position(member, 2)?;
                let score = lp.get(i + 1).map(decode_score);
                lp.remove_range(i, 2);
                score
            }
            ZSet::Chunked(c) => c.remove(member),
        }
    }

    /// How many leading elements (in order) satisfy `pred`, which must be
    /// true for a prefix and false after.
    pub fn count_while(&self, pred: &dyn Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Packed(_) => self.iter_from(0).take_while(|&(s, m)| pred(s, m)).count(),
            ZSet::Chunked(c) => c.count_while(pred),
        }
    }

    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.count_while(&|s, m| less((s, m), (score, member))))
    }

    /// Elements in order from rank `rank`.
    pub fn iter_from(&self, rank: usize) -> Box<dyn Iterator<Item = (f64, &[u8])> + '_> {
        match self {
            ZSet::Packed(lp) => {
                let mut it = lp.iter();
                let pairs = std::iter::from_fn(move || {
                    let m = it.next()?;
                    Some((decode_score(it.next()?), m))
                });
                Box::new(pairs.skip(rank))
            }
            ZSet::Chunked(c) => Box::new(c.iter_from(rank)),
        }
    }

    /// ZSCAN: visits elements from `cursor`; returns the next cursor (0:
    /// done). A packed set is visited whole.
    pub fn scan(&self, cursor: usize, count: usize, mut visit: impl FnMut(&[u8], f64)) -> usize {
        match self {
            ZSet::Packed(_) => {
                self.iter_from(0).for_each(|(s, m)| visit(m, s));
                0
            }
            ZSet::Chunked(c) => c.scores.scan(cursor, count, |(m, s)| visit(m, *s)),
        }
    }

    /// The elements of ranks `start..end`, ascending.
    pub fn range(&self, start: usize, end: usize) -> Vec<(f64, SmallBytes)> {
        self.iter_from(start).take(end.saturating_sub(start)).map(|(s, m)| (s, SmallBytes::new(m))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: ZLimits = ZLimits { max_entries: 4, max_value: 16 };

    fn members(z: &ZSet) -> Vec<(f64, Vec<u8>)> {
        z.iter_from(0).map(|(s, m)| (s, m.to_vec())).collect()
    }

    #[test]
    fn ordered_by_score_then_member_in_both_encodings() {
        let mut z = ZSet::default();
        assert!(z.insert(b"b", 1.0, SMALL));
        assert!(z.insert(b"a", 1.0, SMALL));
        assert!(z.insert(b"c", 0.5, SMALL));
        assert!(!z.insert(b"b", -1.0, SMALL));
        assert_eq!(z.encoding(), "listpack");
        assert_eq!(members(&z), vec![(-1.0, b"b".to_vec()), (0.5, b"c".to_vec()), (1.0, b"a".to_vec())]);
        for (i, m) in ["d", "e", "f"].iter().enumerate() {
            z.insert(m.as_bytes(), 10.0 + i as f64, SMALL);
        }
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.len(), 6);
        assert_eq!(z.rank(b"a"), Some(2));
        assert_eq!(z.score(b"e"), Some(11.0));
        assert_eq!(z.remove(b"c"), Some(0.5));
        assert_eq!(z.rank(b"a"), Some(1));
        assert_eq!(z.count_while(&|s, _| s < 10.0), 2);
        assert_eq!(
            z.range(1, 3).iter().map(|(_, m)| m.to_vec()).collect::<Vec<_>>(),
            vec![b"a".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn packed_scores_round_trip() {
        for s in [0.0, -0.0, 1.0, -7.0, 1.5, 1e20, -1e-300, f64::INFINITY, f64::NEG_INFINITY, 123456789012.0] {
            let back = decode_score(&encode_score(s));
            assert_eq!(back.to_bits(), s.to_bits(), "{s}");
        }
        assert_eq!(encode_score(42.0), b"42".to_vec());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(u16, i8),
        Remove(u16),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![(0u16..600, any::<i8>()).prop_map(|(m, s)| Op::Add(m, s)), (0u16..600).prop_map(Op::Remove)]
    }

    proptest::proptest! {
        /// Any sequence of adds and removes leaves both encodings holding
        /// what a sorted Vec would: same order, scores, ranks and counts.
        #[test]
        fn behaves_like_a_sorted_vec(ops in proptest::collection::vec(op(), 1..3000), packed in proptest::bool::ANY) {
            let limits = if packed { ZLimits { max_entries: 128, max_value: 64 } } else { ZLimits { max_entries: 0, max_value: 0 } };
            let mut z = ZSet::for_member(b"x", limits);
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Add(m, s) => {
                        let (m, s) = (format!("m{m}").into_bytes(), s as f64 / 4.0);
                        let had = model.iter().position(|(_, x)| *x == m);
                        proptest::prop_assert_eq!(z.insert(&m, s, limits), had.is_none());
                        model.retain(|(_, x)| *x != m);
                        model.push((s, m));
                    }
                    Op::Remove(m) => {
                        let m = format!("m{m}").into_bytes();
                        let had = model.iter().position(|(_, x)| *x == m);
                        proptest::prop_assert_eq!(z.remove(&m), had.map(|i| model.remove(i).0));
                    }
                }
            }
            model.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            proptest::prop_assert_eq!(members(&z), model.clone());
            proptest::prop_assert_eq!(z.len(), model.len());
            for (i, (s, m)) in model.iter().enumerate() {
                proptest::prop_assert_eq!(z.rank(m), Some(i));
                proptest::prop_assert_eq!(z.score(m), Some(*s));
            }
            let below = model.iter().filter(|(s, _)| *s < 0.0).count();
            proptest::prop_assert_eq!(z.count_while(&|s, _| s < 0.0), below);
        }
    }
}
