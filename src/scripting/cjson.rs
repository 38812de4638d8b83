//! The `cjson` library Redis gives scripts, with lua-cjson's rules: numbers
//! printed as `%.14g`, `/` escaped, tables with keys 1..n as arrays (holes
//! as null, too sparse refused), other tables as objects, and its
//! configuration functions (nesting depths, invalid numbers, precision,
//! sparse arrays), kept per interpreter.

use mlua::{Lua, MultiValue, Table, Value};

/// Nesting either way is bounded by the interpreter's stack: a depth over
/// this is refused as a setting rather than accepted and not honoured.
const MAX_DEPTH: i64 = 1000;

/// What `encode_invalid_numbers` says to do with NaN and infinities.
#[derive(Clone, Copy, PartialEq)]
enum Invalid {
    Refuse,
    Print,
    Null,
}

#[derive(Clone, Copy)]
struct Config {
    encode_max_depth: i64,
    decode_max_depth: i64,
    encode_invalid: Invalid,
    keep_buffer: bool,
    precision: i64,
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
}

const DEFAULTS: Config = Config {
    encode_max_depth: MAX_DEPTH,
    decode_max_depth: MAX_DEPTH,
    encode_invalid: Invalid::Refuse,
    keep_buffer: true,
    precision: 14,
    sparse_convert: false,
    sparse_ratio: 2,
    sparse_safe: 10,
};

fn config(lua: &Lua) -> Config {
    lua.app_data_ref::<Config>().map_or(DEFAULTS, |c| *c)
}

fn update(lua: &Lua, f: impl FnOnce(&mut Config)) -> Config {
    let mut c = config(lua);
    f(&mut c);
    lua.set_app_data(c);
    c
}

fn runtime(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// An integer option `1..=max` (lua-cjson's wording when out of range).
fn int_arg(name: &str, v: &Value, max: i64) -> mlua::Result<Option<i64>> {
    let n = match v {
        Value::Nil => return Ok(None),
        Value::Integer(n) => *n,
        Value::Number(n) if n.fract() == 0.0 => *n as i64,
        _ => return Err(runtime(format!("bad argument #1 to '{name}' (number expected)"))),
    };
    if !(1..=max).contains(&n) {
        return Err(runtime(format!("bad argument #1 to '{name}' (expected integer between 1 and {max})")));
    }
    Ok(Some(n))
}

fn bool_arg(name: &str, v: &Value) -> mlua::Result<Option<bool>> {
    match v {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(*b)),
        Value::String(s) if &*s.as_bytes() == b"on" => Ok(Some(true)),
        Value::String(s) if &*s.as_bytes() == b"off" => Ok(Some(false)),
        _ => Err(runtime(format!("bad argument #1 to '{name}' (invalid option)"))),
    }
}

/// A configuration function for an integer option `1..=max`: sets it when
/// given a value, and returns what it is.
fn int_option(
    lua: &Lua,
    name: &'static str,
    max: i64,
    field: fn(&mut Config) -> &mut i64,
) -> mlua::Result<mlua::Function> {
    super::library_fn(lua, move |lua, v: Value| {
        let n = int_arg(name, &v, max)?;
        let mut c = update(lua, |c| {
            if let Some(n) = n {
                *field(c) = n;
            }
        });
        Ok(*field(&mut c))
    })
}

/// Installs the global `cjson` table.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let lib = lua.create_table()?;
    let set = |name: &str, f: mlua::Function| lib.set(name, f);
    set("encode", super::library_fn(lua, |lua, v: Value| encode(lua, &v))?)?;
    set("decode", super::library_fn(lua, |lua, s: mlua::LuaString| decode(lua, &s.as_bytes()))?)?;
    set("encode_max_depth", int_option(lua, "encode_max_depth", MAX_DEPTH, |c| &mut c.encode_max_depth)?)?;
    set("decode_max_depth", int_option(lua, "decode_max_depth", MAX_DEPTH, |c| &mut c.decode_max_depth)?)?;
    set("encode_number_precision", int_option(lua, "encode_number_precision", 14, |c| &mut c.precision)?)?;
    set(
        "encode_keep_buffer",
        super::library_fn(lua, |lua, v: Value| {
            let on = bool_arg("encode_keep_buffer", &v)?;
            Ok(update(lua, |c| c.keep_buffer = on.unwrap_or(c.keep_buffer)).keep_buffer)
        })?,
    )?;
    set(
        "encode_invalid_numbers",
        super::library_fn(lua, |lua, v: Value| {
            let choice = match &v {
                Value::String(s) if &*s.as_bytes() == b"null" => Some(Invalid::Null),
                other => bool_arg("encode_invalid_numbers", other)?
                    .map(|on| if on { Invalid::Print } else { Invalid::Refuse }),
            };
            let now = update(lua, |c| c.encode_invalid = choice.unwrap_or(c.encode_invalid)).encode_invalid;
            Ok(match now {
                Invalid::Null => Value::String(lua.create_string("null")?),
                other => Value::Boolean(other == Invalid::Print),
            })
        })?,
    )?;
    set(
        "encode_sparse_array",
        super::library_fn(lua, |lua, args: MultiValue| {
            let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Nil);
            let convert = bool_arg("encode_sparse_array", &arg(0))?;
            let ratio = match arg(1) {
                Value::Nil => None,
                v => Some(int_arg("encode_sparse_array", &v, i64::from(i32::MAX))?.unwrap_or(0)),
            };
            let safe = match arg(2) {
                Value::Nil => None,
                v => Some(int_arg("encode_sparse_array", &v, i64::from(i32::MAX))?.unwrap_or(0)),
            };
            let c = update(lua, |c| {
                c.sparse_convert = convert.unwrap_or(c.sparse_convert);
                c.sparse_ratio = ratio.unwrap_or(c.sparse_ratio);
                c.sparse_safe = safe.unwrap_or(c.sparse_safe);
            });
            Ok((c.sparse_convert, c.sparse_ratio, c.sparse_safe))
        })?,
    )?;
    lua.globals().set("cjson", lib)
}

