//! Configuration in redis.conf syntax: the same directive names, a config
//! file, `--name value` command-line overrides, CONFIG GET / SET.
//!
//! Every directive is validated by its kind before it is stored; the stored
//! text is the canonical form CONFIG GET answers with. Values the data path
//! reads on every request are mirrored in atomics (`Hot`), so no shard ever
//! takes the lock to serve a command.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use thiserror::Error;

use crate::pattern::glob_match;
use crate::protocol::resp::split_args;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int(i64, i64),
    /// A byte count with optional k/kb/m/mb/g/gb unit.
    Memory(u64, u64),
    /// A byte count, or a percentage up to 100 (of maxmemory).
    MemoryOrPercent,
    Bool,
    Enum(&'static [&'static str]),
    Str,
    /// `notify-keyspace-events` flags, kept in canonical order.
    KeyspaceEvents,
    /// `latency-tracking-info-percentiles`: numbers in [0, 100].
    Percentiles,
}

struct Directive {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    mutable: bool,
    /// Whether percore honours it. One it does not honour yet is accepted
    /// (so redis.conf files load) only at its default: a startup file that
    /// sets it otherwise gets a warning, CONFIG SET an error.
    live: bool,
}

/// A directive percore honours.
const fn d(name: &'static str, default: &'static str, kind: Kind, mutable: bool) -> Directive {
    Directive { name, default, kind, mutable, live: true }
}

/// A Redis directive whose feature percore does not have yet.
const fn n(name: &'static str, default: &'static str, kind: Kind, mutable: bool) -> Directive {
    Directive { name, default, kind, mutable, live: false }
}

const I32: i64 = i32::MAX as i64;
const MB: u64 = 1024 * 1024;
const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const POLICIES: &[&str] = crate::server::evict::Policy::NAMES;
const SUPERVISED: &[&str] = &["upstart", "systemd", "auto", "no"];
const SYSLOG_FACILITIES: &[&str] =
    &["user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"];
const DISKLESS_LOAD: &[&str] = &["disabled", "on-empty-db", "swapdb"];
const FSYNC: &[&str] = &["everysec", "always", "no"];
const OOM_SCORE_ADJ: &[&str] = &["no", "yes", "relative", "absolute"];
const ACL_PUBSUB: &[&str] = &["allchannels", "resetchannels"];
const SANITIZE: &[&str] = &["no", "yes", "clients"];
pub const PROTECTED_ACTION: &[&str] = &["no", "yes", "local"];
const ENDPOINT_TYPES: &[&str] = &["ip", "hostname", "unknown-endpoint"];
const PROPAGATION_ERRORS: &[&str] = &["ignore", "panic", "panic-on-replicas"];
const SHUTDOWN_ON_SIG: &[&str] = &["default", "save", "nosave", "now", "force"];
const TLS_AUTH_CLIENTS: &[&str] = &["no", "yes", "optional"];

/// Debugging directives CONFIG GET shows only when asked by name (Redis's
/// HIDDEN_CONFIG).
const HIDDEN: &[&str] = &[
    "use-exit-on-panic",
    "rdb-key-save-delay",
    "key-load-delay",
    "watchdog-period",
    "loading-process-events-interval-bytes",
];

/// Directives CONFIG SET refuses unless `enable-protected-configs` allows.
const PROTECTED: &[&str] = &["dir", "dbfilename"];

