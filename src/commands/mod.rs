//! The command families and their one table.
//!
//! Each family file ends with its `TABLE` of rows (`command::Spec`):
//! name, arity, flags, key positions and handler. `dispatch` is the only
//! gate: it checks arity and auth, finds the owner shard of the keys and
//! runs the handler there. Bodies never repeat those checks. What the
//! families share beyond the model (count and MPOP parsing, random picks)
//! is here.

use std::sync::LazyLock;

use crate::command::{Args, Ctx, Table};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;

use crate::server::client::{Handler, Spec};

/// A table handler for an async command whose body is a call to a shared
/// function: `async_handler!(sinter, |c, a| algebra(c, a, Algebra::Inter, false));`
macro_rules! async_handler {
    ($name:ident, $body:expr) => {
        fn $name<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
            Box::pin($body(client, args))
        }
    };
}

mod bitmaps;
mod blocking;
mod command;
pub mod connection;
mod debug;
mod dump;
mod geo;
pub mod hashes;
mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod long_double;
mod memory;
pub mod pubsub;
mod replication;
mod scripting;
pub mod server;
pub mod sets;
mod sort;
mod stats;
mod streams;
pub mod strings;
mod tracking;
pub mod transactions;
pub mod zsets;

static TABLE: LazyLock<Table<Client>> = LazyLock::new(|| {
    Table::new([
        strings::TABLE,
        bitmaps::TABLE,
        hyperloglog::TABLE,
        keys::TABLE,
        dump::TABLE,
        hashes::TABLE,
        lists::TABLE,
        blocking::TABLE,
        sets::TABLE,
        zsets::TABLE,
        sort::TABLE,
        geo::TABLE,
        streams::TABLE,
        transactions::TABLE,
        pubsub::TABLE,
        scripting::TABLE,
        connection::TABLE,
        server::TABLE,
        command::TABLE,
        debug::TABLE,
        stats::TABLE,
        memory::TABLE,
        replication::TABLE,
    ])
});

/// Every command percore has; the server is given it at startup.
pub fn table() -> &'static Table<Client> {
    &TABLE
}

/// Positions for the random-member commands (HRANDFIELD, SRANDMEMBER,
/// ZRANDMEMBER, SPOP), drawn with `random` or taken from `all`: a negative
/// count draws with repetition; a count covering most of the collection
/// shuffles all positions; a small one draws until it has distinct picks
/// (Redis's cases, so a few picks from a big collection stay cheap).
pub fn random_positions(
    len: usize,
    count: i64,
    mut random: impl FnMut() -> Option<usize>,
    all: impl FnOnce() -> Vec<usize>,
) -> Vec<usize> {
    if count < 0 {
        return (0..count.unsigned_abs()).map_while(|_| random()).collect();
    }
    let count = count as usize;
    if count >= len || count.saturating_mul(3) > len {
        let mut all = all();
        if count < len {
            fastrand::shuffle(&mut all);
            all.truncate(count);
        }
        return all;
    }
    let mut picked = indexmap::IndexSet::with_capacity(count);
    while picked.len() < count {
        match random() {
            Some(p) => picked.insert(p),
            None => break,
        };
    }
    picked.into_iter().collect()
}

/// Most elements a negative count (picks with repetition) may ask for in
/// one reply: beyond, the reply alone would take gigabytes.
const MAX_RANDOM_PICKS: i64 = 1 << 24;

/// The count of SRANDMEMBER, HRANDFIELD and ZRANDMEMBER: Redis refuses
/// LONG_MIN; percore also refuses negative counts past MAX_RANDOM_PICKS.
pub fn random_count(args: Args, i: usize) -> Result<i64, CmdError> {
    let n = args.int(i)?;
    if n == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if n < -MAX_RANDOM_PICKS {
        return Err(CmdError::err(format!("value is out of range, value must not be below -{MAX_RANDOM_PICKS}")));
    }
    Ok(n)
}

/// A non-negative count argument, with the wording of the pop commands.
pub fn pop_count(args: Args, i: usize) -> Result<usize, CmdError> {
    let n = args.int(i).ok().filter(|&n| n >= 0);
    Ok(n.ok_or_else(|| CmdError::err("value is out of range, must be positive"))? as usize)
}

