//! A client connection: read requests, dispatch them in order, write the
//! replies. The connection stays on the core that accepted it.
//!
//! I/O shape: one read fills as much of the buffer as the socket has; every
//! complete request in it is dispatched; all replies go out in one write.
//! A pipelined burst therefore costs one read and one write, and replies
//! for remote shards are gathered into one hop per run of commands.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::debug;

use super::buffers::{READ_CHUNK, REPLY_CHUNK};
use super::client::{Client, ClientMeta};
use super::dispatch::{Batch, dispatch};
use super::poller::{Readiness, yield_now};
use super::shard::Shard;
use crate::command::Args;
use crate::config::Hot;
use crate::protocol::CmdError;
use crate::protocol::reply::encode_error;
use crate::protocol::resp::{Limits, Parser};

/// Replies are written out once this much is pending, even mid-pipeline.
const WRITE_HIGH_WATER: usize = 64 * 1024;

pub async fn serve(shard: Rc<Shard>, stream: TcpStream) {
    let server = shard.server.clone();
    let counters = &server.counters;
    counters.total_connections.fetch_add(1, Ordering::Relaxed);
    let connected = counters.connected_clients.fetch_add(1, Ordering::Relaxed) + 1;
    let _guard = scopeguard(|| {
        server.counters.connected_clients.fetch_sub(1, Ordering::Relaxed);
    });
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let fd = stream.as_raw_fd();
    let Ok(ready) = shard.poller.register(fd) else { return };
    let _registered = scopeguard(|| shard.poller.deregister(fd));
    let mut conn = Conn {
        client: Client::new(shard.clone(), Rc::new(ClientMeta::new(0, String::new(), String::new(), fd))),
        stream,
        ready,
        rbuf: Vec::new(),
        start: 0,
        end: 0,
        parser: Parser::default(),
        out: Vec::with_capacity(REPLY_CHUNK),
        batch: Batch::default(),
    };
    if connected > Hot::get(&server.hot.maxclients) {
        counters.rejected_connections.fetch_add(1, Ordering::Relaxed);
        encode_error(&mut conn.out, &CmdError::MaxClients.to_string());
        let _ = conn.flush().await;
        return;
    }
    let _ = conn.stream.set_nodelay(true);
    set_keepalive(&conn.stream, Hot::get(&server.hot.tcp_keepalive));
    let addr = conn.stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let laddr = conn.stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let meta = Rc::new(ClientMeta::new(server.next_client_id(), addr, laddr, fd));
    let _ = meta.ready.set(conn.ready.clone());
    conn.client.meta = meta.clone();
    shard.clients.borrow_mut().insert(meta.id, meta.clone());
    debug!(id = meta.id, addr = %meta.addr, "accepted client");
    conn.run().await;
    conn.client.unwatch_all().await;
    conn.client.unsubscribe_all();
    conn.client.disable_tracking().await;
    shard.remove_monitor(meta.id);
    shard.clients.borrow_mut().remove(&meta.id);
    debug!(id = meta.id, "client closed");
}

/// Runs `f` when dropped: the connection count stays right on every exit.
pub(crate) fn scopeguard<F: FnMut()>(f: F) -> impl Drop {
    struct Guard<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Guard<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    Guard(f)
}

fn set_keepalive(stream: &TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(secs))
        .with_interval(Duration::from_secs((secs / 3).max(1)));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&ka);
}

struct Conn {
    client: Client,
    stream: TcpStream,
    ready: Rc<Readiness>,
    /// Received bytes live in `rbuf[start..end]`; the rest is free space
    /// (always initialised, so reads need no unsafe).
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    parser: Parser,
    out: Vec<u8>,
    batch: Batch,
}

impl Conn {
    async fn run(&mut self) {
        loop {
            let n = match self.read().await {
                Ok(Some(0)) | Err(_) => return,
                Ok(Some(n)) => n,
                Ok(None) => {
                    // Woken for pushes or by the cron's buffer sizing.
                    self.take_outbox();
                    if self.flush().await.is_err() || self.client.meta.killed.get() {
                        return;
                    }
                    self.apply_sizing();
                    continue;
                }
            };
            self.end += n;
            self.client.meta.sizing.note_read(self.end - self.start);
            let shard = &self.client.shard;
            shard.stats.net_input.set(shard.stats.net_input.get() + n as u64);
            shard.stats.reads.set(shard.stats.reads.get() + 1);
            self.client.meta.last_active_ms.set(shard.now());
            let limit = Hot::get(&shard.server.hot.query_buffer_limit) as usize;
            if self.end - self.start > limit {
                tracing::warn!(id = self.client.meta.id, "closing client that reached max query buffer length");
                return;
            }
            // A shard behind on the work posted to it holds new requests back.
            shard.server.fanout.wait_clear().await;
            self.process().await;
            // Let every other connection woken by the same epoll round run
            // its commands first, so the replies leave back to back, as in
            // Redis's event loop: the peers' readers wake once for several
            // replies instead of once per reply.
            yield_now().await;
            await_durable(&mut self.client).await;
            self.take_outbox();
            if self.flush().await.is_err() || self.client.close_after_reply || self.client.meta.killed.get() {
                return;
            }
            if let Some(psync) = self.client.psync.take() {
                // The connection is a replica's stream from here on.
                let input = self.rbuf[self.start..self.end].to_vec();
                let conf = std::mem::take(&mut self.client.replconf);
                let conn = crate::replication::master::ReplicaConn {
                    client: &mut self.client,
                    stream: &self.stream,
                    ready: &self.ready,
                    input,
                };
                crate::replication::master::serve(conn, psync, conf).await;
                return;
            }
        }
    }

