//! The master side: the pump that turns the journal into the stream, the
//! PSYNC answer (partial from the backlog, or a full sync from an image
//! cut at the stream offset it announces), each replica's sender, WAIT.

use std::io::{self, Read};
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::backlog::Backlog;
use super::{Replica, ReplicaState, Replication};
use crate::journal::{Encoder, Merger, Record, Sink};
use crate::persistence::snapshot::{Chunks, Parts};
use crate::protocol::resp::{Limits, Parser};
use crate::server::client::Client;
use crate::server::poller::Readiness;
use crate::server::shard::Shard;
use crate::server::shared::{Shared, now_ms};

/// The journal's merger for the stream, and its encoder (which database
/// the stream last selected).
pub struct Pump {
    merger: Merger,
    encoder: Encoder,
    records: Vec<Record>,
    buf: Vec<u8>,
    last_ping: Instant,
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump").finish_non_exhaustive()
    }
}

impl Pump {
    fn new(server: &Shared) -> Pump {
        Pump {
            merger: Merger::new(&server.journal, Sink::Replication),
            encoder: Encoder::new(),
            records: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
            last_ping: Instant::now(),
        }
    }

    /// Moves what the journal has, in stamp order, into the stream.
    fn round(&mut self, server: &Shared) -> bool {
        self.merger.collect(&server.journal, &mut self.records);
        if self.records.is_empty() {
            return false;
        }
        for r in self.records.drain(..) {
            self.encoder.encode(&r, &mut self.buf);
        }
        server.repl.feed(&server.hot, &self.buf);
        self.buf.clear();
        true
    }
}

/// A replica's PING, sent every repl-ping-replica-period.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
/// What WAIT sends to ask every replica for its offset.
const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";

