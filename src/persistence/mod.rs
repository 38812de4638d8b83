//! Durability: the AOF (on the journal) and loading it at startup.

pub mod aof;
pub mod rdb;
pub mod snapshot;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::server::client::{Client, ClientMeta};
use crate::server::dispatch::{Batch, dispatch};
use crate::server::shard::Shard;
use aof::{AofError, FileInfo, Manifest, Reader, Settings, Writer};

/// The id of the client AOF commands are replayed as (Redis's
/// CLIENT_ID_AOF): it may run while the server is loading.
pub const AOF_CLIENT_ID: u64 = u64::MAX;

/// An I/O error as C's strerror words it ("No such file or directory").
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A client of the server's own (the loader, automatic rewrites and
/// saves), authenticated, on `shard`.
pub fn own_client(shard: &Rc<Shard>, id: u64) -> Client {
    let meta = Rc::new(ClientMeta::new(id, String::new(), String::new(), -1));
    let mut client = Client::new(shard.clone(), meta);
    client.authenticated = true;
    client
}

/// Empties every database of every shard and the function libraries
/// (before a reload, as Redis's emptyData).
pub async fn empty_all(shard: &Rc<Shard>) {
    if let Ok(mut libraries) = shard.server.libraries.write() {
        libraries.libs.clear();
    }
    shard
        .broadcast(|sh| {
            let now = sh.now();
            sh.ks.borrow_mut().dbs.iter_mut().for_each(|d| d.clear(now));
        })
        .await;
}

/// What startup found on disk for `appendonly yes`.
pub struct Startup {
    pub settings: Settings,
    pub manifest: Manifest,
    pub files: Vec<PathBuf>,
    pub total: u64,
}

/// Reads the AOF directory's manifest (creating the directory when
/// missing): what there is to load.
pub fn prepare(settings: Settings) -> Result<Startup, AofError> {
    let had_dir = settings.dir.is_dir();
    std::fs::create_dir_all(&settings.dir).map_err(|source| AofError::Io {
        what: "Can't open or create append-only dir",
        path: settings.dir.display().to_string(),
        source,
    })?;
    let mut manifest = settings.read_manifest()?.unwrap_or_default();
    // An AOF from before Redis 7 (one file in the server's directory)
    // becomes the base of the multi-part layout (aofUpgradePrepare).
    let old = std::path::Path::new(&settings.filename);
    let interrupted = manifest.base.as_ref().is_some_and(|b| b.name == settings.filename)
        && manifest.incr.is_empty()
        && !settings.path(&settings.filename).exists();
    if old.is_file() && (!had_dir || (manifest.base.is_none() && manifest.incr.is_empty()) || interrupted) {
        manifest.base = Some(FileInfo { name: settings.filename.clone(), seq: 1, kind: 'b' });
        settings.write_manifest(&manifest)?;
        std::fs::rename(old, settings.path(&settings.filename)).map_err(|source| AofError::Io {
            what: "Error trying to move the old AOF file into the AOF directory",
            path: settings.filename.clone(),
            source,
        })?;
        info!(
            "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
            settings.filename,
            settings.dir.display()
        );
    }
    let (files, total) = settings.files_to_load(&manifest)?;
    Ok(Startup { settings, manifest, files, total })
}

