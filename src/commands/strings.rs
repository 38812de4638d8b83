//! String commands (t_string.c).

use futures::future::LocalBoxFuture;

use super::keys::{Unit, expire_at};
use super::long_double;
use super::{Handler, Spec};
use crate::command::{Args, Ctx, DENYOOM, FAST, Keys, Merge, OwnedArgs, READONLY, WRITE};
use crate::config::Hot;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::{GENERIC, STRING};
use crate::storage::{Str, Value};

/// Options shared by SET and GETEX.
#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// Absolute expiry in ms.
    expire: Option<i64>,
}

/// Parses SET's (`getex` false) or GETEX's option list from `args[from..]`
/// with Redis's compatibility rules between options.
fn parse_options(ctx: &Ctx, args: Args, from: usize, getex: bool, cmd: &str) -> Result<SetOptions, CmdError> {
    let mut o = SetOptions::default();
    let mut expire: Option<(usize, Unit, bool)> = None;
    let mut i = from;
    while i < args.len() {
        let opt = args.keyword(i);
        let has_next = i + 1 < args.len();
        let no_expire = expire.is_none();
        match opt.as_str() {
            "NX" if !getex && !o.xx => o.nx = true,
            "XX" if !getex && !o.nx => o.xx = true,
            "GET" if !getex => o.get = true,
            "KEEPTTL" if !getex && !o.persist && no_expire => o.keepttl = true,
            "PERSIST" if getex && no_expire && !o.keepttl => o.persist = true,
            "EX" | "PX" | "EXAT" | "PXAT"
                if !o.keepttl
                    && !o.persist
                    && has_next
                    && expire.is_none_or(|(_, u, abs)| (u, abs) == unit_of(&opt)) =>
            {
                let (unit, abs) = unit_of(&opt);
                expire = Some((i + 1, unit, abs));
                i += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    if let Some((at, unit, absolute)) = expire {
        let n = args.int(at)?;
        if n <= 0 {
            return Err(CmdError::InvalidExpire(cmd.into()));
        }
        o.expire = Some(expire_at(n, unit, absolute, ctx.now).ok_or_else(|| CmdError::InvalidExpire(cmd.into()))?);
    }
    Ok(o)
}

fn unit_of(opt: &str) -> (Unit, bool) {
    match opt {
        "EX" => (Unit::Seconds, false),
        "PX" => (Unit::Millis, false),
        "EXAT" => (Unit::Seconds, true),
        _ => (Unit::Millis, true),
    }
}

fn string_value(data: &[u8]) -> Value {
    Value::Str(Str::from_bytes(data))
}

fn reply_str(s: Option<&mut Str>) -> Reply {
    s.map_or(Reply::Null, |s| Reply::bulk(&s.as_bytes()))
}

fn get(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(reply_str(ctx.read_str(args.get(1))?))
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT n|KEEPTTL]
fn set(ctx: &mut Ctx, args: Args) -> CmdResult {
    let o = parse_options(ctx, args, 3, false, "set")?;
    let key = args.get(1);
    let old = if o.get { Some(reply_str(ctx.read_str(key)?)) } else { None };
    let found = ctx.lookup(key).is_some();
    if (o.nx && found) || (o.xx && !found) {
        ctx.changed(0);
        return Ok(old.unwrap_or(Reply::Null));
    }
    let keep = if o.keepttl { ctx.db().expire_of(key) } else { None };
    ctx.set(key, string_value(args.get(2)), o.expire.or(keep).unwrap_or(0));
    ctx.event(STRING, "set", key);
    if let Some(at) = o.expire {
        ctx.event(GENERIC, "expire", key);
        // A relative (or seconds) expiry propagates as an absolute PXAT,
        // the other options as they were.
        let at = at.to_string();
        let mut rewrite: Vec<&[u8]> = args.iter().take(3).collect();
        let mut j = 3;
        while j < args.len() {
            if matches!(args.keyword(j).as_str(), "EX" | "PX" | "EXAT" | "PXAT") {
                j += 2;
                continue;
            }
            rewrite.push(args.get(j));
            j += 1;
        }
        rewrite.extend([&b"PXAT"[..], at.as_bytes()]);
        ctx.propagate(&rewrite);
    }
    Ok(old.unwrap_or(Reply::Ok))
}

fn setnx(ctx: &mut Ctx, args: Args) -> CmdResult {
    if ctx.lookup(args.get(1)).is_some() {
        ctx.changed(0);
        return Ok(Reply::Int(0));
    }
    ctx.set(args.get(1), string_value(args.get(2)), 0);
    ctx.event(STRING, "set", args.get(1));
    Ok(Reply::Int(1))
}

/// SETEX and PSETEX: a relative TTL that must be positive.
fn set_with_ttl(ctx: &mut Ctx, args: Args, unit: Unit, cmd: &str) -> CmdResult {
    let n = args.int(2)?;
    if n <= 0 {
        return Err(CmdError::InvalidExpire(cmd.into()));
    }
    let at = expire_at(n, unit, false, ctx.now).ok_or_else(|| CmdError::InvalidExpire(cmd.into()))?;
    ctx.set(args.get(1), string_value(args.get(3)), at);
    ctx.event(STRING, "set", args.get(1));
    ctx.event(GENERIC, "expire", args.get(1));
    ctx.propagate(&[b"SET", args.get(1), args.get(3), b"PXAT", at.to_string().as_bytes()]);
    Ok(Reply::Ok)
}

fn setex(ctx: &mut Ctx, args: Args) -> CmdResult {
    set_with_ttl(ctx, args, Unit::Seconds, "setex")
}

fn psetex(ctx: &mut Ctx, args: Args) -> CmdResult {
    set_with_ttl(ctx, args, Unit::Millis, "psetex")
}

fn getset(ctx: &mut Ctx, args: Args) -> CmdResult {
    let old = reply_str(ctx.read_str(args.get(1))?);
    ctx.set(args.get(1), string_value(args.get(2)), 0);
    ctx.event(STRING, "set", args.get(1));
    // Propagated as SET, as Redis 7 does.
    ctx.propagate(&[b"SET", args.get(1), args.get(2)]);
    Ok(old)
}

fn getdel(ctx: &mut Ctx, args: Args) -> CmdResult {
    let old = reply_str(ctx.read_str(args.get(1))?);
    if old == Reply::Null {
        ctx.changed(0);
    } else {
        let now = ctx.now;
        ctx.db().remove(args.get(1), now);
        ctx.event(GENERIC, "del", args.get(1));
    }
    Ok(old)
}

/// GETEX key [EX|PX|EXAT|PXAT n|PERSIST]
fn getex(ctx: &mut Ctx, args: Args) -> CmdResult {
    let o = parse_options(ctx, args, 2, true, "getex")?;
    let key = args.get(1);
    let value = reply_str(ctx.read_str(key)?);
    if value == Reply::Null {
        ctx.changed(0);
        return Ok(value);
    }
    let now = ctx.now;
    // It propagates as what it did: PEXPIREAT, DEL or PERSIST.
    let event = if let Some(at) = o.expire {
        if at <= now {
            ctx.db().remove(key, now);
            ctx.propagate(&[b"DEL", key]);
            Some("del")
        } else {
            ctx.db().set_expire(key, Some(at));
            ctx.propagate(&[b"PEXPIREAT", key, at.to_string().as_bytes()]);
            Some("expire")
        }
    } else if o.persist && ctx.db().expire_of(key).is_some() {
        ctx.db().set_expire(key, None);
        ctx.propagate(&[b"PERSIST", key]);
        Some("persist")
    } else {
        ctx.changed(0);
        None
    };
    if let Some(name) = event {
        ctx.event(GENERIC, name, key);
    }
    Ok(value)
}

fn mget(ctx: &mut Ctx, args: Args) -> CmdResult {
    let values = (1..args.len()).map(|i| match ctx.read(args.get(i)) {
        Some(e) => e.value.as_str_mut().map_or(Reply::Null, |s| Reply::bulk(&s.as_bytes())),
        None => Reply::Null,
    });
    Ok(Reply::Array(values.collect()))
}

fn mset(ctx: &mut Ctx, args: Args) -> CmdResult {
    for i in (1..args.len()).step_by(2) {
        ctx.set(args.get(i), string_value(args.get(i + 1)), 0);
        ctx.event(STRING, "set", args.get(i));
    }
    ctx.changed((args.len() / 2) as u64);
    Ok(Reply::Ok)
}

/// MSETNX, wherever its keys live: under their locks, every owner checks
/// its keys, then every key is written, so the all-or-nothing rule holds.
async fn msetnx(client: &mut Client, args: Args<'_>) -> CmdResult {
    let shard = client.shard.clone();
    let db = client.db();
    let tx = Tx::lock(client, db, (1..args.len()).step_by(2).map(|i| args.get(i))).await;
    // One check per owner, over its keys.
    let mut any_exists = false;
    for s in tx.shards().collect::<Vec<_>>() {
        let mut keys = OwnedArgs::default();
        (1..args.len()).step_by(2).filter(|&i| shard.owner(args.get(i)) == s).for_each(|i| keys.push(args.get(i)));
        let first = keys.args().get(0).to_vec();
        any_exists |=
            tx.on(client, db, &first, move |ctx, _| keys.args().iter().any(|k| ctx.lookup(k).is_some())).await;
    }
    if !any_exists {
        for i in (1..args.len()).step_by(2) {
            let value = string_value(args.get(i + 1));
            tx.on(client, db, args.get(i), move |ctx, k| {
                ctx.set(k, value, 0);
                ctx.event(STRING, "set", k);
                ctx.changed(1);
            })
            .await;
        }
    }
    tx.unlock().await;
    Ok(Reply::Int(!any_exists as i64))
}

async_handler!(msetnx_cmd, msetnx);

fn max_string(ctx: &Ctx) -> usize {
    Hot::get(&ctx.hot.proto_max_bulk_len) as usize
}

fn append(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (key, tail) = (args.get(1), args.get(2));
    let limit = max_string(ctx);
    match ctx.lookup_str(key)? {
        None => ctx.set(key, string_value(tail), 0),
        Some(e) => {
            let s = e.value.as_str_mut().ok_or(CmdError::WrongType)?;
            if s.len() + tail.len() > limit {
                return Err(CmdError::StringTooLong);
            }
            s.make_raw().extend_from_slice(tail);
        }
    }
    ctx.event(STRING, "append", key);
    Ok(Reply::Int(ctx.lookup_str(key)?.and_then(|e| e.value.as_str_mut()).map_or(0, |s| s.len() as i64)))
}

fn strlen(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_str(args.get(1))?.map_or(0, |s| s.len() as i64)))
}

/// INCR, DECR, INCRBY, DECRBY: the value must be a 64-bit integer and the
/// result must fit one. The TTL is kept.
fn incr_by(ctx: &mut Ctx, key: &[u8], by: i64) -> CmdResult {
    let n = match ctx.lookup_str(key)? {
        None => {
            ctx.set(key, Value::Str(Str::Int(by)), 0);
            by
        }
        Some(e) => {
            let s = e.value.as_str_mut().ok_or(CmdError::WrongType)?;
            let n = s.as_int().ok_or(CmdError::NotInteger)?.checked_add(by).ok_or(CmdError::Overflow)?;
            *s = Str::Int(n);
            n
        }
    };
    ctx.event(STRING, "incrby", key);
    Ok(Reply::Int(n))
}

fn incr(ctx: &mut Ctx, args: Args) -> CmdResult {
    incr_by(ctx, args.get(1), 1)
}

fn decr(ctx: &mut Ctx, args: Args) -> CmdResult {
    incr_by(ctx, args.get(1), -1)
}

fn incrby(ctx: &mut Ctx, args: Args) -> CmdResult {
    let by = args.int(2)?;
    incr_by(ctx, args.get(1), by)
}

fn decrby(ctx: &mut Ctx, args: Args) -> CmdResult {
    let by = args.int(2)?;
    let by = by.checked_neg().ok_or_else(|| CmdError::err("decrement would overflow"))?;
    incr_by(ctx, args.get(1), by)
}

/// INCRBYFLOAT computes in long double and stores the result as text, as
/// Redis does; the TTL is kept.
fn incrbyfloat(ctx: &mut Ctx, args: Args) -> CmdResult {
    let key = args.get(1);
    // (An expired key's TTL is read too, but then the key is missing.)
    let keep = ctx.db().expire_of(key).unwrap_or(0);
    let (text, keep) = match ctx.lookup_str(key)? {
        None => (long_double::add(None, args.get(2))?, 0),
        Some(e) => {
            let s = e.value.as_str_mut().ok_or(CmdError::WrongType)?;
            (long_double::add(Some(&s.as_bytes()), args.get(2))?, keep)
        }
    };
    ctx.set(key, Value::Str(Str::from_bytes(&text)), keep);
    ctx.event(STRING, "incrbyfloat", key);
    // The result, not the increment: replaying it computes nothing.
    ctx.propagate(&[b"SET", key, &text, b"KEEPTTL"]);
    Ok(Reply::Bulk(text.into()))
}

/// GETRANGE / SUBSTR with Redis's clamping of negative and large indexes.
fn getrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (mut start, mut end) = (args.int(2)?, args.int(3)?);
    let Some(s) = ctx.read_str(args.get(1))? else {
        return Ok(Reply::bulk(b""));
    };
    let bytes = s.as_bytes();
    let len = bytes.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(Reply::bulk(b""));
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end || len == 0 {
        return Ok(Reply::bulk(b""));
    }
    Ok(Reply::bulk(&bytes[start as usize..=end as usize]))
}

