//! Keyspace commands (db.c, expire.c, object.c).

use crate::storage::events::GENERIC;
use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{Args, CONTAINER, COUNTED, Ctx, DENYOOM, FAST, Keys, Merge, READONLY, WRITE, Writes};
use crate::config::Hot;
use crate::pattern::glob_match;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::evict::Policy;
use crate::server::transaction::Tx;
use crate::storage::slots::SLOTS;
use crate::storage::{Key, Str, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    Seconds,
    Millis,
}

/// Absolute expiry in ms for `n` of `unit`, relative to `now` unless
/// `absolute`; None on overflow (Redis's "invalid expire time").
pub fn expire_at(n: i64, unit: Unit, absolute: bool, now: i64) -> Option<i64> {
    let ms = match unit {
        Unit::Seconds => n.checked_mul(1000)?,
        Unit::Millis => n,
    };
    if absolute { Some(ms) } else { ms.checked_add(now) }
}

fn del(ctx: &mut Ctx, args: Args) -> CmdResult {
    let now = ctx.now;
    let mut removed = 0;
    for key in args.iter().skip(1) {
        if ctx.db().remove(key, now).is_some() {
            removed += 1;
            ctx.event(GENERIC, "del", key);
        }
    }
    Ok(Reply::Int(removed))
}

fn exists(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int((1..args.len()).filter(|&i| ctx.peek(args.get(i)).is_some()).count() as i64))
}

fn touch(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int((1..args.len()).filter(|&i| ctx.read(args.get(i)).is_some()).count() as i64))
}

fn type_(ctx: &mut Ctx, args: Args) -> CmdResult {
    let name = ctx.peek(args.get(1)).map_or("none", |e| e.value.type_name());
    Ok(Reply::status(name))
}

/// A value taken out of (or copied from) a key, with its TTL.
type Moved = (Value, Option<i64>);

/// RENAME / RENAMENX, wherever the two keys live: check, take, put, all
/// under the keys' locks.
async fn rename_generic(client: &mut Client, args: Args<'_>, nx: bool) -> CmdResult {
    let db = client.db();
    let (src, dst) = (args.get(1), args.get(2));
    let tx = Tx::lock(client, db, [src, dst].into_iter()).await;
    let result = async {
        if !tx.on(client, db, src, |ctx, k| ctx.lookup(k).is_some()).await {
            return Err(CmdError::NoSuchKey);
        }
        let unchanged = Ok(if nx { Reply::Int(0) } else { Reply::Ok });
        if src == dst || (nx && tx.on(client, db, dst, |ctx, k| ctx.lookup(k).is_some()).await) {
            return unchanged;
        }
        let taken: Option<Moved> = tx
            .on(client, db, src, |ctx, k| {
                let now = ctx.now;
                ctx.modified();
                ctx.db().take(k, now)
            })
            .await;
        let Some((value, ttl)) = taken else {
            return Err(CmdError::NoSuchKey);
        };
        let from = Key::from(src);
        tx.on(client, db, dst, move |ctx, k| {
            let now = ctx.now;
            ctx.db().remove(k, now);
            ctx.set(k, value, ttl.unwrap_or(0));
            // Redis reports both once the destination exists.
            ctx.event(GENERIC, "rename_from", &from);
            ctx.event(GENERIC, "rename_to", k);
            ctx.changed(1);
        })
        .await;
        Ok(if nx { Reply::Int(1) } else { Reply::Ok })
    }
    .await;
    tx.unlock().await;
    result
}

async_handler!(rename, |c, a| rename_generic(c, a, false));
async_handler!(renamenx, |c, a| rename_generic(c, a, true));