/// Replays the AOF's files through dispatch, as one client would send
/// them, on `shard`. Progress goes to the log, as Redis's loading does.
pub async fn load(shard: &Rc<Shard>, startup: &Startup) -> Result<(), AofError> {
    if startup.total == 0 {
        return Ok(());
    }
    let mut client = own_client(shard, AOF_CLIENT_ID);
    let (mut out, mut batch) = (Vec::new(), Batch::default());
    let started = Instant::now();
    let mut commands = 0u64;
    let progress = &shard.server.load_progress;
    progress.begin(startup.total);
    // What the files before the one being read hold.
    let mut before = 0u64;
    let kinds = startup.manifest.base.iter().map(|_| "base").chain(startup.manifest.incr.iter().map(|_| "incr"));
    for (i, (path, kind)) in startup.files.iter().zip(kinds).enumerate() {
        let file_started = Instant::now();
        let mut reader = Reader::open(path)?;
        let old_style = reader.name() == startup.settings.filename;
        let rdb_end = match reader.rdb() {
            Some(data) => {
                let what = if old_style { "preamble of the AOF file" } else { "base file" };
                if old_style {
                    info!("Reading RDB preamble from AOF file...");
                } else {
                    info!("Reading RDB base file on AOF loading...");
                }
                let how = rdb::Load { replace: false, keep_expired: true };
                let loaded = rdb::load_data(shard, data, how).await;
                let file = reader.name().to_string();
                Some(loaded.map_err(|source| AofError::Rdb { what, file, source })?.1)
            }
            None => None,
        };
        if let Some(end) = rdb_end {
            reader.skip_to(end);
            if old_style {
                info!("Reading the remaining AOF tail...");
            }
        }
        while let Some(args) = reader.next()? {
            if shard.server.commands.lookup(args.get(0)).is_none() {
                let command = args.str(0);
                return Err(AofError::UnknownCommand { command, file: reader.name().to_string() });
            }
            dispatch(&mut client, &mut out, &mut batch, args).await;
            commands += 1;
            if commands.is_multiple_of(1024) {
                batch.flush(&client, &mut out).await;
                out.clear();
                progress.loaded(before + reader.offset() as u64);
                if commands.is_multiple_of(1 << 20) {
                    info!("Loading AOF: {commands} commands replayed ({:.1}s)", started.elapsed().as_secs_f64());
                }
            }
        }
        batch.flush(&client, &mut out).await;
        out.clear();
        let last = i + 1 == startup.files.len();
        let name = reader.name().to_string();
        before += reader.len() as u64;
        progress.loaded(before);
        reader.finish(&startup.settings, last)?;
        info!("DB loaded from {kind} file {name}: {:.3} seconds", file_started.elapsed().as_secs_f64());
    }
    // A MULTI the last file left open was cut off with it.
    client.multi = None;
    info!("DB loaded from append only file: {:.3} seconds", started.elapsed().as_secs_f64());
    Ok(())
}

/// After loading: makes sure there is a base and an incremental file in
/// the manifest (Redis's aofOpenIfNeededOnServerStart), then starts the
/// writer thread on the newest incremental file. `notify` tells the
/// shards how far the journal is durable.
pub fn start_writer(mut startup: Startup, shard: &Rc<Shard>) -> Result<(), AofError> {
    let server = shard.server.clone();
    let notify = durable_notifier(shard);
    let settings = startup.settings.clone();
    let m = &mut startup.manifest;
    if m.base.is_none() && m.incr.is_empty() {
        // An empty dataset: an empty base (an RDB of no keys, or no
        // commands), as Redis's start writes one.
        let (preamble, timestamp) =
            server.config(|c| (c.str("aof-use-rdb-preamble") == "yes", c.str("aof-timestamp-enabled") == "yes"));
        let base = Base::at_cut(shard, preamble);
        let name = format!("{}.1.base{}", settings.filename, base.suffix());
        let path = settings.path(&name);
        std::fs::File::create(&path).and_then(|f| base.write(f, &[], timestamp, false)).map_err(|source| {
            AofError::Io { what: "Can't create the AOF base file", path: path.display().to_string(), source }
        })?;
        info!("Creating AOF base file {name} on server start");
        m.base = Some(FileInfo { name, seq: 1, kind: 'b' });
    }
    let created = m.incr.is_empty();
    if created {
        let seq = 1;
        m.incr.push(FileInfo { name: format!("{}.{seq}.incr.aof", settings.filename), seq, kind: 'i' });
    }
    let incr = m.incr.last().map(|f| f.name.clone()).unwrap_or_default();
    let status = server.aof.clone();
    let writer = Writer::open(&settings, &incr, status.clone(), notify)?;
    settings.write_manifest(m)?;
    let base_size =
        m.base.as_ref().and_then(|b| std::fs::metadata(settings.path(&b.name)).ok()).map_or(0, |md| md.len());
    let incr_size = std::fs::metadata(settings.path(&incr)).map_or(0, |md| md.len());
    status.base_size.store(base_size, Ordering::Relaxed);
    status.current_size.store(startup.total.max(base_size + incr_size), Ordering::Relaxed);
    status.enabled.store(true, Ordering::Relaxed);
    status.last_write_ok.store(true, Ordering::Relaxed);
    *status.manifest() = m.clone();
    if created {
        info!("Creating AOF incr file {incr} on server start");
    } else {
        info!("Opening AOF incr file {incr} on server start");
    }
    spawn_writer(server, writer).map_err(|source| AofError::Io {
        what: "Can't start the AOF writer",
        path: incr,
        source,
    })
}

