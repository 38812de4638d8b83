//! Client-side caching: CLIENT TRACKING's tables and invalidations.
//!
//! The tracking table is split by key owner: each shard remembers, for
//! its own keys, which clients read them (the client's id and the shard of
//! its connection). When a key changes, its owner forgets it and posts an
//! invalidation to each reader's shard, which checks the reader's mode
//! (still on, NOLOOP, BCAST) and pushes the message to it, or to the
//! client it redirects to. Posts from one shard to another arrive in
//! order, so a writer's reply, which the owner posts after, never
//! overtakes the invalidations its write caused.
//!
//! A message caused by the reader's own command follows that command's
//! reply (Redis queues it until the command returns); one caused by
//! anything else (another client, eviction, the table's size limit) goes
//! out before the reply of whatever the reader runs next.
//!
//! BCAST prefixes are known to every shard. Each shard gathers the keys
//! changed under a prefix and, before it sleeps (Redis's beforeSleep),
//! sends them as one message per prefix and client.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::Bytes;

use super::client::ClientMeta;
use super::shard::Shard;
use crate::config::Hot;
use crate::protocol::reply::encode;
use crate::protocol::{Proto, Reply};
use crate::storage::Key;

/// The channel RESP2 clients receive redirected invalidations on.
pub const CHANNEL: &str = "__redis__:invalidate";

/// A client's CLIENT TRACKING mode (on its connection's shard).
#[derive(Clone, Debug, Default)]
pub struct Mode {
    pub on: bool,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING yes|no was given for the next command.
    pub caching: bool,
    /// The client it redirected to is gone.
    pub broken_redirect: bool,
    /// The client invalidations go to instead (0: none), and its shard.
    pub redirect: u64,
    pub redirect_shard: usize,
    /// BCAST prefixes, in the order given.
    pub prefixes: Vec<Bytes>,
}

impl Mode {
    /// Whether the keys of the read it runs now are remembered (Redis's
    /// trackingRememberKeys): not in BCAST mode, and as OPTIN / OPTOUT
    /// and CLIENT CACHING say.
    pub fn remembers(&self) -> bool {
        // OPTIN: only with CACHING yes; OPTOUT: unless CACHING no.
        let wanted = if self.optin { self.caching } else { !(self.optout && self.caching) };
        self.on && !self.bcast && wanted
    }
}

/// A client that read a key: its id and its connection's shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reader {
    pub id: u64,
    pub shard: usize,
}

/// Totals across shards (INFO, and tracking-table-max-keys).
#[derive(Debug, Default)]
pub struct Counts {
    pub clients: AtomicU64,
    pub bcast_clients: AtomicU64,
    pub keys: AtomicU64,
    pub items: AtomicU64,
}

impl Counts {
    /// Whether a change to some key may have to be told to someone.
    pub fn active(&self) -> bool {
        self.keys.load(Relaxed) > 0 || self.bcast_clients.load(Relaxed) > 0
    }
}

/// A BCAST prefix: its clients, and the keys changed under it since the
/// last broadcast (key -> whose write, whose command was running).
#[derive(Default)]
struct Prefix {
    clients: Vec<Reader>,
    changed: BTreeMap<Key, (Option<u64>, Option<u64>)>,
}

/// One shard's part of the tracking table, and the BCAST prefixes.
#[derive(Default)]
pub struct Table {
    keys: HashMap<Key, Vec<Reader>>,
    prefixes: BTreeMap<Bytes, Prefix>,
    /// Since when keys changed under prefixes wait to be broadcast.
    pending_since: Option<i64>,
}

/// The longest a transaction holding keys here delays a BCAST message.
const BCAST_HOLD_MS: i64 = 100;

