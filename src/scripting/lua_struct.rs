//! The `struct` library Redis gives scripts (Roberto Ierusalimschy's
//! lua-struct): `struct.pack(fmt, ...)`, `struct.unpack(fmt, s [, i])`
//! and `struct.size(fmt)`, with its format language: `<` `>` endianness,
//! `!n` alignment, `x` padding, `b B h H l L T i[n] I[n]` integers, `f d`
//! floats, `s` zero-terminated and `c[n]` fixed strings.

use mlua::{Lua, MultiValue, Value};

/// Widest integer option (`i32`).
const MAX_INT_SIZE: usize = 32;
/// `!` without a number: the platform's alignment of a double.
const MAX_ALIGN: usize = 8;

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let lib = lua.create_table()?;
    lib.set(
        "pack",
        super::library_fn(lua, |lua, (fmt, args): (mlua::LuaString, MultiValue)| pack(lua, &fmt.as_bytes(), args))?,
    )?;
    lib.set(
        "unpack",
        super::library_fn(lua, |lua, (fmt, data, at): (mlua::LuaString, mlua::LuaString, Option<i64>)| {
            unpack(lua, &fmt.as_bytes(), &data.as_bytes(), at.unwrap_or(1))
        })?,
    )?;
    lib.set("size", super::library_fn(lua, |_, fmt: mlua::LuaString| size(&fmt.as_bytes()))?)?;
    lua.globals().set("struct", lib)
}

fn arg_error(n: usize, function: &str, message: &str) -> mlua::Error {
    mlua::Error::runtime(format!("bad argument #{n} to '{function}' ({message})"))
}

/// A format being read: position, endianness, maximum alignment.
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    big: bool,
    align: usize,
    function: &'static str,
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8], function: &'static str) -> Format<'a> {
        Format { fmt, at: 0, big: false, align: 1, function }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.fmt.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    fn number(&mut self, default: usize) -> mlua::Result<usize> {
        if !self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut n: usize = 0;
        while let Some(&d) = self.fmt.get(self.at).filter(|d| d.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add((d - b'0') as usize))
                .filter(|&n| n <= i32::MAX as usize)
                .ok_or_else(|| mlua::Error::runtime("integral size overflow"))?;
            self.at += 1;
        }
        Ok(n)
    }

    /// The size of option `opt` (0 for the control options).
    fn size(&mut self, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAX_INT_SIZE {
                    return Err(mlua::Error::runtime(format!(
                        "integral size {n} is larger than limit of {MAX_INT_SIZE}"
                    )));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding before an item of `size` at offset `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// Applies a control option (endianness, alignment, blanks).
    fn control(&mut self, opt: u8) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => self.big = true,
            b'<' => self.big = false,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(mlua::Error::runtime(format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
            }
            _ => {
                let message = format!("invalid format option '{}'", opt as char);
                return Err(arg_error(1, self.function, &message));
            }
        }
        Ok(())
    }
}

fn is_integer(opt: u8) -> bool {
    matches!(opt, b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I')
}

fn number_arg(args: &[Value], i: usize) -> mlua::Result<f64> {
    match args.get(i) {
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Number(n)) => Ok(*n),
        Some(Value::String(s)) => s
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| arg_error(i + 2, "pack", "number expected")),
        _ => Err(arg_error(i + 2, "pack", "number expected")),
    }
}

fn pack(lua: &Lua, fmt: &[u8], args: MultiValue) -> mlua::Result<mlua::LuaString> {
    let args: Vec<Value> = args.into_iter().collect();
    let mut f = Format::new(fmt, "pack");
    let (mut out, mut arg) = (Vec::new(), 0);
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            _ if is_integer(opt) => {
                let n = number_arg(&args, arg)?;
                arg += 1;
                let value = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let mut bytes: Vec<u8> = (0..size).map(|i| if i < 8 { (value >> (8 * i)) as u8 } else { 0 }).collect();
                if f.big {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' | b'd' => {
                let n = number_arg(&args, arg)?;
                arg += 1;
                let mut bytes = if opt == b'f' { (n as f32).to_le_bytes().to_vec() } else { n.to_le_bytes().to_vec() };
                if f.big {
                    bytes.reverse();
                }
                out.extend_from_slice(&bytes);
            }
            b'c' | b's' => {
                let s = match args.get(arg) {
                    Some(Value::String(s)) => s.as_bytes().to_vec(),
                    Some(Value::Integer(n)) => n.to_string().into_bytes(),
                    Some(Value::Number(n)) => n.to_string().into_bytes(),
                    _ => return Err(arg_error(arg + 2, "pack", "string expected")),
                };
                arg += 1;
                if size == 0 || opt == b's' {
                    size = s.len();
                }
                if s.len() < size {
                    return Err(arg_error(arg + 1, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt)?,
        }
    }
    lua.create_string(&out)
}

fn unpack(lua: &Lua, fmt: &[u8], data: &[u8], start: i64) -> mlua::Result<MultiValue> {
    let mut f = Format::new(fmt, "unpack");
    let mut pos = usize::try_from(start - 1)
        .ok()
        .filter(|&p| p <= data.len())
        .ok_or_else(|| arg_error(3, "unpack", "offset must be 1 or greater"))?;
    let mut out: Vec<Value> = Vec::new();
    let short = || arg_error(2, "unpack", "data string too short");
    while let Some(opt) = f.next() {
        let mut size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if size > data.len() || pos > data.len() - size {
            return Err(short());
        }
        match opt {
            _ if is_integer(opt) => {
                let bytes = &data[pos..pos + size];
                let mut l: u64 = 0;
                let mut push = |b: u8| l = (l << 8) | b as u64;
                if f.big {
                    bytes.iter().for_each(|&b| push(b));
                } else {
                    bytes.iter().rev().for_each(|&b| push(b));
                }
                let n = if opt.is_ascii_lowercase() && size < 8 && l >> (size * 8 - 1) & 1 == 1 {
                    (l | (u64::MAX << (size * 8))) as i64 as f64
                } else if opt.is_ascii_lowercase() {
                    l as i64 as f64
                } else {
                    l as f64
                };
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' | b'd' => {
                let mut bytes = data[pos..pos + size].to_vec();
                if f.big {
                    bytes.reverse();
                }
                let n = if opt == b'f' {
                    f32::from_le_bytes(bytes.try_into().map_err(|_| short())?) as f64
                } else {
                    f64::from_le_bytes(bytes.try_into().map_err(|_| short())?)
                };
                out.push(Value::Number(n));
            }
            b'c' => {
                if size == 0 {
                    size = match out.pop() {
                        Some(Value::Number(n)) if n >= 0.0 => n as usize,
                        Some(Value::Integer(n)) if n >= 0 => n as usize,
                        _ => return Err(mlua::Error::runtime("format 'c0' needs a previous size")),
                    };
                    if size > data.len() || pos > data.len() - size {
                        return Err(short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let len = data[pos..]
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| mlua::Error::runtime("unfinished string in data"))?;
                out.push(Value::String(lua.create_string(&data[pos..pos + len])?));
                size = len + 1;
            }
            _ => f.control(opt)?,
        }
        pos += size;
    }
    out.push(Value::Integer(pos as i64 + 1));
    Ok(MultiValue::from_iter(out))
}

fn size(fmt: &[u8]) -> mlua::Result<i64> {
    let mut f = Format::new(fmt, "size");
    let mut pos = 0;
    while let Some(opt) = f.next() {
        let size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt)?;
        }
        pos += size;
    }
    Ok(pos as i64)
}
