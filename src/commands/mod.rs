//! The command table and what command bodies get to work with.
//!
//! Each family file ends with its `TABLE` of `Spec`s: name, arity, flags,
//! key positions and handler. `dispatch` is the only gate: it checks arity
//! and auth, finds the owner shard of the keys and runs the handler there.
//! Bodies never repeat those checks.

use hashbrown::HashMap;
use std::sync::LazyLock;

use futures::future::LocalBoxFuture;

use crate::protocol::resp::{Span, parse_i64};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::shared::Shared;
use crate::server::transaction::Tx;
use crate::storage::{Db, Entry, Hash, Keyspace, List, Set, Str, Value, ZSet};

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
pub mod connection;
mod debug;
pub mod hashes;
mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod long_double;
pub mod pubsub;
mod scripting;
pub mod server;
pub mod sets;
mod sort;
pub mod strings;
pub mod transactions;
pub mod zsets;

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

const FLAG_NAMES: &[(u32, &str)] = &[
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

/// Where a command's keys are among its arguments (the name is argument 0).
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    None,
    /// first, last (negative counts from the end), step.
    Range(i32, i32, i32),
    /// The argument at this index counts the keys that follow it
    /// (SINTERCARD, ZUNIONSTORE's sources, EVAL).
    Numkeys(i32),
    /// A key-finder for what first/last/step cannot say: ZUNIONSTORE's
    /// destination before its numkeys sources, SORT's STORE destination.
    /// It returns ascending argument positions; malformed calls yield what
    /// can be found (the command itself reports the error).
    Find(fn(Args) -> Vec<usize>),
}

/// Argument positions of a call's keys.
#[derive(Clone)]
pub enum KeyPositions {
    Step(std::iter::StepBy<std::ops::RangeInclusive<usize>>),
    Found(std::vec::IntoIter<usize>),
}

impl Iterator for KeyPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            KeyPositions::Step(r) => r.next(),
            KeyPositions::Found(v) => v.next(),
        }
    }
}

/// No positions at all (argument 0 is the name, never a key).
#[allow(clippy::reversed_empty_ranges)]
const NO_KEYS: std::ops::RangeInclusive<usize> = 1..=0;

