//! One logical database (SELECT n) on one shard.
//!
//! Entries live in an `Arena`; keys are indexed per hash slot: each slot
//! owned by the shard has its own small table of arena cells. That gives SCAN a cursor that survives rehashing (a cursor is
//! a slot position and a slot is always returned whole), and gives cluster
//! mode COUNTKEYSINSLOT / GETKEYSINSLOT and slot migration without a second
//! index. Keys with a TTL are also in `expires`, an index map to their
//! expiry that the active expiry cycle samples at random, as Redis samples
//! its expires dict; an entry only carries a bit saying it has one.

use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use indexmap::IndexMap;

use super::arena::Arena;
use super::slot_table::{SlotDir, SlotTable};
use super::slots::key_slot;
use super::value::Value;

use super::Key;

/// ahash seeded once per process: fast, and not predictable by clients
/// (hash flooding).
#[derive(Clone, Copy, Default, Debug)]
pub struct KeyHasher;

impl BuildHasher for KeyHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
        STATE.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

fn hash(key: &[u8]) -> u64 {
    KeyHasher.hash_one(key)
}

/// 56 bytes: the key and value inline, and one word of bookkeeping.
#[derive(Debug)]
pub struct Entry {
    key: Key,
    pub value: Value,
    /// How the key was used, as `access()` keeps it: under LRU its last
    /// access in seconds of the server clock (OBJECT IDLETIME; 30 bits,
    /// wrapping like Redis's 24-bit clock, only later); under LFU Redis's
    /// word, the minute the counter last decayed (16 bits) and the 8-bit
    /// logarithmic access counter (OBJECT FREQ). In the top bit whether
    /// the key has a TTL in `Db::expires`, in the next whether the
    /// snapshot in progress has it (see `Db::snapped`).
    access: u32,
}

const VOLATILE: u32 = 1 << 31;
const SNAPPED: u32 = 1 << 30;
/// The bits of `access` that hold the access word.
const WORD: u32 = !(VOLATILE | SNAPPED);

/// How entries record their use, following maxmemory-policy (one setting
/// for the process, as the policy is; switching leaves the old words to
/// be read the new way for a while, as in Redis).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The last access time; `in_rdb` under an LRU policy, whose RDB
    /// files carry each key's idle time.
    Lru { in_rdb: bool },
    /// Access frequency: lfu-log-factor and lfu-decay-time.
    Lfu { log_factor: u32, decay_minutes: u32 },
}

/// What an RDB file records of a key's use (Redis's IDLE and FREQ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    IdleSecs(u64),
    Freq(u8),
}

static ACCESS: AtomicU64 = AtomicU64::new(0);
const LFU: u64 = 1 << 63;

pub fn set_access(a: Access) {
    let word = match a {
        Access::Lru { in_rdb } => u64::from(in_rdb),
        Access::Lfu { log_factor, decay_minutes } => LFU | u64::from(decay_minutes) << 32 | u64::from(log_factor),
    };
    ACCESS.store(word, Ordering::Relaxed);
}

pub fn access() -> Access {
    let word = ACCESS.load(Ordering::Relaxed);
    if word & LFU == 0 {
        Access::Lru { in_rdb: word & 1 != 0 }
    } else {
        Access::Lfu { log_factor: word as u32, decay_minutes: ((word & !LFU) >> 32) as u32 }
    }
}

/// A new key's counter, so it is not evicted before it had a chance to
/// be used (Redis's LFU_INIT_VAL).
const LFU_INIT: u8 = 5;

fn lfu_minutes(now_ms: i64) -> u32 {
    (now_ms / 60_000) as u32 & 0xffff
}

fn lfu_word(now_ms: i64, counter: u8) -> u32 {
    lfu_minutes(now_ms) << 8 | u32::from(counter)
}

/// One access's increment: less likely the higher the counter already
/// is (Redis's LFULogIncr).
fn lfu_log_incr(counter: u8, log_factor: u32) -> u8 {
    if counter == u8::MAX {
        return counter;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT));
    let p = 1.0 / (base * f64::from(log_factor) + 1.0);
    if fastrand::f64() < p { counter + 1 } else { counter }
}

