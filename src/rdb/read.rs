//! Reading RDB data: every value type and encoding Redis has written,
//! checked as it is read. Lengths come from untrusted data, so nothing is
//! allocated by a declared length before the bytes it claims were seen.

use std::borrow::Cow;

use super::packed::{self, Elem};
use super::*;
use crate::storage::stream::{Group, Pending, RawEntry, Stream, StreamId};
use crate::storage::{End, Hash, List, ListLimits, PackLimits, Set, SetLimits, Str, Usage, Value, ZLimits, ZSet};

/// The encoding limits loaded values are built with.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub hash: PackLimits,
    pub set: SetLimits,
    pub zset: ZLimits,
    pub list: ListLimits,
}

impl Limits {
    pub fn from_hot(hot: &crate::config::Hot) -> Limits {
        Limits { hash: hot.hash_limits(), set: hot.set_limits(), zset: hot.zset_limits(), list: hot.list_limits() }
    }
}

/// Longest string an LZF blob of `packed` bytes may claim to expand to
/// (LZF expands at most ~90 times; a larger claim is corrupt).
fn lzf_bound(packed: usize) -> usize {
    packed.saturating_mul(128).saturating_add(64)
}

pub type Result<T> = std::result::Result<T, RdbError>;

/// A cursor over RDB bytes.
pub struct Reader<'a> {
    data: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn corrupt(&self, what: &'static str) -> RdbError {
        RdbError::Corrupt { what, at: self.pos }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(RdbError::Truncated(self.pos))?;
        let b = &self.data[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    /// A length, or (with `true`) the special string encoding it names.
    fn len_or_encoding(&mut self) -> Result<(u64, bool)> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => (u64::from(b & 0x3f), false),
            1 => ((u64::from(b & 0x3f) << 8) | u64::from(self.u8()?), false),
            3 => (u64::from(b & 0x3f), true),
            _ if b == LEN_32 => {
                let v = self.bytes(4)?;
                (u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])), false)
            }
            _ if b == LEN_64 => (u64::from_be_bytes(self.array()?), false),
            _ => return Err(self.corrupt("unknown length encoding")),
        })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.bytes(N)?;
        Ok(b.try_into().unwrap_or([0; N]))
    }

    pub fn len(&mut self) -> Result<u64> {
        match self.len_or_encoding()? {
            (n, false) => Ok(n),
            _ => Err(self.corrupt("a string encoding where a length belongs")),
        }
    }

    /// A length that counts items or bytes in memory.
    fn count(&mut self) -> Result<usize> {
        usize::try_from(self.len()?).map_err(|_| self.corrupt("length out of range"))
    }

    pub fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        let (n, encoded) = self.len_or_encoding()?;
        if !encoded {
            let n = usize::try_from(n).map_err(|_| self.corrupt("string length out of range"))?;
            return Ok(Cow::Borrowed(self.bytes(n)?));
        }
        let int = |v: i64| Cow::Owned(itoa::Buffer::new().format(v).as_bytes().to_vec());
        match n as u8 {
            ENC_INT8 => Ok(int(i64::from(self.u8()? as i8))),
            ENC_INT16 => Ok(int(i64::from(i16::from_le_bytes(self.array()?)))),
            ENC_INT32 => Ok(int(i64::from(i32::from_le_bytes(self.array()?)))),
            ENC_LZF => {
                let packed_len = self.count()?;
                let len = self.count()?;
                let at = self.pos;
                let packed = self.bytes(packed_len)?;
                if len > lzf_bound(packed_len) {
                    return Err(RdbError::Corrupt { what: "LZF string longer than its data allows", at });
                }
                lzf::decompress(packed, len)
                    .map(Cow::Owned)
                    .map_err(|_| RdbError::Corrupt { what: "invalid LZF compressed string", at })
            }
            _ => Err(self.corrupt("unknown string encoding")),
        }
    }

    pub fn millis(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// A double as text after a length byte (255: -inf, 254: inf, 253: nan).
    fn text_double(&mut self) -> Result<f64> {
        match self.u8()? {
            255 => Ok(f64::NEG_INFINITY),
            254 => Ok(f64::INFINITY),
            253 => Ok(f64::NAN),
            n => {
                let text = self.bytes(n as usize)?;
                parse_double(text).ok_or_else(|| self.corrupt("invalid double"))
            }
        }
    }

    fn id(&mut self) -> Result<StreamId> {
        let raw: [u8; 16] = self.array()?;
        Ok(raw_id(&raw))
    }

    fn len_id(&mut self) -> Result<StreamId> {
        Ok(StreamId { ms: self.len()?, seq: self.len()? })
    }

    /// A value of type `kind`; None when it is an empty collection (Redis
    /// skips those).
    pub fn value(&mut self, kind: u8, limits: &Limits) -> Result<Option<Value>> {
        let at = self.pos;
        let v = match kind {
            TYPE_STRING => Value::Str(Str::from_bytes(&self.string()?)),
            TYPE_LIST => {
                let n = self.count()?;
                let mut l = List::default();
                for _ in 0..n {
                    l.push(End::Right, &self.string()?, limits.list);
                }
                Value::List(l)
            }
            TYPE_SET => {
                let n = self.count()?;
                let mut members = Vec::new();
                for _ in 0..n {
                    members.push(self.string()?);
                }
                set(members.iter().map(|m| &m[..]), limits, at)?
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.count()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    let m = self.string()?;
                    let s = if kind == TYPE_ZSET { self.text_double()? } else { self.binary_double()? };
                    items.push((m, s));
                }
                zset(items.iter().map(|(m, s)| (&m[..], *s)), limits, at)?
            }
            TYPE_HASH => {
                let n = self.count()?;
                let mut pairs = Vec::new();
                for _ in 0..n {
                    pairs.push((self.string()?, self.string()?));
                }
                hash(pairs.iter().map(|(f, v)| (&f[..], &v[..])), limits, at)?
            }
            TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => return Err(RdbError::Module { kind, at }),
            TYPE_HASH_ZIPMAP => {
                let blob = self.string()?;
                hash(packed::zipmap(&blob).map_err(|e| bad(e, at))?.into_iter(), limits, at)?
            }
            TYPE_LIST_ZIPLIST | TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let nodes = if kind == TYPE_LIST_ZIPLIST { 1 } else { self.count()? };
                let mut l = List::default();
                for _ in 0..nodes {
                    let container = if kind == TYPE_LIST_QUICKLIST_2 { self.len()? } else { QUICKLIST_PACKED };
                    let blob = self.string()?;
                    match container {
                        QUICKLIST_PLAIN => l.push(End::Right, &blob, limits.list),
                        QUICKLIST_PACKED => {
                            let elems = if kind == TYPE_LIST_QUICKLIST_2 {
                                packed::listpack(&blob)
                            } else {
                                packed::ziplist(&blob)
                            };
                            let elems = elems.map_err(|e| bad(e, at))?;
                            if elems.is_empty() {
                                return Err(RdbError::Corrupt { what: "empty quicklist node", at });
                            }
                            elems.into_iter().for_each(|e| l.push(End::Right, &e.bytes(), limits.list));
                        }
                        _ => return Err(RdbError::Corrupt { what: "unknown quicklist node container", at }),
                    }
                }
                Value::List(l)
            }
            TYPE_SET_INTSET => {
                let blob = self.string()?;
                let ints = packed::intset(&blob).map_err(|e| bad(e, at))?;
                let members: Vec<Vec<u8>> =
                    ints.iter().map(|n| itoa::Buffer::new().format(*n).as_bytes().to_vec()).collect();
                set(members.iter().map(|m| &m[..]), limits, at)?
            }
            TYPE_SET_LISTPACK => {
                let blob = self.string()?;
                let elems = packed::listpack(&blob).map_err(|e| bad(e, at))?;
                let members: Vec<Cow<[u8]>> = elems.into_iter().map(Elem::bytes).collect();
                set(members.iter().map(|m| &m[..]), limits, at)?
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                let blob = self.string()?;
                let elems = if matches!(kind, TYPE_ZSET_ZIPLIST | TYPE_HASH_ZIPLIST) {
                    packed::ziplist(&blob)
                } else {
                    packed::listpack(&blob)
                }
                .map_err(|e| bad(e, at))?;
                if elems.len() % 2 != 0 {
                    return Err(RdbError::Corrupt { what: "odd number of packed elements", at });
                }
                let pairs: Vec<(Cow<[u8]>, Elem)> = elems.chunks(2).map(|p| (p[0].bytes(), p[1])).collect();
                if matches!(kind, TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK) {
                    let values: Vec<Cow<[u8]>> = pairs.iter().map(|(_, v)| v.bytes()).collect();
                    hash(pairs.iter().zip(&values).map(|((f, _), v)| (&f[..], &v[..])), limits, at)?
                } else {
                    let mut items = Vec::with_capacity(pairs.len());
                    for (m, s) in &pairs {
                        let score = match s {
                            Elem::Int(n) => *n as f64,
                            Elem::Bytes(b) => parse_double(b).ok_or(RdbError::Corrupt { what: "invalid score", at })?,
                        };
                        items.push((&m[..], score));
                    }
                    zset(items.into_iter(), limits, at)?
                }
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
                Value::Stream(Box::new(self.stream(kind)?))
            }
            k if TYPE_HASH_FIELD_EXPIRY.contains(&k) => return Err(RdbError::FieldExpiry { kind, at }),
            _ => return Err(RdbError::UnknownType { kind, at }),
        };
        let empty = match &v {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // A stream may be empty and still carry groups and counters.
            Value::Stream(_) => false,
        };
        Ok((!empty).then_some(v))
    }

    fn stream(&mut self, kind: u8) -> Result<Stream> {
        let mut st = Stream::default();
        let nodes = self.count()?;
        let mut last_seen: Option<StreamId> = None;
        for _ in 0..nodes {
            let at = self.pos;
            let key = self.string()?;
            let master = match <[u8; 16]>::try_from(&key[..]) {
                Ok(raw) => raw_id(&raw),
                Err(_) => return Err(RdbError::Corrupt { what: "stream node key is not a stream id", at }),
            };
            let at = self.pos;
            let blob = self.string()?;
            let elems = packed::listpack(&blob).map_err(|e| bad(e, at))?;
            let node = stream_node(&elems, master).ok_or(RdbError::Corrupt { what: "invalid stream listpack", at })?;
            let (fields, entries) = node;
            let ids_ascend = entries.iter().all(|e| {
                let ok = last_seen.is_none_or(|l| e.id > l) && e.id >= master;
                last_seen = Some(e.id);
                ok
            });
            if !ids_ascend || entries.is_empty() {
                return Err(RdbError::Corrupt { what: "stream node ids out of order", at });
            }
            let fields: Vec<&[u8]> = fields.iter().map(|f| &f[..]).collect();
            let entries: Vec<RawEntry> = entries
                .iter()
                .map(|e| RawEntry {
                    deleted: e.deleted,
                    id: e.id,
                    pairs: e.pairs.iter().map(|(f, v)| (&f[..], &v[..])).collect(),
                })
                .collect();
            st.load_node(master, &fields, &entries);
        }
        // The stored length and first id are recomputed from the entries.
        self.len()?;
        st.last_id = self.len_id()?;
        if last_seen.is_some_and(|l| l > st.last_id) {
            return Err(self.corrupt("stream entry id above the stream's last id"));
        }
        let live_first = st.edge(true).unwrap_or_default();
        if kind == TYPE_STREAM_LISTPACKS {
            st.first_id = live_first;
            st.entries_added = st.len() as u64;
        } else {
            self.len_id()?;
            st.first_id = live_first;
            st.max_deleted_id = self.len_id()?;
            st.entries_added = self.len()?;
        }
        let groups = self.count()?;
        for _ in 0..groups {
            let at = self.pos;
            let name = bytes::Bytes::copy_from_slice(&self.string()?);
            let last_id = self.len_id()?;
            let entries_read = if kind == TYPE_STREAM_LISTPACKS {
                st.entries_read_at(last_id)
            } else {
                Some(self.len()?).filter(|&n| n != u64::MAX)
            };
            let mut g = Group::new(last_id, entries_read);
            let pending = self.count()?;
            for _ in 0..pending {
                let id = self.id()?;
                let delivery_time = self.millis()?;
                let delivery_count = self.len()?;
                let p = Pending { consumer: bytes::Bytes::new(), delivery_time, delivery_count };
                if g.pel.insert(id, p).is_some() {
                    return Err(self.corrupt("duplicated stream PEL entry"));
                }
            }
            let consumers = self.count()?;
            for _ in 0..consumers {
                let cname = bytes::Bytes::copy_from_slice(&self.string()?);
                let seen = self.millis()?;
                if kind == TYPE_STREAM_LISTPACKS_3 {
                    let _active = self.millis()?;
                }
                let (c, created) = g.consumer(&cname, seen);
                if !created {
                    return Err(self.corrupt("duplicated consumer name"));
                }
                c.seen_time = seen;
                let owned = self.count()?;
                let mut ids = Vec::new();
                for _ in 0..owned {
                    ids.push(self.id()?);
                }
                for id in ids {
                    match g.pel.get_mut(&id) {
                        Some(p) if p.consumer.is_empty() => p.consumer = cname.clone(),
                        _ => return Err(self.corrupt("consumer PEL entry not in the group's PEL")),
                    }
                    if let Some(c) = g.consumers.get_mut(&cname) {
                        c.pel.insert(id);
                    }
                }
            }
            if g.pel.values().any(|p| p.consumer.is_empty()) {
                return Err(RdbError::Corrupt { what: "stream PEL entry without a consumer", at });
            }
            if st.groups.insert(name, g).is_some() {
                return Err(RdbError::Corrupt { what: "duplicated consumer group name", at });
            }
        }
        Ok(st)
    }
}

