//! Sorted set commands (t_zset.c). The commands over several keys
//! (ZUNION, ZINTER, ZDIFF and their STORE forms, ZINTERCARD, ZRANGESTORE,
//! ZMPOP) read and write under one transaction wherever the keys live.

use futures::future::LocalBoxFuture;

use super::keys::ScanOptions;
use super::{Handler, Spec, intercard_limit, mpop, parse_mpop, pop_count, random_positions};
use crate::command::{
    Args, COUNTED, Ctx, DENYOOM, FAST, Keys, READONLY, Typed, WRITE, Writes, parse_f64, store_numkeys,
};
use crate::config::Hot;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::{GENERIC, ZSET};
use crate::storage::{Key, SmallBytes, Value, ZLimits, ZSet};

pub(crate) fn limits(hot: &Hot) -> ZLimits {
    hot.zset_limits()
}

fn nan_error() -> CmdError {
    CmdError::err("resulting score is not a number (NaN)")
}

fn score_reply(s: f64) -> Reply {
    Reply::Double(s)
}

fn with_scores(items: Vec<(f64, SmallBytes)>, scores: bool) -> Reply {
    if scores {
        Reply::Pairs(items.into_iter().map(|(s, m)| (Reply::bulk(&m), score_reply(s))).collect())
    } else {
        Reply::Array(items.into_iter().map(|(_, m)| Reply::bulk(&m)).collect())
    }
}

#[derive(Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// Applies one ZADD element; returns (added, updated, processed, score).
fn zadd_one(
    z: &mut ZSet,
    member: &[u8],
    mut score: f64,
    f: &AddFlags,
    limits: ZLimits,
) -> Result<(bool, bool, bool, f64), CmdError> {
    match z.score(member) {
        Some(cur) => {
            if f.nx {
                return Ok((false, false, false, cur));
            }
            if f.incr {
                score += cur;
                if score.is_nan() {
                    return Err(nan_error());
                }
            }
            if (f.gt && score <= cur) || (f.lt && score >= cur) {
                return Ok((false, false, false, cur));
            }
            if score != cur {
                z.insert(member, score, limits);
                return Ok((false, true, true, score));
            }
            Ok((false, false, true, score))
        }
        None if f.xx => Ok((false, false, false, score)),
        None => {
            z.insert(member, score, limits);
            Ok((true, false, true, score))
        }
    }
}

fn zadd_generic(ctx: &mut Ctx, args: Args, mut f: AddFlags, mut at: usize) -> CmdResult {
    while at < args.len() {
        match args.keyword(at).as_str() {
            "NX" => f.nx = true,
            "XX" => f.xx = true,
            "CH" => f.ch = true,
            "INCR" => f.incr = true,
            "GT" => f.gt = true,
            "LT" => f.lt = true,
            _ => break,
        }
        at += 1;
    }
    let elements = args.len() - at;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if f.nx && f.xx {
        return Err(CmdError::err("XX and NX options at the same time are not compatible"));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::err("GT, LT, and/or NX options at the same time are not compatible"));
    }
    if f.incr && elements > 2 {
        return Err(CmdError::err("INCR option supports a single increment-element pair"));
    }
    let scores = (at..args.len()).step_by(2).map(|i| args.float(i)).collect::<Result<Vec<f64>, _>>()?;
    let key = args.get(1);
    let limits = limits(ctx.hot);
    let exists = ctx.lookup_as::<ZSet>(key)?.is_some();
    if !exists && f.xx {
        ctx.changed(0);
        return Ok(if f.incr { Reply::Null } else { Reply::Int(0) });
    }
    if !exists {
        ctx.set(key, ZSet::for_member(args.get(at + 1), limits).wrap(), 0);
    }
    let z = ctx.write_as::<ZSet>(key)?;
    let (mut added, mut updated, mut processed, mut last) = (0, 0, 0, 0.0);
    for (j, score) in scores.into_iter().enumerate() {
        let r = zadd_one(z, args.get(at + 1 + 2 * j), score, &f, limits);
        let (a, u, p, s) = match r {
            Ok(r) => r,
            Err(e) => {
                ctx.drop_if_empty::<ZSet>(key);
                return Err(e);
            }
        };
        added += a as i64;
        updated += u as i64;
        processed += p as i64;
        last = s;
    }
    ctx.drop_if_empty::<ZSet>(key);
    // The event tells additions and score changes alike (the reply may not).
    if added + updated > 0 {
        ctx.event(ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    ctx.changed((added + updated) as u64);
    Ok(if f.incr {
        if processed > 0 { score_reply(last) } else { Reply::Null }
    } else {
        Reply::Int(if f.ch { added + updated } else { added })
    })
}

pub(super) fn zadd(ctx: &mut Ctx, args: Args) -> CmdResult {
    zadd_generic(ctx, args, AddFlags::default(), 2)
}

fn zincrby(ctx: &mut Ctx, args: Args) -> CmdResult {
    zadd_generic(ctx, args, AddFlags { incr: true, ..AddFlags::default() }, 2)
}

fn zrem(ctx: &mut Ctx, args: Args) -> CmdResult {
    let key = args.get(1);
    let Some(z) = ctx.lookup_as::<ZSet>(key)? else { return Ok(Reply::Int(0)) };
    let n = (2..args.len()).filter(|&i| z.remove(args.get(i)).is_some()).count();
    if n > 0 {
        ctx.event(ZSET, "zrem", key);
    }
    ctx.drop_if_empty::<ZSet>(key);
    Ok(Reply::Int(n as i64))
}

fn zcard(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_as::<ZSet>(args.get(1))?.map_or(0, |z| z.len() as i64)))
}

