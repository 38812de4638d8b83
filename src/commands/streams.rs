//! Stream commands (t_stream.c): entries, trimming, consumer groups.
//! What each write propagates is Redis's deterministic form: XADD with
//! the id it chose and an exact trim, XREADGROUP and XAUTOCLAIM as the
//! XCLAIMs and XGROUP SETIDs they amount to.

use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use super::blocking::{Outcome, block};
use super::{Handler, Spec};
use crate::command::{Args, BLOCKING, CONTAINER, Ctx, DENYOOM, FAST, Keys, READONLY, Typed, WRITE};
use crate::config::Hot;
use crate::protocol::{CmdError, CmdResult, Proto, Reply};
use crate::server::blocking::{BlockOp, Popper, Served, StreamRead, Waiter};
use crate::server::client::Client;
use crate::storage::events::STREAM;
use crate::storage::stream::{Group, NodeLimits, Pair, Pending, Stream, StreamId, Trim, owned_pairs};
use crate::storage::{Key, Value};

impl Typed for Stream {
    fn cast(v: &mut Value) -> Option<&mut Stream> {
        match v {
            Value::Stream(s) => Some(s),
            _ => None,
        }
    }

    fn wrap(self) -> Value {
        Value::Stream(Box::new(self))
    }

    fn is_empty(&self) -> bool {
        Stream::is_empty(self)
    }
}

fn invalid_id() -> CmdError {
    CmdError::err("Invalid stream ID specified as stream command argument")
}

/// An id where `-` and `+` are allowed.
fn parse_id(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    StreamId::parse(b, missing_seq, false).map(|(id, _)| id).ok_or_else(invalid_id)
}

/// An id where `-` and `+` are not (with `auto_seq`, `<ms>-*` too), and
/// whether its sequence was given.
fn strict_id(b: &[u8], missing_seq: u64, auto_seq: bool) -> Option<(StreamId, bool)> {
    StreamId::parse(b, missing_seq, auto_seq).filter(|_| b != b"-" && b != b"+")
}

fn parse_strict_id(b: &[u8], missing_seq: u64) -> Result<StreamId, CmdError> {
    strict_id(b, missing_seq, false).map(|(id, _)| id).ok_or_else(invalid_id)
}

