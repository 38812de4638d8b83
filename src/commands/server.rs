//! Server commands: INFO DBSIZE FLUSHDB FLUSHALL SWAPDB CONFIG TIME
//! SHUTDOWN LASTSAVE.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use futures::future::LocalBoxFuture;

use super::connection::REDIS_VERSION;
use super::{Handler, Spec};
use crate::command::{
    ADMIN, ALLOW_BUSY, Args, CONTAINER, EXCLUSIVE, FAST, Keys, LOADING, NO_MULTI, NOSCRIPT, READONLY, STALE, WRITE,
};
use crate::config::{ConfigError, Hot};
use crate::persistence::rdb::Mode;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::shared::{now_ms, now_us};
use crate::storage::Db;

/// Per-shard numbers INFO adds up.
#[derive(Default, Clone)]
struct ShardReport {
    /// (keys, expires, avg_ttl) per database.
    dbs: Vec<(usize, usize, i64)>,
    hits: u64,
    misses: u64,
    expired: u64,
    dirty: u64,
    commands: u64,
    net_input: u64,
    net_output: u64,
    expire_timeouts: u64,
    reads: u64,
    writes: u64,
    reply_shrinks: u64,
    reply_expands: u64,
    /// Names subscribed to: channels, patterns, shard channels (a name
    /// may be on several shards).
    subscribed: [Vec<bytes::Bytes>; 3],
}

impl ShardReport {
    fn add(&mut self, o: &ShardReport) {
        if self.dbs.len() < o.dbs.len() {
            self.dbs.resize(o.dbs.len(), (0, 0, 0));
        }
        for (a, b) in self.dbs.iter_mut().zip(&o.dbs) {
            // Average TTL weighted by each shard's keys with a TTL.
            let total = a.1 + b.1;
            a.2 = if total == 0 { 0 } else { (a.2 * a.1 as i64 + b.2 * b.1 as i64) / total as i64 };
            a.0 += b.0;
            a.1 += b.1;
        }
        self.hits += o.hits;
        self.misses += o.misses;
        self.expired += o.expired;
        self.dirty += o.dirty;
        self.commands += o.commands;
        self.net_input += o.net_input;
        self.net_output += o.net_output;
        self.expire_timeouts += o.expire_timeouts;
        self.reads += o.reads;
        self.writes += o.writes;
        self.reply_shrinks += o.reply_shrinks;
        self.reply_expands += o.reply_expands;
        for (mine, theirs) in self.subscribed.iter_mut().zip(&o.subscribed) {
            mine.extend(theirs.iter().cloned());
        }
    }

    /// Distinct channels, patterns and shard channels subscribed to.
    fn subscribed(&self) -> [usize; 3] {
        self.subscribed.clone().map(|mut names| {
            names.sort_unstable();
            names.dedup();
            names.len()
        })
    }
}

async fn gather(client: &Client) -> ShardReport {
    let reports = client
        .shard
        .broadcast(|sh| {
            let ks = sh.ks.borrow();
            let now = sh.now();
            ShardReport {
                dbs: ks.dbs.iter().map(|d| (d.len(), d.expires_len(), d.avg_ttl(now))).collect(),
                hits: ks.hits,
                misses: ks.misses,
                expired: ks.expired(),
                dirty: ks.dirty,
                commands: sh.stats.commands.get(),
                net_input: sh.stats.net_input.get(),
                net_output: sh.stats.net_output.get(),
                expire_timeouts: sh.stats.expire_cycle_timeouts.get(),
                reads: sh.stats.reads.get(),
                writes: sh.stats.writes.get(),
                reply_shrinks: sh.stats.reply_shrinks.get(),
                reply_expands: sh.stats.reply_expands.get(),
                subscribed: {
                    use crate::server::pubsub::Kind;
                    let reg = sh.pubsub.borrow();
                    [Kind::Channel, Kind::Pattern, Kind::Shard].map(|k| reg.names(k).cloned().collect())
                },
            }
        })
        .await;
    let mut total = ShardReport::default();
    for r in &reports {
        total.add(r);
    }
    total
}

