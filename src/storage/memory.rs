//! MEMORY USAGE: the bytes a key and its value take in percore's layout.
//! Packed encodings (listpack, intset) are measured whole, their
//! elements plus their length prefixes; the larger structures are
//! sampled as Redis samples them (the first `samples` elements, 0 for
//! all) and the average scaled to their length, plus what each element
//! costs in its table.

use super::{Entry, Value};

/// One element of a packed encoding: its bytes and its two-sided length.
const PACKED_ELEMENT: usize = 2;
/// A packed encoding's header and end marker.
const PACKED_HEADER: usize = 7;
/// What an element costs beyond its bytes in the large encodings: the
/// table slot, inline small-string headers, the skiplist's links and the
/// tables' spare room (measured on 100 000 short elements).
const HASH_PAIR: usize = 44;
const SET_MEMBER: usize = 29;
const ZSET_MEMBER: usize = 83;
/// A consumer group's header and tables.
const GROUP: usize = 80;
/// A stream node's header (its master entry and radix tree slot).
const STREAM_NODE: usize = 64;

/// Average of `f` over the first `samples` items of `items` (all with
/// 0), times `len`.
fn scaled<'a, T: 'a>(items: impl Iterator<Item = T>, len: usize, samples: usize, f: impl Fn(T) -> usize) -> usize {
    let take = if samples == 0 { usize::MAX } else { samples };
    let (mut n, mut total) = (0usize, 0usize);
    for item in items.take(take) {
        n += 1;
        total += f(item);
    }
    (total * len).checked_div(n).unwrap_or(0)
}

fn packed(encoding: &str) -> bool {
    matches!(encoding, "listpack" | "intset")
}

/// The value's bytes, sampling `samples` elements of large structures.
pub fn value_usage(value: &Value, samples: usize) -> usize {
    match value {
        Value::Str(s) => match s {
            super::Str::Int(_) | super::Str::Emb(_) => 0,
            super::Str::Raw(v) => v.capacity() + std::mem::size_of::<Vec<u8>>(),
        },
        Value::Hash(h) => {
            let per = if packed(h.encoding()) { PACKED_ELEMENT * 2 } else { HASH_PAIR };
            let all = if packed(h.encoding()) { 0 } else { samples };
            PACKED_HEADER + scaled(h.pairs(), h.len(), all, |(f, v)| f.len() + v.len() + per)
        }
        Value::Set(s) => {
            let enc = s.encoding();
            let per = if packed(enc) { PACKED_ELEMENT } else { SET_MEMBER };
            let mut members = Vec::new();
            let take = if packed(enc) || samples == 0 { usize::MAX } else { samples };
            s.scan(0, take, |m| {
                if members.len() < take {
                    members.push(m.len());
                }
            });
            PACKED_HEADER + scaled(members.into_iter(), s.len(), 0, |len| len + per)
        }
        Value::List(l) => {
            // Packed nodes of list-max-listpack-size elements each.
            PACKED_HEADER + scaled(l.iter(), l.len(), samples, |e| e.len() + PACKED_ELEMENT)
        }
        Value::ZSet(z) => {
            let enc = z.encoding();
            let per = if packed(enc) { PACKED_ELEMENT * 2 + 8 } else { ZSET_MEMBER };
            let all = if packed(enc) { 0 } else { samples };
            PACKED_HEADER + scaled(z.iter_from(0), z.len(), all, |(_, m)| m.len() + per)
        }
        Value::Stream(s) => {
            let mut sizes = Vec::new();
            let take = if samples == 0 { usize::MAX } else { samples };
            s.range(super::stream::StreamId::MIN, super::stream::StreamId::MAX, false, |_, pairs| {
                sizes.push(pairs.iter().map(|p| p.0.len() + p.1.len() + PACKED_ELEMENT * 2).sum::<usize>() + 4);
                sizes.len() < take
            });
            std::mem::size_of::<super::Stream>()
                + s.node_count() * STREAM_NODE
                + scaled(sizes.into_iter(), s.len(), 0, |n| n)
                + s.groups.len() * GROUP
        }
    }
}

/// A key's whole cost: its table entry, its name when it does not fit
/// inline, and its value.
pub fn usage(key: &[u8], value: &Value, samples: usize) -> usize {
    let key_heap = if key.len() > 22 { key.len() } else { 0 };
    std::mem::size_of::<Entry>() + key_heap + value_usage(value, samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Str;

    #[test]
    fn bigger_values_cost_more() {
        let small = Value::Str(Str::from_bytes(b"abc"));
        let big = Value::Str(Str::from_bytes(&[b'x'; 1000]));
        assert!(usage(b"k", &big, 5) > usage(b"k", &small, 5) + 1000);
        assert!(usage(&[b'k'; 100], &small, 5) >= usage(b"k", &small, 5) + 100);
    }

    #[test]
    fn sampling_scales_to_the_length() {
        let sizes = [10usize, 10, 10, 10];
        assert_eq!(scaled(sizes.iter(), 100, 2, |n| *n), 1000);
        assert_eq!(scaled(sizes.iter(), 4, 0, |n| *n), 40);
        assert_eq!(scaled(std::iter::empty::<usize>(), 4, 0, |n| n), 0);
    }
}
