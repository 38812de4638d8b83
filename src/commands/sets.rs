//! Set commands (t_set.c). Commands over several keys (SINTER, SUNION,
//! SDIFF and their STORE forms, SINTERCARD, SMOVE) read every source under
//! one transaction, compute on the connection's core and write the
//! destination on its owner, whether the keys share a shard or not.

use futures::future::LocalBoxFuture;

use super::keys::ScanOptions;
use super::{Handler, Spec, intercard_limit, pop_count, random_positions};
use crate::command::{Args, COUNTED, Ctx, DENYOOM, FAST, Keys, READONLY, Typed, WRITE, Writes};
use crate::config::Hot;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::{GENERIC, SET};
use crate::storage::{Key, Set, SetLimits, SmallBytes, Value};

fn limits(hot: &Hot) -> SetLimits {
    hot.set_limits()
}

fn sadd(ctx: &mut Ctx, args: Args) -> CmdResult {
    let limits = limits(ctx.hot);
    let key = args.get(1);
    if ctx.lookup(key).is_none() {
        ctx.set(key, Set::for_member(args.get(2), limits).wrap(), 0);
    }
    let s = ctx.write_as::<Set>(key)?;
    let added = (2..args.len()).filter(|&i| s.insert(args.get(i), limits)).count();
    if added > 0 {
        ctx.event(SET, "sadd", key);
    }
    Ok(Reply::Int(added as i64))
}

fn srem(ctx: &mut Ctx, args: Args) -> CmdResult {
    let key = args.get(1);
    let Some(s) = ctx.lookup_as::<Set>(key)? else { return Ok(Reply::Int(0)) };
    let removed = (2..args.len()).filter(|&i| s.remove(args.get(i))).count();
    if removed > 0 {
        ctx.event(SET, "srem", key);
    }
    ctx.drop_if_empty::<Set>(key);
    Ok(Reply::Int(removed as i64))
}

fn members_reply(members: impl IntoIterator<Item = SmallBytes>) -> Reply {
    Reply::Set(members.into_iter().map(|m| Reply::bulk(&m)).collect())
}

fn smembers(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(members_reply(ctx.read_as::<Set>(args.get(1))?.map(|s| s.members()).unwrap_or_default()))
}

fn sismember(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_as::<Set>(args.get(1))?.is_some_and(|s| s.contains(args.get(2))) as i64))
}

fn smismember(ctx: &mut Ctx, args: Args) -> CmdResult {
    let s = ctx.read_as::<Set>(args.get(1))?;
    Ok(Reply::Array(
        (2..args.len()).map(|i| Reply::Int(s.as_ref().is_some_and(|s| s.contains(args.get(i))) as i64)).collect(),
    ))
}

fn scard(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_as::<Set>(args.get(1))?.map_or(0, |s| s.len() as i64)))
}

fn spop(ctx: &mut Ctx, args: Args) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => Some(pop_count(args, 2)?),
        _ => return Err(CmdError::Syntax),
    };
    let key = args.get(1);
    let Some(s) = ctx.lookup_as::<Set>(key)? else {
        ctx.changed(0);
        return Ok(if count.is_some() { Reply::Set(Vec::new()) } else { Reply::Null });
    };
    let picks = random_positions(s.len(), count.unwrap_or(1) as i64, || s.random(), || s.positions());
    let chosen: Vec<SmallBytes> = picks.into_iter().filter_map(|p| s.at(p)).collect();
    for m in &chosen {
        s.remove(m);
    }
    let emptied = s.is_empty();
    if !chosen.is_empty() {
        ctx.event(SET, "spop", key);
        ctx.changed(chosen.len() as u64);
    }
    ctx.drop_if_empty::<Set>(key);
    // The random picks propagate as what they removed (Redis's SREM, in
    // batches; DEL when the whole set went).
    if chosen.is_empty() {
        ctx.changed(0);
    } else if emptied && count.is_some() {
        ctx.propagate(&[b"DEL", key]);
    } else {
        for batch in chosen.chunks(1024) {
            let rewrite: Vec<&[u8]> = [&b"SREM"[..], key].into_iter().chain(batch.iter().map(|m| &m[..])).collect();
            ctx.propagate(&rewrite);
        }
    }
    Ok(match count {
        None => chosen.first().map_or(Reply::Null, |m| Reply::bulk(m)),
        Some(_) => members_reply(chosen),
    })
}

fn srandmember(ctx: &mut Ctx, args: Args) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => Some(super::random_count(args, 2)?),
        _ => return Err(CmdError::Syntax),
    };
    let s = ctx.read_as::<Set>(args.get(1))?;
    match (s, count) {
        (None, None) => Ok(Reply::Null),
        (None, Some(_)) => Ok(Reply::Array(Vec::new())),
        (Some(s), None) => Ok(s.random().and_then(|p| s.at(p)).map_or(Reply::Null, |m| Reply::bulk(&m))),
        (Some(s), Some(n)) => {
            let picks = random_positions(s.len(), n, || s.random(), || s.positions());
            Ok(Reply::Array(picks.into_iter().filter_map(|p| s.at(p)).map(|m| Reply::bulk(&m)).collect()))
        }
    }
}

