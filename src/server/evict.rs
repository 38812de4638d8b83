//! `maxmemory` and its eviction policies.
//!
//! Memory is the process's (jemalloc's allocated bytes, refreshed at most
//! once a millisecond), keys are per shard: a shard over the limit evicts
//! its own keys, before running a command for a client and from its cron,
//! so a shard whose clients only touch other shards' keys still makes room.
//! Victims are picked as Redis does by sampling: `maxmemory-samples` keys
//! (or keys with a TTL, for volatile-*), the idlest for *-lru, the least
//! often used for *-lfu (Redis's logarithmic counter, decaying with
//! lfu-decay-time), the nearest to expiry for volatile-ttl, any for
//! *-random. Each eviction publishes `evicted`.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::shard::Shard;
use crate::config::Hot;
use crate::server::shared::now_ms;
use crate::storage::Key;
use crate::storage::events::EVICTED;

/// `maxmemory-policy`, as stored in `Hot` (the index in Redis's list).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Policy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    NoEviction,
}

impl Policy {
    pub const NAMES: &'static [&'static str] = &[
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "noeviction",
    ];
    const ALL: [Policy; 8] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllkeysLru,
        Policy::AllkeysLfu,
        Policy::AllkeysRandom,
        Policy::NoEviction,
    ];

    pub fn index(name: &str) -> u64 {
        Policy::NAMES.iter().position(|n| *n == name).unwrap_or(Policy::NAMES.len() - 1) as u64
    }

    pub fn from_index(i: u64) -> Policy {
        Policy::ALL.get(i as usize).copied().unwrap_or(Policy::NoEviction)
    }

    /// LFU policies track access frequency instead of idle time.
    pub fn lfu(self) -> bool {
        matches!(self, Policy::VolatileLfu | Policy::AllkeysLfu)
    }

    /// How keys record their use under this policy.
    pub fn access(self, log_factor: u32, decay_minutes: u32) -> crate::storage::Access {
        if self.lfu() {
            crate::storage::Access::Lfu { log_factor, decay_minutes }
        } else {
            crate::storage::Access::Lru { in_rdb: matches!(self, Policy::VolatileLru | Policy::AllkeysLru) }
        }
    }

    fn volatile(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileRandom | Policy::VolatileTtl)
    }
}

/// Bytes allocated by the process, refreshed at most once a millisecond.
pub fn used_memory(shard: &Shard) -> u64 {
    let server = &shard.server;
    let now = now_ms() as u64;
    if server.memory_checked_ms.swap(now, Ordering::Relaxed) != now {
        let _ = tikv_jemalloc_ctl::epoch::advance();
        let allocated = tikv_jemalloc_ctl::stats::allocated::read().unwrap_or(0) as u64;
        // Freed objects that sit in the threads' caches still count as
        // allocated: they are not in use, and counting them would make
        // the figure swing with whatever the caches hold.
        // (4096 is MALLCTL_ARENAS_ALL: every arena merged.)
        // SAFETY: the name is NUL-terminated and the value a size_t.
        let cached = unsafe { tikv_jemalloc_ctl::raw::read::<usize>(b"stats.arenas.4096.tcache_bytes\0") };
        let used = allocated.saturating_sub(cached.unwrap_or(0) as u64);
        server.used_memory.store(used, Ordering::Relaxed);
        server.used_memory_peak.fetch_max(used, Ordering::Relaxed);
    }
    server.used_memory.load(Ordering::Relaxed)
}

/// Memory as eviction counts it, read now (INFO and MEMORY report the
/// same number the limit is judged by).
pub fn used_memory_now(shard: &Shard) -> u64 {
    shard.server.memory_checked_ms.store(0, Ordering::Relaxed);
    used_memory(shard)
}

/// A command that may grow memory has run: under a limit, the next check
/// reads memory afresh (so the command after it evicts what it needs).
pub fn memory_may_grow(shard: &Shard) {
    if Hot::get(&shard.server.hot.maxmemory) > 0 {
        shard.server.memory_checked_ms.store(0, Ordering::Relaxed);
    }
}

/// Whether the process is over `maxmemory` (never when it is 0).
pub fn over_limit(shard: &Shard) -> bool {
    let max = Hot::get(&shard.server.hot.maxmemory);
    max > 0 && used_memory(shard) > max
}