impl Entry {
    fn new(key: &[u8]) -> Entry {
        Entry { key: key.into(), value: Value::Str(super::Str::Int(0)), access: 0 }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// An access: the time under LRU, the counter under LFU.
    pub fn touch(&mut self, now_ms: i64) {
        let word = match access() {
            Access::Lru { .. } => lru_clock(now_ms),
            Access::Lfu { log_factor, decay_minutes } => {
                lfu_word(now_ms, lfu_log_incr(self.freq_with(now_ms, decay_minutes), log_factor))
            }
        };
        self.set_word(word);
    }

    /// A key created now.
    fn fresh(&mut self, now_ms: i64) {
        let word = match access() {
            Access::Lru { .. } => lru_clock(now_ms),
            Access::Lfu { .. } => lfu_word(now_ms, LFU_INIT),
        };
        self.set_word(word);
    }

    fn set_word(&mut self, word: u32) {
        self.access = (self.access & !WORD) | word;
    }

    /// Sets what an RDB file or RESTORE says of the key's use, where the
    /// policy keeps it (Redis's objectSetLRUOrLFU: FREQ under LFU, an
    /// idle time otherwise).
    pub fn set_usage(&mut self, usage: Usage, now_ms: i64) {
        match (access(), usage) {
            (Access::Lfu { .. }, Usage::Freq(f)) => self.set_word(lfu_word(now_ms, f)),
            (Access::Lru { .. }, Usage::IdleSecs(secs)) => {
                let at = lru_clock(now_ms).wrapping_sub(secs.min(u64::from(WORD)) as u32) & WORD;
                self.set_word(at);
            }
            _ => {}
        }
    }

    /// What an RDB file records of the key's use under the policy: its
    /// idle time under LRU policies, its frequency under LFU.
    pub fn usage(&self, now_ms: i64) -> Option<Usage> {
        match access() {
            Access::Lru { in_rdb: true } => Some(Usage::IdleSecs(self.idle_secs(now_ms))),
            Access::Lru { in_rdb: false } => None,
            Access::Lfu { decay_minutes, .. } => Some(Usage::Freq(self.freq_with(now_ms, decay_minutes))),
        }
    }

    pub fn idle_secs(&self, now_ms: i64) -> u64 {
        (lru_clock(now_ms).wrapping_sub(self.access) & WORD) as u64
    }

    /// The access counter after its decay (one per lfu-decay-time
    /// minutes since it last decayed; Redis's LFUDecrAndReturn).
    pub fn freq(&self, now_ms: i64) -> u8 {
        match access() {
            Access::Lfu { decay_minutes, .. } => self.freq_with(now_ms, decay_minutes),
            Access::Lru { .. } => 0,
        }
    }

    fn freq_with(&self, now_ms: i64, decay_minutes: u32) -> u8 {
        let counter = (self.access & 0xff) as u8;
        let last = (self.access >> 8) & 0xffff;
        let now = lfu_minutes(now_ms);
        let elapsed = if now >= last { now - last } else { 0xffff - last + now };
        let periods = elapsed.checked_div(decay_minutes).unwrap_or(0);
        counter.saturating_sub(periods.min(255) as u8)
    }

    fn volatile(&self) -> bool {
        self.access & VOLATILE != 0
    }

    fn snapped_bit(&self) -> bool {
        self.access & SNAPPED != 0
    }

    fn set_snapped_bit(&mut self, on: bool) {
        self.access = if on { self.access | SNAPPED } else { self.access & !SNAPPED };
    }

    fn set_volatile(&mut self, on: bool) {
        self.access = if on { self.access | VOLATILE } else { self.access & !VOLATILE };
    }

    #[cfg(test)]
    pub fn for_test(key: &[u8]) -> Entry {
        Entry::new(key)
    }
}

/// A key some clients WATCH: how many, and a version bumped whenever the
/// key changes (a write, a deletion by expiry, a flush, a swap).
#[derive(Debug, Default)]
struct Watch {
    watchers: u32,
    version: u64,
}

fn lru_clock(now_ms: i64) -> u32 {
    (now_ms / 1000) as u32 & WORD
}

#[derive(Default, Debug)]
pub struct Db {
    /// The entries.
    arena: Arena,
    /// The arena cells of each slot's keys.
    slots: SlotDir,
    len: usize,
    /// Keys with a TTL, and its absolute time in Unix milliseconds.
    expires: IndexMap<Key, i64, KeyHasher>,
    /// Keys removed because their TTL passed (lazily or actively).
    pub expired: u64,
    /// Keys under WATCH; empty unless some client is in a WATCH.
    watched: std::collections::HashMap<Key, Watch, KeyHasher>,
    /// Keys that expired or were created, in order, for keyspace
    /// notifications (only the kinds they want).
    log: Vec<(Logged, Key)>,
    log_expired: bool,
    log_new: bool,
    /// Keys that expired, while the journal wants them (each propagates
    /// as a DEL before the write that met it).
    dropped: Option<Vec<Key>>,
    /// A dataset is loading: nothing expires.
    loading: bool,
    /// Clients are paused: expired keys read as missing but stay, so the
    /// dataset (and what replicas would be told) holds still.
    keep_expired: bool,
    /// While the shard tracks keys for client-side caching: the keys
    /// changed since it last looked (true: removed by expiry), whose
    /// readers it invalidates.
    changed: Option<Vec<(Key, bool)>>,
    /// The value of an entry's SNAPPED bit that means the snapshot in
    /// progress has it (serialized, or created after the cut). Between
    /// snapshots every entry has it, so starting one flips the meaning
    /// instead of touching every entry; the snapshot's pass sets it again
    /// on every entry it goes by (all of the rest when it stops early).
    snapped: bool,
}

/// What happened to a key, in a database's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    Expired,
    New,
}

