//! Redis's packed encodings as they appear inside RDB values: listpack
//! (written and read), intset (written and read), and the older ziplist
//! and zipmap (read only). Every reader checks each length against the
//! blob it came in, so a corrupt blob is an error, never a panic.

use std::borrow::Cow;

use crate::protocol::resp::parse_i64;

/// An element of a packed blob: bytes or an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl<'a> Elem<'a> {
    pub fn bytes(self) -> Cow<'a, [u8]> {
        match self {
            Elem::Bytes(b) => Cow::Borrowed(b),
            Elem::Int(n) => Cow::Owned(itoa::Buffer::new().format(n).as_bytes().to_vec()),
        }
    }

    pub fn int(self) -> Option<i64> {
        match self {
            Elem::Int(n) => Some(n),
            Elem::Bytes(b) => parse_i64(b),
        }
    }
}

/// A field and its value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// What is wrong with a blob.
#[derive(Debug, PartialEq, Eq)]
pub struct Bad(pub &'static str);

fn take<'a>(data: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], Bad> {
    let end = at.checked_add(n).filter(|&e| e <= data.len()).ok_or(Bad("entry past the end"))?;
    let b = &data[*at..end];
    *at = end;
    Ok(b)
}

fn le_int(b: &[u8]) -> i64 {
    // Sign-extends a little-endian integer of 1 to 8 bytes.
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    let shift = 64 - 8 * b.len() as u32;
    ((v << shift) as i64) >> shift
}

