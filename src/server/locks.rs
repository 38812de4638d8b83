//! Per-key intent locks a shard grants to cross-shard transactions.
//!
//! Invariant that makes the scheme deadlock-free: a transaction acquires
//! its locks in one global order, shard by ascending index and, within a
//! shard, key by ascending bytes, and it never waits for a lock while
//! holding a lock that sorts after it. Plain commands take no lock; they
//! only wait while a key they touch is held, so the path where no
//! transaction is in flight costs one `is_empty` check.
//!
//! Locks are reentrant for their holder (a client id): a command run by
//! EXEC, which already holds every key its queued commands declare, may
//! take its own transaction on them without waiting for itself.
//!
//! Transactions waiting for a key queue for it and are let in one at a
//! time, in arrival order: a release wakes the plain commands that
//! waited (they run before the next transaction takes the key) and gives
//! the turn to the first queued transaction only, so N transactions on
//! one key cost N wakeups, not N². Whoever has the turn and does not take
//! the key (it backs off, yields to a barrier, or its client is gone)
//! passes the turn on.
//!
//! A barrier holds a whole shard for one holder (FLUSHALL, FLUSHDB,
//! SWAPDB, which touch every key). While it is up, plain commands and
//! transactions that hold nothing yet wait; a transaction that already
//! holds keys somewhere may still take more, so the ones in flight finish
//! (none waits on a barrier while holding a lock), and the barrier's
//! holder waits for them to drain. Barriers are raised in shard order.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use hashbrown::{Equivalent, HashMap};

use super::shard::Shard;
use crate::storage::Key;

#[derive(PartialEq, Eq, Hash)]
struct LockKey(usize, Key);

/// Borrowed form of `LockKey` for lookups; hashes identically.
struct LockRef<'a>(usize, &'a [u8]);

impl Hash for LockRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h);
        self.1.hash(h);
    }
}

impl Equivalent<LockKey> for LockRef<'_> {
    fn equivalent(&self, k: &LockKey) -> bool {
        self.0 == k.0 && *self.1 == *k.1
    }
}

/// A held key: who holds it and the plain commands waiting for its
/// release.
struct Held {
    holder: u64,
    waiters: Vec<oneshot::Sender<()>>,
}

/// How a queued transaction is woken: `true` when it is its turn (the
/// key was released), `false` to look again (the holder yields).
type Queued = oneshot::Sender<bool>;

/// A shard held whole, and who waits on it.
struct Barrier {
    holder: u64,
    /// Tasks waiting for the barrier to go down.
    waiters: Vec<oneshot::Sender<()>>,
    /// The holder, waiting until no one else holds a key here.
    drained: Option<oneshot::Sender<()>>,
}

/// Held keys and the tasks waiting for each to be released.
#[derive(Default)]
pub struct LockTable {
    held: HashMap<LockKey, Held>,
    /// Transactions waiting for a key, first come first: kept apart from
    /// `held` because the queue outlives each holder.
    queues: HashMap<LockKey, VecDeque<Queued>>,
    barrier: Option<Barrier>,
    /// Holders of keys (an EXEC, a script) that are raising barriers:
    /// a transaction that holds keys and waits for one of theirs backs
    /// off instead, or their barrier would wait for it forever.
    yielding: Vec<u64>,
}