/// A number as C's `%.<precision>g` prints it (Lua's and lua-cjson's form).
pub fn format_g(n: f64, precision: usize) -> String {
    if n.is_nan() {
        return "nan".into();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.into();
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, n);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        trim(&format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, n))
    }
}

fn encode(lua: &Lua, v: &Value) -> mlua::Result<mlua::LuaString> {
    let mut out = Vec::new();
    encode_value(&config(lua), v, 0, &mut out)?;
    lua.create_string(&out)
}

fn encode_number(c: &Config, n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() {
        match c.encode_invalid {
            Invalid::Refuse => return Err(runtime("Cannot serialise number: must not be NaN or Inf")),
            Invalid::Null => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            Invalid::Print => {}
        }
    }
    out.extend_from_slice(format_g(n, c.precision as usize).as_bytes());
    Ok(())
}

fn encode_string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..0x20 | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A table's array length when its keys are exactly positive integers
/// (None: an object), refusing arrays too sparse to print.
fn array_len(c: &Config, t: &Table) -> mlua::Result<Option<usize>> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.pairs::<Value, Value>() {
        let index = match pair?.0 {
            Value::Integer(i) if i >= 1 => i as usize,
            Value::Number(n) if n >= 1.0 && n.fract() == 0.0 => n as usize,
            _ => return Ok(None),
        };
        max = max.max(index);
        items += 1;
    }
    if c.sparse_ratio > 0 && max > items * c.sparse_ratio as usize && max > c.sparse_safe as usize {
        if !c.sparse_convert {
            return Err(runtime("Cannot serialise table: excessively sparse array"));
        }
        return Ok(None);
    }
    Ok(Some(max))
}

fn encode_value(c: &Config, v: &Value, depth: i64, out: &mut Vec<u8>) -> mlua::Result<()> {
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => encode_number(c, *n as f64, out)?,
        Value::Number(n) => encode_number(c, *n, out)?,
        Value::String(s) => encode_string(&s.as_bytes(), out),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > c.encode_max_depth {
                return Err(runtime(format!("Cannot serialise, excessive nesting ({depth})")));
            }
            match array_len(c, t)? {
                Some(n) if n > 0 => {
                    out.push(b'[');
                    for i in 1..=n {
                        if i > 1 {
                            out.push(b',');
                        }
                        encode_value(c, &t.raw_get(i)?, depth, out)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    for (k, pair) in t.pairs::<Value, Value>().enumerate() {
                        let (key, value) = pair?;
                        if k > 0 {
                            out.push(b',');
                        }
                        match key {
                            Value::String(s) => encode_string(&s.as_bytes(), out),
                            Value::Integer(n) => {
                                encode_string(format_g(n as f64, c.precision as usize).as_bytes(), out)
                            }
                            Value::Number(n) => encode_string(format_g(n, c.precision as usize).as_bytes(), out),
                            _ => return Err(runtime("Cannot serialise table: table key must be a number or string")),
                        }
                        out.push(b':');
                        encode_value(c, &value, depth, out)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(runtime(format!("Cannot serialise {}: type not supported", other.type_name()))),
    }
    Ok(())
}

/// How deep arrays and objects nest in JSON text, outside strings; the
/// first point past `max` if it goes deeper.
fn too_deep(text: &[u8], max: i64) -> Option<(i64, usize)> {
    let (mut depth, mut in_string, mut escaped) = (0i64, false, false);
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some((depth, i + 1));
                }
            }
            b']' | b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn decode(lua: &Lua, text: &[u8]) -> mlua::Result<Value> {
    let c = config(lua);
    if let Some((depth, at)) = too_deep(text, c.decode_max_depth) {
        return Err(runtime(format!("Found too many nested data structures ({depth}) at character {at}")));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    // The scan above bounds the nesting.
    de.disable_recursion_limit();
    let v = <serde_json::Value as serde::Deserialize>::deserialize(&mut de).and_then(|v| de.end().map(|_| v));
    let v = v.map_err(|e| runtime(e.to_string()))?;
    to_lua(lua, &v)
}

fn to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        J::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_c_prints_them() {
        for (n, p, want) in [
            (100.0, 14, "100"),
            (0.1, 14, "0.1"),
            (1.0 / 3.0, 14, "0.33333333333333"),
            (123456789012345.0, 14, "1.2345678901234e+14"),
            (1e-5, 14, "1e-05"),
            (0.0001, 14, "0.0001"),
            (-2.5, 14, "-2.5"),
            (1.23456, 3, "1.23"),
            (f64::INFINITY, 14, "inf"),
        ] {
            assert_eq!(format_g(n, p), want, "{n} at {p}");
        }
    }

    #[test]
    fn nesting_outside_strings() {
        assert_eq!(too_deep(br#"{"a": [[1]]}"#, 3), None);
        assert_eq!(too_deep(br#"{"a": [[1]]}"#, 2), Some((3, 8)));
        assert_eq!(too_deep(br#"["[[[[", "\"[["]"#, 1), None);
    }
}
