//! Hash commands (t_hash.c).

use super::keys::ScanOptions;
use super::long_double::{self, AddError};
use super::{Handler, Spec, random_positions};
use crate::command::{Args, COUNTED, Ctx, DENYOOM, FAST, Keys, READONLY, WRITE};
use crate::protocol::resp::parse_i64;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::storage::events::HASH;
use crate::storage::{Hash, PackLimits};

fn limits(ctx: &Ctx) -> PackLimits {
    ctx.hot.hash_limits()
}

/// HSET / HMSET: field value pairs after the key; returns fields added.
fn set_pairs(ctx: &mut Ctx, args: Args, cmd: &str) -> Result<i64, CmdError> {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::arity(cmd));
    }
    let limits = limits(ctx);
    let h = ctx.write_as::<Hash>(args.get(1))?;
    h.prepare((2..args.len()).map(|i| args.get(i).len()), limits);
    let added = (2..args.len()).step_by(2).filter(|&i| h.set(args.get(i), args.get(i + 1), limits)).count();
    ctx.event(HASH, "hset", args.get(1));
    ctx.changed((args.len() as u64 - 2) / 2);
    Ok(added as i64)
}

fn hset(ctx: &mut Ctx, args: Args) -> CmdResult {
    set_pairs(ctx, args, "hset").map(Reply::Int)
}

fn hmset(ctx: &mut Ctx, args: Args) -> CmdResult {
    set_pairs(ctx, args, "hmset").map(|_| Reply::Ok)
}

fn hsetnx(ctx: &mut Ctx, args: Args) -> CmdResult {
    let limits = limits(ctx);
    let h = ctx.write_as::<Hash>(args.get(1))?;
    if h.get(args.get(2)).is_some() {
        return Ok(Reply::Int(0));
    }
    h.prepare([args.get(2).len(), args.get(3).len()].into_iter(), limits);
    h.set(args.get(2), args.get(3), limits);
    ctx.event(HASH, "hset", args.get(1));
    Ok(Reply::Int(1))
}

fn hget(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(h.and_then(|h| h.get(args.get(2))).map_or(Reply::Null, Reply::bulk))
}

fn hmget(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(Reply::Array(
        (2..args.len()).map(|i| h.as_ref().and_then(|h| h.get(args.get(i))).map_or(Reply::Null, Reply::bulk)).collect(),
    ))
}

fn hdel(ctx: &mut Ctx, args: Args) -> CmdResult {
    let key = args.get(1);
    let Some(h) = ctx.lookup_as::<Hash>(key)? else { return Ok(Reply::Int(0)) };
    let removed = (2..args.len()).filter(|&i| h.remove(args.get(i))).count();
    if removed > 0 {
        ctx.event(HASH, "hdel", key);
    }
    ctx.drop_if_empty::<Hash>(key);
    Ok(Reply::Int(removed as i64))
}

fn hexists(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(Reply::Int(h.is_some_and(|h| h.get(args.get(2)).is_some()) as i64))
}

fn hlen(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_as::<Hash>(args.get(1))?.map_or(0, |h| h.len() as i64)))
}

fn hstrlen(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(Reply::Int(h.and_then(|h| h.get(args.get(2))).map_or(0, |v| v.len() as i64)))
}

fn hkeys(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(Reply::Array(h.map_or(Vec::new(), |h| h.pairs().map(|(f, _)| Reply::bulk(f)).collect())))
}

fn hvals(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(Reply::Array(h.map_or(Vec::new(), |h| h.pairs().map(|(_, v)| Reply::bulk(v)).collect())))
}

fn hgetall(ctx: &mut Ctx, args: Args) -> CmdResult {
    let h = ctx.read_as::<Hash>(args.get(1))?;
    Ok(Reply::Map(h.map_or(Vec::new(), |h| h.pairs().map(|(f, v)| (Reply::bulk(f), Reply::bulk(v))).collect())))
}

fn hincrby(ctx: &mut Ctx, args: Args) -> CmdResult {
    let by = args.int(3)?;
    let limits = limits(ctx);
    let key = args.get(1);
    let h = ctx.write_as::<Hash>(key)?;
    let current = match h.get(args.get(2)) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => {
                ctx.drop_if_empty::<Hash>(key);
                return Err(CmdError::err("hash value is not an integer"));
            }
        },
    };
    let Some(n) = current.checked_add(by) else {
        ctx.drop_if_empty::<Hash>(key);
        return Err(CmdError::Overflow);
    };
    h.set(args.get(2), itoa::Buffer::new().format(n).as_bytes(), limits);
    ctx.event(HASH, "hincrby", key);
    Ok(Reply::Int(n))
}

