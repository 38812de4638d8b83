//! DUMP and RESTORE: a value as an RDB payload (cluster.c's).

use super::{Handler, Spec};
use crate::command::{Args, Ctx, DENYOOM, Keys, READONLY, WRITE};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::rdb::read::Limits;
use crate::storage::Usage;
use crate::storage::events::GENERIC;

fn dump(ctx: &mut Ctx, args: Args) -> CmdResult {
    let opts = ctx.hot.rdb_options();
    Ok(match ctx.read(args.get(1)) {
        Some(e) => Reply::bulk(&crate::rdb::write::dump(&e.value, opts)),
        None => Reply::Null,
    })
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f],
/// with Redis's checks in Redis's order. It propagates with the absolute
/// expiry (ABSTTL), or as DEL when it replaced a key with one already
/// past.
fn restore(ctx: &mut Ctx, args: Args) -> CmdResult {
    let (mut replace, mut absttl, mut idle, mut freq) = (false, false, None, None);
    let mut j = 4;
    while j < args.len() {
        let more = j + 1 < args.len();
        match args.keyword(j).as_str() {
            "REPLACE" => replace = true,
            "ABSTTL" => absttl = true,
            "IDLETIME" if more && freq.is_none() => {
                let secs = args.int(j + 1)?;
                if secs < 0 {
                    return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
                }
                idle = Some(secs as u64);
                j += 1;
            }
            "FREQ" if more && idle.is_none() => {
                let f = args.int(j + 1)?;
                if !(0..=255).contains(&f) {
                    return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
                }
                freq = Some(f as u8);
                j += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    let key = args.get(1);
    if !replace && ctx.lookup(key).is_some() {
        return Err(CmdError::Raw("BUSYKEY Target key name already exists.".into()));
    }
    let ttl = args.int(2)?;
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    let body = crate::rdb::read::verify_payload(args.get(3))
        .ok_or_else(|| CmdError::err("DUMP payload version or checksum are wrong"))?;
    let value = match crate::rdb::read::payload_value(body, &Limits::from_hot(ctx.hot)) {
        Ok(Some(v)) => v,
        Ok(None) => return Err(CmdError::err("Bad data format")),
        Err(e) => {
            tracing::warn!("RESTORE of a bad payload: {e}");
            return Err(CmdError::err("Bad data format"));
        }
    };
    let now = ctx.now;
    let deleted = replace && ctx.db().remove(key, now).is_some();
    let at = match ttl {
        0 => 0,
        t if absttl => t,
        t => t.saturating_add(now),
    };
    if at != 0 && at <= now && !ctx.loading {
        if deleted {
            ctx.event(GENERIC, "del", key);
            ctx.propagate(&[b"DEL", key]);
        } else {
            ctx.changed(0);
        }
        return Ok(Reply::Ok);
    }
    let entry = ctx.ks.dbs[ctx.db].insert(key, value, at, now);
    let usage = idle.map(Usage::IdleSecs).or(freq.map(Usage::Freq));
    if let Some(usage) = usage {
        entry.set_usage(usage, now);
    }
    ctx.event(GENERIC, "restore", key);
    if at != 0 && !absttl {
        let at = at.to_string();
        let rewrite: Vec<&[u8]> = args
            .iter()
            .enumerate()
            .map(|(i, a)| if i == 2 { at.as_bytes() } else { a })
            .chain([&b"ABSTTL"[..]])
            .collect();
        ctx.propagate(&rewrite);
    }
    Ok(Reply::Ok)
}

pub const TABLE: &[Spec] = &[
    Spec::new("dump", 2, READONLY, Keys::Range(1, 1, 1), Handler::Data(dump)),
    Spec::new("restore", -4, WRITE | DENYOOM, Keys::Range(1, 1, 1), Handler::Data(restore)),
];
