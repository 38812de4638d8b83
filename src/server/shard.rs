//! One shard: the core-local owner of a set of slots, and its mailboxes.
//!
//! A `Shard` lives on one executor thread behind an `Rc`; nothing in it is
//! shared with other threads. Other cores reach it only through its
//! mailbox: a `Call` carries a closure to run here, a `Return` carries the
//! result back to the caller's core, which wakes the waiting task.
//!
//! Why not glommio's channel mesh: its receivers are woken by glommio's
//! reactor, and the shard's driver sleeps in `epoll_wait` instead (see
//! `poller`). A mailbox is a plain channel plus the target's [`Bell`],
//! and the target's driver drains it when the bell rang.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::channel::oneshot;
use std::sync::mpsc::{Receiver, Sender, channel};

use futures::future::LocalBoxFuture;

use super::blocking::BlockedKeys;
use super::client::ClientMeta;
use super::locks::LockTable;
use super::poller::{Bell, Poller, spawn};
use super::pubsub::Registry;
use super::shared::{Shared, now_ms};
use crate::command::Ctx;
use crate::storage::Keyspace;
use crate::storage::slots::key_owner;

pub type Payload = Box<dyn Any + Send>;

/// What a call answers when its job panicked: the caller panics in turn,
/// so the command that made the call fails as a whole (see
/// `dispatch::execute`) instead of waiting for an answer forever.
struct Panicked(Payload);
/// Work posted to run with a shard, answering nothing.
pub type ShardJob = Box<dyn FnOnce(&Rc<Shard>) + Send>;
pub type Job = Box<dyn FnOnce(Rc<Shard>) -> LocalBoxFuture<'static, Payload> + Send>;

pub enum Msg {
    Call {
        id: u64,
        from: usize,
        job: Job,
    },
    Return {
        id: u64,
        payload: Payload,
    },
    /// Runs on the shard's thread, answering nothing.
    Run(Box<dyn FnOnce() + Send>),
    /// Runs with the shard, answering nothing.
    With(ShardJob),
    /// The journal became durable further: wake the clients waiting.
    Durable,
}

/// Where other cores post messages for one shard.
pub struct Mailbox {
    tx: Sender<Msg>,
    bell: Arc<Bell>,
}

impl Mailbox {
    /// A mailbox and the receiving end its shard keeps.
    pub fn new() -> (Mailbox, Receiver<Msg>) {
        let (tx, rx) = channel();
        let bell = Arc::new(Bell::new().expect("eventfd failed: out of file descriptors at startup"));
        (Mailbox { tx, bell }, rx)
    }

    /// Tells the shard the journal is durable further.
    pub fn wake_durable(&self) {
        self.post(Msg::Durable);
    }

    /// Runs `job` with the shard (from any thread), answering nothing.
    pub fn send_with(&self, job: ShardJob) {
        self.post(Msg::With(job));
    }

    /// Posts `msg` and wakes the shard; false once the shard is gone.
    fn post(&self, msg: Msg) -> bool {
        let sent = self.tx.send(msg).is_ok();
        self.bell.ring();
        sent
    }
}

/// Per-shard counters, summed across shards by INFO.
#[derive(Debug, Default)]
pub struct ShardStats {
    pub commands: Cell<u64>,
    pub net_input: Cell<u64>,
    pub net_output: Cell<u64>,
    pub expire_cycle_timeouts: Cell<u64>,
    /// Reply buffers the cron shrank and grew.
    pub reply_shrinks: Cell<u64>,
    pub reply_expands: Cell<u64>,
    /// Reads from and writes to client sockets.
    pub reads: Cell<u64>,
    pub writes: Cell<u64>,
}

pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub server: Arc<Shared>,
    pub ks: RefCell<Keyspace>,
    pub locks: RefCell<LockTable>,
    pub clients: RefCell<HashMap<u64, Rc<ClientMeta>>>,
    /// The accept loops of this shard's listeners.
    pub accepting: RefCell<Vec<glommio::Task<()>>>,
    pub pubsub: RefCell<Registry>,
    /// This shard's part of the tracking table (client-side caching).
    pub tracking: RefCell<super::tracking::Table>,
    pub blocked: RefCell<BlockedKeys>,
    /// This shard's Lua interpreter, started by its first script.
    pub scripts: RefCell<Option<Rc<crate::scripting::Engine>>>,
    pub stats: ShardStats,
    /// What the commands answered here cost (INFO commandstats...).
    pub cmdstats: RefCell<super::stats::CommandStats>,
    /// Clients waiting for a CLIENT PAUSE to end.
    pub pause_waiters: RefCell<Vec<std::task::Waker>>,
    /// The best eviction candidates seen so far: (score, db, key), best
    /// last.
    pub evict_pool: RefCell<Vec<(i64, usize, crate::storage::Key)>>,
    pub poller: Rc<Poller>,
    /// Every shard's mailbox, by shard id.
    mailboxes: Arc<[Mailbox]>,
    inbox: Receiver<Msg>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Payload>>>,
    next_call: Cell<u64>,
    /// Clients waiting for their writes to be durable.
    durable_waiters: RefCell<Vec<std::task::Waker>>,
    /// Whether startup is over (see `accept_loop`), and the listeners
    /// waiting for it.
    started: Cell<bool>,
    start_waiters: RefCell<Vec<std::task::Waker>>,
    /// This shard's clients in MONITOR mode.
    pub monitors: RefCell<Vec<u64>>,
    clock_ms: Cell<i64>,
}

impl Shard {
    pub fn new(id: usize, server: Arc<Shared>, mailboxes: Arc<[Mailbox]>, inbox: Receiver<Msg>) -> Rc<Shard> {
        let databases = server.config(|c| c.int("databases")) as usize;
        let poller =
            Poller::new(mailboxes[id].bell.clone()).expect("epoll_create1 failed: out of file descriptors at startup");
        Rc::new(Shard {
            id,
            count: server.shards,
            server,
            ks: RefCell::new(Keyspace::new(databases)),
            locks: RefCell::new(LockTable::default()),
            clients: RefCell::new(HashMap::new()),
            accepting: RefCell::default(),
            pubsub: RefCell::new(Registry::default()),
            tracking: RefCell::default(),
            blocked: RefCell::new(BlockedKeys::default()),
            scripts: RefCell::new(None),
            stats: ShardStats::default(),
            cmdstats: RefCell::default(),
            pause_waiters: RefCell::default(),
            evict_pool: RefCell::default(),
            poller,
            mailboxes,
            inbox,
            pending: RefCell::new(HashMap::new()),
            next_call: Cell::new(0),
            durable_waiters: RefCell::new(Vec::new()),
            started: Cell::new(false),
            start_waiters: RefCell::new(Vec::new()),
            monitors: RefCell::new(Vec::new()),
            clock_ms: Cell::new(now_ms()),
        })
    }

    /// Runs `f` with a command context on database `db` of this shard.
    pub fn with_ctx<R>(&self, db: usize, no_touch: bool, f: impl FnOnce(&mut Ctx) -> R) -> R {
        self.with_ctx_at(db, no_touch, None, f)
    }

    /// `with_ctx` at time `at` (a unit's held clock) instead of now.
    pub fn with_ctx_at<R>(&self, db: usize, no_touch: bool, at: Option<i64>, f: impl FnOnce(&mut Ctx) -> R) -> R {
        let mut ks = self.ks.borrow_mut();
        // Record the keyspace events wanted now (the command may be one
        // step of a write coordinated by another shard), and expired keys
        // while the journal runs.
        ks.set_notify(self.notify_flags());
        ks.set_journal(
            self.server.journal.active(),
            self.server.hot.lazyfree_lazy_expire.load(std::sync::atomic::Ordering::Relaxed),
        );
        ks.set_loading(self.server.loading.load(std::sync::atomic::Ordering::Relaxed));
        ks.set_keep_expired(self.server.holds_expiry());
        ks.effects = Default::default();
        let mut ctx = Ctx {
            ks: &mut ks,
            db,
            now: at.unwrap_or_else(|| self.now()),
            no_touch,
            hot: &self.server.hot,
            loading: self.server.loading.load(Ordering::Relaxed),
        };
        f(&mut ctx)
    }

