//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, XREAD, ...).
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
//! takes it. A stream read consumes nothing: every waiter a write makes
//! servable is served, not only the first ones.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::channel::oneshot;

use super::shard::Shard;
use crate::command::Ctx;
use crate::protocol::{CmdError, Reply};
use crate::storage::stream::StreamId;
use crate::storage::{End, Key, SmallBytes};

/// What a blocked client will do to the first of its keys with data.
#[derive(Clone, Debug)]
pub enum BlockOp {
    List {
        end: End,
        count: usize,
    },
    /// A BLMOVE whose destination lives on another shard waits for its
    /// source to hold an element and then moves it under a transaction
    /// (whole, as LMOVE): serving it takes nothing, but it is the next
    /// one's turn only once it moved (or passed the turn on).
    ListReady,
    ZSet {
        max: bool,
        count: usize,
    },
    Stream(Arc<StreamRead>),
}

impl BlockOp {
    /// Whether serving a waiter takes the data away (a pop), so a key
    /// that cannot serve one waiter cannot serve those behind it either.
    fn consumes(&self) -> bool {
        !matches!(self, BlockOp::Stream(_))
    }
}

/// What a blocked XREAD / XREADGROUP waits for.
#[derive(Debug)]
pub struct StreamRead {
    pub count: usize,
    /// XREADGROUP's group, consumer and NOACK.
    pub group: Option<(bytes::Bytes, bytes::Bytes, bool)>,
    /// XREAD's position on each key: an entry after it serves the read.
    pub after: Vec<(Key, StreamId)>,
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
    /// BLMOVE's destination, when the move was made whole where it was
    /// served (its waiters may be served in turn).
    pub pushed: Option<Key>,
    /// BLMOVE's destination holds another type: nothing was popped.
    pub wrongtype: bool,
    /// A stream read's entries, or the error it ended with (its group
    /// or its stream was deleted).
    pub read: Option<Result<Reply, CmdError>>,
}

impl Served {
    /// Nothing served from `key` (yet).
    pub fn empty(key: &[u8]) -> Served {
        Served { key: key.into(), items: Vec::new(), ops: Vec::new(), pushed: None, wrongtype: false, read: None }
    }
}

/// How a blocked command's family pops: whether `key` holds something
/// `op` can pop (WRONGTYPE if it holds another type), and the pop itself
/// from a key known to be ready, with its effects recorded as a body's.
pub struct Popper {
    pub ready: fn(&mut Ctx, &[u8], &Waiter) -> Result<bool, CmdError>,
    pub pop: fn(&mut Ctx, &[u8], &Waiter) -> Served,
}

pub struct Waiter {
    pub db: usize,
    /// The blocked client and its shard.
    pub client: u64,
    pub home: usize,
    pub op: BlockOp,
    /// BLMOVE's destination and end, when it has the source's owner: the
    /// element is pushed as it is popped, as Redis serves it.
    pub push_to: Option<(Key, End)>,
    popper: &'static Popper,
    claimed: AtomicBool,
    reply: Mutex<Option<oneshot::Sender<Served>>>,
}

