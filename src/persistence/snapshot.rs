//! Writing a point-in-time image of every shard (AOF rewrite, BGSAVE,
//! a replica's full sync): at an instant with every shard held, each
//! starts its image; each then writes its part a chunk at a time between
//! other work, and the last to finish hands the parts to a thread of the
//! job's own. A part is a file, or chunks pushed to a `Chunks` queue that
//! one reader drains while the shards serialize (a diskless sync): each
//! chunk holds whole keys and selects its database, so the shards'
//! chunks interleave into one valid RDB.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::server::client::Client;
use crate::server::shard::Shard;
use crate::server::shared::Shared;
use crate::storage::snapshot::Format;

/// What the job does with its parts once all are written: `ok` when
/// every part was, and the shards' dirty counters summed at the cut.
pub type Done = Box<dyn FnOnce(&Arc<Shared>, &[PathBuf], bool, u64) + Send>;

/// How far an image is (INFO's current_save_keys_*, current_cow_size).
#[derive(Debug, Default)]
pub struct Progress {
    pub keys_total: AtomicU64,
    pub keys_done: AtomicU64,
    /// Bytes serialized ahead of the cursor because writes came.
    pub copied: AtomicU64,
}

/// Chunks of a streamed image, from every shard, for one reader.
#[derive(Debug, Default)]
pub struct Chunks {
    queue: Mutex<std::collections::VecDeque<Vec<u8>>>,
    bytes: AtomicUsize,
    /// Every part is done (`failed` says how).
    pub finished: AtomicBool,
    pub failed: AtomicBool,
    /// The reader is gone: the shards stop their images.
    pub abandoned: AtomicBool,
}

impl Chunks {
    /// Queued bytes past which the shards wait for the reader.
    const HIGH_WATER: usize = 16 << 20;

    fn push(&self, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        self.bytes.fetch_add(chunk.len(), Ordering::SeqCst);
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back(chunk);
    }

    /// The oldest chunk, if any.
    pub fn pop(&self) -> Option<Vec<u8>> {
        let chunk = self.queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()?;
        self.bytes.fetch_sub(chunk.len(), Ordering::SeqCst);
        Some(chunk)
    }

    fn full(&self) -> bool {
        self.bytes.load(Ordering::SeqCst) > Self::HIGH_WATER
    }
}

/// Where the shards write their parts.
pub enum Parts {
    /// One file per shard.
    Files(Vec<PathBuf>),
    Stream(Arc<Chunks>),
}

/// One shard's part.
enum PartOut {
    File(PathBuf, Option<std::io::BufWriter<std::fs::File>>),
    Stream(Arc<Chunks>),
}

impl PartOut {
    fn write(&mut self, chunk: Vec<u8>) -> bool {
        match self {
            PartOut::File(path, file) => {
                if let Some(f) = file
                    && let Err(e) = std::io::Write::write_all(f, &chunk)
                {
                    tracing::warn!("Write error writing the snapshot part {}: {e}", path.display());
                    *file = None;
                }
                file.is_some()
            }
            PartOut::Stream(chunks) => {
                chunks.push(chunk);
                true
            }
        }
    }

    fn finish(self) -> bool {
        match self {
            PartOut::File(path, Some(mut f)) => std::io::Write::flush(&mut f)
                .map_err(|e| tracing::warn!("Write error writing the snapshot part {}: {e}", path.display()))
                .is_ok(),
            PartOut::File(_, None) => false,
            PartOut::Stream(_) => true,
        }
    }

    /// A streamed part waits while its reader is behind.
    fn backlogged(&self) -> bool {
        matches!(self, PartOut::Stream(c) if c.full() && !c.abandoned.load(Ordering::SeqCst))
    }

    fn abandoned(&self) -> bool {
        matches!(self, PartOut::Stream(c) if c.abandoned.load(Ordering::SeqCst))
    }
}

