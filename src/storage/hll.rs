//! HyperLogLog in Redis's own byte format (hyperloglog.c), so an HLL value
//! is the same string in percore and redis-server: a 16-byte header
//! ("HYLL", encoding, 3 unused bytes, 8-byte cached cardinality whose top
//! bit marks it stale), then either the sparse opcodes (ZERO, XZERO, VAL)
//! or 16384 dense 6-bit registers.

const P: u32 = 14;
const REGISTERS: usize = 1 << P;
const Q: u32 = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
pub const HDR: usize = 16;
const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// A value that is not an HLL, or a corrupt one.
#[derive(Debug, PartialEq, Eq)]
pub enum HllError {
    NotHll,
    Corrupt,
}

fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate().rev() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element maps to and the run length it counts.
fn pattern(element: &[u8]) -> (usize, u8) {
    let mut hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    hash >>= P;
    hash |= 1 << Q;
    (index, hash.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = regs[byte] as u16;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> fb) | (b1 << (8 - fb))) & REGISTER_MAX as u16) as u8
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    regs[byte] &= !(REGISTER_MAX << fb);
    regs[byte] |= v << fb;
    if let Some(next) = regs.get_mut(byte + 1) {
        let fb8 = 8 - fb;
        *next &= !((REGISTER_MAX as u16 >> fb8) as u8);
        *next |= ((v as u16) >> fb8) as u8;
    }
}

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}
fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}
fn is_val(b: u8) -> bool {
    b & 0x80 != 0
}
fn zero_len(b: u8) -> usize {
    (b & 0x3f) as usize + 1
}
fn xzero_len(b: u8, next: u8) -> usize {
    ((((b & 0x3f) as usize) << 8) | next as usize) + 1
}
fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}
fn val_len(b: u8) -> usize {
    (b & 0x3) as usize + 1
}
fn val(v: u8, len: usize) -> u8 {
    ((v - 1) << 2 | (len as u8 - 1)) | 0x80
}
fn zero(len: usize) -> u8 {
    len as u8 - 1
}
fn xzero(len: usize) -> [u8; 2] {
    let l = len - 1;
    [(l >> 8) as u8 | 0x40, (l & 0xff) as u8]
}

/// A new, empty HLL (sparse).
pub fn create() -> Vec<u8> {
    let mut v = b"HYLL".to_vec();
    v.extend_from_slice(&[SPARSE, 0, 0, 0]);
    v.extend_from_slice(&[0; 8]);
    let mut left = REGISTERS;
    while left > 0 {
        let n = left.min(XZERO_MAX_LEN);
        v.extend_from_slice(&xzero(n));
        left -= n;
    }
    v
}

/// Checks that `s` is an HLL Redis would accept.
pub fn validate(s: &[u8]) -> Result<(), HllError> {
    if s.len() < HDR || &s[..4] != b"HYLL" || s[4] > SPARSE || (s[4] == DENSE && s.len() != DENSE_SIZE) {
        return Err(HllError::NotHll);
    }
    Ok(())
}

fn invalidate(s: &mut [u8]) {
    s[15] |= 0x80;
}

/// Calls `f(first_register, run_length, value)` for each sparse opcode.
fn sparse_runs(s: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), HllError> {
    let (mut p, mut idx) = (HDR, 0usize);
    while p < s.len() {
        let b = s[p];
        let (len, v, oplen) = if is_zero(b) {
            (zero_len(b), 0, 1)
        } else if is_xzero(b) {
            (xzero_len(b, *s.get(p + 1).ok_or(HllError::Corrupt)?), 0, 2)
        } else {
            (val_len(b), val_value(b), 1)
        };
        if idx + len > REGISTERS {
            return Err(HllError::Corrupt);
        }
        f(idx, len, v);
        idx += len;
        p += oplen;
    }
    if idx != REGISTERS { Err(HllError::Corrupt) } else { Ok(()) }
}

fn to_dense(s: &mut Vec<u8>) -> Result<(), HllError> {
    if s[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&s[..HDR]);
    dense[4] = DENSE;
    sparse_runs(s, |first, len, v| {
        if v > 0 {
            (first..first + len).for_each(|i| dense_set(&mut dense[HDR..], i, v));
        }
    })?;
    *s = dense;
    Ok(())
}