fn setrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    let offset = args.int(2)?;
    let (key, patch) = (args.get(1), args.get(3));
    if offset < 0 {
        return Err(CmdError::OffsetOutOfRange);
    }
    let limit = max_string(ctx);
    let offset = offset as usize;
    let check = |len: usize| {
        if offset.saturating_add(len) > limit { Err(CmdError::StringTooLong) } else { Ok(()) }
    };
    match ctx.lookup_str(key)? {
        None => {
            if patch.is_empty() {
                ctx.changed(0);
                return Ok(Reply::Int(0));
            }
            check(patch.len())?;
            let mut v = vec![0; offset];
            v.extend_from_slice(patch);
            let len = v.len();
            ctx.set(key, Value::Str(Str::raw(v)), 0);
            ctx.event(STRING, "setrange", key);
            Ok(Reply::Int(len as i64))
        }
        Some(e) => {
            let s = e.value.as_str_mut().ok_or(CmdError::WrongType)?;
            if patch.is_empty() {
                let len = s.len() as i64;
                ctx.changed(0);
                return Ok(Reply::Int(len));
            }
            check(patch.len())?;
            let raw = s.make_raw();
            if raw.len() < offset + patch.len() {
                raw.resize(offset + patch.len(), 0);
            }
            raw[offset..offset + patch.len()].copy_from_slice(patch);
            let len = raw.len() as i64;
            ctx.event(STRING, "setrange", key);
            Ok(Reply::Int(len))
        }
    }
}

