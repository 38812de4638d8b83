//! Redis's RDB format: values (DUMP / RESTORE payloads) and whole files
//! (snapshots, the AOF's base, a full resync's payload). One reader and
//! one writer serve them all.
//!
//! Written as redis-server 7.0 writes (version 10, its encodings for
//! small values); read as every Redis from 2.x to 7.4 and Valkey 8 write
//! (versions 1 to 12, refusing only module values and 7.4's hashes with
//! field expiry).

pub mod lzf;
pub mod packed;
pub mod read;
pub mod write;

/// The version percore writes (redis-server 7.0's).
pub const VERSION: u16 = 10;
/// The newest version percore reads.
pub const NEWEST_READABLE: u32 = 12;

// Length encodings (the first byte's top two bits, or these).
pub const LEN_32: u8 = 0x80;
pub const LEN_64: u8 = 0x81;
pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

// Value types.
pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
/// 7.4's hashes with field expiry (22..=25).
pub const TYPE_HASH_FIELD_EXPIRY: std::ops::RangeInclusive<u8> = 22..=25;

// Opcodes between keys.
pub const OP_SLOT_INFO: u8 = 244;
pub const OP_FUNCTION2: u8 = 245;
pub const OP_FUNCTION_PRE_GA: u8 = 246;
pub const OP_MODULE_AUX: u8 = 247;
pub const OP_IDLE: u8 = 248;
pub const OP_FREQ: u8 = 249;
pub const OP_AUX: u8 = 250;
pub const OP_RESIZEDB: u8 = 251;
pub const OP_EXPIRETIME_MS: u8 = 252;
pub const OP_EXPIRETIME: u8 = 253;
pub const OP_SELECTDB: u8 = 254;
pub const OP_EOF: u8 = 255;

// Quicklist node containers.
pub const QUICKLIST_PLAIN: u64 = 1;
pub const QUICKLIST_PACKED: u64 = 2;

// Stream entry flags.
pub const STREAM_DELETED: i64 = 1;
pub const STREAM_SAME_FIELDS: i64 = 2;

/// Redis's CRC64 (Jones polynomial, reflected), over RDB files and DUMP
/// payloads.
pub const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// Why RDB data was refused; the offset is where in the data.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error("Short read or OOM loading DB. Unrecoverable error, aborting now (unexpected end at offset {0})")]
    Truncated(usize),
    #[error("Bad RDB data at offset {at}: {what}")]
    Corrupt { what: &'static str, at: usize },
    #[error("Unknown RDB encoding type {kind} at offset {at}")]
    UnknownType { kind: u8, at: usize },
    #[error("The RDB holds a module value (type {kind} at offset {at}); percore loads no modules")]
    Module { kind: u8, at: usize },
    #[error("The RDB holds a hash with field expiry (type {kind} at offset {at}), which percore does not support")]
    FieldExpiry { kind: u8, at: usize },
    #[error("Wrong signature trying to load DB from file")]
    Signature,
    #[error("Can't handle RDB format version {0}")]
    Version(u32),
    #[error("Wrong RDB checksum expected: ({expected:x}) got ({got:x}). Aborting now. RDB CRC error")]
    Checksum { expected: u64, got: u64 },
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc64_is_redis_own() {
        // The check value of redis/src/crc64.c's test.
        assert_eq!(super::crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }
}
