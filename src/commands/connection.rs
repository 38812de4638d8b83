//! Connection commands: PING ECHO QUIT HELLO AUTH SELECT RESET CLIENT.

use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{
    ADMIN, ALLOW_BUSY, Args, CONTAINER, FAST, Keys, LOADING, NO_AUTH, NO_QUEUE, NOSCRIPT, STALE, SUBSCRIBE_MODE,
    SWITCHES_DB,
};
use crate::protocol::{CmdError, CmdResult, Proto, Reply};
use crate::server::client::{Client, ReplyMode};

pub use crate::server::REDIS_VERSION;

fn ping(client: &mut Client, args: Args) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::arity("ping"));
    }
    // A RESP2 subscriber can only read pushes: PING answers in that shape.
    if client.proto() == Proto::Resp2 && client.subs.any() {
        let payload = if args.len() == 2 { args.get(1) } else { b"" };
        return Ok(Reply::Push(vec![Reply::text("pong"), Reply::bulk(payload)]));
    }
    Ok(if args.len() == 2 { Reply::bulk(args.get(1)) } else { Reply::status("PONG") })
}

fn echo(_client: &mut Client, args: Args) -> CmdResult {
    Ok(Reply::bulk(args.get(1)))
}

fn quit(client: &mut Client, _args: Args) -> CmdResult {
    client.close_after_reply = true;
    Ok(Reply::Ok)
}

fn check_password(client: &Client, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    let ok = user == b"default" && client.shard.server.requirepass().is_none_or(|p| p.as_bytes() == pass);
    if ok { Ok(()) } else { Err(CmdError::WrongPass) }
}

fn auth(client: &mut Client, args: Args) -> CmdResult {
    let (user, pass) = match args.len() {
        2 => {
            if client.shard.server.requirepass().is_none() {
                return Err(CmdError::AuthNotConfigured);
            }
            (&b"default"[..], args.get(1))
        }
        3 => (args.get(1), args.get(2)),
        _ => return Err(CmdError::Syntax),
    };
    check_password(client, user, pass)?;
    client.authenticated = true;
    Ok(Reply::Ok)
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn set_name(client: &Client, name: &[u8]) -> Result<(), CmdError> {
    if !valid_client_name(name) {
        return Err(CmdError::err("Client names cannot contain spaces, newlines or special characters."));
    }
    let name = (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned());
    *client.meta.name.borrow_mut() = name;
    Ok(())
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]
fn hello(client: &mut Client, args: Args) -> CmdResult {
    let mut proto = None;
    let mut j = 1;
    if args.len() >= 2 {
        let v = args.int(1).map_err(|_| CmdError::err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::NoProto);
        }
        proto = Some(if v == 3 { Proto::Resp3 } else { Proto::Resp2 });
        j = 2;
    }
    let (mut credentials, mut name) = (None, None);
    while j < args.len() {
        let more = args.len() - 1 - j;
        if args.is(j, "AUTH") && more >= 2 {
            credentials = Some((args.get(j + 1), args.get(j + 2)));
            j += 3;
        } else if args.is(j, "SETNAME") && more >= 1 {
            name = Some(args.get(j + 1));
            j += 2;
        } else {
            return Err(CmdError::err(format!("Syntax error in HELLO option '{}'", args.str(j))));
        }
    }
    if let Some((user, pass)) = credentials {
        check_password(client, user, pass)?;
        client.authenticated = true;
    }
    if !client.authenticated {
        return Err(CmdError::Raw(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    if let Some(n) = name {
        set_name(client, n)?;
    }
    if let Some(p) = proto {
        client.meta.proto.set(p);
    }
    let resp = if client.proto() == Proto::Resp3 { 3 } else { 2 };
    Ok(Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_VERSION)),
        (Reply::text("proto"), Reply::Int(resp)),
        (Reply::text("id"), Reply::Int(client.meta.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (
            Reply::text("role"),
            Reply::text(if client.shard.server.repl.is_replica.load(std::sync::atomic::Ordering::Relaxed) {
                "replica"
            } else {
                "master"
            }),
        ),
        (Reply::text("modules"), Reply::Array(vec![])),
    ]))
}

fn select(client: &mut Client, args: Args) -> CmdResult {
    let n = args.db_index(1, client.shard.databases())?;
    client.meta.db.set(n);
    Ok(Reply::Ok)
}

fn reset<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        client.multi = None;
        client.meta.multi_len.set(-1);
        client.unwatch_all().await;
        client.unsubscribe_all();
        client.disable_tracking().await;
        if client.meta.monitor.replace(false) {
            client.shard.remove_monitor(client.meta.id);
        }
        reset_state(client)
    })
}

