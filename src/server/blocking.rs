//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...).
//!
//! A blocked client registers a `Waiter` with the owner shard of each of
//! its keys, in key order, trying each key as it goes. The owner serves
//! waiters itself, first come first served, right after a write leaves
//! data in the key (or, when a transaction held the key, when it releases
//! it, so EXEC's intermediate states are never served). A waiter blocked
//! on keys of several shards may become servable on two at once: serving
//! starts by claiming the waiter, and only the shard that wins the claim
//! pops. A client giving up (timeout, CLIENT UNBLOCK, disconnect) claims
//! the waiter too; if it loses, an element is already on its way and it
//! takes it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use super::notify::{GENERIC, LIST};
use super::shard::Shard;
use crate::commands::Ctx;
use crate::protocol::CmdError;
use crate::storage::{End, Key, List, SmallBytes, ZSet};

/// What a blocked client will do to the first of its keys with data.
#[derive(Clone, Copy, Debug)]
pub enum BlockOp {
    /// `moving`: BLMOVE's pop, whose events wait for the push (Redis
    /// reports the push onto the destination first).
    List {
        end: End,
        count: usize,
        moving: bool,
    },
    ZSet {
        max: bool,
        count: usize,
    },
}

/// What a waiter was served: the key and the popped elements (with their
/// scores for sorted sets).
#[derive(Debug)]
pub struct Served {
    pub key: Key,
    pub items: Vec<(SmallBytes, f64)>,
    /// The pop's journal entries, for a client whose EXEC journals them
    /// (otherwise the owner journalled them as it popped).
    pub ops: Vec<crate::journal::Op>,
    /// A moving pop's keyspace events (class, name), for after the push.
    pub deferred: Vec<(u32, &'static str)>,
}

pub struct Waiter {
    pub db: usize,
    /// The shard of the blocked client.
    pub home: usize,
    pub op: BlockOp,
    claimed: AtomicBool,
    reply: Mutex<Option<oneshot::Sender<Served>>>,
}

impl Waiter {
    pub fn new(db: usize, op: BlockOp, home: usize) -> (Arc<Waiter>, oneshot::Receiver<Served>) {
        let (tx, rx) = oneshot::channel();
        let w = Waiter { db, home, op, claimed: AtomicBool::new(false), reply: Mutex::new(Some(tx)) };
        (Arc::new(w), rx)
    }

    /// Takes the right to serve (or abandon) this waiter; true once only.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    fn send(&self, served: Served) {
        if let Some(tx) = self.reply.lock().ok().and_then(|mut r| r.take()) {
            let _ = tx.send(served);
        }
    }
}

/// A shard's waiters per (database, key), oldest first.
#[derive(Default)]
pub struct BlockedKeys {
    queues: HashMap<(usize, Key), VecDeque<Arc<Waiter>>>,
}

impl BlockedKeys {
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    fn has_waiters(&self, db: usize, key: &[u8]) -> bool {
        !self.queues.is_empty() && self.queues.contains_key(&(db, Key::from(key)))
    }
}

/// Whether `key` holds something `op` can pop (WRONGTYPE if it holds
/// another type).
fn ready(ctx: &mut Ctx, key: &[u8], op: BlockOp) -> Result<bool, CmdError> {
    Ok(match op {
        BlockOp::List { .. } => ctx.lookup_as::<List>(key)?.is_some_and(|l| !l.is_empty()),
        BlockOp::ZSet { .. } => ctx.lookup_as::<ZSet>(key)?.is_some_and(|z| !z.is_empty()),
    })
}

/// Pops for `op` from `key`, known to be ready.
fn pop(ctx: &mut Ctx, key: &[u8], op: BlockOp) -> Served {
    ctx.ks.preserve(ctx.db, key, ctx.now);
    let mut deferred = Vec::new();
    let items: Vec<(SmallBytes, f64)> = match op {
        BlockOp::List { end, count, moving } => {
            let limits = crate::commands::lists::limits(ctx);
            let Ok(Some(l)) = ctx.lookup_as::<List>(key) else { return Served::nothing(key) };
            let items: Vec<_> = (0..count).map_while(|_| l.pop(end, limits)).map(|v| (v, 0.0)).collect();
            if moving {
                let emptied = l.is_empty();
                deferred.push((LIST, if end == End::Left { "lpop" } else { "rpop" }));
                if emptied {
                    let now = ctx.now;
                    ctx.db().remove(key, now);
                    deferred.push((GENERIC, "del"));
                }
                // The push counts the move.
                ctx.changed(0);
            } else {
                crate::commands::lists::popped(ctx, key, end, items.len());
            }
            items
        }
        BlockOp::ZSet { max, count } => {
            let Ok(Some(z)) = ctx.lookup_as::<ZSet>(key) else { return Served::nothing(key) };
            let items: Vec<_> =
                crate::commands::zsets::pop_ends(z, count, max).into_iter().map(|(s, m)| (m, s)).collect();
            crate::commands::zsets::zpopped(ctx, key, max, items.len());
            items
        }
    };
    ctx.ks.dbs[ctx.db].touch(key);
    // It propagates as the non-blocking pop it amounts to.
    let (name, single): (&[u8], bool) = match op {
        BlockOp::List { end: End::Left, count, .. } => (b"LPOP", count == 1),
        BlockOp::List { end: End::Right, count, .. } => (b"RPOP", count == 1),
        BlockOp::ZSet { max: false, count } => (b"ZPOPMIN", count == 1),
        BlockOp::ZSet { max: true, count } => (b"ZPOPMAX", count == 1),
    };
    if single {
        ctx.propagate(&[name, key]);
    } else {
        ctx.propagate(&[name, key, itoa::Buffer::new().format(items.len()).as_bytes()]);
    }
    Served { key: key.into(), items, ops: Vec::new(), deferred }
}

