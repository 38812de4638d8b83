//! The stream type (t_stream.c): entries with ids, kept as Redis keeps
//! them, in an ordered map of packed nodes. Each node is keyed by the id
//! of its first entry (its master id) and holds up to
//! `stream-node-max-entries` entries in at most `stream-node-max-bytes`:
//! the master's field names once, then per entry a flags byte, the id as
//! a delta from the master's, and either only the values (when the fields
//! are the master's, the common case) or the field value pairs. Deleted
//! entries stay in their node as tombstones until the node empties, as in
//! Redis, so trimming and the consumer-group counters behave the same.

mod group;
mod id;

pub use group::{Group, Pending};
pub use id::StreamId;

use std::collections::BTreeMap;

use bytes::Bytes;

const DELETED: u8 = 1;
const SAME_FIELDS: u8 = 2;

/// The node bounds (`stream-node-max-bytes`, `stream-node-max-entries`;
/// 0 means unbounded).
#[derive(Clone, Copy, Debug)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: usize,
}

/// A field value pair of an entry, borrowed from its node.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

#[derive(Clone, Debug, Default, PartialEq)]
struct Node {
    /// The master entry's field names, varint-length-prefixed.
    fields: Vec<u8>,
    field_count: usize,
    /// The entries, one after another.
    data: Vec<u8>,
    live: usize,
    deleted: usize,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = data[*at];
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn get_bytes<'a>(data: &'a [u8], at: &mut usize) -> &'a [u8] {
    let len = get_varint(data, at) as usize;
    let b = &data[*at..*at + len];
    *at += len;
    b
}

/// An entry decoded from its node.
struct Decoded<'a> {
    at: usize,
    flags: u8,
    id: StreamId,
    pairs: Vec<Pair<'a>>,
}

impl Node {
    fn new(pairs: &[Pair]) -> Node {
        let mut fields = Vec::new();
        pairs.iter().for_each(|(f, _)| put_bytes(&mut fields, f));
        Node { fields, field_count: pairs.len(), ..Node::default() }
    }

    fn master_fields(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        (0..self.field_count).map(move |_| get_bytes(&self.fields, &mut at))
    }

    fn bytes(&self) -> usize {
        self.fields.len() + self.data.len()
    }

    fn push(&mut self, master: StreamId, id: StreamId, pairs: &[Pair]) {
        let same = pairs.len() == self.field_count && self.master_fields().zip(pairs).all(|(m, (f, _))| m == *f);
        self.data.push(if same { SAME_FIELDS } else { 0 });
        put_varint(&mut self.data, id.ms - master.ms);
        put_varint(&mut self.data, id.seq);
        if same {
            pairs.iter().for_each(|(_, v)| put_bytes(&mut self.data, v));
        } else {
            put_varint(&mut self.data, pairs.len() as u64);
            for (f, v) in pairs {
                put_bytes(&mut self.data, f);
                put_bytes(&mut self.data, v);
            }
        }
        self.live += 1;
    }

    fn decode(&self, master: StreamId, at: &mut usize) -> Decoded<'_> {
        let start = *at;
        let flags = self.data[*at];
        *at += 1;
        let ms = master.ms + get_varint(&self.data, at);
        let id = StreamId { ms, seq: get_varint(&self.data, at) };
        let pairs = if flags & SAME_FIELDS != 0 {
            self.master_fields().map(|f| (f, get_bytes(&self.data, at))).collect()
        } else {
            let n = get_varint(&self.data, at);
            (0..n).map(|_| (get_bytes(&self.data, at), get_bytes(&self.data, at))).collect()
        };
        Decoded { at: start, flags, id, pairs }
    }

    /// Every entry, tombstones included, in order.
    fn entries(&self, master: StreamId) -> Vec<Decoded<'_>> {
        let mut out = Vec::with_capacity(self.live + self.deleted);
        let mut at = 0;
        while at < self.data.len() {
            out.push(self.decode(master, &mut at));
        }
        out
    }

    fn mark_deleted(&mut self, at: usize) {
        self.data[at] |= DELETED;
        self.live -= 1;
        self.deleted += 1;
    }
}

/// An entry as its node holds it, tombstones included (what an RDB
/// stores).
pub struct RawEntry<'a> {
    pub deleted: bool,
    pub id: StreamId,
    pub pairs: Vec<Pair<'a>>,
}

