//! The append-only file, in Redis 7's multi-part layout: a directory
//! (`appenddirname`) holding a manifest, one base file and incremental
//! files. The base is an RDB (`aof-use-rdb-preamble yes`) or commands.
//! The incremental file is the journal. A client's replies to writes
//! wait until the writes are in the file (as Redis writes before it
//! replies, so a killed process loses nothing acknowledged), and under
//! `appendfsync always` until they are fsynced: the shard about to sleep
//! with clients waiting runs the writer's round (as Redis does before it
//! sleeps), one write and fsync covering every record that reached the
//! journal meanwhile, on every shard. everysec's fsync runs on the writer
//! thread, outside the writer's lock, so no shard waits on a slow disk.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{info, warn};

use crate::journal::{Encoder, Merger};

#[derive(Debug, Error)]
pub enum AofError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
    /// `line` 0: the error is about the whole file.
    #[error("\n*** FATAL AOF MANIFEST FILE ERROR ***\n{}{reason}", if *line > 0 { format!("Reading the manifest file, at line {line}\n>>> '{text}'\n") } else { String::new() })]
    Manifest { line: usize, text: String, reason: &'static str },
    #[error("Unable to obtain the AOF file {name} length. stat: {reason}")]
    Missing { name: String, reason: String },
    #[error(
        "Bad file format reading the append only file {file} at offset {offset}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
    )]
    BadFormat { file: String, offset: usize },
    #[error(
        "Unexpected end of file reading the append only file {file} at offset {offset}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
    )]
    Truncated { file: String, offset: usize },
    #[error("Fatal error: the truncated file is not the last file")]
    TruncatedNotLast,
    #[error("Unknown command '{command}' reading the append only file {file}")]
    UnknownCommand { command: String, file: String },
    #[error("Error reading the RDB {what} {file}, AOF loading aborted: {source}")]
    Rdb { what: &'static str, file: String, source: crate::persistence::rdb::LoadError },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AofError + 'a {
    move |source| AofError::Io { what, path: path.display().to_string(), source }
}

/// One file of the manifest: name, sequence number and type (b base,
/// h history, i incremental).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub seq: i64,
    pub kind: char,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<FileInfo>,
    pub history: Vec<FileInfo>,
    pub incr: Vec<FileInfo>,
}

impl Manifest {
    /// Parses a manifest with `aofLoadManifestFromFile`'s rules: lines of
    /// at most 1024 bytes, each ending in a newline; `#` comments; then
    /// `file <name> seq <n> type <b|h|i>` in any order (unknown keys are
    /// ignored, a repeated key's last value counts).
    pub fn parse(text: &str) -> Result<Manifest, AofError> {
        const MAX_LINE: usize = 1024;
        let whole = |reason| AofError::Manifest { line: 0, text: String::new(), reason };
        if text.is_empty() {
            return Err(whole("Found an empty AOF manifest"));
        }
        let mut m = Manifest::default();
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            if raw.len() >= MAX_LINE || !raw.ends_with('\n') {
                return Err(whole("The AOF manifest file contains too long line"));
            }
            let line = raw.trim_matches([' ', '\t', '\r', '\n']);
            let fail = |reason| AofError::Manifest { line: i + 1, text: line.to_string(), reason };
            let invalid = || fail("Invalid AOF manifest file format");
            let mut scratch = Vec::new();
            let mut spans = Vec::new();
            if line.is_empty()
                || crate::protocol::resp::split_args(line.as_bytes(), &mut scratch, &mut spans).is_err()
                || spans.len() < 6
                || !spans.len().is_multiple_of(2)
            {
                return Err(invalid());
            }
            let words: Vec<String> = spans
                .iter()
                .map(|&(o, l)| String::from_utf8_lossy(&scratch[o as usize..(o + l) as usize]).into_owned())
                .collect();
            let (mut name, mut seq, mut kind) = (None, 0i64, None);
            for pair in words.chunks(2) {
                match pair[0].to_ascii_lowercase().as_str() {
                    "file" => {
                        if pair[1].contains(['/', '\\']) {
                            return Err(fail("File can't be a path, just a filename"));
                        }
                        name = Some(pair[1].clone());
                    }
                    "seq" => seq = atoll(&pair[1]),
                    "type" => kind = pair[1].chars().next(),
                    _ => {}
                }
            }
            let (Some(name), Some(kind)) = (name, kind) else { return Err(invalid()) };
            if seq == 0 {
                return Err(invalid());
            }
            let info = FileInfo { name, seq, kind };
            match kind {
                'b' if m.base.is_none() => m.base = Some(info),
                'b' => return Err(fail("Found duplicate base file information")),
                'h' => m.history.push(info),
                'i' => {
                    if m.incr.last().is_some_and(|last| last.seq >= info.seq) {
                        return Err(fail("Found a non-monotonic sequence number"));
                    }
                    m.incr.push(info)
                }
                _ => return Err(fail("Unknown AOF file type")),
            }
        }
        Ok(m)
    }

    pub fn format(&self) -> String {
        let mut out = String::new();
        for f in self.base.iter().chain(&self.history).chain(&self.incr) {
            out.push_str(&format!("file {} seq {} type {}\n", quote(&f.name), f.seq, f.kind));
        }
        out
    }
}

