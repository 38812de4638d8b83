//! Durability: the AOF (on the journal) and loading it at startup.

pub mod aof;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::info;

use crate::server::client::{Client, ClientMeta};
use crate::server::dispatch::{Batch, dispatch};
use crate::server::shard::Shard;
use aof::{AofError, FileInfo, Loaded, Manifest, Reader, Settings, Writer};

/// The id of the client AOF commands are replayed as (Redis's
/// CLIENT_ID_AOF): it may run while the server is loading.
pub const AOF_CLIENT_ID: u64 = u64::MAX;

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
    std::fs::create_dir_all(&settings.dir).map_err(|source| AofError::Io {
        what: "Can't open or create append-only dir",
        path: settings.dir.display().to_string(),
        source,
    })?;
    let manifest = settings.read_manifest()?.unwrap_or_default();
    let (files, total) = settings.files_to_load(&manifest)?;
    Ok(Startup { settings, manifest, files, total })
}

/// Replays the AOF's files through dispatch, as one client would send
/// them, on `shard`. Progress goes to the log, as Redis's loading does.
pub async fn load(shard: &Rc<Shard>, startup: &Startup) -> Result<(), AofError> {
    if startup.total == 0 {
        return Ok(());
    }
    let meta = Rc::new(ClientMeta::new(AOF_CLIENT_ID, String::new(), String::new(), -1));
    let mut client = Client::new(shard.clone(), meta);
    client.authenticated = true;
    let (mut out, mut batch) = (Vec::new(), Batch::default());
    let started = Instant::now();
    let mut commands = 0u64;
    let kinds = startup.manifest.base.iter().map(|_| "base").chain(startup.manifest.incr.iter().map(|_| "incr"));
    for (i, (path, kind)) in startup.files.iter().zip(kinds).enumerate() {
        let file_started = Instant::now();
        let mut reader = Reader::open(path)?;
        while let Some(args) = reader.next()? {
            if crate::commands::lookup(args.get(0)).is_none() {
                return Err(AofError::BadFormat { file: path.display().to_string(), offset: 0 });
            }
            dispatch(&mut client, &mut out, &mut batch, args).await;
            commands += 1;
            if commands.is_multiple_of(1024) {
                batch.flush(&client, &mut out).await;
                out.clear();
                if commands.is_multiple_of(1 << 20) {
                    info!("Loading AOF: {commands} commands replayed ({:.1}s)", started.elapsed().as_secs_f64());
                }
            }
        }
        batch.flush(&client, &mut out).await;
        out.clear();
        let last = i + 1 == startup.files.len();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match reader.finish(&startup.settings, last)? {
            Loaded::Complete | Loaded::Truncated(_) => {
                info!("DB loaded from {kind} file {name}: {:.3} seconds", file_started.elapsed().as_secs_f64())
            }
        }
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
pub fn start_writer(
    mut startup: Startup,
    server: Arc<crate::server::shared::Shared>,
    notify: impl Fn() + Send + 'static,
) -> Result<(), AofError> {
    let settings = startup.settings.clone();
    let m = &mut startup.manifest;
    if m.base.is_none() && m.incr.is_empty() {
        // An empty dataset: an empty base in command form.
        let name = format!("{}.1.base.aof", settings.filename);
        let path = settings.path(&name);
        std::fs::File::create(&path).and_then(|f| f.sync_all()).map_err(|source| AofError::Io {
            what: "Can't create the AOF base file",
            path: path.display().to_string(),
            source,
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
    let writer = Writer::open(&settings, &incr, status.clone())?;
    settings.write_manifest(m)?;
    let base_size =
        m.base.as_ref().and_then(|b| std::fs::metadata(settings.path(&b.name)).ok()).map_or(0, |md| md.len());
    let incr_size = std::fs::metadata(settings.path(&incr)).map_or(0, |md| md.len());
    status.base_size.store(base_size, Ordering::Relaxed);
    status.current_size.store(startup.total.max(base_size + incr_size), Ordering::Relaxed);
    status.enabled.store(true, Ordering::Relaxed);
    status.last_write_ok.store(true, Ordering::Relaxed);
    if created {
        info!("Creating AOF incr file {incr} on server start");
    } else {
        info!("Opening AOF incr file {incr} on server start");
    }
    server.journal.attach();
    std::thread::Builder::new()
        .name("percore-aof".into())
        .spawn(move || writer.run(&server, notify))
        .map_err(|source| AofError::Io { what: "Can't start the AOF writer", path: incr, source })?;
    Ok(())
}
