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
    Bool,
    Enum(&'static [&'static str]),
    Str,
    /// `notify-keyspace-events` flags, kept in canonical order.
    KeyspaceEvents,
}

struct Directive {
    name: &'static str,
    default: &'static str,
    kind: Kind,
    mutable: bool,
}

const fn d(name: &'static str, default: &'static str, kind: Kind, mutable: bool) -> Directive {
    Directive { name, default, kind, mutable }
}

const I32: i64 = i32::MAX as i64;
const MB: u64 = 1024 * 1024;
const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const POLICIES: &[&str] = crate::server::evict::Policy::NAMES;

/// Directives percore knows, with Redis's defaults. Some are accepted and
/// reported but only take effect in later subsystems (persistence,
/// replication, cluster); keeping them lets existing redis.conf files load.
static DIRECTIVES: &[Directive] = &[
    d("port", "6379", Kind::Int(0, 65535), false),
    d("bind", "127.0.0.1", Kind::Str, false),
    d("threads", "0", Kind::Int(0, 1024), false),
    d("databases", "16", Kind::Int(1, I32), false),
    d("requirepass", "", Kind::Str, true),
    d("maxclients", "10000", Kind::Int(1, I32), true),
    d("timeout", "0", Kind::Int(0, I32), true),
    d("tcp-keepalive", "300", Kind::Int(0, I32), true),
    d("tcp-backlog", "511", Kind::Int(0, I32), false),
    d("loglevel", "notice", Kind::Enum(LOGLEVELS), true),
    d("logfile", "", Kind::Str, false),
    d("dir", "", Kind::Str, true),
    d("pidfile", "", Kind::Str, false),
    d("daemonize", "no", Kind::Bool, false),
    d("supervised", "no", Kind::Enum(&["upstart", "systemd", "auto", "no"]), false),
    d("protected-mode", "yes", Kind::Bool, true),
    d("proto-max-bulk-len", "536870912", Kind::Memory(MB, i64::MAX as u64), true),
    d("client-query-buffer-limit", "1073741824", Kind::Memory(MB, i64::MAX as u64), true),
    d(
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Kind::Str,
        true,
    ),
    d("hz", "10", Kind::Int(1, 500), true),
    d("dynamic-hz", "yes", Kind::Bool, true),
    d("enable-debug-command", "local", Kind::Enum(&["no", "yes", "local"]), false),
    d("save", "3600 1 300 100 60 10000", Kind::Str, true),
    d("dbfilename", "dump.rdb", Kind::Str, true),
    d("rdbcompression", "yes", Kind::Bool, true),
    d("rdbchecksum", "yes", Kind::Bool, true),
    d("appendonly", "no", Kind::Bool, true),
    d("appendfilename", "appendonly.aof", Kind::Str, false),
    d("appenddirname", "appendonlydir", Kind::Str, false),
    d("appendfsync", "everysec", Kind::Enum(&["everysec", "always", "no"]), true),
    d("maxmemory", "0", Kind::Memory(0, u64::MAX), true),
    d("maxmemory-policy", "noeviction", Kind::Enum(POLICIES), true),
    d("maxmemory-samples", "5", Kind::Int(1, 64), true),
    d("notify-keyspace-events", "", Kind::KeyspaceEvents, true),
    d("busy-reply-threshold", "5000", Kind::Int(0, i64::MAX), true),
    d("slowlog-log-slower-than", "10000", Kind::Int(-1, i64::MAX), true),
    d("slowlog-max-len", "128", Kind::Int(0, i64::MAX), true),
    d("latency-monitor-threshold", "0", Kind::Int(0, i64::MAX), true),
    d("latency-tracking", "yes", Kind::Bool, true),
    d("replica-read-only", "yes", Kind::Bool, true),
    d("replica-serve-stale-data", "yes", Kind::Bool, true),
    d("repl-backlog-size", "1048576", Kind::Memory(1, i64::MAX as u64), true),
    d("repl-diskless-sync", "yes", Kind::Bool, true),
    d("repl-diskless-sync-delay", "5", Kind::Int(0, I32), true),
    d("repl-timeout", "60", Kind::Int(1, I32), true),
    d("min-replicas-to-write", "0", Kind::Int(0, I32), true),
    d("min-replicas-max-lag", "10", Kind::Int(0, I32), true),
    d("masterauth", "", Kind::Str, true),
    d("masteruser", "", Kind::Str, true),
    d("cluster-enabled", "no", Kind::Bool, false),
    d("cluster-config-file", "nodes.conf", Kind::Str, false),
    d("cluster-node-timeout", "15000", Kind::Int(0, i64::MAX), true),
    d("hash-max-listpack-entries", "512", Kind::Memory(0, u64::MAX), true),
    d("hash-max-listpack-value", "64", Kind::Memory(0, u64::MAX), true),
    d("set-max-intset-entries", "512", Kind::Memory(0, u64::MAX), true),
    d("set-max-listpack-entries", "128", Kind::Memory(0, u64::MAX), true),
    d("set-max-listpack-value", "64", Kind::Memory(0, u64::MAX), true),
    d("zset-max-listpack-entries", "128", Kind::Memory(0, u64::MAX), true),
    d("zset-max-listpack-value", "64", Kind::Memory(0, u64::MAX), true),
    d("list-max-listpack-size", "-2", Kind::Int(i32::MIN as i64, I32), true),
    d("list-compress-depth", "0", Kind::Int(0, I32), true),
    d("hll-sparse-max-bytes", "3000", Kind::Memory(0, i64::MAX as u64), true),
    d("stream-node-max-bytes", "4096", Kind::Memory(0, i64::MAX as u64), true),
    d("stream-node-max-entries", "100", Kind::Int(0, i64::MAX), true),
    d("activerehashing", "yes", Kind::Bool, true),
    d("lazyfree-lazy-eviction", "no", Kind::Bool, true),
    d("lazyfree-lazy-expire", "no", Kind::Bool, true),
    d("lazyfree-lazy-server-del", "no", Kind::Bool, true),
    d("lazyfree-lazy-user-del", "no", Kind::Bool, true),
    d("lazyfree-lazy-user-flush", "no", Kind::Bool, true),
    d("always-show-logo", "no", Kind::Bool, false),
    d("set-proc-title", "yes", Kind::Bool, false),
    d("io-threads", "1", Kind::Int(1, 128), false),
];