/// An image's progress across shards.
struct Job {
    progress: Arc<Progress>,
    /// Parts still being written, plus one while `start` runs.
    left: AtomicUsize,
    dirty: std::sync::atomic::AtomicU64,
    failed: AtomicBool,
    parts: Vec<PathBuf>,
    /// Whether the job was called off (its images stop, nothing is kept).
    aborted: fn(&Shared) -> bool,
    done: Mutex<Option<Done>>,
}

/// With every shard held (the caller's `Exclusive`, which it lowers when
/// it likes): starts each shard's image in `format` into `parts`.
pub async fn start(
    client: &Client,
    format: Format,
    parts: Parts,
    aborted: fn(&Shared) -> bool,
    progress: Arc<Progress>,
    done: Done,
) {
    client.shard.server.images.fetch_add(1, Ordering::Relaxed);
    let shards = client.shard.count;
    let (files, stream) = match parts {
        Parts::Files(files) => (files, None),
        Parts::Stream(chunks) => (Vec::new(), Some(chunks)),
    };
    let job = Arc::new(Job {
        progress,
        left: AtomicUsize::new(shards + 1),
        dirty: Default::default(),
        failed: AtomicBool::new(false),
        parts: files.clone(),
        aborted,
        done: Mutex::new(Some(done)),
    });
    let installs = (0..shards).map(|s| {
        let job = job.clone();
        let part = match &stream {
            Some(chunks) => Target::Stream(chunks.clone()),
            None => Target::File(files[s].clone()),
        };
        client.shard.run_on(s, move |sh| {
            {
                let mut ks = sh.ks.borrow_mut();
                ks.start_snapshot(sh.id, sh.count, format);
                job.dirty.fetch_add(ks.dirty, Ordering::SeqCst);
                let keys: usize = ks.dbs.iter().map(|d| d.len()).sum();
                job.progress.keys_total.fetch_add(keys as u64, Ordering::Relaxed);
            }
            crate::server::poller::spawn(write_part(sh.clone(), part, job)).detach();
        })
    });
    futures::future::join_all(installs).await;
    finish_one(&job, &client.shard.server);
}

/// Where one shard's part goes, as sent to the shard.
enum Target {
    File(PathBuf),
    Stream(Arc<Chunks>),
}

impl Target {
    fn open(self) -> PartOut {
        match self {
            Target::File(path) => {
                let file = std::fs::File::create(&path)
                    .map_err(|e| tracing::warn!("Can't create the snapshot part {}: {e}", path.display()))
                    .ok()
                    .map(std::io::BufWriter::new);
                PartOut::File(path, file)
            }
            Target::Stream(chunks) => PartOut::Stream(chunks),
        }
    }
}