impl LockTable {
    /// Nothing held: a plain command runs at once.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.barrier.is_none()
    }

    /// A receiver that completes when the barrier (not held by `holder`)
    /// goes down, or None if there is none.
    fn barrier_waiter(&mut self, holder: Option<u64>) -> Option<oneshot::Receiver<()>> {
        let barrier = self.barrier.as_mut().filter(|b| Some(b.holder) != holder)?;
        let (tx, rx) = oneshot::channel();
        barrier.waiters.push(tx);
        Some(rx)
    }

    /// Wakes the barrier's holder once only its own locks are left.
    fn check_drained(&mut self) {
        if let Some(b) = self.barrier.as_mut()
            && b.drained.is_some()
            && self.held.values().all(|h| h.holder == b.holder)
            && let Some(tx) = b.drained.take()
        {
            let _ = tx.send(());
        }
    }

    /// `holder` starts raising barriers while it holds keys here: whoever
    /// waits for one of them wakes to back off.
    fn start_yielding(&mut self, holder: u64) {
        self.yielding.push(holder);
        let Self { held, queues, .. } = self;
        for (key, _) in held.iter().filter(|(_, h)| h.holder == holder) {
            for w in queues.remove(key).into_iter().flatten() {
                let _ = w.send(false);
            }
        }
    }

    fn stop_yielding(&mut self, holder: u64) {
        self.yielding.retain(|&h| h != holder);
    }

    pub fn is_held(&self, db: usize, key: &[u8]) -> bool {
        !self.held.is_empty() && self.held.contains_key(&LockRef(db, key))
    }

    /// A receiver that completes when `key` is released, or None if it is
    /// free now.
    fn waiter(&mut self, db: usize, key: &[u8]) -> Option<oneshot::Receiver<()>> {
        let held = self.held.get_mut(&LockRef(db, key))?;
        let (tx, rx) = oneshot::channel();
        held.waiters.push(tx);
        Some(rx)
    }

    /// Queues a transaction for `key`: at the front when it had the turn
    /// and someone took the key before it could.
    fn enqueue(&mut self, db: usize, key: &[u8], front: bool) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let queue = match self.queues.get_mut(&LockRef(db, key)) {
            Some(q) => q,
            None => self.queues.entry(LockKey(db, key.into())).or_default(),
        };
        if front {
            queue.push_front(tx)
        } else {
            queue.push_back(tx)
        }
        rx
    }

    /// Gives the turn for a free `key` to the first queued transaction
    /// still waiting.
    fn pass_turn(&mut self, db: usize, key: &[u8]) {
        if self.held.contains_key(&LockRef(db, key)) {
            return;
        }
        let Some(queue) = self.queues.get_mut(&LockRef(db, key)) else { return };
        while let Some(next) = queue.pop_front() {
            if next.send(true).is_ok() {
                break;
            }
        }
        if queue.is_empty() {
            self.queues.remove(&LockRef(db, key));
        }
    }

    fn holder(&self, db: usize, key: &[u8]) -> Option<u64> {
        self.held.get(&LockRef(db, key)).map(|h| h.holder)
    }

    fn release(&mut self, db: usize, key: &[u8]) {
        if let Some(held) = self.held.remove(&LockRef(db, key)) {
            for w in held.waiters {
                let _ = w.send(());
            }
            self.pass_turn(db, key);
        }
        self.check_drained();
    }

    fn take(&mut self, holder: u64, db: usize, key: Key) {
        self.held.insert(LockKey(db, key), Held { holder, waiters: Vec::new() });
    }
}

/// What a transaction waiting for a key waits on.
enum Wait {
    Barrier(oneshot::Receiver<()>),
    Queued(oneshot::Receiver<bool>),
}

/// A transaction's place in the queue for one key. Dropping it, whether
/// the transaction took the key, gave up or was dropped while waiting,
/// passes the turn on if the key is free, so a turn is never lost.
struct Turn<'a> {
    shard: &'a Shard,
    db: usize,
    key: Key,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.shard.locks.borrow_mut().pass_turn(self.db, &self.key);
    }
}

