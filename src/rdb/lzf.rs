//! LZF, the compression Redis uses for long strings in RDB files: a
//! stream of literal runs and back references into the output.
//!
//! Only the format matters for compatibility (any valid stream
//! decompresses in Redis), so the compressor is a plain greedy one.

/// Bytes one back reference may reach behind.
const MAX_OFFSET: usize = 1 << 13;
/// Longest match one reference copies.
const MAX_MATCH: usize = (1 << 8) + (1 << 3);
/// Longest literal run.
const MAX_LITERALS: usize = 32;
/// The match table has about one slot per input byte, at most this many
/// bits' worth: zeroing a big table for every short string would cost
/// more than compressing it.
const MAX_HASH_BITS: u32 = 14;

fn hash(b: &[u8], bits: u32) -> usize {
    let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    (v.wrapping_mul(2_654_435_761) >> (32 - bits)) as usize
}

fn literals(out: &mut Vec<u8>, mut run: &[u8]) {
    while !run.is_empty() {
        let n = run.len().min(MAX_LITERALS);
        out.push((n - 1) as u8);
        out.extend_from_slice(&run[..n]);
        run = &run[n..];
    }
}

/// `input` compressed, or None when that takes more than `max_out` bytes
/// (Redis then stores the string as it is).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(max_out.min(input.len()));
    let bits = input.len().next_power_of_two().trailing_zeros().clamp(4, MAX_HASH_BITS);
    let mut table = vec![0usize; 1 << bits];
    let (mut i, mut pending) = (0, 0);
    while i + 3 <= input.len() {
        let h = hash(&input[i..], bits);
        let candidate = table[h];
        table[h] = i + 1;
        if candidate > 0 {
            let r = candidate - 1;
            let offset = i - r - 1;
            if offset < MAX_OFFSET && input[r..r + 3] == input[i..i + 3] {
                literals(&mut out, &input[pending..i]);
                let most = MAX_MATCH.min(input.len() - i);
                let mut len = 3;
                while len < most && input[r + len] == input[i + len] {
                    len += 1;
                }
                let coded = len - 2;
                if coded < 7 {
                    out.push(((coded << 5) | (offset >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (offset >> 8)) as u8);
                    out.push((coded - 7) as u8);
                }
                out.push(offset as u8);
                i += len;
                pending = i;
                if out.len() > max_out {
                    return None;
                }
                continue;
            }
        }
        i += 1;
    }
    literals(&mut out, &input[pending..]);
    (out.len() <= max_out).then_some(out)
}

/// Why a compressed string was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

/// `input` decompressed to exactly `len` bytes. The caller bounds `len`
/// (it comes from the same untrusted data as `input`).
pub fn decompress(input: &[u8], len: usize) -> Result<Vec<u8>, Invalid> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = input.get(i..i + ctrl + 1).ok_or(Invalid)?;
            if out.len() + run.len() > len {
                return Err(Invalid);
            }
            out.extend_from_slice(run);
            i += ctrl + 1;
            continue;
        }
        let mut n = ctrl >> 5;
        if n == 7 {
            n += *input.get(i).ok_or(Invalid)? as usize;
            i += 1;
        }
        let low = *input.get(i).ok_or(Invalid)? as usize;
        i += 1;
        let back = ((ctrl & 0x1f) << 8) + low + 1;
        let n = n + 2;
        if back > out.len() || out.len() + n > len {
            return Err(Invalid);
        }
        let from = out.len() - back;
        // Byte by byte: a reference may overlap what it produces.
        for k in 0..n {
            let b = out[from + k];
            out.push(b);
        }
    }
    if out.len() == len { Ok(out) } else { Err(Invalid) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"hello world hello world hello world, says the world".to_vec(),
            (0..10_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect(),
        ];
        let mut seed = 7u64;
        inputs.push(
            (0..5000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    b"abcd"[(seed >> 60) as usize % 4]
                })
                .collect(),
        );
        for input in inputs {
            let packed = compress(&input, input.len()).expect("compressible");
            assert!(packed.len() < input.len());
            assert_eq!(decompress(&packed, input.len()).unwrap(), input);
        }
    }

    #[test]
    fn incompressible_is_refused() {
        let input: Vec<u8> = (0..64u8).collect();
        assert_eq!(compress(&input, input.len() - 4), None);
    }

    #[test]
    fn decodes_a_redis_stream() {
        // What Redis's lzf_compress makes of 40 'a's: a literal, then one
        // long back reference.
        let packed = [0x00, b'a', 0xe0, 0x1e, 0x00];
        assert_eq!(decompress(&packed, 40).unwrap(), vec![b'a'; 40]);
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(decompress(&[0x05, b'a'], 6), Err(Invalid));
        assert_eq!(decompress(&[0x20, 0x05], 3), Err(Invalid));
        assert_eq!(decompress(&[0x00, b'a', 0xe0, 0xff, 0x00], 40), Err(Invalid));
        assert_eq!(decompress(&[0x00, b'a'], 2), Err(Invalid));
    }
}
