//! Per-connection state. `Client` is owned by the connection task;
//! `ClientMeta` is the part other code may read (CLIENT LIST, CLIENT KILL)
//! through the shard's registry.

use crate::journal::Op;
use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;

use super::poller::Readiness;
use super::pubsub::Subscriptions;
use super::shard::Shard;
use super::shared::now_ms;
use crate::command::{self, OwnedArgs};
use crate::protocol::Proto;
use crate::storage::Key;

/// A command's row as this server runs it (with its `Client`).
pub type Spec = command::Spec<Client>;
pub type Handler = command::Handler<Client>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// CLIENT REPLY SKIP: the next command's reply is dropped.
    SkipNext,
    /// The command being run is the one whose reply is dropped.
    Skipping,
}

/// What a connection is to replication (CLIENT LIST's M and S flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Normal,
    /// This server's master, whose stream it applies.
    Master,
    /// A replica of this server.
    Replica,
}

#[derive(Debug)]
pub struct ClientMeta {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub created_ms: i64,
    pub name: RefCell<Option<String>>,
    pub db: Cell<usize>,
    pub proto: Cell<Proto>,
    pub last_cmd: Cell<&'static str>,
    /// Memory was over maxmemory, with nothing left to evict, when the
    /// running command passed the gate (Redis's pre_command_oom_state: a
    /// script without flags may then not begin writing).
    pub out_of_memory: Cell<bool>,
    pub last_active_ms: Cell<i64>,
    /// The query buffer's unprocessed bytes (the running command's
    /// included), the running command's argument bytes, and the read
    /// buffer's size, for CLIENT LIST.
    pub qbuf: Cell<usize>,
    pub argv_mem: Cell<usize>,
    pub rbuf_size: Cell<usize>,
    pub no_evict: Cell<bool>,
    pub no_touch: Cell<bool>,
    /// In MONITOR mode (CLIENT LIST's O flag).
    pub monitor: Cell<bool>,
    pub killed: Cell<bool>,
    /// Pushes (Pub/Sub messages) not yet handed to the connection.
    pub outbox: RefCell<Vec<u8>>,
    /// Since when the outbox is over the soft output limit.
    pub soft_limit_since: Cell<Option<i64>>,
    /// The connection's readiness, to wake it for pushes.
    pub ready: OnceCell<Rc<Readiness>>,
    /// Channels, patterns and shard channels subscribed, for CLIENT LIST.
    pub sub_counts: Cell<(usize, usize, usize)>,
    /// Queued commands while in MULTI (-1 outside), for CLIENT LIST.
    pub multi_len: Cell<i64>,
    /// Set while the client waits in a blocking command: CLIENT UNBLOCK
    /// sends through it (true: answer with an error).
    pub unblock: RefCell<Option<futures::channel::oneshot::Sender<bool>>>,
    /// CLIENT TRACKING's mode.
    pub tracking: RefCell<super::tracking::Mode>,
    /// Invalidations its own command caused: they follow that command's
    /// reply (the outbox goes before the next reply).
    pub deferred: RefCell<Vec<u8>>,
    /// The reply and read buffers' sizing.
    pub sizing: super::buffers::Sizing,
    pub role: Cell<Role>,
}