impl Replication {
    /// A master's stream starts (with the first replica, as Redis creates
    /// its backlog): the backlog, the journal recording for it, the pump.
    pub fn start_stream(&self, shard: &Shard) {
        let server = &shard.server;
        let _ = self.mailboxes.set(shard.mailboxes());
        {
            let mut st = self.state();
            if st.backlog.is_none() {
                let size = server.config(|c| c.int("repl-backlog-size")).max(1) as usize;
                st.backlog = Some(Backlog::new(st.offset, size));
            }
        }
        if self.is_replica.load(Ordering::SeqCst) {
            // A replica's stream is its master's bytes (`replica`).
            return;
        }
        {
            let mut pump = self.pump.lock().unwrap_or_else(|p| p.into_inner());
            if pump.is_none() {
                *pump = Some(Pump::new(server));
            }
        }
        server.journal.set_streaming(true);
        if !self.pump_started.swap(true, Ordering::SeqCst) {
            let server = shard.server.clone();
            let spawned = std::thread::Builder::new().name("percore-repl".into()).spawn(move || pump_thread(&server));
            if let Err(e) = spawned {
                warn!("Can't start the replication stream's thread: {e}");
                self.pump_started.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Stops the journal feeding the stream (this server becomes a
    /// replica, or its backlog goes): what it had is dropped.
    pub fn stop_stream(&self, server: &Shared) {
        server.journal.set_streaming(false);
        let mut pump = self.pump.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pump.as_mut() {
            p.merger.clear(&server.journal);
        }
        *pump = None;
    }

    /// Everything journalled so far into the stream; its offset after.
    /// With every shard held that is an exact cut: no record is on its
    /// way, and the next one selects its database anew (a replica that
    /// starts here knows none).
    pub fn pump_now(&self, server: &Shared, cut: bool) -> u64 {
        let mut pump = self.pump.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pump.as_mut() {
            p.round(server);
            if cut {
                // Stamps are taken from a clock that may be a hair ahead
                // of the watermark: a few rounds drain it all.
                while !p.merger.drained(&server.journal) {
                    std::thread::yield_now();
                    p.round(server);
                }
                p.encoder = Encoder::new();
            }
        }
        drop(pump);
        self.state().offset()
    }

    /// Appends stream bytes (the pump's, or a replica's master's) to the
    /// backlog; drops replicas past their output limits; wakes the
    /// senders waiting for more.
    pub fn feed(&self, hot: &crate::config::Hot, data: &[u8]) {
        let hard = hot.replica_hard_limit.load(Ordering::Relaxed);
        let soft = hot.replica_soft_limit.load(Ordering::Relaxed);
        let soft_secs = hot.replica_soft_secs.load(Ordering::Relaxed) as i64;
        let now = now_ms();
        let mut wake = Vec::new();
        let mut kill = Vec::new();
        {
            let mut st = self.state();
            let st = &mut *st;
            let Some(backlog) = st.backlog.as_mut() else { return };
            let end = backlog.end() + data.len() as u64;
            st.replicas.retain_mut(|r| {
                let pending = end - r.sent;
                if r.state == ReplicaState::Online && soft > 0 && pending > soft {
                    r.soft_since.get_or_insert(now);
                } else {
                    r.soft_since = None;
                }
                let over_soft = r.soft_since.is_some_and(|since| now - since >= soft_secs * 1000);
                if r.state == ReplicaState::Online && ((hard > 0 && pending > hard) || over_soft) {
                    warn!(
                        "Client id={} addr={}:{} scheduled to be closed ASAP for overcoming of output buffer limits.",
                        r.client_id, r.ip, r.port
                    );
                    kill.push((r.shard, r.client_id));
                    return false;
                }
                if r.parked {
                    r.parked = false;
                    wake.push((r.shard, r.client_id));
                }
                true
            });
            let keep_from = st.replicas.iter().map(|r| r.sent).min();
            backlog.feed(data, keep_from);
        }
        let Some(mailboxes) = self.mailboxes() else { return };
        for (shard, id, killed) in
            wake.into_iter().map(|(s, i)| (s, i, false)).chain(kill.into_iter().map(|(s, i)| (s, i, true)))
        {
            mailboxes[shard].send_with(Box::new(move |sh| {
                if let Some(meta) = sh.clients.borrow().get(&id) {
                    if killed { meta.kill() } else { meta.wake() }
                }
            }));
        }
    }
}

/// The pump's thread: a round whenever the journal has records, a PING
/// to the replicas every repl-ping-replica-period.
fn pump_thread(server: &Arc<Shared>) {
    loop {
        let ran = {
            let mut pump = server.repl.pump.lock().unwrap_or_else(|p| p.into_inner());
            match pump.as_mut() {
                Some(p) => {
                    let ran = p.round(server);
                    let period = server.config(|c| c.int("repl-ping-replica-period")).max(1) as u64;
                    if p.last_ping.elapsed() >= Duration::from_secs(period) {
                        p.last_ping = Instant::now();
                        if !server.repl.state().replicas.is_empty() {
                            server.repl.feed(&server.hot, PING);
                        }
                    }
                    ran
                }
                None => false,
            }
        };
        if !ran {
            server.journal.pump_wait(Duration::from_millis(100));
        }
    }
}

/// What a replica said about itself before PSYNC (REPLCONF).
#[derive(Debug, Default, Clone)]
pub struct ReplConf {
    pub listening_port: u16,
    pub ip: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
}

/// A PSYNC (or SYNC: no replid) the connection hands over to `serve`.
#[derive(Debug, Clone)]
pub struct Psync {
    pub replid: Option<String>,
    pub offset: i64,
}

/// The connection of a replica, once it asked to sync: it sends the
/// stream and reads the replica's ACKs until either side closes.
pub struct ReplicaConn<'a> {
    pub client: &'a mut Client,
    pub stream: &'a TcpStream,
    pub ready: &'a Readiness,
    /// What the replica sent after PSYNC, not parsed yet.
    pub input: Vec<u8>,
}

impl ReplicaConn<'_> {
    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut buf = data.to_vec();
        crate::server::connection::write_out(self.stream, self.ready, &mut buf, self.client).await
    }

    /// Reads what the replica sent (non-blocking), handling its ACKs:
    /// whether one came. Err once it closed.
    fn read_acks(&mut self, parser: &mut Parser) -> io::Result<bool> {
        let mut chunk = [0u8; 4096];
        loop {
            self.ready.clear_readable();
            match (&*self.stream).read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let limits = Limits { max_bulk: 1 << 20, authenticated: true };
        let mut at = 0;
        let mut acked = false;
        while let Ok(Some(frame)) = parser.parse(&self.input[at..], limits) {
            let args = crate::command::Args::new(&self.input[at..], parser.spans());
            if args.len() >= 3
                && args.get(0).eq_ignore_ascii_case(b"replconf")
                && args.get(1).eq_ignore_ascii_case(b"ack")
                && let Some(offset) = std::str::from_utf8(args.get(2)).ok().and_then(|s| s.parse::<u64>().ok())
            {
                acked = true;
                let id = self.client.meta.id;
                let mut st = self.client.shard.server.repl.state();
                if let Some(r) = st.replicas.iter_mut().find(|r| r.client_id == id) {
                    r.ack = r.ack.max(offset);
                    r.ack_ms = now_ms();
                }
            }
            at += frame.consumed;
        }
        self.input.drain(..at);
        if self.input.len() > 1 << 20 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        Ok(acked)
    }

    /// After a streamed RDB: the replica's first ACK says it has read
    /// the end mark, so stream bytes cannot be taken for the file's.
    async fn first_ack(&mut self, timeout: Duration) -> io::Result<()> {
        let mut parser = Parser::default();
        let deadline = Instant::now() + timeout;
        loop {
            if self.read_acks(&mut parser)? {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let wait = std::pin::pin!(self.ready.readable());
            futures::future::select(wait, std::pin::pin!(crate::server::poller::sleep(left))).await;
            self.ready.take_pushed();
        }
    }
}

/// The replica's address as INFO shows it.
fn replica_name(client: &Client, conf: &ReplConf) -> (String, u16) {
    let ip = conf.ip.clone().unwrap_or_else(|| {
        client.meta.addr.rsplit_once(':').map_or(String::new(), |(ip, _)| ip.trim_matches(['[', ']']).to_string())
    });
    (ip, conf.listening_port)
}

/// Serves a replica that sent PSYNC (or SYNC) until the link ends.
pub async fn serve(mut conn: ReplicaConn<'_>, psync: Psync, conf: ReplConf) {
    let shard = conn.client.shard.clone();
    let server = shard.server.clone();
    let repl = &server.repl;
    let (ip, port) = replica_name(conn.client, &conf);
    let id = conn.client.meta.id;
    conn.client.meta.role.set(crate::server::client::Role::Replica);
    if server.config(|c| c.str("repl-disable-tcp-nodelay") == "yes") {
        let _ = conn.stream.set_nodelay(false);
    }
    info!("Replica {ip}:{port} asks for synchronization");
    repl.start_stream(&shard);
    let partial = psync.replid.as_ref().and_then(|replid| {
        let st = repl.state();
        let next = u64::try_from(psync.offset).ok()?;
        let ours = *replid == st.replid || (*replid == st.replid2 && psync.offset <= st.second_offset);
        let backlog = st.backlog.as_ref()?;
        (ours && next >= 1 && backlog.covers(next - 1)).then(|| (next - 1, st.replid.clone(), backlog.end()))
    });
    let sent = match partial {
        Some((from, replid, end)) => {
            repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            register(repl, &shard, id, &ip, port, from, ReplicaState::Online);
            let reply = if conf.capa_psync2 { format!("+CONTINUE {replid}\r\n") } else { "+CONTINUE\r\n".to_string() };
            info!(
                "Partial resynchronization request from {ip}:{port} accepted. Sending {} bytes of backlog starting from offset {}.",
                end - from,
                from + 1
            );
            if conn.write(reply.as_bytes()).await.is_err() {
                unregister(repl, id);
                return;
            }
            from
        }
        None => {
            if psync.replid.as_deref().is_some_and(|r| r != "?") {
                repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
                info!(
                    "Partial resynchronization not accepted: replication ID or offset mismatch (Replica asked for {}:{})",
                    psync.replid.as_deref().unwrap_or("?"),
                    psync.offset
                );
            }
            repl.sync_full.fetch_add(1, Ordering::Relaxed);
            info!("Full resync requested by replica {ip}:{port}");
            match full_sync(&mut conn, &psync, &conf, &ip, port).await {
                Some(from) => from,
                None => {
                    unregister(repl, id);
                    return;
                }
            }
        }
    };
    stream(&mut conn, sent).await;
    unregister(repl, id);
    info!("Connection with replica {ip}:{port} lost.");
}

fn register(repl: &Replication, shard: &Shard, id: u64, ip: &str, port: u16, sent: u64, state: ReplicaState) {
    let mut st = repl.state();
    st.replicas.retain(|r| r.client_id != id);
    st.replicas.push(Replica {
        client_id: id,
        shard: shard.id,
        ip: ip.to_string(),
        port,
        state,
        sent,
        ack: 0,
        ack_ms: now_ms(),
        parked: false,
        soft_since: None,
    });
}

fn unregister(repl: &Replication, id: u64) {
    let mut st = repl.state();
    st.replicas.retain(|r| r.client_id != id);
    if st.replicas.is_empty() {
        st.alone_since_ms = now_ms();
    }
}

/// A full sync: the image cut at the stream's offset, announced with
/// +FULLRESYNC and sent diskless (`$EOF:` framing, serialized by every
/// shard at once) or, when the replica cannot read that or
/// repl-diskless-sync is off, written to disk first and sent with its
/// length. Returns the offset the stream continues from.
async fn full_sync(conn: &mut ReplicaConn<'_>, psync: &Psync, conf: &ReplConf, ip: &str, port: u16) -> Option<u64> {
    let shard = conn.client.shard.clone();
    let server = shard.server.clone();
    let diskless = conf.capa_eof && server.config(|c| c.str("repl-diskless-sync") == "yes");
    if diskless {
        sync_delay(conn).await?;
    }
    let chunks = Arc::new(Chunks::default());
    let (offset, replid, header) = cut_image(conn, chunks.clone(), ip, port).await?;
    info!("Starting BGSAVE for SYNC with target: {}", if diskless { "replicas sockets" } else { "disk" });
    // SYNC (an old replica) gets the RDB without the announcement.
    if psync.replid.is_some() {
        let reply = format!("+FULLRESYNC {replid} {offset}\r\n");
        conn.write(reply.as_bytes()).await.ok()?;
    }
    let sent = if diskless {
        send_streamed(conn, &chunks, &header).await
    } else {
        send_from_disk(conn, &chunks, &header).await
    };
    if sent.is_err() {
        // The shards stop their images; the next one waits for that.
        chunks.abandoned.store(true, Ordering::SeqCst);
        while !chunks.finished.load(Ordering::SeqCst) {
            crate::server::poller::sleep(Duration::from_millis(1)).await;
        }
    }
    server.rdb.saving.store(false, Ordering::SeqCst);
    if let Err(e) = sent {
        warn!("Synchronization with replica {ip}:{port} failed: {e}");
        return None;
    }
    if diskless {
        info!(
            "Streamed RDB transfer with replica {ip}:{port} succeeded (socket). Waiting for REPLCONF ACK from replica to enable streaming"
        );
        // It comes once the replica loaded the file, however long that
        // takes; a replica that goes away closes the socket.
        if let Err(e) = conn.first_ack(Duration::from_secs(24 * 3600)).await {
            warn!("Synchronization with replica {ip}:{port} failed: no REPLCONF ACK after the RDB ({e})");
            return None;
        }
    }
    let id = conn.client.meta.id;
    if let Some(r) = server.repl.state().replicas.iter_mut().find(|r| r.client_id == id) {
        r.state = ReplicaState::Online;
        r.ack_ms = now_ms();
    }
    info!("Synchronization with replica {ip}:{port} succeeded");
    Some(offset)
}

/// repl-diskless-sync-delay: a diskless sync starts that many seconds
/// after its replica asked, or once repl-diskless-sync-max-replicas
/// replicas wait, with a newline every 100 ms to keep each one's link
/// alive (as Redis delays its socket target BGSAVE).
async fn sync_delay(conn: &mut ReplicaConn<'_>) -> Option<()> {
    let server = conn.client.shard.server.clone();
    let (delay, max) =
        server.config(|c| (c.int("repl-diskless-sync-delay").max(0) as u64, c.int("repl-diskless-sync-max-replicas")));
    if delay == 0 {
        return Some(());
    }
    let waiting = &server.repl.delayed;
    waiting.fetch_add(1, Ordering::SeqCst);
    let _done = crate::server::connection::scopeguard(|| {
        waiting.fetch_sub(1, Ordering::SeqCst);
    });
    let deadline = Instant::now() + Duration::from_secs(delay);
    while Instant::now() < deadline {
        if max > 0 && waiting.load(Ordering::SeqCst) >= max as usize {
            break;
        }
        conn.write(b"\n").await.ok()?;
        crate::server::poller::sleep(Duration::from_millis(100)).await;
    }
    Some(())
}

/// Waits for no other image to run, then with every shard held: the
/// stream's exact offset, the replica registered there, each shard's
/// image started into `chunks`. Returns the offset, the replid and the
/// RDB's header.
async fn cut_image(
    conn: &mut ReplicaConn<'_>,
    chunks: Arc<Chunks>,
    ip: &str,
    port: u16,
) -> Option<(u64, String, Vec<u8>)> {
    let shard = conn.client.shard.clone();
    let server = shard.server.clone();
    loop {
        // One image at a time (a BGSAVE or a rewrite in progress first).
        if !server.aof.rewriting.load(Ordering::SeqCst) && !server.rdb.saving.swap(true, Ordering::SeqCst) {
            let ex = crate::server::transaction::Exclusive::begin(conn.client).await;
            if !server.aof.rewriting.load(Ordering::SeqCst) {
                let offset = server.repl.pump_now(&server, true);
                let replid = server.repl.replid();
                register(&server.repl, &shard, conn.client.meta.id, ip, port, offset, ReplicaState::Sync);
                let header = crate::persistence::rdb::header(&shard, false, Some((&replid, offset)));
                let done_chunks = chunks.clone();
                let done: crate::persistence::snapshot::Done = Box::new(move |server, _, ok, _| {
                    // A shutdown stopped it.
                    let stopped = server.rdb.aborted.swap(false, Ordering::SeqCst);
                    done_chunks.failed.store(!ok || stopped, Ordering::SeqCst);
                    done_chunks.finished.store(true, Ordering::SeqCst);
                });
                let format = crate::storage::snapshot::Format::Rdb(server.hot.rdb_options());
                let aborted = |s: &Shared| s.rdb.aborted.load(Ordering::SeqCst);
                let progress = Arc::new(crate::persistence::snapshot::Progress::default());
                if let Ok(mut p) = server.rdb.progress.lock() {
                    *p = progress.clone();
                }
                server.rdb.started_ms.store(now_ms(), Ordering::SeqCst);
                crate::persistence::snapshot::start(
                    conn.client,
                    format,
                    Parts::Stream(chunks),
                    aborted,
                    progress,
                    done,
                )
                .await;
                ex.end().await;
                return Some((offset, replid, header));
            }
            ex.end().await;
            server.rdb.saving.store(false, Ordering::SeqCst);
        }
        if conn.client.meta.killed.get() {
            return None;
        }
        // A newline keeps the replica's read timeout from firing while
        // it waits, as Redis sends one.
        conn.write(b"\n").await.ok()?;
        crate::server::poller::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the next chunk; None once every part is done.
async fn next_chunk(chunks: &Chunks) -> Option<Vec<u8>> {
    loop {
        if let Some(c) = chunks.pop() {
            return Some(c);
        }
        if chunks.finished.load(Ordering::SeqCst) {
            // A chunk pushed just before the end.
            return chunks.pop();
        }
        crate::server::poller::sleep(Duration::from_millis(1)).await;
    }
}

/// The RDB streamed as Redis's diskless sync sends it: `$EOF:<mark>`,
/// the file, the mark again.
async fn send_streamed(conn: &mut ReplicaConn<'_>, chunks: &Chunks, header: &[u8]) -> io::Result<()> {
    let mark = crate::server::shared::random_id();
    let mut crc = crate::rdb::CRC64.digest();
    let mut out = format!("$EOF:{mark}\r\n").into_bytes();
    out.extend_from_slice(header);
    crc.update(header);
    while let Some(chunk) = next_chunk(chunks).await {
        crc.update(&chunk);
        out.extend_from_slice(&chunk);
        if out.len() >= 1 << 20 {
            conn.write(&std::mem::take(&mut out)).await?;
        }
    }
    if chunks.failed.load(Ordering::SeqCst) {
        return Err(io::Error::other("a shard could not write its part"));
    }
    out.push(crate::rdb::OP_EOF);
    crc.update(&[crate::rdb::OP_EOF]);
    let checksum = conn.client.shard.server.config(|c| c.str("rdbchecksum") == "yes");
    out.extend_from_slice(&(if checksum { crc.finalize() } else { 0 }).to_le_bytes());
    out.extend_from_slice(mark.as_bytes());
    conn.write(&out).await
}

/// The RDB written to a file first, then sent with its length (a replica
/// without `capa eof`, or repl-diskless-sync no).
async fn send_from_disk(conn: &mut ReplicaConn<'_>, chunks: &Chunks, header: &[u8]) -> io::Result<()> {
    use std::io::{Seek, Write};
    let path = std::path::PathBuf::from(format!("temp-{}-sync-{}.rdb", std::process::id(), conn.client.meta.id));
    let _remove = crate::server::connection::scopeguard(|| drop(std::fs::remove_file(&path)));
    let mut file = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let mut crc = crate::rdb::CRC64.digest();
    file.write_all(header)?;
    crc.update(header);
    while let Some(chunk) = next_chunk(chunks).await {
        crc.update(&chunk);
        file.write_all(&chunk)?;
    }
    if chunks.failed.load(Ordering::SeqCst) {
        return Err(io::Error::other("a shard could not write its part"));
    }
    crc.update(&[crate::rdb::OP_EOF]);
    let checksum = conn.client.shard.server.config(|c| c.str("rdbchecksum") == "yes");
    file.write_all(&[crate::rdb::OP_EOF])?;
    file.write_all(&(if checksum { crc.finalize() } else { 0 }).to_le_bytes())?;
    let len = file.stream_position()?;
    file.rewind()?;
    conn.write(format!("${len}\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write(&buf[..n]).await?;
    }
}

/// Sends the stream from `from` on, reading ACKs, until the link ends.
async fn stream(conn: &mut ReplicaConn<'_>, mut sent: u64) {
    const CHUNK: usize = 256 * 1024;
    let server = conn.client.shard.server.clone();
    let id = conn.client.meta.id;
    let mut parser = Parser::default();
    let mut out = Vec::with_capacity(CHUNK);
    loop {
        if conn.client.meta.killed.get() {
            return;
        }
        let got = {
            let mut st = server.repl.state();
            let st = &mut *st;
            let got = st.backlog.as_ref().and_then(|b| b.read(sent, CHUNK, &mut out));
            if let Some(r) = st.replicas.iter_mut().find(|r| r.client_id == id) {
                r.sent = sent;
                r.parked = got == Some(0);
            } else {
                // Dropped (output limits, or the server became a replica).
                return;
            }
            got
        };
        match got {
            None => {
                warn!("Replica client id={id} fell out of the backlog");
                return;
            }
            Some(0) => {
                conn.ready.readable().await;
                conn.ready.take_pushed();
            }
            Some(n) => {
                if crate::server::connection::write_out(conn.stream, conn.ready, &mut out, conn.client).await.is_err() {
                    return;
                }
                sent += n as u64;
            }
        }
        if conn.read_acks(&mut parser).is_err() {
            return;
        }
    }
}

/// WAIT numreplicas timeout: replicas that acknowledged this client's
/// writes, once `needed` did or the time is up (0: no limit).
pub async fn wait(client: &mut Client, needed: usize, timeout_ms: i64) -> usize {
    let server = client.shard.server.clone();
    let repl = &server.repl;
    if std::mem::take(&mut client.repl_dirty) {
        client.woff = repl.pump_now(&server, false);
    }
    let target = client.woff;
    let acked = || repl.state().replicas.iter().filter(|r| r.state == ReplicaState::Online && r.ack >= target).count();
    let count = acked();
    if count >= needed {
        return count;
    }
    {
        let _pump = repl.pump.lock().unwrap_or_else(|p| p.into_inner());
        repl.feed(&server.hot, GETACK);
    }
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms as u64));
    server.blocked_clients.fetch_add(1, Ordering::Relaxed);
    let count = loop {
        let count = acked();
        if count >= needed || deadline.is_some_and(|d| Instant::now() >= d) || client.meta.killed.get() {
            break count;
        }
        crate::server::poller::sleep(Duration::from_millis(5)).await;
    };
    server.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    count
}

/// From the cron (shard 0): a master alone for repl-backlog-ttl frees its
/// backlog and starts a new history, as Redis does.
pub fn cron(shard: &Rc<Shard>) {
    let server = &shard.server;
    let repl = &server.repl;
    if repl.is_replica.load(Ordering::Relaxed) {
        return;
    }
    let ttl = server.config(|c| c.int("repl-backlog-ttl"));
    let mut st = repl.state();
    if ttl > 0 && st.backlog.is_some() && st.replicas.is_empty() && now_ms() - st.alone_since_ms > ttl * 1000 {
        st.offset = st.offset();
        st.backlog = None;
        st.replid = crate::server::shared::random_id();
        st.clear_replid2();
        drop(st);
        repl.stop_stream(server);
        info!("Replication backlog freed after {ttl} seconds without connected replicas.");
    }
}