impl Waiter {
    pub fn new(
        db: usize,
        op: BlockOp,
        (client, home): (u64, usize),
        popper: &'static Popper,
        push_to: Option<(Key, End)>,
    ) -> (Arc<Waiter>, oneshot::Receiver<Served>) {
        let (tx, rx) = oneshot::channel();
        let w = Waiter {
            db,
            client,
            home,
            op,
            push_to,
            popper,
            claimed: AtomicBool::new(false),
            reply: Mutex::new(Some(tx)),
        };
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
    /// Keys with waiters written while a transaction held them, in the
    /// order they were written: its release serves them in that order,
    /// as Redis serves keys in the order they became ready.
    ready: Vec<(usize, Key)>,
}

impl BlockedKeys {
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    fn has_waiters(&self, db: usize, key: &[u8]) -> bool {
        !self.queues.is_empty() && self.queues.contains_key(&(db, Key::from(key)))
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
        let db = waiter.db;
        let served = self.with_ctx(db, false, |ctx| -> Result<Option<Served>, CmdError> {
            if !(waiter.popper.ready)(ctx, &key, waiter)? || !waiter.claim() {
                return Ok(None);
            }
            Ok(Some((waiter.popper.pop)(ctx, &key, waiter)))
        })?;
        // Keys that expired on the way are DELs whatever happens; the pop
        // itself joins the client's EXEC when it runs in one.
        let mut ops = Some(self.settle());
        self.signal_changed(Some(waiter.client));
        let served = served.map(|mut s| {
            if !block {
                s.ops = ops.take().unwrap_or_default();
            }
            s
        });
        self.journal(ops.unwrap_or_default());
        match served {
            Some(s) => {
                let pushed = s.pushed.clone();
                self.hand_over(waiter, s);
                if let Some(dst) = pushed {
                    self.key_written(db, &dst);
                }
            }
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
        if !self.blocked.borrow().has_waiters(db, key) {
            return;
        }
        if self.locks.borrow().is_held(db, key) {
            let mut blocked = self.blocked.borrow_mut();
            if !blocked.ready.iter().any(|(d, k)| *d == db && **k == *key) {
                blocked.ready.push((db, key.into()));
            }
            return;
        }
        self.serve_waiters(db, key);
    }

    fn serve_waiters(self: &std::rc::Rc<Self>, db: usize, key: &[u8]) {
        let slot = (db, Key::from(key));
        let Some(queue) = self.blocked.borrow().queues.get(&slot).map(|q| Vec::from_iter(q.iter().cloned())) else {
            return;
        };
        for waiter in queue {
            let served = self.with_ctx(db, false, |ctx| {
                if !matches!((waiter.popper.ready)(ctx, key, &waiter), Ok(true)) {
                    return Err(());
                }
                Ok(waiter.claim().then(|| (waiter.popper.pop)(ctx, key, &waiter)))
            });
            let ops = self.settle();
            self.journal(ops);
            self.signal_changed(Some(waiter.client));
            match served {
                // The key is empty (or of another type) now: the rest wait.
                Err(()) if waiter.op.consumes() => break,
                Err(()) => {}
                Ok(served) => {
                    self.forget_waiter(&waiter, &slot.1);
                    if let Some(s) = served {
                        let pushed = s.pushed.clone();
                        self.hand_over(&waiter, s);
                        if matches!(waiter.op, BlockOp::ListReady) {
                            break;
                        }
                        // What BLMOVE pushed may serve the destination's
                        // waiters in turn, as Redis serves chained moves.
                        if let Some(dst) = pushed {
                            self.key_written(db, &dst);
                        }
                    }
                }
            }
        }
    }

    /// After SWAPDB or FLUSH* replaced whole databases: serves the
    /// waiters of their keys that hold data now (and fails the group
    /// reads whose stream went away).
    pub fn dbs_replaced(self: &std::rc::Rc<Self>, dbs: impl Fn(usize) -> bool) {
        let keys: Vec<(usize, Key)> = self.blocked.borrow().queues.keys().filter(|(db, _)| dbs(*db)).cloned().collect();
        for (db, key) in keys {
            self.key_written(db, &key);
        }
    }

    /// Serves the waiters of keys a transaction just released.
    pub fn keys_released(self: &std::rc::Rc<Self>, keys: &[(usize, Key)]) {
        if self.blocked.borrow().is_empty() {
            self.blocked.borrow_mut().ready.clear();
            return;
        }
        // The keys written while held first, in the order they were.
        let ready = {
            let mut blocked = self.blocked.borrow_mut();
            let (now, later) = std::mem::take(&mut blocked.ready).into_iter().partition(|k| keys.contains(k));
            blocked.ready = later;
            now
        };
        for (db, key) in ready.iter().chain(keys) {
            self.key_written(*db, key);
        }
    }
}
