//! Data owned by one shard: its databases and their counters.

pub mod arena;
pub mod db;
pub mod digest;
pub mod encodings;
pub mod events;
pub mod expire;
pub mod geohash;
pub mod hash;
pub mod hll;
pub mod list;
pub mod memory;
pub mod set;
pub mod slot_table;
pub mod slots;
pub mod small_bytes;
pub mod snapshot;
pub mod stream;
pub mod table;
pub mod value;
pub mod zset;

pub use db::{Access, Db, Entry, Logged, Usage};
pub use small_bytes::SmallBytes;

/// Keys are short byte strings, inline up to 22 bytes.
pub type Key = SmallBytes;
pub use hash::{Hash, PackLimits};
pub use list::{End, List, ListLimits};
pub use set::{Set, SetLimits};
pub use stream::Stream;
pub use value::{Str, Value};
pub use zset::{ZLimits, ZSet};

/// Something that happened to a key, for keyspace notifications: the
/// class bit (`events`), the event name, database and key.
#[derive(Clone, Debug)]
pub struct KeyEvent {
    pub class: u32,
    pub name: &'static str,
    pub db: usize,
    pub key: Key,
}

/// Everything a shard stores: one `Db` per logical database.
#[derive(Debug)]
pub struct Keyspace {
    pub dbs: Vec<Db>,
    pub hits: u64,
    pub misses: u64,
    /// Writes since start (INFO's rdb_changes_since_last_save).
    pub dirty: u64,
    /// Notification classes wanted now; events of other classes are not
    /// recorded.
    pub notify: u32,
    /// Events recorded while a command ran (or expiry worked), in order.
    pub events: Vec<KeyEvent>,
    /// What the running write did, as its body says it.
    pub effects: Effects,
    /// Whether the journal records writes now.
    pub journal: bool,
    /// Expired keys propagate as UNLINK (lazyfree-lazy-expire).
    unlink_expired: bool,
    /// The image being taken of this shard, if any.
    pub snapshot: Option<Box<snapshot::Snapshot>>,
    loading: bool,
    keep_expired: bool,
}

/// What a write command's body reports having done; dispatch applies it
/// (dirty counter, WATCH, blocked clients, the journal) once, for every
/// path a write can take.
#[derive(Debug, Default)]
pub struct Effects {
    /// Changes made, as Redis counts them for `dirty`; None when the body
    /// did not count (then a write that succeeded made one).
    pub changes: Option<u64>,
    /// What it propagates as when that is not its own arguments (Redis's
    /// deterministic rewrites); Some(empty): nothing.
    pub rewrite: Option<Vec<crate::journal::Op>>,
    /// It modified the key it ran on (a step of a coordinated write).
    pub modified: bool,
}

/// What one step of a command did on a shard (its changes, propagated
/// form, DELs of keys that expired on the way and keyspace events), taken
/// from the shard's keyspace for the command's coordinator, which applies
/// the steps of the whole command at once.
#[derive(Debug, Default)]
pub struct Step {
    pub effects: Effects,
    pub expired: Vec<crate::journal::Op>,
    pub events: Vec<KeyEvent>,
    /// The keys the steps modified, for their watchers and blocked
    /// clients.
    pub modified: Vec<(usize, Key)>,
}

impl Step {
    /// Appends a later step's record.
    pub fn add(&mut self, later: Step) {
        if let Some(n) = later.effects.changes {
            *self.effects.changes.get_or_insert(0) += n;
        }
        if let Some(ops) = later.effects.rewrite {
            self.effects.rewrite.get_or_insert_with(Vec::new).extend(ops);
        }
        self.expired.extend(later.expired);
        self.events.extend(later.events);
        self.modified.extend(later.modified);
    }
}

