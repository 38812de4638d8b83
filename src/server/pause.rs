//! CLIENT PAUSE: until a deadline (or CLIENT UNPAUSE), clients' commands
//! wait before they run: every command (ALL) or those that may write or
//! replicate (WRITE), as Redis postpones them. While paused the shards
//! expire nothing and evict nothing, so the dataset holds still.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Poll, Waker};

use super::shard::Shard;
use super::shared::now_ms;

#[derive(Debug, Default)]
pub struct Pause {
    /// Until when (unix ms; 0: not paused).
    end_ms: AtomicI64,
    all: AtomicBool,
    /// Changes at every pause and unpause, for waiters to notice.
    generation: AtomicU64,
}

impl Pause {
    /// Pauses until `end_ms`; a pause in force is only ever extended or
    /// made stricter, as Redis's pauseClients does.
    pub fn start(&self, end_ms: i64, all: bool) {
        if self.end_ms.load(Ordering::SeqCst) <= now_ms() {
            self.all.store(all, Ordering::SeqCst);
        } else if all {
            self.all.store(true, Ordering::SeqCst);
        }
        self.end_ms.fetch_max(end_ms, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.end_ms.store(0, Ordering::SeqCst);
        self.all.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The deadline of a pause that holds a command that `writes` (or any
    /// command, under ALL); None when it may run.
    pub fn holds(&self, writes: bool) -> Option<i64> {
        let end = self.end_ms.load(Ordering::Acquire);
        if end == 0 || end <= now_ms() {
            return None;
        }
        (writes || self.all.load(Ordering::Acquire)).then_some(end)
    }

    /// Whether writes are paused (expiry and eviction then wait too).
    pub fn active(&self) -> bool {
        self.holds(true).is_some()
    }
}

impl Shard {
    /// Waits while the pause holds a command that `writes`; the client
    /// counts as blocked meanwhile, as a postponed client does in Redis.
    pub async fn wait_unpaused(&self, writes: bool) {
        let pause = &self.server.pause;
        if pause.holds(writes).is_none() {
            return;
        }
        self.server.blocked_clients.fetch_add(1, Ordering::Relaxed);
        while let Some(end) = pause.holds(writes) {
            let seen = pause.generation.load(Ordering::SeqCst);
            let changed = std::future::poll_fn(|cx| {
                if pause.generation.load(Ordering::SeqCst) != seen {
                    return Poll::Ready(());
                }
                self.pause_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            });
            let left = std::time::Duration::from_millis((end - now_ms()).max(1) as u64);
            futures::future::select(std::pin::pin!(changed), std::pin::pin!(super::poller::sleep(left))).await;
        }
        self.server.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    }

    /// The pause changed: this shard's waiting clients look again.
    pub fn pause_changed(&self) {
        let waiters: Vec<Waker> = std::mem::take(&mut *self.pause_waiters.borrow_mut());
        waiters.into_iter().for_each(Waker::wake);
    }
}
