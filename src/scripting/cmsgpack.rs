//! The `cmsgpack` library Redis gives scripts: MessagePack encoding of Lua
//! values with lua-cmsgpack's rules (integral numbers as the smallest
//! integer, other numbers as float32 when exact else float64, tables with
//! keys 1..n as arrays, other tables as maps, nesting cut at 16 levels).

use mlua::{Lua, MultiValue, Table, Value};

const MAX_NESTING: usize = 16;

/// Installs the global `cmsgpack` table.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let lib = lua.create_table()?;
    lib.set(
        "pack",
        super::library_fn(lua, |lua, args: MultiValue| {
            if args.is_empty() {
                return Err(mlua::Error::runtime("bad argument #0 to 'pack' (MessagePack pack needs input.)"));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(v, 0, &mut out)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    lib.set(
        "unpack",
        super::library_fn(lua, |lua, s: mlua::LuaString| {
            let bytes = s.as_bytes();
            let mut d = Decoder { lua, bytes: &bytes, at: 0, depth: 0 };
            let mut values = Vec::new();
            while d.at < bytes.len() {
                values.push(d.value()?);
            }
            Ok(MultiValue::from_iter(values))
        })?,
    )?;
    let limited = |lua: &Lua, (s, limit, offset): (mlua::LuaString, usize, Option<usize>)| {
        let bytes = s.as_bytes();
        let mut d = Decoder { lua, bytes: &bytes, at: offset.unwrap_or(0), depth: 0 };
        let mut values = Vec::new();
        while d.at < bytes.len() && (limit == 0 || values.len() < limit) {
            values.push(d.value()?);
        }
        let next = if d.at >= bytes.len() { -1 } else { d.at as i64 };
        Ok(MultiValue::from_iter(std::iter::once(Value::Integer(next)).chain(values)))
    };
    lib.set(
        "unpack_one",
        super::library_fn(lua, move |lua, (s, offset): (mlua::LuaString, Option<usize>)| limited(lua, (s, 1, offset)))?,
    )?;
    lib.set("unpack_limit", super::library_fn(lua, limited)?)?;
    lua.globals().set("cmsgpack", lib)
}

fn encode(v: &Value, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => encode_int(*n, out),
        Value::Number(n) if n.is_finite() && (*n as i64) as f64 == *n => encode_int(*n as i64, out),
        Value::Number(n) => {
            let f = *n as f32;
            if f as f64 == *n {
                out.push(0xca);
                out.extend_from_slice(&f.to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let s = s.as_bytes();
            let n = s.len();
            match n {
                0..32 => out.push(0xa0 | n as u8),
                32..=0xff => out.extend_from_slice(&[0xd9, n as u8]),
                0x100..=0xffff => {
                    out.push(0xda);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                _ => {
                    out.push(0xdb);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
            }
            out.extend_from_slice(&s);
        }
        Value::Table(t) if depth < MAX_NESTING => encode_table(t, depth + 1, out)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    match n {
        0..=127 => out.push(n as u8),
        128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        -32..=-1 => out.push(n as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2_147_483_648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The length of `t` as an array: its largest key when every key is a
/// positive integer and there are that many; None for a map.
fn array_len(t: &Table) -> mlua::Result<Option<usize>> {
    let (mut count, mut max) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(n) if n > 0 => n as usize,
            Value::Number(n) if n > 0.0 && n.fract() == 0.0 => n as usize,
            _ => return Ok(None),
        };
        max = max.max(n);
        count += 1;
    }
    Ok((max == count).then_some(max))
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, wide: u8) {
    match n {
        0..16 => out.push(fix | n as u8),
        16..=0xffff => {
            out.push(wide);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(wide + 1);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

fn encode_table(t: &Table, depth: usize, out: &mut Vec<u8>) -> mlua::Result<()> {
    match array_len(t)? {
        Some(n) => {
            header(out, n, 0x90, 0xdc);
            for i in 1..=n {
                encode(&t.raw_get::<Value>(i)?, depth, out)?;
            }
        }
        None => {
            // Two walks rather than holding every pair: each value held
            // takes a slot of the interpreter's bounded reference stack.
            let len = t.pairs::<Value, Value>().count();
            header(out, len, 0x80, 0xde);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                encode(&k, depth, out)?;
                encode(&v, depth, out)?;
            }
        }
    }
    Ok(())
}

struct Decoder<'a> {
    lua: &'a Lua,
    bytes: &'a [u8],
    at: usize,
    /// Tables open around the value being decoded.
    depth: usize,
}

/// Deeper input is refused instead of exhausting the thread's stack.
const MAX_DECODE_DEPTH: usize = 1000;

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> mlua::Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| mlua::Error::runtime("Missing bytes in input."))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> mlua::Result<u64> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| acc << 8 | b as u64))
    }

    fn int(&mut self, n: usize) -> mlua::Result<i64> {
        let bits = 64 - 8 * n as u32;
        Ok(((self.uint(n)? << bits) as i64) >> bits)
    }

    fn string(&mut self, n: usize) -> mlua::Result<Value> {
        let lua = self.lua;
        let s = self.take(n)?;
        Ok(Value::String(lua.create_string(s)?))
    }

    fn nested(&mut self, f: impl FnOnce(&mut Self) -> mlua::Result<Value>) -> mlua::Result<Value> {
        if self.depth >= MAX_DECODE_DEPTH {
            return Err(mlua::Error::runtime("Bad data format in input."));
        }
        self.depth += 1;
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn array(&mut self, n: usize) -> mlua::Result<Value> {
        self.nested(|d| {
            let t = d.lua.create_table_with_capacity(n.min(1024), 0)?;
            for i in 1..=n {
                t.raw_set(i, d.value()?)?;
            }
            Ok(Value::Table(t))
        })
    }

    fn map(&mut self, n: usize) -> mlua::Result<Value> {
        self.nested(|d| {
            let t = d.lua.create_table_with_capacity(0, n.min(1024))?;
            for _ in 0..n {
                let k = d.value()?;
                let v = d.value()?;
                if k != Value::Nil {
                    t.raw_set(k, v)?;
                }
            }
            Ok(Value::Table(t))
        })
    }

    fn value(&mut self) -> mlua::Result<Value> {
        let marker = self.take(1)?[0];
        let number = |n: f64| Value::Number(n);
        Ok(match marker {
            0x00..=0x7f => Value::Integer(marker as i64),
            0x80..=0x8f => self.map((marker & 0x0f) as usize)?,
            0x90..=0x9f => self.array((marker & 0x0f) as usize)?,
            0xa0..=0xbf => self.string((marker & 0x1f) as usize)?,
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xc4 | 0xd9 => {
                let n = self.uint(1)? as usize;
                self.string(n)?
            }
            0xc5 | 0xda => {
                let n = self.uint(2)? as usize;
                self.string(n)?
            }
            0xc6 | 0xdb => {
                let n = self.uint(4)? as usize;
                self.string(n)?
            }
            0xca => number(f32::from_bits(self.uint(4)? as u32) as f64),
            0xcb => number(f64::from_bits(self.uint(8)?)),
            0xcc => Value::Integer(self.uint(1)? as i64),
            0xcd => Value::Integer(self.uint(2)? as i64),
            0xce => Value::Integer(self.uint(4)? as i64),
            0xcf => number(self.uint(8)? as f64),
            0xd0 => Value::Integer(self.int(1)?),
            0xd1 => Value::Integer(self.int(2)?),
            0xd2 => Value::Integer(self.int(4)?),
            0xd3 => Value::Integer(self.int(8)?),
            0xdc => {
                let n = self.uint(2)? as usize;
                self.array(n)?
            }
            0xdd => {
                let n = self.uint(4)? as usize;
                self.array(n)?
            }
            0xde => {
                let n = self.uint(2)? as usize;
                self.map(n)?
            }
            0xdf => {
                let n = self.uint(4)? as usize;
                self.map(n)?
            }
            0xe0..=0xff => Value::Integer(marker as i8 as i64),
            _ => return Err(mlua::Error::runtime("Bad data format in input.")),
        })
    }
}