/// Every directive of Redis 7.0 (config.c's table, with its defaults and
/// ranges), plus percore's own `threads` and 7.2's set listpack limits.
static DIRECTIVES: &[Directive] = &[
    d("rdbchecksum", "yes", Kind::Bool, false),
    n("daemonize", "no", Kind::Bool, false),
    n("io-threads-do-reads", "no", Kind::Bool, false),
    n("always-show-logo", "no", Kind::Bool, false),
    n("protected-mode", "yes", Kind::Bool, true),
    d("rdbcompression", "yes", Kind::Bool, true),
    n("rdb-del-sync-files", "no", Kind::Bool, true),
    n("activerehashing", "yes", Kind::Bool, true),
    d("stop-writes-on-bgsave-error", "yes", Kind::Bool, true),
    n("set-proc-title", "yes", Kind::Bool, false),
    n("dynamic-hz", "yes", Kind::Bool, true),
    d("lazyfree-lazy-eviction", "no", Kind::Bool, true),
    d("lazyfree-lazy-expire", "no", Kind::Bool, true),
    n("lazyfree-lazy-server-del", "no", Kind::Bool, true),
    n("lazyfree-lazy-user-del", "no", Kind::Bool, true),
    n("lazyfree-lazy-user-flush", "no", Kind::Bool, true),
    d("repl-disable-tcp-nodelay", "no", Kind::Bool, true),
    d("repl-diskless-sync", "yes", Kind::Bool, true),
    d("aof-rewrite-incremental-fsync", "yes", Kind::Bool, true),
    d("no-appendfsync-on-rewrite", "no", Kind::Bool, true),
    n("cluster-require-full-coverage", "yes", Kind::Bool, true),
    d("rdb-save-incremental-fsync", "yes", Kind::Bool, true),
    d("aof-load-truncated", "yes", Kind::Bool, true),
    d("aof-use-rdb-preamble", "yes", Kind::Bool, true),
    d("aof-timestamp-enabled", "no", Kind::Bool, true),
    n("cluster-replica-no-failover", "no", Kind::Bool, true),
    d("replica-lazy-flush", "no", Kind::Bool, true),
    d("replica-serve-stale-data", "yes", Kind::Bool, true),
    d("replica-read-only", "yes", Kind::Bool, true),
    d("replica-ignore-maxmemory", "yes", Kind::Bool, true),
    n("jemalloc-bg-thread", "yes", Kind::Bool, true),
    n("activedefrag", "no", Kind::Bool, true),
    n("syslog-enabled", "no", Kind::Bool, false),
    n("cluster-enabled", "no", Kind::Bool, false),
    d("appendonly", "no", Kind::Bool, true),
    n("cluster-allow-reads-when-down", "no", Kind::Bool, true),
    n("cluster-allow-pubsubshard-when-down", "yes", Kind::Bool, true),
    n("crash-log-enabled", "yes", Kind::Bool, true),
    n("crash-memcheck-enabled", "yes", Kind::Bool, true),
    n("use-exit-on-panic", "no", Kind::Bool, true),
    n("disable-thp", "yes", Kind::Bool, false),
    n("cluster-allow-replica-migration", "yes", Kind::Bool, true),
    d("replica-announced", "yes", Kind::Bool, true),
    d("latency-tracking", "yes", Kind::Bool, true),
    d("aof-disable-auto-gc", "no", Kind::Bool, true),
    n("replica-ignore-disk-write-errors", "no", Kind::Bool, true),
    n("aclfile", "", Kind::Str, false),
    n("unixsocket", "", Kind::Str, false),
    d("pidfile", "", Kind::Str, false),
    d("replica-announce-ip", "", Kind::Str, true),
    d("masteruser", "", Kind::Str, true),
    n("cluster-announce-ip", "", Kind::Str, true),
    n("cluster-config-file", "nodes.conf", Kind::Str, false),
    n("cluster-announce-hostname", "", Kind::Str, true),
    n("syslog-ident", "redis", Kind::Str, false),
    d("dbfilename", "dump.rdb", Kind::Str, true),
    d("appendfilename", "appendonly.aof", Kind::Str, false),
    d("appenddirname", "appendonlydir", Kind::Str, false),
    n("server_cpulist", "", Kind::Str, false),
    n("bio_cpulist", "", Kind::Str, false),
    n("aof_rewrite_cpulist", "", Kind::Str, false),
    n("bgsave_cpulist", "", Kind::Str, false),
    n("ignore-warnings", "", Kind::Str, true),
    n("proc-title-template", "{title} {listen-addr} {server-mode}", Kind::Str, true),
    n("bind-source-addr", "", Kind::Str, true),
    d("logfile", "", Kind::Str, false),
    d("masterauth", "", Kind::Str, true),
    d("requirepass", "", Kind::Str, true),
    n("supervised", "no", Kind::Enum(SUPERVISED), false),
    n("syslog-facility", "local0", Kind::Enum(SYSLOG_FACILITIES), false),
    d("repl-diskless-load", "disabled", Kind::Enum(DISKLESS_LOAD), true),
    d("loglevel", "notice", Kind::Enum(LOGLEVELS), true),
    d("maxmemory-policy", "noeviction", Kind::Enum(POLICIES), true),
    d("appendfsync", "everysec", Kind::Enum(FSYNC), true),
    n("oom-score-adj", "no", Kind::Enum(OOM_SCORE_ADJ), true),
    n("acl-pubsub-default", "resetchannels", Kind::Enum(ACL_PUBSUB), true),
    d("sanitize-dump-payload", "no", Kind::Enum(SANITIZE), true),
    d("enable-protected-configs", "no", Kind::Enum(PROTECTED_ACTION), false),
    d("enable-debug-command", "no", Kind::Enum(PROTECTED_ACTION), false),
    d("enable-module-command", "no", Kind::Enum(PROTECTED_ACTION), false),
    n("cluster-preferred-endpoint-type", "ip", Kind::Enum(ENDPOINT_TYPES), true),
    n("propagation-error-behavior", "ignore", Kind::Enum(PROPAGATION_ERRORS), true),
    d("shutdown-on-sigint", "default", Kind::Enum(SHUTDOWN_ON_SIG), true),
    d("shutdown-on-sigterm", "default", Kind::Enum(SHUTDOWN_ON_SIG), true),
    d("databases", "16", Kind::Int(1, I32), false),
    d("port", "6379", Kind::Int(0, 65535), true),
    n("io-threads", "1", Kind::Int(1, 128), false),
    d("auto-aof-rewrite-percentage", "100", Kind::Int(0, I32), true),
    n("cluster-replica-validity-factor", "10", Kind::Int(0, I32), true),
    d("list-max-listpack-size", "-2", Kind::Int(i32::MIN as i64, I32), true),
    d("tcp-keepalive", "300", Kind::Int(0, I32), true),
    n("cluster-migration-barrier", "1", Kind::Int(0, I32), true),
    n("active-defrag-cycle-min", "1", Kind::Int(1, 99), true),
    n("active-defrag-cycle-max", "25", Kind::Int(1, 99), true),
    n("active-defrag-threshold-lower", "10", Kind::Int(0, 1000), true),
    n("active-defrag-threshold-upper", "100", Kind::Int(0, 1000), true),
    d("lfu-log-factor", "10", Kind::Int(0, I32), true),
    d("lfu-decay-time", "1", Kind::Int(0, I32), true),
    d("replica-priority", "100", Kind::Int(0, I32), true),
    d("repl-diskless-sync-delay", "5", Kind::Int(0, I32), true),
    d("maxmemory-samples", "5", Kind::Int(1, I32), true),
    n("maxmemory-eviction-tenacity", "10", Kind::Int(0, 100), true),
    d("timeout", "0", Kind::Int(0, I32), true),
    d("replica-announce-port", "0", Kind::Int(0, 65535), true),
    d("tcp-backlog", "511", Kind::Int(0, I32), false),
    n("cluster-port", "0", Kind::Int(0, 65535), false),
    n("cluster-announce-bus-port", "0", Kind::Int(0, 65535), true),
    n("cluster-announce-port", "0", Kind::Int(0, 65535), true),
    n("cluster-announce-tls-port", "0", Kind::Int(0, 65535), true),
    d("repl-timeout", "60", Kind::Int(1, I32), true),
    d("repl-ping-replica-period", "10", Kind::Int(1, I32), true),
    n("list-compress-depth", "0", Kind::Int(0, I32), true),
    // Microseconds a snapshot waits per key (tests use it to keep one in
    // progress while they write).
    d("rdb-key-save-delay", "0", Kind::Int(i32::MIN as i64, I32), true),
    d("key-load-delay", "0", Kind::Int(i32::MIN as i64, I32), true),
    n("active-expire-effort", "1", Kind::Int(1, 10), true),
    d("hz", "10", Kind::Int(0, I32), true),
    d("min-replicas-to-write", "0", Kind::Int(0, I32), true),
    d("min-replicas-max-lag", "10", Kind::Int(0, I32), true),
    n("watchdog-period", "0", Kind::Int(0, I32), true),
    n("shutdown-timeout", "10", Kind::Int(0, I32), true),
    d("repl-diskless-sync-max-replicas", "0", Kind::Int(0, I32), true),
    d("maxclients", "10000", Kind::Int(1, u32::MAX as i64), true),
    n("unixsocketperm", "0", Kind::Int(0, 511), false),
    n("socket-mark-id", "0", Kind::Int(0, u32::MAX as i64), false),
    n("active-defrag-max-scan-fields", "1000", Kind::Int(1, i64::MAX), true),
    d("slowlog-max-len", "128", Kind::Int(0, i64::MAX), true),
    n("acllog-max-len", "128", Kind::Int(0, i64::MAX), true),
    d("busy-reply-threshold", "5000", Kind::Int(0, i64::MAX), true),
    n("cluster-node-timeout", "15000", Kind::Int(0, i64::MAX), true),
    d("slowlog-log-slower-than", "10000", Kind::Int(-1, i64::MAX), true),
    d("latency-monitor-threshold", "0", Kind::Int(0, i64::MAX), true),
    d("proto-max-bulk-len", "536870912", Kind::Memory(MB, i64::MAX as u64), true),
    d("stream-node-max-entries", "100", Kind::Int(0, i64::MAX), true),
    d("repl-backlog-size", "1048576", Kind::Memory(1, i64::MAX as u64), true),
    d("maxmemory", "0", Kind::Memory(0, u64::MAX), true),
    n("cluster-link-sendbuf-limit", "0", Kind::Memory(0, u64::MAX), true),
    d("hash-max-listpack-entries", "512", Kind::Int(0, i64::MAX), true),
    d("set-max-intset-entries", "512", Kind::Int(0, i64::MAX), true),
    d("zset-max-listpack-entries", "128", Kind::Int(0, i64::MAX), true),
    n("active-defrag-ignore-bytes", "104857600", Kind::Memory(1, i64::MAX as u64), true),
    d("hash-max-listpack-value", "64", Kind::Memory(0, i64::MAX as u64), true),
    d("stream-node-max-bytes", "4096", Kind::Memory(0, i64::MAX as u64), true),
    d("zset-max-listpack-value", "64", Kind::Memory(0, i64::MAX as u64), true),
    d("hll-sparse-max-bytes", "3000", Kind::Memory(0, i64::MAX as u64), true),
    d("tracking-table-max-keys", "1000000", Kind::Int(0, i64::MAX), true),
    d("client-query-buffer-limit", "1073741824", Kind::Memory(MB, i64::MAX as u64), true),
    n("maxmemory-clients", "0", Kind::MemoryOrPercent, true),
    d("repl-backlog-ttl", "3600", Kind::Int(0, i64::MAX), true),
    d("auto-aof-rewrite-min-size", "67108864", Kind::Memory(0, i64::MAX as u64), true),
    d("loading-process-events-interval-bytes", "2097152", Kind::Int(1024, I32), true),
    n("tls-port", "0", Kind::Int(0, 65535), true),
    n("tls-session-cache-size", "20480", Kind::Int(0, I32), true),
    n("tls-session-cache-timeout", "300", Kind::Int(0, I32), true),
    n("tls-cluster", "no", Kind::Bool, true),
    n("tls-replication", "no", Kind::Bool, true),
    n("tls-auth-clients", "yes", Kind::Enum(TLS_AUTH_CLIENTS), true),
    n("tls-prefer-server-ciphers", "no", Kind::Bool, true),
    n("tls-session-caching", "yes", Kind::Bool, true),
    n("tls-cert-file", "", Kind::Str, true),
    n("tls-key-file", "", Kind::Str, true),
    n("tls-key-file-pass", "", Kind::Str, true),
    n("tls-client-cert-file", "", Kind::Str, true),
    n("tls-client-key-file", "", Kind::Str, true),
    n("tls-client-key-file-pass", "", Kind::Str, true),
    n("tls-dh-params-file", "", Kind::Str, true),
    n("tls-ca-cert-file", "", Kind::Str, true),
    n("tls-ca-cert-dir", "", Kind::Str, true),
    n("tls-protocols", "", Kind::Str, true),
    n("tls-ciphers", "", Kind::Str, true),
    n("tls-ciphersuites", "", Kind::Str, true),
    d("threads", "0", Kind::Int(0, 1024), false),
    d("set-max-listpack-entries", "128", Kind::Memory(0, u64::MAX), true),
    d("set-max-listpack-value", "64", Kind::Memory(0, u64::MAX), true),
    d("bind", "127.0.0.1", Kind::Str, true),
    d("dir", "", Kind::Str, true),
    d("notify-keyspace-events", "", Kind::KeyspaceEvents, true),
    d(
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Kind::Str,
        true,
    ),
    // Redis 7's save points: after an hour with one change, five minutes
    // with 100, a minute with 10000.
    d("save", "3600 1 300 100 60 10000", Kind::Str, true),
    n("oom-score-adj-values", "0 200 800", Kind::Str, true),
    d("replicaof", "", Kind::Str, false),
    d("latency-tracking-info-percentiles", "50 99 99.9", Kind::Percentiles, true),
];

