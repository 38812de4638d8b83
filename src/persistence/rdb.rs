//! RDB snapshots: SAVE and BGSAVE (forkless and point-in-time, on the
//! shards' images), save points, loading at startup, DEBUG RELOAD.
//!
//! A save takes the image of every shard at one instant (see
//! `storage::snapshot`); each shard writes its keys to a part file while
//! it keeps serving, and a thread then joins header, parts and footer
//! into a temporary file that is fsynced and renamed over `dbfilename`.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use tracing::{info, warn};

use crate::rdb::read::{File, Item, Limits};
use crate::rdb::{RdbError, write};
use crate::server::client::Client;
use crate::server::shard::Shard;
use crate::server::shared::{Shared, now_ms};

/// INFO persistence's rdb_* figures and the state of a save.
#[derive(Debug)]
pub struct Status {
    pub saving: AtomicBool,
    /// When the running save started (ms).
    pub started_ms: AtomicI64,
    /// LASTSAVE: the last successful save (unix seconds).
    pub last_save: AtomicI64,
    pub last_ok: AtomicBool,
    pub last_secs: AtomicI64,
    pub saves: AtomicU64,
    /// The dirty counter the last successful save covered.
    pub dirty_saved: AtomicU64,
    /// When the last save failed (ms): save points wait before retrying.
    pub last_failure_ms: AtomicI64,
    /// A BGSAVE waits for the AOF rewrite running (BGSAVE SCHEDULE), or
    /// for FLUSHALL to end.
    pub scheduled: AtomicBool,
    /// FLUSHALL or a shutdown stopped the running save: it ends without
    /// counting as failed (Redis's killed child).
    pub aborted: AtomicBool,
    pub loaded_keys: AtomicU64,
    pub loaded_expired: AtomicU64,
    /// The running (or last) save's progress.
    pub progress: std::sync::Mutex<Arc<super::snapshot::Progress>>,
    /// rdb_last_cow_size: what the last save copied ahead of its cursor.
    pub last_copied: AtomicU64,
}