/// Bytes of the back length after a listpack entry of `l` bytes.
fn backlen_size(l: u64) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Builds a listpack exactly as Redis's lpAppend does.
#[derive(Default)]
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl ListpackWriter {
    pub fn new() -> ListpackWriter {
        ListpackWriter { buf: vec![0; 6], count: 0 }
    }

    /// A string, stored as an integer when it is one's canonical form.
    pub fn push(&mut self, s: &[u8]) {
        match parse_i64(s) {
            Some(n) => self.push_int(n),
            None => {
                let start = self.buf.len();
                let len = s.len();
                if len < 64 {
                    self.buf.push(0x80 | len as u8);
                } else if len < 4096 {
                    self.buf.extend_from_slice(&[0xe0 | (len >> 8) as u8, len as u8]);
                } else {
                    self.buf.push(0xf0);
                    self.buf.extend_from_slice(&(len as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(s);
                self.end_entry(start);
            }
        }
    }

    pub fn push_int(&mut self, n: i64) {
        let start = self.buf.len();
        match n {
            0..=127 => self.buf.push(n as u8),
            -4096..=4095 => self.buf.extend_from_slice(&[0xc0 | ((n >> 8) as u8 & 0x1f), n as u8]),
            -32768..=32767 => {
                self.buf.push(0xf1);
                self.buf.extend_from_slice(&(n as i16).to_le_bytes());
            }
            -8_388_608..=8_388_607 => {
                self.buf.push(0xf2);
                self.buf.extend_from_slice(&(n as i32).to_le_bytes()[..3]);
            }
            -2_147_483_648..=2_147_483_647 => {
                self.buf.push(0xf3);
                self.buf.extend_from_slice(&(n as i32).to_le_bytes());
            }
            _ => {
                self.buf.push(0xf4);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
        }
        self.end_entry(start);
    }

    /// The entry's back length (lpEncodeBacklen).
    fn end_entry(&mut self, start: usize) {
        let l = (self.buf.len() - start) as u64;
        let n = backlen_size(l);
        // Most significant 7 bits first; every byte after the first has
        // the continuation bit (it is read from the end backwards).
        for i in (0..n).rev() {
            let b = ((l >> (7 * i)) & 127) as u8;
            self.buf.push(if i == n - 1 { b } else { b | 128 });
        }
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = if self.count < 65535 { self.count as u16 } else { 65535 };
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// The elements of a listpack.
pub fn listpack(data: &[u8]) -> Result<Vec<Elem<'_>>, Bad> {
    if data.len() < 7 || u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize != data.len() {
        return Err(Bad("listpack header"));
    }
    if data[data.len() - 1] != 0xff {
        return Err(Bad("listpack terminator"));
    }
    let body = &data[..data.len() - 1];
    let mut at = 6;
    let mut out = Vec::new();
    while at < body.len() {
        let start = at;
        let b = body[at];
        at += 1;
        let elem = match b {
            0x00..=0x7f => Elem::Int(i64::from(b)),
            0x80..=0xbf => Elem::Bytes(take(body, &mut at, (b & 0x3f) as usize)?),
            0xc0..=0xdf => {
                let low = take(body, &mut at, 1)?[0];
                let v = (i64::from(b & 0x1f) << 8) | i64::from(low);
                Elem::Int(if v >= 1 << 12 { v - (1 << 13) } else { v })
            }
            0xe0..=0xef => {
                let low = take(body, &mut at, 1)?[0];
                Elem::Bytes(take(body, &mut at, ((b as usize & 0x0f) << 8) | low as usize)?)
            }
            0xf0 => {
                let l = take(body, &mut at, 4)?;
                let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                Elem::Bytes(take(body, &mut at, len)?)
            }
            0xf1 => Elem::Int(le_int(take(body, &mut at, 2)?)),
            0xf2 => Elem::Int(le_int(take(body, &mut at, 3)?)),
            0xf3 => Elem::Int(le_int(take(body, &mut at, 4)?)),
            0xf4 => Elem::Int(le_int(take(body, &mut at, 8)?)),
            _ => return Err(Bad("listpack entry encoding")),
        };
        let backlen = backlen_size((at - start) as u64);
        take(body, &mut at, backlen)?;
        out.push(elem);
    }
    let declared = u16::from_le_bytes([data[4], data[5]]) as usize;
    if declared != 65535 && declared != out.len() {
        return Err(Bad("listpack entry count"));
    }
    Ok(out)
}

/// The elements of a ziplist (lists, hashes and sorted sets before
/// Redis 7).
pub fn ziplist(data: &[u8]) -> Result<Vec<Elem<'_>>, Bad> {
    if data.len() < 11 || u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize != data.len() {
        return Err(Bad("ziplist header"));
    }
    let mut at = 10;
    let mut out = Vec::new();
    loop {
        let b = *data.get(at).ok_or(Bad("ziplist without end"))?;
        if b == 0xff {
            break;
        }
        // The previous entry's length: 1 byte, or 0xfe and 4 more.
        at += if b == 0xfe { 5 } else { 1 };
        let enc = *data.get(at).ok_or(Bad("ziplist entry past the end"))?;
        at += 1;
        let elem = match enc >> 6 {
            0 => Elem::Bytes(take(data, &mut at, (enc & 0x3f) as usize)?),
            1 => {
                let low = take(data, &mut at, 1)?[0];
                Elem::Bytes(take(data, &mut at, ((enc as usize & 0x3f) << 8) | low as usize)?)
            }
            2 => {
                let l = take(data, &mut at, 4)?;
                Elem::Bytes(take(data, &mut at, u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)?)
            }
            _ => match enc {
                0xc0 => Elem::Int(le_int(take(data, &mut at, 2)?)),
                0xd0 => Elem::Int(le_int(take(data, &mut at, 4)?)),
                0xe0 => Elem::Int(le_int(take(data, &mut at, 8)?)),
                0xf0 => Elem::Int(le_int(take(data, &mut at, 3)?)),
                0xfe => Elem::Int(le_int(take(data, &mut at, 1)?)),
                0xf1..=0xfd => Elem::Int(i64::from(enc & 0x0f) - 1),
                _ => return Err(Bad("ziplist entry encoding")),
            },
        };
        out.push(elem);
    }
    if at + 1 != data.len() {
        return Err(Bad("ziplist end before its size"));
    }
    Ok(out)
}

/// An intset blob (Redis's layout: width, count, sorted little-endian
/// integers).
pub fn intset_blob(ints: &[i64]) -> Vec<u8> {
    let width = if ints.iter().all(|&n| i16::try_from(n).is_ok()) {
        2
    } else if ints.iter().all(|&n| i32::try_from(n).is_ok()) {
        4
    } else {
        8
    };
    let mut sorted = ints.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::with_capacity(8 + width * sorted.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for n in sorted {
        out.extend_from_slice(&n.to_le_bytes()[..width]);
    }
    out
}

/// The integers of an intset blob, checked sorted and unique.
pub fn intset(data: &[u8]) -> Result<Vec<i64>, Bad> {
    if data.len() < 8 {
        return Err(Bad("intset header"));
    }
    let width = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let count = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) || count.checked_mul(width).map(|n| n + 8) != Some(data.len()) {
        return Err(Bad("intset size"));
    }
    let ints: Vec<i64> = data[8..].chunks_exact(width).map(le_int).collect();
    if ints.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Bad("intset not sorted"));
    }
    Ok(ints)
}

/// The field value pairs of a zipmap (hashes before Redis 2.6).
pub fn zipmap(data: &[u8]) -> Result<Vec<Pair<'_>>, Bad> {
    let mut at = 1;
    let mut out = Vec::new();
    let len = |at: &mut usize| -> Result<Option<usize>, Bad> {
        match *data.get(*at).ok_or(Bad("zipmap without end"))? {
            0xff => Ok(None),
            0xfe => {
                let l = take(data, &mut (*at + 1), 4)?;
                *at += 5;
                Ok(Some(u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize))
            }
            n => {
                *at += 1;
                Ok(Some(n as usize))
            }
        }
    };
    while let Some(klen) = len(&mut at)? {
        let field = take(data, &mut at, klen)?;
        let vlen = len(&mut at)?.ok_or(Bad("zipmap field without value"))?;
        let free = take(data, &mut at, 1)?[0] as usize;
        let value = take(data, &mut at, vlen)?;
        take(data, &mut at, free)?;
        out.push((field, value));
    }
    if at + 1 != data.len() {
        return Err(Bad("zipmap end before its size"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_round_trips_every_encoding() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let items: Vec<Vec<u8>> = [
            &b"0"[..],
            b"127",
            b"128",
            b"-4096",
            b"4095",
            b"-32768",
            b"32767",
            b"8388607",
            b"-8388608",
            b"2147483647",
            b"-2147483648",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"01",
            b"-0",
            b"",
            b"hello",
            &mid,
            &long,
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let mut w = ListpackWriter::new();
        items.iter().for_each(|i| w.push(i));
        let blob = w.finish();
        let back: Vec<Vec<u8>> = listpack(&blob).unwrap().into_iter().map(|e| e.bytes().into_owned()).collect();
        assert_eq!(back, items);
    }

    #[test]
    fn listpack_matches_redis_bytes() {
        // lpNew + lpAppend("a") + lpAppend("1024") as Redis writes them.
        let mut w = ListpackWriter::new();
        w.push(b"a");
        w.push(b"1024");
        let blob = w.finish();
        assert_eq!(blob, [13, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0xc4, 0x00, 2, 0xff]);
    }

    #[test]
    fn corrupt_packed_blobs_are_refused() {
        let mut w = ListpackWriter::new();
        w.push(b"hello");
        let mut blob = w.finish();
        blob[6] = 0x8f;
        assert!(listpack(&blob).is_err());
        assert!(listpack(&[7, 0, 0, 0, 0, 0]).is_err());
        assert!(ziplist(&[11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(intset(&[2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0]).is_err());
        assert!(zipmap(&[1, 5, b'a']).is_err());
    }

    #[test]
    fn intset_round_trips() {
        for ints in [vec![1, -5, 3], vec![70000, -2], vec![i64::MAX, i64::MIN, 0]] {
            let mut sorted = ints.clone();
            sorted.sort();
            assert_eq!(intset(&intset_blob(&ints)).unwrap(), sorted);
        }
        assert_eq!(intset_blob(&[1, 2])[0], 2);
        assert_eq!(intset_blob(&[1, 1 << 20])[0], 4);
    }

    #[test]
    fn reads_a_ziplist_and_a_zipmap() {
        // Entries "ab", 7 (immediate), 300 (int16), then the end.
        let body = [0x00, 0x02, b'a', b'b', 0x04, 0xf8, 0x02, 0xc0, 0x2c, 0x01];
        let mut zl = Vec::new();
        zl.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
        zl.extend_from_slice(&[0; 4]);
        zl.extend_from_slice(&3u16.to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(0xff);
        assert_eq!(ziplist(&zl).unwrap(), vec![Elem::Bytes(b"ab"), Elem::Int(7), Elem::Int(300)]);
        let zm = [1, 1, b'f', 2, 1, b'v', b'w', 0, 0xff];
        assert_eq!(zipmap(&zm).unwrap(), vec![(&b"f"[..], &b"vw"[..])]);
    }
}