impl Table {
    /// Distinct BCAST prefixes (the same on every shard).
    pub fn prefixes(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether a change to a key here may have to be told to someone
    /// (the databases record changed keys only then).
    fn wants_changes(&self) -> bool {
        !self.keys.is_empty() || !self.prefixes.is_empty()
    }
}

/// An invalidation on its way to a tracking client.
struct Invalidation {
    target: u64,
    /// The keys, each with the client whose write changed it (None for
    /// expiry and eviction); None: every key (a flush).
    keys: Option<Vec<(Key, Option<u64>)>>,
    /// From a BCAST prefix (only BCAST clients take it) or from the table
    /// (only the others do).
    bcast: bool,
    /// The target's own command caused it: it follows that reply.
    own: bool,
}

impl Shard {
    /// Remembers that `reader` read `keys` (owned by this shard).
    pub fn remember<'a>(&self, reader: Reader, keys: impl Iterator<Item = &'a [u8]>) {
        let counts = &self.server.tracking;
        let mut table = self.tracking.borrow_mut();
        for key in keys {
            let readers = table.keys.entry(key.into()).or_insert_with(|| {
                counts.keys.fetch_add(1, Relaxed);
                Vec::new()
            });
            if !readers.contains(&reader) {
                readers.push(reader);
                counts.items.fetch_add(1, Relaxed);
            }
        }
        drop(table);
        self.ks.borrow_mut().set_tracking(true);
    }

    /// After keys of this shard changed: their readers are told, and so
    /// are the BCAST prefixes they fall under. `by`: the client whose
    /// command ran (None for expiry and eviction outside a command).
    pub fn signal_changed(self: &Rc<Self>, by: Option<u64>) {
        let changed = self.ks.borrow_mut().take_changed();
        if changed.is_empty() {
            return;
        }
        let counts = &self.server.tracking;
        let mut out: Vec<(usize, Invalidation)> = Vec::new();
        let mut table = self.tracking.borrow_mut();
        for (key, expired) in changed {
            let writer = if expired { None } else { by };
            for (prefix, p) in table.prefixes.iter_mut() {
                if key.starts_with(prefix) {
                    p.changed.insert(key.clone(), (writer, by));
                }
            }
            if !table.prefixes.is_empty() && table.pending_since.is_none() {
                table.pending_since = Some(self.now());
            }
            if let Some(readers) = table.keys.remove(&key) {
                counts.keys.fetch_sub(1, Relaxed);
                counts.items.fetch_sub(readers.len() as u64, Relaxed);
                for r in readers {
                    let keys = Some(vec![(key.clone(), by)]);
                    out.push((r.shard, Invalidation { target: r.id, keys, bcast: false, own: by == Some(r.id) }));
                }
            }
        }
        let wanted = table.wants_changes();
        drop(table);
        if !wanted {
            self.ks.borrow_mut().set_tracking(false);
        }
        self.send_invalidations(out);
    }

    /// Posts invalidations to their targets' shards, one post per shard.
    fn send_invalidations(self: &Rc<Self>, mut out: Vec<(usize, Invalidation)>) {
        out.sort_by_key(|(shard, _)| *shard);
        while let Some(&(shard, _)) = out.first() {
            let split = out.iter().position(|(s, _)| *s != shard).unwrap_or(out.len());
            let batch: Vec<Invalidation> = out.drain(..split).map(|(_, i)| i).collect();
            self.post_with(shard, move |sh| batch.into_iter().for_each(|i| sh.deliver_invalidation(i)));
        }
    }

    /// Before the shard sleeps: the keys changed under BCAST prefixes go
    /// out, and the table sheds keys past tracking-table-max-keys.
    /// Returns whether it sent anything.
    pub fn tracking_before_sleep(self: &Rc<Self>) -> bool {
        self.signal_changed(None);
        let mut out = Vec::new();
        let mut table = self.tracking.borrow_mut();
        // A transaction's writes go out together once it ends (its commands
        // reach this shard one by one), unless they wait too long.
        let held = table.pending_since.is_some_and(|since| self.now() - since < BCAST_HOLD_MS);
        if held && !self.locks.borrow().is_empty() {
            drop(table);
            return self.shed_tracked_keys();
        }
        table.pending_since = None;
        for p in table.prefixes.values_mut() {
            if p.changed.is_empty() {
                continue;
            }
            let changed = std::mem::take(&mut p.changed);
            let keys: Vec<(Key, Option<u64>)> = changed.iter().map(|(k, &(writer, _))| (k.clone(), writer)).collect();
            for c in &p.clients {
                let own = changed.values().any(|&(_, by)| by == Some(c.id));
                out.push((c.shard, Invalidation { target: c.id, keys: Some(keys.clone()), bcast: true, own }));
            }
        }
        drop(table);
        let sent = !out.is_empty();
        self.send_invalidations(out);
        sent | self.shed_tracked_keys()
    }