impl Status {
    pub fn new(started_unix: i64) -> Status {
        Status {
            saving: AtomicBool::new(false),
            started_ms: AtomicI64::new(0),
            last_save: AtomicI64::new(started_unix),
            last_ok: AtomicBool::new(true),
            last_secs: AtomicI64::new(-1),
            saves: AtomicU64::new(0),
            dirty_saved: AtomicU64::new(0),
            last_failure_ms: AtomicI64::new(0),
            scheduled: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            loaded_keys: AtomicU64::new(0),
            loaded_expired: AtomicU64::new(0),
            progress: Default::default(),
            last_copied: AtomicU64::new(0),
        }
    }
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Rdb(#[from] RdbError),
    #[error("Fatal error loading the DB: {0}. Exiting.")]
    Io(String),
    #[error("FATAL: Data file was created with a Redis server configured to handle more than {0} databases. Exiting")]
    Databases(usize),
    #[error("Failed loading the function library: {0}")]
    Function(String),
    #[error("RDB has duplicated key '{0}' in DB {1}")]
    Duplicate(String, usize),
}

/// The start of every file: magic, version, AUX fields, FUNCTION
/// libraries. `aof_base`: the file is an AOF's base (aof-use-rdb-preamble);
/// `repl`: the replication id and offset the image was cut at (a full
/// sync's), as Redis's repl-id / repl-offset AUX fields.
pub fn header(shard: &Shard, aof_base: bool, repl: Option<(&str, u64)>) -> Vec<u8> {
    let server = &shard.server;
    let mut out = format!("REDIS{:04}", crate::rdb::VERSION).into_bytes();
    write::aux(&mut out, "redis-ver", crate::server::REDIS_VERSION.as_bytes());
    write::aux(&mut out, "redis-bits", b"64");
    write::aux(&mut out, "ctime", (now_ms() / 1000).to_string().as_bytes());
    let used = crate::server::evict::used_memory_now(shard);
    write::aux(&mut out, "used-mem", used.to_string().as_bytes());
    if let Some((replid, offset)) = repl {
        write::aux(&mut out, "repl-stream-db", b"0");
        write::aux(&mut out, "repl-id", replid.as_bytes());
        write::aux(&mut out, "repl-offset", offset.to_string().as_bytes());
    }
    write::aux(&mut out, "aof-base", if aof_base { b"1" } else { b"0" });
    if let Ok(libraries) = server.libraries.read() {
        for lib in libraries.libs.values() {
            write::function(&mut out, &lib.code, server.hot.rdb_options());
        }
    }
    out
}

/// Joins header, parts and the checksummed footer into `path`, through a
/// temporary file that is fsynced and renamed (and the rename made
/// durable with an fsync of the directory).
fn assemble(header: &[u8], parts: &[PathBuf], path: &Path, checksum: bool, incremental: bool) -> std::io::Result<()> {
    let temp = PathBuf::from(format!("temp-{}.rdb", std::process::id()));
    let result = std::fs::File::create(&temp)
        .and_then(|file| super::snapshot::join(file, header, parts, Some(checksum), incremental))
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| super::sync_dir_of(path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// How a save treats the other clients and its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// BGSAVE: the caller goes on once the image is cut.
    Background,
    /// SAVE: every shard stays held until the file is on disk, as Redis's
    /// rdbSave blocks the server.
    Blocking,
    /// The caller already holds every shard (FLUSHALL): on disk before it
    /// goes on.
    Held,
}

/// SAVE / BGSAVE: starts a snapshot into `dbfilename`, waiting for it as
/// `mode` says. Err: Redis's reason it could not start or failed.
pub async fn save(client: &Client, mode: Mode) -> Result<(), String> {
    let server = client.shard.server.clone();
    let status = &server.rdb;
    // Checked with every shard held, where no other image can start (an
    // AOF rewrite marks itself before it waits for the shards).
    let ex = match mode {
        Mode::Held => None,
        _ => Some(crate::server::transaction::Exclusive::begin(client).await),
    };
    let refusal = if status.saving.swap(true, Ordering::SeqCst) {
        Some("Background save already in progress")
    } else if server.aof.rewriting.load(Ordering::SeqCst) {
        status.saving.store(false, Ordering::SeqCst);
        Some(
            "Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
        )
    } else {
        None
    };
    if let Some(refusal) = refusal {
        if let Some(ex) = ex {
            ex.end().await;
        }
        return Err(refusal.into());
    }
    let (path, checksum, incremental) = server.config(|c| {
        let yes = |name| c.str(name) == "yes";
        (PathBuf::from(c.str("dbfilename")), yes("rdbchecksum"), yes("rdb-save-incremental-fsync"))
    });
    let header = header(&client.shard, false, None);
    let parts: Vec<PathBuf> =
        (0..client.shard.count).map(|s| PathBuf::from(format!("temp-{}-{s}.rdb.part", std::process::id()))).collect();
    let (tx, rx) = futures::channel::oneshot::channel::<Result<(), String>>();
    let started = Instant::now();
    status.started_ms.store(now_ms(), Ordering::SeqCst);
    let done: super::snapshot::Done = Box::new(move |server, parts, ok, dirty| {
        let result = if ok {
            assemble(&header, parts, &path, checksum, incremental).map_err(|e| super::strerror(&e))
        } else {
            Err("a shard could not write its part".into())
        };
        let status = &server.rdb;
        if status.aborted.swap(false, Ordering::SeqCst) {
            info!("Background saving stopped");
            status.saving.store(false, Ordering::SeqCst);
            let _ = tx.send(Err("the save was stopped".into()));
            return;
        }
        status.last_secs.store(started.elapsed().as_secs() as i64, Ordering::SeqCst);
        let copied = status.progress.lock().map_or(0, |p| p.copied.load(Ordering::Relaxed));
        status.last_copied.store(copied, Ordering::Relaxed);
        match &result {
            Ok(()) => {
                info!("DB saved on disk");
                status.dirty_saved.store(dirty, Ordering::SeqCst);
                status.last_save.store(now_ms() / 1000, Ordering::SeqCst);
                status.saves.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                warn!(
                    "Failed opening the temp RDB file temp-{}.rdb (in server root dir {}) for saving: {e}",
                    std::process::id(),
                    std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
                );
                if mode == Mode::Background {
                    status.last_failure_ms.store(now_ms(), Ordering::SeqCst);
                }
            }
        }
        // As Redis's rdbSave: a failed foreground save leaves the status
        // (and MISCONF) as the last background one left it.
        if result.is_ok() || mode == Mode::Background {
            status.last_ok.store(result.is_ok(), Ordering::SeqCst);
        }
        status.saving.store(false, Ordering::SeqCst);
        let _ = tx.send(result);
    });
    let aborted = |_: &Shared| false;
    let format = crate::storage::snapshot::Format::Rdb(server.hot.rdb_options());
    let progress = Arc::new(super::snapshot::Progress::default());
    if let Ok(mut p) = status.progress.lock() {
        *p = progress.clone();
    }
    super::snapshot::start(client, format, super::snapshot::Parts::Files(parts), aborted, progress, done).await;
    if mode == Mode::Background {
        if let Some(ex) = ex {
            ex.end().await;
        }
        info!("Background saving started by pid {}", std::process::id());
        crate::server::poller::spawn(async move {
            match rx.await {
                Ok(Ok(())) => info!("Background saving terminated with success"),
                _ => warn!("Background saving error"),
            }
        })
        .detach();
        return Ok(());
    }
    let result = rx.await.unwrap_or_else(|_| Err("the save ended without a result".into()));
    if let Some(ex) = ex {
        ex.end().await;
    }
    result
}

/// Changes since the last successful save (INFO's
/// rdb_changes_since_last_save), from the shards' summed dirty counters.
pub fn changes_since_save(server: &Shared, dirty: u64) -> u64 {
    dirty.saturating_sub(server.rdb.dirty_saved.load(Ordering::Relaxed))
}

/// Keys per batch sent to their owner shard while loading.
const BATCH: usize = 512;

type Loaded = (usize, crate::storage::Key, crate::storage::Value, i64, Option<crate::storage::Usage>);

/// Loads `path` into the shards (which the caller emptied, unless it
/// merges): the keys loaded, None when there is no such file. Keys
/// already expired are not loaded. Progress goes to the log, as Redis's
/// loading does.
pub async fn load(shard: &Rc<Shard>, path: &Path) -> Result<Option<u64>, LoadError> {
    load_into(shard, path, Load::default()).await
}

/// How a load treats keys it finds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    /// A key already there is replaced (DEBUG RELOAD MERGE), else it is
    /// an error.
    pub replace: bool,
    /// Keys already expired are loaded too (an AOF's base: the commands
    /// after it were written while they still existed).
    pub keep_expired: bool,
}

/// `load` as `how` says (a replica keeps keys already expired: its
/// master's DELs remove them).
pub async fn load_with(shard: &Rc<Shard>, path: &Path, how: Load) -> Result<Option<u64>, LoadError> {
    load_into(shard, path, how).await
}

async fn load_into(shard: &Rc<Shard>, path: &Path, how: Load) -> Result<Option<u64>, LoadError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LoadError::Io(super::strerror(&e))),
    };
    // SAFETY: the map is read only, and the file is one percore or Redis
    // replaced by rename (never written in place) while it is mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| LoadError::Io(super::strerror(&e)))?;
    let started = Instant::now();
    shard.server.load_progress.begin(map.len() as u64);
    let (keys, _) = load_data(shard, &map, how).await?;
    info!("DB loaded from disk: {:.3} seconds", started.elapsed().as_secs_f64());
    Ok(Some(keys))
}

