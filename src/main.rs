//! percore: a Redis-compatible server, thread-per-core and shared-nothing.
//!
//! Usage, as redis-server: `percore [/path/to/redis.conf] [--directive value ...]`.

use std::process::ExitCode;

use tikv_jemallocator::Jemalloc;
use tracing::{info, warn};

mod command;
mod commands;
mod config;
mod journal;
mod logging;
mod pattern;
mod persistence;
mod protocol;
mod rdb;
mod replication;
mod scripting;
mod server;
mod storage;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// jemalloc's options, read before `main`: allocations of 256 KiB and more
/// (the bucket arrays of big hashes, sets and sorted sets; big values) go
/// to its oversize arena, whose freed pages return to the system at once,
/// so a table that doubled does not keep its old array resident.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 26] = b"oversize_threshold:262144\0";

/// The configuration used when no file is given: what `redis-server` with
/// no arguments does, but on loopback only.
const DEFAULT_CONFIG: &str = include_str!("../percore.conf");

fn usage() {
    eprintln!(
        "Usage: percore [/path/to/redis.conf] [options]\n       percore -v or --version\n       percore -h or --help\n\nExamples:\n       percore (run with the embedded default config)\n       percore /etc/redis/6379.conf\n       percore --port 7777 --threads 2\n       percore /etc/myredis.conf --loglevel verbose"
    );
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v" | "--version") => {
            println!("percore v={} bits=64 (Redis-compatible 7.0.15)", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            usage();
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let file = match args.first() {
        Some(a) if !a.starts_with("--") => Some(args.remove(0)),
        _ => None,
    };
    let text = match &file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Fatal error, can't open config file '{path}': {e}");
                return ExitCode::FAILURE;
            }
        },
        None => DEFAULT_CONFIG.to_string(),
    };
    let source = file.as_deref().unwrap_or("(embedded default)");
    let mut config = match config::Config::load(Some((source, &text)), &args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    config.file = file.as_deref().map(|f| std::path::absolute(f).map_or(f.to_string(), |p| p.display().to_string()));
    if let Err(e) = logging::init(config.str("loglevel"), config.str("logfile")) {
        eprintln!("Can't open the log file: {e}");
        return ExitCode::FAILURE;
    }
    let pid = std::process::id();
    info!("oO0OoO0OoO0Oo percore is starting oO0OoO0OoO0Oo");
    info!("percore version={}, bits=64, pid={pid}, just started", env!("CARGO_PKG_VERSION"));
    match &file {
        Some(_) => info!("Configuration loaded"),
        None => warn!(
            "Warning: no config file specified, using the embedded default config. In order to specify a config file use percore /path/to/redis.conf"
        ),
    }
    for warning in &config.warnings {
        warn!("{warning}");
    }
    let pidfile = config.str("pidfile").to_string();
    if !pidfile.is_empty()
        && let Err(e) = std::fs::write(&pidfile, format!("{pid}\n"))
    {
        warn!("Failed to write PID file: {e}");
    }
    server::signals::install(pidfile);
    match server::run(config, commands::table()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