impl Served {
    fn nothing(key: &[u8]) -> Served {
        Served { key: key.into(), items: Vec::new(), ops: Vec::new(), deferred: Vec::new() }
    }
}

impl Shard {
    /// Deletes `keys` of `db` that have expired (a command met them
    /// outside dispatch): each propagates as a DEL, with its event.
    pub fn reclaim(self: &std::rc::Rc<Self>, db: usize, keys: &[Key]) {
        if keys.is_empty() {
            return;
        }
        self.with_ctx(db, true, |ctx| {
            for k in keys {
                ctx.lookup(k);
            }
        });
        for op in self.settle() {
            self.journal(vec![op]);
        }
    }

    /// Applies what a step run here outside dispatch did (a pop served to
    /// a blocked client, elements given back, BLMOVE's push, keys
    /// reclaimed): its changes count as dirty and its keyspace events go
    /// out. Returns its journal entries (expired keys' DELs, then what it
    /// propagates as) for the caller to journal now or with its EXEC.
    pub fn settle(self: &std::rc::Rc<Self>) -> Vec<crate::journal::Op> {
        let step = self.ks.borrow_mut().take_step();
        self.ks.borrow_mut().dirty += step.effects.changes.unwrap_or(0);
        self.send_events(step.events);
        let mut ops = step.expired;
        ops.extend(step.effects.rewrite.unwrap_or_default());
        ops
    }
}

impl Shard {
    /// Gives `served` to the waiter's client, on the client's shard.
    fn hand_over(&self, waiter: &Arc<Waiter>, served: Served) {
        let waiter = waiter.clone();
        self.post(waiter.home, move || waiter.send(served));
    }

    /// Serves `waiter` from `key` if it has data; otherwise queues it on
    /// the key when `block` (a command inside EXEC never blocks).
    pub fn try_or_block(self: &std::rc::Rc<Self>, waiter: &Arc<Waiter>, key: Key, block: bool) -> Result<(), CmdError> {
        if waiter.is_claimed() {
            return Ok(());
        }
        let (db, op) = (waiter.db, waiter.op);
        let served = self.with_ctx(db, false, |ctx| -> Result<Option<Served>, CmdError> {
            if !ready(ctx, &key, op)? || !waiter.claim() {
                return Ok(None);
            }
            Ok(Some(pop(ctx, &key, op)))
        })?;
        // Keys that expired on the way are DELs whatever happens; the pop
        // itself joins the client's EXEC when it runs in one.
        let mut ops = Some(self.settle());
        let served = served.map(|mut s| {
            if !block {
                s.ops = ops.take().unwrap_or_default();
            }
            s
        });
        self.journal(ops.unwrap_or_default());
        match served {
            Some(s) => self.hand_over(waiter, s),
            None if block => {
                self.blocked.borrow_mut().queues.entry((db, key)).or_default().push_back(waiter.clone());
            }
            None => {}
        }
        Ok(())
    }

    /// Forgets `waiter` on `key` (it was served elsewhere or gave up).
    pub fn forget_waiter(&self, waiter: &Arc<Waiter>, key: &Key) {
        let mut blocked = self.blocked.borrow_mut();
        let slot = (waiter.db, key.clone());
        if let Some(q) = blocked.queues.get_mut(&slot) {
            q.retain(|w| !Arc::ptr_eq(w, waiter));
            if q.is_empty() {
                blocked.queues.remove(&slot);
            }
        }
    }

    /// After `key` was written: serve its waiters while it has data,
    /// unless a transaction holds it (then its release serves them).
    pub fn key_written(self: &std::rc::Rc<Self>, db: usize, key: &[u8]) {
        if !self.blocked.borrow().has_waiters(db, key) || self.locks.borrow().is_held(db, key) {
            return;
        }
        self.serve_waiters(db, key);
    }

    fn serve_waiters(self: &std::rc::Rc<Self>, db: usize, key: &[u8]) {
        let slot = (db, Key::from(key));
        loop {
            let Some(waiter) = self.blocked.borrow().queues.get(&slot).and_then(|q| q.front().cloned()) else {
                break;
            };
            let served = self.with_ctx(db, false, |ctx| {
                if !matches!(ready(ctx, key, waiter.op), Ok(true)) {
                    return Err(());
                }
                Ok(waiter.claim().then(|| pop(ctx, key, waiter.op)))
            });
            let ops = self.settle();
            self.journal(ops);
            match served {
                // The key is empty (or of another type) now: the rest wait.
                Err(()) => break,
                Ok(served) => {
                    self.forget_waiter(&waiter, &slot.1);
                    if let Some(s) = served {
                        self.hand_over(&waiter, s);
                    }
                }
            }
        }
    }

    /// Serves the waiters of keys a transaction just released.
    pub fn keys_released(self: &std::rc::Rc<Self>, keys: &[(usize, Key)]) {
        if self.blocked.borrow().is_empty() {
            return;
        }
        for (db, key) in keys {
            self.key_written(*db, key);
        }
    }
}
