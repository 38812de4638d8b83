//! DEBUG DIGEST and DIGEST-VALUE, computed exactly as Redis computes them
//! (debug.c), so a percore and a redis-server holding the same data print
//! the same digest. Unordered collections (keys, set members, hash fields,
//! sorted set members) combine by XOR, ordered ones (list items, the parts
//! of one entry) by chaining SHA1 over the running digest.

use super::{Db, Value};
use crate::protocol::reply::format_double;

pub type Digest = [u8; 20];

fn sha1(data: &[u8]) -> Digest {
    sha1_smol::Sha1::from(data).digest().bytes()
}

/// `digest ^= SHA1(data)`.
pub fn xor(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// `digest = SHA1(digest ^ SHA1(data))`: order matters.
pub fn mix(digest: &mut Digest, data: &[u8]) {
    xor(digest, data);
    *digest = sha1(digest);
}

/// Redis's object type numbers (OBJ_STRING ...).
fn type_id(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// xorObjectDigest: mixes a value (and whether it has a TTL) into `digest`.
pub fn value(digest: &mut Digest, v: &Value, has_expire: bool) {
    mix(digest, &type_id(v).to_be_bytes());
    match v {
        Value::Str(s) => mix(digest, &s.as_bytes()),
        Value::List(l) => l.iter().for_each(|item| mix(digest, item)),
        Value::Set(s) => s.members().iter().for_each(|m| xor(digest, m)),
        Value::ZSet(z) => {
            for (score, member) in z.iter_from(0) {
                let mut element = [0u8; 20];
                mix(&mut element, member);
                mix(&mut element, format_double(score).as_bytes());
                xor(digest, &element);
            }
        }
        Value::Hash(h) => {
            for (field, val) in h.pairs() {
                let mut element = [0u8; 20];
                mix(&mut element, field);
                mix(&mut element, val);
                xor(digest, &element);
            }
        }
        Value::Stream(st) => st.for_each(|id, pairs| {
            mix(digest, format!("{}.{}", id.ms, id.seq).as_bytes());
            for (field, val) in pairs {
                mix(digest, field);
                mix(digest, val);
            }
        }),
    }
    if has_expire {
        xor(digest, b"!!expire!!");
    }
}

/// The XOR of the SHA1s of the key-value digests of every entry of `db`
/// this shard
/// holds (logically expired ones too, as Redis's dict walk sees them),
/// or None when it holds none.
pub fn database(db: &Db) -> Option<Digest> {
    if db.len() == 0 {
        return None;
    }
    let mut acc = [0u8; 20];
    for slot in 0..super::slots::SLOTS {
        for e in db.slot_entries(slot) {
            let mut kv = [0u8; 20];
            mix(&mut kv, e.key());
            value(&mut kv, &e.value, db.expire_of(e.key()).is_some());
            xor(&mut acc, &kv);
        }
    }
    Some(acc)
}

/// computeDatasetDigest from each database's combined digest (None:
/// empty everywhere), in database order.
pub fn dataset(databases: impl Iterator<Item = Option<Digest>>) -> Digest {
    let mut fin = [0u8; 20];
    for (j, db) in databases.enumerate() {
        if let Some(acc) = db {
            mix(&mut fin, &(j as u32).to_be_bytes());
            for (f, a) in fin.iter_mut().zip(acc) {
                *f ^= a;
            }
        }
    }
    fin
}

pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}