fn sscan(ctx: &mut Ctx, args: Args) -> CmdResult {
    let o = ScanOptions::parse(args, 2, false)?;
    let mut found = Vec::new();
    let mut next = 0;
    if let Some(s) = ctx.read_as::<Set>(args.get(1))? {
        next = s.scan(o.cursor as usize, o.count, |m| {
            if o.matches(m) {
                found.push(Reply::bulk(m));
            }
        });
    }
    Ok(ScanOptions::reply(next, Reply::Array(found)))
}

/// The sets at `keys` (None for a missing key), read on their owners
/// under `tx`; WRONGTYPE if one holds another type.
async fn read_sets(client: &Client, tx: &Tx, keys: &[Key]) -> Result<Vec<Option<Set>>, CmdError> {
    let mut sets = Vec::with_capacity(keys.len());
    for key in keys {
        let value = tx.on(client, client.db(), key, |ctx, k| ctx.read(k).map(|e| e.value.clone())).await;
        sets.push(match value {
            None => None,
            Some(Value::Set(s)) => Some(s),
            Some(_) => return Err(CmdError::WrongType),
        });
    }
    Ok(sets)
}

/// Stores `set` as the result of `event` in `key`, on its owner (an
/// empty set deletes the key).
async fn store_set(client: &Client, tx: &Tx, key: &[u8], set: Set, event: &'static str) {
    tx.on(client, client.db(), key, move |ctx, key| {
        if set.is_empty() {
            let now = ctx.now;
            if ctx.db().remove(key, now).is_some() {
                ctx.event(GENERIC, "del", key);
                ctx.changed(1);
            }
        } else {
            ctx.set(key, set.wrap(), 0);
            ctx.event(SET, event, key);
            ctx.changed(1);
        }
    })
    .await;
}

#[derive(Clone, Copy)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

fn combine(op: Algebra, sets: &[Option<Set>]) -> Vec<SmallBytes> {
    let members = |s: &Option<Set>| s.as_ref().map(|s| s.members()).unwrap_or_default();
    match op {
        Algebra::Inter => {
            if sets.iter().any(|s| s.is_none()) {
                return Vec::new();
            }
            let mut smallest = sets.iter().flatten().min_by_key(|s| s.len()).map(|s| s.members()).unwrap_or_default();
            smallest.retain(|m| sets.iter().flatten().all(|s| s.contains(m)));
            smallest
        }
        Algebra::Union => {
            let mut seen = indexmap::IndexSet::<SmallBytes>::new();
            sets.iter().for_each(|s| seen.extend(members(s)));
            seen.into_iter().collect()
        }
        Algebra::Diff => {
            let mut first = members(&sets[0]);
            first.retain(|m| sets[1..].iter().flatten().all(|s| !s.contains(m)));
            first
        }
    }
}

fn build(members: &[SmallBytes], limits: SetLimits) -> Set {
    let mut s = members.first().map_or_else(Set::default, |m| Set::for_member(m, limits));
    members.iter().for_each(|m| {
        s.insert(m, limits);
    });
    s
}

/// SINTER / SUNION / SDIFF, and with `store` their STORE forms.
async fn algebra(client: &mut Client, args: Args<'_>, op: Algebra, store: Option<&'static str>) -> CmdResult {
    let sources: Vec<Key> = (if store.is_some() { 2 } else { 1 }..args.len()).map(|i| Key::new(args.get(i))).collect();
    let db = client.db();
    let mut locked: Vec<&[u8]> = sources.iter().map(|k| &**k).collect();
    if store.is_some() {
        locked.push(args.get(1));
    }
    let tx = Tx::lock(client, db, locked.into_iter()).await;
    let result = async {
        let sets = read_sets(client, &tx, &sources).await?;
        let members = combine(op, &sets);
        if let Some(event) = store {
            let n = members.len();
            let set = build(&members, limits(&client.shard.server.hot));
            store_set(client, &tx, args.get(1), set, event).await;
            Ok(Reply::Int(n as i64))
        } else {
            Ok(members_reply(members))
        }
    }
    .await;
    tx.unlock().await;
    result
}