/// Old names Redis still accepts for renamed directives.
static ALIASES: &[(&str, &str)] = &[
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("cluster-slave-validity-factor", "cluster-replica-validity-factor"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("slave-priority", "replica-priority"),
    ("slave-announce-port", "replica-announce-port"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("lua-time-limit", "busy-reply-threshold"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("slaveof", "replicaof"),
];

/// File-only directives that are not settings; percore has none of their
/// features yet, so each gets a startup warning.
const FILE_ONLY: &[&str] = &["rename-command", "user", "loadmodule", "sentinel"];

fn directive(name: &str) -> Option<&'static Directive> {
    let name = name.to_ascii_lowercase();
    let name = ALIASES.iter().find(|(old, _)| *old == name).map_or(name.as_str(), |(_, new)| new);
    DIRECTIVES.iter().find(|d| d.name == name)
}

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("Bad directive or wrong number of arguments")]
    Unknown,
    #[error("argument couldn't be parsed into an integer")]
    NotInteger,
    #[error("argument must be between {0} and {1} inclusive")]
    OutOfRange(i64, i64),
    #[error("argument must be a memory value")]
    NotMemory,
    #[error("argument must be 'yes' or 'no'")]
    NotBool,
    #[error("argument(s) must be one of the following: {0}")]
    NotInEnum(String),
    #[error("can't set immutable config")]
    Immutable,
    #[error("can't set protected config")]
    Protected,
    #[error("percore does not implement this setting yet; only its default '{0}' is accepted")]
    NotImplemented(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// The hard limit, soft limit and soft seconds of one client class in a
/// `client-output-buffer-limit` value ("normal 0 0 0 pubsub 32mb 8mb 60").
fn output_limits(value: &str, class: &str) -> Option<[u64; 3]> {
    let words: Vec<&str> = value.split_whitespace().collect();
    words
        .chunks(4)
        .find(|c| c.len() == 4 && c[0].eq_ignore_ascii_case(class))
        .and_then(|c| Some([parse_memory(c[1])?, parse_memory(c[2])?, c[3].parse().ok()?]))
}

/// Parses a memory value the way Redis's `memtoull` does.
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, mul)| lower.strip_suffix(suffix).map(|n| (n.to_string(), *mul)))
    .unwrap_or((lower.clone(), 1));
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// Checks `value` against the directive's kind; returns the canonical text.
fn validate(d: &Directive, value: &str) -> Result<String, ConfigError> {
    match d.kind {
        Kind::Int(min, max) => {
            let n: i64 = value.parse().map_err(|_| ConfigError::NotInteger)?;
            if n < min || n > max {
                return Err(ConfigError::OutOfRange(min, max));
            }
            Ok(n.to_string())
        }
        Kind::Memory(min, max) => {
            let n = parse_memory(value).ok_or(ConfigError::NotMemory)?;
            if n < min || n > max {
                return Err(ConfigError::OutOfRange(min as i64, max.min(i64::MAX as u64) as i64));
            }
            Ok(n.to_string())
        }
        Kind::MemoryOrPercent => {
            match value.strip_suffix('%').map(|p| crate::protocol::resp::parse_i64(p.as_bytes())) {
                Some(Some(percent)) if percent >= 0 => match percent {
                    0..=100 => Ok(format!("{percent}%")),
                    _ => Err(ConfigError::Invalid("percentage argument must be less or equal to 100".into())),
                },
                _ => parse_memory(value)
                    .filter(|&n| n <= i64::MAX as u64)
                    .map(|n| n.to_string())
                    .ok_or_else(|| ConfigError::Invalid("argument must be a memory or percent value".into())),
            }
        }
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err(ConfigError::NotBool),
        },
        Kind::Enum(options) => {
            let v = value.to_ascii_lowercase();
            if options.contains(&v.as_str()) { Ok(v) } else { Err(ConfigError::NotInEnum(options.join(", "))) }
        }
        Kind::Str => Ok(value.to_string()),
        Kind::KeyspaceEvents => crate::storage::events::parse_flags(value)
            .map(crate::storage::events::flags_to_string)
            .ok_or_else(|| ConfigError::Invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into())),
        Kind::Percentiles => {
            let mut out = Vec::new();
            for p in value.split_whitespace() {
                let p: f64 = p.parse().ok().filter(|p: &f64| !p.is_nan()).ok_or_else(|| {
                    ConfigError::Invalid("Invalid latency-tracking-info-percentiles parameters".into())
                })?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(ConfigError::Invalid(
                        "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".into(),
                    ));
                }
                out.push(format_percentile(p));
            }
            Ok(out.join(" "))
        }
    }
}