/// Attaches the AOF to the journal and starts its writer thread.
fn spawn_writer(server: Arc<crate::server::shared::Shared>, writer: Writer) -> std::io::Result<()> {
    server.journal.restart();
    server.journal.attach();
    let writer = Arc::new(std::sync::Mutex::new(writer));
    server.aof.adopt(writer.clone());
    std::thread::Builder::new().name("percore-aof".into()).spawn(move || Writer::run(writer, &server)).map(drop)
}

/// Tells each shard with clients waiting how far the journal is durable.
fn durable_notifier(shard: &Shard) -> Box<dyn Fn() + Send> {
    let server = shard.server.clone();
    let mailboxes = shard.mailboxes();
    Box::new(move || {
        for (i, wanted) in server.durable_wanted.iter().enumerate() {
            if wanted.swap(false, Ordering::SeqCst) {
                mailboxes[i].wake_durable();
            }
        }
    })
}

/// CONFIG SET appendonly no: the journal stops recording for the AOF; its
/// writer writes and fsyncs what it has, then ends. A rewrite running is
/// stopped first.
pub async fn disable(server: &crate::server::shared::Shared) {
    if server.aof.enable_scheduled.swap(false, Ordering::SeqCst) {
        server.aof.scheduled.store(false, Ordering::SeqCst);
    }
    stop_rewrite(&server.aof).await;
    stop_writer(server);
}

/// The journal stops recording for the AOF; the writer writes and
/// fsyncs what it has, then ends.
fn stop_writer(server: &crate::server::shared::Shared) {
    if server.aof.enabled.swap(false, Ordering::SeqCst) {
        server.journal.detach();
        server.aof.stop.store(true, Ordering::SeqCst);
        server.journal.wake_consumer();
    }
}

/// As Redis kills its rewrite child: the running rewrite's images stop,
/// nothing is installed, and it is not counted as failed. Returns once
/// it has ended (its shards notice within a chunk, or 100 ms of a
/// rdb-key-save-delay).
async fn stop_rewrite(status: &aof::Status) {
    if !status.rewriting.load(Ordering::SeqCst) {
        return;
    }
    info!("Killing running AOF rewrite");
    status.abort.store(true, Ordering::SeqCst);
    stopped_rewrite_ended(status).await;
}

/// Waits while a rewrite being stopped ends.
async fn stopped_rewrite_ended(status: &aof::Status) {
    while status.rewriting.load(Ordering::SeqCst) && status.abort.load(Ordering::SeqCst) {
        crate::server::poller::sleep(Duration::from_millis(1)).await;
    }
}

/// CONFIG SET appendonly yes: the journal's writes from now on go to a
/// temporary incremental file, and a rewrite makes the base they follow;
/// only then do both enter the manifest (a crash before leaves the old
/// files as they were). During a save the rewrite waits for it, as
/// Redis's does for its other child.
pub async fn enable(client: &Client) -> Result<(), String> {
    let server = client.shard.server.clone();
    let status = &server.aof;
    if status.enabled.load(Ordering::SeqCst) || status.enable_scheduled.load(Ordering::SeqCst) {
        return Ok(());
    }
    if server.rdb.saving.load(Ordering::SeqCst) {
        warn!(
            "AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible."
        );
        status.enable_scheduled.store(true, Ordering::SeqCst);
        status.scheduled.store(true, Ordering::SeqCst);
        return Ok(());
    }
    if status.rewriting.load(Ordering::SeqCst) {
        // That rewrite's base would not be followed by the writes since.
        warn!(
            "AOF was enabled but there is already an AOF rewriting in background. Stopping background AOF and starting a rewrite now."
        );
        stop_rewrite(status).await;
    }
    adopt_manifest(&server)?;
    rewrite_with(client, true).await
}