/// LCS's two string values, read under the keys' locks wherever they
/// live.
async fn lcs(client: &mut Client, args: Args<'_>) -> CmdResult {
    let db = client.db();
    let tx = Tx::lock(client, db, [args.get(1), args.get(2)].into_iter()).await;
    let mut values = Vec::with_capacity(2);
    for i in 1..=2 {
        let value = tx
            .on(client, db, args.get(i), |ctx, k| match ctx.read(k) {
                None => Ok(Vec::new()),
                Some(e) => match e.value.as_str_mut() {
                    Some(s) => Ok(s.as_bytes().into_owned()),
                    None => Err(CmdError::err("The specified keys must contain string values")),
                },
            })
            .await;
        values.push(value);
    }
    tx.unlock().await;
    let b = values.pop().expect("two values")?;
    let a = values.pop().expect("two values")?;
    lcs_reply(&a, &b, args, Hot::get(&client.shard.server.hot.proto_max_bulk_len) as usize)
}

async_handler!(lcs_cmd, lcs);

/// LCS a b [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN], computed and
/// reported exactly as Redis's lcsCommand (including the order in which
/// matches are listed: from the end of the strings backwards).
fn lcs_reply(a: &[u8], b: &[u8], args: Args, max_alloc: usize) -> CmdResult {
    let (mut getlen, mut getidx, mut withmatchlen, mut minmatchlen) = (false, false, false, 0i64);
    let mut j = 3;
    while j < args.len() {
        match args.keyword(j).as_str() {
            "IDX" => getidx = true,
            "LEN" => getlen = true,
            "WITHMATCHLEN" => withmatchlen = true,
            "MINMATCHLEN" if j + 1 < args.len() => {
                minmatchlen = args.int(j + 1)?.max(0);
                j += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    if getidx && getlen {
        return Err(CmdError::err("If you want both the length and indexes, please just use IDX."));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen + 1)
        .checked_mul(blen + 1)
        .ok_or_else(|| CmdError::err("Insufficient memory, failed allocating transient memory for LCS"))?;
    if cells.saturating_mul(4) > max_alloc {
        return Err(CmdError::err("Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len"));
    }
    let w = blen + 1;
    let mut t = vec![0u32; cells];
    for i in 1..=alen {
        for j in 1..=blen {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[alen * w + blen];
    let mut result = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let (mut i, mut j, mut idx) = (alen, blen, total as usize);
    let unset = alen;
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (unset, 0, 0, 0);
    while (getidx || !getlen) && i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if a_start == unset {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != unset {
                emit = true;
            }
        }
        let match_len = a_end.wrapping_sub(a_start).wrapping_add(1) as i64;
        if emit {
            if minmatchlen == 0 || match_len >= minmatchlen {
                let mut m = vec![
                    Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                    Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                ];
                if withmatchlen {
                    m.push(Reply::Int(match_len));
                }
                matches.push(Reply::Array(m));
            }
            a_start = unset;
        }
    }
    Ok(if getidx {
        Reply::Map(vec![
            (Reply::text("matches"), Reply::Array(matches)),
            (Reply::text("len"), Reply::Int(total as i64)),
        ])
    } else if getlen {
        Reply::Int(total as i64)
    } else {
        Reply::Bulk(result.into())
    })
}

const KEY1: Keys = Keys::Range(1, 1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("get", 2, READONLY | FAST, KEY1, Handler::Data(get)),
    Spec::new("set", -3, WRITE | DENYOOM, KEY1, Handler::Data(set)),
    Spec::new("setnx", 3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(setnx)),
    Spec::new("setex", 4, WRITE | DENYOOM, KEY1, Handler::Data(setex)),
    Spec::new("psetex", 4, WRITE | DENYOOM, KEY1, Handler::Data(psetex)),
    Spec::new("getset", 3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(getset)),
    Spec::new("getdel", 2, WRITE | FAST, KEY1, Handler::Data(getdel)),
    Spec::new("getex", -2, WRITE | FAST, KEY1, Handler::Data(getex)),
    Spec::new("mget", -2, READONLY | FAST, Keys::Range(1, -1, 1), Handler::Split(mget, Merge::Gather)),
    Spec::new("mset", -3, WRITE | DENYOOM, Keys::Range(1, -1, 2), Handler::Split(mset, Merge::AllOk)),
    Spec::new("msetnx", -3, WRITE | DENYOOM, Keys::Range(1, -1, 2), Handler::Async(msetnx_cmd)),
    Spec::new("append", 3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(append)),
    Spec::new("strlen", 2, READONLY | FAST, KEY1, Handler::Data(strlen)),
    Spec::new("incr", 2, WRITE | DENYOOM | FAST, KEY1, Handler::Data(incr)),
    Spec::new("decr", 2, WRITE | DENYOOM | FAST, KEY1, Handler::Data(decr)),
    Spec::new("incrby", 3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(incrby)),
    Spec::new("decrby", 3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(decrby)),
    Spec::new("incrbyfloat", 3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(incrbyfloat)),
    Spec::new("getrange", 4, READONLY, KEY1, Handler::Data(getrange)),
    Spec::new("substr", 4, READONLY, KEY1, Handler::Data(getrange)),
    Spec::new("setrange", 4, WRITE | DENYOOM, KEY1, Handler::Data(setrange)),
    Spec::new("lcs", -3, READONLY, Keys::Range(1, 2, 1), Handler::Async(lcs_cmd)),
];
