//! List commands (t_list.c). LMOVE, RPOPLPUSH and LMPOP touch several
//! keys and run as one transaction wherever the keys live.

use futures::future::LocalBoxFuture;

use super::{Handler, Spec, mpop, parse_mpop, pop_count};
use crate::command::{Args, COUNTED, Ctx, DENYOOM, FAST, Keys, READONLY, WRITE};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::{GENERIC, LIST};
use crate::storage::{End, List, ListLimits, SmallBytes};

pub(crate) fn limits(ctx: &Ctx) -> ListLimits {
    ctx.hot.list_limits()
}

fn end_of(args: Args, i: usize) -> Result<End, CmdError> {
    match args.keyword(i).as_str() {
        "LEFT" => Ok(End::Left),
        "RIGHT" => Ok(End::Right),
        _ => Err(CmdError::Syntax),
    }
}

pub(crate) fn push_event(end: End) -> &'static str {
    if end == End::Left { "lpush" } else { "rpush" }
}

pub(crate) fn pop_event(end: End) -> &'static str {
    if end == End::Left { "lpop" } else { "rpop" }
}

/// After `count` elements were popped from `end` of the list at `key`
/// (Redis's listElementsRemoved): its event, and the key deleted if the
/// list is empty now. Returns whether it was.
pub(crate) fn popped(ctx: &mut Ctx, key: &[u8], end: End, count: usize) -> bool {
    ctx.event(LIST, pop_event(end), key);
    ctx.changed(count as u64);
    ctx.drop_if_empty::<List>(key)
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX
fn push(ctx: &mut Ctx, args: Args, end: End, only_existing: bool) -> CmdResult {
    let key = args.get(1);
    let exists = match ctx.lookup(key) {
        Some(e) if !matches!(e.value, crate::storage::Value::List(_)) => return Err(CmdError::WrongType),
        found => found.is_some(),
    };
    if only_existing && !exists {
        ctx.changed(0);
        return Ok(Reply::Int(0));
    }
    let limits = limits(ctx);
    let l = ctx.write_as::<List>(key)?;
    (2..args.len()).for_each(|i| l.push(end, args.get(i), limits));
    let len = l.len() as i64;
    ctx.event(LIST, push_event(end), key);
    ctx.changed(args.len() as u64 - 2);
    Ok(Reply::Int(len))
}

fn lpush(ctx: &mut Ctx, args: Args) -> CmdResult {
    push(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx, args: Args) -> CmdResult {
    push(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx, args: Args) -> CmdResult {
    push(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx, args: Args) -> CmdResult {
    push(ctx, args, End::Right, true)
}

/// LPOP / RPOP key [count]
fn pop(ctx: &mut Ctx, args: Args, end: End, cmd: &str) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::arity(cmd));
    }
    let count = if args.len() == 3 { Some(pop_count(args, 2)?) } else { None };
    let key = args.get(1);
    let limits = limits(ctx);
    let Some(l) = ctx.lookup_as::<List>(key)? else {
        ctx.changed(0);
        return Ok(if count.is_some() { Reply::NullArray } else { Reply::Null });
    };
    let (reply, n) = match count {
        Some(0) => {
            ctx.changed(0);
            return Ok(Reply::Array(Vec::new()));
        }
        None => (l.pop(end, limits).map_or(Reply::Null, |v| Reply::bulk(&v)), 1),
        Some(n) => {
            let items: Vec<Reply> = (0..n).map_while(|_| l.pop(end, limits)).map(|v| Reply::bulk(&v)).collect();
            let n = items.len();
            (Reply::Array(items), n)
        }
    };
    popped(ctx, key, end, n);
    Ok(reply)
}

fn lpop(ctx: &mut Ctx, args: Args) -> CmdResult {
    pop(ctx, args, End::Left, "lpop")
}

fn rpop(ctx: &mut Ctx, args: Args) -> CmdResult {
    pop(ctx, args, End::Right, "rpop")
}

fn llen(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_as::<List>(args.get(1))?.map_or(0, |l| l.len() as i64)))
}

/// A possibly negative index into a list of `len` entries.
fn index(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// Redis's LRANGE/LTRIM clamping: the inclusive range as `start..end`.
fn clamp(start: i64, end: i64, len: usize) -> std::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end.min(len - 1) };
    if start > end || start >= len { 0..0 } else { start as usize..end as usize + 1 }
}

fn lindex(ctx: &mut Ctx, args: Args) -> CmdResult {
    let i = args.int(2)?;
    let l = ctx.read_as::<List>(args.get(1))?;
    Ok(l.and_then(|l| index(i, l.len()).and_then(|i| l.get(i))).map_or(Reply::Null, Reply::bulk))
}

fn lrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (start, end) = (args.int(2)?, args.int(3)?);
    let Some(l) = ctx.read_as::<List>(args.get(1))? else { return Ok(Reply::Array(Vec::new())) };
    let r = clamp(start, end, l.len());
    Ok(Reply::bulk_array(r.len(), |push| l.for_each_in(r.start, r.len(), push)))
}