/// C's atoll: leading whitespace, a sign, digits; 0 when there are none.
fn atoll(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, d| n.wrapping_mul(10).wrapping_add((d - b'0') as i64));
    if neg { -n } else { n }
}

/// A file name as `sdscatrepr` writes it when it needs quoting.
fn quote(name: &str) -> String {
    if name.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\') {
        return name.to_string();
    }
    let mut q = String::from("\"");
    for b in name.bytes() {
        match b {
            b'"' | b'\\' => {
                q.push('\\');
                q.push(b as char);
            }
            b'\n' => q.push_str("\\n"),
            b'\r' => q.push_str("\\r"),
            b'\t' => q.push_str("\\t"),
            b if b.is_ascii_graphic() || b == b' ' => q.push(b as char),
            b => q.push_str(&format!("\\x{b:02x}")),
        }
    }
    q.push('"');
    q
}

/// Where the AOF lives and how it is written, from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub dir: PathBuf,
    pub filename: String,
    pub load_truncated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    Always = 0,
    EverySec = 1,
    No = 2,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Settings {
        Settings {
            dir: PathBuf::from(c.str("appenddirname")),
            filename: c.str("appendfilename").to_string(),
            load_truncated: c.str("aof-load-truncated") == "yes",
        }
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.filename))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The manifest on disk, if there is one.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, AofError> {
        let path = self.manifest_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Manifest::parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("Fatal error: can't open the AOF manifest", &path)(e)),
        }
    }

    /// Writes the manifest atomically: a temp file, fsync, rename, and an
    /// fsync of the directory.
    pub fn write_manifest(&self, m: &Manifest) -> Result<(), AofError> {
        let temp = self.dir.join(format!("temp-{}.manifest", self.filename));
        let mut f = File::create(&temp).map_err(io("Can't open the AOF manifest file", &temp))?;
        f.write_all(m.format().as_bytes()).map_err(io("Error trying to write the temporary AOF manifest", &temp))?;
        f.sync_all().map_err(io("Fail to fsync the temp AOF file", &temp))?;
        let path = self.manifest_path();
        std::fs::rename(&temp, &path).map_err(io("Error trying to rename the temporary AOF manifest", &path))?;
        super::sync_dir_of(&path).map_err(io("Fail to fsync AOF directory", &self.dir))
    }

    /// The files to load at startup, in order, with their total size.
    pub fn files_to_load(&self, m: &Manifest) -> Result<(Vec<PathBuf>, u64), AofError> {
        let mut files = Vec::new();
        let mut total = 0;
        for f in m.base.iter().chain(&m.incr) {
            let path = self.path(&f.name);
            let meta = std::fs::metadata(&path)
                .map_err(|e| AofError::Missing { name: f.name.clone(), reason: crate::persistence::strerror(&e) })?;
            total += meta.len();
            files.push(path);
        }
        Ok((files, total))
    }
}