/// Sets register `index` to `count` if larger, as `hllSparseSet` does
/// (splitting and re-merging opcodes in place, promoting to dense when a
/// value or the size no longer fits). Returns whether it changed.
fn sparse_set(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, HllError> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    let (mut p, mut first, mut span, mut prev) = (HDR, 0usize, 0usize, None);
    while p < s.len() {
        let b = s[p];
        let oplen;
        (span, oplen) = if is_zero(b) {
            (zero_len(b), 1)
        } else if is_val(b) {
            (val_len(b), 1)
        } else {
            (xzero_len(b, *s.get(p + 1).ok_or(HllError::Corrupt)?), 2)
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= s.len() {
        return Err(HllError::Corrupt);
    }
    let b = s[p];
    let runlen = span;
    if is_val(b) {
        if val_value(b) >= count {
            return Ok(false);
        }
        if runlen == 1 {
            s[p] = val(count, 1);
            merge_from(s, prev.unwrap_or(HDR));
            return Ok(true);
        }
    }
    if is_zero(b) && runlen == 1 {
        s[p] = val(count, 1);
        merge_from(s, prev.unwrap_or(HDR));
        return Ok(true);
    }
    let last = first + span - 1;
    let mut seq: Vec<u8> = Vec::with_capacity(5);
    let push_zeros = |seq: &mut Vec<u8>, len: usize| {
        if len > ZERO_MAX_LEN {
            seq.extend_from_slice(&xzero(len));
        } else {
            seq.push(zero(len));
        }
    };
    if !is_val(b) {
        if index != first {
            push_zeros(&mut seq, index - first);
        }
        seq.push(val(count, 1));
        if index != last {
            push_zeros(&mut seq, last - index);
        }
    } else {
        let cur = val_value(b);
        if index != first {
            seq.push(val(cur, index - first));
        }
        seq.push(val(count, 1));
        if index != last {
            seq.push(val(cur, last - index));
        }
    }
    let oldlen = if is_xzero(b) { 2 } else { 1 };
    if seq.len() > oldlen && s.len() + seq.len() - oldlen > max_bytes {
        return promote(s, index, count);
    }
    s.splice(p..p + oldlen, seq);
    merge_from(s, prev.unwrap_or(HDR));
    Ok(true)
}

/// Merges adjacent VAL opcodes of equal value, scanning up to 5 opcodes
/// from `p` (Redis's step 4).
fn merge_from(s: &mut Vec<u8>, mut p: usize) {
    let mut scan = 5;
    while p < s.len() && scan > 0 {
        scan -= 1;
        let b = s[p];
        if is_xzero(b) {
            p += 2;
            continue;
        }
        if is_zero(b) {
            p += 1;
            continue;
        }
        if p + 1 < s.len() && is_val(s[p + 1]) {
            let (v1, v2) = (val_value(b), val_value(s[p + 1]));
            let len = val_len(b) + val_len(s[p + 1]);
            if v1 == v2 && len <= VAL_MAX_LEN {
                s[p + 1] = val(v1, len);
                s.remove(p);
                continue;
            }
        }
        p += 1;
    }
}

fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    to_dense(s)?;
    let regs = &mut s[HDR..];
    if dense_get(regs, index) < count {
        dense_set(regs, index, count);
    }
    Ok(true)
}

fn set_register(s: &mut Vec<u8>, index: usize, count: u8, max_bytes: usize) -> Result<bool, HllError> {
    if s[4] == DENSE {
        let regs = &mut s[HDR..];
        if dense_get(regs, index) < count {
            dense_set(regs, index, count);
            return Ok(true);
        }
        return Ok(false);
    }
    sparse_set(s, index, count, max_bytes)
}

/// PFADD of one element; true if a register changed.
pub fn add(s: &mut Vec<u8>, element: &[u8], max_bytes: usize) -> Result<bool, HllError> {
    let (index, count) = pattern(element);
    set_register(s, index, count, max_bytes)
}

pub fn invalidate_cache(s: &mut [u8]) {
    invalidate(s);
}

/// Folds `s`'s registers into `max` (one byte per register).
pub fn merge_into(max: &mut [u8], s: &[u8]) -> Result<(), HllError> {
    if s[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(&s[HDR..], i));
        }
        Ok(())
    } else {
        sparse_runs(s, |first, len, v| {
            if v > 0 {
                max[first..first + len].iter_mut().for_each(|m| *m = (*m).max(v));
            }
        })
    }
}

