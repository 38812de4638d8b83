//! Master–replica replication in Redis's protocol, so that real Redis and
//! percore replicate each other both ways.
//!
//! The stream is the journal (see `journal`): on a master, a pump thread
//! merges the shards' logs into one byte stream, Redis's command stream,
//! whose bytes feed the backlog; every replica connection sends from the
//! backlog at its own position (`master`). A full sync is a point-in-time
//! image of every shard cut, with every shard held, at the exact stream
//! offset it announces in +FULLRESYNC. On a replica one task per server
//! keeps the link to its master (`replica`): handshake, the RDB, then the
//! master's commands applied in stream order through dispatch, and the
//! received bytes fed unchanged into this server's backlog so that its own
//! replicas get the same stream, replid and offsets.

pub mod backlog;
pub mod master;
pub mod replica;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use backlog::Backlog;

use crate::server::shard::Mailbox;
use crate::server::shared::{Shared, now_ms};

/// A replica as its master sees it (INFO's slaveN lines, ROLE, WAIT).
#[derive(Debug)]
pub struct Replica {
    pub client_id: u64,
    pub shard: usize,
    pub ip: String,
    /// REPLCONF listening-port (0 until told).
    pub port: u16,
    pub state: ReplicaState,
    /// The stream position sent up to.
    pub sent: u64,
    /// The offset it acknowledged, and when (ms).
    pub ack: u64,
    pub ack_ms: i64,
    /// Its sender waits for the stream to grow.
    pub parked: bool,
    /// Since when it is over the soft output limit.
    pub soft_since: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    /// Its image is being made and sent.
    Sync,
    Online,
}

impl ReplicaState {
    fn name(self) -> &'static str {
        match self {
            ReplicaState::Sync => "wait_bgsave",
            ReplicaState::Online => "online",
        }
    }
}

/// The link of a replica to its master.
#[derive(Debug, Clone)]
pub struct Link {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    pub last_io_ms: i64,
    /// When the link went down (ms; 0: it never came up).
    pub down_since_ms: i64,
    /// A transfer in progress: its size (-1: streamed, size unknown) and
    /// the bytes read.
    pub transfer_size: i64,
    pub transfer_read: u64,
    /// The stream position read from the master (slave_read_repl_offset).
    pub read_offset: u64,
    /// The master's client here (shard, id), while the link streams.
    pub client: Option<(usize, u64)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Connect,
    Connecting,
    Handshake,
    Transfer,
    Connected,
}

impl LinkState {
    /// ROLE's word for it.
    fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// The replication state that INFO, ROLE and the sync paths share.
#[derive(Debug)]
pub struct State {
    pub replid: String,
    pub replid2: String,
    /// Where the history of replid2 ends (-1: none).
    pub second_offset: i64,
    pub backlog: Option<Backlog>,
    /// master_repl_offset while there is no backlog.
    pub offset: u64,
    pub replicas: Vec<Replica>,
    pub master: Option<Link>,
    /// When the last replica went away (repl-backlog-ttl counts from it).
    pub alone_since_ms: i64,
    /// The database the master's stream last selected: a partial resync
    /// continues in it (Redis keeps its cached master client's).
    pub master_db: usize,
}

impl State {
    pub fn offset(&self) -> u64 {
        self.backlog.as_ref().map_or(self.offset, Backlog::end)
    }

    /// A new history: a new replid, the old one as replid2 up to here.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, crate::server::shared::random_id());
        self.second_offset = self.offset() as i64 + 1;
    }

    pub fn clear_replid2(&mut self) {
        self.replid2 = NO_ID.into();
        self.second_offset = -1;
    }
}

/// The replid2 of a server with no second history.
pub const NO_ID: &str = "0000000000000000000000000000000000000000";

pub struct Replication {
    state: Mutex<State>,
    /// This server replicates a master (`replicaof`): writes from clients
    /// are refused (replica-read-only), keys are not expired here.
    pub is_replica: AtomicBool,
    /// The link to the master is up (replica-serve-stale-data).
    pub link_up: AtomicBool,
    /// Changes with every REPLICAOF: the link task of an older one ends.
    pub generation: AtomicU64,
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Replicas whose diskless sync waits out repl-diskless-sync-delay.
    pub delayed: std::sync::atomic::AtomicUsize,
    pub pump: Mutex<Option<master::Pump>>,
    pump_started: AtomicBool,
    /// Every shard's mailbox, to wake replica senders from the pump.
    mailboxes: OnceLock<Arc<[Mailbox]>>,
}