pub(super) fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        _ if n < 1024.0 => format!("{n}B"),
        _ if n < 1024.0 * 1024.0 => format!("{:.2}K", n / 1024.0),
        _ if n < 1024.0 * 1024.0 * 1024.0 => format!("{:.2}M", n / (1024.0 * 1024.0)),
        _ => format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0)),
    }
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_stime), secs(ru.ru_utime))
}

const DEFAULT_SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
];

fn info<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let mut wanted: Vec<String> = (1..args.len()).map(|i| args.str(i).to_ascii_lowercase()).collect();
        let everything = wanted.iter().any(|s| s == "all" || s == "everything");
        if wanted.is_empty() || wanted.iter().any(|s| s == "default") || everything {
            wanted.extend(DEFAULT_SECTIONS.iter().map(|s| s.to_string()));
        }
        if everything {
            wanted.extend(["commandstats", "latencystats"].map(String::from));
        }
        let want = |s: &str| wanted.iter().any(|w| w == s);
        // Memory is read before the other sections are gathered: merging
        // the cores' statistics allocates for a while, and scripts that
        // set maxmemory from used_memory must not count that.
        let memory = if want("memory") { Some(super::memory::server_usage(client).await) } else { None };
        let report = gather(client).await;
        let costs = super::stats::merged(client).await;
        let server = &client.shard.server;
        let mut out = String::new();
        let mut section = |title: &str, body: String| {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let _ = write!(out, "# {title}\r\n{body}");
        };
        if want("server") {
            let uptime = server.started.elapsed().as_secs();
            let (port, hz, file) = server.config(|c| (c.int("port"), c.int("hz"), c.file.clone().unwrap_or_default()));
            let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
            section(
                "Server",
                format!(
                    "redis_version:{REDIS_VERSION}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\npercore_version:{}\r\nos:Linux {} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:io_uring\r\natomicvar_api:c11-builtin\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{port}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:{hz}\r\nconfigured_hz:{hz}\r\nlru_clock:{}\r\nexecutable:{exe}\r\nconfig_file:{file}\r\nio_threads_active:0\r\nshards:{}\r\n",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    server.run_id,
                    now_us(),
                    uptime / 86400,
                    (now_ms() / 1000) & ((1 << 24) - 1),
                    server.shards,
                ),
            );
        }
        if want("clients") {
            section(
                "Clients",
                format!(
                    "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:{}\r\nclients_in_timeout_table:{}\r\n",
                    server.counters.connected_clients.load(Ordering::Relaxed),
                    Hot::get(&server.hot.maxclients),
                    server.blocked_clients.load(Ordering::Relaxed),
                    server.tracking.clients.load(Ordering::Relaxed),
                    server.blocked_clients.load(Ordering::Relaxed),
                ),
            );
        }
        if let Some(memory) = memory {
            section("Memory", memory.info(server));
        }
        if want("persistence") {
            let (aof, rdb) = (&server.aof, &server.rdb);
            let (cow, done, total, perc) = crate::persistence::rdb::current_progress(rdb);
            let on = aof.enabled.load(Ordering::Relaxed);
            let mut text = format!(
                "loading:{}\r\nasync_loading:0\r\ncurrent_cow_peak:{cow}\r\ncurrent_cow_size:{cow}\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:{perc:.2}\r\ncurrent_save_keys_processed:{done}\r\ncurrent_save_keys_total:{total}\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:{}\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:{}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
                u8::from(server.loading.load(Ordering::Relaxed)),
                crate::persistence::rdb::changes_since_save(server, report.dirty),
                u8::from(rdb.saving.load(Ordering::Relaxed)),
                rdb.last_save.load(Ordering::Relaxed),
                if rdb.last_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
                rdb.last_secs.load(Ordering::Relaxed),
                crate::persistence::rdb::current_secs(rdb),
                rdb.saves.load(Ordering::Relaxed),
                rdb.last_copied.load(Ordering::Relaxed),
                rdb.loaded_expired.load(Ordering::Relaxed),
                rdb.loaded_keys.load(Ordering::Relaxed),
                u8::from(on || aof.enable_scheduled.load(Ordering::Relaxed)),
                u8::from(aof.rewriting.load(Ordering::Relaxed)),
                u8::from(aof.scheduled.load(Ordering::Relaxed)),
                aof.last_rewrite_secs.0.load(Ordering::Relaxed),
                crate::persistence::current_rewrite_secs(aof),
                if aof.last_rewrite_failed.load(Ordering::Relaxed) { "err" } else { "ok" },
                aof.rewrites.load(Ordering::Relaxed),
                aof.consecutive_failures.load(Ordering::Relaxed),
                if !on || aof.last_write_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
            );
            if on {
                let _ = write!(
                    text,
                    "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:{}\r\naof_buffer_length:0\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
                    aof.current_size.load(Ordering::Relaxed),
                    aof.base_size.load(Ordering::Relaxed),
                    u8::from(aof.scheduled.load(Ordering::Relaxed)),
                );
            }
            if server.loading.load(Ordering::Relaxed) {
                text.push_str(&server.load_progress.info());
            }
            section("Persistence", text);
        }
        if want("stats") {
            let (ops, kin, kout) = server.records.rates.lock().unwrap_or_else(|p| p.into_inner()).current();
            let [channels, patterns, shard_channels] = report.subscribed();
            section(
                "Stats",
                format!(
                    "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{ops}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:{kin:.2}\r\ninstantaneous_output_kbps:{kout:.2}\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:{}\r\nexpire_cycle_cpu_milliseconds:0\r\nevicted_keys:{}\r\nevicted_clients:0\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:{}\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:{}\r\nreply_buffer_expands:{}\r\n",
                    server.counters.total_connections.load(Ordering::Relaxed),
                    report.commands,
                    report.net_input,
                    report.net_output,
                    server.counters.rejected_connections.load(Ordering::Relaxed),
                    server.repl.sync_full.load(Ordering::Relaxed),
                    server.repl.sync_partial_ok.load(Ordering::Relaxed),
                    server.repl.sync_partial_err.load(Ordering::Relaxed),
                    report.expired,
                    report.expire_timeouts,
                    server.evicted_keys.load(Ordering::Relaxed),
                    report.hits,
                    report.misses,
                    channels,
                    patterns,
                    shard_channels,
                    server.images.load(Ordering::Relaxed),
                    server.tracking.keys.load(Ordering::Relaxed),
                    server.tracking.items.load(Ordering::Relaxed),
                    client.shard.tracking.borrow().prefixes(),
                    costs.error_replies,
                    report.reads,
                    report.writes,
                    report.reply_shrinks,
                    report.reply_expands,
                ),
            );
        }
        if want("replication") {
            section("Replication", crate::replication::info(server));
        }
        if want("cpu") {
            let (sys, user) = cpu_times();
            section(
                "CPU",
                format!(
                    "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n"
                ),
            );
        }
        if want("modules") {
            section("Modules", String::new());
        }
        if want("commandstats") {
            section("Commandstats", super::stats::commandstats(&costs));
        }
        if want("errorstats") {
            section("Errorstats", super::stats::errorstats(&costs));
        }
        if want("latencystats") {
            section("Latencystats", super::stats::latencystats(client, &costs));
        }
        if want("cluster") {
            section("Cluster", "cluster_enabled:0\r\n".into());
        }
        if want("keyspace") {
            let mut body = String::new();
            for (i, (keys, expires, avg)) in report.dbs.iter().enumerate() {
                if *keys > 0 {
                    let _ = write!(body, "db{i}:keys={keys},expires={expires},avg_ttl={avg}\r\n");
                }
            }
            section("Keyspace", body);
        }
        Ok(Reply::Verbatim(out.into()))
    })
}

