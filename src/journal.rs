//! The journal: one ordered stream of every write's effects across all
//! shards. AOF appends it; replication streams it.
//!
//! Design. Each shard appends to its own log; a consumer merges the logs.
//!
//! * A record is a stamp and the commands it propagates as (more than one:
//!   a MULTI ... EXEC block, applied atomically on replay).
//! * Stamps come from one clock every core reads, CLOCK_MONOTONIC in
//!   nanoseconds, made strictly increasing per shard: a record's stamp is
//!   `max(last + 1, now)`, taken under its shard's log lock as it is
//!   appended, after the write was applied and before it is acknowledged.
//! * Watermarks: under the same lock a consumer reads `max(last, now - 1)`;
//!   every record that shard appends later takes its stamp later, under the
//!   lock, so it is larger. The minimum over the shards is a watermark
//!   below which every record already is in some log, so the consumer
//!   emits all records up to it in stamp order. An idle shard needs no
//!   cron to advance it: its watermark is the clock.
//!
//! Invariants this gives:
//! * Real-time order: if write A was acknowledged before write B was sent,
//!   A's stamp was taken before B's, so A comes first, whatever shards
//!   they ran on.
//! * A key's writes are appended by its owner in the order they applied.
//! * A multi-shard command, EXEC or script is one record, stamped while it
//!   still holds every key it touched (so no other write on those keys
//!   can fall between its parts).
//!
//! Cost: nothing when no consumer is attached (one relaxed load per write
//! to find that out); otherwise an uncontended lock per record. No counter
//! is shared by the writes of different cores.
//!
//! Two consumers read it, each through a queue of its own in every shard
//! log and a `Merger` of its own: the AOF's writer and the replication
//! stream's pump. Only the AOF's has clients wait for it (durability).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One command as it propagates: its database and its RESP encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub db: usize,
    pub resp: Vec<u8>,
}

impl Op {
    pub fn new<'a>(db: usize, args: impl ExactSizeIterator<Item = &'a [u8]>) -> Op {
        let mut resp = Vec::with_capacity(16 + args.len() * 16);
        resp.push(b'*');
        resp.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
        resp.extend_from_slice(b"\r\n");
        for a in args {
            resp.push(b'$');
            resp.extend_from_slice(itoa::Buffer::new().format(a.len()).as_bytes());
            resp.extend_from_slice(b"\r\n");
            resp.extend_from_slice(a);
            resp.extend_from_slice(b"\r\n");
        }
        Op { db, resp }
    }

    /// `DEL key` (an expired or evicted key), or UNLINK when `lazy`.
    pub fn del(db: usize, key: &[u8], lazy: bool) -> Op {
        let name: &[u8] = if lazy { b"UNLINK" } else { b"DEL" };
        Op::new(db, [name, key].into_iter())
    }
}

#[derive(Debug)]
pub struct Record {
    pub stamp: u64,
    pub ops: Vec<Op>,
}

/// Who consumes a queue of the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Aof = 0,
    Replication = 1,
}

#[derive(Default)]
struct Log {
    last: u64,
    /// Per sink.
    records: [Vec<Record>; 2],
}

pub struct Journal {
    /// AOF writers attached.
    consumers: AtomicUsize,
    /// The replication stream records the journal (a master with a backlog).
    streaming: AtomicBool,
    /// Nothing is recorded while the dataset is reloaded from what the
    /// consumers already have.
    paused: AtomicBool,
    /// The pump sleeps here when it has nothing to do; appends wake it.
    pump_idle: Mutex<()>,
    pump_wake: Condvar,
    pump_sleeping: AtomicBool,
    logs: Box<[Mutex<Log>]>,
    epoch: Instant,
    /// The consumer sleeps here when it has nothing to do.
    idle: Mutex<()>,
    wake: Condvar,
    sleeping: AtomicBool,
    /// Every record with a stamp up to this is durable as the consumer's
    /// policy defines it (written, or written and fsynced).
    durable: AtomicU64,
    /// The highest stamp a client waits to see durable.
    wanted: AtomicU64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("consumers", &self.consumers).finish()
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    // A record is pushed whole or not at all: a poisoned log is intact.
    log.lock().unwrap_or_else(|p| p.into_inner())
}