impl ClientMeta {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32) -> ClientMeta {
        let now = now_ms();
        ClientMeta {
            id,
            addr,
            laddr,
            fd,
            created_ms: now,
            name: RefCell::new(None),
            db: Cell::new(0),
            proto: Cell::new(Proto::Resp2),
            last_cmd: Cell::new("NULL"),
            out_of_memory: Cell::new(false),
            last_active_ms: Cell::new(now),
            qbuf: Cell::new(0),
            argv_mem: Cell::new(0),
            rbuf_size: Cell::new(0),
            no_evict: Cell::new(false),
            no_touch: Cell::new(false),
            monitor: Cell::new(false),
            killed: Cell::new(false),
            outbox: RefCell::new(Vec::new()),
            soft_limit_since: Cell::new(None),
            ready: OnceCell::new(),
            sub_counts: Cell::new((0, 0, 0)),
            multi_len: Cell::new(-1),
            unblock: RefCell::new(None),
            tracking: RefCell::default(),
            deferred: RefCell::default(),
            sizing: super::buffers::Sizing::new(now),
            role: Cell::new(Role::Normal),
        }
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order.
    pub fn describe(&self) -> String {
        let now = now_ms();
        let (subs, psubs, ssubs) = self.sub_counts.get();
        let tracking = self.tracking.borrow();
        // In Redis's order.
        let set = [
            (self.role.get() == Role::Replica, 'S'),
            (self.role.get() == Role::Master, 'M'),
            (self.monitor.get(), 'O'),
            (subs + psubs + ssubs > 0, 'P'),
            (self.multi_len.get() >= 0, 'x'),
            (self.unblock.borrow().is_some(), 'b'),
            (tracking.on, 't'),
            (tracking.broken_redirect, 'R'),
            (tracking.bcast, 'B'),
            (self.no_evict.get(), 'e'),
            (self.no_touch.get(), 'T'),
        ];
        let mut flags: String = set.iter().filter(|(on, _)| *on).map(|&(_, c)| c).collect();
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem={} multi-mem=0 rbs={} rbp={} obl=0 oll=0 omem=0 tot-mem={} events=r cmd={} user=default redir={} resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.borrow().as_deref().unwrap_or(""),
            (now - self.created_ms) / 1000,
            (now - self.last_active_ms.get()) / 1000,
            flags,
            self.db.get(),
            subs,
            psubs,
            ssubs,
            self.multi_len.get(),
            self.qbuf.get(),
            self.rbuf_size.get().saturating_sub(self.qbuf.get()),
            self.argv_mem.get(),
            self.sizing.reply_size(),
            self.sizing.peak(),
            self.memory(),
            self.last_cmd.get(),
            if tracking.on { tracking.redirect as i64 } else { -1 },
            if self.proto.get() == Proto::Resp3 { 3 } else { 2 },
        )
    }

    /// Its type for CLIENT KILL / LIST TYPE, as Redis's getClientType.
    pub fn kind(&self) -> &'static str {
        let (subs, psubs, ssubs) = self.sub_counts.get();
        match self.role.get() {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Normal if subs + psubs + ssubs > 0 => "pubsub",
            Role::Normal => "normal",
        }
    }

    /// What the client costs: its buffers and its own state (CLIENT
    /// LIST's tot-mem, INFO's mem_clients_normal).
    pub fn memory(&self) -> usize {
        self.rbuf_size.get()
            + self.sizing.reply_size()
            + self.argv_mem.get()
            + self.outbox.borrow().capacity()
            + std::mem::size_of::<ClientMeta>()
    }

    /// Moves the queued pushes (Pub/Sub messages, invalidations from
    /// others) into `out`, where they leave before what follows.
    pub fn take_pushes(&self, out: &mut Vec<u8>) {
        let mut outbox = self.outbox.borrow_mut();
        if !outbox.is_empty() {
            out.append(&mut outbox);
            self.soft_limit_since.set(None);
        }
    }

    /// Wakes the connection to write what the outbox holds.
    pub fn wake(&self) {
        if let Some(r) = self.ready.get() {
            r.notify_push();
        }
    }

    /// Closes the socket under the connection task, which then sees EOF.
    pub fn kill(&self) {
        self.killed.set(true);
        // SAFETY: shutdown on a descriptor this process owns; it does not
        // close it, so the owning task's later close stays valid.
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }
}

/// Commands queued between MULTI and EXEC.
#[derive(Default)]
pub struct Multi {
    pub args: OwnedArgs,
    /// (command, first argument, argument count)
    pub cmds: Vec<(&'static Spec, usize, usize)>,
    /// A command failed to queue: EXEC answers EXECABORT.
    pub aborted: bool,
}

/// A WATCHed key: database, key, and its version when watched.
pub type Watched = (usize, Key, u64);

pub struct Client {
    pub meta: Rc<ClientMeta>,
    pub shard: Rc<Shard>,
    pub authenticated: bool,
    pub reply_mode: ReplyMode,
    /// Close the connection once the replies so far are written (QUIT,
    /// protocol errors, CLIENT KILL of oneself).
    pub close_after_reply: bool,
    pub multi: Option<Multi>,
    pub watched: Vec<Watched>,
    pub subs: Subscriptions,
    /// Running EXEC's queue: blocking commands do not block.
    pub in_exec: bool,
    /// The client a script's commands run as.
    pub in_script: bool,
    /// While an EXEC or a script runs: the time its commands see. Redis
    /// holds the clock for a whole unit, so no key expires halfway
    /// through one.
    pub frozen_now: Option<i64>,
    /// While an EXEC or a script runs: the effects of its commands, which
    /// the journal takes as one MULTI ... EXEC block when it ends.
    pub unit: Option<Vec<Op>>,
    /// A command that may write ran since the replies were last sent:
    /// under `appendfsync always` they wait until it is on disk.
    pub wrote: bool,
    /// Every shard held by this client's EXEC, since a FLUSHALL, FLUSHDB
    /// or SWAPDB in it: released when the EXEC is journalled.
    pub exclusive: Option<super::transaction::Exclusive>,
    /// What the steps of the coordinated write running now did on their
    /// shards, for dispatch to apply when it ends.
    pub steps: std::cell::RefCell<crate::storage::Step>,
    /// How long the running command waited blocked (not counted as its
    /// time in the stats, as Redis does not count it).
    pub waited: std::time::Duration,
    /// A write ran since WAIT last looked: `woff`, the stream offset of
    /// this client's last write, is to be taken again.
    pub repl_dirty: bool,
    pub woff: u64,
    /// What a replica said with REPLCONF, and its PSYNC: the connection
    /// then becomes the replica's stream.
    pub replconf: crate::replication::master::ReplConf,
    pub psync: Option<crate::replication::master::Psync>,
}

impl Client {
    pub fn new(shard: Rc<Shard>, meta: Rc<ClientMeta>) -> Client {
        let authenticated = shard.server.requirepass().is_none();
        Client {
            meta,
            shard,
            authenticated,
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            multi: None,
            watched: Vec::new(),
            subs: Subscriptions::default(),
            in_exec: false,
            in_script: false,
            frozen_now: None,
            unit: None,
            wrote: false,
            exclusive: None,
            steps: Default::default(),
            waited: std::time::Duration::ZERO,
            repl_dirty: false,
            woff: 0,
            replconf: Default::default(),
            psync: None,
        }
    }