/// COPY's options: destination database and REPLACE.
fn copy_options(args: Args, current_db: usize, databases: usize) -> Result<(usize, bool), CmdError> {
    let (mut db, mut replace) = (current_db, false);
    let mut j = 3;
    while j < args.len() {
        if args.is(j, "REPLACE") {
            replace = true;
        } else if args.is(j, "DB") && j + 1 < args.len() {
            db = args.db_index(j + 1, databases)?;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if db == current_db && args.get(1) == args.get(2) {
        return Err(CmdError::SameObject);
    }
    Ok((db, replace))
}

/// COPY's destination when DB names another database.
fn copy_keys_elsewhere(args: Args, databases: usize) -> Vec<(usize, usize)> {
    let db = (3..args.len().saturating_sub(1)).rev().find(|&j| args.is(j, "DB"));
    db.and_then(|j| args.db_index(j + 1, databases).ok()).map(|db| (db, 2)).into_iter().collect()
}

/// MOVE's key in the database it moves to.
fn move_keys_elsewhere(args: Args, databases: usize) -> Vec<(usize, usize)> {
    args.db_index(2, databases).ok().map(|db| (db, 1)).into_iter().collect()
}

/// COPY src dst [DB n] [REPLACE], wherever the two keys live.
async fn copy(client: &mut Client, args: Args<'_>) -> CmdResult {
    let db = client.db();
    let (dst_db, replace) = copy_options(args, db, client.shard.databases())?;
    let (src, dst) = (args.get(1), args.get(2));
    let tx = Tx::lock_in(client, [(db, src), (dst_db, dst)].into_iter()).await;
    let copied: Option<Moved> = tx
        .on(client, db, src, |ctx, k| {
            let value = ctx.read(k).map(|e| e.value.clone())?;
            Some((value, ctx.db().expire_of(k)))
        })
        .await;
    let done = match copied {
        None => false,
        Some((value, ttl)) => {
            tx.on(client, dst_db, dst, move |ctx, k| {
                if ctx.lookup(k).is_some() {
                    if !replace {
                        return false;
                    }
                    let now = ctx.now;
                    ctx.db().remove(k, now);
                }
                ctx.set(k, value, ttl.unwrap_or(0));
                ctx.event(GENERIC, "copy_to", k);
                ctx.changed(1);
                true
            })
            .await
        }
    };
    tx.unlock().await;
    Ok(Reply::Int(done as i64))
}

async_handler!(copy_cmd, copy);

/// MOVE key db: the key keeps its slot, so it stays on this shard.
fn move_(ctx: &mut Ctx, args: Args) -> CmdResult {
    let dst = args.db_index(2, ctx.ks.dbs.len())?;
    if dst == ctx.db {
        return Err(CmdError::SameObject);
    }
    let key = args.get(1);
    let now = ctx.now;
    if ctx.lookup(key).is_none() || ctx.ks.dbs[dst].contains(key, now) {
        ctx.changed(0);
        return Ok(Reply::Int(0));
    }
    ctx.ks.preserve(dst, key, now);
    let Some((value, ttl)) = ctx.db().take(key, now) else {
        return Ok(Reply::Int(0));
    };
    ctx.ks.dbs[dst].insert(key, value, ttl.unwrap_or(0), now);
    ctx.ks.note(GENERIC, "move_from", ctx.db, key);
    ctx.ks.note(GENERIC, "move_to", dst, key);
    Ok(Reply::Int(1))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key n [NX|XX|GT|LT]
fn expire_generic(ctx: &mut Ctx, args: Args, unit: Unit, absolute: bool, cmd: &str) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for j in 3..args.len() {
        match args.keyword(j).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => return Err(CmdError::UnsupportedOption(args.str(j))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::NxWithOthers);
    }
    if gt && lt {
        return Err(CmdError::GtAndLt);
    }
    let n = args.int(2)?;
    let at = expire_at(n, unit, absolute, ctx.now).ok_or_else(|| CmdError::InvalidExpire(cmd.into()))?;
    let key = args.get(1);
    if ctx.lookup(key).is_none() {
        ctx.changed(0);
        return Ok(Reply::Int(0));
    }
    let current = ctx.db().expire_of(key);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|c| at <= c))
        || (lt && current.is_some_and(|c| at >= c));
    if refused {
        ctx.changed(0);
        return Ok(Reply::Int(0));
    }
    let now = ctx.now;
    // A time already past deletes the key, except while loading (Redis's
    // checkAlreadyExpired): the file's later DEL says when it went.
    if at <= now && !ctx.loading {
        ctx.db().remove(key, now);
        ctx.event(GENERIC, "del", key);
        ctx.propagate(&[b"DEL", key]);
    } else {
        ctx.db().set_expire(key, Some(at));
        ctx.event(GENERIC, "expire", key);
        // PEXPIREAT with the absolute time; the condition flags stay.
        let at = at.to_string();
        let rewrite: Vec<&[u8]> =
            [&b"PEXPIREAT"[..], key, at.as_bytes()].into_iter().chain(args.iter().skip(3)).collect();
        ctx.propagate(&rewrite);
    }
    Ok(Reply::Int(1))
}