/// Serializes this shard's image into its part; the last shard to
/// finish runs the job's end on a thread.
async fn write_part(shard: Rc<Shard>, part: Target, job: Arc<Job>) {
    const CHUNK: usize = 8 * 1024;
    // A busy shard's writers keep 90% of its time (the bound on
    // their throughput during a save); an idle one saves at full speed.
    const BUSY_SHARE: f64 = 0.1;
    let mut out = part.open();
    let streamed = matches!(out, PartOut::Stream(_));
    if matches!(out, PartOut::File(_, None)) {
        job.failed.store(true, Ordering::SeqCst);
    }
    let server = shard.server.clone();
    loop {
        let delay_us = server.config(|c| c.int("rdb-key-save-delay")).max(0) as u64;
        let step_started = std::time::Instant::now();
        let (chunk, done, keys) = {
            let mut ks = shard.ks.borrow_mut();
            let now = shard.now();
            let databases = ks.dbs.len();
            if (job.aborted)(&server) || out.abandoned() {
                ks.stop_snapshot();
            }
            let crate::storage::Keyspace { dbs, snapshot, .. } = &mut *ks;
            let Some(snap) = snapshot else {
                job.failed.store(true, Ordering::SeqCst);
                break;
            };
            let before = snap.keys;
            // With a delay per key, one slot at a time.
            snap.step(dbs, if delay_us > 0 { 1 } else { CHUNK }, now);
            let done = snap.finished(databases);
            let chunk = snap.take_out(streamed);
            let keys = snap.keys - before;
            job.progress.keys_done.fetch_add(keys, Ordering::Relaxed);
            job.progress.copied.fetch_add(std::mem::take(&mut snap.copied), Ordering::Relaxed);
            if done {
                *snapshot = None;
            }
            (chunk, done, keys)
        };
        if !out.write(chunk) {
            job.failed.store(true, Ordering::SeqCst);
        }
        if done {
            break;
        }
        while out.backlogged() && !(job.aborted)(&server) {
            crate::server::poller::sleep(std::time::Duration::from_millis(1)).await;
        }
        if delay_us > 0 && keys > 0 {
            // In steps, so a job being stopped (or the delay lowered) is
            // seen soon.
            let mut left = std::time::Duration::from_micros(delay_us.saturating_mul(keys));
            while !left.is_zero() && !(job.aborted)(&server) {
                let step = left.min(std::time::Duration::from_millis(100));
                crate::server::poller::sleep(step).await;
                left -= step;
                if server.config(|c| c.int("rdb-key-save-delay")) <= 0 {
                    break;
                }
            }
        } else {
            crate::server::poller::yield_share(step_started.elapsed(), BUSY_SHARE).await;
        }
    }
    if !out.finish() {
        job.failed.store(true, Ordering::SeqCst);
    }
    finish_one(&job, &server);
}

/// One part (or `start`'s hold) is done; after the last, the job's end
/// runs on a thread of its own.
fn finish_one(job: &Job, server: &Arc<Shared>) {
    if job.left.fetch_sub(1, Ordering::SeqCst) != 1 {
        return;
    }
    let done = job.done.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(done) = done else { return };
    let (ok, dirty) = (!job.failed.load(Ordering::SeqCst), job.dirty.load(Ordering::SeqCst));
    let (parts, server) = (job.parts.clone(), server.clone());
    let spawned = std::thread::Builder::new().name("percore-snapshot".into()).spawn(move || {
        done(&server, &parts, ok, dirty);
        parts.iter().for_each(|p| drop(std::fs::remove_file(p)));
    });
    if let Err(e) = spawned {
        tracing::warn!("Can't start the snapshot's last step: {e}");
    }
}

/// With incremental fsync (rdb-save-incremental-fsync,
/// aof-rewrite-incremental-fsync): fsync every this many bytes written.
const INCREMENTAL_FSYNC: usize = 32 << 20;

/// Writes `header` then the parts into `file` and fsyncs it; with `rdb`,
/// an RDB's end follows (EOF and the CRC64 of it all, or 0 when the bool,
/// `rdbchecksum`, is off). With `incremental`, an fsync every 32 MB on the
/// way spares the disk one huge flush at the end.
pub fn join(
    file: std::fs::File,
    header: &[u8],
    parts: &[PathBuf],
    rdb: Option<bool>,
    incremental: bool,
) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut crc = crate::rdb::CRC64.digest();
    let mut add = |out: &mut std::io::BufWriter<std::fs::File>, data: &[u8]| {
        if rdb.is_some() {
            crc.update(data);
        }
        out.write_all(data)
    };
    add(&mut out, header)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut unsynced = 0;
    for part in parts {
        let mut f = std::fs::File::open(part)?;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            add(&mut out, &buf[..n])?;
            unsynced += n;
            if incremental && unsynced >= INCREMENTAL_FSYNC {
                out.flush()?;
                out.get_ref().sync_data()?;
                unsynced = 0;
            }
        }
    }
    if let Some(checksum) = rdb {
        add(&mut out, &[crate::rdb::OP_EOF])?;
        let sum = if checksum { crc.finalize() } else { 0 };
        out.write_all(&sum.to_le_bytes())?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}
