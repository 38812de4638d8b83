//! Back-pressure for work one shard hands another without waiting for
//! it (keyspace notifications, client-side caching invalidations).
//!
//! Such a post costs its sender nothing, so a shard writing fast can
//! queue work on a busy or stalled one without limit. Every post is
//! counted against its target until the target has run it; while some
//! shard has more than `HIGH_WATER` posts waiting, connections on every
//! shard stop taking new requests (they finish what they read) until it
//! catches up. The target's progress never depends on a connection, so
//! the wait cannot deadlock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Posts a shard may have waiting before connections hold back.
const HIGH_WATER: usize = 16_384;

/// How often a held-back connection looks again.
const RECHECK: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct Fanout {
    /// Per target shard: posts not yet run there.
    waiting: Vec<AtomicUsize>,
    /// Shards past the high-water mark.
    congested: AtomicUsize,
}

impl Fanout {
    pub fn new(shards: usize) -> Fanout {
        Fanout { waiting: (0..shards).map(|_| AtomicUsize::new(0)).collect(), congested: AtomicUsize::new(0) }
    }

    /// A post to `target` is on its way. (Crossings of the mark are seen
    /// once each way, since they are steps of one counter.)
    pub fn posted(&self, target: usize) {
        if self.waiting[target].fetch_add(1, Ordering::Relaxed) == HIGH_WATER {
            self.congested.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `target` ran one.
    pub fn ran(&self, target: usize) {
        if self.waiting[target].fetch_sub(1, Ordering::Relaxed) == HIGH_WATER + 1 {
            self.congested.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn congested(&self) -> bool {
        // (Wraps below zero for a moment when a shard's way down is
        // counted before its way up: still "congested" until both are.)
        self.congested.load(Ordering::Relaxed) != 0
    }

    /// Returns once no shard is past the mark.
    pub async fn wait_clear(&self) {
        while self.congested() {
            super::poller::sleep(RECHECK).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_congested_from_past_the_mark_until_back_at_it() {
        let f = Fanout::new(2);
        for _ in 0..HIGH_WATER {
            f.posted(1);
        }
        assert!(!f.congested());
        f.posted(1);
        assert!(f.congested());
        f.posted(0);
        f.ran(0);
        assert!(f.congested(), "another shard's traffic does not clear it");
        f.ran(1);
        assert!(!f.congested());
    }

    #[test]
    fn a_crossing_down_counted_before_its_crossing_up_still_clears() {
        let f = Fanout::new(1);
        f.waiting[0].store(HIGH_WATER + 1, Ordering::Relaxed);
        // The target ran one before the sender that crossed counted it.
        f.ran(0);
        assert!(f.congested());
        f.congested.fetch_add(1, Ordering::Relaxed);
        assert!(!f.congested());
    }
}
