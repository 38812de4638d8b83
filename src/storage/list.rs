//! The list type: one listpack while small (`listpack`), a quicklist
//! beyond (`quicklist`): a deque of nodes, each a run of entries in the
//! listpack entry format, sized by `list-max-listpack-size`, as Redis 7.2
//! names and converts them.

use std::collections::VecDeque;

use super::SmallBytes;
use super::encodings::Listpack;
use super::encodings::listpack::{Iter, encoded, read_len};

/// Redis's cap on a node's bytes when the limit is an entry count.
const SAFETY_BYTES: usize = 8192;

/// Redis's default size from which an entry gets a node of its own.
pub const PLAIN_FROM: u64 = 1 << 30;

/// `list-max-listpack-size`: a positive entry count, or -1..-5 for a byte
/// budget of 4..64 KiB; `plain_from`: entries this large are kept alone in
/// a node (Redis's plain nodes; DEBUG QUICKLIST-PACKED-THRESHOLD).
#[derive(Clone, Copy, Debug)]
pub struct ListLimits {
    pub max_listpack_size: i64,
    pub plain_from: u64,
}

impl ListLimits {
    fn large(self, entry: &[u8]) -> bool {
        entry.len() as u64 >= self.plain_from
    }

    fn bytes(self) -> usize {
        match self.max_listpack_size {
            n if n > 0 => SAFETY_BYTES,
            n => 4096usize << ((-n).clamp(1, 5) - 1),
        }
    }

    fn entries(self) -> usize {
        usize::try_from(self.max_listpack_size).ok().filter(|&n| n > 0).unwrap_or(usize::MAX)
    }

    fn fits(self, entries: usize, bytes: usize) -> bool {
        entries <= self.entries() && bytes <= self.bytes()
    }

    /// A one-node quicklist this small is packed again (Redis halves the
    /// limits so a list at the edge does not convert back and forth).
    fn fits_half(self, entries: usize, bytes: usize) -> bool {
        entries <= self.entries() / 2 && bytes <= self.bytes() / 2
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    Left,
    Right,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum List {
    Packed(Listpack),
    Quick(Box<Quicklist>),
}

impl Default for List {
    fn default() -> List {
        List::Packed(Listpack::default())
    }
}

/// Grows `data` to a power-of-two capacity when `extra` more bytes do not
/// fit: powers of two are allocator size classes, so a full node wastes
/// nothing.
fn make_room(data: &mut Vec<u8>, extra: usize) {
    let need = data.len() + extra;
    if need > data.capacity() {
        data.reserve_exact(need.next_power_of_two() - data.len());
    }
}

/// One quicklist node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    data: Vec<u8>,
    count: usize,
}

impl Node {
    fn with(entries: &[&[u8]]) -> Node {
        let mut n = Node::default();
        entries.iter().for_each(|e| n.insert_at(n.data.len(), e));
        n
    }

    fn iter(&self) -> Iter<'_> {
        Iter::new(&self.data)
    }

    fn offset(&self, index: usize) -> usize {
        let mut it = self.iter();
        for _ in 0..index {
            it.next();
        }
        it.offset()
    }

    /// End of the entry that starts at byte `at`.
    fn end_of(&self, at: usize) -> usize {
        let (len, start) = read_len(&self.data, at);
        start + len
    }

    fn insert_at(&mut self, at: usize, entry: &[u8]) {
        let e = encoded(entry);
        make_room(&mut self.data, e.len());
        self.data.splice(at..at, e);
        self.count += 1;
    }

    fn remove_bytes(&mut self, from: usize, to: usize, entries: usize) {
        self.data.drain(from..to);
        self.count -= entries;
        if self.data.len() < self.data.capacity() / 4 {
            self.data.shrink_to(self.data.len().next_power_of_two());
        }
    }

    /// Whether the node is one large entry, which nothing joins.
    fn plain(&self, limits: ListLimits) -> bool {
        self.count == 1 && self.iter().next().is_some_and(|e| limits.large(e))
    }

    /// The node cut so that each large entry is alone in its own.
    fn isolate_large(self, limits: ListLimits) -> Vec<Node> {
        let mut nodes = vec![Node::default()];
        for entry in self.iter() {
            let large = limits.large(entry);
            if large && nodes.last().is_some_and(|n| n.count > 0) {
                nodes.push(Node::default());
            }
            let last = nodes.len() - 1;
            let at = nodes[last].data.len();
            nodes[last].insert_at(at, entry);
            if large {
                nodes.push(Node::default());
            }
        }
        nodes.retain(|n| n.count > 0);
        nodes
    }