/// Before a command that may grow memory: evicts here, or on the other
/// shards when this one has nothing left to give. False: over the limit
/// and nothing could be evicted (the command gets OOM).
pub async fn make_room(shard: &Rc<Shard>) -> bool {
    if shard.evict(16) {
        return true;
    }
    for s in (0..shard.count).filter(|&s| s != shard.id) {
        if shard.run_on(s, |sh| sh.evict(16)).await {
            return true;
        }
    }
    false
}

/// How many candidates the eviction pool keeps (Redis's EVPOOL_SIZE).
const EVICTION_POOL: usize = 16;

impl Shard {
    /// Evicts keys of this shard until memory is under the limit, at most
    /// `budget` of them. Returns false when it ran out of keys the policy
    /// may evict while still over the limit (Redis's EVICT_FAIL); a spent
    /// budget lets the command run while eviction catches up, as Redis's
    /// time limit does.
    pub fn evict(self: &Rc<Self>, budget: usize) -> bool {
        if !over_limit(self) {
            return true;
        }
        let policy = Policy::from_index(Hot::get(&self.server.hot.maxmemory_policy));
        if policy == Policy::NoEviction {
            return false;
        }
        let notify = self.arm_notifications();
        let mut freed_any = false;
        let mut ran_out = false;
        for _ in 0..budget {
            let Some((db, key)) = self.pick_victim(policy) else {
                ran_out = true;
                break;
            };
            let now = self.now();
            let mut ks = self.ks.borrow_mut();
            if ks.dbs[db].remove(&key, now).is_some() {
                ks.dbs[db].touch(&key);
                if ks.journal {
                    let lazy = self.server.hot.lazyfree_lazy_eviction.load(std::sync::atomic::Ordering::Relaxed);
                    self.journal(vec![crate::journal::Op::del(db, &key, lazy)]);
                }
                ks.note(EVICTED, "evicted", db, &key);
                freed_any = true;
                self.server.evicted_keys.fetch_add(1, Ordering::Relaxed);
            }
            drop(ks);
            // Memory is re-read at most once a millisecond: check by count.
            self.server.memory_checked_ms.store(0, Ordering::Relaxed);
            if !over_limit(self) {
                break;
            }
        }
        self.signal_changed(None);
        if freed_any && notify != 0 {
            self.publish_events();
        }
        !ran_out || !over_limit(self)
    }

    /// The key `policy` would evict next from this shard: as Redis's
    /// eviction pool, `maxmemory-samples` keys of every database join the
    /// best candidates kept from earlier rounds, and the best of them
    /// that still exists goes.
    fn pick_victim(&self, policy: Policy) -> Option<(usize, Key)> {
        let samples = Hot::get(&self.server.hot.maxmemory_samples).max(1) as usize;
        let now = self.now();
        let mut ks = self.ks.borrow_mut();
        let has = |d: &crate::storage::Db| if policy.volatile() { d.expires_len() > 0 } else { d.len() > 0 };
        let sample =
            |d: &mut crate::storage::Db| if policy.volatile() { d.random_volatile_key() } else { d.random_key(now) };
        if matches!(policy, Policy::VolatileRandom | Policy::AllkeysRandom) {
            let db = ks.dbs.iter().position(has)?;
            return sample(&mut ks.dbs[db]).map(|k| (db, k));
        }
        let mut pool = self.evict_pool.borrow_mut();
        for (db, d) in ks.dbs.iter_mut().enumerate().filter(|(_, d)| has(d)) {
            for _ in 0..samples {
                let Some(key) = sample(d) else { break };
                // A higher score is a better victim.
                let score = match policy {
                    Policy::VolatileTtl => -d.expire_of(&key).unwrap_or(i64::MAX),
                    _ if policy.lfu() => 255 - d.peek(&key).map_or(0, |e| i64::from(e.freq(now))),
                    _ => d.idle_ms(&key, now).unwrap_or(0),
                };
                if pool.iter().any(|(_, pdb, k)| *pdb == db && *k == key) {
                    continue;
                }
                let at = pool.partition_point(|(s, _, _)| *s <= score);
                if pool.len() < EVICTION_POOL || at > 0 {
                    pool.insert(at, (score, db, key));
                    if pool.len() > EVICTION_POOL {
                        pool.remove(0);
                    }
                }
            }
        }
        while let Some((_, db, key)) = pool.pop() {
            if ks.dbs[db].contains(&key, now) {
                return Some((db, key));
            }
        }
        None
    }
}
