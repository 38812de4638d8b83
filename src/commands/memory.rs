//! MEMORY: what a key costs (USAGE, from `storage::memory`), the
//! server's memory as jemalloc and the keyspace report it (STATS,
//! DOCTOR, MALLOC-STATS), and returning free pages (PURGE).

use futures::future::LocalBoxFuture;

use super::server::memory_stats;
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

async fn stats(client: &Client) -> Reply {
    let (used, active, rss) = memory_stats();
    let keys: usize =
        client.shard.broadcast(|sh| sh.ks.borrow().dbs.iter().map(|d| d.len()).sum::<usize>()).await.iter().sum();
    let startup = client.shard.server.startup_memory;
    let overhead = startup.min(used);
    let dataset = used.saturating_sub(overhead);
    let pct = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 * 100.0 / b as f64 };
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let int = |n: u64| Reply::Int(n as i64);
    let field = |name: &str, value: Reply| (Reply::bulk(name.as_bytes()), value);
    Reply::Map(vec![
        field("peak.allocated", int(active.max(used))),
        field("total.allocated", int(used)),
        field("startup.allocated", int(startup)),
        field("replication.backlog", int(0)),
        field("clients.slaves", int(0)),
        field("clients.normal", int(0)),
        field("cluster.links", int(0)),
        field("aof.buffer", int(0)),
        field("lua.caches", int(0)),
        field("functions.caches", int(0)),
        field("overhead.total", int(overhead)),
        field("keys.count", int(keys as u64)),
        field("keys.bytes-per-key", int(if keys == 0 { 0 } else { dataset / keys as u64 })),
        field("dataset.bytes", int(dataset)),
        field("dataset.percentage", Reply::Double(pct(dataset, used))),
        field("peak.percentage", Reply::Double(pct(used, active.max(used)))),
        field("allocator.allocated", int(used)),
        field("allocator.active", int(active)),
        field("allocator.resident", int(rss)),
        field("allocator-fragmentation.ratio", Reply::Double(ratio(active, used))),
        field("allocator-fragmentation.bytes", int(active.saturating_sub(used))),
        field("rss-overhead.ratio", Reply::Double(ratio(rss, active))),
        field("rss-overhead.bytes", int(rss.saturating_sub(active))),
        field("fragmentation", Reply::Double(ratio(rss, used))),
        field("fragmentation.bytes", int(rss.saturating_sub(used))),
    ])
}

fn doctor() -> String {
    let (used, active, rss) = memory_stats();
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
    &[Spec::new("memory", -2, CONTAINER | READONLY, Keys::Find(memory_keys), Handler::Async(memory))
        .with_subcommands(crate::command::subcommands::MEMORY)];
