//! The command model: what a command is (its row: name, arity, flags,
//! keys, handler), what it is called with (`Args`) and what its body
//! works with on a shard (`Ctx`).
//!
//! It sits below both the server, which dispatches rows, and the command
//! families (`commands/`), which define them; it knows neither. A row's
//! handler is generic over the server's client type so that the model
//! never names it.

mod args;
mod ctx;
mod keys;
pub mod meta;
mod meta_table;

use futures::future::LocalBoxFuture;
use hashbrown::HashMap;

use crate::protocol::CmdResult;

pub use args::{Args, OwnedArgs, parse_f64};
pub use ctx::{Ctx, Typed};
pub use keys::{Keys, store_numkeys};

// Flags, with Redis's meaning (server.h, above `struct redisCommand`).
/// May modify the keyspace.
pub const WRITE: u32 = 1;
/// Only reads the keyspace.
pub const READONLY: u32 = 1 << 1;
/// May grow memory; refused when over maxmemory.
pub const DENYOOM: u32 = 1 << 2;
/// Administrative; not for ordinary clients.
pub const ADMIN: u32 = 1 << 3;
/// O(1) or O(log N): never blocks the server for long.
pub const FAST: u32 = 1 << 4;
/// Allowed before AUTH.
pub const NO_AUTH: u32 = 1 << 5;
/// Allowed while loading a dataset.
pub const LOADING: u32 = 1 << 6;
/// Allowed on a replica with stale data.
pub const STALE: u32 = 1 << 7;
/// Not allowed from scripts.
pub const NOSCRIPT: u32 = 1 << 8;
/// Runs at once even between MULTI and EXEC (EXEC, DISCARD, MULTI, WATCH,
/// QUIT, RESET), where every other command is queued.
pub const NO_QUEUE: u32 = 1 << 9;
/// Allowed to a RESP2 client that has subscriptions (subscribe mode).
pub const SUBSCRIBE_MODE: u32 = 1 << 10;
/// Runs even while a script is busy (SCRIPT KILL, SHUTDOWN NOSAVE...).
pub const ALLOW_BUSY: u32 = 1 << 11;
/// May block the client (BLPOP, BZPOPMIN...).
pub const BLOCKING: u32 = 1 << 12;
/// Not a write itself, but may run writes that propagate (EXEC, EVAL,
/// FCALL).
pub const MAY_REPLICATE: u32 = 1 << 13;
/// Touches every key (FLUSHALL, FLUSHDB, SWAPDB): runs with every shard
/// held, so it is atomic across shards (percore's own flag).
pub const EXCLUSIVE: u32 = 1 << 14;
/// Its first argument names a subcommand (CLIENT, CONFIG...): Redis
/// reports calls as `name|sub`.
pub const CONTAINER: u32 = 1 << 15;
/// Makes argument 1 the client's database (SELECT): EXEC locks the keys
/// of the commands after it in that database.
pub const SWITCHES_DB: u32 = 1 << 16;
/// Its integer reply is the number of changes it made, as Redis counts
/// them (DEL, SADD, HDEL...): 0 means it changed nothing.
pub const COUNTED: u32 = 1 << 17;
/// EXEC: runs the queued commands, so the gate judges it by their flags
/// too (Redis's mstate.cmd_flags).
pub const RUNS_QUEUE: u32 = 1 << 18;
/// Refused inside MULTI (SHUTDOWN).
pub const NO_MULTI: u32 = 1 << 19;
/// Runs a script or function: what its commands do counts, not the call
/// itself (a read-only script's keys are tracked only once it reads).
pub const SCRIPT: u32 = 1 << 20;

/// The flags Redis names too, by its names (the table's test holds each
/// row to Redis's description of the command).
#[cfg(test)]
pub const REDIS_FLAG_NAMES: &[(u32, &str)] = &[
    (WRITE, "write"),
    (READONLY, "readonly"),
    (DENYOOM, "denyoom"),
    (ADMIN, "admin"),
    (NOSCRIPT, "noscript"),
    (LOADING, "loading"),
    (STALE, "stale"),
    (FAST, "fast"),
    (NO_AUTH, "no_auth"),
    (ALLOW_BUSY, "allow_busy"),
    (BLOCKING, "blocking"),
    (MAY_REPLICATE, "may_replicate"),
    (NO_MULTI, "no_multi"),
];

