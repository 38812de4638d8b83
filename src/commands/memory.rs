//! MEMORY: what a key costs (USAGE, from `storage::memory`), the
//! server's memory as jemalloc and the keyspace report it (STATS,
//! DOCTOR, MALLOC-STATS), and returning free pages (PURGE).

use futures::future::LocalBoxFuture;

use super::server::human_bytes;
use super::{Handler, Spec};
use crate::command::{Args, CONTAINER, Keys, READONLY};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::storage::Key;

/// Elements MEMORY USAGE samples by default (Redis's
/// OBJ_COMPUTE_SIZE_DEF_SAMPLES).
const DEFAULT_SAMPLES: usize = 5;

const HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];

/// Below this much allocated, DOCTOR has nothing to say (as Redis's).
const DOCTOR_MIN_BYTES: u64 = 5 * 1024 * 1024;

async fn usage(client: &Client, args: Args<'_>) -> CmdResult {
    let samples = match args.len() {
        3 => DEFAULT_SAMPLES,
        5 if args.is(3, "SAMPLES") => {
            let n = args.int(4)?;
            if n < 0 {
                return Err(CmdError::Syntax);
            }
            n as usize
        }
        _ => return Err(CmdError::Syntax),
    };
    let key = Key::from(args.get(2));
    let (db, owner) = (client.db(), client.shard.owner(&key));
    let bytes = client
        .shard
        .run_on(owner, move |sh| {
            sh.with_ctx(db, true, |ctx| ctx.read(&key).map(|e| crate::storage::memory::usage(&key, &e.value, samples)))
        })
        .await;
    Ok(bytes.map_or(Reply::Null, |b| Reply::Int(b as i64)))
}

/// The server's memory, as INFO memory and MEMORY STATS report it.
pub(super) struct Usage {
    /// In use (what eviction judges by); jemalloc's allocated (with what
    /// the thread caches hold), active and resident bytes; the RSS.
    used: u64,
    allocated: u64,
    active: u64,
    resident: u64,
    rss: u64,
    peak: u64,
    /// Allocated before any client came.
    startup: u64,
    /// Every shard's Lua interpreter.
    lua: u64,
    /// Client connections' buffers and state.
    clients: u64,
    keys: u64,
    /// Per database: keys, and the bytes indexing them and their TTLs.
    dbs: Vec<(usize, (usize, usize))>,
}

/// jemalloc's allocated, active and resident bytes, and the RSS.
fn allocator() -> (u64, u64, u64, u64) {
    use tikv_jemalloc_ctl::stats;
    // (Advances jemalloc's epoch, so the other statistics are as fresh.)
    let allocated = crate::server::shared::allocated_now();
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.unwrap_or(0) as u64;
    let page = 4096;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |p| p * page);
    (allocated, read(stats::active::read()), read(stats::resident::read()), rss)
}