    /// Forgets keys (telling their readers) while the whole table holds
    /// more than tracking-table-max-keys; each key forgotten is first
    /// taken off the total, so shards shedding at once stop at the limit.
    pub fn shed_tracked_keys(self: &Rc<Self>) -> bool {
        /// Keys one pass sheds at most (the next pass goes on).
        const EFFORT: usize = 1000;
        let max = Hot::get(&self.server.hot.tracking_table_max_keys);
        let counts = &self.server.tracking;
        if max == 0 || counts.keys.load(Relaxed) <= max || self.tracking.borrow().keys.is_empty() {
            return false;
        }
        let mut table = self.tracking.borrow_mut();
        let victims: Vec<Key> = table.keys.keys().take(EFFORT).cloned().collect();
        let mut out = Vec::new();
        for key in victims {
            if counts.keys.fetch_update(Relaxed, Relaxed, |n| (n > max).then(|| n - 1)).is_err() {
                break;
            }
            let Some(readers) = table.keys.remove(&key) else { continue };
            counts.items.fetch_sub(readers.len() as u64, Relaxed);
            for r in readers {
                let keys = Some(vec![(key.clone(), None)]);
                out.push((r.shard, Invalidation { target: r.id, keys, bcast: false, own: false }));
            }
        }
        drop(table);
        let sent = !out.is_empty();
        self.send_invalidations(out);
        sent
    }

    /// FLUSHALL / FLUSHDB, on every shard: the table empties, and every
    /// tracking client of this shard is told that every key changed.
    pub fn tracking_flushed(self: &Rc<Self>, by: u64) {
        let counts = &self.server.tracking;
        let mut table = self.tracking.borrow_mut();
        counts.keys.fetch_sub(table.keys.len() as u64, Relaxed);
        counts.items.fetch_sub(table.keys.values().map(|r| r.len() as u64).sum(), Relaxed);
        table.keys = HashMap::new();
        drop(table);
        let targets: Vec<u64> =
            self.clients.borrow().values().filter(|m| m.tracking.borrow().on).map(|m| m.id).collect();
        for target in targets {
            self.deliver_invalidation(Invalidation { target, keys: None, bcast: false, own: target == by });
        }
    }

    /// Adds or removes a BCAST client's prefixes (run on every shard).
    pub fn bcast_prefixes(&self, reader: Reader, prefixes: &[Bytes], add: bool) {
        let mut table = self.tracking.borrow_mut();
        for prefix in prefixes {
            if add {
                let p = table.prefixes.entry(prefix.clone()).or_default();
                if !p.clients.contains(&reader) {
                    p.clients.push(reader);
                }
            } else if let Some(p) = table.prefixes.get_mut(prefix) {
                p.clients.retain(|c| *c != reader);
                if p.clients.is_empty() {
                    table.prefixes.remove(prefix);
                }
            }
        }
        let wanted = table.wants_changes();
        drop(table);
        self.ks.borrow_mut().set_tracking(wanted);
    }

    /// Takes an invalidation for a client of this shard, as its mode now
    /// says: to itself (RESP3), to the client it redirects to, or nowhere
    /// (RESP2 without redirection).
    fn deliver_invalidation(self: &Rc<Self>, inv: Invalidation) {
        let clients = self.clients.borrow();
        let Some(meta) = clients.get(&inv.target) else { return };
        let mode = meta.tracking.borrow();
        if !mode.on {
            return;
        }
        let keys = match inv.keys {
            None => None,
            Some(_) if mode.bcast != inv.bcast => return,
            Some(mut keys) => {
                if mode.noloop {
                    keys.retain(|(_, writer)| *writer != Some(inv.target));
                }
                if keys.is_empty() {
                    return;
                }
                Some(keys.into_iter().map(|(k, _)| k).collect::<Vec<Key>>())
            }
        };
        if mode.redirect == 0 {
            if meta.proto.get() == Proto::Resp3 {
                push(meta, &invalidate(keys), inv.own);
            }
            return;
        }
        let (redirect, shard) = (mode.redirect, mode.redirect_shard);
        let tracker = Reader { id: inv.target, shard: self.id };
        drop(mode);
        drop(clients);
        self.post_with(shard, move |sh| sh.redirected(redirect, tracker, keys));
    }

