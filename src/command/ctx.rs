//! What a command body running on a shard works with.

use crate::config::Hot;
use crate::protocol::CmdError;
use crate::storage::events::{GENERIC, KEY_MISS};
use crate::storage::{Db, Entry, Hash, Keyspace, List, Set, Str, Value, ZSet};

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
    /// Settings read on every command (encoding limits...).
    pub hot: &'a Hot,
    /// The dataset is being loaded (an AOF replayed): what it says is
    /// applied as written, not judged again (a past expiry sets it).
    pub loading: bool,
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

    /// `read` that never updates the access time (EXISTS, TYPE, TTL).
    pub fn peek(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.read_with(key, false)
    }

    fn read_with(&mut self, key: &[u8], touch: bool) -> Option<&mut Entry> {
        let (now, db) = (self.now, self.db);
        let ks = &mut *self.ks;
        // A miss to report is looked up apart (the hit path below keeps
        // the databases borrowed), so it follows the key's expiry.
        if ks.notify & KEY_MISS != 0 && ks.dbs[db].get(key, now).is_none() {
            ks.misses += 1;
            ks.note(KEY_MISS, "keymiss", db, key);
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

    /// Looks a key up for writing: no hit/miss accounting, and no access
    /// counted here (a write that replaces the value counts one in
    /// `Db::insert`; SET's existence check must not add a second).
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
            self.event(GENERIC, "del", key);
        }
        empty
    }

    pub fn set(&mut self, key: &[u8], value: Value, expire_at: i64) {
        let now = self.now;
        self.ks.dbs[self.db].insert(key, value, expire_at, now);
    }
}