/// A range bound: `(` makes it exclusive.
fn parse_bound(b: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, CmdError> {
    if b.len() > 1 && b[0] == b'(' {
        let id = parse_strict_id(&b[1..], missing_seq)?;
        let moved = if start { id.next() } else { id.prev() };
        return moved.ok_or_else(|| {
            CmdError::err(if start { "invalid start ID for the interval" } else { "invalid end ID for the interval" })
        });
    }
    parse_id(b, missing_seq)
}

fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Raw(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn limits(hot: &Hot) -> NodeLimits {
    hot.stream_limits()
}

fn id_reply(id: StreamId) -> Reply {
    Reply::text(id.to_string())
}

fn entry_reply<F: AsRef<[u8]>, V: AsRef<[u8]>>(id: StreamId, pairs: &[(F, V)]) -> Reply {
    let flat = pairs.iter().flat_map(|(f, v)| [Reply::bulk(f.as_ref()), Reply::bulk(v.as_ref())]).collect();
    Reply::Array(vec![id_reply(id), Reply::Array(flat)])
}

fn range_reply(s: &Stream, start: StreamId, end: StreamId, rev: bool, count: usize) -> Vec<Reply> {
    let mut out = Vec::new();
    s.range(start, end, rev, |id, pairs| {
        out.push(entry_reply(id, pairs));
        count == 0 || out.len() < count
    });
    out
}

fn owned(args: Args, i: usize) -> Bytes {
    Bytes::copy_from_slice(args.get(i))
}

/// A non-negative count; negative counts mean 0, as Redis reads them.
fn count_arg(args: Args, i: usize) -> Result<usize, CmdError> {
    Ok(args.int(i)?.max(0) as usize)
}

/// XADD's and XTRIM's trimming options.
#[derive(Default)]
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    /// Where the trim threshold is (its `~` / `=` is just before).
    at: usize,
    /// Whether the `~` / `=` was written (the rewrite replaces it).
    marker: bool,
    nomkstream: bool,
    /// XADD: the id argument's position, the id and whether its sequence
    /// was given (None: `*`).
    id_at: usize,
    id: Option<(StreamId, bool)>,
}

fn parse_trim(ctx: &Ctx, args: Args, xadd: bool) -> Result<TrimArgs, CmdError> {
    let mut t = TrimArgs::default();
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args.get(i);
        if xadd && opt == b"*" {
            break;
        } else if (args.is(i, "MAXLEN") || args.is(i, "MINID")) && more > 0 {
            if t.trim.is_some() {
                return Err(CmdError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            let maxlen = args.is(i, "MAXLEN");
            let next = args.get(i + 1);
            t.approx = false;
            t.marker = false;
            if more >= 2 && (next == b"~" || next == b"=") {
                t.approx = next == b"~";
                t.marker = true;
                i += 1;
            }
            i += 1;
            t.trim = Some(if maxlen {
                let n = args.int(i)?;
                if n < 0 {
                    return Err(CmdError::err("The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(parse_strict_id(args.get(i), 0)?)
            });
            t.at = i;
        } else if args.is(i, "LIMIT") && more > 0 {
            let n = args.int(i + 1)?;
            if n < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            t.limit = n as u64;
            limit_given = true;
            i += 1;
        } else if xadd && args.is(i, "NOMKSTREAM") {
            t.nomkstream = true;
        } else if xadd {
            t.id = Some(strict_id(opt, 0, true).ok_or_else(invalid_id)?);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    t.id_at = i;
    if t.limit > 0 && t.trim.is_none() {
        return Err(CmdError::err("syntax error, LIMIT cannot be used without specifying a trimming strategy"));
    }
    if !xadd && t.trim.is_none() {
        return Err(CmdError::err("syntax error, XTRIM must be called with a trimming strategy"));
    }
    if ctx.loading {
        // A replayed command was rewritten exact.
        t.limit = 0;
    } else if limit_given && !t.approx {
        return Err(CmdError::err("syntax error, LIMIT cannot be used without the special ~ option"));
    } else if !limit_given && t.approx {
        // At most 100 nodes' worth, as Redis bounds the work.
        let entries = Hot::get(&ctx.hot.stream_node_max_entries);
        t.limit = if entries == 0 { 10_000 } else { entries.saturating_mul(100).min(1_000_000) };
    }
    Ok(t)
}

/// Trims as asked; returns how many entries went and, for an
/// approximate trim, the exact threshold it propagates as.
fn apply_trim(s: &mut Stream, t: &TrimArgs) -> (u64, Option<String>) {
    let Some(trim) = t.trim else { return (0, None) };
    let removed = s.trim(trim, t.approx, t.limit);
    let exact = t.approx.then(|| match trim {
        Trim::MaxLen(_) => s.len().to_string(),
        Trim::MinId(_) => s.first_with_tombstones().to_string(),
    });
    (removed, exact)
}

/// The command as it propagates after an approximate trim: `~` becomes
/// `=` and the threshold the exact result; `id` replaces a generated id.
fn rewritten(args: Args, t: &TrimArgs, exact: Option<&str>, id: Option<&str>) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = args.iter().map(<[u8]>::to_vec).collect();
    if let Some(exact) = exact {
        out[t.at] = exact.as_bytes().to_vec();
        if t.marker {
            out[t.at - 1] = b"=".to_vec();
        }
    }
    if let Some(id) = id {
        out[t.id_at] = id.as_bytes().to_vec();
    }
    out
}

fn propagate_owned(ctx: &mut Ctx, args: &[Vec<u8>]) {
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    ctx.propagate(&refs);
}

fn xadd(ctx: &mut Ctx, args: Args) -> CmdResult {
    let t = parse_trim(ctx, args, true)?;
    let fields_at = t.id_at + 1;
    if fields_at > args.len() || args.len() - fields_at < 2 || !(args.len() - fields_at).is_multiple_of(2) {
        return Err(CmdError::arity("xadd"));
    }
    if let Some((id, true)) = t.id
        && id == StreamId::MIN
    {
        return Err(CmdError::err("The ID specified in XADD must be greater than 0-0"));
    }
    let key = args.get(1);
    let limits = limits(ctx.hot);
    let now = ctx.now.max(0) as u64;
    if ctx.lookup_as::<Stream>(key)?.is_none() && t.nomkstream {
        return Ok(Reply::Null);
    }
    let s = ctx.write_as::<Stream>(key)?;
    if s.last_id == StreamId::MAX {
        return Err(CmdError::err("The stream has exhausted the last possible ID, unable to add more items"));
    }
    let id = s.next_id(t.id.map(|(id, _)| id), t.id.is_none_or(|(_, seq)| seq), now);
    let Some(id) = id.filter(|&id| id > s.last_id) else {
        return Err(CmdError::err("The ID specified in XADD is equal or smaller than the target stream top item"));
    };
    let pairs: Vec<Pair> = (fields_at..args.len()).step_by(2).map(|i| (args.get(i), args.get(i + 1))).collect();
    s.append(id, &pairs, limits);
    let (trimmed, exact) = apply_trim(s, &t);
    ctx.event(STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.event(STREAM, "xtrim", key);
    }
    ctx.changed(1);
    let id_text = id.to_string();
    let generated = !matches!(t.id, Some((_, true)));
    if exact.is_some() || generated {
        let cmd = rewritten(args, &t, exact.as_deref(), generated.then_some(id_text.as_str()));
        propagate_owned(ctx, &cmd);
    }
    Ok(Reply::text(id_text))
}

fn xtrim(ctx: &mut Ctx, args: Args) -> CmdResult {
    let t = parse_trim(ctx, args, false)?;
    if t.id_at < args.len() {
        return Err(CmdError::Syntax);
    }
    let key = args.get(1);
    let Some(s) = ctx.lookup_as::<Stream>(key)? else { return Ok(Reply::Int(0)) };
    let (trimmed, exact) = apply_trim(s, &t);
    if trimmed > 0 {
        ctx.event(STREAM, "xtrim", key);
        ctx.changed(trimmed);
        if let Some(exact) = exact {
            propagate_owned(ctx, &rewritten(args, &t, Some(&exact), None));
        }
    }
    Ok(Reply::Int(trimmed as i64))
}

fn xlen(ctx: &mut Ctx, args: Args) -> CmdResult {
    Ok(Reply::Int(ctx.read_as::<Stream>(args.get(1))?.map_or(0, |s| s.len()) as i64))
}

fn range(ctx: &mut Ctx, args: Args, rev: bool) -> CmdResult {
    let (start_at, end_at) = if rev { (3, 2) } else { (2, 3) };
    let start = parse_bound(args.get(start_at), 0, true)?;
    let end = parse_bound(args.get(end_at), u64::MAX, false)?;
    let mut count = None;
    let mut i = 4;
    while i < args.len() {
        if args.is(i, "COUNT") && i + 1 < args.len() {
            count = Some(count_arg(args, i + 1)?);
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(s) = ctx.read_as::<Stream>(args.get(1))? else { return Ok(Reply::Array(Vec::new())) };
    if count == Some(0) {
        return Ok(Reply::NullArray);
    }
    Ok(Reply::Array(range_reply(s, start, end, rev, count.unwrap_or(0))))
}

fn xrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    range(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx, args: Args) -> CmdResult {
    range(ctx, args, true)
}

fn xdel(ctx: &mut Ctx, args: Args) -> CmdResult {
    let ids = (2..args.len()).map(|i| parse_strict_id(args.get(i), 0)).collect::<Result<Vec<_>, _>>()?;
    let key = args.get(1);
    let Some(s) = ctx.lookup_as::<Stream>(key)? else { return Ok(Reply::Int(0)) };
    let deleted = ids.into_iter().filter(|&id| s.delete(id)).count();
    if deleted > 0 {
        ctx.event(STREAM, "xdel", key);
        ctx.changed(deleted as u64);
    }
    Ok(Reply::Int(deleted as i64))
}

fn xsetid(ctx: &mut Ctx, args: Args) -> CmdResult {
    let id = parse_strict_id(args.get(2), 0)?;
    let (mut added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i < args.len() {
        if args.is(i, "ENTRIESADDED") && i + 1 < args.len() {
            let n = args.int(i + 1)?;
            if n < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
            added = Some(n as u64);
        } else if args.is(i, "MAXDELETEDID") && i + 1 < args.len() {
            let m = parse_strict_id(args.get(i + 1), 0)?;
            if id < m {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let key = args.get(1);
    let Some(s) = ctx.lookup_as::<Stream>(key)? else { return Err(CmdError::NoSuchKey) };
    if id < s.last_id && s.edge(false).is_some_and(|top| id < top) {
        return Err(CmdError::err("The ID specified in XSETID is smaller than the target stream top item"));
    }
    if let Some(added) = added
        && (s.len() as u64) > added
    {
        return Err(CmdError::err("The entries_added specified in XSETID is smaller than the target stream length"));
    }
    s.last_id = id;
    if let Some(added) = added {
        s.entries_added = added;
    }
    if let Some(m) = max_deleted {
        s.max_deleted_id = m;
    }
    ctx.event(STREAM, "xsetid", key);
    ctx.changed(1);
    Ok(Reply::Ok)
}

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

fn xgroup(ctx: &mut Ctx, args: Args) -> CmdResult {
    let sub = args.keyword(1);
    let syntax = || CmdError::SubcommandSyntax { cmd: "XGROUP".into(), sub: args.str(1) };
    if sub == "HELP" {
        return Ok(Reply::help(XGROUP_HELP));
    }
    let arity_ok = match sub.as_str() {
        "CREATE" => (5..=8).contains(&args.len()),
        "SETID" => args.len() == 5 || args.len() == 7,
        "DESTROY" => args.len() == 4,
        "CREATECONSUMER" | "DELCONSUMER" => args.len() == 5,
        _ => return Err(CmdError::UnknownSubcommand { cmd: "XGROUP".into(), sub: args.str(1) }),
    };
    if !arity_ok {
        return Err(syntax());
    }
    let (mut mkstream, mut entries_read) = (false, None);
    let mut i = 5;
    while i < args.len() {
        if sub == "CREATE" && args.is(i, "MKSTREAM") {
            mkstream = true;
            i += 1;
        } else if (sub == "CREATE" || sub == "SETID") && args.is(i, "ENTRIESREAD") && i + 1 < args.len() {
            let n = args.int(i + 1)?;
            if n < -1 {
                return Err(CmdError::err("value for ENTRIESREAD must be positive or -1"));
            }
            entries_read = u64::try_from(n).ok();
            i += 2;
        } else {
            return Err(syntax());
        }
    }
    let (key, name) = (args.get(2), args.get(3));
    let now = ctx.now;
    if ctx.lookup_as::<Stream>(key)?.is_none() && !mkstream {
        return Err(CmdError::err(
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ));
    }
    let no_such_group = || {
        CmdError::Raw(format!(
            "NOGROUP No such consumer group '{}' for key name '{}'",
            String::from_utf8_lossy(name),
            String::from_utf8_lossy(key)
        ))
    };
    let s = ctx.write_as::<Stream>(key)?;
    let reply = match sub.as_str() {
        "CREATE" => {
            let id = if args.get(4) == b"$" { s.last_id } else { parse_strict_id(args.get(4), 0)? };
            if s.groups.contains_key(name) {
                return Err(CmdError::Raw("BUSYGROUP Consumer Group name already exists".into()));
            }
            s.groups.insert(Bytes::copy_from_slice(name), Group::new(id, entries_read));
            ctx.event(STREAM, "xgroup-create", key);
            ctx.changed(1);
            Reply::Ok
        }
        "SETID" => {
            let id = if args.get(4) == b"$" { s.last_id } else { parse_id(args.get(4), 0)? };
            let g = s.groups.get_mut(name).ok_or_else(no_such_group)?;
            g.last_id = id;
            g.entries_read = entries_read;
            ctx.event(STREAM, "xgroup-setid", key);
            ctx.changed(1);
            Reply::Ok
        }
        "DESTROY" => {
            if s.groups.remove(name).is_none() {
                return Ok(Reply::Int(0));
            }
            ctx.event(STREAM, "xgroup-destroy", key);
            ctx.changed(1);
            Reply::Int(1)
        }
        "CREATECONSUMER" => {
            let g = s.groups.get_mut(name).ok_or_else(no_such_group)?;
            if !g.consumer(args.get(4), now).1 {
                return Ok(Reply::Int(0));
            }
            ctx.event(STREAM, "xgroup-createconsumer", key);
            ctx.changed(1);
            Reply::Int(1)
        }
        _ => {
            let g = s.groups.get_mut(name).ok_or_else(no_such_group)?;
            let Some(pending) = g.remove_consumer(args.get(4)) else {
                ctx.changed(0);
                return Ok(Reply::Int(0));
            };
            ctx.event(STREAM, "xgroup-delconsumer", key);
            ctx.changed(1);
            Reply::Int(pending as i64)
        }
    };
    Ok(reply)
}

fn xack(ctx: &mut Ctx, args: Args) -> CmdResult {
    let ids = (3..args.len()).map(|i| parse_strict_id(args.get(i), 0)).collect::<Result<Vec<_>, _>>()?;
    let Some(s) = ctx.lookup_as::<Stream>(args.get(1))? else { return Ok(Reply::Int(0)) };
    let Some(g) = s.groups.get_mut(args.get(2)) else { return Ok(Reply::Int(0)) };
    let acked = ids.into_iter().filter(|&id| g.ack(id)).count();
    ctx.changed(acked as u64);
    Ok(Reply::Int(acked as i64))
}

fn xpending(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (key, name) = (args.get(1), args.get(2));
    let extended = args.len() > 3;
    if extended && args.len() < 6 {
        return Err(CmdError::Syntax);
    }
    let mut min_idle = 0i64;
    let mut at = 3;
    if extended && args.is(3, "IDLE") {
        if args.len() < 8 {
            return Err(CmdError::Syntax);
        }
        min_idle = args.int(4)?.max(0);
        at = 5;
    }
    let bounds = if extended {
        let start = parse_bound(args.get(at), 0, true)?;
        let end = parse_bound(args.get(at + 1), u64::MAX, false)?;
        let count = args.int(at + 2)?.max(0) as usize;
        if args.len() > at + 4 {
            return Err(CmdError::Syntax);
        }
        Some((start, end, count, (args.len() == at + 4).then(|| args.get(at + 3))))
    } else {
        None
    };
    let now = ctx.now;
    let s = ctx.read_as::<Stream>(key)?;
    let Some(g) = s.and_then(|s| s.groups.get(name)) else { return Err(no_group(key, name)) };
    let Some((start, end, count, consumer)) = bounds else {
        if g.pel.is_empty() {
            return Ok(Reply::Array(vec![Reply::Int(0), Reply::Null, Reply::Null, Reply::NullArray]));
        }
        let (first, last) = (g.pel.keys().next(), g.pel.keys().next_back());
        let per_consumer = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(n, c)| Reply::Array(vec![Reply::bulk(n), Reply::text(c.pel.len().to_string())]))
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            first.map_or(Reply::Null, |&id| id_reply(id)),
            last.map_or(Reply::Null, |&id| id_reply(id)),
            Reply::Array(per_consumer),
        ]));
    };
    if start > end || count == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let ids: Box<dyn Iterator<Item = StreamId>> = match consumer {
        Some(c) => match g.consumers.get(c) {
            Some(c) => Box::new(c.pel.range(start..=end).copied()),
            None => return Ok(Reply::Array(Vec::new())),
        },
        None => Box::new(g.pel.range(start..=end).map(|(id, _)| *id)),
    };
    let mut out = Vec::new();
    for id in ids {
        let Some(p) = g.pel.get(&id) else { continue };
        let idle = (now - p.delivery_time).max(0);
        if idle < min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::bulk(&p.consumer),
            Reply::Int(idle),
            Reply::Int(p.delivery_count as i64),
        ]));
        if out.len() == count {
            break;
        }
    }
    Ok(Reply::Array(out))
}

/// Commands a group operation propagates as, gathered while the stream
/// is borrowed and recorded after.
type Props = Vec<Vec<Vec<u8>>>;

fn words(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

/// The XCLAIM a delivery or claim propagates as (idempotent: FORCE
/// JUSTID with the exact time and count, and the group's last id); for
/// an entry deleted meanwhile, the XCLAIM that drops it from the PEL.
fn claim_prop(key: &[u8], group: &[u8], id: StreamId, g: &Group, pending: &Pending) -> Vec<Vec<u8>> {
    let (id, time, count, last) =
        (id.to_string(), pending.delivery_time.to_string(), pending.delivery_count.to_string(), g.last_id.to_string());
    words(&[
        b"XCLAIM",
        key,
        group,
        &pending.consumer,
        b"0",
        id.as_bytes(),
        b"TIME",
        time.as_bytes(),
        b"RETRYCOUNT",
        count.as_bytes(),
        b"FORCE",
        b"JUSTID",
        b"LASTID",
        last.as_bytes(),
    ])
}

fn group_id_prop(key: &[u8], group: &[u8], g: &Group) -> Vec<Vec<u8>> {
    let (last, read) = (g.last_id.to_string(), g.entries_read.map_or(-1, |r| r as i64).to_string());
    words(&[b"XGROUP", b"SETID", key, group, last.as_bytes(), b"ENTRIESREAD", read.as_bytes()])
}

fn record(ctx: &mut Ctx, props: Props, changes: u64) {
    for p in &props {
        propagate_owned(ctx, p);
    }
    ctx.changed(changes);
}

fn xclaim(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (key, name, consumer) = (args.get(1), args.get(2), args.get(3));
    let now = ctx.now;
    if ctx.lookup_as::<Stream>(key)?.and_then(|s| s.groups.get(name)).is_none() {
        return Err(no_group(key, name));
    }
    let min_idle = args.int(4).map_err(|_| CmdError::err("Invalid min-idle-time argument for XCLAIM"))?.max(0);
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match strict_id(args.get(j), 0, false) {
            Some((id, _)) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let (mut force, mut justid, mut retry, mut time, mut last_id) = (false, false, None, None, StreamId::MIN);
    while j < args.len() {
        let more = j + 1 < args.len();
        let bad = |what: &str| CmdError::err(format!("Invalid {what} option argument for XCLAIM"));
        if args.is(j, "FORCE") {
            force = true;
        } else if args.is(j, "JUSTID") {
            justid = true;
        } else if args.is(j, "IDLE") && more {
            j += 1;
            time = Some(now - args.int(j).map_err(|_| bad("IDLE"))?);
        } else if args.is(j, "TIME") && more {
            j += 1;
            time = Some(args.int(j).map_err(|_| bad("TIME"))?);
        } else if args.is(j, "RETRYCOUNT") && more {
            j += 1;
            retry = Some(args.int(j).map_err(|_| bad("RETRYCOUNT"))?);
        } else if args.is(j, "LASTID") && more {
            j += 1;
            last_id = parse_strict_id(args.get(j), 0)?;
        } else {
            return Err(CmdError::err(format!("Unrecognized XCLAIM option '{}'", args.str(j))));
        }
        j += 1;
    }
    let time = time.filter(|&t| (0..=now).contains(&t)).unwrap_or(now);
    let s = ctx.lookup_as::<Stream>(key)?.ok_or_else(|| no_group(key, name))?;
    let entries: Vec<_> = ids.iter().map(|&id| s.get(id)).collect();
    let Some(g) = s.groups.get_mut(name) else { return Err(no_group(key, name)) };
    let (mut props, mut changes, mut out) = (Props::new(), 0u64, Vec::new());
    let (mut propagate_last, mut created) = (false, false);
    if last_id > g.last_id {
        g.last_id = last_id;
        propagate_last = true;
    }
    for (id, entry) in ids.into_iter().zip(entries) {
        let Some(entry) = entry else {
            if let Some(p) = g.pel.get(&id).cloned() {
                props.push(claim_prop(key, name, id, g, &p));
                propagate_last = false;
                changes += 1;
                g.ack(id);
            }
            continue;
        };
        let pending = match g.pel.get(&id) {
            Some(p) => p.clone(),
            None if force => Pending { consumer: Bytes::new(), delivery_time: 0, delivery_count: 0 },
            None => continue,
        };
        if !pending.consumer.is_empty() && min_idle > 0 && now - pending.delivery_time < min_idle {
            continue;
        }
        let count = match retry {
            Some(n) => n.max(0) as u64,
            None if !justid => pending.delivery_count + 1,
            None => pending.delivery_count,
        };
        // (Delivering makes the consumer too: see first whether it is new.)
        created |= g.consumer(consumer, now).1;
        g.deliver(id, consumer, time, count);
        g.consumer(consumer, now).0.seen_time = now;
        out.push(if justid { id_reply(id) } else { entry_reply(id, &entry) });
        props.push(claim_prop(key, name, id, g, &g.pel[&id]));
        propagate_last = false;
        changes += 1;
    }
    if propagate_last {
        props.push(group_id_prop(key, name, g));
        changes += 1;
    }
    if created {
        ctx.event(STREAM, "xgroup-createconsumer", key);
    }
    record(ctx, props, changes + u64::from(created));
    Ok(Reply::Array(out))
}

fn xautoclaim(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (key, name, consumer) = (args.get(1), args.get(2), args.get(3));
    let now = ctx.now;
    let min_idle = args.int(4).map_err(|_| CmdError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?.max(0);
    let start = parse_bound(args.get(5), 0, true)?;
    let (mut count, mut justid) = (100usize, false);
    let mut j = 6;
    while j < args.len() {
        if args.is(j, "COUNT") && j + 1 < args.len() {
            let max = i64::MAX / 16;
            count = args
                .int(j + 1)
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| CmdError::err("COUNT must be > 0"))? as usize;
            j += 2;
        } else if args.is(j, "JUSTID") {
            justid = true;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let s = ctx.lookup_as::<Stream>(key)?.filter(|s| s.groups.contains_key(name)).ok_or_else(|| no_group(key, name))?;
    let mut attempts = count.saturating_mul(10);
    let candidates: Vec<(StreamId, Pending)> =
        s.groups[name].pel.range(start..).take(attempts.saturating_add(1)).map(|(id, p)| (*id, p.clone())).collect();
    let entries: Vec<_> = candidates.iter().map(|(id, _)| s.get(*id)).collect();
    let g = s.groups.get_mut(name).expect("checked above");
    // The consumer is made before anything is claimed, as Redis makes it.
    let created = g.consumer(consumer, now).1;
    let (mut props, mut changes, mut out, mut deleted) = (Props::new(), 0u64, Vec::new(), Vec::new());
    let mut next = StreamId::MIN;
    for ((id, pending), entry) in candidates.into_iter().zip(entries) {
        if attempts == 0 || count == 0 {
            next = id;
            break;
        }
        attempts -= 1;
        let Some(entry) = entry else {
            props.push(claim_prop(key, name, id, g, &pending));
            changes += 1;
            g.ack(id);
            deleted.push(id_reply(id));
            count -= 1;
            continue;
        };
        if min_idle > 0 && now - pending.delivery_time < min_idle {
            continue;
        }
        let delivered = if justid { pending.delivery_count } else { pending.delivery_count + 1 };
        g.deliver(id, consumer, now, delivered);
        g.consumer(consumer, now).0.seen_time = now;
        out.push(if justid { id_reply(id) } else { entry_reply(id, &entry) });
        props.push(claim_prop(key, name, id, g, &g.pel[&id]));
        changes += 1;
        count -= 1;
    }
    if created {
        ctx.event(STREAM, "xgroup-createconsumer", key);
    }
    record(ctx, props, changes + u64::from(created));
    Ok(Reply::Array(vec![id_reply(next), Reply::Array(out), Reply::Array(deleted)]))
}

fn lag_reply(s: &Stream, g: &Group) -> Reply {
    s.lag(g).map_or(Reply::Null, |l| Reply::Int(l as i64))
}

fn read_reply(g: &Group) -> Reply {
    g.entries_read.map_or(Reply::Null, |r| Reply::Int(r as i64))
}

fn stream_info(s: &Stream, full: Option<usize>) -> Reply {
    let mut m = vec![
        (Reply::text("length"), Reply::Int(s.len() as i64)),
        (Reply::text("radix-tree-keys"), Reply::Int(s.node_count() as i64)),
        (Reply::text("radix-tree-nodes"), Reply::Int((s.node_count() * 2).max(1) as i64)),
        (Reply::text("last-generated-id"), id_reply(s.last_id)),
        (Reply::text("max-deleted-entry-id"), id_reply(s.max_deleted_id)),
        (Reply::text("entries-added"), Reply::Int(s.entries_added as i64)),
        (Reply::text("recorded-first-entry-id"), id_reply(s.first_id)),
    ];
    let Some(count) = full else {
        let edge = |rev| range_reply(s, StreamId::MIN, StreamId::MAX, rev, 1).pop().unwrap_or(Reply::Null);
        m.push((Reply::text("groups"), Reply::Int(s.groups.len() as i64)));
        m.push((Reply::text("first-entry"), edge(false)));
        m.push((Reply::text("last-entry"), edge(true)));
        return Reply::Map(m);
    };
    m.push((Reply::text("entries"), Reply::Array(range_reply(s, StreamId::MIN, StreamId::MAX, false, count))));
    let groups = s.groups.iter().map(|(name, g)| {
        let limit = if count == 0 { usize::MAX } else { count };
        let pel = g.pel.iter().take(limit).map(|(id, p)| {
            Reply::Array(vec![
                id_reply(*id),
                Reply::bulk(&p.consumer),
                Reply::Int(p.delivery_time),
                Reply::Int(p.delivery_count as i64),
            ])
        });
        let consumers = g.consumers.iter().map(|(cname, c)| {
            let pending = c.pel.iter().take(limit).filter_map(|id| {
                let p = g.pel.get(id)?;
                Some(Reply::Array(vec![
                    id_reply(*id),
                    Reply::Int(p.delivery_time),
                    Reply::Int(p.delivery_count as i64),
                ]))
            });
            Reply::Map(vec![
                (Reply::text("name"), Reply::bulk(cname)),
                (Reply::text("seen-time"), Reply::Int(c.seen_time)),
                (Reply::text("pel-count"), Reply::Int(c.pel.len() as i64)),
                (Reply::text("pending"), Reply::Array(pending.collect())),
            ])
        });
        Reply::Map(vec![
            (Reply::text("name"), Reply::bulk(name)),
            (Reply::text("last-delivered-id"), id_reply(g.last_id)),
            (Reply::text("entries-read"), read_reply(g)),
            (Reply::text("lag"), lag_reply(s, g)),
            (Reply::text("pel-count"), Reply::Int(g.pel.len() as i64)),
            (Reply::text("pending"), Reply::Array(pel.collect())),
            (Reply::text("consumers"), Reply::Array(consumers.collect())),
        ])
    });
    m.push((Reply::text("groups"), Reply::Array(groups.collect())));
    Reply::Map(m)
}

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

fn xinfo(ctx: &mut Ctx, args: Args) -> CmdResult {
    let sub = args.keyword(1);
    let syntax = || CmdError::SubcommandSyntax { cmd: "XINFO".into(), sub: args.str(1) };
    if sub == "HELP" {
        return Ok(Reply::help(XINFO_HELP));
    }
    if args.len() < 3 {
        return Err(syntax());
    }
    let full = match sub.as_str() {
        "STREAM" => match args.len() {
            3 => None,
            4 if args.is(3, "FULL") => Some(10),
            6 if args.is(3, "FULL") && args.is(4, "COUNT") => {
                let n = args.int(5)?;
                Some(if n < 0 { 10 } else { n as usize })
            }
            _ => return Err(syntax()),
        },
        "GROUPS" if args.len() == 3 => None,
        "CONSUMERS" if args.len() == 4 => None,
        "GROUPS" | "CONSUMERS" => return Err(syntax()),
        _ => return Err(CmdError::UnknownSubcommand { cmd: "XINFO".into(), sub: args.str(1) }),
    };
    let now = ctx.now;
    let Some(s) = ctx.read_as::<Stream>(args.get(2))? else { return Err(CmdError::NoSuchKey) };
    Ok(match sub.as_str() {
        "STREAM" => stream_info(s, full),
        "GROUPS" => Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        (Reply::text("name"), Reply::bulk(name)),
                        (Reply::text("consumers"), Reply::Int(g.consumers.len() as i64)),
                        (Reply::text("pending"), Reply::Int(g.pel.len() as i64)),
                        (Reply::text("last-delivered-id"), id_reply(g.last_id)),
                        (Reply::text("entries-read"), read_reply(g)),
                        (Reply::text("lag"), lag_reply(s, g)),
                    ])
                })
                .collect(),
        ),
        _ => {
            let name = args.get(3);
            let Some(g) = s.groups.get(name) else {
                return Err(CmdError::Raw(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(name),
                    args.str(2)
                )));
            };
            Reply::Array(
                g.consumers
                    .iter()
                    .map(|(cname, c)| {
                        Reply::Map(vec![
                            (Reply::text("name"), Reply::bulk(cname)),
                            (Reply::text("pending"), Reply::Int(c.pel.len() as i64)),
                            (Reply::text("idle"), Reply::Int((now - c.seen_time).max(0))),
                        ])
                    })
                    .collect(),
            )
        }
    })
}

/// A blocked read's COUNT when none is given (Redis's
/// XREAD_BLOCKED_DEFAULT_COUNT): a low id must not make one wake-up send
/// a whole stream.
const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// XREAD / XREADGROUP's arguments.
struct ReadArgs {
    count: usize,
    /// BLOCK's timeout: None without BLOCK, Some(None) to wait forever.
    block: Option<Option<Duration>>,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    /// Where the keys start, and how many.
    streams_at: usize,
    n: usize,
}

fn parse_read(args: Args, group_cmd: bool, in_script: bool) -> Result<ReadArgs, CmdError> {
    let mut r = ReadArgs { count: 0, block: None, group: None, noack: false, streams_at: 0, n: 0 };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if args.is(i, "BLOCK") && more > 0 {
            // Redis keeps this refusal for scripts (where nothing blocks).
            if in_script {
                return Err(CmdError::err(format!(
                    "{} command is not allowed with BLOCK option from scripts",
                    args.str(0)
                )));
            }
            i += 1;
            let ms = args.int(i).map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(CmdError::err("timeout is negative"));
            }
            r.block = Some((ms > 0).then(|| Duration::from_millis(ms as u64)));
        } else if args.is(i, "COUNT") && more > 0 {
            i += 1;
            r.count = count_arg(args, i)?;
        } else if args.is(i, "STREAMS") && more > 0 {
            r.streams_at = i + 1;
            let rest = args.len() - r.streams_at;
            if !rest.is_multiple_of(2) {
                return Err(CmdError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            r.n = rest / 2;
            break;
        } else if args.is(i, "GROUP") && more >= 2 {
            if !group_cmd {
                return Err(CmdError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((owned(args, i + 1), owned(args, i + 2)));
            i += 2;
        } else if args.is(i, "NOACK") {
            if !group_cmd {
                return Err(CmdError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if r.streams_at == 0 {
        return Err(CmdError::Syntax);
    }
    if group_cmd && r.group.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// The keys of XREAD / XREADGROUP: the first half after STREAMS.
fn read_keys(args: Args) -> Vec<usize> {
    let Some(at) = (1..args.len()).find(|&i| args.is(i, "STREAMS")) else { return Vec::new() };
    let n = (args.len() - at - 1) / 2;
    (at + 1..at + 1 + n).collect()
}

/// Where a read starts on one stream: after an id, new entries only
/// (`>`), or the end now (`$`).
#[derive(Clone, Copy)]
enum From {
    After(StreamId),
    New,
    Last,
}

fn parse_from(b: &[u8], group: bool) -> Result<From, CmdError> {
    match b {
        b"$" if group => Err(CmdError::err(
            "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
        )),
        b"$" => Ok(From::Last),
        b">" if !group => Err(CmdError::err(
            "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
        )),
        b">" => Ok(From::New),
        _ => parse_strict_id(b, 0).map(From::After),
    }
}

/// Reads one stream for XREAD (no group): entries after an id, if it
/// has any. Also returns the id (`$` resolved: the stream's last id, 0-0
/// without a stream) a blocked read would wait past.
fn read_plain(ctx: &mut Ctx, key: &[u8], from: From, count: usize) -> Result<(Option<Reply>, StreamId), CmdError> {
    let stream = ctx.read_as::<Stream>(key)?;
    let after = match from {
        From::After(id) => id,
        _ => stream.as_ref().map_or(StreamId::MIN, |s| s.last_id),
    };
    let Some(s) = stream else { return Ok((None, after)) };
    let Some(start) = after.next().filter(|_| s.edge(false).is_some_and(|last| last > after)) else {
        return Ok((None, after));
    };
    Ok((Some(Reply::Array(range_reply(s, start, StreamId::MAX, false, count))), after))
}

fn missing_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Raw(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// The stream at `key`, if it has `group`.
fn group_stream<'c>(ctx: &'c mut Ctx, key: &[u8], group: &[u8]) -> Result<&'c mut Stream, CmdError> {
    ctx.lookup_as::<Stream>(key)?.filter(|s| s.groups.contains_key(group)).ok_or_else(|| missing_group(key, group))
}

/// Reads one stream for a group: new entries (`>`), delivering them, or
/// the consumer's own pending history after an id. Nothing to deliver
/// answers None and leaves the group as it was.
fn read_group(
    ctx: &mut Ctx,
    key: &[u8],
    (group, consumer): (&[u8], &[u8]),
    from: From,
    count: usize,
    noack: bool,
) -> Result<Option<Reply>, CmdError> {
    let now = ctx.now;
    let st = group_stream(ctx, key, group)?;
    let after = match from {
        From::After(after) => Some(after),
        _ if st.edge(false).is_none_or(|last| last <= st.groups[group].last_id) => return Ok(None),
        _ => None,
    };
    // The group leaves the stream while it reads, so both can be changed.
    let mut g = st.groups.remove(group).expect("checked above");
    let (c, created) = g.consumer(consumer, now);
    c.seen_time = now;
    let mut props = Props::new();
    if created && noack {
        props.push(words(&[b"XGROUP", b"CREATECONSUMER", key, group, consumer]));
    }
    let mut out = Vec::new();
    match after {
        Some(after) => {
            let ids: Vec<StreamId> = g.consumers[consumer]
                .pel
                .range((Excluded(after), Unbounded))
                .copied()
                .take(if count == 0 { usize::MAX } else { count })
                .collect();
            for id in ids {
                match st.get(id) {
                    Some(pairs) => {
                        if let Some(p) = g.pel.get_mut(&id) {
                            p.delivery_time = now;
                            p.delivery_count += 1;
                        }
                        out.push(entry_reply(id, &pairs));
                    }
                    None => out.push(Reply::Array(vec![id_reply(id), Reply::NullArray])),
                }
            }
        }
        None => {
            let start = g.last_id.next().unwrap_or(StreamId::MAX);
            let mut picked = Vec::new();
            st.range(start, StreamId::MAX, false, |id, pairs| {
                picked.push((id, owned_pairs(pairs)));
                count == 0 || picked.len() < count
            });
            for (id, pairs) in picked {
                st.advance(&mut g, id);
                if !noack {
                    g.deliver(id, consumer, now, 1);
                    props.push(claim_prop(key, group, id, &g, &g.pel[&id]));
                }
                out.push(entry_reply(id, &pairs));
            }
            if noack && !out.is_empty() {
                props.push(group_id_prop(key, group, &g));
            }
        }
    }
    st.groups.insert(Bytes::copy_from_slice(group), g);
    if created {
        ctx.event(STREAM, "xgroup-createconsumer", key);
    }
    // Redis counts the stream served and the consumer made.
    record(ctx, props, 1 + u64::from(created));
    Ok(Some(Reply::Array(out)))
}

/// Runs a read step on `key`'s owner once no transaction holds it. What
/// it changed (a group's deliveries) is settled there and journalled at
/// once, as a blocked read served later is, or joins the client's EXEC
/// or script.
async fn on_owner<R, F>(client: &mut Client, key: &Key, f: F) -> R
where
    F: FnOnce(&mut Ctx, &[u8]) -> R + Send + 'static,
    R: Send + 'static,
{
    let (db, no_touch, at, in_unit) = (client.db(), client.no_touch(), client.frozen_now, client.in_exec);
    let k = key.clone();
    let (r, ops) = client
        .shard
        .run_on_async(client.shard.owner(key), move |sh| async move {
            if !in_unit {
                sh.wait_unlocked(std::iter::once((db, &*k))).await;
            }
            let r = sh.with_ctx_at(db, no_touch, at, |ctx| f(ctx, &k));
            let ops = sh.settle();
            if in_unit {
                return (r, ops);
            }
            sh.journal(ops);
            (r, Vec::new())
        })
        .await;
    client.propagate(ops);
    r
}

fn streams_reply(client: &Client, results: Vec<(Reply, Reply)>) -> Reply {
    match client.proto() {
        Proto::Resp3 => Reply::Map(results),
        _ => Reply::Array(results.into_iter().map(|(k, v)| Reply::Array(vec![k, v])).collect()),
    }
}

async fn xread_generic(client: &mut Client, args: Args<'_>, group_cmd: bool) -> CmdResult {
    let r = parse_read(args, group_cmd, client.in_script)?;
    let keys: Vec<Key> = (0..r.n).map(|i| Key::from(args.get(r.streams_at + i))).collect();
    let froms =
        (0..r.n).map(|i| parse_from(args.get(r.streams_at + r.n + i), group_cmd)).collect::<Result<Vec<_>, _>>()?;
    // Every group must exist before any is read from.
    if let Some((group, _)) = r.group.clone().filter(|_| r.n > 1) {
        for key in &keys {
            let g = group.clone();
            on_owner(client, key, move |ctx, key| group_stream(ctx, key, &g).map(|_| ())).await?;
        }
    }
    let mut results = Vec::new();
    let mut waits = Vec::new();
    for (key, from) in keys.iter().zip(froms) {
        let (count, noack, group) = (r.count, r.noack, r.group.clone());
        let (entries, after) = on_owner(client, key, move |ctx, key| match group {
            Some((g, c)) => read_group(ctx, key, (&g, &c), from, count, noack).map(|r| (r, StreamId::MIN)),
            None => read_plain(ctx, key, from, count),
        })
        .await?;
        match entries {
            Some(entries) => results.push((Reply::bulk(key), entries)),
            None => waits.push((key.clone(), after)),
        }
    }
    if !results.is_empty() {
        return Ok(streams_reply(client, results));
    }
    // Inside EXEC or a script it answers as a timeout would.
    let Some(timeout) = r.block.filter(|_| !client.in_exec) else { return Ok(Reply::NullArray) };
    let read = StreamRead {
        count: if r.count == 0 { BLOCKED_DEFAULT_COUNT } else { r.count },
        group: r.group.map(|(g, c)| (g, c, r.noack)),
        after: waits,
    };
    match block(client, &keys, timeout, (BlockOp::Stream(Arc::new(read)), &POPPER), None).await? {
        Outcome::Served(s) => {
            let entries = s.read.unwrap_or_else(|| Ok(Reply::Array(Vec::new())))?;
            Ok(streams_reply(client, vec![(Reply::bulk(&s.key), entries)]))
        }
        Outcome::TimedOut => Ok(Reply::NullArray),
        Outcome::Unblocked => Err(CmdError::Unblocked),
    }
}

/// Whether a blocked read on `key` can be answered: entries past its
/// position (for a group, past the group's last delivered id), or, for a
/// group read, its stream or its group gone.
fn read_ready(ctx: &mut Ctx, key: &[u8], waiter: &Waiter) -> Result<bool, CmdError> {
    let BlockOp::Stream(read) = &waiter.op else { return Ok(false) };
    let stream = ctx.read_as::<Stream>(key).ok().flatten();
    // Only a live entry past the position serves (never an empty reply).
    let past = |s: &Stream, after: StreamId| s.edge(false).is_some_and(|last| last > after);
    Ok(match (&read.group, stream) {
        (Some((group, _, _)), Some(s)) => s.groups.get(group).is_none_or(|g| past(s, g.last_id)),
        (Some(_), None) => true,
        (None, Some(s)) => read.after.iter().any(|(k, after)| **k == *key && past(s, *after)),
        (None, None) => false,
    })
}

/// Answers a blocked read from `key`, known to be ready.
fn serve_read(ctx: &mut Ctx, key: &[u8], waiter: &Waiter) -> Served {
    let BlockOp::Stream(read) = &waiter.op else { return Served::empty(key) };
    let got = match &read.group {
        Some((group, consumer, noack)) => match ctx.read_as::<Stream>(key) {
            Ok(Some(s)) if s.groups.contains_key(group) => {
                read_group(ctx, key, (group, consumer), From::New, read.count, *noack)
            }
            Ok(Some(_)) => {
                Err(CmdError::Raw("NOGROUP the consumer group this client was blocked on no longer exists".into()))
            }
            _ => Err(CmdError::Raw("UNBLOCKED the stream key no longer exists".into())),
        },
        None => {
            let after = read.after.iter().find(|(k, _)| **k == *key).map_or(StreamId::MAX, |(_, id)| *id);
            read_plain(ctx, key, From::After(after), read.count).map(|(entries, _)| entries)
        }
    };
    Served { read: Some(got.map(|e| e.unwrap_or_else(|| Reply::Array(Vec::new())))), ..Served::empty(key) }
}

/// How blocked stream reads are served, for the shards that serve them.
static POPPER: Popper = Popper { ready: read_ready, pop: serve_read };

fn xread<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(xread_generic(client, args, false))
}

fn xreadgroup<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(xread_generic(client, args, true))
}

const KEY1: Keys = Keys::Range(1, 1, 1);
const KEY2: Keys = Keys::Range(2, 2, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("xadd", -5, WRITE | DENYOOM | FAST, KEY1, Handler::Data(xadd)),
    Spec::new("xtrim", -4, WRITE, KEY1, Handler::Data(xtrim)),
    Spec::new("xlen", 2, READONLY | FAST, KEY1, Handler::Data(xlen)),
    Spec::new("xrange", -4, READONLY, KEY1, Handler::Data(xrange)),
    Spec::new("xrevrange", -4, READONLY, KEY1, Handler::Data(xrevrange)),
    Spec::new("xdel", -3, WRITE | FAST, KEY1, Handler::Data(xdel)),
    Spec::new("xsetid", -3, WRITE | DENYOOM | FAST, KEY1, Handler::Data(xsetid)),
    Spec::new("xgroup", -2, WRITE | CONTAINER, KEY2, Handler::Data(xgroup)).with_subcommands(&[
        "xgroup|create",
        "xgroup|createconsumer",
        "xgroup|delconsumer",
        "xgroup|destroy",
        "xgroup|help",
        "xgroup|setid",
    ]),
    Spec::new("xack", -4, WRITE | FAST, KEY1, Handler::Data(xack)),
    Spec::new("xpending", -3, READONLY, KEY1, Handler::Data(xpending)),
    Spec::new("xclaim", -6, WRITE | FAST, KEY1, Handler::Data(xclaim)),
    Spec::new("xautoclaim", -6, WRITE | FAST, KEY1, Handler::Data(xautoclaim)),
    Spec::new("xinfo", -2, READONLY | CONTAINER, KEY2, Handler::Data(xinfo)).with_subcommands(&[
        "xinfo|consumers",
        "xinfo|groups",
        "xinfo|help",
        "xinfo|stream",
    ]),
    Spec::new("xread", -4, READONLY | BLOCKING, Keys::Find(read_keys), Handler::Async(xread)),
    Spec::new("xreadgroup", -7, WRITE | BLOCKING, Keys::Find(read_keys), Handler::Async(xreadgroup)),
];