/// Reads the commands of one AOF file with its rules: `#` annotation
/// lines skipped, RESP arrays only. A truncated tail (or a MULTI never
/// closed) is cut off by `finish` when `aof-load-truncated` allows.
pub struct Reader {
    path: PathBuf,
    name: String,
    map: Option<memmap2::Mmap>,
    parser: crate::protocol::resp::Parser,
    at: usize,
    /// Where the last complete command (outside a MULTI) ends.
    valid: usize,
    multi: bool,
    ended: bool,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, AofError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let file = File::open(path).map_err(io("Fatal error: can't open the append log file for reading", path))?;
        let len = file.metadata().map_err(io("Unrecoverable error reading the append only file", path))?.len();
        // SAFETY: the file is only read while mapped; the writer appends to
        // the newest incremental file only after loading is over.
        let map = if len == 0 {
            None
        } else {
            Some(
                unsafe { memmap2::Mmap::map(&file) }
                    .map_err(io("Unrecoverable error reading the append only file", path))?,
            )
        };
        let parser = crate::protocol::resp::Parser::default();
        Ok(Reader { path: path.to_path_buf(), name, map, parser, at: 0, valid: 0, multi: false, ended: false })
    }

    /// How far it has been read.
    pub fn offset(&self) -> usize {
        self.at
    }

    pub fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// The file's name, as messages give it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole file when it starts as an RDB (a base written with
    /// aof-use-rdb-preamble, or an old-style AOF with an RDB preamble).
    pub fn rdb(&self) -> Option<&[u8]> {
        self.map.as_deref().filter(|m| m.starts_with(b"REDIS"))
    }

    /// Commands start at `offset` (where the RDB ended).
    pub fn skip_to(&mut self, offset: usize) {
        self.at = offset;
        self.valid = offset;
    }

    /// The next command; None at the end of the file (complete or not).
    pub fn next(&mut self) -> Result<Option<crate::command::Args<'_>>, AofError> {
        let Some(map) = &self.map else { return Ok(None) };
        let data = &map[..];
        let limits = crate::protocol::resp::Limits { max_bulk: usize::MAX >> 1, authenticated: true };
        while self.at < data.len() && data[self.at] == b'#' {
            match data[self.at..].iter().position(|&b| b == b'\n') {
                Some(n) => {
                    self.at += n + 1;
                    if !self.multi {
                        self.valid = self.at;
                    }
                }
                None => return Ok(None),
            }
        }
        if self.at >= data.len() {
            self.ended = true;
            return Ok(None);
        }
        let bad = AofError::BadFormat { file: self.name.clone(), offset: self.at };
        if data[self.at] != b'*' {
            return Err(bad);
        }
        match self.parser.parse(&data[self.at..], limits) {
            Ok(Some(frame)) => {
                let start = self.at;
                self.at += frame.consumed;
                let args = crate::command::Args::new(&data[start..], self.parser.spans());
                if args.len() == 0 {
                    return Err(bad);
                }
                if args.is(0, "MULTI") {
                    self.multi = true;
                } else if args.is(0, "EXEC") {
                    self.multi = false;
                }
                if !self.multi {
                    self.valid = self.at;
                }
                Ok(Some(args))
            }
            Ok(None) => Ok(None),
            Err(_) => Err(bad),
        }
    }

    /// After the last command: whether the file ended cleanly, or how its
    /// cut-short tail was handled.
    pub fn finish(self, settings: &Settings, last_file: bool) -> Result<(), AofError> {
        let Reader { path, name, map, valid, multi, ended, .. } = self;
        if map.is_none() || (ended && !multi) {
            return Ok(());
        }
        if !(settings.load_truncated && last_file) {
            return if last_file {
                Err(AofError::Truncated { file: name, offset: valid })
            } else {
                Err(AofError::TruncatedNotLast)
            };
        }
        if multi {
            warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        }
        warn!("!!! Warning: short read while loading the AOF file {name}!!!");
        warn!("!!! Truncating the AOF {name} at offset {valid} !!!");
        drop(map);
        let file = OpenOptions::new().write(true).open(&path).map_err(io("Error truncating the AOF file", &path))?;
        file.set_len(valid as u64).map_err(io("Error truncating the AOF file", &path))?;
        warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
        Ok(())
    }
}