/// With the AOF off: the directory and manifest on disk become the ones
/// in use, for a rewrite to build on.
fn adopt_manifest(server: &crate::server::shared::Shared) -> Result<(), String> {
    let settings = server.config(Settings::from_config);
    std::fs::create_dir_all(&settings.dir).map_err(|e| e.to_string())?;
    *server.aof.manifest() = settings.read_manifest().map_err(|e| e.to_string())?.unwrap_or_default();
    Ok(())
}

/// BGREWRITEAOF: a new base from a point-in-time image of every shard,
/// taken while the shards keep serving. At one instant with every shard
/// held (so no transaction is half-applied) the journal switches to a new
/// incremental file and each shard starts its snapshot; when all are
/// serialized, their parts become the new base and the older files
/// leave the manifest.
pub async fn rewrite(client: &Client) -> Result<(), String> {
    let server = &client.shard.server;
    if server.rdb.saving.load(Ordering::SeqCst) {
        server.aof.scheduled.store(true, Ordering::SeqCst);
        // Asked for: it may start before the limit on automatic ones.
        server.aof.consecutive_failures.store(0, Ordering::SeqCst);
        return Ok(());
    }
    if !server.aof.enabled.load(Ordering::Relaxed) && !server.aof.rewriting.load(Ordering::SeqCst) {
        // With the AOF off, the rewrite leaves a base alone in the
        // manifest (every incremental file becomes history), as Redis's.
        adopt_manifest(server)?;
    }
    rewrite_with(client, false).await
}

/// A rewrite; `enabling`: the AOF is being turned on, so the writer
/// starts on a temporary incremental file at the cut.
async fn rewrite_with(client: &Client, enabling: bool) -> Result<(), String> {
    let server = client.shard.server.clone();
    let status = server.aof.clone();
    stopped_rewrite_ended(&status).await;
    if status.rewriting.swap(true, Ordering::SeqCst) {
        return Err("Background append only file rewriting already in progress".into());
    }
    status.rewrites.fetch_add(1, Ordering::SeqCst);
    status.rewrite_started_ms.store(crate::server::shared::now_ms(), Ordering::SeqCst);
    if enabling {
        // A writer turned off just before finishes first: its last act
        // releases every durability waiter, which must not reach the
        // new writer's clients.
        while status.has_writer() {
            crate::server::poller::sleep(Duration::from_millis(1)).await;
        }
        status.stop.store(false, Ordering::SeqCst);
    }
    let settings = server.config(Settings::from_config);
    let started = Instant::now();
    let ex = crate::server::transaction::Exclusive::begin(client).await;
    // A save that marked itself while this waited for the shards holds
    // their one image: this rewrite runs after it.
    if server.rdb.saving.load(Ordering::SeqCst) {
        ex.end().await;
        status.rewriting.store(false, Ordering::SeqCst);
        status.enable_scheduled.fetch_or(enabling, Ordering::SeqCst);
        status.scheduled.store(true, Ordering::SeqCst);
        return Ok(());
    }
    if enabling {
        let temp = format!("temp-{}.incr", settings.filename);
        let started_writer = Writer::open(&settings, &temp, status.clone(), durable_notifier(&client.shard))
            .map_err(|e| e.to_string())
            .and_then(|w| spawn_writer(server.clone(), w).map_err(|e| e.to_string()));
        if let Err(e) = started_writer {
            ex.end().await;
            status.rewriting.store(false, Ordering::SeqCst);
            return Err(e);
        }
        status.enabled.store(true, Ordering::SeqCst);
        status.last_write_ok.store(true, Ordering::Relaxed);
        return start_snapshots(client, ex, settings, started, Some(temp)).await;
    }
    if !status.enabled.load(Ordering::SeqCst) {
        return start_snapshots(client, ex, settings, started, None).await;
    }
    let opened = (|| {
        let mut m = status.manifest();
        let seq = m.incr.last().map_or(1, |f| f.seq + 1);
        let name = format!("{}.{seq}.incr.aof", settings.filename);
        let path = settings.path(&name);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| e.to_string())?;
        let mut next = m.clone();
        next.incr.push(FileInfo { name: name.clone(), seq, kind: 'i' });
        settings.write_manifest(&next).map_err(|e| e.to_string())?;
        *m = next;
        info!("Creating AOF incr file {name} on background rewrite");
        Ok::<_, String>(file)
    })();
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            ex.end().await;
            status.rewriting.store(false, Ordering::SeqCst);
            return Err(e);
        }
    };
    let cut = server.journal.clock();
    *status.switch() = Some((cut, file));
    server.journal.want(cut);
    start_snapshots(client, ex, settings, started, None).await
}

