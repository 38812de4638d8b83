//! State every core can read: configuration and server-wide counters.
//! Nothing here is keyspace data; it is atomics plus a lock that only
//! CONFIG and startup take.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use super::client::Client;
use crate::command::Table;
use crate::config::{Config, ConfigError, Hot};
use crate::protocol::CmdError;

#[derive(Debug, Default)]
pub struct Counters {
    pub connected_clients: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub next_client_id: AtomicU64,
}

#[derive(Debug)]
pub struct Shared {
    config: RwLock<Config>,
    /// Every command, by name (the families' table, given at startup).
    pub commands: &'static Table<Client>,
    pub hot: Hot,
    pub counters: Counters,
    pub shards: usize,
    pub started: Instant,
    pub run_id: String,
    /// Replication: this server's history, its replicas, its master.
    pub repl: crate::replication::Replication,
    /// DEBUG SET-ACTIVE-EXPIRE: whether the cron reclaims expired keys.
    pub active_expire: AtomicBool,
    /// DEBUG PAUSE-CRON: the shards' periodic work is suspended.
    pub cron_paused: AtomicBool,
    /// DEBUG REPLYBUFFER: how often a client's reply peak restarts (< 0:
    /// never) and whether reply buffers are resized at all.
    pub reply_peak_reset_ms: AtomicI64,
    pub reply_resizing: AtomicBool,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may run no-script commands.
    pub scripts_may_run_anything: AtomicBool,
    /// Clients with WATCHed keys, on any core.
    pub watching: AtomicUsize,
    /// Pub/Sub subscriptions held by each shard's clients: a publisher
    /// visits only the shards with some.
    pub subscriptions: Vec<AtomicUsize>,
    /// Clients waiting in a blocking command, on any core.
    pub blocked_clients: AtomicUsize,
    /// Script bodies by SHA1 (SCRIPT LOAD, EVAL), for every shard.
    pub scripts: std::sync::RwLock<std::collections::HashMap<String, std::sync::Arc<[u8]>>>,
    pub scripts_running: AtomicUsize,
    /// A script has run past busy-reply-threshold: other commands get BUSY.
    pub script_busy: AtomicBool,
    /// SCRIPT KILL asked the running scripts to stop.
    pub script_kill: AtomicBool,
    /// A running script has written: SCRIPT KILL refuses (UNKILLABLE).
    pub script_wrote: AtomicBool,
    /// The FUNCTION being run, if the running script is one: its command
    /// and start (FUNCTION STATS; BUSY and KILL errors then name
    /// FUNCTION KILL).
    pub running_function: std::sync::Mutex<Option<(Vec<bytes::Bytes>, Instant)>>,
    /// FUNCTION libraries, for every shard.
    pub libraries: std::sync::RwLock<crate::scripting::Libraries>,
    /// jemalloc's allocated bytes and when they were last read (ms).
    pub used_memory: AtomicU64,
    /// The most memory allocated seen.
    pub used_memory_peak: AtomicU64,
    /// What was allocated before any client came (MEMORY STATS).
    pub startup_memory: AtomicU64,
    pub memory_checked_ms: AtomicU64,
    pub evicted_keys: AtomicU64,
    /// SLOWLOG and LATENCY's records.
    pub records: super::stats::Records,
    pub pause: super::pause::Pause,
    /// The ordered stream of every write's effects (AOF consumes it).
    pub journal: crate::journal::Journal,
    pub aof: std::sync::Arc<crate::persistence::aof::Status>,
    pub rdb: crate::persistence::rdb::Status,
    /// Point-in-time images started (saves, rewrites): INFO's total_forks,
    /// what they stand in for.
    pub images: AtomicU64,
    /// The dataset is being loaded: clients get -LOADING.
    pub loading: AtomicBool,
    pub load_progress: crate::persistence::LoadProgress,
    /// Per shard: some client there waits for the journal to be durable.
    pub durable_wanted: Vec<AtomicBool>,
    /// Per shard: its clients in MONITOR mode; and all of them.
    pub monitors: Vec<AtomicUsize>,
    pub monitoring: AtomicUsize,
    /// Posts between shards no one waits for, and the back-pressure on them.
    pub fanout: super::fanout::Fanout,
    /// Client-side caching's totals across shards.
    pub tracking: super::tracking::Counts,
}