fn reset_state(client: &mut Client) -> CmdResult {
    client.meta.db.set(0);
    client.meta.proto.set(Proto::Resp2);
    *client.meta.name.borrow_mut() = None;
    client.meta.no_evict.set(false);
    client.meta.no_touch.set(false);
    client.reply_mode = ReplyMode::On;
    client.authenticated = client.shard.server.requirepass().is_none();
    Ok(Reply::status("RESET"))
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "HELP",
    "    Prints this help.",
];

/// Which clients CLIENT KILL / LIST select.
#[derive(Clone, Default)]
struct ClientFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    user: Option<String>,
    kind: Option<String>,
    max_age: Option<i64>,
    skip: Option<u64>,
}

impl ClientFilter {
    fn matches(&self, m: &crate::server::client::ClientMeta, now: i64) -> bool {
        self.id.is_none_or(|id| id == m.id)
            && self.addr.as_ref().is_none_or(|a| *a == m.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == m.laddr)
            && self.user.as_ref().is_none_or(|u| u == "default")
            && self.kind.as_ref().is_none_or(|t| t == m.kind() || (t == "slave" && m.kind() == "replica"))
            && self.max_age.is_none_or(|age| (now - m.created_ms) / 1000 >= age)
            && self.skip != Some(m.id)
    }
}

fn parse_kill_filter(client: &Client, args: Args) -> Result<ClientFilter, CmdError> {
    let mut f = ClientFilter { skip: Some(client.meta.id), ..Default::default() };
    let mut j = 2;
    while j < args.len() {
        if j + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        let value = args.str(j + 1);
        match args.keyword(j).as_str() {
            "ID" => {
                let id = args
                    .int(j + 1)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| CmdError::err("client-id should be greater than 0"))?;
                f.id = Some(id as u64);
            }
            "TYPE" => {
                let t = value.to_ascii_lowercase();
                if !matches!(t.as_str(), "normal" | "master" | "replica" | "slave" | "pubsub") {
                    return Err(CmdError::err(format!("Unknown client type '{value}'")));
                }
                f.kind = Some(t);
            }
            "ADDR" => f.addr = Some(value),
            "LADDR" => f.laddr = Some(value),
            // Without ACL the one user is `default`.
            "USER" if value != "default" => return Err(CmdError::err(format!("No such user '{value}'"))),
            "USER" => f.user = Some(value),
            "MAXAGE" => f.max_age = Some(args.int(j + 1)?),
            "SKIPME" => match value.to_ascii_lowercase().as_str() {
                "yes" => f.skip = Some(client.meta.id),
                "no" => f.skip = None,
                _ => return Err(CmdError::Syntax),
            },
            _ => return Err(CmdError::Syntax),
        }
        j += 2;
    }
    Ok(f)
}

fn on_off(args: Args, i: usize) -> Result<bool, CmdError> {
    match args.keyword(i).as_str() {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(CmdError::Syntax),
    }
}

fn client_arity(sub: &str) -> CmdError {
    CmdError::sub_arity("client", sub)
}

/// MONITOR: from now on this client gets every command run (see
/// `server::monitor`).
fn monitor(client: &mut Client, _args: Args) -> CmdResult {
    if client.in_exec {
        return Err(CmdError::err("MONITOR isn't allowed for DENY BLOCKING client"));
    }
    client.shard.add_monitor(client.meta.id);
    client.meta.monitor.set(true);
    Ok(Reply::Ok)
}