/// `numkeys` at argument `at` counts the keys that follow it: their range,
/// empty when the count is invalid.
fn numkeys_range(args: Args, at: usize) -> std::ops::RangeInclusive<usize> {
    let argc = args.len();
    match (at < argc).then(|| parse_i64(args.get(at))).flatten() {
        Some(n) if n > 0 && (n as u64) < (argc - at) as u64 => at + 1..=at + n as usize,
        _ => NO_KEYS,
    }
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: the destination, then numkeys
/// sources.
pub fn store_numkeys(args: Args) -> Vec<usize> {
    std::iter::once(1).chain(numkeys_range(args, 2)).filter(|&i| i < args.len()).collect()
}

impl Keys {
    /// Argument indexes that are keys, ascending.
    pub fn positions(self, args: Args) -> KeyPositions {
        let argc = args.len();
        let (range, step) = match self {
            Keys::None => (NO_KEYS, 1),
            Keys::Range(f, l, s) => {
                let last = if l < 0 { argc as i64 + l as i64 } else { l as i64 };
                let last = last.min(argc as i64 - 1);
                if last < f as i64 { (NO_KEYS, 1) } else { (f as usize..=last as usize, s.max(1) as usize) }
            }
            Keys::Numkeys(at) => (numkeys_range(args, at as usize), 1),
            Keys::Find(find) => return KeyPositions::Found(find(args).into_iter()),
        };
        KeyPositions::Step(range.step_by(step))
    }

    /// A key range open to the end with a step (MSET's key value pairs)
    /// needs whole groups; anything else is the arity rule's business.
    pub fn fits(self, argc: usize) -> bool {
        match self {
            Keys::Range(first, last, step) if last < 0 && step > 1 => (argc as i64 - first as i64) % step as i64 == 0,
            _ => true,
        }
    }

    pub fn step(self) -> usize {
        match self {
            Keys::None | Keys::Numkeys(_) | Keys::Find(_) => 1,
            Keys::Range(_, _, s) => s.max(1) as usize,
        }
    }
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

pub type DataFn = fn(&mut Ctx, Args) -> CmdResult;
pub type ConnFn = fn(&mut Client, Args) -> CmdResult;
pub type AsyncFn = for<'a> fn(&'a mut Client, Args<'a>) -> LocalBoxFuture<'a, CmdResult>;

#[derive(Clone, Copy)]
pub enum Handler {
    /// Runs on the shard that owns all its keys.
    Data(DataFn),
    /// Keys may span shards: each shard runs `DataFn` on its keys inside a
    /// transaction and the replies merge.
    Split(DataFn, Merge),
    /// Runs on the connection's core and touches only client state.
    Conn(ConnFn),
    /// Runs on the connection's core and may call other shards.
    Async(AsyncFn),
}

pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub keys: Keys,
    pub handler: Handler,
    pub writes: Writes,
    /// The `enable-*-command` directive that allows it (DEBUG, MODULE).
    pub protected_by: Option<&'static str>,
}

impl Spec {
    pub const fn new(name: &'static str, arity: i32, flags: u32, keys: Keys, handler: Handler) -> Spec {
        Spec { name, arity, flags, keys, handler, writes: Writes::All, protected_by: None }
    }

    /// The row of a command allowed only as `directive` says.
    pub const fn protected_by(self, directive: &'static str) -> Spec {
        Spec { protected_by: Some(directive), ..self }
    }

    /// The row of a write that changes only some of its keys.
    pub const fn writing(self, writes: Writes) -> Spec {
        Spec { writes, ..self }
    }

    /// The argument positions of the keys a write may change.
    pub fn written_keys(&self, args: Args) -> impl Iterator<Item = usize> + Clone {
        let skip = usize::from(self.writes == Writes::AfterFirst);
        let take = if self.writes == Writes::First { 1 } else { usize::MAX };
        self.keys.positions(args).skip(skip).take(take)
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let count_ok = if self.arity >= 0 { argc == self.arity as usize } else { argc >= (-self.arity) as usize };
        count_ok && self.keys.fits(argc)
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn flag_names(&self) -> Vec<&'static str> {
        FLAG_NAMES.iter().filter(|(f, _)| self.has(*f)).map(|(_, n)| *n).collect()
    }
}

/// Keyed by lower-case name bytes; ahash because the lookup is on every
/// request and the keys are fixed, so flooding is not a concern.
static TABLE: LazyLock<HashMap<&'static [u8], &'static Spec, ahash::RandomState>> = LazyLock::new(|| {
    [
        strings::TABLE,
        bitmaps::TABLE,
        hyperloglog::TABLE,
        keys::TABLE,
        hashes::TABLE,
        lists::TABLE,
        blocking::TABLE,
        sets::TABLE,
        zsets::TABLE,
        sort::TABLE,
        transactions::TABLE,
        pubsub::TABLE,
        scripting::TABLE,
        connection::TABLE,
        server::TABLE,
        debug::TABLE,
    ]
    .into_iter()
    .flatten()
    .map(|s| (s.name.as_bytes(), s))
    .collect()
});

/// Looks a command up by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut buf = [0u8; 32];
    let lower = buf.get_mut(..name.len())?;
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    TABLE.get(&*lower).copied()
}

/// The name Redis reports for a call: `pubsub|numsub` for a container's
/// subcommand, the plain name otherwise.
pub fn full_name(spec: &Spec, args: Args) -> String {
    if spec.has(CONTAINER) && args.len() > 1 {
        format!("{}|{}", spec.name, String::from_utf8_lossy(args.get(1)).to_ascii_lowercase())
    } else {
        spec.name.to_string()
    }
}

pub fn all() -> impl Iterator<Item = &'static Spec> {
    TABLE.values().copied()
}

/// A command's arguments (index 0 is the name), borrowed from wherever
/// they were parsed or copied to.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    data: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Args<'a> {
    pub fn new(data: &'a [u8], spans: &'a [Span]) -> Args<'a> {
        Args { data, spans }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn get(&self, i: usize) -> &'a [u8] {
        let (o, l) = self.spans[i];
        &self.data[o as usize..(o + l) as usize]
    }

    /// The arguments after the first `n` (COMMAND GETKEYS's command).
    pub fn skip(&self, n: usize) -> Args<'a> {
        Args { data: self.data, spans: &self.spans[n.min(self.spans.len())..] }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The argument, upper-cased for keyword matching (short arguments).
    pub fn keyword(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).to_ascii_uppercase()
    }

    pub fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    pub fn str(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).into_owned()
    }

    pub fn int(&self, i: usize) -> Result<i64, CmdError> {
        parse_i64(self.get(i)).ok_or(CmdError::NotInteger)
    }

    /// A database number (SELECT, MOVE, COPY ... DB): an int, then one
    /// of the `databases`.
    pub fn db_index(&self, i: usize, databases: usize) -> Result<usize, CmdError> {
        let n = self.int(i)?;
        if i32::try_from(n).is_err() {
            return Err(CmdError::err("value is out of range, value must between -2147483648 and 2147483647"));
        }
        usize::try_from(n).ok().filter(|&n| n < databases).ok_or(CmdError::DbIndexOutOfRange)
    }

    pub fn float(&self, i: usize) -> Result<f64, CmdError> {
        parse_f64(self.get(i)).ok_or(CmdError::NotFloat)
    }
}