/// Loads the RDB at the start of `data`: the keys loaded and where the
/// RDB ends (an old-style AOF's commands follow it).
pub async fn load_data(shard: &Rc<Shard>, data: &[u8], how: Load) -> Result<(u64, usize), LoadError> {
    let server = shard.server.clone();
    let (limits, checksum) = (Limits::from_hot(&server.hot), server.config(|c| c.str("rdbchecksum") == "yes"));
    let databases = shard.ks.borrow().dbs.len();
    let mut rdb = File::open(data, checksum)?;
    // In an AOF, the bytes of files before this one.
    let before = server.load_progress.loaded_so_far();
    let mut keys = 0u64;
    server.rdb.loaded_expired.store(0, Ordering::Relaxed);
    let (key_delay_us, events_every) =
        server.config(|c| (c.int("key-load-delay"), c.int("loading-process-events-interval-bytes").max(1024) as usize));
    let (mut delay_owed, mut next_events) = (0i64, events_every);
    let mut batches: Vec<Vec<Loaded>> = (0..shard.count).map(|_| Vec::new()).collect();
    let now = now_ms();
    let mut last_report = Instant::now();
    while let Some(item) = rdb.next(&limits)? {
        match item {
            Item::Aux(k, v) => log_aux(&server, &k, &v),
            Item::Function(code) => load_function(shard, &code, how.replace).await?,
            Item::Key { db, key, value, expire_at, usage } => {
                if db >= databases {
                    return Err(LoadError::Databases(databases));
                }
                if !how.keep_expired && expire_at.is_some_and(|at| at <= now) {
                    server.rdb.loaded_expired.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                keys += 1;
                let owner = shard.owner(&key);
                batches[owner].push((db, crate::storage::Key::from(&key[..]), value, expire_at.unwrap_or(0), usage));
                if batches[owner].len() >= BATCH {
                    ship(shard, owner, std::mem::take(&mut batches[owner]), how.replace).await?;
                }
                // key-load-delay (µs per key; DEBUG's way to slow a load).
                if key_delay_us > 0 {
                    delay_owed += key_delay_us;
                    if delay_owed >= 1000 {
                        crate::server::poller::sleep(std::time::Duration::from_micros(delay_owed as u64)).await;
                        delay_owed = 0;
                    }
                }
                // Other clients (answered -LOADING) get a turn every
                // loading-process-events-interval-bytes.
                server.load_progress.loaded(before + rdb.offset() as u64);
                if rdb.offset() >= next_events {
                    next_events = rdb.offset() + events_every;
                    crate::server::poller::yield_now().await;
                }
                if last_report.elapsed().as_secs() >= 2 {
                    last_report = Instant::now();
                    info!("Loading RDB: {} of {} bytes ({} keys)", rdb.offset(), data.len(), keys);
                }
            }
        }
    }
    for (owner, batch) in batches.into_iter().enumerate() {
        ship(shard, owner, batch, how.replace).await?;
    }
    server.rdb.loaded_keys.store(keys, Ordering::Relaxed);
    info!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        keys,
        server.rdb.loaded_expired.load(Ordering::Relaxed)
    );
    Ok((keys, rdb.offset()))
}