async_handler!(sinter, |c, a| algebra(c, a, Algebra::Inter, None));
async_handler!(sunion, |c, a| algebra(c, a, Algebra::Union, None));
async_handler!(sdiff, |c, a| algebra(c, a, Algebra::Diff, None));
async_handler!(sinterstore, |c, a| algebra(c, a, Algebra::Inter, Some("sinterstore")));
async_handler!(sunionstore, |c, a| algebra(c, a, Algebra::Union, Some("sunionstore")));
async_handler!(sdiffstore, |c, a| algebra(c, a, Algebra::Diff, Some("sdiffstore")));

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
fn sintercard<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let n = args.int(1).ok().filter(|&n| n > 0).ok_or_else(|| CmdError::err("numkeys should be greater than 0"))?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let limit = intercard_limit(args, n)?;
        let sources: Vec<Key> = (2..2 + n).map(|i| Key::new(args.get(i))).collect();
        let tx = Tx::lock(client, client.db(), sources.iter().map(|k| &**k)).await;
        let sets = read_sets(client, &tx, &sources).await;
        tx.unlock().await;
        let count = combine(Algebra::Inter, &sets?).len();
        Ok(Reply::Int(if limit > 0 { count.min(limit) } else { count } as i64))
    })
}

/// SMOVE src dst member, wherever the two keys live.
async fn smove(client: &mut Client, args: Args<'_>) -> CmdResult {
    let (db, src, dst) = (client.db(), args.get(1), args.get(2));
    let member = SmallBytes::new(args.get(3));
    let tx = Tx::lock(client, db, [src, dst].into_iter()).await;
    let result = async {
        let m = member.clone();
        let Some(has) =
            tx.on(client, db, src, move |ctx, k| ctx.lookup_as::<Set>(k).map(|s| s.map(|s| s.contains(&m)))).await?
        else {
            return Ok(Reply::Int(0));
        };
        tx.on(client, db, dst, |ctx, k| ctx.lookup_as::<Set>(k).map(|_| ())).await?;
        if src == dst || !has {
            return Ok(Reply::Int(has as i64));
        }
        let m = member.clone();
        tx.on(client, db, src, move |ctx, k| {
            if let Ok(Some(s)) = ctx.lookup_as::<Set>(k) {
                s.remove(&m);
            }
            ctx.event(SET, "srem", k);
            ctx.drop_if_empty::<Set>(k);
            ctx.changed(1);
        })
        .await;
        tx.on(client, db, dst, move |ctx, k| {
            let limits = limits(ctx.hot);
            if ctx.lookup(k).is_none() {
                ctx.set(k, Set::for_member(&member, limits).wrap(), 0);
            }
            if ctx.write_as::<Set>(k).is_ok_and(|s| s.insert(&member, limits)) {
                ctx.event(SET, "sadd", k);
                ctx.changed(1);
            }
        })
        .await;
        Ok(Reply::Int(1))
    }
    .await;
    tx.unlock().await;
    result
}

async_handler!(smove_cmd, smove);

const KEY1: Keys = Keys::Range(1, 1, 1);
const ALL_KEYS: Keys = Keys::Range(1, -1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("sadd", -3, COUNTED | WRITE | DENYOOM | FAST, KEY1, Handler::Data(sadd)),
    Spec::new("srem", -3, COUNTED | WRITE | FAST, KEY1, Handler::Data(srem)),
    Spec::new("smembers", 2, READONLY, KEY1, Handler::Data(smembers)),
    Spec::new("sismember", 3, READONLY | FAST, KEY1, Handler::Data(sismember)),
    Spec::new("smismember", -3, READONLY | FAST, KEY1, Handler::Data(smismember)),
    Spec::new("scard", 2, READONLY | FAST, KEY1, Handler::Data(scard)),
    Spec::new("spop", -2, WRITE | FAST, KEY1, Handler::Data(spop)),
    Spec::new("srandmember", -2, READONLY, KEY1, Handler::Data(srandmember)),
    Spec::new("sscan", -3, READONLY, KEY1, Handler::Data(sscan)),
    Spec::new("smove", 4, WRITE | FAST, Keys::Range(1, 2, 1), Handler::Async(smove_cmd)),
    Spec::new("sinter", -2, READONLY, ALL_KEYS, Handler::Async(sinter)),
    Spec::new("sunion", -2, READONLY, ALL_KEYS, Handler::Async(sunion)),
    Spec::new("sdiff", -2, READONLY, ALL_KEYS, Handler::Async(sdiff)),
    Spec::new("sinterstore", -3, WRITE | DENYOOM, ALL_KEYS, Handler::Async(sinterstore)).writing(Writes::First),
    Spec::new("sunionstore", -3, WRITE | DENYOOM, ALL_KEYS, Handler::Async(sunionstore)).writing(Writes::First),
    Spec::new("sdiffstore", -3, WRITE | DENYOOM, ALL_KEYS, Handler::Async(sdiffstore)).writing(Writes::First),
    Spec::new("sintercard", -3, READONLY, Keys::Numkeys(1), Handler::Async(sintercard)),
];