/// With every shard held: starts each shard's image; the last to finish
/// installs the new base (and, when enabling, the temporary incremental
/// file after it).
async fn start_snapshots(
    client: &Client,
    ex: crate::server::transaction::Exclusive,
    settings: Settings,
    started: Instant,
    temp_incr: Option<String>,
) -> Result<(), String> {
    let server = &client.shard.server;
    let parts: Vec<PathBuf> = (0..client.shard.count)
        .map(|s| settings.path(&format!("temp-rewriteaof-{}-{s}.aof", std::process::id())))
        .collect();
    let (preamble, incremental) =
        server.config(|c| (c.str("aof-use-rdb-preamble") == "yes", c.str("aof-rewrite-incremental-fsync") == "yes"));
    let base = Base::at_cut(&client.shard, preamble);
    let format = match base {
        Base::Rdb { .. } => crate::storage::snapshot::Format::Rdb(server.hot.rdb_options()),
        Base::Commands { .. } => crate::storage::snapshot::Format::Aof,
    };
    let finish = Finish { settings, started, temp_incr, base, incremental };
    let done: snapshot::Done = Box::new(move |server, parts, ok, _| finish.rewritten(server, parts, ok));
    let aborted = |server: &crate::server::shared::Shared| server.aof.abort.load(Ordering::SeqCst);
    let progress = Default::default();
    snapshot::start(client, format, snapshot::Parts::Files(parts), aborted, progress, done).await;
    ex.end().await;
    info!("Background append only file rewriting started");
    Ok(())
}

/// What a new base starts with, taken at the cut (FUNCTION libraries
/// loaded after it are in the incremental file).
enum Base {
    /// An RDB (aof-use-rdb-preamble): its header; the bool is
    /// `rdbchecksum`.
    Rdb { header: Vec<u8>, checksum: bool },
    /// Commands: the libraries as FUNCTION LOAD, as Redis's rewrite
    /// starts.
    Commands { functions: Vec<u8> },
}

impl Base {
    fn at_cut(shard: &crate::server::shard::Shard, preamble: bool) -> Base {
        let server = &shard.server;
        if preamble {
            let checksum = server.config(|c| c.str("rdbchecksum") == "yes");
            return Base::Rdb { header: rdb::header(shard, true, None), checksum };
        }
        let mut functions = Vec::new();
        if let Ok(libraries) = server.libraries.read() {
            for lib in libraries.libs.values() {
                let load = [&b"FUNCTION"[..], b"LOAD", &lib.code];
                functions.extend_from_slice(&crate::journal::Op::new(0, load.into_iter()).resp);
            }
        }
        Base::Commands { functions }
    }

    /// The base's file name suffix, as Redis names it.
    fn suffix(&self) -> &'static str {
        match self {
            Base::Rdb { .. } => ".rdb",
            Base::Commands { .. } => ".aof",
        }
    }

    /// Writes the base into `file` from the shards' parts, and fsyncs it.
    fn write(&self, file: std::fs::File, parts: &[PathBuf], timestamp: bool, incremental: bool) -> std::io::Result<()> {
        match self {
            Base::Rdb { header, checksum } => snapshot::join(file, header, parts, Some(*checksum), incremental),
            Base::Commands { functions } => {
                let mut header = Vec::new();
                if timestamp {
                    header.extend_from_slice(format!("#TS:{}\r\n", crate::server::shared::now_ms() / 1000).as_bytes());
                }
                header.extend_from_slice(functions);
                snapshot::join(file, &header, parts, None, incremental)
            }
        }
    }
}

