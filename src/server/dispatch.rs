//! The one gate every command passes: lookup, arity, auth, then the owner
//! shard of its keys. Commands for the local shard run inline; consecutive
//! commands for the same remote shard are queued in a `Batch` and travel as
//! one message; commands spanning shards run as a transaction.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::client::{Client, ReplyMode};
use super::shard::Shard;
use super::transaction::Tx;
use crate::commands::{self, Args, Ctx, DataFn, Handler, Merge, OwnedArgs, Spec, WRITE};
use crate::protocol::reply::{encode, encode_error};
use crate::protocol::{CmdError, CmdResult, Reply};

/// Runs a command body on this shard and keeps the write counter.
pub fn run_data(shard: &Shard, spec: &Spec, f: DataFn, db: usize, no_touch: bool, args: Args) -> CmdResult {
    let mut ks = shard.ks.borrow_mut();
    let mut ctx = Ctx { ks: &mut ks, db, now: shard.now(), no_touch, server: &shard.server };
    let result = f(&mut ctx, args);
    if result.is_ok() && spec.has(WRITE) {
        ks.dirty += 1;
    }
    result
}

/// Runs a command on this shard once no transaction holds its keys.
async fn run_data_when_unlocked(
    shard: &Rc<Shard>,
    spec: &Spec,
    f: DataFn,
    db: usize,
    no_touch: bool,
    args: Args<'_>,
) -> CmdResult {
    if !shard.locks.borrow().is_empty() {
        shard.wait_unlocked(db, spec.keys.positions(args).map(|i| args.get(i))).await;
    }
    run_data(shard, spec, f, db, no_touch, args)
}

/// Commands queued for one remote shard, sent together.
#[derive(Default)]
pub struct Batch {
    target: usize,
    args: OwnedArgs,
    /// (command, first argument, argument count, reply suppressed)
    cmds: Vec<(&'static Spec, usize, usize, bool)>,
}

impl Batch {
    fn push(&mut self, target: usize, spec: &'static Spec, args: Args, quiet: bool) {
        self.target = target;
        let first = self.args.len();
        for a in args.iter() {
            self.args.push(a);
        }
        self.cmds.push((spec, first, args.len(), quiet));
    }

