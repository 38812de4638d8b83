//! Bit operations on strings (bitops.c): SETBIT GETBIT BITCOUNT BITPOS
//! BITOP BITFIELD BITFIELD_RO. Bit 0 is the most significant bit of the
//! first byte, as in Redis.

use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{Args, Ctx, DENYOOM, FAST, Keys, READONLY, WRITE, Writes};
use crate::config::Hot;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::{GENERIC, STRING};
use crate::storage::{Key, Str, Value};

fn bit_offset(args: Args, i: usize, ctx: &Ctx) -> Result<usize, CmdError> {
    let max_bits = Hot::get(&ctx.hot.proto_max_bulk_len).saturating_mul(8);
    args.int(i)
        .ok()
        .filter(|&n| n >= 0 && (n as u64) < max_bits)
        .map(|n| n as usize)
        .ok_or_else(|| CmdError::err("bit offset is not an integer or out of range"))
}

/// The string at `key` for writing, created empty; grown to `len` bytes.
fn raw_for_write<'c>(ctx: &'c mut Ctx, key: &[u8], len: usize) -> Result<&'c mut Vec<u8>, CmdError> {
    if ctx.lookup_str(key)?.is_none() {
        ctx.set(key, Value::Str(Str::raw(Vec::new())), 0);
    }
    let e = ctx.lookup(key).expect("created above");
    let raw = e.value.as_str_mut().ok_or(CmdError::WrongType)?.make_raw();
    if raw.len() < len {
        raw.resize(len, 0);
    }
    Ok(raw)
}

fn read_bytes(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    Ok(ctx.read_str(key)?.map(|s| s.as_bytes().into_owned()))
}

fn setbit(ctx: &mut Ctx, args: Args) -> CmdResult {
    let offset = bit_offset(args, 2, ctx)?;
    let on = match args.get(3) {
        b"1" => true,
        b"0" => false,
        _ => return Err(CmdError::err("bit is not an integer or out of range")),
    };
    let key = args.get(1);
    let before = ctx.lookup_str(key)?.and_then(|e| e.value.as_str_mut()).map(|s| s.len());
    let raw = raw_for_write(ctx, key, offset / 8 + 1)?;
    let mask = 0x80u8 >> (offset % 8);
    let old = raw[offset / 8] & mask != 0;
    if on {
        raw[offset / 8] |= mask;
    } else {
        raw[offset / 8] &= !mask;
    }
    // Created, grown or flipped: a change.
    if before.is_none_or(|len| len <= offset / 8) || old != on {
        ctx.event(STRING, "setbit", key);
    } else {
        ctx.changed(0);
    }
    Ok(Reply::Int(old as i64))
}

fn getbit(ctx: &mut Ctx, args: Args) -> CmdResult {
    let offset = bit_offset(args, 2, ctx)?;
    let bytes = read_bytes(ctx, args.get(1))?.unwrap_or_default();
    Ok(Reply::Int(bytes.get(offset / 8).is_some_and(|b| b & (0x80 >> (offset % 8)) != 0) as i64))
}

/// Clamps an inclusive `start..=end` (negative from the end) to `len`
/// units; None when empty.
fn clamp(mut start: i64, mut end: i64, len: i64) -> Option<(i64, i64)> {
    if start < 0 {
        start = (len + start).max(0);
    }
    if end < 0 {
        end = (len + end).max(0);
    }
    end = end.min(len - 1);
    (start <= end && len > 0).then_some((start, end))
}

fn bit_at(bytes: &[u8], i: i64) -> bool {
    bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
}

/// Optional `start end [BYTE|BIT]` at `at`: the range in bits, or None
/// for the whole string. `Err` on a bad unit.
fn bit_range(args: Args, at: usize, bytes: usize) -> Result<Option<Option<(i64, i64)>>, CmdError> {
    if args.len() <= at {
        return Ok(None);
    }
    let (start, end) = (args.int(at)?, args.int(at + 1)?);
    let bits = match args.len() {
        n if n == at + 2 => false,
        n if n == at + 3 && args.is(at + 2, "BIT") => true,
        n if n == at + 3 && args.is(at + 2, "BYTE") => false,
        _ => return Err(CmdError::Syntax),
    };
    Ok(Some(if bits {
        clamp(start, end, bytes as i64 * 8)
    } else {
        clamp(start, end, bytes as i64).map(|(s, e)| (s * 8, e * 8 + 7))
    }))
}