/// Writes merged registers into the HLL `s` (PFMERGE's last step).
pub fn store(s: &mut Vec<u8>, max: &[u8], dense: bool, max_bytes: usize) -> Result<(), HllError> {
    if dense {
        to_dense(s)?;
    }
    for (i, &v) in max.iter().enumerate() {
        if v != 0 {
            set_register(s, i, v, max_bytes)?;
        }
    }
    invalidate(s);
    Ok(())
}

/// PFDEBUG TODENSE: converts a sparse HLL; returns whether it was sparse.
pub fn make_dense(s: &mut Vec<u8>) -> Result<bool, HllError> {
    let was_sparse = !is_dense(s);
    to_dense(s)?;
    Ok(was_sparse)
}

/// The 16384 register values (PFDEBUG GETREG).
pub fn registers(s: &[u8]) -> Result<Vec<u8>, HllError> {
    let mut regs = vec![0u8; REGISTERS];
    merge_into(&mut regs, s)?;
    Ok(regs)
}

/// PFDEBUG DECODE: a sparse HLL's opcodes as text (`z:len` for ZERO,
/// `Z:len` for XZERO, `v:value,len` for VAL); None when it is dense.
pub fn decode_sparse(s: &[u8]) -> Result<Option<String>, HllError> {
    if is_dense(s) {
        return Ok(None);
    }
    let mut ops = Vec::new();
    let mut p = HDR;
    while p < s.len() {
        let b = s[p];
        if is_zero(b) {
            ops.push(format!("z:{}", zero_len(b)));
            p += 1;
        } else if is_xzero(b) {
            ops.push(format!("Z:{}", xzero_len(b, *s.get(p + 1).ok_or(HllError::Corrupt)?)));
            p += 2;
        } else {
            ops.push(format!("v:{},{}", val_value(b), val_len(b)));
            p += 1;
        }
    }
    Ok(Some(ops.join(" ")))
}

pub fn is_dense(s: &[u8]) -> bool {
    s[4] == DENSE
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// Ertl's estimator over a register histogram, as Redis computes it.
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// Cardinality of registers given one byte each.
pub fn count_raw(max: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    max.iter().for_each(|&v| histo[v as usize] += 1);
    estimate(&histo)
}

/// PFCOUNT of one key: the cached value, or computed and cached.
/// Whether the cached cardinality must be recomputed (PFCOUNT then
/// rewrites it, which Redis counts as a change of the key).
pub fn cache_stale(s: &[u8]) -> bool {
    s[15] & 0x80 != 0
}

pub fn count(s: &mut [u8]) -> Result<u64, HllError> {
    if !cache_stale(s) {
        return Ok(u64::from_le_bytes(s[8..16].try_into().expect("8-byte cache")));
    }
    let mut regs = vec![0u8; REGISTERS];
    merge_into(&mut regs, s)?;
    let card = count_raw(&regs);
    s[8..16].copy_from_slice(&card.to_le_bytes());
    Ok(card)
}

pub const REGISTER_COUNT: usize = REGISTERS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_hll_is_redis_bytes() {
        let h = create();
        assert_eq!(h, b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x7f\xff".to_vec());
        assert_eq!(validate(&h), Ok(()));
        assert_eq!(validate(b"HYLL"), Err(HllError::NotHll));
    }

    #[test]
    fn counts_are_close_and_dense_matches_sparse() {
        let mut sparse = create();
        for i in 0..1000 {
            add(&mut sparse, format!("e{i}").as_bytes(), 3000).unwrap();
        }
        invalidate(&mut sparse);
        let mut dense = sparse.clone();
        to_dense(&mut dense).unwrap();
        let (a, b) = (count(&mut sparse).unwrap(), count(&mut dense).unwrap());
        assert_eq!(a, b);
        assert!((950..=1050).contains(&a), "{a}");
        let mut big = create();
        for i in 0..100_000 {
            add(&mut big, format!("e{i}").as_bytes(), 3000).unwrap();
        }
        assert!(is_dense(&big));
        invalidate(&mut big);
        let n = count(&mut big).unwrap();
        assert!((98_000..=102_000).contains(&n), "{n}");
    }
}
