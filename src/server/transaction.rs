//! Atomic operations across shards.
//!
//! A transaction first locks every key it will touch, shard by shard in
//! ascending order (see `locks.rs` for why that cannot deadlock), then runs
//! its steps on the owners, then releases. While a key is locked, plain
//! commands on it wait, so no client can observe a transaction half-done:
//! every shard's part becomes visible only when the key is released, and
//! every key is locked before any part runs.
//!
//! Ordered locking replaces VLL's global transaction counter: there is no
//! reordering to detect and no retry, at the price of one lock hop per
//! shard. MULTI/EXEC and scripts reuse `Tx` with all their declared keys.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::client::Client;
use super::poller;
use super::shard::Shard;
use crate::command::Ctx;
use crate::storage::Key;

pub struct Tx {
    shard: Rc<Shard>,
    /// Locked (database, key) pairs per shard, ascending by shard.
    parts: Vec<(usize, Vec<(usize, Key)>)>,
}

impl Tx {
    /// Locks `keys` of database `db` wherever they live, for `client`.
    pub async fn lock<'a>(client: &Client, db: usize, keys: impl Iterator<Item = &'a [u8]>) -> Tx {
        Tx::lock_in(client, keys.map(|k| (db, k))).await
    }

    /// Locks keys that may belong to different databases.
    pub async fn lock_in<'a>(client: &Client, keys: impl Iterator<Item = (usize, &'a [u8])>) -> Tx {
        let shard = &client.shard;
        let holder = client.meta.id;
        let mut by_shard: BTreeMap<usize, Vec<(usize, Key)>> = BTreeMap::new();
        for (db, key) in keys {
            by_shard.entry(shard.owner(key)).or_default().push((db, key.into()));
        }
        let groups: Vec<(usize, Vec<(usize, Key)>)> = by_shard
            .into_iter()
            .map(|(owner, mut keys)| {
                keys.sort_unstable();
                keys.dedup();
                (owner, keys)
            })
            .collect();
        // A transaction of its own (not a step of an EXEC or a script,
        // which must keep what they hold) backs off from a holder raising
        // barriers: it releases everything and starts over.
        let may_back_off = client.unit.is_none();
        'attempt: loop {
            let mut tx = Tx { shard: shard.clone(), parts: Vec::with_capacity(groups.len()) };
            for (owner, keys) in &groups {
                // Only a transaction holding nothing yet may wait on a barrier
                // (the ones in flight must be able to finish).
                let first = tx.parts.iter().all(|(_, k)| k.is_empty()) && client.unit.is_none();
                let keys = keys.clone();
                let acquired = shard
                    .run_on_async(
                        *owner,
                        move |sh| async move { sh.lock_keys(holder, keys, first, may_back_off).await },
                    )
                    .await;
                match acquired {
                    Ok(acquired) => tx.parts.push((*owner, acquired)),
                    Err(partial) => {
                        tx.parts.push((*owner, partial));
                        tx.unlock().await;
                        continue 'attempt;
                    }
                }
            }
            return tx;
        }
    }

    /// Shards holding part of the transaction, ascending.
    pub fn shards(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().map(|(s, _)| *s)
    }

    /// Runs one step on `target` with the transaction's locks held.
    pub async fn run<R, F>(&self, target: usize, f: F) -> R
    where
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.shard.run_on(target, f).await
    }

    /// Runs one step of `client`'s command on the owner of `key` (in
    /// `db`) with the locks held. What the step did there (changes, the
    /// form it propagates as, keys expired on the way, keyspace events,
    /// whether it modified `key`) joins the command's record, which
    /// dispatch applies once it ends.
    pub async fn on<R, F>(&self, client: &Client, db: usize, key: &[u8], f: F) -> R
    where
        F: FnOnce(&mut Ctx, &[u8]) -> R + Send + 'static,
        R: Send + 'static,
    {
        let key: Key = key.into();
        let (no_touch, at) = (client.no_touch(), client.frozen_now);
        let (r, step) = self
            .run(client.shard.owner(&key), move |sh| {
                let r = sh.with_ctx_at(db, no_touch, at, |ctx| f(ctx, &key));
                let mut step = sh.ks.borrow_mut().take_step();
                if step.effects.modified {
                    step.modified.push((db, key));
                }
                (r, step)
            })
            .await;
        client.steps.borrow_mut().add(step);
        r
    }

    /// Takes over a lock taken for the same holder outside the lock order
    /// (a script's undeclared key), to release it with the others.
    pub fn adopt(&mut self, owner: usize, db: usize, key: Key) {
        match self.parts.binary_search_by_key(&owner, |(s, _)| *s) {
            Ok(i) => self.parts[i].1.push((db, key)),
            Err(i) => self.parts.insert(i, (owner, vec![(db, key)])),
        }
    }

    /// Releases every lock, waking commands that waited on them.
    pub async fn unlock(mut self) {
        let parts = std::mem::take(&mut self.parts);
        let releases = parts.into_iter().map(|(owner, keys)| self.shard.run_on(owner, move |sh| sh.unlock_keys(&keys)));
        futures::future::join_all(releases).await;
    }
}

/// Every shard held by one client (FLUSHALL, FLUSHDB, SWAPDB): barriers
/// raised in shard order, each once the transactions in flight there
/// finished. Nothing else runs until `end`.
pub struct Exclusive {
    shard: Rc<Shard>,
    raised: usize,
}

impl Exclusive {
    pub async fn begin(client: &Client) -> Exclusive {
        let holder = client.meta.id;
        let mut ex = Exclusive { shard: client.shard.clone(), raised: 0 };
        // An EXEC or a script holds keys already: transactions waiting for
        // them while holding others would keep a barrier from draining, so
        // they are told to back off first.
        if client.unit.is_some() {
            let all = (0..client.shard.count).map(|s| client.shard.run_on(s, move |sh| sh.start_yielding(holder)));
            futures::future::join_all(all).await;
        }
        for s in 0..client.shard.count {
            client.shard.run_on_async(s, move |sh| async move { sh.raise_barrier(holder).await }).await;
            ex.raised += 1;
        }
        ex
    }

    pub async fn end(mut self) {
        let raised = std::mem::take(&mut self.raised);
        let lowers = (0..raised).map(|s| self.shard.run_on(s, |sh| sh.lower_barrier()));
        futures::future::join_all(lowers).await;
    }
}

/// Dropped while raised (its holder panicked): lowered from a task.
impl Drop for Exclusive {
    fn drop(&mut self) {
        let raised = std::mem::take(&mut self.raised);
        if raised == 0 {
            return;
        }
        let shard = self.shard.clone();
        poller::spawn(async move {
            for s in 0..raised {
                shard.run_on(s, |sh| sh.lower_barrier()).await;
            }
        })
        .detach();
    }
}

/// A transaction dropped with its locks (its coordinator panicked and
/// unwound) releases them from a task of its own: no key stays locked.
impl Drop for Tx {
    fn drop(&mut self) {
        if self.parts.is_empty() {
            return;
        }
        let parts = std::mem::take(&mut self.parts);
        let shard = self.shard.clone();
        poller::spawn(async move {
            for (owner, keys) in parts {
                shard.run_on(owner, move |sh| sh.unlock_keys(&keys)).await;
            }
        })
        .detach();
    }
}
