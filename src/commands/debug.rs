//! DEBUG: the subcommands tests and tools rely on (SLEEP, OBJECT,
//! SET-ACTIVE-EXPIRE). Allowed according to `enable-debug-command`.

use std::sync::atomic::Ordering;

use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{ADMIN, Args, Keys, LOADING, NOSCRIPT, STALE};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::storage::{Str, Value, digest};

const HELP: &[&str] = &[
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "OBJECT <key>",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys named key:<num>. If <prefix> is specified then",
    "    it is used instead of the 'key' prefix. These are not propagated to",
    "    replicas. Cluster slots are not respected so keys not belonging to the",
    "    current node can be created in cluster mode.",
    "    Show low level info about the key and associated value.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "CONTAINED-PANIC [<key>]",
    "    Panic inside this command on the core that owns <key> (this core without",
    "    one). The panic is contained: the command fails, the core keeps serving.",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "SET-DISABLE-DENY-SCRIPTS <0|1>",
    "    Setting it to 1 allows scripts to run commands otherwise denied to them.",
    "QUICKLIST-PACKED-THRESHOLD <size>",
    "    Sets the threshold for elements to be inserted as plain vs packed nodes",
    "    Default value is 1GB, allows values up to 4GB. Setting to 0 restores to default.",
    "LISTPACK <key>",
    "    Show low level info about the listpack encoding of <key>.",
    "QUICKLIST <key> [<0|1>]",
    "    Show low level info about the quicklist encoding of <key>.",
    "    The optional argument (0 by default) sets the level of detail",
    "PAUSE-CRON <0|1>",
    "    Stop periodic cron job processing.",
    "REPLYBUFFER PEAK-RESET-TIME <NEVER|RESET|<ms>>",
    "    Milliseconds between restarts of a client's observed reply buffer peak",
    "    (from which its buffer is resized). NEVER keeps the peak, RESET restores",
    "    the default of 5000.",
    "REPLYBUFFER RESIZING <0|1>",
    "    Turn the periodic resizing of client reply buffers off or on.",
    "CHANGE-REPL-ID",
    "    Start a new replication history: a new replication id.",
    "AOF-FLUSH-SLEEP <microsec>",
    "    Server will sleep before flushing the AOF, this is used for testing.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * MERGE: Merge the content of the RDB instead of flushing the dataset before loading.",
    "    * NOFLUSH: Do not flush the dataset before loading.",
    "    * NOSAVE: Do not save the dataset to disk before loading.",
    "HELP",
    "    Prints this help.",
];

/// DEBUG LISTPACK / QUICKLIST: the value's structure to the log (Redis
/// prints it on stdout), for a key in that encoding.
async fn print_structure(client: &Client, key: &[u8], encoding: &'static str, what: &'static str) -> CmdResult {
    let key: crate::storage::Key = key.into();
    let (db, owner) = (client.db(), client.shard.owner(&key));
    client
        .shard
        .run_on(owner, move |sh| {
            let mut ks = sh.ks.borrow_mut();
            let now = sh.now();
            let e = ks.dbs[db].get(&key, now).ok_or(CmdError::NoSuchKey)?;
            if e.value.encoding() != encoding {
                return Err(CmdError::err(format!("Not a {encoding} encoded object.")));
            }
            tracing::info!("{what} of '{}': {:?}", String::from_utf8_lossy(&key), e.value);
            Ok(Reply::Status(format!("{what} structure printed on stdout").into()))
        })
        .await
}

/// Length of a string value as RDB would store it (DEBUG OBJECT's
/// serializedlength): integers in their compact encodings, otherwise a
/// length prefix and the bytes.
fn serialized_len(s: &Str) -> usize {
    match s {
        Str::Int(n) if i8::try_from(*n).is_ok() => 2,
        Str::Int(n) if i16::try_from(*n).is_ok() => 3,
        Str::Int(n) if i32::try_from(*n).is_ok() => 5,
        _ => {
            let len = s.len();
            len + if len < 64 {
                1
            } else if len < 16384 {
                2
            } else {
                5
            }
        }
    }
}

fn positive(args: Args, i: usize) -> Result<usize, CmdError> {
    let n = args.int(i)?;
    usize::try_from(n).map_err(|_| CmdError::err("value is out of range, must be positive"))
}

/// DEBUG POPULATE: `count` string keys `<prefix>:<n>` holding `value:<n>`
/// (zero-padded or cut to `size`), where no key is already; each shard
/// makes the ones it owns. Like Redis's, they are not propagated and
/// count as no change, but watchers see them.
async fn populate(client: &Client, args: Args<'_>) -> Result<(), CmdError> {
    let count = positive(args, 2)?;
    let size = if args.len() == 5 { positive(args, 4)? } else { 0 };
    let prefix: std::sync::Arc<str> = if args.len() >= 4 { args.str(3).into() } else { "key".into() };
    let db = client.db();
    client
        .shard
        .broadcast(move |sh| {
            sh.with_ctx(db, true, |ctx| {
                let now = ctx.now;
                for j in 0..count {
                    let key = format!("{prefix}:{j}");
                    if sh.owner(key.as_bytes()) != sh.id || ctx.read(key.as_bytes()).is_some() {
                        continue;
                    }
                    let mut value = format!("value:{j}").into_bytes();
                    if size > 0 {
                        value.resize(size, 0);
                    }
                    ctx.ks.preserve(db, key.as_bytes(), now);
                    ctx.set(key.as_bytes(), Value::Str(Str::from_bytes(&value)), 0);
                    ctx.ks.dbs[db].touch(key.as_bytes());
                }
            });
            // Nothing of it is journalled or counted.
            sh.ks.borrow_mut().take_step();
        })
        .await;
    Ok(())
}

