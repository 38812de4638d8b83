//! Key → slot → shard mapping, exactly as Redis Cluster hashes keys.

/// Number of hash slots, as in Redis Cluster.
pub const SLOTS: usize = 16384;

/// The part of a key that is hashed: the first non-empty `{...}` section, or
/// the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// `CRC16(key) mod 16384`, honouring hash tags (CRC16-CCITT/XMODEM as Redis).
pub fn key_slot(key: &[u8]) -> usize {
    crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) as usize & (SLOTS - 1)
}

/// The shard that owns `slot` when `shards` cores share the keyspace.
#[inline]
pub fn slot_owner(slot: usize, shards: usize) -> usize {
    slot % shards
}

/// The shard that owns `key`.
#[inline]
pub fn key_owner(key: &[u8], shards: usize) -> usize {
    if shards == 1 { 0 } else { slot_owner(key_slot(key), shards) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_cluster_keyslot() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b"foo{hash_tag}"), 2515);
        assert_eq!(key_slot(b"bar{hash_tag}"), 2515);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"foo{{bar}}zap"), 4015);
        assert_eq!(key_slot(b"foo{bar}{zap}"), 5061);
        assert_eq!(key_slot(b"a{b}"), 3300);
        assert_eq!(key_slot(b"{}"), 15257);
        assert_eq!(key_slot(b"user:1000"), 1649);
        assert_eq!(key_slot(b"key:000000012345"), 12533);
    }

    #[test]
    fn crc16_reference_vector() {
        assert_eq!(crc16::State::<crc16::XMODEM>::calculate(b"123456789"), 0x31C3);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"no-tag{"), b"no-tag{");
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
    }

    #[test]
    fn owners_cover_all_shards() {
        let mut seen = [false; 3];
        for slot in 0..SLOTS {
            seen[slot_owner(slot, 3)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(key_owner(b"anything", 1), 0);
    }
}