/// Parses a float as Redis's `string2ld`/`strtold` would accept it:
/// no spaces, not NaN; "inf" and "-inf" allowed.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        lower if lower.contains("nan") || lower.contains("inf") => return None,
        _ => s.parse().ok()?,
    };
    Some(v)
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

/// Arguments owned in one buffer, for sending to another shard.
#[derive(Default, Debug, Clone)]
pub struct OwnedArgs {
    data: Vec<u8>,
    spans: Vec<Span>,
}

impl OwnedArgs {
    pub fn push(&mut self, arg: &[u8]) {
        self.spans.push((self.data.len() as u32, arg.len() as u32));
        self.data.extend_from_slice(arg);
    }

    pub fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.spans)
    }

    /// Arguments `from..to` of the whole set, as their own `Args`.
    pub fn range(&self, from: usize, to: usize) -> Args<'_> {
        Args::new(&self.data, &self.spans[from..to])
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of argument data held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// A value type commands can ask a key for by type.
pub trait Typed: Default {
    fn cast(v: &mut Value) -> Option<&mut Self>;
    fn wrap(self) -> Value;
    fn is_empty(&self) -> bool;
}

/// `Typed` for a collection type held by the `Value` variant of the same
/// name.
macro_rules! typed {
    ($($t:ident),*) => {$(
        impl Typed for $t {
            fn cast(v: &mut Value) -> Option<&mut $t> {
                match v {
                    Value::$t(x) => Some(x),
                    _ => None,
                }
            }

            fn wrap(self) -> Value {
                Value::$t(self)
            }

            fn is_empty(&self) -> bool {
                $t::is_empty(self)
            }
        }
    )*};
}

typed!(Hash, Set, List, ZSet);

/// What a command body running on a shard works with.
pub struct Ctx<'a> {
    pub ks: &'a mut Keyspace,
    pub db: usize,
    pub now: i64,
    pub no_touch: bool,
    pub server: &'a Shared,
}