    /// Moves entries from `index` on into a new node.
    fn split_off(&mut self, index: usize) -> Node {
        let at = self.offset(index);
        let tail = Node { data: self.data[at..].to_vec(), count: self.count - index };
        self.remove_bytes(at, self.data.len(), tail.count);
        tail
    }
}

/// Entries in nodes of at most the configured size. `tail` caches the
/// entry offsets of the last node while only pushes and pops touch it, so
/// RPOP does not rewalk the node (entries can only be walked forward).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quicklist {
    nodes: VecDeque<Node>,
    len: usize,
    tail: Vec<u32>,
}

impl Quicklist {
    /// (node, index within it) of entry `i` (< len), walking from the nearer end.
    fn locate(&self, mut i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            for (n, node) in self.nodes.iter().enumerate() {
                if i < node.count {
                    return (n, i);
                }
                i -= node.count;
            }
        } else {
            let mut from_end = self.len - i;
            for (n, node) in self.nodes.iter().enumerate().rev() {
                if from_end <= node.count {
                    return (n, node.count - from_end);
                }
                from_end -= node.count;
            }
        }
        unreachable!("index below len")
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let (n, j) = self.locate(i);
        self.nodes[n].iter().nth(j)
    }

    fn tail_valid(&self) -> bool {
        self.nodes.back().is_some_and(|n| n.count == self.tail.len())
    }

    fn push(&mut self, end: End, v: &[u8], limits: ListLimits) {
        let size = encoded(v).len();
        let large = limits.large(v);
        let room = |n: &Node| !large && !n.plain(limits) && limits.fits(n.count + 1, n.data.len() + size);
        self.len += 1;
        match end {
            End::Right => {
                let valid = self.tail_valid();
                match self.nodes.back_mut() {
                    Some(node) if room(node) => {
                        let at = node.data.len();
                        node.insert_at(at, v);
                        if valid {
                            self.tail.push(at as u32);
                        }
                    }
                    _ => {
                        self.nodes.push_back(Node::with(&[v]));
                        self.tail = vec![0];
                    }
                }
            }
            End::Left => {
                match self.nodes.front_mut() {
                    Some(node) if room(node) => node.insert_at(0, v),
                    _ => self.nodes.push_front(Node::with(&[v])),
                }
                if self.nodes.len() == 1 {
                    self.tail.clear();
                }
            }
        }
    }

    fn pop(&mut self, end: End) -> Option<SmallBytes> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let v = match end {
            End::Right => {
                if !self.tail_valid() {
                    let node = self.nodes.back()?;
                    let mut it = node.iter();
                    self.tail = std::iter::from_fn(|| {
                        let at = it.offset();
                        it.next().map(|_| at as u32)
                    })
                    .collect();
                }
                let at = self.tail.pop()? as usize;
                let node = self.nodes.back_mut()?;
                let v = SmallBytes::new(&node.data[read_len(&node.data, at).1..]);
                node.remove_bytes(at, node.data.len(), 1);
                if node.count == 0 {
                    self.nodes.pop_back();
                    self.tail.clear();
                }
                v
            }
            End::Left => {
                let node = self.nodes.front_mut()?;
                let to = node.end_of(0);
                let v = SmallBytes::new(&node.data[read_len(&node.data, 0).1..to]);
                node.remove_bytes(0, to, 1);
                if node.count == 0 {
                    self.nodes.pop_front();
                }
                if self.nodes.len() <= 1 {
                    self.tail.clear();
                }
                v
            }
        };
        Some(v)
    }

    fn drop_empty(&mut self) {
        let before = self.nodes.len();
        self.nodes.retain(|n| n.count > 0);
        if self.nodes.len() != before {
            self.tail.clear();
        }
    }

    /// Edits entry `i`'s node with `f` (given the node and the index in
    /// it), then splits the node if it outgrew the limits or holds a large
    /// entry among others: `adds_large` says `f` puts a large entry in, and
    /// a node that was one large entry may have gained a neighbour.
    fn edit(&mut self, i: usize, limits: ListLimits, adds_large: bool, f: impl FnOnce(&mut Node, usize)) {
        self.tail.clear();
        let (n, j) =
            if i == self.len { (self.nodes.len() - 1, self.nodes[self.nodes.len() - 1].count) } else { self.locate(i) };
        let node = &mut self.nodes[n];
        let was_plain = node.plain(limits);
        f(node, j);
        if node.count > 1 && (adds_large || was_plain) {
            let pieces = std::mem::take(node).isolate_large(limits);
            self.nodes.remove(n);
            for (k, piece) in pieces.into_iter().enumerate() {
                self.nodes.insert(n + k, piece);
            }
        } else if node.count > 1 && !limits.fits(node.count, node.data.len()) {
            let tail = node.split_off(node.count / 2);
            self.nodes.insert(n + 1, tail);
        }
        self.len = self.nodes.iter().map(|n| n.count).sum();
        self.drop_empty();
    }

    fn set(&mut self, i: usize, v: &[u8], limits: ListLimits) {
        self.edit(i, limits, limits.large(v), |node, j| {
            let at = node.offset(j);
            let to = node.end_of(at);
            node.remove_bytes(at, to, 1);
            node.insert_at(at, v);
        });
    }

    fn insert(&mut self, i: usize, v: &[u8], limits: ListLimits) {
        if self.nodes.is_empty() {
            return self.push(End::Right, v, limits);
        }
        self.edit(i, limits, limits.large(v), |node, j| {
            let at = node.offset(j);
            node.insert_at(at, v);
        });
    }

    fn remove(&mut self, i: usize, limits: ListLimits) {
        self.edit(i, limits, false, |node, j| {
            let at = node.offset(j);
            let to = node.end_of(at);
            node.remove_bytes(at, to, 1);
        });
    }

    /// Keeps entries `start..end` only.
    fn keep(&mut self, start: usize, end: usize) {
        self.tail.clear();
        let mut drop_back = self.len - end;
        while let Some(node) = self.nodes.back_mut()
            && drop_back > 0
        {
            if node.count <= drop_back {
                drop_back -= node.count;
                self.nodes.pop_back();
            } else {
                let at = node.offset(node.count - drop_back);
                node.remove_bytes(at, node.data.len(), drop_back);
                drop_back = 0;
            }
        }
        let mut drop_front = start;
        while let Some(node) = self.nodes.front_mut()
            && drop_front > 0
        {
            if node.count <= drop_front {
                drop_front -= node.count;
                self.nodes.pop_front();
            } else {
                let to = node.offset(drop_front);
                node.remove_bytes(0, to, drop_front);
                drop_front = 0;
            }
        }
        self.len = end - start;
    }

    /// Entries from `start` on, skipping whole nodes.
    fn iter_from(&self, mut start: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let first = self.nodes.iter().position(|n| {
            if start < n.count {
                return true;
            }
            start -= n.count;
            false
        });
        let first = first.unwrap_or(self.nodes.len());
        self.nodes.range(first..).enumerate().flat_map(move |(k, n)| n.iter().skip(if k == 0 { start } else { 0 }))
    }

    /// The single node's entries as a listpack, when there is one node.
    fn repack(&self) -> Listpack {
        let mut lp = Listpack::default();
        self.iter_from(0).for_each(|e| lp.push(e));
        lp
    }
}