/// INFO's aof_current_rewrite_time_sec: the running rewrite's age, or -1.
pub fn current_rewrite_secs(status: &aof::Status) -> i64 {
    if !status.rewriting.load(Ordering::Relaxed) {
        return -1;
    }
    (crate::server::shared::now_ms() - status.rewrite_started_ms.load(Ordering::Relaxed)) / 1000
}

/// The id of the client automatic rewrites run as.
pub(crate) const AUTO_REWRITE_CLIENT_ID: u64 = u64::MAX - 1;

/// From the cron: a rewrite once the AOF grew by
/// `auto-aof-rewrite-percentage` over its last base (and is past
/// `auto-aof-rewrite-min-size`), as Redis's serverCron starts one.
pub fn auto_rewrite(shard: &Rc<Shard>) {
    let status = &shard.server.aof;
    if status.rewriting.load(Ordering::Relaxed) || shard.server.rdb.saving.load(Ordering::Relaxed) {
        return;
    }
    if status.scheduled.load(Ordering::SeqCst) {
        if !status.rewrite_limited(crate::server::shared::now_ms()) {
            status.scheduled.store(false, Ordering::SeqCst);
            info!("Starting the AOF rewrite scheduled during a save");
            start_rewrite(shard, status.enable_scheduled.swap(false, Ordering::SeqCst));
        }
        return;
    }
    if !status.enabled.load(Ordering::Relaxed) {
        return;
    }
    let (percentage, min_size) =
        shard.server.config(|c| (c.int("auto-aof-rewrite-percentage"), c.int("auto-aof-rewrite-min-size")));
    let size = status.current_size.load(Ordering::Relaxed);
    if percentage <= 0 || size <= min_size.max(0) as u64 {
        return;
    }
    let base = status.base_size.load(Ordering::Relaxed).max(1);
    let growth = (size * 100 / base) as i64 - 100;
    if growth < percentage || status.rewrite_limited(crate::server::shared::now_ms()) {
        return;
    }
    info!("Starting automatic rewriting of AOF on {growth}% growth");
    start_rewrite(shard, false);
}

/// A rewrite the server starts by itself; `enabling`: the one that turns
/// the AOF on.
fn start_rewrite(shard: &Rc<Shard>, enabling: bool) {
    let client = own_client(shard, AUTO_REWRITE_CLIENT_ID);
    crate::server::poller::spawn(async move {
        let started = if enabling { enable(&client).await } else { rewrite(&client).await };
        if let Err(e) = started {
            tracing::warn!("Automatic AOF rewrite not started: {e}");
        }
    })
    .detach();
}

/// What a rewrite installs once its parts are written.
struct Finish {
    settings: Settings,
    started: Instant,
    /// When the AOF is being enabled: the temporary incremental file the
    /// writer appends to, named for the manifest once the base exists.
    temp_incr: Option<String>,
    base: Base,
    /// aof-rewrite-incremental-fsync.
    incremental: bool,
}