fn client<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let sub = args.keyword(1);
        let n = args.len();
        let exact = |want: usize| {
            if n == want { Ok(()) } else { Err(client_arity(&sub)) }
        };
        match sub.as_str() {
            "HELP" if n == 2 => Ok(Reply::help(CLIENT_HELP)),
            "ID" => exact(2).map(|_| Reply::Int(client.meta.id as i64)),
            "GETNAME" => {
                exact(2)?;
                Ok(client.meta.name.borrow().as_ref().map_or(Reply::Null, |n| Reply::text(n.clone())))
            }
            "SETNAME" => {
                exact(3)?;
                set_name(client, args.get(2)).map(|_| Reply::Ok)
            }
            "INFO" => exact(2).map(|_| Reply::Verbatim(format!("{}\n", client.meta.describe()).into())),
            "PAUSE" if n == 3 || n == 4 => {
                let all = match n {
                    4 if args.is(3, "WRITE") => false,
                    4 if !args.is(3, "ALL") => return Err(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
                    _ => true,
                };
                let ms = args.int(2).map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
                if ms < 0 {
                    return Err(CmdError::err("timeout is negative"));
                }
                let server = &client.shard.server;
                server.pause.start(if ms > 0 { crate::server::shared::now_ms() + ms } else { 0 }, all);
                client.shard.broadcast(|sh| sh.pause_changed()).await;
                Ok(Reply::Ok)
            }
            "UNPAUSE" => {
                exact(2)?;
                client.shard.server.pause.stop();
                client.shard.broadcast(|sh| sh.pause_changed()).await;
                Ok(Reply::Ok)
            }
            "NO-EVICT" => {
                exact(3)?;
                client.meta.no_evict.set(on_off(args, 2)?);
                Ok(Reply::Ok)
            }
            "NO-TOUCH" => {
                exact(3)?;
                client.meta.no_touch.set(on_off(args, 2)?);
                Ok(Reply::Ok)
            }
            "REPLY" => {
                exact(3)?;
                match args.keyword(2).as_str() {
                    "ON" => {
                        client.reply_mode = ReplyMode::On;
                        Ok(Reply::Ok)
                    }
                    "OFF" => {
                        client.reply_mode = ReplyMode::Off;
                        Ok(Reply::Nothing)
                    }
                    "SKIP" => {
                        if client.reply_mode != ReplyMode::Off {
                            client.reply_mode = ReplyMode::SkipNext;
                        }
                        Ok(Reply::Nothing)
                    }
                    _ => Err(CmdError::Syntax),
                }
            }
            "LIST" => {
                let mut filter = ClientFilter::default();
                let mut ids: Option<Vec<u64>> = None;
                let mut j = 2;
                while j < n {
                    if args.is(j, "TYPE") && j + 1 < n {
                        filter.kind = Some(args.str(j + 1).to_ascii_lowercase());
                        j += 2;
                    } else if args.is(j, "ID") && j + 1 < n {
                        let list = (j + 1..n)
                            .map(|i| args.int(i).ok().filter(|&v| v > 0).map(|v| v as u64))
                            .collect::<Option<Vec<_>>>();
                        ids = Some(list.ok_or_else(|| CmdError::err("Invalid client ID"))?);
                        j = n;
                    } else {
                        return Err(CmdError::Syntax);
                    }
                }
                let lines = client
                    .shard
                    .broadcast(move |sh| {
                        let now = sh.now();
                        let mut metas: Vec<_> =
                            sh.clients.borrow().values().filter(|m| filter.matches(m, now)).cloned().collect();
                        metas.sort_by_key(|m| m.id);
                        metas
                            .iter()
                            .filter(|m| ids.as_ref().is_none_or(|ids| ids.contains(&m.id)))
                            .map(|m| (m.id, m.describe()))
                            .collect::<Vec<_>>()
                    })
                    .await;
                let mut all: Vec<(u64, String)> = lines.into_iter().flatten().collect();
                all.sort_by_key(|(id, _)| *id);
                let text: String = all.into_iter().map(|(_, l)| l + "\n").collect();
                Ok(Reply::Verbatim(text.into()))
            }
            "UNBLOCK" if n == 3 || n == 4 => {
                let id = args.int(2).map_err(|_| CmdError::err("value is not an integer or out of range"))?;
                let error = match n {
                    4 if args.is(3, "ERROR") => true,
                    4 if args.is(3, "TIMEOUT") => false,
                    4 => return Err(CmdError::err("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
                    _ => false,
                };
                let id = id as u64;
                let unblocked = client
                    .shard
                    .broadcast(move |sh| {
                        let clients = sh.clients.borrow();
                        let waiting = clients.get(&id).and_then(|m| m.unblock.borrow_mut().take());
                        waiting.is_some_and(|tx| tx.send(error).is_ok())
                    })
                    .await;
                Ok(Reply::Int(unblocked.into_iter().any(|u| u) as i64))
            }
            "KILL" if n == 3 => {
                let filter = ClientFilter { addr: Some(args.str(2)), ..Default::default() };
                let killed = kill_clients(client, filter).await;
                if killed == 0 { Err(CmdError::NoSuchClient) } else { Ok(Reply::Ok) }
            }
            "KILL" if n > 3 => {
                let filter = parse_kill_filter(client, args)?;
                Ok(Reply::Int(kill_clients(client, filter).await as i64))
            }
            "TRACKING" if n >= 3 => super::tracking::tracking(client, args).await,
            "CACHING" if n >= 3 => super::tracking::caching(client, args),
            "GETREDIR" if n == 2 => super::tracking::getredir(client),
            "TRACKINGINFO" if n == 2 => super::tracking::trackinginfo(client),
            // Known subcommands with the wrong number of arguments.
            "KILL" | "PAUSE" | "UNBLOCK" | "HELP" | "TRACKING" | "CACHING" | "GETREDIR" | "TRACKINGINFO" => {
                Err(client_arity(&sub))
            }
            _ => Err(CmdError::UnknownSubcommand { cmd: "CLIENT".into(), sub: args.str(1) }),
        }
    })
}