fn dbsize<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let db = client.db();
        let sizes = client.shard.broadcast(move |sh| sh.ks.borrow().dbs[db].len()).await;
        Ok(Reply::Int(sizes.iter().sum::<usize>() as i64))
    })
}

/// FLUSHDB / FLUSHALL take an optional ASYNC or SYNC (both free memory
/// right away here).
fn flush_mode(args: Args) -> Result<(), CmdError> {
    match args.len() {
        1 => Ok(()),
        2 if args.is(1, "ASYNC") || args.is(1, "SYNC") => Ok(()),
        _ => Err(CmdError::Syntax),
    }
}

fn flushdb<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        flush_mode(args)?;
        let (db, by) = (client.db(), client.meta.id);
        let removed = client
            .shard
            .broadcast(move |sh| {
                let mut ks = sh.ks.borrow_mut();
                ks.finish_snapshot(sh.now());
                let removed = ks.dbs[db].len() as u64;
                ks.dbs[db].clear(sh.now());
                drop(ks);
                // Group reads blocked on a stream that went away fail.
                sh.dbs_replaced(|d| d == db);
                sh.tracking_flushed(by);
                removed
            })
            .await;
        // As Redis counts it: the keys removed.
        client.changed(removed.iter().sum());
        Ok(Reply::Ok)
    })
}

