//! The replica side: REPLICAOF's link to the master. One task keeps it:
//! connect, the handshake (PING, AUTH, REPLCONF, PSYNC), the RDB of a
//! full sync (streamed or sized, to disk or memory as repl-diskless-load
//! says) loaded in place of the dataset, then the master's commands
//! applied through dispatch as its client, in stream order, with a
//! REPLCONF ACK every second. Redis's log lines mark each step: operators
//! and Redis's own tests wait for them.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::{Either, select};
use tracing::{info, warn};

use super::backlog::Backlog;
use super::{Link, LinkState, NO_ID, Replication};
use crate::command::Args;
use crate::protocol::resp::{Limits, Parser};
use crate::server::client::{Client, ClientMeta, Role};
use crate::server::dispatch::{Batch, dispatch};
use crate::server::poller::{Readiness, sleep};
use crate::server::shard::Shard;
use crate::server::shared::now_ms;

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Protocol(String),
    /// REPLICAOF changed: this link is over.
    #[error("replication target changed")]
    Superseded,
}

type Result<T> = std::result::Result<T, LinkError>;

/// REPLICAOF host port: this server becomes (or stays) a replica of it.
/// A master keeps its own history as what it will ask the new master to
/// continue (Redis's cached master of itself).
pub fn start(shard: &Rc<Shard>, host: String, port: u16) {
    let server = &shard.server;
    let repl = &server.repl;
    let generation = repl.generation.fetch_add(1, Ordering::SeqCst) + 1;
    if !repl.is_replica.swap(true, Ordering::SeqCst) {
        repl.stop_stream(server);
    }
    repl.link_up.store(false, Ordering::SeqCst);
    let old = {
        let mut st = repl.state();
        let old = st.master.take();
        st.master = Some(Link {
            host: host.clone(),
            port,
            state: LinkState::Connect,
            last_io_ms: 0,
            down_since_ms: 0,
            transfer_size: -1,
            transfer_read: 0,
            read_offset: 0,
            client: None,
        });
        old
    };
    close_master_client(shard, old.and_then(|l| l.client));
    let shard = shard.clone();
    crate::server::poller::spawn(async move { run(shard, generation).await }).detach();
}

/// The `replicaof <host> <port>` directive's master, if any.
pub fn parse_replicaof(value: &str) -> Option<(String, u16)> {
    let mut words = value.split_whitespace();
    let host = words.next()?;
    let port = words.next()?.parse().ok()?;
    Some((host.to_string(), port))
}

/// REPLICAOF NO ONE: the link ends and this server is a master with a
/// new history; the master's becomes replid2, so the other replicas of
/// that master can continue from here (PSYNC2).
pub fn stop(shard: &Rc<Shard>) {
    let server = &shard.server;
    let repl = &server.repl;
    if !repl.is_replica.load(Ordering::SeqCst) {
        return;
    }
    repl.generation.fetch_add(1, Ordering::SeqCst);
    let old = {
        let mut st = repl.state();
        st.shift_replid();
        st.master.take()
    };
    close_master_client(shard, old.and_then(|l| l.client));
    repl.link_up.store(false, Ordering::SeqCst);
    repl.is_replica.store(false, Ordering::SeqCst);
    repl.start_stream(shard);
}

/// Ends the stream of a master this server no longer follows, at once:
/// nothing more of it is applied.
fn close_master_client(shard: &Rc<Shard>, client: Option<(usize, u64)>) {
    if let Some((s, id)) = client {
        shard.post_with(s, move |sh| {
            if let Some(meta) = sh.clients.borrow().get(&id) {
                meta.kill();
            }
        });
    }
}

/// The link task: a session with the master, and again a second after it
/// ends, until REPLICAOF changes.
async fn run(shard: Rc<Shard>, generation: u64) {
    let repl = &shard.server.repl;
    loop {
        if repl.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        match session(&shard, generation).await {
            Err(LinkError::Superseded) => return,
            Err(e) => warn!("{e}"),
            Ok(()) => {}
        }
        if repl.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let was_up = repl.link_up.swap(false, Ordering::SeqCst);
        set_link(repl, |l| {
            if was_up || l.down_since_ms == 0 {
                l.down_since_ms = now_ms();
            }
            l.state = LinkState::Connect;
        });
        if was_up {
            info!("Connection with master lost.");
        }
        sleep(Duration::from_secs(1)).await;
    }
}

fn set_link(repl: &Replication, f: impl FnOnce(&mut Link)) {
    if let Some(link) = repl.state().master.as_mut() {
        f(link);
    }
}

