//! The listening sockets: one SO_REUSEPORT listener per shard and
//! address, so the kernel spreads new connections over the cores. CONFIG
//! SET port / bind opens the new set before anything changes (a port in
//! use refuses the whole CONFIG SET) and then swaps each shard's.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use tracing::warn;

use super::shard::Shard;
use super::{StartError, connection, poller};

/// Addresses from `bind`; a leading '-' marks one that may be unavailable.
/// Port 0 listens nowhere, as in Redis.
fn bind_addrs(bind: &str, port: u16) -> Result<Vec<SocketAddr>, StartError> {
    let mut addrs = Vec::new();
    if port == 0 {
        return Ok(addrs);
    }
    for item in bind.split_whitespace() {
        let (optional, host) = match item.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, item),
        };
        let host = match host {
            "*" => "0.0.0.0",
            "::*" => "::",
            h => h,
        };
        let resolved = (host, port).to_socket_addrs().ok().and_then(|mut a| a.next());
        match resolved {
            Some(a) => addrs.push(a),
            None if optional => {}
            None => return Err(StartError::BadBind(item.to_string())),
        }
    }
    Ok(addrs)
}

/// The address is first bound exclusively: SO_REUSEPORT would otherwise
/// let a second server share a port that is already taken.
fn check_free(addr: SocketAddr) -> Result<(), StartError> {
    TcpListener::bind(addr).map(drop).map_err(|source| StartError::Listen { addr: addr.to_string(), source })
}

fn listener(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Opens every shard's listeners on `bind` and `port`: the addresses and,
/// per shard, one listener for each.
pub fn open(
    bind: &str,
    port: u16,
    backlog: i32,
    shards: usize,
) -> Result<(Vec<SocketAddr>, Vec<Vec<TcpListener>>), StartError> {
    let addrs = bind_addrs(bind, port)?;
    for &a in &addrs {
        check_free(a)?;
    }
    let mut listeners = Vec::with_capacity(shards);
    for _ in 0..shards {
        let mut mine = Vec::with_capacity(addrs.len());
        for &a in &addrs {
            mine.push(listener(a, backlog).map_err(|source| StartError::Listen { addr: a.to_string(), source })?);
        }
        listeners.push(mine);
    }
    Ok((addrs, listeners))
}

/// Makes `listeners` the shard's: their accept loops start, and the ones
/// they replace stop (their sockets close; accepted connections stay).
pub fn install(shard: &Rc<Shard>, listeners: Vec<TcpListener>) {
    let loops = listeners.into_iter().map(|l| poller::spawn(accept_loop(shard.clone(), l))).collect();
    // Dropping a task cancels it.
    drop(shard.accepting.replace(loops));
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    // With data to load, clients are served -LOADING meanwhile; with
    // none they wait in the backlog until startup is over (the AOF's
    // base and manifest exist), as Redis accepts nobody before its event
    // loop runs unless a load lets it process events.
    if !shard.server.loading.load(std::sync::atomic::Ordering::SeqCst) {
        shard.started().await;
    }
    let fd = listener.as_raw_fd();
    let Ok(ready) = shard.poller.register(fd) else {
        warn!("Could not watch the listening socket");
        return;
    };
    let _registered = connection::scopeguard(|| shard.poller.deregister(fd));
    loop {
        ready.clear_readable();
        match listener.accept() {
            Ok((stream, _)) => {
                poller::spawn(connection::serve(shard.clone(), stream)).detach();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ready.readable().await,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!("Accepting client connection: {e}");
                poller::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