fn bad(e: packed::Bad, at: usize) -> RdbError {
    RdbError::Corrupt { what: e.0, at }
}

fn raw_id(raw: &[u8; 16]) -> StreamId {
    let (ms, seq) = raw.split_at(8);
    StreamId {
        ms: u64::from_be_bytes(ms.try_into().unwrap_or([0; 8])),
        seq: u64::from_be_bytes(seq.try_into().unwrap_or([0; 8])),
    }
}

/// A score or double as strtod reads it (inf, -inf included); NaN refused.
fn parse_double(text: &[u8]) -> Option<f64> {
    let v: f64 = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
    (!v.is_nan()).then_some(v)
}

fn set<'m>(members: impl Iterator<Item = &'m [u8]>, limits: &Limits, at: usize) -> Result<Value> {
    let mut members = members.peekable();
    let Some(first) = members.peek() else { return Ok(Value::Set(Set::default())) };
    let mut s = Set::for_member(first, limits.set);
    for m in members {
        if !s.insert(m, limits.set) {
            return Err(RdbError::Corrupt { what: "duplicated set member", at });
        }
    }
    Ok(Value::Set(s))
}

fn hash<'m>(pairs: impl Iterator<Item = (&'m [u8], &'m [u8])>, limits: &Limits, at: usize) -> Result<Value> {
    let mut h = Hash::default();
    for (f, v) in pairs {
        h.prepare([f.len(), v.len()].into_iter(), limits.hash);
        if !h.set(f, v, limits.hash) {
            return Err(RdbError::Corrupt { what: "duplicated hash field", at });
        }
    }
    Ok(Value::Hash(h))
}