    /// An invalidation for `redirect`, a client of this shard, from the
    /// client that redirects to it; when it is gone, the tracker hears so.
    fn redirected(self: &Rc<Self>, redirect: u64, tracker: Reader, keys: Option<Vec<Key>>) {
        let clients = self.clients.borrow();
        let Some(meta) = clients.get(&redirect) else {
            drop(clients);
            self.post_with(tracker.shard, move |sh| sh.redirect_broken(tracker.id, redirect));
            return;
        };
        if meta.proto.get() == Proto::Resp3 {
            push(meta, &invalidate(keys), false);
        } else if meta.sub_counts.get() != (0, 0, 0) {
            // RESP2 has no pushes: a subscriber gets a Pub/Sub message.
            let message = Reply::Push(vec![Reply::text("message"), Reply::text(CHANNEL), keys_reply(keys)]);
            push(meta, &message, false);
        }
    }

    fn redirect_broken(&self, id: u64, redirect: u64) {
        let clients = self.clients.borrow();
        let Some(meta) = clients.get(&id) else { return };
        let mut mode = meta.tracking.borrow_mut();
        if !mode.on || mode.redirect != redirect {
            return;
        }
        mode.broken_redirect = true;
        drop(mode);
        if meta.proto.get() == Proto::Resp3 {
            let message = Reply::Push(vec![Reply::text("tracking-redir-broken"), Reply::Int(redirect as i64)]);
            push(meta, &message, false);
        }
    }
}

fn keys_reply(keys: Option<Vec<Key>>) -> Reply {
    match keys {
        None => Reply::Null,
        Some(keys) => Reply::Array(keys.iter().map(|k| Reply::Bulk(Bytes::copy_from_slice(k))).collect()),
    }
}

fn invalidate(keys: Option<Vec<Key>>) -> Reply {
    Reply::Push(vec![Reply::text("invalidate"), keys_reply(keys)])
}

/// Queues a push for a client of this shard and wakes its connection:
/// `own` ones after the reply of the command running (or next written).
fn push(meta: &ClientMeta, message: &Reply, own: bool) {
    let buffer = if own { &meta.deferred } else { &meta.outbox };
    encode(message, meta.proto.get(), &mut buffer.borrow_mut());
    meta.wake();
}

impl super::client::Client {
    /// This client as a reader of keys.
    pub fn tracker(&self) -> Reader {
        Reader { id: self.meta.id, shard: self.shard.id }
    }

    /// Remembers `keys` (of any shards) for `reader`, before the reply of
    /// the read that fetched them leaves.
    pub async fn remember_keys(&self, reader: Reader, keys: Vec<Key>) {
        let mut by_owner: BTreeMap<usize, Vec<Key>> = BTreeMap::new();
        for key in keys {
            by_owner.entry(self.shard.owner(&key)).or_default().push(key);
        }
        for (owner, keys) in by_owner {
            self.shard.run_on(owner, move |sh| sh.remember(reader, keys.iter().map(|k| &k[..]))).await;
        }
    }

    /// CLIENT TRACKING OFF (also RESET and disconnection): its BCAST
    /// prefixes go; keys it read stay in the table until they change, as
    /// in Redis, and are dropped then.
    pub async fn disable_tracking(&self) {
        let mode = std::mem::take(&mut *self.meta.tracking.borrow_mut());
        if !mode.on {
            return;
        }
        let counts = &self.shard.server.tracking;
        counts.clients.fetch_sub(1, Relaxed);
        if mode.bcast {
            counts.bcast_clients.fetch_sub(1, Relaxed);
            let (reader, prefixes) = (self.tracker(), mode.prefixes);
            self.shard.broadcast(move |sh| sh.bcast_prefixes(reader, &prefixes, false)).await;
        }
    }
}
