//! Blocking pops: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX
//! BZMPOP. The waiting and serving is in `server::blocking`; here are the
//! argument shapes, the replies, and the client's side of the wait:
//! timeout, CLIENT UNBLOCK, or the peer going away.

use std::future::pending;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;

use super::{Handler, Spec, parse_mpop};
use crate::command::{Args, BLOCKING, Ctx, DENYOOM, FAST, Keys, NOSCRIPT, WRITE};
use crate::journal::Op;
use crate::protocol::reply::format_double;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::blocking::{BlockOp, Popper, Served, Waiter};
use crate::server::client::{Client, ClientMeta};
use crate::server::transaction::Tx;
use crate::storage::events::LIST;
use crate::storage::{End, Key, List, SmallBytes, ZSet};

/// A timeout in seconds, fractions allowed; None for 0 (wait forever).
/// Values too large for milliseconds in 64 bits come out negative, as in
/// Redis (its conversion wraps).
fn timeout(args: Args, i: usize) -> Result<Option<Duration>, CmdError> {
    let secs = crate::command::parse_f64(args.get(i))
        .ok_or_else(|| CmdError::err("timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if !(0.0..i64::MAX as f64).contains(&ms) {
        return Err(CmdError::err("timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// Resolves when the client closed its side (a blocked client reads
/// nothing; more pipelined commands just wait their turn).
async fn peer_closed(meta: &ClientMeta) {
    let Some(ready) = meta.ready.get() else { return pending().await };
    loop {
        // Looked at before waiting (the end of the stream may have come
        // with the command, its edge already taken by the reader), and
        // again after forgetting readiness, so no edge is lost between.
        match peek(meta.fd) {
            Peek::Closed => return,
            Peek::Input => return pending().await,
            Peek::Nothing => {}
        }
        ready.clear_readable();
        match peek(meta.fd) {
            Peek::Nothing => {
                ready.readable().await;
                ready.take_pushed();
            }
            _ => ready.set_readable(),
        }
    }
}

enum Peek {
    Closed,
    /// Pipelined input: the reader takes it once the wait ends.
    Input,
    Nothing,
}

fn peek(fd: i32) -> Peek {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local on a descriptor this process
    // owns; it consumes nothing.
    let n = unsafe { libc::recv(fd, (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    match n {
        n if n > 0 => Peek::Input,
        0 => Peek::Closed,
        _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock => Peek::Nothing,
        _ => Peek::Closed,
    }
}

pub(super) enum Outcome {
    Served(Served),
    TimedOut,
    /// CLIENT UNBLOCK ... ERROR.
    Unblocked,
}

/// Pops for `op` from the first of `keys` with data, waiting up to
/// `timeout` for one to get some. Inside EXEC it does not wait.
/// `push_to`: BLMOVE's destination, when the source's owner holds it.
pub(super) async fn block(
    client: &mut Client,
    keys: &[Key],
    timeout: Option<Duration>,
    (op, popper): (BlockOp, &'static Popper),
    push_to: Option<(Key, End)>,
) -> Result<Outcome, CmdError> {
    let shard = client.shard.clone();
    let db = client.db();
    let (waiter, mut rx) = Waiter::new(db, op.clone(), (client.meta.id, client.shard.id), popper, push_to);
    let may_block = !client.in_exec;
    let mut registered = Vec::new();
    let mut error = None;
    for key in keys {
        let owner = shard.owner(key);
        let (w, k) = (waiter.clone(), key.clone());
        let tried = shard
            .run_on_async(owner, move |sh| async move {
                // Inside EXEC the keys are this client's own locks.
                if may_block {
                    sh.wait_unlocked(std::iter::once((db, &*k))).await;
                }
                sh.try_or_block(&w, k, may_block)
            })
            .await;
        if may_block {
            registered.push((owner, key.clone()));
        }
        if let Err(e) = tried {
            error = Some(e);
            break;
        }
        if waiter.is_claimed() {
            break;
        }
    }
    let mut outcome = Outcome::TimedOut;
    let mut gone = false;
    if error.is_none() && may_block && !waiter.is_claimed() {
        let (unblock_tx, unblock_rx) = oneshot::channel();
        *client.meta.unblock.borrow_mut() = Some(unblock_tx);
        shard.server.blocked_clients.fetch_add(1, Ordering::Relaxed);
        let timer = async {
            match timeout {
                Some(d) => crate::server::poller::sleep(d).await,
                None => pending().await,
            }
        };
        let meta = client.meta.clone();
        let wait_started = std::time::Instant::now();
        futures::select_biased! {
            served = (&mut rx).fuse() => if let Ok(s) = served { outcome = Outcome::Served(s) },
            error = unblock_rx.fuse() => if error == Ok(true) { outcome = Outcome::Unblocked },
            _ = timer.fuse() => {},
            _ = peer_closed(&meta).fuse() => gone = true,
        }
        client.waited += wait_started.elapsed();
        client.meta.unblock.borrow_mut().take();
        shard.server.blocked_clients.fetch_sub(1, Ordering::Relaxed);
    }
    if !matches!(outcome, Outcome::Served(_))
        && !waiter.claim()
        && let Ok(served) = rx.await
    {
        // Served while giving up: the element is already in the channel.
        if gone {
            // Its client left: the element goes back where it was (unless
            // the move was made whole: then it is where it was going).
            match op {
                BlockOp::ListReady => pass_turn(client, &served.key).await,
                _ if served.pushed.is_none() => give_back(client, op, served).await,
                _ => {}
            }
        } else {
            outcome = Outcome::Served(served);
        }
    }
    for (owner, key) in registered {
        let w = waiter.clone();
        shard.run_on(owner, move |sh| sh.forget_waiter(&w, &key)).await;
    }
    match (error, outcome) {
        (_, Outcome::Served(mut s)) => {
            // Inside EXEC the pop's journal entries join its block.
            client.propagate(std::mem::take(&mut s.ops));
            Ok(Outcome::Served(s))
        }
        (Some(e), _) => Err(e),
        (None, outcome) => Ok(outcome),
    }
}

/// Whether `key` holds something `op` can pop (WRONGTYPE if it holds
/// another type).
fn ready(ctx: &mut Ctx, key: &[u8], waiter: &Waiter) -> Result<bool, CmdError> {
    Ok(match waiter.op {
        BlockOp::List { .. } | BlockOp::ListReady => ctx.lookup_as::<List>(key)?.is_some_and(|l| !l.is_empty()),
        BlockOp::ZSet { .. } => ctx.lookup_as::<ZSet>(key)?.is_some_and(|z| !z.is_empty()),
        BlockOp::Stream(_) => false,
    })
}

/// Pops for `op` from `key`, known to be ready.
fn pop(ctx: &mut Ctx, key: &[u8], waiter: &Waiter) -> Served {
    ctx.ks.preserve(ctx.db, key, ctx.now);
    let op = &waiter.op;
    if let (BlockOp::List { end, .. }, Some((dst, to))) = (op, &waiter.push_to) {
        return move_here(ctx, key, *end, dst, *to);
    }
    // It propagates as the non-blocking pop it amounts to.
    let (items, name, count): (Vec<(SmallBytes, f64)>, &[u8], usize) = match *op {
        BlockOp::List { end, count } => {
            let limits = super::lists::limits(ctx);
            let Ok(Some(l)) = ctx.lookup_as::<List>(key) else { return Served::empty(key) };
            let items: Vec<_> = (0..count).map_while(|_| l.pop(end, limits)).map(|v| (v, 0.0)).collect();
            super::lists::popped(ctx, key, end, items.len());
            (items, if end == End::Left { b"LPOP" } else { b"RPOP" }, count)
        }
        BlockOp::ZSet { max, count } => {
            let Ok(Some(z)) = ctx.lookup_as::<ZSet>(key) else { return Served::empty(key) };
            let items: Vec<_> = super::zsets::pop_ends(z, count, max).into_iter().map(|(s, m)| (m, s)).collect();
            super::zsets::zpopped(ctx, key, max, items.len());
            (items, if max { b"ZPOPMAX" } else { b"ZPOPMIN" }, count)
        }
        BlockOp::Stream(_) | BlockOp::ListReady => return Served::empty(key),
    };
    ctx.ks.dbs[ctx.db].touch(key);
    let single = count == 1;
    if single {
        ctx.propagate(&[name, key]);
    } else {
        ctx.propagate(&[name, key, itoa::Buffer::new().format(items.len()).as_bytes()]);
    }
    Served { items, ..Served::empty(key) }
}

/// BLMOVE served where both its keys live: pop and push at once, as
/// Redis's serveClientBlockedOnList does (a destination of another type
/// refuses the move).
fn move_here(ctx: &mut Ctx, src: &[u8], from: End, dst: &[u8], to: End) -> Served {
    if ctx.lookup_as::<List>(dst).is_err() {
        return Served { wrongtype: true, ..Served::empty(src) };
    }
    ctx.ks.preserve(ctx.db, dst, ctx.now);
    let limits = super::lists::limits(ctx);
    let Some(v) = ctx.lookup_as::<List>(src).ok().flatten().and_then(|l| l.pop(from, limits)) else {
        return Served::empty(src);
    };
    if let Ok(l) = ctx.write_as::<List>(dst) {
        l.push(to, &v, limits);
    }
    ctx.event(LIST, super::lists::push_event(to), dst);
    ctx.event(LIST, super::lists::pop_event(from), src);
    ctx.drop_if_empty::<List>(src);
    ctx.changed(1);
    ctx.ks.dbs[ctx.db].touch(src);
    ctx.ks.dbs[ctx.db].touch(dst);
    ctx.propagate(&[b"LMOVE", src, dst, end_word(from), end_word(to)]);
    Served { items: vec![(v, 0.0)], pushed: Some(dst.into()), ..Served::empty(src) }
}

/// An end as a served BLMOVE's LMOVE names it (Redis's shared "left"
/// and "right").
fn end_word(end: End) -> &'static [u8] {
    if end == End::Left { b"left" } else { b"right" }
}

/// A BLMOVE woken for an element it did not move (another client took
/// it, or it failed or went away): the source's next waiter gets its turn.
async fn pass_turn(client: &Client, src: &Key) {
    let (db, key) = (client.db(), src.clone());
    client.shard.run_on(client.shard.owner(src), move |sh| sh.key_written(db, &key)).await;
}

/// How the blocking commands pop, for the shards that serve them.
static POPPER: Popper = Popper { ready, pop };

/// Returns popped elements to their key (the client that was to get them
/// disconnected).
async fn give_back(client: &Client, op: BlockOp, served: Served) {
    let db = client.db();
    let key = served.key.clone();
    client
        .shard
        .run_on(client.shard.owner(&key), move |sh| {
            sh.with_ctx(db, false, |ctx| {
                ctx.ks.preserve(db, &key, ctx.now);
            });
            sh.with_ctx(db, false, |ctx| match op {
                BlockOp::List { end, .. } => {
                    let limits = super::lists::limits(ctx);
                    if let Ok(l) = ctx.write_as::<List>(&key) {
                        served.items.iter().rev().for_each(|(v, _)| l.push(end, v, limits));
                        let push: &[u8] = if end == End::Left { b"LPUSH" } else { b"RPUSH" };
                        let values = served.items.iter().rev().map(|(v, _)| &v[..]);
                        ctx.propagate(&[push, &key].into_iter().chain(values).collect::<Vec<_>>());
                    }
                }
                BlockOp::ZSet { .. } => {
                    let limits = super::zsets::limits(ctx.hot);
                    if let Ok(z) = ctx.write_as::<crate::storage::ZSet>(&key) {
                        served.items.iter().for_each(|(m, s)| {
                            z.insert(m, *s, limits);
                        });
                        let scores: Vec<String> = served.items.iter().map(|(_, s)| format_double(*s)).collect();
                        let pairs = served.items.iter().zip(&scores).flat_map(|((m, _), s)| [s.as_bytes(), &m[..]]);
                        ctx.propagate(&[&b"ZADD"[..], &key].into_iter().chain(pairs).collect::<Vec<_>>());
                    }
                }
                // A read takes nothing away.
                BlockOp::Stream(_) | BlockOp::ListReady => {}
            });
            let ops = sh.settle();
            sh.journal(ops);
        })
        .await;
}

fn end(args: Args, i: usize) -> Result<End, CmdError> {
    match args.keyword(i).as_str() {
        "LEFT" => Ok(End::Left),
        "RIGHT" => Ok(End::Right),
        _ => Err(CmdError::Syntax),
    }
}

fn keys_between(args: Args, from: usize, to: usize) -> Vec<Key> {
    (from..to).map(|i| Key::from(args.get(i))).collect()
}

/// BLPOP / BRPOP key [key ...] timeout
async fn bpop(client: &mut Client, args: Args<'_>, end: End) -> CmdResult {
    let t = timeout(args, args.len() - 1)?;
    let keys = keys_between(args, 1, args.len() - 1);
    Ok(match block(client, &keys, t, (BlockOp::List { end, count: 1 }, &POPPER), None).await? {
        Outcome::Served(s) => Reply::Array(vec![Reply::bulk(&s.key), Reply::bulk(&s.items[0].0)]),
        Outcome::TimedOut => Reply::NullArray,
        Outcome::Unblocked => return Err(CmdError::Unblocked),
    })
}

/// BLMOVE / BRPOPLPUSH: pop from `src`, push onto `dst` (a destination
/// of another type gives the element back and answers WRONGTYPE).
async fn bmove(client: &mut Client, args: Args<'_>, from: End, to: End, t: Option<Duration>) -> CmdResult {
    let (src, dst) = (Key::from(args.get(1)), Key::from(args.get(2)));
    if client.shard.owner(&src) != client.shard.owner(&dst) {
        return bmove_across(client, &src, &dst, (from, to), t).await;
    }
    let op = BlockOp::List { end: from, count: 1 };
    let served = match block(client, std::slice::from_ref(&src), t, (op, &POPPER), Some((dst, to))).await? {
        Outcome::Served(s) => s,
        // Inside EXEC it answers as LMOVE would.
        Outcome::TimedOut if client.in_exec => return Ok(Reply::Null),
        Outcome::TimedOut => return Ok(Reply::NullArray),
        Outcome::Unblocked => return Err(CmdError::Unblocked),
    };
    if served.wrongtype {
        return Err(CmdError::WrongType);
    }
    Ok(served.items.first().map_or(Reply::Null, |(v, _)| Reply::bulk(v)))
}

/// BLMOVE between shards: a wait for the source to hold something (it
/// takes nothing), then LMOVE's transaction over both keys; if another
/// client took the element first, it waits again. No one ever sees the
/// element in neither list, and it propagates as the LMOVE it is.
async fn bmove_across(
    client: &mut Client,
    src: &Key,
    dst: &Key,
    (from, to): (End, End),
    t: Option<Duration>,
) -> CmdResult {
    let deadline = t.map(|d| std::time::Instant::now() + d);
    let db = client.db();
    loop {
        let left = match deadline {
            Some(at) => match at.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(Reply::NullArray),
            },
            None => None,
        };
        match block(client, std::slice::from_ref(src), left, (BlockOp::ListReady, &POPPER), None).await? {
            Outcome::Served(_) => {}
            // Inside EXEC it answers as LMOVE would.
            Outcome::TimedOut if client.in_exec => return Ok(Reply::Null),
            Outcome::TimedOut => return Ok(Reply::NullArray),
            Outcome::Unblocked => return Err(CmdError::Unblocked),
        }
        let tx = Tx::lock(client, db, [&src[..], &dst[..]].into_iter()).await;
        let moved = super::lists::move_one(client, &tx, src, dst, from, to).await;
        if let Ok(Some(_)) = moved {
            let lmove = [&b"LMOVE"[..], src, dst, end_word(from), end_word(to)];
            client.propagate(vec![Op::new(db, lmove.into_iter())]);
        }
        tx.unlock().await;
        if let Ok(Some(v)) = moved {
            return Ok(Reply::bulk(&v));
        }
        pass_turn(client, src).await;
        moved?;
    }
}

/// BLMPOP / BZMPOP timeout numkeys key [key ...] <end> [COUNT count]
async fn bmpop(client: &mut Client, args: Args<'_>, zset: bool) -> CmdResult {
    let t = timeout(args, 1)?;
    let (key_range, end_at, count) = parse_mpop(args, 2)?;
    let op = if zset {
        match args.keyword(end_at).as_str() {
            "MIN" => BlockOp::ZSet { max: false, count },
            "MAX" => BlockOp::ZSet { max: true, count },
            _ => return Err(CmdError::Syntax),
        }
    } else {
        BlockOp::List { end: end(args, end_at)?, count }
    };
    let keys: Vec<Key> = key_range.map(|i| Key::from(args.get(i))).collect();
    Ok(match block(client, &keys, t, (op, &POPPER), None).await? {
        Outcome::Served(s) => {
            let items = s.items.iter().map(|(m, score)| {
                if zset { Reply::Array(vec![Reply::bulk(m), Reply::Double(*score)]) } else { Reply::bulk(m) }
            });
            Reply::Array(vec![Reply::bulk(&s.key), Reply::Array(items.collect())])
        }
        Outcome::TimedOut => Reply::NullArray,
        Outcome::Unblocked => return Err(CmdError::Unblocked),
    })
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout
async fn bzpop(client: &mut Client, args: Args<'_>, max: bool) -> CmdResult {
    let t = timeout(args, args.len() - 1)?;
    let keys = keys_between(args, 1, args.len() - 1);
    Ok(match block(client, &keys, t, (BlockOp::ZSet { max, count: 1 }, &POPPER), None).await? {
        Outcome::Served(s) => {
            let (m, score) = &s.items[0];
            Reply::Array(vec![Reply::bulk(&s.key), Reply::bulk(m), Reply::Double(*score)])
        }
        Outcome::TimedOut => Reply::NullArray,
        Outcome::Unblocked => return Err(CmdError::Unblocked),
    })
}

async_handler!(blpop, |c, a| bpop(c, a, End::Left));
async_handler!(brpop, |c, a| bpop(c, a, End::Right));
async_handler!(blmpop, |c, a| bmpop(c, a, false));
async_handler!(bzmpop, |c, a| bmpop(c, a, true));
async_handler!(bzpopmin, |c, a| bzpop(c, a, false));
async_handler!(bzpopmax, |c, a| bzpop(c, a, true));

fn blmove<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let (from, to) = (end(args, 3)?, end(args, 4)?);
        let t = timeout(args, 5)?;
        bmove(client, args, from, to, t).await
    })
}

fn brpoplpush<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let t = timeout(args, 3)?;
        bmove(client, args, End::Right, End::Left, t).await
    })
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("blpop", -3, WRITE | BLOCKING | NOSCRIPT, Keys::Range(1, -2, 1), Handler::Async(blpop)),
    Spec::new("brpop", -3, WRITE | BLOCKING | NOSCRIPT, Keys::Range(1, -2, 1), Handler::Async(brpop)),
    Spec::new("blmove", 6, WRITE | BLOCKING | DENYOOM | NOSCRIPT, Keys::Range(1, 2, 1), Handler::Async(blmove)),
    Spec::new("brpoplpush", 4, WRITE | BLOCKING | DENYOOM | NOSCRIPT, Keys::Range(1, 2, 1), Handler::Async(brpoplpush)),
    Spec::new("blmpop", -5, WRITE | BLOCKING | NOSCRIPT, Keys::Numkeys(2), Handler::Async(blmpop)),
    Spec::new("bzpopmin", -3, WRITE | BLOCKING | FAST | NOSCRIPT, Keys::Range(1, -2, 1), Handler::Async(bzpopmin)),
    Spec::new("bzpopmax", -3, WRITE | BLOCKING | FAST | NOSCRIPT, Keys::Range(1, -2, 1), Handler::Async(bzpopmax)),
    Spec::new("bzmpop", -5, WRITE | BLOCKING | NOSCRIPT, Keys::Numkeys(2), Handler::Async(bzmpop)),
];