pub(super) async fn server_usage(client: &Client) -> Usage {
    let per_shard = client
        .shard
        .broadcast(|sh| {
            let lua = sh.scripts.borrow().as_ref().map_or(0, |e| e.memory()) as u64;
            let clients: usize = sh.clients.borrow().values().map(|m| m.memory()).sum();
            let dbs: Vec<_> = sh.ks.borrow().dbs.iter().map(|d| (d.len(), d.index_overhead())).collect();
            (lua, clients as u64, dbs)
        })
        .await;
    let mut dbs = vec![(0, (0, 0)); client.shard.databases()];
    for shard in &per_shard {
        for (total, (keys, (main, expires))) in dbs.iter_mut().zip(&shard.2) {
            total.0 += keys;
            total.1.0 += main;
            total.1.1 += expires;
        }
    }
    let (allocated, active, resident, rss) = allocator();
    let used = crate::server::evict::used_memory_now(&client.shard);
    let server = &client.shard.server;
    // (Reading `used` raised the peak to it.)
    let peak = server.used_memory_peak.load(std::sync::atomic::Ordering::Relaxed);
    let sum = |f: fn(&(u64, u64, Vec<_>)) -> u64| per_shard.iter().map(f).sum();
    Usage {
        used,
        allocated,
        active,
        resident,
        rss,
        peak,
        startup: server.startup_memory.load(std::sync::atomic::Ordering::Relaxed),
        lua: sum(|s| s.0),
        clients: sum(|s| s.1),
        keys: dbs.iter().map(|d| d.0 as u64).sum(),
        dbs,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn pct(a: u64, b: u64) -> f64 {
    ratio(a, b) * 100.0
}

impl Usage {
    /// What is not the dataset: startup memory, the clients and the
    /// keyspace's indexes.
    fn overhead(&self) -> u64 {
        let indexes: usize = self.dbs.iter().map(|(_, (main, expires))| main + expires).sum();
        (self.startup + self.clients + indexes as u64).min(self.used)
    }

    fn dataset(&self) -> u64 {
        self.used - self.overhead()
    }

    /// INFO's Memory section, field for field as Redis 7.0 prints it.
    pub(super) fn info(&self, server: &crate::server::shared::Shared) -> String {
        let (maxmemory, policy) = server.config(|c| (c.int("maxmemory") as u64, c.str("maxmemory-policy").to_string()));
        let scripts: u64 = server.scripts.read().map_or(0, |s| s.values().map(|b| b.len() as u64).sum());
        let cached = server.scripts.read().map_or(0, |s| s.len());
        let (functions, libraries, function_bytes) = server.libraries.read().map_or((0, 0, 0), |l| {
            let functions: usize = l.libs.values().map(|lib| lib.functions.len()).sum();
            (functions, l.libs.len(), l.libs.values().map(|lib| lib.code.len() as u64).sum::<u64>())
        });
        let system = total_system_memory();
        let u = self;
        format!(
            "used_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:{:.2}%\r\nused_memory_overhead:{}\r\nused_memory_startup:{}\r\nused_memory_dataset:{}\r\nused_memory_dataset_perc:{:.2}%\r\nallocator_allocated:{}\r\nallocator_active:{}\r\nallocator_resident:{}\r\ntotal_system_memory:{system}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:{}\r\nused_memory_vm_eval:{}\r\nused_memory_lua_human:{}\r\nused_memory_scripts_eval:{scripts}\r\nnumber_of_cached_scripts:{cached}\r\nnumber_of_functions:{functions}\r\nnumber_of_libraries:{libraries}\r\nused_memory_vm_functions:0\r\nused_memory_vm_total:{}\r\nused_memory_vm_total_human:{}\r\nused_memory_functions:{function_bytes}\r\nused_memory_scripts:{}\r\nused_memory_scripts_human:{}\r\nmaxmemory:{maxmemory}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{policy}\r\nallocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:0\r\nmem_total_replication_buffers:0\r\nmem_clients_slaves:0\r\nmem_clients_normal:{}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\nmem_allocator:jemalloc-5.3.0\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
            u.used,
            human_bytes(u.used),
            u.rss,
            human_bytes(u.rss),
            u.peak,
            human_bytes(u.peak),
            pct(u.used, u.peak),
            u.overhead(),
            u.startup,
            u.dataset(),
            pct(u.dataset(), u.used.saturating_sub(u.startup)),
            u.allocated,
            u.active,
            u.resident,
            human_bytes(system),
            u.lua,
            u.lua,
            human_bytes(u.lua),
            u.lua,
            human_bytes(u.lua),
            scripts + function_bytes,
            human_bytes(scripts + function_bytes),
            human_bytes(maxmemory),
            ratio(u.active, u.allocated),
            u.active.saturating_sub(u.allocated),
            ratio(u.resident, u.active),
            u.resident as i64 - u.active as i64,
            ratio(u.rss, u.resident),
            u.rss as i64 - u.resident as i64,
            ratio(u.rss, u.used),
            u.rss as i64 - u.used as i64,
            u.clients,
        )
    }
}

/// MemTotal of /proc/meminfo, in bytes.
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

async fn stats(client: &Client) -> Reply {
    let u = server_usage(client).await;
    let int = |n: u64| Reply::Int(n as i64);
    let field = |name: &str, value: Reply| (Reply::bulk(name.as_bytes()), value);
    let mut fields = vec![
        field("peak.allocated", int(u.peak)),
        field("total.allocated", int(u.used)),
        field("startup.allocated", int(u.startup)),
        field("replication.backlog", int(0)),
        field("clients.slaves", int(0)),
        field("clients.normal", int(u.clients)),
        field("cluster.links", int(0)),
        field("aof.buffer", int(0)),
        field("lua.caches", int(0)),
        field("functions.caches", int(0)),
    ];
    for (db, &(_, (main, expires))) in u.dbs.iter().enumerate().filter(|(_, d)| d.0 > 0) {
        let overhead = vec![
            field("overhead.hashtable.main", int(main as u64)),
            field("overhead.hashtable.expires", int(expires as u64)),
            field("overhead.hashtable.slot-to-keys", int(0)),
        ];
        fields.push(field(&format!("db.{db}"), Reply::Map(overhead)));
    }
    fields.extend([
        field("overhead.total", int(u.overhead())),
        field("keys.count", int(u.keys)),
        field("keys.bytes-per-key", int(u.dataset().checked_div(u.keys).unwrap_or(0))),
        field("dataset.bytes", int(u.dataset())),
        field("dataset.percentage", Reply::Double(pct(u.dataset(), u.used.saturating_sub(u.startup)))),
        field("peak.percentage", Reply::Double(pct(u.used, u.peak))),
        field("allocator.allocated", int(u.allocated)),
        field("allocator.active", int(u.active)),
        field("allocator.resident", int(u.resident)),
        field("allocator-fragmentation.ratio", Reply::Double(ratio(u.active, u.allocated))),
        field("allocator-fragmentation.bytes", int(u.active.saturating_sub(u.allocated))),
        field("allocator-rss.ratio", Reply::Double(ratio(u.resident, u.active))),
        field("allocator-rss.bytes", int(u.resident.saturating_sub(u.active))),
        field("rss-overhead.ratio", Reply::Double(ratio(u.rss, u.resident))),
        field("rss-overhead.bytes", int(u.rss.saturating_sub(u.resident))),
        field("fragmentation", Reply::Double(ratio(u.rss, u.used))),
        field("fragmentation.bytes", int(u.rss.saturating_sub(u.used))),
    ]);
    Reply::Map(fields)
}

fn doctor() -> String {
    let (used, active, _, rss) = allocator();
    if used < DOCTOR_MIN_BYTES {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into();
    }
    let mut issues = Vec::new();
    if active as f64 / used as f64 > 1.1 {
        issues.push(format!(" * High allocator fragmentation: This instance has an allocator external fragmentation greater than 1.1 ({:.2}). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. You can try enabling 'activedefrag' config option.\n", active as f64 / used as f64));
    }
    if rss as f64 / active as f64 > 1.1 {
        issues.push(format!(" * High process RSS overhead: This instance has non-allocator RSS memory overhead is greater than 1.1 ({:.2}). Memory that the allocator keeps for later use can be returned with MEMORY PURGE.\n", rss as f64 / active as f64));
    }
    if issues.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".into();
    }
    format!(
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n{}\nI'm here to keep you safe, Sam. I want to help you.\n",
        issues.join("\n")
    )
}

/// jemalloc's own statistics report.
fn malloc_stats() -> String {
    extern "C" fn write(out: *mut libc::c_void, text: *const libc::c_char) {
        // SAFETY: jemalloc passes the String we gave it and a NUL-terminated
        // line; the String outlives the call.
        unsafe {
            let out = &mut *(out as *mut String);
            out.push_str(&std::ffi::CStr::from_ptr(text).to_string_lossy());
        }
    }
    let mut out = String::new();
    // SAFETY: the callback only appends to `out`, which lives across the call.
    unsafe {
        tikv_jemalloc_sys::malloc_stats_print(Some(write), (&mut out as *mut String).cast(), std::ptr::null());
    }
    out
}

/// Asks jemalloc to return every arena's dirty pages to the system.
fn purge() {
    // MALLCTL_ARENAS_ALL: every arena.
    let name = c"arena.4096.purge";
    // SAFETY: a void control: no old or new value is read or written.
    unsafe {
        tikv_jemalloc_sys::mallctl(name.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0);
    }
}

fn memory<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        match (args.keyword(1).as_str(), args.len()) {
            ("USAGE", n) if n >= 3 => usage(client, args).await,
            ("STATS", 2) => Ok(stats(client).await),
            ("DOCTOR", 2) => Ok(Reply::Verbatim(doctor().into())),
            ("MALLOC-STATS", 2) => Ok(Reply::Verbatim(malloc_stats().into())),
            ("PURGE", 2) => {
                purge();
                Ok(Reply::Ok)
            }
            ("HELP", 2) => Ok(Reply::help(HELP)),
            (sub @ ("USAGE" | "STATS" | "DOCTOR" | "MALLOC-STATS" | "PURGE" | "HELP"), _) => {
                Err(CmdError::sub_arity("memory", sub))
            }
            _ => Err(CmdError::SubcommandSyntax { cmd: "MEMORY".into(), sub: args.str(1) }),
        }
    })
}

/// MEMORY USAGE's key.
fn memory_keys(args: Args) -> Vec<usize> {
    if args.len() >= 3 && args.is(1, "USAGE") { vec![2] } else { Vec::new() }
}

pub(super) const TABLE: &[Spec] =
    &[Spec::new("memory", -2, CONTAINER | READONLY, Keys::Find(memory_keys), Handler::Async(memory)).with_subcommands(
        &["memory|doctor", "memory|help", "memory|malloc-stats", "memory|purge", "memory|stats", "memory|usage"],
    )];