fn bitcount(ctx: &mut Ctx, args: Args) -> CmdResult {
    if args.len() == 3 || args.len() > 5 {
        return Err(CmdError::Syntax);
    }
    let bytes = read_bytes(ctx, args.get(1))?;
    let len = bytes.as_ref().map_or(0, |b| b.len());
    // Both ends from the end and crossed: empty, whatever the unit says.
    if args.len() >= 4 && bytes.is_some() {
        let (start, end) = (args.int(2)?, args.int(3)?);
        if start < 0 && end < 0 && start > end {
            return Ok(Reply::Int(0));
        }
    }
    let range = bit_range(args, 2, len)?;
    let Some(bytes) = bytes else { return Ok(Reply::Int(0)) };
    let count = match range {
        None => bytes.iter().map(|b| b.count_ones() as i64).sum(),
        Some(None) => 0,
        Some(Some((s, e))) => (s..=e).filter(|&i| bit_at(&bytes, i)).count() as i64,
    };
    Ok(Reply::Int(count))
}

fn bitpos(ctx: &mut Ctx, args: Args) -> CmdResult {
    let want = match args.get(2) {
        b"1" => true,
        b"0" => false,
        _ => return Err(CmdError::err("The bit argument must be 1 or 0.")),
    };
    if args.len() > 6 {
        return Err(CmdError::Syntax);
    }
    let bytes = read_bytes(ctx, args.get(1))?;
    let len = bytes.as_ref().map_or(0, |b| b.len());
    // A lone start means "to the end".
    let (range, end_given) = match args.len() {
        3 => (None, false),
        4 => {
            let start = args.int(3)?;
            (Some(clamp(start, -1, len as i64).map(|(s, e)| (s * 8, e * 8 + 7))), false)
        }
        _ => (bit_range(args, 3, len)?, true),
    };
    let Some(bytes) = bytes else { return Ok(Reply::Int(if want { -1 } else { 0 })) };
    let (s, e) = match range {
        None => (0, len as i64 * 8 - 1),
        Some(Some(r)) => r,
        Some(None) => return Ok(Reply::Int(-1)),
    };
    if let Some(i) = (s..=e).find(|&i| bit_at(&bytes, i) == want) {
        return Ok(Reply::Int(i));
    }
    // Looking for a clear bit past an all-ones string finds the first bit
    // after it, unless the caller bounded the range.
    Ok(Reply::Int(if !want && !end_given { e + 1 } else { -1 }))
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]
fn bitop<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let op = args.keyword(1);
        if !matches!(op.as_str(), "AND" | "OR" | "XOR" | "NOT") {
            return Err(CmdError::Syntax);
        }
        if op == "NOT" && args.len() != 4 {
            return Err(CmdError::err("BITOP NOT must be called with a single source key."));
        }
        let db = client.db();
        let sources: Vec<Key> = (3..args.len()).map(|i| Key::new(args.get(i))).collect();
        let mut locked: Vec<&[u8]> = sources.iter().map(|k| &**k).collect();
        locked.push(args.get(2));
        let tx = Tx::lock(client, db, locked.into_iter()).await;
        let result = async {
            let mut inputs = Vec::with_capacity(sources.len());
            for k in &sources {
                inputs.push(tx.on(client, db, k, read_bytes).await?.unwrap_or_default());
            }
            let len = inputs.iter().map(|b| b.len()).max().unwrap_or(0);
            let byte = |b: &Vec<u8>, i: usize| b.get(i).copied().unwrap_or(0);
            let out: Vec<u8> = (0..len)
                .map(|i| match op.as_str() {
                    "NOT" => !byte(&inputs[0], i),
                    "AND" => inputs.iter().fold(0xff, |acc, b| acc & byte(b, i)),
                    "OR" => inputs.iter().fold(0, |acc, b| acc | byte(b, i)),
                    _ => inputs.iter().fold(0, |acc, b| acc ^ byte(b, i)),
                })
                .collect();
            tx.on(client, db, args.get(2), move |ctx, k| {
                let now = ctx.now;
                if !out.is_empty() {
                    ctx.set(k, Value::Str(Str::raw(out)), 0);
                    ctx.event(STRING, "set", k);
                    ctx.changed(1);
                } else if ctx.db().remove(k, now).is_some() {
                    ctx.event(GENERIC, "del", k);
                    ctx.changed(1);
                }
            })
            .await;
            Ok(Reply::Int(len as i64))
        }
        .await;
        tx.unlock().await;
        result
    })
}

#[derive(Clone, Copy)]
struct FieldType {
    signed: bool,
    bits: u32,
}