impl Journal {
    pub fn new(shards: usize) -> Journal {
        Journal {
            consumers: AtomicUsize::new(0),
            streaming: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            pump_idle: Mutex::new(()),
            pump_wake: Condvar::new(),
            pump_sleeping: AtomicBool::new(false),
            logs: (0..shards).map(|_| Mutex::new(Log::default())).collect(),
            epoch: Instant::now(),
            idle: Mutex::new(()),
            wake: Condvar::new(),
            sleeping: AtomicBool::new(false),
            durable: AtomicU64::new(0),
            wanted: AtomicU64::new(0),
        }
    }

    /// Whether anything consumes the journal; writes record nothing
    /// otherwise.
    pub fn active(&self) -> bool {
        (self.consumers.load(Ordering::Relaxed) != 0 || self.streaming.load(Ordering::Relaxed))
            && !self.paused.load(Ordering::Relaxed)
    }

    /// Whether replies to writes wait for the AOF to have them.
    pub fn durability_active(&self) -> bool {
        self.consumers.load(Ordering::Relaxed) != 0 && !self.paused.load(Ordering::Relaxed)
    }

    /// Starts or stops recording for the replication stream.
    pub fn set_streaming(&self, on: bool) {
        self.streaming.store(on, Ordering::SeqCst);
    }

    pub fn attach(&self) {
        self.consumers.fetch_add(1, Ordering::SeqCst);
    }

    pub fn detach(&self) {
        self.consumers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Stops (or resumes) recording while the dataset is reloaded from
    /// what the consumer already has.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Nanoseconds on the clock every stamp comes from.
    pub fn clock(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Appends a record of `ops` from `shard`; returns its stamp.
    pub fn append(&self, shard: usize, ops: Vec<Op>) -> u64 {
        let aof = self.consumers.load(Ordering::Relaxed) != 0;
        let streaming = self.streaming.load(Ordering::Relaxed);
        let mut log = lock(&self.logs[shard]);
        let stamp = (log.last + 1).max(self.clock());
        log.last = stamp;
        match (aof, streaming) {
            (true, true) => {
                log.records[Sink::Replication as usize].push(Record { stamp, ops: ops.clone() });
                log.records[Sink::Aof as usize].push(Record { stamp, ops });
            }
            (true, false) => log.records[Sink::Aof as usize].push(Record { stamp, ops }),
            (false, _) => log.records[Sink::Replication as usize].push(Record { stamp, ops }),
        }
        drop(log);
        if streaming && self.pump_sleeping.load(Ordering::SeqCst) {
            let _guard = self.pump_idle.lock();
            self.pump_wake.notify_one();
        }
        stamp
    }

    /// The pump waits for an append, or `timeout`.
    pub fn pump_wait(&self, timeout: Duration) {
        let guard = self.pump_idle.lock().unwrap_or_else(|p| p.into_inner());
        self.pump_sleeping.store(true, Ordering::SeqCst);
        let pending = self.logs.iter().any(|l| !lock(l).records[Sink::Replication as usize].is_empty());
        if !pending {
            let _ = self.pump_wake.wait_timeout(guard, timeout);
        }
        self.pump_sleeping.store(false, Ordering::SeqCst);
    }

    /// A client waits until `stamp` is durable: the consumer must not
    /// sleep through it.
    pub fn want(&self, stamp: u64) {
        self.note_wanted(stamp);
        self.wake_consumer();
    }

    /// `want` without waking the consumer: the waiting shard runs the
    /// round itself before it sleeps.
    pub fn note_wanted(&self, stamp: u64) {
        self.wanted.fetch_max(stamp, Ordering::SeqCst);
    }

    /// Wakes the consumer if it sleeps.
    pub fn wake_consumer(&self) {
        if self.sleeping.load(Ordering::SeqCst) {
            let _guard = self.idle.lock();
            self.wake.notify_one();
        }
    }

    /// A new consumer starts from nothing durable.
    pub fn restart(&self) {
        self.durable.store(0, Ordering::SeqCst);
        self.wanted.store(0, Ordering::SeqCst);
    }

    /// Blocks the consumer until a client waits for durability or
    /// `timeout` passes. Appends do not wake it: the clients' waits do,
    /// once their whole round appended, so one write covers the round
    /// instead of its first record.
    pub fn wait(&self, timeout: Duration) {
        let guard = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        self.sleeping.store(true, Ordering::SeqCst);
        if self.wanted.load(Ordering::SeqCst) <= self.durable() {
            let _ = self.wake.wait_timeout(guard, timeout);
        }
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Every record stamped up to `stamp` is durable.
    pub fn set_durable(&self, stamp: u64) {
        self.durable.fetch_max(stamp, Ordering::SeqCst);
    }

    /// The highest stamp a client waits to see durable.
    pub fn wanted(&self) -> u64 {
        self.wanted.load(Ordering::SeqCst)
    }

    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::SeqCst)
    }
}

/// A consumer's merge of the shard logs into one stream.
pub struct Merger {
    sink: Sink,
    pending: Vec<VecDeque<Record>>,
}

impl Merger {
    pub fn new(journal: &Journal, sink: Sink) -> Merger {
        Merger { sink, pending: (0..journal.logs.len()).map(|_| VecDeque::new()).collect() }
    }

