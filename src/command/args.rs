//! A command's arguments, borrowed or owned.

use crate::protocol::CmdError;
use crate::protocol::resp::{Span, parse_i64};

/// A command's arguments (index 0 is the name), borrowed from wherever
/// they were parsed or copied to.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    data: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Args<'a> {
    pub fn new(data: &'a [u8], spans: &'a [Span]) -> Args<'a> {
        Args { data, spans }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn get(&self, i: usize) -> &'a [u8] {
        let (o, l) = self.spans[i];
        &self.data[o as usize..(o + l) as usize]
    }

    /// The arguments after the first `n` (COMMAND GETKEYS's command).
    pub fn skip(&self, n: usize) -> Args<'a> {
        Args { data: self.data, spans: &self.spans[n.min(self.spans.len())..] }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + Clone + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// The argument, upper-cased for keyword matching (short arguments).
    pub fn keyword(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).to_ascii_uppercase()
    }

    pub fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }

    pub fn str(&self, i: usize) -> String {
        String::from_utf8_lossy(self.get(i)).into_owned()
    }

    pub fn int(&self, i: usize) -> Result<i64, CmdError> {
        parse_i64(self.get(i)).ok_or(CmdError::NotInteger)
    }

    /// A database number (SELECT, MOVE, COPY ... DB): an int, then one
    /// of the `databases`.
    pub fn db_index(&self, i: usize, databases: usize) -> Result<usize, CmdError> {
        let n = self.int(i)?;
        if i32::try_from(n).is_err() {
            return Err(CmdError::err("value is out of range, value must between -2147483648 and 2147483647"));
        }
        usize::try_from(n).ok().filter(|&n| n < databases).ok_or(CmdError::DbIndexOutOfRange)
    }

    pub fn float(&self, i: usize) -> Result<f64, CmdError> {
        parse_f64(self.get(i)).ok_or(CmdError::NotFloat)
    }
}

/// Parses a float as Redis's `string2ld`/`strtold` would accept it:
/// no spaces, not NaN; "inf" and "-inf" allowed.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        lower if lower.contains("nan") || lower.contains("inf") => return None,
        _ => s.parse().ok()?,
    };
    Some(v)
}

/// Arguments owned in one buffer, for sending to another shard.
#[derive(Default, Debug, Clone)]
pub struct OwnedArgs {
    data: Vec<u8>,
    spans: Vec<Span>,
}

impl OwnedArgs {
    pub fn push(&mut self, arg: &[u8]) {
        self.spans.push((self.data.len() as u32, arg.len() as u32));
        self.data.extend_from_slice(arg);
    }

    pub fn args(&self) -> Args<'_> {
        Args::new(&self.data, &self.spans)
    }

    /// Arguments `from..to` of the whole set, as their own `Args`.
    pub fn range(&self, from: usize, to: usize) -> Args<'_> {
        Args::new(&self.data, &self.spans[from..to])
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of argument data held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_strtold() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(parse_f64(b""), None);
    }
}