fn field_type(b: &[u8]) -> Result<FieldType, CmdError> {
    let err = || {
        CmdError::err("Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
    };
    let signed = match b.first() {
        Some(b'i' | b'I') => true,
        Some(b'u' | b'U') => false,
        _ => return Err(err()),
    };
    let bits: u32 = std::str::from_utf8(&b[1..]).ok().and_then(|s| s.parse().ok()).ok_or_else(err)?;
    if bits == 0 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(err());
    }
    Ok(FieldType { signed, bits })
}

/// `n` or `#n` (n field widths).
fn field_offset(b: &[u8], t: FieldType, max_bits: u64) -> Result<u64, CmdError> {
    let err = || CmdError::err("bit offset is not an integer or out of range");
    let (scaled, digits) = match b.first() {
        Some(b'#') => (true, &b[1..]),
        _ => (false, b),
    };
    let n = crate::protocol::resp::parse_i64(digits).filter(|&n| n >= 0).ok_or_else(err)? as u64;
    let off = if scaled { n.checked_mul(t.bits as u64).ok_or_else(err)? } else { n };
    if off.saturating_add(t.bits as u64) > max_bits {
        return Err(err());
    }
    Ok(off)
}

fn get_field(bytes: &[u8], off: u64, t: FieldType) -> i64 {
    let mut v: u64 = 0;
    for i in 0..t.bits as u64 {
        let bit = off + i;
        let b = bytes.get((bit / 8) as usize).copied().unwrap_or(0);
        v = (v << 1) | ((b >> (7 - bit % 8)) & 1) as u64;
    }
    if t.signed && t.bits < 64 && v & (1 << (t.bits - 1)) != 0 { (v | (u64::MAX << t.bits)) as i64 } else { v as i64 }
}