impl List {
    pub fn len(&self) -> usize {
        match self {
            List::Packed(lp) => lp.len(),
            List::Quick(q) => q.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What OBJECT ENCODING says: Redis 7.0 keeps every list in a
    /// quicklist, and a small one is a quicklist of one packed node, as
    /// percore's single listpack is (7.2 calls that `listpack`).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        match self {
            List::Packed(lp) => lp.get(i),
            List::Quick(q) => q.get(i),
        }
    }

    /// The nodes' entries, node by node (an RDB stores a list so).
    pub fn nodes(&self) -> Vec<(usize, Iter<'_>)> {
        match self {
            List::Packed(lp) => vec![(lp.len(), lp.iter())],
            List::Quick(q) => q.nodes.iter().map(|n| (n.count, n.iter())).collect(),
        }
    }

    /// Entries from index `start` on, head to tail.
    pub fn iter_from(&self, start: usize) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match self {
            List::Packed(lp) => Box::new(lp.iter().skip(start)),
            List::Quick(q) => Box::new(q.iter_from(start)),
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        self.iter_from(0)
    }

    /// Calls `f` on the `n` entries from index `start` (LRANGE's walk,
    /// without an iterator object per node).
    pub fn for_each_in(&self, start: usize, n: usize, f: &mut dyn FnMut(&[u8])) {
        match self {
            List::Packed(lp) => lp.iter().skip(start).take(n).for_each(f),
            List::Quick(q) => {
                let mut skip = start;
                let mut left = n;
                for node in &q.nodes {
                    if left == 0 {
                        break;
                    }
                    if skip >= node.count {
                        skip -= node.count;
                        continue;
                    }
                    let mut it = node.iter();
                    for _ in 0..skip {
                        it.next();
                    }
                    skip = 0;
                    for entry in it.take(left) {
                        f(entry);
                        left -= 1;
                    }
                }
            }
        }
    }