/// Whether `argc` arguments (the name included) suit Redis's `arity`:
/// exactly that many when positive, at least its magnitude when negative.
pub fn arity_fits(arity: i32, argc: usize) -> bool {
    if arity >= 0 { argc == arity as usize } else { argc >= arity.unsigned_abs() as usize }
}

/// Which of a write's keys it may change (for WATCH and blocked clients):
/// Redis's key specs mark a storing command's sources read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Every key (SET, DEL, MSET, LPUSH...).
    All,
    /// The first key is the destination, the others are read (SUNIONSTORE,
    /// ZUNIONSTORE, BITOP, PFMERGE, ZRANGESTORE).
    First,
    /// The first key is read, the others are destinations (COPY, SORT
    /// ... STORE).
    AfterFirst,
}

/// How a multi-key command's per-shard replies combine.
#[derive(Clone, Copy, Debug)]
pub enum Merge {
    /// Integer replies add up (DEL, EXISTS).
    Sum,
    /// Array replies are reassembled in key order (MGET).
    Gather,
    /// Every part answers OK (MSET).
    AllOk,
}

/// A body that runs on a shard, on that shard's keys.
pub type DataFn = fn(&mut Ctx, Args) -> CmdResult;
/// A body that runs on the connection's core with its client `C`.
pub type ConnFn<C> = fn(&mut C, Args) -> CmdResult;
pub type AsyncFn<C> = for<'a> fn(&'a mut C, Args<'a>) -> LocalBoxFuture<'a, CmdResult>;

/// How a command runs. Generic over the server's client type, which the
/// model does not know.
pub enum Handler<C> {
    /// Runs on the shard that owns all its keys.
    Data(DataFn),
    /// Keys may span shards: each shard runs `DataFn` on its keys inside a
    /// transaction and the replies merge.
    Split(DataFn, Merge),
    /// Runs on the connection's core and touches only client state.
    Conn(ConnFn<C>),
    /// Runs on the connection's core and may call other shards.
    Async(AsyncFn<C>),
}

// Derived Clone/Copy would ask the same of `C`; function pointers are
// Copy whatever they take.
impl<C> Clone for Handler<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Handler<C> {}

/// A command's row: everything dispatch, EXEC, scripts and COMMAND know
/// about it.
/// A row's finder of the keys a call touches in other databases: (database,
/// argument position), given the number of databases.
pub type KeysElsewhere = fn(Args, usize) -> Vec<(usize, usize)>;

pub struct Spec<C> {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub keys: Keys,
    pub handler: Handler<C>,
    pub writes: Writes,
    /// The `enable-*-command` directive that allows it (DEBUG, MODULE).
    pub protected_by: Option<&'static str>,
    /// A container's subcommands (`client|id`...), as COMMAND lists them.
    pub subcommands: &'static [&'static str],
    /// Flags that depend on the call (a script's declared flags): what
    /// the pause and the other gates judge instead of `flags`.
    pub flags_of: Option<fn(&C, Args) -> u32>,
    /// Keys it touches in another database than the caller's (COPY ... DB
    /// n, MOVE): (database, argument position), given the number of
    /// databases; what cannot be parsed yields nothing (the command
    /// reports the error).
    pub keys_elsewhere: Option<KeysElsewhere>,
}

impl<C> Spec<C> {
    pub const fn new(name: &'static str, arity: i32, flags: u32, keys: Keys, handler: Handler<C>) -> Spec<C> {
        Spec {
            name,
            arity,
            flags,
            keys,
            handler,
            writes: Writes::All,
            protected_by: None,
            subcommands: &[],
            flags_of: None,
            keys_elsewhere: None,
        }
    }