fn hincrbyfloat(ctx: &mut Ctx, args: Args) -> CmdResult {
    // The increment is checked before the key is looked up, as in Redis.
    match long_double::add(None, args.get(3)) {
        Err(AddError::NanOrInfinity) => return Err(CmdError::err("value is NaN or Infinity")),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let limits = limits(ctx);
    let key = args.get(1);
    let h = ctx.write_as::<Hash>(key)?;
    let result = long_double::add(h.get(args.get(2)), args.get(3));
    match result {
        Ok(text) => {
            h.set(args.get(2), &text, limits);
            ctx.event(HASH, "hincrbyfloat", key);
            ctx.propagate(&[b"HSET", key, args.get(2), &text]);
            Ok(Reply::Bulk(text.into()))
        }
        Err(e) => {
            ctx.drop_if_empty::<Hash>(key);
            Err(match e {
                AddError::Current => CmdError::err("hash value is not a float"),
                e => e.into(),
            })
        }
    }
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(ctx: &mut Ctx, args: Args) -> CmdResult {
    let count = if args.len() >= 3 { Some(super::random_count(args, 2)?) } else { None };
    let with_values = match args.len() {
        4 if args.is(3, "WITHVALUES") => true,
        2 | 3 => false,
        _ => return Err(CmdError::Syntax),
    };
    if with_values && count.is_some_and(|c| c < -(i64::MAX / 2)) {
        return Err(CmdError::err("value is out of range"));
    }
    let h = ctx.read_as::<Hash>(args.get(1))?;
    let Some(count) = count else {
        return Ok(h.and_then(|h| h.at(h.random()?)).map_or(Reply::Null, |(f, _)| Reply::bulk(f)));
    };
    let Some(h) = h else { return Ok(Reply::Array(Vec::new())) };
    let picks = random_positions(h.len(), count, || h.random(), || h.positions());
    let items = picks.into_iter().filter_map(|p| h.at(p));
    Ok(if with_values {
        Reply::Pairs(items.map(|(f, v)| (Reply::bulk(f), Reply::bulk(v))).collect())
    } else {
        Reply::Array(items.map(|(f, _)| Reply::bulk(f)).collect())
    })
}

/// HSCAN key cursor [MATCH p] [COUNT n]: a packed hash is returned whole;
/// a table by bucket.
fn hscan(ctx: &mut Ctx, args: Args) -> CmdResult {
    let o = ScanOptions::parse(args, 2, false)?;
    let mut flat = Vec::new();
    let mut next = 0;
    if let Some(h) = ctx.read_as::<Hash>(args.get(1))? {
        next = h.scan(o.cursor as usize, o.count, |f, v| {
            if o.matches(f) {
                flat.push(Reply::bulk(f));
                flat.push(Reply::bulk(v));
            }
        });
    }
    Ok(ScanOptions::reply(next, Reply::Array(flat)))
}

const KEY1: Keys = Keys::Range(1, 1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("hset", -4, WRITE | DENYOOM | FAST, KEY1, Handler::Data(hset)),
    Spec::new("hmset", -4, WRITE | DENYOOM | FAST, KEY1, Handler::Data(hmset)),
    Spec::new("hsetnx", 4, COUNTED | WRITE | DENYOOM | FAST, KEY1, Handler::Data(hsetnx)),
    Spec::new("hget", 3, READONLY | FAST, KEY1, Handler::Data(hget)),
    Spec::new("hmget", -3, READONLY | FAST, KEY1, Handler::Data(hmget)),
    Spec::new("hdel", -3, COUNTED | WRITE | FAST, KEY1, Handler::Data(hdel)),
    Spec::new("hexists", 3, READONLY | FAST, KEY1, Handler::Data(hexists)),
    Spec::new("hlen", 2, READONLY | FAST, KEY1, Handler::Data(hlen)),
    Spec::new("hstrlen", 3, READONLY | FAST, KEY1, Handler::Data(hstrlen)),
    Spec::new("hkeys", 2, READONLY, KEY1, Handler::Data(hkeys)),
    Spec::new("hvals", 2, READONLY, KEY1, Handler::Data(hvals)),
    Spec::new("hgetall", 2, READONLY, KEY1, Handler::Data(hgetall)),
    Spec::new("hincrby", 4, WRITE | DENYOOM | FAST, KEY1, Handler::Data(hincrby)),
    Spec::new("hincrbyfloat", 4, WRITE | DENYOOM | FAST, KEY1, Handler::Data(hincrbyfloat)),
    Spec::new("hrandfield", -2, READONLY, KEY1, Handler::Data(hrandfield)),
    Spec::new("hscan", -3, READONLY, KEY1, Handler::Data(hscan)),
];