fn zscore(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(ctx.read_as::<ZSet>(args.get(1))?.and_then(|z| z.score(args.get(2))).map_or(Reply::Null, score_reply))
}

fn zmscore(ctx: &mut Ctx, args: Args) -> CmdResult {
    let z = ctx.read_as::<ZSet>(args.get(1))?;
    Ok(Reply::Array(
        (2..args.len())
            .map(|i| z.as_ref().and_then(|z| z.score(args.get(i))).map_or(Reply::Null, score_reply))
            .collect(),
    ))
}

fn rank_generic(ctx: &mut Ctx, args: Args, rev: bool) -> CmdResult {
    let z = ctx.read_as::<ZSet>(args.get(1))?;
    Ok(z.and_then(|z| z.rank(args.get(2)).map(|r| if rev { z.len() - 1 - r } else { r }))
        .map_or(Reply::Null, |r| Reply::Int(r as i64)))
}

fn zrank(ctx: &mut Ctx, args: Args) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx, args: Args) -> CmdResult {
    rank_generic(ctx, args, true)
}

/// One end of a score range: `1.5`, `(1.5`, `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

fn score_bound(b: &[u8]) -> Option<ScoreBound> {
    let (exclusive, rest) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    parse_f64(rest).map(|value| ScoreBound { value, exclusive })
}

/// One end of a lex range: `-`, `+`, `[x`, `(x`.
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

fn lex_bound(b: &[u8]) -> Option<LexBound> {
    match b.first() {
        Some(b'-') if b.len() == 1 => Some(LexBound::Min),
        Some(b'+') if b.len() == 1 => Some(LexBound::Max),
        Some(b'[') => Some(LexBound::Incl(b[1..].to_vec())),
        Some(b'(') => Some(LexBound::Excl(b[1..].to_vec())),
        _ => None,
    }
}