fn flushall<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        flush_mode(args)?;
        let by = client.meta.id;
        let server = client.shard.server.clone();
        // FLUSHALL stops a BGSAVE (Redis kills its child); an AOF
        // rewrite's image is finished instead.
        let stops_save = server.rdb.saving.load(Ordering::SeqCst);
        if stops_save {
            server.rdb.aborted.store(true, Ordering::SeqCst);
        }
        let removed = client
            .shard
            .broadcast(move |sh| {
                let mut ks = sh.ks.borrow_mut();
                let now = sh.now();
                ks.stop_rdb_snapshot();
                ks.finish_snapshot(now);
                let removed = ks.dbs.iter().map(|d| d.len() as u64).sum::<u64>();
                ks.dbs.iter_mut().for_each(|d| d.clear(now));
                drop(ks);
                sh.dbs_replaced(|_| true);
                sh.tracking_flushed(by);
                removed
            })
            .await;
        // As Redis counts it: the keys removed.
        let removed: u64 = removed.iter().sum();
        client.changed(removed);
        // With save points the empty dataset is on disk before the reply
        // (Redis's flushallCommand); during an AOF rewrite, which holds
        // the one image a shard has, the cron saves it after.
        if crate::persistence::rdb::has_save_points(&server) {
            while server.rdb.saving.load(Ordering::SeqCst) {
                crate::server::poller::sleep(std::time::Duration::from_millis(1)).await;
            }
            if server.aof.rewriting.load(Ordering::SeqCst) {
                server.rdb.scheduled.store(true, Ordering::SeqCst);
            } else {
                match crate::persistence::rdb::save(client, Mode::Held).await {
                    // The file holds the flush, whose changes dispatch
                    // counts after it.
                    Ok(()) => _ = server.rdb.dirty_saved.fetch_add(removed, Ordering::SeqCst),
                    Err(e) => tracing::warn!("Error saving the DB after FLUSHALL: {e}"),
                }
            }
        }
        Ok(Reply::Ok)
    })
}

fn swapdb<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let index = |i: usize, which: &str| {
            let n = args.int(i).ok().filter(|n| i32::try_from(*n).is_ok());
            n.ok_or_else(|| CmdError::err(format!("invalid {which} DB index")))
        };
        let (a, b) = (index(1, "first")?, index(2, "second")?);
        let n = client.shard.databases() as i64;
        if !(0..n).contains(&a) || !(0..n).contains(&b) {
            return Err(CmdError::DbIndexOutOfRange);
        }
        let (a, b) = (a as usize, b as usize);
        if a != b {
            let (lo, hi) = (a.min(b), a.max(b));
            client
                .shard
                .broadcast(move |sh| {
                    let now = sh.now();
                    let mut ks = sh.ks.borrow_mut();
                    ks.finish_snapshot(now);
                    let (low, high) = ks.dbs.split_at_mut(hi);
                    Db::swap(&mut low[lo], &mut high[0], now);
                    drop(ks);
                    // Clients blocked on a key the other database holds
                    // are served now, as Redis's swapdb does.
                    sh.dbs_replaced(|db| db == lo || db == hi);
                })
                .await;
            client.changed(1);
        }
        Ok(Reply::Ok)
    })
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];