/// A percentile as Redis prints it: "%f" without trailing zeros.
pub fn format_percentile(p: f64) -> String {
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Values the request path reads, mirrored from the config.
#[derive(Debug)]
pub struct Hot {
    pub proto_max_bulk_len: AtomicU64,
    pub query_buffer_limit: AtomicU64,
    pub maxclients: AtomicU64,
    pub timeout: AtomicU64,
    pub tcp_keepalive: AtomicU64,
    pub requirepass: AtomicBool,
    pub hz: AtomicU64,
    pub hash_max_listpack_entries: AtomicU64,
    pub hash_max_listpack_value: AtomicU64,
    pub set_max_intset_entries: AtomicU64,
    pub set_max_listpack_entries: AtomicU64,
    pub set_max_listpack_value: AtomicU64,
    /// `list-max-listpack-size`, which may be negative.
    pub list_max_listpack_size: std::sync::atomic::AtomicI64,
    /// The entry size from which a list entry gets a node of its own; not a
    /// directive (DEBUG QUICKLIST-PACKED-THRESHOLD sets it).
    pub list_plain_from: AtomicU64,
    pub zset_max_listpack_entries: AtomicU64,
    pub zset_max_listpack_value: AtomicU64,
    pub hll_sparse_max_bytes: AtomicU64,
    pub stream_node_max_bytes: AtomicU64,
    pub stream_node_max_entries: AtomicU64,
    /// `client-output-buffer-limit pubsub <hard> <soft> <seconds>`.
    pub pubsub_hard_limit: AtomicU64,
    pub pubsub_soft_limit: AtomicU64,
    pub pubsub_soft_secs: AtomicU64,
    /// `client-output-buffer-limit replica <hard> <soft> <seconds>`.
    pub replica_hard_limit: AtomicU64,
    pub replica_soft_limit: AtomicU64,
    pub replica_soft_secs: AtomicU64,
    /// `notify-keyspace-events` as flag bits (`storage::events`).
    pub notify_flags: AtomicU64,
    pub maxmemory: AtomicU64,
    /// The policy's index in `evict::Policy::NAMES`.
    pub maxmemory_policy: AtomicU64,
    pub maxmemory_samples: AtomicU64,
    /// `min-replicas-to-write` and `min-replicas-max-lag` both set: writes
    /// need that many good replicas.
    pub min_replicas_to_write: AtomicU64,
    /// slowlog-log-slower-than (µs, negative: off) and slowlog-max-len.
    pub slowlog_slower_than: std::sync::atomic::AtomicI64,
    pub slowlog_max_len: AtomicU64,
    /// latency-monitor-threshold (ms, 0: off).
    pub latency_monitor_ms: AtomicU64,
    pub latency_tracking: AtomicBool,
    /// rdbcompression (DUMP payloads and snapshots).
    pub rdb_compression: AtomicBool,
    /// lazyfree-lazy-expire / -eviction: such keys propagate as UNLINK.
    pub lazyfree_lazy_expire: AtomicBool,
    pub lazyfree_lazy_eviction: AtomicBool,
    /// tracking-table-max-keys (0: no limit).
    pub tracking_table_max_keys: AtomicU64,
}

impl Default for Hot {
    fn default() -> Hot {
        Hot {
            proto_max_bulk_len: AtomicU64::new(0),
            query_buffer_limit: AtomicU64::new(0),
            maxclients: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            tcp_keepalive: AtomicU64::new(0),
            requirepass: AtomicBool::new(false),
            hz: AtomicU64::new(10),
            hash_max_listpack_entries: AtomicU64::new(0),
            hash_max_listpack_value: AtomicU64::new(0),
            set_max_intset_entries: AtomicU64::new(0),
            set_max_listpack_entries: AtomicU64::new(0),
            set_max_listpack_value: AtomicU64::new(0),
            list_max_listpack_size: std::sync::atomic::AtomicI64::new(-2),
            list_plain_from: AtomicU64::new(crate::storage::list::PLAIN_FROM),
            zset_max_listpack_entries: AtomicU64::new(0),
            zset_max_listpack_value: AtomicU64::new(0),
            stream_node_max_bytes: AtomicU64::new(0),
            stream_node_max_entries: AtomicU64::new(0),
            hll_sparse_max_bytes: AtomicU64::new(0),
            pubsub_hard_limit: AtomicU64::new(0),
            pubsub_soft_limit: AtomicU64::new(0),
            pubsub_soft_secs: AtomicU64::new(0),
            replica_hard_limit: AtomicU64::new(0),
            replica_soft_limit: AtomicU64::new(0),
            replica_soft_secs: AtomicU64::new(0),
            notify_flags: AtomicU64::new(0),
            maxmemory: AtomicU64::new(0),
            maxmemory_policy: AtomicU64::new(0),
            maxmemory_samples: AtomicU64::new(5),
            min_replicas_to_write: AtomicU64::new(0),
            slowlog_slower_than: std::sync::atomic::AtomicI64::new(0),
            slowlog_max_len: AtomicU64::new(0),
            tracking_table_max_keys: AtomicU64::new(0),
            latency_monitor_ms: AtomicU64::new(0),
            latency_tracking: AtomicBool::new(false),
            rdb_compression: AtomicBool::new(true),
            lazyfree_lazy_expire: AtomicBool::new(false),
            lazyfree_lazy_eviction: AtomicBool::new(false),
        }
    }
}

impl Hot {
    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    /// How values are written in RDB form now.
    pub fn rdb_options(&self) -> crate::rdb::write::Options {
        crate::rdb::write::Options {
            compress: self.rdb_compression.load(Ordering::Relaxed),
            plain_from: self.list_plain_from.load(Ordering::Relaxed),
        }
    }

    pub fn hash_limits(&self) -> crate::storage::PackLimits {
        crate::storage::PackLimits {
            max_entries: Hot::get(&self.hash_max_listpack_entries) as usize,
            max_value: Hot::get(&self.hash_max_listpack_value) as usize,
        }
    }

    pub fn set_limits(&self) -> crate::storage::SetLimits {
        crate::storage::SetLimits {
            max_intset_entries: Hot::get(&self.set_max_intset_entries) as usize,
            max_listpack_entries: Hot::get(&self.set_max_listpack_entries) as usize,
            max_listpack_value: Hot::get(&self.set_max_listpack_value) as usize,
        }
    }

    pub fn zset_limits(&self) -> crate::storage::ZLimits {
        crate::storage::ZLimits {
            max_entries: Hot::get(&self.zset_max_listpack_entries) as usize,
            max_value: Hot::get(&self.zset_max_listpack_value) as usize,
        }
    }

    pub fn list_limits(&self) -> crate::storage::ListLimits {
        crate::storage::ListLimits {
            max_listpack_size: self.list_max_listpack_size.load(Ordering::Relaxed),
            plain_from: self.list_plain_from.load(Ordering::Relaxed),
        }
    }

    pub fn stream_limits(&self) -> crate::storage::stream::NodeLimits {
        crate::storage::stream::NodeLimits {
            max_bytes: Hot::get(&self.stream_node_max_bytes) as usize,
            max_entries: Hot::get(&self.stream_node_max_entries) as usize,
        }
    }
}

#[derive(Debug)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    /// A startup file's `save` lines add up (the first replaces the
    /// default), as Redis reads them.
    saves_read: bool,
    /// The file it was read from (absolute, so CONFIG REWRITE finds it
    /// after `dir` moves); none with the embedded defaults.
    pub file: Option<String>,
    /// What the startup files set that percore does not honour yet, for
    /// the log.
    pub warnings: Vec<String>,
}

