//! The one gate every command passes: lookup, arity, auth, then the owner
//! shard of its keys. Commands for the local shard run inline; consecutive
//! commands for the same remote shard are queued in a `Batch` and travel as
//! one message; commands spanning shards run as a transaction.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::client::{Client, Handler, ReplyMode, Spec};
use super::notify;
use super::shard::Shard;
use super::tracking::Reader;
use super::transaction::{Exclusive, Tx};
use crate::command::{self, Args, AsyncFn, DataFn, Merge, OwnedArgs, WRITE};
use crate::config::Hot;
use crate::journal::Op;
use crate::protocol::reply::{encode, encode_error};
use crate::protocol::{CmdError, CmdResult, Proto, Reply};
use crate::storage::KeyEvent;

/// Where the journal entries of a command run on a shard go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A record of their own, appended now by the shard that ran it, so
    /// the record is stamped before anyone sees the write.
    Journal,
    /// Back to the caller, which journals them with the rest of its unit
    /// (EXEC, a script, a command split across shards) while it still
    /// holds the unit's keys.
    Collect,
}

/// A command run on a shard, with what the journal still needs.
pub struct Ran {
    pub result: CmdResult,
    /// With `Sink::Collect`: DELs of the keys that expired on the way,
    /// then the command's own entries (when it changed something).
    pub ops: Vec<Op>,
    /// How many of `ops` are expired keys' DELs.
    pub expired: usize,
    pub changed: bool,
}

/// Who runs a command body, as the shard running it needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub db: usize,
    pub no_touch: bool,
    /// The time it runs at, when a unit holds the clock.
    pub now: Option<i64>,
    /// The client (a script's caller for the script's commands).
    pub id: u64,
    /// The keys it reads are remembered for its client-side cache.
    pub tracker: Option<Reader>,
    /// A replica's master: keys past their TTL still exist for it (the
    /// master decides when they go, with its DELs), as Redis's
    /// expireIfNeeded answers the master client.
    pub master: bool,
}

impl Client {
    /// This client as the caller of `spec`.
    pub fn caller(&self, spec: &Spec) -> Caller {
        let reads = spec.has(command::READONLY) && !spec.has(command::SCRIPT);
        let tracker = (reads && self.meta.tracking.borrow().remembers()).then(|| self.tracker());
        let master = self.meta.role.get() == super::client::Role::Master;
        Caller { db: self.db(), no_touch: self.no_touch(), now: self.frozen_now, id: self.meta.id, tracker, master }
    }
}

/// Runs a command body on this shard and applies its effects.
pub fn run_data(shard: &Rc<Shard>, spec: &Spec, f: DataFn, caller: Caller, args: Args, sink: Sink) -> Ran {
    run_body(shard, spec, f, caller, args, true, sink)
}

/// `run_data` for one shard's part of a split command: its keyspace
/// events go back to the coordinator, which sends them in key order, and
/// so do its journal entries.
fn run_part(shard: &Rc<Shard>, spec: &Spec, f: DataFn, caller: Caller, args: Args) -> (Ran, Vec<KeyEvent>) {
    let ran = run_body(shard, spec, f, caller, args, false, Sink::Collect);
    let events = if shard.notify_flags() != 0 { shard.ks.borrow_mut().take_events() } else { Vec::new() };
    (ran, events)
}