fn config<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let sub = args.keyword(1);
        let server = &client.shard.server;
        let arity = || CmdError::sub_arity("config", &sub);
        match sub.as_str() {
            "GET" => {
                if args.len() < 3 {
                    return Err(arity());
                }
                let mut pairs: Vec<(String, String)> = Vec::new();
                for i in 2..args.len() {
                    for (k, v) in server.config(|c| c.get_matching(&args.str(i))) {
                        if !pairs.iter().any(|(n, _)| *n == k) {
                            pairs.push((k, v));
                        }
                    }
                }
                Ok(Reply::Map(pairs.into_iter().map(|(k, v)| (Reply::text(k), Reply::text(v))).collect()))
            }
            "SET" => {
                if args.len() < 4 || !args.len().is_multiple_of(2) {
                    return Err(arity());
                }
                let mut seen: Vec<String> = Vec::new();
                for i in (2..args.len()).step_by(2) {
                    let name = args.str(i).to_ascii_lowercase();
                    if seen.contains(&name) {
                        return Err(CmdError::ConfigSet { name, reason: "duplicate parameter".into() });
                    }
                    seen.push(name);
                }
                // Validate everything first so a bad pair leaves nothing applied.
                let snapshot: Vec<(String, String)> =
                    (2..args.len()).step_by(2).map(|i| (args.str(i), args.str(i + 1))).collect();
                for (name, _) in &snapshot {
                    if crate::config::Config::is_protected(name) && !client.may("enable-protected-configs") {
                        return Err(CmdError::ConfigSet {
                            name: name.clone(),
                            reason: ConfigError::Protected.to_string(),
                        });
                    }
                }
                for (name, value) in &snapshot {
                    let probe = server.config(|c| {
                        let mut copy = crate::config::Config::default();
                        for (k, v) in c.get_matching("*") {
                            let _ = copy.set(&k, &v, true);
                        }
                        copy.set(name, value, false)
                    });
                    if name.eq_ignore_ascii_case("dir") {
                        // Changing directory is validated by doing it.
                        continue;
                    }
                    match probe {
                        Ok(()) => {}
                        Err(ConfigError::Unknown) => {
                            return Err(CmdError::ConfigUnknown(name.clone()));
                        }
                        Err(e) => {
                            return Err(CmdError::ConfigSet { name: name.clone(), reason: e.to_string() });
                        }
                    }
                }
                let listeners = relisten(client, &snapshot)?;
                for (name, value) in snapshot {
                    server.config_set(&name, &value).map_err(|e| match e {
                        ConfigError::Unknown => CmdError::ConfigUnknown(name.clone()),
                        e => CmdError::ConfigSet { name: name.clone(), reason: e.to_string() },
                    })?;
                    if name.eq_ignore_ascii_case("aof-disable-auto-gc") && value.eq_ignore_ascii_case("no") {
                        let settings = server.config(crate::persistence::aof::Settings::from_config);
                        crate::persistence::delete_history(server, &settings)
                            .map_err(|reason| CmdError::ConfigSet { name: name.clone(), reason })?;
                    }
                    if name.eq_ignore_ascii_case("repl-backlog-size")
                        && let Some(b) = server.repl.state().backlog.as_mut()
                    {
                        b.set_size(server.config(|c| c.int("repl-backlog-size")).max(1) as usize);
                    }
                    if name.eq_ignore_ascii_case("tracking-table-max-keys") {
                        // A lower limit takes effect before the next reply.
                        client.shard.broadcast(|sh| sh.shed_tracked_keys()).await;
                    }
                    if name.eq_ignore_ascii_case("appendonly") {
                        // Turning the AOF on writes a base from a
                        // point-in-time image first, as Redis does.
                        if value.eq_ignore_ascii_case("yes") {
                            crate::persistence::enable(client)
                                .await
                                .map_err(|reason| CmdError::ConfigSet { name: name.clone(), reason })?;
                        } else {
                            crate::persistence::disable(server).await;
                        }
                    }
                }
                for (i, mine) in listeners.into_iter().enumerate() {
                    client.shard.run_on(i, move |sh| crate::server::listen::install(sh, mine)).await;
                }
                Ok(Reply::Ok)
            }
            "RESETSTAT" => {
                if args.len() != 2 {
                    return Err(arity());
                }
                client
                    .shard
                    .broadcast(|sh| {
                        let mut ks = sh.ks.borrow_mut();
                        ks.hits = 0;
                        ks.misses = 0;
                        ks.dbs.iter_mut().for_each(|d| d.expired = 0);
                        for c in [
                            &sh.stats.commands,
                            &sh.stats.net_input,
                            &sh.stats.net_output,
                            &sh.stats.expire_cycle_timeouts,
                            &sh.stats.reads,
                            &sh.stats.writes,
                            &sh.stats.reply_shrinks,
                            &sh.stats.reply_expands,
                        ] {
                            c.set(0);
                        }
                    })
                    .await;
                server.counters.total_connections.store(0, Ordering::Relaxed);
                server.counters.rejected_connections.store(0, Ordering::Relaxed);
                for c in [&server.repl.sync_full, &server.repl.sync_partial_ok, &server.repl.sync_partial_err] {
                    c.store(0, Ordering::Relaxed);
                }
                super::stats::reset(client).await;
                Ok(Reply::Ok)
            }
            "REWRITE" => {
                server.config(|c| c.rewrite()).map_err(CmdError::err)?;
                tracing::info!("CONFIG REWRITE executed with success.");
                Ok(Reply::Ok)
            }
            "HELP" => Ok(Reply::help(CONFIG_HELP)),
            _ => Err(CmdError::UnknownSubcommand { cmd: "CONFIG".into(), sub: args.str(1) }),
        }
    })
}