fn log_aux(server: &Shared, key: &[u8], value: &[u8]) {
    let value = String::from_utf8_lossy(value);
    match key {
        b"redis-ver" => info!("Loading RDB produced by version {value}"),
        b"ctime" => {
            let age = value.parse::<i64>().map_or(0, |t| now_ms() / 1000 - t).max(0);
            info!("RDB age {age} seconds");
        }
        b"used-mem" => {
            server.load_progress.rdb_used_mem(value.parse().unwrap_or(0));
            let mb = value.parse::<f64>().unwrap_or(0.0) / (1024.0 * 1024.0);
            info!("RDB memory usage when created {mb:.2} Mb");
        }
        _ => {}
    }
}

/// A FUNCTION library of the file, loaded as FUNCTION LOAD would: one
/// already there is an error unless `replace` (DEBUG RELOAD MERGE).
async fn load_function(shard: &Rc<Shard>, code: &[u8], replace: bool) -> Result<(), LoadError> {
    let mut client = super::own_client(shard, super::AOF_CLIENT_ID);
    let (mut out, mut batch) = (Vec::new(), crate::server::dispatch::Batch::default());
    let mut args = crate::command::OwnedArgs::default();
    args.push(b"FUNCTION");
    args.push(b"LOAD");
    if replace {
        args.push(b"REPLACE");
    }
    args.push(code);
    crate::server::dispatch::dispatch(&mut client, &mut out, &mut batch, args.args()).await;
    batch.flush(&client, &mut out).await;
    match out.first() {
        Some(b'-') => Err(LoadError::Function(String::from_utf8_lossy(&out[1..]).trim_end().to_string())),
        _ => Ok(()),
    }
}