    /// Commands that come from this server's own history: the AOF being
    /// replayed, or its master's stream. They pass the gates clients
    /// meet (read-only replica, memory, pause, MISCONF).
    pub fn replayed(&self) -> bool {
        self.meta.id == crate::persistence::AOF_CLIENT_ID || self.meta.role.get() == Role::Master
    }

    /// The client a script's commands run as: the caller's id (so the
    /// caller's locks are its own), its database, never blocking.
    pub fn for_script(shard: Rc<Shard>, id: u64, db: usize, now: i64) -> Client {
        let meta = Rc::new(ClientMeta::new(id, String::new(), String::new(), -1));
        meta.db.set(db);
        let mut c = Client::new(shard, meta);
        c.authenticated = true;
        c.in_exec = true;
        c.in_script = true;
        c.frozen_now = Some(now);
        c.unit = Some(Vec::new());
        c
    }

    /// Journals `ops`, the effects of a command this client ran: into its
    /// EXEC or script when one runs, else as a record of their own.
    pub fn propagate(&mut self, ops: Vec<Op>) {
        match &mut self.unit {
            Some(unit) => unit.extend(ops),
            None => self.shard.journal(ops),
        }
    }

    /// Drops every WATCH of the client (EXEC, DISCARD, UNWATCH, RESET, disconnect).
    pub async fn unwatch_all(&mut self) {
        if self.watched.is_empty() {
            return;
        }
        for (db, key, _) in std::mem::take(&mut self.watched) {
            self.shard.run_on(self.shard.owner(&key), move |sh| sh.ks.borrow_mut().dbs[db].unwatch(&key)).await;
        }
        self.shard.server.watching.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops every subscription of the client, without replies (RESET,
    /// disconnect).
    pub fn unsubscribe_all(&mut self) {
        for kind in [super::pubsub::Kind::Channel, super::pubsub::Kind::Pattern, super::pubsub::Kind::Shard] {
            for name in std::mem::take(self.subs.of(kind)) {
                self.shard.unsubscribe(kind, &name, self.meta.id);
            }
        }
        self.publish_sub_counts();
    }

    /// Its subscription counts as CLIENT LIST shows them.
    pub fn publish_sub_counts(&self) {
        let s = &self.subs;
        self.meta.sub_counts.set((s.channels.len(), s.patterns.len(), s.shard.len()));
    }

    /// The coordinated write running now made `n` changes (one that
    /// counts them itself rather than through its steps: FLUSHALL...).
    pub fn changed(&self, n: u64) {
        *self.steps.borrow_mut().effects.changes.get_or_insert(0) += n;
    }

    pub fn db(&self) -> usize {
        self.meta.db.get()
    }

    pub fn proto(&self) -> Proto {
        self.meta.proto.get()
    }

    /// Whether a protected action (`enable-debug-command`,
    /// `enable-module-command`, `enable-protected-configs`) is allowed to
    /// this client: "yes", or "local" from a loopback address.
    pub fn may(&self, setting: &str) -> bool {
        let value = self.shard.server.config(|c| c.str(setting).to_string());
        let local = self.meta.addr.starts_with("127.0.0.1:") || self.meta.addr.starts_with("[::1]:");
        value == "yes" || (value == "local" && local)
    }

    pub fn no_touch(&self) -> bool {
        self.meta.no_touch.get()
    }

    /// The time a unit (EXEC, script) starting now runs at: the outer
    /// unit's when nested.
    pub fn unit_now(&self) -> i64 {
        self.frozen_now.unwrap_or_else(crate::server::shared::now_ms)
    }
}