/// Kills matching clients on every shard. Killing oneself takes effect
/// after the reply, as in Redis.
async fn kill_clients(client: &mut Client, filter: ClientFilter) -> usize {
    let me = client.meta.id;
    let killed = client
        .shard
        .broadcast(move |sh| {
            let now = sh.now();
            let victims: Vec<_> = sh.clients.borrow().values().filter(|m| filter.matches(m, now)).cloned().collect();
            let mut self_killed = false;
            for m in &victims {
                if m.id == me {
                    self_killed = true;
                } else {
                    m.kill();
                }
            }
            (victims.len(), self_killed)
        })
        .await;
    if killed.iter().any(|(_, me)| *me) {
        client.close_after_reply = true;
    }
    killed.iter().map(|(n, _)| n).sum()
}

const ANY: u32 = NOSCRIPT | LOADING | STALE;

pub(super) const TABLE: &[Spec] = &[
    Spec::new("ping", -1, FAST | SUBSCRIBE_MODE, Keys::None, Handler::Conn(ping)),
    Spec::new("echo", 2, FAST | LOADING | STALE, Keys::None, Handler::Conn(echo)),
    Spec::new(
        "quit",
        -1,
        ANY | ALLOW_BUSY | FAST | NO_AUTH | NO_QUEUE | SUBSCRIBE_MODE,
        Keys::None,
        Handler::Conn(quit),
    ),
    Spec::new("auth", -2, ANY | ALLOW_BUSY | FAST | NO_AUTH, Keys::None, Handler::Conn(auth)),
    Spec::new("hello", -1, ANY | ALLOW_BUSY | FAST | NO_AUTH, Keys::None, Handler::Conn(hello)),
    Spec::new("select", 2, SWITCHES_DB | LOADING | STALE | FAST, Keys::None, Handler::Conn(select)),
    Spec::new(
        "reset",
        1,
        ANY | ALLOW_BUSY | FAST | NO_AUTH | NO_QUEUE | SUBSCRIBE_MODE,
        Keys::None,
        Handler::Async(reset),
    ),
    Spec::new("client", -2, CONTAINER | ANY, Keys::None, Handler::Async(client)).with_subcommands(&[
        "client|caching",
        "client|getname",
        "client|getredir",
        "client|help",
        "client|id",
        "client|info",
        "client|kill",
        "client|list",
        "client|no-evict",
        "client|pause",
        "client|reply",
        "client|setname",
        "client|tracking",
        "client|trackinginfo",
        "client|unblock",
        "client|unpause",
    ]),
    Spec::new("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, Handler::Conn(monitor)),
];
