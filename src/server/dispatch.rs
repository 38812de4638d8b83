//! The one gate every command passes: lookup, arity, auth, then the owner
//! shard of its keys. Commands for the local shard run inline; consecutive
//! commands for the same remote shard are queued in a `Batch` and travel as
//! one message; commands spanning shards run as a transaction.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::client::{Client, ReplyMode};
use super::notify;
use super::shard::Shard;
use super::transaction::Tx;
use crate::commands::{self, Args, DataFn, Handler, Merge, OwnedArgs, Spec, WRITE};
use crate::config::Hot;
use crate::protocol::reply::{encode, encode_error};
use crate::protocol::{CmdError, CmdResult, Proto, Reply};
use crate::storage::KeyEvent;

/// Runs a command body on this shard; a write bumps the write counter and
/// the versions of its keys that clients WATCH.
pub fn run_data(shard: &Rc<Shard>, spec: &Spec, f: DataFn, db: usize, no_touch: bool, args: Args) -> CmdResult {
    run_body(shard, spec, f, db, no_touch, args, true)
}

/// `run_data` for one shard's part of a split command: its keyspace
/// events go back to the coordinator, which sends them in key order.
fn run_part(
    shard: &Rc<Shard>,
    spec: &Spec,
    f: DataFn,
    db: usize,
    no_touch: bool,
    args: Args,
) -> (CmdResult, Vec<KeyEvent>) {
    let result = run_body(shard, spec, f, db, no_touch, args, false);
    let events = if shard.notify_flags() != 0 { shard.ks.borrow_mut().take_events() } else { Vec::new() };
    (result, events)
}

fn run_body(
    shard: &Rc<Shard>,
    spec: &Spec,
    f: DataFn,
    db: usize,
    no_touch: bool,
    args: Args,
    own_events: bool,
) -> CmdResult {
    // (with_ctx arms the notifications.)
    let notify = shard.notify_flags();
    let wrote = spec.has(WRITE);
    let result = shard.with_ctx(db, no_touch, |ctx| {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx, args)))
            .unwrap_or_else(|_| Err(CmdError::Internal(spec.name)));
        if result.is_ok() && wrote {
            ctx.ks.dirty += 1;
            let d = &mut ctx.ks.dbs[db];
            if d.has_watched() {
                spec.written_keys(args).for_each(|i| d.touch(args.get(i)));
            }
        }
        result
    });
    if result.is_ok() && wrote && !shard.blocked.borrow().is_empty() {
        spec.written_keys(args).for_each(|i| shard.key_written(db, args.get(i)));
    }
    if notify != 0 && own_events {
        let own = match &result {
            Ok(reply) if spec.has(WRITE) => notify::command_events(spec, args, reply, db, notify),
            _ => Vec::new(),
        };
        shard.publish_events(own, Some(spec));
    }
    result
}