/// The shape shared by LMPOP, ZMPOP, BLMPOP and BZMPOP: `numkeys key...
/// <end> [COUNT n]` with `numkeys` at argument `at`. Returns the key
/// positions, the index of the end word and the count.
pub fn parse_mpop(args: Args, at: usize) -> Result<(std::ops::Range<usize>, usize, usize), CmdError> {
    let numkeys =
        args.int(at).ok().filter(|&n| n > 0).ok_or_else(|| CmdError::err("numkeys should be greater than 0"))?;
    let end_at =
        (numkeys as u64).checked_add(at as u64 + 1).filter(|&w| w < args.len() as u64).ok_or(CmdError::Syntax)?
            as usize;
    let mut count = None;
    let mut j = end_at + 1;
    while j < args.len() {
        if count.is_none() && args.is(j, "COUNT") && j + 1 < args.len() {
            let n = args.int(j + 1).ok().filter(|&n| n > 0);
            count = Some(n.ok_or_else(|| CmdError::err("count should be greater than 0"))? as usize);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((at + 1..end_at, end_at, count.unwrap_or(1)))
}

/// The tail SINTERCARD and ZINTERCARD share after `numkeys` (already
/// parsed as `n` > 0): `key... [LIMIT limit]`. Returns the limit (0: none).
pub fn intercard_limit(args: Args, n: usize) -> Result<usize, CmdError> {
    if n > args.len() - 2 {
        return Err(CmdError::err("Number of keys can't be greater than number of args"));
    }
    let mut limit = 0;
    let mut j = 2 + n;
    while j < args.len() {
        if args.is(j, "LIMIT") && j + 1 < args.len() {
            let l = args.int(j + 1).ok().filter(|&l| l >= 0);
            limit = l.ok_or_else(|| CmdError::err("LIMIT can't be negative"))? as usize;
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(limit)
}

/// The body LMPOP and ZMPOP share: under one transaction over `keys`, pop
/// from the first key `pop` finds something in (None: missing key) and
/// answer `[key, items]`, or a null array when every key is missing.
pub async fn mpop<T, P>(client: &Client, keys: Vec<&[u8]>, pop: P, items: fn(T) -> Reply) -> CmdResult
where
    P: Fn(&mut Ctx, &[u8]) -> Result<Option<T>, CmdError> + Clone + Send + 'static,
    T: Send + 'static,
{
    let db = client.db();
    let tx = Tx::lock(client, db, keys.iter().copied()).await;
    let mut result = Ok(Reply::NullArray);
    for key in keys {
        let popped = tx.on(client, db, key, pop.clone()).await;
        match popped {
            Ok(None) => continue,
            Ok(Some(popped)) => result = Ok(Reply::Array(vec![Reply::bulk(key), items(popped)])),
            Err(e) => result = Err(e),
        }
        break;
    }
    tx.unlock().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CONTAINER, Keys, READONLY, REDIS_FLAG_NAMES, WRITE, meta};

    #[test]
    fn table_is_consistent() {
        for spec in table().all() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.arity != 0, "{}", spec.name);
            assert!(
                spec.has(WRITE) || spec.has(READONLY) || !matches!(spec.handler, Handler::Data(_) | Handler::Split(..)),
                "{} touches keys but is neither WRITE nor READONLY",
                spec.name
            );
        }
        assert!(table().lookup(b"GeT").is_some());
        assert!(table().lookup(b"nosuchcommand").is_none());
        assert!(table().lookup(&[b'a'; 100]).is_none());
    }

    /// Every row is a Redis command with Redis's arity and, for the flags
    /// both know, Redis's flags: COMMAND reports Redis's description, so
    /// the rows must behave as it says.
    #[test]
    fn rows_agree_with_redis() {
        // Where percore knowingly differs. EXEC: the pause judges it by
        // its queued commands. BLMPOP, BZMPOP: refused in scripts, where
        // Redis runs them without blocking.
        const KNOWN: &[&str] = &["exec: may_replicate set", "blmpop: noscript set", "bzmpop: noscript set"];
        let mut differences = Vec::new();
        for spec in table().all() {
            let Some(redis) = meta::get(spec.name) else {
                differences.push(format!("{}: not a Redis 7.0 command", spec.name));
                continue;
            };
            if redis.arity != spec.arity {
                differences.push(format!("{}: arity {} (Redis {})", spec.name, spec.arity, redis.arity));
            }
            // A container's flags are its subcommands' in Redis.
            for (flag, name) in REDIS_FLAG_NAMES.iter().filter(|_| !spec.has(CONTAINER)) {
                if spec.has(*flag) != redis.has_flag(name) {
                    differences.push(format!(
                        "{}: {name} {}",
                        spec.name,
                        if spec.has(*flag) { "set" } else { "missing" }
                    ));
                }
            }
            // Keys where Redis's legacy range says them.
            let movable = redis.has_flag("movablekeys");
            let range = match spec.keys {
                Keys::Range(first, last, step) => (first, last, step),
                _ => (0, 0, 0),
            };
            if !movable && !spec.has(CONTAINER) && range != redis.range {
                differences.push(format!("{}: keys {range:?} (Redis {:?})", spec.name, redis.range));
            }
            for sub in spec.subcommands {
                assert!(sub.starts_with(&format!("{}|", spec.name)) && meta::get(sub).is_some(), "{sub}");
            }
        }
        differences.retain(|d| !KNOWN.contains(&d.as_str()));
        differences.sort();
        assert!(differences.is_empty(), "{}", differences.join("\n"));
    }
}
