//! Writing values in the RDB format, with the encodings redis-server 7.0
//! picks, so that it loads them into the same OBJECT ENCODING.

use super::packed::{ListpackWriter, intset_blob};
use super::*;
use crate::protocol::resp::parse_i64;
use crate::storage::stream::Stream;
use crate::storage::{Str, Usage, Value};

/// How values are written.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `rdbcompression`: strings over 20 bytes LZF-compressed when that
    /// saves something.
    pub compress: bool,
    /// List entries this large were kept in a node of their own (plain).
    pub plain_from: u64,
}

pub fn len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if n <= u64::from(u32::MAX) {
        out.push(LEN_32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(LEN_64);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An integer in the 8, 16 or 32-bit string encoding, if it fits one.
fn encoded_int(out: &mut Vec<u8>, n: i64) -> bool {
    if let Ok(b) = i8::try_from(n) {
        out.extend_from_slice(&[0xc0 | ENC_INT8, b as u8]);
    } else if let Ok(h) = i16::try_from(n) {
        out.push(0xc0 | ENC_INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else if let Ok(w) = i32::try_from(n) {
        out.push(0xc0 | ENC_INT32);
        out.extend_from_slice(&w.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// A string as rdbSaveRawString writes it: a short canonical integer in
/// integer form, a long string compressed when that pays, else as is.
pub fn string(out: &mut Vec<u8>, s: &[u8], opts: Options) {
    if s.len() <= 11
        && let Some(n) = parse_i64(s)
        && encoded_int(out, n)
    {
        return;
    }
    if opts.compress
        && s.len() > 20
        && let Some(packed) = super::lzf::compress(s, s.len() - 4)
    {
        out.push(0xc0 | ENC_LZF);
        len(out, packed.len() as u64);
        len(out, s.len() as u64);
        out.extend_from_slice(&packed);
        return;
    }
    len(out, s.len() as u64);
    out.extend_from_slice(s);
}

pub fn int_string(out: &mut Vec<u8>, n: i64) {
    if !encoded_int(out, n) {
        let digits = itoa::Buffer::new().format(n).as_bytes().to_vec();
        len(out, digits.len() as u64);
        out.extend_from_slice(&digits);
    }
}

pub fn millis(out: &mut Vec<u8>, ms: i64) {
    out.extend_from_slice(&ms.to_le_bytes());
}

/// A stream id as the RDB's raw form: 128 bits, big-endian.
fn raw_id(out: &mut Vec<u8>, id: crate::storage::stream::StreamId) {
    out.extend_from_slice(&id.ms.to_be_bytes());
    out.extend_from_slice(&id.seq.to_be_bytes());
}

/// The type byte a value is written with.
pub fn value_type(v: &Value) -> u8 {
    match v {
        Value::Str(_) => TYPE_STRING,
        Value::List(_) => TYPE_LIST_QUICKLIST_2,
        Value::Set(s) if s.encoding() == "intset" => TYPE_SET_INTSET,
        Value::Set(_) => TYPE_SET,
        Value::Hash(h) if h.encoding() == "listpack" => TYPE_HASH_LISTPACK,
        Value::Hash(_) => TYPE_HASH,
        Value::ZSet(z) if z.encoding() == "listpack" => TYPE_ZSET_LISTPACK,
        Value::ZSet(_) => TYPE_ZSET_2,
        Value::Stream(_) => TYPE_STREAM_LISTPACKS_2,
    }
}

/// A value's body (after its type byte and key).
pub fn value(out: &mut Vec<u8>, v: &Value, opts: Options) {
    match v {
        Value::Str(Str::Int(n)) => int_string(out, *n),
        Value::Str(s) => string(out, &s.as_bytes(), opts),
        Value::List(l) => {
            let nodes = l.nodes();
            len(out, nodes.len() as u64);
            for (count, mut entries) in nodes {
                if count == 1
                    && let Some(e) = entries.clone().next()
                    && e.len() as u64 >= opts.plain_from
                {
                    len(out, QUICKLIST_PLAIN);
                    string(out, e, opts);
                    continue;
                }
                len(out, QUICKLIST_PACKED);
                let mut lp = ListpackWriter::new();
                entries.by_ref().for_each(|e| lp.push(e));
                string(out, &lp.finish(), opts);
            }
        }
        Value::Set(s) => {
            let members = s.members();
            if s.encoding() == "intset" {
                let ints: Vec<i64> = members.iter().filter_map(|m| parse_i64(m)).collect();
                string(out, &intset_blob(&ints), opts);
            } else {
                len(out, members.len() as u64);
                members.iter().for_each(|m| string(out, m, opts));
            }
        }
        Value::Hash(h) if h.encoding() == "listpack" => {
            let mut lp = ListpackWriter::new();
            for (f, v) in h.pairs() {
                lp.push(f);
                lp.push(v);
            }
            string(out, &lp.finish(), opts);
        }
        Value::Hash(h) => {
            len(out, h.len() as u64);
            for (f, v) in h.pairs() {
                string(out, f, opts);
                string(out, v, opts);
            }
        }
        Value::ZSet(z) if z.encoding() == "listpack" => {
            let mut lp = ListpackWriter::new();
            for (score, member) in z.iter_from(0) {
                lp.push(member);
                lp.push(crate::protocol::reply::format_double(score).as_bytes());
            }
            string(out, &lp.finish(), opts);
        }
        Value::ZSet(z) => {
            // Greatest first, as Redis writes them (each load then inserts
            // at the head).
            let items: Vec<(f64, &[u8])> = z.iter_from(0).collect();
            len(out, items.len() as u64);
            for (score, member) in items.into_iter().rev() {
                string(out, member, opts);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        Value::Stream(st) => stream(out, st, opts),
    }
}

/// A node as Redis's stream listpack: the master entry (live and deleted
/// counts, the master fields, a zero), then per entry its flags, id
/// deltas from the master id, its values (or field count and pairs when
/// its fields differ) and its element count.
fn stream_node(node: &crate::storage::stream::RawNode) -> Vec<u8> {
    let mut lp = ListpackWriter::new();
    lp.push_int(node.live as i64);
    lp.push_int(node.deleted as i64);
    lp.push_int(node.fields.len() as i64);
    node.fields.iter().for_each(|f| lp.push(f));
    lp.push_int(0);
    for e in &node.entries {
        let same = e.pairs.len() == node.fields.len() && e.pairs.iter().zip(&node.fields).all(|((f, _), m)| f == m);
        let flags = if e.deleted { STREAM_DELETED } else { 0 } | if same { STREAM_SAME_FIELDS } else { 0 };
        lp.push_int(flags);
        lp.push_int(e.id.ms.wrapping_sub(node.master.ms) as i64);
        lp.push_int(e.id.seq.wrapping_sub(node.master.seq) as i64);
        if same {
            e.pairs.iter().for_each(|(_, v)| lp.push(v));
        } else {
            lp.push_int(e.pairs.len() as i64);
            for (f, v) in &e.pairs {
                lp.push(f);
                lp.push(v);
            }
        }
        let fields = e.pairs.len() as i64;
        lp.push_int(if same { fields + 3 } else { 2 * fields + 4 });
    }
    lp.finish()
}

fn stream(out: &mut Vec<u8>, st: &Stream, opts: Options) {
    let nodes: Vec<_> = st.raw_nodes().collect();
    len(out, nodes.len() as u64);
    for node in &nodes {
        let mut key = Vec::with_capacity(16);
        raw_id(&mut key, node.master);
        string(out, &key, opts);
        string(out, &stream_node(node), opts);
    }
    len(out, st.len() as u64);
    for id in [st.last_id, st.first_id, st.max_deleted_id] {
        len(out, id.ms);
        len(out, id.seq);
    }
    len(out, st.entries_added);
    len(out, st.groups.len() as u64);
    for (name, g) in &st.groups {
        string(out, name, opts);
        len(out, g.last_id.ms);
        len(out, g.last_id.seq);
        len(out, g.entries_read.unwrap_or(u64::MAX));
        len(out, g.pel.len() as u64);
        for (id, p) in &g.pel {
            raw_id(out, *id);
            millis(out, p.delivery_time);
            len(out, p.delivery_count);
        }
        len(out, g.consumers.len() as u64);
        for (name, c) in &g.consumers {
            string(out, name, opts);
            millis(out, c.seen_time);
            len(out, c.pel.len() as u64);
            c.pel.iter().for_each(|id| raw_id(out, *id));
        }
    }
}

/// One key: its expiry and use if any, type, name and value.
pub fn entry(out: &mut Vec<u8>, key: &[u8], v: &Value, expire_at: Option<i64>, usage: Option<Usage>, opts: Options) {
    if let Some(at) = expire_at {
        out.push(OP_EXPIRETIME_MS);
        millis(out, at);
    }
    match usage {
        Some(Usage::IdleSecs(secs)) => {
            out.push(OP_IDLE);
            len(out, secs);
        }
        Some(Usage::Freq(f)) => out.extend_from_slice(&[OP_FREQ, f]),
        None => {}
    }
    out.push(value_type(v));
    string(out, key, opts);
    value(out, v, opts);
}

pub fn select_db(out: &mut Vec<u8>, db: usize) {
    out.push(OP_SELECTDB);
    len(out, db as u64);
}

pub fn aux(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(OP_AUX);
    string(out, key.as_bytes(), Options { compress: false, plain_from: u64::MAX });
    string(out, value, Options { compress: false, plain_from: u64::MAX });
}

/// A DUMP payload: type and value, the RDB version, then the CRC64 of
/// both.
pub fn dump(v: &Value, opts: Options) -> Vec<u8> {
    let mut out = vec![value_type(v)];
    value(&mut out, v, opts);
    seal(out)
}

/// A FUNCTION DUMP payload: each library's code as the RDB stores it.
pub fn functions_dump<'a>(codes: impl Iterator<Item = &'a [u8]>, opts: Options) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        function(&mut out, code, opts);
    }
    seal(out)
}

/// A FUNCTION library, as files and FUNCTION DUMP store it.
pub fn function(out: &mut Vec<u8>, code: &[u8], opts: Options) {
    out.push(OP_FUNCTION2);
    string(out, code, opts);
}

/// A payload's footer: the RDB version, then the CRC64 of all before.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    out.extend_from_slice(&VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