/// The ascending rank interval a range selects.
enum Range {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

impl Range {
    /// `start..end` in ascending ranks; for a rank range `rev` means the
    /// indexes count from the highest score.
    fn ranks(&self, z: &ZSet, rev: bool) -> std::ops::Range<usize> {
        let len = z.len();
        match self {
            Range::Rank(start, end) => {
                let l = len as i64;
                let mut s = if *start < 0 { l + start } else { *start };
                let e = if *end < 0 { l + end } else { *end };
                s = s.max(0);
                if s > e || s >= l {
                    return 0..0;
                }
                let e = e.min(l - 1);
                if rev { (l - 1 - e) as usize..(l - s) as usize } else { s as usize..e as usize + 1 }
            }
            Range::Score(min, max) => {
                let lo = z.count_while(&|s, _| s < min.value || (min.exclusive && s == min.value));
                let hi = z.count_while(&|s, _| s < max.value || (!max.exclusive && s == max.value));
                lo..hi.max(lo)
            }
            Range::Lex(min, max) => {
                let below_min = |m: &[u8]| match min {
                    LexBound::Min => false,
                    LexBound::Max => true,
                    LexBound::Incl(x) => m < &x[..],
                    LexBound::Excl(x) => m <= &x[..],
                };
                let within_max = |m: &[u8]| match max {
                    LexBound::Min => false,
                    LexBound::Max => true,
                    LexBound::Incl(x) => m <= &x[..],
                    LexBound::Excl(x) => m < &x[..],
                };
                let lo = z.count_while(&|_, m| below_min(m));
                let hi = z.count_while(&|_, m| within_max(m));
                lo..hi.max(lo)
            }
        }
    }
}

fn parse_range(args: Args, min_at: usize, max_at: usize, by: By) -> Result<Range, CmdError> {
    match by {
        By::Rank => Ok(Range::Rank(args.int(min_at)?, args.int(max_at)?)),
        By::Score => match (score_bound(args.get(min_at)), score_bound(args.get(max_at))) {
            (Some(a), Some(b)) => Ok(Range::Score(a, b)),
            _ => Err(CmdError::err("min or max is not a float")),
        },
        By::Lex => match (lex_bound(args.get(min_at)), lex_bound(args.get(max_at))) {
            (Some(a), Some(b)) => Ok(Range::Lex(a, b)),
            _ => Err(CmdError::err("min or max not valid string range item")),
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request.
struct RangeQuery {
    range: Range,
    rev: bool,
    limit: Option<(i64, i64)>,
    withscores: bool,
}

impl RangeQuery {
    /// Parses `min max [options]` starting at `at`, for the form
    /// `fixed` (Some for ZRANGEBYSCORE & co) or ZRANGE's flags (None).
    fn parse(args: Args, at: usize, fixed: Option<(By, bool)>, store: bool) -> Result<RangeQuery, CmdError> {
        let (mut by, mut rev) = fixed.unwrap_or((By::Rank, false));
        let (mut limit, mut withscores) = (None, false);
        let mut j = at + 2;
        while j < args.len() {
            let left = args.len() - j - 1;
            match args.keyword(j).as_str() {
                "WITHSCORES" if !store => withscores = true,
                "LIMIT" if left >= 2 => {
                    limit = Some((args.int(j + 1)?, args.int(j + 2)?));
                    j += 2;
                }
                "REV" if fixed.is_none() => rev = true,
                "BYLEX" if fixed.is_none() => by = By::Lex,
                "BYSCORE" if fixed.is_none() => by = By::Score,
                _ => return Err(CmdError::Syntax),
            }
            j += 1;
        }
        if limit.is_some() && by == By::Rank {
            return Err(CmdError::err(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if withscores && by == By::Lex {
            return Err(CmdError::err("syntax error, WITHSCORES not supported in combination with BYLEX"));
        }
        let (min_at, max_at) = if rev && by != By::Rank { (at + 1, at) } else { (at, at + 1) };
        Ok(RangeQuery { range: parse_range(args, min_at, max_at, by)?, rev, limit, withscores })
    }

    fn run(&self, z: &ZSet) -> Vec<(f64, SmallBytes)> {
        let r = self.range.ranks(z, self.rev);
        let mut items = z.range(r.start, r.end);
        if self.rev {
            items.reverse();
        }
        if let Some((offset, count)) = self.limit {
            if offset < 0 {
                return Vec::new();
            }
            items = items
                .into_iter()
                .skip(offset as usize)
                .take(if count < 0 { usize::MAX } else { count as usize })
                .collect();
        }
        items
    }
}

fn range_reply(ctx: &mut Ctx, args: Args, q: RangeQuery) -> CmdResult {
    let Some(z) = ctx.read_as::<ZSet>(args.get(1))? else { return Ok(Reply::Array(Vec::new())) };
    Ok(with_scores(q.run(z), q.withscores))
}

fn zrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    let q = RangeQuery::parse(args, 2, None, false)?;
    range_reply(ctx, args, q)
}

fn zrevrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    let q = RangeQuery::parse(args, 2, Some((By::Rank, true)), false)?;
    range_reply(ctx, args, q)
}

fn zrangebyscore(ctx: &mut Ctx, args: Args) -> CmdResult {
    let q = RangeQuery::parse(args, 2, Some((By::Score, false)), false)?;
    range_reply(ctx, args, q)
}

fn zrevrangebyscore(ctx: &mut Ctx, args: Args) -> CmdResult {
    let q = RangeQuery::parse(args, 2, Some((By::Score, true)), false)?;
    range_reply(ctx, args, q)
}

fn zrangebylex(ctx: &mut Ctx, args: Args) -> CmdResult {
    let q = RangeQuery::parse(args, 2, Some((By::Lex, false)), false)?;
    range_reply(ctx, args, q)
}

fn zrevrangebylex(ctx: &mut Ctx, args: Args) -> CmdResult {
    let q = RangeQuery::parse(args, 2, Some((By::Lex, true)), false)?;
    range_reply(ctx, args, q)
}

fn count_generic(ctx: &mut Ctx, args: Args, by: By) -> CmdResult {
    let range = parse_range(args, 2, 3, by)?;
    Ok(Reply::Int(ctx.read_as::<ZSet>(args.get(1))?.map_or(0, |z| range.ranks(z, false).len() as i64)))
}

fn zcount(ctx: &mut Ctx, args: Args) -> CmdResult {
    count_generic(ctx, args, By::Score)
}

fn zlexcount(ctx: &mut Ctx, args: Args) -> CmdResult {
    count_generic(ctx, args, By::Lex)
}

fn remrange_generic(ctx: &mut Ctx, args: Args, by: By, event: &'static str) -> CmdResult {
    let range = parse_range(args, 2, 3, by)?;
    let key = args.get(1);
    let Some(z) = ctx.lookup_as::<ZSet>(key)? else { return Ok(Reply::Int(0)) };
    let r = range.ranks(z, false);
    let doomed = z.range(r.start, r.end);
    doomed.iter().for_each(|(_, m)| {
        z.remove(m);
    });
    if !doomed.is_empty() {
        ctx.event(ZSET, event, key);
    }
    ctx.drop_if_empty::<ZSet>(key);
    Ok(Reply::Int(doomed.len() as i64))
}

fn zremrangebyrank(ctx: &mut Ctx, args: Args) -> CmdResult {
    remrange_generic(ctx, args, By::Rank, "zremrangebyrank")
}

fn zremrangebyscore(ctx: &mut Ctx, args: Args) -> CmdResult {
    remrange_generic(ctx, args, By::Score, "zremrangebyscore")
}

fn zremrangebylex(ctx: &mut Ctx, args: Args) -> CmdResult {
    remrange_generic(ctx, args, By::Lex, "zremrangebylex")
}

/// After `count` elements were popped from `key`'s low or high end: the
/// event (if any were), the key deleted if the set is empty now.
pub(crate) fn zpopped(ctx: &mut Ctx, key: &[u8], max: bool, count: usize) {
    if count > 0 {
        ctx.event(ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    }
    ctx.changed(count as u64);
    ctx.drop_if_empty::<ZSet>(key);
}

/// Removes up to `count` elements from the low (`max` false) or high end.
pub(crate) fn pop_ends(z: &mut ZSet, count: usize, max: bool) -> Vec<(f64, SmallBytes)> {
    let len = z.len();
    let n = count.min(len);
    let mut items = if max { z.range(len - n, len) } else { z.range(0, n) };
    if max {
        items.reverse();
    }
    items.iter().for_each(|(_, m)| {
        z.remove(m);
    });
    items
}

fn zpop(ctx: &mut Ctx, args: Args, max: bool) -> CmdResult {
    let count = match args.len() {
        2 => None,
        3 => Some(pop_count(args, 2)?),
        _ => return Err(CmdError::Syntax),
    };
    let key = args.get(1);
    let Some(z) = ctx.lookup_as::<ZSet>(key)? else {
        ctx.changed(0);
        return Ok(Reply::Array(Vec::new()));
    };
    let items = pop_ends(z, count.unwrap_or(1), max);
    zpopped(ctx, key, max, items.len());
    Ok(match count {
        // A single pop is always a flat [member, score].
        None => Reply::Array(items.into_iter().flat_map(|(s, m)| [Reply::bulk(&m), score_reply(s)]).collect()),
        Some(_) => with_scores(items, true),
    })
}

fn zpopmin(ctx: &mut Ctx, args: Args) -> CmdResult {
    zpop(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx, args: Args) -> CmdResult {
    zpop(ctx, args, true)
}

fn zrandmember(ctx: &mut Ctx, args: Args) -> CmdResult {
    let count = if args.len() >= 3 { Some(super::random_count(args, 2)?) } else { None };
    let withscores = match args.len() {
        4 if args.is(3, "WITHSCORES") => true,
        2 | 3 => false,
        _ => return Err(CmdError::Syntax),
    };
    let z = ctx.read_as::<ZSet>(args.get(1))?;
    let Some(count) = count else {
        return Ok(z
            .and_then(|z| z.range(fastrand::usize(..z.len().max(1)), z.len()).into_iter().next())
            .map_or(Reply::Null, |(_, m)| Reply::bulk(&m)));
    };
    let Some(z) = z else { return Ok(Reply::Array(Vec::new())) };
    let len = z.len();
    let picks = random_positions(len, count, || (len > 0).then(|| fastrand::usize(..len)), || (0..len).collect());
    let items = picks.into_iter().filter_map(|i| z.range(i, i + 1).into_iter().next()).collect();
    Ok(with_scores(items, withscores))
}

fn zscan(ctx: &mut Ctx, args: Args) -> CmdResult {
    let o = ScanOptions::parse(args, 2, false)?;
    let mut flat = Vec::new();
    let mut next = 0;
    if let Some(z) = ctx.read_as::<ZSet>(args.get(1))? {
        next = z.scan(o.cursor as usize, o.count, |m, s| {
            if o.matches(m) {
                flat.push(Reply::bulk(m));
                flat.push(Reply::bulk(crate::protocol::reply::format_double(s).as_bytes()));
            }
        });
    }
    Ok(ScanOptions::reply(next, Reply::Array(flat)))
}

/// The members and scores at `keys` under `tx`: sorted sets as they are,
/// plain sets with score 1 (as ZUNIONSTORE accepts them).
async fn read_inputs(client: &Client, tx: &Tx, keys: &[Key]) -> Result<Vec<Option<Vec<(f64, SmallBytes)>>>, CmdError> {
    let db = client.db();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let items = tx
            .on(client, db, key, |ctx, k| match ctx.read(k) {
                None => Ok(None),
                Some(e) => match &e.value {
                    Value::ZSet(z) => Ok(Some(z.range(0, z.len()))),
                    Value::Set(s) => Ok(Some(s.members().into_iter().map(|m| (1.0, m)).collect())),
                    _ => Err(CmdError::WrongType),
                },
            })
            .await?;
        out.push(items);
    }
    Ok(out)
}

/// Stores `items` as the result of `event` in `key` (none deletes it),
/// counting `changes` when it stores (as Redis counts each command's).
pub(super) async fn store_zset(
    client: &Client,
    tx: &Tx,
    key: &[u8],
    items: Vec<(f64, SmallBytes)>,
    event: &'static str,
    changes: u64,
) {
    let db = client.db();
    let limits = limits(&client.shard.server.hot);
    tx.on(client, db, key, move |ctx, k| {
        let now = ctx.now;
        let existed = ctx.db().remove(k, now).is_some();
        if let Some((_, first)) = items.first() {
            let mut z = ZSet::for_member(first, limits);
            items.iter().for_each(|(s, m)| {
                z.insert(m, *s, limits);
            });
            ctx.set(k, z.wrap(), 0);
            ctx.event(ZSET, event, k);
            ctx.changed(changes);
        } else if existed {
            ctx.event(GENERIC, "del", k);
            ctx.changed(1);
        }
    })
    .await
}

#[derive(Clone, Copy, PartialEq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(a: Aggregate, x: f64, y: f64) -> f64 {
    let r = match a {
        Aggregate::Sum => x + y,
        Aggregate::Min => x.min(y),
        Aggregate::Max => x.max(y),
    };
    // inf + -inf: Redis stores 0.
    if r.is_nan() { 0.0 } else { r }
}

fn combine(
    op: SetOp,
    inputs: &[Option<Vec<(f64, SmallBytes)>>],
    weights: &[f64],
    agg: Aggregate,
) -> Vec<(f64, SmallBytes)> {
    let weighted = |i: usize, s: f64| {
        let w = s * weights[i];
        if w.is_nan() { 0.0 } else { w }
    };
    let mut acc: indexmap::IndexMap<SmallBytes, f64> = indexmap::IndexMap::new();
    match op {
        SetOp::Union => {
            for (i, input) in inputs.iter().enumerate() {
                for (s, m) in input.iter().flatten() {
                    let w = weighted(i, *s);
                    acc.entry(m.clone()).and_modify(|v| *v = aggregate(agg, *v, w)).or_insert(w);
                }
            }
        }
        SetOp::Inter => {
            if inputs.iter().any(|i| i.is_none()) {
                return Vec::new();
            }
            if let Some(first) = &inputs[0] {
                'member: for (s, m) in first {
                    let mut score = weighted(0, *s);
                    for (i, other) in inputs.iter().enumerate().skip(1) {
                        match other.iter().flatten().find(|(_, x)| x == m) {
                            Some((s2, _)) => score = aggregate(agg, score, weighted(i, *s2)),
                            None => continue 'member,
                        }
                    }
                    acc.insert(m.clone(), score);
                }
            }
        }
        SetOp::Diff => {
            if let Some(first) = &inputs[0] {
                for (s, m) in first {
                    if !inputs[1..].iter().flatten().any(|o| o.iter().any(|(_, x)| x == m)) {
                        acc.insert(m.clone(), *s);
                    }
                }
            }
        }
    }
    let mut items: Vec<(f64, SmallBytes)> = acc.into_iter().map(|(m, s)| (s, m)).collect();
    items.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    items
}

/// Z{UNION,INTER,DIFF}[STORE] [dst] numkeys key... [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES]
async fn setop(client: &mut Client, args: Args<'_>, op: SetOp, store: bool) -> CmdResult {
    let name = args.str(0).to_ascii_lowercase();
    let at = if store { 2 } else { 1 };
    let n = args.int(at)?;
    if n < 1 {
        return Err(CmdError::err(format!("at least 1 input key is needed for '{name}' command")));
    }
    if n as u64 > (args.len() - at - 1) as u64 {
        return Err(CmdError::Syntax);
    }
    let n = n as usize;
    let keys: Vec<Key> = (at + 1..at + 1 + n).map(|i| Key::new(args.get(i))).collect();
    let (mut weights, mut agg, mut withscores) = (vec![1.0; n], Aggregate::Sum, false);
    let mut j = at + 1 + n;
    while j < args.len() {
        let left = args.len() - j - 1;
        match args.keyword(j).as_str() {
            "WEIGHTS" if op != SetOp::Diff && left >= n => {
                for (w, i) in weights.iter_mut().zip(j + 1..) {
                    *w = parse_f64(args.get(i)).ok_or_else(|| CmdError::err("weight value is not a float"))?;
                }
                j += n;
            }
            "AGGREGATE" if op != SetOp::Diff && left >= 1 => {
                agg = match args.keyword(j + 1).as_str() {
                    "SUM" => Aggregate::Sum,
                    "MIN" => Aggregate::Min,
                    "MAX" => Aggregate::Max,
                    _ => return Err(CmdError::Syntax),
                };
                j += 1;
            }
            "WITHSCORES" if !store => withscores = true,
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    let mut locked: Vec<&[u8]> = keys.iter().map(|k| &**k).collect();
    if store {
        locked.push(args.get(1));
    }
    let tx = Tx::lock(client, client.db(), locked.into_iter()).await;
    let result = async {
        let inputs = read_inputs(client, &tx, &keys).await?;
        let items = combine(op, &inputs, &weights, agg);
        if store {
            let count = items.len();
            let event = match op {
                SetOp::Union => "zunionstore",
                SetOp::Inter => "zinterstore",
                SetOp::Diff => "zdiffstore",
            };
            store_zset(client, &tx, args.get(1), items, event, 1).await;
            Ok(Reply::Int(count as i64))
        } else {
            Ok(with_scores(items, withscores))
        }
    }
    .await;
    tx.unlock().await;
    result
}

async_handler!(zunion, |c, a| setop(c, a, SetOp::Union, false));
async_handler!(zinter, |c, a| setop(c, a, SetOp::Inter, false));
async_handler!(zdiff, |c, a| setop(c, a, SetOp::Diff, false));
async_handler!(zunionstore, |c, a| setop(c, a, SetOp::Union, true));
async_handler!(zinterstore, |c, a| setop(c, a, SetOp::Inter, true));
async_handler!(zdiffstore, |c, a| setop(c, a, SetOp::Diff, true));

fn zintercard<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let n = args.int(1)?;
        if n <= 0 {
            return Err(CmdError::err("at least 1 input key is needed for 'zintercard' command"));
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let limit = intercard_limit(args, n)?;
        let keys: Vec<Key> = (2..2 + n).map(|i| Key::new(args.get(i))).collect();
        let tx = Tx::lock(client, client.db(), keys.iter().map(|k| &**k)).await;
        let inputs = read_inputs(client, &tx, &keys).await;
        tx.unlock().await;
        let count = combine(SetOp::Inter, &inputs?, &vec![1.0; n], Aggregate::Sum).len();
        Ok(Reply::Int(if limit > 0 { count.min(limit) } else { count } as i64))
    })
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
fn zrangestore<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let q = RangeQuery::parse(args, 3, None, true)?;
        let (dst, src) = (args.get(1), Key::new(args.get(2)));
        let tx = Tx::lock(client, client.db(), [dst, &*src].into_iter()).await;
        let result = async {
            let db = client.db();
            let items = tx
                .on(client, db, &src, move |ctx, k| {
                    Ok::<_, CmdError>(ctx.read_as::<ZSet>(k)?.map(|z| q.run(z)).unwrap_or_default())
                })
                .await?;
            let count = items.len();
            store_zset(client, &tx, dst, items, "zrangestore", 1).await;
            Ok(Reply::Int(count as i64))
        }
        .await;
        tx.unlock().await;
        result
    })
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
fn zmpop<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let (key_range, end_at, count) = parse_mpop(args, 1)?;
        let max = match args.keyword(end_at).as_str() {
            "MIN" => false,
            "MAX" => true,
            _ => return Err(CmdError::Syntax),
        };
        let keys: Vec<&[u8]> = key_range.map(|i| args.get(i)).collect();
        let pop = move |ctx: &mut Ctx, k: &[u8]| {
            let items = match ctx.lookup_as::<ZSet>(k)? {
                None => return Ok(None),
                Some(z) => pop_ends(z, count, max),
            };
            zpopped(ctx, k, max, items.len());
            Ok(Some(items))
        };
        let pairs = |items: Vec<(f64, SmallBytes)>| {
            Reply::Array(items.into_iter().map(|(s, m)| Reply::Array(vec![Reply::bulk(&m), score_reply(s)])).collect())
        };
        mpop(client, keys, pop, pairs).await
    })
}