    /// Resolves once every journal record stamped up to `stamp` is durable
    /// (appendfsync always: fsynced).
    pub async fn durable(&self, stamp: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        let journal = &self.server.journal;
        std::future::poll_fn(|cx| {
            if journal.durable() >= stamp {
                return std::task::Poll::Ready(());
            }
            self.durable_waiters.borrow_mut().push(cx.waker().clone());
            self.server.durable_wanted[self.id].store(true, SeqCst);
            // The round runs once this shard's ready connections all ran
            // (`flush_durable`), so one fsync covers their writes.
            journal.note_wanted(stamp);
            // The writer sets durable before it looks at the flag.
            if journal.durable() >= stamp { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
        })
        .await
    }

    /// Waits until startup is over (`set_started`).
    pub async fn started(&self) {
        std::future::poll_fn(|cx| {
            if self.started.get() {
                return std::task::Poll::Ready(());
            }
            self.start_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    pub fn set_started(&self) {
        self.started.set(true);
        let waiters = std::mem::take(&mut *self.start_waiters.borrow_mut());
        waiters.into_iter().for_each(|w| w.wake());
    }

    /// Before the shard sleeps, with clients waiting for durability: runs
    /// the writer's round here (write and fsync, as Redis does before it
    /// sleeps), or, when another thread runs one, makes sure a round
    /// follows for what this shard's clients wait on. Returns whether it
    /// woke clients.
    pub fn flush_durable(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if self.durable_waiters.borrow().is_empty() {
            return false;
        }
        let journal = &self.server.journal;
        if journal.durable() < journal.wanted() {
            // Not mailed about its own round: its waiters are woken below.
            self.server.durable_wanted[self.id].store(false, SeqCst);
            if !self.server.aof.flush_now(&self.server) {
                self.server.durable_wanted[self.id].store(true, SeqCst);
                journal.want(journal.wanted());
                return false;
            }
        }
        let waiters = std::mem::take(&mut *self.durable_waiters.borrow_mut());
        waiters.into_iter().for_each(|w| w.wake());
        true
    }

    /// Appends `ops` to the journal as one record from this shard (a
    /// block when there are several); nothing when there are none.
    pub fn journal(&self, ops: Vec<crate::journal::Op>) {
        if !ops.is_empty() && self.server.journal.active() {
            self.server.journal.append(self.id, ops);
        }
    }

    /// Every shard's mailbox (for threads that wake shards).
    pub fn mailboxes(&self) -> Arc<[Mailbox]> {
        self.mailboxes.clone()
    }

    pub fn owner(&self, key: &[u8]) -> usize {
        key_owner(key, self.count)
    }

    pub fn databases(&self) -> usize {
        self.ks.borrow().dbs.len()
    }

    /// Runs `f` on shard `target` and returns its result; a local target
    /// runs inline.
    pub async fn run_on<R, F>(self: &Rc<Self>, target: usize, f: F) -> R
    where
        F: FnOnce(&Rc<Shard>) -> R + Send + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return f(self);
        }
        self.hop(target, Box::new(move |sh| Box::pin(async move { Box::new(f(&sh)) as Payload }))).await
    }

    /// Like `run_on` for work that has to wait on the target (key locks).
    pub async fn run_on_async<R, F, Fut>(self: &Rc<Self>, target: usize, f: F) -> R
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return f(self.clone()).await;
        }
        self.hop(target, Box::new(move |sh| Box::pin(async move { Box::new(f(sh).await) as Payload }))).await
    }