impl Db {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes spent indexing the keys and their TTLs, beside the entries
    /// (MEMORY STATS's overhead.hashtable.main and .expires).
    pub fn index_overhead(&self) -> (usize, usize) {
        // An IndexMap keeps each entry (hash, key, value) and a u64 index.
        let per_ttl = std::mem::size_of::<(u64, Key, i64)>() + std::mem::size_of::<u64>();
        (self.slots.index_bytes(), self.expires.capacity() * per_ttl)
    }

    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    fn table(&self, slot: usize) -> Option<&SlotTable> {
        self.slots.get(slot)
    }

    /// The live entry for `key`; an expired one is deleted on the way.
    pub fn get(&mut self, key: &[u8], now_ms: i64) -> Option<&mut Entry> {
        let slot = key_slot(key);
        let h = hash(key);
        let cell = self.slots.get(slot)?.find(&self.arena, h, key)?;
        if self.expired(self.arena.get(cell), now_ms) {
            if !self.keep_expired {
                self.remove_hashed(slot, h, key);
                self.reclaimed(key);
            }
            return None;
        }
        Some(self.arena.get_mut(cell))
    }

    /// Whether `e` (an entry of this database) has expired.
    fn expired(&self, e: &Entry, now_ms: i64) -> bool {
        e.volatile() && !self.loading && self.expires.get(e.key()).is_some_and(|&at| at <= now_ms)
    }

    /// While a dataset loads nothing expires (Redis's keyIsExpired): the
    /// file's own DELs say when keys went.
    pub fn set_loading(&mut self, loading: bool) {
        self.loading = loading;
    }

    pub fn set_keep_expired(&mut self, keep: bool) {
        self.keep_expired = keep;
    }

    /// Whether `e` (an entry of this database) has not expired.
    pub fn is_live(&self, e: &Entry, now_ms: i64) -> bool {
        !self.expired(e, now_ms)
    }