/// The socket to the master, with a read buffer.
struct LinkIo {
    poller: Rc<crate::server::poller::Poller>,
    stream: TcpStream,
    ready: Rc<Readiness>,
    buf: Vec<u8>,
    /// Timeout for reads (repl-timeout).
    timeout: Duration,
}

impl LinkIo {
    async fn connect(shard: &Shard, addr: SocketAddr, timeout: Duration) -> Result<LinkIo> {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        sock.set_nonblocking(true)?;
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        let stream: TcpStream = sock.into();
        let ready = shard.poller.register(stream.as_raw_fd())?;
        ready.clear_writable();
        let io = LinkIo { poller: shard.poller.clone(), stream, ready, buf: Vec::new(), timeout };
        match select(std::pin::pin!(io.ready.writable()), std::pin::pin!(sleep(timeout))).await {
            Either::Left(_) => {}
            Either::Right(_) => return Err(LinkError::Protocol("Timeout connecting to the MASTER...".into())),
        }
        if let Some(e) = socket2::SockRef::from(&io.stream).take_error()? {
            return Err(e.into());
        }
        let _ = io.stream.set_nodelay(true);
        Ok(io)
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let mut sent = 0;
        while sent < data.len() {
            self.ready.clear_writable();
            match (&self.stream).write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match select(std::pin::pin!(self.ready.writable()), std::pin::pin!(sleep(self.timeout))).await {
                        Either::Left(_) => {}
                        Either::Right(_) => return Err(LinkError::Protocol("Timeout writing to MASTER".into())),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads what the socket has into `buf`, waiting up to `wait`;
    /// Ok(0): nothing came in time.
    async fn fill(&mut self, wait: Duration) -> Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            self.ready.clear_readable();
            match (&self.stream).read(&mut chunk) {
                Ok(0) => return Err(LinkError::Protocol("Connection with master lost (EOF).".into())),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if n == chunk.len() {
                        self.ready.set_readable();
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match select(std::pin::pin!(self.ready.readable()), std::pin::pin!(sleep(wait))).await {
                        Either::Left(_) => {
                            self.ready.take_pushed();
                        }
                        Either::Right(_) => return Ok(0),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One reply line, without its CRLF; the newlines a master sends to
    /// keep the link alive while it prepares the RDB are skipped.
    async fn line(&mut self) -> Result<String> {
        let deadline = Instant::now() + self.timeout;
        loop {
            while self.buf.first() == Some(&b'\n') {
                self.buf.remove(0);
            }
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=at).collect();
                let text = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_string();
                return Ok(text);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(LinkError::Protocol("Master sent an overlong reply line".into()));
            }
            if self.fill(Duration::from_secs(1)).await? == 0 && Instant::now() >= deadline {
                return Err(LinkError::Protocol("Timeout receiving a reply from MASTER".into()));
            }
        }
    }

    async fn command(&mut self, words: &[&[u8]]) -> Result<String> {
        let op = crate::journal::Op::new(0, words.iter().copied());
        self.write_all(&op.resp).await?;
        self.line().await
    }
}

impl Drop for LinkIo {
    fn drop(&mut self) {
        // The shard's poller forgets the socket before it closes.
        self.poller.deregister(self.stream.as_raw_fd());
    }
}

fn check_generation(repl: &Replication, generation: u64) -> Result<()> {
    if repl.generation.load(Ordering::SeqCst) == generation { Ok(()) } else { Err(LinkError::Superseded) }
}

/// One connection to the master, from connect to the link's end.
async fn session(shard: &Rc<Shard>, generation: u64) -> Result<()> {
    let server = shard.server.clone();
    let repl = &server.repl;
    let Some((host, port)) = repl.state().master.as_ref().map(|l| (l.host.clone(), l.port)) else {
        return Err(LinkError::Superseded);
    };
    let timeout = Duration::from_secs(server.config(|c| c.int("repl-timeout")).max(1) as u64);
    info!("Connecting to MASTER {host}:{port}");
    set_link(repl, |l| l.state = LinkState::Connecting);
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| LinkError::Protocol(format!("Unable to connect to MASTER: can't resolve {host}")))?;
    info!("MASTER <-> REPLICA sync started");
    let mut io = LinkIo::connect(shard, addr, timeout)
        .await
        .map_err(|e| LinkError::Protocol(format!("Unable to connect to MASTER: {e}")))?;
    check_generation(repl, generation)?;
    info!("Non blocking connect for SYNC fired the event.");
    set_link(repl, |l| {
        l.state = LinkState::Handshake;
        l.last_io_ms = now_ms();
    });
    let pong = io.command(&[b"PING"]).await?;
    if pong.starts_with('-')
        && !["-NOAUTH", "-NOPERM", "-ERR operation not permitted"].iter().any(|p| pong.starts_with(p))
    {
        return Err(LinkError::Protocol(format!("Error reply to PING from master: '{pong}'")));
    }
    info!("Master replied to PING, replication can continue...");
    let (user, pass, announce_ip, announce_port, own_port) = server.config(|c| {
        (
            c.str("masteruser").to_string(),
            c.str("masterauth").to_string(),
            c.str("replica-announce-ip").to_string(),
            c.int("replica-announce-port"),
            c.int("port"),
        )
    });
    if !pass.is_empty() {
        let reply = if user.is_empty() {
            io.command(&[b"AUTH", pass.as_bytes()]).await?
        } else {
            io.command(&[b"AUTH", user.as_bytes(), pass.as_bytes()]).await?
        };
        if reply.starts_with('-') {
            return Err(LinkError::Protocol(format!("Unable to AUTH to MASTER: {reply}")));
        }
    }
    let listening = if announce_port > 0 { announce_port } else { own_port }.to_string();
    let reply = io.command(&[b"REPLCONF", b"listening-port", listening.as_bytes()]).await?;
    if reply.starts_with('-') {
        info!("(Non critical) Master does not understand REPLCONF listening-port: {reply}");
    }
    if !announce_ip.is_empty() {
        let reply = io.command(&[b"REPLCONF", b"ip-address", announce_ip.as_bytes()]).await?;
        if reply.starts_with('-') {
            info!("(Non critical) Master does not understand REPLCONF ip-address: {reply}");
        }
    }
    let reply = io.command(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
    if reply.starts_with('-') {
        info!("(Non critical) Master does not understand REPLCONF capa: {reply}");
    }
    check_generation(repl, generation)?;
    // Continue from what this server has, if it has a history.
    let cached = {
        let st = repl.state();
        st.backlog.as_ref().map(|b| (st.replid.clone(), b.end() + 1))
    };
    let (replid, offset) = match &cached {
        Some((replid, next)) => {
            info!("Trying a partial resynchronization (request {replid}:{next}).");
            (replid.clone(), next.to_string())
        }
        None => {
            info!("Partial resynchronization not possible (no cached master)");
            ("?".to_string(), "-1".to_string())
        }
    };
    let reply = io.command(&[b"PSYNC", replid.as_bytes(), offset.as_bytes()]).await?;
    check_generation(repl, generation)?;
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC") {
        let mut words = rest.split_whitespace();
        let (Some(id), Some(off)) = (words.next(), words.next().and_then(|o| o.parse::<u64>().ok())) else {
            return Err(LinkError::Protocol(format!("Master replied with wrong +FULLRESYNC syntax: {reply}")));
        };
        info!("Full resync from master: {id}:{off}");
        full_sync(shard, &mut io, generation, id, off).await?;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        info!("Successful partial resynchronization with master.");
        let new_id = rest.trim();
        if !new_id.is_empty() {
            let mut st = repl.state();
            if st.replid != new_id {
                st.shift_replid_to(new_id);
                info!("Master replication ID changed to {new_id}");
                drop(st);
                // Its own replicas learn the new history by reconnecting.
                drop_replicas(shard);
            }
        }
        info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(LinkError::Protocol(format!(
            "Master is currently unable to PSYNC but should be in the future: {reply}"
        )));
    } else {
        return Err(LinkError::Protocol(format!("Unexpected reply to PSYNC from master: {reply}")));
    }
    stream(shard, io, generation).await
}

/// Closes this server's own replicas (its history changed under them).
fn drop_replicas(shard: &Rc<Shard>) {
    let replicas: Vec<(usize, u64)> =
        shard.server.repl.state().replicas.drain(..).map(|r| (r.shard, r.client_id)).collect();
    for (s, id) in replicas {
        shard.post_with(s, move |sh| {
            if let Some(meta) = sh.clients.borrow().get(&id) {
                meta.kill();
            }
        });
    }
}

/// Where a transfer goes.
enum Sink {
    File(std::path::PathBuf, std::fs::File),
    Memory(Vec<u8>),
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::File(_, f) => f.write_all(data),
            Sink::Memory(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
        }
    }
}

/// Receives the master's RDB and loads it in place of the dataset.
async fn full_sync(shard: &Rc<Shard>, io: &mut LinkIo, generation: u64, replid: &str, offset: u64) -> Result<()> {
    let server = shard.server.clone();
    let repl = &server.repl;
    set_link(repl, |l| {
        l.state = LinkState::Transfer;
        l.transfer_read = 0;
        l.transfer_size = -1;
    });
    let header = io.line().await?;
    let Some(size) = header.strip_prefix('$') else {
        return Err(LinkError::Protocol(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{header}'), are you sure the host and port are right?"
        )));
    };
    let mark = size.strip_prefix("EOF:").map(|m| m.as_bytes().to_vec());
    let length = match &mark {
        Some(m) if m.len() == 40 => None,
        Some(_) => return Err(LinkError::Protocol(format!("Bad EOF mark from MASTER: {header}"))),
        None => Some(
            size.parse::<u64>().map_err(|_| LinkError::Protocol(format!("Bad bulk length from MASTER: {header}")))?,
        ),
    };
    let to_disk = server.config(|c| c.str("repl-diskless-load") == "disabled");
    let temp = std::path::PathBuf::from(format!("temp-{}.{}.rdb", now_ms() / 1000, std::process::id()));
    let mut sink = if to_disk {
        let file = std::fs::File::create(&temp).map_err(|e| {
            LinkError::Protocol(format!("Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}"))
        })?;
        Sink::File(temp.clone(), file)
    } else {
        Sink::Memory(Vec::new())
    };
    let _cleanup = crate::server::connection::scopeguard(|| drop(std::fs::remove_file(&temp)));
    let target = if to_disk { "disk" } else { "memory" };
    match length {
        Some(n) => info!("MASTER <-> REPLICA sync: receiving {n} bytes from master to {target}"),
        None => info!("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to {target}"),
    }
    set_link(repl, |l| l.transfer_size = length.map_or(0, |n| n as i64));
    let mut read = 0u64;
    let mut last_report = Instant::now();
    loop {
        check_generation(repl, generation)?;
        // What of the buffer is the file's: all of it up to the length,
        // or up to the end mark (bytes that may be the start of the mark
        // wait for more).
        let (take, end) = match (length, &mark) {
            (Some(n), _) => {
                let take = io.buf.len().min((n - read) as usize);
                (take, read + take as u64 >= n)
            }
            (None, Some(m)) => match io.buf.windows(m.len()).position(|w| w == m.as_slice()) {
                Some(at) => (at, true),
                None => (io.buf.len().saturating_sub(m.len() - 1), false),
            },
            (None, None) => unreachable!("a transfer has a length or a mark"),
        };
        sink.write(&io.buf[..take]).map_err(LinkError::Io)?;
        let skip = if end { mark.as_ref().map_or(0, Vec::len) } else { 0 };
        io.buf.drain(..take + skip);
        read += take as u64;
        set_link(repl, |l| {
            l.transfer_read = read;
            l.last_io_ms = now_ms();
        });
        if end {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            info!("MASTER <-> REPLICA sync: {read} bytes received");
        }
        if io.fill(io.timeout).await? == 0 {
            return Err(LinkError::Protocol("Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.".into()));
        }
    }
    drop_replicas(shard);
    info!("MASTER <-> REPLICA sync: Flushing old data");
    server.loading.store(true, Ordering::SeqCst);
    crate::persistence::empty_all(shard).await;
    info!("MASTER <-> REPLICA sync: Loading DB in memory");
    let how = crate::persistence::rdb::Load { replace: false, keep_expired: true };
    let loaded = match sink {
        Sink::File(path, file) => {
            drop(file);
            let dbfilename = server.config(|c| c.str("dbfilename").to_string());
            match std::fs::rename(&path, &dbfilename) {
                Ok(()) => {
                    crate::persistence::rdb::load_with(shard, std::path::Path::new(&dbfilename), how).await.map(drop)
                }
                Err(e) => Err(crate::persistence::rdb::LoadError::Io(e.to_string())),
            }
        }
        Sink::Memory(data) => {
            server.load_progress.begin(data.len() as u64);
            crate::persistence::rdb::load_data(shard, &data, how).await.map(drop)
        }
    };
    crate::persistence::finish_loading(shard).await;
    if let Err(e) = loaded {
        warn!("Failed trying to load the MASTER synchronization DB from disk: {e}");
        crate::persistence::empty_all(shard).await;
        return Err(LinkError::Protocol("MASTER <-> REPLICA sync: loading failed".into()));
    }
    {
        let mut st = repl.state();
        st.replid = replid.to_string();
        st.replid2 = NO_ID.into();
        st.second_offset = -1;
        let size = server.config(|c| c.int("repl-backlog-size")).max(1) as usize;
        st.backlog = Some(Backlog::new(offset, size));
        st.offset = offset;
        st.master_db = 0;
    }
    info!("MASTER <-> REPLICA sync: Finished with success");
    Ok(())
}

/// `REPLCONF ACK <offset>`.
fn ack(offset: u64) -> Vec<u8> {
    let n = offset.to_string();
    crate::journal::Op::new(0, [&b"REPLCONF"[..], b"ACK", n.as_bytes()].into_iter()).resp
}

/// Applies the master's stream until the link ends.
async fn stream(shard: &Rc<Shard>, mut io: LinkIo, generation: u64) -> Result<()> {
    let server = shard.server.clone();
    let repl = &server.repl;
    let id = server.next_client_id();
    let addr = io.stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let laddr = io.stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let meta = Rc::new(ClientMeta::new(id, addr, laddr, io.stream.as_raw_fd()));
    meta.role.set(Role::Master);
    let _ = meta.ready.set(io.ready.clone());
    shard.clients.borrow_mut().insert(id, meta.clone());
    let _registered = crate::server::connection::scopeguard(|| {
        shard.clients.borrow_mut().remove(&id);
    });
    let mut client = Client::new(shard.clone(), meta.clone());
    client.authenticated = true;
    meta.db.set(repl.state().master_db);
    let (mut out, mut batch, mut parser) = (Vec::new(), Batch::default(), Parser::default());
    let limits = Limits { max_bulk: 1 << 40, authenticated: true };
    repl.link_up.store(true, Ordering::SeqCst);
    set_link(repl, |l| {
        l.state = LinkState::Connected;
        l.last_io_ms = now_ms();
        l.down_since_ms = 0;
        l.client = Some((shard.id, id));
    });
    let offset = repl.state().offset();
    io.write_all(&ack(offset)).await?;
    let mut last_ack = Instant::now();
    let mut last_data = Instant::now();
    loop {
        check_generation(repl, generation)?;
        if meta.killed.get() {
            return Err(LinkError::Protocol("Connection with master closed".into()));
        }
        // Every complete command in the buffer, in order.
        let mut at = 0;
        let mut applied = 0;
        while let Some(frame) = parser
            .parse(&io.buf[at..], limits)
            .map_err(|e| LinkError::Protocol(format!("Protocol error from master: {e}")))?
        {
            let data = if frame.inline { parser.scratch() } else { &io.buf[at..] };
            let args = Args::new(data, parser.spans());
            if args.len() >= 2
                && args.get(0).eq_ignore_ascii_case(b"replconf")
                && args.get(1).eq_ignore_ascii_case(b"getack")
            {
                batch.flush(&client, &mut out).await;
                repl.state().master_db = client.db();
                let done = commit(&server, &io.buf[at - applied..at]);
                applied = 0;
                io.write_all(&ack(done)).await?;
                last_ack = Instant::now();
            } else if args.len() > 0 {
                dispatch(&mut client, &mut out, &mut batch, args).await;
                out.clear();
            }
            at += frame.consumed;
            applied += frame.consumed;
        }
        batch.flush(&client, &mut out).await;
        out.clear();
        repl.state().master_db = client.db();
        commit(&server, &io.buf[at - applied..at]);
        io.buf.drain(..at);
        if last_ack.elapsed() >= Duration::from_secs(1) {
            last_ack = Instant::now();
            let offset = repl.state().offset();
            io.write_all(&ack(offset)).await?;
        }
        let got = io.fill(Duration::from_secs(1)).await?;
        if got > 0 {
            last_data = Instant::now();
            let read_total = repl.state().offset() + io.buf.len() as u64;
            set_link(repl, |l| {
                l.last_io_ms = now_ms();
                l.read_offset = read_total;
            });
        } else if last_data.elapsed() >= io.timeout {
            return Err(LinkError::Protocol("MASTER timeout: no data nor PING received...".into()));
        }
    }
}

/// The stream's bytes of commands applied: into the backlog (this
/// server's own replicas get them as they are). Returns the offset.
fn commit(server: &crate::server::shared::Shared, applied: &[u8]) -> u64 {
    if !applied.is_empty() {
        server.repl.feed(&server.hot, applied);
    }
    server.repl.state().offset()
}

impl super::State {
    /// The master continues under a new id: the old one becomes replid2.
    fn shift_replid_to(&mut self, replid: &str) {
        self.replid2 = std::mem::replace(&mut self.replid, replid.to_string());
        self.second_offset = self.offset() as i64 + 1;
    }
}