    /// Entries tail to head (entries walk forward only: one node at a
    /// time is collected).
    pub fn iter_rev(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match self {
            List::Packed(lp) => Box::new(lp.iter().collect::<Vec<_>>().into_iter().rev()),
            List::Quick(q) => {
                Box::new(q.nodes.iter().rev().flat_map(|n| n.iter().collect::<Vec<_>>().into_iter().rev()))
            }
        }
    }

    /// Converts between the encodings as the list grows past the limits
    /// or shrinks back to one small node (never a large entry's own).
    fn check(&mut self, limits: ListLimits) {
        match self {
            List::Packed(lp) if !limits.fits(lp.len(), lp.bytes()) => self.unpack(limits),
            List::Quick(q)
                if q.nodes.len() <= 1
                    && q.nodes.front().is_none_or(|n| !n.plain(limits) && limits.fits_half(q.len, n.data.len())) =>
            {
                *self = List::Packed(q.repack());
            }
            _ => {}
        }
    }

    /// Moves a listpack's entries into a quicklist.
    fn unpack(&mut self, limits: ListLimits) {
        if let List::Packed(lp) = self {
            let mut q = Quicklist::default();
            lp.iter().for_each(|e| q.push(End::Right, e, limits));
            *self = List::Quick(Box::new(q));
        }
    }

    /// A large entry needs a node of its own: a quicklist.
    fn make_room_for(&mut self, v: &[u8], limits: ListLimits) {
        if limits.large(v) {
            self.unpack(limits);
        }
    }

    pub fn push(&mut self, end: End, v: &[u8], limits: ListLimits) {
        self.make_room_for(v, limits);
        match (self as &mut List, end) {
            (List::Packed(lp), End::Right) => lp.push(v),
            (List::Packed(lp), End::Left) => lp.insert(0, v),
            (List::Quick(q), end) => q.push(end, v, limits),
        }
        if let List::Packed(_) = self {
            self.check(limits);
        }
    }