/// What INFO persistence reports about the AOF.
#[derive(Debug, Default)]
pub struct Status {
    pub enabled: AtomicBool,
    /// `appendfsync` now (CONFIG SET changes it): 0 always, 1 everysec, 2 no.
    fsync: std::sync::atomic::AtomicU8,
    pub current_size: AtomicU64,
    pub base_size: AtomicU64,
    /// The last write to the AOF succeeded (set before the writer starts).
    pub last_write_ok: AtomicBool,
    /// The files in use, as the manifest on disk lists them.
    manifest: std::sync::Mutex<Manifest>,
    /// A rewrite's cut: records stamped up to it go to the current
    /// incremental file, later ones to this new one.
    switch: std::sync::Mutex<Option<(u64, File)>>,
    pub rewriting: AtomicBool,
    /// When the running rewrite started (ms).
    pub rewrite_started_ms: AtomicI64,
    /// A rewrite waits for the RDB save running (BGREWRITEAOF during
    /// BGSAVE).
    pub scheduled: AtomicBool,
    /// `appendonly yes` came during a save: the AOF starts with the
    /// scheduled rewrite (Redis's AOF_WAIT_REWRITE); writes until then
    /// are not in it.
    pub enable_scheduled: AtomicBool,
    /// The running rewrite is to stop (the AOF was turned off).
    pub abort: AtomicBool,
    /// The AOF was turned off: the writer finishes and ends.
    pub stop: AtomicBool,
    /// Rewrites started.
    pub rewrites: AtomicU64,
    pub last_rewrite_failed: AtomicBool,
    pub consecutive_failures: AtomicU64,
    /// Automatic rewrites after repeated failures: the minutes of the
    /// last delay and when the next may start (ms).
    limit: std::sync::Mutex<(i64, i64)>,
    /// Seconds the last rewrite took.
    pub last_rewrite_secs: Seconds,
    /// DEBUG AOF-FLUSH-SLEEP: microseconds the writer waits before each
    /// write (tests use it to catch replies that do not wait for it).
    pub flush_sleep_us: AtomicU64,
    /// The writer running now, for the shards that run its rounds.
    active: std::sync::Mutex<Option<Arc<std::sync::Mutex<Writer>>>>,
}

/// A duration in seconds that is -1 until there is one.
#[derive(Debug)]
pub struct Seconds(pub AtomicI64);

impl Default for Seconds {
    fn default() -> Seconds {
        Seconds(AtomicI64::new(-1))
    }
}

/// Consecutive failed rewrites after which automatic ones wait (Redis's
/// AOF_REWRITE_LIMITE_THRESHOLD), and the longest wait.
const FAILURES_BEFORE_LIMIT: u64 = 3;
const LIMIT_MAX_MINUTES: i64 = 60;

impl Status {
    /// Whether automatic rewrites wait after repeated failures: a minute
    /// after the third, doubling each time up to an hour (Redis's
    /// aofRewriteLimited).
    pub fn rewrite_limited(&self, now_ms: i64) -> bool {
        let mut limit = self.limit.lock().unwrap_or_else(|p| p.into_inner());
        if self.consecutive_failures.load(Ordering::SeqCst) < FAILURES_BEFORE_LIMIT {
            *limit = (0, 0);
            return false;
        }
        let (minutes, next) = *limit;
        if next != 0 {
            if now_ms < next {
                return true;
            }
            limit.1 = 0;
            return false;
        }
        let minutes = if minutes == 0 { 1 } else { (minutes * 2).min(LIMIT_MAX_MINUTES) };
        *limit = (minutes, now_ms + minutes * 60_000);
        warn!("Background AOF rewrite has repeatedly failed and triggered the limit, will retry in {minutes} minutes");
        true
    }

    /// Makes `writer` the one shards run rounds of.
    pub fn adopt(&self, writer: Arc<std::sync::Mutex<Writer>>) {
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(writer);
    }

