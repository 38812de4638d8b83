//! A point-in-time image of one shard's keyspace, taken without fork and
//! without stopping the shard, as AOF commands (a rewrite's base) or as
//! the keys of an RDB file (BGSAVE; full resync will share it).
//!
//! The cut is an instant when every shard is held (see
//! `server::transaction::Exclusive`), so it is one journal position for
//! all of them. From then on each shard serializes its slots in order,
//! a chunk between requests. Invariant: every key is serialized with the
//! value it had at the cut, exactly once:
//! * slots before the cursor are done;
//! * a write to a key at or past the cursor first serializes the key's
//!   current (cut-time) value and marks its entry as in the snapshot
//!   (`Db::mark_snapped`); a key created after the cut is born marked;
//!   the cursor's pass skips marked entries and marks the rest;
//! * keys that expire or are evicted after the cut need nothing: their
//!   DEL is in the journal after the cut, which replays after the image.
//!
//! Memory: one bit per entry, and the output is written out in chunks.

use super::slots::SLOTS;
use super::{Stream, Value};
use crate::journal::Op;

/// Elements per command when a big collection is written as several
/// (Redis's AOF_REWRITE_ITEMS_PER_CMD).
const ITEMS_PER_COMMAND: usize = 64;

/// What an image is written as.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// Commands that recreate each key, as Redis's AOF rewrite writes.
    Aof,
    /// RDB key entries (the file's header and footer are the caller's).
    Rdb(crate::rdb::write::Options),
}

#[derive(Debug)]
pub struct Snapshot {
    format: Format,
    /// This shard's slots are `shard, shard + shards, ...`.
    shard: usize,
    shards: usize,
    /// The next (database, slot) to serialize.
    db: usize,
    slot: usize,
    /// Serialized commands not yet taken by the caller.
    pub out: Vec<u8>,
    /// The database the output last selected.
    selected: Option<usize>,
    pub keys: u64,
    /// Bytes serialized early because a write was about to change them
    /// (what a forked child's copy-on-write would have copied).
    pub copied: u64,
}

impl Snapshot {
    /// A snapshot of `dbs` as they are now.
    pub fn new(dbs: &mut [super::Db], shard: usize, shards: usize, format: Format) -> Snapshot {
        dbs.iter_mut().for_each(super::Db::begin_snapshot);
        Snapshot { format, shard, shards, db: 0, slot: shard, out: Vec::new(), selected: None, keys: 0, copied: 0 }
    }

    pub fn is_rdb(&self) -> bool {
        matches!(self.format, Format::Rdb(_))
    }

    pub fn finished(&self, databases: usize) -> bool {
        self.db >= databases
    }

    fn before_cursor(&self, db: usize, slot: usize) -> bool {
        db < self.db || (db == self.db && slot < self.slot)
    }

    /// Called before `key` of `db` changes: keeps its cut-time value.
    pub fn preserve(&mut self, dbs: &mut [super::Db], db: usize, key: &[u8], now_ms: i64) {
        let slot = super::slots::key_slot(key);
        if self.before_cursor(db, slot) || dbs[db].peek(key).is_none_or(|e| dbs[db].is_snapped(e)) {
            return;
        }
        if let Some((e, ttl)) = dbs[db].live_value(key, now_ms) {
            let before = self.out.len();
            self.write_key(db, e, ttl, now_ms);
            self.copied += (self.out.len() - before) as u64;
        }
        dbs[db].mark_snapped(key);
    }

    /// Takes what was serialized. `self_contained`: the next output
    /// selects its database again, so outputs of several shards can be
    /// interleaved at these boundaries (a streamed image).
    pub fn take_out(&mut self, self_contained: bool) -> Vec<u8> {
        if self_contained {
            self.selected = None;
        }
        std::mem::take(&mut self.out)
    }

    /// Serializes slots until the output holds about `budget` bytes or
    /// the shard is done.
    pub fn step(&mut self, dbs: &mut [super::Db], budget: usize, now_ms: i64) {
        while self.db < dbs.len() && self.out.len() < budget {
            let (db, slot) = (self.db, self.slot);
            // An RDB keeps keys whose time has passed (a loader drops them
            // and counts them); the AOF leaves them out, as Redis's do.
            let rdb = matches!(self.format, Format::Rdb(_));
            for e in dbs[db].slot_entries(slot) {
                if (rdb || dbs[db].is_live(e, now_ms)) && !dbs[db].is_snapped(e) {
                    self.write_key(db, e, dbs[db].expire_of(e.key()), now_ms);
                }
            }
            dbs[db].mark_slot_snapped(slot);
            self.advance();
        }
    }