fn set_field(bytes: &mut Vec<u8>, off: u64, t: FieldType, value: i64) {
    let need = ((off + t.bits as u64).div_ceil(8)) as usize;
    if bytes.len() < need {
        bytes.resize(need, 0);
    }
    for i in 0..t.bits as u64 {
        let bit = off + i;
        let on = (value as u64 >> (t.bits as u64 - 1 - i)) & 1 == 1;
        let (byte, mask) = ((bit / 8) as usize, 0x80u8 >> (bit % 8));
        if on {
            bytes[byte] |= mask;
        } else {
            bytes[byte] &= !mask;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// `value` made to fit the field per the overflow policy (None: FAIL).
fn fit(value: i128, t: FieldType, policy: Overflow) -> Option<i64> {
    let (min, max): (i128, i128) =
        if t.signed { (-(1i128 << (t.bits - 1)), (1i128 << (t.bits - 1)) - 1) } else { (0, (1i128 << t.bits) - 1) };
    if (min..=max).contains(&value) {
        return Some(value as i64);
    }
    match policy {
        Overflow::Fail => None,
        Overflow::Sat => Some(value.clamp(min, max) as i64),
        Overflow::Wrap => {
            let span = 1i128 << t.bits;
            let mut v = value.rem_euclid(span);
            if t.signed && v > max {
                v -= span;
            }
            Some(v as i64)
        }
    }
}

enum FieldOp {
    Get(FieldType, u64),
    Set(FieldType, u64, i64, Overflow),
    Incr(FieldType, u64, i64, Overflow),
}

fn parse_field_ops(ctx: &Ctx, args: Args, read_only: bool) -> Result<Vec<FieldOp>, CmdError> {
    let max_bits = Hot::get(&ctx.hot.proto_max_bulk_len).saturating_mul(8);
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let kw = args.keyword(j);
        match kw.as_str() {
            "GET" if left >= 2 => {
                let t = field_type(args.get(j + 1))?;
                ops.push(FieldOp::Get(t, field_offset(args.get(j + 2), t, max_bits)?));
                j += 3;
            }
            "SET" | "INCRBY" if left >= 3 => {
                if read_only {
                    return Err(CmdError::err("BITFIELD_RO only supports the GET subcommand"));
                }
                let t = field_type(args.get(j + 1))?;
                let off = field_offset(args.get(j + 2), t, max_bits)?;
                let v = args.int(j + 3)?;
                ops.push(if kw == "SET" {
                    FieldOp::Set(t, off, v, overflow)
                } else {
                    FieldOp::Incr(t, off, v, overflow)
                });
                j += 4;
            }
            "OVERFLOW" if left >= 1 => {
                if read_only {
                    return Err(CmdError::err("BITFIELD_RO only supports the GET subcommand"));
                }
                overflow = match args.keyword(j + 1).as_str() {
                    "WRAP" => Overflow::Wrap,
                    "SAT" => Overflow::Sat,
                    "FAIL" => Overflow::Fail,
                    _ => return Err(CmdError::err("Invalid OVERFLOW type specified")),
                };
                j += 2;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    Ok(ops)
}

fn bitfield_generic(ctx: &mut Ctx, args: Args, read_only: bool) -> CmdResult {
    let ops = parse_field_ops(ctx, args, read_only)?;
    let key = args.get(1);
    let writes = ops.iter().any(|o| !matches!(o, FieldOp::Get(..)));
    let before = if writes { ctx.lookup_str(key)?.and_then(|e| e.value.as_str_mut()).map(|s| s.len()) } else { None };
    let mut bytes =
        if writes { raw_for_write(ctx, key, 0)?.clone() } else { read_bytes(ctx, key)?.unwrap_or_default() };
    let mut replies = Vec::with_capacity(ops.len());
    // Per applied write: whether it changed its field's value.
    let mut applied = Vec::new();
    for op in ops {
        replies.push(match op {
            FieldOp::Get(t, off) => Reply::Int(get_field(&bytes, off, t)),
            FieldOp::Set(t, off, v, policy) => match fit(v as i128, t, policy) {
                Some(v) => {
                    let old = get_field(&bytes, off, t);
                    set_field(&mut bytes, off, t, v);
                    applied.push(old != get_field(&bytes, off, t));
                    Reply::Int(old)
                }
                None => Reply::Null,
            },
            FieldOp::Incr(t, off, by, policy) => {
                let old = get_field(&bytes, off, t);
                match fit(old as i128 + by as i128, t, policy) {
                    Some(v) => {
                        set_field(&mut bytes, off, t, v);
                        applied.push(old != get_field(&bytes, off, t));
                        Reply::Int(v)
                    }
                    None => Reply::Null,
                }
            }
        });
    }
    // As Redis counts them: every applied write if the key was created or
    // grown, otherwise the ones that changed a value.
    let grown = before.is_none_or(|len| bytes.len() > len);
    let changes = applied.iter().filter(|&&changed| grown || changed).count() as u64;
    if writes {
        *raw_for_write(ctx, key, 0)? = bytes;
    }
    if changes > 0 {
        ctx.event(STRING, "setbit", key);
    }
    ctx.changed(changes);
    Ok(Reply::Array(replies))
}

fn bitfield(ctx: &mut Ctx, args: Args) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx, args: Args) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

const KEY1: Keys = Keys::Range(1, 1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("setbit", 4, WRITE | DENYOOM, KEY1, Handler::Data(setbit)),
    Spec::new("getbit", 3, READONLY | FAST, KEY1, Handler::Data(getbit)),
    Spec::new("bitcount", -2, READONLY, KEY1, Handler::Data(bitcount)),
    Spec::new("bitpos", -3, READONLY, KEY1, Handler::Data(bitpos)),
    Spec::new("bitop", -4, WRITE | DENYOOM, Keys::Range(2, -1, 1), Handler::Async(bitop)).writing(Writes::First),
    Spec::new("bitfield", -2, WRITE | DENYOOM, KEY1, Handler::Data(bitfield)),
    Spec::new("bitfield_ro", -2, READONLY | FAST, KEY1, Handler::Data(bitfield_ro)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_overflow() {
        let t = FieldType { signed: true, bits: 5 };
        let mut b = Vec::new();
        set_field(&mut b, 3, t, -7);
        assert_eq!(get_field(&b, 3, t), -7);
        assert_eq!(get_field(&b, 3, FieldType { signed: false, bits: 5 }), 25);
        let u8t = FieldType { signed: false, bits: 8 };
        assert_eq!(fit(300, u8t, Overflow::Wrap), Some(44));
        assert_eq!(fit(300, u8t, Overflow::Sat), Some(255));
        assert_eq!(fit(-1, u8t, Overflow::Sat), Some(0));
        assert_eq!(fit(300, u8t, Overflow::Fail), None);
        let i8t = FieldType { signed: true, bits: 8 };
        assert_eq!(fit(130, i8t, Overflow::Wrap), Some(-126));
        assert_eq!(fit(-130, i8t, Overflow::Sat), Some(-128));
        let i64t = FieldType { signed: true, bits: 64 };
        assert_eq!(fit(i64::MAX as i128 + 1, i64t, Overflow::Wrap), Some(i64::MIN));
    }
}
