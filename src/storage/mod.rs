//! Data owned by one shard: its databases and their counters.

pub mod db;
pub mod encodings;
pub mod expire;
pub mod hash;
pub mod hll;
pub mod list;
pub mod set;
pub mod slot_table;
pub mod slots;
pub mod small_bytes;
pub mod table;
pub mod value;
pub mod zset;

pub use db::{Db, Entry};
pub use small_bytes::SmallBytes;

/// Keys are short byte strings, inline up to 22 bytes.
pub type Key = SmallBytes;
pub use hash::{Hash, PackLimits};
pub use list::{End, List, ListLimits};
pub use set::{Set, SetLimits};
pub use value::{Str, Value};
pub use zset::{ZLimits, ZSet};

/// Everything a shard stores: one `Db` per logical database.
#[derive(Debug)]
pub struct Keyspace {
    pub dbs: Vec<Db>,
    pub hits: u64,
    pub misses: u64,
    /// Writes since start (INFO's rdb_changes_since_last_save).
    pub dirty: u64,
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        Keyspace { dbs: (0..databases).map(|_| Db::default()).collect(), hits: 0, misses: 0, dirty: 0 }
    }

    pub fn expired(&self) -> u64 {
        self.dbs.iter().map(|d| d.expired).sum()
    }
}