fn zset<'m>(items: impl Iterator<Item = (&'m [u8], f64)>, limits: &Limits, at: usize) -> Result<Value> {
    let mut items = items.peekable();
    let Some((first, _)) = items.peek() else { return Ok(Value::ZSet(ZSet::default())) };
    let mut z = ZSet::for_member(first, limits.zset);
    for (m, s) in items {
        if s.is_nan() {
            return Err(RdbError::Corrupt { what: "sorted set with a NaN score", at });
        }
        if !z.insert(m, s, limits.zset) {
            return Err(RdbError::Corrupt { what: "duplicated sorted set member", at });
        }
    }
    Ok(Value::ZSet(z))
}

/// A field and value decoded from a packed blob.
type DecodedPair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// An entry of a stream listpack, with its bytes owned.
struct NodeEntry<'a> {
    deleted: bool,
    id: StreamId,
    pairs: Vec<DecodedPair<'a>>,
}

/// The master fields and entries of a stream listpack, or None when its
/// layout is not one Redis writes.
#[allow(clippy::type_complexity)]
fn stream_node<'a>(elems: &[Elem<'a>], master: StreamId) -> Option<(Vec<Cow<'a, [u8]>>, Vec<NodeEntry<'a>>)> {
    let mut it = elems.iter().copied();
    let int = |it: &mut dyn Iterator<Item = Elem<'a>>| it.next().and_then(Elem::int);
    let live = usize::try_from(int(&mut it)?).ok()?;
    let deleted = usize::try_from(int(&mut it)?).ok()?;
    let nfields = usize::try_from(int(&mut it)?).ok()?;
    if nfields > elems.len() {
        return None;
    }
    let fields: Vec<Cow<[u8]>> = (0..nfields).map(|_| it.next().map(Elem::bytes)).collect::<Option<_>>()?;
    if int(&mut it)? != 0 {
        return None;
    }
    let mut entries = Vec::new();
    while let Some(flags) = it.next() {
        let flags = flags.int()?;
        let ms = master.ms.wrapping_add(int(&mut it)? as u64);
        let seq = master.seq.wrapping_add(int(&mut it)? as u64);
        let pairs = if flags & STREAM_SAME_FIELDS != 0 {
            fields.iter().map(|f| Some((f.clone(), it.next()?.bytes()))).collect::<Option<Vec<_>>>()?
        } else {
            let n = usize::try_from(int(&mut it)?).ok().filter(|&n| n <= elems.len())?;
            (0..n).map(|_| Some((it.next()?.bytes(), it.next()?.bytes()))).collect::<Option<Vec<_>>>()?
        };
        int(&mut it)?;
        entries.push(NodeEntry { deleted: flags & STREAM_DELETED != 0, id: StreamId { ms, seq }, pairs });
    }
    let dead = entries.iter().filter(|e| e.deleted).count();
    (dead == deleted && entries.len() - dead == live).then_some((fields, entries))
}