    /// Stops before the end: marks every entry the pass has not reached,
    /// as the next snapshot expects to find them.
    pub fn abandon(mut self, dbs: &mut [super::Db]) {
        while self.db < dbs.len() {
            dbs[self.db].mark_slot_snapped(self.slot);
            self.advance();
        }
    }

    fn advance(&mut self) {
        self.slot += self.shards;
        if self.slot >= SLOTS {
            self.slot = self.shard;
            self.db += 1;
        }
    }

    fn command<'a>(&mut self, db: usize, args: impl ExactSizeIterator<Item = &'a [u8]>) {
        if self.selected != Some(db) {
            let n = db.to_string();
            self.out.extend_from_slice(&Op::new(db, [&b"SELECT"[..], n.as_bytes()].into_iter()).resp);
            self.selected = Some(db);
        }
        self.out.extend_from_slice(&Op::new(db, args).resp);
    }

    /// One key in the image's format: for the AOF, the commands that
    /// recreate it, as Redis's AOF rewrite writes them.
    fn write_key(&mut self, db: usize, e: &super::db::Entry, ttl: Option<i64>, now_ms: i64) {
        self.keys += 1;
        let (key, value) = (e.key(), &e.value);
        if let Format::Rdb(opts) = self.format {
            if self.selected != Some(db) {
                crate::rdb::write::select_db(&mut self.out, db);
                self.selected = Some(db);
            }
            crate::rdb::write::entry(&mut self.out, key, value, ttl, e.usage(now_ms), opts);
            return;
        }
        match value {
            Value::Str(s) => self.command(db, [&b"SET"[..], key, &s.as_bytes()].into_iter()),
            Value::List(l) => {
                let items: Vec<&[u8]> = l.iter().collect();
                self.batches(db, b"RPUSH", key, items.chunks(ITEMS_PER_COMMAND).map(|c| c.to_vec()));
            }
            Value::Set(s) => {
                let members = s.members();
                let items: Vec<&[u8]> = members.iter().map(|m| &m[..]).collect();
                self.batches(db, b"SADD", key, items.chunks(ITEMS_PER_COMMAND).map(|c| c.to_vec()));
            }
            Value::Hash(h) => {
                let pairs: Vec<(&[u8], &[u8])> = h.pairs().collect();
                let batches = pairs.chunks(ITEMS_PER_COMMAND).map(|c| c.iter().flat_map(|(f, v)| [*f, *v]).collect());
                self.batches(db, b"HMSET", key, batches);
            }
            Value::ZSet(z) => {
                let items: Vec<(String, &[u8])> =
                    z.iter_from(0).map(|(s, m)| (crate::protocol::reply::format_double(s), m)).collect();
                let batches: Vec<Vec<&[u8]>> = items
                    .chunks(ITEMS_PER_COMMAND)
                    .map(|c| c.iter().flat_map(|(s, m)| [s.as_bytes(), *m]).collect())
                    .collect();
                self.batches(db, b"ZADD", key, batches.into_iter());
            }
            Value::Stream(st) => self.write_stream(db, key, st),
        }
        if let Some(at) = ttl {
            let at = at.to_string();
            self.command(db, [&b"PEXPIREAT"[..], key, at.as_bytes()].into_iter());
        }
    }

    /// A stream as Redis's rewriteStreamObject writes it: its entries
    /// (an empty stream as an XADD trimmed to nothing), XSETID with its
    /// counters, then each group with its pending entries claimed back by
    /// their consumers.
    fn write_stream(&mut self, db: usize, key: &[u8], st: &Stream) {
        if st.is_empty() {
            self.command(db, [&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"].into_iter());
        }
        st.for_each(|id, pairs| {
            let id = id.to_string();
            let args: Vec<&[u8]> = [&b"XADD"[..], key, id.as_bytes()]
                .into_iter()
                .chain(pairs.iter().flat_map(|(f, v)| [*f, *v]))
                .collect();
            self.command(db, args.into_iter());
        });
        let (last, added, max_deleted) =
            (st.last_id.to_string(), st.entries_added.to_string(), st.max_deleted_id.to_string());
        self.command(
            db,
            [
                &b"XSETID"[..],
                key,
                last.as_bytes(),
                b"ENTRIESADDED",
                added.as_bytes(),
                b"MAXDELETEDID",
                max_deleted.as_bytes(),
            ]
            .into_iter(),
        );
        for (name, group) in &st.groups {
            let (last, read) = (group.last_id.to_string(), group.entries_read.map_or(-1, |r| r as i64).to_string());
            self.command(
                db,
                [&b"XGROUP"[..], b"CREATE", key, name, last.as_bytes(), b"ENTRIESREAD", read.as_bytes()].into_iter(),
            );
            for (consumer, c) in &group.consumers {
                if c.pel.is_empty() {
                    self.command(db, [&b"XGROUP"[..], b"CREATECONSUMER", key, name, consumer].into_iter());
                }
                for id in &c.pel {
                    let Some(p) = group.pel.get(id) else { continue };
                    let (id, time, count) = (id.to_string(), p.delivery_time.to_string(), p.delivery_count.to_string());
                    let args = [&b"XCLAIM"[..], key, name, consumer, b"0", id.as_bytes(), b"TIME", time.as_bytes()];
                    let tail = [&b"RETRYCOUNT"[..], count.as_bytes(), b"JUSTID", b"FORCE"];
                    self.command(db, args.into_iter().chain(tail).collect::<Vec<_>>().into_iter());
                }
            }
        }
    }

    fn batches<'a>(&mut self, db: usize, name: &[u8], key: &[u8], batches: impl Iterator<Item = Vec<&'a [u8]>>) {
        for batch in batches {
            let args: Vec<&[u8]> = [name, key].into_iter().chain(batch).collect();
            self.command(db, args.into_iter());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Keyspace, Str};

    fn set(ks: &mut Keyspace, key: &str, value: &str) {
        ks.preserve(0, key.as_bytes(), 0);
        ks.dbs[0].insert(key.as_bytes(), Value::Str(Str::from_bytes(value.as_bytes())), 0, 0);
    }

    fn del(ks: &mut Keyspace, key: &str) {
        ks.preserve(0, key.as_bytes(), 0);
        ks.dbs[0].remove(key.as_bytes(), 0);
    }

    /// Runs the snapshot in progress to its end, `during` after its first
    /// step; returns the image's SET commands as (key, value), sorted.
    fn image(ks: &mut Keyspace, during: impl FnOnce(&mut Keyspace)) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut during = Some(during);
        while let Some(snap) = &mut ks.snapshot {
            snap.step(&mut ks.dbs, 1, 0);
            out.append(&mut snap.out);
            if snap.finished(ks.dbs.len()) {
                ks.snapshot = None;
            }
            if let Some(f) = during.take() {
                f(ks);
            }
        }
        let text = String::from_utf8(out).unwrap();
        let words: Vec<&str> = text.split("\r\n").filter(|w| !w.starts_with(['*', '$']) && !w.is_empty()).collect();
        let mut sets: Vec<(String, String)> =
            words.windows(3).filter(|w| w[0] == "SET").map(|w| (w[1].to_string(), w[2].to_string())).collect();
        sets.sort();
        sets
    }

    fn pairs(of: &[(&str, &str)]) -> Vec<(String, String)> {
        of.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_key_once_with_its_cut_time_value_snapshot_after_snapshot() {
        let mut ks = Keyspace::new(1);
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        for k in &keys {
            set(&mut ks, k, "cut");
        }
        let all_cut: Vec<(String, String)> = {
            let mut v: Vec<_> = keys.iter().map(|k| (k.clone(), "cut".to_string())).collect();
            v.sort();
            v
        };
        for round in 0..3 {
            ks.start_snapshot(0, 1, Format::Aof);
            let got = image(&mut ks, |ks| {
                for k in &keys {
                    set(ks, k, "later");
                }
                del(ks, "k1");
                set(ks, "k1", "again");
                set(ks, "new", "later");
                del(ks, "new");
                set(ks, "new", "x");
            });
            assert_eq!(got, all_cut, "round {round}");
            // Back to the starting dataset for the next round.
            del(&mut ks, "new");
            for k in &keys {
                set(&mut ks, k, "cut");
            }
        }
        // A snapshot abandoned halfway leaves the next one whole.
        ks.start_snapshot(0, 1, Format::Aof);
        if let Some(snap) = &mut ks.snapshot {
            snap.step(&mut ks.dbs, 1, 0);
        }
        set(&mut ks, "k7", "cut");
        ks.stop_snapshot();
        ks.start_snapshot(0, 1, Format::Aof);
        assert_eq!(image(&mut ks, |_| ()), all_cut);
        set(&mut ks, "only", "v");
        ks.start_snapshot(0, 1, Format::Aof);
        let mut with_new = all_cut.clone();
        with_new.extend(pairs(&[("only", "v")]));
        with_new.sort();
        assert_eq!(image(&mut ks, |_| ()), with_new);
    }
}
