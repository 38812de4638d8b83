//! Active expiry: the per-shard adaptive sampler, after Redis's
//! `activeExpireCycle`.
//!
//! Every tick each database is sampled 20 keys at a time; while more than
//! 10% of a sample had expired the database is sampled again, so a shard
//! full of dead keys spends more effort, bounded by a time budget per tick.

use std::time::{Duration, Instant};

use super::Keyspace;

const SAMPLE: usize = 20;
const ACCEPTABLE_STALE_PERCENT: usize = 10;

/// What one cycle did, for INFO's stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct CycleStats {
    pub expired: usize,
    pub timed_out: bool,
}

/// `held(db, key)`: the key is locked by a transaction or script, which
/// must see it as of its own instant, so it does not expire under it.
pub fn active_expire_cycle(
    ks: &mut Keyspace,
    now_ms: i64,
    budget: Duration,
    held: &dyn Fn(usize, &[u8]) -> bool,
) -> CycleStats {
    let start = Instant::now();
    let mut stats = CycleStats::default();
    for (i, db) in ks.dbs.iter_mut().enumerate() {
        let mut rounds = 0u32;
        loop {
            let (sampled, expired) = db.expire_sample(SAMPLE, now_ms, |key| held(i, key));
            stats.expired += expired;
            if sampled == 0 || expired * 100 <= sampled * ACCEPTABLE_STALE_PERCENT {
                break;
            }
            rounds += 1;
            if rounds.is_multiple_of(16) && start.elapsed() > budget {
                stats.timed_out = true;
                return stats;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::value::{Str, Value};

    #[test]
    fn reclaims_untouched_keys_and_stops_when_clean() {
        let mut ks = Keyspace::new(2);
        for i in 0..1000 {
            let v = Value::Str(Str::from_bytes(b"x"));
            ks.dbs[1].insert(format!("k{i}").as_bytes(), v, if i < 900 { 10 } else { 0 }, 0);
        }
        let stats = active_expire_cycle(&mut ks, 100, Duration::from_secs(5), &|_, _| false);
        // Sampling continues while more than 10% of a sample is stale, so
        // nearly every dead key goes in one cycle.
        assert!(stats.expired >= 850, "expired {}", stats.expired);
        assert_eq!(ks.dbs[1].len(), 1000 - stats.expired);
        assert!(!stats.timed_out);
    }

    #[test]
    fn keys_in_use_by_a_transaction_do_not_expire_under_it() {
        let mut ks = Keyspace::new(1);
        for k in ["held", "free"] {
            ks.dbs[0].insert(k.as_bytes(), Value::Str(Str::from_bytes(b"x")), 10, 0);
        }
        let held = |db: usize, key: &[u8]| db == 0 && key == b"held";
        for _ in 0..10 {
            active_expire_cycle(&mut ks, 100, Duration::from_secs(5), &held);
        }
        assert_eq!(ks.dbs[0].len(), 1);
        active_expire_cycle(&mut ks, 100, Duration::from_secs(5), &|_, _| false);
        assert_eq!(ks.dbs[0].len(), 0);
    }
}