impl Shared {
    pub fn function_running(&self) -> bool {
        self.running_function.lock().is_ok_and(|f| f.is_some())
    }

    /// The BUSY error while a script is busy (it names the right KILL).
    pub fn busy_error(&self) -> CmdError {
        let kill = if self.function_running() { "FUNCTION" } else { "SCRIPT" };
        CmdError::Raw(format!("BUSY Redis is busy running a script. You can only call {kill} KILL or SHUTDOWN NOSAVE."))
    }

    pub fn new(config: Config, commands: &'static Table<Client>, shards: usize) -> Shared {
        let hot = Hot::default();
        config.fill_hot(&hot);
        Shared {
            config: RwLock::new(config),
            commands,
            hot,
            counters: Counters::default(),
            shards,
            started: Instant::now(),
            active_expire: AtomicBool::new(true),
            cron_paused: AtomicBool::new(false),
            reply_peak_reset_ms: AtomicI64::new(super::buffers::PEAK_RESET_MS),
            reply_resizing: AtomicBool::new(true),
            scripts_may_run_anything: AtomicBool::new(false),
            watching: AtomicUsize::new(0),
            subscriptions: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            blocked_clients: AtomicUsize::new(0),
            scripts: Default::default(),
            scripts_running: AtomicUsize::new(0),
            script_busy: AtomicBool::new(false),
            script_kill: AtomicBool::new(false),
            script_wrote: AtomicBool::new(false),
            running_function: std::sync::Mutex::new(None),
            libraries: Default::default(),
            used_memory: AtomicU64::new(0),
            used_memory_peak: AtomicU64::new(0),
            startup_memory: AtomicU64::new(allocated_now()),
            memory_checked_ms: AtomicU64::new(0),
            evicted_keys: AtomicU64::new(0),
            records: Default::default(),
            pause: Default::default(),
            journal: crate::journal::Journal::new(shards),
            aof: Default::default(),
            rdb: crate::persistence::rdb::Status::new(now_ms() / 1000),
            images: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            load_progress: Default::default(),
            durable_wanted: (0..shards).map(|_| AtomicBool::new(false)).collect(),
            monitors: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            monitoring: AtomicUsize::new(0),
            fanout: super::fanout::Fanout::new(shards),
            tracking: Default::default(),
            run_id: random_id(),
            repl: Default::default(),
        }
    }

    /// Keys stay when their time passes (read as missing) and nothing is
    /// evicted: while clients are paused, and on a replica, whose master
    /// says when keys go.
    pub fn holds_expiry(&self) -> bool {
        self.pause.active() || self.repl.is_replica.load(Ordering::Relaxed)
    }

    /// Reads the configuration (poisoning cannot leave it half-written:
    /// `Config::set` validates before it stores).
    pub fn config<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        let guard = self.config.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    pub fn config_set(&self, name: &str, value: &str) -> Result<(), ConfigError> {
        let mut guard = self.config.write().unwrap_or_else(|p| p.into_inner());
        guard.set(name, value, false)?;
        guard.fill_hot(&self.hot);
        crate::logging::set_level(guard.str("loglevel"));
        self.aof.set_fsync(crate::persistence::aof::Fsync::parse(guard.str("appendfsync")));
        Ok(())
    }

    pub fn next_client_id(&self) -> u64 {
        self.counters.next_client_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn requirepass(&self) -> Option<String> {
        if !self.hot.requirepass.load(Ordering::Relaxed) {
            return None;
        }
        self.config(|c| Some(c.str("requirepass").to_string()))
    }
}

/// Wall-clock Unix time in milliseconds (TTLs are absolute, like Redis's).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// 40 random hex digits, as Redis's run and replication ids.
pub fn random_id() -> String {
    (0..40).map(|_| b"0123456789abcdef"[fastrand::usize(..16)] as char).collect()
}

/// jemalloc's allocated bytes, now.
pub fn allocated_now() -> u64 {
    tikv_jemalloc_ctl::epoch::advance().ok().and_then(|_| tikv_jemalloc_ctl::stats::allocated::read().ok()).unwrap_or(0)
        as u64
}