    pub fn pop(&mut self, end: End, limits: ListLimits) -> Option<SmallBytes> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        let v = match self {
            List::Packed(lp) => {
                let i = if end == End::Left { 0 } else { len - 1 };
                let v = lp.get(i).map(SmallBytes::new);
                lp.remove_range(i, 1);
                v
            }
            List::Quick(q) => q.pop(end),
        };
        self.check(limits);
        v
    }

    pub fn set(&mut self, i: usize, v: &[u8], limits: ListLimits) {
        self.make_room_for(v, limits);
        match self {
            List::Packed(lp) => lp.replace(i, v),
            List::Quick(q) => q.set(i, v, limits),
        }
        self.check(limits);
    }

    pub fn insert(&mut self, i: usize, v: &[u8], limits: ListLimits) {
        self.make_room_for(v, limits);
        match self {
            List::Packed(lp) => lp.insert(i, v),
            List::Quick(q) => q.insert(i, v, limits),
        }
        self.check(limits);
    }

    pub fn remove(&mut self, i: usize, limits: ListLimits) {
        match self {
            List::Packed(lp) => lp.remove_range(i, 1),
            List::Quick(q) => q.remove(i, limits),
        }
        self.check(limits);
    }

    /// Keeps entries `start..end` only.
    pub fn keep(&mut self, start: usize, end: usize, limits: ListLimits) {
        match self {
            List::Packed(lp) => {
                let len = lp.len();
                lp.remove_range(end, len - end);
                lp.remove_range(0, start);
            }
            List::Quick(q) => q.keep(start, end),
        }
        self.check(limits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: ListLimits = ListLimits { max_listpack_size: 3, plain_from: PLAIN_FROM };

    fn items(l: &List) -> Vec<Vec<u8>> {
        l.iter().map(|e| e.to_vec()).collect()
    }

    #[test]
    fn both_encodings_behave_alike() {
        let mut l = List::default();
        l.push(End::Right, b"b", SMALL);
        l.push(End::Left, b"a", SMALL);
        l.push(End::Right, b"c", SMALL);
        assert!(matches!(l, List::Packed(_)));
        l.push(End::Right, b"d", SMALL);
        assert!(matches!(l, List::Quick(_)));
        assert_eq!(items(&l), [b"a", b"b", b"c", b"d"].map(|x| x.to_vec()).to_vec());
        assert_eq!(l.pop(End::Left, SMALL).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.pop(End::Right, SMALL).as_deref(), Some(&b"d"[..]));
        l.insert(1, b"x", SMALL);
        l.set(0, b"B", SMALL);
        l.keep(1, 3, SMALL);
        assert_eq!(items(&l), [b"x", b"c"].map(|x| x.to_vec()).to_vec());
        l.remove(0, SMALL);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn byte_budgets() {
        let l = ListLimits { max_listpack_size: -2, plain_from: PLAIN_FROM };
        assert!(l.fits(1000, 8192) && !l.fits(1, 8193));
        let mut list = List::default();
        list.push(End::Right, &[b'x'; 5000], ListLimits { max_listpack_size: -1, plain_from: PLAIN_FROM });
        assert!(matches!(list, List::Quick(_)));
    }

    /// Random operations against a VecDeque, with node limits small
    /// enough that nodes split, empty, and the list converts both ways.
    #[test]
    fn quicklist_matches_a_model() {
        for limits in [
            ListLimits { max_listpack_size: 4, plain_from: PLAIN_FROM },
            ListLimits { max_listpack_size: 9, plain_from: PLAIN_FROM },
            // Entries of 6 bytes and more are plain nodes.
            ListLimits { max_listpack_size: 4, plain_from: 6 },
        ] {
            let mut rng = fastrand::Rng::with_seed(11);
            let mut l = List::default();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for step in 0..20_000 {
                let v = format!("v{}", rng.usize(..1000)).repeat(rng.usize(1..4)).into_bytes();
                let end = if rng.bool() { End::Left } else { End::Right };
                match rng.usize(..10) {
                    0..=3 => {
                        l.push(end, &v, limits);
                        if end == End::Left { model.push_front(v) } else { model.push_back(v) }
                    }
                    4..=5 => {
                        let want = if end == End::Left { model.pop_front() } else { model.pop_back() };
                        assert_eq!(l.pop(end, limits).map(|b| b.to_vec()), want, "step {step}");
                    }
                    6 if !model.is_empty() => {
                        let i = rng.usize(..model.len());
                        l.set(i, &v, limits);
                        model[i] = v;
                    }
                    7 => {
                        let i = rng.usize(..=model.len());
                        l.insert(i, &v, limits);
                        model.insert(i, v);
                    }
                    8 if !model.is_empty() => {
                        let i = rng.usize(..model.len());
                        l.remove(i, limits);
                        model.remove(i);
                    }
                    9 if model.len() > 40 => {
                        let start = rng.usize(..5);
                        let end = model.len() - rng.usize(..5);
                        l.keep(start, end, limits);
                        model = model.range(start..end).cloned().collect();
                    }
                    _ => {}
                }
                assert_eq!(l.len(), model.len(), "step {step}");
                if step % 97 == 0 {
                    assert_eq!(items(&l), Vec::from(model.clone()));
                    match &l {
                        List::Packed(lp) => assert!(lp.iter().all(|e| !limits.large(e))),
                        List::Quick(q) => {
                            assert!(q.nodes.iter().all(|n| n.count == 1 || !n.iter().any(|e| limits.large(e))))
                        }
                    }
                    let rev: Vec<Vec<u8>> = l.iter_rev().map(|e| e.to_vec()).collect();
                    assert_eq!(rev, model.iter().rev().cloned().collect::<Vec<_>>());
                    if !model.is_empty() {
                        let i = rng.usize(..model.len());
                        assert_eq!(l.get(i), Some(&model[i][..]));
                        assert_eq!(l.iter_from(i).next(), Some(&model[i][..]));
                        let n = rng.usize(..=model.len() - i);
                        let mut walked = Vec::new();
                        l.for_each_in(i, n, &mut |e| walked.push(e.to_vec()));
                        assert_eq!(walked, model.range(i..i + n).cloned().collect::<Vec<_>>());
                    }
                }
            }
            assert_eq!(l.get(model.len()), None);
        }
    }

    #[test]
    fn shrinking_packs_again() {
        let limits = ListLimits { max_listpack_size: 4, plain_from: PLAIN_FROM };
        let mut l = List::default();
        for v in [b"a", b"b", b"c", b"d", b"e"] {
            l.push(End::Right, v, limits);
        }
        assert!(matches!(l, List::Quick(_)));
        // Nodes [a b c d] [e]: one node left, but still above half the limit.
        l.pop(End::Right, limits);
        l.pop(End::Right, limits);
        assert!(matches!(l, List::Quick(_)));
        l.pop(End::Right, limits);
        assert!(matches!(l, List::Packed(_)));
        assert_eq!(items(&l), vec![b"a".to_vec(), b"b".to_vec()]);
    }
}