const KEY1: Keys = Keys::Range(1, 1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("zadd", -4, WRITE | DENYOOM | FAST, KEY1, Handler::Data(zadd)),
    Spec::new("zincrby", 4, WRITE | DENYOOM | FAST, KEY1, Handler::Data(zincrby)),
    Spec::new("zrem", -3, COUNTED | WRITE | FAST, KEY1, Handler::Data(zrem)),
    Spec::new("zcard", 2, READONLY | FAST, KEY1, Handler::Data(zcard)),
    Spec::new("zscore", 3, READONLY | FAST, KEY1, Handler::Data(zscore)),
    Spec::new("zmscore", -3, READONLY | FAST, KEY1, Handler::Data(zmscore)),
    Spec::new("zrank", 3, READONLY | FAST, KEY1, Handler::Data(zrank)),
    Spec::new("zrevrank", 3, READONLY | FAST, KEY1, Handler::Data(zrevrank)),
    Spec::new("zrange", -4, READONLY, KEY1, Handler::Data(zrange)),
    Spec::new("zrevrange", -4, READONLY, KEY1, Handler::Data(zrevrange)),
    Spec::new("zrangebyscore", -4, READONLY, KEY1, Handler::Data(zrangebyscore)),
    Spec::new("zrevrangebyscore", -4, READONLY, KEY1, Handler::Data(zrevrangebyscore)),
    Spec::new("zrangebylex", -4, READONLY, KEY1, Handler::Data(zrangebylex)),
    Spec::new("zrevrangebylex", -4, READONLY, KEY1, Handler::Data(zrevrangebylex)),
    Spec::new("zcount", 4, READONLY | FAST, KEY1, Handler::Data(zcount)),
    Spec::new("zlexcount", 4, READONLY | FAST, KEY1, Handler::Data(zlexcount)),
    Spec::new("zremrangebyrank", 4, COUNTED | WRITE, KEY1, Handler::Data(zremrangebyrank)),
    Spec::new("zremrangebyscore", 4, COUNTED | WRITE, KEY1, Handler::Data(zremrangebyscore)),
    Spec::new("zremrangebylex", 4, COUNTED | WRITE, KEY1, Handler::Data(zremrangebylex)),
    Spec::new("zpopmin", -2, WRITE | FAST, KEY1, Handler::Data(zpopmin)),
    Spec::new("zpopmax", -2, WRITE | FAST, KEY1, Handler::Data(zpopmax)),
    Spec::new("zrandmember", -2, READONLY, KEY1, Handler::Data(zrandmember)),
    Spec::new("zscan", -3, READONLY, KEY1, Handler::Data(zscan)),
    Spec::new("zunion", -3, READONLY, Keys::Numkeys(1), Handler::Async(zunion)),
    Spec::new("zinter", -3, READONLY, Keys::Numkeys(1), Handler::Async(zinter)),
    Spec::new("zdiff", -3, READONLY, Keys::Numkeys(1), Handler::Async(zdiff)),
    Spec::new("zunionstore", -4, WRITE | DENYOOM, Keys::Find(store_numkeys), Handler::Async(zunionstore))
        .writing(Writes::First),
    Spec::new("zinterstore", -4, WRITE | DENYOOM, Keys::Find(store_numkeys), Handler::Async(zinterstore))
        .writing(Writes::First),
    Spec::new("zdiffstore", -4, WRITE | DENYOOM, Keys::Find(store_numkeys), Handler::Async(zdiffstore))
        .writing(Writes::First),
    Spec::new("zintercard", -3, READONLY, Keys::Numkeys(1), Handler::Async(zintercard)),
    Spec::new("zrangestore", -5, WRITE | DENYOOM, Keys::Range(1, 2, 1), Handler::Async(zrangestore))
        .writing(Writes::First),
    Spec::new("zmpop", -4, WRITE, Keys::Numkeys(1), Handler::Async(zmpop)),
];