/// Inserts loaded keys on their owner shard; unless `replace`, a key
/// already there is an error (Redis's duplicate key on load).
async fn ship(shard: &Rc<Shard>, owner: usize, batch: Vec<Loaded>, replace: bool) -> Result<(), LoadError> {
    if batch.is_empty() {
        return Ok(());
    }
    shard
        .run_on(owner, move |sh| {
            let now = sh.now();
            let mut ks = sh.ks.borrow_mut();
            for (db, key, value, at, usage) in batch {
                if !replace && ks.dbs[db].contains(&key, now) {
                    return Err(LoadError::Duplicate(String::from_utf8_lossy(&key).into_owned(), db));
                }
                let e = ks.dbs[db].insert(&key, value, at, now);
                if let Some(usage) = usage {
                    e.set_usage(usage, now);
                }
            }
            Ok(())
        })
        .await
}

/// The save points (`save <seconds> <changes>` pairs).
fn save_points(config: &str) -> Vec<(i64, u64)> {
    let words: Vec<&str> = config.split_whitespace().collect();
    words.chunks_exact(2).filter_map(|p| Some((p[0].parse().ok()?, p[1].parse().ok()?))).collect()
}

/// From the cron: a BGSAVE when a save point is reached (Redis's
/// serverCron), or when one waited for an AOF rewrite or FLUSHALL to end.
/// After a failed save, points wait 5 seconds before trying again. The
/// shards' dirty counters are gathered only once a point's time is up.
pub async fn cron(shard: &Rc<Shard>) {
    let server = &shard.server;
    let status = &server.rdb;
    if status.saving.load(Ordering::Relaxed) || server.aof.rewriting.load(Ordering::Relaxed) {
        return;
    }
    let now = now_ms();
    let since = now / 1000 - status.last_save.load(Ordering::Relaxed);
    let retry_ok =
        status.last_ok.load(Ordering::Relaxed) || now - status.last_failure_ms.load(Ordering::Relaxed) > 5000;
    let points = server.config(|c| save_points(c.str("save")));
    let due: Vec<(i64, u64)> = points.into_iter().filter(|&(secs, _)| since >= secs && retry_ok).collect();
    let mut reached = None;
    if !due.is_empty() {
        let dirty: u64 = shard.broadcast(|sh| sh.ks.borrow().dirty).await.into_iter().sum();
        let changes = changes_since_save(server, dirty);
        reached = due.into_iter().find(|&(_, n)| changes >= n);
    }
    let scheduled = status.scheduled.swap(false, Ordering::SeqCst);
    if reached.is_none() && !scheduled {
        return;
    }
    if let Some((secs, n)) = reached {
        info!("{n} changes in {secs} seconds. Saving...");
    }
    let client = super::own_client(shard, super::AUTO_REWRITE_CLIENT_ID);
    crate::server::poller::spawn(async move {
        if let Err(e) = save(&client, Mode::Background).await {
            warn!("Background saving not started: {e}");
        }
    })
    .detach();
}

/// INFO's current_cow_size, current_save_keys_processed,
/// current_save_keys_total and current_fork_perc (zero when no save
/// runs).
pub fn current_progress(status: &Status) -> (u64, u64, u64, f64) {
    if !status.saving.load(Ordering::Relaxed) {
        return (0, 0, 0, 0.0);
    }
    let Ok(p) = status.progress.lock() else { return (0, 0, 0, 0.0) };
    let (total, done) = (p.keys_total.load(Ordering::Relaxed), p.keys_done.load(Ordering::Relaxed));
    let perc = if total > 0 { done as f64 * 100.0 / total as f64 } else { 0.0 };
    (p.copied.load(Ordering::Relaxed), done, total, perc)
}