/// Runs the body and applies, in this one place, what it says it did:
/// the dirty counter, WATCH versions (before any lock is released), the
/// journal, the readers of the keys it changed, blocked clients served
/// from the keys it wrote, and keyspace events; and remembers the keys a
/// tracking client read.
fn run_body(
    shard: &Rc<Shard>,
    spec: &Spec,
    f: DataFn,
    caller: Caller,
    args: Args,
    own_events: bool,
    sink: Sink,
) -> Ran {
    // (with_ctx arms the notifications.)
    let notify = shard.notify_flags();
    let wrote = spec.has(WRITE);
    let db = caller.db;
    let mut ran = shard.with_ctx_at(db, caller.no_touch, caller.now, |ctx| {
        if caller.master {
            ctx.ks.set_loading(true);
        }
        if wrote && ctx.ks.snapshot.is_some() {
            spec.written_keys(args).for_each(|i| ctx.ks.preserve(db, args.get(i), ctx.now));
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(ctx, args)))
            .unwrap_or_else(|_| Err(CmdError::Internal(spec.name)));
        let effects = std::mem::take(&mut ctx.ks.effects);
        let counted = match &result {
            Ok(Reply::Int(n)) if spec.has(command::COUNTED) => Some((*n).max(0) as u64),
            _ => None,
        };
        let changes = if wrote && result.is_ok() { effects.changes.or(counted).unwrap_or(1) } else { 0 };
        let mut ops = Vec::new();
        if ctx.ks.journal {
            ops = ctx.ks.take_expired_ops();
        }
        let expired = ops.len();
        if changes > 0 {
            if ctx.ks.journal {
                match effects.rewrite {
                    Some(rewrite) => ops.extend(rewrite),
                    None => ops.push(Op::new(db, args.iter())),
                }
            }
            ctx.ks.dirty += changes;
            let d = &mut ctx.ks.dbs[db];
            if d.has_watched() || d.tracks() {
                spec.written_keys(args).for_each(|i| d.touch(args.get(i)));
            }
        }
        Ran { result, ops, expired, changed: changes > 0 }
    });
    if sink == Sink::Journal {
        shard.journal(std::mem::take(&mut ran.ops));
    }
    shard.signal_changed(Some(caller.id));
    if let Some(reader) = caller.tracker {
        shard.remember(reader, spec.keys.positions(args).map(|i| args.get(i)));
    }
    if ran.changed && !shard.blocked.borrow().is_empty() {
        spec.written_keys(args).for_each(|i| shard.key_written(db, args.get(i)));
    }
    if notify != 0 && own_events {
        shard.publish_events();
    }
    ran
}

