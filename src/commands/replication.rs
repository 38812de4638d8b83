//! Replication commands: REPLICAOF SLAVEOF REPLCONF PSYNC SYNC WAIT ROLE.

use futures::future::LocalBoxFuture;
use tracing::info;

use super::{Handler, Spec};
use crate::command::{ADMIN, ALLOW_BUSY, Args, FAST, Keys, LOADING, NO_MULTI, NOSCRIPT, STALE};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::replication::master::Psync;
use crate::server::client::Client;

/// REPLICAOF host port | NO ONE.
fn replicaof(client: &mut Client, args: Args) -> CmdResult {
    let server = client.shard.server.clone();
    let repl = &server.repl;
    let who = client.meta.describe();
    if args.get(1).eq_ignore_ascii_case(b"no") && args.get(2).eq_ignore_ascii_case(b"one") {
        if repl.is_replica.load(std::sync::atomic::Ordering::SeqCst) {
            crate::replication::replica::stop(&client.shard);
            info!("MASTER MODE enabled (user request from '{who}')");
        }
        return Ok(Reply::Ok);
    }
    let port = args.int(2)?;
    let port = u16::try_from(port).map_err(|_| CmdError::err("Invalid master port"))?;
    let host = args.str(1);
    let same = repl.state().master.as_ref().is_some_and(|l| l.host.eq_ignore_ascii_case(&host) && l.port == port);
    if same {
        info!(
            "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
        );
        return Ok(Reply::Status("OK Already connected to specified master".into()));
    }
    crate::replication::replica::start(&client.shard, host.clone(), port);
    info!("REPLICAOF {host}:{port} enabled (user request from '{who}')");
    Ok(Reply::Ok)
}

/// REPLCONF option value ...: what a replica tells its master before and
/// after PSYNC.
fn replconf(client: &mut Client, args: Args) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for i in (1..args.len()).step_by(2) {
        let (option, value) = (args.get(i).to_ascii_lowercase(), args.get(i + 1));
        match option.as_slice() {
            b"listening-port" => {
                let port = args.int(i + 1)?;
                client.replconf.listening_port = u16::try_from(port).map_err(|_| CmdError::NotInteger)?;
            }
            b"ip-address" => client.replconf.ip = Some(String::from_utf8_lossy(value).into_owned()),
            b"capa" => {
                if value.eq_ignore_ascii_case(b"eof") {
                    client.replconf.capa_eof = true;
                } else if value.eq_ignore_ascii_case(b"psync2") {
                    client.replconf.capa_psync2 = true;
                }
            }
            // Only a replica's own stream carries ACKs, and it reads them
            // itself; GETACK is for replicas. Neither is answered.
            b"ack" | b"getack" => return Ok(Reply::Nothing),
            b"rdb-only" | b"rdb-filter-only" => {}
            _ => {
                return Err(CmdError::err(format!(
                    "Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(args.get(i))
                )));
            }
        }
    }
    Ok(Reply::Ok)
}

/// PSYNC replid offset, and SYNC (an old replica's full sync): the
/// connection becomes the replica's stream once this reply slot passes.
fn psync(client: &mut Client, args: Args) -> CmdResult {
    let repl = &client.shard.server.repl;
    if repl.is_replica.load(std::sync::atomic::Ordering::SeqCst)
        && !repl.link_up.load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(CmdError::Raw("NOMASTERLINK Can't SYNC while not connected with my master".into()));
    }
    let request = if args.len() >= 3 {
        let offset = args.int(2)?;
        Psync { replid: Some(args.str(1)), offset }
    } else {
        Psync { replid: None, offset: -1 }
    };
    client.psync = Some(request);
    Ok(Reply::Nothing)
}

/// WAIT numreplicas timeout.
fn wait<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        if client.shard.server.repl.is_replica.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CmdError::err(
                "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
            ));
        }
        let needed = args.int(1)?.max(0) as usize;
        let timeout = args.int(2).map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
        if timeout < 0 {
            return Err(CmdError::err("timeout is negative"));
        }
        let count = crate::replication::master::wait(client, needed, timeout).await;
        Ok(Reply::Int(count as i64))
    })
}

fn role(client: &mut Client, _args: Args) -> CmdResult {
    Ok(crate::replication::role(&client.shard.server))
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("replicaof", 3, ADMIN | NOSCRIPT | STALE, Keys::None, Handler::Conn(replicaof)),
    Spec::new("slaveof", 3, ADMIN | NOSCRIPT | STALE, Keys::None, Handler::Conn(replicaof)),
    Spec::new("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, Keys::None, Handler::Conn(replconf)),
    Spec::new("psync", -3, ADMIN | NOSCRIPT | NO_MULTI, Keys::None, Handler::Conn(psync)),
    Spec::new("sync", 1, ADMIN | NOSCRIPT | NO_MULTI, Keys::None, Handler::Conn(psync)),
    Spec::new("wait", 3, NOSCRIPT, Keys::None, Handler::Async(wait)),
    Spec::new("role", 1, NOSCRIPT | LOADING | STALE | FAST, Keys::None, Handler::Conn(role)),
];