    /// The row of a command whose flags depend on the call.
    pub const fn with_flags_of(self, flags_of: fn(&C, Args) -> u32) -> Spec<C> {
        Spec { flags_of: Some(flags_of), ..self }
    }

    /// The row of a command that also touches keys in another database.
    pub const fn with_keys_elsewhere(self, f: KeysElsewhere) -> Spec<C> {
        Spec { keys_elsewhere: Some(f), ..self }
    }

    /// Every key of this call as (database, argument position), the
    /// caller's database being `db`.
    pub fn keys_in(&self, args: Args, db: usize, databases: usize) -> Vec<(usize, usize)> {
        let mut keys: Vec<(usize, usize)> = self.keys.positions(args).map(|i| (db, i)).collect();
        if let Some(f) = self.keys_elsewhere {
            keys.extend(f(args, databases));
        }
        keys
    }

    /// This call's flags.
    pub fn call_flags(&self, client: &C, args: Args) -> u32 {
        self.flags_of.map_or(self.flags, |f| f(client, args))
    }

    /// The row of a container with these subcommands.
    pub const fn with_subcommands(self, subcommands: &'static [&'static str]) -> Spec<C> {
        Spec { subcommands, ..self }
    }

    /// The row of a command allowed only as `directive` says.
    pub const fn protected_by(self, directive: &'static str) -> Spec<C> {
        Spec { protected_by: Some(directive), ..self }
    }

    /// The row of a write that changes only some of its keys.
    pub const fn writing(self, writes: Writes) -> Spec<C> {
        Spec { writes, ..self }
    }

    /// The argument positions of the keys a write may change.
    pub fn written_keys(&self, args: Args) -> impl Iterator<Item = usize> + Clone {
        let skip = usize::from(self.writes == Writes::AfterFirst);
        let take = if self.writes == Writes::First { 1 } else { usize::MAX };
        self.keys.positions(args).skip(skip).take(take)
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        arity_fits(self.arity, argc) && self.keys.fits(argc)
    }

    /// The name whose arity a call breaks, if any: the command's, or its
    /// subcommand's as Redis describes it (`command|getkeys`).
    pub fn arity_broken(&self, args: Args) -> Option<&'static str> {
        if !self.arity_ok(args.len()) {
            return Some(self.name);
        }
        let sub = (self.has(CONTAINER) && args.len() > 1).then(|| self.subcommand(args.get(1))).flatten()?;
        (!arity_fits(meta::get(sub)?.arity, args.len())).then_some(sub)
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// A container's subcommand by its name (any case), if listed.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&'static str> {
        self.subcommands.iter().copied().find(|s| s.as_bytes()[self.name.len() + 1..].eq_ignore_ascii_case(sub))
    }

    /// The name Redis reports for a call: `pubsub|numsub` for a
    /// container's subcommand, the plain name otherwise.
    pub fn full_name(&self, args: Args) -> String {
        if self.has(CONTAINER) && args.len() > 1 {
            format!("{}|{}", self.name, String::from_utf8_lossy(args.get(1)).to_ascii_lowercase())
        } else {
            self.name.to_string()
        }
    }
}

/// Every command by lower-case name; ahash because the lookup is on every
/// request and the keys are fixed, so flooding is not a concern.
pub struct Table<C: 'static>(HashMap<&'static [u8], &'static Spec<C>, ahash::RandomState>);

impl<C> Table<C> {
    pub fn new(rows: impl IntoIterator<Item = &'static [Spec<C>]>) -> Table<C> {
        Table(rows.into_iter().flatten().map(|s| (s.name.as_bytes(), s)).collect())
    }

    /// Looks a command up by name, case-insensitively, without allocating.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static Spec<C>> {
        let mut buf = [0u8; 32];
        let lower = buf.get_mut(..name.len())?;
        for (d, s) in lower.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        self.0.get(&*lower).copied()
    }

    pub fn all(&self) -> impl Iterator<Item = &'static Spec<C>> + '_ {
        self.0.values().copied()
    }
}

impl<C> std::fmt::Debug for Table<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "Table({} commands)", self.0.len())
    }
}