    /// The entry for `key`, expired or not.
    /// The entry as stored, even if logically expired (DEBUG OBJECT looks
    /// at the table itself, as Redis's does).
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        let cell = self.table(key_slot(key))?.find(&self.arena, hash(key), key)?;
        Some(self.arena.get(cell))
    }

    /// The entry and TTL of `key` if it is live, without reclaiming it.
    pub fn live_value(&self, key: &[u8], now_ms: i64) -> Option<(&Entry, Option<i64>)> {
        let e = self.peek(key).filter(|e| !self.expired(e, now_ms))?;
        Some((e, self.expire_of(key)))
    }

    pub fn contains(&mut self, key: &[u8], now_ms: i64) -> bool {
        self.get(key, now_ms).is_some()
    }

    /// Stores `value` under `key`, replacing any old value and its TTL
    /// (`expire_at` 0: persistent). Returns the entry.
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: i64, now_ms: i64) -> &mut Entry {
        let slot = key_slot(key);
        let h = hash(key);
        // Split borrows: the entry lives in the arena while the other
        // fields are kept in step.
        let Db {
            arena,
            slots,
            expires,
            len,
            expired,
            watched,
            log,
            log_expired,
            log_new,
            dropped,
            loading,
            snapped,
            ..
        } = self;
        let (existed, cell) = slots.get_or_create(slot).entry(arena, h, key, || Entry::new(key), |e| hash(&e.key));
        let e = arena.get_mut(cell);
        if !existed {
            e.set_snapped_bit(*snapped);
        }
        let had = existed && e.volatile();
        // An expired key is replaced as a new one: it expired first, as
        // Redis's write lookup reclaims it.
        let reclaimed = had && !*loading && expires.get(key).is_some_and(|&at| at <= now_ms);
        if reclaimed {
            *expired += 1;
            if let Some(w) = watched.get_mut(key) {
                w.version += 1;
            }
            if *log_expired {
                log.push((Logged::Expired, key.into()));
            }
            if let Some(dropped) = dropped {
                dropped.push(key.into());
            }
        }
        e.value = value;
        e.set_volatile(expire_at != 0);
        // An overwrite is an access of the key (Redis's write lookup; its
        // LFU counter carries over), a new key starts afresh.
        if existed && !reclaimed {
            e.touch(now_ms);
        } else {
            e.fresh(now_ms);
        }
        if expire_at != 0 {
            expires.insert(key.into(), expire_at);
        } else if had {
            expires.swap_remove(key);
        }
        if !existed {
            *len += 1;
        }
        if (!existed || reclaimed) && *log_new {
            log.push((Logged::New, key.into()));
        }
        e
    }

    /// Sets (`Some`) or clears (`None`) the TTL of an existing key.
    /// Returns false when the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<i64>) -> bool {
        let Some(cell) = self.table(key_slot(key)).and_then(|t| t.find(&self.arena, hash(key), key)) else {
            return false;
        };
        let e = self.arena.get_mut(cell);
        let had = e.volatile();
        e.set_volatile(expire_at.is_some());
        match expire_at {
            Some(at) => {
                self.expires.insert(key.into(), at);
            }
            None if had => {
                self.expires.swap_remove(key);
            }
            None => {}
        }
        true
    }

    /// Removes a live key and returns its entry (an expired key counts as
    /// missing and is reclaimed).
    pub fn remove(&mut self, key: &[u8], now_ms: i64) -> Option<Entry> {
        let dead = self.peek(key).is_some_and(|e| self.expired(e, now_ms));
        let e = self.remove_hashed(key_slot(key), hash(key), key)?;
        if dead {
            self.reclaimed(key);
            return None;
        }
        Some(e)
    }

    /// Removes a live key; returns its value and TTL (RENAME, MOVE).
    pub fn take(&mut self, key: &[u8], now_ms: i64) -> Option<(Value, Option<i64>)> {
        let ttl = self.expire_of(key);
        self.remove(key, now_ms).map(|e| (e.value, ttl))
    }

    fn remove_hashed(&mut self, slot: usize, h: u64, key: &[u8]) -> Option<Entry> {
        let table = self.slots.get_mut(slot)?;
        let cell = table.remove(&self.arena, h, key)?;
        let e = self.arena.take(cell);
        self.slots.release_if_empty(slot);
        self.len -= 1;
        if e.volatile() {
            self.expires.swap_remove(key);
        }
        Some(e)
    }

    /// FLUSHDB: drops every key; the watched ones that existed change.
    pub fn clear(&mut self, now_ms: i64) {
        self.touch_existing(None, now_ms);
        let watched = std::mem::take(&mut self.watched);
        let (log, log_expired, log_new) = (std::mem::take(&mut self.log), self.log_expired, self.log_new);
        let (dropped, loading) = (self.dropped.take(), self.loading);
        *self = Db {
            expired: self.expired,
            watched,
            log,
            log_expired,
            log_new,
            dropped,
            loading,
            keep_expired: self.keep_expired,
            changed: self.changed.take(),
            snapped: self.snapped,
            ..Db::default()
        };
    }

    /// After `key` was removed because its TTL passed.
    fn reclaimed(&mut self, key: &[u8]) {
        self.expired += 1;
        self.signal(key, true);
        if self.log_expired {
            self.log.push((Logged::Expired, key.into()));
        }
        if let Some(dropped) = &mut self.dropped {
            dropped.push(key.into());
        }
    }

    /// Whether expired keys are kept for the journal from now on.
    pub fn keep_dropped(&mut self, on: bool) {
        if on != self.dropped.is_some() {
            self.dropped = on.then(Vec::new);
        }
    }

    /// The keys that expired since the last call.
    pub fn take_dropped(&mut self) -> Vec<Key> {
        self.dropped.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Which kinds the log records from now on.
    pub fn set_log(&mut self, expired: bool, new: bool) {
        (self.log_expired, self.log_new) = (expired, new);
    }

    pub fn take_log(&mut self) -> Vec<(Logged, Key)> {
        std::mem::take(&mut self.log)
    }

    /// Registers a WATCH on `key`; returns its version.
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let w = self.watched.entry(key.into()).or_default();
        w.watchers += 1;
        w.version
    }

    /// Drops one WATCH on `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                self.watched.remove(key);
            }
        }
    }

    pub fn watch_version(&self, key: &[u8]) -> u64 {
        self.watched.get(key).map_or(0, |w| w.version)
    }

    pub fn has_watched(&self) -> bool {
        !self.watched.is_empty()
    }

    /// Marks `key` changed for its watchers and its trackers.
    pub fn touch(&mut self, key: &[u8]) {
        self.signal(key, false);
    }

    fn signal(&mut self, key: &[u8], expired: bool) {
        if let Some(w) = self.watched.get_mut(key) {
            w.version += 1;
        }
        if let Some(changed) = &mut self.changed {
            changed.push((key.into(), expired));
        }
    }

    /// Whether changed keys are recorded for the tracking table.
    pub fn tracks(&self) -> bool {
        self.changed.is_some()
    }

    pub fn set_tracking(&mut self, on: bool) {
        if on != self.changed.is_some() {
            self.changed = on.then(Vec::new);
        }
    }

    /// The keys changed since the last call (true: by expiry).
    pub fn take_changed(&mut self) -> Vec<(Key, bool)> {
        match &mut self.changed {
            Some(changed) if !changed.is_empty() => std::mem::take(changed),
            _ => Vec::new(),
        }
    }

    /// Marks changed the watched keys that exist here or in `other` (the
    /// database swapped in), as a flush or SWAPDB changes them.
    fn touch_existing(&mut self, other: Option<&mut Db>, now_ms: i64) {
        if self.watched.is_empty() {
            return;
        }
        let keys: Vec<Key> = self.watched.keys().cloned().collect();
        let mut other = other;
        for key in keys {
            let exists = self.contains(&key, now_ms) || other.as_mut().is_some_and(|o| o.contains(&key, now_ms));
            if exists && let Some(w) = self.watched.get_mut(&key) {
                // (A flush invalidates trackers all at once instead.)
                w.version += 1;
            }
        }
    }

    /// SWAPDB: exchanges the contents of two databases; the watchers stay
    /// with their database number and see their keys changed.
    pub fn swap(a: &mut Db, b: &mut Db, now_ms: i64) {
        a.touch_existing(Some(b), now_ms);
        b.touch_existing(Some(a), now_ms);
        std::mem::swap(a, b);
        std::mem::swap(&mut a.watched, &mut b.watched);
    }

    /// A snapshot starts: no entry is in it yet.
    pub fn begin_snapshot(&mut self) {
        self.snapped = !self.snapped;
    }

    /// Whether the snapshot in progress has `e`.
    pub fn is_snapped(&self, e: &Entry) -> bool {
        e.snapped_bit() == self.snapped
    }

    /// The snapshot in progress has `key` now (if it exists).
    pub fn mark_snapped(&mut self, key: &[u8]) {
        let snapped = self.snapped;
        if let Some(cell) = self.table(key_slot(key)).and_then(|t| t.find(&self.arena, hash(key), key)) {
            self.arena.get_mut(cell).set_snapped_bit(snapped);
        }
    }

    /// The snapshot in progress has every entry of `slot` now.
    pub fn mark_slot_snapped(&mut self, slot: usize) {
        let Db { arena, slots, snapped, .. } = self;
        if let Some(t) = slots.get(slot) {
            t.cells().for_each(|c| arena.get_mut(c).set_snapped_bit(*snapped));
        }
    }

    /// Entries of one slot (expired ones included; callers filter).
    pub fn slot_entries(&self, slot: usize) -> impl Iterator<Item = &Entry> {
        self.table(slot).into_iter().flat_map(|t| t.cells()).map(|c| self.arena.get(c))
    }

    /// A random live key, or None if the database is empty.
    pub fn random_key(&mut self, now_ms: i64) -> Option<Key> {
        // Bounded tries, like Redis, so a db full of expired keys cannot
        // loop forever: expired picks are reclaimed as we go.
        for _ in 0..100 {
            if self.len == 0 {
                return None;
            }
            let key = self.arena.get(self.arena.random()?).key.clone();
            if self.get(&key, now_ms).is_some() {
                return Some(key);
            }
        }
        None
    }

    /// A random key with a TTL (volatile-* eviction), expired or not.
    pub fn random_volatile_key(&self) -> Option<Key> {
        let (key, _) = self.expires.get_index(fastrand::usize(..self.expires.len().max(1)))?;
        Some(key.clone())
    }

    /// The absolute expiry of `key`, if it has one.
    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        self.expires.get(key).copied()
    }

    /// How long `key` has been idle, in milliseconds (second resolution).
    pub fn idle_ms(&self, key: &[u8], now_ms: i64) -> Option<i64> {
        Some(self.peek(key)?.idle_secs(now_ms) as i64 * 1000)
    }

    /// One round of active expiry: samples up to `samples` keys with a TTL
    /// and deletes the expired ones. Returns (sampled, expired).
    /// Keys `held` says are in use (by a script or EXEC running at its
    /// own instant) are left for later.
    pub fn expire_sample(&mut self, samples: usize, now_ms: i64, held: impl Fn(&[u8]) -> bool) -> (usize, usize) {
        let mut sampled = 0;
        let mut expired = 0;
        while sampled < samples && !self.expires.is_empty() {
            let Some((key, &at)) = self.expires.get_index(fastrand::usize(..self.expires.len())) else {
                break;
            };
            sampled += 1;
            if at <= now_ms && !held(key) {
                let key = key.clone();
                let (slot, h) = (key_slot(&key), hash(&key));
                self.remove_hashed(slot, h, &key);
                self.reclaimed(&key);
                expired += 1;
            }
        }
        (sampled, expired)
    }

    /// Sum of remaining TTLs of a sample, for INFO's avg_ttl.
    pub fn avg_ttl(&self, now_ms: i64) -> i64 {
        let n = self.expires.len().min(128);
        if n == 0 {
            return 0;
        }
        let mut sum = 0i64;
        for &at in self.expires.values().take(n) {
            sum += (at - now_ms).max(0);
        }
        sum / n as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::value::Str;

    fn s(v: &[u8]) -> Value {
        Value::Str(Str::from_bytes(v))
    }

    #[test]
    fn insert_get_remove() {
        let mut db = Db::default();
        db.insert(b"a", s(b"1"), 0, 1000);
        db.insert(b"b", s(b"2"), 0, 1000);
        db.insert(b"a", s(b"3"), 0, 1000);
        assert_eq!(db.len(), 2);
        assert_eq!(db.get(b"a", 1000).unwrap().value, s(b"3"));
        assert!(db.remove(b"a", 1000).is_some());
        assert!(db.get(b"a", 1000).is_none());
        assert_eq!(db.len(), 1);
    }

    #[test]
    fn lazy_and_active_expiry() {
        let mut db = Db::default();
        db.insert(b"t", s(b"v"), 2000, 1000);
        assert_eq!(db.expires_len(), 1);
        assert!(db.get(b"t", 1999).is_some());
        assert!(db.get(b"t", 2000).is_none());
        assert_eq!((db.len(), db.expires_len(), db.expired), (0, 0, 1));

        for i in 0..100 {
            db.insert(format!("k{i}").as_bytes(), s(b"v"), if i % 2 == 0 { 1500 } else { 0 }, 1000);
        }
        assert_eq!(db.expires_len(), 50);
        let mut total = 0;
        while db.expires_len() > 0 {
            total += db.expire_sample(20, 5000, |_| false).1;
        }
        assert_eq!((total, db.len()), (50, 50));
    }

    #[test]
    fn writing_over_an_expired_key_reclaims_it_first() {
        let mut db = Db::default();
        db.set_log(true, true);
        db.insert(b"k", s(b"old"), 1500, 1000);
        db.insert(b"k", s(b"new"), 0, 2000);
        assert_eq!((db.len(), db.expires_len(), db.expired), (1, 0, 1));
        let log: Vec<(Logged, Vec<u8>)> = db.take_log().into_iter().map(|(l, k)| (l, k.to_vec())).collect();
        let k = b"k".to_vec();
        assert_eq!(log, vec![(Logged::New, k.clone()), (Logged::Expired, k.clone()), (Logged::New, k)]);
        // A live key overwritten is neither.
        db.insert(b"k", s(b"again"), 0, 3000);
        assert!(db.take_log().is_empty());
    }

    #[test]
    fn ttl_follows_overwrites() {
        let mut db = Db::default();
        db.insert(b"k", s(b"v"), 9000, 1000);
        db.insert(b"k", s(b"w"), 0, 1000);
        assert_eq!(db.expires_len(), 0);
        assert!(db.set_expire(b"k", Some(5000)));
        assert_eq!(db.expire_of(b"k"), Some(5000));
        assert!(db.set_expire(b"k", None));
        assert_eq!(db.expires_len(), 0);
        assert!(!db.set_expire(b"missing", None));
    }

    #[test]
    fn slots_group_keys() {
        let mut db = Db::default();
        db.insert(b"{x}1", s(b"v"), 0, 0);
        db.insert(b"{x}2", s(b"v"), 0, 0);
        assert_eq!(db.slot_entries(key_slot(b"x")).count(), 2);
        assert!(db.random_key(0).is_some());
        // One slot past the vector's limit: it becomes a hash table and
        // keeps every key reachable.
        for i in 0..300 {
            db.insert(format!("{{x}}k{i}").as_bytes(), s(b"v"), 0, 0);
        }
        assert_eq!(db.slot_entries(key_slot(b"x")).count(), 302);
        for i in (0..300).step_by(7) {
            assert!(db.get(format!("{{x}}k{i}").as_bytes(), 0).is_some());
            assert!(db.remove(format!("{{x}}k{i}").as_bytes(), 0).is_some());
        }
        assert_eq!(db.len(), 302 - 43);
    }
}