impl Keyspace {
    /// Takes what the step that just ran here did.
    pub fn take_step(&mut self) -> Step {
        let effects = std::mem::take(&mut self.effects);
        let expired = if self.journal { self.take_expired_ops() } else { Vec::new() };
        let events = if self.notify != 0 { self.take_events() } else { Vec::new() };
        Step { effects, expired, events, modified: Vec::new() }
    }

    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases).map(|_| Db::default()).collect(),
            hits: 0,
            misses: 0,
            dirty: 0,
            notify: 0,
            events: Vec::new(),
            effects: Effects::default(),
            journal: false,
            unlink_expired: false,
            snapshot: None,
            loading: false,
            keep_expired: false,
        }
    }

    /// Serializes everything a snapshot in progress has left (before a
    /// flush or a swap of databases changes every key at once).
    pub fn finish_snapshot(&mut self, now_ms: i64) {
        if let Some(snap) = &mut self.snapshot {
            snap.step(&mut self.dbs, usize::MAX, now_ms);
        }
    }

    /// Starts an image of this shard as it is now.
    pub fn start_snapshot(&mut self, shard: usize, shards: usize, format: snapshot::Format) {
        self.stop_snapshot();
        self.snapshot = Some(Box::new(snapshot::Snapshot::new(&mut self.dbs, shard, shards, format)));
    }

    /// Drops the image in progress, if any, unfinished.
    pub fn stop_snapshot(&mut self) {
        if let Some(snap) = self.snapshot.take() {
            snap.abandon(&mut self.dbs);
        }
    }

    /// Stops the image in progress if it is an RDB save's (an AOF
    /// rewrite's is left to finish).
    pub fn stop_rdb_snapshot(&mut self) {
        if self.snapshot.as_ref().is_some_and(|s| s.is_rdb()) {
            self.stop_snapshot();
        }
    }

    /// Called before `key` of `db` is written: a snapshot in progress
    /// keeps its current value first.
    pub fn preserve(&mut self, db: usize, key: &[u8], now_ms: i64) {
        if let Some(snap) = &mut self.snapshot {
            snap.preserve(&mut self.dbs, db, key, now_ms);
        }
    }

    /// Loading a dataset: nothing expires meanwhile (on every database).
    pub fn set_loading(&mut self, loading: bool) {
        if self.loading != loading {
            self.loading = loading;
            self.dbs.iter_mut().for_each(|d| d.set_loading(loading));
        }
    }

    /// While clients are paused, expired keys are hidden, not deleted.
    pub fn set_keep_expired(&mut self, keep: bool) {
        if self.keep_expired != keep {
            self.keep_expired = keep;
            self.dbs.iter_mut().for_each(|d| d.set_keep_expired(keep));
        }
    }

    /// Turns the record of changed keys (for the tracking table) on or off.
    pub fn set_tracking(&mut self, on: bool) {
        if self.dbs.first().is_some_and(|d| d.tracks() != on) {
            self.dbs.iter_mut().for_each(|d| d.set_tracking(on));
        }
    }

    /// The keys changed in any database since the last call (true: by
    /// expiry), in order per database.
    pub fn take_changed(&mut self) -> Vec<(Key, bool)> {
        let mut changed = Vec::new();
        if self.dbs.first().is_some_and(Db::tracks) {
            self.dbs.iter_mut().for_each(|d| changed.extend(d.take_changed()));
        }
        changed
    }

    /// Turns journalling on or off: expired keys are then kept to
    /// propagate as DELs (UNLINKs when `unlink_expired`).
    pub fn set_journal(&mut self, on: bool, unlink_expired: bool) {
        self.unlink_expired = unlink_expired;
        if self.journal != on {
            self.journal = on;
            self.dbs.iter_mut().for_each(|d| d.keep_dropped(on));
        }
    }

    /// DELs for the keys that expired since the last call (lazily or
    /// actively), in order; UNLINKs under `lazyfree-lazy-expire`.
    pub fn take_expired_ops(&mut self) -> Vec<crate::journal::Op> {
        let mut ops = Vec::new();
        let lazy = self.unlink_expired;
        for (db, d) in self.dbs.iter_mut().enumerate() {
            ops.extend(d.take_dropped().iter().map(|k| crate::journal::Op::del(db, k, lazy)));
        }
        ops
    }

    /// Records `name` on `key` if its class is wanted, after the keys the
    /// databases saw expire or get created so far (events stay in the
    /// order things happened).
    pub fn note(&mut self, class: u32, name: &'static str, db: usize, key: &[u8]) {
        if self.notify & class != 0 {
            self.drain_logs();
            self.events.push(KeyEvent { class, name, db, key: key.into() });
        }
    }

    /// Moves the databases' logs of expired and created keys to `events`.
    fn drain_logs(&mut self) {
        use events::{EXPIRED, NEW};
        for (db, d) in self.dbs.iter_mut().enumerate() {
            self.events.extend(d.take_log().into_iter().map(|(what, key)| match what {
                Logged::Expired => KeyEvent { class: EXPIRED, name: "expired", db, key },
                Logged::New => KeyEvent { class: NEW, name: "new", db, key },
            }));
        }
    }

    /// Sets the wanted classes (the databases log expired and created
    /// keys if those are wanted).
    pub fn set_notify(&mut self, classes: u32) {
        use events::{EXPIRED, NEW};
        if self.notify != classes {
            self.notify = classes;
            self.dbs.iter_mut().for_each(|d| d.set_log(classes & EXPIRED != 0, classes & NEW != 0));
        }
    }

    /// The events recorded meanwhile, in order.
    pub fn take_events(&mut self) -> Vec<KeyEvent> {
        self.drain_logs();
        std::mem::take(&mut self.events)
    }

    pub fn expired(&self) -> u64 {
        self.dbs.iter().map(|d| d.expired).sum()
    }
}