/// Where a bad directive was found, for the startup message.
#[derive(Debug)]
pub struct ConfigFileError {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub reason: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n*** FATAL CONFIG FILE ERROR (percore {}) ***\nReading the configuration file {}, at line {}\n>>> '{}'\n{}",
            env!("CARGO_PKG_VERSION"),
            self.file,
            self.line,
            self.text,
            self.reason
        )
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            values: DIRECTIVES.iter().map(|d| (d.name, d.default.to_string())).collect(),
            file: None,
            warnings: Vec::new(),
            saves_read: false,
        }
    }
}

impl Config {
    /// Builds the configuration from a file's text (if any) followed by
    /// command-line overrides, each `--name value...` read as one more line,
    /// as redis-server does.
    pub fn load(file: Option<(&str, &str)>, overrides: &[String]) -> Result<Config, ConfigFileError> {
        let mut config = Config::default();
        if let Some((name, text)) = file {
            config.apply_text(name, text)?;
        }
        let mut lines = String::new();
        for arg in overrides {
            if let Some(name) = arg.strip_prefix("--") {
                if !lines.is_empty() {
                    lines.push('\n');
                }
                lines.push_str(name);
            } else {
                lines.push(' ');
                lines.push_str(&quote(arg));
            }
        }
        config.apply_text("(command line)", &lines)?;
        Ok(config)
    }