impl Finish {
    fn rewritten(&self, server: &Arc<crate::server::shared::Shared>, parts: &[PathBuf], ok: bool) {
        let status = &server.aof;
        let stopped = status.abort.load(Ordering::SeqCst);
        let result = if stopped {
            Err("it was stopped".to_string())
        } else if ok {
            install_base(server, self, parts)
        } else {
            Err("a shard could not write its part".to_string())
        };
        match &result {
            Ok(()) => info!("Background AOF rewrite finished successfully"),
            Err(e) => tracing::warn!("Background AOF rewrite failed: {e}"),
        }
        if let (Err(_), Some(temp)) = (&result, &self.temp_incr) {
            info!("Removing the temp incr aof file {temp} in the background");
            let _ = std::fs::remove_file(self.settings.path(temp));
            if !stopped {
                // The AOF is still to be turned on: by another rewrite,
                // as Redis's waiting for one schedules it.
                stop_writer(server);
                status.enable_scheduled.store(true, Ordering::SeqCst);
                status.scheduled.store(true, Ordering::SeqCst);
            }
        }
        // A stopped rewrite leaves the figures as they were, as Redis's
        // killed child does.
        if !stopped {
            status.last_rewrite_failed.store(result.is_err(), Ordering::SeqCst);
            if result.is_ok() {
                status.consecutive_failures.store(0, Ordering::SeqCst);
            } else {
                status.consecutive_failures.fetch_add(1, Ordering::SeqCst);
            }
            status.last_rewrite_secs.0.store(self.started.elapsed().as_secs() as i64, Ordering::SeqCst);
        }
        status.abort.store(false, Ordering::SeqCst);
        status.rewriting.store(false, Ordering::SeqCst);
    }
}

/// Joins the parts into the new base, then makes it the manifest's base
/// with only the newest incremental file after it; the files it replaces
/// are deleted.
fn install_base(server: &crate::server::shared::Shared, finish: &Finish, parts: &[PathBuf]) -> Result<(), String> {
    let settings = &finish.settings;
    let status = &server.aof;
    let mut m = status.manifest();
    let seq = m.base.as_ref().map_or(1, |b| b.seq + 1);
    let name = format!("{}.{seq}.base{}", settings.filename, finish.base.suffix());
    let temp = settings.path(&format!("temp-{name}"));
    let timestamp = server.config(|c| c.str("aof-timestamp-enabled") == "yes");
    std::fs::File::create(&temp)
        .and_then(|file| finish.base.write(file, parts, timestamp, finish.incremental))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            strerror(&e)
        })?;
    std::fs::rename(&temp, settings.path(&name)).map_err(|e| e.to_string())?;
    let mut next = m.clone();
    let newest = match &finish.temp_incr {
        Some(temp) => {
            let seq = next.incr.last().map_or(1, |f| f.seq + 1);
            let name = format!("{}.{seq}.incr.aof", settings.filename);
            std::fs::rename(settings.path(temp), settings.path(&name)).map_err(|e| e.to_string())?;
            Some(FileInfo { name, seq, kind: 'i' })
        }
        // The file the writer appends to stays; with the AOF off none does.
        None if status.enabled.load(Ordering::SeqCst) => next.incr.pop(),
        None => None,
    };
    // What the new base replaces becomes history: the rewritten incr
    // files, then the old base, before older history.
    let mut history: Vec<FileInfo> =
        next.incr.drain(..).chain(next.base.take()).map(|f| FileInfo { kind: 'h', ..f }).collect();
    history.append(&mut next.history);
    next.history = history;
    next.base = Some(FileInfo { name: name.clone(), seq, kind: 'b' });
    next.incr = newest.into_iter().collect();
    settings.write_manifest(&next).map_err(|e| e.to_string())?;
    let incr = next.incr.last().and_then(|f| std::fs::metadata(settings.path(&f.name)).ok()).map_or(0, |md| md.len());
    *m = next;
    drop(m);
    if !server.config(|c| c.str("aof-disable-auto-gc") == "yes") {
        delete_history(server, settings)?;
    }
    let size = std::fs::metadata(settings.path(&name)).map_or(0, |md| md.len());
    status.base_size.store(size, Ordering::Relaxed);
    status.current_size.store(size + incr, Ordering::Relaxed);
    Ok(())
}

/// Deletes the history files and drops them from the manifest (unless
/// `aof-disable-auto-gc` keeps them).
pub fn delete_history(server: &crate::server::shared::Shared, settings: &Settings) -> Result<(), String> {
    let mut m = server.aof.manifest();
    if m.history.is_empty() {
        return Ok(());
    }
    let old = std::mem::take(&mut m.history);
    settings.write_manifest(&m).map_err(|e| e.to_string())?;
    for f in old {
        info!("Removing the history file {} in the background", f.name);
        let _ = std::fs::remove_file(settings.path(&f.name));
    }
    Ok(())
}