impl Replication {
    pub fn new() -> Replication {
        Replication {
            state: Mutex::new(State {
                replid: crate::server::shared::random_id(),
                replid2: NO_ID.into(),
                second_offset: -1,
                backlog: None,
                offset: 0,
                replicas: Vec::new(),
                master: None,
                alone_since_ms: now_ms(),
                master_db: 0,
            }),
            is_replica: AtomicBool::new(false),
            link_up: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            delayed: Default::default(),
            pump: Mutex::new(None),
            pump_started: AtomicBool::new(false),
            mailboxes: OnceLock::new(),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn replid(&self) -> String {
        self.state().replid.clone()
    }

    /// DEBUG CHANGE-REPL-ID: a new history, and no second one.
    pub fn change_replid(&self) {
        let mut st = self.state();
        st.replid = crate::server::shared::random_id();
        st.clear_replid2();
    }

    /// Whether writes from clients are refused: a read-only replica.
    pub fn read_only(&self, server: &Shared) -> bool {
        self.is_replica.load(Ordering::Relaxed) && server.config(|c| c.str("replica-read-only") == "yes")
    }

    /// Whether data commands are refused (MASTERDOWN): a replica whose
    /// link is down, with replica-serve-stale-data no.
    pub fn stale(&self, server: &Shared) -> bool {
        self.is_replica.load(Ordering::Relaxed)
            && !self.link_up.load(Ordering::Relaxed)
            && server.config(|c| c.str("replica-serve-stale-data") == "no")
    }

    /// Whether writes are refused with NOREPLICAS: a master with fewer
    /// good replicas than min-replicas-to-write (lagging at most
    /// min-replicas-max-lag seconds).
    pub fn too_few_replicas(&self, server: &Shared) -> bool {
        let min = crate::config::Hot::get(&server.hot.min_replicas_to_write);
        if min == 0 || self.is_replica.load(Ordering::Relaxed) {
            return false;
        }
        let max_lag = server.config(|c| c.int("min-replicas-max-lag"));
        (self.good_replicas(max_lag) as u64) < min
    }

    /// Replicas online whose last ACK is at most `max_lag` seconds old.
    pub fn good_replicas(&self, max_lag: i64) -> usize {
        let now = now_ms();
        self.state()
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && (now - r.ack_ms) / 1000 <= max_lag)
            .count()
    }

    fn mailboxes(&self) -> Option<&Arc<[Mailbox]>> {
        self.mailboxes.get()
    }
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication").field("is_replica", &self.is_replica).finish_non_exhaustive()
    }
}

impl Default for Replication {
    fn default() -> Self {
        Replication::new()
    }
}

/// INFO's replication section, in Redis's field order.
pub fn info(server: &Shared) -> String {
    let repl = &server.repl;
    let st = repl.state();
    let now = now_ms();
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push_str("\r\n");
    };
    match &st.master {
        Some(link) => {
            line("role:slave".into());
            line(format!("master_host:{}", link.host));
            line(format!("master_port:{}", link.port));
            let up = link.state == LinkState::Connected;
            line(format!("master_link_status:{}", if up { "up" } else { "down" }));
            let io = if link.last_io_ms > 0 { (now - link.last_io_ms) / 1000 } else { -1 };
            line(format!("master_last_io_seconds_ago:{}", if up { io } else { -1 }));
            let syncing = link.state == LinkState::Transfer;
            line(format!("master_sync_in_progress:{}", syncing as u8));
            line(format!("slave_read_repl_offset:{}", link.read_offset.max(st.offset())));
            line(format!("slave_repl_offset:{}", st.offset()));
            if syncing {
                let left = if link.transfer_size >= 0 { link.transfer_size - link.transfer_read as i64 } else { 0 };
                let perc = if link.transfer_size > 0 {
                    link.transfer_read as f64 * 100.0 / link.transfer_size as f64
                } else {
                    0.0
                };
                line(format!("master_sync_total_bytes:{}", link.transfer_size));
                line(format!("master_sync_read_bytes:{}", link.transfer_read));
                line(format!("master_sync_left_bytes:{left}"));
                line(format!("master_sync_perc:{perc:.2}"));
                line(format!("master_sync_last_io_seconds_ago:{}", (now - link.last_io_ms) / 1000));
            }
            if !up {
                let since = if link.down_since_ms > 0 { (now - link.down_since_ms) / 1000 } else { -1 };
                line(format!("master_link_down_since_seconds:{since}"));
            }
            line(format!("slave_priority:{}", server.config(|c| c.int("replica-priority"))));
            line(format!("slave_read_only:{}", repl.read_only(server) as u8));
            line(format!("replica_announced:{}", server.config(|c| c.str("replica-announced") == "yes") as u8));
        }
        None => line("role:master".into()),
    }
    line(format!("connected_slaves:{}", st.replicas.len()));
    for (i, r) in st.replicas.iter().enumerate() {
        let lag = if r.ack_ms > 0 { (now - r.ack_ms) / 1000 } else { 0 };
        line(format!("slave{i}:ip={},port={},state={},offset={},lag={lag}", r.ip, r.port, r.state.name(), r.ack));
    }
    line("master_failover_state:no-failover".into());
    line(format!("master_replid:{}", st.replid));
    line(format!("master_replid2:{}", st.replid2));
    line(format!("master_repl_offset:{}", st.offset()));
    line(format!("second_repl_offset:{}", st.second_offset));
    let (active, size, first, histlen) = match &st.backlog {
        Some(b) => (1, b.size(), b.first_byte_offset(), b.histlen()),
        None => (0, server.config(|c| c.int("repl-backlog-size")) as usize, 0, 0),
    };
    line(format!("repl_backlog_active:{active}"));
    line(format!("repl_backlog_size:{size}"));
    line(format!("repl_backlog_first_byte_offset:{first}"));
    line(format!("repl_backlog_histlen:{histlen}"));
    out
}

/// ROLE's reply.
pub fn role(server: &Shared) -> crate::protocol::Reply {
    use crate::protocol::Reply;
    let st = server.repl.state();
    match &st.master {
        Some(link) => Reply::Array(vec![
            Reply::text("slave"),
            Reply::text(link.host.clone()),
            Reply::Int(link.port as i64),
            Reply::text(link.state.role_name()),
            Reply::Int(if link.state == LinkState::Connected { st.offset() as i64 } else { -1 }),
        ]),
        None => Reply::Array(vec![
            Reply::text("master"),
            Reply::Int(st.offset() as i64),
            Reply::Array(
                st.replicas
                    .iter()
                    .filter(|r| r.state == ReplicaState::Online)
                    .map(|r| {
                        Reply::Array(vec![
                            Reply::text(r.ip.clone()),
                            Reply::text(r.port.to_string()),
                            Reply::text(r.ack.to_string()),
                        ])
                    })
                    .collect(),
            ),
        ]),
    }
}