    /// Whether a writer still runs (one turned off may be finishing).
    pub fn has_writer(&self) -> bool {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// `writer` has ended: shards stop running its rounds (unless a newer
    /// one took its place).
    fn retire(&self, writer: &Arc<std::sync::Mutex<Writer>>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        if active.as_ref().is_some_and(|w| Arc::ptr_eq(w, writer)) {
            *active = None;
        }
    }

    /// Runs a writer round on the calling thread (a shard about to sleep
    /// with clients waiting for durability), unless the writer is busy
    /// elsewhere or gone. Returns whether it ran one (if not, the caller
    /// wakes the writer thread).
    pub fn flush_now(&self, server: &crate::server::shared::Shared) -> bool {
        let writer = self.active.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match writer.as_ref().map(|w| w.try_lock()) {
            Some(Ok(mut w)) => {
                w.round(server);
                true
            }
            _ => false,
        }
    }

    /// The manifest in use (a poisoned lock still holds a whole one:
    /// it is replaced, never edited in place).
    pub fn manifest(&self) -> std::sync::MutexGuard<'_, Manifest> {
        self.manifest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pending switch to a new incremental file.
    pub fn switch(&self) -> std::sync::MutexGuard<'_, Option<(u64, File)>> {
        self.switch.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_fsync(&self, f: Fsync) {
        self.fsync.store(f as u8, Ordering::Relaxed);
    }

    pub fn fsync(&self) -> Fsync {
        match self.fsync.load(Ordering::Relaxed) {
            0 => Fsync::Always,
            2 => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// `no-appendfsync-on-rewrite yes` while a save or a rewrite runs: the
/// writer writes but does not fsync (and `always` acknowledges once
/// written), as Redis skips fsyncs while it has a child, so the save's
/// disk traffic does not stall writes; what was written is fsynced once
/// the save is over.
fn fsync_held_off(server: &crate::server::shared::Shared) -> bool {
    (server.aof.rewriting.load(Ordering::Relaxed) || server.rdb.saving.load(Ordering::Relaxed))
        && server.config(|c| c.str("no-appendfsync-on-rewrite") == "yes")
}

/// How often the writer thread looks for records no client waits on
/// (expired and evicted keys' DELs) and for everysec's fsync.
const IDLE_ROUND: Duration = Duration::from_millis(100);

/// The AOF's writer: merges the journal into the newest incremental file.
/// Its thread runs a round whenever records or waiting clients call for
/// one; under `appendfsync always` a shard about to sleep with clients
/// waiting runs the round itself (`Status::flush_now`), as Redis fsyncs
/// before it sleeps, sparing the two thread hops of a hand-off.
pub struct Writer {
    pub file: File,
    pub status: Arc<Status>,
    merger: Option<Merger>,
    encoder: Encoder,
    records: Vec<crate::journal::Record>,
    buf: Vec<u8>,
    last_fsync: Instant,
    /// Written but not fsynced yet.
    unsynced: bool,
    last_ts: i64,
    /// Tells the shards with clients waiting how far the journal is durable.
    notify: Box<dyn Fn() + Send>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("unsynced", &self.unsynced).finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens (creating) the incremental file `name` for appending.
    pub fn open(
        settings: &Settings,
        name: &str,
        status: Arc<Status>,
        notify: Box<dyn Fn() + Send>,
    ) -> Result<Writer, AofError> {
        let path = settings.path(name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("Can't open the append-only file", &path))?;
        Ok(Writer {
            file,
            status,
            merger: None,
            encoder: Encoder::new(),
            records: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
            last_fsync: Instant::now(),
            unsynced: false,
            last_ts: 0,
            notify,
        })
    }

    /// Runs until the AOF is turned off: a round, then a wait for the next
    /// reason to run one.
    pub fn run(writer: Arc<std::sync::Mutex<Writer>>, server: &crate::server::shared::Shared) {
        let lock = || writer.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let stopping = server.aof.stop.load(Ordering::SeqCst);
            let mut w = lock();
            w.round(server);
            if stopping {
                w.finish(server);
                drop(w);
                server.aof.retire(&writer);
                return;
            }
            let due = w.everysec_due(server);
            drop(w);
            if let Some(Err(e)) = due.map(|file| file.sync_data()) {
                warn!("Fail to fsync the AOF file: {e}");
                let mut w = lock();
                w.status.last_write_ok.store(false, Ordering::Relaxed);
                w.unsynced = true;
            }
            server.journal.wait(IDLE_ROUND);
        }
    }

    /// Under everysec, once a second with writes unsynced: a handle to
    /// fsync without holding the writer (writes made meanwhile count as
    /// unsynced again).
    fn everysec_due(&mut self, server: &crate::server::shared::Shared) -> Option<File> {
        if self.status.fsync() != Fsync::EverySec
            || !self.unsynced
            || self.last_fsync.elapsed() < Duration::from_secs(1)
            || fsync_held_off(server)
        {
            return None;
        }
        let file = self.file.try_clone().map_err(|e| warn!("Fail to fsync the AOF file: {e}")).ok()?;
        self.last_fsync = Instant::now();
        self.unsynced = false;
        Some(file)
    }

    /// Takes what the journal has in stamp order, writes it, fsyncs as
    /// `appendfsync` says, then tells waiting shards how far the journal
    /// is durable.
    pub fn round(&mut self, server: &crate::server::shared::Shared) {
        let journal = &server.journal;
        let merger = self.merger.get_or_insert_with(|| Merger::new(journal, crate::journal::Sink::Aof));
        let watermark = merger.collect(journal, &mut self.records);
        let switch = self.status.switch().take();
        if let Some((cut, file)) = switch {
            if watermark < cut {
                // Records up to the cut may still be on their way.
                *self.status.switch() = Some((cut, file));
            } else {
                let later = self.records.split_off(self.records.partition_point(|r| r.stamp <= cut));
                self.encode_records();
                self.write_buffered();
                if let Err(e) = self.file.sync_data() {
                    warn!("Fail to fsync the AOF file: {e}");
                }
                self.file = file;
                self.encoder = Encoder::new();
                self.last_ts = 0;
                self.records = later;
            }
        }
        if !self.records.is_empty() {
            let sleep = self.status.flush_sleep_us.load(Ordering::Relaxed);
            if sleep > 0 {
                std::thread::sleep(Duration::from_micros(sleep));
            }
            if server.config(|c| c.str("aof-timestamp-enabled") == "yes") {
                let now = crate::server::shared::now_ms() / 1000;
                if now != self.last_ts {
                    self.buf.extend_from_slice(format!("#TS:{now}\r\n").as_bytes());
                    self.last_ts = now;
                }
            }
            self.encode_records();
            self.write_buffered();
            self.unsynced = true;
        }
        let policy = self.status.fsync();
        let held_off = policy == Fsync::Always && self.unsynced && fsync_held_off(server);
        if policy == Fsync::Always && self.unsynced && !held_off {
            if let Err(e) = self.file.sync_data() {
                warn!("Fail to fsync the AOF file: {e}");
                self.status.last_write_ok.store(false, Ordering::Relaxed);
            }
            self.last_fsync = Instant::now();
            self.unsynced = false;
        }
        // Under `always` a record counts once fsynced (or written, while
        // fsyncs are held off); otherwise once written (everysec and no
        // acknowledge before the disk does).
        if !self.unsynced || policy != Fsync::Always || held_off {
            journal.set_durable(watermark);
            (self.notify)();
        }
    }

    /// Writes what was encoded, keeping the buffer's allocation.
    fn write_buffered(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.write(&buf);
        self.buf = buf;
        self.buf.clear();
    }

    fn encode_records(&mut self) {
        for r in self.records.drain(..) {
            self.encoder.encode(&r, &mut self.buf);
        }
    }

    /// The AOF was turned off: what was written is fsynced and every
    /// waiting client released.
    fn finish(&mut self, server: &crate::server::shared::Shared) {
        if let Err(e) = self.file.sync_data() {
            warn!("Fail to fsync the AOF file: {e}");
        }
        server.journal.set_durable(u64::MAX);
        (self.notify)();
    }

    fn write(&mut self, data: &[u8]) {
        // Retried until it is all out: a full disk must not drop writes
        // that clients were (or will be) told are there.
        let mut written = 0;
        while written < data.len() {
            match self.file.write(&data[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.status.last_write_ok.swap(false, Ordering::Relaxed) {
                        warn!("Error writing to the AOF file: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        if !self.status.last_write_ok.swap(true, Ordering::Relaxed) {
            info!("AOF write error looks solved, Redis can write again.");
        }
        self.status.current_size.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base.as_ref().map(|b| b.name.as_str()), Some("appendonly.aof.1.base.rdb"));
        assert_eq!(m.incr.len(), 2);
        assert_eq!(m.format(), text);
        // Keys in any order, quoted names.
        let m = Manifest::parse("seq 3 type i file \"a b.aof\"\n").unwrap();
        assert_eq!(m.incr[0].name, "a b.aof");
        assert_eq!(m.format(), "file \"a b.aof\" seq 3 type i\n");
    }

    #[test]
    fn repeated_failures_delay_automatic_rewrites_longer_each_time() {
        let status = Status::default();
        status.consecutive_failures.store(2, Ordering::SeqCst);
        assert!(!status.rewrite_limited(0));
        status.consecutive_failures.store(3, Ordering::SeqCst);
        assert!(status.rewrite_limited(0), "the third failure starts a minute's wait");
        assert!(status.rewrite_limited(59_999));
        assert!(!status.rewrite_limited(60_000), "one try once the minute is over");
        assert!(status.rewrite_limited(60_001), "then two minutes");
        assert!(status.rewrite_limited(180_000));
        assert!(!status.rewrite_limited(180_001));
        status.consecutive_failures.store(0, Ordering::SeqCst);
        assert!(!status.rewrite_limited(180_002), "a success ends the limit");
        status.consecutive_failures.store(3, Ordering::SeqCst);
        assert!(status.rewrite_limited(180_003));
        assert!(!status.rewrite_limited(240_003), "back to a minute after a success");
    }

    #[test]
    fn bad_manifests_name_the_line() {
        for bad in ["file x seq 1\n", "file x seq 1 type z\n", "file a seq 2 type i\nfile b seq 1 type i\n"] {
            assert!(matches!(Manifest::parse(bad), Err(AofError::Manifest { .. })), "{bad}");
        }
    }
}