fn lset(ctx: &mut Ctx, args: Args) -> CmdResult {
    let i = args.int(2)?;
    let limits = limits(ctx);
    let Some(l) = ctx.lookup_as::<List>(args.get(1))? else { return Err(CmdError::NoSuchKey) };
    let i = index(i, l.len()).ok_or_else(|| CmdError::err("index out of range"))?;
    l.set(i, args.get(3), limits);
    ctx.event(LIST, "lset", args.get(1));
    Ok(Reply::Ok)
}

fn linsert(ctx: &mut Ctx, args: Args) -> CmdResult {
    let after = match args.keyword(2).as_str() {
        "BEFORE" => false,
        "AFTER" => true,
        _ => return Err(CmdError::Syntax),
    };
    let limits = limits(ctx);
    let Some(l) = ctx.lookup_as::<List>(args.get(1))? else {
        ctx.changed(0);
        return Ok(Reply::Int(0));
    };
    let Some(at) = l.iter().position(|e| e == args.get(3)) else {
        ctx.changed(0);
        return Ok(Reply::Int(-1));
    };
    l.insert(at + after as usize, args.get(4), limits);
    let len = l.len() as i64;
    ctx.event(LIST, "linsert", args.get(1));
    Ok(Reply::Int(len))
}

fn lrem(ctx: &mut Ctx, args: Args) -> CmdResult {
    let count = args.int(2)?;
    let key = args.get(1);
    let limits = limits(ctx);
    let Some(l) = ctx.lookup_as::<List>(key)? else { return Ok(Reply::Int(0)) };
    let target = args.get(3);
    let mut positions: Vec<usize> = l.iter().enumerate().filter(|(_, e)| *e == target).map(|(i, _)| i).collect();
    if count < 0 {
        positions.reverse();
    }
    if count != 0 {
        positions.truncate(count.unsigned_abs() as usize);
    }
    positions.sort_unstable_by(|a, b| b.cmp(a));
    positions.iter().for_each(|&i| l.remove(i, limits));
    if !positions.is_empty() {
        ctx.event(LIST, "lrem", key);
    }
    ctx.drop_if_empty::<List>(key);
    Ok(Reply::Int(positions.len() as i64))
}

fn ltrim(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (start, end) = (args.int(2)?, args.int(3)?);
    let key = args.get(1);
    let limits = limits(ctx);
    let Some(l) = ctx.lookup_as::<List>(key)? else {
        ctx.changed(0);
        return Ok(Reply::Ok);
    };
    let (len, r) = (l.len(), clamp(start, end, l.len()));
    l.keep(r.start, r.end, limits);
    ctx.event(LIST, "ltrim", key);
    ctx.changed((len - r.len()) as u64);
    ctx.drop_if_empty::<List>(key);
    Ok(Reply::Ok)
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len]
fn lpos(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        match args.keyword(j).as_str() {
            "RANK" if more => {
                rank = args.int(j + 1)?;
                if rank == 0 {
                    return Err(CmdError::err(
                        "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    ));
                }
                if rank == i64::MIN {
                    return Err(CmdError::NotInteger);
                }
            }
            "COUNT" if more => {
                let n = args.int(j + 1).ok().filter(|&n| n >= 0);
                count = Some(n.ok_or_else(|| CmdError::err("COUNT can't be negative"))? as usize);
            }
            "MAXLEN" if more => {
                let n = args.int(j + 1).ok().filter(|&n| n >= 0);
                maxlen = n.ok_or_else(|| CmdError::err("MAXLEN can't be negative"))? as usize;
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 2;
    }
    let Some(l) = ctx.read_as::<List>(args.get(1))? else {
        return Ok(if count.is_some() { Reply::Array(Vec::new()) } else { Reply::Null });
    };
    let len = l.len();
    let target = args.get(2);
    let scan: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
        Box::new(l.iter().enumerate())
    } else {
        Box::new(l.iter_rev().enumerate().map(|(i, e)| (len - 1 - i, e)))
    };
    let limit = if maxlen == 0 { len } else { maxlen };
    let matches = scan.take(limit).filter(|(_, e)| *e == target).map(|(i, _)| i).skip(rank.unsigned_abs() as usize - 1);
    Ok(match count {
        None => matches.map(|i| Reply::Int(i as i64)).next().unwrap_or(Reply::Null),
        Some(0) => Reply::Array(matches.map(|i| Reply::Int(i as i64)).collect()),
        Some(n) => Reply::Array(matches.take(n).map(|i| Reply::Int(i as i64)).collect()),
    })
}

/// Moves one element from `src`'s `from` end to `dst`'s `to` end under
/// `tx`; None when `src` is missing.
pub(super) async fn move_one(
    client: &Client,
    tx: &Tx,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<SmallBytes>, CmdError> {
    let db = client.db();
    let src_is_list = tx.on(client, db, src, |ctx, k| ctx.lookup_as::<List>(k).map(|l| l.is_some())).await?;
    if !src_is_list {
        return Ok(None);
    }
    tx.on(client, db, dst, |ctx, k| ctx.lookup_as::<List>(k).map(|_| ())).await?;
    // Emptied, the source goes now unless it is the destination too.
    let same = src == dst;
    let taken = tx
        .on(client, db, src, move |ctx, k| {
            let limits = limits(ctx);
            let v = ctx.lookup_as::<List>(k).ok().flatten().and_then(|l| l.pop(from, limits));
            let now = ctx.now;
            let emptied = !same && ctx.lookup_as::<List>(k).ok().flatten().is_some_and(|l| l.is_empty());
            if emptied {
                ctx.db().remove(k, now);
            }
            ctx.modified();
            v.map(|v| (v, emptied))
        })
        .await;
    let Some((v, emptied)) = taken else { return Ok(None) };
    let (pushed, src_key) = (v.clone(), crate::storage::Key::from(src));
    // Redis reports the push, then the pop (and the source's deletion).
    tx.on(client, db, dst, move |ctx, k| {
        let limits = limits(ctx);
        if let Ok(l) = ctx.write_as::<List>(k) {
            l.push(to, &pushed, limits);
        }
        ctx.event(LIST, push_event(to), k);
        ctx.event(LIST, pop_event(from), &src_key);
        if emptied {
            ctx.event(GENERIC, "del", &src_key);
        }
        ctx.changed(1);
    })
    .await;
    Ok(Some(v))
}

async fn lmove_generic(client: &mut Client, args: Args<'_>, from: End, to: End) -> CmdResult {
    let (src, dst) = (args.get(1), args.get(2));
    let tx = Tx::lock(client, client.db(), [src, dst].into_iter()).await;
    let moved = move_one(client, &tx, src, dst, from, to).await;
    tx.unlock().await;
    Ok(moved?.map_or(Reply::Null, |v| Reply::bulk(&v)))
}

fn lmove<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let (from, to) = (end_of(args, 3)?, end_of(args, 4)?);
        lmove_generic(client, args, from, to).await
    })
}