    /// Forgets what was collected and not emitted (the stream restarts).
    pub fn clear(&mut self, journal: &Journal) {
        for (log, pending) in journal.logs.iter().zip(&mut self.pending) {
            lock(log).records[self.sink as usize].clear();
            pending.clear();
        }
    }

    /// Whether nothing is left to emit: every record of this sink taken
    /// from the logs and emitted.
    pub fn drained(&self, journal: &Journal) -> bool {
        self.pending.iter().all(VecDeque::is_empty)
            && journal.logs.iter().all(|l| lock(l).records[self.sink as usize].is_empty())
    }

    /// Moves every record below the current watermark to `out`, in stamp
    /// order; returns the watermark.
    pub fn collect(&mut self, journal: &Journal, out: &mut Vec<Record>) -> u64 {
        let mut watermark = u64::MAX;
        for (log, pending) in journal.logs.iter().zip(&mut self.pending) {
            let mut log = lock(log);
            pending.extend(log.records[self.sink as usize].drain(..));
            watermark = watermark.min(log.last.max(journal.clock().saturating_sub(1)));
        }
        loop {
            let next = self
                .pending
                .iter_mut()
                .filter_map(|p| p.front().map(|r| r.stamp).filter(|&s| s <= watermark).map(|s| (s, p)))
                .min_by_key(|(s, _)| *s);
            match next {
                Some((_, p)) => out.extend(p.pop_front()),
                None => return watermark,
            }
        }
    }
}

/// Writes records as Redis's command stream: SELECT when the database
/// changes, a block of several commands inside MULTI ... EXEC.
pub struct Encoder {
    db: Option<usize>,
}

impl Encoder {
    /// An encoder whose stream has selected no database yet.
    pub fn new() -> Encoder {
        Encoder { db: None }
    }

    fn select(&mut self, db: usize, out: &mut Vec<u8>) {
        if self.db != Some(db) {
            let n = itoa::Buffer::new().format(db).to_string();
            out.extend_from_slice(&Op::new(db, [&b"SELECT"[..], n.as_bytes()].into_iter()).resp);
            self.db = Some(db);
        }
    }

    pub fn encode(&mut self, record: &Record, out: &mut Vec<u8>) {
        let block = record.ops.len() > 1;
        if block {
            self.select(record.ops[0].db, out);
            out.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        }
        for op in &record.ops {
            self.select(op.db, out);
            out.extend_from_slice(&op.resp);
        }
        if block {
            out.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(db: usize, words: &[&str]) -> Op {
        Op::new(db, words.iter().map(|w| w.as_bytes()))
    }

    #[test]
    fn stamps_increase_per_shard_and_merge_in_order() {
        let j = Journal::new(3);
        j.attach();
        let a = j.append(2, vec![op(0, &["SET", "a", "1"])]);
        let b = j.append(0, vec![op(0, &["SET", "b", "1"])]);
        let c = j.append(2, vec![op(1, &["SET", "c", "1"])]);
        assert!(a < b && b < c);
        let mut m = Merger::new(&j, Sink::Aof);
        let mut out = Vec::new();
        let w = m.collect(&j, &mut out);
        assert!(w >= c);
        assert_eq!(out.iter().map(|r| r.stamp).collect::<Vec<_>>(), vec![a, b, c]);
        // Later records stamp above the watermark.
        assert!(j.append(1, vec![op(0, &["DEL", "a"])]) > w);
    }

    #[test]
    fn encodes_selects_and_blocks() {
        let mut e = Encoder::new();
        let mut out = Vec::new();
        e.encode(&Record { stamp: 1, ops: vec![op(0, &["SET", "a", "1"])] }, &mut out);
        e.encode(&Record { stamp: 2, ops: vec![op(0, &["SET", "b", "1"]), op(3, &["DEL", "c"])] }, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n\
             *1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n1\r\n\
             *2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$1\r\nc\r\n*1\r\n$4\r\nEXEC\r\n"
        );
    }
}