    /// Runs `f` on every shard (this one inline) and returns the results in
    /// shard order.
    pub async fn broadcast<R, F>(self: &Rc<Self>, f: F) -> Vec<R>
    where
        F: Fn(&Rc<Shard>) -> R + Send + Clone + 'static,
        R: Send + 'static,
    {
        let calls = (0..self.count).map(|s| {
            let f = f.clone();
            self.run_on(s, move |sh| f(sh))
        });
        futures::future::join_all(calls).await
    }

    async fn hop<R: 'static>(self: &Rc<Self>, target: usize, job: Job) -> R {
        let id = self.next_call.get();
        self.next_call.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if !self.mailboxes[target].post(Msg::Call { id, from: self.id, job }) {
            panic!("shard {target} mailbox closed while the server is running");
        }
        let payload = rx.await.expect("a call is always answered");
        let payload = match payload.downcast::<Panicked>() {
            Ok(panicked) => std::panic::resume_unwind(panicked.0),
            Err(payload) => payload,
        };
        *payload.downcast::<R>().expect("a call returns the type its closure produced")
    }

    /// Runs `f` on shard `target`'s thread without waiting for it. Whatever
    /// wakes a task of another shard goes through here: a waker called
    /// from this thread would reach that shard only through glommio's
    /// reactor, which its driver does not turn while it sleeps.
    pub fn post(&self, target: usize, f: impl FnOnce() + Send + 'static) {
        if target == self.id {
            f();
        } else {
            self.mailboxes[target].post(Msg::Run(Box::new(f)));
        }
    }

    /// Runs `f` with shard `target` without waiting for it (inline when
    /// it is this one). Posts from one shard reach another in order, and
    /// count against its back-pressure until run (`fanout`).
    pub fn post_with(self: &Rc<Self>, target: usize, f: impl FnOnce(&Rc<Shard>) + Send + 'static) {
        if target == self.id {
            f(self);
        } else {
            self.server.fanout.posted(target);
            self.mailboxes[target].post(Msg::With(Box::new(move |sh: &Rc<Shard>| {
                f(sh);
                sh.server.fanout.ran(sh.id);
            })));
        }
    }

    /// Takes every message posted here: runs calls (each as its own task,
    /// since it may wait on key locks) and completes returned calls. The
    /// clock is read once for the batch, as for a read from a client.
    pub fn take_mail(self: &Rc<Self>) {
        let mut ticked = false;
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                Msg::Call { id, from, job } => {
                    if !ticked {
                        self.tick();
                        ticked = true;
                    }
                    let shard = self.clone();
                    spawn(async move {
                        let job = std::panic::AssertUnwindSafe(job(shard.clone()));
                        let payload = match futures::FutureExt::catch_unwind(job).await {
                            Ok(payload) => payload,
                            Err(panic) => Box::new(Panicked(panic)),
                        };
                        shard.mailboxes[from].post(Msg::Return { id, payload });
                    })
                    .detach();
                }
                Msg::Return { id, payload } => {
                    if let Some(tx) = self.pending.borrow_mut().remove(&id) {
                        let _ = tx.send(payload);
                    }
                }
                Msg::Run(f) => f(),
                Msg::With(f) => f(self),
                Msg::Durable => self.durable_waiters.borrow_mut().drain(..).for_each(|w| w.wake()),
            }
        }
    }

    /// The time commands see: read once per batch of work (a read from a
    /// client, a message from another shard, a cron tick), as Redis caches
    /// its clock per command, so a pipeline does not pay a clock read per
    /// command.
    pub fn now(&self) -> i64 {
        self.clock_ms.get()
    }

    /// Refreshes the cached clock; returns it.
    pub fn tick(&self) -> i64 {
        let now = now_ms();
        self.clock_ms.set(now);
        now
    }
}