impl Ctx<'_> {
    pub fn db(&mut self) -> &mut Db {
        &mut self.ks.dbs[self.db]
    }

    /// The write made `n` changes (Redis's dirty increments). A write that
    /// reports 0 changed nothing: it touches no WATCH and propagates
    /// nothing.
    pub fn changed(&mut self, n: u64) {
        *self.ks.effects.changes.get_or_insert(0) += n;
        self.ks.effects.modified |= n > 0;
    }

    /// A step of a coordinated write modified its key without counting a
    /// change of its own (RENAME's source: the destination counts it).
    pub fn modified(&mut self) {
        self.ks.effects.modified = true;
    }

    /// The write did `name` (a keyspace event of `class`) to `key` of
    /// this database: recorded if that class is wanted.
    pub fn event(&mut self, class: u32, name: &'static str, key: &[u8]) {
        self.ks.note(class, name, self.db, key);
    }

    /// The write propagates as `args` (in this database) instead of its
    /// own arguments; called again, it adds a command (several make a
    /// MULTI ... EXEC block).
    pub fn propagate(&mut self, args: &[&[u8]]) {
        let ops = self.ks.effects.rewrite.get_or_insert_with(Vec::new);
        if self.ks.journal {
            ops.push(crate::journal::Op::new(self.db, args.iter().copied()));
        }
    }

    /// Looks a key up for reading: counts a hit or miss (a `keymiss`
    /// event) and updates its access time (unless the client asked for
    /// NO-TOUCH).
    pub fn read(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let touch = !self.no_touch;
        self.read_with(key, touch)
    }

    /// `read` that never updates the access time (EXISTS, TYPE).
    pub fn peek(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.read_with(key, false)
    }

    fn read_with(&mut self, key: &[u8], touch: bool) -> Option<&mut Entry> {
        let (now, db) = (self.now, self.db);
        let ks = &mut *self.ks;
        // A miss to report is looked up apart (the hit path below keeps
        // the databases borrowed), so it follows the key's expiry.
        if ks.notify & crate::server::notify::KEY_MISS != 0 && ks.dbs[db].get(key, now).is_none() {
            ks.misses += 1;
            ks.note(crate::server::notify::KEY_MISS, "keymiss", db, key);
            return None;
        }
        match ks.dbs[db].get(key, now) {
            Some(e) => {
                ks.hits += 1;
                if touch {
                    e.touch(now);
                }
                Some(e)
            }
            None => {
                ks.misses += 1;
                None
            }
        }
    }

    /// Looks a key up for writing: no hit/miss accounting.
    pub fn lookup(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now;
        self.ks.dbs[self.db].get(key, now)
    }

    /// The string at `key`, WRONGTYPE if it holds another type.
    pub fn read_str(&mut self, key: &[u8]) -> Result<Option<&mut Str>, CmdError> {
        match self.read(key) {
            None => Ok(None),
            Some(e) => e.value.as_str_mut().map(Some).ok_or(CmdError::WrongType),
        }
    }

    pub fn lookup_str(&mut self, key: &[u8]) -> Result<Option<&mut Entry>, CmdError> {
        match self.lookup(key) {
            None => Ok(None),
            Some(e) if e.value.as_str().is_some() => Ok(Some(e)),
            Some(_) => Err(CmdError::WrongType),
        }
    }

    /// The value at `key` if it has type `T` (a read: counts hit/miss).
    pub fn read_as<T: Typed>(&mut self, key: &[u8]) -> Result<Option<&mut T>, CmdError> {
        match self.read(key) {
            None => Ok(None),
            Some(e) => T::cast(&mut e.value).map(Some).ok_or(CmdError::WrongType),
        }
    }

    /// The value at `key` if it has type `T`, looked up for writing (no
    /// hit/miss accounting).
    pub fn lookup_as<T: Typed>(&mut self, key: &[u8]) -> Result<Option<&mut T>, CmdError> {
        match self.lookup(key) {
            None => Ok(None),
            Some(e) => T::cast(&mut e.value).map(Some).ok_or(CmdError::WrongType),
        }
    }

    /// The value at `key` for writing, created empty if missing; callers
    /// validate their arguments first and call `drop_if_empty` after.
    pub fn write_as<T: Typed>(&mut self, key: &[u8]) -> Result<&mut T, CmdError> {
        if self.lookup(key).is_none() {
            self.set(key, T::default().wrap(), 0);
        }
        let e = self.lookup(key).expect("created above");
        T::cast(&mut e.value).ok_or(CmdError::WrongType)
    }

    /// Deletes `key` if it holds an empty collection (Redis never keeps
    /// one).
    /// Returns whether it did.
    pub fn drop_if_empty<T: Typed>(&mut self, key: &[u8]) -> bool {
        let empty = self.lookup(key).and_then(|e| T::cast(&mut e.value)).is_some_and(|v| v.is_empty());
        if empty {
            let now = self.now;
            self.db().remove(key, now);
            self.event(crate::server::notify::GENERIC, "del", key);
        }
        empty
    }

    pub fn set(&mut self, key: &[u8], value: Value, expire_at: i64) {
        let now = self.now;
        self.ks.dbs[self.db].insert(key, value, expire_at, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for spec in all() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(spec.arity != 0, "{}", spec.name);
            assert!(
                spec.has(WRITE) || spec.has(READONLY) || !matches!(spec.handler, Handler::Data(_) | Handler::Split(..)),
                "{} touches keys but is neither WRITE nor READONLY",
                spec.name
            );
        }
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    #[test]
    fn key_positions() {
        let owned = |words: &[&str]| {
            let mut o = OwnedArgs::default();
            words.iter().for_each(|w| o.push(w.as_bytes()));
            o
        };
        let five = owned(&["mset", "a", "1", "b", "2"]);
        assert_eq!(Keys::Range(1, -1, 2).positions(five.args()).collect::<Vec<_>>(), vec![1, 3]);
        let two = owned(&["get", "a"]);
        assert_eq!(Keys::Range(1, 1, 1).positions(two.args()).collect::<Vec<_>>(), vec![1]);
        assert_eq!(Keys::Range(2, 2, 1).positions(two.args()).count(), 0);
        assert_eq!(Keys::None.positions(two.args()).count(), 0);
        let card = owned(&["sintercard", "2", "a", "b", "LIMIT", "1"]);
        assert_eq!(Keys::Numkeys(1).positions(card.args()).collect::<Vec<_>>(), vec![2, 3]);
        for bad in
            [&["sintercard", "9", "a"][..], &["sintercard", "0", "a"], &["sintercard", "x", "a"], &["sintercard"]]
        {
            assert_eq!(Keys::Numkeys(1).positions(owned(bad).args()).count(), 0);
        }
        assert!(Keys::Range(1, -1, 2).fits(5));
        assert!(!Keys::Range(1, -1, 2).fits(4));
        assert!(Keys::Range(1, -1, 1).fits(4));
    }

    #[test]
    fn floats_like_strtold() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(parse_f64(b""), None);
    }
}