    /// Dispatches every complete request in the buffer.
    async fn process(&mut self) {
        let Conn { client, stream, ready, rbuf, start, end, parser, out, batch } = self;
        loop {
            let limits = Limits {
                max_bulk: Hot::get(&client.shard.server.hot.proto_max_bulk_len) as usize,
                authenticated: client.authenticated,
            };
            match parser.parse(&rbuf[*start..*end], limits) {
                Ok(Some(frame)) => {
                    client.meta.qbuf.set(*end - *start);
                    client.meta.argv_mem.set(parser.spans().iter().map(|&(_, len)| len as usize).sum());
                    if !parser.spans().is_empty() {
                        let data = if frame.inline { parser.scratch() } else { &rbuf[*start..*end] };
                        dispatch(client, out, batch, Args::new(data, parser.spans())).await;
                    }
                    *start += frame.consumed;
                    if client.close_after_reply || client.meta.killed.get() {
                        break;
                    }
                    if out.len() >= WRITE_HIGH_WATER {
                        batch.flush(client, out).await;
                        await_durable(client).await;
                        if write_out(stream, ready, out, client).await.is_err() {
                            client.close_after_reply = true;
                            break;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    batch.flush(client, out).await;
                    encode_error(out, &format!("ERR Protocol error: {e}"));
                    client.close_after_reply = true;
                    break;
                }
            }
        }
        batch.flush(client, out).await;
        client.meta.qbuf.set(*end - *start);
    }

    async fn flush(&mut self) -> io::Result<()> {
        write_out(&self.stream, &self.ready, &mut self.out, &self.client).await
    }

    /// Applies what the cron decided for this idle connection's buffers.
    fn apply_sizing(&mut self) {
        let meta = &self.client.meta;
        if let Some(size) = meta.sizing.take_reply_change()
            && self.out.is_empty()
        {
            self.out = Vec::with_capacity(size);
        }
        if let Some(size) = meta.sizing.take_read_target()
            && size < self.rbuf.len()
            && self.start == self.end
            && self.parser.needed().is_none()
        {
            self.rbuf = vec![0; size];
            (self.start, self.end) = (0, 0);
            meta.rbuf_size.set(size);
        }
    }

    /// Moves queued pushes (Pub/Sub messages, invalidations) behind the
    /// replies.
    fn take_outbox(&mut self) {
        self.client.meta.take_pushes(&mut self.out);
        self.out.append(&mut self.client.meta.deferred.borrow_mut());
    }

    /// Reads what the socket has into the free part of the buffer. Like
    /// Redis, it reads only once readiness was reported, never on spec.
    /// None: woken because pushes wait in the outbox.
    async fn read(&mut self) -> io::Result<Option<usize>> {
        loop {
            self.ready.readable().await;
            if self.ready.take_pushed() {
                return Ok(None);
            }
            self.ready.clear_readable();
            // Room is made only now: an idle connection holds no buffer.
            self.make_room();
            let space = &mut self.rbuf[self.end..];
            match (&self.stream).read(space) {
                Ok(n) => {
                    if n == space.len() {
                        // The socket may hold more than fitted.
                        self.ready.set_readable();
                    }
                    return Ok(Some(n));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps free space after `end`: compacts consumed bytes away and grows
    /// when a request needs more than the buffer holds.
    fn make_room(&mut self) {
        self.grow_for_read();
        self.client.meta.rbuf_size.set(self.rbuf.len());
    }

    fn grow_for_read(&mut self) {
        const MIN_READ: usize = 4096;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let pending = self.end - self.start;
        // Bytes needed from `start`: the frame in progress or one more read.
        let need = self.parser.needed().unwrap_or(0).max(pending + MIN_READ);
        if self.rbuf.len() - self.start >= need {
            return;
        }
        self.rbuf.copy_within(self.start..self.end, 0);
        self.start = 0;
        self.end = pending;
        if self.rbuf.len() < need {
            // Double at most: a client claiming a huge bulk gets memory only
            // as its bytes arrive. A released (or not yet made) buffer
            // comes back whole: it held no partial request.
            let len = if self.rbuf.is_empty() { READ_CHUNK } else { need.min(self.rbuf.len() * 2) };
            self.rbuf.resize(len, 0);
        }
    }
}

/// With the AOF on, replies to writes leave only once the writes are in
/// the file (on disk under `appendfsync always`): every record stamped
/// before now is, once the journal is durable up to now (one write, and
/// fsync, covers them all).
async fn await_durable(client: &mut Client) {
    if !std::mem::take(&mut client.wrote) {
        return;
    }
    let server = &client.shard.server;
    if !server.journal.durability_active() {
        return;
    }
    let now = server.journal.clock();
    client.shard.durable(now).await;
}

/// Writes all of `out`, waiting for the socket to drain when it is full.
pub(crate) async fn write_out(
    stream: &TcpStream,
    ready: &Readiness,
    out: &mut Vec<u8>,
    client: &Client,
) -> io::Result<()> {
    let shard = &client.shard;
    client.meta.sizing.note_reply(out.len());
    let mut sent = 0;
    while sent < out.len() {
        ready.clear_writable();
        match (&*stream).write(&out[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.writable().await,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                out.clear();
                return Err(e);
            }
        }
    }
    shard.stats.net_output.set(shard.stats.net_output.get() + out.len() as u64);
    if !out.is_empty() {
        shard.stats.writes.set(shard.stats.writes.get() + 1);
    }
    out.clear();
    if out.capacity() > 1024 * 1024 {
        out.shrink_to(client.meta.sizing.reply_size());
    }
    Ok(())
}