/// LOLWUT [VERSION v] [columns rows squares-per-row squares-per-col]:
/// version 5 draws a grid of squares in braille (after Georg Nees'
/// Schotter, without the random tilt), version 6 its caption of a city;
/// every version ends with the version line, as Redis's does.
fn lolwut(_client: &mut Client, args: Args) -> CmdResult {
    let mut version = 7;
    let mut at = 1;
    if args.len() > 2 && args.is(1, "VERSION") {
        version = args.int(2)?;
        at = 3;
    }
    let nums = (at..args.len()).map(|i| args.int(i)).collect::<Result<Vec<i64>, _>>()?;
    let art = match version {
        5 => {
            let arg = |i: usize, default: i64, max: i64| nums.get(i).copied().unwrap_or(default).clamp(1, max) as usize;
            let (cols, per_row, per_col) = (arg(0, 66, 1000), arg(1, 8, 200), arg(2, 12, 200));
            schotter(cols, per_row, per_col) + "\nGeorg Nees - schotter, plotter on paper, 1968. "
        }
        6 => "Dedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by hikikomori. ".to_string(),
        _ => String::new(),
    };
    Ok(Reply::Verbatim(format!("{art}Redis ver. {REDIS_VERSION}\n").into()))
}

/// Squares on a braille canvas `cols` characters wide (2x4 dots each).
fn schotter(cols: usize, per_row: usize, per_col: usize) -> String {
    let width = cols * 2;
    let side = (width / (per_row + 2)).max(2);
    let height = side * (per_col + 2);
    let mut dots = vec![false; width * height];
    for row in 0..per_col {
        for col in 0..per_row {
            let (x0, y0) = ((col + 1) * side, (row + 1) * side);
            for i in 0..side.saturating_sub(1) {
                for (x, y) in [(x0 + i, y0), (x0 + i, y0 + side - 2), (x0, y0 + i), (x0 + side - 2, y0 + i)] {
                    if x < width && y < height {
                        dots[y * width + x] = true;
                    }
                }
            }
        }
    }
    // Braille dot bits by (column, row) within a cell.
    const BITS: [[u32; 4]; 2] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]];
    let mut out = String::new();
    for cy in 0..height.div_ceil(4) {
        for cx in 0..cols {
            let mut bits = 0;
            for (dx, column) in BITS.iter().enumerate() {
                for (dy, bit) in column.iter().enumerate() {
                    let (x, y) = (cx * 2 + dx, cy * 4 + dy);
                    if y < height && dots[y * width + x] {
                        bits |= bit;
                    }
                }
            }
            out.push(char::from_u32(0x2800 + bits).unwrap_or(' '));
        }
        out.push('\n');
    }
    out
}