/// What a whole RDB holds, item by item.
pub enum Item<'a> {
    Aux(Cow<'a, [u8]>, Cow<'a, [u8]>),
    /// A FUNCTION library's code.
    Function(Cow<'a, [u8]>),
    Key {
        db: usize,
        key: Cow<'a, [u8]>,
        value: Value,
        expire_at: Option<i64>,
        usage: Option<Usage>,
    },
}

/// A whole RDB read item by item, so a loader can do other work between
/// items.
pub struct File<'a> {
    r: Reader<'a>,
    data: &'a [u8],
    pub version: u32,
    db: usize,
    check_crc: bool,
    done: bool,
}

impl<'a> File<'a> {
    /// Checks the header. `check_crc`: verify the trailing checksum at the
    /// end (`rdbchecksum yes`).
    pub fn open(data: &'a [u8], check_crc: bool) -> Result<File<'a>> {
        let mut r = Reader::new(data);
        let magic = r.bytes(9).map_err(|_| RdbError::Signature)?;
        if &magic[..5] != b"REDIS" {
            return Err(RdbError::Signature);
        }
        let version: u32 =
            std::str::from_utf8(&magic[5..]).ok().and_then(|v| v.parse().ok()).ok_or(RdbError::Signature)?;
        if !(1..=NEWEST_READABLE).contains(&version) {
            return Err(RdbError::Version(version));
        }
        Ok(File { r, data, version, db: 0, check_crc, done: false })
    }

    /// Bytes read so far (progress).
    pub fn offset(&self) -> usize {
        self.r.pos
    }

    /// The next item; None after the end (whose checksum then checked
    /// out). Empty collections are skipped, as Redis skips them.
    pub fn next(&mut self, limits: &Limits) -> Result<Option<Item<'a>>> {
        let r = &mut self.r;
        let (mut expire_at, mut usage) = (None, None);
        while !self.done {
            let kind = r.u8()?;
            match kind {
                OP_EOF => {
                    self.done = true;
                    if self.version >= 5 {
                        let body = r.pos;
                        let stored = u64::from_le_bytes(r.array()?);
                        let got = if self.check_crc && stored != 0 { crc64(&self.data[..body]) } else { stored };
                        if got != stored {
                            return Err(RdbError::Checksum { expected: stored, got });
                        }
                    }
                }
                OP_SELECTDB => self.db = r.count()?,
                OP_RESIZEDB => {
                    r.len()?;
                    r.len()?;
                }
                OP_SLOT_INFO => {
                    for _ in 0..3 {
                        r.len()?;
                    }
                }
                OP_EXPIRETIME_MS => expire_at = Some(r.millis()?),
                OP_EXPIRETIME => expire_at = Some(i64::from(i32::from_le_bytes(r.array()?)) * 1000),
                OP_IDLE => usage = Some(Usage::IdleSecs(r.len()?)),
                OP_FREQ => usage = Some(Usage::Freq(r.u8()?)),
                OP_AUX => return Ok(Some(Item::Aux(r.string()?, r.string()?))),
                OP_MODULE_AUX => return Err(RdbError::Module { kind, at: r.pos - 1 }),
                OP_FUNCTION_PRE_GA => {
                    return Err(RdbError::Corrupt {
                        what: "functions of a Redis 7.0 release candidate",
                        at: r.pos - 1,
                    });
                }
                OP_FUNCTION2 => return Ok(Some(Item::Function(r.string()?))),
                _ => {
                    let key = r.string()?;
                    if let Some(value) = r.value(kind, limits)? {
                        return Ok(Some(Item::Key { db: self.db, key, value, expire_at, usage }));
                    }
                    (expire_at, usage) = (None, None);
                }
            }
        }
        Ok(None)
    }
}