/// C's atoi, as Redis parses these arguments: leading digits, else 0.
fn atoi(s: String) -> i64 {
    let s = s.trim_start();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    sign * digits.parse::<i64>().unwrap_or(0)
}

/// DEBUG PROTOCOL: one test value of each reply type.
fn protocol(client: &Client, name: &str) -> CmdResult {
    let ints = || (0..3).map(Reply::Int).collect::<Vec<_>>();
    Ok(match name {
        "STRING" => Reply::bulk(b"Hello World"),
        "INTEGER" => Reply::Int(12345),
        // Redis's test value (not π).
        #[allow(clippy::approx_constant)]
        "DOUBLE" => Reply::Double(3.141),
        "BIGNUM" => Reply::BigNum("1234567999999999999999999999999999999".into()),
        "NULL" => Reply::Null,
        "ARRAY" => Reply::Array(ints()),
        "SET" => Reply::Set(ints()),
        "MAP" => Reply::Map((0..3).map(|j| (Reply::Int(j), Reply::Bool(j == 1))).collect()),
        "ATTRIB" => Reply::Seq(vec![
            Reply::Attribute(vec![(
                Reply::bulk(b"key-popularity"),
                Reply::Array(vec![Reply::bulk(b"key:123"), Reply::Int(90)]),
            )]),
            Reply::bulk(b"Some real reply following the attribute"),
        ]),
        "PUSH" if client.proto() == crate::protocol::Proto::Resp2 => {
            return Err(CmdError::err("RESP2 is not supported by this command"));
        }
        "PUSH" => Reply::Seq(vec![
            Reply::Push(vec![Reply::bulk(b"server-cpu-usage"), Reply::Int(42)]),
            Reply::bulk(b"Some real reply following the push reply"),
        ]),
        "TRUE" => Reply::Bool(true),
        "FALSE" => Reply::Bool(false),
        "VERBATIM" => Reply::Verbatim("This is a verbatim\nstring".into()),
        _ => {
            return Err(CmdError::err(
                "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ));
        }
    })
}

fn debug<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        match args.keyword(1).as_str() {
            "SLEEP" if args.len() == 3 => {
                let secs = args.float(2)?;
                // Like Redis, DEBUG SLEEP blocks the server: here, this core.
                // A time past what a timespec holds returns at once, as
                // Redis's overflowing conversion does.
                if let Ok(time) = std::time::Duration::try_from_secs_f64(secs)
                    && time.as_secs() < i64::MAX as u64 / 1_000_000
                {
                    std::thread::sleep(time);
                }
                Ok(Reply::Ok)
            }
            "CONTAINED-PANIC" if args.len() <= 3 => {
                let owner = if args.len() == 3 { client.shard.owner(args.get(2)) } else { client.shard.id };
                client.shard.run_on(owner, |_| -> CmdResult { panic!("DEBUG CONTAINED-PANIC") }).await
            }
            "SET-ACTIVE-EXPIRE" if args.len() == 3 => {
                let on = args.int(2)? != 0;
                client.shard.server.active_expire.store(on, Ordering::Relaxed);
                Ok(Reply::Ok)
            }
            "OBJECT" if args.len() == 3 => {
                let key: crate::storage::Key = args.get(2).into();
                let (db, owner) = (client.db(), client.shard.owner(&key));
                let line = client
                    .shard
                    .run_on(owner, move |sh| {
                        let ks = sh.ks.borrow();
                        let now = sh.now();
                        let e = ks.dbs[db].peek(&key)?;
                        let (encoding, len) = match &e.value {
                            Value::Str(s) => (s.encoding(), serialized_len(s)),
                            other => (other.encoding(), 0),
                        };
                        Some(format!(
                            "Value at:{:p} refcount:1 encoding:{encoding} serializedlength:{len} lru:{} lru_seconds_idle:{}",
                            e as *const _,
                            (now / 1000) & ((1 << 24) - 1),
                            e.idle_secs(now),
                        ))
                    })
                    .await;
                line.map(|l| Reply::Status(l.into())).ok_or(CmdError::NoSuchKey)
            }
            "LISTPACK" if args.len() == 3 => print_structure(client, args.get(2), "listpack", "Listpack").await,
            "QUICKLIST" if args.len() == 3 || args.len() == 4 => {
                print_structure(client, args.get(2), "quicklist", "Quicklist").await
            }
            "DIGEST" if args.len() == 2 => {
                let per_shard = client
                    .shard
                    .broadcast(|sh| sh.ks.borrow().dbs.iter().map(digest::database).collect::<Vec<_>>())
                    .await;
                let databases = client.shard.databases();
                let combined = (0..databases).map(|j| {
                    per_shard.iter().filter_map(|dbs| dbs[j]).reduce(|mut a, b| {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
                        a
                    })
                });
                Ok(Reply::Status(digest::hex(&digest::dataset(combined)).into()))
            }
            "DIGEST-VALUE" => {
                let db = client.db();
                let mut digests = Vec::with_capacity(args.len() - 2);
                for i in 2..args.len() {
                    let key = crate::storage::Key::from(args.get(i));
                    let d = client
                        .shard
                        .run_on(client.shard.owner(&key), move |sh| {
                            let ks = sh.ks.borrow();
                            let mut d = [0u8; 20];
                            // Logically expired keys count, as in Redis.
                            if let Some((e, ttl)) = ks.dbs[db].live_value(&key, i64::MIN) {
                                digest::value(&mut d, &e.value, ttl.is_some());
                            }
                            d
                        })
                        .await;
                    digests.push(Reply::Status(digest::hex(&d).into()));
                }
                Ok(Reply::Array(digests))
            }
            "AOF-FLUSH-SLEEP" if args.len() == 3 => {
                client.shard.server.aof.flush_sleep_us.store(atoi(args.str(2)).max(0) as u64, Ordering::Relaxed);
                Ok(Reply::Ok)
            }
            "LOADAOF" if args.len() == 2 => {
                crate::persistence::reload(client).await.map_err(CmdError::err)?;
                Ok(Reply::Ok)
            }
            "LOG" if args.len() == 3 => {
                tracing::warn!("DEBUG LOG: {}", args.str(2));
                Ok(Reply::Ok)
            }
            "RELOAD" => {
                let (mut merge, mut noflush, mut nosave) = (false, false, false);
                for i in 2..args.len() {
                    match args.keyword(i).as_str() {
                        "MERGE" => merge = true,
                        "NOFLUSH" => noflush = true,
                        "NOSAVE" => nosave = true,
                        _ => {
                            return Err(CmdError::err(
                                "DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                            ));
                        }
                    }
                }
                crate::persistence::rdb::reload(client, !nosave, !(merge || noflush), merge)
                    .await
                    .map_err(CmdError::err)?;
                Ok(Reply::Ok)
            }
            "POPULATE" if (3..=5).contains(&args.len()) => {
                populate(client, args).await?;
                Ok(Reply::Ok)
            }
            "PROTOCOL" if args.len() == 3 => protocol(client, &args.keyword(2)),
            "SET-DISABLE-DENY-SCRIPTS" if args.len() == 3 => {
                client.shard.server.scripts_may_run_anything.store(atoi(args.str(2)) != 0, Ordering::Relaxed);
                Ok(Reply::Ok)
            }
            "QUICKLIST-PACKED-THRESHOLD" if args.len() == 3 => {
                // Redis's bounds: at most 4 GiB less 1 MiB; 0 is the default.
                let size = crate::config::parse_memory(&args.str(2)).filter(|&n| n <= (1 << 32) - (1 << 20));
                let size = size.ok_or_else(|| {
                    CmdError::err("argument must be a memory value bigger than 1 and smaller than 4gb")
                })?;
                let plain_from = if size == 0 { crate::storage::list::PLAIN_FROM } else { size };
                client.shard.server.hot.list_plain_from.store(plain_from, Ordering::Relaxed);
                Ok(Reply::Ok)
            }
            "PAUSE-CRON" if args.len() == 3 => {
                client.shard.server.cron_paused.store(atoi(args.str(2)) != 0, Ordering::Relaxed);
                Ok(Reply::Ok)
            }
            "REPLYBUFFER" if args.len() == 4 => {
                let server = &client.shard.server;
                match args.keyword(2).as_str() {
                    "PEAK-RESET-TIME" => {
                        let ms = match args.keyword(3).as_str() {
                            "NEVER" => -1,
                            "RESET" => crate::server::buffers::PEAK_RESET_MS,
                            _ => args.int(3)?,
                        };
                        server.reply_peak_reset_ms.store(ms, Ordering::Relaxed);
                    }
                    "RESIZING" => server.reply_resizing.store(atoi(args.str(3)) != 0, Ordering::Relaxed),
                    _ => return Err(CmdError::SubcommandSyntax { cmd: "DEBUG".into(), sub: args.str(1) }),
                }
                Ok(Reply::Ok)
            }
            "CHANGE-REPL-ID" if args.len() == 2 => {
                client.shard.server.repl.change_replid();
                Ok(Reply::Ok)
            }
            "HELP" => Ok(Reply::help(HELP)),
            _ => Err(CmdError::SubcommandSyntax { cmd: "DEBUG".into(), sub: args.str(1) }),
        }
    })
}

pub(super) const TABLE: &[Spec] =
    &[Spec::new("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, Keys::None, Handler::Async(debug))
        .protected_by("enable-debug-command")];
