//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT. The interpreter is in
//! `crate::scripting`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use super::{ALLOW_BUSY, Args, Handler, Keys, NOSCRIPT, STALE, Spec};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::scripting::{Engine, sha1_hex};
use crate::server::client::Client;
use crate::server::transaction::Tx;

/// The cached body of script `sha`, if any.
fn cached(client: &Client, sha: &str) -> Option<Arc<[u8]>> {
    client.shard.server.scripts.read().ok()?.get(sha).cloned()
}

fn cache(client: &Client, body: &[u8]) -> (String, Arc<[u8]>) {
    let sha = sha1_hex(body);
    let body: Arc<[u8]> = body.into();
    if let Ok(mut scripts) = client.shard.server.scripts.write() {
        scripts.entry(sha.clone()).or_insert_with(|| body.clone());
    }
    (sha, body)
}

async fn eval(client: &mut Client, args: Args<'_>, by_sha: bool, read_only: bool) -> CmdResult {
    let numkeys = args.int(2)?;
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    if numkeys as u64 > (args.len() - 3) as u64 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    let (sha, body) = if by_sha {
        let sha = String::from_utf8_lossy(args.get(1)).to_ascii_lowercase();
        let body = cached(client, &sha)
            .ok_or_else(|| CmdError::Raw("NOSCRIPT No matching script. Please use EVAL.".into()))?;
        (sha, body)
    } else {
        cache(client, args.get(1))
    };
    let numkeys = numkeys as usize;
    let keys: Vec<Bytes> = (3..3 + numkeys).map(|i| Bytes::copy_from_slice(args.get(i))).collect();
    let argv: Vec<Bytes> = (3 + numkeys..args.len()).map(|i| Bytes::copy_from_slice(args.get(i))).collect();
    // Run where the declared keys live when they share a shard: then
    // every call on them stays on that thread.
    let owners: BTreeSet<usize> = keys.iter().map(|k| client.shard.owner(k)).collect();
    let target = if owners.len() == 1 { owners.into_iter().next().unwrap_or(client.shard.id) } else { client.shard.id };
    let (db, id) = (client.db(), client.meta.id);
    let tx = Tx::lock(client, db, keys.iter().map(|k| &k[..])).await;
    let result = client
        .shard
        .run_on_async(target, move |sh| async move {
            let engine = Engine::of(&sh)?;
            engine.compile(&sha, &body)?;
            let script_client = Client::for_script(sh.clone(), id, db);
            engine.run(script_client, &sha, &keys, &argv, read_only).await
        })
        .await;
    tx.unlock().await;
    result
}

async_handler!(eval_cmd, |c, a| eval(c, a, false, false));
async_handler!(evalsha, |c, a| eval(c, a, true, false));
async_handler!(eval_ro, |c, a| eval(c, a, false, true));
async_handler!(evalsha_ro, |c, a| eval(c, a, true, true));

const SCRIPT_HELP: &[&str] = &[
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

fn script<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let sub = args.keyword(1);
        let n = args.len();
        let server = &client.shard.server;
        match sub.as_str() {
            "HELP" if n == 2 => Ok(Reply::help(SCRIPT_HELP)),
            "LOAD" if n == 3 => {
                let body = args.get(2);
                // Compile here first so a broken script is refused at once.
                Engine::of(&client.shard)?.compile(&sha1_hex(body), body)?;
                Ok(Reply::text(cache(client, body).0))
            }
            "EXISTS" if n >= 3 => Ok(Reply::Array(
                (2..n)
                    .map(|i| {
                        let sha = String::from_utf8_lossy(args.get(i)).to_ascii_lowercase();
                        Reply::Int(cached(client, &sha).is_some() as i64)
                    })
                    .collect(),
            )),
            "FLUSH" if n == 2 || (n == 3 && (args.is(2, "ASYNC") || args.is(2, "SYNC"))) => {
                if let Ok(mut scripts) = server.scripts.write() {
                    scripts.clear();
                }
                Ok(Reply::Ok)
            }
            "FLUSH" => Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option")),
            "KILL" if n == 2 => {
                if server.scripts_running.load(Ordering::Relaxed) == 0 {
                    return Err(CmdError::Raw("NOTBUSY No scripts in execution right now.".into()));
                }
                if server.script_wrote.load(Ordering::Relaxed) {
                    return Err(CmdError::Raw("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into()));
                }
                server.script_kill.store(true, Ordering::Relaxed);
                Ok(Reply::Ok)
            }
            "HELP" | "LOAD" | "EXISTS" | "KILL" => {
                Err(CmdError::SubcommandSyntax { cmd: "SCRIPT".into(), sub: args.str(1) })
            }
            _ => Err(CmdError::UnknownSubcommand { cmd: "SCRIPT".into(), sub: args.str(1) }),
        }
    })
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("eval", -3, NOSCRIPT | STALE, Keys::Numkeys(2), Handler::Async(eval_cmd)),
    Spec::new("evalsha", -3, NOSCRIPT | STALE, Keys::Numkeys(2), Handler::Async(evalsha)),
    Spec::new("eval_ro", -3, NOSCRIPT | STALE | super::READONLY, Keys::Numkeys(2), Handler::Async(eval_ro)),
    Spec::new("evalsha_ro", -3, NOSCRIPT | STALE | super::READONLY, Keys::Numkeys(2), Handler::Async(evalsha_ro)),
    Spec::new("script", -2, NOSCRIPT | STALE | ALLOW_BUSY, Keys::None, Handler::Async(script)),
];
