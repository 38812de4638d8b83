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
//! A barrier holds a whole shard for one holder (FLUSHALL, FLUSHDB,
//! SWAPDB, which touch every key). While it is up, plain commands and
//! transactions that hold nothing yet wait; a transaction that already
//! holds keys somewhere may still take more, so the ones in flight finish
//! (none waits on a barrier while holding a lock), and the barrier's
//! holder waits for them to drain. Barriers are raised in shard order.

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

/// A held key: who holds it and the tasks waiting for its release.
struct Held {
    holder: u64,
    waiters: Vec<oneshot::Sender<()>>,
}

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
        for held in self.held.values_mut().filter(|h| h.holder == holder) {
            for w in held.waiters.drain(..) {
                let _ = w.send(());
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

    fn holder(&self, db: usize, key: &[u8]) -> Option<u64> {
        self.held.get(&LockRef(db, key)).map(|h| h.holder)
    }

    fn release(&mut self, db: usize, key: &[u8]) {
        if let Some(held) = self.held.remove(&LockRef(db, key)) {
            for w in held.waiters {
                let _ = w.send(());
            }
        }
        self.check_drained();
    }
}

impl Shard {
    /// Waits until none of `keys` is held by a transaction.
    pub async fn wait_unlocked<'a>(self: &Rc<Self>, db: usize, keys: impl Iterator<Item = &'a [u8]> + Clone) {
        loop {
            let rx = {
                let mut locks = self.locks.borrow_mut();
                if locks.is_empty() {
                    return;
                }
                let barrier = locks.barrier_waiter(None);
                match barrier.or_else(|| keys.clone().find_map(|k| locks.waiter(db, k))) {
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
            loop {
                let rx = {
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
                    // a barrier, also one raised while it waited for a key.
                    let barrier = if holds_nothing { locks.barrier_waiter(Some(holder)) } else { None };
                    match barrier.or_else(|| locks.waiter(db, &key)) {
                        Some(rx) => rx,
                        None => {
                            // A transaction may write whatever it locks.
                            self.ks.borrow_mut().preserve(db, &key, self.now());
                            locks.held.insert(LockKey(db, key.clone()), Held { holder, waiters: Vec::new() });
                            acquired.push((db, key));
                            break;
                        }
                    }
                };
                let _ = rx.await;
            }
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
        loop {
            let rx = {
                let mut locks = self.locks.borrow_mut();
                match locks.holder(db, &key) {
                    Some(h) if h == holder => return Some(false),
                    Some(_) => locks.waiter(db, &key)?,
                    None => {
                        self.ks.borrow_mut().preserve(db, &key, self.now());
                        locks.held.insert(LockKey(db, key), Held { holder, waiters: Vec::new() });
                        return Some(true);
                    }
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = crate::server::poller::sleep(left);
            if let futures::future::Either::Right(_) = futures::future::select(rx, timeout).await {
                return None;
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
}