    fn apply_text(&mut self, file: &str, text: &str) -> Result<(), ConfigFileError> {
        self.apply_nested(file, text, 0)
    }

    fn apply_nested(&mut self, file: &str, text: &str, depth: usize) -> Result<(), ConfigFileError> {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |reason: String| ConfigFileError {
                file: file.to_string(),
                line: i + 1,
                text: line.to_string(),
                reason,
            };
            let mut scratch = Vec::new();
            let mut spans = Vec::new();
            split_args(line.as_bytes(), &mut scratch, &mut spans)
                .map_err(|e| fail(format!("Unbalanced quotes in configuration line ({e})")))?;
            let args: Vec<String> = spans
                .iter()
                .map(|&(o, l)| String::from_utf8_lossy(&scratch[o as usize..(o + l) as usize]).into_owned())
                .collect();
            let Some((name, values)) = args.split_first() else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            if lower == "include" && values.len() == 1 {
                if depth >= 16 {
                    return Err(fail("Too many nested include files".into()));
                }
                let text = std::fs::read_to_string(&values[0])
                    .map_err(|e| fail(format!("Fatal error, can't open config file '{}': {e}", values[0])))?;
                self.apply_nested(&values[0], &text, depth + 1)?;
                continue;
            }
            if FILE_ONLY.contains(&lower.as_str()) && !values.is_empty() {
                self.warnings.push(format!("'{line}' ({file}:{}) has no effect: percore has no {lower} yet", i + 1));
                continue;
            }
            if values.is_empty() && !matches!(directive(name).map(|d| d.kind), Some(Kind::Str)) {
                return Err(fail(ConfigError::Unknown.to_string()));
            }
            let mut value = values.join(" ");
            if lower == "save" {
                if self.saves_read && !value.is_empty() && !self.str("save").is_empty() {
                    value = format!("{} {value}", self.str("save"));
                }
                self.saves_read = true;
            }
            self.set(name, &value, true).map_err(|e| fail(e.to_string()))?;
            if let Some(d) = directive(name).filter(|d| !d.live && self.str(d.name) != d.default) {
                self.warnings.push(format!(
                    "'{line}' ({file}:{}) has no effect: percore does not implement '{}' yet (default '{}')",
                    i + 1,
                    d.name,
                    d.default
                ));
            }
        }
        Ok(())
    }

    /// Sets a directive; `startup` allows immutable ones.
    pub fn set(&mut self, name: &str, value: &str, startup: bool) -> Result<(), ConfigError> {
        let d = directive(name).ok_or(ConfigError::Unknown)?;
        let v = validate(d, value);
        // Setting what is already set changes nothing, so it is kept even
        // where a change would not be.
        let unchanged = v.as_ref().is_ok_and(|v| self.values.get(d.name) == Some(v));
        if !d.mutable && !startup && !unchanged {
            return Err(ConfigError::Immutable);
        }
        let v = v?;
        if !d.live && !startup && !unchanged {
            return Err(ConfigError::NotImplemented(d.default));
        }
        if d.name == "dir" && !v.is_empty() {
            std::env::set_current_dir(&v)
                .map_err(|e| ConfigError::Invalid(format!("No such file or directory ({e})")))?;
        }
        self.values.insert(d.name, v);
        Ok(())
    }

    /// Copies the values the request path reads into `h`.
    pub fn fill_hot(&self, h: &Hot) {
        let num = |n: &str| self.values.get(n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        h.proto_max_bulk_len.store(num("proto-max-bulk-len"), Ordering::Relaxed);
        h.query_buffer_limit.store(num("client-query-buffer-limit"), Ordering::Relaxed);
        h.maxclients.store(num("maxclients"), Ordering::Relaxed);
        h.timeout.store(num("timeout"), Ordering::Relaxed);
        h.tcp_keepalive.store(num("tcp-keepalive"), Ordering::Relaxed);
        h.hz.store(num("hz").max(1), Ordering::Relaxed);
        h.hash_max_listpack_entries.store(num("hash-max-listpack-entries"), Ordering::Relaxed);
        h.hash_max_listpack_value.store(num("hash-max-listpack-value"), Ordering::Relaxed);
        h.set_max_intset_entries.store(num("set-max-intset-entries"), Ordering::Relaxed);
        h.set_max_listpack_entries.store(num("set-max-listpack-entries"), Ordering::Relaxed);
        h.set_max_listpack_value.store(num("set-max-listpack-value"), Ordering::Relaxed);
        h.list_max_listpack_size.store(self.int("list-max-listpack-size"), Ordering::Relaxed);
        h.zset_max_listpack_entries.store(num("zset-max-listpack-entries"), Ordering::Relaxed);
        h.zset_max_listpack_value.store(num("zset-max-listpack-value"), Ordering::Relaxed);
        h.hll_sparse_max_bytes.store(num("hll-sparse-max-bytes"), Ordering::Relaxed);
        h.stream_node_max_bytes.store(num("stream-node-max-bytes"), Ordering::Relaxed);
        h.stream_node_max_entries.store(num("stream-node-max-entries"), Ordering::Relaxed);
        h.requirepass.store(!self.str("requirepass").is_empty(), Ordering::Relaxed);
        h.maxmemory.store(num("maxmemory"), Ordering::Relaxed);
        let policy = crate::server::evict::Policy::index(self.str("maxmemory-policy"));
        h.maxmemory_policy.store(policy, Ordering::Relaxed);
        let lfu = |n: &str| num(n).min(u64::from(u32::MAX)) as u32;
        let access =
            crate::server::evict::Policy::from_index(policy).access(lfu("lfu-log-factor"), lfu("lfu-decay-time"));
        crate::storage::db::set_access(access);
        h.maxmemory_samples.store(num("maxmemory-samples"), Ordering::Relaxed);
        let min_replicas = if num("min-replicas-max-lag") > 0 { num("min-replicas-to-write") } else { 0 };
        h.min_replicas_to_write.store(min_replicas, Ordering::Relaxed);
        h.slowlog_slower_than.store(self.int("slowlog-log-slower-than"), Ordering::Relaxed);
        h.slowlog_max_len.store(num("slowlog-max-len"), Ordering::Relaxed);
        h.tracking_table_max_keys.store(num("tracking-table-max-keys"), Ordering::Relaxed);
        h.latency_monitor_ms.store(num("latency-monitor-threshold"), Ordering::Relaxed);
        h.latency_tracking.store(self.str("latency-tracking") == "yes", Ordering::Relaxed);
        h.rdb_compression.store(self.str("rdbcompression") == "yes", Ordering::Relaxed);
        h.lazyfree_lazy_expire.store(self.str("lazyfree-lazy-expire") == "yes", Ordering::Relaxed);
        h.lazyfree_lazy_eviction.store(self.str("lazyfree-lazy-eviction") == "yes", Ordering::Relaxed);
        let events = crate::storage::events::parse_flags(self.str("notify-keyspace-events")).unwrap_or(0);
        h.notify_flags.store(events as u64, Ordering::Relaxed);
        if let Some([hard, soft, secs]) = output_limits(self.str("client-output-buffer-limit"), "pubsub") {
            h.pubsub_hard_limit.store(hard, Ordering::Relaxed);
            h.pubsub_soft_limit.store(soft, Ordering::Relaxed);
            h.pubsub_soft_secs.store(secs, Ordering::Relaxed);
        }
        let limits = self.str("client-output-buffer-limit");
        if let Some([hard, soft, secs]) = output_limits(limits, "slave").or_else(|| output_limits(limits, "replica")) {
            h.replica_hard_limit.store(hard, Ordering::Relaxed);
            h.replica_soft_limit.store(soft, Ordering::Relaxed);
            h.replica_soft_secs.store(secs, Ordering::Relaxed);
        }
    }

    /// Whether CONFIG SET may change `name` only where
    /// `enable-protected-configs` allows.
    pub fn is_protected(name: &str) -> bool {
        directive(name).is_some_and(|d| PROTECTED.contains(&d.name))
    }

    pub fn str(&self, name: &str) -> &str {
        self.values.get(name).map_or("", |v| v.as_str())
    }

    pub fn int(&self, name: &str) -> i64 {
        self.str(name).parse().unwrap_or(0)
    }

    /// CONFIG REWRITE: the config file with every directive it names set
    /// to its current value in place (comments, order and lines percore
    /// does not read kept), the other directives that differ from their
    /// defaults appended after Redis's marker, written to a temporary file
    /// and renamed over the old one.
    pub fn rewrite(&self) -> Result<(), String> {
        let path = self.file.as_deref().ok_or("The server is running without a config file")?;
        let old = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("Rewriting config file: {e}")),
        };
        let mut lines: Vec<Option<String>> = old.lines().map(|l| Some(l.to_string())).collect();
        // Where each directive is set in the file (under any of its names).
        let mut at: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
        for (i, line) in old.lines().enumerate() {
            let name = line.split_whitespace().next().unwrap_or("");
            if line.trim_start().starts_with('#') || name.is_empty() {
                continue;
            }
            if let Some(d) = directive(name) {
                at.entry(d.name).or_default().push(i);
            }
        }
        let marker = "# Generated by CONFIG REWRITE";
        let mut appended = Vec::new();
        for d in DIRECTIVES {
            let value = self.display(d.name);
            let line = format!("{} {}", d.name, rewrite_value(&value));
            match at.get(d.name).map(Vec::as_slice) {
                Some([first, rest @ ..]) => {
                    lines[*first] = Some(line);
                    rest.iter().for_each(|&i| lines[i] = None);
                }
                _ if value != d.default => appended.push(line),
                _ => {}
            }
        }
        let mut text: Vec<String> = lines.into_iter().flatten().collect();
        if !appended.is_empty() {
            if !text.iter().any(|l| l == marker) {
                text.push(marker.to_string());
            }
            text.extend(appended);
        }
        let mut body = text.join("\n");
        body.push('\n');
        let tmp = format!("{path}.rewrite-{}", std::process::id());
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            use std::io::Write;
            f.write_all(body.as_bytes())?;
            f.sync_all()
        });
        let renamed = written.and_then(|_| std::fs::rename(&tmp, path));
        renamed.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("Rewriting config file: {e}")
        })
    }

    /// CONFIG GET: every directive matching the glob, under each name it
    /// answers to (old aliases included, as Redis lists them).
    pub fn get_matching(&self, pattern: &str) -> Vec<(String, String)> {
        let lower = pattern.to_ascii_lowercase();
        let names = DIRECTIVES.iter().map(|d| (d.name, d.name)).chain(ALIASES.iter().copied());
        names
            // Hidden directives answer only to their own name.
            .filter(|(name, _)| {
                if HIDDEN.contains(name) { lower == *name } else { glob_match(lower.as_bytes(), name.as_bytes(), true) }
            })
            .map(|(name, canonical)| (name.to_string(), self.display(canonical)))
            .collect()
    }

    fn display(&self, name: &str) -> String {
        match name {
            "dir" => std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
            _ => self.str(name).to_string(),
        }
    }
}