/// The save's age in seconds (INFO's rdb_current_bgsave_time_sec; -1
/// when none runs).
pub fn current_secs(status: &Status) -> i64 {
    if status.saving.load(Ordering::Relaxed) {
        (now_ms() - status.started_ms.load(Ordering::Relaxed)) / 1000
    } else {
        -1
    }
}

/// DEBUG RELOAD: saves (unless told not to), empties every database
/// (unless told not to) and loads the file again; `replace`: loaded keys
/// replace keys of the same name (MERGE), else such a key is an error.
pub async fn reload(client: &Client, save_first: bool, flush: bool, replace: bool) -> Result<(), String> {
    if save_first {
        save(client, Mode::Blocking).await.map_err(|e| format!("Error trying to save the DB: {e}"))?;
    }
    let server = client.shard.server.clone();
    let path = PathBuf::from(server.config(|c| c.str("dbfilename").to_string()));
    server.loading.store(true, Ordering::SeqCst);
    if flush {
        super::empty_all(&client.shard).await;
    }
    let result = load_into(&client.shard, &path, Load { replace, keep_expired: false }).await;
    super::finish_loading(&client.shard).await;
    match result {
        Ok(Some(_)) => {
            info!("DB reloaded by DEBUG RELOAD");
            Ok(())
        }
        Ok(None) => Err("Error trying to load the RDB dump".into()),
        Err(e) => {
            warn!("{e}");
            Err("Error trying to load the RDB dump".into())
        }
    }
}

/// Redis's refusal of writes after a failed save (and of PING), while
/// stop-writes-on-bgsave-error is on and there are save points.
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Whether writes are refused with MISCONF now.
pub fn writes_refused(server: &Shared) -> bool {
    !server.rdb.last_ok.load(Ordering::Relaxed)
        && server.config(|c| c.str("stop-writes-on-bgsave-error") == "yes" && !save_points(c.str("save")).is_empty())
}

/// Before exiting (SHUTDOWN, SIGTERM): the final save, waiting for a
/// background save running first. Err when it failed.
pub async fn final_save(client: &Client) -> Result<(), String> {
    stop_background_save(client).await;
    info!("Saving the final RDB snapshot before exiting.");
    save(client, Mode::Blocking).await.inspect_err(|e| warn!("Error trying to save the DB, can't exit: {e}"))
}

/// Stops a running BGSAVE before a shutdown, as Redis kills its child:
/// its temporary files go and it counts as neither success nor failure.
/// Returns once no save runs.
pub async fn stop_background_save(client: &Client) {
    let server = &client.shard.server;
    if server.rdb.saving.load(Ordering::SeqCst) {
        warn!("There is a child saving an .rdb. Killing it!");
        server.rdb.aborted.store(true, Ordering::SeqCst);
        client.shard.broadcast(|sh| sh.ks.borrow_mut().stop_rdb_snapshot()).await;
    }
    while server.rdb.saving.load(Ordering::SeqCst) {
        crate::server::poller::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A shutdown a signal asked for, as `directive` (shutdown-on-sigterm /
/// -sigint) says: saving first unless `nosave`/`now`, or with `default`
/// when there are no save points; a failed save cancels it unless
/// `force`.
pub async fn signalled_shutdown(shard: &Rc<Shard>, directive: &str) {
    let server = shard.server.clone();
    let mode = server.config(|c| c.str(directive).to_string());
    let save_first = match mode.as_str() {
        "save" | "force" => true,
        "default" => has_save_points(&server),
        _ => false,
    };
    let client = super::own_client(shard, super::AUTO_REWRITE_CLIENT_ID);
    stop_background_save(&client).await;
    if save_first && !server.loading.load(Ordering::SeqCst) && final_save(&client).await.is_err() && mode != "force" {
        warn!("SIGTERM received but errors trying to shut down the server, check the logs for more information");
        return;
    }
    let pidfile = server.config(|c| c.str("pidfile").to_string());
    crate::server::signals::shutdown(&pidfile)
}

/// Whether `server` has save points.
pub fn has_save_points(server: &Arc<Shared>) -> bool {
    server.config(|c| !save_points(c.str("save")).is_empty())
}