impl Shard {
    /// Waits until none of `keys` (database, key) is held by a transaction.
    pub async fn wait_unlocked<'a>(self: &Rc<Self>, keys: impl Iterator<Item = (usize, &'a [u8])> + Clone) {
        loop {
            let rx = {
                let mut locks = self.locks.borrow_mut();
                if locks.is_empty() {
                    return;
                }
                let barrier = locks.barrier_waiter(None);
                match barrier.or_else(|| keys.clone().find_map(|(db, k)| locks.waiter(db, k))) {
                    Some(rx) => rx,
                    None => return,
                }
            };
            let _ = rx.await;
        }
    }

    /// Acquires `(db, key)` pairs (sorted, distinct) for `holder`'s
    /// transaction, in order. Returns the pairs it acquired: those the
    /// holder already had stay with the outer transaction. `first`: the
    /// transaction holds nothing anywhere yet, so it waits for a barrier.
    /// `may_back_off`: it may give up what it holds and start over, which
    /// it does (Err with what it acquired here) when a key it waits for is
    /// held by someone raising barriers.
    pub async fn lock_keys(
        self: &Rc<Self>,
        holder: u64,
        keys: Vec<(usize, Key)>,
        first: bool,
        may_back_off: bool,
    ) -> Result<Vec<(usize, Key)>, Vec<(usize, Key)>> {
        let mut acquired = Vec::with_capacity(keys.len());
        for (db, key) in keys {
            let mut turn: Option<Turn> = None;
            let mut had_turn = false;
            loop {
                let wait = {
                    let mut locks = self.locks.borrow_mut();
                    let holds_nothing = first && acquired.is_empty();
                    match locks.holder(db, &key) {
                        Some(h) if h == holder => break,
                        Some(h) if may_back_off && !holds_nothing && locks.yielding.contains(&h) => {
                            drop(locks);
                            return Err(acquired);
                        }
                        _ => {}
                    }
                    // Until it holds something, a new transaction yields to
                    // a barrier, also one raised while it waited for a key
                    // (passing its turn on: others may hold keys already).
                    if let Some(rx) = if holds_nothing { locks.barrier_waiter(Some(holder)) } else { None } {
                        Wait::Barrier(rx)
                    } else if locks.holder(db, &key).is_some() {
                        Wait::Queued(locks.enqueue(db, &key, had_turn))
                    } else {
                        // A transaction may write whatever it locks.
                        self.ks.borrow_mut().preserve(db, &key, self.now());
                        locks.take(holder, db, key.clone());
                        acquired.push((db, key));
                        break;
                    }
                };
                match wait {
                    Wait::Barrier(rx) => {
                        turn = None;
                        had_turn = false;
                        let _ = rx.await;
                    }
                    Wait::Queued(rx) => {
                        turn.get_or_insert_with(|| Turn { shard: self, db, key: key.clone() });
                        had_turn = rx.await.unwrap_or(false);
                    }
                }
            }
            drop(turn);
        }
        Ok(acquired)
    }

    /// See `LockTable::start_yielding`.
    pub fn start_yielding(&self, holder: u64) {
        self.locks.borrow_mut().start_yielding(holder);
    }

    /// Raises this shard's barrier for `holder`, once no other barrier
    /// is up; resolves when no one else holds a key here.
    pub async fn raise_barrier(self: &Rc<Self>, holder: u64) {
        loop {
            let waiter = self.locks.borrow_mut().barrier_waiter(Some(holder));
            let Some(rx) = waiter else { break };
            let _ = rx.await;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut locks = self.locks.borrow_mut();
            locks.barrier = Some(Barrier { holder, waiters: Vec::new(), drained: Some(tx) });
            locks.check_drained();
        }
        let _ = rx.await;
        // Drained: no one holding keys can come to wait here for the
        // holder's keys any more (lower shards are held, higher ones come
        // after this one in the lock order).
        self.locks.borrow_mut().stop_yielding(holder);
    }

    /// Lowers the barrier, waking everyone who waited on it.
    pub fn lower_barrier(&self) {
        let barrier = self.locks.borrow_mut().barrier.take();
        for w in barrier.into_iter().flat_map(|b| b.waiters) {
            let _ = w.send(());
        }
        // Blocked clients whose keys were written meanwhile are served by
        // the commands that follow.
    }

    /// Takes `(db, key)` for `holder`, waiting at most `patience` for
    /// whoever holds it: a script reaching for a key it did not declare
    /// takes it out of the lock order, so a wait could be a deadlock with
    /// a transaction waiting for the script's own keys; the bound breaks
    /// it. Some(true): taken now (the caller releases it); Some(false):
    /// the holder had it; None: still held by someone else.
    pub async fn lock_key_within(
        self: &Rc<Self>,
        holder: u64,
        db: usize,
        key: Key,
        patience: Duration,
    ) -> Option<bool> {
        let deadline = Instant::now() + patience;
        let mut turn: Option<Turn> = None;
        let mut had_turn = false;
        loop {
            let wait = {
                let mut locks = self.locks.borrow_mut();
                match locks.holder(db, &key) {
                    Some(h) if h == holder => return Some(false),
                    Some(_) => locks.enqueue(db, &key, had_turn),
                    None => {
                        self.ks.borrow_mut().preserve(db, &key, self.now());
                        locks.take(holder, db, key);
                        return Some(true);
                    }
                }
            };
            turn.get_or_insert_with(|| Turn { shard: self, db, key: key.clone() });
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = crate::server::poller::sleep(left);
            match futures::future::select(wait, timeout).await {
                futures::future::Either::Left((woken, _)) => had_turn = woken.unwrap_or(false),
                futures::future::Either::Right(_) => return None,
            }
        }
    }

    pub fn unlock_keys(self: &Rc<Self>, keys: &[(usize, Key)]) {
        let mut locks = self.locks.borrow_mut();
        for (db, key) in keys {
            locks.release(*db, key);
        }
        drop(locks);
        self.keys_released(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_release_wakes_waiters() {
        let mut t = LockTable::default();
        assert!(t.waiter(0, b"k").is_none());
        t.held.insert(LockKey(0, b"k".as_slice().into()), Held { holder: 1, waiters: Vec::new() });
        assert_eq!(t.holder(0, b"k"), Some(1));
        assert!(t.is_held(0, b"k"));
        assert!(!t.is_held(1, b"k"));
        let mut rx = t.waiter(0, b"k").unwrap();
        assert_eq!(rx.try_recv(), Ok(None));
        t.release(0, b"k");
        assert_eq!(rx.try_recv(), Ok(Some(())));
        assert!(t.is_empty());
    }

    #[test]
    fn a_release_gives_the_turn_to_the_first_live_queued_transaction() {
        let mut t = LockTable::default();
        t.take(1, 0, b"k".as_slice().into());
        let mut plain = t.waiter(0, b"k").unwrap();
        let mut a = t.enqueue(0, b"k", false);
        let b = t.enqueue(0, b"k", false);
        let mut c = t.enqueue(0, b"k", false);
        let mut front = t.enqueue(0, b"k", true);
        drop(b);
        t.release(0, b"k");
        assert_eq!(plain.try_recv(), Ok(Some(())));
        assert_eq!(front.try_recv(), Ok(Some(true)));
        assert_eq!(a.try_recv(), Ok(None));
        t.take(2, 0, b"k".as_slice().into());
        t.release(0, b"k");
        assert_eq!(a.try_recv(), Ok(Some(true)));
        assert_eq!(c.try_recv(), Ok(None));
        // `a` gave up without taking the key: the turn goes on, past `b`.
        t.pass_turn(0, b"k");
        assert_eq!(c.try_recv(), Ok(Some(true)));
        assert!(t.queues.is_empty());
    }

    #[test]
    fn a_yielding_holder_wakes_its_queue_to_look_again() {
        let mut t = LockTable::default();
        t.take(7, 0, b"k".as_slice().into());
        let mut a = t.enqueue(0, b"k", false);
        t.start_yielding(7);
        assert_eq!(a.try_recv(), Ok(Some(false)));
        assert!(t.queues.is_empty());
    }
}