fn expire(ctx: &mut Ctx, args: Args) -> CmdResult {
    expire_generic(ctx, args, Unit::Seconds, false, "expire")
}

fn pexpire(ctx: &mut Ctx, args: Args) -> CmdResult {
    expire_generic(ctx, args, Unit::Millis, false, "pexpire")
}

fn expireat(ctx: &mut Ctx, args: Args) -> CmdResult {
    expire_generic(ctx, args, Unit::Seconds, true, "expireat")
}

fn pexpireat(ctx: &mut Ctx, args: Args) -> CmdResult {
    expire_generic(ctx, args, Unit::Millis, true, "pexpireat")
}

/// TTL family: -2 for a missing key, -1 for a persistent one.
fn ttl_generic(ctx: &mut Ctx, args: Args, f: fn(i64, i64) -> i64) -> CmdResult {
    let now = ctx.now;
    let key = args.get(1);
    // Asking for a TTL is not an access (Redis's LOOKUP_NOTOUCH).
    if ctx.peek(key).is_none() {
        return Ok(Reply::Int(-2));
    }
    Ok(Reply::Int(ctx.db().expire_of(key).map_or(-1, |at| f(at, now))))
}

fn ttl(ctx: &mut Ctx, args: Args) -> CmdResult {
    ttl_generic(ctx, args, |at, now| ((at - now).max(0) + 500) / 1000)
}

fn pttl(ctx: &mut Ctx, args: Args) -> CmdResult {
    ttl_generic(ctx, args, |at, now| (at - now).max(0))
}

fn expiretime(ctx: &mut Ctx, args: Args) -> CmdResult {
    ttl_generic(ctx, args, |at, _| (at + 500) / 1000)
}

fn pexpiretime(ctx: &mut Ctx, args: Args) -> CmdResult {
    ttl_generic(ctx, args, |at, _| at)
}