    /// Sends the queued commands and writes their replies in order.
    pub async fn flush(&mut self, client: &Client, out: &mut Vec<u8>) {
        if self.cmds.is_empty() {
            return;
        }
        let args = std::mem::take(&mut self.args);
        let cmds: Vec<_> = self.cmds.iter().map(|&(spec, first, n, _)| (spec, first, n)).collect();
        let (db, no_touch) = (client.db(), client.no_touch());
        let results: Vec<CmdResult> = client
            .shard
            .run_on_async(self.target, move |sh| async move {
                let mut results = Vec::with_capacity(cmds.len());
                for (spec, first, n) in cmds {
                    let (Handler::Data(f) | Handler::Split(f, _) | Handler::Cross(f, _)) = spec.handler else {
                        unreachable!("only keyed commands are batched");
                    };
                    results
                        .push(run_data_when_unlocked(&sh, spec, f, db, no_touch, args.range(first, first + n)).await);
                }
                results
            })
            .await;
        for ((_, _, _, quiet), result) in self.cmds.drain(..).zip(results) {
            if !quiet {
                write_result(client, out, result);
            }
        }
    }
}

pub fn write_result(client: &Client, out: &mut Vec<u8>, result: CmdResult) {
    match result {
        Ok(Reply::Nothing) => {}
        Ok(reply) => encode(&reply, client.proto(), out),
        Err(e) => encode_error(out, &e.to_string()),
    }
}

/// Called before a command runs: a pending CLIENT REPLY SKIP applies to it.
fn begin_reply(client: &mut Client) {
    if client.reply_mode == ReplyMode::SkipNext {
        client.reply_mode = ReplyMode::Skipping;
    }
}

/// Called after a command ran (it may have changed the mode itself, as
/// CLIENT REPLY ON does): whether its reply is dropped.
fn end_reply(client: &mut Client) -> bool {
    match client.reply_mode {
        ReplyMode::On | ReplyMode::SkipNext => false,
        ReplyMode::Off => true,
        ReplyMode::Skipping => {
            client.reply_mode = ReplyMode::On;
            true
        }
    }
}

/// Handles one parsed request.
pub async fn dispatch(client: &mut Client, out: &mut Vec<u8>, batch: &mut Batch, args: Args<'_>) {
    let name = args.get(0);
    client.shard.stats.commands.set(client.shard.stats.commands.get() + 1);
    begin_reply(client);
    let Some(spec) = commands::lookup(name) else {
        batch.flush(client, out).await;
        let rest: Vec<&[u8]> = args.iter().skip(1).collect();
        if !end_reply(client) {
            write_result(client, out, Err(CmdError::unknown_command(name, &rest)));
        }
        return;
    };
    client.meta.last_cmd.set(spec.name);
    let result = if !spec.arity_ok(args.len()) {
        Err(CmdError::arity(spec.name))
    } else if !client.authenticated && !spec.has(commands::NO_AUTH) {
        Err(CmdError::NoAuth)
    } else {
        match spec.handler {
            Handler::Data(f) | Handler::Split(f, _) | Handler::Cross(f, _) => {
                let shard = client.shard.clone();
                let mut keys = spec.keys.positions(args).map(|i| args.get(i));
                let target = keys.next().map_or(shard.id, |k| shard.owner(k));
                if keys.all(|k| shard.owner(k) == target) {
                    if target != shard.id {
                        if !batch.cmds.is_empty() && batch.target != target {
                            batch.flush(client, out).await;
                        }
                        let quiet = end_reply(client);
                        batch.push(target, spec, args, quiet);
                        return;
                    }
                    batch.flush(client, out).await;
                    run_data_when_unlocked(&shard, spec, f, client.db(), client.no_touch(), args).await
                } else {
                    batch.flush(client, out).await;
                    match spec.handler {
                        Handler::Split(f, merge) => run_split(client, spec, f, merge, args).await,
                        Handler::Cross(_, cross) => cross(client, args).await,
                        _ => Err(CmdError::Raw("CROSSSLOT Keys in request don't hash to the same slot".into())),
                    }
                }
            }
            Handler::Conn(f) => {
                batch.flush(client, out).await;
                f(client, args)
            }
            Handler::Async(f) => {
                batch.flush(client, out).await;
                f(client, args).await
            }
        }
    };
    if !end_reply(client) {
        write_result(client, out, result);
    }
}

/// A multi-key command whose keys live on several shards: each shard runs
/// the command on its own keys inside one transaction.
async fn run_split(client: &Client, spec: &'static Spec, f: DataFn, merge: Merge, args: Args<'_>) -> CmdResult {
    let shard = &client.shard;
    let step = spec.keys.step();
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let positions: Vec<usize> = spec.keys.positions(args).collect();
    for (ordinal, &i) in positions.iter().enumerate() {
        groups.entry(shard.owner(args.get(i))).or_default().push(ordinal);
    }
    let (db, no_touch) = (client.db(), client.no_touch());
    let tx = Tx::lock(shard, db, positions.iter().map(|&i| args.get(i))).await;
    let parts = groups.iter().map(|(&owner, ordinals)| {
        let mut owned = OwnedArgs::default();
        owned.push(args.get(0));
        for &o in ordinals {
            for j in 0..step {
                owned.push(args.get(positions[o] + j));
            }
        }
        tx.run(owner, move |sh| run_data(sh, spec, f, db, no_touch, owned.args()))
    });
    let results = futures::future::join_all(parts).await;
    tx.unlock().await;
    merge_replies(merge, positions.len(), groups.values(), results)
}

fn merge_replies<'a>(
    merge: Merge,
    nkeys: usize,
    groups: impl Iterator<Item = &'a Vec<usize>>,
    results: Vec<CmdResult>,
) -> CmdResult {
    match merge {
        Merge::Sum => {
            let mut total = 0;
            for r in results {
                if let Reply::Int(n) = r? {
                    total += n;
                }
            }
            Ok(Reply::Int(total))
        }
        Merge::AllOk => {
            for r in results {
                r?;
            }
            Ok(Reply::Ok)
        }
        Merge::Gather => {
            let mut items = vec![Reply::Null; nkeys];
            for (ordinals, r) in groups.zip(results) {
                if let Reply::Array(values) = r? {
                    for (&o, v) in ordinals.iter().zip(values) {
                        items[o] = v;
                    }
                }
            }
            Ok(Reply::Array(items))
        }
    }
}