fn rpoplpush<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(lmove_generic(client, args, End::Right, End::Left))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
fn lmpop<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let (key_range, end_at, count) = parse_mpop(args, 1)?;
        let end = end_of(args, end_at)?;
        let keys: Vec<&[u8]> = key_range.map(|i| args.get(i)).collect();
        let pop = move |ctx: &mut Ctx, k: &[u8]| {
            let limits = limits(ctx);
            let items: Vec<SmallBytes> = match ctx.lookup_as::<List>(k)? {
                None => return Ok(None),
                Some(l) => (0..count).map_while(|_| l.pop(end, limits)).collect(),
            };
            popped(ctx, k, end, items.len());
            Ok(Some(items))
        };
        mpop(client, keys, pop, |items: Vec<SmallBytes>| Reply::Array(items.iter().map(|v| Reply::bulk(v)).collect()))
            .await
    })
}

const KEY1: Keys = Keys::Range(1, 1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("lpush", -3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(lpush)),
    Spec::new("rpush", -3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(rpush)),
    Spec::new("lpushx", -3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(lpushx)),
    Spec::new("rpushx", -3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(rpushx)),
    Spec::new("lpop", -2, WRITE | FAST, KEY1, Handler::Data(lpop)),
    Spec::new("rpop", -2, WRITE | FAST, KEY1, Handler::Data(rpop)),
    Spec::new("llen", 2, READONLY | FAST, KEY1, Handler::Data(llen)),
    Spec::new("lindex", 3, READONLY, KEY1, Handler::Data(lindex)),
    Spec::new("lrange", 4, READONLY, KEY1, Handler::Data(lrange)),
    Spec::new("lset", 4, WRITE | DENYOOM, KEY1, Handler::Data(lset)),
    Spec::new("linsert", 5, WRITE | DENYOOM, KEY1, Handler::Data(linsert)),
    Spec::new("lrem", 4, COUNTED | WRITE, KEY1, Handler::Data(lrem)),
    Spec::new("ltrim", 4, WRITE, KEY1, Handler::Data(ltrim)),
    Spec::new("lpos", -3, READONLY, KEY1, Handler::Data(lpos)),
    Spec::new("lmove", 5, WRITE | DENYOOM, Keys::Range(1, 2, 1), Handler::Async(lmove)),
    Spec::new("rpoplpush", 3, WRITE | DENYOOM, Keys::Range(1, 2, 1), Handler::Async(rpoplpush)),
    Spec::new("lmpop", -4, WRITE, Keys::Numkeys(1), Handler::Async(lmpop)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp(0, -1, 5), 0..5);
        assert_eq!(clamp(-100, 100, 5), 0..5);
        assert_eq!(clamp(3, 1, 5), 0..0);
        assert_eq!(clamp(5, 10, 5), 0..0);
        assert_eq!(clamp(-2, -1, 5), 3..5);
        assert_eq!(index(-1, 3), Some(2));
        assert_eq!(index(3, 3), None);
        assert_eq!(index(-4, 3), None);
    }
}