/// How far a load is: INFO persistence's loading_* fields.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Unix seconds.
    started: std::sync::atomic::AtomicI64,
    total: std::sync::atomic::AtomicU64,
    /// The used-mem AUX field of the RDB being read.
    rdb_used_mem: std::sync::atomic::AtomicU64,
    loaded: std::sync::atomic::AtomicU64,
}

impl LoadProgress {
    /// A load of `total` bytes (every file's) starts.
    pub fn begin(&self, total: u64) {
        self.started.store(crate::server::shared::now_ms() / 1000, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.rdb_used_mem.store(0, Ordering::Relaxed);
        self.loaded.store(0, Ordering::Relaxed);
    }

    pub fn loaded(&self, bytes: u64) {
        self.loaded.store(bytes, Ordering::Relaxed);
    }

    pub fn loaded_so_far(&self) -> u64 {
        self.loaded.load(Ordering::Relaxed)
    }

    pub fn rdb_used_mem(&self, bytes: u64) {
        self.rdb_used_mem.store(bytes, Ordering::Relaxed);
    }

    /// The lines INFO adds while loading, as Redis computes them (with
    /// no total, used-mem stands in for the size, capped below 100%).
    pub fn info(&self) -> String {
        let (total, used) = (self.total.load(Ordering::Relaxed), self.rdb_used_mem.load(Ordering::Relaxed));
        let (started, loaded) = (self.started.load(Ordering::Relaxed), self.loaded.load(Ordering::Relaxed));
        let (mut perc, mut remaining) = (0.0, 0u64);
        if total > 0 {
            perc = loaded as f64 * 100.0 / total as f64;
            remaining = total.saturating_sub(loaded);
        } else if used > 0 {
            perc = (loaded as f64 * 100.0 / used as f64).min(99.99);
            remaining = used.saturating_sub(loaded).max(1);
        }
        let elapsed = (crate::server::shared::now_ms() / 1000 - started).max(0) as u64;
        let eta = if elapsed == 0 { 1 } else { elapsed.saturating_mul(remaining) / (loaded + 1) };
        format!(
            "loading_start_time:{started}\r\nloading_total_bytes:{total}\r\nloading_rdb_used_mem:{used}\r\nloading_loaded_bytes:{loaded}\r\nloading_loaded_perc:{perc:.2}\r\nloading_eta_seconds:{eta}\r\n"
        )
    }
}

/// Loading is over: keys expire again on every shard at once (not only
/// once each runs its next command).
pub async fn finish_loading(shard: &Rc<Shard>) {
    shard.server.loading.store(false, Ordering::SeqCst);
    shard.broadcast(|sh| sh.ks.borrow_mut().set_loading(false)).await;
}

/// DEBUG LOADAOF: writes out what the journal holds, empties every
/// shard and loads the AOF again (clients get -LOADING meanwhile). With
/// the AOF off, the files on disk are loaded, as Redis's does.
pub async fn reload(client: &Client) -> Result<(), String> {
    let server = client.shard.server.clone();
    let settings = server.config(Settings::from_config);
    let manifest = if server.aof.enabled.load(Ordering::Relaxed) {
        let now = server.journal.clock();
        client.shard.durable(now).await;
        server.aof.manifest().clone()
    } else {
        settings.read_manifest().map_err(|e| e.to_string())?.unwrap_or_default()
    };
    if manifest.base.is_none() && manifest.incr.is_empty() {
        return Err("There is no AOF to load".into());
    }
    let (files, total) = settings.files_to_load(&manifest).map_err(|e| e.to_string())?;
    server.loading.store(true, Ordering::SeqCst);
    // Replayed commands are in the file already: nothing is journalled.
    server.journal.pause(true);
    empty_all(&client.shard).await;
    let startup = Startup { settings, manifest, files, total };
    let result = load(&client.shard, &startup).await.map_err(|e| e.to_string());
    server.journal.pause(false);
    finish_loading(&client.shard).await;
    if result.is_ok() {
        warn!("Append Only File loaded by DEBUG LOADAOF");
    }
    result
}

/// Makes a rename into `path`'s directory durable.
pub fn sync_dir_of(path: &std::path::Path) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}