/// After a write coordinated across shards: its keys changed for their
/// watchers and may serve blocked clients (skipped when nobody anywhere
/// WATCHes or blocks), and its keyspace events go out.
async fn keys_written(client: &Client, spec: &Spec, args: Args<'_>, reply: &Reply) {
    use std::sync::atomic::Ordering::Relaxed;
    let notify = client.shard.notify_flags();
    if notify != 0 {
        // The command's own events, then what its steps recorded on the
        // keys' owners (a list emptied and deleted...), all sent from here
        // so subscribers see them in that order.
        let mut events = notify::command_events(spec, args, reply, client.db(), notify);
        let mut owners: Vec<usize> = spec.keys.positions(args).map(|i| client.shard.owner(args.get(i))).collect();
        owners.dedup();
        for owner in owners {
            events.extend(client.shard.run_on(owner, |sh| sh.ks.borrow_mut().take_events()).await);
        }
        client.shard.publish_events(events, Some(spec));
    }
    let server = &client.shard.server;
    if server.watching.load(Relaxed) == 0 && server.blocked_clients.load(Relaxed) == 0 {
        return;
    }
    let db = client.db();
    for i in spec.written_keys(args) {
        let key = crate::storage::Key::from(args.get(i));
        client
            .shard
            .run_on(client.shard.owner(&key), move |sh| {
                sh.ks.borrow_mut().dbs[db].touch(&key);
                sh.key_written(db, &key);
            })
            .await;
    }
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

/// Most commands, and argument bytes, one batch carries: past either, the
/// connection sends what it has and waits for the answer before it parses
/// more of its input.
const BATCH_MAX_COMMANDS: usize = 1024;
const BATCH_MAX_BYTES: usize = 256 * 1024;

/// Commands queued for one remote shard, sent together.
///
/// Back-pressure between shards comes from here: a connection has at most
/// one batch (or one transaction step per shard) in flight and reads no
/// more of its socket until the answer is back, so a shard's mailbox holds
/// at most a bounded message per connection of the server, whatever the
/// clients pipeline.
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

    fn is_full(&self) -> bool {
        self.cmds.len() >= BATCH_MAX_COMMANDS || self.args.bytes() >= BATCH_MAX_BYTES
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
        abort_multi(client);
        let rest: Vec<&[u8]> = args.iter().skip(1).collect();
        if !end_reply(client) {
            write_result(client, out, Err(CmdError::unknown_command(name, &rest)));
        }
        return;
    };
    client.meta.last_cmd.set(spec.name);
    let result = if !spec.arity_ok(args.len()) {
        abort_multi(client);
        Err(CmdError::arity(spec.name))
    } else if let Some(directive) = spec.protected_by.filter(|d| !client.may(d)) {
        abort_multi(client);
        Err(CmdError::ProtectedCommand { cmd: spec.name.to_ascii_uppercase(), directive })
    } else if !client.authenticated && !spec.has(commands::NO_AUTH) {
        abort_multi(client);
        Err(CmdError::NoAuth)
    } else if client.shard.server.script_busy.load(std::sync::atomic::Ordering::Relaxed)
        && !spec.has(commands::ALLOW_BUSY)
    {
        Err(client.shard.server.busy_error())
    } else if client.proto() == Proto::Resp2 && client.subs.any() && !spec.has(commands::SUBSCRIBE_MODE) {
        Err(CmdError::err(format!(
            "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            commands::full_name(spec, args)
        )))
    } else if spec.has(commands::DENYOOM)
        && Hot::get(&client.shard.server.hot.maxmemory) > 0
        && !super::evict::make_room(&client.shard).await
    {
        abort_multi(client);
        Err(CmdError::Raw("OOM command not allowed when used memory > 'maxmemory'.".into()))
    } else if let Some(multi) = client.multi.as_mut().filter(|_| !spec.has(commands::NO_QUEUE)) {
        let first = multi.args.len();
        args.iter().for_each(|a| multi.args.push(a));
        multi.cmds.push((spec, first, args.len()));
        client.meta.multi_len.set(multi.cmds.len() as i64);
        Ok(Reply::status("QUEUED"))
    } else {
        match spec.handler {
            Handler::Data(_) | Handler::Split(..) | Handler::Cross(..) => {
                let shard = &client.shard;
                let mut keys = spec.keys.positions(args).map(|i| args.get(i));
                let target = keys.next().map_or(shard.id, |k| shard.owner(k));
                if target != shard.id && keys.all(|k| shard.owner(k) == target) {
                    if !batch.cmds.is_empty() && batch.target != target {
                        batch.flush(client, out).await;
                    }
                    let quiet = end_reply(client);
                    batch.push(target, spec, args, quiet);
                    if batch.is_full() {
                        batch.flush(client, out).await;
                    }
                    return;
                }
                batch.flush(client, out).await;
                execute(client, spec, args, false).await
            }
            _ => {
                batch.flush(client, out).await;
                execute(client, spec, args, false).await
            }
        }
    };
    // Replies still travelling back from another shard go first: an error
    // found here (arity, auth, OOM...) answers a later request.
    batch.flush(client, out).await;
    // Messages this command published to its own connection go first, as
    // in Redis, where they are written while the command runs.
    let mut outbox = client.meta.outbox.borrow_mut();
    if !outbox.is_empty() {
        out.append(&mut outbox);
    }
    drop(outbox);
    if !end_reply(client) {
        write_result(client, out, result);
    }
}