/// A value as a config line holds it: words as they are, anything that
/// would not read back the same (empty, quotes, runs of blanks) quoted.
fn rewrite_value(value: &str) -> String {
    if !value.is_empty() && value.split(' ').all(|w| !w.is_empty() && quote(w) == w) {
        value.to_string()
    } else {
        quote(value)
    }
}

fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.bytes().any(|b| b.is_ascii_whitespace() || b == b'"' || b == b'\'' || b == b'\\') {
        return arg.to_string();
    }
    let mut q = String::from("\"");
    for c in arg.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_overrides() {
        let text = "# comment\nport 7000\nmaxclients 50\nsave \"\"\nhash-max-ziplist-entries 64\n";
        let c = Config::load(
            Some(("x.conf", text)),
            &["--port".into(), "7001".into(), "--requirepass".into(), "a b".into()],
        )
        .unwrap();
        assert_eq!(c.int("port"), 7001);
        assert_eq!(c.int("maxclients"), 50);
        assert_eq!(c.str("save"), "");
        assert_eq!(c.str("requirepass"), "a b");
        assert_eq!(c.int("hash-max-listpack-entries"), 64);
        let hot = Hot::default();
        c.fill_hot(&hot);
        assert_eq!(Hot::get(&hot.maxclients), 50);
        assert!(hot.requirepass.load(Ordering::Relaxed));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = Config::load(Some(("x.conf", "port 1\nbogus 3\n")), &[]).unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.text.as_str()), ("x.conf", 2, "bogus 3"));
        assert!(e.to_string().contains("Bad directive"));
        let e = Config::load(Some(("x.conf", "port abc\n")), &[]).unwrap_err();
        assert!(e.reason.contains("integer"));
        let e = Config::load(None, &["--maxclients".into(), "0".into()]).unwrap_err();
        assert!(e.reason.contains("between 1"));
    }

    #[test]
    fn values_are_canonical() {
        let mut c = Config::default();
        c.set("proto-max-bulk-len", "2mb", false).unwrap();
        assert_eq!(c.str("proto-max-bulk-len"), "2097152");
        assert_eq!(c.set("databases", "4", false), Err(ConfigError::Immutable));
        assert_eq!(c.set("appendonly", "maybe", false), Err(ConfigError::NotBool));
        c.set("LogLevel", "WARNING", false).unwrap();
        assert_eq!(c.get_matching("loglevel"), vec![("loglevel".into(), "warning".into())]);
        assert!(c.get_matching("max*").iter().any(|(n, _)| n == "maxclients"));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("x"), None);
    }
}