/// After a write coordinated across shards: the keys its steps modified
/// changed for their watchers and may serve blocked clients (skipped when
/// nobody anywhere WATCHes or blocks).
async fn keys_written(client: &Client, modified: Vec<(usize, crate::storage::Key)>) {
    use std::sync::atomic::Ordering::Relaxed;
    let server = &client.shard.server;
    if server.watching.load(Relaxed) == 0 && server.blocked_clients.load(Relaxed) == 0 && !server.tracking.active() {
        return;
    }
    let by = client.meta.id;
    for (db, key) in modified {
        client
            .shard
            .run_on(client.shard.owner(&key), move |sh| {
                sh.ks.borrow_mut().dbs[db].touch(&key);
                sh.signal_changed(Some(by));
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
    caller: Caller,
    args: Args<'_>,
) -> CmdResult {
    if !shard.locks.borrow().is_empty() {
        // Every key it touches, in any database (MOVE's in its target).
        let keys = spec.keys_in(args, caller.db, shard.databases());
        shard.wait_unlocked(keys.iter().map(|&(db, i)| (db, args.get(i)))).await;
    }
    run_data(shard, spec, f, caller, args, Sink::Journal).result
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
    /// (command, first argument, argument count, reply suppressed, its caller)
    cmds: Vec<(&'static Spec, usize, usize, bool, Caller)>,
}

impl Batch {
    fn push(&mut self, target: usize, spec: &'static Spec, args: Args, quiet: bool, caller: Caller) {
        self.target = target;
        let first = self.args.len();
        for a in args.iter() {
            self.args.push(a);
        }
        self.cmds.push((spec, first, args.len(), quiet, caller));
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
        let cmds: Vec<_> = self.cmds.iter().map(|&(spec, first, n, _, caller)| (spec, first, n, caller)).collect();
        let (results, args): (Vec<(CmdResult, Duration)>, OwnedArgs) = client
            .shard
            .run_on_async(self.target, move |sh| async move {
                let mut results = Vec::with_capacity(cmds.len());
                for (spec, first, n, caller) in cmds {
                    let (Handler::Data(f) | Handler::Split(f, _)) = spec.handler else {
                        unreachable!("only keyed commands are batched");
                    };
                    let started = Instant::now();
                    let result = run_data_when_unlocked(&sh, spec, f, caller, args.range(first, first + n)).await;
                    results.push((result, started.elapsed()));
                }
                (results, args)
            })
            .await;
        if self.cmds.iter().any(|c| c.0.has(command::DENYOOM)) {
            super::evict::memory_may_grow(&client.shard);
        }
        for ((spec, first, n, quiet, _), (result, took)) in self.cmds.drain(..).zip(results) {
            account(client, spec, args.range(first, first + n), took, &result);
            if !quiet {
                write_result(client, out, result);
            }
        }
    }
}

/// Whether a reply is made of pushes only.
fn is_push(result: &CmdResult) -> bool {
    match result {
        Ok(Reply::Push(_)) => true,
        Ok(Reply::Seq(items)) => !items.is_empty() && items.iter().all(|r| matches!(r, Reply::Push(_))),
        _ => false,
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
    let Some(spec) = client.shard.server.commands.lookup(name) else {
        batch.flush(client, out).await;
        abort_multi(client);
        let rest: Vec<&[u8]> = args.iter().skip(1).collect();
        let error = CmdError::unknown_command(name, &rest);
        client.shard.cmdstats.borrow_mut().error(&error.to_string());
        if !end_reply(client) {
            write_result(client, out, Err(error));
        }
        return;
    };
    // A container's subcommand shows under its own name (`client|info`).
    let sub = if args.len() > 1 { spec.subcommand(args.get(1)) } else { None };
    client.meta.last_cmd.set(sub.unwrap_or(spec.name));
    let gated = gate(client, spec, args).await;
    if gated.is_ok()
        && let Some(writes) = paused(client, spec, args)
    {
        batch.flush(client, out).await;
        client.shard.wait_unpaused(writes).await;
    }
    let result = if let Err(e) = gated {
        {
            let mut stats = client.shard.cmdstats.borrow_mut();
            stats.rejected(spec, args);
            stats.error(&e.to_string());
        }
        Err(rejected(client, spec, e).await)
    } else if let Some(multi) = client.multi.as_mut().filter(|_| !spec.has(command::NO_QUEUE)) {
        let first = multi.args.len();
        args.iter().for_each(|a| multi.args.push(a));
        multi.cmds.push((spec, first, args.len()));
        client.meta.multi_len.set(multi.cmds.len() as i64);
        Ok(Reply::status("QUEUED"))
    } else {
        if spec.has(WRITE | command::MAY_REPLICATE) {
            client.wrote = true;
            client.repl_dirty = true;
        }
        let monitored = super::monitor::active(client) && client.meta.id != crate::persistence::AOF_CLIENT_ID;
        // Redis shows a command once it ran: EXEC after the commands it
        // ran, SELECT in the database it selected, RESET not to the monitor
        // it ended. A data command is shown as it is about to run (it may
        // be batched to another shard), a blocking one before it blocks and
        // a script before the commands it runs, as Redis shows them.
        let on_data_path = matches!(spec.handler, Handler::Data(_) | Handler::Split(..));
        let shown_after = !on_data_path && !spec.has(command::BLOCKING | command::SCRIPT);
        if monitored && !shown_after {
            super::monitor::feed(client, spec, args, false).await;
        }
        match spec.handler {
            Handler::Data(_) | Handler::Split(..) => {
                let shard = &client.shard;
                let mut keys = spec.keys.positions(args).map(|i| args.get(i));
                let target = keys.next().map_or(shard.id, |k| shard.owner(k));
                if target != shard.id && keys.all(|k| shard.owner(k) == target) {
                    if !batch.cmds.is_empty() && batch.target != target {
                        batch.flush(client, out).await;
                    }
                    // Pushes that came before it (eviction's invalidations)
                    // precede its reply, as on the path below.
                    client.meta.take_pushes(out);
                    let quiet = end_reply(client);
                    let caller = client.caller(spec);
                    batch.push(target, spec, args, quiet, caller);
                    if batch.is_full() {
                        batch.flush(client, out).await;
                    }
                    caching_used(client, spec);
                    return;
                }
                batch.flush(client, out).await;
                execute(client, spec, args, false).await
            }
            _ => {
                batch.flush(client, out).await;
                let result = execute(client, spec, args, false).await;
                if monitored && shown_after {
                    super::monitor::feed(client, spec, args, false).await;
                }
                result
            }
        }
    };
    // Replies still travelling back from another shard go first: an error
    // found here (arity, auth, OOM...) answers a later request.
    batch.flush(client, out).await;
    // What it allocated counts from the next check on, even if memory was
    // read (and the reading kept) while it ran.
    if spec.has(command::DENYOOM) {
        super::evict::memory_may_grow(&client.shard);
    }
    // Messages this command published to its own connection go first, as
    // in Redis, where they are written while the command runs.
    client.meta.take_pushes(out);
    // Pushes (SUBSCRIBE's confirmations) are sent even with CLIENT REPLY
    // OFF, as Redis sends them.
    if !end_reply(client) || is_push(&result) {
        write_result(client, out, result);
    }
    // Invalidations this command caused to its own client follow its reply.
    out.append(&mut client.meta.deferred.borrow_mut());
    caching_used(client, spec);
}

/// CLIENT CACHING holds for the one command after it (a whole
/// transaction), as Redis's resetClient clears it.
fn caching_used(client: &Client, spec: &Spec) {
    let mut mode = client.meta.tracking.borrow_mut();
    if mode.caching && client.multi.is_none() && spec.name != "client" {
        mode.caching = false;
    }
}

/// What a call is, for the checks that judge it (memory, replicas, the
/// pause): its row's flags for these arguments, and EXEC answers for what
/// it runs, not for itself.
fn call_flags(client: &Client, spec: &Spec, args: Args) -> u32 {
    match &client.multi {
        Some(multi) if spec.has(command::RUNS_QUEUE) => multi
            .cmds
            .iter()
            .fold(0, |f, &(queued, first, n)| f | queued.call_flags(client, multi.args.range(first, first + n))),
        _ => spec.call_flags(client, args),
    }
}

/// Whether a CLIENT PAUSE holds this command now: Some(whether it may
/// write or replicate), as Redis decides.
fn paused(client: &Client, spec: &Spec, args: Args) -> Option<bool> {
    if client.replayed() {
        return None;
    }
    let writes = call_flags(client, spec, args) & (WRITE | command::MAY_REPLICATE) != 0;
    client.shard.server.pause.holds(writes).map(|_| writes)
}

/// Redis's refusal of writes without min-replicas-to-write good replicas.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// Redis's refusal of a command that may grow memory past maxmemory.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// The checks before a command may run or queue, in Redis's order
/// (processCommand): arity, protection, auth, MULTI, loading, busy script,
/// subscribe mode, memory.
async fn gate(client: &Client, spec: &Spec, args: Args<'_>) -> Result<(), CmdError> {
    use std::sync::atomic::Ordering::Relaxed;
    let server = &client.shard.server;
    if let Some(name) = spec.arity_broken(args) {
        return Err(CmdError::arity(name));
    }
    if let Some(directive) = spec.protected_by.filter(|d| !client.may(d)) {
        return Err(CmdError::ProtectedCommand { cmd: spec.name.to_ascii_uppercase(), directive });
    }
    if !client.authenticated && !spec.has(command::NO_AUTH) {
        return Err(CmdError::NoAuth);
    }
    if client.multi.is_some() && spec.has(command::NO_MULTI) {
        return Err(CmdError::err("Command not allowed inside a transaction"));
    }
    if server.loading.load(Relaxed) && !spec.has(command::LOADING) && !client.replayed() {
        return Err(CmdError::Loading);
    }
    let replica = server.repl.is_replica.load(Relaxed);
    if replica && !spec.has(command::STALE) && server.repl.stale(server) && !client.replayed() {
        return Err(CmdError::Raw(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.".into(),
        ));
    }
    if server.script_busy.load(Relaxed) && !spec.has(command::ALLOW_BUSY) {
        return Err(server.busy_error());
    }
    if client.proto() == Proto::Resp2 && client.subs.any() && !spec.has(command::SUBSCRIBE_MODE) {
        return Err(CmdError::err(format!(
            "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.full_name(args)
        )));
    }
    let flags = call_flags(client, spec, args);
    // The AOF's replay and the master's stream are not refused for memory
    // or replicas, as Redis's loading and master clients are not.
    let replaying = client.replayed();
    if replica && !replaying && flags & WRITE != 0 && server.repl.read_only(server) {
        return Err(CmdError::Raw("READONLY You can't write against a read only replica.".into()));
    }
    // Every command evicts first when memory is over the limit (so the
    // evicted keys' invalidations precede its reply); only those that may
    // grow memory are refused when nothing could go. A replica leaves
    // that to its master (replica-ignore-maxmemory).
    let ignores_maxmemory = replica && server.config(|c| c.str("replica-ignore-maxmemory") == "yes");
    let out_of_memory = !replaying
        && !ignores_maxmemory
        && Hot::get(&server.hot.maxmemory) > 0
        && !super::evict::make_room(&client.shard).await;
    client.meta.out_of_memory.set(out_of_memory);
    if out_of_memory && flags & command::DENYOOM != 0 {
        return Err(CmdError::Raw(OOM.into()));
    }
    // The atomic check first: this runs for every command.
    if !replaying && crate::persistence::rdb::writes_refused(server) && (flags & WRITE != 0 || spec.name == "ping") {
        return Err(CmdError::Raw(crate::persistence::rdb::MISCONF.into()));
    }
    if flags & WRITE != 0 && !replaying && server.repl.too_few_replicas(server) {
        return Err(CmdError::Raw(NOREPLICAS.into()));
    }
    Ok(())
}

/// A command the gate refused: inside MULTI it dooms the transaction, and
/// a refused EXEC discards it, answering why (Redis's execCommandAbort).
async fn rejected(client: &mut Client, spec: &Spec, error: CmdError) -> CmdError {
    if client.multi.is_none() {
        return error;
    }
    if !spec.has(command::RUNS_QUEUE) {
        abort_multi(client);
        return error;
    }
    client.multi = None;
    client.meta.multi_len.set(-1);
    client.unwatch_all().await;
    CmdError::Raw(format!("EXECABORT Transaction discarded because of: {error}"))
}

/// A command that fails to queue dooms the transaction (EXECABORT).
pub fn abort_multi(client: &mut Client) {
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
    let started = Instant::now();
    client.waited = Duration::ZERO;
    let result = execute_untimed(client, spec, args, held).await;
    let took = started.elapsed().saturating_sub(client.waited);
    account(client, spec, args, took, &result);
    result
}

/// Counts a call that ran for `took` (and its error, if it failed);
/// past their thresholds it goes to the slow log and latency monitor.
fn account(client: &Client, spec: &'static Spec, args: Args, took: Duration, result: &CmdResult) {
    use std::sync::atomic::Ordering::Relaxed;
    let hot = &client.shard.server.hot;
    let mut stats = client.shard.cmdstats.borrow_mut();
    // An error a script returns is the call's error reply too.
    let error = match result {
        Err(e) | Ok(Reply::Error(e)) => Some(e),
        Ok(_) => None,
    };
    stats.call(spec, args, took, error.is_some(), hot.latency_tracking.load(Relaxed));
    if let Some(e) = error.filter(|e| !matches!(e, CmdError::Counted(_))) {
        stats.error(&e.to_string());
    }
    drop(stats);
    let thresholds = super::stats::Thresholds {
        slower_than: hot.slowlog_slower_than.load(Relaxed),
        slowlog_max_len: Hot::get(&hot.slowlog_max_len) as usize,
        latency_ms: Hot::get(&hot.latency_monitor_ms),
    };
    client.shard.server.records.note(spec, args, took, &thresholds, || {
        (client.meta.addr.clone(), client.meta.name.borrow().clone().unwrap_or_default())
    });
}

async fn execute_untimed(client: &mut Client, spec: &'static Spec, args: Args<'_>, held: bool) -> CmdResult {
    // The common path, a body on this shard, catches its own panics
    // (run_body) and pays for no wrapper.
    let owner = single_owner(client, spec, args);
    if let Handler::Data(f) | Handler::Split(f, _) = spec.handler
        && owner == Some(client.shard.id)
    {
        return run_local(client, spec, f, args, held).await;
    }
    let run = std::panic::AssertUnwindSafe(execute_elsewhere(client, spec, args, held, owner));
    futures::FutureExt::catch_unwind(run).await.unwrap_or_else(|_| Err(CmdError::Internal(spec.name)))
}

/// The shard that owns every key of the call, if one does (this shard
/// for a call without keys).
fn single_owner(client: &Client, spec: &Spec, args: Args) -> Option<usize> {
    let shard = &client.shard;
    let mut keys = spec.keys.positions(args).map(|i| args.get(i));
    let target = keys.next().map_or(shard.id, |k| shard.owner(k));
    keys.all(|k| shard.owner(k) == target).then_some(target)
}

async fn run_local(client: &mut Client, spec: &'static Spec, f: DataFn, args: Args<'_>, held: bool) -> CmdResult {
    let shard = client.shard.clone();
    let caller = client.caller(spec);
    if held {
        let sink = if client.unit.is_some() { Sink::Collect } else { Sink::Journal };
        let ran = run_data(&shard, spec, f, caller, args, sink);
        client.propagate(ran.ops);
        return ran.result;
    }
    run_data_when_unlocked(&shard, spec, f, caller, args).await
}

/// Everything but a body on this shard: another shard's (`owner`, the
/// one shard of its keys, if any), a coordinated one, a connection command.
async fn execute_elsewhere(
    client: &mut Client,
    spec: &'static Spec,
    args: Args<'_>,
    held: bool,
    owner: Option<usize>,
) -> CmdResult {
    match spec.handler {
        Handler::Data(f) | Handler::Split(f, _) => {
            let shard = client.shard.clone();
            let caller = client.caller(spec);
            let sink = if client.unit.is_some() { Sink::Collect } else { Sink::Journal };
            if let Some(target) = owner {
                let mut owned = OwnedArgs::default();
                args.iter().for_each(|a| owned.push(a));
                let ran = shard
                    .run_on_async(target, move |sh| async move {
                        if held {
                            run_data(&sh, spec, f, caller, owned.args(), sink)
                        } else {
                            let result = run_data_when_unlocked(&sh, spec, f, caller, owned.args()).await;
                            Ran { result, ops: Vec::new(), expired: 0, changed: false }
                        }
                    })
                    .await;
                client.propagate(ran.ops);
                return ran.result;
            }
            match spec.handler {
                Handler::Split(f, merge) => run_split(client, spec, f, merge, args).await,
                _ => Err(CmdError::Raw("CROSSSLOT Keys in request don't hash to the same slot".into())),
            }
        }
        Handler::Conn(f) => f(client, args),
        Handler::Async(f) if spec.has(WRITE) => coordinated(client, spec, args, f).await,
        Handler::Async(f) => {
            client.steps.take();
            let tracker = client.caller(spec).tracker;
            let result = f(client, args).await;
            // A read may still change something (PFCOUNT refreshing its
            // cache, keys found expired on the way): applied as a write's.
            let journal = client.shard.server.journal.active();
            coordinated_done(client, spec, args, &result, journal).await;
            if let Some(reader) = tracker {
                let keys = spec.keys.positions(args).map(|i| args.get(i).into()).collect();
                client.remember_keys(reader, keys).await;
            }
            result
        }
    }
}

/// A write run by its coordinator (across shards, or in steps): while the
/// journal runs, every key it declares is held from before it starts
/// until its record is stamped, so no other write on them falls between
/// its steps in the journal. It propagates as its own arguments (these
/// commands are deterministic); blocking commands journal each pop where
/// it happens instead.
async fn coordinated(client: &mut Client, spec: &'static Spec, args: Args<'_>, f: AsyncFn<Client>) -> CmdResult {
    // Its steps' record starts empty.
    client.steps.take();
    if spec.has(command::EXCLUSIVE) {
        return exclusive(client, spec, args, f).await;
    }
    let journal = client.shard.server.journal.active() && !spec.has(command::BLOCKING);
    // Inside EXEC or a script the unit holds the keys already.
    let outer = if journal && client.unit.is_none() {
        let keys = spec.keys.positions(args).map(|i| args.get(i));
        Some(Tx::lock(client, client.db(), keys).await)
    } else {
        None
    };
    let result = f(client, args).await;
    coordinated_done(client, spec, args, &result, journal).await;
    if let Some(tx) = outer {
        tx.unlock().await;
    }
    result
}

/// After a coordinated write: what its steps did is applied here, once.
/// If it changed something it counts as dirty, propagates (as its own
/// arguments unless a step said otherwise, and not at all when `journal`
/// is false: the journal is off, or its steps journalled themselves, as
/// blocking pops do), and its keys changed for watchers and blocked
/// clients. Its keyspace events go out in the order its steps recorded
/// them.
async fn coordinated_done(client: &mut Client, spec: &Spec, args: Args<'_>, result: &CmdResult, journal: bool) {
    let steps = client.steps.take();
    let changes = if result.is_ok() { steps.effects.changes.unwrap_or(0) } else { 0 };
    if journal {
        let mut ops = steps.expired;
        // FLUSHALL, FLUSHDB and SWAPDB propagate even when they found
        // nothing to change, as Redis forces them to.
        if changes > 0 || (result.is_ok() && spec.has(command::EXCLUSIVE)) {
            match steps.effects.rewrite {
                Some(rewrite) => ops.extend(rewrite),
                None => ops.push(Op::new(client.db(), args.iter())),
            }
        }
        client.propagate(ops);
    }
    client.shard.send_events(steps.events);
    if changes > 0 {
        client.shard.ks.borrow_mut().dirty += changes;
        keys_written(client, steps.modified).await;
    }
}

/// A command that touches every key runs with every shard held (so no
/// client sees some shards flushed and others not), and is journalled
/// before they are released; inside EXEC they stay held until the EXEC
/// is journalled.
async fn exclusive(client: &mut Client, spec: &'static Spec, args: Args<'_>, f: AsyncFn<Client>) -> CmdResult {
    let ex = match client.exclusive.take() {
        Some(ex) => ex,
        None => Exclusive::begin(client).await,
    };
    let result = f(client, args).await;
    coordinated_done(client, spec, args, &result, true).await;
    if client.unit.is_some() && client.in_exec {
        client.exclusive = Some(ex);
    } else {
        ex.end().await;
    }
    result
}

/// A multi-key command whose keys live on several shards: each shard runs
/// the command on its own keys inside one transaction, and the journal
/// gets the command once, stamped before its keys are released.
async fn run_split(client: &mut Client, spec: &'static Spec, f: DataFn, merge: Merge, args: Args<'_>) -> CmdResult {
    let shard = client.shard.clone();
    let step = spec.keys.step();
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let positions: Vec<usize> = spec.keys.positions(args).collect();
    for (ordinal, &i) in positions.iter().enumerate() {
        groups.entry(shard.owner(args.get(i))).or_default().push(ordinal);
    }
    let caller = client.caller(spec);
    let db = caller.db;
    let tx = Tx::lock(client, db, positions.iter().map(|&i| args.get(i))).await;
    let parts = groups.iter().map(|(&owner, ordinals)| {
        let mut owned = OwnedArgs::default();
        owned.push(args.get(0));
        for &o in ordinals {
            for j in 0..step {
                owned.push(args.get(positions[o] + j));
            }
        }
        tx.run(owner, move |sh| run_part(sh, spec, f, caller, owned.args()))
    });
    let (ran, recorded): (Vec<Ran>, Vec<Vec<KeyEvent>>) = futures::future::join_all(parts).await.into_iter().unzip();
    let mut ops = Vec::new();
    let mut changed = false;
    let mut results = Vec::with_capacity(ran.len());
    for mut part in ran {
        changed |= part.changed;
        ops.extend(part.ops.drain(..part.expired));
        results.push(part.result);
    }
    if changed && shard.server.journal.active() {
        ops.push(Op::new(db, args.iter()));
    }
    client.propagate(ops);
    tx.unlock().await;
    let merged = merge_replies(merge, positions.len(), groups.values(), results);
    if shard.notify_flags() != 0 {
        let keys = positions.iter().map(|&i| args.get(i));
        shard.send_events(notify::per_key(keys, recorded.into_iter().flatten().collect()));
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