/// A command that fails to queue dooms the transaction (EXECABORT).
fn abort_multi(client: &mut Client) {
    if let Some(multi) = client.multi.as_mut() {
        multi.aborted = true;
    }
}

/// Runs one command wherever its keys live. `held`: the caller (EXEC)
/// already holds the keys' locks, so the command must not wait on them.
///
/// A panic inside the command (here or in a call it made to another
/// shard) fails just this command: the client gets an error, the panic
/// hook has logged what happened, the shards keep serving, and locks the
/// command held are released as it unwinds.
pub async fn execute(client: &mut Client, spec: &'static Spec, args: Args<'_>, held: bool) -> CmdResult {
    let run = std::panic::AssertUnwindSafe(execute_contained(client, spec, args, held));
    futures::FutureExt::catch_unwind(run).await.unwrap_or_else(|_| Err(CmdError::Internal(spec.name)))
}

async fn execute_contained(client: &mut Client, spec: &'static Spec, args: Args<'_>, held: bool) -> CmdResult {
    match spec.handler {
        Handler::Data(f) | Handler::Split(f, _) | Handler::Cross(f, _) => {
            let shard = client.shard.clone();
            let mut keys = spec.keys.positions(args).map(|i| args.get(i));
            let target = keys.next().map_or(shard.id, |k| shard.owner(k));
            let (db, no_touch) = (client.db(), client.no_touch());
            if keys.all(|k| shard.owner(k) == target) {
                if target == shard.id {
                    if held {
                        return run_data(&shard, spec, f, db, no_touch, args);
                    }
                    return run_data_when_unlocked(&shard, spec, f, db, no_touch, args).await;
                }
                let mut owned = OwnedArgs::default();
                args.iter().for_each(|a| owned.push(a));
                return shard
                    .run_on_async(target, move |sh| async move {
                        if held {
                            run_data(&sh, spec, f, db, no_touch, owned.args())
                        } else {
                            run_data_when_unlocked(&sh, spec, f, db, no_touch, owned.args()).await
                        }
                    })
                    .await;
            }
            match spec.handler {
                Handler::Split(f, merge) => run_split(client, spec, f, merge, args).await,
                Handler::Cross(_, cross) => {
                    let result = cross(client, args).await;
                    if let Ok(reply) = &result
                        && spec.has(WRITE)
                    {
                        keys_written(client, spec, args, reply).await;
                    }
                    result
                }
                _ => Err(CmdError::Raw("CROSSSLOT Keys in request don't hash to the same slot".into())),
            }
        }
        Handler::Conn(f) => f(client, args),
        Handler::Async(f) => {
            let result = f(client, args).await;
            if let Ok(reply) = &result
                && spec.has(WRITE)
            {
                keys_written(client, spec, args, reply).await;
            }
            result
        }
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
    let tx = Tx::lock(client, db, positions.iter().map(|&i| args.get(i))).await;
    let parts = groups.iter().map(|(&owner, ordinals)| {
        let mut owned = OwnedArgs::default();
        owned.push(args.get(0));
        for &o in ordinals {
            for j in 0..step {
                owned.push(args.get(positions[o] + j));
            }
        }
        tx.run(owner, move |sh| run_part(sh, spec, f, db, no_touch, owned.args()))
    });
    let (results, recorded): (Vec<CmdResult>, Vec<Vec<KeyEvent>>) =
        futures::future::join_all(parts).await.into_iter().unzip();
    tx.unlock().await;
    let merged = merge_replies(merge, positions.len(), groups.values(), results);
    let notify = shard.notify_flags();
    if notify != 0 {
        let own = match &merged {
            Ok(reply) if spec.has(WRITE) => notify::command_events(spec, args, reply, db, notify),
            _ => Vec::new(),
        };
        let keys = positions.iter().map(|&i| args.get(i));
        shard.send_events(notify::per_key(keys, recorded.into_iter().flatten().collect(), own, spec));
    }
    merged
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