/// A DUMP payload's body (type and value) once its RDB version (at most
/// the newest percore reads) and CRC64 check out; None when they do not.
pub fn verify_payload(payload: &[u8]) -> Option<&[u8]> {
    let split = payload.len().checked_sub(10)?;
    let (body, footer) = payload.split_at(split);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().ok()?);
    (u32::from(version) <= NEWEST_READABLE && crc64(&payload[..payload.len() - 8]) == crc).then_some(body)
}

/// The libraries' code in a verified FUNCTION DUMP payload's body; Err:
/// Redis's reason it is refused.
pub fn function_payload(body: &[u8]) -> std::result::Result<Vec<Cow<'_, [u8]>>, &'static str> {
    let mut r = Reader::new(body);
    let mut codes = Vec::new();
    while !r.at_end() {
        match r.u8() {
            Ok(OP_FUNCTION2) => codes.push(r.string().map_err(|_| "failed loading the given functions payload")?),
            Ok(_) => return Err("given type is not a function"),
            Err(_) => return Err("can not read data type"),
        }
    }
    Ok(codes)
}

/// The value of a verified payload's body; None for an empty collection.
pub fn payload_value(body: &[u8], limits: &Limits) -> Result<Option<Value>> {
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    let v = r.value(kind, limits)?;
    if !r.at_end() {
        return Err(r.corrupt("bytes after the value"));
    }
    Ok(v)
}
