//! Long double arithmetic and printing (INCRBYFLOAT, GEOPOS), through
//! `long_double.c`.

use crate::protocol::CmdError;

unsafe extern "C" {
    fn percore_incrbyfloat(
        cur: *const u8,
        cur_len: usize,
        incr: *const u8,
        incr_len: usize,
        out: *mut u8,
        out_len: usize,
    ) -> i64;
    fn percore_human_double(v: f64, out: *mut u8, out_len: usize) -> i64;
}

/// Why a long double addition failed.
#[derive(Debug, PartialEq, Eq)]
pub enum AddError {
    /// The stored value is not a float.
    Current,
    /// The increment is not a float.
    Increment,
    NanOrInfinity,
}

impl From<AddError> for CmdError {
    fn from(e: AddError) -> CmdError {
        match e {
            AddError::NanOrInfinity => CmdError::NanOrInfinity,
            _ => CmdError::NotFloat,
        }
    }
}

/// `current + incr` printed as Redis prints it; `current` None counts as 0.
pub fn add(current: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, AddError> {
    let mut out = vec![0u8; 5 * 1024 + 32];
    let (cur_ptr, cur_len) = current.map_or((std::ptr::null(), 0), |c| (c.as_ptr(), c.len()));
    // SAFETY: every pointer/length pair describes a live buffer, and the C
    // side writes at most `out.len()` bytes.
    let n = unsafe { percore_incrbyfloat(cur_ptr, cur_len, incr.as_ptr(), incr.len(), out.as_mut_ptr(), out.len()) };
    match n {
        -1 => Err(AddError::Current),
        -2 => Err(AddError::Increment),
        -3 => Err(AddError::NanOrInfinity),
        n if n < 0 => Err(AddError::Current),
        n => {
            out.truncate(n as usize);
            Ok(out)
        }
    }
}

/// A finite double as Redis's addReplyHumanLongDouble prints it.
pub fn human(v: f64) -> String {
    let mut out = [0u8; 400];
    // SAFETY: the C side writes at most `out.len()` bytes into `out`.
    let n = unsafe { percore_human_double(v, out.as_mut_ptr(), out.len()) };
    String::from_utf8_lossy(&out[..n.max(0) as usize]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{AddError, add, human};

    #[test]
    fn human_doubles() {
        assert_eq!(human(13.361389338970184), "13.36138933897018433");
        assert_eq!(human(-0.0), "0");
        assert_eq!(human(2.0), "2");
    }

    #[test]
    fn like_redis() {
        assert_eq!(add(Some(b"10.50"), b"0.1").unwrap(), b"10.6");
        // As redis-server 7.0 answers: long double digits show.
        assert_eq!(add(Some(b"5.6"), b"5.0e3").unwrap(), b"5005.60000000000000009");
        assert_eq!(add(None, b"3").unwrap(), b"3");
        assert_eq!(add(Some(b"0.1"), b"-0.1").unwrap(), b"0");
        assert_eq!(add(Some(b"abc"), b"1"), Err(AddError::Current));
        assert_eq!(add(Some(b"1"), b" 1"), Err(AddError::Increment));
        assert_eq!(add(Some(b"1"), b"inf"), Err(AddError::NanOrInfinity));
    }
}
