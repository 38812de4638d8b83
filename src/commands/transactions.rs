//! MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC the dispatcher queues commands on the client.
//! EXEC locks every key the queued commands declare, on every shard, plus
//! the watched keys (the Foundation's ordered locks), checks that no
//! watched key changed, runs the commands in order and releases: no other
//! client sees a state between two of them. WATCH registers the key with
//! its owner, which bumps a version on every change (writes, expiry,
//! flushes, SWAPDB); EXEC compares versions.

use std::sync::atomic::Ordering;

use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{
    ALLOW_BUSY, Args, FAST, Keys, LOADING, MAY_REPLICATE, NO_QUEUE, NOSCRIPT, RUNS_QUEUE, STALE, SWITCHES_DB,
};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::{Client, Multi};
use crate::server::dispatch::execute;
use crate::server::transaction::Tx;
use crate::storage::Key;

fn multi(client: &mut Client, _args: Args) -> CmdResult {
    if client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    client.multi = Some(Multi::default());
    client.meta.multi_len.set(0);
    Ok(Reply::Ok)
}

fn discard<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        if client.multi.take().is_none() {
            return Err(CmdError::err("DISCARD without MULTI"));
        }
        client.meta.multi_len.set(-1);
        client.unwatch_all().await;
        Ok(Reply::Ok)
    })
}

fn watch<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        if client.multi.is_some() {
            return Err(CmdError::err("WATCH inside MULTI is not allowed"));
        }
        let db = client.db();
        for i in 1..args.len() {
            let key = Key::from(args.get(i));
            if client.watched.iter().any(|(d, k, _)| *d == db && *k == key) {
                continue;
            }
            let k = key.clone();
            let version = client
                .shard
                .run_on(client.shard.owner(&key), move |sh| {
                    let now = sh.now();
                    let mut ks = sh.ks.borrow_mut();
                    // An expired key is reclaimed first, so its deletion
                    // does not count as a change made after the WATCH.
                    ks.dbs[db].get(&k, now);
                    ks.dbs[db].watch(&k)
                })
                .await;
            if client.watched.is_empty() {
                client.shard.server.watching.fetch_add(1, Ordering::Relaxed);
            }
            client.watched.push((db, key, version));
        }
        Ok(Reply::Ok)
    })
}

fn unwatch<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        client.unwatch_all().await;
        Ok(Reply::Ok)
    })
}

/// Whether every watched key is unchanged (an expired one counts as changed).
async fn watches_hold(client: &Client) -> bool {
    for (db, key, version) in client.watched.iter().cloned() {
        let same = client
            .shard
            .run_on(client.shard.owner(&key), move |sh| {
                let now = sh.now();
                let mut ks = sh.ks.borrow_mut();
                ks.dbs[db].get(&key, now);
                ks.dbs[db].watch_version(&key) == version
            })
            .await;
        if !same {
            return false;
        }
    }
    true
}

fn exec<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let Some(multi) = client.multi.take() else {
            return Err(CmdError::err("EXEC without MULTI"));
        };
        client.meta.multi_len.set(-1);
        if multi.aborted {
            client.unwatch_all().await;
            return Err(CmdError::Raw("EXECABORT Transaction discarded because of previous errors.".into()));
        }
        // Every key the queued commands declare, in the database each will
        // run against (a queued SELECT moves the later ones).
        let mut db = client.db();
        let databases = client.shard.databases();
        let mut keys: Vec<(usize, Key)> = client.watched.iter().map(|(d, k, _)| (*d, k.clone())).collect();
        for &(spec, first, n) in &multi.cmds {
            let args = multi.args.range(first, first + n);
            if spec.has(SWITCHES_DB)
                && let Ok(i) = args.int(1)
                && (0..databases as i64).contains(&i)
            {
                db = i as usize;
            }
            keys.extend(spec.keys_in(args, db, databases).into_iter().map(|(d, i)| (d, Key::from(args.get(i)))));
        }
        let tx = Tx::lock_in(client, keys.iter().map(|(d, k)| (*d, &**k))).await;
        if !watches_hold(client).await {
            tx.unlock().await;
            client.unwatch_all().await;
            return Ok(Reply::NullArray);
        }
        let mut replies = Vec::with_capacity(multi.cmds.len());
        client.in_exec = true;
        // An EXEC nested in a script's unit adds to it; otherwise its
        // effects are one record, stamped while every key is still held.
        let outer = client.unit.replace(Vec::new());
        let outer_now = client.frozen_now.replace(client.unit_now());
        let monitored = crate::server::monitor::active(client);
        for &(spec, first, n) in &multi.cmds {
            let args = multi.args.range(first, first + n);
            let result = execute(client, spec, args, true).await;
            // Monitors see each command EXEC runs, once it ran (and EXEC
            // itself after them), as Redis 7 shows them.
            if monitored {
                crate::server::monitor::feed(client, spec, args, false).await;
            }
            replies.push(result.unwrap_or_else(Reply::Error));
        }
        client.in_exec = false;
        client.frozen_now = outer_now;
        let ops = std::mem::replace(&mut client.unit, outer).unwrap_or_default();
        client.propagate(ops);
        if let Some(ex) = client.exclusive.take() {
            ex.end().await;
        }
        tx.unlock().await;
        client.unwatch_all().await;
        Ok(Reply::Array(replies))
    })
}

const ANY: u32 = NOSCRIPT | LOADING | STALE;

pub(super) const TABLE: &[Spec] = &[
    Spec::new("multi", 1, ANY | ALLOW_BUSY | FAST | NO_QUEUE, Keys::None, Handler::Conn(multi)),
    Spec::new("exec", 1, ANY | NO_QUEUE | MAY_REPLICATE | RUNS_QUEUE, Keys::None, Handler::Async(exec)),
    Spec::new("discard", 1, ANY | ALLOW_BUSY | FAST | NO_QUEUE, Keys::None, Handler::Async(discard)),
    Spec::new("watch", -2, ANY | ALLOW_BUSY | FAST | NO_QUEUE, Keys::Range(1, -1, 1), Handler::Async(watch)),
    Spec::new("unwatch", 1, ANY | ALLOW_BUSY | FAST, Keys::None, Handler::Async(unwatch)),
];