fn persist(ctx: &mut Ctx, args: Args) -> CmdResult {
    let key = args.get(1);
    let had = ctx.lookup(key).is_some() && ctx.db().expire_of(key).is_some();
    if had {
        ctx.db().set_expire(key, None);
        ctx.event(GENERIC, "persist", key);
    }
    Ok(Reply::Int(had as i64))
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// Redis shares the integers 0..10000 between keys.
const SHARED_INTEGERS: i64 = 10000;

fn object(ctx: &mut Ctx, args: Args) -> CmdResult {
    let sub = args.keyword(1);
    if sub == "HELP" && args.len() == 2 {
        return Ok(Reply::help(OBJECT_HELP));
    }
    if !matches!(sub.as_str(), "ENCODING" | "FREQ" | "IDLETIME" | "REFCOUNT") {
        return Err(CmdError::UnknownSubcommand { cmd: "OBJECT".into(), sub: args.str(1) });
    }
    if args.len() != 3 {
        return Err(CmdError::sub_arity("object", &sub));
    }
    let policy_lfu = Policy::from_index(Hot::get(&ctx.hot.maxmemory_policy)).lfu();
    let now = ctx.now;
    let Some(e) = ctx.lookup(args.get(2)) else {
        return Ok(Reply::Null);
    };
    Ok(match sub.as_str() {
        "ENCODING" => Reply::text(e.value.encoding()),
        "IDLETIME" if policy_lfu => {
            return Err(CmdError::err(
                "An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        "IDLETIME" => Reply::Int(e.idle_secs(now) as i64),
        "FREQ" if !policy_lfu => {
            return Err(CmdError::err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
        "FREQ" => Reply::Int(i64::from(e.freq(now))),
        _ => match &e.value {
            Value::Str(Str::Int(n)) if (0..SHARED_INTEGERS).contains(n) => Reply::Int(i32::MAX as i64),
            _ => Reply::Int(1),
        },
    })
}

/// KEYS pattern: every shard's matching live keys.
fn keys<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let pattern: Key = args.get(1).into();
        let db = client.db();
        let parts = client
            .shard
            .broadcast(move |sh| {
                let ks = sh.ks.borrow();
                let now = sh.now();
                let d = &ks.dbs[db];
                let all = pattern.as_ref() == b"*";
                let mut found: Vec<Key> = Vec::new();
                for slot in 0..SLOTS {
                    for e in d.slot_entries(slot) {
                        if d.is_live(e, now) && (all || glob_match(&pattern, e.key(), false)) {
                            found.push(e.key().into());
                        }
                    }
                }
                found
            })
            .await;
        Ok(Reply::bulks(parts.into_iter().flatten()))
    })
}

/// The cursor and options of SCAN, HSCAN, SSCAN, ZSCAN.
pub(super) struct ScanOptions {
    pub cursor: u64,
    pub pattern: Option<Key>,
    pub count: usize,
    pub type_filter: Option<String>,
}

impl ScanOptions {
    /// A SCAN-family reply: the next cursor and what this call found.
    pub fn reply(next: usize, found: Reply) -> Reply {
        Reply::Array(vec![Reply::text(next.to_string()), found])
    }

    /// Parses `cursor [MATCH p] [COUNT n]` (and `[TYPE t]` for SCAN)
    /// starting at argument `at`.
    pub fn parse(args: Args, at: usize, allow_type: bool) -> Result<ScanOptions, CmdError> {
        let cursor =
            std::str::from_utf8(args.get(at)).ok().and_then(|s| s.parse().ok()).ok_or(CmdError::InvalidCursor)?;
        let mut o = ScanOptions { cursor, pattern: None, count: 10, type_filter: None };
        let mut j = at + 1;
        while j < args.len() {
            if j + 1 >= args.len() {
                return Err(CmdError::Syntax);
            }
            match args.keyword(j).as_str() {
                "MATCH" => o.pattern = Some(args.get(j + 1).into()),
                "COUNT" => {
                    let n = args.int(j + 1)?;
                    if n < 1 {
                        return Err(CmdError::Syntax);
                    }
                    o.count = n as usize;
                }
                "TYPE" if allow_type => o.type_filter = Some(args.str(j + 1).to_ascii_lowercase()),
                _ => return Err(CmdError::Syntax),
            }
            j += 2;
        }
        Ok(o)
    }

    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern.as_deref().is_none_or(|p| glob_match(p, item, false))
    }
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type].
///
/// The cursor is the next slot to visit plus one (0 starts and ends). Slots
/// are visited shard by shard, each shard's slots in ascending order, and a
/// slot is always returned whole, so keys present for the whole iteration
/// are returned however tables resize in between.
fn scan<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let ScanOptions { cursor, pattern, count, type_filter } = ScanOptions::parse(args, 1, true)?;
        if cursor > SLOTS as u64 {
            return Ok(Reply::Array(vec![Reply::text("0"), Reply::Array(vec![])]));
        }
        let n = client.shard.count;
        let db = client.db();
        let mut start = cursor.saturating_sub(1) as usize;
        let mut keys: Vec<Key> = Vec::new();
        let mut examined = 0;
        // Visit shards in turn until COUNT keys were examined or all were.
        let next = loop {
            let owner = start % n;
            let (pattern, type_filter) = (pattern.clone(), type_filter.clone());
            let budget = count - examined;
            let (next, seen, found) = client
                .shard
                .run_on(owner, move |sh| {
                    let ks = sh.ks.borrow();
                    let now = sh.now();
                    let d = &ks.dbs[db];
                    let (mut found, mut dead): (Vec<Key>, Vec<Key>) = (Vec::new(), Vec::new());
                    let mut seen = 0;
                    let mut slot = start;
                    while slot < SLOTS && seen < budget {
                        for e in d.slot_entries(slot) {
                            seen += 1;
                            if !d.is_live(e, now) {
                                dead.push(e.key().into());
                                continue;
                            }
                            let matches = pattern.as_deref().is_none_or(|p| glob_match(p, e.key(), false));
                            let typed = type_filter.as_deref().is_none_or(|t| e.value.type_name() == t);
                            if matches && typed {
                                found.push(e.key().into());
                            }
                        }
                        slot += n;
                    }
                    drop(ks);
                    // Expired keys met on the way go, as Redis's SCAN does.
                    sh.reclaim(db, &dead);
                    // The slot to resume from, or None once this shard is done.
                    ((slot < SLOTS).then_some(slot), seen, found)
                })
                .await;
            keys.extend(found);
            examined += seen;
            start = match next {
                Some(slot) => slot,
                None if owner + 1 < n => owner + 1,
                None => break 0,
            };
            if examined >= count {
                break start + 1;
            }
        };
        Ok(ScanOptions::reply(next as usize, Reply::bulks(keys)))
    })
}