fn time(_client: &mut Client, _args: Args) -> CmdResult {
    let us = now_us();
    Ok(Reply::Array(vec![Reply::text((us / 1_000_000).to_string()), Reply::text((us % 1_000_000).to_string())]))
}

fn lastsave(client: &mut Client, _args: Args) -> CmdResult {
    Ok(Reply::Int(client.shard.server.rdb.last_save.load(Ordering::Relaxed)))
}

/// The listeners a CONFIG SET of `port` or `bind` asks for, one set per
/// shard (none when neither changes): opened before anything is applied,
/// so an address in use refuses the whole command with Redis's error.
fn relisten(client: &Client, changes: &[(String, String)]) -> Result<Vec<Vec<std::net::TcpListener>>, CmdError> {
    let changed = |key: &str| changes.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone());
    let server = &client.shard.server;
    let (old_port, old_bind, backlog) =
        server.config(|c| (c.int("port") as u16, c.str("bind").to_string(), c.int("tcp-backlog") as i32));
    // Set to what they are, nothing is reopened (Redis applies changes
    // only). Both values passed validation.
    let port = changed("port").map(|p| p.parse::<u16>().unwrap_or(0)).filter(|&p| p != old_port);
    let bind = changed("bind").filter(|b| *b != old_bind);
    if port.is_none() && bind.is_none() {
        return Ok(Vec::new());
    }
    let (name, reason) = match bind {
        Some(_) => ("bind", "Failed to bind to specified addresses."),
        None => ("port", "Unable to listen on this port"),
    };
    let port = port.unwrap_or(old_port);
    match crate::server::listen::open(&bind.unwrap_or(old_bind), port, backlog, client.shard.count) {
        Ok((_, listeners)) => Ok(listeners),
        Err(e) => {
            tracing::warn!("Failed listening on port {port} (TCP), aborting: {e}");
            Err(CmdError::ConfigSet { name: name.into(), reason: reason.into() })
        }
    }
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: saves first when told
/// to or when save points are set (unless NOSAVE); a failed save stops
/// the shutdown unless FORCE.
fn shutdown<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let (mut save, mut nosave, mut force) = (false, false, false);
        for i in 1..args.len() {
            match args.keyword(i).as_str() {
                "NOSAVE" => nosave = true,
                "SAVE" => save = true,
                "FORCE" => force = true,
                "NOW" => {}
                "ABORT" if args.len() == 2 => return Err(CmdError::err("No shutdown in progress.")),
                _ => return Err(CmdError::Syntax),
            }
        }
        if save && nosave {
            return Err(CmdError::Syntax);
        }
        let server = client.shard.server.clone();
        crate::persistence::rdb::stop_background_save(client).await;
        if (save || (!nosave && crate::persistence::rdb::has_save_points(&server)))
            && crate::persistence::rdb::final_save(client).await.is_err()
            && !force
        {
            return Err(CmdError::err("Errors trying to SHUTDOWN. Check logs."));
        }
        let pidfile = server.config(|c| c.str("pidfile").to_string());
        crate::server::signals::shutdown(&pidfile)
    })
}

const MODULE_HELP: &[&str] = &[
    "MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LIST",
    "    Return a list of loaded modules.",
    "LOAD <path> [<arg> ...]",
    "    Load a module library from <path>, passing to it any optional arguments.",
    "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
    "    Load a module library from <path>, while passing it module configurations and optional arguments.",
    "UNLOAD <name>",
    "    Unload a module.",
    "HELP",
    "    Prints this help.",
];

/// MODULE: percore loads no modules, so the list is empty and loading
/// fails as a module that cannot be loaded does in Redis. LOAD, LOADEX
/// and UNLOAD are protected subcommands (`enable-module-command`); LIST
/// and HELP are not.
fn module(client: &mut Client, args: Args) -> CmdResult {
    let sub = args.keyword(1);
    if matches!(sub.as_str(), "LOAD" | "LOADEX" | "UNLOAD") && !client.may("enable-module-command") {
        return Err(CmdError::ProtectedCommand { cmd: "MODULE".into(), directive: "enable-module-command" });
    }
    match (sub.as_str(), args.len()) {
        ("LIST", 2) => Ok(Reply::Array(Vec::new())),
        ("LOAD" | "LOADEX", n) if n >= 3 => {
            tracing::warn!("Module {} failed to load: percore does not support modules", args.str(2));
            Err(CmdError::err("Error loading the extension. Please check the server logs."))
        }
        ("UNLOAD", 3) => Err(CmdError::err("Error unloading module: no such module with that name")),
        ("HELP", 2) => Ok(Reply::help(MODULE_HELP)),
        _ => Err(CmdError::SubcommandSyntax { cmd: "MODULE".into(), sub: args.str(1) }),
    }
}