/// A node as an RDB stores it: its master id and field names, and every
/// entry it holds.
pub struct RawNode<'a> {
    pub master: StreamId,
    pub fields: Vec<&'a [u8]>,
    pub live: usize,
    pub deleted: usize,
    pub entries: Vec<RawEntry<'a>>,
}

/// Pairs copied out of their node, to outlive its borrow.
pub fn owned_pairs(pairs: &[Pair]) -> Vec<(Bytes, Bytes)> {
    pairs.iter().map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v))).collect()
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    nodes: BTreeMap<StreamId, Node>,
    len: usize,
    pub last_id: StreamId,
    /// The first live entry's id (0-0 when empty).
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Bytes, Group>,
}

/// How XADD / XTRIM trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

impl Stream {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Radix tree keys (XINFO STREAM): one per node.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The id XADD would give for `given` (None: `*`; `seq_given` false:
    /// `<ms>-*`), or None when no valid id is left above the last one.
    pub fn next_id(&self, given: Option<StreamId>, seq_given: bool, now_ms: u64) -> Option<StreamId> {
        match given {
            Some(id) if seq_given => Some(id),
            // `<ms>-*` never carries into the next millisecond.
            Some(id) if id.ms == self.last_id.ms => {
                (self.last_id.seq < u64::MAX).then(|| self.last_id.next()).flatten()
            }
            Some(id) => Some(StreamId { ms: id.ms, seq: 0 }),
            None if now_ms > self.last_id.ms => Some(StreamId { ms: now_ms, seq: 0 }),
            None => self.last_id.next(),
        }
    }

    /// Appends an entry; the caller checked `id` > `last_id`.
    pub fn append(&mut self, id: StreamId, pairs: &[Pair], limits: NodeLimits) {
        let size: usize = pairs.iter().map(|(f, v)| f.len() + v.len() + 2).sum::<usize>() + 4;
        let full = |n: &Node| {
            (limits.max_bytes > 0 && n.bytes() + size >= limits.max_bytes)
                || (limits.max_entries > 0 && n.live + n.deleted >= limits.max_entries)
        };
        match self.nodes.last_entry() {
            Some(mut last) if !full(last.get()) => {
                let master = *last.key();
                last.get_mut().push(master, id, pairs);
            }
            last => {
                // The full node takes no more entries: its growth room goes.
                if let Some(mut last) = last {
                    last.get_mut().data.shrink_to_fit();
                }
                let mut node = Node::new(pairs);
                node.push(id, id, pairs);
                self.nodes.insert(id, node);
            }
        }
        self.len += 1;
        if self.len == 1 {
            self.first_id = id;
        }
        self.last_id = id;
        self.entries_added += 1;
    }

    /// Calls `f` with each live entry in `start..=end` (in reverse when
    /// `rev`) until it returns false.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool, mut f: impl FnMut(StreamId, &[Pair]) -> bool) {
        if start > end {
            return;
        }
        // The node holding `start` is keyed at or below it.
        let from = self.nodes.range(..=start).next_back().map_or(start, |(k, _)| *k);
        let nodes = self.nodes.range(from..=end);
        let nodes: Box<dyn Iterator<Item = _>> = if rev { Box::new(nodes.rev()) } else { Box::new(nodes) };
        for (master, node) in nodes {
            let entries = node.entries(*master);
            let live = |e: &&Decoded| e.flags & DELETED == 0 && e.id >= start && e.id <= end;
            let mut visit = |e: &Decoded| f(e.id, &e.pairs);
            let more = if rev {
                entries.iter().rev().filter(live).all(&mut visit)
            } else {
                entries.iter().filter(live).all(&mut visit)
            };
            if !more {
                return;
            }
        }
    }

    /// The live entry with this id, as owned pairs.
    pub fn get(&self, id: StreamId) -> Option<Vec<(Bytes, Bytes)>> {
        let mut found = None;
        self.range(id, id, false, |_, pairs| {
            found = Some(owned_pairs(pairs));
            false
        });
        found
    }

    /// The first (or last) live entry's id.
    pub fn edge(&self, first: bool) -> Option<StreamId> {
        let mut found = None;
        self.range(StreamId::MIN, StreamId::MAX, !first, |id, _| {
            found = Some(id);
            false
        });
        found
    }

    /// The first entry's id counting tombstones (what MINID ~ propagates),
    /// or the largest id when there is none.
    pub fn first_with_tombstones(&self) -> StreamId {
        self.nodes.iter().next().map_or(StreamId::MAX, |(master, node)| {
            let mut at = 0;
            node.decode(*master, &mut at).id
        })
    }