fn randomkey<'a>(client: &'a mut Client, _args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let db = client.db();
        let sizes = client.shard.broadcast(move |sh| sh.ks.borrow().dbs[db].len()).await;
        let total: usize = sizes.iter().sum();
        if total == 0 {
            return Ok(Reply::Null);
        }
        // Pick a shard in proportion to its size, then a key on it.
        let mut pick = fastrand::usize(..total);
        let owner = sizes
            .iter()
            .position(|&s| {
                if pick < s {
                    true
                } else {
                    pick -= s;
                    false
                }
            })
            .unwrap_or(0);
        let key = client.shard.run_on(owner, move |sh| sh.ks.borrow_mut().dbs[db].random_key(sh.now())).await;
        Ok(key.map_or(Reply::Null, |k| Reply::bulk(&k)))
    })
}

const KEY1: Keys = Keys::Range(1, 1, 1);
const ALL_KEYS: Keys = Keys::Range(1, -1, 1);
const TWO_KEYS: Keys = Keys::Range(1, 2, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("del", -2, COUNTED | WRITE, ALL_KEYS, Handler::Split(del, Merge::Sum)),
    Spec::new("unlink", -2, COUNTED | WRITE | FAST, ALL_KEYS, Handler::Split(del, Merge::Sum)),
    Spec::new("exists", -2, READONLY | FAST, ALL_KEYS, Handler::Split(exists, Merge::Sum)),
    Spec::new("touch", -2, READONLY | FAST, ALL_KEYS, Handler::Split(touch, Merge::Sum)),
    Spec::new("type", 2, READONLY | FAST, KEY1, Handler::Data(type_)),
    Spec::new("rename", 3, WRITE, TWO_KEYS, Handler::Async(rename)),
    Spec::new("renamenx", 3, WRITE | FAST, TWO_KEYS, Handler::Async(renamenx)),
    Spec::new("copy", -3, WRITE | DENYOOM, TWO_KEYS, Handler::Async(copy_cmd))
        .writing(Writes::AfterFirst)
        .with_keys_elsewhere(copy_keys_elsewhere),
    Spec::new("move", 3, WRITE | FAST, KEY1, Handler::Data(move_)).with_keys_elsewhere(move_keys_elsewhere),
    Spec::new("expire", -3, WRITE | FAST, KEY1, Handler::Data(expire)),
    Spec::new("pexpire", -3, WRITE | FAST, KEY1, Handler::Data(pexpire)),
    Spec::new("expireat", -3, WRITE | FAST, KEY1, Handler::Data(expireat)),
    Spec::new("pexpireat", -3, WRITE | FAST, KEY1, Handler::Data(pexpireat)),
    Spec::new("ttl", 2, READONLY | FAST, KEY1, Handler::Data(ttl)),
    Spec::new("pttl", 2, READONLY | FAST, KEY1, Handler::Data(pttl)),
    Spec::new("expiretime", 2, READONLY | FAST, KEY1, Handler::Data(expiretime)),
    Spec::new("pexpiretime", 2, READONLY | FAST, KEY1, Handler::Data(pexpiretime)),
    Spec::new("persist", 2, COUNTED | WRITE | FAST, KEY1, Handler::Data(persist)),
    Spec::new("object", -2, CONTAINER | READONLY, Keys::Range(2, 2, 1), Handler::Data(object)).with_subcommands(&[
        "object|encoding",
        "object|freq",
        "object|help",
        "object|idletime",
        "object|refcount",
    ]),
    Spec::new("keys", 2, READONLY, Keys::None, Handler::Async(keys)),
    Spec::new("scan", -2, READONLY, Keys::None, Handler::Async(scan)),
    Spec::new("randomkey", 1, READONLY, Keys::None, Handler::Async(randomkey)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_arithmetic() {
        assert_eq!(expire_at(10, Unit::Seconds, false, 1000), Some(11_000));
        assert_eq!(expire_at(10, Unit::Millis, true, 1000), Some(10));
        assert_eq!(expire_at(i64::MAX / 10, Unit::Seconds, false, 0), None);
        assert_eq!(expire_at(i64::MAX, Unit::Millis, false, 1), None);
    }
}