fn bgrewriteaof<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        crate::persistence::rewrite(client).await.map_err(CmdError::err)?;
        if client.shard.server.aof.scheduled.load(Ordering::SeqCst) {
            return Ok(Reply::status("Background append only file rewriting scheduled"));
        }
        Ok(Reply::status("Background append only file rewriting started"))
    })
}

/// SAVE: a snapshot on disk before the reply; commands on keys wait
/// for it, as Redis's clients wait for its foreground save.
fn save<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        crate::persistence::rdb::save(client, Mode::Blocking).await.map_err(CmdError::err)?;
        Ok(Reply::Ok)
    })
}

/// BGSAVE [SCHEDULE]: a snapshot written in the background; during an
/// AOF rewrite only with SCHEDULE, which starts it after.
fn bgsave<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let schedule = match args.len() {
            1 => false,
            2 if args.is(1, "SCHEDULE") => true,
            _ => return Err(CmdError::Syntax),
        };
        let server = &client.shard.server;
        if server.rdb.saving.load(Ordering::SeqCst) {
            return Err(CmdError::err("Background save already in progress"));
        }
        if schedule && server.aof.rewriting.load(Ordering::SeqCst) {
            server.rdb.scheduled.store(true, Ordering::SeqCst);
            return Ok(Reply::status("Background saving scheduled"));
        }
        crate::persistence::rdb::save(client, Mode::Background).await.map_err(CmdError::err)?;
        Ok(Reply::status("Background saving started"))
    })
}

const ANY: u32 = LOADING | STALE;

pub(super) const TABLE: &[Spec] = &[
    Spec::new("info", -1, ANY, Keys::None, Handler::Async(info)),
    Spec::new("dbsize", 1, READONLY | FAST, Keys::None, Handler::Async(dbsize)),
    Spec::new("flushdb", -1, WRITE | EXCLUSIVE, Keys::None, Handler::Async(flushdb)),
    Spec::new("flushall", -1, WRITE | EXCLUSIVE, Keys::None, Handler::Async(flushall)),
    Spec::new("swapdb", 3, WRITE | FAST | EXCLUSIVE, Keys::None, Handler::Async(swapdb)),
    Spec::new("config", -2, CONTAINER | ADMIN | NOSCRIPT | ANY, Keys::None, Handler::Async(config))
        .with_subcommands(&["config|get", "config|help", "config|resetstat", "config|rewrite", "config|set"]),
    Spec::new("bgrewriteaof", 1, ADMIN | NOSCRIPT, Keys::None, Handler::Async(bgrewriteaof)),
    Spec::new("save", 1, ADMIN | NOSCRIPT | NO_MULTI, Keys::None, Handler::Async(save)),
    Spec::new("bgsave", -1, ADMIN | NOSCRIPT, Keys::None, Handler::Async(bgsave)),
    Spec::new("module", -2, CONTAINER | ADMIN | NOSCRIPT, Keys::None, Handler::Conn(module)).with_subcommands(&[
        "module|help",
        "module|list",
        "module|load",
        "module|loadex",
        "module|unload",
    ]),
    Spec::new("time", 1, ANY | FAST, Keys::None, Handler::Conn(time)),
    Spec::new("lolwut", -1, READONLY | FAST, Keys::None, Handler::Conn(lolwut)),
    Spec::new("lastsave", 1, ANY | FAST, Keys::None, Handler::Conn(lastsave)),
    Spec::new("shutdown", -1, ADMIN | NOSCRIPT | ANY | ALLOW_BUSY | NO_MULTI, Keys::None, Handler::Async(shutdown)),
];
