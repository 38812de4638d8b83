//! Consumer groups: a read position, the entries delivered but not yet
//! acknowledged (the PEL) and the consumers that hold them.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::StreamId;

#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub consumer: Bytes,
    /// When it was last delivered (ms).
    pub delivery_time: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    /// When it last read or claimed (ms).
    pub seen_time: i64,
    pub pel: BTreeSet<StreamId>,
}

impl Consumer {
    pub fn new(now: i64) -> Consumer {
        Consumer { seen_time: now, pel: BTreeSet::new() }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub last_id: StreamId,
    /// Entries the group has read, None when it cannot be known (Redis's
    /// SCG_INVALID_ENTRIES_READ).
    pub entries_read: Option<u64>,
    pub pel: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: Option<u64>) -> Group {
        Group { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// The consumer `name`, created if missing; whether it was created.
    pub fn consumer(&mut self, name: &[u8], now: i64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        if created {
            self.consumers.insert(Bytes::copy_from_slice(name), Consumer::new(now));
        }
        (self.consumers.get_mut(name).expect("inserted above"), created)
    }

    /// Records `id` as delivered to `consumer` now (a new delivery or a
    /// claim): it moves from any other consumer's PEL.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now: i64, count: u64) {
        let name = Bytes::copy_from_slice(consumer);
        if let Some(old) = self.pel.insert(id, Pending { consumer: name, delivery_time: now, delivery_count: count })
            && old.consumer != consumer
            && let Some(c) = self.consumers.get_mut(&old.consumer)
        {
            c.pel.remove(&id);
        }
        self.consumer(consumer, now).0.pel.insert(id);
    }

    /// Acknowledges `id`; whether it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(p) = self.pel.remove(&id) else { return false };
        if let Some(c) = self.consumers.get_mut(&p.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Removes a consumer; the number of entries it had pending (they
    /// leave the group's PEL too).
    pub fn remove_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        c.pel.iter().for_each(|id| {
            self.pel.remove(id);
        });
        Some(c.pel.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_move_entries_between_consumers() {
        let id = StreamId { ms: 1, seq: 0 };
        let mut g = Group::new(StreamId::MIN, Some(0));
        g.deliver(id, b"alice", 10, 1);
        g.deliver(id, b"bob", 20, 2);
        assert!(g.consumers[&b"alice"[..]].pel.is_empty());
        assert!(g.consumers[&b"bob"[..]].pel.contains(&id));
        assert_eq!(g.pel[&id].delivery_count, 2);
        assert_eq!(g.remove_consumer(b"bob"), Some(1));
        assert!(g.pel.is_empty() && !g.ack(id));
    }
}