    /// Deletes the entry `id` (XDEL); whether it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, node)) = self.nodes.range_mut(..=id).next_back() else { return false };
        let Some(at) = node.entries(master).iter().find(|e| e.id == id && e.flags & DELETED == 0).map(|e| e.at) else {
            return false;
        };
        node.mark_deleted(at);
        if node.live == 0 {
            self.nodes.remove(&master);
        }
        self.len -= 1;
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.first_id = self.edge(true).unwrap_or(StreamId::MIN);
        }
        true
    }

    /// Trims from the oldest entries; with `approx` only whole nodes go,
    /// and at most `limit` entries (0: no limit). Returns how many went.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some(mut first) = self.nodes.first_entry() {
            if matches!(trim, Trim::MaxLen(max) if self.len as u64 <= max) {
                break;
            }
            let master = *first.key();
            let node = first.get_mut();
            let live = node.live as u64;
            if limit > 0 && deleted + live > limit {
                break;
            }
            let whole = match trim {
                Trim::MaxLen(max) => self.len as u64 - live >= max,
                Trim::MinId(min) => node.entries(master).last().is_some_and(|e| e.id < min),
            };
            if whole {
                first.remove();
                self.len -= live as usize;
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            let marks: Vec<usize> = {
                let mut len = self.len as u64;
                let mut marks = Vec::new();
                for e in node.entries(master) {
                    let stop = match trim {
                        Trim::MaxLen(max) => len <= max,
                        Trim::MinId(min) => e.id >= min,
                    };
                    if stop {
                        break;
                    }
                    if e.flags & DELETED == 0 {
                        marks.push(e.at);
                        len -= 1;
                    }
                }
                marks
            };
            for &at in &marks {
                node.mark_deleted(at);
            }
            self.len -= marks.len();
            deleted += marks.len() as u64;
            break;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.edge(true).unwrap_or(StreamId::MIN);
        }
        deleted
    }

    /// Whether `start..=end` may hold a deleted entry (Redis's
    /// streamRangeHasTombstones, which knows only the latest deletion).
    pub fn has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.len == 0 || self.max_deleted_id == StreamId::MIN || self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// How many entries were added up to `id` (Redis's
    /// streamEstimateDistanceFromFirstEverEntry); None when it cannot be
    /// known.
    pub fn entries_read_at(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.len == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.len as u64),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.len as u64 + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }

    /// A group's lag: entries not yet delivered to it, None when unknown.
    pub fn lag(&self, group: &Group) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        let read = match group.entries_read {
            Some(read) if !self.has_tombstones(group.last_id, StreamId::MAX) => Some(read),
            _ => self.entries_read_at(group.last_id),
        };
        read.map(|r| self.entries_added.saturating_sub(r))
    }

    /// Moves a group past `id` after delivering it, keeping its read
    /// counter as Redis does.
    pub fn advance(&self, group: &mut Group, id: StreamId) {
        if id <= group.last_id {
            return;
        }
        group.entries_read = match group.entries_read {
            Some(read) if !self.has_tombstones(id, StreamId::MAX) => Some(read + 1),
            _ if self.entries_added > 0 => self.entries_read_at(id),
            read => read,
        };
        group.last_id = id;
    }

    /// Every node as it is stored, in order (RDB).
    pub fn raw_nodes(&self) -> impl Iterator<Item = RawNode<'_>> {
        self.nodes.iter().map(|(&master, node)| RawNode {
            master,
            fields: node.master_fields().collect(),
            live: node.live,
            deleted: node.deleted,
            entries: node
                .entries(master)
                .into_iter()
                .map(|d| RawEntry { deleted: d.flags & DELETED != 0, id: d.id, pairs: d.pairs })
                .collect(),
        })
    }

    /// Loading an RDB: appends a node as it was stored. The caller checked
    /// that its ids ascend, from `master` on, above every id already here;
    /// it sets the stream's counters once every node is in.
    pub fn load_node(&mut self, master: StreamId, fields: &[&[u8]], entries: &[RawEntry]) {
        let mut node = Node { field_count: fields.len(), ..Node::default() };
        fields.iter().for_each(|f| put_bytes(&mut node.fields, f));
        for e in entries {
            let at = node.data.len();
            node.push(master, e.id, &e.pairs);
            if e.deleted {
                node.mark_deleted(at);
            }
        }
        if node.live > 0 {
            self.len += node.live;
            self.nodes.insert(master, node);
        }
    }

    /// Every live entry, in order (AOF rewrite, digest).
    pub fn for_each(&self, mut f: impl FnMut(StreamId, &[Pair])) {
        self.range(StreamId::MIN, StreamId::MAX, false, |id, pairs| {
            f(id, pairs);
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: NodeLimits = NodeLimits { max_bytes: 4096, max_entries: 3 };

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn ids(s: &Stream, rev: bool) -> Vec<StreamId> {
        let mut out = Vec::new();
        s.range(StreamId::MIN, StreamId::MAX, rev, |id, _| {
            out.push(id);
            true
        });
        out
    }

    fn filled(n: u64) -> Stream {
        let mut s = Stream::default();
        for i in 1..=n {
            s.append(id(i, 0), &[(b"f", b"v"), (b"g", i.to_string().as_bytes())], LIMITS);
        }
        s
    }

    #[test]
    fn entries_come_back_in_order_with_their_fields() {
        let mut s = filled(7);
        s.append(id(8, 1), &[(b"other", b"x")], LIMITS);
        assert_eq!(s.len(), 8);
        assert_eq!(s.node_count(), 3);
        assert_eq!(ids(&s, false), (1..=7).map(|i| id(i, 0)).chain([id(8, 1)]).collect::<Vec<_>>());
        let mut rev = ids(&s, false);
        rev.reverse();
        assert_eq!(ids(&s, true), rev);
        assert_eq!(s.get(id(5, 0)).unwrap()[1].1, Bytes::from_static(b"5"));
        assert_eq!(s.get(id(8, 1)).unwrap(), vec![(Bytes::from_static(b"other"), Bytes::from_static(b"x"))]);
        let mut some = Vec::new();
        s.range(id(2, 5), id(4, 0), false, |id, _| {
            some.push(id);
            true
        });
        assert_eq!(some, vec![id(3, 0), id(4, 0)]);
    }

    #[test]
    fn deletes_leave_tombstones_until_the_node_empties() {
        let mut s = filled(6);
        assert!(s.delete(id(1, 0)));
        assert!(!s.delete(id(1, 0)));
        assert_eq!((s.first_id, s.max_deleted_id), (id(2, 0), id(1, 0)));
        assert!(s.delete(id(2, 0)) && s.delete(id(3, 0)));
        assert_eq!(s.node_count(), 1);
        assert_eq!(s.first_with_tombstones(), id(4, 0));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn trims_like_redis() {
        let mut s = filled(7);
        // Approximate: only whole nodes of 3.
        assert_eq!(s.trim(Trim::MaxLen(5), true, 0), 0);
        assert_eq!(s.trim(Trim::MaxLen(4), true, 0), 3);
        assert_eq!(s.trim(Trim::MaxLen(2), false, 0), 2);
        assert_eq!(ids(&s, false), vec![id(6, 0), id(7, 0)]);
        assert_eq!(s.first_id, id(6, 0));
        let mut s = filled(7);
        assert_eq!(s.trim(Trim::MinId(id(5, 0)), false, 0), 4);
        assert_eq!(s.first_id, id(5, 0));
        assert_eq!(s.first_with_tombstones(), id(4, 0));
    }

    #[test]
    fn ids_are_generated_as_redis_does() {
        let mut s = Stream::default();
        assert_eq!(s.next_id(None, false, 5), Some(id(5, 0)));
        s.append(id(5, 0), &[(b"a", b"b")], LIMITS);
        assert_eq!(s.next_id(None, false, 3), Some(id(5, 1)));
        assert_eq!(s.next_id(Some(id(5, 0)), false, 0), Some(id(5, 1)));
        assert_eq!(s.next_id(Some(id(9, 0)), false, 0), Some(id(9, 0)));
        s.last_id = id(5, u64::MAX);
        assert_eq!(s.next_id(Some(id(5, 0)), false, 0), None);
        s.last_id = StreamId::MAX;
        assert_eq!(s.next_id(None, false, 0), None);
    }

    #[test]
    fn read_counters_follow_redis() {
        let mut s = filled(5);
        assert_eq!(s.entries_read_at(id(5, 0)), Some(5));
        assert_eq!(s.entries_read_at(id(1, 0)), Some(1));
        assert_eq!(s.entries_read_at(id(0, 1)), Some(0));
        assert_eq!(s.entries_read_at(id(3, 0)), None);
        s.delete(id(3, 0));
        assert!(s.has_tombstones(id(2, 0), StreamId::MAX));
        assert!(!s.has_tombstones(id(4, 0), StreamId::MAX));
    }
}