/// Old names Redis still accepts for renamed directives.
static ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("lua-time-limit", "busy-reply-threshold"),
];

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
        Kind::KeyspaceEvents => crate::server::notify::parse_flags(value)
            .map(crate::server::notify::flags_to_string)
            .ok_or_else(|| ConfigError::Invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into())),
    }
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
    pub zset_max_listpack_entries: AtomicU64,
    pub zset_max_listpack_value: AtomicU64,
    pub hll_sparse_max_bytes: AtomicU64,
    /// `client-output-buffer-limit pubsub <hard> <soft> <seconds>`.
    pub pubsub_hard_limit: AtomicU64,
    pub pubsub_soft_limit: AtomicU64,
    pub pubsub_soft_secs: AtomicU64,
    /// `notify-keyspace-events` as flag bits (`server::notify`).
    pub notify_flags: AtomicU64,
    pub maxmemory: AtomicU64,
    /// The policy's index in `evict::Policy::NAMES`.
    pub maxmemory_policy: AtomicU64,
    pub maxmemory_samples: AtomicU64,
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
            zset_max_listpack_entries: AtomicU64::new(0),
            zset_max_listpack_value: AtomicU64::new(0),
            hll_sparse_max_bytes: AtomicU64::new(0),
            pubsub_hard_limit: AtomicU64::new(0),
            pubsub_soft_limit: AtomicU64::new(0),
            pubsub_soft_secs: AtomicU64::new(0),
            notify_flags: AtomicU64::new(0),
            maxmemory: AtomicU64::new(0),
            maxmemory_policy: AtomicU64::new(0),
            maxmemory_samples: AtomicU64::new(5),
        }
    }
}

impl Hot {
    pub fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    pub file: Option<String>,
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
        Config { values: DIRECTIVES.iter().map(|d| (d.name, d.default.to_string())).collect(), file: None }
    }
}

impl Config {
    /// Builds the configuration from a file's text (if any) followed by
    /// command-line overrides, each `--name value...` read as one more line,
    /// as redis-server does.
    pub fn load(file: Option<(&str, &str)>, overrides: &[String]) -> Result<Config, ConfigFileError> {
        let mut config = Config::default();
        if let Some((name, text)) = file {
            config.file = Some(name.to_string());
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
            if values.is_empty() && !matches!(directive(name).map(|d| d.kind), Some(Kind::Str)) {
                return Err(fail(ConfigError::Unknown.to_string()));
            }
            self.set(name, &values.join(" "), true).map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }

    /// Sets a directive; `startup` allows immutable ones.
    pub fn set(&mut self, name: &str, value: &str, startup: bool) -> Result<(), ConfigError> {
        let d = directive(name).ok_or(ConfigError::Unknown)?;
        if !d.mutable && !startup {
            return Err(ConfigError::Immutable);
        }
        let v = validate(d, value)?;
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
        h.requirepass.store(!self.str("requirepass").is_empty(), Ordering::Relaxed);
        h.maxmemory.store(num("maxmemory"), Ordering::Relaxed);
        h.maxmemory_policy.store(crate::server::evict::Policy::index(self.str("maxmemory-policy")), Ordering::Relaxed);
        h.maxmemory_samples.store(num("maxmemory-samples"), Ordering::Relaxed);
        let events = crate::server::notify::parse_flags(self.str("notify-keyspace-events")).unwrap_or(0);
        h.notify_flags.store(events as u64, Ordering::Relaxed);
        if let Some([hard, soft, secs]) = output_limits(self.str("client-output-buffer-limit"), "pubsub") {
            h.pubsub_hard_limit.store(hard, Ordering::Relaxed);
            h.pubsub_soft_limit.store(soft, Ordering::Relaxed);
            h.pubsub_soft_secs.store(secs, Ordering::Relaxed);
        }
    }

    pub fn str(&self, name: &str) -> &str {
        self.values.get(name).map_or("", |v| v.as_str())
    }

    pub fn int(&self, name: &str) -> i64 {
        self.str(name).parse().unwrap_or(0)
    }

    /// CONFIG GET: every directive matching the glob, under each name it
    /// answers to (old aliases included, as Redis lists them).
    pub fn get_matching(&self, pattern: &str) -> Vec<(String, String)> {
        let lower = pattern.to_ascii_lowercase();
        let names = DIRECTIVES.iter().map(|d| (d.name, d.name)).chain(ALIASES.iter().copied());
        names
            .filter(|(name, _)| glob_match(lower.as_bytes(), name.as_bytes(), true))
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
